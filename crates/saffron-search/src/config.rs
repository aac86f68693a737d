//! Typed, serde/TOML configuration of a search. Defaults are the paper's
//! settings (method.md sections 1, 3 and 5); every choice where the paper is
//! silent is documented on its field.

use saffron_core::sampling::Decoding;
use saffron_core::Budget;
use serde::{Deserialize, Serialize};

use crate::reasoning::ReasoningConfig;

/// Everything that determines a search: the same configuration, models and
/// prompt give the same answer and the same cost (wall time aside).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SearchConfig {
    pub strategy: Strategy,
    #[serde(default)]
    pub length: LengthLimits,
    /// How sampling strategies (sample, best-of-n, beam, rebase) draw tokens.
    /// Saffron and lookahead choose tokens by reward, not by this.
    #[serde(default)]
    pub decoding: Decoding,
    #[serde(default)]
    pub seed: u64,
    #[serde(default)]
    pub budget: Budget,
    /// Thinking before the answer (budget forcing), run by the defence
    /// around the search: the search answers after the closed trace. The
    /// budget above caps the answer's search; the trace's cost is charged
    /// beside it. Unset: no thinking section at all.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reasoning: Option<ReasoningConfig>,
}

impl SearchConfig {
    pub fn new(strategy: Strategy) -> SearchConfig {
        SearchConfig {
            strategy,
            length: LengthLimits::default(),
            decoding: Decoding::default(),
            seed: 0,
            budget: Budget::default(),
            reasoning: None,
        }
    }

    /// The probability mass (at temperature 1) a search draws its
    /// candidate tokens from at each node: Saffron's nucleus, or the
    /// decoding's for the others; 0 for greedy decoding, which needs only
    /// the top token. What a policy that returns only its top-k tokens must
    /// hold for the candidates to be exact.
    pub fn nucleus_mass(&self) -> f32 {
        match (&self.strategy, self.decoding) {
            (Strategy::Saffron(c), _) => c.top_p,
            (_, Decoding::Greedy) => 0.0,
            (_, Decoding::Sample { top_p, .. }) => top_p,
        }
    }

    /// Rejects settings that have no meaning or no bound, naming the field
    /// and the bound.
    pub fn validate(&self) -> Result<(), String> {
        self.decoding.validate()?;
        self.budget.validate()?;
        within("length.max_new_tokens", self.length.max_new_tokens, 1, MAX_NEW_TOKENS)?;
        if let Some(reasoning) = &self.reasoning {
            reasoning.validate()?;
        }
        self.strategy.validate()
    }
}

/// Most new tokens an answer may have (a context holds 8,192 tokens).
pub const MAX_NEW_TOKENS: usize = 8192;
/// The widest search (the paper goes to 64; beyond this the frontier alone
/// outgrows any context a CPU run can hold).
pub const MAX_WIDTH: usize = 1024;
/// Most children, proposals or lookahead tokens per node.
pub const MAX_BRANCHING: usize = 64;

/// `value` in `[low, high]`, else an error naming `name` and the bounds.
fn within(name: &str, value: usize, low: usize, high: usize) -> Result<(), String> {
    if (low..=high).contains(&value) {
        Ok(())
    } else {
        Err(format!("{name} must be between {low} and {high} (got {value})"))
    }
}

/// How long answers may be (paper: at most 32 new tokens, end-of-sequence
/// allowed only after 16; the released code used 50).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct LengthLimits {
    pub max_new_tokens: usize,
    /// End-of-generation tokens are banned before this many new tokens.
    pub min_new_tokens: usize,
}

impl Default for LengthLimits {
    fn default() -> Self {
        LengthLimits { max_new_tokens: 32, min_new_tokens: 16 }
    }
}

/// The strategy and its parameters. In TOML: `[strategy]` with
/// `name = "saffron"` and the strategy's own keys.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "name", rename_all = "kebab-case")]
pub enum Strategy {
    /// No defence: one sample (method.md section 5).
    Sample(SampleConfig),
    /// N independent samples, the PRM scores each finished one, the best wins.
    BestOfN(BestOfNConfig),
    /// PRM beam search: C children per node, one PRM call per child, top N.
    Beam(BeamConfig),
    /// Reward-balanced search (REBASE): widths `round(B · softmax(R / T_b))`.
    Rebase(RebaseConfig),
    /// DeAL-style lookahead: top-k proposals scored by an l-token rollout.
    Lookahead(LookaheadConfig),
    /// Saffron-1: one MRM call per node, global top-N over all candidates.
    Saffron(SaffronConfig),
}

