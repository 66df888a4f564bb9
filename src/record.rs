//! The record of a run, shared by every layer: [`History`] (losses, times,
//! diagnostics, why the run stopped), [`Diagnostics`] and the one stop enum
//! [`Stop`] of both [`crate::minimize`] and [`crate::Trainer`]. A leaf
//! module: it depends on nothing else in the crate.

/// Why a run ended without error ([`crate::Trainer::run`] or
/// [`crate::minimize`]).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
#[non_exhaustive]
pub enum Stop {
    /// The step budget was used up ([`crate::Trainer::max_steps`],
    /// [`crate::MinimizeOptions::max_steps`]).
    MaxSteps,
    /// The loss or objective reached its target
    /// ([`crate::Trainer::target_loss`], [`crate::MinimizeOptions::target_loss`]).
    TargetLoss,
    /// The loss reached [`crate::Trainer::target_relative_loss`] times the
    /// initial loss.
    TargetRelativeLoss,
    /// The gradient norm reached [`crate::MinimizeOptions::grad_tol`].
    GradientTolerance,
    /// An observer returned [`crate::train::Control::Stop`].
    Observer,
}

/// Diagnostics of how far a run is from the NTK (lazy) regime, recorded at
/// the training loop's diagnostics cadence, and the evaluation set's loss
/// and accuracy when the trainer has one.
#[derive(Clone, Debug, PartialEq)]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
#[non_exhaustive]
pub struct Diagnostics {
    /// The step at which they were measured (0 = initialization).
    pub step: usize,
    /// Weight excursion ‖W_t − W_0‖_F.
    pub weight_distance: f64,
    /// Largest neuron excursion max_r ‖w_r(t) − w_r(0)‖.
    pub max_neuron_distance: f64,
    /// Fraction of the n·m ReLU activations 1[w_r·x_i > 0] that differ from
    /// those at initialization.
    pub activation_flip_fraction: f64,
    /// NTK drift ‖H(W_t) − H(W_0)‖_F / ‖H(W_0)‖_F (`None` when the Gram
    /// matrix was not tracked).
    pub ntk_drift: Option<f64>,
    /// λ_min of H(W_t) (`None` when the Gram matrix was not tracked). Its
    /// fall during training is what turns a momentum tuned at λ_min(H(W_0))
    /// overdamped; the Frobenius drift cannot show it (see
    /// [`crate::theory::regime`]).
    pub ntk_lambda_min: Option<f64>,
    /// λ_max of H(W_t) (`None` when the Gram matrix was not tracked).
    pub ntk_lambda_max: Option<f64>,
    /// Loss ½ Σ_i (f(W_t; x_i) − y_i)² on the evaluation set
    /// ([`crate::Trainer::evaluation_set`]; `None` without one).
    pub test_loss: Option<f64>,
    /// Fraction of evaluation samples with f(W_t; x_i)·y_i > 0 (`None`
    /// without an evaluation set).
    pub test_accuracy: Option<f64>,
}

/// What a run recorded: the full-batch loss before the first step and after
/// every step, the wall-clock time of each, and diagnostics at a cadence.
///
/// With the feature `nalgebra` (part of the default `full`), `approx`'s
/// `AbsDiffEq` and `RelativeEq` compare two histories: losses and every
/// diagnostic value within the tolerance, steps and stop reasons exactly;
/// the wall-clock times are not compared.
///
/// Losses are stored as `f64` whatever the model's float type (an `f32` loss
/// converts exactly), so the crate's one [`crate::Error`] can carry a history
/// when a run diverges.
#[derive(Clone, Debug, Default, PartialEq)]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
pub struct History {
    losses: Vec<f64>,
    elapsed: Vec<f64>,
    diagnostics: Vec<Diagnostics>,
    stop: Option<Stop>,
}

impl History {
    /// Loss per step; entry 0 is the loss before the first step, entry t the
    /// loss after t steps.
    pub fn losses(&self) -> &[f64] {
        &self.losses
    }

    /// Seconds since the start of the run at which each loss was recorded.
    pub fn elapsed(&self) -> &[f64] {
        &self.elapsed
    }

    /// Diagnostics in step order.
    pub fn diagnostics(&self) -> &[Diagnostics] {
        &self.diagnostics
    }

    /// Number of steps taken (one less than the number of losses).
    pub fn steps(&self) -> usize {
        self.losses.len().saturating_sub(1)
    }

    /// The last recorded loss.
    pub fn final_loss(&self) -> Option<f64> {
        self.losses.last().copied()
    }

    /// The first step at which the loss is at most `fraction` times the
    /// initial loss, if any.
    pub fn steps_to_fraction(&self, fraction: f64) -> Option<usize> {
        let l0 = *self.losses.first()?;
        self.losses.iter().position(|&l| l <= fraction * l0)
    }

    /// Why the last run ended, if it ended without error.
    pub fn stop_reason(&self) -> Option<Stop> {
        self.stop
    }

    pub(crate) fn clear_stop(&mut self) {
        self.stop = None;
    }

    pub(crate) fn set_stop(&mut self, stop: Stop) {
        self.stop = Some(stop);
    }

    pub(crate) fn push_loss(&mut self, loss: f64, elapsed: f64) {
        self.losses.push(loss);
        self.elapsed.push(elapsed);
    }

    pub(crate) fn push_diagnostics(&mut self, d: Diagnostics) {
        self.diagnostics.push(d);
    }

    /// Builds a history from recorded parts (used by checkpoints).
    pub(crate) fn from_parts(losses: Vec<f64>, elapsed: Vec<f64>, diagnostics: Vec<Diagnostics>) -> Self {
        History {
            losses,
            elapsed,
            diagnostics,
            stop: None,
        }
    }

    /// Keeps the first `len` losses and the diagnostics up to step `len - 1`.
    pub(crate) fn truncate(&mut self, len: usize) {
        self.losses.truncate(len);
        self.elapsed.truncate(len);
        self.diagnostics.retain(|d| d.step < len);
    }

    pub(crate) fn has_diagnostics_at(&self, step: usize) -> bool {
        self.diagnostics.last().is_some_and(|d| d.step == step)
    }

    pub(crate) fn remove_diagnostics_at(&mut self, step: usize) {
        if self.has_diagnostics_at(step) {
            self.diagnostics.pop();
        }
    }
}

#[cfg(feature = "nalgebra")]
crate::float::approx_record!(History, |a, b, same| {
    use crate::float::close::option;
    a.losses.len() == b.losses.len()
        && same(&a.losses, &b.losses)
        && a.stop == b.stop
        && a.diagnostics.len() == b.diagnostics.len()
        && a.diagnostics.iter().zip(&b.diagnostics).all(|(x, y)| {
            x.step == y.step
                && same(
                    &[x.weight_distance, x.max_neuron_distance, x.activation_flip_fraction],
                    &[y.weight_distance, y.max_neuron_distance, y.activation_flip_fraction],
                )
                && option(x.ntk_drift, y.ntk_drift, same)
                && option(x.ntk_lambda_min, y.ntk_lambda_min, same)
                && option(x.ntk_lambda_max, y.ntk_lambda_max, same)
                && option(x.test_loss, y.test_loss, same)
                && option(x.test_accuracy, y.test_accuracy, same)
        })
});
