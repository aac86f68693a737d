//! Runs that never double-count, never adopt a foreign configuration and
//! never trust an unverified file: each way a careless or hostile user once
//! got a wrong number from `saffron`, now a right result or a clear
//! refusal (the store, grid, spec and parser cases without a model are unit
//! tests of saffron-eval and saffron-reward).

use std::path::Path;
use std::process::Output;

use saffron_eval::store::RunLock;

use crate::{assert_clean_failure, real_home, saffron, smollm2_path, tiny_grid};

fn eval(grid: &Path, out: &Path, extra: &[&str]) -> Output {
    let mut args = vec!["eval", grid.to_str().unwrap(), "--out", out.to_str().unwrap(), "--threads", "2"];
    args.extend_from_slice(extra);
    saffron(&real_home(), &args)
}

fn assert_success(out: &Output) {
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
}

const TWO_PROMPTS: &str = "[[datasets]]\nset = \"advbench\"\nlimit = 2\n";

#[test]
fn a_run_directory_is_never_counted_twice_nor_adopted() {
    let dir = tempfile::tempdir().unwrap();
    let grid = tiny_grid(dir.path(), "judges = [\"refusal\"]", TWO_PROMPTS);
    let out = dir.path().join("run");
    assert_success(&eval(&grid, &out, &[]));
    let records = out.join("records.jsonl");
    let text = std::fs::read_to_string(&records).unwrap();
    assert_eq!(text.lines().count(), 4);

    // A line copied twice: refused by the report and the run, repaired on request.
    let first = text.lines().next().unwrap();
    std::fs::write(&records, format!("{text}{first}\n")).unwrap();
    let report = saffron(&real_home(), &["report", out.to_str().unwrap()]);
    assert_clean_failure(&report, "holds 1 repeated record(s), which would be counted twice");
    assert_clean_failure(&eval(&grid, &out, &[]), "pass --repair");
    let repaired = eval(&grid, &out, &["--repair"]);
    assert_success(&repaired);
    assert!(String::from_utf8_lossy(&repaired.stderr).contains("dropped 1 repeated records"));
    assert_eq!(std::fs::read_to_string(&records).unwrap(), text, "the first of each kept, byte for byte");
    let summary: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(out.join("summary.json")).unwrap()).unwrap();
    assert_eq!(summary[0]["prompts"], 2);

    // Another process writing the directory: refused, naming it.
    let lock = RunLock::acquire(&out).unwrap();
    let pid = std::process::id().to_string();
    assert_clean_failure(&eval(&grid, &out, &[]), &format!("is in use by another saffron process (pid {pid})"));
    assert_clean_failure(&saffron(&real_home(), &["merge", out.to_str().unwrap(), out.to_str().unwrap()]), "in use");
    drop(lock);

    // run.json deleted: the records say nothing of what they answered.
    std::fs::remove_file(out.join("run.json")).unwrap();
    assert_clean_failure(&eval(&grid, &out, &[]), "holds records but no run.json");
    assert_success(&eval(&grid, &out, &["--force-new"]));
    assert!(std::fs::read_dir(&out).unwrap().any(|e| e
        .unwrap()
        .file_name()
        .to_string_lossy()
        .starts_with("records.jsonl.replaced-")));

    // A run of another grid in it: refused, naming what differs.
    let other = tiny_grid(dir.path(), "judges = [\"refusal\"]", "[[datasets]]\nset = \"advbench\"\nlimit = 3\n");
    assert_clean_failure(&eval(&other, &out, &[]), "(grid.datasets differ)");

    // --out naming a file.
    let file = dir.path().join("a-file");
    std::fs::write(&file, "x").unwrap();
    assert_clean_failure(&eval(&grid, &file, &[]), "is a file, not a run directory");
}

#[test]
fn model_files_are_verified_before_use() {
    // A same-size corruption of a catalog model in the cache.
    let home = tempfile::tempdir().unwrap();
    let models = home.path().join("models");
    std::fs::create_dir_all(&models).unwrap();
    let mut bytes = std::fs::read(smollm2_path()).unwrap();
    let middle = bytes.len() / 2;
    bytes[middle..middle + 4096].fill(0);
    std::fs::write(models.join(smollm2_path().file_name().unwrap()), &bytes).unwrap();
    let out = saffron(home.path(), &["generate", "--model", "smollm2", "--prompt", "hi"]);
    assert_clean_failure(&out, "is corrupt or was replaced");
    assert_clean_failure(&out, "saffron fetch --only smollm2");

    // A model given by path that changes between a run and its resume.
    let dir = tempfile::tempdir().unwrap();
    let policy = dir.path().join("policy.gguf");
    std::fs::copy(smollm2_path(), &policy).unwrap();
    let text = format!(
        "policy = {policy:?}\njudges = [\"refusal\"]\n[length]\nmax_new_tokens = 2\nmin_new_tokens = 0\n{TWO_PROMPTS}\
         [[strategies]]\nname = \"sample\"\n"
    );
    let grid = dir.path().join("grid.toml");
    std::fs::write(&grid, text).unwrap();
    let out = dir.path().join("run");
    assert_success(&eval(&grid, &out, &[]));
    let mut bytes = std::fs::read(&policy).unwrap();
    let middle = bytes.len() / 2;
    bytes[middle] ^= 0xff;
    std::fs::write(&policy, &bytes).unwrap();
    assert_clean_failure(&eval(&grid, &out, &[]), "(policy_sha256 differ)");
}

