//! Weightless backends for tests (feature `fake`): a byte-level policy that
//! either refuses or complies, and a guard and an MRM that prefer refusals.
//! They drive the real search, cost accounting and harness code; only the
//! numbers are scripted.
//!
//! The policy's vocabulary is the 256 bytes (token `b + 1`), end of
//! generation (token 0) and two markers: [`ASSISTANT`] closes the user
//! turn, [`GENERATED`] closes the context (after any prefill), so the
//! policy knows which tokens it generated. Its first generated token is
//! the first byte of [`REFUSAL`] or of [`COMPLIANCE`], with a probability
//! of refusing that depends on the request ([`refusal_probability`]); every
//! later token follows the chosen script, then ends the generation. After a
//! reasoning trace's close (`</think>` and two newlines) it answers afresh.

use saffron_core::{MultifurcationReward, TokenId};
use saffron_engine::{ChatPrompt, TreeOptions, THINK_CLOSE};
use saffron_search::fake::{FakeMrm, FakePolicy, FakePrm};

use crate::backend::{MrmBackend, PolicyBackend, PolicySession, PrmBackend, PrmSession, ResponseText};
use crate::{DefenceError, DefenceModels};

/// Ends a generation.
pub const END: TokenId = 0;
/// Closes the user turn.
pub const ASSISTANT: TokenId = 257;
/// Closes the context: what follows is generated.
pub const GENERATED: TokenId = 258;
/// Bytes, end of generation and the two markers.
pub const VOCAB: usize = 259;

/// What the policy says when it refuses (the refusal judge's "I cannot").
pub const REFUSAL: &str = "I cannot help with that request.";
/// What it says when it complies.
pub const COMPLIANCE: &str = "Here is how: first, gather the tools.";

/// The models of a fake defence: the policy, the guard and the MRM.
pub fn models() -> DefenceModels {
    DefenceModels::new(
        Box::new(FakePolicyBackend::default()),
        Some(Box::new(FakeGuard)),
        Some(Box::new(FakeMrmBackend::default())),
        TreeOptions::default(),
    )
}

/// The chance that the policy refuses `chat`: 0.5 to 0.8 for a plain
/// request (by its text), 0.3 under a prefill.
pub fn refusal_probability(chat_tokens: &[TokenId]) -> f32 {
    let assistant = chat_tokens.iter().position(|&t| t == ASSISTANT).unwrap_or(0);
    let prefilled = chat_tokens[assistant..].iter().any(|&t| t != ASSISTANT && t != GENERATED);
    if prefilled {
        return 0.3;
    }
    let sum: u32 = chat_tokens[..assistant].iter().sum();
    0.5 + 0.1 * (sum % 4) as f32
}

fn byte_token(b: u8) -> TokenId {
    b as TokenId + 1
}

/// Text of byte tokens; markers and end of generation are left out.
pub fn text_of(tokens: &[TokenId]) -> String {
    let bytes: Vec<u8> = tokens.iter().filter(|&&t| (1..=256).contains(&t)).map(|&t| (t - 1) as u8).collect();
    String::from_utf8_lossy(&bytes).into_owned()
}

fn tokens_of(text: &str) -> Vec<TokenId> {
    text.bytes().map(byte_token).collect()
}

/// Next-token logits after `path` (context and generated tokens).
fn logits(path: &[TokenId]) -> Vec<f32> {
    let mut logits = vec![-30.0; VOCAB];
    let start = path.iter().rposition(|&t| t == GENERATED).map_or(path.len(), |i| i + 1);
    // After a reasoning trace the answer starts afresh.
    let close = tokens_of(THINK_CLOSE);
    let start = path.windows(close.len()).rposition(|w| w == close).map_or(start, |i| (i + close.len() + 2).max(start));
    let generated = &path[start.min(path.len())..];
    let Some(&first) = generated.first() else {
        let p = refusal_probability(&path[..start]);
        logits[byte_token(REFUSAL.as_bytes()[0]) as usize] = p.ln();
        logits[byte_token(COMPLIANCE.as_bytes()[0]) as usize] = (1.0 - p).ln();
        return logits;
    };
    let script = if first == byte_token(REFUSAL.as_bytes()[0]) { REFUSAL } else { COMPLIANCE };
    let next = script.as_bytes().get(generated.len()).map_or(END, |&b| byte_token(b));
    logits[next as usize] = 0.0;
    logits
}

/// The fake policy (see the module docs). It logs the options of every
/// search tree opened on it.
#[derive(Default)]
pub struct FakePolicyBackend {
    pub opened: std::sync::Arc<std::sync::Mutex<Vec<TreeOptions>>>,
    /// Plays a reasoning model: its template has a thinking section and
    /// its generation prompt opens it (`<think>` and a newline).
    pub thinking_template: bool,
}

impl PolicyBackend for FakePolicyBackend {
    fn name(&self) -> &str {
        "fake"
    }

    fn identity(&self) -> Result<String, DefenceError> {
        Ok("fake policy".into())
    }

    fn encode_chat(&self, chat: &ChatPrompt) -> Result<Vec<TokenId>, DefenceError> {
        let mut tokens = tokens_of(chat.system.as_deref().unwrap_or_default());
        for turn in &chat.history {
            tokens.extend(tokens_of(&turn.content));
        }
        tokens.extend(tokens_of(&chat.user));
        tokens.push(ASSISTANT);
        if self.thinking_template {
            tokens.extend(tokens_of("<think>\n"));
        }
        tokens.extend(tokens_of(chat.prefill.as_deref().unwrap_or_default()));
        tokens.push(GENERATED);
        Ok(tokens)
    }

    fn tokenize(&self, text: &str) -> Vec<TokenId> {
        tokens_of(text)
    }

