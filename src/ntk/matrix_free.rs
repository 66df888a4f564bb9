//! Matrix-free kernels: the empirical NTK H(W) and the infinite-width H∞
//! as products `v ↦ H v` computed from X, the activation masks and GEMMs in
//! blocks, and the Lanczos iteration that finds their extreme eigenvalues
//! (and the Krylov picture of a residual) from such products alone.

use nalgebra::{DMatrix, DVector};
use rayon::prelude::*;

use crate::checks::first_non_finite;
use crate::linalg::{
    default_lanczos_start, gemm, lanczos as run_lanczos, pack_activations, parallel, raw_gemm, LanczosSettings,
    Operand, Preactivations,
};
use crate::{Error, Float, Result, TwoLayerReLU};

/// Entries of one block's work matrix (m × b for H(W), n × b for H∞):
/// 2²² entries, 16 MiB in `f32`, 32 MiB in `f64`.
pub const BLOCK_ENTRIES: usize = 1 << 22;

/// A symmetric positive semi-definite n × n kernel matrix known through its
/// products `out ← H v` (what [`lanczos`] needs).
///
/// Implemented by the matrix-free [`EmpiricalNtk`] and [`InfiniteWidthNtk`],
/// and by a dense `DMatrix` (any [`Float`]), so the same code runs on both
/// and can be checked against each other.
pub trait KernelOperator {
    /// The order n of the matrix.
    fn order(&self) -> usize;

    /// `out ← H v` (both of length n).
    ///
    /// # Errors
    /// [`Error::ShapeMismatch`] when `v` or `out` does not have n entries,
    /// [`Error::NonFinite`] for a NaN or infinite entry of `v`.
    fn apply(&mut self, v: &[f64], out: &mut [f64]) -> Result<()>;
}

/// Checks a product's vectors against the operator's order n.
fn check_product(n: usize, v: &[f64], out: &[f64]) -> Result<()> {
    for (what, len) in [("v", v.len()), ("out", out.len())] {
        if len != n {
            return Err(Error::shape(what, format!("{n} entries"), format!("{len} entries")));
        }
    }
    if let Some(i) = first_non_finite(v) {
        return Err(Error::NonFinite {
            what: "v".into(),
            location: format!("entry {i}, value {}", v[i]),
        });
    }
    Ok(())
}

impl<T: Float> KernelOperator for DMatrix<T> {
    fn order(&self) -> usize {
        self.nrows()
    }

    /// `out ← H v` in `f64`, column by column (H is taken as given; its
    /// symmetry is not checked here).
    fn apply(&mut self, v: &[f64], out: &mut [f64]) -> Result<()> {
        if !self.is_square() {
            return Err(Error::shape("H", "a square matrix", crate::model::shape_str(self)));
        }
        check_product(self.nrows(), v, out)?;
        out.iter_mut().for_each(|o| *o = 0.0);
        for (column, &vj) in self.column_iter().zip(v) {
            out.iter_mut()
                .zip(column.iter())
                .for_each(|(o, &hij)| *o += hij.to_f64() * vj);
        }
        Ok(())
    }
}

/// The empirical NTK `H(W) = J Jᵀ = (X Xᵀ) ∘ (S Sᵀ) / m` of a
/// [`TwoLayerReLU`] on inputs X, as an operator that never forms it:
///
/// ```text
/// H v = J (Jᵀ v),   Jᵀ v = (1/√m) Cᵀ X with C_ir = v_i S_ir,   (J G)_i = (1/√m) Σ_r S_ir (G X ᵀ)_ri
/// ```
///
/// (a_r² = 1), two GEMMs of 2 n m d flops each per product, over blocks of
/// samples. The activation masks S_ir = 1[w_r · x_i > 0] of the weights at
/// construction are packed into bits (n ⌈m/64⌉ words), so the operator holds
/// n m / 8 bytes of masks, one m × d and one m × b work matrix of the
/// model's float type, b = ⌊[`BLOCK_ENTRIES`] / m⌋ samples a block.
pub struct EmpiricalNtk<'a, T: Float> {
    x: &'a DMatrix<T>,
    m: usize,
    words: usize,
    masks: Vec<u64>,
    block: usize,
    /// m × b: C of a block, then G Xᵀ of the same block.
    work: DMatrix<T>,
    /// m × d: Jᵀ v · √m.
    direction: DMatrix<T>,
}

