//! A provable enclosure of a run's residual around the linearized
//! prediction from H(W_0), built from the kernels along the run (never from
//! its losses), and the impulse response it rests on.
//!
//! # The perturbation identity
//!
//! Write the prediction's recursion as p_{t+1} = A p_t + B p_{t−1} (t ≥ 1)
//! with A, B functions of H_0 (see [`super::predicted_losses`]), and define
//! the run's one-step defect δ_t = ξ_{t+1} − A ξ_t − B ξ_{t−1} (t ≥ 1),
//! δ_0 = ξ_1 − p_1. Then e_t = ξ_t − p_t obeys the same recursion driven by
//! δ, from e_0 = e_{−1} = 0:
//!
//! ```text
//! e_t = Σ_{s<t} G_{t−1−s}(H_0) δ_s,   G_0 = I, G_1 = A, G_{k+1} = A G_k + B G_{k−1}.
//! ```
//!
//! In the eigenbasis of H_0 every G_k is diagonal with entries g_k(λ), so
//! ‖G_k‖₂ = max_λ |g_k(λ)| exactly ([`impulse_norms`]).
//!
//! For a network whose outputs are positively homogeneous of degree one in
//! its trained weights θ (the two-layer ReLU network: u(θ) = J(θ) θ), the
//! defect is exactly
//!
//! ```text
//! GD, HB: δ_t = −η (H_t − H_0) ξ_t                                   + R_t − β R'_{t−1}
//! NAG   : δ_t = −(1 + β) η (H_t − H_0) ξ_t + β η (J_t J_{t−1}ᵀ − H_0) ξ_{t−1} + R_t − β R'_{t−1}
//! ```
//!
//! with H_t = J_t J_tᵀ, the flip remainders R_t = (J_{t+1} − J_t) θ_{t+1}
//! and R'_t = (J_{t+1} − J_t) θ_t (both zero unless an activation flipped
//! between t and t + 1), R'_{−1} = 0 and no cross term at t = 0. (Proof:
//! ξ_{t+1} − ξ_t = J_t Δ_t + R_t for Δ_t = θ_{t+1} − θ_t, and
//! J_t Δ_{t−1} = ξ_t − ξ_{t−1} − R'_{t−1}; substitute the optimizer's Δ_t.)
//!
//! # The enclosure
//!
//! Split δ_t with ξ_s = p_s + e_s into a part known from the network and the
//! prediction, k_t = −c η E_t p_t + β η F_t p_{t−1} + R_t − β R'_{t−1}
//! (E_t = H_t − H_0, F_t = J_t J_{t−1}ᵀ − H_0, c = 1 + β for NAG and 1
//! otherwise), and the rest, −c η E_t e_t + β η F_t e_{t−1}. The known part
//! drives a first-order deviation φ_t = Σ_{s<t} G_{t−1−s} k_s, computed
//! exactly as a vector. The rest is bounded in norm: with
//! ε_t ≥ ‖e_t − φ_t‖,
//!
//! ```text
//! ε_t = Σ_{s<t} ‖G_{t−1−s}‖ ν_s,
//! ν_s = ‖−c η E_s φ_s + β η F_s φ_{s−1}‖ + c η ‖E_s‖₂ ε_s + β η ‖F_s‖₂ ε_{s−1} + γ (‖p_s‖ + ‖φ_s‖ + ε_s + ‖u‖),
//! ```
//!
//! (the first term is the norm of a known vector; ‖·‖₂ is bounded from
//! above by the eigenvalues up to n = 256 and by the Schatten-8 norm
//! (Σ σᵢ⁸)^{1/8}, at most n^{1/8} times it, beyond; γ is an allowance for floating-point rounding, see
//! [`PredictionEnclosure::with_rounding`]). Hence, for every step t,
//!
//! ```text
//! ‖p_t + φ_t‖ − ε_t  ≤  ‖ξ_t‖  ≤  ‖p_t + φ_t‖ + ε_t,
//! ```
//!
//! a band on the loss ½‖ξ_t‖² at every step, and so on the first step at
//! which the loss reaches a level: it lies between the first step at which
//! the band's lower edge reaches it and the first at which its upper edge
//! does. The enclosure reads H_t, J_t J_{t−1}ᵀ and the activation flips of
//! the run, not its losses; [`super::verdict`] turns the band into a verdict.

