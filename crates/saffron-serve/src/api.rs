//! The OpenAI wire shapes this server reads and writes, with the `saffron`
//! extension object of a request and of a response.

use serde::{Deserialize, Serialize};

use saffron_search::StrategyKind;

/// `POST /v1/chat/completions`. Fields of the OpenAI API this server does
/// not know are ignored, except those that would change the answer's
/// meaning (see [`Unsupported`]), which are refused.
#[derive(Debug, Clone, Deserialize)]
pub struct ChatRequest {
    pub model: Option<String>,
    pub messages: Vec<Message>,
    #[serde(flatten)]
    pub common: Common,
}

/// `POST /v1/completions`.
#[derive(Debug, Clone, Deserialize)]
pub struct CompletionRequest {
    pub model: Option<String>,
    pub prompt: Prompt,
    #[serde(flatten)]
    pub common: Common,
}

/// A completion prompt: a string, or a list holding one.
#[derive(Debug, Clone, Deserialize)]
#[serde(untagged)]
pub enum Prompt {
    One(String),
    Many(Vec<String>),
}

/// The fields both endpoints share.
#[derive(Debug, Clone, Default, Deserialize)]
pub struct Common {
    pub max_tokens: Option<usize>,
    pub max_completion_tokens: Option<usize>,
    pub temperature: Option<f32>,
    pub top_p: Option<f32>,
    pub seed: Option<u64>,
    pub stop: Option<Stop>,
    pub n: Option<usize>,
    pub logprobs: Option<serde_json::Value>,
    pub top_logprobs: Option<usize>,
    #[serde(default)]
    pub stream: bool,
    pub stream_options: Option<StreamOptions>,
    pub saffron: Option<Extension>,
    #[serde(flatten)]
    pub unsupported: Unsupported,
}

/// Fields that would change what an answer means; refused while unsupported.
#[derive(Debug, Clone, Default, Deserialize)]
pub struct Unsupported {
    pub tools: Option<serde_json::Value>,
    pub functions: Option<serde_json::Value>,
    pub response_format: Option<serde_json::Value>,
    pub logit_bias: Option<serde_json::Value>,
    pub echo: Option<serde_json::Value>,
    pub suffix: Option<serde_json::Value>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(untagged)]
pub enum Stop {
    One(String),
    Many(Vec<String>),
}

impl Stop {
    pub fn into_vec(self) -> Vec<String> {
        match self {
            Stop::One(s) => vec![s],
            Stop::Many(v) => v,
        }
    }
}

#[derive(Debug, Clone, Deserialize)]
pub struct StreamOptions {
    #[serde(default)]
    pub include_usage: bool,
}

/// The request's `saffron` object: its own defence within the server's
/// limits. Unknown fields are refused, naming them.
#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Extension {
    /// The strategy, with its default parameters unless it is the server's
    /// own strategy (whose configured parameters are kept).
    pub strategy: Option<StrategyKind>,
    pub width: Option<usize>,
    pub max_tflop: Option<f64>,
    pub max_reward_calls: Option<u64>,
    pub max_wall_seconds: Option<f64>,
    /// End of generation is banned before this many new tokens.
    pub min_tokens: Option<usize>,
}

/// A chat message. `content` is a string or a list of text parts.
#[derive(Debug, Clone, Deserialize)]
pub struct Message {
    pub role: String,
    pub content: Option<Content>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(untagged)]
pub enum Content {
    Text(String),
    Parts(Vec<Part>),
}

#[derive(Debug, Clone, Deserialize)]
pub struct Part {
    #[serde(rename = "type")]
    pub kind: String,
    pub text: Option<String>,
}

/// `usage`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize)]
pub struct Usage {
    pub prompt_tokens: usize,
    pub completion_tokens: usize,
    pub total_tokens: usize,
    pub prompt_tokens_details: PromptTokensDetails,
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize)]
pub struct PromptTokensDetails {
    /// Prompt tokens the shared prefix tree already held.
    pub cached_tokens: usize,
}

