//! Input checks shared by every layer: hyper-parameter ranges and finiteness.
//! A leaf module: it depends on nothing in the crate but the error and float
//! types.

use nalgebra::DMatrix;

use crate::linalg::parallel;
use crate::{Error, Float, Result};

/// Entries per task when an elementwise pass is split across threads.
pub(crate) const CHUNK: usize = 1 << 14;

/// Validates a learning rate: finite and > 0.
pub(crate) fn check_lr(lr: f64) -> Result<f64> {
    if lr.is_finite() && lr > 0.0 {
        Ok(lr)
    } else {
        Err(Error::invalid("lr", lr, "a finite number > 0"))
    }
}

/// Validates a momentum: in [0, 1).
pub(crate) fn check_momentum(momentum: f64) -> Result<f64> {
    if (0.0..1.0).contains(&momentum) {
        Ok(momentum)
    } else {
        Err(Error::invalid("momentum", momentum, "a number in [0, 1)"))
    }
}

/// Index of the first non-finite entry, if any. The common all-finite case
/// is one vectorised pass: `0 · x` is 0 for finite `x` and NaN otherwise.
pub(crate) fn first_non_finite<T: Float>(xs: &[T]) -> Option<usize> {
    use rayon::prelude::*;
    let all_finite = |c: &[T]| {
        let mut acc = T::zero();
        for &x in c {
            acc += x * T::zero();
        }
        acc.finite()
    };
    let finite = if parallel(xs.len()) {
        xs.par_chunks(CHUNK).all(all_finite)
    } else {
        all_finite(xs)
    };
    if finite {
        None
    } else {
        xs.iter().position(|x| !x.finite())
    }
}

/// Errors on the first NaN or infinite entry of a matrix, naming its row and
/// column.
pub(crate) fn check_finite_matrix<T: Float>(what: &str, m: &DMatrix<T>) -> Result<()> {
    match first_non_finite(m.as_slice()) {
        None => Ok(()),
        Some(idx) => {
            let (i, k) = (idx % m.nrows(), idx / m.nrows());
            Err(Error::NonFinite {
                what: what.into(),
                location: format!("row {i}, column {k}, value {}", m[(i, k)]),
            })
        }
    }
}
