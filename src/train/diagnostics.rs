//! The diagnostics a run records at its cadence: weight excursion,
//! activation flips, NTK drift, and the evaluation set's loss and accuracy.

use std::rc::Rc;

use nalgebra::{DMatrix, DVector};

use super::steps::{current, Buffers, Coordinates};
use super::{Diagnostics, Trainer};
use crate::linalg::{
    co_activation_kernel, gemm, half_squared_distance, relu_outputs, symmetric_extremes, Operand, Preactivations,
};
use crate::ntk::{lanczos, EmpiricalNtk, KernelOperator, LanczosOptions};
use crate::{Float, Optimizer, Result};

/// How the run tracks the NTK: dense Gram matrices up to
/// [`NTK_DRIFT_MAX_SAMPLES`](super::NTK_DRIFT_MAX_SAMPLES) samples,
/// matrix-free products beyond.
pub(super) enum NtkTracker<T: Float> {
    /// H(W_0) and H(W_t) formed (n × n each).
    Dense(NtkBuffers<T>),
    /// Products H(W) v only.
    MatrixFree(ProbeBuffers),
}

impl<T: Float> NtkTracker<T> {
    /// (drift, λ_min, λ_max) of H(W_t) for pre-activations `p` on `x`.
    fn measure(&mut self, x: &DMatrix<T>, p: Preactivations<'_, T>) -> (Option<f64>, Option<f64>, Option<f64>) {
        match self {
            NtkTracker::Dense(nb) => {
                let drift = nb.drift(p);
                (drift, nb.extremes.map(|e| e.0), nb.extremes.map(|e| e.1))
            }
            NtkTracker::MatrixFree(pb) => pb.measure(x, p).unwrap_or((None, None, None)),
        }
    }
}

/// The matrix-free NTK diagnostics (see [`Trainer::matrix_free_ntk`](super::Trainer::matrix_free_ntk)):
/// fixed standard-normal probes z_k and their products H(W_0) z_k.
pub(super) struct ProbeBuffers {
    probes: Vec<Vec<f64>>,
    initial: Vec<Vec<f64>>,
    /// ‖H(W_0) Z‖_F.
    initial_norm: f64,
    lanczos_products: usize,
}

/// Seed of the drift probes (fixed: the same run gives the same estimate).
const PROBE_SEED: u64 = 0x6e74_6b5f_7072_6f62;

impl ProbeBuffers {
    /// The probes and H(W_0) Z from the initial pre-activations `p0`.
    pub(super) fn new<T: Float>(
        x: &DMatrix<T>,
        p0: &DMatrix<T>,
        probes: usize,
        lanczos_products: usize,
    ) -> Result<Self> {
        use rand::SeedableRng;
        use rand_distr::{Distribution, StandardNormal};
        let n = x.nrows();
        let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(PROBE_SEED);
        let probes: Vec<Vec<f64>> = (0..probes)
            .map(|_| (0..n).map(|_| StandardNormal.sample(&mut rng)).collect())
            .collect();
        let mut op = EmpiricalNtk::from_preactivations(x, Preactivations::One(p0))?;
        let initial = products(&mut op, &probes)?;
        let initial_norm = initial.iter().flatten().map(|v| v * v).sum::<f64>().sqrt();
        Ok(ProbeBuffers {
            probes,
            initial,
            initial_norm,
            lanczos_products,
        })
    }

    /// ‖(H_t − H_0) Z‖_F / ‖H_0 Z‖_F, and λ_min, λ_max of H(W_t) where
    /// Lanczos meets the dense path's accuracy within its product budget.
    fn measure<T: Float>(
        &self,
        x: &DMatrix<T>,
        p: Preactivations<'_, T>,
    ) -> Result<(Option<f64>, Option<f64>, Option<f64>)> {
        let mut op = EmpiricalNtk::from_preactivations(x, p)?;
        let current = products(&mut op, &self.probes)?;
        let diff = current
            .iter()
            .flatten()
            .zip(self.initial.iter().flatten())
            .map(|(a, b)| (a - b).powi(2))
            .sum::<f64>()
            .sqrt();
        let drift = (!self.probes.is_empty())
            .then(|| diff / self.initial_norm)
            .filter(|v| v.is_finite());
        if self.lanczos_products == 0 {
            return Ok((drift, None, None));
        }
        let options = LanczosOptions {
            max_products: self.lanczos_products,
            lambda_max_tolerance: MATRIX_FREE_LAMBDA_MAX_TOLERANCE,
            lambda_min_tolerance: MATRIX_FREE_LAMBDA_MIN_TOLERANCE,
        };
        let k = lanczos(&mut op, None, options)?;
        let max = (k.lambda_max_error_bound <= MATRIX_FREE_LAMBDA_MAX_TOLERANCE * k.lambda_max).then_some(k.lambda_max);
        let min = (k.converged || k.lambda_min_error_bound <= MATRIX_FREE_LAMBDA_MIN_TOLERANCE * k.lambda_min)
            .then_some(k.lambda_min);
        Ok((drift, min, max))
    }
}

