//! Reading one tensor from a PyTorch `torch.save` file, as the released
//! Saffron-1 artifacts ship their output bias (`lm_head_bias.pt`) and
//! unseen-token mask (`unseen_mask.pt`).
//!
//! A `torch.save` file (PyTorch ≥ 1.6) is a zip archive: `<name>/data.pkl`
//! is a pickle (protocol 2) describing the object, `<name>/data/<key>` the
//! raw little-endian bytes of each storage. A tensor is pickled as a call of
//! `torch._utils._rebuild_tensor_v2(storage, offset, size, stride,
//! requires_grad, hooks)` whose storage is a persistent id
//! `('storage', torch.FloatStorage, key, location, numel)`; a parameter wraps
//! that in `torch._utils._rebuild_parameter`.
//!
//! The pickle is interpreted by a small stack machine that knows only those
//! calls (and `collections.OrderedDict`); anything else is refused, and no
//! code is ever executed. The root may be the tensor itself (the released
//! files) or a dictionary holding exactly one tensor. WrittenAnswers by hand
//! because the Rust PyTorch readers we know of accept only a dictionary at
//! the root.

use std::collections::HashMap;
use std::io::Read;
use std::path::Path;

use crate::RewardError;

/// Element types of the storages this reader accepts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TorchDtype {
    F32,
    F64,
    F16,
    BF16,
    Bool,
    I64,
    I32,
    U8,
}

/// Each type's legacy storage class (`torch.FloatStorage`, ...), the name
/// `torch.save` writes.
const STORAGE_CLASSES: [(&str, TorchDtype); 8] = [
    ("FloatStorage", TorchDtype::F32),
    ("DoubleStorage", TorchDtype::F64),
    ("HalfStorage", TorchDtype::F16),
    ("BFloat16Storage", TorchDtype::BF16),
    ("BoolStorage", TorchDtype::Bool),
    ("LongStorage", TorchDtype::I64),
    ("IntStorage", TorchDtype::I32),
    ("ByteStorage", TorchDtype::U8),
];

impl TorchDtype {
    fn from_storage(name: &str) -> Option<TorchDtype> {
        STORAGE_CLASSES.iter().find(|(class, _)| *class == name).map(|&(_, dtype)| dtype)
    }

    fn storage_class(self) -> &'static str {
        STORAGE_CLASSES.iter().find(|(_, dtype)| *dtype == self).map(|&(class, _)| class).unwrap()
    }

    fn size(self) -> usize {
        match self {
            TorchDtype::F64 | TorchDtype::I64 => 8,
            TorchDtype::F32 | TorchDtype::I32 => 4,
            TorchDtype::F16 | TorchDtype::BF16 => 2,
            TorchDtype::Bool | TorchDtype::U8 => 1,
        }
    }
}

/// A dense tensor read from a `.pt` file: its type, shape and the bytes of
/// its elements in row-major order.
#[derive(Debug, Clone, PartialEq)]
pub struct TorchTensor {
    pub dtype: TorchDtype,
    pub shape: Vec<usize>,
    pub bytes: Vec<u8>,
}

impl TorchTensor {
    pub fn len(&self) -> usize {
        self.bytes.len() / self.dtype.size()
    }

    pub fn is_empty(&self) -> bool {
        self.bytes.is_empty()
    }

    /// The values as f32 (floating-point tensors only).
    pub fn to_f32(&self) -> Option<Vec<f32>> {
        let chunks = self.bytes.chunks_exact(self.dtype.size());
        Some(match self.dtype {
            TorchDtype::F32 => chunks.map(|c| f32::from_le_bytes(c.try_into().unwrap())).collect(),
            TorchDtype::F64 => chunks.map(|c| f64::from_le_bytes(c.try_into().unwrap()) as f32).collect(),
            TorchDtype::F16 => chunks.map(|c| half::f16::from_le_bytes(c.try_into().unwrap()).to_f32()).collect(),
            TorchDtype::BF16 => chunks.map(|c| half::bf16::from_le_bytes(c.try_into().unwrap()).to_f32()).collect(),
            _ => return None,
        })
    }

