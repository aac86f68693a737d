use std::path::Path;

use saffron_reward::probe::artifact::{self, ProbeManifest};
use saffron_reward::probe::judge::{judge_inputs, train_judge, Candidate};
use saffron_reward::probe::train::TrainData;

use super::probe_setup::ProbeSetup;
use crate::cli::TrainJudgeArgs;
use crate::progress::count_bar;

pub fn run(home: &Path, args: &TrainJudgeArgs) -> anyhow::Result<()> {
    let mut setup = ProbeSetup::new(home, &args.backbone, args.threads, args.limit.map(|n| (n, 0)))?;
    let splits = &setup.splits;
    eprintln!(
        "training a judge on {}: {} training pairs, {} dev pairs choose its features, penalty and threshold; \
         {} test pairs left alone",
        setup.model.name(),
        splits.train.items.len(),
        splits.dev.items.len(),
        splits.test.items.len()
    );
    let bar = count_bar("features", (splits.train.items.len() + splits.dev.items.len()) as u64);
    let sides = TrainData { train: &splits.train, dev: &splits.dev };
    let started = std::time::Instant::now();
    let (candidates, chosen) = train_judge(&setup.input, &mut setup.tree, &sides, &args.features, 8, &mut |done| {
        bar.set_position(done as u64)
    })?;
    bar.finish_and_clear();
    eprintln!(
        "features: {} backbone tokens computed in {:.0} s",
        setup.tree.cost().tokens_computed,
        started.elapsed().as_secs_f64()
    );
    let prompts = setup.seen();
    let out = args.out.clone().unwrap_or_else(|| home.join("guards").join(format!("judge-{}", args.backbone)));
    let save = |dir: &Path, c: &Candidate| -> anyhow::Result<()> {
        let mut record = c.record.clone();
        record.prompts = Some(prompts.clone());
        let format = (setup.format.clone(), setup.input.boundary());
        let mut manifest = ProbeManifest::new(setup.backbone.clone(), format, judge_inputs(), record);
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
