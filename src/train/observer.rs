use super::History;
use crate::optim::{HyperParameters, ReduceOnPlateau};
use crate::Result;

/// What an [`Observer`] sees after each recorded loss.
#[derive(Clone, Copy, Debug)]
#[non_exhaustive]
pub struct StepInfo<'a> {
    /// Steps taken so far (0 = the loss before the first step).
    pub step: usize,
    /// The full-batch loss after `step` steps.
    pub loss: f64,
    /// The loss before the first step.
    pub initial_loss: f64,
    /// The last step the run will reach unless stopped earlier.
    pub max_steps: usize,
    /// Everything recorded so far (including this loss).
    pub history: &'a History,
}

/// An observer's verdict.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Control {
    /// Keep training.
    Continue,
    /// Stop after this step; the run ends with [`super::Stop::Observer`].
    Stop,
}

/// Called by [`super::Trainer::run`] after each recorded loss, for logging,
/// progress display or custom stopping rules.
///
/// Any `FnMut(&StepInfo) -> Control` closure is an observer:
///
/// ```
/// use ntk_momentum::train::{Control, StepInfo};
///
/// let mut stop_on_plateau = |info: &StepInfo| {
///     let l = info.history.losses();
///     if l.len() > 10 && l[l.len() - 1] > 0.999 * l[l.len() - 11] { Control::Stop } else { Control::Continue }
/// };
/// # let _ = &mut stop_on_plateau;
/// ```
pub trait Observer {
    /// Inspects the state after a step.
    fn observe(&mut self, info: &StepInfo<'_>) -> Control;
    /// Called once when the run ends (normally or not).
    fn finish(&mut self, _history: &History) {}
}

impl<F: FnMut(&StepInfo<'_>) -> Control> Observer for F {
    fn observe(&mut self, info: &StepInfo<'_>) -> Control {
        self(info)
    }
}

/// A terminal progress bar showing step, loss and loss reduction
/// (feature `progress`).
#[cfg(feature = "progress")]
#[cfg_attr(docsrs, doc(cfg(feature = "progress")))]
pub struct ProgressBar {
    bar: indicatif::ProgressBar,
}

#[cfg(feature = "progress")]
impl ProgressBar {
    /// A progress bar labelled `label` (e.g. the optimizer's name).
    pub fn new(label: &str) -> Self {
        let bar = indicatif::ProgressBar::new(0);
        #[allow(clippy::expect_used)] // a constant template
        bar.set_style(
            indicatif::ProgressStyle::with_template("{prefix:>4} {bar:30} {pos}/{len} steps {msg} [{elapsed_precise}]")
                .expect("valid progress template"),
        );
        bar.set_prefix(label.to_string());
        ProgressBar { bar }
    }
}

#[cfg(feature = "progress")]
impl Observer for ProgressBar {
    fn observe(&mut self, info: &StepInfo<'_>) -> Control {
        self.bar.set_length(info.max_steps as u64);
        self.bar.set_position(info.step as u64);
        if info.step.is_multiple_of(8) || info.step == info.max_steps {
            self.bar.set_message(format!(
                "loss {:.3e} ({:.1e} of initial)",
                info.loss,
                info.loss / info.initial_loss
            ));
        }
        Control::Continue
    }
    fn finish(&mut self, _history: &History) {
        self.bar.finish();
    }
}

/// Changes the optimizer's hyper-parameters between steps from what the run
/// has seen: a [`ReduceOnPlateau`](crate::optim::ReduceOnPlateau) schedule
/// (driven with the training loss of every step) or any
/// `FnMut(&StepInfo, &mut dyn HyperParameters) -> Result<()>` closure. Added
/// with [`Trainer::tuner`](super::Trainer::tuner); called after the observers,
/// before the next step.
///
/// ```
/// use ntk_momentum::optim::HyperParameters;
/// use ntk_momentum::train::{StepInfo, Tuner};
///
/// // Halve every group's step size at step 50.
/// let mut halve = |info: &StepInfo, hyper: &mut dyn HyperParameters| {
///     if info.step == 50 {
///         for k in 0..hyper.group_count() {
///             let lr = hyper.group_lr(k).unwrap_or(0.0);
///             hyper.set_group_lr(k, 0.5 * lr)?;
///         }
///     }
///     Ok(())
/// };
/// # fn is_tuner(_: &impl Tuner) {}
/// # is_tuner(&halve);
/// ```
pub trait Tuner {
    /// Looks at the state after a step and changes hyper-parameters.
    ///
    /// # Errors
    /// Whatever the tuner refuses; the run stops with that error before
    /// the next step, its state that of the last completed step.
    fn tune(&mut self, info: &StepInfo<'_>, hyper: &mut dyn HyperParameters) -> Result<()>;
}

impl<F: FnMut(&StepInfo<'_>, &mut dyn HyperParameters) -> Result<()>> Tuner for F {
    fn tune(&mut self, info: &StepInfo<'_>, hyper: &mut dyn HyperParameters) -> Result<()> {
        self(info, hyper)
    }
}

impl Tuner for ReduceOnPlateau {
    /// Observes the training loss of the step.
    fn tune(&mut self, info: &StepInfo<'_>, hyper: &mut dyn HyperParameters) -> Result<()> {
        self.observe(info.loss, hyper).map(|_| ())
    }
}
