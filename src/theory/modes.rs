//! Per-eigenvalue modes: roots, damping, spectral radius, stability limits.

use nalgebra::Complex;

use super::{check_eigenvalue, check_hyperparameters, check_spectrum, Method};
use crate::{Error, Result};

/// How the two roots of a mode's characteristic polynomial z² − b z + c lie.
///
/// GD's polynomial is taken as z (z − (1 − ηλ)) (HB with β = 0), so its modes
/// are [`Damping::Overdamped`] except at ηλ = 1 (double root 0).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Damping {
    /// Two distinct real roots: the mode decays (or grows) without
    /// oscillating, or flips sign every step if the dominant root is negative.
    Overdamped,
    /// A double real root b/2: the mode behaves like (A + B t) (b/2)ᵗ.
    ///
    /// A double root is infinitely sensitive to its coefficients, so a
    /// discriminant D = b² − 4c with |D| ≤ 32 ε (2 |b| s_b + 4 s_c) counts as
    /// zero, where ε is the machine epsilon and s_b, s_c bound the magnitude of
    /// the terms that make up b and c (e.g. s_b = 1 + β + ηλ for HB). That is
    /// the rounding error of D plus that of η and β computed from formulas
    /// (with a margin of about 30: the tuned critical modes of [`super::tune`]
    /// land within one ε-unit). It moves the largest modulus by at most
    /// √(tolerance)/2, about 2e-7 for coefficients of order one: the order of
    /// the unavoidable √ε sensitivity of a double root.
    Critical,
    /// A complex-conjugate pair of modulus √c: the mode oscillates.
    Underdamped,
}

/// The characteristic polynomial z² − b z + c of one mode, with the tolerance
/// below which its discriminant counts as zero.
#[derive(Clone, Copy, Debug)]
struct Quadratic {
    b: f64,
    c: f64,
    /// |D| <= tol is a double root (see `Damping::Critical`).
    tol: f64,
}

impl Quadratic {
    /// The polynomial of `method` at x = ηλ (inputs already validated).
    fn new(method: Method, lr: f64, momentum: f64, lambda: f64) -> Self {
        let x = lr * lambda;
        let beta = momentum;
        // (b, c) and bounds (s_b, s_c) on the magnitude of the terms they are
        // computed from: the absolute rounding error of b is a few ε s_b.
        let (b, c, s_b, s_c) = match method {
            Method::GradientDescent => (1.0 - x, 0.0, 1.0 + x, 0.0),
            Method::HeavyBall => ((1.0 + beta) - x, beta, 1.0 + beta + x, beta),
            Method::Nesterov => {
                let y = 1.0 - x;
                ((1.0 + beta) * y, beta * y, (1.0 + beta) * (1.0 + x), beta * (1.0 + x))
            }
        };
        let tol = 32.0 * f64::EPSILON * (2.0 * b.abs() * s_b + 4.0 * s_c);
        Quadratic { b, c, tol }
    }

    /// D = b² − 4c with one rounding.
    fn discriminant(&self) -> f64 {
        self.b.mul_add(self.b, -4.0 * self.c)
    }

    fn damping(&self) -> Damping {
        if self.c == 0.0 {
            // Roots b and 0, exactly.
            return if self.b == 0.0 {
                Damping::Critical
            } else {
                Damping::Overdamped
            };
        }
        let d = self.discriminant();
        if d.abs() <= self.tol {
            Damping::Critical
        } else if d < 0.0 {
            Damping::Underdamped
        } else {
            Damping::Overdamped
        }
    }

    /// max |z| over the two roots.
    fn largest_modulus(&self) -> f64 {
        if self.c == 0.0 {
            return self.b.abs();
        }
        match self.damping() {
            // Product of the conjugate roots = c.
            Damping::Underdamped => self.c.sqrt(),
            Damping::Critical => 0.5 * self.b.abs(),
            // Both terms non-negative: no cancellation.
            Damping::Overdamped => 0.5 * (self.b.abs() + self.discriminant().sqrt()),
        }
    }

    /// Both roots, largest modulus first.
    fn roots(&self) -> [Complex<f64>; 2] {
        if self.c == 0.0 {
            return [Complex::new(self.b, 0.0), Complex::new(0.0, 0.0)];
        }
        match self.damping() {
            Damping::Underdamped => {
                let re = 0.5 * self.b;
                let im = 0.5 * (-self.discriminant()).sqrt();
                [Complex::new(re, im), Complex::new(re, -im)]
            }
            Damping::Critical => [Complex::new(0.5 * self.b, 0.0); 2],
            Damping::Overdamped => {
                // Stable quadratic formula: the larger root without
                // cancellation, the smaller from the product z1 z2 = c.
                let z1 = 0.5 * (self.b + self.discriminant().sqrt().copysign(self.b));
                [Complex::new(z1, 0.0), Complex::new(self.c / z1, 0.0)]
            }
        }
    }
}

