use anyhow::{bail, Context};
use saffron_engine::{HiddenStates, PrefixTree, TreeOptions};
use saffron_eval::corpus_texts;
use saffron_reward::mrm::corpus::{read_corpus, LabelledSequence};
use saffron_reward::probe::head::HeadTraining;
use saffron_reward::probe::streaming::{self, fit_streaming, stream_examples, Agreement, StreamManifest};
use saffron_reward::{GuardInput, GuardSpec, Loader, RewardError};

use crate::cli::TrainStreamGuardArgs;
use crate::progress::count_bar;

pub fn run(home: &std::path::Path, args: &TrainStreamGuardArgs) -> anyhow::Result<()> {
    if !(0.0..1.0).contains(&args.held_out) {
        bail!("--held-out must be in [0, 1)");
    }
    let path = args.corpus.clone().unwrap_or_else(|| home.join("corpus").join(format!("{}.jsonl", args.policy)));
    let corpus = read_corpus(&path)
        .with_context(|| format!("reading the corpus (make one with `saffron label --policy {}`)", args.policy))?;
    let loader = Loader::new(home);
    let guard = loader.guard(&GuardSpec::parse(&args.guard, None)?)?;
    if corpus.header.prm_sha256 != guard.identity() {
        bail!(
            "{} was labelled by guard `{}` (weights sha256 {}), not by `{}` (sha256 {}): fit the streaming guard \
             to the guard that labelled the corpus",
            path.display(),
            corpus.header.prm,
            corpus.header.prm_sha256,
            args.guard,
            guard.identity()
        );
    }
    let Some(probe) = guard.probe_manifest() else {
        bail!("`{}` is not a probe guard: a streaming guard reads a probe guard's backbone", args.guard)
    };
    let policy = loader.model(&args.policy)?;
    let backbone = guard.guard().model().clone();
    let input = GuardInput::new(backbone.clone(), &probe.format, probe.boundary)?;
    let options = TreeOptions { threads: args.threads, hidden: HiddenStates::Keep, ..TreeOptions::default() };
    let mut tree = PrefixTree::new(&backbone, options)?;
    let texts = corpus_texts(&corpus.sequences, home)?;
    let prompt = |seq: &LabelledSequence| -> Result<String, RewardError> {
        texts.get(seq.prompt()).cloned().ok_or_else(|| RewardError::Data {
            file: path.display().to_string(),
            detail: format!("no prompt text for `{}` in its prompt set", seq.prompt()),
        })
    };
    eprintln!(
        "fitting a streaming guard to `{}` on {} responses ({} labels), {:.0}% of prompts held out",
        args.guard,
        corpus.sequences.len(),
        corpus.labels(),
        100.0 * args.held_out
    );
    let bar = count_bar("features", corpus.sequences.len() as u64);
    let started = std::time::Instant::now();
    let response = |t: &[saffron_core::TokenId]| policy.model().detokenize(t);
    let examples = stream_examples(
        (&input, args.features),
        &mut tree,
        &corpus,
        (args.held_out, args.seed),
        &prompt,
        &response,
        &mut |d| bar.set_position(d as u64),
    )?;
    bar.finish_and_clear();
    let seconds = started.elapsed().as_secs_f64();
    let tokens = tree.cost().tokens_computed;
    eprintln!(
        "features: {} prefixes, {tokens} guard tokens computed in {seconds:.0} s ({:.1} prefixes/s, {:.2} tokens per prefix)",
        corpus.labels(),
        corpus.labels() as f64 / seconds,
        tokens as f64 / corpus.labels().max(1) as f64
    );
    let training = HeadTraining { l2: args.l2, ..HeadTraining::default() };
    let fit = fit_streaming(&examples, &training)?;
    let manifest = StreamManifest {
        kind: StreamManifest::kind(),
        imitates: format!("{} (weights sha256 {})", args.guard, guard.identity()),
        backbone: probe.backbone.clone(),
        format: probe.format.clone(),
        boundary: probe.boundary,
        features: args.features,
        corpus_sha256: saffron_fetch::sha256_file(&path)?,
        training,
        agreement_train: fit.train,
        agreement_held_out: fit.held_out,
        saffron_version: env!("CARGO_PKG_VERSION").into(),
    };
    let out = args.out.clone().unwrap_or_else(|| home.join("guards").join(format!("stream-{}", args.guard)));
    streaming::save(&out, &fit.head, &manifest)?;
    println!("agreement with the guard:");
    println!(
        "{:<10} {:>8} {:>10} {:>6} {:>12} {:>13}",
        "split", "prefixes", "|S-G|<=1", "MAE", "correlation", "same verdict"
    );
    let row = |name: &str, a: &Agreement| {
        let f = a.fidelity;
        println!(
            "{name:<10} {:>8} {:>10.3} {:>6.2} {:>12.3} {:>13.3}",
            f.n, f.within_one, f.mean_abs_error, f.correlation, a.same_verdict
        )
    };
    row("train", &fit.train);
    row("held-out", &fit.held_out);
    println!("wrote {}", out.display());
    Ok(())
}
