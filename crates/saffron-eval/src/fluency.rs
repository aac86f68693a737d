//! Fluency of answers: the mean log-probability per token of an answer
//! under the policy, in the context the policy answered in (chat prompt and
//! any prefill). A refusal or a plain answer sits near the policy's usual
//! level; a defence that steers the policy into text the policy itself
//! finds unlikely (an answer that loses its thread) shows as a drop. ASR
//! judges cannot see that: an incoherent answer is neither a refusal nor
//! harmful.
//!
//! Scored after the fact (`saffron fluency RUN_DIR`) into `fluency.jsonl`
//! beside the records, one line per (cell, prompt), resumable like the run;
//! `saffron report` reads it when present. The answer text is tokenised
//! again (the canonical tokenisation of the text, as any perplexity
//! measurement of text does); judges are not involved.

use std::collections::{BTreeMap, HashSet};
use std::fs::File;
use std::path::{Path, PathBuf};

use saffron_core::sampling::log_sum_exp;
use saffron_core::{Policy, TokenId, WantedOutputs};
use saffron_defence::PolicyBackend;
use saffron_engine::TreeOptions;
use serde::{Deserialize, Serialize};

use crate::experiment::Record;
use crate::manifest::RunManifest;
use crate::store::{append_record, open_records, read_records, Duplicates, Keyed, RunLock, RECORDS_FILE};
use crate::{load_prompts, Attack, EvalError, EvalPrompt};

pub const FLUENCY_FILE: &str = "fluency.jsonl";

/// The fluency of one record's answer.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct FluencyRecord {
    pub cell: String,
    pub prompt_id: String,
    /// Answer tokens scored (an empty answer scores none).
    pub tokens: usize,
    /// Mean natural-log probability per answer token; `None` for an empty
    /// answer.
    pub mean_logprob: Option<f64>,
}

impl Keyed for FluencyRecord {
    fn key(&self) -> (String, String) {
        (self.cell.clone(), self.prompt_id.clone())
    }
}

/// The log-probability of each token of `answer` after `context`: one
/// batched call over every prefix of the answer (the shared context is
/// computed once).
pub fn answer_logprobs(
    policy: &mut dyn Policy,
    context: &[TokenId],
    answer: &[TokenId],
) -> Result<Vec<f64>, EvalError> {
    let paths: Vec<Vec<TokenId>> = (0..answer.len()).map(|i| [context, &answer[..i]].concat()).collect();
    let refs: Vec<&[TokenId]> = paths.iter().map(Vec::as_slice).collect();
    let outputs = policy.outputs(&refs, WantedOutputs::Logits)?;
    outputs
        .iter()
        .zip(answer)
        .map(|(o, &token)| {
            let logits = o.logits.as_deref().ok_or(EvalError::MissingLogits)?;
            let chosen =
                *logits.get(token as usize).ok_or(EvalError::TokenOutsideLogits { token, vocab: logits.len() })?;
            Ok(chosen as f64 - log_sum_exp(logits))
        })
        .collect()
}

/// The mean of `logprobs`, `None` when empty.
pub fn mean(logprobs: &[f64]) -> Option<f64> {
    (!logprobs.is_empty()).then(|| logprobs.iter().sum::<f64>() / logprobs.len() as f64)
}

/// `fluency.jsonl` of a run directory, locked and open for appending.
pub struct FluencyStore {
    _lock: RunLock,
    path: PathBuf,
    file: File,
}

impl FluencyStore {
    /// Opens (or creates) the file in `dir`, with the records already in it
    /// (a torn last line is cut off).
    pub fn open(dir: &Path) -> Result<(FluencyStore, Vec<FluencyRecord>), EvalError> {
        let lock = RunLock::acquire(dir)?;
        let path = dir.join(FLUENCY_FILE);
        let (file, records, _) = open_records(&path, Duplicates::Refuse)?;
        Ok((FluencyStore { _lock: lock, path, file }, records))
    }

    /// Appends one record and syncs it to disk.
    pub fn append(&mut self, record: &FluencyRecord) -> Result<(), EvalError> {
        append_record(&mut self.file, &self.path, record)
    }
}