/// Relative accuracy at which a matrix-free λ_max of H(W_t) is recorded.
const MATRIX_FREE_LAMBDA_MAX_TOLERANCE: f64 = 1e-6;
/// Relative accuracy at which a matrix-free λ_min of H(W_t) is recorded.
const MATRIX_FREE_LAMBDA_MIN_TOLERANCE: f64 = 1e-4;

/// `H z` for every probe z.
fn products<T: Float>(op: &mut EmpiricalNtk<'_, T>, probes: &[Vec<f64>]) -> Result<Vec<Vec<f64>>> {
    probes
        .iter()
        .map(|z| {
            let mut out = vec![0.0; z.len()];
            op.apply(z, &mut out).map(|()| out)
        })
        .collect()
}

/// The NTK Gram matrices of the drift diagnostic.
pub(super) struct NtkBuffers<T: Float> {
    /// K = X Xᵀ (shared with kernel space's coordinates).
    kernel: Rc<DMatrix<T>>,
    /// H(W_0).
    initial: DMatrix<T>,
    /// H(W_t) of the last diagnostic.
    current: DMatrix<T>,
    bits: Vec<u64>,
    /// ‖H(W_0)‖_F.
    initial_norm: f64,
    /// (λ_min, λ_max) of H(W_t) at the last diagnostic.
    extremes: Option<(f64, f64)>,
}

impl<T: Float> NtkBuffers<T> {
    /// H(W_0) from K and `P_0`.
    pub(super) fn new(kernel: Rc<DMatrix<T>>, initial_preactivations: &DMatrix<T>) -> Self {
        let n = kernel.nrows();
        let mut nb = NtkBuffers {
            kernel,
            initial: DMatrix::zeros(n, n),
            current: DMatrix::zeros(n, n),
            bits: Vec::new(),
            initial_norm: 0.0,
            extremes: None,
        };
        let p0 = Preactivations::One(initial_preactivations);
        co_activation_kernel(p0, &nb.kernel, &mut nb.bits, &mut nb.initial);
        nb.initial_norm = nb.initial.norm().to_f64();
        nb
    }

    /// ‖H(W_t) − H(W_0)‖_F / ‖H(W_0)‖_F (`None` when H(W_0) = 0: no unit
    /// ever active, the drift is undefined).
    fn drift(&mut self, p: Preactivations<'_, T>) -> Option<f64> {
        co_activation_kernel(p, &self.kernel, &mut self.bits, &mut self.current);
        self.extremes = symmetric_extremes(&self.current);
        let diff: f64 = self
            .current
            .iter()
            .zip(self.initial.iter())
            .map(|(&a, &b)| (a - b).to_f64().powi(2))
            .sum::<f64>()
            .sqrt();
        Some(diff / self.initial_norm).filter(|v| v.is_finite())
    }
}

/// Work buffers of the evaluation set (n_test samples).
pub(super) struct EvaluationBuffers<T: Float> {
    /// Kernel space: `X X_testᵀ` (n × n_test); weight space: empty.
    cross_kernel: DMatrix<T>,
    /// Kernel space: `W_0 X_testᵀ` (m × n_test); weight space: empty.
    initial_preactivations: DMatrix<T>,
    /// `P_test = W_t X_testᵀ` (m × n_test).
    preactivations: DMatrix<T>,
}

