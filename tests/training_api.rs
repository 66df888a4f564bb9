//! The training side of the API: schedules in `Trainer` (weight and kernel
//! space agree) and in `theory::predicted_losses` (exact for a linear model),
//! `Send` trainers on two threads, call-scoped observers, evaluation sets,
//! options, and serde of the run records.
#![cfg(feature = "full")]

mod support;

use nalgebra::{DMatrix, DVector};
use ntk_momentum::optim::Schedule;
use ntk_momentum::theory::{predicted_losses, Method};
use ntk_momentum::train::{Control, Parameterization, StepInfo, TrainOptions, Trainer};
use ntk_momentum::{GradientDescent, HeavyBall, Nesterov, Optimizer, TwoLayerReLU};
use rand::{RngExt, SeedableRng};
use rand_chacha::ChaCha8Rng;
use support::{labels, max_rel_diff, unit_rows};

fn cosine() -> Schedule {
    Schedule::cosine(0.6, 0.05, 100).unwrap()
}

/// Kernel space is exact for data-independent schedules: weight and kernel
/// space agree to 1e-9 relative over 100 steps under a cosine step size and
/// a piecewise momentum, for HB and NAG, and both differ from the constant
/// run (so the schedule is in force).
#[test]
fn weight_and_kernel_space_agree_under_a_cosine_schedule() {
    let (x, y) = (unit_rows(12, 6, 1), labels(12, 2));
    let momentum = Schedule::piecewise(vec![40], vec![0.8, 0.6]).unwrap();
    for method in ["hb", "nag"] {
        let run = |p: Parameterization, lr: Schedule| {
            let model = TwoLayerReLU::new(6, 512, 3).unwrap();
            let optimizer: Box<dyn Optimizer<DMatrix<f64>> + Send> = match method {
                "hb" => Box::new(HeavyBall::with_schedules(lr, momentum.clone()).unwrap()),
                _ => Box::new(Nesterov::with_schedules(lr, momentum.clone()).unwrap()),
            };
            let mut t = Trainer::new(model, optimizer).max_steps(100).parameterization(p);
            let h = t.run(&x, &y).unwrap();
            assert_eq!(t.resolved_parameterization(), Some(p));
            (h.losses().to_vec(), t.into_model().weights().clone())
        };
        let (lw, ww) = run(Parameterization::Weight, cosine());
        let (lk, wk) = run(Parameterization::Kernel, cosine());
        let loss_gap = max_rel_diff(&lk, &lw);
        let weight_gap = (&wk - &ww).norm() / ww.norm();
        assert!(loss_gap < 1e-9, "{method}: losses differ by {loss_gap:e}");
        assert!(weight_gap < 1e-9, "{method}: weights differ by {weight_gap:e}");
        let (lc, _) = run(Parameterization::Weight, Schedule::constant(0.6));
        assert!(max_rel_diff(&lc, &lw) > 1e-3, "{method}: the schedule had no effect");
    }
}

