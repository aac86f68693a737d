//! One request's search, on a blocking thread: the defence answers, an
//! observer passes on the tokens that became final and stops the search when
//! the client has gone or the request's time is up, then stop sequences cut
//! the answer and the output check reads it.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Instant;

use saffron_core::{Cost, TokenId};
use saffron_defence::{Answer, PolicyBackend, TokenLogprob};
use saffron_engine::TreeOptions;
use saffron_eval::judge::Judge;
use saffron_search::{FinishReason, NodeId, SearchObserver, ROOT};
use tokio::sync::mpsc::UnboundedSender;

use crate::api::{CheckReport, Finish, Report, Usage};
use crate::request::{Input, Job};
use crate::state::{Loaded, OutputJudge};
use crate::ApiError;

/// A finished request: the choices to send and what they cost.
#[derive(Debug, Clone, PartialEq)]
pub struct Reply {
    /// Best first: the search's answer, then (with `n > 1`) the answers it
    /// ranked below it (Best-of-N's runners-up, the rest of a final beam),
    /// each cut and checked as the first. Never empty.
    pub choices: Vec<Choice>,
    pub usage: Usage,
    pub report: Report,
}

impl Reply {
    /// The output check blocked the answer (the first choice).
    pub fn blocked(&self) -> bool {
        self.choices.first().is_some_and(|c| c.refusal.is_some())
    }
}

/// One answer of a reply.
#[derive(Debug, Clone, PartialEq)]
pub struct Choice {
    /// The answer (cut at a stop sequence); `None` when blocked.
    pub content: Option<String>,
    /// The refusal text that replaces a blocked answer.
    pub refusal: Option<String>,
    /// Per token of `content`, when asked for: its text, log-probability
    /// and alternatives (text, log-probability).
    pub logprobs: Option<Vec<Logprob>>,
    pub finish: Finish,
}

/// Tells the search to stop: the client went away.
#[derive(Debug, Clone, Default)]
pub struct Cancel(Arc<AtomicBool>);

impl Cancel {
    pub fn cancel(&self) {
        self.0.store(true, Ordering::SeqCst);
    }

    pub fn is_cancelled(&self) -> bool {
        self.0.load(Ordering::SeqCst)
    }
}

/// Cancels when dropped, unless disarmed: a handler's future dropped by a
/// disconnect stops its search.
pub struct CancelOnDrop(pub Option<Cancel>);

impl Drop for CancelOnDrop {
    fn drop(&mut self) {
        if let Some(c) = self.0.take() {
            c.cancel();
        }
    }
}

/// The server's limits on one run.
#[derive(Debug, Clone, Copy)]
pub struct RunLimits {
    pub deadline: Instant,
    pub timeout_seconds: f64,
    pub max_prompt_tokens: usize,
}

