//! One writer per run directory: an advisory lock on `run.lock` (the
//! operating system's file lock, which dies with its process, so a lock
//! left by a killed run is never stale), with the holder's pid written in
//! it for the message a second writer gets.

use std::fs::{File, OpenOptions};
use std::io::{Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};

use crate::EvalError;

pub const LOCK_FILE: &str = "run.lock";

/// The lock of a run directory, held while it lives. Everything that
/// writes into a run directory (eval, fluency, merge) holds it.
#[derive(Debug)]
pub struct RunLock {
    dir: PathBuf,
    _file: File,
}

impl RunLock {
    /// Locks `dir` (made if missing), or refuses when another process holds
    /// it, naming that process.
    pub fn acquire(dir: &Path) -> Result<RunLock, EvalError> {
        if dir.exists() && !dir.is_dir() {
            return Err(EvalError::NotADirectory { path: dir.to_path_buf() });
        }
        std::fs::create_dir_all(dir).map_err(EvalError::io("create the run directory", dir))?;
        let path = dir.join(LOCK_FILE);
        let mut file = OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .open(&path)
            .map_err(EvalError::io("open", &path))?;
        match file.try_lock() {
            Ok(()) => {}
            Err(std::fs::TryLockError::WouldBlock) => {
                let mut holder = String::new();
                let _ = file.read_to_string(&mut holder);
                let holder = holder.trim().parse().ok();
                return Err(EvalError::InUse { dir: dir.to_path_buf(), pid: holder });
            }
            Err(std::fs::TryLockError::Error(e)) => return Err(EvalError::io("lock", &path)(e)),
        }
        let write = |file: &mut File| -> std::io::Result<()> {
            file.set_len(0)?;
            file.seek(SeekFrom::Start(0))?;
            writeln!(file, "{}", std::process::id())
        };
        write(&mut file).map_err(EvalError::io("write", &path))?;
        Ok(RunLock { dir: dir.to_path_buf(), _file: file })
    }

    pub fn dir(&self) -> &Path {
        &self.dir
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_second_writer_is_refused_and_a_dropped_lock_is_free_again() {
        let root = tempfile::tempdir().unwrap();
        let dir = root.path().join("run");
        let lock = RunLock::acquire(&dir).unwrap();
        let err = RunLock::acquire(&dir).unwrap_err().to_string();
        let pid = std::process::id();
        assert!(err.contains("in use by another saffron process") && err.contains(&format!("pid {pid}")), "{err}");
        drop(lock);
        RunLock::acquire(&dir).unwrap();
        let file = root.path().join("a-file");
        std::fs::write(&file, "x").unwrap();
        let err = RunLock::acquire(&file).unwrap_err().to_string();
        assert!(err.contains("is a file, not a run directory"), "{err}");
    }
}