/// A linear least-squares model u = J θ trained by the crate's optimizers
/// under a schedule: its losses equal `predicted_losses` with the same
/// schedules to 1e-9 relative (GD, HB, NAG; cosine η, step-decay β).
#[test]
fn predicted_losses_follow_a_scheduled_linear_model() {
    let (n, p) = (10, 16);
    let mut rng = ChaCha8Rng::seed_from_u64(7);
    let j = DMatrix::from_fn(n, p, |_, _| rng.random_range(-1.0..1.0) / (p as f64).sqrt());
    let y = DVector::from_fn(n, |_, _| rng.random_range(-1.0..1.0));
    let h = &j * j.transpose();
    let eig = h.clone().symmetric_eigen();
    let lambda_max = eig.eigenvalues.max();
    let lr = Schedule::cosine(0.9 / lambda_max, 0.2 / lambda_max, 150).unwrap();
    let momentum = Schedule::step_decay(0.9, 0.5, 60).unwrap();
    let steps = 150;
    for method in [Method::GradientDescent, Method::HeavyBall, Method::Nesterov] {
        let mut optimizer: Box<dyn Optimizer<DVector<f64>>> = match method {
            Method::GradientDescent => Box::new(GradientDescent::with_schedules(lr.clone()).unwrap()),
            Method::HeavyBall => Box::new(HeavyBall::with_schedules(lr.clone(), momentum.clone()).unwrap()),
            _ => Box::new(Nesterov::with_schedules(lr.clone(), momentum.clone()).unwrap()),
        };
        let mut theta = DVector::zeros(p);
        let mut measured = Vec::new();
        for t in 0..=steps {
            let xi = &j * &theta - &y;
            measured.push(0.5 * xi.norm_squared());
            if t < steps {
                let g = j.transpose() * &xi;
                optimizer.step(&mut theta, &g).unwrap();
            }
        }
        let xi0 = -&y;
        let predicted = predicted_losses(
            method,
            lr.clone(),
            momentum.clone(),
            eig.eigenvalues.as_slice(),
            &eig.eigenvectors,
            &xi0,
            steps,
        )
        .unwrap();
        let gap = max_rel_diff(&predicted, &measured);
        assert!(gap < 1e-9, "{method}: predicted and measured losses differ by {gap:e}");
        assert!(measured[steps] < 1e-2 * measured[0], "{method}: did not train");
    }
}

/// A schedule that leaves the valid range at some step is refused by the
/// prediction before any work, naming the step.
#[test]
fn predicted_losses_refuse_a_schedule_out_of_range() {
    let v = DMatrix::<f64>::identity(2, 2);
    let xi0 = DVector::from_vec(vec![1.0, 1.0]);
    let lr = Schedule::piecewise(vec![5], vec![0.1, -0.1]).unwrap();
    let err = predicted_losses(Method::HeavyBall, lr.clone(), 0.5, &[1.0, 0.5], &v, &xi0, 10).unwrap_err();
    assert!(err.to_string().contains("step 5"), "{err}");
    // Five steps never reach the bad value.
    assert_eq!(
        predicted_losses(Method::HeavyBall, lr, 0.5, &[1.0, 0.5], &v, &xi0, 5)
            .unwrap()
            .len(),
        6
    );
    let momentum = Schedule::from_fn(|t| if t < 3 { 0.9 } else { 1.0 });
    assert!(predicted_losses(Method::Nesterov, 0.1, momentum, &[1.0, 0.5], &v, &xi0, 4).is_err());
}

fn assert_send<T: Send>(_: &T) {}

/// Trainers are `Send`: HB and NAG train on two threads at once, with the
/// same losses as one after the other.
#[test]
fn trainers_train_on_two_threads() {
    let (x, y) = (unit_rows(10, 5, 3), labels(10, 4));
    let make = |nag: bool| {
        let model = TwoLayerReLU::new(5, 256, 1).unwrap();
        let optimizer: Box<dyn Optimizer<DMatrix<f64>> + Send> = if nag {
            Box::new(Nesterov::new(0.5, 0.8).unwrap())
        } else {
            Box::new(HeavyBall::new(0.5, 0.8).unwrap())
        };
        Trainer::new(model, optimizer)
            .max_steps(50)
            .observer(|_: &StepInfo| Control::Continue)
    };
    let (mut hb, mut nag) = (make(false), make(true));
    assert_send(&hb);
    let (parallel_hb, parallel_nag) = std::thread::scope(|s| {
        let a = s.spawn(|| hb.run(&x, &y).unwrap());
        let b = s.spawn(|| nag.run(&x, &y).unwrap());
        (a.join().unwrap(), b.join().unwrap())
    });
    let sequential_hb = make(false).run(&x, &y).unwrap();
    let sequential_nag = make(true).run(&x, &y).unwrap();
    assert_eq!(parallel_hb.losses(), sequential_hb.losses());
    assert_eq!(parallel_nag.losses(), sequential_nag.losses());
    assert_ne!(parallel_hb.losses(), parallel_nag.losses());
}

