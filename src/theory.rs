//! Predicted convergence rates of gradient descent (GD), heavy ball (HB) and
//! Nesterov's accelerated gradient (NAG) from the NTK spectrum, and checks of
//! a training run against the prediction.
//!
//! Before training: [`rate`] gives the linear rate ρ at which each method
//! shrinks the residual, [`max_stable_lr`] the largest stable step size,
//! [`tune`] the classical tunings with their closed-form rates,
//! [`steps_to_reach`] the number of steps a rate needs, and
//! [`predicted_losses`] / [`predicted_residuals`] the whole predicted
//! trajectory. [`ModalResidual`] holds the actual initial residual in the
//! eigenbasis of H once, and predicts from it the steps to any loss level,
//! split into the asymptotic rate and the transient of the stiff modes
//! ([`StepPrediction`]); [`best_tuning`] finds the (η, β) that reach a level
//! in the fewest predicted steps. After training: [`measured_rate`] fits the
//! rate of a loss curve, [`compare`] sets it against the prediction,
//! [`speedup`] measures how many times faster one run reached a loss level
//! than another, [`verdict`] (through [`crate::Trainer::verdict`]) says with
//! a guarantee whether the steps to each loss level are within a tolerance
//! of the prediction, from a [`PredictionEnclosure`] of the run's residual
//! built from the kernels along the run, and [`regime`] is the older
//! heuristic on the spectrum's ends with the measured-against-linearized
//! exponent gap.
//!
//! # Linearized residual dynamics
//!
//! Write the outputs on the n training inputs as u_t, the residual as
//! ξ_t = u_t − y, the Jacobian as J and the NTK Gram matrix as H = J Jᵀ. The
//! gradient of L = ½‖ξ‖² is g_t = Jᵀ ξ_t, so J g_t = H ξ_t. In the NTK regime
//! J (and so H) barely moves during training, and u_{t+1} − u_t ≈
//! J (θ_{t+1} − θ_t). Multiplying the optimizer updates (see
//! [`crate::optim`]) by J gives
//!
//! ```text
//! GD : ξ_{t+1} = (I − ηH) ξ_t
//! HB : ξ_{t+1} = ((1 + β) I − ηH) ξ_t − β ξ_{t−1}
//! NAG: ξ_{t+1} = (1 + β)(I − ηH) ξ_t − β (I − ηH) ξ_{t−1}
//! ```
//!
//! (for NAG, J applied to the gradient correction −βη (g_t − g_{t−1}) is
//! −βηH (ξ_t − ξ_{t−1}), which is where the factor (I − ηH) on ξ_{t−1} comes
//! from). The optimizers start with θ_{−1} = θ_0 and g_{−1} = 0, so the first
//! step is
//!
//! ```text
//! GD, HB: ξ_1 = (I − ηH) ξ_0
//! NAG   : ξ_1 = (I − (1 + β) ηH) ξ_0
//! ```
//!
//! For HB this is the two-term recursion started from ξ_{−1} = ξ_0; for NAG it
//! is *not* (that start would give ξ_1 = (I − ηH) ξ_0, but g_{−1} = 0 is not
//! H ξ_0), so [`predicted_losses`] takes the first step explicitly.
//!
//! Along an eigenpair (λ, v) of H the coordinate c_t = vᵀ ξ_t follows a scalar
//! recursion whose modes are the roots z of
//!
//! ```text
//! GD : z − (1 − ηλ) = 0
//! HB : z² − (1 + β − ηλ) z + β = 0
//! NAG: z² − (1 + β)(1 − ηλ) z + β (1 − ηλ) = 0
//! ```
//!
//! and c_t = A z₁ᵗ + B z₂ᵗ (A + B t for a double root). The predicted linear
//! rate is the spectral radius ρ = max over λ of max |z|: ‖ξ_t‖ ≤ C tᵖ ρᵗ with
//! p = 1 at critical damping and 0 otherwise, and the loss ½‖ξ_t‖² decays like
//! ρ²ᵗ. GD is HB (or NAG) with β = 0: its polynomial z² − (1 − ηλ) z has the
//! extra root 0.
//!
//! # Where the gradient correction damps more: the product of the roots
//!
//! The roots of z² − b z + c multiply to c (Vieta). When a mode is underdamped
//! the roots are a complex-conjugate pair z, z̄, so |z|² = z z̄ = c:
//!
//! ```text
//! HB : |z| = √β              for (1 − √β)² < ηλ < (1 + √β)²
//! NAG: |z| = √(β (1 − ηλ))   for ((1 − β)/(1 + β))² < ηλ < 1
//! ```
//!
//! Heavy ball's underdamped modes all decay at √β whatever their curvature,
//! and since its two moduli multiply to β, no HB mode decays faster than √β.
//! NAG's gradient correction multiplies the momentum of each mode by
//! (1 − ηλ), so its underdamped modes decay faster than √β. Outside that
//! range NAG's roots are real and the comparison can turn. At the same
//! (η, β), NAG's largest root modulus is smaller than HB's exactly for
//!
//! ```text
//! (1 − √β)² / (1 − √β + β)  <  ηλ  <  1 + √β / (1 + β + √β)
//! ```
//!
//! (at the lower edge NAG's larger real root is √β, at the upper edge it is
//! −√β). The lower edge lies just below ((1 − β)/(1 + β))²; the upper edge
//! grows with β towards 4/3 and never exceeds it:
//!
//! ```text
//! β      band where NAG's modulus < HB's    ((1 − β)/(1 + β))²
//! 0.1    0.597   < ηλ < 1.223               0.669
//! 0.5    0.108   < ηλ < 1.320               0.111
//! 0.9    0.00277 < ηλ < 1.333               0.00277
//! ```
//!
//! Below the band, on the flattest modes, which set the asymptotic rate,
//! NAG's modulus is *larger* than HB's, and above it too (NAG also turns
//! unstable first, at ηλ = 2(1 + β)/(1 + 2β) against 2(1 + β) for HB).
//! When NAG is underdamped over the whole spectrum,
//! rate(NAG) = √(β (1 − ηλ_min)) < √β ≤ rate(HB). For the rates this
//! means, with q = 1/√κ:
//!
//! - At the shared tuning η = 1/λ_max, β = (√κ − 1)/(√κ + 1), NAG is
//!   critically damped at λ_min with rate 1 − q, and HB is underdamped over
//!   the whole spectrum with rate √β = √((1 − q)/(1 + q)). HB needs
//!   ln(1 − q) / ln √((1 − q)/(1 + q)) ≈ 1 + q/2 times NAG's steps
//!   asymptotically: 1.048 at κ = 110, 1.014 at κ = 1.2e3, 1.003 at
//!   κ = 3.4e4. Larger measured speed-ups to 1e-1 or 1e-2 of L_0 come from
//!   the transient: the stiff modes (ηλ near 1) lie inside the band, where
//!   the correction damps them far more (NAG's modulus goes to 0 at ηλ = 1,
//!   HB's stays √β), and they can carry much of ‖ξ_0‖².
//! - With β = 0.9 fixed and η = 1/λ_max, ηλ_min = 1/κ leaves the band for
//!   κ > 361.2, and then HB's rate is the better one: at κ = 500 HB has
//!   0.97352 and NAG 0.97444 (NAG needs 1.037 times HB's steps), at
//!   κ = 1000 0.98887 against 0.98900. Below κ = 361.2 NAG's is better (at
//!   κ = 100: 0.94393 against HB's 0.94868, the example below).
//! - With each method at its own asymptotic optimum (Polyak's HB tuning
//!   against the quadratic-optimal NAG tuning, see the table below), HB is
//!   faster: NAG needs 1.64 times HB's steps at κ = 110, 1.70 at κ = 1.2e3,
//!   1.73 at κ = 3.4e4, tending to √3 for large κ.
//!
//! # The high-resolution ODE reading
//!
//! Shi, Du, Jordan and Su derive ODEs that keep the O(√s) terms (s = η is the
//! step size, μ the strong-convexity constant, β = (1 − √(μs))/(1 + √(μs))):
//!
//! ```text
//! HB : Ẍ + 2√μ Ẋ + (1 + √(μs)) ∇f(X) = 0
//! NAG: Ẍ + 2√μ Ẋ + √s ∇²f(X) Ẋ + (1 + √(μs)) ∇f(X) = 0
//! ```
//!
//! The only difference is the Hessian-driven friction √s ∇²f(X) Ẋ, the
//! continuous-time image of the gradient correction −βη (g_t − g_{t−1}).
//! On a quadratic, along an eigendirection of curvature λ, the friction is
//! 2√μ for HB but 2√μ + √s λ for NAG: stiff (large-λ) modes are damped in
//! proportion to their curvature, just as the discrete modulus
//! √(β (1 − ηλ)) shrinks with λ. The slowest mode (λ = μ) decays at √μ under
//! both ODEs: its roots are −√μ ± i μ^(3/4) s^(1/4) for HB and −√μ,
//! −√μ − √s μ for NAG. The friction 2√μ is shared and the extra √s λ term
//! matters for the stiff modes, so the separation the ODEs show is in the
//! stiff modes, not in the asymptotic rate (as for the discrete rates 1 − q
//! and √((1 − q)/(1 + q)) above, which agree to first order in q). For the
//! squared loss the Hessian JᵀJ has the same nonzero eigenvalues as H.
//!
//! # Stability and tuned parameters
//!
//! z² − b z + c has both roots inside the unit circle iff |c| < 1 and
//! |b| < 1 + c (Jury). With λ_max the largest eigenvalue this gives
//! ([`max_stable_lr`])
//!
//! ```text
//! GD : 0 < η λ_max < 2
//! HB : 0 < η λ_max < 2 (1 + β)
//! NAG: 0 < η λ_max < 2 (1 + β) / (1 + 2β)
//! ```
//!
//! With κ = λ_max / λ_min the classical tunings ([`tune`]) are
//!
//! ```text
//! GD          η = 2/(λ_min + λ_max),          β = 0,                        ρ = (κ − 1)/(κ + 1)
//! HB          η = 4/(√λ_max + √λ_min)²,       β = ((√κ − 1)/(√κ + 1))²,     ρ = (√κ − 1)/(√κ + 1)
//! NAG         η = 1/λ_max,                    β = (√κ − 1)/(√κ + 1),        ρ = 1 − 1/√κ
//! NAG (quad.) η = 4/(3λ_max + λ_min),         β = (√(3κ+1) − 2)/(√(3κ+1) + 2), ρ = 1 − 2/√(3κ+1)
//! ```
//!
//! Tuned HB is critically damped at both ends of the spectrum and underdamped
//! inside; tuned NAG is critically damped at λ_min; the quadratic-optimal NAG
//! tuning is critically damped at λ_min and attains the same modulus with real
//! roots at λ_max.
//!
//! # When the prediction applies, and when it does not
//!
//! The prediction is exact for a model that is linear in its parameters
//! (least squares), and accurate for the two-layer ReLU network in the NTK
//! regime: width m large compared with the sample count n and 1/λ_0 (Du et al.
//! prove linear convergence of GD for m polynomial in n/λ_0; Wang, Lin,
//! Abernethy and Liu et al. do the same for HB and NAG), and step sizes inside
//! the stability range, so that H(W_t) stays close to H(W_0) and the
//! activation patterns barely change. Take the spectrum from H(W_0) (or from
//! the infinite-width H_inf before a network exists); the gap between measured
//! and predicted rate shrinks as m grows. A small relative drift of H can
//! still move λ_min a lot when κ is large (the 20 embedded CIFAR-10 images,
//! raw, m = 4096, 300 steps: Frobenius drift 1.0–1.2 %, λ_min(H(W_t)) down
//! 29–35 %), and a momentum tuned to be critically damped at λ_min(H(W_0))
//! then turns overdamped and slow: tune with a margin below λ_min (the
//! examples use λ_min · 0.7) or check with [`regime`].
//!
//! It does not apply to narrow networks (m comparable to n), where H(W_t)
//! drifts and many ReLU activations flip — watch λ_min and λ_max of H(W_t),
//! the drift, the flip fraction and the weight excursion in
//! [`crate::Diagnostics`], or let [`regime`] judge — nor to large steps
//! near or past the stability limit, where the linearization breaks down. And
//! ρ is an *asymptotic* rate: the first steps show a transient (and, for
//! underdamped momentum, oscillations), and the loss eventually stalls at the
//! rounding floor (about 1e-30 of its initial value in f64, 1e-14 in f32).
//! [`measured_rate`] fits a window of loss levels that skips both. If ξ_0 has
//! no component on the slowest mode, the observed decay is faster than ρ.
//!
//! # Numerical notes
//!
//! Roots are computed without cancellation: complex pairs get the modulus √c
//! (exact to rounding, also next to critical damping), real pairs the stable
//! formula z₁ = (b + sign(b) √D)/2, z₂ = c/z₁ with D = b² − 4c. A double root
//! is infinitely sensitive (a rounding-size change ε in b or c moves it by √ε),
//! so a discriminant within the rounding error of its own computation and of
//! the coefficients is treated as exactly zero (see [`Damping::Critical`]):
//! critically damped tunings then reproduce their closed-form rates to about
//! 1e-15 instead of 1e-8.
//!
//! # Example: predict HB and NAG from a spectrum
//!
//! ```
//! use ntk_momentum::theory::{self, Method};
//!
//! // Eigenvalues of H (e.g. from the empirical NTK at initialization).
//! let eigenvalues = [0.01, 0.05, 0.2, 0.6, 1.0];
//! let (lr, momentum) = (1.0, 0.9); // lr = 1 / lambda_max
//!
//! let hb = theory::rate(Method::HeavyBall, lr, momentum, &eigenvalues)?;
//! let nag = theory::rate(Method::Nesterov, lr, momentum, &eigenvalues)?;
//! // HB is underdamped on every mode and decays at sqrt(beta). NAG is
//! // underdamped on every mode but lambda = 1 (lr lambda = 1 makes both of
//! // its roots 0) and decays at sqrt(beta (1 - lr lambda_min)).
//! assert!((hb - 0.9_f64.sqrt()).abs() < 1e-15);
//! assert!((nag - (0.9_f64 * 0.99).sqrt()).abs() < 1e-15);
//!
//! // Steps to shrink the residual a million-fold: 263 for HB, 240 for NAG.
//! let hb_steps = theory::steps_to_reach(hb, 1e-6)?.unwrap();
//! let nag_steps = theory::steps_to_reach(nag, 1e-6)?.unwrap();
//! assert_eq!((hb_steps, nag_steps), (263, 240));
//! # Ok::<(), ntk_momentum::Error>(())
//! ```
//!
//! # References
//!
//! - X. Liu, W. Tao, W. Li, D. Zhan, J. Wang, Z. Pan, "Provable
//!   Acceleration of Nesterov's Accelerated Gradient Method over Heavy Ball
//!   Method in Training Over-Parameterized Neural Networks", IJCAI 2024,
//!   arXiv:2208.03941. Its theorems are upper bounds whose constants this
//!   crate does not reproduce (they were not available to us); the crate
//!   compares runs with the exact linearized prediction instead.
//! - L. Lessard, B. Recht, A. Packard, "Analysis and Design of Optimization
//!   Algorithms via Integral Quadratic Constraints", SIAM J. Optim. 26(1),
//!   2016 (rates and tunings on quadratics).
//! - B. Shi, S. S. Du, M. I. Jordan, W. J. Su, "Understanding the
//!   Acceleration Phenomenon via High-Resolution Differential Equations",
//!   arXiv:1810.08907.
//! - J.-K. Wang, C.-H. Lin, J. Abernethy, "A Modular Analysis of Provable
//!   Acceleration via Polyak's Momentum: Training a Wide ReLU Network and a
//!   Deep Linear Network", ICML 2021, arXiv:2010.01618.
//! - S. S. Du, X. Zhai, B. Poczos, A. Singh, "Gradient Descent Provably
//!   Optimizes Over-parameterized Neural Networks", ICLR 2019,
//!   arXiv:1810.02054.

