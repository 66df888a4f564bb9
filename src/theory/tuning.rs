//! Classical tunings with closed-form rates, and step counts from a rate.

use super::Method;
use crate::{Error, Result};

/// Which classical tuning [`tune`] computes.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
pub enum TuningRule {
    /// GD with η = 2/(λ_min + λ_max): ρ = (κ − 1)/(κ + 1).
    GradientDescent,
    /// Heavy ball with η = 4/(√λ_max + √λ_min)², β = ((√κ − 1)/(√κ + 1))²:
    /// ρ = (√κ − 1)/(√κ + 1), the optimum for HB on quadratics.
    HeavyBall,
    /// Nesterov's textbook tuning η = 1/λ_max, β = (√κ − 1)/(√κ + 1):
    /// ρ = 1 − 1/√κ.
    Nesterov,
    /// Nesterov tuned for quadratics (Lessard, Recht, Packard 2016):
    /// η = 4/(3λ_max + λ_min), β = (√(3κ + 1) − 2)/(√(3κ + 1) + 2):
    /// ρ = 1 − 2/√(3κ + 1).
    NesterovQuadraticOptimal,
}

impl TuningRule {
    /// All four rules.
    pub const ALL: [TuningRule; 4] = [
        TuningRule::GradientDescent,
        TuningRule::HeavyBall,
        TuningRule::Nesterov,
        TuningRule::NesterovQuadraticOptimal,
    ];

    /// The method the rule tunes.
    pub fn method(self) -> Method {
        match self {
            TuningRule::GradientDescent => Method::GradientDescent,
            TuningRule::HeavyBall => Method::HeavyBall,
            TuningRule::Nesterov | TuningRule::NesterovQuadraticOptimal => Method::Nesterov,
        }
    }
}

/// Tuned hyper-parameters and their closed-form rate (see [`tune`]).
#[derive(Clone, Copy, Debug, PartialEq)]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
pub struct Tuning {
    /// The rule that produced it.
    pub rule: TuningRule,
    /// The method to run (`rule.method()`).
    pub method: Method,
    /// Step size η.
    pub lr: f64,
    /// Momentum β (0 for GD).
    pub momentum: f64,
    /// The closed-form linear rate ρ of the residual; equals
    /// [`super::rate`]`(method, lr, momentum, spectrum)` for every spectrum in
    /// [λ_min, λ_max] that contains both ends.
    pub rate: f64,
}

/// The classical tuning `rule` for a spectrum in [λ_min, λ_max], with its
/// closed-form rate (κ = λ_max/λ_min):
///
/// ```text
/// GD          η = 2/(λ_min + λ_max),      β = 0,                           ρ = (κ − 1)/(κ + 1)
/// HB          η = 4/(√λ_max + √λ_min)²,   β = ((√κ − 1)/(√κ + 1))²,        ρ = (√κ − 1)/(√κ + 1)
/// NAG         η = 1/λ_max,                β = (√κ − 1)/(√κ + 1),           ρ = 1 − 1/√κ
/// NAG (quad.) η = 4/(3λ_max + λ_min),     β = (√(3κ+1) − 2)/(√(3κ+1) + 2), ρ = 1 − 2/√(3κ+1)
/// ```
///
/// The formulas are evaluated in forms free of cancellation for κ near 1,
/// e.g. (√κ − 1)/(√κ + 1) = (λ_max − λ_min)/(√λ_max + √λ_min)² and
/// 1 − 2/√(3κ+1) = 3(κ − 1)/(q (q + 2)) with q = √(3κ+1). κ = 1 is allowed
/// (ρ = 0, β = 0).
///
/// # Errors
/// [`Error::InvalidParameter`] if `lambda_min` is not finite and > 0, if
/// `lambda_max` is not finite or is below `lambda_min`, or if the bounds are
/// so extreme that η overflows.
///
/// # Examples
/// ```
/// use ntk_momentum::theory::{rate, tune, TuningRule};
///
/// let spectrum = [0.01, 0.3, 1.0]; // kappa = 100
/// let hb = tune(TuningRule::HeavyBall, 0.01, 1.0)?;
/// assert!((hb.rate - 9.0 / 11.0).abs() < 1e-15);
/// assert!((rate(hb.method, hb.lr, hb.momentum, &spectrum)? - hb.rate).abs() < 1e-12);
/// let nag = tune(TuningRule::Nesterov, 0.01, 1.0)?;
/// assert!((nag.rate - 0.9).abs() < 1e-15);
/// # Ok::<(), ntk_momentum::Error>(())
/// ```
pub fn tune(rule: TuningRule, lambda_min: f64, lambda_max: f64) -> Result<Tuning> {
    if !(lambda_min.is_finite() && lambda_min > 0.0) {
        return Err(Error::invalid(
            "lambda_min",
            lambda_min,
            "a finite eigenvalue > 0 (the tunings need a positive definite H)",
        ));
    }
    if !(lambda_max.is_finite() && lambda_max >= lambda_min) {
        return Err(Error::invalid(
            "lambda_max",
            lambda_max,
            format!("a finite eigenvalue >= lambda_min = {lambda_min}"),
        ));
    }
    let (l, u) = (lambda_min, lambda_max);
    let d = u - l; // exact when u/l <= 2 (Sterbenz), so kappa - 1 keeps its digits
    let p = (u.sqrt() + l.sqrt()).powi(2);
    let (lr, momentum, rate) = match rule {
        TuningRule::GradientDescent => (2.0 / (l + u), 0.0, d / (l + u)),
        TuningRule::HeavyBall => {
            let rho = d / p; // (√κ − 1)/(√κ + 1)
            (4.0 / p, rho * rho, rho)
        }
        TuningRule::Nesterov => (1.0 / u, d / p, d / (u.sqrt() * (u.sqrt() + l.sqrt()))),
        TuningRule::NesterovQuadraticOptimal => {
            let q = ((3.0 * u + l) / l).sqrt(); // √(3κ + 1)
            let three_km1 = 3.0 * (d / l); // 3 (κ − 1) = q² − 4
            (
                4.0 / (3.0 * u + l),
                three_km1 / ((q + 2.0) * (q + 2.0)),
                three_km1 / (q * (q + 2.0)),
            )
        }
    };
    if !(lr.is_finite() && lr > 0.0 && momentum.is_finite() && rate.is_finite()) {
        return Err(Error::invalid(
            "lambda_max",
            lambda_max,
            format!("bounds whose tuned step size is a finite number > 0 (lambda_min = {lambda_min}, lr = {lr})"),
        ));
    }
    Ok(Tuning {
        rule,
        method: rule.method(),
        lr,
        momentum,
        rate,
    })
}

