//! Tests of `TwoLayerReLU` and the `ntk` module: derivatives against finite
//! differences, the identities between gradient, Jacobian and NTK, the
//! infinite-width limit, precision and reproducibility, and bad input.
#![cfg(feature = "full")]

use nalgebra::{DMatrix, DVector};
use ntk_momentum::ntk::{eigendecomposition, infinite_width_gram, Spectrum};
use ntk_momentum::{Error, TwoLayerReLU};
use proptest::prelude::*;
use rand::{RngExt, SeedableRng};
use rand_chacha::ChaCha8Rng;

/// n random points of R^d with unit norm.
fn unit_rows(n: usize, d: usize, seed: u64) -> DMatrix<f64> {
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    let mut x = DMatrix::from_fn(n, d, |_, _| rng.random_range(-1.0..1.0));
    for mut row in x.row_iter_mut() {
        let norm = row.norm();
        row /= norm;
    }
    x
}

fn random_matrix(r: usize, c: usize, seed: u64) -> DMatrix<f64> {
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    DMatrix::from_fn(r, c, |_, _| rng.random_range(-1.0..1.0))
}

fn random_vector(n: usize, seed: u64) -> DVector<f64> {
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    DVector::from_fn(n, |_, _| rng.random_range(-1.0..1.0))
}

/// Smallest |w_r · x_i|: finite differences of step h are exact (the loss is
/// quadratic and the outputs linear in W between mask flips) when it exceeds
/// h · max ‖x_i‖.
fn min_abs_preactivation(model: &TwoLayerReLU<f64>, x: &DMatrix<f64>) -> f64 {
    (x * model.weights().transpose())
        .iter()
        .fold(f64::INFINITY, |a, z| a.min(z.abs()))
}

fn rel_err(a: &DMatrix<f64>, b: &DMatrix<f64>) -> f64 {
    (a - b).norm() / b.norm().max(1e-300)
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(48))]

    /// Every gradient entry and Jacobian column against central differences.
    #[test]
    fn gradient_and_jacobian_match_finite_differences(n in 1usize..6, d in 1usize..5, m in 1usize..12, seed in 0u64..1000) {
        let model = TwoLayerReLU::<f64>::new(d, m, seed).unwrap();
        let x = unit_rows(n, d, seed + 1);
        let y = random_vector(n, seed + 2);
        let h = 1e-6;
        // No mask flips within the difference step (inputs have unit norm).
        prop_assume!(min_abs_preactivation(&model, &x) > 100.0 * h);
        let (_, grad) = model.loss_and_gradient(&x, &y).unwrap();
        let jac = model.jacobian(&x).unwrap();
        for r in 0..m {
            for k in 0..d {
                let mut plus = model.weights().clone();
                plus[(r, k)] += h;
                let mut minus = model.weights().clone();
                minus[(r, k)] -= h;
                let mp = TwoLayerReLU::from_parts(plus, model.output_weights().clone()).unwrap();
                let mm = TwoLayerReLU::from_parts(minus, model.output_weights().clone()).unwrap();
                let fd_loss = (mp.loss(&x, &y).unwrap() - mm.loss(&x, &y).unwrap()) / (2.0 * h);
                // Central differences of a quadratic are exact: only rounding
                // of the loss (~1e-16 * L / h) remains.
                prop_assert!((fd_loss - grad[(r, k)]).abs() <= 1e-8 * (1.0 + grad[(r, k)].abs()),
                    "dL/dw[{r},{k}]: fd {fd_loss} vs analytic {}", grad[(r, k)]);
                let fd_out = (mp.forward(&x).unwrap() - mm.forward(&x).unwrap()) / (2.0 * h);
                for i in 0..n {
                    prop_assert!((fd_out[i] - jac[(i, r * d + k)]).abs() <= 1e-8,
                        "J[{i},{}]: fd {} vs analytic {}", r * d + k, fd_out[i], jac[(i, r * d + k)]);
                }
            }
        }
    }

    /// H = J Jᵀ, G = Jᵀ r, <J v, r> = <v, Jᵀ r>, and jvp / vjp agree with
    /// the materialised Jacobian.
    #[test]
    fn jacobian_identities(n in 1usize..8, d in 1usize..6, m in 1usize..40, seed in 0u64..1000) {
        let model = TwoLayerReLU::<f64>::new(d, m, seed).unwrap();
        let x = unit_rows(n, d, seed + 1);
        let y = random_vector(n, seed + 2);
        let jac = model.jacobian(&x).unwrap();
        let h = model.ntk_gram(&x).unwrap();
        prop_assert!(rel_err(&h, &(&jac * jac.transpose())) < 1e-12);

        let (_, grad) = model.loss_and_gradient(&x, &y).unwrap();
        let r = model.forward(&x).unwrap() - &y;
        let vjp = model.vjp(&x, &r).unwrap();
        prop_assert!(rel_err(&vjp, &grad) < 1e-12);
        // Jᵀ r reshaped: entry r*d + k is vjp[(r, k)].
        let jt_r = jac.transpose() * &r;
        let jt_r = DMatrix::from_fn(m, d, |a, k| jt_r[a * d + k]);
        prop_assert!(rel_err(&jt_r, &grad) < 1e-12);

        let v = random_matrix(m, d, seed + 3);
        let jv = model.jvp(&x, &v).unwrap();
        let vec_v = DVector::from_fn(m * d, |idx, _| v[(idx / d, idx % d)]);
        let jv_dense = &jac * vec_v;
        prop_assert!((&jv - &jv_dense).norm() <= 1e-12 * (1.0 + jv_dense.norm()));
        let lhs = jv.dot(&r);
        let rhs = v.dot(&vjp);
        prop_assert!((lhs - rhs).abs() <= 1e-12 * (1.0 + lhs.abs()));
    }
}

