mod bench;
mod bench_search;
mod fetch;
mod generate;

use std::path::PathBuf;

use anyhow::Context;
use saffron_engine::Model;
use saffron_reward::{VerdictGuard, VerdictGuardConfig};

use crate::cli::{Cli, Command, GuardPreset, ModelArgs};

pub fn run(cli: Cli) -> anyhow::Result<()> {
    let home = cli.home.unwrap_or_else(saffron_fetch::saffron_home);
    match cli.command {
        Command::Fetch(args) => fetch::run(&home, &args),
        Command::Generate(args) => generate::run(&home, &args),
        Command::Bench(args) => bench::run(&home, &args),
    }
}

/// Resolves `--model` and loads it.
fn load_model(home: &std::path::Path, args: &ModelArgs) -> anyhow::Result<(Model, PathBuf)> {
    let model_ref = saffron_fetch::resolve_model(&args.model, home)?;
    let path = model_ref.path().to_path_buf();
    let model = Model::load(&path).with_context(|| format!("loading model `{}`", args.model))?;
    Ok((model, path))
}

/// Loads `name` as a verdict guard (reusing the policy's weights when it
/// names the same file).
fn load_guard(
    home: &std::path::Path,
    name: &str,
    preset: GuardPreset,
    threads: Option<u32>,
    policy: &Model,
) -> anyhow::Result<VerdictGuard> {
    let path = saffron_fetch::resolve_model(name, home)?.path().to_path_buf();
    let model = if path == policy.path() {
        policy.clone()
    } else {
        load_model(home, &ModelArgs { model: name.to_owned(), threads })?.0
    };
    let config = match preset {
        GuardPreset::Local => VerdictGuardConfig::local(),
        GuardPreset::LlamaGuard3 => VerdictGuardConfig::llama_guard_3(),
    };
    VerdictGuard::new(model, &config).with_context(|| format!("using `{name}` as a guard"))
}
