//! The built-in optimizers as state machines: random sequences of good and
//! bad operations (steps with good and bad gradients, resets, saved and
//! corrupted states, good and bad hyper-parameters, group by group), and
//! after each one:
//!
//! - nothing panics;
//! - a bad operation is refused, and an operation that returns `Err` leaves
//!   the parameters and `state()` unchanged bit for bit (a refused `set_lr`
//!   leaves `lr()` unchanged);
//! - a good operation does what it says (a step counts one step and leaves
//!   everything finite, `set_state` restores the saved buffers, a setter
//!   sets the value);
//!
//! and at the end, a clone and a freshly built optimizer of the same
//! configuration restored with `set_state(&state())` continue bit-identically
//! to the original for 5 more steps.
//!
//! Parameters are a set of two tensors, `(Vec<f64>, Vec<f64>)` of 3 and 2
//! entries. Runs in the optimizer-only build too.

use ntk_momentum::optim::{Convention, GradientClip, HyperParameters, OptimizerState, ParamGroup};
use ntk_momentum::{GradientDescent, HeavyBall, Nesterov, Optimizer, Result};
use proptest::prelude::*;
use proptest::sample::Index;

type Params = (Vec<f64>, Vec<f64>);
type Three = (Vec<f64>, Vec<f64>, Vec<f64>);

const SIZES: [usize; 2] = [3, 2];

fn initial_params() -> Params {
    (vec![0.5, -1.0, 2.0], vec![0.25, -0.75])
}

// ---------------------------------------------------------------------------
// The optimizers under test, behind one interface
// ---------------------------------------------------------------------------

/// What the machine needs of an optimizer: steps with gradients of several
/// set types (two tensors, one, three), the inherent methods, and the group
/// setters.
trait Subject:
    Clone
    + std::fmt::Debug
    + HyperParameters
    + Optimizer<Params, Params>
    + Optimizer<Params, Vec<f64>>
    + Optimizer<Params, Three>
{
    /// Whether the method has a momentum (not gradient descent).
    const HAS_MOMENTUM: bool;
    fn current_lr(&self) -> f64;
    fn change_lr(&mut self, lr: f64) -> Result<()>;
    /// `None` for gradient descent, which has no momentum setter.
    fn change_momentum(&mut self, momentum: f64) -> Option<Result<()>>;
    fn current_momentum(&self) -> f64;
    fn snapshot(&self) -> OptimizerState;
    fn restore(&mut self, state: &OptimizerState) -> Result<()>;
    fn forget(&mut self);
}

impl Subject for GradientDescent {
    const HAS_MOMENTUM: bool = false;
    fn current_lr(&self) -> f64 {
        self.lr()
    }
    fn change_lr(&mut self, lr: f64) -> Result<()> {
        self.set_lr(lr)
    }
    fn change_momentum(&mut self, _: f64) -> Option<Result<()>> {
        None
    }
    fn current_momentum(&self) -> f64 {
        0.0
    }
    fn snapshot(&self) -> OptimizerState {
        self.state()
    }
    fn restore(&mut self, state: &OptimizerState) -> Result<()> {
        self.set_state(state)
    }
    fn forget(&mut self) {
        self.reset()
    }
}

macro_rules! momentum_subject {
    ($t:ty) => {
        impl Subject for $t {
            const HAS_MOMENTUM: bool = true;
            fn current_lr(&self) -> f64 {
                self.lr()
            }
            fn change_lr(&mut self, lr: f64) -> Result<()> {
                self.set_lr(lr)
            }
            fn change_momentum(&mut self, momentum: f64) -> Option<Result<()>> {
                Some(self.set_momentum(momentum))
            }
            fn current_momentum(&self) -> f64 {
                self.momentum()
            }
            fn snapshot(&self) -> OptimizerState {
                self.state()
            }
            fn restore(&mut self, state: &OptimizerState) -> Result<()> {
                self.set_state(state)
            }
            fn forget(&mut self) {
                self.reset()
            }
        }
    };
}
momentum_subject!(HeavyBall);
momentum_subject!(Nesterov);

