use std::path::Path;

use saffron_reward::probe::artifact::{self, ProbeManifest};
use saffron_reward::probe::train::{train, TrainData, TrainOptions};

use super::probe_setup::ProbeSetup;
use crate::cli::TrainGuardArgs;
use crate::progress::count_bar;

pub fn run(home: &Path, args: &TrainGuardArgs) -> anyhow::Result<()> {
    let limit = args.limit.map(|n| (n, args.seed));
    let mut setup = ProbeSetup::new(home, &args.backbone, args.tail, args.threads, limit)?;
    let splits = &setup.splits;
    let mut options = TrainOptions { seed: args.seed, ..TrainOptions::default() };
    options.inputs.tail = args.tail;
    let unsafe_pairs = splits.train.items.iter().filter(|l| l.unsafe_).count();
    eprintln!(
        "training a probe guard on {}: {} training pairs ({unsafe_pairs} unsafe), {} dev pairs choose the penalty, \
         {} test pairs left alone; response cuts {:?} tokens, tail {:?}",
        setup.model.name(),
        splits.train.items.len(),
        splits.dev.items.len(),
        splits.test.items.len(),
        options.inputs.prefix_lengths,
        options.inputs.tail
    );
    let bar = count_bar("features", (splits.train.items.len() + splits.dev.items.len()) as u64);
    let sides = TrainData { train: &splits.train, dev: &splits.dev };
    let (head, mut record) =
        train(&setup.input, &mut setup.tree, &sides, &options, &mut |done| bar.set_position(done as u64))?;
    bar.finish_and_clear();
    record.prompts = Some(setup.seen());
    let cost = setup.tree.cost();
    eprintln!(
        "features: {} backbone tokens computed, {:.0} s inside llama.cpp",
        cost.tokens_computed,
        setup.tree.decode_time().as_secs_f64()
    );
    let out = args
        .out
        .clone()
        .unwrap_or_else(|| home.join("guards").join(format!("probe-{}", artifact_name(&args.backbone))));
    let format = (setup.format.clone(), setup.input.boundary());
    let manifest = ProbeManifest::new(setup.backbone.clone(), format, options.inputs.clone(), record);
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
