//! The knobs beyond the torch equality of `tests/torch_knobs.rs`: where the
//! theory stays exact (coupled weight decay shifts the spectrum), what
//! kernel space and the verdict refuse, parameter groups saved and restored
//! whole, hyper-parameters changed between steps, and loss-aware schedules
//! driven by the `Trainer` and `minimize`.
#![cfg(feature = "full")]

use nalgebra::{DMatrix, DVector};
use ntk_momentum::ntk::Spectrum;
use ntk_momentum::optim::{GradientClip, HyperParameters, ParamGroup, ReduceOnPlateau, Schedule, ThresholdMode};
use ntk_momentum::theory::{rate, Method, StepTolerance};
use ntk_momentum::{
    minimize, Error, GradientDescent, HeavyBall, MinimizeOptions, Nesterov, Optimizer, Parameterization, Trainer,
    TwoLayerReLU,
};
use proptest::prelude::*;

/// A seeded pseudo-random matrix with entries in [−1, 1).
fn matrix(rows: usize, cols: usize, seed: u64) -> DMatrix<f64> {
    let mut state = seed.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
    DMatrix::from_fn(rows, cols, |_, _| {
        state = state
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        ((state >> 11) as f64 / (1u64 << 53) as f64) * 2.0 - 1.0
    })
}

fn data(n: usize, d: usize) -> (DMatrix<f64>, DVector<f64>) {
    let x = matrix(n, d, 7);
    let x = DMatrix::from_rows(&x.row_iter().map(|r| r / r.norm()).collect::<Vec<_>>());
    let y = DVector::from_fn(n, |i, _| if i % 2 == 0 { 1.0 } else { -1.0 });
    (x, y)
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(48))]
    /// Coupled weight decay λ on a linear model f = J θ: the residual's
    /// distance to the regularized fixed point, e_t = ξ_t − ξ* with
    /// ξ* = −λ (H + λI)⁻¹ y, follows the method's undecayed recursion with
    /// H replaced by A = H + λI (checked step by step to rounding, for GD,
    /// HB and NAG), so its rate is `rate(method, η, β, eig(H) + λ)` on the
    /// spectrum of `Spectrum::with_weight_decay` (the rate of that
    /// recursion by the theory module's own definition); for GD it is
    /// faster than the undecayed rate.
    #[test]
    fn coupled_weight_decay_follows_the_shifted_recursion(
        seed in 0u64..1000, method in 0usize..3, decay in 0.01f64..0.3, beta in 0.3f64..0.8,
    ) {
        let (n, p) = (5, 12);
        let j = matrix(n, p, seed);
        let y = DVector::from_fn(n, |i, _| (i as f64 + 1.0).sin());
        let h = &j * j.transpose();
        let spectrum = Spectrum::of(&h).unwrap().with_weight_decay(decay).unwrap();
        let lr = 1.0 / spectrum.lambda_max;
        let (method, mut opt): (Method, Box<dyn Optimizer<DVector<f64>>>) = match method {
            0 => (Method::GradientDescent, Box::new(GradientDescent::new(lr).unwrap().weight_decay(decay).unwrap())),
            1 => (Method::HeavyBall, Box::new(HeavyBall::new(lr, beta).unwrap().weight_decay(decay).unwrap())),
            _ => (Method::Nesterov, Box::new(Nesterov::new(lr, beta).unwrap().weight_decay(decay).unwrap())),
        };
        let momentum = if method == Method::GradientDescent { 0.0 } else { beta };
        let predicted = rate(method, lr, momentum, &spectrum.eigenvalues).unwrap();
        let a = &h + DMatrix::<f64>::identity(n, n) * decay;
        let target = -(a.clone().lu().solve(&y).unwrap()) * decay;
        let step = |e: &DVector<f64>| e - (&a * e) * lr; // (I − ηA) e
        let mut theta = DVector::<f64>::zeros(p);
        let mut errors: Vec<DVector<f64>> = Vec::new();
        for _ in 0..300 {
            errors.push(&j * &theta - &y - &target);
            let g = j.transpose() * (&j * &theta - &y);
            opt.step(&mut theta, &g).unwrap();
        }
        let scale = errors[0].norm();
        for t in 1..errors.len() - 1 {
            let (e, prev) = (&errors[t], &errors[t - 1]);
            let want = match method {
                Method::GradientDescent => step(e),
                Method::HeavyBall => step(e) + (e - prev) * beta,
                _ => step(e) * (1.0 + beta) - step(prev) * beta,
            };
            let err = (&errors[t + 1] - want).norm();
            prop_assert!(err <= 1e-12 * scale, "{method:?} step {t}: recursion off by {err:e}");
        }
        // For GD the shift changes the rate (for HB and NAG it may not: an
        // underdamped mode contracts at √β whatever its eigenvalue).
        let plain = rate(method, lr, momentum, &Spectrum::of(&h).unwrap().eigenvalues).unwrap();
        prop_assert!(method != Method::GradientDescent || plain > predicted, "{plain} vs {predicted}");
    }
}

