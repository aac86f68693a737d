//! Specs ([`crate::spec`]) into loaded models: every GGUF file is loaded
//! once per [`Loader`] and shared (a guard probing the policy's own hidden
//! states runs on the policy's weights), and each loaded reward model binds
//! to one request with `bind`, giving the fresh reward model of one search.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use saffron_core::{MultifurcationReward, TokenId};
use saffron_engine::{Model, TreeOptions};
use saffron_fetch::{sha256_bytes, sha256_cached, sha256_file, ModelRef};

use crate::mrm::artifact::{self as mrm_artifact, MrmBackbone};
use crate::mrm::default::default_mrm;
use crate::mrm::paper::{self, is_paper_artifact, PaperMrmModel};
use crate::mrm::{SeparateBackbone, SharedMrm};
use crate::probe::artifact::{self as probe_artifact, ProbeManifest};
use crate::probe::default::{default_guard, default_guard_weights, default_judge, default_judge_weights};
use crate::probe::head::LinearHead;
use crate::spec::{GuardSpec, JudgeSpec, MrmSpec};
use crate::{BoundGuard, Guard, PolicyLogitsMrm, ProbeGuard, RefusalJudge, RewardError, VerdictGuard};

/// A loaded GGUF model, verified, and where it came from.
#[derive(Clone)]
pub struct LoadedModel {
    model: Model,
    source: Arc<Source>,
}

struct Source {
    /// As the user named it (a catalog name or a path).
    spec: String,
    sha256: String,
}

impl LoadedModel {
    pub fn model(&self) -> &Model {
        &self.model
    }

    /// The name or path the model was asked for by.
    pub fn spec(&self) -> &str {
        &self.source.spec
    }

    /// sha256 of the model file, measured (and, for a catalog model,
    /// checked against the catalog) when it was loaded.
    pub fn sha256(&self) -> &str {
        &self.source.sha256
    }
}

/// sha256 of a model file, measured (cached by path, size and modification
/// time in `home`); a catalog model's must be the catalog's.
fn verified_sha256(reference: &ModelRef, home: &Path) -> Result<String, RewardError> {
    let path = reference.path();
    let actual = sha256_cached(path, home).map_err(|source| RewardError::Hash { path: path.to_path_buf(), source })?;
    if let ModelRef::Known { artifact, .. } = reference {
        if actual != artifact.sha256 {
            return Err(RewardError::CorruptModel {
                name: artifact.name.to_owned(),
                path: path.to_path_buf(),
                expected: artifact.sha256.to_owned(),
                actual,
            });
        }
    }
    Ok(actual)
}

/// Loads models and reward models from their specs, each model file once.
pub struct Loader {
    home: PathBuf,
    models: Mutex<HashMap<PathBuf, LoadedModel>>,
    /// Vocabulary-only loads, apart from `models` (a guard on the same file
    /// needs its weights).
    vocabularies: Mutex<HashMap<PathBuf, LoadedModel>>,
}

impl Loader {
    /// A loader resolving catalog names in the cache `home` ($SAFFRON_HOME).
    pub fn new(home: &Path) -> Loader {
        Loader {
            home: home.to_path_buf(),
            models: Mutex::new(HashMap::new()),
            vocabularies: Mutex::new(HashMap::new()),
        }
    }

    /// The model `spec` names (a catalog name or a GGUF path), loaded on
    /// first use.
    pub fn model(&self, spec: &str) -> Result<LoadedModel, RewardError> {
        let (reference, path) = self.locate(spec)?;
        let mut models = self.models.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(loaded) = models.get(&path) {
            return Ok(loaded.clone());
        }
        // Verified before llama.cpp reads it: a corrupt file must not answer.
        let sha256 = verified_sha256(&reference, &self.home)?;
        let model = Model::load(&path)
            .map_err(|e| RewardError::Load { what: format!("model `{spec}`"), source: Box::new(e.into()) })?;
        let source = Source { spec: spec.to_owned(), sha256 };
        let loaded = LoadedModel { model, source: Arc::new(source) };
        models.insert(path, loaded.clone());
        Ok(loaded)
    }

