//! A trained MRM is refused on a policy it was not trained for.

use saffron_engine::Model;
use saffron_fetch::Artifact;
use saffron_reward::mrm::artifact::{ModelId, MrmBackbone, MrmManifest};
use saffron_reward::mrm::head::MrmTraining;
use saffron_reward::mrm::train::{train, Example, Fidelity, ValueTerm};
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
        prm_step_held_out: None,
        value_from: None,
        prompts: None,
        train_share: None,
        learning_curve: Vec::new(),
    }
}

#[test]
fn other_policy_vocabulary_or_hidden_size_is_refused() {
    let model = smollm2();
    let sha = Artifact::by_name("smollm2").unwrap().sha256;
    let head = |d: usize| {
        train(
            &[Example { hidden: vec![0.5; d], token: 1, reward: 1.0 }],
            49_152,
            &MrmTraining::default(),
            ValueTerm::Learned,
        )
    };
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
    use saffron_reward::mrm::separate::{separate_examples, separate_input};
    use saffron_reward::mrm::SeparateBackbone;

    let policy = smollm2();
    let sha = Artifact::by_name("smollm2").unwrap().sha256;
    let corpus = tiny_corpus(&policy);
    let input = separate_input(smollm2()).unwrap();
    let options = TreeOptions { threads: Some(2), ..TreeOptions::default() };
    let mut tree = PrefixTree::new(input.input.model(), TreeOptions { hidden: HiddenStates::Keep, ..options }).unwrap();
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
    let head = train(&flat, policy.vocab_size(), &training, ValueTerm::Learned);
    let fit = saffron_reward::mrm::train::fidelity(&head, &flat);
    assert!(fit.within_one > 0.9, "the head fits its few examples: {fit:?}");

    let mut m = manifest(sha, policy.vocab_size(), 576);
    m.backbone_kind = MrmBackbone::Separate;
    m.input = Some(input.record());
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

/// A hand-made end-of-turn probe guard on SmolLM2: small seeded weights.
fn hand_made_guard() -> saffron_reward::ProbeGuard {
    use saffron_reward::probe::artifact::{Backbone, ProbeManifest};
    use saffron_reward::probe::features::{ProbeInputs, ProbeTail};
    use saffron_reward::probe::head::LinearHead;
    use saffron_reward::{Boundary, GuardFormat, PROBE_GUARD_OPEN_INSTRUCTION};
    let d = 576;
    let weight = (0..d).map(|i| ((i * 37 % 11) as f32 - 5.0) * 0.01).collect();
    let head = LinearHead { mean: vec![0.0; d], scale: vec![1.0; d], weight, bias: 0.3 };
    let sha = Artifact::by_name("smollm2").unwrap().sha256;
    let backbone = Backbone { name: "smollm2".into(), sha256: sha.into(), hidden_size: d };
    let format = (GuardFormat::UserTurn(PROBE_GUARD_OPEN_INSTRUCTION.into()), Boundary::Natural);
    let inputs = ProbeInputs { tail: ProbeTail::EndOfTurn, ..ProbeInputs::default() };
    let manifest = ProbeManifest::new(backbone, format, inputs, crate::probe_guard::empty_record());
    saffron_reward::ProbeGuard::new(head, manifest, smollm2(), sha).unwrap()
}

#[test]
fn an_mrm_on_a_guards_own_state_has_the_guards_reward_as_its_value_and_learns_only_the_token_terms() {
    use saffron_core::MultifurcationReward;
    use saffron_engine::{HiddenStates, PrefixTree, TreeOptions};
    use saffron_reward::mrm::separate::{guard_state_input, separate_examples};
    use saffron_reward::mrm::SeparateBackbone;
    use saffron_reward::Guard;

    let guard = hand_made_guard();
    let policy = smollm2();
    let sha = Artifact::by_name("smollm2").unwrap().sha256;
    let options = TreeOptions { threads: Some(2), hidden: HiddenStates::Keep, ..TreeOptions::default() };
    let corpus = tiny_corpus(&policy);
    // The states the guard reads its rewards from: the same rewards as
    // scoring, and the reward a linear function of the state.
    let texts: Vec<String> =
        (0..=corpus[1].response.len()).map(|j| policy.detokenize(&corpus[1].response[..j])).collect();
    let pairs: Vec<(&str, &str)> = texts.iter().map(|t| (corpus[1].prompt_id.as_str(), t.as_str())).collect();
    let scored = guard.scored_states(&mut PrefixTree::new(guard.model(), options).unwrap(), &pairs).unwrap();
    let rewards = guard.score_pairs(&mut PrefixTree::new(guard.model(), options).unwrap(), &pairs).unwrap();
    assert_eq!(scored.iter().map(|s| s.0).collect::<Vec<_>>(), rewards, "the same batch gives the same rewards");
    let (probe, threshold) = guard.state_value().unwrap();
    for (reward, state) in &scored {
        assert!((threshold - probe.unsafe_logit(state) - reward).abs() < 1e-5);
    }
    assert!(rewards.iter().any(|r| (r - rewards[0]).abs() > 0.01), "the probe reads the response: {rewards:?}");

    // Features of each node (the response before token j), read as the guard reads.
    let node = guard_state_input(&guard).unwrap();
    let mut tree = PrefixTree::new(node.input.model(), options).unwrap();
    let prompt_text = |s: &saffron_reward::mrm::corpus::LabelledSequence| Ok(s.prompt_id.clone());
    let text = |t: &[saffron_core::TokenId]| policy.detokenize(t);
    let sequences: Vec<_> = corpus.iter().collect();
    let examples = separate_examples(&mut tree, &node, &sequences, &prompt_text, &text, &mut |_| {}).unwrap();
    // Node j's state is the one the guard scored the prefix of j tokens from
    // (another batch: close, not bit for bit).
    for (j, example) in examples[1].iter().enumerate() {
        let value = threshold - probe.unsafe_logit(&example.hidden);
        assert!((value - rewards[j]).abs() < 0.1 * rewards[j].abs().max(1.0), "node {j}: {value} vs {}", rewards[j]);
    }
    let flat: Vec<Example> = examples.concat();
    let training = MrmTraining { rank: 4, epochs: 200, batch_size: 8, ..MrmTraining::default() };
    let head = train(&flat, policy.vocab_size(), &training, ValueTerm::Guard { head: probe, threshold });
    // The value stayed the guard's: M(s) − (token terms) = R(s) at every node.
    for example in &flat {
        let value = head.context(&head.standardise(&example.hidden)).value;
        assert!((value - (threshold - probe.unsafe_logit(&example.hidden))).abs() < 1e-3);
    }
    let fit = saffron_reward::mrm::train::fidelity(&head, &flat);
    assert!(fit.within_one > 0.9, "the token terms fit the few examples: {fit:?}");

    // At search time the artifact reads nodes as the guard does.
    let mut m = manifest(sha, policy.vocab_size(), 576);
    m.backbone_kind = MrmBackbone::Separate;
    m.input = Some(node.record());
    assert!(m.input.as_ref().unwrap().read.is_some());
    let backbone = SeparateBackbone::new((head.clone(), &m), (smollm2(), sha), (&policy, sha)).unwrap();
    let mut mrm = backbone.bind(&corpus[1].prompt_id, options, |t| policy.detokenize(t)).unwrap();
    let token = corpus[1].response[0] as usize;
    let at_root = mrm.rewards(&[&[]], &[]).unwrap()[0][token];
    assert!((at_root - head.rewards(&examples[1][0].hidden)[token]).abs() < 1e-5);
}