fn step<O: Subject>(o: &mut O, p: &mut Params, g: &Params) -> Result<()> {
    <O as Optimizer<Params, Params>>::step(o, p, g)
}

// ---------------------------------------------------------------------------
// Operations
// ---------------------------------------------------------------------------

/// A gradient the step must refuse.
#[derive(Clone, Debug)]
enum BadGradient {
    /// A good gradient with one entry NaN or infinite.
    NonFinite { second: bool, entry: Index, value: f64 },
    /// One tensor one entry longer or shorter than its parameters.
    WrongLength { second: bool, longer: bool },
    /// One tensor for two parameter tensors.
    OneTensor,
    /// Three tensors for two.
    ThreeTensors,
}

/// A state `set_state` must refuse, made from the optimizer's current one.
#[derive(Clone, Debug)]
enum Corruption {
    /// Another optimizer's name.
    Name,
    /// A buffer one entry longer than its tensor.
    BufferLength,
    /// A NaN entry in a buffer.
    NanInBuffer(Index),
    /// A buffer name the optimizer does not have.
    ExtraBuffer,
    /// Steps taken but no precision and no tensors.
    StepsWithoutTensors,
    /// A precision but no tensors.
    PrecisionWithoutTensors,
}

#[derive(Clone, Debug)]
enum Op {
    Step(Params),
    BadStep(BadGradient, Params),
    Reset,
    /// `state()`, kept for a later `Restore`.
    Save,
    /// `set_state` of a state saved earlier (the current one if none).
    Restore(Index),
    /// `set_state` of a valid state with one huge (finite) buffer entry, so
    /// the next steps may overflow and must then refuse.
    RestoreHuge(Index, f64),
    Corrupt(Corruption),
    SetLr(f64),
    SetMomentum(f64),
    SetGroupLr(usize, f64),
    SetGroupMomentum(usize, f64),
    SetGroupWeightDecay(usize, f64),
}

/// A hyper-parameter change that succeeded, replayed on a fresh optimizer.
#[derive(Clone, Copy, Debug)]
enum Setter {
    Lr(f64),
    Momentum(f64),
    GroupLr(usize, f64),
    GroupMomentum(usize, f64),
    GroupWeightDecay(usize, f64),
}

fn gradient() -> impl Strategy<Value = Params> {
    (
        prop::collection::vec(-10.0f64..10.0, SIZES[0]),
        prop::collection::vec(-10.0f64..10.0, SIZES[1]),
    )
}

fn bad_gradient() -> impl Strategy<Value = BadGradient> {
    prop_oneof![
        (
            any::<bool>(),
            any::<Index>(),
            prop::sample::select(vec![f64::NAN, f64::INFINITY, f64::NEG_INFINITY])
        )
            .prop_map(|(second, entry, value)| BadGradient::NonFinite { second, entry, value }),
        (any::<bool>(), any::<bool>()).prop_map(|(second, longer)| BadGradient::WrongLength { second, longer }),
        Just(BadGradient::OneTensor),
        Just(BadGradient::ThreeTensors),
    ]
}

fn corruption() -> impl Strategy<Value = Corruption> {
    prop_oneof![
        Just(Corruption::Name),
        Just(Corruption::BufferLength),
        any::<Index>().prop_map(Corruption::NanInBuffer),
        Just(Corruption::ExtraBuffer),
        Just(Corruption::StepsWithoutTensors),
        Just(Corruption::PrecisionWithoutTensors),
    ]
}

/// Step sizes: mostly valid, some refused (NaN, −1, 0, ±∞), and a huge
/// valid one that makes later steps overflow.
fn lr_value() -> impl Strategy<Value = f64> {
    prop_oneof![
        4 => 1e-3f64..1.0,
        1 => prop::sample::select(vec![0.01, 0.1, 0.5, 1.0, 7.0]),
        2 => prop::sample::select(vec![f64::NAN, -1.0, 0.0, -0.0, f64::INFINITY, f64::NEG_INFINITY, -1e-300]),
        1 => Just(1e200),
    ]
}

