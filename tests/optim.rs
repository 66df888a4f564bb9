//! Properties of the optimizers: equivalences, closed forms, convergence at
//! the classical tunings, stability limits, state and errors.
//!
//! Every reference implementation here (look-ahead Nesterov, PyTorch's
//! momentum-buffer recursions) is written independently of the crate. The
//! property tests run through `proptest`'s `TestRunner` so that each can
//! print the largest error it measured: run with
//! `cargo test --test optim -- --nocapture` to see the `[measured]` lines.
#![cfg(feature = "nalgebra")]

use std::cell::Cell;

use nalgebra::{DMatrix, DVector};
use ntk_momentum::{
    Error, Float, GradientDescent, HeavyBall, Nesterov, Optimizer, OptimizerState, ParametersMut, Precision,
};
use proptest::prelude::*;
use proptest::test_runner::{Config, TestCaseError, TestRunner};

// ---------------------------------------------------------------------------
// Test support
// ---------------------------------------------------------------------------

/// SplitMix64: a tiny seeded generator, so the problems depend on nothing but
/// the proptest-drawn seed.
struct Rng(u64);

impl Rng {
    fn new(seed: u64) -> Self {
        Rng(seed)
    }
    fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }
    /// Uniform in [0, 1).
    fn uniform(&mut self) -> f64 {
        (self.next_u64() >> 11) as f64 * (1.0 / (1u64 << 53) as f64)
    }
    /// Standard normal (Box-Muller).
    fn normal(&mut self) -> f64 {
        let u1 = 1.0 - self.uniform(); // (0, 1]
        let u2 = self.uniform();
        (-2.0 * u1.ln()).sqrt() * (2.0 * std::f64::consts::PI * u2).cos()
    }
    fn normal_vec(&mut self, n: usize) -> Vec<f64> {
        (0..n).map(|_| self.normal()).collect()
    }
    /// Log-uniform in [lo, hi].
    fn log_uniform(&mut self, lo: f64, hi: f64) -> f64 {
        (lo.ln() + self.uniform() * (hi.ln() - lo.ln())).exp()
    }
}

/// A random orthogonal n x n matrix (Q factor of a Gaussian matrix).
fn random_orthogonal(n: usize, rng: &mut Rng) -> DMatrix<f64> {
    let g = DMatrix::from_fn(n, n, |_, _| rng.normal());
    g.qr().q()
}

/// A = Q diag(eigenvalues) Q^T for a random orthogonal Q, symmetrised.
fn spd_with_spectrum(eigenvalues: &[f64], rng: &mut Rng) -> DMatrix<f64> {
    let n = eigenvalues.len();
    let q = random_orthogonal(n, rng);
    let a = &q * DMatrix::from_diagonal(&DVector::from_column_slice(eigenvalues)) * q.transpose();
    (&a + a.transpose()) * 0.5
}

/// Euclidean norm computed with scaling, so that it neither underflows nor
/// overflows (test 4 follows errors down to 1e-250).
fn norm(v: &[f64]) -> f64 {
    let m = v.iter().fold(0.0_f64, |a, x| a.max(x.abs()));
    if m == 0.0 || !m.is_finite() {
        return m;
    }
    m * v.iter().map(|x| (x / m) * (x / m)).sum::<f64>().sqrt()
}

fn diff_norm(a: &[f64], b: &[f64]) -> f64 {
    let d: Vec<f64> = a.iter().zip(b).map(|(x, y)| x - y).collect();
    norm(&d)
}

/// Runs a property over `cases` random inputs and returns the largest value
/// the property reported (its measured error), printing it.
fn run_property<S: Strategy>(
    name: &str,
    cases: u32,
    strategy: S,
    property: impl Fn(S::Value) -> Result<f64, TestCaseError>,
) -> f64 {
    let mut runner = TestRunner::new(Config {
        cases,
        failure_persistence: None,
        ..Config::default()
    });
    let max = Cell::new(0.0_f64);
    let result = runner.run(&strategy, |v| {
        let m = property(v)?;
        max.set(max.get().max(m));
        Ok(())
    });
    if let Err(e) = result {
        panic!("{name}: {e}");
    }
    println!("[measured] {name}: max {:.3e} over {cases} cases", max.get());
    max.get()
}

#[derive(Clone, Copy, Debug, PartialEq)]
enum Kind {
    Gd,
    Hb,
    Nag,
}

fn kind() -> impl Strategy<Value = Kind> + Clone {
    prop_oneof![Just(Kind::Gd), Just(Kind::Hb), Just(Kind::Nag)]
}

fn build<P: ParametersMut + 'static>(kind: Kind, lr: f64, momentum: f64) -> Box<dyn Optimizer<P>> {
    match kind {
        Kind::Gd => Box::new(GradientDescent::new(lr).unwrap()),
        Kind::Hb => Box::new(HeavyBall::new(lr, momentum).unwrap()),
        Kind::Nag => Box::new(Nesterov::new(lr, momentum).unwrap()),
    }
}

/// A random problem: the convex objective
/// f(x) = 1/2 x^T A x - b^T x + w * sum_i log cosh(x_i), gradient
/// A x - b + w tanh(x) (w = 0: a strongly convex quadratic).
struct Problem {
    a: DMatrix<f64>,
    b: DVector<f64>,
    x0: DVector<f64>,
    lambda_max: f64,
    tanh_weight: f64,
}

impl Problem {
    /// Eigenvalues log-uniform in [1e-2, 1e2]; `b` and `x0` standard normal.
    fn random(dim: usize, tanh_weight: f64, rng: &mut Rng) -> Self {
        let eig: Vec<f64> = (0..dim).map(|_| rng.log_uniform(1e-2, 1e2)).collect();
        let lambda_max = eig.iter().cloned().fold(0.0, f64::max);
        let a = spd_with_spectrum(&eig, rng);
        let b = DVector::from_vec(rng.normal_vec(dim));
        let x0 = DVector::from_vec(rng.normal_vec(dim));
        Problem {
            a,
            b,
            x0,
            lambda_max,
            tanh_weight,
        }
    }
    fn grad(&self, x: &DVector<f64>) -> DVector<f64> {
        let mut g = &self.a * x - &self.b;
        if self.tanh_weight != 0.0 {
            g += x.map(f64::tanh) * self.tanh_weight;
        }
        g
    }
    /// Stable step size: lr * (largest curvature) = c < 1 (the tanh term adds
    /// curvature at most `tanh_weight`).
    fn lr(&self, c: f64) -> f64 {
        c / (self.lambda_max + self.tanh_weight)
    }
}

