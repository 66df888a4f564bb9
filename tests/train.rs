//! Tests of the training loop: both parameterizations, an independent
//! reference implementation, stopping rules, checkpoints, determinism.
#![cfg(feature = "full")]

mod support;

use nalgebra::{DMatrix, DVector};
use ntk_momentum::train::{Control, Parameterization, StepInfo, Trainer};
use ntk_momentum::Stop;
use ntk_momentum::{Error, GradientDescent, HeavyBall, Nesterov, Optimizer, TwoLayerReLU};
use support::{labels, max_rel_diff, unit_rows, SignDescent};

#[derive(Clone, Copy, Debug)]
enum Method {
    Gd,
    Hb,
    Nag,
}

fn losses_with(
    method: Method,
    p: Parameterization,
    x: &DMatrix<f64>,
    y: &DVector<f64>,
    m: usize,
    steps: usize,
) -> Vec<f64> {
    let model = TwoLayerReLU::new(x.ncols(), m, 3).unwrap();
    let (lr, mom) = (0.1, 0.8);
    let h = match method {
        Method::Gd => Trainer::new(model, GradientDescent::new(lr).unwrap())
            .max_steps(steps)
            .parameterization(p)
            .run(x, y),
        Method::Hb => Trainer::new(model, HeavyBall::new(lr, mom).unwrap())
            .max_steps(steps)
            .parameterization(p)
            .run(x, y),
        Method::Nag => Trainer::new(model, Nesterov::new(lr, mom).unwrap())
            .max_steps(steps)
            .parameterization(p)
            .run(x, y),
    };
    h.unwrap().losses().to_vec()
}

/// Test 1: weight and kernel space give the same losses (1e-9 relative over
/// 100 steps) for GD, HB and NAG, with n < d and with n > d.
#[test]
fn weight_and_kernel_space_agree() {
    for &(n, d) in &[(12usize, 40usize), (40, 8)] {
        let x = unit_rows(n, d, 1);
        let y = labels(n, 2);
        for method in [Method::Gd, Method::Hb, Method::Nag] {
            let w = losses_with(method, Parameterization::Weight, &x, &y, 300, 100);
            let k = losses_with(method, Parameterization::Kernel, &x, &y, 300, 100);
            let err = max_rel_diff(&k, &w);
            eprintln!(
                "n={n} d={d} {method:?}: max relative loss difference {err:.2e}, final loss {:.3e}",
                w[100]
            );
            assert!(err < 1e-9, "{method:?} n={n} d={d}: {err}");
            assert!(w[100] < 0.5 * w[0], "the run should make progress");
        }
    }
}

/// An independent weight-space implementation of the update rules (README,
/// "Conventions") with plain
/// loops: forward, gradient and the three update rules.
#[allow(clippy::too_many_arguments)]
fn reference_losses(
    method: Method,
    x: &DMatrix<f64>,
    y: &DVector<f64>,
    w0: &DMatrix<f64>,
    a: &DVector<f64>,
    lr: f64,
    beta: f64,
    steps: usize,
) -> Vec<f64> {
    let (n, d) = x.shape();
    let m = w0.nrows();
    let s = 1.0 / (m as f64).sqrt();
    let mut w = w0.clone();
    let mut w_prev = w0.clone();
    let mut g_prev = DMatrix::<f64>::zeros(m, d);
    let mut losses = Vec::new();
    for t in 0..=steps {
        let mut g = DMatrix::<f64>::zeros(m, d);
        let mut loss = 0.0;
        for i in 0..n {
            let mut u = 0.0;
            let mut active = vec![false; m];
            for r in 0..m {
                let z: f64 = (0..d).map(|k| w[(r, k)] * x[(i, k)]).sum();
                active[r] = z > 0.0;
                if active[r] {
                    u += a[r] * z * s;
                }
            }
            let res = u - y[i];
            loss += 0.5 * res * res;
            for r in 0..m {
                if active[r] {
                    for k in 0..d {
                        g[(r, k)] += res * a[r] * s * x[(i, k)];
                    }
                }
            }
        }
        losses.push(loss);
        if t == steps {
            break;
        }
        let (b, correction) = match method {
            Method::Gd => (0.0, 0.0),
            Method::Hb => (beta, 0.0),
            Method::Nag => (beta, beta * lr),
        };
        let next = &w - lr * &g + b * (&w - &w_prev) - correction * (&g - &g_prev);
        w_prev = std::mem::replace(&mut w, next);
        g_prev = g;
    }
    losses
}

