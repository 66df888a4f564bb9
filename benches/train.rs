//! One full-batch NAG training step of the two-layer ReLU network through
//! `Trainer`, in weight space (forward X Wᵀ, gradient Mᵀ X, update of W:
//! 4 n m d flops) and in kernel space (P = P_0 + B K, update of B: 2 n² m
//! flops), f32 and f64.
//!
//! Ids: `nag_step/<dtype>/<weight|kernel>/n<n>_d<d>_m<m>/t<T>`, e.g.
//! `nag_step/f64/weight/n1000_d3072_m4096/t2`. Throughput is in "elements" =
//! the step's GEMM flops (`train::flops_per_step`), so `Gelem/s` reads as
//! GFLOP/s.
//!
//! Timing: a continued `Trainer::run` of k + 1 steps; the time of the last k
//! steps is read from the training loop's own clock (`History::elapsed`),
//! so the per-call set-up (buffers, `K = X Xᵀ` and `P_0` in kernel space,
//! forming W at the end) and the re-evaluation of the loss at the step a
//! continued run starts from are not counted. The optimizer is that of
//! `examples/step_timing.rs` (lr 1e-3, momentum 0.9).
//!
//! Sizes: n = 256, d = 784, m = 1024; with `NTK_BENCH_FULL=1` also BENCHMARKS.md's
//! n = 1000, d = 3072, m = 4096 (10 samples). `NTK_BENCH_THREADS=T` sets the
//! GEMM threads (default all cores).
//!
//! ```text
//! cargo bench --bench train
//! NTK_BENCH_FULL=1 NTK_BENCH_THREADS=2 cargo bench --bench train -- n1000
//! ```

mod common;

use std::time::Duration;

use common::Size;
use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion, Throughput};
use nalgebra::{DMatrix, DVector};
use ntk_momentum::train::flops_per_step;
use ntk_momentum::{Float, Nesterov, Parameterization, Trainer, TwoLayerReLU};

const SEED: u64 = 0;
/// A fresh trainer is started (outside the measurement) past this many
/// steps, so the history a continued run clones stays small.
const RESTART_AFTER: usize = 2000;

fn trainer<T: Float>(model: &TwoLayerReLU<T>, p: Parameterization) -> Trainer<T, Nesterov> {
    Trainer::new(model.clone(), Nesterov::new(1e-3, 0.9).expect("valid"))
        .parameterization(p)
        .max_steps(0)
        .diagnostics_every(0)
        .divergence_factor(f64::MAX)
        .expect("f64::MAX is a valid divergence factor")
}

/// Runs `iters` steps and returns their time from the loop's clock.
fn timed_steps<T: Float>(
    t: &mut Trainer<T, Nesterov>,
    model: &TwoLayerReLU<T>,
    p: Parameterization,
    x: &DMatrix<T>,
    y: &DVector<T>,
    iters: u64,
) -> Duration {
    let iters = iters as usize;
    if t.steps_taken() > RESTART_AFTER {
        *t = trainer(model, p);
    }
    let start = t.steps_taken();
    t.set_max_steps(start + iters + 1);
    let history = t.run(x, y).expect("training run");
    assert_eq!(t.resolved_parameterization(), Some(p));
    let e = history.elapsed();
    // e[k] is taken when the loss at step k is known; e[start + 1] follows
    // the re-evaluation of step `start` and one step.
    Duration::from_secs_f64(e[start + 1 + iters] - e[start + 1])
}

fn train_benches<T: Float>(c: &mut Criterion) {
    let threads = common::thread_label();
    for size in common::sizes() {
        let Size { n, d, m, .. } = size;
        let (x, y) = common::data::<T>(n, d, SEED);
        let model = TwoLayerReLU::<T>::init(d, m, SEED).expect("model");
        let mut group = c.benchmark_group("nag_step");
        if size.big {
            group
                .sample_size(common::BIG_SAMPLES)
                .measurement_time(common::BIG_MEASUREMENT)
                .warm_up_time(common::BIG_WARM_UP);
        }
        for (p, name) in [
            (Parameterization::Weight, "weight"),
            (Parameterization::Kernel, "kernel"),
        ] {
            group.throughput(Throughput::Elements(flops_per_step(n, m, d, p) as u64));
            let mut t = trainer(&model, p);
            group.bench_function(
                BenchmarkId::new(format!("{}/{name}", T::NAME), format!("{}/{threads}", size.label())),
                |b| b.iter_custom(|iters| timed_steps(&mut t, &model, p, &x, &y, iters)),
            );
        }
        group.finish();
    }
}

fn benches(c: &mut Criterion) {
    train_benches::<f64>(c);
    train_benches::<f32>(c);
}

criterion_group!(train, benches);
criterion_main!(train);