/// Runs a crate optimizer for `steps` steps from `x0`; returns θ_0..θ_steps.
fn crate_trajectory(
    opt: &mut dyn Optimizer<DVector<f64>>,
    x0: &DVector<f64>,
    grad: impl Fn(&DVector<f64>) -> DVector<f64>,
    steps: usize,
) -> Vec<DVector<f64>> {
    let mut x = x0.clone();
    let mut out = vec![x.clone()];
    for _ in 0..steps {
        let g = grad(&x);
        opt.step(&mut x, &g).unwrap();
        out.push(x.clone());
    }
    out
}

/// Largest error of `got` against `want`, each step's error taken relative
/// to the largest iterate norm seen so far in `want` (see test 1 for why).
fn max_rel_error(got: &[DVector<f64>], want: &[DVector<f64>]) -> f64 {
    let mut scale = 0.0_f64;
    let mut worst = 0.0_f64;
    for (a, b) in got.iter().zip(want) {
        scale = scale.max(b.norm());
        worst = worst.max((a - b).norm() / scale.max(f64::MIN_POSITIVE));
    }
    worst
}

/// Largest per-step ||a - b|| / ||b|| (the strictest measure; reported only).
fn max_step_rel_error(got: &[DVector<f64>], want: &[DVector<f64>]) -> f64 {
    got.iter()
        .zip(want)
        .map(|(a, b)| (a - b).norm() / b.norm().max(f64::MIN_POSITIVE))
        .fold(0.0, f64::max)
}

// ---------------------------------------------------------------------------
// 1. NAG (gradient-correction form) = look-ahead Nesterov
// ---------------------------------------------------------------------------

/// Nesterov's look-ahead form, written independently of the crate:
/// x_{t+1} = y_t - η ∇f(y_t),  y_{t+1} = x_{t+1} + β (x_{t+1} - x_t),
/// y_0 = x_0. Returns y_0..y_steps (the points where gradients are taken).
fn lookahead_nesterov(
    x0: &DVector<f64>,
    grad: impl Fn(&DVector<f64>) -> DVector<f64>,
    lr: f64,
    beta: f64,
    steps: usize,
) -> Vec<DVector<f64>> {
    let mut x = x0.clone();
    let mut y = x0.clone();
    let mut out = vec![y.clone()];
    for _ in 0..steps {
        let x_next = &y - grad(&y) * lr;
        y = &x_next + (&x_next - &x) * beta;
        x = x_next;
        out.push(y.clone());
    }
    out
}

/// Test 1. Error measure: at step t, ||θ_t - y_t|| / max_{s<=t} ||y_s||.
/// Both forms round at the magnitude of the iterates they combine, so the
/// largest iterate norm so far is the scale of every rounding error made up
/// to step t. Dividing by ||y_t|| alone would blow up spuriously whenever a
/// trajectory passes close to 0 (in dimension 1 it crosses 0 whenever x_0 and
/// x* have opposite signs) without any difference between the two methods;
/// dividing by the initial distance ||x_0 - x*|| would blow up when x_0 starts
/// near x*. The strict per-step ||θ_t - y_t|| / ||y_t|| is printed as well.
#[test]
fn nag_equals_lookahead_nesterov() {
    let strategy = (1usize..=20, 0.05f64..1.0, 0.0f64..0.99, any::<u64>());
    let strict = Cell::new(0.0_f64);
    let worst = run_property(
        "NAG vs look-ahead form, 200 steps",
        256,
        strategy,
        |(dim, c, beta, seed)| {
            let p = Problem::random(dim, 0.0, &mut Rng::new(seed));
            let lr = p.lr(c);
            let mut nag = Nesterov::new(lr, beta).unwrap();
            let got = crate_trajectory(&mut nag, &p.x0, |x| p.grad(x), 200);
            let want = lookahead_nesterov(&p.x0, |x| p.grad(x), lr, beta, 200);
            let err = max_rel_error(&got, &want);
            strict.set(strict.get().max(max_step_rel_error(&got, &want)));
            prop_assert!(err <= 1e-12, "relative error {err:e} (dim {dim}, lr {lr}, beta {beta})");
            Ok(err)
        },
    );
    println!("[measured]   strict per-step ||a-b||/||b||: max {:.3e}", strict.get());
    assert!(
        worst > 0.0,
        "the two forms round differently; an error of exactly 0 means they were not both run"
    );
}

// ---------------------------------------------------------------------------
// 2. NAG and HB = PyTorch's momentum-buffer recursions
// ---------------------------------------------------------------------------

/// PyTorch `SGD(lr, momentum=mu, dampening=0, nesterov)`:
/// b_t = mu b_{t-1} + g_t (b_{-1} = 0, so b_0 = g_0);
/// nesterov: p -= lr (g_t + mu b_t); otherwise p -= lr b_t.
fn pytorch_sgd(
    x0: &DVector<f64>,
    grad: impl Fn(&DVector<f64>) -> DVector<f64>,
    lr: f64,
    mu: f64,
    nesterov: bool,
    steps: usize,
) -> Vec<DVector<f64>> {
    let mut p = x0.clone();
    let mut buf = DVector::zeros(x0.len());
    let mut out = vec![p.clone()];
    for _ in 0..steps {
        let g = grad(&p);
        buf = &buf * mu + &g;
        let d = if nesterov { &g + &buf * mu } else { buf.clone() };
        p -= d * lr;
        out.push(p.clone());
    }
    out
}

/// Test 2, on the non-quadratic convex objective (w = 0.5 log-cosh term) so
/// that the equivalence is checked beyond linear gradients; same error
/// measure as test 1.
#[test]
fn nag_and_heavy_ball_equal_pytorch_recursions() {
    let strategy = (1usize..=20, 0.05f64..1.0, 0.0f64..0.99, any::<u64>());
    for (kind, nesterov) in [(Kind::Nag, true), (Kind::Hb, false)] {
        let name = format!("{kind:?} vs PyTorch SGD(nesterov={nesterov}), 200 steps");
        run_property(&name, 256, strategy.clone(), |(dim, c, mu, seed)| {
            let p = Problem::random(dim, 0.5, &mut Rng::new(seed));
            let lr = p.lr(c);
            let mut opt = build::<DVector<f64>>(kind, lr, mu);
            let got = crate_trajectory(opt.as_mut(), &p.x0, |x| p.grad(x), 200);
            let want = pytorch_sgd(&p.x0, |x| p.grad(x), lr, mu, nesterov, 200);
            let err = max_rel_error(&got, &want);
            prop_assert!(
                err <= 1e-12,
                "relative error {err:e} (dim {dim}, lr {lr}, momentum {mu})"
            );
            Ok(err)
        });
    }
}

