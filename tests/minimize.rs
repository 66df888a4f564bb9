//! `minimize`: each stopping rule fires exactly at the first iterate where
//! it holds, divergence is an error that keeps the history and the last finite
//! iterate, and invalid options are rejected before anything runs.
//!
//! The reference for "when it should stop" is a hand-written loop with a
//! second instance of the same optimizer: these tests are about the driver's
//! bookkeeping, not the update rules (tests/optim.rs covers those).

use std::cell::Cell;

use ntk_momentum::{minimize, Error, GradientDescent, HeavyBall, MinimizeOptions, Nesterov, Optimizer, Stop};
use proptest::prelude::*;

/// f(x) = 1/2 x^T A x - b^T x with A = tridiag(-1, 4, -1) + diag(0..n)/n
/// (SPD, eigenvalues in (1, 7)), b = (1, -1, 1, ...).
struct Quadratic {
    n: usize,
}

impl Quadratic {
    const LAMBDA_MAX: f64 = 7.0;

    fn a(&self, i: usize, j: usize) -> f64 {
        if i == j {
            4.0 + i as f64 / self.n as f64
        } else if i.abs_diff(j) == 1 {
            -1.0
        } else {
            0.0
        }
    }
    fn b(&self, i: usize) -> f64 {
        if i.is_multiple_of(2) {
            1.0
        } else {
            -1.0
        }
    }
    fn eval(&self, x: &[f64]) -> (f64, Vec<f64>) {
        let ax: Vec<f64> = (0..self.n)
            .map(|i| (0..self.n).map(|j| self.a(i, j) * x[j]).sum())
            .collect();
        let value = (0..self.n).map(|i| 0.5 * x[i] * ax[i] - self.b(i) * x[i]).sum();
        let grad = (0..self.n).map(|i| ax[i] - self.b(i)).collect();
        (value, grad)
    }
    fn x0(&self) -> Vec<f64> {
        (0..self.n).map(|i| (i as f64 * 0.7).sin() * 3.0).collect()
    }
}

#[derive(Clone, Copy, Debug)]
enum Kind {
    Gd,
    Hb,
    Nag,
}

fn build(kind: Kind, lr: f64) -> Box<dyn Optimizer<Vec<f64>>> {
    match kind {
        Kind::Gd => Box::new(GradientDescent::new(lr).unwrap()),
        Kind::Hb => Box::new(HeavyBall::new(lr, 0.7).unwrap()),
        Kind::Nag => Box::new(Nesterov::new(lr, 0.7).unwrap()),
    }
}

/// The gradient norm exactly as documented: the Euclidean norm in f64.
fn grad_norm(g: &[f64]) -> f64 {
    g.iter().map(|v| v * v).sum::<f64>().sqrt()
}

/// A hand-written loop: iterates x_0..x_steps, their values and gradient
/// norms (evaluation stops early at the first non-finite value or gradient).
struct Reference {
    xs: Vec<Vec<f64>>,
    values: Vec<f64>,
    grad_norms: Vec<f64>,
}

fn reference(q: &Quadratic, kind: Kind, lr: f64, steps: usize) -> Reference {
    let mut opt = build(kind, lr);
    let mut x = q.x0();
    let mut r = Reference {
        xs: Vec::new(),
        values: Vec::new(),
        grad_norms: Vec::new(),
    };
    for t in 0..=steps {
        let (v, g) = q.eval(&x);
        r.xs.push(x.clone());
        r.values.push(v);
        r.grad_norms.push(grad_norm(&g));
        if !v.is_finite() || g.iter().any(|v| !v.is_finite()) || t == steps {
            break;
        }
        opt.step(&mut x, &g).unwrap();
    }
    r
}

fn bits(v: &[f64]) -> Vec<u64> {
    v.iter().map(|x| x.to_bits()).collect()
}

