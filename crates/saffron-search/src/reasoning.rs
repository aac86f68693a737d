//! Reasoning with a controlled budget: *budget forcing* (Muennighoff et al.,
//! "s1: Simple test-time scaling", 2025, section 3.1). The policy thinks
//! inside `<think>` … `</think>` before it answers:
//!
//! - below the minimum, where the model tries to stop (it writes the end
//!   tag, or an end-of-generation token), the attempt is dropped and
//!   "Wait" is appended, so it goes on thinking;
//! - at the maximum, the end tag is forced and the answer follows.
//!
//! With `min_tokens = budget` (the default) every trace is exactly
//! `budget` tokens: the length is set by intervention, not chosen by the
//! model, which is what a study of safety against reasoning length needs
//! (grouping natural lengths confounds length with the prompt).
//!
//! Only the thinking runs here; the defence (`saffron-defence`) renders the
//! prompt in the thinking format, calls [`think`], and searches the answer
//! after the closed trace with the configured strategy.

use saffron_core::sampling::{node_key, sample, Decoding};
use saffron_core::{ModelCost, ModelRole, Policy, ProcessReward, TokenId, WantedOutputs};
use serde::{Deserialize, Serialize};

use crate::trace::SearchObserver;
use crate::SearchError;

/// Most reasoning tokens a budget may ask for (a context holds 8,192 tokens,
/// and the answer needs room after the trace).
pub const MAX_REASONING_TOKENS: usize = 8192;

/// Thinking before the answer. In TOML: `[reasoning]` with `budget` and
/// optionally `min_tokens`, `format` and `[reasoning.monitor]`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ReasoningConfig {
    /// Most reasoning tokens; the end tag is forced here. `0` gives an empty
    /// thinking section (`<think>\n\n</think>`), the no-thinking baseline in
    /// the same format.
    pub budget: usize,
    /// Fewer reasoning tokens than this and an attempt to stop becomes
    /// "Wait". Unset: the budget itself (every trace exactly `budget` long).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub min_tokens: Option<usize>,
    #[serde(default)]
    pub format: ThinkingFormat,
    /// A chain-of-thought monitor reading the trace as it grows.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub monitor: Option<MonitorConfig>,
}

/// A chain-of-thought monitor: a guard (the defence's PRM) reads the
/// request and the trace so far every `every` tokens, as if the trace were
/// the answer; a score below `threshold` (the guard's own decision line, 0,
/// by default: no threshold is tuned) is a warning. In TOML:
/// `[reasoning.monitor]` with `every`, `threshold` and `action`.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MonitorConfig {
    #[serde(default = "default_every")]
    pub every: usize,
    #[serde(default)]
    pub threshold: f32,
    #[serde(default)]
    pub action: MonitorAction,
}

fn default_every() -> usize {
    32
}

impl Default for MonitorConfig {
    fn default() -> Self {
        MonitorConfig { every: default_every(), threshold: 0.0, action: MonitorAction::default() }
    }
}

/// What a warning does.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[cfg_attr(feature = "clap", derive(clap::ValueEnum))]
#[serde(rename_all = "kebab-case")]
pub enum MonitorAction {
    /// Nothing: the scores are recorded (to measure the monitor).
    #[default]
    Observe,
    /// The first warning appends a steering sentence to the trace
    /// ("Wait, this request is harmful; I should refuse.", SafeThink-style)
    /// and the model thinks on.
    Steer,
    /// The first warning ends the thinking and the defence refuses.
    Refuse,
}

impl ReasoningConfig {
    /// Exactly `budget` reasoning tokens, in the format the policy has.
    pub fn exact(budget: usize) -> ReasoningConfig {
        ReasoningConfig { budget, min_tokens: None, format: ThinkingFormat::Auto, monitor: None }
    }

    /// The minimum, resolved.
    pub fn min(&self) -> usize {
        self.min_tokens.unwrap_or(self.budget)
    }

    pub fn validate(&self) -> Result<(), String> {
        if self.budget > MAX_REASONING_TOKENS {
            return Err(format!(
                "reasoning.budget must be at most {MAX_REASONING_TOKENS} tokens (got {})",
                self.budget
            ));
        }
        if let Some(monitor) = &self.monitor {
            if monitor.every == 0 {
                return Err("reasoning.monitor.every must be at least 1 token".into());
            }
            if !monitor.threshold.is_finite() {
                return Err("reasoning.monitor.threshold must be a finite number".into());
            }
        }
        if self.min() > self.budget {
            return Err(format!(
                "reasoning.min_tokens ({}) must not exceed reasoning.budget ({})",
                self.min(),
                self.budget
            ));
        }
        Ok(())
    }
}

