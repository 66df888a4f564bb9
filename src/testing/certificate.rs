//! Exact convergence certificates of the linearized dynamics.

use std::fmt;

use crate::record::History;
use crate::theory::Method;
use crate::{Error, Result};

/// Relative slack of [`Certificate::check_norms`] for floating-point
/// rounding of the run being checked.
pub const CHECK_SLACK: f64 = 1e-9;

/// Norm ratios ‖ξ_t‖/‖ξ_0‖ below this are not checked: there the run's own
/// rounding (and, for losses, the underflow of ½‖ξ‖²) is no longer relative.
pub const CHECK_FLOOR: f64 = 1e-140;

/// The bound of one mode, started from c_0 = 1 with the crate's first step
/// (θ_{−1} = θ_0, and g_{−1} = 0 for NAG): c_1 = f.
#[derive(Clone, Copy, Debug)]
enum ModeBound {
    /// Real roots r_1, r_2 with |r_2| ≤ |r_1| ≤ ρ:
    /// c_t = A r_1ᵗ + B r_2ᵗ = r_1ᵗ + (f − r_1) D_t, D_t = (r_1ᵗ − r_2ᵗ)/(r_1 − r_2),
    /// so |c_t| ≤ ρᵗ min(|A| + |B| (|r_2|/ρ)ᵗ, 1 + |f − r_1| t / ρ).
    Real {
        rho: f64,
        ratio: f64,
        a: f64,
        b: f64,
        linear: f64,
    },
    /// Complex roots ρ e^{±iφ}: c_t = ρᵗ (cos tφ + K sin tφ / sin φ),
    /// K = f/ρ − cos φ, so |c_t| ≤ ρᵗ min(√(1 + K²/sin²φ), 1 + |K| t).
    Complex { rho: f64, envelope: f64, linear: f64 },
}

impl ModeBound {
    /// The mode of eigenvalue `lambda` (≥ 0) under constant (η, β).
    fn new(method: Method, lr: f64, momentum: f64, lambda: f64) -> ModeBound {
        let x = lr * lambda;
        let beta = if method == Method::GradientDescent {
            0.0
        } else {
            momentum
        };
        // z² − b z + c, first-step factor f, and magnitudes of the terms of b
        // and c (for the rounding of the roots, as in `theory::damping`).
        let (b, c, f, s_b, s_c) = match method {
            Method::GradientDescent => (1.0 - x, 0.0, 1.0 - x, 1.0 + x, 0.0),
            Method::HeavyBall => ((1.0 + beta) - x, beta, 1.0 - x, 1.0 + beta + x, beta),
            Method::Nesterov => {
                let y = 1.0 - x;
                (
                    (1.0 + beta) * y,
                    beta * y,
                    1.0 - (1.0 + beta) * x,
                    (1.0 + beta) * (1.0 + x),
                    beta * (1.0 + x),
                )
            }
        };
        let d = b * b - 4.0 * c;
        // Rounding of b, c (from η, β, λ given exactly) and of D: the roots
        // move by at most tol_b/2 + min(√tol_d, tol_d/√|D|)/2. The certificate
        // inflates ρ by that much, so it also covers a run whose arithmetic
        // realises slightly other coefficients (a double root splits by
        // ~√ε, which over 2,000 steps changes ρᵗ by ~1e-5 relative).
        let tol_b = 8.0 * f64::EPSILON * s_b;
        let tol_d = 32.0 * f64::EPSILON * (2.0 * b.abs() * s_b + 4.0 * s_c);
        let spread = if d.abs() > 0.0 {
            tol_d.sqrt().min(tol_d / d.abs().sqrt())
        } else {
            tol_d.sqrt()
        };
        let inflate = 0.5 * tol_b + 0.5 * spread;
        if d >= 0.0 {
            let sq = d.sqrt();
            // r_1 = (b + sign(b) √D)/2 without cancellation; r_2 = c / r_1.
            let r1 = 0.5 * (b + b.signum() * sq);
            let r2 = if r1 != 0.0 { c / r1 } else { 0.0 };
            let rho = r1.abs();
            if rho == 0.0 {
                // Both roots 0: c_1 = f, then 0 up to rounding, which the
                // inflated ρ covers: |c_t| ≤ max(1, |f|/ρ) ρᵗ.
                return ModeBound::Real {
                    rho: inflate,
                    ratio: 0.0,
                    a: (f.abs() / inflate).max(1.0),
                    b: 0.0,
                    linear: f64::INFINITY,
                };
            }
            let gap = r1 - r2;
            let (a, bb) = if gap != 0.0 {
                (((f - r2) / gap).abs(), ((r1 - f) / gap).abs())
            } else {
                (f64::INFINITY, f64::INFINITY)
            };
            let rho_c = rho + inflate;
            ModeBound::Real {
                rho: rho_c,
                ratio: r2.abs() / rho_c,
                a,
                b: bb,
                linear: ((f - r1).abs() + inflate) / rho_c,
            }
        } else {
            let rho = c.sqrt();
            let cos = b / (2.0 * rho);
            let sin = (-d).sqrt() / (2.0 * rho);
            let k = f / rho - cos;
            let rho_c = rho + inflate;
            ModeBound::Complex {
                rho: rho_c,
                envelope: (1.0 + (k / sin).powi(2)).sqrt(),
                linear: k.abs() + inflate / rho_c,
            }
        }
    }

