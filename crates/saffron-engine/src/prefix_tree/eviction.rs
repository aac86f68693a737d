//! Making room: least recently used unlocked leaves are evicted until a
//! request's new cells and sequence ids fit.

use super::node::{NodeId, ROOT};
use super::request::Plan;
use super::PrefixTree;
use crate::kv_context::MAX_SEQUENCES;
use crate::EngineError;

impl PrefixTree {
    /// Sequence ids the plan will need beyond those its attach points can
    /// hand over (a cached leaf gives its id to its first new child).
    fn seqs_needed(&self, plan: &Plan) -> usize {
        let new_leaves = plan.pending.iter().filter(|&&p| self.nodes.get(p).children.is_empty()).count();
        let donors = plan.attach.iter().filter(|&&a| self.nodes.get(a).seq.is_some()).count();
        new_leaves.saturating_sub(donors) + plan.recompute.len()
    }

    /// Evicts least recently used unlocked leaves until the plan's new cells
    /// and sequence ids fit. When the cells cannot fit even with every
    /// unlocked node gone, fails before evicting anything, so a caller that
    /// tries a smaller request next (the server's scheduler) finds the other
    /// searches' nodes still cached.
    pub(super) fn make_room(&mut self, plan: &Plan) -> Result<(), EngineError> {
        let cells_needed = plan.pending.len() + plan.recompute.len();
        let limit = self.kv.cells() as usize;
        if self.cached + cells_needed > limit {
            let pinned = self.pinned_cells();
            if pinned + cells_needed > limit {
                return Err(EngineError::OutOfCells { needed: cells_needed, free: limit - pinned });
            }
        }
        loop {
            let cells_ok = self.cached + cells_needed <= limit;
            let seqs_ok = self.seqs.available() >= self.seqs_needed(plan);
            if cells_ok && seqs_ok {
                return Ok(());
            }
            match self.least_recently_used_leaf() {
                Some(leaf) => self.evict(leaf),
                None if !cells_ok => {
                    return Err(EngineError::OutOfCells { needed: cells_needed, free: limit - self.cached })
                }
                None => return Err(EngineError::OutOfSequences { limit: MAX_SEQUENCES }),
            }
        }
    }

    /// Cached nodes no eviction can remove: the locked ones and their
    /// ancestors (a node goes only once it has no children).
    fn pinned_cells(&self) -> usize {
        let mut pinned = std::collections::HashSet::new();
        for id in self.nodes.ids().filter(|&id| self.nodes.get(id).locks > 0) {
            let mut node = id;
            while node != ROOT && pinned.insert(node) {
                node = self.nodes.get(node).parent;
            }
        }
        pinned.iter().filter(|&&id| self.nodes.get(id).cached).count()
    }

    /// The cached, unlocked leaf used longest ago (ties: the lowest id):
    /// the next to evict.
    pub(super) fn least_recently_used_leaf(&self) -> Option<NodeId> {
        self.seqs
            .owners()
            .filter(|&l| {
                let n = self.nodes.get(l);
                n.locks == 0 && n.children.is_empty()
            })
            .min_by_key(|&l| (self.nodes.get(l).last_used, l))
    }

    /// Removes a cached, unlocked leaf. See the module docs for what happens
    /// to its sequence id.
    pub(super) fn evict(&mut self, leaf: NodeId) {
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
}
