use super::elementwise::{zip2, zip3};
use super::hyper::{hyperparameters_impl, momentum_methods, optimizer_trait_methods};
use super::knobs::{transform, with_knobs, Kind, Settings};
use super::params::{Parameters, ParametersMut};
use super::state::Core;
use super::{Convention, Optimizer};
use crate::Result;

/// Nesterov's accelerated gradient (NAG), written with its explicit
/// gradient-correction term.
///
/// ```text
/// θ_{t+1} = θ_t − η_t g_t + β_t (θ_t − θ_{t−1}) − β_t η_t (g_t − g_{t−1}),
/// θ_{−1} = θ_0,  g_{−1} = 0   (first step: θ_1 = θ_0 − η_0 (1 + β_0) g_0)
/// ```
///
/// The last term, −β η (g_t − g_{t−1}), is the *gradient correction*: it is
/// all that separates NAG from [`crate::HeavyBall`]. Whether it makes NAG
/// faster depends on the spectrum and the tuning; [`crate::theory`] says
/// exactly when. Implemented with the velocity v_t = θ_t − θ_{t−1}:
/// `v ← β v − η g − β η (g − g_prev);  θ ← θ + v;  g_prev ← g`. State
/// buffers per tensor: `"velocity"` (v_t) and `"previous_gradient"`
/// (g_{t−1}); with [`Convention::PyTorch`], `"momentum_buffer"`
/// (b_t = β_t b_{t−1} + g_t, update θ ← θ − η_t (g_t + β_t b_t)).
///
/// **Equivalences** (at constant η and β; see [`Convention`] when they vary):
/// - *Look-ahead form.* x_{t+1} = y_t − η ∇f(y_t), y_{t+1} = x_{t+1} +
///   β (x_{t+1} − x_t) with y_0 = x_0: the sequence y_t is exactly θ_t above,
///   with g_t = ∇f(y_t). You never evaluate a look-ahead point yourself.
/// - *PyTorch.* `SGD(lr=η, momentum=β, dampening=0, nesterov=True)` keeps
///   b_t = β b_{t−1} + g_t and updates θ ← θ − η (g_t + β b_t); its iterates
///   equal these (checked in `tests/optim.rs`). Optax's
///   `sgd(η, momentum=β, nesterov=True)` is the same recursion.
///
/// The optimizer is not generic: the float type of its state is fixed by its
/// first step (`f32` or `f64`), and [`Nesterov::reset`] frees it again.
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
/// assert_eq!((nag.lr(), nag.momentum(), nag.name()), (0.1, 0.5, "nesterov"));
/// # Ok::<(), ntk_momentum::Error>(())
/// ```
///
/// # References
/// Y. Nesterov, "A method for solving the convex programming problem with
/// convergence rate O(1/k^2)", 1983. Xin Liu, Wei Tao, Wei Li, Dazhi Zhan,
/// Jun Wang, Zhisong Pan, "Provable Acceleration of Nesterov's Accelerated
/// Gradient Method over Heavy Ball Method in Training Over-Parameterized
/// Neural Networks", IJCAI 2024, arXiv:2208.03941. Shi, Du, Jordan, Su,
/// arXiv:1810.08907.
#[derive(Clone, Debug)]
pub struct Nesterov {
    settings: Settings,
    convention: Convention,
    core: Core,
}

impl Nesterov {
    const NAME: &'static str = "nesterov";
    const KIND: Kind = Kind::Nesterov;

    /// NAG with constant step size `lr` (η) and momentum `momentum` (β).
    ///
    /// # Errors
    /// [`crate::Error::InvalidParameter`] unless `lr` is finite and > 0 and
    /// `momentum` is in [0, 1). (Whether they stay so in `f32` is checked at
    /// the first `f32` step.)
    pub fn new(lr: f64, momentum: f64) -> Result<Self> {
        Self::with_schedules(lr, momentum)
    }

    fn buffer_names(convention: Convention) -> &'static [&'static str] {
        match convention {
            Convention::Displacement => &["velocity", "previous_gradient"],
            Convention::PyTorch => &["momentum_buffer"],
        }
    }

    momentum_methods!();
}

hyperparameters_impl!(Nesterov);

