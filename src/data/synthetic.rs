//! Synthetic problems for benchmarks, tests and examples.

use nalgebra::{DMatrix, DVector};
use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;
use rand_distr::{Distribution, StandardNormal};

use crate::{Error, Float, Result};

/// `n` points uniform on the unit sphere of R^d (Gaussian rows scaled to
/// unit norm) as the rows of `x`, and labels `y` alternating +1, −1.
///
/// Drawn in `f64` from a ChaCha8 generator seeded with `seed` (row by row)
/// and rounded to `T`: same seed, same problem, bit for bit; the `f32`
/// problem is the `f64` one rounded.
///
/// # Errors
/// [`Error::InvalidParameter`] if `n` or `d` is 0, [`Error::TooLarge`] if
/// the n · d entries exceed the memory budget ([`crate::memory_limit`]).
///
/// # Examples
/// ```
/// use ntk_momentum::data::unit_sphere;
///
/// let (x, y) = unit_sphere::<f64>(100, 20, 7)?;
/// assert!((x.row(3).norm() - 1.0).abs() < 1e-12);
/// assert_eq!(y.sum(), 0.0);
/// # Ok::<(), ntk_momentum::Error>(())
/// ```
pub fn unit_sphere<T: Float>(n: usize, d: usize, seed: u64) -> Result<(DMatrix<T>, DVector<T>)> {
    if n == 0 {
        return Err(Error::invalid("n", n, "at least 1"));
    }
    if d == 0 {
        return Err(Error::invalid("d", d, "at least 1"));
    }
    crate::memory::reserve(
        || format!("synthetic inputs ({n} x {d}) and their f64 draws"),
        &[
            crate::memory::bytes_of(&[n, d], 8),
            crate::memory::bytes_of(&[n, d], std::mem::size_of::<T>()),
        ],
    )?;
    let entries = n * d;
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    let draws: Vec<f64> = (0..entries).map(|_| StandardNormal.sample(&mut rng)).collect();
    let norms: Vec<f64> = draws
        .chunks_exact(d)
        .map(|row| row.iter().map(|v| v * v).sum::<f64>().sqrt())
        .collect();
    let x = DMatrix::from_fn(n, d, |i, k| T::cast(draws[i * d + k] / norms[i]));
    let y = DVector::from_fn(n, |i, _| if i % 2 == 0 { T::one() } else { -T::one() });
    Ok((x, y))
}
