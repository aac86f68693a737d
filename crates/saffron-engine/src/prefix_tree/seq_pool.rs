//! llama.cpp sequence ids, recycled: at most 256 exist per context, while a
//! search may create any number of branches over its lifetime.

use crate::kv_context::SeqId;

use super::node::NodeId;

/// Which node (a cached leaf, or a temporary row) holds each sequence id.
#[derive(Debug)]
pub(crate) struct SeqPool {
    owners: Vec<Option<NodeId>>,
    free: Vec<SeqId>,
}

impl SeqPool {
    pub fn new(size: u32) -> Self {
        SeqPool { owners: vec![None; size as usize], free: (0..size as SeqId).rev().collect() }
    }

    pub fn capacity(&self) -> usize {
        self.owners.len()
    }

    pub fn available(&self) -> usize {
        self.free.len()
    }

    pub fn take(&mut self, owner: NodeId) -> Option<SeqId> {
        let seq = self.free.pop()?;
        self.owners[seq as usize] = Some(owner);
        Some(seq)
    }

    pub fn set_owner(&mut self, seq: SeqId, owner: NodeId) {
        self.owners[seq as usize] = Some(owner);
    }

    pub fn give_back(&mut self, seq: SeqId) {
        debug_assert!(self.owners[seq as usize].is_some());
        self.owners[seq as usize] = None;
        self.free.push(seq);
    }

    /// Nodes currently holding a sequence (≤ 256, so scanning is cheap).
    pub fn owners(&self) -> impl Iterator<Item = NodeId> + '_ {
        self.owners.iter().flatten().copied()
    }

    pub fn reset(&mut self) {
        *self = SeqPool::new(self.owners.len() as u32);
    }
}
