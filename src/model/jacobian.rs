//! Derivatives of the network with respect to its weights: the Jacobian
//! (materialised or as products J v and Jᵀ r) and the empirical NTK Gram
//! matrix J Jᵀ.

use nalgebra::{DMatrix, DVector};

use super::{shape_str, TwoLayerReLU, JACOBIAN_MAX_ENTRIES};
use crate::checks::{check_finite_matrix, first_non_finite};
use crate::linalg::{co_activation_kernel, gemm, gram_of_columns, Operand, Preactivations};
use crate::{Error, Float, Result};

impl<T: Float> TwoLayerReLU<T> {
    /// The Jacobian `J = ∂u/∂vec(W)` (n × md): entry `(i, r·d + k)` is
    /// `(a_r/√m) S_ir x_ik` (column index r·d + k: neuron r, input coordinate
    /// k).
    ///
    /// # Errors
    /// As [`TwoLayerReLU::forward`], and [`Error::TooLarge`] if n·m·d exceeds
    /// [`JACOBIAN_MAX_ENTRIES`] or the memory budget
    /// ([`crate::memory_limit`]).
    pub fn jacobian(&self, x: &DMatrix<T>) -> Result<DMatrix<T>> {
        self.check_inputs(x)?;
        let (n, m, d) = (x.nrows(), self.width(), self.input_dim());
        let entries = n.checked_mul(m).and_then(|v| v.checked_mul(d)).unwrap_or(usize::MAX);
        let bytes = crate::memory::bytes_of(&[n, m, d], std::mem::size_of::<T>());
        if entries > JACOBIAN_MAX_ENTRIES {
            return Err(Error::TooLarge {
                what: format!(
                    "Jacobian ({n} x {}; at most {JACOBIAN_MAX_ENTRIES} entries: use jvp/vjp instead)",
                    m.saturating_mul(d)
                ),
                requested: bytes.unwrap_or(u64::MAX),
                limit: (JACOBIAN_MAX_ENTRIES * std::mem::size_of::<T>()) as u64,
            });
        }
        crate::memory::reserve(
            || format!("Jacobian ({n} x {})", m * d),
            &[bytes, crate::memory::bytes_of(&[m, n], std::mem::size_of::<T>())],
        )?;
        let mut p = DMatrix::zeros(m, n);
        self.preactivations_into(x, &mut p);
        let scale = T::one() / T::cast(m as f64).sqrt();
        let mut j = DMatrix::zeros(n, m * d);
        for r in 0..m {
            let ar = self.output_weights[r] * scale;
            for i in 0..n {
                if p[(r, i)] > T::zero() {
                    for k in 0..d {
                        j[(i, r * d + k)] = ar * x[(i, k)];
                    }
                }
            }
        }
        Ok(j)
    }

    /// The Jacobian-vector product `J v` (n entries) for a direction `v`
    /// (m × d, same layout as `W`), without forming `J`:
    /// `(J v)_i = (1/√m) Σ_r a_r S_ir (v_r · x_i)`.
    ///
    /// # Errors
    /// As [`TwoLayerReLU::forward`], and [`Error::ShapeMismatch`] /
    /// [`Error::NonFinite`] for `v`.
    pub fn jvp(&self, x: &DMatrix<T>, v: &DMatrix<T>) -> Result<DVector<T>> {
        self.check_inputs(x)?;
        if v.shape() != self.weights.shape() {
            return Err(Error::shape("v", shape_str(&self.weights), shape_str(v)));
        }
        check_finite_matrix("v", v)?;
        let (n, m) = (x.nrows(), self.width());
        let mut p = DMatrix::zeros(m, n);
        self.preactivations_into(x, &mut p);
        let mut q = DMatrix::zeros(m, n);
        gemm(T::one(), Operand::n(v), Operand::t(x), T::zero(), &mut q);
        let scale = T::one() / T::cast(m as f64).sqrt();
        Ok(DVector::from_fn(n, |i, _| {
            let mut acc = T::zero();
            for ((&pr, &qr), &a) in p
                .column(i)
                .iter()
                .zip(q.column(i).iter())
                .zip(self.output_weights.iter())
            {
                if pr > T::zero() {
                    acc += a * qr;
                }
            }
            acc * scale
        }))
    }

    /// The vector-Jacobian product `Jᵀ r` (m × d, same layout as `W`) for
    /// `r` (n entries), without forming `J`: `Jᵀ r = Mᵀ X` with
    /// `M_ir = r_i S_ir a_r / √m`. With `r = u − y` it is the gradient.
    ///
    /// # Errors
    /// As [`TwoLayerReLU::forward`], and [`Error::ShapeMismatch`] /
    /// [`Error::NonFinite`] for `r`.
    pub fn vjp(&self, x: &DMatrix<T>, r: &DVector<T>) -> Result<DMatrix<T>> {
        self.check_inputs(x)?;
        if r.len() != x.nrows() {
            return Err(Error::shape(
                "r",
                format!("{} entries (one per row of x)", x.nrows()),
                format!("{} entries", r.len()),
            ));
        }
        if let Some(i) = first_non_finite(r.as_slice()) {
            return Err(Error::NonFinite {
                what: "r".into(),
                location: format!("entry {i}, value {}", r[i]),
            });
        }
        let (n, m) = (x.nrows(), self.width());
        let mut p = DMatrix::zeros(m, n);
        self.preactivations_into(x, &mut p);
        let scale = T::one() / T::cast(m as f64).sqrt();
        for (i, mut col) in p.column_iter_mut().enumerate() {
            let ri = r[i] * scale;
            for (z, &a) in col.iter_mut().zip(self.output_weights.iter()) {
                *z = if *z > T::zero() { ri * a } else { T::zero() };
            }
        }
        let mut g = DMatrix::zeros(m, self.input_dim());
        gemm(T::one(), Operand::n(&p), Operand::n(x), T::zero(), &mut g);
        Ok(g)
    }

    /// The empirical neural tangent kernel `H = J Jᵀ = (X Xᵀ) ∘ (S Sᵀ) / m`
    /// (n × n), in O(n² (d + m)) work with no n × m × d intermediate.
    ///
    /// # Errors
    /// As [`TwoLayerReLU::forward`].
    pub fn ntk_gram(&self, x: &DMatrix<T>) -> Result<DMatrix<T>> {
        self.check_inputs(x)?;
        let (n, m) = (x.nrows(), self.width());
        crate::memory::reserve(
            || format!("NTK Gram matrix ({n} x {n}) and pre-activations ({m} x {n})"),
            &[
                crate::memory::bytes_of(&[m, n], std::mem::size_of::<T>()),
                crate::memory::bytes_of(&[2, n, n], std::mem::size_of::<T>()),
            ],
        )?;
        let mut p = DMatrix::zeros(self.width(), x.nrows());
        self.preactivations_into(x, &mut p);
        Ok(ntk_gram_from_preactivations(x, &p))
    }
}

/// `H = (X Xᵀ) ∘ (Sᵀ S) / m` from the pre-activations `P` (m × n).
fn ntk_gram_from_preactivations<T: Float>(x: &DMatrix<T>, p: &DMatrix<T>) -> DMatrix<T> {
    let n = p.ncols();
    let mut k = DMatrix::zeros(n, n);
    gram_of_columns(Operand::t(x), &mut k);
    let mut h = DMatrix::zeros(n, n);
    co_activation_kernel(Preactivations::One(p), &k, &mut Vec::new(), &mut h);
    h
}
