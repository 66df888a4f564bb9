//! "A is no slower than B": decided by the predicted step counts, so that a
//! property only asserts claims that are true.

use crate::theory::{Method, ModalResidual};
use crate::{Error, Result};

/// Relative distance from the loss level within which a predicted crossing
/// counts as undecided: a run's rounding could move it by one step.
pub const RACE_MARGIN: f64 = 1e-6;

/// One contestant: a method at constant (η, β).
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Contestant {
    /// The method.
    pub method: Method,
    /// Step size η.
    pub lr: f64,
    /// Momentum β (ignored for GD).
    pub momentum: f64,
}

impl Contestant {
    /// A contestant.
    pub fn new(method: Method, lr: f64, momentum: f64) -> Self {
        Contestant { method, lr, momentum }
    }
}

/// The predicted race of two contestants to `loss_fraction` of L_0 on the
/// linearized dynamics of one residual.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Race {
    /// The level, as a fraction of L_0.
    pub loss_fraction: f64,
    /// Predicted steps of the first contestant (`None`: not within the budget).
    pub first: Option<usize>,
    /// Predicted steps of the second.
    pub second: Option<usize>,
    /// Whether both crossings are clear of the level by [`RACE_MARGIN`]
    /// (the loss at the crossing step at most (1 − margin) · level, every
    /// earlier loss above (1 + margin) · level), so that a run whose
    /// losses follow the prediction to that accuracy crosses at the same
    /// steps.
    pub decided: bool,
}

impl Race {
    /// Whether the first contestant reaches the level no later than the
    /// second: `Some(answer)` when the race is decided and the first reaches
    /// the level within the budget, `None` otherwise (then the claim should
    /// not be tested: `prop_assume!(race.first_no_slower() == Some(true))`).
    pub fn first_no_slower(&self) -> Option<bool> {
        if !self.decided {
            return None;
        }
        match (self.first, self.second) {
            (Some(a), Some(b)) => Some(a <= b),
            (Some(_), None) => Some(true),
            (None, Some(_)) => Some(false),
            (None, None) => None,
        }
    }
}

/// Predicts the race of `first` and `second` to `loss_fraction` · L_0 of
/// `residual` within `budget` steps (exact linearized recursions, as
/// [`ModalResidual::steps_to`]).
///
/// # Errors
/// [`Error::InvalidParameter`] for a `loss_fraction` not in (0, 1) or an
/// out-of-range step size or momentum.
///
/// # Examples
/// ```
/// use ntk_momentum::testing::{race, Contestant};
/// use ntk_momentum::theory::{Method, ModalResidual};
///
/// // kappa = 71.5: at the same (eta, beta) HB's slowest mode can beat NAG's.
/// let r = ModalResidual::from_coordinates(vec![1.0, 71.5], vec![1.0, 1.0])?;
/// let (lr, beta) = (1.0 / 71.5, 0.75);
/// let race = race(&r, Contestant::new(Method::Nesterov, lr, beta), Contestant::new(Method::HeavyBall, lr, beta), 1e-12, 100_000)?;
/// println!("NAG {:?} vs HB {:?} steps", race.first, race.second);
/// assert!(race.decided);
/// # Ok::<(), ntk_momentum::Error>(())
/// ```
pub fn race(
    residual: &ModalResidual,
    first: Contestant,
    second: Contestant,
    loss_fraction: f64,
    budget: usize,
) -> Result<Race> {
    if !(loss_fraction > 0.0 && loss_fraction < 1.0) {
        return Err(Error::invalid("loss_fraction", loss_fraction, "a fraction in (0, 1)"));
    }
    let level = loss_fraction * residual.initial_loss();
    let crossing = |c: Contestant| -> Result<(Option<usize>, bool)> {
        let steps = residual.steps_to(c.method, c.lr, c.momentum, loss_fraction, budget)?;
        let Some(s) = steps else {
            return Ok((None, true));
        };
        let losses = residual.losses(c.method, c.lr, c.momentum, s)?;
        let clear_at = losses[s] <= level * (1.0 - RACE_MARGIN);
        // Every earlier loss clear above the level (oscillating runs can come
        // close before they cross).
        let clear_before = losses[..s].iter().all(|&l| l > level * (1.0 + RACE_MARGIN));
        Ok((Some(s), clear_at && clear_before))
    };
    let (a, clear_a) = crossing(first)?;
    let (b, clear_b) = crossing(second)?;
    Ok(Race {
        loss_fraction,
        first: a,
        second: b,
        decided: clear_a && clear_b,
    })
}