/// Runs `job`; `tokens` (for a stream) receives every run of tokens that
/// became final, in order.
pub fn run(
    loaded: &Loaded,
    job: &Job,
    cancel: &Cancel,
    limits: RunLimits,
    tokens: Option<UnboundedSender<Vec<TokenId>>>,
) -> Result<Reply, ApiError> {
    let RunLimits { deadline, timeout_seconds, max_prompt_tokens } = limits;
    let models = &loaded.models;
    let mut defence = models
        .defence(job.search.clone())
        .map_err(|e| ApiError::invalid(None, format!("{e}")))?
        .with_alternatives(job.n.saturating_sub(1));
    if let Some(top) = job.logprobs {
        defence = defence.with_logprobs(top);
    }
    let mut progress = Progress::new(cancel.clone(), deadline, tokens);
    let (context, param) = match &job.input {
        Input::Chat(chat) => (
            models.policy().encode_chat(chat).map_err(|e| ApiError::invalid(Some("messages".into()), e.to_string()))?,
            "messages",
        ),
        Input::Raw(text) => (models.policy().encode_prompt(text), "prompt"),
    };
    if context.is_empty() {
        return Err(ApiError::invalid(Some(param.into()), "the prompt is empty"));
    }
    if context.len() > max_prompt_tokens {
        return Err(ApiError::invalid(
            Some(param.into()),
            format!("the prompt is {} tokens; this server takes at most {max_prompt_tokens}", context.len()),
        ));
    }
    let answered = defence.answer_context(&job.request, context, &mut progress);
    let answer = answered.map_err(|e| match e {
        saffron_defence::DefenceError::PromptTooLong { .. } => {
            ApiError::invalid(Some("messages".into()), e.to_string())
        }
        other if saffron_defence::DefenceError::is_tree_full(&other) => ApiError::step_too_large(&error_chain(&other)),
        other => ApiError::internal(error_chain(&other)),
    })?;
    if progress.timed_out {
        return Err(ApiError::timeout(timeout_seconds));
    }
    // One judge session for every choice of the request.
    let mut checker = match &loaded.check {
        Some(output) => Some(Checker::new(output, loaded.models.options())?),
        None => None,
    };
    let policy = models.policy();
    let (first, check) =
        choice(checker.as_mut(), job, policy, &answer.text, answer.finish, answer.logprobs.as_deref())?;
    let mut choices = vec![first];
    let mut completion_tokens = answer.tokens.len();
    for a in answer.alternatives.iter().take(job.n.saturating_sub(1)) {
        choices.push(choice(checker.as_mut(), job, policy, &a.text, a.finish, a.logprobs.as_deref())?.0);
        completion_tokens += a.tokens.len();
    }
    let usage = usage(&answer, completion_tokens);
    let report = report(&job.search, &answer.cost, &answer, check);
    Ok(Reply { choices, usage, report })
}

/// One answer as a choice: cut at the first stop sequence, then read by the
/// output check (when there is one), which may block it; its tokens'
/// log-probabilities as text, up to the cut.
fn choice(
    checker: Option<&mut Checker>,
    job: &Job,
    policy: &dyn PolicyBackend,
    answer: &str,
    search_finish: FinishReason,
    logprobs: Option<&[TokenLogprob]>,
) -> Result<(Choice, Option<CheckReport>), ApiError> {
    let (text, cut) = cut_at_stop(answer, &job.stop);
    let refusal_text = checker.as_ref().map(|c| c.output.refusal.clone());
    let check = match checker {
        Some(checker) => Some(checker.check(&job.request, &text)?),
        None => None,
    };
    let blocked = check.as_ref().is_some_and(|c| c.unsafe_);
    let finish = match (blocked, cut, search_finish) {
        (true, ..) => Finish::ContentFilter,
        (false, true, _) | (false, false, FinishReason::EndOfGeneration) => Finish::Stop,
        (false, false, _) => Finish::Length,
    };
    let refusal = refusal_text.filter(|_| blocked);
    let logprobs = logprobs.filter(|_| !blocked).map(|l| logprob_texts(policy, l, text.len()));
    Ok((Choice { content: (!blocked).then_some(text), refusal, logprobs, finish }, check))
}

/// One answer token with its log-probability, as text.
#[derive(Debug, Clone, PartialEq)]
pub struct Logprob {
    pub text: String,
    pub logprob: f64,
    pub top: Vec<(String, f64)>,
}

/// The tokens whose text lies within the first `len` bytes of the answer
/// (a stop sequence may have cut it).
fn logprob_texts(policy: &dyn PolicyBackend, logprobs: &[TokenLogprob], len: usize) -> Vec<Logprob> {
    let mut at = 0;
    let mut out = Vec::with_capacity(logprobs.len());
    for l in logprobs {
        if at >= len {
            break;
        }
        let text = policy.detokenize(&[l.token]);
        at += text.len();
        let top = l.top.iter().map(|&(t, lp)| (policy.detokenize(&[t]), lp)).collect();
        out.push(Logprob { text, logprob: l.logprob, top });
    }
    out
}

/// The output check of one request: its judge and a session of it.
struct Checker<'a> {
    output: &'a OutputJudge,
    session: Judge<'a>,
}

