//! The fused ReLU passes over a matrix of pre-activations `P` (m × n, one
//! column per sample) that the model and the training loop share: outputs,
//! residual weights, and the co-activation kernel of the NTK Gram matrix.
//!
//! `P` is given either as one matrix or as the sum of two
//! ([`Preactivations`]), so a caller that keeps `P` as `P_0 + Q` never forms
//! the sum.

use nalgebra::{DMatrix, DVector};
use rayon::prelude::*;

use super::parallel;
use crate::Float;

/// Pre-activations `P` (m × n): one matrix, or the entrywise sum of two of
/// the same shape.
#[derive(Clone, Copy)]
pub(crate) enum Preactivations<'a, T> {
    /// `P` itself.
    One(&'a DMatrix<T>),
    /// `P = first + second`.
    Sum(&'a DMatrix<T>, &'a DMatrix<T>),
}

impl<'a, T: Float> Preactivations<'a, T> {
    pub(crate) fn shape(self) -> (usize, usize) {
        match self {
            Preactivations::One(p) | Preactivations::Sum(p, _) => p.shape(),
        }
    }

    /// Column `i` (the m pre-activations of sample i).
    fn column(self, i: usize) -> Column<'a, T> {
        let m = self.shape().0;
        let range = i * m..(i + 1) * m;
        match self {
            Preactivations::One(p) => Column::One(&p.as_slice()[range]),
            Preactivations::Sum(p, q) => Column::Sum(&p.as_slice()[range.clone()], &q.as_slice()[range]),
        }
    }
}

/// Lanes of the interleaved partial sums in [`relu_dot`].
const LANES: usize = 8;

/// One column of [`Preactivations`].
#[derive(Clone, Copy)]
enum Column<'a, T> {
    One(&'a [T]),
    Sum(&'a [T], &'a [T]),
}

/// The entries of a column, read in blocks of [`LANES`] (one bounds check
/// per block, so the loops vectorise) or one at a time.
trait Entries<T>: Copy {
    fn len(self) -> usize;
    fn block(self, start: usize) -> [T; LANES];
    fn at(self, r: usize) -> T;
}

impl<T: Float> Entries<T> for &[T] {
    #[inline(always)]
    fn len(self) -> usize {
        <[T]>::len(self)
    }
    #[inline(always)]
    fn block(self, start: usize) -> [T; LANES] {
        let mut out = [T::zero(); LANES];
        out.copy_from_slice(&self[start..start + LANES]);
        out
    }
    #[inline(always)]
    fn at(self, r: usize) -> T {
        self[r]
    }
}

impl<T: Float> Entries<T> for (&[T], &[T]) {
    #[inline(always)]
    fn len(self) -> usize {
        self.0.len()
    }
    #[inline(always)]
    fn block(self, start: usize) -> [T; LANES] {
        let (mut a, b) = (self.0.block(start), self.1.block(start));
        for (x, y) in a.iter_mut().zip(b) {
            *x += y;
        }
        a
    }
    #[inline(always)]
    fn at(self, r: usize) -> T {
        self.0[r] + self.1[r]
    }
}

/// Σ_r a_r relu(z_r), summed in [`LANES`] interleaved partial sums (a fixed
/// order, so the result is reproducible, and independent chains the CPU can
/// vectorise).
#[inline]
fn relu_dot<T: Float, Z: Entries<T>>(z: Z, a: &[T]) -> T {
    let mut acc = [T::zero(); LANES];
    let whole = z.len() / LANES * LANES;
    for start in (0..whole).step_by(LANES) {
        let (zb, ab) = (z.block(start), &a[start..start + LANES]);
        for l in 0..LANES {
            acc[l] += zb[l].max(T::zero()) * ab[l];
        }
    }
    for r in whole..z.len() {
        acc[r - whole] += z.at(r).max(T::zero()) * a[r];
    }
    acc.iter().fold(T::zero(), |s, &v| s + v)
}

