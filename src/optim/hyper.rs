//! Hyper-parameters of the built-in optimizers: step-size and momentum
//! schedules, the convention for a changing step size, and their checks.

use super::Schedule;
use crate::checks::{check_lr, check_momentum};
use crate::{Error, Float, Result};

/// How heavy ball and Nesterov carry their momentum when the step size
/// changes between steps. Both give the same iterates while η is constant.
///
/// With v_t = θ_t − θ_{t−1} and b_t the PyTorch momentum buffer:
///
/// | | [`Convention::Displacement`] (default) | [`Convention::PyTorch`] |
/// |---|---|---|
/// | HB | θ_{t+1} = θ_t − η_t g_t + β_t v_t | b_t = β_t b_{t−1} + g_t, θ_{t+1} = θ_t − η_t b_t |
/// | NAG | θ_{t+1} = θ_t − η_t g_t + β_t v_t − β_t η_t (g_t − g_{t−1}) | b_t = β_t b_{t−1} + g_t, θ_{t+1} = θ_t − η_t (g_t + β_t b_t) |
///
/// In the displacement form a new step size acts on the new gradient only:
/// the momentum term β_t v_t is the last displacement, whatever step size
/// produced it. In PyTorch's buffer form the whole accumulated buffer is
/// multiplied by the current η_t, so the momentum term is rescaled by
/// η_t / η_{t−1} when η changes (HB: θ_{t+1} − θ_t = −η_t g_t +
/// β_t (η_t/η_{t−1}) v_t). The displacement form is the one the theory
/// analyses ([`crate::theory`]); the PyTorch form reproduces
/// `torch.optim.SGD` with an `lr_scheduler` iterate for iterate.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
pub enum Convention {
    /// The momentum term is the last displacement θ_t − θ_{t−1}.
    #[default]
    Displacement,
    /// PyTorch's momentum buffer b_t = β_t b_{t−1} + g_t, scaled by η_t.
    PyTorch,
}

/// The step size at step `t` from `schedule`, checked: finite, > 0, and
/// still so once rounded to `T`.
pub(crate) fn lr_at<T: Float>(schedule: &Schedule, t: u64) -> Result<f64> {
    let v = schedule.value(t);
    let ok = check_lr(v).is_ok() && {
        let c = T::cast(v);
        c.finite() && c > T::zero()
    };
    if ok {
        Ok(v)
    } else {
        Err(Error::invalid(
            "lr",
            v,
            format!(
                "a finite number > 0 that stays finite and > 0 in {} (schedule value at step {t})",
                T::NAME
            ),
        ))
    }
}

/// The momentum at step `t` from `schedule`, checked: in [0, 1) and still
/// below 1 once rounded to `T` (0.99999999 rounds to 1 in `f32`).
pub(crate) fn momentum_at<T: Float>(schedule: &Schedule, t: u64) -> Result<f64> {
    let v = schedule.value(t);
    if check_momentum(v).is_ok() && T::cast(v) < T::one() {
        Ok(v)
    } else {
        Err(Error::invalid(
            "momentum",
            v,
            format!(
                "a number in [0, 1) that stays below 1 in {} (schedule value at step {t})",
                T::NAME
            ),
        ))
    }
}

/// Checks a step-size schedule's value at step `t` when the float type is
/// not known yet (in `f64`; the first `f32` step checks it again in `f32`).
pub(crate) fn check_lr_schedule(schedule: &Schedule, t: u64) -> Result<()> {
    lr_at::<f64>(schedule, t).map(|_| ())
}

/// As [`check_lr_schedule`] for a momentum.
pub(crate) fn check_momentum_schedule(schedule: &Schedule, t: u64) -> Result<()> {
    momentum_at::<f64>(schedule, t).map(|_| ())
}

