use std::collections::BTreeSet;
use std::path::Path;

use anyhow::{bail, Context};
use rand::seq::SliceRandom;
use rand::SeedableRng;
use saffron_engine::{HiddenStates, PrefixTree, TreeOptions};
use saffron_reward::mrm::artifact::{self, ModelId, MrmBackbone, MrmManifest};
use saffron_reward::mrm::corpus::read_corpus;
use saffron_reward::mrm::features::policy_examples;
use saffron_reward::mrm::head::MrmTraining;
use saffron_reward::mrm::train::{fidelity, train, Example};

use crate::cli::{ModelArgs, TrainMrmArgs};
use crate::progress::count_bar;

pub fn run(home: &Path, args: &TrainMrmArgs) -> anyhow::Result<()> {
    if !(0.0..1.0).contains(&args.held_out) {
        bail!("--held-out must be in [0, 1)");
    }
    let corpus_path = args.corpus.clone().unwrap_or_else(|| home.join("corpus").join(format!("{}.jsonl", args.policy)));
    let corpus = read_corpus(&corpus_path)
        .with_context(|| format!("reading the corpus (make one with `saffron label --policy {}`)", args.policy))?;
    let policy_sha = super::guard::model_sha256(home, &args.policy)?;
    if corpus.header.policy_sha256 != policy_sha {
        bail!(
            "{} was sampled from {} (sha256 {}), not from --policy {} (sha256 {policy_sha})",
            corpus_path.display(),
            corpus.header.policy,
            corpus.header.policy_sha256,
            args.policy
        );
    }
    let (policy, _) = super::load_model(home, &ModelArgs { model: args.policy.clone(), threads: args.threads })?;
    // Held-out prompts (all attacks and samples of a prompt on one side).
    let prompt_of = |id: &str| id.split('#').next().unwrap_or(id).to_owned();
    let mut prompts: Vec<String> =
        corpus.sequences.iter().map(|s| prompt_of(&s.prompt_id)).collect::<BTreeSet<_>>().into_iter().collect();
    prompts.shuffle(&mut rand_chacha::ChaCha8Rng::seed_from_u64(args.seed));
    let held: BTreeSet<String> =
        prompts.iter().take((prompts.len() as f64 * args.held_out).round() as usize).cloned().collect();

    let mut tree = PrefixTree::new(
        &policy,
        TreeOptions { hidden: HiddenStates::Keep, threads: args.threads, ..TreeOptions::default() },
    )?;
    eprintln!(
        "training an MRM on {} ({} responses, {} labels; {} of {} prompts held out)",
        policy.name(),
        corpus.sequences.len(),
        corpus.labels(),
        held.len(),
        prompts.len()
    );
    let bar = count_bar("features", corpus.sequences.len() as u64);
    let examples = policy_examples(&mut tree, &corpus.sequences, &mut |done| bar.set_position(done as u64))?;
    bar.finish_and_clear();
    let (mut train_set, mut held_set): (Vec<Example>, Vec<Example>) = (Vec::new(), Vec::new());
    for (seq, ex) in corpus.sequences.iter().zip(examples) {
        if held.contains(&prompt_of(&seq.prompt_id)) {
            held_set.extend(ex)
        } else {
            train_set.extend(ex)
        }
    }
    let training = MrmTraining { rank: args.rank, epochs: args.epochs, seed: args.seed, ..MrmTraining::default() };
    let head = train(&train_set, policy.vocab_size(), &training);
    let (fit, held_fit) = (fidelity(&head, &train_set), fidelity(&head, &held_set));
    let corpus_sha = saffron_fetch::sha256_file(&corpus_path)?;
    let manifest = MrmManifest {
        kind: MrmManifest::kind(),
        backbone_kind: MrmBackbone::SharedPolicy,
        backbone: ModelId { name: args.policy.clone(), sha256: policy_sha.clone() },
        hidden_size: head.dim(),
        policy: ModelId { name: args.policy.clone(), sha256: policy_sha },
        vocab_size: policy.vocab_size(),
        corpus_sha256: corpus_sha,
        training,
        examples: train_set.len(),
        held_out_examples: held_set.len(),
        seen_tokens: head.seen.len(),
        fidelity_train: fit,
        fidelity_held_out: held_fit,
        saffron_version: env!("CARGO_PKG_VERSION").into(),
    };
    let out = args.out.clone().unwrap_or_else(|| home.join("mrm").join(format!("{}-shared", args.policy)));
    artifact::save(&out, &head, &manifest)?;
    println!("{:<10} {:>8} {:>10} {:>6} {:>12}", "split", "labels", "|M-R|<=1", "MAE", "correlation");
    for (name, f) in [("train", fit), ("held-out", held_fit)] {
        println!("{name:<10} {:>8} {:>10.3} {:>6.2} {:>12.3}", f.n, f.within_one, f.mean_abs_error, f.correlation);
    }
    println!("{} of {} tokens seen (the rest are masked); wrote {}", head.seen.len(), head.vocab_size, out.display());
    Ok(())
}
