//! The `saffron` binary as a user runs it: errors are one clear line and a
//! non-zero exit, never a panic; results are deterministic. One test binary
//! (each links llama.cpp); the shared harness is here, one module per
//! concern.

mod commands;
mod guard_states;
mod reasoning;
mod reliability;
mod report;
mod serve;
mod splits;
mod stream_guard;

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

pub fn saffron(home: &Path, args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_saffron"))
        .args(args)
        .env("SAFFRON_HOME", home)
        .env_remove("RUST_LOG")
        .output()
        .expect("the binary runs")
}

pub use saffron_test_support::{real_home, smollm2_path};

/// `saffron label` of one harmful and one benign prompt, one 4-token
/// sample each, by SmolLM2 with SmolLM2 as its verdict guard, into `out`.
pub fn tiny_label_args(out: &Path) -> Vec<String> {
    let (guard, out) = (smollm2_path().display().to_string(), out.display().to_string());
    let args = ["label", "--policy", "smollm2", "--guard", &guard, "--harmful", "1", "--benign", "1", "--samples", "1"];
    let rest = ["--max-tokens", "4", "--threads", "2", "--out", &out];
    args.iter().chain(&rest).map(|a| a.to_string()).collect()
}

/// Fails unless the command failed with exactly one `error:` line, its
/// message (that line and any detail lines after it) holding `needle`, and
/// did not panic.
pub fn assert_clean_failure(out: &Output, needle: &str) {
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "expected failure, got success; stderr: {stderr}");
    assert!(!stderr.contains("panicked"), "panicked: {stderr}");
    let errors: Vec<&str> = stderr.lines().filter(|l| l.starts_with("error:")).collect();
    assert_eq!(errors.len(), 1, "want one error line: {stderr}");
    let message = &stderr[stderr.find("error:").unwrap()..];
    assert!(message.contains(needle), "`{needle}` not in: {stderr}");
}

/// A grid on SmolLM2 (policy and verdict guard; `SMOLLM2` in `judges`
/// stands for its path): 4-token answers, no defence and Best-of-2.
pub fn tiny_grid(dir: &Path, judges: &str, datasets: &str) -> PathBuf {
    let smollm2 = format!("{:?}", smollm2_path());
    let text = format!(
        "policy = {smollm2}\nguard = {smollm2}\n{}\n[length]\nmax_new_tokens = 4\nmin_new_tokens = 0\n{datasets}\
         [[strategies]]\nname = \"sample\"\n[[strategies]]\nname = \"best-of-n\"\nwidths = [2]\n",
        judges.replace("SMOLLM2", &smollm2)
    );
    let path = dir.join("grid.toml");
    std::fs::write(&path, text).unwrap();
    path
}

/// Records without their wall times (the only field that differs between
/// two runs of the same grid).
pub fn records_without_wall_time(path: &Path) -> Vec<serde_json::Value> {
    std::fs::read_to_string(path)
        .unwrap()
        .lines()
        .map(|l| {
            let mut v: serde_json::Value = serde_json::from_str(l).unwrap();
            v.as_object_mut().unwrap().remove("wall_seconds");
            v["cost"].as_object_mut().unwrap().remove("wall_seconds");
            v
        })
        .collect()
}
