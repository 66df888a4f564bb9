//! Download, verify and cache the official CIFAR-10 binary archive
//! (feature `download`).
//!
//! [`cifar10`] fetches [`URL`] (`cifar-10-binary.tar.gz`, about 170 MB),
//! checks its MD5 against the published digest [`MD5`], unpacks the
//! `cifar-10-batches-bin/` directory into a cache directory and returns its
//! path, ready for [`cifar10::read_train`](super::cifar10::read_train) and
//! [`cifar10::read_test`](super::cifar10::read_test). [`cifar10_from`] does
//! the same from another URL (a mirror, or a test server) with its own
//! digest.
//!
//! # Cache layout
//!
//! ```text
//! CACHE_DIR/
//!   cifar-10-batches-bin/        returned path
//!     data_batch_1.bin .. data_batch_5.bin, test_batch.bin,
//!     batches.meta.txt, readme.html
//!     .complete                  the archive's MD5, written last
//!   cifar-10-binary.tar.gz       optional: an archive you placed here yourself
//! ```
//!
//! # What is reused
//!
//! - If `cifar-10-batches-bin/.complete` holds the expected MD5, the
//!   directory is returned at once, with no network access.
//! - Otherwise, if `cifar-10-binary.tar.gz` is in the cache directory (for
//!   a machine without internet: copy the official archive there), it is
//!   checked against the expected MD5 and unpacked, and left in place.
//! - Otherwise the archive is downloaded, verified, unpacked, and the
//!   downloaded copy deleted (only the unpacked files are kept).
//!
//! A `cifar-10-batches-bin/` without the marker (e.g. unpacked by hand), or
//! with a marker for another digest, is never overwritten: that is an error
//! that says to use it directly (`--data-dir`) or to remove it.
//!
//! # Nothing half-written
//!
//! The archive is written to a temporary file in the cache directory
//! (`.cifar-10-binary.tar.gz.*.part`), hashed while it arrives, and unpacked
//! into a temporary directory (`.cifar-10-batches-bin.*.tmp`); the marker is
//! written last and the directory renamed into place in one step. On any
//! error both temporaries are removed before the error is returned. (A
//! process killed outright can leave a temporary behind: it is never read,
//! and is safe to delete.)
//!
//! # Checks
//!
//! - The download is refused above [`MAX_DOWNLOAD_BYTES`] (from the
//!   `Content-Length` header, and again while reading); connecting times
//!   out after [`CONNECT_TIMEOUT`], a stalled read after [`READ_TIMEOUT`]
//!   and the whole request after [`TOTAL_TIMEOUT`]. HTTP proxies are taken
//!   from the usual environment variables (`HTTPS_PROXY`, `NO_PROXY`, ...).
//! - A wrong MD5 is an [`Error::Download`] naming the URL, the expected and
//!   the actual digest.
//! - The archive may hold only the directory `cifar-10-batches-bin/` and,
//!   inside it, the regular files named above (each at most once; the
//!   `.bin` files a non-zero whole number of 3,073-byte records), and must
//!   hold `test_batch.bin` and at least one training batch. Anything else —
//!   `..` or absolute paths, links, devices, other names — is an
//!   [`Error::Format`] naming the entry and its byte offset in the
//!   decompressed tar stream. The unpacked size is bounded by
//!   [`MAX_UNPACKED_BYTES`].
//!
//! # Examples
//!
//! ```no_run
//! use ntk_momentum::data::{cifar10, download};
//!
//! // Downloads about 170 MB the first time; later calls reuse the cache.
//! let dir = download::cifar10("target/cifar10-cache".as_ref())?;
//! let train = cifar10::read_train(&dir)?; // 50,000 images
//! let test = cifar10::read_test(&dir)?; // 10,000 images
//! assert_eq!((train.len(), test.len()), (50_000, 10_000));
//! # Ok::<(), ntk_momentum::Error>(())
//! ```

use std::cell::Cell;
use std::collections::BTreeSet;
use std::fs::{self, File};
use std::io::{self, BufReader, Read, Write};
use std::path::{Component, Path, PathBuf};
use std::rc::Rc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use md5::{Digest, Md5};

