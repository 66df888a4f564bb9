use rayon::prelude::*;

use super::{check_lr_for, check_momentum_for, optimizer_bookkeeping, Core, Optimizer, Parameters, CHUNK};
use crate::linalg::parallel;
use crate::{Float, Result};

/// Polyak's heavy-ball method.
///
/// ```text
/// θ_{t+1} = θ_t − η g_t + β (θ_t − θ_{t−1}),     θ_{−1} = θ_0
/// ```
///
/// implemented with the velocity v_t = θ_t − θ_{t−1} (v_0 = 0):
/// `v ← β v − η g;  θ ← θ + v`. The state buffer `"velocity"` holds v_t.
///
/// **Equivalence.** With b_t = β b_{t−1} + g_t (b_{−1} = 0) one has
/// v_{t+1} = −η b_t, so the iterates are those of PyTorch's
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
pub struct HeavyBall<T = f64> {
    lr: f64,
    momentum: f64,
    core: Core<T>,
}

impl<T: Float> HeavyBall<T> {
    /// Heavy ball with step size `lr` (η) and momentum `momentum` (β).
    ///
    /// # Errors
    /// [`crate::Error::InvalidParameter`] unless `lr` is finite and > 0 (also
    /// once converted to `T`) and `momentum` is in [0, 1).
    pub fn new(lr: f64, momentum: f64) -> Result<Self> {
        Ok(HeavyBall {
            lr: check_lr_for::<T>(lr)?,
            momentum: check_momentum_for::<T>(momentum)?,
            core: Core::new(&["velocity"]),
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

impl<P: Parameters> Optimizer<P> for HeavyBall<P::Scalar> {
    fn step(&mut self, params: &mut P, grad: &P) -> Result<()> {
        let eta = P::Scalar::cast(self.lr);
        let beta = P::Scalar::cast(self.momentum);
        let [velocity] = self.core.begin_step(params, grad)? else {
            unreachable!("heavy ball has one buffer")
        };
        let kernel = |p: &mut [P::Scalar], g: &[P::Scalar], v: &mut [P::Scalar]| {
            for ((p, &g), v) in p.iter_mut().zip(g).zip(v.iter_mut()) {
                // v_{t+1} = β v_t − η g_t;  θ_{t+1} = θ_t + v_{t+1}
                *v = beta * *v - eta * g;
                *p += *v;
            }
        };
        let (p, g) = (params.as_mut_slice(), grad.as_slice());
        if parallel(p.len()) {
            let chunks = p
                .par_chunks_mut(CHUNK)
                .zip(g.par_chunks(CHUNK))
                .zip(velocity.par_chunks_mut(CHUNK));
            chunks.for_each(|((p, g), v)| kernel(p, g, v));
        } else {
            kernel(p, g, velocity);
        }
        Ok(())
    }
    optimizer_bookkeeping!("heavy_ball");
}