// ---------------------------------------------------------------------------
// 3. momentum = 0: GD = HB = NAG, bitwise
// ---------------------------------------------------------------------------

/// Trajectory of raw storage bits, for bitwise comparisons.
fn bits_trajectory<T: Float>(
    opt: &mut dyn Optimizer<Vec<T>>,
    x0: &[T],
    grad: &dyn Fn(&[T]) -> Vec<T>,
    steps: usize,
) -> Vec<Vec<u64>> {
    let mut x = x0.to_vec();
    let mut out = Vec::new();
    for _ in 0..steps {
        let g = grad(&x);
        opt.step(&mut x, &g).unwrap();
        out.push(x.iter().map(|v| v.to_f64().to_bits()).collect());
    }
    out
}

/// Test 3. With β = 0 the velocity recursions collapse exactly: HB computes
/// v = 0·v − η g = −(η g) and θ + v = θ − η g; NAG also subtracts
/// (0·η)(g − g_prev) = 0. Every operation is exact or the same rounding as
/// GD's, so bitwise equality (not just 1e-15) holds and is asserted, in f64
/// and f32, on the non-quadratic objective.
#[test]
fn zero_momentum_makes_all_three_identical_bitwise() {
    fn check<T: Float>(dim: usize, c: f64, seed: u64) -> Result<f64, TestCaseError> {
        let p = Problem::random(dim, 0.5, &mut Rng::new(seed));
        let lr = p.lr(c);
        let x0: Vec<T> = p.x0.iter().map(|&v| T::cast(v)).collect();
        let a: Vec<T> = p.a.iter().map(|&v| T::cast(v)).collect(); // column-major
        let b: Vec<T> = p.b.iter().map(|&v| T::cast(v)).collect();
        let grad = move |x: &[T]| -> Vec<T> {
            (0..dim)
                .map(|i| {
                    let mut s = -b[i];
                    for (j, &xj) in x.iter().enumerate() {
                        s += a[i + j * dim] * xj;
                    }
                    s + T::cast(0.5) * x[i].tanh()
                })
                .collect()
        };
        let gd = bits_trajectory(build::<Vec<T>>(Kind::Gd, lr, 0.0).as_mut(), &x0, &grad, 100);
        let hb = bits_trajectory(build::<Vec<T>>(Kind::Hb, lr, 0.0).as_mut(), &x0, &grad, 100);
        let nag = bits_trajectory(build::<Vec<T>>(Kind::Nag, lr, 0.0).as_mut(), &x0, &grad, 100);
        prop_assert_eq!(&gd, &hb);
        prop_assert_eq!(&gd, &nag);
        Ok(0.0)
    }
    let strategy = (1usize..=20, 0.05f64..1.0, any::<u64>());
    run_property(
        "momentum 0, f64: GD/HB/NAG bitwise difference",
        128,
        strategy.clone(),
        |(d, c, s)| check::<f64>(d, c, s),
    );
    run_property(
        "momentum 0, f32: GD/HB/NAG bitwise difference",
        128,
        strategy,
        |(d, c, s)| check::<f32>(d, c, s),
    );
}

// ---------------------------------------------------------------------------
// 4. Linear convergence at the classical tunings (theory::tune)
// ---------------------------------------------------------------------------

/// Tuned (η, β) and the closed-form rate ρ for condition number κ.
fn tuned(kind: Kind, lmin: f64, lmax: f64) -> (f64, f64, f64) {
    let k = lmax / lmin;
    let sk = k.sqrt();
    match kind {
        Kind::Gd => (2.0 / (lmin + lmax), 0.0, (k - 1.0) / (k + 1.0)),
        Kind::Hb => {
            let r = (sk - 1.0) / (sk + 1.0);
            (4.0 / (lmax.sqrt() + lmin.sqrt()).powi(2), r * r, r)
        }
        Kind::Nag => (1.0 / lmax, (sk - 1.0) / (sk + 1.0), 1.0 - 1.0 / sk),
    }
}

/// The constant C in ||x_t − x*|| ≤ C (t + 1) ρ^t ||x_0 − x*||.
///
/// Derivation. A is symmetric, so in its eigenbasis every coordinate e_t of
/// x_t − x* evolves on its own. GD: e_{t+1} = (1 − ηλ) e_t with
/// |1 − ηλ| ≤ (κ−1)/(κ+1) = ρ on [λmin, λmax], so C = 1. HB and NAG: e_t obeys
/// e_{t+1} = a e_t − c e_{t−1}, whose 2x2 companion matrix has roots z1, z2.
/// With U_n = Σ_{k=0..n} z1^k z2^{n−k} (U_{−1} = 0, U_0 = 1), the solution is
/// e_{t} = U_{t−1} e_1 − c U_{t−2} e_0, and |U_n| ≤ (n + 1) ρ^n as soon as
/// |z1|, |z2| ≤ ρ — the Jordan-block growth (n + 1) z^n at a double root is
/// the worst case — while |c| = |z1 z2| ≤ ρ².
/// - HB (a = 1 + β − ηλ, c = β): at the tuned (η, β) the discriminant
///   (1 + β − ηλ)² − 4β is 0 at λmin and λmax (critical damping) and negative
///   between, so |z1| = |z2| = √β = ρ for every mode. θ_{−1} = θ_0 gives
///   e_1 = (1 − ηλ) e_0 = (a − c) e_0, hence e_t = (U_t − c U_{t−1}) e_0 and
///   |e_t| ≤ ((t + 1) ρ^t + ρ² t ρ^{t−1}) |e_0| ≤ (1 + ρ)(t + 1) ρ^t |e_0|:
///   C = 1 + ρ ≤ 2.
/// - NAG (a = (1 + β) s, c = β s, s = 1 − ηλ ∈ [0, 1 − 1/κ]): with
///   q = 1/√κ one has β = (1 − q)/(1 + q), the discriminant s((1 + β)² s − 4β)
///   vanishes at s = 1 − q² (λ = λmin: a double root at √(β(1 − q²)) = 1 − q
///   = ρ) and is negative below it, so every root has modulus √(βs) ≤ ρ. The
///   first step is e_1 = (1 − (1 + β) ηλ) e_0 with |e_1| ≤ |e_0| (its factor
///   lies in [−β, 1)), so |e_t| ≤ t ρ^{t−1} + ρ² (t − 1) ρ^{t−2}
///   ≤ ((1 + ρ)/ρ)(t + 1) ρ^t |e_0|: C = (1 + ρ)/ρ, which is ≤ 3 when ρ ≥ 0.5
///   and ≤ 4.42 for κ ≥ 2 (ρ ≥ 1 − 1/√2).
///
/// All three are far below the C ≤ 20. Summing the squared mode bounds
/// gives the bound on the Euclidean norm.
fn constant_c(kind: Kind, rho: f64) -> f64 {
    match kind {
        Kind::Gd => 1.0,
        Kind::Hb => 1.0 + rho,
        Kind::Nag => (1.0 + rho) / rho,
    }
}

