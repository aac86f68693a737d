//! A judge's feature rows on disk (`features.safetensors` beside the
//! artifact), so that fitting new candidates on the same backbone, input
//! format and pairs reads the rows back instead of recomputing the
//! backbone (an hour on a CPU). The file names what it was computed from by
//! a digest in its metadata; any other digest is a miss, never a reuse.

use std::collections::HashMap;
use std::path::Path;

use safetensors::tensor::{Dtype, SafeTensors, TensorView};
use sha2::{Digest, Sha256};

use super::judge::{judge_inputs, JudgeRows};
use super::train::TrainData;
use crate::tensors::{read_f32, write_atomically};
use crate::RewardError;

pub const ROWS_FILE: &str = "features.safetensors";
const KEY: &str = "saffron-judge-rows";

/// What rows depend on: the backbone's sha256, the guard input's format
/// (as JSON), the judge's inputs and every train and dev pair in order.
pub fn digest(backbone_sha256: &str, format_json: &str, data: &TrainData) -> String {
    let mut hasher = Sha256::new();
    let inputs = serde_json::to_string(&judge_inputs()).unwrap_or_default();
    for part in [backbone_sha256, format_json, &inputs] {
        hasher.update(part.as_bytes());
        hasher.update([0]);
    }
    for (side, items) in [("train", &data.train.items), ("dev", &data.dev.items)] {
        hasher.update(side.as_bytes());
        for l in items.iter() {
            for text in [l.prompt.as_str(), l.response.as_str()] {
                hasher.update((text.len() as u64).to_le_bytes());
                hasher.update(text.as_bytes());
            }
        }
    }
    format!("{:x}", hasher.finalize())
}

/// The rows in `dir` if they were computed from `digest`; `None` when the
/// file is missing or from other inputs.
pub fn load(dir: &Path, digest: &str) -> Result<Option<JudgeRows>, RewardError> {
    let path = dir.join(ROWS_FILE);
    let Ok(bytes) = std::fs::read(&path) else { return Ok(None) };
    let bad = |detail: String| RewardError::Artifact { path: path.clone(), detail };
    let (_, metadata) = SafeTensors::read_metadata(&bytes).map_err(|e| bad(e.to_string()))?;
    if metadata.metadata().as_ref().and_then(|m| m.get(KEY)).map(String::as_str) != Some(digest) {
        return Ok(None);
    }
    let tensors = SafeTensors::deserialize(&bytes).map_err(|e| bad(e.to_string()))?;
    let side = |name: &str| -> Result<Vec<Vec<f32>>, RewardError> {
        let shape = tensors.tensor(name).map_err(|e| bad(format!("tensor `{name}`: {e}")))?.shape().to_vec();
        let [n, dim] = shape[..] else { return Err(bad(format!("tensor `{name}` is {shape:?}, expected [n, dim]"))) };
        let flat = read_f32(&tensors, name, &[n, dim], &path)?;
        Ok(flat.chunks_exact(dim.max(1)).take(n).map(<[f32]>::to_vec).collect())
    };
    Ok(Some(JudgeRows { train: side("train")?, dev: side("dev")? }))
}

/// Writes `rows` into `dir` (created if needed) under `digest`.
pub fn save(dir: &Path, digest: &str, rows: &JudgeRows) -> Result<(), RewardError> {
    let path = dir.join(ROWS_FILE);
    let bad = |detail: String| RewardError::Artifact { path: path.clone(), detail };
    std::fs::create_dir_all(dir).map_err(|e| bad(e.to_string()))?;
    let flat = |rows: &[Vec<f32>]| -> (Vec<usize>, Vec<u8>) {
        let dim = rows.first().map_or(0, Vec::len);
        (vec![rows.len(), dim], rows.iter().flatten().flat_map(|x| x.to_le_bytes()).collect())
    };
    let (train, dev) = (flat(&rows.train), flat(&rows.dev));
    let views = [("train", &train), ("dev", &dev)]
        .into_iter()
        .map(|(name, (shape, bytes))| {
            TensorView::new(Dtype::F32, shape.clone(), bytes).map(|v| (name, v)).map_err(|e| bad(e.to_string()))
        })
        .collect::<Result<Vec<_>, _>>()?;
    let metadata = Some(HashMap::from([(KEY.to_string(), digest.to_string())]));
    let bytes = safetensors::serialize(views, &metadata).map_err(|e| bad(e.to_string()))?;
    write_atomically(&path, &bytes)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rows_come_back_only_under_their_own_digest() {
        let dir = tempfile::tempdir().unwrap();
        let rows = JudgeRows { train: vec![vec![1.0, 2.0], vec![3.0, -4.5]], dev: vec![vec![0.25, 8.0]] };
        assert_eq!(load(dir.path(), "abc").unwrap(), None, "no file yet");
        save(dir.path(), "abc", &rows).unwrap();
        assert_eq!(load(dir.path(), "abc").unwrap(), Some(rows));
        assert_eq!(load(dir.path(), "other").unwrap(), None);
        std::fs::write(dir.path().join(ROWS_FILE), b"not safetensors").unwrap();
        assert!(load(dir.path(), "abc").is_err(), "a corrupt file is an error, not a miss");
    }
}
