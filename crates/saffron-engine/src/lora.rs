//! LoRA adapters in llama.cpp's GGUF adapter format.
//!
//! llama.cpp applies a LoRA adapter at run time (`W·x + s·B·(A·x)`, with
//! `s = scale · alpha / rank`) from a GGUF file whose metadata says
//! `general.type = adapter`, `adapter.type = lora`, the base model's
//! `general.architecture` and `adapter.lora.alpha`, and whose tensors are
//! named after the base weight they adapt: `blk.3.attn_q.weight.lora_a`
//! (shape `[n_in, rank]` in GGUF order, fastest dimension first) and
//! `...lora_b` (`[rank, n_out]`). llama.cpp checks these shapes against the
//! model when the adapter is loaded ([`Model::with_lora`](crate::Model::with_lora)).
//!
//! This module writes such a file (GGUF version 3, f32 tensors, 32-byte
//! alignment). Converting another format (PEFT safetensors) into
//! [`LoraMatrix`]es is the caller's business.

use std::io::{self, BufWriter, Write};
use std::path::Path;

/// GGUF value types used here (ggml's `gguf_type`).
const GGUF_TYPE_FLOAT32: u32 = 6;
const GGUF_TYPE_STRING: u32 = 8;
/// ggml's `GGML_TYPE_F32`.
const GGML_TYPE_F32: u32 = 0;
/// GGUF's default `general.alignment`.
const ALIGNMENT: u64 = 32;

/// One adapted weight: `ΔW = B·A` with `A` of `rank × n_in` and `B` of
/// `n_out × rank`, both row-major (the PEFT / PyTorch layout, which is
/// byte-for-byte GGUF's `[n_in, rank]` and `[rank, n_out]`).
#[derive(Debug, Clone, PartialEq)]
pub struct LoraMatrix {
    /// The GGUF name of the adapted weight, e.g. `blk.0.attn_q.weight`.
    pub weight: String,
    pub rank: usize,
    pub n_in: usize,
    pub n_out: usize,
    pub a: Vec<f32>,
    pub b: Vec<f32>,
}

/// A whole adapter: the base architecture, alpha and the adapted weights.
#[derive(Debug, Clone, PartialEq)]
pub struct LoraAdapter {
    /// `general.architecture` of the base model (`llama`, `qwen2`, ...).
    pub arch: String,
    pub alpha: f32,
    pub matrices: Vec<LoraMatrix>,
}

/// A tensor as the GGUF header describes it.
struct TensorInfo<'a> {
    name: String,
    ne: [u64; 2],
    data: &'a [f32],
}

impl LoraAdapter {
    fn tensors(&self) -> Vec<TensorInfo<'_>> {
        let mut tensors = Vec::with_capacity(2 * self.matrices.len());
        for m in &self.matrices {
            tensors.push(TensorInfo {
                name: format!("{}.lora_a", m.weight),
                ne: [m.n_in as u64, m.rank as u64],
                data: &m.a,
            });
            tensors.push(TensorInfo {
                name: format!("{}.lora_b", m.weight),
                ne: [m.rank as u64, m.n_out as u64],
                data: &m.b,
            });
        }
        tensors
    }

    /// Checks that every matrix holds `rank × n_in` and `n_out × rank` values.
    fn check(&self) -> io::Result<()> {
        for m in &self.matrices {
            if m.a.len() != m.rank * m.n_in || m.b.len() != m.n_out * m.rank {
                return Err(io::Error::new(
                    io::ErrorKind::InvalidInput,
                    format!(
                        "LoRA matrices of {} hold {} and {} values, expected {}×{} and {}×{}",
                        m.weight,
                        m.a.len(),
                        m.b.len(),
                        m.rank,
                        m.n_in,
                        m.n_out,
                        m.rank
                    ),
                ));
            }
        }
        Ok(())
    }

    /// Writes the adapter as a GGUF file at `path`, atomically (a temporary
    /// file beside it, renamed when complete).
    pub fn write_gguf(&self, path: &Path) -> io::Result<()> {
        self.check()?;
        let dir = path.parent().filter(|p| !p.as_os_str().is_empty()).unwrap_or(Path::new("."));
        std::fs::create_dir_all(dir)?;
        let tmp = tempfile::NamedTempFile::new_in(dir)?;
        let mut out = BufWriter::new(tmp.as_file());
        self.write_to(&mut out)?;
        out.flush()?;
        drop(out);
        tmp.as_file().sync_all()?;
        tmp.persist(path).map_err(|e| e.error)?;
        Ok(())
    }

    fn write_to(&self, out: &mut impl Write) -> io::Result<()> {
        let tensors = self.tensors();
        out.write_all(b"GGUF")?;
        out.write_all(&3u32.to_le_bytes())?;
        out.write_all(&(tensors.len() as u64).to_le_bytes())?;
        out.write_all(&4u64.to_le_bytes())?;
        write_kv_str(out, "general.architecture", &self.arch)?;
        write_kv_str(out, "general.type", "adapter")?;
        write_kv_str(out, "adapter.type", "lora")?;
        write_str(out, "adapter.lora.alpha")?;
        out.write_all(&GGUF_TYPE_FLOAT32.to_le_bytes())?;
        out.write_all(&self.alpha.to_le_bytes())?;

        let mut header_len = 4
            + 4
            + 8
            + 8
            + kv_len("general.architecture", &self.arch)
            + kv_len("general.type", "adapter")
            + kv_len("adapter.type", "lora")
            + (8 + "adapter.lora.alpha".len() as u64 + 4 + 4);
        let mut offset = 0u64;
        for t in &tensors {
            write_str(out, &t.name)?;
            out.write_all(&2u32.to_le_bytes())?;
            for ne in t.ne {
                out.write_all(&ne.to_le_bytes())?;
            }
            out.write_all(&GGML_TYPE_F32.to_le_bytes())?;
            out.write_all(&offset.to_le_bytes())?;
            header_len += 8 + t.name.len() as u64 + 4 + 16 + 4 + 8;
            offset = align(offset + 4 * t.data.len() as u64);
        }
        write_padding(out, header_len)?;
        for t in &tensors {
            for v in t.data {
                out.write_all(&v.to_le_bytes())?;
            }
            write_padding(out, 4 * t.data.len() as u64)?;
        }
        Ok(())
    }
}

