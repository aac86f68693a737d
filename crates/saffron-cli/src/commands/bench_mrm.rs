//! `saffron bench --mrm DIR`: the cost of one MRM call against one PRM call
//! and one policy token forward (issue target: an MRM call under 5% of a
//! policy token), measured on a prefilled prompt.

use std::io::Write;
use std::path::Path;
use std::time::Instant;

use saffron_core::{ProcessReward, SequenceOutputs, TokenId, WantedOutputs};
use saffron_engine::{ChatPrompt, HiddenStates, PrefixTree, TreeOptions};
use saffron_reward::BoundGuard;
use serde::Serialize;

use crate::cli::{BenchArgs, GuardPreset};

const PROMPT: &str = "Explain how to pick a lock.";
const STEPS: usize = 32;

#[derive(Serialize)]
struct MrmCost {
    policy_token_ms: f64,
    policy_token_tflop: f64,
    mrm_call_ms: f64,
    mrm_call_tflop: f64,
    prm_call_ms: f64,
    prm_call_tflop: f64,
    /// MRM call time over policy token time.
    mrm_over_policy: f64,
    mrm_over_prm: f64,
}

pub fn run(home: &Path, args: &BenchArgs, mrm: &str) -> anyhow::Result<()> {
    let (model, _) = super::load_model(home, &args.model)?;
    let loaded =
        super::mrm::Mrm::load(home, (mrm, args.mrm_base.as_deref()), (&args.model.model, &model), args.model.threads)?;
    let guard_spec = args.guard.clone().unwrap_or_else(|| "default".into());
    let guard = super::guard::load_guard(home, &guard_spec, GuardPreset::Local, args.model.threads, Some(&model))?;
    let options = TreeOptions { threads: args.model.threads, ..TreeOptions::default() };
    let context =
        model.encode_chat(&ChatPrompt { prefill: Some("Sure, here is".into()), ..ChatPrompt::user(PROMPT) })?;

    // Policy: greedy decode one token per step, hidden states kept (as a
    // search with a shared MRM runs it); time and FLOPs per step.
    let mut tree = PrefixTree::new(&model, TreeOptions { hidden: HiddenStates::Keep, ..options })?;
    let mut path = context.clone();
    let first = tree.outputs(&[&path], WantedOutputs::LogitsAndHidden)?;
    let mut outputs: Vec<SequenceOutputs> = Vec::new();
    let (mut policy_secs, before) = (0.0, tree.cost());
    let mut last = first[0].clone();
    for _ in 0..STEPS {
        let logits = last.logits.as_deref().unwrap_or_default();
        let next = (0..logits.len()).max_by(|&a, &b| logits[a].total_cmp(&logits[b])).unwrap_or(0) as TokenId;
        path.push(next);
        let start = Instant::now();
        last = tree.outputs(&[&path], WantedOutputs::LogitsAndHidden)?.remove(0);
        policy_secs += start.elapsed().as_secs_f64();
        outputs.push(last.clone());
    }
    let policy_flops = (tree.cost().flops - before.flops) / STEPS as f64;

    // MRM: one call per node, on the hidden states just computed. The first
    // call is left out, as for the PRM: a separate backbone computes its
    // instruction and the prompt there, once per search.
    let mut mrm = loaded.bind(&model, PROMPT, options)?;
    let response = &path[context.len()..];
    mrm.rewards(&[&response[..1]], &outputs[..1])?;
    let before = mrm.cost();
    let start = Instant::now();
    for (i, o) in outputs.iter().enumerate().skip(1) {
        mrm.rewards(&[&response[..=i]], std::slice::from_ref(o))?;
    }
    let mrm_secs = start.elapsed().as_secs_f64() * STEPS as f64 / (STEPS - 1) as f64;
    let mrm_flops = (mrm.cost().flops - before.flops) / (STEPS - 1) as f64;

    // PRM: one call per node, each prefix one token longer (the prefix
    // tree re-computes the tail after the response).
    let mut prm = BoundGuard::new(guard.as_ref(), PROMPT, options, |t| model.detokenize(t))?;
    prm.score(&[&response[..1]])?;
    let before = prm.cost();
    let start = Instant::now();
    for i in 1..STEPS {
        prm.score(&[&response[..=i]])?;
    }
    let prm_secs = start.elapsed().as_secs_f64() / (STEPS - 1) as f64;
    let prm_flops = (prm.cost().flops - before.flops) / (STEPS - 1) as f64;

    let r = MrmCost {
        policy_token_ms: 1e3 * policy_secs / STEPS as f64,
        policy_token_tflop: policy_flops / 1e12,
        mrm_call_ms: 1e3 * mrm_secs / STEPS as f64,
        mrm_call_tflop: mrm_flops / 1e12,
        prm_call_ms: 1e3 * prm_secs,
        prm_call_tflop: prm_flops / 1e12,
        mrm_over_policy: mrm_secs / policy_secs,
        mrm_over_prm: (mrm_secs / STEPS as f64) / prm_secs,
    };
    let mut out = std::io::stdout().lock();
    if args.json {
        writeln!(out, "{}", serde_json::to_string(&r)?)?;
        return Ok(());
    }
    writeln!(out, "{:<22} {:>10} {:>12}", "one call", "ms", "GFLOP")?;
    writeln!(out, "{:<22} {:>10.3} {:>12.4}", "policy token forward", r.policy_token_ms, 1e3 * r.policy_token_tflop)?;
    writeln!(out, "{:<22} {:>10.3} {:>12.4}", format!("PRM ({guard_spec})"), r.prm_call_ms, 1e3 * r.prm_call_tflop)?;
    let kind = loaded.describe();
    writeln!(out, "{:<22} {:>10.3} {:>12.4}", format!("MRM ({kind})"), r.mrm_call_ms, 1e3 * r.mrm_call_tflop)?;
    writeln!(
        out,
        "MRM call = {:.2}% of a policy token, {:.2}% of a PRM call (time)",
        100.0 * r.mrm_over_policy,
        100.0 * r.mrm_over_prm
    )?;
    Ok(())
}