/// A call-scoped observer borrows from the caller and can stop the run; it
/// sees the same steps as an owned one.
#[test]
fn run_with_takes_a_borrowing_observer() {
    let (x, y) = (unit_rows(8, 4, 5), labels(8, 6));
    let mut trainer =
        Trainer::new(TwoLayerReLU::new(4, 128, 2).unwrap(), HeavyBall::new(0.5, 0.5).unwrap()).max_steps(40);
    let mut seen = Vec::new();
    let history = trainer
        .run_with(&x, &y, &mut |info: &StepInfo| {
            seen.push((info.step, info.loss));
            if info.step == 12 {
                Control::Stop
            } else {
                Control::Continue
            }
        })
        .unwrap();
    assert_eq!(history.steps(), 12);
    assert_eq!(history.stop_reason(), Some(ntk_momentum::Stop::Observer));
    assert_eq!(seen.len(), 13);
    assert!(seen.iter().zip(history.losses()).all(|((_, a), b)| a == b));
}

/// The evaluation set's loss and sign accuracy, recorded at the diagnostics
/// cadence, equal the model's own loss and accuracy on it at the start and
/// the end, agree between weight and kernel space, and are absent without
/// an evaluation set.
#[test]
fn evaluation_set_records_test_loss_and_accuracy() {
    let (x, y) = (unit_rows(16, 6, 8), labels(16, 9));
    let (xt, yt) = (unit_rows(9, 6, 10), labels(9, 11));
    let accuracy = |model: &TwoLayerReLU<f64>| {
        let u = model.forward(&xt).unwrap();
        u.iter().zip(yt.iter()).filter(|(u, y)| *u * *y > 0.0).count() as f64 / 9.0
    };
    let mut records = Vec::new();
    for p in [Parameterization::Weight, Parameterization::Kernel] {
        let model = TwoLayerReLU::new(6, 256, 4).unwrap();
        let initial = (model.loss(&xt, &yt).unwrap(), accuracy(&model));
        let mut trainer = Trainer::new(model, Nesterov::new(0.5, 0.8).unwrap())
            .max_steps(35)
            .diagnostics_every(10)
            .parameterization(p)
            .evaluation_set(xt.clone(), yt.clone())
            .unwrap();
        let history = trainer.run(&x, &y).unwrap();
        let d = history.diagnostics();
        assert_eq!(d.iter().map(|d| d.step).collect::<Vec<_>>(), [0, 10, 20, 30, 35]);
        assert_eq!(d[0].test_loss, Some(initial.0));
        assert_eq!(d[0].test_accuracy, Some(initial.1));
        let model = trainer.model();
        let last = d.last().unwrap();
        approx::assert_abs_diff_eq!(
            last.test_loss.unwrap(),
            model.loss(&xt, &yt).unwrap(),
            epsilon = 1e-10 * initial.0
        );
        assert_eq!(last.test_accuracy, Some(accuracy(model)));
        records.push(d.iter().map(|d| d.test_loss.unwrap()).collect::<Vec<_>>());
    }
    assert!(max_rel_diff(&records[1], &records[0]) < 1e-9);
    let plain = Trainer::new(TwoLayerReLU::new(6, 64, 4).unwrap(), HeavyBall::new(0.5, 0.5).unwrap())
        .max_steps(3)
        .run(&x, &y)
        .unwrap();
    assert!(plain
        .diagnostics()
        .iter()
        .all(|d| d.test_loss.is_none() && d.test_accuracy.is_none()));
}

