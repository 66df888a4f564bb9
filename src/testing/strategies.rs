//! proptest strategies: problems with exact spectra, and hyper-parameters
//! drawn from a method's stable region.

use std::ops::RangeInclusive;

use nalgebra::{DMatrix, DVector};
use proptest::prelude::*;
use proptest::strategy::BoxedStrategy;
use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;
use rand_distr::{Distribution, StandardNormal};

use crate::model::TwoLayerReLU;
use crate::ntk::Spectrum;
use crate::optim::Optimizer;
use crate::theory::{max_stable_lr, Method};
use crate::Result;

/// How the eigenvalues of a generated spectrum lie between λ_min and
/// λ_max = κ λ_min (both always present when the dimension is at least 2).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Layout {
    /// Uniformly distributed in [λ_min, λ_max].
    Uniform,
    /// Two tight clusters (relative width 1 %), at λ_min and at λ_max.
    Clustered,
    /// A power law λ_k = λ_max (k + 1)^(−α), α = ln κ / ln n (the shape of
    /// NTK spectra): most eigenvalues small, a few large.
    PowerLaw,
}

/// Spectra with κ log-uniform in `kappa` (≥ 1), dimension in `dims` (≥ 1;
/// a dimension of 1 forces κ = 1), λ_max log-uniform in [1e-2, 1e2], laid
/// out as `layout` says; ascending.
///
/// # Panics
/// If `kappa` does not lie in [1, ∞) or `dims` starts at 0 (a mistake in the
/// test, reported when the strategy is built).
pub fn spectra(kappa: RangeInclusive<f64>, dims: RangeInclusive<usize>, layout: Layout) -> BoxedStrategy<Vec<f64>> {
    let (k0, k1) = (*kappa.start(), *kappa.end());
    assert!(
        k0 >= 1.0 && k1 >= k0 && k1.is_finite(),
        "spectra: kappa range {k0}..={k1} must lie in [1, inf)"
    );
    assert!(*dims.start() >= 1, "spectra: dimensions start at 1");
    let count = *dims.end();
    (
        dims,
        k0.ln()..=k1.ln(),
        -2.0f64..=2.0,
        prop::collection::vec(0.0f64..1.0, count),
    )
        .prop_map(move |(n, log_kappa, log_scale, u)| {
            spectrum_of(n, log_kappa.exp(), 10f64.powf(log_scale), layout, &u)
        })
        .boxed()
}

fn spectrum_of(n: usize, kappa: f64, lambda_max: f64, layout: Layout, u: &[f64]) -> Vec<f64> {
    if n == 1 {
        return vec![lambda_max];
    }
    let lambda_min = lambda_max / kappa;
    let mut eig: Vec<f64> = match layout {
        Layout::Uniform => (0..n)
            .map(|k| match k {
                0 => lambda_min,
                1 => lambda_max,
                _ => lambda_min + u[k] * (lambda_max - lambda_min),
            })
            .collect(),
        Layout::Clustered => (0..n)
            .map(|k| match k {
                0 => lambda_min,
                1 => lambda_max,
                _ if u[k] < 0.5 => lambda_min * (1.0 + 0.02 * u[k]),
                _ => lambda_max * (1.0 - 0.02 * (u[k] - 0.5)),
            })
            .collect(),
        Layout::PowerLaw => {
            let alpha = kappa.ln() / (n as f64).ln();
            (0..n)
                .map(|k| match k {
                    0 => lambda_max,
                    _ if k == n - 1 => lambda_min,
                    _ => lambda_max * ((k + 1) as f64).powf(-alpha),
                })
                .collect()
        }
    };
    eig.sort_by(f64::total_cmp);
    eig
}

/// A strongly convex quadratic f(x) = ½ Σ_i λ_i x_i² with exact spectrum
/// (diagonal, minimizer 0) and a start point: the linear dynamics in their
/// eigenbasis, where ‖x_t − x*‖ = ‖x_t‖ obeys a
/// [`Certificate`](super::Certificate) built from `eigenvalues`.
#[derive(Clone, Debug, PartialEq)]
pub struct Quadratic {
    /// λ_i, ascending.
    pub eigenvalues: Vec<f64>,
    /// x_0, every coordinate of modulus in [0.5, 1] (so every mode is
    /// present).
    pub start: Vec<f64>,
}