/// Scores every record of the run in `dir` (made as `manifest` says) that
/// its `fluency.jsonl` lacks,
/// under `policy`, which must be the run's (by sha256), in the context the
/// record was answered in; `home` holds the run's datasets. `progress` is
/// told (scored, to score) after each. Returns the records scored.
pub fn score_run(
    (dir, manifest): (&Path, &RunManifest),
    home: &Path,
    policy: &dyn PolicyBackend,
    options: TreeOptions,
    progress: &mut dyn FnMut(usize, usize),
) -> Result<usize, EvalError> {
    let identity = policy.identity()?;
    if identity != manifest.policy_sha256 {
        return Err(EvalError::WrongPolicy {
            policy: policy.name().into(),
            sha256: identity,
            run: manifest.policy_sha256.clone(),
        });
    }
    let grid = &manifest.grid;
    let attacks: BTreeMap<String, Attack> = grid.cells()?.into_iter().map(|c| (c.key(grid), c.attack)).collect();
    let mut prompts: BTreeMap<String, EvalPrompt> = BTreeMap::new();
    for spec in &grid.datasets {
        prompts.extend(load_prompts(&spec.prompt_set()?, home)?.prompts.into_iter().map(|p| (p.id.clone(), p)));
    }
    let records = read_records::<Record>(&dir.join(RECORDS_FILE))?;
    let (mut store, done) = FluencyStore::open(dir)?;
    let done: HashSet<(String, String)> = done.into_iter().map(|f| f.key()).collect();
    let todo: Vec<&Record> = records.iter().filter(|r| !done.contains(&r.key())).collect();
    let mismatch = |detail: String| EvalError::RunMismatch { dir: dir.to_path_buf(), detail };
    let mut tree = policy.open(options)?;
    for (i, record) in todo.iter().enumerate() {
        let attack =
            attacks.get(&record.cell).ok_or_else(|| mismatch(format!("cell {} is not in its grid", record.cell)))?;
        let prompt = prompts
            .get(&record.prompt_id)
            .ok_or_else(|| mismatch(format!("prompt {} is not in its datasets", record.prompt_id)))?;
        let chat = attack
            .apply(prompt, policy)
            .ok_or_else(|| mismatch(format!("the attack of {} does not apply to {}", record.cell, prompt.id)))?;
        let context = policy.encode_chat(&chat)?;
        let answer = policy.tokenize(&record.text);
        // The contexts differ from record to record: nothing to share.
        tree.clear();
        let logprobs = answer_logprobs(&mut *tree, &context, &answer)?;
        store.append(&FluencyRecord {
            cell: record.cell.clone(),
            prompt_id: record.prompt_id.clone(),
            tokens: answer.len(),
            mean_logprob: mean(&logprobs),
        })?;
        progress(i + 1, todo.len());
    }
    Ok(todo.len())
}

/// The fluency records of a run directory (none when it has no file).
pub fn read_fluency(dir: &Path) -> Result<Vec<FluencyRecord>, EvalError> {
    read_records(&dir.join(FLUENCY_FILE))
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use saffron_core::{ModelError, SequenceOutputs};

    use super::*;

    /// A policy over 3 tokens whose next-token distribution depends on the
    /// last token only: after token t it puts probability 1/2 on t and 1/4
    /// on each other token.
    struct Markov;

    impl Policy for Markov {
        fn vocab_size(&self) -> usize {
            3
        }
        fn is_end_of_generation(&self, _: TokenId) -> bool {
            false
        }
        fn cost(&self) -> saffron_core::ModelCost {
            saffron_core::ModelCost::default()
        }
        fn outputs(&mut self, paths: &[&[TokenId]], _: WantedOutputs) -> Result<Vec<SequenceOutputs>, ModelError> {
            Ok(paths
                .iter()
                .map(|p| {
                    let last = *p.last().unwrap() as usize;
                    let logits: Vec<f32> = (0..3).map(|t| if t == last { 2f32.ln() } else { 0.0 }).collect();
                    SequenceOutputs { logits: Some(Arc::from(logits)), hidden: None }
                })
                .collect())
        }
    }

    #[test]
    fn log_probabilities_follow_the_policy() {
        let lp = answer_logprobs(&mut Markov, &[0], &[0, 1, 1]).unwrap();
        let expected = [0.5f64.ln(), 0.25f64.ln(), 0.5f64.ln()];
        for (got, want) in lp.iter().zip(expected) {
            assert!((got - want).abs() < 1e-6, "{lp:?}");
        }
        assert!((mean(&lp).unwrap() - expected.iter().sum::<f64>() / 3.0).abs() < 1e-6);
        assert_eq!(mean(&[]), None);
        assert!(answer_logprobs(&mut Markov, &[0], &[]).unwrap().is_empty());
        assert!(answer_logprobs(&mut Markov, &[0], &[7]).is_err(), "a token outside the vocabulary");
    }

    #[test]
    fn the_store_resumes_and_cuts_a_torn_line() {
        let dir = tempfile::tempdir().unwrap();
        let record =
            |id: &str| FluencyRecord { cell: "c".into(), prompt_id: id.into(), tokens: 3, mean_logprob: Some(-1.5) };
        let (mut store, old) = FluencyStore::open(dir.path()).unwrap();
        assert!(old.is_empty());
        store.append(&record("a")).unwrap();
        drop(store);
        let path = dir.path().join(FLUENCY_FILE);
        let mut text = std::fs::read_to_string(&path).unwrap();
        text.push_str("{\"cell\":\"c\",\"prom");
        std::fs::write(&path, text).unwrap();
        let (mut store, old) = FluencyStore::open(dir.path()).unwrap();
        assert_eq!(old, [record("a")]);
        store.append(&record("b")).unwrap();
        assert_eq!(read_fluency(dir.path()).unwrap(), [record("a"), record("b")]);
    }
}
