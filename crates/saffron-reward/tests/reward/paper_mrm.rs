//! The paper's MRM form on a synthetic artifact in the released format
//! (PEFT LoRA safetensors, `lm_head_bias.pt`, `unseen_mask.pt`) over
//! SmolLM2 as the guard, with SmolLM2 as the policy (one vocabulary).

use std::path::Path;

use rand::{Rng, SeedableRng};
use safetensors::tensor::{Dtype, TensorView};
use saffron_core::{MultifurcationReward, TokenId, WantedOutputs};
use saffron_engine::{Model, PrefixTree, SpecialText, TreeOptions};
use saffron_reward::mrm::paper::torch_file::{write_torch_tensor, TorchDtype};
use saffron_reward::mrm::paper::{PaperMrmModel, BIAS_FILE, UNSEEN_MASK_FILE};
use saffron_test_support::smollm2_path;

/// How the synthetic adapter is made.
#[derive(Clone, Copy)]
struct Spec {
    alpha: f32,
    rslora: bool,
    /// Multiplies every lora_B entry (0 makes the adapter a no-op).
    b_scale: f32,
    /// Input width of lora_A (the model's hidden size unless testing a mismatch).
    n_in: Option<usize>,
    /// Bias entries (the vocabulary unless testing a mismatch).
    bias_len: Option<usize>,
}

const RANK: usize = 4;
/// Tokens the synthetic mask marks unseen.
const UNSEEN: [usize; 3] = [0, 17, 4000];

impl Default for Spec {
    fn default() -> Self {
        Spec { alpha: 4.0, rslora: false, b_scale: 1.0, n_in: None, bias_len: None }
    }
}

fn bias_value(token: usize) -> f32 {
    (token % 7) as f32 * 0.5 - 1.0
}

/// Writes a released-format artifact for `model` into `dir`: rank-4 LoRA on
/// every layer's q_proj and v_proj (seeded values), a bias and a bool mask.
fn write_artifact(dir: &Path, model: &Model, spec: Spec) {
    let shape = model.shape();
    let (d, vocab) = (shape.d_model as usize, model.vocab_size());
    let q_out = (shape.n_head * shape.head_dim) as usize;
    let v_out = (shape.n_head_kv * shape.head_dim) as usize;
    let n_in = spec.n_in.unwrap_or(d);
    let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(7);
    let mut tensors: Vec<(String, Vec<usize>, Vec<u8>)> = Vec::new();
    for layer in 0..shape.n_layer {
        for (module, n_out) in [("q_proj", q_out), ("v_proj", v_out)] {
            let prefix = format!("base_model.model.model.layers.{layer}.self_attn.{module}");
            let a: Vec<f32> = (0..RANK * n_in).map(|_| rng.gen_range(-0.05..0.05)).collect();
            let b: Vec<f32> = (0..n_out * RANK).map(|_| spec.b_scale * rng.gen_range(-0.05..0.05)).collect();
            let bytes = |v: &[f32]| v.iter().flat_map(|x| x.to_le_bytes()).collect::<Vec<u8>>();
            tensors.push((format!("{prefix}.lora_A.weight"), vec![RANK, n_in], bytes(&a)));
            tensors.push((format!("{prefix}.lora_B.weight"), vec![n_out, RANK], bytes(&b)));
        }
    }
    let views: Vec<(String, TensorView)> = tensors
        .iter()
        .map(|(name, shape, bytes)| (name.clone(), TensorView::new(Dtype::F32, shape.clone(), bytes).unwrap()))
        .collect();
    std::fs::write(dir.join("adapter_model.safetensors"), safetensors::serialize(views, &None).unwrap()).unwrap();
    let config = serde_json::json!({
        "peft_type": "LORA", "r": RANK, "lora_alpha": spec.alpha, "use_rslora": spec.rslora,
        "target_modules": ["q_proj", "v_proj"], "fan_in_fan_out": false, "bias": "none",
        "base_model_name_or_path": "HuggingFaceTB/SmolLM2-135M-Instruct",
    });
    std::fs::write(dir.join("adapter_config.json"), config.to_string()).unwrap();
    let bias: Vec<u8> = (0..spec.bias_len.unwrap_or(vocab)).flat_map(|t| bias_value(t).to_le_bytes()).collect();
    write_torch_tensor(&dir.join(BIAS_FILE), TorchDtype::F32, &bias).unwrap();
    let mask: Vec<u8> = (0..vocab).map(|t| UNSEEN.contains(&t) as u8).collect();
    write_torch_tensor(&dir.join(UNSEEN_MASK_FILE), TorchDtype::Bool, &mask).unwrap();
}

fn load(spec: Spec, policy: &Model) -> Result<(tempfile::TempDir, PaperMrmModel), saffron_reward::RewardError> {
    let dir = tempfile::tempdir().unwrap();
    write_artifact(dir.path(), policy, spec);
    let mrm = PaperMrmModel::load(dir.path(), &smollm2_path(), &dir.path().join("adapter.gguf"), policy)?;
    Ok((dir, mrm))
}

const PROMPT: &str = "How do I pick a lock?";