impl<'a, T: Float> EmpiricalNtk<'a, T> {
    /// The operator of `model`'s kernel on `x` (n × d, one sample a row), at
    /// the model's current weights.
    ///
    /// # Errors
    /// As [`TwoLayerReLU::forward`] for `x`; [`Error::TooLarge`] when the
    /// masks and work matrices exceed the memory budget
    /// ([`crate::memory_limit`]).
    ///
    /// # Examples
    /// ```
    /// use ntk_momentum::ntk::{lanczos, EmpiricalNtk, LanczosOptions};
    /// use ntk_momentum::{data, TwoLayerReLU};
    ///
    /// let (x, _) = data::unit_sphere::<f64>(40, 5, 1)?;
    /// let model = TwoLayerReLU::<f64>::new(5, 256, 2)?;
    /// let dense = ntk_momentum::ntk::Spectrum::of(&model.ntk_gram(&x)?)?;
    /// let mut h = EmpiricalNtk::new(&model, &x)?;
    /// let k = lanczos(&mut h, None, LanczosOptions::default())?;
    /// assert!((k.lambda_max - dense.lambda_max).abs() <= 1e-8 * dense.lambda_max);
    /// assert!((k.lambda_min - dense.lambda_min).abs() <= 1e-6 * dense.lambda_min);
    /// # Ok::<(), ntk_momentum::Error>(())
    /// ```
    pub fn new(model: &TwoLayerReLU<T>, x: &'a DMatrix<T>) -> Result<Self> {
        model.check_inputs(x)?;
        let mut op = Self::allocate(x, model.width())?;
        let (n, m, block) = (x.nrows(), op.m, op.block);
        let mut i0 = 0;
        while i0 < n {
            let i1 = (i0 + block).min(n);
            // P_b = W X_bᵀ (m × b) into the work matrix, then its signs.
            let ld = op.work.nrows();
            let xb = Operand::n(x).rows(i0, i1).transposed();
            raw_gemm(
                op.work.as_mut_slice(),
                ld,
                T::one(),
                Operand::n(model.weights()),
                xb,
                T::zero(),
            );
            let (work, words) = (&op.work, op.words);
            let pack = |(j, w): (usize, &mut [u64])| {
                for (r, &p) in work.column(j).iter().enumerate() {
                    if p > T::zero() {
                        w[r / 64] |= 1 << (r % 64);
                    }
                }
            };
            let chunk = &mut op.masks[i0 * words..i1 * words];
            if parallel(m * (i1 - i0)) {
                chunk.par_chunks_mut(words).enumerate().for_each(pack);
            } else {
                chunk.chunks_mut(words).enumerate().for_each(pack);
            }
            i0 = i1;
        }
        Ok(op)
    }

    /// The operator with its masks and work matrices allocated (masks all
    /// off), after checking them against the memory budget.
    fn allocate(x: &'a DMatrix<T>, m: usize) -> Result<Self> {
        let (n, d) = x.shape();
        let words = m.div_ceil(64);
        let block = (BLOCK_ENTRIES / m.max(1)).clamp(1, n.max(1));
        let size = std::mem::size_of::<T>();
        crate::memory::reserve(
            || format!("matrix-free NTK of {n} samples (masks, {m} x {block} and {m} x {d} work matrices)"),
            &[
                crate::memory::bytes_of(&[n, words], 8),
                crate::memory::bytes_of(&[m, block], size),
                crate::memory::bytes_of(&[m, d], size),
            ],
        )?;
        Ok(EmpiricalNtk {
            x,
            m,
            words,
            masks: vec![0; n * words],
            block,
            work: DMatrix::zeros(m, block),
            direction: DMatrix::zeros(m, d),
        })
    }

    /// The operator whose masks are the signs of the m × n pre-activations
    /// `p` (`P = W Xᵀ`, or its kernel-space sum `P_0 + B K`) that a training
    /// loop already holds: no GEMM to redo.
    pub(crate) fn from_preactivations(x: &'a DMatrix<T>, p: Preactivations<'_, T>) -> Result<Self> {
        let mut op = Self::allocate(x, p.shape().0)?;
        pack_activations(p, &mut op.masks);
        Ok(op)
    }

    /// The fraction of the n·m activations that are on (a cheap check that
    /// the masks are what the model's weights give).
    pub fn active_fraction(&self) -> f64 {
        let on: u64 = self.masks.iter().map(|w| u64::from(w.count_ones())).sum();
        on as f64 / (self.x.nrows() as f64 * self.m as f64)
    }
}