/// Momenta: valid in [0, 1), refused outside (1, −0.1, 1.5, NaN, ∞).
fn momentum_value() -> impl Strategy<Value = f64> {
    prop_oneof![
        3 => 0.0f64..0.99,
        1 => prop::sample::select(vec![0.0, 0.5, 0.9]),
        2 => prop::sample::select(vec![1.0, -0.1, 1.5, f64::NAN, f64::INFINITY, -0.0]),
    ]
}

/// Weight decays: valid finite ≥ 0, refused negative or non-finite.
fn decay_value() -> impl Strategy<Value = f64> {
    prop_oneof![
        2 => prop::sample::select(vec![0.0, 1e-3, 0.1]),
        1 => prop::sample::select(vec![-1.0, f64::NAN, f64::INFINITY]),
    ]
}

fn group() -> impl Strategy<Value = usize> {
    prop::sample::select(vec![0usize, 1, 7])
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        8 => gradient().prop_map(Op::Step),
        3 => (bad_gradient(), gradient()).prop_map(|(b, g)| Op::BadStep(b, g)),
        1 => Just(Op::Reset),
        2 => Just(Op::Save),
        2 => any::<Index>().prop_map(Op::Restore),
        1 => (any::<Index>(), prop::sample::select(vec![1e300, -1e308, 1e150])).prop_map(|(i, v)| Op::RestoreHuge(i, v)),
        2 => corruption().prop_map(Op::Corrupt),
        2 => lr_value().prop_map(Op::SetLr),
        2 => momentum_value().prop_map(Op::SetMomentum),
        1 => (group(), lr_value()).prop_map(|(k, v)| Op::SetGroupLr(k, v)),
        1 => (group(), momentum_value()).prop_map(|(k, v)| Op::SetGroupMomentum(k, v)),
        1 => (group(), decay_value()).prop_map(|(k, v)| Op::SetGroupWeightDecay(k, v)),
    ]
}

// ---------------------------------------------------------------------------
// Checks
// ---------------------------------------------------------------------------

/// A state with every float as its bit pattern, so that NaN == NaN and
/// 0.0 != −0.0.
type StateBits = (
    String,
    Vec<(String, u64)>,
    u64,
    String,
    Vec<(Vec<usize>, Vec<(String, Vec<u64>)>)>,
);

fn state_bits(s: &OptimizerState) -> StateBits {
    (
        s.optimizer.clone(),
        s.hyperparameters
            .iter()
            .map(|(n, v)| (n.clone(), v.to_bits()))
            .collect(),
        s.step,
        format!("{:?}", s.precision),
        s.tensors
            .iter()
            .map(|t| {
                (
                    t.shape.clone(),
                    t.buffers
                        .iter()
                        .map(|(n, b)| (n.clone(), b.iter().map(|v| v.to_bits()).collect()))
                        .collect(),
                )
            })
            .collect(),
    )
}

/// The state without its hyper-parameter record: what steps and
/// `set_state` change (the setters change only the record).
fn history_bits(s: &OptimizerState) -> StateBits {
    let mut b = state_bits(s);
    b.1.clear();
    b
}

fn params_bits(p: &Params) -> (Vec<u64>, Vec<u64>) {
    (
        p.0.iter().map(|v| v.to_bits()).collect(),
        p.1.iter().map(|v| v.to_bits()).collect(),
    )
}

/// Largest |value| among the parameters, the state's buffers and the
/// groups' step sizes: above 1e100 a good step may overflow (and must then
/// refuse).
fn largest<O: Subject>(o: &O, p: &Params) -> f64 {
    let s = o.snapshot();
    let buffers = s
        .tensors
        .iter()
        .flat_map(|t| t.buffers.iter().flat_map(|(_, b)| b.iter()))
        .fold(0.0f64, |m, v| m.max(v.abs()));
    let params = p.0.iter().chain(&p.1).fold(0.0f64, |m, v| m.max(v.abs()));
    let lrs = (0..o.group_count())
        .filter_map(|k| o.group_lr(k))
        .fold(0.0f64, f64::max);
    buffers.max(params).max(lrs)
}

