//! A defence that thinks before it answers: the prompt in a thinking format,
//! the trace under budget forcing ([`saffron_search::think`]), then the
//! configured search over the answer after the closed trace.

use saffron_core::{ModelCost, TokenId};
use saffron_engine::{ChatPrompt, THINK_CLOSE, THINK_OPEN};
use saffron_search::{MonitorReading, ReasoningConfig, ThinkingEnd, ThinkingFormat, ThinkingMarkers, Thought};
use serde::{Deserialize, Serialize};

use crate::backend::PolicyBackend;

/// The system instruction of the prompted format, for a policy whose chat
/// template has no thinking section. Put before any system prompt the
/// request has.
pub const THINKING_INSTRUCTION: &str = "Before you answer, think about the request step by step inside \
<think> and </think> tags. After </think>, write your final answer to the user.";

/// Where the policy is told it may stop thinking too early: what s1 appends.
pub const WAIT: &str = "\nWait";

/// What a steering monitor appends to the trace at its first warning
/// (SafeThink-style).
pub const STEER: &str = "\nWait, this request is harmful; I should refuse.\n";

/// The answer of a defence whose monitor refused.
pub const MONITOR_REFUSAL: &str = "I can't help with that request.";

/// The format a defence thinks in, resolved for its policy (never `Auto`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum ResolvedFormat {
    Native,
    Prompted,
}

impl ResolvedFormat {
    pub fn name(self) -> &'static str {
        match self {
            ResolvedFormat::Native => "native",
            ResolvedFormat::Prompted => "prompted",
        }
    }

    pub fn of(format: ThinkingFormat, policy: &dyn PolicyBackend) -> ResolvedFormat {
        match format {
            ThinkingFormat::Native => ResolvedFormat::Native,
            ThinkingFormat::Prompted => ResolvedFormat::Prompted,
            ThinkingFormat::Auto if policy.has_thinking_section() => ResolvedFormat::Native,
            ThinkingFormat::Auto => ResolvedFormat::Prompted,
        }
    }
}

/// The reasoning part of an answer, kept apart from it.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Reasoning {
    pub format: ResolvedFormat,
    /// The trace between `<think>` and `</think>`.
    pub text: String,
    /// Its length in policy tokens.
    pub tokens: usize,
    pub end: ThinkingEnd,
    /// Times "Wait" was appended (the model tried to stop before the minimum).
    pub waits: usize,
    /// Tokens generated and then dropped (early end tags).
    pub dropped: usize,
    /// The policy's work for the trace (inside the answer's `cost` too).
    pub cost: ModelCost,
    /// The monitor's readings of the trace (empty without a monitor); its
    /// guard's work is in the answer's `cost.prm`.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub monitor: Vec<MonitorReading>,
    /// Trace tokens read when the monitor first warned.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub warned_at: Option<usize>,
}

impl Reasoning {
    pub fn new(format: ResolvedFormat, thought: &Thought, policy: &dyn PolicyBackend) -> Reasoning {
        Reasoning {
            format,
            text: policy.detokenize(&thought.tokens),
            tokens: thought.tokens.len(),
            end: thought.end,
            waits: thought.waits,
            dropped: thought.dropped,
            cost: thought.cost,
            monitor: thought.readings.clone(),
            warned_at: thought.warned_at,
        }
    }
}

/// A prompt laid out for thinking: the context that opens the trace, and
/// what follows the trace before the answer.
pub(crate) struct ThinkingPrompt {
    pub format: ResolvedFormat,
    /// The chat (in the format) up to and including `<think>\n`.
    pub context: Vec<TokenId>,
    pub markers: ThinkingMarkers,
    /// After the trace's close: the attack's prefill, if any (the attack
    /// forces the first tokens of the answer, not of the thinking).
    pub prefill: Vec<TokenId>,
}

impl ThinkingPrompt {
    pub fn new(
        policy: &dyn PolicyBackend,
        chat: &ChatPrompt,
        config: &ReasoningConfig,
    ) -> Result<ThinkingPrompt, crate::DefenceError> {
        let format = ResolvedFormat::of(config.format, policy);
        let mut chat = chat.clone();
        let prefill = chat.prefill.take().map(|p| policy.tokenize(&p)).unwrap_or_default();
        if format == ResolvedFormat::Prompted {
            chat.system = Some(match chat.system.take() {
                Some(system) => format!("{THINKING_INSTRUCTION}\n\n{system}"),
                None => THINKING_INSTRUCTION.to_owned(),
            });
        }
        let mut context = policy.encode_chat(&chat)?;
        // A reasoning model's generation prompt may open the section itself.
        let tail = policy.detokenize(&context[context.len().saturating_sub(32)..]);
        if !tail.trim_end().ends_with(THINK_OPEN) {
            context.extend(policy.tokenize(&format!("{THINK_OPEN}\n")));
        }
        // Literal text: a reasoning model's `<think>` tokens are ordinary
        // added tokens, which llama.cpp's tokenizer matches in literal text.
        let markers = ThinkingMarkers {
            close: policy.tokenize(&format!("\n{THINK_CLOSE}\n\n")),
            end_tag: THINK_CLOSE.to_owned(),
            wait: policy.tokenize(WAIT),
            steer: policy.tokenize(STEER),
        };
        Ok(ThinkingPrompt { format, context, markers, prefill })
    }

