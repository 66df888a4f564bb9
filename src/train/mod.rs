//! The full-batch training loop: [`Trainer`] ties a [`TwoLayerReLU`] and any
//! [`Optimizer`] together.
//!
//! # Two exact parameterizations
//!
//! Every gradient is `G = Mᵀ X`, so every GD / heavy-ball / Nesterov iterate
//! stays in `W_t = W_0 + B_t X` with coefficients `B_t` (m × n). Applying the
//! same optimizer to `(B, Mᵀ)` instead of `(W, G)` gives the same trajectory,
//! and the pre-activations follow from `P_t = W_t Xᵀ = P_0 + B_t K` with
//! `K = X Xᵀ` (n × n):
//!
//! | parameterization | per step | cost |
//! |---|---|---|
//! | [`Parameterization::Weight`] | `P = W Xᵀ`, `G = Mᵀ X` | 4 n m d flops |
//! | [`Parameterization::Kernel`] | `P = P_0 + B K` | 2 n² m flops |
//!
//! [`Parameterization::Auto`] (the default) picks the cheaper one from these
//! counts plus the set-up (K, P_0, and forming W at the end). The two agree
//! to rounding (the test suite checks 1e-9 relative over 100 steps). Kernel
//! space is exact only for optimizers whose update is linear in the
//! gradients ([`Optimizer::is_linear`]: GD, heavy ball, Nesterov); for any
//! other optimizer `Kernel` is refused with [`Error::Unsupported`] and `Auto`
//! uses weight space.
//!
//! # Example
//!
//! ```
//! use nalgebra::{DMatrix, DVector};
//! use ntk_momentum::{Nesterov, Parameterization, Trainer, TwoLayerReLU};
//!
//! let x = DMatrix::from_fn(8, 4, |i, k| ((i * 4 + k) as f64).sin());
//! let x = DMatrix::from_rows(&x.row_iter().map(|r| r / r.norm()).collect::<Vec<_>>());
//! let y = DVector::from_fn(8, |i, _| if i % 2 == 0 { 1.0 } else { -1.0 });
//! let model = TwoLayerReLU::new(4, 256, 0)?;
//! let mut trainer = Trainer::new(model, Nesterov::new(0.5, 0.9)?)
//!     .max_steps(200)
//!     .parameterization(Parameterization::Auto);
//! let history = trainer.run(&x, &y)?;
//! assert_eq!(history.losses().len(), 201);
//! assert!(history.final_loss().unwrap() < 1e-3 * history.losses()[0]);
//! # Ok::<(), ntk_momentum::Error>(())
//! ```

pub mod checkpoint;
mod history;
mod observer;

use std::time::Instant;

use nalgebra::{DMatrix, DVector};

pub use history::{Diagnostics, History};
#[cfg(feature = "progress")]
pub use observer::ProgressBar;
pub use observer::{Control, Observer, StepInfo};

use crate::linalg::{gemm, gram_of_columns, Operand};
use crate::model::{half_squared_distance, ntk_from_preactivations, outputs, residual_weights};
use crate::{Error, Float, Optimizer, Result, TwoLayerReLU};

/// Which coordinates the training loop runs the optimizer in (see the
/// [module docs](self)).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
pub enum Parameterization {
    /// The weights `W` (m × d): 4 n m d flops per step.
    Weight,
    /// The coefficients `B` of `W = W_0 + B X` (m × n): 2 n² m flops per
    /// step. Only for optimizers linear in the gradients.
    Kernel,
    /// The cheaper of the two for the problem size and step budget (weight
    /// space for optimizers that are not linear in the gradients).
    #[default]
    Auto,
}

impl Parameterization {
    fn name(self) -> &'static str {
        match self {
            Parameterization::Weight => "weight",
            Parameterization::Kernel => "kernel",
            Parameterization::Auto => "auto",
        }
    }
}

