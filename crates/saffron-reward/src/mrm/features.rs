//! Training examples for a shared-backbone MRM: the policy's hidden state
//! at every node of every corpus response, with the token that followed and
//! the PRM's reward of the extended prefix.

use saffron_core::{SequenceOutputs, TokenId, WantedOutputs};
use saffron_engine::PrefixTree;

use super::corpus::LabelledSequence;
use super::train::Example;
use crate::RewardError;

/// Examples of each sequence (in order), computed in `tree` (which must keep
/// hidden states). Sequences with the same context in a row share it in the
/// tree; the tree is cleared when the context changes, keeping llama.cpp's
/// attention span short. `progress` is told how many sequences are done.
pub fn policy_examples(
    tree: &mut PrefixTree,
    sequences: &[&LabelledSequence],
    progress: &mut dyn FnMut(usize),
) -> Result<Vec<Vec<Example>>, RewardError> {
    let mut all = Vec::with_capacity(sequences.len());
    let mut last_context: Option<&[TokenId]> = None;
    for (i, seq) in sequences.iter().enumerate() {
        if last_context != Some(seq.context.as_slice()) {
            tree.clear();
            last_context = Some(&seq.context);
        }
        let paths: Vec<Vec<TokenId>> =
            (0..seq.response.len()).map(|j| [seq.context.as_slice(), &seq.response[..j]].concat()).collect();
        let refs: Vec<&[TokenId]> = paths.iter().map(Vec::as_slice).collect();
        let outputs = tree.outputs(&refs, WantedOutputs::Hidden)?;
        all.push(examples_at(&outputs, seq)?);
        progress(i + 1);
    }
    Ok(all)
}

/// One example per node of `seq`: the hidden state in `outputs` (node `j`
/// = the response cut before token `j`), the token that followed, and the
/// reward of the extended prefix.
pub fn examples_at(outputs: &[SequenceOutputs], seq: &LabelledSequence) -> Result<Vec<Example>, RewardError> {
    outputs
        .iter()
        .zip(seq.response.iter().zip(&seq.rewards))
        .map(|(o, (&token, &reward))| {
            let hidden = o.hidden.as_deref().ok_or(RewardError::MissingHidden)?;
            Ok(Example { hidden: hidden.to_vec(), token, reward })
        })
        .collect()
}