fn kind() -> impl Strategy<Value = Kind> {
    prop_oneof![Just(Kind::Gd), Just(Kind::Hb), Just(Kind::Nag)]
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 64, failure_persistence: None, ..ProptestConfig::default() })]

    /// Without tolerances the run takes exactly `max_iters` steps.
    #[test]
    fn stops_at_max_iterations(kind in kind(), n in 1usize..8, max_iters in 0usize..200) {
        let q = Quadratic { n };
        let lr = 0.5 / Quadratic::LAMBDA_MAX;
        let want = reference(&q, kind, lr, max_iters);
        let mut opt = build(kind, lr);
        let mut x = q.x0();
        let report = minimize(opt.as_mut(), &mut x, |p: &Vec<f64>| q.eval(p), &MinimizeOptions::default().max_steps(max_iters)).unwrap();
        prop_assert_eq!(report.stop, Stop::MaxSteps);
        prop_assert_eq!(report.iterations, max_iters);
        prop_assert_eq!(bits(&report.values), bits(&want.values));
        prop_assert_eq!(bits(&report.grad_norms), bits(&want.grad_norms));
        prop_assert_eq!(bits(&x), bits(&want.xs[max_iters]));
    }

    /// The gradient tolerance stops the run at the first iterate whose
    /// gradient norm is <= tol: not one step earlier or later.
    #[test]
    fn stops_at_gradient_tolerance(kind in kind(), n in 1usize..8, target in 1usize..150, frac in 0.0f64..1.0) {
        let q = Quadratic { n };
        let lr = 0.5 / Quadratic::LAMBDA_MAX;
        let r = reference(&q, kind, lr, 400);
        // A tolerance between the norms at `target` and the largest before it.
        let before = r.grad_norms[..target].iter().cloned().fold(f64::INFINITY, f64::min);
        let tol = r.grad_norms[target] + frac * (before - r.grad_norms[target]).max(0.0);
        let expect = r.grad_norms.iter().position(|&g| g <= tol).unwrap();
        prop_assume!(tol < before); // otherwise an earlier iterate already met it
        prop_assert_eq!(expect, target);
        let mut opt = build(kind, lr);
        let mut x = q.x0();
        let options = MinimizeOptions::default().max_steps(400).grad_tol(tol).unwrap();
        let report = minimize(opt.as_mut(), &mut x, |p: &Vec<f64>| q.eval(p), &options).unwrap();
        prop_assert_eq!(report.stop, Stop::GradientTolerance);
        prop_assert_eq!(report.iterations, expect);
        prop_assert!(report.grad_norms[..expect].iter().all(|&g| g > tol));
        prop_assert!(*report.grad_norms.last().unwrap() <= tol);
        prop_assert_eq!(bits(&report.values), bits(&r.values[..=expect]));
        prop_assert_eq!(bits(&x), bits(&r.xs[expect]));
    }

    /// The target value stops the run at the first iterate whose value is
    /// <= target.
    #[test]
    fn stops_at_target_value(kind in kind(), n in 1usize..8, target in 1usize..150, frac in 0.0f64..1.0) {
        let q = Quadratic { n };
        let lr = 0.5 / Quadratic::LAMBDA_MAX;
        let r = reference(&q, kind, lr, 400);
        let before = r.values[..target].iter().cloned().fold(f64::INFINITY, f64::min);
        let value = r.values[target] + frac * (before - r.values[target]).max(0.0);
        prop_assume!(value < before);
        let expect = r.values.iter().position(|&v| v <= value).unwrap();
        prop_assert_eq!(expect, target);
        let mut opt = build(kind, lr);
        let mut x = q.x0();
        let options = MinimizeOptions::default().max_steps(400).target_loss(value).unwrap();
        let report = minimize(opt.as_mut(), &mut x, |p: &Vec<f64>| q.eval(p), &options).unwrap();
        prop_assert_eq!(report.stop, Stop::TargetLoss);
        prop_assert_eq!(report.iterations, expect);
        prop_assert!(report.values[..expect].iter().all(|&v| v > value));
        prop_assert_eq!(bits(&report.values), bits(&r.values[..=expect]));
        prop_assert_eq!(bits(&x), bits(&r.xs[expect]));
    }

    /// lr = 20 / L (ten times the stability limit 2 / L): the run must end in
    /// `Error::Diverged` at the first non-finite value, with every value so
    /// far in the history and the params at the last finite iterate.
    #[test]
    fn divergent_run_is_an_error_with_history(kind in kind(), n in 1usize..8) {
        let q = Quadratic { n };
        let lr = 20.0 / Quadratic::LAMBDA_MAX;
        let r = reference(&q, kind, lr, 100_000);
        let step = r.values.len() - 1;
        prop_assert!(step > 0 && step < 100_000, "the reference must diverge");
        let mut opt = build(kind, lr);
        let mut x = q.x0();
        let options = MinimizeOptions::default().max_steps(100_000);
        let err = minimize(opt.as_mut(), &mut x, |p: &Vec<f64>| q.eval(p), &options).unwrap_err();
        match err {
            Error::Diverged { step: s, loss, reason, history } => {
                prop_assert_eq!(s, step);
                prop_assert!(!loss.is_finite(), "loss {}", loss);
                prop_assert_eq!(loss.to_bits(), r.values[step].to_bits());
                prop_assert!(reason.contains("non-finite"), "{}", reason);
                prop_assert_eq!(bits(history.losses()), bits(&r.values));
                prop_assert!(history.losses()[..step].iter().all(|v| v.is_finite()));
                prop_assert_eq!(history.steps(), step);
            }
            other => prop_assert!(false, "expected Diverged, got {:?}", other),
        }
        // The last finite iterate: x_{step-1}, whose value was finite.
        prop_assert_eq!(bits(&x), bits(&r.xs[step - 1]));
        prop_assert!(q.eval(&x).0.is_finite());
    }
}

