//! Full-batch training on the whole Fashion-MNIST training set (60,000
//! images), matrix-free: no n × n matrix is ever formed.
//!
//! ```text
//! cargo run --release --example fashion_full                    # Debian's dataset-fashion-mnist files
//! cargo run --release --example fashion_full -- --data-dir DIR --steps 10 --width 4096
//! ```
//!
//! It reads the official IDX files (raw or `.gz`) from `--data-dir` (default
//! `/usr/share/datasets/fashion-mnist`, where Debian's
//! `dataset-fashion-mnist` package puts them), takes the binary task
//! "tops and dresses (T-shirt/top, Pullover, Dress, Coat, Shirt) vs the
//! rest", which splits the 60,000 images 30,000 : 30,000, subtracts the mean
//! image and scales rows to unit norm. Then:
//!
//! 1. **Prediction before training.** Lanczos on the empirical NTK H(W_0)
//!    ([`ntk_momentum::ntk::EmpiricalNtk`], products H v from X and the
//!    packed activation masks, 4 n m d flops each), started at the initial
//!    residual ξ_0 = u_0 − y. Its k Ritz values and ξ_0's coordinates on the
//!    Ritz vectors are a k-point Gauss quadrature, so the linearized
//!    (kernel fixed at H(W_0)) loss of GD, HB and NAG is predicted exactly
//!    for t < k = `--lanczos-products` (at least `--steps` + 1).
//! 2. **Training.** GD, HB and NAG in weight space with the `Trainer`, its
//!    NTK drift diagnostics done matrix-free (probe estimate at step 0 and
//!    at the end, [`ntk_momentum::Trainer::matrix_free_ntk`]).
//! 3. **Report.** Measured against predicted losses, and the average rate
//!    exponents 1 − ρ̄ over the run (ρ̄ = (L_T / L_0)^(1/2T)); the time per
//!    step; the peak resident memory against the sum of the arrays the run
//!    holds.
//!
//! `--timing-only` skips the spectrum and diagnostics and trains NAG with
//! the given `--lr` and `--momentum`: the crate's side of
//! `benches/peers/fashion_full.sh`, which times numpy and PyTorch on the
//! same data in alternating runs.

mod common;

use std::path::PathBuf;
use std::time::Instant;

use clap::Parser;
use nalgebra::{DMatrix, DVector};
use ntk_momentum::data::{binary_dataset, idx, BinaryTask, Centering, Dataset};
use ntk_momentum::ntk::{lanczos, EmpiricalNtk, KrylovSpectrum, LanczosOptions, BLOCK_ENTRIES};
use ntk_momentum::theory::{Method, ModalResidual};
use ntk_momentum::train::Parameterization;
use ntk_momentum::{Float, GradientDescent, HeavyBall, History, Nesterov, Optimizer, Trainer, TwoLayerReLU};

use common::backend::Backend;
use common::cli::Dtype;
use common::{exit_on_error, short, startup, AnyResult};

/// Default task: the five upper-body garment classes against the rest.
const TASK: &str = "0,2,3,4,6:rest";

/// Full-batch GD, HB and NAG on the Fashion-MNIST training set, matrix-free.
#[derive(Parser, Debug)]
#[command(
    about = "Full-batch GD, HB and NAG on all 60,000 Fashion-MNIST training images, with matrix-free NTK \
                   predictions"
)]
struct Args {
    /// Directory with train-images-idx3-ubyte[.gz] and train-labels-idx1-ubyte[.gz].
    #[arg(long, default_value = "/usr/share/datasets/fashion-mnist")]
    data_dir: PathBuf,
    /// Training samples (class-balanced). Default: all the task can give
    /// (60,000 for the default task).
    #[arg(long, value_parser = clap::value_parser!(u64).range(1..))]
    n: Option<u64>,
    /// Binary task "POS:NEG" (class names or labels; NEG may be "rest").
    #[arg(long, default_value = TASK)]
    task: String,
    /// Width m of the network.
    #[arg(long, default_value_t = 4096, value_parser = clap::value_parser!(u64).range(1..))]
    width: u64,
    /// Optimizer steps per method.
    #[arg(long, default_value_t = 10, value_parser = clap::value_parser!(u64).range(1..=10_000))]
    steps: u64,
    /// Comma-separated optimizers among gd, hb, nag.
    #[arg(long, value_delimiter = ',', default_value = "gd,hb,nag")]
    optimizers: Vec<Method>,
    /// Step size. Default: 1 / lambda_max(H(W_0)) (from Lanczos).
    #[arg(long)]
    lr: Option<f64>,
    /// Momentum of HB and NAG. Default: (sqrt(k) - 1) / (sqrt(k) + 1) with
    /// k = theta_max / theta_min / 0.7 from the Ritz values.
    #[arg(long)]
    momentum: Option<f64>,
    /// Lanczos products on H(W_0) (raised to --steps + 1, the fewest for an
    /// exact prediction of every step).
    #[arg(long, default_value_t = 32)]
    lanczos_products: usize,
    /// Random probes of the matrix-free NTK drift (0: no drift).
    #[arg(long, default_value_t = 2)]
    probes: usize,
    /// Float type.
    #[arg(long, value_enum, default_value_t = Dtype::F32)]
    dtype: Dtype,
    /// Seed of the subset order and the network.
    #[arg(long, default_value_t = 0)]
    seed: u64,
    /// Library of the large matrix products.
    #[arg(long, value_enum, default_value_t = Backend::Rust)]
    gemm_backend: Backend,
    /// Only time NAG steps (no spectrum, no diagnostics); needs --lr and --momentum.
    #[arg(long)]
    timing_only: bool,
}

