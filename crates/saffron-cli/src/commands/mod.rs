mod bench;
mod bench_mrm;
mod bench_search;
mod data;
mod eval;
mod fetch;
mod fluency;
mod generate;
mod judge_eval;
mod label;
mod merge;
mod probe_setup;
mod report;
mod serve;
mod train_guard;
mod train_judge;
mod train_mrm;
mod train_stream_guard;

use saffron_reward::MrmSpec;

use crate::cli::{Cli, Command};

pub fn run(cli: Cli) -> anyhow::Result<()> {
    let home = cli.home.unwrap_or_else(saffron_fetch::saffron_home);
    match cli.command {
        Command::Fetch(args) => fetch::run(&home, &args),
        Command::Generate(args) => generate::run(&home, &args),
        Command::Bench(args) => bench::run(&home, &args),
        Command::TrainGuard(args) => train_guard::run(&home, &args),
        Command::TrainJudge(args) => train_judge::run(&home, &args),
        Command::JudgeEval(args) => judge_eval::run(&home, &args),
        Command::Label(args) => label::run(&home, &args),
        Command::TrainMrm(args) => train_mrm::run(&home, &args),
        Command::TrainStreamGuard(args) => train_stream_guard::run(&home, &args),
        Command::Eval(args) => eval::run(&home, &args),
        Command::Report(args) => report::run(&args.run_dir),
        Command::Merge(args) => merge::run(&args),
        Command::MergeCorpus(args) => merge::run_corpus(&args),
        Command::Fluency(args) => fluency::run(&home, &args),
        Command::Data(command) => data::run(&home, &command),
        Command::Serve(args) => serve::run(&home, &args),
    }
}

/// `--mrm` and `--mrm-base`.
fn mrm_spec(mrm: Option<&str>, base: Option<&str>) -> anyhow::Result<Option<MrmSpec>> {
    Ok(mrm.map(|m| MrmSpec::parse(m, base)).transpose()?)
}