mod enclosure;
mod levels;
mod measure;
mod modes;
mod regime;
mod trajectory;
mod tuning;
mod verdict;

pub use enclosure::{impulse_norms, EnclosureStep, PredictionEnclosure};
pub use levels::{best_tuning, BestTuning, ModalResidual, StepPrediction};
pub use measure::{compare, measured_rate, measured_rate_of_history, speedup, Comparison, RateFit};
pub use modes::{damping, max_stable_lr, rate, roots, Damping};
pub use regime::{regime, Regime, REGIME_FIT_WINDOW};
pub use trajectory::{predicted_losses, predicted_residuals};
pub use tuning::{predicted_speedup, steps_to_loss_fraction, steps_to_reach, tune, Tuning, TuningRule};
pub use verdict::{verdict, LevelVerdict, StepTolerance, Verdict};

use crate::{Error, Result};

/// The three optimizers the theory covers (their implementations are
/// [`crate::GradientDescent`], [`crate::HeavyBall`] and [`crate::Nesterov`]).
///
/// Displayed as `GD`, `HB` and `NAG`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
pub enum Method {
    /// Gradient descent: ξ_{t+1} = (I − ηH) ξ_t. Takes no momentum: every
    /// function of this module accepts a momentum argument for uniformity,
    /// validates it (it must lie in [0, 1)) and then ignores it for GD.
    GradientDescent,
    /// Polyak's heavy ball: ξ_{t+1} = ((1 + β) I − ηH) ξ_t − β ξ_{t−1}.
    HeavyBall,
    /// Nesterov's accelerated gradient:
    /// ξ_{t+1} = (1 + β)(I − ηH) ξ_t − β (I − ηH) ξ_{t−1}.
    Nesterov,
}

