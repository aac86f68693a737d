//! `saffron merge`: the shards of one grid (run apart with `saffron eval
//! --shard`) joined into one run directory.

use std::collections::HashSet;
use std::path::{Path, PathBuf};

use serde::de::DeserializeOwned;

use super::lines::{append_line, open_records, read_lines, Duplicates};
use super::{claim_dir, read_config, IfDifferent, Keyed, RunLock, CONFIG_FILE, RECORDS_FILE};
use crate::EvalError;

/// Copies the records of the run directories `from` into the run directory
/// `into` (locked by the caller, made if missing). All must hold the same
/// configuration, `into` too if it has one. A record `into` already holds
/// (same cell and prompt) is skipped, so merging twice adds nothing;
/// records are copied as written, byte for byte. Returns the records added.
pub fn merge_runs<R: DeserializeOwned + Keyed>(into: &RunLock, from: &[PathBuf]) -> Result<usize, EvalError> {
    let config_of = |dir: &Path| {
        read_config(dir)?.ok_or_else(|| {
            EvalError::Merge(format!("{} has no {CONFIG_FILE}: not a run directory of saffron eval", dir.display()))
        })
    };
    let Some(first) = from.first() else {
        return Err(EvalError::Merge("name at least one run directory to merge".into()));
    };
    let config = config_of(first)?;
    let target = into.dir();
    let others = from[1..].iter().map(PathBuf::as_path).chain(read_config(target)?.is_some().then_some(target));
    for dir in others {
        if config_of(dir)? != config {
            return Err(EvalError::Merge(format!(
                "{} and {} hold runs of different configurations (grid, models, data or saffron version); \
                 only shards of one grid merge",
                first.display(),
                dir.display()
            )));
        }
    }
    claim_dir(into, &config, IfDifferent::Refuse)?;
    merge_file::<R>(into, RECORDS_FILE, from)
}

/// Appends to the JSONL file `name` of the run directory `into` (made if
/// missing; a torn last line is cut off) every record of the same file in
/// the directories `from` (missing ones hold none) whose key it lacks,
/// copied as written: parsing and serializing again could round floats.
/// Returns the records added.
pub fn merge_file<R: DeserializeOwned + Keyed>(
    into: &RunLock,
    name: &str,
    from: &[PathBuf],
) -> Result<usize, EvalError> {
    let target = into.dir().join(name);
    let (mut file, records, _) = open_records::<R>(&target, Duplicates::Refuse)?;
    let mut done: HashSet<(String, String)> = records.iter().map(Keyed::key).collect();
    let mut added = 0;
    for dir in from {
        for (line, record) in read_lines::<R>(&dir.join(name))?.0 {
            if done.insert(record.key()) {
                append_line(&mut file, &target, &line)?;
                added += 1;
            }
        }
    }
    Ok(added)
}
