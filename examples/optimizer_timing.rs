//! Times one optimizer step (the update alone, no model) on one tensor and on
//! a set of tensors, with the same method and output format as
//! `benches/peers/optimizer_step_torch.py`, and a memory-copy reference in
//! the same run, so that the crate, PyTorch and the memory bound can be put
//! side by side.
//!
//! ```text
//! cargo run --release --example optimizer_timing -- --sizes 1e5,1e6,1e7 --tensors 100 --threads 2
//! ```
//!
//! Cases: Nesterov (lr 0.01, momentum 0.9) in both conventions
//! (`displacement`, the default: state v and g_prev; `pytorch`: one momentum
//! buffer), each also without the finiteness check (`*_unchecked`,
//! `check_finite(false)`), and heavy ball, on `Vec<T>` parameters of N entries with a fixed
//! random gradient, f32 and f64; and a `Vec<Vec<T>>` of `--tensors` equal
//! tensors totalling `--set-total` entries. Per case: 5 untimed steps, then
//! 7 repeats of a batch of steps (20 for N ≤ 1e6, else 5); printed are the
//! median, min and max ms per step and `GBps_eff` = the bytes the update must
//! move (read θ, g and every state buffer; write θ and every state buffer)
//! over the median. The references: a copy of 1e7 f64 entries (16 bytes
//! per entry, one thread and the pool) and an in-place triad a ← a + s·b
//! over the pool (24 bytes per entry, every written array read first, as in
//! a step): a step's memory bound is its bytes over the triad's rate.
//!
//! With the knobs (`heavy_ball` variant `pytorch_knobs`): PyTorch
//! convention, coupled weight decay 1e-4, dampening 0.1 and clipping to
//! global norm 1 (the torch script's `knobs_*` variants: the same
//! `SGD(weight_decay=1e-4, dampening=0.1)` after `clip_grad_norm_(…, 1.0)`);
//! on the set also split into 10 parameter groups of 10 tensors with their
//! own step sizes (`pytorch_knobs_groups`).
//!
//! One line per case:
//! `crate <optimizer> n=<N> tensors=<k> dtype=<f32|f64> variant=<convention> batch=<B> median_ms=<x> min_ms=<x> max_ms=<x> GBps_eff=<x>`.

mod size;

use std::time::Instant;

use clap::Parser;
use ntk_momentum::optim::{Convention, GradientClip, ParamGroup, ParametersMut};
use ntk_momentum::{Float, HeavyBall, Nesterov, Optimizer, Result};
use size::Dtype;

/// Times optimizer steps on one tensor and on a tensor set.
#[derive(Parser, Debug)]
struct Args {
    /// Entries of the single tensor (comma-separated; scientific notation allowed).
    #[arg(long, value_delimiter = ',', default_value = "1e5,1e6,1e7")]
    sizes: Vec<f64>,
    /// Float types.
    #[arg(long, value_enum, value_delimiter = ',', default_value = "f32,f64")]
    dtypes: Vec<Dtype>,
    /// Tensors in the set case (0: skip).
    #[arg(long, default_value_t = 100)]
    tensors: usize,
    /// Total entries of the set.
    #[arg(long, default_value_t = 1e7)]
    set_total: f64,
    /// Timed batches per case.
    #[arg(long, default_value_t = 7)]
    repeats: usize,
    /// Threads (0 = all cores).
    #[arg(long, default_value_t = 2)]
    threads: usize,
}

const WARMUP: usize = 5;

fn batch_for(total: usize) -> usize {
    if total <= 1_000_000 {
        20
    } else {
        5
    }
}

/// (median, min, max) of `values`.
fn summary(mut values: Vec<f64>) -> (f64, f64, f64) {
    values.sort_by(f64::total_cmp);
    let mid = values.len() / 2;
    let median = if values.len() % 2 == 1 {
        values[mid]
    } else {
        0.5 * (values[mid - 1] + values[mid])
    };
    (median, values[0], values[values.len() - 1])
}

