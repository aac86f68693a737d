//! A policy whose searches share one prefix tree and one `llama_decode` per
//! step: continuous batching across concurrent searches (the server's
//! requests).
//!
//! Each search runs on its own thread, as with [`LocalPolicy`]. Its
//! session sends every policy call to a scheduler thread that owns the
//! shared [`PrefixTree`]. The scheduler takes the first waiting call, then
//! gathers the calls of the other open sessions (until every open session
//! has one waiting, or [`BatchOptions::gather`] has passed), asks the tree
//! for all their paths in one request, and hands each session its outputs
//! and what its own paths cost. A prefix two searches share, such as a
//! system prompt, is computed once.
//!
//! Costs: a token is charged to the first search that computed it; a
//! search that finds it cached is served it (`tokens_served`), so a
//! search's cost depends on what ran before it on the same server.
//! Answers do not: sampling is keyed by path, never by batch.
//!
//! When a search ends, its context's last node and every branch below it
//! are released, and the tree is cut back to [`BatchOptions::idle_cells`]
//! (least recently used leaves first): llama.cpp attends over every cell
//! up to the highest in use, so a tree that kept every finished request
//! would make every later step slower (measured: without this, 8 concurrent
//! Saffron-8 requests on SmolLM2 were no faster than 8 in a row).
//!
//! A search that keeps hidden states (a shared-backbone MRM) gets a second
//! shared tree with [`HiddenStates::Keep`], so the others never pay for
//! output rows they do not read.
//!
//! [`LocalPolicy`]: crate::local::LocalPolicy

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::mpsc::{self, Receiver, RecvTimeoutError, Sender};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use saffron_core::{ModelCost, ModelError, Policy, SequenceOutputs, TokenId, WantedOutputs};
use saffron_engine::{
    ChatPrompt, EngineError, HiddenStates, Model, PrefixTree, SpecialText, TreeOptions, TreeStats, PATHS_PER_CHUNK,
};
use saffron_reward::LoadedModel;

use crate::backend::{PolicyBackend, PolicySession};
use crate::DefenceError;

/// How the scheduler batches.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct BatchOptions {
    /// Options of the shared trees (`hidden` is chosen per tree).
    pub tree: TreeOptions,
    /// Longest wait for the other open searches' calls once one is waiting.
    pub gather: Duration,
    /// When a search ends its branches are dropped, and the tree is cut
    /// back to this many cached nodes (least recently used first), keeping
    /// recent contexts (a shared system prompt) for the next requests.
    /// llama.cpp attends over every cell up to the highest in use, so a
    /// tree that kept everything would slow every later step.
    pub idle_cells: usize,
}

impl Default for BatchOptions {
    fn default() -> Self {
        BatchOptions {
            tree: TreeOptions { max_output_bytes: 256 << 20, ..TreeOptions::default() },
            gather: Duration::from_millis(5),
            idle_cells: 2048,
        }
    }
}

/// Totals of one shared tree since the server started.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct BatchStats {
    /// Joint requests made to the tree (each one or more decodes).
    pub steps: u64,
    /// Policy calls of the searches, answered by those steps.
    pub calls: u64,
    /// Joint steps split in two because their new nodes did not fit in the
    /// tree's cells together.
    pub splits: u64,
    pub cost: ModelCost,
    pub tree: Option<TreeStats>,
    /// Time spent waiting for the other searches' calls once one was
    /// waiting (gathering), and inside the tree's requests.
    pub gather_seconds: f64,
    pub run_seconds: f64,
}

impl BatchStats {
    /// Share of requested tokens served from the tree.
    pub fn hit_rate(&self) -> f64 {
        let asked = self.cost.tokens_requested();
        if asked == 0 {
            0.0
        } else {
            self.cost.tokens_served as f64 / asked as f64
        }
    }
}

/// A GGUF policy whose searches share trees; see the module docs.
pub struct BatchedPolicy {
    model: LoadedModel,
    options: BatchOptions,
    /// One scheduler per [`HiddenStates`], started on first use.
    schedulers: [Mutex<Option<Scheduler>>; 2],
}

impl BatchedPolicy {
    pub fn new(model: LoadedModel, options: BatchOptions) -> BatchedPolicy {
        BatchedPolicy { model, options, schedulers: [Mutex::new(None), Mutex::new(None)] }
    }

