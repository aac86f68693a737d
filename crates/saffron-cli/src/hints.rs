//! What to do about an error: the library errors say what went wrong, this
//! adds the flag or grid field that fixes it (the libraries do not know
//! the command line).

use std::error::Error;

use saffron_core::ModelRole;
use saffron_defence::DefenceError;
use saffron_engine::EngineError;
use saffron_eval::EvalError;
use saffron_reward::RewardError;
use saffron_search::SearchError;

/// A hint for `err`, if it is one saffron knows the fix of.
pub fn hint(err: &anyhow::Error) -> Option<&'static str> {
    err.chain().find_map(|e| {
        if let Some(SearchError::MissingModel { role, .. }) = search_error(e) {
            return match role {
                ModelRole::Prm => Some(
                    "pass a guard model with --guard NAME|PATH (`guard` in a grid); `default` is the built-in guard",
                ),
                ModelRole::Mrm => Some(
                    "pass --mrm default (the built-in MRM for the default policy qwen) or a `saffron train-mrm` \
                     directory (`mrm` in a grid)",
                ),
                ModelRole::Policy => None,
            };
        }
        if let Some(DefenceError::PromptTooLong { .. }) = defence_error(e) {
            return Some("shorten the prompt or lower --max-tokens");
        }
        match engine_error(e)? {
            EngineError::Context { .. } => Some("free memory: lower --jobs or the width, or use a smaller model"),
            EngineError::SequenceTooLong { .. } => Some("shorten the prompt or lower --max-tokens"),
            _ => None,
        }
    })
}

fn search_error<'a>(e: &'a (dyn Error + 'static)) -> Option<&'a SearchError> {
    e.downcast_ref::<SearchError>().or(match defence_error(e) {
        Some(DefenceError::Search(s)) => Some(s),
        _ => match eval_error(e) {
            Some(EvalError::Search(s)) => Some(s),
            _ => None,
        },
    })
}

fn defence_error<'a>(e: &'a (dyn Error + 'static)) -> Option<&'a DefenceError> {
    e.downcast_ref::<DefenceError>().or(match eval_error(e) {
        Some(EvalError::Defence(d)) => Some(d),
        _ => None,
    })
}

/// An evaluation error, also where a box (the record being answered)
/// hides it from the chain.
fn eval_error<'a>(e: &'a (dyn Error + 'static)) -> Option<&'a EvalError> {
    e.downcast_ref::<EvalError>().or(e.downcast_ref::<Box<EvalError>>().map(|b| &**b))
}

/// An engine error, also where a transparent wrapper or a box hides it from
/// the chain.
fn engine_error<'a>(e: &'a (dyn Error + 'static)) -> Option<&'a EngineError> {
    let reward = |r: &'a RewardError| match r {
        RewardError::Engine(engine) => Some(engine),
        _ => None,
    };
    if let Some(engine) = e.downcast_ref::<EngineError>() {
        return Some(engine);
    }
    if let Some(r) = e.downcast_ref::<RewardError>().or(e.downcast_ref::<Box<RewardError>>().map(|b| &**b)) {
        return reward(r);
    }
    match defence_error(e) {
        Some(DefenceError::Engine(engine)) => return Some(engine),
        Some(DefenceError::Reward(r)) => return reward(r),
        _ => {}
    }
    match eval_error(e)? {
        EvalError::Engine(engine) => Some(engine),
        EvalError::Reward(r) => reward(r),
        _ => None,
    }
}
