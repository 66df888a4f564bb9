//! [`Trainer`]: its parts, options, builder methods and the entry points
//! [`Trainer::run`] and [`Trainer::run_with`]; the loop itself is in
//! `steps.rs`.

use nalgebra::{DMatrix, DVector};

use super::enclosure::{linear_method, EnclosureState};
use super::{
    auto_parameterization, data_fingerprint, Control, History, Observer, Parameterization, StepInfo, TrainOptions,
    Tuner,
};
use crate::theory::{PredictionEnclosure, StepTolerance, Verdict};
use crate::{Error, Float, Optimizer, Result, TwoLayerReLU};

/// The coordinates the optimizer of a started run works in, with what it
/// keeps between calls.
#[derive(Clone)]
pub(super) enum Space<T: Float> {
    /// The weights W: the model's own matrix is the optimizer's parameter.
    Weight,
    /// The coefficients B (m × n) of W = W_0 + B X.
    Kernel {
        /// B_t.
        coefficients: DMatrix<T>,
    },
}

impl<T: Float> Space<T> {
    /// A new run's coordinates: B_0 = 0 in kernel space.
    pub(super) fn new(parameterization: Parameterization, m: usize, n: usize) -> Self {
        match parameterization {
            Parameterization::Kernel => Space::Kernel {
                coefficients: DMatrix::zeros(m, n),
            },
            _ => Space::Weight,
        }
    }

    /// `Weight` or `Kernel` (never `Auto`).
    pub(super) fn parameterization(&self) -> Parameterization {
        match self {
            Space::Weight => Parameterization::Weight,
            Space::Kernel { .. } => Parameterization::Kernel,
        }
    }
}

