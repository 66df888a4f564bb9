//! Training each optimizer of an experiment with its prediction, and the
//! tables, CSV and summary the examples print and write.

use std::fmt::Write as _;
use std::path::{Path, PathBuf};

use nalgebra::DMatrix;
use ntk_momentum::theory::{self, BestTuning, Method, StepTolerance, Verdict};
use ntk_momentum::train::{ProgressBar, Trainer};
use ntk_momentum::{Error, Float, GradientDescent, HeavyBall, History, Nesterov, Optimizer};

use super::cli::Experiment;
use super::problem::Problem;
use super::{short, AnyResult};

/// One trained optimizer with its prediction.
pub struct RunResult {
    pub method: Method,
    /// Short label for tables: the method (`hb`), with `*` for a run at the
    /// method's own best tuning.
    pub label: String,
    pub lr: f64,
    /// β (0 for GD).
    pub momentum: f64,
    pub history: History,
    pub predicted_rate: f64,
    pub predicted_losses: Vec<f64>,
    pub diverged: Option<String>,
    /// The verdict (`Err`: why there is none, e.g. the run diverged).
    pub verdict: Result<Verdict, String>,
}

/// Relative tolerance of the step counts the examples compare (10 % or
/// [`StepTolerance::default`]'s 2 steps).
pub const REGIME_TOLERANCE: f64 = 0.1;

/// The loss levels (fractions of L_0) at which steps are predicted and measured.
pub const LEVELS: [f64; 3] = [1e-1, 1e-2, 1e-4];

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
    // From ξ_0 projected once (predicted_losses would re-check V's
    // orthonormality, O(n³), for every run).
    let predicted_losses = problem.residual.losses(method, lr, beta, args.steps)?;
    let optimizer: Box<dyn Optimizer<DMatrix<T>> + Send> = match method {
        Method::GradientDescent => Box::new(GradientDescent::new(lr)?),
        Method::HeavyBall => Box::new(HeavyBall::new(lr, beta)?),
        Method::Nesterov => Box::new(Nesterov::new(lr, beta)?),
    };
    let (history, diverged, verdict) = run_with(problem, optimizer, method, args)?;
    Ok(RunResult {
        method,
        label: short(method),
        lr,
        momentum: beta,
        history,
        predicted_rate,
        predicted_losses,
        diverged,
        verdict,
    })
}