impl Quadratic {
    /// λ_min.
    pub fn lambda_min(&self) -> f64 {
        self.eigenvalues[0]
    }

    /// λ_max.
    pub fn lambda_max(&self) -> f64 {
        self.eigenvalues[self.eigenvalues.len() - 1]
    }

    /// ∇f(x) = (λ_i x_i).
    pub fn gradient(&self, x: &[f64]) -> Vec<f64> {
        x.iter().zip(&self.eigenvalues).map(|(x, l)| l * x).collect()
    }

    /// f(x) = ½ Σ λ_i x_i².
    pub fn value(&self, x: &[f64]) -> f64 {
        0.5 * x.iter().zip(&self.eigenvalues).map(|(x, l)| l * x * x).sum::<f64>()
    }

    /// ‖x_t‖, t = 0..=`steps`, of `optimizer` started at `start` (the
    /// optimizer is used as given: reset it first for a fresh run).
    ///
    /// # Errors
    /// Whatever a step returns.
    pub fn error_norms<O: Optimizer<Vec<f64>>>(&self, optimizer: &mut O, steps: usize) -> Result<Vec<f64>> {
        let mut x = self.start.clone();
        let mut norms = Vec::with_capacity(steps + 1);
        norms.push(norm(&x));
        for _ in 0..steps {
            let g = self.gradient(&x);
            optimizer.step(&mut x, &g)?;
            norms.push(norm(&x));
        }
        Ok(norms)
    }
}

fn norm(x: &[f64]) -> f64 {
    x.iter().map(|v| v * v).sum::<f64>().sqrt()
}

/// Quadratics whose spectra come from [`spectra`]`(kappa, dims, layout)`,
/// with random start points.
pub fn quadratics(kappa: RangeInclusive<f64>, dims: RangeInclusive<usize>, layout: Layout) -> BoxedStrategy<Quadratic> {
    let count = *dims.end();
    (
        spectra(kappa, dims, layout),
        prop::collection::vec((0.5f64..=1.0, any::<bool>()), count),
    )
        .prop_map(|(eigenvalues, start)| {
            let start = start
                .iter()
                .take(eigenvalues.len())
                .map(|&(m, negative)| if negative { -m } else { m })
                .collect();
            Quadratic { eigenvalues, start }
        })
        .boxed()
}

/// A consistent linear least-squares problem min ½‖A x − b‖² with more
/// columns than rows (over-parameterized: A Aᵀ invertible, the residual
/// r = A x − b → 0), and the spectrum of H = A Aᵀ, which governs r exactly
/// as the NTK Gram matrix governs a network's residual.
#[derive(Clone, Debug, PartialEq)]
pub struct LeastSquares {
    /// A (rows × columns), standard normal entries / √columns.
    pub a: DMatrix<f64>,
    /// b, standard normal.
    pub b: DVector<f64>,
    /// Eigenvalues of A Aᵀ, ascending.
    pub spectrum: Spectrum,
}

impl LeastSquares {
    /// ∇ = Aᵀ (A x − b).
    pub fn gradient(&self, x: &DVector<f64>) -> DVector<f64> {
        self.a.transpose() * (&self.a * x - &self.b)
    }

    /// ‖A x_t − b‖, t = 0..=`steps`, of `optimizer` from x_0 = 0.
    ///
    /// # Errors
    /// Whatever a step returns.
    pub fn residual_norms<O: Optimizer<DVector<f64>>>(&self, optimizer: &mut O, steps: usize) -> Result<Vec<f64>> {
        let mut x = DVector::zeros(self.a.ncols());
        let mut norms = Vec::with_capacity(steps + 1);
        norms.push((&self.a * &x - &self.b).norm());
        for _ in 0..steps {
            let g = self.gradient(&x);
            optimizer.step(&mut x, &g)?;
            norms.push((&self.a * &x - &self.b).norm());
        }
        Ok(norms)
    }
}