    /// The file `spec` names, which must exist.
    fn locate(&self, spec: &str) -> Result<(ModelRef, PathBuf), RewardError> {
        let reference = saffron_fetch::resolve_model(spec, &self.home)?;
        let path = reference.path().to_path_buf();
        if path.is_dir() {
            return Err(RewardError::ModelIsDirectory { path });
        }
        if !path.exists() {
            return Err(saffron_engine::EngineError::ModelMissing { path }.into());
        }
        Ok((reference, path))
    }

    /// The vocabulary, chat template and shape of the model `spec` names,
    /// without its weights ([`Model::load_vocabulary`]): for a policy a
    /// remote engine runs. Verified like [`Loader::model`] and, like it,
    /// loaded once per file (apart from full loads).
    pub fn vocabulary(&self, spec: &str) -> Result<LoadedModel, RewardError> {
        let (reference, path) = self.locate(spec)?;
        let mut vocabularies = self.vocabularies.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(loaded) = vocabularies.get(&path) {
            return Ok(loaded.clone());
        }
        let sha256 = verified_sha256(&reference, &self.home)?;
        let model = Model::load_vocabulary(&path).map_err(|e| RewardError::Load {
            what: format!("the vocabulary of `{spec}`"),
            source: Box::new(e.into()),
        })?;
        let loaded = LoadedModel { model, source: Arc::new(Source { spec: spec.to_owned(), sha256 }) };
        vocabularies.insert(path, loaded.clone());
        Ok(loaded)
    }

    /// The guard `spec` names; a probe guard also loads the backbone its
    /// manifest names and checks it by sha256.
    pub fn guard(&self, spec: &GuardSpec) -> Result<LoadedGuard, RewardError> {
        self.load_guard(spec)
            .map_err(|e| RewardError::Load { what: format!("the guard `{spec}`"), source: Box::new(e) })
    }

    fn load_guard(&self, spec: &GuardSpec) -> Result<LoadedGuard, RewardError> {
        let (guard, identity, probe): (Box<dyn Guard + Send + Sync>, String, Option<ProbeManifest>) = match spec {
            GuardSpec::BuiltIn => {
                let (head, manifest) = default_guard()?;
                let guard = self.probe(head, manifest.clone())?;
                (Box::new(guard), sha256_bytes(default_guard_weights()), Some(manifest))
            }
            GuardSpec::BuiltInJudge => {
                let (head, manifest) = default_judge()?;
                let guard = self.probe(head, manifest.clone())?;
                (Box::new(guard), sha256_bytes(default_judge_weights()), Some(manifest))
            }
            GuardSpec::Probe(dir) => {
                if !probe_artifact::is_artifact(dir) {
                    return Err(RewardError::NotAnArtifact { dir: dir.clone(), wanted: "guard.json (a probe guard)" });
                }
                let (head, manifest) = probe_artifact::load(dir)?;
                let weights = dir.join(probe_artifact::WEIGHTS_FILE);
                let identity = sha256_file(&weights).map_err(|source| RewardError::Hash { path: weights, source })?;
                (Box::new(self.probe(head, manifest.clone())?), identity, Some(manifest))
            }
            GuardSpec::Verdict { model, format } => {
                let loaded = self.model(model).map_err(|e| match e {
                    RewardError::Fetch(saffron_fetch::FetchError::UnknownModel { name, known }) => {
                        RewardError::UnknownGuard { name, models: known }
                    }
                    e => e,
                })?;
                let guard = VerdictGuard::new(loaded.model.clone(), &format.config())?;
                (Box::new(guard), loaded.sha256().to_owned(), None)
            }
        };
        Ok(LoadedGuard { guard, identity, probe })
    }

    /// A probe head on the backbone its manifest names, checked by sha256.
    fn probe(&self, head: LinearHead, manifest: ProbeManifest) -> Result<ProbeGuard, RewardError> {
        let name = manifest.backbone.name.clone();
        let wrap = |e: RewardError| RewardError::Load { what: format!("its backbone `{name}`"), source: Box::new(e) };
        let backbone = self.model(&name).map_err(wrap)?;
        let sha256 = backbone.sha256().to_owned();
        ProbeGuard::new(head, manifest, backbone.model, &sha256)
    }

