//! The prefix tree against llama.cpp run fresh on each sequence alone.
//!
//! The correctness checks run on an F32 copy of SmolLM2 (see
//! `saffron_test_support::smollm2_f32`). On the Q4_1 original, llama.cpp quantises
//! activations to 8 bits per block, so merely reordering a float sum (another
//! batch size, another KV layout; even flash attention on vs off on a plain
//! prompt) moves logits by ~0.4 — no test could tell that from a cache bug.
//! In F32 the same reorderings move logits by at most 0.033 (measured while
//! writing these tests), whereas a token
//! attending to the wrong branch or position moves them by whole units (see
//! the negative control: 4.5). We allow 0.1.

use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use saffron_core::{TokenId, WantedOutputs};
use saffron_engine::{ChatPrompt, EngineError, HiddenStates, PrefixTree, TreeOptions};

use saffron_test_support::{max_abs_diff, smollm2, smollm2_f32};

const TOLERANCE: f32 = 0.1;

fn fresh_logits(fresh: &mut PrefixTree, path: &[TokenId]) -> Vec<f32> {
    fresh.clear();
    fresh.outputs(&[path], WantedOutputs::Logits).unwrap()[0].logits.as_deref().unwrap().to_vec()
}

fn prompt_tokens() -> Vec<TokenId> {
    smollm2_f32().encode_chat(&ChatPrompt::user("Tell me a short story about a fox.")).unwrap()
}

#[test]
fn random_trees_match_fresh_forwards_and_counters_add_up() {
    let model = smollm2_f32();
    let vocab = model.vocab_size() as u32;
    // A small cache forces evictions and recomputation along the way.
    let options = TreeOptions { max_cells: 120, ..TreeOptions::default() };
    let mut tree = PrefixTree::new(&model, options).unwrap();
    let mut fresh = PrefixTree::new(&model, TreeOptions::default()).unwrap();
    let mut rng = ChaCha8Rng::seed_from_u64(7);
    let base = prompt_tokens();
    let mut known: Vec<Vec<TokenId>> = vec![base.clone()];
    let mut requested = 0u64;
    let mut worst = 0.0f32;
    for round in 0..25 {
        // A batch of 1–6 paths at mixed depths: extensions of known paths,
        // forks from their middle, and bare prefixes (inner nodes).
        let mut batch: Vec<Vec<TokenId>> = Vec::new();
        for _ in 0..rng.gen_range(1..=4) {
            let from = &known[rng.gen_range(0..known.len())];
            let cut = rng.gen_range(base.len().min(from.len())..=from.len());
            let mut path = from[..cut.max(1)].to_vec();
            let extend = if rng.gen_bool(0.2) { 0 } else { rng.gen_range(1..=6) };
            for _ in 0..extend {
                path.push(rng.gen_range(200..vocab));
            }
            batch.push(path);
        }
        if rng.gen_bool(0.15) {
            let victim = known[rng.gen_range(0..known.len())].clone();
            tree.release(&victim).unwrap_or(0);
        }
        let refs: Vec<&[TokenId]> = batch.iter().map(Vec::as_slice).collect();
        let outputs = tree.outputs(&refs, WantedOutputs::Logits).unwrap();
        requested += refs.iter().map(|p| p.len() as u64).sum::<u64>();
        for (path, out) in batch.iter().zip(&outputs) {
            let diff = max_abs_diff(out.logits.as_deref().unwrap(), &fresh_logits(&mut fresh, path));
            worst = worst.max(diff);
            assert!(diff < TOLERANCE, "round {round}: logits of a {}-token path differ by {diff}", path.len());
        }
        let cost = tree.cost();
        assert_eq!(cost.tokens_computed + cost.tokens_served, requested, "round {round}");
        assert!(tree.stats().cached_nodes <= 120);
        known.extend(batch.into_iter().filter(|p| p.len() < 150));
    }
    eprintln!("largest logit difference against fresh forwards: {worst:e}");
}

