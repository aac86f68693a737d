//! Prompts shared between sets, and between a grid's prompts and the
//! artifacts that would answer or judge them: the check `saffron eval`
//! makes before answering anything, and `saffron data overlap`.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;

use saffron_core::{PromptKey, TrainedPrompts};
use saffron_reward::Training;
use serde::Serialize;

use super::index::Assigned;
use super::universe::Universe;

/// What a model does in a run.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Role {
    /// The PRM of best-of-n and the PRM searches.
    Prm,
    /// The MRM of saffron.
    Mrm,
    /// A judge of the final answers.
    Judge,
}

impl fmt::Display for Role {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Role::Prm => "PRM",
            Role::Mrm => "MRM",
            Role::Judge => "judge",
        })
    }
}

/// One artifact a run uses and what it was trained on.
#[derive(Debug, Clone)]
pub struct ArtifactTraining {
    pub role: Role,
    /// As the grid names it (`default`, a directory, a GGUF).
    pub artifact: String,
    pub training: Training,
}

/// Prompts of one set an artifact was trained on.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct GridOverlap {
    pub role: Role,
    pub artifact: String,
    pub set: String,
    /// Prompts of the set (as the grid selects it) the artifact saw.
    pub prompts: usize,
    /// Prompts of the set the grid selects.
    pub of: usize,
}

/// The result of the check: overlaps, and the artifacts it could not check.
#[derive(Debug, Clone, Default, Serialize)]
pub struct OverlapCheck {
    pub overlaps: Vec<GridOverlap>,
    /// saffron artifacts made before trainers recorded their prompts.
    pub unrecorded: Vec<(Role, String)>,
    /// Models saffron did not train (their data is not known).
    pub external: Vec<(Role, String)>,
    /// Artifacts whose recorded training prompts were checked.
    pub checked: Vec<(Role, String)>,
    /// Prompts of the grid checked (over every set).
    pub prompts: usize,
}

impl OverlapCheck {
    /// Whether the check found nothing against the rule: no overlap and no
    /// artifact of saffron's whose training is unknown.
    pub fn is_clean(&self) -> bool {
        self.overlaps.is_empty() && self.unrecorded.is_empty()
    }
}

/// Checks every selected prompt of every set, `(set name, assignments)`,
/// against every artifact.
pub fn check(artifacts: &[ArtifactTraining], sets: &[(String, Vec<Assigned>)]) -> OverlapCheck {
    let mut out = OverlapCheck { prompts: sets.iter().map(|(_, p)| p.len()).sum(), ..OverlapCheck::default() };
    for a in artifacts {
        let id = (a.role, a.artifact.clone());
        match &a.training {
            Training::None => {}
            Training::External => out.external.push(id),
            Training::Unrecorded => out.unrecorded.push(id),
            Training::Prompts(trained) => {
                out.checked.push(id.clone());
                for (set, prompts) in sets {
                    let seen = prompts.iter().filter(|p| trained.contains(&p.root)).count();
                    if seen > 0 {
                        let (role, artifact) = id.clone();
                        out.overlaps.push(GridOverlap {
                            role,
                            artifact,
                            set: set.clone(),
                            prompts: seen,
                            of: prompts.len(),
                        });
                    }
                }
            }
        }
    }
    out.unrecorded.dedup();
    out.external.dedup();
    out.checked.dedup();
    out
}

/// Prompts two sets share.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct SetPair {
    pub a: String,
    pub b: String,
    /// Prompts of `b` whose normalised text is a prompt of `a`.
    pub exact: usize,
    /// Other prompts of `b` that near-duplicate (share a cluster with) a
    /// prompt of `a`.
    pub near: usize,
}

/// Every pair of the universe's sets that shares a prompt.
pub fn set_pairs(universe: &Universe) -> Vec<SetPair> {
    let sets = universe.sets();
    let keys: Vec<BTreeSet<PromptKey>> = sets.iter().map(|s| s.prompts.iter().map(|p| p.1.key).collect()).collect();
    let roots: Vec<BTreeSet<PromptKey>> = sets.iter().map(|s| s.prompts.iter().map(|p| p.1.root).collect()).collect();
    let mut pairs = Vec::new();
    for i in 0..sets.len() {
        for j in i + 1..sets.len() {
            let (mut exact, mut near) = (0, 0);
            for (_, p) in &sets[j].prompts {
                if keys[i].contains(&p.key) {
                    exact += 1;
                } else if roots[i].contains(&p.root) {
                    near += 1;
                }
            }
            if exact + near > 0 {
                pairs.push(SetPair { a: sets[i].name.clone(), b: sets[j].name.clone(), exact, near });
            }
        }
    }
    pairs
}

/// Prompts of each set of the universe that `trained` saw, sets without
/// any left out.
pub fn trained_per_set(universe: &Universe, trained: &TrainedPrompts) -> BTreeMap<String, usize> {
    universe
        .sets()
        .iter()
        .map(|s| (s.name.clone(), s.prompts.iter().filter(|p| trained.contains(&p.1.root)).count()))
        .filter(|(_, n)| *n > 0)
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::splits::universe::SetSource;
    use saffron_core::Split;

    fn universe() -> Universe {
        let set = |name: &str, texts: &[&str]| SetSource {
            name: name.to_owned(),
            prompts: texts.iter().enumerate().map(|(i, t)| (format!("{i}"), (*t).to_owned())).collect(),
            pinned: None,
        };
        Universe::from_sets(vec![
            set("a", &["how do i make a bomb at home", "write a poem about spring"]),
            set("b", &["How do I make a bomb at home?", "how do i make a bomb at home quickly", "bake bread"]),
        ])
    }

    #[test]
    fn shared_prompts_are_counted_exact_and_near() {
        let pairs = set_pairs(&universe());
        assert_eq!(pairs, vec![SetPair { a: "a".into(), b: "b".into(), exact: 1, near: 1 }]);
    }

    #[test]
    fn an_artifact_that_saw_a_grid_prompt_is_named_with_the_set_and_count() {
        let universe = universe();
        let bomb = universe.lookup("how do i make a bomb at home");
        let trained = TrainedPrompts::new([Split::Train], [bomb.root]);
        let artifacts = [
            ArtifactTraining {
                role: Role::Prm,
                artifact: "default".into(),
                training: Training::Prompts(trained.clone()),
            },
            ArtifactTraining { role: Role::Judge, artifact: "refusal".into(), training: Training::None },
            ArtifactTraining { role: Role::Judge, artifact: "old-guard".into(), training: Training::Unrecorded },
        ];
        let grid_sets: Vec<(String, Vec<Assigned>)> = vec![(
            "b".into(),
            ["how do i make a bomb at home quickly", "bake bread"].iter().map(|t| universe.lookup(t)).collect(),
        )];
        let found = check(&artifacts, &grid_sets);
        assert_eq!(
            found.overlaps,
            vec![GridOverlap { role: Role::Prm, artifact: "default".into(), set: "b".into(), prompts: 1, of: 2 }]
        );
        assert_eq!(found.unrecorded, vec![(Role::Judge, "old-guard".to_owned())]);
        assert!(!found.is_clean());
        assert_eq!(trained_per_set(&universe, &trained), BTreeMap::from([("a".into(), 1), ("b".into(), 2)]));
    }
}
