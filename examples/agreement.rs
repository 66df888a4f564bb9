//! Runs the same NAG training in weight space and in kernel space and prints
//! how far apart their losses are (they agree to rounding).
//!
//! ```text
//! cargo run --release --example agreement -- --n 1000 --d 3072 --m 4096 --steps 20
//! ```
//!
//! Synthetic data as in `step_timing` (Gaussian rows scaled to unit norm,
//! labels ±1), f64, step size 1/λ_max(H(W_0)) and momentum 0.9. The last
//! line is `max_relative_loss_difference=<number>`.

mod size;

use clap::Parser;
use ntk_momentum::ntk::Spectrum;
use ntk_momentum::train::{Parameterization, Trainer};
use ntk_momentum::{Nesterov, TwoLayerReLU};

/// Weight space against kernel space.
#[derive(Parser, Debug)]
struct Args {
    /// Problem size and seed.
    #[command(flatten)]
    size: size::Size,
    /// Steps.
    #[arg(long, default_value_t = 20)]
    steps: usize,
}

fn main() {
    let args: Args = size::parse_args();
    size::start(args.steps, 0);
    size::or_exit(compare(&args));
}

/// Runs both parameterizations and prints how far apart their losses are.
fn compare(args: &Args) -> Result<(), ntk_momentum::Error> {
    let (x, y) = ntk_momentum::data::unit_sphere::<f64>(args.size.n, args.size.d, args.size.seed)?;
    let model = TwoLayerReLU::new(args.size.d, args.size.m, args.size.seed)?;
    let lr = 1.0 / Spectrum::of(&model.ntk_gram(&x)?)?.lambda_max;
    let run = |p: Parameterization| {
        Trainer::new(model.clone(), Nesterov::new(lr, 0.9)?)
            .max_steps(args.steps)
            .parameterization(p)
            .diagnostics_every(0)
            .run(&x, &y)
    };
    let weight = run(Parameterization::Weight)?;
    let kernel = run(Parameterization::Kernel)?;
    let max_rel = weight
        .losses()
        .iter()
        .zip(kernel.losses())
        .map(|(w, k)| (w - k).abs() / w.abs())
        .fold(0.0f64, f64::max);
    println!(
        "n={} d={} m={} f64 NAG lr={lr:.4e} momentum=0.9, {} steps: loss {:.6e} -> {:.6e} (weight), {:.6e} (kernel)",
        args.size.n,
        args.size.d,
        args.size.m,
        args.steps,
        weight.losses()[0],
        weight.final_loss().unwrap_or(f64::NAN),
        kernel.final_loss().unwrap_or(f64::NAN)
    );
    println!("max_relative_loss_difference={max_rel:.3e}");
    Ok(())
}
