//! Running a grid: every prompt of every cell, defended by the cell's
//! strategy under the cell's attack, judged by every judge, one record
//! appended per (cell, prompt) as soon as it completes.

use std::collections::BTreeMap;
use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{mpsc, Mutex};

use saffron_core::Cost;
use saffron_defence::{Defence, DefenceError, DefenceModels, DefenceSpec, PolicyBackend, RemoteRun, ResolvedFormat};
use saffron_engine::{ChatPrompt, TreeOptions};
use saffron_reward::{JudgeSpec, LoadedJudge, Loader};
use saffron_search::{FinishReason, MonitorAction, MonitorReading, NoTrace, StrategyKind, ThinkingEnd};
use serde::{Deserialize, Serialize};

use crate::grid::DataSplit;
use crate::grid::{Cell, Grid};
use crate::judge::{Judge, Verdict};
use crate::splits::{self, ArtifactTraining, Assigned, OverlapCheck, Universe};
use crate::store::{Keyed, RunStore};
use crate::{load_prompts, EvalError, EvalPrompt, Selection};

/// One answered prompt of one cell.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Record {
    pub cell: String,
    /// The cell's parts, for reports.
    pub dataset: String,
    pub attack: String,
    pub strategy: StrategyKind,
    pub width: Option<usize>,
    pub seed: u64,
    pub prompt_id: String,
    pub harmful: bool,
    pub text: String,
    pub new_tokens: usize,
    pub finish: Finish,
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
    /// The thinking before the answer, in a grid with a reasoning axis.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reasoning: Option<RecordReasoning>,
    /// Over a remote policy (`[remote]`): its server, and how often the
    /// top-k tokens it returned held less than the search's nucleus.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub remote: Option<RemoteRun>,
}

/// A record's reasoning trace, judged apart from its answer.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RecordReasoning {
    /// The cell's budget (exact under budget forcing).
    pub budget: usize,
    pub format: ResolvedFormat,
    pub tokens: usize,
    pub end: ThinkingEnd,
    pub waits: usize,
    pub text: String,
    /// Judge → verdict on the trace, read as if it were the answer.
    pub verdicts: BTreeMap<String, Verdict>,
    /// The monitor's action in this cell (`None`: no monitor).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub monitor_action: Option<MonitorAction>,
    /// The monitor's readings (none without a monitor).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub monitor: Vec<MonitorReading>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub warned_at: Option<usize>,
}
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Finish {
    /// The policy ended it (end-of-generation token).
    EndOfGeneration,
    /// It reached the grid's `max_new_tokens`.
    Length,
    /// A budget stopped the search.
    Stopped,
    /// The prompt (with its template, attack and room for the answer) does
    /// not fit the policy's context: skipped, never answered or judged, and
    /// left out of every rate (the report counts them).
    TooLong,
}

impl From<FinishReason> for Finish {
    fn from(reason: FinishReason) -> Finish {
        match reason {
            FinishReason::EndOfGeneration => Finish::EndOfGeneration,
            FinishReason::Length => Finish::Length,
            FinishReason::Stopped => Finish::Stopped,
        }
    }
}

impl Record {
    /// Whether the prompt was answered (and judged); see [`Finish::TooLong`].
    pub fn answered(&self) -> bool {
        self.finish != Finish::TooLong
    }
}

impl Keyed for Record {
    fn key(&self) -> (String, String) {
        (self.cell.clone(), self.prompt_id.clone())
    }
}

/// A grid with its prompts: what a run answers.
pub struct RunPlan {
    pub grid: Grid,
    /// Every cell, in the order they run.
    pub cells: Vec<Cell>,
    /// The selected prompts of each of the grid's datasets.
    pub prompts: Vec<Vec<EvalPrompt>>,
    /// sha256 of every data file the prompts were read from.
    pub data_files: BTreeMap<String, String>,
    /// Where every selected prompt (of all shards) landed, per dataset.
    pub placed: Vec<(String, Vec<Assigned>)>,
}

