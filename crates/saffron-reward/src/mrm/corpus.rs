//! The token-level safety corpus (the paper's Safety4M at this machine's
//! scale, method.md section 2): policy responses with the PRM's reward of
//! every prefix. One JSON Lines file: a header line (provenance), then one
//! line per response, appended and flushed as each is labelled, so a killed
//! run loses at most the response in flight and resumes where it stopped.

use std::collections::{BTreeMap, HashSet};
use std::fs::{File, OpenOptions};
use std::io::{BufRead, BufReader, Read, Write};
use std::path::{Path, PathBuf};

use saffron_core::TokenId;
use serde::{Deserialize, Serialize};

use crate::RewardError;

const KIND: &str = "saffron-token-corpus";

/// Where the labels come from; a resumed run must match it exactly.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CorpusHeader {
    pub kind: String,
    /// Policy model: name and sha256.
    pub policy: String,
    pub policy_sha256: String,
    /// The PRM that labelled every prefix (guard name and its backbone sha256).
    pub prm: String,
    pub prm_sha256: String,
    /// Prompt sources (`dataset:member` → sha256 of the file).
    pub prompt_files: BTreeMap<String, String>,
    /// Everything else that decides the labels (decoding, lengths, seeds).
    pub settings: serde_json::Value,
    pub saffron_version: String,
}

impl CorpusHeader {
    pub fn new(
        policy: (&str, &str),
        prm: (&str, &str),
        prompt_files: BTreeMap<String, String>,
        settings: serde_json::Value,
    ) -> CorpusHeader {
        CorpusHeader {
            kind: KIND.into(),
            policy: policy.0.into(),
            policy_sha256: policy.1.into(),
            prm: prm.0.into(),
            prm_sha256: prm.1.into(),
            prompt_files,
            settings,
            saffron_version: env!("CARGO_PKG_VERSION").into(),
        }
    }
}

/// One labelled response.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LabelledSequence {
    /// Prompt identifier within its source, and which sample of it.
    pub prompt_id: String,
    pub sample: u32,
    pub harmful: bool,
    pub prefilled: bool,
    /// The policy's context: chat template, prompt and any prefill.
    pub context: Vec<TokenId>,
    /// Generated tokens.
    pub response: Vec<TokenId>,
    /// `rewards[j]` = PRM reward of the response cut after token `j`
    /// (`response[..=j]`); as long as `response`.
    pub rewards: Vec<f32>,
    /// The conversation's requests, oldest first, for a response to a
    /// source outside the built-in prompt sets (HH-RLHF): the policy read
    /// them all, the PRM the last. Empty for a built-in set's prompt, whose
    /// text its id names.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub requests: Vec<String>,
}

impl LabelledSequence {
    pub fn key(&self) -> (String, u32) {
        (self.prompt_id.clone(), self.sample)
    }

    /// The id of the prompt in its set (`advbench/17#prefill-10` →
    /// `advbench/17`).
    pub fn prompt(&self) -> &str {
        self.prompt_id.split('#').next().unwrap_or(&self.prompt_id)
    }

    /// The request the PRM read, where the sequence carries it (see
    /// [`LabelledSequence::requests`]).
    pub fn own_request(&self) -> Option<&str> {
        self.requests.last().map(String::as_str)
    }
}

/// Appends labelled responses to a corpus file.
pub struct CorpusWriter {
    path: PathBuf,
    file: File,
    done: HashSet<(String, u32)>,
}