    /// The MRM `spec` names, checked against `policy`: a separate-backbone
    /// MRM also loads its backbone, a paper-form MRM its guard GGUF (the
    /// converted adapter is cached under `$SAFFRON_HOME/mrm/adapters/`).
    pub fn mrm(&self, spec: &MrmSpec, policy: &LoadedModel) -> Result<LoadedMrm, RewardError> {
        self.load_mrm(spec, policy)
            .map_err(|e| RewardError::Load { what: format!("the MRM `{spec}`"), source: Box::new(e) })
    }

    fn load_mrm(&self, spec: &MrmSpec, policy: &LoadedModel) -> Result<LoadedMrm, RewardError> {
        let (head, manifest) = match spec {
            MrmSpec::BuiltIn => default_mrm()?,
            MrmSpec::Trained(dir) if is_paper_artifact(dir) => {
                return Err(RewardError::PaperMrmNeedsBase { dir: dir.clone() })
            }
            MrmSpec::Trained(dir) => mrm_artifact::load(dir)?,
            MrmSpec::Paper { dir, base } => return self.paper_mrm(dir, base, policy),
        };
        let policy_sha256 = policy.sha256().to_owned();
        let kind = match manifest.backbone_kind {
            MrmBackbone::SharedPolicy => {
                MrmKind::Shared(Box::new(SharedMrm::new(head, manifest.clone(), policy.model(), &policy_sha256)?))
            }
            MrmBackbone::Separate => {
                let backbone = self.model(&manifest.backbone.name)?;
                let sha256 = backbone.sha256().to_owned();
                let separate = SeparateBackbone::new(
                    (head, &manifest),
                    (backbone.model, &sha256),
                    (policy.model(), &policy_sha256),
                )?;
                MrmKind::Separate { backbone: Box::new(separate), on: manifest.backbone.name.clone() }
            }
        };
        Ok(LoadedMrm { kind, identity: manifest.corpus_sha256 })
    }

    fn paper_mrm(&self, dir: &Path, base: &str, policy: &LoadedModel) -> Result<LoadedMrm, RewardError> {
        if !is_paper_artifact(dir) {
            return Err(RewardError::MrmBaseNotPaper { mrm: dir.display().to_string() });
        }
        // Only its path and sha256: the MRM loads the base with its adapter.
        let base_ref = saffron_fetch::resolve_model(base, &self.home)?;
        let base_sha = verified_sha256(&base_ref, &self.home)?;
        let hash = |name: &str| {
            let path = dir.join(name);
            sha256_file(&path).map_err(|source| RewardError::Hash { path, source })
        };
        let adapter_sha = hash(paper::ADAPTER_WEIGHTS)?;
        let bias_sha = hash(paper::BIAS_FILE)?;
        let mask_sha = hash(paper::UNSEEN_MASK_FILE)?;
        // The conversion depends on the base (its architecture and heads).
        let cached =
            self.home.join("mrm").join("adapters").join(format!("{}-{}.gguf", &adapter_sha[..16], &base_sha[..16]));
        let model = PaperMrmModel::load(dir, base_ref.path(), &cached, policy.model())?;
        let identity = format!("adapter {adapter_sha}, bias {bias_sha}, unseen mask {mask_sha}, base {base_sha}");
        Ok(LoadedMrm { kind: MrmKind::Paper(Box::new(model)), identity })
    }

    /// The judge `spec` names.
    pub fn judge(&self, spec: &JudgeSpec) -> Result<LoadedJudge, RewardError> {
        Ok(match spec {
            JudgeSpec::Refusal => LoadedJudge::Refusal(RefusalJudge::default()),
            JudgeSpec::Guard(guard) => LoadedJudge::Guard(Box::new(self.guard(guard)?)),
        })
    }
}

/// A loaded guard: [`LoadedGuard::bind`] makes the PRM of one search.
pub struct LoadedGuard {
    guard: Box<dyn Guard + Send + Sync>,
    identity: String,
    probe: Option<ProbeManifest>,
}

