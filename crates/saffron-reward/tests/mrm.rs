//! A trained MRM is refused on a policy it was not trained for.

use saffron_engine::Model;
use saffron_fetch::Artifact;
use saffron_reward::mrm::artifact::{ModelId, MrmBackbone, MrmManifest};
use saffron_reward::mrm::head::MrmTraining;
use saffron_reward::mrm::train::{train, Example, Fidelity};
use saffron_reward::mrm::SharedMrm;

fn smollm2() -> Model {
    let home = saffron_fetch::saffron_home();
    let model_ref = saffron_fetch::resolve_model("smollm2", &home).expect("tests need `saffron fetch --only smollm2`");
    Model::load(model_ref.path()).expect("the cached model loads")
}

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
