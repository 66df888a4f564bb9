//! Tests of the acceleration instrument: predicted steps to loss levels
//! against a brute-force 2n × 2n companion-matrix iteration, the best
//! tuning against a brute-force grid, the regime verdict against its own
//! definition and the dense spectrum, and the Lanczos extremes against a
//! dense eigen-solver.
#![cfg(feature = "full")]

mod support;

use nalgebra::{DMatrix, DVector};
use ntk_momentum::ntk::{eigendecomposition, extreme_eigenvalues, Spectrum};
use ntk_momentum::theory::{self, best_tuning, max_stable_lr, Method, ModalResidual};
use ntk_momentum::{HeavyBall, Nesterov, Optimizer, Trainer, TwoLayerReLU};
use proptest::prelude::*;
use support::{labels, unit_rows};

/// A random orthonormal n × n matrix (QR of a seeded matrix).
fn orthonormal(n: usize, seed: u64) -> DMatrix<f64> {
    let mut s = seed.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
    let a = DMatrix::from_fn(n, n, |_, _| {
        s = s.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
        (s >> 11) as f64 / (1u64 << 53) as f64 - 0.5
    });
    a.qr().q()
}

/// Losses ½‖ξ_t‖², t = 0..=steps, of the linearized dynamics iterated in
/// the original basis with the block companion matrix
/// [[A, −B], [I, 0]] on (ξ_t, ξ_{t−1}), after the optimizers' explicit
/// first step (HB, GD: ξ_1 = (I − ηH) ξ_0; NAG: ξ_1 = (I − (1 + β)ηH) ξ_0).
fn brute_force_losses(
    method: Method,
    lr: f64,
    beta: f64,
    h: &DMatrix<f64>,
    xi0: &DVector<f64>,
    steps: usize,
) -> Vec<f64> {
    let n = h.nrows();
    let id = DMatrix::<f64>::identity(n, n);
    let (a, b, first) = match method {
        Method::GradientDescent => (&id - h * lr, DMatrix::zeros(n, n), &id - h * lr),
        Method::HeavyBall => (&id * (1.0 + beta) - h * lr, &id * beta, &id - h * lr),
        Method::Nesterov => (
            (&id - h * lr) * (1.0 + beta),
            (&id - h * lr) * beta,
            &id - h * (lr * (1.0 + beta)),
        ),
    };
    let mut m = DMatrix::zeros(2 * n, 2 * n);
    m.view_mut((0, 0), (n, n)).copy_from(&a);
    m.view_mut((0, n), (n, n)).copy_from(&(-b));
    m.view_mut((n, 0), (n, n)).copy_from(&id);
    let mut state = DVector::zeros(2 * n);
    state.rows_mut(0, n).copy_from(&(&first * xi0));
    state.rows_mut(n, n).copy_from(xi0);
    let mut losses = vec![0.5 * xi0.norm_squared()];
    for _ in 0..steps {
        losses.push(0.5 * state.rows(0, n).norm_squared());
        state = &m * state;
    }
    losses
}