/// The empirical kernel tends to the infinite-width one: the mean absolute
/// entry error shrinks like 1/√m, so 64 times the width must give at least 5
/// times less error (8 expected).
#[test]
fn empirical_ntk_tends_to_infinite_width_limit() {
    let x = unit_rows(20, 10, 7);
    let h_inf = infinite_width_gram(&x).unwrap();
    let mean_error = |m: usize| -> f64 {
        let seeds = [1u64, 2, 3, 4];
        seeds
            .iter()
            .map(|&s| {
                let h = TwoLayerReLU::<f64>::new(10, m, s).unwrap().ntk_gram(&x).unwrap();
                (h - &h_inf).abs().mean()
            })
            .sum::<f64>()
            / seeds.len() as f64
    };
    let (narrow, wide) = (mean_error(256), mean_error(16384));
    eprintln!(
        "mean |H - H_inf|: m=256 {narrow:.3e}, m=16384 {wide:.3e}, ratio {:.2}",
        narrow / wide
    );
    assert!(narrow >= 5.0 * wide, "m=256: {narrow}, m=16384: {wide}");
}

#[test]
fn infinite_width_gram_closed_form() {
    // Diagonal ‖x_i‖²/2 for rows of any norm; symmetric; PSD.
    let x = random_matrix(15, 6, 11);
    let h = infinite_width_gram(&x).unwrap();
    for i in 0..15 {
        let expected = x.row(i).norm_squared() / 2.0;
        approx::assert_relative_eq!(h[(i, i)], expected, epsilon = 0.0, max_relative = 1e-14);
    }
    assert!((&h - h.transpose()).amax() == 0.0);
    let s = Spectrum::of(&h).unwrap();
    assert!(
        s.lambda_min > 0.0,
        "non-parallel inputs give lambda_min > 0: {}",
        s.lambda_min
    );
    // Antipodal points: theta = pi, so the entry is 0.
    let x2 = DMatrix::from_row_slice(2, 2, &[0.6, 0.8, -0.6, -0.8]);
    assert_eq!(infinite_width_gram(&x2).unwrap()[(0, 1)], 0.0);
    // 60 degrees apart, unit norm: cos = 1/2, (pi - pi/3) / (2 pi) = 1/3.
    let x3 = DMatrix::from_row_slice(2, 2, &[1.0, 0.0, 0.5, 3f64.sqrt() / 2.0]);
    approx::assert_abs_diff_eq!(infinite_width_gram(&x3).unwrap()[(0, 1)], 0.5 / 3.0, epsilon = 1e-12);
}