impl std::fmt::Display for Parameterization {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

/// Why a run ended without error.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
#[non_exhaustive]
pub enum Stop {
    /// The step budget ([`Trainer::max_steps`]) was reached.
    MaxSteps,
    /// The loss reached [`Trainer::target_loss`].
    TargetLoss,
    /// The loss reached [`Trainer::target_relative_loss`] times the initial
    /// loss.
    TargetRelativeLoss,
    /// An [`Observer`] returned [`Control::Stop`].
    Observer,
}

/// The options of a [`Trainer`], settable one by one with its builder
/// methods or all at once with [`Trainer::with_options`] (and serializable
/// with the feature `serde`, e.g. to keep them beside a checkpoint).
///
/// ```
/// use ntk_momentum::train::TrainOptions;
///
/// let mut options = TrainOptions::default();
/// options.max_steps = 500;
/// options.target_relative_loss = Some(1e-8);
/// assert!(options.validate().is_ok());
/// options.divergence_factor = 0.5;
/// assert!(options.validate().is_err());
/// ```
#[derive(Clone, Debug, PartialEq)]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
#[non_exhaustive]
pub struct TrainOptions {
    /// Total number of optimizer steps the run may reach (default 100).
    pub max_steps: usize,
    /// Weight space, kernel space, or the cheaper one (default `Auto`).
    pub parameterization: Parameterization,
    /// Stop once the loss is at most this (default none).
    pub target_loss: Option<f64>,
    /// Stop once the loss is at most this fraction of the initial loss
    /// (default none).
    pub target_relative_loss: Option<f64>,
    /// A loss above this factor times the initial loss counts as divergence
    /// (default 1e6; must be > 1).
    pub divergence_factor: f64,
    /// Diagnostics every this many steps, 0 for none (default 10).
    pub diagnostics_every: usize,
    /// Whether the diagnostics include the NTK drift (default true).
    pub track_ntk_drift: bool,
}

impl Default for TrainOptions {
    fn default() -> Self {
        TrainOptions {
            max_steps: 100,
            parameterization: Parameterization::Auto,
            target_loss: None,
            target_relative_loss: None,
            divergence_factor: 1e6,
            diagnostics_every: 10,
            track_ntk_drift: true,
        }
    }
}

impl TrainOptions {
    /// Checks the ranges: `divergence_factor > 1`, targets finite and ≥ 0.
    ///
    /// # Errors
    /// [`Error::InvalidParameter`] naming the first option out of range.
    pub fn validate(&self) -> Result<()> {
        if self.divergence_factor.is_nan() || self.divergence_factor <= 1.0 {
            return Err(Error::invalid(
                "divergence_factor",
                self.divergence_factor,
                "a number > 1",
            ));
        }
        if let Some(t) = self.target_loss.filter(|t| !(t.is_finite() && *t >= 0.0)) {
            return Err(Error::invalid("target_loss", t, "a finite number >= 0"));
        }
        if let Some(t) = self.target_relative_loss.filter(|t| !(t.is_finite() && *t >= 0.0)) {
            return Err(Error::invalid("target_relative_loss", t, "a finite number >= 0"));
        }
        Ok(())
    }
}

/// Above this many samples the training loop does not track the NTK drift
/// (three n × n matrices: 1.5 GiB in `f64` at this size).
pub const NTK_DRIFT_MAX_SAMPLES: usize = 8192;

/// Flop counts per step of the two parameterizations (see the module docs).
pub fn flops_per_step(n: usize, m: usize, d: usize, parameterization: Parameterization) -> f64 {
    let (n, m, d) = (n as f64, m as f64, d as f64);
    match parameterization {
        Parameterization::Weight => 4.0 * n * m * d,
        Parameterization::Kernel => 2.0 * n * n * m,
        Parameterization::Auto => f64::NAN,
    }
}

/// The parameterization [`Parameterization::Auto`] picks for `steps` steps on
/// n samples of dimension d with width m: kernel space when its per-step
/// cost times `steps` plus its set-up (`K = X Xᵀ`, `P_0 = W_0 Xᵀ`, and
/// forming `W = W_0 + B X` at the end: about 5/4 n² d + 4 n m d flops) is
/// below the weight-space cost.
pub fn auto_parameterization(n: usize, m: usize, d: usize, steps: usize) -> Parameterization {
    let (nf, mf, df, s) = (n as f64, m as f64, d as f64, steps.max(1) as f64);
    let kernel = s * flops_per_step(n, m, d, Parameterization::Kernel) + 1.25 * nf * nf * df + 4.0 * nf * mf * df;
    let weight = s * flops_per_step(n, m, d, Parameterization::Weight);
    if kernel < weight {
        Parameterization::Kernel
    } else {
        Parameterization::Weight
    }
}

/// Buffers and fixed quantities of a run, kept between calls to
/// [`Trainer::run`] so that a run can be continued.
struct RunState<T: Float> {
    parameterization: Parameterization,
    fingerprint: u64,
    initial_weights: DMatrix<T>,
    /// Kernel space: the coefficients B (m × n).
    coefficients: Option<DMatrix<T>>,
}

/// Per-call work buffers (not saved in checkpoints: all are recomputed).
struct Buffers<T: Float> {
    /// Weight space: `P_t = W_t Xᵀ`; kernel space: `Q_t = B_t K = P_t − P_0`.
    preactivations: DMatrix<T>,
    initial_preactivations: DMatrix<T>,
    residual_weights: DMatrix<T>,
    column_losses: Vec<f64>,
    gradient: DMatrix<T>,
    /// Parameters, optimizer state and step at the start of the call: what
    /// a divergence rolls back to (and replays from).
    start_params: DMatrix<T>,
    start_state: crate::OptimizerState,
    start_step: usize,
    kernel: Option<DMatrix<T>>,
    ntk: Option<NtkBuffers<T>>,
    evaluation: Option<EvaluationBuffers<T>>,
}

/// Work buffers of the evaluation set (n_test samples).
struct EvaluationBuffers<T: Float> {
    /// Kernel space: `X X_testᵀ` (n × n_test); weight space: empty.
    cross_kernel: DMatrix<T>,
    /// Kernel space: `W_0 X_testᵀ` (m × n_test); weight space: empty.
    initial_preactivations: DMatrix<T>,
    /// `P_test = W_t X_testᵀ` (m × n_test).
    preactivations: DMatrix<T>,
}

struct NtkBuffers<T: Float> {
    initial: DMatrix<T>,
    current: DMatrix<T>,
    bits: Vec<u64>,
    initial_norm: f64,
}

/// Full-batch training of a [`TwoLayerReLU`] with any [`Optimizer`].
///
/// Build it with [`Trainer::new`] and the builder methods, then call
/// [`Trainer::run`]. `run` continues from where the previous call (or a
/// loaded checkpoint) stopped, up to [`Trainer::max_steps`] steps in all, on
/// the same data.
///
/// Stopping rules, checked after each loss is recorded, in this order:
/// divergence (a non-finite loss, or a loss above
/// [`Trainer::divergence_factor`] times the initial loss: an
/// [`Error::Diverged`] carrying the history up to the divergent loss; the
/// trainer itself — parameters, optimizer state, step count and history — is
/// rolled back exactly to the last step whose loss was acceptable, by
/// replaying the call's steps from its start, so nothing is copied per
/// step), the target losses, the observers, the step budget.
///
/// Same seed, same data, same options: bit-identical losses and
/// diagnostics, for any number of GEMM threads
/// ([`crate::set_gemm_threads`]).
pub struct Trainer<T: Float, O> {
    model: TwoLayerReLU<T>,
    optimizer: O,
    options: TrainOptions,
    observers: Vec<Box<dyn Observer + Send>>,
    evaluation: Option<(DMatrix<T>, DVector<T>)>,
    history: History,
    step: usize,
    run: Option<RunState<T>>,
}

impl<T: Float, O: Optimizer<DMatrix<T>>> Trainer<T, O> {
    /// A trainer for `model` with `optimizer`. Defaults: 100 steps,
    /// [`Parameterization::Auto`], no target loss, divergence above 1e6 times
    /// the initial loss, diagnostics every 10 steps with NTK drift tracked.
    pub fn new(model: TwoLayerReLU<T>, optimizer: O) -> Self {
        Trainer {
            model,
            optimizer,
            options: TrainOptions::default(),
            observers: Vec::new(),
            evaluation: None,
            history: History::default(),
            step: 0,
            run: None,
        }
    }