fn first_below(losses: &[f64], target: f64) -> Option<usize> {
    losses.iter().position(|&l| l <= target)
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 48, ..ProptestConfig::default() })]

    /// ModalResidual::steps_to equals the first crossing of the brute-force
    /// trajectory (or the two differ only where the loss is within 1e-9 of
    /// the level, a rounding tie).
    #[test]
    fn steps_to_levels_match_the_companion_matrix(
        n in 2usize..12,
        seed in 0u64..1000,
        kappa_log in 0.0f64..3.0,
        x in 0.05f64..1.9,
        beta in 0.0f64..0.97,
        method in prop::sample::select(Method::ALL.to_vec()),
        level_log in -8.0f64..-0.5,
    ) {
        let kappa = 10f64.powf(kappa_log);
        let eigenvalues: Vec<f64> = (0..n).map(|k| kappa.powf(-(k as f64) / (n - 1) as f64)).collect();
        let v = orthonormal(n, seed);
        let h = &v * DMatrix::from_diagonal(&DVector::from_vec(eigenvalues.clone())) * v.transpose();
        let xi0 = DVector::from_fn(n, |i, _| ((i as f64 + 1.0) * (seed as f64 + 0.5)).sin());
        let limit = max_stable_lr(method, beta, 1.0).unwrap();
        let lr = (x / 2.0 * limit).min(0.95 * limit);
        let beta = if method == Method::GradientDescent { 0.0 } else { beta };
        let residual = ModalResidual::project(&eigenvalues, &v, &xi0).unwrap();
        let level = 10f64.powf(level_log);
        let budget = 400;
        let predicted = residual.steps_to(method, lr, beta, level, budget).unwrap();
        let losses = brute_force_losses(method, lr, beta, &h, &xi0, budget);
        let target = level * losses[0];
        let brute = first_below(&losses, target);
        if predicted != brute {
            // Only a rounding tie may separate them.
            for t in [predicted, brute].into_iter().flatten() {
                prop_assert!((losses[t] - target).abs() <= 1e-9 * target,
                    "predicted {predicted:?}, brute force {brute:?}, loss {} vs target {target}", losses[t]);
            }
        }
        // The split adds up and the rate-only part is ln(level) / (2 ln rho).
        let p = residual.step_prediction(method, lr, beta, level, budget).unwrap();
        let rho = theory::rate(method, lr, beta, &eigenvalues).unwrap();
        prop_assert_eq!(p.steps, predicted);
        if rho > 0.0 && rho < 1.0 {
            let asym = 0.5 * level.ln() / rho.ln();
            prop_assert!((p.asymptotic_steps.unwrap() - asym).abs() <= 1e-12 * asym);
            if let Some(s) = predicted {
                prop_assert!((p.transient_steps.unwrap() - (s as f64 - asym)).abs() <= 1e-9 * asym.max(1.0));
            }
        }
        prop_assert!((0.0..=1.0 + 1e-12).contains(&p.stiff_share));
        // The predicted losses are the same recursion.
        let from_residual = residual.losses(method, lr, beta, 50).unwrap();
        for (a, b) in from_residual.iter().zip(&losses) {
            prop_assert!((a - b).abs() <= 1e-9 * losses[0]);
        }
    }
}

/// The best tuning is at least as good as every point of an independent
/// 80 × 80 grid over the same region (ηλ_max up to 90 % of the limit,
/// β ≤ 0.999), within one step, and respects the stability margin.
#[test]
fn best_tuning_beats_a_brute_force_grid() {
    let n = 24;
    let eigenvalues: Vec<f64> = (0..n).map(|k| 100f64.powf(-(k as f64) / (n - 1) as f64)).collect();
    let coordinates: Vec<f64> = (0..n).map(|k| 1.0 + (k as f64).cos()).collect();
    let residual = ModalResidual::from_coordinates(eigenvalues.clone(), coordinates).unwrap();
    let margin = 0.1;
    for method in Method::ALL {
        for level in [1e-2, 1e-6] {
            let budget = 2000;
            let best = best_tuning(method, &residual, level, budget, margin).unwrap();
            let limit = max_stable_lr(method, best.momentum, 1.0).unwrap();
            assert!(best.lr <= (1.0 - margin) * limit * (1.0 + 1e-12), "{best:?}");
            assert!(best.rate < 1.0 && best.momentum <= 0.999);
            let steps = best.steps.expect("reached");
            assert_eq!(
                residual
                    .steps_to(method, best.lr, best.momentum, level, budget)
                    .unwrap(),
                Some(steps)
            );
            let mut grid_best = usize::MAX;
            let betas: Vec<f64> = if method == Method::GradientDescent {
                vec![0.0]
            } else {
                (0..80).map(|i| 0.999 * i as f64 / 79.0).collect()
            };
            for &beta in &betas {
                let limit = max_stable_lr(method, beta, 1.0).unwrap();
                for j in 1..=80 {
                    let lr = (1.0 - margin) * limit * j as f64 / 80.0;
                    if let Some(s) = residual.steps_to(method, lr, beta, level, budget).unwrap() {
                        grid_best = grid_best.min(s);
                    }
                }
            }
            assert!(
                steps <= grid_best + 1,
                "{method} to {level:e}: search {steps} steps, brute-force grid {grid_best}"
            );
        }
    }
}

