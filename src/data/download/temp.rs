//! Temporary files and directories in the cache, removed unless kept.

use std::fs::{self, File};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};

use crate::{Error, Result};

/// A temporary file or directory in the cache directory, removed on drop
/// unless [`TempPath::keep`] was called.
pub(super) struct TempPath {
    pub(super) path: PathBuf,
    is_dir: bool,
    keep: bool,
}

impl TempPath {
    /// A unique name `{prefix}.{pid}.{counter}.{nanos}.{suffix}` in `dir`.
    fn unique_name(dir: &Path, prefix: &str, suffix: &str) -> PathBuf {
        static COUNTER: AtomicU64 = AtomicU64::new(0);
        let n = COUNTER.fetch_add(1, Ordering::Relaxed);
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.subsec_nanos());
        dir.join(format!("{prefix}.{}.{n}.{nanos}.{suffix}", std::process::id()))
    }

    /// Creates a new, empty temporary file (never an existing one).
    pub(super) fn create_file(dir: &Path, prefix: &str, suffix: &str) -> Result<TempPath> {
        let path = Self::unique_name(dir, prefix, suffix);
        File::create_new(&path).map_err(|e| Error::io(&path, e))?;
        Ok(TempPath {
            path,
            is_dir: false,
            keep: false,
        })
    }

    /// Creates a new, empty temporary directory (never an existing one).
    pub(super) fn create_dir(dir: &Path, prefix: &str, suffix: &str) -> Result<TempPath> {
        let path = Self::unique_name(dir, prefix, suffix);
        fs::create_dir(&path).map_err(|e| Error::io(&path, e))?;
        Ok(TempPath {
            path,
            is_dir: true,
            keep: false,
        })
    }

    /// Disarms the removal (after the path was renamed into place).
    pub(super) fn keep(mut self) {
        self.keep = true;
    }
}

impl Drop for TempPath {
    fn drop(&mut self) {
        if !self.keep {
            // Best effort: the error being returned matters more.
            let _ = if self.is_dir {
                fs::remove_dir_all(&self.path)
            } else {
                fs::remove_file(&self.path)
            };
        }
    }
}
