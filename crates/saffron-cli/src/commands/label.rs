use std::cell::RefCell;
use std::collections::HashSet;
use std::path::Path;

use anyhow::Context;
use saffron_core::Split;
use saffron_defence::{DefenceModels, DefenceSpec};
use saffron_engine::TreeOptions;
use saffron_eval::hh_rlhf::{self, HhFile};
use saffron_eval::label::{label, planned_keys, LabelSettings, LabelSources, Labeller, WrittenAnswers};
use saffron_eval::sharegpt;
use saffron_eval::splits::Universe;
use saffron_eval::{load_prompts, PromptSet, Selection};
use saffron_reward::mrm::corpus::{grow_corpus, read_corpus, CorpusHeader, CorpusWriter, Growth, SHARD_KEY};
use saffron_reward::mrm::separate::SeparateInput;
use saffron_reward::mrm::states::{states_path, StatesHeader, StatesWriter};
use saffron_reward::probe::features::ProbeFeatures;
use saffron_reward::probe::streaming::{self, StreamingGuard};
use saffron_reward::{GuardSpec, LoadedGuard, Loader, RewardError, VerdictFormat};
use saffron_search::LengthLimits;
use serde_json::json;

use crate::cli::LabelArgs;
use crate::progress::resumed_bar;

pub fn run(home: &Path, args: &LabelArgs) -> anyhow::Result<()> {
    let mut universe = Universe::load(home)?;
    let mut prompts = Vec::new();
    let mut files = std::collections::BTreeMap::new();
    let sets = |names: &[String], n: usize| -> anyhow::Result<Vec<(PromptSet, usize)>> {
        names.iter().map(|name| Ok((name.parse::<PromptSet>()?, n))).collect()
    };
    let shard = match args.shard {
        Some(spec) => Some(spec.resolve(&|name| std::env::var(name).ok(), args.shard_count)?),
        None => None,
    };
    let chosen = [sets(&args.harmful_sets, args.harmful)?, sets(&args.benign_sets, args.benign)?].concat();
    for (set, n) in chosen {
        let data = load_prompts(&set, home).with_context(|| format!("reading {} (run `saffron fetch`)", set.name()))?;
        files.extend(data.files);
        // A trainer reads the train split only (architecture.md, "Data discipline").
        let train = universe.select(data.prompts, Split::Train);
        // Sharded within each set's sample, so that a larger sample keeps
        // every prompt of a smaller one in the same shard.
        prompts.extend(Selection { sample: Some(n), seed: args.seed, shard, ..Selection::default() }.apply(train)?);
    }
    let loader = Loader::new(home);
    let stream = args.stream.as_deref().map(|dir| load_stream(&loader, dir)).transpose()?;
    let prm = match &stream {
        None => Some(GuardSpec::parse(&args.guard, args.guard_format)?),
        Some(_) => None,
    };
    let spec = DefenceSpec { policy: args.policy.clone(), remote: None, prm, mrm: None };
    let options = TreeOptions { threads: args.threads, ..TreeOptions::default() };
    let models = DefenceModels::load(&spec, &loader, options)?;
    let (guard_name, guard_identity, labeller) = match (&stream, &args.stream) {
        (Some((guard, identity)), Some(dir)) => {
            (format!("stream:{}", dir.display()), identity.clone(), Labeller::Stream(guard))
        }
        _ => (args.guard.clone(), models.prm().map(|g| g.identity().to_owned()).unwrap_or_default(), Labeller::Guard),
    };
    let length = LengthLimits {
        max_new_tokens: args.max_tokens,
        min_new_tokens: LengthLimits::default().min_new_tokens.min(args.max_tokens),
    };
    let settings = LabelSettings { samples: args.samples, length, seed: args.seed, ..LabelSettings::default() };
    let mut recipe =
        json!({ "label": settings, "harmful": args.harmful, "benign": args.benign, "split": Split::Train });
    // Sets and sources beyond the first corpus' are recorded only when
    // given, so that corpora made before them resume.
    if args.harmful_sets != ["advbench"] || args.benign_sets != ["rho-benign"] {
        recipe["sets"] = json!({ "harmful": args.harmful_sets, "benign": args.benign_sets });
    }
    if let Some((i, n)) = shard {
        recipe[SHARD_KEY] = json!([i, n]);
        eprintln!("shard {i}/{n}: {} prompts", prompts.len());
    }
    let hh = args.hh_rlhf.as_deref().map(read_hh).transpose()?;
    let conversations = match &hh {
        Some((path, sha, file)) => {
            let (train, left_out) = file.train(&universe);
            eprintln!(
                "{}: {} conversations ({} lines skipped); {} have every request in the train split, {left_out} do not",
                path.display(),
                file.conversations.len(),
                file.skipped,
                train.len()
            );
            let name =
                path.file_name().map_or_else(|| path.display().to_string(), |n| n.to_string_lossy().into_owned());
            files.insert(format!("hh-rlhf:{name}"), sha.clone());
            recipe["hh_rlhf"] =
                json!({ "sha256": sha, "conversations": file.conversations.len(), "train": train.len() });
            match shard {
                Some((i, n)) => every_nth(train, i, n),
                None => train,
            }
        }
        None => Vec::new(),
    };
    let mut conversations: Vec<WrittenAnswers> = conversations.iter().map(|c| c.written()).collect();
    if let Some(n) = args.sharegpt {
        let (train, sha) = read_sharegpt(home, &universe, n, args.seed)?;
        files.insert(format!("{}:{}", sharegpt::DATASET, sharegpt::MEMBER), sha);
        recipe["sharegpt"] = json!(n);
        conversations.extend(match shard {
            Some((i, n)) => every_nth(train, i, n),
            None => train,
        });
    }
    // A verdict guard's format decides its labels; left out when it is the
    // default, so that corpora made before it was recorded resume.
    if let Some(format) = args.guard_format.filter(|f| *f != VerdictFormat::default()) {
        recipe["guard_format"] = json!(format);
    }
    let header =
        CorpusHeader::new((&args.policy, &models.policy().identity()?), (&guard_name, &guard_identity), files, recipe);
    let out = args.out.clone().unwrap_or_else(|| home.join("corpus").join(format!("{}.jsonl", args.policy)));
    if let Some(old) = grow_corpus(&out, &header, &GROWING)? {
        say_grown(&out, &old, args);
    }
    let mut writer = CorpusWriter::open(&out, &header)?;
    // With --keep-states: the guard again (its backbone shared through the
    // loader) and the states file beside the corpus.
    let kept = match (&spec.prm, args.keep_states) {
        (Some(spec), true) => Some(open_states(&loader, spec, &args.guard, &out)?),
        _ => None,
    };
    let labeller = match &kept {
        Some((guard, states)) => Labeller::KeepStates(guard, states),
        None => labeller,
    };
    let sources = LabelSources { prompts: &prompts, conversations: &conversations };
    let planned = planned_keys(&sources, &settings);
    refuse_foreign(&writer, &planned, &out)?;
    let total = planned.len();
    eprintln!(
        "labelling {total} responses of {} with guard {guard_name}; {} already in {}",
        args.policy,
        writer.done(),
        out.display()
    );
    let start = writer.done() as u64;
    let bar = resumed_bar("label", total as u64, start);
    let done = label(&models, labeller, &sources, &settings, &mut writer, &mut |p| {
        bar.set_position(start + p.sequences as u64);
        bar.set_message(format!("{} labels", p.labels));
    })?;
    bar.finish_and_clear();
    if done.labels > 0 {
        println!(
            "this run: {} responses, {} prefixes scored in {:.0} s of PRM time ({:.1} prefixes/s, {:.1} guard tokens computed per prefix)",
            done.sequences,
            done.labels,
            done.prm_seconds,
            done.labels as f64 / done.prm_seconds,
            done.prm_tokens as f64 / done.labels as f64
        );
    }
    print_corpus(&out)
}

