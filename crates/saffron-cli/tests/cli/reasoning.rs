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
