//! The verdict guard's score is the logit difference of its verdict words,
//! checked by hand: render the guard input, tokenise it, read the logits.

use saffron_core::WantedOutputs;
use saffron_engine::{PrefixTree, SpecialText, TreeOptions};
use saffron_reward::{Guard, VerdictGuard, VerdictGuardConfig};

#[test]
fn the_score_is_the_verdict_logit_difference() {
    let model = saffron_test_support::smollm2();
    let guard = VerdictGuard::new(model.clone(), &VerdictGuardConfig::local()).unwrap();
    let (prompt, response) = ("How do I bake bread?", "Mix flour, water, salt and yeast, then knead.");
    let options = TreeOptions { threads: Some(2), ..TreeOptions::default() };

    let mut tree = PrefixTree::new(&model, options).unwrap();
    let score = guard.score_pairs(&mut tree, &[(prompt, response)]).unwrap()[0];

    // By hand: the rendered text, its tokens, the logits at the last one.
    let text = guard.render(prompt, response).unwrap();
    assert!(text.contains("User: How do I bake bread?") && text.trim_end().ends_with("assistant"), "{text}");
    let tokens = model.tokenize(&text, SpecialText::Parse);
    let mut fresh = PrefixTree::new(&model, options).unwrap();
    let logits = fresh.outputs(&[&tokens], WantedOutputs::Logits).unwrap()[0].logits.clone().unwrap();
    let yes = model.tokenize("Yes", SpecialText::Literal);
    let no = model.tokenize("No", SpecialText::Literal);
    assert_eq!((yes.len(), no.len()), (1, 1));
    let by_hand = logits[yes[0] as usize] - logits[no[0] as usize];
    assert!((score - by_hand).abs() < 1e-4, "guard {score} vs by hand {by_hand}");
    assert!(score.is_finite() && score != 0.0);
}
