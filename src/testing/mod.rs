//! Property-testing convergence invariants (feature `proptest`).
//!
//! Three kinds of tools, so that a property states only what is true:
//!
//! - **Strategies** for [proptest](https://docs.rs/proptest): spectra with a
//!   chosen κ range, dimension range and [`Layout`]; [`Quadratic`]s and
//!   [`LeastSquares`] problems with exact spectra; small [`ReluProblem`]s
//!   with the spectrum of their H(W_0); and [`hyperparameters`] drawn from a
//!   method's stable region, optionally under-, over- or exactly critically
//!   damped at λ_min ([`DampingRegion`]).
//! - **Certificates**: [`Certificate`] bounds the linearized residual,
//!   ‖ξ_t‖ ≤ C_t ρᵗ ‖ξ_0‖, with C_t computed from the closed-form 2 × 2
//!   modal solutions (constant off critical damping, growing like t + 1 at
//!   it), and checks a run's norms, losses or [`crate::History`] against it,
//!   reporting the first violation with its margin and how tight the bound
//!   was. A plain "measured rate ≤ ρ + 5 %" property fails at critical
//!   damping, where the (t + 1) factor is real; the certificate includes it.
//! - **Drifting kernels**: [`DriftCertificate`] keeps the certificate sound
//!   when the kernel moves, H_t with ‖H_t − H_0‖₂ ≤ ε_t (and NAG's
//!   correction kernel within ε'_t), by summing the drift's defects through
//!   the exact impulse response of the undisturbed recursion.
//! - **Comparisons**: [`race`] predicts which of two methods reaches a loss
//!   level first and whether the prediction is clear of rounding, so a
//!   property asserts "A is no slower than B" only where it holds (NAG is
//!   not faster than HB at every (η, β) and κ: see [`crate::theory`]).
//!
//! # Example
//! ```
//! use proptest::prelude::*;
//! use ntk_momentum::testing::{hyperparameters, quadratics, Certificate, DampingRegion, Layout};
//! use ntk_momentum::theory::Method;
//! use ntk_momentum::Nesterov;
//!
//! proptest!(ProptestConfig::with_cases(32), |(
//!     (q, (lr, beta)) in quadratics(1.0..=1e4, 1..=16, Layout::PowerLaw).prop_flat_map(|q| {
//!         let h = hyperparameters(Method::Nesterov, q.lambda_min(), q.lambda_max(), DampingRegion::Any);
//!         (Just(q), h)
//!     })
//! )| {
//!     let certificate = Certificate::new(Method::Nesterov, lr, beta, &q.eigenvalues)?;
//!     let norms = q.error_norms(&mut Nesterov::new(lr, beta)?, 500)?;
//!     let check = certificate.check_norms(&norms, 500)?;
//!     prop_assert!(check.holds(), "{check}");
//! });
//! ```

mod certificate;
mod drift;
mod race;
mod strategies;

pub use certificate::{Certificate, CertificateCheck, Violation, CHECK_FLOOR, CHECK_SLACK};
pub use drift::DriftCertificate;
pub use race::{race, Contestant, Race, RACE_MARGIN};
pub use strategies::{
    hyperparameters, least_squares, quadratics, relu_problems, spectra, DampingRegion, Layout, LeastSquares, Quadratic,
    ReluProblem,
};
