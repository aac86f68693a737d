//! `saffron fluency RUN_DIR`: scores each answer of a run by its mean
//! log-probability per token under the run's policy (saffron_eval::fluency),
//! into `fluency.jsonl`, then writes the report.

use std::collections::{BTreeMap, HashSet};
use std::path::Path;

use anyhow::{bail, Context};
use saffron_engine::{PrefixTree, SpecialText, TreeOptions};
use saffron_eval::experiment::Record;
use saffron_eval::fluency::{answer_logprobs, mean, FluencyRecord, FluencyStore};
use saffron_eval::grid::Grid;
use saffron_eval::store::{read_records, CONFIG_FILE, RECORDS_FILE};
use saffron_eval::{load_prompts, Attack, EvalPrompt};

use crate::cli::{FluencyArgs, ModelArgs};
use crate::progress::count_bar;

pub fn run(home: &Path, args: &FluencyArgs) -> anyhow::Result<()> {
    let dir = &args.run_dir;
    let config_path = dir.join(CONFIG_FILE);
    let text = std::fs::read_to_string(&config_path)
        .with_context(|| format!("reading {}; is it a run directory made by `saffron eval`?", config_path.display()))?;
    let run: serde_json::Value =
        serde_json::from_str(&text).with_context(|| format!("in {}", config_path.display()))?;
    let grid: Grid = serde_json::from_value(run["grid"].clone())
        .with_context(|| format!("the grid in {}", config_path.display()))?;
    let policy_sha = super::guard::model_sha256(home, &grid.policy)?;
    if run["policy_sha256"].as_str() != Some(policy_sha.as_str()) {
        bail!(
            "the policy `{}` here (sha256 {policy_sha}) is not the one the run used ({}); fetch or point to that file",
            grid.policy,
            run["policy_sha256"]
        );
    }

    // Each cell's attack, and every prompt of the run's sets by id.
    let attacks: BTreeMap<String, Attack> =
        grid.cells()?.into_iter().map(|c| (c.key(&grid), c.attack.clone())).collect();
    let mut prompts: BTreeMap<String, EvalPrompt> = BTreeMap::new();
    for spec in &grid.datasets {
        let data = load_prompts(&spec.prompt_set()?, home).with_context(|| format!("reading dataset {}", spec.set))?;
        prompts.extend(data.prompts.into_iter().map(|p| (p.id.clone(), p)));
    }

    let (records, _) = read_records::<Record>(&dir.join(RECORDS_FILE))?;
    let (mut store, done) = FluencyStore::open(dir)?;
    let done: HashSet<(String, String)> = done.into_iter().map(|f| (f.cell, f.prompt_id)).collect();
    let todo: Vec<&Record> =
        records.iter().filter(|r| !done.contains(&(r.cell.clone(), r.prompt_id.clone()))).collect();
    eprintln!("{} records, {} already scored, in {}", records.len(), done.len(), dir.display());

    let (policy, _) = super::load_model(home, &ModelArgs { model: grid.policy.clone(), threads: args.threads })?;
    let options = TreeOptions { threads: args.threads, ..TreeOptions::default() };
    let mut tree = PrefixTree::new(&policy, options)?;
    let bar = count_bar("fluency", todo.len() as u64);
    for record in todo {
        let attack =
            attacks.get(&record.cell).with_context(|| format!("cell {} is not in the run's grid", record.cell))?;
        let prompt = prompts
            .get(&record.prompt_id)
            .with_context(|| format!("prompt {} is not in the run's datasets", record.prompt_id))?;
        let chat = attack.apply(prompt, &policy).with_context(|| {
            format!("the attack of {} does not apply to {} (it did when the run was made)", record.cell, prompt.id)
        })?;
        let context = policy.encode_chat(&chat)?;
        let answer = policy.tokenize(&record.text, SpecialText::Literal);
        // The contexts differ from record to record: nothing to share.
        tree.clear();
        let logprobs = answer_logprobs(&mut tree, &context, &answer)?;
        store.append(&FluencyRecord {
            cell: record.cell.clone(),
            prompt_id: record.prompt_id.clone(),
            tokens: answer.len(),
            mean_logprob: mean(&logprobs),
        })?;
        bar.inc(1);
    }
    bar.finish_and_clear();
    super::report::run(dir)
}