fn valid_lr(v: f64) -> bool {
    v.is_finite() && v > 0.0
}

fn valid_momentum(v: f64) -> bool {
    (0.0..1.0).contains(&v)
}

fn valid_decay(v: f64) -> bool {
    v.is_finite() && v >= 0.0
}

/// The gradient of a bad step, applied.
fn bad_step<O: Subject>(o: &mut O, p: &mut Params, bad: &BadGradient, g: &Params) -> Result<()> {
    let mut g = g.clone();
    match bad {
        BadGradient::NonFinite { second, entry, value } => {
            let t = if *second { &mut g.1 } else { &mut g.0 };
            let i = entry.index(t.len());
            t[i] = *value;
            step(o, p, &g)
        }
        BadGradient::WrongLength { second, longer } => {
            let t = if *second { &mut g.1 } else { &mut g.0 };
            if *longer {
                t.push(1.0);
            } else {
                t.pop();
            }
            step(o, p, &g)
        }
        BadGradient::OneTensor => <O as Optimizer<Params, Vec<f64>>>::step(o, p, &g.0),
        BadGradient::ThreeTensors => {
            <O as Optimizer<Params, Three>>::step(o, p, &(g.0.clone(), g.1.clone(), vec![0.0; 2]))
        }
    }
}

/// The corrupted version of `state` (`Name` where the corruption needs
/// buffers and the state has none).
fn corrupt(state: &OptimizerState, c: &Corruption) -> OptimizerState {
    let mut s = state.clone();
    let has_buffers = s.tensors.first().is_some_and(|t| !t.buffers.is_empty());
    match c {
        Corruption::BufferLength if has_buffers => s.tensors[0].buffers[0].1.push(0.0),
        Corruption::NanInBuffer(i) if has_buffers => {
            let t = i.index(s.tensors.len());
            let b = &mut s.tensors[t].buffers[0].1;
            let j = i.index(b.len());
            b[j] = f64::NAN;
        }
        Corruption::ExtraBuffer if !s.tensors.is_empty() => {
            let n = s.tensors[0].buffers.first().map_or(SIZES[0], |b| b.1.len());
            s.tensors[0].buffers.push(("bogus".into(), vec![0.0; n]));
        }
        Corruption::StepsWithoutTensors => {
            s.precision = None;
            s.tensors.clear();
            s.step = 5;
        }
        Corruption::PrecisionWithoutTensors => {
            s.precision = Some(ntk_momentum::Precision::F64);
            s.tensors.clear();
        }
        _ => s.optimizer = "adam".into(),
    }
    s
}

