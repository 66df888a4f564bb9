//! Tests of `ntk_momentum::theory`: closed-form tunings against the computed
//! spectral radius, roots against brute-force recursions, NAG against HB,
//! stability limits, the measured-rate fit and the predicted trajectories.
#![cfg(feature = "full")]

use nalgebra::{DMatrix, DVector, SymmetricEigen};
use ntk_momentum::theory::{
    self, compare, damping, max_stable_lr, measured_rate, predicted_losses, predicted_residuals, predicted_speedup,
    rate, roots, speedup, steps_to_loss_fraction, steps_to_reach, tune, Damping, Method, TuningRule,
};
use ntk_momentum::{Error, GradientDescent, HeavyBall, Nesterov, Optimizer};
use proptest::prelude::*;

// ---------------------------------------------------------------------------
// Helpers
// ---------------------------------------------------------------------------

/// Per-mode recursion coefficients at x = eta lambda: c_{t+1} = a c_t - b c_{t-1},
/// and the optimizers' first step c_1 = first * c_0 (theta_{-1} = theta_0,
/// g_{-1} = 0), derived independently of the library.
fn coefficients(method: Method, lr: f64, beta: f64, lambda: f64) -> (f64, f64, f64) {
    let x = lr * lambda;
    match method {
        Method::GradientDescent => (1.0 - x, 0.0, 1.0 - x),
        Method::HeavyBall => (1.0 + beta - x, beta, 1.0 - x),
        Method::Nesterov => ((1.0 + beta) * (1.0 - x), beta * (1.0 - x), 1.0 - (1.0 + beta) * x),
    }
}

/// Natural log of the spectral norm of M^T for the companion matrix
/// M = [[a, -b], [1, 0]] acting on (c_t, c_{t-1}), by brute force: the two
/// unit states are pushed through T steps of the recursion, rescaled (with
/// the scale kept in log form) so that nothing under- or overflows.
fn log_norm_of_power(a: f64, b: f64, steps: usize) -> f64 {
    // Columns of M^t: p = M^t e1, q = M^t e2.
    let (mut p, mut q) = ([1.0_f64, 0.0], [0.0_f64, 1.0]);
    let mut log_scale = 0.0;
    for _ in 0..steps {
        p = [a * p[0] - b * p[1], p[0]];
        q = [a * q[0] - b * q[1], q[0]];
        let m = p.iter().chain(q.iter()).fold(0.0_f64, |m, v| m.max(v.abs()));
        if m == 0.0 {
            return f64::NEG_INFINITY;
        }
        if !(1e-100..=1e100).contains(&m) {
            for v in p.iter_mut().chain(q.iter_mut()) {
                *v /= m;
            }
            log_scale += m.ln();
        }
    }
    // Largest singular value of [[p0, q0], [p1, q1]], normalised first so
    // that fro2^2 and det^2 do not underflow.
    let m = p.iter().chain(q.iter()).fold(0.0_f64, |m, v| m.max(v.abs()));
    for v in p.iter_mut().chain(q.iter_mut()) {
        *v /= m;
    }
    log_scale += m.ln();
    let fro2 = p[0] * p[0] + p[1] * p[1] + q[0] * q[0] + q[1] * q[1];
    let det = p[0] * q[1] - q[0] * p[1];
    let sigma2 = 0.5 * (fro2 + (fro2 * fro2 - 4.0 * det * det).max(0.0).sqrt());
    0.5 * sigma2.ln() + log_scale
}

/// ln ||xi_t|| for t = 0..=steps of the diagonal (eigen-coordinate) recursion
/// with the optimizers' first step, rescaled so that nothing under- or
/// overflows.
fn log_residual_norms(method: Method, lr: f64, beta: f64, eigenvalues: &[f64], c0: &[f64], steps: usize) -> Vec<f64> {
    let coeffs: Vec<_> = eigenvalues.iter().map(|&l| coefficients(method, lr, beta, l)).collect();
    let mut cur = c0.to_vec();
    let mut prev = c0.to_vec();
    let mut log_scale = 0.0;
    let norm = |v: &[f64]| v.iter().map(|x| x * x).sum::<f64>().sqrt();
    let mut out = vec![norm(&cur).ln()];
    for t in 0..steps {
        for i in 0..cur.len() {
            let (a, b, first) = coeffs[i];
            let next = if t == 0 {
                first * cur[i]
            } else {
                a * cur[i] - b * prev[i]
            };
            prev[i] = cur[i];
            cur[i] = next;
        }
        let m = norm(&cur).max(norm(&prev));
        if m > 0.0 && !(1e-100..=1e100).contains(&m) {
            for v in cur.iter_mut().chain(prev.iter_mut()) {
                *v /= m;
            }
            log_scale += m.ln();
        }
        out.push(norm(&cur).ln() + log_scale);
    }
    out
}