use nalgebra::{DMatrix, DVector};

use super::{check_spectrum, Method};
use crate::checks::{check_finite_matrix, first_non_finite};
use crate::{Error, Result};

/// The per-mode recursion coefficients of a method at (η, β):
/// c_{t+1} = a c_t + b c_{t−1} (t ≥ 1) and c_1 = f c_0.
pub(super) fn coefficients(method: Method, lr: f64, momentum: f64, lambda: f64) -> (f64, f64, f64) {
    let q = 1.0 - lr * lambda;
    match method {
        Method::GradientDescent => (q, 0.0, q),
        Method::HeavyBall => (1.0 + momentum - lr * lambda, -momentum, q),
        Method::Nesterov => (
            (1.0 + momentum) * q,
            -momentum * q,
            1.0 - (1.0 + momentum) * lr * lambda,
        ),
    }
}

/// ‖G_k(H)‖₂ = max over the eigenvalues of |g_k(λ)| for k = 0..`count`: the
/// norm of the response at step t + k of the linear recursion of `method`
/// on H to a unit impulse added to the residual at step t + 1 (see the
/// module docs: g_0 = 1, g_1 = a, g_{k+1} = a g_k + b g_{k−1}).
///
/// # Errors
/// [`Error::InvalidParameter`] or [`Error::NonFinite`] for a bad spectrum or
/// (η, β) out of range (as [`super::rate`]).
///
/// # Examples
/// ```
/// use ntk_momentum::theory::{impulse_norms, Method};
///
/// // GD on one eigenvalue: g_k = (1 − ηλ)^k.
/// let g = impulse_norms(Method::GradientDescent, 0.5, 0.0, &[1.0], 4)?;
/// assert_eq!(g, vec![1.0, 0.5, 0.25, 0.125]);
/// # Ok::<(), ntk_momentum::Error>(())
/// ```
pub fn impulse_norms(method: Method, lr: f64, momentum: f64, eigenvalues: &[f64], count: usize) -> Result<Vec<f64>> {
    super::rate(method, lr, momentum, eigenvalues)?;
    let mut response = ImpulseResponse::new(method, lr, momentum, eigenvalues);
    Ok((0..count).map(|_| response.next_norm()).collect())
}

/// The per-mode impulse responses g_k(λ), advanced one k at a time.
#[derive(Clone, Debug)]
pub(crate) struct ImpulseResponse {
    a: Vec<f64>,
    b: Vec<f64>,
    previous: Vec<f64>,
    current: Vec<f64>,
    k: usize,
}

impl ImpulseResponse {
    pub(crate) fn new(method: Method, lr: f64, momentum: f64, eigenvalues: &[f64]) -> Self {
        let (a, b): (Vec<f64>, Vec<f64>) = eigenvalues
            .iter()
            .map(|&l| {
                let (a, b, _) = coefficients(method, lr, momentum, l.max(0.0));
                (a, b)
            })
            .unzip();
        let n = a.len();
        ImpulseResponse {
            a,
            b,
            previous: vec![0.0; n],
            current: vec![1.0; n],
            k: 0,
        }
    }

    /// ‖G_k‖ for the next k (0 first).
    pub(crate) fn next_norm(&mut self) -> f64 {
        if self.k > 0 {
            for i in 0..self.a.len() {
                let next = self.a[i] * self.current[i] + self.b[i] * self.previous[i];
                self.previous[i] = self.current[i];
                self.current[i] = next;
            }
        }
        self.k += 1;
        self.current.iter().fold(0.0_f64, |m, g| m.max(g.abs()))
    }
}