/// Refuses a corpus holding responses this command would not label:
/// another command's with the same header, or a shard made when shards
/// took every N-th prompt across all sets rather than within each.
fn refuse_foreign(writer: &CorpusWriter, planned: &HashSet<(String, u32)>, out: &Path) -> anyhow::Result<()> {
    let mut foreign: Vec<&(String, u32)> = writer.done_keys().filter(|k| !planned.contains(*k)).collect();
    foreign.sort();
    if let Some(first) = foreign.first() {
        anyhow::bail!(
            "{} holds {} responses this command would not label (e.g. `{}` sample {}): it was made by another \
             command, or is a shard from before shards were taken within each prompt set; label into a new --out \
             (and `saffron merge-corpus` the old and new shards)",
            out.display(),
            foreign.len(),
            first.0,
            first.1
        );
    }
    Ok(())
}

/// A seeded sample of `n` of the fetched ShareGPT conversations whose
/// request is in the train split, and the sha256 of the file; says what
/// the file held.
fn read_sharegpt(
    home: &Path,
    universe: &Universe,
    n: usize,
    seed: u64,
) -> anyhow::Result<(Vec<WrittenAnswers>, String)> {
    let (file, sha) = sharegpt::load(home)
        .context("reading ShareGPT for --sharegpt (an optional source: `saffron fetch --only sharegpt`)")?;
    let (train, left_out) = file.train(universe, n, seed);
    eprintln!(
        "ShareGPT: {} complete conversations ({} skipped{}); {} sampled from the train split, {left_out} are in other splits",
        file.conversations.len(),
        file.skipped,
        if file.truncated { ", the file cut off mid-record" } else { "" },
        train.len()
    );
    Ok((train.iter().map(|c| c.written()).collect(), sha))
}

