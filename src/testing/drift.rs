//! [`DriftCertificate`]: the certificate of a linear recursion whose kernel
//! drifts within a known bound.

use super::Certificate;
use crate::theory::{impulse_norms, Method};
use crate::{Error, Result};

/// A bound on ‖ξ_t‖ / ‖ξ_0‖ for the linear dynamics of `method` when the
/// kernel drifts: H_t instead of H_0 at step t, with ‖H_t − H_0‖₂ ≤ ε_t, and
/// for NAG the gradient-correction kernel K_t (J_t J_{t−1}ᵀ for a network)
/// with ‖K_t − H_0‖₂ ≤ ε'_t:
///
/// ```text
/// GD, HB: ξ_{t+1} = ξ_t − η H_t ξ_t + β (ξ_t − ξ_{t−1})               (ξ_{−1} = ξ_0)
/// NAG   : ξ_{t+1} = ξ_t − (1 + β) η H_t ξ_t + β (ξ_t − ξ_{t−1}) + β η K_t ξ_{t−1}   (t ≥ 1)
///         ξ_1     = ξ_0 − (1 + β) η H_0' ξ_0                          (H_0' the kernel at step 0)
/// ```
///
/// **Bound** (proof): with p_t the prediction on H_0 and e_t = ξ_t − p_t,
/// e_t = Σ_{s<t} G_{t−1−s}(H_0) δ_s where δ_s = −c η (H_s − H_0) ξ_s +
/// β η (K_s − H_0) ξ_{s−1} (c = 1 + β for NAG, 1 otherwise; no K term at
/// s = 0 or for GD/HB) is the defect of the step against H_0's recursion
/// and G_k its impulse response (see [`crate::theory::PredictionEnclosure`]).
/// Taking norms, with ‖G_k‖ = max_λ |g_k(λ)| ([`impulse_norms`]) and
/// ‖p_s‖ ≤ C_s ρˢ ‖ξ_0‖ from [`Certificate`]:
///
/// ```text
/// ‖ξ_t‖ / ‖ξ_0‖ ≤ B_t = C_t ρᵗ + e_t,
/// e_t = Σ_{s<t} ‖G_{t−1−s}‖ (c η ε_s (C_s ρˢ + e_s) + β η ε'_s (C_{s−1} ρ^{s−1} + e_{s−1})).
/// ```
///
/// Every term is non-negative and the recursion is causal, so B_t is an
/// upper bound for every drift sequence within (ε, ε'). It is what
/// [`crate::theory::Verdict`]'s band uses for the part of the drift it does
/// not know as a vector.
///
/// # Examples
/// ```
/// use ntk_momentum::testing::DriftCertificate;
/// use ntk_momentum::theory::Method;
///
/// let cert = DriftCertificate::new(Method::HeavyBall, 0.9, 0.5, &[1.0, 0.1])?;
/// let still = cert.bounds(&[0.0; 50], &[0.0; 50])?;
/// let drifting = cert.bounds(&[0.01; 50], &[0.01; 50])?;
/// // No drift: the exact certificate; a drift of 1 % of lambda_max loosens it.
/// assert!(drifting[50] > still[50]);
/// # Ok::<(), ntk_momentum::Error>(())
/// ```
#[derive(Clone, Debug)]
pub struct DriftCertificate {
    base: Certificate,
    eigenvalues: Vec<f64>,
}

impl DriftCertificate {
    /// The certificate of `method` at (`lr`, `momentum`) on the spectrum of
    /// H_0.
    ///
    /// # Errors
    /// As [`Certificate::new`].
    pub fn new(method: Method, lr: f64, momentum: f64, eigenvalues: &[f64]) -> Result<Self> {
        Ok(DriftCertificate {
            base: Certificate::new(method, lr, momentum, eigenvalues)?,
            eigenvalues: eigenvalues.to_vec(),
        })
    }

    /// The certificate without drift.
    pub fn base(&self) -> &Certificate {
        &self.base
    }

    /// B_t for t = 0..=`drift.len()`: `drift[s]` ≥ ‖H_s − H_0‖₂ and (NAG)
    /// `cross[s]` ≥ ‖K_s − H_0‖₂ for the steps s taken (`cross` is ignored
    /// for GD and HB and at s = 0; it may be empty for them).
    ///
    /// # Errors
    /// [`Error::InvalidParameter`] for a negative or NaN drift bound, or
    /// for NAG a `cross` shorter than `drift`.
    pub fn bounds(&self, drift: &[f64], cross: &[f64]) -> Result<Vec<f64>> {
        let (method, lr, momentum) = self.base.hyperparameters();
        let nesterov = method == Method::Nesterov && momentum > 0.0;
        if nesterov && cross.len() < drift.len() {
            return Err(Error::invalid(
                "cross",
                format!("{} entries", cross.len()),
                format!("a bound for each of the {} steps", drift.len()),
            ));
        }
        for (name, values) in [("drift", drift), ("cross", cross)] {
            if let Some((s, v)) = values.iter().enumerate().find(|(_, v)| v.is_nan() || **v < 0.0) {
                return Err(Error::invalid(
                    name,
                    format!("{v} at step {s}"),
                    "bounds >= 0 (not NaN)",
                ));
            }
        }
        let steps = drift.len();
        let c = if method == Method::Nesterov {
            1.0 + momentum
        } else {
            1.0
        };
        let g = impulse_norms(method, lr, momentum, &self.eigenvalues, steps)?;
        let p: Vec<f64> = (0..=steps).map(|t| self.base.bound(t)).collect();
        let mut e = vec![0.0; steps + 1];
        let mut nu = Vec::with_capacity(steps);
        for s in 0..steps {
            let mut v = c * lr * drift[s] * (p[s] + e[s]);
            if nesterov && s >= 1 {
                v += momentum * lr * cross[s] * (p[s - 1] + e[s - 1]);
            }
            nu.push(v);
            e[s + 1] = nu.iter().enumerate().map(|(j, &v)| g[s - j] * v).sum();
        }
        Ok(p.iter().zip(&e).map(|(p, e)| p + e).collect())
    }

    /// Whether the norms ‖ξ_t‖ (t = 0..=`drift.len()`, `norms[0]` = ‖ξ_0‖ > 0)
    /// stay within ‖ξ_0‖ B_t (relative slack [`super::CHECK_SLACK`]); the
    /// first violating step otherwise.
    ///
    /// # Errors
    /// As [`DriftCertificate::bounds`]; also for fewer than `drift.len() + 1`
    /// norms or a first norm that is not finite and > 0.
    pub fn first_violation(&self, norms: &[f64], drift: &[f64], cross: &[f64]) -> Result<Option<usize>> {
        if norms.len() < drift.len() + 1 {
            return Err(Error::invalid(
                "norms",
                format!("{} entries", norms.len()),
                format!("at least {} (t = 0..={})", drift.len() + 1, drift.len()),
            ));
        }
        let n0 = norms[0];
        if !(n0.is_finite() && n0 > 0.0) {
            return Err(Error::invalid("norms[0]", n0, "a finite initial norm > 0"));
        }
        let b = self.bounds(drift, cross)?;
        Ok(b.iter()
            .zip(norms)
            .position(|(b, n)| (n / n0).is_nan() || n / n0 > b * (1.0 + super::CHECK_SLACK)))
    }
}
