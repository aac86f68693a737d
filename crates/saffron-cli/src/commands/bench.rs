use std::io::Write;
use std::path::Path;

use crate::cli::BenchArgs;

pub fn run(home: &Path, args: &BenchArgs) -> anyhow::Result<()> {
    if let Some(dir) = &args.mrm {
        return super::bench_mrm::run(home, args, dir);
    }
    if !args.strategy.is_empty() {
        return super::bench_search::run(home, args);
    }
    if args.remote.remote.is_some() {
        anyhow::bail!("--remote benchmarks searches: add --strategy (the engine benchmark runs llama.cpp here)");
    }
    let loaded = saffron_reward::Loader::new(home).model(&args.model.model)?;
    let model = loaded.model();
    eprintln!("benchmarking {} ({})", model.name(), model.path().display());
    let t = saffron_engine::bench::throughput(model, args.model.threads, args.repeat)?;
    let mut out = std::io::stdout().lock();
    if args.json {
        writeln!(out, "{}", serde_json::to_string(&t)?)?;
    } else {
        writeln!(out, "threads           {}", t.threads)?;
        writeln!(out, "prompt (128)      {:>8.1} tokens/s", t.prompt_tps)?;
        writeln!(out, "decode (128)      {:>8.1} tokens/s", t.decode_tps)?;
        writeln!(out, "tree 8 branches   {:>8.1} tokens/s", t.tree8_tps)?;
        writeln!(out, "tree 32 branches  {:>8.1} tokens/s", t.tree32_tps)?;
        writeln!(out, "tree 32 overhead  {:>8.1} % of wall time outside llama_decode", 100.0 * t.tree32_overhead)?;
    }
    Ok(())
}
