//! Shared parts of the experiment examples (`*_subset`, `width_sweep`):
//! the command line ([`cli`]), the problem set-up ([`problem`]), training
//! and reporting ([`report`]), plots ([`plot`]), and the `*_subset` driver
//! below.

#![allow(dead_code)]

pub mod backend;
pub mod cli;
pub mod plot;
pub mod problem;
pub mod report;
pub mod startup;

use ntk_momentum::data::Dataset;
use ntk_momentum::theory::{self, Method};
use ntk_momentum::Float;

use cli::{CifarArgs, Download, Dtype, Experiment, SubsetArgs};
use problem::{hyperparameters, problem};
use report::{
    claims_report, levels_report, out_dir, race, regime_report, report, spectra_report, train_one, train_tuned,
    write_csv, FIT_LOWER, FIT_UPPER, LEVELS,
};

/// The examples' result type: any error, printed as one line.
pub type AnyResult<T> = Result<T, Box<dyn std::error::Error>>;

/// Lower-case short name used in files and tables: gd, hb, nag.
pub fn short(method: Method) -> String {
    method.to_string().to_lowercase()
}

/// Prints a one-line error and exits with code 2.
pub fn exit_on_error(result: AnyResult<()>) {
    if let Err(e) = result {
        eprintln!("error: {e}");
        std::process::exit(2);
    }
}

/// Stability margin of the best-tuning search: lr * lambda_max at most 90 %
/// of the method's stability limit.
pub const TUNING_MARGIN: f64 = 0.1;

/// Runs one `*_subset` experiment end to end (CIFAR-10 with `--download`).
pub fn subset_experiment(dataset: Dataset, example: &str) {
    startup::quiet_on_closed_stdout();
    let (args, fetch) = if dataset == Dataset::Cifar10 {
        let a: CifarArgs = startup::parse_args();
        (a.experiment, Some(a.download))
    } else {
        (startup::parse_args::<SubsetArgs>().experiment, None)
    };
    exit_on_error(match args.dtype {
        Dtype::F32 => subset::<f32>(dataset, example, &args, fetch.as_ref()),
        Dtype::F64 => subset::<f64>(dataset, example, &args, fetch.as_ref()),
    });
}

fn subset<T: Float>(dataset: Dataset, example: &str, args: &Experiment, fetch: Option<&Download>) -> AnyResult<()> {
    args.check()?;
    let methods = &args.optimizers;
    let out = out_dir(args, example)?;
    let p = problem::<T>(dataset, args, fetch, None)?;
    println!("{}", p.description);
    let (lr, momentum, why) = hyperparameters(&p.spectrum, args);
    println!("{why}");
    for &m in methods {
        let beta = if m == Method::GradientDescent { 0.0 } else { momentum };
        let stable = theory::max_stable_lr(m, beta, p.spectrum.lambda_max)?;
        if lr >= stable {
            println!(
                "warning: lr {lr:.3e} is above {}'s stability limit {stable:.3e} for lambda_max(H(W_0))",
                short(m)
            );
        }
    }
    let mut results = Vec::new();
    for &m in methods {
        results.push(train_one(&p, m, lr, momentum, args)?);
    }
    println!();
    print!("{}", report(&results));
    print!("{}", spectra_report(&p, &results));
    println!(
        "rate pred: spectral radius from H(W_0) (the asymptotic rate); rate traj: the linearized NTK prediction of the \
         whole trajectory fitted over the same window as rate meas, the rate fitted to the measured losses between \
         {FIT_UPPER:.0e} and {FIT_LOWER:.0e} of the initial loss."
    );
    println!();
    print!("{}", levels_report(&p, &results, args.steps)?);
    let by = |m: Method| results.iter().position(|r| r.method == m);
    if let (Some(h), Some(n)) = (by(Method::HeavyBall), by(Method::Nesterov)) {
        let (hb, nag) = (&results[h], &results[n]);
        if let Ok(sp) = theory::predicted_speedup(hb.predicted_rate, nag.predicted_rate) {
            println!(
                "Predicted asymptotic NAG-over-HB speed-up at the shared tuning: ln(rho_NAG) / ln(rho_HB) = {sp:.3} \
                 (rho_HB {:.5}, rho_NAG {:.5}; exponents 1 - rho {:.4e} and {:.4e}).",
                hb.predicted_rate,
                nag.predicted_rate,
                1.0 - hb.predicted_rate,
                1.0 - nag.predicted_rate
            );
        }
        println!("Shared tuning, HB vs NAG (isolates the gradient correction):");
        print!("{}", race(hb, nag, &p.residual, args.steps)?);
    }
    println!();
    print!("{}", regime_report(&results));
    println!();
    print!("{}", claims_report(&results, &p.residual, args.steps)?);
    if !args.no_tuning && by(Method::HeavyBall).is_some() && by(Method::Nesterov).is_some() {
        let level = LEVELS[LEVELS.len() - 1];
        let mut tuned = Vec::new();
        for m in [Method::HeavyBall, Method::Nesterov] {
            let t = theory::best_tuning(m, &p.residual, level, args.steps, TUNING_MARGIN)?;
            println!(
                "{}* = {} at its own best tuning for {level:.0e} of L_0 within {} steps (stability margin {:.0} %): \
                 lr = {:.4e} (lr * lambda_max = {:.3}), momentum = {:.6}, predicted {} steps, rho = {:.5}",
                short(m),
                m,
                args.steps,
                100.0 * TUNING_MARGIN,
                t.lr,
                t.lr * p.spectrum.lambda_max,
                t.momentum,
                t.steps.map_or("> budget".into(), |s| s.to_string()),
                t.rate
            );
            tuned.push(train_tuned(&p, &t, args)?);
        }
        print!("{}", levels_report(&p, &tuned, args.steps)?);
        println!("Each at its own best tuning, HB* vs NAG*:");
        print!("{}", race(&tuned[0], &tuned[1], &p.residual, args.steps)?);
        print!("{}", regime_report(&tuned));
        results.extend(tuned);
    }
    write_csv(&out.join("history.csv"), &results)?;
    plot::loss_svg(&out.join("loss.svg"), &p.title, &results)?;
    println!(
        "wrote {} and {}",
        out.join("history.csv").display(),
        out.join("loss.svg").display()
    );
    if args.data_dir.is_none() {
        println!(
            "This ran on the real subset embedded in the crate. For more data, point --data-dir at the official {} files, e.g. \
             `cargo run --release --example {example} -- --data-dir <dir> --n 1000 --width 4096`.",
            dataset
        );
    }
    Ok(())
}
