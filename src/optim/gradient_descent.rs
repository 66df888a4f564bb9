use rayon::prelude::*;

use super::{check_lr_for, optimizer_bookkeeping, Core, Optimizer, Parameters, CHUNK};
use crate::linalg::parallel;
use crate::{Float, Result};

/// Gradient descent with a constant step size.
///
/// ```text
/// θ_{t+1} = θ_t − η g_t
/// ```
///
/// Equals PyTorch's `SGD(lr=η)` and Optax's `sgd(η)`.
///
/// # Examples
/// ```
/// use ntk_momentum::{GradientDescent, Optimizer};
///
/// let mut gd = GradientDescent::new(0.1)?;
/// let mut x = vec![1.0_f64, -2.0];
/// let grad = vec![10.0, 10.0];
/// gd.step(&mut x, &grad)?;
/// assert_eq!(x, vec![0.0, -3.0]);
/// # Ok::<(), ntk_momentum::Error>(())
/// ```
///
/// # References
/// Cauchy (1847); in the NTK setting, Du, Zhai, Póczos, Singh, "Gradient
/// Descent Provably Optimizes Over-parameterized Neural Networks", ICLR 2019,
/// arXiv:1810.02054.
#[derive(Clone, Debug)]
pub struct GradientDescent<T = f64> {
    lr: f64,
    core: Core<T>,
}

impl<T: Float> GradientDescent<T> {
    /// Gradient descent with step size `lr` (η).
    ///
    /// # Errors
    /// [`crate::Error::InvalidParameter`] unless `lr` is finite and > 0 (also
    /// once converted to `T`).
    pub fn new(lr: f64) -> Result<Self> {
        Ok(GradientDescent {
            lr: check_lr_for::<T>(lr)?,
            core: Core::new(&[]),
        })
    }

    /// The step size η.
    pub fn lr(&self) -> f64 {
        self.lr
    }

    fn hyperparameters(&self) -> [(&'static str, f64); 1] {
        [("lr", self.lr)]
    }
}

impl<P: Parameters> Optimizer<P> for GradientDescent<P::Scalar> {
    fn step(&mut self, params: &mut P, grad: &P) -> Result<()> {
        self.core.begin_step(params, grad)?;
        let eta = P::Scalar::cast(self.lr);
        let kernel = |p: &mut [P::Scalar], g: &[P::Scalar]| {
            for (p, &g) in p.iter_mut().zip(g) {
                *p -= eta * g;
            }
        };
        let (p, g) = (params.as_mut_slice(), grad.as_slice());
        if parallel(p.len()) {
            p.par_chunks_mut(CHUNK)
                .zip(g.par_chunks(CHUNK))
                .for_each(|(p, g)| kernel(p, g));
        } else {
            kernel(p, g);
        }
        Ok(())
    }
    optimizer_bookkeeping!("gradient_descent");
}
