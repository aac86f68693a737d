use std::io::Read;
use std::path::Path;

use sha2::{Digest, Sha256};

/// Hex sha256 of a file, read in 1 MiB chunks.
pub fn sha256_file(path: &Path) -> std::io::Result<String> {
    let mut file = std::fs::File::open(path)?;
    let mut hasher = Sha256::new();
    let mut buf = vec![0u8; 1 << 20];
    loop {
        let n = file.read(&mut buf)?;
        if n == 0 {
            return Ok(hex(&hasher.finalize()));
        }
        hasher.update(&buf[..n]);
    }
}

/// Hex sha256 of a file, remembered under `home/hashes/` by (path, size,
/// modification time): a file is read and hashed again only when it
/// changed, so verifying a model on every start stays cheap.
pub fn sha256_cached(path: &Path, home: &Path) -> std::io::Result<String> {
    let meta = std::fs::metadata(path)?;
    let modified = meta.modified()?.duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_nanos());
    let stamp = format!("{} {modified}", meta.len());
    let canonical = path.canonicalize()?;
    let name = sha256_bytes(canonical.as_os_str().as_encoded_bytes());
    let entry = home.join("hashes").join(format!("{}.txt", &name[..32]));
    if let Ok(text) = std::fs::read_to_string(&entry) {
        if let Some((recorded, sha)) = text.trim().rsplit_once(' ') {
            if recorded == stamp && sha.len() == 64 {
                return Ok(sha.to_owned());
            }
        }
    }
    let sha = sha256_file(path)?;
    // Best effort: a cache that cannot be written only costs time.
    let partial = entry.with_extension(format!("{}.partial", std::process::id()));
    let written = std::fs::create_dir_all(home.join("hashes"))
        .and_then(|()| std::fs::write(&partial, format!("{stamp} {sha}\n")))
        .and_then(|()| std::fs::rename(&partial, &entry));
    if let Err(e) = written {
        tracing::debug!("cannot cache the sha256 of {}: {e}", path.display());
    }
    Ok(sha)
}

/// Hex sha256 of bytes in memory.
pub fn sha256_bytes(bytes: &[u8]) -> String {
    hex(&Sha256::digest(bytes))
}

pub(crate) fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_cached_hash_is_used_until_the_file_changes() {
        let home = tempfile::tempdir().unwrap();
        let file = home.path().join("m.gguf");
        std::fs::write(&file, b"first").unwrap();
        assert_eq!(sha256_cached(&file, home.path()).unwrap(), sha256_bytes(b"first"));
        assert_eq!(sha256_cached(&file, home.path()).unwrap(), sha256_bytes(b"first"), "from the cache");
        std::fs::write(&file, b"second, longer").unwrap();
        assert_eq!(
            sha256_cached(&file, home.path()).unwrap(),
            sha256_bytes(b"second, longer"),
            "changed: hashed again"
        );
    }
}