/// The two roots of the mode of eigenvalue `lambda`, largest modulus first.
///
/// ```text
/// GD : z (z − (1 − ηλ)) = 0                       roots 1 − ηλ and 0
/// HB : z² − (1 + β − ηλ) z + β = 0
/// NAG: z² − (1 + β)(1 − ηλ) z + β (1 − ηλ) = 0
/// ```
///
/// Complex pairs are returned with the positive imaginary part first; the
/// modulus of a complex pair is √c (c the constant term). Real pairs use the
/// stable formula z₁ = (b + sign(b) √D)/2, z₂ = c/z₁; a discriminant at
/// rounding level gives the double root b/2 (see [`Damping::Critical`]).
/// For GD `momentum` is validated and ignored.
///
/// # Errors
/// [`Error::InvalidParameter`] unless `lr` is finite and > 0, `momentum` is in
/// [0, 1) and `lambda` is finite and >= 0.
///
/// # Examples
/// ```
/// use ntk_momentum::theory::{roots, Method};
///
/// // HB with beta = 0.25 at eta lambda = 0.25: z^2 - z + 0.25 = (z - 1/2)^2.
/// let z = roots(Method::HeavyBall, 0.25, 0.25, 1.0)?;
/// assert_eq!((z[0].re, z[1].re), (0.5, 0.5));
/// // At eta lambda = 0.5 both are underdamped: HB z^2 - 0.75 z + 0.25 has
/// // modulus sqrt(0.25), NAG z^2 - 0.625 z + 0.125 has modulus sqrt(0.125).
/// let hb = roots(Method::HeavyBall, 0.25, 0.25, 2.0)?;
/// let nag = roots(Method::Nesterov, 0.25, 0.25, 2.0)?;
/// assert!(hb[0].im > 0.0 && (hb[0].norm() - 0.5).abs() < 1e-15);
/// assert!(nag[0].im > 0.0 && (nag[0].norm() - 0.125_f64.sqrt()).abs() < 1e-15);
/// # Ok::<(), ntk_momentum::Error>(())
/// ```
pub fn roots(method: Method, lr: f64, momentum: f64, lambda: f64) -> Result<[Complex<f64>; 2]> {
    check_hyperparameters(lr, momentum)?;
    let lambda = check_eigenvalue("lambda", lambda)?;
    Ok(Quadratic::new(method, lr, momentum, lambda).roots())
}

/// Whether the mode of eigenvalue `lambda` is over-, critically or
/// underdamped (the classification [`roots`] and [`rate`] use).
///
/// ```text
/// HB  underdamped  ⇔  (1 − √β)² < ηλ < (1 + √β)²
/// NAG underdamped  ⇔  ((1 − β)/(1 + β))² < ηλ < 1
/// ```
///
/// # Errors
/// As [`roots`].
///
/// # Examples
/// ```
/// use ntk_momentum::theory::{damping, Damping, Method};
///
/// assert_eq!(damping(Method::HeavyBall, 0.5, 0.9, 1.0)?, Damping::Underdamped);
/// assert_eq!(damping(Method::HeavyBall, 0.001, 0.9, 1.0)?, Damping::Overdamped);
/// assert_eq!(damping(Method::GradientDescent, 0.5, 0.0, 1.0)?, Damping::Overdamped);
/// # Ok::<(), ntk_momentum::Error>(())
/// ```
pub fn damping(method: Method, lr: f64, momentum: f64, lambda: f64) -> Result<Damping> {
    check_hyperparameters(lr, momentum)?;
    let lambda = check_eigenvalue("lambda", lambda)?;
    Ok(Quadratic::new(method, lr, momentum, lambda).damping())
}