impl CorpusWriter {
    /// Opens `path` for appending. A new file gets `header`; an existing one
    /// must carry the same header (otherwise it was made with other settings
    /// and is refused: pass another path or delete it). A torn last line
    /// (a crash mid-write) is cut off.
    pub fn open(path: &Path, header: &CorpusHeader) -> Result<CorpusWriter, RewardError> {
        let mut done = HashSet::new();
        if path.exists() {
            let corpus = read_corpus(path)?;
            if &corpus.header != header {
                return Err(RewardError::CorpusMismatch { path: path.to_path_buf() });
            }
            done.extend(corpus.sequences.iter().map(LabelledSequence::key));
            let file = OpenOptions::new().write(true).open(path).map_err(|e| io(path, e))?;
            file.set_len(corpus.valid_bytes).map_err(|e| io(path, e))?;
        } else {
            if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
                std::fs::create_dir_all(dir).map_err(|e| io(dir, e))?;
            }
            let mut line = serde_json::to_string(header).map_err(|e| bad(path, e))?;
            line.push('\n');
            std::fs::write(path, line).map_err(|e| io(path, e))?;
        }
        let file = OpenOptions::new().append(true).open(path).map_err(|e| io(path, e))?;
        Ok(CorpusWriter { path: path.to_path_buf(), file, done })
    }

    /// Whether this (prompt, sample) is already in the file.
    pub fn is_done(&self, prompt_id: &str, sample: u32) -> bool {
        self.done.contains(&(prompt_id.to_owned(), sample))
    }

    pub fn done(&self) -> usize {
        self.done.len()
    }

    /// The (prompt id, sample) of every response in the file.
    pub fn done_keys(&self) -> impl Iterator<Item = &(String, u32)> {
        self.done.iter()
    }

    /// Appends one response and flushes it to disk.
    pub fn append(&mut self, sequence: &LabelledSequence) -> Result<(), RewardError> {
        let mut line = serde_json::to_string(sequence)
            .map_err(|e| RewardError::Data { file: "(corpus record)".into(), detail: e.to_string() })?;
        line.push('\n');
        self.file.write_all(line.as_bytes()).and_then(|_| self.file.sync_data()).map_err(|e| io(&self.path, e))?;
        self.done.insert(sequence.key());
        Ok(())
    }
}

/// A corpus read back.
#[derive(Debug, Clone)]
pub struct Corpus {
    pub header: CorpusHeader,
    pub sequences: Vec<LabelledSequence>,
    /// Length of the file up to its last complete line.
    pub(crate) valid_bytes: u64,
}

impl Corpus {
    /// Number of token-level labels.
    pub fn labels(&self) -> usize {
        self.sequences.iter().map(|s| s.rewards.len()).sum()
    }

    /// Counts of labels per unit-wide reward bin, clamped to `[-10, 10)`:
    /// bin `i` holds rewards in `[i − 10, i − 9)`.
    pub fn histogram(&self) -> [usize; 20] {
        let mut bins = [0usize; 20];
        for r in self.sequences.iter().flat_map(|s| &s.rewards) {
            bins[((r.floor() as i64 + 10).clamp(0, 19)) as usize] += 1;
        }
        bins
    }
}

/// The settings key a shard of a corpus records its shard under.
pub const SHARD_KEY: &str = "shard";

impl CorpusHeader {
    /// The header without its shard: what all shards of one corpus share.
    pub fn unsharded(&self) -> CorpusHeader {
        let mut header = self.clone();
        if let Some(settings) = header.settings.as_object_mut() {
            settings.remove(SHARD_KEY);
        }
        header
    }

    /// Whether `self` asks for more of what `old` holds: equal but for the
    /// settings `growth` names, each count at least `old`'s and each source
    /// either `old`'s or new (with its prompt files). Such a corpus can grow
    /// in place, since a larger seeded sample starts with the smaller one.
    pub fn grows(&self, old: &CorpusHeader, growth: &Growth) -> bool {
        let setting = |h: &CorpusHeader, key: &str| h.settings.get(key).cloned();
        let is_source = |key: &str| growth.sources.iter().any(|(source, _)| *source == key);
        let counts_grow = growth.counts.iter().all(|key| match (setting(self, key), setting(old, key)) {
            (Some(new), Some(was)) => matches!((new.as_u64(), was.as_u64()), (Some(n), Some(w)) if n >= w),
            (None, None) => true,
            (Some(_), None) => is_source(key),
            (None, Some(_)) => false,
        });
        let added: Vec<&str> = growth
            .sources
            .iter()
            .filter(|(key, _)| setting(self, key).is_some() && setting(old, key).is_none())
            .map(|(_, files)| *files)
            .collect();
        let (mut new, mut was) = (self.clone(), old.clone());
        let dropped = growth.counts.iter().chain(growth.sources.iter().map(|(key, _)| key));
        for key in dropped {
            if let (Some(n), Some(w)) = (new.settings.as_object_mut(), was.settings.as_object_mut()) {
                if growth.counts.contains(key) || setting(old, key).is_none() {
                    n.remove(*key);
                    w.remove(*key);
                }
            }
        }
        // A new source brings its own files, and only those are new.
        new.prompt_files.retain(|file, _| !added.iter().any(|prefix| file.starts_with(prefix)));
        counts_grow && self != old && new == was
    }
}

