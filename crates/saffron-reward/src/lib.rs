//! Safety reward models (method.md sections 1 and 2).
//!
//! - [`VerdictGuard`]: a causal LM whose verdict logits give
//!   `safe − unsafe` (the Llama Guard convention); bound to a prompt it is a
//!   process reward model ([`saffron_core::ProcessReward`]);
//! - [`RefusalJudge`]: the classic refusal-substring judge (GCG/AdvBench);
//! - [`PolicyLogitsMrm`]: a stand-in MRM (the policy's logits) for exercising
//!   the Saffron search before a trained MRM exists;
//! - [`spec`]: which guard, MRM or judge, parsed once from a flag or a grid;
//!   [`load`]: specs into loaded models, each model file loaded once.

mod error;
mod guard;
mod guard_input;
pub mod judge_data;
pub mod load;
mod metrics;
pub mod mrm;
mod policy_logits_mrm;
pub mod probe;
mod refusal;
pub mod spec;
mod tensors;
pub mod training;
mod verdict;

pub use error::RewardError;
pub use guard::{forget_pairs, BoundGuard, Guard};
pub use guard_input::{
    Boundary, GuardFormat, GuardInput, LOCAL_GUARD_INSTRUCTION, PROBE_GUARD_INSTRUCTION, PROBE_GUARD_OPEN_INSTRUCTION,
};
pub use load::{LoadedGuard, LoadedJudge, LoadedModel, LoadedMrm, Loader};
pub use metrics::{auc, BinaryMetrics};
pub use policy_logits_mrm::PolicyLogitsMrm;
pub use probe::ProbeGuard;
pub use refusal::{RefusalJudge, REFUSAL_PHRASES};
pub use spec::{GuardSpec, JudgeSpec, MrmSpec, VerdictFormat};
pub use training::Training;
pub use verdict::{VerdictGuard, VerdictGuardConfig};