/// What a started run keeps between calls to [`Trainer::run`] (and what a
/// checkpoint saves besides model, optimizer and history).
pub(super) struct RunState<T: Float> {
    pub(super) space: Space<T>,
    /// [`data_fingerprint`] of the run's data.
    pub(super) fingerprint: u64,
    /// W_0.
    pub(super) initial_weights: DMatrix<T>,
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
    pub(super) model: TwoLayerReLU<T>,
    pub(super) optimizer: O,
    pub(super) options: TrainOptions,
    pub(super) observers: Vec<Box<dyn Observer + Send>>,
    /// Hyper-parameter changes between steps ([`Trainer::tuner`]).
    pub(super) tuners: Vec<Box<dyn Tuner + Send>>,
    pub(super) evaluation: Option<(DMatrix<T>, DVector<T>)>,
    pub(super) history: History,
    pub(super) step: usize,
    /// Set by the first call to `run` (or a loaded checkpoint).
    pub(super) run: Option<RunState<T>>,
    /// The prediction enclosure ([`Trainer::enclose_prediction`]).
    pub(super) enclosure: EnclosureState<T>,
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
            tuners: Vec::new(),
            evaluation: None,
            history: History::default(),
            step: 0,
            run: None,
            enclosure: EnclosureState::Off,
        }
    }

    /// Replaces all options at once.
    ///
    /// # Errors
    /// As [`TrainOptions::validate`].
    pub fn with_options(mut self, options: TrainOptions) -> Result<Self> {
        options.validate()?;
        self.options = options;
        Ok(self)
    }

    /// The options in force.
    pub fn options(&self) -> &TrainOptions {
        &self.options
    }

    /// Total number of optimizer steps the run may reach.
    #[must_use = "a builder method returns the changed value"]
    pub fn max_steps(mut self, steps: usize) -> Self {
        self.options.max_steps = steps;
        self
    }

    /// Sets the total step budget on an existing trainer (to continue a run).
    pub fn set_max_steps(&mut self, steps: usize) {
        self.options.max_steps = steps;
    }

    /// Weight space, kernel space, or the cheaper one (default).
    #[must_use = "a builder method returns the changed value"]
    pub fn parameterization(mut self, parameterization: Parameterization) -> Self {
        self.options.parameterization = parameterization;
        self
    }

    /// Stop once the loss is at most `loss`.
    ///
    /// # Errors
    /// [`Error::InvalidParameter`] unless `loss` is finite and ≥ 0.
    pub fn target_loss(self, loss: f64) -> Result<Self> {
        self.with_option(|o| o.target_loss = Some(loss))
    }

    /// Stop once the loss is at most `fraction` times the initial loss.
    ///
    /// # Errors
    /// [`Error::InvalidParameter`] unless `fraction` is finite and ≥ 0.
    pub fn target_relative_loss(self, fraction: f64) -> Result<Self> {
        self.with_option(|o| o.target_relative_loss = Some(fraction))
    }

    /// A loss above `factor` times the initial loss counts as divergence
    /// (default 1e6).
    ///
    /// # Errors
    /// [`Error::InvalidParameter`] unless `factor` > 1.
    pub fn divergence_factor(self, factor: f64) -> Result<Self> {
        self.with_option(|o| o.divergence_factor = factor)
    }

    /// Applies `set` to the options and validates them.
    fn with_option(mut self, set: impl FnOnce(&mut TrainOptions)) -> Result<Self> {
        let mut options = self.options.clone();
        set(&mut options);
        options.validate()?;
        self.options = options;
        Ok(self)
    }

    /// Record [`Diagnostics`](crate::Diagnostics) every `every` steps, at step 0 and at the step
    /// where a run ends without error (budget, target loss or observer); 0
    /// turns them off. Default 10.
    #[must_use = "a builder method returns the changed value"]
    pub fn diagnostics_every(mut self, every: usize) -> Self {
        self.options.diagnostics_every = every;
        self
    }

    /// Whether the diagnostics include the NTK drift and λ_min, λ_max of
    /// H(W_t) (what [`crate::theory::regime`] needs). It needs K = X Xᵀ and
    /// two n × n Gram matrices, and costs about n² m / 64 popcount operations
    /// per diagnostic, plus a dense eigen-solve up to n = 128 or Lanczos
    /// products (O(n²) each) beyond. Default true.
    ///
    /// Above [`NTK_DRIFT_MAX_SAMPLES`](super::NTK_DRIFT_MAX_SAMPLES) samples,
    /// where the n × n matrices would dominate memory, the diagnostics are
    /// matrix-free in weight space (see [`matrix_free_ntk`](Self::matrix_free_ntk));
    /// in kernel space they are skipped there (recorded as `None`).
    #[must_use = "a builder method returns the changed value"]
    pub fn track_ntk_drift(mut self, track: bool) -> Self {
        self.options.track_ntk_drift = track;
        self
    }

    /// The matrix-free NTK diagnostics used above
    /// [`NTK_DRIFT_MAX_SAMPLES`](super::NTK_DRIFT_MAX_SAMPLES) samples (weight
    /// space, [`track_ntk_drift`](Self::track_ntk_drift) on), from products
    /// H(W) v computed from X and the activation masks
    /// ([`crate::ntk::EmpiricalNtk`], 4 n m d flops each, about one step):
    ///
    /// - drift: with `probes` fixed standard-normal vectors z_k (seeded),
    ///   `‖(H_t − H_0) Z‖_F / ‖H_0 Z‖_F`, whose squared numerator and
    ///   denominator are unbiased estimates of p‖H_t − H_0‖_F² and
    ///   p‖H_0‖_F² (E‖A z‖² = ‖A‖_F²); `probes` products per diagnostic and
    ///   `probes` more once at step 0. Default 4; 0 records no drift.
    /// - λ_min and λ_max of H(W_t): at most `lanczos_products` Lanczos
    ///   products per diagnostic ([`crate::ntk::lanczos`]); each is recorded
    ///   only when its residual bound meets the dense path's accuracy
    ///   (1e-6 relative for λ_max, 1e-4 for λ_min), else `None`. Default 0:
    ///   not computed (ill-conditioned kernels can need hundreds of products,
    ///   each costing about one step).
    #[must_use = "a builder method returns the changed value"]
    pub fn matrix_free_ntk(mut self, probes: usize, lanczos_products: usize) -> Self {
        self.options.ntk_probes = probes;
        self.options.ntk_lanczos_products = lanczos_products;
        self
    }

    /// Encloses the run's residual around the linearized prediction from
    /// H(W_0), for [`Trainer::verdict`]: at every step the trainer forms
    /// H(W_t), the cross kernel J_t J_{t−1}ᵀ (NAG) and the flip remainders
    /// from the activation masks and feeds them to a
    /// [`PredictionEnclosure`] (see there for the mathematics). The method
    /// and its constant (η, β) are read from the optimizer's state, so it
    /// must be [`crate::GradientDescent`], [`crate::HeavyBall`] or
    /// [`crate::Nesterov`] with constant hyper-parameters, the run must
    /// start at step 0 and have at most
    /// [`NTK_DRIFT_MAX_SAMPLES`](super::NTK_DRIFT_MAX_SAMPLES) samples. Cost
    /// per step: about n² m / 32 popcount operations (two mask products for
    /// NAG, one otherwise), a pass over the m × n pre-activations, and a
    /// spectral-norm bound of the drift (eigenvalues up to n = 256, two
    /// n × n products beyond), twice from step 16 on; memory: about eight
    /// n × n f64 matrices, two m × n ones, and the kernels of the first 16
    /// steps (2 · 16 n × n f64) for the second enclosure, re-anchored at
    /// H(W_16) ([`PredictionEnclosure::with_reanchoring`]; skipped if the
    /// memory budget refuses them), plus one eigendecomposition of H(W_0)
    /// and one of H(W_16) (O(n³)). Not saved in checkpoints: a run resumed
    /// from one has no enclosure. Default off.
    ///
    /// # Examples
    /// ```
    /// use ntk_momentum::data::unit_sphere;
    /// use ntk_momentum::theory::StepTolerance;
    /// use ntk_momentum::{Nesterov, Trainer, TwoLayerReLU};
    ///
    /// let (x, y) = unit_sphere::<f64>(10, 20, 1)?;
    /// let model = TwoLayerReLU::new(20, 16384, 2)?;
    /// let lambda_max = ntk_momentum::ntk::Spectrum::of(&model.ntk_gram(&x)?)?.lambda_max;
    /// let mut trainer = Trainer::new(model, Nesterov::new(1.0 / lambda_max, 0.5)?)
    ///     .max_steps(60)
    ///     .enclose_prediction(true);
    /// let history = trainer.run(&x, &y)?;
    /// let verdict = trainer.verdict(&[1e-1, 1e-2, 1e-4], StepTolerance::default())?;
    /// println!("{verdict}");
    /// // The guarantee: where the verdict holds, the run's steps are within 10 % or 2 steps.
    /// for level in &verdict.levels {
    ///     if level.holds {
    ///         let measured = history.steps_to_fraction(level.level);
    ///         assert!(StepTolerance::default().agrees(level.predicted, measured));
    ///     }
    /// }
    /// assert!(verdict.holds());
    /// # Ok::<(), ntk_momentum::Error>(())
    /// ```
    #[must_use = "a builder method returns the changed value"]
    pub fn enclose_prediction(mut self, enclose: bool) -> Self {
        self.enclosure = if enclose {
            EnclosureState::Requested
        } else {
            EnclosureState::Off
        };
        self
    }

    /// The prediction enclosure of the run so far, if
    /// [`enclose_prediction`](Self::enclose_prediction) is on and it could
    /// start.
    pub fn enclosure(&self) -> Option<&PredictionEnclosure> {
        match &self.enclosure {
            EnclosureState::Tracking(t) => Some(&t.enclosure),
            _ => None,
        }
    }

    /// The verdict on the run so far: at each of `levels` (fractions of
    /// L_0), whether the linearized prediction from H(W_0) is guaranteed to
    /// give the run's steps to the level within `tolerance` (see
    /// [`Verdict`] for the guarantee and [`crate::theory::PredictionEnclosure`]
    /// for the mathematics). Needs
    /// [`enclose_prediction`](Self::enclose_prediction).
    ///
    /// # Errors
    /// [`Error::InvalidParameter`] if the enclosure was not requested, could
    /// not start (the reason is named: another optimizer, a run not started
    /// at step 0, too many samples, a divergence), no step was taken, the
    /// optimizer's η or β changed during the run (a schedule: the
    /// prediction assumes constants), or for bad levels or tolerance.
    pub fn verdict(&self, levels: &[f64], tolerance: StepTolerance) -> Result<Verdict> {
        let tracker = match &self.enclosure {
            EnclosureState::Tracking(t) => t,
            EnclosureState::Off => {
                return Err(Error::invalid(
                    "trainer",
                    "no prediction enclosure",
                    "a trainer built with enclose_prediction(true)",
                ))
            }
            EnclosureState::Requested => {
                return Err(Error::invalid(
                    "trainer",
                    "no run yet",
                    "a run with enclose_prediction(true)",
                ))
            }
            EnclosureState::Failed(why) => {
                return Err(Error::invalid(
                    "trainer",
                    format!("no prediction enclosure: {why}"),
                    "an enclosed run",
                ))
            }
        };
        let now = linear_method(&self.optimizer.state())?;
        if now != tracker.hyperparameters {
            return Err(Error::invalid(
                "optimizer",
                format!(
                    "hyper-parameters changed during the run: {:?} -> {now:?}",
                    tracker.hyperparameters
                ),
                "constant (method, lr, momentum): the prediction from H(W_0) assumes them",
            ));
        }
        crate::theory::verdict(&tracker.enclosure, levels, tolerance, self.model.width())
    }

    /// Adds an observer, called after each recorded loss of every later
    /// [`run`](Self::run). It is owned by the trainer, so it must be `Send`
    /// (the trainer stays `Send`) and `'static`; an observer that borrows
    /// from the caller goes to [`run_with`](Self::run_with) instead.
    #[must_use = "a builder method returns the changed value"]
    pub fn observer(mut self, observer: impl Observer + Send + 'static) -> Self {
        self.observers.push(Box::new(observer));
        self
    }

    /// Adds a tuner, which may change the optimizer's hyper-parameters after
    /// each recorded loss, before the next step (e.g. a
    /// [`ReduceOnPlateau`](crate::optim::ReduceOnPlateau) schedule driven
    /// by the training loss, or a closure; see [`Tuner`]). Tuners are
    /// called after the observers, in the order added, and not for the
    /// loss a continued run starts from (they have seen it). A run with a
    /// tuner runs in weight space ([`Parameterization::Kernel`] is refused:
    /// a step size that depends on the losses leaves the linear dynamics the
    /// kernel path and the theory assume) and keeps a copy of the last
    /// step's parameters and optimizer state, so that a divergence rolls
    /// back without replaying steps under changed hyper-parameters.
    /// Tuners are not saved in checkpoints.
    ///
    /// ```
    /// use nalgebra::{DMatrix, DVector};
    /// use ntk_momentum::optim::ReduceOnPlateau;
    /// use ntk_momentum::{HeavyBall, Trainer, TwoLayerReLU};
    ///
    /// let x = DMatrix::from_fn(6, 3, |i, k| ((i * 3 + k) as f64).cos());
    /// let x = DMatrix::from_rows(&x.row_iter().map(|r| r / r.norm()).collect::<Vec<_>>());
    /// let y = DVector::from_fn(6, |i, _| if i % 2 == 0 { 1.0 } else { -1.0 });
    /// let mut trainer = Trainer::new(TwoLayerReLU::new(3, 64, 0)?, HeavyBall::new(1.0, 0.9)?)
    ///     .max_steps(100)
    ///     .tuner(ReduceOnPlateau::new().factor(0.5)?.patience(3));
    /// trainer.run(&x, &y)?;
    /// assert!(trainer.optimizer().lr() <= 1.0);
    /// # Ok::<(), ntk_momentum::Error>(())
    /// ```
    #[must_use = "a builder method returns the changed value"]
    pub fn tuner(mut self, tuner: impl Tuner + Send + 'static) -> Self {
        self.tuners.push(Box::new(tuner));
        self
    }

    /// A held-out evaluation set (`x_test`: one sample per row, same input
    /// dimension as the model; `y_test`: one target per row). At the
    /// diagnostics cadence the run records its loss
    /// ½ Σ_i (f(W_t; x_i) − y_i)² ([`Diagnostics::test_loss`](crate::Diagnostics::test_loss)) and its sign
    /// accuracy, the fraction of samples with f(W_t; x_i)·y_i > 0
    /// ([`Diagnostics::test_accuracy`](crate::Diagnostics::test_accuracy)). It does not influence training.
    ///
    /// Cost per diagnostic: 2 m d n_test flops in weight space, 2 m n n_test
    /// in kernel space (with X X_testᵀ and W_0 X_testᵀ formed once per call).
    ///
    /// # Errors
    /// [`Error::ShapeMismatch`] or [`Error::NonFinite`], naming "evaluation
    /// set x_test" or "y_test", for inputs of another dimension than the
    /// model's, no rows, targets of another count, or NaN and infinities.
    pub fn evaluation_set(mut self, x_test: DMatrix<T>, y_test: DVector<T>) -> Result<Self> {
        self.model
            .check_inputs(&x_test)
            .map_err(|e| e.context("evaluation set x_test"))?;
        TwoLayerReLU::check_targets(&y_test, x_test.nrows()).map_err(|e| e.context("evaluation set y_test"))?;
        self.evaluation = Some((x_test, y_test));
        Ok(self)
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
        self.run.as_ref().map(|r| r.space.parameterization())
    }

    /// Resolves the parameterization and fixes the run's data at step 0, or
    /// checks that a continued run keeps them.
    fn prepare_run(&mut self, x: &DMatrix<T>, y: &DVector<T>) -> Result<()> {
        let fingerprint = data_fingerprint(x, y);
        let (n, m, d) = (x.nrows(), self.model.width(), self.model.input_dim());
        let wanted = match self.options.parameterization {
            Parameterization::Kernel if !self.optimizer.is_linear() => {
                return Err(Error::Unsupported(format!(
                    "kernel-space training with optimizer \"{}\" ({:?}), which does not declare itself linear in \
                     the gradients (Optimizer::is_linear: weight decay, clipping and maximize are not, nor are \
                     methods such as Adam); use Parameterization::Weight",
                    self.optimizer.name(),
                    self.optimizer.state().hyperparameters
                )))
            }
            Parameterization::Kernel if !self.tuners.is_empty() => {
                return Err(Error::Unsupported(
                    "kernel-space training with a tuner (Trainer::tuner): hyper-parameters that depend on the \
                     losses leave the linear dynamics kernel space assumes; use Parameterization::Weight"
                        .into(),
                ))
            }
            Parameterization::Auto if !self.optimizer.is_linear() || !self.tuners.is_empty() => {
                Parameterization::Weight
            }
            Parameterization::Auto => auto_parameterization(n, m, d, self.options.max_steps.saturating_sub(self.step)),
            p => p,
        };
        if !self.tuners.is_empty() && self.optimizer.hyperparameters_mut().is_none() {
            return Err(Error::Unsupported(format!(
                "a tuner with optimizer \"{}\", which exposes no hyper-parameters (Optimizer::hyperparameters_mut)",
                self.optimizer.name()
            )));
        }
        let space = match &self.run {
            Some(run) => run.space.parameterization(),
            None => wanted,
        };
        reserve_run(space, n, m, d, &self.options, std::mem::size_of::<T>())?;
        let Some(run) = &self.run else {
            self.run = Some(RunState {
                space: Space::new(wanted, m, n),
                fingerprint,
                initial_weights: self.model.weights().clone(),
            });
            return Ok(());
        };
        if let Space::Kernel { coefficients } = &run.space {
            if coefficients.shape() != (m, n) {
                return Err(Error::shape(
                    "kernel-space coefficients B of the run",
                    format!("{m} x {n} (width x samples)"),
                    format!("{} x {}", coefficients.nrows(), coefficients.ncols()),
                ));
            }
        }
        if run.fingerprint != fingerprint {
            return Err(Error::Unsupported(
                "continuing a run on different data: the run's initial state and history refer to the data \
                 of its first step; start a new Trainer"
                    .into(),
            ));
        }
        let started = run.space.parameterization();
        if self.options.parameterization != Parameterization::Auto && self.options.parameterization != started {
            return Err(Error::Unsupported(format!(
                "switching a started run from {started} space to {} space (the optimizer state lives in the \
                 coordinates of the first); start a new Trainer",
                self.options.parameterization
            )));
        }
        Ok(())
    }

    /// Trains on `x` (n × d, one sample per row) and `y` (n targets) until a
    /// stopping rule fires, and returns the history of the whole run.
    ///
    /// # Errors
    /// Shapes that disagree with each other or with the model, non-finite
    /// data, invalid options, a parameterization the optimizer does not
    /// support, data other than that of the run being continued, buffers
    /// beyond the memory budget ([`Error::TooLarge`], see
    /// [`crate::memory_limit`]), any optimizer error, and
    /// [`Error::Diverged`] (carrying the history; the
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
}