impl<T: Float> KernelOperator for EmpiricalNtk<'_, T> {
    fn order(&self) -> usize {
        self.x.nrows()
    }

    fn apply(&mut self, v: &[f64], out: &mut [f64]) -> Result<()> {
        let (n, m, words) = (self.x.nrows(), self.m, self.words);
        check_product(n, v, out)?;
        let ld = self.work.nrows();
        let mut i0 = 0;
        // G = Σ_blocks C_b X_b with C_ir = v_i S_ir.
        while i0 < n {
            let i1 = (i0 + self.block).min(n);
            let masks = &self.masks[i0 * words..i1 * words];
            let fill = |(j, c): (usize, &mut [T])| {
                let (vi, w) = (T::cast(v[i0 + j]), &masks[j * words..(j + 1) * words]);
                for (r, cr) in c.iter_mut().enumerate() {
                    *cr = if w[r / 64] >> (r % 64) & 1 == 1 { vi } else { T::zero() };
                }
            };
            let work = &mut self.work.as_mut_slice()[..m * (i1 - i0)];
            if parallel(work.len()) {
                work.par_chunks_mut(m).enumerate().for_each(fill);
            } else {
                work.chunks_mut(m).enumerate().for_each(fill);
            }
            let c = Operand::n(&self.work).columns(0, i1 - i0);
            let beta = if i0 == 0 { T::zero() } else { T::one() };
            gemm(T::one(), c, Operand::n(self.x).rows(i0, i1), beta, &mut self.direction);
            i0 = i1;
        }
        // out_i = (1/m) Σ_r S_ir (G X_bᵀ)_ri.
        let inv_m = 1.0 / m as f64;
        let mut i0 = 0;
        while i0 < n {
            let i1 = (i0 + self.block).min(n);
            let xb = Operand::n(self.x).rows(i0, i1).transposed();
            raw_gemm(
                self.work.as_mut_slice(),
                ld,
                T::one(),
                Operand::n(&self.direction),
                xb,
                T::zero(),
            );
            let masks = &self.masks[i0 * words..i1 * words];
            let work = &self.work.as_slice()[..m * (i1 - i0)];
            let reduce = |(j, (q, o)): (usize, (&[T], &mut f64))| {
                let w = &masks[j * words..(j + 1) * words];
                let mut acc = 0.0;
                for (r, &qr) in q.iter().enumerate() {
                    if w[r / 64] >> (r % 64) & 1 == 1 {
                        acc += qr.to_f64();
                    }
                }
                *o = acc * inv_m;
            };
            let out = &mut out[i0..i1];
            if parallel(work.len()) {
                work.par_chunks(m).zip(out.par_iter_mut()).enumerate().for_each(reduce);
            } else {
                work.chunks(m).zip(out.iter_mut()).enumerate().for_each(reduce);
            }
            i0 = i1;
        }
        Ok(())
    }
}

/// The infinite-width NTK H∞ of the rows of X (see [`super::infinite_width_gram`]
/// for the formula) as an operator that never forms it: each product
/// recomputes blocks of b columns of X Xᵀ (one GEMM of 2 n b d flops), maps
/// them to H∞ entries and multiplies, 2 n² d flops and n² arccos per
/// product in all, with one n × b work matrix, b = ⌊[`BLOCK_ENTRIES`] / n⌋.
pub struct InfiniteWidthNtk<'a, T: Float> {
    x: &'a DMatrix<T>,
    norms: Vec<f64>,
    block: usize,
    work: DMatrix<T>,
}

impl<'a, T: Float> InfiniteWidthNtk<'a, T> {
    /// The operator of H∞ on `x` (n × d, one sample a row).
    ///
    /// # Errors
    /// [`Error::ShapeMismatch`] for an empty `x`, [`Error::NonFinite`] for
    /// NaN or infinite entries, [`Error::TooLarge`] beyond the memory budget.
    pub fn new(x: &'a DMatrix<T>) -> Result<Self> {
        super::check_kernel_inputs(x)?;
        let n = x.nrows();
        let block = (BLOCK_ENTRIES / n).clamp(1, n);
        crate::memory::reserve(
            || format!("matrix-free infinite-width NTK of {n} samples ({n} x {block} work matrix)"),
            &[crate::memory::bytes_of(&[n, block], std::mem::size_of::<T>())],
        )?;
        let norms = x
            .row_iter()
            .map(|r| r.iter().map(|v| v.to_f64().powi(2)).sum::<f64>().sqrt())
            .collect();
        Ok(InfiniteWidthNtk {
            x,
            norms,
            block,
            work: DMatrix::zeros(n, block),
        })
    }
}

