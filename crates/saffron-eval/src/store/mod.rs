//! The run store: one directory per experiment grid, holding the resolved
//! configuration (`run.json`) and an append-only `records.jsonl` with one
//! record per (cell, prompt), flushed as each completes. A killed run
//! restarted with the same command skips finished records; a directory
//! holding another configuration, an unreadable one, or records without
//! one is refused unless started anew. One process writes a directory at a
//! time ([`RunLock`]); a key is never in a file twice ([`lines`]).

mod lines;
mod lock;
mod merge;

use std::collections::HashSet;
use std::fs::File;
use std::path::Path;

use serde::de::DeserializeOwned;
use serde::Serialize;

pub use lines::{append_record, open_records, read_records, Duplicates};
pub use lock::{RunLock, LOCK_FILE};
pub use merge::{merge_file, merge_runs};

use crate::fluency::FLUENCY_FILE;
use crate::EvalError;

pub const CONFIG_FILE: &str = "run.json";
pub const RECORDS_FILE: &str = "records.jsonl";

/// What makes a record unique within a run.
pub trait Keyed {
    fn key(&self) -> (String, String);
}

/// What to do with a directory that holds another configuration, an
/// unreadable one, records without one, or records that cannot be read.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum IfDifferent {
    /// Refuse it, saying what differs.
    #[default]
    Refuse,
    /// Move its files aside (`*.replaced-<time>`, never deleted) and start
    /// over (`--force-new`).
    StartOver,
}

/// How a run directory is opened.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct StoreOptions {
    pub if_different: IfDifferent,
    pub duplicates: Duplicates,
}

/// An open, locked run directory.
pub struct RunStore {
    lock: RunLock,
    file: File,
    done: HashSet<(String, String)>,
    repaired: usize,
}

impl RunStore {
    /// Locks `dir` and opens it for `config`: a new directory gets the
    /// configuration; an existing one must hold the same (see
    /// [`IfDifferent`]). Returns the records already there, each key once
    /// (see [`Duplicates`]); a torn last line is cut off.
    pub fn open<C: Serialize, R: DeserializeOwned + Keyed>(
        dir: &Path,
        config: &C,
        options: StoreOptions,
    ) -> Result<(RunStore, Vec<R>), EvalError> {
        let wanted = serde_json::to_value(config)
            .map_err(|e| EvalError::malformed(&dir.join(CONFIG_FILE).display().to_string(), "the configuration", e))?;
        let lock = RunLock::acquire(dir)?;
        claim_dir(&lock, &wanted, options.if_different)?;
        let (file, records, repaired) = open_records::<R>(&dir.join(RECORDS_FILE), options.duplicates)?;
        let done = records.iter().map(Keyed::key).collect();
        Ok((RunStore { lock, file, done, repaired }, records))
    }

    pub fn dir(&self) -> &Path {
        self.lock.dir()
    }

    /// Repeated records a [`Duplicates::Repair`] open dropped.
    pub fn repaired(&self) -> usize {
        self.repaired
    }

    pub fn is_done(&self, cell: &str, prompt: &str) -> bool {
        self.done.contains(&(cell.to_owned(), prompt.to_owned()))
    }

    /// Appends one record and syncs it to disk; a record whose key is
    /// already here is refused (it would be counted twice).
    pub fn append<R: Serialize + Keyed>(&mut self, record: &R) -> Result<(), EvalError> {
        let key = record.key();
        if self.done.contains(&key) {
            return Err(EvalError::AlreadyRecorded { dir: self.dir().to_path_buf(), key });
        }
        append_record(&mut self.file, &self.lock.dir().join(RECORDS_FILE), record)?;
        self.done.insert(key);
        Ok(())
    }
}

