//! The training loop's steady state allocates nothing of its own: a counting
//! global allocator measures the allocations per step.
//!
//! The GEMM kernels (the `gemm` crate) allocate their packing buffers on each
//! call (about 3 allocations per step, measured here, the largest a packed
//! copy of one operand such as X), which no caller can avoid. The test
//! therefore checks that the number of allocations per step is a small
//! constant that does not grow with the problem, and that no steady-state
//! allocation is as large as the loop's own per-step arrays (the
//! pre-activations and residual weights, n·m entries, and the gradient, m·d):
//! those are allocated once per run.
#![cfg(feature = "full")]

use std::alloc::{GlobalAlloc, Layout, System};
use std::sync::atomic::{AtomicUsize, Ordering};

use nalgebra::{DMatrix, DVector};
use ntk_momentum::train::{Control, Parameterization, StepInfo, Trainer};
use ntk_momentum::{Nesterov, TwoLayerReLU};

struct Counting;
static ALLOCS: AtomicUsize = AtomicUsize::new(0);
static BYTES: AtomicUsize = AtomicUsize::new(0);
static LARGEST: AtomicUsize = AtomicUsize::new(0);
static WATCHING: std::sync::atomic::AtomicBool = std::sync::atomic::AtomicBool::new(false);

unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        ALLOCS.fetch_add(1, Ordering::Relaxed);
        BYTES.fetch_add(layout.size(), Ordering::Relaxed);
        if WATCHING.load(Ordering::Relaxed) {
            LARGEST.fetch_max(layout.size(), Ordering::Relaxed);
        }
        unsafe { System.alloc(layout) }
    }
    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        unsafe { System.dealloc(ptr, layout) }
    }
}

#[global_allocator]
static GLOBAL: Counting = Counting;

/// (allocations per step, largest single allocation in bytes) between steps
/// 10 and 30.
fn per_step(n: usize, d: usize, m: usize, p: Parameterization) -> (f64, usize) {
    ntk_momentum::set_gemm_threads(1);
    let x = DMatrix::from_fn(n, d, |i, k| (((i * 31 + k * 17) % 23) as f64 - 11.0) / 11.0);
    let x = DMatrix::from_rows(&x.row_iter().map(|r| r / r.norm()).collect::<Vec<_>>());
    let y = DVector::from_fn(n, |i, _| if i % 2 == 0 { 1.0 } else { -1.0 });
    let model = TwoLayerReLU::new(d, m, 1).unwrap();
    // A call-scoped observer (run_with) that borrows `marks` from here.
    let mut marks = Vec::new();
    let mut recorder = |info: &StepInfo| {
        if info.step == 10 || info.step == 30 {
            marks.push((ALLOCS.load(Ordering::Relaxed), BYTES.load(Ordering::Relaxed)));
            WATCHING.store(info.step == 10, Ordering::Relaxed);
        }
        Control::Continue
    };
    let mut t = Trainer::new(model, Nesterov::new(0.01, 0.9).unwrap())
        .max_steps(40)
        .parameterization(p)
        .diagnostics_every(0);
    t.run_with(&x, &y, &mut recorder).unwrap();
    let allocations = (marks[1].0 - marks[0].0) as f64 / 20.0;
    (allocations, LARGEST.swap(0, Ordering::Relaxed))
}

#[test]
fn steady_state_allocations_do_not_scale_with_the_problem() {
    for p in [Parameterization::Weight, Parameterization::Kernel] {
        let (n, d, m) = (256, 384, 512);
        let small = per_step(n / 4, d / 4, m / 4, p);
        let large = per_step(n, d, m, p);
        eprintln!("{p}: (allocations per step, largest allocation in bytes): small {small:?}, large {large:?}");
        assert!(large.0 <= small.0 + 0.5, "{p}: allocation count grows with the size");
        assert!(large.0 <= 8.0, "{p}: {} allocations per step", large.0);
        let smallest_own_array = 8 * (n * m).min(m * d);
        assert!(
            large.1 < smallest_own_array,
            "{p}: a steady-state allocation of {} bytes",
            large.1
        );
    }
}