/// Test 2: the loop reproduces the reference to 1e-10 relative over 100 steps.
#[test]
fn loop_matches_independent_reference() {
    let (n, d, m) = (10, 6, 50);
    let x = unit_rows(n, d, 5);
    let y = labels(n, 6);
    let model = TwoLayerReLU::new(d, m, 3).unwrap();
    for method in [Method::Gd, Method::Hb, Method::Nag] {
        let reference = reference_losses(method, &x, &y, model.weights(), model.output_weights(), 0.1, 0.8, 100);
        for p in [Parameterization::Weight, Parameterization::Kernel] {
            let got = losses_with(method, p, &x, &y, m, 100);
            let err = max_rel_diff(&got, &reference);
            eprintln!("{method:?} {p}: max relative difference to the reference {err:.2e}");
            assert!(err < 1e-10, "{method:?} {p}: {err}");
        }
    }
}

/// Test 3: each stopping rule fires when it should.
#[test]
fn stopping_rules() {
    let x = unit_rows(10, 6, 1);
    let y = labels(10, 2);
    let model = TwoLayerReLU::new(6, 200, 0).unwrap();

    let mut t = Trainer::new(model.clone(), Nesterov::new(0.3, 0.8).unwrap()).max_steps(37);
    let h = t.run(&x, &y).unwrap();
    assert_eq!((h.steps(), h.stop_reason()), (37, Some(Stop::MaxSteps)));

    let mut t = Trainer::new(model.clone(), Nesterov::new(0.3, 0.8).unwrap())
        .max_steps(10_000)
        .target_loss(1e-3)
        .unwrap();
    let h = t.run(&x, &y).unwrap();
    let l = h.losses();
    assert_eq!(h.stop_reason(), Some(Stop::TargetLoss));
    assert!(
        l[l.len() - 1] <= 1e-3 && l[..l.len() - 1].iter().all(|&v| v > 1e-3),
        "stops at the first loss <= target"
    );

    let mut t = Trainer::new(model.clone(), HeavyBall::new(0.3, 0.8).unwrap())
        .max_steps(10_000)
        .target_relative_loss(1e-4)
        .unwrap();
    let h = t.run(&x, &y).unwrap();
    let l = h.losses();
    assert_eq!(h.stop_reason(), Some(Stop::TargetRelativeLoss));
    assert!(l[l.len() - 1] <= 1e-4 * l[0] && l[..l.len() - 1].iter().all(|&v| v > 1e-4 * l[0]));

    let observer = |info: &StepInfo| {
        if info.step == 7 {
            Control::Stop
        } else {
            Control::Continue
        }
    };
    let mut t = Trainer::new(model.clone(), GradientDescent::new(0.3).unwrap())
        .max_steps(100)
        .observer(observer);
    let h = t.run(&x, &y).unwrap();
    assert_eq!((h.steps(), h.stop_reason()), (7, Some(Stop::Observer)));

    // Divergence: a step size far above the stability limit 2 / lambda_max.
    for p in [Parameterization::Weight, Parameterization::Kernel] {
        let mut t = Trainer::new(model.clone(), GradientDescent::new(1e3).unwrap())
            .max_steps(1000)
            .parameterization(p);
        match t.run(&x, &y) {
            Err(Error::Diverged { step, history, .. }) => {
                assert_eq!(history.losses().len(), step + 1, "history kept up to the diverged step");
                assert!((1..1000).contains(&step));
                // The model holds the last acceptable weights: its loss is the
                // previous entry of the history.
                let kept = t.model().loss(&x, &y).unwrap();
                let prev = history.losses()[step - 1];
                approx::assert_relative_eq!(kept, prev, epsilon = 0.0, max_relative = 1e-9);
                assert!(kept.is_finite());
            }
            other => panic!("{p}: expected divergence, got {other:?}"),
        }
    }
}

