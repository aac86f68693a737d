mod bench;
mod bench_mrm;
mod bench_search;
mod eval;
mod fetch;
mod fluency;
mod generate;
mod judge_eval;
mod label;
mod merge;
mod report;
mod train_guard;
mod train_mrm;

use saffron_reward::{GuardSpec, JudgeSpec, MrmSpec, VerdictFormat};

use crate::cli::{Cli, Command};

pub fn run(cli: Cli) -> anyhow::Result<()> {
    let home = cli.home.unwrap_or_else(saffron_fetch::saffron_home);
    match cli.command {
        Command::Fetch(args) => fetch::run(&home, &args),
        Command::Generate(args) => generate::run(&home, &args),
        Command::Bench(args) => bench::run(&home, &args),
        Command::TrainGuard(args) => train_guard::run(&home, &args),
        Command::JudgeEval(args) => judge_eval::run(&home, &args),
        Command::Label(args) => label::run(&home, &args),
        Command::TrainMrm(args) => train_mrm::run(&home, &args),
        Command::Eval(args) => eval::run(&home, &args),
        Command::Report(args) => report::run(&args.run_dir),
        Command::Merge(args) => merge::run(&args),
        Command::Fluency(args) => fluency::run(&home, &args),
    }
}

/// `--guard` and `--guard-format`, checked: a format is for a GGUF verdict
/// guard only.
fn guard_spec(guard: &str, format: VerdictFormat) -> anyhow::Result<GuardSpec> {
    let spec = GuardSpec::parse(guard, format)?;
    check_format(guard, spec.format(), format)?;
    Ok(spec)
}

/// `--judge` and `--guard-format`, checked as [`guard_spec`].
fn judge_spec(judge: &str, format: VerdictFormat) -> anyhow::Result<JudgeSpec> {
    let spec = JudgeSpec::parse(judge, format)?;
    check_format(judge, spec.guard().and_then(GuardSpec::format), format)?;
    Ok(spec)
}

fn check_format(name: &str, verdict: Option<VerdictFormat>, format: VerdictFormat) -> anyhow::Result<()> {
    if verdict.is_none() && format != VerdictFormat::default() {
        anyhow::bail!("--guard-format is for a GGUF verdict guard; `{name}` is not one");
    }
    Ok(())
}

/// `--mrm` and `--mrm-base`.
fn mrm_spec(mrm: Option<&str>, base: Option<&str>) -> anyhow::Result<Option<MrmSpec>> {
    Ok(mrm.map(|m| MrmSpec::parse(m, base)).transpose()?)
}