/// Direct simulation of the matrix recursion with a dense H:
/// GD/HB xi_1 = (I - eta H) xi_0, NAG xi_1 = (I - (1 + beta) eta H) xi_0, then
/// GD : xi_{t+1} = xi_t - eta H xi_t
/// HB : xi_{t+1} = (1 + beta) xi_t - eta H xi_t - beta xi_{t-1}
/// NAG: xi_{t+1} = (1 + beta)(xi_t - eta H xi_t) - beta (xi_{t-1} - eta H xi_{t-1})
fn direct_residuals(
    method: Method,
    lr: f64,
    beta: f64,
    h: &DMatrix<f64>,
    xi0: &DVector<f64>,
    steps: usize,
) -> Vec<DVector<f64>> {
    let mut out = vec![xi0.clone()];
    let mut prev = xi0.clone();
    let mut cur = xi0.clone();
    for t in 0..steps {
        let hc = h * &cur;
        let next = match (method, t) {
            (Method::Nesterov, 0) => &cur - (1.0 + beta) * lr * &hc,
            (Method::GradientDescent, _) | (_, 0) => &cur - lr * &hc,
            (Method::HeavyBall, _) => (1.0 + beta) * &cur - lr * &hc - beta * &prev,
            (Method::Nesterov, _) => {
                let hp = h * &prev;
                (1.0 + beta) * (&cur - lr * &hc) - beta * (&prev - lr * &hp)
            }
        };
        prev = cur;
        cur = next;
        out.push(cur.clone());
    }
    out
}

/// A random symmetric positive definite matrix A A^T / n + shift I from
/// entries in [-1, 1].
fn random_psd(n: usize, entries: &[f64], shift: f64) -> DMatrix<f64> {
    let a = DMatrix::from_column_slice(n, n, &entries[..n * n]);
    let mut h = &a * a.transpose() / n as f64;
    for i in 0..n {
        h[(i, i)] += shift;
    }
    h
}

fn method_strategy() -> impl Strategy<Value = Method> {
    prop::sample::select(Method::ALL.to_vec())
}

fn assert_invalid<T: std::fmt::Debug>(r: ntk_momentum::Result<T>, name: &str) {
    match r {
        Err(Error::InvalidParameter { name: n, .. }) => assert_eq!(n, name),
        other => panic!("expected InvalidParameter({name}), got {other:?}"),
    }
}

// ---------------------------------------------------------------------------
// 1. Tuned closed-form rates equal the computed spectral radius (1e-9)
// ---------------------------------------------------------------------------

/// The naive textbook closed forms, to check the library's cancellation-free
/// rewrites: (lr, momentum, rate).
fn textbook_tuning(rule: TuningRule, lmin: f64, lmax: f64) -> (f64, f64, f64) {
    let k = lmax / lmin;
    let s = k.sqrt();
    match rule {
        TuningRule::GradientDescent => (2.0 / (lmin + lmax), 0.0, (k - 1.0) / (k + 1.0)),
        TuningRule::HeavyBall => (
            4.0 / (lmax.sqrt() + lmin.sqrt()).powi(2),
            ((s - 1.0) / (s + 1.0)).powi(2),
            (s - 1.0) / (s + 1.0),
        ),
        TuningRule::Nesterov => (1.0 / lmax, (s - 1.0) / (s + 1.0), 1.0 - 1.0 / s),
        TuningRule::NesterovQuadraticOptimal => {
            let q = (3.0 * k + 1.0).sqrt();
            (4.0 / (3.0 * lmax + lmin), (q - 2.0) / (q + 2.0), 1.0 - 2.0 / q)
        }
    }
}

/// Largest |rate(spectrum) - closed form| over the four rules.
fn tuning_error(lmin: f64, kappa: f64, interior: &[f64]) -> f64 {
    let lmax = lmin * kappa;
    let mut spectrum = vec![lmin, lmax];
    spectrum.extend(interior.iter().map(|u| lmin + (lmax - lmin) * u));
    let mut worst = 0.0_f64;
    for rule in TuningRule::ALL {
        let t = tune(rule, lmin, lmax).unwrap();
        assert_eq!(t.method, rule.method());
        let computed = rate(t.method, t.lr, t.momentum, &spectrum).unwrap();
        worst = worst.max((computed - t.rate).abs());
        // The rewritten formulas agree with the textbook ones.
        let (lr, beta, rho) = textbook_tuning(rule, lmin, lmax);
        assert!((t.lr - lr).abs() <= 1e-13 * lr, "{rule:?} lr {} vs {lr}", t.lr);
        assert!(
            (t.momentum - beta).abs() <= 1e-12,
            "{rule:?} beta {} vs {beta}",
            t.momentum
        );
        assert!((t.rate - rho).abs() <= 1e-12, "{rule:?} rate {} vs {rho}", t.rate);
    }
    worst
}

#[test]
fn tuned_rates_equal_spectral_radius_on_a_kappa_grid() {
    // 241 log-spaced kappa from 2 to 1e6, four scales of lambda_min, with and
    // without interior points.
    let interior = [0.001, 0.1, 0.25, 0.5, 0.77, 0.999];
    let mut worst = 0.0_f64;
    for i in 0..=240 {
        let kappa = 2.0 * (5e5_f64).powf(i as f64 / 240.0);
        for lmin in [1.0, 0.37, 1e-3, 42.0] {
            worst = worst.max(tuning_error(lmin, kappa, &[]));
            worst = worst.max(tuning_error(lmin, kappa, &interior));
        }
    }
    println!("largest |rate - closed form| on the kappa grid: {worst:e}");
    assert!(worst <= 1e-9, "{worst:e}");
}

