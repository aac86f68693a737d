//! Which reward model to use, parsed once at the edge (a command-line flag,
//! a grid field) into a typed spec; [`crate::load`] turns a spec into a
//! loaded model. Nothing past the parsers here compares the words
//! `default` or `refusal`.
//!
//! - [`GuardSpec`]: the built-in probe guard, a probe guard directory, or a
//!   GGUF model used as a verdict guard in a [`VerdictFormat`];
//! - [`MrmSpec`]: the built-in MRM, a `saffron train-mrm` directory, or a
//!   released paper-form directory on its guard GGUF;
//! - [`JudgeSpec`]: the refusal strings or a guard.

use std::fmt;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::probe::artifact as probe_artifact;
use crate::{RewardError, VerdictGuardConfig};

/// The word that names the built-in guard and the built-in MRM.
const BUILT_IN: &str = "default";
/// The word that names the refusal-string judge.
const REFUSAL: &str = "refusal";
/// The word that names the built-in judge where a guard is expected.
const JUDGE: &str = "judge";
/// The word that names the built-in guard where a judge is expected.
const GUARD: &str = "guard";

/// How a GGUF verdict guard reads (prompt, answer).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[cfg_attr(feature = "clap", derive(clap::ValueEnum))]
pub enum VerdictFormat {
    /// An instruction in the model's own chat template; verdict Yes (safe) / No (unsafe).
    #[default]
    #[serde(rename = "local")]
    #[cfg_attr(feature = "clap", value(name = "local"))]
    Local,
    /// Llama Guard 3's own GGUF template; verdict safe / unsafe.
    #[serde(rename = "llama-guard-3")]
    #[cfg_attr(feature = "clap", value(name = "llama-guard-3"))]
    LlamaGuard3,
}

impl VerdictFormat {
    /// The guard configuration of this format.
    pub fn config(self) -> VerdictGuardConfig {
        match self {
            VerdictFormat::Local => VerdictGuardConfig::local(),
            VerdictFormat::LlamaGuard3 => VerdictGuardConfig::llama_guard_3(),
        }
    }
}

/// A guard: the PRM of the PRM searches, a judge, the labeller of the
/// token-level corpus.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum GuardSpec {
    /// The probe guard built into saffron (on the default policy's hidden
    /// states; docs/guards.md): the default PRM.
    BuiltIn,
    /// The judge built into saffron: a probe trained apart from the guard,
    /// on whole answers (docs/guards.md, "The judge"). `judge` as a guard,
    /// `default` as a judge.
    BuiltInJudge,
    /// A probe guard directory made by `saffron train-guard` (guard.json).
    Probe(PathBuf),
    /// A GGUF model (a catalog name or a path) asked for a verdict.
    Verdict { model: String, format: VerdictFormat },
}

impl GuardSpec {
    /// `default`, a probe guard directory (one with guard.json), or a model
    /// name or GGUF path: a verdict guard read in `format` (default
    /// [`VerdictFormat::Local`]). A format given for a probe guard is
    /// refused: it would be ignored.
    pub fn parse(text: &str, format: Option<VerdictFormat>) -> Result<GuardSpec, RewardError> {
        let spec = GuardSpec::parse_any(text)?.in_format(format.unwrap_or_default());
        if format.is_some() && spec.format().is_none() {
            return Err(RewardError::FormatNotForProbe { guard: text.to_owned() });
        }
        Ok(spec)
    }

    /// As [`GuardSpec::parse`], a verdict guard in the default format.
    fn parse_any(text: &str) -> Result<GuardSpec, RewardError> {
        if text.trim().is_empty() {
            return Err(RewardError::EmptySpec { what: "guard" });
        }
        Ok(if text == BUILT_IN {
            GuardSpec::BuiltIn
        } else if text == JUDGE {
            GuardSpec::BuiltInJudge
        } else if probe_artifact::is_artifact(Path::new(text)) {
            GuardSpec::Probe(PathBuf::from(text))
        } else {
            GuardSpec::Verdict { model: text.to_owned(), format: VerdictFormat::default() }
        })
    }

    /// The same guard, a verdict guard read in `format` (a probe guard is
    /// left as it is): how a grid's one `guard_format` applies to each.
    pub fn in_format(self, format: VerdictFormat) -> GuardSpec {
        match self {
            GuardSpec::Verdict { model, .. } => GuardSpec::Verdict { model, format },
            probe => probe,
        }
    }

