//! The in-memory image set every reader returns.

use crate::{Error, Result};

/// Number of classes every supported dataset has (labels are `0..=9`).
pub const NUM_CLASSES: usize = 10;

/// A labelled set of 8-bit images, as read from a file.
///
/// Pixels are stored sample-major: sample `i` occupies
/// `pixels()[i * sample_len() .. (i + 1) * sample_len()]`, flattened in the
/// file's own order. For CIFAR-10 that is channel-planar (1024 red bytes,
/// then 1024 green, then 1024 blue, each plane 32 x 32 row-major); for IDX
/// files (MNIST, Fashion-MNIST) it is one 28 x 28 row-major plane.
///
/// Invariants, checked by [`Images::new`]: `rows`, `cols`, `channels >= 1`,
/// `pixels.len() == labels.len() * rows * cols * channels`, every label in
/// `0..=9`.
///
/// # Examples
///
/// ```
/// use ntk_momentum::data::Images;
///
/// // Two 1 x 2 grey images with labels 3 and 7.
/// let images = Images::new(1, 2, 1, vec![0, 255, 10, 20], vec![3, 7])?;
/// assert_eq!(images.len(), 2);
/// assert_eq!(images.image(1), Some(&[10u8, 20][..]));
/// assert_eq!(images.label(0), Some(3));
/// # Ok::<(), ntk_momentum::Error>(())
/// ```
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Images {
    rows: usize,
    cols: usize,
    channels: usize,
    pixels: Vec<u8>,
    labels: Vec<u8>,
}

impl Images {
    /// Builds an image set from its parts, checking the invariants above.
    ///
    /// # Errors
    ///
    /// [`Error::InvalidParameter`] for a zero dimension or a label above 9,
    /// [`Error::ShapeMismatch`] if the pixel count is not
    /// `labels.len() * rows * cols * channels`.
    pub fn new(rows: usize, cols: usize, channels: usize, pixels: Vec<u8>, labels: Vec<u8>) -> Result<Self> {
        for (name, v) in [("rows", rows), ("cols", cols), ("channels", channels)] {
            if v == 0 {
                return Err(Error::invalid(name, v, "at least 1"));
            }
        }
        let expected = rows
            .checked_mul(cols)
            .and_then(|s| s.checked_mul(channels))
            .and_then(|s| s.checked_mul(labels.len()));
        if expected != Some(pixels.len()) {
            return Err(Error::shape(
                "pixels",
                format!("{} samples x {rows} x {cols} x {channels} bytes", labels.len()),
                format!("{} bytes", pixels.len()),
            ));
        }
        if let Some(i) = labels.iter().position(|&l| usize::from(l) >= NUM_CLASSES) {
            return Err(Error::invalid(
                "labels",
                format!("{} at sample {i}", labels[i]),
                "class labels in 0..=9",
            ));
        }
        Ok(Self {
            rows,
            cols,
            channels,
            pixels,
            labels,
        })
    }

    /// Number of samples.
    pub fn len(&self) -> usize {
        self.labels.len()
    }

    /// Whether there are no samples.
    pub fn is_empty(&self) -> bool {
        self.labels.is_empty()
    }

    /// Image height in pixels.
    pub fn rows(&self) -> usize {
        self.rows
    }

    /// Image width in pixels.
    pub fn cols(&self) -> usize {
        self.cols
    }

    /// Colour channels: 3 for CIFAR-10, 1 for IDX files.
    pub fn channels(&self) -> usize {
        self.channels
    }

    /// Bytes per sample, `rows * cols * channels`: the feature dimension `d`
    /// after flattening.
    pub fn sample_len(&self) -> usize {
        self.rows * self.cols * self.channels
    }

    /// All pixels, sample-major (see the type's documentation).
    pub fn pixels(&self) -> &[u8] {
        &self.pixels
    }

    /// All labels, one per sample, each in `0..=9`.
    pub fn labels(&self) -> &[u8] {
        &self.labels
    }

    /// The pixels of sample `i`, or `None` if `i >= len()`.
    pub fn image(&self, i: usize) -> Option<&[u8]> {
        let d = self.sample_len();
        (i < self.len()).then(|| &self.pixels[i * d..(i + 1) * d])
    }

    /// The label of sample `i`, or `None` if `i >= len()`.
    pub fn label(&self, i: usize) -> Option<u8> {
        self.labels.get(i).copied()
    }

    /// How many samples each class `0..=9` has.
    pub fn class_counts(&self) -> [usize; NUM_CLASSES] {
        let mut counts = [0; NUM_CLASSES];
        for &l in &self.labels {
            counts[usize::from(l)] += 1;
        }
        counts
    }

    /// The samples at `indices`, in that order (repeats allowed).
    ///
    /// # Errors
    ///
    /// [`Error::Data`] naming the first index that is `>= len()`.
    pub fn select(&self, indices: &[usize]) -> Result<Images> {
        let d = self.sample_len();
        let mut pixels = Vec::with_capacity(indices.len().saturating_mul(d));
        let mut labels = Vec::with_capacity(indices.len());
        for &i in indices {
            let image = self.image(i).ok_or_else(|| {
                Error::Data(format!(
                    "sample index {i} is out of range: the data has {} samples",
                    self.len()
                ))
            })?;
            pixels.extend_from_slice(image);
            labels.push(self.labels[i]);
        }
        Ok(Images {
            pixels,
            labels,
            ..*self
        })
    }

    /// The first `n` samples (all of them if `n >= len()`).
    pub fn head(&self, n: usize) -> Images {
        let n = n.min(self.len());
        Images {
            pixels: self.pixels[..n * self.sample_len()].to_vec(),
            labels: self.labels[..n].to_vec(),
            ..*self
        }
    }

    /// Concatenates image sets of the same shape, in order (e.g. the five
    /// CIFAR-10 training batches).
    ///
    /// # Errors
    ///
    /// [`Error::ShapeMismatch`] if two parts differ in rows, cols or
    /// channels; [`Error::Data`] if `parts` is empty.
    pub fn concat(parts: Vec<Images>) -> Result<Images> {
        let mut iter = parts.into_iter();
        let mut out = iter
            .next()
            .ok_or_else(|| Error::Data("no image sets to concatenate".into()))?;
        for part in iter {
            let shape = (part.rows, part.cols, part.channels);
            if shape != (out.rows, out.cols, out.channels) {
                return Err(Error::shape(
                    "concatenated images",
                    format!("{} x {} x {}", out.rows, out.cols, out.channels),
                    format!("{} x {} x {}", shape.0, shape.1, shape.2),
                ));
            }
            out.pixels.extend_from_slice(&part.pixels);
            out.labels.extend_from_slice(&part.labels);
        }
        Ok(out)
    }

    /// Takes the set apart into `(pixels, labels)`.
    pub fn into_parts(self) -> (Vec<u8>, Vec<u8>) {
        (self.pixels, self.labels)
    }
}
