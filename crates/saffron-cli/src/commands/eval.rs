use std::path::{Path, PathBuf};

use anyhow::Context;
use saffron_engine::TreeOptions;
use saffron_eval::experiment::{run_grid, Record, RunModels, RunPlan};
use saffron_eval::grid::Grid;
use saffron_eval::manifest::RunManifest;
use saffron_eval::splits::Universe;
use saffron_eval::store::{Duplicates, IfDifferent, RunStore, StoreOptions};
use saffron_reward::Loader;

use crate::cli::EvalArgs;
use crate::progress::resumed_bar;

pub fn run(home: &Path, args: &EvalArgs) -> anyhow::Result<()> {
    let text = std::fs::read_to_string(&args.grid).with_context(|| format!("reading {}", args.grid.display()))?;
    let base = args.grid.parent().unwrap_or(Path::new("."));
    let grid = Grid::from_toml_at(&text, base).with_context(|| format!("in {}", args.grid.display()))?;
    let shard = match args.shard {
        Some(spec) => Some(spec.resolve(&|name| std::env::var(name).ok(), args.shard_count)?),
        None => None,
    };
    let mut universe = Universe::load(home)?;
    let plan = RunPlan::new(grid, home, &mut universe, shard)?;
    for (set, attack, prompts) in plan.inapplicable() {
        eprintln!(
            "warning: `{attack}` forces the start of a reference answer, and {prompts} prompts of `{set}` have none: \
             they are not answered under it (use a set with answers, such as advbench, jbb or many-shot, or another \
             attack)"
        );
    }
    if args.check {
        let found = plan.overlap()?;
        super::data::print_check(&found);
        if !found.is_clean() {
            anyhow::bail!("the grid reads prompts its artifacts were trained on (or cannot be checked)");
        }
        return Ok(());
    }
    let found = plan.check_overlap()?;
    if !found.overlaps.is_empty() {
        eprintln!("allow_overlap = true: the report will say that these results are not all held out");
    }
    let jobs = args.jobs.max(1);
    let max_cells = plan.grid.max_cells.unwrap_or(TreeOptions::default().max_cells);
    let options = TreeOptions { threads: threads_per_job(args.threads, jobs), max_cells, ..TreeOptions::default() };
    let mut models = RunModels::load(&plan, &Loader::new(home), options)?;
    let out = args.out.clone().unwrap_or_else(|| {
        PathBuf::from("runs").join(args.grid.file_stem().map_or("grid".into(), |s| s.to_string_lossy().into_owned()))
    });
    let manifest = RunManifest::new(&plan, &models)?.resuming(&out)?;
    models.defence.set_binding(manifest.reward_binding);
    let store_options = StoreOptions {
        if_different: if args.force_new { IfDifferent::StartOver } else { IfDifferent::Refuse },
        duplicates: if args.repair { Duplicates::Repair } else { Duplicates::Refuse },
    };
    let (mut store, done) = RunStore::open::<_, Record>(&out, &manifest, store_options)?;
    if store.repaired() > 0 {
        eprintln!("dropped {} repeated records from {}", store.repaired(), out.display());
    }
    let total = plan.total(models.defence.policy());
    let shard = shard.map_or(String::new(), |(i, n)| format!("shard {i}/{n}: "));
    eprintln!("{shard}{} cells, {total} records ({} already done) in {}", plan.cells.len(), done.len(), out.display());
    if jobs > 1 {
        let threads = options.threads.map_or("default".into(), |t| t.to_string());
        eprintln!("{jobs} jobs, {threads} llama.cpp threads each");
    }
    let bar = resumed_bar("eval", total as u64, done.len() as u64);
    let headline = plan.grid.judges.first().map(ToString::to_string).unwrap_or_default();
    run_grid(&plan, &models, jobs, &mut store, &mut |p| {
        bar.set_position((done.len() + p.done) as u64);
        bar.set_message(format!(
            "ASR {:.0}% ({headline}), {:.2} TFLOP/prompt",
            100.0 * p.unsafe_ as f64 / p.harmful.max(1) as f64,
            p.tflop / p.done as f64
        ));
    })?;
    bar.finish_and_clear();
    super::report::run(&out)
}

/// llama.cpp threads for each of `jobs` jobs: the cores (or `--threads`)
/// shared out, at least one each.
fn threads_per_job(threads: Option<u32>, jobs: usize) -> Option<u32> {
    if jobs <= 1 {
        return threads;
    }
    let total = threads.unwrap_or_else(|| std::thread::available_parallelism().map_or(1, |n| n.get() as u32));
    Some((total / jobs as u32).max(1))
}