impl<T: Float> EvaluationBuffers<T> {
    /// The buffers for training data `x` and evaluation inputs `xt`; in
    /// kernel space with `X X_testᵀ` and `W_0 X_testᵀ` formed once.
    pub(super) fn new(x: &DMatrix<T>, xt: &DMatrix<T>, initial_weights: &DMatrix<T>, kernel_space: bool) -> Self {
        let (n, nt, m) = (x.nrows(), xt.nrows(), initial_weights.nrows());
        let (cross_kernel, initial_preactivations) = if kernel_space {
            let mut cross = DMatrix::zeros(n, nt);
            gemm(T::one(), Operand::n(x), Operand::t(xt), T::zero(), &mut cross);
            let mut p0 = DMatrix::zeros(m, nt);
            gemm(
                T::one(),
                Operand::n(initial_weights),
                Operand::t(xt),
                T::zero(),
                &mut p0,
            );
            (cross, p0)
        } else {
            (DMatrix::zeros(0, 0), DMatrix::zeros(0, 0))
        };
        EvaluationBuffers {
            cross_kernel,
            initial_preactivations,
            preactivations: DMatrix::zeros(m, nt),
        }
    }
}

impl<T: Float, O: Optimizer<DMatrix<T>>> Trainer<T, O> {
    /// Loss and sign accuracy on the evaluation set, if there is one:
    /// `P_test = W_t X_testᵀ` (weight space) or `W_0 X_testᵀ + B_t (X X_testᵀ)`
    /// (kernel space), then the outputs.
    fn evaluate_test_set(&self, coordinates: &Coordinates<T>, buf: &mut Buffers<T>) -> (Option<f64>, Option<f64>) {
        let (Some((xt, yt)), Some(eb)) = (&self.evaluation, buf.evaluation.as_mut()) else {
            return (None, None);
        };
        match coordinates {
            Coordinates::Kernel { coefficients, .. } => {
                eb.preactivations.copy_from(&eb.initial_preactivations);
                gemm(
                    T::one(),
                    Operand::n(coefficients),
                    Operand::n(&eb.cross_kernel),
                    T::one(),
                    &mut eb.preactivations,
                );
            }
            Coordinates::Weight { .. } => self.model.preactivations_into(xt, &mut eb.preactivations),
        }
        let u: DVector<T> = relu_outputs(Preactivations::One(&eb.preactivations), self.model.output_weights());
        let correct = u.iter().zip(yt.iter()).filter(|(&u, &y)| u * y > T::zero()).count();
        (
            Some(half_squared_distance(&u, yt)),
            Some(correct as f64 / yt.len() as f64),
        )
    }

    /// ‖w_r(t) − w_r(0)‖² for every neuron r.
    fn neuron_excursions(
        &self,
        coordinates: &Coordinates<T>,
        buf: &Buffers<T>,
        initial_weights: &DMatrix<T>,
    ) -> Vec<f64> {
        let mut row_sq = vec![0.0f64; self.model.width()];
        match coordinates {
            Coordinates::Kernel { coefficients, .. } => {
                // ‖w_r(t) − w_r(0)‖² = (B K Bᵀ)_rr = Σ_i B_ri Q_ri with Q = B K
                for (bc, qc) in coefficients.column_iter().zip(buf.preactivations.column_iter()) {
                    for (r, (&bv, &qv)) in bc.iter().zip(qc.iter()).enumerate() {
                        row_sq[r] += bv.to_f64() * qv.to_f64();
                    }
                }
            }
            Coordinates::Weight { .. } => {
                for (wc, w0c) in self.model.weights().column_iter().zip(initial_weights.column_iter()) {
                    for (r, (&w, &w0)) in wc.iter().zip(w0c.iter()).enumerate() {
                        row_sq[r] += (w - w0).to_f64().powi(2);
                    }
                }
            }
        }
        // Rounding can make a kernel-space square slightly negative.
        row_sq.iter_mut().for_each(|v| *v = v.max(0.0));
        row_sq
    }