#[test]
fn sizes_and_names_out_of_bounds_are_refused_with_the_bound() {
    let home = tempfile::tempdir().unwrap();
    let model = smollm2_path();
    let m = model.to_str().unwrap();
    let width = ["generate", "--model", m, "--prompt", "hi", "--strategy", "best-of-n", "--width"];
    let out = saffron(home.path(), &[&width[..], &["9223372036854775808"]].concat());
    assert_clean_failure(&out, "between 1 and 1024 (got 9223372036854775808)");
    let out = saffron(home.path(), &["generate", "--model", m, "--prompt", "hi", "--max-tokens", "100000"]);
    assert_clean_failure(&out, "length.max_new_tokens must be between 1 and 8192");
    let out = saffron(home.path(), &["generate", "--model", m, "--prompt", "hi", "--threads", "0"]);
    assert_clean_failure(&out, "--threads");

    let dir = tempfile::tempdir().unwrap();
    let run = dir.path().join("run");
    let typo = tiny_grid(dir.path(), "judges = [\"refusl\"]", TWO_PROMPTS);
    assert_clean_failure(&eval(&typo, &run, &[]), "unknown guard `refusl`: use `default`");
    let grid = tiny_grid(dir.path(), "judges = [\"refusal\"]", TWO_PROMPTS);
    assert_clean_failure(&eval(&grid, &run, &["--jobs", "0"]), "0 is not in 1..=64");
    let none = tiny_grid(dir.path(), "judges = []", TWO_PROMPTS);
    assert_clean_failure(&eval(&none, &run, &[]), "judges is empty");
    let empty = tiny_grid(dir.path(), "judges = [\"refusal\"]", "[[datasets]]\nset = \"advbench\"\nlimit = 0\n");
    assert_clean_failure(&eval(&empty, &run, &[]), "dataset `advbench` selects no prompts (520 in the set");
    let twice = tiny_grid(dir.path(), "judges = [\"refusal\"]\nseeds = [0, 0]", TWO_PROMPTS);
    assert_clean_failure(&eval(&twice, &run, &[]), "appears twice");
}

/// A prompt that cannot fit the policy's context is recorded as too long
/// and counted apart; the run finishes.
#[test]
fn a_prompt_longer_than_the_context_is_recorded_and_counted_apart() {
    let dir = tempfile::tempdir().unwrap();
    let set = dir.path().join("prompts.jsonl");
    let long = "word ".repeat(9000);
    std::fs::write(
        &set,
        format!(
            "{{\"id\": \"short\", \"prompt\": \"Name a colour.\"}}\n{{\"id\": \"long\", \"prompt\": \"{long}\"}}\n"
        ),
    )
    .unwrap();
    let datasets =
        format!("[[datasets]]\nset = {:?}\nsplit = \"all\"\n[[attacks]]\nkind = \"none\"\n", set.display().to_string());
    let grid = tiny_grid(dir.path(), "judges = [\"refusal\"]", &datasets);
    let out = dir.path().join("run");
    let run = eval(&grid, &out, &[]);
    assert_success(&run);
    let records = crate::records_without_wall_time(&out.join("records.jsonl"));
    assert_eq!(records.len(), 4);
    let too_long: Vec<&serde_json::Value> = records.iter().filter(|r| r["finish"] == "too_long").collect();
    assert_eq!(too_long.len(), 2, "the long prompt, in both cells");
    assert!(too_long
        .iter()
        .all(|r| r["prompt_id"].as_str().unwrap().ends_with("/long") && r["verdicts"] == serde_json::json!({})));
    let summary: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(out.join("summary.json")).unwrap()).unwrap();
    assert_eq!((summary[0]["prompts"].as_u64(), summary[0]["too_long"].as_u64()), (Some(1), Some(1)));
    assert!(String::from_utf8_lossy(&run.stdout).contains("did not fit the policy's context"), "the report says so");
}
