//! `--mrm NAME|DIR`: a trained multifurcation reward model for the policy:
//! `default` (built in, for the default policy), a `saffron train-mrm`
//! directory (shared-backbone or separate-backbone), or a directory in the
//! paper's released form (PEFT LoRA + `lm_head_bias.pt` + `unseen_mask.pt`)
//! with its guard GGUF given by `--mrm-base`.

use std::path::Path;

use anyhow::Context;
use saffron_core::MultifurcationReward;
use saffron_engine::{Model, TreeOptions};
use saffron_reward::mrm::artifact::{self, MrmBackbone, MrmManifest};
use saffron_reward::mrm::default::default_mrm;
use saffron_reward::mrm::head::MrmHead;
use saffron_reward::mrm::paper::{self, is_paper_artifact, PaperMrmModel};
use saffron_reward::mrm::{SeparateBackbone, SharedMrm};
use saffron_reward::RewardError;

use crate::cli::ModelArgs;

/// The head and manifest `spec` names.
pub fn mrm_parts(spec: &str) -> anyhow::Result<(MrmHead, MrmManifest)> {
    if spec == "default" {
        return Ok(default_mrm()?);
    }
    artifact::load(Path::new(spec)).with_context(|| format!("loading the MRM in {spec}"))
}

/// A loaded MRM, checked against its policy; [`Mrm::bind`] makes the MRM
/// of one search.
pub struct Mrm {
    kind: MrmKind,
}

enum MrmKind {
    /// Reads the policy's own hidden states.
    Shared { head: Box<MrmHead>, manifest: Box<MrmManifest>, policy_sha256: String },
    /// Runs its own backbone over (prompt, response so far).
    Separate { backbone: Box<SeparateBackbone>, manifest: Box<MrmManifest> },
    /// The paper's form: the guard with a LoRA adapter and an output bias.
    Paper { model: Box<PaperMrmModel>, identity: String },
}

impl Mrm {
    /// Loads the MRM `spec` for `policy` (named `policy_spec` on the command
    /// line); a separate-backbone MRM also loads the backbone its manifest
    /// names, a paper-form MRM the guard `base` (required for it, refused
    /// for the others).
    pub fn load(
        home: &Path,
        (spec, base): (&str, Option<&str>),
        (policy_spec, policy): (&str, &Model),
        threads: Option<u32>,
    ) -> anyhow::Result<Mrm> {
        if is_paper_artifact(Path::new(spec)) {
            return Self::load_paper(home, Path::new(spec), base, policy);
        }
        if base.is_some() {
            anyhow::bail!("--mrm-base (mrm_base) is only for a paper-form MRM directory (one with adapter_config.json); {spec} is not one");
        }
        let (head, manifest) = mrm_parts(spec)?;
        let policy_sha256 = super::guard::model_sha256(home, policy_spec)?;
        let manifest = Box::new(manifest);
        match manifest.backbone_kind {
            MrmBackbone::SharedPolicy => {
                SharedMrm::new(head.clone(), (*manifest).clone(), policy, &policy_sha256)?;
                Ok(Mrm { kind: MrmKind::Shared { head: Box::new(head), manifest, policy_sha256 } })
            }
            MrmBackbone::Separate => {
                let name = &manifest.backbone.name;
                let (model, _) = super::load_model(home, &ModelArgs { model: name.clone(), threads })
                    .with_context(|| format!("loading the MRM's backbone `{name}`"))?;
                let sha = super::guard::model_sha256(home, name)?;
                let backbone = SeparateBackbone::new((head, &manifest), (model, &sha), (policy, &policy_sha256))?;
                Ok(Mrm { kind: MrmKind::Separate { backbone: Box::new(backbone), manifest } })
            }
        }
    }

    /// A paper-form artifact on its guard; the converted adapter is cached
    /// under `$SAFFRON_HOME/mrm/adapters/`, named by the adapter's and the
    /// base's sha256.
    fn load_paper(home: &Path, dir: &Path, base: Option<&str>, policy: &Model) -> anyhow::Result<Mrm> {
        let base = base.with_context(|| {
            format!(
                "{} is a paper-form MRM (PEFT LoRA on a guard); pass the guard's GGUF with --mrm-base NAME|PATH \
                 (mrm_base in a grid), e.g. Llama Guard 3 1B for Saffron-1-1B",
                dir.display()
            )
        })?;
        let base_path = saffron_fetch::resolve_model(base, home)?.path().to_path_buf();
        let hash = |name: &str| {
            let path = dir.join(name);
            saffron_fetch::sha256_file(&path).with_context(|| format!("hashing {}", path.display()))
        };
        let adapter_sha = hash(paper::ADAPTER_WEIGHTS)?;
        let bias_sha = hash(paper::BIAS_FILE)?;
        let mask_sha = hash(paper::UNSEEN_MASK_FILE)?;
        let base_sha = super::guard::model_sha256(home, base)?;
        // The conversion depends on the base (its architecture and heads).
        let cached = home.join("mrm").join("adapters").join(format!("{}-{}.gguf", &adapter_sha[..16], &base_sha[..16]));
        let model = PaperMrmModel::load(dir, &base_path, &cached, policy)
            .with_context(|| format!("loading the paper-form MRM {} on {}", dir.display(), base_path.display()))?;
        let identity = format!("adapter {adapter_sha}, bias {bias_sha}, unseen mask {mask_sha}, base {base_sha}");
        Ok(Mrm { kind: MrmKind::Paper { model: Box::new(model), identity } })
    }

    /// What identifies the MRM's training in a run's provenance.
    pub fn identity(&self) -> String {
        match &self.kind {
            MrmKind::Shared { manifest, .. } | MrmKind::Separate { manifest, .. } => manifest.corpus_sha256.clone(),
            MrmKind::Paper { identity, .. } => identity.clone(),
        }
    }

    /// In words: "shared backbone", "on smollm2", "paper form (LoRA)".
    pub fn describe(&self) -> String {
        match &self.kind {
            MrmKind::Shared { .. } => "shared backbone".into(),
            MrmKind::Separate { manifest, .. } => format!("on {}", manifest.backbone.name),
            MrmKind::Paper { .. } => "paper form (LoRA)".into(),
        }
    }

    /// The MRM of one search on `prompt` (fresh cost counters).
    pub fn bind<'a>(
        &'a self,
        policy: &'a Model,
        prompt: &str,
        options: TreeOptions,
    ) -> Result<Box<dyn MultifurcationReward + 'a>, RewardError> {
        Ok(match &self.kind {
            MrmKind::Shared { head, manifest, policy_sha256 } => {
                Box::new(SharedMrm::new((**head).clone(), (**manifest).clone(), policy, policy_sha256)?)
            }
            MrmKind::Separate { backbone, .. } => Box::new(backbone.bind(prompt, options, |t| policy.detokenize(t))?),
            MrmKind::Paper { model, .. } => Box::new(model.bind(prompt, options)?),
        })
    }
}