#[test]
fn asking_again_computes_nothing() {
    let model = smollm2();
    let mut tree = PrefixTree::new(&model, TreeOptions::default()).unwrap();
    let base = prompt_tokens();
    let a: Vec<TokenId> = base.iter().copied().chain([1000, 1001]).collect();
    let b: Vec<TokenId> = base.iter().copied().chain([1000, 2002, 3003]).collect();
    let first = tree.outputs(&[&a, &b], WantedOutputs::Logits).unwrap();
    // Shared prompt and shared first generated token are computed once.
    assert_eq!(tree.cost().tokens_computed, base.len() as u64 + 1 + 1 + 2);
    assert_eq!(tree.cost().calls, 1);
    let before = tree.cost();
    let again = tree.outputs(&[&b, &a], WantedOutputs::Logits).unwrap();
    let after = tree.cost().since(&before);
    assert_eq!(after.tokens_computed, 0);
    assert_eq!(after.flops, 0.0);
    assert_eq!(after.tokens_served, (a.len() + b.len()) as u64);
    // Memoised: the very same buffers come back.
    assert!(std::sync::Arc::ptr_eq(first[0].logits.as_ref().unwrap(), again[1].logits.as_ref().unwrap()));
}

#[test]
fn each_path_is_charged_what_it_computed_first_and_served_what_was_cached() {
    let model = smollm2();
    let mut tree = PrefixTree::new(&model, TreeOptions::default()).unwrap();
    let base = prompt_tokens();
    let a: Vec<TokenId> = base.iter().copied().chain([1000, 1001]).collect();
    let b: Vec<TokenId> = base.iter().copied().chain([1000, 2002, 3003]).collect();
    let (_, paid) = tree.outputs_paid(&[&a, &b], WantedOutputs::Logits).unwrap();
    // `a` comes first: it computes the prompt and 1000; `b` is served them.
    assert_eq!(paid[0].tokens_computed, a.len() as u64);
    assert_eq!(paid[0].tokens_served, 0);
    assert_eq!(paid[1].tokens_computed, 2);
    assert_eq!(paid[1].tokens_served, base.len() as u64 + 1);
    assert_eq!((paid[0].sequences, paid[1].sequences, paid[0].calls), (1, 1, 0));
    let total = tree.cost();
    assert_eq!(paid[0].tokens_computed + paid[1].tokens_computed, total.tokens_computed);
    assert_eq!(paid[0].tokens_served + paid[1].tokens_served, total.tokens_served);
    assert!((paid[0].flops + paid[1].flops - total.flops).abs() <= 1e-6 * total.flops);
    assert!(paid[0].flops > paid[1].flops && paid[1].flops > 0.0);
    // An inner node asked again is recomputed for one token: charged to
    // the path that asked, and not counted as served to it.
    let inner = &base[..base.len() - 3];
    let before = tree.cost();
    let (_, paid) = tree.outputs_paid(&[inner, &a], WantedOutputs::Logits).unwrap();
    let delta = tree.cost().since(&before);
    assert_eq!((paid[0].tokens_computed, paid[0].tokens_served), (1, inner.len() as u64 - 1));
    assert_eq!((paid[1].tokens_computed, paid[1].tokens_served), (0, a.len() as u64));
    assert_eq!(delta.tokens_served, paid[0].tokens_served + paid[1].tokens_served);
}

#[test]
fn shrinking_drops_the_least_recently_used_leaves_first() {
    let model = smollm2();
    let mut tree = PrefixTree::new(&model, TreeOptions::default()).unwrap();
    let base = prompt_tokens();
    let old: Vec<TokenId> = base.iter().copied().chain([1000, 1001, 1002]).collect();
    let new: Vec<TokenId> = base.iter().copied().chain([2000]).collect();
    tree.outputs(&[&old], WantedOutputs::Logits).unwrap();
    tree.outputs(&[&new], WantedOutputs::Logits).unwrap();
    assert_eq!(tree.stats().cached_nodes, base.len() + 4);
    assert_eq!(tree.shrink_to(base.len() + 1), 3);
    assert_eq!(tree.stats().cached_nodes, base.len() + 1);
    // The recent branch is still served whole; the old one is recomputed.
    let before = tree.cost();
    tree.outputs(&[&new], WantedOutputs::Logits).unwrap();
    assert_eq!(tree.cost().since(&before).tokens_computed, 0);
    tree.outputs(&[&old], WantedOutputs::Logits).unwrap();
    assert_eq!(tree.cost().since(&before).tokens_computed, 3);
    assert_eq!(tree.shrink_to(usize::MAX), 0);
}

