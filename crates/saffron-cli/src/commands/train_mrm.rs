use std::collections::{BTreeSet, HashMap};
use std::path::Path;

use anyhow::{bail, Context};
use rand::seq::SliceRandom;
use rand::SeedableRng;
use saffron_engine::{HiddenStates, PrefixTree, TreeOptions};
use saffron_eval::load_prompts;
use saffron_reward::mrm::artifact::{self, ModelId, MrmBackbone, MrmManifest};
use saffron_reward::mrm::corpus::{read_corpus, LabelledSequence};
use saffron_reward::mrm::features::policy_examples;
use saffron_reward::mrm::head::MrmTraining;
use saffron_reward::mrm::separate::{separate_examples, separate_input, SeparateInput};
use saffron_reward::mrm::train::{fidelity, train, Example};
use saffron_reward::RewardError;

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

    let options = TreeOptions { hidden: HiddenStates::Keep, threads: args.threads, ..TreeOptions::default() };
    let separate = match &args.backbone {
        Some(name) => {
            let (backbone, _) = super::load_model(home, &ModelArgs { model: name.clone(), threads: args.threads })?;
            Some((name.clone(), super::guard::model_sha256(home, name)?, separate_input(backbone)?))
        }
        None => None,
    };
    eprintln!(
        "training an MRM for {} on {} ({} responses, {} labels; {} of {} prompts held out)",
        policy.name(),
        separate.as_ref().map_or(policy.name(), |(_, _, input)| input.model().name()),
        corpus.sequences.len(),
        corpus.labels(),
        held.len(),
        prompts.len()
    );
    let bar = count_bar("features", corpus.sequences.len() as u64);
    let mut progress = |done: usize| bar.set_position(done as u64);
    let examples = match &separate {
        None => policy_examples(&mut PrefixTree::new(&policy, options)?, &corpus.sequences, &mut progress)?,
        Some((_, _, input)) => {
            let texts = prompt_texts(home, &corpus.sequences)?;
            let prompt_text = |seq: &LabelledSequence| -> Result<String, RewardError> {
                let id = prompt_of(&seq.prompt_id);
                texts.get(&id).cloned().ok_or_else(|| RewardError::Data {
                    file: corpus_path.display().to_string(),
                    detail: format!("no prompt text for `{id}` in its prompt set"),
                })
            };
            let mut tree = PrefixTree::new(input.model(), options)?;
            let text = |t: &[saffron_core::TokenId]| policy.detokenize(t);
            separate_examples(&mut tree, input, &corpus.sequences, &prompt_text, &text, &mut progress)?
        }
    };
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
    let (backbone_kind, backbone, input) = match &separate {
        None => (MrmBackbone::SharedPolicy, ModelId { name: args.policy.clone(), sha256: policy_sha.clone() }, None),
        Some((name, sha, input)) => {
            (MrmBackbone::Separate, ModelId { name: name.clone(), sha256: sha.clone() }, Some(SeparateInput::of(input)))
        }
    };
    let manifest = MrmManifest {
        kind: MrmManifest::kind(),
        backbone_kind,
        backbone,
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
        input,
    };
    let default_dir = match &args.backbone {
        None => format!("{}-shared", args.policy),
        Some(b) => format!("{}-on-{}", args.policy, model_slug(b)),
    };
    let out = args.out.clone().unwrap_or_else(|| home.join("mrm").join(default_dir));
    artifact::save(&out, &head, &manifest)?;
    println!("{:<10} {:>8} {:>10} {:>6} {:>12}", "split", "labels", "|M-R|<=1", "MAE", "correlation");
    for (name, f) in [("train", fit), ("held-out", held_fit)] {
        println!("{name:<10} {:>8} {:>10.3} {:>6.2} {:>12.3}", f.n, f.within_one, f.mean_abs_error, f.correlation);
    }
    println!("{} of {} tokens seen (the rest are masked); wrote {}", head.seen.len(), head.vocab_size, out.display());
    Ok(())
}

/// Prompt texts by id (`advbench/17`) for the prompt sets a corpus names.
fn prompt_texts(home: &Path, sequences: &[LabelledSequence]) -> anyhow::Result<HashMap<String, String>> {
    let sets: BTreeSet<&str> = sequences.iter().filter_map(|s| s.prompt_id.split('/').next()).collect();
    let mut texts = HashMap::new();
    for set in sets {
        let prompts = load_prompts(&set.parse()?, home).with_context(|| format!("reading prompt set {set}"))?;
        texts.extend(prompts.prompts.into_iter().map(|p| (p.id, p.prompt)));
    }
    Ok(texts)
}

/// A model name or a GGUF path as a directory name part.
fn model_slug(model: &str) -> String {
    let stem = Path::new(model).file_stem().map_or(model.into(), |s| s.to_string_lossy().into_owned());
    stem.chars().map(|c| if c.is_ascii_alphanumeric() || c == '-' { c } else { '_' }).collect()
}
