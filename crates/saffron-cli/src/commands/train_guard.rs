use std::path::Path;

use anyhow::Context;
use saffron_engine::{HiddenStates, PrefixTree, TreeOptions};
use saffron_reward::judge_data::training_data;
use saffron_reward::probe::artifact::{self, Backbone, ProbeManifest};
use saffron_reward::probe::train::{train, TrainOptions};
use saffron_reward::{Boundary, GuardFormat, GuardInput, Loader, PROBE_GUARD_INSTRUCTION};

use crate::cli::TrainGuardArgs;
use crate::progress::count_bar;

pub fn run(home: &Path, args: &TrainGuardArgs) -> anyhow::Result<()> {
    let mut data = training_data(home).context("reading the training data (run `saffron fetch` first)")?;
    if let Some(limit) = args.limit {
        data = data.split_seeded(limit, args.seed).0;
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
    let options = TrainOptions { folds: args.folds, seed: args.seed, ..TrainOptions::default() };
    let unsafe_pairs = data.items.iter().filter(|l| l.unsafe_).count();
    eprintln!(
        "training a probe guard on {} ({} labelled pairs, {unsafe_pairs} unsafe; response cuts {:?} tokens)",
        model.name(),
        data.items.len(),
        options.inputs.prefix_lengths
    );
    let bar = count_bar("features", data.items.len() as u64);
    let (head, record) = train(&input, &mut tree, &data, &options, &mut |done| bar.set_position(done as u64))?;
    bar.finish_and_clear();
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
    println!("cross-validation ({} folds, grouped by prompt; training data only):", manifest.training.folds);
    println!("{:>8}  {:>14}  {:>14}  {:>8}  {:>8}", "l2", "accuracy whole", "accuracy cuts", "fpr", "fnr");
    for s in &manifest.training.cross_validation {
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
