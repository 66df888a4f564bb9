//! Times full-batch training steps of the two-layer ReLU network.
//!
//! ```text
//! cargo run --release --example step_timing -- --n 1000 --d 3072 --m 4096 \
//!     --dtype f64 --param weight --optimizer nag --steps 10 --threads 2
//! ```
//!
//! Synthetic data (Gaussian rows scaled to unit norm, labels ±1, seeded). It
//! runs `--warmup` steps, then `--steps` more, and reports the mean time of
//! the latter from the training loop's own per-step clock. The last line is
//! `ms_per_step=<number>`.

mod size;

use clap::{Parser, ValueEnum};
use nalgebra::{DMatrix, DVector};
use ntk_momentum::train::{auto_parameterization, flops_per_step, Parameterization, Trainer};
use ntk_momentum::{Float, GradientDescent, HeavyBall, Nesterov, Optimizer, TwoLayerReLU};
use size::Dtype;

#[derive(Clone, Copy, Debug, ValueEnum)]
enum Param {
    Weight,
    Kernel,
    Auto,
}

#[derive(Clone, Copy, Debug, ValueEnum)]
enum Method {
    Gd,
    Hb,
    Nag,
}

/// Times full-batch training steps.
#[derive(Parser, Debug)]
struct Args {
    /// Problem size and seed.
    #[command(flatten)]
    size: size::Size,
    /// Float type.
    #[arg(long, value_enum, default_value_t = Dtype::F64)]
    dtype: Dtype,
    /// Parameterization.
    #[arg(long, value_enum, default_value_t = Param::Auto)]
    param: Param,
    /// Optimizer.
    #[arg(long, value_enum, default_value_t = Method::Nag)]
    optimizer: Method,
    /// Timed steps.
    #[arg(long, default_value_t = 10)]
    steps: usize,
    /// Untimed warm-up steps.
    #[arg(long, default_value_t = 2)]
    warmup: usize,
    /// GEMM threads (0 = all cores).
    #[arg(long, default_value_t = 0)]
    threads: usize,
    /// Library of the large matrix products.
    #[arg(long, value_enum, default_value_t = size::backend::Backend::Rust)]
    gemm_backend: size::backend::Backend,
}

fn time<T: Float, O: Optimizer<DMatrix<T>>>(
    args: &Args,
    optimizer: O,
) -> Result<(f64, Parameterization), ntk_momentum::Error> {
    // X (n × d) on the unit sphere and y = ±1 (n = 0 or a size beyond the
    // memory budget is an error, reported as one line).
    let (x, y): (DMatrix<T>, DVector<T>) = ntk_momentum::data::unit_sphere(args.size.n, args.size.d, args.size.seed)?;
    let model = TwoLayerReLU::<T>::init(args.size.d, args.size.m, args.size.seed)?;
    let p = match args.param {
        Param::Weight => Parameterization::Weight,
        Param::Kernel => Parameterization::Kernel,
        Param::Auto => Parameterization::Auto,
    };
    let mut trainer = Trainer::new(model, optimizer)
        .parameterization(p)
        .max_steps(args.warmup)
        .diagnostics_every(0)
        .divergence_factor(f64::MAX)?;
    trainer.run(&x, &y)?;
    trainer.set_max_steps(args.warmup + args.steps + 1);
    let history = trainer.run(&x, &y)?;
    // A continued run first recomputes the loss at the step it resumes from;
    // time from the first step it takes, to count whole steps only.
    let e = history.elapsed();
    let per_step = (e[args.warmup + args.steps + 1] - e[args.warmup + 1]) / args.steps as f64;
    Ok((
        per_step * 1e3,
        trainer.resolved_parameterization().expect("the run started"),
    ))
}

fn run<T: Float>(args: &Args) -> Result<(f64, Parameterization), ntk_momentum::Error> {
    let lr = 1e-3;
    match args.optimizer {
        Method::Gd => time::<T, _>(args, GradientDescent::new(lr)?),
        Method::Hb => time::<T, _>(args, HeavyBall::new(lr, 0.9)?),
        Method::Nag => time::<T, _>(args, Nesterov::new(lr, 0.9)?),
    }
}

fn main() {
    let args: Args = size::parse_args();
    size::start(args.steps, args.threads);
    size::or_exit(args.gemm_backend.select());
    let result = match args.dtype {
        Dtype::F32 => run::<f32>(&args),
        Dtype::F64 => run::<f64>(&args),
    };
    let (ms, p) = size::or_exit(result);
    {
        let flops = flops_per_step(args.size.n, args.size.m, args.size.d, p);
        println!(
            "n={} d={} m={} dtype={:?} optimizer={:?} param={p} (auto would pick {}) threads={}",
            args.size.n,
            args.size.d,
            args.size.m,
            args.dtype,
            args.optimizer,
            auto_parameterization(args.size.n, args.size.m, args.size.d, args.steps),
            ntk_momentum::gemm_threads()
        );
        println!(
            "GEMM flops per step {:.3e}, effective rate {:.1} GFLOP/s",
            flops,
            flops / (ms * 1e-3) / 1e9
        );
        println!("ms_per_step={ms:.3}");
    }
}
