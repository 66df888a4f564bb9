use std::time::Instant;

use super::{Optimizer, Parameters, ParametersMut, ReduceOnPlateau};
use crate::checks::first_non_finite;
use crate::record::{History, Stop};
use crate::{Error, Float, Result};

/// Stopping rules and the step-size tuner of [`minimize`], with the same
/// names as the [`crate::train::TrainOptions`] of the training loop where
/// the option is the same (`max_steps`, `target_loss`, `divergence_factor`).
///
/// Defaults: 1,000 steps, no gradient tolerance, no target, divergence only
/// on a non-finite value or gradient, no tuner. Builders whose value can be
/// out of range check it at once and return `Result<Self>`; [`minimize`]
/// checks the whole set again ([`MinimizeOptions::validate`]).
///
/// ```
/// use ntk_momentum::optim::ReduceOnPlateau;
/// use ntk_momentum::MinimizeOptions;
///
/// let options = MinimizeOptions::default()
///     .max_steps(500)
///     .grad_tol(1e-8)?
///     .divergence_factor(1e3)?
///     .plateau(ReduceOnPlateau::new().patience(5));
/// assert!(MinimizeOptions::default().grad_tol(-1.0).is_err());
/// # let _ = options;
/// # Ok::<(), ntk_momentum::Error>(())
/// ```
#[derive(Clone, Debug, PartialEq)]
#[non_exhaustive]
pub struct MinimizeOptions {
    /// Stop after this many optimizer steps (0: evaluate the start only).
    pub max_steps: usize,
    /// Stop once the Euclidean norm of the gradient is at most this
    /// (finite, ≥ 0).
    pub grad_tol: Option<f64>,
    /// Stop once the objective is at most this (not NaN).
    pub target_loss: Option<f64>,
    /// A value above this factor times the initial value counts as
    /// divergence when the initial value is > 0 (> 1; as
    /// [`crate::train::TrainOptions::divergence_factor`]).
    pub divergence_factor: Option<f64>,
    /// A value above this counts as divergence (not NaN; for objectives
    /// that can be ≤ 0, where a factor means nothing).
    pub divergence_threshold: Option<f64>,
    /// A step-size schedule driven by the objective value of every step.
    pub plateau: Option<ReduceOnPlateau>,
}

impl Default for MinimizeOptions {
    fn default() -> Self {
        MinimizeOptions {
            max_steps: 1000,
            grad_tol: None,
            target_loss: None,
            divergence_factor: None,
            divergence_threshold: None,
            plateau: None,
        }
    }
}

impl MinimizeOptions {
    /// Stop after this many optimizer steps (0: evaluate the start only).
    #[must_use = "a builder method returns the changed value"]
    pub fn max_steps(mut self, n: usize) -> Self {
        self.max_steps = n;
        self
    }

    /// The former name of [`MinimizeOptions::max_steps`].
    #[deprecated(since = "0.3.0", note = "use `max_steps`, as TrainOptions")]
    #[must_use = "a builder method returns the changed value"]
    pub fn max_iters(self, n: usize) -> Self {
        self.max_steps(n)
    }

    /// Stop once the Euclidean norm of the gradient is at most `tol`.
    ///
    /// # Errors
    /// [`Error::InvalidParameter`] unless `tol` is finite and ≥ 0.
    pub fn grad_tol(mut self, tol: f64) -> Result<Self> {
        self.grad_tol = Some(tol);
        self.validate().map(|()| self)
    }

    /// Stop once the objective is at most `value`.
    ///
    /// # Errors
    /// [`Error::InvalidParameter`] for NaN.
    pub fn target_loss(mut self, value: f64) -> Result<Self> {
        self.target_loss = Some(value);
        self.validate().map(|()| self)
    }

    /// The former name of [`MinimizeOptions::target_loss`] (checked by
    /// [`minimize`] only).
    #[deprecated(since = "0.3.0", note = "use `target_loss`, as TrainOptions")]
    #[must_use = "a builder method returns the changed value"]
    pub fn target_value(mut self, value: f64) -> Self {
        self.target_loss = Some(value);
        self
    }