    /// Replaces all options at once (checked at [`run`](Self::run)).
    pub fn with_options(mut self, options: TrainOptions) -> Self {
        self.options = options;
        self
    }

    /// The options in force.
    pub fn options(&self) -> &TrainOptions {
        &self.options
    }

    /// Total number of optimizer steps the run may reach.
    pub fn max_steps(mut self, steps: usize) -> Self {
        self.options.max_steps = steps;
        self
    }

    /// Sets the total step budget on an existing trainer (to continue a run).
    pub fn set_max_steps(&mut self, steps: usize) {
        self.options.max_steps = steps;
    }

    /// Weight space, kernel space, or the cheaper one (default).
    pub fn parameterization(mut self, parameterization: Parameterization) -> Self {
        self.options.parameterization = parameterization;
        self
    }

    /// Stop once the loss is at most `loss`.
    pub fn target_loss(mut self, loss: f64) -> Self {
        self.options.target_loss = Some(loss);
        self
    }

    /// Stop once the loss is at most `fraction` times the initial loss.
    pub fn target_relative_loss(mut self, fraction: f64) -> Self {
        self.options.target_relative_loss = Some(fraction);
        self
    }

    /// A loss above `factor` times the initial loss counts as divergence
    /// (default 1e6; must be > 1).
    pub fn divergence_factor(mut self, factor: f64) -> Self {
        self.options.divergence_factor = factor;
        self
    }