/// Test 4. x* = 0 (f(x) = 1/2 x^T A x): all three updates are translation
/// invariant (they see θ only through differences and gradients), so this
/// loses no generality in exact arithmetic, and in floating point it removes
/// the absolute rounding floor ε||x*|| that would otherwise stop the decay:
/// the rate is checked over all 500 steps, down to 1e-250 (below that
/// subnormal arithmetic loses relative precision, and there only
/// ||x_t|| ≤ 1e-250 is asserted). Slack 1.01 covers rounding: the computed A
/// has eigenvalues off by ~nε λmax, which splits the critically damped double
/// roots by ~√(nε) ≈ 1e-7 and changes ρ^500 by less than 0.1%.
#[test]
fn tuned_parameters_converge_at_the_closed_form_rates() {
    const STEPS: usize = 500;
    const SLACK: f64 = 1.01;
    const FLOOR: f64 = 1e-250;
    // log10 κ uniform in [log10 2, 4]: κ in [2, 1e4].
    let strategy = (2f64.log10()..=4.0, 2usize..=30, any::<u64>());
    for kind in [Kind::Gd, Kind::Hb, Kind::Nag] {
        // Reported: the empirical constant max_t ||x_t|| / ((t+1) ρ^t ||x_0||).
        let name = format!("{kind:?} tuned rate: empirical C (derived C: GD 1, HB 1+rho, NAG (1+rho)/rho)");
        let c_max = run_property(&name, 128, strategy.clone(), |(log_kappa, dim, seed)| {
            let mut rng = Rng::new(seed);
            let kappa = 10f64.powf(log_kappa);
            let lmin = rng.log_uniform(1e-1, 1e1);
            let lmax = lmin * kappa;
            let mut eig = vec![lmin, lmax];
            eig.extend((2..dim).map(|_| rng.log_uniform(lmin, lmax)));
            let a = spd_with_spectrum(&eig, &mut rng);
            let x0 = DVector::from_vec(rng.normal_vec(dim));
            let (lr, beta, rho) = tuned(kind, lmin, lmax);
            let c = constant_c(kind, rho);
            prop_assert!(c <= 20.0);
            let mut opt = build::<DVector<f64>>(kind, lr, beta);
            let traj = crate_trajectory(opt.as_mut(), &x0, |x| &a * x, STEPS);
            let e0 = norm(x0.as_slice());
            let mut c_emp = 0.0_f64;
            for (t, x) in traj.iter().enumerate() {
                // (t + 1) ρ^t ||x_0|| in logs: ρ^500 underflows for small κ.
                let log_shape = ((t + 1) as f64).ln() + t as f64 * rho.ln() + e0.ln();
                let bound = c * log_shape.exp();
                let err = norm(x.as_slice());
                if bound >= FLOOR {
                    c_emp = c_emp.max(err / log_shape.exp());
                    prop_assert!(
                        err <= SLACK * bound,
                        "{kind:?} kappa {kappa} dim {dim}: step {t}: ||x_t - x*|| = {err:e} > C (t+1) rho^t ||x_0|| \
                         = {bound:e} (rho {rho}, C {c})"
                    );
                } else {
                    prop_assert!(
                        err <= FLOOR,
                        "{kind:?} kappa {kappa}: step {t}: {err:e} above the floor"
                    );
                }
            }
            Ok(c_emp)
        });
        assert!(c_max >= 1.0, "t = 0 alone gives ratio 1");
    }
}

/// The tuned rates are not loose: at the tuned parameters every method's
/// slowest mode decays at exactly ρ, so starting on the λmin eigenvector the
/// error after 200 steps is at least ρ^200 ||x_0|| (GD: exactly ρ^t; HB:
/// ((t+1) − tρ) ρ^t; NAG: (t (m − ρ) + ρ) ρ^{t−1} with m = 1 − (1+β)/κ > ρ,
/// see `constant_c`). A closed-form ρ that is too small fails the upper bound
/// above; one that is too large (a bound that could never fail) fails this.
#[test]
fn tuned_rates_are_attained_on_the_slowest_mode() {
    for kind in [Kind::Gd, Kind::Hb, Kind::Nag] {
        for &kappa in &[2.0, 10.0, 100.0, 1e4] {
            let (lmin, lmax) = (1.0, kappa);
            let (lr, beta, rho) = tuned(kind, lmin, lmax);
            let mut opt = build::<Vec<f64>>(kind, lr, beta);
            // Diagonal A = diag(lmin, lmax), x_0 = e_1.
            let mut x = vec![1.0, 0.0];
            let t = 200;
            for _ in 0..t {
                let g = vec![lmin * x[0], lmax * x[1]];
                opt.step(&mut x, &g).unwrap();
            }
            let err = norm(&x);
            let lower = rho.powi(t);
            let upper = constant_c(kind, rho) * (t as f64 + 1.0) * lower;
            println!(
                "[measured] {kind:?} kappa {kappa}: ||x_200||/rho^200 = {:.4}",
                err / lower
            );
            assert!(
                err >= 0.999 * lower && err <= upper,
                "{kind:?} kappa {kappa}: {err:e} not in [{lower:e}, {upper:e}]"
            );
        }
    }
}

// ---------------------------------------------------------------------------
// 5. f32 and f64; Vec, DVector, DMatrix
// ---------------------------------------------------------------------------

/// Containers built from a flat storage-order vector.
trait Container: ParametersMut + Clone + 'static {
    fn from_storage(v: Vec<Self::Scalar>, rows: usize, cols: usize) -> Self;
    /// The one tensor's entries.
    fn as_slice(&self) -> &[Self::Scalar] {
        self.tensor(0).unwrap().1
    }
}

impl<T: Float> Container for Vec<T> {
    fn from_storage(v: Vec<T>, _: usize, _: usize) -> Self {
        v
    }
}

impl<T: Float> Container for DVector<T> {
    fn from_storage(v: Vec<T>, _: usize, _: usize) -> Self {
        DVector::from_vec(v)
    }
}

