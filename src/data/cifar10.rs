//! CIFAR-10 in its official binary layout.
//!
//! A file is a sequence of 3,073-byte records: one label byte (`0..=9`),
//! then 3,072 pixel bytes — 1,024 red, 1,024 green, 1,024 blue, each plane
//! 32 x 32 row-major. The official download (`cifar-10-binary.tar.gz`)
//! unpacks to a directory `cifar-10-batches-bin/` holding
//! `data_batch_1.bin` .. `data_batch_5.bin` (10,000 records each) and
//! `test_batch.bin`; this module reads any whole number of records, so
//! truncated copies of those files read as well.
//!
//! Errors name the file and the byte offset: a length that is not a
//! multiple of 3,073 points at the partial record, a label above 9 at its
//! record.
//!
//! # Examples
//!
//! ```
//! use ntk_momentum::data::cifar10;
//!
//! // One record: label 8 (ship), then 3072 pixel bytes.
//! let mut record = vec![8u8];
//! record.extend(std::iter::repeat(128u8).take(3072));
//! let images = cifar10::from_bytes(&record, "in-memory.bin")?;
//! assert_eq!((images.len(), images.rows(), images.cols(), images.channels()), (1, 32, 32, 3));
//! assert_eq!(images.labels(), &[8]);
//!
//! // A truncated record is an error naming the offset of the partial record.
//! let err = cifar10::from_bytes(&record[..100], "cut.bin").unwrap_err();
//! assert!(err.to_string().contains("cut.bin at byte offset 0"));
//! # Ok::<(), ntk_momentum::Error>(())
//! ```

use std::path::{Path, PathBuf};

use super::files::{check_dir, read_regular_file};
use super::images::Images;
use crate::{Error, Result};

/// Image side length.
pub const SIDE: usize = 32;
/// Pixel bytes per record: 3 planes of 32 x 32.
pub const PIXELS_PER_RECORD: usize = 3 * SIDE * SIDE;
/// Bytes per record: one label byte plus [`PIXELS_PER_RECORD`].
pub const RECORD_LEN: usize = 1 + PIXELS_PER_RECORD;
/// Class names, indexed by label (as in the official `batches.meta.txt`).
pub const CLASS_NAMES: [&str; 10] = [
    "airplane",
    "automobile",
    "bird",
    "cat",
    "deer",
    "dog",
    "frog",
    "horse",
    "ship",
    "truck",
];
/// File names of the training batches, in order.
pub const TRAIN_FILES: [&str; 5] = [
    "data_batch_1.bin",
    "data_batch_2.bin",
    "data_batch_3.bin",
    "data_batch_4.bin",
    "data_batch_5.bin",
];
/// File name of the test batch.
pub const TEST_FILE: &str = "test_batch.bin";
/// Directory the official archive unpacks to.
pub const ARCHIVE_DIR: &str = "cifar-10-batches-bin";

/// Parses CIFAR-10 records from memory; `name` is the path used in errors.
///
/// # Errors
///
/// [`Error::Format`] for an empty input, a length that is not a whole
/// number of [`RECORD_LEN`]-byte records (at the offset of the partial
/// record) or a label above 9 (at the offset of its record).
pub fn from_bytes(bytes: &[u8], name: impl AsRef<Path>) -> Result<Images> {
    let name = name.as_ref();
    if bytes.is_empty() {
        return Err(Error::format(
            name,
            0,
            format!("empty file: expected one or more {RECORD_LEN}-byte CIFAR-10 records (1 label byte + {PIXELS_PER_RECORD} pixel bytes)"),
        ));
    }
    let records = bytes.len() / RECORD_LEN;
    let partial = bytes.len() % RECORD_LEN;
    if partial != 0 {
        return Err(Error::format(
            name,
            (records * RECORD_LEN) as u64,
            format!(
                "truncated or oversized file: record {records} has only {partial} of {RECORD_LEN} bytes \
                 (file length {} is not a multiple of {RECORD_LEN})",
                bytes.len()
            ),
        ));
    }
    let mut labels = Vec::with_capacity(records);
    let mut pixels = Vec::with_capacity(records * PIXELS_PER_RECORD);
    for (r, record) in bytes.chunks_exact(RECORD_LEN).enumerate() {
        let label = record[0];
        if label > 9 {
            return Err(Error::format(
                name,
                (r * RECORD_LEN) as u64,
                format!("label {label} of record {r} is out of range: expected 0..=9"),
            ));
        }
        labels.push(label);
        pixels.extend_from_slice(&record[1..]);
    }
    Images::new(SIDE, SIDE, 3, pixels, labels)
}