use super::cifar10::{ARCHIVE_DIR, RECORD_LEN, TEST_FILE, TRAIN_FILES};
use crate::{Error, Result};

/// The official CIFAR-10 binary archive.
pub const URL: &str = "https://www.cs.toronto.edu/~kriz/cifar-10-binary.tar.gz";
/// The published MD5 of [`URL`] (lower-case hex).
pub const MD5: &str = "c32a1d4ab5d03f1284b67883e8d87530";
/// Name of the archive in the cache directory, if you place it there yourself.
pub const ARCHIVE_FILE: &str = "cifar-10-binary.tar.gz";
/// Marker file in the unpacked directory, written last; holds the archive's MD5.
pub const MARKER: &str = ".complete";
/// Largest download accepted: 512 MiB (the real archive is about 170 MB).
pub const MAX_DOWNLOAD_BYTES: u64 = 512 << 20;
/// Largest total size of the unpacked files: 1 GiB (the real files are about 185 MB).
pub const MAX_UNPACKED_BYTES: u64 = 1 << 30;
/// Timeout for establishing the connection.
pub const CONNECT_TIMEOUT: Duration = Duration::from_secs(30);
/// Timeout for any single read from the network (a stalled transfer).
pub const READ_TIMEOUT: Duration = Duration::from_secs(60);
/// Timeout for the whole request, body included.
pub const TOTAL_TIMEOUT: Duration = Duration::from_secs(2 * 60 * 60);

/// The regular files an archive may hold inside `cifar-10-batches-bin/`.
const ALLOWED_FILES: [&str; 8] = [
    TRAIN_FILES[0],
    TRAIN_FILES[1],
    TRAIN_FILES[2],
    TRAIN_FILES[3],
    TRAIN_FILES[4],
    TEST_FILE,
    "batches.meta.txt",
    "readme.html",
];

/// Downloads (or reuses) the official CIFAR-10 binary archive in
/// `cache_dir` and returns the path of the unpacked `cifar-10-batches-bin`
/// directory. Same as [`cifar10_from`]`(`[`URL`]`, `[`MD5`]`, cache_dir)`;
/// see the [module docs](self) for the cache layout and what is reused.
///
/// # Errors
///
/// As [`cifar10_from`].
pub fn cifar10(cache_dir: &Path) -> Result<PathBuf> {
    cifar10_from(URL, MD5, cache_dir)
}

/// Like [`cifar10`], from `url` (a mirror, or a test server) whose archive
/// must have the MD5 `md5_hex` (32 hex digits, either case).
///
/// # Errors
///
/// - [`Error::InvalidParameter`] if `md5_hex` is not 32 hex digits.
/// - [`Error::Download`] if the request fails, the server answers other than
///   200, the body is truncated, larger than [`MAX_DOWNLOAD_BYTES`] or
///   times out, or its MD5 is not `md5_hex` (the message names both
///   digests).
/// - [`Error::Format`] if the archive is not a gzip-compressed tar of
///   `cifar-10-batches-bin/` with only the expected regular files.
/// - [`Error::Io`] for file-system errors in `cache_dir`, for a
///   `cifar-10-batches-bin/` already there that was not written by this
///   function for this digest, and for a `cifar-10-binary.tar.gz` in
///   `cache_dir` with another digest.
///
/// On every error, the temporary files and directories are removed.
pub fn cifar10_from(url: &str, md5_hex: &str, cache_dir: &Path) -> Result<PathBuf> {
    let expected = parse_md5(md5_hex)?;
    fs::create_dir_all(cache_dir).map_err(|e| Error::io(cache_dir, e))?;
    let final_dir = cache_dir.join(ARCHIVE_DIR);
    if cached(&final_dir, &expected)? {
        return Ok(final_dir);
    }

    let local = cache_dir.join(ARCHIVE_FILE);
    let unpacked = match fs::metadata(&local) {
        Ok(meta) if meta.is_file() => {
            let actual = md5_of_file(&local)?;
            if actual != expected {
                return Err(Error::io(
                    &local,
                    io::Error::new(
                        io::ErrorKind::InvalidData,
                        format!(
                            "MD5 checksum mismatch: expected {expected}, got {actual}; \
                             replace it with the official archive or remove it to download again"
                        ),
                    ),
                ));
            }
            unpack(&local, &local, cache_dir)?
        }
        Ok(_) => {
            return Err(Error::io(
                &local,
                io::Error::new(io::ErrorKind::InvalidInput, "exists but is not a regular file"),
            ))
        }
        Err(e) if e.kind() == io::ErrorKind::NotFound => {
            let part = TempPath::create_file(cache_dir, &format!(".{ARCHIVE_FILE}"), "part")?;
            download(url, &part.path, &expected)?;
            let dir = unpack(&part.path, Path::new(url), cache_dir)?;
            drop(part); // the downloaded archive is not kept
            dir
        }
        Err(e) => return Err(Error::io(&local, e)),
    };
    install(unpacked, &final_dir, &expected)?;
    Ok(final_dir)
}