/// The response's `saffron` object: what the defence did and cost.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Report {
    pub strategy: StrategyKind,
    pub width: Option<usize>,
    pub tflop: f64,
    pub reward_calls: u64,
    pub wall_seconds: f64,
    /// The reward that made the answer win (PRM or MRM; none for `sample`).
    pub score: Option<f32>,
    /// Why the search itself ended: `end_of_generation`, `length` or `stopped`.
    pub search_finish: saffron_search::FinishReason,
    /// The output check's verdict, when the server has one.
    pub output_check: Option<CheckReport>,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct CheckReport {
    pub judge: String,
    #[serde(rename = "unsafe")]
    pub unsafe_: bool,
    pub score: Option<f32>,
}

/// `finish_reason`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Finish {
    Stop,
    Length,
    ContentFilter,
}

#[derive(Debug, Clone, Serialize)]
pub struct ChatResponse {
    pub id: String,
    pub object: &'static str,
    pub created: u64,
    pub model: String,
    pub choices: Vec<ChatChoice>,
    pub usage: Usage,
    pub saffron: Report,
}

#[derive(Debug, Clone, Serialize)]
pub struct ChatChoice {
    pub index: usize,
    pub message: AssistantMessage,
    pub finish_reason: Finish,
    pub logprobs: Option<ChatLogprobs>,
}

/// A chat choice's `logprobs`: one entry per answer token.
#[derive(Debug, Clone, Serialize)]
pub struct ChatLogprobs {
    pub content: Vec<TokenEntry>,
}

#[derive(Debug, Clone, Serialize)]
pub struct TokenEntry {
    pub token: String,
    pub logprob: f64,
    pub bytes: Vec<u8>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub top_logprobs: Option<Vec<TokenEntry>>,
}

/// A completion choice's legacy `logprobs`.
#[derive(Debug, Clone, Serialize)]
pub struct CompletionLogprobs {
    pub tokens: Vec<String>,
    pub token_logprobs: Vec<f64>,
    pub top_logprobs: Vec<serde_json::Map<String, serde_json::Value>>,
    pub text_offset: Vec<usize>,
}

#[derive(Debug, Clone, Serialize)]
pub struct AssistantMessage {
    pub role: &'static str,
    pub content: Option<String>,
    pub refusal: Option<String>,
}

#[derive(Debug, Clone, Serialize)]
pub struct CompletionResponse {
    pub id: String,
    pub object: &'static str,
    pub created: u64,
    pub model: String,
    pub choices: Vec<CompletionChoice>,
    pub usage: Usage,
    pub saffron: Report,
}

#[derive(Debug, Clone, Serialize)]
pub struct CompletionChoice {
    pub index: usize,
    pub text: String,
    pub finish_reason: Finish,
    pub logprobs: Option<CompletionLogprobs>,
}

/// One chunk of a streamed chat completion.
#[derive(Debug, Clone, Serialize)]
pub struct ChatChunk {
    pub id: String,
    pub object: &'static str,
    pub created: u64,
    pub model: String,
    pub choices: Vec<ChunkChoice>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub usage: Option<Usage>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub saffron: Option<Report>,
}

#[derive(Debug, Clone, Serialize)]
pub struct ChunkChoice {
    pub index: usize,
    pub delta: Delta,
    pub finish_reason: Option<Finish>,
    /// The log-probabilities of the tokens of this chunk's `delta`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub logprobs: Option<ChatLogprobs>,
}

#[derive(Debug, Clone, Default, Serialize)]
pub struct Delta {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub role: Option<&'static str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub content: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub refusal: Option<String>,
}

/// One chunk of a streamed completion.
#[derive(Debug, Clone, Serialize)]
pub struct CompletionChunk {
    pub id: String,
    pub object: &'static str,
    pub created: u64,
    pub model: String,
    pub choices: Vec<CompletionChunkChoice>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub usage: Option<Usage>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub saffron: Option<Report>,
}

#[derive(Debug, Clone, Serialize)]
pub struct CompletionChunkChoice {
    pub index: usize,
    pub text: String,
    pub finish_reason: Option<Finish>,
    /// The log-probabilities of the tokens of this chunk's `text`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub logprobs: Option<CompletionLogprobs>,
}

/// `GET /v1/models`.
#[derive(Debug, Clone, Serialize)]
pub struct ModelList {
    pub object: &'static str,
    pub data: Vec<ModelCard>,
}

#[derive(Debug, Clone, Serialize)]
pub struct ModelCard {
    pub id: String,
    pub object: &'static str,
    pub created: u64,
    pub owned_by: &'static str,
}