#[test]
fn spectrum_and_eigendecomposition_agree() {
    let x = unit_rows(12, 5, 3);
    let h = TwoLayerReLU::<f64>::new(5, 300, 9).unwrap().ntk_gram(&x).unwrap();
    let s = Spectrum::of(&h).unwrap();
    let (s2, v) = eigendecomposition(&h).unwrap();
    for (a, b) in s.eigenvalues.iter().zip(&s2.eigenvalues) {
        assert!((a - b).abs() < 1e-12 * s.lambda_max);
    }
    let rebuilt = &v * DMatrix::from_diagonal(&DVector::from_vec(s2.eigenvalues.clone())) * v.transpose();
    assert!(rel_err(&rebuilt, &h) < 1e-12);
    approx::assert_relative_eq!(
        s.kappa,
        s.lambda_max / s.lambda_min,
        epsilon = 0.0,
        max_relative = 1e-12
    );
}

/// The f32 network of a seed is the f64 one rounded; its outputs, loss,
/// gradient and kernel agree to f32 precision (relative 1e-5 in norm).
#[test]
fn f32_agrees_with_f64_and_seeds_reproduce() {
    let (n, d, m) = (30, 20, 500);
    let x64 = unit_rows(n, d, 5);
    let y64 = random_vector(n, 6);
    let x32 = x64.map(|v| v as f32);
    let y32 = y64.map(|v| v as f32);
    let m64 = TwoLayerReLU::<f64>::new(d, m, 77).unwrap();
    let m32 = TwoLayerReLU::<f32>::init(d, m, 77).unwrap();
    assert_eq!(m32.weights(), &m64.weights().map(|v| v as f32));
    assert_eq!(m64, TwoLayerReLU::<f64>::new(d, m, 77).unwrap());
    assert_ne!(m64, TwoLayerReLU::<f64>::new(d, m, 78).unwrap());

    let (l64, g64) = m64.loss_and_gradient(&x64, &y64).unwrap();
    let (l32, g32) = m32.loss_and_gradient(&x32, &y32).unwrap();
    approx::assert_relative_eq!(l32 as f64, l64, epsilon = 0.0, max_relative = 1e-5);
    assert!(
        rel_err(&g32.map(|v| v as f64), &g64) < 1e-4,
        "gradient f32 vs f64: {}",
        rel_err(&g32.map(|v| v as f64), &g64)
    );
    let h64 = m64.ntk_gram(&x64).unwrap();
    let h32 = m32.ntk_gram(&x32).unwrap();
    // A pre-activation within f32 rounding of 0 may flip one mask entry:
    // that changes an entry by at most |x_i . x_j| / m.
    assert!(rel_err(&h32.map(|v| v as f64), &h64) < 1e-3);
}

/// The workspace variant gives bit-identical results to the allocating one.
#[test]
fn workspace_variant_is_identical() {
    let x = unit_rows(9, 7, 1);
    let y = random_vector(9, 2);
    let model = TwoLayerReLU::<f64>::new(7, 64, 3).unwrap();
    let (l, g) = model.loss_and_gradient(&x, &y).unwrap();
    let mut ws = ntk_momentum::model::Workspace::new();
    let mut g2 = DMatrix::zeros(64, 7);
    for _ in 0..2 {
        let l2 = model.loss_and_gradient_with(&x, &y, &mut ws, &mut g2).unwrap();
        assert_eq!(l.to_bits(), l2.to_bits());
        assert_eq!(g, g2);
    }
    assert_eq!(model.loss(&x, &y).unwrap().to_bits(), l.to_bits());
}

fn message(e: Error) -> String {
    e.to_string()
}

