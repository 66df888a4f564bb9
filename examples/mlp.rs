//! A two-layer MLP with biases, trained with heavy ball and Nesterov through
//! [`ntk_momentum::minimize`] on the embedded MNIST digits (even vs odd):
//! one optimizer updates the four tensors of a user struct, each with its
//! own state buffers.
//!
//! ```text
//! cargo run --release --example mlp -- [--n 1000] [--hidden 64] [--iters 300] [--lr 0.05] [--momentum 0.9]
//! ```
//!
//! The model is u(x) = w2 · relu(W1 x + b1) + b2 with W1 (h × 784), b1 (h),
//! w2 (h) and b2 (1), initialised W1 ~ N(0, 1/784), w2 ~ N(0, 1/h); the loss
//! is the mean ½ (u(x_i) − y_i)² over n training digits with y = +1 for even
//! and −1 for odd. Another n digits are held out; the example prints the
//! training loss, and the training and held-out sign accuracy of each
//! method. It exits with code 2 and one line on stderr for a bad flag.

use clap::Parser;
use nalgebra::{DMatrix, DVector};
use ntk_momentum::data::{balanced_subset, embedded, preprocess, targets, BinaryTask, Centering};
use ntk_momentum::optim::{Parameters, ParametersMut, Shape};
use ntk_momentum::{minimize, HeavyBall, MinimizeOptions, Nesterov, Optimizer, Result};
use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;
use rand_distr::{Distribution, Normal};

#[derive(Parser)]
#[command(about = "A two-layer MLP with biases on the embedded MNIST digits, trained with HB and NAG")]
struct Args {
    /// Training digits (as many held out; at most 1000).
    #[arg(long, default_value_t = 1000, value_parser = clap::value_parser!(u64).range(1..=1000))]
    n: u64,
    /// Hidden units h.
    #[arg(long, default_value_t = 64, value_parser = clap::value_parser!(u64).range(1..=1_000_000))]
    hidden: u64,
    /// Full-batch iterations per method.
    #[arg(long, default_value_t = 300)]
    iters: usize,
    /// Step size η.
    #[arg(long, default_value_t = 0.05)]
    lr: f64,
    /// Momentum β.
    #[arg(long, default_value_t = 0.9)]
    momentum: f64,
    /// Seed of the initialisation and of the sample.
    #[arg(long, default_value_t = 0)]
    seed: u64,
}

/// The network's four tensors. The optimizers see them as one parameter set
/// through `Parameters`/`ParametersMut`; no shared buffer.
#[derive(Clone)]
struct Mlp {
    w1: DMatrix<f64>,
    b1: DVector<f64>,
    w2: DVector<f64>,
    b2: DVector<f64>,
}

impl Parameters for Mlp {
    type Scalar = f64;
    fn tensor_count(&self) -> usize {
        4
    }
    fn tensor(&self, i: usize) -> Result<(Shape, &[f64])> {
        match i {
            0 => self.w1.tensor(0),
            1 => self.b1.tensor(0),
            2 => self.w2.tensor(0),
            // Index checking (and its error) is the vector's own.
            _ => self.b2.tensor(i - 3),
        }
    }
}

impl ParametersMut for Mlp {
    fn tensor_mut(&mut self, i: usize) -> Result<(Shape, &mut [f64])> {
        match i {
            0 => self.w1.tensor_mut(0),
            1 => self.b1.tensor_mut(0),
            2 => self.w2.tensor_mut(0),
            _ => self.b2.tensor_mut(i - 3),
        }
    }
}

impl Mlp {
    fn new(input: usize, hidden: usize, seed: u64) -> Mlp {
        let mut rng = ChaCha8Rng::seed_from_u64(seed);
        let first = Normal::new(0.0, 1.0 / (input as f64).sqrt()).expect("positive scale");
        let second = Normal::new(0.0, 1.0 / (hidden as f64).sqrt()).expect("positive scale");
        Mlp {
            w1: DMatrix::from_fn(hidden, input, |_, _| first.sample(&mut rng)),
            b1: DVector::zeros(hidden),
            w2: DVector::from_fn(hidden, |_, _| second.sample(&mut rng)),
            b2: DVector::zeros(1),
        }
    }

    /// Hidden pre-activations Z = X W1ᵀ + 1 b1ᵀ (n × h) and outputs u.
    fn forward(&self, x: &DMatrix<f64>) -> (DMatrix<f64>, DVector<f64>) {
        let mut z = x * self.w1.transpose();
        for mut row in z.row_iter_mut() {
            row += self.b1.transpose();
        }
        let u = z.map(|v| v.max(0.0)) * &self.w2 + DVector::from_element(x.nrows(), self.b2[0]);
        (z, u)
    }

