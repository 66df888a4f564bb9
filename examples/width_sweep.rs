//! How far from the NTK regime is a run? Trains heavy ball and Nesterov at
//! several widths on the same real data and reports, per width, the weight
//! excursion, the activation flips and the NTK drift (which shrink as the
//! width grows), the change of λ_min(H(W_t)), the gap between the measured
//! rate and the linearized prediction over the same window, and the regime
//! verdict of `theory::regime`.
//!
//! ```text
//! cargo run --release --example width_sweep                  # embedded MNIST, n = 200
//! cargo run --release --example width_sweep -- --widths 256,1024,4096,16384 --n 500
//! ```
//!
//! Writes `width_sweep.csv` and `width_sweep.svg` to `--out` (default
//! `target/experiments/width_sweep`).

mod common;

use std::fmt::Write as _;

use clap::Parser;
use common::cli::{Dtype, Experiment};
use common::problem::{hyperparameters, problem};
use common::report::{out_dir, train_one, FIT_LOWER, FIT_UPPER, REGIME_TOLERANCE};
use common::{plot, short, AnyResult};
use ntk_momentum::data::Dataset;
use ntk_momentum::theory::{self, Method};
use ntk_momentum::Float;

/// The flags of `width_sweep`.
#[derive(Parser, Debug, Clone)]
#[command(about = "Train HB and NAG at several widths and show how width controls the distance from the NTK regime")]
struct Args {
    #[command(flatten)]
    experiment: Experiment,
    /// Dataset: cifar10, mnist or fashion-mnist.
    #[arg(long, default_value = "mnist")]
    dataset: Dataset,
    /// Widths (comma-separated).
    #[arg(long, value_delimiter = ',', default_value = "256,1024,4096,16384",
          value_parser = clap::value_parser!(u64).range(1..))]
    widths: Vec<u64>,
}

struct Row {
    width: usize,
    method: Method,
    weight_distance: f64,
    max_neuron_distance: f64,
    flips: f64,
    drift: f64,
    predicted: f64,
    measured: f64,
    gap: f64,
    verdict: Option<bool>,
    width_needed: Option<usize>,
    lambda_min_change: f64,
}

