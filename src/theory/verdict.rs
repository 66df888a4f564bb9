//! The verdict: does the linearized prediction from H(W_0) give the steps
//! to every loss level of a run, within a tolerance? Decided from the
//! [`PredictionEnclosure`] of the run, with a guarantee.

use std::fmt;

use super::enclosure::{EnclosureStep, PredictionEnclosure};
use super::Method;
use crate::{Error, Result};

/// How far a step count may be from the predicted one and still count as
/// "the prediction holds": |steps − predicted| ≤ max(`relative` · predicted,
/// `steps`). The default is 10 % or 2 steps.
#[derive(Clone, Copy, Debug, PartialEq)]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
pub struct StepTolerance {
    /// Relative part (default 0.1).
    pub relative: f64,
    /// Absolute part in steps (default 2).
    pub steps: usize,
}

impl Default for StepTolerance {
    fn default() -> Self {
        StepTolerance {
            relative: 0.1,
            steps: 2,
        }
    }
}

impl StepTolerance {
    /// Whether `steps` is within the tolerance of `predicted`.
    pub fn allows(&self, predicted: usize, steps: usize) -> bool {
        let slack = (self.relative * predicted as f64).max(self.steps as f64);
        (steps as f64 - predicted as f64).abs() <= slack
    }

    /// Whether two optional step counts agree: both reached within the
    /// tolerance, or both not reached.
    pub fn agrees(&self, predicted: Option<usize>, steps: Option<usize>) -> bool {
        match (predicted, steps) {
            (Some(p), Some(s)) => self.allows(p, s),
            (None, None) => true,
            _ => false,
        }
    }

    fn check(&self) -> Result<()> {
        if !(self.relative.is_finite() && self.relative >= 0.0) {
            return Err(Error::invalid(
                "tolerance.relative",
                self.relative,
                "a finite value >= 0",
            ));
        }
        Ok(())
    }
}

/// The verdict at one loss level.
#[derive(Clone, Copy, Debug, PartialEq)]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
#[non_exhaustive]
pub struct LevelVerdict {
    /// The level, a fraction of L_0.
    pub level: f64,
    /// The step at which the prediction from H(W_0) reaches it (`None`:
    /// not within the steps enclosed).
    pub predicted: Option<usize>,
    /// The earliest step at which the run can reach it (the band's lower
    /// edge reaches it; `None`: not within the steps enclosed, so the run
    /// does not reach it either).
    pub earliest: Option<usize>,
    /// The latest step by which the run has reached it (the band's upper
    /// edge reaches it; `None`: not guaranteed within the steps enclosed).
    pub latest: Option<usize>,
    /// The step at which the band's centre (the prediction corrected to
    /// first order for the kernel drift and the flips of this run) reaches
    /// it.
    pub first_order: Option<usize>,
    /// The step at which the re-prediction from the kernel at the
    /// re-anchoring step ([`Verdict::reanchored_at`]), started from ξ_0,
    /// reaches it: how much of a gap the kernel's drift explains.
    pub repredicted: Option<usize>,
    /// Guaranteed: the run's step count at this level is within the
    /// tolerance of `predicted` (or the prediction and the run both stay
    /// above the level for every step enclosed).
    pub holds: bool,
}

/// The verdict on one run: at each level, whether the linearized prediction
/// from H(W_0) is guaranteed to give the run's steps to it within the
/// tolerance.
///
/// **Guarantee.** If [`Verdict::holds`] is true, then at every level the run
/// reaches within the steps enclosed, its first step at or below the level
/// lies in [`LevelVerdict::earliest`, `LevelVerdict::latest`], and both ends
/// are within the tolerance of the predicted step (exact arithmetic; a
/// rounding allowance covers floating point, see
/// [`PredictionEnclosure::with_rounding`]). It rests only on the kernels
/// and activation flips along the run (see [`PredictionEnclosure`]), never
/// on the losses.
///
/// The converse is not guaranteed: "does not hold" means the enclosure
/// could not prove it — the band is wider than the tolerance, or the
/// first-order deviation moves the steps out of it.
#[derive(Clone, Debug, PartialEq)]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
#[non_exhaustive]
pub struct Verdict {
    /// The method and its (η, β).
    pub method: Method,
    /// Step size η.
    pub lr: f64,
    /// Momentum β (0 for GD).
    pub momentum: f64,
    /// The tolerance.
    pub tolerance: StepTolerance,
    /// Steps enclosed (the run's length).
    pub steps: usize,
    /// One verdict per level, in the order given.
    pub levels: Vec<LevelVerdict>,
    /// The largest ‖H_t − H_0‖_F / ‖H_0‖_F along the run.
    pub max_kernel_drift: f64,
    /// At the last step: ‖φ‖ / ‖p‖, the first-order deviation relative to
    /// the prediction (`NaN` when p is 0).
    pub final_deviation: f64,
    /// At the last step: ‖φ^kernel‖ / ‖p‖, the part of the first-order
    /// deviation driven by the kernel drift (the two parts may partly cancel).
    pub kernel_part: f64,
    /// At the last step: ‖φ^flip‖ / ‖p‖, the part driven by the activation
    /// flips' remainders.
    pub flip_part: f64,
    /// Shares of ‖φ‖² at the last step in the slowest tenth of the modes of
    /// H_0, the middle, and the stiffest tenth.
    pub mode_shares: [f64; 3],
    /// The width of the network the run used (for
    /// [`Verdict::expected_at_width`]).
    pub width: usize,
    /// The step whose kernel the second enclosure was anchored at, if one
    /// ran ([`PredictionEnclosure::with_reanchoring`]).
    pub reanchored_at: Option<usize>,
    records: Vec<EnclosureStep>,
}