proptest! {
    #[test]
    fn tuned_rates_equal_spectral_radius_random(
        log_kappa in (2.0_f64).ln()..(1e6_f64).ln(),
        log_lmin in (1e-4_f64).ln()..(1e2_f64).ln(),
        interior in prop::collection::vec(0.0_f64..1.0, 0..20),
    ) {
        let err = tuning_error(log_lmin.exp(), log_kappa.exp(), &interior);
        prop_assert!(err <= 1e-9, "error {err:e}");
    }
}

#[test]
fn tuned_heavy_ball_is_critically_damped_at_both_ends() {
    for kappa in [2.0, 10.0, 1e3, 1e6] {
        let t = tune(TuningRule::HeavyBall, 1.0, kappa).unwrap();
        for lambda in [1.0, kappa] {
            assert_eq!(damping(t.method, t.lr, t.momentum, lambda).unwrap(), Damping::Critical);
        }
        let mid = 0.5 * (1.0 + kappa);
        assert_eq!(damping(t.method, t.lr, t.momentum, mid).unwrap(), Damping::Underdamped);
        let nag = tune(TuningRule::Nesterov, 1.0, kappa).unwrap();
        assert_eq!(
            damping(nag.method, nag.lr, nag.momentum, 1.0).unwrap(),
            Damping::Critical
        );
    }
}

// ---------------------------------------------------------------------------
// 2. Rates from the roots against brute-force runs of the recursion
// ---------------------------------------------------------------------------

/// Random spectrum in [lmin, kappa lmin], a method, a momentum and a stable
/// step size (a fraction of the stability limit).
fn scenario() -> impl Strategy<Value = (Method, f64, f64, Vec<f64>)> {
    (
        method_strategy(),
        0.0_f64..0.95,
        0.02_f64..0.98,
        (1.5_f64).ln()..(100.0_f64).ln(),
        prop::collection::vec(0.0_f64..1.0, 0..18),
    )
        .prop_map(|(method, beta, frac, log_kappa, u)| {
            let (lmin, lmax) = (0.3, 0.3 * log_kappa.exp());
            let mut spectrum = vec![lmin, lmax];
            spectrum.extend(u.iter().map(|u| lmin + (lmax - lmin) * u));
            let lr = frac * max_stable_lr(method, beta, lmax).unwrap();
            let beta = if method == Method::GradientDescent { 0.0 } else { beta };
            (method, lr, beta, spectrum)
        })
}

const T: usize = 2000;