fn main() {
    startup::quiet_on_closed_stdout();
    let args: Args = startup::parse_args();
    exit_on_error(match args.dtype {
        Dtype::F32 => run::<f32>(&args),
        Dtype::F64 => run::<f64>(&args),
    });
}

fn run<T: Float>(args: &Args) -> AnyResult<()> {
    args.gemm_backend.select()?;
    if args.timing_only && (args.lr.is_none() || args.momentum.is_none()) {
        return Err("--timing-only needs --lr and --momentum (it computes no spectrum)".into());
    }
    if let Some(lr) = args.lr {
        GradientDescent::new(lr)?;
    }
    if let Some(beta) = args.momentum {
        HeavyBall::new(1.0, beta)?;
    }
    let steps = args.steps as usize;
    let m = args.width as usize;
    let t0 = Instant::now();
    let images = idx::read_train(&args.data_dir)
        .map_err(|e| format!("{e} (install Debian's dataset-fashion-mnist or pass --data-dir)"))?;
    let task = BinaryTask::parse(Dataset::FashionMnist, &args.task)?;
    let n = match args.n {
        Some(n) => n as usize,
        None => task.max_balanced(&images),
    };
    let (x, y) = binary_dataset::<T>(&images, &task, n, args.seed, Centering::MeanImage)?;
    drop(images);
    let d = x.ncols();
    let model = TwoLayerReLU::<T>::init(d, m, args.seed)?;
    println!(
        "Fashion-MNIST training set from {}: task {} (n = {n}, d = {d}, mean image subtracted, unit rows), width \
         m = {m}, {}, {} threads, GEMM by {:?}; read in {:.1} s",
        args.data_dir.display(),
        task.name(),
        T::NAME,
        rayon::current_num_threads(),
        ntk_momentum::gemm_backend(),
        t0.elapsed().as_secs_f64()
    );
    if args.timing_only {
        let (lr, beta) = (args.lr.unwrap_or_default(), args.momentum.unwrap_or_default());
        let history = train(&model, &x, &y, Method::Nesterov, lr, beta, steps, 0)?;
        let (median, lo, hi) = step_seconds(&history);
        println!(
            "NAG: {steps} steps, loss {:.6e} -> {:.6e}",
            history.losses()[0],
            last(&history)
        );
        print_memory(n, m, d, std::mem::size_of::<T>(), 0, 0);
        println!(
            "ms_per_step={:.1} (median; range {:.1}-{:.1})",
            1e3 * median,
            1e3 * lo,
            1e3 * hi
        );
        return Ok(());
    }

    // 1. Prediction before training: Lanczos on H(W_0) from xi_0.
    let u0 = model.forward(&x)?;
    let xi0 = DVector::from_fn(n, |i, _| (u0[i] - y[i]).to_f64());
    let products = args.lanczos_products.max(steps + 1);
    let t1 = Instant::now();
    let krylov = {
        let mut h0 = EmpiricalNtk::new(&model, &x)?;
        // Tolerances at rounding level: all `products` products are spent,
        // so the prediction is exact for every step t < products.
        let options = LanczosOptions {
            max_products: products,
            lambda_max_tolerance: 1e-15,
            lambda_min_tolerance: 1e-15,
        };
        lanczos(&mut h0, Some(&xi0), options)?
    };
    let lanczos_seconds = t1.elapsed().as_secs_f64();
    print_krylov(&krylov, lanczos_seconds);
    let residual = ModalResidual::from_coordinates(krylov.ritz_values().to_vec(), krylov.start_coordinates().to_vec())?;
    let kappa = krylov.lambda_max / krylov.lambda_min / 0.7;
    let lr = args.lr.unwrap_or(1.0 / krylov.lambda_max);
    let beta = args.momentum.unwrap_or((kappa.sqrt() - 1.0) / (kappa.sqrt() + 1.0));
    println!(
        "lr = {lr:.4e}{}; momentum = {beta:.6}{}",
        if args.lr.is_some() {
            " (--lr)"
        } else {
            " = 1 / theta_max"
        },
        if args.momentum.is_some() {
            " (--momentum)".to_string()
        } else {
            format!(
                " = (sqrt(k) - 1) / (sqrt(k) + 1), k = theta_max / theta_min / 0.7 = {kappa:.3e} (theta_min >= \
                 lambda_min: k is at most kappa(H(W_0)) / 0.7)"
            )
        }
    );

    // 2. Training, 3. report.
    println!();
    println!(
        "{:<4} {:>12} {:>12} {:>12} {:>10} {:>12} {:>12} {:>10} {:>12}",
        "", "L_0", "L_T meas", "L_T pred", "max |gap|", "1-rho meas", "1-rho pred", "drift_T", "ms/step"
    );
    let mut finals = Vec::new();
    for &method in &args.optimizers {
        let beta = if method == Method::GradientDescent { 0.0 } else { beta };
        let history = train(&model, &x, &y, method, lr, beta, steps, args.probes)?;
        let predicted = residual.losses(method, lr, beta, steps)?;
        let measured = history.losses();
        let gap = measured
            .iter()
            .zip(&predicted)
            .map(|(m, p)| (m / p - 1.0).abs())
            .fold(0.0, f64::max);
        let exponent = |l: &[f64]| 1.0 - (l[l.len() - 1] / l[0]).powf(0.5 / (l.len() - 1) as f64);
        let drift = history.diagnostics().last().and_then(|d| d.ntk_drift);
        let (median, _, _) = step_seconds(&history);
        println!(
            "{:<4} {:>12.6e} {:>12.6e} {:>12.6e} {:>10.2e} {:>12.4e} {:>12.4e} {:>10} {:>12.0}",
            short(method),
            measured[0],
            last(&history),
            predicted[steps],
            gap,
            exponent(measured),
            exponent(&predicted),
            drift.map_or("-".to_string(), |v| format!("{v:.2e}")),
            1e3 * median
        );
        finals.push((method, last(&history), predicted[steps]));
    }
    println!(
        "L_T pred: the linearized loss with the kernel fixed at H(W_0), from the {}-point Gauss quadrature \
         (exact for t < {}); max |gap|: largest |L_t meas / L_t pred - 1| over t = 0..={steps}; 1 - rho: average \
         rate exponent over the run, rho = (L_T / L_0)^(1/(2T)); drift_T: ||(H_T - H_0) Z||_F / ||H_0 Z||_F with \
         {} probe(s); ms/step: median over the run's steps.",
        krylov.products, krylov.products, args.probes
    );
    if n > ntk_momentum::train::NTK_DRIFT_MAX_SAMPLES {
        println!(
            "Verdict (Trainer::verdict): none for any run at n = {n}, above NTK_DRIFT_MAX_SAMPLES = {}: its enclosure \
             forms n x n kernels at every step ({:.1} GB each in f64). The measured-against-predicted losses above are \
             the check at this size, without a guarantee.",
            ntk_momentum::train::NTK_DRIFT_MAX_SAMPLES,
            (n * n * 8) as f64 / 1e9
        );
    }
    let find = |m: Method| finals.iter().find(|f| f.0 == m);
    if let (Some(hb), Some(nag)) = (find(Method::HeavyBall), find(Method::Nesterov)) {
        println!(
            "After {steps} steps at the shared tuning: L_T(NAG) / L_T(HB) = {:.4} measured, {:.4} predicted \
             ({}).",
            nag.1 / hb.1,
            nag.2 / hb.2,
            if nag.1 < hb.1 { "NAG ahead" } else { "NAG not ahead" }
        );
    }
    if let Some(gd) = find(Method::GradientDescent) {
        for f in finals.iter().filter(|f| f.0 != Method::GradientDescent && f.1 > gd.1) {
            println!(
                "{} trails GD after {steps} steps ({:.4e} vs {:.4e}; predicted {:.4e} vs {:.4e}): with momentum \
                 {beta:.4} the velocity builds up over about 1 / (1 - momentum) = {:.0} steps, so momentum pays off \
                 only over longer runs; {}.",
                short(f.0).to_uppercase(),
                f.1,
                gd.1,
                f.2,
                gd.2,
                1.0 / (1.0 - beta),
                if f.2 > gd.2 {
                    "the linearized prediction shows the same"
                } else {
                    "the linearized prediction does not: the difference comes from the kernel's drift"
                }
            );
        }
    }
    print_memory(n, m, d, std::mem::size_of::<T>(), args.probes, products);
    Ok(())
}

