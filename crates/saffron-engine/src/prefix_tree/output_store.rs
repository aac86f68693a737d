//! Memory for memoised outputs: a byte budget, oldest outputs dropped first,
//! and buffers recycled rather than freed.
//!
//! A logits vector is vocab × 4 bytes (196 KB for SmolLM2, 608 KB for Qwen2.5),
//! so keeping one per node would grow a 32-wide search to gigabytes and spend
//! its time in fresh allocations. Searches move forward: the oldest outputs
//! are the ones least likely to be asked for again, and one that is asked for
//! is recomputed for one token (its KV cell is still cached).

use std::collections::{HashMap, VecDeque};
use std::sync::Arc;

use super::node::{Arena, NodeId};

/// Buffers kept for reuse per length.
const POOL_PER_LENGTH: usize = 64;

#[derive(Debug)]
pub(crate) struct OutputStore {
    budget_bytes: usize,
    used_bytes: usize,
    /// Nodes holding outputs, oldest first, with the stamp they were given
    /// (a freed and reused node slot carries another stamp).
    order: VecDeque<(NodeId, u64)>,
    next_stamp: u64,
    pool: HashMap<usize, Vec<Arc<[f32]>>>,
}

fn bytes(buffer: &Option<Arc<[f32]>>) -> usize {
    buffer.as_ref().map_or(0, |b| b.len() * std::mem::size_of::<f32>())
}

impl OutputStore {
    pub fn new(budget_bytes: usize) -> Self {
        OutputStore { budget_bytes, used_bytes: 0, order: VecDeque::new(), next_stamp: 1, pool: HashMap::new() }
    }

    /// A shared buffer holding `data`, reusing a recycled one when possible.
    pub fn buffer(&mut self, data: &[f32]) -> Arc<[f32]> {
        if let Some(mut buffer) = self.pool.get_mut(&data.len()).and_then(Vec::pop) {
            if let Some(slot) = Arc::get_mut(&mut buffer) {
                slot.copy_from_slice(data);
                return buffer;
            }
        }
        Arc::from(data)
    }

    /// Records outputs just stored on `node`, then drops the oldest outputs
    /// of unlocked nodes while over budget.
    pub fn stored(&mut self, nodes: &mut Arena, node: NodeId, added_bytes: usize) {
        let stamp = self.next_stamp;
        self.next_stamp += 1;
        nodes.get_mut(node).outputs_stamp = stamp;
        self.order.push_back((node, stamp));
        self.used_bytes += added_bytes;
        let mut budget_checks = self.order.len();
        while self.used_bytes > self.budget_bytes && budget_checks > 0 {
            budget_checks -= 1;
            let Some((id, stamp)) = self.order.pop_front() else { break };
            match nodes.try_get_mut(id) {
                Some(n) if n.outputs_stamp == stamp && n.locks > 0 => self.order.push_back((id, stamp)),
                Some(n) if n.outputs_stamp == stamp => {
                    let (logits, hidden) = (n.logits.take(), n.hidden.take());
                    n.outputs_stamp = 0;
                    self.release(logits, hidden);
                }
                _ => {}
            }
        }
    }

    /// Takes back the outputs of a node that leaves the tree.
    pub fn release(&mut self, logits: Option<Arc<[f32]>>, hidden: Option<Arc<[f32]>>) {
        self.used_bytes -= bytes(&logits) + bytes(&hidden);
        for buffer in [logits, hidden].into_iter().flatten() {
            // Only buffers no caller still holds can be reused.
            if Arc::strong_count(&buffer) == 1 {
                let pool = self.pool.entry(buffer.len()).or_default();
                if pool.len() < POOL_PER_LENGTH {
                    pool.push(buffer);
                }
            }
        }
    }

    pub fn clear(&mut self) {
        self.used_bytes = 0;
        self.order.clear();
    }

    pub fn used_bytes(&self) -> usize {
        self.used_bytes
    }
}

pub(crate) fn output_bytes(logits: &Option<Arc<[f32]>>, hidden: &Option<Arc<[f32]>>) -> usize {
    bytes(logits) + bytes(hidden)
}
