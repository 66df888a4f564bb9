//! Shared command line and experiment of the `*_subset` and `width_sweep`
//! examples: load real images, build a binary task, predict each optimizer's
//! convergence from the NTK spectrum, train, and compare.

#![allow(dead_code)]

pub mod plot;

use std::fmt::Write as _;
use std::path::{Path, PathBuf};

use clap::{Parser, ValueEnum};
use nalgebra::{DMatrix, DVector};
use ntk_momentum::data::{binary_dataset, cifar10, embedded, idx, BinaryTask, Dataset, Images};
use ntk_momentum::ntk::{eigendecomposition, infinite_width_gram, Spectrum};
use ntk_momentum::theory::{self, Method};
use ntk_momentum::train::{Parameterization, ProgressBar, Trainer};
use ntk_momentum::{Error, Float, GradientDescent, HeavyBall, History, Nesterov, Optimizer, TwoLayerReLU};

/// Float type of a run.
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum Dtype {
    /// Single precision.
    F32,
    /// Double precision.
    F64,
}

/// Parameterization flag.
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum Param {
    /// Weight space.
    Weight,
    /// Kernel space.
    Kernel,
    /// The cheaper one.
    Auto,
}

/// The flags every experiment example takes.
#[derive(Parser, Debug, Clone)]
pub struct Args {
    /// Directory in the official layout (CIFAR-10: data_batch_*.bin /
    /// test_batch.bin; MNIST, Fashion-MNIST: the IDX files, raw or .gz).
    /// Default: the real subset embedded in the crate.
    #[arg(long)]
    pub data_dir: Option<PathBuf>,
    /// Fetch the official CIFAR-10 binary archive into --cache-dir (checked
    /// against its published MD5, reused next time) and read it from there.
    /// Needs the crate feature `download`.
    #[arg(long)]
    pub download: bool,
    /// Cache directory of --download.
    #[arg(long, default_value = "target/datasets")]
    pub cache_dir: PathBuf,
    /// Number of training samples (class-balanced). Default: 1000, or all
    /// the embedded subset can give.
    #[arg(long)]
    pub n: Option<usize>,
    /// Width m of the network.
    #[arg(long, default_value_t = 4096)]
    pub width: usize,
    /// Optimizer steps per run.
    #[arg(long, default_value_t = 300)]
    pub steps: usize,
    /// Comma-separated optimizers among gd, hb, nag.
    #[arg(long, default_value = "gd,hb,nag")]
    pub optimizers: String,
    /// Step size. Default: 1 / lambda_max of H(W_0).
    #[arg(long)]
    pub lr: Option<f64>,
    /// Momentum shared by HB and NAG. Default: (sqrt(kappa) - 1) / (sqrt(kappa) + 1) of H(W_0).
    #[arg(long)]
    pub momentum: Option<f64>,
    /// Seed of the subset and the network.
    #[arg(long, default_value_t = 0)]
    pub seed: u64,
    /// Float type.
    #[arg(long, value_enum, default_value_t = Dtype::F64)]
    pub dtype: Dtype,
    /// Subtract the mean image before normalizing rows.
    #[arg(long)]
    pub center: bool,
    /// Binary task as "POS,POS/NEG,NEG" class names or labels (default: the dataset's own).
    #[arg(long)]
    pub task: Option<String>,
    /// Parameterization of the training loop.
    #[arg(long, value_enum, default_value_t = Param::Auto)]
    pub param: Param,
    /// Output directory. Default: target/experiments/<example>.
    #[arg(long)]
    pub out: Option<PathBuf>,
    /// Dataset of width_sweep: cifar10, mnist or fashion-mnist (the *_subset examples have their own).
    #[arg(long, default_value = "mnist")]
    pub dataset: String,
    /// Widths for width_sweep (comma-separated).
    #[arg(long, default_value = "256,1024,4096,16384")]
    pub widths: String,
    /// No progress bars.
    #[arg(long)]
    pub quiet: bool,
}

/// The optimizers of a run.
pub fn parse_methods(list: &str) -> Result<Vec<Method>, Error> {
    list.split(',')
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .map(|s| match s {
            "gd" => Ok(Method::GradientDescent),
            "hb" => Ok(Method::HeavyBall),
            "nag" => Ok(Method::Nesterov),
            other => Err(Error::InvalidParameter {
                name: "optimizers",
                value: other.to_string(),
                expected: "a comma-separated list of gd, hb, nag".into(),
            }),
        })
        .collect::<Result<Vec<_>, _>>()
        .and_then(|v| {
            if v.is_empty() {
                Err(Error::InvalidParameter {
                    name: "optimizers",
                    value: list.into(),
                    expected: "at least one of gd, hb, nag".into(),
                })
            } else {
                Ok(v)
            }
        })
}

/// Short name used in files: gd, hb, nag.
pub fn short(method: Method) -> &'static str {
    match method {
        Method::GradientDescent => "gd",
        Method::HeavyBall => "hb",
        _ => "nag",
    }
}

