//! `saffron merge INTO RUN_DIR...`: joins the shards of one grid (made with
//! `saffron eval --shard`) into one run directory, their fluency scores
//! too, then writes its report.

use std::path::PathBuf;

use saffron_eval::experiment::Record;
use saffron_eval::fluency::{FluencyRecord, FLUENCY_FILE};
use saffron_eval::store::{merge_file, merge_runs};

use crate::cli::MergeArgs;

pub fn run(args: &MergeArgs) -> anyhow::Result<()> {
    let added = merge_runs::<Record>(&args.into, &args.from)?;
    eprintln!("{added} records added to {}", args.into.display());
    // Scores depend on the record and the policy only, and the policy is
    // part of the configuration every directory shares.
    let scores: Vec<PathBuf> = args.from.iter().map(|dir| dir.join(FLUENCY_FILE)).filter(|f| f.exists()).collect();
    if !scores.is_empty() {
        let added = merge_file::<FluencyRecord>(&args.into.join(FLUENCY_FILE), &scores)?;
        eprintln!("{added} fluency scores added (run `saffron fluency` on it for any answer still unscored)");
    }
    super::report::run(&args.into)
}
