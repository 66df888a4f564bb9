//! The `gemm` crate's rate (GFLOP/s) at the two products of a weight-space
//! step, in the layouts the training loop uses: the crate's side of
//! `benches/peers/gemm_rate.py` (numpy's BLAS at the same shapes).
//!
//! ```text
//! cargo run --release --example gemm_rate -- --n 60000 --d 784 --m 4096 --threads 2
//! ```
//!
//! - forward `P = W Xᵀ`: (m × d)(d × n) into m × n, X stored n × d
//!   column-major (nalgebra's layout), read transposed;
//! - gradient `G = Mᵀ X`: (m × n)(n × d) into m × d, the inner dimension n.
//!
//! Each product runs `--warmup` times untimed, then `--reps` times; the rate
//! is 2 n m d flops over the best time (the median is printed too). The last
//! line is `gflops_f64=<x> gflops_f32=<y>` (forward, best), like the peer's.

mod common;

use std::time::Instant;

use clap::Parser;
use nalgebra::DMatrix;
use ntk_momentum::Float;

use common::{exit_on_error, startup, AnyResult};

/// GEMM rate at the shapes of a weight-space step.
#[derive(Parser, Debug)]
struct Args {
    /// Samples n.
    #[arg(long, default_value_t = 1000, value_parser = clap::value_parser!(u64).range(1..=1_000_000))]
    n: u64,
    /// Input dimension d.
    #[arg(long, default_value_t = 3072, value_parser = clap::value_parser!(u64).range(1..=100_000))]
    d: u64,
    /// Width m.
    #[arg(long, default_value_t = 4096, value_parser = clap::value_parser!(u64).range(1..=1_000_000))]
    m: u64,
    /// Timed repetitions.
    #[arg(long, default_value_t = 5, value_parser = clap::value_parser!(u64).range(1..))]
    reps: u64,
    /// Untimed repetitions first.
    #[arg(long, default_value_t = 1)]
    warmup: u64,
    /// GEMM threads.
    #[arg(long, default_value_t = 2, value_parser = clap::value_parser!(u64).range(1..=1024))]
    threads: u64,
}

fn main() {
    startup::quiet_on_closed_stdout();
    let args: Args = startup::parse_args();
    exit_on_error(run(&args));
}

fn run(args: &Args) -> AnyResult<()> {
    let (n, d, m) = (args.n as usize, args.d as usize, args.m as usize);
    let bytes = 8.0 * (n * d + m * d + 2 * m * n) as f64;
    if bytes > 0.8 * ntk_momentum::memory_limit() as f64 {
        return Err(
            format!("n = {n}, d = {d}, m = {m} needs {bytes:.3e} bytes in f64, above the memory budget").into(),
        );
    }
    println!(
        "# gemm_rate (gemm crate, Parallelism::Rayon({})): n={n} d={d} m={m} reps={} warmup={}",
        args.threads, args.reps, args.warmup
    );
    let f64_rate = shapes::<f64>(args)?;
    let f32_rate = shapes::<f32>(args)?;
    println!("gflops_f64={f64_rate:.2} gflops_f32={f32_rate:.2}");
    Ok(())
}

/// Times both products in `T`; returns the forward product's best rate.
fn shapes<T: Float>(args: &Args) -> AnyResult<f64> {
    let (n, d, m) = (args.n as usize, args.d as usize, args.m as usize);
    let value = |i: usize| T::cast(((i * 7919 % 1000) as f64 - 500.0) / 500.0);
    let x = DMatrix::<T>::from_fn(n, d, |i, j| value(i * d + j));
    let w = DMatrix::<T>::from_fn(m, d, |i, j| value(i + 3 * j));
    let mt = DMatrix::<T>::from_fn(m, n, |i, j| value(5 * i + j));
    let mut p = DMatrix::<T>::zeros(m, n);
    let mut g = DMatrix::<T>::zeros(m, d);
    let threads = args.threads as usize;
    let flops = 2.0 * (n * m * d) as f64;
    // Each operand: (pointer, column stride, row stride).
    // P (m x n) = W (m x d) X^T: X^T has row stride n, column stride 1.
    let (pp, gp) = (p.as_mut_ptr(), g.as_mut_ptr());
    let forward = time(args, || {
        product(
            (m, n, d),
            (pp, m as isize, 1),
            (w.as_ptr(), m as isize, 1),
            (x.as_ptr(), 1, n as isize),
            threads,
        )
    });
    // The same P, as its transpose X W^T (n x m) written row-major.
    let forward_transposed = time(args, || {
        product(
            (n, m, d),
            (pp, 1, m as isize),
            (x.as_ptr(), n as isize, 1),
            (w.as_ptr(), 1, m as isize),
            threads,
        )
    });
    // G (m x d) = M^T (m x n) X (n x d).
    let gradient = time(args, || {
        product(
            (m, d, n),
            (gp, m as isize, 1),
            (mt.as_ptr(), m as isize, 1),
            (x.as_ptr(), n as isize, 1),
            threads,
        )
    });
    for (what, (best, median)) in [
        ("W X^T", forward),
        ("W X^T as (X W^T)^T", forward_transposed),
        ("M^T X", gradient),
    ] {
        println!(
            "# {} {what}: best {:.1} GFLOP/s ({:.1} ms), median {:.1}",
            T::NAME,
            flops / best / 1e9,
            1e3 * best,
            flops / median / 1e9
        );
    }
    Ok(flops / forward.0 / 1e9)
}

/// `dst ← lhs rhs` for (rows, cols, inner) dimensions; each matrix as
/// (pointer, column stride, row stride), all inside whole matrices of this
/// example.
fn product<T: Float>(
    (rows, cols, inner): (usize, usize, usize),
    dst: (*mut T, isize, isize),
    lhs: (*const T, isize, isize),
    rhs: (*const T, isize, isize),
    threads: usize,
) {
    // SAFETY: the callers pass whole matrices of the shapes and strides given.
    unsafe {
        gemm::gemm(
            rows,
            cols,
            inner,
            dst.0,
            dst.1,
            dst.2,
            false,
            lhs.0,
            lhs.1,
            lhs.2,
            rhs.0,
            rhs.1,
            rhs.2,
            T::zero(),
            T::one(),
            false,
            false,
            false,
            gemm::Parallelism::Rayon(threads),
        )
    }
}

/// (best, median) seconds of `f` over the timed repetitions.
fn time(args: &Args, mut f: impl FnMut()) -> (f64, f64) {
    for _ in 0..args.warmup {
        f();
    }
    let mut t: Vec<f64> = (0..args.reps)
        .map(|_| {
            let t0 = Instant::now();
            f();
            t0.elapsed().as_secs_f64()
        })
        .collect();
    t.sort_by(f64::total_cmp);
    (t[0], t[t.len() / 2])
}
