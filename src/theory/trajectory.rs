//! The predicted residual and loss trajectories, by the exact linear
//! recursion in the eigenbasis of H.

use nalgebra::{DMatrix, DVector};

use super::{check_spectrum, Method};
use crate::optim::hyper::{lr_at, momentum_at};
use crate::{Error, Result, Schedule};

/// Largest |VᵀV − I| entry accepted for the eigenvectors.
const ORTHONORMALITY_TOLERANCE: f64 = 1e-6;

/// The per-mode recursion of a method under schedules η_t, β_t (the
/// displacement convention, [`crate::Convention::Displacement`]):
/// c_1 = f_0(λ) c_0, then c_{t+1} = a_t(λ) c_t − b_t(λ) c_{t−1} with
///
/// ```text
/// GD : f = 1 − η_0λ,          a_t = 1 − η_tλ,            b_t = 0
/// HB : f = 1 − η_0λ,          a_t = 1 + β_t − η_tλ,      b_t = β_t
/// NAG: f = 1 − (1 + β_0)η_0λ, a_t = (1 + β_t)(1 − η_tλ), b_t = β_t(1 − η_tλ)
/// ```
pub(super) struct ModeRecursion<'a> {
    method: Method,
    lr: Schedule,
    momentum: Schedule,
    eigenvalues: &'a [f64],
}

impl<'a> ModeRecursion<'a> {
    /// Checks (η_t, β_t) for every t < `steps` before any work (and for
    /// t = 0 when `steps` = 0, so invalid constants are refused).
    pub(super) fn new(
        method: Method,
        lr: Schedule,
        momentum: Schedule,
        eigenvalues: &'a [f64],
        steps: usize,
    ) -> Result<Self> {
        let recursion = ModeRecursion {
            method,
            lr,
            momentum,
            eigenvalues,
        };
        for t in 0..steps.max(1) {
            recursion.hyperparameters(t)?;
        }
        Ok(recursion)
    }

    /// (η_t, β_t), validated (η finite and > 0, β in [0, 1)).
    fn hyperparameters(&self, t: usize) -> Result<(f64, f64)> {
        let t = t as u64;
        let lr = lr_at::<f64>(&self.lr, t)?;
        Ok((lr, momentum_at::<f64>(&self.momentum, t)?))
    }

    /// The losses ½‖c_t‖², t = 0..=`steps`, from c_0 = `c0` (+∞ from the
    /// first loss that overflows on).
    pub(super) fn losses(&self, c0: &[f64], steps: usize) -> Result<Vec<f64>> {
        let (mut current, mut previous) = (c0.to_vec(), c0.to_vec());
        let mut losses = Vec::with_capacity(steps + 1);
        losses.push(half_square(&current));
        for t in 0..steps {
            self.advance(t, &mut current, &mut previous)?;
            let loss = half_square(&current);
            if !loss.is_finite() {
                losses.resize(steps + 1, f64::INFINITY);
                break;
            }
            losses.push(loss);
        }
        Ok(losses)
    }

    /// The first t ≤ `budget` with ½‖c_t‖² ≤ `target` (constant η and β:
    /// checked for t = 0 by [`ModeRecursion::new`]), with the loss at that
    /// step (or at `budget` when the target is not reached; +∞ once it
    /// overflows).
    pub(super) fn first_below(&self, c0: &[f64], target: f64, budget: usize) -> Result<(Option<usize>, f64)> {
        let (mut current, mut previous) = (c0.to_vec(), c0.to_vec());
        let mut loss = half_square(&current);
        if loss <= target {
            return Ok((Some(0), loss));
        }
        for t in 0..budget {
            self.advance(t, &mut current, &mut previous)?;
            loss = half_square(&current);
            if loss <= target {
                return Ok((Some(t + 1), loss));
            }
            if !loss.is_finite() {
                return Ok((None, f64::INFINITY));
            }
        }
        Ok((None, loss))
    }

    /// Advances (current, previous) = (c_t, c_{t−1}) to (c_{t+1}, c_t).
    fn advance(&self, t: usize, current: &mut [f64], previous: &mut [f64]) -> Result<()> {
        let (eta, beta) = self.hyperparameters(t)?;
        for ((c, p), &l) in current.iter_mut().zip(previous.iter_mut()).zip(self.eigenvalues) {
            let x = eta * l.max(0.0);
            let next = match (self.method, t) {
                (Method::Nesterov, 0) => (1.0 - (1.0 + beta) * x) * *c,
                (_, 0) | (Method::GradientDescent, _) => (1.0 - x) * *c,
                (Method::HeavyBall, _) => (1.0 + beta - x) * *c - beta * *p,
                (Method::Nesterov, _) => (1.0 + beta) * (1.0 - x) * *c - beta * (1.0 - x) * *p,
            };
            *p = *c;
            *c = next;
        }
        Ok(())
    }
}

/// ½‖c‖².
fn half_square(c: &[f64]) -> f64 {
    0.5 * c.iter().map(|v| v * v).sum::<f64>()
}