impl<P, G> Optimizer<P, G> for Nesterov
where
    P: ParametersMut + ?Sized,
    G: Parameters<Scalar = P::Scalar> + ?Sized,
{
    fn step(&mut self, params: &mut P, grad: &G) -> Result<()> {
        let t = self.core.steps();
        let step = self.settings.resolve::<P::Scalar, G>(t, grad)?;
        let (lr, momentum) = (step.max_lr, step.max_momentum);
        let settings = &self.settings;
        let result = match self.convention {
            Convention::Displacement => {
                // |v'| <= β|v| + η|g| + βη(|g| + |g_prev|), g_prev' = g, plus ηλ'|θ| on θ.
                let growth = |theta: f64, g: f64, b: &mut [f64; 2]| {
                    let g = step.gradient_bound(theta, g);
                    b[0] = momentum * b[0] + lr * g + momentum * lr * (g + b[1]);
                    b[1] = g;
                    theta + b[0] + step.max_eta_decoupled * theta
                };
                self.core.apply(params, grad, growth, |i, p, g, buffers| {
                    let [velocity, previous] = buffers else { return };
                    let c = step.coefficients[settings.group_of(i)];
                    let (eta, beta, beta_eta) = (c.eta, c.beta, c.beta_eta);
                    if step.plain {
                        // v_{t+1} = β v_t − η g_t − β η (g_t − g_{t−1});  θ_{t+1} = θ_t + v_{t+1}
                        zip3(p, g, velocity, previous, move |p, g, v, gp| {
                            *v = beta * *v - eta * g - beta_eta * (g - *gp);
                            *gp = g;
                            *p += *v;
                        });
                    } else {
                        // The same with g' = clip, negate, + λθ (crate::optim::knobs), then − η λ' θ_t.
                        let (scale, limit) = (step.scale, step.limit);
                        macro_rules! kernel {
                            ($clamp:literal, $decayed:literal, $decoupled:literal) => {
                                zip3(p, g, velocity, previous, move |p, g, v, gp| {
                                    let old = *p;
                                    let g = transform(g, old, scale, limit, c.decay, $clamp, $decayed);
                                    *v = beta * *v - eta * g - beta_eta * (g - *gp);
                                    *gp = g;
                                    *p += *v;
                                    if $decoupled {
                                        *p -= c.eta_decoupled * old;
                                    }
                                })
                            };
                        }
                        with_knobs!(step.clamp, c.decayed, c.decoupled, kernel)
                    }
                })
            }
            // |b'| <= β|b| + |g|, |θ'| <= |θ| + η(|g| + β|b'|) + ηλ'|θ|.
            Convention::PyTorch => self.core.apply(
                params,
                grad,
                |theta, g, b| {
                    let g = step.gradient_bound(theta, g);
                    b[0] = momentum * b[0] + g;
                    theta + lr * (g + momentum * b[0]) + step.max_eta_decoupled * theta
                },
                |i, p, g, buffers| {
                    let [b] = buffers else { return };
                    let c = step.coefficients[settings.group_of(i)];
                    let (eta, beta) = (c.eta, c.beta);
                    if step.plain {
                        // b_t = β b_{t−1} + g_t;  θ_{t+1} = θ_t − η (g_t + β b_t)
                        zip2(p, g, b, move |p, g, b| {
                            *b = beta * *b + g;
                            *p -= eta * (g + beta * *b);
                        });
                    } else {
                        let (scale, limit) = (step.scale, step.limit);
                        macro_rules! kernel {
                            ($clamp:literal, $decayed:literal, $decoupled:literal) => {
                                zip2(p, g, b, move |p, g, b| {
                                    let old = *p;
                                    let g = transform(g, old, scale, limit, c.decay, $clamp, $decayed);
                                    *b = beta * *b + g;
                                    *p -= eta * (g + beta * *b);
                                    if $decoupled {
                                        *p -= c.eta_decoupled * old;
                                    }
                                })
                            };
                        }
                        with_knobs!(step.clamp, c.decayed, c.decoupled, kernel)
                    }
                },
            ),
        };
        if result.is_ok() {
            self.settings.last_norm = step.norm;
        }
        result
    }
    optimizer_trait_methods!();
}
