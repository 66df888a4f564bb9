//! Bytes of a checkpoint: tensors as little-endian row-major buffers, the
//! CRC-32 over tensors and metadata, and the atomic write (a temporary
//! file of its own per write, synced, renamed over the target, directory
//! synced).

use std::collections::HashMap;
use std::fs::{File, OpenOptions};
use std::io::{ErrorKind, Write};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{SystemTime, UNIX_EPOCH};

use nalgebra::DMatrix;
use safetensors::tensor::{Dtype, SafeTensors, TensorView};

use crate::{Error, Float, Precision, Result};

/// A read failure, named with the checkpoint's path.
pub(super) fn bad(path: &Path, message: impl Into<String>) -> Error {
    Error::Checkpoint {
        path: path.to_path_buf(),
        message: message.into(),
    }
}

/// One named tensor of a checkpoint, as stored.
pub(super) struct Tensor {
    pub(super) name: String,
    pub(super) dtype: Dtype,
    pub(super) shape: Vec<usize>,
    pub(super) bytes: Vec<u8>,
}

impl Tensor {
    /// A column-major matrix, stored row-major (as safetensors and numpy
    /// expect).
    pub(super) fn matrix<T: Float>(name: &str, m: &DMatrix<T>) -> Tensor {
        let mut bytes = Vec::with_capacity(m.len() * width_of::<T>());
        for i in 0..m.nrows() {
            for j in 0..m.ncols() {
                push_le(m[(i, j)], &mut bytes);
            }
        }
        Tensor {
            name: name.into(),
            dtype: dtype_of::<T>(),
            shape: vec![m.nrows(), m.ncols()],
            bytes,
        }
    }

    /// Values of the given shape, in storage order.
    pub(super) fn values<T: Float>(name: &str, shape: Vec<usize>, values: &[T]) -> Tensor {
        let mut bytes = Vec::with_capacity(values.len() * width_of::<T>());
        for &x in values {
            push_le(x, &mut bytes);
        }
        Tensor {
            name: name.into(),
            dtype: dtype_of::<T>(),
            shape,
            bytes,
        }
    }
}

/// The tensors of a safetensors file, by name.
pub(super) struct Tensors<'p> {
    path: &'p Path,
    tensors: Vec<Tensor>,
}

impl<'p> Tensors<'p> {
    pub(super) fn read(st: &SafeTensors<'_>, path: &'p Path) -> Result<Self> {
        let mut tensors = Vec::new();
        for name in st.names() {
            let t = st.tensor(name).map_err(|e| bad(path, e.to_string()))?;
            tensors.push(Tensor {
                name: name.to_string(),
                dtype: t.dtype(),
                shape: t.shape().to_vec(),
                bytes: t.data().to_vec(),
            });
        }
        Ok(Tensors { path, tensors })
    }

    pub(super) fn all(&self) -> &[Tensor] {
        &self.tensors
    }

    /// The stored shape of `name`, if present.
    pub(super) fn shape(&self, name: &str) -> Option<&[usize]> {
        self.tensors.iter().find(|t| t.name == name).map(|t| t.shape.as_slice())
    }

    /// The bytes of `name`, which must have `dtype` and `shape`.
    fn bytes(&self, name: &str, dtype: Dtype, shape: &[usize]) -> Result<&[u8]> {
        let t = self
            .tensors
            .iter()
            .find(|t| t.name == name)
            .ok_or_else(|| bad(self.path, format!("tensor \"{name}\" missing")))?;
        if t.dtype != dtype || t.shape != shape {
            return Err(bad(
                self.path,
                format!(
                    "tensor \"{name}\" is {:?} {:?}, expected {dtype:?} {shape:?}",
                    t.dtype, t.shape
                ),
            ));
        }
        Ok(&t.bytes)
    }

    /// A rows × cols matrix stored row-major.
    pub(super) fn matrix<T: Float>(&self, name: &str, rows: usize, cols: usize) -> Result<DMatrix<T>> {
        let bytes = self.bytes(name, dtype_of::<T>(), &[rows, cols])?;
        Ok(DMatrix::from_row_iterator(
            rows,
            cols,
            bytes.chunks_exact(width_of::<T>()).map(read_le::<T>),
        ))
    }

