//! A loss-aware step-size schedule: reduce the step size when the loss
//! stops improving (PyTorch's `ReduceLROnPlateau`).

use super::HyperParameters;
use crate::{Error, Result};

/// Whether the watched quantity should go down (a loss) or up (an
/// accuracy).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
#[non_exhaustive]
pub enum PlateauMode {
    /// Lower is better (the default).
    #[default]
    Min,
    /// Higher is better.
    Max,
}

/// How an improvement is measured against the best value so far.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
#[non_exhaustive]
pub enum ThresholdMode {
    /// Relative: better than best · (1 ∓ threshold) (the default).
    #[default]
    Relative,
    /// Absolute: better than best ∓ threshold.
    Absolute,
}

/// Reduce the step size of every parameter group by `factor` when the
/// watched value has not improved for more than `patience` observations:
/// PyTorch's `torch.optim.lr_scheduler.ReduceLROnPlateau`, with its
/// defaults and semantics.
///
/// At each [`observe`](Self::observe)`(v)`:
///
/// ```text
/// better(v)  = v < best (1 − threshold)     (Min, Relative)      v < best − threshold  (Min, Absolute)
///              v > best (1 + threshold)     (Max, Relative)      v > best + threshold  (Max, Absolute)
/// if better(v): best = v, bad = 0  else bad += 1
/// if cooling down: cooldown_left −= 1, bad = 0
/// if bad > patience: for every group k: new = max(lr_k · factor, min_lr_k);
///                    lr_k = new if lr_k − new > eps;   cooldown_left = cooldown, bad = 0
/// ```
///
/// with best = +∞ (Min) or −∞ (Max) at the start. The [`crate::Trainer`]
/// (with `Trainer::tuner`, feature `full`) and [`crate::minimize`] (with
/// [`crate::MinimizeOptions::plateau`]) call it with the loss of every
/// step; a custom loop calls it itself:
///
/// ```
/// use ntk_momentum::optim::ReduceOnPlateau;
/// use ntk_momentum::{HeavyBall, Optimizer};
///
/// let mut hb = HeavyBall::new(0.1, 0.9)?;
/// let mut plateau = ReduceOnPlateau::new().factor(0.5)?.patience(2);
/// for loss in [1.0, 0.5, 0.5, 0.5, 0.5] {
///     plateau.observe(loss, &mut hb)?;
/// }
/// assert_eq!(hb.lr(), 0.05); // the third loss without improvement halved it
/// # Ok::<(), ntk_momentum::Error>(())
/// ```
#[derive(Clone, Debug, PartialEq)]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
pub struct ReduceOnPlateau {
    mode: PlateauMode,
    factor: f64,
    patience: u64,
    threshold: f64,
    threshold_mode: ThresholdMode,
    cooldown: u64,
    min_lrs: Vec<f64>,
    eps: f64,
    best: f64,
    bad: u64,
    cooldown_left: u64,
    reductions: u64,
}

impl Default for ReduceOnPlateau {
    fn default() -> Self {
        Self::new()
    }
}

impl ReduceOnPlateau {
    /// PyTorch's defaults: mode min, factor 0.1, patience 10, threshold
    /// 1e-4 relative, cooldown 0, min_lr 0, eps 1e-8.
    pub fn new() -> Self {
        ReduceOnPlateau {
            mode: PlateauMode::Min,
            factor: 0.1,
            patience: 10,
            threshold: 1e-4,
            threshold_mode: ThresholdMode::Relative,
            cooldown: 0,
            min_lrs: vec![0.0],
            eps: 1e-8,
            best: f64::INFINITY,
            bad: 0,
            cooldown_left: 0,
            reductions: 0,
        }
    }

    /// Whether lower or higher is better; resets the best value.
    #[must_use = "a builder method returns the changed value"]
    pub fn mode(mut self, mode: PlateauMode) -> Self {
        self.mode = mode;
        self.best = match mode {
            PlateauMode::Min => f64::INFINITY,
            PlateauMode::Max => f64::NEG_INFINITY,
        };
        self
    }

    /// The factor applied to the step size at a plateau.
    ///
    /// # Errors
    /// [`Error::InvalidParameter`] unless 0 < factor < 1 (PyTorch refuses
    /// factor ≥ 1 too).
    pub fn factor(mut self, factor: f64) -> Result<Self> {
        if !(factor > 0.0 && factor < 1.0) {
            return Err(Error::invalid("factor", factor, "a number in (0, 1)"));
        }
        self.factor = factor;
        Ok(self)
    }

    /// Observations without improvement tolerated before a reduction.
    #[must_use = "a builder method returns the changed value"]
    pub fn patience(mut self, patience: u64) -> Self {
        self.patience = patience;
        self
    }

    /// What counts as an improvement.
    ///
    /// # Errors
    /// [`Error::InvalidParameter`] unless `threshold` is finite and ≥ 0.
    pub fn threshold(mut self, threshold: f64, mode: ThresholdMode) -> Result<Self> {
        if !(threshold.is_finite() && threshold >= 0.0) {
            return Err(Error::invalid("threshold", threshold, "a finite number >= 0"));
        }
        self.threshold = threshold;
        self.threshold_mode = mode;
        Ok(self)
    }