/// Weight decay, clipping and maximize are not linear in the gradients:
/// `is_linear` says so, kernel space refuses them with the reason, `Auto`
/// runs in weight space, and the verdict refuses a knob-bearing optimizer.
#[test]
fn kernel_space_and_the_verdict_refuse_nonlinear_knobs() -> ntk_momentum::Result<()> {
    let (x, y) = data(8, 4);
    let nonlinear: Vec<(&str, Nesterov)> = vec![
        ("weight_decay", Nesterov::new(0.5, 0.9)?.weight_decay(1e-3)?),
        (
            "decoupled_weight_decay",
            Nesterov::new(0.5, 0.9)?.decoupled_weight_decay(1e-3)?,
        ),
        ("clip_norm", Nesterov::new(0.5, 0.9)?.clip(GradientClip::Norm(1.0))?),
        ("clip_value", Nesterov::new(0.5, 0.9)?.clip(GradientClip::Value(1.0))?),
        ("maximize", Nesterov::new(0.5, 0.9)?.maximize()),
    ];
    for (knob, opt) in nonlinear {
        assert!(!Optimizer::<DMatrix<f64>>::is_linear(&opt), "{knob}");
        let model = TwoLayerReLU::new(4, 64, 0)?;
        let mut kernel = Trainer::new(model.clone(), opt.clone())
            .parameterization(Parameterization::Kernel)
            .max_steps(3);
        let err = kernel.run(&x, &y).unwrap_err();
        assert!(matches!(err, Error::Unsupported(_)), "{knob}: {err}");
        assert!(err.to_string().contains(knob), "{knob}: {err}");
        let mut auto = Trainer::new(model, opt).max_steps(3).enclose_prediction(true);
        auto.run(&x, &y)?;
        assert_eq!(auto.resolved_parameterization(), Some(Parameterization::Weight));
        let verdict = auto.verdict(&[1e-1], StepTolerance::default()).unwrap_err();
        assert!(verdict.to_string().contains(knob), "{knob}: {verdict}");
    }
    // Dampening and groups stay linear (kernel space runs them).
    let damped = HeavyBall::new(0.5, 0.9)?.dampening(0.1)?;
    assert!(Optimizer::<DMatrix<f64>>::is_linear(&damped));
    let mut t = Trainer::new(TwoLayerReLU::new(4, 64, 0)?, damped)
        .parameterization(Parameterization::Kernel)
        .max_steps(3);
    t.run(&x, &y)?;
    Ok(())
}

/// Kernel and weight space agree with dampening (a linear knob).
#[test]
fn dampening_in_kernel_space_equals_weight_space() -> ntk_momentum::Result<()> {
    let (x, y) = data(12, 6);
    let run = |p| -> ntk_momentum::Result<ntk_momentum::History> {
        let opt = HeavyBall::new(0.3, 0.9)?.dampening(0.25)?;
        let mut t = Trainer::new(TwoLayerReLU::new(6, 128, 3)?, opt)
            .parameterization(p)
            .max_steps(60)
            .track_ntk_drift(false);
        t.run(&x, &y)
    };
    let (w, k) = (run(Parameterization::Weight)?, run(Parameterization::Kernel)?);
    // History's RelativeEq (feature nalgebra): losses and diagnostics to 1e-9 relative.
    approx::assert_relative_eq!(w, k, epsilon = 0.0, max_relative = 1e-9);
    assert_ne!(w.losses(), k.losses(), "the two spaces round differently");
    approx::assert_relative_ne!(w, k, epsilon = 0.0, max_relative = 1e-16);
    Ok(())
}