    /// Totals of both shared trees, once every job sent before this call
    /// is done (waits for a running step to end).
    pub fn stats(&self) -> BatchStats {
        let mut total = BatchStats::default();
        let started: Vec<(Sender<Job>, Arc<Mutex<BatchStats>>)> = self
            .schedulers
            .iter()
            .filter_map(|slot| slot.lock().expect("scheduler lock").as_ref().map(|s| (s.jobs.clone(), s.stats.clone())))
            .collect();
        for (jobs, stats) in started {
            {
                let (done, wait) = mpsc::channel();
                if jobs.send(Job::Barrier(done)).is_ok() {
                    let _ = wait.recv();
                }
                let stats = *stats.lock().expect("stats lock");
                total.steps += stats.steps;
                total.calls += stats.calls;
                total.splits += stats.splits;
                total.cost += stats.cost;
                total.gather_seconds += stats.gather_seconds;
                total.run_seconds += stats.run_seconds;
                total.tree = match (total.tree, stats.tree) {
                    (Some(a), Some(b)) => Some(TreeStats {
                        cached_nodes: a.cached_nodes + b.cached_nodes,
                        leaves: a.leaves + b.leaves,
                        max_cells: a.max_cells + b.max_cells,
                        nodes_with_logits: a.nodes_with_logits + b.nodes_with_logits,
                        output_bytes: a.output_bytes + b.output_bytes,
                    }),
                    (a, b) => a.or(b),
                };
            }
        }
        total
    }

    fn scheduler(&self, hidden: HiddenStates) -> Result<SchedulerHandle, DefenceError> {
        let slot = &self.schedulers[hidden as usize];
        let mut slot = slot.lock().expect("scheduler lock");
        // A scheduler whose thread ended (a panic) is replaced; its totals
        // carry on, its cached prefixes are lost.
        let stats = match slot.take() {
            Some(dead) if dead.thread.is_finished() => {
                tracing::error!("the shared prefix tree's scheduler ({hidden:?}) stopped; starting a new one");
                // It may have stopped holding the lock: keep the totals all the same.
                let totals = *dead.stats.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
                Arc::new(Mutex::new(totals))
            }
            Some(running) => {
                let handle = SchedulerHandle { jobs: running.jobs.clone(), open: running.open.clone() };
                *slot = Some(running);
                return Ok(handle);
            }
            None => Arc::new(Mutex::new(BatchStats::default())),
        };
        let model = self.model.model();
        let max_cells = self.options.tree.max_cells.min(model.train_context());
        let options = TreeOptions { max_cells, hidden, ..self.options.tree };
        *slot = Some(Scheduler::start(model, options, self.options, stats)?);
        let s = slot.as_ref().expect("started above");
        Ok(SchedulerHandle { jobs: s.jobs.clone(), open: s.open.clone() })
    }
}

impl PolicyBackend for BatchedPolicy {
    fn name(&self) -> &str {
        self.model.spec()
    }

    fn identity(&self) -> Result<String, DefenceError> {
        Ok(self.model.sha256().to_owned())
    }

    fn encode_chat(&self, chat: &ChatPrompt) -> Result<Vec<TokenId>, DefenceError> {
        Ok(self.model.model().encode_chat(chat)?)
    }

    fn tokenize(&self, text: &str) -> Vec<TokenId> {
        self.model.model().tokenize(text, SpecialText::Literal)
    }

    fn encode_prompt(&self, text: &str) -> Vec<TokenId> {
        self.model.model().tokenize(text, SpecialText::Parse)
    }

    fn detokenize(&self, tokens: &[TokenId]) -> String {
        self.model.model().detokenize(tokens)
    }

    fn has_thinking_section(&self) -> bool {
        self.model.model().has_thinking_section()
    }

    fn shared_stats(&self) -> Option<BatchStats> {
        Some(self.stats())
    }

    fn context_limit(&self) -> usize {
        self.model.model().train_context().min(self.options.tree.max_cells) as usize
    }