impl<'a> Checker<'a> {
    fn new(output: &'a OutputJudge, options: TreeOptions) -> Result<Checker<'a>, ApiError> {
        let session = Judge::new(&output.judge, TreeOptions { threads: options.threads, ..TreeOptions::default() })
            .map_err(|e| ApiError::internal(format!("output check: {}", error_chain(&e))))?;
        Ok(Checker { output, session })
    }

    fn check(&mut self, request: &str, text: &str) -> Result<CheckReport, ApiError> {
        let verdict = self
            .session
            .judge(request, text)
            .map_err(|e| ApiError::internal(format!("output check: {}", error_chain(&e))))?;
        Ok(CheckReport { judge: self.output.name.clone(), unsafe_: verdict.unsafe_, score: verdict.score })
    }
}

/// The text before the first stop sequence, and whether one was found.
pub fn cut_at_stop(text: &str, stop: &[String]) -> (String, bool) {
    match stop.iter().filter_map(|s| text.find(s.as_str())).min() {
        Some(at) => (text[..at].to_owned(), true),
        None => (text.to_owned(), false),
    }
}

/// The answer's usage; `completion_tokens` counts every choice sent.
fn usage(answer: &Answer, completion_tokens: usize) -> Usage {
    Usage {
        prompt_tokens: answer.prompt_tokens,
        completion_tokens,
        total_tokens: answer.prompt_tokens + completion_tokens,
        prompt_tokens_details: crate::api::PromptTokensDetails { cached_tokens: answer.cached_prompt_tokens },
    }
}

fn report(search: &saffron_search::SearchConfig, cost: &Cost, answer: &Answer, check: Option<CheckReport>) -> Report {
    Report {
        strategy: search.strategy.kind(),
        width: search.strategy.width(),
        tflop: cost.tflop(),
        reward_calls: cost.reward_calls(),
        wall_seconds: cost.wall_seconds,
        score: answer.score,
        search_finish: answer.finish,
        output_check: check,
    }
}

/// An error with its sources, for a message.
pub fn error_chain(e: &dyn std::error::Error) -> String {
    let mut text = e.to_string();
    let mut source = e.source();
    while let Some(s) = source {
        text.push_str(": ");
        text.push_str(&s.to_string());
        source = s.source();
    }
    text
}

/// The search observer of a request: which tokens every node that can
/// still be the answer shares (the live nodes and the finished ones), and
/// whether to stop.
struct Progress {
    /// Generated tokens of every node seen.
    paths: HashMap<NodeId, Vec<TokenId>>,
    finished: Vec<NodeId>,
    /// Tokens already passed on.
    sent: usize,
    tokens: Option<UnboundedSender<Vec<TokenId>>>,
    cancel: Cancel,
    deadline: Instant,
    timed_out: bool,
}

impl Progress {
    fn new(cancel: Cancel, deadline: Instant, tokens: Option<UnboundedSender<Vec<TokenId>>>) -> Progress {
        Progress {
            paths: HashMap::from([(ROOT, Vec::new())]),
            finished: Vec::new(),
            sent: 0,
            tokens,
            cancel,
            deadline,
            timed_out: false,
        }
    }
}

impl SearchObserver for Progress {
    fn expand(&mut self, parent: NodeId, child: NodeId, tokens: &[TokenId]) {
        if self.tokens.is_none() {
            return;
        }
        let mut path = self.paths.get(&parent).cloned().unwrap_or_default();
        path.extend_from_slice(tokens);
        self.paths.insert(child, path);
    }

    fn finish(&mut self, node: NodeId, _reason: FinishReason) {
        if self.tokens.is_some() {
            self.finished.push(node);
        }
    }

    fn select(&mut self, _step: usize, kept: &[NodeId], _spent: &Cost) {
        let Some(tx) = &self.tokens else { return };
        let mut nodes = kept.iter().chain(&self.finished).filter_map(|n| self.paths.get(n));
        let Some(first) = nodes.next() else { return };
        let shared = nodes.fold(first.len(), |len, p| len.min(common_prefix(first, p)));
        if shared > self.sent {
            let _ = tx.send(first[self.sent..shared].to_vec());
            self.sent = shared;
        }
    }

    fn should_stop(&mut self) -> bool {
        if Instant::now() >= self.deadline {
            self.timed_out = true;
        }
        self.timed_out || self.cancel.is_cancelled()
    }
}

fn common_prefix(a: &[TokenId], b: &[TokenId]) -> usize {
    a.iter().zip(b).take_while(|(x, y)| x == y).count()
}
