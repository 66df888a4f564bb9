//! Steps to loss levels from the actual initial residual: the exact
//! linearized step counts, their split into the asymptotic rate and the
//! transient, and the (η, β) that reach a level in the fewest steps.

use std::fmt;

use nalgebra::{DMatrix, DVector};

use super::modes::rate;
use super::trajectory::{initial_coordinates, ModeRecursion};
use super::{check_spectrum, Method};
use crate::{Error, Result, Schedule};

/// The initial residual ξ_0 in the eigenbasis of H: eigenvalues λ_k and
/// coordinates c_k = v_kᵀ ξ_0, so that the loss is ½ Σ_k c_k².
///
/// Build it once ([`ModalResidual::project`] costs O(n³) for its
/// orthonormality check, [`ModalResidual::from_coordinates`] O(n)); every
/// prediction from it is then O(n) per step.
///
/// # Examples
/// ```
/// use ntk_momentum::theory::{Method, ModalResidual};
///
/// // H = diag(1, 0.01), xi_0 = (1, 1): half the loss in a stiff mode, half in a flat one.
/// let r = ModalResidual::from_coordinates(vec![1.0, 0.01], vec![1.0, 1.0])?;
/// assert_eq!(r.initial_loss(), 1.0);
/// // GD at eta = 1 removes the stiff mode in one step: half the loss is gone.
/// assert_eq!(r.steps_to(Method::GradientDescent, 1.0, 0.0, 0.5, 10)?, Some(1));
/// # Ok::<(), ntk_momentum::Error>(())
/// ```
#[derive(Clone, Debug, PartialEq)]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
#[non_exhaustive]
pub struct ModalResidual {
    eigenvalues: Vec<f64>,
    coordinates: Vec<f64>,
}

impl ModalResidual {
    /// c = Vᵀ ξ_0 from the eigenpairs of H (`eigenvalues[k]` with column k
    /// of `eigenvectors`, as from [`crate::ntk::eigendecomposition`]).
    ///
    /// # Errors
    /// As [`super::predicted_losses`]: shapes, non-finite entries, and
    /// eigenvectors that are not orthonormal (|VᵀV − I| > 1e-6 entrywise).
    pub fn project(eigenvalues: &[f64], eigenvectors: &DMatrix<f64>, xi0: &DVector<f64>) -> Result<Self> {
        let coordinates = initial_coordinates(eigenvalues, eigenvectors, xi0)?;
        Ok(ModalResidual {
            eigenvalues: eigenvalues.iter().map(|l| l.max(0.0)).collect(),
            coordinates,
        })
    }

    /// From eigenvalues and the coordinates of ξ_0 on their eigenvectors.
    ///
    /// # Errors
    /// [`Error::InvalidParameter`] for an empty or negative spectrum,
    /// [`Error::ShapeMismatch`] if the lengths differ, [`Error::NonFinite`]
    /// for NaN or infinite entries.
    pub fn from_coordinates(eigenvalues: Vec<f64>, coordinates: Vec<f64>) -> Result<Self> {
        check_spectrum(&eigenvalues)?;
        if coordinates.len() != eigenvalues.len() {
            return Err(Error::shape(
                "coordinates",
                format!("{} entries, one per eigenvalue", eigenvalues.len()),
                format!("{} entries", coordinates.len()),
            ));
        }
        if let Some(i) = coordinates.iter().position(|c| !c.is_finite()) {
            return Err(Error::NonFinite {
                what: "coordinates".into(),
                location: format!("entry {i} (value {})", coordinates[i]),
            });
        }
        Ok(ModalResidual {
            eigenvalues: eigenvalues.iter().map(|l| l.max(0.0)).collect(),
            coordinates,
        })
    }

    /// The eigenvalues λ_k (negative rounding noise set to 0).
    pub fn eigenvalues(&self) -> &[f64] {
        &self.eigenvalues
    }

    /// The coordinates c_k = v_kᵀ ξ_0.
    pub fn coordinates(&self) -> &[f64] {
        &self.coordinates
    }

    /// The largest eigenvalue λ_max.
    pub fn lambda_max(&self) -> f64 {
        self.eigenvalues.iter().fold(0.0, |m, &l| m.max(l))
    }

    /// The smallest eigenvalue λ_min.
    pub fn lambda_min(&self) -> f64 {
        self.eigenvalues.iter().fold(f64::INFINITY, |m, &l| m.min(l))
    }