/// How the policy is asked to think.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "clap", derive(clap::ValueEnum))]
#[serde(rename_all = "kebab-case")]
pub enum ThinkingFormat {
    /// `native` when the policy's chat template has a thinking section,
    /// else `prompted`.
    #[default]
    Auto,
    /// The chat template's own `<think>` section (reasoning models such as
    /// the DeepSeek-R1 distills): the prompt is rendered as it is, and
    /// `<think>\n` is forced unless the template's generation prompt
    /// already opens it.
    Native,
    /// A system instruction to think inside `<think>` tags, with `<think>\n`
    /// forced at the start of the answer: a proxy for a reasoning model on a
    /// policy that was not trained to reason.
    Prompted,
}

/// Tokens the thinking loop appends, in the policy's vocabulary.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ThinkingMarkers {
    /// What closes a trace (`\n</think>\n\n`): forced at the budget, and
    /// after every trace however it ended, so every answer reads the same
    /// closing text.
    pub close: Vec<TokenId>,
    /// The end tag as text (`</think>`), found in the generated text
    /// whatever tokens spell it.
    pub end_tag: String,
    /// What is appended where the model tries to stop early (`\nWait`).
    pub wait: Vec<TokenId>,
    /// What a steering monitor appends at its first warning.
    pub steer: Vec<TokenId>,
}

/// How a trace ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum ThinkingEnd {
    /// The model wrote the end tag at or after the minimum.
    Natural,
    /// The model ended its turn at or after the minimum (the end tag was
    /// then forced).
    EndOfGeneration,
    /// The budget was reached and the end tag forced.
    Budget,
    /// The observer stopped it (a cancelled request); the end tag was forced.
    Stopped,
    /// The monitor warned and its action is to refuse.
    Monitor,
}

/// One reading of the monitor.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct MonitorReading {
    /// Trace tokens read.
    pub tokens: usize,
    /// The guard's score (larger is safer).
    pub score: f32,
}

/// One reasoning trace.
#[derive(Debug, Clone, PartialEq)]
pub struct Thought {
    /// The trace between the open and the close markers ("Wait"s included).
    pub tokens: Vec<TokenId>,
    pub end: ThinkingEnd,
    /// Times "Wait" was appended.
    pub waits: usize,
    /// Tokens the model generated that were dropped (the end tags it wrote
    /// before the minimum): computed, so in `cost`, but not in the trace.
    pub dropped: usize,
    /// The policy's work for the trace.
    pub cost: ModelCost,
    /// Every reading of the monitor, in order (none without one).
    pub readings: Vec<MonitorReading>,
    /// Trace tokens read when the monitor first warned.
    pub warned_at: Option<usize>,
}

impl Thought {
    /// A trace of `tokens` that ran to its budget, with nothing else
    /// recorded (a start, or a trace made by hand in tests).
    pub fn of(tokens: Vec<TokenId>) -> Thought {
        Thought {
            tokens,
            end: ThinkingEnd::Budget,
            waits: 0,
            dropped: 0,
            cost: ModelCost::default(),
            readings: Vec::new(),
            warned_at: None,
        }
    }
}

/// The random stream of reasoning tokens (Best-of-N's samples use the
/// sample index; this one is far from any of them).
const REASONING_STREAM: u64 = u64::MAX - 7;

/// How to think: the configuration, the sampling, and the policy's markers
/// and text.
pub struct Thinking<'a> {
    pub config: &'a ReasoningConfig,
    /// Tokens are drawn with this decoding, keyed by `seed` and the token
    /// path (the same seed gives the same trace).
    pub decoding: Decoding,
    pub seed: u64,
    pub markers: &'a ThinkingMarkers,
    /// Trace tokens as text, to find the end tag.
    pub text: &'a dyn Fn(&[TokenId]) -> String,
}

