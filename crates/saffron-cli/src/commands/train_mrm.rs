use std::collections::HashMap;
use std::path::Path;

use anyhow::{bail, Context};
use saffron_core::{Split, TrainedPrompts};
use saffron_engine::TreeOptions;
use saffron_eval::corpus_texts;
use saffron_eval::splits::{trained_on, Universe};
use saffron_reward::mrm::artifact;
use saffron_reward::mrm::corpus::{read_corpus, Corpus};
use saffron_reward::mrm::fit::{fit, CorpusInput, FitSettings};
use saffron_reward::mrm::head::MrmTraining;
use saffron_reward::mrm::train::Fidelity;
use saffron_reward::Loader;

use crate::cli::TrainMrmArgs;
use crate::progress::count_bar;

pub fn run(home: &Path, args: &TrainMrmArgs) -> anyhow::Result<()> {
    if !(0.0..1.0).contains(&args.held_out) {
        bail!("--held-out must be in [0, 1)");
    }
    if !(args.train_share > 0.0 && args.train_share <= 1.0) {
        bail!("--train-share must be in (0, 1]");
    }
    if let Some(bad) = args.curve.iter().find(|&&s| !(s > 0.0 && s < args.train_share)) {
        bail!("--curve share {bad} is not in (0, {}): each point must be smaller than --train-share", args.train_share);
    }
    let path = args.corpus.clone().unwrap_or_else(|| home.join("corpus").join(format!("{}.jsonl", args.policy)));
    let corpus = read_corpus(&path)
        .with_context(|| format!("reading the corpus (make one with `saffron label --policy {}`)", args.policy))?;
    let input = CorpusInput { corpus: &corpus, sha256: saffron_fetch::sha256_file(&path)?, path: &path };
    // The prompts' texts: for the record, and for a separate backbone to read.
    let texts = corpus_texts(&corpus.sequences, home)?;
    let trained = corpus_prompts(home, &corpus, &texts, &path)?;
    let loader = Loader::new(home);
    let policy = loader.model(&args.policy)?;
    let backbone = args.backbone.as_deref().map(|b| loader.model(b)).transpose()?;
    let training = MrmTraining { rank: args.rank, epochs: args.epochs, seed: args.seed, ..MrmTraining::default() };
    let options = TreeOptions { threads: args.threads, ..TreeOptions::default() };
    let settings = FitSettings {
        held_out: args.held_out,
        train_share: args.train_share,
        curve: args.curve.clone(),
        training,
        options,
    };
    let on = backbone.as_ref().map_or(policy.spec(), |b| b.spec());
    eprintln!(
        "training an MRM for {} on {on} ({} responses, {} labels)",
        policy.spec(),
        corpus.sequences.len(),
        corpus.labels()
    );
    let started = std::time::Instant::now();
    let bar = count_bar("features", 0);
    let text = |id: &str| texts.get(id).cloned();
    let (head, mut manifest) = fit(&input, &policy, backbone.as_ref(), &text, &settings, &mut |done, total| {
        bar.set_length(total as u64);
        bar.set_position(done as u64)
    })?;
    bar.finish_and_clear();
    eprintln!("features and fits took {:.0} s", started.elapsed().as_secs_f64());
    let default_dir = match &args.backbone {
        None => format!("{}-shared", args.policy),
        Some(b) => format!("{}-on-{}", args.policy, model_slug(b)),
    };
    let out = args.out.clone().unwrap_or_else(|| home.join("mrm").join(default_dir));
    manifest.prompts = Some(trained);
    artifact::save(&out, &head, &manifest)?;
    let row = |name: &str, f: &Fidelity| {
        println!("{name:<18} {:>8} {:>10.3} {:>6.2} {:>12.3}", f.n, f.within_one, f.mean_abs_error, f.correlation)
    };
    println!("{:<18} {:>8} {:>10} {:>6} {:>12}", "split", "labels", "|M-R|<=1", "MAE", "correlation");
    for point in &manifest.learning_curve {
        row(&format!("train @ {}", point.train_share), &point.fidelity_train);
        row(&format!("held-out @ {}", point.train_share), &point.fidelity_held_out);
    }
    let share = if manifest.learning_curve.is_empty() { String::new() } else { format!(" @ {}", args.train_share) };
    row(&format!("train{share}"), &manifest.fidelity_train);
    row(&format!("held-out{share}"), &manifest.fidelity_held_out);
    println!("{} of {} tokens seen (the rest are masked); wrote {}", head.seen.len(), head.vocab_size, out.display());
    Ok(())
}

/// The corpus' prompts as the MRM's record; a corpus holding a prompt
/// outside the train split (labelled before splits existed) is refused.
fn corpus_prompts(
    home: &Path,
    corpus: &Corpus,
    texts: &HashMap<String, String>,
    path: &Path,
) -> anyhow::Result<TrainedPrompts> {
    let universe = Universe::load(home)?;
    let mut seen = Vec::new();
    for sequence in &corpus.sequences {
        if sequence.requests.is_empty() {
            let id = sequence.prompt();
            let text = texts.get(id).with_context(|| format!("{}: no prompt `{id}` in its set", path.display()))?;
            seen.push(text.as_str());
        } else {
            // A conversation: the policy read every request in it.
            seen.extend(sequence.requests.iter().map(String::as_str));
        }
    }
    let outside = seen.iter().filter(|t| universe.lookup(t).split != Split::Train).count();
    if outside > 0 {
        bail!(
            "{}: {outside} of the {} requests its responses answer are outside the train split (it was labelled \
             before splits existed?); label a new corpus with `saffron label`, which reads the train split",
            path.display(),
            seen.len()
        );
    }
    Ok(trained_on(&universe, [Split::Train], seen))
}

/// A model name or a GGUF path as a directory name part.
fn model_slug(model: &str) -> String {
    let stem = Path::new(model).file_stem().map_or(model.into(), |s| s.to_string_lossy().into_owned());
    stem.chars().map(|c| if c.is_ascii_alphanumeric() || c == '-' { c } else { '_' }).collect()
}
