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
//!
//! Parameters live in any container implementing [`Parameters`]:
//! `Vec<T>`, `nalgebra::DVector<T>` and `nalgebra::DMatrix<T>` for
//! `T = f32` or `f64`.

mod gradient_descent;
mod heavy_ball;
mod minimize;
mod nesterov;

pub use gradient_descent::GradientDescent;
pub use heavy_ball::HeavyBall;
pub use minimize::{minimize, MinimizeOptions, MinimizeReport, StopReason};
pub use nesterov::Nesterov;

use nalgebra::{DMatrix, DVector};

use crate::{Error, Float, Result};

/// A parameter container the optimizers can update: a flat, contiguous
/// slice of `f32` or `f64` with a (rows, columns) shape.
///
/// Implemented for `Vec<T>` (shape `(len, 1)`), `DVector<T>` and
/// `DMatrix<T>` (their nalgebra shape; storage is column-major and the
/// optimizers are elementwise, so the layout does not matter). Implement it
/// for your own container by exposing its storage as a slice.
pub trait Parameters {
    /// The element type, `f32` or `f64`.
    type Scalar: Float;
    /// (rows, columns); a gradient must have the same shape as its parameters.
    fn shape(&self) -> (usize, usize);
    /// All entries, in storage order.
    fn as_slice(&self) -> &[Self::Scalar];
    /// All entries, mutably, in storage order.
    fn as_mut_slice(&mut self) -> &mut [Self::Scalar];
}

impl<T: Float> Parameters for Vec<T> {
    type Scalar = T;
    fn shape(&self) -> (usize, usize) {
        (self.len(), 1)
    }
    fn as_slice(&self) -> &[T] {
        self
    }
    fn as_mut_slice(&mut self) -> &mut [T] {
        self
    }
}

impl<T: Float> Parameters for DVector<T> {
    type Scalar = T;
    fn shape(&self) -> (usize, usize) {
        (self.nrows(), 1)
    }
    fn as_slice(&self) -> &[T] {
        nalgebra::Matrix::as_slice(self)
    }
    fn as_mut_slice(&mut self) -> &mut [T] {
        nalgebra::Matrix::as_mut_slice(self)
    }
}

impl<T: Float> Parameters for DMatrix<T> {
    type Scalar = T;
    fn shape(&self) -> (usize, usize) {
        (self.nrows(), self.ncols())
    }
    fn as_slice(&self) -> &[T] {
        nalgebra::Matrix::as_slice(self)
    }
    fn as_mut_slice(&mut self) -> &mut [T] {
        nalgebra::Matrix::as_mut_slice(self)
    }
}

/// An iterative first-order optimizer.
///
/// `step` receives the gradient at the current parameters and updates them in
/// place. The optimizer remembers what it needs (velocity, previous gradient)
/// and the parameter shape of its first step; its whole state can be read with
/// [`Optimizer::state`] and restored with [`Optimizer::set_state`], so a run
/// can be checkpointed and resumed bit-identically.
///
/// # Implementing it
///
/// A user optimizer needs `step`, `reset`, `state`, `set_state` and `name`.
/// [`Optimizer::is_linear`] defaults to `false`; return `true` only if every
/// update is a fixed linear combination of the current and past gradients and
/// parameter differences (GD, heavy ball, Nesterov, constant schedules). The
/// training loop's exact kernel-space fast path relies on that and refuses
/// optimizers that do not claim it (Adam, sign methods, anything with an
/// elementwise nonlinearity).
pub trait Optimizer<P: Parameters> {
    /// One update from `grad`, the gradient at the current `params`.
    ///
    /// # Errors
    /// [`Error::ShapeMismatch`] if `grad` and `params` differ in shape, or
    /// differ from the shape of earlier steps; [`Error::NonFinite`] if the
    /// gradient holds NaN or an infinity. On error neither `params` nor the
    /// optimizer state is changed.
    fn step(&mut self, params: &mut P, grad: &P) -> Result<()>;
    /// Forgets the history (velocity, previous gradient, step count) so the
    /// next step is a first step again. Hyper-parameters are kept.
    fn reset(&mut self);
    /// A copy of the complete state.
    fn state(&self) -> OptimizerState<P::Scalar>;
    /// Restores a state produced by [`Optimizer::state`] of an optimizer of
    /// the same kind and hyper-parameters.
    ///
    /// The shape recorded in the state replaces the current one.
    ///
    /// # Errors
    /// [`Error::InvalidParameter`] if the state belongs to another optimizer
    /// or other hyper-parameters, names other buffers than this optimizer's,
    /// or records steps or buffers without a shape;
    /// [`Error::ShapeMismatch`] if a buffer's length does not match the
    /// recorded shape; [`Error::NonFinite`] if a buffer holds NaN or an
    /// infinity. The current state is then unchanged.
    fn set_state(&mut self, state: OptimizerState<P::Scalar>) -> Result<()>;
    /// A short stable name, e.g. `"nesterov"`.
    fn name(&self) -> &'static str;
    /// Whether every update is linear in the gradients (see the trait docs).
    fn is_linear(&self) -> bool {
        false
    }
}

