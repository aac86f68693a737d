//! The defence layer: one [`Defence`] (a policy, a search configuration and
//! the reward models the search needs) that answers a prompt.
//!
//! The commands and the evaluation harness answer through
//! [`Defence::answer`] (the guarded server is to do the same); nothing
//! assembles a defence by hand. A defence is
//! made from [`DefenceModels`], loaded once from typed specs
//! ([`DefenceSpec`]: the policy, a [`GuardSpec`] for the PRM, an
//! [`MrmSpec`]) and shared by every defence of a run, each with its own
//! [`SearchConfig`].
//!
//! The models are reached through three small traits ([`backend`]): the
//! llama.cpp implementations load from specs ([`local`]); the `fake`
//! feature adds weightless ones for tests ([`fake`]).
//!
//! Why a crate of its own: a defence joins the search (saffron-search,
//! which knows only the core traits) with the engine and the reward models
//! (saffron-reward). Placed here, every arrow points one way: core ← engine
//! ← reward, core ← search, and defence ← eval ← cli.

pub mod backend;
pub mod batched;
pub mod bench;
mod defence;
mod error;
#[cfg(feature = "fake")]
pub mod fake;
pub mod local;
pub mod reasoning;
pub mod remote;

pub use backend::{MrmBackend, PolicyBackend, PolicySession, PrmBackend, PrmSession};
pub use batched::{BatchOptions, BatchStats, BatchedPolicy};
pub use defence::{Alternative, Answer, Defence, DefenceModels, DefenceSpec, RemoteRun, RewardBinding, TokenLogprob};
pub use error::DefenceError;
pub use reasoning::{Reasoning, ResolvedFormat};
pub use remote::{NucleusCuts, RemoteOptions, RemotePolicy, RemoteSpec, RemoteTable};
pub use saffron_reward::{GuardSpec, JudgeSpec, MrmSpec, VerdictFormat};
pub use saffron_search::{SearchConfig, StrategyKind};
