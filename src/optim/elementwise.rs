//! The elementwise loops of the optimizer steps, split across threads in
//! fixed chunks for large tensors (bit-identical for any thread count: every
//! entry is computed by the same expression whatever the split).
//!
//! On x86-64 CPUs with AVX2 each chunk runs in a copy of the loop compiled
//! for AVX2 (chosen at run time), so the loops use 256-bit vectors instead of
//! the baseline SSE2. The arithmetic is the same IEEE operations in the same
//! order (no fused multiply-add is introduced), so results are bit-identical
//! on every CPU.

use rayon::prelude::*;

use crate::checks::CHUNK;
use crate::threads::{parallel, with_avx2 as dispatch};
use crate::Float;

/// `f(θ_i, g_i)` for every entry.
pub(crate) fn zip1<T: Float>(p: &mut [T], g: &[T], f: impl Fn(&mut T, T) + Sync) {
    let run = |p: &mut [T], g: &[T]| {
        dispatch(|| {
            for (p, &g) in p.iter_mut().zip(g) {
                f(p, g);
            }
        })
    };
    if parallel(p.len()) {
        p.par_chunks_mut(CHUNK)
            .zip(g.par_chunks(CHUNK))
            .for_each(|(p, g)| run(p, g));
    } else {
        run(p, g);
    }
}

/// `f(θ_i, g_i, a_i)` for every entry, with one state buffer `a`.
pub(crate) fn zip2<T: Float>(p: &mut [T], g: &[T], a: &mut [T], f: impl Fn(&mut T, T, &mut T) + Sync) {
    let run = |p: &mut [T], g: &[T], a: &mut [T]| {
        dispatch(|| {
            for ((p, &g), a) in p.iter_mut().zip(g).zip(a.iter_mut()) {
                f(p, g, a);
            }
        })
    };
    if parallel(p.len()) {
        let chunks = p
            .par_chunks_mut(CHUNK)
            .zip(g.par_chunks(CHUNK))
            .zip(a.par_chunks_mut(CHUNK));
        chunks.for_each(|((p, g), a)| run(p, g, a));
    } else {
        run(p, g, a);
    }
}

/// `f(θ_i, g_i, a_i, b_i)` for every entry, with two state buffers.
pub(crate) fn zip3<T: Float>(
    p: &mut [T],
    g: &[T],
    a: &mut [T],
    b: &mut [T],
    f: impl Fn(&mut T, T, &mut T, &mut T) + Sync,
) {
    let run = |p: &mut [T], g: &[T], a: &mut [T], b: &mut [T]| {
        dispatch(|| {
            for ((p, &g), (a, b)) in p.iter_mut().zip(g).zip(a.iter_mut().zip(b.iter_mut())) {
                f(p, g, a, b);
            }
        })
    };
    if parallel(p.len()) {
        let state = a.par_chunks_mut(CHUNK).zip(b.par_chunks_mut(CHUNK));
        let chunks = p.par_chunks_mut(CHUNK).zip(g.par_chunks(CHUNK)).zip(state);
        chunks.for_each(|((p, g), (a, b))| run(p, g, a, b));
    } else {
        run(p, g, a, b);
    }
}

/// Σ g_i² in `f64`, in fixed chunks summed in order (the same value for any
/// thread count).
pub(crate) fn sum_of_squares<T: Float>(g: &[T]) -> f64 {
    let chunk = |g: &[T]| g.iter().fold(0.0f64, |s, &x| s + x.to_f64() * x.to_f64());
    if parallel(g.len()) {
        let partial: Vec<f64> = g.par_chunks(CHUNK).map(chunk).collect();
        partial.iter().sum()
    } else {
        g.chunks(CHUNK).map(chunk).sum()
    }
}
