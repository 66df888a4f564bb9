//! The neural tangent kernel: its infinite-width limit and spectra.
//!
//! For the network of [`crate::TwoLayerReLU`] the empirical kernel is
//! `H(W) = (X Xᵀ) ∘ (S Sᵀ) / m` ([`crate::TwoLayerReLU::ntk_gram`]). Its
//! expectation over `w ~ N(0, I)` — the infinite-width limit — has the closed
//! form
//!
//! ```text
//! H∞_ij = x_i · x_j (π − θ_ij) / (2π),     θ_ij = arccos( x_i · x_j / (‖x_i‖ ‖x_j‖) )
//! ```
//!
//! (the probability that a random hyperplane through 0 puts x_i and x_j on
//! the same positive side is (π − θ_ij)/(2π)). Its least eigenvalue
//! `λ_0 = λ_min(H∞)` is positive when no two inputs are parallel, and the
//! convergence rates of [`crate::theory`] are functions of the spectrum of
//! `H` or `H∞`. As m grows, `H(W_0) → H∞` entrywise at rate O(1/√m).
//!
//! # Dense or matrix-free
//!
//! Up to a few thousand samples the kernels are formed (n × n) and
//! decomposed densely ([`Spectrum::of`], [`eigendecomposition`]). Beyond,
//! [`EmpiricalNtk`] and [`InfiniteWidthNtk`] give the products `H v`
//! without forming H (4 n m d and 2 n² d flops each), and [`lanczos`] finds
//! the extreme eigenvalues from them with error bounds, and, started at the
//! initial residual, the Krylov quadrature that predicts a momentum
//! method's linearized losses exactly for as many steps as it spent
//! products ([`KrylovSpectrum`]). The training loop switches to them above
//! [`crate::train::NTK_DRIFT_MAX_SAMPLES`] samples
//! ([`crate::Trainer::matrix_free_ntk`]); `examples/fashion_full.rs` runs
//! the whole pipeline on all 60,000 Fashion-MNIST training images.

use nalgebra::{DMatrix, DVector};

mod matrix_free;
pub use matrix_free::{
    lanczos, EmpiricalNtk, InfiniteWidthNtk, KernelOperator, KrylovSpectrum, LanczosOptions, BLOCK_ENTRIES,
};

use crate::checks::check_finite_matrix;
use crate::linalg::{gram_of_columns, Operand};
use crate::{Error, Float, Result};

/// The infinite-width NTK Gram matrix `H∞` (n × n) of the rows of `x`
/// (n × d), for any input norms (a zero row gives a zero row and column).
///
/// Its diagonal is `‖x_i‖² / 2`.
///
/// # Errors
/// [`Error::ShapeMismatch`] for an empty `x`, [`Error::NonFinite`] for NaN
/// or infinite entries, [`Error::TooLarge`] beyond the memory budget
/// ([`crate::memory_limit`]).
///
/// # Examples
/// ```
/// use nalgebra::DMatrix;
/// use ntk_momentum::ntk::infinite_width_gram;
///
/// // Two orthogonal unit vectors: θ = π/2, so H∞_01 = 0.
/// let x = DMatrix::from_row_slice(2, 2, &[1.0_f64, 0.0, 0.0, 1.0]);
/// let h = infinite_width_gram(&x)?;
/// assert_eq!(h[(0, 0)], 0.5);
/// assert_eq!(h[(0, 1)], 0.0);
/// # Ok::<(), ntk_momentum::Error>(())
/// ```
pub fn infinite_width_gram<T: Float>(x: &DMatrix<T>) -> Result<DMatrix<T>> {
    check_kernel_inputs(x)?;
    let n = x.nrows();
    crate::memory::reserve(
        || format!("infinite-width Gram matrix ({n} x {n}) and its work copy"),
        &[crate::memory::bytes_of(&[2, n, n], std::mem::size_of::<T>())],
    )?;
    let mut k = DMatrix::zeros(n, n);
    gram_of_columns(Operand::t(x), &mut k);
    let norms: Vec<f64> = (0..n).map(|i| k[(i, i)].to_f64().sqrt()).collect();
    Ok(DMatrix::from_fn(n, n, |i, j| {
        T::cast(infinite_width_entry(k[(i, j)].to_f64(), norms[i], norms[j], i == j))
    }))
}