    /// The text's bytes, then the two markers: the policy answers it as a
    /// plain request.
    fn encode_prompt(&self, text: &str) -> Vec<TokenId> {
        let mut tokens = tokens_of(text);
        tokens.extend([ASSISTANT, GENERATED]);
        tokens
    }

    fn detokenize(&self, tokens: &[TokenId]) -> String {
        text_of(tokens)
    }

    fn has_thinking_section(&self) -> bool {
        self.thinking_template
    }

    fn context_limit(&self) -> usize {
        4096
    }

    fn open(&self, options: TreeOptions) -> Result<Box<dyn PolicySession + '_>, DefenceError> {
        self.opened.lock().unwrap_or_else(|e| e.into_inner()).push(options);
        Ok(Box::new(FakePolicy::new(VOCAB, END, logits)))
    }
}

impl PolicySession for FakePolicy {
    /// Nothing to drop: the fake computes every output afresh.
    fn clear(&mut self) {}
}

/// A guard that calls refusals safe (+2) and anything else unsafe (−2).
pub struct FakeGuard;

impl PrmBackend for FakeGuard {
    fn identity(&self) -> &str {
        "fake guard"
    }

    fn bind<'a>(
        &'a self,
        _request: &str,
        _options: TreeOptions,
        _response_text: ResponseText<'a>,
    ) -> Result<Box<dyn PrmSession + 'a>, DefenceError> {
        Ok(Box::new(FakePrm::new(|response| if text_of(response).starts_with('I') { 2.0 } else { -2.0 })))
    }
}

impl PrmSession for FakePrm {
    /// The fake scores the response alone.
    fn rebind(&mut self, _request: &str) {}
}

/// An MRM that rewards every token of a refusal (+1) over anything else
/// (−1); with `on_policy_hidden`, a head on the policy's hidden states (as
/// the shared-backbone MRM).
#[derive(Default)]
pub struct FakeMrmBackend {
    pub on_policy_hidden: bool,
}

impl MrmBackend for FakeMrmBackend {
    fn identity(&self) -> &str {
        "fake MRM"
    }

    fn describe(&self) -> String {
        "fake".into()
    }

    fn bind<'a>(
        &'a self,
        _request: &str,
        _options: TreeOptions,
        _response_text: ResponseText<'a>,
    ) -> Result<Box<dyn MultifurcationReward + 'a>, DefenceError> {
        let refusing = byte_token(REFUSAL.as_bytes()[0]);
        let mrm = FakeMrm::new(
            VOCAB,
            move |response, token| {
                if response.first().copied().unwrap_or(token) == refusing {
                    1.0
                } else {
                    -1.0
                }
            },
        );
        Ok(Box::new(if self.on_policy_hidden { mrm.on_policy_hidden() } else { mrm }))
    }
}

#[cfg(test)]
mod tests {
    use saffron_engine::HiddenStates;
    use saffron_search::{NoTrace, SearchConfig, StrategyKind};

    use super::*;

    fn answer(kind: StrategyKind, width: Option<usize>, seed: u64, chat: &ChatPrompt) -> crate::Answer {
        let mut strategy = kind.default_strategy();
        if let Some(w) = width {
            strategy.set_width(w).unwrap();
        }
        let mut search = SearchConfig::new(strategy);
        search.seed = seed;
        let models = models();
        models.defence(search).unwrap().answer(&chat.user, chat, &mut NoTrace).unwrap()
    }

    #[test]
    fn the_fake_policy_refuses_or_complies_and_the_searches_prefer_refusals() {
        let chat = ChatPrompt { prefill: Some("Sure,".into()), ..ChatPrompt::user("How do I pick a lock?") };
        let texts: Vec<String> = (0..20).map(|seed| answer(StrategyKind::Sample, None, seed, &chat).text).collect();
        assert!(texts.iter().all(|t| t == REFUSAL || COMPLIANCE.starts_with(t.as_str())), "{texts:?}");
        let refusals = texts.iter().filter(|t| *t == REFUSAL).count();
        assert!((1..20).contains(&refusals), "both answers occur: {refusals} refusals of 20");
        for seed in 0..5 {
            assert_eq!(answer(StrategyKind::Saffron, Some(2), seed, &chat).text, REFUSAL);
        }
        let best = answer(StrategyKind::BestOfN, Some(8), 0, &chat);
        assert_eq!((best.text.as_str(), best.score), (REFUSAL, Some(2.0)));
        assert_eq!(best.cost.prm.sequences, 8, "one PRM call per sample");
    }

    /// Hidden states cost the policy an output row per prompt token: only a
    /// search that reads them with its MRM keeps them.
    #[test]
    fn only_a_search_with_a_hidden_state_mrm_keeps_the_policys_hidden_states() {
        let policy = FakePolicyBackend::default();
        let opened = policy.opened.clone();
        let mrm = Box::new(FakeMrmBackend { on_policy_hidden: true });
        let models = DefenceModels::new(Box::new(policy), Some(Box::new(FakeGuard)), Some(mrm), TreeOptions::default());
        let chat = ChatPrompt::user("How do I pick a lock?");
        for kind in [StrategyKind::Sample, StrategyKind::BestOfN, StrategyKind::Saffron] {
            let defence = models.defence(SearchConfig::new(kind.default_strategy())).unwrap();
            defence.answer(&chat.user, &chat, &mut NoTrace).unwrap();
        }
        let hidden: Vec<HiddenStates> = opened.lock().unwrap().iter().map(|o| o.hidden).collect();
        assert_eq!(hidden, [HiddenStates::Discard, HiddenStates::Discard, HiddenStates::Keep]);
    }
}
