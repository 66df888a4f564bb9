//! Issue test: in the NTK regime the measured convergence rates of heavy ball
//! and Nesterov match the prediction from the spectrum of H(W_0), and the
//! kernel moves less for wider networks.
#![cfg(feature = "full")]

use nalgebra::{DMatrix, DVector};
use ntk_momentum::ntk::Spectrum;
use ntk_momentum::theory::{self, Method};
use ntk_momentum::train::{Parameterization, Trainer};
use ntk_momentum::{HeavyBall, Nesterov, Optimizer, TwoLayerReLU};
use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;
use rand_distr::{Distribution, StandardNormal};

/// n points uniform on the unit sphere of R^d, labels ±1.
fn problem(n: usize, d: usize, seed: u64) -> (DMatrix<f64>, DVector<f64>) {
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    let mut x = DMatrix::<f64>::from_fn(n, d, |_, _| StandardNormal.sample(&mut rng));
    for mut row in x.row_iter_mut() {
        let norm = row.norm();
        row /= norm;
    }
    let y = DVector::from_fn(n, |i, _| {
        if (i * 7 + seed as usize).is_multiple_of(3) {
            1.0
        } else {
            -1.0
        }
    });
    (x, y)
}

struct Outcome {
    relative_gap: f64,
    final_drift: f64,
}

fn train<O: Optimizer<DMatrix<f64>>>(optimizer: O, method: Method, m: usize, seed: u64, momentum: f64) -> Outcome {
    let (x, y) = problem(50, 20, seed);
    let model = TwoLayerReLU::new(20, m, seed + 100).unwrap();
    let spectrum = Spectrum::of(&model.ntk_gram(&x).unwrap()).unwrap();
    let lr = 1.0 / spectrum.lambda_max;
    let predicted = theory::rate(method, lr, momentum, &spectrum.eigenvalues).unwrap();
    let mut trainer = Trainer::new(model, optimizer)
        .max_steps(3000)
        .target_relative_loss(1e-13)
        .unwrap()
        .parameterization(Parameterization::Kernel)
        .diagnostics_every(50);
    let history = trainer.run(&x, &y).unwrap();
    let fit = theory::measured_rate(history.losses(), 1e-2, 1e-12).unwrap();
    let relative_gap = ((1.0 - fit.rate) - (1.0 - predicted)).abs() / (1.0 - predicted);
    let final_drift = history.diagnostics().last().unwrap().ntk_drift.unwrap();
    eprintln!(
        "{method:?} m={m} seed={seed}: predicted rate {predicted:.5}, measured {:.5} over steps {:?}, \
         exponent gap {:.2}%, final NTK drift {final_drift:.2e}",
        fit.rate,
        fit.window,
        100.0 * relative_gap
    );
    Outcome {
        relative_gap,
        final_drift,
    }
}

fn lr_for(m: usize, seed: u64) -> f64 {
    let (x, _) = problem(50, 20, seed);
    let model = TwoLayerReLU::<f64>::new(20, m, seed + 100).unwrap();
    1.0 / Spectrum::of(&model.ntk_gram(&x).unwrap()).unwrap().lambda_max
}

#[test]
fn measured_rates_match_the_ntk_prediction() {
    let momentum = 0.9;
    let seeds = [1u64, 2, 3];
    for method in [Method::HeavyBall, Method::Nesterov] {
        let mut gaps = Vec::new();
        for &seed in &seeds {
            let lr = lr_for(16384, seed);
            let outcome = match method {
                Method::HeavyBall => train(HeavyBall::new(lr, momentum).unwrap(), method, 16384, seed, momentum),
                _ => train(Nesterov::new(lr, momentum).unwrap(), method, 16384, seed, momentum),
            };
            gaps.push(outcome.relative_gap);
        }
        let mean = gaps.iter().sum::<f64>() / gaps.len() as f64;
        assert!(mean <= 0.10, "{method:?}: mean exponent gap {:.1}% > 10%", 100.0 * mean);
    }
}

#[test]
fn ntk_drift_shrinks_with_width() {
    let (momentum, seed) = (0.9, 1);
    let drift = |m: usize| {
        let lr = lr_for(m, seed);
        train(
            Nesterov::new(lr, momentum).unwrap(),
            Method::Nesterov,
            m,
            seed,
            momentum,
        )
        .final_drift
    };
    let (narrow, wide) = (drift(256), drift(16384));
    assert!(
        wide < narrow,
        "drift at m=16384 ({wide:e}) should be below m=256 ({narrow:e})"
    );
}
