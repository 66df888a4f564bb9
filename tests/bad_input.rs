//! Bad input across the public API: every case is the right error variant,
//! with a message that names the argument (or file) that was wrong. No case
//! may panic or abort, including requests for more memory than the machine
//! has (they must be refused before anything is allocated).
#![cfg(feature = "full")]

use std::sync::Mutex;

use nalgebra::{DMatrix, DVector};
use ntk_momentum::data::{self, BinaryTask, Dataset, Images};
use ntk_momentum::ntk::{self, Spectrum};
use ntk_momentum::optim::{Convention, OptimizerState, Schedule};
use ntk_momentum::theory::{self, Method, ModalResidual, TuningRule};
use ntk_momentum::{
    minimize, Error, GradientDescent, HeavyBall, MinimizeOptions, Nesterov, Optimizer, Parameterization, Trainer,
    TwoLayerReLU,
};

/// Tests that change the process-wide memory limit hold this lock, and so
/// does every test of this file that allocates (so none runs under a
/// temporary 1 MiB limit).
static MEMORY: Mutex<()> = Mutex::new(());

/// The error kinds the cases expect.
#[derive(Debug, Clone, Copy, PartialEq)]
enum Kind {
    Invalid,
    Shape,
    NonFinite,
    TooLarge,
    Unsupported,
    Io,
    Format,
    Checkpoint,
    Data,
}

fn kind(e: &Error) -> Option<Kind> {
    Some(match e {
        Error::InvalidParameter { .. } => Kind::Invalid,
        Error::ShapeMismatch { .. } => Kind::Shape,
        Error::NonFinite { .. } => Kind::NonFinite,
        Error::TooLarge { .. } => Kind::TooLarge,
        Error::Unsupported(_) => Kind::Unsupported,
        Error::Io { .. } => Kind::Io,
        Error::Format { .. } => Kind::Format,
        Error::Checkpoint { .. } => Kind::Checkpoint,
        Error::Data(_) => Kind::Data,
        _ => return None,
    })
}

type Case = (&'static str, Kind, &'static str, Box<dyn Fn() -> Result<(), Error>>);

/// `(name, expected kind, text the message must contain, the call)`.
macro_rules! case {
    ($cases:ident, $name:literal, $kind:ident, $needle:literal, $body:expr) => {
        $cases.push(($name, Kind::$kind, $needle, Box::new(move || $body.map(|_| ()))));
    };
}

fn x(n: usize, d: usize) -> DMatrix<f64> {
    DMatrix::from_fn(n, d, |i, j| ((i * 7 + j * 3) % 11) as f64 / 11.0 - 0.5)
}

fn y(n: usize) -> DVector<f64> {
    DVector::from_fn(n, |i, _| if i % 2 == 0 { 1.0 } else { -1.0 })
}

fn trained(dir: &std::path::Path) -> std::path::PathBuf {
    let path = dir.join("good.ckpt");
    let mut t = Trainer::new(TwoLayerReLU::new(3, 16, 0).unwrap(), HeavyBall::new(0.1, 0.5).unwrap()).max_steps(3);
    t.run(&x(4, 3), &y(4)).unwrap();
    t.save_checkpoint(&path).unwrap();
    path
}

