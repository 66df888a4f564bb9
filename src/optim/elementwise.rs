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
/// thread count); within a chunk, eight interleaved partial sums (one
/// accumulator would chain every add on the previous one), added up in a
/// fixed order.
pub(crate) fn sum_of_squares<T: Float>(g: &[T]) -> f64 {
    sum_of_squares_split(g, parallel(g.len()))
}

/// [`sum_of_squares`], split across threads or not (the same value either way).
pub(crate) fn sum_of_squares_split<T: Float>(g: &[T], split: bool) -> f64 {
    const LANES: usize = 8;
    let chunk = |g: &[T]| {
        dispatch(|| {
            let mut acc = [0.0f64; LANES];
            let mut blocks = g.chunks_exact(LANES);
            for block in &mut blocks {
                for (a, &x) in acc.iter_mut().zip(block) {
                    let x = x.to_f64();
                    *a += x * x;
                }
            }
            for (a, &x) in acc.iter_mut().zip(blocks.remainder()) {
                let x = x.to_f64();
                *a += x * x;
            }
            acc.iter().sum::<f64>()
        })
    };
    if split {
        let partial: Vec<f64> = g.par_chunks(CHUNK).map(chunk).collect();
        partial.iter().sum()
    } else {
        g.chunks(CHUNK).map(chunk).sum()
    }
}

/// ‖g_i‖₂² of every tensor of a set: one parallel pass over the tensors when
/// the set is large (each tensor summed as [`sum_of_squares`] would, so the
/// values do not depend on the split).
pub(crate) fn squared_norms<T: Float>(tensors: &[&[T]]) -> Vec<f64> {
    let total: usize = tensors.iter().map(|t| t.len()).sum();
    if tensors.len() > 1 && parallel(total) {
        tensors.par_iter().map(|g| sum_of_squares_split(g, false)).collect()
    } else {
        tensors.iter().map(|g| sum_of_squares(g)).collect()
    }
}