/// Thinks after `context` (which ends with the open marker) as `how` says,
/// one sampled token at a time. `observer` is asked before every token
/// whether to stop. With a monitor configured, `monitor` (a guard bound to
/// the request) scores the trace every `every` tokens.
pub fn think(
    how: &Thinking,
    policy: &mut dyn Policy,
    context: &[TokenId],
    monitor: Option<&mut dyn ProcessReward>,
    observer: &mut dyn SearchObserver,
) -> Result<Thought, SearchError> {
    let &Thinking { config, decoding, seed, markers, text } = how;
    config.validate().map_err(SearchError::InvalidConfig)?;
    if context.is_empty() {
        return Err(SearchError::InvalidConfig("the context is empty: reasoning needs a prompt".into()));
    }
    let start = policy.cost();
    let (min, budget) = (config.min(), config.budget);
    let mut path = context.to_vec();
    let mut thought = Thought::of(Vec::new());
    let trace_len = |path: &Vec<TokenId>| path.len() - context.len();
    let mut watch = match (config.monitor, monitor) {
        (Some(settings), Some(guard)) => Some((settings, guard)),
        (Some(_), None) => {
            return Err(SearchError::InvalidConfig(
                "reasoning.monitor is set but no guard was given to read the trace".into(),
            ))
        }
        _ => None,
    };
    let mut next_reading = config.monitor.map_or(usize::MAX, |m| m.every);
    while trace_len(&path) < budget {
        if observer.should_stop() {
            thought.end = ThinkingEnd::Stopped;
            break;
        }
        if let Some((settings, guard)) = watch.as_mut().filter(|_| trace_len(&path) >= next_reading) {
            let read = trace_len(&path);
            next_reading = read + settings.every;
            let score = guard.score(&[&path[context.len()..]]).map_err(SearchError::model(ModelRole::Prm))?;
            let score = *score.first().ok_or(SearchError::MissingOutput { role: ModelRole::Prm, what: "a score" })?;
            thought.readings.push(MonitorReading { tokens: read, score });
            if score < settings.threshold && thought.warned_at.is_none() {
                thought.warned_at = Some(read);
                match settings.action {
                    MonitorAction::Observe => {}
                    MonitorAction::Refuse => {
                        thought.end = ThinkingEnd::Monitor;
                        break;
                    }
                    MonitorAction::Steer => {
                        let room = budget - read;
                        path.extend(markers.steer.iter().take(room));
                        continue;
                    }
                }
            }
        }
        let outputs = policy.outputs(&[&path], WantedOutputs::Logits).map_err(SearchError::model(ModelRole::Policy))?;
        let logits = outputs
            .first()
            .and_then(|o| o.logits.as_deref())
            .ok_or(SearchError::MissingOutput { role: ModelRole::Policy, what: "logits" })?;
        let token = sample(logits, &decoding, &[], node_key(seed, REASONING_STREAM, &path))
            .ok_or(SearchError::MissingOutput { role: ModelRole::Policy, what: "a token to sample" })?;
        let stop = if policy.is_end_of_generation(token) {
            Some(ThinkingEnd::EndOfGeneration)
        } else {
            path.push(token);
            match tag_start(&text(&path[context.len()..]), &markers.end_tag) {
                Some(at) => {
                    let before = path.len();
                    drop_from(&mut path, context.len(), at, text);
                    thought.dropped += before - path.len();
                    Some(ThinkingEnd::Natural)
                }
                None => None,
            }
        };
        let Some(end) = stop else { continue };
        if trace_len(&path) >= min {
            thought.end = end;
            break;
        }
        if end == ThinkingEnd::EndOfGeneration {
            thought.dropped += 1;
        }
        // Too early: "Wait", as far as the budget allows.
        let room = budget - trace_len(&path);
        path.extend(markers.wait.iter().take(room));
        thought.waits += 1;
    }
    thought.tokens = path.split_off(context.len());
    thought.cost = policy.cost().since(&start);
    Ok(thought)
}

/// Where `tag` starts in `text`, if it is there.
fn tag_start(text: &str, tag: &str) -> Option<usize> {
    if tag.is_empty() {
        None
    } else {
        text.find(tag)
    }
}

