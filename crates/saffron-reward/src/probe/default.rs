//! The default guard, shipped in the repository (`guards/default`, about
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
}