    fn rho(&self) -> f64 {
        match *self {
            ModeBound::Real { rho, .. } | ModeBound::Complex { rho, .. } => rho,
        }
    }

    /// C_t(λ): the bound on |c_t| / ρ(λ)ᵗ.
    fn constant(&self, t: usize) -> f64 {
        let tf = t as f64;
        match *self {
            ModeBound::Real {
                ratio, a, b, linear, ..
            } => {
                // f64::min ignores the NaN of ∞ · 0 (an exact double root).
                let split = a + b * ratio.powi(t.min(i32::MAX as usize) as i32);
                split.min(1.0 + linear * tf)
            }
            ModeBound::Complex { envelope, linear, .. } => envelope.min(1.0 + linear * tf),
        }
    }

    /// C_t(λ) ρ(λ)ᵗ, computed in logarithms (ρᵗ alone may underflow).
    fn bound(&self, t: usize) -> f64 {
        let c = self.constant(t);
        if t == 0 {
            c
        } else {
            (c.ln() + t as f64 * self.rho().ln()).exp()
        }
    }
}

/// An exact bound on the linearized residual of a momentum method at
/// constant (η, β):
///
/// ```text
/// ‖ξ_t‖ ≤ C_t ρᵗ ‖ξ_0‖   for every t ≥ 0 and every ξ_0,
/// C_t ρᵗ = max over eigenvalues λ of C_t(λ) ρ(λ)ᵗ
/// ```
///
/// Each mode is the closed-form solution of its 2 × 2 recursion started
/// with the crate's first step (θ_{−1} = θ_0, g_{−1} = 0): with roots r_1, r_2
/// of z² − b z + c (see [`crate::theory::roots`]) and first-step factor f,
///
/// ```text
/// real roots, |r_2| ≤ |r_1| = ρ:  c_t = A r_1ᵗ + B r_2ᵗ = r_1ᵗ + (f − r_1)(r_1ᵗ − r_2ᵗ)/(r_1 − r_2)
///     C_t(λ) = min(|A| + |B| (|r_2|/ρ)ᵗ, 1 + |f − r_1| t/ρ)
/// complex roots ρ e^{±iφ}:       c_t = ρᵗ (cos tφ + K sin tφ / sin φ),  K = f/ρ − cos φ
///     C_t(λ) = min(√(1 + K²/sin²φ), 1 + |K| t)
/// ```
///
/// Off critical damping C_t is bounded by a constant (the first term of each
/// minimum); at a double root that constant is infinite and C_t grows like
/// (t + 1) (the second term): the (t + 1)ρᵗ factor of critical damping is
/// computed, not guessed. ρ of each mode is inflated by the rounding
/// uncertainty of its roots (by 6.5e-9 to 2.2e-7 along the critical-damping
/// curves, where the roots are double, for β from 0.001 to 0.999, as this
/// inflation formula gives there; ~1e-16 away from them),
/// so the bound also covers a floating-point run.
///
/// For the squared-loss residual ξ = f(X) − y of a linear model, or of the
/// two-layer network in the NTK regime, the eigenvalues are those of H (the
/// Gram matrix of the Jacobian) and L_t = ½‖ξ_t‖² (any constant factor), so
/// [`Certificate::check`] bounds √(L_t / L_0). For a quadratic
/// ½ (x − x*)ᵀ A (x − x*) it bounds ‖x_t − x*‖ with the eigenvalues of A.
///
/// # Examples
/// ```
/// use ntk_momentum::testing::Certificate;
/// use ntk_momentum::theory::Method;
/// use ntk_momentum::{Nesterov, Optimizer};
///
/// // f(x) = ½ (x0² + 30 x1²), NAG critically damped at lambda_min = 1.
/// let (lambda, beta) = ([1.0, 30.0], 0.8_f64);
/// let lr = ((1.0 - beta) / (1.0 + beta)).powi(2) / lambda[0];
/// let cert = Certificate::new(Method::Nesterov, lr, beta, &lambda)?;
/// let mut x = vec![1.0, 1.0];
/// let mut norms = vec![(2.0f64).sqrt()];
/// let mut nag = Nesterov::new(lr, beta)?;
/// for _ in 0..300 {
///     let g = vec![lambda[0] * x[0], lambda[1] * x[1]];
///     nag.step(&mut x, &g)?;
///     norms.push(x[0].hypot(x[1]));
/// }
/// let check = cert.check_norms(&norms, 300)?;
/// assert!(check.holds(), "{check}");
/// // Critical damping: C_t grows linearly.
/// // C_t = 1 + t |f − r|/r with r = 0.889, f = 0.978: 21 at t = 200.
/// assert!(cert.constant(200) > 10.0 * cert.constant(1));
/// # Ok::<(), ntk_momentum::Error>(())
/// ```
#[derive(Clone, Debug)]
pub struct Certificate {
    method: Method,
    lr: f64,
    momentum: f64,
    modes: Vec<ModeBound>,
    rho: f64,
    floor: f64,
}