/// Trains a copy of `model` for `steps` weight-space steps of `method`.
#[allow(clippy::too_many_arguments)]
fn train<T: Float>(
    model: &TwoLayerReLU<T>,
    x: &DMatrix<T>,
    y: &DVector<T>,
    method: Method,
    lr: f64,
    beta: f64,
    steps: usize,
    probes: usize,
) -> AnyResult<History> {
    let optimizer: Box<dyn Optimizer<DMatrix<T>> + Send> = match method {
        Method::GradientDescent => Box::new(GradientDescent::new(lr)?),
        Method::HeavyBall => Box::new(HeavyBall::new(lr, beta)?),
        _ => Box::new(Nesterov::new(lr, beta)?),
    };
    let mut trainer = Trainer::new(model.clone(), optimizer)
        .parameterization(Parameterization::Weight)
        .max_steps(steps)
        .diagnostics_every(if probes > 0 { steps } else { 0 })
        .track_ntk_drift(probes > 0)
        .matrix_free_ntk(probes, 0);
    Ok(trainer.run(x, y)?)
}

fn last(history: &History) -> f64 {
    history.losses()[history.losses().len() - 1]
}

/// Median, min and max seconds per step (differences of the recorded times).
fn step_seconds(history: &History) -> (f64, f64, f64) {
    let mut dt: Vec<f64> = history.elapsed().windows(2).map(|w| w[1] - w[0]).collect();
    dt.sort_by(f64::total_cmp);
    if dt.is_empty() {
        return (f64::NAN, f64::NAN, f64::NAN);
    }
    (dt[dt.len() / 2], dt[0], dt[dt.len() - 1])
}