/// Reads one file of CIFAR-10 records (e.g. `test_batch.bin`).
///
/// # Errors
///
/// [`Error::Io`] naming the path if it cannot be read (missing, a
/// directory, ...); otherwise as [`from_bytes`].
pub fn read_file(path: impl AsRef<Path>) -> Result<Images> {
    let path = path.as_ref();
    let bytes = read_regular_file(path)?;
    from_bytes(&bytes, path)
}

/// Reads the training split from a directory in the official layout: the
/// files `data_batch_1.bin` .. `data_batch_5.bin` that exist, in that order
/// (at least one). `dir` may also be the directory that contains the
/// unpacked `cifar-10-batches-bin/`.
///
/// # Errors
///
/// [`Error::Io`] if `dir` is missing or not a directory, or holds none of
/// the five batches; otherwise as [`read_file`] for each batch.
pub fn read_train(dir: impl AsRef<Path>) -> Result<Images> {
    let dir = resolve_dir(dir.as_ref())?;
    let mut parts = Vec::new();
    for file in TRAIN_FILES {
        let path = dir.join(file);
        match std::fs::metadata(&path) {
            Ok(_) => parts.push(read_file(&path)?),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => return Err(Error::io(path, e)),
        }
    }
    if parts.is_empty() {
        return Err(Error::io(
            dir.join(TRAIN_FILES[0]),
            std::io::Error::new(
                std::io::ErrorKind::NotFound,
                format!(
                    "no CIFAR-10 training batch in {}: expected data_batch_1.bin .. data_batch_5.bin \
                     (the official binary layout)",
                    dir.display()
                ),
            ),
        ));
    }
    Images::concat(parts)
}

/// Reads the test split, `test_batch.bin`, from a directory in the official
/// layout (or the directory containing `cifar-10-batches-bin/`).
///
/// # Errors
///
/// [`Error::Io`] if `dir` or `test_batch.bin` is missing; otherwise as
/// [`read_file`].
pub fn read_test(dir: impl AsRef<Path>) -> Result<Images> {
    let dir = resolve_dir(dir.as_ref())?;
    read_file(dir.join(TEST_FILE))
}

/// Encodes images in the official record layout (the inverse of
/// [`from_bytes`]), e.g. to write test fixtures or subsets.
///
/// # Errors
///
/// [`Error::ShapeMismatch`] unless the images are 32 x 32 with 3 channels.
pub fn to_bytes(images: &Images) -> Result<Vec<u8>> {
    if (images.rows(), images.cols(), images.channels()) != (SIDE, SIDE, 3) {
        return Err(Error::shape(
            "CIFAR-10 images",
            "32 x 32 x 3",
            format!("{} x {} x {}", images.rows(), images.cols(), images.channels()),
        ));
    }
    let mut out = Vec::with_capacity(images.len() * RECORD_LEN);
    for (label, image) in images
        .labels()
        .iter()
        .zip(images.pixels().chunks_exact(PIXELS_PER_RECORD))
    {
        out.push(*label);
        out.extend_from_slice(image);
    }
    Ok(out)
}

/// Checks that `dir` is a directory; descends into `cifar-10-batches-bin/`
/// when `dir` holds no batch itself but holds that directory.
fn resolve_dir(dir: &Path) -> Result<PathBuf> {
    check_dir(dir)?;
    let has_batch = TRAIN_FILES
        .iter()
        .chain(std::iter::once(&TEST_FILE))
        .any(|f| dir.join(f).exists());
    let nested = dir.join(ARCHIVE_DIR);
    if !has_batch && nested.is_dir() {
        return Ok(nested);
    }
    Ok(dir.to_path_buf())
}