/// The band's step counts for a level: (predicted, earliest, latest, centre).
fn crossings(records: &[EnclosureStep], level: f64, scale: f64) -> [Option<usize>; 5] {
    let l0 = records[0].predicted_loss();
    let target = level * l0;
    let mut out = [None; 5];
    for (t, r) in records.iter().enumerate() {
        // At scale 1 the band actually enclosed (intersected with the re-anchored one); at another
        // scale its offsets from the prediction, first order in the drift, scaled by `scale` (by
        // scale² when narrowing, which overstates the second-order part).
        let p = r.predicted_norm;
        let k = if scale > 1.0 { scale * scale } else { scale };
        let (lo, hi) = if scale == 1.0 {
            (r.lower_norm, r.upper_norm)
        } else {
            ((p + k * (r.lower_norm - p)).max(0.0), p + k * (r.upper_norm - p))
        };
        let centre = (p * p + 2.0 * scale * r.inner + (scale * r.deviation_norm).powi(2))
            .max(0.0)
            .sqrt();
        let values = [
            r.predicted_loss(),
            0.5 * lo * lo,
            0.5 * hi * hi,
            0.5 * centre * centre,
            0.5 * r.repredicted_norm.unwrap_or(f64::INFINITY).powi(2),
        ];
        for (o, v) in out.iter_mut().zip(values) {
            if o.is_none() && v <= target {
                *o = Some(t);
            }
        }
    }
    out
}

fn level_verdict(records: &[EnclosureStep], level: f64, scale: f64, tolerance: StepTolerance) -> LevelVerdict {
    let [predicted, earliest, latest, first_order, repredicted] = crossings(records, level, scale);
    let holds = match (predicted, earliest, latest) {
        (Some(p), Some(a), Some(b)) => tolerance.allows(p, a) && tolerance.allows(p, b),
        // Nothing consistent with the band reaches the level, nor does the prediction.
        (None, None, _) => true,
        _ => false,
    };
    LevelVerdict {
        level,
        predicted,
        earliest,
        latest,
        first_order,
        repredicted,
        holds,
    }
}

fn check_levels(levels: &[f64]) -> Result<()> {
    if levels.is_empty() {
        return Err(Error::invalid(
            "levels",
            "[] (empty)",
            "at least one loss level in (0, 1)",
        ));
    }
    if let Some(&l) = levels.iter().find(|l| !(**l > 0.0 && **l < 1.0)) {
        return Err(Error::invalid("levels", l, "loss levels, fractions of L_0, in (0, 1)"));
    }
    Ok(())
}

/// The verdict of a run from its enclosure, at `levels` (fractions of L_0,
/// each in (0, 1)) with `tolerance`; `width` is the network's m (recorded
/// for [`Verdict::expected_at_width`]).
///
/// # Errors
/// [`Error::InvalidParameter`] for empty or out-of-range levels, a negative
/// or non-finite relative tolerance, or an enclosure of no step.
///
/// # Examples
/// See [`crate::Trainer::enclose_prediction`].
pub fn verdict(
    enclosure: &PredictionEnclosure,
    levels: &[f64],
    tolerance: StepTolerance,
    width: usize,
) -> Result<Verdict> {
    check_levels(levels)?;
    tolerance.check()?;
    let records = enclosure.steps();
    if records.len() < 2 {
        return Err(Error::invalid(
            "enclosure",
            "no step pushed",
            "an enclosure of at least one step",
        ));
    }
    let last = records[records.len() - 1];
    let phi = enclosure.deviation_coordinates();
    let total: f64 = phi.iter().map(|v| v * v).sum();
    let n = phi.len();
    let tenth = n.div_ceil(10);
    let share = |range: std::ops::Range<usize>| {
        if total > 0.0 {
            phi[range].iter().map(|v| v * v).sum::<f64>() / total
        } else {
            0.0
        }
    };
    let slow = share(0..tenth.min(n));
    let stiff = share(n.saturating_sub(tenth).max(tenth.min(n))..n);
    let (method, lr, momentum) = enclosure.hyperparameters();
    Ok(Verdict {
        method,
        lr,
        momentum,
        tolerance,
        steps: records.len() - 1,
        levels: levels
            .iter()
            .map(|&l| level_verdict(records, l, 1.0, tolerance))
            .collect(),
        max_kernel_drift: records.iter().fold(0.0_f64, |m, r| m.max(r.kernel_drift)),
        final_deviation: last.deviation_norm / last.predicted_norm,
        kernel_part: last.kernel_part / last.predicted_norm,
        flip_part: last.flip_part / last.predicted_norm,
        mode_shares: [slow, (1.0 - slow - stiff).max(0.0), stiff],
        width,
        reanchored_at: enclosure.reanchored_at(),
        records: records.to_vec(),
    })
}

