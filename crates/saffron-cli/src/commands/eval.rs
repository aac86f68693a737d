use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use anyhow::Context;
use saffron_core::MultifurcationReward;
use saffron_engine::TreeOptions;
use saffron_eval::experiment::{run_grid, Record, RunModels};
use saffron_eval::grid::Grid;
use saffron_eval::judge::Judge;
use saffron_eval::store::RunStore;
use saffron_eval::{load_prompts, Selection};
use saffron_reward::{Guard, RefusalJudge};
use serde_json::json;

use crate::cli::{EvalArgs, GuardPreset, ModelArgs};
use crate::progress::count_bar;

pub fn run(home: &Path, args: &EvalArgs) -> anyhow::Result<()> {
    let text = std::fs::read_to_string(&args.grid).with_context(|| format!("reading {}", args.grid.display()))?;
    let base = args.grid.parent().unwrap_or(Path::new("."));
    let grid = Grid::from_toml_at(&text, base).with_context(|| format!("in {}", args.grid.display()))?;
    let cells = grid.cells()?;
    let mut prompts = Vec::new();
    let mut data_files = BTreeMap::new();
    for spec in &grid.datasets {
        let data = load_prompts(&spec.prompt_set()?, home).with_context(|| format!("reading dataset {}", spec.set))?;
        data_files.extend(data.files);
        let selection = Selection { shard: args.shard, ..spec.selection() };
        prompts.push(selection.apply(data.prompts)?);
    }
    let (policy, _) = super::load_model(home, &ModelArgs { model: grid.policy.clone(), threads: args.threads })?;
    let policy_sha = super::guard::model_sha256(home, &grid.policy)?;

    // Guards by spec, loaded once and shared by the PRM and the judges.
    let mut guards: BTreeMap<String, Box<dyn Guard + Sync>> = BTreeMap::new();
    let needs_prm = cells.iter().any(|c| !matches!(c.search.strategy.name(), "sample" | "saffron"));
    let mut guard_specs: Vec<&String> = grid.judges.iter().filter(|j| *j != "refusal").collect();
    if needs_prm {
        guard_specs.push(&grid.guard);
    }
    let mut identities = BTreeMap::new();
    for spec in guard_specs {
        if !guards.contains_key(spec) {
            identities.insert(spec.clone(), super::guard::guard_sha256(home, spec)?);
            guards.insert(
                spec.clone(),
                super::guard::load_guard(home, spec, GuardPreset::Local, args.threads, Some(&policy))?,
            );
        }
    }
    let mrm = match &grid.mrm {
        Some(spec) => {
            let mrm =
                super::mrm::Mrm::load(home, (spec, grid.mrm_base.as_deref()), (&grid.policy, &policy), args.threads)?;
            identities.insert(format!("mrm:{spec}"), mrm.identity());
            Some(mrm)
        }
        None => None,
    };
    let jobs = args.jobs.max(1);
    let options = TreeOptions { threads: threads_per_job(args.threads, jobs), ..TreeOptions::default() };
    let make_mrm = |prompt: &str| -> Result<Option<Box<dyn MultifurcationReward + '_>>, saffron_eval::EvalError> {
        Ok(match &mrm {
            Some(m) => Some(m.bind(&policy, prompt, options)?),
            None => None,
        })
    };
    let make_judges = || -> Result<Vec<(String, Judge)>, saffron_eval::EvalError> {
        grid.judges
            .iter()
            .map(|name| {
                let judge = match name.as_str() {
                    "refusal" => Judge::Refusal(RefusalJudge::default()),
                    spec => Judge::guard(guards[spec].as_ref(), options)?,
                };
                Ok((name.clone(), judge))
            })
            .collect()
    };
    let models = RunModels {
        policy: &policy,
        prm: needs_prm.then(|| guards[&grid.guard].as_ref() as &(dyn Guard + Sync)),
        make_mrm: &make_mrm,
        options,
    };

    let out = args.out.clone().unwrap_or_else(|| {
        PathBuf::from("runs").join(args.grid.file_stem().map_or("grid".into(), |s| s.to_string_lossy().into_owned()))
    });
    let resolved = json!({
        "grid": grid,
        "policy_sha256": policy_sha,
        "reward_models": identities,
        "data_files": data_files,
        "saffron_version": env!("CARGO_PKG_VERSION"),
    });
    let (mut store, done) = RunStore::open::<_, Record>(&out, &resolved, args.force_new)?;
    let total: usize =
        cells.iter().map(|c| prompts[c.dataset].iter().filter(|p| c.attack.apply(p, &policy).is_some()).count()).sum();
    let shard = args.shard.map_or(String::new(), |(i, n)| format!("shard {i}/{n}: "));
    eprintln!("{shard}{} cells, {total} records ({} already done) in {}", cells.len(), done.len(), out.display());
    let bar = count_bar("eval", total as u64);
    bar.set_position(done.len() as u64);
    let headline = grid.judges.first().cloned().unwrap_or_default();
    if jobs > 1 {
        eprintln!(
            "{jobs} jobs, {} llama.cpp threads each",
            options.threads.map_or("default".into(), |t| t.to_string())
        );
    }
    run_grid(&grid, (&cells, &prompts), &models, &make_judges, jobs, &mut store, &mut |p| {
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
