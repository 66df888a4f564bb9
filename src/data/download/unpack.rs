//! Unpacking the archive into a temporary directory: only the expected
//! files, bounded in size, with their layout checked.

use std::cell::Cell;
use std::collections::BTreeSet;
use std::fs::File;
use std::io::{self, BufReader, Read};
use std::path::{Component, Path};
use std::rc::Rc;

use super::temp::TempPath;
use super::{ALLOWED_FILES, MAX_UNPACKED_BYTES};
use crate::data::cifar10::{ARCHIVE_DIR, RECORD_LEN, TEST_FILE, TRAIN_FILES};
use crate::{Error, Result};

/// Counts the bytes read through it, for offsets in error messages.
struct Counting<R> {
    inner: R,
    count: Rc<Cell<u64>>,
}

impl<R: Read> Read for Counting<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = self.inner.read(buf)?;
        self.count.set(self.count.get() + n as u64);
        Ok(n)
    }
}

/// Unpacks the verified archive at `archive` into a new temporary directory
/// in `cache_dir`; `name` is the path named in errors (the URL for a
/// download). Returns the directory, which is removed if dropped.
pub(super) fn unpack(archive: &Path, name: &Path, cache_dir: &Path) -> Result<TempPath> {
    let out = TempPath::create_dir(cache_dir, &format!(".{ARCHIVE_DIR}"), "tmp")?;
    let file = File::open(archive).map_err(|e| Error::io(archive, e))?;
    let count = Rc::new(Cell::new(0u64));
    let stream = Counting {
        inner: flate2::read::GzDecoder::new(BufReader::new(file)),
        count: Rc::clone(&count),
    };
    let mut tar = tar::Archive::new(stream);
    let corrupt = |e: io::Error| {
        Error::format(
            name,
            count.get(),
            format!("corrupt gzip or tar stream (offsets count decompressed bytes): {e}"),
        )
    };

    let mut seen = BTreeSet::new();
    let mut total = 0u64;
    for entry in tar.entries().map_err(corrupt)? {
        let mut entry = entry.map_err(corrupt)?;
        let offset = entry.raw_header_position();
        let shown = String::from_utf8_lossy(&entry.path_bytes()).into_owned();
        let reject = |message: String| Error::format(name, offset, format!("tar entry {shown:?}: {message}"));
        let path = entry.path().map_err(|e| reject(format!("unreadable path: {e}")))?;
        let mut parts = Vec::new();
        for component in path.components() {
            match component {
                Component::Normal(part) => parts.push(part.to_owned()),
                Component::CurDir => {}
                Component::ParentDir | Component::RootDir | Component::Prefix(_) => {
                    return Err(reject(
                        "path traversal ('..' or an absolute path) is not allowed".to_owned(),
                    ))
                }
            }
        }
        let kind = entry.header().entry_type();
        let file_name = match parts.as_slice() {
            [dir] if dir == ARCHIVE_DIR && kind.is_dir() => continue,
            [dir, file] if dir == ARCHIVE_DIR && kind.is_file() => file
                .to_str()
                .and_then(|f| ALLOWED_FILES.iter().copied().find(|allowed| *allowed == f)),
            _ => None,
        };
        let Some(file_name) = file_name else {
            return Err(reject(format!(
                "unexpected {kind:?} entry: the archive may hold only the directory {ARCHIVE_DIR}/ and the \
                 regular files {} in it",
                ALLOWED_FILES.join(", ")
            )));
        };
        if !seen.insert(file_name) {
            return Err(reject("appears twice".to_owned()));
        }
        let size = entry.size();
        if file_name.ends_with(".bin") && (size == 0 || size % RECORD_LEN as u64 != 0) {
            return Err(reject(format!(
                "{size} bytes is not a non-zero whole number of {RECORD_LEN}-byte CIFAR-10 records"
            )));
        }
        total = total.saturating_add(size);
        if total > MAX_UNPACKED_BYTES {
            return Err(reject(format!(
                "the unpacked files would exceed the limit of {MAX_UNPACKED_BYTES} bytes"
            )));
        }

        let target = out.path.join(file_name);
        let mut dest = File::create_new(&target).map_err(|e| Error::io(&target, e))?;
        let copied = io::copy(&mut (&mut entry).take(size), &mut dest).map_err(|e| match e.kind() {
            io::ErrorKind::InvalidData | io::ErrorKind::InvalidInput | io::ErrorKind::UnexpectedEof => {
                Error::format(name, offset, format!("tar entry {shown:?}: corrupt data: {e}"))
            }
            _ => Error::io(&target, e),
        })?;
        if copied != size {
            return Err(Error::format(
                name,
                offset,
                format!("tar entry {shown:?}: truncated: {copied} of {size} bytes"),
            ));
        }
        dest.sync_all().map_err(|e| Error::io(&target, e))?;
    }

    // Read the rest (tar padding) so that the gzip trailer's CRC is checked;
    // a bounded amount, so that no trailing gzip bomb is inflated.
    let mut rest = tar.into_inner().take(MAX_UNPACKED_BYTES);
    io::copy(&mut rest, &mut io::sink()).map_err(|e| {
        Error::format(
            name,
            count.get(),
            format!("corrupt gzip stream after the tar archive: {e}"),
        )
    })?;
    if rest.limit() == 0 {
        return Err(Error::format(
            name,
            count.get(),
            format!("more than {MAX_UNPACKED_BYTES} bytes of padding after the tar archive"),
        ));
    }

    let missing = if !seen.contains(TEST_FILE) {
        Some(TEST_FILE)
    } else if !TRAIN_FILES.iter().any(|f| seen.contains(f)) {
        Some("data_batch_1.bin .. data_batch_5.bin")
    } else {
        None
    };
    if let Some(missing) = missing {
        return Err(Error::format(
            name,
            count.get(),
            format!("the archive has no {ARCHIVE_DIR}/{missing}: not the CIFAR-10 binary archive"),
        ));
    }
    Ok(out)
}