/// Largest n at which [`spectral_norm_bound`] computes the spectral norm
/// from the eigenvalues (O(n³) per call) rather than the Schatten-8 bound.
pub(crate) const EXACT_NORM_MAX: usize = 256;

/// An upper bound on the spectral norm ‖A‖₂ of a square matrix. Up to
/// [`EXACT_NORM_MAX`] rows: the largest |eigenvalue| of A (symmetric) or the
/// square root of the largest eigenvalue of AᵀA, plus a relative 1e-12 for
/// the solver's rounding. Above: the Schatten-8 norm
/// (Σ σᵢ⁸)^{1/8} = ‖(AᵀA)²‖_F^{1/4} (≤ n^{1/8} ‖A‖₂, against n^{1/2} for the
/// Frobenius norm), from two products, never below ‖A‖₂ since
/// σ_max⁸ ≤ Σ σᵢ⁸.
pub(crate) fn spectral_norm_bound(a: &DMatrix<f64>, symmetric: bool) -> f64 {
    use crate::linalg::{gemm, symmetric_eigen, Operand};
    let n = a.nrows();
    // Scale first so that the powers neither overflow nor underflow.
    let scale = a.amax();
    if scale == 0.0 || !scale.is_finite() {
        return if scale == 0.0 { 0.0 } else { f64::INFINITY };
    }
    let frobenius = a.norm();
    let b = a / scale;
    let mut g = DMatrix::zeros(n, n);
    if n <= EXACT_NORM_MAX {
        let (values, square) = if symmetric {
            (symmetric_eigen(&b, false), false)
        } else {
            gemm(1.0, Operand::t(&b), Operand::n(&b), 0.0, &mut g);
            (symmetric_eigen(&g, false), true)
        };
        if let Ok((values, _)) = values {
            let top = values.iter().fold(0.0_f64, |m, v| m.max(v.abs()));
            let norm = if square { top.sqrt() } else { top };
            return (norm * (1.0 + 1e-12) * scale).min(frobenius);
        }
    }
    let first = if symmetric { Operand::n(&b) } else { Operand::t(&b) };
    gemm(1.0, first, Operand::n(&b), 0.0, &mut g);
    let mut g2 = DMatrix::zeros(n, n);
    gemm(1.0, Operand::n(&g), Operand::n(&g), 0.0, &mut g2);
    (g2.norm().sqrt().sqrt() * scale).min(frobenius)
}

/// What the enclosure recorded at one step t.
#[derive(Clone, Copy, Debug, PartialEq)]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
#[non_exhaustive]
pub struct EnclosureStep {
    /// ‖p_t‖: the linearized prediction from H(W_0).
    pub predicted_norm: f64,
    /// ‖p_t + φ_t‖: the prediction with the first-order response to the
    /// kernel drift and the flips (the band's centre).
    pub centre_norm: f64,
    /// ε_t: the half-width of the band around the centre (the bounded rest).
    pub radius: f64,
    /// The enclosure of ‖ξ_t‖ actually used: [centre − ε, centre + ε],
    /// intersected with the re-anchored enclosure's where there is one
    /// ([`PredictionEnclosure::with_reanchoring`]).
    pub lower_norm: f64,
    /// See `lower_norm`.
    pub upper_norm: f64,
    /// ‖q_t‖ of the re-anchored prediction (from the kernel at the
    /// re-anchoring step, started from ξ_0), where there is one.
    pub repredicted_norm: Option<f64>,
    /// ‖φ_t‖.
    pub deviation_norm: f64,
    /// ⟨p_t, φ_t⟩ (with the norms, the centre for any rescaled φ: see
    /// [`super::Verdict::expected_at_width`]).
    pub inner: f64,
    /// ‖φ_t^kernel‖: the part of φ_t driven by the kernel drift E_t, F_t.
    pub kernel_part: f64,
    /// ‖φ_t^flip‖: the part driven by the flip remainders R_t, R'_{t−1}.
    pub flip_part: f64,
    /// ‖H_t − H_0‖_F / ‖H_0‖_F at the step (0 at t = 0).
    pub kernel_drift: f64,
}