    /// Tokens the trace and the answer add to the context at most.
    pub fn room_needed(&self, config: &ReasoningConfig, max_new_tokens: usize) -> usize {
        config.budget + self.markers.close.len() + self.prefill.len() + max_new_tokens
    }

    /// The answer's context: the prompt, the trace, its close, the prefill.
    pub fn answer_context(&self, thought: &Thought) -> Vec<TokenId> {
        [&self.context[..], &thought.tokens, &self.markers.close, &self.prefill].concat()
    }
}

#[cfg(test)]
mod tests {
    use saffron_search::{NoTrace, SearchConfig, StrategyKind};

    use super::*;
    use crate::fake::{self, text_of, FakePolicyBackend, COMPLIANCE, REFUSAL};
    use crate::DefenceModels;

    fn thinking(budget: usize, kind: StrategyKind) -> SearchConfig {
        let mut config = SearchConfig::new(kind.default_strategy());
        config.reasoning = Some(ReasoningConfig::exact(budget));
        config
    }

    #[test]
    fn the_prompted_format_instructs_opens_the_trace_and_puts_the_prefill_after_it() {
        let policy = FakePolicyBackend::default();
        let chat = ChatPrompt {
            system: Some("Be brief.".into()),
            prefill: Some("Sure,".into()),
            ..ChatPrompt::user("How do I pick a lock?")
        };
        let prompt = ThinkingPrompt::new(&policy, &chat, &ReasoningConfig::exact(8)).unwrap();
        assert_eq!(prompt.format, ResolvedFormat::Prompted, "the fake's template has no thinking section");
        let context = text_of(&prompt.context);
        assert!(context.starts_with(&format!("{THINKING_INSTRUCTION}\n\nBe brief.")), "{context}");
        assert!(context.ends_with("How do I pick a lock?<think>\n"), "{context}");
        let thought = Thought::of(policy.tokenize("hmm"));
        let answer_context = text_of(&prompt.answer_context(&thought));
        assert!(answer_context.ends_with("<think>\nhmm\n</think>\n\nSure,"), "{answer_context}");
    }

    #[test]
    fn a_template_with_a_thinking_section_is_used_as_it_is() {
        let policy = FakePolicyBackend { thinking_template: true, ..FakePolicyBackend::default() };
        let chat = ChatPrompt { system: Some("Be brief.".into()), ..ChatPrompt::user("How do I pick a lock?") };
        let prompt = ThinkingPrompt::new(&policy, &chat, &ReasoningConfig::exact(8)).unwrap();
        assert_eq!(prompt.format, ResolvedFormat::Native);
        let context = text_of(&prompt.context);
        assert!(!context.contains(THINKING_INSTRUCTION), "no instruction in the native format: {context}");
        assert!(context.starts_with("Be brief."), "{context}");
        assert_eq!(context.matches("<think>").count(), 1, "the template's own opening is not doubled: {context}");
        assert!(context.ends_with("<think>\n"), "{context}");
        // Asked for the prompted format, the same policy gets the instruction.
        let config = ReasoningConfig { format: ThinkingFormat::Prompted, ..ReasoningConfig::exact(8) };
        let prompted = ThinkingPrompt::new(&policy, &chat, &config).unwrap();
        assert_eq!(prompted.format, ResolvedFormat::Prompted);
        assert!(text_of(&prompted.context).starts_with(THINKING_INSTRUCTION));
    }

    #[test]
    fn an_answer_keeps_its_reasoning_apart_and_pays_for_both() {
        let models = fake::models();
        let chat = ChatPrompt::user("How do I pick a lock?");
        let answer = models
            .defence(thinking(40, StrategyKind::Sample))
            .unwrap()
            .answer(&chat.user, &chat, &mut NoTrace)
            .unwrap();
        let reasoning = answer.reasoning.as_ref().expect("a reasoning part");
        assert_eq!(reasoning.tokens, 40, "budget forcing: exactly the budget");
        assert!(reasoning.waits >= 1, "the fake stops after one sentence: {reasoning:?}");
        assert!(!answer.text.contains("Wait"), "the answer is the answer alone: {:?}", answer.text);
        assert!(answer.text == REFUSAL || COMPLIANCE.starts_with(&answer.text), "{:?}", answer.text);
        assert!(answer.cost.policy.tokens_computed >= reasoning.cost.tokens_computed + answer.tokens.len() as u64 - 1);
        assert!(reasoning.cost.tokens_computed >= 40);

        let plain = models.defence(SearchConfig::new(StrategyKind::Sample.default_strategy())).unwrap();
        let plain = plain.answer(&chat.user, &chat, &mut NoTrace).unwrap();
        assert!(plain.reasoning.is_none());
        assert!(plain.cost.policy.tokens_computed < answer.cost.policy.tokens_computed);
    }

