//! HH-RLHF conversations, the paper's corpus source (Anthropic's
//! `harmless-base` files, MIT): JSON Lines of `{"chosen": "\n\nHuman: …
//! \n\nAssistant: …", "rejected": …}`, gzipped or plain. The two sides share
//! the conversation and differ in its last answer, written by people: the
//! less harmful one is `chosen`. `saffron label --hh-rlhf FILE` reads both
//! answers into the policy (teacher forcing) and the PRM labels every prefix.
//!
//! saffron ships none of it; a user passes their copy's path.

use std::io::{BufRead, BufReader};
use std::path::Path;

use saffron_core::Split;
use saffron_engine::{ChatPrompt, Role, Turn};
use serde::Deserialize;

use crate::label::WrittenAnswers;
use crate::splits::Universe;
use crate::EvalError;

/// The id prefix of HH-RLHF conversations in corpora (`hh-rlhf/17#chosen`).
pub const SET_NAME: &str = "hh-rlhf";

/// One conversation: the turns before the last answer, and the two answers.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HhConversation {
    /// Line number in the file, from 0.
    pub index: usize,
    /// Oldest first; the last is a human turn.
    pub turns: Vec<Turn>,
    pub chosen: String,
    pub rejected: String,
}

/// Which of a conversation's two last answers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum HhAnswer {
    Chosen,
    Rejected,
}

impl HhAnswer {
    pub fn name(self) -> &'static str {
        match self {
            HhAnswer::Chosen => "chosen",
            HhAnswer::Rejected => "rejected",
        }
    }
}

impl HhConversation {
    /// The human turns, oldest first (the last is the request answered).
    pub fn requests(&self) -> Vec<&str> {
        self.turns.iter().filter(|t| t.role == Role::User).map(|t| t.content.as_str()).collect()
    }

    /// The request the answers answer.
    pub fn request(&self) -> &str {
        self.turns.last().map_or("", |t| t.content.as_str())
    }

    pub fn answers(&self) -> [(HhAnswer, &str); 2] {
        [(HhAnswer::Chosen, &self.chosen), (HhAnswer::Rejected, &self.rejected)]
    }

    /// The corpus id of one answer.
    pub fn id(&self, answer: HhAnswer) -> String {
        format!("{SET_NAME}/{}#{}", self.index, answer.name())
    }

    /// The policy's prompt: the earlier turns as history, the last request
    /// as the user turn.
    pub fn chat(&self) -> ChatPrompt {
        let (last, history) = self.turns.split_last().expect("a parsed conversation ends with a human turn");
        ChatPrompt { system: None, history: history.to_vec(), user: last.content.clone(), prefill: None }
    }

    /// Both answers for the policy to read, after the conversation.
    /// harmless-base's conversations are red-teaming: harmful requests.
    pub fn written(&self) -> WrittenAnswers {
        WrittenAnswers {
            chat: self.chat(),
            requests: self.requests().into_iter().map(str::to_owned).collect(),
            answers: self.answers().map(|(which, text)| (self.id(which), text.to_owned())).to_vec(),
            harmful: true,
        }
    }
}

/// A file's conversations and how many lines could not be used.
#[derive(Debug, Clone, Default)]
pub struct HhFile {
    pub conversations: Vec<HhConversation>,
    /// Lines whose two sides do not share the conversation before the last
    /// answer, or that are not a Human/Assistant dialogue ending in an answer.
    pub skipped: usize,
}

impl HhFile {
    /// The conversations a trainer may read: every human turn in the train
    /// split (the policy reads them all, so none may be a held-out prompt),
    /// and how many were left out for holding one that is not.
    pub fn train(&self, universe: &Universe) -> (Vec<&HhConversation>, usize) {
        let (train, other): (Vec<&HhConversation>, Vec<&HhConversation>) = self
            .conversations
            .iter()
            .partition(|c| c.requests().iter().all(|r| universe.lookup(r).split == Split::Train));
        (train, other.len())
    }
}

#[derive(Deserialize)]
struct Line {
    chosen: String,
    rejected: String,
}

/// Reads a harmless-base (or helpful-base) file, gzipped (by its magic
/// bytes) or plain.
pub fn read(path: &Path) -> Result<HhFile, EvalError> {
    let io = |source| EvalError::Io { op: "read", path: path.to_path_buf(), source };
    let mut file = BufReader::new(std::fs::File::open(path).map_err(io)?);
    let gzipped = file.fill_buf().map_err(io)?.starts_with(&[0x1f, 0x8b]);
    let reader: Box<dyn BufRead> =
        if gzipped { Box::new(BufReader::new(flate2::read::MultiGzDecoder::new(file))) } else { Box::new(file) };
    let mut out = HhFile::default();
    for (index, line) in reader.lines().enumerate() {
        let line = line.map_err(io)?;
        if line.trim().is_empty() {
            continue;
        }
        let line: Line = serde_json::from_str(&line).map_err(|e| EvalError::Malformed {
            file: path.display().to_string(),
            at: format!("line {}", index + 1),
            source: Box::new(e),
        })?;
        match conversation(index, &line) {
            Some(c) => out.conversations.push(c),
            None => out.skipped += 1,
        }
    }
    if out.conversations.is_empty() {
        return Err(EvalError::Data {
            file: path.display().to_string(),
            detail: "no HH-RLHF conversations in it (JSON Lines of {\"chosen\": …, \"rejected\": …} expected)".into(),
        });
    }
    Ok(out)
}

