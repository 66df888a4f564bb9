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

use std::fs::{self, File};
use std::io::{self, Read, Write};
use std::path::{Path, PathBuf};
use std::time::Duration;

mod fetch;
mod temp;
mod unpack;

use self::fetch::{download, md5_of_file};
use self::temp::TempPath;
use self::unpack::unpack;
use super::cifar10::{ARCHIVE_DIR, TEST_FILE, TRAIN_FILES};
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