/// The approx comparisons of the public records: equal within the
/// tolerance, different beyond it, names and shapes compared exactly.
#[test]
fn optimizer_states_and_spectra_compare_with_a_tolerance() -> ntk_momentum::Result<()> {
    use approx::{abs_diff_eq, relative_eq};
    let mut hb = HeavyBall::new(0.1, 0.9)?;
    let mut x = vec![1.0, -2.0, 3.0];
    let g = x.clone();
    hb.step(&mut x, &g)?;
    let state = hb.state();
    let mut nudged = state.clone();
    nudged.tensors[0].buffers[0].1[1] *= 1.0 + 1e-12;
    assert!(relative_eq!(state, nudged, epsilon = 0.0, max_relative = 1e-11));
    assert!(!relative_eq!(state, nudged, epsilon = 0.0, max_relative = 1e-13));
    assert!(abs_diff_eq!(state, nudged, epsilon = 1e-10) && !abs_diff_eq!(state, nudged, epsilon = 0.0));
    let mut renamed = state.clone();
    renamed.optimizer = "nesterov".into();
    assert!(!abs_diff_eq!(state, renamed, epsilon = 1.0));
    let h = DMatrix::from_row_slice(2, 2, &[2.0, 0.5, 0.5, 1.0]);
    let (a, b) = (Spectrum::of(&h)?, Spectrum::of(&(h * (1.0 + 1e-14)))?);
    assert!(relative_eq!(a, b, epsilon = 0.0, max_relative = 1e-13));
    assert!(!relative_eq!(
        a,
        b.with_weight_decay(1e-6)?,
        epsilon = 0.0,
        max_relative = 1e-13
    ));
    Ok(())
}

/// NAG refuses dampening (torch.optim.SGD does too); GD refuses a group
/// momentum; groups may not share tensors; an index beyond the set is
/// refused at the step with nothing changed.
#[test]
fn bad_groups_and_dampening_are_refused() -> ntk_momentum::Result<()> {
    let err = Nesterov::new(0.1, 0.9)?
        .group(ParamGroup::new([1])?.dampening(0.1)?)
        .unwrap_err();
    assert!(err.to_string().contains("dampening"), "{err}");
    let err = GradientDescent::new(0.1)?
        .group(ParamGroup::new([0])?.momentum(0.5)?)
        .unwrap_err();
    assert!(err.to_string().contains("momentum"), "{err}");
    let err = HeavyBall::new(0.1, 0.9)?
        .group(ParamGroup::new([0, 1])?)?
        .group(ParamGroup::new([1])?)
        .unwrap_err();
    assert!(err.to_string().contains("already in group 1"), "{err}");
    assert!(ParamGroup::new([2, 2]).is_err() && ParamGroup::new([]).is_err());
    assert!(HeavyBall::new(0.1, 0.9)?.dampening(1.5).is_err());
    assert!(HeavyBall::new(0.1, 0.9)?.weight_decay(-1.0).is_err());
    assert!(HeavyBall::new(0.1, 0.9)?.clip(GradientClip::Norm(0.0)).is_err());
    assert!(HeavyBall::new(0.1, 0.9)?.clip(GradientClip::Value(f64::NAN)).is_err());
    let mut hb = HeavyBall::new(0.1, 0.9)?.group(ParamGroup::new([5])?)?;
    let (mut w, mut b) = (vec![1.0; 3], vec![1.0; 2]);
    let err = hb
        .step(&mut (&mut w, &mut b), &(&vec![1.0; 3], &vec![1.0; 2]))
        .unwrap_err();
    assert!(err.to_string().contains("tensor 5"), "{err}");
    assert_eq!((w, b, hb.steps_taken()), (vec![1.0; 3], vec![1.0; 2], 0));
    Ok(())
}

