//! `Optimizer::step` of gradient descent, heavy ball and Nesterov on flat
//! parameter vectors (`Vec<f64>`, `Vec<f32>`) of 10^3 to 10^7 entries.
//!
//! Ids: `optim_step/<gd|hb|nag>/<f32|f64>/<len>` (e.g.
//! `optim_step/nag/f64/1e6`); throughput in elements (parameters) per
//! second. The step is one serial pass over the parameters, the gradient and
//! the optimizer's state (0, 1 and 2 buffers): it does not use the GEMM
//! threads, so the ids carry no thread count.
//!
//! ```text
//! cargo bench --bench optimizer
//! cargo bench --bench optimizer -- 'optim_step/nag/f32'
//! ```

use std::hint::black_box;
use std::time::Duration;

use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion, Throughput};
use ntk_momentum::{Float, GradientDescent, HeavyBall, Nesterov, Optimizer};

const LENGTHS: [(usize, &str); 5] = [
    (1_000, "1e3"),
    (10_000, "1e4"),
    (100_000, "1e5"),
    (1_000_000, "1e6"),
    (10_000_000, "1e7"),
];

/// A deterministic, non-trivial vector (no RNG: only the memory traffic matters).
fn filled<T: Float>(len: usize, phase: f64) -> Vec<T> {
    (0..len)
        .map(|i| T::cast(((i as f64) * 0.618_033_988_7 + phase).sin()))
        .collect()
}

fn bench_one<T: Float, O: Optimizer<Vec<T>>>(c: &mut Criterion, name: &str, make: impl Fn() -> O) {
    let mut group = c.benchmark_group("optim_step");
    for (len, label) in LENGTHS {
        group.throughput(Throughput::Elements(len as u64));
        let mut params = filled::<T>(len, 0.0);
        let grad = filled::<T>(len, 1.0);
        let mut opt = make();
        // Size the state outside the measurement.
        opt.step(&mut params, &grad).expect("step");
        group.bench_with_input(
            BenchmarkId::new(format!("{name}/{}", T::NAME), label),
            &grad,
            |b, grad| b.iter(|| opt.step(black_box(&mut params), black_box(grad)).expect("step")),
        );
    }
    group.finish();
}

fn optimizers<T: Float>(c: &mut Criterion) {
    // A small rate keeps the iterates bounded over millions of steps with a
    // fixed gradient (they drift by lr * |g| / (1 - momentum) per step).
    let lr = 1e-6;
    bench_one::<T, _>(c, "gd", || GradientDescent::new(lr).expect("valid"));
    bench_one::<T, _>(c, "hb", || HeavyBall::new(lr, 0.9).expect("valid"));
    bench_one::<T, _>(c, "nag", || Nesterov::new(lr, 0.9).expect("valid"));
}

fn benches(c: &mut Criterion) {
    optimizers::<f64>(c);
    optimizers::<f32>(c);
}

criterion_group! {
    name = optimizer;
    config = Criterion::default()
        .warm_up_time(Duration::from_secs(1))
        .measurement_time(Duration::from_secs(2));
    targets = benches
}
criterion_main!(optimizer);
