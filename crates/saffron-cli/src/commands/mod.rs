mod bench;
mod bench_mrm;
mod bench_search;
mod eval;
mod fetch;
mod fluency;
mod generate;
mod guard;
mod judge_eval;
mod label;
mod merge;
mod mrm;
mod prefix_auc;
mod report;
mod train_guard;
mod train_mrm;

use std::path::PathBuf;

use anyhow::Context;
use saffron_engine::Model;

use crate::cli::{Cli, Command, ModelArgs};

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

/// Resolves `--model` and loads it.
fn load_model(home: &std::path::Path, args: &ModelArgs) -> anyhow::Result<(Model, PathBuf)> {
    let model_ref = saffron_fetch::resolve_model(&args.model, home)?;
    let path = model_ref.path().to_path_buf();
    let model = Model::load(&path).with_context(|| format!("loading model `{}`", args.model))?;
    Ok((model, path))
}