impl Strategy {
    /// The kind of strategy (its name), without its parameters.
    pub fn kind(&self) -> StrategyKind {
        match self {
            Strategy::Sample(_) => StrategyKind::Sample,
            Strategy::BestOfN(_) => StrategyKind::BestOfN,
            Strategy::Beam(_) => StrategyKind::Beam,
            Strategy::Rebase(_) => StrategyKind::Rebase,
            Strategy::Lookahead(_) => StrategyKind::Lookahead,
            Strategy::Saffron(_) => StrategyKind::Saffron,
        }
    }

    /// Whether this configuration scores with a PRM: the PRM searches, and
    /// Saffron when it re-ranks its finished nodes with one.
    pub fn needs_prm(&self) -> bool {
        match self {
            Strategy::Saffron(c) => c.final_pick == FinalPick::PrmRerank,
            other => other.kind().needs_prm(),
        }
    }

    /// Whether this configuration needs an MRM (Saffron only).
    pub fn needs_mrm(&self) -> bool {
        self.kind().needs_mrm()
    }

    /// The strategy's width, the budget knob the paper varies: N samples,
    /// N beams, B branches, N kept candidates. `None` for `sample`.
    pub fn width(&self) -> Option<usize> {
        match self {
            Strategy::Sample(_) => None,
            Strategy::BestOfN(c) => Some(c.n),
            Strategy::Beam(c) => Some(c.width),
            Strategy::Rebase(c) => Some(c.width),
            Strategy::Lookahead(c) => Some(c.width),
            Strategy::Saffron(c) => Some(c.width),
        }
    }

    /// Sets the width (see [`Strategy::width`]); an error for `sample`.
    pub fn set_width(&mut self, width: usize) -> Result<(), String> {
        match self {
            Strategy::Sample(_) => return Err("the sample strategy has no width".into()),
            Strategy::BestOfN(c) => c.n = width,
            Strategy::Beam(c) => c.width = width,
            Strategy::Rebase(c) => c.width = width,
            Strategy::Lookahead(c) => c.width = width,
            Strategy::Saffron(c) => c.width = width,
        }
        Ok(())
    }

    fn validate(&self) -> Result<(), String> {
        let width = |name: &str, v: usize| within(&format!("strategy.{name} (the width)"), v, 1, MAX_WIDTH);
        let branching = |name: &str, v: usize| within(&format!("strategy.{name}"), v, 1, MAX_BRANCHING);
        match self {
            Strategy::Sample(_) => Ok(()),
            Strategy::BestOfN(c) => width("n", c.n),
            Strategy::Beam(c) => {
                width("width", c.width)?;
                branching("children", c.children)?;
                within("strategy.chunk", c.chunk, 1, MAX_NEW_TOKENS)
            }
            Strategy::Rebase(c) => {
                width("width", c.width)?;
                within("strategy.chunk", c.chunk, 1, MAX_NEW_TOKENS)?;
                if !(c.temperature > 0.0 && c.temperature.is_finite()) {
                    return Err(format!("strategy.temperature must be > 0 (got {})", c.temperature));
                }
                Ok(())
            }
            Strategy::Lookahead(c) => {
                width("width", c.width)?;
                branching("proposals", c.proposals)?;
                within("strategy.depth", c.depth, 0, MAX_BRANCHING)
            }
            Strategy::Saffron(c) => {
                width("width", c.width)?;
                if !(c.top_p > 0.0 && c.top_p <= 1.0) {
                    return Err(format!("strategy.top_p must be in (0, 1] (got {})", c.top_p));
                }
                if c.variant == SaffronVariant::Reference && c.final_pick == FinalPick::PrmRerank {
                    return Err("the reference variant reproduces the released code, which has no PRM re-rank; \
                                use final_pick = \"mrm\" with it"
                        .into());
                }
                if !(c.fluency_weight.is_finite() && c.fluency_weight >= 0.0) {
                    return Err(format!("strategy.fluency_weight must be >= 0 (got {})", c.fluency_weight));
                }
                if c.variant == SaffronVariant::Reference && (c.fluency_weight > 0.0 || c.reward_cap.is_some()) {
                    return Err("the reference variant ranks by reward alone, as the released code; \
                                use variant = \"default\" with fluency_weight or reward_cap"
                        .into());
                }
                if c.reward_cap.is_some_and(|cap| !cap.is_finite()) {
                    return Err(format!("strategy.reward_cap must be a finite number (got {:?})", c.reward_cap));
                }
                if c.reward_cap.is_some() && c.fluency_weight == 0.0 {
                    return Err("strategy.reward_cap needs fluency_weight > 0: without it the capped candidates \
                                all tie and keep pooled order"
                        .into());
                }
                Ok(())
            }
        }
    }
}

