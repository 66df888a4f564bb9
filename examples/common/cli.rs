//! The command-line flags of the experiment examples: the common ones
//! ([`Experiment`]), CIFAR-10's download ([`Download`]), and the parsers
//! each example composes from them.

use std::path::PathBuf;

use clap::{Parser, ValueEnum};
use ntk_momentum::data::Centering;
use ntk_momentum::theory::Method;
use ntk_momentum::train::Parameterization;
use ntk_momentum::{GradientDescent, HeavyBall};

/// Float type of a run.
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum Dtype {
    /// Single precision.
    F32,
    /// Double precision.
    F64,
}

/// The flags every experiment example takes.
#[derive(clap::Args, Debug, Clone)]
pub struct Experiment {
    /// Directory in the official layout (CIFAR-10: data_batch_*.bin /
    /// test_batch.bin; MNIST, Fashion-MNIST: the IDX files, raw or .gz).
    /// Default: the real subset embedded in the crate.
    #[arg(long)]
    pub data_dir: Option<PathBuf>,
    /// Number of training samples (class-balanced). Default: 1000, or all
    /// the embedded subset can give.
    #[arg(long, value_parser = clap::value_parser!(u64).range(1..))]
    pub n: Option<u64>,
    /// Width m of the network. Default: 16384 for at most 64 samples (the
    /// embedded CIFAR-10 subset, which stays in the NTK regime at that width),
    /// else 4096.
    #[arg(long, value_parser = clap::value_parser!(u64).range(1..))]
    pub width: Option<u64>,
    /// Optimizer steps per run.
    #[arg(long, default_value_t = 300)]
    pub steps: usize,
    /// Comma-separated optimizers among gd, hb, nag.
    #[arg(long, value_delimiter = ',', default_value = "gd,hb,nag")]
    pub optimizers: Vec<Method>,
    /// Step size. Default: 1 / lambda_max of H(W_0).
    #[arg(long)]
    pub lr: Option<f64>,
    /// Momentum shared by HB and NAG. Default: (sqrt(k) - 1) / (sqrt(k) + 1)
    /// with k = kappa(H(W_0)) / 0.7 (Nesterov's momentum for a lambda_min 30 %
    /// below H(W_0)'s, the margin for its drift during training).
    #[arg(long)]
    pub momentum: Option<f64>,
    /// Seed of the subset and the network.
    #[arg(long, default_value_t = 0)]
    pub seed: u64,
    /// Float type.
    #[arg(long, value_enum, default_value_t = Dtype::F64)]
    pub dtype: Dtype,
    /// Keep the raw images: do not subtract the mean image before
    /// normalizing rows. By default the mean image of the subset is
    /// subtracted, which lowers the condition number of the kernel (20
    /// embedded CIFAR-10 images: kappa 110 raw, 8.1 centered) and keeps runs
    /// closer to the NTK regime.
    #[arg(long)]
    pub raw: bool,
    /// Binary task as "POS:NEG", each side comma-separated class names or
    /// labels, NEG may be "rest" (e.g. "cat,dog:rest"). Default: the
    /// dataset's own.
    #[arg(long)]
    pub task: Option<String>,
    /// Parameterization of the training loop: weight, kernel or auto.
    #[arg(long, default_value = "auto")]
    pub param: Parameterization,
    /// Output directory. Default: target/experiments/<example>.
    #[arg(long)]
    pub out: Option<PathBuf>,
    /// No progress bars.
    #[arg(long)]
    pub quiet: bool,
    /// Skip the runs of HB and NAG at their own best tunings.
    #[arg(long)]
    pub no_tuning: bool,
}

impl Experiment {
    /// `--lr` and `--momentum`, checked by the optimizers' own constructors
    /// before any work (the defaults come from the spectrum later).
    pub fn check(&self) -> ntk_momentum::Result<()> {
        if let Some(lr) = self.lr {
            GradientDescent::new(lr)?;
        }
        if let Some(momentum) = self.momentum {
            HeavyBall::new(1.0, momentum)?;
        }
        Ok(())
    }

    /// Whether the mean image is subtracted (the default; `--raw` keeps it).
    pub fn centering(&self) -> Centering {
        if self.raw {
            Centering::Off
        } else {
            Centering::MeanImage
        }
    }

    /// `--width`, or the default for `n` samples.
    pub fn width_for(&self, n: usize) -> usize {
        match self.width {
            Some(w) => w as usize,
            None if n <= 64 => 16384,
            None => 4096,
        }
    }
}

/// CIFAR-10's `--download` (the archive is official for CIFAR-10 only).
#[derive(clap::Args, Debug, Clone, Default)]
pub struct Download {
    /// Fetch the official CIFAR-10 binary archive into --cache-dir (checked
    /// against its published MD5, reused next time) and read it from there.
    /// Needs the crate feature `download`.
    #[arg(long)]
    pub download: bool,
    /// Cache directory of --download.
    #[arg(long, default_value = "target/datasets")]
    pub cache_dir: PathBuf,
}

/// The flags of `mnist_subset` and `fashion_subset`.
#[derive(Parser, Debug, Clone)]
#[command(about = "Train GD, HB and NAG on a binary task of real images and compare them with the NTK prediction")]
pub struct SubsetArgs {
    #[command(flatten)]
    pub experiment: Experiment,
}

/// The flags of `cifar_subset`.
#[derive(Parser, Debug, Clone)]
#[command(
    about = "Train GD, HB and NAG on a binary task of real CIFAR-10 images and compare them with the NTK prediction"
)]
pub struct CifarArgs {
    #[command(flatten)]
    pub experiment: Experiment,
    #[command(flatten)]
    pub download: Download,
}
