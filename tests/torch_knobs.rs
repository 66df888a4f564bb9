//! The PyTorch knobs against real `torch.optim.SGD` (+ `clip_grad_norm_` /
//! `clip_grad_value_`, decoupled decay as SGDW) and real
//! `ReduceLROnPlateau`: golden files written by
//! `benches/peers/sgd_knobs_torch.py` and `benches/peers/plateau_torch.py`
//! (torch 2.15, f64).
//!
//! Every combination of method (GD, HB, NAG) × weight decay (none, coupled,
//! decoupled, both) × dampening (HB: 0, 0.3) × maximize × clipping (none,
//! norm, value) × groups (one, two) × schedules (constant, piecewise): 384
//! cases of 100 steps on two tensors (3 × 2 and 4), iterates compared after
//! steps 1, 2, 10, 50 and 100 to 1e-12, in the PyTorch convention always
//! and in the displacement convention where the step sizes are constant
//! (where the two coincide).

use ntk_momentum::optim::{
    Convention, GradientClip, ParamGroup, PlateauMode, ReduceOnPlateau, Schedule, ThresholdMode,
};
use ntk_momentum::{GradientDescent, HeavyBall, Nesterov, Optimizer};

use serde_json::Value;

fn floats(v: &Value) -> Vec<f64> {
    serde_json::from_value(v.clone()).expect("a list of numbers")
}

fn schedule(v: &Value) -> Schedule {
    let boundaries: Vec<u64> = serde_json::from_value(v["boundaries"].clone()).expect("boundaries");
    let values = floats(&v["values"]);
    if boundaries.is_empty() {
        Schedule::constant(values[0])
    } else {
        Schedule::piecewise(boundaries, values).expect("a valid piecewise schedule")
    }
}

/// One of the three built-in optimizers (for `last_gradient_norm`, which
/// is inherent).
enum Built {
    Gd(GradientDescent),
    Hb(HeavyBall),
    Nag(Nesterov),
}

impl Built {
    fn step(&mut self, theta: &mut (Vec<f64>, Vec<f64>), g: &(Vec<f64>, Vec<f64>)) -> ntk_momentum::Result<()> {
        match self {
            Built::Gd(o) => o.step(theta, g),
            Built::Hb(o) => o.step(theta, g),
            Built::Nag(o) => o.step(theta, g),
        }
    }
    fn last_gradient_norm(&self) -> Option<f64> {
        match self {
            Built::Gd(o) => o.last_gradient_norm(),
            Built::Hb(o) => o.last_gradient_norm(),
            Built::Nag(o) => o.last_gradient_norm(),
        }
    }
}

/// The optimizer a golden case describes, in `convention`.
fn build(case: &Value, convention: Convention) -> Built {
    let groups = case["groups"].as_array().expect("groups");
    let own = &groups[0];
    let clip = match case["clip"].as_str().expect("clip") {
        "norm" => GradientClip::Norm(1.0),
        "value" => GradientClip::Value(0.5),
        _ => GradientClip::None,
    };
    let maximize = case["maximize"].as_bool().expect("maximize");
    let extra = |with_momentum: bool| {
        groups.get(1).map(|g| {
            let tensors: Vec<usize> = serde_json::from_value(g["tensors"].clone()).expect("tensors");
            let mut group = ParamGroup::new(tensors)
                .and_then(|p| p.lr(schedule(&g["lr"])))
                .and_then(|p| p.weight_decay(schedule(&g["weight_decay"])))
                .and_then(|p| p.decoupled_weight_decay(schedule(&g["decoupled_weight_decay"])))
                .expect("a valid group");
            if with_momentum {
                group = group.momentum(schedule(&g["momentum"])).expect("momentum");
            }
            group
        })
    };
    macro_rules! knobs {
        ($opt:expr, $momentum:expr) => {{
            let mut o = $opt
                .weight_decay(schedule(&own["weight_decay"]))
                .and_then(|o| o.decoupled_weight_decay(schedule(&own["decoupled_weight_decay"])))
                .and_then(|o| o.clip(clip))
                .expect("valid knobs");
            if maximize {
                o = o.maximize();
            }
            if let Some(g) = extra($momentum) {
                o = o.group(g).expect("a valid group");
            }
            o
        }};
    }
    let lr = schedule(&own["lr"]);
    let momentum = schedule(&own["momentum"]);
    let dampening = case["dampening"].as_f64().expect("dampening");
    match case["method"].as_str().expect("method") {
        "gd" => Built::Gd(knobs!(GradientDescent::with_schedules(lr).expect("gd"), false)),
        "hb" => {
            let hb = HeavyBall::with_schedules(lr, momentum)
                .and_then(|o| o.dampening(dampening))
                .expect("hb")
                .convention(convention);
            Built::Hb(knobs!(hb, true))
        }
        _ => {
            let nag = Nesterov::with_schedules(lr, momentum)
                .expect("nag")
                .convention(convention);
            Built::Nag(knobs!(nag, true))
        }
    }
}

