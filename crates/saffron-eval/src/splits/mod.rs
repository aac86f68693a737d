//! Held-out splits by content (architecture.md, "Data discipline"): every
//! prompt of every set saffron knows has a split, `train`, `dev` or `test`,
//! that trainers, grids and the overlap check agree on.
//!
//! - [`index`]: the assignment itself (hash of the normalised text;
//!   near-duplicates join the earlier prompt's cluster);
//! - [`universe`]: every built-in set, in the fixed order that decides
//!   which of two near-duplicates is the earlier;
//! - [`overlap`]: prompts shared between sets, and between a grid and the
//!   artifacts it uses.

pub mod index;
pub mod overlap;
pub mod universe;

pub use index::{Assigned, SplitIndex, NEAR_JACCARD};
pub use overlap::{check, set_pairs, trained_per_set, ArtifactTraining, GridOverlap, OverlapCheck, Role, SetPair};
pub use universe::{SetSource, Universe, UniverseSet};

use saffron_core::{Split, TrainedPrompts};
use saffron_reward::judge_data::JudgeData;

/// Labelled pairs by the split of their prompt.
pub struct LabelledSplits {
    pub train: JudgeData,
    pub dev: JudgeData,
    pub test: JudgeData,
}

/// Deals `data`'s pairs into splits by their prompts.
pub fn split_labelled(universe: &Universe, data: JudgeData) -> LabelledSplits {
    let side =
        |files: &std::collections::BTreeMap<String, String>| JudgeData { items: Vec::new(), files: files.clone() };
    let mut out = LabelledSplits { train: side(&data.files), dev: side(&data.files), test: side(&data.files) };
    for item in data.items {
        match universe.lookup(&item.prompt).split {
            Split::Train => out.train.items.push(item),
            Split::Dev => out.dev.items.push(item),
            Split::Test => out.test.items.push(item),
        }
    }
    out
}

/// The record of a trainer that read `prompts` from `splits`: their
/// cluster keys, as the overlap check compares them.
pub fn trained_on<'a>(
    universe: &Universe,
    splits: impl IntoIterator<Item = Split>,
    prompts: impl IntoIterator<Item = &'a str>,
) -> TrainedPrompts {
    TrainedPrompts::new(splits, prompts.into_iter().map(|p| universe.lookup(p).root))
}