impl<T: Float> Container for DMatrix<T> {
    fn from_storage(v: Vec<T>, rows: usize, cols: usize) -> Self {
        DMatrix::from_vec(rows, cols, v)
    }
}

/// The quadratic of a `Problem` in precision T on flat storage (A
/// column-major, fixed loop order, so every container sees identical
/// gradients for identical storage).
struct FlatQuadratic<T> {
    n: usize,
    a: Vec<T>,
    b: Vec<T>,
}

impl<T: Float> FlatQuadratic<T> {
    fn new(p: &Problem) -> Self {
        FlatQuadratic {
            n: p.b.len(),
            a: p.a.iter().map(|&v| T::cast(v)).collect(),
            b: p.b.iter().map(|&v| T::cast(v)).collect(),
        }
    }
    fn grad(&self, x: &[T]) -> Vec<T> {
        (0..self.n)
            .map(|i| {
                let mut s = -self.b[i];
                for (j, &xj) in x.iter().enumerate() {
                    s += self.a[i + j * self.n] * xj;
                }
                s
            })
            .collect()
    }
}

/// Runs `kind` on container P (shape rows x cols) and returns the iterates'
/// storage.
fn container_trajectory<P: Container>(
    kind: Kind,
    lr: f64,
    beta: f64,
    q: &FlatQuadratic<P::Scalar>,
    x0: &[f64],
    (rows, cols): (usize, usize),
    steps: usize,
) -> Vec<Vec<P::Scalar>> {
    let mut opt = build::<P>(kind, lr, beta);
    let mut x = P::from_storage(x0.iter().map(|&v| P::Scalar::cast(v)).collect(), rows, cols);
    let mut out = vec![x.as_slice().to_vec()];
    for _ in 0..steps {
        let g = P::from_storage(q.grad(x.as_slice()), rows, cols);
        opt.step(&mut x, &g).unwrap();
        out.push(x.as_slice().to_vec());
    }
    out
}

fn to_bits<T: Float>(traj: &[Vec<T>]) -> Vec<Vec<u64>> {
    traj.iter()
        .map(|x| x.iter().map(|v| v.to_f64().to_bits()).collect())
        .collect()
}

/// Test 5. The update is elementwise on the storage slice, so Vec<T>,
/// DVector<T> and DMatrix<T> (any rows x cols with the same storage) must give
/// bitwise the same trajectory. f32 against f64: the f32 run rounds at
/// ε32 ≈ 6e-8 per step and the stable error dynamics (κ ≤ 100, λmax η ≤ 0.5)
/// amplify it by at most ~Σ_k C (k+1) ρ^k; the stated tolerance is 1e-5 of
/// the trajectory's scale (max_s ||θ_s||, as in test 1), and f32 must also
/// actually differ from f64 (else the f32 path was not exercised).
#[test]
fn containers_agree_bitwise_and_f32_tracks_f64() {
    fn same_across_containers<T: Float>(
        kind: Kind,
        lr: f64,
        beta: f64,
        p: &Problem,
        rows: usize,
        cols: usize,
    ) -> Result<Vec<Vec<T>>, TestCaseError> {
        let q = FlatQuadratic::<T>::new(p);
        let x0 = p.x0.as_slice();
        let v = container_trajectory::<Vec<T>>(kind, lr, beta, &q, x0, (rows, cols), 150);
        let dv = container_trajectory::<DVector<T>>(kind, lr, beta, &q, x0, (rows, cols), 150);
        let dm = container_trajectory::<DMatrix<T>>(kind, lr, beta, &q, x0, (rows, cols), 150);
        prop_assert_eq!(to_bits(&v), to_bits(&dv), "Vec vs DVector");
        prop_assert_eq!(to_bits(&v), to_bits(&dm), "Vec vs DMatrix {}x{}", rows, cols);
        Ok(v)
    }
    let strategy = (kind(), 1usize..=5, 1usize..=5, 0.0f64..0.95, any::<u64>());
    let worst = run_property(
        "f32 vs f64 trajectory (relative to max ||theta||)",
        128,
        strategy,
        |(kind, rows, cols, beta, seed)| {
            let dim = rows * cols;
            let mut rng = Rng::new(seed);
            let eig: Vec<f64> = (0..dim).map(|_| rng.log_uniform(1.0, 100.0)).collect();
            let lambda_max = eig.iter().cloned().fold(0.0, f64::max);
            let a = spd_with_spectrum(&eig, &mut rng);
            let p = Problem {
                b: DVector::from_vec(rng.normal_vec(dim)),
                x0: DVector::from_vec(rng.normal_vec(dim)),
                a,
                lambda_max,
                tanh_weight: 0.0,
            };
            let lr = p.lr(0.5);
            let t64 = same_across_containers::<f64>(kind, lr, beta, &p, rows, cols)?;
            let t32 = same_across_containers::<f32>(kind, lr, beta, &p, rows, cols)?;
            let mut scale = 0.0_f64;
            let mut worst = 0.0_f64;
            let mut differs = false;
            for (x64, x32) in t64.iter().zip(&t32) {
                let x32: Vec<f64> = x32.iter().map(|&v| v as f64).collect();
                scale = scale.max(norm(x64));
                let e = diff_norm(&x32, x64) / scale;
                differs |= e > 0.0;
                worst = worst.max(e);
            }
            prop_assert!(worst <= 1e-5, "{kind:?}: f32 off f64 by {worst:e}");
            prop_assert!(differs, "f32 trajectory equals the f64 one exactly");
            Ok(worst)
        },
    );
    assert!(worst > 1e-9);
}

// ---------------------------------------------------------------------------
// 6. State: save / restore / reset
// ---------------------------------------------------------------------------

/// A comparable, bitwise image of a state (f32 and f64 both widen exactly).
type StateBits = (
    String,
    Vec<(String, u64)>,
    u64,
    Option<Precision>,
    Vec<(Vec<usize>, Vec<(String, Vec<u64>)>)>,
);

fn state_bits(s: &OptimizerState) -> StateBits {
    (
        s.optimizer.clone(),
        s.hyperparameters
            .iter()
            .map(|(n, v)| (n.clone(), v.to_bits()))
            .collect(),
        s.step,
        s.precision,
        s.tensors
            .iter()
            .map(|t| {
                let buffers = t
                    .buffers
                    .iter()
                    .map(|(n, b)| (n.clone(), b.iter().map(|v| v.to_bits()).collect()));
                (t.shape.clone(), buffers.collect())
            })
            .collect(),
    )
}