    /// L_0 = ½ Σ_k c_k².
    pub fn initial_loss(&self) -> f64 {
        0.5 * self.coordinates.iter().map(|c| c * c).sum::<f64>()
    }

    /// The predicted losses ½‖ξ_t‖², t = 0..=`steps`, by the exact per-mode
    /// recursion of [`super::predicted_losses`] (same conventions).
    ///
    /// # Errors
    /// [`Error::InvalidParameter`] if η_t or β_t is out of range at some step.
    pub fn losses(
        &self,
        method: Method,
        lr: impl Into<Schedule>,
        momentum: impl Into<Schedule>,
        steps: usize,
    ) -> Result<Vec<f64>> {
        let recursion = ModeRecursion::new(method, lr.into(), momentum.into(), &self.eigenvalues, steps)?;
        recursion.losses(&self.coordinates, steps)
    }

    /// The first step t ≤ `budget` at which the predicted loss is at most
    /// `loss_fraction` · L_0 (`None` if it is not reached within `budget`
    /// steps), for constant η and β. Stops as soon as the level is reached.
    ///
    /// # Errors
    /// [`Error::InvalidParameter`] unless `loss_fraction` is finite and > 0,
    /// `lr` finite and > 0, `momentum` in [0, 1).
    pub fn steps_to(
        &self,
        method: Method,
        lr: f64,
        momentum: f64,
        loss_fraction: f64,
        budget: usize,
    ) -> Result<Option<usize>> {
        check_fraction(loss_fraction)?;
        let recursion = ModeRecursion::new(method, lr.into(), momentum.into(), &self.eigenvalues, 1)?;
        Ok(recursion
            .first_below(&self.coordinates, loss_fraction * self.initial_loss(), budget)?
            .0)
    }

    /// The steps to `loss_fraction` of L_0, split into what the asymptotic
    /// rate alone predicts and the transient (see [`StepPrediction`]).
    ///
    /// # Errors
    /// As [`ModalResidual::steps_to`].
    ///
    /// # Examples
    /// ```
    /// use ntk_momentum::theory::{Method, ModalResidual};
    ///
    /// // 99 % of the loss in a stiff mode (lambda = 1), 1 % in a flat one (0.01).
    /// let r = ModalResidual::from_coordinates(vec![1.0, 0.01], vec![0.99_f64.sqrt(), 0.1])?;
    /// let p = r.step_prediction(Method::Nesterov, 1.0, 0.8, 1e-2, 10_000)?;
    /// // The stiff mode is gone after two steps (eta lambda = 1 makes both NAG roots 0):
    /// // the level is reached far sooner than the rate alone says.
    /// assert_eq!(p.steps, Some(2));
    /// assert!(p.asymptotic_steps.unwrap() > 10.0 && p.transient_steps.unwrap() < -9.0);
    /// assert!((p.stiff_share - 0.99).abs() < 1e-12);
    /// # Ok::<(), ntk_momentum::Error>(())
    /// ```
    pub fn step_prediction(
        &self,
        method: Method,
        lr: f64,
        momentum: f64,
        loss_fraction: f64,
        budget: usize,
    ) -> Result<StepPrediction> {
        let steps = self.steps_to(method, lr, momentum, loss_fraction, budget)?;
        let rho = rate(method, lr, momentum, &self.eigenvalues)?;
        let asymptotic_steps = (rho > 0.0 && rho < 1.0).then(|| 0.5 * loss_fraction.ln() / rho.ln());
        let transient_steps = match (steps, asymptotic_steps) {
            (Some(s), Some(a)) => Some(s as f64 - a),
            _ => None,
        };
        // Modes whose exponent 1 − |z| is at least twice the asymptotic one.
        let l0 = self.initial_loss();
        let mut stiff = 0.0;
        for (&l, &c) in self.eigenvalues.iter().zip(&self.coordinates) {
            let modulus = rate(method, lr, momentum, &[l])?;
            if 1.0 - modulus >= 2.0 * (1.0 - rho) {
                stiff += 0.5 * c * c;
            }
        }
        Ok(StepPrediction {
            method,
            lr,
            momentum: if method == Method::GradientDescent {
                0.0
            } else {
                momentum
            },
            loss_fraction,
            steps,
            rate: rho,
            asymptotic_steps,
            transient_steps,
            stiff_share: if l0 > 0.0 { stiff / l0 } else { 0.0 },
        })
    }
}

