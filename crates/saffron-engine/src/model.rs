//! A model: GGUF weights, llama.cpp's tokenizer and the GGUF's chat template.
//!
//! The weights are immutable and shared (`Arc`); every prefix tree creates
//! its own llama.cpp context (KV cache) over them, so several trees (policy,
//! PRM, MRM backbones, parallel prompts) can use one loaded model.

use std::io::Read;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use llama_cpp_2::model::params::LlamaModelParams;
use llama_cpp_2::model::{LlamaLoraAdapter, LlamaModel};
use llama_cpp_2::token::LlamaToken;
use saffron_core::TokenId;

use crate::backend::backend;
use crate::chat::{ChatMessage, ChatPrompt, ChatTemplate};
use crate::{EngineError, ModelShape};

/// Whether special-token text (`<|im_start|>`) in a string is parsed into
/// the special token or tokenised as ordinary text.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SpecialText {
    Parse,
    Literal,
}

/// A loaded GGUF model. Cheap to clone (the weights are shared).
#[derive(Clone)]
pub struct Model {
    inner: Arc<ModelInner>,
}

struct ModelInner {
    llama: Arc<LlamaModel>,
    path: PathBuf,
    shape: ModelShape,
    train_context: u32,
    template: ChatTemplate,
    end_of_generation: Vec<TokenId>,
    name: String,
    arch: String,
    lora: Option<Lora>,
    weights: Weights,
}

/// Whether a model's tensors were loaded.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Weights {
    Loaded,
    /// Vocabulary, chat template and hyper-parameters only (a remote
    /// engine runs the weights): no context can be made from it.
    VocabularyOnly,
}

/// A LoRA adapter every context of the model runs with.
pub(crate) struct Lora {
    pub adapter: Mutex<LlamaLoraAdapter>,
    pub scale: f32,
    pub path: PathBuf,
}

impl Model {
    /// Loads a GGUF file after checking that it exists and is a GGUF.
    pub fn load(path: impl AsRef<Path>) -> Result<Self, EngineError> {
        Self::load_with(path.as_ref(), Weights::Loaded)
    }

    /// The vocabulary, chat template and hyper-parameters of a GGUF without
    /// its tensors: what a client of a remote engine serving these weights
    /// needs to tokenise, render chats and count FLOPs (no tensor data is
    /// read).
    pub fn load_vocabulary(path: impl AsRef<Path>) -> Result<Self, EngineError> {
        Self::load_with(path.as_ref(), Weights::VocabularyOnly)
    }

    fn load_with(path: &Path, weights: Weights) -> Result<Self, EngineError> {
        let path = path.to_path_buf();
        check_gguf_magic(&path)?;
        let params = LlamaModelParams::default().with_vocab_only(weights == Weights::VocabularyOnly);
        let llama = LlamaModel::load_from_file(backend()?, &path, &params)
            .map_err(|_| EngineError::ModelLoad { path: path.clone() })?;
        let (shape, train_context) = read_shape(&llama, &path, weights)?;
        let template = read_template(&llama, &path)?;
        let vocab = llama.vocab();
        let end_of_generation =
            (0..shape.n_vocab as i32).map(LlamaToken).filter(|&t| vocab.is_eog(t)).map(|t| t.0 as TokenId).collect();
        let name = llama
            .meta_val_str("general.name")
            .unwrap_or_else(|_| path.file_stem().map(|s| s.to_string_lossy().into_owned()).unwrap_or_default());
        let arch = llama.meta_val_str("general.architecture").unwrap_or_default();
        let llama = Arc::new(llama);
        let inner = ModelInner {
            llama,
            path,
            shape,
            train_context,
            template,
            end_of_generation,
            name,
            arch,
            lora: None,
            weights,
        };
        Ok(Self { inner: Arc::new(inner) })
    }

    /// This model with a LoRA adapter (a GGUF adapter file, see
    /// [`crate::lora`]) applied at `scale` in every context made from it.
    /// Only a model just loaded (no clones, no contexts yet) takes one; an
    /// adapter for another architecture or other tensor shapes is refused.
    pub fn with_lora(self, adapter: &Path, scale: f32) -> Result<Self, EngineError> {
        check_gguf_magic(adapter)?;
        let model = self.inner.path.clone();
        let mut inner =
            Arc::try_unwrap(self.inner).map_err(|_| EngineError::LoraOnSharedModel { model: model.clone() })?;
        let llama = Arc::get_mut(&mut inner.llama).ok_or(EngineError::LoraOnSharedModel { model: model.clone() })?;
        let lora = llama
            .lora_adapter_init(adapter)
            .map_err(|_| EngineError::LoraLoad { adapter: adapter.to_path_buf(), model })?;
        inner.lora = Some(Lora { adapter: Mutex::new(lora), scale, path: adapter.to_path_buf() });
        Ok(Self { inner: Arc::new(inner) })
    }

