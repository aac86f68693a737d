//! The separate-backbone MRM: the same head (value + per-token bias +
//! low-rank term, indexed by the policy's token ids) on another model's
//! final hidden state, for comparison with the shared-backbone head.
//!
//! The backbone reads what the PRM reads, (prompt, response so far) in the
//! probe guard's format (the instruction first, so only a short tail follows
//! the response), with the response re-tokenised from the policy's text. A
//! call therefore costs a forward pass of the backbone over the new response
//! tokens and that tail: far more than the shared head's nothing, far less
//! than one PRM call per child.

use std::sync::Arc;

use saffron_core::{ModelCost, ModelError, MultifurcationReward, SequenceOutputs, TokenId, WantedOutputs};

use super::backbone_tree::BackboneTree;
use saffron_engine::{HiddenStates, Model, PrefixTree, TreeOptions};

use serde::{Deserialize, Serialize};

use super::artifact::{check_policy, MrmBackbone, MrmManifest};
use super::corpus::LabelledSequence;
use super::features::examples_at;
use super::head::MrmHead;
use super::train::Example;
use crate::probe::features::ProbeInputs;
use crate::{Boundary, GuardFormat, GuardInput, ProbeGuard, RewardError, PROBE_GUARD_INSTRUCTION};

/// The input format of a separate-backbone MRM on a plain model.
pub fn separate_input(backbone: Model) -> Result<NodeInput, RewardError> {
    let input = GuardInput::new(backbone, &GuardFormat::UserTurn(PROBE_GUARD_INSTRUCTION.into()), Boundary::Natural)?;
    Ok(NodeInput { input, read: None })
}

/// The input of an MRM on `guard`'s own state: exactly what the guard reads.
pub fn guard_state_input(guard: &ProbeGuard) -> Result<NodeInput, RewardError> {
    NodeInput::of(guard.input().model().clone(), &SeparateInput::of_guard(guard))
}

/// Turns policy tokens into text.
pub type ResponseText<'a> = &'a dyn Fn(&[TokenId]) -> String;

/// An owned [`ResponseText`].
type BoxedResponseText<'a> = Box<dyn Fn(&[TokenId]) -> String + 'a>;

/// How a separate backbone reads one node.
pub struct NodeInput {
    pub input: GuardInput,
    /// A probe guard's read (prompt cut, response cap, tail) for an MRM on
    /// the guard's own state; `None`: the whole formatted input.
    pub read: Option<ProbeInputs>,
}

impl NodeInput {
    /// The input format `recorded` on `backbone`.
    pub fn of(backbone: Model, recorded: &SeparateInput) -> Result<NodeInput, RewardError> {
        let input = GuardInput::new(backbone, &recorded.format, recorded.boundary)?;
        Ok(NodeInput { input, read: recorded.read.clone() })
    }

    /// What the artifact records of it.
    pub fn record(&self) -> SeparateInput {
        SeparateInput { format: self.input.format().clone(), boundary: self.input.boundary(), read: self.read.clone() }
    }

    /// The backbone tokens for one node: the prompt and the response so far.
    fn tokens(&self, prompt: &[TokenId], response: &str) -> Vec<TokenId> {
        let response = self.input.response_tokens(response);
        match &self.read {
            Some(read) => read.encode_tokens(&self.input, prompt, &response),
            None => self.input.encode_tokens(prompt, &response),
        }
    }
}

/// Examples of each sequence (in order) on the backbone of `input`,
/// computed in `tree` (which must keep hidden states). `prompt_text` gives a
/// sequence's prompt; the tree is cleared when it changes.
pub fn separate_examples(
    tree: &mut PrefixTree,
    input: &NodeInput,
    sequences: &[&LabelledSequence],
    prompt_text: &dyn Fn(&LabelledSequence) -> Result<String, RewardError>,
    response_text: ResponseText,
    progress: &mut dyn FnMut(usize),
) -> Result<Vec<Vec<Example>>, RewardError> {
    let mut all = Vec::with_capacity(sequences.len());
    let mut last_prompt: Option<String> = None;
    for (i, seq) in sequences.iter().enumerate() {
        let prompt = prompt_text(seq)?;
        if last_prompt.as_deref() != Some(prompt.as_str()) {
            tree.clear();
        }
        let prompt_tokens = input.input.prompt_tokens(&prompt);
        last_prompt = Some(prompt);
        let paths: Vec<Vec<TokenId>> =
            (0..seq.response.len()).map(|j| input.tokens(&prompt_tokens, &response_text(&seq.response[..j]))).collect();
        let refs: Vec<&[TokenId]> = paths.iter().map(Vec::as_slice).collect();
        let outputs = tree.outputs(&refs, WantedOutputs::Hidden)?;
        all.push(examples_at(&outputs, seq)?);
        progress(i + 1);
    }
    Ok(all)
}

