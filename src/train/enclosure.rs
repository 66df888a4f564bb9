//! The trainer's side of [`PredictionEnclosure`]: the kernels H_t and
//! J_t J_{t−1}ᵀ and the flip remainders of the run, formed from its
//! pre-activations at every step (see [`crate::theory::PredictionEnclosure`]
//! for the mathematics).

use nalgebra::{DMatrix, DVector};

use crate::linalg::{co_activation_from_bits, pack_activations, relu_outputs, Preactivations};
use crate::theory::{Method, PredictionEnclosure};
use crate::{Error, Float, OptimizerState, Result};

/// The step whose kernel H(W_t) the trainer's second enclosure is anchored
/// at (see [`PredictionEnclosure::with_reanchoring`]): by then the kernel of
/// the runs in the README has done most of its drift.
pub(super) const REANCHOR_STEP: usize = 16;

/// Whether and how the run encloses its prediction.
pub(super) enum EnclosureState<T: Float> {
    /// Not requested.
    Off,
    /// Requested; starts at step 0.
    Requested,
    /// Running.
    Tracking(Box<EnclosureTracker<T>>),
    /// Requested but impossible (the reason).
    Failed(String),
}

/// (method, η, β) of one of the crate's optimizers from its state.
pub(super) fn linear_method(state: &OptimizerState) -> Result<(Method, f64, f64)> {
    let method: Method = state.optimizer.parse().map_err(|_| {
        Error::invalid(
            "optimizer",
            &state.optimizer,
            "gradient_descent, heavy_ball or nesterov (the methods the linearized prediction covers)",
        )
    })?;
    // The knobs (weight decay, dampening, maximize, clipping, groups) are
    // recorded only when set; the prediction covers none of them.
    if let Some((name, v)) = state.hyperparameters.iter().find(|(k, _)| k != "lr" && k != "momentum") {
        return Err(Error::invalid(
            "optimizer",
            format!("{name} = {v} in its state"),
            "plain gradient descent, heavy ball or Nesterov (the linearized prediction covers no weight decay, \
             dampening, maximize, clipping or parameter groups)",
        ));
    }
    let value = |name: &str| state.hyperparameters.iter().find(|(k, _)| k == name).map(|(_, v)| *v);
    let lr = value("lr").ok_or_else(|| Error::invalid("optimizer", "no lr in its state", "an lr"))?;
    let momentum = if method == Method::GradientDescent {
        0.0
    } else {
        value("momentum").ok_or_else(|| Error::invalid("optimizer", "no momentum in its state", "a momentum"))?
    };
    Ok((method, lr, momentum))
}

/// The run's masks, pre-activations and remainders the enclosure needs.
pub(super) struct EnclosureTracker<T: Float> {
    pub(super) enclosure: PredictionEnclosure,
    /// (method, η, β) at the start, to detect schedules.
    pub(super) hyperparameters: (Method, f64, f64),
    /// K = X Xᵀ (an own copy: the trainer stays `Send`).
    kernel: DMatrix<T>,
    /// P_{t−1} and scratch for P_t.
    previous: DMatrix<T>,
    current: DMatrix<T>,
    /// Masks of S_{t−2}, S_{t−1}, and scratch for S_t.
    bits: [Vec<u64>; 3],
    /// R'_{t−2}.
    r_prime: DVector<f64>,
    h: DMatrix<T>,
    a: Vec<f64>,
    step: usize,
}

fn materialize<T: Float>(p: Preactivations<'_, T>, out: &mut DMatrix<T>) {
    match p {
        Preactivations::One(p) => out.copy_from(p),
        Preactivations::Sum(p, q) => out.zip_zip_apply(p, q, |o, a, b| *o = a + b),
    }
}

