//! The PyTorch knobs of the built-in optimizers: coupled and decoupled
//! weight decay, dampening, maximize, gradient clipping, and parameter
//! groups with their own hyper-parameters.
//!
//! One step of every built-in optimizer, for each tensor θ of group k at
//! step t, in this order:
//!
//! ```text
//! 1. clip      g ← c g,  c = min(1, M / (‖g‖ + 1e-6))      (GradientClip::Norm(M); ‖g‖ over the whole set)
//!              g ← clamp(g, −v, v)                          (GradientClip::Value(v))
//! 2. maximize  g ← −g
//! 3. coupled   g ← g + λ_k θ_t                              (weight_decay: enters the momentum)
//! 4. momentum  d ← the method's direction from g            (GD: g; HB and NAG: see Convention)
//!              with dampening δ: b_t = β b_{t−1} + (1 − δ) g_t for t ≥ 1, b_0 = g_0
//! 5. update    θ_{t+1} = θ_t − η d − η λ'_k θ_t           (decoupled_weight_decay: decays θ_t, bypasses the momentum)
//! ```
//!
//! Steps 1 and 2 are `torch.nn.utils.clip_grad_norm_` / `clip_grad_value_`
//! on `.grad` followed by `SGD(maximize=True)`; 3 and 4 are
//! `SGD(weight_decay=λ, dampening=δ)`. Step 5's decoupled decay is the SGDW
//! of Loshchilov and Hutter and Optax's
//! `chain(trace(β), add_decayed_weights(λ'), scale(−η))`: it uses the
//! parameters *before* the step, so it does not depend on where in the step
//! it is evaluated. In the displacement convention the velocity keeps only
//! the momentum part: θ_{t+1} = θ_t + v_{t+1} − η λ'_k θ_t.
//!
//! One difference from PyTorch remains, for momentum schedules that are 0
//! at some step after the first: PyTorch skips its buffer at such a step
//! (and copies the gradient into it, undamped, at the next step with β > 0
//! if it never had one) and steps by η g_t, while here the buffer becomes
//! b_t = 0 · b_{t−1} + (1 − δ) g_t (so with dampening that step is shorter
//! too) and the recursion goes on. With a momentum that is never 0 after
//! step 0 the two are the same (the golden tests cover constant and
//! piecewise momenta).

use super::elementwise::squared_norms;
use super::hyper::{lr_at, momentum_at};
use super::params::Parameters;
use super::Schedule;
use crate::{Error, Float, Result};

/// Gradient clipping over the whole parameter set, before the optimizer
/// sees the gradient (and before weight decay).
///
/// | variant | gradient used | PyTorch |
/// |---|---|---|
/// | `Norm(M)` | g · min(1, M / (‖g‖₂ + 10⁻⁶)), ‖g‖₂ over all tensors | `clip_grad_norm_(params, M)` |
/// | `Value(v)` | each entry clamped to [−v, v] | `clip_grad_value_(params, v)` |
///
/// The norm before clipping is reported by the optimizer's
/// `last_gradient_norm()` (what `clip_grad_norm_` returns).
#[derive(Clone, Copy, Debug, Default, PartialEq)]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
#[non_exhaustive]
pub enum GradientClip {
    /// No clipping (the default).
    #[default]
    None,
    /// Rescale the whole gradient to global L2 norm at most this (> 0).
    Norm(f64),
    /// Clamp every entry to [−v, v] (v > 0).
    Value(f64),
}

impl GradientClip {
    fn check(self) -> Result<Self> {
        match self {
            GradientClip::Norm(v) | GradientClip::Value(v) if !(v.is_finite() && v > 0.0) => Err(Error::invalid(
                "clip",
                format!("{self:?}"),
                "a threshold that is finite and > 0",
            )),
            c => Ok(c),
        }
    }
}

/// Whether an optimizer descends or ascends its objective.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
#[non_exhaustive]
pub enum Direction {
    /// Step against the gradient (the default).
    #[default]
    Minimize,
    /// Step along it (PyTorch's `maximize=True`: the gradient is negated
    /// after clipping and before weight decay).
    Maximize,
}

