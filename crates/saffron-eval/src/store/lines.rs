//! JSON Lines files of keyed records (`records.jsonl`, `fluency.jsonl`):
//! appended one synced line at a time, read back with a torn last line
//! (a crash mid-write) cut off, and unique by key: a file holding a key
//! twice is refused, or repaired by keeping the first.

use std::collections::HashMap;
use std::fs::{File, OpenOptions};
use std::io::{BufRead, BufReader, Write};
use std::path::Path;

use serde::de::DeserializeOwned;
use serde::Serialize;

use super::Keyed;
use crate::EvalError;

/// What to do with a key found twice in a file.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum Duplicates {
    /// Refuse the file, naming the first repeated key and its lines.
    #[default]
    Refuse,
    /// Keep the first record of each key, rewrite the file without the
    /// others, and say how many went.
    Repair,
}

/// A records file opened for appending, with the complete records already
/// in it (each key once) and how many repeated ones a repair dropped; a
/// torn last line is cut off.
pub fn open_records<R: DeserializeOwned + Keyed>(
    path: &Path,
    duplicates: Duplicates,
) -> Result<(File, Vec<R>, usize), EvalError> {
    let (mut lines, valid_bytes) = read_lines::<R>(path)?;
    let dropped = match first_repeat(&lines) {
        None => 0,
        Some((first, again)) if duplicates == Duplicates::Refuse => {
            return Err(EvalError::DuplicateRecords {
                path: path.to_path_buf(),
                count: lines.len() - unique_count(&lines),
                key: lines[again].1.key(),
                lines: (first + 1, again + 1),
            })
        }
        Some(_) => {
            let before = lines.len();
            let mut seen = std::collections::HashSet::new();
            lines.retain(|(_, record)| seen.insert(record.key()));
            rewrite(path, &lines)?;
            before - lines.len()
        }
    };
    let file = OpenOptions::new().create(true).append(true).open(path).map_err(EvalError::io("open", path))?;
    if dropped == 0 {
        file.set_len(valid_bytes).map_err(EvalError::io("cut the torn last line of", path))?;
    }
    Ok((file, lines.into_iter().map(|(_, record)| record).collect(), dropped))
}

/// The complete records of a records file, each key once (else an error
/// naming the first repeated key).
pub fn read_records<R: DeserializeOwned + Keyed>(path: &Path) -> Result<Vec<R>, EvalError> {
    let (lines, _) = read_lines::<R>(path)?;
    if let Some((first, again)) = first_repeat(&lines) {
        return Err(EvalError::DuplicateRecords {
            path: path.to_path_buf(),
            count: lines.len() - unique_count(&lines),
            key: lines[again].1.key(),
            lines: (first + 1, again + 1),
        });
    }
    Ok(lines.into_iter().map(|(_, record)| record).collect())
}

/// The lines (0-based) of the first key that appears twice.
fn first_repeat<R: Keyed>(lines: &[(String, R)]) -> Option<(usize, usize)> {
    let mut first = HashMap::new();
    lines.iter().enumerate().find_map(|(i, (_, r))| first.insert(r.key(), i).map(|earlier| (earlier, i)))
}

fn unique_count<R: Keyed>(lines: &[(String, R)]) -> usize {
    lines.iter().map(|(_, r)| r.key()).collect::<std::collections::HashSet<_>>().len()
}

/// Replaces `path` with `lines`, atomically (a temporary file, renamed).
fn rewrite<R>(path: &Path, lines: &[(String, R)]) -> Result<(), EvalError> {
    let partial = path.with_extension("repair");
    let text: String = lines.iter().map(|(line, _)| format!("{line}\n")).collect();
    std::fs::write(&partial, text).map_err(EvalError::io("write", &partial))?;
    std::fs::rename(&partial, path).map_err(EvalError::io("write", path))
}

/// Writes `record` as one JSON line to `file` (the records file at `path`)
/// and syncs it to disk.
pub fn append_record<R: Serialize>(file: &mut File, path: &Path, record: &R) -> Result<(), EvalError> {
    let line =
        serde_json::to_string(record).map_err(|e| EvalError::malformed(&path.display().to_string(), "a record", e))?;
    append_line(file, path, &line)
}

/// Writes one line (a serialized record) to `file` and syncs it to disk.
pub(crate) fn append_line(file: &mut File, path: &Path, line: &str) -> Result<(), EvalError> {
    file.write_all(format!("{line}\n").as_bytes()).and_then(|_| file.sync_data()).map_err(EvalError::io("write", path))
}

/// The complete lines of a records file (without their newline), each
/// with its record, and the length they take; a torn last line is left out.
pub(crate) fn read_lines<R: DeserializeOwned>(path: &Path) -> Result<(Vec<(String, R)>, u64), EvalError> {
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
            .map_err(|e| EvalError::malformed(&path.display().to_string(), format!("line {}", lines.len() + 1), e))?;
        lines.push((line, record));
        valid += n as u64;
    }
    Ok((lines, valid))
}