/// `m_r ← c a_r 1[z_r > 0]`.
#[inline]
fn masked_scale<T: Float, Z: Entries<T>>(z: Z, a: &[T], c: T, m: &mut [T]) {
    for (r, (mv, &ar)) in m.iter_mut().zip(a).enumerate() {
        *mv = if z.at(r) > T::zero() { c * ar } else { T::zero() };
    }
}

impl<T: Float> Column<'_, T> {
    fn relu_dot(self, a: &[T]) -> T {
        match self {
            Column::One(p) => relu_dot(p, a),
            Column::Sum(p, q) => relu_dot((p, q), a),
        }
    }

    fn masked_scale(self, a: &[T], c: T, m: &mut [T]) {
        match self {
            Column::One(p) => masked_scale(p, a, c, m),
            Column::Sum(p, q) => masked_scale((p, q), a, c, m),
        }
    }

    fn active(self, r: usize) -> bool {
        match self {
            Column::One(p) => p.at(r) > T::zero(),
            Column::Sum(p, q) => (p, q).at(r) > T::zero(),
        }
    }
}

/// The outputs `u_i = (1/√m) Σ_r a_r relu(P_ri)` (n entries).
pub(crate) fn relu_outputs<T: Float>(p: Preactivations<'_, T>, a: &DVector<T>) -> DVector<T> {
    let (m, n) = p.shape();
    let scale = T::one() / T::cast(m as f64).sqrt();
    DVector::from_iterator(n, (0..n).map(|i| p.column(i).relu_dot(a.as_slice()) * scale))
}

/// One fused pass over the pre-activations (m × n): for each sample i the
/// output `u_i`, the residual `r_i = u_i − y_i`, and column i of `Mᵀ`
/// (`Mᵀ_ri = r_i S_ir a_r / √m`, `S_ir = 1[P_ri > 0]`) into `mt`. Returns
/// the loss ½ Σ r_i², accumulated in `f64` in sample order whatever the
/// thread count (the columns are processed in parallel, their losses summed
/// sequentially from `column_losses`).
pub(crate) fn residual_weights<T: Float>(
    p: Preactivations<'_, T>,
    a: &DVector<T>,
    y: &DVector<T>,
    mt: &mut DMatrix<T>,
    column_losses: &mut Vec<f64>,
) -> f64 {
    let (m, n) = p.shape();
    let scale = T::one() / T::cast(m as f64).sqrt();
    let a = a.as_slice();
    column_losses.resize(n, 0.0);
    let column = |i: usize, mc: &mut [T]| -> f64 {
        let z = p.column(i);
        let residual = z.relu_dot(a) * scale - y[i];
        z.masked_scale(a, residual * scale, mc);
        0.5 * residual.to_f64() * residual.to_f64()
    };
    let columns = mt.as_mut_slice();
    if parallel(m * n) {
        columns
            .par_chunks_mut(m)
            .zip(column_losses.par_iter_mut())
            .enumerate()
            .for_each(|(i, (mc, l))| *l = column(i, mc));
    } else {
        for (i, (mc, l)) in columns.chunks_mut(m).zip(column_losses.iter_mut()).enumerate() {
            *l = column(i, mc);
        }
    }
    column_losses.iter().sum()
}

/// Packs the masks `S_ri = 1[P_ri > 0]` of the m × n pre-activations into
/// `bits`: n runs of ⌈m/64⌉ words, bit r % 64 of word r / 64 for unit r.
pub(crate) fn pack_activations<T: Float>(p: Preactivations<'_, T>, bits: &mut Vec<u64>) {
    let (m, n) = p.shape();
    let words = m.div_ceil(64);
    bits.clear();
    bits.resize(n * words, 0);
    let pack = |i: usize, w: &mut [u64]| {
        let z = p.column(i);
        for r in 0..m {
            if z.active(r) {
                w[r / 64] |= 1 << (r % 64);
            }
        }
    };
    if parallel(m * n) {
        bits.par_chunks_mut(words).enumerate().for_each(|(i, w)| pack(i, w));
    } else {
        bits.chunks_mut(words).enumerate().for_each(|(i, w)| pack(i, w));
    }
}