/// The complete state of an optimizer: enough to continue a run exactly.
#[derive(Clone, Debug, PartialEq)]
pub struct OptimizerState<T> {
    /// The optimizer's [`Optimizer::name`].
    pub optimizer: String,
    /// Hyper-parameters by name, e.g. `[("lr", 0.1), ("momentum", 0.9)]`.
    pub hyperparameters: Vec<(String, f64)>,
    /// Number of steps taken since construction or the last reset.
    pub step: u64,
    /// Parameter shape fixed by the first step (`None` before it).
    pub shape: Option<(usize, usize)>,
    /// Named state buffers, each with `rows * columns` entries in storage
    /// order (e.g. `"velocity"`, `"previous_gradient"`).
    pub buffers: Vec<(String, Vec<T>)>,
}

/// Validates a learning rate: finite and > 0.
pub(crate) fn check_lr(lr: f64) -> Result<f64> {
    if lr.is_finite() && lr > 0.0 {
        Ok(lr)
    } else {
        Err(Error::invalid("lr", lr, "a finite number > 0"))
    }
}

/// Validates a learning rate for an optimizer computing in `T`: finite,
/// positive, and still so once converted to `T` (in `f32`, 1e39 would become
/// +inf and 1e-50 would become 0).
pub(crate) fn check_lr_for<T: Float>(lr: f64) -> Result<f64> {
    let lr = check_lr(lr)?;
    let converted = T::cast(lr);
    if converted.finite() && converted > T::zero() {
        Ok(lr)
    } else {
        Err(Error::invalid(
            "lr",
            lr,
            format!("a finite number > 0 that stays finite and > 0 in {}", T::NAME),
        ))
    }
}

/// Validates a momentum: in [0, 1).
pub(crate) fn check_momentum(momentum: f64) -> Result<f64> {
    if (0.0..1.0).contains(&momentum) {
        Ok(momentum)
    } else {
        Err(Error::invalid("momentum", momentum, "a number in [0, 1)"))
    }
}

/// Validates a momentum for float type `T`: in [0, 1) and still below 1 once
/// rounded to `T` (0.99999999 rounds to 1.0 in `f32`, which never decays).
pub(crate) fn check_momentum_for<T: Float>(momentum: f64) -> Result<f64> {
    let momentum = check_momentum(momentum)?;
    if T::cast(momentum) < T::one() {
        Ok(momentum)
    } else {
        Err(Error::invalid(
            "momentum",
            momentum,
            format!("a number in [0, 1) that stays below 1 in {}", T::NAME),
        ))
    }
}

fn fmt_shape(s: (usize, usize)) -> String {
    format!("{} x {}", s.0, s.1)
}

/// Index of the first non-finite entry, if any. The common all-finite case
/// is one vectorised pass: `0 · x` is 0 for finite `x` and NaN otherwise.
pub(crate) fn first_non_finite<T: Float>(xs: &[T]) -> Option<usize> {
    use rayon::prelude::*;
    let all_finite = |c: &[T]| {
        let mut acc = T::zero();
        for &x in c {
            acc += x * T::zero();
        }
        acc.finite()
    };
    let finite = if crate::linalg::parallel(xs.len()) {
        xs.par_chunks(CHUNK).all(all_finite)
    } else {
        all_finite(xs)
    };
    if finite {
        None
    } else {
        xs.iter().position(|x| !x.finite())
    }
}

/// Entries per task when an elementwise pass is split across threads.
pub(crate) const CHUNK: usize = 1 << 14;

/// Checks a step's inputs against each other and the recorded shape.
pub(crate) fn check_step<P: Parameters>(params: &P, grad: &P, recorded: Option<(usize, usize)>) -> Result<()> {
    let (ps, gs) = (params.shape(), grad.shape());
    if gs != ps {
        return Err(Error::shape("gradient", fmt_shape(ps), fmt_shape(gs)));
    }
    if let Some(r) = recorded {
        if r != ps {
            return Err(Error::shape(
                "parameters (shape fixed by the first step; call reset() to change it)",
                fmt_shape(r),
                fmt_shape(ps),
            ));
        }
    }
    if let Some(i) = first_non_finite(grad.as_slice()) {
        return Err(Error::NonFinite {
            what: "gradient".into(),
            location: format!("entry {i} (storage order), value {}", grad.as_slice()[i]),
        });
    }
    Ok(())
}

