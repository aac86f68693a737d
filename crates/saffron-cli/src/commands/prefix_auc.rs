//! `judge-eval --prefix-auc`: how early (in tokens) a guard separates unsafe
//! answers from safe ones, as the AUC of its reward on answer prefixes.

use std::io::Write;
use std::path::Path;

use saffron_engine::{PrefixTree, SpecialText, TreeOptions};
use saffron_reward::judge_data::{held_out_jbb, training_data, Labelled, MANY_SHOT, REFUSAL};
use saffron_reward::probe::artifact::ProbeManifest;
use saffron_reward::{auc, LoadedGuard};
use serde_json::json;

use crate::progress::count_bar;

/// Prefix lengths in guard tokens.
const LENGTHS: [usize; 8] = [1, 2, 4, 8, 16, 32, 64, 128];

/// AUC per prefix length on the JBB set and on many-shot vs refusals.
pub fn run(
    home: &Path,
    loaded: &LoadedGuard,
    pairs_per_side: usize,
    threads: Option<u32>,
    json_out: bool,
) -> anyhow::Result<()> {
    let guard = loaded.guard();
    let jbb = held_out_jbb(home)?.data.items;
    let (pyrit, held_back) = pyrit_sets(home, loaded.probe_manifest(), pairs_per_side)?;
    let sets = [("jbb-held-out", jbb), ("pyrit-many-shot-vs-refusal", pyrit)];
    let mut tree =
        PrefixTree::new(guard.model(), guard.tree_options(TreeOptions { threads, ..TreeOptions::default() }))?;
    let mut results = Vec::new();
    for (name, items) in &sets {
        let bar = count_bar("prefixes", items.len() as u64);
        // rewards[i][k]: item i cut at LENGTHS[k] (or whole if shorter).
        let mut rewards: Vec<Vec<f32>> = Vec::with_capacity(items.len());
        for item in items {
            let tokens = guard.model().tokenize(&item.response, SpecialText::Literal);
            let texts: Vec<String> =
                LENGTHS.iter().map(|&l| guard.model().detokenize(&tokens[..l.min(tokens.len())])).collect();
            let pairs: Vec<(&str, &str)> = texts.iter().map(|t| (item.prompt.as_str(), t.as_str())).collect();
            rewards.push(guard.score_pairs(&mut tree, &pairs)?);
            tree.clear();
            bar.inc(1);
        }
        bar.finish_and_clear();
        let aucs: Vec<Option<f64>> = (0..LENGTHS.len())
            .map(|k| {
                // Unsafe is the positive class; a lower reward means unsafe.
                let score = |unsafe_: bool| -> Vec<f32> {
                    items.iter().zip(&rewards).filter(|(i, _)| i.unsafe_ == unsafe_).map(|(_, r)| -r[k]).collect()
                };
                auc(&score(true), &score(false))
            })
            .collect();
        let positives = items.iter().filter(|i| i.unsafe_).count();
        results.push((name.to_string(), positives, items.len() - positives, aucs));
    }
    let mut out = std::io::stdout().lock();
    if json_out {
        let rows: Vec<_> = results
            .iter()
            .map(|(n, p, q, a)| json!({ "set": n, "unsafe": p, "safe": q, "prefix_tokens": LENGTHS, "auc": a }))
            .collect();
        writeln!(
            out,
            "{}",
            serde_json::to_string_pretty(&json!({ "pyrit_held_back": held_back, "prefix_auc": rows }))?
        )?;
        return Ok(());
    }
    writeln!(out, "AUC of the guard's reward on the first k tokens of each answer (unsafe = positive):")?;
    write!(out, "{:<28} {:>9}", "set (unsafe/safe)", "")?;
    for l in LENGTHS {
        write!(out, " {:>5}", format!("k={l}"))?;
    }
    writeln!(out)?;
    for (name, p, q, aucs) in &results {
        write!(out, "{:<28} {:>9}", name, format!("{p}/{q}"))?;
        for a in aucs {
            write!(out, " {:>5}", a.map_or("-".into(), |a| format!("{a:.2}")))?;
        }
        writeln!(out)?;
    }
    if !held_back {
        writeln!(out, "note: the PyRIT pairs were in this guard's training data (at cuts 16, 32, 128)")?;
    }
    Ok(())
}

/// Many-shot harmful answers and PyRIT refusals, taken from the pairs the
/// guard did not train on when its manifest says it trained on a seeded
/// subsample; otherwise from all (and flagged).
fn pyrit_sets(home: &Path, manifest: Option<&ProbeManifest>, per_side: usize) -> anyhow::Result<(Vec<Labelled>, bool)> {
    let data = training_data(home)?;
    let total = data.items.len();
    let (pool, held_back) = match manifest {
        Some(m) if m.training.pairs < total => (data.split_seeded(m.training.pairs, m.training.seed).1, true),
        _ => (data.items, false),
    };
    let harmful = pool.iter().filter(|l| l.source == MANY_SHOT && l.unsafe_).take(per_side);
    let refusals = pool.iter().filter(|l| l.source.starts_with(REFUSAL)).take(per_side);
    Ok((harmful.chain(refusals).cloned().collect(), held_back))
}