/// A step at which a run exceeded its certificate.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Violation {
    /// The step t.
    pub step: usize,
    /// ‖ξ_t‖ / ‖ξ_0‖ of the run.
    pub actual: f64,
    /// C_t ρᵗ.
    pub bound: f64,
}

impl Violation {
    /// actual / bound − 1 (> [`CHECK_SLACK`]).
    pub fn margin(&self) -> f64 {
        self.actual / self.bound - 1.0
    }
}

/// The result of checking a run against a [`Certificate`].
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct CertificateCheck {
    /// Steps t (0 included) at which the bound was compared with the run.
    pub steps_checked: usize,
    /// Steps not compared because the bound was below the floor
    /// ([`Certificate::with_floor`]) and the run too.
    pub steps_below_floor: usize,
    /// The first step where the run exceeded the bound by more than the
    /// relative [`CHECK_SLACK`], if any.
    pub violation: Option<Violation>,
    /// How tight the bound was: the largest actual / bound over the checked
    /// steps t ≥ 1 (step 0 is 1 by construction). 0 if none was checked.
    pub tightness: f64,
    /// The step at which `tightness` was attained.
    pub tightest_step: usize,
}

impl CertificateCheck {
    /// Whether the run stayed within the bound at every checked step.
    pub fn holds(&self) -> bool {
        self.violation.is_none()
    }
}

impl fmt::Display for CertificateCheck {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.violation {
            None => write!(f, "holds over {} steps", self.steps_checked)?,
            Some(v) => write!(
                f,
                "fails at step {}: ||xi_t||/||xi_0|| = {:.6e} > bound {:.6e} (by {:.3e} relative)",
                v.step,
                v.actual,
                v.bound,
                v.margin()
            )?,
        }
        write!(
            f,
            "; tightness {:.4} at step {} ({} steps below the floor)",
            self.tightness, self.tightest_step, self.steps_below_floor
        )
    }
}

