use std::path::Path;

use anyhow::Context;
use saffron_core::Split;
use saffron_engine::{HiddenStates, PrefixTree, TreeOptions};
use saffron_eval::splits::{split_labelled, trained_on, Universe};
use saffron_reward::judge_data::training_data;
use saffron_reward::probe::artifact::{self, Backbone, ProbeManifest};
use saffron_reward::probe::judge::{judge_inputs, train_judge, Candidate};
use saffron_reward::probe::train::TrainData;
use saffron_reward::{Boundary, GuardFormat, GuardInput, Loader, PROBE_GUARD_INSTRUCTION};

use crate::cli::TrainJudgeArgs;
use crate::progress::count_bar;

pub fn run(home: &Path, args: &TrainJudgeArgs) -> anyhow::Result<()> {
    let universe = Universe::load(home)?;
    let data = training_data(home).context("reading the training data (run `saffron fetch` first)")?;
    let mut splits = split_labelled(&universe, data);
    if let Some(limit) = args.limit {
        splits.train = splits.train.split_seeded(limit, 0).0;
    }
    let loaded = Loader::new(home).model(&args.backbone)?;
    let model = loaded.model().clone();
    let backbone = Backbone {
        name: args.backbone.clone(),
        sha256: loaded.sha256().to_owned(),
        hidden_size: model.shape().d_model as usize,
    };
    let format = GuardFormat::UserTurn(PROBE_GUARD_INSTRUCTION.into());
    let input = GuardInput::new(model.clone(), &format, Boundary::Natural)?;
    let mut tree = PrefixTree::new(
        &model,
        TreeOptions { hidden: HiddenStates::Keep, threads: args.threads, ..TreeOptions::default() },
    )?;
    eprintln!(
        "training a judge on {}: {} training pairs, {} dev pairs choose its features, penalty and threshold; \
         {} test pairs left alone",
        model.name(),
        splits.train.items.len(),
        splits.dev.items.len(),
        splits.test.items.len()
    );
    let bar = count_bar("features", (splits.train.items.len() + splits.dev.items.len()) as u64);
    let sides = TrainData { train: &splits.train, dev: &splits.dev };
    let started = std::time::Instant::now();
    let (candidates, chosen) =
        train_judge(&input, &mut tree, &sides, &args.features, 8, &mut |done| bar.set_position(done as u64))?;
    bar.finish_and_clear();
    eprintln!(
        "features: {} backbone tokens computed in {:.0} s",
        tree.cost().tokens_computed,
        started.elapsed().as_secs_f64()
    );
    let seen = splits.train.items.iter().chain(&splits.dev.items).map(|l| l.prompt.as_str());
    let prompts = trained_on(&universe, [Split::Train, Split::Dev], seen);
    let out = args.out.clone().unwrap_or_else(|| home.join("guards").join(format!("judge-{}", args.backbone)));
    let save = |dir: &Path, c: &Candidate| -> anyhow::Result<()> {
        let mut record = c.record.clone();
        record.prompts = Some(prompts.clone());
        let mut manifest =
            ProbeManifest::new(backbone.clone(), (format.clone(), input.boundary()), judge_inputs(), record);
        manifest.features = c.features;
        manifest.threshold = c.threshold;
        Ok(artifact::save(dir, &c.head, &manifest)?)
    };
    println!("candidates, each fitted on the training split; penalty and threshold chosen on the dev split:");
    println!("{:<18} {:>8} {:>10} {:>9} {:>6} {:>6}", "features", "l2", "threshold", "dev acc", "fpr", "fnr");
    for (i, c) in candidates.iter().enumerate() {
        save(&out.join("candidates").join(c.features.name()), c)?;
        let mark = if i == chosen { "  <- chosen" } else { "" };
        println!(
            "{:<18} {:>8} {:>10.3} {:>9.3} {:>6.3} {:>6.3}{mark}",
            c.features.name(),
            c.record.head.l2,
            c.threshold,
            c.dev.accuracy,
            c.dev.fpr,
            c.dev.fnr
        );
    }
    save(&out, &candidates[chosen])?;
    println!("wrote {} (every candidate under candidates/)", out.display());
    Ok(())
}
