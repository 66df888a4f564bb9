//! Training each optimizer of an experiment with its prediction, and the
//! tables, CSV and summary the examples print and write.

use std::fmt::Write as _;
use std::path::{Path, PathBuf};

use nalgebra::DMatrix;
use ntk_momentum::theory::{self, Method};
use ntk_momentum::train::{ProgressBar, Trainer};
use ntk_momentum::{Error, Float, GradientDescent, HeavyBall, History, Nesterov, Optimizer};

use super::cli::Experiment;
use super::problem::Problem;
use super::{short, AnyResult};

/// One trained optimizer with its prediction.
pub struct RunResult {
    pub method: Method,
    pub history: History,
    pub predicted_rate: f64,
    pub predicted_losses: Vec<f64>,
    pub diverged: Option<String>,
}

/// Trains one optimizer from the problem's initial network.
pub fn train_one<T: Float>(
    problem: &Problem<T>,
    method: Method,
    lr: f64,
    momentum: f64,
    args: &Experiment,
) -> AnyResult<RunResult> {
    let beta = if method == Method::GradientDescent {
        0.0
    } else {
        momentum
    };
    let predicted_rate = theory::rate(method, lr, beta, &problem.spectrum.eigenvalues)?;
    let predicted_losses = theory::predicted_losses(
        method,
        lr,
        beta,
        &problem.spectrum.eigenvalues,
        &problem.eigenvectors,
        &problem.xi0,
        args.steps,
    )?;
    let optimizer: Box<dyn Optimizer<DMatrix<T>> + Send> = match method {
        Method::GradientDescent => Box::new(GradientDescent::new(lr)?),
        Method::HeavyBall => Box::new(HeavyBall::new(lr, beta)?),
        Method::Nesterov => Box::new(Nesterov::new(lr, beta)?),
    };
    let (history, diverged) = run_with(problem, optimizer, method, args)?;
    Ok(RunResult {
        method,
        history,
        predicted_rate,
        predicted_losses,
        diverged,
    })
}

fn run_with<T: Float, O: Optimizer<DMatrix<T>>>(
    problem: &Problem<T>,
    optimizer: O,
    method: Method,
    args: &Experiment,
) -> AnyResult<(History, Option<String>)> {
    let mut trainer = Trainer::new(problem.model.clone(), optimizer)
        .max_steps(args.steps)
        .parameterization(args.param)
        .diagnostics_every(args.steps.div_ceil(10).max(1));
    if !args.quiet {
        trainer = trainer.observer(ProgressBar::new(&short(method)));
    }
    match trainer.run(&problem.x, &problem.y) {
        Ok(h) => Ok((h, None)),
        Err(Error::Diverged {
            history, reason, step, ..
        }) => Ok((*history, Some(format!("diverged at step {step}: {reason}")))),
        Err(e) => Err(e.into()),
    }
}

/// Window of the rate fits: from 1e-1 of the initial loss (past the
/// transient) down to 1e-12 (above the rounding floor).
pub const FIT_UPPER: f64 = 1e-1;
/// See [`FIT_UPPER`].
pub const FIT_LOWER: f64 = 1e-12;

fn fmt_opt_usize(v: Option<usize>) -> String {
    v.map_or("-".into(), |s| s.to_string())
}

fn loss_at(h: &History, step: usize) -> String {
    h.losses().get(step).map_or("-".into(), |l| format!("{l:.3e}"))
}