impl Method {
    /// All three methods, in the order GD, HB, NAG.
    pub const ALL: [Method; 3] = [Method::GradientDescent, Method::HeavyBall, Method::Nesterov];

    /// The short name used by `Display`: `"GD"`, `"HB"` or `"NAG"`.
    pub fn short_name(self) -> &'static str {
        match self {
            Method::GradientDescent => "GD",
            Method::HeavyBall => "HB",
            Method::Nesterov => "NAG",
        }
    }
}

impl std::fmt::Display for Method {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.short_name())
    }
}

/// Parses a method by its short name (`gd`, `hb`, `nag`, as displayed) or
/// its optimizer's name (`gradient_descent`, `heavy_ball`, `nesterov`),
/// ignoring ASCII case.
///
/// ```
/// use ntk_momentum::theory::Method;
///
/// assert_eq!("NAG".parse::<Method>()?, Method::Nesterov);
/// assert_eq!("heavy_ball".parse::<Method>()?, Method::HeavyBall);
/// assert!("adam".parse::<Method>().is_err());
/// # Ok::<(), ntk_momentum::Error>(())
/// ```
impl std::str::FromStr for Method {
    type Err = Error;
    fn from_str(s: &str) -> Result<Self> {
        let s = s.trim();
        let names = [
            (Method::GradientDescent, "gradient_descent"),
            (Method::HeavyBall, "heavy_ball"),
            (Method::Nesterov, "nesterov"),
        ];
        names
            .into_iter()
            .find(|(m, long)| m.short_name().eq_ignore_ascii_case(s) || long.eq_ignore_ascii_case(s))
            .map(|(m, _)| m)
            .ok_or_else(|| Error::invalid("method", s, "gd, hb or nag (or gradient_descent, heavy_ball, nesterov)"))
    }
}