/// Loads the images of `dataset`: from `--data-dir` in the official layout,
/// or the embedded subset.
pub fn load_images(dataset: Dataset, data_dir: Option<&Path>) -> Result<(Images, String), Error> {
    let Some(dir) = data_dir else {
        let images = embedded::load(dataset);
        let what = format!("{} embedded subset ({} images)", dataset, images.len());
        return Ok((images, what));
    };
    if !dir.is_dir() {
        return Err(Error::Io {
            path: dir.to_path_buf(),
            source: std::io::Error::new(std::io::ErrorKind::NotFound, "no such directory"),
        });
    }
    let images = match dataset {
        Dataset::Cifar10 => {
            let has_train = cifar10::TRAIN_FILES.iter().any(|f| dir.join(f).is_file());
            if has_train {
                cifar10::read_train(dir)?
            } else {
                cifar10::read_test(dir)?
            }
        }
        _ => match idx::read_train(dir) {
            Ok(images) => images,
            Err(_) => idx::read_test(dir)?,
        },
    };
    let what = format!("{} from {} ({} images)", dataset, dir.display(), images.len());
    Ok((images, what))
}

/// `--download`: the unpacked official CIFAR-10 directory in the cache.
fn download(dataset: Dataset, args: &Args) -> Result<PathBuf, Error> {
    if dataset != Dataset::Cifar10 {
        return Err(Error::InvalidParameter {
            name: "download",
            value: dataset.to_string(),
            expected: "CIFAR-10 (use --data-dir for MNIST and Fashion-MNIST)".into(),
        });
    }
    if args.data_dir.is_some() {
        return Err(Error::InvalidParameter {
            name: "download",
            value: "with --data-dir".into(),
            expected: "one of --download and --data-dir".into(),
        });
    }
    #[cfg(feature = "download")]
    {
        std::fs::create_dir_all(&args.cache_dir).map_err(|e| Error::Io {
            path: args.cache_dir.clone(),
            source: e,
        })?;
        ntk_momentum::data::download::cifar10(&args.cache_dir)
    }
    #[cfg(not(feature = "download"))]
    Err(Error::Unsupported(
        "--download needs the crate feature `download`: add `--features download`".into(),
    ))
}

/// Everything an experiment needs before training.
pub struct Problem<T: Float> {
    pub x: DMatrix<T>,
    pub y: DVector<T>,
    pub model: TwoLayerReLU<T>,
    pub spectrum: Spectrum,
    pub eigenvectors: DMatrix<f64>,
    pub infinite: Spectrum,
    pub xi0: DVector<f64>,
    pub description: String,
    /// A one-line title for figures.
    pub title: String,
}

/// Builds the data, the network and the spectra.
pub fn problem<T: Float>(dataset: Dataset, args: &Args, width: usize) -> Result<Problem<T>, Error> {
    let downloaded = if args.download {
        Some(download(dataset, args)?)
    } else {
        None
    };
    let (images, what) = load_images(dataset, downloaded.as_deref().or(args.data_dir.as_deref()))?;
    let task = match &args.task {
        Some(spec) => BinaryTask::parse(dataset, spec)?,
        None => dataset.default_task(),
    };
    let n = match args.n {
        Some(n) => n,
        None => 1000.min(task.max_balanced(&images)),
    };
    let (x, y) = binary_dataset::<T>(&images, &task, n, args.seed, args.center)?;
    let model = TwoLayerReLU::<T>::init(x.ncols(), width, args.seed)?;
    let h0 = model.ntk_gram(&x)?;
    let (spectrum, eigenvectors) = eigendecomposition(&h0)?;
    let infinite = Spectrum::of(&infinite_width_gram(&x)?)?;
    let u0 = model.forward(&x)?;
    let xi0 = DVector::from_fn(n, |i, _| (u0[i] - y[i]).to_f64());
    let description = format!(
        "{what}; task {} ({} samples, d = {}{}); width m = {width}; {}",
        task.name(),
        n,
        x.ncols(),
        if args.center { ", centered" } else { "" },
        T::NAME
    );
    let title = format!(
        "{dataset}, {}: n = {n}, d = {}, m = {width}, {}",
        task.name(),
        x.ncols(),
        T::NAME
    );
    Ok(Problem {
        x,
        y,
        model,
        spectrum,
        eigenvectors,
        infinite,
        xi0,
        description,
        title,
    })
}

