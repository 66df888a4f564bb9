//! The step loop of [`Trainer::run`]: per-call buffers, one loss and
//! gradient evaluation and one optimizer step in either space, the stopping
//! rules, and the exact roll-back after a divergence.

use std::rc::Rc;
use std::time::Instant;

use nalgebra::{DMatrix, DVector};

use super::diagnostics::{EvaluationBuffers, NtkBuffers, NtkTracker, ProbeBuffers};
use super::enclosure::{linear_method, EnclosureState, EnclosureTracker};
use super::trainer::{RunState, Space};
use super::{Control, Observer, StepInfo, Stop, Trainer, NTK_DRIFT_MAX_SAMPLES};
use crate::linalg::{gemm, gram_of_columns, residual_weights, Operand, Preactivations};
use crate::{Error, Float, Optimizer, OptimizerState, Result};

/// The optimizer's coordinates during one call, with the buffers each space
/// needs: the gradient G (weight space), or the coefficients B and
/// K = X Xᵀ (kernel space).
pub(super) enum Coordinates<T: Float> {
    /// Parameters W (the model's), gradient `G = Mᵀ X` (m × d).
    Weight {
        /// G.
        gradient: DMatrix<T>,
    },
    /// Parameters B (m × n), gradient `Mᵀ` itself; `P = P_0 + B K`.
    Kernel {
        /// B_t, moved out of the run state for the call.
        coefficients: DMatrix<T>,
        /// K = X Xᵀ (n × n), shared with the drift diagnostics.
        kernel: Rc<DMatrix<T>>,
    },
}

impl<T: Float> Coordinates<T> {
    /// Back to what the run keeps between calls.
    fn into_space(self) -> Space<T> {
        match self {
            Coordinates::Weight { .. } => Space::Weight,
            Coordinates::Kernel { coefficients, .. } => Space::Kernel { coefficients },
        }
    }
}

/// Per-call work buffers (not saved in checkpoints: all are recomputed).
pub(super) struct Buffers<T: Float> {
    /// Weight space: `P_t = W_t Xᵀ`; kernel space: `Q_t = B_t K = P_t − P_0`.
    pub(super) preactivations: DMatrix<T>,
    /// `P_0 = W_0 Xᵀ`.
    pub(super) initial_preactivations: DMatrix<T>,
    /// `Mᵀ` (m × n) of the last evaluation.
    residual_weights: DMatrix<T>,
    column_losses: Vec<f64>,
    /// Parameters, optimizer state and step at the start of the call: what
    /// a divergence rolls back to (and replays from).
    start_params: DMatrix<T>,
    start_state: OptimizerState,
    start_step: usize,
    pub(super) ntk: Option<NtkTracker<T>>,
    pub(super) evaluation: Option<EvaluationBuffers<T>>,
}

/// The current pre-activations `P_t` from the buffers' `preactivations`
/// and `initial_preactivations`, as stored in `coordinates`' space.
pub(super) fn current<'a, T: Float>(
    coordinates: &Coordinates<T>,
    preactivations: &'a DMatrix<T>,
    initial_preactivations: &'a DMatrix<T>,
) -> Preactivations<'a, T> {
    match coordinates {
        Coordinates::Weight { .. } => Preactivations::One(preactivations),
        Coordinates::Kernel { .. } => Preactivations::Sum(initial_preactivations, preactivations),
    }
}

impl<T: Float, O: Optimizer<DMatrix<T>>> Trainer<T, O> {
    /// Takes the run's coordinates for the call, allocates its buffers, runs
    /// the loop, and puts the coordinates back (forming `W = W_0 + B X` once
    /// in kernel space).
    pub(super) fn run_loop(&mut self, x: &DMatrix<T>, y: &DVector<T>, observer: &mut dyn Observer) -> Result<Stop> {
        #[allow(clippy::expect_used)] // set by prepare_run just before
        let mut run = self.run.take().expect("prepare_run sets the run state");
        let (mut coordinates, mut buffers) = self.allocate(x, &mut run);
        let result = self.steps(x, y, &run.initial_weights, &mut coordinates, &mut buffers, observer);
        if let Coordinates::Kernel { coefficients, .. } = &coordinates {
            let w = self.model.weights_mut();
            w.copy_from(&run.initial_weights);
            gemm(T::one(), Operand::n(coefficients), Operand::n(x), T::one(), w);
        }
        run.space = coordinates.into_space();
        self.run = Some(run);
        result
    }

