//! Measured rates of loss trajectories, and their comparison with the theory.

use std::fmt;

use crate::{Error, History, Result};

/// A linear rate fitted to a loss trajectory (see [`measured_rate`]).
#[derive(Clone, Copy, Debug, PartialEq)]
#[non_exhaustive]
pub struct RateFit {
    /// The residual rate ρ = exp(slope / 2), with slope the least-squares
    /// slope of ln(loss) per step.
    pub rate: f64,
    /// First and last step of the window used.
    pub window: (usize, usize),
    /// Number of steps in the window whose loss was used in the fit.
    pub points: usize,
    /// Coefficient of determination of the fit of ln(loss) against the step
    /// (1 for an exactly geometric decay).
    pub r_squared: f64,
}

impl fmt::Display for RateFit {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "rate {:.6} (1 - rate = {:.3e}) over steps {}..={} ({} points, r^2 = {:.6})",
            self.rate,
            1.0 - self.rate,
            self.window.0,
            self.window.1,
            self.points,
            self.r_squared
        )
    }
}

/// Validates a loss trajectory: non-empty, finite, >= 0, positive first loss.
fn check_losses(name: &'static str, losses: &[f64]) -> Result<f64> {
    let Some(&first) = losses.first() else {
        return Err(Error::invalid(name, "[] (empty)", "at least one loss"));
    };
    if let Some(i) = losses.iter().position(|l| !l.is_finite()) {
        return Err(Error::NonFinite {
            what: name.into(),
            location: format!("step {i} (value {})", losses[i]),
        });
    }
    if let Some(i) = losses.iter().position(|&l| l < 0.0) {
        return Err(Error::invalid(
            name,
            format!("{:e} at step {i}", losses[i]),
            "losses >= 0 (a loss is 1/2 ||u - y||^2)",
        ));
    }
    if first <= 0.0 {
        return Err(Error::invalid(
            name,
            format!("initial loss {first:e}"),
            "an initial loss > 0 (fractions are relative to it)",
        ));
    }
    Ok(first)
}

/// The measured linear rate of a loss trajectory (`losses[t]` = loss after t
/// steps, entry 0 the initial loss, as in [`History::losses`]).
///
/// The fit uses every step t whose loss fraction lies in the window
///
/// ```text
/// lower_fraction <= loss_t / loss_0 <= upper_fraction
/// ```
///
/// which skips the transient at the start (momentum methods first build up
/// velocity and oscillate) and the rounding floor at the end (about 1e-30 of
/// the initial loss in f64). It fits ln(loss_t) = a + s t by least squares;
/// since loss = ½‖ξ‖² decays like ρ²ᵗ, the residual rate is
///
/// ```text
/// ρ = exp(s / 2)
/// ```
///
/// comparable with [`super::rate`]. A run that is still oscillating in the
/// window (underdamped momentum) gives the slope of its envelope, averaged
/// over the oscillations.
///
/// # Errors
/// [`Error::InvalidParameter`] unless 0 < `lower_fraction` < `upper_fraction`
/// (both finite), for an empty trajectory, negative losses or a zero initial
/// loss, and when fewer than 3 steps fall in the window;
/// [`Error::NonFinite`] for a NaN or infinite loss.
///
/// # Examples
/// ```
/// use ntk_momentum::theory::measured_rate;
///
/// // loss_t = 0.9^(2t): residual rate 0.9.
/// let losses: Vec<f64> = (0..200).map(|t| 0.81_f64.powi(t)).collect();
/// let fit = measured_rate(&losses, 1e-2, 1e-12)?;
/// assert!((fit.rate - 0.9).abs() < 1e-12);
/// assert_eq!(fit.window, (22, 131));
/// # Ok::<(), ntk_momentum::Error>(())
/// ```
pub fn measured_rate(losses: &[f64], upper_fraction: f64, lower_fraction: f64) -> Result<RateFit> {
    if !(lower_fraction.is_finite() && lower_fraction > 0.0) {
        return Err(Error::invalid(
            "lower_fraction",
            lower_fraction,
            "a finite fraction > 0",
        ));
    }
    if !(upper_fraction.is_finite() && upper_fraction > lower_fraction) {
        return Err(Error::invalid(
            "upper_fraction",
            upper_fraction,
            format!("a finite fraction > lower_fraction = {lower_fraction:e}"),
        ));
    }
    let l0 = check_losses("losses", losses)?;
    let in_window = |l: f64| {
        let f = l / l0;
        (lower_fraction..=upper_fraction).contains(&f)
    };
    let points: Vec<(f64, f64)> = losses
        .iter()
        .enumerate()
        .filter(|&(_, &l)| in_window(l))
        .map(|(t, &l)| (t as f64, (l / l0).ln()))
        .collect();
    if points.len() < 3 {
        return Err(Error::invalid(
            "lower_fraction",
            lower_fraction,
            format!(
                "a window with at least 3 steps: only {} of {} losses have loss/loss_0 in [{lower_fraction:e}, \
                 {upper_fraction:e}] (widen the window or train longer)",
                points.len(),
                losses.len()
            ),
        ));
    }
    let (slope, r_squared) = least_squares(&points);
    Ok(RateFit {
        rate: (0.5 * slope).exp(),
        window: (points[0].0 as usize, points[points.len() - 1].0 as usize),
        points: points.len(),
        r_squared,
    })
}