    /// The values as integers (bool, integer tensors only).
    pub fn to_i64(&self) -> Option<Vec<i64>> {
        let chunks = self.bytes.chunks_exact(self.dtype.size());
        Some(match self.dtype {
            TorchDtype::Bool | TorchDtype::U8 => self.bytes.iter().map(|&b| b as i64).collect(),
            TorchDtype::I32 => chunks.map(|c| i32::from_le_bytes(c.try_into().unwrap()) as i64).collect(),
            TorchDtype::I64 => chunks.map(|c| i64::from_le_bytes(c.try_into().unwrap())).collect(),
            _ => return None,
        })
    }
}

/// Reads the one tensor of the `torch.save` file at `path`.
pub fn read_torch_tensor(path: &Path) -> Result<TorchTensor, RewardError> {
    let bad = |message: String| RewardError::TorchFile { path: path.to_path_buf(), message };
    let file = std::fs::File::open(path).map_err(|e| bad(format!("cannot open it: {e}")))?;
    let mut zip = zip::ZipArchive::new(file)
        .map_err(|e| bad(format!("not a zip archive ({e}); save it with torch.save (PyTorch 1.6 or later)")))?;
    let pickle_name = (0..zip.len())
        .filter_map(|i| zip.name_for_index(i).map(str::to_owned))
        .find(|n| n.ends_with("/data.pkl") || n == "data.pkl")
        .ok_or_else(|| bad("the archive has no data.pkl".into()))?;
    let prefix = pickle_name.trim_end_matches("data.pkl").to_owned();
    let read_entry = |zip: &mut zip::ZipArchive<std::fs::File>, name: &str| -> Result<Option<Vec<u8>>, RewardError> {
        let mut entry = match zip.by_name(name) {
            Ok(entry) => entry,
            Err(zip::result::ZipError::FileNotFound) => return Ok(None),
            Err(e) => return Err(bad(format!("entry {name}: {e}"))),
        };
        let mut bytes = Vec::new();
        entry.read_to_end(&mut bytes).map_err(|e| bad(format!("entry {name}: {e}")))?;
        Ok(Some(bytes))
    };
    if let Some(order) = read_entry(&mut zip, &format!("{prefix}byteorder"))? {
        if order.trim_ascii() != b"little" {
            return Err(bad(format!("byte order {:?} is not supported", String::from_utf8_lossy(&order))));
        }
    }
    let pickle = read_entry(&mut zip, &pickle_name)?.unwrap_or_default();
    let tensor = match Unpickler::new(&pickle).run().map_err(bad)? {
        Value::Tensor(t) => t,
        Value::Dict(entries) => {
            let mut tensors =
                entries.into_iter().filter_map(|(_, v)| if let Value::Tensor(t) = v { Some(t) } else { None });
            match (tensors.next(), tensors.next()) {
                (Some(t), None) => t,
                _ => return Err(bad("the file holds a dictionary without exactly one tensor".into())),
            }
        }
        other => return Err(bad(format!("the file holds {}, not a tensor", other.kind()))),
    };
    let data = read_entry(&mut zip, &format!("{prefix}data/{}", tensor.storage.key))?
        .ok_or_else(|| bad(format!("storage {} is missing from the archive", tensor.storage.key)))?;
    tensor.materialise(&data).map_err(bad)
}

/// A storage named by a persistent id.
#[derive(Debug, Clone, PartialEq)]
struct StorageRef {
    dtype: TorchDtype,
    key: String,
}

/// A tensor as the pickle describes it, before its bytes are read.
#[derive(Debug, Clone, PartialEq)]
struct TensorRef {
    storage: StorageRef,
    offset: usize,
    shape: Vec<usize>,
    stride: Vec<usize>,
}

