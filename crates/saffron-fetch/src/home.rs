use std::path::{Path, PathBuf};

use crate::{Artifact, FetchError};

/// The cache root: `$SAFFRON_HOME`, else `~/.cache/saffron`.
pub fn saffron_home() -> PathBuf {
    if let Some(home) = std::env::var_os("SAFFRON_HOME").filter(|h| !h.is_empty()) {
        return PathBuf::from(home);
    }
    let user_home = std::env::var_os("HOME").map(PathBuf::from).unwrap_or_else(|| PathBuf::from("."));
    user_home.join(".cache").join("saffron")
}

/// How the user named a model.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ModelRef {
    /// A catalog model in the cache.
    Known { artifact: &'static Artifact, path: PathBuf },
    /// Any GGUF file the user points at.
    File(PathBuf),
}

impl ModelRef {
    pub fn path(&self) -> &Path {
        match self {
            ModelRef::Known { path, .. } | ModelRef::File(path) => path,
        }
    }
}

/// Resolves `--model NAME|PATH`: a catalog name must already be fetched; a
/// path is taken as given (the engine checks the file itself).
pub fn resolve_model(spec: &str, home: &Path) -> Result<ModelRef, FetchError> {
    if let Some(artifact) = Artifact::by_name(spec) {
        let path = home.join("models").join(artifact.file_name);
        if !path.is_file() {
            return Err(FetchError::NotFetched { name: spec.to_owned(), path });
        }
        return Ok(ModelRef::Known { artifact, path });
    }
    let looks_like_path =
        spec.contains(std::path::MAIN_SEPARATOR) || spec.ends_with(".gguf") || Path::new(spec).exists();
    if looks_like_path {
        return Ok(ModelRef::File(PathBuf::from(spec)));
    }
    Err(FetchError::UnknownModel { name: spec.to_owned(), known: Artifact::names() })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_paths_and_unknowns() {
        let home = tempfile::tempdir().unwrap();
        let err = resolve_model("qwen", home.path()).unwrap_err();
        assert!(err.to_string().contains("saffron fetch --only qwen"), "{err}");
        let err = resolve_model("llama", home.path()).unwrap_err();
        assert!(err.to_string().contains("qwen, smollm2"), "{err}");
        assert_eq!(resolve_model("x/y.gguf", home.path()).unwrap(), ModelRef::File("x/y.gguf".into()));
        let models = home.path().join("models");
        std::fs::create_dir_all(&models).unwrap();
        std::fs::write(models.join("smollm2-135m-instruct-q4_1.gguf"), b"GGUF").unwrap();
        assert!(matches!(resolve_model("smollm2", home.path()).unwrap(), ModelRef::Known { .. }));
    }
}