/// The six strategies by name, as written in configuration, on the command
/// line and in records: `sample`, `best-of-n`, `beam`, `rebase`,
/// `lookahead`, `saffron`. Every comparison of strategies goes through this
/// type, never through their names.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[cfg_attr(feature = "clap", derive(clap::ValueEnum))]
#[serde(rename_all = "kebab-case", try_from = "String")]
pub enum StrategyKind {
    #[default]
    Sample,
    BestOfN,
    Beam,
    Rebase,
    Lookahead,
    Saffron,
}

impl StrategyKind {
    /// Every strategy, in the order `--help` lists them (reports use the
    /// paper's row order, saffron-eval's `DEFENCES`).
    pub const ALL: [StrategyKind; 6] = [
        StrategyKind::Sample,
        StrategyKind::BestOfN,
        StrategyKind::Beam,
        StrategyKind::Rebase,
        StrategyKind::Lookahead,
        StrategyKind::Saffron,
    ];

    /// The name in configuration and records.
    pub fn name(self) -> &'static str {
        match self {
            StrategyKind::Sample => "sample",
            StrategyKind::BestOfN => "best-of-n",
            StrategyKind::Beam => "beam",
            StrategyKind::Rebase => "rebase",
            StrategyKind::Lookahead => "lookahead",
            StrategyKind::Saffron => "saffron",
        }
    }

    /// The name in reports' tables: "no defence", "Best-of-N", ….
    pub fn title(self) -> &'static str {
        match self {
            StrategyKind::Sample => "no defence",
            StrategyKind::BestOfN => "Best-of-N",
            StrategyKind::Beam => "PRM beam search",
            StrategyKind::Rebase => "Rebase",
            StrategyKind::Lookahead => "Lookahead (DeAL)",
            StrategyKind::Saffron => "Saffron",
        }
    }

    /// The strategy with its default parameters (docs/search.md).
    pub fn default_strategy(self) -> Strategy {
        match self {
            StrategyKind::Sample => Strategy::Sample(SampleConfig::default()),
            StrategyKind::BestOfN => Strategy::BestOfN(BestOfNConfig::default()),
            StrategyKind::Beam => Strategy::Beam(BeamConfig::default()),
            StrategyKind::Rebase => Strategy::Rebase(RebaseConfig::default()),
            StrategyKind::Lookahead => Strategy::Lookahead(LookaheadConfig::default()),
            StrategyKind::Saffron => Strategy::Saffron(SaffronConfig::default()),
        }
    }

    /// Whether the strategy scores with a process reward model (a guard).
    /// Saffron needs one only to re-rank (`final_pick = "prm-rerank"`,
    /// see [`Strategy::needs_prm`]).
    pub fn needs_prm(self) -> bool {
        matches!(self, StrategyKind::BestOfN | StrategyKind::Beam | StrategyKind::Rebase | StrategyKind::Lookahead)
    }

    /// Whether the strategy steers with a multifurcation reward model.
    pub fn needs_mrm(self) -> bool {
        self == StrategyKind::Saffron
    }

    /// Whether the strategy has a width (every one but `sample`).
    pub fn has_width(self) -> bool {
        self != StrategyKind::Sample
    }
}

