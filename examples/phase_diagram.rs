//! Where NAG's gradient correction beats heavy ball, and where it does not:
//! over a grid of step sizes η λ_max and momenta β, the asymptotic rates of
//! HB and NAG and the ratio of their predicted step counts to 1e-2 and
//! 1e-6 of L_0, from the spectrum of H(W_0) and the actual initial residual
//! of a real problem (exact linearized dynamics, no training).
//!
//! ```text
//! cargo run --release --example phase_diagram                       # embedded MNIST, n = 500
//! cargo run --release --example phase_diagram -- --dataset cifar10 --grid 64
//! ```
//!
//! Writes `phase_diagram.csv` and `phase_diagram.svg` to `--out` (default
//! `target/experiments/phase_diagram`). In the heat maps blue means NAG needs
//! fewer steps than HB, red more; grey cells are unstable for a method or do
//! not reach the level within `--budget` steps. β grows upwards (log scale
//! in 1 − β). Lines: the stability limits
//! (HB η λ_max = 2(1 + β), NAG 2(1 + β)/(1 + 2β)) and the critical-damping
//! curves of the slowest mode λ_min (HB η λ_min = (1 − √β)², NAG
//! η λ_min = ((1 − β)/(1 + β))²): above a curve that mode is underdamped.

mod common;

use std::fmt::Write as _;

use clap::Parser;
use common::cli::Experiment;
use common::problem::{hyperparameters, problem};
use common::report::out_dir;
use common::AnyResult;
use ntk_momentum::data::Dataset;
use ntk_momentum::theory::{self, Method, ModalResidual};
use rayon::prelude::*;

/// The flags of `phase_diagram`.
#[derive(Parser, Debug, Clone)]
#[command(about = "HB against NAG over a grid of (lr * lambda_max, momentum): rates and predicted step ratios")]
struct Args {
    #[command(flatten)]
    experiment: Experiment,
    /// Dataset: cifar10, mnist or fashion-mnist.
    #[arg(long, default_value = "mnist")]
    dataset: Dataset,
    /// Grid points per axis.
    #[arg(long, default_value_t = 48, value_parser = clap::value_parser!(u64).range(4..=400))]
    grid: u64,
    /// Largest number of steps a prediction follows.
    #[arg(long, default_value_t = 5000)]
    budget: usize,
}

/// Largest η λ_max on the grid (HB's stability limit at β → 1 is 4).
const X_MAX: f64 = 4.0;
/// Smallest 1 − β on the grid (the β axis is logarithmic in 1 − β).
const ONE_MINUS_BETA_MIN: f64 = 1e-3;
/// The two loss levels of the step-count ratios.
const LEVELS: [f64; 2] = [1e-2, 1e-6];

/// One grid cell.
struct Cell {
    x: f64,
    beta: f64,
    rate_hb: f64,
    rate_nag: f64,
    steps: [[Option<usize>; 2]; 2], // [level][hb, nag]
}

fn cell(residual: &ModalResidual, lambda_max: f64, x: f64, beta: f64, budget: usize) -> AnyResult<Cell> {
    let lr = x / lambda_max;
    let rate = |m: Method| theory::rate(m, lr, beta, residual.eigenvalues());
    let (rate_hb, rate_nag) = (rate(Method::HeavyBall)?, rate(Method::Nesterov)?);
    let mut steps = [[None; 2]; 2];
    for (k, &level) in LEVELS.iter().enumerate() {
        for (j, (m, r)) in [(Method::HeavyBall, rate_hb), (Method::Nesterov, rate_nag)]
            .into_iter()
            .enumerate()
        {
            if r < 1.0 {
                steps[k][j] = residual.steps_to(m, lr, beta, level, budget)?;
            }
        }
    }
    Ok(Cell {
        x,
        beta,
        rate_hb,
        rate_nag,
        steps,
    })
}

fn ratio(c: &Cell, level: usize) -> Option<f64> {
    match c.steps[level] {
        [Some(h), Some(n)] if n > 0 => Some(h as f64 / n as f64),
        _ => None,
    }
}

