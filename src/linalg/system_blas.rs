//! The optional system-BLAS path of the large products (feature
//! `system-blas`): CBLAS `sgemm`/`dgemm` of the system's OpenBLAS (Debian:
//! `libopenblas-dev`), chosen at run time by
//! [`set_gemm_backend`](super::set_gemm_backend).

use std::any::TypeId;
use std::ffi::c_int;
use std::sync::atomic::{AtomicUsize, Ordering};

use super::Operand;
use crate::Float;

const COL_MAJOR: c_int = 102;
const NO_TRANS: c_int = 111;
const TRANS: c_int = 112;

#[link(name = "openblas")]
extern "C" {
    fn cblas_sgemm(
        layout: c_int,
        trans_a: c_int,
        trans_b: c_int,
        m: c_int,
        n: c_int,
        k: c_int,
        alpha: f32,
        a: *const f32,
        lda: c_int,
        b: *const f32,
        ldb: c_int,
        beta: f32,
        c: *mut f32,
        ldc: c_int,
    );
    fn cblas_dgemm(
        layout: c_int,
        trans_a: c_int,
        trans_b: c_int,
        m: c_int,
        n: c_int,
        k: c_int,
        alpha: f64,
        a: *const f64,
        lda: c_int,
        b: *const f64,
        ldb: c_int,
        beta: f64,
        c: *mut f64,
        ldc: c_int,
    );
    fn openblas_set_num_threads(threads: c_int);
}

/// `(transpose flag, leading dimension)` of an operand stored column-major
/// (unit row stride) or as a transpose (unit column stride); `None` for
/// other strides or sizes beyond CBLAS's `int`.
fn layout<T>(a: &Operand<'_, T>) -> Option<(c_int, c_int)> {
    let fits = |v: usize| c_int::try_from(v.max(1)).ok();
    if a.row_stride == 1 {
        let ld = usize::try_from(a.col_stride).ok()?.max(a.rows);
        Some((NO_TRANS, fits(ld)?))
    } else if a.col_stride == 1 {
        let ld = usize::try_from(a.row_stride).ok()?.max(a.cols);
        Some((TRANS, fits(ld)?))
    } else {
        None
    }
}

/// `dst ← α a b + β dst` by CBLAS (`dst` column-major with leading
/// dimension `ld`); `false` when the operands do not fit CBLAS (the caller
/// then uses the gemm crate). With β = 0, `dst` is not read.
pub(super) fn gemm<T: Float>(
    dst: &mut [T],
    ld: usize,
    alpha: T,
    a: Operand<'_, T>,
    b: Operand<'_, T>,
    beta: T,
) -> bool {
    let (m, n, k) = (a.rows, b.cols, a.cols);
    let (Some((ta, lda)), Some((tb, ldb))) = (layout(&a), layout(&b)) else {
        return false;
    };
    let (Ok(mi), Ok(ni), Ok(ki), Ok(ldc)) = (
        c_int::try_from(m),
        c_int::try_from(n),
        c_int::try_from(k),
        c_int::try_from(ld.max(1)),
    ) else {
        return false;
    };
    set_threads(super::gemm_threads());
    // SAFETY: the operands and the destination block lie inside their
    // slices (checked by the caller, `raw_gemm`); T is f32 or f64 (Float is
    // sealed), matched by TypeId before each pointer cast.
    unsafe {
        if TypeId::of::<T>() == TypeId::of::<f64>() {
            cblas_dgemm(
                COL_MAJOR,
                ta,
                tb,
                mi,
                ni,
                ki,
                alpha.to_f64(),
                a.data.as_ptr().cast(),
                lda,
                b.data.as_ptr().cast(),
                ldb,
                beta.to_f64(),
                dst.as_mut_ptr().cast(),
                ldc,
            );
        } else {
            cblas_sgemm(
                COL_MAJOR,
                ta,
                tb,
                mi,
                ni,
                ki,
                alpha.to_f64() as f32,
                a.data.as_ptr().cast(),
                lda,
                b.data.as_ptr().cast(),
                ldb,
                beta.to_f64() as f32,
                dst.as_mut_ptr().cast(),
                ldc,
            );
        }
    }
    true
}

/// Tells OpenBLAS the thread count when it changed.
fn set_threads(threads: usize) {
    static LAST: AtomicUsize = AtomicUsize::new(0);
    if LAST.swap(threads, Ordering::Relaxed) != threads {
        // SAFETY: a plain setter of the library's pool size.
        unsafe { openblas_set_num_threads(c_int::try_from(threads).unwrap_or(c_int::MAX)) };
    }
}
