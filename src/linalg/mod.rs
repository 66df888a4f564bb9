//! The dense products behind the model: one strided GEMM entry point over
//! nalgebra's column-major storage, and the GEMM thread count.
//!
//! All large products of the crate go through [`gemm`], which calls the
//! `gemm` crate (runtime-dispatched AVX2/AVX-512 kernels, multi-threaded with
//! rayon). Transposes are expressed through strides, so no operand is
//! copied. The thread count splits the output, never the inner dimension:
//! results are bit-identical for any number of threads.

use std::sync::atomic::{AtomicUsize, Ordering};

pub(crate) use crate::threads::{gemm_threads, parallel};

use nalgebra::DMatrix;

use crate::Float;

mod eigen;
mod lanczos;
mod relu;
#[cfg(feature = "system-blas")]
mod system_blas;
pub(crate) use eigen::symmetric_eigen;
pub(crate) use lanczos::{
    default_start as default_lanczos_start, lanczos, symmetric_extremes, LanczosSettings, EXTREMES_MAX_PRODUCTS,
};
pub(crate) use relu::{
    co_activation_from_bits, co_activation_kernel, half_squared_distance, pack_activations, relu_outputs,
    residual_weights, Preactivations,
};

/// The library that computes the large matrix products.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum GemmBackend {
    /// The pure-Rust `gemm` crate (the default): results bit-identical for
    /// any thread count.
    Rust,
    /// The system's OpenBLAS through CBLAS (feature `system-blas`, which
    /// links `libopenblas`; Debian: `libopenblas-dev`). Faster than the
    /// `gemm` crate at some shapes on some CPUs (see BENCHMARKS.md); its
    /// results differ from the `gemm` crate's in the last bits.
    SystemBlas,
}

static GEMM_BACKEND: AtomicUsize = AtomicUsize::new(0);

/// Chooses the library of the large matrix products for the whole process
/// (default [`GemmBackend::Rust`]).
///
/// # Errors
/// [`crate::Error::InvalidParameter`] for [`GemmBackend::SystemBlas`] when
/// the crate was built without the feature `system-blas`.
///
/// # Examples
/// ```
/// use ntk_momentum::{gemm_backend, set_gemm_backend, GemmBackend};
///
/// set_gemm_backend(GemmBackend::Rust)?;
/// assert_eq!(gemm_backend(), GemmBackend::Rust);
/// if !cfg!(feature = "system-blas") {
///     assert!(set_gemm_backend(GemmBackend::SystemBlas).is_err());
/// }
/// # Ok::<(), ntk_momentum::Error>(())
/// ```
pub fn set_gemm_backend(backend: GemmBackend) -> crate::Result<()> {
    if backend == GemmBackend::SystemBlas && !cfg!(feature = "system-blas") {
        return Err(crate::Error::invalid(
            "gemm backend",
            "SystemBlas",
            "Rust (SystemBlas needs the crate feature `system-blas`)",
        ));
    }
    GEMM_BACKEND.store(usize::from(backend == GemmBackend::SystemBlas), Ordering::Relaxed);
    Ok(())
}

/// The library of the large matrix products ([`set_gemm_backend`]).
pub fn gemm_backend() -> GemmBackend {
    if GEMM_BACKEND.load(Ordering::Relaxed) == 1 {
        GemmBackend::SystemBlas
    } else {
        GemmBackend::Rust
    }
}

/// A read-only matrix operand: a column-major nalgebra matrix, optionally
/// transposed (by swapping strides).
#[derive(Clone, Copy)]
pub(crate) struct Operand<'a, T> {
    data: &'a [T],
    rows: usize,
    cols: usize,
    row_stride: isize,
    col_stride: isize,
}

impl<'a, T> Operand<'a, T> {
    /// `a` as stored.
    pub(crate) fn n(a: &'a DMatrix<T>) -> Self {
        Operand {
            data: a.as_slice(),
            rows: a.nrows(),
            cols: a.ncols(),
            row_stride: 1,
            col_stride: a.nrows() as isize,
        }
    }
    /// `aᵀ`.
    pub(crate) fn t(a: &'a DMatrix<T>) -> Self {
        Operand {
            data: a.as_slice(),
            rows: a.ncols(),
            cols: a.nrows(),
            row_stride: a.nrows() as isize,
            col_stride: 1,
        }
    }
}