impl Verdict {
    /// Whether the prediction is guaranteed to hold at every level (see the
    /// type's guarantee).
    pub fn holds(&self) -> bool {
        self.levels.iter().all(|l| l.holds)
    }

    /// The per-step records of the enclosure the verdict was made from.
    pub fn records(&self) -> &[EnclosureStep] {
        &self.records
    }

    /// An estimate, not a guarantee: the verdict expected for the same data,
    /// seed law and tuning at width `width` (at this run's own width: the
    /// verdict itself), assuming that the offsets of the band's edges from
    /// the prediction scale like 1/√m: they are first order in the kernel
    /// drift and the flips, which scale so for a two-layer network in the
    /// NTK parameterization (Du et al. 2019: each unit's weights move
    /// O(1/√m)). The offsets are scaled by √(m/m') when widening and by
    /// m/m' when narrowing (overstating the second-order part).
    /// One level verdict per level of this verdict.
    ///
    /// # Errors
    /// [`Error::InvalidParameter`] for `width` 0.
    pub fn expected_at_width(&self, width: usize) -> Result<Vec<LevelVerdict>> {
        if width == 0 {
            return Err(Error::invalid("width", width, "a width >= 1"));
        }
        let scale = (self.width as f64 / width as f64).sqrt();
        Ok(self
            .levels
            .iter()
            .map(|l| level_verdict(&self.records, l.level, scale, self.tolerance))
            .collect())
    }

    /// An estimate: the smallest width, among this run's width times 2^k
    /// (k from −6 to 20; narrower ones only where they divide it), at which
    /// every level is expected to hold by [`Verdict::expected_at_width`].
    /// `None` if none is. Run a pilot at a small width with
    /// [`crate::Trainer::enclose_prediction`] to choose the width of the
    /// real run before paying for it.
    pub fn width_needed(&self) -> Option<usize> {
        self.width_needed_where(|levels| levels.iter().all(|l| l.holds))
    }

    /// As [`Verdict::width_needed`], for one level of this verdict (`None`
    /// also if `level` is not one of its levels).
    pub fn width_needed_at(&self, level: f64) -> Option<usize> {
        let i = self.levels.iter().position(|l| l.level == level)?;
        self.width_needed_where(|levels| levels[i].holds)
    }

    fn width_needed_where(&self, ok: impl Fn(&[LevelVerdict]) -> bool) -> Option<usize> {
        (-6..=20_i32)
            .filter_map(|k| {
                if k < 0 {
                    let d = 1usize << (-k);
                    (self.width.is_multiple_of(d) && self.width / d > 0).then(|| self.width / d)
                } else {
                    self.width.checked_mul(1usize << k)
                }
            })
            .find(|&w| self.expected_at_width(w).is_ok_and(|levels| ok(&levels)))
    }
}

fn fmt_steps(v: Option<usize>) -> String {
    v.map_or("-".into(), |s| s.to_string())
}

impl fmt::Display for Verdict {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{}: prediction from H(W_0) {} (guaranteed within {:.0} % or {} steps at every level, from the kernels \
             and activation flips of the run over {} steps, not its losses).",
            self.method,
            if self.holds() { "HOLDS" } else { "not certified" },
            100.0 * self.tolerance.relative,
            self.tolerance.steps,
            self.steps
        )?;
        for l in &self.levels {
            write!(
                f,
                " {:.0e}: predicted {}, run in [{}, {}] ({}; first-order {}, re-predicted {}).",
                l.level,
                fmt_steps(l.predicted),
                fmt_steps(l.earliest),
                fmt_steps(l.latest),
                if l.holds { "holds" } else { "not certified" },
                fmt_steps(l.first_order),
                fmt_steps(l.repredicted)
            )?;
        }
        write!(
            f,
            " Drift: max ||H_t - H_0||_F / ||H_0||_F {:.2e}; first-order deviation at the end {:.2e} of ||p|| \
             (kernel-drift part {:.2e}, activation-flip part {:.2e}); its energy by mode (slowest tenth / middle / \
             stiffest tenth of H_0): {:.0} / {:.0} / {:.0} %.",
            self.max_kernel_drift,
            self.final_deviation,
            self.kernel_part,
            self.flip_part,
            100.0 * self.mode_shares[0],
            100.0 * self.mode_shares[1],
            100.0 * self.mode_shares[2]
        )?;
        match self.reanchored_at {
            Some(at) => write!(
                f,
                " Band intersected with the enclosure around the re-prediction from H(W_{at}) (started from xi_0)."
            ),
            None => Ok(()),
        }
    }
}
