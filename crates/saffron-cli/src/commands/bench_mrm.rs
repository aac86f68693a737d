//! `saffron bench --mrm DIR`: the cost of one MRM call against one PRM call
//! and one policy token forward (issue target: an MRM call under 5% of a
//! policy token), measured on a prefilled prompt.

use std::io::Write;
use std::path::Path;
use std::time::Instant;

use anyhow::Context;

use saffron_core::{SequenceOutputs, TokenId, WantedOutputs};
use saffron_defence::{DefenceModels, DefenceSpec, MrmBackend, PrmBackend};
use saffron_engine::{ChatPrompt, HiddenStates, TreeOptions};
use saffron_reward::{GuardSpec, Loader};
use serde::Serialize;

use crate::cli::BenchArgs;

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
    let guard = match &args.guard {
        Some(guard) => super::guard_spec(guard, args.guard_format)?,
        None => GuardSpec::BuiltIn,
    };
    let spec = DefenceSpec {
        policy: args.model.model.clone(),
        prm: Some(guard.clone()),
        mrm: super::mrm_spec(Some(mrm), args.mrm_base.as_deref())?,
    };
    let options = TreeOptions { threads: args.model.threads, ..TreeOptions::default() };
    let models = DefenceModels::load(&spec, &Loader::new(home), options)?;
    let policy = models.policy();
    let prm = models.prm().context("the PRM is loaded")?;
    let mrm = models.mrm().context("the MRM is loaded")?;
    let context =
        policy.encode_chat(&ChatPrompt { prefill: Some("Sure, here is".into()), ..ChatPrompt::user(PROMPT) })?;

    // Policy: greedy decode one token per step, hidden states kept (as a
    // search with a shared MRM runs it); time and FLOPs per step.
    let mut tree = policy.open(TreeOptions { hidden: HiddenStates::Keep, ..options })?;
    let mut path = context.clone();
    let mut last = tree.outputs(&[&path], WantedOutputs::LogitsAndHidden)?.remove(0);
    let mut outputs: Vec<SequenceOutputs> = Vec::new();
    let (mut policy_secs, before) = (0.0, tree.cost());
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
    let response = &path[context.len()..];
    let (mrm_secs, mrm_flops) = time_mrm(mrm, response, &outputs, options, &|t| policy.detokenize(t))?;
    let (prm_secs, prm_flops) = time_prm(prm, response, options, &|t| policy.detokenize(t))?;
    let r = MrmCost {
        policy_token_ms: 1e3 * policy_secs / STEPS as f64,
        policy_token_tflop: policy_flops / 1e12,
        mrm_call_ms: 1e3 * mrm_secs,
        mrm_call_tflop: mrm_flops / 1e12,
        prm_call_ms: 1e3 * prm_secs,
        prm_call_tflop: prm_flops / 1e12,
        mrm_over_policy: mrm_secs / (policy_secs / STEPS as f64),
        mrm_over_prm: mrm_secs / prm_secs,
    };
    let mut out = std::io::stdout().lock();
    if args.json {
        writeln!(out, "{}", serde_json::to_string(&r)?)?;
        return Ok(());
    }
    writeln!(out, "{:<22} {:>10} {:>12}", "one call", "ms", "GFLOP")?;
    writeln!(out, "{:<22} {:>10.3} {:>12.4}", "policy token forward", r.policy_token_ms, 1e3 * r.policy_token_tflop)?;
    writeln!(out, "{:<22} {:>10.3} {:>12.4}", format!("PRM ({guard})"), r.prm_call_ms, 1e3 * r.prm_call_tflop)?;
    let kind = format!("MRM ({})", mrm.describe());
    writeln!(out, "{kind:<22} {:>10.3} {:>12.4}", r.mrm_call_ms, 1e3 * r.mrm_call_tflop)?;
    let (of_policy, of_prm) = (100.0 * r.mrm_over_policy, 100.0 * r.mrm_over_prm);
    writeln!(out, "MRM call = {of_policy:.2}% of a policy token, {of_prm:.2}% of a PRM call (time)")?;
    Ok(())
}

/// Seconds and FLOPs of one MRM call per node, on the hidden states just
/// computed. The first call is left out, as for the PRM: a separate
/// backbone computes its instruction and the prompt there, once per search.
fn time_mrm(
    mrm: &dyn MrmBackend,
    response: &[TokenId],
    outputs: &[SequenceOutputs],
    options: TreeOptions,
    text: &(dyn Fn(&[TokenId]) -> String + Sync),
) -> anyhow::Result<(f64, f64)> {
    let mut mrm = mrm.bind(PROMPT, options, Box::new(text))?;
    mrm.rewards(&[&response[..1]], &outputs[..1])?;
    let before = mrm.cost();
    let start = Instant::now();
    for (i, o) in outputs.iter().enumerate().skip(1) {
        mrm.rewards(&[&response[..=i]], std::slice::from_ref(o))?;
    }
    let calls = (outputs.len() - 1) as f64;
    Ok((start.elapsed().as_secs_f64() / calls, (mrm.cost().flops - before.flops) / calls))
}

/// Seconds and FLOPs of one PRM call per node, each prefix one token longer
/// (the prefix tree re-computes the tail after the response).
fn time_prm(
    prm: &dyn PrmBackend,
    response: &[TokenId],
    options: TreeOptions,
    text: &(dyn Fn(&[TokenId]) -> String + Sync),
) -> anyhow::Result<(f64, f64)> {
    let mut prm = prm.bind(PROMPT, options, Box::new(text))?;
    prm.score(&[&response[..1]])?;
    let before = prm.cost();
    let start = Instant::now();
    for i in 1..response.len() {
        prm.score(&[&response[..=i]])?;
    }
    let calls = (response.len() - 1) as f64;
    Ok((start.elapsed().as_secs_f64() / calls, (prm.cost().flops - before.flops) / calls))
}