/// Checks a 32-digit hex MD5 and returns it in lower case.
fn parse_md5(md5_hex: &str) -> Result<String> {
    if md5_hex.len() == 32 && md5_hex.bytes().all(|b| b.is_ascii_hexdigit()) {
        Ok(md5_hex.to_ascii_lowercase())
    } else {
        Err(Error::invalid(
            "md5_hex",
            format!("{md5_hex:?}"),
            "32 hexadecimal digits",
        ))
    }
}

/// Whether `dir` is a complete unpacked archive with digest `expected`;
/// an error if `dir` exists but is not (so it is never overwritten).
fn cached(dir: &Path, expected: &str) -> Result<bool> {
    match fs::metadata(dir) {
        Ok(meta) if meta.is_dir() => {}
        Ok(_) => {
            return Err(Error::io(
                dir,
                io::Error::new(io::ErrorKind::AlreadyExists, "exists but is not a directory; remove it"),
            ))
        }
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(false),
        Err(e) => return Err(Error::io(dir, e)),
    }
    let marker = dir.join(MARKER);
    let mut found = String::new();
    match File::open(&marker) {
        // A marker is 33 bytes; read a little more to see a bad one whole.
        Ok(file) => {
            file.take(256)
                .read_to_string(&mut found)
                .map_err(|e| Error::io(&marker, e))?;
        }
        Err(e) if e.kind() == io::ErrorKind::NotFound => {
            return Err(Error::io(
                dir,
                io::Error::new(
                    io::ErrorKind::AlreadyExists,
                    format!(
                        "exists without the marker {MARKER} (not unpacked by this downloader, or \
                         incomplete): read it directly (e.g. --data-dir), or remove it to download again"
                    ),
                ),
            ))
        }
        Err(e) => return Err(Error::io(&marker, e)),
    }
    let found = found.trim();
    if found == expected {
        Ok(true)
    } else {
        Err(Error::io(
            dir,
            io::Error::new(
                io::ErrorKind::AlreadyExists,
                format!(
                    "holds the archive with MD5 {found:?}, not {expected}: remove it to replace it, \
                     or use another cache directory"
                ),
            ),
        ))
    }
}

/// A temporary file or directory in the cache directory, removed on drop
/// unless [`TempPath::keep`] was called.
struct TempPath {
    path: PathBuf,
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
    fn create_file(dir: &Path, prefix: &str, suffix: &str) -> Result<TempPath> {
        let path = Self::unique_name(dir, prefix, suffix);
        File::create_new(&path).map_err(|e| Error::io(&path, e))?;
        Ok(TempPath {
            path,
            is_dir: false,
            keep: false,
        })
    }

    /// Creates a new, empty temporary directory (never an existing one).
    fn create_dir(dir: &Path, prefix: &str, suffix: &str) -> Result<TempPath> {
        let path = Self::unique_name(dir, prefix, suffix);
        fs::create_dir(&path).map_err(|e| Error::io(&path, e))?;
        Ok(TempPath {
            path,
            is_dir: true,
            keep: false,
        })
    }

