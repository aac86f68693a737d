//! The default MRM for the default policy, shipped in the repository
//! (`mrms/default`) and built into the binary. `docs/mrm.md` gives the
//! commands that reproduce it and its fidelity.

use std::path::Path;

use super::artifact::{self, MrmManifest};
use super::head::MrmHead;
use crate::RewardError;

const MANIFEST: &str = include_str!("../../mrms/default/mrm.json");
const WEIGHTS: &[u8] = include_bytes!("../../mrms/default/mrm.safetensors");

/// The built-in MRM's head and manifest.
pub fn default_mrm() -> Result<(MrmHead, MrmManifest), RewardError> {
    artifact::parse(MANIFEST, WEIGHTS, Path::new("(built-in default MRM)"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_built_in_mrm_parses_for_the_default_policy() {
        let (head, manifest) = default_mrm().unwrap();
        assert_eq!(manifest.policy.name, "qwen");
        assert_eq!(head.vocab_size, 151_936);
        assert_eq!(head.seen.len(), manifest.seen_tokens);
    }
}
