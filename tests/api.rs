//! The optimizer API as a new user writes it: no annotations, any container,
//! parameter sets, schedules in both conventions (the PyTorch one against
//! real `torch.optim.SGD` + `LambdaLR` iterates), serde. Runs in the
//! optimizer-only build too (`--no-default-features --features nalgebra`),
//! but for the items of the full crate.
#![cfg(feature = "nalgebra")]

use nalgebra::{DMatrix, DVector};
use ntk_momentum::optim::{Convention, Parameters, ParametersMut, Schedule, Shape};
use ntk_momentum::{Error, GradientDescent, HeavyBall, Nesterov, Optimizer};
#[cfg(feature = "full")]
use ntk_momentum::{Trainer, TwoLayerReLU};

/// The snippets of the API issue, compiled as written.
#[test]
fn common_calls_need_no_annotations() -> ntk_momentum::Result<()> {
    let nag = Nesterov::new(0.1, 0.9)?;
    let (lr, mu, name) = (nag.lr(), nag.momentum(), nag.name());
    assert_eq!((lr, mu, name), (0.1, 0.9, "nesterov"));
    let state = nag.state();
    let mut nag2 = nag.clone();
    nag2.reset();
    assert_eq!(state.step, 0);
    assert!(HeavyBall::new(-1.0, 0.5).is_err());
    #[cfg(feature = "full")]
    {
        let trainer = Trainer::new(TwoLayerReLU::new(784, 1024, 0)?, HeavyBall::new(0.1, 0.9)?);
        assert_eq!(trainer.steps_taken(), 0);
    }
    let boxed: Vec<Box<dyn Optimizer<Vec<f64>>>> =
        vec![Box::new(GradientDescent::new(0.1)?), Box::new(Nesterov::new(0.1, 0.9)?)];
    assert_eq!(boxed[1].name(), "nesterov");
    Ok(())
}

/// One optimizer value works on f32 or f64: the first step fixes the float
/// type, reset frees it.
#[test]
fn float_type_is_fixed_by_the_first_step() {
    let mut hb = HeavyBall::new(0.1, 0.9).unwrap();
    hb.step(&mut vec![1.0f32], &vec![1.0f32]).unwrap();
    let err = hb.step(&mut vec![1.0f64], &vec![1.0f64]).unwrap_err();
    assert!(
        matches!(err, Error::Unsupported(_)) && err.to_string().contains("f32"),
        "{err}"
    );
    hb.reset();
    hb.step(&mut vec![1.0f64], &vec![1.0f64]).unwrap();
}

/// Slices, tuples, arrays and Vecs of tensors give the iterates of one
/// optimizer per tensor, bit for bit.
#[test]
fn parameter_sets_equal_one_optimizer_per_tensor() {
    let grad_w = |w: &DMatrix<f64>| w.map(|v| 2.0 * v - 1.0);
    let grad_b = |b: &DVector<f64>| b.map(|v| 0.5 * v + 0.25);
    let (w0, b0) = (
        DMatrix::from_fn(3, 2, |i, j| (i + 2 * j) as f64 * 0.1),
        DVector::from_element(2, 1.0),
    );
    let (mut w, mut b) = (w0.clone(), b0.clone());
    let mut set = Nesterov::new(0.05, 0.9).unwrap();
    let (mut w1, mut b1) = (w0.clone(), b0.clone());
    let (mut ow, mut ob) = (Nesterov::new(0.05, 0.9).unwrap(), Nesterov::new(0.05, 0.9).unwrap());
    let mut flat = w0.as_slice().to_vec();
    let mut slice_opt = Nesterov::new(0.05, 0.9).unwrap();
    let mut arr = [w0.clone(), w0.clone()];
    let mut arr_opt = Nesterov::new(0.05, 0.9).unwrap();
    let mut v = vec![w0.clone()];
    let mut vec_opt = Nesterov::new(0.05, 0.9).unwrap();
    for _ in 0..20 {
        let (gw, gb) = (grad_w(&w), grad_b(&b));
        set.step(&mut (&mut w, &mut b), &(&gw, &gb)).unwrap();
        let (gw1, gb1) = (grad_w(&w1), grad_b(&b1));
        ow.step(&mut w1, &gw1).unwrap();
        ob.step(&mut b1, &gb1).unwrap();
        let g = grad_w(&DMatrix::from_column_slice(3, 2, &flat));
        slice_opt.step(&mut flat[..], g.as_slice()).unwrap();
        let ga = [grad_w(&arr[0]), grad_w(&arr[1])];
        arr_opt.step(&mut arr, &ga).unwrap();
        let gv = vec![grad_w(&v[0])];
        vec_opt.step(&mut v, &gv).unwrap();
    }
    assert_eq!(w, w1);
    assert_eq!(b, b1);
    assert_eq!(flat.as_slice(), w1.as_slice());
    assert_eq!(arr[0], w1);
    assert_eq!(arr[1], w1);
    assert_eq!(v[0], w1);
    let state = set.state();
    assert_eq!(state.tensors.len(), 2);
    assert_eq!(state.tensors[0].shape, vec![3, 2]);
    assert_eq!(state.tensors[1].shape, vec![2]);
}