/// Relative tolerance for negative eigenvalues: values in
/// [−`NEGATIVE_TOLERANCE` · max|λ|, 0) are rounding noise and count as 0.
const NEGATIVE_TOLERANCE: f64 = 1e-12;

/// Validates a spectrum: non-empty, finite, and no eigenvalue below
/// −1e-12 · max|λ|. Callers clamp with `λ.max(0.0)`.
fn check_spectrum(eigenvalues: &[f64]) -> Result<()> {
    if eigenvalues.is_empty() {
        return Err(Error::invalid("eigenvalues", "[] (empty)", "at least one eigenvalue"));
    }
    if let Some(i) = eigenvalues.iter().position(|l| !l.is_finite()) {
        return Err(Error::NonFinite {
            what: "eigenvalues".into(),
            location: format!("index {i} (value {})", eigenvalues[i]),
        });
    }
    let scale = eigenvalues.iter().fold(0.0_f64, |m, l| m.max(l.abs()));
    let floor = -NEGATIVE_TOLERANCE * scale;
    if let Some(i) = eigenvalues.iter().position(|&l| l < floor) {
        return Err(Error::invalid(
            "eigenvalues",
            format!("{:e} at index {i}", eigenvalues[i]),
            format!(
                "eigenvalues of a positive semi-definite H: >= -1e-12 * max|lambda| = {floor:e} \
                 (rounding-size negatives are accepted and treated as 0)"
            ),
        ));
    }
    Ok(())
}

/// Validates a single eigenvalue: finite and >= 0.
fn check_eigenvalue(name: &'static str, lambda: f64) -> Result<f64> {
    if lambda.is_finite() && lambda >= 0.0 {
        Ok(lambda)
    } else {
        Err(Error::invalid(name, lambda, "a finite eigenvalue >= 0"))
    }
}

/// Validates lr and momentum (momentum is validated for GD too, then ignored).
fn check_hyperparameters(lr: f64, momentum: f64) -> Result<()> {
    crate::checks::check_lr(lr)?;
    crate::checks::check_momentum(momentum)?;
    Ok(())
}
