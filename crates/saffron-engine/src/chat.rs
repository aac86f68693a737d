//! Chat templates: the GGUF's Jinja template rendered with `minijinja`, plus
//! the assistant *prefill* of the prefilling attack (method.md section 1).

use minijinja::{context, Environment, Error as JinjaError, ErrorKind};
use serde::Serialize;

/// One chat turn as the template sees it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct ChatMessage<'a> {
    pub role: &'a str,
    pub content: &'a str,
}

/// What a generation is asked: an optional system prompt, any earlier turns
/// of the conversation, the user turn, and an optional assistant prefill
/// that is forced after the generation prompt (the attack's first tokens;
/// context for the model, never its output).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ChatPrompt {
    pub system: Option<String>,
    /// Earlier turns, oldest first, between the system prompt and `user`.
    pub history: Vec<Turn>,
    pub user: String,
    pub prefill: Option<String>,
}

/// An earlier turn of a conversation.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Turn {
    pub role: Role,
    pub content: String,
}

/// Who spoke an earlier turn.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Role {
    User,
    Assistant,
}

impl Role {
    pub fn as_str(self) -> &'static str {
        match self {
            Role::User => "user",
            Role::Assistant => "assistant",
        }
    }
}

impl ChatPrompt {
    pub fn user(text: impl Into<String>) -> Self {
        Self { user: text.into(), ..Self::default() }
    }
}

/// The tag that opens a reasoning model's thinking section.
pub const THINK_OPEN: &str = "<think>";
/// The tag that closes it.
pub const THINK_CLOSE: &str = "</think>";

/// A compiled chat template with the special-token strings it may refer to.
pub struct ChatTemplate {
    env: Environment<'static>,
    bos_token: String,
    eos_token: String,
    thinking: bool,
}

impl ChatTemplate {
    /// Compiles a Jinja chat template as found in `tokenizer.chat_template`.
    pub fn new(source: &str, bos_token: String, eos_token: String) -> Result<Self, String> {
        let mut env = Environment::new();
        // HF templates call Python string methods (`.strip()`, `.startswith()`).
        env.set_unknown_method_callback(minijinja_contrib::pycompat::unknown_method_callback);
        env.add_function("raise_exception", |message: String| -> Result<String, JinjaError> {
            Err(JinjaError::new(ErrorKind::InvalidOperation, message))
        });
        env.add_template_owned("chat", source.to_owned()).map_err(|e| e.to_string())?;
        Ok(Self { env, bos_token, eos_token, thinking: source.contains(THINK_OPEN) })
    }

    /// Whether the template has a thinking section (it writes or strips
    /// `<think>`, as the templates of reasoning models do).
    pub fn has_thinking_section(&self) -> bool {
        self.thinking
    }

    /// The text the model sees: system (if any), earlier and user turns, the
    /// generation prompt that opens the assistant turn, then the prefill.
    pub fn render(&self, prompt: &ChatPrompt) -> Result<String, String> {
        let mut messages = Vec::with_capacity(2 + prompt.history.len());
        if let Some(system) = &prompt.system {
            messages.push(ChatMessage { role: "system", content: system });
        }
        messages.extend(prompt.history.iter().map(|t| ChatMessage { role: t.role.as_str(), content: &t.content }));
        messages.push(ChatMessage { role: "user", content: &prompt.user });
        let mut text = self.render_messages(&messages)?;
        if let Some(prefill) = &prompt.prefill {
            text.push_str(prefill);
        }
        Ok(text)
    }

    /// Any conversation, followed by the generation prompt that opens the
    /// next assistant turn (a guard's verdict position, for instance).
    pub fn render_messages(&self, messages: &[ChatMessage<'_>]) -> Result<String, String> {
        let template = self.env.get_template("chat").map_err(|e| e.to_string())?;
        template
            .render(context! {
                messages => messages,
                add_generation_prompt => true,
                bos_token => &self.bos_token,
                eos_token => &self.eos_token,
            })
            .map_err(|e| format!("{e:#}"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const CHATML: &str = "{% for message in messages %}{{'<|im_start|>' + message['role'] + '\\n' + message['content'] + '<|im_end|>' + '\\n'}}{% endfor %}{% if add_generation_prompt %}{{ '<|im_start|>assistant\\n' }}{% endif %}";

    #[test]
    fn prefill_follows_the_generation_prompt() {
        let t = ChatTemplate::new(CHATML, String::new(), String::new()).unwrap();
        let p = ChatPrompt { system: Some("S".into()), prefill: Some("Sure,".into()), ..ChatPrompt::user("U") };
        assert_eq!(
            t.render(&p).unwrap(),
            "<|im_start|>system\nS<|im_end|>\n<|im_start|>user\nU<|im_end|>\n<|im_start|>assistant\nSure,"
        );
    }

    #[test]
    fn earlier_turns_come_between_system_and_user() {
        let t = ChatTemplate::new(CHATML, String::new(), String::new()).unwrap();
        let history =
            vec![Turn { role: Role::User, content: "A".into() }, Turn { role: Role::Assistant, content: "B".into() }];
        let p = ChatPrompt { system: Some("S".into()), history, ..ChatPrompt::user("U") };
        assert_eq!(
            t.render(&p).unwrap(),
            "<|im_start|>system\nS<|im_end|>\n<|im_start|>user\nA<|im_end|>\n<|im_start|>assistant\nB<|im_end|>\n\
             <|im_start|>user\nU<|im_end|>\n<|im_start|>assistant\n"
        );
    }

    #[test]
    fn a_template_that_writes_think_tags_has_a_thinking_section() {
        let thinking = format!("{}{{{{ '<think>\\n' }}}}", CHATML);
        assert!(ChatTemplate::new(&thinking, String::new(), String::new()).unwrap().has_thinking_section());
        assert!(!ChatTemplate::new(CHATML, String::new(), String::new()).unwrap().has_thinking_section());
    }

    #[test]
    fn raise_exception_surfaces_as_an_error() {
        let t = ChatTemplate::new("{{ raise_exception('no system role') }}", String::new(), String::new()).unwrap();
        let err = t.render(&ChatPrompt::user("x")).unwrap_err();
        assert!(err.contains("no system role"), "{err}");
    }
}
