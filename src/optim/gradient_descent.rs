use super::elementwise::zip1;
use super::hyper::{bookkeeping_methods, check_lr_schedule, hyperparameters_impl, optimizer_trait_methods};
use super::knobs::{transform, with_knobs, Kind, Settings};
use super::params::{Parameters, ParametersMut};
use super::state::Core;
use super::{Optimizer, Schedule};
use crate::Result;

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
    settings: Settings,
    core: Core,
}

impl GradientDescent {
    const NAME: &'static str = "gradient_descent";

    /// Gradient descent with constant step size `lr` (η).
    ///
    /// # Errors
    /// [`crate::Error::InvalidParameter`] unless `lr` is finite and > 0.
    pub fn new(lr: f64) -> Result<Self> {
        Self::with_schedules(lr)
    }

    /// Gradient descent with a step-size schedule.
    ///
    /// # Errors
    /// [`crate::Error::InvalidParameter`] if the value at step 0 is not
    /// finite and > 0; later values are checked at each step.
    pub fn with_schedules(lr: impl Into<Schedule>) -> Result<Self> {
        let lr = lr.into();
        check_lr_schedule(&lr, 0)?;
        Ok(GradientDescent {
            settings: Settings::new(Kind::GradientDescent, lr, Schedule::Constant(0.0)),
            core: Core::new(&[]),
        })
    }

    /// The former spelling of [`GradientDescent::with_schedules`].
    ///
    /// # Errors
    /// As [`GradientDescent::with_schedules`].
    #[deprecated(
        since = "0.3.0",
        note = "use `with_schedules`, the spelling HeavyBall and Nesterov share"
    )]
    pub fn with_schedule(lr: impl Into<Schedule>) -> Result<Self> {
        Self::with_schedules(lr)
    }

    bookkeeping_methods!();
}

hyperparameters_impl!(GradientDescent);

impl<P, G> Optimizer<P, G> for GradientDescent
where
    P: ParametersMut + ?Sized,
    G: Parameters<Scalar = P::Scalar> + ?Sized,
{
    fn step(&mut self, params: &mut P, grad: &G) -> Result<()> {
        let step = self.settings.resolve::<P::Scalar, G>(self.core.steps(), grad)?;
        let lr = step.max_lr;
        let settings = &self.settings;
        // θ_{t+1} = θ_t − η g'_t − η λ' θ_t, so |θ_{t+1}| <= |θ_t| + η|g'_t| + ηλ'|θ_t|.
        let result = self.core.apply(
            params,
            grad,
            |theta, g, _| theta + lr * step.gradient_bound(theta, g) + step.max_eta_decoupled * theta,
            |i, p, g, _| {
                let c = step.coefficients[settings.group_of(i)];
                let eta = c.eta;
                if step.plain {
                    zip1(p, g, move |p, g| *p -= eta * g);
                } else {
                    let (scale, limit) = (step.scale, step.limit);
                    macro_rules! kernel {
                        ($clamp:literal, $decayed:literal, $decoupled:literal) => {
                            zip1(p, g, move |p, g| {
                                let old = *p;
                                *p -= eta * transform(g, old, scale, limit, c.decay, $clamp, $decayed);
                                if $decoupled {
                                    *p -= c.eta_decoupled * old;
                                }
                            })
                        };
                    }
                    with_knobs!(step.clamp, c.decayed, c.decoupled, kernel)
                }
            },
        );
        if result.is_ok() {
            self.settings.last_norm = step.norm;
        }
        result
    }
    optimizer_trait_methods!();
}
