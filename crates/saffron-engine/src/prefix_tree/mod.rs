//! The prefix tree: every sequence a search explores for one prompt shares
//! one llama.cpp KV cache (method.md section 4).
//!
//! How the tree maps onto llama.cpp's unified KV cache:
//! - every cached node owns exactly one KV cell: its token's keys and values
//!   at position `depth - 1`;
//! - every cached *leaf* owns one llama.cpp sequence id, and that id is on
//!   the cells of the leaf and of all its ancestors, so a cell carries the
//!   ids of all leaves below it and attention along any root-to-leaf path
//!   sees exactly that path;
//! - extending a leaf hands its id to the (first) new child; extending an
//!   interior node forks a fresh id from any leaf below it over positions
//!   `[0, depth)` (`llama_memory_seq_cp`: metadata only, no tensor copied);
//! - evicting a leaf removes its id from its own cell; the parent inherits
//!   the id if it has no other cached child, otherwise the id is removed
//!   from the whole path and recycled. A cell left with no id is free.
//!
//! Outputs (logits, and the final hidden state when the tree keeps them) are
//! memoised on the node: asking again for a known path computes nothing.
//! A node whose cell is cached but whose outputs were never computed (an
//! inner prompt token) is recomputed in a temporary sequence: one token.

mod node;
mod output_store;
mod seq_pool;

use std::collections::{BTreeMap, HashSet};
use std::time::{Duration, Instant};

use saffron_core::{ModelCost, ModelError, Policy, SequenceOutputs, TokenId, WantedOutputs};
use serde::{Deserialize, Serialize};

use crate::kv_context::{KvContext, Row, SeqId, MAX_SEQUENCES};
use crate::{EngineError, Model};
use node::{Arena, NodeId, ROOT};
use output_store::{output_bytes, OutputStore};
use seq_pool::SeqPool;

/// Paths handled in one planning round: each may need one new sequence id
/// and one temporary one, and llama.cpp has [`MAX_SEQUENCES`].
pub const PATHS_PER_CHUNK: usize = MAX_SEQUENCES as usize / 2;

/// Whether the tree computes and memoises final hidden states.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum HiddenStates {
    /// Logits only (the policy's case).
    #[default]
    Discard,
    /// Also hidden states (probe guards, MRM heads). llama.cpp then computes
    /// outputs for every token it runs, prompt tokens included, and the FLOP
    /// counter charges the output projection for each of them.
    Keep,
}

/// Sizes of a prefix tree.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct TreeOptions {
    /// KV cells, i.e. the most tree nodes cached at once. Least recently used
    /// unlocked leaves are evicted beyond it.
    pub max_cells: u32,
    /// Most tokens per `llama_decode` call.
    pub batch_size: u32,
    /// CPU threads for llama.cpp; `None` uses every available core.
    pub threads: Option<u32>,
    pub hidden: HiddenStates,
    pub flash_attention: bool,
    /// Memory for memoised outputs (logits, hidden states). Beyond it the
    /// oldest outputs of unlocked nodes are dropped; asking for one again
    /// recomputes it for one token.
    pub max_output_bytes: usize,
}

impl Default for TreeOptions {
    fn default() -> Self {
        TreeOptions {
            max_cells: 8192,
            batch_size: 512,
            threads: None,
            hidden: HiddenStates::Discard,
            flash_attention: true,
            max_output_bytes: 256 << 20,
        }
    }
}

/// A snapshot of the tree's occupancy.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct TreeStats {
    /// Nodes holding a KV cell (the root excluded).
    pub cached_nodes: usize,
    /// Cached leaves, each holding one llama.cpp sequence id.
    pub leaves: usize,
    pub max_cells: u32,
    /// Nodes with memoised logits.
    pub nodes_with_logits: usize,
    /// Memory held by memoised outputs.
    pub output_bytes: usize,
}

/// A branch-sharing prefix tree over one model. See the module docs.
pub struct PrefixTree {
    model: Model,
    kv: KvContext,
    nodes: Arena,
    seqs: SeqPool,
    cached: usize,
    outputs: OutputStore,
    clock: u64,
    cost: ModelCost,
    /// Time spent inside `llama_decode`, to tell engine time from overhead.
    decode_time: Duration,
}

/// The work one request needs, found by walking its paths.
struct Plan {
    /// The node at the end of each requested path.
    targets: Vec<NodeId>,
    /// New nodes, in creation order (a parent before its children).
    pending: Vec<NodeId>,
    /// Cached targets whose wanted outputs were never computed.
    recompute: Vec<NodeId>,
    /// Cached nodes that new nodes hang from (the root included).
    attach: Vec<NodeId>,
    /// Requested tokens found already computed (or computed earlier in this
    /// request for another path).
    served: u64,
    requested: u64,
}