/// Runs `ops` on an optimizer from `build`, checking every operation, then
/// the continuation of a clone and of a fresh optimizer restored from the
/// state for `tail`'s steps.
fn run<O: Subject>(build: impl Fn() -> O, ops: &[Op], tail: &[Params]) -> std::result::Result<(), TestCaseError> {
    let mut o = build();
    let mut p = initial_params();
    let mut saved: Vec<OptimizerState> = Vec::new();
    let mut setters: Vec<Setter> = Vec::new();
    for (n, op) in ops.iter().enumerate() {
        let (p_before, s_before) = (params_bits(&p), o.snapshot());
        let (lr_before, momentum_before) = (o.current_lr(), o.current_momentum());
        let risky = largest(&o, &p) > 1e100;
        // Some(expected Ok?) for fallible operations; None for reset and save.
        let (result, expect_ok): (Option<Result<()>>, bool) = match op {
            Op::Step(g) => (Some(step(&mut o, &mut p, g)), true),
            Op::BadStep(bad, g) => (Some(bad_step(&mut o, &mut p, bad, g)), false),
            Op::Reset => {
                o.forget();
                (None, true)
            }
            Op::Save => {
                saved.push(o.snapshot());
                (None, true)
            }
            Op::Restore(i) => {
                let s = if saved.is_empty() {
                    o.snapshot()
                } else {
                    saved[i.index(saved.len())].clone()
                };
                let r = o.restore(&s);
                if r.is_ok() {
                    prop_assert_eq!(history_bits(&o.snapshot()), history_bits(&s), "op {}: {:?}", n, op);
                }
                (Some(r), true)
            }
            Op::RestoreHuge(i, v) => {
                let mut s = o.snapshot();
                if let Some(t) = s.tensors.iter_mut().find(|t| !t.buffers.is_empty()) {
                    let b = &mut t.buffers[0].1;
                    let j = i.index(b.len());
                    b[j] = *v;
                }
                let r = o.restore(&s);
                if r.is_ok() {
                    prop_assert_eq!(history_bits(&o.snapshot()), history_bits(&s), "op {}: {:?}", n, op);
                }
                (Some(r), true)
            }
            Op::Corrupt(c) => (Some(o.restore(&corrupt(&s_before, c))), false),
            Op::SetLr(v) => {
                let r = o.change_lr(*v);
                if r.is_ok() {
                    setters.push(Setter::Lr(*v));
                    prop_assert_eq!(o.current_lr().to_bits(), v.to_bits(), "op {}", n);
                }
                (Some(r), valid_lr(*v))
            }
            Op::SetMomentum(v) => match o.change_momentum(*v) {
                Some(r) => {
                    if r.is_ok() {
                        setters.push(Setter::Momentum(*v));
                        prop_assert_eq!(o.current_momentum().to_bits(), v.to_bits(), "op {}", n);
                    }
                    (Some(r), valid_momentum(*v))
                }
                None => (None, true),
            },
            Op::SetGroupLr(k, v) => {
                let exists = *k < o.group_count();
                let r = o.set_group_lr(*k, *v);
                if r.is_ok() {
                    setters.push(Setter::GroupLr(*k, *v));
                    prop_assert_eq!(o.group_lr(*k).map(f64::to_bits), Some(v.to_bits()), "op {}", n);
                }
                (Some(r), exists && valid_lr(*v))
            }
            Op::SetGroupMomentum(k, v) => {
                let exists = *k < o.group_count();
                let r = o.set_group_momentum(*k, *v);
                if r.is_ok() {
                    setters.push(Setter::GroupMomentum(*k, *v));
                    prop_assert_eq!(o.group_momentum(*k).map(f64::to_bits), Some(v.to_bits()), "op {}", n);
                }
                (Some(r), O::HAS_MOMENTUM && exists && valid_momentum(*v))
            }
            Op::SetGroupWeightDecay(k, v) => {
                let exists = *k < o.group_count();
                let r = o.set_group_weight_decay(*k, *v);
                if r.is_ok() {
                    setters.push(Setter::GroupWeightDecay(*k, *v));
                    prop_assert_eq!(
                        o.group_weight_decay(*k).map(f64::to_bits),
                        Some(v.to_bits()),
                        "op {}",
                        n
                    );
                }
                (Some(r), exists && valid_decay(*v))
            }
        };
        let s_after = o.snapshot();
        match result {
            Some(Err(e)) => {
                // Refused: nothing changed, bit for bit.
                let overflow = matches!(e, ntk_momentum::Error::NonFinite { .. }) && matches!(op, Op::Step(_));
                prop_assert!(
                    !expect_ok || (overflow && risky),
                    "op {}: {:?} was refused: {}",
                    n,
                    op,
                    e
                );
                prop_assert_eq!(
                    params_bits(&p),
                    p_before,
                    "op {}: {:?} failed ({}) but changed the parameters",
                    n,
                    op,
                    e
                );
                prop_assert_eq!(
                    state_bits(&s_after),
                    state_bits(&s_before),
                    "op {}: {:?} failed ({}) but changed the state",
                    n,
                    op,
                    e
                );
                prop_assert_eq!(o.current_lr().to_bits(), lr_before.to_bits(), "op {}: lr changed", n);
                prop_assert_eq!(o.current_momentum().to_bits(), momentum_before.to_bits(), "op {}", n);
            }
            Some(Ok(())) => {
                prop_assert!(expect_ok, "op {}: {:?} was accepted", n, op);
                match op {
                    Op::Step(_) => {
                        prop_assert_eq!(s_after.step, s_before.step + 1, "op {}", n);
                        prop_assert_eq!(s_after.tensors.len(), 2, "op {}", n);
                        prop_assert!(p.0.iter().chain(&p.1).all(|v| v.is_finite()), "op {}: {:?}", n, p);
                        let finite = s_after
                            .tensors
                            .iter()
                            .all(|t| t.buffers.iter().all(|(_, b)| b.iter().all(|v| v.is_finite())));
                        prop_assert!(finite, "op {}: {:?}", n, s_after);
                    }
                    Op::SetLr(_)
                    | Op::SetMomentum(_)
                    | Op::SetGroupLr(..)
                    | Op::SetGroupMomentum(..)
                    | Op::SetGroupWeightDecay(..) => {
                        // A setter changes the hyper-parameters only.
                        prop_assert_eq!(params_bits(&p), p_before, "op {}", n);
                        prop_assert_eq!(history_bits(&s_after), history_bits(&s_before), "op {}", n);
                    }
                    _ => prop_assert_eq!(params_bits(&p), p_before, "op {}", n),
                }
            }
            None => {
                prop_assert_eq!(params_bits(&p), p_before, "op {}", n);
                if let Op::Reset = op {
                    prop_assert_eq!(s_after.step, 0);
                    prop_assert!(s_after.tensors.is_empty() && s_after.precision.is_none());
                } else {
                    prop_assert_eq!(state_bits(&s_after), state_bits(&s_before), "op {}: {:?}", n, op);
                }
            }
        }
    }

    // The continuation: a clone, and a fresh optimizer of the same
    // configuration (the successful setters replayed) restored from state().
    let state = o.snapshot();
    let mut clone = o.clone();
    let mut fresh = build();
    for s in &setters {
        let r = match *s {
            Setter::Lr(v) => fresh.change_lr(v),
            Setter::Momentum(v) => fresh.change_momentum(v).unwrap_or(Ok(())),
            Setter::GroupLr(k, v) => fresh.set_group_lr(k, v),
            Setter::GroupMomentum(k, v) => fresh.set_group_momentum(k, v),
            Setter::GroupWeightDecay(k, v) => fresh.set_group_weight_decay(k, v),
        };
        prop_assert!(r.is_ok(), "replaying {:?}: {:?}", s, r);
    }
    let r = fresh.restore(&state);
    prop_assert!(r.is_ok(), "restoring the final state: {:?}", r);
    prop_assert_eq!(state_bits(&fresh.snapshot()), state_bits(&state));
    let (mut p_clone, mut p_fresh) = (p.clone(), p.clone());
    for (k, g) in tail.iter().enumerate() {
        let a = step(&mut o, &mut p, g).map_err(|e| e.to_string());
        let b = step(&mut clone, &mut p_clone, g).map_err(|e| e.to_string());
        let c = step(&mut fresh, &mut p_fresh, g).map_err(|e| e.to_string());
        prop_assert_eq!(&a, &b, "continuation step {}: the clone", k);
        prop_assert_eq!(&a, &c, "continuation step {}: the restored optimizer", k);
        prop_assert_eq!(
            params_bits(&p_clone),
            params_bits(&p),
            "continuation step {}: the clone",
            k
        );
        prop_assert_eq!(
            params_bits(&p_fresh),
            params_bits(&p),
            "continuation step {}: the restored one",
            k
        );
        let s = state_bits(&o.snapshot());
        prop_assert_eq!(
            state_bits(&clone.snapshot()),
            s.clone(),
            "continuation step {}: the clone",
            k
        );
        prop_assert_eq!(
            state_bits(&fresh.snapshot()),
            s,
            "continuation step {}: the restored one",
            k
        );
    }
    Ok(())
}

