//! Whether a training run stayed in the NTK regime: the rate its (η, β)
//! imply for the kernel at each diagnostic, against the kernel at
//! initialization and against the measured losses.

use std::fmt;

use super::measure::{least_squares, measured_rate};
use super::modes::rate;
use super::Method;
use crate::{Error, History, Result};

/// Loss window of the measured-exponent fit: 1e-1 … 1e-12 of L_0 (past the
/// first transient, above the f64 rounding floor).
pub const REGIME_FIT_WINDOW: (f64, f64) = (1e-1, 1e-12);

/// The verdict of [`regime`] on one run.
#[derive(Clone, Debug, PartialEq)]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
#[non_exhaustive]
pub struct Regime {
    /// The method.
    pub method: Method,
    /// Step size η of the run.
    pub lr: f64,
    /// Momentum β of the run (0 for GD).
    pub momentum: f64,
    /// The relative tolerance of the criterion.
    pub tolerance: f64,
    /// Per diagnostic: (step, λ_min(H(W_t)), λ_max(H(W_t)), 1 − ρ for the
    /// run's (η, β) on [λ_min, λ_max]). The first entry is step 0.
    pub exponents: Vec<(usize, f64, f64, f64)>,
    /// The largest relative change of the implied exponent from step 0's,
    /// max_t |e_t − e_0| / e_0, and the step where it occurred.
    pub worst_exponent_change: (f64, usize),
    /// The measured exponent 1 − ρ_meas fitted to the run's losses between
    /// 1e-1 and 1e-12 of L_0 (`None`: fewer than 3 steps in that window).
    pub measured_exponent: Option<f64>,
    /// The predicted trajectory's exponent fitted over the same steps.
    pub predicted_exponent: Option<f64>,
    /// (measured − predicted) / predicted exponent.
    pub exponent_gap: Option<f64>,
    /// The criterion: the exponent implied by H(W_t) stayed within
    /// `tolerance` of H(W_0)'s at every diagnostic.
    pub in_regime: bool,
}

impl Regime {
    /// Whether the measured exponent is within `tolerance` of the
    /// predicted one (`false` when either could not be fitted).
    pub fn prediction_holds(&self) -> bool {
        self.exponent_gap.is_some_and(|g| g.abs() <= self.tolerance)
    }
}

impl fmt::Display for Regime {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let (first, last) = (self.exponents[0], self.exponents[self.exponents.len() - 1]);
        let (change, at) = self.worst_exponent_change;
        let pct = |a: f64, b: f64| 100.0 * (b / a - 1.0);
        write!(
            f,
            "{}: spectral-ends criterion {} (a heuristic, not a guarantee on the steps: see Trainer::verdict; \
             criterion: the rate exponent 1 - rho that (lr, momentum) give on \
             [lambda_min, lambda_max] of H(W_t) stays within {:.0} % of H(W_0)'s at every diagnostic; worst {:+.1} % \
             at step {at}). From step 0 to {}: lambda_min {:.4e} -> {:.4e} ({:+.1} %), lambda_max {:.4e} -> {:.4e} \
             ({:+.1} %), exponent {:.4e} -> {:.4e}.",
            self.method,
            if self.in_regime { "met" } else { "NOT met" },
            100.0 * self.tolerance,
            100.0 * change,
            last.0,
            first.1,
            last.1,
            pct(first.1, last.1),
            first.2,
            last.2,
            pct(first.2, last.2),
            first.3,
            last.3,
        )?;
        match (self.measured_exponent, self.predicted_exponent, self.exponent_gap) {
            (Some(m), Some(p), Some(g)) => write!(
                f,
                " Measured exponent {m:.4e} vs linearized prediction {p:.4e} over the same steps: {:+.1} % ({}).",
                100.0 * g,
                if g.abs() <= self.tolerance {
                    "within tolerance"
                } else {
                    "outside tolerance"
                }
            ),
            _ => write!(
                f,
                " Measured exponent: not fitted (fewer than 3 steps between 1e-1 and 1e-12 of L_0)."
            ),
        }
    }
}

