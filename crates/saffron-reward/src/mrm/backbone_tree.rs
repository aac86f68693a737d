//! The prefix tree of an MRM that runs its own backbone (separate-backbone
//! head, paper form), with the counters such an MRM reports.

use saffron_core::{ModelCost, ModelError, SequenceOutputs, TokenId, WantedOutputs};
use saffron_engine::PrefixTree;

pub(crate) struct BackboneTree {
    tree: PrefixTree,
    calls: u64,
    sequences: u64,
}

impl BackboneTree {
    pub fn new(tree: PrefixTree) -> Self {
        BackboneTree { tree, calls: 0, sequences: 0 }
    }

    /// One MRM call: the backbone's outputs at the end of each path.
    pub fn call(&mut self, paths: &[Vec<TokenId>], wanted: WantedOutputs) -> Result<Vec<SequenceOutputs>, ModelError> {
        self.calls += 1;
        self.sequences += paths.len() as u64;
        let refs: Vec<&[TokenId]> = paths.iter().map(Vec::as_slice).collect();
        self.tree.outputs(&refs, wanted).map_err(ModelError::new)
    }

    /// The backbone's forward passes; calls and sequences count MRM calls
    /// and nodes scored.
    pub fn cost(&self) -> ModelCost {
        ModelCost { calls: self.calls, sequences: self.sequences, ..self.tree.cost() }
    }
}