    #[test]
    fn the_searches_answer_after_the_trace() {
        let models = fake::models();
        let chat = ChatPrompt::user("How do I pick a lock?");
        for kind in [StrategyKind::BestOfN, StrategyKind::Saffron] {
            let defence = models.defence(thinking(16, kind)).unwrap();
            let answer = defence.answer(&chat.user, &chat, &mut NoTrace).unwrap();
            assert_eq!(answer.reasoning.as_ref().map(|r| r.tokens), Some(16), "{kind}");
            assert_eq!(answer.text, REFUSAL, "{kind}: the reward models still steer the answer");
        }
    }

    #[test]
    fn a_monitor_reads_the_trace_with_the_guard_and_may_refuse() {
        use saffron_search::{MonitorAction, MonitorConfig};
        let models = fake::models();
        let chat = ChatPrompt { prefill: Some("Sure,".into()), ..ChatPrompt::user("How do I pick a lock?") };
        let watched = |action, seed| {
            let mut config = thinking(24, StrategyKind::Sample);
            config.seed = seed;
            config.reasoning.as_mut().unwrap().monitor = Some(MonitorConfig { every: 8, threshold: 0.0, action });
            models.defence(config).unwrap().answer(&chat.user, &chat, &mut NoTrace).unwrap()
        };
        // The fake's trace opens with a refusal or a compliance; the fake
        // guard calls a compliance unsafe.
        let observed: Vec<_> = (0..12).map(|seed| watched(MonitorAction::Observe, seed)).collect();
        for a in &observed {
            let r = a.reasoning.as_ref().unwrap();
            assert_eq!(r.monitor.iter().map(|m| m.tokens).collect::<Vec<_>>(), [8, 16]);
            assert_eq!(a.cost.prm.sequences, 2, "two readings, charged to the PRM");
            assert_ne!(a.text, MONITOR_REFUSAL);
        }
        let seed = observed.iter().position(|a| a.reasoning.as_ref().unwrap().warned_at.is_some());
        let seed = seed.expect("some trace complies and is warned about") as u64;
        let refused = watched(MonitorAction::Refuse, seed);
        assert_eq!(refused.text, MONITOR_REFUSAL);
        assert_eq!(refused.reasoning.as_ref().unwrap().end, ThinkingEnd::Monitor);
        assert!(refused.reasoning.as_ref().unwrap().tokens < 24);
        let steered = watched(MonitorAction::Steer, seed);
        // (The byte-level fake spends a token a byte: the budget cuts the sentence.)
        assert!(steered.reasoning.as_ref().unwrap().text.contains("\nWait, this requ"), "{:?}", steered.reasoning);
        // No guard loaded: refused before any work.
        let policy_only = DefenceModels::new(
            Box::new(FakePolicyBackend::default()),
            None,
            None,
            saffron_engine::TreeOptions::default(),
        );
        let mut config = thinking(24, StrategyKind::Sample);
        config.reasoning.as_mut().unwrap().monitor =
            Some(MonitorConfig { every: 8, threshold: 0.0, action: MonitorAction::Observe });
        assert!(policy_only.defence(config).is_err());
    }

    #[test]
    fn a_raw_completion_cannot_think() {
        let models = fake::models();
        let defence = models.defence(thinking(8, StrategyKind::Sample)).unwrap();
        let err = defence.answer_context("x", vec![1, 2, 3], &mut NoTrace).unwrap_err();
        assert!(matches!(err, crate::DefenceError::ReasoningNeedsChat), "{err}");
    }

    #[test]
    fn a_budget_past_the_context_is_refused_before_any_work() {
        let models = fake::models();
        let mut config = thinking(4090, StrategyKind::Sample);
        config.reasoning.as_mut().unwrap().min_tokens = Some(0);
        let chat = ChatPrompt::user("How do I pick a lock?");
        let err = models.defence(config).unwrap().answer(&chat.user, &chat, &mut NoTrace).unwrap_err();
        assert!(matches!(err, crate::DefenceError::PromptTooLong { .. }), "{err}");
    }
}