fn run_with<T: Float, O: Optimizer<DMatrix<T>>>(
    problem: &Problem<T>,
    optimizer: O,
    method: Method,
    args: &Experiment,
) -> AnyResult<(History, Option<String>, Result<Verdict, String>)> {
    let mut trainer = Trainer::new(problem.model.clone(), optimizer)
        .max_steps(args.steps)
        .parameterization(args.param)
        .diagnostics_every(args.steps.div_ceil(10).max(1))
        .enclose_prediction(true);
    if !args.quiet {
        trainer = trainer.observer(ProgressBar::new(&short(method)));
    }
    let (history, diverged) = match trainer.run(&problem.x, &problem.y) {
        Ok(h) => (h, None),
        Err(Error::Diverged {
            history, reason, step, ..
        }) => (*history, Some(format!("diverged at step {step}: {reason}"))),
        Err(e) => return Err(e.into()),
    };
    let verdict = trainer
        .verdict(&LEVELS, StepTolerance::default())
        .map_err(|e| e.to_string());
    Ok((history, diverged, verdict))
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
            r.label,
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
                r.label,
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
            let _ = writeln!(s, "{},{t},{l:e},{p},{e:.6}", r.label);
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

/// Trains `method` at its own best tuning (a [`theory::best_tuning`] result).
pub fn train_tuned<T: Float>(problem: &Problem<T>, tuning: &BestTuning, args: &Experiment) -> AnyResult<RunResult> {
    let mut r = train_one(problem, tuning.method, tuning.lr, tuning.momentum, args)?;
    r.label = format!("{}*", short(tuning.method));
    Ok(r)
}

/// Predicted (linearized, from H(W_0) and the actual ξ_0) against measured
/// steps to each of [`LEVELS`], with the prediction split into the rate
/// alone and the transient.
pub fn levels_report<T: Float>(p: &Problem<T>, results: &[RunResult], budget: usize) -> AnyResult<String> {
    let mut s = String::new();
    let _ = writeln!(
        s,
        "Steps to a fraction of L_0: predicted (linearized dynamics from H(W_0) and the actual xi_0) = rate alone \
         ln(level) / (2 ln rho) + transient; measured.",
    );
    let _ = writeln!(
        s,
        "{:<5} {:>6} {:>7} {:>10} {:>10} {:>8} {:>8} {:>7}",
        "opt", "level", "pred", "rate-only", "transient", "stiff %", "meas", "error"
    );
    for r in results {
        for level in LEVELS {
            let pr = p.residual.step_prediction(r.method, r.lr, r.momentum, level, budget)?;
            let measured = r.history.steps_to_fraction(level);
            let error = match (pr.steps, measured) {
                (Some(a), Some(m)) if m > 0 => format!("{:+.0}%", 100.0 * (a as f64 / m as f64 - 1.0)),
                _ => "-".into(),
            };
            let _ = writeln!(
                s,
                "{:<5} {:>6.0e} {:>7} {:>10} {:>10} {:>8.1} {:>8} {:>7}",
                r.label,
                level,
                fmt_opt_usize(pr.steps),
                pr.asymptotic_steps.map_or("-".into(), |a| format!("{a:.1}")),
                pr.transient_steps.map_or("-".into(), |a| format!("{a:+.1}")),
                100.0 * pr.stiff_share,
                fmt_opt_usize(measured),
                error
            );
        }
    }
    Ok(s)
}

/// Which of two runs reaches each level first, measured and predicted.
pub fn race(a: &RunResult, b: &RunResult, residual: &theory::ModalResidual, budget: usize) -> AnyResult<String> {
    let mut s = String::new();
    for level in LEVELS {
        let pa = residual.steps_to(a.method, a.lr, a.momentum, level, budget)?;
        let pb = residual.steps_to(b.method, b.lr, b.momentum, level, budget)?;
        let (ma, mb) = (a.history.steps_to_fraction(level), b.history.steps_to_fraction(level));
        let verdict = |x: Option<usize>, y: Option<usize>| match (x, y) {
            (Some(x), Some(y)) if x < y => {
                format!("{} faster ({x} vs {y} steps, {:.2}x)", a.label, y as f64 / x as f64)
            }
            (Some(x), Some(y)) if x > y => {
                format!("{} faster ({y} vs {x} steps, {:.2}x)", b.label, x as f64 / y as f64)
            }
            (Some(x), Some(_)) => format!("tie ({x} steps)"),
            (Some(_), None) => format!("only {} reaches it", a.label),
            (None, Some(_)) => format!("only {} reaches it", b.label),
            (None, None) => "neither reaches it".into(),
        };
        let _ = writeln!(
            s,
            "  to {level:.0e} of L_0: measured {}; predicted {}",
            verdict(ma, mb),
            verdict(pa, pb)
        );
    }
    Ok(s)
}

/// The verdict of every run, one paragraph each.
pub fn regime_report(results: &[RunResult]) -> String {
    let mut s = String::new();
    for r in results {
        match &r.verdict {
            Ok(v) => {
                let _ = writeln!(s, "[{}] {v}", r.label);
            }
            Err(why) => {
                let _ = writeln!(s, "[{}] no verdict ({why})", r.label);
            }
        }
    }
    s
}

/// Checks the claims the shared-tuning runs are meant to show, in words:
/// GD slowest, NAG no slower than HB at each level, predictions within
/// the step tolerance of the measured steps, every run certified by its
/// verdict; and,
/// where a check fails, why.
pub fn claims_report(results: &[RunResult], residual: &theory::ModalResidual, budget: usize) -> AnyResult<String> {
    let mut s = String::new();
    let find = |m: Method| results.iter().find(|r| r.method == m && !r.label.ends_with('*'));
    let (Some(gd), Some(hb), Some(nag)) = (
        find(Method::GradientDescent),
        find(Method::HeavyBall),
        find(Method::Nesterov),
    ) else {
        return Ok("Claim check: needs gd, hb and nag (--optimizers gd,hb,nag).\n".into());
    };
    let yes = |b: bool| if b { "yes" } else { "NO" };
    let steps = |r: &RunResult, level: f64| r.history.steps_to_fraction(level);
    let gd_slowest = LEVELS
        .iter()
        .all(|&l| match (steps(gd, l), steps(hb, l), steps(nag, l)) {
            (Some(g), Some(h), Some(n)) => g >= h && g >= n,
            (None, _, _) => true,
            _ => false,
        });
    let _ = writeln!(s, "Claim check (shared tuning, measured):");
    let _ = writeln!(s, "  GD slowest at every level: {}", yes(gd_slowest));
    let mut nag_not_slower = true;
    for level in LEVELS {
        let (h, n) = (steps(hb, level), steps(nag, level));
        let ok = matches!((h, n), (Some(h), Some(n)) if n <= h) || (h.is_none() && n.is_some());
        nag_not_slower &= ok;
        let (ph, pn) = (
            residual.steps_to(Method::HeavyBall, hb.lr, hb.momentum, level, budget)?,
            residual.steps_to(Method::Nesterov, nag.lr, nag.momentum, level, budget)?,
        );
        let _ = writeln!(
            s,
            "  NAG no slower than HB to {level:.0e} of L_0: {} (measured HB {}, NAG {}; predicted HB {}, NAG {})",
            yes(ok),
            fmt_opt_usize(h),
            fmt_opt_usize(n),
            fmt_opt_usize(ph),
            fmt_opt_usize(pn)
        );
        if !ok && h.is_none() && n.is_none() {
            let far = 100 * budget.max(1);
            let (fh, fn_) = (
                residual.steps_to(Method::HeavyBall, hb.lr, hb.momentum, level, far)?,
                residual.steps_to(Method::Nesterov, nag.lr, nag.momentum, level, far)?,
            );
            let _ = writeln!(
                s,
                "    why: neither reached it within the {budget} steps of this run (predicted HB {}, NAG {} steps); \
                 run longer with --steps",
                fmt_opt_usize(fh),
                fmt_opt_usize(fn_)
            );
        } else if !ok {
            let predicted_too = matches!((ph, pn), (Some(ph), Some(pn)) if pn > ph);
            let why = if predicted_too {
                "the linearized prediction says so too: at this (lr, momentum) the gradient correction does not pay \
                 off at this level (see theory::step_prediction; e.g. NAG critically damped at lambda_min carries a \
                 (t + 1) rho^t factor)"
            } else if nag.verdict.as_ref().map_or(true, |v| !v.holds()) {
                "the prediction from H(W_0) says NAG is faster, but the verdict does not certify it for this run \
                 (below): the kernel drift and the activation flips moved the steps"
            } else {
                "the prediction from H(W_0) says NAG is faster and the verdict certifies NAG's steps; HB's steps \
                 then moved within the tolerance the verdict admits"
            };
            let _ = writeln!(s, "    why: {why}");
        }
    }
    let tolerance = StepTolerance::default();
    let mut within = true;
    let mut worst = 0.0_f64;
    for r in [gd, hb, nag] {
        for level in LEVELS {
            let p = residual.steps_to(r.method, r.lr, r.momentum, level, budget)?;
            let m = steps(r, level);
            within &= tolerance.agrees(p, m);
            if let (Some(p), Some(m)) = (p, m) {
                worst = worst.max((p as f64 / m.max(1) as f64 - 1.0).abs());
            }
        }
    }
    let _ = writeln!(
        s,
        "  predicted steps within {:.0} % or {} steps of measured (every method and level): {} (worst {:.1} %)",
        100.0 * tolerance.relative,
        tolerance.steps,
        yes(within),
        100.0 * worst
    );
    let all_in = [gd, hb, nag]
        .iter()
        .all(|r| r.verdict.as_ref().is_ok_and(|v| v.holds()));
    let _ = writeln!(
        s,
        "  every run's prediction certified by its verdict (guaranteed within {:.0} % or {} steps): {}",
        100.0 * tolerance.relative,
        tolerance.steps,
        yes(all_in)
    );
    if !(gd_slowest && nag_not_slower && within && all_in) {
        let _ = writeln!(
            s,
            "  Where a check says NO, this run does not show the claim under these settings; the verdicts and the \
             predicted steps above say whether the theory (at this tuning) or the run (not certified) is the reason."
        );
    }
    Ok(s)
}
