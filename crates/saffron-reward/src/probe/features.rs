//! Hidden states of a guard backbone for labelled pairs, at several
//! response lengths. All pairs of one call share one prefix tree: the
//! instruction before the prompt is computed once, and the prefixes of one
//! response share everything but the short tail after them.

use saffron_core::{TokenId, WantedOutputs};
use saffron_engine::PrefixTree;
use serde::{Deserialize, Serialize};

use crate::guard::keep_only_or_clear;
use crate::{GuardInput, RefusalJudge, RewardError};

/// Which parts of a pair the probe reads.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ProbeInputs {
    /// Prompts are cut to this many guard tokens.
    pub max_prompt_tokens: usize,
    /// Response lengths (guard tokens) a training pair is shown at, so the
    /// guard learns partial responses (its PRM role) as well as whole ones
    /// (its judge role). The largest is also the most of a response the
    /// guard ever reads.
    pub prefix_lengths: Vec<usize>,
    /// How much of the template after the response the probe reads
    /// (artifacts without the field read all of it).
    #[serde(default, skip_serializing_if = "is_default")]
    pub tail: ProbeTail,
}

fn is_default<T: Default + PartialEq>(value: &T) -> bool {
    *value == T::default()
}

impl Default for ProbeInputs {
    fn default() -> Self {
        ProbeInputs { max_prompt_tokens: 128, prefix_lengths: vec![16, 32, 128], tail: ProbeTail::default() }
    }
}

/// Where after the response the probe reads its state. Scoring a prefix of
/// a response re-computes what follows it, so the tail is a PRM's cost per
/// label (the prefix tree shares the rest).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
#[cfg_attr(feature = "clap", derive(clap::ValueEnum))]
pub enum ProbeTail {
    /// The whole template after the response, its generation prompt
    /// included: the state where the model would begin a verdict (about a
    /// dozen guard tokens per prefix).
    #[default]
    Template,
    /// Only the end-of-turn token right after the response, the instruction
    /// ending at the response ([`crate::PROBE_GUARD_OPEN_INSTRUCTION`]): one
    /// guard token per prefix.
    EndOfTurn,
}

impl ProbeTail {
    /// The user-turn instruction a probe with this tail is trained with.
    pub fn instruction(self) -> &'static str {
        match self {
            ProbeTail::Template => crate::PROBE_GUARD_INSTRUCTION,
            ProbeTail::EndOfTurn => crate::PROBE_GUARD_OPEN_INSTRUCTION,
        }
    }
}

impl ProbeInputs {
    pub fn max_response_tokens(&self) -> usize {
        self.prefix_lengths.iter().copied().max().unwrap_or(0)
    }

    /// Where the response starts in the guard tokens of a pair with
    /// `prompt` (its prompt cut as [`ProbeInputs::encode`] cuts it).
    pub fn response_start(&self, input: &GuardInput, prompt: &str) -> usize {
        let prompt = input.prompt_tokens(prompt);
        input.response_start(prompt.len().min(self.max_prompt_tokens))
    }

    /// The guard tokens the probe reads for a pair, the response cut at
    /// `response_tokens`.
    pub fn encode(&self, input: &GuardInput, prompt: &str, response: &[TokenId]) -> Vec<TokenId> {
        self.encode_tokens(input, &input.prompt_tokens(prompt), response)
    }

    /// [`ProbeInputs::encode`] of a prompt already in guard tokens.
    pub fn encode_tokens(&self, input: &GuardInput, prompt: &[TokenId], response: &[TokenId]) -> Vec<TokenId> {
        let prompt = &prompt[..prompt.len().min(self.max_prompt_tokens)];
        let response = &response[..response.len().min(self.max_response_tokens())];
        let mut tokens = input.encode_tokens(prompt, response);
        if self.tail == ProbeTail::EndOfTurn {
            tokens.truncate(input.response_start(prompt.len()) + response.len() + 1);
        }
        tokens
    }

    /// The distinct response cuts of a response of `len` tokens: each
    /// prefix length below `len`, and the whole (capped) response.
    pub fn cuts(&self, len: usize) -> Vec<usize> {
        let mut cuts: Vec<usize> = self.prefix_lengths.iter().map(|&l| l.min(len)).filter(|&l| l > 0).collect();
        cuts.sort_unstable();
        cuts.dedup();
        if cuts.is_empty() {
            cuts.push(0);
        }
        cuts
    }
}

/// What a probe's head reads, from a pair cut at some length.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
#[cfg_attr(feature = "clap", derive(clap::ValueEnum))]
pub enum ProbeFeatures {
    /// The final hidden state at the end of the guard input (where the
    /// model would begin its verdict).
    #[default]
    Last,
    /// The mean of the final hidden states over the response's tokens
    /// (what the response says, read in the guard's context).
    Mean,
    /// Both, one after the other.
    LastMean,
    /// Both, and whether the response holds a refusal phrase (the
    /// refusal-string judge's verdict as one more feature).
    LastMeanRefusal,
}

impl ProbeFeatures {
    pub const ALL: [ProbeFeatures; 4] =
        [ProbeFeatures::Last, ProbeFeatures::Mean, ProbeFeatures::LastMean, ProbeFeatures::LastMeanRefusal];

    /// Feature count on a backbone of hidden size `d`.
    pub fn dim(self, d: usize) -> usize {
        match self {
            ProbeFeatures::Last | ProbeFeatures::Mean => d,
            ProbeFeatures::LastMean => 2 * d,
            ProbeFeatures::LastMeanRefusal => 2 * d + 1,
        }
    }

    fn needs_mean(self) -> bool {
        !matches!(self, ProbeFeatures::Last)
    }