fn print_krylov(k: &KrylovSpectrum, seconds: f64) {
    println!(
        "Lanczos on H(W_0) from xi_0 = u_0 - y: {} products in {seconds:.1} s ({:.2} s each); theta_max = {:.6e} \
         (residual bound {:.1e}, {:.1e} relative), theta_min = {:.6e} (residual bound {:.1e}: lambda_min(H(W_0)) <= \
         theta_min{}).",
        k.products,
        seconds / k.products as f64,
        k.lambda_max,
        k.lambda_max_error_bound,
        k.lambda_max_error_bound / k.lambda_max,
        k.lambda_min,
        k.lambda_min_error_bound,
        if k.lambda_min_error_bound <= 1e-4 * k.lambda_min {
            ", converged to 1e-4"
        } else {
            ", not converged: an upper bound"
        }
    );
}

/// Peak resident memory (Linux: VmHWM) against the sum of the arrays a run
/// holds: X and y, the model and W_0, gradient, rollback copy and optimizer
/// state (5 m × d with the model's), the trainer's three m × n buffers, and
/// the matrix-free NTK's masks, work matrices and probes (with `probes` > 0,
/// the diagnostics on); the Lanczos basis of `products` vectors is freed
/// before training.
fn print_memory(n: usize, m: usize, d: usize, size: usize, probes: usize, products: usize) {
    let block = (BLOCK_ENTRIES / m).clamp(1, n);
    let held = [
        ("X and y", (n * d + n) * size),
        (
            "W, W_0, gradient, rollback copy, optimizer state",
            5 * m * d * size + m * size,
        ),
        ("three m x n training buffers", 3 * m * n * size),
        (
            "NTK masks and work matrices",
            if probes > 0 {
                n * m.div_ceil(64) * 8 + m * (block + d) * size
            } else {
                0
            },
        ),
        ("drift probes and products", 3 * probes * n * 8),
    ];
    let basis = n * (products + 2) * 8;
    let sum: usize = held.iter().map(|h| h.1).sum::<usize>();
    let peak = peak_resident_bytes();
    let gib = |b: usize| b as f64 / (1u64 << 30) as f64;
    println!(
        "Memory: arrays held during training {:.3} GiB ({}); the Lanczos basis before training {:.3} GiB; peak \
         resident {}",
        gib(sum),
        held.iter()
            .map(|(what, b)| format!("{what} {:.3}", gib(*b)))
            .collect::<Vec<_>>()
            .join(", "),
        gib(basis),
        match peak {
            Some(p) => format!("{:.3} GiB = {:.2} x the arrays held", gib(p), p as f64 / sum as f64),
            None => "not available (no /proc/self/status)".to_string(),
        }
    );
}

/// VmHWM of /proc/self/status in bytes.
fn peak_resident_bytes() -> Option<usize> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = status.lines().find(|l| l.starts_with("VmHWM:"))?;
    let kib: usize = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kib * 1024)
}
