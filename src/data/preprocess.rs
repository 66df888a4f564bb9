//! Preprocessing for the theory: flatten, scale to [0, 1], optionally
//! subtract the mean image, scale each row to unit Euclidean norm.
//!
//! The NTK analysis assumes `||x_i|| = 1` (the inputs of the model in
//! [`crate::model`] lie on the unit sphere); [`preprocess`]
//! provides it. The three steps are also public on their own
//! ([`unit_interval`], [`center_columns`], [`normalize_rows`]) so a caller can
//! inspect the intermediate matrices. All sums are accumulated in `f64`
//! whatever `T` is.

use nalgebra::{DMatrix, DVector};

use super::images::Images;
use crate::{Error, Float, Result};

/// Flattens the samples at `indices` into an `n x d` matrix, one sample per
/// row, each pixel divided by 255 (so entries lie in `[0, 1]`).
///
/// # Errors
///
/// [`Error::InvalidParameter`] if `indices` is empty; [`Error::Data`] if an
/// index is out of range.
pub fn unit_interval<T: Float>(images: &Images, indices: &[usize]) -> Result<DMatrix<T>> {
    let rows = scaled_rows(images, indices)?;
    Ok(to_matrix(indices.len(), images.sample_len(), &rows))
}

/// Subtracts from every column its mean over the rows; returns the means
/// (the mean image, when rows are samples).
pub fn center_columns<T: Float>(x: &mut DMatrix<T>) -> DVector<T> {
    let n = x.nrows();
    let means = DVector::from_iterator(
        x.ncols(),
        x.column_iter()
            .map(|c| T::cast(c.iter().map(|v| v.to_f64()).sum::<f64>() / n.max(1) as f64)),
    );
    for (mut column, &mean) in x.column_iter_mut().zip(means.iter()) {
        for v in column.iter_mut() {
            *v -= mean;
        }
    }
    means
}

/// Scales every row to unit Euclidean norm.
///
/// # Errors
///
/// [`Error::Data`] naming the first row whose norm is zero (it has no
/// direction) or not finite; `x` is left unchanged then.
pub fn normalize_rows<T: Float>(x: &mut DMatrix<T>) -> Result<()> {
    let norms = row_norms(x)?;
    for mut column in x.column_iter_mut() {
        for (v, &norm) in column.iter_mut().zip(&norms) {
            *v = T::cast(v.to_f64() / norm);
        }
    }
    Ok(())
}

/// Whether [`preprocess`] centres the samples on their own mean image.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub enum Centering {
    /// Subtract the mean image of the selected samples (the default: the
    /// kernel's spectrum is then far better conditioned).
    #[default]
    MeanImage,
    /// Keep the raw scaled pixels.
    Off,
}

/// The full pipeline: the samples at `indices`, flattened, scaled to
/// `[0, 1]`, centred on their own mean image with [`Centering::MeanImage`],
/// then scaled to unit row norm. Returns the `n x d` matrix `X` with one sample per row.
///
/// Computed in `f64` and rounded to `T` at the end, so the `f32` result is
/// the `f64` one rounded.
///
/// # Errors
///
/// [`Error::InvalidParameter`] if `indices` is empty; [`Error::Data`] if an
/// index is out of range, or a sample is all zeros after the scaling (or
/// equals the mean image after centring — always the case for a single
/// centred sample): the message names the sample's index in `images`.
///
/// # Examples
///
/// ```
/// use ntk_momentum::data::{embedded, preprocess, Centering};
///
/// let images = embedded::cifar10_test();
/// let all: Vec<usize> = (0..images.len()).collect();
/// let x = preprocess::<f64>(&images, &all, Centering::MeanImage)?;
/// assert_eq!(x.shape(), (20, 3072));
/// for row in x.row_iter() {
///     assert!((row.norm() - 1.0).abs() < 1e-12);
/// }
/// # Ok::<(), ntk_momentum::Error>(())
/// ```
pub fn preprocess<T: Float>(images: &Images, indices: &[usize], centering: Centering) -> Result<DMatrix<T>> {
    let n = indices.len();
    let d = images.sample_len();
    let mut rows = scaled_rows(images, indices)?;
    if centering == Centering::MeanImage {
        let mut mean = vec![0.0f64; d];
        for row in rows.chunks_exact(d) {
            for (m, v) in mean.iter_mut().zip(row) {
                *m += v;
            }
        }
        for m in &mut mean {
            *m /= n as f64;
        }
        for row in rows.chunks_exact_mut(d) {
            for (v, m) in row.iter_mut().zip(&mean) {
                *v -= m;
            }
        }
    }
    for (k, row) in rows.chunks_exact_mut(d).enumerate() {
        let norm = row.iter().map(|v| v * v).sum::<f64>().sqrt();
        if !(norm > 0.0 && norm.is_finite()) {
            let what = if centering == Centering::MeanImage {
                if n == 1 {
                    "equals the mean image after centring (a single sample always does; centre at least two)"
                } else {
                    "equals the mean image after centring"
                }
            } else {
                "is all zeros"
            };
            return Err(Error::Data(format!(
                "sample {} (label {}) {what}: it cannot be scaled to unit norm",
                indices[k],
                images.labels()[indices[k]]
            )));
        }
        for v in row.iter_mut() {
            *v /= norm;
        }
    }
    Ok(to_matrix(n, d, &rows))
}

/// Row-major `[0, 1]` values of the selected samples.
fn scaled_rows(images: &Images, indices: &[usize]) -> Result<Vec<f64>> {
    if indices.is_empty() {
        return Err(Error::invalid(
            "indices",
            "[] (no samples)",
            "at least one sample index",
        ));
    }
    let d = images.sample_len();
    let mut rows = Vec::with_capacity(indices.len() * d);
    for &i in indices {
        let image = images.image(i).ok_or_else(|| {
            Error::Data(format!(
                "sample index {i} is out of range: the data has {} samples",
                images.len()
            ))
        })?;
        rows.extend(image.iter().map(|&p| f64::from(p) / 255.0));
    }
    Ok(rows)
}

fn to_matrix<T: Float>(n: usize, d: usize, rows: &[f64]) -> DMatrix<T> {
    DMatrix::from_fn(n, d, |i, j| T::cast(rows[i * d + j]))
}

fn row_norms<T: Float>(x: &DMatrix<T>) -> Result<Vec<f64>> {
    let mut sums = vec![0.0f64; x.nrows()];
    for column in x.column_iter() {
        for (s, v) in sums.iter_mut().zip(column.iter()) {
            let v = v.to_f64();
            *s += v * v;
        }
    }
    sums.into_iter()
        .enumerate()
        .map(|(i, s)| {
            let norm = s.sqrt();
            if norm > 0.0 && norm.is_finite() {
                Ok(norm)
            } else {
                Err(Error::Data(format!(
                    "row {i} has norm {norm}: it cannot be scaled to unit norm"
                )))
            }
        })
        .collect()
}