proptest! {
    /// Gelfand: rho(M) = lim ||M^T||^(1/T). With M the block-diagonal
    /// companion operator of the whole recursion (one 2x2 block per
    /// eigenvalue), two bounds hold for every T:
    ///
    ///   rho^T <= ||M^T|| <= rho^T + T rho^(T-1) F,   F = max_i ||M_i||_F,
    ///
    /// the left one because the spectral radius bounds every norm, the right
    /// one from the Schur form of a 2x2 block [[z1, n], [0, z2]] (|n| <= F and
    /// the off-diagonal of its T-th power is n (z1^T - z2^T)/(z1 - z2), at
    /// most T rho^(T-1) |n|). The right-hand side is the polynomial factor of
    /// critical damping. Slack: 1e-6 absolute on rho covers the
    /// rounding-level snapping of near-double roots (<= ~2e-7) and the
    /// rounding of the brute-force powers (relative ~T eps, 1e-13 after the
    /// T-th root).
    #[test]
    fn rate_brackets_brute_force_operator_norm((method, lr, beta, spectrum) in scenario()) {
        let rho = rate(method, lr, beta, &spectrum).unwrap();
        let mut log_norm = f64::NEG_INFINITY;
        let mut frob = 0.0_f64;
        for &l in &spectrum {
            let (a, b, _) = coefficients(method, lr, beta, l);
            log_norm = log_norm.max(log_norm_of_power(a, b, T));
            frob = frob.max((a * a + b * b + 1.0).sqrt());
        }
        let measured = (log_norm / T as f64).exp();
        prop_assert!(measured >= rho - 1e-6, "||M^T||^(1/T) = {measured} < rho = {rho}");
        let r = rho + 1e-6;
        let upper = r * ((1.0 + T as f64 * frob / r).ln() / T as f64).exp();
        prop_assert!(measured <= upper, "||M^T||^(1/T) = {measured} > bound {upper} (rho = {rho})");
    }

    /// The residual of one run: ||xi_2000|| / ||xi_0|| against rho^2000.
    /// Upper bound as above, through the state s_1 = (xi_1, xi_0):
    /// ||xi_T|| <= ||M^(T-1)|| ||s_1||, ||s_1|| <= ||xi_0|| sqrt(1 + max f^2)
    /// with f the first-step factor. Lower bound: every eigen-coordinate of
    /// xi_0 has modulus >= 0.5 (of at most 1), so the slowest mode is
    /// present; ||xi_T||^(1/T) could fall 1 % below rho only if that mode's
    /// contribution cancelled to below e^(-20) ~ 2e-9 of its envelope exactly
    /// at step 2000 (minus the log of the transient constant), which random
    /// parameters do not produce.
    #[test]
    fn rate_matches_residual_decay_over_2000_steps(
        (method, lr, beta, spectrum) in scenario(),
        signs in prop::collection::vec(prop::bool::ANY, 20),
        mags in prop::collection::vec(0.5_f64..1.0, 20),
    ) {
        let rho = rate(method, lr, beta, &spectrum).unwrap();
        let c0: Vec<f64> = (0..spectrum.len()).map(|i| if signs[i] { mags[i] } else { -mags[i] }).collect();
        let logs = log_residual_norms(method, lr, beta, &spectrum, &c0, T);
        let measured = ((logs[T] - logs[0]) / T as f64).exp();
        prop_assert!(measured >= 0.99 * rho, "||xi_T||^(1/T) = {measured} vs rho = {rho}");
        let (mut frob, mut first) = (0.0_f64, 0.0_f64);
        for &l in &spectrum {
            let (a, b, f) = coefficients(method, lr, beta, l);
            frob = frob.max((a * a + b * b + 1.0).sqrt());
            first = first.max(f.abs());
        }
        let r = rho + 1e-6;
        let n = (T - 1) as f64;
        let log_bound = n * r.ln() + (1.0 + n * frob / r).ln() + 0.5 * (1.0 + first * first).ln();
        prop_assert!(logs[T] - logs[0] <= log_bound + 1e-9,
            "ln ratio {} > bound {log_bound} (rho = {rho})", logs[T] - logs[0]);
        // The exact certificate (closed-form modal constants) at every step
        // down to where its bound underflows, much tighter than the
        // Frobenius-norm bound above.
        #[cfg(feature = "proptest")]
        {
            let certificate = ntk_momentum::testing::Certificate::new(method, lr, beta, &spectrum).unwrap();
            for (t, l) in logs.iter().enumerate() {
                let bound = certificate.bound(t);
                if bound > 1e-250 {
                    prop_assert!(l - logs[0] <= bound.ln() + 1e-9, "step {t}: ln ratio {} > ln bound {}", l - logs[0], bound.ln());
                }
            }
        }
    }

    /// Vieta: the roots sum to b and multiply to c, largest modulus first, and
    /// rate over a one-point spectrum is the largest modulus.
    #[test]
    fn roots_satisfy_vieta(method in method_strategy(), beta in 0.0_f64..0.999, lr in 0.01_f64..10.0, lambda in 0.0_f64..2.0) {
        let z = roots(method, lr, beta, lambda).unwrap();
        let (a, b, _) = coefficients(method, lr, beta, lambda);
        let sum = z[0] + z[1];
        let prod = z[0] * z[1];
        let scale = 1.0 + a.abs() + b.abs();
        prop_assert!((sum.re - a).abs() <= 1e-6 * scale && sum.im.abs() <= 1e-12 * scale);
        prop_assert!((prod.re - b).abs() <= 1e-12 * scale && prod.im.abs() <= 1e-12 * scale);
        prop_assert!(z[0].norm() >= z[1].norm() - 1e-15);
        let rho = rate(method, lr, beta, &[lambda]).unwrap();
        prop_assert!((rho - z[0].norm()).abs() <= 1e-12 * (1.0 + rho));
        match damping(method, lr, beta, lambda).unwrap() {
            Damping::Underdamped => prop_assert!(z[0].im > 0.0 && z[1].im < 0.0),
            Damping::Critical => prop_assert!(z[0] == z[1]),
            Damping::Overdamped => prop_assert!(z[0].im == 0.0 && z[1].im == 0.0),
        }
    }
}

// ---------------------------------------------------------------------------
// 3. NAG is faster than HB wherever both are underdamped
// ---------------------------------------------------------------------------

proptest! {
    /// NAG is underdamped for ((1 - beta)/(1 + beta))^2 < eta lambda < 1, a
    /// sub-interval of HB's (1 - sqrt beta)^2 < eta lambda < (1 + sqrt beta)^2,
    /// so the pairs underdamped for both methods over a whole spectrum are the
    /// spectra inside NAG's interval; there rate(HB) = sqrt(beta) and
    /// rate(NAG) = sqrt(beta (1 - eta lambda_min)) < rate(HB).
    #[test]
    fn nesterov_beats_heavy_ball_when_both_underdamped(
        beta in 0.01_f64..0.999,
        lr in 1e-3_f64..10.0,
        u in prop::collection::vec(0.0_f64..1.0, 1..30),
    ) {
        let lo = ((1.0 - beta) / (1.0 + beta)).powi(2);
        let spectrum: Vec<f64> = u.iter().map(|u| (lo + (1.0 - lo) * (1e-3 + 0.998 * u)) / lr).collect();
        for &l in &spectrum {
            prop_assert_eq!(damping(Method::HeavyBall, lr, beta, l).unwrap(), Damping::Underdamped);
            prop_assert_eq!(damping(Method::Nesterov, lr, beta, l).unwrap(), Damping::Underdamped);
        }
        let hb = rate(Method::HeavyBall, lr, beta, &spectrum).unwrap();
        let nag = rate(Method::Nesterov, lr, beta, &spectrum).unwrap();
        prop_assert!(nag < hb, "NAG {nag} >= HB {hb}");
        prop_assert!((hb - beta.sqrt()).abs() <= 1e-15);
        let lmin = spectrum.iter().cloned().fold(f64::INFINITY, f64::min);
        prop_assert!((nag - (beta * (1.0 - lr * lmin)).sqrt()).abs() <= 1e-15);
    }

    /// Every (eta lambda, beta) at which NAG is underdamped is underdamped for
    /// HB too, and the NAG mode is the smaller one.
    #[test]
    fn nesterov_underdamped_region_inside_heavy_balls(beta in 0.0_f64..0.999, x in 0.0_f64..4.0) {
        if damping(Method::Nesterov, 1.0, beta, x).unwrap() == Damping::Underdamped {
            prop_assert_eq!(damping(Method::HeavyBall, 1.0, beta, x).unwrap(), Damping::Underdamped);
            prop_assert!(rate(Method::Nesterov, 1.0, beta, &[x]).unwrap() < rate(Method::HeavyBall, 1.0, beta, &[x]).unwrap());
        }
    }
}

