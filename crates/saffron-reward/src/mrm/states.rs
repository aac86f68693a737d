//! A probe guard's hidden states at every node of a corpus, kept while
//! labelling (`saffron label --keep-states`), so that an MRM on the guard's
//! own state (`saffron train-mrm --on-guard`) needs no second pass of the
//! guard: the state the PRM read for the prefix `response[..j]` is the
//! feature of node `j`, whose label is `rewards[j]`.
//!
//! One file beside the corpus (`<corpus>.states`): a JSON header line, then
//! one binary record per response, appended as each is labelled —
//! `u32` key length, the key (JSON `[prompt_id, sample]`), `u32` rows, then
//! `rows × dim` little-endian `f32`. A torn last record (a crash mid-write)
//! is cut off when the file is opened again; a key written twice (a crash
//! between the states and the corpus line) is read as its last record.

use std::collections::HashMap;
use std::fs::{File, OpenOptions};
use std::io::{BufRead, BufReader, Read, Write};
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use super::corpus::{bad, io};
use crate::RewardError;

const KIND: &str = "saffron-guard-states";

/// The file next to a corpus that holds its guard states.
pub fn states_path(corpus: &Path) -> PathBuf {
    let mut name = corpus.as_os_str().to_owned();
    name.push(".states");
    PathBuf::from(name)
}

/// Whose states they are; states of another guard or input are refused.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct StatesHeader {
    pub kind: String,
    /// The guard as named, and what identifies its weights.
    pub guard: String,
    pub guard_sha256: String,
    pub backbone_sha256: String,
    pub dim: usize,
    /// How the guard reads (prompt, response).
    pub input: super::separate::SeparateInput,
}

impl StatesHeader {
    pub fn new(
        guard: (&str, &str),
        backbone_sha256: &str,
        dim: usize,
        input: super::separate::SeparateInput,
    ) -> StatesHeader {
        StatesHeader {
            kind: KIND.into(),
            guard: guard.0.into(),
            guard_sha256: guard.1.into(),
            backbone_sha256: backbone_sha256.into(),
            dim,
            input,
        }
    }
}

/// The states of one response: row `j` is the state at node `j`.
pub type NodeStates = Vec<Vec<f32>>;

/// Appends the states of labelled responses.
pub struct StatesWriter {
    path: PathBuf,
    file: File,
    dim: usize,
}

impl StatesWriter {
    /// Opens `path` for appending: a new file gets `header`, an existing one
    /// must carry the same (else it is refused) and loses a torn last record.
    pub fn open(path: &Path, header: &StatesHeader) -> Result<StatesWriter, RewardError> {
        if path.exists() {
            let states = read_states(path)?;
            if &states.header != header {
                return Err(RewardError::StatesMismatch { path: path.to_path_buf() });
            }
            let file = OpenOptions::new().write(true).open(path).map_err(|e| io(path, e))?;
            file.set_len(states.valid_bytes).map_err(|e| io(path, e))?;
        } else {
            let mut line = serde_json::to_string(header).map_err(|e| bad(path, e))?;
            line.push('\n');
            std::fs::write(path, line).map_err(|e| io(path, e))?;
        }
        let file = OpenOptions::new().append(true).open(path).map_err(|e| io(path, e))?;
        Ok(StatesWriter { path: path.to_path_buf(), file, dim: header.dim })
    }

    /// Appends the states of the response `(prompt_id, sample)`, one row
    /// per node, and flushes them.
    pub fn append(&mut self, key: (&str, u32), rows: &[Vec<f32>]) -> Result<(), RewardError> {
        if let Some(row) = rows.iter().find(|r| r.len() != self.dim) {
            return Err(bad(&self.path, format!("a state of size {} where {} was expected", row.len(), self.dim)));
        }
        let key = serde_json::to_vec(&key).map_err(|e| bad(&self.path, e))?;
        let mut bytes = Vec::with_capacity(8 + key.len() + rows.len() * self.dim * 4);
        bytes.extend_from_slice(&(key.len() as u32).to_le_bytes());
        bytes.extend_from_slice(&key);
        bytes.extend_from_slice(&(rows.len() as u32).to_le_bytes());
        for value in rows.iter().flatten() {
            bytes.extend_from_slice(&value.to_le_bytes());
        }
        self.file.write_all(&bytes).and_then(|_| self.file.sync_data()).map_err(|e| io(&self.path, e))
    }
}

/// Appends to `into` the states of every shard's responses it does not
/// hold yet (the states beside the shards of one `saffron label --shard`
/// command, which must be of one guard and input). Returns how many
/// responses were added.
pub fn merge_states(into: &Path, shards: &[PathBuf]) -> Result<usize, RewardError> {
    let mut all: Vec<States> = Vec::new();
    for path in shards {
        let states = read_states(path)?;
        if all.first().is_some_and(|first| first.header != states.header) {
            return Err(RewardError::StatesMismatch { path: path.clone() });
        }
        all.push(states);
    }
    let Some(first) = all.first() else { return Ok(0) };
    let mut writer = StatesWriter::open(into, &first.header)?;
    let mut have: std::collections::HashSet<(String, u32)> = read_states(into)?.rows.into_keys().collect();
    let mut added = 0;
    for states in &all {
        let mut keys: Vec<&(String, u32)> = states.rows.keys().collect();
        keys.sort();
        for key in keys {
            if have.insert(key.clone()) {
                writer.append((&key.0, key.1), &states.rows[key])?;
                added += 1;
            }
        }
    }
    Ok(added)
}