impl EnclosureStep {
    /// The loss band [½ lower², ½ upper²] at this step: ½ (max(0, ‖p + φ‖ − ε))²
    /// to ½ (‖p + φ‖ + ε)², intersected with the re-anchored band.
    pub fn loss_band(&self) -> (f64, f64) {
        (
            0.5 * self.lower_norm * self.lower_norm,
            0.5 * self.upper_norm * self.upper_norm,
        )
    }

    /// The predicted loss ½‖p_t‖².
    pub fn predicted_loss(&self) -> f64 {
        0.5 * self.predicted_norm * self.predicted_norm
    }
}

/// The enclosure of a run's residual around the linearized prediction from
/// H_0 (see the module docs for the mathematics), fed one step at a time
/// with the kernels of the run.
///
/// Used by [`crate::Trainer::enclose_prediction`], which forms the kernels
/// from the network; usable directly for any model whose outputs are
/// positively homogeneous of degree one in its trained parameters, or for
/// a linear model with a drifting kernel (remainders zero).
///
/// # Examples
/// A linear model whose kernel drifts by a known E_t: the band encloses the
/// residual at every step.
/// ```
/// use nalgebra::{DMatrix, DVector};
/// use ntk_momentum::theory::{Method, PredictionEnclosure};
///
/// let h0 = DMatrix::from_diagonal(&DVector::from_vec(vec![1.0, 0.3, 0.05]));
/// let xi0 = DVector::from_vec(vec![1.0, -0.5, 0.25]);
/// let (lr, beta) = (0.9, 0.6);
/// let mut enclosure = PredictionEnclosure::new(Method::HeavyBall, lr, beta, &h0, &xi0)?;
/// let (mut prev, mut cur) = (xi0.clone(), xi0.clone());
/// for t in 0..60 {
///     let e = DMatrix::from_fn(3, 3, |i, j| 1e-3 * ((i + j + t) % 3) as f64); // symmetric drift
///     let ht = &h0 + &e;
///     // HB on the drifting kernel: ξ_{t+1} = ξ_t − η H_t ξ_t + β (ξ_t − ξ_{t−1}).
///     let next = &cur - (&ht * &cur) * lr + (&cur - &prev) * beta;
///     enclosure.push(&ht, None, &DVector::zeros(3))?;
///     prev = std::mem::replace(&mut cur, next);
///     let step = enclosure.steps()[t + 1];
///     let norm = cur.norm();
///     assert!((norm - step.centre_norm).abs() <= step.radius + 1e-12);
/// }
/// # Ok::<(), ntk_momentum::Error>(())
/// ```
#[derive(Clone, Debug)]
pub struct PredictionEnclosure {
    method: Method,
    lr: f64,
    momentum: f64,
    h0: DMatrix<f64>,
    h0_norm: f64,
    eigenvalues: Vec<f64>,
    vectors: DMatrix<f64>,
    a: Vec<f64>,
    b: Vec<f64>,
    first: Vec<f64>,
    /// Prediction coordinates at t − 1 and t.
    c: [Vec<f64>; 2],
    /// p_{t−1}, p_t.
    p: [DVector<f64>; 2],
    /// φ^kernel and φ^flip coordinates at t − 1 and t.
    kernel: [Vec<f64>; 2],
    flip: [Vec<f64>; 2],
    /// φ_{t−1}, φ_t in the original basis (V times the coordinates).
    phi: [DVector<f64>; 2],
    response: ImpulseResponse,
    /// ‖G_k‖, k = 0..
    impulse: Vec<f64>,
    /// ν_s.
    nu: Vec<f64>,
    rounding: f64,
    output_norm: f64,
    steps: Vec<EnclosureStep>,
    xi0: DVector<f64>,
    reanchor: Option<Reanchor>,
}

