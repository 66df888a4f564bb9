//! Momentum optimizers behind one [`Optimizer`] trait.
//!
//! All three methods take the gradient at the *current* iterate only, so a
//! training loop never evaluates a look-ahead point:
//!
//! ```text
//! GD : θ_{t+1} = θ_t − η g_t
//! HB : θ_{t+1} = θ_t − η g_t + β (θ_t − θ_{t−1})
//! NAG: θ_{t+1} = θ_t − η g_t + β (θ_t − θ_{t−1}) − β η (g_t − g_{t−1})
//! ```
//!
//! with the first-step convention θ_{−1} = θ_0 and g_{−1} = 0 (so NAG's first
//! step is −η (1 + β) g_0). With it, [`HeavyBall`] equals PyTorch's
//! `SGD(lr=η, momentum=β)` and [`Nesterov`] equals
//! `SGD(lr=η, momentum=β, nesterov=True, dampening=0)` iterate for iterate.
//! Step size and momentum may follow a [`Schedule`]; when the step size
//! changes, the two conventions differ ([`Convention`]).
//!
//! The knobs of `torch.optim.SGD` act in PyTorch's order on every method —
//! [`GradientClip`] over the whole set, maximize, coupled weight decay,
//! dampening (heavy ball), decoupled weight decay — with [`ParamGroup`]s for
//! per-group step sizes, momenta and decays, and [`ReduceOnPlateau`] for a
//! step size driven by the loss (see [`knobs`] for the formulas; all equal
//! torch iterate for iterate, `tests/torch_knobs.rs`).
//!
//! Parameters are any [`ParametersMut`] set of tensors and gradients any
//! [`Parameters`] set with the same shapes: `Vec<T>`, `[T]`,
//! `nalgebra::DVector<T>` / `DMatrix<T>`, ndarray arrays (feature
//! `ndarray`), tuples and arrays of them, or your own struct, for
//! `T = f32` or `f64`.
//!
//! ```
//! use ntk_momentum::optim::Schedule;
//! use ntk_momentum::{HeavyBall, Nesterov, Optimizer};
//!
//! let nag = Nesterov::new(0.1, 0.9)?; // no annotations: the float type is fixed at the first step
//! let (lr, mu, name) = (nag.lr(), nag.momentum(), nag.name());
//! let state = nag.state();
//! let mut nag2 = nag.clone();
//! nag2.reset();
//! assert!(HeavyBall::new(-1.0, 0.5).is_err());
//!
//! // A weight matrix and a bias, one step, a cosine step size.
//! let mut hb = HeavyBall::with_schedules(Schedule::cosine(0.1, 0.01, 50)?, 0.9)?;
//! let (mut w, mut b) = (vec![1.0_f32; 6], vec![0.0_f32; 2]);
//! hb.step(&mut (&mut w, &mut b), &(&vec![1.0_f32; 6], &vec![1.0_f32; 2]))?;
//! assert_eq!(b, vec![-0.1, -0.1]);
//! # let _ = (lr, mu, name, state);
//! # Ok::<(), ntk_momentum::Error>(())
//! ```

mod elementwise;
mod gradient_descent;
mod heavy_ball;
pub(crate) mod hyper;
pub mod knobs;
mod minimize;
mod nesterov;
mod params;
mod plateau;
mod schedule;
pub(crate) mod state;

pub use gradient_descent::GradientDescent;
pub use heavy_ball::HeavyBall;
pub use hyper::Convention;
pub use knobs::{Direction, GradientClip, HyperParameters, ParamGroup};
pub use minimize::{minimize, MinimizeOptions, MinimizeReport};
pub use nesterov::Nesterov;
pub use params::{Parameters, ParametersMut, Shape, MAX_DIMS};
pub use plateau::{PlateauMode, ReduceOnPlateau, ThresholdMode};
pub use schedule::Schedule;
pub use state::{OptimizerState, TensorState};

use crate::Result;