// ---------------------------------------------------------------------------
// 4. Stability limits
// ---------------------------------------------------------------------------

proptest! {
    /// At (1 -/+ 1e-3) times max_stable_lr the mode of lambda_max has a root
    /// near -1 of modulus 1 -/+ O(2e-3), so over 20,000 steps the residual
    /// shrinks (and its transient stays bounded) inside and grows by far more
    /// than 1e6 (about e^40) outside.
    #[test]
    fn recursion_bounded_inside_and_growing_outside_the_limit(
        method in method_strategy(),
        beta in 0.0_f64..0.9,
        log_kappa in 0.0_f64..(50.0_f64).ln(),
        u in prop::collection::vec(0.0_f64..1.0, 0..10),
    ) {
        let lmax = 2.5;
        let lmin = lmax / log_kappa.exp();
        let mut spectrum = vec![lmax, lmin];
        spectrum.extend(u.iter().map(|u| lmin + (lmax - lmin) * u));
        let beta = if method == Method::GradientDescent { 0.0 } else { beta };
        let limit = max_stable_lr(method, beta, lmax).unwrap();
        let c0 = vec![1.0; spectrum.len()];
        let steps = 20_000;

        let inside = limit * (1.0 - 1e-3);
        prop_assert!(rate(method, inside, beta, &spectrum).unwrap() < 1.0);
        let logs = log_residual_norms(method, inside, beta, &spectrum, &c0, steps);
        let peak = logs.iter().cloned().fold(f64::NEG_INFINITY, f64::max);
        prop_assert!(peak - logs[0] <= (1e3_f64).ln(), "transient grew by e^{}", peak - logs[0]);
        prop_assert!(logs[steps] < logs[0]);

        let outside = limit * (1.0 + 1e-3);
        prop_assert!(rate(method, outside, beta, &spectrum).unwrap() > 1.0);
        let logs = log_residual_norms(method, outside, beta, &spectrum, &c0, steps);
        prop_assert!(logs[steps] - logs[0] >= (1e6_f64).ln(), "grew only by e^{}", logs[steps] - logs[0]);
    }
}

#[test]
fn rate_is_one_at_the_stability_limit() {
    for method in Method::ALL {
        for beta in [0.0, 0.3, 0.9] {
            let lr = max_stable_lr(method, beta, 2.0).unwrap();
            let rho = rate(method, lr, beta, &[0.5, 2.0]).unwrap();
            assert!((rho - 1.0).abs() < 1e-12, "{method} beta {beta}: {rho}");
        }
    }
    assert_eq!(max_stable_lr(Method::GradientDescent, 0.9, 4.0).unwrap(), 0.5);
    assert_invalid(max_stable_lr(Method::HeavyBall, 0.5, 0.0), "lambda_max");
    assert_invalid(max_stable_lr(Method::HeavyBall, 1.0, 1.0), "momentum");
}

// ---------------------------------------------------------------------------
// 5. Measured rates, and predicted trajectories against direct simulation
// ---------------------------------------------------------------------------

/// loss_0 = 2; steps 1..=9 a transient at 3/4 of it (above the window); then
/// 0.6 rho^(2 (t - 10)) down to 1e-13 of loss_0; then a noisy floor at
/// 1e-14 of loss_0 (below the window). Returns (losses, last geometric step).
fn synthetic_losses(rho: f64) -> (Vec<f64>, usize) {
    let l0 = 2.0;
    let mut losses = vec![l0];
    losses.extend(std::iter::repeat_n(1.5, 9));
    let mut t = 10;
    loop {
        let l = 0.6 * rho.powi(2 * (t as i32 - 10));
        if l < 1e-13 * l0 {
            break;
        }
        losses.push(l);
        t += 1;
    }
    let last = t - 1;
    for k in 0..50 {
        losses.push(1e-14 * l0 * (1.0 + 0.3 * (k as f64).sin()));
    }
    (losses, last)
}

proptest! {
    #[test]
    fn measured_rate_recovers_a_geometric_rate(rho in 0.5_f64..0.999) {
        let (losses, last) = synthetic_losses(rho);
        let fit = measured_rate(&losses, 0.5, 1e-13).unwrap();
        prop_assert!((fit.rate - rho).abs() <= 1e-12 * rho, "fit {} vs {rho}", fit.rate);
        prop_assert_eq!(fit.window, (10, last));
        prop_assert_eq!(fit.points, last - 9);
        prop_assert!(fit.r_squared > 1.0 - 1e-12);
    }
}