/// Step size and momentum: the flags, or the defaults from the spectrum.
pub fn hyperparameters(spectrum: &Spectrum, args: &Args) -> (f64, f64, String) {
    let kappa = spectrum.kappa;
    let default_momentum = if kappa.is_finite() {
        (kappa.sqrt() - 1.0) / (kappa.sqrt() + 1.0)
    } else {
        0.99
    };
    let lr = args.lr.unwrap_or(1.0 / spectrum.lambda_max);
    let momentum = args.momentum.unwrap_or(default_momentum);
    let mut why = String::new();
    let _ = write!(
        why,
        "lr = {lr:.4e}{}; momentum = {momentum:.6}{}",
        if args.lr.is_some() {
            " (--lr)"
        } else {
            " = 1 / lambda_max(H(W_0)): the largest step that keeps every mode of GD monotone"
        },
        if args.momentum.is_some() {
            " (--momentum)".to_string()
        } else {
            format!(
                " = (sqrt(kappa) - 1) / (sqrt(kappa) + 1), kappa = {kappa:.3e}: Nesterov's tuning, shared by HB and NAG so that \
                 the comparison isolates the gradient correction"
            )
        }
    );
    (lr, momentum, why)
}

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
    args: &Args,
) -> Result<RunResult, Error> {
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
    let param = match args.param {
        Param::Weight => Parameterization::Weight,
        Param::Kernel => Parameterization::Kernel,
        Param::Auto => Parameterization::Auto,
    };
    let (history, diverged) = match method {
        Method::GradientDescent => run_with(problem, GradientDescent::new(lr)?, param, method, args),
        Method::HeavyBall => run_with(problem, HeavyBall::new(lr, beta)?, param, method, args),
        _ => run_with(problem, Nesterov::new(lr, beta)?, param, method, args),
    }?;
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
    param: Parameterization,
    method: Method,
    args: &Args,
) -> Result<(History, Option<String>), Error> {
    let mut trainer = Trainer::new(problem.model.clone(), optimizer)
        .max_steps(args.steps)
        .parameterization(param)
        .diagnostics_every(args.steps.div_ceil(10).max(1));
    if !args.quiet {
        trainer = trainer.observer(ProgressBar::new(short(method)));
    }
    match trainer.run(&problem.x, &problem.y) {
        Ok(h) => Ok((h, None)),
        Err(Error::Diverged {
            history, reason, step, ..
        }) => Ok((*history, Some(format!("diverged at step {step}: {reason}")))),
        Err(e) => Err(e),
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
pub fn write_csv(path: &Path, results: &[RunResult]) -> Result<(), Error> {
    let mut s = String::from("optimizer,step,loss,predicted_loss,elapsed_seconds\n");
    for r in results {
        for (t, (&l, &e)) in r.history.losses().iter().zip(r.history.elapsed()).enumerate() {
            let p = r.predicted_losses.get(t).map_or(String::new(), |v| format!("{v:e}"));
            let _ = writeln!(s, "{},{t},{l:e},{p},{e:.6}", short(r.method));
        }
    }
    std::fs::write(path, s).map_err(|e| Error::Io {
        path: path.to_path_buf(),
        source: e,
    })
}

/// The output directory (created).
pub fn out_dir(args: &Args, example: &str) -> Result<PathBuf, Error> {
    let dir = args
        .out
        .clone()
        .unwrap_or_else(|| PathBuf::from("target/experiments").join(example));
    std::fs::create_dir_all(&dir).map_err(|e| Error::Io {
        path: dir.clone(),
        source: e,
    })?;
    Ok(dir)
}

/// Validates the numeric flags.
pub fn check_args(args: &Args) -> Result<(), Error> {
    if args.width == 0 {
        return Err(Error::InvalidParameter {
            name: "width",
            value: "0".into(),
            expected: "at least 1".into(),
        });
    }
    if args.n == Some(0) {
        return Err(Error::InvalidParameter {
            name: "n",
            value: "0".into(),
            expected: "at least 1".into(),
        });
    }
    if let Some(lr) = args.lr {
        if !(lr.is_finite() && lr > 0.0) {
            return Err(Error::InvalidParameter {
                name: "lr",
                value: lr.to_string(),
                expected: "a finite number > 0".into(),
            });
        }
    }
    if let Some(m) = args.momentum {
        if !(0.0..1.0).contains(&m) {
            return Err(Error::InvalidParameter {
                name: "momentum",
                value: m.to_string(),
                expected: "a number in [0, 1)".into(),
            });
        }
    }
    parse_methods(&args.optimizers).map(|_| ())
}

/// Runs one `*_subset` experiment end to end.
pub fn subset_experiment(dataset: Dataset, example: &str) {
    let args = Args::parse();
    exit_on_error(match args.dtype {
        Dtype::F32 => subset::<f32>(dataset, example, &args),
        Dtype::F64 => subset::<f64>(dataset, example, &args),
    });
}

/// Prints a one-line error and exits with code 2.
pub fn exit_on_error(result: Result<(), Error>) {
    if let Err(e) = result {
        eprintln!("error: {e}");
        std::process::exit(2);
    }
}

fn subset<T: Float>(dataset: Dataset, example: &str, args: &Args) -> Result<(), Error> {
    check_args(args)?;
    let methods = parse_methods(&args.optimizers)?;
    let out = out_dir(args, example)?;
    let p = problem::<T>(dataset, args, args.width)?;
    println!("{}", p.description);
    let (lr, momentum, why) = hyperparameters(&p.spectrum, args);
    println!("{why}");
    for &m in &methods {
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
    for &m in &methods {
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
