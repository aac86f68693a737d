//! The model loader on crafted files: the first bytes of a real GGUF
//! (header, metadata, tensor index) with bytes replaced, cut short, or
//! followed by noise. Every one is refused with an error, never a panic or
//! a crash.

use std::sync::OnceLock;

use proptest::prelude::*;
use saffron_engine::Model;

/// The first 4 MiB of SmolLM2 (its header and metadata, and some weights).
fn head() -> &'static [u8] {
    static HEAD: OnceLock<Vec<u8>> = OnceLock::new();
    HEAD.get_or_init(|| {
        let bytes = std::fs::read(saffron_test_support::smollm2_path()).expect("the cached model reads");
        bytes[..bytes.len().min(4 << 20)].to_vec()
    })
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 48, ..ProptestConfig::default() })]

    #[test]
    fn a_crafted_gguf_is_refused_not_a_crash(
        edits in proptest::collection::vec((0usize..(64 << 10), any::<u8>()), 1..8),
        cut in 4usize..(4 << 20),
        noise in proptest::collection::vec(any::<u8>(), 0..64),
    ) {
        let mut bytes = head()[..cut.min(head().len())].to_vec();
        for (at, byte) in edits {
            if at < bytes.len() {
                bytes[at] = byte;
            }
        }
        bytes.extend(noise);
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("crafted.gguf");
        std::fs::write(&path, &bytes).unwrap();
        prop_assert!(Model::load(&path).is_err(), "a truncated model loaded");
    }
}
