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
/// their update), generated for a struct with fields `settings`,
/// `convention` and `core`, a `NAME`, a `KIND` and `buffer_names`.
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
                settings: $crate::optim::knobs::Settings::new(Self::KIND, lr, momentum),
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

        /// The momentum β group 0 will use at the next step.
        pub fn momentum(&self) -> f64 {
            self.settings.own().momentum.value(self.core.steps())
        }

        /// Group 0's momentum schedule.
        pub fn momentum_schedule(&self) -> &$crate::optim::Schedule {
            &self.settings.own().momentum
        }

        /// Uses momentum `momentum` in group 0 from the next step on; the
        /// state is kept.
        ///
        /// # Errors
        /// [`crate::Error::InvalidParameter`] unless `momentum` is in [0, 1).
        pub fn set_momentum(&mut self, momentum: f64) -> $crate::Result<()> {
            self.set_momentum_schedule($crate::optim::Schedule::Constant(momentum))
        }

        /// Replaces group 0's momentum schedule; the state is kept.
        ///
        /// # Errors
        /// [`crate::Error::InvalidParameter`] if the value at the next step is
        /// out of range.
        pub fn set_momentum_schedule(&mut self, momentum: $crate::optim::Schedule) -> $crate::Result<()> {
            self.settings.set_momentum(0, momentum, self.core.steps())
        }

        $crate::optim::hyper::bookkeeping_methods!();
    };
}
pub(crate) use momentum_methods;

/// Inherent `name`, `steps_taken`, `precision`, `reset`, `state`,
/// `set_state`, the step size and the knobs every built-in optimizer has,
/// for a struct with `core` and `settings` fields and a `NAME` constant.
macro_rules! bookkeeping_methods {
    () => {
        /// The step size η group 0 will use at the next step (its schedule's
        /// value; NaN or out of range if the schedule gives such a value,
        /// which the step will refuse).
        pub fn lr(&self) -> f64 {
            self.settings.own().lr.value(self.core.steps())
        }

        /// Group 0's step-size schedule.
        pub fn lr_schedule(&self) -> &$crate::optim::Schedule {
            &self.settings.own().lr
        }

        /// Uses step size `lr` in group 0 from the next step on; the state is
        /// kept.
        ///
        /// # Errors
        /// [`crate::Error::InvalidParameter`] unless `lr` is finite and > 0;
        /// the optimizer is then unchanged.
        pub fn set_lr(&mut self, lr: f64) -> $crate::Result<()> {
            self.set_lr_schedule($crate::optim::Schedule::Constant(lr))
        }

        /// Replaces group 0's step-size schedule (its value at the next step
        /// is checked); the state is kept.
        ///
        /// # Errors
        /// [`crate::Error::InvalidParameter`] if that value is out of range.
        pub fn set_lr_schedule(&mut self, lr: $crate::optim::Schedule) -> $crate::Result<()> {
            self.settings.set_lr(0, lr, self.core.steps())
        }

        /// Coupled weight decay λ in group 0 (and in groups added later that
        /// do not set their own): the gradient becomes g + λθ before the
        /// momentum, PyTorch's `weight_decay` (see [`crate::optim::knobs`]
        /// for where each knob acts). A constant or a schedule.
        ///
        /// # Errors
        /// [`crate::Error::InvalidParameter`] unless its value at the next
        /// step is finite and ≥ 0.
        pub fn weight_decay(mut self, weight_decay: impl Into<$crate::optim::Schedule>) -> $crate::Result<Self> {
            self.settings
                .set_weight_decay(0, weight_decay.into(), self.core.steps())?;
            Ok(self)
        }

        /// Decoupled weight decay λ' in group 0: θ_{t+1} = θ_t − η d_t −
        /// η λ' θ_t, the decay bypassing the momentum (SGDW; Optax's
        /// `add_decayed_weights` after the momentum trace). A constant or a
        /// schedule.
        ///
        /// # Errors
        /// [`crate::Error::InvalidParameter`] unless its value at the next
        /// step is finite and ≥ 0.
        pub fn decoupled_weight_decay(
            mut self,
            weight_decay: impl Into<$crate::optim::Schedule>,
        ) -> $crate::Result<Self> {
            self.settings
                .set_decoupled_weight_decay(0, weight_decay.into(), self.core.steps())?;
            Ok(self)
        }

        /// Ascends instead of descends: the gradient is negated after
        /// clipping and before weight decay (PyTorch's `maximize=True`).
        #[must_use = "a builder method returns the changed value"]
        pub fn maximize(mut self) -> Self {
            self.settings.direction = $crate::optim::Direction::Maximize;
            self
        }

        /// Whether the optimizer minimizes (the default) or maximizes.
        pub fn direction(&self) -> $crate::optim::Direction {
            self.settings.direction
        }

        /// Clips the gradient over the whole parameter set before each step
        /// ([`GradientClip`](crate::optim::GradientClip)).
        ///
        /// # Errors
        /// [`crate::Error::InvalidParameter`] unless the threshold is finite
        /// and > 0.
        pub fn clip(mut self, clip: $crate::optim::GradientClip) -> $crate::Result<Self> {
            self.settings.set_clip(clip)?;
            Ok(self)
        }

        /// The clipping in use.
        pub fn clipping(&self) -> $crate::optim::GradientClip {
            self.settings.clip
        }

        /// The gradient's global L2 norm before clipping at the last
        /// successful step (what `torch.nn.utils.clip_grad_norm_` returns);
        /// `None` without clipping or before the first step.
        pub fn last_gradient_norm(&self) -> Option<f64> {
            self.settings.last_norm
        }

        /// Adds a parameter group ([`ParamGroup`](crate::optim::ParamGroup));
        /// it becomes group [`group_count`](Self::group_count)` − 1`.
        ///
        /// # Errors
        /// [`crate::Error::InvalidParameter`] if one of its tensors is in
        /// another group, it sets a momentum or dampening where the method
        /// has none (a dampening for Nesterov), or an inherited schedule is
        /// out of range at the next step. A tensor index beyond the set is
        /// refused at the step.
        pub fn group(mut self, group: $crate::optim::ParamGroup) -> $crate::Result<Self> {
            self.settings.add_group(group, self.core.steps())?;
            Ok(self)
        }

        /// Number of parameter groups (1 + the groups added).
        pub fn group_count(&self) -> usize {
            self.settings.groups.len()
        }

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
        /// shapes and float type of the first step, the last gradient norm):
        /// the next step is a first step again. Hyper-parameters and
        /// schedules are kept.
        pub fn reset(&mut self) {
            self.core.reset();
            self.settings.last_norm = None;
        }

        /// A copy of the complete state.
        pub fn state(&self) -> $crate::optim::OptimizerState {
            self.core
                .state(Self::NAME, self.settings.record(self.core.steps()))
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
            self.settings.is_linear()
        }
        fn hyperparameters_mut(&mut self) -> Option<&mut dyn $crate::optim::HyperParameters> {
            Some(self)
        }
    };
}
pub(crate) use optimizer_trait_methods;