/// Drops trace tokens from the end of `path` (the trace starts at `from`)
/// until the trace's text ends before byte `at`: the tokens that spelled the
/// end tag, and any text glued to the tag's first token.
fn drop_from(path: &mut Vec<TokenId>, from: usize, at: usize, text: &dyn Fn(&[TokenId]) -> String) {
    while path.len() > from && text(&path[from..]).len() > at {
        path.pop();
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::fake::FakePolicy;
    use crate::NoTrace;

    // Vocabulary: 0 = end of generation, 1 = "a", 2 = "</", 3 = "think>",
    // 4 = "Wait", 5 = "</think>" (one token), 6 = "b".
    const VOCAB: usize = 7;
    fn text(tokens: &[TokenId]) -> String {
        tokens.iter().map(|t| ["<eos>", "a", "</", "think>", "Wait", "</think>", "b"][*t as usize]).collect()
    }
    fn markers() -> ThinkingMarkers {
        ThinkingMarkers { close: vec![5], end_tag: "</think>".into(), wait: vec![4], steer: vec![6, 6] }
    }
    /// A policy that always wants `next(trace)` after the context `[9]`.
    fn scripted(next: impl Fn(&[TokenId]) -> TokenId + 'static) -> FakePolicy {
        FakePolicy::new(VOCAB, 0, move |path| {
            let mut logits = vec![-30.0; VOCAB];
            logits[next(&path[1..]) as usize] = 30.0;
            logits
        })
    }
    /// Greedy thinking with the test vocabulary's markers.
    fn how<'a>(config: &'a ReasoningConfig, markers: &'a ThinkingMarkers) -> Thinking<'a> {
        Thinking { config, decoding: Decoding::Greedy, seed: 0, markers, text: &text }
    }

    fn run(config: &ReasoningConfig, policy: &mut FakePolicy) -> Thought {
        think(&how(config, &markers()), policy, &[9], None, &mut NoTrace).unwrap()
    }

    #[test]
    fn an_early_end_of_generation_becomes_wait_until_the_minimum() {
        // "a a <eos>" forever: stopping is refused until 6 tokens.
        let mut policy = scripted(|trace| if trace.len() % 3 == 2 { 0 } else { 1 });
        let thought = run(&ReasoningConfig { min_tokens: Some(6), ..ReasoningConfig::exact(10) }, &mut policy);
        // a a (eos→Wait) a a (eos→Wait) a a eos: the last one is past the minimum.
        assert_eq!(thought.tokens, vec![1, 1, 4, 1, 1, 4, 1, 1]);
        assert_eq!(thought.end, ThinkingEnd::EndOfGeneration);
        assert_eq!(thought.waits, 2);
        assert_eq!(thought.dropped, 2);
    }

    #[test]
    fn an_end_tag_spelled_over_two_tokens_is_dropped_before_the_minimum() {
        // "a </ think>" then "b" after a Wait.
        let mut policy = scripted(|trace| match trace.last() {
            None | Some(4) | Some(6) => 1,
            Some(1) => 2,
            Some(2) => 3,
            _ => 6,
        });
        let thought = run(&ReasoningConfig::exact(5), &mut policy);
        // a </ think> -> dropped back to "a", Wait; a </ think> again ...
        assert_eq!(thought.tokens, vec![1, 4, 1, 4, 1]);
        assert_eq!(thought.end, ThinkingEnd::Budget);
        assert_eq!(thought.dropped, 4);
        assert_eq!(thought.waits, 2);
        // Every token sampled was computed once (the dropped ones included).
        assert_eq!(thought.cost.calls, 7);
    }

    #[test]
    fn the_end_tag_after_the_minimum_ends_the_trace_naturally() {
        let mut policy = scripted(|trace| if trace.len() == 3 { 5 } else { 1 });
        let thought = run(&ReasoningConfig { min_tokens: Some(2), ..ReasoningConfig::exact(8) }, &mut policy);
        assert_eq!(thought.tokens, vec![1, 1, 1]);
        assert_eq!(thought.end, ThinkingEnd::Natural);
        assert_eq!(thought.dropped, 1);
    }

    #[test]
    fn the_budget_cuts_a_trace_that_never_ends() {
        let mut policy = scripted(|_| 1);
        let thought = run(&ReasoningConfig::exact(4), &mut policy);
        assert_eq!(thought.tokens, vec![1; 4]);
        assert_eq!(thought.end, ThinkingEnd::Budget);
        assert_eq!((thought.waits, thought.dropped), (0, 0));
        assert_eq!(thought.cost.tokens_computed, 4, "the context, then one token per step but the last");
    }

    #[test]
    fn budget_zero_thinks_nothing_and_calls_nothing() {
        let mut policy = scripted(|_| 1);
        let thought = run(&ReasoningConfig::exact(0), &mut policy);
        assert!(thought.tokens.is_empty());
        assert_eq!(thought.cost.calls, 0);
    }

    #[test]
    fn a_minimum_above_the_budget_is_refused() {
        let config = ReasoningConfig { min_tokens: Some(5), ..ReasoningConfig::exact(4) };
        assert!(config.validate().unwrap_err().contains("min_tokens"));
        assert!(ReasoningConfig::exact(MAX_REASONING_TOKENS + 1).validate().is_err());
    }

    #[test]
    fn a_stopping_observer_ends_the_trace() {
        struct StopAfter(usize);
        impl SearchObserver for StopAfter {
            fn should_stop(&mut self) -> bool {
                self.0 = self.0.saturating_sub(1);
                self.0 == 0
            }
        }
        let mut policy = scripted(|_| 1);
        let config = ReasoningConfig::exact(10);
        let thought = think(&how(&config, &markers()), &mut policy, &[9], None, &mut StopAfter(3)).unwrap();
        assert_eq!(thought.tokens.len(), 2);
        assert_eq!(thought.end, ThinkingEnd::Stopped);
    }

    /// A guard that calls a trace unsafe once it holds token 1 three times.
    fn counting_guard() -> crate::fake::FakePrm {
        crate::fake::FakePrm::new(|trace| if trace.iter().filter(|&&t| t == 1).count() >= 3 { -2.0 } else { 1.0 })
    }

    fn watched(action: MonitorAction) -> (Thought, crate::fake::FakePrm) {
        let config = ReasoningConfig {
            monitor: Some(MonitorConfig { every: 2, threshold: 0.0, action }),
            ..ReasoningConfig::exact(8)
        };
        let mut guard = counting_guard();
        let mut policy = scripted(|_| 1);
        let thought = think(&how(&config, &markers()), &mut policy, &[9], Some(&mut guard), &mut NoTrace).unwrap();
        (thought, guard)
    }

    #[test]
    fn an_observing_monitor_reads_every_few_tokens_and_changes_nothing() {
        let (thought, guard) = watched(MonitorAction::Observe);
        assert_eq!(thought.tokens, vec![1; 8]);
        let read: Vec<(usize, f32)> = thought.readings.iter().map(|r| (r.tokens, r.score)).collect();
        assert_eq!(read, [(2, 1.0), (4, -2.0), (6, -2.0)], "every 2 tokens, the last read before the budget");
        assert_eq!(thought.warned_at, Some(4));
        assert_eq!(guard.cost().sequences, 3, "one guard call per reading, charged to the guard");
    }

    #[test]
    fn a_steering_monitor_appends_its_sentence_once_and_a_refusing_one_stops() {
        let (steered, _) = watched(MonitorAction::Steer);
        assert_eq!(steered.tokens, vec![1, 1, 1, 1, 6, 6, 1, 1], "the steer after the warning at 4");
        assert_eq!(steered.warned_at, Some(4));
        assert_eq!(steered.end, ThinkingEnd::Budget);
        let (refused, _) = watched(MonitorAction::Refuse);
        assert_eq!(refused.tokens, vec![1; 4]);
        assert_eq!(refused.end, ThinkingEnd::Monitor);
        let config = ReasoningConfig {
            monitor: Some(MonitorConfig { every: 2, threshold: 0.0, action: MonitorAction::Observe }),
            ..ReasoningConfig::exact(8)
        };
        let err = think(&how(&config, &markers()), &mut scripted(|_| 1), &[9], None, &mut NoTrace).unwrap_err();
        assert!(err.to_string().contains("no guard"), "{err}");
    }

    #[test]
    fn the_same_seed_gives_the_same_trace() {
        let policy = || FakePolicy::new(VOCAB, 0, |_| vec![-9.0, 1.0, -9.0, -9.0, -9.0, -9.0, 1.0]);
        let decoding = Decoding::Sample { temperature: 1.0, top_k: None, top_p: 1.0 };
        let go = |seed| {
            let config = ReasoningConfig { min_tokens: Some(0), ..ReasoningConfig::exact(12) };
            let markers = markers();
            let how = Thinking { config: &config, decoding, seed, markers: &markers, text: &text };
            think(&how, &mut policy(), &[9], None, &mut NoTrace).unwrap().tokens
        };
        assert_eq!(go(1), go(1));
        assert_ne!(go(1), go(2));
    }
}