/// Checks the inputs of an H∞ kernel: n, d ≥ 1 and finite entries.
fn check_kernel_inputs<T: Float>(x: &DMatrix<T>) -> Result<()> {
    if x.nrows() == 0 || x.ncols() == 0 {
        return Err(Error::shape(
            "x",
            "n x d with n, d >= 1",
            format!("{} x {}", x.nrows(), x.ncols()),
        ));
    }
    check_finite_matrix("x", x)
}

/// `H∞_ij = k_ij (π − θ_ij) / (2π)` from `k_ij = x_i · x_j` and the norms
/// (θ_ii = 0 exactly; 0 when a row is zero).
fn infinite_width_entry(kij: f64, norm_i: f64, norm_j: f64, diagonal: bool) -> f64 {
    let denom = norm_i * norm_j;
    if denom == 0.0 {
        return 0.0;
    }
    let pi = std::f64::consts::PI;
    let theta = if diagonal {
        0.0
    } else {
        (kij / denom).clamp(-1.0, 1.0).acos()
    };
    kij * (pi - theta) / (2.0 * pi)
}

/// The extreme eigenvalues of a symmetric positive semi-definite Gram matrix
/// and its condition number `κ = λ_max / λ_min`.
///
/// `approx`'s `AbsDiffEq` and `RelativeEq` compare two spectra entry by
/// entry (eigenvalues, λ_min, λ_max, κ; two infinite κ are equal).
#[derive(Clone, Debug, PartialEq)]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
pub struct Spectrum {
    /// All eigenvalues, ascending.
    pub eigenvalues: Vec<f64>,
    /// The smallest eigenvalue λ_min.
    pub lambda_min: f64,
    /// The largest eigenvalue λ_max.
    pub lambda_max: f64,
    /// κ = λ_max / λ_min (infinite when λ_min ≤ 0).
    pub kappa: f64,
}

crate::float::approx_record!(Spectrum, |a, b, same| {
    same(&a.eigenvalues, &b.eigenvalues)
        && same(
            &[a.lambda_min, a.lambda_max, a.kappa],
            &[b.lambda_min, b.lambda_max, b.kappa],
        )
});

impl Spectrum {
    /// The spectrum for coupled weight decay λ (the optimizers'
    /// `weight_decay`): every eigenvalue shifted by λ, so κ = (λ_max + λ) /
    /// (λ_min + λ).
    ///
    /// On the linearized model f = f_0 + J (θ − θ_0) with the decayed
    /// gradient g = Jᵀ ξ + λ θ, the residual ξ = f − y obeys
    /// J g = (H + λ I)(ξ − ξ*) with ξ* = −λ (H + λ I)⁻¹ (y − f_0 + J θ_0),
    /// so ξ_t − ξ* follows the undecayed recursion of the method with H
    /// replaced by H + λ I. So [`crate::theory::rate`] and the step
    /// predictions on the shifted eigenvalues give the rate at which the
    /// loss approaches that of the regularized minimizer (not 0: weight
    /// decay trades the fit for a smaller norm). Checked on a linear model
    /// in `tests/knobs.rs`.
    ///
    /// ```
    /// use nalgebra::DMatrix;
    /// use ntk_momentum::ntk::Spectrum;
    ///
    /// let s = Spectrum::of(&DMatrix::from_diagonal(&nalgebra::DVector::from_vec(vec![0.5, 2.0])))?;
    /// let d = s.with_weight_decay(0.5)?;
    /// assert_eq!((d.lambda_min, d.lambda_max, d.kappa), (1.0, 2.5, 2.5));
    /// # Ok::<(), ntk_momentum::Error>(())
    /// ```
    ///
    /// # Errors
    /// [`Error::InvalidParameter`] unless λ is finite and ≥ 0.
    pub fn with_weight_decay(&self, weight_decay: f64) -> Result<Spectrum> {
        if !(weight_decay.is_finite() && weight_decay >= 0.0) {
            return Err(Error::invalid("weight_decay", weight_decay, "a finite number >= 0"));
        }
        let eigenvalues: Vec<f64> = self.eigenvalues.iter().map(|l| l + weight_decay).collect();
        let (lambda_min, lambda_max) = (self.lambda_min + weight_decay, self.lambda_max + weight_decay);
        Ok(Spectrum {
            eigenvalues,
            lambda_min,
            lambda_max,
            kappa: if lambda_min > 0.0 {
                lambda_max / lambda_min
            } else {
                f64::INFINITY
            },
        })
    }