impl LoadedGuard {
    pub fn guard(&self) -> &(dyn Guard + Send + Sync) {
        self.guard.as_ref()
    }

    /// What identifies the guard's weights in a run's provenance: the
    /// sha256 of a probe head's weights, of a verdict guard's GGUF.
    pub fn identity(&self) -> &str {
        &self.identity
    }

    /// A probe guard's manifest (what it was trained on).
    pub fn probe_manifest(&self) -> Option<&ProbeManifest> {
        self.probe.as_ref()
    }

    /// The PRM of one search on `prompt`: a fresh prefix tree of the guard;
    /// `response_text` turns policy tokens into the response's text.
    pub fn bind<'a>(
        &'a self,
        prompt: &str,
        options: TreeOptions,
        response_text: impl Fn(&[TokenId]) -> String + 'a,
    ) -> Result<BoundGuard<'a>, RewardError> {
        BoundGuard::new(self.guard.as_ref(), prompt, options, response_text)
    }
}

/// A loaded MRM, checked against its policy: [`LoadedMrm::bind`] makes the
/// MRM of one search.
pub struct LoadedMrm {
    kind: MrmKind,
    identity: String,
}

enum MrmKind {
    /// Reads the policy's own hidden states.
    Shared(Box<SharedMrm>),
    /// Runs its own backbone over (prompt, response so far).
    Separate { backbone: Box<SeparateBackbone>, on: String },
    /// The paper's form: the guard with a LoRA adapter and an output bias.
    Paper(Box<PaperMrmModel>),
    /// The policy's own logits: no safety meaning (benchmarks only).
    PolicyLogits,
}

impl LoadedMrm {
    /// A stand-in MRM, the policy's own logits as rewards: it has no safety
    /// meaning, and lets `saffron bench` time the Saffron search on any
    /// policy.
    pub fn policy_logits() -> LoadedMrm {
        LoadedMrm { kind: MrmKind::PolicyLogits, identity: "the policy's logits (stand-in)".into() }
    }

    /// What identifies the MRM's training in a run's provenance.
    pub fn identity(&self) -> &str {
        &self.identity
    }

    /// Whether it reads the policy's hidden states (the shared-backbone
    /// head), which only a local policy gives.
    pub fn reads_policy_hidden(&self) -> bool {
        matches!(self.kind, MrmKind::Shared(_))
    }

    /// In words: "shared backbone", "on smollm2", "paper form (LoRA)".
    pub fn describe(&self) -> String {
        match &self.kind {
            MrmKind::Shared(_) => "shared backbone".into(),
            MrmKind::Separate { on, .. } => format!("on {on}"),
            MrmKind::Paper(_) => "paper form (LoRA)".into(),
            MrmKind::PolicyLogits => "policy logits".into(),
        }
    }

    /// The MRM of one search on `prompt` (fresh cost counters);
    /// `response_text` turns policy tokens into the response's text.
    pub fn bind<'a>(
        &'a self,
        prompt: &str,
        options: TreeOptions,
        response_text: impl Fn(&[TokenId]) -> String + 'a,
    ) -> Result<Box<dyn MultifurcationReward + 'a>, RewardError> {
        Ok(match &self.kind {
            MrmKind::Shared(mrm) => Box::new(mrm.fresh()),
            MrmKind::Separate { backbone, .. } => Box::new(backbone.bind(prompt, options, response_text)?),
            MrmKind::Paper(model) => Box::new(model.bind(prompt, options)?),
            MrmKind::PolicyLogits => Box::new(PolicyLogitsMrm::default()),
        })
    }
}

/// A loaded judge.
pub enum LoadedJudge {
    Refusal(RefusalJudge),
    Guard(Box<LoadedGuard>),
}

impl LoadedJudge {
    /// A guard judge's identity (see [`LoadedGuard::identity`]).
    pub fn identity(&self) -> Option<&str> {
        match self {
            LoadedJudge::Refusal(_) => None,
            LoadedJudge::Guard(guard) => Some(guard.identity()),
        }
    }
}
