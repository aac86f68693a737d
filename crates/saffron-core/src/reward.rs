use std::sync::Arc;

use crate::{ModelCost, ModelError, SequenceOutputs, TokenId};

/// A safety reward on (prompt, partial or complete response): larger is
/// safer, `< 0` is unsafe (method.md section 1). Evaluated on partial
/// responses it is a process reward model (PRM).
///
/// An implementation is bound to one prompt (it was built for it), so calls
/// pass only the response: the policy's token ids of the *generated* tokens,
/// never the prefill, which is context the reward does not see.
pub trait ProcessReward {
    /// The reward of each response, in the order given.
    fn score(&mut self, responses: &[&[TokenId]]) -> Result<Vec<f32>, ModelError>;

    /// Work done so far; `sequences` counts reward evaluations.
    fn cost(&self) -> ModelCost;
}

/// A multifurcation reward model (MRM, method.md section 2): for a response
/// `s`, one call gives a reward for every next token, `M(s)[a] ≈ R(s·a)`,
/// indexed by policy token id. Bound to one prompt, as [`ProcessReward`].
pub trait MultifurcationReward {
    /// Whether [`rewards`](Self::rewards) reads the policy's final hidden
    /// state of each node (a head on the policy's own backbone, which costs
    /// no extra forward pass). A search then asks the policy for hidden states
    /// along with the logits it needs anyway.
    fn needs_policy_hidden(&self) -> bool {
        false
    }

    /// For each response, a reward for every next token (length = policy
    /// vocabulary). `policy` holds the policy's outputs for the same nodes
    /// (with hidden states when [`needs_policy_hidden`](Self::needs_policy_hidden)).
    fn rewards(&mut self, responses: &[&[TokenId]], policy: &[SequenceOutputs]) -> Result<Vec<Arc<[f32]>>, ModelError>;

    /// Whether `token` was never a supervised next token in training: its
    /// reward is meaningless, and a conservative search never picks it
    /// (method.md section 2).
    fn is_unseen(&self, token: TokenId) -> bool;

    /// Work done so far; `sequences` counts nodes scored.
    fn cost(&self) -> ModelCost;
}