#[test]
fn every_knob_combination_equals_torch_sgd() {
    let golden: Value = serde_json::from_str(include_str!("golden/torch_sgd_knobs.json")).expect("golden JSON");
    let theta0: Vec<Vec<f64>> = serde_json::from_value(golden["theta0"].clone()).expect("theta0");
    let a: Vec<Vec<f64>> = serde_json::from_value(golden["a"].clone()).expect("a");
    let c: Vec<Vec<f64>> = serde_json::from_value(golden["c"].clone()).expect("c");
    let recorded: Vec<usize> = serde_json::from_value(golden["recorded_after_steps"].clone()).expect("steps");
    let cases = golden["cases"].as_array().expect("cases");
    assert_eq!(cases.len(), 384);
    let (mut worst, mut worst_norm, mut runs) = (0.0f64, 0.0f64, 0);
    for case in cases {
        let name = case["name"].as_str().expect("name");
        let sign = if case["maximize"].as_bool().expect("maximize") {
            -1.0
        } else {
            1.0
        };
        let constant = case["schedules"].as_str() == Some("constant");
        let iterates: Vec<Vec<Vec<f64>>> = serde_json::from_value(case["iterates"].clone()).expect("iterates");
        let norms = floats(&case["pre_clip_norms"]);
        let clipped = case["clip"].as_str() != Some("none");
        let conventions: &[Convention] = if constant {
            &[Convention::PyTorch, Convention::Displacement]
        } else {
            &[Convention::PyTorch]
        };
        for &convention in conventions {
            let mut opt = build(case, convention);
            let mut theta = (theta0[0].clone(), theta0[1].clone());
            for t in 0..100 {
                // g = s (a ⊙ θ) + c, the same IEEE operations as the torch script.
                let grad = |p: &[f64], k: usize| -> Vec<f64> {
                    p.iter()
                        .zip(&a[k])
                        .zip(&c[k])
                        .map(|((p, a), c)| sign * (a * p) + c)
                        .collect()
                };
                let g = (grad(&theta.0, 0), grad(&theta.1, 1));
                opt.step(&mut theta, &g)
                    .unwrap_or_else(|e| panic!("{name}: step {t}: {e}"));
                // The norm before clipping, as clip_grad_norm_ returns it (only kept with clipping).
                if let Some(j) = [0, 1, 9, 49, 99].iter().position(|&s| s == t) {
                    match opt.last_gradient_norm() {
                        Some(n) if clipped => {
                            let err = (n - norms[j]).abs() / norms[j];
                            worst_norm = worst_norm.max(err);
                            assert!(err <= 1e-12, "{name}: norm at step {t}: {n} vs torch {}", norms[j]);
                        }
                        None if !clipped => {}
                        other => panic!("{name}: last_gradient_norm {other:?} with clip {}", case["clip"]),
                    }
                }
                if let Some(j) = recorded.iter().position(|&s| s == t + 1) {
                    let want = &iterates[j];
                    for (got, want) in theta.0.iter().chain(&theta.1).zip(want[0].iter().chain(&want[1])) {
                        let err = (got - want).abs() / (1.0 + want.abs());
                        worst = worst.max(err);
                        assert!(
                            err <= 1e-12,
                            "{name} ({convention:?}) after step {}: {got} vs torch {want}",
                            t + 1
                        );
                    }
                }
            }
            runs += 1;
        }
    }
    println!(
        "[measured] max |crate − torch| / (1 + |torch|) over {runs} runs (384 cases) x 100 steps: {worst:.2e}; \
         pre-clip norms: max relative difference {worst_norm:.2e}"
    );
}

