//! `saffron fluency RUN_DIR`: scores each answer of a run by its mean
//! log-probability per token under the run's policy (saffron_eval::fluency),
//! into `fluency.jsonl`, then writes the report.

use std::path::Path;

use saffron_defence::local::LocalPolicy;
use saffron_engine::TreeOptions;
use saffron_eval::fluency::score_run;
use saffron_eval::manifest::RunManifest;
use saffron_reward::Loader;

use crate::cli::FluencyArgs;
use crate::progress::count_bar;

pub fn run(home: &Path, args: &FluencyArgs) -> anyhow::Result<()> {
    let dir = &args.run_dir;
    let manifest: RunManifest = RunManifest::read(dir)?;
    let policy = LocalPolicy::new(Loader::new(home).model(&manifest.grid.policy)?);
    let options = TreeOptions { threads: args.threads, ..TreeOptions::default() };
    let bar = count_bar("fluency", 0);
    let scored = score_run((dir, &manifest), home, &policy, options, &mut |done, todo| {
        bar.set_length(todo as u64);
        bar.set_position(done as u64);
    })?;
    bar.finish_and_clear();
    eprintln!("{scored} answers scored in {}", dir.display());
    super::report::run(dir)
}
