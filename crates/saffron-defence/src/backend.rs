//! What a defence needs of its models, as three small traits: a policy it
//! can open a search tree on, and reward models it can bind to one
//! request. The llama.cpp implementations are in [`crate::local`]; the
//! `fake` feature adds weightless ones ([`crate::fake`]).
//!
//! Contract: a backend is loaded once and shared by every search of a run
//! (hence `Sync`); each search opens its own session (`open`, `bind`) with
//! fresh cost counters, used by one thread and dropped at the search's end.

use std::time::Duration;

use saffron_core::{MultifurcationReward, Policy, ProcessReward, TokenId};
use saffron_engine::{ChatPrompt, TreeOptions};

use crate::DefenceError;

/// Turns policy tokens into the text of a response (what a reward model
/// that reads text is given).
pub type ResponseText<'a> = Box<dyn Fn(&[TokenId]) -> String + 'a>;

/// The policy: its vocabulary, its chat template, and search trees over it.
pub trait PolicyBackend: Send + Sync {
    /// The name the policy was asked for by (a catalog name or a path).
    fn name(&self) -> &str;

    /// What identifies the weights in a run's provenance (their sha256).
    fn identity(&self) -> Result<String, DefenceError>;

    /// The tokens of a chat prompt: the template around the system and user
    /// turns, then the assistant header and any prefill.
    fn encode_chat(&self, chat: &ChatPrompt) -> Result<Vec<TokenId>, DefenceError>;

    /// Text into tokens, special-token text taken literally.
    fn tokenize(&self, text: &str) -> Vec<TokenId>;

    /// A raw prompt (no chat template) as the context of a completion:
    /// special-token text such as `<|im_start|>` is parsed, so a caller
    /// may write a template by hand.
    fn encode_prompt(&self, text: &str) -> Vec<TokenId>;

    /// Totals of the trees its searches share, for a policy whose searches
    /// share them ([`crate::BatchedPolicy`]); `None` otherwise.
    fn shared_stats(&self) -> Option<crate::BatchStats> {
        None
    }

    fn detokenize(&self, tokens: &[TokenId]) -> String;

    /// Whether the chat template has a `<think>` section of its own (a
    /// reasoning model's native thinking format).
    fn has_thinking_section(&self) -> bool {
        false
    }

    /// Where the policy is served, for a remote one.
    fn remote(&self) -> Option<&crate::remote::RemoteSpec> {
        None
    }

    /// Most tokens one search may hold: its context and its answer.
    fn context_limit(&self) -> usize;

    /// A fresh search tree over the policy.
    fn open(&self, options: TreeOptions) -> Result<Box<dyn PolicySession + '_>, DefenceError>;
}

/// The policy of one search.
pub trait PolicySession: Policy {
    /// Drops every cached prefix (the session then starts afresh).
    fn clear(&mut self);

    /// Time spent inside the inference engine (the rest of a search's wall
    /// time is the search's own overhead).
    fn engine_time(&self) -> Duration {
        Duration::ZERO
    }

    /// Tokens of the first call's first path found already cached: for a
    /// search, how much of its context an earlier search left in a shared
    /// tree.
    /// A session's own fresh tree has none.
    fn first_call_cached(&self) -> u64 {
        0
    }

    /// For a policy that returns only its top-k next tokens (a remote
    /// engine): the probability mass those held, per distribution read.
    fn top_k_masses(&self) -> Option<&[f32]> {
        None
    }

    /// Tells a policy that returns only its top-k next tokens the
    /// probability mass its search draws candidates from
    /// ([`saffron_search::SearchConfig::nucleus_mass`]), so it can tell a
    /// distribution it holds whole from one it must cut.
    fn set_nucleus(&mut self, _mass: f32) {}
}

/// A process reward model (a guard): bound to one request, it scores
/// responses to it.
pub trait PrmBackend: Send + Sync {
    /// What identifies the weights in a run's provenance.
    fn identity(&self) -> &str;

    /// The PRM of one search on `request` (the user's request as asked:
    /// no attack template, no prefill).
    fn bind<'a>(
        &'a self,
        request: &str,
        options: TreeOptions,
        response_text: ResponseText<'a>,
    ) -> Result<Box<dyn PrmSession + 'a>, DefenceError>;
}

/// The PRM of one search.
pub trait PrmSession: ProcessReward {
    /// Time spent inside the inference engine.
    fn engine_time(&self) -> Duration {
        Duration::ZERO
    }

    /// Points the session at another request (a labeller going from prompt
    /// to prompt), forgetting the last request's responses but keeping what
    /// every input of the guard shares (its instruction) computed.
    fn rebind(&mut self, request: &str);
}

/// A multifurcation reward model: bound to one request, it scores every
/// next token of a response in one call.
pub trait MrmBackend: Send + Sync {
    /// What identifies its training in a run's provenance.
    fn identity(&self) -> &str;

    /// In words, for messages: "shared backbone", "on smollm2", ….
    fn describe(&self) -> String;

    /// The MRM of one search on `request`.
    fn bind<'a>(
        &'a self,
        request: &str,
        options: TreeOptions,
        response_text: ResponseText<'a>,
    ) -> Result<Box<dyn MultifurcationReward + 'a>, DefenceError>;
}
