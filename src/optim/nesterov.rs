use rayon::prelude::*;

use super::{check_lr_for, check_momentum_for, optimizer_bookkeeping, Core, Optimizer, Parameters, CHUNK};
use crate::linalg::parallel;
use crate::{Float, Result};

/// Nesterov's accelerated gradient (NAG), written with its explicit
/// gradient-correction term.
///
/// ```text
/// θ_{t+1} = θ_t − η g_t + β (θ_t − θ_{t−1}) − β η (g_t − g_{t−1}),
/// θ_{−1} = θ_0,  g_{−1} = 0   (first step: θ_1 = θ_0 − η (1 + β) g_0)
/// ```
///
/// The last term, −β η (g_t − g_{t−1}), is the *gradient correction*: it is
/// all that separates NAG from [`crate::HeavyBall`], and it is what makes NAG
/// provably faster in the over-parameterized (NTK) regime (see
/// [`crate::theory`]). Implemented with the velocity v_t = θ_t − θ_{t−1}:
/// `v ← β v − η g − β η (g − g_prev);  θ ← θ + v;  g_prev ← g`. State
/// buffers: `"velocity"` (v_t) and `"previous_gradient"` (g_{t−1}).
///
/// **Equivalences** (the convention users ask about first):
/// - *Look-ahead form.* x_{t+1} = y_t − η ∇f(y_t), y_{t+1} = x_{t+1} +
///   β (x_{t+1} − x_t) with y_0 = x_0: the sequence y_t is exactly θ_t above,
///   with g_t = ∇f(y_t). You never evaluate a look-ahead point yourself.
/// - *PyTorch.* `SGD(lr=η, momentum=β, dampening=0, nesterov=True)` keeps
///   b_t = β b_{t−1} + g_t and updates θ ← θ − η (g_t + β b_t); its iterates
///   equal these (checked to 1e-12 in `tests/optim.rs`). Optax's
///   `sgd(η, momentum=β, nesterov=True)` is the same recursion.
///
/// # Examples
/// ```
/// use ntk_momentum::{Nesterov, Optimizer};
///
/// // f(x) = (x0^2 + 10 x1^2) / 2
/// let mut nag = Nesterov::new(0.1, 0.5)?;
/// let mut x = vec![1.0_f64, 1.0];
/// for _ in 0..200 {
///     let g = vec![x[0], 10.0 * x[1]];
///     nag.step(&mut x, &g)?;
/// }
/// assert!(x[0].abs() < 1e-8 && x[1].abs() < 1e-8);
/// # Ok::<(), ntk_momentum::Error>(())
/// ```
///
/// # References
/// Y. Nesterov, "A method for solving the convex programming problem with
/// convergence rate O(1/k^2)", 1983. Liu, Tao, Li, Zhan, Wang, Pan, "Provable
/// Acceleration of Nesterov's Accelerated Gradient Method over Heavy Ball
/// Method in Training Over-Parameterized Neural Networks", IJCAI 2024,
/// arXiv:2208.03941. Shi, Du, Jordan, Su, arXiv:1810.08907.
#[derive(Clone, Debug)]
pub struct Nesterov<T = f64> {
    lr: f64,
    momentum: f64,
    core: Core<T>,
}

impl<T: Float> Nesterov<T> {
    /// NAG with step size `lr` (η) and momentum `momentum` (β).
    ///
    /// # Errors
    /// [`crate::Error::InvalidParameter`] unless `lr` is finite and > 0 (also
    /// once converted to `T`) and `momentum` is in [0, 1).
    pub fn new(lr: f64, momentum: f64) -> Result<Self> {
        Ok(Nesterov {
            lr: check_lr_for::<T>(lr)?,
            momentum: check_momentum_for::<T>(momentum)?,
            core: Core::new(&["velocity", "previous_gradient"]),
        })
    }

    /// The step size η.
    pub fn lr(&self) -> f64 {
        self.lr
    }

    /// The momentum β.
    pub fn momentum(&self) -> f64 {
        self.momentum
    }

    fn hyperparameters(&self) -> [(&'static str, f64); 2] {
        [("lr", self.lr), ("momentum", self.momentum)]
    }
}

impl<P: Parameters> Optimizer<P> for Nesterov<P::Scalar> {
    fn step(&mut self, params: &mut P, grad: &P) -> Result<()> {
        let eta = P::Scalar::cast(self.lr);
        let beta = P::Scalar::cast(self.momentum);
        let beta_eta = P::Scalar::cast(self.momentum * self.lr);
        let [velocity, previous] = self.core.begin_step(params, grad)? else {
            unreachable!("Nesterov has two buffers")
        };
        let kernel = |p: &mut [P::Scalar], g: &[P::Scalar], v: &mut [P::Scalar], gp: &mut [P::Scalar]| {
            for ((p, &g), (v, gp)) in p.iter_mut().zip(g).zip(v.iter_mut().zip(gp.iter_mut())) {
                // v_{t+1} = β v_t − η g_t − β η (g_t − g_{t−1});  θ_{t+1} = θ_t + v_{t+1}
                *v = beta * *v - eta * g - beta_eta * (g - *gp);
                *gp = g;
                *p += *v;
            }
        };
        let (p, g) = (params.as_mut_slice(), grad.as_slice());
        if parallel(p.len()) {
            let state = velocity.par_chunks_mut(CHUNK).zip(previous.par_chunks_mut(CHUNK));
            let chunks = p.par_chunks_mut(CHUNK).zip(g.par_chunks(CHUNK)).zip(state);
            chunks.for_each(|((p, g), (v, gp))| kernel(p, g, v, gp));
        } else {
            kernel(p, g, velocity, previous);
        }
        Ok(())
    }
    optimizer_bookkeeping!("nesterov");
}
