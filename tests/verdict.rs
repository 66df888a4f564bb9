//! The prediction enclosure and the verdict: the band contains the measured
//! loss at every step (soundness, on networks near and far from the NTK
//! regime, every method, both parameterizations, f64 and f32), "holds"
//! implies the measured steps are within the tolerance, and the enclosure of
//! a run without drift is the linearized prediction itself.
#![cfg(feature = "full")]

use nalgebra::DMatrix;
use ntk_momentum::data::unit_sphere;
use ntk_momentum::ntk::eigendecomposition;
use ntk_momentum::theory::{self, Method, StepTolerance};
use ntk_momentum::{Float, GradientDescent, HeavyBall, Nesterov, Optimizer, Parameterization, Trainer, TwoLayerReLU};

mod support;

use support::SignDescent;

const LEVELS: [f64; 3] = [1e-1, 1e-2, 1e-4];

struct Case {
    n: usize,
    d: usize,
    m: usize,
    seed: u64,
    method: Method,
    lr_times_lambda_max: f64,
    momentum: f64,
    steps: usize,
    param: Parameterization,
}

fn optimizer<T: Float>(method: Method, lr: f64, beta: f64) -> Box<dyn Optimizer<DMatrix<T>> + Send> {
    match method {
        Method::GradientDescent => Box::new(GradientDescent::new(lr).unwrap()),
        Method::HeavyBall => Box::new(HeavyBall::new(lr, beta).unwrap()),
        Method::Nesterov => Box::new(Nesterov::new(lr, beta).unwrap()),
    }
}

/// Runs a case; returns (losses, records' loss bands, verdict).
fn run<T: Float>(c: &Case) -> (Vec<f64>, Vec<(f64, f64)>, theory::Verdict) {
    let (x, y) = unit_sphere::<T>(c.n, c.d, c.seed).unwrap();
    let model = TwoLayerReLU::<T>::init(c.d, c.m, c.seed + 100).unwrap();
    let (spectrum, _) = eigendecomposition(&model.ntk_gram(&x).unwrap()).unwrap();
    let lr = c.lr_times_lambda_max / spectrum.lambda_max;
    let mut trainer = Trainer::new(model, optimizer::<T>(c.method, lr, c.momentum))
        .max_steps(c.steps)
        .parameterization(c.param)
        .diagnostics_every(0)
        .enclose_prediction(true);
    let history = trainer.run(&x, &y).unwrap();
    let verdict = trainer.verdict(&LEVELS, StepTolerance::default()).unwrap();
    let bands = verdict.records().iter().map(|r| r.loss_band()).collect();
    (history.losses().to_vec(), bands, verdict)
}

fn check_sound(losses: &[f64], bands: &[(f64, f64)], slack: f64, what: &str) {
    assert_eq!(losses.len(), bands.len(), "{what}");
    for (t, (&l, &(lo, hi))) in losses.iter().zip(bands).enumerate() {
        assert!(
            l >= lo * (1.0 - slack) - 1e-300 && l <= hi * (1.0 + slack) + 1e-300,
            "{what}: step {t}: loss {l:e} outside [{lo:e}, {hi:e}]"
        );
    }
}

#[test]
fn band_contains_the_run_at_every_step() {
    let mut holds = 0;
    let mut total = 0;
    for (k, method) in Method::ALL.into_iter().enumerate() {
        for (d, m) in [(4, 256), (12, 1024), (30, 8192)] {
            for param in [Parameterization::Weight, Parameterization::Kernel] {
                let case = Case {
                    n: 12,
                    d,
                    m,
                    seed: 7 + k as u64,
                    method,
                    lr_times_lambda_max: 0.9,
                    momentum: 0.6,
                    steps: 150,
                    param,
                };
                let (losses, bands, verdict) = run::<f64>(&case);
                check_sound(&losses, &bands, 1e-10, &format!("{method} d={d} m={m} {param:?}"));
                total += 1;
                if verdict.holds() {
                    holds += 1;
                }
                for l in &verdict.levels {
                    if l.holds {
                        let measured = losses.iter().position(|&v| v <= l.level * losses[0]);
                        assert!(StepTolerance::default().agrees(l.predicted, measured), "{verdict}");
                    }
                }
                eprintln!("{method} d={d} m={m} {param:?}: {verdict}");
            }
        }
    }
    eprintln!("holds in {holds} of {total}");
}

#[test]
fn band_contains_f32_runs() {
    for method in Method::ALL {
        let case = Case {
            n: 12,
            d: 12,
            m: 1024,
            seed: 3,
            method,
            lr_times_lambda_max: 0.9,
            momentum: 0.6,
            steps: 120,
            param: Parameterization::Auto,
        };
        let (losses, bands, verdict) = run::<f32>(&case);
        // The f32 losses are accumulated in f64 from f32 outputs.
        check_sound(&losses, &bands, 1e-6, &format!("f32 {method}"));
        for l in &verdict.levels {
            if l.holds {
                let measured = losses.iter().position(|&v| v <= l.level * losses[0]);
                assert!(StepTolerance::default().agrees(l.predicted, measured), "{verdict}");
            }
        }
    }
}