impl<T: Float> KernelOperator for InfiniteWidthNtk<'_, T> {
    fn order(&self) -> usize {
        self.x.nrows()
    }

    fn apply(&mut self, v: &[f64], out: &mut [f64]) -> Result<()> {
        let n = self.x.nrows();
        check_product(n, v, out)?;
        let norms = &self.norms;
        let mut j0 = 0;
        while j0 < n {
            let j1 = (j0 + self.block).min(n);
            // Columns j0..j1 of X Xᵀ: X X_bᵀ (n × b).
            let xb = Operand::n(self.x).rows(j0, j1).transposed();
            raw_gemm(self.work.as_mut_slice(), n, T::one(), Operand::n(self.x), xb, T::zero());
            // out_j = Σ_i H∞_ij v_i (H∞ symmetric: column j is row j).
            let reduce = |(jj, (k, o)): (usize, (&[T], &mut f64))| {
                let j = j0 + jj;
                *o = k
                    .iter()
                    .zip(v)
                    .enumerate()
                    .map(|(i, (&kij, &vi))| super::infinite_width_entry(kij.to_f64(), norms[i], norms[j], i == j) * vi)
                    .sum();
            };
            let work = &self.work.as_slice()[..n * (j1 - j0)];
            let out = &mut out[j0..j1];
            if parallel(work.len()) {
                work.par_chunks(n).zip(out.par_iter_mut()).enumerate().for_each(reduce);
            } else {
                work.chunks(n).zip(out.iter_mut()).enumerate().for_each(reduce);
            }
            j0 = j1;
        }
        Ok(())
    }
}

/// Options of [`lanczos`].
#[derive(Clone, Copy, Debug, PartialEq)]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
pub struct LanczosOptions {
    /// Most products H v to spend (default 300; capped at n, where the
    /// result is exact to rounding).
    pub max_products: usize,
    /// λ_max counts as converged when its residual bound is at most this
    /// times λ_max (default 1e-8).
    pub lambda_max_tolerance: f64,
    /// λ_min counts as converged when its residual bound is at most this
    /// times λ_min, or 1e-14 · λ_max for a (numerically) singular kernel
    /// (default 1e-6).
    pub lambda_min_tolerance: f64,
}

impl Default for LanczosOptions {
    fn default() -> Self {
        LanczosOptions {
            max_products: 300,
            lambda_max_tolerance: 1e-8,
            lambda_min_tolerance: 1e-6,
        }
    }
}

/// What [`lanczos`] found: the extreme eigenvalue estimates with rigorous
/// error bounds, and the Krylov picture of the start vector.
///
/// The Ritz values θ_j and the start vector's coordinates c_j = ‖q‖ s_1j on
/// the Ritz vectors are the k-point Gauss quadrature of q's spectral measure
/// under H: Σ_j c_j² p(θ_j) = qᵀ p(H) q exactly for every polynomial p of
/// degree ≤ 2k − 1. A momentum method's residual after t steps is
/// ξ_t = P_t(H) ξ_0 with P_t of degree t, so, started at q = ξ_0,
/// `ModalResidual::from_coordinates(ritz_values, start_coordinates)` (in
/// [`crate::theory`]) predicts the linearized losses ½‖ξ_t‖² *exactly* (to
/// rounding) for t < k = `products`, and approximately beyond.
#[derive(Clone, Debug, PartialEq)]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
#[non_exhaustive]
pub struct KrylovSpectrum {
    /// The smallest Ritz value θ_min ≥ λ_min(H).
    pub lambda_min: f64,
    /// The largest Ritz value θ_max ≤ λ_max(H).
    pub lambda_max: f64,
    /// Residual bound ‖H y − θ_min y‖: an eigenvalue of H lies within it of
    /// `lambda_min` (for the smallest one: when the start vector is not
    /// orthogonal to its eigenvector, which a random start makes certain).
    pub lambda_min_error_bound: f64,
    /// Residual bound of `lambda_max`, in the same sense.
    pub lambda_max_error_bound: f64,
    /// Products H v spent.
    pub products: usize,
    /// Whether both extremes met the tolerances of [`LanczosOptions`] (or
    /// the Krylov space became invariant: then the Ritz values are
    /// eigenvalues).
    pub converged: bool,
    ritz_values: Vec<f64>,
    start_coordinates: Vec<f64>,
}

impl KrylovSpectrum {
    /// The Ritz values θ_1 ≤ … ≤ θ_k.
    pub fn ritz_values(&self) -> &[f64] {
        &self.ritz_values
    }

