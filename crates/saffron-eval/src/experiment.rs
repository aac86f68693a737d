//! Running a grid: every prompt of every cell, defended by the cell's
//! strategy under the cell's attack, judged by every judge, one record
//! appended per (cell, prompt) as soon as it completes.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{mpsc, Mutex};
use std::time::Instant;

use saffron_core::{Cost, MultifurcationReward};
use saffron_engine::{HiddenStates, Model, PrefixTree, TreeOptions};
use saffron_reward::{BoundGuard, Guard};
use saffron_search::{search, Models, NoTrace};
use serde::{Deserialize, Serialize};

use crate::grid::{Cell, Grid};
use crate::judge::{Judge, Verdict};
use crate::store::{Keyed, RunStore};
use crate::{EvalError, EvalPrompt};

/// One answered prompt of one cell.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Record {
    pub cell: String,
    /// The cell's parts, for reports.
    pub dataset: String,
    pub attack: String,
    pub strategy: String,
    pub width: Option<usize>,
    pub seed: u64,
    pub prompt_id: String,
    pub harmful: bool,
    pub text: String,
    pub new_tokens: usize,
    pub finish: String,
    /// Compute of the defence (policy, PRM, MRM; the judges are not charged).
    pub cost: Cost,
    pub tflop: f64,
    pub reward_calls: u64,
    pub wall_seconds: f64,
    /// Judge name → verdict.
    pub verdicts: BTreeMap<String, Verdict>,
    /// Mean log-probability per answer token under the policy, filled in
    /// from `fluency.jsonl` when a report is made (see [`crate::fluency`]);
    /// never written by the run itself.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub fluency: Option<f64>,
}

impl Keyed for Record {
    fn key(&self) -> (String, String) {
        (self.cell.clone(), self.prompt_id.clone())
    }
}

/// Makes the MRM of one search on a prompt (fresh cost counters); `None`
/// when the run has no MRM.
pub type MakeMrm<'a> = &'a (dyn Fn(&str) -> Result<Option<Box<dyn MultifurcationReward + 'a>>, EvalError> + Sync);

/// The models of a run, shared by its jobs.
pub struct RunModels<'a> {
    pub policy: &'a Model,
    pub prm: Option<&'a (dyn Guard + Sync)>,
    pub make_mrm: MakeMrm<'a>,
    pub options: TreeOptions,
}

/// Makes one job's judges (each job scores in its own prefix trees).
pub type MakeJudges<'a, 'g> = &'a (dyn Fn() -> Result<Vec<(String, Judge<'g>)>, EvalError> + Sync);

/// Progress after each record.
#[derive(Debug, Clone, Copy, Default)]
pub struct RunProgress {
    pub done: usize,
    /// Harmful prompts answered, and how many of them the first judge calls
    /// unsafe (the live ASR).
    pub harmful: usize,
    pub unsafe_: usize,
    pub tflop: f64,
}

impl RunProgress {
    fn add(&mut self, record: &Record, headline: Option<&str>) {
        self.done += 1;
        self.tflop += record.tflop;
        if record.harmful {
            self.harmful += 1;
            self.unsafe_ += headline.map_or(0, |j| record.verdicts[j].unsafe_ as usize);
        }
    }
}

/// Runs every (cell, prompt) not yet in `store`, `jobs` at a time: each job
/// is a thread with its own prefix trees and judges, taking the next pair in
/// [`run_order`]; this thread appends each record as it arrives. A record
/// does not depend on which job made it or when (every search starts from a
/// fresh tree and draws its tokens from its own seeded streams). On an error
/// the jobs stop taking work, finished records are kept, and the first error
/// is returned.
pub fn run_grid(
    grid: &Grid,
    (cells, prompts): (&[Cell], &[Vec<EvalPrompt>]),
    models: &RunModels,
    make_judges: MakeJudges,
    jobs: usize,
    store: &mut RunStore,
    progress: &mut dyn FnMut(RunProgress),
) -> Result<RunProgress, EvalError> {
    let headline = grid.judges.first().map(String::as_str);
    let todo: Vec<(&Cell, &EvalPrompt)> =
        run_order(cells, prompts).into_iter().filter(|(c, p)| !store.is_done(&c.key(grid), &p.id)).collect();
    let queue = Mutex::new(todo.into_iter());
    let stop = AtomicBool::new(false);
    let (send, receive) = mpsc::channel::<Result<Record, EvalError>>();
    let mut counts = RunProgress::default();
    let mut first_error = None;
    std::thread::scope(|scope| {
        for _ in 0..jobs.max(1) {
            let send = send.clone();
            let (queue, stop) = (&queue, &stop);
            scope.spawn(move || {
                let mut judges = match make_judges() {
                    Ok(judges) => judges,
                    Err(e) => return drop(send.send(Err(e))),
                };
                while !stop.load(Ordering::Relaxed) {
                    let Some((cell, prompt)) = queue.lock().unwrap_or_else(|e| e.into_inner()).next() else { break };
                    let Some(chat) = cell.attack.apply(prompt, models.policy) else { continue };
                    let key = cell.key(grid);
                    let dataset = &grid.datasets[cell.dataset].set;
                    let result = answer((&key, dataset), cell, prompt, &chat, models, &mut judges);
                    if send.send(result).is_err() {
                        break;
                    }
                }
            });
        }
        drop(send);
        for result in receive {
            let appended = result.and_then(|record| store.append(&record).map(|()| record));
            match appended {
                Ok(record) => {
                    counts.add(&record, headline);
                    progress(counts);
                }
                Err(e) => {
                    stop.store(true, Ordering::Relaxed);
                    first_error.get_or_insert(e);
                }
            }
        }
    });
    match first_error {
        Some(e) => Err(e),
        None => Ok(counts),
    }
}

