//! IDX files: MNIST and Fashion-MNIST, raw or gzip-compressed.
//!
//! An IDX file is a 4-byte big-endian magic `0x0000TTNN` (`TT = 0x08`:
//! unsigned bytes; `NN`: number of dimensions), then `NN` big-endian `u32`
//! dimensions, then the data. This module reads the two kinds the datasets
//! use:
//!
//! - images, `*-images-idx3-ubyte`: magic `0x00000803`, dimensions
//!   count, rows, cols, then `count * rows * cols` pixel bytes;
//! - labels, `*-labels-idx1-ubyte`: magic `0x00000801`, dimension count,
//!   then `count` label bytes, each in `0..=9`.
//!
//! A file whose first two bytes are `1f 8b` is gzip (whatever its name) and
//! is decompressed with a bound: never more than the size its header implies
//! plus one byte, so a compression bomb cannot exhaust memory. The data after
//! the header must have exactly the implied length; header-implied sizes
//! above [`MAX_DATA_BYTES`] are rejected before anything is allocated.
//!
//! Errors name the file and a byte offset. For gzip files the offset counts
//! bytes of the *decompressed* stream, and the message says so.
//!
//! # Examples
//!
//! ```
//! use ntk_momentum::data::idx;
//!
//! // Two 2 x 2 images and their labels, in memory.
//! let mut images = vec![0, 0, 8, 3, 0, 0, 0, 2, 0, 0, 0, 2, 0, 0, 0, 2];
//! images.extend([0, 64, 128, 255, 1, 2, 3, 4]);
//! let labels = vec![0, 0, 8, 1, 0, 0, 0, 2, 7, 1];
//! let set = idx::from_bytes(&images, "imgs", &labels, "lbls")?;
//! assert_eq!((set.len(), set.rows(), set.cols(), set.channels()), (2, 2, 2, 1));
//! assert_eq!(set.labels(), &[7, 1]);
//!
//! // One byte missing: the error names the file and where it ends.
//! let err = idx::from_bytes(&images[..23], "imgs", &labels, "lbls").unwrap_err();
//! assert!(err.to_string().contains("imgs at byte offset 23"), "{err}");
//! # Ok::<(), ntk_momentum::Error>(())
//! ```

use std::path::{Path, PathBuf};

mod format;

use self::format::{parse, Kind};
use super::files::{check_dir, read_regular_file};
use super::images::{Images, NUM_CLASSES};
use crate::{Error, Result};

/// Magic number of an unsigned-byte, 3-dimensional IDX file (images).
pub const IMAGES_MAGIC: u32 = 0x0000_0803;
/// Magic number of an unsigned-byte, 1-dimensional IDX file (labels).
pub const LABELS_MAGIC: u32 = 0x0000_0801;
/// Largest data size (bytes after the header) a header may declare: 2 GiB,
/// four times the largest public IDX dataset (EMNIST ByClass, 547 MB).
pub const MAX_DATA_BYTES: u64 = 1 << 31;
/// Fashion-MNIST class names, indexed by label.
pub const FASHION_MNIST_CLASS_NAMES: [&str; 10] = [
    "T-shirt/top",
    "Trouser",
    "Pullover",
    "Dress",
    "Coat",
    "Sandal",
    "Shirt",
    "Sneaker",
    "Bag",
    "Ankle boot",
];
/// MNIST class names, indexed by label.
pub const MNIST_CLASS_NAMES: [&str; 10] = ["0", "1", "2", "3", "4", "5", "6", "7", "8", "9"];

/// Pixels of an IDX images file, before they are paired with labels.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct IdxImages {
    /// Number of images.
    pub count: usize,
    /// Image height.
    pub rows: usize,
    /// Image width.
    pub cols: usize,
    /// `count * rows * cols` bytes, image-major, each image row-major.
    pub pixels: Vec<u8>,
}

/// Parses an images file (`*-images-idx3-ubyte`, raw or gzip) from memory;
/// `name` is the path used in errors.
///
/// # Errors
///
/// [`Error::Format`] for a bad magic, a truncated header, a zero row or
/// column count, a declared size above [`MAX_DATA_BYTES`], data shorter or
/// longer than declared, or a corrupt gzip stream.
pub fn images_from_bytes(bytes: &[u8], name: impl AsRef<Path>) -> Result<IdxImages> {
    let name = name.as_ref();
    let parsed = parse(bytes, name, Kind::Images)?;
    let [count, rows, cols] = [parsed.dims[0], parsed.dims[1], parsed.dims[2]];
    Ok(IdxImages {
        count,
        rows,
        cols,
        pixels: parsed.data,
    })
}

/// Parses a labels file (`*-labels-idx1-ubyte`, raw or gzip) from memory;
/// `name` is the path used in errors.
///
/// # Errors
///
/// As [`images_from_bytes`], and a label above 9 (at its offset).
pub fn labels_from_bytes(bytes: &[u8], name: impl AsRef<Path>) -> Result<Vec<u8>> {
    let name = name.as_ref();
    let parsed = parse(bytes, name, Kind::Labels)?;
    if let Some(i) = parsed.data.iter().position(|&l| usize::from(l) >= NUM_CLASSES) {
        return Err(Error::format(
            name,
            (parsed.header_len + i) as u64,
            format!(
                "label {} of sample {i} is out of range: expected 0..=9{}",
                parsed.data[i],
                parsed.gzip_note()
            ),
        ));
    }
    Ok(parsed.data)
}