    /// A session on the shared tree of `options.hidden` (the other options
    /// are the shared tree's own).
    fn open(&self, options: TreeOptions) -> Result<Box<dyn PolicySession + '_>, DefenceError> {
        let handle = self.scheduler(options.hidden)?;
        handle.open.fetch_add(1, Ordering::SeqCst);
        Ok(Box::new(SharedSession {
            handle,
            model: self.model.model(),
            cost: ModelCost::default(),
            engine: Duration::ZERO,
            first_call_cached: None,
            context: None,
        }))
    }
}

/// What a session sends its scheduler.
enum Job {
    /// One policy call of a search.
    Outputs { paths: Vec<Vec<TokenId>>, wanted: WantedOutputs, reply: Sender<Result<Answered, Refused>> },
    /// A search ended (the scheduler stops counting it as open); the first
    /// path it asked for (its context), if any, and everything below it
    /// may go.
    Finished(Option<Vec<TokenId>>),
    /// Answered once every job sent before it has been taken in (calls
    /// gathered with it may still be running).
    Barrier(Sender<()>),
}

/// A policy call waiting in a batch.
struct Call {
    paths: Vec<Vec<TokenId>>,
    wanted: WantedOutputs,
    reply: Sender<Result<Answered, Refused>>,
}

/// Why a call got no outputs.
enum Refused {
    /// Its new nodes do not fit in the tree even alone.
    Full(String),
    Failed(String),
}

/// What a call gets back: its outputs, what its paths cost, and how many
/// tokens of its first path were found cached.
struct Answered {
    outputs: Vec<SequenceOutputs>,
    cost: ModelCost,
    first_path_served: u64,
}

/// The scheduler thread of one shared tree.
struct Scheduler {
    jobs: Sender<Job>,
    open: Arc<AtomicUsize>,
    stats: Arc<Mutex<BatchStats>>,
    thread: JoinHandle<()>,
}

struct SchedulerHandle {
    jobs: Sender<Job>,
    open: Arc<AtomicUsize>,
}

impl Scheduler {
    /// Creates the tree on its own thread (llama.cpp contexts stay on the
    /// thread that made them) and waits until it exists.
    fn start(
        model: &Model,
        options: TreeOptions,
        batch: BatchOptions,
        stats: Arc<Mutex<BatchStats>>,
    ) -> Result<Scheduler, DefenceError> {
        let (jobs, rx) = mpsc::channel::<Job>();
        let open = Arc::new(AtomicUsize::new(0));
        let (ready_tx, ready_rx) = mpsc::channel();
        let model = model.clone();
        let (thread_open, thread_stats) = (open.clone(), stats.clone());
        let thread = std::thread::Builder::new()
            .name(format!("saffron-batch-{:?}", options.hidden).to_lowercase())
            .spawn(move || match PrefixTree::new(&model, options) {
                Ok(tree) => {
                    let _ = ready_tx.send(Ok(()));
                    serve(tree, &rx, &thread_open, &thread_stats, batch);
                }
                Err(e) => {
                    let _ = ready_tx.send(Err(e));
                }
            })
            .map_err(DefenceError::SchedulerThread)?;
        ready_rx.recv().map_err(|_| DefenceError::SchedulerGone)??;
        Ok(Scheduler { jobs, open, stats, thread })
    }
}

/// The scheduler loop: gather, run jointly, reply; until every sender is gone.
fn serve(mut tree: PrefixTree, rx: &Receiver<Job>, open: &AtomicUsize, stats: &Mutex<BatchStats>, batch: BatchOptions) {
    let finished = |tree: &mut PrefixTree, context: Option<Vec<TokenId>>| {
        let still_open = open.fetch_sub(1, Ordering::SeqCst) - 1;
        if let Some(context) = context {
            // Unknown when it was evicted already. Another open search on
            // the very same context loses its branches too (recomputed).
            let _ = tree.release(&context);
        }
        // Cut back only when idle: running searches keep their nodes.
        if still_open == 0 {
            tree.shrink_to(batch.idle_cells);
        }
        stats.lock().expect("stats lock").tree = Some(tree.stats());
    };
    while let Ok(job) = rx.recv() {
        let first = match job {
            Job::Outputs { paths, wanted, reply } => Call { paths, wanted, reply },
            Job::Finished(context) => {
                finished(&mut tree, context);
                continue;
            }
            Job::Barrier(done) => {
                let _ = done.send(());
                continue;
            }
        };
        let mut calls = vec![first];
        let gathering = Instant::now();
        let deadline = gathering + batch.gather;
        while calls.len() < open.load(Ordering::SeqCst) {
            let left = deadline.saturating_duration_since(Instant::now());
            match rx.recv_timeout(left) {
                Ok(Job::Outputs { paths, wanted, reply }) => calls.push(Call { paths, wanted, reply }),
                Ok(Job::Finished(context)) => finished(&mut tree, context),
                Ok(Job::Barrier(done)) => {
                    let _ = done.send(());
                }
                Err(RecvTimeoutError::Timeout | RecvTimeoutError::Disconnected) => break,
            }
        }
        stats.lock().expect("stats lock").gather_seconds += gathering.elapsed().as_secs_f64();
        run_batch(&mut tree, calls, stats);
    }
}