#[test]
fn bad_input_is_rejected_with_a_message() {
    let model = TwoLayerReLU::<f64>::new(3, 8, 0).unwrap();
    let x = unit_rows(4, 3, 0);
    let y = random_vector(4, 0);

    let wrong_cols = unit_rows(4, 2, 0);
    let e = message(model.forward(&wrong_cols).unwrap_err());
    assert!(e.contains("n x 3") && e.contains("4 x 2"), "{e}");
    let empty = DMatrix::<f64>::zeros(0, 3);
    assert!(matches!(model.forward(&empty), Err(Error::ShapeMismatch { .. })));

    let mut nan_x = x.clone();
    nan_x[(2, 1)] = f64::NAN;
    let e = message(model.loss(&nan_x, &y).unwrap_err());
    assert!(e.contains("x") && e.contains("row 2, column 1"), "{e}");

    let short_y = random_vector(3, 0);
    let e = message(model.loss_and_gradient(&x, &short_y).unwrap_err());
    assert!(
        e.contains("y") && e.contains("4 entries") && e.contains("3 entries"),
        "{e}"
    );
    let mut inf_y = y.clone();
    inf_y[3] = f64::INFINITY;
    assert!(matches!(model.loss(&x, &inf_y), Err(Error::NonFinite { .. })));

    let mut bad_w = model.weights().clone();
    bad_w[(0, 0)] = f64::NAN;
    assert!(matches!(
        TwoLayerReLU::from_parts(bad_w, model.output_weights().clone()),
        Err(Error::NonFinite { .. })
    ));
    let mut bad_a = model.output_weights().clone();
    bad_a[5] = 0.5;
    let e = message(TwoLayerReLU::from_parts(model.weights().clone(), bad_a).unwrap_err());
    assert!(e.contains("0.5 at index 5") && e.contains("+1 or -1"), "{e}");
    let e = message(TwoLayerReLU::from_parts(model.weights().clone(), DVector::from_element(7, 1.0)).unwrap_err());
    assert!(e.contains("8 entries") && e.contains("7 entries"), "{e}");

    assert!(matches!(
        TwoLayerReLU::<f64>::new(0, 8, 0),
        Err(Error::InvalidParameter { name: "input_dim", .. })
    ));
    assert!(matches!(
        TwoLayerReLU::<f64>::new(3, 0, 0),
        Err(Error::InvalidParameter { name: "width", .. })
    ));
    assert!(matches!(
        TwoLayerReLU::<f64>::with_init_scale(3, 8, f64::NAN, 0),
        Err(Error::InvalidParameter { name: "sigma", .. })
    ));

    let mut grad = DMatrix::zeros(8, 2);
    let mut ws = ntk_momentum::model::Workspace::new();
    assert!(matches!(
        model.loss_and_gradient_with(&x, &y, &mut ws, &mut grad),
        Err(Error::ShapeMismatch { .. })
    ));
    assert!(matches!(
        model.jvp(&x, &DMatrix::zeros(8, 2)),
        Err(Error::ShapeMismatch { .. })
    ));
    assert!(matches!(
        model.vjp(&x, &DVector::zeros(5)),
        Err(Error::ShapeMismatch { .. })
    ));

    // The Jacobian refuses sizes above its documented limit.
    let big = TwoLayerReLU::<f32>::init(3072, 8192, 0).unwrap();
    let xb = DMatrix::<f32>::from_element(10, 3072, 0.01);
    assert!(matches!(big.jacobian(&xb), Err(Error::TooLarge { .. })));

    let mut w = model.clone();
    assert!(w.set_weights(DMatrix::zeros(8, 2)).is_err());
    assert_eq!(w, model);
    assert!(matches!(
        infinite_width_gram(&DMatrix::<f64>::zeros(0, 3)),
        Err(Error::ShapeMismatch { .. })
    ));
    assert!(matches!(
        Spectrum::of(&DMatrix::<f64>::zeros(2, 3)),
        Err(Error::ShapeMismatch { .. })
    ));
}

#[test]
fn impossible_sizes_are_errors_not_panics() {
    assert!(matches!(
        TwoLayerReLU::<f64>::new(1 << 32, 1 << 32, 0),
        Err(Error::TooLarge { .. })
    ));
    assert!(matches!(
        TwoLayerReLU::<f32>::init(usize::MAX, 2, 0),
        Err(Error::TooLarge { .. })
    ));
    assert!(matches!(
        ntk_momentum::data::unit_sphere::<f64>(usize::MAX, 3, 0),
        Err(Error::TooLarge { .. })
    ));
}