/// The inherent methods heavy ball and Nesterov share (they differ only in
/// their update), generated for a struct with fields `lr`, `momentum`
/// (schedules), `convention` and `core`, and a `NAME` and `buffer_names`.
macro_rules! momentum_methods {
    () => {
        /// The optimizer with step size and momentum given as schedules
        /// ([`Schedule`](crate::optim::Schedule)); a plain `f64` converts
        /// into a constant schedule.
        ///
        /// # Errors
        /// [`crate::Error::InvalidParameter`] if the values at step 0 are out
        /// of range (step size finite and > 0, momentum in [0, 1)); later
        /// values are checked at each step.
        pub fn with_schedules(
            lr: impl Into<$crate::optim::Schedule>,
            momentum: impl Into<$crate::optim::Schedule>,
        ) -> $crate::Result<Self> {
            let (lr, momentum) = (lr.into(), momentum.into());
            $crate::optim::hyper::check_lr_schedule(&lr, 0)?;
            $crate::optim::hyper::check_momentum_schedule(&momentum, 0)?;
            Ok(Self {
                lr,
                momentum,
                convention: $crate::optim::Convention::Displacement,
                core: $crate::optim::state::Core::new(Self::buffer_names($crate::optim::Convention::Displacement)),
            })
        }

        /// Uses `convention` for the momentum when the step size changes
        /// (see [`Convention`](crate::optim::Convention)); forgets any state.
        #[must_use = "a builder method returns the changed value"]
        pub fn convention(mut self, convention: $crate::optim::Convention) -> Self {
            self.convention = convention;
            self.core.set_buffer_names(Self::buffer_names(convention));
            self
        }

        /// The convention in use.
        pub fn convention_in_use(&self) -> $crate::optim::Convention {
            self.convention
        }

        /// The step size η the next step will use (its schedule's value; NaN
        /// or out of range if the schedule gives such a value, which the step
        /// will refuse).
        pub fn lr(&self) -> f64 {
            self.lr.value(self.core.steps())
        }

        /// The momentum β the next step will use.
        pub fn momentum(&self) -> f64 {
            self.momentum.value(self.core.steps())
        }

        /// The step-size schedule.
        pub fn lr_schedule(&self) -> &$crate::optim::Schedule {
            &self.lr
        }

        /// The momentum schedule.
        pub fn momentum_schedule(&self) -> &$crate::optim::Schedule {
            &self.momentum
        }

        /// Uses step size `lr` from the next step on; velocity and previous
        /// gradient are kept.
        ///
        /// # Errors
        /// [`crate::Error::InvalidParameter`] unless `lr` is finite and > 0;
        /// the optimizer is then unchanged.
        pub fn set_lr(&mut self, lr: f64) -> $crate::Result<()> {
            self.set_lr_schedule($crate::optim::Schedule::Constant(lr))
        }

        /// Uses momentum `momentum` from the next step on; the state is kept.
        ///
        /// # Errors
        /// [`crate::Error::InvalidParameter`] unless `momentum` is in [0, 1).
        pub fn set_momentum(&mut self, momentum: f64) -> $crate::Result<()> {
            self.set_momentum_schedule($crate::optim::Schedule::Constant(momentum))
        }

        /// Replaces the step-size schedule (its value at the next step is
        /// checked); the state is kept.
        ///
        /// # Errors
        /// [`crate::Error::InvalidParameter`] if the value at the next step is
        /// out of range.
        pub fn set_lr_schedule(&mut self, lr: $crate::optim::Schedule) -> $crate::Result<()> {
            $crate::optim::hyper::check_lr_schedule(&lr, self.core.steps())?;
            self.lr = lr;
            Ok(())
        }

        /// Replaces the momentum schedule; the state is kept.
        ///
        /// # Errors
        /// [`crate::Error::InvalidParameter`] if the value at the next step is
        /// out of range.
        pub fn set_momentum_schedule(&mut self, momentum: $crate::optim::Schedule) -> $crate::Result<()> {
            $crate::optim::hyper::check_momentum_schedule(&momentum, self.core.steps())?;
            self.momentum = momentum;
            Ok(())
        }

        fn hyperparameters(&self) -> [(&'static str, f64); 2] {
            [("lr", self.lr()), ("momentum", self.momentum())]
        }

        $crate::optim::hyper::bookkeeping_methods!();
    };
}
pub(crate) use momentum_methods;

/// Inherent `name`, `steps_taken`, `precision`, `reset`, `state` and
/// `set_state` for a struct with a `core` field, a `NAME` constant and a
/// `hyperparameters()` method.
macro_rules! bookkeeping_methods {
    () => {
        /// A short stable name: `"gradient_descent"`, `"heavy_ball"` or
        /// `"nesterov"`.
        pub fn name(&self) -> &'static str {
            Self::NAME
        }

        /// Whether each step first checks the parameters and the gradient for
        /// NaN and infinities (the default, `true`). With the check a step
        /// refuses non-finite input with [`crate::Error::NonFinite`] and
        /// changes nothing; it costs one extra read of θ and g (two of the
        /// seven memory passes of a displacement-form NAG step). Without it a
        /// step reads and writes each array once and NaN or infinities
        /// propagate into the parameters and the state, as in PyTorch.
        /// Shapes are checked either way.
        #[must_use = "a builder method returns the changed value"]
        pub fn check_finite(mut self, check: bool) -> Self {
            self.core.set_check_finite(check);
            self
        }

        /// Whether steps check for non-finite input (see `check_finite`).
        pub fn checks_finite(&self) -> bool {
            self.core.checks_finite()
        }

        /// Steps taken since construction or the last reset.
        pub fn steps_taken(&self) -> u64 {
            self.core.steps()
        }

        /// The float type fixed by the first step (`None` before it).
        pub fn precision(&self) -> Option<$crate::Precision> {
            self.core.precision()
        }

        /// Forgets the history (velocity, previous gradient, step count, the
        /// shapes and float type of the first step): the next step is a first
        /// step again. Hyper-parameters and schedules are kept.
        pub fn reset(&mut self) {
            self.core.reset();
        }

        /// A copy of the complete state.
        pub fn state(&self) -> $crate::optim::OptimizerState {
            self.core.state(Self::NAME, &self.hyperparameters())
        }

        /// Restores a state produced by `state()` of an optimizer of the same
        /// kind and convention. The hyper-parameters recorded in the state are
        /// not compared: the optimizer keeps its own schedules, so a state can
        /// be carried over to an optimizer with another step size.
        ///
        /// # Errors
        /// [`crate::Error::InvalidParameter`] if the state belongs to another
        /// optimizer or convention (other buffer names), records steps without
        /// tensors, or holds `f64` values that an `f32` state cannot;
        /// [`crate::Error::ShapeMismatch`] if a buffer's length does not
        /// match its shape; [`crate::Error::NonFinite`] for NaN or infinite
        /// entries. The current state is then unchanged.
        pub fn set_state(&mut self, state: &$crate::optim::OptimizerState) -> $crate::Result<()> {
            self.core.set_state(state, Self::NAME)
        }
    };
}
pub(crate) use bookkeeping_methods;

/// The [`crate::Optimizer`] methods other than `step`, delegating to the
/// inherent ones.
macro_rules! optimizer_trait_methods {
    () => {
        fn reset(&mut self) {
            Self::reset(self)
        }
        fn state(&self) -> $crate::optim::OptimizerState {
            Self::state(self)
        }
        fn set_state(&mut self, state: &$crate::optim::OptimizerState) -> $crate::Result<()> {
            Self::set_state(self, state)
        }
        fn name(&self) -> &'static str {
            Self::NAME
        }
        fn is_linear(&self) -> bool {
            true
        }
    };
}
pub(crate) use optimizer_trait_methods;