/// One push's inputs: H_s, the cross kernel (NAG), the remainder.
type Push = (DMatrix<f64>, Option<DMatrix<f64>>, DVector<f64>);

/// A second enclosure of the same run around the prediction from the
/// kernel at step `at` (see [`PredictionEnclosure::with_reanchoring`]).
#[derive(Clone, Debug)]
struct Reanchor {
    at: usize,
    /// The pushes before `at`, replayed into the second enclosure.
    stored: Vec<Push>,
    enclosure: Option<Box<PredictionEnclosure>>,
    /// Set when the second enclosure could not start (unstable on H_at).
    abandoned: bool,
}

impl PredictionEnclosure {
    /// The enclosure of `method` at constant (`lr`, `momentum`) from the
    /// kernel `h0` = H(W_0) (n × n, symmetric positive semi-definite) and
    /// the initial residual `xi0` (n). Decomposes `h0` once (O(n³)).
    ///
    /// # Errors
    /// [`Error::ShapeMismatch`] for a non-square `h0` or a residual of
    /// another length; [`Error::NonFinite`] for NaN or infinite entries;
    /// [`Error::InvalidParameter`] for a non-symmetric or indefinite `h0`,
    /// (η, β) out of range or unstable on its spectrum.
    pub fn new(method: Method, lr: f64, momentum: f64, h0: &DMatrix<f64>, xi0: &DVector<f64>) -> Result<Self> {
        let n = h0.nrows();
        if h0.ncols() != n || xi0.len() != n || n == 0 {
            return Err(Error::shape(
                "H_0 and xi_0",
                "a non-empty n x n kernel and a residual of n entries",
                format!("{} x {} and {}", h0.nrows(), h0.ncols(), xi0.len()),
            ));
        }
        if let Some(i) = first_non_finite(xi0.as_slice()) {
            return Err(Error::NonFinite {
                what: "xi_0".into(),
                location: format!("entry {i}"),
            });
        }
        let (spectrum, vectors) = crate::ntk::eigendecomposition(h0)?;
        let eigenvalues = spectrum.eigenvalues;
        check_spectrum(&eigenvalues)?;
        let momentum = if method == Method::GradientDescent {
            0.0
        } else {
            momentum
        };
        let rho = super::rate(method, lr, momentum, &eigenvalues)?;
        if rho >= 1.0 {
            return Err(Error::invalid(
                "lr",
                lr,
                format!("a step size at which {method} is stable on the spectrum of H_0 (rate {rho})"),
            ));
        }
        let mut a = Vec::with_capacity(n);
        let mut b = Vec::with_capacity(n);
        let mut first = Vec::with_capacity(n);
        for &l in &eigenvalues {
            let (ai, bi, fi) = coefficients(method, lr, momentum, l.max(0.0));
            a.push(ai);
            b.push(bi);
            first.push(fi);
        }
        let c0: Vec<f64> = (vectors.transpose() * xi0).iter().copied().collect();
        let response = ImpulseResponse::new(method, lr, momentum, &eigenvalues);
        let xi_norm = xi0.norm();
        let mut enclosure = PredictionEnclosure {
            method,
            lr,
            momentum,
            h0_norm: h0.norm(),
            h0: h0.clone(),
            eigenvalues,
            vectors,
            a,
            b,
            first,
            c: [c0.clone(), c0],
            p: [xi0.clone(), xi0.clone()],
            kernel: [vec![0.0; n], vec![0.0; n]],
            flip: [vec![0.0; n], vec![0.0; n]],
            phi: [DVector::zeros(n), DVector::zeros(n)],
            response,
            impulse: Vec::new(),
            nu: Vec::new(),
            rounding: 64.0 * f64::EPSILON,
            output_norm: xi_norm,
            steps: Vec::new(),
            xi0: xi0.clone(),
            reanchor: None,
        };
        enclosure.steps.push(EnclosureStep {
            predicted_norm: xi_norm,
            centre_norm: xi_norm,
            radius: 0.0,
            lower_norm: xi_norm,
            upper_norm: xi_norm,
            repredicted_norm: None,
            deviation_norm: 0.0,
            inner: 0.0,
            kernel_part: 0.0,
            flip_part: 0.0,
            kernel_drift: 0.0,
        });
        Ok(enclosure)
    }