impl<T> Operand<'_, T> {
    /// Rows `i0..i1` of this operand.
    pub(crate) fn rows(self, i0: usize, i1: usize) -> Self {
        let start = if i0 < self.rows {
            i0 * self.row_stride as usize
        } else {
            0
        };
        Operand {
            data: &self.data[start..],
            rows: i1 - i0,
            ..self
        }
    }
    /// Columns `j0..j1` of this operand.
    pub(crate) fn columns(self, j0: usize, j1: usize) -> Self {
        let start = if j0 < self.cols {
            j0 * self.col_stride as usize
        } else {
            0
        };
        Operand {
            data: &self.data[start..],
            cols: j1 - j0,
            ..self
        }
    }
    /// The transpose of this operand.
    pub(crate) fn transposed(self) -> Self {
        Operand {
            rows: self.cols,
            cols: self.rows,
            row_stride: self.col_stride,
            col_stride: self.row_stride,
            ..self
        }
    }
}

/// `c ← α a b + β c`, in the BLAS order of arguments and meaning; with
/// `β = 0` the old `c` is not read (so it may hold anything, NaN included).
///
/// # Panics
/// On inconsistent shapes: callers validate user input before this point,
/// so a panic here is a bug in the crate.
pub(crate) fn gemm<T: Float>(alpha: T, a: Operand<'_, T>, b: Operand<'_, T>, beta: T, c: &mut DMatrix<T>) {
    assert!(
        a.cols == b.rows && c.nrows() == a.rows && c.ncols() == b.cols,
        "gemm shapes: ({} x {}) * ({} x {}) into {} x {}",
        a.rows,
        a.cols,
        b.rows,
        b.cols,
        c.nrows(),
        c.ncols()
    );
    let ld = c.nrows();
    raw_gemm(c.as_mut_slice(), ld, alpha, a, b, beta);
}

/// `dst ← α a b + β dst` for the column-major block that starts at
/// `dst[0]` with leading dimension `ld` (`dst` not read when `β = 0`).
pub(crate) fn raw_gemm<T: Float>(dst: &mut [T], ld: usize, alpha: T, a: Operand<'_, T>, b: Operand<'_, T>, beta: T) {
    let (m, n, k) = (a.rows, b.cols, a.cols);
    if m == 0 || n == 0 {
        return;
    }
    // The block's last entry must lie inside `dst`; operands were built from
    // whole matrices, so their extents lie inside their slices.
    assert!(
        m <= ld && (n - 1) * ld + m <= dst.len(),
        "gemm destination out of bounds"
    );
    #[cfg(feature = "system-blas")]
    if gemm_backend() == GemmBackend::SystemBlas && system_blas::gemm(dst, ld, alpha, a, b, beta) {
        return;
    }
    let threads = gemm_threads();
    let parallelism = if threads > 1 {
        gemm::Parallelism::Rayon(threads)
    } else {
        gemm::Parallelism::None
    };
    // SAFETY: the destination block and both operands lie inside their
    // slices (asserted above / by construction); `dst` is exclusively
    // borrowed, so it aliases neither operand.
    unsafe {
        gemm::gemm(
            m,
            n,
            k,
            dst.as_mut_ptr(),
            ld as isize,
            1,
            // The gemm crate computes dst ← alpha_dst dst + beta_ab (a b),
            // reading dst only when told to.
            beta != T::zero(),
            a.data.as_ptr(),
            a.col_stride,
            a.row_stride,
            b.data.as_ptr(),
            b.col_stride,
            b.row_stride,
            beta,
            alpha,
            false,
            false,
            false,
            parallelism,
        );
    }
}

/// `out ← aᵀ a`, the Gram matrix of the columns of `a` (k x n), computed
/// block-column by block-column on the lower triangle and mirrored: about
/// 5/8 of the flops of a full product, like BLAS `syrk`.
pub(crate) fn gram_of_columns<T: Float>(a: Operand<'_, T>, out: &mut DMatrix<T>) {
    let n = a.cols;
    assert!(out.nrows() == n && out.ncols() == n, "gram output must be {n} x {n}");
    // Four block columns: the lower triangle costs (1/2 + 1/8) of the full product.
    let block = n.div_ceil(4).max(128);
    let mut j0 = 0;
    while j0 < n {
        let j1 = (j0 + block).min(n);
        // out[j0.., j0..j1] = a[:, j0..]ᵀ a[:, j0..j1]
        let lhs = a.columns(j0, n).transposed();
        let rhs = a.columns(j0, j1);
        let start = j0 + j0 * n;
        raw_gemm(&mut out.as_mut_slice()[start..], n, T::one(), lhs, rhs, T::zero());
        j0 = j1;
    }
    // Mirror the lower triangle into the upper one.
    for j in 0..n {
        for i in 0..j {
            out[(i, j)] = out[(j, i)];
        }
    }
}