/// Test 5: same seed, bit-identical history across runs and for 1 and 2 GEMM
/// threads.
#[test]
fn bit_identical_across_runs_and_thread_counts() {
    let x = unit_rows(150, 300, 1);
    let y = labels(150, 2);
    let run = |threads: usize, p: Parameterization| {
        ntk_momentum::set_gemm_threads(threads);
        let model = TwoLayerReLU::new(300, 512, 9).unwrap();
        let h = Trainer::new(model, Nesterov::new(0.2, 0.9).unwrap())
            .max_steps(20)
            .parameterization(p)
            .diagnostics_every(5)
            .run(&x, &y)
            .unwrap();
        ntk_momentum::set_gemm_threads(0);
        (h.losses().to_vec(), h.diagnostics().to_vec())
    };
    for p in [Parameterization::Weight, Parameterization::Kernel] {
        let a = run(2, p);
        let b = run(2, p);
        let c = run(1, p);
        let bits = |v: &[f64]| v.iter().map(|x| x.to_bits()).collect::<Vec<_>>();
        assert_eq!(bits(&a.0), bits(&b.0), "{p}: two runs");
        assert_eq!(bits(&a.0), bits(&c.0), "{p}: 1 vs 2 threads");
        assert_eq!(a.1, b.1);
        assert_eq!(a.1, c.1);
    }
}

/// Kernel space is refused for an optimizer that is not linear in the
/// gradients; Auto falls back to weight space.
#[test]
fn kernel_space_needs_a_linear_optimizer() {
    let x = unit_rows(5, 30, 1);
    let y = labels(5, 2);
    let model = TwoLayerReLU::new(30, 64, 0).unwrap();
    let mut t = Trainer::new(model.clone(), SignDescent)
        .max_steps(3)
        .parameterization(Parameterization::Kernel);
    let e = t.run(&x, &y).unwrap_err();
    assert!(
        matches!(e, Error::Unsupported(_)) && e.to_string().contains("sign"),
        "{e}"
    );
    let mut t = Trainer::new(model, SignDescent).max_steps(3);
    t.run(&x, &y).unwrap();
    assert_eq!(t.resolved_parameterization(), Some(Parameterization::Weight));
}

#[test]
fn bad_data_is_rejected() {
    let x = unit_rows(5, 4, 1);
    let y = labels(5, 2);
    let model = TwoLayerReLU::new(4, 16, 0).unwrap();
    let mut t = Trainer::new(model, Nesterov::new(0.1, 0.9).unwrap()).max_steps(3);
    assert!(matches!(
        t.run(&unit_rows(5, 3, 1), &y),
        Err(Error::ShapeMismatch { .. })
    ));
    assert!(matches!(t.run(&x, &labels(4, 2)), Err(Error::ShapeMismatch { .. })));
    let mut bad = x.clone();
    bad[(1, 1)] = f64::NAN;
    assert!(matches!(t.run(&bad, &y), Err(Error::NonFinite { .. })));
    t.run(&x, &y).unwrap();
    // Continuing on other data is refused.
    assert!(matches!(t.run(&unit_rows(5, 4, 2), &y), Err(Error::Unsupported(_))));
    // Invalid options are refused when set.
    let t = Trainer::new(TwoLayerReLU::new(4, 16, 0).unwrap(), Nesterov::new(0.1, 0.9).unwrap());
    assert!(matches!(
        t.divergence_factor(0.5).err(),
        Some(Error::InvalidParameter {
            name: "divergence_factor",
            ..
        })
    ));
}