/// Runs k steps, saves the state, restores it into a freshly constructed
/// optimizer and checks both continue bit-identically for `more` steps.
fn check_resume<P: Container>(
    kind: Kind,
    k: usize,
    more: usize,
    seed: u64,
    rows: usize,
    cols: usize,
) -> Result<(), TestCaseError> {
    let dim = rows * cols;
    let p = Problem::random(dim, 0.0, &mut Rng::new(seed));
    let q = FlatQuadratic::<P::Scalar>::new(&p);
    let lr = p.lr(0.8);
    let beta = 0.9;
    let mut a = build::<P>(kind, lr, beta);
    let mut x = P::from_storage(p.x0.iter().map(|&v| P::Scalar::cast(v)).collect(), rows, cols);
    for _ in 0..k {
        let g = P::from_storage(q.grad(x.as_slice()), rows, cols);
        a.step(&mut x, &g).unwrap();
    }
    let saved = a.state();
    prop_assert_eq!(saved.step, k as u64);
    prop_assert_eq!(saved.precision.is_some(), k > 0);
    let mut b = build::<P>(kind, lr, beta);
    b.set_state(&saved).unwrap();
    prop_assert_eq!(state_bits(&b.state()), state_bits(&saved));
    let mut y = x.clone();
    for _ in 0..more {
        let g = P::from_storage(q.grad(x.as_slice()), rows, cols);
        a.step(&mut x, &g).unwrap();
        let h = P::from_storage(q.grad(y.as_slice()), rows, cols);
        b.step(&mut y, &h).unwrap();
        prop_assert_eq!(to_bits(&[x.as_slice().to_vec()]), to_bits(&[y.as_slice().to_vec()]));
    }
    prop_assert_eq!(state_bits(&a.state()), state_bits(&b.state()));
    Ok(())
}

/// Test 6a: save after k steps, restore into a fresh optimizer, continue
/// bit-identically (f64 Vec, f32 DMatrix).
#[test]
fn restored_state_continues_bit_identically() {
    let strategy = (kind(), 0usize..60, 1usize..=4, 1usize..=4, any::<u64>());
    run_property(
        "resume after k steps (f64 Vec), bitwise",
        128,
        strategy.clone(),
        |(kind, k, r, c, seed)| check_resume::<Vec<f64>>(kind, k, 40, seed, r * c, 1).map(|_| 0.0),
    );
    run_property(
        "resume after k steps (f32 DMatrix), bitwise",
        128,
        strategy,
        |(kind, k, r, c, seed)| check_resume::<DMatrix<f32>>(kind, k, 40, seed, r, c).map(|_| 0.0),
    );
}

/// Test 6b: `reset()` forgets everything but the hyper-parameters; the next
/// step is a first step (NAG: −η(1 + β) g_0), and a new shape is accepted.
#[test]
fn reset_makes_the_next_step_a_first_step() {
    let strategy = (kind(), 1usize..30, 1usize..=10, 0.0f64..0.99, any::<u64>());
    let worst = run_property(
        "reset: first step vs -lr(1+beta)g (relative)",
        128,
        strategy,
        |(kind, k, dim, beta, seed)| {
            let p = Problem::random(dim, 0.0, &mut Rng::new(seed));
            let lr = p.lr(0.7);
            let mut opt = build::<DVector<f64>>(kind, lr, beta);
            let fresh_state = opt.state();
            let mut x = p.x0.clone();
            for _ in 0..k {
                let g = p.grad(&x);
                opt.step(&mut x, &g).unwrap();
            }
            prop_assert_ne!(state_bits(&opt.state()), state_bits(&fresh_state));
            opt.reset();
            prop_assert_eq!(state_bits(&opt.state()), state_bits(&fresh_state));

            // The next step equals a fresh optimizer's first step, bitwise...
            let g0 = p.grad(&x);
            let mut fresh = build::<DVector<f64>>(kind, lr, beta);
            let mut x_fresh = x.clone();
            fresh.step(&mut x_fresh, &g0).unwrap();
            let x_before = x.clone();
            opt.step(&mut x, &g0).unwrap();
            prop_assert_eq!(
                to_bits(&[x.as_slice().to_vec()]),
                to_bits(&[x_fresh.as_slice().to_vec()])
            );
            // ...and is -η g_0 (GD, HB) or -η (1 + β) g_0 (NAG) up to rounding.
            let factor = if kind == Kind::Nag { lr * (1.0 + beta) } else { lr };
            let want = &g0 * -factor;
            let got = &x - &x_before;
            let err = (&got - &want).norm() / x_before.norm().max(want.norm());
            prop_assert!(err <= 1e-15, "{kind:?}: first step after reset off by {err:e}");

            // After a reset the shape may change.
            opt.reset();
            let mut z = DVector::from_element(dim + 1, 1.0);
            let gz = DVector::from_element(dim + 1, 1.0);
            prop_assert!(opt.step(&mut z, &gz).is_ok());
            Ok(err)
        },
    );
    println!("[measured]   (the NAG first step is computed as -lr*g - (beta*lr)*g)");
    assert!(worst <= 1e-15);
}

// ---------------------------------------------------------------------------
// 7. Bad input is rejected, state untouched
// ---------------------------------------------------------------------------

/// Asserts `err` is `InvalidParameter` for `name` with `value`, and that the
/// message names both.
fn assert_invalid(err: Error, name: &str, value: &str) {
    let msg = err.to_string();
    match &err {
        Error::InvalidParameter { name: n, value: v, .. } => {
            assert_eq!(*n, name, "{msg}");
            assert_eq!(v, value, "{msg}");
        }
        other => panic!("expected InvalidParameter for {name}, got {other:?}"),
    }
    assert!(
        msg.contains(name) && msg.contains(value) && msg.contains("expected"),
        "message {msg:?}"
    );
}