fn check_fraction(loss_fraction: f64) -> Result<()> {
    if loss_fraction.is_finite() && loss_fraction > 0.0 {
        Ok(())
    } else {
        Err(Error::invalid("loss_fraction", loss_fraction, "a finite fraction > 0"))
    }
}

/// Predicted steps to a loss level, and where they come from.
///
/// ```text
/// steps            = first t with L_t <= fraction · L_0     (exact linearized recursion)
/// asymptotic_steps = ln(fraction) / (2 ln ρ)               (the spectral radius ρ alone)
/// transient_steps  = steps − asymptotic_steps
/// ```
///
/// The rate alone describes the loss once only the slowest modes are left.
/// Before that, the modes that decay faster than ρ (stiff ones, for momentum
/// methods those the gradient correction damps) take their share of L_0 with
/// them: a negative `transient_steps` is the number of steps the transient
/// saves, a positive one what oscillations or a critically damped (t + 1)ρᵗ
/// factor cost. `stiff_share` is the share of L_0 on modes whose exponent
/// 1 − |z| is at least twice the asymptotic 1 − ρ.
#[derive(Clone, Copy, Debug, PartialEq)]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
#[non_exhaustive]
pub struct StepPrediction {
    /// The method.
    pub method: Method,
    /// Step size η.
    pub lr: f64,
    /// Momentum β (0 for GD).
    pub momentum: f64,
    /// The loss level, as a fraction of L_0.
    pub loss_fraction: f64,
    /// Exact linearized steps (`None`: not within the budget).
    pub steps: Option<usize>,
    /// The asymptotic rate ρ (spectral radius).
    pub rate: f64,
    /// ln(fraction) / (2 ln ρ) (`None` when ρ ≥ 1 or ρ = 0).
    pub asymptotic_steps: Option<f64>,
    /// `steps − asymptotic_steps`.
    pub transient_steps: Option<f64>,
    /// Share of L_0 on modes at least twice as fast (in exponent) as ρ.
    pub stiff_share: f64,
}

impl fmt::Display for StepPrediction {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let opt = |v: Option<f64>| v.map_or("-".to_string(), |v| format!("{v:+.1}"));
        write!(
            f,
            "{} to {:.0e}: {} steps = {} (rate {:.6}) {} (transient; {:.0} % of L_0 on stiff modes)",
            self.method,
            self.loss_fraction,
            self.steps.map_or("> budget".into(), |s| s.to_string()),
            self.asymptotic_steps.map_or("-".into(), |a| format!("{a:.1}")),
            self.rate,
            opt(self.transient_steps),
            100.0 * self.stiff_share
        )
    }
}

/// The (η, β) a search found to reach a loss level in the fewest predicted
/// steps (see [`best_tuning`]).
#[derive(Clone, Copy, Debug, PartialEq)]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
#[non_exhaustive]
pub struct BestTuning {
    /// The method.
    pub method: Method,
    /// Step size η.
    pub lr: f64,
    /// Momentum β (0 for GD).
    pub momentum: f64,
    /// Predicted steps to the level (`None`: no tuning reached it within the budget).
    pub steps: Option<usize>,
    /// The asymptotic rate ρ at (η, β).
    pub rate: f64,
    /// The stability margin used: η λ_max ≤ (1 − margin) · (η λ_max)_limit(β).
    pub stability_margin: f64,
}

/// Largest momentum the tuning search considers.
const MAX_SEARCH_MOMENTUM: f64 = 0.999;

