//! Extreme eigenvalues of a symmetric operator by the Lanczos iteration
//! with full re-orthogonalization: only products H v are needed, so the
//! operator never has to be formed or decomposed.

use nalgebra::{DMatrix, SymmetricEigen};

/// Lanczos iterations between convergence checks grow geometrically from this.
const FIRST_CHECK: usize = 16;

/// (λ_min, λ_max) of the symmetric n × n operator `apply` (y ← H x), to an
/// absolute residual of `tolerance` · |λ|_max, with at most `max_iterations`
/// products (capped at n, where the Krylov space is the whole space and the
/// result is exact to rounding).
///
/// The Krylov basis Q is kept and every new vector is orthogonalized against
/// it twice (classical Gram–Schmidt, "twice is enough"), so no ghost
/// eigenvalues appear. The start vector is a fixed pseudo-random unit vector
/// (deterministic results). Convergence of a Ritz value θ_j is the residual
/// bound |β_k s_{kj}| ≤ tolerance · max|θ|, checked after 16, 32, 64, …
/// iterations. Returns `None` for n = 0.
pub(crate) fn extreme_eigenvalues(
    n: usize,
    mut apply: impl FnMut(&[f64], &mut [f64]),
    tolerance: f64,
    max_iterations: usize,
) -> Option<(f64, f64)> {
    if n == 0 {
        return None;
    }
    let max_k = max_iterations.clamp(1, n);
    let mut basis: Vec<Vec<f64>> = Vec::with_capacity(max_k.min(512));
    let (mut alpha, mut beta) = (Vec::<f64>::new(), Vec::<f64>::new());
    // A fixed pseudo-random start (SplitMix64), normalised.
    let mut state = 0x9e37_79b9_7f4a_7c15_u64;
    let mut q: Vec<f64> = (0..n)
        .map(|_| {
            state = state.wrapping_add(0x9e37_79b9_7f4a_7c15);
            let mut z = state;
            z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
            z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
            ((z ^ (z >> 31)) >> 11) as f64 / (1u64 << 53) as f64 - 0.5
        })
        .collect();
    normalize(&mut q);
    let mut w = vec![0.0; n];
    let mut next_check = FIRST_CHECK.min(max_k);
    loop {
        apply(&q, &mut w);
        let a = dot(&q, &w);
        basis.push(q.clone());
        alpha.push(a);
        // w ← w − Q (Qᵀ w), twice.
        for _ in 0..2 {
            for b in &basis {
                let c = dot(b, &w);
                w.iter_mut().zip(b).for_each(|(wi, bi)| *wi -= c * bi);
            }
        }
        let norm = dot(&w, &w).sqrt();
        let k = alpha.len();
        let scale = alpha.iter().chain(&beta).fold(0.0_f64, |m, v| m.max(v.abs()));
        let breakdown = norm <= 1e-14 * scale.max(f64::MIN_POSITIVE);
        if k == next_check || k == max_k || breakdown {
            let (low, high, converged) = ritz_extremes(&alpha, &beta, norm, tolerance);
            if converged || k == max_k || breakdown {
                return Some((low, high));
            }
            next_check = (2 * k).min(max_k);
        }
        beta.push(norm);
        q.iter_mut().zip(&w).for_each(|(qi, wi)| *qi = wi / norm);
    }
}

/// Smallest and largest eigenvalue of the tridiagonal T_k (diagonal `alpha`,
/// off-diagonal `beta`), and whether both have residual bound
/// |`next` · s_{kj}| ≤ `tolerance` · max|θ|.
fn ritz_extremes(alpha: &[f64], beta: &[f64], next: f64, tolerance: f64) -> (f64, f64, bool) {
    let k = alpha.len();
    let t = DMatrix::from_fn(k, k, |i, j| {
        if i == j {
            alpha[i]
        } else if i + 1 == j {
            beta[i]
        } else if j + 1 == i {
            beta[j]
        } else {
            0.0
        }
    });
    let eig = SymmetricEigen::new(t);
    let (mut lo, mut hi) = (0, 0);
    for j in 0..k {
        if eig.eigenvalues[j] < eig.eigenvalues[lo] {
            lo = j;
        }
        if eig.eigenvalues[j] > eig.eigenvalues[hi] {
            hi = j;
        }
    }
    let scale = eig.eigenvalues.iter().fold(0.0_f64, |m, v| m.max(v.abs()));
    let bound = |j: usize| (next * eig.eigenvectors[(k - 1, j)]).abs();
    let converged = bound(lo) <= tolerance * scale && bound(hi) <= tolerance * scale;
    (eig.eigenvalues[lo], eig.eigenvalues[hi], converged)
}

fn dot(a: &[f64], b: &[f64]) -> f64 {
    a.iter().zip(b).map(|(x, y)| x * y).sum()
}

fn normalize(v: &mut [f64]) {
    let norm = dot(v, v).sqrt();
    v.iter_mut().for_each(|x| *x /= norm);
}

/// Matrices up to this order are decomposed densely by
/// [`symmetric_extremes`]; larger ones go through Lanczos.
pub(crate) const DENSE_EXTREMES_MAX: usize = 128;

/// Most products by `h` [`symmetric_extremes`] spends.
pub(crate) const EXTREMES_MAX_PRODUCTS: usize = 1000;

/// Relative residual tolerance of [`symmetric_extremes`].
pub(crate) const EXTREMES_TOLERANCE: f64 = 1e-10;

/// (λ_min, λ_max) of the symmetric matrix `h` (assumed finite and
/// symmetric; `None` when empty): a dense decomposition up to order
/// [`DENSE_EXTREMES_MAX`], Lanczos with products by `h` beyond.
pub(crate) fn symmetric_extremes<T: crate::Float>(h: &DMatrix<T>) -> Option<(f64, f64)> {
    let n = h.nrows();
    if n == 0 {
        return None;
    }
    if n <= DENSE_EXTREMES_MAX {
        let dense = DMatrix::from_fn(n, n, |i, j| 0.5 * (h[(i, j)].to_f64() + h[(j, i)].to_f64()));
        let values = dense.symmetric_eigenvalues();
        let lo = values.iter().fold(f64::INFINITY, |m, &v| m.min(v));
        let hi = values.iter().fold(f64::NEG_INFINITY, |m, &v| m.max(v));
        return Some((lo, hi));
    }
    let apply = |x: &[f64], y: &mut [f64]| {
        y.iter_mut().for_each(|v| *v = 0.0);
        for (column, &xj) in h.column_iter().zip(x) {
            y.iter_mut()
                .zip(column.iter())
                .for_each(|(yi, &hij)| *yi += hij.to_f64() * xj);
        }
    };
    extreme_eigenvalues(n, apply, EXTREMES_TOLERANCE, EXTREMES_MAX_PRODUCTS)
}