    /// Eigenvalues of the symmetric matrix `h` (computed in `f64` by faer's
    /// self-adjoint solver, run sequentially: the same bits on every run and
    /// for any thread count).
    ///
    /// # Errors
    /// [`Error::ShapeMismatch`] if `h` is not square or is empty,
    /// [`Error::NonFinite`] for NaN or infinite entries,
    /// [`Error::InvalidParameter`] if `h` is not symmetric to within
    /// [`asymmetry_tolerance`] (a non-symmetric matrix is refused, never
    /// silently symmetrised); [`Error::TooLarge`] if the decomposition's
    /// work arrays exceed the memory budget ([`crate::memory_limit`]).
    ///
    /// # Examples
    /// ```
    /// use nalgebra::DMatrix;
    /// use ntk_momentum::ntk::Spectrum;
    ///
    /// let s = Spectrum::of(&DMatrix::from_row_slice(2, 2, &[2.0_f64, 0.0, 0.0, 0.5]))?;
    /// assert_eq!((s.lambda_min, s.lambda_max, s.kappa), (0.5, 2.0, 4.0));
    /// # Ok::<(), ntk_momentum::Error>(())
    /// ```
    pub fn of<T: Float>(h: &DMatrix<T>) -> Result<Self> {
        let h = to_f64_symmetric(h)?;
        let mut eigenvalues = crate::linalg::symmetric_eigen(&h, false)?.0;
        eigenvalues.sort_by(f64::total_cmp);
        Ok(Self::from_sorted(eigenvalues))
    }

    fn from_sorted(eigenvalues: Vec<f64>) -> Self {
        let lambda_min = eigenvalues[0];
        let lambda_max = eigenvalues[eigenvalues.len() - 1];
        let kappa = if lambda_min > 0.0 {
            lambda_max / lambda_min
        } else {
            f64::INFINITY
        };
        Spectrum {
            eigenvalues,
            lambda_min,
            lambda_max,
            kappa,
        }
    }
}

/// The smallest and largest eigenvalue of a symmetric matrix (see
/// [`extreme_eigenvalues`]).
#[derive(Clone, Copy, Debug, PartialEq)]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
#[non_exhaustive]
pub struct ExtremeEigenvalues {
    /// λ_min.
    pub lambda_min: f64,
    /// λ_max.
    pub lambda_max: f64,
}

/// λ_min and λ_max of the symmetric matrix `h` without a full
/// eigendecomposition once it is large: a dense solver up to order 128,
/// beyond it the Lanczos iteration with full re-orthogonalization on products
/// `h v` (O(n²) each; it stops when both Ritz values have a residual bound
/// ≤ 1e-10 · λ_max, after at most 1000 products). Computed in `f64`.
///
/// # Errors
/// As [`Spectrum::of`].
///
/// # Examples
/// ```
/// use nalgebra::DMatrix;
/// use ntk_momentum::ntk::{extreme_eigenvalues, Spectrum};
///
/// // A 300 x 300 matrix with eigenvalues 1, 2, ..., 300 in a rotated basis.
/// let n = 300;
/// let q = DMatrix::<f64>::from_fn(n, n, |i, j| ((i * 7 + j * 13) % 17) as f64 - 8.0).qr().q();
/// let h = &q * DMatrix::from_diagonal(&nalgebra::DVector::from_fn(n, |i, _| (i + 1) as f64)) * q.transpose();
/// let e = extreme_eigenvalues(&h)?;
/// assert!((e.lambda_min - 1.0).abs() < 1e-8 && (e.lambda_max - 300.0).abs() < 1e-8);
/// # Ok::<(), ntk_momentum::Error>(())
/// ```
pub fn extreme_eigenvalues<T: Float>(h: &DMatrix<T>) -> Result<ExtremeEigenvalues> {
    check_gram(h)?;
    // The Lanczos basis: at most one vector of n entries per product.
    let n = h.nrows();
    crate::memory::reserve(
        || format!("Lanczos basis of a {n} x {n} matrix"),
        &[crate::memory::bytes_of(
            &[n, n.min(crate::linalg::EXTREMES_MAX_PRODUCTS)],
            8,
        )],
    )?;
    let (lambda_min, lambda_max) = crate::linalg::symmetric_extremes(h).unwrap_or((f64::NAN, f64::NAN));
    Ok(ExtremeEigenvalues { lambda_min, lambda_max })
}

