//! The paper's MRM form (method.md section 2): the guard model itself with a
//! LoRA adapter (rank 4, alpha 4, on the q and v projections) and a bias
//! added to its output projection; the reward of next token `a` is the raw
//! output value `logits[a] + bias[a]` at the last position.
//!
//! This loads the released Saffron-1 artifacts for users who have the guard
//! as a GGUF (Llama Guard 3 1B for Saffron-1-1B): a directory with the PEFT
//! adapter (`adapter_config.json`, `adapter_model.safetensors`), the bias
//! (`lm_head_bias.pt`) and the unseen-token mask (`unseen_mask.pt`, a bool
//! vector over the vocabulary or a list of token ids). The adapter is
//! converted once into llama.cpp's GGUF adapter form and applied by
//! llama.cpp at run time; the bias and mask are applied here.
//!
//! The input is the released code's, with no chat template:
//! `BOS "\n\nUser:" prompt "\n\nAgent:" response`, each piece tokenised on
//! its own, the response being the policy's own token ids. That needs the
//! policy and the guard to share one vocabulary (Saffron-1-1B's guard has
//! Llama 3's), which loading checks.

pub mod peft;
pub mod torch_file;

use std::path::{Path, PathBuf};
use std::sync::Arc;

use saffron_core::{ModelCost, ModelError, MultifurcationReward, SequenceOutputs, TokenId, WantedOutputs};
use saffron_engine::{Model, PrefixTree, SpecialText, TreeOptions};

use self::peft::{load_peft, BaseModel, PeftConfig};
use self::torch_file::read_torch_tensor;
use super::backbone_tree::BackboneTree;
use crate::RewardError;

/// File names of a released artifact directory.
pub const ADAPTER_CONFIG: &str = "adapter_config.json";
pub const ADAPTER_WEIGHTS: &str = "adapter_model.safetensors";
pub const BIAS_FILE: &str = "lm_head_bias.pt";
pub const UNSEEN_MASK_FILE: &str = "unseen_mask.pt";

/// Whether `dir` looks like a paper-form (PEFT) MRM directory.
pub fn is_paper_artifact(dir: &Path) -> bool {
    dir.join(ADAPTER_CONFIG).is_file()
}

/// A loaded paper-form MRM: the guard with its adapter applied, the output
/// bias and the unseen-token mask. [`bind`](Self::bind) makes the MRM of one
/// search.
pub struct PaperMrmModel {
    model: Model,
    config: PeftConfig,
    bias: Vec<f32>,
    unseen: Vec<bool>,
    source: PathBuf,
}

impl PaperMrmModel {
    /// Loads the artifact in `dir` on the guard GGUF `base`, writing the
    /// converted adapter to `adapter_gguf` (a cache path; rewritten each
    /// load), for `policy`, whose vocabulary must be the guard's.
    pub fn load(dir: &Path, base: &Path, adapter_gguf: &Path, policy: &Model) -> Result<PaperMrmModel, RewardError> {
        let plain = Model::load(base)?;
        let shape = plain.shape();
        let base_model =
            BaseModel { arch: plain.arch(), n_head: shape.n_head as usize, n_head_kv: shape.n_head_kv as usize };
        let (config, adapter) = load_peft(dir, base_model)?;
        adapter.write_gguf(adapter_gguf).map_err(|e| RewardError::Artifact {
            path: adapter_gguf.to_path_buf(),
            detail: format!("cannot write the converted adapter: {e}"),
        })?;
        let model = plain.with_lora(adapter_gguf, 1.0)?;
        let vocab = model.vocab_size();
        if !policy.same_vocabulary(&model) {
            return Err(RewardError::WrongBackbone {
                expected: format!(
                    "a policy with the vocabulary of the MRM's guard {} ({vocab} tokens)",
                    base.display()
                ),
                actual: format!("{} ({} tokens)", policy.path().display(), policy.vocab_size()),
            });
        }
        let bias = read_bias(&dir.join(BIAS_FILE), vocab)?;
        let unseen = read_unseen_mask(&dir.join(UNSEEN_MASK_FILE), vocab)?;
        Ok(PaperMrmModel { model, config, bias, unseen, source: dir.to_path_buf() })
    }