#[test]
fn reduce_on_plateau_equals_torch() {
    let golden: Value = serde_json::from_str(include_str!("golden/torch_reduce_on_plateau.json")).expect("golden JSON");
    let losses = floats(&golden["losses"]);
    let initial = floats(&golden["initial_lrs"]);
    let configs = golden["configs"].as_array().expect("configs");
    assert_eq!(configs.len(), 13);
    let mut reductions = 0;
    for (k, config) in configs.iter().enumerate() {
        let mode = match config["mode"].as_str() {
            Some("max") => PlateauMode::Max,
            _ => PlateauMode::Min,
        };
        let threshold_mode = match config["threshold_mode"].as_str() {
            Some("abs") => ThresholdMode::Absolute,
            _ => ThresholdMode::Relative,
        };
        let mut plateau = ReduceOnPlateau::new()
            .mode(mode)
            .factor(config["factor"].as_f64().expect("factor"))
            .and_then(|p| p.threshold(config["threshold"].as_f64().expect("threshold"), threshold_mode))
            .and_then(|p| p.min_lrs(floats(&config["min_lrs"])))
            .and_then(|p| p.eps(config["eps"].as_f64().expect("eps")))
            .expect("a valid plateau schedule")
            .patience(config["patience"].as_u64().expect("patience"))
            .cooldown(config["cooldown"].as_u64().expect("cooldown"));
        let sign = if config["fed"].as_str() == Some("-loss") {
            -1.0
        } else {
            1.0
        };
        // Two groups, as in the torch script: one tensor each.
        let mut hb = HeavyBall::new(initial[0], 0.9)
            .and_then(|o| o.group(ParamGroup::new([1])?.lr(initial[1])?))
            .expect("two groups");
        let want: Vec<Vec<f64>> = serde_json::from_value(config["lrs"].clone()).expect("lrs");
        for (t, (&loss, want)) in losses.iter().zip(&want).enumerate() {
            reductions += usize::from(plateau.observe(sign * loss, &mut hb).expect("observe"));
            let got = [
                hb.lr(),
                ntk_momentum::optim::HyperParameters::group_lr(&hb, 1).expect("group 1"),
            ];
            assert_eq!(got.to_vec(), *want, "config {k} ({config}) after loss {t}");
        }
    }
    assert!(
        reductions > 20,
        "the golden sequence exercises the reductions ({reductions})"
    );
    println!("[measured] 13 configs x 80 losses: step sizes bit-identical to torch; {reductions} reductions");
}

/// `Schedule::warmup_from` against torch's `LinearLR` and
/// `SequentialLR([LinearLR, CosineAnnealingLR])` (tests/golden/torch_warmup.json,
/// from benches/peers/warmup_torch.py): step sizes to 1e-15 relative, iterates
/// of SGD with momentum 0.9 (PyTorch convention) to 1e-12.
#[test]
fn warmup_from_equals_torch_linear_lr() {
    let golden: Value = serde_json::from_str(include_str!("golden/torch_warmup.json")).expect("golden JSON");
    let a = floats(&golden["a"]);
    let x0 = floats(&golden["x0"]);
    let base = golden["base_lr"].as_f64().expect("base");
    let mut worst = (0.0f64, 0.0f64);
    for case in golden["cases"].as_array().expect("cases") {
        let name = case["name"].as_str().expect("name");
        let then = match case["then"].as_str() {
            Some("constant") => Schedule::constant(base),
            _ => {
                let c = &case["then"]["cosine"];
                Schedule::cosine(
                    base,
                    c["last"].as_f64().expect("last"),
                    c["steps"].as_u64().expect("steps"),
                )
                .expect("cosine")
            }
        };
        let lr = Schedule::warmup_from(
            case["start_factor"].as_f64().expect("factor"),
            case["warmup_steps"].as_u64().expect("steps"),
            then,
        )
        .expect("warm-up");
        for (t, want) in floats(&case["lrs"]).iter().enumerate() {
            let err = (lr.value(t as u64) - want).abs() / want;
            worst.0 = worst.0.max(err);
            assert!(
                err <= 1e-15,
                "{name}: lr at step {t}: {} vs torch {want}",
                lr.value(t as u64)
            );
        }
        let mut opt: Box<dyn Optimizer<Vec<f64>>> = if case["nesterov"].as_bool() == Some(true) {
            Box::new(
                Nesterov::with_schedules(lr, 0.9)
                    .expect("nag")
                    .convention(Convention::PyTorch),
            )
        } else {
            Box::new(
                HeavyBall::with_schedules(lr, 0.9)
                    .expect("hb")
                    .convention(Convention::PyTorch),
            )
        };
        let mut x = x0.clone();
        let iterates: Vec<Vec<f64>> = serde_json::from_value(case["iterates"].clone()).expect("iterates");
        for (t, want) in iterates.iter().enumerate() {
            let g: Vec<f64> = a.iter().zip(&x).map(|(a, x)| a * x).collect();
            opt.step(&mut x, &g).expect("step");
            for (got, want) in x.iter().zip(want) {
                let err = (got - want).abs();
                worst.1 = worst.1.max(err);
                assert!(err <= 1e-12, "{name}: step {t}: {got} vs torch {want}");
            }
        }
    }
    println!(
        "[measured] warm-up: step sizes within {:.1e} relative of torch, iterates within {:.1e}",
        worst.0, worst.1
    );
}
