//! A defence and the models it draws on.

use saffron_core::sampling::{log_sum_exp, top_logprobs};
use saffron_core::{Cost, ModelRole, TokenId, WantedOutputs};
use saffron_engine::{ChatPrompt, HiddenStates, TreeOptions};
use saffron_reward::{GuardSpec, Loader, MrmSpec};
use saffron_search::{
    search, think, FinishReason, Models, ReasoningConfig, SearchConfig, SearchError, SearchObserver, StopCause,
    Thinking, ThinkingEnd,
};
use serde::{Deserialize, Serialize};
use std::time::Instant;

use crate::backend::{MrmBackend, PolicyBackend, PolicySession, PrmBackend};
use crate::local::LocalPolicy;
use crate::reasoning::{Reasoning, ThinkingPrompt, MONITOR_REFUSAL};
use crate::remote::{NucleusCuts, RemoteError, RemotePolicy, RemoteTable};
use crate::DefenceError;

/// The models of a defence, as specs: the policy (a catalog name or a GGUF
/// path), the guard that is the PRM of the PRM searches, and the MRM of
/// Saffron. Either reward model may be absent if no search uses it.
#[derive(Debug, Clone, PartialEq)]
pub struct DefenceSpec {
    /// With `remote`, the GGUF the server runs: read for its vocabulary,
    /// chat template and shape only.
    pub policy: String,
    /// A server that runs the policy (see [`crate::remote`]); `None` runs
    /// it here.
    pub remote: Option<RemoteTable>,
    pub prm: Option<GuardSpec>,
    pub mrm: Option<MrmSpec>,
}

/// Loaded models, shared by every defence of a run (each defence a search
/// configuration over them).
pub struct DefenceModels {
    policy: Box<dyn PolicyBackend>,
    prm: Option<Box<dyn PrmBackend>>,
    mrm: Option<Box<dyn MrmBackend>>,
    options: TreeOptions,
    binding: RewardBinding,
}

/// Which of the loaded reward models a search is bound to.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum RewardBinding {
    /// Those its strategy uses: the MRM only for Saffron, so only Saffron's
    /// policy tree keeps the hidden states a shared-backbone MRM reads.
    #[default]
    WhenUsed,
    /// Every loaded MRM, whatever the strategy: what runs made before
    /// 2026-12-01 did. With a shared-backbone MRM it charged every cell an
    /// output row per prompt token for hidden states it never read. Kept
    /// only so that such runs resume with the records they began with.
    Always,
}

impl DefenceModels {
    /// Loads the models `spec` names with `loader` (each file once: a guard
    /// on the policy's backbone shares its weights); every search builds
    /// its prefix trees with `options`.
    pub fn load(spec: &DefenceSpec, loader: &Loader, options: TreeOptions) -> Result<DefenceModels, DefenceError> {
        let (policy, backend): (_, Box<dyn PolicyBackend>) = match &spec.remote {
            None => {
                let policy = loader.model(&spec.policy)?;
                (policy.clone(), Box::new(LocalPolicy::new(policy)))
            }
            Some(remote) => {
                let (vocabulary, backend) = RemotePolicy::load(loader, &spec.policy, remote)?;
                (vocabulary, Box::new(backend))
            }
        };
        let prm = spec.prm.as_ref().map(|g| loader.guard(g)).transpose()?;
        let mrm = spec.mrm.as_ref().map(|m| loader.mrm(m, &policy)).transpose()?;
        if spec.remote.is_some() && mrm.as_ref().is_some_and(|m| m.reads_policy_hidden()) {
            return Err(RemoteError::NoHiddenStates.into());
        }
        Ok(DefenceModels::new(
            backend,
            prm.map(|p| Box::new(p) as Box<dyn PrmBackend>),
            mrm.map(|m| Box::new(m) as Box<dyn MrmBackend>),
            options,
        ))
    }

    /// Models from any backends (fakes, or engines of other kinds).
    pub fn new(
        policy: Box<dyn PolicyBackend>,
        prm: Option<Box<dyn PrmBackend>>,
        mrm: Option<Box<dyn MrmBackend>>,
        options: TreeOptions,
    ) -> DefenceModels {
        DefenceModels { policy, prm, mrm, options, binding: RewardBinding::default() }
    }

    /// Binds the reward models to searches as `binding` says.
    pub fn set_binding(&mut self, binding: RewardBinding) {
        self.binding = binding;
    }

    pub fn binding(&self) -> RewardBinding {
        self.binding
    }

    pub fn policy(&self) -> &dyn PolicyBackend {
        self.policy.as_ref()
    }

