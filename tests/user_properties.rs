//! Convergence properties written as a user of the crate would write them,
//! with the public API of `ntk_momentum::testing` only (feature `proptest`).
#![cfg(feature = "proptest")]

use std::cell::RefCell;

use ntk_momentum::ntk::Spectrum;
use ntk_momentum::testing::{
    hyperparameters, least_squares, quadratics, race, relu_problems, Certificate, Contestant, DampingRegion, Layout,
    Quadratic,
};
use ntk_momentum::theory::{Method, ModalResidual};
use ntk_momentum::{Error, GradientDescent, HeavyBall, Nesterov, Optimizer, Trainer};
use proptest::prelude::*;
use proptest::test_runner::{Config, TestRunner};

fn optimizer(method: Method, lr: f64, momentum: f64) -> Box<dyn Optimizer<Vec<f64>>> {
    match method {
        Method::GradientDescent => Box::new(GradientDescent::new(lr).unwrap()),
        Method::HeavyBall => Box::new(HeavyBall::new(lr, momentum).unwrap()),
        Method::Nesterov => Box::new(Nesterov::new(lr, momentum).unwrap()),
    }
}

fn runner(cases: u32) -> TestRunner {
    TestRunner::new(Config {
        cases,
        failure_persistence: None,
        ..Config::default()
    })
}

/// A random quadratic (κ in [1, 1e6], dimension 1–64, any layout) with
/// (η, β) anywhere in `method`'s stable region, half of them exactly
/// critical at λ_min.
fn quadratic_case(method: Method, max_kappa: f64, max_dim: usize) -> impl Strategy<Value = (Quadratic, (f64, f64))> {
    prop_oneof![Just(Layout::Uniform), Just(Layout::Clustered), Just(Layout::PowerLaw)]
        .prop_flat_map(move |layout| quadratics(1.0..=max_kappa, 1..=max_dim, layout))
        .prop_flat_map(move |q| {
            let h = hyperparameters(method, q.lambda_min(), q.lambda_max(), DampingRegion::Any);
            (Just(q), h)
        })
}

/// The default run: κ ≤ 1e6, dimension ≤ 64, t ≤ 2,000.
const DEFAULT: Size = Size {
    max_kappa: 1e6,
    max_dim: 64,
    steps: 2000,
};

/// What a certificate property covers.
#[derive(Clone, Copy)]
struct Size {
    max_kappa: f64,
    max_dim: usize,
    steps: usize,
}

/// Soundness and tightness of the certificate over t ≤ 2,000:
/// - the run from a random start (every mode present) never exceeds
///   C_t ρᵗ ‖ξ_0‖;
/// - started on the mode whose bound is largest at the last step above the
///   floor, the run comes within a factor 2 of the bound at some t ≥ 1.
///
/// Returns (cases, smallest tightness, cases with no step t ≥ 1 above the
/// floor, critical cases).
fn certificate_property(method: Method, cases: u32, size: Size) -> (u32, f64, u32) {
    let steps = size.steps;
    let stats = RefCell::new((f64::INFINITY, 0u32));
    let strategy = quadratic_case(method, size.max_kappa, size.max_dim);
    let result = runner(cases).run(&strategy, |(q, (lr, beta))| {
        let certificate = Certificate::new(method, lr, beta, &q.eigenvalues)?;
        let norms = q.error_norms(&mut optimizer(method, lr, beta), steps)?;
        let check = certificate.check_norms(&norms, steps)?;
        prop_assert!(
            check.holds(),
            "{method:?} lr {lr} beta {beta} {:?}: {check}",
            q.eigenvalues
        );
        // The mode whose own certificate is largest late in the run.
        let late = (0..=steps)
            .rev()
            .find(|&t| certificate.bound(t) > ntk_momentum::testing::CHECK_FLOOR)
            .unwrap_or(0);
        let k = (0..q.eigenvalues.len())
            .max_by(|&i, &j| {
                let b = |i: usize| {
                    Certificate::new(method, lr, beta, &q.eigenvalues[i..=i])
                        .unwrap()
                        .bound(late)
                };
                b(i).total_cmp(&b(j))
            })
            .unwrap();
        let single = Quadratic {
            eigenvalues: vec![q.eigenvalues[k]],
            start: vec![1.0],
        };
        let norms = single.error_norms(&mut optimizer(method, lr, beta), steps)?;
        let tight = certificate.check_norms(&norms, steps)?;
        prop_assert!(tight.holds(), "single mode: {tight}");
        let mut s = stats.borrow_mut();
        if tight.steps_checked <= 1 {
            // Every bound at t >= 1 is below the floor (e.g. GD at eta lambda = 1
            // on kappa = 1): nothing to be loose about.
            s.1 += 1;
        } else {
            prop_assert!(
                tight.tightness >= 0.5,
                "{method:?} lr {lr} beta {beta} mode {k} of {:?}: {tight}",
                q.eigenvalues
            );
            s.0 = s.0.min(tight.tightness);
        }
        Ok(())
    });
    if let Err(e) = result {
        panic!("{method:?}: {e}");
    }
    let (min, trivial) = *stats.borrow();
    println!("[measured] {method:?} certificate: {cases} cases, kappa <= {:e}, dimension <= {}, t <= {steps}: holds on all; smallest tightness {min:.4}; {trivial} cases below the floor from t = 1", size.max_kappa, size.max_dim);
    (cases, min, trivial)
}

