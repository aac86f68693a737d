//! The default guard and the default judge, shipped in the repository (`guards/default`, about
//! 11 kB) and built into the binary: a probe on the default policy model's
//! hidden states. `docs/guards.md` gives the command that reproduces it and
//! its scores.

use std::path::Path;

use super::artifact::{self, ProbeManifest};
use super::head::LinearHead;
use crate::RewardError;

const MANIFEST: &str = include_str!("../../guards/default/guard.json");
const WEIGHTS: &[u8] = include_bytes!("../../guards/default/guard.safetensors");

/// The built-in default guard's head and manifest.
pub fn default_guard() -> Result<(LinearHead, ProbeManifest), RewardError> {
    artifact::parse(MANIFEST, WEIGHTS, Path::new("(built-in default guard)"))
}

/// The built-in weights, for provenance hashes.
pub fn default_guard_weights() -> &'static [u8] {
    WEIGHTS
}

const JUDGE_MANIFEST: &str = include_str!("../../guards/judge/guard.json");
const JUDGE_WEIGHTS: &[u8] = include_bytes!("../../guards/judge/guard.safetensors");

/// The built-in judge (`guards/judge`): a probe on the same backbone,
/// trained apart from the guard on whole answers, with features and a
/// threshold chosen on the dev split (docs/guards.md, "The judge").
pub fn default_judge() -> Result<(LinearHead, ProbeManifest), RewardError> {
    artifact::parse(JUDGE_MANIFEST, JUDGE_WEIGHTS, Path::new("(built-in judge)"))
}

/// The built-in judge's weights, for provenance hashes.
pub fn default_judge_weights() -> &'static [u8] {
    JUDGE_WEIGHTS
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_built_in_guard_parses_and_names_its_backbone() {
        let (head, manifest) = default_guard().unwrap();
        assert_eq!(manifest.backbone.name, "qwen");
        assert_eq!(head.dim(), manifest.backbone.hidden_size);
        assert!(!manifest.training.cross_validation.is_empty() || !manifest.training.dev.is_empty());
    }

    #[test]
    fn the_built_in_judge_records_what_it_trained_on_and_differs_from_the_guard() {
        let (head, manifest) = default_judge().unwrap();
        assert_eq!(head.dim(), manifest.features.dim(manifest.backbone.hidden_size));
        let prompts = manifest.training.prompts.as_ref().expect("the judge records its training prompts");
        assert!(prompts.splits.iter().all(|s| *s != saffron_core::Split::Test));
        assert_ne!(default_judge_weights(), default_guard_weights());
    }
}