/// Lanczos extremes agree with the dense spectrum of an NTK Gram matrix
/// (n = 400 > the dense cut-off): λ_max to 1e-9, λ_min to 1e-7 relative.
#[test]
fn extreme_eigenvalues_match_the_dense_spectrum() {
    let x = unit_rows(400, 30, 3);
    let model = TwoLayerReLU::new(30, 512, 4).unwrap();
    let h = model.ntk_gram(&x).unwrap();
    let dense = Spectrum::of(&h).unwrap();
    let e = extreme_eigenvalues(&h).unwrap();
    assert!(
        (e.lambda_max / dense.lambda_max - 1.0).abs() < 1e-9,
        "{e:?} vs {dense:?}"
    );
    assert!(
        (e.lambda_min / dense.lambda_min - 1.0).abs() < 1e-7,
        "{e:?} vs {}",
        dense.lambda_min
    );
    // And the refusals of the shared checks.
    assert!(extreme_eigenvalues(&DMatrix::<f64>::zeros(2, 3)).is_err());
    let mut bad = DMatrix::<f64>::identity(3, 3);
    bad[(1, 1)] = f64::NAN;
    assert!(extreme_eigenvalues(&bad).is_err());
}

/// The trainer records λ_min and λ_max of H(W_t); they equal the dense
/// spectrum of the Gram matrix of the final network, and the verdict is
/// what its definition says on those numbers.
#[test]
fn regime_verdict_follows_its_definition() {
    let (n, d, m) = (12, 6, 2048);
    let x = unit_rows(n, d, 5);
    let y = labels(n, 6);
    let model = TwoLayerReLU::new(d, m, 7).unwrap();
    let (spectrum, v) = eigendecomposition(&model.ntk_gram(&x).unwrap()).unwrap();
    let lr = 1.0 / spectrum.lambda_max;
    for (method, beta) in [(Method::HeavyBall, 0.8), (Method::Nesterov, 0.8)] {
        let xi0 = model.forward(&x).unwrap() - &y;
        let steps = 120;
        let predicted = theory::predicted_losses(method, lr, beta, &spectrum.eigenvalues, &v, &xi0, steps).unwrap();
        let optimizer: Box<dyn Optimizer<DMatrix<f64>> + Send> = match method {
            Method::HeavyBall => Box::new(HeavyBall::new(lr, beta).unwrap()),
            _ => Box::new(Nesterov::new(lr, beta).unwrap()),
        };
        let mut trainer = Trainer::new(model.clone(), optimizer)
            .max_steps(steps)
            .diagnostics_every(30);
        let history = trainer.run(&x, &y).unwrap();
        let last = history.diagnostics().last().unwrap().clone();
        assert_eq!(last.step, steps);
        let final_spectrum = Spectrum::of(&trainer.model().ntk_gram(&x).unwrap()).unwrap();
        assert!((last.ntk_lambda_min.unwrap() / final_spectrum.lambda_min - 1.0).abs() < 1e-9);
        assert!((last.ntk_lambda_max.unwrap() / final_spectrum.lambda_max - 1.0).abs() < 1e-9);
        let first = &history.diagnostics()[0];
        assert!((first.ntk_lambda_min.unwrap() / spectrum.lambda_min - 1.0).abs() < 1e-9);

        let verdict = theory::regime(method, lr, beta, &history, &predicted, 0.1).unwrap();
        assert_eq!(verdict.exponents.len(), history.diagnostics().len());
        let e0 = verdict.exponents[0].3;
        let mut worst = 0.0_f64;
        for (d, &(step, lo, hi, e)) in history.diagnostics().iter().zip(&verdict.exponents) {
            assert_eq!(step, d.step);
            let rho = theory::rate(method, lr, beta, &[lo, hi]).unwrap();
            assert_eq!(e, 1.0 - rho);
            worst = worst.max(((e - e0) / e0).abs());
        }
        assert_eq!(verdict.worst_exponent_change.0.abs(), worst);
        assert_eq!(verdict.in_regime, worst <= 0.1);
        // A tolerance outside (0, 1) and a history without the NTK are refused.
        assert!(theory::regime(method, lr, beta, &history, &predicted, 0.0).is_err());
        let mut untracked = Trainer::new(model.clone(), HeavyBall::new(lr, beta).unwrap())
            .max_steps(5)
            .track_ntk_drift(false);
        let h2 = untracked.run(&x, &y).unwrap();
        assert!(theory::regime(method, lr, beta, &h2, &predicted, 0.1).is_err());
    }
}

