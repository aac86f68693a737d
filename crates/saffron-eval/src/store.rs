//! The run store: one directory per experiment grid, holding the resolved
//! configuration (`run.json`) and an append-only `records.jsonl` with one
//! record per (cell, prompt), flushed as each completes. A killed run
//! restarted with the same command skips finished records; a run directory
//! made with another configuration is refused unless started anew.

use std::collections::HashSet;
use std::fs::{File, OpenOptions};
use std::io::{BufRead, BufReader, Write};
use std::path::{Path, PathBuf};

use serde::de::DeserializeOwned;
use serde::Serialize;

use crate::EvalError;

pub const CONFIG_FILE: &str = "run.json";
pub const RECORDS_FILE: &str = "records.jsonl";

/// What makes a record unique within a run.
pub trait Keyed {
    fn key(&self) -> (String, String);
}

/// An open run directory.
pub struct RunStore {
    dir: PathBuf,
    file: File,
    done: HashSet<(String, String)>,
}

impl RunStore {
    /// Opens `dir` for `config`. A new directory gets the configuration; an
    /// existing one must hold the same (else `EvalError::ConfigChanged`,
    /// unless `force_new`, which moves the old records aside). A torn last
    /// line (a crash mid-write) is cut off.
    pub fn open<C: Serialize, R: DeserializeOwned + Keyed>(
        dir: &Path,
        config: &C,
        force_new: bool,
    ) -> Result<(RunStore, Vec<R>), EvalError> {
        let wanted = serde_json::to_value(config)
            .map_err(|e| EvalError::malformed(&dir.join(CONFIG_FILE).display().to_string(), "the configuration", e))?;
        claim_dir(dir, &wanted, force_new)?;
        let (file, records) = open_records::<R>(&dir.join(RECORDS_FILE))?;
        let done = records.iter().map(Keyed::key).collect();
        Ok((RunStore { dir: dir.to_path_buf(), file, done }, records))
    }

    pub fn dir(&self) -> &Path {
        &self.dir
    }

    pub fn is_done(&self, cell: &str, prompt: &str) -> bool {
        self.done.contains(&(cell.to_owned(), prompt.to_owned()))
    }

    /// Appends one record and syncs it to disk.
    pub fn append<R: Serialize + Keyed>(&mut self, record: &R) -> Result<(), EvalError> {
        append_record(&mut self.file, &self.dir.join(RECORDS_FILE), record)?;
        self.done.insert(record.key());
        Ok(())
    }
}

/// Makes `dir` a run directory of `wanted`: a new one gets it as its
/// `run.json`; an existing one must hold the same (else
/// `EvalError::ConfigChanged`, unless `force_new`, which moves the old
/// configuration and records aside).
fn claim_dir(dir: &Path, wanted: &serde_json::Value, force_new: bool) -> Result<(), EvalError> {
    std::fs::create_dir_all(dir).map_err(EvalError::io("create the run directory", dir))?;
    let config_path = dir.join(CONFIG_FILE);
    if let Some(existing) = read_config(dir)? {
        if existing == *wanted {
            return Ok(());
        }
        if !force_new {
            return Err(EvalError::ConfigChanged { dir: dir.to_path_buf() });
        }
        let stamp = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_secs());
        for file in [CONFIG_FILE, RECORDS_FILE] {
            let from = dir.join(file);
            if from.exists() {
                let to = dir.join(format!("{file}.replaced-{stamp}"));
                std::fs::rename(&from, &to).map_err(EvalError::io("move aside", &from))?;
            }
        }
    }
    let text = serde_json::to_string_pretty(wanted)
        .map_err(|e| EvalError::malformed(&config_path.display().to_string(), "the configuration", e))?;
    let partial = config_path.with_extension("partial");
    std::fs::write(&partial, text).map_err(EvalError::io("write", &partial))?;
    std::fs::rename(&partial, &config_path).map_err(EvalError::io("write", &config_path))
}

/// The configuration in a run directory's `run.json`, if it has one.
pub fn read_config(dir: &Path) -> Result<Option<serde_json::Value>, EvalError> {
    let path = dir.join(CONFIG_FILE);
    if !path.exists() {
        return Ok(None);
    }
    let text = std::fs::read_to_string(&path).map_err(EvalError::io("read", &path))?;
    serde_json::from_str(&text).map(Some).map_err(|e| EvalError::malformed(&path.display().to_string(), "its JSON", e))
}