    /// The start vector's coordinates c_j = ‖q‖ s_1j on the Ritz vectors
    /// (Σ_j c_j² = ‖q‖²).
    pub fn start_coordinates(&self) -> &[f64] {
        &self.start_coordinates
    }
}

/// The extreme eigenvalues of the kernel `h` by the Lanczos iteration with
/// full re-orthogonalization, from products `h v` only, and the Krylov
/// picture of `start` (see [`KrylovSpectrum`]).
///
/// `start`: the start vector (e.g. the initial residual u_0 − y, for the
/// predicted trajectory); `None` takes a fixed pseudo-random vector
/// (deterministic). The iteration stops when both extremes meet the
/// tolerances of `options`, or after `options.max_products` products
/// (`converged` false; the bounds then say how far each estimate may be).
/// Besides the products it holds the Krylov basis, n f64 per product.
///
/// # Errors
/// [`Error::InvalidParameter`] for a zero or non-positive `max_products`,
/// tolerances outside (0, 1), or a zero start vector;
/// [`Error::ShapeMismatch`] / [`Error::NonFinite`] for a bad start vector;
/// [`Error::TooLarge`] when the basis exceeds the memory budget; and any
/// error of `h`'s products.
///
/// # Examples
/// ```
/// use nalgebra::DMatrix;
/// use ntk_momentum::ntk::{lanczos, LanczosOptions};
///
/// // diag(1, 2, ..., 500): extremes 1 and 500.
/// let mut h = DMatrix::<f64>::from_diagonal(&nalgebra::DVector::from_fn(500, |i, _| (i + 1) as f64));
/// let k = lanczos(&mut h, None, LanczosOptions::default())?;
/// assert!((k.lambda_max - 500.0).abs() <= k.lambda_max_error_bound.max(1e-9));
/// assert!((k.lambda_min - 1.0).abs() <= 1e-6);
/// # Ok::<(), ntk_momentum::Error>(())
/// ```
pub fn lanczos<K: KernelOperator + ?Sized>(
    h: &mut K,
    start: Option<&DVector<f64>>,
    options: LanczosOptions,
) -> Result<KrylovSpectrum> {
    let n = h.order();
    if n == 0 {
        return Err(Error::shape("h", "an operator of order n >= 1", "order 0"));
    }
    if options.max_products == 0 {
        return Err(Error::invalid("max_products", options.max_products, "at least 1"));
    }
    for (name, t) in [
        ("lambda_max_tolerance", options.lambda_max_tolerance),
        ("lambda_min_tolerance", options.lambda_min_tolerance),
    ] {
        if !(t > 0.0 && t < 1.0) {
            return Err(Error::invalid(name, t, "in (0, 1)"));
        }
    }
    let start = match start {
        Some(q) => {
            if q.len() != n {
                return Err(Error::shape(
                    "start",
                    format!("{n} entries"),
                    format!("{} entries", q.len()),
                ));
            }
            if let Some(i) = first_non_finite(q.as_slice()) {
                return Err(Error::NonFinite {
                    what: "start".into(),
                    location: format!("entry {i}, value {}", q[i]),
                });
            }
            if q.iter().all(|&v| v == 0.0) {
                return Err(Error::invalid("start", "the zero vector", "a non-zero vector"));
            }
            q.as_slice().to_vec()
        }
        None => default_lanczos_start(n),
    };
    let products = options.max_products.min(n);
    crate::memory::reserve(
        || format!("Lanczos basis ({n} x {products})"),
        &[crate::memory::bytes_of(&[n, products + 2], 8)],
    )?;
    let norm = start.iter().map(|v| v * v).sum::<f64>().sqrt();
    let settings = LanczosSettings {
        max_products: products,
        tolerance_max: options.lambda_max_tolerance,
        tolerance_min: options.lambda_min_tolerance,
        floor: 1e-14,
    };
    let o = run_lanczos(n, |v, out| h.apply(v, out), &start, settings)?;
    let k = o.ritz_values.len();
    Ok(KrylovSpectrum {
        lambda_min: o.ritz_values[0],
        lambda_max: o.ritz_values[k - 1],
        lambda_min_error_bound: o.residuals[0],
        lambda_max_error_bound: o.residuals[k - 1],
        products: o.products,
        converged: o.converged,
        start_coordinates: o.first_components.iter().map(|s| s * norm).collect(),
        ritz_values: o.ritz_values,
    })
}