/// A parameter group: some of the set's tensors (by index, as
/// [`Parameters::tensor`] numbers them) with their own hyper-parameters,
/// PyTorch's `param_groups`. What a group does not set it takes from the
/// optimizer's own values when it is added (as PyTorch fills a group from
/// the optimizer's defaults). Tensors in no group belong to group 0, the
/// optimizer's own.
///
/// ```
/// use ntk_momentum::optim::{ParamGroup, Schedule};
/// use ntk_momentum::{HeavyBall, Optimizer};
///
/// // Weights (tensor 0) decayed, biases (tensor 1) not, and a faster step for the biases.
/// let mut hb = HeavyBall::new(0.1, 0.9)?
///     .weight_decay(1e-4)?
///     .group(ParamGroup::new([1])?.lr(Schedule::cosine(0.2, 0.0, 100)?)?.weight_decay(0.0)?)?;
/// let (mut w, mut b) = (vec![1.0_f64; 4], vec![1.0_f64; 2]);
/// hb.step(&mut (&mut w, &mut b), &(&vec![0.0; 4], &vec![0.0; 2]))?;
/// assert_eq!(b, vec![1.0, 1.0]); // no gradient, no decay
/// assert!(w[0] < 1.0);           // decayed
/// assert_eq!(hb.group_count(), 2);
/// # Ok::<(), ntk_momentum::Error>(())
/// ```
#[derive(Clone, Debug, PartialEq)]
pub struct ParamGroup {
    tensors: Vec<usize>,
    lr: Option<Schedule>,
    momentum: Option<Schedule>,
    weight_decay: Option<Schedule>,
    decoupled_weight_decay: Option<Schedule>,
    dampening: Option<f64>,
}

impl ParamGroup {
    /// A group of the tensors with these indices.
    ///
    /// # Errors
    /// [`Error::InvalidParameter`] for no tensors or a repeated index.
    pub fn new(tensors: impl IntoIterator<Item = usize>) -> Result<Self> {
        let tensors: Vec<usize> = tensors.into_iter().collect();
        if tensors.is_empty() {
            return Err(Error::invalid(
                "param group tensors",
                "none",
                "at least one tensor index",
            ));
        }
        let mut sorted = tensors.clone();
        sorted.sort_unstable();
        if let Some(w) = sorted.windows(2).find(|w| w[0] == w[1]) {
            return Err(Error::invalid(
                "param group tensors",
                format!("{tensors:?} (tensor {} twice)", w[0]),
                "distinct tensor indices",
            ));
        }
        Ok(ParamGroup {
            tensors,
            lr: None,
            momentum: None,
            weight_decay: None,
            decoupled_weight_decay: None,
            dampening: None,
        })
    }

    /// The group's tensor indices.
    pub fn tensors(&self) -> &[usize] {
        &self.tensors
    }

    /// The group's step size (a constant or a [`Schedule`]).
    ///
    /// # Errors
    /// [`Error::InvalidParameter`] unless its value at step 0 is finite and > 0.
    pub fn lr(mut self, lr: impl Into<Schedule>) -> Result<Self> {
        let lr = lr.into();
        super::hyper::check_lr_schedule(&lr, 0)?;
        self.lr = Some(lr);
        Ok(self)
    }

    /// The group's momentum.
    ///
    /// # Errors
    /// [`Error::InvalidParameter`] unless its value at step 0 is in [0, 1).
    pub fn momentum(mut self, momentum: impl Into<Schedule>) -> Result<Self> {
        let momentum = momentum.into();
        super::hyper::check_momentum_schedule(&momentum, 0)?;
        self.momentum = Some(momentum);
        Ok(self)
    }