    pub fn prm(&self) -> Option<&dyn PrmBackend> {
        self.prm.as_deref()
    }

    pub fn mrm(&self) -> Option<&dyn MrmBackend> {
        self.mrm.as_deref()
    }

    /// The options every search's prefix trees are built with.
    pub fn options(&self) -> TreeOptions {
        self.options
    }

    /// A defence searching with `search` over these models; refused when
    /// the configuration is invalid or the strategy needs a model that is
    /// not here.
    pub fn defence(&self, search: SearchConfig) -> Result<Defence<'_>, DefenceError> {
        search.validate().map_err(SearchError::InvalidConfig)?;
        let strategy = search.strategy.kind();
        if search.strategy.needs_prm() && self.prm.is_none() {
            return Err(SearchError::MissingModel { strategy, role: ModelRole::Prm }.into());
        }
        let monitored = search.reasoning.as_ref().is_some_and(|r| r.monitor.is_some());
        if monitored && self.prm.is_none() {
            return Err(SearchError::InvalidConfig(
                "reasoning.monitor reads the trace with the PRM guard, and none is loaded (name a guard)".into(),
            )
            .into());
        }
        if search.strategy.needs_mrm() && self.mrm.is_none() {
            return Err(SearchError::MissingModel { strategy, role: ModelRole::Mrm }.into());
        }
        Ok(Defence { models: self, search, logprobs: None, alternatives: usize::MAX })
    }
}

/// A policy, a search configuration and the reward models it needs.
pub struct Defence<'m> {
    models: &'m DefenceModels,
    search: SearchConfig,
    /// With `Some(k)`, answers carry each token's log-probability and the
    /// `k` most likely tokens at its position.
    logprobs: Option<usize>,
    /// Most runners-up an answer keeps (all unless told).
    alternatives: usize,
}

/// The policy's log-probability of one answer token (its own distribution:
/// no temperature, no nucleus), and the most likely tokens at that place.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct TokenLogprob {
    pub token: TokenId,
    pub logprob: f64,
    pub top: Vec<(TokenId, f64)>,
}

/// A defended answer and everything it cost.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Answer {
    pub text: String,
    /// Generated tokens only (the prefill is context, not output).
    pub tokens: Vec<TokenId>,
    #[serde(rename = "finish_reason")]
    pub finish: FinishReason,
    /// The score that made this answer win (PRM or MRM; `None` for `sample`).
    pub score: Option<f32>,
    /// Work of every model during the search (the judge is never charged).
    pub cost: Cost,
    /// Steps run (tokens, or chunks of tokens).
    pub steps: usize,
    pub stopped_by: Option<StopCause>,
    /// Tokens of the context: the chat template, the prompt and the prefill
    /// (with reasoning: up to the opening `<think>`; the trace is counted in
    /// `reasoning`, and the prefill after it in neither).
    pub prompt_tokens: usize,
    /// Of those, the tokens an earlier search left cached (a policy whose
    /// searches share a tree, as the server's; otherwise 0).
    pub cached_prompt_tokens: usize,
    /// Of the search's wall time (`cost.wall_seconds`), the time inside the
    /// inference engine (policy and PRM).
    pub engine_seconds: f64,
    /// Per answer token, when asked for ([`Defence::with_logprobs`]).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub logprobs: Option<Vec<TokenLogprob>>,
    /// The thinking before the answer, when the defence reasons; its cost
    /// is inside `cost`, and `text`/`tokens` are the answer alone.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub reasoning: Option<Reasoning>,
    /// Over a remote policy: where it ran, and how often the top-k tokens
    /// it returned held less than the search's nucleus.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub remote: Option<RemoteRun>,
    /// The answers the search ranked below this one, best first (Best-of-N's
    /// other samples; empty for strategies that end with one answer).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub alternatives: Vec<Alternative>,
}

/// How a search over a remote policy went.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RemoteRun {
    /// The server (`openai+http://…`).
    pub url: String,
    pub nucleus: NucleusCuts,
}

/// An answer the search ranked below the winner.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Alternative {
    pub text: String,
    pub tokens: Vec<TokenId>,
    #[serde(rename = "finish_reason")]
    pub finish: FinishReason,
    pub score: Option<f32>,
    /// Per token, when asked for ([`Defence::with_logprobs`]).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub logprobs: Option<Vec<TokenLogprob>>,
}