/// The least-squares slope of y against t over `points` (at least two
/// distinct t) and the coefficient of determination (1 for a constant y).
pub(super) fn least_squares(points: &[(f64, f64)]) -> (f64, f64) {
    let k = points.len() as f64;
    let (mt, my) = points
        .iter()
        .fold((0.0, 0.0), |(st, sy), &(t, y)| (st + t / k, sy + y / k));
    let (mut sxx, mut sxy, mut syy) = (0.0, 0.0, 0.0);
    for &(t, y) in points {
        let (dt, dy) = (t - mt, y - my);
        sxx += dt * dt;
        sxy += dt * dy;
        syy += dy * dy;
    }
    let r_squared = if syy > 0.0 { (sxy * sxy) / (sxx * syy) } else { 1.0 };
    (sxy / sxx, r_squared)
}

/// [`measured_rate`] of a training run's [`History::losses`].
///
/// # Errors
/// As [`measured_rate`].
///
/// # Examples
/// ```no_run
/// # fn run() -> ntk_momentum::Result<ntk_momentum::History> { unimplemented!() }
/// use ntk_momentum::theory::measured_rate_of_history;
///
/// let history = run()?; // a training run
/// let fit = measured_rate_of_history(&history, 1e-2, 1e-12)?;
/// println!("{fit}");
/// # Ok::<(), ntk_momentum::Error>(())
/// ```
pub fn measured_rate_of_history(history: &History, upper_fraction: f64, lower_fraction: f64) -> Result<RateFit> {
    measured_rate(history.losses(), upper_fraction, lower_fraction)
}

/// A predicted rate set against a measured one (see [`compare`]).
#[derive(Clone, Copy, Debug, PartialEq)]
#[non_exhaustive]
pub struct Comparison {
    /// The predicted residual rate ρ_pred, e.g. from [`super::rate`].
    pub predicted: f64,
    /// The measured fit.
    pub measured: RateFit,
    /// Relative error of the measured exponent 1 − ρ against the predicted:
    ///
    /// ```text
    /// gap = ((1 − ρ_meas) − (1 − ρ_pred)) / (1 − ρ_pred) = (ρ_pred − ρ_meas) / (1 − ρ_pred)
    /// ```
    ///
    /// Positive when the run converged faster than predicted, negative when
    /// slower; −1 means no decay at all.
    pub gap: f64,
}

impl Comparison {
    /// Whether |gap| <= `tolerance` (e.g. 0.1 for "within 10 %").
    pub fn within(&self, tolerance: f64) -> bool {
        self.gap.abs() <= tolerance
    }
}

