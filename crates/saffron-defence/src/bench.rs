//! What a defence costs, measured (`saffron bench --strategy`, `--mrm`):
//! per search, and per reward-model call against a policy token.

use std::time::Instant;

use saffron_core::ModelRole;
use saffron_core::{SequenceOutputs, TokenId, WantedOutputs};
use saffron_engine::{ChatPrompt, HiddenStates, TreeOptions};
use saffron_search::{NoTrace, SearchError, StrategyKind};
use serde::Serialize;

use crate::backend::{MrmBackend, PrmBackend};
use crate::{Defence, DefenceError, DefenceModels};

/// A defence's mean cost per prompt.
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize)]
pub struct SearchCost {
    pub wall_seconds: f64,
    pub tflop: f64,
    pub policy_tokens: f64,
    pub reward_calls: f64,
    /// Share of wall time outside the inference engine (policy and guard):
    /// tree bookkeeping, sampling, guard templating, the search itself.
    pub overhead: f64,
}

/// `defence` answering every request of `prompts` (request, chat) once.
pub fn search_cost(defence: &Defence, prompts: &[(&str, ChatPrompt)]) -> Result<SearchCost, DefenceError> {
    let (mut cost, mut inside) = (SearchCost::default(), 0.0);
    for (request, chat) in prompts {
        let answer = defence.answer(request, chat, &mut NoTrace)?;
        cost.wall_seconds += answer.cost.wall_seconds;
        inside += answer.engine_seconds;
        cost.tflop += answer.cost.tflop();
        cost.policy_tokens += answer.cost.policy.tokens_computed as f64;
        cost.reward_calls += answer.cost.reward_calls() as f64;
    }
    let n = prompts.len().max(1) as f64;
    cost.overhead = 1.0 - inside / cost.wall_seconds;
    (cost.wall_seconds, cost.tflop, cost.policy_tokens, cost.reward_calls) =
        (cost.wall_seconds / n, cost.tflop / n, cost.policy_tokens / n, cost.reward_calls / n);
    Ok(cost)
}

/// One call of each model, in milliseconds and TFLOP.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct CallCost {
    pub policy_token_ms: f64,
    pub policy_token_tflop: f64,
    pub mrm_call_ms: f64,
    pub mrm_call_tflop: f64,
    pub prm_call_ms: f64,
    pub prm_call_tflop: f64,
    /// MRM call time over policy token time.
    pub mrm_over_policy: f64,
    pub mrm_over_prm: f64,
}

/// The cost of one MRM call against one PRM call and one policy token
/// forward, over `steps` greedy tokens answering `chat` (`request` as the
/// reward models read it). `models` must hold both reward models.
pub fn call_cost(
    models: &DefenceModels,
    (request, chat): (&str, &ChatPrompt),
    steps: usize,
) -> Result<CallCost, DefenceError> {
    let policy = models.policy();
    let context = policy.encode_chat(chat)?;
    // Policy: greedy decode one token per step, hidden states kept (as a
    // search with a shared MRM runs it); time and FLOPs per step.
    let mut tree = policy.open(TreeOptions { hidden: HiddenStates::Keep, ..models.options() })?;
    let mut path = context.clone();
    let mut last = tree.outputs(&[&path], WantedOutputs::LogitsAndHidden)?.remove(0);
    let mut outputs: Vec<SequenceOutputs> = Vec::new();
    let (mut policy_secs, before) = (0.0, tree.cost());
    for _ in 0..steps {
        let logits = last.logits.as_deref().unwrap_or_default();
        let next = (0..logits.len()).max_by(|&a, &b| logits[a].total_cmp(&logits[b])).unwrap_or(0) as TokenId;
        path.push(next);
        let start = Instant::now();
        last = tree.outputs(&[&path], WantedOutputs::LogitsAndHidden)?.remove(0);
        policy_secs += start.elapsed().as_secs_f64();
        outputs.push(last.clone());
    }
    let policy_flops = (tree.cost().flops - before.flops) / steps as f64;
    let response = &path[context.len()..];
    let text = |t: &[TokenId]| policy.detokenize(t);
    let missing = |role| SearchError::MissingModel { strategy: StrategyKind::Saffron, role };
    let mrm = models.mrm().ok_or_else(|| missing(ModelRole::Mrm))?;
    let prm = models.prm().ok_or_else(|| missing(ModelRole::Prm))?;
    let (mrm_secs, mrm_flops) = time_mrm(mrm, (request, response), &outputs, models.options(), &text)?;
    let (prm_secs, prm_flops) = time_prm(prm, (request, response), models.options(), &text)?;
    let policy_token = policy_secs / steps as f64;
    Ok(CallCost {
        policy_token_ms: 1e3 * policy_token,
        policy_token_tflop: policy_flops / 1e12,
        mrm_call_ms: 1e3 * mrm_secs,
        mrm_call_tflop: mrm_flops / 1e12,
        prm_call_ms: 1e3 * prm_secs,
        prm_call_tflop: prm_flops / 1e12,
        mrm_over_policy: mrm_secs / policy_token,
        mrm_over_prm: mrm_secs / prm_secs,
    })
}

/// Seconds and FLOPs of one MRM call per node, on the hidden states just
/// computed. The first call is left out, as for the PRM: a separate
/// backbone computes its instruction and the prompt there, once per search.
fn time_mrm(
    mrm: &dyn MrmBackend,
    (request, response): (&str, &[TokenId]),
    outputs: &[SequenceOutputs],
    options: TreeOptions,
    text: &dyn Fn(&[TokenId]) -> String,
) -> Result<(f64, f64), DefenceError> {
    let mut mrm = mrm.bind(request, options, Box::new(text))?;
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
    (request, response): (&str, &[TokenId]),
    options: TreeOptions,
    text: &dyn Fn(&[TokenId]) -> String,
) -> Result<(f64, f64), DefenceError> {
    let mut prm = prm.bind(request, options, Box::new(text))?;
    prm.score(&[&response[..1]])?;
    let before = prm.cost();
    let start = Instant::now();
    for i in 1..response.len() {
        prm.score(&[&response[..=i]])?;
    }
    let calls = (response.len() - 1) as f64;
    Ok((start.elapsed().as_secs_f64() / calls, (prm.cost().flops - before.flops) / calls))
}