#[test]
fn measured_rate_rejects_bad_input() {
    let (losses, _) = synthetic_losses(0.9);
    // Two points only in the window.
    let short = [1.0, 0.1, 0.01, 1e-20];
    assert_invalid(measured_rate(&short, 0.5, 1e-3), "lower_fraction");
    assert!(measured_rate(&[1.0, 0.1, 0.01, 0.001], 0.5, 1e-3).is_ok());
    assert_invalid(measured_rate(&losses, 1e-3, 1e-2), "upper_fraction");
    assert_invalid(measured_rate(&losses, 0.5, 0.0), "lower_fraction");
    assert_invalid(measured_rate(&losses, f64::NAN, 1e-3), "upper_fraction");
    assert_invalid(measured_rate(&[], 0.5, 1e-3), "losses");
    assert_invalid(measured_rate(&[0.0, 0.0, 0.0, 0.0], 0.5, 1e-3), "losses");
    assert_invalid(measured_rate(&[1.0, -0.5, 0.1, 0.01], 0.5, 1e-3), "losses");
    assert!(matches!(
        measured_rate(&[1.0, f64::NAN, 0.1, 0.01], 0.5, 1e-3),
        Err(Error::NonFinite { .. })
    ));
}

#[test]
fn compare_and_speedup_report() {
    let losses: Vec<f64> = (0..400).map(|t| 0.95_f64.powi(2 * t)).collect();
    let fit = measured_rate(&losses, 1e-2, 1e-12).unwrap();
    let c = compare(0.95, fit).unwrap();
    assert!(c.gap.abs() < 1e-10 && c.within(1e-9));
    let c = compare(0.96, fit).unwrap(); // 1 - rho: predicted 0.04, measured 0.05
    assert!((c.gap - 0.25).abs() < 1e-9);
    let text = c.to_string();
    assert!(
        text.contains("+25.0 %") && text.contains("predicted rate 0.960000"),
        "{text}"
    );
    assert_invalid(compare(1.0, fit), "predicted");
    assert_invalid(compare(f64::NAN, fit), "predicted");

    let hb: Vec<f64> = (0..500).map(|t| 0.9_f64.powi(2 * t)).collect();
    let nag: Vec<f64> = (0..500).map(|t| 0.81_f64.powi(2 * t)).collect();
    assert_eq!(speedup(&hb, &nag, 1e-10).unwrap(), 110.0 / 55.0);
    assert!((predicted_speedup(0.9, 0.81).unwrap() - 2.0).abs() < 1e-12);
    assert_invalid(speedup(&hb, &nag[..10], 1e-10), "fraction");
    assert_invalid(speedup(&hb, &nag, 1.0), "fraction");
    assert_invalid(predicted_speedup(1.0, 0.5), "baseline_rate");
}