/// An evaluation set of the wrong width, with NaN, or with a wrong number of
/// targets is refused when it is set, naming it.
#[test]
fn bad_evaluation_sets_are_refused() {
    let trainer = || Trainer::new(TwoLayerReLU::new(4, 32, 0).unwrap(), HeavyBall::new(0.1, 0.5).unwrap());
    let err = trainer()
        .evaluation_set(unit_rows(3, 5, 1), labels(3, 1))
        .err()
        .unwrap();
    assert!(err.to_string().contains("evaluation set x_test"), "{err}");
    let mut xt = unit_rows(3, 4, 1);
    xt[(1, 2)] = f64::NAN;
    let err = trainer().evaluation_set(xt, labels(3, 1)).err().unwrap();
    assert!(
        err.to_string().contains("evaluation set x_test") && err.to_string().contains("non-finite"),
        "{err}"
    );
    let err = trainer()
        .evaluation_set(unit_rows(3, 4, 1), labels(2, 1))
        .err()
        .unwrap();
    assert!(err.to_string().contains("evaluation set y_test"), "{err}");
}

/// Options set one by one equal options set at once, and invalid ones are
/// refused when set.
#[test]
fn options_all_at_once() {
    let (x, y) = (unit_rows(8, 4, 1), labels(8, 2));
    let mut options = TrainOptions::default();
    options.max_steps = 17;
    options.diagnostics_every = 5;
    options.parameterization = Parameterization::Weight;
    let model = || TwoLayerReLU::new(4, 64, 0).unwrap();
    let mut a = Trainer::new(model(), HeavyBall::new(0.3, 0.5).unwrap())
        .with_options(options.clone())
        .unwrap();
    let mut b = Trainer::new(model(), HeavyBall::new(0.3, 0.5).unwrap())
        .max_steps(17)
        .diagnostics_every(5)
        .parameterization(Parameterization::Weight);
    assert_eq!(a.options(), b.options());
    let (ha, hb) = (a.run(&x, &y).unwrap(), b.run(&x, &y).unwrap());
    assert_eq!((ha.losses(), ha.diagnostics()), (hb.losses(), hb.diagnostics()));
    assert_eq!(ha.steps(), 17);
    options.target_loss = Some(f64::NAN);
    let err = Trainer::new(model(), HeavyBall::new(0.3, 0.5).unwrap())
        .with_options(options)
        .err()
        .unwrap();
    assert!(err.to_string().contains("target_loss"), "{err}");
}

/// JSON round trips of a run's history (with diagnostics and evaluation),
/// the options, a spectrum and a tuning.
#[cfg(feature = "serde")]
#[test]
fn run_records_round_trip_through_json() {
    use ntk_momentum::ntk::Spectrum;
    use ntk_momentum::theory::{tune, Tuning, TuningRule};
    use ntk_momentum::History;

    fn round_trip<T: serde::Serialize + serde::de::DeserializeOwned + PartialEq + std::fmt::Debug>(value: &T) {
        let json = serde_json::to_string(value).unwrap();
        assert_eq!(&serde_json::from_str::<T>(&json).unwrap(), value, "{json}");
    }
    let (x, y) = (unit_rows(8, 4, 1), labels(8, 2));
    let history: History = Trainer::new(TwoLayerReLU::new(4, 64, 0).unwrap(), Nesterov::new(0.3, 0.5).unwrap())
        .max_steps(12)
        .diagnostics_every(4)
        .evaluation_set(unit_rows(3, 4, 5), labels(3, 6))
        .unwrap()
        .run(&x, &y)
        .unwrap();
    assert!(history.diagnostics()[1].test_loss.is_some());
    round_trip(&history);
    let mut options = TrainOptions::default();
    options.target_relative_loss = Some(1e-6);
    round_trip(&options);
    let spectrum = Spectrum::of(&DMatrix::from_row_slice(2, 2, &[2.0, 0.5, 0.5, 1.0])).unwrap();
    round_trip(&spectrum);
    let tuning: Tuning = tune(TuningRule::NesterovQuadraticOptimal, 0.1, 10.0).unwrap();
    round_trip(&tuning);
}