impl std::fmt::Display for StrategyKind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.pad(self.name())
    }
}

impl TryFrom<String> for StrategyKind {
    type Error = String;

    fn try_from(name: String) -> Result<StrategyKind, String> {
        name.parse()
    }
}

impl std::str::FromStr for StrategyKind {
    type Err = String;

    fn from_str(name: &str) -> Result<StrategyKind, String> {
        StrategyKind::ALL.into_iter().find(|k| k.name() == name).ok_or_else(|| {
            let names: Vec<&str> = StrategyKind::ALL.iter().map(|k| k.name()).collect();
            format!("unknown strategy `{name}`; use one of {}", names.join(", "))
        })
    }
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SampleConfig {}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct BestOfNConfig {
    /// Number of independent samples (paper: 1 … 64, main setting 32).
    pub n: usize,
}

impl Default for BestOfNConfig {
    fn default() -> Self {
        BestOfNConfig { n: 16 }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct BeamConfig {
    /// Beams kept after each step (N).
    pub width: usize,
    /// Children sampled per beam node (C; paper: 2 or 4). Identical children
    /// of one parent are merged before scoring: they would score the same.
    pub children: usize,
    /// Tokens per step: a child is `chunk` sampled tokens (1 = token level).
    pub chunk: usize,
}

impl Default for BeamConfig {
    fn default() -> Self {
        BeamConfig { width: 4, children: 2, chunk: 1 }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct RebaseConfig {
    /// The total budget B of live branches; each finished sample reduces it.
    pub width: usize,
    /// Balance temperature T_b (paper: 0.1).
    pub temperature: f32,
    /// Tokens per step (1 = token level).
    pub chunk: usize,
}

impl Default for RebaseConfig {
    fn default() -> Self {
        RebaseConfig { width: 16, temperature: 0.1, chunk: 1 }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct LookaheadConfig {
    /// Beams kept after each step.
    pub width: usize,
    /// Proposals per beam node: the policy's k most likely next tokens.
    pub proposals: usize,
    /// Lookahead length l: each proposal is extended by l greedy tokens and
    /// the PRM scores that rollout (0 = score the proposal itself).
    pub depth: usize,
}

impl Default for LookaheadConfig {
    fn default() -> Self {
        LookaheadConfig { width: 4, proposals: 4, depth: 2 }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct SaffronConfig {
    /// Candidates kept after each step (N; paper: 1 … 64, main setting 32).
    pub width: usize,
    /// Nucleus mass of the candidate tokens of each node (paper: 0.8),
    /// at temperature 1.
    pub top_p: f32,
    /// Give tokens the MRM never saw in training a reward of −∞ (the
    /// conservative mask, method.md section 2). Off only for ablations.
    pub conservative: bool,
    pub final_pick: FinalPick,
    pub variant: SaffronVariant,
    /// λ of the fluency-aware ranking: a candidate ranks by its MRM reward
    /// plus λ × the policy's mean log-probability per token of the answer
    /// it makes (nats), so that a safe-looking but unlikely token must earn
    /// its place. 0 (the default) is the paper's ranking by reward alone.
    #[serde(skip_serializing_if = "is_zero")]
    pub fluency_weight: f32,
    /// Safe enough is enough: a candidate's reward counts as at most this
    /// (on the PRM's scale, where 0 is its safe/unsafe threshold), so that
    /// among candidates the MRM finds safe enough the fluency term decides,
    /// and a refusal earns nothing over a safe answer. Against
    /// over-refusal; needs `fluency_weight` > 0 (at 0 the capped candidates
    /// would all tie). `None` (the default): rewards uncapped, the paper's
    /// ranking.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub reward_cap: Option<f32>,
}

fn is_zero(value: &f32) -> bool {
    *value == 0.0
}

impl Default for SaffronConfig {
    fn default() -> Self {
        SaffronConfig {
            width: 32,
            top_p: 0.8,
            conservative: true,
            final_pick: FinalPick::Mrm,
            variant: SaffronVariant::Default,
            fluency_weight: 0.0,
            reward_cap: None,
        }
    }
}

/// How Saffron picks its answer among the finished nodes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum FinalPick {
    /// The highest MRM score (the score of the candidate that created it).
    Mrm,
    /// Re-rank the finished nodes with the PRM (one call each) and take the best.
    PrmRerank,
}

/// Which node bookkeeping Saffron uses (method.md section 3).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum SaffronVariant {
    /// A node's score is the MRM value of the candidate that created it.
    Default,
    /// The released code's bookkeeping, to reproduce the paper's numbers:
    /// unfinished nodes keep a reward of −∞, a node finished by
    /// end-of-generation takes that candidate's reward, unseen tokens get
    /// −1024, and the answer is the first node of maximal reward.
    Reference,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn toml_round_trips_and_fills_defaults() {
        let config: SearchConfig = toml::from_str(
            r#"
            seed = 7
            [strategy]
            name = "saffron"
            width = 8
            [length]
            max_new_tokens = 20
            "#,
        )
        .unwrap();
        assert_eq!(config.seed, 7);
        assert_eq!(config.length, LengthLimits { max_new_tokens: 20, min_new_tokens: 16 });
        let Strategy::Saffron(s) = config.strategy else { panic!("not saffron") };
        assert_eq!(s, SaffronConfig { width: 8, ..SaffronConfig::default() });
        let back: SearchConfig = toml::from_str(&toml::to_string(&config).unwrap()).unwrap();
        assert_eq!(back, config);
    }

    #[test]
    fn unknown_keys_and_names_are_refused() {
        let bad_key = toml::from_str::<SearchConfig>("[strategy]\nname = \"beam\"\nwidht = 3\n");
        assert!(bad_key.unwrap_err().to_string().contains("widht"));
        let bad_name = toml::from_str::<SearchConfig>("[strategy]\nname = \"mcts\"\n");
        assert!(bad_name.unwrap_err().to_string().contains("mcts"));
    }

    #[test]
    fn every_kind_maps_to_its_strategy_and_validation_catches_zeros() {
        for kind in StrategyKind::ALL {
            let s = kind.default_strategy();
            assert_eq!(s.kind(), kind);
            assert_eq!(kind.name().parse::<StrategyKind>(), Ok(kind));
            assert_eq!(serde_json::to_value(kind).unwrap(), kind.name());
            assert_eq!(s.width().is_some(), kind.has_width());
            assert!(SearchConfig::new(s).validate().is_ok());
        }
        let err = "mcts".parse::<StrategyKind>().unwrap_err();
        assert!(err.contains("unknown strategy `mcts`; use one of sample, best-of-n"), "{err}");
        let mut s = StrategyKind::Beam.default_strategy();
        s.set_width(0).unwrap();
        assert!(SearchConfig::new(s).validate().unwrap_err().contains("width"));
        // Every size is bounded, and the message names the bound.
        for kind in StrategyKind::ALL.into_iter().filter(|k| k.has_width()) {
            let mut s = kind.default_strategy();
            s.set_width(9_223_372_036_854_775_808).unwrap();
            let err = SearchConfig::new(s).validate().unwrap_err();
            assert!(err.contains("between 1 and 1024 (got 9223372036854775808)"), "{kind}: {err}");
        }
        let mut long = SearchConfig::new(StrategyKind::Sample.default_strategy());
        long.length.max_new_tokens = 100_000;
        assert!(long.validate().unwrap_err().contains("length.max_new_tokens must be between 1 and 8192"));
        assert!(StrategyKind::Sample.default_strategy().set_width(3).is_err());
    }

    #[test]
    fn the_models_each_strategy_needs() {
        let needs: Vec<(bool, bool)> = StrategyKind::ALL.iter().map(|k| (k.needs_prm(), k.needs_mrm())).collect();
        let (no, prm, mrm) = ((false, false), (true, false), (false, true));
        assert_eq!(needs, [no, prm, prm, prm, prm, mrm]);
        let rerank = Strategy::Saffron(SaffronConfig { final_pick: FinalPick::PrmRerank, ..SaffronConfig::default() });
        assert!(rerank.needs_prm() && rerank.needs_mrm());
        assert!(!StrategyKind::Saffron.default_strategy().needs_prm());
    }
}
