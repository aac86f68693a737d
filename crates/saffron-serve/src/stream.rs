//! Streamed answers (server-sent events): `data: {chunk}` … `data: [DONE]`,
//! with `:` keep-alive comments.
//!
//! What streams when: a token is final once every node that can still be
//! the answer (the live nodes of the search and the finished ones) shares
//! it, so Saffron and beam stream the longest common prefix of their nodes
//! as it grows; Best-of-N's samples share little, so most of its answer
//! comes at the end, when the PRM has picked. With an output check the whole
//! answer waits for its verdict, and with `logprobs` it waits for the end and
//! comes in one chunk with the log-probabilities of its tokens (they are read
//! from the tree after the search). Stop sequences are held back until it is
//! clear they are not one. With `n > 1` every choice gets the shared text as
//! it becomes final (the choices are nodes of the same search, so they all
//! begin with it), then its own rest and finish at the end.

use std::convert::Infallible;
use std::sync::Arc;
use std::time::Instant;

use axum::response::sse::{Event, KeepAlive, Sse};
use axum::response::{IntoResponse, Response};
use saffron_core::TokenId;
use tokio::sync::mpsc;
use tokio_stream::wrappers::ReceiverStream;

use crate::answer::{self, Cancel, Logprob, Reply};
use crate::api::{ChatChunk, ChunkChoice, CompletionChunk, CompletionChunkChoice, Delta, Finish, Report, Usage};
use crate::request::Job;
use crate::routes::{chat_logprobs, completion_logprobs, finish};
use crate::state::{now, AppState, Loaded, Place};
use crate::ApiError;

/// Which endpoint's chunk shape to send.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Endpoint {
    Chat,
    Completion,
}

/// The SSE response of a streamed request; the search runs in a task that
/// stops it if the client goes away.
pub fn respond(
    state: Arc<AppState>,
    loaded: Arc<Loaded>,
    job: Job,
    endpoint: Endpoint,
    place: Place,
    arrived: Instant,
) -> Response {
    let (tx, rx) = mpsc::channel::<Result<Event, Infallible>>(64);
    tokio::spawn(drive(state, loaded, job, endpoint, place, arrived, tx));
    Sse::new(ReceiverStream::new(rx)).keep_alive(KeepAlive::default()).into_response()
}

/// Builds one endpoint's chunks.
struct Chunks {
    id: String,
    created: u64,
    model: String,
    endpoint: Endpoint,
}

/// What a chunk carries.
#[derive(Default)]
struct Piece {
    /// The choice it belongs to.
    index: usize,
    role: bool,
    content: Option<String>,
    refusal: Option<String>,
    finish: Option<Finish>,
    usage: Option<Usage>,
    report: Option<Report>,
    /// The log-probabilities of the tokens of `content`.
    logprobs: Option<Vec<Logprob>>,
    /// A usage-only chunk has no choices.
    no_choices: bool,
}

impl Chunks {
    fn event(&self, p: Piece) -> Event {
        let json = match self.endpoint {
            Endpoint::Chat => serde_json::to_string(&ChatChunk {
                id: self.id.clone(),
                object: "chat.completion.chunk",
                created: self.created,
                model: self.model.clone(),
                choices: if p.no_choices {
                    vec![]
                } else {
                    vec![ChunkChoice {
                        index: p.index,
                        delta: Delta { role: p.role.then_some("assistant"), content: p.content, refusal: p.refusal },
                        finish_reason: p.finish,
                        logprobs: p.logprobs.as_deref().map(chat_logprobs),
                    }]
                },
                usage: p.usage,
                saffron: p.report,
            }),
            Endpoint::Completion => serde_json::to_string(&CompletionChunk {
                id: self.id.clone(),
                object: "text_completion",
                created: self.created,
                model: self.model.clone(),
                choices: if p.no_choices {
                    vec![]
                } else {
                    vec![CompletionChunkChoice {
                        index: p.index,
                        text: p.content.or(p.refusal).unwrap_or_default(),
                        finish_reason: p.finish,
                        logprobs: p.logprobs.as_deref().map(completion_logprobs),
                    }]
                },
                usage: p.usage,
                saffron: p.report,
            }),
        };
        Event::default().data(json.expect("chunks serialise"))
    }
}

