use std::sync::Arc;

use crate::{ModelCost, ModelError, TokenId};

/// Which outputs a caller needs for the sequences it asks about.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum WantedOutputs {
    /// Next-token logits over the vocabulary.
    Logits,
    /// The final hidden state (after the output norm) at the last position.
    Hidden,
    /// Both of the above.
    LogitsAndHidden,
}

impl WantedOutputs {
    pub fn logits(self) -> bool {
        matches!(self, Self::Logits | Self::LogitsAndHidden)
    }

    pub fn hidden(self) -> bool {
        matches!(self, Self::Hidden | Self::LogitsAndHidden)
    }
}

/// Outputs of a model at the last position of one sequence.
///
/// Shared (`Arc`) because the prefix tree memoises them: asking again for the
/// same sequence returns the same buffers at zero cost.
#[derive(Debug, Clone, Default)]
pub struct SequenceOutputs {
    pub logits: Option<Arc<[f32]>>,
    pub hidden: Option<Arc<[f32]>>,
}

/// A causal language model that a search drives: given a set of token
/// sequences (all sharing one prompt, at mixed depths), it returns each
/// sequence's next-token outputs, computing shared prefixes once.
///
/// Sequences are named by their full token path (prompt, prefill and
/// generated tokens). The implementation decides what is cached; the cost
/// counters tell the caller what was actually computed.
pub trait Policy {
    /// Size of the vocabulary; logits vectors have this length.
    fn vocab_size(&self) -> usize;

    /// Whether `token` ends a generation (end-of-sequence / end-of-turn).
    fn is_end_of_generation(&self, token: TokenId) -> bool;

    /// Every end-of-generation token, ascending. The default scans the
    /// vocabulary; a model that knows its list should return it directly.
    fn end_of_generation_tokens(&self) -> Vec<TokenId> {
        (0..self.vocab_size() as TokenId).filter(|&t| self.is_end_of_generation(t)).collect()
    }

    /// Outputs at the last position of each sequence, in the order given.
    /// Every sequence must be non-empty.
    fn outputs(&mut self, sequences: &[&[TokenId]], wanted: WantedOutputs) -> Result<Vec<SequenceOutputs>, ModelError>;

    /// Work done so far by this model.
    fn cost(&self) -> ModelCost;
}