/// A trained separate-backbone head with its backbone, checked against the
/// artifact's manifest; [`bind`](Self::bind) makes the MRM of one search.
pub struct SeparateBackbone {
    head: MrmHead,
    input: NodeInput,
}

impl SeparateBackbone {
    /// The head of `manifest` on `backbone` (file sha256 `backbone_sha256`)
    /// for `policy` (sha256 `policy_sha256`); an artifact made for another
    /// backbone, policy, vocabulary, hidden size or input format is refused.
    pub fn new(
        (head, manifest): (MrmHead, &MrmManifest),
        (backbone, backbone_sha256): (Model, &str),
        (policy, policy_sha256): (&Model, &str),
    ) -> Result<SeparateBackbone, RewardError> {
        let mismatch = |expected: String, actual: String| Err(RewardError::WrongBackbone { expected, actual });
        if manifest.backbone_kind != MrmBackbone::Separate {
            return mismatch("a shared-backbone MRM".into(), "the separate-backbone loader".into());
        }
        check_policy(manifest, policy, policy_sha256)?;
        if manifest.backbone.sha256 != backbone_sha256 || manifest.hidden_size as u64 != backbone.shape().d_model {
            return mismatch(
                format!(
                    "backbone {} (sha256 {}, hidden size {})",
                    manifest.backbone.name, manifest.backbone.sha256, manifest.hidden_size
                ),
                format!(
                    "{} (sha256 {backbone_sha256}, hidden size {})",
                    backbone.path().display(),
                    backbone.shape().d_model
                ),
            );
        }
        let Some(recorded) = &manifest.input else {
            return mismatch(
                "an input format the artifact does not record".into(),
                "this saffron, which needs it (retrain with `saffron train-mrm --backbone` or `--on-guard`)".into(),
            );
        };
        Ok(SeparateBackbone { head, input: NodeInput::of(backbone, recorded)? })
    }

    pub fn backbone(&self) -> &Model {
        self.input.input.model()
    }

    /// The MRM of one search on `prompt`: a fresh prefix tree of the
    /// backbone; `response_text` turns policy tokens into text.
    pub fn bind<'a>(
        &'a self,
        prompt: &str,
        options: TreeOptions,
        response_text: impl Fn(&[TokenId]) -> String + 'a,
    ) -> Result<SeparateMrm<'a>, RewardError> {
        let tree = PrefixTree::new(self.backbone(), TreeOptions { hidden: HiddenStates::Keep, ..options })?;
        Ok(SeparateMrm {
            head: &self.head,
            input: &self.input,
            tree: BackboneTree::new(tree),
            prompt_tokens: self.input.input.prompt_tokens(prompt),
            response_text: Box::new(response_text),
        })
    }
}

/// What a separate-backbone artifact records of its input format.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SeparateInput {
    pub format: GuardFormat,
    pub boundary: Boundary,
    /// A probe guard's read, for a head on the guard's own state (absent:
    /// the whole formatted input).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub read: Option<ProbeInputs>,
}

impl SeparateInput {
    pub fn of(input: &GuardInput) -> SeparateInput {
        SeparateInput { format: input.format().clone(), boundary: input.boundary(), read: None }
    }

    /// How `guard` reads a pair: its format and its probe's read.
    pub fn of_guard(guard: &ProbeGuard) -> SeparateInput {
        SeparateInput { read: Some(guard.manifest().inputs.clone()), ..SeparateInput::of(guard.input()) }
    }
}

/// A separate-backbone MRM bound to one prompt (one search).
pub struct SeparateMrm<'a> {
    head: &'a MrmHead,
    input: &'a NodeInput,
    tree: BackboneTree,
    prompt_tokens: Vec<TokenId>,
    response_text: BoxedResponseText<'a>,
}

impl MultifurcationReward for SeparateMrm<'_> {
    fn rewards(
        &mut self,
        responses: &[&[TokenId]],
        _policy: &[SequenceOutputs],
    ) -> Result<Vec<Arc<[f32]>>, ModelError> {
        let paths: Vec<Vec<TokenId>> =
            responses.iter().map(|r| self.input.tokens(&self.prompt_tokens, &(self.response_text)(r))).collect();
        let outputs = self.tree.call(&paths, WantedOutputs::Hidden)?;
        self.head.rewards_at(&outputs)
    }

    fn is_unseen(&self, token: TokenId) -> bool {
        self.head.is_unseen(token)
    }

    /// The backbone's forward passes (the head's own arithmetic is
    /// negligible beside them and not added).
    fn cost(&self) -> ModelCost {
        self.tree.cost()
    }
}
