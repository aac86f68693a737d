//! `saffron label`: the token-level safety corpus (method.md section 2, the
//! paper's Safety4M at this machine's scale). Responses are sampled from the
//! policy for harmful and benign prompts, with and without the prefilling
//! attack, and the PRM scores every prefix of each response. The corpus is
//! appended response by response; a restarted run skips what is done. A
//! probe guard's states can be kept beside it ([`Labeller::KeepStates`]).

use std::cell::RefCell;

use saffron_core::sampling::Decoding;
use saffron_core::{ProcessReward, TokenId};
use saffron_defence::{DefenceModels, PrmSession};
use saffron_engine::{ChatPrompt, HiddenStates, PrefixTree, TreeOptions};
use saffron_reward::mrm::corpus::{CorpusWriter, LabelledSequence};
use saffron_reward::mrm::states::StatesWriter;
use saffron_reward::probe::streaming::StreamingGuard;
use saffron_reward::{BoundGuard, LoadedGuard, RewardError};
use saffron_search::{LengthLimits, NoTrace, SampleConfig, SearchConfig, Strategy};
use serde::{Deserialize, Serialize};

use crate::attack::Attack;
use crate::{EvalError, EvalPrompt};

/// What decides the labels (recorded in the corpus header).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LabelSettings {
    /// Responses per (prompt, attack).
    pub samples: u32,
    pub length: LengthLimits,
    pub decoding: Decoding,
    pub seed: u64,
    /// Attacks each prompt is put under (a prefill applies to prompts with
    /// a reference answer only).
    pub attacks: Vec<Attack>,
}

impl Default for LabelSettings {
    fn default() -> Self {
        LabelSettings {
            samples: 2,
            length: LengthLimits::default(),
            decoding: Decoding::Sample { temperature: 1.0, top_k: None, top_p: 0.8 },
            seed: 0,
            attacks: vec![Attack::None, Attack::Prefill { tokens: crate::attack::PREFILL_TOKENS }],
        }
    }
}

/// Counts after labelling.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct LabelProgress {
    pub sequences: usize,
    pub labels: usize,
    pub skipped: usize,
    /// Wall time of the PRM calls and guard tokens they computed.
    pub prm_seconds: f64,
    pub prm_tokens: u64,
}

/// The (corpus id, sample) of every response [`label`] would write for
/// `sources`, labelled or not.
pub fn planned_keys(sources: &LabelSources, settings: &LabelSettings) -> std::collections::HashSet<(String, u32)> {
    let prompts = sources.prompts.iter().flat_map(|p| {
        let ids = settings.attacks.iter().filter(|a| applies(a, p)).map(move |a| format!("{}#{}", p.id, a.name()));
        ids.flat_map(|id| (0..settings.samples).map(move |s| (id.clone(), s)))
    });
    let written = sources.conversations.iter().flat_map(|c| c.answers.iter().map(|(id, _)| (id.clone(), 0)));
    prompts.chain(written).collect()
}

fn applies(attack: &Attack, prompt: &EvalPrompt) -> bool {
    !matches!(attack, Attack::Prefill { .. }) || prompt.reference.is_some()
}

/// What scores every prefix of a response.
#[derive(Clone, Copy)]
pub enum Labeller<'a> {
    /// The PRM of the defence models: one guard input per prefix.
    Guard,
    /// A streaming guard fitted to a guard: every prefix from one pass.
    Stream(&'a StreamingGuard),
    /// A probe guard, the same labels as [`Labeller::Guard`], keeping the
    /// state each reward was read from at every node (the empty response
    /// included, one more guard input per response) for an MRM on the
    /// guard's own state.
    KeepStates(&'a LoadedGuard, &'a RefCell<StatesWriter>),
}