#[test]
fn mismatched_sets_are_refused_with_nothing_changed() {
    let mut hb = HeavyBall::new(0.1, 0.9).unwrap();
    let (mut a, mut b) = (vec![1.0; 3], vec![1.0; 2]);
    hb.step(&mut (&mut a, &mut b), &(&vec![1.0; 3], &vec![1.0; 2])).unwrap();
    let before = (a.clone(), b.clone(), hb.state());
    let cases: Vec<(Error, &str)> = vec![
        (
            hb.step(&mut (&mut a, &mut b), &(&vec![1.0; 3], &vec![1.0; 3]))
                .unwrap_err(),
            "gradient of parameter tensor 1",
        ),
        (
            hb.step(&mut (&mut a, &mut b), &(&vec![f64::NAN; 3], &vec![1.0; 2]))
                .unwrap_err(),
            "gradient of parameter tensor 0",
        ),
        (hb.step(&mut a, &vec![1.0; 3]).unwrap_err(), "number of tensors"),
    ];
    for (err, what) in cases {
        assert!(err.to_string().contains(what), "{err}");
    }
    assert_eq!((a, b, hb.state()), before);
}

/// A set that lends one tensor at a time (no `all_tensors_mut`).
#[derive(Clone, Debug, PartialEq)]
struct OneAtATime(Vec<Vec<f64>>);

impl Parameters for OneAtATime {
    type Scalar = f64;
    fn tensor_count(&self) -> usize {
        self.0.tensor_count()
    }
    fn tensor(&self, i: usize) -> ntk_momentum::Result<(Shape, &[f64])> {
        self.0.tensor(i)
    }
}
impl ParametersMut for OneAtATime {
    fn tensor_mut(&mut self, i: usize) -> ntk_momentum::Result<(Shape, &mut [f64])> {
        self.0.tensor_mut(i)
    }
}

/// A set whose `all_tensors_mut` lends its tensors in the wrong order.
struct Swapped(Vec<f64>, Vec<f64>);

impl Parameters for Swapped {
    type Scalar = f64;
    fn tensor_count(&self) -> usize {
        2
    }
    fn tensor(&self, i: usize) -> ntk_momentum::Result<(Shape, &[f64])> {
        if i == 0 {
            self.0.tensor(0)
        } else {
            self.1.tensor(i - 1)
        }
    }
}
impl ParametersMut for Swapped {
    fn tensor_mut(&mut self, i: usize) -> ntk_momentum::Result<(Shape, &mut [f64])> {
        if i == 0 {
            self.0.tensor_mut(0)
        } else {
            self.1.tensor_mut(i - 1)
        }
    }
    #[allow(clippy::type_complexity)]
    fn all_tensors_mut(&mut self) -> ntk_momentum::Result<Option<Vec<(Shape, &mut [f64])>>> {
        Ok(Some(vec![self.1.tensor_mut(0)?, self.0.tensor_mut(0)?]))
    }
}

