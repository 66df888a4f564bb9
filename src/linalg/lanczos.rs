//! Extreme eigenvalues of a symmetric operator by the Lanczos iteration
//! with full re-orthogonalization: only products H v are needed, so the
//! operator never has to be formed or decomposed.

use nalgebra::{DMatrix, SymmetricEigen};

/// What the iteration is asked for: at most `max_products` products; λ_max
/// converged when its residual bound is at most `tolerance_max` · θ_max,
/// λ_min when its bound is at most max(`tolerance_min` · |θ_min|,
/// `floor` · θ_max) (the floor keeps a singular or nearly singular operator
/// from asking for an impossible relative accuracy).
#[derive(Clone, Copy, Debug)]
pub(crate) struct LanczosSettings {
    pub(crate) max_products: usize,
    pub(crate) tolerance_max: f64,
    pub(crate) tolerance_min: f64,
    pub(crate) floor: f64,
}

/// The Krylov picture after k products: the Ritz values θ_j of T_k
/// (ascending), the first components s_1j of their eigenvectors (so that
/// the start vector q_1 = Σ_j s_1j y_j over the Ritz vectors y_j), and the
/// residual bounds |β_k s_kj| = ‖H y_j − θ_j y_j‖, each an upper bound on
/// the distance from θ_j to the nearest eigenvalue of H.
#[derive(Clone, Debug)]
pub(crate) struct LanczosOutcome {
    pub(crate) ritz_values: Vec<f64>,
    pub(crate) first_components: Vec<f64>,
    pub(crate) residuals: Vec<f64>,
    pub(crate) products: usize,
    pub(crate) converged: bool,
}

/// Products between convergence checks: every 8 up to 64, then every k/8
/// (the check costs O(k³), a product usually far more).
fn next_check(k: usize) -> usize {
    if k < 64 {
        k + 8 - k % 8
    } else {
        k + k / 8
    }
}

/// Lanczos on the symmetric n × n operator `apply` (y ← H x, may fail) from
/// the start vector `start` (any non-zero vector; normalised here), with at
/// most `settings.max_products` products (capped at n, where the Krylov
/// space is the whole space and the result is exact to rounding).
///
/// The Krylov basis Q is kept and every new vector is orthogonalized against
/// it twice (classical Gram–Schmidt, "twice is enough"), so no ghost
/// eigenvalues appear. It stops when both extreme Ritz values meet the
/// tolerances of [`LanczosSettings`], when the Krylov space is
/// invariant (β_k ≈ 0: the Ritz values are eigenvalues), or after
/// `max_products` products (`converged` false).
pub(crate) fn lanczos<E>(
    n: usize,
    mut apply: impl FnMut(&[f64], &mut [f64]) -> Result<(), E>,
    start: &[f64],
    settings: LanczosSettings,
) -> Result<LanczosOutcome, E> {
    let max_k = settings.max_products.clamp(1, n.max(1));
    let mut basis: Vec<Vec<f64>> = Vec::with_capacity(max_k.min(512));
    let (mut alpha, mut beta) = (Vec::<f64>::new(), Vec::<f64>::new());
    let mut q = start.to_vec();
    normalize(&mut q);
    let mut w = vec![0.0; n];
    let mut check_at = next_check(0).min(max_k);
    loop {
        apply(&q, &mut w)?;
        let a = dot(&q, &w);
        basis.push(std::mem::take(&mut q));
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
        let invariant = norm <= 1e-14 * scale.max(f64::MIN_POSITIVE);
        if k == check_at || k == max_k || invariant {
            let outcome = ritz(&alpha, &beta, if invariant { 0.0 } else { norm }, k);
            let converged = invariant || outcome.converged(settings);
            if converged || k == max_k {
                return Ok(LanczosOutcome { converged, ..outcome });
            }
            check_at = next_check(k).min(max_k);
        }
        beta.push(norm);
        q = w.iter().map(|wi| wi / norm).collect();
    }
}

impl LanczosOutcome {
    /// Whether both extreme Ritz values meet their tolerances.
    fn converged(&self, s: LanczosSettings) -> bool {
        let k = self.ritz_values.len();
        let (low, high) = (self.ritz_values[0], self.ritz_values[k - 1]);
        self.residuals[k - 1] <= s.tolerance_max * high.abs()
            && self.residuals[0] <= (s.tolerance_min * low.abs()).max(s.floor * high.abs())
    }
}

/// The Ritz values, first components and residual bounds of the
/// tridiagonal T_k (diagonal `alpha`, off-diagonal `beta`) with next
/// off-diagonal `next`.
fn ritz(alpha: &[f64], beta: &[f64], next: f64, products: usize) -> LanczosOutcome {
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
    let mut order: Vec<usize> = (0..k).collect();
    order.sort_by(|&a, &b| eig.eigenvalues[a].total_cmp(&eig.eigenvalues[b]));
    LanczosOutcome {
        ritz_values: order.iter().map(|&j| eig.eigenvalues[j]).collect(),
        first_components: order.iter().map(|&j| eig.eigenvectors[(0, j)]).collect(),
        residuals: order
            .iter()
            .map(|&j| (next * eig.eigenvectors[(k - 1, j)]).abs())
            .collect(),
        products,
        converged: false,
    }
}

/// The fixed pseudo-random start vector of the extreme-eigenvalue searches
/// (SplitMix64, entries in [−½, ½)): deterministic results.
pub(crate) fn default_start(n: usize) -> Vec<f64> {
    let mut state = 0x9e37_79b9_7f4a_7c15_u64;
    (0..n)
        .map(|_| {
            state = state.wrapping_add(0x9e37_79b9_7f4a_7c15);
            let mut z = state;
            z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
            z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
            ((z ^ (z >> 31)) >> 11) as f64 / (1u64 << 53) as f64 - 0.5
        })
        .collect()
}

/// (λ_min, λ_max) of the symmetric n × n operator `apply` (y ← H x), to an
/// absolute residual of `tolerance` · |λ|_max, with at most `max_iterations`
/// products, from [`default_start`]. Returns `None` for n = 0.
pub(crate) fn extreme_eigenvalues(
    n: usize,
    mut apply: impl FnMut(&[f64], &mut [f64]),
    tolerance: f64,
    max_iterations: usize,
) -> Option<(f64, f64)> {
    if n == 0 {
        return None;
    }
    let settings = LanczosSettings {
        max_products: max_iterations,
        tolerance_max: tolerance,
        tolerance_min: 0.0,
        floor: tolerance,
    };
    let outcome = lanczos::<std::convert::Infallible>(
        n,
        |x, y| {
            apply(x, y);
            Ok(())
        },
        &default_start(n),
        settings,
    );
    let Ok(o) = outcome;
    Some((o.ritz_values[0], o.ritz_values[o.ritz_values.len() - 1]))
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
