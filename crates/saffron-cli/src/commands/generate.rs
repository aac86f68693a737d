use std::io::Write;
use std::path::Path;
use std::time::Instant;

use anyhow::{bail, Context};
use saffron_engine::sampling::Decoding;
use saffron_engine::{generate, ChatPrompt, GenerateConfig, PrefixTree, TreeOptions};
use serde_json::json;

use crate::cli::GenerateArgs;

pub fn run(home: &Path, args: &GenerateArgs) -> anyhow::Result<()> {
    let config = resolve(args)?;
    let (model, path) = super::load_model(home, &args.model)?;
    let prompt = ChatPrompt { system: args.system.clone(), user: args.prompt.clone(), prefill: args.prefill.clone() };
    let context = model.encode_chat(&prompt)?;
    let cells = model.train_context().min(TreeOptions::default().max_cells);
    let needed = context.len() + config.max_new_tokens;
    if needed > cells as usize {
        bail!(
            "the prompt is {} tokens and --max-tokens {} more, but the context holds {cells}; shorten the prompt or lower --max-tokens",
            context.len(),
            config.max_new_tokens
        );
    }
    let options = TreeOptions { max_cells: cells, threads: args.model.threads, ..TreeOptions::default() };
    let mut tree = PrefixTree::new(&model, options)?;
    let start = Instant::now();
    let generation = generate(&mut tree, &context, &config).context("generating")?;
    let wall = start.elapsed().as_secs_f64();
    let text = model.detokenize(&generation.tokens);
    let mut out = std::io::stdout().lock();
    if args.json {
        let cost = tree.cost();
        let record = json!({
            "model": model.name(),
            "model_path": path,
            "text": text,
            "tokens": generation.tokens,
            "finish_reason": generation.finish,
            "prompt_tokens": context.len(),
            "config": config,
            "cost": {
                "tokens_computed": cost.tokens_computed,
                "tokens_served": cost.tokens_served,
                "flops": cost.flops,
                "tflop": cost.tflop(),
                "calls": cost.calls,
                "wall_seconds": wall,
            },
            "saffron_version": env!("CARGO_PKG_VERSION"),
        });
        writeln!(out, "{}", serde_json::to_string_pretty(&record)?)?;
    } else {
        writeln!(out, "{text}")?;
    }
    Ok(())
}

/// Raw flags → a checked generation configuration.
fn resolve(args: &GenerateArgs) -> anyhow::Result<GenerateConfig> {
    let decoding = if args.temperature == 0.0 {
        Decoding::Greedy
    } else {
        Decoding::Sample { temperature: args.temperature, top_k: args.top_k, top_p: args.top_p }
    };
    decoding.validate().map_err(anyhow::Error::msg)?;
    if args.max_tokens == 0 {
        bail!("--max-tokens must be at least 1");
    }
    if args.prompt.trim().is_empty() {
        bail!("--prompt is empty");
    }
    Ok(GenerateConfig { decoding, max_new_tokens: args.max_tokens, min_new_tokens: args.min_tokens, seed: args.seed })
}