async fn drive(
    state: Arc<AppState>,
    loaded: Arc<Loaded>,
    job: Job,
    endpoint: Endpoint,
    place: Place,
    arrived: Instant,
    tx: mpsc::Sender<Result<Event, Infallible>>,
) {
    let prefix = if endpoint == Endpoint::Chat { "chatcmpl" } else { "cmpl" };
    let chunks = Chunks { id: state.new_id(prefix), created: now(), model: state.model_id().to_owned(), endpoint };
    let limits = state.run_limits(arrived);
    let cancel = Cancel::default();
    let (tokens_tx, mut tokens_rx) = mpsc::unbounded_channel::<Vec<TokenId>>();
    let streams_early = loaded.check.is_none() && job.logprobs.is_none();
    let worker = {
        let (loaded, job, cancel) = (loaded.clone(), job.clone(), cancel.clone());
        let tokens = streams_early.then_some(tokens_tx);
        tokio::task::spawn_blocking(move || answer::run(&loaded, &job, &cancel, limits, tokens))
    };
    let send = |event: Event| {
        let tx = tx.clone();
        async move { tx.send(Ok(event)).await.is_ok() }
    };
    let mut gone = false;
    if endpoint == Endpoint::Chat {
        for index in 0..job.n {
            gone = gone || !send(chunks.event(Piece { index, role: true, ..Piece::default() })).await;
        }
    }
    let mut text = TextOut::new(&job.stop);
    let mut final_tokens = Vec::new();
    let mut first_sent = false;
    let mut worker = worker;
    let mut tokens_open = streams_early;
    // Until the search ends: pass on final tokens, and stop the search as
    // soon as the client goes away (with or without tokens to send).
    let reply = loop {
        tokio::select! {
            biased;
            run = tokens_rx.recv(), if tokens_open && !gone => {
                let Some(run) = run else {
                    tokens_open = false;
                    continue;
                };
                final_tokens.extend(run);
                let full = loaded.models.policy().detokenize(&final_tokens);
                if let Some(delta) = text.offer(&full) {
                    if text.stopped {
                        cancel.cancel();
                    }
                    if !delta.is_empty() {
                        if !first_sent {
                            state.metrics.time_to_first_token.observe(arrived.elapsed().as_secs_f64());
                            first_sent = true;
                        }
                        for index in 0..job.n {
                            let piece = Piece { index, content: Some(delta.clone()), ..Piece::default() };
                            gone = gone || !send(chunks.event(piece)).await;
                        }
                        if gone {
                            cancel.cancel();
                        }
                    }
                }
            }
            _ = tx.closed(), if !gone => {
                gone = true;
                cancel.cancel();
            }
            done = &mut worker => break done,
        }
    };
    let reply = reply.unwrap_or_else(|e| Err(ApiError::internal(format!("the search thread failed: {e}"))));
    drop(place);
    let reply = finish(&state, &job, reply, arrived);
    if gone {
        return;
    }
    match reply {
        Ok(reply) => {
            if !first_sent {
                state.metrics.time_to_first_token.observe(arrived.elapsed().as_secs_f64());
            }
            let Reply { choices, usage, report } = reply;
            for (index, choice) in choices.into_iter().enumerate() {
                let rest = choice.content.map(|c| text.rest(&c)).filter(|r| !r.is_empty());
                if rest.is_some() || choice.refusal.is_some() {
                    let (refusal, logprobs) = (choice.refusal, choice.logprobs);
                    send(chunks.event(Piece { index, content: rest, refusal, logprobs, ..Piece::default() })).await;
                }
                let last =
                    Piece { index, finish: Some(choice.finish), report: Some(report.clone()), ..Piece::default() };
                send(chunks.event(last)).await;
            }
            if job.include_usage {
                send(chunks.event(Piece { usage: Some(usage), no_choices: true, ..Piece::default() })).await;
            }
        }
        Err(e) => {
            let body = serde_json::to_string(&e.body()).expect("errors serialise");
            send(Event::default().data(body)).await;
        }
    }
    send(Event::default().data("[DONE]")).await;
}

/// The text sent so far, and what may be sent next: never past the first
/// stop sequence, and never the last bytes that could begin one.
struct TextOut {
    stop: Vec<String>,
    sent: String,
    hold: usize,
    stopped: bool,
}

impl TextOut {
    fn new(stop: &[String]) -> TextOut {
        let hold = stop.iter().map(|s| s.len()).max().unwrap_or(1) - 1;
        TextOut { stop: stop.to_vec(), sent: String::new(), hold, stopped: false }
    }

    /// `full` is the text of every final token; returns what to send now.
    fn offer(&mut self, full: &str) -> Option<String> {
        // A token that ends inside a character, or a detokenisation that
        // does not extend what was sent: wait for more.
        if self.stopped || !full.starts_with(&self.sent) || full.ends_with('\u{FFFD}') {
            return None;
        }
        let (end, stopped) = match self.stop.iter().filter_map(|s| full.find(s.as_str())).min() {
            Some(at) => (at, true),
            None => (floor_char(full, full.len().saturating_sub(self.hold)), false),
        };
        if end < self.sent.len() {
            return None;
        }
        let delta = full[self.sent.len()..end].to_owned();
        self.sent.push_str(&delta);
        self.stopped = stopped;
        Some(delta)
    }

    /// What of the final answer is still to send.
    fn rest(&self, answer: &str) -> String {
        match answer.strip_prefix(self.sent.as_str()) {
            Some(rest) => rest.to_owned(),
            None => {
                tracing::warn!("a streamed answer differs from the final one; the rest is sent from where they agree");
                let agree = answer.char_indices().zip(self.sent.chars()).take_while(|((_, a), b)| a == b).count();
                answer.chars().skip(agree).collect()
            }
        }
    }
}

/// The largest char boundary of `s` at or before `at`.
fn floor_char(s: &str, mut at: usize) -> usize {
    while !s.is_char_boundary(at) {
        at -= 1;
    }
    at
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn text_before_a_possible_stop_sequence_is_held_back() {
        let mut out = TextOut::new(&["END".to_owned()]);
        assert_eq!(out.offer("Hello E").as_deref(), Some("Hello"));
        assert_eq!(out.offer("Hello EN").as_deref(), Some(" "));
        assert_eq!(out.offer("Hello ENX").as_deref(), Some("E"));
        assert_eq!(out.offer("Hello ENX EN").as_deref(), Some("NX "));
        assert_eq!(out.offer("Hello ENX END and more").as_deref(), Some(""));
        assert!(out.stopped);
        assert_eq!(out.sent, "Hello ENX ");
        assert_eq!(out.offer("Hello ENX END and more still"), None);
    }

    #[test]
    fn without_stop_sequences_everything_goes_at_once_but_split_characters_wait() {
        let mut out = TextOut::new(&[]);
        assert_eq!(out.offer("Hi").as_deref(), Some("Hi"));
        assert_eq!(out.offer("Hi \u{FFFD}"), None);
        assert_eq!(out.offer("Hi é").as_deref(), Some(" é"));
        assert_eq!(out.rest("Hi é, bye"), ", bye");
    }
}