/// Makes the locked directory a run directory of `wanted`: a new one gets
/// it as its `run.json`; an existing one must hold the same (else refused,
/// or its files moved aside, as `if_different` says).
fn claim_dir(lock: &RunLock, wanted: &serde_json::Value, if_different: IfDifferent) -> Result<(), EvalError> {
    let dir = lock.dir();
    let records = dir.join(RECORDS_FILE);
    let problem = match read_config(dir) {
        Ok(Some(existing)) if existing == *wanted => {
            let unreadable = lines::read_lines::<serde_json::Value>(&records).err();
            match (if_different, unreadable) {
                (IfDifferent::StartOver, Some(e)) => Some(e),
                _ => return Ok(()),
            }
        }
        Ok(Some(existing)) => {
            Some(EvalError::ConfigChanged { dir: dir.to_path_buf(), changed: changed_fields(&existing, wanted, "") })
        }
        Ok(None) if records.metadata().is_ok_and(|m| m.len() > 0) => {
            Some(EvalError::RecordsWithoutConfig { dir: dir.to_path_buf() })
        }
        Ok(None) => None,
        Err(e) => Some(e),
    };
    if let Some(problem) = problem {
        if if_different == IfDifferent::Refuse {
            return Err(problem);
        }
        move_aside(dir)?;
    }
    let config_path = dir.join(CONFIG_FILE);
    let text = serde_json::to_string_pretty(wanted)
        .map_err(|e| EvalError::malformed(&config_path.display().to_string(), "the configuration", e))?;
    let partial = config_path.with_extension("partial");
    std::fs::write(&partial, text).map_err(EvalError::io("write", &partial))?;
    std::fs::rename(&partial, &config_path).map_err(EvalError::io("write", &config_path))
}

/// Renames the run files of `dir` to `*.replaced-<unix time>`.
fn move_aside(dir: &Path) -> Result<(), EvalError> {
    let stamp = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_secs());
    for file in [CONFIG_FILE, RECORDS_FILE, FLUENCY_FILE] {
        let from = dir.join(file);
        if from.exists() {
            let to = dir.join(format!("{file}.replaced-{stamp}"));
            std::fs::rename(&from, &to).map_err(EvalError::io("move aside", &from))?;
        }
    }
    Ok(())
}

