//! `--gemm-backend`: the library of the large matrix products.

/// Library of the large matrix products.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum Backend {
    /// The pure-Rust `gemm` crate (default).
    Rust,
    /// The system's OpenBLAS (crate feature `system-blas`).
    SystemBlas,
}

impl Backend {
    /// Makes it the process's backend (an error without the feature).
    pub fn select(self) -> ntk_momentum::Result<()> {
        ntk_momentum::set_gemm_backend(match self {
            Backend::Rust => ntk_momentum::GemmBackend::Rust,
            Backend::SystemBlas => ntk_momentum::GemmBackend::SystemBlas,
        })
    }
}