/// Copies the records of the run directories `from` (shards of one grid,
/// run apart with `saffron eval --shard`) into the run directory `into`,
/// which is made if missing. All must hold the same configuration, `into`
/// too if it has one. A record `into` already holds (same cell and prompt)
/// is skipped, so merging twice adds nothing; records are copied as
/// written, byte for byte. Returns the records added.
pub fn merge_runs<R: DeserializeOwned + Keyed>(into: &Path, from: &[PathBuf]) -> Result<usize, EvalError> {
    let config_of = |dir: &Path| {
        read_config(dir)?.ok_or_else(|| {
            EvalError::Merge(format!("{} has no {CONFIG_FILE}: not a run directory of saffron eval", dir.display()))
        })
    };
    let Some(first) = from.first() else {
        return Err(EvalError::Merge("name at least one run directory to merge".into()));
    };
    let config = config_of(first)?;
    let others = from[1..].iter().map(PathBuf::as_path).chain(read_config(into)?.is_some().then_some(into));
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
    claim_dir(into, &config, false)?;
    let files: Vec<PathBuf> = from.iter().map(|dir| dir.join(RECORDS_FILE)).collect();
    merge_file::<R>(&into.join(RECORDS_FILE), &files)
}

/// Appends to the JSONL file `into` (made if missing; a torn last line is
/// cut off) every record of the files `from` (missing ones hold none) whose
/// key it lacks, copied as written: parsing and serializing again could
/// round floats. Returns the records added.
pub fn merge_file<R: DeserializeOwned + Keyed>(into: &Path, from: &[PathBuf]) -> Result<usize, EvalError> {
    let (mut file, records) = open_records::<R>(into)?;
    let mut done: HashSet<(String, String)> = records.iter().map(Keyed::key).collect();
    let mut added = 0;
    for path in from {
        for (line, record) in read_lines::<R>(path)?.0 {
            if done.insert(record.key()) {
                append_line(&mut file, into, &line)?;
                added += 1;
            }
        }
    }
    Ok(added)
}

/// Writes `record` as one JSON line to `file` (the records file at `path`)
/// and syncs it to disk.
pub fn append_record<R: Serialize>(file: &mut File, path: &Path, record: &R) -> Result<(), EvalError> {
    let line =
        serde_json::to_string(record).map_err(|e| EvalError::malformed(&path.display().to_string(), "a record", e))?;
    append_line(file, path, &line)
}

/// Writes one line (a serialized record) to `file` and syncs it to disk.
fn append_line(file: &mut File, path: &Path, line: &str) -> Result<(), EvalError> {
    file.write_all(format!("{line}\n").as_bytes()).and_then(|_| file.sync_data()).map_err(EvalError::io("write", path))
}

/// A records file opened for appending, with the complete records already
/// in it; a torn last line (a crash mid-write) is cut off.
pub fn open_records<R: DeserializeOwned>(path: &Path) -> Result<(File, Vec<R>), EvalError> {
    let (records, valid_bytes) = read_records::<R>(path)?;
    let file = OpenOptions::new().create(true).append(true).open(path).map_err(EvalError::io("open", path))?;
    file.set_len(valid_bytes).map_err(EvalError::io("cut the torn last line of", path))?;
    Ok((file, records))
}

/// The complete records of a records file and the length they take.
pub fn read_records<R: DeserializeOwned>(path: &Path) -> Result<(Vec<R>, u64), EvalError> {
    let (lines, valid) = read_lines(path)?;
    Ok((lines.into_iter().map(|(_, record)| record).collect(), valid))
}

/// The complete lines of a records file (without their newline), each
/// with its record, and the length they take; a torn last line is left out.
fn read_lines<R: DeserializeOwned>(path: &Path) -> Result<(Vec<(String, R)>, u64), EvalError> {
    if !path.exists() {
        return Ok((Vec::new(), 0));
    }
    let mut reader = BufReader::new(File::open(path).map_err(EvalError::io("read", path))?);
    let (mut lines, mut valid) = (Vec::new(), 0u64);
    loop {
        let mut line = String::new();
        let n = reader.read_line(&mut line).map_err(EvalError::io("read", path))?;
        if n == 0 || !line.ends_with('\n') {
            break;
        }
        line.pop();
        let record = serde_json::from_str(&line)
            .map_err(|e| EvalError::malformed(&path.display().to_string(), format!("record {}", lines.len() + 1), e))?;
        lines.push((line, record));
        valid += n as u64;
    }
    Ok((lines, valid))
}

#[cfg(test)]
mod tests {
    use serde::Deserialize;

    use super::*;

    #[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
    struct Rec {
        cell: String,
        prompt: String,
        value: u32,
    }

    impl Keyed for Rec {
        fn key(&self) -> (String, String) {
            (self.cell.clone(), self.prompt.clone())
        }
    }

    fn rec(cell: &str, prompt: &str, value: u32) -> Rec {
        Rec { cell: cell.into(), prompt: prompt.into(), value }
    }