impl fmt::Display for Comparison {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "predicted rate {:.6} (1 - rate = {:.3e}), measured {:.6} (1 - rate = {:.3e}; steps {}..={}, \
             {} points, r^2 = {:.4}): exponent gap {:+.1} %",
            self.predicted,
            1.0 - self.predicted,
            self.measured.rate,
            1.0 - self.measured.rate,
            self.measured.window.0,
            self.measured.window.1,
            self.measured.points,
            self.measured.r_squared,
            100.0 * self.gap
        )
    }
}

/// Sets a predicted rate against a measured fit: the gap is the relative
/// error of the exponent 1 − ρ (see [`Comparison::gap`]).
///
/// # Errors
/// [`Error::InvalidParameter`] unless `predicted` lies in [0, 1) (a rate that
/// predicts convergence).
///
/// # Examples
/// ```
/// use ntk_momentum::theory::{compare, measured_rate};
///
/// let losses: Vec<f64> = (0..300).map(|t| 0.98_f64.powi(2 * t)).collect();
/// let fit = measured_rate(&losses, 1e-2, 1e-12)?;
/// let c = compare(0.9775, fit)?; // predicted 1 - rho = 0.0225, measured 0.02
/// assert!((c.gap + 1.0 / 9.0).abs() < 1e-9 && !c.within(0.1));
/// println!("{c}");
/// # Ok::<(), ntk_momentum::Error>(())
/// ```
pub fn compare(predicted: f64, measured: RateFit) -> Result<Comparison> {
    if !(0.0..1.0).contains(&predicted) {
        return Err(Error::invalid("predicted", predicted, "a predicted rate in [0, 1)"));
    }
    Ok(Comparison {
        predicted,
        measured,
        gap: (predicted - measured.rate) / (1.0 - predicted),
    })
}

/// The measured speed-up of `candidate` over `baseline`: the ratio of the
/// numbers of steps each loss trajectory needs to reach `fraction` of its own
/// initial loss (the first t with loss_t <= fraction · loss_0, as in
/// [`History::steps_to_fraction`]):
///
/// ```text
/// speedup = steps_baseline(fraction) / steps_candidate(fraction)
/// ```
///
/// so `speedup(hb.losses(), nag.losses(), 1e-10)` > 1 says NAG reached the
/// loss level faster than HB. Compare with [`super::predicted_speedup`].
///
/// # Errors
/// [`Error::InvalidParameter`] unless `fraction` lies in (0, 1) and both
/// trajectories reach it; the trajectory checks of [`measured_rate`].
///
/// # Examples
/// ```
/// use ntk_momentum::theory::speedup;
///
/// let hb: Vec<f64> = (0..100).map(|t| 0.5_f64.powi(t)).collect();
/// let nag: Vec<f64> = (0..100).map(|t| 0.25_f64.powi(t)).collect();
/// assert_eq!(speedup(&hb, &nag, 1e-6)?, 2.0); // 20 steps against 10
/// # Ok::<(), ntk_momentum::Error>(())
/// ```
pub fn speedup(baseline: &[f64], candidate: &[f64], fraction: f64) -> Result<f64> {
    if !(fraction > 0.0 && fraction < 1.0) {
        return Err(Error::invalid("fraction", fraction, "a loss fraction in (0, 1)"));
    }
    let steps = |name: &'static str, losses: &[f64]| -> Result<Option<usize>> {
        let l0 = check_losses(name, losses)?;
        Ok(losses.iter().position(|&l| l <= fraction * l0))
    };
    match (steps("baseline", baseline)?, steps("candidate", candidate)?) {
        (Some(b), Some(c)) => Ok(b as f64 / c as f64),
        (b, c) => {
            let describe = |s: Option<usize>, len: usize| match s {
                Some(t) => format!("reached at step {t}"),
                None => format!("not reached in {} steps", len.saturating_sub(1)),
            };
            Err(Error::invalid(
                "fraction",
                fraction,
                format!(
                    "a loss fraction both runs reach (baseline: {}; candidate: {})",
                    describe(b, baseline.len()),
                    describe(c, candidate.len())
                ),
            ))
        }
    }
}