/// Eigen-decomposition of a symmetric matrix `h = V diag(λ) Vᵀ`, eigenvalues
/// ascending, eigenvectors as the columns of `V` (computed in `f64` by
/// faer's self-adjoint solver, sequentially, as [`Spectrum::of`]).
///
/// # Errors
/// As [`Spectrum::of`].
pub fn eigendecomposition<T: Float>(h: &DMatrix<T>) -> Result<(Spectrum, DMatrix<f64>)> {
    let h = to_f64_symmetric(h)?;
    let (values, vectors) = crate::linalg::symmetric_eigen(&h, true)?;
    let n = h.nrows();
    let vectors = vectors.unwrap_or_else(|| DMatrix::zeros(n, n));
    // faer returns them ascending; sort anyway (stable for ties) so the
    // contract does not rest on the solver's.
    let mut order: Vec<usize> = (0..values.len()).collect();
    order.sort_by(|&a, &b| values[a].total_cmp(&values[b]));
    let sorted: Vec<f64> = order.iter().map(|&i| values[i]).collect();
    let vectors = DMatrix::from_fn(n, n, |r, c| vectors[(r, order[c])]);
    Ok((Spectrum::from_sorted(sorted), vectors))
}

/// Checks that `h` is square, non-empty, finite and symmetric to within
/// [`asymmetry_tolerance`]`::<T>()` · max|h_ij|.
fn check_gram<T: Float>(h: &DMatrix<T>) -> Result<()> {
    if h.nrows() != h.ncols() || h.nrows() == 0 {
        return Err(Error::shape(
            "Gram matrix",
            "square and non-empty",
            format!("{} x {}", h.nrows(), h.ncols()),
        ));
    }
    check_finite_matrix("Gram matrix", h)?;
    let n = h.nrows();
    let scale = h.iter().fold(0.0_f64, |m, v| m.max(v.to_f64().abs()));
    let mut worst = (0.0_f64, 0, 0);
    for j in 0..n {
        for i in (j + 1)..n {
            let d = (h[(i, j)].to_f64() - h[(j, i)].to_f64()).abs();
            if d > worst.0 {
                worst = (d, i, j);
            }
        }
    }
    let tolerance = asymmetry_tolerance::<T>();
    if worst.0 > tolerance * scale {
        let (d, i, j) = worst;
        return Err(Error::invalid(
            "Gram matrix",
            format!(
                "a non-symmetric matrix: |h[{i}, {j}] - h[{j}, {i}]| = {d:e}, {:e} of max|h|",
                d / scale
            ),
            format!(
                "a symmetric matrix (asymmetry at most {tolerance:e} of max|h| in {}, the square root of its epsilon)",
                T::NAME
            ),
        ));
    }
    Ok(())
}

/// The relative asymmetry |h_ij − h_ji| / max|h| the spectral functions
/// accept: √ε of the float type (1.5e-8 in `f64`, 3.5e-4 in `f32`), far
/// above the rounding asymmetry of a Gram matrix computed in that type and
/// far below any real asymmetry. Within it the matrix is symmetrised
/// (½(h + hᵀ)) before the symmetric solver.
pub fn asymmetry_tolerance<T: Float>() -> f64 {
    match T::PRECISION {
        crate::Precision::F32 => f64::from(f32::EPSILON).sqrt(),
        crate::Precision::F64 => f64::EPSILON.sqrt(),
    }
}

fn to_f64_symmetric<T: Float>(h: &DMatrix<T>) -> Result<DMatrix<f64>> {
    check_gram(h)?;
    let n = h.nrows();
    // The f64 copy, the eigenvectors and the solver's work matrix.
    crate::memory::reserve(
        || format!("eigendecomposition of a {n} x {n} matrix"),
        &[crate::memory::bytes_of(&[3, n, n], 8)],
    )?;
    // Symmetrise to remove rounding asymmetry before the symmetric solver.
    Ok(DMatrix::from_fn(n, n, |i, j| {
        0.5 * (h[(i, j)].to_f64() + h[(j, i)].to_f64())
    }))
}

/// `DVector` convenience: the eigenvalues as a vector.
impl From<&Spectrum> for DVector<f64> {
    fn from(s: &Spectrum) -> Self {
        DVector::from_vec(s.eigenvalues.clone())
    }
}
