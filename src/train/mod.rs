//! The full-batch training loop: [`Trainer`] ties a [`TwoLayerReLU`](crate::TwoLayerReLU) and any
//! [`Optimizer`](crate::Optimizer) together.
//!
//! # Two exact parameterizations
//!
//! Every gradient is `G = Mᵀ X`, so every GD / heavy-ball / Nesterov iterate
//! stays in `W_t = W_0 + B_t X` with coefficients `B_t` (m × n). Applying the
//! same optimizer to `(B, Mᵀ)` instead of `(W, G)` gives the same trajectory,
//! and the pre-activations follow from `P_t = W_t Xᵀ = P_0 + B_t K` with
//! `K = X Xᵀ` (n × n):
//!
//! | parameterization | per step | cost |
//! |---|---|---|
//! | [`Parameterization::Weight`] | `P = W Xᵀ`, `G = Mᵀ X` | 4 n m d flops |
//! | [`Parameterization::Kernel`] | `P = P_0 + B K` | 2 n² m flops |
//!
//! [`Parameterization::Auto`] (the default) picks the cheaper one from these
//! counts plus the set-up (K, P_0, and forming W at the end). The two agree
//! to rounding (the test suite checks 1e-9 relative over 100 steps). Kernel
//! space is exact only for optimizers whose update is linear in the
//! gradients ([`Optimizer::is_linear`](crate::Optimizer::is_linear): GD, heavy ball, Nesterov); for any
//! other optimizer `Kernel` is refused with [`Error::Unsupported`] and `Auto`
//! uses weight space.
//!
//! # Example
//!
//! ```
//! use nalgebra::{DMatrix, DVector};
//! use ntk_momentum::{Nesterov, Parameterization, Trainer, TwoLayerReLU};
//!
//! let x = DMatrix::from_fn(8, 4, |i, k| ((i * 4 + k) as f64).sin());
//! let x = DMatrix::from_rows(&x.row_iter().map(|r| r / r.norm()).collect::<Vec<_>>());
//! let y = DVector::from_fn(8, |i, _| if i % 2 == 0 { 1.0 } else { -1.0 });
//! let model = TwoLayerReLU::new(4, 256, 0)?;
//! let mut trainer = Trainer::new(model, Nesterov::new(0.5, 0.9)?)
//!     .max_steps(200)
//!     .parameterization(Parameterization::Auto);
//! let history = trainer.run(&x, &y)?;
//! assert_eq!(history.losses().len(), 201);
//! assert!(history.final_loss().unwrap() < 1e-3 * history.losses()[0]);
//! # Ok::<(), ntk_momentum::Error>(())
//! ```
pub mod checkpoint;
mod diagnostics;
mod enclosure;
mod observer;
mod options;
mod steps;
mod trainer;

use nalgebra::{DMatrix, DVector};

// History, Diagnostics and Stop live at the crate root only (one path per item).
use crate::record::{Diagnostics, History, Stop};
#[cfg(feature = "progress")]
#[cfg_attr(docsrs, doc(cfg(feature = "progress")))]
pub use observer::ProgressBar;
pub use observer::{Control, Observer, StepInfo, Tuner};
pub use options::TrainOptions;
pub use trainer::Trainer;

use crate::{Error, Float, Result};

/// Which coordinates the training loop runs the optimizer in (see the
/// [module docs](self)).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
pub enum Parameterization {
    /// The weights `W` (m × d): 4 n m d flops per step.
    Weight,
    /// The coefficients `B` of `W = W_0 + B X` (m × n): 2 n² m flops per
    /// step. Only for optimizers linear in the gradients.
    Kernel,
    /// The cheaper of the two for the problem size and step budget (weight
    /// space for optimizers that are not linear in the gradients).
    #[default]
    Auto,
}

impl Parameterization {
    fn name(self) -> &'static str {
        match self {
            Parameterization::Weight => "weight",
            Parameterization::Kernel => "kernel",
            Parameterization::Auto => "auto",
        }
    }
}

impl std::fmt::Display for Parameterization {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

/// Parses `weight`, `kernel` or `auto` (what [`Display`](std::fmt::Display)
/// prints), ignoring ASCII case.
///
/// ```
/// use ntk_momentum::Parameterization;
///
/// assert_eq!("Kernel".parse::<Parameterization>()?, Parameterization::Kernel);
/// assert!("kernal".parse::<Parameterization>().is_err());
/// # Ok::<(), ntk_momentum::Error>(())
/// ```
impl std::str::FromStr for Parameterization {
    type Err = Error;
    fn from_str(s: &str) -> Result<Self> {
        [
            Parameterization::Weight,
            Parameterization::Kernel,
            Parameterization::Auto,
        ]
        .into_iter()
        .find(|p| p.name().eq_ignore_ascii_case(s.trim()))
        .ok_or_else(|| Error::invalid("parameterization", s, "weight, kernel or auto"))
    }
}

/// Above this many samples the training loop does not form the NTK Gram
/// matrices of its drift diagnostics (three n × n matrices: 1.5 GiB in `f64`
/// at this size); it tracks the NTK matrix-free instead (in weight space:
/// [`Trainer::matrix_free_ntk`]).
pub const NTK_DRIFT_MAX_SAMPLES: usize = 8192;

/// Flop counts per step of the two parameterizations (see the module docs).
pub fn flops_per_step(n: usize, m: usize, d: usize, parameterization: Parameterization) -> f64 {
    let (n, m, d) = (n as f64, m as f64, d as f64);
    match parameterization {
        Parameterization::Weight => 4.0 * n * m * d,
        Parameterization::Kernel => 2.0 * n * n * m,
        Parameterization::Auto => f64::NAN,
    }
}

/// The parameterization [`Parameterization::Auto`] picks for `steps` steps on
/// n samples of dimension d with width m: kernel space when its per-step
/// cost times `steps` plus its set-up (`K = X Xᵀ`, `P_0 = W_0 Xᵀ`, and
/// forming `W = W_0 + B X` at the end: about 5/4 n² d + 4 n m d flops) is
/// below the weight-space cost.
pub fn auto_parameterization(n: usize, m: usize, d: usize, steps: usize) -> Parameterization {
    let (nf, mf, df, s) = (n as f64, m as f64, d as f64, steps.max(1) as f64);
    let kernel = s * flops_per_step(n, m, d, Parameterization::Kernel) + 1.25 * nf * nf * df + 4.0 * nf * mf * df;
    let weight = s * flops_per_step(n, m, d, Parameterization::Weight);
    if kernel < weight {
        Parameterization::Kernel
    } else {
        Parameterization::Weight
    }
}

/// FNV-1a over the bits of x (with its shape) and y: identifies a run's data.
pub(crate) fn data_fingerprint<T: Float>(x: &DMatrix<T>, y: &DVector<T>) -> u64 {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    let mut eat = |v: u64| {
        h ^= v;
        h = h.wrapping_mul(0x0000_0100_0000_01b3);
    };
    eat(x.nrows() as u64);
    eat(x.ncols() as u64);
    for v in x.iter().chain(y.iter()) {
        eat(v.to_f64().to_bits());
    }
    h
}