/// Validates the inputs of the trajectory functions and returns the initial
/// eigen-coordinates c_0 = Vᵀ ξ_0.
pub(super) fn initial_coordinates(
    eigenvalues: &[f64],
    eigenvectors: &DMatrix<f64>,
    xi0: &DVector<f64>,
) -> Result<Vec<f64>> {
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

/// The checked recursion and the initial eigen-coordinates c_0 = Vᵀ ξ_0 of
/// both trajectory functions.
fn start<'a>(
    method: Method,
    lr: Schedule,
    momentum: Schedule,
    eigenvalues: &'a [f64],
    eigenvectors: &DMatrix<f64>,
    xi0: &DVector<f64>,
    steps: usize,
) -> Result<(ModeRecursion<'a>, Vec<f64>)> {
    let c0 = initial_coordinates(eigenvalues, eigenvectors, xi0)?;
    Ok((ModeRecursion::new(method, lr, momentum, eigenvalues, steps)?, c0))
}

/// The predicted loss trajectory ½‖ξ_t‖², t = 0..=`steps` (entry 0 is the
/// initial loss, as in [`crate::History::losses`]), for plotting against a
/// measured run.
///
/// `eigenvalues[i]` and column i of `eigenvectors` (V, orthonormal columns)
/// are the eigenpairs of H, e.g. from [`crate::ntk::eigendecomposition`]. `lr` and
/// `momentum` are numbers or [`Schedule`]s (η_t, β_t: anything
/// `Into<Schedule>`). With c_0 = Vᵀ ξ_0 every eigen-coordinate follows its
/// exact scalar recursion, including the optimizers' first step
/// (θ_{−1} = θ_0, g_{−1} = 0):
///
/// ```text
/// GD : c_1 = (1 − η_0λ) c_0,          c_{t+1} = (1 − η_tλ) c_t
/// HB : c_1 = (1 − η_0λ) c_0,          c_{t+1} = (1 + β_t − η_tλ) c_t − β_t c_{t−1}
/// NAG: c_1 = (1 − (1 + β_0)η_0λ) c_0, c_{t+1} = (1 + β_t)(1 − η_tλ) c_t − β_t (1 − η_tλ) c_{t−1}
/// ```
///
/// This is the dynamics of the optimizers in their default
/// [`crate::Convention::Displacement`] (identical to the PyTorch convention
/// while η is constant): θ_{t+1} − θ_t = −η_t g_t + β_t (θ_t − θ_{t−1})
/// (− β_t η_t (g_t − g_{t−1}) for NAG), mapped through ξ = J θ − y with
/// g = Jᵀ ξ and H = J Jᵀ. It is exact for a linear model (the test suite
/// checks 1e-9 relative against one trained under a cosine schedule).
///
/// For HB the first step is the recursion with c_{−1} = c_0; for NAG it is not
/// (the gradient correction −βη(g_0 − g_{−1}) uses g_{−1} = 0, not H ξ_0), so
/// NAG's first step is −(1 + β)ηλ c_0. The loss is ½‖V c_t‖² = ½‖c_t‖².
/// Cost O(n² + n · steps). Unstable parameters give growing losses; a loss
/// that overflows is reported as +∞ from then on. For GD `momentum` is
/// validated and ignored. Eigenvalues in [−1e-12 · max|λ|, 0) count as 0.
///
/// # Errors
/// [`Error::InvalidParameter`] if η_t is not finite and > 0 or β_t is not in
/// [0, 1) at some step t < `steps` (naming the step);
/// [`Error::ShapeMismatch`] unless `eigenvectors` is
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
///
/// // A schedule: η = 1 at step 0, then 0.5.
/// let halved = ntk_momentum::optim::Schedule::piecewise(vec![1], vec![1.0, 0.5])?;
/// let losses = predicted_losses(Method::GradientDescent, halved, 0.0, &[1.0, 0.25], &v, &xi0, 2)?;
/// assert!((losses[2] - 0.5 * (0.75_f64 * 0.875).powi(2)).abs() < 1e-15);
/// # Ok::<(), ntk_momentum::Error>(())
/// ```
pub fn predicted_losses(
    method: Method,
    lr: impl Into<Schedule>,
    momentum: impl Into<Schedule>,
    eigenvalues: &[f64],
    eigenvectors: &DMatrix<f64>,
    xi0: &DVector<f64>,
    steps: usize,
) -> Result<Vec<f64>> {
    let (recursion, c0) = start(
        method,
        lr.into(),
        momentum.into(),
        eigenvalues,
        eigenvectors,
        xi0,
        steps,
    )?;
    recursion.losses(&c0, steps)
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
    lr: impl Into<Schedule>,
    momentum: impl Into<Schedule>,
    eigenvalues: &[f64],
    eigenvectors: &DMatrix<f64>,
    xi0: &DVector<f64>,
    steps: usize,
) -> Result<Vec<DVector<f64>>> {
    let lr = lr.into();
    let first_lr = lr.value(0);
    let (recursion, mut current) = start(method, lr, momentum.into(), eigenvalues, eigenvectors, xi0, steps)?;
    let mut previous = current.clone();
    let mut residuals = Vec::with_capacity(steps + 1);
    residuals.push(eigenvectors * DVector::from_column_slice(&current));
    for t in 0..steps {
        recursion.advance(t, &mut current, &mut previous)?;
        if current.iter().any(|c| !c.is_finite()) {
            return Err(Error::invalid(
                "lr",
                first_lr,
                format!("stable parameters: the predicted residual overflowed at step {}", t + 1),
            ));
        }
        residuals.push(eigenvectors * DVector::from_column_slice(&current));
    }
    Ok(residuals)
}