// ---------------------------------------------------------------------------
// The configurations
// ---------------------------------------------------------------------------

fn gd() -> GradientDescent {
    GradientDescent::new(0.1).unwrap()
}

fn gd_knobs() -> GradientDescent {
    GradientDescent::new(0.1)
        .and_then(|o| o.weight_decay(1e-3))
        .and_then(|o| o.decoupled_weight_decay(1e-2))
        .and_then(|o| o.clip(GradientClip::Value(2.0)))
        .and_then(|o| o.group(ParamGroup::new([1])?.lr(0.05)?))
        .unwrap()
        .maximize()
}

fn heavy_ball(convention: Convention) -> HeavyBall {
    HeavyBall::new(0.1, 0.9).unwrap().convention(convention)
}

fn heavy_ball_knobs(convention: Convention) -> HeavyBall {
    HeavyBall::new(0.1, 0.9)
        .and_then(|o| o.dampening(0.1))
        .and_then(|o| o.weight_decay(1e-3))
        .and_then(|o| o.decoupled_weight_decay(1e-2))
        .and_then(|o| o.clip(GradientClip::Norm(1.0)))
        .and_then(|o| o.group(ParamGroup::new([1])?.lr(0.05)?.momentum(0.5)?))
        .unwrap()
        .maximize()
        .convention(convention)
}