proptest! {
    /// predicted_losses and predicted_residuals (eigenbasis recursion) against
    /// the matrix recursion with a dense random PSD H, step by step:
    ///
    ///   ||xi_pred - xi_direct|| <= 1e-10 ||xi_direct|| + 1e-12 (1 + t) rho^t ||xi_0||.
    ///
    /// The relative part: both sides round at ~1e-16 per step, the
    /// eigendecomposition perturbs each eigenvalue by ~eps ||H|| (relative
    /// eps kappa for the slowest mode, kappa <= ~100 here), and that error
    /// grows linearly over 300 steps. The floor: rounding leaks ~eps ||xi_0||
    /// into every mode, including the slowest, which then decays no faster
    /// than (1 + t) rho^t; it matters only once the true residual has fallen
    /// below that leakage (xi_0 almost orthogonal to the slow modes, which
    /// proptest's shrinking finds by zeroing entries). Losses are compared the
    /// same way through ||xi|| = sqrt(2 loss).
    #[test]
    fn predicted_trajectory_matches_direct_simulation(
        method in method_strategy(),
        n in 2_usize..24,
        entries in prop::collection::vec(-1.0_f64..1.0, 24 * 24),
        xi in prop::collection::vec(-1.0_f64..1.0, 24),
        beta in 0.0_f64..0.95,
        frac in 0.05_f64..0.95,
    ) {
        let h = random_psd(n, &entries, 0.05);
        let eig = SymmetricEigen::new(h.clone());
        let lmax = eig.eigenvalues.max();
        let beta = if method == Method::GradientDescent { 0.0 } else { beta };
        let lr = frac * max_stable_lr(method, beta, lmax).unwrap();
        let xi0 = DVector::from_column_slice(&xi[..n]);
        let steps = 300;
        let eigenvalues = eig.eigenvalues.as_slice();
        let predicted = predicted_losses(method, lr, beta, eigenvalues, &eig.eigenvectors, &xi0, steps).unwrap();
        let residuals = predicted_residuals(method, lr, beta, eigenvalues, &eig.eigenvectors, &xi0, steps).unwrap();
        let direct = direct_residuals(method, lr, beta, &h, &xi0, steps);
        prop_assert_eq!(predicted.len(), steps + 1);
        prop_assert_eq!(residuals.len(), steps + 1);
        let rho = rate(method, lr, beta, eigenvalues).unwrap();
        for t in 0..=steps {
            let norm = direct[t].norm();
            if norm < 1e-100 * xi0.norm() {
                break; // squares of the coordinates would approach the subnormal range
            }
            let tolerance = 1e-10 * norm + 1e-12 * (1.0 + t as f64) * rho.powi(t as i32) * xi0.norm();
            let loss_err = ((2.0 * predicted[t]).sqrt() - norm).abs();
            prop_assert!(loss_err <= tolerance, "step {t}: loss {} vs {}", predicted[t], 0.5 * norm * norm);
            let err = (&residuals[t] - &direct[t]).norm();
            prop_assert!(err <= tolerance, "step {t}: residual error {err:e} (norm {norm:e})");
        }
    }

    /// The first-step conventions are those of the crate's optimizers: on
    /// least squares L = 1/2 ||J theta - y||^2 the residual recursion is exact,
    /// so GradientDescent, HeavyBall and Nesterov (theta_{-1} = theta_0,
    /// g_{-1} = 0) must reproduce predicted_losses with H = J J^T.
    #[test]
    fn predicted_losses_match_the_optimizers_on_least_squares(
        method in method_strategy(),
        entries in prop::collection::vec(-1.0_f64..1.0, 6 * 15),
        y in prop::collection::vec(-1.0_f64..1.0, 6),
        beta in 0.0_f64..0.95,
        frac in 0.05_f64..0.95,
    ) {
        let (n, p) = (6, 15);
        let j = DMatrix::from_column_slice(n, p, &entries) / (p as f64).sqrt();
        let y = DVector::from_column_slice(&y);
        let h = &j * j.transpose();
        let eig = SymmetricEigen::new(h);
        let beta = if method == Method::GradientDescent { 0.0 } else { beta };
        let lr = frac * max_stable_lr(method, beta, eig.eigenvalues.max()).unwrap();
        let mut theta = DVector::<f64>::zeros(p);
        let xi0 = &j * &theta - &y;
        let steps = 200;
        let predicted = predicted_losses(method, lr, beta, eig.eigenvalues.as_slice(), &eig.eigenvectors, &xi0, steps).unwrap();
        let mut opt: Box<dyn Optimizer<DVector<f64>>> = match method {
            Method::GradientDescent => Box::new(GradientDescent::new(lr).unwrap()),
            Method::HeavyBall => Box::new(HeavyBall::new(lr, beta).unwrap()),
            Method::Nesterov => Box::new(Nesterov::new(lr, beta).unwrap()),
        };
        // Residual norms agree to 1e-9 relative plus an absolute floor of
        // 1e-13 ||xi_0||: the optimizers work in theta-space, where
        // xi = J theta - y is formed with cancellation (J theta -> y) and so
        // carries an absolute rounding error of a few eps (||J|| ||theta|| + ||y||).
        let floor = 1e-13 * xi0.norm();
        for (t, &expected) in predicted.iter().enumerate() {
            let xi = &j * &theta - &y;
            let (norm, expected_norm) = (xi.norm(), (2.0 * expected).sqrt());
            prop_assert!((norm - expected_norm).abs() <= 1e-9 * norm + floor,
                "{method} step {t}: ||xi|| = {norm:e} vs predicted {expected_norm:e}");
            let g = j.transpose() * &xi;
            opt.step(&mut theta, &g).unwrap();
        }
    }
}

// ---------------------------------------------------------------------------
// Input validation and small API contracts
// ---------------------------------------------------------------------------

#[test]
fn spectrum_validation() {
    assert_invalid(rate(Method::HeavyBall, 0.1, 0.5, &[]), "eigenvalues");
    assert!(matches!(
        rate(Method::HeavyBall, 0.1, 0.5, &[1.0, f64::NAN]),
        Err(Error::NonFinite { .. })
    ));
    assert!(matches!(
        rate(Method::HeavyBall, 0.1, 0.5, &[1.0, f64::INFINITY]),
        Err(Error::NonFinite { .. })
    ));
    // Negative beyond rounding: an error naming the value.
    match rate(Method::Nesterov, 0.1, 0.5, &[1.0, -1e-6]) {
        Err(Error::InvalidParameter { name, value, .. }) => {
            assert_eq!(name, "eigenvalues");
            assert!(value.contains("-1e-6") && value.contains("index 1"), "{value}");
        }
        other => panic!("{other:?}"),
    }
    // Rounding-level negatives count as 0.
    for method in Method::ALL {
        let with_negative = rate(method, 0.5, 0.5, &[1.0, -1e-13]).unwrap();
        let with_zero = rate(method, 0.5, 0.5, &[1.0, 0.0]).unwrap();
        assert_eq!(with_negative, with_zero);
        assert_eq!(with_zero, 1.0); // the zero mode never decays
    }
    assert_invalid(rate(Method::HeavyBall, 0.0, 0.5, &[1.0]), "lr");
    assert_invalid(rate(Method::HeavyBall, f64::INFINITY, 0.5, &[1.0]), "lr");
    assert_invalid(rate(Method::HeavyBall, 0.1, 1.0, &[1.0]), "momentum");
    assert_invalid(rate(Method::GradientDescent, 0.1, -0.1, &[1.0]), "momentum");
    assert_invalid(rate(Method::HeavyBall, 1e300, 0.5, &[1e300]), "lr");
    assert_invalid(roots(Method::HeavyBall, 0.1, 0.5, -1.0), "lambda");
    assert_invalid(damping(Method::HeavyBall, 0.1, 0.5, f64::NAN), "lambda");
}

