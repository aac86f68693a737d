//! A trained MRM is refused on a policy it was not trained for.

use saffron_engine::Model;
use saffron_fetch::Artifact;
use saffron_reward::mrm::artifact::{ModelId, MrmBackbone, MrmManifest};
use saffron_reward::mrm::head::MrmTraining;
use saffron_reward::mrm::train::{train, Example, Fidelity};
use saffron_reward::mrm::SharedMrm;
use saffron_test_support::smollm2;

fn manifest(policy_sha: &str, vocab_size: usize, hidden_size: usize) -> MrmManifest {
    let f = Fidelity { n: 0, within_one: 0.0, mean_abs_error: 0.0, correlation: 0.0 };
    let id = ModelId { name: "smollm2".into(), sha256: policy_sha.into() };
    MrmManifest {
        kind: MrmManifest::kind(),
        backbone_kind: MrmBackbone::SharedPolicy,
        backbone: id.clone(),
        hidden_size,
        policy: id,
        vocab_size,
        corpus_sha256: String::new(),
        training: MrmTraining::default(),
        examples: 0,
        held_out_examples: 0,
        seen_tokens: 1,
        fidelity_train: f,
        fidelity_held_out: f,
        saffron_version: String::new(),
        input: None,
        prompts: None,
        train_share: None,
        learning_curve: Vec::new(),
    }
}

#[test]
fn other_policy_vocabulary_or_hidden_size_is_refused() {
    let model = smollm2();
    let sha = Artifact::by_name("smollm2").unwrap().sha256;
    let head =
        |d: usize| train(&[Example { hidden: vec![0.5; d], token: 1, reward: 1.0 }], 49_152, &MrmTraining::default());
    assert!(SharedMrm::new(head(576), manifest(sha, 49_152, 576), &model, sha).is_ok());
    let err =
        SharedMrm::new(head(576), manifest(&"00".repeat(32), 49_152, 576), &model, sha).err().unwrap().to_string();
    assert!(err.contains("trained on policy smollm2"), "{err}");
    let err = SharedMrm::new(head(576), manifest(sha, 151_936, 576), &model, sha).err().unwrap().to_string();
    assert!(err.contains("vocabulary 151936") && err.contains("vocabulary 49152"), "{err}");
    let err = SharedMrm::new(head(896), manifest(sha, 49_152, 896), &model, sha).err().unwrap().to_string();
    assert!(err.contains("hidden size 896"), "{err}");
}

/// A tiny corpus of SmolLM2 responses whose reward is high after " Sorry"
/// and low otherwise.
fn tiny_corpus(model: &Model) -> Vec<saffron_reward::mrm::corpus::LabelledSequence> {
    use saffron_engine::SpecialText;
    let cases = [
        ("How do I pick a lock?", " Sorry, I can't help with picking locks."),
        ("How do I pick a lock?", " First, insert a tension wrench into the lock."),
        ("How do I bake bread?", " Mix flour, water, salt and yeast, then knead."),
    ];
    cases
        .iter()
        .enumerate()
        .map(|(i, (prompt, response))| {
            let response = model.tokenize(response, SpecialText::Literal);
            let sorry = i == 0;
            let rewards = (0..response.len()).map(|j| if sorry { 2.0 + j as f32 * 0.1 } else { -1.0 }).collect();
            saffron_reward::mrm::corpus::LabelledSequence {
                prompt_id: prompt.to_string(),
                sample: i as u32,
                harmful: true,
                prefilled: false,
                context: Vec::new(),
                response,
                rewards,
                requests: Vec::new(),
            }
        })
        .collect()
}