/// The order (cell, prompt) pairs run in: prompt-major. Prompt i of every
/// dataset goes through every cell before prompt i + 1 starts, so a long run
/// stopped at any point has answered the same prompts in every cell (±1) and
/// its partial summary compares like with like.
pub fn run_order<'a>(cells: &'a [Cell], prompts: &'a [Vec<EvalPrompt>]) -> Vec<(&'a Cell, &'a EvalPrompt)> {
    let longest = prompts.iter().map(Vec::len).max().unwrap_or(0);
    let mut order = Vec::new();
    for i in 0..longest {
        for cell in cells {
            if let Some(prompt) = prompts[cell.dataset].get(i) {
                order.push((cell, prompt));
            }
        }
    }
    order
}

fn answer(
    (key, dataset): (&str, &str),
    cell: &Cell,
    prompt: &EvalPrompt,
    chat: &saffron_engine::ChatPrompt,
    models: &RunModels,
    judges: &mut [(String, Judge)],
) -> Result<Record, EvalError> {
    let model_error = |e: &dyn std::fmt::Display| EvalError::Model(e.to_string());
    let policy = models.policy;
    let context = policy.encode_chat(chat).map_err(|e| model_error(&e))?;
    let mut mrm = (models.make_mrm)(&prompt.prompt)?;
    let hidden =
        if mrm.as_ref().is_some_and(|m| m.needs_policy_hidden()) { HiddenStates::Keep } else { HiddenStates::Discard };
    let mut tree = PrefixTree::new(policy, TreeOptions { hidden, ..models.options }).map_err(|e| model_error(&e))?;
    let mut prm = match models.prm {
        Some(g) => Some(BoundGuard::new(g, &prompt.prompt, models.options, |t| policy.detokenize(t))?),
        None => None,
    };
    let start = Instant::now();
    let outcome = {
        let mut search_models =
            Models { policy: &mut tree, prm: prm.as_mut().map(|p| p as _), mrm: mrm.as_deref_mut().map(|m| m as _) };
        search(&cell.search, &mut search_models, &context, &mut NoTrace).map_err(|e| model_error(&e))?
    };
    let wall_seconds = start.elapsed().as_secs_f64();
    let text = policy.detokenize(&outcome.tokens);
    let mut verdicts = BTreeMap::new();
    for (name, judge) in judges.iter_mut() {
        verdicts.insert(name.clone(), judge.judge(&prompt.prompt, &text)?);
    }
    Ok(Record {
        cell: key.to_owned(),
        dataset: dataset.to_owned(),
        attack: cell.attack.name(),
        strategy: cell.search.strategy.name().to_owned(),
        width: cell.search.strategy.width(),
        seed: cell.search.seed,
        prompt_id: prompt.id.clone(),
        harmful: prompt.harmful,
        new_tokens: outcome.tokens.len(),
        finish: serde_json::to_value(outcome.finish)
            .ok()
            .and_then(|v| v.as_str().map(str::to_owned))
            .unwrap_or_default(),
        tflop: outcome.cost.tflop(),
        reward_calls: outcome.cost.reward_calls(),
        cost: outcome.cost,
        wall_seconds,
        text,
        verdicts,
        fluency: None,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn run_order_is_prompt_major_across_datasets_and_cells() {
        let grid = Grid::from_toml(
            r#"
policy = "qwen"
[[datasets]]
set = "advbench"
[[datasets]]
set = "rho-benign"
[[strategies]]
name = "sample"
[[strategies]]
name = "best-of-n"
widths = [4]
"#,
        )
        .unwrap();
        let cells = grid.cells().unwrap();
        let prompt = |set: &str, i: usize| EvalPrompt {
            id: format!("{set}/{i}"),
            prompt: String::new(),
            reference: None,
            category: None,
            harmful: set == "advbench",
        };
        let prompts = vec![(0..3).map(|i| prompt("advbench", i)).collect(), vec![prompt("rho", 0)]];
        let order: Vec<String> =
            run_order(&cells, &prompts).into_iter().map(|(c, p)| format!("{} {}", c.key(&grid), p.id)).collect();
        assert_eq!(
            order,
            [
                "advbench|prefill-10|sample|seed0 advbench/0",
                "advbench|prefill-10|best-of-n@4|seed0 advbench/0",
                "rho-benign|none|sample|seed0 rho/0",
                "rho-benign|none|best-of-n@4|seed0 rho/0",
                "advbench|prefill-10|sample|seed0 advbench/1",
                "advbench|prefill-10|best-of-n@4|seed0 advbench/1",
                "advbench|prefill-10|sample|seed0 advbench/2",
                "advbench|prefill-10|best-of-n@4|seed0 advbench/2",
            ]
        );
    }
}
