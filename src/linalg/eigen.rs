//! Dense symmetric eigendecompositions by faer's self-adjoint solver
//! (Householder tridiagonalization, then divide and conquer), run
//! sequentially so that the result is bit-identical on every run and for
//! any thread count.

use faer::dyn_stack::{MemBuffer, MemStack};
use faer::linalg::evd::{self_adjoint_evd, self_adjoint_evd_scratch, ComputeEigenvectors};
use nalgebra::DMatrix;

use crate::{Error, Result};

/// Eigenvalues, ascending, and (if `vectors`) the orthonormal eigenvectors
/// as columns, of the symmetric matrix `h` (its lower triangle is read).
pub(crate) fn symmetric_eigen(h: &DMatrix<f64>, vectors: bool) -> Result<(Vec<f64>, Option<DMatrix<f64>>)> {
    let n = h.nrows();
    let a = faer::MatRef::from_column_major_slice(h.as_slice(), n, h.ncols());
    let compute = if vectors {
        ComputeEigenvectors::Yes
    } else {
        ComputeEigenvectors::No
    };
    let par = faer::Par::Seq;
    let mut memory =
        MemBuffer::try_new(self_adjoint_evd_scratch::<f64>(n, compute, par, Default::default())).map_err(|_| {
            Error::Unsupported(format!(
                "no memory for the work space of a {n} x {n} eigendecomposition"
            ))
        })?;
    let mut s = faer::diag::Diag::<f64>::zeros(n);
    let mut u = vectors.then(|| faer::Mat::<f64>::zeros(n, n));
    self_adjoint_evd(
        a,
        s.as_mut(),
        u.as_mut().map(|u| u.as_mut()),
        par,
        MemStack::new(&mut memory),
        Default::default(),
    )
    .map_err(|e| Error::Unsupported(format!("the symmetric eigensolver did not converge ({e:?})")))?;
    let values: Vec<f64> = (0..n).map(|i| s[i]).collect();
    let vectors = u.map(|u| DMatrix::from_fn(n, n, |i, j| u[(i, j)]));
    Ok((values, vectors))
}