/// Blue (NAG faster) to white to red (HB faster), by log2 of the ratio
/// clamped to ±1.5.
fn colour(value: Option<f64>) -> String {
    let Some(v) = value else {
        return "#bdbdbd".into();
    };
    let t = (v.log2() / 1.5).clamp(-1.0, 1.0);
    let mix = |a: f64, b: f64, t: f64| (a + (b - a) * t).round() as u8;
    let (r, g, b) = if t >= 0.0 {
        (mix(255.0, 33.0, t), mix(255.0, 102.0, t), mix(255.0, 172.0, t))
    } else {
        (mix(255.0, 178.0, -t), mix(255.0, 24.0, -t), mix(255.0, 43.0, -t))
    };
    format!("#{r:02x}{g:02x}{b:02x}")
}

/// A boundary drawn on the panels: η λ_max as a function of β.
type Curve<'a> = dyn Fn(f64) -> f64 + 'a;

/// One heat-map panel with its curves, at (`left`, `top`), `size` pixels square.
#[allow(clippy::too_many_arguments)]
fn panel(
    svg: &mut String,
    cells: &[Cell],
    grid: usize,
    value: &dyn Fn(&Cell) -> Option<f64>,
    title: &str,
    kappa: f64,
    marker: (f64, f64),
    (left, top, size): (f64, f64, f64),
) {
    let px = |x: f64| left + size * x / X_MAX;
    // beta grows upwards: 0 at the bottom, 1 - ONE_MINUS_BETA_MIN at the top.
    let py = |beta: f64| top + size * (1.0 - (1.0 - beta).log10() / ONE_MINUS_BETA_MIN.log10());
    let cw = size / grid as f64;
    let _ = writeln!(
        svg,
        r#"<text x="{}" y="{}" font-size="13" text-anchor="middle">{title}</text>"#,
        left + size / 2.0,
        top - 8.0
    );
    for (i, c) in cells.iter().enumerate() {
        let (ix, iy) = (i % grid, i / grid);
        let _ = writeln!(
            svg,
            r#"<rect x="{:.1}" y="{:.1}" width="{:.1}" height="{:.1}" fill="{}"/>"#,
            left + ix as f64 * cw,
            top + (grid - 1 - iy) as f64 * cw,
            cw + 0.3,
            cw + 0.3,
            colour(value(c)),
        );
    }
    // Curves x(beta) over the beta axis.
    let curve = |f: &dyn Fn(f64) -> f64| -> String {
        (0..=200)
            .map(|k| 1.0 - 10f64.powf(ONE_MINUS_BETA_MIN.log10() * k as f64 / 200.0))
            .filter_map(|b| {
                let x = f(b);
                (x.is_finite() && (0.0..=X_MAX).contains(&x)).then(|| format!("{:.2},{:.2}", px(x), py(b)))
            })
            .collect::<Vec<_>>()
            .join(" ")
    };
    let lines: [(&Curve<'_>, &str, &str); 4] = [
        (&|b| 2.0 * (1.0 + b), "#000000", ""),
        (&|b| 2.0 * (1.0 + b) / (1.0 + 2.0 * b), "#000000", "6,4"),
        (&|b| kappa * (1.0 - b.sqrt()).powi(2), "#2ca02c", ""),
        (&|b| kappa * ((1.0 - b) / (1.0 + b)).powi(2), "#2ca02c", "6,4"),
    ];
    for (f, colour, dash) in lines {
        let _ = writeln!(
            svg,
            r#"<polyline points="{}" fill="none" stroke="{colour}" stroke-width="1.6" stroke-dasharray="{dash}"/>"#,
            curve(f)
        );
    }
    let _ = writeln!(
        svg,
        r#"<circle cx="{:.2}" cy="{:.2}" r="4" fill="none" stroke="black" stroke-width="1.5"/>"#,
        px(marker.0),
        py(marker.1)
    );
    // Axes.
    let _ = writeln!(
        svg,
        r#"<rect x="{left}" y="{top}" width="{size}" height="{size}" fill="none" stroke="black"/>"#
    );
    for x in [0.0, 1.0, 2.0, 3.0, 4.0] {
        let _ = writeln!(
            svg,
            r#"<text x="{:.1}" y="{:.1}" font-size="11" text-anchor="middle">{x}</text>"#,
            px(x),
            top + size + 14.0
        );
    }
    for omb in [1.0, 1e-1, 1e-2, 1e-3] {
        let _ = writeln!(
            svg,
            r#"<text x="{:.1}" y="{:.1}" font-size="11" text-anchor="end">{}</text>"#,
            left - 4.0,
            py(1.0 - omb) + 4.0,
            1.0 - omb
        );
    }
    let _ = writeln!(
        svg,
        r#"<text x="{:.1}" y="{:.1}" font-size="12" text-anchor="middle">lr * lambda_max</text>"#,
        left + size / 2.0,
        top + size + 30.0
    );
}

fn run(args: &Args) -> AnyResult<()> {
    let mut experiment = args.experiment.clone();
    experiment.n = Some(experiment.n.unwrap_or(500));
    experiment.check()?;
    let out = out_dir(&experiment, "phase_diagram")?;
    let p = problem::<f64>(args.dataset, &experiment, None, None)?;
    println!("{}", p.description);
    let (lr, momentum, why) = hyperparameters(&p.spectrum, &experiment);
    println!("marked point (the experiment examples' shared tuning): {why}");
    let grid = args.grid as usize;
    let lambda_max = p.spectrum.lambda_max;
    let points: Vec<(f64, f64)> = (0..grid * grid)
        .map(|i| {
            let (ix, iy) = (i % grid, i / grid);
            let x = X_MAX * (ix as f64 + 0.5) / grid as f64;
            let beta = 1.0 - 10f64.powf(ONE_MINUS_BETA_MIN.log10() * (iy as f64 + 0.5) / grid as f64);
            (x, beta)
        })
        .collect();
    let cells: Vec<Cell> = points
        .par_iter()
        .map(|&(x, beta)| cell(&p.residual, lambda_max, x, beta, args.budget).map_err(|e| e.to_string()))
        .collect::<Result<_, _>>()?;

    let mut csv = String::from(
        "lr_times_lambda_max,momentum,rate_hb,rate_nag,steps_hb_1e-2,steps_nag_1e-2,ratio_hb_over_nag_1e-2,steps_hb_1e-6,steps_nag_1e-6,ratio_hb_over_nag_1e-6\n",
    );
    let cell_str = |v: Option<usize>| v.map_or(String::new(), |v| v.to_string());
    for c in &cells {
        let _ = writeln!(
            csv,
            "{:.6},{:.8},{:.8},{:.8},{},{},{},{},{},{}",
            c.x,
            c.beta,
            c.rate_hb,
            c.rate_nag,
            cell_str(c.steps[0][0]),
            cell_str(c.steps[0][1]),
            ratio(c, 0).map_or(String::new(), |r| format!("{r:.6}")),
            cell_str(c.steps[1][0]),
            cell_str(c.steps[1][1]),
            ratio(c, 1).map_or(String::new(), |r| format!("{r:.6}")),
        );
    }
    let csv_path = out.join("phase_diagram.csv");
    std::fs::write(&csv_path, csv).map_err(|e| format!("cannot write {}: {e}", csv_path.display()))?;

    // Summary: where NAG is faster.
    for (k, level) in LEVELS.iter().enumerate() {
        let both: Vec<f64> = cells.iter().filter_map(|c| ratio(c, k)).collect();
        let faster = both.iter().filter(|&&r| r > 1.0).count();
        let slower = both.iter().filter(|&&r| r < 1.0).count();
        let best = both.iter().fold(0.0_f64, |m, &r| m.max(r));
        let worst = both.iter().fold(f64::INFINITY, |m, &r| m.min(r));
        println!(
            "to {level:.0e} of L_0: of the {} cells where both converge within {} steps, NAG needs fewer steps in {faster}, \
             more in {slower}; HB/NAG step ratio from {worst:.3} to {best:.3}",
            both.len(),
            args.budget
        );
    }
    let exponents: Vec<f64> = cells
        .iter()
        .filter(|c| c.rate_hb < 1.0 && c.rate_nag < 1.0)
        .map(|c| (1.0 - c.rate_nag) / (1.0 - c.rate_hb))
        .collect();
    println!(
        "asymptotic exponents (1 - rho_NAG) / (1 - rho_HB) where both are stable: NAG larger in {} of {} cells",
        exponents.iter().filter(|&&e| e > 1.0).count(),
        exponents.len()
    );
    let best_hb = theory::best_tuning(Method::HeavyBall, &p.residual, 1e-6, args.budget, 0.1)?;
    let best_nag = theory::best_tuning(Method::Nesterov, &p.residual, 1e-6, args.budget, 0.1)?;
    for b in [best_hb, best_nag] {
        println!(
            "{} at its own best tuning for 1e-6 of L_0 (stability margin 10 %): lr * lambda_max = {:.3}, momentum = {:.5}, \
             {} steps",
            b.method,
            b.lr * lambda_max,
            b.momentum,
            b.steps.map_or("> budget".into(), |s| s.to_string())
        );
    }

    let size = 360.0;
    let (w, h) = (3.0 * (size + 90.0) + 40.0, size + 150.0);
    let mut svg = format!(
        r#"<svg xmlns="http://www.w3.org/2000/svg" width="{w}" height="{h}" font-family="sans-serif">
<rect width="100%" height="100%" fill="white"/>
<text x="{}" y="20" font-size="14" text-anchor="middle">{}; kappa(H(W_0)) = {:.3e}</text>
"#,
        w / 2.0,
        p.title,
        p.spectrum.kappa
    );
    let kappa = p.spectrum.kappa;
    let marker = (lr * lambda_max, momentum);
    let exponent_ratio =
        |c: &Cell| (c.rate_hb < 1.0 && c.rate_nag < 1.0).then(|| (1.0 - c.rate_nag) / (1.0 - c.rate_hb));
    panel(
        &mut svg,
        &cells,
        grid,
        &|c| ratio(c, 0),
        "HB steps / NAG steps to 1e-2 of L_0",
        kappa,
        marker,
        (70.0, 60.0, size),
    );
    panel(
        &mut svg,
        &cells,
        grid,
        &|c| ratio(c, 1),
        "HB steps / NAG steps to 1e-6 of L_0",
        kappa,
        marker,
        (70.0 + size + 90.0, 60.0, size),
    );
    panel(
        &mut svg,
        &cells,
        grid,
        &exponent_ratio,
        "asymptotic (1 - rho_NAG) / (1 - rho_HB)",
        kappa,
        marker,
        (70.0 + 2.0 * (size + 90.0), 60.0, size),
    );
    let _ = writeln!(
        svg,
        r#"<text x="70" y="{:.0}" font-size="12">y axis: momentum beta (log scale in 1 - beta). Blue: NAG faster (ratio &gt; 1), red: HB faster, grey: unstable or not within {} steps; colour saturates at 2^(+-1.5).</text>
<text x="70" y="{:.0}" font-size="12">Black: stability limits (solid HB, dashed NAG). Green: critical damping of the slowest mode (solid HB, dashed NAG; above: underdamped). Circle: the examples' shared tuning.</text>
</svg>"#,
        size + 118.0,
        args.budget,
        size + 136.0
    );
    let svg_path = out.join("phase_diagram.svg");
    std::fs::write(&svg_path, svg).map_err(|e| format!("cannot write {}: {e}", svg_path.display()))?;
    println!("wrote {} and {}", csv_path.display(), svg_path.display());
    Ok(())
}

fn main() {
    common::startup::quiet_on_closed_stdout();
    common::exit_on_error(run(&common::startup::parse_args::<Args>()));
}