/// Parses and pairs an images file and a labels file from memory.
///
/// # Errors
///
/// As [`images_from_bytes`] and [`labels_from_bytes`], and an
/// [`Error::Format`] on the labels file if the two counts disagree.
pub fn from_bytes(
    images: &[u8],
    images_name: impl AsRef<Path>,
    labels: &[u8],
    labels_name: impl AsRef<Path>,
) -> Result<Images> {
    let images_name = images_name.as_ref();
    let images = images_from_bytes(images, images_name)?;
    let labels = labels_from_bytes(labels, labels_name.as_ref())?;
    pair(images, images_name, labels, labels_name.as_ref())
}

/// Reads an images file (`*-images-idx3-ubyte`, raw or gzip).
///
/// # Errors
///
/// [`Error::Io`] naming the path if it cannot be read; otherwise as
/// [`images_from_bytes`].
pub fn read_images(path: impl AsRef<Path>) -> Result<IdxImages> {
    let path = path.as_ref();
    images_from_bytes(&read_regular_file(path)?, path)
}

/// Reads a labels file (`*-labels-idx1-ubyte`, raw or gzip).
///
/// # Errors
///
/// [`Error::Io`] naming the path if it cannot be read; otherwise as
/// [`labels_from_bytes`].
pub fn read_labels(path: impl AsRef<Path>) -> Result<Vec<u8>> {
    let path = path.as_ref();
    labels_from_bytes(&read_regular_file(path)?, path)
}

/// Reads and pairs an images file and a labels file.
///
/// # Errors
///
/// As [`read_images`] and [`read_labels`], and an [`Error::Format`] on the
/// labels file if the two counts disagree.
pub fn read(images: impl AsRef<Path>, labels: impl AsRef<Path>) -> Result<Images> {
    let images_path = images.as_ref();
    let labels_path = labels.as_ref();
    pair(
        read_images(images_path)?,
        images_path,
        read_labels(labels_path)?,
        labels_path,
    )
}

/// Reads the training split from a directory in the official layout:
/// `train-images-idx3-ubyte` and `train-labels-idx1-ubyte`, each raw or with
/// `.gz` (also accepted: the `train-images.idx3-ubyte` spelling).
///
/// # Errors
///
/// [`Error::Io`] if the directory or either file is missing; otherwise as
/// [`read`].
pub fn read_train(dir: impl AsRef<Path>) -> Result<Images> {
    read_split(dir.as_ref(), "train")
}

/// Reads the test split from a directory in the official layout:
/// `t10k-images-idx3-ubyte` and `t10k-labels-idx1-ubyte`, raw or `.gz`.
///
/// # Errors
///
/// As [`read_train`].
pub fn read_test(dir: impl AsRef<Path>) -> Result<Images> {
    read_split(dir.as_ref(), "t10k")
}

/// Encodes single-channel images as an uncompressed IDX pair
/// `(images file, labels file)`: the inverse of [`from_bytes`].
///
/// # Errors
///
/// [`Error::ShapeMismatch`] unless the images have one channel;
/// [`Error::InvalidParameter`] if a dimension does not fit the format's `u32`.
pub fn to_bytes(images: &Images) -> Result<(Vec<u8>, Vec<u8>)> {
    if images.channels() != 1 {
        return Err(Error::shape(
            "IDX images",
            "1 channel",
            format!("{} channels", images.channels()),
        ));
    }
    let dim = |v: usize| {
        u32::try_from(v).map_err(|_| {
            Error::invalid(
                "IDX dimension",
                v,
                "at most 4294967295 (the format stores dimensions as u32)",
            )
        })
    };
    let (count, rows, cols) = (dim(images.len())?, dim(images.rows())?, dim(images.cols())?);
    let mut img = Vec::with_capacity(16 + images.pixels().len());
    for v in [IMAGES_MAGIC, count, rows, cols] {
        img.extend_from_slice(&v.to_be_bytes());
    }
    img.extend_from_slice(images.pixels());
    let mut lbl = Vec::with_capacity(8 + images.len());
    for v in [LABELS_MAGIC, count] {
        lbl.extend_from_slice(&v.to_be_bytes());
    }
    lbl.extend_from_slice(images.labels());
    Ok((img, lbl))
}

fn pair(images: IdxImages, images_name: &Path, labels: Vec<u8>, labels_name: &Path) -> Result<Images> {
    if images.count != labels.len() {
        return Err(Error::format(
            labels_name,
            4,
            format!(
                "{} labels but {} images in {}: the counts must agree",
                labels.len(),
                images.count,
                images_name.display()
            ),
        ));
    }
    Images::new(images.rows, images.cols, 1, images.pixels, labels)
}

fn read_split(dir: &Path, prefix: &str) -> Result<Images> {
    check_dir(dir)?;
    let images = find(dir, prefix, "images", "idx3")?;
    let labels = find(dir, prefix, "labels", "idx1")?;
    read(images, labels)
}

fn find(dir: &Path, prefix: &str, what: &str, idx: &str) -> Result<PathBuf> {
    let names = [
        format!("{prefix}-{what}-{idx}-ubyte"),
        format!("{prefix}-{what}-{idx}-ubyte.gz"),
        format!("{prefix}-{what}.{idx}-ubyte"),
        format!("{prefix}-{what}.{idx}-ubyte.gz"),
    ];
    for name in &names {
        let path = dir.join(name);
        if path.exists() {
            return Ok(path);
        }
    }
    Err(Error::io(
        dir.join(&names[1]),
        std::io::Error::new(
            std::io::ErrorKind::NotFound,
            format!(
                "no {} in {}: expected {} or {}",
                names[0],
                dir.display(),
                names[0],
                names[1]
            ),
        ),
    ))
}
