//! Per-step values of a hyper-parameter (step size or momentum).

use std::sync::Arc;

use crate::{Error, Result};

/// The value of a hyper-parameter at step t = 0, 1, 2, … (t counts the
/// steps taken before the one being computed, so t = 0 is the first step).
///
/// | schedule | value at step t |
/// |---|---|
/// | [`Schedule::constant`]`(v)` | v |
/// | [`Schedule::step_decay`]`(v, γ, k)` | v · γ^⌊t / k⌋ |
/// | [`Schedule::exponential`]`(v, γ)` | v · γ^t |
/// | [`Schedule::cosine`]`(v, v_T, T)` | v_T + (v − v_T) (1 + cos(π min(t, T) / T)) / 2 |
/// | [`Schedule::linear_warmup`]`(w, s)` | s(0) · (t + 1)/(w + 1) for t < w, then s(t − w) |
/// | [`Schedule::warmup_from`]`(f, w, s)` | s(0) · (f + (1 − f) t/w) for t < w, then s(t − w) |
/// | [`Schedule::piecewise`]`([b_1 …], [v_0, v_1 …])` | v_j for b_j ≤ t < b_{j+1} (b_0 = 0) |
/// | [`Schedule::from_fn`]`(f)` | f(t) |
///
/// A schedule is not validated against the optimizer's range when it is
/// built: the optimizer checks every value when it uses it (step size finite
/// and > 0, momentum in [0, 1)) and refuses the step, with parameters and
/// state unchanged, if a value is out of range.
///
/// ```
/// use ntk_momentum::optim::Schedule;
///
/// let lr = Schedule::linear_warmup(4, Schedule::cosine(0.1, 0.001, 100)?)?;
/// assert!((lr.value(0) - 0.02).abs() < 1e-15);   // 0.1 · 1/5
/// assert!((lr.value(4) - 0.1).abs() < 1e-15);    // warm-up done, cosine at its start
/// assert!((lr.value(104) - 0.001).abs() < 1e-15); // cosine at its end
/// # Ok::<(), ntk_momentum::Error>(())
/// ```
#[derive(Clone)]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
#[non_exhaustive]
pub enum Schedule {
    /// The same value at every step.
    Constant(f64),
    /// `initial · factor^⌊t / every⌋`.
    StepDecay {
        /// Value at step 0.
        initial: f64,
        /// Multiplier applied every `every` steps.
        factor: f64,
        /// Steps between two decays (> 0).
        every: u64,
    },
    /// `initial · gamma^t`.
    Exponential {
        /// Value at step 0.
        initial: f64,
        /// Multiplier per step.
        gamma: f64,
    },
    /// Half a cosine from `initial` at t = 0 to `last` at t = `steps`, then
    /// `last`.
    Cosine {
        /// Value at step 0.
        initial: f64,
        /// Value from step `steps` on.
        last: f64,
        /// Length of the decay (> 0).
        steps: u64,
    },
    /// A linear ramp to `then`'s first value over `steps` steps, then `then`
    /// shifted by `steps`.
    LinearWarmup {
        /// Length of the warm-up.
        steps: u64,
        /// The schedule after the warm-up.
        then: Box<Schedule>,
    },
    /// A linear ramp from `start_factor` times `then`'s first value to
    /// that value over `steps` steps, then `then` shifted by `steps`.
    WarmupFrom {
        /// The fraction of the first value at step 0, in (0, 1].
        start_factor: f64,
        /// Length of the warm-up (> 0).
        steps: u64,
        /// The schedule after the warm-up.
        then: Box<Schedule>,
    },
    /// `values[j]` from step `boundaries[j − 1]` (0 for j = 0) to step
    /// `boundaries[j]`.
    Piecewise {
        /// Strictly increasing step boundaries.
        boundaries: Vec<u64>,
        /// One more value than boundaries.
        values: Vec<f64>,
    },
    /// A user function of the step (not serializable).
    #[cfg_attr(feature = "serde", serde(skip))]
    Function(Arc<dyn Fn(u64) -> f64 + Send + Sync>),
}

impl std::fmt::Debug for Schedule {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Schedule::Constant(v) => write!(f, "Constant({v:?})"),
            Schedule::StepDecay { initial, factor, every } => {
                write!(
                    f,
                    "StepDecay {{ initial: {initial:?}, factor: {factor:?}, every: {every} }}"
                )
            }
            Schedule::Exponential { initial, gamma } => {
                write!(f, "Exponential {{ initial: {initial:?}, gamma: {gamma:?} }}")
            }
            Schedule::Cosine { initial, last, steps } => {
                write!(f, "Cosine {{ initial: {initial:?}, last: {last:?}, steps: {steps} }}")
            }
            Schedule::LinearWarmup { steps, then } => write!(f, "LinearWarmup {{ steps: {steps}, then: {then:?} }}"),
            Schedule::WarmupFrom {
                start_factor,
                steps,
                then,
            } => write!(
                f,
                "WarmupFrom {{ start_factor: {start_factor:?}, steps: {steps}, then: {then:?} }}"
            ),
            Schedule::Piecewise { boundaries, values } => {
                write!(f, "Piecewise {{ boundaries: {boundaries:?}, values: {values:?} }}")
            }
            Schedule::Function(_) => f.write_str("Function(..)"),
        }
    }
}

