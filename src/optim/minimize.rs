use std::time::Instant;

use super::{Optimizer, Parameters, ParametersMut};
use crate::checks::first_non_finite;
use crate::record::{History, Stop};
use crate::{Error, Float, Result};

/// Stopping rules for [`minimize`].
///
/// Defaults: 1,000 iterations, no gradient tolerance, no target value, and
/// divergence only on a non-finite value or gradient.
#[derive(Clone, Debug, PartialEq)]
pub struct MinimizeOptions {
    max_iters: usize,
    grad_tol: Option<f64>,
    target_value: Option<f64>,
    divergence_threshold: Option<f64>,
}

impl Default for MinimizeOptions {
    fn default() -> Self {
        MinimizeOptions {
            max_iters: 1000,
            grad_tol: None,
            target_value: None,
            divergence_threshold: None,
        }
    }
}

impl MinimizeOptions {
    /// Stop after this many optimizer steps (0: evaluate the start only).
    #[must_use = "a builder method returns the changed value"]
    pub fn max_iters(mut self, n: usize) -> Self {
        self.max_iters = n;
        self
    }
    /// Stop once the Euclidean norm of the gradient is at most `tol`, which
    /// must be finite and >= 0.
    #[must_use = "a builder method returns the changed value"]
    pub fn grad_tol(mut self, tol: f64) -> Self {
        self.grad_tol = Some(tol);
        self
    }
    /// Stop once the objective is at most `value` (not NaN).
    #[must_use = "a builder method returns the changed value"]
    pub fn target_value(mut self, value: f64) -> Self {
        self.target_value = Some(value);
        self
    }
    /// Treat an objective value above `threshold` (not NaN) as divergence.
    #[must_use = "a builder method returns the changed value"]
    pub fn divergence_threshold(mut self, threshold: f64) -> Self {
        self.divergence_threshold = Some(threshold);
        self
    }

    fn validate(&self) -> Result<()> {
        let positive = |name: &'static str, v: Option<f64>| match v {
            Some(v) if !(v.is_finite() && v >= 0.0) => Err(Error::invalid(name, v, "a finite number >= 0")),
            _ => Ok(()),
        };
        positive("grad_tol", self.grad_tol)?;
        if let Some(v) = self.target_value.filter(|v| v.is_nan()) {
            return Err(Error::invalid("target_value", v, "a number (not NaN)"));
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
/// the order divergence, gradient tolerance, target value, iteration budget,
/// and otherwise takes one optimizer step.
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
/// let options = MinimizeOptions::default().max_iters(20_000).grad_tol(1e-8);
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
        let reason = if !value.is_finite() {
            Some("non-finite objective value".to_string())
        } else if !grad_finite {
            Some("non-finite gradient".to_string())
        } else {
            options
                .divergence_threshold
                .filter(|&t| value > t)
                .map(|t| format!("value above the divergence threshold {t:e}"))
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
        } else if options.target_value.is_some_and(|t| value <= t) {
            Some(Stop::TargetLoss)
        } else if iterations >= options.max_iters {
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
