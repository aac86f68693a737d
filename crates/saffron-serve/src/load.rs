//! Loading the configured models: the policy behind one shared prefix tree
//! ([`BatchedPolicy`]) or on a remote server ([`RemotePolicy`]), the reward
//! models, the output check's judge.

use std::path::Path;
use std::time::Duration;

use saffron_defence::remote::RemoteError;
use saffron_defence::{BatchOptions, BatchedPolicy, DefenceModels, GuardSpec, JudgeSpec, MrmSpec, PrmBackend};
use saffron_defence::{MrmBackend, PolicyBackend, RemotePolicy};
use saffron_engine::TreeOptions;
use saffron_reward::{LoadedMrm, Loader};

use crate::answer::error_chain;
use crate::state::{Loaded, OutputJudge};
use crate::ServeConfig;

/// A reward model left out (`prm = "none"`).
pub const NONE: &str = "none";
/// The MRM stand-in that reads the policy's own logits (for benchmarks of
/// a policy without a trained MRM; not a safety model).
pub const POLICY_LOGITS: &str = "policy-logits";

/// Loads what `config` names from `home` (`$SAFFRON_HOME`).
pub fn load(home: &Path, config: &ServeConfig) -> Result<Loaded, String> {
    let m = &config.models;
    let loader = Loader::new(home);
    let tree = TreeOptions { threads: m.threads, max_cells: m.max_cells, ..BatchOptions::default().tree };
    let policy_error = |e: &dyn std::error::Error| format!("policy `{}`: {}", m.policy, error_chain(e));
    let (policy, remote) = match &m.remote {
        Some(table) => {
            let (vocabulary, remote) = RemotePolicy::load(&loader, &m.policy, table).map_err(|e| policy_error(&e))?;
            (vocabulary, Some(remote))
        }
        None => (loader.model(&m.policy).map_err(|e| policy_error(&e))?, None),
    };
    let prm = match m.prm.as_deref().filter(|s| *s != NONE) {
        Some(spec) => {
            let guard = GuardSpec::parse(spec, None)
                .and_then(|g| loader.guard(&g))
                .map_err(|e| format!("prm `{spec}`: {}", error_chain(&e)))?;
            Some(Box::new(guard) as Box<dyn PrmBackend>)
        }
        None => None,
    };
    let mrm = match m.mrm.as_deref().filter(|s| *s != NONE) {
        Some(POLICY_LOGITS) => Some(Box::new(LoadedMrm::policy_logits()) as Box<dyn MrmBackend>),
        Some(spec) => {
            let mrm = MrmSpec::parse(spec, None)
                .and_then(|s| loader.mrm(&s, &policy))
                .map_err(|e| format!("mrm `{spec}`: {}", error_chain(&e)))?;
            if remote.is_some() && mrm.reads_policy_hidden() {
                return Err(format!("mrm `{spec}`: {}", RemoteError::NoHiddenStates));
            }
            Some(Box::new(mrm) as Box<dyn MrmBackend>)
        }
        None => None,
    };
    let check = match &config.output_check {
        Some(c) => {
            let judge = JudgeSpec::parse(&c.judge, None)
                .and_then(|j| loader.judge(&j))
                .map_err(|e| format!("output_check.judge `{}`: {}", c.judge, error_chain(&e)))?;
            Some(OutputJudge { name: c.judge.clone(), judge, refusal: c.refusal.clone() })
        }
        None => None,
    };
    let options =
        BatchOptions { tree, gather: Duration::from_millis(config.server.gather_ms), idle_cells: m.idle_cells };
    let backend: Box<dyn PolicyBackend> = match remote {
        Some(remote) => Box::new(remote),
        None => Box::new(BatchedPolicy::new(policy, options)),
    };
    let models = DefenceModels::new(backend, prm, mrm, tree);
    Ok(Loaded { models, check })
}