    pub fn path(&self) -> &Path {
        &self.inner.path
    }

    pub fn weights(&self) -> Weights {
        self.inner.weights
    }

    /// `general.name` from the GGUF, or the file stem.
    pub fn name(&self) -> &str {
        &self.inner.name
    }

    /// `general.architecture` from the GGUF (`llama`, `qwen2`, ...).
    pub fn arch(&self) -> &str {
        &self.inner.arch
    }

    /// The LoRA adapter file this model runs with, if any.
    pub fn lora_path(&self) -> Option<&Path> {
        self.inner.lora.as_ref().map(|l| l.path.as_path())
    }

    pub(crate) fn lora(&self) -> Option<&Lora> {
        self.inner.lora.as_ref()
    }

    /// The beginning-of-sequence token, if the vocabulary has one.
    pub fn bos(&self) -> Option<TokenId> {
        let bos = self.inner.llama.vocab().bos();
        (bos.0 >= 0).then_some(bos.0 as TokenId)
    }

    /// Whether `other` has the same vocabulary: the same size and the same
    /// text for every token id (so token ids mean the same in both).
    pub fn same_vocabulary(&self, other: &Model) -> bool {
        if self.vocab_size() != other.vocab_size() {
            return false;
        }
        let (a, b) = (self.inner.llama.vocab(), other.inner.llama.vocab());
        (0..self.vocab_size() as i32).all(|t| {
            let t = [LlamaToken(t)];
            a.detokenize(&t, false, true) == b.detokenize(&t, false, true)
        })
    }

    pub fn shape(&self) -> &ModelShape {
        &self.inner.shape
    }

    pub fn vocab_size(&self) -> usize {
        self.inner.shape.n_vocab as usize
    }

    /// Total parameter count as llama.cpp reports it (all tensors).
    pub fn parameter_count(&self) -> u64 {
        self.inner.llama.n_params()
    }

    /// Context length the model was trained with.
    pub fn train_context(&self) -> u32 {
        self.inner.train_context
    }

    /// Tokens that end a generation (EOS, end-of-turn, ...), as llama.cpp's
    /// vocabulary marks them.
    pub fn end_of_generation(&self) -> &[TokenId] {
        &self.inner.end_of_generation
    }

    pub fn is_end_of_generation(&self, token: TokenId) -> bool {
        self.inner.end_of_generation.contains(&token)
    }

    /// Tokenises text with llama.cpp's own tokenizer (no BOS is added: chat
    /// templates write their own).
    pub fn tokenize(&self, text: &str, special: SpecialText) -> Vec<TokenId> {
        let vocab = self.inner.llama.vocab();
        vocab
            .tokenize(text.as_bytes(), false, special == SpecialText::Parse)
            .into_iter()
            .map(|t| t.0 as TokenId)
            .collect()
    }

    /// Text of generated tokens; special tokens are rendered as text, invalid
    /// UTF-8 (a multi-byte character cut by the length limit) is replaced.
    pub fn detokenize(&self, tokens: &[TokenId]) -> String {
        let tokens: Vec<LlamaToken> = tokens.iter().map(|&t| LlamaToken(t as i32)).collect();
        let bytes = self.inner.llama.vocab().detokenize(&tokens, false, true);
        String::from_utf8_lossy(&bytes).into_owned()
    }

    /// The bytes of one token's text (special tokens rendered), which may
    /// be part of a character only (byte-level vocabularies).
    pub fn token_bytes(&self, token: TokenId) -> Vec<u8> {
        self.inner.llama.vocab().detokenize(&[LlamaToken(token as i32)], false, true)
    }

    /// The chat template applied to a prompt, prefill included.
    pub fn render_chat(&self, prompt: &ChatPrompt) -> Result<String, EngineError> {
        self.inner
            .template
            .render(prompt)
            .map_err(|message| EngineError::Template { path: self.inner.path.clone(), message })
    }

