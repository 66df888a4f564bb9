//! The drift certificate on random drifting kernels: the bound holds at
//! every step of every case (proptest), and without drift it is the exact
//! certificate.
#![cfg(feature = "proptest")]

use nalgebra::{DMatrix, DVector};
use ntk_momentum::testing::{hyperparameters, spectra, DampingRegion, DriftCertificate, Layout};
use ntk_momentum::theory::Method;
use proptest::prelude::*;
use rand::SeedableRng;
use rand_distr::{Distribution, StandardNormal};

/// A random orthonormal basis (Gram-Schmidt of Gaussian columns).
fn basis(n: usize, rng: &mut rand_chacha::ChaCha8Rng) -> DMatrix<f64> {
    let g = DMatrix::from_fn(n, n, |_, _| StandardNormal.sample(rng));
    g.qr().q()
}

/// A random matrix scaled to spectral norm at most `eps` (by its Frobenius
/// norm), symmetric if asked.
fn perturbation(n: usize, eps: f64, symmetric: bool, rng: &mut rand_chacha::ChaCha8Rng) -> DMatrix<f64> {
    let mut e = DMatrix::from_fn(n, n, |_, _| StandardNormal.sample(rng));
    if symmetric {
        e = &e + e.transpose();
    }
    let f = e.norm();
    if f > 0.0 {
        e *= eps / f;
    }
    e
}

/// ‖ξ_t‖ of the drifting recursion, with the drift bounds used at each step.
fn simulate(
    method: Method,
    lr: f64,
    beta: f64,
    h0: &DMatrix<f64>,
    xi0: &DVector<f64>,
    eps: &[f64],
    rng: &mut rand_chacha::ChaCha8Rng,
) -> Vec<f64> {
    let n = h0.nrows();
    let c = if method == Method::Nesterov { 1.0 + beta } else { 1.0 };
    let (mut prev, mut cur) = (xi0.clone(), xi0.clone());
    let mut norms = vec![cur.norm()];
    for (s, &e) in eps.iter().enumerate() {
        let h = h0 + perturbation(n, e, true, rng);
        let next = match method {
            Method::GradientDescent => &cur - (&h * &cur) * lr,
            Method::HeavyBall => &cur - (&h * &cur) * lr + (&cur - &prev) * beta,
            Method::Nesterov if s == 0 => &cur - (&h * &cur) * (c * lr),
            Method::Nesterov => {
                let k = h0 + perturbation(n, e, false, rng);
                &cur - (&h * &cur) * (c * lr) + (&cur - &prev) * beta + (&k * &prev) * (beta * lr)
            }
        };
        prev = std::mem::replace(&mut cur, next);
        norms.push(cur.norm());
    }
    norms
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(2000))]
    #[test]
    fn drift_certificate_holds_on_random_drifting_kernels(
        (eigenvalues, method, (lr, beta)) in spectra(1.0..=1e3, 2..=8, Layout::Uniform).prop_flat_map(|ev| {
            let lo = ev.iter().cloned().fold(f64::INFINITY, f64::min);
            let hi = ev.iter().cloned().fold(0.0, f64::max);
            prop_oneof![Just(Method::GradientDescent), Just(Method::HeavyBall), Just(Method::Nesterov)]
                .prop_flat_map(move |m| (Just(ev.clone()), Just(m), hyperparameters(m, lo, hi, DampingRegion::Any)))
        }),
        relative_drift in prop_oneof![Just(0.0), 1e-4..1e-2, 1e-2..0.2],
        seed in any::<u64>(),
        steps in 1usize..200,
    ) {
        let n = eigenvalues.len();
        let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(seed);
        let v = basis(n, &mut rng);
        let h0 = &v * DMatrix::from_diagonal(&DVector::from_vec(eigenvalues.clone())) * v.transpose();
        let h0 = (&h0 + h0.transpose()) * 0.5;
        let xi0 = DVector::from_fn(n, |_, _| StandardNormal.sample(&mut rng));
        let lambda_max = eigenvalues.iter().cloned().fold(0.0, f64::max);
        // Drift bounds that vary over the steps, up to relative_drift * lambda_max.
        let eps: Vec<f64> = (0..steps).map(|s| relative_drift * lambda_max * (1.0 + (s as f64 * 0.37).sin()) / 2.0).collect();
        let norms = simulate(method, lr, beta, &h0, &xi0, &eps, &mut rng);
        // The rounding of H_0 = V diag V^T and of the simulation: a relative slack on the bound.
        let cert = DriftCertificate::new(method, lr, beta, &eigenvalues)?;
        let bounds = cert.bounds(&eps, &eps)?;
        for (t, (&norm, &b)) in norms.iter().zip(&bounds).enumerate() {
            let actual = norm / norms[0];
            prop_assert!(actual <= b * (1.0 + 1e-9) + 1e-12, "{method} lr {lr} beta {beta} step {t}: {actual:e} > {b:e}");
        }
        if relative_drift == 0.0 {
            for (t, &b) in bounds.iter().enumerate() {
                prop_assert_eq!(b, cert.base().bound(t));
            }
        }
    }
}

#[test]
fn drift_certificate_refuses_bad_input() {
    let cert = DriftCertificate::new(Method::Nesterov, 0.5, 0.5, &[1.0, 0.5]).unwrap();
    assert!(
        cert.bounds(&[0.1, 0.1], &[0.1]).is_err(),
        "NAG needs a cross bound per step"
    );
    assert!(cert.bounds(&[f64::NAN], &[0.0]).is_err());
    assert!(cert.bounds(&[-1.0], &[0.0]).is_err());
    assert!(cert.first_violation(&[1.0], &[0.1], &[0.1]).is_err(), "too few norms");
    assert!(
        cert.first_violation(&[0.0, 0.0], &[0.1], &[0.1]).is_err(),
        "zero initial norm"
    );
    assert!(
        DriftCertificate::new(Method::HeavyBall, 5.0, 0.5, &[1.0]).is_err(),
        "unstable"
    );
    // A run that leaves the bound is caught at the step where it does.
    let hb = DriftCertificate::new(Method::HeavyBall, 0.5, 0.5, &[1.0]).unwrap();
    let b = hb.bounds(&[0.0; 3], &[]).unwrap();
    let norms = [1.0, b[1], b[2] * 1.5, 0.0];
    assert_eq!(hb.first_violation(&norms, &[0.0; 3], &[]).unwrap(), Some(2));
}
