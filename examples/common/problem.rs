//! The problem of an experiment: the images (embedded, from a directory or
//! downloaded), the binary task, the network, the spectra of H(W_0) and of
//! the infinite-width kernel, and the step size and momentum.

use std::fmt::Write as _;
use std::path::{Path, PathBuf};

use nalgebra::{DMatrix, DVector};
use ntk_momentum::data::{binary_dataset, cifar10, embedded, idx, BinaryTask, Centering, Dataset, Images};
use ntk_momentum::ntk::{eigendecomposition, infinite_width_gram, Spectrum};
use ntk_momentum::theory::ModalResidual;
use ntk_momentum::{Error, Float, TwoLayerReLU};

use super::cli::{Download, Experiment};
use super::AnyResult;

/// Loads the images of `dataset`: from `dir` in the official layout (the
/// training split if its files are there, else the test split), or the
/// embedded subset.
pub fn load_images(dataset: Dataset, dir: Option<&Path>) -> AnyResult<(Images, String)> {
    let Some(dir) = dir else {
        let images = embedded::load(dataset);
        let what = format!("{} embedded subset ({} images)", dataset, images.len());
        return Ok((images, what));
    };
    if !dir.is_dir() {
        return Err(format!("--data-dir {}: no such directory", dir.display()).into());
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
        // The test split only when the training files are absent: a damaged
        // training file is an error, not a reason to read other data.
        _ => match idx::read_train(dir) {
            Err(Error::Io { source, .. }) if source.kind() == std::io::ErrorKind::NotFound => idx::read_test(dir)?,
            other => other?,
        },
    };
    let what = format!("{} from {} ({} images)", dataset, dir.display(), images.len());
    Ok((images, what))
}

/// `--download`: the unpacked official CIFAR-10 directory in the cache.
fn download(download: &Download, data_dir: Option<&Path>) -> AnyResult<PathBuf> {
    if data_dir.is_some() {
        return Err("--download and --data-dir exclude each other".into());
    }
    #[cfg(feature = "download")]
    {
        std::fs::create_dir_all(&download.cache_dir)
            .map_err(|e| format!("cannot create --cache-dir {}: {e}", download.cache_dir.display()))?;
        Ok(ntk_momentum::data::download::cifar10(&download.cache_dir)?)
    }
    #[cfg(not(feature = "download"))]
    {
        let _ = download;
        Err("--download needs the crate feature `download`: add `--features download`".into())
    }
}

/// Everything an experiment needs before training.
pub struct Problem<T: Float> {
    pub x: DMatrix<T>,
    pub y: DVector<T>,
    pub model: TwoLayerReLU<T>,
    pub spectrum: Spectrum,
    pub infinite: Spectrum,
    /// ξ_0 in the eigenbasis of H(W_0) (projected once).
    pub residual: ModalResidual,
    pub description: String,
    /// A one-line title for figures.
    pub title: String,
}

/// Builds the data, the network and the spectra for `width` (`None`: the
/// default for the sample count, [`Experiment::width_for`]).
pub fn problem<T: Float>(
    dataset: Dataset,
    args: &Experiment,
    fetch: Option<&Download>,
    width: Option<usize>,
) -> AnyResult<Problem<T>> {
    let downloaded = match fetch.filter(|d| d.download) {
        Some(d) => Some(download(d, args.data_dir.as_deref())?),
        None => None,
    };
    let (images, what) = load_images(dataset, downloaded.as_deref().or(args.data_dir.as_deref()))?;
    let task = match &args.task {
        Some(spec) => BinaryTask::parse(dataset, spec)?,
        None => dataset.default_task(),
    };
    let n = match args.n {
        Some(n) => n as usize,
        None => 1000.min(task.max_balanced(&images)),
    };
    if n > ntk_momentum::train::NTK_DRIFT_MAX_SAMPLES {
        return Err(format!(
            "--n {n}: the *_subset examples decompose n x n kernels densely, up to n = {}; for larger n run the \
             matrix-free `cargo run --release --example fashion_full` (any n, e.g. all 60,000 Fashion-MNIST images)",
            ntk_momentum::train::NTK_DRIFT_MAX_SAMPLES
        )
        .into());
    }
    let (x, y) = binary_dataset::<T>(&images, &task, n, args.seed, args.centering())?;
    let width = width.unwrap_or_else(|| args.width_for(n));
    let model = TwoLayerReLU::<T>::init(x.ncols(), width, args.seed)?;
    let h0 = model.ntk_gram(&x)?;
    let (spectrum, eigenvectors) = eigendecomposition(&h0)?;
    let infinite = Spectrum::of(&infinite_width_gram(&x)?)?;
    let u0 = model.forward(&x)?;
    let xi0 = DVector::from_fn(n, |i, _| (u0[i] - y[i]).to_f64());
    let residual = ModalResidual::project(&spectrum.eigenvalues, &eigenvectors, &xi0)?;
    let description = format!(
        "{what}; task {} ({} samples, d = {}{}); width m = {width}; {}",
        task.name(),
        n,
        x.ncols(),
        if args.centering() == Centering::MeanImage {
            ", mean image subtracted"
        } else {
            ", raw"
        },
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
        infinite,
        residual,
        description,
        title,
    })
}

/// How far λ_min(H(W_t)) may fall below λ_min(H(W_0)) before the default
/// momentum stops damping the slowest mode underdamped (see
/// [`hyperparameters`]).
pub const LAMBDA_MIN_MARGIN: f64 = 0.3;

/// Step size and momentum: the flags, or the defaults from the spectrum,
/// with a sentence saying which.
///
/// Default: η = 1/λ_max(H(W_0)) and β = (√κ' − 1)/(√κ' + 1) with κ' = κ/(1 −
/// [`LAMBDA_MIN_MARGIN`]): Nesterov's momentum for a λ_min 30 % below
/// H(W_0)'s. With it the mode of λ_min is underdamped for both HB and NAG
/// (critically damped for NAG only if λ_min falls by 30 %), so their
/// asymptotic rates are √β and √(β(1 − ηλ_min)), and a fall of λ_min during
/// training barely moves them. Tuned at λ_min(H(W_0)) exactly (κ' = κ), NAG
/// is critically damped there and turns overdamped, and slow, as soon as
/// λ_min(H(W_t)) falls.
pub fn hyperparameters(spectrum: &Spectrum, args: &Experiment) -> (f64, f64, String) {
    let kappa = spectrum.kappa / (1.0 - LAMBDA_MIN_MARGIN);
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
            " = 1 / lambda_max(H(W_0))"
        },
        if args.momentum.is_some() {
            " (--momentum)".to_string()
        } else {
            format!(
                " = (sqrt(k) - 1) / (sqrt(k) + 1), k = kappa(H(W_0)) / (1 - {LAMBDA_MIN_MARGIN}) = {kappa:.3e}: \
                 Nesterov's momentum for a lambda_min {:.0} % below H(W_0)'s, so the slowest mode stays underdamped \
                 for HB and NAG while lambda_min(H(W_t)) falls; shared by HB and NAG, so that the comparison isolates \
                 the gradient correction",
                100.0 * LAMBDA_MIN_MARGIN
            )
        }
    );
    (lr, momentum, why)
}