impl PartialEq for Schedule {
    /// Structural equality; two [`Schedule::Function`]s are equal only if
    /// they share the same closure.
    fn eq(&self, other: &Self) -> bool {
        use Schedule::*;
        match (self, other) {
            (Constant(a), Constant(b)) => a == b,
            (
                StepDecay { initial, factor, every },
                StepDecay {
                    initial: i2,
                    factor: f2,
                    every: e2,
                },
            ) => initial == i2 && factor == f2 && every == e2,
            (Exponential { initial, gamma }, Exponential { initial: i2, gamma: g2 }) => initial == i2 && gamma == g2,
            (
                Cosine { initial, last, steps },
                Cosine {
                    initial: i2,
                    last: l2,
                    steps: s2,
                },
            ) => initial == i2 && last == l2 && steps == s2,
            (LinearWarmup { steps, then }, LinearWarmup { steps: s2, then: t2 }) => steps == s2 && then == t2,
            (
                WarmupFrom {
                    start_factor,
                    steps,
                    then,
                },
                WarmupFrom {
                    start_factor: f2,
                    steps: s2,
                    then: t2,
                },
            ) => start_factor == f2 && steps == s2 && then == t2,
            (
                Piecewise { boundaries, values },
                Piecewise {
                    boundaries: b2,
                    values: v2,
                },
            ) => boundaries == b2 && values == v2,
            (Function(a), Function(b)) => Arc::ptr_eq(a, b),
            _ => false,
        }
    }
}

fn finite(name: &'static str, v: f64) -> Result<f64> {
    if v.is_finite() {
        Ok(v)
    } else {
        Err(Error::invalid(name, v, "a finite number"))
    }
}

impl Schedule {
    /// The value `value` at every step.
    pub fn constant(value: f64) -> Schedule {
        Schedule::Constant(value)
    }

    /// `initial · factor^⌊t / every⌋` (PyTorch's `StepLR`).
    ///
    /// # Errors
    /// [`Error::InvalidParameter`] unless `initial` and `factor` are finite
    /// and `every > 0`.
    pub fn step_decay(initial: f64, factor: f64, every: u64) -> Result<Schedule> {
        if every == 0 {
            return Err(Error::invalid("every", every, "at least 1 step"));
        }
        Ok(Schedule::StepDecay {
            initial: finite("initial", initial)?,
            factor: finite("factor", factor)?,
            every,
        })
    }

    /// `initial · gamma^t` (PyTorch's `ExponentialLR`).
    ///
    /// # Errors
    /// [`Error::InvalidParameter`] unless both are finite.
    pub fn exponential(initial: f64, gamma: f64) -> Result<Schedule> {
        Ok(Schedule::Exponential {
            initial: finite("initial", initial)?,
            gamma: finite("gamma", gamma)?,
        })
    }

    /// Cosine annealing from `initial` to `last` over `steps` steps, then
    /// `last` (PyTorch's `CosineAnnealingLR` with `T_max = steps`,
    /// `eta_min = last`, without restarts).
    ///
    /// # Errors
    /// [`Error::InvalidParameter`] unless both values are finite and
    /// `steps > 0`.
    pub fn cosine(initial: f64, last: f64, steps: u64) -> Result<Schedule> {
        if steps == 0 {
            return Err(Error::invalid("steps", steps, "at least 1 step"));
        }
        Ok(Schedule::Cosine {
            initial: finite("initial", initial)?,
            last: finite("last", last)?,
            steps,
        })
    }

    /// A linear warm-up of `steps` steps: `then.value(0) · (t + 1)/(steps + 1)`
    /// for t < `steps` (never zero), then `then.value(t − steps)`.
    ///
    /// # Errors
    /// [`Error::InvalidParameter`] if `steps == 0`.
    pub fn linear_warmup(steps: u64, then: Schedule) -> Result<Schedule> {
        if steps == 0 {
            return Err(Error::invalid("steps", steps, "at least 1 step"));
        }
        Ok(Schedule::LinearWarmup {
            steps,
            then: Box::new(then),
        })
    }