impl PrefixTree {
    /// A new, empty tree with its own llama.cpp context over `model`.
    pub fn new(model: &Model, options: TreeOptions) -> Result<Self, EngineError> {
        let threads =
            options.threads.unwrap_or_else(|| std::thread::available_parallelism().map_or(1, |n| n.get() as u32));
        let batch = options.batch_size.clamp(1, options.max_cells.max(1));
        let hidden = options.hidden == HiddenStates::Keep;
        let kv = KvContext::new(model, options.max_cells, batch, threads as i32, hidden, options.flash_attention)?;
        Ok(PrefixTree {
            model: model.clone(),
            kv,
            nodes: Arena::new(),
            seqs: SeqPool::new(MAX_SEQUENCES),
            cached: 0,
            outputs: OutputStore::new(options.max_output_bytes),
            clock: 0,
            cost: ModelCost::default(),
            decode_time: Duration::ZERO,
        })
    }

    pub fn model(&self) -> &Model {
        &self.model
    }

    pub fn cost(&self) -> ModelCost {
        self.cost
    }

    /// Total time spent inside llama.cpp's `llama_decode` so far.
    pub fn decode_time(&self) -> Duration {
        self.decode_time
    }

    pub fn stats(&self) -> TreeStats {
        let nodes_with_logits = self.count_nodes(|n| n.cached && n.logits.is_some());
        TreeStats {
            output_bytes: self.outputs.used_bytes(),
            cached_nodes: self.cached,
            leaves: self.seqs.capacity() - self.seqs.available(),
            max_cells: self.kv.cells(),
            nodes_with_logits,
        }
    }

    /// Outputs at the end of each path, computing every missing node of all
    /// paths together in as few `llama_decode` calls as the batch size
    /// allows. Paths may have any depths and share any prefixes.
    ///
    /// A request with more paths than llama.cpp has sequence ids for is run
    /// in chunks of [`PATHS_PER_CHUNK`]: outputs are shared buffers, so a
    /// later chunk may evict an earlier chunk's nodes without loss.
    pub fn outputs(
        &mut self,
        paths: &[&[TokenId]],
        wanted: WantedOutputs,
    ) -> Result<Vec<SequenceOutputs>, EngineError> {
        self.validate(paths, wanted)?;
        let mut all = Vec::with_capacity(paths.len());
        for chunk in paths.chunks(PATHS_PER_CHUNK) {
            all.extend(self.outputs_chunk(chunk, wanted)?);
        }
        Ok(all)
    }

    fn outputs_chunk(
        &mut self,
        paths: &[&[TokenId]],
        wanted: WantedOutputs,
    ) -> Result<Vec<SequenceOutputs>, EngineError> {
        self.clock += 1;
        let plan = self.plan(paths, wanted);
        for &n in plan.targets.iter().chain(&plan.attach) {
            self.nodes.get_mut(n).locks += 1;
        }
        if let Err(e) = self.make_room(&plan) {
            self.abandon(&plan);
            return Err(e);
        }
        if let Err(e) = self.run(&plan, wanted) {
            // llama.cpp's cache may now hold part of the batch: start afresh
            // rather than keep a tree that might not match it.
            tracing::warn!("prefix tree request failed ({e}); the tree is cleared");
            self.clear();
            return Err(e);
        }
        for &n in plan.targets.iter().chain(&plan.attach) {
            self.nodes.get_mut(n).locks -= 1;
        }
        self.cost.calls += 1;
        self.cost.tokens_served += plan.served - plan.recompute.len() as u64;
        Ok(plan
            .targets
            .iter()
            .map(|&t| {
                let n = self.nodes.get(t);
                SequenceOutputs {
                    logits: if wanted.logits() { n.logits.clone() } else { None },
                    hidden: if wanted.hidden() { n.hidden.clone() } else { None },
                }
            })
            .collect())
    }

    /// Protects the node at `path` (and so its whole path) from eviction
    /// until [`unlock`](Self::unlock). Locks nest.
    pub fn lock(&mut self, path: &[TokenId]) -> Result<(), EngineError> {
        let id = self.find_cached(path)?;
        self.nodes.get_mut(id).locks += 1;
        Ok(())
    }