impl<T: Float> EnclosureTracker<T> {
    /// Starts at step 0 from `p0` = P_0, the output weights and targets.
    pub(super) fn start(
        hyperparameters: (Method, f64, f64),
        kernel: DMatrix<T>,
        p0: Preactivations<'_, T>,
        output_weights: &DVector<T>,
        y: &DVector<T>,
    ) -> Result<Self> {
        let (m, n) = p0.shape();
        crate::memory::reserve(
            || format!("the prediction enclosure of {n} samples (n x n kernels, the m x n pre-activations twice)"),
            &[
                crate::memory::bytes_of(&[n, n, 6], 8),
                crate::memory::bytes_of(&[n, n], std::mem::size_of::<T>()),
                crate::memory::bytes_of(&[m, n, 2], std::mem::size_of::<T>()),
            ],
        )?;
        let mut previous = DMatrix::zeros(m, n);
        materialize(p0, &mut previous);
        let mut s0 = Vec::new();
        pack_activations(Preactivations::One(&previous), &mut s0);
        let mut h = DMatrix::zeros(n, n);
        co_activation_from_bits(&s0, &s0, m, &kernel, &mut h);
        let h0 = h.map(|v| v.to_f64());
        let u0 = relu_outputs(Preactivations::One(&previous), output_weights);
        let xi0 = DVector::from_fn(n, |i, _| (u0[i] - y[i]).to_f64());
        let (method, lr, momentum) = hyperparameters;
        // Each output is a sum over the m units.
        let unit_roundoff = T::default_epsilon().to_f64() * ((m as f64).sqrt() / 4.0).max(1.0);
        let output_norm = u0.iter().map(|v| v.to_f64().powi(2)).sum::<f64>().sqrt()
            + y.iter().map(|v| v.to_f64().powi(2)).sum::<f64>().sqrt();
        let mut enclosure =
            PredictionEnclosure::new(method, lr, momentum, &h0, &xi0)?.with_rounding(unit_roundoff, output_norm)?;
        // Re-anchoring keeps REANCHOR_STEP pushes (two n x n f64 each); skipped where the budget refuses them.
        let kept = crate::memory::bytes_of(&[n, n, 2 * REANCHOR_STEP], 8);
        if crate::memory::reserve(|| "the re-anchored enclosure's kept kernels".to_string(), &[kept]).is_ok() {
            enclosure = enclosure.with_reanchoring(REANCHOR_STEP)?;
        }
        Ok(EnclosureTracker {
            enclosure,
            hyperparameters,
            kernel,
            current: DMatrix::zeros(m, n),
            previous,
            bits: [Vec::new(), s0, Vec::new()],
            r_prime: DVector::zeros(n),
            h,
            a: output_weights.iter().map(|v| v.to_f64()).collect(),
            step: 0,
        })
    }

    /// Takes the pre-activations at `step`; pushes the step `step − 1 → step`
    /// when it follows the last one seen (a repeated step is ignored).
    pub(super) fn observe(&mut self, step: usize, p: Preactivations<'_, T>) -> Result<()> {
        if step != self.step + 1 {
            return if step <= self.step {
                Ok(())
            } else {
                Err(Error::invalid(
                    "step",
                    step,
                    format!("step {} (consecutive)", self.step + 1),
                ))
            };
        }
        let (m, n) = p.shape();
        materialize(p, &mut self.current);
        let [older, prev, now] = &mut self.bits;
        pack_activations(Preactivations::One(&self.current), now);
        // R_{t−1} = (J_t − J_{t−1}) θ_t and R'_{t−1} = (J_t − J_{t−1}) θ_{t−1}.
        let scale = 1.0 / (m as f64).sqrt();
        let mut r = DVector::zeros(n);
        let mut r_prime = DVector::zeros(n);
        for i in 0..n {
            let (pc, pp) = (self.current.column(i), self.previous.column(i));
            let (mut acc, mut acc_prime) = (0.0, 0.0);
            for (k, (&c, &q)) in pc.iter().zip(pp.iter()).enumerate() {
                let flip = (c > T::zero()) as i32 - (q > T::zero()) as i32;
                if flip != 0 {
                    let s = flip as f64 * self.a[k];
                    acc += s * c.to_f64();
                    acc_prime += s * q.to_f64();
                }
            }
            r[i] = acc * scale;
            r_prime[i] = acc_prime * scale;
        }
        let (method, _, beta) = self.hyperparameters;
        let remainder = &r - &self.r_prime * beta;
        co_activation_from_bits(prev, prev, m, &self.kernel, &mut self.h);
        let h = self.h.map(|v| v.to_f64());
        let cross = if method == Method::Nesterov && step >= 2 {
            co_activation_from_bits(prev, older, m, &self.kernel, &mut self.h);
            Some(self.h.map(|v| v.to_f64()))
        } else {
            None
        };
        self.enclosure.push(&h, cross.as_ref(), &remainder)?;
        // Rotate: S_{t−1} becomes the older mask, S_t the previous one.
        std::mem::swap(older, prev);
        std::mem::swap(prev, now);
        std::mem::swap(&mut self.previous, &mut self.current);
        self.r_prime = r_prime;
        self.step = step;
        Ok(())
    }
}