impl TensorRef {
    /// The tensor's bytes out of its storage's; only row-major (contiguous)
    /// tensors are accepted.
    fn materialise(&self, storage: &[u8]) -> Result<TorchTensor, String> {
        let mut expected = 1;
        for (dim, stride) in self.shape.iter().zip(&self.stride).rev() {
            if *dim > 1 && *stride != expected {
                return Err(format!("the tensor is not contiguous (shape {:?}, stride {:?})", self.shape, self.stride));
            }
            expected *= dim;
        }
        let size = self.storage.dtype.size();
        let (start, end) = (self.offset * size, (self.offset + expected) * size);
        let bytes = storage
            .get(start..end)
            .ok_or_else(|| format!("storage of {} bytes is too short for the tensor's {end}", storage.len()))?;
        Ok(TorchTensor { dtype: self.storage.dtype, shape: self.shape.clone(), bytes: bytes.to_vec() })
    }
}

/// Pickle values this reader builds.
#[derive(Debug, Clone, PartialEq)]
enum Value {
    None,
    Bool(bool),
    Int(i64),
    Float(f64),
    Str(String),
    Tuple(Vec<Value>),
    List(Vec<Value>),
    Dict(Vec<(Value, Value)>),
    Global(String, String),
    Storage(StorageRef),
    Tensor(TensorRef),
    Mark,
}

impl Value {
    fn kind(&self) -> &'static str {
        match self {
            Value::None => "None",
            Value::Bool(_) => "a bool",
            Value::Int(_) => "an int",
            Value::Float(_) => "a float",
            Value::Str(_) => "a string",
            Value::Tuple(_) => "a tuple",
            Value::List(_) => "a list",
            Value::Dict(_) => "a dictionary",
            Value::Global(..) => "a class",
            Value::Storage(_) => "a storage",
            Value::Tensor(_) => "a tensor",
            Value::Mark => "a mark",
        }
    }

    fn usize(&self) -> Result<usize, String> {
        match self {
            Value::Int(i) if *i >= 0 => Ok(*i as usize),
            other => Err(format!("expected a non-negative int, found {}", other.kind())),
        }
    }

    fn usizes(&self) -> Result<Vec<usize>, String> {
        match self {
            Value::Tuple(items) | Value::List(items) => items.iter().map(Value::usize).collect(),
            other => Err(format!("expected a tuple of ints, found {}", other.kind())),
        }
    }
}

/// The stack machine (CPython's `pickle` semantics for the opcodes
/// `torch.save` emits).
struct Unpickler<'a> {
    bytes: &'a [u8],
    at: usize,
    stack: Vec<Value>,
    memo: HashMap<u32, Value>,
}

impl<'a> Unpickler<'a> {
    fn new(bytes: &'a [u8]) -> Self {
        Unpickler { bytes, at: 0, stack: Vec::new(), memo: HashMap::new() }
    }

