//! `generate --reasoning-budget` on SmolLM2: the trace under budget forcing,
//! kept apart from the answer, and paid for.

use crate::{saffron, smollm2_path};

fn generate(home: &std::path::Path, extra: &[&str]) -> serde_json::Value {
    let model = smollm2_path();
    let mut args = vec![
        "generate",
        "--model",
        model.to_str().unwrap(),
        "--prompt",
        "How many legs does a spider have?",
        "--max-tokens",
        "12",
        "--min-tokens",
        "0",
        "--seed",
        "5",
        "--json",
    ];
    args.extend_from_slice(extra);
    let out = saffron(home, &args);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    serde_json::from_slice(&out.stdout).unwrap()
}

#[test]
fn generate_thinks_for_exactly_the_budget_and_keeps_the_trace_apart() {
    let home = tempfile::tempdir().unwrap();
    let a = generate(home.path(), &["--reasoning-budget", "48"]);
    let reasoning = &a["reasoning"];
    assert_eq!(reasoning["tokens"], 48, "{reasoning}");
    assert_eq!(reasoning["format"], "prompted", "SmolLM2's template has no thinking section");
    assert_eq!(a["config"]["reasoning"]["budget"], 48);
    let (trace, answer) = (reasoning["text"].as_str().unwrap(), a["text"].as_str().unwrap());
    assert!(!trace.contains("</think>") && !answer.contains("</think>"), "{trace:?} / {answer:?}");
    assert!(a["tokens"].as_array().unwrap().len() <= 12);
    // The trace is paid for: the policy computed the prompt, the trace and
    // the answer, and the trace's own cost is part of the total.
    let (total, thinking) = (&a["cost"]["policy"], &reasoning["cost"]);
    let prompt = a["prompt_tokens"].as_u64().unwrap();
    let computed = |c: &serde_json::Value| c["tokens_computed"].as_u64().unwrap();
    assert!(computed(thinking) >= prompt + 47, "{thinking}");
    assert!(computed(total) > computed(thinking), "{total} vs {thinking}");
    // The same seed thinks the same thoughts.
    let b = generate(home.path(), &["--reasoning-budget", "48"]);
    assert_eq!(a["reasoning"]["text"], b["reasoning"]["text"]);
    assert_eq!(a["text"], b["text"]);
}

#[test]
fn budget_zero_is_an_empty_thinking_section_and_bad_budgets_are_refused() {
    let home = tempfile::tempdir().unwrap();
    let zero = generate(home.path(), &["--reasoning-budget", "0"]);
    assert_eq!(zero["reasoning"]["tokens"], 0);
    assert_eq!(zero["reasoning"]["text"], "");
    let model = smollm2_path();
    let m = model.to_str().unwrap();
    let out = saffron(
        home.path(),
        &["generate", "--model", m, "--prompt", "hi", "--reasoning-budget", "8", "--reasoning-min", "9"],
    );
    crate::assert_clean_failure(&out, "must not exceed reasoning.budget");
    let out = saffron(home.path(), &["generate", "--model", m, "--prompt", "hi", "--reasoning-min", "9"]);
    assert!(!out.status.success(), "--reasoning-min needs --reasoning-budget");
}