fn align(n: u64) -> u64 {
    n.div_ceil(ALIGNMENT) * ALIGNMENT
}

fn write_padding(out: &mut impl Write, written: u64) -> io::Result<()> {
    out.write_all(&vec![0u8; (align(written) - written) as usize])
}

fn write_str(out: &mut impl Write, s: &str) -> io::Result<()> {
    out.write_all(&(s.len() as u64).to_le_bytes())?;
    out.write_all(s.as_bytes())
}

fn write_kv_str(out: &mut impl Write, key: &str, value: &str) -> io::Result<()> {
    write_str(out, key)?;
    out.write_all(&GGUF_TYPE_STRING.to_le_bytes())?;
    write_str(out, value)
}

/// Bytes of a string key-value pair.
fn kv_len(key: &str, value: &str) -> u64 {
    8 + key.len() as u64 + 4 + 8 + value.len() as u64
}

#[cfg(test)]
mod tests {
    use super::*;

    fn adapter() -> LoraAdapter {
        LoraAdapter {
            arch: "llama".into(),
            alpha: 4.0,
            matrices: vec![LoraMatrix {
                weight: "blk.0.attn_v.weight".into(),
                rank: 1,
                n_in: 3,
                n_out: 2,
                a: vec![1.0, 2.0, 3.0],
                b: vec![-1.0, 0.5],
            }],
        }
    }

    /// The layout by hand: header, 4 key-value pairs, 2 tensor infos, padding
    /// to 32 bytes, then A (12 bytes) and B (8 bytes), each padded to 32.
    #[test]
    fn gguf_layout_by_hand() {
        let mut bytes = Vec::new();
        adapter().write_to(&mut bytes).unwrap();
        assert_eq!(&bytes[..4], b"GGUF");
        assert_eq!(u32::from_le_bytes(bytes[4..8].try_into().unwrap()), 3);
        assert_eq!(u64::from_le_bytes(bytes[8..16].try_into().unwrap()), 2, "tensors");
        assert_eq!(u64::from_le_bytes(bytes[16..24].try_into().unwrap()), 4, "key-value pairs");
        // kv: arch (8+20+4+8+5 = 45), type (8+12+4+8+7 = 39), adapter.type
        // (8+12+4+8+4 = 36), alpha (8+18+4+4 = 34); tensor infos: names of
        // 26 bytes each, 8+26+4+16+4+8 = 66 each.
        let header = 24 + 45 + 39 + 36 + 34 + 2 * 66;
        let data_start = align(header as u64) as usize;
        assert_eq!(bytes.len(), data_start + 32 + 32);
        let f = |i: usize| f32::from_le_bytes(bytes[i..i + 4].try_into().unwrap());
        assert_eq!([f(data_start), f(data_start + 4), f(data_start + 8)], [1.0, 2.0, 3.0]);
        assert_eq!([f(data_start + 32), f(data_start + 36)], [-1.0, 0.5]);
        // lora_b's offset (the last 8 bytes of the second tensor info) is 32.
        assert_eq!(u64::from_le_bytes(bytes[header - 8..header].try_into().unwrap()), 32);
    }

    #[test]
    fn wrong_matrix_size_is_refused() {
        let mut bad = adapter();
        bad.matrices[0].b.push(1.0);
        let dir = tempfile::tempdir().unwrap();
        let err = bad.write_gguf(&dir.path().join("a.gguf")).unwrap_err();
        assert!(err.to_string().contains("blk.0.attn_v.weight"), "{err}");
        assert!(!dir.path().join("a.gguf").exists());
    }
}
