//! The diagnostics a run records at its cadence: weight excursion,
//! activation flips, NTK drift, and the evaluation set's loss and accuracy.

use std::rc::Rc;

use nalgebra::{DMatrix, DVector};

use super::steps::{current, Buffers, Coordinates};
use super::{Diagnostics, Trainer};
use crate::linalg::{
    co_activation_kernel, gemm, half_squared_distance, relu_outputs, symmetric_extremes, Operand, Preactivations,
};
use crate::{Float, Optimizer};

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
        let ntk_drift = buf.ntk.as_mut().and_then(|nb| nb.drift(p));
        let extremes = buf.ntk.as_ref().and_then(|nb| nb.extremes);
        Diagnostics {
            step: self.step,
            weight_distance,
            max_neuron_distance,
            activation_flip_fraction,
            ntk_drift,
            ntk_lambda_min: extremes.map(|e| e.0),
            ntk_lambda_max: extremes.map(|e| e.1),
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