impl Certificate {
    /// The certificate of `method` at constant step size `lr` and momentum
    /// `momentum` (ignored for GD) on the spectrum `eigenvalues`.
    ///
    /// # Errors
    /// [`Error::InvalidParameter`] for an empty spectrum, an eigenvalue below
    /// −1e-12 · max|λ| (smaller negative ones are rounding noise, taken as 0),
    /// `lr` not finite and > 0, `momentum` outside [0, 1), or
    /// (η, β) outside the stable region of the spectrum (some mode with
    /// modulus ≥ 1: no linear convergence to certify); [`Error::NonFinite`]
    /// for a NaN or infinite eigenvalue.
    pub fn new(method: Method, lr: f64, momentum: f64, eigenvalues: &[f64]) -> Result<Self> {
        // Validates the hyper-parameters and the spectrum, and gives the
        // un-inflated spectral radius for the stability check.
        let radius = crate::theory::rate(method, lr, momentum, eigenvalues)?;
        let modes: Vec<ModeBound> = eigenvalues
            .iter()
            .map(|&l| ModeBound::new(method, lr, momentum, l.max(0.0)))
            .collect();
        let rho = modes.iter().map(ModeBound::rho).fold(0.0, f64::max);
        if radius >= 1.0 || rho >= 1.0 {
            return Err(Error::invalid(
                "lr and momentum",
                format!("({lr}, {momentum}) with spectral radius {radius}"),
                "a step size and momentum in the stable region (every mode's root modulus below 1; \
                 see theory::max_stable_lr and the zero eigenvalues)",
            ));
        }
        Ok(Certificate {
            method,
            lr,
            momentum,
            modes,
            rho,
            floor: CHECK_FLOOR,
        })
    }

    /// Leaves norm ratios ‖ξ_t‖/‖ξ_0‖ below `floor` unchecked (default
    /// [`CHECK_FLOOR`], right for a run in eigen-coordinates such as
    /// [`super::Quadratic`]). A residual computed as A x − b, or a network's
    /// f(X) − y, carries an absolute rounding error of about ε‖y‖, so its
    /// ratio stops decaying near 1e-15 ‖y‖/‖ξ_0‖: check such runs down to
    /// e.g. 1e-10.
    ///
    /// # Errors
    /// [`Error::InvalidParameter`] unless `floor` is finite and ≥ 0.
    pub fn with_floor(mut self, floor: f64) -> Result<Self> {
        if !(floor.is_finite() && floor >= 0.0) {
            return Err(Error::invalid("floor", floor, "a finite norm ratio >= 0"));
        }
        self.floor = floor;
        Ok(self)
    }

    /// The certificate of a nonlinear run judged by the regime verdict of
    /// [`crate::theory::regime`] with relative `tolerance`: every mode's
    /// exponent 1 − ρ(λ) is lowered to (1 − tolerance)(1 − ρ(λ)) and its
    /// constant raised by the factor 1 + tolerance. A run the verdict calls
    /// "in the regime" loses at most that fraction of each exponent; this is
    /// the bound such a run is expected to respect (an expectation, not a
    /// theorem: the linearization itself is what is being tested). Measured
    /// in `tests/user_properties.rs`: 26 of 32 random runs (m = 8192, n ≤ 6,
    /// NAG underdamped at λ_min, tolerance 0.1) were in the regime by the
    /// verdict, and all followed the relaxed bound down to a norm ratio of
    /// 1e-3; checked deeper (1e-6), one of them (β = 0.96) exceeded it 30×
    /// after step 76, so check such runs with [`Certificate::with_floor`].
    ///
    /// # Errors
    /// [`Error::InvalidParameter`] unless `tolerance` is in [0, 1).
    pub fn with_regime_tolerance(mut self, tolerance: f64) -> Result<Self> {
        if !(0.0..1.0).contains(&tolerance) {
            return Err(Error::invalid("tolerance", tolerance, "a relative tolerance in [0, 1)"));
        }
        for m in &mut self.modes {
            let relax = |rho: f64| 1.0 - (1.0 - tolerance) * (1.0 - rho);
            *m = match *m {
                ModeBound::Real {
                    rho,
                    ratio,
                    a,
                    b,
                    linear,
                } => ModeBound::Real {
                    rho: relax(rho),
                    ratio,
                    a: a * (1.0 + tolerance),
                    b: b * (1.0 + tolerance),
                    linear,
                },
                ModeBound::Complex { rho, envelope, linear } => ModeBound::Complex {
                    rho: relax(rho),
                    envelope: envelope * (1.0 + tolerance),
                    linear,
                },
            };
        }
        self.rho = self.modes.iter().map(ModeBound::rho).fold(0.0, f64::max);
        Ok(self)
    }