    /// Record [`Diagnostics`] every `every` steps, at step 0 and at the step
    /// where a run ends without error (budget, target loss or observer); 0
    /// turns them off. Default 10.
    pub fn diagnostics_every(mut self, every: usize) -> Self {
        self.options.diagnostics_every = every;
        self
    }

    /// Whether the diagnostics include the NTK drift. It needs K = X Xᵀ and
    /// two n × n Gram matrices, and costs about n² m / 64 popcount operations
    /// per diagnostic. Default true; it is skipped (recorded as `None`) for
    /// more than [`NTK_DRIFT_MAX_SAMPLES`] samples, where the n × n matrices
    /// would dominate memory.
    pub fn track_ntk_drift(mut self, track: bool) -> Self {
        self.options.track_ntk_drift = track;
        self
    }

    /// Adds an observer, called after each recorded loss of every later
    /// [`run`](Self::run). It is owned by the trainer, so it must be `Send`
    /// (the trainer stays `Send`) and `'static`; an observer that borrows
    /// from the caller goes to [`run_with`](Self::run_with) instead.
    pub fn observer(mut self, observer: impl Observer + Send + 'static) -> Self {
        self.observers.push(Box::new(observer));
        self
    }

    /// A held-out evaluation set (`x_test`: one sample per row, same input
    /// dimension as the model; `y_test`: one target per row). At the
    /// diagnostics cadence the run records its loss
    /// ½ Σ_i (f(W_t; x_i) − y_i)² ([`Diagnostics::test_loss`]) and its sign
    /// accuracy, the fraction of samples with f(W_t; x_i)·y_i > 0
    /// ([`Diagnostics::test_accuracy`]). It does not influence training.
    /// Checked at [`run`](Self::run): shapes and finiteness.
    ///
    /// Cost per diagnostic: 2 m d n_test flops in weight space, 2 m n n_test
    /// in kernel space (with X X_testᵀ and W_0 X_testᵀ formed once per call).
    pub fn evaluation_set(mut self, x_test: DMatrix<T>, y_test: DVector<T>) -> Self {
        self.evaluation = Some((x_test, y_test));
        self
    }

    /// The model (its weights are those of the last completed step).
    pub fn model(&self) -> &TwoLayerReLU<T> {
        &self.model
    }

    /// The optimizer.
    pub fn optimizer(&self) -> &O {
        &self.optimizer
    }

    /// The trained model.
    pub fn into_model(self) -> TwoLayerReLU<T> {
        self.model
    }

    /// Everything recorded so far.
    pub fn history(&self) -> &History {
        &self.history
    }

    /// Steps taken so far.
    pub fn steps_taken(&self) -> usize {
        self.step
    }

    /// The parameterization in use once a run has started (never `Auto`).
    pub fn resolved_parameterization(&self) -> Option<Parameterization> {
        self.run.as_ref().map(|r| r.parameterization)
    }

    /// Resolves the parameterization and fixes the run's data at step 0, or
    /// checks that a continued run keeps them.
    fn prepare_run(&mut self, x: &DMatrix<T>, y: &DVector<T>) -> Result<()> {
        let fingerprint = data_fingerprint(x, y);
        let (n, m, d) = (x.nrows(), self.model.width(), self.model.input_dim());
        let wanted = match self.options.parameterization {
            Parameterization::Kernel if !self.optimizer.is_linear() => {
                return Err(Error::Unsupported(format!(
                    "kernel-space training with optimizer \"{}\", which does not declare itself linear in the \
                     gradients (Optimizer::is_linear); use Parameterization::Weight",
                    self.optimizer.name()
                )))
            }
            Parameterization::Auto if !self.optimizer.is_linear() => Parameterization::Weight,
            Parameterization::Auto => auto_parameterization(n, m, d, self.options.max_steps.saturating_sub(self.step)),
            p => p,
        };
        match &self.run {
            Some(run) => {
                if run.coefficients.as_ref().is_some_and(|b| b.shape() != (m, n)) {
                    return Err(Error::shape(
                        "kernel-space coefficients B of the run",
                        format!("{m} x {n} (width x samples)"),
                        format!(
                            "{} x {}",
                            run.coefficients.as_ref().map_or(0, |b| b.nrows()),
                            run.coefficients.as_ref().map_or(0, |b| b.ncols())
                        ),
                    ));
                }
                if run.fingerprint != fingerprint {
                    return Err(Error::Unsupported(
                        "continuing a run on different data: the run's initial state and history refer to the data \
                         of its first step; start a new Trainer"
                            .into(),
                    ));
                }
                if self.options.parameterization != Parameterization::Auto
                    && self.options.parameterization != run.parameterization
                {
                    return Err(Error::Unsupported(format!(
                        "switching a started run from {} space to {} space (the optimizer state lives in the \
                         coordinates of the first); start a new Trainer",
                        run.parameterization, self.options.parameterization
                    )));
                }
            }
            None => {
                self.run = Some(RunState {
                    parameterization: wanted,
                    fingerprint,
                    initial_weights: self.model.weights().clone(),
                    coefficients: (wanted == Parameterization::Kernel).then(|| DMatrix::zeros(m, n)),
                });
            }
        }
        Ok(())
    }

