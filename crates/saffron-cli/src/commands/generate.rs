use std::io::Write;
use std::path::Path;

use anyhow::{bail, Context};
use saffron_core::sampling::Decoding;
use saffron_defence::{Answer, DefenceModels, DefenceSpec};
use saffron_engine::{ChatPrompt, TreeOptions};
use saffron_reward::{GuardSpec, Loader};
use saffron_search::{MonitorConfig, ReasoningConfig, SearchConfig, StrategyKind, Trace, TraceEvent};
use serde::Serialize;

use crate::cli::GenerateArgs;

pub fn run(home: &Path, args: &GenerateArgs) -> anyhow::Result<()> {
    let config = resolve(args)?;
    if args.prompt.trim().is_empty() {
        bail!("--prompt is empty");
    }
    let spec = DefenceSpec {
        policy: args.model.model.clone(),
        remote: args.remote.table(),
        // The monitor reads the trace with the guard: the built-in one unless named.
        prm: args
            .guard
            .as_deref()
            .or(args.monitor.map(|_| "default"))
            .map(|g| GuardSpec::parse(g, args.guard_format))
            .transpose()?,
        mrm: super::mrm_spec(args.mrm.as_deref(), args.mrm_base.as_deref())?,
    };
    let loader = Loader::new(home);
    let policy = match spec.remote {
        Some(_) => loader.vocabulary(&spec.policy)?,
        None => loader.model(&spec.policy)?,
    };
    let max_cells = args.max_cells.unwrap_or(TreeOptions::default().max_cells);
    let options = TreeOptions { threads: args.model.threads, max_cells, ..TreeOptions::default() };
    let models = DefenceModels::load(&spec, &loader, options)?;
    let chat =
        ChatPrompt { system: args.system.clone(), prefill: args.prefill.clone(), ..ChatPrompt::user(&args.prompt) };
    let mut trace = Trace::default();
    let answer = models.defence(config.clone())?.answer(&args.prompt, &chat, &mut trace).context("generating")?;
    let mut out = std::io::stdout().lock();
    if !args.json {
        if let Some(reasoning) = &answer.reasoning {
            writeln!(
                out,
                "<think> ({} tokens, {} format)\n{}\n</think>\n",
                reasoning.tokens,
                reasoning.format.name(),
                reasoning.text
            )?;
        }
        writeln!(out, "{}", answer.text)?;
        return Ok(());
    }
    let model = policy.model();
    let output = Output {
        model: model.name(),
        model_path: model.path(),
        tflop: answer.cost.tflop(),
        reward_calls: answer.cost.reward_calls(),
        answer: &answer,
        config: &config,
        saffron_version: env!("CARGO_PKG_VERSION"),
        trace: args.trace.then_some(&trace.events),
    };
    writeln!(out, "{}", serde_json::to_string_pretty(&output)?)?;
    Ok(())
}

/// `generate --json`.
#[derive(Serialize)]
struct Output<'a> {
    model: &'a str,
    model_path: &'a Path,
    #[serde(flatten)]
    answer: &'a Answer,
    config: &'a SearchConfig,
    tflop: f64,
    reward_calls: u64,
    saffron_version: &'static str,
    #[serde(skip_serializing_if = "Option::is_none")]
    trace: Option<&'a Vec<TraceEvent>>,
}

/// Raw flags (over an optional TOML file) → a checked search configuration.
fn resolve(args: &GenerateArgs) -> anyhow::Result<SearchConfig> {
    let mut config = match &args.config {
        Some(path) => {
            let text = std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))?;
            toml::from_str::<SearchConfig>(&text)
                .with_context(|| format!("{} is not a valid search configuration", path.display()))?
        }
        None => SearchConfig::new(StrategyKind::Sample.default_strategy()),
    };
    if let Some(kind) = args.strategy.filter(|k| *k != config.strategy.kind()) {
        config.strategy = kind.default_strategy();
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
    if let Some(budget) = args.reasoning_budget {
        let mut reasoning = config.reasoning.take().unwrap_or_else(|| ReasoningConfig::exact(budget));
        reasoning.budget = budget;
        reasoning.min_tokens = args.reasoning_min.or(reasoning.min_tokens);
        reasoning.format = args.thinking_format.unwrap_or(reasoning.format);
        if let Some(action) = args.monitor {
            reasoning.monitor = Some(MonitorConfig { action, ..reasoning.monitor.unwrap_or(MonitorConfig::default()) });
        }
        config.reasoning = Some(reasoning);
    }
    config.decoding = decoding(config.decoding, args);
    config.validate().map_err(anyhow::Error::msg)?;
    Ok(config)
}

/// The decoding flags over the configured decoding.
fn decoding(base: Decoding, args: &GenerateArgs) -> Decoding {
    let (temperature, top_k, top_p) = match base {
        Decoding::Greedy => (0.0, None, 1.0),
        Decoding::Sample { temperature, top_k, top_p } => (temperature, top_k, top_p),
    };
    if args.temperature.is_none() && args.top_k.is_none() && args.top_p.is_none() {
        return base;
    }
    let temperature = args.temperature.unwrap_or(temperature);
    let top_k = args.top_k.or(top_k);
    let top_p = args.top_p.unwrap_or(if base == Decoding::Greedy { 0.8 } else { top_p });
    if temperature == 0.0 {
        Decoding::Greedy
    } else {
        Decoding::Sample { temperature, top_k, top_p }
    }
}
