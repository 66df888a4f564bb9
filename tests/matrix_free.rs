//! Matrix-free kernels and the Lanczos iteration against the dense
//! formulations: products, extreme eigenvalues (λ_max to 1e-6 and λ_min to
//! 1e-4 relative, the accuracy the large-n diagnostics promise) and the
//! Krylov prediction of a trajectory (exact for t < products).
#![cfg(feature = "full")]

use nalgebra::{DMatrix, DVector};
use ntk_momentum::data::unit_sphere;
use ntk_momentum::ntk::{
    eigendecomposition, infinite_width_gram, lanczos, EmpiricalNtk, InfiniteWidthNtk, KernelOperator, LanczosOptions,
    Spectrum,
};
use ntk_momentum::theory::{predicted_losses, Method, ModalResidual};
use ntk_momentum::train::NTK_DRIFT_MAX_SAMPLES;
use ntk_momentum::{Error, Nesterov, Trainer, TwoLayerReLU};

fn random_vector(n: usize, seed: u64) -> Vec<f64> {
    let mut s = seed.wrapping_mul(0x9e37_79b9_7f4a_7c15) | 1;
    (0..n)
        .map(|_| {
            s ^= s << 13;
            s ^= s >> 7;
            s ^= s << 17;
            (s >> 11) as f64 / (1u64 << 53) as f64 - 0.5
        })
        .collect()
}

fn dense_product(h: &DMatrix<f64>, v: &[f64]) -> Vec<f64> {
    (h * DVector::from_column_slice(v)).as_slice().to_vec()
}

fn max_relative_gap(a: &[f64], b: &[f64]) -> f64 {
    let scale = b.iter().fold(0.0_f64, |m, v| m.max(v.abs()));
    a.iter().zip(b).fold(0.0_f64, |m, (x, y)| m.max((x - y).abs())) / scale
}

#[test]
fn empirical_products_equal_the_dense_gram_across_sample_blocks() {
    // m = 8192: blocks of 512 samples, so n = 1100 spans three blocks (the last partial).
    let (x, _) = unit_sphere::<f64>(1100, 12, 3).unwrap();
    let model = TwoLayerReLU::<f64>::new(12, 8192, 4).unwrap();
    let dense = model.ntk_gram(&x).unwrap();
    let mut op = EmpiricalNtk::new(&model, &x).unwrap();
    let f = op.active_fraction();
    assert!((0.45..0.55).contains(&f), "active fraction {f}");
    for seed in 0..3 {
        let v = random_vector(1100, seed);
        let mut out = vec![0.0; 1100];
        op.apply(&v, &mut out).unwrap();
        let gap = max_relative_gap(&out, &dense_product(&dense, &v));
        assert!(gap < 1e-12, "seed {seed}: relative gap {gap:e}");
    }
}

#[test]
fn empirical_products_in_f32_follow_the_f64_gram() {
    let (x, _) = unit_sphere::<f32>(300, 10, 5).unwrap();
    let model = TwoLayerReLU::<f32>::init(10, 1024, 6).unwrap();
    let dense = model.ntk_gram(&x).unwrap().map(f64::from);
    let mut op = EmpiricalNtk::new(&model, &x).unwrap();
    let v = random_vector(300, 7);
    let mut out = vec![0.0; 300];
    op.apply(&v, &mut out).unwrap();
    let gap = max_relative_gap(&out, &dense_product(&dense, &v));
    assert!(gap < 1e-5, "relative gap {gap:e}");
}

#[test]
fn infinite_width_products_equal_the_dense_gram_across_blocks() {
    // n = 2100: blocks of 1997 columns, so two blocks.
    let (x, _) = unit_sphere::<f64>(2100, 8, 9).unwrap();
    let x = DMatrix::from_fn(2100, 8, |i, j| x[(i, j)] * (1.0 + (i % 3) as f64)); // unequal norms
    let dense = infinite_width_gram(&x).unwrap();
    let mut op = InfiniteWidthNtk::new(&x).unwrap();
    let v = random_vector(2100, 11);
    let mut out = vec![0.0; 2100];
    op.apply(&v, &mut out).unwrap();
    let gap = max_relative_gap(&out, &dense_product(&dense, &v));
    assert!(gap < 1e-12, "relative gap {gap:e}");
}

