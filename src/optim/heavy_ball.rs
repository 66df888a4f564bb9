use super::elementwise::zip2;
use super::hyper::{lr_at, momentum_at, momentum_methods, optimizer_trait_methods};
use super::params::{Parameters, ParametersMut};
use super::state::Core;
use super::{Convention, Optimizer, Schedule};
use crate::{Float, Result};

/// Polyak's heavy-ball method.
///
/// ```text
/// θ_{t+1} = θ_t − η_t g_t + β_t (θ_t − θ_{t−1}),     θ_{−1} = θ_0
/// ```
///
/// implemented with the velocity v_t = θ_t − θ_{t−1} (v_0 = 0):
/// `v ← β v − η g;  θ ← θ + v`. The state buffer `"velocity"` holds v_t for
/// each tensor; with [`Convention::PyTorch`], `"momentum_buffer"` holds
/// b_t = β_t b_{t−1} + g_t and the update is θ ← θ − η_t b_t.
///
/// **Equivalence** (at constant η and β; see [`Convention`] when they
/// vary). With b_t = β b_{t−1} + g_t (b_{−1} = 0) one has v_{t+1} = −η b_t,
/// so the iterates are those of PyTorch's
/// `SGD(lr=η, momentum=β, dampening=0, nesterov=False)` and of Optax's
/// `sgd(η, momentum=β)`.
///
/// # Examples
/// ```
/// use ntk_momentum::{HeavyBall, Optimizer};
/// use nalgebra::DVector;
///
/// // Minimise f(x) = |x|^2 / 2, whose gradient is x.
/// let mut hb = HeavyBall::new(0.5, 0.5)?;
/// let mut x = DVector::from_vec(vec![1.0_f64, -1.0]);
/// for _ in 0..100 {
///     let g = x.clone();
///     hb.step(&mut x, &g)?;
/// }
/// assert!(x.norm() < 1e-10);
/// # Ok::<(), ntk_momentum::Error>(())
/// ```
///
/// # References
/// B. T. Polyak, "Some methods of speeding up the convergence of iteration
/// methods", USSR Comput. Math. Math. Phys. 4(5), 1964. For the NTK setting:
/// Wang, Lin, Abernethy, arXiv:2010.01618.
#[derive(Clone, Debug)]
pub struct HeavyBall {
    lr: Schedule,
    momentum: Schedule,
    convention: Convention,
    core: Core,
}

impl HeavyBall {
    const NAME: &'static str = "heavy_ball";

    /// Heavy ball with constant step size `lr` (η) and momentum `momentum` (β).
    ///
    /// # Errors
    /// [`crate::Error::InvalidParameter`] unless `lr` is finite and > 0 and
    /// `momentum` is in [0, 1).
    pub fn new(lr: f64, momentum: f64) -> Result<Self> {
        Self::with_schedules(lr, momentum)
    }

    fn buffer_names(convention: Convention) -> &'static [&'static str] {
        match convention {
            Convention::Displacement => &["velocity"],
            Convention::PyTorch => &["momentum_buffer"],
        }
    }

    momentum_methods!();
}

impl<P, G> Optimizer<P, G> for HeavyBall
where
    P: ParametersMut + ?Sized,
    G: Parameters<Scalar = P::Scalar> + ?Sized,
{
    fn step(&mut self, params: &mut P, grad: &G) -> Result<()> {
        let t = self.core.steps();
        let (lr, momentum) = (
            lr_at::<P::Scalar>(&self.lr, t)?,
            momentum_at::<P::Scalar>(&self.momentum, t)?,
        );
        let (eta, beta) = (P::Scalar::cast(lr), P::Scalar::cast(momentum));
        let convention = self.convention;
        // Displacement: |v'| <= β|v| + η|g|, |θ'| <= |θ| + |v'|.
        // PyTorch: |b'| <= β|b| + |g|, |θ'| <= |θ| + η|b'|.
        let growth = |theta: f64, g: f64, b: &mut [f64; 2]| match convention {
            Convention::Displacement => {
                b[0] = momentum * b[0] + lr * g;
                theta + b[0]
            }
            Convention::PyTorch => {
                b[0] = momentum * b[0] + g;
                theta + lr * b[0]
            }
        };
        self.core.apply(params, grad, growth, |p, g, buffers| {
            let [buffer] = buffers else { return };
            match convention {
                // v_{t+1} = β v_t − η g_t;  θ_{t+1} = θ_t + v_{t+1}
                Convention::Displacement => zip2(p, g, buffer, move |p, g, v| {
                    *v = beta * *v - eta * g;
                    *p += *v;
                }),
                // b_t = β b_{t−1} + g_t;  θ_{t+1} = θ_t − η b_t
                Convention::PyTorch => zip2(p, g, buffer, move |p, g, b| {
                    *b = beta * *b + g;
                    *p -= eta * *b;
                }),
            }
        })
    }
    optimizer_trait_methods!();
}
