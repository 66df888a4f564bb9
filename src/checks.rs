//! Input checks shared by every layer: hyper-parameter ranges and finiteness.
//! A leaf module: it depends on nothing in the crate but the error and float
//! types.

#[cfg(feature = "full")]
use nalgebra::DMatrix;

use crate::threads::parallel;
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

/// Entries summed in independent lanes by [`all_finite`].
const LANES: usize = 16;

/// Whether every entry of `c` is finite, and the largest |entry| (meaningful
/// when all are finite), in one vectorised pass: `0 · x` is 0 for finite `x`
/// and NaN otherwise, summed in [`LANES`] independent accumulators (one
/// accumulator would chain every add on the previous one: about 4 cycles
/// per entry instead of a fraction), beside as many running maxima.
fn scan<T: Float>(c: &[T]) -> (bool, f64) {
    // The accumulators are the closure's own (returned by value), so they
    // stay in registers.
    let (acc, max) = crate::threads::with_avx2(|| {
        let mut acc = [T::zero(); LANES];
        let mut max = [T::zero(); LANES];
        let mut chunks = c.chunks_exact(LANES);
        for chunk in &mut chunks {
            for ((a, m), &x) in acc.iter_mut().zip(max.iter_mut()).zip(chunk) {
                *a += x * T::zero();
                let y = x.magnitude();
                *m = if y > *m { y } else { *m };
            }
        }
        for ((a, m), &x) in acc.iter_mut().zip(max.iter_mut()).zip(chunks.remainder()) {
            *a += x * T::zero();
            let y = x.magnitude();
            *m = if y > *m { y } else { *m };
        }
        (acc, max)
    });
    let finite = acc.iter().fold(T::zero(), |s, &a| s + a).finite();
    (finite, max.iter().fold(0.0, |m, &x| m.max(x.to_f64())))
}

fn all_finite<T: Float>(c: &[T]) -> bool {
    scan(c).0
}

/// Index of the first non-finite entry, if any (one pass when all are
/// finite, split across threads for long slices).
pub(crate) fn first_non_finite<T: Float>(xs: &[T]) -> Option<usize> {
    use rayon::prelude::*;
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

/// What one pass over a pair of slices found: the first non-finite entry
/// of `a` or `b`, as (0 for `a` or 1 for `b`, index), and the largest
/// |entry| of each (meaningful when all are finite).
#[derive(Clone, Copy, Debug)]
pub(crate) struct PairScan {
    pub(crate) non_finite: Option<(usize, usize)>,
    pub(crate) max_abs: (f64, f64),
}

/// Scans `a` and `b` (slices of equal length) in one pass, so one dispatch
/// to the thread pool instead of two.
pub(crate) fn scan_pair<T: Float>(a: &[T], b: &[T]) -> PairScan {
    use rayon::prelude::*;
    debug_assert_eq!(a.len(), b.len());
    let both = |(x, y): (&[T], &[T])| {
        let ((fx, mx), (fy, my)) = (scan(x), scan(y));
        (fx && fy, mx, my)
    };
    let merge = |p: (bool, f64, f64), q: (bool, f64, f64)| (p.0 && q.0, p.1.max(q.1), p.2.max(q.2));
    let (finite, ma, mb) = if parallel(a.len()) {
        a.par_chunks(CHUNK)
            .zip(b.par_chunks(CHUNK))
            .map(both)
            .reduce(|| (true, 0.0, 0.0), merge)
    } else {
        both((a, b))
    };
    let non_finite = if finite {
        None
    } else {
        a.iter()
            .position(|x| !x.finite())
            .map(|i| (0, i))
            .or_else(|| b.iter().position(|x| !x.finite()).map(|i| (1, i)))
    };
    PairScan {
        non_finite,
        max_abs: (ma, mb),
    }
}

/// Errors on the first NaN or infinite entry of a matrix, naming its row and
/// column.
#[cfg(feature = "full")]
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