fn api_cases(dir: &'static std::path::Path) -> Vec<Case> {
    let mut c: Vec<Case> = Vec::new();
    // --- optimizers and schedules
    case!(c, "negative lr", Invalid, "lr", HeavyBall::new(-1.0, 0.5));
    case!(c, "NaN lr", Invalid, "lr", HeavyBall::new(f64::NAN, 0.5));
    case!(c, "momentum 1", Invalid, "momentum", HeavyBall::new(0.1, 1.0));
    case!(c, "negative momentum", Invalid, "momentum", Nesterov::new(0.1, -0.1));
    case!(c, "zero lr for GD", Invalid, "lr", GradientDescent::new(0.0));
    case!(c, "momentum rounding to 1 in f32", Invalid, "momentum", {
        let mut nag = Nesterov::new(0.1, 0.999_999_99).unwrap();
        nag.step(&mut vec![1.0f32], &vec![1.0f32])
    });
    case!(c, "gradient of another length", Shape, "gradient", {
        HeavyBall::new(0.1, 0.5).unwrap().step(&mut vec![1.0; 3], &vec![1.0; 2])
    });
    case!(c, "NaN gradient", NonFinite, "gradient of parameters", {
        Nesterov::new(0.1, 0.5)
            .unwrap()
            .step(&mut vec![1.0; 3], &vec![0.0, f64::NAN, 0.0])
    });
    case!(c, "infinite parameters", NonFinite, "parameters", {
        Nesterov::new(0.1, 0.5)
            .unwrap()
            .step(&mut vec![f64::INFINITY], &vec![0.0])
    });
    case!(c, "an update that overflows (lr 1e300)", NonFinite, "overflow", {
        Nesterov::new(1e300, 0.9)
            .unwrap()
            .step(&mut vec![1.0, 2.0], &vec![1e10, 1.0])
    });
    case!(c, "f64 step after an f32 first step", Unsupported, "f32", {
        let mut hb = HeavyBall::new(0.1, 0.5).unwrap();
        hb.step(&mut vec![1.0f32], &vec![1.0f32]).unwrap();
        hb.step(&mut vec![1.0f64], &vec![1.0f64])
    });
    case!(c, "state of another optimizer", Invalid, "state.optimizer", {
        let mut hb = HeavyBall::new(0.1, 0.5).unwrap();
        hb.step(&mut vec![1.0], &vec![1.0]).unwrap();
        Nesterov::new(0.1, 0.5).unwrap().set_state(&hb.state())
    });
    case!(c, "state buffer of the wrong length", Shape, "velocity", {
        let mut hb = HeavyBall::new(0.1, 0.5).unwrap();
        hb.step(&mut vec![1.0, 2.0], &vec![1.0, 1.0]).unwrap();
        let mut s: OptimizerState = hb.state();
        s.tensors[0].buffers[0].1.push(0.0);
        hb.set_state(&s)
    });
    case!(c, "state of another convention", Invalid, "momentum_buffer", {
        let mut torch = HeavyBall::new(0.1, 0.5).unwrap().convention(Convention::PyTorch);
        torch.step(&mut vec![1.0], &vec![1.0]).unwrap();
        HeavyBall::new(0.1, 0.5).unwrap().set_state(&torch.state())
    });
    case!(c, "schedule giving a negative lr at step 1", Invalid, "step 1", {
        let lr = Schedule::from_fn(|t| if t == 0 { 0.1 } else { -1.0 });
        let mut nag = Nesterov::with_schedules(lr, 0.5).unwrap();
        nag.step(&mut vec![1.0], &vec![1.0]).unwrap();
        nag.step(&mut vec![1.0], &vec![1.0])
    });
    case!(c, "schedule giving NaN momentum", Invalid, "momentum", {
        HeavyBall::with_schedules(0.1, Schedule::from_fn(|_| f64::NAN))
    });
    case!(
        c,
        "step decay every 0 steps",
        Invalid,
        "every",
        Schedule::step_decay(0.1, 0.5, 0)
    );
    case!(c, "piecewise values and boundaries disagree", Invalid, "values", {
        Schedule::piecewise(vec![10], vec![0.1])
    });
    case!(
        c,
        "warm-up of 0 steps",
        Invalid,
        "steps",
        Schedule::linear_warmup(0, Schedule::constant(0.1))
    );
    case!(c, "set with fewer gradient tensors", Shape, "number of tensors", {
        let (mut a, mut b) = (vec![1.0; 2], vec![1.0; 3]);
        HeavyBall::new(0.1, 0.5)
            .unwrap()
            .step(&mut (&mut a, &mut b), &vec![vec![1.0; 2]])
    });
    case!(
        c,
        "set_lr negative",
        Invalid,
        "lr",
        Nesterov::new(0.1, 0.5).unwrap().set_lr(-2.0)
    );
    case!(c, "minimize with a negative gradient tolerance", Invalid, "grad_tol", {
        let mut x = vec![1.0];
        let mut options = MinimizeOptions::default();
        options.grad_tol = Some(-1.0);
        minimize(
            &mut GradientDescent::new(0.1).unwrap(),
            &mut x,
            |x: &Vec<f64>| (0.5 * x[0] * x[0], vec![x[0]]),
            &options,
        )
    });
    case!(
        c,
        "a negative gradient tolerance to the builder",
        Invalid,
        "grad_tol",
        MinimizeOptions::default().grad_tol(-1.0)
    );
    // --- the model
    case!(
        c,
        "input dimension 0",
        Invalid,
        "input_dim",
        TwoLayerReLU::new(0, 10, 0)
    );
    case!(c, "width 0", Invalid, "width", TwoLayerReLU::new(10, 0, 0));
    case!(
        c,
        "weights of 8 TB",
        TooLarge,
        "weights (1048576 x 1048576)",
        TwoLayerReLU::new(1 << 20, 1 << 20, 0)
    );
    case!(
        c,
        "weights whose size overflows",
        TooLarge,
        "weights",
        TwoLayerReLU::new(usize::MAX, 2, 0)
    );
    case!(
        c,
        "negative init scale",
        Invalid,
        "sigma",
        TwoLayerReLU::<f64>::with_init_scale(3, 4, -1.0, 0)
    );
    case!(
        c,
        "inputs with the wrong width",
        Shape,
        "x",
        TwoLayerReLU::new(3, 8, 0).unwrap().forward(&x(2, 4))
    );
    case!(
        c,
        "inputs with no rows",
        Shape,
        "x",
        TwoLayerReLU::new(3, 8, 0).unwrap().forward(&x(0, 3))
    );
    case!(c, "NaN inputs", NonFinite, "x", {
        let mut xs = x(2, 3);
        xs[(1, 2)] = f64::NAN;
        TwoLayerReLU::new(3, 8, 0).unwrap().forward(&xs)
    });
    case!(
        c,
        "targets of the wrong length",
        Shape,
        "y",
        TwoLayerReLU::new(3, 8, 0).unwrap().loss(&x(2, 3), &y(3))
    );
    case!(c, "infinite targets", NonFinite, "y", {
        TwoLayerReLU::new(3, 8, 0)
            .unwrap()
            .loss(&x(2, 3), &DVector::from_vec(vec![1.0, f64::INFINITY]))
    });
    case!(c, "inputs so large the loss overflows", NonFinite, "loss", {
        TwoLayerReLU::new(3, 8, 0).unwrap().loss(&(x(2, 3) * 1e200), &y(2))
    });
    case!(c, "inputs so large the outputs overflow", NonFinite, "outputs", {
        TwoLayerReLU::new(3, 64, 0)
            .unwrap()
            .forward(&DMatrix::from_element(2, 3, 1e308))
    });
    case!(c, "Jacobian above its cap", TooLarge, "Jacobian", {
        TwoLayerReLU::new(512, 4096, 0).unwrap().jacobian(&x(100, 512))
    });
    case!(c, "weights of another shape", Shape, "weights", {
        TwoLayerReLU::new(3, 8, 0).unwrap().set_weights(DMatrix::zeros(8, 4))
    });
    case!(c, "output weight other than +-1", Invalid, "output", {
        TwoLayerReLU::from_parts(DMatrix::zeros(2, 3), DVector::from_vec(vec![1.0, 0.5]))
    });
    case!(c, "gradient buffer of the wrong shape", Shape, "grad", {
        let model = TwoLayerReLU::new(3, 8, 0).unwrap();
        model.loss_and_gradient_with(&x(2, 3), &y(2), &mut Default::default(), &mut DMatrix::zeros(3, 3))
    });
    // --- kernels and spectra
    case!(
        c,
        "Gram of an empty matrix",
        Shape,
        "x",
        ntk::infinite_width_gram(&DMatrix::<f64>::zeros(0, 3))
    );
    case!(c, "infinite-width Gram of 1.28 TB", TooLarge, "infinite-width Gram", {
        ntk::infinite_width_gram(&DMatrix::<f64>::from_element(400_000, 1, 1.0))
    });
    case!(c, "empirical NTK Gram of 1.28 TB", TooLarge, "NTK Gram", {
        TwoLayerReLU::new(1, 4, 0)
            .unwrap()
            .ntk_gram(&DMatrix::from_element(400_000, 1, 1.0))
    });
    case!(
        c,
        "spectrum of a non-square matrix",
        Shape,
        "Gram matrix",
        Spectrum::of(&DMatrix::<f64>::zeros(2, 3))
    );
    case!(c, "spectrum of a non-symmetric matrix", Invalid, "symmetric", {
        Spectrum::of(&DMatrix::from_row_slice(2, 2, &[1.0, 5.0, -5.0, 1.0]))
    });
    case!(c, "spectrum with NaN", NonFinite, "Gram matrix", {
        Spectrum::of(&DMatrix::from_row_slice(2, 2, &[1.0, f64::NAN, f64::NAN, 1.0]))
    });
    case!(c, "eigendecomposition of an empty matrix", Shape, "Gram matrix", {
        ntk::eigendecomposition(&DMatrix::<f64>::zeros(0, 0))
    });
    case!(c, "extremes of a non-symmetric matrix", Invalid, "symmetric", {
        ntk::extreme_eigenvalues(&DMatrix::from_row_slice(2, 2, &[1.0, 2.0, 0.0, 1.0]))
    });
    // --- theory
    case!(
        c,
        "rate of an empty spectrum",
        Invalid,
        "eigenvalues",
        theory::rate(Method::Nesterov, 0.1, 0.5, &[])
    );
    case!(c, "rate with a negative eigenvalue", Invalid, "eigenvalue", {
        theory::rate(Method::HeavyBall, 0.1, 0.5, &[1.0, -0.5])
    });
    case!(c, "rate with a NaN eigenvalue", NonFinite, "eigenvalue", {
        theory::rate(Method::HeavyBall, 0.1, 0.5, &[f64::NAN])
    });
    case!(c, "stability limit with momentum 1.5", Invalid, "momentum", {
        theory::max_stable_lr(Method::HeavyBall, 1.5, 1.0)
    });
    case!(c, "stability limit of lambda_max 0", Invalid, "lambda_max", {
        theory::max_stable_lr(Method::Nesterov, 0.5, 0.0)
    });
    case!(
        c,
        "tuning with lambda_min 0",
        Invalid,
        "lambda_min",
        theory::tune(TuningRule::Nesterov, 0.0, 1.0)
    );
    case!(
        c,
        "measured rate of one loss",
        Invalid,
        "losses",
        theory::measured_rate(&[1.0], 1e-1, 1e-6)
    );
    case!(
        c,
        "steps at a negative rate",
        Invalid,
        "rate",
        theory::steps_to_reach(-0.5, 0.1)
    );
    case!(
        c,
        "steps to a zero fraction",
        Invalid,
        "target_fraction",
        theory::steps_to_reach(0.5, 0.0)
    );
    case!(c, "residual with mismatched lengths", Shape, "coordinates", {
        ModalResidual::from_coordinates(vec![1.0, 2.0], vec![1.0])
    });
    case!(
        c,
        "predicted losses with eigenvectors of another size",
        Shape,
        "eigenvectors",
        {
            theory::predicted_losses(
                Method::Nesterov,
                0.1,
                0.5,
                &[1.0, 2.0],
                &DMatrix::identity(3, 3),
                &DVector::from_vec(vec![1.0, 1.0]),
                10,
            )
        }
    );
    // --- data
    case!(c, "zero samples", Invalid, "n", data::unit_sphere::<f64>(0, 3, 0));
    case!(
        c,
        "8 TB of synthetic inputs",
        TooLarge,
        "synthetic inputs",
        data::unit_sphere::<f64>(1 << 20, 1 << 20, 0)
    );
    case!(
        c,
        "CIFAR-10 bytes of a partial record",
        Format,
        "cifar",
        data::cifar10::from_bytes(&[1, 2, 3], "cifar.bin")
    );
    case!(c, "IDX images with a bad magic number", Format, "bad.idx", {
        data::idx::images_from_bytes(&[0, 0, 9, 9, 0, 0, 0, 0], "bad.idx")
    });
    case!(c, "IDX file that does not exist", Io, "no-such-file", {
        data::idx::read_images(dir.join("no-such-file-idx3-ubyte"))
    });
    case!(c, "images whose pixels do not match their shape", Shape, "pixels", {
        Images::new(2, 2, 1, vec![0; 7], vec![0, 1])
    });
    case!(
        c,
        "binary task without ':'",
        Data,
        "POSITIVE:NEGATIVE",
        BinaryTask::parse(Dataset::Cifar10, "cat,dog/bird")
    );
    case!(
        c,
        "binary task with an unknown class",
        Data,
        "unicorn",
        BinaryTask::parse(Dataset::Cifar10, "unicorn:rest")
    );
    case!(c, "more balanced samples than the data has", Data, "1000000", {
        let images = data::embedded::mnist();
        data::balanced_subset(&images, &BinaryTask::mnist_even_vs_odd(), 1_000_000, 0)
    });
    case!(
        c,
        "an image index past the end",
        Data,
        "index",
        data::embedded::mnist().select(&[usize::MAX])
    );
    // --- training and checkpoints
    case!(c, "negative target loss", Invalid, "target", {
        Trainer::new(TwoLayerReLU::new(3, 8, 0).unwrap(), HeavyBall::new(0.1, 0.5).unwrap()).target_loss(-1.0)
    });
    case!(c, "divergence factor below 1", Invalid, "divergence", {
        Trainer::new(TwoLayerReLU::new(3, 8, 0).unwrap(), HeavyBall::new(0.1, 0.5).unwrap()).divergence_factor(0.5)
    });
    case!(c, "evaluation set of another width", Shape, "x_test", {
        Trainer::new(TwoLayerReLU::new(3, 8, 0).unwrap(), HeavyBall::new(0.1, 0.5).unwrap())
            .evaluation_set(x(2, 4), y(2))
    });
    case!(c, "training targets of another length", Shape, "y", {
        Trainer::new(TwoLayerReLU::new(3, 8, 0).unwrap(), HeavyBall::new(0.1, 0.5).unwrap())
            .max_steps(2)
            .run(&x(4, 3), &y(3))
    });
    case!(
        c,
        "kernel-space training on 200,000 samples (320 GB)",
        TooLarge,
        "training buffers",
        {
            Trainer::new(TwoLayerReLU::new(1, 64, 0).unwrap(), HeavyBall::new(0.1, 0.5).unwrap())
                .parameterization(Parameterization::Kernel)
                .max_steps(1)
                .run(
                    &DMatrix::from_element(200_000, 1, 1.0),
                    &DVector::from_element(200_000, 1.0),
                )
        }
    );
    case!(c, "checkpoint saved before any run", Unsupported, "before the first", {
        Trainer::new(TwoLayerReLU::new(3, 8, 0).unwrap(), HeavyBall::new(0.1, 0.5).unwrap())
            .save_checkpoint(dir.join("never.ckpt"))
    });
    case!(c, "checkpoint that does not exist", Io, "missing.ckpt", {
        Trainer::new(TwoLayerReLU::new(3, 16, 0).unwrap(), HeavyBall::new(0.1, 0.5).unwrap())
            .load_checkpoint(dir.join("missing.ckpt"))
    });
    let good = trained(dir);
    let corrupt = dir.join("corrupt.ckpt");
    let mut bytes = std::fs::read(&good).unwrap();
    let last = bytes.len() - 1;
    bytes[last] ^= 0x40;
    std::fs::write(&corrupt, &bytes).unwrap();
    case!(c, "checkpoint with a flipped byte", Checkpoint, "corrupt.ckpt", {
        Trainer::new(TwoLayerReLU::new(3, 16, 0).unwrap(), HeavyBall::new(0.1, 0.5).unwrap()).load_checkpoint(&corrupt)
    });
    let good2 = good.clone();
    case!(c, "checkpoint of another model shape", Checkpoint, "model shape", {
        Trainer::new(TwoLayerReLU::new(3, 32, 0).unwrap(), HeavyBall::new(0.1, 0.5).unwrap()).load_checkpoint(&good2)
    });
    let good3 = good.clone();
    case!(c, "checkpoint of another optimizer", Invalid, "state.optimizer", {
        Trainer::new(TwoLayerReLU::new(3, 16, 0).unwrap(), Nesterov::new(0.1, 0.5).unwrap()).load_checkpoint(&good3)
    });
    let dir_path = dir.to_path_buf();
    case!(c, "checkpoint path that is a directory", Io, "bad_input", {
        Trainer::new(TwoLayerReLU::new(3, 16, 0).unwrap(), HeavyBall::new(0.1, 0.5).unwrap()).load_checkpoint(&dir_path)
    });
    c
}

