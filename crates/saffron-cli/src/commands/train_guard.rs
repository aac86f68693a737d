use std::path::Path;

use anyhow::Context;
use saffron_core::Split;
use saffron_engine::{HiddenStates, PrefixTree, TreeOptions};
use saffron_eval::splits::{split_labelled, trained_on, Universe};
use saffron_reward::judge_data::training_data;
use saffron_reward::probe::artifact::{self, Backbone, ProbeManifest};
use saffron_reward::probe::train::{train, TrainData, TrainOptions};
use saffron_reward::{Boundary, GuardFormat, GuardInput, Loader, PROBE_GUARD_INSTRUCTION};

use crate::cli::TrainGuardArgs;
use crate::progress::count_bar;

pub fn run(home: &Path, args: &TrainGuardArgs) -> anyhow::Result<()> {
    let universe = Universe::load(home)?;
    let data = training_data(home).context("reading the training data (run `saffron fetch` first)")?;
    let all = data.items.len();
    let mut splits = split_labelled(&universe, data);
    if let Some(limit) = args.limit {
        splits.train = splits.train.split_seeded(limit, args.seed).0;
    }
    let loaded = Loader::new(home).model(&args.backbone)?;
    let (model, sha256) = (loaded.model().clone(), loaded.sha256().to_owned());
    let backbone = Backbone { name: args.backbone.clone(), sha256, hidden_size: model.shape().d_model as usize };
    let format = GuardFormat::UserTurn(PROBE_GUARD_INSTRUCTION.into());
    let input = GuardInput::new(model.clone(), &format, Boundary::Natural)?;
    let mut tree = PrefixTree::new(
        &model,
        TreeOptions { hidden: HiddenStates::Keep, threads: args.threads, ..TreeOptions::default() },
    )?;
    let options = TrainOptions { seed: args.seed, ..TrainOptions::default() };
    let unsafe_pairs = splits.train.items.iter().filter(|l| l.unsafe_).count();
    eprintln!(
        "training a probe guard on {}: {} training pairs ({unsafe_pairs} unsafe), {} dev pairs choose the penalty, \
         {} test pairs left alone (of {all}); response cuts {:?} tokens",
        model.name(),
        splits.train.items.len(),
        splits.dev.items.len(),
        splits.test.items.len(),
        options.inputs.prefix_lengths
    );
    let bar = count_bar("features", (splits.train.items.len() + splits.dev.items.len()) as u64);
    let sides = TrainData { train: &splits.train, dev: &splits.dev };
    let (head, mut record) = train(&input, &mut tree, &sides, &options, &mut |done| bar.set_position(done as u64))?;
    bar.finish_and_clear();
    // The dev prompts took part in a choice: recorded as seen.
    let seen = splits.train.items.iter().chain(&splits.dev.items).map(|l| l.prompt.as_str());
    record.prompts = Some(trained_on(&universe, [Split::Train, Split::Dev], seen));
    let cost = tree.cost();
    eprintln!(
        "features: {} backbone tokens computed, {:.0} s inside llama.cpp",
        cost.tokens_computed,
        tree.decode_time().as_secs_f64()
    );
    let out = args
        .out
        .clone()
        .unwrap_or_else(|| home.join("guards").join(format!("probe-{}", artifact_name(&args.backbone))));
    let manifest = ProbeManifest::new(backbone, (format, input.boundary()), options.inputs.clone(), record);
    artifact::save(&out, &head, &manifest)?;
    println!("the L2 penalty, fitted on the training split and scored on the dev split:");
    println!("{:>8}  {:>14}  {:>14}  {:>8}  {:>8}", "l2", "accuracy whole", "accuracy cuts", "fpr", "fnr");
    for s in &manifest.training.dev {
        let mark = if s.l2 == manifest.training.head.l2 { "  <- chosen" } else { "" };
        println!(
            "{:>8}  {:>14.3}  {:>14.3}  {:>8.3}  {:>8.3}{mark}",
            s.l2, s.whole.accuracy, s.prefixes.accuracy, s.whole.fpr, s.whole.fnr
        );
    }
    println!("wrote {} ({} rows of features)", out.display(), manifest.training.rows);
    Ok(())
}

/// A directory name for a backbone given by name or path.
fn artifact_name(backbone: &str) -> String {
    Path::new(backbone).file_stem().map_or_else(|| backbone.to_owned(), |s| s.to_string_lossy().into_owned())
}