    /// The method, step size and momentum certified.
    pub fn hyperparameters(&self) -> (Method, f64, f64) {
        (self.method, self.lr, self.momentum)
    }

    /// ρ: the largest mode modulus (with the rounding margin).
    pub fn rate(&self) -> f64 {
        self.rho
    }

    /// C_t = (C_t ρᵗ) / ρᵗ: constant off critical damping, growing like
    /// (t + 1) at it.
    pub fn constant(&self, t: usize) -> f64 {
        let log_rho_t = t as f64 * self.rho.ln();
        self.modes
            .iter()
            .map(|m| match m.bound(t) {
                0.0 => 0.0,
                b => (b.ln() - log_rho_t).exp(),
            })
            .fold(0.0, f64::max)
    }

    /// The bound C_t ρᵗ on ‖ξ_t‖ / ‖ξ_0‖.
    pub fn bound(&self, t: usize) -> f64 {
        self.modes.iter().map(|m| m.bound(t)).fold(0.0, f64::max)
    }

    /// Checks the norms ‖ξ_t‖, t = 0, 1, …, of a run against the bound over
    /// its first `steps` steps (`norms[0]` is ‖ξ_0‖).
    ///
    /// # Errors
    /// [`Error::InvalidParameter`] if `norms` has fewer than `steps + 1`
    /// entries, `norms[0]` is not finite and > 0, or an entry is negative or
    /// NaN (+∞, a diverged run, is a violation, not an error).
    pub fn check_norms(&self, norms: &[f64], steps: usize) -> Result<CertificateCheck> {
        if norms.len() < steps + 1 {
            return Err(Error::invalid(
                "norms",
                format!("{} entries", norms.len()),
                format!("at least steps + 1 = {} entries (t = 0..={steps})", steps + 1),
            ));
        }
        let n0 = norms[0];
        if !(n0.is_finite() && n0 > 0.0) {
            return Err(Error::invalid("norms[0]", n0, "a finite initial norm > 0"));
        }
        if let Some((t, v)) = norms.iter().enumerate().find(|(_, v)| v.is_nan() || **v < 0.0) {
            return Err(Error::invalid(
                "norms",
                format!("{v} at index {t}"),
                "norms >= 0 (not NaN)",
            ));
        }
        let mut check = CertificateCheck {
            steps_checked: 0,
            steps_below_floor: 0,
            violation: None,
            tightness: 0.0,
            tightest_step: 0,
        };
        for (t, &n) in norms.iter().enumerate().take(steps + 1) {
            let actual = n / n0;
            let bound = self.bound(t);
            if actual <= self.floor && bound <= self.floor {
                check.steps_below_floor += 1;
                continue;
            }
            check.steps_checked += 1;
            if actual > bound * (1.0 + CHECK_SLACK) && check.violation.is_none() {
                check.violation = Some(Violation { step: t, actual, bound });
            }
            let ratio = if bound > 0.0 { actual / bound } else { f64::INFINITY };
            if t >= 1 && ratio > check.tightness {
                check.tightness = ratio;
                check.tightest_step = t;
            }
        }
        Ok(check)
    }

    /// Checks losses L_t = k ‖ξ_t‖² (any constant k > 0, e.g. ½ or 1/(2n)):
    /// [`Certificate::check_norms`] on √L_t.
    ///
    /// # Errors
    /// As [`Certificate::check_norms`], for losses.
    pub fn check(&self, losses: &[f64], steps: usize) -> Result<CertificateCheck> {
        if let Some((t, v)) = losses.iter().enumerate().find(|(_, v)| v.is_nan() || **v < 0.0) {
            return Err(Error::invalid(
                "losses",
                format!("{v} at index {t}"),
                "losses >= 0 (not NaN)",
            ));
        }
        let norms: Vec<f64> = losses.iter().map(|l| l.sqrt()).collect();
        self.check_norms(&norms, steps)
    }

    /// [`Certificate::check`] on every loss a training run recorded.
    ///
    /// # Errors
    /// As [`Certificate::check`]; also if the history is empty.
    pub fn certify(&self, history: &History) -> Result<CertificateCheck> {
        let losses = history.losses();
        if losses.is_empty() {
            return Err(Error::invalid(
                "history",
                "no losses",
                "a history with at least one loss",
            ));
        }
        self.check(losses, losses.len() - 1)
    }
}
