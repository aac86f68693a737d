//! What a reward model was trained on, read from its manifest without
//! loading any weights: what `saffron eval` checks a grid's prompts against
//! (architecture.md, "Data discipline").

use saffron_core::TrainedPrompts;

use crate::mrm::artifact as mrm_artifact;
use crate::mrm::default::default_mrm;
use crate::probe::artifact as probe_artifact;
use crate::probe::default::{default_guard, default_judge};
use crate::{GuardSpec, JudgeSpec, MrmSpec, RewardError};

/// What is known of a model's training prompts.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Training {
    /// Rules, not training (the refusal strings).
    None,
    /// A model saffron did not train (a GGUF verdict guard, a released
    /// paper-form MRM): its data is not known here.
    External,
    /// A saffron artifact made before trainers recorded their prompts.
    Unrecorded,
    /// The prompts it was trained on.
    Prompts(TrainedPrompts),
}

impl From<Option<TrainedPrompts>> for Training {
    fn from(prompts: Option<TrainedPrompts>) -> Training {
        prompts.map_or(Training::Unrecorded, Training::Prompts)
    }
}

impl GuardSpec {
    pub fn training(&self) -> Result<Training, RewardError> {
        Ok(match self {
            GuardSpec::BuiltIn => default_guard()?.1.training.prompts.into(),
            GuardSpec::BuiltInJudge => default_judge()?.1.training.prompts.into(),
            GuardSpec::Probe(dir) => probe_artifact::load(dir)?.1.training.prompts.into(),
            GuardSpec::Verdict { .. } => Training::External,
        })
    }
}

impl MrmSpec {
    pub fn training(&self) -> Result<Training, RewardError> {
        Ok(match self {
            MrmSpec::BuiltIn => default_mrm()?.1.prompts.into(),
            MrmSpec::Trained(dir) => mrm_artifact::load(dir)?.1.prompts.into(),
            MrmSpec::Paper { .. } => Training::External,
        })
    }
}

impl JudgeSpec {
    pub fn training(&self) -> Result<Training, RewardError> {
        match self {
            JudgeSpec::Refusal => Ok(Training::None),
            JudgeSpec::Guard(guard) => guard.training(),
        }
    }
}
