//! Every named prompt set read from the fetched wheels (`saffron fetch`),
//! with the row counts data-sources.md records.

use saffron_eval::{load_prompts, prompt_texts, PromptSet};

#[test]
fn named_sets_have_their_recorded_sizes() {
    let home = saffron_fetch::saffron_home();
    let expected = [
        ("advbench", 520),
        ("jbb", 100),
        ("harmbench", 400),
        ("strongreject", 313),
        ("rho-benign", 150),
        // forgelm's probes are mostly harmful; five are benign controls.
        ("forgelm-benign", 5),
        ("mt-bench-benign", 80),
        ("ifbench-benign", 294),
    ];
    for (name, rows) in expected {
        let set: PromptSet = name.parse().unwrap();
        let data = load_prompts(&set, &home).unwrap_or_else(|e| panic!("{name}: {e} (run `saffron fetch`)"));
        assert_eq!(data.prompts.len(), rows, "{name}");
        assert!(!data.files.is_empty());
        let harmful = !name.ends_with("benign");
        assert!(data.prompts.iter().all(|p| p.harmful == harmful && !p.prompt.is_empty()), "{name}");
    }
    let many = load_prompts(&PromptSet::ManyShot, &home).unwrap();
    // ≈283 by a looser reading of the verdicts; all carry an answer.
    assert!((270..=290).contains(&many.prompts.len()), "{}", many.prompts.len());
    assert!(many.prompts.iter().all(|p| p.reference.is_some()));
    let advbench = load_prompts(&PromptSet::Advbench, &home).unwrap();
    assert!(advbench.prompts.iter().all(|p| p.reference.as_deref().is_some_and(|r| r.starts_with("Sure, here"))));
    assert_eq!(
        advbench.files["advbench:autodan/data/advbench/harmful_behaviors.csv"],
        "6cd1a5c63c07610d7eb67307772ee5606017ee950b5770ab288a2c487489d3e1"
    );
}

/// A corpus names its prompts by id (`harmbench-test/3`); `prompt_texts`
/// must find every built-in set's ids again (train-mrm reads them).
#[test]
fn every_prompt_id_resolves_to_its_text() {
    let home = saffron_fetch::saffron_home();
    for name in PromptSet::NAMES {
        let set: PromptSet = name.parse().unwrap();
        let data = load_prompts(&set, &home).unwrap_or_else(|e| panic!("{name}: {e} (run `saffron fetch`)"));
        let texts =
            prompt_texts(data.prompts.iter().map(|p| p.id.as_str()), &home).unwrap_or_else(|e| panic!("{name}: {e}"));
        for p in &data.prompts {
            assert_eq!(texts.get(&p.id), Some(&p.prompt), "{name}: {}", p.id);
        }
    }
}