    fn allocate(&self, x: &DMatrix<T>, run: &mut RunState<T>) -> (Coordinates<T>, Buffers<T>) {
        let (n, m, d) = (x.nrows(), self.model.width(), self.model.input_dim());
        let space = std::mem::replace(&mut run.space, Space::Weight);
        let tracked = self.options.track_ntk_drift && self.options.diagnostics_every > 0;
        let drift = tracked && n <= NTK_DRIFT_MAX_SAMPLES;
        let matrix_free = tracked && !drift && matches!(space, Space::Weight);
        let gram = || {
            let mut k = DMatrix::zeros(n, n);
            gram_of_columns(Operand::t(x), &mut k);
            Rc::new(k)
        };
        let coordinates = match space {
            Space::Weight => Coordinates::Weight {
                gradient: DMatrix::zeros(m, d),
            },
            Space::Kernel { coefficients } => Coordinates::Kernel {
                coefficients,
                kernel: gram(),
            },
        };
        let mut initial_preactivations = DMatrix::zeros(m, n);
        gemm(
            T::one(),
            Operand::n(&run.initial_weights),
            Operand::t(x),
            T::zero(),
            &mut initial_preactivations,
        );
        let ntk = if drift {
            let kernel = match &coordinates {
                Coordinates::Kernel { kernel, .. } => Rc::clone(kernel),
                Coordinates::Weight { .. } => gram(),
            };
            Some(NtkTracker::Dense(NtkBuffers::new(kernel, &initial_preactivations)))
        } else if matrix_free {
            // Skipped (None) if the budget refuses the operator's buffers.
            ProbeBuffers::new(
                x,
                &initial_preactivations,
                self.options.ntk_probes,
                self.options.ntk_lanczos_products,
            )
            .ok()
            .map(NtkTracker::MatrixFree)
        } else {
            None
        };
        let evaluation = self.evaluation.as_ref().map(|(xt, _)| {
            let kernel_space = matches!(coordinates, Coordinates::Kernel { .. });
            EvaluationBuffers::new(x, xt, &run.initial_weights, kernel_space)
        });
        let start_params = match &coordinates {
            Coordinates::Kernel { coefficients, .. } => coefficients.clone(),
            Coordinates::Weight { .. } => self.model.weights().clone(),
        };
        let buffers = Buffers {
            preactivations: DMatrix::zeros(m, n),
            initial_preactivations,
            residual_weights: DMatrix::zeros(m, n),
            column_losses: vec![0.0; n],
            start_params,
            start_state: self.optimizer.state(),
            start_step: self.step,
            ntk,
            evaluation,
        };
        (coordinates, buffers)
    }

    fn on_cadence(&self, step: usize) -> bool {
        let every = self.options.diagnostics_every;
        every > 0 && step.is_multiple_of(every)
    }

    /// Records diagnostics at the current step unless they are already there.
    fn diagnose_once(
        &mut self,
        x: &DMatrix<T>,
        initial_weights: &DMatrix<T>,
        coordinates: &Coordinates<T>,
        buf: &mut Buffers<T>,
    ) {
        if !self.history.has_diagnostics_at(self.step) {
            let d = self.diagnostics(x, initial_weights, coordinates, buf);
            self.history.push_diagnostics(d);
        }
    }

    /// `Some` reason if `loss` counts as divergence.
    fn divergence(&self, loss: f64, initial_loss: f64) -> Option<String> {
        if !loss.is_finite() {
            Some("non-finite loss".to_string())
        } else if loss > self.options.divergence_factor * initial_loss {
            Some(format!(
                "loss above {:e} times the initial loss {initial_loss:e}",
                self.options.divergence_factor
            ))
        } else {
            None
        }
    }