/// Least-squares problems with `rows` rows and `rows + extra_columns`
/// columns (extra_columns ≥ 1 keeps A Aᵀ invertible with probability 1).
pub fn least_squares(rows: RangeInclusive<usize>, extra_columns: RangeInclusive<usize>) -> BoxedStrategy<LeastSquares> {
    (rows, extra_columns, any::<u64>())
        .prop_filter_map("A A^T numerically singular", |(n, extra, seed)| {
            let p = n + extra.max(1);
            let mut rng = ChaCha8Rng::seed_from_u64(seed);
            let scale = 1.0 / (p as f64).sqrt();
            let mut normal = || -> f64 { StandardNormal.sample(&mut rng) };
            let a = DMatrix::from_fn(n, p, |_, _| normal() * scale);
            let b = DVector::from_fn(n, |_, _| normal());
            let h = &a * a.transpose();
            let spectrum = Spectrum::of(&h).ok()?;
            (spectrum.lambda_min > 1e-8 * spectrum.lambda_max).then_some(LeastSquares { a, b, spectrum })
        })
        .boxed()
}

/// A small two-layer ReLU problem for the NTK regime: unit-norm inputs and
/// ±1 labels ([`crate::data::unit_sphere`]), a network
/// ([`TwoLayerReLU::init`]), and the spectrum of its H(W_0).
#[derive(Clone, Debug)]
pub struct ReluProblem {
    /// The network at initialization.
    pub model: TwoLayerReLU<f64>,
    /// Inputs, one unit-norm row per sample.
    pub x: DMatrix<f64>,
    /// Labels.
    pub y: DVector<f64>,
    /// Eigenvalues of H(W_0) ([`TwoLayerReLU::ntk_gram`]).
    pub spectrum: Spectrum,
}

/// [`ReluProblem`]s with n samples in `samples`, input dimension in `dims`
/// and width in `widths`; cases whose H(W_0) is numerically singular
/// (λ_min ≤ 1e-8 λ_max, e.g. two identical inputs) are skipped.
pub fn relu_problems(
    samples: RangeInclusive<usize>,
    dims: RangeInclusive<usize>,
    widths: RangeInclusive<usize>,
) -> BoxedStrategy<ReluProblem> {
    (samples, dims, widths, any::<u64>())
        .prop_filter_map("H(W_0) numerically singular", |(n, d, m, seed)| {
            let (x, y) = crate::data::unit_sphere::<f64>(n, d, seed).ok()?;
            let model = TwoLayerReLU::<f64>::init(d, m, seed ^ 0x5eed).ok()?;
            let spectrum = Spectrum::of(&model.ntk_gram(&x).ok()?).ok()?;
            (spectrum.lambda_min > 1e-8 * spectrum.lambda_max).then_some(ReluProblem { model, x, y, spectrum })
        })
        .boxed()
}

/// Where (η, β) put the mode of λ_min (the slowest one).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum DampingRegion {
    /// Anywhere in the stable region: half the draws uniform over it, half
    /// exactly critical at λ_min.
    Any,
    /// Complex roots at λ_min.
    Underdamped,
    /// A double root at λ_min (η from the closed form: HB ηλ_min =
    /// (1 − √β)², NAG ηλ_min = ((1 − β)/(1 + β))²).
    Critical,
    /// Distinct real roots at λ_min (ηλ_min below the critical value).
    Overdamped,
}

/// The critical ηλ of `method` at momentum β, and the upper end of its
/// underdamped band.
fn critical_band(method: Method, beta: f64) -> (f64, f64) {
    match method {
        Method::GradientDescent => (1.0, 1.0),
        Method::HeavyBall => ((1.0 - beta.sqrt()).powi(2), (1.0 + beta.sqrt()).powi(2)),
        Method::Nesterov => (((1.0 - beta) / (1.0 + beta)).powi(2), 1.0),
    }
}