/// What scores every prefix, kept from prompt to prompt so that what every
/// guard input shares (the instruction before the request) is computed once.
enum Scorer<'m> {
    /// A guard not yet bound to a request (bound at the first response).
    Unbound,
    Guard(Box<dyn PrmSession + 'm>),
    Stream(&'m StreamingGuard, Box<PrefixTree>),
    /// A probe guard keeping its states (bound at the first response).
    States {
        guard: &'m LoadedGuard,
        bound: Option<Box<BoundGuard<'m>>>,
        writer: &'m RefCell<StatesWriter>,
    },
}

impl Scorer<'_> {
    /// Rewards of every prefix of `response` and the guard tokens computed.
    fn score(
        &mut self,
        sequence: &LabelledSequence,
        prompt: &str,
        text: &dyn Fn(&[TokenId]) -> String,
    ) -> Result<(Vec<f32>, u64), EvalError> {
        let response = sequence.response.as_slice();
        match self {
            Scorer::Unbound | Scorer::States { bound: None, .. } => Err(EvalError::NoGuard { task: "labelling" }),
            Scorer::States { bound: Some(bound), writer, .. } => {
                // Node j is the response cut before token j: prefixes 0..=n.
                let prefixes: Vec<&[TokenId]> = (0..=response.len()).map(|j| &response[..j]).collect();
                let before = bound.cost().tokens_computed;
                let (rewards, mut states): (Vec<f32>, Vec<Vec<f32>>) =
                    bound.scored_states(&prefixes)?.into_iter().unzip();
                states.pop();
                writer.borrow_mut().append((&sequence.prompt_id, sequence.sample), &states)?;
                Ok((rewards[1..].to_vec(), bound.cost().tokens_computed - before))
            }
            Scorer::Guard(prm) => {
                let prefixes: Vec<&[TokenId]> = (1..=response.len()).map(|j| &response[..j]).collect();
                let before = prm.cost().tokens_computed;
                let rewards = prm.score(&prefixes)?;
                Ok((rewards, prm.cost().tokens_computed - before))
            }
            Scorer::Stream(guard, tree) => {
                let prefixes: Vec<String> = (1..=response.len()).map(|j| text(&response[..j])).collect();
                let before = tree.cost().tokens_computed;
                let rewards = guard.rewards(tree, prompt, &prefixes)?;
                Ok((rewards, tree.cost().tokens_computed - before))
            }
        }
    }
}

/// What every labelling job shares: the models, the scorer and the counts.
struct Labelling<'m> {
    models: &'m DefenceModels,
    scorer: Scorer<'m>,
    counts: LabelProgress,
}

impl<'m> Labelling<'m> {
    fn new(models: &'m DefenceModels, labeller: Labeller<'m>) -> Result<Self, EvalError> {
        let scorer = match labeller {
            Labeller::Guard if models.prm().is_none() => return Err(EvalError::NoGuard { task: "labelling" }),
            Labeller::Guard => Scorer::Unbound,
            Labeller::KeepStates(guard, writer) => Scorer::States { guard, bound: None, writer },
            Labeller::Stream(stream) => {
                let options = TreeOptions { hidden: HiddenStates::Keep, ..models.options() };
                Scorer::Stream(stream, Box::new(PrefixTree::new(stream.model(), options).map_err(RewardError::from)?))
            }
        };
        Ok(Labelling { models, scorer, counts: LabelProgress::default() })
    }

    /// Points the scorer at `request`: a guard bound to the last request is
    /// re-pointed, keeping its instruction cached.
    fn point_at(&mut self, request: &str) -> Result<(), EvalError> {
        match &mut self.scorer {
            Scorer::Guard(prm) => prm.rebind(request),
            Scorer::Unbound => {
                let guard = self.models.prm().ok_or(EvalError::NoGuard { task: "labelling" })?;
                let policy = self.models.policy();
                let text = Box::new(move |t: &[TokenId]| policy.detokenize(t));
                self.scorer = Scorer::Guard(guard.bind(request, self.models.options(), text)?);
            }
            Scorer::Stream(..) => {}
            Scorer::States { bound: Some(bound), .. } => bound.rebind(request),
            Scorer::States { guard, bound, .. } => {
                let policy = self.models.policy();
                let text = move |t: &[TokenId]| policy.detokenize(t);
                *bound = Some(Box::new(guard.bind(request, self.models.options(), text)?));
            }
        }
        Ok(())
    }

    /// Scores every prefix of each response to `request` made by `answer`
    /// (one per sequence in `todo`) and appends them to `writer`.
    fn run(
        &mut self,
        request: &str,
        todo: Vec<LabelledSequence>,
        answer: &mut dyn FnMut(&LabelledSequence) -> Result<Vec<TokenId>, EvalError>,
        writer: &mut CorpusWriter,
        progress: &mut dyn FnMut(LabelProgress),
    ) -> Result<(), EvalError> {
        if todo.is_empty() {
            return Ok(());
        }
        self.point_at(request)?;
        let policy = self.models.policy();
        let text = |t: &[TokenId]| policy.detokenize(t);
        for mut sequence in todo {
            sequence.response = answer(&sequence)?;
            let start = std::time::Instant::now();
            let (rewards, tokens) = self.scorer.score(&sequence, request, &text)?;
            self.counts.prm_seconds += start.elapsed().as_secs_f64();
            self.counts.prm_tokens += tokens;
            self.counts.labels += rewards.len();
            sequence.rewards = rewards;
            writer.append(&sequence)?;
            self.counts.sequences += 1;
            progress(self.counts);
        }
        Ok(())
    }
}

/// What a corpus is labelled from.
pub struct LabelSources<'a> {
    /// Prompts the policy answers: every (prompt, attack, sample).
    pub prompts: &'a [EvalPrompt],
    /// Conversations whose written answers the policy reads.
    pub conversations: &'a [WrittenAnswers],
}