/// Checks a state against an optimizer's name, hyper-parameters and buffer
/// names, its buffers against its shape, and their entries for finiteness,
/// before it is restored.
pub(crate) fn check_state<T: Float>(
    state: &OptimizerState<T>,
    name: &str,
    hyper: &[(&str, f64)],
    buffers: &[&str],
) -> Result<()> {
    if state.optimizer != name {
        return Err(Error::invalid(
            "state.optimizer",
            &state.optimizer,
            format!("\"{name}\""),
        ));
    }
    let same_hyper = state.hyperparameters.len() == hyper.len()
        && state
            .hyperparameters
            .iter()
            .zip(hyper)
            .all(|((n1, v1), (n2, v2))| n1 == n2 && v1.to_bits() == v2.to_bits());
    if !same_hyper {
        return Err(Error::invalid(
            "state.hyperparameters",
            format!("{:?}", state.hyperparameters),
            format!("{hyper:?} (the optimizer's own)"),
        ));
    }
    match state.shape {
        None => {
            if state.step != 0 || !state.buffers.is_empty() {
                return Err(Error::invalid(
                    "state",
                    format!("step {} with {} buffers and no shape", state.step, state.buffers.len()),
                    "step 0 and no buffers when no shape is recorded",
                ));
            }
        }
        Some((r, c)) => {
            let names: Vec<&str> = state.buffers.iter().map(|(n, _)| n.as_str()).collect();
            if names != buffers {
                return Err(Error::invalid(
                    "state.buffers",
                    format!("{names:?}"),
                    format!("{buffers:?}"),
                ));
            }
            let Some(len) = r.checked_mul(c) else {
                return Err(Error::shape(
                    "state.shape",
                    "rows x columns with a representable entry count",
                    fmt_shape((r, c)),
                ));
            };
            for (n, b) in &state.buffers {
                if b.len() != len {
                    return Err(Error::shape(
                        format!("state buffer {n}"),
                        format!("{len} entries"),
                        format!("{} entries", b.len()),
                    ));
                }
                if let Some(i) = first_non_finite(b) {
                    return Err(Error::NonFinite {
                        what: format!("state buffer {n}"),
                        location: format!("entry {i} (storage order), value {}", b[i]),
                    });
                }
            }
        }
    }
    Ok(())
}

/// Bookkeeping shared by the built-in optimizers: step count, the shape fixed
/// by the first step, and named state buffers allocated at that step.
#[derive(Clone, Debug)]
pub(crate) struct Core<T> {
    step: u64,
    shape: Option<(usize, usize)>,
    buffer_names: &'static [&'static str],
    buffers: Vec<Vec<T>>,
}

impl<T: Float> Core<T> {
    pub(crate) fn new(buffer_names: &'static [&'static str]) -> Self {
        Core {
            step: 0,
            shape: None,
            buffer_names,
            buffers: Vec::new(),
        }
    }

    /// Validates a step and returns the state buffers (zero-initialised at
    /// the first step, which realises θ_{−1} = θ_0 and g_{−1} = 0).
    pub(crate) fn begin_step<P: Parameters<Scalar = T>>(&mut self, params: &P, grad: &P) -> Result<&mut [Vec<T>]> {
        check_step(params, grad, self.shape)?;
        if self.shape.is_none() {
            let len = params.as_slice().len();
            self.shape = Some(params.shape());
            self.buffers = self.buffer_names.iter().map(|_| vec![T::zero(); len]).collect();
        }
        self.step += 1;
        Ok(&mut self.buffers)
    }

    pub(crate) fn reset(&mut self) {
        self.step = 0;
        self.shape = None;
        self.buffers = Vec::new();
    }

    pub(crate) fn state(&self, name: &str, hyper: &[(&str, f64)]) -> OptimizerState<T> {
        OptimizerState {
            optimizer: name.to_string(),
            hyperparameters: hyper.iter().map(|(n, v)| (n.to_string(), *v)).collect(),
            step: self.step,
            shape: self.shape,
            buffers: if self.shape.is_some() {
                self.buffer_names
                    .iter()
                    .map(|n| n.to_string())
                    .zip(self.buffers.iter().cloned())
                    .collect()
            } else {
                Vec::new()
            },
        }
    }

    pub(crate) fn set_state(&mut self, state: OptimizerState<T>, name: &str, hyper: &[(&str, f64)]) -> Result<()> {
        check_state(&state, name, hyper, self.buffer_names)?;
        self.step = state.step;
        self.shape = state.shape;
        self.buffers = state.buffers.into_iter().map(|(_, b)| b).collect();
        Ok(())
    }
}

/// Implements the `Optimizer` methods other than `step` for a struct with a
/// `core: Core<T>` field and a `hyperparameters()` method.
macro_rules! optimizer_bookkeeping {
    ($name:literal) => {
        fn reset(&mut self) {
            self.core.reset();
        }
        fn state(&self) -> $crate::optim::OptimizerState<P::Scalar> {
            self.core.state($name, &self.hyperparameters())
        }
        fn set_state(&mut self, state: $crate::optim::OptimizerState<P::Scalar>) -> $crate::Result<()> {
            self.core.set_state(state, $name, &self.hyperparameters())
        }
        fn name(&self) -> &'static str {
            $name
        }
        fn is_linear(&self) -> bool {
            true
        }
    };
}
pub(crate) use optimizer_bookkeeping;