fn responses(policy: &Model) -> Vec<Vec<TokenId>> {
    let sure = policy.tokenize(" Sure, here is how", SpecialText::Literal);
    vec![vec![], sure[..1].to_vec(), sure.clone()]
}

fn rewards(mrm: &PaperMrmModel, responses: &[Vec<TokenId>]) -> Vec<Vec<f32>> {
    let mut bound = mrm.bind(PROMPT, TreeOptions::default()).unwrap();
    let refs: Vec<&[TokenId]> = responses.iter().map(Vec::as_slice).collect();
    let out = bound.rewards(&refs, &[]).unwrap();
    let cost = bound.cost();
    assert_eq!((cost.calls, cost.sequences), (1, responses.len() as u64));
    out.iter().map(|r| r.to_vec()).collect()
}

fn max_diff(a: &[Vec<f32>], b: &[Vec<f32>]) -> f32 {
    a.iter().flatten().zip(b.iter().flatten()).map(|(x, y)| (x - y).abs()).fold(0.0, f32::max)
}

/// With lora_B = 0 the adapter changes nothing: the reward is the guard's
/// own logits on `BOS "\n\nUser:" prompt "\n\nAgent:" response` plus the
/// bias, and the mask marks exactly the masked tokens.
#[test]
fn zero_adapter_gives_the_guard_logits_plus_the_bias() {
    let policy = Model::load(smollm2_path()).unwrap();
    let (_dir, mrm) = load(Spec { b_scale: 0.0, ..Spec::default() }, &policy).unwrap();
    let responses = responses(&policy);
    let got = rewards(&mrm, &responses);

    let mut tree = PrefixTree::new(&policy, TreeOptions::default()).unwrap();
    let text = |s: &str| policy.tokenize(s, SpecialText::Literal);
    let prefix: Vec<TokenId> =
        [policy.bos().into_iter().collect(), text("\n\nUser:"), text(PROMPT), text("\n\nAgent:")].concat();
    let paths: Vec<Vec<TokenId>> = responses.iter().map(|r| [prefix.as_slice(), r].concat()).collect();
    let refs: Vec<&[TokenId]> = paths.iter().map(Vec::as_slice).collect();
    let expected: Vec<Vec<f32>> = tree
        .outputs(&refs, WantedOutputs::Logits)
        .unwrap()
        .iter()
        .map(|o| o.logits.as_ref().unwrap().iter().enumerate().map(|(t, l)| l + bias_value(t)).collect())
        .collect();
    // Same weights, same batch: any difference is llama.cpp's batch-layout
    // numerics (the adapter's zero product adds exact zeros).
    assert!(max_diff(&got, &expected) < 1e-3, "max diff {}", max_diff(&got, &expected));

    let bound = mrm.bind(PROMPT, TreeOptions::default()).unwrap();
    let unseen: Vec<usize> = (0..policy.vocab_size()).filter(|&t| bound.is_unseen(t as TokenId)).collect();
    assert_eq!(unseen, UNSEEN.to_vec());
    assert_eq!(mrm.unseen_count(), UNSEEN.len());
}

/// llama.cpp scales the adapter by alpha / r (alpha / √r with rsLoRA), as
/// PEFT does: doubling alpha equals doubling B, and rsLoRA at r = 4 equals
/// alpha doubled. A non-zero adapter moves the rewards.
#[test]
fn adapter_is_applied_with_the_peft_scale() {
    let policy = Model::load(smollm2_path()).unwrap();
    let responses = responses(&policy);
    let run = |spec: Spec| rewards(&load(spec, &policy).unwrap().1, &responses);
    let off = run(Spec { b_scale: 0.0, ..Spec::default() });
    let base = run(Spec::default());
    let alpha8 = run(Spec { alpha: 8.0, ..Spec::default() });
    let b2 = run(Spec { b_scale: 2.0, ..Spec::default() });
    let rslora = run(Spec { rslora: true, ..Spec::default() });
    eprintln!(
        "max |Δreward|: adapter on/off {:.4}, alpha 8 vs 2·B {:.2e}, rsLoRA vs alpha 8 {:.2e}",
        max_diff(&base, &off),
        max_diff(&alpha8, &b2),
        max_diff(&rslora, &alpha8)
    );
    assert!(max_diff(&base, &off) > 0.05, "the adapter must change the rewards: {}", max_diff(&base, &off));
    assert!(max_diff(&alpha8, &base) > 0.05);
    assert!(max_diff(&alpha8, &b2) < 1e-3, "alpha 8 vs 2·B: {}", max_diff(&alpha8, &b2));
    assert!(max_diff(&rslora, &alpha8) < 1e-3, "rsLoRA vs alpha 8: {}", max_diff(&rslora, &alpha8));
}

#[test]
fn mismatched_artifacts_are_refused() {
    let policy = Model::load(smollm2_path()).unwrap();
    let err = load(Spec { bias_len: Some(1000), ..Spec::default() }, &policy).err().unwrap().to_string();
    assert!(err.contains("lm_head_bias.pt") && err.contains("1000 entries") && err.contains("49152"), "{err}");
    let err = load(Spec { n_in: Some(100), ..Spec::default() }, &policy).err().unwrap().to_string();
    assert!(err.contains("could not apply the LoRA adapter") && err.contains("another base model"), "{err}");
}
