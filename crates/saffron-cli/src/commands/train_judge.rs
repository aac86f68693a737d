use std::path::Path;

use saffron_reward::probe::artifact::{self, ProbeManifest};
use saffron_reward::probe::features::ProbeTail;
use saffron_reward::probe::judge::{fit_candidates, judge_inputs, judge_rows, Candidate, Design};
use saffron_reward::probe::row_cache;
use saffron_reward::probe::train::TrainData;

use super::probe_setup::ProbeSetup;
use crate::cli::TrainJudgeArgs;
use crate::progress::count_bar;

pub fn run(home: &Path, args: &TrainJudgeArgs) -> anyhow::Result<()> {
    let mut setup =
        ProbeSetup::new(home, &args.backbone, ProbeTail::Template, args.threads, args.limit.map(|n| (n, 0)))?;
    let splits = &setup.splits;
    eprintln!(
        "training a judge on {}: {} training pairs, {} dev pairs choose its features, penalty and threshold; \
         {} test pairs left alone",
        setup.model.name(),
        splits.train.items.len(),
        splits.dev.items.len(),
        splits.test.items.len()
    );
    let sides = TrainData { train: &splits.train, dev: &splits.dev };
    let out = args.out.clone().unwrap_or_else(|| home.join("guards").join(format!("judge-{}", args.backbone)));
    let format_json = serde_json::to_string(&(&setup.format, setup.input.boundary()))?;
    let digest = row_cache::digest(&setup.backbone.sha256, &format_json, &sides);
    let rows = match row_cache::load(&out, &digest)? {
        Some(rows) => {
            eprintln!(
                "features: read back from {} (same backbone, format and pairs)",
                out.join(row_cache::ROWS_FILE).display()
            );
            rows
        }
        None => {
            let bar = count_bar("features", (splits.train.items.len() + splits.dev.items.len()) as u64);
            let started = std::time::Instant::now();
            let rows = judge_rows(&setup.input, &mut setup.tree, &sides, 8, &mut |done| bar.set_position(done as u64))?;
            bar.finish_and_clear();
            eprintln!(
                "features: {} backbone tokens computed in {:.0} s",
                setup.tree.cost().tokens_computed,
                started.elapsed().as_secs_f64()
            );
            row_cache::save(&out, &digest, &rows)?;
            rows
        }
    };
    let d = setup.model.shape().d_model as usize;
    let (candidates, chosen) = fit_candidates(d, &rows, &sides, &Design::all(&args.features))?;
    let prompts = setup.seen();
    let save = |dir: &Path, c: &Candidate| -> anyhow::Result<()> {
        let mut record = c.record.clone();
        record.prompts = Some(prompts.clone());
        let format = (setup.format.clone(), setup.input.boundary());
        let mut manifest = ProbeManifest::new(setup.backbone.clone(), format, judge_inputs(), record);
        manifest.features = c.design.features;
        manifest.refusal = c.design.refusal;
        manifest.threshold = c.threshold;
        Ok(artifact::save(dir, &c.head, &manifest)?)
    };
    println!("candidates, each fitted on the training split; penalty and threshold chosen on the dev split:");
    println!("{:<24} {:>8} {:>10} {:>9} {:>6} {:>6}", "design", "l2", "threshold", "dev acc", "fpr", "fnr");
    for (i, c) in candidates.iter().enumerate() {
        save(&out.join("candidates").join(c.design.name()), c)?;
        let mark = if i == chosen { "  <- chosen" } else { "" };
        println!(
            "{:<24} {:>8} {:>10.3} {:>9.3} {:>6.3} {:>6.3}{mark}",
            c.design.name(),
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