    /// The stopping rules after divergence, in order: target loss, target
    /// relative loss, observers (all of them are called), step budget.
    fn stop_rule(&mut self, loss: f64, observer: &mut dyn Observer) -> Option<Stop> {
        let initial_loss = self.history.losses()[0];
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
        let owned = self.observers.iter_mut().map(|o| &mut **o as &mut dyn Observer);
        for o in owned.chain([&mut *observer]) {
            if o.observe(&info) == Control::Stop && stop.is_none() {
                stop = Some(Stop::Observer);
            }
        }
        if stop.is_none() && self.step >= self.options.max_steps {
            stop = Some(Stop::MaxSteps);
        }
        stop
    }

    fn steps(
        &mut self,
        x: &DMatrix<T>,
        y: &DVector<T>,
        initial_weights: &DMatrix<T>,
        coordinates: &mut Coordinates<T>,
        buf: &mut Buffers<T>,
        observer: &mut dyn Observer,
    ) -> Result<Stop> {
        let start = Instant::now();
        let time_offset = self.history.elapsed().last().copied().unwrap_or(0.0);
        // A continued run already holds the loss at `self.step`; its
        // diagnostics there are kept only if they are on the cadence (an
        // uninterrupted run would have recorded them too).
        let mut resumed = self.history.losses().len() == self.step + 1;
        if resumed && !self.on_cadence(self.step) {
            self.history.remove_diagnostics_at(self.step);
        }
        loop {
            let loss = self.evaluate(x, y, coordinates, buf);
            let continued = std::mem::take(&mut resumed);
            if !continued {
                self.history
                    .push_loss(loss, time_offset + start.elapsed().as_secs_f64());
            }
            if let Some(reason) = self.divergence(loss, self.history.losses()[0]) {
                if !matches!(self.enclosure, EnclosureState::Off) {
                    self.enclosure = EnclosureState::Failed(format!("the run diverged at step {}", self.step));
                }
                let history = Box::new(self.history.clone());
                self.roll_back(x, y, coordinates, buf)?;
                return Err(Error::Diverged {
                    step: history.steps(),
                    loss,
                    reason,
                    history,
                });
            }
            self.enclose(x, y, coordinates, buf);
            if self.on_cadence(self.step) {
                self.diagnose_once(x, initial_weights, coordinates, buf);
            }
            if let Some(stop) = self.stop_rule(loss, observer) {
                // Diagnostics at the step where the run ends, whatever ends it.
                if self.options.diagnostics_every > 0 {
                    self.diagnose_once(x, initial_weights, coordinates, buf);
                }
                return Ok(stop);
            }
            if !self.tuners.is_empty() {
                if !continued {
                    self.tune(loss)?;
                }
                self.keep_for_roll_back(coordinates, buf);
            }
            self.advance(x, coordinates, buf)?;
        }
    }

    /// Calls the tuners with the step's loss.
    fn tune(&mut self, loss: f64) -> Result<()> {
        let info = StepInfo {
            step: self.step,
            loss,
            initial_loss: self.history.losses()[0],
            max_steps: self.options.max_steps,
            history: &self.history,
        };
        let Some(hyper) = self.optimizer.hyperparameters_mut() else {
            return Err(Error::Unsupported(
                "a tuner with an optimizer that exposes no hyper-parameters".into(),
            ));
        };
        for tuner in &mut self.tuners {
            tuner.tune(&info, hyper)?;
        }
        Ok(())
    }

    /// With tuners, the roll-back point moves to every step: the parameters
    /// and optimizer state before this step (a replay from the call's start
    /// would run under hyper-parameters the tuners have changed since).
    fn keep_for_roll_back(&self, coordinates: &Coordinates<T>, buf: &mut Buffers<T>) {
        match coordinates {
            Coordinates::Kernel { coefficients, .. } => buf.start_params.copy_from(coefficients),
            Coordinates::Weight { .. } => buf.start_params.copy_from(self.model.weights()),
        }
        buf.start_state = self.optimizer.state();
        buf.start_step = self.step;
    }

