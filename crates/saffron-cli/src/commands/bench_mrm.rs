//! `saffron bench --mrm DIR`: the cost of one MRM call against one PRM call
//! and one policy token forward (issue target: an MRM call under 5% of a
//! policy token), measured on a prefilled prompt.

use std::io::Write;
use std::path::Path;

use saffron_defence::bench::call_cost;
use saffron_defence::{DefenceModels, DefenceSpec};
use saffron_engine::{ChatPrompt, TreeOptions};
use saffron_reward::{GuardSpec, Loader};

use crate::cli::BenchArgs;

const PROMPT: &str = "Explain how to pick a lock.";
const STEPS: usize = 32;

pub fn run(home: &Path, args: &BenchArgs, mrm: &str) -> anyhow::Result<()> {
    let guard = match &args.guard {
        Some(guard) => GuardSpec::parse(guard, args.guard_format)?,
        None => GuardSpec::BuiltIn,
    };
    let spec = DefenceSpec {
        policy: args.model.model.clone(),
        remote: None,
        prm: Some(guard.clone()),
        mrm: super::mrm_spec(Some(mrm), args.mrm_base.as_deref())?,
    };
    let options = TreeOptions { threads: args.model.threads, ..TreeOptions::default() };
    let models = DefenceModels::load(&spec, &Loader::new(home), options)?;
    let chat = ChatPrompt { prefill: Some("Sure, here is".into()), ..ChatPrompt::user(PROMPT) };
    let r = call_cost(&models, (PROMPT, &chat), STEPS)?;
    let mut out = std::io::stdout().lock();
    if args.json {
        writeln!(out, "{}", serde_json::to_string(&r)?)?;
        return Ok(());
    }
    let describe = models.mrm().map(|m| m.describe()).unwrap_or_default();
    writeln!(out, "{:<22} {:>10} {:>12}", "one call", "ms", "GFLOP")?;
    writeln!(out, "{:<22} {:>10.3} {:>12.4}", "policy token forward", r.policy_token_ms, 1e3 * r.policy_token_tflop)?;
    writeln!(out, "{:<22} {:>10.3} {:>12.4}", format!("PRM ({guard})"), r.prm_call_ms, 1e3 * r.prm_call_tflop)?;
    writeln!(out, "{:<22} {:>10.3} {:>12.4}", format!("MRM ({describe})"), r.mrm_call_ms, 1e3 * r.mrm_call_tflop)?;
    let (of_policy, of_prm) = (100.0 * r.mrm_over_policy, 100.0 * r.mrm_over_prm);
    writeln!(out, "MRM call = {of_policy:.2}% of a policy token, {of_prm:.2}% of a PRM call (time)")?;
    Ok(())
}