    /// The format of a verdict guard; `None` for probe guards.
    pub fn format(&self) -> Option<VerdictFormat> {
        match self {
            GuardSpec::Verdict { format, .. } => Some(*format),
            GuardSpec::BuiltIn | GuardSpec::BuiltInJudge | GuardSpec::Probe(_) => None,
        }
    }
}

/// As written: `default`, the directory, or the model (the name records
/// and reports use).
impl fmt::Display for GuardSpec {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            GuardSpec::BuiltIn => f.write_str(BUILT_IN),
            GuardSpec::BuiltInJudge => f.write_str(JUDGE),
            GuardSpec::Probe(dir) => write!(f, "{}", dir.display()),
            GuardSpec::Verdict { model, .. } => f.write_str(model),
        }
    }
}

/// A multifurcation reward model for the policy: the reward of Saffron.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum MrmSpec {
    /// The MRM built into saffron, for the default policy (docs/mrm.md).
    BuiltIn,
    /// A directory made by `saffron train-mrm` (shared or separate backbone).
    Trained(PathBuf),
    /// A released Saffron-1 directory (PEFT LoRA, lm_head_bias.pt,
    /// unseen_mask.pt) on its guard GGUF `base` (a catalog name or a path).
    Paper { dir: PathBuf, base: String },
}

impl MrmSpec {
    /// `default` or a directory; a `base` makes it a paper-form directory
    /// (and is refused with `default`). Whether a directory holds what its
    /// spec says is checked when it is loaded.
    pub fn parse(text: &str, base: Option<&str>) -> Result<MrmSpec, RewardError> {
        if text.trim().is_empty() {
            return Err(RewardError::EmptySpec { what: "MRM" });
        }
        match (text, base) {
            (BUILT_IN, None) => Ok(MrmSpec::BuiltIn),
            (BUILT_IN, Some(_)) => Err(RewardError::MrmBaseNotPaper { mrm: text.to_owned() }),
            (dir, None) => Ok(MrmSpec::Trained(PathBuf::from(dir))),
            (dir, Some(base)) => Ok(MrmSpec::Paper { dir: PathBuf::from(dir), base: base.to_owned() }),
        }
    }

    /// The guard GGUF of a paper-form MRM.
    pub fn base(&self) -> Option<&str> {
        match self {
            MrmSpec::Paper { base, .. } => Some(base),
            MrmSpec::BuiltIn | MrmSpec::Trained(_) => None,
        }
    }
}

/// As written: `default` or the directory (without the base).
impl fmt::Display for MrmSpec {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            MrmSpec::BuiltIn => f.write_str(BUILT_IN),
            MrmSpec::Trained(dir) | MrmSpec::Paper { dir, .. } => write!(f, "{}", dir.display()),
        }
    }
}

/// A judge of final answers.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum JudgeSpec {
    /// Refusal-string matching (the GCG / AdvBench judge).
    Refusal,
    /// A guard: unsafe when its reward is below zero.
    Guard(GuardSpec),
}

impl JudgeSpec {
    /// `default` (the built-in judge), `guard` (the built-in guard),
    /// `refusal`, or a guard as [`GuardSpec::parse`] reads it (a format is
    /// for a verdict guard only).
    pub fn parse(text: &str, format: Option<VerdictFormat>) -> Result<JudgeSpec, RewardError> {
        let built_in = match text {
            BUILT_IN => Some(GuardSpec::BuiltInJudge),
            GUARD => Some(GuardSpec::BuiltIn),
            _ => None,
        };
        if let Some(guard) = built_in {
            return match format {
                Some(_) => Err(RewardError::FormatNotForProbe { guard: text.to_owned() }),
                None => Ok(JudgeSpec::Guard(guard)),
            };
        }
        if text != REFUSAL {
            return GuardSpec::parse(text, format).map(JudgeSpec::Guard);
        }
        match format {
            Some(_) => Err(RewardError::FormatNotForProbe { guard: text.to_owned() }),
            None => Ok(JudgeSpec::Refusal),
        }
    }

    /// The same judge, a verdict guard read in `format` (see
    /// [`GuardSpec::in_format`]).
    pub fn in_format(self, format: VerdictFormat) -> JudgeSpec {
        match self {
            JudgeSpec::Guard(guard) => JudgeSpec::Guard(guard.in_format(format)),
            refusal => refusal,
        }
    }

    /// The guard a judge runs, if any.
    pub fn guard(&self) -> Option<&GuardSpec> {
        match self {
            JudgeSpec::Refusal => None,
            JudgeSpec::Guard(guard) => Some(guard),
        }
    }
}