    /// The group's coupled weight decay λ (g ← g + λθ before the momentum).
    ///
    /// # Errors
    /// [`Error::InvalidParameter`] unless its value at step 0 is finite and ≥ 0.
    pub fn weight_decay(mut self, weight_decay: impl Into<Schedule>) -> Result<Self> {
        let wd = weight_decay.into();
        decay_at(&wd, 0, "weight_decay")?;
        self.weight_decay = Some(wd);
        Ok(self)
    }

    /// The group's decoupled weight decay λ' (θ_{t+1} gets −η λ' θ_t).
    ///
    /// # Errors
    /// [`Error::InvalidParameter`] unless its value at step 0 is finite and ≥ 0.
    pub fn decoupled_weight_decay(mut self, weight_decay: impl Into<Schedule>) -> Result<Self> {
        let wd = weight_decay.into();
        decay_at(&wd, 0, "decoupled_weight_decay")?;
        self.decoupled_weight_decay = Some(wd);
        Ok(self)
    }

    /// The group's dampening δ (heavy ball only).
    ///
    /// # Errors
    /// [`Error::InvalidParameter`] unless δ is in [0, 1].
    pub fn dampening(mut self, dampening: f64) -> Result<Self> {
        self.dampening = Some(check_dampening(dampening)?);
        Ok(self)
    }
}

/// Reading and changing hyper-parameters between steps, group by group:
/// what a loss-aware schedule ([`crate::optim::ReduceOnPlateau`]) or a
/// training observer needs. Group 0 is the optimizer's own; groups added
/// with `group(…)` follow in order. Implemented by the built-in
/// optimizers; reached through [`crate::Optimizer::hyperparameters_mut`].
///
/// A `set_*` call replaces the group's schedule of that hyper-parameter by
/// the constant value from the next step on (as assigning
/// `param_group["lr"]` does in PyTorch); the optimizer's state is kept.
pub trait HyperParameters {
    /// Number of parameter groups (at least 1).
    fn group_count(&self) -> usize;
    /// The step size group `group` will use at the next step (`None` for no
    /// such group).
    fn group_lr(&self, group: usize) -> Option<f64>;
    /// Sets group `group`'s step size.
    ///
    /// # Errors
    /// [`Error::InvalidParameter`] for no such group or a step size that is
    /// not finite and > 0; nothing changes then.
    fn set_group_lr(&mut self, group: usize, lr: f64) -> Result<()>;
    /// The momentum group `group` will use at the next step (0 for gradient
    /// descent).
    fn group_momentum(&self, group: usize) -> Option<f64>;
    /// Sets group `group`'s momentum.
    ///
    /// # Errors
    /// [`Error::InvalidParameter`] for no such group or a momentum outside
    /// [0, 1); [`Error::Unsupported`] for gradient descent.
    fn set_group_momentum(&mut self, group: usize, momentum: f64) -> Result<()>;
    /// The coupled weight decay group `group` will use at the next step.
    fn group_weight_decay(&self, group: usize) -> Option<f64>;
    /// Sets group `group`'s coupled weight decay.
    ///
    /// # Errors
    /// [`Error::InvalidParameter`] for no such group or a value that is not
    /// finite and ≥ 0.
    fn set_group_weight_decay(&mut self, group: usize, weight_decay: f64) -> Result<()>;
}

/// The value of a weight-decay schedule at step `t`: finite and ≥ 0.
pub(crate) fn decay_at(schedule: &Schedule, t: u64, name: &'static str) -> Result<f64> {
    let v = schedule.value(t);
    if v.is_finite() && v >= 0.0 {
        Ok(v)
    } else {
        Err(Error::invalid(
            name,
            v,
            format!("a finite number >= 0 (schedule value at step {t})"),
        ))
    }
}

pub(crate) fn check_dampening(d: f64) -> Result<f64> {
    if (0.0..=1.0).contains(&d) {
        Ok(d)
    } else {
        Err(Error::invalid("dampening", d, "a number in [0, 1]"))
    }
}

