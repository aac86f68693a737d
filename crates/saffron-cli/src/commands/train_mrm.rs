use std::collections::HashMap;
use std::path::{Path, PathBuf};

use anyhow::{bail, Context};
use saffron_core::{Split, TrainedPrompts};
use saffron_engine::TreeOptions;
use saffron_eval::corpus_texts;
use saffron_eval::splits::{trained_on, Universe};
use saffron_reward::mrm::artifact;
use saffron_reward::mrm::artifact::ModelId;
use saffron_reward::mrm::corpus::{read_corpus, Corpus};
use saffron_reward::mrm::fit::{fit, CorpusInput, FeatureSource, FitSettings, GuardValue};
use saffron_reward::mrm::head::MrmTraining;
use saffron_reward::mrm::separate::SeparateInput;
use saffron_reward::mrm::states::{read_states, states_path, States};
use saffron_reward::mrm::train::Fidelity;
use saffron_reward::{GuardSpec, LoadedGuard, LoadedModel, Loader, RewardError};

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
    let on_guard = args.on_guard.as_deref().map(|name| load_guard(&loader, name, &path, &args.states)).transpose()?;
    let source = match (&backbone, &on_guard) {
        (Some(b), _) => FeatureSource::Model(b),
        (None, Some(g)) => g.source(args.guard_value)?,
        (None, None) => FeatureSource::Policy,
    };
    let training = MrmTraining {
        rank: args.rank,
        epochs: args.epochs,
        seed: args.seed,
        mlp_width: args.mlp,
        ..MrmTraining::default()
    };
    let options = TreeOptions { threads: args.threads, ..TreeOptions::default() };
    let settings = FitSettings {
        held_out: args.held_out,
        train_share: args.train_share,
        curve: args.curve.clone(),
        training,
        options,
    };
    let on = match (&backbone, &args.on_guard) {
        (Some(b), _) => b.spec().to_owned(),
        (None, Some(g)) => format!("the guard {g}'s own state"),
        (None, None) => policy.spec().to_owned(),
    };
    eprintln!(
        "training an MRM for {} on {on} ({} responses, {} labels)",
        policy.spec(),
        corpus.sequences.len(),
        corpus.labels()
    );
    let started = std::time::Instant::now();
    let bar = count_bar("features", 0);
    let text = |id: &str| texts.get(id).cloned();
    let (head, mut manifest) = fit(&input, &policy, source, &text, &settings, &mut |done, total| {
        bar.set_length(total as u64);
        bar.set_position(done as u64)
    })?;
    bar.finish_and_clear();
    eprintln!("features and fits took {:.0} s", started.elapsed().as_secs_f64());
    let default_dir = match (&args.backbone, &args.on_guard) {
        (Some(b), _) => format!("{}-on-{}", args.policy, model_slug(b)),
        (None, Some(g)) => format!("{}-on-guard-{}", args.policy, model_slug(g)),
        (None, None) => format!("{}-shared", args.policy),
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
    if let Some(step) = &manifest.prm_step_held_out {
        row("held-out R(s)", step);
        println!("(R(s): the PRM's own reward of the node, before the next token; what knowing it exactly gives)");
    }
    println!("{} of {} tokens seen (the rest are masked); wrote {}", head.seen.len(), head.vocab_size, out.display());
    Ok(())
}

/// A probe guard with its backbone and the states kept for its corpus.
struct OnGuard {
    guard: LoadedGuard,
    id: ModelId,
    backbone: LoadedModel,
    states: Option<States>,
}

impl OnGuard {
    fn source(&self, value: GuardValue) -> anyhow::Result<FeatureSource<'_>> {
        let probe = self.guard.guard().as_probe().context("not a probe guard")?;
        let states = self.states.as_ref();
        Ok(FeatureSource::Guard { guard: probe, id: &self.id, backbone: &self.backbone, states, value })
    }
}

/// The guard `name` for `train-mrm --on-guard`, and its states: the files
/// given, else the one beside `corpus` if there is one. States of another
/// guard or input format are refused.
fn load_guard(loader: &Loader, name: &str, corpus: &Path, files: &[PathBuf]) -> anyhow::Result<OnGuard> {
    let guard = loader.guard(&GuardSpec::parse(name, None)?)?;
    let refuse = || RewardError::NotAStateProbe { guard: format!("the guard `{name}`") };
    let probe = guard.guard().as_probe().ok_or_else(refuse)?;
    probe.state_value().map_err(|_| refuse())?;
    let backbone = loader.model(&probe.manifest().backbone.name)?;
    let beside = states_path(corpus);
    let files: Vec<PathBuf> = match files {
        [] if beside.exists() => vec![beside],
        [] => Vec::new(),
        given => given.to_vec(),
    };
    let expected = SeparateInput::of_guard(probe);
    let mut states: Option<States> = None;
    for file in &files {
        let read = read_states(file).with_context(|| format!("reading guard states {}", file.display()))?;
        let h = &read.header;
        if h.guard_sha256 != guard.identity() || h.backbone_sha256 != backbone.sha256() || h.input != expected {
            bail!(
                "{} holds the states of guard `{}` (weights sha256 {}), not of `{name}` (sha256 {}) as it reads now; \
                 pass the guard the corpus was labelled with, or leave --states out to compute the states",
                file.display(),
                h.guard,
                h.guard_sha256,
                guard.identity()
            );
        }
        match &mut states {
            Some(all) => all.rows.extend(read.rows),
            None => states = Some(read),
        }
    }
    let kept = states.as_ref().map_or(0, |s| s.rows.len());
    eprintln!("guard states kept for {kept} responses ({} files); the rest are computed", files.len());
    let id = ModelId { name: name.to_owned(), sha256: guard.identity().to_owned() };
    Ok(OnGuard { guard, id, backbone, states })
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
