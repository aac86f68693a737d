//! Guard states kept while labelling, end to end on SmolLM2: `label
//! --keep-states` writes the state each reward was read from, and
//! `train-mrm --on-guard` fits a head on them without a second pass,
//! refusing another guard's states.

use saffron_reward::mrm::states::{read_states, states_path};
use saffron_reward::probe::artifact;

use super::stream_guard::{corpus_lines, label, write_probe_guard};
use super::{assert_clean_failure, real_home, saffron};

#[test]
fn kept_states_reproduce_the_labels_and_train_an_mrm_on_the_guards_own_state() {
    let dir = tempfile::tempdir().unwrap();
    let (guard, other) = (dir.path().join("guard"), dir.path().join("other"));
    write_probe_guard(&guard, 0.0);
    write_probe_guard(&other, 1.0);
    let corpus = dir.path().join("c.jsonl");
    let out = label(&corpus, &["--guard", guard.to_str().unwrap(), "--keep-states"]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));

    // Row j of a response is the state of its first j tokens, whose reward
    // the corpus holds as rewards[j − 1]: the probe's read-out gives it back.
    let (head, _) = artifact::load(&guard).unwrap();
    let states = read_states(&states_path(&corpus)).unwrap();
    let lines = corpus_lines(&corpus);
    assert_eq!(states.rows.len(), lines.len() - 1, "one record per response");
    for line in &lines[1..] {
        let key = (line["prompt_id"].as_str().unwrap().to_owned(), line["sample"].as_u64().unwrap() as u32);
        let rewards: Vec<f64> = line["rewards"].as_array().unwrap().iter().map(|r| r.as_f64().unwrap()).collect();
        let rows = &states.rows[&key];
        assert_eq!(rows.len(), rewards.len(), "one state per node");
        for j in 1..rows.len() {
            let reward = head.reward(&rows[j]) as f64;
            assert!((reward - rewards[j - 1]).abs() < 1e-4, "{key:?} node {j}: {reward} vs {}", rewards[j - 1]);
        }
    }

    let train = |guard: &std::path::Path, out: &std::path::Path| {
        let args = [
            "train-mrm",
            "--policy",
            "smollm2",
            "--corpus",
            corpus.to_str().unwrap(),
            "--on-guard",
            guard.to_str().unwrap(),
            "--held-out",
            "0.25",
            "--threads",
            "2",
            "--out",
            out.to_str().unwrap(),
        ];
        saffron(&real_home(), &args)
    };
    let mrm = dir.path().join("mrm");
    let out = train(&guard, &mrm);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stderr}");
    assert!(stderr.contains(&format!("guard states kept for {} responses", lines.len() - 1)), "{stderr}");
    assert!(String::from_utf8_lossy(&out.stdout).contains("held-out R(s)"));
    let manifest: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(mrm.join("mrm.json")).unwrap()).unwrap();
    assert_eq!(manifest["backbone_kind"], "separate");
    assert_eq!(manifest["value_from"]["name"], guard.to_str().unwrap());
    assert!(manifest["input"]["read"].is_object() && manifest["prm_step_held_out"]["n"].as_u64().unwrap() > 0);

    // Another guard's states are refused, naming the file.
    assert_clean_failure(&train(&other, &dir.path().join("mrm2")), "holds the states of guard");
}
