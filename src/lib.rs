//! # ntk-momentum
//!
//! Momentum optimizers — [`GradientDescent`], [`HeavyBall`] and [`Nesterov`]
//! (with its explicit gradient-correction term) — behind one generic
//! [`Optimizer`] trait that works on your own parameter containers.
//!
//! ## Quick start
//!
//! ```
//! use ntk_momentum::{Nesterov, Optimizer};
//!
//! // Minimise f(x) = (x0^2 + 100 x1^2) / 2 with Nesterov's method.
//! let mut nag = Nesterov::new(0.01, 0.8)?;
//! let mut x = vec![1.0_f64, 1.0];
//! for _ in 0..500 {
//!     let grad = vec![x[0], 100.0 * x[1]];
//!     nag.step(&mut x, &grad)?;
//! }
//! assert!(x[0].abs() < 1e-6 && x[1].abs() < 1e-6);
//! # Ok::<(), ntk_momentum::Error>(())
//! ```
#![deny(missing_docs)]

pub mod data;
mod error;
mod float;
mod linalg;
pub mod model;
pub mod ntk;
pub mod optim;
pub mod theory;
pub mod train;

pub use error::{Error, Result};
pub use float::Float;
pub use linalg::{gemm_threads, set_gemm_threads};
pub use model::TwoLayerReLU;
pub use optim::{
    minimize, GradientDescent, HeavyBall, MinimizeOptions, MinimizeReport, Nesterov, Optimizer, OptimizerState,
    Parameters, StopReason,
};
pub use train::{Diagnostics, History, Parameterization, Trainer};