#[test]
fn bad_hyperparameters_are_rejected() {
    for (lr, shown) in [
        (0.0, "0"),
        (-0.0, "-0"),
        (-1.0, "-1"),
        (f64::NAN, "NaN"),
        (f64::INFINITY, "inf"),
        (f64::NEG_INFINITY, "-inf"),
    ] {
        assert_invalid(GradientDescent::new(lr).unwrap_err(), "lr", shown);
        assert_invalid(HeavyBall::new(lr, 0.5).unwrap_err(), "lr", shown);
        assert_invalid(Nesterov::new(lr, 0.5).unwrap_err(), "lr", shown);
    }
    for (m, shown) in [
        (-0.1, "-0.1"),
        (1.0, "1"),
        (1.5, "1.5"),
        (f64::NAN, "NaN"),
        (f64::INFINITY, "inf"),
        (f64::NEG_INFINITY, "-inf"),
    ] {
        assert_invalid(HeavyBall::new(0.1, m).unwrap_err(), "momentum", shown);
        assert_invalid(Nesterov::new(0.1, m).unwrap_err(), "momentum", shown);
        let msg = Nesterov::new(0.1, m).unwrap_err().to_string();
        assert!(msg.contains("[0, 1)"), "{msg}");
    }
    // The boundaries that are allowed.
    assert!(HeavyBall::new(f64::MIN_POSITIVE, 0.0).is_ok());
    assert!(Nesterov::new(1e300, 0.999_999).is_ok());
    // A step size must survive the conversion to the optimizer's float type:
    // in f32, 1e39 would be +inf and 1e-50 would be 0.
    // The float type is fixed by the first step, which checks it.
    for lr in [1e39, 1e-50] {
        for kind in [Kind::Gd, Kind::Hb, Kind::Nag] {
            let mut opt = build::<Vec<f32>>(kind, lr, 0.5);
            let mut x = vec![1.0f32];
            let err = opt.step(&mut x, &vec![1.0f32]).unwrap_err();
            assert!(err.to_string().contains("f32"), "{err}");
            assert_invalid(err, "lr", &lr.to_string());
            assert_eq!(x, vec![1.0f32]);
            assert_eq!(opt.state().step, 0);
            build::<Vec<f64>>(kind, lr, 0.5)
                .step(&mut vec![1.0f64], &vec![1.0f64])
                .unwrap();
        }
    }
}

/// Runs `bad` on a copy of an optimizer that has taken 3 steps, and checks it
/// fails with params and state bit-identical to before.
fn assert_step_rejected<P: Container>(opt: &mut dyn Optimizer<P>, params: &mut P, grad: &P) -> Error {
    let params_before = to_bits(&[params.as_slice().to_vec()]);
    let state_before = state_bits(&opt.state());
    let err = opt.step(params, grad).unwrap_err();
    assert_eq!(
        to_bits(&[params.as_slice().to_vec()]),
        params_before,
        "params changed by a failed step ({err})"
    );
    assert_eq!(
        state_bits(&opt.state()),
        state_before,
        "state changed by a failed step ({err})"
    );
    err
}

fn warmed_up<P: Container>(kind: Kind, rows: usize, cols: usize) -> (Box<dyn Optimizer<P>>, P) {
    let mut opt = build::<P>(kind, 0.1, 0.9);
    let n = rows * cols;
    let mut x = P::from_storage((0..n).map(|i| P::Scalar::cast(i as f64 + 1.0)).collect(), rows, cols);
    for _ in 0..3 {
        let g = x.clone();
        opt.step(&mut x, &g).unwrap();
    }
    (opt, x)
}

#[test]
fn bad_steps_are_rejected_with_state_untouched() {
    for kind in [Kind::Gd, Kind::Hb, Kind::Nag] {
        // Gradient shape differs from the parameters.
        let (mut opt, mut x) = warmed_up::<Vec<f64>>(kind, 3, 1);
        let err = assert_step_rejected(opt.as_mut(), &mut x, &vec![1.0; 4]);
        assert!(
            matches!(&err, Error::ShapeMismatch { what, expected, found }
            if what == "gradient of parameters" && expected == "3" && found == "4"),
            "{err:?}"
        );
        assert!(err.to_string().contains("gradient"), "{err}");

        // Same for a fresh optimizer (nothing recorded yet).
        let mut fresh = build::<Vec<f64>>(kind, 0.1, 0.9);
        let err = assert_step_rejected(fresh.as_mut(), &mut vec![1.0; 2], &vec![1.0; 3]);
        assert!(matches!(err, Error::ShapeMismatch { .. }), "{err:?}");

        // DMatrix: same number of entries, transposed shape.
        let (mut opt, mut x) = warmed_up::<DMatrix<f32>>(kind, 2, 3);
        let err = assert_step_rejected(opt.as_mut(), &mut x, &DMatrix::from_element(3, 2, 1.0));
        assert!(
            matches!(&err, Error::ShapeMismatch { what, expected, found }
            if what == "gradient of parameters" && expected == "2 x 3" && found == "3 x 2"),
            "{err:?}"
        );

        // Parameters (and gradient) of a shape different from the previous step's.
        let (mut opt, _) = warmed_up::<DMatrix<f64>>(kind, 2, 3);
        let mut y = DMatrix::from_element(3, 2, 1.0);
        let gy = DMatrix::from_element(3, 2, 1.0);
        let err = assert_step_rejected(opt.as_mut(), &mut y, &gy);
        match &err {
            Error::ShapeMismatch { what, expected, found } => {
                assert!(what.starts_with("parameters"), "{err}");
                assert_eq!((expected.as_str(), found.as_str()), ("2 x 3", "3 x 2"));
            }
            other => panic!("{other:?}"),
        }
        assert!(
            err.to_string().contains("reset()"),
            "the message says how to change the shape: {err}"
        );

        // Non-finite gradient entries.
        for bad in [f64::NAN, f64::INFINITY, f64::NEG_INFINITY] {
            let (mut opt, mut x) = warmed_up::<DVector<f64>>(kind, 4, 1);
            let mut g = DVector::from_element(4, 0.5);
            g[2] = bad;
            let err = assert_step_rejected(opt.as_mut(), &mut x, &g);
            match &err {
                Error::NonFinite { what, location } => {
                    assert_eq!(what, "gradient of parameters");
                    assert!(
                        location.contains("entry 2") && location.contains(&bad.to_string()),
                        "{location}"
                    );
                }
                other => panic!("{other:?}"),
            }
        }
        // In f32 too, and on the very first step.
        let mut fresh = build::<Vec<f32>>(kind, 0.1, 0.9);
        let err = assert_step_rejected(fresh.as_mut(), &mut vec![1.0f32; 3], &vec![0.0, 0.0, f32::NAN]);
        assert!(matches!(err, Error::NonFinite { .. }), "{err:?}");
    }
}

/// Restores `state` into `opt` and checks the failure leaves its state intact.
fn assert_set_state_rejected<P: Container>(opt: &mut dyn Optimizer<P>, state: OptimizerState) -> Error {
    let before = state_bits(&opt.state());
    let err = opt.set_state(&state).unwrap_err();
    assert_eq!(
        state_bits(&opt.state()),
        before,
        "state changed by a failed set_state ({err})"
    );
    err
}