    /// These features out of a row of [`ProbeFeatures::LastMeanRefusal`]
    /// (what training extracts once for every candidate).
    pub fn select(self, full: &[f32], d: usize) -> Vec<f32> {
        match self {
            ProbeFeatures::Last => full[..d].to_vec(),
            ProbeFeatures::Mean => full[d..2 * d].to_vec(),
            ProbeFeatures::LastMean => full[..2 * d].to_vec(),
            ProbeFeatures::LastMeanRefusal => full.to_vec(),
        }
    }

    pub fn name(self) -> &'static str {
        match self {
            ProbeFeatures::Last => "last",
            ProbeFeatures::Mean => "mean",
            ProbeFeatures::LastMean => "last-mean",
            ProbeFeatures::LastMeanRefusal => "last-mean-refusal",
        }
    }
}

/// The feature vectors of `pairs` (prompt, response), each response cut at
/// the probe's largest prefix length, in one prefix-tree request: the guard
/// input's end for the last state and every response position for the mean.
pub fn pair_features(
    input: &GuardInput,
    inputs: &ProbeInputs,
    features: ProbeFeatures,
    tree: &mut PrefixTree,
    pairs: &[(&str, &str)],
) -> Result<Vec<Vec<f32>>, RewardError> {
    let mut paths = Vec::new();
    let mut spans = Vec::new();
    for (prompt, response) in pairs {
        let tokens = input.response_tokens(response);
        let tokens = &tokens[..tokens.len().min(inputs.max_response_tokens())];
        let full = inputs.encode(input, prompt, tokens);
        let start = paths.len();
        if features.needs_mean() {
            let begin = inputs.response_start(input, prompt);
            for end in begin + 1..=begin + tokens.len() {
                paths.push(full[..end].to_vec());
            }
        }
        paths.push(full);
        spans.push(start..paths.len());
    }
    let refs: Vec<&[TokenId]> = paths.iter().map(Vec::as_slice).collect();
    let outputs = tree.outputs(&refs, WantedOutputs::Hidden)?;
    let hidden = |i: usize| outputs[i].hidden.as_deref().ok_or(RewardError::MissingHidden);
    let d = input.model().shape().d_model as usize;
    let refusal = RefusalJudge::default();
    pairs
        .iter()
        .zip(spans)
        .map(|((_, response), span)| {
            let last = hidden(span.end - 1)?;
            let mut row = Vec::with_capacity(features.dim(d));
            if features != ProbeFeatures::Mean {
                row.extend_from_slice(last);
            }
            if features.needs_mean() {
                let positions = span.len() - 1;
                let mut mean = vec![0f32; d];
                for i in span.start..span.end - 1 {
                    mean.iter_mut().zip(hidden(i)?).for_each(|(m, h)| *m += h / positions as f32);
                }
                row.extend(mean);
            }
            if features == ProbeFeatures::LastMeanRefusal {
                row.push(if refusal.is_refusal(response) { 1.0 } else { 0.0 });
            }
            Ok(row)
        })
        .collect()
}

/// One feature row: the hidden state for pair `pair` cut at `cut` tokens.
#[derive(Debug, Clone, PartialEq)]
pub struct FeatureRow {
    pub pair: usize,
    pub cut: usize,
    /// Whether this is the longest cut of its pair (the judge's view).
    pub whole: bool,
    pub hidden: Vec<f32>,
}

/// Hidden states for `pairs` (prompt, response) at every cut, computed in
/// chunks of `chunk` pairs; `progress` is told how many pairs are done.
pub fn extract(
    input: &GuardInput,
    inputs: &ProbeInputs,
    tree: &mut PrefixTree,
    pairs: &[(&str, &str)],
    chunk: usize,
    progress: &mut dyn FnMut(usize),
) -> Result<Vec<FeatureRow>, RewardError> {
    let mut rows = Vec::new();
    for (c, group) in pairs.chunks(chunk.max(1)).enumerate() {
        let mut paths = Vec::new();
        let mut keys = Vec::new();
        for (i, (prompt, response)) in group.iter().enumerate() {
            let response = input.response_tokens(response);
            let cuts = inputs.cuts(response.len().min(inputs.max_response_tokens()));
            let last = *cuts.last().unwrap_or(&0);
            for cut in cuts {
                paths.push(inputs.encode(input, prompt, &response[..cut]));
                keys.push((c * chunk + i, cut, cut == last));
            }
        }
        let refs: Vec<&[TokenId]> = paths.iter().map(Vec::as_slice).collect();
        let outputs = tree.outputs(&refs, WantedOutputs::Hidden)?;
        for ((pair, cut, whole), out) in keys.into_iter().zip(outputs) {
            let hidden = out.hidden.ok_or(RewardError::MissingHidden)?;
            rows.push(FeatureRow { pair, cut, whole, hidden: hidden.to_vec() });
        }
        // Pairs share only the instruction before the prompt. llama.cpp's
        // attention spans every used cell of the unified cache, so a cache
        // left to fill with finished pairs makes each new token dearer:
        // each chunk keeps only the instruction.
        keep_only_or_clear(tree, input.shared_prefix());
        progress((c * chunk + group.len()).min(pairs.len()));
    }
    Ok(rows)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cuts_cover_prefixes_and_the_whole_capped_response() {
        let inputs = ProbeInputs { max_prompt_tokens: 8, prefix_lengths: vec![16, 32, 128], ..ProbeInputs::default() };
        assert_eq!(inputs.cuts(200.min(inputs.max_response_tokens())), vec![16, 32, 128]);
        assert_eq!(inputs.cuts(20), vec![16, 20]);
        assert_eq!(inputs.cuts(5), vec![5]);
        assert_eq!(inputs.cuts(0), vec![0]);
    }
}
