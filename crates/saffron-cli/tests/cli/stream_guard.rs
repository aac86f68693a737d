//! The streaming guard end to end on SmolLM2: a probe guard labels a tiny
//! corpus, a streaming guard is fitted to it with its agreement recorded,
//! labels a corpus of its own, and a corpus of another guard is refused.

use std::collections::BTreeMap;
use std::path::Path;

use saffron_reward::probe::artifact::{self, Backbone, ProbeManifest, TrainingRecord};
use saffron_reward::probe::features::ProbeInputs;
use saffron_reward::probe::head::{HeadTraining, LinearHead};
use saffron_reward::{Boundary, GuardFormat, PROBE_GUARD_INSTRUCTION};

use super::{assert_clean_failure, real_home, saffron};

/// A probe guard on SmolLM2 with a fixed head (its rewards are a linear
/// read-out like any trained guard's; what they mean does not matter here).
pub(super) fn write_probe_guard(dir: &Path, seed: f32) {
    let d = 576;
    let head = LinearHead {
        mean: vec![0.0; d],
        scale: vec![1.0; d],
        weight: (0..d).map(|i| ((i as f32 * 0.37 + seed).sin()) * 0.05).collect(),
        bias: 0.1,
    };
    let training = TrainingRecord {
        data_files: BTreeMap::new(),
        pairs: 0,
        unsafe_pairs: 0,
        rows: 0,
        seed: 0,
        folds: None,
        head: HeadTraining::default(),
        cross_validation: Vec::new(),
        dev: Vec::new(),
        prompts: None,
    };
    let sha = saffron_test_support::catalog_sha256("smollm2");
    let backbone = Backbone { name: "smollm2".into(), sha256: sha, hidden_size: d };
    let format = (GuardFormat::UserTurn(PROBE_GUARD_INSTRUCTION.into()), Boundary::Natural);
    artifact::save(dir, &head, &ProbeManifest::new(backbone, format, ProbeInputs::default(), training)).unwrap();
}

/// `saffron label` of a tiny corpus on SmolLM2 with `scorer`'s arguments.
pub(super) fn label(corpus: &Path, scorer: &[&str]) -> std::process::Output {
    let c = corpus.to_str().unwrap();
    let mut args = vec!["label", "--policy", "smollm2"];
    args.extend_from_slice(scorer);
    args.extend([
        "--harmful",
        "2",
        "--benign",
        "2",
        "--samples",
        "1",
        "--max-tokens",
        "6",
        "--threads",
        "2",
        "--out",
        c,
    ]);
    saffron(&real_home(), &args)
}

pub(super) fn corpus_lines(path: &Path) -> Vec<serde_json::Value> {
    std::fs::read_to_string(path).unwrap().lines().map(|l| serde_json::from_str(l).unwrap()).collect()
}

#[test]
fn a_streaming_guard_is_fitted_to_its_guard_and_labels_a_corpus() {
    let dir = tempfile::tempdir().unwrap();
    let (guard, other, stream) = (dir.path().join("guard"), dir.path().join("other"), dir.path().join("stream"));
    write_probe_guard(&guard, 0.0);
    write_probe_guard(&other, 1.0);
    let corpus = dir.path().join("guard.jsonl");
    let out = label(&corpus, &["--guard", guard.to_str().unwrap()]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let labels: usize = corpus_lines(&corpus)[1..].iter().map(|l| l["rewards"].as_array().unwrap().len()).sum();

    let fit = |guard: &Path| {
        let args = [
            "train-stream-guard",
            "--policy",
            "smollm2",
            "--guard",
            guard.to_str().unwrap(),
            "--corpus",
            corpus.to_str().unwrap(),
            "--held-out",
            "0.25",
            "--threads",
            "2",
            "--out",
            stream.to_str().unwrap(),
        ];
        saffron(&real_home(), &args)
    };
    let out = fit(&guard);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(stdout.contains("agreement with the guard") && stdout.contains("held-out"), "{stdout}");
    let manifest: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(stream.join("stream.json")).unwrap()).unwrap();
    assert_eq!(manifest["kind"], "saffron-streaming-guard");
    let n = |side: &str| manifest[side]["fidelity"]["n"].as_u64().unwrap() as usize;
    assert_eq!(n("agreement_train") + n("agreement_held_out"), labels, "every labelled prefix on one side");
    assert!(n("agreement_held_out") > 0, "a quarter of the prompts held out");

    // It labels a corpus: one reward per response token, its name in the header.
    let streamed = dir.path().join("stream.jsonl");
    let out = label(&streamed, &["--stream", stream.to_str().unwrap()]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let lines = corpus_lines(&streamed);
    assert!(lines[0]["prm"].as_str().unwrap().starts_with("stream:"), "{}", lines[0]);
    for l in &lines[1..] {
        assert_eq!(l["rewards"].as_array().unwrap().len(), l["response"].as_array().unwrap().len());
    }

    // A corpus labelled by another guard is refused.
    assert_clean_failure(&fit(&other), "labelled by guard");
}