    /// Trains on `x` (n × d, one sample per row) and `y` (n targets) until a
    /// stopping rule fires, and returns the history of the whole run.
    ///
    /// # Errors
    /// Shapes that disagree with each other or with the model, non-finite
    /// data, invalid options, a parameterization the optimizer does not
    /// support, data other than that of the run being continued, any
    /// optimizer error, and [`Error::Diverged`] (carrying the history; the
    /// trainer is rolled back to its last acceptable step, or to the start of
    /// this call if its first loss already diverged).
    pub fn run(&mut self, x: &DMatrix<T>, y: &DVector<T>) -> Result<History> {
        self.run_with(x, y, &mut |_: &StepInfo<'_>| Control::Continue)
    }

    /// [`run`](Self::run) with one more observer for this call only, called
    /// after the trainer's own observers. It may borrow from the caller (no
    /// `'static` or `Send` bound):
    ///
    /// ```
    /// use nalgebra::{DMatrix, DVector};
    /// use ntk_momentum::train::{Control, StepInfo};
    /// use ntk_momentum::{HeavyBall, Trainer, TwoLayerReLU};
    ///
    /// let x = DMatrix::from_fn(6, 3, |i, k| ((i * 3 + k) as f64).cos());
    /// let x = DMatrix::from_rows(&x.row_iter().map(|r| r / r.norm()).collect::<Vec<_>>());
    /// let y = DVector::from_fn(6, |i, _| if i % 3 == 0 { 1.0 } else { -1.0 });
    /// let mut trainer = Trainer::new(TwoLayerReLU::new(3, 128, 0)?, HeavyBall::new(0.5, 0.5)?).max_steps(20);
    /// let mut every_fifth = Vec::new();
    /// trainer.run_with(&x, &y, &mut |info: &StepInfo| {
    ///     if info.step % 5 == 0 {
    ///         every_fifth.push(info.loss);
    ///     }
    ///     Control::Continue
    /// })?;
    /// assert_eq!(every_fifth.len(), 5);
    /// assert!(every_fifth[4] < every_fifth[0]);
    /// # Ok::<(), ntk_momentum::Error>(())
    /// ```
    ///
    /// # Errors
    /// As [`run`](Self::run).
    pub fn run_with(&mut self, x: &DMatrix<T>, y: &DVector<T>, observer: &mut dyn Observer) -> Result<History> {
        self.model.check_inputs(x)?;
        TwoLayerReLU::check_targets(y, x.nrows())?;
        if let Some((xt, yt)) = &self.evaluation {
            self.model
                .check_inputs(xt)
                .map_err(|e| e.context("evaluation set x_test"))?;
            TwoLayerReLU::check_targets(yt, xt.nrows()).map_err(|e| e.context("evaluation set y_test"))?;
        }
        self.options.validate()?;
        self.prepare_run(x, y)?;
        self.history.clear_stop();
        let result = self.run_loop(x, y, observer);
        for o in &mut self.observers {
            o.finish(&self.history);
        }
        observer.finish(&self.history);
        result.map(|stop| {
            self.history.set_stop(stop);
            self.history.clone()
        })
    }

    fn allocate_buffers(&self, x: &DMatrix<T>, run: &RunState<T>) -> Buffers<T> {
        let (n, m, d) = (x.nrows(), self.model.width(), self.model.input_dim());
        let kernel_space = run.parameterization == Parameterization::Kernel;
        let drift = self.options.track_ntk_drift && self.options.diagnostics_every > 0 && n <= NTK_DRIFT_MAX_SAMPLES;
        let need_k = kernel_space || drift;
        let kernel = need_k.then(|| {
            let mut k = DMatrix::zeros(n, n);
            gram_of_columns(Operand::t(x), &mut k);
            k
        });
        let mut initial_preactivations = DMatrix::zeros(m, n);
        gemm(
            &mut initial_preactivations,
            false,
            T::zero(),
            Operand::n(&run.initial_weights),
            Operand::t(x),
            T::one(),
        );
        let ntk = drift.then(|| {
            let mut nb = NtkBuffers {
                initial: DMatrix::zeros(n, n),
                current: DMatrix::zeros(n, n),
                bits: Vec::new(),
                initial_norm: 0.0,
            };
            let k = kernel.as_ref().expect("K is computed when drift is tracked");
            ntk_from_preactivations(&initial_preactivations, None, k, &mut nb.bits, &mut nb.initial);
            nb.initial_norm = nb.initial.norm().to_f64();
            nb
        });
        let evaluation = self.evaluation.as_ref().map(|(xt, _)| {
            let nt = xt.nrows();
            let (cross_kernel, initial_preactivations) = if kernel_space {
                let mut cross = DMatrix::zeros(n, nt);
                gemm(&mut cross, false, T::zero(), Operand::n(x), Operand::t(xt), T::one());
                let mut p0 = DMatrix::zeros(m, nt);
                gemm(
                    &mut p0,
                    false,
                    T::zero(),
                    Operand::n(&run.initial_weights),
                    Operand::t(xt),
                    T::one(),
                );
                (cross, p0)
            } else {
                (DMatrix::zeros(0, 0), DMatrix::zeros(0, 0))
            };
            EvaluationBuffers {
                cross_kernel,
                initial_preactivations,
                preactivations: DMatrix::zeros(m, nt),
            }
        });
        Buffers {
            preactivations: DMatrix::zeros(m, n),
            initial_preactivations,
            residual_weights: DMatrix::zeros(m, n),
            column_losses: vec![0.0; n],
            gradient: if kernel_space {
                DMatrix::zeros(0, 0)
            } else {
                DMatrix::zeros(m, d)
            },
            start_params: match &run.coefficients {
                Some(b) => b.clone(),
                None => self.model.weights().clone(),
            },
            start_state: self.optimizer.state(),
            start_step: self.step,
            kernel,
            ntk,
            evaluation,
        }
    }

    fn run_loop(&mut self, x: &DMatrix<T>, y: &DVector<T>, observer: &mut dyn Observer) -> Result<Stop> {
        let mut run = self.run.take().expect("prepare_run sets the run state");
        let mut buffers = self.allocate_buffers(x, &run);
        let result = self.steps(x, y, &mut run, &mut buffers, observer);
        if let Some(b) = &run.coefficients {
            // Form W = W_0 + B X once, at the end of the call.
            let w = self.model.weights_mut();
            w.copy_from(&run.initial_weights);
            gemm(w, true, T::one(), Operand::n(b), Operand::n(x), T::one());
        }
        self.run = Some(run);
        result
    }

    fn steps(
        &mut self,
        x: &DMatrix<T>,
        y: &DVector<T>,
        run: &mut RunState<T>,
        buf: &mut Buffers<T>,
        observer: &mut dyn Observer,
    ) -> Result<Stop> {
        let start = Instant::now();
        let time_offset = self.history.elapsed().last().copied().unwrap_or(0.0);
        // The history already holds the loss at `self.step` when continuing;
        // its diagnostics there are kept only if they are on the cadence (an
        // uninterrupted run would have recorded them too).
        let mut recorded = self.history.losses().len() == self.step + 1;
        let on_cadence = self.options.diagnostics_every > 0 && self.step.is_multiple_of(self.options.diagnostics_every);
        let mut diagnosed = recorded && on_cadence && self.history.has_diagnostics_at(self.step);
        if recorded && !diagnosed {
            self.history.remove_diagnostics_at(self.step);
        }
        loop {
            let loss = self.evaluate(x, y, run, buf);
            if !recorded {
                self.history
                    .push_loss(loss, time_offset + start.elapsed().as_secs_f64());
            }
            recorded = false;
            let initial_loss = self.history.losses()[0];
            let diverged = if !loss.is_finite() {
                Some("non-finite loss".to_string())
            } else if loss > self.options.divergence_factor * initial_loss {
                Some(format!(
                    "loss above {:e} times the initial loss {initial_loss:e}",
                    self.options.divergence_factor
                ))
            } else {
                None
            };
            if let Some(reason) = diverged {
                let history = Box::new(self.history.clone());
                self.roll_back(x, y, run, buf)?;
                return Err(Error::Diverged {
                    step: history.steps(),
                    loss,
                    reason,
                    history,
                });
            }
            let last = self.step >= self.options.max_steps;
            let cadence =
                self.options.diagnostics_every > 0 && self.step.is_multiple_of(self.options.diagnostics_every);
            if !diagnosed && cadence {
                let d = self.diagnostics(run, buf);
                self.history.push_diagnostics(d);
                diagnosed = true;
            }
            let mut stop = if self.options.target_loss.is_some_and(|t| loss <= t) {
                Some(Stop::TargetLoss)
            } else if self
                .options
                .target_relative_loss
                .is_some_and(|f| loss <= f * initial_loss)
            {
                Some(Stop::TargetRelativeLoss)
            } else {
                None
            };
            let info = StepInfo {
                step: self.step,
                loss,
                initial_loss,
                max_steps: self.options.max_steps,
                history: &self.history,
            };
            for o in self
                .observers
                .iter_mut()
                .map(|o| &mut **o as &mut dyn Observer)
                .chain([&mut *observer])
            {
                if o.observe(&info) == Control::Stop && stop.is_none() {
                    stop = Some(Stop::Observer);
                }
            }
            if stop.is_none() && last {
                stop = Some(Stop::MaxSteps);
            }
            if let Some(stop) = stop {
                // Diagnostics at the step where the run ends, whatever ends it.
                if !diagnosed && self.options.diagnostics_every > 0 {
                    let d = self.diagnostics(run, buf);
                    self.history.push_diagnostics(d);
                }
                return Ok(stop);
            }
            diagnosed = false;
            self.advance(x, run, buf)?;
        }
    }

    /// `P_t` (weight space) or `Q_t = B_t K = P_t − P_0` (kernel space) into
    /// the buffers, then the loss and `Mᵀ_t` from one fused pass over
    /// `P_0 + Q_t`. Returns the loss.
    fn evaluate(&self, x: &DMatrix<T>, y: &DVector<T>, run: &RunState<T>, buf: &mut Buffers<T>) -> f64 {
        let kernel_space = match &run.coefficients {
            Some(b) => {
                let k = buf.kernel.as_ref().expect("kernel space has K");
                gemm(
                    &mut buf.preactivations,
                    false,
                    T::zero(),
                    Operand::n(b),
                    Operand::n(k),
                    T::one(),
                );
                true
            }
            None => {
                self.model.preactivations_into(x, &mut buf.preactivations);
                false
            }
        };
        let (base, offset) = if kernel_space {
            (&buf.initial_preactivations, Some(&buf.preactivations))
        } else {
            (&buf.preactivations, None)
        };
        residual_weights(
            base,
            offset,
            self.model.output_weights(),
            y,
            &mut buf.residual_weights,
            &mut buf.column_losses,
        )
    }

    /// One optimizer step from the `Mᵀ` left by [`Self::evaluate`].
    fn advance(&mut self, x: &DMatrix<T>, run: &mut RunState<T>, buf: &mut Buffers<T>) -> Result<()> {
        match &mut run.coefficients {
            // The gradient with respect to B is Mᵀ itself.
            Some(b) => self.optimizer.step(b, &buf.residual_weights)?,
            None => {
                // G = Mᵀ X
                gemm(
                    &mut buf.gradient,
                    false,
                    T::zero(),
                    Operand::n(&buf.residual_weights),
                    Operand::n(x),
                    T::one(),
                );
                self.optimizer.step(self.model.weights_mut(), &buf.gradient)?;
            }
        }
        self.step += 1;
        Ok(())
    }

    /// After a divergence at step t, brings the parameters and the optimizer
    /// state back to step t − 1 (the last acceptable loss), or to the start
    /// of this call if it diverged at once: restores the call's starting
    /// parameters and optimizer state and replays the steps, which are
    /// deterministic, so the result is bit-identical to the original
    /// iterates. Costs nothing per step; only a divergence pays the replay.
    fn roll_back(&mut self, x: &DMatrix<T>, y: &DVector<T>, run: &mut RunState<T>, buf: &mut Buffers<T>) -> Result<()> {
        let diverged_at = self.step;
        match &mut run.coefficients {
            Some(b) => b.copy_from(&buf.start_params),
            None => self.model.weights_mut().copy_from(&buf.start_params),
        }
        self.optimizer.set_state(&buf.start_state)?;
        self.step = buf.start_step;
        while self.step + 1 < diverged_at {
            self.evaluate(x, y, run, buf);
            self.advance(x, run, buf)?;
        }
        self.history.truncate(self.step + 1);
        Ok(())
    }

    /// Loss and sign accuracy on the evaluation set, if there is one:
    /// `P_test = W_t X_testᵀ` (weight space) or `W_0 X_testᵀ + B_t (X X_testᵀ)`
    /// (kernel space), then the outputs.
    fn evaluate_test_set(&self, run: &RunState<T>, buf: &mut Buffers<T>) -> (Option<f64>, Option<f64>) {
        let (Some((xt, yt)), Some(eb)) = (&self.evaluation, buf.evaluation.as_mut()) else {
            return (None, None);
        };
        match &run.coefficients {
            Some(b) => {
                eb.preactivations.copy_from(&eb.initial_preactivations);
                gemm(
                    &mut eb.preactivations,
                    true,
                    T::one(),
                    Operand::n(b),
                    Operand::n(&eb.cross_kernel),
                    T::one(),
                );
            }
            None => self.model.preactivations_into(xt, &mut eb.preactivations),
        }
        let u = outputs(&eb.preactivations, self.model.output_weights());
        let correct = u.iter().zip(yt.iter()).filter(|(&u, &y)| u * y > T::zero()).count();
        (
            Some(half_squared_distance(&u, yt)),
            Some(correct as f64 / yt.len() as f64),
        )
    }

    /// Weight excursion, activation flips, NTK drift and the evaluation set
    /// at the current step.
    fn diagnostics(&self, run: &RunState<T>, buf: &mut Buffers<T>) -> Diagnostics {
        let (test_loss, test_accuracy) = self.evaluate_test_set(run, buf);
        let m = self.model.width();
        let kernel_space = run.coefficients.is_some();
        let mut row_sq = vec![0.0f64; m];
        match &run.coefficients {
            Some(b) => {
                // ‖w_r(t) − w_r(0)‖² = (B K Bᵀ)_rr = Σ_i B_ri Q_ri with Q = B K
                for (bc, qc) in b.column_iter().zip(buf.preactivations.column_iter()) {
                    for (r, (&bv, &qv)) in bc.iter().zip(qc.iter()).enumerate() {
                        row_sq[r] += bv.to_f64() * qv.to_f64();
                    }
                }
            }
            None => {
                for (wc, w0c) in self
                    .model
                    .weights()
                    .column_iter()
                    .zip(run.initial_weights.column_iter())
                {
                    for (r, (&w, &w0)) in wc.iter().zip(w0c.iter()).enumerate() {
                        row_sq[r] += (w - w0).to_f64().powi(2);
                    }
                }
            }
        }
        let weight_distance = row_sq.iter().map(|v| v.max(0.0)).sum::<f64>().sqrt();
        let max_neuron_distance = row_sq.iter().fold(0.0f64, |a, &v| a.max(v.max(0.0).sqrt()));
        // P_t: stored in weight space, P_0 + Q_t in kernel space.
        let current = |p: T, p0: T| if kernel_space { p0 + p } else { p };
        let flips = buf
            .preactivations
            .iter()
            .zip(buf.initial_preactivations.iter())
            .filter(|(&p, &p0)| (current(p, p0) > T::zero()) != (p0 > T::zero()))
            .count();
        let activation_flip_fraction = flips as f64 / buf.preactivations.len() as f64;
        let (base, offset) = if kernel_space {
            (&buf.initial_preactivations, Some(&buf.preactivations))
        } else {
            (&buf.preactivations, None)
        };
        let ntk_drift = buf
            .ntk
            .as_mut()
            .map(|nb| {
                let k = buf.kernel.as_ref().expect("K is computed when drift is tracked");
                ntk_from_preactivations(base, offset, k, &mut nb.bits, &mut nb.current);
                let diff: f64 = nb
                    .current
                    .iter()
                    .zip(nb.initial.iter())
                    .map(|(&a, &b)| (a - b).to_f64().powi(2))
                    .sum::<f64>()
                    .sqrt();
                diff / nb.initial_norm
            })
            // H(W_0) = 0 (no unit ever active): the drift is undefined.
            .filter(|v| v.is_finite());
        Diagnostics {
            step: self.step,
            weight_distance,
            max_neuron_distance,
            activation_flip_fraction,
            ntk_drift,
            test_loss,
            test_accuracy,
        }
    }
}

/// FNV-1a over the bits of x (with its shape) and y: identifies a run's data.
pub(crate) fn data_fingerprint<T: Float>(x: &DMatrix<T>, y: &DVector<T>) -> u64 {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    let mut eat = |v: u64| {
        h ^= v;
        h = h.wrapping_mul(0x0000_0100_0000_01b3);
    };
    eat(x.nrows() as u64);
    eat(x.ncols() as u64);
    for v in x.iter().chain(y.iter()) {
        eat(v.to_f64().to_bits());
    }
    h
}
