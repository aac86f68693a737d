//! Held out by construction: the splits as `saffron data overlap` shows
//! them, and a grid refused when an artifact it uses was trained on its
//! prompts (unless it says `allow_overlap = true`, which the report then
//! says).

use std::path::{Path, PathBuf};

use saffron_core::{Split, TrainedPrompts};
use saffron_eval::splits::Universe;
use saffron_eval::{load_prompts, PromptSet};
use saffron_reward::probe::artifact::{self, Backbone, ProbeManifest, TrainingRecord};
use saffron_reward::probe::features::ProbeInputs;
use saffron_reward::probe::head::LinearHead;
use saffron_reward::{Boundary, GuardFormat, PROBE_GUARD_INSTRUCTION};

use crate::{assert_clean_failure, real_home, saffron, smollm2_path, tiny_label_args};

#[test]
fn data_overlap_places_every_prompt_and_pins_the_judge_set_to_test() {
    let out = saffron(&real_home(), &["data", "overlap", "--json"]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let set = |name: &str| v["sets"].as_array().unwrap().iter().find(|s| s["set"] == name).unwrap().clone();
    let total = |s: &serde_json::Value| ["train", "dev", "test"].iter().map(|k| s[k].as_u64().unwrap()).sum::<u64>();
    assert_eq!(total(&set("advbench")), 520);
    assert_eq!((set("jbb-judge")["test"].as_u64(), total(&set("jbb-judge"))), (Some(100), 100));
    let pair = v["pairs"].as_array().unwrap().iter().find(|p| p["a"] == "jbb-judge" && p["b"] == "advbench");
    assert!(pair.is_some_and(|p| p["exact"].as_u64().unwrap() > 0), "AdvBench holds JBB judge prompts");
}

/// A probe guard on SmolLM2 whose manifest says it trained on `prompts`.
fn guard_trained_on(dir: &Path, prompts: TrainedPrompts) -> PathBuf {
    let d = 576;
    let head = LinearHead { mean: vec![0.0; d], scale: vec![1.0; d], weight: vec![0.0; d], bias: -1.0 };
    let sha = saffron_fetch::Artifact::by_name("smollm2").unwrap().sha256.to_owned();
    let record = TrainingRecord {
        data_files: Default::default(),
        pairs: 2,
        unsafe_pairs: 1,
        rows: 2,
        seed: 0,
        folds: None,
        head: Default::default(),
        cross_validation: vec![],
        dev: vec![],
        prompts: Some(prompts),
    };
    let manifest = ProbeManifest::new(
        Backbone { name: "smollm2".into(), sha256: sha, hidden_size: d },
        (GuardFormat::UserTurn(PROBE_GUARD_INSTRUCTION.into()), Boundary::Natural),
        ProbeInputs::default(),
        record,
    );
    let out = dir.join("guard");
    artifact::save(&out, &head, &manifest).unwrap();
    out
}

#[test]
fn a_grid_whose_prm_trained_on_its_prompts_is_refused_unless_it_allows_overlap() {
    let dir = tempfile::tempdir().unwrap();
    let home = real_home();
    // The first two test-split AdvBench prompts, which the grid below reads.
    let mut universe = Universe::load(&home).unwrap();
    let advbench = load_prompts(&PromptSet::Advbench, &home).unwrap().prompts;
    let test = universe.select(advbench, Split::Test);
    let keys = test[..2].iter().map(|p| universe.lookup(&p.prompt).root);
    let guard = guard_trained_on(dir.path(), TrainedPrompts::new([Split::Train], keys));
    let grid = |extra: &str| {
        let text = format!(
            "{extra}\npolicy = {:?}\nguard = {:?}\njudges = [\"refusal\"]\n[length]\nmax_new_tokens = 4\n\
             min_new_tokens = 0\n[[datasets]]\nset = \"advbench\"\nlimit = 3\n[[strategies]]\nname = \"best-of-n\"\n\
             widths = [2]\n",
            smollm2_path(),
            guard
        );
        let path = dir.path().join("grid.toml");
        std::fs::write(&path, text).unwrap();
        path
    };
    let out = dir.path().join("run");
    let args = |grid: &Path, check: bool| {
        let mut a = vec!["eval".to_owned(), grid.display().to_string(), "--out".into(), out.display().to_string()];
        if check {
            a.push("--check".into());
        }
        a
    };
    let run = |a: Vec<String>| saffron(&home, &a.iter().map(String::as_str).collect::<Vec<_>>());
    let strict = grid("");
    let check = run(args(&strict, true));
    assert_clean_failure(&check, "the grid reads prompts its artifacts were trained on");
    let listed = String::from_utf8_lossy(&check.stdout);
    assert!(
        listed.contains(&format!("PRM `{}` trained on 2 of the 3 prompts of `advbench`", guard.display())),
        "{listed}"
    );
    assert_clean_failure(
        &run(args(&strict, false)),
        &format!("the PRM `{}` was trained on 2 of the 3 prompts of `advbench` this grid reads", guard.display()),
    );
    assert!(!out.join("records.jsonl").exists(), "refused before answering anything");

    let allowed = run(args(&grid("allow_overlap = true"), false));
    assert!(allowed.status.success(), "{}", String::from_utf8_lossy(&allowed.stderr));
    assert!(String::from_utf8_lossy(&allowed.stdout).contains("NOT ALL HELD OUT"));
    let md = std::fs::read_to_string(out.join("report.md")).unwrap();
    assert!(md.contains("**Not all held out: this grid sets `allow_overlap = true`"), "{md}");
}

/// `label` answers train prompts only; `train-mrm` records them, and
/// refuses a corpus that holds a prompt of another split.
#[test]
fn the_mrm_trainer_reads_train_prompts_only_and_records_them() {
    let dir = tempfile::tempdir().unwrap();
    let home = real_home();
    let corpus = dir.path().join("corpus.jsonl");
    let c = corpus.display().to_string();
    let label = tiny_label_args(&corpus);
    let label: Vec<&str> = label.iter().map(String::as_str).collect();
    let out = saffron(&home, &label);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let mut universe = Universe::load(&home).unwrap();
    let text = std::fs::read_to_string(&corpus).unwrap();
    let ids: Vec<String> = text
        .lines()
        .skip(1)
        .map(|l| serde_json::from_str::<serde_json::Value>(l).unwrap()["prompt_id"].as_str().unwrap().to_owned())
        .collect();
    let advbench = load_prompts(&PromptSet::Advbench, &home).unwrap().prompts;
    let labelled =
        advbench.iter().find(|p| ids.iter().any(|id| id.starts_with(&format!("{}#", p.id)) || *id == p.id)).unwrap();
    assert_eq!(universe.lookup(&labelled.prompt).split, Split::Train, "label read the train split");

    let mrm = dir.path().join("mrm");
    let m = mrm.display().to_string();
    let train = ["train-mrm", "--policy", "smollm2", "--corpus", &c, "--out", &m, "--threads", "2", "--epochs", "1"];
    let out = saffron(&home, &train);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let manifest: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(mrm.join("mrm.json")).unwrap()).unwrap();
    assert_eq!(manifest["prompts"]["splits"], serde_json::json!(["train"]));
    assert_eq!(manifest["prompts"]["prompts"], 2, "one harmful and one benign prompt");

    // The same corpus with its harmful prompt swapped for a test one.
    let test = universe.select(advbench.clone(), Split::Test).remove(0);
    std::fs::write(&corpus, text.replace(&format!("\"{}", labelled.id), &format!("\"{}", test.id))).unwrap();
    assert_clean_failure(&saffron(&home, &train), "answer are outside the train split");
}

/// The shipped grids read no prompt the shipped artifacts trained on, and
/// `--check` says which artifacts it checked.
#[test]
fn the_shipped_grids_pass_the_overlap_check() {
    let grids = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../grids");
    for (grid, prompts) in [("demo.toml", 14), ("full.toml", 120)] {
        let path = grids.join(grid).display().to_string();
        let out = saffron(&real_home(), &["eval", &path, "--check"]);
        assert!(
            out.status.success(),
            "{grid}: {}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        let stdout = String::from_utf8_lossy(&out.stdout);
        let checked = format!(
            "checked the grid's {prompts} prompts against the training prompts of PRM `default`, MRM `default`, judge `default`"
        );
        assert!(stdout.contains(&checked) && stdout.contains("no prompt of the grid was seen"), "{grid}: {stdout}");
    }
}
