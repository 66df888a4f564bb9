use super::elementwise::zip2;
use super::hyper::{hyperparameters_impl, momentum_methods, optimizer_trait_methods};
use super::knobs::{transform, with_knobs, Kind, Settings};
use super::params::{Parameters, ParametersMut};
use super::state::Core;
use super::{Convention, Optimizer};
use crate::Result;

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
    settings: Settings,
    convention: Convention,
    core: Core,
}

impl HeavyBall {
    const NAME: &'static str = "heavy_ball";
    const KIND: Kind = Kind::HeavyBall;

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

    /// Dampening δ in group 0 (PyTorch's `dampening`): the buffer becomes
    /// b_t = β b_{t−1} + (1 − δ) g_t from the second step on (the first
    /// step copies g_0, as PyTorch does); in the displacement convention
    /// v_{t+1} = β v_t − η (1 − δ) g_t. At δ = 0, plain heavy ball.
    ///
    /// # Errors
    /// [`crate::Error::InvalidParameter`] unless δ is in [0, 1].
    pub fn dampening(mut self, dampening: f64) -> Result<Self> {
        self.settings.set_dampening(dampening)?;
        Ok(self)
    }

    momentum_methods!();
}

hyperparameters_impl!(HeavyBall);

impl<P, G> Optimizer<P, G> for HeavyBall
where
    P: ParametersMut + ?Sized,
    G: Parameters<Scalar = P::Scalar> + ?Sized,
{
    fn step(&mut self, params: &mut P, grad: &G) -> Result<()> {
        let t = self.core.steps();
        let step = self.settings.resolve::<P::Scalar, G>(t, grad)?;
        let (lr, momentum) = (step.max_lr, step.max_momentum);
        let convention = self.convention;
        // Displacement: |v'| <= β|v| + η|g|, |θ'| <= |θ| + |v'| + ηλ'|θ|.
        // PyTorch: |b'| <= β|b| + |g|, |θ'| <= |θ| + η|b'| + ηλ'|θ|.
        let growth = |theta: f64, g: f64, b: &mut [f64; 2]| {
            let g = step.gradient_bound(theta, g);
            let decay = step.max_eta_decoupled * theta;
            match convention {
                Convention::Displacement => {
                    b[0] = momentum * b[0] + lr * g;
                    theta + b[0] + decay
                }
                Convention::PyTorch => {
                    b[0] = momentum * b[0] + g;
                    theta + lr * b[0] + decay
                }
            }
        };
        let settings = &self.settings;
        let result = self.core.apply(params, grad, growth, |i, p, g, buffers| {
            let [buffer] = buffers else { return };
            let c = step.coefficients[settings.group_of(i)];
            let (eta, beta) = (c.eta, c.beta);
            match (convention, step.plain) {
                // v_{t+1} = β v_t − η g_t;  θ_{t+1} = θ_t + v_{t+1}
                (Convention::Displacement, true) => zip2(p, g, buffer, move |p, g, v| {
                    *v = beta * *v - eta * g;
                    *p += *v;
                }),
                // b_t = β b_{t−1} + g_t;  θ_{t+1} = θ_t − η b_t
                (Convention::PyTorch, true) => zip2(p, g, buffer, move |p, g, b| {
                    *b = beta * *b + g;
                    *p -= eta * *b;
                }),
                // With the knobs (crate::optim::knobs): g' = clip, negate, + λθ;
                // v_{t+1} = β v_t − η (1 − δ) g';  θ_{t+1} = θ_t + v_{t+1} − η λ' θ_t
                (Convention::Displacement, false) => {
                    let (scale, limit, eta_undamped) = (step.scale, step.limit, c.eta_undamped);
                    macro_rules! kernel {
                        ($clamp:literal, $decayed:literal, $decoupled:literal) => {
                            zip2(p, g, buffer, move |p, g, v| {
                                let old = *p;
                                let g = transform(g, old, scale, limit, c.decay, $clamp, $decayed);
                                *v = beta * *v - eta_undamped * g;
                                *p += *v;
                                if $decoupled {
                                    *p -= c.eta_decoupled * old;
                                }
                            })
                        };
                    }
                    with_knobs!(step.clamp, c.decayed, c.decoupled, kernel)
                }
                // b_t = β b_{t−1} + (1 − δ) g';  θ_{t+1} = θ_t − η b_t − η λ' θ_t
                (Convention::PyTorch, false) => {
                    let (scale, limit, undamped) = (step.scale, step.limit, c.undamped);
                    macro_rules! kernel {
                        ($clamp:literal, $decayed:literal, $decoupled:literal) => {
                            zip2(p, g, buffer, move |p, g, b| {
                                let old = *p;
                                let g = transform(g, old, scale, limit, c.decay, $clamp, $decayed);
                                *b = beta * *b + undamped * g;
                                *p -= eta * *b;
                                if $decoupled {
                                    *p -= c.eta_decoupled * old;
                                }
                            })
                        };
                    }
                    with_knobs!(step.clamp, c.decayed, c.decoupled, kernel)
                }
            }
        });
        if result.is_ok() {
            self.settings.last_norm = step.norm;
        }
        result
    }
    optimizer_trait_methods!();
}