/// Says how the corpus at `out` grew from the command that made `old`.
fn say_grown(out: &Path, old: &CorpusHeader, args: &LabelArgs) {
    let was = |key: &str| old.settings.get(key).map_or("none".to_owned(), |v| v.to_string());
    let read = |yes: bool| if yes { "read" } else { "not read" };
    eprintln!(
        "growing {}: {} harmful prompts per set (was {}), {} benign (was {}), {} ShareGPT conversations (was {}), \
         HH-RLHF {} (was {}); its responses are kept",
        out.display(),
        args.harmful,
        was("harmful"),
        args.benign,
        was("benign"),
        args.sharegpt.map_or("none".to_owned(), |n| n.to_string()),
        was("sharegpt"),
        read(args.hh_rlhf.is_some()),
        read(old.settings.get("hh_rlhf").is_some()),
    );
}

/// How a corpus may grow in place: larger `--harmful`, `--benign` or
/// `--sharegpt`, or a source it was labelled without (`--hh-rlhf`,
/// `--sharegpt`).
const GROWING: Growth = Growth {
    counts: &["harmful", "benign", "sharegpt"],
    sources: &[("hh_rlhf", "hh-rlhf:"), ("sharegpt", "sharegpt:")],
};

/// The probe guard of `spec` and the writer of its states beside `corpus`;
/// refused for a guard that is not a probe on its last state.
fn open_states(
    loader: &Loader,
    spec: &GuardSpec,
    name: &str,
    corpus: &Path,
) -> anyhow::Result<(LoadedGuard, RefCell<StatesWriter>)> {
    let guard = loader.guard(spec)?;
    let refuse = || RewardError::NotAStateProbe { guard: format!("the guard `{name}`") };
    let probe = guard.guard().as_probe().ok_or_else(refuse)?;
    if probe.manifest().features != ProbeFeatures::Last {
        return Err(refuse().into());
    }
    let header = StatesHeader::new(
        (name, guard.identity()),
        &probe.manifest().backbone.sha256,
        probe.input().model().shape().d_model as usize,
        SeparateInput::of_guard(probe),
    );
    let path = states_path(corpus);
    let writer = StatesWriter::open(&path, &header).with_context(|| format!("opening {}", path.display()))?;
    eprintln!("keeping the guard's states in {}", path.display());
    Ok((guard, RefCell::new(writer)))
}

/// Shard `index` of `count`: every `count`-th item from the `index`-th.
fn every_nth<T>(items: Vec<T>, index: usize, count: usize) -> Vec<T> {
    items.into_iter().skip(index).step_by(count).collect()
}

/// An HH-RLHF file, its sha256 (recorded in the corpus header) and its
/// conversations.
fn read_hh(path: &Path) -> anyhow::Result<(&Path, String, HhFile)> {
    let file = hh_rlhf::read(path).context("reading the HH-RLHF file given with --hh-rlhf")?;
    Ok((path, saffron_fetch::sha256_file(path)?, file))
}

/// A streaming guard on its backbone, and its identity (the sha256 of its
/// weights file) for the corpus header.
fn load_stream(loader: &Loader, dir: &Path) -> anyhow::Result<(StreamingGuard, String)> {
    let (head, manifest) = streaming::load(dir)?;
    let backbone = loader.model(&manifest.backbone.name)?;
    let identity = saffron_fetch::sha256_file(&dir.join(streaming::STREAM_WEIGHTS_FILE))?;
    let a = manifest.agreement_held_out;
    eprintln!(
        "streaming guard {} imitates {}: on held-out prompts {:.3} of prefixes within 1 of it, correlation {:.3}, same verdict {:.3}",
        dir.display(),
        manifest.imitates,
        a.fidelity.within_one,
        a.fidelity.correlation,
        a.same_verdict
    );
    let sha = backbone.sha256().to_owned();
    Ok((StreamingGuard::new((head, manifest), backbone.model().clone(), &sha)?, identity))
}

/// The corpus in numbers: responses, labels, the unsafe share and a
/// histogram of the rewards.
pub fn print_corpus(path: &Path) -> anyhow::Result<()> {
    let corpus = read_corpus(path)?;
    let unsafe_share = corpus.sequences.iter().flat_map(|s| &s.rewards).filter(|&&r| r < 0.0).count() as f64
        / corpus.labels().max(1) as f64;
    println!(
        "{}: {} responses, {} token-level labels, {:.1}% of them unsafe (< 0)",
        path.display(),
        corpus.sequences.len(),
        corpus.labels(),
        100.0 * unsafe_share
    );
    println!("reward histogram (unit bins, clamped to [-10, 10)):");
    for (i, count) in corpus.histogram().iter().enumerate().filter(|(_, c)| **c > 0) {
        println!("  [{:>3}, {:>3}) {count}", i as i64 - 10, i as i64 - 9);
    }
    Ok(())
}