/// Milliseconds per call of `f`, one value per repeat.
fn time_batches(repeats: usize, batch: usize, mut f: impl FnMut() -> Result<()>) -> Result<Vec<f64>> {
    for _ in 0..WARMUP {
        f()?;
    }
    (0..repeats)
        .map(|_| {
            let start = Instant::now();
            for _ in 0..batch {
                f()?;
            }
            Ok(start.elapsed().as_secs_f64() * 1e3 / batch as f64)
        })
        .collect()
}

fn filled<T: Float>(len: usize, seed: u64) -> Vec<T> {
    // A cheap deterministic pseudo-random fill in [-1, 1).
    let mut s = seed.wrapping_mul(0x9e37_79b9_7f4a_7c15) | 1;
    (0..len)
        .map(|_| {
            s ^= s << 13;
            s ^= s >> 7;
            s ^= s << 17;
            T::cast((s >> 11) as f64 / (1u64 << 53) as f64 * 2.0 - 1.0)
        })
        .collect()
}

/// What one line reports about: entries, tensors, float type, repeats.
#[derive(Clone, Copy)]
struct Case {
    total: usize,
    tensors: usize,
    dtype: Dtype,
    repeats: usize,
}

impl Case {
    /// Times `optimizer` on a copy of `params`; `buffers` state buffers per
    /// entry.
    fn time<T: Float, P: ParametersMut<Scalar = T> + Clone, O: Optimizer<P>>(
        self,
        name: &str,
        variant: &str,
        buffers: usize,
        mut optimizer: O,
        params: &P,
        grad: &P,
    ) -> Result<()> {
        let mut params = params.clone();
        let batch = batch_for(self.total);
        let times = time_batches(self.repeats, batch, || optimizer.step(&mut params, grad))?;
        let (median, min, max) = summary(times);
        // Read θ, g, each buffer; write θ and each buffer.
        let bytes = ((3 + 2 * buffers) * self.total * std::mem::size_of::<T>()) as f64;
        println!(
            "crate {name} n={} tensors={} dtype={:?} variant={variant} batch={batch} \
             median_ms={median:.4} min_ms={min:.4} max_ms={max:.4} GBps_eff={:.2}",
            self.total,
            self.tensors,
            self.dtype,
            bytes / (median * 1e-3) / 1e9
        );
        Ok(())
    }

    fn all<T: Float, P: ParametersMut<Scalar = T> + Clone>(self, params: &P, grad: &P) -> Result<()>
    where
        Nesterov: Optimizer<P>,
        HeavyBall: Optimizer<P>,
    {
        self.time("nesterov", "displacement", 2, Nesterov::new(0.01, 0.9)?, params, grad)?;
        let pytorch = Nesterov::new(0.01, 0.9)?.convention(Convention::PyTorch);
        self.time("nesterov", "pytorch", 1, pytorch, params, grad)?;
        // The same steps without the finiteness check (PyTorch's contract).
        let unchecked = Nesterov::new(0.01, 0.9)?.check_finite(false);
        self.time("nesterov", "displacement_unchecked", 2, unchecked, params, grad)?;
        let unchecked = Nesterov::new(0.01, 0.9)?
            .convention(Convention::PyTorch)
            .check_finite(false);
        self.time("nesterov", "pytorch_unchecked", 1, unchecked, params, grad)?;
        self.time(
            "heavy_ball",
            "displacement",
            1,
            HeavyBall::new(0.01, 0.9)?,
            params,
            grad,
        )?;
        self.time("heavy_ball", "pytorch_knobs", 1, knobs()?, params, grad)?;
        self.time(
            "heavy_ball",
            "pytorch_knobs_unchecked",
            1,
            knobs()?.check_finite(false),
            params,
            grad,
        )
    }
}

/// Heavy ball in the PyTorch convention with weight decay, dampening and
/// clipping to global norm 1.
fn knobs() -> Result<HeavyBall> {
    HeavyBall::new(0.01, 0.9)?
        .convention(Convention::PyTorch)
        .weight_decay(1e-4)?
        .dampening(0.1)?
        .clip(GradientClip::Norm(1.0))
}