    /// Feeds the prediction enclosure the pre-activations of the current
    /// step (starting it at step 0); a failure is recorded, not raised: the
    /// run goes on and [`Trainer::verdict`] names the reason.
    fn enclose(&mut self, x: &DMatrix<T>, y: &DVector<T>, coordinates: &Coordinates<T>, buf: &Buffers<T>) {
        let p = current(coordinates, &buf.preactivations, &buf.initial_preactivations);
        let failed = match &mut self.enclosure {
            EnclosureState::Off | EnclosureState::Failed(_) => return,
            EnclosureState::Requested if self.step != 0 => {
                Some(format!("the run started at step {}, not 0 (resumed)", self.step))
            }
            EnclosureState::Requested if x.nrows() > NTK_DRIFT_MAX_SAMPLES => Some(format!(
                "{} samples, above NTK_DRIFT_MAX_SAMPLES = {NTK_DRIFT_MAX_SAMPLES} (dense n x n kernels)",
                x.nrows()
            )),
            EnclosureState::Requested => {
                let kernel = match coordinates {
                    Coordinates::Kernel { kernel, .. } => DMatrix::clone(kernel),
                    Coordinates::Weight { .. } => {
                        let mut k = DMatrix::zeros(x.nrows(), x.nrows());
                        gram_of_columns(Operand::t(x), &mut k);
                        k
                    }
                };
                let started = linear_method(&self.optimizer.state())
                    .and_then(|h| EnclosureTracker::start(h, kernel, p, self.model.output_weights(), y));
                match started {
                    Ok(t) => {
                        self.enclosure = EnclosureState::Tracking(Box::new(t));
                        None
                    }
                    Err(e) => Some(e.to_string()),
                }
            }
            EnclosureState::Tracking(t) => t.observe(self.step, p).err().map(|e| e.to_string()),
        };
        if let Some(why) = failed {
            self.enclosure = EnclosureState::Failed(why);
        }
    }

    /// `P_t` (weight space) or `Q_t = B_t K = P_t − P_0` (kernel space) into
    /// the buffers, then the loss and `Mᵀ_t` from one fused pass over `P_t`.
    /// Returns the loss.
    fn evaluate(&self, x: &DMatrix<T>, y: &DVector<T>, coordinates: &Coordinates<T>, buf: &mut Buffers<T>) -> f64 {
        match coordinates {
            Coordinates::Kernel { coefficients, kernel } => gemm(
                T::one(),
                Operand::n(coefficients),
                Operand::n(kernel),
                T::zero(),
                &mut buf.preactivations,
            ),
            Coordinates::Weight { .. } => self.model.preactivations_into(x, &mut buf.preactivations),
        }
        residual_weights(
            current(coordinates, &buf.preactivations, &buf.initial_preactivations),
            self.model.output_weights(),
            y,
            &mut buf.residual_weights,
            &mut buf.column_losses,
        )
    }

    /// One optimizer step from the `Mᵀ` left by [`Self::evaluate`].
    fn advance(&mut self, x: &DMatrix<T>, coordinates: &mut Coordinates<T>, buf: &mut Buffers<T>) -> Result<()> {
        match coordinates {
            // The gradient with respect to B is Mᵀ itself.
            Coordinates::Kernel { coefficients, .. } => self.optimizer.step(coefficients, &buf.residual_weights)?,
            Coordinates::Weight { gradient } => {
                // G = Mᵀ X
                gemm(
                    T::one(),
                    Operand::n(&buf.residual_weights),
                    Operand::n(x),
                    T::zero(),
                    gradient,
                );
                self.optimizer.step(self.model.weights_mut(), gradient)?;
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
    fn roll_back(
        &mut self,
        x: &DMatrix<T>,
        y: &DVector<T>,
        coordinates: &mut Coordinates<T>,
        buf: &mut Buffers<T>,
    ) -> Result<()> {
        let diverged_at = self.step;
        match coordinates {
            Coordinates::Kernel { coefficients, .. } => coefficients.copy_from(&buf.start_params),
            Coordinates::Weight { .. } => self.model.weights_mut().copy_from(&buf.start_params),
        }
        self.optimizer.set_state(&buf.start_state)?;
        self.step = buf.start_step;
        while self.step + 1 < diverged_at {
            self.evaluate(x, y, coordinates, buf);
            self.advance(x, coordinates, buf)?;
        }
        self.history.truncate(self.step + 1);
        Ok(())
    }
}
