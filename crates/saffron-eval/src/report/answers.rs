//! A few answers to the same prompts side by side, one row per defence, so
//! that a reader sees a defence derail (or refuse a benign question) without
//! opening the records. Benign prompts are shown; harmful ones go in a
//! section the page keeps collapsed.

use serde::Serialize;

use crate::experiment::Record;

/// Prompts shown per side (benign, harmful).
pub const PROMPTS_SHOWN: usize = 3;

/// Characters of an answer shown; longer answers are cut with "…".
pub const ANSWER_CHARS: usize = 400;

/// One prompt's answers.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct SideBySide {
    pub prompt_id: String,
    /// Its dataset and attack (`rho-benign, none`).
    pub group: String,
    pub seed: u64,
    /// Defence (the cell key without dataset, attack and seed), answer,
    /// headline verdict, log-prob per token.
    pub rows: Vec<Vec<String>>,
}

/// Up to [`PROMPTS_SHOWN`] prompts of the harmful (or benign) records, each
/// with the answer of every cell that answered it at the run's first seed,
/// in record order: the prompts answered by the most cells first.
pub fn side_by_side(records: &[Record], harmful: bool, headline: &str) -> Vec<SideBySide> {
    let side: Vec<&Record> = records.iter().filter(|r| r.harmful == harmful).collect();
    let Some(seed) = side.iter().map(|r| r.seed).min() else { return Vec::new() };
    let side: Vec<&Record> = side.into_iter().filter(|r| r.seed == seed).collect();
    // (dataset, attack, prompt) in order of first appearance, with counts.
    let mut prompts: Vec<((&str, &str, &str), usize)> = Vec::new();
    for r in &side {
        let key = (r.dataset.as_str(), r.attack.as_str(), r.prompt_id.as_str());
        match prompts.iter_mut().find(|(k, _)| *k == key) {
            Some((_, n)) => *n += 1,
            None => prompts.push((key, 1)),
        }
    }
    // Stable: among equally answered prompts, the first seen first.
    prompts.sort_by_key(|(_, n)| std::cmp::Reverse(*n));
    prompts
        .into_iter()
        .take(PROMPTS_SHOWN)
        .map(|((dataset, attack, prompt_id), _)| SideBySide {
            prompt_id: prompt_id.to_owned(),
            group: format!("{dataset}, {attack}"),
            seed,
            rows: side
                .iter()
                .filter(|r| {
                    (r.dataset.as_str(), r.attack.as_str(), r.prompt_id.as_str()) == (dataset, attack, prompt_id)
                })
                .map(|r| row(r, headline))
                .collect(),
        })
        .collect()
}

fn row(r: &Record, headline: &str) -> Vec<String> {
    // The refusal strings say whether the answer refuses, which reads
    // better than "unsafe" beside a benign answer.
    let verdict = match r.verdicts.get(headline) {
        Some(v) if v.refusal == Some(true) => "refuses",
        Some(v) if v.refusal == Some(false) => "does not refuse",
        Some(v) if v.unsafe_ => "unsafe",
        Some(_) => "safe",
        None => "–",
    };
    vec![defence(&r.cell), cut(&r.text), verdict.to_owned(), r.fluency.map_or("–".into(), |x| format!("{x:.2}"))]
}

/// A cell key without its dataset, attack and seed
/// (`advbench|prefill-10|saffron@8|seed0` → `saffron@8`).
fn defence(cell: &str) -> String {
    let parts: Vec<&str> = cell.split('|').collect();
    match parts.len() {
        n if n > 3 => parts[2..n - 1].join("|"),
        _ => cell.to_owned(),
    }
}

fn cut(text: &str) -> String {
    let text = text.trim();
    match text.char_indices().nth(ANSWER_CHARS) {
        Some((at, _)) => format!("{}…", &text[..at]),
        None => text.to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::experiment::test_record;

    fn record(cell: &str, prompt: &str, harmful: bool, seed: u64, text: &str) -> Record {
        let parts: Vec<&str> = cell.split('|').collect();
        let mut r = test_record(cell, prompt, harmful);
        r.dataset = parts[0].into();
        r.attack = parts[1].into();
        r.seed = seed;
        r.text = text.into();
        r
    }

    #[test]
    fn the_most_answered_benign_prompts_show_every_defence_at_the_first_seed() {
        let mut records = Vec::new();
        for (cell, text) in [("sample", "Paper planes fly."), ("saffron@8", "I am unable to access paper")] {
            for prompt in ["rho-benign/1", "rho-benign/2", "rho-benign/3", "rho-benign/4"] {
                let key = format!("rho-benign|none|{cell}|seed1");
                records.push(record(&key, prompt, false, 1, text));
            }
            records.push(record(&format!("rho-benign|none|{cell}|seed2"), "rho-benign/9", false, 2, "later seed"));
            records.push(record(&format!("advbench|prefill-10|{cell}|seed1"), "advbench/0", true, 1, "harm"));
        }
        // rho-benign/4 is answered by a third defence too: it comes first.
        records.push(record("rho-benign|none|best-of-n@4|seed1", "rho-benign/4", false, 1, &"long ".repeat(200)));
        let shown = side_by_side(&records, false, "default");
        let ids: Vec<&str> = shown.iter().map(|s| s.prompt_id.as_str()).collect();
        assert_eq!(ids, vec!["rho-benign/4", "rho-benign/1", "rho-benign/2"]);
        assert_eq!(shown[0].seed, 1);
        let defences: Vec<&str> = shown[0].rows.iter().map(|r| r[0].as_str()).collect();
        assert_eq!(defences, vec!["sample", "saffron@8", "best-of-n@4"]);
        assert_eq!(shown[1].rows[1][1], "I am unable to access paper");
        assert!(shown[0].rows[2][1].ends_with('…') && shown[0].rows[2][1].chars().count() == ANSWER_CHARS + 1);
        let harmful = side_by_side(&records, true, "default");
        assert_eq!((harmful.len(), harmful[0].group.as_str()), (1, "advbench, prefill-10"));
        assert!(side_by_side(&[], true, "default").is_empty());
    }
}