/// Which settings of a corpus header may grow in place (see
/// [`CorpusHeader::grows`]).
#[derive(Debug, Clone, Copy)]
pub struct Growth {
    /// Numbers that may become larger (prompts sampled from each set).
    pub counts: &'static [&'static str],
    /// Sources that may be added: the setting that records each (absent
    /// from the old header) and how its prompt files' names start.
    pub sources: &'static [(&'static str, &'static str)],
}

/// Grows the corpus at `path` in place when `header` asks for more of the
/// same (see [`CorpusHeader::grows`]): its header line is replaced and every
/// response kept, through a temporary file renamed over it, so a crash
/// leaves the old file or the new one. Returns the old header when it grew;
/// `None` (nothing changed) for a missing file or any other header.
pub fn grow_corpus(path: &Path, header: &CorpusHeader, growth: &Growth) -> Result<Option<CorpusHeader>, RewardError> {
    if !path.exists() {
        return Ok(None);
    }
    let corpus = read_corpus(path)?;
    if !header.grows(&corpus.header, growth) {
        return Ok(None);
    }
    let tmp = path.with_extension("grow.tmp");
    let mut line = serde_json::to_string(header).map_err(|e| bad(path, e))?;
    line.push('\n');
    let mut file = File::create(&tmp).map_err(|e| io(&tmp, e))?;
    file.write_all(line.as_bytes()).map_err(|e| io(&tmp, e))?;
    let mut old = BufReader::new(File::open(path).map_err(|e| io(path, e))?);
    let mut first = String::new();
    old.read_line(&mut first).map_err(|e| io(path, e))?;
    std::io::copy(&mut old.take(corpus.valid_bytes - first.len() as u64), &mut file).map_err(|e| io(&tmp, e))?;
    file.sync_all().map_err(|e| io(&tmp, e))?;
    std::fs::rename(&tmp, path).map_err(|e| io(path, e))?;
    Ok(Some(corpus.header))
}

/// Appends to `into` every response of `shards` it does not hold yet, in
/// the order given: the shards of one `saffron label --shard I/N` command
/// (their headers equal but for the shard), joined into the corpus of the
/// unsharded command. `into` may hold some already (a merge run again adds
/// what is new). Returns how many responses were added.
pub fn merge_corpora(into: &Path, shards: &[PathBuf]) -> Result<usize, RewardError> {
    let mut header: Option<(CorpusHeader, &Path)> = None;
    let mut corpora = Vec::new();
    for path in shards {
        let corpus = read_corpus(path)?;
        let unsharded = corpus.header.unsharded();
        match &header {
            Some((first, first_path)) if *first != unsharded => {
                return Err(RewardError::ShardsDiffer { first: first_path.to_path_buf(), other: path.clone() })
            }
            Some(_) => {}
            None => header = Some((unsharded, path)),
        }
        corpora.push(corpus);
    }
    let Some((header, _)) = header else { return Ok(0) };
    let mut writer = CorpusWriter::open(into, &header)?;
    let mut added = 0;
    for sequence in corpora.iter().flat_map(|c| &c.sequences) {
        if !writer.is_done(&sequence.prompt_id, sequence.sample) {
            writer.append(sequence)?;
            added += 1;
        }
    }
    Ok(added)
}