/// One group's hyper-parameters as the optimizer keeps them.
#[derive(Clone, Debug, PartialEq)]
pub(crate) struct GroupHyper {
    pub(crate) lr: Schedule,
    pub(crate) momentum: Schedule,
    pub(crate) weight_decay: Schedule,
    pub(crate) decoupled_weight_decay: Schedule,
    pub(crate) dampening: f64,
}

/// Which method the settings belong to (what groups may set).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Kind {
    GradientDescent,
    HeavyBall,
    Nesterov,
}

/// Everything a built-in optimizer is told besides its convention: the
/// groups (0: the optimizer's own, with no tensor list), direction and
/// clipping.
#[derive(Clone, Debug)]
pub(crate) struct Settings {
    kind: Kind,
    pub(crate) groups: Vec<(Vec<usize>, GroupHyper)>,
    pub(crate) direction: Direction,
    pub(crate) clip: GradientClip,
    /// ‖g‖₂ over the set before clipping, at the last successful step (only
    /// computed with clipping on).
    pub(crate) last_norm: Option<f64>,
}

/// One group's coefficients for one step, in the parameters' float type.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Coefficients<T> {
    pub(crate) eta: T,
    pub(crate) beta: T,
    pub(crate) beta_eta: T,
    /// 1 − δ (1 at the first step, where PyTorch copies the gradient).
    pub(crate) undamped: T,
    /// η (1 − δ), the displacement form's gradient coefficient.
    pub(crate) eta_undamped: T,
    /// Coupled weight decay λ.
    pub(crate) decay: T,
    /// η λ' (decoupled).
    pub(crate) eta_decoupled: T,
    /// Whether λ' ≠ 0.
    pub(crate) decoupled: bool,
    /// Whether λ ≠ 0.
    pub(crate) decayed: bool,
}

/// One step's resolved settings: coefficients per group, the clipping, and
/// bounds (largest η, β, λ, η λ' over the groups) for the overflow guard.
pub(crate) struct Resolved<T> {
    pub(crate) coefficients: Vec<Coefficients<T>>,
    pub(crate) norm: Option<f64>,
    pub(crate) max_lr: f64,
    pub(crate) max_momentum: f64,
    pub(crate) max_decay: f64,
    pub(crate) max_eta_decoupled: f64,
    /// Whether any knob is on (else the plain kernels run).
    pub(crate) plain: bool,
    /// The factor of step 1 (clip by norm) and 2 (maximize): c or 1, negated
    /// when maximizing (−round(c g) = round(−c g): the same bits).
    pub(crate) scale: T,
    /// The clamp of `GradientClip::Value` (and whether there is one).
    pub(crate) limit: T,
    pub(crate) clamp: bool,
}

/// The gradient entry the method sees: g · scale (clip by norm, then
/// maximize), clamped to [−limit, limit] if `clamp` (NaN stays NaN, as in
/// torch.clamp), plus λ θ if `decayed`. Called with literal `clamp` and
/// `decayed` (see [`with_knobs`]), so each kernel is compiled without
/// branches for the knobs that are off.
#[inline(always)]
pub(crate) fn transform<T: Float>(g: T, p: T, scale: T, limit: T, decay: T, clamp: bool, decayed: bool) -> T {
    let mut g = g * scale;
    if clamp {
        g = if g > limit {
            limit
        } else if g < -limit {
            -limit
        } else {
            g
        };
    }
    if decayed {
        g += decay * p;
    }
    g
}

/// Expands `$kernel!(clamp, decayed, decoupled)` with the three knobs as
/// literals, in the arm that matches the step: eight monomorphic loops,
/// none testing a knob per entry.
macro_rules! with_knobs {
    ($clamp:expr, $decayed:expr, $decoupled:expr, $kernel:ident) => {
        match ($clamp, $decayed, $decoupled) {
            (false, false, false) => $kernel!(false, false, false),
            (false, false, true) => $kernel!(false, false, true),
            (false, true, false) => $kernel!(false, true, false),
            (false, true, true) => $kernel!(false, true, true),
            (true, false, false) => $kernel!(true, false, false),
            (true, false, true) => $kernel!(true, false, true),
            (true, true, false) => $kernel!(true, true, false),
            (true, true, true) => $kernel!(true, true, true),
        }
    };
}
pub(crate) use with_knobs;

