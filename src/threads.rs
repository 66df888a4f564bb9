//! The thread count of the large products and elementwise passes, and the
//! run-time AVX2 dispatch of the elementwise loops (a leaf: the optimizers
//! use it in the optimizer-only build too).

use std::sync::atomic::{AtomicUsize, Ordering};

static GEMM_THREADS: AtomicUsize = AtomicUsize::new(0);

/// Sets the number of threads of the large matrix products (`0` restores
/// the default: all available cores). The large elementwise passes
/// (optimizer steps, finiteness checks, the fused residual pass) run on
/// rayon's global thread pool when this is not 1, and on the calling thread
/// when it is 1; their thread count is rayon's (`RAYON_NUM_THREADS`).
/// Results do not depend on either: work is split over output entries,
/// never over a sum.
pub fn set_gemm_threads(threads: usize) {
    GEMM_THREADS.store(threads, Ordering::Relaxed);
}

/// The number of threads the large matrix products use.
pub fn gemm_threads() -> usize {
    // The default is read from the system once (it costs system calls, and
    // the elementwise passes ask on every call).
    static AVAILABLE: std::sync::OnceLock<usize> = std::sync::OnceLock::new();
    match GEMM_THREADS.load(Ordering::Relaxed) {
        0 => *AVAILABLE.get_or_init(|| std::thread::available_parallelism().map_or(1, |n| n.get())),
        t => t,
    }
}

/// Runs `body` in a function compiled for AVX2 when the CPU has it, else as
/// is; `body` is inlined into either copy, so its loops use 256-bit vectors
/// where available. Used by the elementwise passes, whose results do not
/// depend on the vector width (no fused multiply-add is introduced).
#[inline(always)]
pub(crate) fn with_avx2<R>(body: impl FnOnce() -> R) -> R {
    #[cfg(target_arch = "x86_64")]
    {
        if std::arch::is_x86_feature_detected!("avx2") {
            #[target_feature(enable = "avx2")]
            unsafe fn avx2<R>(body: impl FnOnce() -> R) -> R {
                body()
            }
            // SAFETY: the CPU supports AVX2 (checked just above).
            return unsafe { avx2(body) };
        }
    }
    body()
}

/// Whether an elementwise pass over `len` entries should be split across
/// threads (large enough, and more than one thread allowed). Elementwise
/// passes give bit-identical results either way.
pub(crate) fn parallel(len: usize) -> bool {
    len >= 1 << 16 && gemm_threads() > 1
}