/// One joint tree request for every job of `batch`. When their new nodes
/// do not fit in the tree's cells (or sequence ids) together, the batch is
/// split in halves, each run on its own, down to single calls: a call is
/// refused for want of room only when it does not fit alone. A batch of
/// more paths than the tree takes in one chunk is split first, so that a
/// request that fails to make room has run nothing (and charged nothing).
fn run_batch(tree: &mut PrefixTree, batch: Vec<Call>, stats: &Mutex<BatchStats>) {
    let split = |tree: &mut PrefixTree, mut batch: Vec<Call>| {
        let second = batch.split_off(batch.len() / 2);
        run_batch(tree, batch, stats);
        run_batch(tree, second, stats);
    };
    let rows: usize = batch.iter().map(|c| c.paths.len()).sum();
    if rows > PATHS_PER_CHUNK && batch.len() > 1 {
        return split(tree, batch);
    }
    let wanted = batch.iter().fold(WantedOutputs::Logits, |w, j| union(w, j.wanted));
    let paths: Vec<&[TokenId]> = batch.iter().flat_map(|j| j.paths.iter().map(|p| p.as_slice())).collect();
    let before = tree.cost();
    let started = Instant::now();
    let result = tree.outputs_paid(&paths, wanted);
    drop(paths);
    if let Err(EngineError::OutOfCells { .. } | EngineError::OutOfSequences { .. }) = &result {
        if batch.len() > 1 {
            // Making room failed before evicting or running anything: the
            // tree is as it was.
            stats.lock().expect("stats lock").splits += 1;
            return split(tree, batch);
        }
    }
    {
        let mut s = stats.lock().expect("stats lock");
        s.run_seconds += started.elapsed().as_secs_f64();
        s.steps += 1;
        s.calls += batch.len() as u64;
        s.cost += tree.cost().since(&before);
        s.tree = Some(tree.stats());
    }
    match result {
        Ok((outputs, paid)) => {
            let mut outputs = outputs.into_iter();
            let mut paid = paid.into_iter();
            for job in batch {
                let n = job.paths.len();
                let mine: Vec<SequenceOutputs> = outputs.by_ref().take(n).map(|o| only(o, job.wanted)).collect();
                let mine_paid: Vec<ModelCost> = paid.by_ref().take(n).collect();
                let mut cost = ModelCost::default();
                mine_paid.iter().for_each(|&c| cost += c);
                cost.calls = 1;
                let first_path_served = mine_paid.first().map_or(0, |c| c.tokens_served);
                let _ = job.reply.send(Ok(Answered { outputs: mine, cost, first_path_served }));
            }
        }
        Err(e) => {
            let full = matches!(e, EngineError::OutOfCells { .. } | EngineError::OutOfSequences { .. });
            for job in batch {
                let message = format!("shared prefix tree: {e}");
                let _ = job.reply.send(Err(if full { Refused::Full(message) } else { Refused::Failed(message) }));
            }
        }
    }
}

fn union(a: WantedOutputs, b: WantedOutputs) -> WantedOutputs {
    match (a.hidden() || b.hidden(), a.logits() || b.logits()) {
        (true, true) => WantedOutputs::LogitsAndHidden,
        (true, false) => WantedOutputs::Hidden,
        _ => WantedOutputs::Logits,
    }
}

/// Drops the outputs a job did not ask for (another job of the batch did).
fn only(mut o: SequenceOutputs, wanted: WantedOutputs) -> SequenceOutputs {
    if !wanted.logits() {
        o.logits = None;
    }
    if !wanted.hidden() {
        o.hidden = None;
    }
    o
}