/// The split in numbers on a two-mode problem with 99 % of L_0 on the stiff
/// mode: at ηλ = 1 both methods remove it within two steps, far sooner than
/// the asymptotic rate alone says.
#[test]
fn transient_of_the_stiff_modes() {
    let r = ModalResidual::from_coordinates(vec![1.0, 0.01], vec![0.99_f64.sqrt(), 0.1]).unwrap();
    let nag = r.step_prediction(Method::Nesterov, 1.0, 0.8, 1e-2, 1000).unwrap();
    let hb = r.step_prediction(Method::HeavyBall, 1.0, 0.8, 1e-2, 1000).unwrap();
    // HB's first step (1 − ηλ) c_0 removes the stiff mode at once; NAG's
    // first step (1 − (1 + β)ηλ) c_0 overshoots, and its second removes it.
    assert_eq!((hb.steps, nag.steps), (Some(1), Some(2)), "{hb}; {nag}");
    assert!(nag.transient_steps.unwrap() < -15.0 && hb.transient_steps.unwrap() < -15.0);
    // Bad input.
    assert!(r.steps_to(Method::Nesterov, 1.0, 0.8, 0.0, 10).is_err());
    assert!(r.steps_to(Method::Nesterov, -1.0, 0.8, 0.1, 10).is_err());
    assert!(ModalResidual::from_coordinates(vec![1.0], vec![1.0, 2.0]).is_err());
    assert!(ModalResidual::from_coordinates(vec![], vec![]).is_err());
    assert!(ModalResidual::from_coordinates(vec![1.0], vec![f64::NAN]).is_err());
    assert!(best_tuning(Method::HeavyBall, &r, 1.5, 10, 0.1).is_err());
    assert!(best_tuning(Method::HeavyBall, &r, 0.1, 0, 0.1).is_err());
    assert!(best_tuning(Method::HeavyBall, &r, 0.1, 10, 1.0).is_err());
}

/// A non-symmetric matrix is refused by the spectral functions (it used to be
/// symmetrised silently: [[1, 5], [-5, 1]] gave eigenvalues [1, 1]); rounding
/// asymmetry below √ε is accepted.
#[test]
fn spectral_functions_refuse_non_symmetric_matrices() {
    use ntk_momentum::ntk::asymmetry_tolerance;
    let skew = DMatrix::from_row_slice(2, 2, &[1.0_f64, 5.0, -5.0, 1.0]);
    for err in [
        Spectrum::of(&skew).unwrap_err(),
        eigendecomposition(&skew).unwrap_err(),
        extreme_eigenvalues(&skew).unwrap_err(),
    ] {
        let text = err.to_string();
        assert!(text.contains("Gram matrix") && text.contains("non-symmetric"), "{text}");
    }
    let tol = asymmetry_tolerance::<f64>();
    let nearly = DMatrix::from_row_slice(2, 2, &[2.0_f64, 1.0 + 0.5 * tol, 1.0, 2.0]);
    let s = Spectrum::of(&nearly).unwrap();
    assert!((s.lambda_max - 3.0).abs() < 1e-7 && (s.lambda_min - 1.0).abs() < 1e-7);
    let beyond = DMatrix::from_row_slice(2, 2, &[2.0_f64, 1.0 + 4.0 * tol, 1.0, 2.0]);
    assert!(Spectrum::of(&beyond).is_err());
    // f32 Gram matrices of the model pass.
    let x = unit_rows(30, 8, 1).map(|v| v as f32);
    let model = TwoLayerReLU::<f32>::init(8, 256, 2).unwrap();
    assert!(Spectrum::of(&model.ntk_gram(&x).unwrap()).is_ok());
}