    /// The chat template applied to any conversation, with the generation
    /// prompt of the next assistant turn.
    pub fn render_messages(&self, messages: &[ChatMessage<'_>]) -> Result<String, EngineError> {
        self.inner
            .template
            .render_messages(messages)
            .map_err(|message| EngineError::Template { path: self.inner.path.clone(), message })
    }

    /// Whether the chat template has a `<think>` section of its own.
    pub fn has_thinking_section(&self) -> bool {
        self.inner.template.has_thinking_section()
    }

    /// Token ids of the rendered chat prompt. The template's special tokens
    /// are parsed; this is the context every strategy starts from.
    pub fn encode_chat(&self, prompt: &ChatPrompt) -> Result<Vec<TokenId>, EngineError> {
        Ok(self.tokenize(&self.render_chat(prompt)?, SpecialText::Parse))
    }

    pub(crate) fn llama(&self) -> &Arc<LlamaModel> {
        &self.inner.llama
    }
}

impl std::fmt::Debug for Model {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Model").field("path", &self.inner.path).field("shape", &self.inner.shape).finish()
    }
}

/// llama.cpp prints to its log and returns null on a non-GGUF file; checking
/// the magic first gives the user a precise message.
fn check_gguf_magic(path: &Path) -> Result<(), EngineError> {
    let mut file = std::fs::File::open(path).map_err(|source| match source.kind() {
        std::io::ErrorKind::NotFound => EngineError::ModelMissing { path: path.to_path_buf() },
        _ => EngineError::ModelUnreadable { path: path.to_path_buf(), source },
    })?;
    let mut magic = [0u8; 4];
    match file.read_exact(&mut magic) {
        Ok(()) if &magic == b"GGUF" => Ok(()),
        Ok(()) => Err(EngineError::NotGguf { path: path.to_path_buf() }),
        Err(e) if e.kind() == std::io::ErrorKind::UnexpectedEof => {
            Err(EngineError::NotGguf { path: path.to_path_buf() })
        }
        Err(source) => Err(EngineError::ModelUnreadable { path: path.to_path_buf(), source }),
    }
}

fn read_shape(llama: &LlamaModel, path: &Path, weights: Weights) -> Result<(ModelShape, u32), EngineError> {
    let meta = |key: String| -> Result<u64, EngineError> {
        llama.meta_val_str(&key).ok().and_then(|v| v.trim().parse::<u64>().ok()).ok_or_else(|| {
            EngineError::MissingMetadata { path: path.to_path_buf(), key, purpose: "count forward FLOPs" }
        })
    };
    let arch = llama.meta_val_str("general.architecture").map_err(|_| EngineError::MissingMetadata {
        path: path.to_path_buf(),
        key: "general.architecture".into(),
        purpose: "read the model's hyper-parameters",
    })?;
    // llama.cpp reads its hyper-parameters only with the tensors; without
    // them, the GGUF's own keys.
    let (n_layer, d_model, n_head, n_head_kv, context) = match weights {
        Weights::Loaded => (
            llama.n_layer() as u64,
            llama.n_embd() as u64,
            llama.n_head() as u64,
            llama.n_head_kv() as u64,
            llama.n_ctx_train(),
        ),
        Weights::VocabularyOnly => {
            let n_head = meta(format!("{arch}.attention.head_count"))?;
            (
                meta(format!("{arch}.block_count"))?,
                meta(format!("{arch}.embedding_length"))?,
                n_head,
                meta(format!("{arch}.attention.head_count_kv")).unwrap_or(n_head),
                meta(format!("{arch}.context_length"))? as u32,
            )
        }
    };
    let head_dim = meta(format!("{arch}.attention.key_length")).unwrap_or(d_model / n_head.max(1));
    let shape = ModelShape {
        n_layer,
        d_model,
        n_head,
        n_head_kv,
        head_dim,
        d_ffn: meta(format!("{arch}.feed_forward_length"))?,
        n_vocab: llama.n_vocab() as u64,
    };
    Ok((shape, context))
}

fn read_template(llama: &LlamaModel, path: &Path) -> Result<ChatTemplate, EngineError> {
    let source = llama
        .meta_val_str("tokenizer.chat_template")
        .map_err(|_| EngineError::NoChatTemplate { path: path.to_path_buf() })?;
    let vocab = llama.vocab();
    let piece = |t: LlamaToken| -> String {
        if t.0 < 0 {
            return String::new();
        }
        String::from_utf8_lossy(&vocab.detokenize(&[t], false, true)).into_owned()
    };
    ChatTemplate::new(&source, piece(vocab.bos()), piece(vocab.eos()))
        .map_err(|message| EngineError::Template { path: path.to_path_buf(), message })
}