    /// Treat a value above `factor` times the initial value as divergence
    /// (when the initial value is > 0).
    ///
    /// # Errors
    /// [`Error::InvalidParameter`] unless `factor` > 1.
    pub fn divergence_factor(mut self, factor: f64) -> Result<Self> {
        self.divergence_factor = Some(factor);
        self.validate().map(|()| self)
    }

    /// Treat a value above `threshold` as divergence.
    ///
    /// # Errors
    /// [`Error::InvalidParameter`] for NaN.
    pub fn divergence_threshold(mut self, threshold: f64) -> Result<Self> {
        self.divergence_threshold = Some(threshold);
        self.validate().map(|()| self)
    }

    /// Drive a [`ReduceOnPlateau`] schedule with the objective value before
    /// every step (the optimizer must expose its hyper-parameters,
    /// [`Optimizer::hyperparameters_mut`]; the built-in ones do).
    #[must_use = "a builder method returns the changed value"]
    pub fn plateau(mut self, plateau: ReduceOnPlateau) -> Self {
        self.plateau = Some(plateau);
        self
    }

    /// Checks the ranges of all options.
    ///
    /// # Errors
    /// [`Error::InvalidParameter`] naming the first option out of range.
    pub fn validate(&self) -> Result<()> {
        if let Some(v) = self.grad_tol.filter(|v| !(v.is_finite() && *v >= 0.0)) {
            return Err(Error::invalid("grad_tol", v, "a finite number >= 0"));
        }
        if let Some(v) = self.target_loss.filter(|v| v.is_nan()) {
            return Err(Error::invalid("target_loss", v, "a number (not NaN)"));
        }
        if let Some(v) = self.divergence_factor.filter(|v| v.is_nan() || *v <= 1.0) {
            return Err(Error::invalid("divergence_factor", v, "a number > 1"));
        }
        if let Some(v) = self.divergence_threshold.filter(|v| v.is_nan()) {
            return Err(Error::invalid("divergence_threshold", v, "a number (not NaN)"));
        }
        Ok(())
    }
}

/// The outcome of [`minimize`]; the final parameters are left in the
/// caller's container.
#[derive(Clone, Debug)]
#[non_exhaustive]
pub struct MinimizeReport {
    /// Objective value at every evaluated iterate; entry 0 is at the start.
    pub values: Vec<f64>,
    /// Gradient norm at every evaluated iterate.
    pub grad_norms: Vec<f64>,
    /// Number of optimizer steps taken.
    pub iterations: usize,
    /// Which rule stopped the run.
    pub stop: Stop,
}

