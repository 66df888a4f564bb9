//! Times the NTK Gram matrix of the two-layer ReLU network.
//!
//! ```text
//! cargo run --release --example ntk_timing -- --n 1000 --d 3072 --m 4096 \
//!     --dtype f64 --steps 5 --threads 2
//! ```
//!
//! Same synthetic data as `examples/step_timing.rs` (Gaussian rows scaled to
//! unit norm, seeded). `--kernel empirical` (default) times
//! `TwoLayerReLU::ntk_gram` (H = (X Xᵀ) ∘ (S Sᵀ) / m, with the forward
//! pre-activations X Wᵀ); `--kernel infinite` times
//! `ntk::infinite_width_gram`. It makes `--warmup` untimed calls, then times
//! `--steps` calls one by one. The last line is the mean,
//! `ms_per_call=<number>`, the quantity `benches/peers/ntk_gram_numpy.py`
//! and `ntk_gram_neural_tangents.py` print.

mod size;

use std::time::Instant;

use clap::{Parser, ValueEnum};
use ntk_momentum::ntk::{eigendecomposition, infinite_width_gram, Spectrum};
use ntk_momentum::{Float, TwoLayerReLU};
use size::Dtype;

#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
enum Kernel {
    /// `TwoLayerReLU::ntk_gram` (the empirical NTK at the initial weights).
    Empirical,
    /// `ntk::infinite_width_gram` (its expectation; does not depend on m).
    Infinite,
    /// `ntk::Spectrum::of` on H∞ (eigenvalues only; the Gram matrix is
    /// built once, outside the timing).
    Spectrum,
    /// `ntk::eigendecomposition` on H∞ (eigenvalues and eigenvectors).
    Eigendecomposition,
}

/// Times the NTK Gram matrix.
#[derive(Parser, Debug)]
struct Args {
    /// Problem size and seed.
    #[command(flatten)]
    size: size::Size,
    /// Float type.
    #[arg(long, value_enum, default_value_t = Dtype::F64)]
    dtype: Dtype,
    /// Which Gram matrix.
    #[arg(long, value_enum, default_value_t = Kernel::Empirical)]
    kernel: Kernel,
    /// Timed calls.
    #[arg(long, default_value_t = 5)]
    steps: usize,
    /// Untimed warm-up calls.
    #[arg(long, default_value_t = 1)]
    warmup: usize,
    /// GEMM threads (0 = all cores).
    #[arg(long, default_value_t = 0)]
    threads: usize,
}

/// Per-call times in seconds, and the trace of the last result (the sum of
/// the eigenvalues for the spectral kinds).
fn time<T: Float>(args: &Args) -> Result<(Vec<f64>, f64), ntk_momentum::Error> {
    let (x, _) = ntk_momentum::data::unit_sphere::<T>(args.size.n, args.size.d, args.size.seed)?;
    let model = TwoLayerReLU::<T>::init(args.size.d, args.size.m, args.size.seed)?;
    let spectral = matches!(args.kernel, Kernel::Spectrum | Kernel::Eigendecomposition);
    let h_inf = if spectral { Some(infinite_width_gram(&x)?) } else { None };
    let call = || -> Result<f64, ntk_momentum::Error> {
        match (args.kernel, &h_inf) {
            (Kernel::Empirical, _) => Ok(model.ntk_gram(&x)?.trace().to_f64()),
            (Kernel::Spectrum, Some(h)) => Ok(Spectrum::of(h)?.eigenvalues.iter().sum()),
            (Kernel::Eigendecomposition, Some(h)) => Ok(eigendecomposition(h)?.0.eigenvalues.iter().sum()),
            _ => Ok(infinite_width_gram(&x)?.trace().to_f64()),
        }
    };
    for _ in 0..args.warmup {
        std::hint::black_box(call()?);
    }
    let mut times = Vec::with_capacity(args.steps);
    let mut trace = 0.0;
    for _ in 0..args.steps {
        let start = Instant::now();
        trace = std::hint::black_box(call()?);
        times.push(start.elapsed().as_secs_f64());
    }
    Ok((times, trace))
}

fn main() {
    let args: Args = size::parse_args();
    size::start(args.steps, args.threads);
    let result = match args.dtype {
        Dtype::F32 => time::<f32>(&args),
        Dtype::F64 => time::<f64>(&args),
    };
    let (times, trace) = size::or_exit(result);
    let (n, d, m) = (args.size.n as f64, args.size.d as f64, args.size.m as f64);
    // Nominal GEMM flops, counted as in benches/peers/ntk_gram_numpy.py
    // (X Wᵀ, X Xᵀ and S Sᵀ as plain GEMMs).
    let flops = match args.kernel {
        Kernel::Empirical => 2.0 * n * m * d + 2.0 * n * n * d + 2.0 * n * n * m,
        Kernel::Infinite => 2.0 * n * n * d,
        // Nominal: the tridiagonal reduction's 4/3 n³ (eigenvectors add more).
        Kernel::Spectrum | Kernel::Eigendecomposition => 4.0 / 3.0 * n * n * n,
    };
    let mean = times.iter().sum::<f64>() / times.len() as f64;
    let mut sorted = times.clone();
    sorted.sort_by(f64::total_cmp);
    let median = if sorted.len() % 2 == 1 {
        sorted[sorted.len() / 2]
    } else {
        (sorted[sorted.len() / 2 - 1] + sorted[sorted.len() / 2]) / 2.0
    };
    println!(
        "n={} d={} m={} dtype={:?} kernel={:?} threads={} trace={trace:.10e}",
        args.size.n,
        args.size.d,
        args.size.m,
        args.dtype,
        args.kernel,
        ntk_momentum::gemm_threads()
    );
    println!(
        "mean {:.3} ms, median {:.3} ms, min {:.3} ms, max {:.3} ms over {} calls",
        mean * 1e3,
        median * 1e3,
        sorted[0] * 1e3,
        sorted[sorted.len() - 1] * 1e3,
        times.len()
    );
    println!(
        "nominal GEMM flops per call {flops:.3e}, rate {:.1} GFLOP/s",
        flops / mean / 1e9
    );
    println!("ms_per_call={:.3}", mean * 1e3);
}