    /// Loss (1/n) Σ ½ (u_i − y_i)² and its gradient, by back-propagation:
    /// r = (u − y)/n, ∂w2 = relu(Z)ᵀ r, ∂b2 = Σ r, D = (r w2ᵀ) ∘ 1[Z > 0],
    /// ∂W1 = Dᵀ X, ∂b1 = Dᵀ 1.
    fn loss_and_gradient(&self, x: &DMatrix<f64>, y: &DVector<f64>) -> (f64, Mlp) {
        let n = x.nrows() as f64;
        let (z, u) = self.forward(x);
        let residual = (&u - y) / n;
        let loss = 0.5 * n * residual.norm_squared();
        let hidden = z.map(|v| v.max(0.0));
        let mut delta = &residual * self.w2.transpose();
        delta.zip_apply(&z, |d, zv| {
            if zv <= 0.0 {
                *d = 0.0
            }
        });
        let gradient = Mlp {
            w1: delta.transpose() * x,
            b1: delta.row_sum().transpose(),
            w2: hidden.transpose() * &residual,
            b2: DVector::from_element(1, residual.sum()),
        };
        (loss, gradient)
    }

    fn accuracy(&self, x: &DMatrix<f64>, y: &DVector<f64>) -> f64 {
        let (_, u) = self.forward(x);
        u.iter().zip(y.iter()).filter(|(u, y)| *u * *y > 0.0).count() as f64 / y.len() as f64
    }
}

#[path = "common/startup.rs"]
mod startup;

fn main() {
    startup::quiet_on_closed_stdout();
    let args: Args = startup::parse_args();
    if let Err(e) = run(&args) {
        eprintln!("error: {e}");
        std::process::exit(2);
    }
}

fn run(args: &Args) -> Result<()> {
    let images = embedded::mnist();
    let task = BinaryTask::mnist_even_vs_odd();
    let (n, hidden) = (args.n as usize, args.hidden as usize);
    // 2n balanced digits; within each class, alternately to the training and
    // the held-out set (so both are balanced).
    let all = balanced_subset(&images, &task, 2 * n, args.seed)?;
    let (mut train, mut test) = (Vec::with_capacity(n), Vec::with_capacity(n));
    for side in [task.positive(), task.negative()] {
        let members = all.iter().filter(|&&i| side.contains(&images.labels()[i]));
        for (k, &i) in members.enumerate() {
            if k % 2 == 0 {
                train.push(i)
            } else {
                test.push(i)
            }
        }
    }
    let (x, y) = (
        preprocess::<f64>(&images, &train, Centering::Off)?,
        targets::<f64>(&images, &task, &train)?,
    );
    let (xt, yt) = (
        preprocess::<f64>(&images, &test, Centering::Off)?,
        targets::<f64>(&images, &task, &test)?,
    );
    println!(
        "MLP 784-{}-1 with biases, {} training and {} held-out MNIST digits ({task}), {} full-batch iterations, \
         lr = {}, momentum = {}, f64",
        hidden,
        x.nrows(),
        xt.nrows(),
        args.iters,
        args.lr,
        args.momentum
    );
    let optimizers: [Box<dyn Optimizer<Mlp>>; 2] = [
        Box::new(HeavyBall::new(args.lr, args.momentum)?),
        Box::new(Nesterov::new(args.lr, args.momentum)?),
    ];
    let options = MinimizeOptions::default().max_steps(args.iters);
    println!(
        "{:<10} {:>12} {:>12} {:>6} {:>8} {:>10} {:>10}",
        "method", "loss(0)", "loss(end)", "iters", "states", "train acc", "test acc"
    );
    for mut optimizer in optimizers {
        let mut net = Mlp::new(x.ncols(), hidden, args.seed);
        let report = minimize(
            &mut optimizer,
            &mut net,
            |p: &Mlp| p.loss_and_gradient(&x, &y),
            &options,
        )?;
        // One state per tensor (W1, b1, w2, b2), each with its own buffers.
        let state = optimizer.state();
        let shapes: Vec<String> = state.tensors.iter().map(|t| format!("{:?}", t.shape)).collect();
        println!(
            "{:<10} {:>12.4e} {:>12.4e} {:>6} {:>8} {:>9.1}% {:>9.1}%",
            optimizer.name(),
            report.values[0],
            report.values[report.values.len() - 1],
            report.iterations,
            state.tensors.len(),
            100.0 * net.accuracy(&x, &y),
            100.0 * net.accuracy(&xt, &yt)
        );
        println!("{:<10} state tensors {}", "", shapes.join(", "));
    }
    Ok(())
}