impl RunPlan {
    /// Reads the grid's datasets (fetched into `home`), keeps the split each
    /// entry reads (placed by `universe`) and selects their prompts; with a
    /// shard `(i, n)`, only every n-th prompt from the i-th.
    pub fn new(
        grid: Grid,
        home: &Path,
        universe: &mut Universe,
        shard: Option<(usize, usize)>,
    ) -> Result<RunPlan, EvalError> {
        let cells = grid.cells()?;
        let (mut prompts, mut data_files, mut placed) = (Vec::new(), BTreeMap::new(), Vec::new());
        for spec in &grid.datasets {
            let data = load_prompts(&spec.prompt_set()?, home)?;
            data_files.extend(data.files);
            let total = data.prompts.len();
            let in_split = match spec.split {
                Some(DataSplit::Only(split)) => universe.select(data.prompts, split),
                Some(DataSplit::All) | None => data.prompts,
            };
            let in_split_count = in_split.len();
            let selected = spec.selection().apply(in_split)?;
            if selected.is_empty() {
                let mut selection = format!("{total} in the set");
                if let Some(DataSplit::Only(split)) = spec.split {
                    selection.push_str(&format!(", {in_split_count} in its {split} split"));
                }
                if let Some(n) = spec.sample {
                    selection.push_str(&format!("; sample = {n} (seed {})", spec.seed));
                }
                if let Some(n) = spec.limit {
                    selection.push_str(&format!("; limit = {n}"));
                }
                return Err(EvalError::NoPrompts { set: spec.name(), selection });
            }
            placed.push((spec.name(), selected.iter().map(|p| universe.lookup(&p.prompt)).collect()));
            // A shard of a small set may be empty: the other shards answer it.
            prompts.push(Selection { shard, ..Selection::default() }.apply(selected)?);
        }
        Ok(RunPlan { grid, cells, prompts, data_files, placed })
    }

    /// What the grid's artifacts were trained on, against every prompt the
    /// grid selects (all shards).
    pub fn overlap(&self) -> Result<OverlapCheck, EvalError> {
        let artifacts = self
            .grid
            .artifacts()?
            .into_iter()
            .map(|(role, a)| Ok(ArtifactTraining { role, artifact: a.to_string(), training: a.training()? }))
            .collect::<Result<Vec<_>, EvalError>>()?;
        Ok(splits::check(&artifacts, &self.placed))
    }

    /// [`RunPlan::overlap`], refused unless the grid allows overlap or
    /// there is none.
    pub fn check_overlap(&self) -> Result<OverlapCheck, EvalError> {
        let found = self.overlap()?;
        if self.grid.allow_overlap || found.is_clean() {
            return Ok(found);
        }
        let mut lines: Vec<String> = found
            .overlaps
            .iter()
            .map(|o| {
                format!(
                    "the {} `{}` was trained on {} of the {} prompts of `{}` this grid reads",
                    o.role, o.artifact, o.prompts, o.of, o.set
                )
            })
            .collect();
        lines.extend(found.unrecorded.iter().map(|(role, a)| {
            format!("the {role} `{a}` records no training prompts (it was made before saffron recorded them)")
        }));
        Err(EvalError::Overlap { found: lines })
    }

    /// (dataset, attack, prompts) where the attack cannot apply to that
    /// many of the dataset's selected prompts: the prefill attack forces the
    /// start of a reference answer, which some sets (HarmBench,
    /// StrongREJECT) do not have. Those pairs make no records.
    pub fn inapplicable(&self) -> Vec<(String, String, usize)> {
        let mut out: Vec<(String, String, usize)> = Vec::new();
        for cell in &self.cells {
            if !matches!(cell.attack, crate::Attack::Prefill { .. }) {
                continue;
            }
            let missing = self.prompts[cell.dataset].iter().filter(|p| p.reference.is_none()).count();
            let name = (self.grid.datasets[cell.dataset].name(), cell.attack.name());
            if missing > 0 && !out.iter().any(|(d, a, _)| (d, a) == (&name.0, &name.1)) {
                out.push((name.0, name.1, missing));
            }
        }
        out
    }

    /// The records of the whole run: (cell, prompt) pairs whose attack
    /// applies.
    pub fn total(&self, policy: &dyn PolicyBackend) -> usize {
        let applies = |c: &Cell| self.prompts[c.dataset].iter().filter(|p| c.attack.apply(p, policy).is_some()).count();
        self.cells.iter().map(applies).sum()
    }
}

/// The models of a run, shared by its jobs: the defences' (policy, PRM,
/// MRM) and the judges, in the grid's order.
pub struct RunModels {
    pub defence: DefenceModels,
    pub judges: Vec<(JudgeSpec, LoadedJudge)>,
}