/// The divergence threshold: stops at the first value above it, params at the
/// iterate before.
#[test]
fn divergence_threshold_stops_the_run() {
    let q = Quadratic { n: 5 };
    let lr = 5.0 / Quadratic::LAMBDA_MAX; // unstable for all three (HB needs lr λ < 3.4), slow to overflow
    for kind in [Kind::Gd, Kind::Hb, Kind::Nag] {
        let r = reference(&q, kind, lr, 2000);
        let threshold = 1e6 * r.values[0].abs();
        let step = r.values.iter().position(|&v| v > threshold).unwrap();
        assert!(step >= 2, "{kind:?}: {step}");
        let mut opt = build(kind, lr);
        let mut x = q.x0();
        let options = MinimizeOptions::default()
            .max_steps(2000)
            .divergence_threshold(threshold)
            .unwrap();
        match minimize(opt.as_mut(), &mut x, |p: &Vec<f64>| q.eval(p), &options).unwrap_err() {
            Error::Diverged {
                step: s,
                loss,
                reason,
                history,
            } => {
                assert_eq!(s, step);
                assert_eq!(loss, r.values[step]);
                assert!(loss.is_finite() && loss > threshold);
                assert!(reason.contains("threshold"), "{reason}");
                assert_eq!(bits(history.losses()), bits(&r.values[..=step]));
            }
            other => panic!("{other:?}"),
        }
        assert_eq!(bits(&x), bits(&r.xs[step - 1]));
    }
}

/// A non-finite value at the start: Diverged at step 0, params untouched.
/// A non-finite gradient (finite value) also counts as divergence.
#[test]
fn non_finite_start_or_gradient_diverges_immediately() {
    let mut opt = Nesterov::new(0.1, 0.9).unwrap();
    let mut x = vec![1.0, 2.0];
    let err = minimize(
        &mut opt,
        &mut x,
        |_: &Vec<f64>| (f64::NAN, vec![0.0, 0.0]),
        &MinimizeOptions::default(),
    )
    .unwrap_err();
    assert!(
        matches!(&err, Error::Diverged { step: 0, history, .. } if history.losses().len() == 1),
        "{err:?}"
    );
    assert_eq!(x, vec![1.0, 2.0]);

    // The gradient turns infinite at the third evaluation.
    let calls = Cell::new(0);
    let mut x = vec![1.0, 2.0];
    let err = minimize(
        &mut opt,
        &mut x,
        |p: &Vec<f64>| {
            calls.set(calls.get() + 1);
            let g = if calls.get() == 3 {
                vec![f64::INFINITY, 0.0]
            } else {
                p.clone()
            };
            (0.5 * (p[0] * p[0] + p[1] * p[1]), g)
        },
        &MinimizeOptions::default(),
    )
    .unwrap_err();
    match err {
        Error::Diverged { step, reason, .. } => {
            assert_eq!(step, 2);
            assert!(reason.contains("gradient"), "{reason}");
        }
        other => panic!("{other:?}"),
    }
    assert_eq!(calls.get(), 3);
}