/// An iterative first-order optimizer over parameters `P` with gradients
/// `G` (by default the same type).
///
/// `step` receives the gradient at the current parameters and updates them in
/// place. The optimizer remembers what it needs (velocity, previous gradient,
/// per tensor) and the shapes of its first step; its whole state can be read
/// with [`Optimizer::state`] and restored with [`Optimizer::set_state`], so a
/// run can be checkpointed and resumed bit-identically. The trait is
/// object-safe: `Box<dyn Optimizer<Vec<f64>>>` holds any of them.
///
/// The built-in optimizers implement it for every `P: ParametersMut` and
/// `G: Parameters` with the same scalar, and also have all methods but
/// `step` as inherent methods, so `nag.name()` or `nag.state()` need no
/// annotations.
///
/// # Implementing it
///
/// A user optimizer needs `step`, `reset`, `state`, `set_state` and `name`.
/// [`Optimizer::is_linear`] defaults to `false`; return `true` only if every
/// update is a linear combination of the current and past gradients and
/// parameter differences with coefficients that depend on the step count
/// only, not on the data and not on θ itself (GD, heavy ball, Nesterov,
/// with any schedule, dampening or groups; not with weight decay, clipping
/// or maximize). The
/// training loop's exact kernel-space fast path relies on that and refuses
/// optimizers that do not claim it (Adam, sign methods, anything with an
/// elementwise nonlinearity).
pub trait Optimizer<P: ?Sized, G: ?Sized = P> {
    /// One update from `grad`, the gradient at the current `params`.
    ///
    /// # Errors
    /// [`crate::Error::ShapeMismatch`] if `grad` and `params` differ in their
    /// number of tensors or shapes, a declared shape disagrees with its
    /// storage, or the shapes differ from those of the first step;
    /// [`crate::Error::NonFinite`] if the gradient or the parameters hold NaN
    /// or an infinity (the built-in optimizers check this unless built with
    /// `check_finite(false)`); [`crate::Error::InvalidParameter`] if a schedule's
    /// value at this step is out of range; [`crate::Error::Unsupported`]
    /// for another float type than the first step's. On error neither
    /// `params` nor the optimizer state is changed.
    fn step(&mut self, params: &mut P, grad: &G) -> Result<()>;
    /// Forgets the history (velocity, previous gradient, step count) so the
    /// next step is a first step again. Hyper-parameters are kept.
    fn reset(&mut self);
    /// A copy of the complete state.
    fn state(&self) -> OptimizerState;
    /// Restores a state produced by [`Optimizer::state`] of an optimizer of
    /// the same kind.
    ///
    /// # Errors
    /// If the state belongs to another optimizer or is inconsistent; the
    /// current state is then unchanged.
    fn set_state(&mut self, state: &OptimizerState) -> Result<()>;
    /// A short stable name, e.g. `"nesterov"`.
    fn name(&self) -> &'static str;
    /// Whether every update is linear in the gradients (see the trait docs).
    fn is_linear(&self) -> bool {
        false
    }
    /// The optimizer's hyper-parameters, group by group, for changes between
    /// steps (a [`ReduceOnPlateau`] schedule, a training observer); `None`
    /// (the default) for an optimizer that has none to change.
    fn hyperparameters_mut(&mut self) -> Option<&mut dyn HyperParameters> {
        None
    }
}

impl<P: ?Sized, G: ?Sized, O: Optimizer<P, G> + ?Sized> Optimizer<P, G> for Box<O> {
    fn step(&mut self, params: &mut P, grad: &G) -> Result<()> {
        (**self).step(params, grad)
    }
    fn reset(&mut self) {
        (**self).reset()
    }
    fn state(&self) -> OptimizerState {
        (**self).state()
    }
    fn set_state(&mut self, state: &OptimizerState) -> Result<()> {
        (**self).set_state(state)
    }
    fn name(&self) -> &'static str {
        (**self).name()
    }
    fn is_linear(&self) -> bool {
        (**self).is_linear()
    }
    fn hyperparameters_mut(&mut self) -> Option<&mut dyn HyperParameters> {
        (**self).hyperparameters_mut()
    }
}