    /// A linear warm-up from a fraction of the first value: `then.value(0) ·
    /// (start_factor + (1 − start_factor) t/steps)` for t < `steps`, then
    /// `then.value(t − steps)`. With a constant `then` it is PyTorch's
    /// `LinearLR(start_factor, total_iters=steps)`; followed by a cosine it
    /// is `SequentialLR([LinearLR, CosineAnnealingLR], milestones=[steps])`
    /// and Optax's `warmup_cosine_decay_schedule(init_value = start_factor ·
    /// peak, …)` (checked against torch in `tests/torch_knobs.rs`).
    ///
    /// ```
    /// use ntk_momentum::optim::Schedule;
    ///
    /// let lr = Schedule::warmup_from(0.1, 5, Schedule::constant(0.05))?;
    /// assert!((lr.value(0) - 0.005).abs() < 1e-17);
    /// assert!((lr.value(2) - 0.023).abs() < 1e-17);
    /// assert_eq!(lr.value(5), 0.05);
    /// # Ok::<(), ntk_momentum::Error>(())
    /// ```
    ///
    /// # Errors
    /// [`Error::InvalidParameter`] unless 0 < `start_factor` ≤ 1 and
    /// `steps > 0`.
    pub fn warmup_from(start_factor: f64, steps: u64, then: Schedule) -> Result<Schedule> {
        if !(start_factor > 0.0 && start_factor <= 1.0) {
            return Err(Error::invalid("start_factor", start_factor, "a number in (0, 1]"));
        }
        if steps == 0 {
            return Err(Error::invalid("steps", steps, "at least 1 step"));
        }
        Ok(Schedule::WarmupFrom {
            start_factor,
            steps,
            then: Box::new(then),
        })
    }

    /// `values[0]` before `boundaries[0]`, `values[j]` from `boundaries[j − 1]`
    /// to `boundaries[j]`, and the last value after the last boundary.
    ///
    /// # Errors
    /// [`Error::InvalidParameter`] unless `values` has one more entry than
    /// `boundaries`, the boundaries increase strictly and the values are
    /// finite.
    pub fn piecewise(boundaries: Vec<u64>, values: Vec<f64>) -> Result<Schedule> {
        if values.len() != boundaries.len() + 1 {
            return Err(Error::invalid(
                "values",
                format!("{} values", values.len()),
                format!(
                    "{} values (one more than the {} boundaries)",
                    boundaries.len() + 1,
                    boundaries.len()
                ),
            ));
        }
        if boundaries.windows(2).any(|w| w[0] >= w[1]) {
            return Err(Error::invalid(
                "boundaries",
                format!("{boundaries:?}"),
                "strictly increasing steps",
            ));
        }
        for &v in &values {
            finite("values", v)?;
        }
        Ok(Schedule::Piecewise { boundaries, values })
    }

    /// `f(t)`; the optimizer checks each value it uses.
    pub fn from_fn(f: impl Fn(u64) -> f64 + Send + Sync + 'static) -> Schedule {
        Schedule::Function(Arc::new(f))
    }

    /// The value at step `t`.
    pub fn value(&self, t: u64) -> f64 {
        match self {
            Schedule::Constant(v) => *v,
            Schedule::StepDecay { initial, factor, every } => initial * factor.powf((t / every.max(&1)) as f64),
            Schedule::Exponential { initial, gamma } => initial * gamma.powf(t as f64),
            Schedule::Cosine { initial, last, steps } => {
                let progress = t.min(*steps) as f64 / (*steps).max(1) as f64;
                last + (initial - last) * 0.5 * (1.0 + (std::f64::consts::PI * progress).cos())
            }
            Schedule::LinearWarmup { steps, then } => {
                if t < *steps {
                    then.value(0) * (t + 1) as f64 / (*steps + 1) as f64
                } else {
                    then.value(t - steps)
                }
            }
            Schedule::WarmupFrom {
                start_factor,
                steps,
                then,
            } => {
                if t < *steps {
                    then.value(0) * (start_factor + (1.0 - start_factor) * t as f64 / *steps as f64)
                } else {
                    then.value(t - steps)
                }
            }
            Schedule::Piecewise { boundaries, values } => {
                // A deserialized schedule may be malformed: NaN, which the optimizer refuses.
                let j = boundaries.partition_point(|&b| b <= t);
                values.get(j).or(values.last()).copied().unwrap_or(f64::NAN)
            }
            Schedule::Function(f) => f(t),
        }
    }

    /// Whether the value is the same at every step.
    pub fn is_constant(&self) -> bool {
        matches!(self, Schedule::Constant(_))
    }
}

impl From<f64> for Schedule {
    fn from(v: f64) -> Schedule {
        Schedule::Constant(v)
    }
}