impl<T: Float> Resolved<T> {
    /// A bound on max |g| as the method sees it, from max |θ| and max |g|.
    pub(crate) fn gradient_bound(&self, theta: f64, g: f64) -> f64 {
        let clipped = if self.clamp { g.min(self.limit.to_f64()) } else { g };
        clipped + self.max_decay * theta
    }
}

impl Settings {
    pub(crate) fn new(kind: Kind, lr: Schedule, momentum: Schedule) -> Self {
        Settings {
            kind,
            groups: vec![(
                Vec::new(),
                GroupHyper {
                    lr,
                    momentum,
                    weight_decay: Schedule::Constant(0.0),
                    decoupled_weight_decay: Schedule::Constant(0.0),
                    dampening: 0.0,
                },
            )],
            direction: Direction::Minimize,
            clip: GradientClip::None,
            last_norm: None,
        }
    }

    pub(crate) fn own(&self) -> &GroupHyper {
        &self.groups[0].1
    }

    pub(crate) fn own_mut(&mut self) -> &mut GroupHyper {
        &mut self.groups[0].1
    }

    pub(crate) fn set_clip(&mut self, clip: GradientClip) -> Result<()> {
        self.clip = clip.check()?;
        Ok(())
    }

    /// Adds a group after checking it against the method and the groups
    /// already there.
    pub(crate) fn add_group(&mut self, group: ParamGroup, step: u64) -> Result<()> {
        if self.kind == Kind::GradientDescent && (group.momentum.is_some() || group.dampening.is_some()) {
            return Err(Error::invalid(
                "param group",
                "a momentum or dampening for gradient descent",
                "lr and weight decays only (use HeavyBall or Nesterov for momentum)",
            ));
        }
        if self.kind == Kind::Nesterov && group.dampening.is_some_and(|d| d != 0.0) {
            return Err(nesterov_dampening(group.dampening.unwrap_or(0.0)));
        }
        for (k, (tensors, _)) in self.groups.iter().enumerate().skip(1) {
            if let Some(i) = group.tensors.iter().find(|i| tensors.contains(i)) {
                return Err(Error::invalid(
                    "param group tensors",
                    format!("{:?} (tensor {i} is already in group {k})", group.tensors),
                    "tensors in no other group",
                ));
            }
        }
        let own = self.own().clone();
        let hyper = GroupHyper {
            lr: group.lr.unwrap_or(own.lr),
            momentum: group.momentum.unwrap_or(own.momentum),
            weight_decay: group.weight_decay.unwrap_or(own.weight_decay),
            decoupled_weight_decay: group.decoupled_weight_decay.unwrap_or(own.decoupled_weight_decay),
            dampening: group.dampening.unwrap_or(own.dampening),
        };
        // The inherited schedules may be past their valid range already.
        super::hyper::check_lr_schedule(&hyper.lr, step)?;
        super::hyper::check_momentum_schedule(&hyper.momentum, step)?;
        self.groups.push((group.tensors, hyper));
        Ok(())
    }

    /// The group of tensor `i`.
    #[inline]
    pub(crate) fn group_of(&self, i: usize) -> usize {
        self.groups
            .iter()
            .skip(1)
            .position(|(t, _)| t.contains(&i))
            .map_or(0, |k| k + 1)
    }

    fn group(&self, group: usize) -> Result<&GroupHyper> {
        self.groups.get(group).map(|(_, h)| h).ok_or_else(|| {
            Error::invalid(
                "group",
                group,
                format!("a group index below {} (the group count)", self.groups.len()),
            )
        })
    }

    pub(crate) fn set_lr(&mut self, group: usize, lr: Schedule, step: u64) -> Result<()> {
        self.group(group)?;
        super::hyper::check_lr_schedule(&lr, step)?;
        self.groups[group].1.lr = lr;
        Ok(())
    }