    fn take(&mut self, n: usize) -> Result<&'a [u8], String> {
        let slice = self.bytes.get(self.at..self.at + n).ok_or("the pickle ends early")?;
        self.at += n;
        Ok(slice)
    }

    fn u8(&mut self) -> Result<u8, String> {
        Ok(self.take(1)?[0])
    }

    fn u16(&mut self) -> Result<u16, String> {
        Ok(u16::from_le_bytes(self.take(2)?.try_into().unwrap()))
    }

    fn u32(&mut self) -> Result<u32, String> {
        Ok(u32::from_le_bytes(self.take(4)?.try_into().unwrap()))
    }

    fn u64(&mut self) -> Result<u64, String> {
        Ok(u64::from_le_bytes(self.take(8)?.try_into().unwrap()))
    }

    fn line(&mut self) -> Result<String, String> {
        let rest = &self.bytes[self.at..];
        let end = rest.iter().position(|&b| b == b'\n').ok_or("unterminated GLOBAL name")?;
        self.at += end + 1;
        Ok(String::from_utf8_lossy(&rest[..end]).into_owned())
    }

    fn string(&mut self, len: usize) -> Result<Value, String> {
        let bytes = self.take(len)?;
        Ok(Value::Str(String::from_utf8(bytes.to_vec()).map_err(|_| "a string is not UTF-8")?))
    }

    fn pop(&mut self) -> Result<Value, String> {
        self.stack.pop().ok_or_else(|| "the pickle's stack underflows".into())
    }

    fn top(&mut self) -> Result<&mut Value, String> {
        self.stack.last_mut().ok_or_else(|| "the pickle's stack underflows".into())
    }

    /// Everything above the topmost mark (the mark is removed).
    fn pop_mark(&mut self) -> Result<Vec<Value>, String> {
        let mark = self.stack.iter().rposition(|v| *v == Value::Mark).ok_or("no mark on the pickle's stack")?;
        let items = self.stack.split_off(mark + 1);
        self.stack.pop();
        Ok(items)
    }

    fn memo_put(&mut self, key: u32) -> Result<(), String> {
        let top = self.top()?.clone();
        self.memo.insert(key, top);
        Ok(())
    }

    fn memo_get(&mut self, key: u32) -> Result<(), String> {
        let value = self.memo.get(&key).cloned().ok_or_else(|| format!("memo entry {key} is missing"))?;
        self.stack.push(value);
        Ok(())
    }

    fn run(mut self) -> Result<Value, String> {
        loop {
            let op = self.u8()?;
            match op {
                0x80 => {
                    self.u8()?; // PROTO
                }
                0x95 => {
                    self.u64()?; // FRAME
                }
                b'.' => return self.pop(),
                b'(' => self.stack.push(Value::Mark),
                b'N' => self.stack.push(Value::None),
                0x88 => self.stack.push(Value::Bool(true)),
                0x89 => self.stack.push(Value::Bool(false)),
                b'K' => {
                    let v = self.u8()?;
                    self.stack.push(Value::Int(v as i64))
                }
                b'M' => {
                    let v = self.u16()?;
                    self.stack.push(Value::Int(v as i64))
                }
                b'J' => {
                    let v = self.u32()? as i32;
                    self.stack.push(Value::Int(v as i64))
                }
                0x8a => {
                    let n = self.u8()? as usize;
                    let bytes = self.take(n)?;
                    if n > 8 {
                        return Err("an integer wider than 64 bits".into());
                    }
                    let fill = if bytes.last().is_some_and(|b| b & 0x80 != 0) { 0xff } else { 0 };
                    let mut wide = [fill; 8];
                    wide[..n].copy_from_slice(bytes);
                    self.stack.push(Value::Int(i64::from_le_bytes(wide)))
                }
                b'G' => {
                    let v = f64::from_be_bytes(self.take(8)?.try_into().unwrap());
                    self.stack.push(Value::Float(v))
                }
                b'X' => {
                    let n = self.u32()? as usize;
                    let s = self.string(n)?;
                    self.stack.push(s)
                }
                0x8c => {
                    let n = self.u8()? as usize;
                    let s = self.string(n)?;
                    self.stack.push(s)
                }
                0x8d => {
                    let n = self.u64()? as usize;
                    let s = self.string(n)?;
                    self.stack.push(s)
                }
                b'c' => {
                    let (module, name) = (self.line()?, self.line()?);
                    self.stack.push(Value::Global(module, name))
                }
                0x93 => {
                    let (name, module) = (self.pop()?, self.pop()?);
                    match (module, name) {
                        (Value::Str(m), Value::Str(n)) => self.stack.push(Value::Global(m, n)),
                        _ => return Err("STACK_GLOBAL without two strings".into()),
                    }
                }
                b')' => self.stack.push(Value::Tuple(Vec::new())),
                b']' => self.stack.push(Value::List(Vec::new())),
                b'}' => self.stack.push(Value::Dict(Vec::new())),
                b't' => {
                    let items = self.pop_mark()?;
                    self.stack.push(Value::Tuple(items))
                }
                0x85..=0x87 => {
                    let n = (op - 0x84) as usize;
                    let at = self.stack.len().checked_sub(n).ok_or("the pickle's stack underflows")?;
                    let items = self.stack.split_off(at);
                    self.stack.push(Value::Tuple(items))
                }
                b'a' => {
                    let item = self.pop()?;
                    match self.top()? {
                        Value::List(items) => items.push(item),
                        other => return Err(format!("APPEND to {}", other.kind())),
                    }
                }
                b'e' => {
                    let new = self.pop_mark()?;
                    match self.top()? {
                        Value::List(items) => items.extend(new),
                        other => return Err(format!("APPENDS to {}", other.kind())),
                    }
                }
                b's' => {
                    let (value, key) = (self.pop()?, self.pop()?);
                    match self.top()? {
                        Value::Dict(entries) => entries.push((key, value)),
                        other => return Err(format!("SETITEM on {}", other.kind())),
                    }
                }
                b'u' => {
                    let flat = self.pop_mark()?;
                    if flat.len() % 2 != 0 {
                        return Err("SETITEMS with an odd number of items".into());
                    }
                    let mut pairs = Vec::with_capacity(flat.len() / 2);
                    let mut it = flat.into_iter();
                    while let (Some(k), Some(v)) = (it.next(), it.next()) {
                        pairs.push((k, v));
                    }
                    match self.top()? {
                        Value::Dict(entries) => entries.extend(pairs),
                        other => return Err(format!("SETITEMS on {}", other.kind())),
                    }
                }
                b'q' => {
                    let key = self.u8()? as u32;
                    self.memo_put(key)?
                }
                b'r' => {
                    let key = self.u32()?;
                    self.memo_put(key)?
                }
                0x94 => {
                    let key = self.memo.len() as u32;
                    self.memo_put(key)?
                }
                b'h' => {
                    let key = self.u8()? as u32;
                    self.memo_get(key)?
                }
                b'j' => {
                    let key = self.u32()?;
                    self.memo_get(key)?
                }
                b'Q' => {
                    let id = self.pop()?;
                    self.stack.push(persistent_storage(id)?)
                }
                b'R' => {
                    let (args, callable) = (self.pop()?, self.pop()?);
                    self.stack.push(reduce(callable, args)?)
                }
                b'b' => {
                    // BUILD: object state (a tensor's Python attributes); not needed.
                    self.pop()?;
                }
                other => return Err(format!("pickle opcode 0x{other:02x} is not supported by this reader")),
            }
        }
    }
}