    pub fn unlock(&mut self, path: &[TokenId]) -> Result<(), EngineError> {
        let id = self.find_cached(path)?;
        let node = self.nodes.get_mut(id);
        node.locks = node.locks.saturating_sub(1);
        Ok(())
    }

    /// Drops the subtree at `path` (a finished or pruned branch), freeing its
    /// cells and sequence ids. Locked nodes and their ancestors stay.
    /// Returns the number of nodes dropped.
    pub fn release(&mut self, path: &[TokenId]) -> Result<usize, EngineError> {
        let top = self.find_cached(path)?;
        let mut dropped = 0;
        loop {
            let leaves: Vec<NodeId> =
                self.seqs.owners().filter(|&l| self.nodes.get(l).locks == 0 && self.is_descendant(l, top)).collect();
            if leaves.is_empty() {
                return Ok(dropped);
            }
            for leaf in leaves {
                self.evict(leaf);
                dropped += 1;
            }
        }
    }

    /// Forgets every node; the next request starts from an empty cache.
    pub fn clear(&mut self) {
        self.kv.clear();
        self.nodes.clear();
        self.seqs.reset();
        self.outputs.clear();
        self.cached = 0;
    }

    fn validate(&self, paths: &[&[TokenId]], wanted: WantedOutputs) -> Result<(), EngineError> {
        if wanted.hidden() && !self.kv.outputs_every_row() {
            return Err(EngineError::HiddenStatesDisabled);
        }
        let vocab = self.model.vocab_size();
        for path in paths {
            if path.is_empty() {
                return Err(EngineError::EmptySequence);
            }
            if path.len() > self.kv.cells() as usize {
                return Err(EngineError::SequenceTooLong { tokens: path.len(), limit: self.kv.cells() });
            }
            if let Some(&bad) = path.iter().find(|&&t| t as usize >= vocab) {
                return Err(EngineError::TokenOutOfVocabulary { token: bad, vocab });
            }
        }
        Ok(())
    }

    /// Walks every path, creating pending nodes for the missing tokens.
    fn plan(&mut self, paths: &[&[TokenId]], wanted: WantedOutputs) -> Plan {
        let mut plan = Plan {
            targets: Vec::with_capacity(paths.len()),
            pending: Vec::new(),
            recompute: Vec::new(),
            attach: Vec::new(),
            served: 0,
            requested: 0,
        };
        let mut recompute_seen = HashSet::new();
        for path in paths {
            plan.requested += path.len() as u64;
            let mut node = ROOT;
            let mut known = 0;
            while let Some(&child) = path.get(known).and_then(|t| self.nodes.get(node).children.get(t)) {
                node = child;
                self.nodes.get_mut(node).last_used = self.clock;
                known += 1;
            }
            plan.served += known as u64;
            if known < path.len() && self.nodes.get(node).cached {
                plan.attach.push(node);
            }
            for &token in &path[known..] {
                node = self.nodes.add_child(node, token);
                self.nodes.get_mut(node).last_used = self.clock;
                plan.pending.push(node);
            }
            let target = self.nodes.get(node);
            let missing = (wanted.logits() && target.logits.is_none()) || (wanted.hidden() && target.hidden.is_none());
            if target.cached && missing && recompute_seen.insert(node) {
                plan.recompute.push(node);
            }
            plan.targets.push(node);
        }
        plan.attach.sort_unstable();
        plan.attach.dedup();
        plan
    }

    /// Undoes a plan that could not be given room: drops its pending nodes
    /// (they own nothing yet) and its locks.
    fn abandon(&mut self, plan: &Plan) {
        for &n in plan.targets.iter().chain(&plan.attach) {
            if self.nodes.get(n).cached {
                self.nodes.get_mut(n).locks -= 1;
            }
        }
        for &p in plan.pending.iter().rev() {
            self.nodes.remove(p);
        }
    }

    fn run(&mut self, plan: &Plan, wanted: WantedOutputs) -> Result<(), EngineError> {
        let rows = self.assign_sequences(plan)?;
        self.decode_rows(plan, &rows, wanted)?;
        for &(_, seq) in &rows.temporary {
            self.kv.release(seq, 0);
            self.seqs.give_back(seq);
        }
        for &p in &plan.pending {
            self.nodes.get_mut(p).cached = true;
        }
        self.cached += plan.pending.len();
        Ok(())
    }

    /// Sequence ids the plan will need beyond those its attach points can
    /// hand over (a cached leaf gives its id to its first new child).
    fn seqs_needed(&self, plan: &Plan) -> usize {
        let new_leaves = plan.pending.iter().filter(|&&p| self.nodes.get(p).children.is_empty()).count();
        let donors = plan.attach.iter().filter(|&&a| self.nodes.get(a).seq.is_some()).count();
        new_leaves.saturating_sub(donors) + plan.recompute.len()
    }