    /// Observations after a reduction during which bad ones are not counted.
    #[must_use = "a builder method returns the changed value"]
    pub fn cooldown(mut self, cooldown: u64) -> Self {
        self.cooldown = cooldown;
        self
    }

    /// The smallest step size, for every group.
    ///
    /// # Errors
    /// [`Error::InvalidParameter`] unless finite and ≥ 0.
    pub fn min_lr(self, min_lr: f64) -> Result<Self> {
        self.min_lrs(vec![min_lr])
    }

    /// The smallest step size of each group (one value per group, or one
    /// for all).
    ///
    /// # Errors
    /// [`Error::InvalidParameter`] for no values or one that is not finite
    /// and ≥ 0; the count is checked against the groups at the first
    /// observation.
    pub fn min_lrs(mut self, min_lrs: Vec<f64>) -> Result<Self> {
        if min_lrs.is_empty() {
            return Err(Error::invalid(
                "min_lrs",
                "no values",
                "one value per group, or one for all",
            ));
        }
        if let Some(v) = min_lrs.iter().find(|v| !(v.is_finite() && **v >= 0.0)) {
            return Err(Error::invalid("min_lr", *v, "a finite number >= 0"));
        }
        self.min_lrs = min_lrs;
        Ok(self)
    }

    /// The smallest change of a step size that is applied.
    ///
    /// # Errors
    /// [`Error::InvalidParameter`] unless finite and ≥ 0.
    pub fn eps(mut self, eps: f64) -> Result<Self> {
        if !(eps.is_finite() && eps >= 0.0) {
            return Err(Error::invalid("eps", eps, "a finite number >= 0"));
        }
        self.eps = eps;
        Ok(self)
    }

    /// The best value observed so far (±∞ before the first).
    pub fn best(&self) -> f64 {
        self.best
    }

    /// Observations without improvement since the last improvement or
    /// reduction.
    pub fn bad_observations(&self) -> u64 {
        self.bad
    }

    /// How many times the step sizes were reduced.
    pub fn reductions(&self) -> u64 {
        self.reductions
    }

    fn better(&self, v: f64) -> bool {
        match (self.mode, self.threshold_mode) {
            (PlateauMode::Min, ThresholdMode::Relative) => v < self.best * (1.0 - self.threshold),
            (PlateauMode::Min, ThresholdMode::Absolute) => v < self.best - self.threshold,
            (PlateauMode::Max, ThresholdMode::Relative) => v > self.best * (self.threshold + 1.0),
            (PlateauMode::Max, ThresholdMode::Absolute) => v > self.best + self.threshold,
        }
    }

    /// Takes one observation of the watched value and, at a plateau,
    /// reduces the step size of every group of `optimizer`. Returns whether
    /// it reduced any.
    ///
    /// # Errors
    /// [`Error::InvalidParameter`] for a NaN value, or a `min_lrs` list
    /// whose length is neither 1 nor the group count; errors of the
    /// optimizer's `set_group_lr`. The schedule's own state is unchanged
    /// on error.
    pub fn observe(&mut self, value: f64, optimizer: &mut dyn HyperParameters) -> Result<bool> {
        if value.is_nan() {
            return Err(Error::invalid("plateau value", value, "a number (not NaN)"));
        }
        let groups = optimizer.group_count();
        if self.min_lrs.len() != 1 && self.min_lrs.len() != groups {
            return Err(Error::invalid(
                "min_lrs",
                format!("{} values", self.min_lrs.len()),
                format!("1 or {groups} (the optimizer's group count)"),
            ));
        }
        let mut next = self.clone();
        if next.better(value) {
            next.best = value;
            next.bad = 0;
        } else {
            next.bad += 1;
        }
        if next.cooldown_left > 0 {
            next.cooldown_left -= 1;
            next.bad = 0;
        }
        let mut reduced = false;
        if next.bad > next.patience {
            let mut changes = Vec::new();
            for k in 0..groups {
                let Some(old) = optimizer.group_lr(k) else { continue };
                let min_lr = next.min_lrs[if next.min_lrs.len() == 1 { 0 } else { k }];
                let new = (old * next.factor).max(min_lr);
                if old - new > next.eps {
                    changes.push((k, old, new));
                }
            }
            for (j, &(k, _, new)) in changes.iter().enumerate() {
                if let Err(e) = optimizer.set_group_lr(k, new) {
                    // Undo the groups already changed: all or nothing.
                    for &(k, old, _) in &changes[..j] {
                        optimizer.set_group_lr(k, old)?;
                    }
                    return Err(e);
                }
            }
            reduced = !changes.is_empty();
            next.reductions += u64::from(reduced);
            next.cooldown_left = next.cooldown;
            next.bad = 0;
        }
        *self = next;
        Ok(reduced)
    }
}