    /// Sets the rounding allowance: γ = 64 `unit_roundoff` (1 + β + c η λ_max)
    /// is the relative size of the floating-point error of one step of the
    /// run, added to ν_s as γ (‖p_s‖ + ‖φ_s‖ + ε_s + `output_norm`), where
    /// `output_norm` bounds the size of the outputs the run rounds (absolute
    /// errors of order ε ‖u‖ remain when the residual is tiny). Default
    /// `unit_roundoff` = ε_f64 and `output_norm` = ‖ξ_0‖; [`crate::Trainer`]
    /// sets ε_T · max(1, √m / 4) for its float type T and
    /// ‖u_0‖ + ‖y‖. The bound is proven for exact arithmetic; this allowance
    /// is an engineering margin, not a proof about rounding.
    ///
    /// # Errors
    /// [`Error::InvalidParameter`] unless both are finite and ≥ 0.
    pub fn with_rounding(mut self, unit_roundoff: f64, output_norm: f64) -> Result<Self> {
        if !(unit_roundoff.is_finite() && unit_roundoff >= 0.0) {
            return Err(Error::invalid("unit_roundoff", unit_roundoff, "a finite value >= 0"));
        }
        if !(output_norm.is_finite() && output_norm >= 0.0) {
            return Err(Error::invalid("output_norm", output_norm, "a finite value >= 0"));
        }
        self.rounding = 64.0 * unit_roundoff;
        self.output_norm = output_norm;
        Ok(self)
    }

    /// The method and its constant (η, β).
    pub fn hyperparameters(&self) -> (Method, f64, f64) {
        (self.method, self.lr, self.momentum)
    }

    /// The eigenvalues of H_0, ascending.
    pub fn eigenvalues(&self) -> &[f64] {
        &self.eigenvalues
    }

    /// The records of steps 0..=t pushed so far.
    pub fn steps(&self) -> &[EnclosureStep] {
        &self.steps
    }

    /// The coordinates of φ_t (kernel part + flip part) in the eigenbasis of
    /// H_0 (ascending eigenvalues): which modes carry the deviation.
    pub fn deviation_coordinates(&self) -> Vec<f64> {
        self.kernel[1].iter().zip(&self.flip[1]).map(|(k, f)| k + f).collect()
    }

    fn c_factor(&self) -> f64 {
        if self.method == Method::Nesterov {
            1.0 + self.momentum
        } else {
            1.0
        }
    }