/// The fields (as `grid.length`) in which two configurations differ.
fn changed_fields(old: &serde_json::Value, new: &serde_json::Value, prefix: &str) -> Vec<String> {
    let (Some(old), Some(new)) = (old.as_object(), new.as_object()) else {
        return vec![prefix.trim_end_matches('.').to_owned()];
    };
    let keys: std::collections::BTreeSet<&String> = old.keys().chain(new.keys()).collect();
    let mut changed = Vec::new();
    for key in keys {
        match (old.get(key), new.get(key)) {
            (Some(a), Some(b)) if a == b => {}
            (Some(a), Some(b)) if prefix.is_empty() => changed.extend(changed_fields(a, b, &format!("{key}."))),
            _ => changed.push(format!("{prefix}{key}")),
        }
    }
    changed
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

#[cfg(test)]
mod tests {
    use std::fs::OpenOptions;
    use std::io::Write;
    use std::path::PathBuf;

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

    fn open(dir: &Path, config: &serde_json::Value, options: StoreOptions) -> Result<(RunStore, Vec<Rec>), EvalError> {
        RunStore::open::<_, Rec>(dir, config, options)
    }

    const START_OVER: StoreOptions =
        StoreOptions { if_different: IfDifferent::StartOver, duplicates: Duplicates::Refuse };

    fn moved_aside(dir: &Path, file: &str) -> usize {
        let prefix = format!("{file}.replaced-");
        std::fs::read_dir(dir)
            .unwrap()
            .filter(|e| e.as_ref().unwrap().file_name().to_string_lossy().starts_with(&prefix))
            .count()
    }

    #[test]
    fn resumes_without_losing_or_duplicating_and_refuses_a_changed_config() {
        let dir = tempfile::tempdir().unwrap();
        let config = serde_json::json!({ "grid": { "widths": [4, 8], "seeds": [0] }, "policy_sha256": "a" });
        let (mut store, old) = open(dir.path(), &config, StoreOptions::default()).unwrap();
        assert!(old.is_empty());
        store.append(&rec("c1", "p1", 1)).unwrap();
        store.append(&rec("c1", "p2", 2)).unwrap();
        let err = store.append(&rec("c1", "p2", 9)).unwrap_err().to_string();
        assert!(err.contains("cell c1, prompt p2 is already in"), "{err}");
        drop(store);
        // Killed in the middle of a record.
        let mut f = OpenOptions::new().append(true).open(dir.path().join(RECORDS_FILE)).unwrap();
        f.write_all(b"{\"cell\":\"c2\",\"pro").unwrap();
        drop(f);
        let (mut store, old) = open(dir.path(), &config, StoreOptions::default()).unwrap();
        assert_eq!(old, vec![rec("c1", "p1", 1), rec("c1", "p2", 2)]);
        assert!(store.is_done("c1", "p2") && !store.is_done("c2", "p1"));
        store.append(&rec("c2", "p1", 3)).unwrap();
        drop(store);
        assert_eq!(read_records::<Rec>(&dir.path().join(RECORDS_FILE)).unwrap().len(), 3);

        // Another grid, or a model file whose sha256 changed: refused, naming what differs.
        let changed = serde_json::json!({ "grid": { "widths": [4, 16], "seeds": [0] }, "policy_sha256": "b" });
        let err = open(dir.path(), &changed, StoreOptions::default()).err().unwrap().to_string();
        assert!(err.contains("(grid.widths, policy_sha256 differ)") && err.contains("--force-new"), "{err}");
        std::fs::write(dir.path().join(FLUENCY_FILE), "{}\n").unwrap();
        let (_, old) = open(dir.path(), &changed, START_OVER).unwrap();
        assert!(old.is_empty());
        for file in [CONFIG_FILE, RECORDS_FILE, FLUENCY_FILE] {
            assert_eq!(moved_aside(dir.path(), file), 1, "{file} moved aside, not deleted");
        }
    }

    /// A directory without run.json but with records, an unreadable
    /// run.json or an unreadable record: refused, and --force-new always
    /// gets past it.
    #[test]
    fn an_unexplained_or_unreadable_directory_is_refused_unless_started_over() {
        let config = serde_json::json!({ "widths": [4] });
        let good = serde_json::to_string(&rec("c1", "p1", 1)).unwrap();
        let cases: [(&str, Option<&str>, String); 3] = [
            ("holds records but no run.json", None, format!("{good}\n")),
            ("run.json: its JSON is malformed", Some("{not json"), format!("{good}\n")),
            ("records.jsonl: line 2 is malformed", Some("{\"widths\": [4]}"), format!("{good}\nnot json\n{good}\n")),
        ];
        for (needle, config_text, records) in cases {
            let dir = tempfile::tempdir().unwrap();
            if let Some(text) = config_text {
                std::fs::write(dir.path().join(CONFIG_FILE), text).unwrap();
            }
            std::fs::write(dir.path().join(RECORDS_FILE), &records).unwrap();
            let err = open(dir.path(), &config, StoreOptions::default()).err().unwrap();
            assert!(crate::error::chain(&err).contains(needle), "{needle}: {}", crate::error::chain(&err));
            let (_, old) = open(dir.path(), &config, START_OVER).unwrap();
            assert!(old.is_empty(), "{needle}");
            assert_eq!(moved_aside(dir.path(), RECORDS_FILE), 1, "{needle}");
        }
    }

    /// A key written twice (a copied line, an old concurrent run) is
    /// refused with its lines, or repaired keeping the first.
    #[test]
    fn repeated_records_are_refused_or_repaired() {
        let dir = tempfile::tempdir().unwrap();
        let config = serde_json::json!({ "widths": [4] });
        drop(open(dir.path(), &config, StoreOptions::default()).unwrap());
        let lines: Vec<String> = [rec("c1", "p1", 1), rec("c1", "p2", 2), rec("c1", "p1", 3), rec("c1", "p2", 4)]
            .iter()
            .map(|r| serde_json::to_string(r).unwrap() + "\n")
            .collect();
        std::fs::write(dir.path().join(RECORDS_FILE), lines.concat()).unwrap();
        let err = open(dir.path(), &config, StoreOptions::default()).err().unwrap().to_string();
        assert!(
            err.contains("holds 2 repeated record(s)") && err.contains("cell c1, prompt p1, at lines 1 and 3"),
            "{err}"
        );
        let err = read_records::<Rec>(&dir.path().join(RECORDS_FILE)).unwrap_err().to_string();
        assert!(err.contains("--repair"), "the report refuses too: {err}");
        let repair = StoreOptions { duplicates: Duplicates::Repair, ..StoreOptions::default() };
        let (store, old) = open(dir.path(), &config, repair).unwrap();
        assert_eq!((old, store.repaired()), (vec![rec("c1", "p1", 1), rec("c1", "p2", 2)], 2));
        assert_eq!(std::fs::read_to_string(dir.path().join(RECORDS_FILE)).unwrap(), lines[..2].concat());
    }

    #[test]
    fn one_writer_at_a_time() {
        let dir = tempfile::tempdir().unwrap();
        let config = serde_json::json!({ "widths": [4] });
        let (store, _) = open(dir.path(), &config, StoreOptions::default()).unwrap();
        let err = open(dir.path(), &config, StoreOptions::default()).err().unwrap().to_string();
        assert!(err.contains("in use by another saffron process"), "{err}");
        assert!(RunLock::acquire(dir.path()).is_err(), "merge and fluency take the same lock");
        drop(store);
        open(dir.path(), &config, StoreOptions::default()).unwrap();
    }

    /// Writes a run directory with `config` and `records`.
    fn run_dir(root: &Path, name: &str, config: &serde_json::Value, records: &[Rec]) -> PathBuf {
        let dir = root.join(name);
        let (mut store, _) = open(&dir, config, StoreOptions::default()).unwrap();
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
        let merge = |from: &[PathBuf]| merge_runs::<Rec>(&RunLock::acquire(&into).unwrap(), from);
        assert_eq!(merge(&[a.clone(), b.clone()]).unwrap(), 4);
        let records = read_records::<Rec>(&into.join(RECORDS_FILE)).unwrap();
        assert_eq!(records, vec![rec("c1", "p1", 1), rec("c2", "p1", 2), rec("c1", "p2", 3), rec("c3", "p1", 4)]);
        let text = std::fs::read_to_string(into.join(RECORDS_FILE)).unwrap();
        assert!(text.ends_with(&format!("\n{exact}\n")), "copied as written: {text}");
        assert_eq!(read_config(&into).unwrap(), Some(config.clone()));
        assert_eq!(merge(&[a.clone(), b]).unwrap(), 0, "merging again adds nothing");

        let other = run_dir(root.path(), "other", &serde_json::json!({ "widths": [4] }), &[rec("c9", "p9", 9)]);
        for from in [vec![a.clone(), other.clone()], vec![other]] {
            let err = merge(&from).unwrap_err().to_string();
            assert!(err.contains("different configurations"), "{err}");
        }
        let err = merge(&[root.path().join("missing")]).unwrap_err().to_string();
        assert!(err.contains("not a run directory"), "{err}");
        assert_eq!(read_records::<Rec>(&into.join(RECORDS_FILE)).unwrap().len(), 4, "a refused merge writes nothing");
        let _held = RunLock::acquire(&into).unwrap();
        assert!(RunLock::acquire(&into).is_err(), "a merge target is locked like a run");
    }
}
