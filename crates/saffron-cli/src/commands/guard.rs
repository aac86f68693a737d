//! `--guard` / `--judge` resolution: a probe guard artifact (a directory with
//! `guard.json`) or a GGUF model used as a verdict guard.

use std::path::Path;

use anyhow::Context;
use saffron_engine::Model;
use saffron_fetch::{sha256_bytes, sha256_file, ModelRef};
use saffron_reward::probe::artifact::{self, ProbeManifest};
use saffron_reward::probe::default::{default_guard, default_guard_weights};
use saffron_reward::probe::head::LinearHead;
use saffron_reward::{Guard, ProbeGuard, VerdictGuard, VerdictGuardConfig};

use crate::cli::{GuardPreset, ModelArgs};

/// Loads `spec` as a guard: `default` (built in), a probe guard directory,
/// or a GGUF verdict guard; reuses `policy`'s weights when it is the same
/// file.
pub fn load_guard(
    home: &Path,
    spec: &str,
    preset: GuardPreset,
    threads: Option<u32>,
    policy: Option<&Model>,
) -> anyhow::Result<Box<dyn Guard + Sync>> {
    if spec == "default" {
        let (head, manifest) = default_guard()?;
        return Ok(Box::new(probe_on_backbone(home, head, manifest, threads, policy).context("the default guard")?));
    }
    let dir = Path::new(spec);
    if artifact::is_artifact(dir) {
        let (head, manifest) = artifact::load(dir)?;
        let guard = probe_on_backbone(home, head, manifest, threads, policy)
            .with_context(|| format!("the guard in {}", dir.display()))?;
        return Ok(Box::new(guard));
    }
    let model = load_or_reuse(home, spec, threads, policy)?.0;
    let config = match preset {
        GuardPreset::Local => VerdictGuardConfig::local(),
        GuardPreset::LlamaGuard3 => VerdictGuardConfig::llama_guard_3(),
    };
    Ok(Box::new(VerdictGuard::new(model, &config).with_context(|| format!("using `{spec}` as a guard"))?))
}

/// A probe head on the backbone its manifest names (a catalog name or a
/// GGUF path), checked by sha256.
fn probe_on_backbone(
    home: &Path,
    head: LinearHead,
    manifest: ProbeManifest,
    threads: Option<u32>,
    policy: Option<&Model>,
) -> anyhow::Result<ProbeGuard> {
    let (model, _) = load_or_reuse(home, &manifest.backbone.name, threads, policy)
        .with_context(|| format!("loading its backbone `{}`", manifest.backbone.name))?;
    let sha256 = model_sha256(home, &manifest.backbone.name)?;
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

/// sha256 of a model given by name (recorded in the catalog, verified at
/// fetch) or path (hashed now).
pub fn model_sha256(home: &Path, spec: &str) -> anyhow::Result<String> {
    Ok(match saffron_fetch::resolve_model(spec, home)? {
        ModelRef::Known { artifact, .. } => artifact.sha256.to_owned(),
        ModelRef::File(path) => sha256_file(&path).with_context(|| format!("hashing {}", path.display()))?,
    })
}

/// sha256 identifying a guard: its head's weights for a probe guard, the
/// GGUF for a verdict guard.
pub fn guard_sha256(home: &Path, spec: &str) -> anyhow::Result<String> {
    if spec == "default" {
        return Ok(sha256_bytes(default_guard_weights()));
    }
    let dir = Path::new(spec);
    if artifact::is_artifact(dir) {
        let weights = dir.join(artifact::WEIGHTS_FILE);
        return sha256_file(&weights).with_context(|| format!("hashing {}", weights.display()));
    }
    model_sha256(home, spec)
}