#[test]
fn gradient_descent_ignores_momentum() {
    let spectrum = [0.2, 0.7, 1.3];
    let gd = rate(Method::GradientDescent, 0.8, 0.0, &spectrum).unwrap();
    assert_eq!(gd, rate(Method::GradientDescent, 0.8, 0.9, &spectrum).unwrap());
    assert_eq!(gd, rate(Method::HeavyBall, 0.8, 0.0, &spectrum).unwrap());
    assert!((gd - 0.84).abs() < 1e-15);
    let z = roots(Method::GradientDescent, 0.8, 0.5, 1.3).unwrap();
    assert_eq!((z[0].re, z[0].im, z[1].re), (1.0 - 0.8 * 1.3, 0.0, 0.0));
}

#[test]
fn tuning_validation() {
    for rule in TuningRule::ALL {
        assert_invalid(tune(rule, 0.0, 1.0), "lambda_min");
        assert_invalid(tune(rule, -1.0, 1.0), "lambda_min");
        assert_invalid(tune(rule, f64::NAN, 1.0), "lambda_min");
        assert_invalid(tune(rule, 1.0, 0.5), "lambda_max");
        assert_invalid(tune(rule, 1.0, f64::INFINITY), "lambda_max");
        // kappa = 1: one step solves it.
        let t = tune(rule, 2.0, 2.0).unwrap();
        assert!(
            (t.lr - 0.5).abs() <= 1e-15 && t.momentum == 0.0 && t.rate == 0.0,
            "{t:?}"
        );
    }
}

#[test]
fn step_counts() {
    assert_eq!(steps_to_reach(0.5, 0.25).unwrap(), Some(2));
    assert_eq!(steps_to_reach(0.5, 0.2).unwrap(), Some(3));
    assert_eq!(steps_to_reach(0.1, 1e-10).unwrap(), Some(10)); // ln ratio 10 to rounding
    assert_eq!(steps_to_reach(0.9, 1.0).unwrap(), Some(0));
    assert_eq!(steps_to_reach(0.0, 0.5).unwrap(), Some(1));
    assert_eq!(steps_to_reach(1.0, 0.5).unwrap(), None);
    assert_eq!(steps_to_reach(1.0 - 1e-17, 0.5).unwrap(), None);
    assert_invalid(steps_to_reach(-0.1, 0.5), "rate");
    assert_invalid(steps_to_reach(0.5, 0.0), "target_fraction");
    // Loss fraction f = residual fraction sqrt(f).
    assert_eq!(steps_to_loss_fraction(0.5, 1.0 / 16.0).unwrap(), Some(2));
    assert_invalid(steps_to_loss_fraction(0.5, -1.0), "loss_fraction");
    // Tuned NAG on kappa = 100 reaches a 1e-6 residual in ceil(6 ln 10 / -ln 0.9) = 132 steps.
    let nag = tune(TuningRule::Nesterov, 0.01, 1.0).unwrap();
    assert_eq!(steps_to_reach(nag.rate, 1e-6).unwrap(), Some(132));
}

#[test]
fn trajectory_validation() {
    let v = DMatrix::<f64>::identity(2, 2);
    let xi0 = DVector::from_vec(vec![1.0, 1.0]);
    let eig = [1.0, 0.5];
    let ok = predicted_losses(Method::HeavyBall, 0.5, 0.5, &eig, &v, &xi0, 5).unwrap();
    assert_eq!(ok.len(), 6);
    assert!(matches!(
        predicted_losses(Method::HeavyBall, 0.5, 0.5, &eig, &DMatrix::identity(3, 3), &xi0, 5),
        Err(Error::ShapeMismatch { .. })
    ));
    assert!(matches!(
        predicted_losses(Method::HeavyBall, 0.5, 0.5, &eig, &v, &DVector::zeros(3), 5),
        Err(Error::ShapeMismatch { .. })
    ));
    let skewed = DMatrix::from_row_slice(2, 2, &[1.0, 0.5, 0.0, 1.0]);
    assert_invalid(
        predicted_losses(Method::HeavyBall, 0.5, 0.5, &eig, &skewed, &xi0, 5),
        "eigenvectors",
    );
    let nan = DVector::from_vec(vec![1.0, f64::NAN]);
    assert!(matches!(
        predicted_losses(Method::HeavyBall, 0.5, 0.5, &eig, &v, &nan, 5),
        Err(Error::NonFinite { .. })
    ));
    // Unstable: losses grow, saturate at +inf, never NaN; residuals error out.
    let lr = 3.0 * max_stable_lr(Method::Nesterov, 0.5, 1.0).unwrap();
    let losses = predicted_losses(Method::Nesterov, lr, 0.5, &eig, &v, &xi0, 5000).unwrap();
    assert_eq!(losses.len(), 5001);
    assert!(losses.iter().all(|l| !l.is_nan()) && losses[5000] == f64::INFINITY);
    assert_invalid(
        predicted_residuals(Method::Nesterov, lr, 0.5, &eig, &v, &xi0, 5000),
        "lr",
    );
}

#[test]
fn method_names() {
    let names: Vec<String> = Method::ALL.iter().map(|m| m.to_string()).collect();
    assert_eq!(names, ["GD", "HB", "NAG"]);
    assert_eq!(TuningRule::NesterovQuadraticOptimal.method(), Method::Nesterov);
    // The module is reachable as a path too.
    assert!(theory::rate(Method::Nesterov, 1.0, 0.5, &[1.0]).unwrap() < 1e-15);
}
