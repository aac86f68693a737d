//! A streaming guard: what the per-prefix probe guard says of every prefix
//! of a response, read from one forward pass over the whole response.
//!
//! The per-prefix guard scores `response[..j]` at the end of its input,
//! after the response and the closing template tail, so every prefix costs
//! the tail again (about 14 guard tokens). Here the guard's backbone reads
//! (prompt, whole response) in the same format once; the feature of prefix
//! `j` is the final hidden state at the prefix's last response token, with
//! nothing after it, and a linear head fitted to the guard's own log-odds
//! on labelled prefixes (a regression, [`LinearHead::fit_squared`]) turns
//! it into a reward. One guard token per prefix instead of the tail.
//!
//! It imitates the guard; it is no better than its agreement with it on
//! prompts it was not fitted on, which [`fit_streaming`] measures.

use saffron_core::{TokenId, WantedOutputs};
use saffron_engine::PrefixTree;
use serde::{Deserialize, Serialize};

use super::head::{HeadTraining, LinearHead};
use crate::mrm::train::Fidelity;
use crate::{GuardInput, RewardError};

/// Prompts are cut to this many guard tokens, as the probe guard cuts them.
pub const STREAM_PROMPT_TOKENS: usize = 128;
/// Responses are read up to this many guard tokens.
pub const STREAM_RESPONSE_TOKENS: usize = 128;

/// For each prefix of a response (its text's byte length), how many of the
/// response's guard tokens lie wholly inside it. `token_ends[k]` is the
/// byte length the first `k + 1` guard tokens cover.
pub fn aligned_counts(token_ends: &[usize], prefix_lens: &[usize]) -> Vec<usize> {
    prefix_lens.iter().map(|&len| token_ends.partition_point(|&end| end <= len)).collect()
}

/// The feature rows of the prefixes of one response: `prefixes` are the
/// texts of the response cut after each of its tokens (in the policy's
/// tokens, so they grow), the last being the whole response.
pub fn prefix_rows(
    input: &GuardInput,
    tree: &mut PrefixTree,
    prompt: &str,
    prefixes: &[String],
) -> Result<Vec<Vec<f32>>, RewardError> {
    let Some(full) = prefixes.last() else { return Ok(Vec::new()) };
    let mut response = input.response_tokens(full);
    response.truncate(STREAM_RESPONSE_TOKENS);
    let model = input.model();
    let covered: Vec<usize> = (1..=response.len()).map(|k| model.detokenize(&response[..k]).len()).collect();
    // A leading space the response slot adds is not part of the text.
    let lead = model.detokenize(&input.response_tokens(full)).len().saturating_sub(full.len());
    let token_ends: Vec<usize> = covered.iter().map(|e| e.saturating_sub(lead)).collect();
    let lens: Vec<usize> = prefixes.iter().map(String::len).collect();
    let counts = aligned_counts(&token_ends, &lens);
    let mut prompt_tokens = input.prompt_tokens(prompt);
    prompt_tokens.truncate(STREAM_PROMPT_TOKENS);
    let begin = input.response_start(prompt_tokens.len());
    let tokens = input.encode_tokens(&prompt_tokens, &response);
    let paths: Vec<&[TokenId]> = counts.iter().map(|&c| &tokens[..begin + c]).collect();
    let outputs = tree.outputs(&paths, WantedOutputs::Hidden)?;
    outputs.into_iter().map(|o| o.hidden.map(|h| h.to_vec()).ok_or(RewardError::MissingHidden)).collect()
}

/// How closely a streaming head follows the guard.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct Agreement {
    pub fidelity: Fidelity,
    /// Share of prefixes the two call alike (both `< 0` or both `≥ 0`).
    pub same_verdict: f64,
}

impl Agreement {
    /// Of (streaming reward, guard reward) pairs.
    pub fn of(pairs: &[(f64, f64)]) -> Agreement {
        let same = pairs.iter().filter(|(s, g)| (*s < 0.0) == (*g < 0.0)).count();
        Agreement { fidelity: Fidelity::of(pairs), same_verdict: same as f64 / pairs.len().max(1) as f64 }
    }
}

/// One labelled response for fitting: its prefixes' feature rows and the
/// guard's reward of each, and whether its prompt is held out.
pub struct StreamExample {
    pub rows: Vec<Vec<f32>>,
    pub rewards: Vec<f32>,
    pub held_out: bool,
}

/// A fitted streaming head with its agreement on both sides.
pub struct StreamFit {
    pub head: LinearHead,
    pub train: Agreement,
    pub held_out: Agreement,
}

/// Fits the head to the guard's log-odds (its negated reward) on the
/// examples not held out; measures agreement on both sides.
pub fn fit_streaming(examples: &[StreamExample], training: &HeadTraining) -> Result<StreamFit, RewardError> {
    let side = |held: bool| -> (Vec<&[f32]>, Vec<f32>) {
        let picked = examples.iter().filter(|e| e.held_out == held);
        let rows = picked.clone().flat_map(|e| e.rows.iter().map(Vec::as_slice)).collect();
        (rows, picked.flat_map(|e| e.rewards.iter().map(|r| -r)).collect())
    };
    let (train_rows, train_z) = side(false);
    if train_rows.is_empty() {
        return Err(RewardError::Data {
            file: "(streaming guard)".into(),
            detail: "no labelled prefixes to fit".into(),
        });
    }
    let head = LinearHead::fit_squared(&train_rows, &train_z, training);
    let agreement = |(rows, z): (Vec<&[f32]>, Vec<f32>)| -> Agreement {
        let pairs: Vec<(f64, f64)> = rows.iter().zip(&z).map(|(r, z)| (head.reward(r) as f64, -*z as f64)).collect();
        Agreement::of(&pairs)
    };
    let (train, held_out) = (agreement((train_rows, train_z)), agreement(side(true)));
    Ok(StreamFit { head, train, held_out })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_prefix_holds_the_tokens_that_end_inside_it() {
        // Tokens "How", " to", " pick": ends 3, 6, 11.
        let ends = [3, 6, 11];
        assert_eq!(aligned_counts(&ends, &[3, 6, 11]), vec![1, 2, 3], "boundaries that coincide");
        assert_eq!(aligned_counts(&ends, &[2, 8, 20]), vec![0, 2, 3], "a prefix ending mid-token stops before it");
    }

    #[test]
    fn agreement_counts_verdicts_and_closeness() {
        let a = Agreement::of(&[(1.0, 0.5), (-2.0, -1.5), (0.5, -0.5), (3.0, 0.0)]);
        assert_eq!(a.same_verdict, 0.75);
        assert_eq!(a.fidelity.within_one, 0.75);
        assert_eq!(a.fidelity.n, 4);
    }
}