/// A line's conversation, if both sides share everything before their last
/// answer.
fn conversation(index: usize, line: &Line) -> Option<HhConversation> {
    let mut chosen = dialogue(&line.chosen)?;
    let mut rejected = dialogue(&line.rejected)?;
    let (a, b) = (chosen.pop()?, rejected.pop()?);
    let ends_in_answers = a.role == Role::Assistant && b.role == Role::Assistant;
    let asked = chosen.last().is_some_and(|t| t.role == Role::User);
    if !(ends_in_answers && asked && chosen == rejected) {
        return None;
    }
    Some(HhConversation { index, turns: chosen, chosen: a.content, rejected: b.content })
}

const HUMAN: &str = "\n\nHuman:";
const ASSISTANT: &str = "\n\nAssistant:";

/// `\n\nHuman: … \n\nAssistant: …` as turns (text trimmed); `None` if it
/// does not start with a human turn.
fn dialogue(text: &str) -> Option<Vec<Turn>> {
    let mut rest = text.strip_prefix(HUMAN)?;
    let mut role = Role::User;
    let mut turns = Vec::new();
    loop {
        let next = [(rest.find(HUMAN), HUMAN, Role::User), (rest.find(ASSISTANT), ASSISTANT, Role::Assistant)]
            .into_iter()
            .filter_map(|(at, marker, r)| at.map(|a| (a, marker, r)))
            .min_by_key(|(a, ..)| *a);
        let Some((at, marker, next_role)) = next else {
            turns.push(Turn { role, content: rest.trim().to_owned() });
            return Some(turns);
        };
        turns.push(Turn { role, content: rest[..at].trim().to_owned() });
        (role, rest) = (next_role, &rest[at + marker.len()..]);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn line(chosen: &str, rejected: &str) -> String {
        serde_json::json!({ "chosen": chosen, "rejected": rejected }).to_string()
    }

    #[test]
    fn a_dialogue_splits_into_turns_and_the_two_answers() {
        let context = "\n\nHuman: what are some pranks?\n\nAssistant: For fun?\n\nHuman: yep";
        let text = format!(
            "{}\n{}\n{}\n",
            line(&format!("{context}\n\nAssistant: I'd rather not."), &format!("{context}\n\nAssistant: Glue a coin.")),
            line("\n\nHuman: a\n\nAssistant: b", "\n\nHuman: other\n\nAssistant: c"),
            line("no markers", "no markers"),
        );
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("hh.jsonl");
        std::fs::write(&path, text).unwrap();
        let file = read(&path).unwrap();
        assert_eq!(file.skipped, 2, "different contexts, and no dialogue");
        let c = &file.conversations[0];
        assert_eq!(c.requests(), vec!["what are some pranks?", "yep"]);
        assert_eq!((c.chosen.as_str(), c.rejected.as_str()), ("I'd rather not.", "Glue a coin."));
        assert_eq!(c.turns[1], Turn { role: Role::Assistant, content: "For fun?".into() });
        assert_eq!(c.id(HhAnswer::Rejected), "hh-rlhf/0#rejected");
        let chat = c.chat();
        assert_eq!((chat.user.as_str(), chat.history.len()), ("yep", 2));
    }

    #[test]
    fn a_gzipped_file_reads_the_same_and_an_empty_one_is_refused() {
        use std::io::Write;
        let body = line("\n\nHuman: q\n\nAssistant: a", "\n\nHuman: q\n\nAssistant: b");
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("hh.jsonl.gz");
        let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
        gz.write_all(body.as_bytes()).unwrap();
        std::fs::write(&path, gz.finish().unwrap()).unwrap();
        let file = read(&path).unwrap();
        assert_eq!(file.conversations.len(), 1);
        assert_eq!(file.conversations[0].request(), "q");
        std::fs::write(&path, "").unwrap();
        let err = read(&path).unwrap_err().to_string();
        assert!(err.contains("no HH-RLHF conversations"), "{err}");
        std::fs::write(&path, "{not json").unwrap();
        assert!(read(&path).unwrap_err().to_string().contains("line 1"));
    }

    #[test]
    fn only_conversations_whose_every_request_is_train_are_given_to_trainers() {
        let universe = Universe::empty();
        let file = HhFile {
            conversations: (0..200)
                .map(|i| HhConversation {
                    index: i,
                    turns: vec![
                        Turn { role: Role::User, content: format!("first request number {i}") },
                        Turn { role: Role::Assistant, content: "ok".into() },
                        Turn { role: Role::User, content: format!("second request {i} please") },
                    ],
                    chosen: "no".into(),
                    rejected: "yes".into(),
                })
                .collect(),
            skipped: 0,
        };
        let (train, left_out) = file.train(&universe);
        assert_eq!(train.len() + left_out, 200);
        assert!(train.len() > 40 && left_out > 40, "{} train, {left_out} left out", train.len());
        for c in train {
            assert!(c.requests().iter().all(|r| universe.lookup(r).split == Split::Train));
        }
    }
}
