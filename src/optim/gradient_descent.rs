use super::elementwise::zip1;
use super::hyper::{bookkeeping_methods, check_lr_schedule, lr_at, optimizer_trait_methods};
use super::params::{Parameters, ParametersMut};
use super::state::Core;
use super::{Optimizer, Schedule};
use crate::{Float, Result};

/// Gradient descent.
///
/// ```text
/// θ_{t+1} = θ_t − η_t g_t
/// ```
///
/// Equals PyTorch's `SGD(lr=η)` and Optax's `sgd(η)`. It keeps no buffers,
/// only the step count and the shapes of the first step.
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
pub struct GradientDescent {
    lr: Schedule,
    core: Core,
}

impl GradientDescent {
    const NAME: &'static str = "gradient_descent";

    /// Gradient descent with constant step size `lr` (η).
    ///
    /// # Errors
    /// [`crate::Error::InvalidParameter`] unless `lr` is finite and > 0.
    pub fn new(lr: f64) -> Result<Self> {
        Self::with_schedule(lr)
    }

    /// Gradient descent with a step-size schedule.
    ///
    /// # Errors
    /// [`crate::Error::InvalidParameter`] if the value at step 0 is not
    /// finite and > 0; later values are checked at each step.
    pub fn with_schedule(lr: impl Into<Schedule>) -> Result<Self> {
        let lr = lr.into();
        check_lr_schedule(&lr, 0)?;
        Ok(GradientDescent {
            lr,
            core: Core::new(&[]),
        })
    }

    /// The step size η the next step will use.
    pub fn lr(&self) -> f64 {
        self.lr.value(self.core.steps())
    }

    /// The step-size schedule.
    pub fn lr_schedule(&self) -> &Schedule {
        &self.lr
    }

    /// Uses step size `lr` from the next step on.
    ///
    /// # Errors
    /// [`crate::Error::InvalidParameter`] unless `lr` is finite and > 0.
    pub fn set_lr(&mut self, lr: f64) -> Result<()> {
        self.set_lr_schedule(Schedule::Constant(lr))
    }

    /// Replaces the step-size schedule (its value at the next step is checked).
    ///
    /// # Errors
    /// [`crate::Error::InvalidParameter`] if that value is out of range.
    pub fn set_lr_schedule(&mut self, lr: Schedule) -> Result<()> {
        check_lr_schedule(&lr, self.core.steps())?;
        self.lr = lr;
        Ok(())
    }

    fn hyperparameters(&self) -> [(&'static str, f64); 1] {
        [("lr", self.lr())]
    }

    bookkeeping_methods!();
}

impl<P, G> Optimizer<P, G> for GradientDescent
where
    P: ParametersMut + ?Sized,
    G: Parameters<Scalar = P::Scalar> + ?Sized,
{
    fn step(&mut self, params: &mut P, grad: &G) -> Result<()> {
        let lr = lr_at::<P::Scalar>(&self.lr, self.core.steps())?;
        let eta = P::Scalar::cast(lr);
        // θ_{t+1} = θ_t − η g_t, so |θ_{t+1}| <= |θ_t| + η|g_t|.
        self.core.apply(
            params,
            grad,
            |theta, g, _| theta + lr * g,
            |p, g, _| zip1(p, g, move |p, g| *p -= eta * g),
        )
    }
    optimizer_trait_methods!();
}