    /// Weight excursion, activation flips, NTK drift and the evaluation set
    /// at the current step.
    pub(super) fn diagnostics(
        &self,
        x: &DMatrix<T>,
        initial_weights: &DMatrix<T>,
        coordinates: &Coordinates<T>,
        buf: &mut Buffers<T>,
    ) -> Diagnostics {
        let (test_loss, test_accuracy) = self.evaluate_test_set(coordinates, buf);
        let row_sq = self.neuron_excursions(coordinates, buf, initial_weights);
        let weight_distance = row_sq.iter().sum::<f64>().sqrt();
        let max_neuron_distance = row_sq.iter().fold(0.0f64, |a, &v| a.max(v.sqrt()));
        let p = current(coordinates, &buf.preactivations, &buf.initial_preactivations);
        let flips = match p {
            Preactivations::One(p) => count_flips(p.iter().copied(), &buf.initial_preactivations),
            Preactivations::Sum(p0, q) => count_flips(p0.iter().zip(q.iter()).map(|(&a, &b)| a + b), p0),
        };
        let activation_flip_fraction = flips as f64 / buf.preactivations.len() as f64;
        let (ntk_drift, ntk_lambda_min, ntk_lambda_max) = match buf.ntk.as_mut() {
            Some(tracker) => tracker.measure(x, p),
            None => (None, None, None),
        };
        Diagnostics {
            step: self.step,
            weight_distance,
            max_neuron_distance,
            activation_flip_fraction,
            ntk_drift,
            ntk_lambda_min,
            ntk_lambda_max,
            test_loss,
            test_accuracy,
        }
    }
}

/// Entries whose sign (> 0 or not) differs between `current` and `initial`.
fn count_flips<T: Float>(current: impl Iterator<Item = T>, initial: &DMatrix<T>) -> usize {
    current
        .zip(initial.iter())
        .filter(|(p, &p0)| (*p > T::zero()) != (p0 > T::zero()))
        .count()
}

#[cfg(test)]
mod tests {
    use nalgebra::DMatrix;

    use super::{Preactivations, ProbeBuffers};
    use crate::ntk::Spectrum;
    use crate::TwoLayerReLU;

    /// n pseudo-random rows of R^d scaled to unit norm (the data module is
    /// a layer above this one).
    fn unit_rows(n: usize, d: usize) -> DMatrix<f64> {
        let mut s = 0x9e37_79b9_7f4a_7c15_u64;
        let mut x = DMatrix::from_fn(n, d, |_, _| {
            s ^= s << 13;
            s ^= s >> 7;
            s ^= s << 17;
            (s >> 11) as f64 / (1u64 << 53) as f64 - 0.5
        });
        for mut row in x.row_iter_mut() {
            let norm = row.norm();
            row /= norm;
        }
        x
    }

    /// The matrix-free drift estimate and extremes against the dense Gram
    /// matrices of a model moved far from its initialization.
    #[test]
    fn probes_estimate_the_dense_drift_and_lanczos_the_extremes() {
        let x = unit_rows(120, 6);
        let start = TwoLayerReLU::<f64>::init(6, 512, 4).unwrap();
        let noise = TwoLayerReLU::<f64>::init(6, 512, 5).unwrap();
        let moved =
            TwoLayerReLU::from_parts(start.weights() + noise.weights() * 0.5, start.output_weights().clone()).unwrap();
        let (h0, ht) = (start.ntk_gram(&x).unwrap(), moved.ntk_gram(&x).unwrap());
        let exact = (&ht - &h0).norm() / h0.norm();
        let p0: DMatrix<f64> = start.weights() * x.transpose();
        let pt: DMatrix<f64> = moved.weights() * x.transpose();
        let probes = ProbeBuffers::new(&x, &p0, 400, 120).unwrap();
        let (drift, lambda_min, lambda_max) = probes.measure(&x, Preactivations::One(&pt)).unwrap();
        let drift = drift.unwrap();
        assert!(exact > 0.05, "the test needs a real drift: {exact}");
        assert!((drift / exact - 1.0).abs() < 0.15, "estimate {drift}, exact {exact}");
        let dense = Spectrum::of(&ht).unwrap();
        let (lo, hi) = (lambda_min.unwrap(), lambda_max.unwrap());
        assert!(
            (hi - dense.lambda_max).abs() <= 1e-6 * dense.lambda_max,
            "{hi} vs {}",
            dense.lambda_max
        );
        assert!(
            (lo - dense.lambda_min).abs() <= 1e-4 * dense.lambda_min,
            "{lo} vs {}",
            dense.lambda_min
        );
        // At the start the estimate is exactly zero; no products budget: no extremes.
        let none = ProbeBuffers::new(&x, &p0, 3, 0).unwrap();
        assert_eq!(
            none.measure(&x, Preactivations::One(&p0)).unwrap(),
            (Some(0.0), None, None)
        );
    }
}
