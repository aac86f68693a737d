use saffron_core::{ModelError, ModelRole};

use crate::StrategyKind;

/// Everything that can stop a search.
#[derive(Debug, thiserror::Error)]
pub enum SearchError {
    #[error("the {strategy} strategy needs a {} model, and none was given", role_name(*.role))]
    MissingModel { strategy: StrategyKind, role: ModelRole },

    #[error("invalid search configuration: {0}")]
    InvalidConfig(String),

    #[error("the {role:?} model failed: {source}")]
    Model { role: ModelRole, source: ModelError },

    #[error("the {role:?} model returned no {what}")]
    MissingOutput { role: ModelRole, what: &'static str },

    #[error("the {role:?} model returned {got} results for {asked} sequences")]
    WrongLength { role: ModelRole, asked: usize, got: usize },
}

impl SearchError {
    pub(crate) fn model(role: ModelRole) -> impl FnOnce(ModelError) -> SearchError {
        move |source| SearchError::Model { role, source }
    }
}

fn role_name(role: ModelRole) -> &'static str {
    match role {
        ModelRole::Policy => "policy",
        ModelRole::Prm => "process reward (PRM)",
        ModelRole::Mrm => "multifurcation reward (MRM)",
    }
}