    /// Values of the given shape, in storage order.
    pub(super) fn values<T: Float>(&self, name: &str, shape: &[usize]) -> Result<Vec<T>> {
        let bytes = self.bytes(name, dtype_of::<T>(), shape)?;
        Ok(bytes.chunks_exact(width_of::<T>()).map(read_le::<T>).collect())
    }
}

/// The safetensors dtype of `T`.
fn dtype_of<T: Float>() -> Dtype {
    match T::PRECISION {
        Precision::F32 => Dtype::F32,
        Precision::F64 => Dtype::F64,
    }
}

/// Bytes per entry of `T`.
fn width_of<T: Float>() -> usize {
    match T::PRECISION {
        Precision::F32 => 4,
        Precision::F64 => 8,
    }
}

/// Appends the little-endian bytes of `x` (exact: an `f32` converts to
/// `f64` and back losslessly).
fn push_le<T: Float>(x: T, out: &mut Vec<u8>) {
    match T::PRECISION {
        Precision::F32 => out.extend_from_slice(&(x.to_f64() as f32).to_le_bytes()),
        Precision::F64 => out.extend_from_slice(&x.to_f64().to_le_bytes()),
    }
}

/// Reads one entry from exactly [`width_of`] little-endian bytes.
fn read_le<T: Float>(bytes: &[u8]) -> T {
    let mut b = [0u8; 8];
    b[..bytes.len()].copy_from_slice(bytes);
    match T::PRECISION {
        Precision::F32 => T::cast(f64::from(f32::from_le_bytes([b[0], b[1], b[2], b[3]]))),
        Precision::F64 => T::cast(f64::from_le_bytes(b)),
    }
}

/// CRC-32 over the metadata (but the CRC itself) and every tensor's name and
/// bytes, in sorted order.
pub(super) fn crc_of(tensors: &[Tensor], meta: &HashMap<String, String>) -> u32 {
    let mut sorted: Vec<&Tensor> = tensors.iter().collect();
    sorted.sort_by(|a, b| a.name.cmp(&b.name));
    let mut h = crc32fast::Hasher::new();
    let mut keys: Vec<&String> = meta.keys().filter(|k| k.as_str() != "crc32").collect();
    keys.sort();
    for k in keys {
        h.update(k.as_bytes());
        h.update(&[0]);
        h.update(meta[k].as_bytes());
        h.update(&[0]);
    }
    for t in sorted {
        h.update(t.name.as_bytes());
        h.update(&t.bytes);
    }
    h.finalize()
}

/// The safetensors file of `tensors` and `meta` (with the CRC added).
pub(super) fn serialize(tensors: &[Tensor], mut meta: HashMap<String, String>, path: &Path) -> Result<Vec<u8>> {
    let crc = crc_of(tensors, &meta);
    meta.insert("crc32".to_string(), format!("{crc:#010x}"));
    let views: Vec<(String, TensorView<'_>)> = tensors
        .iter()
        .map(|t| {
            TensorView::new(t.dtype, t.shape.clone(), &t.bytes)
                .map(|v| (t.name.clone(), v))
                .map_err(|e| bad(path, e.to_string()))
        })
        .collect::<Result<_>>()?;
    safetensors::serialize(views, Some(meta)).map_err(|e| bad(path, e.to_string()))
}

/// The stages of [`write_atomically`], in order: a process killed after any
/// of them but the last leaves a stale temporary file and `path` as it was.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub(super) enum Stage {
    /// The temporary file exists, empty.
    Created,
    /// Half of the bytes are written.
    HalfWritten,
    /// All bytes are written, not yet synced.
    Written,
    /// The bytes are synced to disk.
    Synced,
    /// The temporary file has been renamed over `path` and the directory
    /// synced, so the rename itself survives a crash.
    Renamed,
}

/// Writes `bytes` to a new temporary file beside `path`, syncs it, renames
/// it over `path` and syncs the directory. Every call has its own temporary
/// file ([`create_temporary`]), so concurrent writes to one path (threads or
/// processes) never share one: each rename replaces `path` by one whole
/// file, and the last rename wins.
pub(super) fn write_atomically(path: &Path, bytes: &[u8]) -> Result<()> {
    write_stages(path, bytes, Stage::Renamed).map(|_| ())
}