/// [`HyperParameters`](crate::optim::HyperParameters) for a built-in optimizer.
macro_rules! hyperparameters_impl {
    ($t:ty) => {
        impl $crate::optim::HyperParameters for $t {
            fn group_count(&self) -> usize {
                self.settings.groups.len()
            }
            fn group_lr(&self, group: usize) -> Option<f64> {
                self.settings.lr(group, self.core.steps())
            }
            fn set_group_lr(&mut self, group: usize, lr: f64) -> $crate::Result<()> {
                self.settings
                    .set_lr(group, $crate::optim::Schedule::Constant(lr), self.core.steps())
            }
            fn group_momentum(&self, group: usize) -> Option<f64> {
                self.settings.momentum(group, self.core.steps())
            }
            fn set_group_momentum(&mut self, group: usize, momentum: f64) -> $crate::Result<()> {
                self.settings.set_momentum(
                    group,
                    $crate::optim::Schedule::Constant(momentum),
                    self.core.steps(),
                )
            }
            fn group_weight_decay(&self, group: usize) -> Option<f64> {
                self.settings.weight_decay(group, self.core.steps())
            }
            fn set_group_weight_decay(&mut self, group: usize, weight_decay: f64) -> $crate::Result<()> {
                self.settings.set_weight_decay(
                    group,
                    $crate::optim::Schedule::Constant(weight_decay),
                    self.core.steps(),
                )
            }
        }
    };
}
pub(crate) use hyperparameters_impl;