/// Two groups with their own schedules: the state saved after 10 steps and
/// restored into a fresh optimizer continues bit-identically; changing a
/// group's step size between steps equals a piecewise schedule.
#[test]
fn groups_save_restore_and_change_between_steps() -> ntk_momentum::Result<()> {
    let build = || -> ntk_momentum::Result<HeavyBall> {
        HeavyBall::new(0.05, 0.9)?
            .weight_decay(0.01)?
            .clip(GradientClip::Norm(2.0))?
            .group(
                ParamGroup::new([1])?
                    .lr(Schedule::cosine(0.08, 0.0, 40)?)?
                    .momentum(0.6)?,
            )
    };
    let grad = |p: &(Vec<f64>, Vec<f64>)| {
        (
            p.0.iter()
                .enumerate()
                .map(|(i, x)| (i as f64 + 1.0) * x + 0.1)
                .collect::<Vec<_>>(),
            p.1.iter().map(|x| 2.0 * x - 0.3).collect::<Vec<_>>(),
        )
    };
    let mut whole = build()?;
    let mut p = (vec![1.0, -2.0, 0.5], vec![3.0, 1.0]);
    for _ in 0..10 {
        let g = grad(&p);
        whole.step(&mut p, &g)?;
    }
    let saved = whole.state();
    let mut resumed = build()?;
    resumed.set_state(&saved)?;
    let mut q = p.clone();
    for _ in 0..20 {
        let (g, h) = (grad(&p), grad(&q));
        whole.step(&mut p, &g)?;
        resumed.step(&mut q, &h)?;
    }
    assert_eq!(p, q);
    assert_eq!(whole.state(), resumed.state());
    assert!(saved.hyperparameters.iter().any(|(n, _)| n == "lr[1]"));

    // set_group_lr at step 5 equals a piecewise schedule for group 1.
    let mut changed = HeavyBall::new(0.05, 0.9)?.group(ParamGroup::new([1])?.lr(0.08)?)?;
    let mut piecewise =
        HeavyBall::new(0.05, 0.9)?.group(ParamGroup::new([1])?.lr(Schedule::piecewise(vec![5], vec![0.08, 0.02])?)?)?;
    let (mut a, mut b) = ((vec![1.0, 2.0], vec![1.0]), (vec![1.0, 2.0], vec![1.0]));
    for t in 0..10 {
        if t == 5 {
            changed.set_group_lr(1, 0.02)?;
            assert!(changed.set_group_lr(2, 0.1).is_err() && changed.set_group_lr(1, -1.0).is_err());
        }
        let (g, h) = (grad(&a), grad(&b));
        changed.step(&mut a, &g)?;
        piecewise.step(&mut b, &h)?;
    }
    assert_eq!(a, b);
    assert_eq!(changed.group_lr(1), Some(0.02));
    Ok(())
}