#[test]
fn extreme_eigenvalues_match_the_dense_solver() {
    // Both kernels of 800 unit-norm samples in d = 30 (kappa in the hundreds).
    let (x, _) = unit_sphere::<f64>(800, 30, 13).unwrap();
    let model = TwoLayerReLU::<f64>::new(30, 2048, 14).unwrap();
    let options = LanczosOptions {
        max_products: 400,
        lambda_max_tolerance: 1e-6,
        lambda_min_tolerance: 1e-4,
    };
    let cases: [(&str, DMatrix<f64>, Box<dyn KernelOperator + '_>); 2] = [
        (
            "H(W_0)",
            model.ntk_gram(&x).unwrap(),
            Box::new(EmpiricalNtk::new(&model, &x).unwrap()),
        ),
        (
            "H_inf",
            infinite_width_gram(&x).unwrap(),
            Box::new(InfiniteWidthNtk::new(&x).unwrap()),
        ),
    ];
    for (name, dense, mut op) in cases {
        let s = Spectrum::of(&dense).unwrap();
        let k = lanczos(op.as_mut(), None, options).unwrap();
        assert!(k.converged, "{name}: not converged after {} products", k.products);
        assert!(k.products < 800, "{name}: {} products", k.products);
        let (rel_max, rel_min) = (
            (k.lambda_max - s.lambda_max).abs() / s.lambda_max,
            (k.lambda_min - s.lambda_min).abs() / s.lambda_min,
        );
        eprintln!(
            "{name}: kappa {:.1}, {} products, lambda_max rel. error {rel_max:.1e}, lambda_min {rel_min:.1e}",
            s.kappa, k.products
        );
        assert!(
            rel_max <= 1e-6,
            "{name}: lambda_max {} vs {}",
            k.lambda_max,
            s.lambda_max
        );
        assert!(
            rel_min <= 1e-4,
            "{name}: lambda_min {} vs {}",
            k.lambda_min,
            s.lambda_min
        );
        // The bounds are honest: the true extremes lie within them.
        assert!((k.lambda_max - s.lambda_max).abs() <= k.lambda_max_error_bound + 1e-12 * s.lambda_max);
        assert!((k.lambda_min - s.lambda_min).abs() <= k.lambda_min_error_bound + 1e-12 * s.lambda_max);
        // Ritz values interlace: inside the spectrum.
        assert!(k.lambda_min >= s.lambda_min * (1.0 - 1e-12) && k.lambda_max <= s.lambda_max * (1.0 + 1e-12));
    }
}

#[test]
fn krylov_prediction_is_exact_before_the_product_count() {
    let (x, y) = unit_sphere::<f64>(400, 10, 21).unwrap();
    let model = TwoLayerReLU::<f64>::new(10, 1024, 22).unwrap();
    let xi0 = model.forward(&x).unwrap() - &y;
    let dense = model.ntk_gram(&x).unwrap();
    let (spectrum, vectors) = eigendecomposition(&dense).unwrap();
    let mut op = EmpiricalNtk::new(&model, &x).unwrap();
    let options = LanczosOptions {
        max_products: 40,
        ..LanczosOptions::default()
    };
    let k = lanczos(&mut op, Some(&xi0), options).unwrap();
    assert_eq!(k.products, 40);
    let norm2: f64 = k.start_coordinates().iter().map(|c| c * c).sum();
    approx::assert_relative_eq!(norm2, xi0.norm_squared(), epsilon = 0.0, max_relative = 1e-12);
    let krylov = ModalResidual::from_coordinates(k.ritz_values().to_vec(), k.start_coordinates().to_vec()).unwrap();
    let (lr, momentum) = (1.0 / spectrum.lambda_max, 0.9);
    for method in [Method::GradientDescent, Method::HeavyBall, Method::Nesterov] {
        let beta = if method == Method::GradientDescent {
            0.0
        } else {
            momentum
        };
        let exact = predicted_losses(method, lr, beta, &spectrum.eigenvalues, &vectors, &xi0, 39).unwrap();
        let quadrature = krylov.losses(method, lr, beta, 39).unwrap();
        for t in 0..40 {
            let gap = (quadrature[t] - exact[t]).abs() / exact[t];
            assert!(
                gap < 1e-9,
                "{method} step {t}: {} vs {} ({gap:e})",
                quadrature[t],
                exact[t]
            );
        }
    }
}

#[test]
fn bad_products_and_options_are_refused() {
    let (x, _) = unit_sphere::<f64>(20, 4, 1).unwrap();
    let model = TwoLayerReLU::<f64>::new(4, 64, 2).unwrap();
    let mut op = EmpiricalNtk::new(&model, &x).unwrap();
    let mut out = vec![0.0; 20];
    assert!(matches!(
        op.apply(&[1.0; 19], &mut out),
        Err(Error::ShapeMismatch { .. })
    ));
    let mut v = vec![1.0; 20];
    v[3] = f64::NAN;
    let e = op.apply(&v, &mut out).unwrap_err();
    assert!(
        matches!(e, Error::NonFinite { .. }) && e.to_string().contains("entry 3"),
        "{e}"
    );
    let wrong = DMatrix::<f64>::zeros(20, 5);
    assert!(matches!(
        EmpiricalNtk::new(&model, &wrong),
        Err(Error::ShapeMismatch { .. })
    ));
    let zero = DVector::zeros(20);
    assert!(matches!(
        lanczos(&mut op, Some(&zero), LanczosOptions::default()),
        Err(Error::InvalidParameter { .. })
    ));
    let short = DVector::from_element(7, 1.0);
    assert!(matches!(
        lanczos(&mut op, Some(&short), LanczosOptions::default()),
        Err(Error::ShapeMismatch { .. })
    ));
    for options in [
        LanczosOptions {
            max_products: 0,
            ..LanczosOptions::default()
        },
        LanczosOptions {
            lambda_max_tolerance: 0.0,
            ..LanczosOptions::default()
        },
        LanczosOptions {
            lambda_min_tolerance: f64::NAN,
            ..LanczosOptions::default()
        },
    ] {
        assert!(
            matches!(lanczos(&mut op, None, options), Err(Error::InvalidParameter { .. })),
            "{options:?}"
        );
    }
    let mut rectangular = DMatrix::<f64>::zeros(3, 4);
    assert!(matches!(
        KernelOperator::apply(&mut rectangular, &[0.0; 4], &mut [0.0; 3]),
        Err(Error::ShapeMismatch { .. })
    ));
    let mut nan_x = x.clone();
    nan_x[(2, 1)] = f64::INFINITY;
    assert!(matches!(InfiniteWidthNtk::new(&nan_x), Err(Error::NonFinite { .. })));
}

#[test]
fn a_singular_kernel_converges_on_its_floor() {
    // Repeated inputs make H singular: lambda_min = 0 to rounding, reached on the 1e-14 floor.
    let (x, _) = unit_sphere::<f64>(60, 6, 31).unwrap();
    let doubled = DMatrix::from_fn(120, 6, |i, j| x[(i % 60, j)]);
    let mut op = InfiniteWidthNtk::new(&doubled).unwrap();
    let k = lanczos(&mut op, None, LanczosOptions::default()).unwrap();
    assert!(k.converged);
    assert!(k.lambda_min.abs() <= 1e-12 * k.lambda_max, "{}", k.lambda_min);
}

#[test]
fn trainer_diagnostics_are_matrix_free_above_the_dense_limit() {
    // n just above NTK_DRIFT_MAX_SAMPLES: no n x n matrix is formed; the
    // recorded lambda_max of H(W_0) is the operator's, and the drift starts at 0.
    let n = NTK_DRIFT_MAX_SAMPLES + 8;
    let (x, y) = unit_sphere::<f64>(n, 6, 41).unwrap();
    let model = TwoLayerReLU::<f64>::init(6, 64, 42).unwrap();
    let mut op = EmpiricalNtk::new(&model, &x).unwrap();
    let reference = lanczos(&mut op, None, LanczosOptions::default()).unwrap();
    let lr = 1.0 / reference.lambda_max;
    let mut trainer = Trainer::new(model, Nesterov::new(lr, 0.9).unwrap())
        .max_steps(3)
        .diagnostics_every(3)
        .matrix_free_ntk(4, 200);
    let history = trainer.run(&x, &y).unwrap();
    let (first, last) = (&history.diagnostics()[0], &history.diagnostics()[1]);
    assert_eq!((first.step, last.step), (0, 3));
    assert_eq!(first.ntk_drift, Some(0.0));
    let hi = first.ntk_lambda_max.unwrap();
    approx::assert_relative_eq!(hi, reference.lambda_max, epsilon = 0.0, max_relative = 1e-6);
    let drift = last.ntk_drift.unwrap();
    assert!(drift > 0.0 && drift < 1.0, "{drift}");
    assert!(last.ntk_lambda_max.is_some());
    // Without a Lanczos budget only the drift is recorded.
    let model = TwoLayerReLU::<f64>::init(6, 64, 42).unwrap();
    let mut plain = Trainer::new(model, Nesterov::new(lr, 0.9).unwrap())
        .max_steps(1)
        .diagnostics_every(1);
    let d = plain.run(&x, &y).unwrap().diagnostics()[1].clone();
    assert!(d.ntk_drift.is_some() && d.ntk_lambda_max.is_none() && d.ntk_lambda_min.is_none());
}
