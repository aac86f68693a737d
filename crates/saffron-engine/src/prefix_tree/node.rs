//! Tree nodes in an arena, addressed by index.

use std::collections::HashMap;
use std::sync::Arc;

use saffron_core::TokenId;

use crate::kv_context::SeqId;

/// Index of a node in the arena. Index 0 is the root (the empty path).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub(crate) struct NodeId(pub u32);

pub(crate) const ROOT: NodeId = NodeId(0);

/// One token of a path. A *cached* node owns one KV cell (its token's keys
/// and values at position `depth - 1`); a *pending* node exists only while a
/// request is being planned and decoded.
#[derive(Debug)]
pub(crate) struct Node {
    pub token: TokenId,
    pub parent: NodeId,
    /// Number of tokens on the path from the root; the token sits at
    /// position `depth - 1`.
    pub depth: u32,
    pub children: HashMap<TokenId, NodeId>,
    pub cached: bool,
    /// The llama.cpp sequence of a cached *leaf*: its cells and all its
    /// ancestors' cells carry it. Interior nodes have none of their own.
    pub seq: Option<SeqId>,
    pub logits: Option<Arc<[f32]>>,
    pub hidden: Option<Arc<[f32]>>,
    /// Logical time of the last request that touched the node (LRU).
    pub last_used: u64,
    /// Callers' locks: a locked node is never evicted.
    pub locks: u32,
    /// Which memoised-output record is current (see `OutputStore`); 0: none.
    pub outputs_stamp: u64,
}

impl Node {
    fn new(token: TokenId, parent: NodeId, depth: u32, cached: bool) -> Self {
        Node {
            token,
            parent,
            depth,
            children: HashMap::new(),
            cached,
            seq: None,
            logits: None,
            hidden: None,
            last_used: 0,
            locks: 0,
            outputs_stamp: 0,
        }
    }
}

/// The nodes, with slot reuse so long searches do not grow memory.
#[derive(Debug)]
pub(crate) struct Arena {
    slots: Vec<Option<Node>>,
    free: Vec<NodeId>,
}

impl Arena {
    pub fn new() -> Self {
        Arena { slots: vec![Some(Node::new(0, ROOT, 0, true))], free: Vec::new() }
    }

    pub fn get(&self, id: NodeId) -> &Node {
        // Invariant: ids handed out by the tree point at live slots.
        self.slots[id.0 as usize].as_ref().expect("live node")
    }

    pub fn get_mut(&mut self, id: NodeId) -> &mut Node {
        self.slots[id.0 as usize].as_mut().expect("live node")
    }

    /// The node in a slot, if the slot is live (ids kept across evictions
    /// may point at freed slots).
    pub fn try_get_mut(&mut self, id: NodeId) -> Option<&mut Node> {
        self.slots.get_mut(id.0 as usize).and_then(Option::as_mut)
    }

    /// Adds a pending child of `parent` for `token`.
    pub fn add_child(&mut self, parent: NodeId, token: TokenId) -> NodeId {
        let depth = self.get(parent).depth + 1;
        let node = Node::new(token, parent, depth, false);
        let id = match self.free.pop() {
            Some(id) => {
                self.slots[id.0 as usize] = Some(node);
                id
            }
            None => {
                self.slots.push(Some(node));
                NodeId(self.slots.len() as u32 - 1)
            }
        };
        self.get_mut(parent).children.insert(token, id);
        id
    }

    /// Unlinks a childless node from its parent and frees its slot.
    pub fn remove(&mut self, id: NodeId) -> Node {
        let node = self.slots[id.0 as usize].take().expect("live node");
        debug_assert!(node.children.is_empty());
        self.get_mut(node.parent).children.remove(&node.token);
        self.free.push(id);
        node
    }

    /// Follows `path` from the root as far as nodes exist.
    pub fn walk(&self, path: &[TokenId]) -> (NodeId, usize) {
        let mut node = ROOT;
        for (i, token) in path.iter().enumerate() {
            match self.get(node).children.get(token) {
                Some(&child) => node = child,
                None => return (node, i),
            }
        }
        (node, path.len())
    }

    /// Every live node, the root included.
    pub fn ids(&self) -> impl Iterator<Item = NodeId> + '_ {
        self.slots.iter().enumerate().filter(|(_, n)| n.is_some()).map(|(i, _)| NodeId(i as u32))
    }

    /// Forgets every node but the root.
    pub fn clear(&mut self) {
        *self = Arena::new();
    }
}
