//! # ntk-momentum
//!
//! Momentum optimizers — [`GradientDescent`], [`HeavyBall`] and [`Nesterov`]
//! (with its explicit gradient-correction term) — behind one generic
//! [`Optimizer`] trait that works on your own parameter containers, and the
//! over-parameterized two-layer ReLU network ([`TwoLayerReLU`]) in which their
//! convergence is understood through the neural tangent kernel.
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
//!
//! ## Map of the crate
//!
//! The data flow X, y → model → gradient → optimizer → parameters, with the
//! training loop as the only place that ties them:
//!
//! - [`optim`]: the [`Optimizer`] trait, the three methods, their conventions
//!   (NAG = look-ahead Nesterov = PyTorch's `nesterov=True`), saved state, and
//!   [`minimize`] for any objective given as a closure.
//! - [`model`]: [`TwoLayerReLU`] — forward, loss, gradient, Jacobian (matrix
//!   and operator), empirical NTK Gram matrix.
//! - [`ntk`]: the infinite-width kernel and spectra.
//! - [`theory`]: predicted rates, stability limits and tunings of GD, HB and
//!   NAG from the NTK spectrum, and measured-versus-predicted comparisons.
//! - [`train`]: [`Trainer`], the full-batch loop in weight or exact kernel
//!   space, with stopping rules, diagnostics, observers and checkpoints.
//! - [`data`]: CIFAR-10 and IDX readers, preprocessing, binary tasks and
//!   real data subsets embedded in the crate.
//! - [`Error`]: the one error type; every fallible call returns
//!   [`Result`]`<_, Error>` and never panics on bad input.
//!
//! ## Layers
//!
//! Each module uses only the modules below it (`tests/layers.rs` fails on a
//! `use crate::…` that points upwards, including through the re-exports at
//! the crate root):
//!
//! ```text
//! testing                                  proptest strategies, certificates (feature `proptest`)
//!   ↓
//! data                                     readers, tasks, embedded subsets
//!   ↓
//! train                                    Trainer, observers, checkpoints
//!   ↓
//! theory                                   rates, tunings, predicted trajectories
//!   ↓
//! ntk                                      infinite-width kernel, spectra
//!   ↓
//! optim      model                         the optimizers; the network (peers: neither uses the other)
//!   ↓          ↓
//! float  error  checks  record  threads  linalg   leaves: number types, the error, input checks,
//!                                                the run record (History, Diagnostics, Stop),
//!                                                thread count and AVX2 dispatch, GEMM
//! ```
//!
//! ## Reproducibility and threads
//!
//! Networks are initialised from a seeded ChaCha8 generator; the same seed,
//! data and options give bit-identical results on every run and for any
//! number of GEMM threads ([`set_gemm_threads`]). The large products run on
//! the pure-Rust `gemm` crate unless [`set_gemm_backend`] selects the
//! system's OpenBLAS (feature `system-blas`), whose results differ in the
//! last bits.
//!
//! ## Features
//!
//! - `full` (default): everything beyond the optimizers — [`model`], [`ntk`],
//!   [`theory`], [`train`], [`data`] — with faer, gemm, nalgebra, rand,
//!   safetensors and flate2. With `default-features = false` the crate is
//!   the optimizers alone ([`optim`]: the [`Optimizer`] trait, GD, HB and
//!   NAG with every knob, schedules, parameter groups, plateau schedule,
//!   state, [`minimize`]) on num-traits, rayon and thiserror: 14
//!   dependencies in all. Add `nalgebra`, `ndarray` or `serde` to step those
//!   containers or serialize states.
//! - `nalgebra` (part of `full`): the parameter traits for nalgebra's
//!   `DVector` and `DMatrix`.
//! - `progress` (default): [`train::ProgressBar`], a terminal progress-bar
//!   observer (indicatif).
//! - `ndarray`: the optimizers' parameter traits for ndarray arrays and
//!   views of any dimension.
//! - `proptest`: the module `testing`: strategies, convergence
//!   certificates and predicted races for property tests (proptest).
//! - `serde`: `Serialize`/`Deserialize` for optimizer states, schedules,
//!   conventions, [`History`], [`Diagnostics`], [`train::TrainOptions`],
//!   [`ntk::Spectrum`] and [`theory::Tuning`].
//! - `download`: `data::download`, fetching and verifying the official
//!   CIFAR-10 archive (ureq with rustls, tar, md-5).
//! - `system-blas`: [`GemmBackend::SystemBlas`], the large products by the
//!   system's OpenBLAS through CBLAS (links `libopenblas`).
#![deny(missing_docs)]
// The optimizer-only build leaves the helpers of the model and training loop unused; the full
// build (the default, and what CI lints) still reports dead code.
#![cfg_attr(not(feature = "full"), allow(dead_code))]
// No unwrap/expect on anything a user can influence: the few `expect`s on
// constants and internal invariants carry an `allow` with the reason.
#![cfg_attr(not(test), deny(clippy::unwrap_used, clippy::expect_used))]
// docs.rs (nightly, `--cfg docsrs`) labels every feature-gated item with its feature.
#![cfg_attr(docsrs, feature(doc_cfg))]

mod checks;
#[cfg(feature = "full")]
pub mod data;
mod error;
mod float;
#[cfg(feature = "full")]
mod linalg;
#[cfg(feature = "full")]
mod memory;
#[cfg(feature = "full")]
pub mod model;
#[cfg(feature = "full")]
pub mod ntk;
pub mod optim;
mod record;
#[cfg(feature = "proptest")]
pub mod testing;
#[cfg(feature = "full")]
pub mod theory;
mod threads;
#[cfg(feature = "full")]
pub mod train;

pub use error::{Error, Result};
pub use float::{Float, Precision};
#[cfg(feature = "full")]
pub use linalg::{gemm_backend, set_gemm_backend, GemmBackend};
#[cfg(feature = "full")]
pub use memory::{memory_limit, set_memory_limit, MEMORY_LIMIT_VAR};
#[cfg(feature = "full")]
pub use model::TwoLayerReLU;
pub use optim::{
    minimize, Convention, GradientDescent, HeavyBall, MinimizeOptions, MinimizeReport, Nesterov, Optimizer,
    OptimizerState, Parameters, ParametersMut, Schedule,
};
pub use record::{Diagnostics, History, Stop};
pub use threads::{gemm_threads, set_gemm_threads};
#[cfg(feature = "full")]
pub use train::{Parameterization, Trainer};

/// The README's figures, drawn by the examples (each caption names the
/// command; the numbers are in the README next to them). The SVG files ship
/// in the package under `docs/figures/` and are embedded here so that they
/// render on docs.rs.
///
/// ## CIFAR-10 subset: loss against step, GD, HB and NAG
///
/// `cargo run --release --example cifar_subset`.
///
#[doc = include_str!("../docs/figures/cifar_subset_loss.svg")]
///
/// ## Phase diagram: predicted steps over (η, β)
///
/// `cargo run --release --example phase_diagram`.
///
#[doc = include_str!("../docs/figures/phase_diagram.svg")]
///
/// ## Width sweep: measured against predicted steps as m grows
///
/// `cargo run --release --example width_sweep`.
///
#[doc = include_str!("../docs/figures/width_sweep.svg")]
#[cfg(doc)]
pub mod figures {}

/// The README's code blocks, compiled and run as doctests.
#[cfg(all(doctest, feature = "full"))]
#[doc = include_str!("../README.md")]
pub struct ReadmeDoctests;
