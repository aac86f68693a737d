use saffron_core::{Cost, Limit, TokenId};
use serde::{Deserialize, Serialize};

/// Why a node stopped growing.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum FinishReason {
    /// The policy chose an end-of-generation token (not part of the answer).
    EndOfGeneration,
    /// The answer reached `max_new_tokens`.
    Length,
    /// The search stopped (budget or observer) while this node was unfinished.
    Stopped,
}

/// What a search returns: the answer and everything it cost.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct SearchOutcome {
    /// Generated tokens only (the prefill is context, not output).
    pub tokens: Vec<TokenId>,
    pub finish: FinishReason,
    /// The score that made this answer win (PRM or MRM; `None` for `sample`).
    pub score: Option<f32>,
    /// Work of every model during the search, and its wall time. The final
    /// judge is not part of the search and never charged here.
    pub cost: Cost,
    /// Steps run (tokens, or chunks of tokens).
    pub steps: usize,
    /// What stopped the search early, if anything.
    pub stopped_by: Option<StopCause>,
    /// The answers ranked below this one, where the strategy ends with
    /// several: Best-of-N's other samples, best first; the other nodes of
    /// the final beam of beam, lookahead and Saffron, and Rebase's other
    /// finished and growing nodes, finished ones first, each best first.
    /// Empty for `sample`.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub runners_up: Vec<RunnerUp>,
}

/// An answer a search ranked below its best.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct RunnerUp {
    pub tokens: Vec<TokenId>,
    pub finish: FinishReason,
    pub score: Option<f32>,
}

/// Why a search stopped before every node finished.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum StopCause {
    /// The next step would have gone over this cap.
    Budget(Limit),
    /// The observer asked to stop (a closed stream, say).
    Observer,
}