impl Defence<'_> {
    /// Answers (and the alternatives they keep) then carry each token's
    /// log-probability under the policy and the `top` most likely tokens at
    /// its place. The logits come from the search's own tree (cached, so
    /// mostly free) after the search; their cost is not part of the answer's.
    pub fn with_logprobs(mut self, top: usize) -> Self {
        self.logprobs = Some(top);
        self
    }

    /// Answers keep at most `most` of the search's runners-up (best first).
    pub fn with_alternatives(mut self, most: usize) -> Self {
        self.alternatives = most;
        self
    }

    /// Answers `chat` (what the policy reads: the system and user turns,
    /// the latter possibly wrapped in an attack template, and any forced
    /// prefill). The reward models read `request`, the user's request as
    /// asked, and the generated tokens. `observer` sees every step. With
    /// reasoning configured, the policy first thinks (see
    /// [`crate::reasoning`]) and the search answers after the trace.
    pub fn answer(
        &self,
        request: &str,
        chat: &ChatPrompt,
        observer: &mut dyn SearchObserver,
    ) -> Result<Answer, DefenceError> {
        let policy = self.models.policy.as_ref();
        let opening = match &self.search.reasoning {
            None => Opening::Plain(policy.encode_chat(chat)?),
            Some(config) => Opening::Thinking(ThinkingPrompt::new(policy, chat, config)?, config),
        };
        self.run(request, opening, observer)
    }

    /// Answers from policy tokens already made (a raw completion prompt),
    /// as [`answer`](Self::answer) does from a chat. Reasoning needs a chat
    /// to put its format in, so it is refused here.
    pub fn answer_context(
        &self,
        request: &str,
        context: Vec<TokenId>,
        observer: &mut dyn SearchObserver,
    ) -> Result<Answer, DefenceError> {
        if self.search.reasoning.is_some() {
            return Err(DefenceError::ReasoningNeedsChat);
        }
        self.run(request, Opening::Plain(context), observer)
    }

    fn run(&self, request: &str, opening: Opening, observer: &mut dyn SearchObserver) -> Result<Answer, DefenceError> {
        let models = self.models;
        let policy = models.policy.as_ref();
        let limit = policy.context_limit().min(models.options.max_cells as usize);
        let max_new_tokens = self.search.length.max_new_tokens;
        let (prompt_tokens, room) = match &opening {
            Opening::Plain(context) => (context.len(), max_new_tokens),
            Opening::Thinking(prompt, config) => (prompt.context.len(), prompt.room_needed(config, max_new_tokens)),
        };
        if prompt_tokens + room > limit {
            return Err(DefenceError::PromptTooLong { prompt_tokens, max_new_tokens: room, limit });
        }
        let options = models.options;
        let text = || Box::new(|t: &[TokenId]| policy.detokenize(t));
        let strategy = &self.search.strategy;
        let mut prm = match models.prm.as_deref().filter(|_| strategy.needs_prm()) {
            Some(prm) => Some(prm.bind(request, options, text())?),
            None => None,
        };
        let bind_mrm = strategy.needs_mrm() || models.binding == RewardBinding::Always;
        let mut mrm = match models.mrm.as_deref().filter(|_| bind_mrm) {
            Some(mrm) => Some(mrm.bind(request, options, text())?),
            None => None,
        };
        // Hidden states cost an output row for every prompt token: kept
        // only for an MRM that reads them.
        let hidden = if mrm.as_ref().is_some_and(|m| m.needs_policy_hidden()) {
            HiddenStates::Keep
        } else {
            HiddenStates::Discard
        };
        let mut tree = policy.open(TreeOptions { hidden, ..options })?;
        tree.set_nucleus(self.search.nucleus_mass());
        let clock = Instant::now();
        let mut monitor_cost = saffron_core::ModelCost::default();
        let (context, reasoning) = match opening {
            Opening::Plain(context) => (context, None),
            Opening::Thinking(prompt, config) => {
                let trace_text = |t: &[TokenId]| policy.detokenize(t);
                let mut monitor = match models.prm.as_deref().filter(|_| config.monitor.is_some()) {
                    Some(guard) => Some(guard.bind(request, options, text())?),
                    None => None,
                };
                let how = Thinking {
                    config,
                    decoding: self.search.decoding,
                    seed: self.search.seed,
                    markers: &prompt.markers,
                    text: &trace_text,
                };
                let thought =
                    think(&how, &mut *tree, &prompt.context, monitor.as_deref_mut().map(|m| m as _), observer)?;
                monitor_cost = monitor.map(|m| m.cost()).unwrap_or_default();
                let reasoning = Reasoning::new(prompt.format, &thought, policy);
                if thought.end == ThinkingEnd::Monitor {
                    return Ok(self.monitor_refusal(prompt.context.len(), reasoning, monitor_cost, clock));
                }
                (prompt.answer_context(&thought), Some(reasoning))
            }
        };
        let thinking_seconds = clock.elapsed().as_secs_f64();
        let outcome = {
            let mut search_models = Models {
                policy: &mut *tree,
                prm: prm.as_deref_mut().map(|p| p as _),
                mrm: mrm.as_deref_mut().map(|m| m as _),
            };
            search(&self.search, &mut search_models, &context, observer)?
        };
        let remote = policy.remote().map(|spec| RemoteRun {
            url: spec.to_string(),
            nucleus: NucleusCuts::count(tree.top_k_masses().unwrap_or_default(), self.search.nucleus_mass()),
        });
        let logprobs = match self.logprobs {
            Some(top) => Some(token_logprobs(&mut *tree, &context, &outcome.tokens, top)?),
            None => None,
        };
        let mut alternatives = Vec::new();
        for r in outcome.runners_up.into_iter().take(self.alternatives) {
            let logprobs = match self.logprobs {
                Some(top) => Some(token_logprobs(&mut *tree, &context, &r.tokens, top)?),
                None => None,
            };
            alternatives.push(Alternative {
                text: policy.detokenize(&r.tokens),
                tokens: r.tokens,
                finish: r.finish,
                score: r.score,
                logprobs,
            });
        }
        let cached_prompt_tokens = (tree.first_call_cached() as usize).min(prompt_tokens);
        let engine = tree.engine_time() + prm.as_ref().map(|p| p.engine_time()).unwrap_or_default();
        let mut cost = outcome.cost;
        if let Some(reasoning) = &reasoning {
            cost.policy += reasoning.cost;
            cost.prm += monitor_cost;
            cost.wall_seconds += thinking_seconds;
        }
        Ok(Answer {
            text: policy.detokenize(&outcome.tokens),
            tokens: outcome.tokens,
            finish: outcome.finish,
            score: outcome.score,
            cost,
            steps: outcome.steps,
            stopped_by: outcome.stopped_by,
            prompt_tokens,
            cached_prompt_tokens,
            engine_seconds: engine.as_secs_f64(),
            logprobs,
            reasoning,
            remote,
            alternatives,
        })
    }
}

