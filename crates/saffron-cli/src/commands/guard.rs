//! `--guard` / `--judge` resolution: a probe guard artifact (a directory with
//! `guard.json`) or a GGUF model used as a verdict guard.

use std::path::Path;

use anyhow::Context;
use saffron_engine::Model;
use saffron_fetch::{sha256_file, ModelRef};
use saffron_reward::probe::artifact;
use saffron_reward::{Guard, ProbeGuard, VerdictGuard, VerdictGuardConfig};

use crate::cli::{GuardPreset, ModelArgs};

/// Loads `spec` as a guard, reusing `policy`'s weights when it is the same
/// file.
pub fn load_guard(
    home: &Path,
    spec: &str,
    preset: GuardPreset,
    threads: Option<u32>,
    policy: Option<&Model>,
) -> anyhow::Result<Box<dyn Guard>> {
    if artifact::is_artifact(Path::new(spec)) {
        return Ok(Box::new(load_probe(home, Path::new(spec), threads, policy)?));
    }
    let model = load_or_reuse(home, spec, threads, policy)?.0;
    let config = match preset {
        GuardPreset::Local => VerdictGuardConfig::local(),
        GuardPreset::LlamaGuard3 => VerdictGuardConfig::llama_guard_3(),
    };
    Ok(Box::new(VerdictGuard::new(model, &config).with_context(|| format!("using `{spec}` as a guard"))?))
}

/// A probe guard artifact on the backbone its manifest names (a catalog name
/// or a GGUF path), checked by sha256.
pub fn load_probe(home: &Path, dir: &Path, threads: Option<u32>, policy: Option<&Model>) -> anyhow::Result<ProbeGuard> {
    let (head, manifest) = artifact::load(dir)?;
    let (model, model_ref) = load_or_reuse(home, &manifest.backbone.name, threads, policy)
        .with_context(|| format!("loading the backbone of the guard in {}", dir.display()))?;
    let sha256 = match model_ref {
        // Verified when it was fetched.
        ModelRef::Known { artifact, .. } => artifact.sha256.to_owned(),
        ModelRef::File(_) => model_sha256(home, &manifest.backbone.name)?,
    };
    Ok(ProbeGuard::new(head, manifest, model, &sha256)?)
}

fn load_or_reuse(
    home: &Path,
    spec: &str,
    threads: Option<u32>,
    policy: Option<&Model>,
) -> anyhow::Result<(Model, ModelRef)> {
    let model_ref = saffron_fetch::resolve_model(spec, home)?;
    if let Some(p) = policy.filter(|p| p.path() == model_ref.path()) {
        return Ok((p.clone(), model_ref));
    }
    let (model, _) = super::load_model(home, &ModelArgs { model: spec.to_owned(), threads })?;
    Ok((model, model_ref))
}

/// The default probe guard's directory: trained by `saffron train-guard`
/// into the cache.
pub fn default_guard_dir(home: &Path) -> anyhow::Result<String> {
    let dir = home.join("guards").join("probe-smollm2");
    if !artifact::is_artifact(&dir) {
        anyhow::bail!("the default guard is not trained yet ({} is missing): run `saffron train-guard`", dir.display());
    }
    Ok(dir.display().to_string())
}

/// sha256 of a model given by name (recorded in the catalog, verified at
/// fetch) or path (hashed now).
pub fn model_sha256(home: &Path, spec: &str) -> anyhow::Result<String> {
    Ok(match saffron_fetch::resolve_model(spec, home)? {
        ModelRef::Known { artifact, .. } => artifact.sha256.to_owned(),
        ModelRef::File(path) => sha256_file(&path).with_context(|| format!("hashing {}", path.display()))?,
    })
}

/// sha256 identifying a guard: its head's weights file for a probe guard,
/// the GGUF for a verdict guard.
pub fn guard_sha256(home: &Path, spec: &str) -> anyhow::Result<String> {
    let dir = Path::new(spec);
    if artifact::is_artifact(dir) {
        let weights = dir.join(artifact::WEIGHTS_FILE);
        return sha256_file(&weights).with_context(|| format!("hashing {}", weights.display()));
    }
    model_sha256(home, spec)
}