/// The documented order of the rules: gradient tolerance before target value
/// before the iteration budget, when several hold at the same iterate.
#[test]
fn stopping_rules_are_checked_in_the_documented_order() {
    let q = Quadratic { n: 4 };
    let x0 = q.x0();
    let (v0, g0) = q.eval(&x0);
    let run = |options: MinimizeOptions| {
        let mut opt = GradientDescent::new(0.1).unwrap();
        let mut x = x0.clone();
        minimize(&mut opt, &mut x, |p: &Vec<f64>| q.eval(p), &options).unwrap()
    };
    let all = MinimizeOptions::default()
        .max_steps(0)
        .grad_tol(grad_norm(&g0))
        .unwrap()
        .target_loss(v0)
        .unwrap();
    assert_eq!(run(all.clone()).stop, Stop::GradientTolerance);
    assert_eq!(run(all.clone().grad_tol(0.0).unwrap()).stop, Stop::TargetLoss);
    let budget = run(all.grad_tol(0.0).unwrap().target_loss(v0 - 1.0).unwrap());
    assert_eq!(
        (budget.stop, budget.iterations, budget.values.len()),
        (Stop::MaxSteps, 0, 1)
    );
}

/// Invalid options: rejected before the objective is called, params and
/// optimizer untouched.
#[test]
fn invalid_options_are_rejected() {
    // Each option set out of range through its public field (the builders
    // refuse the same values at once, checked below).
    let with = |set: &dyn Fn(&mut MinimizeOptions)| {
        let mut o = MinimizeOptions::default();
        set(&mut o);
        o
    };
    let cases: Vec<(MinimizeOptions, &str, &str)> = vec![
        (with(&|o| o.grad_tol = Some(-1.0)), "grad_tol", "-1"),
        (with(&|o| o.grad_tol = Some(f64::NAN)), "grad_tol", "NaN"),
        (with(&|o| o.grad_tol = Some(f64::INFINITY)), "grad_tol", "inf"),
        (with(&|o| o.target_loss = Some(f64::NAN)), "target_loss", "NaN"),
        (with(&|o| o.divergence_factor = Some(1.0)), "divergence_factor", "1"),
        (
            with(&|o| o.divergence_threshold = Some(f64::NAN)),
            "divergence_threshold",
            "NaN",
        ),
    ];
    let d = MinimizeOptions::default;
    assert!(d().grad_tol(-1.0).is_err() && d().grad_tol(f64::NAN).is_err() && d().grad_tol(f64::INFINITY).is_err());
    assert!(d().target_loss(f64::NAN).is_err() && d().divergence_threshold(f64::NAN).is_err());
    assert!(d().divergence_factor(1.0).is_err() && d().divergence_factor(f64::NAN).is_err());
    for (options, name, value) in cases {
        let mut opt = HeavyBall::new(0.1, 0.9).unwrap();
        let state = Optimizer::<Vec<f64>>::state(&opt);
        let mut x = vec![1.0, 2.0];
        let calls = Cell::new(0);
        let err = minimize(
            &mut opt,
            &mut x,
            |p: &Vec<f64>| {
                calls.set(calls.get() + 1);
                (0.0, p.clone())
            },
            &options,
        )
        .unwrap_err();
        let msg = err.to_string();
        match err {
            Error::InvalidParameter { name: n, value: v, .. } => {
                assert_eq!((n, v.as_str()), (name, value), "{msg}");
            }
            other => panic!("{other:?}"),
        }
        assert!(msg.contains(name) && msg.contains(value), "{msg}");
        assert_eq!(calls.get(), 0, "objective called despite invalid options");
        assert_eq!(x, vec![1.0, 2.0]);
        assert_eq!(Optimizer::<Vec<f64>>::state(&opt), state);
    }
}

/// An optimizer error (here a gradient of the wrong length) is returned as
/// is, with params at the iterate where it happened.
#[test]
fn optimizer_errors_propagate() {
    let mut opt = Nesterov::new(0.1, 0.9).unwrap();
    let mut x = vec![1.0, 2.0];
    let err = minimize(
        &mut opt,
        &mut x,
        |_: &Vec<f64>| (1.0, vec![1.0; 3]),
        &MinimizeOptions::default(),
    )
    .unwrap_err();
    assert!(matches!(err, Error::ShapeMismatch { .. }), "{err:?}");
    assert_eq!(x, vec![1.0, 2.0]);
}