// 10,000 cases in all: 3,334 + 3,333 + 3,333.
#[test]
fn certificate_holds_and_is_tight_for_nesterov() {
    certificate_property(Method::Nesterov, 3334, DEFAULT);
}

#[test]
fn certificate_holds_and_is_tight_for_heavy_ball() {
    certificate_property(Method::HeavyBall, 3333, DEFAULT);
}

#[test]
fn certificate_holds_and_is_tight_for_gradient_descent() {
    certificate_property(Method::GradientDescent, 3333, DEFAULT);
}

/// The heavier variant (run by hand, reported in the closing note):
/// 3 × 1,000 cases, κ ≤ 1e8, dimension ≤ 256, t ≤ 10,000.
#[test]
#[ignore = "heavy: about 7 minutes on one core"]
fn certificate_holds_and_is_tight_heavy() {
    let size = Size {
        max_kappa: 1e8,
        max_dim: 256,
        steps: 10_000,
    };
    for method in [Method::Nesterov, Method::HeavyBall, Method::GradientDescent] {
        certificate_property(method, 1_000, size);
    }
}

/// NAG's (η, β) for `spectrum` in `region`.
fn nesterov_for(spectrum: &Spectrum, region: DampingRegion) -> impl Strategy<Value = (f64, f64)> {
    hyperparameters(Method::Nesterov, spectrum.lambda_min, spectrum.lambda_max, region)
}

/// Least squares: the residual r_t = A x_t − b follows the certificate of
/// the spectrum of A Aᵀ, for NAG critically damped at λ_min.
#[test]
fn least_squares_residuals_obey_the_certificate() {
    let strategy =
        least_squares(1..=12, 1..=20).prop_flat_map(|p| (nesterov_for(&p.spectrum, DampingRegion::Critical), Just(p)));
    runner(256)
        .run(&strategy, |((lr, beta), p)| {
            // r = A x - b carries an absolute rounding error ~eps ||b||.
            let certificate =
                Certificate::new(Method::Nesterov, lr, beta, &p.spectrum.eigenvalues)?.with_floor(1e-10)?;
            let norms = p.residual_norms(&mut Nesterov::new(lr, beta)?, 500)?;
            let check = certificate.check_norms(&norms, 500)?;
            // A A^T is formed in floating point: its computed eigenvalues are
            // off by ~n eps lambda_max, so the run is compared with slack.
            prop_assert!(check.violation.is_none_or(|v| v.margin() < 1e-3), "{check}");
            Ok(())
        })
        .unwrap();
}

/// "NAG reaches 1e-12 of L_0 no later than HB at the same (η, β)" is false
/// for some spectra and tunings (κ = 71.5 was the first counterexample).
/// The race decides which cases the claim covers; on those it holds for the
/// runs, and on the others its negation holds.
#[test]
fn nag_no_slower_than_hb_exactly_where_the_race_says() {
    let strategy = quadratics(1.0..=1e3, 1..=16, Layout::Uniform).prop_flat_map(|q| {
        let h = hyperparameters(Method::HeavyBall, q.lambda_min(), q.lambda_max(), DampingRegion::Any);
        (Just(q), h)
    });
    let counts = RefCell::new([0u32; 3]);
    runner(512)
        .run(&strategy, |(q, (lr, beta))| {
            // Same (eta, beta) for both; NAG's stable region is smaller.
            prop_assume!(Certificate::new(Method::Nesterov, lr, beta, &q.eigenvalues).is_ok());
            let residual = ModalResidual::from_coordinates(q.eigenvalues.clone(), q.start.clone())?;
            let budget = 20_000;
            let r = race(
                &residual,
                Contestant::new(Method::Nesterov, lr, beta),
                Contestant::new(Method::HeavyBall, lr, beta),
                1e-12,
                budget,
            )?;
            let Some(claim) = r.first_no_slower() else {
                counts.borrow_mut()[2] += 1;
                return Ok(());
            };
            let measured = |m: Method| -> Result<Option<usize>, Error> {
                let norms = q.error_norms(&mut optimizer(m, lr, beta), budget)?;
                Ok(norms.iter().position(|n| n * n <= 1e-12 * norms[0] * norms[0]))
            };
            let (nag, hb) = (measured(Method::Nesterov)?, measured(Method::HeavyBall)?);
            prop_assert_eq!((nag, hb), (r.first, r.second));
            counts.borrow_mut()[usize::from(!claim)] += 1;
            Ok(())
        })
        .unwrap();
    let [yes, no, undecided] = *counts.borrow();
    println!("[measured] NAG no slower than HB to 1e-12 at the same (eta, beta): true in {yes}, false in {no}, undecided {undecided} cases");
    assert!(
        no > 0,
        "the property is not true everywhere: the race must find counterexamples"
    );
}