/// The regime verdict of a run of `method` with constant (`lr`, `momentum`)
/// whose [`History`] recorded λ_min and λ_max of H(W_t) at its diagnostics
/// (the [`crate::Trainer`] does so while it tracks the NTK drift).
///
/// For each diagnostic it computes the rate ρ_t the run's (η, β) give on
/// [λ_min(H(W_t)), λ_max(H(W_t))] (the modulus of every method is largest
/// at an end of the spectrum, so the two extremes give the spectral radius
/// exactly) and the exponent e_t = 1 − ρ_t. The run is **in the regime** when
/// |e_t − e_0| ≤ `tolerance` · e_0 at every diagnostic. Separately, it fits
/// the measured losses between 1e-1 and 1e-12 of L_0 and `predicted_losses`
/// (the linearized trajectory from H(W_0), e.g. [`super::predicted_losses`])
/// over the same steps, and reports the gap between their exponents.
///
/// **A heuristic, not a guarantee.** The criterion is blind wherever ρ does
/// not depend on λ_min (an underdamped HB has ρ = √β whatever λ_min does),
/// ignores the interior of the spectrum and the rotation of the eigenvectors
/// that carry ξ_0, and was met by runs whose predicted steps were off by up
/// to a third; at critical tunings it is hypersensitive the other way. For a
/// verdict with a guarantee on the steps to each loss level use
/// [`crate::Trainer::verdict`] (see [`super::Verdict`]); this function stays
/// as a diagnostic of the spectrum's ends and of the measured-against-
/// linearized exponent gap.
///
/// The relative Frobenius drift of H is no substitute: a 1 % drift can move
/// λ_min by tens of per cent when κ is large, and a momentum tuned to be
/// critically damped at λ_min(H(W_0)) then turns overdamped and slow.
///
/// # Errors
/// [`Error::InvalidParameter`] if the history has no diagnostic with λ_min
/// and λ_max, the first such diagnostic is not at step 0, `tolerance` is not
/// in (0, 1), or (η, β) are out of range.
///
/// # Examples
/// ```
/// use ntk_momentum::data::unit_sphere;
/// use ntk_momentum::theory::{self, Method};
/// use ntk_momentum::{HeavyBall, Trainer, TwoLayerReLU};
/// use ntk_momentum::ntk::eigendecomposition;
///
/// let (x, y) = unit_sphere::<f64>(8, 5, 1)?;
/// let model = TwoLayerReLU::new(5, 4096, 2)?;
/// let (spectrum, v) = eigendecomposition(&model.ntk_gram(&x)?)?;
/// let (lr, beta) = (1.0 / spectrum.lambda_max, 0.5);
/// let xi0 = model.forward(&x)? - &y;
/// let predicted = theory::predicted_losses(Method::HeavyBall, lr, beta, &spectrum.eigenvalues, &v, &xi0, 100)?;
/// let history = Trainer::new(model, HeavyBall::new(lr, beta)?).max_steps(100).run(&x, &y)?;
/// let verdict = theory::regime(Method::HeavyBall, lr, beta, &history, &predicted, 0.1)?;
/// println!("{verdict}");
/// // With only d = 5 input dimensions this width is not enough: lambda_min(H(W_t))
/// // falls by more than half, and the verdict says so.
/// assert!(!verdict.in_regime && verdict.worst_exponent_change.0 < -0.5);
/// # Ok::<(), ntk_momentum::Error>(())
/// ```
pub fn regime(
    method: Method,
    lr: f64,
    momentum: f64,
    history: &History,
    predicted_losses: &[f64],
    tolerance: f64,
) -> Result<Regime> {
    if !(tolerance > 0.0 && tolerance < 1.0) {
        return Err(Error::invalid("tolerance", tolerance, "a relative tolerance in (0, 1)"));
    }
    let momentum = if method == Method::GradientDescent {
        0.0
    } else {
        momentum
    };
    let mut exponents = Vec::new();
    for d in history.diagnostics() {
        if let (Some(lo), Some(hi)) = (d.ntk_lambda_min, d.ntk_lambda_max) {
            let rho = rate(method, lr, momentum, &[lo.max(0.0), hi.max(0.0)])?;
            exponents.push((d.step, lo, hi, 1.0 - rho));
        }
    }
    match exponents.first() {
        None => return Err(Error::invalid(
            "history",
            "a run without lambda_min / lambda_max of H(W_t)",
            "diagnostics with the NTK tracked (Trainer::track_ntk_drift(true); above NTK_DRIFT_MAX_SAMPLES samples \
                 also a Lanczos budget, Trainer::matrix_free_ntk)",
        )),
        Some(&(step, ..)) if step != 0 => {
            return Err(Error::invalid(
                "history",
                format!("first NTK diagnostic at step {step}"),
                "a diagnostic at step 0 (H(W_0)), the reference",
            ))
        }
        Some(_) => {}
    }
    let e0 = exponents[0].3;
    let mut worst = (0.0_f64, 0_usize);
    for &(step, _, _, e) in &exponents {
        let change = (e - e0) / e0.abs().max(f64::MIN_POSITIVE);
        if change.abs() > worst.0.abs() {
            worst = (change, step);
        }
    }
    let in_regime = e0 > 0.0 && worst.0.abs() <= tolerance;
    let (upper, lower) = REGIME_FIT_WINDOW;
    let fit = measured_rate(history.losses(), upper, lower).ok();
    let measured_exponent = fit.as_ref().map(|f| 1.0 - f.rate);
    let predicted_exponent = fit
        .as_ref()
        .and_then(|f| window_exponent(predicted_losses, f.window.0, f.window.1));
    let exponent_gap = match (measured_exponent, predicted_exponent) {
        (Some(m), Some(p)) if p != 0.0 => Some((m - p) / p),
        _ => None,
    };
    Ok(Regime {
        method,
        lr,
        momentum,
        tolerance,
        exponents,
        worst_exponent_change: worst,
        measured_exponent,
        predicted_exponent,
        exponent_gap,
        in_regime,
    })
}

/// 1 − ρ of a least-squares fit of ln(loss) over steps `a..=b` (positive
/// finite losses only; `None` with fewer than 3).
pub(super) fn window_exponent(losses: &[f64], a: usize, b: usize) -> Option<f64> {
    let points: Vec<(f64, f64)> = losses
        .get(a..=b.min(losses.len().saturating_sub(1)))?
        .iter()
        .enumerate()
        .filter(|(_, l)| l.is_finite() && **l > 0.0)
        .map(|(i, l)| ((a + i) as f64, l.ln()))
        .collect();
    if points.len() < 3 {
        return None;
    }
    let (slope, _) = least_squares(&points);
    Some(1.0 - (0.5 * slope).exp())
}