fn nesterov(convention: Convention) -> Nesterov {
    Nesterov::new(0.1, 0.9).unwrap().convention(convention)
}

fn nesterov_knobs(convention: Convention) -> Nesterov {
    Nesterov::new(0.1, 0.9)
        .and_then(|o| o.weight_decay(1e-3))
        .and_then(|o| o.decoupled_weight_decay(1e-2))
        .and_then(|o| o.clip(GradientClip::Value(5.0)))
        .and_then(|o| o.group(ParamGroup::new([1])?.lr(0.05)?.weight_decay(0.0)?))
        .unwrap()
        .convention(convention)
}

fn sequence() -> impl Strategy<Value = (Vec<Op>, Vec<Params>)> {
    (
        prop::collection::vec(op(), 0..=40),
        prop::collection::vec(gradient(), 5),
    )
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 256, failure_persistence: None, ..ProptestConfig::default() })]

    #[test]
    fn gradient_descent((ops, tail) in sequence()) {
        run(gd, &ops, &tail)?;
    }

    #[test]
    fn gradient_descent_with_knobs((ops, tail) in sequence()) {
        run(gd_knobs, &ops, &tail)?;
    }

    #[test]
    fn heavy_ball_displacement((ops, tail) in sequence()) {
        run(|| heavy_ball(Convention::Displacement), &ops, &tail)?;
    }

    #[test]
    fn heavy_ball_pytorch((ops, tail) in sequence()) {
        run(|| heavy_ball(Convention::PyTorch), &ops, &tail)?;
    }

    #[test]
    fn heavy_ball_displacement_with_knobs((ops, tail) in sequence()) {
        run(|| heavy_ball_knobs(Convention::Displacement), &ops, &tail)?;
    }

    #[test]
    fn heavy_ball_pytorch_with_knobs((ops, tail) in sequence()) {
        run(|| heavy_ball_knobs(Convention::PyTorch), &ops, &tail)?;
    }

    #[test]
    fn nesterov_displacement((ops, tail) in sequence()) {
        run(|| nesterov(Convention::Displacement), &ops, &tail)?;
    }

    #[test]
    fn nesterov_pytorch((ops, tail) in sequence()) {
        run(|| nesterov(Convention::PyTorch), &ops, &tail)?;
    }

    #[test]
    fn nesterov_displacement_with_knobs((ops, tail) in sequence()) {
        run(|| nesterov_knobs(Convention::Displacement), &ops, &tail)?;
    }

    #[test]
    fn nesterov_pytorch_with_knobs((ops, tail) in sequence()) {
        run(|| nesterov_knobs(Convention::PyTorch), &ops, &tail)?;
    }
}