/// Without drift (a linear model whose kernel stays H_0) the enclosure's
/// centre is the linearized prediction of `theory::predicted_losses`, and
/// its radius only the rounding allowance (64 ε per step, summed: below
/// 1e-10 ‖ξ_0‖ over 80 steps).
#[test]
fn enclosure_without_drift_is_the_prediction() {
    let x = DMatrix::from_fn(6, 3, |i, k| ((i * 3 + k) as f64 * 0.7).sin() + 0.1 * k as f64);
    let h0 = &x * x.transpose() + DMatrix::identity(6, 6) * 0.05;
    let xi0 = nalgebra::DVector::from_fn(6, |i, _| (i as f64 - 2.5) * 0.3);
    let (spectrum, v) = eigendecomposition(&h0).unwrap();
    for method in Method::ALL {
        let (lr, beta) = (0.9 / spectrum.lambda_max, 0.7);
        let predicted = theory::predicted_losses(method, lr, beta, &spectrum.eigenvalues, &v, &xi0, 80).unwrap();
        let mut e = theory::PredictionEnclosure::new(method, lr, beta, &h0, &xi0).unwrap();
        for _ in 0..80 {
            e.push(&h0, Some(&h0), &nalgebra::DVector::zeros(6)).unwrap();
        }
        for (t, (r, p)) in e.steps().iter().zip(&predicted).enumerate() {
            let l = r.predicted_loss();
            assert!(
                (l - p).abs() <= 1e-12 * predicted[0],
                "{method} step {t}: {l:e} vs {p:e}"
            );
            assert_eq!(r.deviation_norm, 0.0);
            assert!(
                r.radius <= 1e-10 * predicted[0].sqrt(),
                "{method} step {t}: radius {:e}",
                r.radius
            );
        }
    }
}

#[test]
fn verdict_refuses_what_it_cannot_certify() {
    let (x, y) = unit_sphere::<f64>(8, 6, 1).unwrap();
    let model = TwoLayerReLU::<f64>::init(6, 512, 2).unwrap();
    let message = |r: ntk_momentum::Result<theory::Verdict>| r.unwrap_err().to_string();
    let tol = StepTolerance::default();

    let mut off = Trainer::new(model.clone(), Nesterov::new(0.1, 0.5).unwrap()).max_steps(5);
    off.run(&x, &y).unwrap();
    assert!(message(off.verdict(&LEVELS, tol)).contains("enclose_prediction(true)"));

    let mut t = Trainer::new(model.clone(), Nesterov::new(0.1, 0.5).unwrap())
        .max_steps(5)
        .enclose_prediction(true);
    assert!(message(t.verdict(&LEVELS, tol)).contains("no run yet"));
    t.run(&x, &y).unwrap();
    assert!(t.verdict(&LEVELS, tol).is_ok());
    assert!(t.verdict(&[], tol).is_err(), "no level");
    assert!(t.verdict(&[1.5], tol).is_err(), "level above 1");
    assert!(t.verdict(&[0.0], tol).is_err(), "level 0");
    let bad = StepTolerance {
        relative: f64::NAN,
        steps: 2,
    };
    assert!(t.verdict(&LEVELS, bad).is_err(), "NaN tolerance");
    // Continued without the enclosure from step 0: refused with the reason.
    let mut resumed = t.enclose_prediction(false).enclose_prediction(true).max_steps(10);
    resumed.run(&x, &y).unwrap();
    assert!(message(resumed.verdict(&LEVELS, tol)).contains("not 0"));

    let mut custom = Trainer::new(model.clone(), SignDescent)
        .max_steps(5)
        .enclose_prediction(true);
    custom.run(&x, &y).unwrap();
    assert!(message(custom.verdict(&LEVELS, tol)).contains("sign_descent"));

    let schedule = ntk_momentum::Schedule::step_decay(0.1, 0.5, 2).unwrap();
    let mut scheduled = Trainer::new(model.clone(), Nesterov::with_schedules(schedule, 0.5).unwrap())
        .max_steps(5)
        .enclose_prediction(true);
    scheduled.run(&x, &y).unwrap();
    assert!(message(scheduled.verdict(&LEVELS, tol)).contains("changed during the run"));

    let mut diverging = Trainer::new(model, HeavyBall::new(1e3, 0.5).unwrap())
        .max_steps(50)
        .enclose_prediction(true);
    assert!(diverging.run(&x, &y).is_err());
    let m = message(diverging.verdict(&LEVELS, tol));
    assert!(m.contains("diverged") || m.contains("stable"), "{m}");
}

/// The width estimate at the run's own width is the verdict itself, and the
/// width it asks for is where the estimate says every level holds.
#[test]
fn width_estimate_is_consistent() {
    let case = Case {
        n: 12,
        d: 12,
        m: 1024,
        seed: 5,
        method: Method::HeavyBall,
        lr_times_lambda_max: 0.9,
        momentum: 0.6,
        steps: 120,
        param: Parameterization::Auto,
    };
    let (_, _, verdict) = run::<f64>(&case);
    assert_eq!(verdict.expected_at_width(1024).unwrap(), verdict.levels);
    assert!(verdict.expected_at_width(0).is_err());
    if let Some(w) = verdict.width_needed() {
        assert!(verdict.expected_at_width(w).unwrap().iter().all(|l| l.holds));
        if verdict.holds() {
            assert!(w <= 1024);
        }
    }
    for l in &verdict.levels {
        if let Some(w) = verdict.width_needed_at(l.level) {
            let i = verdict.levels.iter().position(|v| v.level == l.level).unwrap();
            assert!(verdict.expected_at_width(w).unwrap()[i].holds);
        }
    }
}