/// Temporary files created by this process so far: with the process id and
/// the clock, part of every temporary file's name.
static TEMPORARIES: AtomicU64 = AtomicU64::new(0);

/// Tries before [`create_temporary`] gives up on names that exist already.
const TEMPORARY_ATTEMPTS: u32 = 64;

/// Creates a new, empty temporary file for a write to `path`: beside it
/// (the rename must not cross file systems), hidden, named
/// `.{name}.tmp-{pid}-{n}-{nanos}` with `n` from a process-wide counter and
/// `nanos` from the clock. The counter makes the name unique within the
/// process; the process id and the clock make a clash with another process
/// unlikely (two containers with the same pid writing to a shared
/// directory), and the file is opened with `create_new`, so a clash is
/// never written through: the next name is tried.
pub(super) fn create_temporary(path: &Path) -> Result<(PathBuf, File)> {
    let dir = parent_dir(path);
    let name = path
        .file_name()
        .ok_or_else(|| Error::invalid("path", path.display(), "a file path"))?;
    let mut last = None;
    for _ in 0..TEMPORARY_ATTEMPTS {
        let n = TEMPORARIES.fetch_add(1, Ordering::Relaxed);
        let nanos = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| d.subsec_nanos());
        let tmp = dir.join(format!(
            ".{}.tmp-{}-{n}-{nanos}",
            name.to_string_lossy(),
            std::process::id()
        ));
        match OpenOptions::new().write(true).create_new(true).open(&tmp) {
            Ok(f) => return Ok((tmp, f)),
            Err(e) if e.kind() == ErrorKind::AlreadyExists => last = Some(e),
            Err(e) => return Err(Error::io(path, e)),
        }
    }
    let e = last.unwrap_or_else(|| std::io::Error::from(ErrorKind::AlreadyExists));
    Err(Error::io(path, e))
}

/// The directory of `path` (`.` for a bare file name).
fn parent_dir(path: &Path) -> &Path {
    path.parent()
        .filter(|p| !p.as_os_str().is_empty())
        .unwrap_or(Path::new("."))
}

/// Syncs directory `dir`, so a rename in it is on disk. Unix opens the
/// directory and fsyncs it, and any error counts. Elsewhere (Windows) a
/// directory cannot be opened as a file, so there is nothing to sync and a
/// failure to open it is ignored.
fn sync_directory(dir: &Path) -> std::io::Result<()> {
    #[cfg(unix)]
    {
        File::open(dir)?.sync_all()
    }
    #[cfg(not(unix))]
    {
        if let Ok(d) = File::open(dir) {
            let _ = d.sync_all();
        }
        Ok(())
    }
}

/// The stages of an atomic write to `path` up to and including `last`
/// (tests stop it early, as a killed process would). Returns the temporary
/// file's path (gone after [`Stage::Renamed`]). On an error the temporary
/// file is removed and `path` is as it was, unless only the directory sync
/// failed: `path` is then replaced but the rename may not survive a crash.
pub(super) fn write_stages(path: &Path, bytes: &[u8], last: Stage) -> Result<PathBuf> {
    let (tmp, f) = create_temporary(path)?;
    match stages(f, &tmp, path, bytes, last) {
        Ok(()) => Ok(tmp),
        Err(e) => {
            // After a successful rename (the directory sync failed) there is nothing to remove.
            let _ = std::fs::remove_file(&tmp);
            Err(Error::io(path, e))
        }
    }
}

fn stages(mut f: File, tmp: &Path, path: &Path, bytes: &[u8], last: Stage) -> std::io::Result<()> {
    if last == Stage::Created {
        return Ok(());
    }
    let half = bytes.len() / 2;
    f.write_all(&bytes[..half])?;
    if last == Stage::HalfWritten {
        return f.flush();
    }
    f.write_all(&bytes[half..])?;
    if last == Stage::Written {
        return f.flush();
    }
    f.sync_all()?;
    drop(f);
    if last == Stage::Synced {
        return Ok(());
    }
    std::fs::rename(tmp, path)?;
    sync_directory(parent_dir(path))
}
