//! What `train-guard` and `train-judge` start from: the labelled pairs dealt
//! into splits, the backbone and its guard input, a tree that keeps hidden
//! states.

use std::path::Path;

use anyhow::Context;
use saffron_core::{Split, TrainedPrompts};
use saffron_engine::{HiddenStates, Model, PrefixTree, TreeOptions};
use saffron_eval::splits::{split_labelled, trained_on, LabelledSplits, Universe};
use saffron_reward::judge_data::training_data;
use saffron_reward::probe::artifact::Backbone;
use saffron_reward::probe::features::ProbeTail;
use saffron_reward::{Boundary, GuardFormat, GuardInput, Loader};

pub struct ProbeSetup {
    pub universe: Universe,
    pub splits: LabelledSplits,
    pub backbone: Backbone,
    pub model: Model,
    pub format: GuardFormat,
    pub input: GuardInput,
    pub tree: PrefixTree,
}

impl ProbeSetup {
    /// `limit` keeps a seeded subsample of the training pairs (the dev
    /// split is used whole); `tail` decides the instruction.
    pub fn new(
        home: &Path,
        backbone: &str,
        tail: ProbeTail,
        threads: Option<u32>,
        limit: Option<(usize, u64)>,
    ) -> anyhow::Result<Self> {
        let universe = Universe::load(home)?;
        let data = training_data(home).context("reading the training data (run `saffron fetch` first)")?;
        let mut splits = split_labelled(&universe, data);
        if let Some((n, seed)) = limit {
            splits.train = splits.train.split_seeded(n, seed).0;
        }
        let loaded = Loader::new(home).model(backbone)?;
        let model = loaded.model().clone();
        let backbone = Backbone {
            name: backbone.to_owned(),
            sha256: loaded.sha256().to_owned(),
            hidden_size: model.shape().d_model as usize,
        };
        let format = GuardFormat::UserTurn(tail.instruction().into());
        let input = GuardInput::new(model.clone(), &format, Boundary::Natural)?;
        let tree =
            PrefixTree::new(&model, TreeOptions { hidden: HiddenStates::Keep, threads, ..TreeOptions::default() })?;
        Ok(ProbeSetup { universe, splits, backbone, model, format, input, tree })
    }

    /// What the trainer saw: the training and dev prompts (the dev ones
    /// took part in a choice).
    pub fn seen(&self) -> TrainedPrompts {
        let seen = self.splits.train.items.iter().chain(&self.splits.dev.items).map(|l| l.prompt.as_str());
        trained_on(&self.universe, [Split::Train, Split::Dev], seen)
    }
}
