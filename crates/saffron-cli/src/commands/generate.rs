use std::io::Write;
use std::path::Path;

use anyhow::{bail, Context};
use saffron_core::sampling::Decoding;
use saffron_core::ModelRole;
use saffron_engine::{ChatPrompt, HiddenStates, PrefixTree, TreeOptions};
use saffron_reward::BoundGuard;
use saffron_search::{search, Models, SearchConfig, SearchError, Strategy, Trace};
use serde_json::json;

use crate::cli::GenerateArgs;

pub fn run(home: &Path, args: &GenerateArgs) -> anyhow::Result<()> {
    let config = resolve(args)?;
    if args.prompt.trim().is_empty() {
        bail!("--prompt is empty");
    }
    let (model, path) = super::load_model(home, &args.model)?;
    let prompt = ChatPrompt { system: args.system.clone(), user: args.prompt.clone(), prefill: args.prefill.clone() };
    let context = model.encode_chat(&prompt)?;
    let cells = model.train_context().min(TreeOptions::default().max_cells);
    let max_new = config.length.max_new_tokens;
    if context.len() + max_new > cells as usize {
        bail!(
            "the prompt is {} tokens and --max-tokens {max_new} more, but the context holds {cells}; shorten the prompt or lower --max-tokens",
            context.len()
        );
    }
    let options = TreeOptions { max_cells: cells, threads: args.model.threads, ..TreeOptions::default() };
    let loaded_mrm = match &args.mrm {
        Some(spec) => Some(super::mrm::Mrm::load(
            home,
            (spec, args.mrm_base.as_deref()),
            (&args.model.model, &model),
            args.model.threads,
        )?),
        None => None,
    };
    let mut mrm = loaded_mrm.as_ref().map(|m| m.bind(&model, &args.prompt, options)).transpose()?;
    // A shared-backbone MRM reads the policy's hidden states.
    let hidden =
        if mrm.as_ref().is_some_and(|m| m.needs_policy_hidden()) { HiddenStates::Keep } else { HiddenStates::Discard };
    let mut tree = PrefixTree::new(&model, TreeOptions { hidden, ..options })?;
    let guard = match &args.guard {
        Some(name) => Some(super::guard::load_guard(home, name, args.guard_format, args.model.threads, Some(&model))?),
        None => None,
    };
    let mut prm = match &guard {
        Some(g) => Some(BoundGuard::new(g.as_ref(), &args.prompt, options, |t| model.detokenize(t))?),
        None => None,
    };
    let mut models =
        Models { policy: &mut tree, prm: prm.as_mut().map(|p| p as _), mrm: mrm.as_deref_mut().map(|m| m as _) };
    let mut trace = Trace::default();
    let outcome = search(&config, &mut models, &context, &mut trace).map_err(|e| match e {
        SearchError::MissingModel { role: ModelRole::Prm, .. } => {
            anyhow::anyhow!("{e}; pass a guard model with --guard NAME|PATH")
        }
        SearchError::MissingModel { role: ModelRole::Mrm, .. } => {
            anyhow::anyhow!(
                "{e}; pass --mrm default (the built-in MRM for the default policy) or a `saffron train-mrm` directory"
            )
        }
        e => anyhow::Error::new(e).context("generating"),
    })?;
    let text = model.detokenize(&outcome.tokens);
    let mut out = std::io::stdout().lock();
    if args.json {
        let mut record = json!({
            "model": model.name(),
            "model_path": path,
            "text": text,
            "tokens": outcome.tokens,
            "finish_reason": outcome.finish,
            "score": outcome.score,
            "prompt_tokens": context.len(),
            "config": config,
            "steps": outcome.steps,
            "stopped_by": outcome.stopped_by,
            "cost": outcome.cost,
            "tflop": outcome.cost.tflop(),
            "reward_calls": outcome.cost.reward_calls(),
            "saffron_version": env!("CARGO_PKG_VERSION"),
        });
        if args.trace {
            record["trace"] = serde_json::to_value(&trace.events)?;
        }
        writeln!(out, "{}", serde_json::to_string_pretty(&record)?)?;
    } else {
        writeln!(out, "{text}")?;
    }
    Ok(())
}

/// Raw flags (over an optional TOML file) → a checked search configuration.
fn resolve(args: &GenerateArgs) -> anyhow::Result<SearchConfig> {
    let mut config = match &args.config {
        Some(path) => {
            let text = std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))?;
            toml::from_str::<SearchConfig>(&text)
                .with_context(|| format!("{} is not a valid search configuration", path.display()))?
        }
        None => SearchConfig::new(Strategy::from_name("sample").expect("sample is a strategy")),
    };
    if let Some(name) = &args.strategy {
        if name != config.strategy.name() {
            config.strategy = Strategy::from_name(name)
                .with_context(|| format!("unknown strategy `{name}`; choose one of: {}", Strategy::NAMES.join(", ")))?;
        }
    }
    if let Some(width) = args.width {
        config.strategy.set_width(width).map_err(anyhow::Error::msg)?;
    }
    if let Some(tflop) = args.budget_tflop {
        config.budget.max_tflop = Some(tflop);
    }
    if let Some(n) = args.max_tokens {
        config.length.max_new_tokens = n;
    }
    if let Some(n) = args.min_tokens {
        config.length.min_new_tokens = n;
    }
    if let Some(seed) = args.seed {
        config.seed = seed;
    }
    config.decoding = decoding(config.decoding, args);
    config.validate().map_err(|e| anyhow::anyhow!("{e}"))?;
    Ok(config)
}

/// The decoding flags over the configured decoding.
fn decoding(base: Decoding, args: &GenerateArgs) -> Decoding {
    let (mut temperature, mut top_k, mut top_p) = match base {
        Decoding::Greedy => (0.0, None, 1.0),
        Decoding::Sample { temperature, top_k, top_p } => (temperature, top_k, top_p),
    };
    if args.temperature.is_none() && args.top_k.is_none() && args.top_p.is_none() {
        return base;
    }
    temperature = args.temperature.unwrap_or(temperature);
    top_k = args.top_k.or(top_k);
    top_p = args.top_p.unwrap_or(if base == Decoding::Greedy { 0.8 } else { top_p });
    if temperature == 0.0 {
        Decoding::Greedy
    } else {
        Decoding::Sample { temperature, top_k, top_p }
    }
}