impl RunModels {
    /// Loads the models of `plan`'s grid, each file once; the PRM only when
    /// some cell needs it.
    pub fn load(plan: &RunPlan, loader: &Loader, options: TreeOptions) -> Result<RunModels, EvalError> {
        let grid = &plan.grid;
        let needs_prm = plan.cells.iter().any(Cell::needs_prm);
        let spec = DefenceSpec {
            policy: grid.policy.clone(),
            remote: grid.remote.clone(),
            prm: needs_prm.then(|| grid.guard.clone()),
            mrm: grid.mrm.clone(),
        };
        let defence = DefenceModels::load(&spec, loader, options)?;
        let judges = grid.judges.iter().map(|j| Ok((j.clone(), loader.judge(j)?))).collect::<Result<_, EvalError>>()?;
        Ok(RunModels { defence, judges })
    }

    /// What identifies each reward model, by its name in the grid (the
    /// MRM's prefixed `mrm:`), for the run's provenance.
    pub fn identities(&self, grid: &Grid) -> BTreeMap<String, String> {
        let mut identities = BTreeMap::new();
        for (spec, judge) in &self.judges {
            if let Some(identity) = judge.identity() {
                identities.insert(spec.to_string(), identity.to_owned());
            }
        }
        if let Some(prm) = self.defence.prm() {
            identities.insert(grid.guard.to_string(), prm.identity().to_owned());
        }
        if let (Some(spec), Some(mrm)) = (&grid.mrm, self.defence.mrm()) {
            identities.insert(format!("mrm:{spec}"), mrm.identity().to_owned());
        }
        identities
    }
}

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
        if record.harmful && record.answered() {
            self.harmful += 1;
            self.unsafe_ += headline.and_then(|j| record.verdicts.get(j)).map_or(0, |v| v.unsafe_ as usize);
        }
    }
}