#[test]
fn an_inner_prompt_node_is_recomputed_for_one_token() {
    let model = smollm2_f32();
    let mut tree = PrefixTree::new(&model, TreeOptions::default()).unwrap();
    let mut fresh = PrefixTree::new(&model, TreeOptions::default()).unwrap();
    let base = prompt_tokens();
    tree.outputs(&[&base], WantedOutputs::Logits).unwrap();
    let before = tree.cost();
    let inner = &base[..base.len() - 3];
    let out = tree.outputs(&[inner], WantedOutputs::Logits).unwrap();
    let delta = tree.cost().since(&before);
    assert_eq!(delta.tokens_computed, 1);
    assert_eq!(delta.tokens_served, inner.len() as u64 - 1);
    assert!(max_abs_diff(out[0].logits.as_deref().unwrap(), &fresh_logits(&mut fresh, inner)) < TOLERANCE);
}

#[test]
fn more_branches_than_llama_sequences_still_work() {
    let model = smollm2_f32();
    let mut tree = PrefixTree::new(&model, TreeOptions { max_cells: 2048, ..TreeOptions::default() }).unwrap();
    let mut fresh = PrefixTree::new(&model, TreeOptions::default()).unwrap();
    let base = prompt_tokens();
    // 300 leaves in one request, then 300 more: beyond llama.cpp's 256 ids.
    for round in 0..2u32 {
        let paths: Vec<Vec<TokenId>> =
            (0..300u32).map(|i| base.iter().copied().chain([300 + i, 5000 + round * 300 + i]).collect()).collect();
        let refs: Vec<&[TokenId]> = paths.iter().map(Vec::as_slice).collect();
        let out = tree.outputs(&refs, WantedOutputs::Logits).unwrap();
        for i in [0usize, 150, 299] {
            let diff = max_abs_diff(out[i].logits.as_deref().unwrap(), &fresh_logits(&mut fresh, &paths[i]));
            assert!(diff < TOLERANCE, "branch {i} of round {round}: {diff}");
        }
    }
    assert!(tree.stats().leaves <= 256);
}

#[test]
fn locked_nodes_survive_eviction_pressure() {
    let model = smollm2();
    let mut tree = PrefixTree::new(&model, TreeOptions { max_cells: 80, ..TreeOptions::default() }).unwrap();
    let base = prompt_tokens();
    let keep: Vec<TokenId> = base.iter().copied().chain([777]).collect();
    tree.outputs(&[&keep], WantedOutputs::Logits).unwrap();
    tree.lock(&keep).unwrap();
    // Flood the small cache with other branches of the same prompt.
    for i in 0..20u32 {
        let other: Vec<TokenId> = base.iter().copied().chain([1000 + i, 2000 + i, 3000 + i]).collect();
        tree.outputs(&[&other], WantedOutputs::Logits).unwrap();
    }
    let before = tree.cost();
    tree.outputs(&[&keep], WantedOutputs::Logits).unwrap();
    assert_eq!(tree.cost().since(&before).tokens_computed, 0, "the locked branch was evicted");
    tree.unlock(&keep).unwrap();
}