/// Sets lent together (one parallel pass over all tensors) and one tensor at
/// a time give the same iterates bit for bit, the same errors, and change
/// nothing on error; a set that lends other tensors than it declares is
/// refused before anything is written.
#[test]
fn sets_lent_together_equal_sets_lent_one_at_a_time() {
    // 40 tensors of 20,000 entries: above the size at which passes go parallel.
    let init: Vec<Vec<f64>> = (0..40)
        .map(|k| {
            (0..20_000)
                .map(|i| ((i * 7 + k * 13) % 101) as f64 / 50.0 - 1.0)
                .collect()
        })
        .collect();
    let (mut together, mut apart) = (init.clone(), OneAtATime(init.clone()));
    let mut nag = [Nesterov::new(0.05, 0.9).unwrap(), Nesterov::new(0.05, 0.9).unwrap()];
    for _ in 0..5 {
        let g: Vec<Vec<f64>> = together
            .iter()
            .map(|t| t.iter().map(|v| v * v - 0.5).collect())
            .collect();
        nag[0].step(&mut together, &g).unwrap();
        nag[1].step(&mut apart, &g).unwrap();
    }
    assert_eq!(together, apart.0);
    assert_eq!(nag[0].state(), nag[1].state());
    let mut g: Vec<Vec<f64>> = vec![vec![0.0; 20_000]; 40];
    g[27][19_999] = f64::INFINITY;
    let before = (together.clone(), nag[0].state());
    let e0 = nag[0].step(&mut together, &g).unwrap_err();
    let e1 = nag[1].step(&mut apart, &g).unwrap_err();
    assert_eq!(e0.to_string(), e1.to_string());
    assert!(e0.to_string().contains("gradient of parameter tensor 27") && e0.to_string().contains("entry 19999"));
    together[31][5] = f64::NAN;
    let e = nag[0].step(&mut together, &vec![vec![0.0; 20_000]; 40]).unwrap_err();
    assert!(e.to_string().contains("parameter tensor 31"), "{e}");
    together[31][5] = before.0[31][5];
    assert_eq!((together, nag[0].state()), before);

    // Swapped tensors are refused whether their shapes differ or not.
    for (a, b) in [(3, 2), (2, 2)] {
        let mut swapped = Swapped(vec![1.0; a], vec![2.0; b]);
        let mut hb = HeavyBall::new(0.1, 0.5).unwrap();
        let err = hb.step(&mut swapped, &(vec![1.0; a], vec![1.0; b])).unwrap_err();
        assert!(matches!(err, Error::ShapeMismatch { .. }), "{err}");
        assert!(err.to_string().contains("all_tensors_mut"), "{err}");
        assert_eq!(
            (swapped.0, swapped.1, hb.steps_taken()),
            (vec![1.0; a], vec![2.0; b], 0)
        );
    }
}

