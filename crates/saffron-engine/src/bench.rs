//! Throughput measurements behind `saffron bench`, shaped like llama.cpp's
//! own tools so the numbers compare one to one:
//! - prompt: one 128-token prompt in one batch (`llama-bench -p 128`);
//! - decode: 128 single-token steps after it (`llama-bench -n 128`);
//! - tree B: B branches sharing a 128-token prefix, 128 steps of B tokens
//!   each (`llama-batched-bench -pps -npp 128 -ntg 128 -npl B`, its S_TG).
//!
//! Token ids are fixed pseudo-random ids (throughput does not depend on
//! which tokens run); outputs are logits, as a search needs them.

use std::time::Instant;

use saffron_core::{TokenId, WantedOutputs};
use serde::Serialize;

use crate::{EngineError, Model, PrefixTree, TreeOptions};

/// Tokens per second of each measurement.
#[derive(Debug, Clone, Copy, Serialize)]
pub struct Throughput {
    pub prompt_tps: f64,
    pub decode_tps: f64,
    pub tree8_tps: f64,
    pub tree32_tps: f64,
    /// Share of the tree-32 wall time spent outside `llama_decode` (tree
    /// bookkeeping, output copies): the engine's own overhead.
    pub tree32_overhead: f64,
    pub threads: u32,
}

const PROMPT: usize = 128;
const STEPS: usize = 128;

/// Runs every measurement `repeat` times and keeps the best of each, after
/// one untimed warm-up (a prompt and a few steps: it pages the weights in and
/// sizes the buffers, as llama-bench's own warm-up run does).
pub fn throughput(model: &Model, threads: Option<u32>, repeat: usize) -> Result<Throughput, EngineError> {
    let threads = threads.unwrap_or_else(|| std::thread::available_parallelism().map_or(1, |n| n.get() as u32));
    let options = TreeOptions { threads: Some(threads), ..TreeOptions::default() };
    let mut tree = PrefixTree::new(model, options)?;
    let vocab = model.vocab_size() as u64;
    let token =
        |branch: u64, i: u64| -> TokenId { ((branch * 1_000_003 + i * 7919 + 17) % (vocab - 512) + 256) as TokenId };
    let prompt: Vec<TokenId> = (0..PROMPT as u64).map(|i| token(0, i)).collect();
    let mut best =
        Throughput { prompt_tps: 0.0, decode_tps: 0.0, tree8_tps: 0.0, tree32_tps: 0.0, tree32_overhead: 1.0, threads };
    warm_up(&mut tree, &prompt)?;
    for _ in 0..repeat.max(1) {
        tree.clear();
        let start = Instant::now();
        tree.outputs(&[&prompt], WantedOutputs::Logits)?;
        best.prompt_tps = best.prompt_tps.max(PROMPT as f64 / start.elapsed().as_secs_f64());

        let mut path = prompt.clone();
        let start = Instant::now();
        for i in 0..STEPS as u64 {
            path.push(token(1, i));
            tree.outputs(&[&path], WantedOutputs::Logits)?;
        }
        best.decode_tps = best.decode_tps.max(STEPS as f64 / start.elapsed().as_secs_f64());

        best.tree8_tps = best.tree8_tps.max(tree_tps(&mut tree, &prompt, 8, &token)?.0);
        let (tps, overhead) = tree_tps(&mut tree, &prompt, 32, &token)?;
        best.tree32_tps = best.tree32_tps.max(tps);
        best.tree32_overhead = best.tree32_overhead.min(overhead);
    }
    Ok(best)
}

fn warm_up(tree: &mut PrefixTree, prompt: &[TokenId]) -> Result<(), EngineError> {
    tree.clear();
    tree.outputs(&[prompt], WantedOutputs::Logits)?;
    let mut path = prompt.to_vec();
    for &token in prompt.iter().take(4) {
        path.push(token);
        tree.outputs(&[&path], WantedOutputs::Logits)?;
    }
    Ok(())
}

/// Tokens per second over the expansion steps, and the share of their wall
/// time spent outside `llama_decode`.
fn tree_tps(
    tree: &mut PrefixTree,
    prompt: &[TokenId],
    branches: u64,
    token: &dyn Fn(u64, u64) -> TokenId,
) -> Result<(f64, f64), EngineError> {
    tree.clear();
    tree.outputs(&[prompt], WantedOutputs::Logits)?;
    let mut paths: Vec<Vec<TokenId>> = (0..branches).map(|_| prompt.to_vec()).collect();
    let decode_before = tree.decode_time();
    let start = Instant::now();
    for i in 0..STEPS as u64 {
        for (b, p) in paths.iter_mut().enumerate() {
            p.push(token(b as u64 + 2, i));
        }
        let refs: Vec<&[TokenId]> = paths.iter().map(Vec::as_slice).collect();
        tree.outputs(&refs, WantedOutputs::Logits)?;
    }
    let wall = start.elapsed().as_secs_f64();
    let in_decode = (tree.decode_time() - decode_before).as_secs_f64();
    Ok(((branches as usize * STEPS) as f64 / wall, 1.0 - in_decode / wall))
}