    /// Advances the enclosure by the run's step s → s + 1 (s = the number of
    /// pushes so far): `h_s` = H_s = J_s J_sᵀ, `cross` = J_s J_{s−1}ᵀ (NAG at
    /// s ≥ 1 only; ignored otherwise), `remainder` = R_s − β R'_{s−1} (zero
    /// for a linear model).
    ///
    /// # Errors
    /// [`Error::ShapeMismatch`] for wrong sizes, [`Error::NonFinite`] for
    /// NaN or infinite entries, [`Error::InvalidParameter`] for NAG at
    /// s ≥ 1 without `cross`.
    pub fn push(&mut self, h_s: &DMatrix<f64>, cross: Option<&DMatrix<f64>>, remainder: &DVector<f64>) -> Result<()> {
        let s = self.steps.len() - 1;
        self.push_one(h_s, cross, remainder)?;
        let Some(re) = self.reanchor.as_mut() else {
            return Ok(());
        };
        if re.abandoned {
            return Ok(());
        }
        if s < re.at {
            re.stored.push((h_s.clone(), cross.cloned(), remainder.clone()));
            return Ok(());
        }
        if re.enclosure.is_none() {
            let (method, lr, momentum) = (self.method, self.lr, self.momentum);
            let started = PredictionEnclosure::new(method, lr, momentum, h_s, &self.xi0)
                .and_then(|e| e.with_rounding(self.rounding / 64.0, self.output_norm));
            let Ok(mut second) = started else {
                re.abandoned = true;
                re.stored.clear();
                return Ok(());
            };
            for (h, k, r) in std::mem::take(&mut re.stored) {
                second.push_one(&h, k.as_ref(), &r)?;
            }
            re.enclosure = Some(Box::new(second));
        }
        let second = re.enclosure.as_deref_mut();
        if let Some(second) = second {
            second.push_one(h_s, cross, remainder)?;
            // Intersect every step the second enclosure covers (all of them once it starts).
            for (mine, other) in self.steps.iter_mut().zip(&second.steps) {
                mine.lower_norm = mine.lower_norm.max(other.lower_norm);
                mine.upper_norm = mine.upper_norm.min(other.upper_norm).max(mine.lower_norm);
                mine.repredicted_norm = Some(other.predicted_norm);
            }
        }
        Ok(())
    }

    /// Also encloses the run around the prediction from the kernel at step
    /// `at` (H_at, known once the run gets there), started from the same
    /// ξ_0: the same identity with H_at as reference (its drift
    /// H_t − H_at is small once the kernel has settled, so its bounded rest
    /// grows far less over long runs), and intersects the two bands — both
    /// enclose ‖ξ_t‖, so their intersection does. The pushes before `at`
    /// are kept (2 n² f64 each) and replayed. Nothing changes if the
    /// method is unstable on H_at.
    ///
    /// # Errors
    /// [`Error::InvalidParameter`] for `at` = 0 or after the first push.
    pub fn with_reanchoring(mut self, at: usize) -> Result<Self> {
        if at == 0 || self.steps.len() > 1 {
            return Err(Error::invalid(
                "at",
                at,
                "a re-anchoring step >= 1, set before the first push",
            ));
        }
        self.reanchor = Some(Reanchor {
            at,
            stored: Vec::new(),
            enclosure: None,
            abandoned: false,
        });
        Ok(self)
    }

    /// The step whose kernel the second enclosure is anchored at, once it
    /// has started.
    pub fn reanchored_at(&self) -> Option<usize> {
        self.reanchor.as_ref().filter(|r| r.enclosure.is_some()).map(|r| r.at)
    }