fn temp_path(name: &str) -> std::path::PathBuf {
    let dir = std::env::temp_dir().join(format!("ntk-momentum-test-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    dir.join(name)
}

fn bits(v: &[f64]) -> Vec<u64> {
    v.iter().map(|x| x.to_bits()).collect()
}

/// Test 4: 50 steps, checkpoint, resume in a fresh trainer, 50 more equals
/// 100 uninterrupted steps bit for bit (HB and NAG, both parameterizations).
#[test]
fn checkpoint_resume_is_bit_identical() {
    let x = unit_rows(20, 12, 1);
    let y = labels(20, 2);
    fn check<O: Optimizer<DMatrix<f64>>>(
        make: impl Fn() -> O,
        p: Parameterization,
        x: &DMatrix<f64>,
        y: &DVector<f64>,
    ) {
        let model = || TwoLayerReLU::new(12, 128, 4).unwrap();
        let mut full = Trainer::new(model(), make())
            .max_steps(100)
            .parameterization(p)
            .diagnostics_every(10);
        let h_full = full.run(x, y).unwrap();

        let path = temp_path(&format!("resume-{}-{p}.safetensors", make().name()));
        let mut first = Trainer::new(model(), make())
            .max_steps(50)
            .parameterization(p)
            .diagnostics_every(10);
        first.run(x, y).unwrap();
        first.save_checkpoint(&path).unwrap();
        drop(first);
        let mut second = Trainer::new(model(), make())
            .max_steps(100)
            .parameterization(p)
            .diagnostics_every(10);
        second.load_checkpoint(&path).unwrap();
        assert_eq!(second.steps_taken(), 50);
        let h_resumed = second.run(x, y).unwrap();
        assert_eq!(bits(h_resumed.losses()), bits(h_full.losses()), "{} {p}", make().name());
        assert_eq!(h_resumed.diagnostics(), h_full.diagnostics());
        assert_eq!(second.model(), full.model(), "final weights");
        assert_eq!(second.optimizer().state(), full.optimizer().state(), "optimizer state");
    }
    for p in [Parameterization::Weight, Parameterization::Kernel] {
        check(|| HeavyBall::new(0.2, 0.9).unwrap(), p, &x, &y);
        check(|| Nesterov::new(0.2, 0.9).unwrap(), p, &x, &y);
    }
}

/// Test 4, continued: damaged or mismatched checkpoints are rejected and the
/// trainer is left unchanged; saving never leaves a half-written file.
#[test]
fn damaged_checkpoints_are_rejected() {
    let x = unit_rows(10, 6, 1);
    let y = labels(10, 2);
    let model = || TwoLayerReLU::new(6, 32, 4).unwrap();
    let mut t = Trainer::new(model(), Nesterov::new(0.2, 0.9).unwrap()).max_steps(5);
    t.run(&x, &y).unwrap();
    let path = temp_path("good.safetensors");
    t.save_checkpoint(&path).unwrap();
    let good = std::fs::read(&path).unwrap();

    let fresh = || Trainer::new(model(), Nesterov::new(0.2, 0.9).unwrap()).max_steps(10);
    let expect_err = |bytes: &[u8], what: &str, needle: &str| {
        let p = temp_path(&format!("bad-{what}.safetensors"));
        std::fs::write(&p, bytes).unwrap();
        let mut t = fresh();
        let e = t.load_checkpoint(&p).unwrap_err();
        assert!(e.to_string().contains(needle), "{what}: {e}");
        assert_eq!(t.steps_taken(), 0, "{what}: trainer unchanged");
        assert_eq!(t.model(), &model(), "{what}: model unchanged");
    };
    expect_err(&good[..good.len() / 2], "truncated", "invalid checkpoint");
    expect_err(&good[..4], "tiny", "not a safetensors file");
    let mut flipped = good.clone();
    let last = flipped.len() - 3;
    flipped[last] ^= 0x40;
    expect_err(&flipped, "flipped-bit", "CRC-32 mismatch");

    // Another optimizer, other hyper-parameters, another shape, another dtype.
    let mut other = Trainer::new(model(), HeavyBall::new(0.2, 0.9).unwrap());
    assert!(other
        .load_checkpoint(&path)
        .unwrap_err()
        .to_string()
        .contains("nesterov"));
    let mut other = Trainer::new(model(), Nesterov::new(0.3, 0.9).unwrap());
    let err = other.load_checkpoint(&path).unwrap_err();
    assert!(
        matches!(&err, Error::Checkpoint { message, .. } if message.contains("hyper-parameters")),
        "{err}"
    );
    assert_eq!(other.steps_taken(), 0);
    assert_eq!(other.optimizer().state().step, 0);
    let mut other = Trainer::new(
        TwoLayerReLU::<f64>::new(6, 33, 4).unwrap(),
        Nesterov::new(0.2, 0.9).unwrap(),
    );
    assert!(other
        .load_checkpoint(&path)
        .unwrap_err()
        .to_string()
        .contains("model shape"));
    let mut other = Trainer::new(
        TwoLayerReLU::<f32>::init(6, 32, 4).unwrap(),
        Nesterov::new(0.2, 0.9).unwrap(),
    );
    assert!(other.load_checkpoint(&path).unwrap_err().to_string().contains("dtype"));
    let mut other = fresh().parameterization(Parameterization::Kernel);
    if t.resolved_parameterization() == Some(Parameterization::Weight) {
        assert!(other.load_checkpoint(&path).unwrap_err().to_string().contains("space"));
    }
    let missing = temp_path("does-not-exist.safetensors");
    assert!(matches!(fresh().load_checkpoint(&missing), Err(Error::Io { .. })));

    // Resuming on other data is refused.
    let mut resumed = fresh();
    resumed.load_checkpoint(&path).unwrap();
    assert!(matches!(
        resumed.run(&unit_rows(10, 6, 9), &y),
        Err(Error::Unsupported(_))
    ));

    // A failed save leaves the previous checkpoint intact.
    let dir_as_file = temp_path("a-directory");
    std::fs::create_dir_all(&dir_as_file).unwrap();
    assert!(matches!(t.save_checkpoint(&dir_as_file), Err(Error::Io { .. })));
    assert_eq!(std::fs::read(&path).unwrap(), good);
    // Before the first run there is nothing to save.
    assert!(matches!(
        fresh().save_checkpoint(temp_path("none.safetensors")),
        Err(Error::Unsupported(_))
    ));
}

/// A divergence on the first step of a continued call keeps the weights the
/// call started from, with the step count and history to match.
#[test]
fn divergence_after_continuing_keeps_the_starting_weights() {
    let x = unit_rows(10, 6, 1);
    let y = labels(10, 2);
    let model = TwoLayerReLU::new(6, 64, 0).unwrap();
    let lambda_max = ntk_momentum::ntk::Spectrum::of(&model.ntk_gram(&x).unwrap())
        .unwrap()
        .lambda_max;
    for p in [Parameterization::Weight, Parameterization::Kernel] {
        // Twice GD's stability limit 2 / lambda_max: the loss grows.
        let gd = GradientDescent::new(4.0 / lambda_max).unwrap();
        let mut t = Trainer::new(model.clone(), gd)
            .max_steps(4)
            .parameterization(p)
            .divergence_factor(1e300)
            .unwrap();
        let h = t.run(&x, &y).unwrap();
        assert!(
            h.final_loss().unwrap() > 1.2 * h.losses()[0],
            "{p}: the loss should grow: {:?}",
            h.losses()
        );
        let start = t.model().clone();
        let mut t = t.divergence_factor(1.2).unwrap();
        t.set_max_steps(40);
        match t.run(&x, &y) {
            Err(Error::Diverged { step: 4, .. }) => {}
            other => panic!("{p}: expected divergence at step 4, got {other:?}"),
        }
        assert_eq!(t.model(), &start, "{p}: the weights the call started from are kept");
        assert_eq!(t.steps_taken(), 4);
        assert_eq!(t.history().losses().len(), 5, "{p}: history consistent with the state");
    }
}

/// Diagnostics are recorded at the step where a run stops, whatever stops it.
#[test]
fn diagnostics_at_the_final_step() {
    let x = unit_rows(10, 6, 1);
    let y = labels(10, 2);
    let model = TwoLayerReLU::new(6, 200, 0).unwrap();
    let mut t = Trainer::new(model, Nesterov::new(0.3, 0.8).unwrap())
        .max_steps(10_000)
        .target_loss(1e-3)
        .unwrap()
        .diagnostics_every(7);
    let h = t.run(&x, &y).unwrap();
    let last = h.diagnostics().last().unwrap();
    assert_eq!(last.step, h.steps());
    assert!(h.diagnostics().iter().all(|d| d.step % 7 == 0 || d.step == h.steps()));
}

/// Tampered metadata is caught by the checksum, like tampered tensors.
#[test]
fn tampered_checkpoint_metadata_is_rejected() {
    let x = unit_rows(10, 6, 1);
    let y = labels(10, 2);
    let mut t = Trainer::new(TwoLayerReLU::new(6, 32, 4).unwrap(), Nesterov::new(0.2, 0.9).unwrap()).max_steps(5);
    t.run(&x, &y).unwrap();
    let path = temp_path("tamper.safetensors");
    t.save_checkpoint(&path).unwrap();
    let mut bytes = std::fs::read(&path).unwrap();
    let needle = b"\"step\":\"5\"";
    let at = bytes
        .windows(needle.len())
        .position(|w| w == needle)
        .expect("step in the header");
    bytes[at + 8] = b'4';
    std::fs::write(&path, &bytes).unwrap();
    let mut fresh = Trainer::new(
        TwoLayerReLU::<f64>::new(6, 32, 4).unwrap(),
        Nesterov::new(0.2, 0.9).unwrap(),
    );
    let e = fresh.load_checkpoint(&path).unwrap_err();
    assert!(e.to_string().contains("CRC-32 mismatch"), "{e}");
}

/// After a divergence the trainer is rolled back exactly (parameters and
/// optimizer state replayed to the last acceptable step): continuing from a
/// checkpoint saved there reproduces the same divergence, bit for bit.
#[test]
fn divergence_rolls_back_parameters_and_optimizer_state_exactly() {
    let x = unit_rows(12, 8, 3);
    let y = labels(12, 4);
    let model = TwoLayerReLU::new(8, 96, 1).unwrap();
    let lambda_max = ntk_momentum::ntk::Spectrum::of(&model.ntk_gram(&x).unwrap())
        .unwrap()
        .lambda_max;
    for p in [Parameterization::Weight, Parameterization::Kernel] {
        let make = || {
            Trainer::new(model.clone(), HeavyBall::new(6.0 / lambda_max, 0.5).unwrap())
                .max_steps(200)
                .parameterization(p)
                .divergence_factor(1e3)
                .unwrap()
        };
        let mut t = make();
        let (step, history) = match t.run(&x, &y) {
            Err(Error::Diverged { step, history, .. }) => (step, history),
            other => panic!("{p}: expected divergence, got {other:?}"),
        };
        assert!(
            step > 3,
            "{p}: the replay should cover several steps (diverged at {step})"
        );
        // A reference run stopped one step before the divergence.
        let mut reference = make();
        reference.set_max_steps(step - 1);
        reference.run(&x, &y).unwrap();
        assert_eq!(
            t.model(),
            reference.model(),
            "{p}: parameters rolled back to step {}",
            step - 1
        );
        let state = |o: &HeavyBall| Optimizer::<DMatrix<f64>>::state(o);
        assert_eq!(
            state(t.optimizer()),
            state(reference.optimizer()),
            "{p}: optimizer state too"
        );
        assert_eq!(bits(t.history().losses()), bits(&history.losses()[..step]));
    }
}