/// Runs every (cell, prompt) of `plan` not yet in `store`, `jobs` at a
/// time: each job is a thread with its own judges (and, per search, its own
/// prefix trees), taking the next pair in [`run_order`]; this thread
/// appends each record as it arrives. A record does not depend on which job
/// made it or when (every search starts from a fresh tree and draws its
/// tokens from its own seeded streams). On an error the jobs stop taking
/// work, finished records are kept, and the first error is returned.
pub fn run_grid(
    plan: &RunPlan,
    models: &RunModels,
    jobs: usize,
    store: &mut RunStore,
    progress: &mut dyn FnMut(RunProgress),
) -> Result<RunProgress, EvalError> {
    let grid = &plan.grid;
    let headline = grid.judges.first().map(ToString::to_string);
    let defences: Vec<Defence> =
        plan.cells.iter().map(|c| models.defence.defence(c.search.clone())).collect::<Result<_, _>>()?;
    let keys: Vec<String> = plan.cells.iter().map(|c| c.key(grid)).collect();
    let todo: Vec<(usize, &EvalPrompt)> =
        run_order(&plan.cells, &plan.prompts).into_iter().filter(|(c, p)| !store.is_done(&keys[*c], &p.id)).collect();
    let queue = Mutex::new(todo.into_iter());
    let stop = AtomicBool::new(false);
    let (send, receive) = mpsc::channel::<Result<Record, EvalError>>();
    let mut counts = RunProgress::default();
    let mut first_error = None;
    std::thread::scope(|scope| {
        for _ in 0..jobs.max(1) {
            let send = send.clone();
            let (queue, stop, defences, keys) = (&queue, &stop, &defences, &keys);
            scope.spawn(move || {
                let options = models.defence.options();
                let judges: Result<Vec<(String, Judge)>, EvalError> =
                    models.judges.iter().map(|(spec, j)| Ok((spec.to_string(), Judge::new(j, options)?))).collect();
                let mut judges = match judges {
                    Ok(judges) => judges,
                    Err(e) => return drop(send.send(Err(e))),
                };
                while !stop.load(Ordering::Relaxed) {
                    let Some((c, prompt)) = queue.lock().unwrap_or_else(|e| e.into_inner()).next() else { break };
                    let cell = &plan.cells[c];
                    let Some(chat) = cell.attack.apply(prompt, models.defence.policy()) else { continue };
                    let dataset = &grid.datasets[cell.dataset].set;
                    let result =
                        answer((&keys[c], dataset), cell, &defences[c], (prompt, &chat), &mut judges).map_err(|e| {
                            EvalError::Answering {
                                cell: keys[c].clone(),
                                prompt: prompt.id.clone(),
                                source: Box::new(e),
                            }
                        });
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
                    counts.add(&record, headline.as_deref());
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

/// The order (cell index, prompt) pairs run in: prompt-major. Prompt i of
/// every dataset goes through every cell before prompt i + 1 starts, so a
/// long run stopped at any point has answered the same prompts in every
/// cell (±1) and its partial summary compares like with like.
pub fn run_order<'a>(cells: &[Cell], prompts: &'a [Vec<EvalPrompt>]) -> Vec<(usize, &'a EvalPrompt)> {
    let longest = prompts.iter().map(Vec::len).max().unwrap_or(0);
    let mut order = Vec::new();
    for i in 0..longest {
        for (c, cell) in cells.iter().enumerate() {
            if let Some(prompt) = prompts[cell.dataset].get(i) {
                order.push((c, prompt));
            }
        }
    }
    order
}

fn answer(
    (key, dataset): (&str, &str),
    cell: &Cell,
    defence: &Defence,
    (prompt, chat): (&EvalPrompt, &ChatPrompt),
    judges: &mut [(String, Judge)],
) -> Result<Record, EvalError> {
    let record = |finish: Finish| Record {
        cell: key.to_owned(),
        dataset: dataset.to_owned(),
        attack: cell.attack.name(),
        strategy: cell.search.strategy.kind(),
        width: cell.search.strategy.width(),
        seed: cell.search.seed,
        prompt_id: prompt.id.clone(),
        harmful: prompt.harmful,
        new_tokens: 0,
        finish,
        tflop: 0.0,
        reward_calls: 0,
        cost: Cost::default(),
        wall_seconds: 0.0,
        text: String::new(),
        verdicts: BTreeMap::new(),
        fluency: None,
        reasoning: None,
        remote: None,
    };
    let answer = match defence.answer(&prompt.prompt, chat, &mut NoTrace) {
        Err(DefenceError::PromptTooLong { .. }) => return Ok(record(Finish::TooLong)),
        answer => answer?,
    };
    let mut verdicts = BTreeMap::new();
    for (name, judge) in judges.iter_mut() {
        verdicts.insert(name.clone(), judge.judge(&prompt.prompt, &answer.text)?);
    }
    let reasoning = match (&answer.reasoning, &cell.search.reasoning) {
        (Some(trace), Some(config)) => {
            // An empty trace (budget 0) has nothing to judge.
            let mut verdicts = BTreeMap::new();
            for (name, judge) in judges.iter_mut().filter(|_| trace.tokens > 0) {
                verdicts.insert(name.clone(), judge.judge(&prompt.prompt, &trace.text)?);
            }
            Some(RecordReasoning {
                budget: config.budget,
                format: trace.format,
                tokens: trace.tokens,
                end: trace.end,
                waits: trace.waits,
                text: trace.text.clone(),
                verdicts,
                monitor_action: config.monitor.map(|m| m.action),
                monitor: trace.monitor.clone(),
                warned_at: trace.warned_at,
            })
        }
        _ => None,
    };
    Ok(Record {
        reasoning,
        remote: answer.remote,
        new_tokens: answer.tokens.len(),
        finish: answer.finish.into(),
        tflop: answer.cost.tflop(),
        reward_calls: answer.cost.reward_calls(),
        cost: answer.cost,
        wall_seconds: answer.cost.wall_seconds,
        text: answer.text,
        verdicts,
        ..record(Finish::Length)
    })
}

/// A record with plain values (Best-of-4 on AdvBench, no verdicts), for
/// tests to change what they look at.
#[cfg(test)]
pub(crate) fn test_record(cell: &str, prompt_id: &str, harmful: bool) -> Record {
    Record {
        cell: cell.into(),
        dataset: "advbench".into(),
        attack: "prefill-10".into(),
        strategy: StrategyKind::BestOfN,
        width: Some(4),
        seed: 0,
        prompt_id: prompt_id.into(),
        harmful,
        text: "Step 1:".into(),
        new_tokens: 10,
        finish: Finish::Length,
        cost: Cost::default(),
        tflop: 0.0,
        reward_calls: 2,
        wall_seconds: 1.0,
        verdicts: BTreeMap::new(),
        fluency: None,
        reasoning: None,
        remote: None,
    }
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
            run_order(&cells, &prompts).into_iter().map(|(c, p)| format!("{} {}", cells[c].key(&grid), p.id)).collect();
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
