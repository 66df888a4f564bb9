//! Shared set-up of the criterion benches: problem sizes, synthetic data (the
//! same generator as `examples/step_timing.rs`), the GEMM thread count and
//! benchmark-id labels.
//!
//! Environment:
//! - `NTK_BENCH_FULL=1` adds the reference size n = 1000, d = 3072, m = 4096 to
//!   the default n = 256, d = 784, m = 1024 (the full size takes minutes).
//! - `NTK_BENCH_THREADS=T` sets the GEMM thread count (default: all cores).

#![allow(dead_code)]

use std::time::Duration;

use nalgebra::{DMatrix, DVector};
use ntk_momentum::Float;

/// One problem size: n samples of dimension d, width m.
#[derive(Clone, Copy, Debug)]
pub struct Size {
    pub n: usize,
    pub d: usize,
    pub m: usize,
    /// Issue 7's size: benched with few samples.
    pub big: bool,
}

impl Size {
    /// `n256_d784_m1024`.
    pub fn label(&self) -> String {
        format!("n{}_d{}_m{}", self.n, self.d, self.m)
    }

    /// `n256_d784` (for work that does not depend on m).
    pub fn label_nd(&self) -> String {
        format!("n{}_d{}", self.n, self.d)
    }
}

/// The default size, plus the reference size (n = 1000, d = 3072, m = 4096) when `NTK_BENCH_FULL=1`.
pub fn sizes() -> Vec<Size> {
    let mut s = vec![Size {
        n: 256,
        d: 784,
        m: 1024,
        big: false,
    }];
    if full() {
        s.push(Size {
            n: 1000,
            d: 3072,
            m: 4096,
            big: true,
        });
    }
    s
}

/// Whether `NTK_BENCH_FULL` is set to something other than empty or `0`.
pub fn full() -> bool {
    std::env::var("NTK_BENCH_FULL").is_ok_and(|v| !v.is_empty() && v != "0")
}

/// Applies `NTK_BENCH_THREADS` (if set) and returns the GEMM thread count.
pub fn threads() -> usize {
    if let Ok(t) = std::env::var("NTK_BENCH_THREADS") {
        match t.trim().parse::<usize>() {
            Ok(t) => ntk_momentum::set_gemm_threads(t),
            Err(_) => panic!("NTK_BENCH_THREADS must be a non-negative integer, got {t:?}"),
        }
    }
    ntk_momentum::gemm_threads()
}

/// `t2`.
pub fn thread_label() -> String {
    format!("t{}", threads())
}

/// Sample count, measurement and warm-up time for a group at the reference size
/// (overrides the command line; one iteration there takes 0.1 to 1 s).
pub const BIG_SAMPLES: usize = 10;
pub const BIG_MEASUREMENT: Duration = Duration::from_secs(8);
pub const BIG_WARM_UP: Duration = Duration::from_secs(2);

/// X (n × d) on the unit sphere and y = ±1: [`ntk_momentum::data::unit_sphere`].
pub fn data<T: Float>(n: usize, d: usize, seed: u64) -> (DMatrix<T>, DVector<T>) {
    ntk_momentum::data::unit_sphere(n, d, seed).expect("sizes are at least 1")
}