/// A conversation with answers written for it (HH-RLHF's people, ShareGPT's
/// ChatGPT), for the policy to read as written (teacher forcing).
#[derive(Debug, Clone, PartialEq)]
pub struct WrittenAnswers {
    /// The policy's context: the conversation up to the answer.
    pub chat: ChatPrompt,
    /// The person's requests, oldest first: the last is the one answered.
    pub requests: Vec<String>,
    /// Each answer's corpus id and text.
    pub answers: Vec<(String, String)>,
    /// Whether the requests are harmful (red-teaming) ones.
    pub harmful: bool,
}

/// Labels everything of `sources` not yet in `writer`, with one scorer
/// (its instruction computed once): first the prompts, then the
/// conversations.
pub fn label(
    models: &DefenceModels,
    labeller: Labeller,
    sources: &LabelSources,
    settings: &LabelSettings,
    writer: &mut CorpusWriter,
    progress: &mut dyn FnMut(LabelProgress),
) -> Result<LabelProgress, EvalError> {
    let mut labelling = Labelling::new(models, labeller)?;
    label_prompts(&mut labelling, sources.prompts, settings, writer, progress)?;
    label_conversations(&mut labelling, sources.conversations, settings, writer, progress)?;
    Ok(labelling.counts)
}

/// Labels every (prompt, attack, sample) not yet in `writer`: the policy
/// answers (the `sample` strategy), the scorer scores every prefix.
fn label_prompts(
    labelling: &mut Labelling,
    prompts: &[EvalPrompt],
    settings: &LabelSettings,
    writer: &mut CorpusWriter,
    progress: &mut dyn FnMut(LabelProgress),
) -> Result<(), EvalError> {
    let models = labelling.models;
    let policy = models.policy();
    let mut config = SearchConfig::new(Strategy::Sample(SampleConfig::default()));
    config.length = settings.length;
    config.decoding = settings.decoding;
    for prompt in prompts {
        for attack in settings.attacks.iter().filter(|a| applies(a, prompt)) {
            let id = format!("{}#{}", prompt.id, attack.name());
            let todo: Vec<u32> = (0..settings.samples).filter(|&s| !writer.is_done(&id, s)).collect();
            labelling.counts.skipped += (settings.samples as usize) - todo.len();
            if todo.is_empty() {
                continue;
            }
            let Some(chat) = attack.apply(prompt, policy) else { continue };
            let context = policy.encode_chat(&chat)?;
            let todo = todo
                .into_iter()
                .map(|sample| LabelledSequence {
                    prompt_id: id.clone(),
                    sample,
                    harmful: prompt.harmful,
                    prefilled: matches!(attack, Attack::Prefill { .. }),
                    context: context.clone(),
                    response: Vec::new(),
                    rewards: Vec::new(),
                    requests: Vec::new(),
                })
                .collect();
            let mut answer = |sequence: &LabelledSequence| -> Result<Vec<TokenId>, EvalError> {
                config.seed = settings.seed.wrapping_add(sequence.sample as u64);
                Ok(models.defence(config.clone())?.answer(&prompt.prompt, &chat, &mut NoTrace)?.tokens)
            };
            labelling.run(&prompt.prompt, todo, &mut answer, writer, progress)?;
        }
    }
    Ok(())
}

/// Labels every answer of every conversation not yet in `writer`, read into
/// the policy as written (teacher forcing, the paper's source): the
/// policy's context is the conversation, the answer is cut at the settings'
/// most new tokens, and the PRM reads the last request with every prefix of
/// the answer. Records the conversation's requests with each.
fn label_conversations(
    labelling: &mut Labelling,
    conversations: &[WrittenAnswers],
    settings: &LabelSettings,
    writer: &mut CorpusWriter,
    progress: &mut dyn FnMut(LabelProgress),
) -> Result<(), EvalError> {
    let policy = labelling.models.policy();
    for conversation in conversations {
        let context = policy.encode_chat(&conversation.chat)?;
        let mut todo = Vec::new();
        for (id, text) in &conversation.answers {
            if writer.is_done(id, 0) {
                labelling.counts.skipped += 1;
                continue;
            }
            let mut response = policy.tokenize(text);
            response.truncate(settings.length.max_new_tokens);
            if response.is_empty() {
                continue;
            }
            todo.push(LabelledSequence {
                prompt_id: id.clone(),
                sample: 0,
                harmful: conversation.harmful,
                prefilled: false,
                context: context.clone(),
                response,
                rewards: Vec::new(),
                requests: conversation.requests.clone(),
            });
        }
        let request = conversation.requests.last().map_or("", String::as_str);
        labelling.run(request, todo, &mut |s| Ok(s.response.clone()), writer, progress)?;
    }
    Ok(())
}