    pub(crate) fn set_momentum(&mut self, group: usize, momentum: Schedule, step: u64) -> Result<()> {
        self.group(group)?;
        if self.kind == Kind::GradientDescent {
            return Err(Error::Unsupported(
                "a momentum for gradient descent (use HeavyBall or Nesterov)".into(),
            ));
        }
        super::hyper::check_momentum_schedule(&momentum, step)?;
        self.groups[group].1.momentum = momentum;
        Ok(())
    }

    pub(crate) fn set_weight_decay(&mut self, group: usize, wd: Schedule, step: u64) -> Result<()> {
        self.group(group)?;
        decay_at(&wd, step, "weight_decay")?;
        self.groups[group].1.weight_decay = wd;
        Ok(())
    }

    pub(crate) fn set_decoupled_weight_decay(&mut self, group: usize, wd: Schedule, step: u64) -> Result<()> {
        self.group(group)?;
        decay_at(&wd, step, "decoupled_weight_decay")?;
        self.groups[group].1.decoupled_weight_decay = wd;
        Ok(())
    }

    pub(crate) fn set_dampening(&mut self, dampening: f64) -> Result<()> {
        let d = check_dampening(dampening)?;
        if self.kind == Kind::Nesterov && d != 0.0 {
            return Err(nesterov_dampening(d));
        }
        self.own_mut().dampening = d;
        Ok(())
    }

    pub(crate) fn lr(&self, group: usize, step: u64) -> Option<f64> {
        self.groups.get(group).map(|(_, h)| h.lr.value(step))
    }

    pub(crate) fn momentum(&self, group: usize, step: u64) -> Option<f64> {
        self.groups.get(group).map(|(_, h)| h.momentum.value(step))
    }

    pub(crate) fn weight_decay(&self, group: usize, step: u64) -> Option<f64> {
        self.groups.get(group).map(|(_, h)| h.weight_decay.value(step))
    }

    /// Whether every update is linear in the gradient history with
    /// data-independent coefficients and no term in θ itself: no weight
    /// decay, no clipping, no ascent (what kernel space needs).
    pub(crate) fn is_linear(&self) -> bool {
        let zero = |s: &Schedule| *s == Schedule::Constant(0.0);
        self.direction == Direction::Minimize
            && self.clip == GradientClip::None
            && self
                .groups
                .iter()
                .all(|(_, h)| zero(&h.weight_decay) && zero(&h.decoupled_weight_decay))
    }

    /// The hyper-parameter record of the state at step `t`: `lr` and
    /// `momentum` (not for gradient descent) always, every other value only
    /// when it is not the default, groups k ≥ 1 with a suffix `[k]`.
    pub(crate) fn record(&self, t: u64) -> Vec<(String, f64)> {
        let mut out = Vec::new();
        for (k, (_, h)) in self.groups.iter().enumerate() {
            let name = |n: &str| if k == 0 { n.to_string() } else { format!("{n}[{k}]") };
            out.push((name("lr"), h.lr.value(t)));
            if self.kind != Kind::GradientDescent {
                out.push((name("momentum"), h.momentum.value(t)));
            }
            for (n, s) in [
                ("weight_decay", &h.weight_decay),
                ("decoupled_weight_decay", &h.decoupled_weight_decay),
            ] {
                let v = s.value(t);
                if k > 0 || v != 0.0 {
                    out.push((name(n), v));
                }
            }
            if h.dampening != 0.0 {
                out.push((name("dampening"), h.dampening));
            }
        }
        if self.direction == Direction::Maximize {
            out.push(("maximize".into(), 1.0));
        }
        match self.clip {
            GradientClip::Norm(v) => out.push(("clip_norm".into(), v)),
            GradientClip::Value(v) => out.push(("clip_value".into(), v)),
            GradientClip::None => {}
        }
        out
    }

