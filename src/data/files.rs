//! File helpers shared by the readers: a directory check and a whole-file
//! read, each an [`Error::Io`] naming the path on failure.

use std::path::Path;

use crate::{Error, Result};

/// `Ok` if `dir` exists and is a directory, else an [`Error::Io`] naming it.
pub(super) fn check_dir(dir: &Path) -> Result<()> {
    let meta = std::fs::metadata(dir).map_err(|e| Error::io(dir, e))?;
    if !meta.is_dir() {
        return Err(Error::io(
            dir,
            std::io::Error::new(std::io::ErrorKind::NotADirectory, "not a directory"),
        ));
    }
    Ok(())
}

/// Reads a whole regular file; a directory is an [`Error::Io`] naming it.
pub(super) fn read_regular_file(path: &Path) -> Result<Vec<u8>> {
    let meta = std::fs::metadata(path).map_err(|e| Error::io(path, e))?;
    if meta.is_dir() {
        return Err(Error::io(
            path,
            std::io::Error::new(std::io::ErrorKind::IsADirectory, "is a directory, expected a file"),
        ));
    }
    // The bytes, and the arrays decoded from them (at most as large).
    crate::memory::reserve(
        || format!("reading {} ({} bytes) and decoding it", path.display(), meta.len()),
        &[meta.len().checked_mul(2)],
    )?;
    std::fs::read(path).map_err(|e| Error::io(path, e))
}