/// The number of steps a residual decaying like ρᵗ needs to shrink by
/// `target_fraction`: the smallest t >= 0 with ρᵗ <= `target_fraction`,
/// i.e. ⌈ln f / ln ρ⌉ (a quotient within 1e-9 of an integer counts as that
/// integer, so rounding never adds a step).
///
/// This counts the *residual* norm ‖ξ_t‖. The loss is ½‖ξ‖², so a loss
/// fraction f is a residual fraction √f: use [`steps_to_loss_fraction`]. The
/// count ignores the transient constant C and polynomial factor of
/// ‖ξ_t‖ ≤ C tᵖ ρᵗ.
///
/// Returns `Ok(Some(0))` if `target_fraction >= 1`, `Ok(None)` if the fraction
/// is never reached (ρ >= 1, or more than 2⁵³ steps).
///
/// # Errors
/// [`Error::InvalidParameter`] unless `rate` is finite and >= 0 and
/// `target_fraction` is finite and > 0.
///
/// # Examples
/// ```
/// use ntk_momentum::theory::steps_to_reach;
///
/// assert_eq!(steps_to_reach(0.5, 0.25)?, Some(2));
/// assert_eq!(steps_to_reach(0.5, 0.2)?, Some(3));
/// assert_eq!(steps_to_reach(1.0, 0.5)?, None);
/// # Ok::<(), ntk_momentum::Error>(())
/// ```
pub fn steps_to_reach(rate: f64, target_fraction: f64) -> Result<Option<usize>> {
    if !(rate.is_finite() && rate >= 0.0) {
        return Err(Error::invalid("rate", rate, "a finite rate >= 0"));
    }
    if !(target_fraction.is_finite() && target_fraction > 0.0) {
        return Err(Error::invalid(
            "target_fraction",
            target_fraction,
            "a finite fraction > 0",
        ));
    }
    if target_fraction >= 1.0 {
        return Ok(Some(0));
    }
    if rate == 0.0 {
        return Ok(Some(1));
    }
    if rate >= 1.0 {
        return Ok(None);
    }
    let t = target_fraction.ln() / rate.ln(); // > 0
    let nearest = t.round();
    let steps = if (t - nearest).abs() <= 1e-9 * t.max(1.0) {
        nearest
    } else {
        t.ceil()
    };
    const LIMIT: f64 = 9_007_199_254_740_992.0; // 2^53
    Ok((steps <= LIMIT).then_some(steps as usize))
}

/// The number of steps to bring the loss ½‖ξ‖² down to `loss_fraction` of its
/// initial value: [`steps_to_reach`]`(rate, √loss_fraction)`.
///
/// # Errors
/// As [`steps_to_reach`], naming `loss_fraction`.
///
/// # Examples
/// ```
/// use ntk_momentum::theory::steps_to_loss_fraction;
///
/// // Loss 1e-6 = residual 1e-3: 10 steps at rho = 0.5 (2^-10 < 1e-3 < 2^-9).
/// assert_eq!(steps_to_loss_fraction(0.5, 1e-6)?, Some(10));
/// # Ok::<(), ntk_momentum::Error>(())
/// ```
pub fn steps_to_loss_fraction(rate: f64, loss_fraction: f64) -> Result<Option<usize>> {
    if !(loss_fraction.is_finite() && loss_fraction > 0.0) {
        return Err(Error::invalid("loss_fraction", loss_fraction, "a finite fraction > 0"));
    }
    steps_to_reach(rate, loss_fraction.sqrt())
}

/// The predicted asymptotic speed-up of a method with rate `candidate_rate`
/// over one with `baseline_rate`: the ratio of the step counts to reach the
/// same small fraction, ln ρ_candidate / ln ρ_baseline (> 1 when the
/// candidate is faster). Compare with the measured [`super::speedup`].
///
/// # Errors
/// [`Error::InvalidParameter`] unless both rates lie in (0, 1).
///
/// # Examples
/// ```
/// use ntk_momentum::theory::predicted_speedup;
///
/// // rho = 0.25 needs half the steps of rho = 0.5.
/// assert!((predicted_speedup(0.5, 0.25)? - 2.0).abs() < 1e-15);
/// # Ok::<(), ntk_momentum::Error>(())
/// ```
pub fn predicted_speedup(baseline_rate: f64, candidate_rate: f64) -> Result<f64> {
    for (name, r) in [("baseline_rate", baseline_rate), ("candidate_rate", candidate_rate)] {
        if !(r > 0.0 && r < 1.0) {
            return Err(Error::invalid(name, r, "a linear rate in (0, 1)"));
        }
    }
    Ok(candidate_rate.ln() / baseline_rate.ln())
}
