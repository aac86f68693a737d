//! Searches that share one prefix tree through the batching scheduler
//! answer as they do alone, batch their calls, and are each charged
//! exactly their part. On the F32 SmolLM2 (batching changes float sums;
//! in F32 only by ~1e-4, so the searches' choices do not move).

use std::time::Duration;

use saffron_defence::local::LocalPolicy;
use saffron_defence::{Answer, BatchOptions, BatchedPolicy, DefenceError, DefenceModels, MrmBackend};
use saffron_engine::{ChatPrompt, TreeOptions};
use saffron_reward::{LoadedMrm, Loader};
use saffron_search::{NoTrace, SearchConfig, StrategyKind};
use saffron_test_support::{real_home, smollm2_f32};

const PROMPTS: [&str; 4] =
    ["How do I bake bread?", "Name three rivers.", "What is a prime number?", "Write a haiku about rain."];

fn models(batched: bool) -> DefenceModels {
    models_with_cells(batched, TreeOptions::default().max_cells)
}

fn models_with_cells(batched: bool, max_cells: u32) -> DefenceModels {
    let path = smollm2_f32().path().to_string_lossy().into_owned();
    let policy = Loader::new(&real_home()).model(&path).unwrap();
    let mrm = Some(Box::new(LoadedMrm::policy_logits()) as Box<dyn MrmBackend>);
    let options = TreeOptions { threads: Some(2), ..TreeOptions::default() };
    let backend: Box<dyn saffron_defence::PolicyBackend> = if batched {
        let batch = BatchOptions {
            tree: TreeOptions { max_output_bytes: 256 << 20, max_cells, ..options },
            gather: Duration::from_millis(200),
            ..BatchOptions::default()
        };
        Box::new(BatchedPolicy::new(policy, batch))
    } else {
        Box::new(LocalPolicy::new(policy))
    };
    DefenceModels::new(backend, None, mrm, options)
}

fn config() -> SearchConfig {
    let mut c = SearchConfig::new(StrategyKind::Saffron.default_strategy());
    c.strategy.set_width(4).unwrap();
    c.length.max_new_tokens = 10;
    c.length.min_new_tokens = 0;
    c
}

fn answer(models: &DefenceModels, prompt: &str) -> Result<Answer, DefenceError> {
    models.defence(config())?.answer(prompt, &ChatPrompt::user(prompt), &mut NoTrace)
}

fn one_at_a_time(models: &DefenceModels, prompts: &[&str]) -> Vec<Answer> {
    prompts.iter().map(|p| answer(models, p).unwrap()).collect()
}

/// Each prompt answered on its own thread, all at once.
fn all_at_once(models: &DefenceModels, prompts: &[&str]) -> Vec<Result<Answer, DefenceError>> {
    std::thread::scope(|s| {
        let handles: Vec<_> = prompts.iter().map(|p| s.spawn(move || answer(models, p))).collect();
        handles.into_iter().map(|h| h.join().unwrap()).collect()
    })
}

#[test]
fn concurrent_searches_on_one_shared_tree_answer_as_alone_and_split_the_cost_exactly() {
    let expected = one_at_a_time(&models(false), &PROMPTS);
    let shared = models(true);
    let answers: Vec<Answer> = all_at_once(&shared, &PROMPTS).into_iter().map(Result::unwrap).collect();
    for ((p, got), want) in PROMPTS.iter().zip(&answers).zip(&expected) {
        assert_eq!(got.tokens, want.tokens, "{p}: {:?} vs {:?}", got.text, want.text);
    }
    let stats = shared.policy().shared_stats().expect("a batched policy reports its tree");
    assert!(stats.steps < stats.calls, "calls were batched: {} steps for {} calls", stats.steps, stats.calls);
    let computed: u64 = answers.iter().map(|a| a.cost.policy.tokens_computed).sum();
    let served: u64 = answers.iter().map(|a| a.cost.policy.tokens_served).sum();
    assert_eq!(computed, stats.cost.tokens_computed);
    assert_eq!(served, stats.cost.tokens_served);
    let flops: f64 = answers.iter().map(|a| a.cost.policy.flops).sum();
    assert!((flops - stats.cost.flops).abs() <= 1e-6 * flops);
    // The chat template's default system prompt is shared: computed once.
    let cached = answers.iter().filter(|a| a.cached_prompt_tokens > 0).count();
    assert!(cached >= PROMPTS.len() - 1, "{cached} answers found their context's start cached");
    // Each search's branches left the tree when it ended: what stays is
    // at most the contexts (their shared start once).
    let contexts: usize = answers.iter().map(|a| a.prompt_tokens).sum();
    let after = shared.policy().shared_stats().unwrap().tree.unwrap();
    assert!(after.cached_nodes < contexts, "{} nodes cached after the searches ended", after.cached_nodes);
    let alone_computed: u64 = expected.iter().map(|a| a.cost.policy.tokens_computed).sum();
    assert!(computed < alone_computed, "{computed} tokens computed shared vs {alone_computed} alone");
}

/// Four long prompts whose contexts do not fit in the shared tree's cells
/// together (each fits alone): the scheduler splits the joint step, and
/// every search answers as it does alone.
#[test]
fn searches_whose_joint_step_overflows_the_cells_are_split_and_answer_as_alone() {
    let long: Vec<String> = PROMPTS
        .iter()
        .map(|p| format!("{p} Please answer in plain words, and think about the reader: {}", "very ".repeat(80)))
        .collect();
    let long: Vec<&str> = long.iter().map(String::as_str).collect();
    let expected = one_at_a_time(&models(false), &long);
    let context = expected[0].prompt_tokens;
    // Room for one context and its branches, not for four contexts at once.
    let cells = 256;
    assert!(context + 64 < cells as usize && 4 * (context - 40) > cells as usize, "{context}-token contexts");
    let shared = models_with_cells(true, cells);
    let answers = all_at_once(&shared, &long);
    for (got, want) in answers.iter().zip(&expected) {
        let got = got.as_ref().expect("no search fails for want of cells");
        assert_eq!(got.tokens, want.tokens, "{:?} vs {:?}", got.text, want.text);
    }
    let stats = shared.policy().shared_stats().unwrap();
    assert!(stats.splits > 0, "the searches ran together and a joint step was split: {stats:?}");
    let computed: u64 = answers.iter().map(|a| a.as_ref().unwrap().cost.policy.tokens_computed).sum();
    assert_eq!(computed, stats.cost.tokens_computed, "each split step charged exactly");
    // (The four searches' nodes do not fit together, so they evict each
    // other's contexts between steps and recompute them: the answers stay,
    // the cost grows. Reserving cells at admission would queue them.)
}