/// One search's view of a shared tree.
struct SharedSession<'a> {
    handle: SchedulerHandle,
    model: &'a Model,
    cost: ModelCost,
    engine: Duration,
    first_call_cached: Option<u64>,
    /// The first path asked for: the search's context.
    context: Option<Vec<TokenId>>,
}

impl Drop for SharedSession<'_> {
    /// The scheduler stops counting this session as open when it takes the
    /// message in (in order with the calls), or here if it is gone.
    fn drop(&mut self) {
        if self.handle.jobs.send(Job::Finished(self.context.take())).is_err() {
            self.handle.open.fetch_sub(1, Ordering::SeqCst);
        }
    }
}

impl Policy for SharedSession<'_> {
    fn vocab_size(&self) -> usize {
        self.model.vocab_size()
    }

    fn is_end_of_generation(&self, token: TokenId) -> bool {
        self.model.is_end_of_generation(token)
    }

    fn end_of_generation_tokens(&self) -> Vec<TokenId> {
        self.model.end_of_generation().to_vec()
    }

    fn outputs(&mut self, sequences: &[&[TokenId]], wanted: WantedOutputs) -> Result<Vec<SequenceOutputs>, ModelError> {
        let started = Instant::now();
        let (reply, answer) = mpsc::channel();
        if self.context.is_none() {
            self.context = sequences.first().map(|s| s.to_vec());
        }
        let job = Job::Outputs { paths: sequences.iter().map(|s| s.to_vec()).collect(), wanted, reply };
        self.handle.jobs.send(job).map_err(|_| ModelError::new(DefenceError::SchedulerGone))?;
        let Answered { outputs, cost, first_path_served } =
            answer.recv().map_err(|_| ModelError::new(DefenceError::SchedulerGone))?.map_err(|e| match e {
                Refused::Full(m) => ModelError::new(DefenceError::SharedTreeFull(m)),
                Refused::Failed(m) => ModelError::new(DefenceError::Shared(m)),
            })?;
        self.first_call_cached.get_or_insert(first_path_served);
        self.cost += cost;
        self.engine += started.elapsed();
        Ok(outputs)
    }

    fn cost(&self) -> ModelCost {
        self.cost
    }
}

impl PolicySession for SharedSession<'_> {
    /// Nothing to drop that is this search's alone: the tree is shared, and
    /// its least recently used leaves make room as it fills.
    fn clear(&mut self) {}

    /// Time waiting for the shared tree (gathering included).
    fn engine_time(&self) -> Duration {
        self.engine
    }

    fn first_call_cached(&self) -> u64 {
        self.first_call_cached.unwrap_or(0)
    }
}

#[cfg(test)]
mod tests {
    use saffron_reward::Loader;
    use saffron_test_support::{real_home, smollm2_f32};

    use super::*;

    #[test]
    fn a_scheduler_that_stopped_is_replaced_and_its_totals_carry_on() {
        let path = smollm2_f32().path().to_string_lossy().into_owned();
        let model = Loader::new(&real_home()).model(&path).unwrap();
        let policy = BatchedPolicy::new(model, BatchOptions::default());
        let tokens = policy.tokenize("Hello there");
        let call = |policy: &BatchedPolicy| {
            let mut session = policy.open(TreeOptions::default()).unwrap();
            session.outputs(&[&tokens], WantedOutputs::Logits).map(|o| o.len())
        };
        assert_eq!(call(&policy).unwrap(), 1);
        let steps = policy.stats().steps;
        assert!(steps >= 1);
        // What a panic in the scheduler leaves: a thread that has ended and
        // a channel nobody reads.
        {
            let mut slot = policy.schedulers[HiddenStates::Discard as usize].lock().unwrap();
            let stats = slot.take().unwrap().stats;
            let (jobs, gone) = mpsc::channel();
            drop(gone);
            let thread = std::thread::spawn(|| {});
            while !thread.is_finished() {
                std::thread::yield_now();
            }
            *slot = Some(Scheduler { jobs, open: Arc::new(AtomicUsize::new(0)), stats, thread });
        }
        assert_eq!(call(&policy).unwrap(), 1, "a new scheduler answers");
        assert!(policy.stats().steps > steps, "the totals carry on from {steps}");
    }
}
