//! The predicted residual and loss trajectories, by the exact linear
//! recursion in the eigenbasis of H.

use nalgebra::{DMatrix, DVector};

use super::{check_hyperparameters, check_spectrum, Method};
use crate::{Error, Result};

/// Largest |VᵀV − I| entry accepted for the eigenvectors.
const ORTHONORMALITY_TOLERANCE: f64 = 1e-6;

/// Per-mode coefficients: c_1 = first · c_0, then
/// c_{t+1} = a c_t − b c_{t−1}.
struct ModeRecursion {
    a: Vec<f64>,
    b: Vec<f64>,
    first: Vec<f64>,
}

impl ModeRecursion {
    fn new(method: Method, lr: f64, momentum: f64, eigenvalues: &[f64]) -> Self {
        let beta = momentum;
        let n = eigenvalues.len();
        let (mut a, mut b, mut first) = (Vec::with_capacity(n), Vec::with_capacity(n), Vec::with_capacity(n));
        for &l in eigenvalues {
            let x = lr * l.max(0.0);
            let (ai, bi, fi) = match method {
                Method::GradientDescent => (1.0 - x, 0.0, 1.0 - x),
                Method::HeavyBall => ((1.0 + beta) - x, beta, 1.0 - x),
                Method::Nesterov => ((1.0 + beta) * (1.0 - x), beta * (1.0 - x), 1.0 - (1.0 + beta) * x),
            };
            a.push(ai);
            b.push(bi);
            first.push(fi);
        }
        ModeRecursion { a, b, first }
    }

    /// Advances (current, previous) = (c_t, c_{t−1}) to (c_{t+1}, c_t);
    /// `t` is the index of `current`.
    fn advance(&self, t: usize, current: &mut [f64], previous: &mut [f64]) {
        for i in 0..current.len() {
            let next = if t == 0 {
                self.first[i] * current[i]
            } else {
                self.a[i] * current[i] - self.b[i] * previous[i]
            };
            previous[i] = current[i];
            current[i] = next;
        }
    }
}

/// Validates the inputs of the trajectory functions and returns the initial
/// eigen-coordinates c_0 = Vᵀ ξ_0.
fn initial_coordinates(
    lr: f64,
    momentum: f64,
    eigenvalues: &[f64],
    eigenvectors: &DMatrix<f64>,
    xi0: &DVector<f64>,
) -> Result<Vec<f64>> {
    check_hyperparameters(lr, momentum)?;
    check_spectrum(eigenvalues)?;
    let n = eigenvalues.len();
    if eigenvectors.shape() != (n, n) {
        return Err(Error::shape(
            "eigenvectors",
            format!("{n} x {n} (one column per eigenvalue)"),
            format!("{} x {}", eigenvectors.nrows(), eigenvectors.ncols()),
        ));
    }
    if xi0.len() != n {
        return Err(Error::shape(
            "xi0",
            format!("{n} entries"),
            format!("{} entries", xi0.len()),
        ));
    }
    if let Some(k) = eigenvectors.iter().position(|v| !v.is_finite()) {
        return Err(Error::NonFinite {
            what: "eigenvectors".into(),
            location: format!("row {}, column {}", k % n, k / n),
        });
    }
    if let Some(i) = xi0.iter().position(|v| !v.is_finite()) {
        return Err(Error::NonFinite {
            what: "xi0".into(),
            location: format!("entry {i}"),
        });
    }
    let gram = eigenvectors.transpose() * eigenvectors;
    let mut worst = (0.0_f64, 0, 0);
    for j in 0..n {
        for i in 0..n {
            let target = if i == j { 1.0 } else { 0.0 };
            let err = (gram[(i, j)] - target).abs();
            if err > worst.0 {
                worst = (err, i, j);
            }
        }
    }
    if worst.0 > ORTHONORMALITY_TOLERANCE {
        return Err(Error::invalid(
            "eigenvectors",
            format!("a matrix with |(V^T V - I)[{}, {}]| = {:e}", worst.1, worst.2, worst.0),
            "orthonormal columns (|V^T V - I| <= 1e-6 entrywise), as from a symmetric eigendecomposition",
        ));
    }
    Ok(eigenvectors.tr_mul(xi0).as_slice().to_vec())
}