/// `('storage', torch.FloatStorage, key, location, numel)`.
fn persistent_storage(id: Value) -> Result<Value, String> {
    let Value::Tuple(items) = id else { return Err("a persistent id that is not a tuple".into()) };
    match items.as_slice() {
        [Value::Str(tag), Value::Global(module, class), Value::Str(key), ..]
            if tag == "storage" && module == "torch" =>
        {
            let dtype = TorchDtype::from_storage(class)
                .ok_or_else(|| format!("storage type torch.{class} is not supported"))?;
            Ok(Value::Storage(StorageRef { dtype, key: key.clone() }))
        }
        _ => Err("a persistent id that is not a torch storage".into()),
    }
}

/// The only calls a tensor file needs.
fn reduce(callable: Value, args: Value) -> Result<Value, String> {
    let Value::Global(module, name) = callable else { return Err(format!("REDUCE on {}", callable.kind())) };
    let Value::Tuple(args) = args else { return Err(format!("{module}.{name} called without a tuple")) };
    match (module.as_str(), name.as_str()) {
        ("torch._utils", "_rebuild_tensor_v2") => match args.as_slice() {
            [Value::Storage(storage), offset, size, stride, ..] => Ok(Value::Tensor(TensorRef {
                storage: storage.clone(),
                offset: offset.usize()?,
                shape: size.usizes()?,
                stride: stride.usizes()?,
            })),
            _ => Err("_rebuild_tensor_v2 with unexpected arguments".into()),
        },
        ("torch._utils", "_rebuild_parameter") => match args.into_iter().next() {
            Some(tensor @ Value::Tensor(_)) => Ok(tensor),
            _ => Err("_rebuild_parameter without a tensor".into()),
        },
        ("collections", "OrderedDict") => Ok(Value::Dict(Vec::new())),
        _ => Err(format!(
            "the pickle calls {module}.{name}, which a tensor file does not need (refused: nothing is executed)"
        )),
    }
}