/// `h ← K ∘ (Sᵀ S) / m` with `S_ri = 1[P_ri > 0]` (n × n): the empirical NTK
/// Gram matrix when `K = X Xᵀ`.
///
/// `Sᵀ S` counts co-activations: the masks are packed into bits (`bits` is
/// the reused buffer, n · ⌈m/64⌉ words) and `(Sᵀ S)_ij` is the population
/// count of `s_i AND s_j`, an exact integer, so the result equals the GEMM
/// formulation bit for bit at 1/64 of its memory and a fraction of its work.
pub(crate) fn co_activation_kernel<T: Float>(
    p: Preactivations<'_, T>,
    k: &DMatrix<T>,
    bits: &mut Vec<u64>,
    h: &mut DMatrix<T>,
) {
    let m = p.shape().0;
    pack_activations(p, bits);
    co_activation_from_bits(bits, bits, m, k, h);
}

/// `h ← K ∘ (S_aᵀ S_b) / m` from two packed masks of m units each (see
/// [`pack_activations`]): `h_ij = K_ij · #{r : a_ri ∧ b_rj} / m`. With the
/// masks of the same weights this is H(W); with those of W_s and W_{s−1} it
/// is the cross kernel J_s J_{s−1}ᵀ.
pub(crate) fn co_activation_from_bits<T: Float>(a: &[u64], b: &[u64], m: usize, k: &DMatrix<T>, h: &mut DMatrix<T>) {
    let n = k.nrows();
    let words = m.div_ceil(64);
    let inv_m = T::one() / T::cast(m as f64);
    let column = |j: usize, hc: &mut [T]| {
        let bj = &b[j * words..(j + 1) * words];
        let kc = &k.as_slice()[j * n..(j + 1) * n];
        for (i, (hij, &kij)) in hc.iter_mut().zip(kc).enumerate() {
            let count = and_popcount(&a[i * words..(i + 1) * words], bj);
            *hij = T::cast(count as f64) * kij * inv_m;
        }
    };
    if parallel(m * n) {
        h.as_mut_slice()
            .par_chunks_mut(n)
            .enumerate()
            .for_each(|(j, hc)| column(j, hc));
    } else {
        h.as_mut_slice()
            .chunks_mut(n)
            .enumerate()
            .for_each(|(j, hc)| column(j, hc));
    }
}

/// Σ_w popcount(a_w AND b_w), with the hardware instruction when the CPU has
/// it (detected once).
fn and_popcount(a: &[u64], b: &[u64]) -> u32 {
    #[cfg(target_arch = "x86_64")]
    {
        use std::sync::OnceLock;
        static HAS_POPCNT: OnceLock<bool> = OnceLock::new();
        if *HAS_POPCNT.get_or_init(|| std::arch::is_x86_feature_detected!("popcnt")) {
            #[target_feature(enable = "popcnt")]
            fn with_popcnt(a: &[u64], b: &[u64]) -> u32 {
                a.iter().zip(b).map(|(x, y)| (x & y).count_ones()).sum()
            }
            // SAFETY: the CPU supports popcnt (checked above).
            return unsafe { with_popcnt(a, b) };
        }
    }
    a.iter().zip(b).map(|(x, y)| (x & y).count_ones()).sum()
}

/// ½ ‖u − y‖², accumulated in `f64`.
pub(crate) fn half_squared_distance<T: Float>(u: &DVector<T>, y: &DVector<T>) -> f64 {
    u.iter()
        .zip(y.iter())
        .map(|(&a, &b)| (a - b).to_f64().powi(2))
        .sum::<f64>()
        * 0.5
}
