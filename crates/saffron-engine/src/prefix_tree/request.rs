//! One request: walk the paths, give new leaves sequence ids, decode the
//! missing tokens in batches, memoise the outputs.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::time::Instant;

use saffron_core::{ModelCost, TokenId, WantedOutputs};

use super::node::{NodeId, ROOT};
use super::output_store::output_bytes;
use super::PrefixTree;
use crate::kv_context::{Row, SeqId, MAX_SEQUENCES};
use crate::EngineError;

/// The work one request needs, found by walking its paths.
pub(super) struct Plan {
    pub(super) targets: Vec<NodeId>,
    /// New nodes, in creation order (a parent before its children).
    pub(super) pending: Vec<NodeId>,
    /// Cached targets whose wanted outputs were never computed.
    pub(super) recompute: Vec<NodeId>,
    /// Cached nodes that new nodes hang from (the root included).
    pub(super) attach: Vec<NodeId>,
    /// Requested tokens found already computed (or computed earlier in this
    /// request for another path).
    pub(super) served: u64,
    /// For every node this request computes (new or recomputed), the index
    /// of the first path that needed it: the path its cost is charged to.
    pub(super) payer: HashMap<NodeId, usize>,
    /// Per path: its tokens found already computed.
    pub(super) served_by_path: Vec<u64>,
}

/// The decode rows of one request.
pub(super) struct RowPlan {
    /// New nodes sorted by depth, each with the sequence ids of the new
    /// leaves below it.
    fresh: Vec<(NodeId, Vec<SeqId>)>,
    /// Cached targets recomputed for their outputs, each in a temporary
    /// sequence released right after the decode.
    temporary: Vec<(NodeId, SeqId)>,
}

impl PrefixTree {
    /// Walks every path, creating pending nodes for the missing tokens.
    pub(super) fn plan(&mut self, paths: &[&[TokenId]], wanted: WantedOutputs) -> Plan {
        let mut plan = Plan {
            targets: Vec::with_capacity(paths.len()),
            pending: Vec::new(),
            recompute: Vec::new(),
            attach: Vec::new(),
            served: 0,
            payer: HashMap::new(),
            served_by_path: Vec::with_capacity(paths.len()),
        };
        let mut recompute_seen = HashSet::new();
        for (index, path) in paths.iter().enumerate() {
            let mut node = ROOT;
            let mut known = 0;
            while let Some(&child) = path.get(known).and_then(|t| self.nodes.get(node).children.get(t)) {
                node = child;
                self.nodes.get_mut(node).last_used = self.clock;
                known += 1;
            }
            plan.served += known as u64;
            plan.served_by_path.push(known as u64);
            if known < path.len() && self.nodes.get(node).cached {
                plan.attach.push(node);
            }
            for &token in &path[known..] {
                node = self.nodes.add_child(node, token);
                self.nodes.get_mut(node).last_used = self.clock;
                plan.pending.push(node);
                plan.payer.insert(node, index);
            }
            let target = self.nodes.get(node);
            let missing = (wanted.logits() && target.logits.is_none()) || (wanted.hidden() && target.hidden.is_none());
            if target.cached && missing && recompute_seen.insert(node) {
                plan.recompute.push(node);
                plan.payer.insert(node, index);
                // Served above, but computed again for its outputs.
                plan.served_by_path[index] -= 1;
            }
            plan.targets.push(node);
        }
        plan.attach.sort_unstable();
        plan.attach.dedup();
        plan
    }

    /// Undoes a plan that could not be given room: drops its pending nodes
    /// (they own nothing yet) and its locks.
    pub(super) fn abandon(&mut self, plan: &Plan) {
        for &n in plan.targets.iter().chain(&plan.attach) {
            if self.nodes.get(n).cached {
                self.nodes.get_mut(n).locks -= 1;
            }
        }
        for &p in plan.pending.iter().rev() {
            self.nodes.remove(p);
        }
    }

    pub(super) fn run(
        &mut self,
        plan: &Plan,
        wanted: WantedOutputs,
        paid: &mut [ModelCost],
    ) -> Result<(), EngineError> {
        let rows = self.assign_sequences(plan)?;
        self.decode_rows(plan, &rows, wanted, paid)?;
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

    /// Decodes the rows; `paid` (one entry per path of the plan) is charged
    /// each row's tokens and FLOPs by the path that pays for its node.
    fn decode_rows(
        &mut self,
        plan: &Plan,
        rows: &RowPlan,
        wanted: WantedOutputs,
        paid: &mut [ModelCost],
    ) -> Result<(), EngineError> {
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
            for ((n, _), row) in chunk.iter().zip(&batch) {
                let computed_output = row.output || every_row;
                let flops = shape.token_flops(row.pos as u64 + 1, computed_output);
                self.cost.flops += flops;
                let payer = &mut paid[plan.payer[n]];
                payer.flops += flops;
                payer.tokens_computed += 1;
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
}