/// Reads a corpus file, ignoring a torn last line.
pub fn read_corpus(path: &Path) -> Result<Corpus, RewardError> {
    let file = File::open(path).map_err(|e| io(path, e))?;
    let mut reader = BufReader::new(file);
    let mut line = String::new();
    let mut valid_bytes = 0u64;
    let mut header = None;
    let mut sequences = Vec::new();
    loop {
        line.clear();
        let n = reader.read_line(&mut line).map_err(|e| io(path, e))?;
        if n == 0 || !line.ends_with('\n') {
            break;
        }
        if header.is_none() {
            header = Some(serde_json::from_str::<CorpusHeader>(&line).map_err(|e| bad(path, format!("header: {e}")))?);
        } else {
            let seq: LabelledSequence =
                serde_json::from_str(&line).map_err(|e| bad(path, format!("record {}: {e}", sequences.len() + 1)))?;
            if seq.rewards.len() != seq.response.len() {
                return Err(bad(
                    path,
                    format!("record {}: rewards and response differ in length", sequences.len() + 1),
                ));
            }
            sequences.push(seq);
        }
        valid_bytes += n as u64;
    }
    let header = header.ok_or_else(|| bad(path, "no header line"))?;
    if header.kind != KIND {
        return Err(bad(path, format!("kind is `{}`, expected `{KIND}`", header.kind)));
    }
    Ok(Corpus { header, sequences, valid_bytes })
}

pub(super) fn io(path: &Path, e: std::io::Error) -> RewardError {
    RewardError::Artifact { path: PathBuf::from(path), detail: e.to_string() }
}