impl Defence<'_> {
    /// The answer when the monitor stopped the thinking: a fixed refusal,
    /// no search.
    fn monitor_refusal(
        &self,
        prompt_tokens: usize,
        reasoning: Reasoning,
        monitor_cost: saffron_core::ModelCost,
        clock: Instant,
    ) -> Answer {
        let policy = self.models.policy.as_ref();
        let cost = Cost {
            policy: reasoning.cost,
            prm: monitor_cost,
            wall_seconds: clock.elapsed().as_secs_f64(),
            ..Cost::default()
        };
        Answer {
            text: MONITOR_REFUSAL.to_owned(),
            tokens: policy.tokenize(MONITOR_REFUSAL),
            finish: FinishReason::EndOfGeneration,
            score: None,
            cost,
            steps: 0,
            stopped_by: None,
            prompt_tokens,
            cached_prompt_tokens: 0,
            engine_seconds: 0.0,
            logprobs: None,
            reasoning: Some(reasoning),
            remote: None,
            alternatives: Vec::new(),
        }
    }
}

/// What a search starts from: a context, or a prompt to think after first.
enum Opening<'c> {
    Plain(Vec<TokenId>),
    Thinking(ThinkingPrompt, &'c ReasoningConfig),
}

/// The policy's log-probability of each answer token after `context` and
/// the tokens before it.
fn token_logprobs(
    policy: &mut dyn PolicySession,
    context: &[TokenId],
    answer: &[TokenId],
    top: usize,
) -> Result<Vec<TokenLogprob>, DefenceError> {
    let paths: Vec<Vec<TokenId>> = (0..answer.len()).map(|i| [context, &answer[..i]].concat()).collect();
    let refs: Vec<&[TokenId]> = paths.iter().map(Vec::as_slice).collect();
    let outputs = policy.outputs(&refs, WantedOutputs::Logits)?;
    Ok(outputs
        .iter()
        .zip(answer)
        .map(|(o, &token)| {
            let logits = o.logits.as_deref().unwrap_or_default();
            let logprob = logits.get(token as usize).map_or(f64::NEG_INFINITY, |&l| l as f64 - log_sum_exp(logits));
            TokenLogprob { token, logprob, top: top_logprobs(logits, top) }
        })
        .collect())
}