/// A states file read back.
#[derive(Debug, Clone)]
pub struct States {
    pub header: StatesHeader,
    pub rows: HashMap<(String, u32), NodeStates>,
    valid_bytes: u64,
}

/// Reads a states file, ignoring a torn last record.
pub fn read_states(path: &Path) -> Result<States, RewardError> {
    let file = File::open(path).map_err(|e| io(path, e))?;
    let mut reader = BufReader::with_capacity(1 << 20, file);
    let mut line = String::new();
    reader.read_line(&mut line).map_err(|e| io(path, e))?;
    if !line.ends_with('\n') {
        return Err(bad(path, "no header line"));
    }
    let header: StatesHeader = serde_json::from_str(&line).map_err(|e| bad(path, format!("header: {e}")))?;
    if header.kind != KIND {
        return Err(bad(path, format!("kind is `{}`, expected `{KIND}`", header.kind)));
    }
    let mut valid_bytes = line.len() as u64;
    let mut rows = HashMap::new();
    while let Some((key, states, n)) = read_record(&mut reader, header.dim).map_err(|e| bad(path, e))? {
        rows.insert(key, states);
        valid_bytes += n;
    }
    Ok(States { header, rows, valid_bytes })
}

/// The next whole record and its size in bytes; `None` at the end or at a
/// torn record.
fn read_record(reader: &mut impl Read, dim: usize) -> Result<Option<((String, u32), NodeStates, u64)>, String> {
    let mut word = [0u8; 4];
    if !read_all(reader, &mut word)? {
        return Ok(None);
    }
    let mut key = vec![0u8; u32::from_le_bytes(word) as usize];
    if !read_all(reader, &mut key)? || !read_all(reader, &mut word)? {
        return Ok(None);
    }
    let key_bytes = key.len();
    let key: (String, u32) = serde_json::from_slice(&key).map_err(|e| format!("a record's key: {e}"))?;
    let n = u32::from_le_bytes(word) as usize;
    let mut data = vec![0u8; n * dim * 4];
    if !read_all(reader, &mut data)? {
        return Ok(None);
    }
    let values: Vec<f32> = data.chunks_exact(4).map(|b| f32::from_le_bytes([b[0], b[1], b[2], b[3]])).collect();
    let size = 8 + key_bytes + data.len();
    Ok(Some((key, values.chunks_exact(dim.max(1)).map(<[f32]>::to_vec).collect(), size as u64)))
}

/// Fills `buf`; false when the input ends first.
fn read_all(reader: &mut impl Read, buf: &mut [u8]) -> Result<bool, String> {
    let mut filled = 0;
    while filled < buf.len() {
        match reader.read(&mut buf[filled..]) {
            Ok(0) => return Ok(false),
            Ok(n) => filled += n,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e.to_string()),
        }
    }
    Ok(true)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{Boundary, GuardFormat};

    fn header(dim: usize) -> StatesHeader {
        let input = super::super::separate::SeparateInput {
            format: GuardFormat::UserTurn("{{ prompt }} {{ response }}".into()),
            boundary: Boundary::Natural,
            read: None,
        };
        StatesHeader::new(("default", "aa"), "bb", dim, input)
    }

    #[test]
    fn states_append_resume_after_a_torn_record_and_refuse_another_guard() {
        let dir = tempfile::tempdir().unwrap();
        let path = states_path(&dir.path().join("c.jsonl"));
        assert!(path.ends_with("c.jsonl.states"));
        let mut w = StatesWriter::open(&path, &header(3)).unwrap();
        w.append(("advbench/1#none", 0), &[vec![1.0, 2.0, 3.0], vec![4.0, 5.0, 6.5]]).unwrap();
        w.append(("advbench/1#none", 1), &[vec![-1.0, 0.0, 1.0]]).unwrap();
        assert!(w.append(("x", 0), &[vec![1.0]]).is_err(), "a row of the wrong size is refused");
        drop(w);
        let mut f = OpenOptions::new().append(true).open(&path).unwrap();
        f.write_all(&[9, 0, 0, 0, b'[']).unwrap();
        drop(f);
        let states = read_states(&path).unwrap();
        assert_eq!(states.rows.len(), 2);
        assert_eq!(states.rows[&("advbench/1#none".to_owned(), 0)][1], vec![4.0, 5.0, 6.5]);
        // Reopened: the torn record is cut off, a rewritten key reads as its last record.
        let mut w = StatesWriter::open(&path, &header(3)).unwrap();
        w.append(("advbench/1#none", 1), &[vec![7.0, 8.0, 9.0]]).unwrap();
        let states = read_states(&path).unwrap();
        assert_eq!(states.rows[&("advbench/1#none".to_owned(), 1)], vec![vec![7.0, 8.0, 9.0]]);
        let err = StatesWriter::open(&path, &header(4)).err().unwrap();
        assert!(matches!(err, RewardError::StatesMismatch { .. }), "{err}");
    }
}