pub(super) fn bad(path: &Path, detail: impl std::fmt::Display) -> RewardError {
    RewardError::Artifact { path: PathBuf::from(path), detail: detail.to_string() }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn header(seed: u64) -> CorpusHeader {
        CorpusHeader::new(("qwen", "aa"), ("default", "bb"), BTreeMap::new(), serde_json::json!({ "seed": seed }))
    }

    fn sequence(id: &str, sample: u32, rewards: Vec<f32>) -> LabelledSequence {
        LabelledSequence {
            prompt_id: id.into(),
            sample,
            harmful: true,
            prefilled: false,
            context: vec![1, 2],
            response: (0..rewards.len() as u32).collect(),
            rewards,
            requests: Vec::new(),
        }
    }

    #[test]
    fn shards_merge_into_the_unsharded_corpus_once_and_foreign_ones_are_refused() {
        let dir = tempfile::tempdir().unwrap();
        let shard = |i: u64, seed: u64| {
            let mut h = header(seed);
            h.settings[SHARD_KEY] = serde_json::json!([i, 2]);
            h
        };
        let (a, b, c) = (dir.path().join("a.jsonl"), dir.path().join("b.jsonl"), dir.path().join("c.jsonl"));
        let mut w = CorpusWriter::open(&a, &shard(0, 1)).unwrap();
        w.append(&sequence("advbench/0#none", 0, vec![1.0])).unwrap();
        w.append(&sequence("advbench/2#none", 0, vec![2.0])).unwrap();
        let mut w = CorpusWriter::open(&b, &shard(1, 1)).unwrap();
        w.append(&sequence("advbench/1#none", 0, vec![3.0, 4.0])).unwrap();
        let into = dir.path().join("all.jsonl");
        assert_eq!(merge_corpora(&into, &[a.clone(), b.clone()]).unwrap(), 3);
        let merged = read_corpus(&into).unwrap();
        assert_eq!(merged.header, header(1), "the unsharded header");
        assert_eq!(merged.labels(), 4);
        // Again: nothing new.
        assert_eq!(merge_corpora(&into, &[a.clone(), b]).unwrap(), 0);
        assert_eq!(read_corpus(&into).unwrap().sequences.len(), 3);
        // A shard of another command (another seed) is refused, naming it.
        CorpusWriter::open(&c, &shard(1, 2)).unwrap();
        let err = merge_corpora(&dir.path().join("x.jsonl"), &[a, c.clone()]).unwrap_err();
        assert!(matches!(&err, RewardError::ShardsDiffer { other, .. } if *other == c), "{err}");
    }

    #[test]
    fn a_larger_sample_grows_the_corpus_in_place_and_nothing_else_does() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("c.jsonl");
        let counted = |harmful: u64, seed: u64| {
            let mut h = header(seed);
            h.settings["harmful"] = serde_json::json!(harmful);
            h
        };
        let mut w = CorpusWriter::open(&path, &counted(2, 1)).unwrap();
        w.append(&sequence("a", 0, vec![1.5, -2.0])).unwrap();
        drop(w);
        let growth = Growth { counts: &["harmful", "extra"], sources: &[("extra", "extra:"), ("whole", "whole:")] };
        let with_extra = |harmful: u64, extra: Option<u64>| {
            let mut h = counted(harmful, 1);
            if let Some(n) = extra {
                h.settings["extra"] = serde_json::json!(n);
                h.prompt_files.insert("extra:file".into(), "cc".into());
            }
            h
        };
        // Fewer prompts, another seed, the same header, no file: untouched.
        for other in [counted(1, 1), counted(3, 2), counted(2, 1)] {
            assert_eq!(grow_corpus(&path, &other, &growth).unwrap(), None);
        }
        assert_eq!(grow_corpus(&dir.path().join("none.jsonl"), &counted(3, 1), &growth).unwrap(), None);
        assert_eq!(read_corpus(&path).unwrap().header, counted(2, 1));
        // A new source grows it, and then more of it; dropping it does not.
        assert!(with_extra(2, Some(5)).grows(&counted(2, 1), &growth));
        assert!(with_extra(2, Some(6)).grows(&with_extra(2, Some(5)), &growth));
        assert!(!with_extra(2, Some(4)).grows(&with_extra(2, Some(5)), &growth));
        assert!(!counted(2, 1).grows(&with_extra(2, Some(5)), &growth));
        let mut changed = with_extra(2, Some(6));
        changed.prompt_files.insert("extra:file".into(), "ee".into());
        assert!(!changed.grows(&with_extra(2, Some(5)), &growth), "a source's file changed");
        let mut stray = with_extra(2, Some(5));
        stray.prompt_files.insert("harmful:new-file".into(), "dd".into());
        assert!(!stray.grows(&counted(2, 1), &growth), "a new file that is not the new source's");
        // A source that is not a count (an object of its own) may be added.
        let mut whole = counted(2, 1);
        whole.settings["whole"] = serde_json::json!({ "sha256": "ff", "conversations": 9 });
        whole.prompt_files.insert("whole:file.gz".into(), "ff".into());
        assert!(whole.grows(&counted(2, 1), &growth));
        let mut other = whole.clone();
        other.settings["whole"]["conversations"] = serde_json::json!(10);
        assert!(!other.grows(&whole, &growth), "an added source must then stay as it was");
        // More prompts: the header is the new one, the response kept, and
        // the writer resumes it.
        assert_eq!(grow_corpus(&path, &counted(3, 1), &growth).unwrap(), Some(counted(2, 1)));
        let grown = read_corpus(&path).unwrap();
        assert_eq!(grown.header, counted(3, 1));
        assert_eq!(grown.sequences, vec![sequence("a", 0, vec![1.5, -2.0])]);
        let w = CorpusWriter::open(&path, &counted(3, 1)).unwrap();
        assert!(w.is_done("a", 0));
    }

    #[test]
    fn appends_resume_and_survive_a_torn_line() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("c.jsonl");
        let mut w = CorpusWriter::open(&path, &header(1)).unwrap();
        w.append(&sequence("a", 0, vec![1.5, -2.0])).unwrap();
        w.append(&sequence("a", 1, vec![0.5])).unwrap();
        drop(w);
        // A crash in the middle of the next record.
        let mut f = OpenOptions::new().append(true).open(&path).unwrap();
        f.write_all(b"{\"prompt_id\":\"b\",\"sam").unwrap();
        drop(f);
        let corpus = read_corpus(&path).unwrap();
        assert_eq!(corpus.sequences.len(), 2);
        assert_eq!(corpus.labels(), 3);
        let mut w = CorpusWriter::open(&path, &header(1)).unwrap();
        assert!(w.is_done("a", 1) && !w.is_done("b", 0));
        w.append(&sequence("b", 0, vec![-11.0])).unwrap();
        let corpus = read_corpus(&path).unwrap();
        assert_eq!(corpus.sequences.iter().map(|s| s.prompt_id.as_str()).collect::<Vec<_>>(), vec!["a", "a", "b"]);
        let h = corpus.histogram();
        assert_eq!((h[11], h[8], h[10], h[0]), (1, 1, 1, 1));
    }

    #[test]
    fn other_settings_are_refused() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("c.jsonl");
        CorpusWriter::open(&path, &header(1)).unwrap();
        let err = CorpusWriter::open(&path, &header(2)).err().unwrap();
        assert!(err.to_string().contains("other settings"), "{err}");
    }
}