    #[test]
    fn resumes_without_losing_or_duplicating_and_refuses_a_changed_config() {
        let dir = tempfile::tempdir().unwrap();
        let config = serde_json::json!({ "widths": [4, 8] });
        let (mut store, old) = RunStore::open::<_, Rec>(dir.path(), &config, false).unwrap();
        assert!(old.is_empty());
        store.append(&rec("c1", "p1", 1)).unwrap();
        store.append(&rec("c1", "p2", 2)).unwrap();
        drop(store);
        // Killed in the middle of a record.
        let mut f = OpenOptions::new().append(true).open(dir.path().join(RECORDS_FILE)).unwrap();
        f.write_all(b"{\"cell\":\"c2\",\"pro").unwrap();
        drop(f);
        let (mut store, old) = RunStore::open::<_, Rec>(dir.path(), &config, false).unwrap();
        assert_eq!(old, vec![rec("c1", "p1", 1), rec("c1", "p2", 2)]);
        assert!(store.is_done("c1", "p2") && !store.is_done("c2", "p1"));
        store.append(&rec("c2", "p1", 3)).unwrap();
        drop(store);
        let (records, _) = read_records::<Rec>(&dir.path().join(RECORDS_FILE)).unwrap();
        assert_eq!(records.len(), 3);

        let changed = serde_json::json!({ "widths": [4, 16] });
        let err = RunStore::open::<_, Rec>(dir.path(), &changed, false).err().unwrap();
        assert!(err.to_string().contains("--force-new"), "{err}");
        let (_, old) = RunStore::open::<_, Rec>(dir.path(), &changed, true).unwrap();
        assert!(old.is_empty());
        let moved = std::fs::read_dir(dir.path())
            .unwrap()
            .filter(|e| e.as_ref().unwrap().file_name().to_string_lossy().starts_with("records.jsonl.replaced-"));
        assert_eq!(moved.count(), 1);
    }

    /// Writes a run directory with `config` and `records`.
    fn run_dir(root: &Path, name: &str, config: &serde_json::Value, records: &[Rec]) -> PathBuf {
        let dir = root.join(name);
        let (mut store, _) = RunStore::open::<_, Rec>(&dir, config, false).unwrap();
        for r in records {
            store.append(r).unwrap();
        }
        dir
    }

    #[test]
    fn merging_shards_keeps_every_record_once_and_refuses_other_configs() {
        let root = tempfile::tempdir().unwrap();
        let config = serde_json::json!({ "widths": [4, 8] });
        let a = run_dir(root.path(), "a", &config, &[rec("c1", "p1", 1), rec("c2", "p1", 2)]);
        let b = run_dir(root.path(), "b", &config, &[rec("c1", "p2", 3), rec("c1", "p1", 1)]);
        // A field whose float a parse and re-serialization would round, and a torn line.
        let exact = r#"{"cell":"c3","prompt":"p1","value":4,"wall_seconds":3.6526669590000003}"#;
        let mut f = OpenOptions::new().append(true).open(b.join(RECORDS_FILE)).unwrap();
        f.write_all(format!("{exact}\n{{\"cell\":\"c4").as_bytes()).unwrap();
        drop(f);
        let into = root.path().join("all");
        assert_eq!(merge_runs::<Rec>(&into, &[a.clone(), b.clone()]).unwrap(), 4);
        let (records, _) = read_records::<Rec>(&into.join(RECORDS_FILE)).unwrap();
        assert_eq!(records, vec![rec("c1", "p1", 1), rec("c2", "p1", 2), rec("c1", "p2", 3), rec("c3", "p1", 4)]);
        let text = std::fs::read_to_string(into.join(RECORDS_FILE)).unwrap();
        assert!(text.ends_with(&format!("\n{exact}\n")), "copied as written: {text}");
        assert_eq!(read_config(&into).unwrap(), Some(config.clone()));
        assert_eq!(merge_runs::<Rec>(&into, &[a.clone(), b]).unwrap(), 0, "merging again adds nothing");

        let other = run_dir(root.path(), "other", &serde_json::json!({ "widths": [4] }), &[rec("c9", "p9", 9)]);
        for from in [vec![a.clone(), other.clone()], vec![other]] {
            let err = merge_runs::<Rec>(&into, &from).unwrap_err().to_string();
            assert!(err.contains("different configurations"), "{err}");
        }
        let err = merge_runs::<Rec>(&into, &[root.path().join("missing")]).unwrap_err().to_string();
        assert!(err.contains("not a run directory"), "{err}");
        assert_eq!(read_records::<Rec>(&into.join(RECORDS_FILE)).unwrap().0.len(), 4, "a refused merge writes nothing");
    }
}