    fn push_one(&mut self, h_s: &DMatrix<f64>, cross: Option<&DMatrix<f64>>, remainder: &DVector<f64>) -> Result<()> {
        let n = self.h0.nrows();
        let s = self.steps.len() - 1;
        let check = |what: &str, m: &DMatrix<f64>| -> Result<()> {
            if m.shape() != (n, n) {
                return Err(Error::shape(
                    what.to_string(),
                    format!("{n} x {n}"),
                    format!("{} x {}", m.nrows(), m.ncols()),
                ));
            }
            check_finite_matrix(what, m)
        };
        check("H_s", h_s)?;
        if remainder.len() != n {
            return Err(Error::shape(
                "remainder",
                format!("{n} entries"),
                format!("{}", remainder.len()),
            ));
        }
        if let Some(i) = first_non_finite(remainder.as_slice()) {
            return Err(Error::NonFinite {
                what: "remainder".into(),
                location: format!("entry {i}"),
            });
        }
        let cross = if self.method == Method::Nesterov && s >= 1 && self.momentum > 0.0 {
            let k = cross
                .ok_or_else(|| Error::invalid("cross", "None", "J_s J_{s-1}^T for NAG from its second step on"))?;
            check("J_s J_{s-1}^T", k)?;
            Some(k)
        } else {
            None
        };
        let (lr, beta, c) = (self.lr, self.momentum, self.c_factor());
        // Known forcing, in two parts: kernel drift and flips.
        let e = h_s - &self.h0;
        let e_norm = spectral_norm_bound(&e, true);
        let mut kernel_force = &e * &self.p[1] * (-c * lr);
        // The part of the rest that is known as a vector: −c η E_s φ_s + β η F_s φ_{s−1}.
        let mut second = &e * &self.phi[1] * (-c * lr);
        let mut f_norm = 0.0;
        if let Some(k) = cross {
            let f = k - &self.h0;
            f_norm = spectral_norm_bound(&f, false);
            kernel_force += &f * &self.p[0] * (beta * lr);
            second += &f * &self.phi[0] * (beta * lr);
        }
        let kernel_coords = self.vectors.tr_mul(&kernel_force);
        let flip_coords = self.vectors.tr_mul(remainder);
        // ν_s from the records at s and s − 1.
        let now = self.steps[s];
        let before = if s >= 1 { self.steps[s - 1] } else { self.steps[s] };
        let lambda_max = self.eigenvalues.last().copied().unwrap_or(0.0).max(0.0);
        let gamma = self.rounding * (1.0 + beta + c * lr * lambda_max);
        let nu = second.norm()
            + c * lr * e_norm * now.radius
            + beta * lr * f_norm * before.radius
            + gamma * (now.predicted_norm + now.deviation_norm + now.radius + self.output_norm);
        self.nu.push(nu);
        self.impulse.push(self.response.next_norm());
        // ε_{s+1} = Σ_{j ≤ s} ‖G_{s−j}‖ ν_j
        let radius: f64 = self.nu.iter().enumerate().map(|(j, &v)| self.impulse[s - j] * v).sum();
        // Advance the prediction and φ one step, per mode.
        let advance = |state: &mut [Vec<f64>; 2], force: Option<&DVector<f64>>, first: Option<&[f64]>| {
            let next: Vec<f64> = (0..n)
                .map(|i| {
                    let base = match first {
                        Some(f) => f[i] * state[1][i],
                        None => self.a[i] * state[1][i] + self.b[i] * state[0][i],
                    };
                    base + force.map_or(0.0, |v| v[i])
                })
                .collect();
            state[0] = std::mem::replace(&mut state[1], next);
        };
        let mut c_state = std::mem::take(&mut self.c);
        advance(&mut c_state, None, (s == 0).then_some(&self.first[..]));
        let mut kernel_state = std::mem::take(&mut self.kernel);
        advance(&mut kernel_state, Some(&kernel_coords), None);
        let mut flip_state = std::mem::take(&mut self.flip);
        advance(&mut flip_state, Some(&flip_coords), None);
        self.c = c_state;
        self.kernel = kernel_state;
        self.flip = flip_state;
        let p_next = &self.vectors * DVector::from_column_slice(&self.c[1]);
        self.p[0] = std::mem::replace(&mut self.p[1], p_next);
        let norm = |v: &[f64]| v.iter().map(|x| x * x).sum::<f64>().sqrt();
        let phi = self.deviation_coordinates();
        let phi_next = &self.vectors * DVector::from_column_slice(&phi);
        self.phi[0] = std::mem::replace(&mut self.phi[1], phi_next);
        let centre: Vec<f64> = self.c[1].iter().zip(&phi).map(|(c, p)| c + p).collect();
        let centre_norm = norm(&centre);
        self.steps.push(EnclosureStep {
            predicted_norm: norm(&self.c[1]),
            centre_norm,
            radius,
            lower_norm: (centre_norm - radius).max(0.0),
            upper_norm: centre_norm + radius,
            repredicted_norm: None,
            deviation_norm: norm(&phi),
            inner: self.c[1].iter().zip(&phi).map(|(c, p)| c * p).sum(),
            kernel_part: norm(&self.kernel[1]),
            flip_part: norm(&self.flip[1]),
            kernel_drift: if self.h0_norm > 0.0 {
                e.norm() / self.h0_norm
            } else {
                0.0
            },
        });
        Ok(())
    }
}