#[test]
fn a_cache_too_small_for_the_request_is_a_clear_error() {
    let model = smollm2();
    let mut tree = PrefixTree::new(&model, TreeOptions { max_cells: 32, ..TreeOptions::default() }).unwrap();
    let long: Vec<TokenId> = (0..40).map(|i| 300 + i).collect();
    let err = tree.outputs(&[&long], WantedOutputs::Logits).unwrap_err();
    assert!(matches!(err, EngineError::SequenceTooLong { tokens: 40, .. }), "{err}");
    let a: Vec<TokenId> = (0..20).map(|i| 300 + i).collect();
    let b: Vec<TokenId> = (0..20).map(|i| 600 + i).collect();
    let err = tree.outputs(&[&a, &b], WantedOutputs::Logits).unwrap_err();
    assert!(matches!(err, EngineError::OutOfCells { needed: 40, .. }), "{err}");
    // The tree is still usable afterwards.
    tree.outputs(&[&a], WantedOutputs::Logits).unwrap();
    assert_eq!(tree.stats().cached_nodes, 20);
    // A request that cannot fit even with `a` evicted fails without
    // evicting it.
    let c: Vec<TokenId> = (0..20).map(|i| 900 + i).collect();
    let err = tree.outputs(&[&b, &c], WantedOutputs::Logits).unwrap_err();
    assert!(matches!(err, EngineError::OutOfCells { needed: 40, free: 32 }), "{err}");
    let before = tree.cost();
    tree.outputs(&[&a], WantedOutputs::Logits).unwrap();
    assert_eq!(tree.cost().since(&before).tokens_computed, 0, "a failed request evicted `a`");
}

#[test]
fn bad_tokens_and_empty_sequences_are_rejected() {
    let model = smollm2();
    let mut tree = PrefixTree::new(&model, TreeOptions::default()).unwrap();
    let err = tree.outputs(&[&[]], WantedOutputs::Logits).unwrap_err();
    assert!(matches!(err, EngineError::EmptySequence));
    let err = tree.outputs(&[&[1, 999_999]], WantedOutputs::Logits).unwrap_err();
    assert!(matches!(err, EngineError::TokenOutOfVocabulary { token: 999_999, .. }), "{err}");
}

#[test]
fn hidden_states_are_memoised_and_match_fresh_forwards() {
    let model = smollm2_f32();
    let options = TreeOptions { hidden: HiddenStates::Keep, ..TreeOptions::default() };
    let mut tree = PrefixTree::new(&model, options).unwrap();
    let mut fresh = PrefixTree::new(&model, options).unwrap();
    let base = prompt_tokens();
    let a: Vec<TokenId> = base.iter().copied().chain([1000, 1001]).collect();
    let b: Vec<TokenId> = base.iter().copied().chain([1000, 2002]).collect();
    let out = tree.outputs(&[&a, &b], WantedOutputs::LogitsAndHidden).unwrap();
    for (path, o) in [&a, &b].into_iter().zip(&out) {
        let h = o.hidden.as_deref().unwrap();
        assert_eq!(h.len(), model.shape().d_model as usize);
        let reference = fresh.outputs(&[path], WantedOutputs::Hidden).unwrap();
        fresh.clear();
        assert!(max_abs_diff(h, reference[0].hidden.as_deref().unwrap()) < TOLERANCE);
    }
    let mut logits_only = PrefixTree::new(&model, TreeOptions::default()).unwrap();
    let err = logits_only.outputs(&[&a], WantedOutputs::Hidden).unwrap_err();
    assert!(matches!(err, EngineError::HiddenStatesDisabled));
}

#[test]
fn flops_follow_the_formula_for_each_computed_token() {
    let model = smollm2();
    let shape = *model.shape();
    let mut tree = PrefixTree::new(&model, TreeOptions::default()).unwrap();
    let path: Vec<TokenId> = (0..10).map(|i| 300 + i).collect();
    tree.outputs(&[&path], WantedOutputs::Logits).unwrap();
    // Ten tokens at context lengths 1..=10; only the last row's logits.
    let expected: f64 = (1..=10).map(|l| shape.token_flops(l, l == 10)).sum();
    assert_eq!(tree.cost().flops, expected);
}

