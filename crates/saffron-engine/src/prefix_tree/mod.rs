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

mod eviction;
mod node;
mod output_store;
mod request;
mod seq_pool;

use std::time::Duration;

use saffron_core::{ModelCost, ModelError, Policy, SequenceOutputs, TokenId, WantedOutputs};
use serde::{Deserialize, Serialize};

use crate::kv_context::{KvContext, MAX_SEQUENCES};
use crate::{EngineError, Model};
use node::{Arena, NodeId, ROOT};
use output_store::OutputStore;
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
    /// recomputes it for one token. Default 64 MiB (about 100 Qwen2.5 or 340
    /// SmolLM2 logits vectors): searches move forward and rarely ask for an
    /// old node again, and a small budget lets dropped buffers be recycled
    /// instead of faulting in fresh memory for every node (measured: fresh
    /// pages cost ~4% of a 32-wide Saffron search on Qwen2.5).
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
            max_output_bytes: 64 << 20,
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
        Ok(self.outputs_paid(paths, wanted)?.0)
    }

    /// [`outputs`](Self::outputs), and what each path costs: a computed
    /// token is charged to the first path that needed it (its FLOPs and
    /// `tokens_computed`), a token found cached is served to every path
    /// that asked for it (`tokens_served`); `sequences` is 1 per path and
    /// `calls` is 0 (a caller counts its own calls). Summed over the paths
    /// this is what [`cost`](Self::cost) grows by, calls aside. For callers
    /// that share one tree, such as the requests of a server.
    pub fn outputs_paid(
        &mut self,
        paths: &[&[TokenId]],
        wanted: WantedOutputs,
    ) -> Result<(Vec<SequenceOutputs>, Vec<ModelCost>), EngineError> {
        self.validate(paths, wanted)?;
        let mut all = Vec::with_capacity(paths.len());
        let mut paid = Vec::with_capacity(paths.len());
        for chunk in paths.chunks(PATHS_PER_CHUNK) {
            let (outputs, costs) = self.outputs_chunk(chunk, wanted)?;
            all.extend(outputs);
            paid.extend(costs);
        }
        Ok((all, paid))
    }

    fn outputs_chunk(
        &mut self,
        paths: &[&[TokenId]],
        wanted: WantedOutputs,
    ) -> Result<(Vec<SequenceOutputs>, Vec<ModelCost>), EngineError> {
        self.clock += 1;
        let plan = self.plan(paths, wanted);
        for &n in plan.targets.iter().chain(&plan.attach) {
            self.nodes.get_mut(n).locks += 1;
        }
        if let Err(e) = self.make_room(&plan) {
            self.abandon(&plan);
            return Err(e);
        }
        let mut paid: Vec<ModelCost> = plan
            .served_by_path
            .iter()
            .map(|&served| ModelCost { tokens_served: served, sequences: 1, ..ModelCost::default() })
            .collect();
        if let Err(e) = self.run(&plan, wanted, &mut paid) {
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
        self.cost.sequences += plan.targets.len() as u64;
        self.cost.tokens_served += plan.served - plan.recompute.len() as u64;
        let outputs = plan
            .targets
            .iter()
            .map(|&t| {
                let n = self.nodes.get(t);
                SequenceOutputs {
                    logits: if wanted.logits() { n.logits.clone() } else { None },
                    hidden: if wanted.hidden() { n.hidden.clone() } else { None },
                }
            })
            .collect();
        Ok((outputs, paid))
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

    /// Drops every node but those of `path` (already computed): what pairs
    /// scored one after another share, such as a guard's instruction, stays
    /// cached, and llama.cpp's cache stays short. Returns the nodes dropped.
    pub fn keep_only(&mut self, path: &[TokenId]) -> Result<usize, EngineError> {
        let keep = self.find_cached(path)?;
        self.nodes.get_mut(keep).locks += 1;
        let mut dropped = 0;
        loop {
            let leaves: Vec<NodeId> = self.seqs.owners().filter(|&l| self.nodes.get(l).locks == 0).collect();
            if leaves.is_empty() {
                break;
            }
            for leaf in leaves {
                self.evict(leaf);
                dropped += 1;
            }
        }
        self.nodes.get_mut(keep).locks -= 1;
        Ok(dropped)
    }

    /// Evicts least recently used unlocked leaves until at most `cells`
    /// nodes are cached. Returns the nodes dropped. llama.cpp attends over
    /// every cell up to the highest one in use, so a tree shared by many
    /// requests is kept small between them.
    pub fn shrink_to(&mut self, cells: usize) -> usize {
        let mut dropped = 0;
        while self.cached > cells {
            match self.least_recently_used_leaf() {
                Some(leaf) => self.evict(leaf),
                None => break,
            }
            dropped += 1;
        }
        dropped
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

impl Policy for PrefixTree {
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
        PrefixTree::outputs(self, sequences, wanted).map_err(ModelError::new)
    }

    fn cost(&self) -> ModelCost {
        self.cost
    }
}
