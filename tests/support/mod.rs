//! Helpers shared by the training tests: seeded unit-norm inputs, ±1
//! labels, the largest relative difference of two sequences, and an
//! optimizer outside the linear family (sign descent).

#![allow(dead_code)]

use nalgebra::{DMatrix, DVector};
use rand::{RngExt, SeedableRng};
use rand_chacha::ChaCha8Rng;

/// n × d rows uniform in [−1, 1)^d, scaled to unit norm.
pub fn unit_rows(n: usize, d: usize, seed: u64) -> DMatrix<f64> {
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    let mut x = DMatrix::from_fn(n, d, |_, _| rng.random_range(-1.0..1.0));
    for mut row in x.row_iter_mut() {
        let norm = row.norm();
        row /= norm;
    }
    x
}

/// n labels ±1 with equal probability.
pub fn labels(n: usize, seed: u64) -> DVector<f64> {
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    DVector::from_fn(n, |_, _| if rng.random_bool(0.5) { 1.0 } else { -1.0 })
}

/// max_i |a_i − b_i| / |b_i|.
pub fn max_rel_diff(a: &[f64], b: &[f64]) -> f64 {
    assert_eq!(a.len(), b.len());
    a.iter()
        .zip(b)
        .map(|(x, y)| (x - y).abs() / y.abs().max(1e-300))
        .fold(0.0, f64::max)
}

/// Sign descent, θ ← θ − 10⁻³ sign(g): an optimizer that is neither linear
/// in the gradients nor one the linearized prediction covers (its name is
/// `"sign_descent"`).
pub struct SignDescent;

impl ntk_momentum::Optimizer<DMatrix<f64>> for SignDescent {
    fn step(&mut self, params: &mut DMatrix<f64>, grad: &DMatrix<f64>) -> ntk_momentum::Result<()> {
        params.zip_apply(grad, |p, g| *p -= 1e-3 * g.signum());
        Ok(())
    }
    fn reset(&mut self) {}
    fn state(&self) -> ntk_momentum::OptimizerState {
        ntk_momentum::OptimizerState::empty("sign_descent")
    }
    fn set_state(&mut self, _: &ntk_momentum::OptimizerState) -> ntk_momentum::Result<()> {
        Ok(())
    }
    fn name(&self) -> &'static str {
        "sign_descent"
    }
}