    /// Resolves step `t` for `grad` (whose tensor count is `count`): every
    /// group's values checked in `T`, each group's tensors below `count`,
    /// and the clipping factor from the gradient's global norm.
    pub(crate) fn resolve<T: Float, G: Parameters<Scalar = T> + ?Sized>(
        &self,
        t: u64,
        grad: &G,
    ) -> Result<Resolved<T>> {
        let count = grad.tensor_count();
        let mut resolved = Resolved {
            coefficients: Vec::with_capacity(self.groups.len()),
            norm: None,
            max_lr: 0.0,
            max_momentum: 0.0,
            max_decay: 0.0,
            max_eta_decoupled: 0.0,
            plain: self.groups.len() == 1 && self.is_linear(),
            // Maximize negates after clipping: −round(c g) = round(−c g).
            scale: if self.direction == Direction::Maximize {
                -T::one()
            } else {
                T::one()
            },
            limit: T::zero(),
            clamp: false,
        };
        for (k, (tensors, h)) in self.groups.iter().enumerate() {
            if let Some(i) = tensors.iter().find(|&&i| i >= count) {
                return Err(Error::invalid(
                    "param group tensors",
                    format!("tensor {i} in group {k}"),
                    format!("indices below {count}, the number of tensors in the set"),
                ));
            }
            let lr = lr_at::<T>(&h.lr, t)?;
            let momentum = if self.kind == Kind::GradientDescent {
                0.0
            } else {
                momentum_at::<T>(&h.momentum, t)?
            };
            let decay = decay_at(&h.weight_decay, t, "weight_decay")?;
            let decoupled = decay_at(&h.decoupled_weight_decay, t, "decoupled_weight_decay")?;
            if h.dampening != 0.0 {
                resolved.plain = false;
            }
            // PyTorch copies the first gradient into its buffer undamped.
            let undamped = if t == 0 { 1.0 } else { 1.0 - h.dampening };
            resolved.coefficients.push(Coefficients {
                eta: T::cast(lr),
                beta: T::cast(momentum),
                beta_eta: T::cast(momentum * lr),
                undamped: T::cast(undamped),
                eta_undamped: T::cast(lr * undamped),
                decay: T::cast(decay),
                eta_decoupled: T::cast(lr * decoupled),
                decoupled: decoupled != 0.0,
                decayed: decay != 0.0,
            });
            resolved.max_lr = resolved.max_lr.max(lr);
            resolved.max_momentum = resolved.max_momentum.max(momentum);
            resolved.max_decay = resolved.max_decay.max(decay);
            resolved.max_eta_decoupled = resolved.max_eta_decoupled.max(lr * decoupled);
        }
        match self.clip {
            GradientClip::None => {}
            clip => {
                // ‖g‖₂ = (Σ_i ‖g_i‖₂²)^½ over the tensors, as clip_grad_norm_ stacks per-tensor norms.
                let mut tensors = Vec::with_capacity(count);
                for i in 0..count {
                    tensors.push(grad.tensor(i)?.1);
                }
                let mut total = 0.0f64;
                for squared in squared_norms(&tensors) {
                    let norm = squared.sqrt();
                    total += norm * norm;
                }
                let norm = total.sqrt();
                resolved.norm = Some(norm);
                match clip {
                    // clip_coef = max / (‖g‖ + 1e-6), clamped to 1 (torch multiplies by it even
                    // when 1; multiplying by 1 changes nothing, so it is skipped).
                    GradientClip::Norm(max) => {
                        let c = (max / (norm + 1e-6)).min(1.0);
                        if c < 1.0 {
                            resolved.scale *= T::cast(c);
                        }
                    }
                    GradientClip::Value(v) => {
                        resolved.limit = T::cast(v);
                        resolved.clamp = true;
                    }
                    GradientClip::None => {}
                }
            }
        }
        Ok(resolved)
    }
}

fn nesterov_dampening(d: f64) -> Error {
    Error::invalid(
        "dampening",
        d,
        "0 with Nesterov (torch.optim.SGD refuses nesterov=True with dampening: the correction term assumes an undamped buffer)",
    )
}
