//! Artifact files of trained heads: the tensors (safetensors), the JSON
//! manifest beside them, written atomically and read back checked.

use std::path::Path;

use safetensors::tensor::{Dtype, SafeTensors, TensorView};

use crate::RewardError;

/// Tensor contents.
pub(crate) enum Data<'a> {
    F32(&'a [f32]),
    U32(&'a [u32]),
}

/// Serialises named f32 tensors of the given shapes.
pub(crate) fn to_bytes(tensors: &[(&str, Vec<usize>, &[f32])]) -> Result<Vec<u8>, RewardError> {
    let typed: Vec<(&str, Vec<usize>, Data)> = tensors.iter().map(|(n, s, v)| (*n, s.clone(), Data::F32(v))).collect();
    to_bytes_typed(&typed)
}

/// Serialises named tensors of the given shapes and types.
pub(crate) fn to_bytes_typed(tensors: &[(&str, Vec<usize>, Data)]) -> Result<Vec<u8>, RewardError> {
    let bytes: Vec<(Dtype, Vec<u8>)> = tensors
        .iter()
        .map(|(_, _, data)| match data {
            Data::F32(v) => (Dtype::F32, v.iter().flat_map(|x| x.to_le_bytes()).collect()),
            Data::U32(v) => (Dtype::U32, v.iter().flat_map(|x| x.to_le_bytes()).collect()),
        })
        .collect();
    let views = tensors
        .iter()
        .zip(&bytes)
        .map(|((name, shape, _), (dtype, b))| Ok((*name, TensorView::new(*dtype, shape.clone(), b).map_err(invalid)?)))
        .collect::<Result<Vec<_>, RewardError>>()?;
    safetensors::serialize(views, &None).map_err(invalid)
}

/// Reads the u32 tensor `name` (1-D, any length).
pub(crate) fn read_u32(tensors: &SafeTensors, name: &str, path: &Path) -> Result<Vec<u32>, RewardError> {
    let bad = |detail: String| RewardError::Artifact { path: path.to_path_buf(), detail };
    let t = tensors.tensor(name).map_err(|e| bad(format!("tensor `{name}`: {e}")))?;
    if t.dtype() != Dtype::U32 || t.shape().len() != 1 {
        return Err(bad(format!("tensor `{name}` is {:?} {:?}, expected U32 [n]", t.dtype(), t.shape())));
    }
    Ok(t.data().chunks_exact(4).map(|c| u32::from_le_bytes([c[0], c[1], c[2], c[3]])).collect())
}

/// Reads the f32 tensor `name`, which must have `shape`.
pub(crate) fn read_f32(
    tensors: &SafeTensors,
    name: &str,
    shape: &[usize],
    path: &Path,
) -> Result<Vec<f32>, RewardError> {
    let bad = |detail: String| RewardError::Artifact { path: path.to_path_buf(), detail };
    let t = tensors.tensor(name).map_err(|e| bad(format!("tensor `{name}`: {e}")))?;
    if t.dtype() != Dtype::F32 || t.shape() != shape {
        return Err(bad(format!("tensor `{name}` is {:?} {:?}, expected F32 {shape:?}", t.dtype(), t.shape())));
    }
    Ok(t.data().chunks_exact(4).map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]])).collect())
}

/// Writes `bytes` beside `path` and renames it into place.
pub(crate) fn write_atomically(path: &Path, bytes: &[u8]) -> Result<(), RewardError> {
    let partial = path.with_extension("partial");
    std::fs::write(&partial, bytes).map_err(|e| io(&partial, e))?;
    std::fs::rename(&partial, path).map_err(|e| io(path, e))
}

pub(crate) fn io(path: &Path, e: std::io::Error) -> RewardError {
    RewardError::Artifact { path: path.to_path_buf(), detail: e.to_string() }
}

fn invalid(e: impl std::fmt::Display) -> RewardError {
    RewardError::Artifact { path: "(in memory)".into(), detail: e.to_string() }
}

/// Writes an artifact's weights, then its manifest, into `dir` (created if
/// needed).
pub(crate) fn write_artifact<M: serde::Serialize>(
    dir: &Path,
    (manifest_file, manifest): (&str, &M),
    (weights_file, weights): (&str, &[u8]),
) -> Result<(), RewardError> {
    std::fs::create_dir_all(dir).map_err(|e| io(dir, e))?;
    write_atomically(&dir.join(weights_file), weights)?;
    let json = serde_json::to_vec_pretty(manifest)
        .map_err(|e| RewardError::Artifact { path: dir.join(manifest_file), detail: e.to_string() })?;
    write_atomically(&dir.join(manifest_file), &json)
}

/// Reads an artifact's manifest text and weights bytes from `dir`.
pub(crate) fn read_artifact(
    dir: &Path,
    manifest_file: &str,
    weights_file: &str,
) -> Result<(String, Vec<u8>), RewardError> {
    let manifest_path = dir.join(manifest_file);
    let text = std::fs::read_to_string(&manifest_path).map_err(|e| io(&manifest_path, e))?;
    let weights_path = dir.join(weights_file);
    let bytes = std::fs::read(&weights_path).map_err(|e| io(&weights_path, e))?;
    Ok((text, bytes))
}

/// Parses a manifest whose `kind` (read by `kind_of`) must be `expected`.
pub(crate) fn parse_manifest<M: serde::de::DeserializeOwned>(
    text: &str,
    path: &Path,
    expected: &str,
    kind_of: impl Fn(&M) -> &str,
) -> Result<M, RewardError> {
    let bad = |detail: String| RewardError::Artifact { path: path.to_path_buf(), detail };
    let manifest: M = serde_json::from_str(text).map_err(|e| bad(e.to_string()))?;
    let kind = kind_of(&manifest);
    if kind != expected {
        return Err(bad(format!("kind is `{kind}`, expected `{expected}`")));
    }
    Ok(manifest)
}