fn run<T: Float>(args: &Args, dtype: Dtype) -> Result<()> {
    for &n in &args.sizes {
        let n = n as usize;
        let (p, g) = (filled::<T>(n, 1), filled::<T>(n, 2));
        let case = Case {
            total: n,
            tensors: 1,
            dtype,
            repeats: args.repeats,
        };
        case.all(&p, &g)?;
    }
    if let Some(each) = (args.set_total as usize).checked_div(args.tensors) {
        let p: Vec<Vec<T>> = (0..args.tensors).map(|i| filled::<T>(each, 10 + i as u64)).collect();
        let g: Vec<Vec<T>> = (0..args.tensors).map(|i| filled::<T>(each, 1000 + i as u64)).collect();
        let case = Case {
            total: each * args.tensors,
            tensors: args.tensors,
            dtype,
            repeats: args.repeats,
        };
        case.all(&p, &g)?;
        // The same knobs with 10 groups of 10 tensors (tensor count permitting), each its own lr.
        let mut grouped = knobs()?;
        for k in 1..10 {
            let tensors = (10 * k..10 * k + 10).filter(|&i| i < args.tensors);
            let Ok(group) = ParamGroup::new(tensors) else { break };
            grouped = grouped.group(group.lr(0.01 / k as f64)?)?;
        }
        case.time("heavy_ball", "pytorch_knobs_groups", 1, grouped, &p, &g)?;
    }
    Ok(())
}

/// Times `pass` (over `n` f64 entries, moving `bytes` bytes per entry) and
/// prints one `label` line.
fn bandwidth_reference(label: &str, repeats: usize, n: usize, bytes: f64, mut pass: impl FnMut()) {
    let times = size::or_exit(time_batches(repeats, batch_for(n), || {
        pass();
        Ok(())
    }));
    let (median, min, max) = summary(times);
    println!(
        "{label} n={n} dtype=f64 batch={} median_ms={median:.4} min_ms={min:.4} max_ms={max:.4} GBps={:.2} GBps_best={:.2}",
        batch_for(n),
        bytes * n as f64 / (median * 1e-3) / 1e9,
        bytes * n as f64 / (min * 1e-3) / 1e9
    );
}

fn main() {
    let args: Args = size::parse_args();
    if let Some(n) = args.sizes.iter().find(|&&n| !(1.0..=1e10).contains(&n)) {
        eprintln!("error: invalid --sizes entry {n}: every size must be in [1, 1e10]");
        std::process::exit(2);
    }
    if args.repeats == 0 {
        eprintln!("error: invalid --repeats 0: at least 1");
        std::process::exit(2);
    }
    size::start(1, args.threads);
    println!(
        "# threads={} (rayon pool of the elementwise passes and GEMMs)",
        ntk_momentum::gemm_threads()
    );
    let n = 10_000_000;
    let (src, mut dst) = (filled::<f64>(n, 3), vec![0.0f64; n]);
    bandwidth_reference("copy", args.repeats, n, 16.0, || dst.copy_from_slice(&src));
    // The same copy split over the thread pool (what 2 threads can move).
    bandwidth_reference("copy_threads", args.repeats, n, 16.0, || {
        use rayon::prelude::*;
        dst.par_chunks_mut(1 << 16)
            .zip(src.par_chunks(1 << 16))
            .for_each(|(d, s)| d.copy_from_slice(s));
    });
    // An in-place triad a <- a + s b over the thread pool: read a and b,
    // write a (24 bytes per entry), the access pattern of an optimizer step
    // (every written array is read first, so no write-allocate traffic that
    // the 16 bytes of a copy do not count). The memory bound of a step is
    // its bytes over this rate.
    bandwidth_reference("triad_threads", args.repeats, n, 24.0, || {
        use rayon::prelude::*;
        dst.par_chunks_mut(1 << 16)
            .zip(src.par_chunks(1 << 16))
            .for_each(|(d, s)| {
                for (d, &s) in d.iter_mut().zip(s) {
                    *d += 1e-9 * s;
                }
            });
    });
    for &dtype in &args.dtypes {
        size::or_exit(match dtype {
            Dtype::F32 => run::<f32>(&args, dtype),
            Dtype::F64 => run::<f64>(&args, dtype),
        });
    }
}
