//! The llama.cpp backends: a policy GGUF with its prefix trees, and the
//! guards and MRMs of saffron-reward.

use std::time::Duration;

use saffron_core::{MultifurcationReward, TokenId};
use saffron_engine::{ChatPrompt, PrefixTree, SpecialText, TreeOptions};
use saffron_reward::{BoundGuard, LoadedGuard, LoadedModel, LoadedMrm};

use crate::backend::{MrmBackend, PolicyBackend, PolicySession, PrmBackend, PrmSession, ResponseText};
use crate::DefenceError;

/// A GGUF policy run by llama.cpp; each search gets its own prefix tree.
pub struct LocalPolicy {
    model: LoadedModel,
}

impl LocalPolicy {
    pub fn new(model: LoadedModel) -> LocalPolicy {
        LocalPolicy { model }
    }
}

impl PolicyBackend for LocalPolicy {
    fn name(&self) -> &str {
        self.model.spec()
    }

    fn identity(&self) -> Result<String, DefenceError> {
        Ok(self.model.sha256().to_owned())
    }

    fn encode_chat(&self, chat: &ChatPrompt) -> Result<Vec<TokenId>, DefenceError> {
        Ok(self.model.model().encode_chat(chat)?)
    }

    fn tokenize(&self, text: &str) -> Vec<TokenId> {
        self.model.model().tokenize(text, SpecialText::Literal)
    }

    fn encode_prompt(&self, text: &str) -> Vec<TokenId> {
        self.model.model().tokenize(text, SpecialText::Parse)
    }

    fn detokenize(&self, tokens: &[TokenId]) -> String {
        self.model.model().detokenize(tokens)
    }

    fn has_thinking_section(&self) -> bool {
        self.model.model().has_thinking_section()
    }

    fn context_limit(&self) -> usize {
        self.model.model().train_context() as usize
    }

    fn open(&self, options: TreeOptions) -> Result<Box<dyn PolicySession + '_>, DefenceError> {
        let max_cells = options.max_cells.min(self.model.model().train_context());
        Ok(Box::new(PrefixTree::new(self.model.model(), TreeOptions { max_cells, ..options })?))
    }
}

impl PolicySession for PrefixTree {
    fn clear(&mut self) {
        PrefixTree::clear(self)
    }

    fn engine_time(&self) -> Duration {
        self.decode_time()
    }
}

impl PrmBackend for LoadedGuard {
    fn identity(&self) -> &str {
        LoadedGuard::identity(self)
    }

    fn bind<'a>(
        &'a self,
        request: &str,
        options: TreeOptions,
        response_text: ResponseText<'a>,
    ) -> Result<Box<dyn PrmSession + 'a>, DefenceError> {
        Ok(Box::new(LoadedGuard::bind(self, request, options, response_text)?))
    }
}

impl PrmSession for BoundGuard<'_> {
    fn engine_time(&self) -> Duration {
        self.decode_time()
    }

    fn rebind(&mut self, request: &str) {
        BoundGuard::rebind(self, request);
    }
}

impl MrmBackend for LoadedMrm {
    fn identity(&self) -> &str {
        LoadedMrm::identity(self)
    }

    fn describe(&self) -> String {
        LoadedMrm::describe(self)
    }

    fn bind<'a>(
        &'a self,
        request: &str,
        options: TreeOptions,
        response_text: ResponseText<'a>,
    ) -> Result<Box<dyn MultifurcationReward + 'a>, DefenceError> {
        Ok(LoadedMrm::bind(self, request, options, response_text)?)
    }
}