#[test]
fn negative_control_a_wrong_context_exceeds_the_tolerance() {
    // What a cache bug looks like: the same last token seen after a context
    // that differs in one earlier token (attending to a sibling branch).
    let model = smollm2_f32();
    let mut fresh = PrefixTree::new(&model, TreeOptions::default()).unwrap();
    let base = prompt_tokens();
    let right: Vec<TokenId> = base.iter().copied().chain([1000, 1001, 1002]).collect();
    let wrong: Vec<TokenId> = base.iter().copied().chain([2000, 1001, 1002]).collect();
    let diff = max_abs_diff(&fresh_logits(&mut fresh, &right), &fresh_logits(&mut fresh, &wrong));
    eprintln!("a one-token context change moves logits by {diff}");
    assert!(diff > 20.0 * TOLERANCE, "a one-token context change moved logits by only {diff}");
}

#[test]
fn memoised_outputs_stay_within_their_budget_and_are_recomputed_on_demand() {
    let model = smollm2_f32();
    let logits_bytes = model.vocab_size() * 4;
    let options = TreeOptions { max_output_bytes: 3 * logits_bytes, ..TreeOptions::default() };
    let mut tree = PrefixTree::new(&model, options).unwrap();
    let mut fresh = PrefixTree::new(&model, TreeOptions::default()).unwrap();
    let mut path = prompt_tokens();
    let first = path.clone();
    tree.outputs(&[&first], WantedOutputs::Logits).unwrap();
    for i in 0..8 {
        path.push(400 + i);
        tree.outputs(&[&path], WantedOutputs::Logits).unwrap();
        assert!(tree.stats().output_bytes <= 3 * logits_bytes);
    }
    assert_eq!(tree.stats().nodes_with_logits, 3);
    // The first node's logits were dropped, its KV cell kept: one token.
    let before = tree.cost();
    let again = tree.outputs(&[&first], WantedOutputs::Logits).unwrap();
    assert_eq!(tree.cost().since(&before).tokens_computed, 1);
    let diff = max_abs_diff(again[0].logits.as_deref().unwrap(), &fresh_logits(&mut fresh, &first));
    assert!(diff < TOLERANCE, "{diff}");
}

/// `keep_only` leaves exactly the kept path cached, and what follows it is
/// computed as it would be on a fresh tree.
#[test]
fn keeping_only_a_shared_prefix_drops_the_rest_and_keeps_its_cells_right() {
    let model = smollm2_f32();
    let mut tree = PrefixTree::new(&model, TreeOptions::default()).unwrap();
    let mut fresh = PrefixTree::new(&model, TreeOptions::default()).unwrap();
    let prefix = prompt_tokens();
    let paths: Vec<Vec<TokenId>> =
        [[11u32, 12, 13], [11, 14, 15], [16, 17, 18]].iter().map(|tail| [&prefix[..], tail].concat()).collect();
    let refs: Vec<&[TokenId]> = paths.iter().map(Vec::as_slice).collect();
    tree.outputs(&refs, WantedOutputs::Logits).unwrap();
    assert_eq!(tree.stats().cached_nodes, prefix.len() + 8);
    let dropped = tree.keep_only(&prefix).unwrap();
    assert_eq!(dropped, 8, "the 8 nodes after the prefix");
    assert_eq!((tree.stats().cached_nodes, tree.stats().leaves), (prefix.len(), 1));
    let served = tree.cost().tokens_served;
    let next = [&prefix[..], &[19, 20]].concat();
    let got = tree.outputs(&[&next], WantedOutputs::Logits).unwrap()[0].logits.as_deref().unwrap().to_vec();
    assert_eq!(tree.cost().tokens_served - served, prefix.len() as u64, "the prefix is served from the cache");
    assert!(max_abs_diff(&got, &fresh_logits(&mut fresh, &next)) < TOLERANCE);
    assert!(matches!(tree.keep_only(&[99, 98]), Err(EngineError::UnknownNode)));
}