/// Minimises `objective` from `params` with `optimizer`.
///
/// `objective(θ)` returns the value f(θ) and the gradient ∇f(θ). Each
/// iteration evaluates it at the current θ_t, checks the stopping rules in
/// the order divergence, gradient tolerance, target loss, step budget, and
/// otherwise takes one optimizer step (after the plateau schedule, if any,
/// has seen the value).
///
/// # Errors
/// [`Error::InvalidParameter`] for invalid options (checked before the
/// objective is first called); any error of [`Optimizer::step`] (gradient of the wrong
/// shape, ...); and [`Error::Diverged`] when the value or gradient is not
/// finite or the value exceeds the divergence threshold. Then `params` holds
/// the last iterate whose value was finite and below the threshold, and the
/// error carries the values so far as [`History::losses`].
///
/// # Examples
/// Nesterov on the Rosenbrock function:
/// ```
/// use ntk_momentum::{minimize, MinimizeOptions, Nesterov, Stop};
///
/// let rosenbrock = |p: &Vec<f64>| {
///     let (x, y) = (p[0], p[1]);
///     let value = (1.0 - x).powi(2) + 100.0 * (y - x * x).powi(2);
///     let grad = vec![-2.0 * (1.0 - x) - 400.0 * x * (y - x * x), 200.0 * (y - x * x)];
///     (value, grad)
/// };
/// let mut nag = Nesterov::new(1e-3, 0.9)?;
/// let mut p = vec![-1.2, 1.0];
/// let options = MinimizeOptions::default().max_steps(20_000).grad_tol(1e-8)?;
/// let report = minimize(&mut nag, &mut p, rosenbrock, &options)?;
/// assert_eq!(report.stop, Stop::GradientTolerance);
/// assert!((p[0] - 1.0).abs() < 1e-6 && (p[1] - 1.0).abs() < 1e-6);
/// # Ok::<(), ntk_momentum::Error>(())
/// ```
pub fn minimize<P, O, F>(
    optimizer: &mut O,
    params: &mut P,
    mut objective: F,
    options: &MinimizeOptions,
) -> Result<MinimizeReport>
where
    P: ParametersMut + Clone,
    O: Optimizer<P> + ?Sized,
    F: FnMut(&P) -> (P::Scalar, P),
{
    options.validate()?;
    let mut plateau = options.plateau.clone();
    let start = Instant::now();
    let mut history = History::default();
    let mut grad_norms = Vec::new();
    let mut last_good = params.clone();
    let mut iterations = 0;
    loop {
        let (value, grad) = objective(params);
        let value = value.to_f64();
        let (grad_norm, grad_finite) = norm_and_finiteness(&grad)?;
        history.push_loss(value, start.elapsed().as_secs_f64());
        grad_norms.push(grad_norm);
        let initial = history.losses()[0];
        let reason = if !value.is_finite() {
            Some("non-finite objective value".to_string())
        } else if !grad_finite {
            Some("non-finite gradient".to_string())
        } else if let Some(t) = options.divergence_threshold.filter(|&t| value > t) {
            Some(format!("value above the divergence threshold {t:e}"))
        } else {
            options
                .divergence_factor
                .filter(|&f| initial > 0.0 && value > f * initial)
                .map(|f| format!("value above {f:e} times the initial value {initial:e}"))
        };
        if let Some(reason) = reason {
            copy_tensors(params, &last_good)?;
            return Err(Error::Diverged {
                step: iterations,
                loss: value,
                reason,
                history: Box::new(history),
            });
        }
        let stop = if options.grad_tol.is_some_and(|tol| grad_norm <= tol) {
            Some(Stop::GradientTolerance)
        } else if options.target_loss.is_some_and(|t| value <= t) {
            Some(Stop::TargetLoss)
        } else if iterations >= options.max_steps {
            Some(Stop::MaxSteps)
        } else {
            None
        };
        if let Some(stop) = stop {
            return Ok(MinimizeReport {
                values: history.losses().to_vec(),
                grad_norms,
                iterations,
                stop,
            });
        }
        if let Some(plateau) = &mut plateau {
            let Some(hyper) = optimizer.hyperparameters_mut() else {
                return Err(Error::Unsupported(format!(
                    "a plateau schedule with optimizer \"{}\", which exposes no hyper-parameters \
                     (Optimizer::hyperparameters_mut)",
                    optimizer.name()
                )));
            };
            plateau.observe(value, hyper)?;
        }
        copy_tensors(&mut last_good, params)?;
        optimizer.step(params, &grad)?;
        iterations += 1;
    }
}

/// Euclidean norm over all tensors of a gradient, and whether all its
/// entries are finite.
fn norm_and_finiteness<P: Parameters + ?Sized>(grad: &P) -> Result<(f64, bool)> {
    let (mut sq, mut finite) = (0.0, true);
    for i in 0..grad.tensor_count() {
        let (_, g) = grad.tensor(i)?;
        sq += g.iter().map(|g| g.to_f64() * g.to_f64()).sum::<f64>();
        finite &= first_non_finite(g).is_none();
    }
    Ok((sq.sqrt(), finite))
}

/// Copies every tensor of `src` into `dst` (same set type, so same shapes).
fn copy_tensors<P: ParametersMut + ?Sized>(dst: &mut P, src: &P) -> Result<()> {
    for i in 0..src.tensor_count() {
        let (_, s) = src.tensor(i)?;
        let (_, d) = dst.tensor_mut(i)?;
        if d.len() != s.len() {
            return Err(Error::shape(
                format!("parameter tensor {i}"),
                s.len().to_string(),
                d.len().to_string(),
            ));
        }
        d.copy_from_slice(s);
    }
    Ok(())
}