/// The Trainer drives a plateau schedule with its training loss: the step
/// size falls, the run stays in weight space, the verdict refuses (the
/// hyper-parameters changed), and a divergence rolls back to the last
/// acceptable step exactly as a run stopped there.
#[test]
fn trainer_drives_a_plateau_schedule() -> ntk_momentum::Result<()> {
    let (x, y) = data(10, 5);
    // An improvement must halve the loss: most steps count as bad ones.
    let plateau = || {
        ReduceOnPlateau::new()
            .factor(0.5)
            .and_then(|p| p.threshold(0.5, ThresholdMode::Relative))
            .map(|p| p.patience(2).cooldown(1))
    };
    let mut t = Trainer::new(TwoLayerReLU::new(5, 128, 1)?, HeavyBall::new(0.5, 0.9)?)
        .max_steps(100)
        .enclose_prediction(true)
        .tuner(plateau()?);
    t.run(&x, &y)?;
    assert!(t.optimizer().lr() < 0.5, "lr {}", t.optimizer().lr());
    assert_eq!(t.resolved_parameterization(), Some(Parameterization::Weight));
    let err = t.verdict(&[1e-1], StepTolerance::default()).unwrap_err();
    assert!(err.to_string().contains("changed"), "{err}");
    let err = Trainer::new(TwoLayerReLU::new(5, 128, 1)?, HeavyBall::new(2.0, 0.9)?)
        .parameterization(Parameterization::Kernel)
        .tuner(plateau()?)
        .run(&x, &y)
        .unwrap_err();
    assert!(matches!(err, Error::Unsupported(_)), "{err}");

    // A closure tuner that doubles the step size every step: the run
    // diverges; the trainer ends at the last acceptable step, equal to a
    // run stopped there.
    let doubling = |_: &ntk_momentum::train::StepInfo, h: &mut dyn HyperParameters| {
        let lr = h.group_lr(0).unwrap_or(1.0);
        h.set_group_lr(0, 2.0 * lr)
    };
    let mut diverging = Trainer::new(TwoLayerReLU::new(5, 64, 2)?, HeavyBall::new(0.1, 0.5)?)
        .max_steps(200)
        .divergence_factor(10.0)?
        .tuner(doubling);
    let Err(Error::Diverged { step, .. }) = diverging.run(&x, &y) else {
        panic!("the doubled step size should diverge")
    };
    let kept = diverging.steps_taken();
    assert_eq!(kept + 1, step);
    let mut stopped = Trainer::new(TwoLayerReLU::new(5, 64, 2)?, HeavyBall::new(0.1, 0.5)?)
        .max_steps(kept)
        .tuner(doubling);
    stopped.run(&x, &y)?;
    assert_eq!(stopped.model().weights(), diverging.model().weights());
    assert_eq!(
        stopped.optimizer().state().tensors,
        diverging.optimizer().state().tensors
    );
    Ok(())
}

/// `minimize` drives a plateau schedule with the objective value before
/// every step: the same iterates as a hand-written loop that calls
/// `observe` before each step.
#[test]
fn minimize_drives_a_plateau_schedule() -> ntk_momentum::Result<()> {
    let f = |p: &Vec<f64>| {
        let v = 0.5 * (p[0] * p[0] + 25.0 * p[1] * p[1]);
        (v, vec![p[0], 25.0 * p[1]])
    };
    let schedule = ReduceOnPlateau::new().factor(0.5)?.patience(1);
    let options = MinimizeOptions::default().max_steps(60).plateau(schedule.clone());
    let mut opt = HeavyBall::new(0.079, 0.9)?;
    let mut p = vec![1.0, 1.0];
    minimize(&mut opt, &mut p, f, &options)?;
    let (mut hand, mut q, mut plateau) = (HeavyBall::new(0.079, 0.9)?, vec![1.0, 1.0], schedule);
    for _ in 0..60 {
        let (v, g) = f(&q);
        plateau.observe(v, &mut hand)?;
        hand.step(&mut q, &g)?;
    }
    assert_eq!(p, q);
    assert!(plateau.reductions() > 0 && opt.lr() < 0.079, "{}", opt.lr());
    Ok(())
}

/// `last_gradient_norm` reports the norm before clipping of the last step,
/// only with clipping, and `reset` forgets it.
#[test]
fn the_norm_before_clipping_is_reported_and_reset() -> ntk_momentum::Result<()> {
    let mut nag = Nesterov::new(0.1, 0.9)?.clip(GradientClip::Norm(1.0))?;
    let (mut w, mut b) = (vec![0.0; 2], vec![0.0; 1]);
    nag.step(&mut (&mut w, &mut b), &(&vec![3.0, 0.0], &vec![4.0]))?;
    assert_eq!(nag.last_gradient_norm(), Some(5.0));
    // Clipped to norm 1 (c = 1 / (5 + 1e-6)), then NAG's first step −η (1 + β) g.
    approx::assert_relative_eq!(w[0], -0.1 * 1.9 * 3.0 / (5.0 + 1e-6), max_relative = 1e-15);
    nag.reset();
    assert_eq!(nag.last_gradient_norm(), None);
    let mut plain = Nesterov::new(0.1, 0.9)?;
    plain.step(&mut w, &vec![1.0, 1.0])?;
    assert_eq!(plain.last_gradient_norm(), None);
    Ok(())
}