/// The two-layer network (m = 8192, n <= 6): where the regime verdict of
/// `theory::regime` (tolerance 0.1) says the run is in the NTK regime (even
/// this wide, lambda_min of H(W_t) can move by 25 % and the verdict then
/// says "out"), its losses follow the certificate of H(W_0) relaxed by the same
/// tolerance, down to a norm ratio of 1e-3 (a loss ratio of 1e-6).
#[test]
fn wide_relu_network_follows_the_regime_certificate() {
    let strategy = relu_problems(3..=6, 3..=8, 8192..=8192)
        .prop_flat_map(|p| (nesterov_for(&p.spectrum, DampingRegion::Underdamped), Just(p)));
    let counts = RefCell::new([0u32; 2]);
    runner(32)
        .run(&strategy, |((lr, beta), p)| {
            let mut trainer = Trainer::new(p.model.clone(), Nesterov::new(lr, beta)?).max_steps(200);
            let history = trainer.run(&p.x, &p.y)?;
            let (spectrum, vectors) = ntk_momentum::ntk::eigendecomposition(&p.model.ntk_gram(&p.x)?)?;
            let xi0 = p.model.forward(&p.x)? - &p.y;
            let predicted = ntk_momentum::theory::predicted_losses(
                Method::Nesterov,
                lr,
                beta,
                &spectrum.eigenvalues,
                &vectors,
                &xi0,
                200,
            )?;
            let verdict = ntk_momentum::theory::regime(Method::Nesterov, lr, beta, &history, &predicted, 0.1)?;
            if !verdict.in_regime {
                counts.borrow_mut()[1] += 1;
                return Ok(());
            }
            counts.borrow_mut()[0] += 1;
            let certificate = Certificate::new(Method::Nesterov, lr, beta, &p.spectrum.eigenvalues)?
                .with_regime_tolerance(0.1)?
                .with_floor(1e-3)?;
            let check = certificate.certify(&history)?;
            prop_assert!(
                check.holds(),
                "n {} lambda {:?} lr {lr} beta {beta}: {check}",
                p.x.nrows(),
                p.spectrum.eigenvalues
            );
            Ok(())
        })
        .map_err(|e| e.to_string().chars().take(2000).collect::<String>())
        .unwrap();
    let [inside, outside] = *counts.borrow();
    println!("[measured] wide ReLU (m = 8192): {inside} runs in the regime follow the relaxed certificate; {outside} outside it");
}

/// Bad input to the certificates is an error naming the argument.
#[test]
fn certificates_refuse_bad_input() {
    let cases: Vec<(Result<Certificate, Error>, &str)> = vec![
        (Certificate::new(Method::Nesterov, 0.1, 0.5, &[]), "eigenvalues"),
        (
            Certificate::new(Method::Nesterov, 0.1, 0.5, &[1.0, f64::NAN]),
            "eigenvalue",
        ),
        (Certificate::new(Method::HeavyBall, 5.0, 0.5, &[1.0]), "stable region"),
        (Certificate::new(Method::HeavyBall, 0.5, 1.0, &[1.0]), "momentum"),
        (
            Certificate::new(Method::HeavyBall, 0.5, 0.5, &[0.0, 1.0]),
            "stable region",
        ),
        (
            Certificate::new(Method::Nesterov, 0.1, 0.5, &[1.0]).and_then(|c| c.with_regime_tolerance(1.5)),
            "tolerance",
        ),
    ];
    for (result, what) in cases {
        let err = result.unwrap_err();
        assert!(err.to_string().contains(what), "{err} should name {what}");
    }
    let c = Certificate::new(Method::Nesterov, 0.5, 0.5, &[1.0]).unwrap();
    assert!(c
        .check_norms(&[1.0, 0.5], 5)
        .unwrap_err()
        .to_string()
        .contains("at least steps + 1"));
    assert!(c
        .check_norms(&[0.0, 0.0], 1)
        .unwrap_err()
        .to_string()
        .contains("initial norm"));
    assert!(c.check(&[1.0, f64::NAN], 1).unwrap_err().to_string().contains("losses"));
    // A diverged run is a violation, not an error.
    let check = c.check_norms(&[1.0, f64::INFINITY], 1).unwrap();
    assert_eq!(check.violation.map(|v| v.step), Some(1));
}