    /// Evicts least recently used unlocked leaves until the plan's new cells
    /// and sequence ids fit.
    fn make_room(&mut self, plan: &Plan) -> Result<(), EngineError> {
        let cells_needed = plan.pending.len() + plan.recompute.len();
        let limit = self.kv.cells() as usize;
        loop {
            let cells_ok = self.cached + cells_needed <= limit;
            let seqs_ok = self.seqs.available() >= self.seqs_needed(plan);
            if cells_ok && seqs_ok {
                return Ok(());
            }
            let victim = self
                .seqs
                .owners()
                .filter(|&l| {
                    let n = self.nodes.get(l);
                    n.locks == 0 && n.children.is_empty()
                })
                .min_by_key(|&l| (self.nodes.get(l).last_used, l));
            match victim {
                Some(leaf) => self.evict(leaf),
                None if !cells_ok => {
                    return Err(EngineError::OutOfCells { needed: cells_needed, free: limit - self.cached })
                }
                None => return Err(EngineError::OutOfSequences { limit: MAX_SEQUENCES }),
            }
        }
    }

    /// Removes a cached, unlocked leaf. See the module docs for what happens
    /// to its sequence id.
    fn evict(&mut self, leaf: NodeId) {
        let mut node = self.nodes.remove(leaf);
        self.cached -= 1;
        self.outputs.release(node.logits.take(), node.hidden.take());
        let seq = node.seq.expect("a cached leaf owns a sequence");
        let parent = node.parent;
        let parent_has_cached_child = self.nodes.get(parent).children.values().any(|&c| self.nodes.get(c).cached);
        if parent != ROOT && !parent_has_cached_child {
            self.kv.release(seq, node.depth - 1);
            self.nodes.get_mut(parent).seq = Some(seq);
            self.seqs.set_owner(seq, parent);
        } else {
            self.kv.release(seq, 0);
            self.seqs.give_back(seq);
        }
    }

    /// Gives every new leaf a sequence id (handed over or forked) and
    /// returns the decode rows: new nodes by depth, then recomputations.
    fn assign_sequences(&mut self, plan: &Plan) -> Result<RowPlan, EngineError> {
        // Pick each attach point's representative id before any hand-over.
        let reps: BTreeMap<NodeId, SeqId> =
            plan.attach.iter().filter(|&&a| a != ROOT).map(|&a| (a, self.representative(a))).collect();
        // Recomputations fork from their target's path before any id is
        // handed over below (a target may also be an attach point).
        let mut temporary = Vec::with_capacity(plan.recompute.len());
        for &target in &plan.recompute {
            let seq = self.seqs.take(target).ok_or(EngineError::OutOfSequences { limit: MAX_SEQUENCES })?;
            let rep = self.representative(target);
            self.kv.fork(rep, seq, self.nodes.get(target).depth - 1);
            temporary.push((target, seq));
        }
        let mut row_seqs: BTreeMap<NodeId, Vec<SeqId>> = BTreeMap::new();
        let mut donated = HashSet::new();
        let new_leaves: Vec<NodeId> =
            plan.pending.iter().copied().filter(|&p| self.nodes.get(p).children.is_empty()).collect();
        for leaf in new_leaves {
            let mut attach = leaf;
            while !self.nodes.get(attach).cached {
                attach = self.nodes.get(attach).parent;
            }
            let seq = match self.nodes.get(attach).seq {
                Some(seq) if donated.insert(attach) => {
                    self.nodes.get_mut(attach).seq = None;
                    seq
                }
                _ => {
                    let seq = self.seqs.take(leaf).ok_or(EngineError::OutOfSequences { limit: MAX_SEQUENCES })?;
                    if attach != ROOT {
                        self.kv.fork(reps[&attach], seq, self.nodes.get(attach).depth);
                    }
                    seq
                }
            };
            self.seqs.set_owner(seq, leaf);
            self.nodes.get_mut(leaf).seq = Some(seq);
            let mut n = leaf;
            while n != attach {
                row_seqs.entry(n).or_default().push(seq);
                n = self.nodes.get(n).parent;
            }
        }
        let mut fresh: Vec<NodeId> = plan.pending.clone();
        fresh.sort_by_key(|&n| self.nodes.get(n).depth);
        Ok(RowPlan {
            fresh: fresh.into_iter().map(|n| (n, row_seqs.remove(&n).unwrap_or_default())).collect(),
            temporary,
        })
    }