    /// The guard with the adapter applied.
    pub fn model(&self) -> &Model {
        &self.model
    }

    pub fn config(&self) -> &PeftConfig {
        &self.config
    }

    pub fn source(&self) -> &Path {
        &self.source
    }

    /// Tokens the MRM never saw as a supervised next token.
    pub fn unseen_count(&self) -> usize {
        self.unseen.iter().filter(|&&u| u).count()
    }

    /// The MRM of one search on `prompt`: a fresh prefix tree of the guard.
    pub fn bind(&self, prompt: &str, options: TreeOptions) -> Result<PaperMrm<'_>, RewardError> {
        let tree = PrefixTree::new(&self.model, options)?;
        let text = |s: &str| self.model.tokenize(s, SpecialText::Literal);
        let mut prefix: Vec<TokenId> = self.model.bos().into_iter().collect();
        prefix.extend(text("\n\nUser:"));
        prefix.extend(text(prompt));
        prefix.extend(text("\n\nAgent:"));
        Ok(PaperMrm { owner: self, tree: BackboneTree::new(tree), prefix })
    }
}

/// `lm_head_bias.pt`: one float per vocabulary entry.
fn read_bias(path: &Path, vocab: usize) -> Result<Vec<f32>, RewardError> {
    let bad = |message: String| RewardError::TorchFile { path: path.to_path_buf(), message };
    let tensor = read_torch_tensor(path)?;
    let bias =
        tensor.to_f32().ok_or_else(|| bad(format!("the bias has type {:?}, not floating point", tensor.dtype)))?;
    if bias.len() != vocab {
        return Err(bad(format!("the bias has {} entries but the guard's vocabulary {vocab}", bias.len())));
    }
    Ok(bias)
}

/// `unseen_mask.pt`: a bool vector over the vocabulary (true = unseen), or
/// the unseen token ids; both index the rewards in the released code.
fn read_unseen_mask(path: &Path, vocab: usize) -> Result<Vec<bool>, RewardError> {
    let bad = |message: String| RewardError::TorchFile { path: path.to_path_buf(), message };
    let tensor = read_torch_tensor(path)?;
    let values =
        tensor.to_i64().ok_or_else(|| bad(format!("the mask has type {:?}, not bool or integer", tensor.dtype)))?;
    if tensor.dtype == torch_file::TorchDtype::Bool {
        if values.len() != vocab {
            return Err(bad(format!("the mask has {} entries but the guard's vocabulary {vocab}", values.len())));
        }
        return Ok(values.iter().map(|&v| v != 0).collect());
    }
    let mut unseen = vec![false; vocab];
    for id in values {
        let slot = usize::try_from(id).ok().and_then(|i| unseen.get_mut(i));
        *slot.ok_or_else(|| bad(format!("unseen token id {id} is outside the vocabulary of {vocab}")))? = true;
    }
    Ok(unseen)
}

/// A paper-form MRM bound to one prompt (one search).
pub struct PaperMrm<'a> {
    owner: &'a PaperMrmModel,
    tree: BackboneTree,
    prefix: Vec<TokenId>,
}

impl MultifurcationReward for PaperMrm<'_> {
    fn rewards(
        &mut self,
        responses: &[&[TokenId]],
        _policy: &[SequenceOutputs],
    ) -> Result<Vec<Arc<[f32]>>, ModelError> {
        let paths: Vec<Vec<TokenId>> = responses.iter().map(|r| [self.prefix.as_slice(), r].concat()).collect();
        let outputs = self.tree.call(&paths, WantedOutputs::Logits)?;
        outputs
            .iter()
            .map(|o| {
                let logits = o.logits.as_ref().ok_or_else(|| ModelError::new(RewardError::MissingLogits))?;
                Ok(logits.iter().zip(&self.owner.bias).map(|(l, b)| l + b).collect())
            })
            .collect()
    }

    fn is_unseen(&self, token: TokenId) -> bool {
        self.owner.unseen.get(token as usize).copied().unwrap_or(true)
    }

    /// The guard's forward passes (the adapter's rank-4 products add under
    /// 0.1% and are not counted, as norms and biases are not).
    fn cost(&self) -> ModelCost {
        self.tree.cost()
    }
}