/// The result table of one experiment.
pub fn report(results: &[RunResult]) -> String {
    let mut s = String::new();
    let _ = writeln!(
        s,
        "{:<4} {:>10} {:>10} {:>10} {:>10} {:>8} {:>8} {:>9} {:>9} {:>9}",
        "opt", "loss@0", "loss@10", "loss@100", "loss@last", "->1e-2", "->1e-4", "rate pred", "rate traj", "rate meas"
    );
    for r in results {
        let h = &r.history;
        let fit = theory::measured_rate(h.losses(), FIT_UPPER, FIT_LOWER).ok();
        let window = fit.as_ref().map(|f| f.window);
        // The predicted trajectory fitted over the same window: the
        // apples-to-apples comparison (the spectral rate is the asymptote).
        let traj = window.and_then(|(a, b)| {
            let p = &r.predicted_losses;
            (b < p.len())
                .then(|| theory::measured_rate(&p[..=b], FIT_UPPER, FIT_LOWER).ok())
                .flatten()
                .map(|f| f.rate)
                .filter(|_| a < b)
        });
        let _ = writeln!(
            s,
            "{:<4} {:>10} {:>10} {:>10} {:>10} {:>8} {:>8} {:>9.5} {:>9} {:>9}",
            short(r.method),
            loss_at(h, 0),
            loss_at(h, 10),
            loss_at(h, 100),
            h.final_loss().map_or("-".into(), |l| format!("{l:.3e}")),
            fmt_opt_usize(h.steps_to_fraction(1e-2)),
            fmt_opt_usize(h.steps_to_fraction(1e-4)),
            r.predicted_rate,
            traj.map_or("-".into(), |v| format!("{v:.5}")),
            fit.as_ref().map_or("-".into(), |f| format!("{:.5}", f.rate)),
        );
        if let Some(d) = &r.diverged {
            let _ = writeln!(s, "     {d}");
        }
    }
    let hb = results.iter().find(|r| r.method == Method::HeavyBall);
    let nag = results.iter().find(|r| r.method == Method::Nesterov);
    if let (Some(hb), Some(nag)) = (hb, nag) {
        let mut measurable = false;
        for f in [1e-1, 1e-2, 1e-4, 1e-8] {
            if let Ok(sp) = theory::speedup(hb.history.losses(), nag.history.losses(), f) {
                let _ = writeln!(
                    s,
                    "NAG over HB speed-up to {f:.0e} of the initial loss: {sp:.2}x (ratio of steps)"
                );
                measurable = true;
            }
        }
        if !measurable {
            let _ = writeln!(
                s,
                "NAG over HB speed-up: not measurable (HB or NAG did not reach 1e-1 of the initial loss)"
            );
        }
    }
    s
}

/// The spectra and diagnostics summary.
pub fn spectra_report<T: Float>(p: &Problem<T>, results: &[RunResult]) -> String {
    let mut s = String::new();
    let _ = writeln!(
        s,
        "H(W_0): lambda_min {:.4e}, lambda_max {:.4e}, kappa {:.4e}",
        p.spectrum.lambda_min, p.spectrum.lambda_max, p.spectrum.kappa
    );
    let _ = writeln!(
        s,
        "H_inf : lambda_min {:.4e}, lambda_max {:.4e}, kappa {:.4e}",
        p.infinite.lambda_min, p.infinite.lambda_max, p.infinite.kappa
    );
    for r in results {
        if let Some(d) = r.history.diagnostics().last() {
            let _ = writeln!(
                s,
                "{:<4} at step {:>4}: ||W_t - W_0||_F {:.4e}, max_r ||w_r(t) - w_r(0)|| {:.4e}, activations flipped {:.4}%, NTK drift {}",
                short(r.method),
                d.step,
                d.weight_distance,
                d.max_neuron_distance,
                100.0 * d.activation_flip_fraction,
                d.ntk_drift.map_or("-".into(), |v| format!("{v:.4e}"))
            );
        }
    }
    s
}

/// Writes `history.csv`: optimizer, step, loss, predicted loss, elapsed seconds.
pub fn write_csv(path: &Path, results: &[RunResult]) -> AnyResult<()> {
    let mut s = String::from("optimizer,step,loss,predicted_loss,elapsed_seconds\n");
    for r in results {
        for (t, (&l, &e)) in r.history.losses().iter().zip(r.history.elapsed()).enumerate() {
            let p = r.predicted_losses.get(t).map_or(String::new(), |v| format!("{v:e}"));
            let _ = writeln!(s, "{},{t},{l:e},{p},{e:.6}", short(r.method));
        }
    }
    std::fs::write(path, s).map_err(|e| format!("cannot write {}: {e}", path.display()).into())
}

/// The output directory (created).
pub fn out_dir(args: &Experiment, example: &str) -> AnyResult<PathBuf> {
    let dir = args
        .out
        .clone()
        .unwrap_or_else(|| PathBuf::from("target/experiments").join(example));
    std::fs::create_dir_all(&dir).map_err(|e| format!("cannot create --out {}: {e}", dir.display()))?;
    Ok(dir)
}
