//! `saffron merge INTO RUN_DIR...`: joins the shards of one grid (made with
//! `saffron eval --shard`) into one run directory, then writes its report.

use saffron_eval::experiment::Record;
use saffron_eval::store::merge_runs;

use crate::cli::MergeArgs;

pub fn run(args: &MergeArgs) -> anyhow::Result<()> {
    let added = merge_runs::<Record>(&args.into, &args.from)?;
    eprintln!("{added} records added to {}", args.into.display());
    if args.from.iter().any(|dir| dir.join(saffron_eval::fluency::FLUENCY_FILE).exists()) {
        eprintln!("fluency scores are not merged: run `saffron fluency {}` to score its answers", args.into.display());
    }
    super::report::run(&args.into)
}
