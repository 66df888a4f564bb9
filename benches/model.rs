//! The model's large products: `loss_and_gradient` (workspace variant),
//! `ntk_gram` and `ntk::infinite_width_gram`, in f32 and f64.
//!
//! Ids (size, dtype and GEMM thread count in each):
//! - `loss_and_gradient/<dtype>/n<n>_d<d>_m<m>/t<T>`
//! - `ntk_gram/<dtype>/n<n>_d<d>_m<m>/t<T>`
//! - `infinite_width_gram/<dtype>/n<n>_d<d>/t<T>`
//!
//! Throughput is in "elements" = nominal GEMM flops, so criterion's
//! `Gelem/s` reads as GFLOP/s: 4 n m d for the loss and gradient (X Wᵀ and
//! Mᵀ X), 2 n m d + 2 n² m + 2 n² d for the Gram (X Wᵀ, S Sᵀ and X Xᵀ as
//! plain GEMMs, as in `benches/peers/ntk_gram_numpy.py`), 2 n² d for the
//! infinite-width Gram.
//!
//! Sizes: n = 256, d = 784, m = 1024; with `NTK_BENCH_FULL=1` also BENCHMARKS.md's
//! n = 1000, d = 3072, m = 4096 (10 samples). `NTK_BENCH_THREADS=T` sets the
//! GEMM threads (default all cores).
//!
//! ```text
//! cargo bench --bench model
//! NTK_BENCH_FULL=1 NTK_BENCH_THREADS=2 cargo bench --bench model -- n1000
//! ```

mod common;

use std::hint::black_box;

use common::Size;
use criterion::measurement::WallTime;
use criterion::{criterion_group, criterion_main, BenchmarkGroup, BenchmarkId, Criterion, Throughput};
use nalgebra::DMatrix;
use ntk_momentum::model::Workspace;
use ntk_momentum::ntk::infinite_width_gram;
use ntk_momentum::{Float, TwoLayerReLU};

const SEED: u64 = 0;

fn configure(group: &mut BenchmarkGroup<'_, WallTime>, size: &Size, flops: f64) {
    group.throughput(Throughput::Elements(flops as u64));
    if size.big {
        group
            .sample_size(common::BIG_SAMPLES)
            .measurement_time(common::BIG_MEASUREMENT)
            .warm_up_time(common::BIG_WARM_UP);
    }
}

fn model_benches<T: Float>(c: &mut Criterion) {
    let t = common::thread_label();
    for size in common::sizes() {
        let Size { n, d, m, .. } = size;
        let (x, y) = common::data::<T>(n, d, SEED);
        let model = TwoLayerReLU::<T>::init(d, m, SEED).expect("model");
        let (nf, df, mf) = (n as f64, d as f64, m as f64);
        let id = BenchmarkId::new(T::NAME, format!("{}/{t}", size.label()));

        {
            let mut group = c.benchmark_group("loss_and_gradient");
            configure(&mut group, &size, 4.0 * nf * mf * df);
            let mut workspace = Workspace::new();
            let mut grad = DMatrix::<T>::zeros(m, d);
            // Size the workspace outside the measurement.
            model
                .loss_and_gradient_with(&x, &y, &mut workspace, &mut grad)
                .expect("loss and gradient");
            group.bench_function(id.clone(), |b| {
                b.iter(|| {
                    model
                        .loss_and_gradient_with(black_box(&x), black_box(&y), &mut workspace, &mut grad)
                        .expect("loss and gradient")
                })
            });
            group.finish();
        }
        {
            let mut group = c.benchmark_group("ntk_gram");
            configure(
                &mut group,
                &size,
                2.0 * nf * mf * df + 2.0 * nf * nf * mf + 2.0 * nf * nf * df,
            );
            group.bench_function(id, |b| b.iter(|| model.ntk_gram(black_box(&x)).expect("ntk_gram")));
            group.finish();
        }
        {
            let mut group = c.benchmark_group("infinite_width_gram");
            configure(&mut group, &size, 2.0 * nf * nf * df);
            group.bench_function(BenchmarkId::new(T::NAME, format!("{}/{t}", size.label_nd())), |b| {
                b.iter(|| infinite_width_gram(black_box(&x)).expect("infinite_width_gram"))
            });
            group.finish();
        }
    }
}

fn benches(c: &mut Criterion) {
    model_benches::<f64>(c);
    model_benches::<f32>(c);
}

criterion_group!(model, benches);
criterion_main!(model);