/// The smallest β in [0, 1) at which the critical step size of λ_min is
/// stable for a spectrum of condition number `kappa` (bisection: the
/// condition κ · crit(β) < limit(β) holds from some β on, which approaches
/// 1 as κ grows: HB needs 1 − √β < √(4/κ) roughly).
fn smallest_stable_critical_beta(method: Method, kappa: f64) -> f64 {
    let stable = |beta: f64| {
        let lr = critical_band(method, beta).0; // λ_min = 1, λ_max = κ
        max_stable_lr(method, beta, kappa).is_ok_and(|limit| lr < 0.999 * limit)
    };
    if stable(0.0) {
        return 0.0;
    }
    let (mut lo, mut hi) = (0.0, 1.0 - 1e-15);
    for _ in 0..200 {
        let mid = 0.5 * (lo + hi);
        if stable(mid) {
            hi = mid;
        } else {
            lo = mid;
        }
    }
    hi
}

/// The range momenta are drawn from in the damped regions: from the
/// smallest stable critical β to 0.999, or halfway to 1 when that β is
/// already above 0.999 (κ beyond about 1e6).
fn beta_range(method: Method, kappa: f64) -> (f64, f64) {
    let lo = smallest_stable_critical_beta(method, kappa);
    (lo, 0.999f64.max(0.5 * (1.0 + lo)))
}

/// (η, β) for `method` on a spectrum [λ_min, λ_max], in the stable region
/// (every mode's roots inside the unit circle, η at most 0.999 of
/// [`max_stable_lr`]) and in `region`. The damped regions draw β from the
/// smallest momentum at which critical damping at λ_min is stable (which
/// approaches 1 as κ grows) up to 0.999 (or halfway to 1 beyond that). For GD β = 0 and only the step size
/// varies (every region gives η uniform in (0, 0.999 · 2/λ_max)).
///
/// # Panics
/// Unless 0 < λ_min ≤ λ_max are finite (a mistake in the test).
pub fn hyperparameters(
    method: Method,
    lambda_min: f64,
    lambda_max: f64,
    region: DampingRegion,
) -> BoxedStrategy<(f64, f64)> {
    assert!(
        lambda_min > 0.0 && lambda_max >= lambda_min && lambda_max.is_finite(),
        "hyperparameters: need 0 < lambda_min <= lambda_max, got {lambda_min}, {lambda_max}"
    );
    let kappa = lambda_max / lambda_min;
    if method == Method::GradientDescent {
        return (1e-3f64..0.999).prop_map(move |u| (u * 2.0 / lambda_max, 0.0)).boxed();
    }
    let uniform = (0.0f64..0.999, 1e-3f64..0.999).prop_map(move |(beta, u)| {
        let limit = max_stable_lr(method, beta, lambda_max).unwrap_or(0.0);
        (u * limit, beta)
    });
    let (beta_lo, beta_hi) = beta_range(method, kappa);
    let critical = (0.0f64..=1.0).prop_map(move |u| {
        let beta = beta_lo + u * (beta_hi - beta_lo);
        (critical_band(method, beta).0 / lambda_min, beta)
    });
    match region {
        DampingRegion::Any => prop_oneof![uniform, critical].boxed(),
        DampingRegion::Critical => critical.boxed(),
        DampingRegion::Underdamped => (0.0f64..=1.0, 1e-3f64..0.999)
            .prop_map(move |(u, v)| {
                let beta = beta_lo + u * (beta_hi - beta_lo);
                let (lo, hi) = critical_band(method, beta);
                let limit = max_stable_lr(method, beta, lambda_max).unwrap_or(0.0) * 0.999 * lambda_min;
                let top = hi.min(limit);
                ((lo + v * (top - lo)) / lambda_min, beta)
            })
            .boxed(),
        DampingRegion::Overdamped => (0.0f64..=1.0, 1e-3f64..0.999)
            .prop_map(move |(u, v)| {
                let beta = beta_lo + u * (beta_hi - beta_lo);
                (v * critical_band(method, beta).0 / lambda_min, beta)
            })
            .boxed(),
    }
}
