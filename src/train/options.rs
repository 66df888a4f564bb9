//! [`TrainOptions`]: everything a [`Trainer`](super::Trainer) is told besides
//! its model, optimizer, observers and evaluation set.

use super::Parameterization;
use crate::{Error, Result};

/// The options of a [`Trainer`](super::Trainer), settable one by one with its builder
/// methods or all at once with [`Trainer::with_options`](super::Trainer::with_options) (and serializable
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
    /// Above [`NTK_DRIFT_MAX_SAMPLES`](super::NTK_DRIFT_MAX_SAMPLES)
    /// samples: random probes of the matrix-free NTK drift estimate
    /// (default 4; 0 turns the drift off there).
    #[cfg_attr(feature = "serde", serde(default = "default_ntk_probes"))]
    pub ntk_probes: usize,
    /// Above [`NTK_DRIFT_MAX_SAMPLES`](super::NTK_DRIFT_MAX_SAMPLES)
    /// samples: most Lanczos products H(W_t) v per diagnostic for λ_min and
    /// λ_max of H(W_t) (default 0: not computed there).
    #[cfg_attr(feature = "serde", serde(default))]
    pub ntk_lanczos_products: usize,
}

#[cfg(feature = "serde")]
fn default_ntk_probes() -> usize {
    4
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
            ntk_probes: 4,
            ntk_lanczos_products: 0,
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