    /// Any sequence id on `node`'s cell: its own if it is a leaf, else the
    /// id of some leaf below it (every cached subtree has one).
    fn representative(&self, mut node: NodeId) -> SeqId {
        loop {
            let n = self.nodes.get(node);
            if let Some(seq) = n.seq {
                return seq;
            }
            node = *n
                .children
                .values()
                .find(|&&c| self.nodes.get(c).cached)
                .expect("a cached interior node has a cached child");
        }
    }

    fn decode_rows(&mut self, plan: &Plan, rows: &RowPlan, wanted: WantedOutputs) -> Result<(), EngineError> {
        let targets: HashSet<NodeId> = plan.targets.iter().copied().collect();
        let all: Vec<(NodeId, Vec<SeqId>)> =
            rows.fresh.iter().cloned().chain(rows.temporary.iter().map(|&(n, s)| (n, vec![s]))).collect();
        let every_row = self.kv.outputs_every_row();
        let shape = *self.model.shape();
        for chunk in all.chunks(self.kv.batch_size()) {
            let batch: Vec<Row<'_>> = chunk
                .iter()
                .map(|(n, seqs)| {
                    let node = self.nodes.get(*n);
                    Row { token: node.token, pos: node.depth - 1, seqs, output: targets.contains(n) }
                })
                .collect();
            let started = Instant::now();
            self.kv.decode(&batch)?;
            self.decode_time += started.elapsed();
            for row in &batch {
                let computed_output = row.output || every_row;
                self.cost.flops += shape.token_flops(row.pos as u64 + 1, computed_output);
            }
            self.cost.tokens_computed += batch.len() as u64;
            let outputs: Vec<(usize, NodeId)> =
                chunk.iter().enumerate().filter(|(_, (n, _))| targets.contains(n)).map(|(i, (n, _))| (i, *n)).collect();
            for (i, n) in outputs {
                let logits = wanted.logits().then(|| self.outputs.buffer(self.kv.logits(i)));
                let hidden = match wanted.hidden() {
                    true => Some(self.outputs.buffer(self.kv.hidden(i)?)),
                    false => None,
                };
                let node = self.nodes.get_mut(n);
                let mut added = 0;
                if node.logits.is_none() {
                    added += output_bytes(&logits, &None);
                    node.logits = logits;
                }
                if node.hidden.is_none() {
                    added += output_bytes(&None, &hidden);
                    node.hidden = hidden;
                }
                self.outputs.stored(&mut self.nodes, n, added);
            }
        }
        Ok(())
    }

    fn find_cached(&self, path: &[TokenId]) -> Result<NodeId, EngineError> {
        let (node, known) = self.nodes.walk(path);
        if path.is_empty() || known < path.len() || !self.nodes.get(node).cached {
            return Err(EngineError::UnknownNode);
        }
        Ok(node)
    }

    fn is_descendant(&self, mut node: NodeId, ancestor: NodeId) -> bool {
        loop {
            if node == ancestor {
                return true;
            }
            if node == ROOT {
                return false;
            }
            node = self.nodes.get(node).parent;
        }
    }

    fn count_nodes(&self, pred: impl Fn(&node::Node) -> bool) -> usize {
        let mut count = 0;
        let mut stack = vec![ROOT];
        while let Some(id) = stack.pop() {
            let n = self.nodes.get(id);
            if id != ROOT && pred(n) {
                count += 1;
            }
            stack.extend(n.children.values().copied());
        }
        count
    }
}

/// The decode rows of one request.
struct RowPlan {
    /// New nodes sorted by depth, each with the sequence ids of the new
    /// leaves below it.
    fresh: Vec<(NodeId, Vec<SeqId>)>,
    /// Cached targets recomputed for their outputs, each in a temporary
    /// sequence released right after the decode.
    temporary: Vec<(NodeId, SeqId)>,
}

impl Policy for PrefixTree {
    fn vocab_size(&self) -> usize {
        self.model.vocab_size()
    }

    fn is_end_of_generation(&self, token: TokenId) -> bool {
        self.model.is_end_of_generation(token)
    }

    fn outputs(&mut self, sequences: &[&[TokenId]], wanted: WantedOutputs) -> Result<Vec<SequenceOutputs>, ModelError> {
        PrefixTree::outputs(self, sequences, wanted).map_err(ModelError::new)
    }

    fn cost(&self) -> ModelCost {
        self.cost
    }
}