#[test]
fn bad_states_are_rejected_with_state_untouched() {
    let (hb, _) = warmed_up::<Vec<f64>>(Kind::Hb, 3, 1);
    let (nag, _) = warmed_up::<Vec<f64>>(Kind::Nag, 3, 1);
    let (gd, _) = warmed_up::<Vec<f64>>(Kind::Gd, 3, 1);

    // A state from another optimizer.
    for (target, source) in [(Kind::Nag, &hb), (Kind::Hb, &nag), (Kind::Gd, &nag), (Kind::Nag, &gd)] {
        let (mut opt, _) = warmed_up::<Vec<f64>>(target, 3, 1);
        let err = assert_set_state_rejected(opt.as_mut(), source.state());
        assert_invalid(err, "state.optimizer", &format!("\"{}\"", source.state().optimizer));
    }

    // Other hyper-parameters are accepted: the state carries over to an
    // optimizer with another step size or momentum, which keeps its own.
    for (lr, m) in [(0.2, 0.9), (0.1, 0.8)] {
        let mut opt = build::<Vec<f64>>(Kind::Nag, lr, m);
        opt.set_state(&nag.state()).unwrap();
        let restored = opt.state();
        assert_eq!(restored.tensors, nag.state().tensors);
        assert_eq!(restored.hyperparameters[0].1, lr);
        assert_eq!(restored.hyperparameters[1].1, m);
    }

    // Buffers of the wrong length, missing, extra or misnamed.
    for kind in [Kind::Hb, Kind::Nag] {
        let source = if kind == Kind::Hb { &hb } else { &nag };
        for b in 0..source.state().tensors[0].buffers.len() {
            for len in [2, 4, 0] {
                let mut s = source.state();
                let name = s.tensors[0].buffers[b].0.clone();
                s.tensors[0].buffers[b].1.resize(len, 0.0);
                let (mut opt, _) = warmed_up::<Vec<f64>>(kind, 3, 1);
                let err = assert_set_state_rejected(opt.as_mut(), s);
                match &err {
                    Error::ShapeMismatch { what, expected, found } => {
                        assert!(what.contains(&name), "{err}");
                        assert!(expected.starts_with("3 entries"), "{err}");
                        assert_eq!(found, &format!("{len} entries"));
                    }
                    other => panic!("{other:?}"),
                }
            }
        }
        let mut missing = source.state();
        missing.tensors[0].buffers.pop();
        let mut misnamed = source.state();
        misnamed.tensors[0].buffers[0].0 = "momentum_buffer".into();
        let mut extra = source.state();
        extra.tensors[0].buffers.push(("extra".into(), vec![0.0; 3]));
        for s in [missing, misnamed, extra] {
            let (mut opt, _) = warmed_up::<Vec<f64>>(kind, 3, 1);
            let err = assert_set_state_rejected(opt.as_mut(), s);
            assert!(
                matches!(
                    &err,
                    Error::InvalidParameter {
                        name: "state.tensors.buffers",
                        ..
                    }
                ),
                "{err:?}"
            );
        }
        // Shape that disagrees with the buffers.
        let mut s = source.state();
        s.tensors[0].shape = vec![2, 2];
        let (mut opt, _) = warmed_up::<Vec<f64>>(kind, 3, 1);
        let err = assert_set_state_rejected(opt.as_mut(), s);
        assert!(matches!(err, Error::ShapeMismatch { .. }), "{err:?}");
        // A shape whose entry count overflows usize is an error, not a panic.
        let mut s = source.state();
        s.tensors[0].shape = vec![usize::MAX, 2];
        let (mut opt, _) = warmed_up::<Vec<f64>>(kind, 3, 1);
        let err = assert_set_state_rejected(opt.as_mut(), s);
        assert!(matches!(err, Error::ShapeMismatch { .. }), "{err:?}");
        // Non-finite buffer entries would turn every later iterate into NaN.
        let mut s = source.state();
        s.tensors[0].buffers[0].1[1] = f64::NAN;
        let (mut opt, _) = warmed_up::<Vec<f64>>(kind, 3, 1);
        let err = assert_set_state_rejected(opt.as_mut(), s);
        assert!(
            matches!(&err, Error::NonFinite { what, .. } if what.contains("state buffer")),
            "{err:?}"
        );
        // An f32 state holding a value f32 cannot represent.
        let mut s = source.state();
        s.precision = Some(Precision::F32);
        s.tensors[0].buffers[0].1[0] = 0.1;
        let mut opt = build::<Vec<f32>>(kind, 0.1, 0.9);
        let err = opt.set_state(&s).unwrap_err();
        assert!(err.to_string().contains("exactly representable in f32"), "{err}");
    }

    // No precision recorded but steps or tensors present.
    let mut s = nag.state();
    s.precision = None;
    let (mut opt, _) = warmed_up::<Vec<f64>>(Kind::Nag, 3, 1);
    let err = assert_set_state_rejected(opt.as_mut(), s);
    assert!(matches!(&err, Error::InvalidParameter { name: "state", .. }), "{err:?}");
    let mut s = gd.state();
    s.tensors.clear();
    let (mut opt, _) = warmed_up::<Vec<f64>>(Kind::Gd, 3, 1);
    let err = assert_set_state_rejected(opt.as_mut(), s);
    assert!(
        matches!(
            &err,
            Error::InvalidParameter {
                name: "state.tensors",
                ..
            }
        ),
        "{err:?}"
    );

    // A valid state of another shape is accepted, and then fixes the shape.
    let (mut opt, _) = warmed_up::<Vec<f64>>(Kind::Nag, 5, 1);
    opt.set_state(&nag.state()).unwrap();
    let err = opt.step(&mut vec![1.0; 5], &vec![1.0; 5]).unwrap_err();
    assert!(matches!(err, Error::ShapeMismatch { .. }), "{err:?}");
}

/// A momentum below 1 that rounds to 1 in f32 would never decay: refused.
#[test]
fn momentum_that_rounds_to_one_in_f32_is_rejected() {
    use ntk_momentum::{Error, HeavyBall, Nesterov};
    let mut hb = HeavyBall::new(0.1, 0.99999999).unwrap();
    let mut nag = Nesterov::new(0.1, 0.99999999).unwrap();
    for err in [
        hb.step(&mut vec![1.0f32], &vec![1.0f32]).unwrap_err(),
        nag.step(&mut vec![1.0f32], &vec![1.0f32]).unwrap_err(),
    ] {
        assert!(matches!(err, Error::InvalidParameter { name: "momentum", .. }), "{err}");
    }
    hb.step(&mut vec![1.0f64], &vec![1.0f64]).unwrap();
    nag.step(&mut vec![1.0f64], &vec![1.0f64]).unwrap();
}