/// Writes a 1-D tensor as `torch.save(tensor, path)` does (PyTorch 2.x:
/// a zip archive of stored entries, a protocol-2 pickle calling
/// `_rebuild_tensor_v2` on storage `0`). For tests and fixtures: saffron
/// itself only reads these files.
pub fn write_torch_tensor(path: &Path, dtype: TorchDtype, bytes: &[u8]) -> std::io::Result<()> {
    let numel = (bytes.len() / dtype.size()) as u32;
    write_torch_archive(path, &tensor_pickle(dtype, numel), bytes)
}

/// The pickle `torch.save` writes for a 1-D tensor of `numel` elements.
fn tensor_pickle(dtype: TorchDtype, numel: u32) -> Vec<u8> {
    let storage = dtype.storage_class();
    let string = |s: &str| [&[b'X'][..], &(s.len() as u32).to_le_bytes(), s.as_bytes()].concat();
    let int = |n: u32| [&[b'J'][..], &n.to_le_bytes()].concat();
    let mut p: Vec<u8> = vec![0x80, 2];
    p.extend(b"ctorch._utils\n_rebuild_tensor_v2\nq\x00((");
    p.extend(string("storage"));
    p.extend(b"q\x01ctorch\n");
    p.extend(storage.as_bytes());
    p.extend(b"\nq\x02");
    p.extend(string("0"));
    p.extend(b"q\x03");
    p.extend(string("cpu"));
    p.extend(b"q\x04");
    p.extend(int(numel));
    p.extend(b"tq\x05QK\x00");
    p.extend(int(numel));
    p.extend(b"\x85q\x06K\x01\x85q\x07\x89ccollections\nOrderedDict\nq\x08)Rq\x09tq\x0aRq\x0b.");
    p
}