/// The predicted loss trajectory ½‖ξ_t‖², t = 0..=`steps` (entry 0 is the
/// initial loss, as in [`crate::History::losses`]), for plotting against a
/// measured run.
///
/// `eigenvalues[i]` and column i of `eigenvectors` (V, orthonormal columns)
/// are the eigenpairs of H, e.g. from `nalgebra::SymmetricEigen`. With
/// c_0 = Vᵀ ξ_0 every eigen-coordinate follows its exact scalar recursion,
/// including the optimizers' first step (θ_{−1} = θ_0, g_{−1} = 0):
///
/// ```text
/// GD : c_1 = (1 − ηλ) c_0,           c_{t+1} = (1 − ηλ) c_t
/// HB : c_1 = (1 − ηλ) c_0,           c_{t+1} = (1 + β − ηλ) c_t − β c_{t−1}
/// NAG: c_1 = (1 − (1 + β)ηλ) c_0,    c_{t+1} = (1 + β)(1 − ηλ) c_t − β (1 − ηλ) c_{t−1}
/// ```
///
/// For HB the first step is the recursion with c_{−1} = c_0; for NAG it is not
/// (the gradient correction −βη(g_0 − g_{−1}) uses g_{−1} = 0, not H ξ_0), so
/// NAG's first step is −(1 + β)ηλ c_0. The loss is ½‖V c_t‖² = ½‖c_t‖².
/// Cost O(n² + n · steps). Unstable parameters give growing losses; a loss
/// that overflows is reported as +∞ from then on. For GD `momentum` is
/// validated and ignored. Eigenvalues in [−1e-12 · max|λ|, 0) count as 0.
///
/// # Errors
/// As [`super::rate`]; [`Error::ShapeMismatch`] unless `eigenvectors` is
/// n x n and `xi0` has n entries (n = `eigenvalues.len()`);
/// [`Error::NonFinite`] for NaN or infinite entries; and
/// [`Error::InvalidParameter`] if the columns of `eigenvectors` are not
/// orthonormal (|VᵀV − I| > 1e-6 in some entry; checked in O(n³), the order of
/// the eigendecomposition that produced them).
///
/// # Examples
/// ```
/// use nalgebra::{DMatrix, DVector};
/// use ntk_momentum::theory::{predicted_losses, Method};
///
/// // H = diag(1, 0.25): the eigenvectors are the identity.
/// let v = DMatrix::<f64>::identity(2, 2);
/// let xi0 = DVector::from_vec(vec![1.0, 1.0]);
/// let losses = predicted_losses(Method::GradientDescent, 1.0, 0.0, &[1.0, 0.25], &v, &xi0, 3)?;
/// // The first mode is solved in one step; the second shrinks by 3/4 per step.
/// assert_eq!(losses[0], 1.0);
/// assert!((losses[3] - 0.5 * 0.75_f64.powi(6)).abs() < 1e-15);
/// # Ok::<(), ntk_momentum::Error>(())
/// ```
pub fn predicted_losses(
    method: Method,
    lr: f64,
    momentum: f64,
    eigenvalues: &[f64],
    eigenvectors: &DMatrix<f64>,
    xi0: &DVector<f64>,
    steps: usize,
) -> Result<Vec<f64>> {
    let mut current = initial_coordinates(lr, momentum, eigenvalues, eigenvectors, xi0)?;
    let mut previous = current.clone();
    let recursion = ModeRecursion::new(method, lr, momentum, eigenvalues);
    let half_square = |c: &[f64]| 0.5 * c.iter().map(|v| v * v).sum::<f64>();
    let mut losses = Vec::with_capacity(steps + 1);
    losses.push(half_square(&current));
    for t in 0..steps {
        recursion.advance(t, &mut current, &mut previous);
        let loss = half_square(&current);
        if !loss.is_finite() {
            losses.resize(steps + 1, f64::INFINITY);
            break;
        }
        losses.push(loss);
    }
    Ok(losses)
}

/// The predicted residuals ξ_t = V c_t, t = 0..=`steps` (entry 0 is `xi0`
/// itself, to rounding), by the exact eigen-coordinate recursion of
/// [`predicted_losses`]. Cost O(n² · steps) and n · (steps + 1) stored
/// values; prefer [`predicted_losses`] when the loss is all you need.
///
/// # Errors
/// As [`predicted_losses`], and [`Error::InvalidParameter`] (naming `lr`) if a
/// residual overflows: the parameters are unstable, check [`super::rate`].
///
/// # Examples
/// ```
/// use nalgebra::{DMatrix, DVector};
/// use ntk_momentum::theory::{predicted_residuals, Method};
///
/// // H = [[1, 0], [0, 0.5]] and NAG's first step xi_1 = (I - (1 + beta) eta H) xi_0.
/// let v = DMatrix::<f64>::identity(2, 2);
/// let xi0 = DVector::from_vec(vec![1.0, 2.0]);
/// let xi = predicted_residuals(Method::Nesterov, 0.5, 0.5, &[1.0, 0.5], &v, &xi0, 1)?;
/// assert!((xi[1][0] - 0.25).abs() < 1e-15 && (xi[1][1] - 1.25).abs() < 1e-15);
/// # Ok::<(), ntk_momentum::Error>(())
/// ```
pub fn predicted_residuals(
    method: Method,
    lr: f64,
    momentum: f64,
    eigenvalues: &[f64],
    eigenvectors: &DMatrix<f64>,
    xi0: &DVector<f64>,
    steps: usize,
) -> Result<Vec<DVector<f64>>> {
    let mut current = initial_coordinates(lr, momentum, eigenvalues, eigenvectors, xi0)?;
    let mut previous = current.clone();
    let recursion = ModeRecursion::new(method, lr, momentum, eigenvalues);
    let mut residuals = Vec::with_capacity(steps + 1);
    residuals.push(eigenvectors * DVector::from_column_slice(&current));
    for t in 0..steps {
        recursion.advance(t, &mut current, &mut previous);
        if current.iter().any(|c| !c.is_finite()) {
            return Err(Error::invalid(
                "lr",
                lr,
                format!(
                    "stable parameters: the predicted residual overflowed at step {} (momentum = {momentum})",
                    t + 1
                ),
            ));
        }
        residuals.push(eigenvectors * DVector::from_column_slice(&current));
    }
    Ok(residuals)
}
