use std::error::Error;
use std::fmt;

/// An error raised by a model behind one of the core traits.
///
/// The concrete error (an engine error, a remote server error, ...) is kept as
/// the source, so callers can still downcast to it; the message is the
/// source's message.
pub struct ModelError(Box<dyn Error + Send + Sync + 'static>);

impl ModelError {
    /// Wraps any error raised by a model implementation.
    pub fn new(source: impl Error + Send + Sync + 'static) -> Self {
        Self(Box::new(source))
    }

    /// The wrapped error, for downcasting to the implementation's own type.
    pub fn inner(&self) -> &(dyn Error + Send + Sync + 'static) {
        self.0.as_ref()
    }
}

impl fmt::Debug for ModelError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(&self.0, f)
    }
}

impl fmt::Display for ModelError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(&self.0, f)
    }
}

impl Error for ModelError {
    fn source(&self) -> Option<&(dyn Error + 'static)> {
        self.0.source()
    }
}
