//! `saffron merge INTO RUN_DIR...`: joins the shards of one grid (made with
//! `saffron eval --shard`) into one run directory, their fluency scores
//! too, then writes its report. `saffron merge-corpus INTO SHARD...` joins
//! the corpora of `saffron label --shard`.

use saffron_eval::experiment::Record;
use saffron_eval::fluency::{FluencyRecord, FLUENCY_FILE};
use saffron_eval::store::{merge_file, merge_runs, RunLock};

use saffron_reward::mrm::corpus::merge_corpora;
use saffron_reward::mrm::states::{merge_states, states_path};

use crate::cli::{MergeArgs, MergeCorpusArgs};

pub fn run(args: &MergeArgs) -> anyhow::Result<()> {
    let lock = RunLock::acquire(&args.into)?;
    let added = merge_runs::<Record>(&lock, &args.from)?;
    eprintln!("{added} records added to {}", args.into.display());
    // Scores depend on the record and the policy only, and the policy is
    // part of the configuration every directory shares.
    if args.from.iter().any(|dir| dir.join(FLUENCY_FILE).exists()) {
        let added = merge_file::<FluencyRecord>(&lock, FLUENCY_FILE, &args.from)?;
        eprintln!("{added} fluency scores added (run `saffron fluency` on it for any answer still unscored)");
    }
    drop(lock);
    super::report::run(&args.into)
}

pub fn run_corpus(args: &MergeCorpusArgs) -> anyhow::Result<()> {
    let added = merge_corpora(&args.into, &args.shards)?;
    eprintln!("{added} responses added to {}", args.into.display());
    // Guard states kept while labelling (`label --keep-states`) follow their corpora.
    let states: Vec<_> = args.shards.iter().map(|s| states_path(s)).collect();
    match states.iter().filter(|p| p.exists()).count() {
        0 => {}
        n if n == states.len() => {
            let added = merge_states(&states_path(&args.into), &states)?;
            eprintln!("{added} responses' guard states added to {}", states_path(&args.into).display());
        }
        n => eprintln!(
            "warning: only {n} of the {} shards have guard states beside them; their states are not merged \
             (`train-mrm --on-guard` computes what is missing)",
            states.len()
        ),
    }
    super::label::print_corpus(&args.into)
}