/// Checks the buffers one call to [`Trainer::run`] holds at once against the
/// memory budget ([`crate::memory_limit`]): W_0 and the step's m × n
/// pre-activation, initial pre-activation and residual-weight matrices; the
/// parameters and their gradient, a copy of them for a rollback and an
/// optimizer state of up to two parameter-sized buffers (m × d in weight
/// space, the m × n coefficients in kernel space, which also holds X Xᵀ);
/// and with the NTK drift three n × n matrices and a Lanczos basis, or above
/// [`NTK_DRIFT_MAX_SAMPLES`](crate::train::NTK_DRIFT_MAX_SAMPLES) the
/// matrix-free diagnostics' probes, masks, work matrices and Lanczos basis.
fn reserve_run(
    space: Parameterization,
    n: usize,
    m: usize,
    d: usize,
    options: &TrainOptions,
    bytes: usize,
) -> Result<()> {
    use crate::memory::bytes_of;
    let parameters = match space {
        Parameterization::Kernel => [m, n],
        _ => [m, d],
    };
    let tracked = options.track_ntk_drift && options.diagnostics_every > 0;
    let drift = tracked && n <= crate::train::NTK_DRIFT_MAX_SAMPLES;
    let matrix_free = tracked && !drift && space != Parameterization::Kernel;
    let block = (crate::ntk::BLOCK_ENTRIES / m.max(1)).clamp(1, n.max(1));
    crate::memory::reserve(
        || format!("the training buffers ({space} space, n = {n}, m = {m}, d = {d})"),
        &[
            bytes_of(&[m, d], bytes),
            bytes_of(&[3, m, n], bytes),
            bytes_of(&[5, parameters[0], parameters[1]], bytes),
            if space == Parameterization::Kernel {
                bytes_of(&[n, n], bytes)
            } else {
                Some(0)
            },
            if drift { bytes_of(&[3, n, n], bytes) } else { Some(0) },
            if matrix_free {
                // Probes and their products, then masks, work matrices and the Lanczos basis.
                let vectors = (options.ntk_probes.saturating_mul(3))
                    .saturating_add(options.ntk_lanczos_products)
                    .saturating_add(m.div_ceil(64) + 2);
                bytes_of(&[vectors, n], 8)
                    .and_then(|a| bytes_of(&[m, block.saturating_add(d)], bytes).and_then(|b| a.checked_add(b)))
            } else {
                Some(0)
            },
            // The Lanczos basis of the drift diagnostics' extreme eigenvalues.
            if drift {
                bytes_of(&[n, n.min(crate::linalg::EXTREMES_MAX_PRODUCTS)], 8)
            } else {
                Some(0)
            },
        ],
    )
}