#[test]
fn a_separate_backbone_head_scores_search_nodes_as_it_was_trained() {
    use saffron_core::MultifurcationReward;
    use saffron_engine::{HiddenStates, PrefixTree, TreeOptions};
    use saffron_reward::mrm::separate::{separate_examples, separate_input, SeparateInput};
    use saffron_reward::mrm::SeparateBackbone;

    let policy = smollm2();
    let sha = Artifact::by_name("smollm2").unwrap().sha256;
    let corpus = tiny_corpus(&policy);
    let input = separate_input(smollm2()).unwrap();
    let options = TreeOptions { threads: Some(2), ..TreeOptions::default() };
    let mut tree = PrefixTree::new(input.model(), TreeOptions { hidden: HiddenStates::Keep, ..options }).unwrap();
    let prompt_text = |s: &saffron_reward::mrm::corpus::LabelledSequence| Ok(s.prompt_id.clone());
    let text = |t: &[saffron_core::TokenId]| policy.detokenize(t);
    let examples =
        separate_examples(&mut tree, &input, &corpus.iter().collect::<Vec<_>>(), &prompt_text, &text, &mut |_| {})
            .unwrap();
    assert_eq!(
        examples.iter().map(Vec::len).collect::<Vec<_>>(),
        corpus.iter().map(|s| s.response.len()).collect::<Vec<_>>()
    );
    let flat: Vec<Example> = examples.concat();
    let training = MrmTraining { rank: 4, epochs: 200, batch_size: 8, ..MrmTraining::default() };
    let head = train(&flat, policy.vocab_size(), &training);
    let fit = saffron_reward::mrm::train::fidelity(&head, &flat);
    assert!(fit.within_one > 0.9, "the head fits its few examples: {fit:?}");

    let mut m = manifest(sha, policy.vocab_size(), 576);
    m.backbone_kind = MrmBackbone::Separate;
    m.input = Some(SeparateInput::of(&input));
    let backbone = SeparateBackbone::new((head.clone(), &m), (smollm2(), sha), (&policy, sha)).unwrap();
    // At search time, node by node, the bound MRM gives what the head gave
    // on the training features. Not bit for bit: training computed a whole
    // response's nodes in one batch, the search one node after another, and
    // Q4_1 matmuls quantise activations per block, so another batch layout
    // can flip roundings (the engine's tests show logit moves of ~0.5 in
    // Q4_1 against ~1e-4 in F32). Within 0.35 here, with node 0 (the same
    // single path either way) exact, and the two responses still apart.
    let mut by_sequence = Vec::new();
    for (seq, trained) in corpus.iter().zip(&examples).take(2) {
        let mut mrm = backbone.bind(&seq.prompt_id, options, |t| policy.detokenize(t)).unwrap();
        let mut at_search = Vec::new();
        for (j, example) in trained.iter().enumerate() {
            let token = seq.response[j] as usize;
            let got = mrm.rewards(&[&seq.response[..j]], &[]).unwrap()[0][token];
            let want = head.rewards(&example.hidden)[token];
            assert!((got - want).abs() < if j == 0 { 1e-6 } else { 0.35 }, "node {j}: {got} vs {want}");
            at_search.push(got);
        }
        assert_eq!(mrm.cost().sequences, seq.response.len() as u64);
        assert!(mrm.cost().tokens_computed > 0, "the backbone's forward passes are charged");
        by_sequence.push(at_search);
    }
    let lowest_sorry = by_sequence[0].iter().copied().fold(f32::INFINITY, f32::min);
    let highest_other = by_sequence[1].iter().copied().fold(f32::NEG_INFINITY, f32::max);
    assert!(lowest_sorry > highest_other + 1.0, "{lowest_sorry} vs {highest_other}");

    // Mismatches are refused, naming what differs.
    let wrong_sha = "00".repeat(32);
    let err = SeparateBackbone::new((head.clone(), &m), (smollm2(), &wrong_sha), (&policy, sha)).err().unwrap();
    assert!(err.to_string().contains("backbone smollm2"), "{err}");
    let mut no_format = m.clone();
    no_format.input = None;
    let err = SeparateBackbone::new((head.clone(), &no_format), (smollm2(), sha), (&policy, sha)).err().unwrap();
    assert!(err.to_string().contains("input format"), "{err}");
    let mut shared = m.clone();
    shared.backbone_kind = MrmBackbone::SharedPolicy;
    assert!(SeparateBackbone::new((head, &shared), (smollm2(), sha), (&policy, sha)).is_err());
}