/// Searches the (η, β) that reach `loss_fraction` of L_0 in the fewest
/// predicted steps (at most `budget`), keeping η λ_max at most (1 −
/// `stability_margin`) times the method's stability limit at that β
/// ([`super::max_stable_lr`]) and β ≤ 0.999 (GD: β = 0).
///
/// The search is deterministic: a 33 × 33 grid over β = 1 − (1 − u)² and
/// η = s · (1 − margin) · limit(β) / λ_max (u, s ∈ (0, 1]), then three
/// rounds of 9 × 9 grids around the best point, each a quarter as wide. Ties
/// in steps go to the lower loss at that step. The predicted steps are the
/// exact linearized ones ([`ModalResidual::steps_to`]); the test suite checks
/// the result against a brute-force grid.
///
/// # Errors
/// [`Error::InvalidParameter`] unless `loss_fraction` is in (0, 1),
/// `budget` ≥ 1 and `stability_margin` in [0, 1); and if λ_max = 0.
///
/// # Examples
/// ```
/// use ntk_momentum::theory::{best_tuning, Method, ModalResidual};
///
/// let spectrum: Vec<f64> = (0..20).map(|k| 0.01 + 0.99 * k as f64 / 19.0).collect();
/// let r = ModalResidual::from_coordinates(spectrum, vec![1.0; 20])?;
/// let hb = best_tuning(Method::HeavyBall, &r, 1e-6, 1000, 0.05)?;
/// let gd = best_tuning(Method::GradientDescent, &r, 1e-6, 1000, 0.05)?;
/// assert!(hb.steps.unwrap() < gd.steps.unwrap());
/// # Ok::<(), ntk_momentum::Error>(())
/// ```
pub fn best_tuning(
    method: Method,
    residual: &ModalResidual,
    loss_fraction: f64,
    budget: usize,
    stability_margin: f64,
) -> Result<BestTuning> {
    if !(loss_fraction > 0.0 && loss_fraction < 1.0) {
        return Err(Error::invalid("loss_fraction", loss_fraction, "a fraction in (0, 1)"));
    }
    if budget == 0 {
        return Err(Error::invalid("budget", 0, "at least one step"));
    }
    if !(0.0..1.0).contains(&stability_margin) {
        return Err(Error::invalid(
            "stability_margin",
            stability_margin,
            "a margin in [0, 1)",
        ));
    }
    let lambda_max = residual.lambda_max();
    if lambda_max <= 0.0 {
        return Err(Error::invalid(
            "eigenvalues",
            "all zero",
            "a spectrum with lambda_max > 0",
        ));
    }
    let target = loss_fraction * residual.initial_loss();
    let point = |u: f64, s: f64| -> (f64, f64) {
        let beta = if method == Method::GradientDescent {
            0.0
        } else {
            (1.0 - (1.0 - u).powi(2)).min(MAX_SEARCH_MOMENTUM)
        };
        let limit = match method {
            Method::GradientDescent => 2.0,
            Method::HeavyBall => 2.0 * (1.0 + beta),
            Method::Nesterov => 2.0 * (1.0 + beta) / (1.0 + 2.0 * beta),
        };
        (s * (1.0 - stability_margin) * limit / lambda_max, beta)
    };
    // (steps or budget + 1, loss at that step): smaller is better.
    let score = |u: f64, s: f64| -> Result<(usize, f64, f64, f64)> {
        let (lr, beta) = point(u, s);
        let recursion = ModeRecursion::new(method, lr.into(), beta.into(), &residual.eigenvalues, 1)?;
        let (steps, loss) = recursion.first_below(&residual.coordinates, target, budget)?;
        Ok((steps.unwrap_or(budget + 1), loss, lr, beta))
    };
    let better = |a: &(usize, f64, f64, f64), b: &(usize, f64, f64, f64)| a.0 < b.0 || (a.0 == b.0 && a.1 < b.1);
    let us: Vec<f64> = if method == Method::GradientDescent {
        vec![0.0]
    } else {
        (0..=32).map(|i| i as f64 / 32.0).collect()
    };
    let mut best = (score(us[0], 1.0 / 32.0)?, us[0], 1.0 / 32.0);
    for &u in &us {
        for j in 1..=32 {
            let s = j as f64 / 32.0;
            let sc = score(u, s)?;
            if better(&sc, &best.0) {
                best = (sc, u, s);
            }
        }
    }
    let (mut width_u, mut width_s) = (1.0 / 32.0, 1.0 / 32.0);
    for _ in 0..3 {
        let (_, u0, s0) = best;
        for i in -4..=4 {
            let u = if method == Method::GradientDescent {
                0.0
            } else {
                (u0 + i as f64 * width_u / 4.0).clamp(0.0, 1.0)
            };
            for j in -4..=4 {
                let s = (s0 + j as f64 * width_s / 4.0).clamp(1e-6, 1.0);
                let sc = score(u, s)?;
                if better(&sc, &best.0) {
                    best = (sc, u, s);
                }
            }
        }
        width_u /= 4.0;
        width_s /= 4.0;
    }
    let ((steps, _, lr, momentum), _, _) = best;
    Ok(BestTuning {
        method,
        lr,
        momentum,
        steps: (steps <= budget).then_some(steps),
        rate: rate(method, lr, momentum, &residual.eigenvalues)?,
        stability_margin,
    })
}
