use std::collections::BTreeMap;
use std::path::Path;

use saffron_core::Split;
use saffron_eval::splits::{set_pairs, trained_per_set, OverlapCheck, Universe};
use saffron_reward::{GuardSpec, MrmSpec, Training};
use serde_json::json;

use crate::cli::{DataCommand, OverlapArgs};

pub fn run(home: &Path, command: &DataCommand) -> anyhow::Result<()> {
    match command {
        DataCommand::Overlap(args) => overlap(home, args),
    }
}

fn overlap(home: &Path, args: &OverlapArgs) -> anyhow::Result<()> {
    let universe = Universe::load(home)?;
    let sizes: Vec<(String, BTreeMap<Split, usize>)> = universe
        .sets()
        .iter()
        .map(|s| {
            let mut counts = BTreeMap::from(Split::ALL.map(|split| (split, 0)));
            s.prompts.iter().for_each(|p| *counts.entry(p.1.split).or_default() += 1);
            (s.name.clone(), counts)
        })
        .collect();
    let pairs = set_pairs(&universe);
    let mut artifacts = Vec::new();
    for (name, training) in [
        ("guard default", GuardSpec::BuiltIn.training()?),
        ("judge default", GuardSpec::BuiltInJudge.training()?),
        ("mrm default", MrmSpec::BuiltIn.training()?),
    ] {
        let (trained, per_set) = match &training {
            Training::Prompts(t) => (Some(t), trained_per_set(&universe, t)),
            _ => (None, BTreeMap::new()),
        };
        artifacts.push((name, trained.cloned(), per_set));
    }
    if args.json {
        let value = json!({
            "sets": sizes.iter().map(|(name, c)| json!({"set": name, "train": c[&Split::Train], "dev": c[&Split::Dev], "test": c[&Split::Test]})).collect::<Vec<_>>(),
            "pairs": pairs,
            "artifacts": artifacts.iter().map(|(name, t, per_set)| json!({
                "artifact": name,
                "recorded": t.is_some(),
                "splits": t.as_ref().map(|t| &t.splits),
                "prompts": t.as_ref().map(|t| t.prompts),
                "digest": t.as_ref().map(|t| &t.digest),
                "per_set": per_set,
            })).collect::<Vec<_>>(),
        });
        println!("{}", serde_json::to_string_pretty(&value)?);
        return Ok(());
    }
    println!("prompts per split:");
    println!("{:<24} {:>6} {:>6} {:>6}", "set", "train", "dev", "test");
    for (name, c) in &sizes {
        println!("{name:<24} {:>6} {:>6} {:>6}", c[&Split::Train], c[&Split::Dev], c[&Split::Test]);
    }
    println!("\nprompts of the second set that the first holds (exact: same normalised text; near: Jaccard >= 0.8):");
    println!("{:<24} {:<24} {:>6} {:>6}", "first", "second", "exact", "near");
    for p in &pairs {
        println!("{:<24} {:<24} {:>6} {:>6}", p.a, p.b, p.exact, p.near);
    }
    println!("\nprompts the built-in artifacts trained on, per set:");
    for (name, trained, per_set) in &artifacts {
        match trained {
            None => println!("{name}: records no training prompts"),
            Some(t) => {
                let splits: Vec<&str> = t.splits.iter().map(|s| s.name()).collect();
                println!("{name}: {} prompts from {} (digest {})", t.prompts, splits.join("+"), &t.digest[..16]);
                for (set, n) in per_set {
                    println!("    {set:<24} {n:>6}");
                }
            }
        }
    }
    Ok(())
}

/// Prints what `saffron eval --check` found.
pub fn print_check(found: &OverlapCheck) {
    let checked: Vec<String> = found.checked.iter().map(|(role, a)| format!("{role} `{a}`")).collect();
    if !checked.is_empty() {
        println!("checked the grid's {} prompts against the training prompts of {}", found.prompts, checked.join(", "));
    }
    if found.is_clean() {
        println!("no prompt of the grid was seen in training by the artifacts it uses");
    }
    for o in &found.overlaps {
        println!("{} `{}` trained on {} of the {} prompts of `{}`", o.role, o.artifact, o.prompts, o.of, o.set);
    }
    for (role, a) in &found.unrecorded {
        println!("{role} `{a}` records no training prompts (made before saffron recorded them): retrain it");
    }
    for (role, a) in &found.external {
        println!("{role} `{a}` is not saffron's: what it was trained on is not known, not checked");
    }
}