/// A step that would overflow (finite inputs, a non-finite result) is an
/// error and changes nothing; a step the cheap bound cannot clear but whose
/// result is finite (the exact pre-evaluation path) equals the unchecked
/// step bit for bit.
#[test]
fn updates_that_would_overflow_are_refused_with_nothing_changed() {
    type Named = (&'static str, Box<dyn Optimizer<Vec<f32>>>);
    let optimizers = || -> Vec<Named> {
        vec![
            ("gd", Box::new(GradientDescent::new(1.0).unwrap())),
            ("hb", Box::new(HeavyBall::new(1.0, 0.5).unwrap())),
            (
                "hb torch",
                Box::new(HeavyBall::new(1.0, 0.5).unwrap().convention(Convention::PyTorch)),
            ),
            ("nag", Box::new(Nesterov::new(1.0, 0.5).unwrap())),
            (
                "nag torch",
                Box::new(Nesterov::new(1.0, 0.5).unwrap().convention(Convention::PyTorch)),
            ),
        ]
    };
    for (name, mut opt) in optimizers() {
        // A finite first step, then one that overflows f32 (3.4e38).
        let mut x = vec![1.0_f32, 3.0e38];
        opt.step(&mut x, &vec![0.5, 0.0]).unwrap();
        let before = (x.clone(), opt.state());
        let err = opt.step(&mut x, &vec![0.0, -2.0e38]).unwrap_err();
        assert!(matches!(err, Error::NonFinite { .. }), "{name}: {err}");
        assert!(
            err.to_string().contains("overflow") && err.to_string().contains("entry 1"),
            "{name}: {err}"
        );
        assert_eq!((x, opt.state()), before, "{name}: changed on error");
    }
    // lr = 1e300 in f64 with a finite gradient: refused at the first step,
    // which leaves the optimizer without state.
    let mut nag = Nesterov::new(1e300, 0.9).unwrap();
    let mut x = vec![1.0, 2.0];
    let err = nag.step(&mut x, &vec![1e10, 1.0]).unwrap_err();
    assert!(err.to_string().contains("overflow"), "{err}");
    assert_eq!(
        (x, nag.steps_taken(), nag.state().tensors.len()),
        (vec![1.0, 2.0], 0, 0)
    );
    // Bound above half of f32::MAX but a finite result: the step is taken,
    // bit for bit as without the check.
    for (name, mut opt) in optimizers() {
        let mut checked = vec![2.0e38_f32, -1.0];
        let mut unchecked_opt: Box<dyn Optimizer<Vec<f32>>> = match name {
            "gd" => Box::new(GradientDescent::new(1.0).unwrap().check_finite(false)),
            "hb" => Box::new(HeavyBall::new(1.0, 0.5).unwrap().check_finite(false)),
            "hb torch" => Box::new(
                HeavyBall::new(1.0, 0.5)
                    .unwrap()
                    .convention(Convention::PyTorch)
                    .check_finite(false),
            ),
            "nag" => Box::new(Nesterov::new(1.0, 0.5).unwrap().check_finite(false)),
            _ => Box::new(
                Nesterov::new(1.0, 0.5)
                    .unwrap()
                    .convention(Convention::PyTorch)
                    .check_finite(false),
            ),
        };
        let mut unchecked = checked.clone();
        let g = vec![4.0e37_f32, 1.0];
        for _ in 0..2 {
            opt.step(&mut checked, &g).unwrap();
            unchecked_opt.step(&mut unchecked, &g).unwrap();
        }
        assert_eq!(checked, unchecked, "{name}");
        assert_eq!(opt.state().tensors, unchecked_opt.state().tensors, "{name}");
    }
}

/// Without the finiteness check a step gives bit for bit the checked step's
/// iterates on finite input, and lets NaN through (PyTorch's contract); with
/// it (the default) NaN is refused. Shapes are checked either way.
#[test]
fn unchecked_steps_equal_checked_ones_and_let_nan_through() {
    for convention in [Convention::Displacement, Convention::PyTorch] {
        let mut checked = Nesterov::new(0.05, 0.9).unwrap().convention(convention);
        let mut unchecked = Nesterov::new(0.05, 0.9)
            .unwrap()
            .convention(convention)
            .check_finite(false);
        assert!(checked.checks_finite() && !unchecked.checks_finite());
        let (mut x, mut y) = (vec![1.0_f32, -2.0, 3.0], vec![1.0_f32, -2.0, 3.0]);
        for t in 0..20 {
            let g: Vec<f32> = x.iter().map(|v| v * (1.0 + t as f32 * 0.1)).collect();
            checked.step(&mut x, &g).unwrap();
            unchecked.step(&mut y, &g).unwrap();
        }
        assert_eq!(x, y);
        assert_eq!(checked.state(), unchecked.state());
        let nan = vec![f32::NAN, 0.0, 0.0];
        assert!(matches!(checked.step(&mut x, &nan), Err(Error::NonFinite { .. })));
        unchecked.step(&mut y, &nan).unwrap();
        assert!(y[0].is_nan() && y[1].is_finite());
        assert!(matches!(
            unchecked.step(&mut y, &vec![0.0_f32; 2]),
            Err(Error::ShapeMismatch { .. })
        ));
    }
}

/// A schedule value out of range is refused at the step that uses it.
#[test]
fn out_of_range_schedule_values_are_refused() {
    let lr = Schedule::from_fn(|t| if t < 3 { 0.1 } else { -1.0 });
    let mut gd = GradientDescent::with_schedules(lr).unwrap();
    let mut x = vec![1.0];
    for _ in 0..3 {
        gd.step(&mut x, &vec![1.0]).unwrap();
    }
    let err = gd.step(&mut x, &vec![1.0]).unwrap_err();
    assert!(err.to_string().contains("step 3"), "{err}");
    assert_eq!(gd.steps_taken(), 3);
    let mom = Schedule::piecewise(vec![2], vec![0.9, 1.0]).unwrap();
    let mut nag = Nesterov::with_schedules(0.1, mom).unwrap();
    nag.step(&mut x, &vec![1.0]).unwrap();
    nag.step(&mut x, &vec![1.0]).unwrap();
    let err = nag.step(&mut x, &vec![1.0]).unwrap_err();
    assert!(matches!(err, Error::InvalidParameter { name: "momentum", .. }), "{err}");
}

/// The displacement convention under a cosine schedule equals an
/// independent implementation of θ_{t+1} = θ_t − η_t g_t + β_t v_t − β_t η_t (g_t − g_{t−1}).
#[test]
fn displacement_form_under_schedules_matches_its_recursion() {
    let a = [0.3, 1.0, 2.5, 7.0, 15.0];
    let lr = Schedule::cosine(0.05, 0.001, 40).unwrap();
    let mom = Schedule::linear_warmup(5, Schedule::constant(0.9)).unwrap();
    for nesterov in [false, true] {
        let mut x = vec![1.0, -2.0, 0.5, 3.0, -1.5];
        let (mut theta, mut prev, mut g_prev) = (x.clone(), x.clone(), vec![0.0; 5]);
        let mut opt: Box<dyn Optimizer<Vec<f64>>> = if nesterov {
            Box::new(Nesterov::with_schedules(lr.clone(), mom.clone()).unwrap())
        } else {
            Box::new(HeavyBall::with_schedules(lr.clone(), mom.clone()).unwrap())
        };
        for t in 0..80u64 {
            let g: Vec<f64> = x.iter().zip(&a).map(|(x, a)| a * x).collect();
            opt.step(&mut x, &g).unwrap();
            let (eta, beta) = (lr.value(t), mom.value(t));
            let gt: Vec<f64> = theta.iter().zip(&a).map(|(x, a)| a * x).collect();
            let next: Vec<f64> = (0..5)
                .map(|i| {
                    let corr = if nesterov {
                        beta * eta * (gt[i] - g_prev[i])
                    } else {
                        0.0
                    };
                    theta[i] - eta * gt[i] + beta * (theta[i] - prev[i]) - corr
                })
                .collect();
            prev = std::mem::replace(&mut theta, next);
            g_prev = gt;
            for i in 0..5 {
                assert!(
                    (x[i] - theta[i]).abs() <= 1e-12 * (1.0 + theta[i].abs()),
                    "t={t}: {x:?} vs {theta:?}"
                );
            }
        }
    }
}

/// `Convention::PyTorch` equals real torch.optim.SGD + LambdaLR iterates
/// (tests/golden/torch_sgd_schedules.json, from
/// scripts/golden_torch_schedules.py) to 1e-12.
#[test]
fn pytorch_convention_equals_torch_sgd_with_lambda_lr() {
    let golden: serde_json::Value =
        serde_json::from_str(include_str!("golden/torch_sgd_schedules.json")).expect("golden JSON");
    let a: Vec<f64> = serde_json::from_value(golden["a"].clone()).unwrap();
    let x0: Vec<f64> = serde_json::from_value(golden["x0"].clone()).unwrap();
    let mut worst = 0.0f64;
    for case in golden["cases"].as_array().unwrap() {
        let name = case["schedule"].as_str().unwrap();
        let nesterov = case["nesterov"].as_bool().unwrap();
        let lrs: Vec<f64> = serde_json::from_value(case["lrs"].clone()).unwrap();
        let iterates: Vec<Vec<f64>> = serde_json::from_value(case["iterates"].clone()).unwrap();
        let schedule = match name {
            "constant" => Schedule::constant(0.05),
            "step_decay" => Schedule::step_decay(0.05, 0.5, 10).unwrap(),
            "cosine" => Schedule::cosine(0.05, 0.05 * 0.01, 60).unwrap(),
            _ => {
                let lrs = lrs.clone();
                Schedule::from_fn(move |t| lrs[t as usize])
            }
        };
        for (t, &l) in lrs.iter().enumerate() {
            approx::assert_abs_diff_eq!(schedule.value(t as u64), l, epsilon = 1e-15);
        }
        let mut opt: Box<dyn Optimizer<Vec<f64>>> = if nesterov {
            Box::new(
                Nesterov::with_schedules(schedule, 0.9)
                    .unwrap()
                    .convention(Convention::PyTorch),
            )
        } else {
            Box::new(
                HeavyBall::with_schedules(schedule, 0.9)
                    .unwrap()
                    .convention(Convention::PyTorch),
            )
        };
        let mut x = x0.clone();
        for (t, want) in iterates.iter().enumerate().skip(1) {
            let g: Vec<f64> = x.iter().zip(&a).map(|(x, a)| a * x).collect();
            opt.step(&mut x, &g).unwrap();
            for (got, want) in x.iter().zip(want) {
                let err = (got - want).abs();
                worst = worst.max(err);
                assert!(err <= 1e-12, "{name} nesterov={nesterov} step {t}: {got} vs {want}");
            }
        }
    }
    println!("[measured] max |crate - torch| over 8 cases x 80 steps: {worst:.2e}");
}

/// set_lr keeps the velocity: changing η mid-run equals a piecewise schedule.
#[test]
fn set_lr_keeps_velocity() {
    let mut a = HeavyBall::new(0.1, 0.9).unwrap();
    let mut b = HeavyBall::with_schedules(Schedule::piecewise(vec![5], vec![0.1, 0.02]).unwrap(), 0.9).unwrap();
    let (mut x, mut y) = (vec![1.0, 2.0], vec![1.0, 2.0]);
    for t in 0..10 {
        if t == 5 {
            a.set_lr(0.02).unwrap();
        }
        let g = x.clone();
        a.step(&mut x, &g).unwrap();
        let h = y.clone();
        b.step(&mut y, &h).unwrap();
    }
    assert_eq!(x, y);
    assert!(a.set_lr(f64::NAN).is_err());
    assert_eq!(a.lr(), 0.02);
}

#[cfg(feature = "ndarray")]
#[test]
fn ndarray_arrays_and_views() {
    use ndarray::{Array2, Array3};
    let mut nag = Nesterov::new(0.1, 0.9).unwrap();
    let mut p = Array3::<f64>::ones((2, 3, 4));
    let g = Array3::<f64>::ones((2, 3, 4));
    nag.step(&mut p, &g).unwrap();
    approx::assert_abs_diff_eq!(p[[1, 2, 3]], 1.0 - 0.1 * 1.9, epsilon = 1e-15);
    let mut q = Array2::<f64>::ones((4, 4));
    let gq = Array2::<f64>::ones((4, 4));
    let mut hb = HeavyBall::new(0.1, 0.9).unwrap();
    hb.step(&mut q.view_mut(), &gq.view()).unwrap();
    assert_eq!(q[[0, 0]], 0.9);
    let mut t = q.clone().reversed_axes();
    let mut hb2 = HeavyBall::new(0.1, 0.9).unwrap();
    let err = hb2
        .step(
            &mut t.slice_mut(ndarray::s![.., ..;2]),
            &gq.slice(ndarray::s![.., ..;2]),
        )
        .unwrap_err();
    assert!(err.to_string().contains("not contiguous"), "{err}");
}

#[cfg(feature = "serde")]
#[test]
fn states_and_schedules_round_trip_through_json_and_resume_bit_identically() {
    let schedule = Schedule::linear_warmup(3, Schedule::cosine(0.1, 0.01, 20).unwrap()).unwrap();
    let json = serde_json::to_string(&schedule).unwrap();
    assert_eq!(serde_json::from_str::<Schedule>(&json).unwrap(), schedule);
    assert!(serde_json::to_string(&Schedule::from_fn(|_| 0.1)).is_err());
    let mut a = Nesterov::with_schedules(schedule.clone(), 0.9).unwrap();
    let mut x = vec![1.0f32, -2.0, 3.0];
    for _ in 0..7 {
        let g: Vec<f32> = x.iter().map(|v| 3.0 * v).collect();
        a.step(&mut x, &g).unwrap();
    }
    let json = serde_json::to_string(&a.state()).unwrap();
    let mut b = Nesterov::with_schedules(schedule, 0.9).unwrap();
    b.set_state(&serde_json::from_str(&json).unwrap()).unwrap();
    let mut y = x.clone();
    for _ in 0..10 {
        let g: Vec<f32> = x.iter().map(|v| 3.0 * v).collect();
        a.step(&mut x, &g).unwrap();
        let h: Vec<f32> = y.iter().map(|v| 3.0 * v).collect();
        b.step(&mut y, &h).unwrap();
    }
    assert_eq!(x, y);
}

/// The public types users move across threads are `Send` (and `Sync`
/// where shared access is safe): a compile-time check.
#[test]
fn public_types_are_send_and_sync() {
    fn send_sync<T: Send + Sync>() {}
    fn send<T: Send>() {}
    send_sync::<GradientDescent>();
    send_sync::<HeavyBall>();
    send_sync::<Nesterov>();
    send_sync::<Schedule>();
    send_sync::<ntk_momentum::OptimizerState>();
    send_sync::<ntk_momentum::optim::ReduceOnPlateau>();
    send_sync::<ntk_momentum::optim::ParamGroup>();
    send_sync::<Error>();
    send_sync::<ntk_momentum::History>();
    #[cfg(feature = "full")]
    {
        send_sync::<TwoLayerReLU<f32>>();
        send_sync::<TwoLayerReLU<f64>>();
        send_sync::<ntk_momentum::ntk::Spectrum>();
        // A trainer owns `Send` observers, so it is `Send` but not `Sync`.
        send::<Trainer<f64, Nesterov>>();
        send::<Trainer<f32, Box<dyn Optimizer<DMatrix<f32>> + Send>>>();
    }
    let _ = send::<Nesterov>;
}