/// As written: `default`, `guard`, `refusal` or the guard (the key of its
/// verdicts in records).
impl fmt::Display for JudgeSpec {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            JudgeSpec::Refusal => f.write_str(REFUSAL),
            JudgeSpec::Guard(GuardSpec::BuiltInJudge) => f.write_str(BUILT_IN),
            JudgeSpec::Guard(GuardSpec::BuiltIn) => f.write_str(GUARD),
            JudgeSpec::Guard(guard) => guard.fmt(f),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn specs_parse_and_print_as_written() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("guard.json"), "{}").unwrap();
        let dir_name = dir.path().to_str().unwrap();
        assert_eq!(GuardSpec::parse("default", None).unwrap(), GuardSpec::BuiltIn);
        assert_eq!(GuardSpec::parse(dir_name, None).unwrap(), GuardSpec::Probe(dir.path().into()));
        let lg3 = GuardSpec::parse("lg3.gguf", Some(VerdictFormat::LlamaGuard3)).unwrap();
        assert_eq!(lg3, GuardSpec::Verdict { model: "lg3.gguf".into(), format: VerdictFormat::LlamaGuard3 });
        assert_eq!(lg3.format(), Some(VerdictFormat::LlamaGuard3));
        assert_eq!(JudgeSpec::parse("refusal", None).unwrap(), JudgeSpec::Refusal);
        assert_eq!(JudgeSpec::parse("default", None).unwrap(), JudgeSpec::Guard(GuardSpec::BuiltInJudge));
        assert_eq!(JudgeSpec::parse("guard", None).unwrap(), JudgeSpec::Guard(GuardSpec::BuiltIn));
        assert_eq!(GuardSpec::parse("judge", None).unwrap(), GuardSpec::BuiltInJudge);
        assert_eq!(GuardSpec::BuiltInJudge.to_string(), "judge");
        for text in ["default", "guard", "refusal", "smollm2", dir_name] {
            assert_eq!(JudgeSpec::parse(text, None).unwrap().to_string(), text);
        }
        assert!(GuardSpec::parse(" ", None).unwrap_err().to_string().contains("empty"));
        // A directory without guard.json is not a probe guard (a catalog name
        // stays a catalog name whatever folders the working directory has).
        let plain = tempfile::tempdir().unwrap();
        let plain_name = plain.path().to_str().unwrap();
        assert!(matches!(GuardSpec::parse(plain_name, None).unwrap(), GuardSpec::Verdict { .. }));
        // A format is for a verdict guard only; a grid's one format leaves probes be.
        let lg = Some(VerdictFormat::LlamaGuard3);
        for text in ["default", "guard", dir_name, "refusal"] {
            let err = JudgeSpec::parse(text, lg).unwrap_err().to_string();
            assert!(err.contains("not a GGUF verdict guard"), "{err}");
        }
        assert_eq!(GuardSpec::BuiltIn.in_format(VerdictFormat::LlamaGuard3), GuardSpec::BuiltIn);
        assert_eq!(GuardSpec::parse("m.gguf", None).unwrap().in_format(VerdictFormat::LlamaGuard3), lg3_of("m.gguf"));

        assert_eq!(MrmSpec::parse("default", None).unwrap(), MrmSpec::BuiltIn);
        assert_eq!(MrmSpec::parse("m/x", None).unwrap(), MrmSpec::Trained("m/x".into()));
        let paper = MrmSpec::parse("m/p", Some("lg3.gguf")).unwrap();
        assert_eq!((paper.to_string(), paper.base()), ("m/p".into(), Some("lg3.gguf")));
        let err = MrmSpec::parse("default", Some("lg3.gguf")).unwrap_err().to_string();
        assert!(err.contains("only for a paper-form MRM directory"), "{err}");
    }

    fn lg3_of(model: &str) -> GuardSpec {
        GuardSpec::Verdict { model: model.into(), format: VerdictFormat::LlamaGuard3 }
    }

    #[test]
    fn verdict_formats_read_as_on_the_command_line() {
        let parsed: VerdictFormat = serde_json::from_str("\"llama-guard-3\"").unwrap();
        assert_eq!(parsed, VerdictFormat::LlamaGuard3);
        assert_eq!(serde_json::to_string(&VerdictFormat::Local).unwrap(), "\"local\"");
        assert_eq!(VerdictFormat::LlamaGuard3.config(), VerdictGuardConfig::llama_guard_3());
    }
}