#[test]
fn every_bad_input_is_the_right_error_naming_the_argument() {
    let _lock = MEMORY.lock().unwrap_or_else(|e| e.into_inner());
    let dir = std::env::temp_dir().join(format!("ntk_momentum_bad_input_{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let dir: &'static std::path::Path = Box::leak(dir.into_boxed_path());
    let cases = api_cases(dir);
    let mut failures = Vec::new();
    for (name, expected, needle, call) in &cases {
        let outcome = std::panic::catch_unwind(std::panic::AssertUnwindSafe(call));
        match outcome {
            Err(_) => failures.push(format!("{name}: panicked")),
            Ok(Ok(())) => failures.push(format!("{name}: returned Ok")),
            Ok(Err(e)) => {
                let message = e.to_string();
                if kind(&e) != Some(*expected) {
                    failures.push(format!("{name}: expected {expected:?}, got {e:?}"));
                } else if !message.to_lowercase().contains(&needle.to_lowercase()) {
                    failures.push(format!("{name}: message does not name {needle:?}: {message}"));
                }
            }
        }
    }
    let _ = std::fs::remove_dir_all(dir);
    println!("[measured] {} bad inputs, {} failures", cases.len(), failures.len());
    assert!(cases.len() >= 60, "{} cases", cases.len());
    assert!(
        failures.is_empty(),
        "{} of {} cases failed:\n{}",
        failures.len(),
        cases.len(),
        failures.join("\n")
    );
}

/// A user-set memory limit refuses what fits the machine but not the limit,
/// naming the bytes and the limit; the environment variable does the same.
#[test]
fn the_memory_limit_is_enforced_and_named() {
    let _lock = MEMORY.lock().unwrap_or_else(|e| e.into_inner());
    ntk_momentum::set_memory_limit(Some(1 << 20));
    let err = TwoLayerReLU::new(1000, 1000, 0).unwrap_err();
    ntk_momentum::set_memory_limit(None);
    match &err {
        Error::TooLarge { requested, limit, .. } => {
            assert_eq!(*limit, 1 << 20);
            assert_eq!(*requested, 16_000_000, "f64 draws and f64 weights");
        }
        e => panic!("{e:?}"),
    }
    assert!(err.to_string().contains("1048576 bytes"), "{err}");
    assert!(TwoLayerReLU::new(1000, 1000, 0).is_ok());
    assert!(ntk_momentum::memory_limit() > 1 << 20);
}