/// The predicted linear rate of the residual: the largest root modulus over
/// the spectrum,
///
/// ```text
/// ρ(η, β) = max over λ of max { |z| : z a root of the mode of λ }
/// ```
///
/// so that ‖ξ_t‖ ≤ C tᵖ ρᵗ (p = 1 at critical damping, else 0) and the loss
/// ½‖ξ_t‖² decays like ρ²ᵗ. Per mode the modulus is |1 − ηλ| for GD, √c for a
/// complex pair, |b|/2 for a double root and (|b| + √(b² − 4c))/2 for real
/// roots. ρ ≥ 1 means no linear convergence: a zero eigenvalue (ρ = 1) or
/// parameters outside the stability range (ρ > 1, see [`max_stable_lr`]).
/// For GD `momentum` is validated and ignored.
///
/// Eigenvalues in [−1e-12 · max|λ|, 0) are rounding noise of a positive
/// semi-definite H and are treated as 0.
///
/// # Errors
/// [`Error::InvalidParameter`] for an empty spectrum, an eigenvalue below
/// −1e-12 · max|λ|, `lr` not finite and > 0, `momentum` outside [0, 1), or an
/// `lr` so large that ηλ overflows; [`Error::NonFinite`] for a NaN or infinite
/// eigenvalue.
///
/// # Examples
/// ```
/// use ntk_momentum::theory::{rate, Method};
///
/// let spectrum = [0.1, 0.4, 1.0];
/// // GD: max |1 - eta lambda| = 1 - 0.1 eta.
/// assert!((rate(Method::GradientDescent, 1.0, 0.0, &spectrum)? - 0.9).abs() < 1e-15);
/// // Here every mode lies in the band where the correction damps more
/// // (((1 - beta)/(1 + beta))^2 = 0.012 < eta lambda <= 1), so NAG beats HB:
/// // sqrt(0.8 * 0.9) < sqrt(0.8). Below that band NAG would be slower.
/// let hb = rate(Method::HeavyBall, 1.0, 0.8, &spectrum)?;
/// let nag = rate(Method::Nesterov, 1.0, 0.8, &spectrum)?;
/// assert!((hb - 0.8_f64.sqrt()).abs() < 1e-15 && (nag - 0.72_f64.sqrt()).abs() < 1e-15);
/// # Ok::<(), ntk_momentum::Error>(())
/// ```
pub fn rate(method: Method, lr: f64, momentum: f64, eigenvalues: &[f64]) -> Result<f64> {
    check_hyperparameters(lr, momentum)?;
    check_spectrum(eigenvalues)?;
    let rho = eigenvalues.iter().fold(0.0_f64, |rho, &l| {
        rho.max(Quadratic::new(method, lr, momentum, l.max(0.0)).largest_modulus())
    });
    if rho.is_finite() {
        Ok(rho)
    } else {
        Err(Error::invalid(
            "lr",
            lr,
            "a step size for which lr * lambda_max is finite (the rate overflowed)",
        ))
    }
}

/// The largest stable step size: the supremum of η for which every mode with
/// 0 < λ ≤ `lambda_max` has both roots strictly inside the unit circle.
///
/// ```text
/// GD : 2 / λ_max
/// HB : 2 (1 + β) / λ_max
/// NAG: 2 (1 + β) / ((1 + 2β) λ_max)
/// ```
///
/// From Jury's criterion for z² − b z + c (|c| < 1 and |b| < 1 + c); at the
/// limit itself the root −1 makes the mode of λ_max neither grow nor decay.
/// For GD `momentum` is validated and ignored.
///
/// # Errors
/// [`Error::InvalidParameter`] unless `momentum` is in [0, 1) and
/// `lambda_max` is finite and > 0.
///
/// # Examples
/// ```
/// use ntk_momentum::theory::{max_stable_lr, Method};
///
/// assert_eq!(max_stable_lr(Method::GradientDescent, 0.0, 4.0)?, 0.5);
/// assert_eq!(max_stable_lr(Method::HeavyBall, 0.5, 4.0)?, 0.75);
/// assert_eq!(max_stable_lr(Method::Nesterov, 0.5, 4.0)?, 0.375);
/// # Ok::<(), ntk_momentum::Error>(())
/// ```
pub fn max_stable_lr(method: Method, momentum: f64, lambda_max: f64) -> Result<f64> {
    crate::checks::check_momentum(momentum)?;
    if !(lambda_max.is_finite() && lambda_max > 0.0) {
        return Err(Error::invalid("lambda_max", lambda_max, "a finite eigenvalue > 0"));
    }
    let beta = momentum;
    let lr = match method {
        Method::GradientDescent => 2.0 / lambda_max,
        Method::HeavyBall => 2.0 * (1.0 + beta) / lambda_max,
        Method::Nesterov => 2.0 * (1.0 + beta) / ((1.0 + 2.0 * beta) * lambda_max),
    };
    if lr.is_finite() {
        Ok(lr)
    } else {
        Err(Error::invalid(
            "lambda_max",
            lambda_max,
            "an eigenvalue large enough that 2 / lambda_max is finite",
        ))
    }
}