fn sweep<T: Float>(args: &Args) -> AnyResult<()> {
    args.experiment.check()?;
    let dataset = args.dataset;
    let widths: Vec<usize> = args.widths.iter().map(|&w| w as usize).collect();
    let mut args = args.experiment.clone();
    args.n = Some(args.n.unwrap_or(200));
    let out = out_dir(&args, "width_sweep")?;
    let mut rows = Vec::new();
    for &width in &widths {
        let p = problem::<T>(dataset, &args, None, Some(width))?;
        let (lr, momentum, why) = hyperparameters(&p.spectrum, &args);
        println!("{}\n  {why}", p.description);
        for method in [Method::HeavyBall, Method::Nesterov] {
            let r = train_one(&p, method, lr, momentum, &args)?;
            let d = r.history.diagnostics().last().cloned();
            let fit = theory::measured_rate(r.history.losses(), FIT_UPPER, FIT_LOWER).ok();
            let measured = fit.as_ref().map_or(f64::NAN, |f| f.rate);
            // Against the linearized trajectory fitted over the same window
            // (the spectral rate alone misses the transient in the window).
            let gap = theory::regime(
                r.method,
                r.lr,
                r.momentum,
                &r.history,
                &r.predicted_losses,
                REGIME_TOLERANCE,
            )
            .ok()
            .and_then(|v| v.exponent_gap)
            .map_or(f64::NAN, f64::abs);
            let lmin = |d: Option<&ntk_momentum::Diagnostics>| d.and_then(|d| d.ntk_lambda_min);
            let lambda_min_change = match (lmin(r.history.diagnostics().first()), lmin(d.as_ref())) {
                (Some(a), Some(b)) => b / a - 1.0,
                _ => f64::NAN,
            };
            let verdict = r.verdict.as_ref().ok();
            rows.push(Row {
                width,
                method,
                weight_distance: d.as_ref().map_or(f64::NAN, |d| d.weight_distance),
                max_neuron_distance: d.as_ref().map_or(f64::NAN, |d| d.max_neuron_distance),
                flips: d.as_ref().map_or(f64::NAN, |d| d.activation_flip_fraction),
                drift: d.as_ref().and_then(|d| d.ntk_drift).unwrap_or(f64::NAN),
                predicted: r.predicted_rate,
                measured,
                gap,
                verdict: verdict.map(|v| v.holds()),
                width_needed: verdict.and_then(|v| v.width_needed()),
                lambda_min_change,
            });
        }
    }
    let mut table = String::new();
    let mut csv = String::from(
        "width,optimizer,weight_distance,max_neuron_distance,activation_flip_fraction,ntk_drift,predicted_rate,measured_rate,rate_gap\n",
    );
    let _ = writeln!(
        table,
        "{:>6} {:<4} {:>12} {:>12} {:>9} {:>10} {:>9} {:>9} {:>8} {:>10} {:>7} {:>9}",
        "width",
        "opt",
        "||W-W0||_F",
        "max||w_r-.||",
        "flips %",
        "NTK drift",
        "rate pred",
        "rate meas",
        "gap %",
        "lmin chg %",
        "verdict",
        "m needed"
    );
    for r in &rows {
        let _ = writeln!(
            table,
            "{:>6} {:<4} {:>12.4e} {:>12.4e} {:>9.4} {:>10.3e} {:>9.5} {:>9.5} {:>8.2} {:>10.1} {:>7} {:>9}",
            r.width,
            short(r.method),
            r.weight_distance,
            r.max_neuron_distance,
            100.0 * r.flips,
            r.drift,
            r.predicted,
            r.measured,
            100.0 * r.gap,
            100.0 * r.lambda_min_change,
            match r.verdict {
                Some(true) => "holds",
                Some(false) => "no",
                None => "-",
            },
            r.width_needed.map_or("-".into(), |w| w.to_string())
        );
        let _ = writeln!(
            csv,
            "{},{},{:e},{:e},{:e},{:e},{:e},{:e},{:e}",
            r.width,
            short(r.method),
            r.weight_distance,
            r.max_neuron_distance,
            r.flips,
            r.drift,
            r.predicted,
            r.measured,
            r.gap
        );
    }
    println!("\n{table}");
    println!(
        "After {} steps. rate pred: spectral radius of H(W_0); rate meas: fitted between {FIT_UPPER:.0e} and {FIT_LOWER:.0e} of \
         the initial loss; gap: |(1 - rate meas) - (1 - rate traj)| / (1 - rate traj), with rate traj the linearized \
         trajectory from H(W_0) fitted over the same steps; lmin chg: change of lambda_min(H(W_t)) over the run; verdict: \
         whether the steps to 1e-1, 1e-2 and 1e-4 of L_0 are guaranteed within 10 % or 2 steps of the prediction \
         (Trainer::verdict); m needed: the width at which they are expected to be (Verdict::width_needed, an \
         estimate from this run assuming the deviation scales like 1/sqrt(m)).",
        args.steps
    );
    let csv_path = out.join("width_sweep.csv");
    std::fs::write(&csv_path, csv).map_err(|e| format!("cannot write {}: {e}", csv_path.display()))?;
    let series = |f: &dyn Fn(&Row) -> f64| -> Vec<(String, Vec<f64>)> {
        [Method::HeavyBall, Method::Nesterov]
            .iter()
            .map(|&m| (short(m), rows.iter().filter(|r| r.method == m).map(f).collect()))
            .collect()
    };
    let panels = vec![
        ("NTK drift", series(&|r: &Row| r.drift)),
        ("max_r ||w_r(t) - w_r(0)||", series(&|r: &Row| r.max_neuron_distance)),
        ("activation flips (fraction)", series(&|r: &Row| r.flips)),
        ("rate gap (relative)", series(&|r: &Row| r.gap)),
    ];
    let svg_path = out.join("width_sweep.svg");
    plot::sweep_svg(
        &svg_path,
        &format!("{dataset}: HB and NAG against width"),
        &widths,
        &panels,
    )?;
    println!("wrote {} and {}", csv_path.display(), svg_path.display());
    Ok(())
}

fn main() {
    common::startup::quiet_on_closed_stdout();
    let args: Args = common::startup::parse_args();
    common::exit_on_error(match args.experiment.dtype {
        Dtype::F32 => sweep::<f32>(&args),
        Dtype::F64 => sweep::<f64>(&args),
    });
}
