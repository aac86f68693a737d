//! `saffron judge-eval`: agreement of a judge with the human majority on the
//! held-out JailbreakBench 100, beside the judges recorded in that file.

use std::io::Write;
use std::path::Path;

use anyhow::Context;
use saffron_engine::{PrefixTree, TreeOptions};
use saffron_reward::judge_data::held_out_jbb;
use saffron_reward::{BinaryMetrics, Guard, LoadedJudge, Loader};
use serde_json::json;

use crate::cli::JudgeEvalArgs;
use crate::progress::count_bar;

/// Pairs per guard request.
const CHUNK: usize = 8;

pub fn run(home: &Path, args: &JudgeEvalArgs) -> anyhow::Result<()> {
    let held_out = held_out_jbb(home).context("reading the held-out JBB set (run `saffron fetch --only jbb`)")?;
    let items = &held_out.data.items;
    let human: Vec<bool> = items.iter().map(|i| i.unsafe_).collect();
    let judge = super::judge_spec(&args.judge, args.guard_format)?;
    let predicted: Vec<bool> = match Loader::new(home).judge(&judge)? {
        LoadedJudge::Refusal(judge) => items.iter().map(|i| judge.is_unsafe(&i.response)).collect(),
        LoadedJudge::Guard(guard) if args.prefix_auc => {
            return super::prefix_auc::run(home, &guard, args.auc_pairs, args.threads, args.json);
        }
        LoadedJudge::Guard(guard) => {
            let pairs = items.iter().map(|i| (i.prompt.as_str(), i.response.as_str())).collect();
            score(guard.guard(), pairs, args.threads)?.iter().map(|&r| r < 0.0).collect()
        }
    };
    let ours = BinaryMetrics::of(&predicted, &human);
    let recorded: Vec<(String, BinaryMetrics)> =
        held_out.judges.iter().map(|(name, verdicts)| (name.clone(), BinaryMetrics::of(verdicts, &human))).collect();
    let mut out = std::io::stdout().lock();
    if args.json {
        let recorded: serde_json::Map<String, serde_json::Value> =
            recorded.iter().map(|(n, m)| (n.clone(), json!(m))).collect();
        let record = json!({
            "judge": args.judge,
            "accuracy": ours.accuracy,
            "f1": ours.f1,
            "fpr": ours.fpr,
            "fnr": ours.fnr,
            "n": ours.n,
            "recorded_judges": recorded,
            "data_files": held_out.data.files,
        });
        writeln!(out, "{}", serde_json::to_string_pretty(&record)?)?;
        return Ok(());
    }
    writeln!(out, "held-out JailbreakBench classifier comparison, n = {} (human majority: 1 = jailbroken)", ours.n)?;
    writeln!(out, "{:<24} {:>8} {:>6} {:>6} {:>6}", "judge", "accuracy", "F1", "FPR", "FNR")?;
    let mut rows = vec![(format!("{} (this run)", args.judge), ours)];
    rows.extend(recorded);
    for (name, m) in rows {
        writeln!(out, "{name:<24} {:>8.2} {:>6.2} {:>6.2} {:>6.2}", m.accuracy, m.f1, m.fpr, m.fnr)?;
    }
    Ok(())
}

/// Guard rewards of `pairs`, with a progress bar.
fn score(guard: &dyn Guard, pairs: Vec<(&str, &str)>, threads: Option<u32>) -> anyhow::Result<Vec<f32>> {
    let mut tree =
        PrefixTree::new(guard.model(), guard.tree_options(TreeOptions { threads, ..TreeOptions::default() }))?;
    let bar = count_bar("judging", pairs.len() as u64);
    let mut rewards = Vec::with_capacity(pairs.len());
    for chunk in pairs.chunks(CHUNK) {
        rewards.extend(guard.score_pairs(&mut tree, chunk)?);
        // Independent pairs: a short cache keeps attention cheap (see
        // saffron-reward's probe features).
        tree.clear();
        bar.inc(chunk.len() as u64);
    }
    bar.finish_and_clear();
    Ok(rewards)
}