    /// Disarms the removal (after the path was renamed into place).
    fn keep(mut self) {
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

fn download_error(url: &str, message: impl Into<String>) -> Error {
    Error::Download {
        url: url.to_owned(),
        message: message.into(),
    }
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// Downloads `url` into the existing file `dest`, bounded in size and time,
/// and checks its MD5 against `expected`.
fn download(url: &str, dest: &Path, expected: &str) -> Result<()> {
    let agent: ureq::Agent = ureq::Agent::config_builder()
        .timeout_connect(Some(CONNECT_TIMEOUT))
        .timeout_per_read(Some(READ_TIMEOUT))
        .timeout_global(Some(TOTAL_TIMEOUT))
        .http_status_as_error(false)
        .build()
        .into();
    let response = agent
        .get(url)
        .call()
        .map_err(|e| download_error(url, format!("request failed: {e}")))?;
    let status = response.status();
    if status != ureq::http::StatusCode::OK {
        return Err(download_error(
            url,
            format!("the server answered HTTP {status}, expected 200 OK"),
        ));
    }
    let length = response
        .headers()
        .get(ureq::http::header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.trim().parse::<u64>().ok());
    if let Some(length) = length.filter(|&n| n > MAX_DOWNLOAD_BYTES) {
        return Err(download_error(
            url,
            format!("the archive is {length} bytes, above the limit of {MAX_DOWNLOAD_BYTES}"),
        ));
    }

    let mut body = response
        .into_body()
        .into_with_config()
        .limit(MAX_DOWNLOAD_BYTES)
        .reader();
    let mut file = fs::OpenOptions::new()
        .write(true)
        .truncate(true)
        .open(dest)
        .map_err(|e| Error::io(dest, e))?;
    let mut hasher = Md5::new();
    let mut buf = vec![0u8; 1 << 16];
    let mut received = 0u64;
    loop {
        let n = match body.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e) => {
                return Err(download_error(
                    url,
                    format!("reading the response failed after {received} bytes: {e}"),
                ))
            }
        };
        hasher.update(&buf[..n]);
        file.write_all(&buf[..n]).map_err(|e| Error::io(dest, e))?;
        received += n as u64;
    }
    if let Some(length) = length.filter(|&n| n != received) {
        return Err(download_error(
            url,
            format!("received {received} bytes, but the server announced {length}"),
        ));
    }
    file.sync_all().map_err(|e| Error::io(dest, e))?;

    let actual = hex(&hasher.finalize());
    if actual != expected {
        return Err(download_error(
            url,
            format!("MD5 checksum mismatch: expected {expected}, got {actual} ({received} bytes received)"),
        ));
    }
    Ok(())
}

/// MD5 of a local file, lower-case hex.
fn md5_of_file(path: &Path) -> Result<String> {
    let mut file = File::open(path).map_err(|e| Error::io(path, e))?;
    let mut hasher = Md5::new();
    let mut buf = vec![0u8; 1 << 16];
    loop {
        match file.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => hasher.update(&buf[..n]),
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(Error::io(path, e)),
        }
    }
    Ok(hex(&hasher.finalize()))
}

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
fn unpack(archive: &Path, name: &Path, cache_dir: &Path) -> Result<TempPath> {
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

/// Writes the marker last, then renames the unpacked directory into place.
/// If another process finished first with the same digest, its directory is
/// kept and ours removed.
fn install(unpacked: TempPath, final_dir: &Path, expected: &str) -> Result<()> {
    let marker = unpacked.path.join(MARKER);
    let mut file = File::create_new(&marker).map_err(|e| Error::io(&marker, e))?;
    file.write_all(format!("{expected}\n").as_bytes())
        .and_then(|()| file.sync_all())
        .map_err(|e| Error::io(&marker, e))?;
    drop(file);
    match fs::rename(&unpacked.path, final_dir) {
        Ok(()) => {
            unpacked.keep();
            Ok(())
        }
        Err(e) => match cached(final_dir, expected) {
            Ok(true) => Ok(()),
            _ => Err(Error::io(final_dir, e)),
        },
    }
}