/// The zip layout of `torch.save`: the pickle and storage `0`, stored.
fn write_torch_archive(path: &Path, pickle: &[u8], storage: &[u8]) -> std::io::Result<()> {
    use std::io::Write;
    let mut zip = zip::ZipWriter::new(std::fs::File::create(path)?);
    let stored = zip::write::SimpleFileOptions::default().compression_method(zip::CompressionMethod::Stored);
    for (name, data) in [
        ("archive/data.pkl", pickle),
        ("archive/byteorder", b"little".as_slice()),
        ("archive/data/0", storage),
        ("archive/version", b"3\n".as_slice()),
    ] {
        zip.start_file(name, stored).map_err(std::io::Error::other)?;
        zip.write_all(data)?;
    }
    zip.finish().map_err(std::io::Error::other)?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn f32_bytes(v: &[f32]) -> Vec<u8> {
        v.iter().flat_map(|x| x.to_le_bytes()).collect()
    }

    #[test]
    fn round_trip_of_each_type() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("t.pt");
        write_torch_tensor(&path, TorchDtype::F32, &f32_bytes(&[1.5, -2.0, 3.25])).unwrap();
        let t = read_torch_tensor(&path).unwrap();
        assert_eq!((t.dtype, t.shape.clone()), (TorchDtype::F32, vec![3]));
        assert_eq!(t.to_f32().unwrap(), vec![1.5, -2.0, 3.25]);
        assert_eq!(t.to_i64(), None);

        write_torch_tensor(&path, TorchDtype::Bool, &[1, 0, 0, 1]).unwrap();
        assert_eq!(read_torch_tensor(&path).unwrap().to_i64().unwrap(), vec![1, 0, 0, 1]);

        let bf16: Vec<u8> = [1.0f32, -0.5].iter().flat_map(|&x| half::bf16::from_f32(x).to_le_bytes()).collect();
        write_torch_tensor(&path, TorchDtype::BF16, &bf16).unwrap();
        assert_eq!(read_torch_tensor(&path).unwrap().to_f32().unwrap(), vec![1.0, -0.5]);

        let ids: Vec<u8> = [7i64, 70_000].iter().flat_map(|x| x.to_le_bytes()).collect();
        write_torch_tensor(&path, TorchDtype::I64, &ids).unwrap();
        assert_eq!(read_torch_tensor(&path).unwrap().to_i64().unwrap(), vec![7, 70_000]);
    }

    /// The pickle `torch.save({"tensor": torch.arange(6.).reshape(2, 3)})`
    /// writes (opcodes as PyTorch 2.x emits them, BININT1 sizes, a dict root,
    /// SETITEM): a 2-D tensor with strides (3, 1).
    #[test]
    fn dict_root_and_two_dimensions() {
        let pickle: &[u8] = b"\x80\x02}q\x00X\x06\x00\x00\x00tensorq\x01ctorch._utils\n_rebuild_tensor_v2\nq\x02((X\x07\x00\x00\x00storageq\x03ctorch\nFloatStorage\nq\x04X\x01\x00\x00\x000q\x05X\x03\x00\x00\x00cpuq\x06K\x06tq\x07QK\x00K\x02K\x03\x86q\x08K\x03K\x01\x86q\t\x89ccollections\nOrderedDict\nq\n)Rq\x0btq\x0cRq\rs.";
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("d.pt");
        write_torch_archive(&path, pickle, &f32_bytes(&[0.0, 1.0, 2.0, 3.0, 4.0, 5.0])).unwrap();
        let t = read_torch_tensor(&path).unwrap();
        assert_eq!(t.shape, vec![2, 3]);
        assert_eq!(t.to_f32().unwrap(), vec![0.0, 1.0, 2.0, 3.0, 4.0, 5.0]);
    }

    #[test]
    fn refusals_name_the_problem() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("x.pt");
        std::fs::write(&path, b"not a zip").unwrap();
        let err = read_torch_tensor(&path).unwrap_err().to_string();
        assert!(err.contains("not a zip archive") && err.contains("x.pt"), "{err}");

        // A pickle that calls anything but the tensor rebuilders is refused.
        let evil = b"\x80\x02cos\nsystem\nq\x00X\x02\x00\x00\x00lsq\x01\x85q\x02Rq\x03.";
        let mut p = Unpickler::new(evil);
        p.stack.clear();
        let err = p.run().unwrap_err();
        assert!(err.contains("os.system") && err.contains("refused"), "{err}");
    }

    proptest::proptest! {
        #![proptest_config(proptest::prelude::ProptestConfig { cases: 512, ..Default::default() })]

        /// Whatever bytes a pickle holds (a valid one mutated, cut or
        /// grown), reading it returns a value or an error, never a panic;
        /// and so does reading a whole archive around it.
        #[test]
        fn a_mutated_pickle_never_panics(
            edits in proptest::collection::vec((0usize..400, proptest::prelude::any::<u8>()), 0..8),
            cut in 0usize..400,
            tail in proptest::collection::vec(proptest::prelude::any::<u8>(), 0..16),
        ) {
            let mut pickle = tensor_pickle(TorchDtype::F32, 3);
            for (at, byte) in edits {
                let at = at % pickle.len();
                pickle[at] = byte;
            }
            pickle.truncate(cut.max(1));
            pickle.extend(tail);
            let data = f32_bytes(&[1.0, 2.0, 3.0]);
            if let Ok(Value::Tensor(t)) = Unpickler::new(&pickle).run() {
                let _ = t.materialise(&data);
            }
            let dir = tempfile::tempdir().unwrap();
            let path = dir.path().join("t.pt");
            write_torch_archive(&path, &pickle, &data).unwrap();
            let _ = read_torch_tensor(&path);
        }
    }
}