#[test]
fn a_budget_beyond_the_cells_is_refused_naming_the_flag_that_makes_room() {
    let home = tempfile::tempdir().unwrap();
    let model = smollm2_path();
    let args = ["generate", "--model", model.to_str().unwrap(), "--prompt", "hi", "--max-tokens", "4"];
    let with = |extra: &[&str]| saffron(home.path(), &[&args[..], extra].concat());
    // 300 thinking tokens and the prompt do not fit in 256 cells ...
    crate::assert_clean_failure(&with(&["--reasoning-budget", "300", "--max-cells", "256"]), "--max-cells");
    // ... and do in 512.
    let out = with(&["--reasoning-budget", "300", "--max-cells", "512", "--json"]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(v["reasoning"]["tokens"], 300);
    assert!(!with(&["--max-cells", "100"]).status.success(), "fewer than 256 cells is refused");
}

/// Writes `grid.toml` in `dir` from `text`, with SMOLLM2 standing for the
/// model's quoted path.
fn write_grid(dir: &std::path::Path, text: &str) -> std::path::PathBuf {
    let grid = dir.join("grid.toml");
    std::fs::write(&grid, text.replace("SMOLLM2", &format!("{:?}", smollm2_path()))).unwrap();
    grid
}

#[test]
fn a_grid_with_a_reasoning_axis_records_the_traces_apart_and_reports_the_study() {
    let dir = tempfile::tempdir().unwrap();
    let grid = write_grid(
        dir.path(),
        "policy = SMOLLM2\nguard = SMOLLM2\njudges = [\"refusal\", SMOLLM2]\nseeds = [0, 1]\n\
         [length]\nmax_new_tokens = 4\nmin_new_tokens = 0\n\
         [reasoning]\nbudgets = [0, 16]\n\
         [[datasets]]\nset = \"advbench\"\nlimit = 3\n[[datasets]]\nset = \"rho-benign\"\nlimit = 2\n\
         [[strategies]]\nname = \"sample\"\n",
    );
    let out = dir.path().join("run");
    let run = saffron(&crate::real_home(), &["eval", grid.to_str().unwrap(), "--out", out.to_str().unwrap()]);
    assert!(run.status.success(), "{}", String::from_utf8_lossy(&run.stderr));
    let records: Vec<serde_json::Value> = std::fs::read_to_string(out.join("records.jsonl"))
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    // (3 harmful + 2 benign prompts) × 2 budgets × 2 seeds.
    assert_eq!(records.len(), 20);
    for r in &records {
        let cell = r["cell"].as_str().unwrap();
        let budget = r["reasoning"]["budget"].as_u64().unwrap();
        assert!(cell.contains(&format!("|think{budget}|")), "{cell}");
        assert_eq!(r["reasoning"]["tokens"].as_u64(), Some(budget), "budget forcing: exact");
        let verdicts = r["reasoning"]["verdicts"].as_object().unwrap();
        let judged = if budget > 0 { 2 } else { 0 };
        assert_eq!(verdicts.len(), judged, "every judge reads a trace with text: {verdicts:?}");
    }
    let report = saffron(&crate::real_home(), &["report", out.to_str().unwrap()]);
    assert!(report.status.success(), "{}", String::from_utf8_lossy(&report.stderr));
    let study: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(out.join("reasoning-study.json")).unwrap()).unwrap();
    assert_eq!(study["judge"], "refusal", "the headline judge");
    let group = &study["groups"][0];
    assert_eq!(group["samples"], 2);
    let budgets: Vec<u64> =
        group["budgets"].as_array().unwrap().iter().map(|b| b["budget"].as_u64().unwrap()).collect();
    assert_eq!(budgets, [0, 16]);
    assert!(group["budgets"][1]["vote_asr"].is_object(), "two seeds: a majority vote");
    assert!(group["budgets"][1]["best_of_samples"].is_object(), "the PRM (the grid's guard) is a judge too");
    assert!(group["budgets"][1]["over_refusal"].is_object(), "benign prompts at the same budget");
    assert!(group["test"]["shape"].is_string());
    let markdown = std::fs::read_to_string(out.join("report.md")).unwrap();
    assert!(markdown.contains("## Reasoning budget"), "{markdown}");
    assert!(out.join("report").join("reasoning-prefill-10.svg").exists());
}

#[test]
fn a_set_without_reference_answers_is_named_when_the_prefill_attack_cannot_apply() {
    let dir = tempfile::tempdir().unwrap();
    let grid = write_grid(
        dir.path(),
        "policy = SMOLLM2\njudges = [\"refusal\"]\n[[datasets]]\nset = \"harmbench\"\nlimit = 3\n\
         [[datasets]]\nset = \"advbench\"\nlimit = 3\n[[strategies]]\nname = \"sample\"\n",
    );
    let out = saffron(&crate::real_home(), &["eval", grid.to_str().unwrap(), "--check"]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("3 prompts of `harmbench` have none"), "{stderr}");
    assert!(!stderr.contains("`advbench` have none"), "{stderr}");
}
