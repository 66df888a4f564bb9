//! The over-parameterized two-layer ReLU network of the NTK analysis.

use nalgebra::{DMatrix, DVector};
use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;
use rand_distr::{Bernoulli, Distribution, Normal};

use crate::checks::{check_finite_matrix, first_non_finite};
use crate::linalg::{gemm, gram_of_columns, Operand};
use crate::{Error, Float, Result};

/// Largest Jacobian [`TwoLayerReLU::jacobian`] will materialise: 2^27
/// entries (1 GiB in `f64`). Use [`TwoLayerReLU::jvp`] and
/// [`TwoLayerReLU::vjp`] beyond it.
pub const JACOBIAN_MAX_ENTRIES: usize = 1 << 27;

/// A two-layer ReLU network with a fixed ±1 output layer:
///
/// ```text
/// f(W; x) = (1/√m) Σ_r a_r relu(w_r · x),     W = [w_1 … w_m]ᵀ ∈ R^{m×d},  a_r ∈ {+1, −1}
/// ```
///
/// Only `W` is trained. For inputs stacked as the rows of `X` (n × d) and
/// targets `y`, the outputs are `u = f(W; X)`, the loss is
/// `L(W) = ½ ‖u − y‖²`, and with residual `r = u − y` and activation mask
/// `S_ir = 1[w_r · x_i > 0]` (relu′(0) = 0, as in PyTorch and JAX)
///
/// ```text
/// ∂L/∂w_r = (a_r/√m) Σ_i r_i S_ir x_i,   i.e.  G = Mᵀ X,   M_ir = r_i S_ir a_r / √m.
/// ```
///
/// The Jacobian `J` (n × md) has row i, block r equal to `(a_r/√m) S_ir x_iᵀ`,
/// so `G = Jᵀ r`, and the empirical neural tangent kernel is
/// `H = J Jᵀ = (X Xᵀ) ∘ (S Sᵀ) / m` (since a_r² = 1).
///
/// The theory assumes unit-norm inputs (see [`crate::data`]); nothing here
/// requires them. Internally the pre-activations are kept as `P = W Xᵀ`
/// (m × n, one sample per column) so that every large product is one GEMM
/// over the stored layouts, with no copies.
///
/// # Examples
/// ```
/// use nalgebra::{DMatrix, DVector};
/// use ntk_momentum::TwoLayerReLU;
///
/// let model = TwoLayerReLU::<f64>::new(3, 512, 42)?;
/// let x = DMatrix::from_row_slice(2, 3, &[1.0, 0.0, 0.0, 0.0, 0.6, 0.8]);
/// let y = DVector::from_vec(vec![1.0, -1.0]);
/// let (loss, grad) = model.loss_and_gradient(&x, &y)?;
/// assert_eq!(grad.shape(), (512, 3));
/// assert!(loss >= 0.0);
/// let h = model.ntk_gram(&x)?; // 2 x 2, close to the infinite-width Gram
/// assert!((h[(0, 0)] - 0.5).abs() < 0.1);
/// # Ok::<(), ntk_momentum::Error>(())
/// ```
#[derive(Clone, Debug, PartialEq)]
pub struct TwoLayerReLU<T: Float = f64> {
    weights: DMatrix<T>,
    output_weights: DVector<T>,
}

/// Buffers for [`TwoLayerReLU::loss_and_gradient_with`], so a training loop
/// allocates nothing per step. Sized on first use; reused while the batch
/// size and width stay the same.
#[derive(Clone, Debug, Default)]
pub struct Workspace<T: Float> {
    pub(crate) preactivations: DMatrix<T>,
    pub(crate) residual_weights: DMatrix<T>,
    pub(crate) column_losses: Vec<f64>,
}

impl<T: Float> Workspace<T> {
    /// An empty workspace.
    pub fn new() -> Self {
        Workspace {
            preactivations: DMatrix::zeros(0, 0),
            residual_weights: DMatrix::zeros(0, 0),
            column_losses: Vec::new(),
        }
    }

    pub(crate) fn ensure(&mut self, m: usize, n: usize) {
        if self.preactivations.shape() != (m, n) {
            self.preactivations = DMatrix::zeros(m, n);
            self.residual_weights = DMatrix::zeros(m, n);
            self.column_losses = vec![0.0; n];
        }
    }
}

impl TwoLayerReLU<f64> {
    /// The `f64` network of [`TwoLayerReLU::init`], so that
    /// `TwoLayerReLU::new(d, m, seed)` needs no type annotation; for `f32`,
    /// `TwoLayerReLU::<f32>::init(d, m, seed)`.
    ///
    /// # Errors
    /// As [`TwoLayerReLU::init`].
    pub fn new(input_dim: usize, width: usize, seed: u64) -> Result<Self> {
        Self::init(input_dim, width, seed)
    }
}

impl<T: Float> TwoLayerReLU<T> {
    /// A network with `width` (m) neurons on `input_dim` (d) inputs, with
    /// `w_r ~ N(0, I)` and `a_r` uniform in {+1, −1}, drawn from a ChaCha8
    /// generator seeded with `seed`.
    ///
    /// Same seed, same network, bit for bit, on every platform and for both
    /// float types (the draws are made in `f64`, in the order w_1, …, w_m
    /// entry by entry, then a_1, …, a_m, and rounded to `T`), so the `f32`
    /// and `f64` networks of one seed agree to `f32` rounding.
    ///
    /// # Errors
    /// [`Error::InvalidParameter`] if `input_dim` or `width` is 0,
    /// [`Error::TooLarge`] if the weights cannot be allocated.
    pub fn init(input_dim: usize, width: usize, seed: u64) -> Result<Self> {
        Self::with_init_scale(input_dim, width, 1.0, seed)
    }

    /// As [`TwoLayerReLU::init`] with `w_r ~ N(0, sigma² I)`.
    ///
    /// # Errors
    /// [`Error::InvalidParameter`] if `input_dim` or `width` is 0 or `sigma`
    /// is not finite and > 0, [`Error::TooLarge`] if the weights cannot be
    /// allocated.
    pub fn with_init_scale(input_dim: usize, width: usize, sigma: f64, seed: u64) -> Result<Self> {
        if input_dim == 0 {
            return Err(Error::invalid("input_dim", input_dim, "at least 1"));
        }
        if width == 0 {
            return Err(Error::invalid("width", width, "at least 1"));
        }
        if !(sigma.is_finite() && sigma > 0.0) {
            return Err(Error::invalid("sigma", sigma, "a finite number > 0"));
        }
        let entries = width.checked_mul(input_dim).filter(|&e| e <= isize::MAX as usize / 8);
        let Some(entries) = entries else {
            return Err(Error::TooLarge {
                what: format!("weights ({width} x {input_dim})"),
                requested: width.saturating_mul(input_dim),
                limit: isize::MAX as usize / 8,
            });
        };
        let mut rng = ChaCha8Rng::seed_from_u64(seed);
        let normal = Normal::new(0.0, sigma).map_err(|e| Error::invalid("sigma", sigma, e.to_string()))?;
        // Row-major draw order: w_1 first, entry by entry.
        let draws: Vec<f64> = (0..entries).map(|_| normal.sample(&mut rng)).collect();
        let weights = DMatrix::from_fn(width, input_dim, |r, k| T::cast(draws[r * input_dim + k]));
        let coin = Bernoulli::new(0.5).expect("0.5 is a probability");
        let output_weights = DVector::from_fn(width, |_, _| if coin.sample(&mut rng) { T::one() } else { -T::one() });
        Ok(TwoLayerReLU {
            weights,
            output_weights,
        })
    }

    /// A network from given weights `W` (m × d, row r = w_r) and output
    /// weights `a` (m entries, each +1 or −1).
    ///
    /// # Errors
    /// [`Error::ShapeMismatch`] if the lengths disagree or are 0,
    /// [`Error::NonFinite`] for NaN or infinite weights,
    /// [`Error::InvalidParameter`] for an output weight other than ±1.
    pub fn from_parts(weights: DMatrix<T>, output_weights: DVector<T>) -> Result<Self> {
        if weights.nrows() == 0 || weights.ncols() == 0 {
            return Err(Error::shape(
                "weights",
                "at least 1 x 1",
                format!("{} x {}", weights.nrows(), weights.ncols()),
            ));
        }
        if output_weights.len() != weights.nrows() {
            return Err(Error::shape(
                "output_weights",
                format!("{} entries (one per row of weights)", weights.nrows()),
                format!("{} entries", output_weights.len()),
            ));
        }
        check_finite_matrix("weights", &weights)?;
        if let Some((r, a)) = output_weights
            .iter()
            .enumerate()
            .find(|(_, a)| **a != T::one() && **a != -T::one())
        {
            return Err(Error::invalid(
                "output_weights",
                format!("{a} at index {r}"),
                "+1 or -1",
            ));
        }
        Ok(TwoLayerReLU {
            weights,
            output_weights,
        })
    }

    /// The trained first-layer weights `W` (m × d, row r = w_r).
    pub fn weights(&self) -> &DMatrix<T> {
        &self.weights
    }

    /// Replaces `W`, keeping `a`.
    ///
    /// # Errors
    /// [`Error::ShapeMismatch`] if the shape changes, [`Error::NonFinite`] for
    /// NaN or infinite entries; the model is then unchanged.
    pub fn set_weights(&mut self, weights: DMatrix<T>) -> Result<()> {
        if weights.shape() != self.weights.shape() {
            return Err(Error::shape("weights", shape_str(&self.weights), shape_str(&weights)));
        }
        check_finite_matrix("weights", &weights)?;
        self.weights = weights;
        Ok(())
    }

    pub(crate) fn weights_mut(&mut self) -> &mut DMatrix<T> {
        &mut self.weights
    }

    /// The fixed output weights `a` (m entries, ±1).
    pub fn output_weights(&self) -> &DVector<T> {
        &self.output_weights
    }

    /// Input dimension d.
    pub fn input_dim(&self) -> usize {
        self.weights.ncols()
    }

    /// Width m (number of hidden neurons).
    pub fn width(&self) -> usize {
        self.weights.nrows()
    }

    /// Checks a batch `x` (n × d, finite, n ≥ 1) against the model.
    pub(crate) fn check_inputs(&self, x: &DMatrix<T>) -> Result<()> {
        if x.ncols() != self.input_dim() || x.nrows() == 0 {
            return Err(Error::shape(
                "x (one sample per row)",
                format!("n x {} with n >= 1", self.input_dim()),
                shape_str(x),
            ));
        }
        check_finite_matrix("x", x)
    }

    /// Checks targets `y` against a batch of `n` samples.
    pub(crate) fn check_targets(y: &DVector<T>, n: usize) -> Result<()> {
        if y.len() != n {
            return Err(Error::shape(
                "y",
                format!("{n} entries (one per row of x)"),
                format!("{} entries", y.len()),
            ));
        }
        if let Some(i) = first_non_finite(y.as_slice()) {
            return Err(Error::NonFinite {
                what: "y".into(),
                location: format!("entry {i}, value {}", y[i]),
            });
        }
        Ok(())
    }

    /// `P = W Xᵀ` (m × n) into `p`.
    pub(crate) fn preactivations_into(&self, x: &DMatrix<T>, p: &mut DMatrix<T>) {
        gemm(p, false, T::zero(), Operand::n(&self.weights), Operand::t(x), T::one());
    }

    /// Network outputs `u = f(W; X)` (n entries) for `x` (n × d, one sample
    /// per row).
    ///
    /// # Errors
    /// [`Error::ShapeMismatch`] if `x` does not have d columns or has no
    /// rows; [`Error::NonFinite`] if it holds NaN or an infinity.
    pub fn forward(&self, x: &DMatrix<T>) -> Result<DVector<T>> {
        self.check_inputs(x)?;
        let mut p = DMatrix::zeros(self.width(), x.nrows());
        self.preactivations_into(x, &mut p);
        Ok(outputs(&p, &self.output_weights))
    }

    /// The loss `L(W) = ½ ‖f(W; X) − y‖²`.
    ///
    /// # Errors
    /// As [`TwoLayerReLU::forward`], and [`Error::ShapeMismatch`] /
    /// [`Error::NonFinite`] for `y`.
    pub fn loss(&self, x: &DMatrix<T>, y: &DVector<T>) -> Result<T> {
        let u = self.forward(x)?;
        Self::check_targets(y, x.nrows())?;
        Ok(T::cast(half_squared_distance(&u, y)))
    }

    /// The loss and its gradient `G = Mᵀ X` (m × d) from one forward pass.
    ///
    /// # Errors
    /// As [`TwoLayerReLU::loss`].
    pub fn loss_and_gradient(&self, x: &DMatrix<T>, y: &DVector<T>) -> Result<(T, DMatrix<T>)> {
        let mut grad = DMatrix::zeros(self.width(), self.input_dim());
        let loss = self.loss_and_gradient_with(x, y, &mut Workspace::new(), &mut grad)?;
        Ok((loss, grad))
    }

    /// As [`TwoLayerReLU::loss_and_gradient`], writing the gradient into
    /// `grad` (m × d) and reusing `workspace`: no allocation once the
    /// workspace has been sized by a first call.
    ///
    /// # Errors
    /// As [`TwoLayerReLU::loss`], and [`Error::ShapeMismatch`] if `grad` is
    /// not m × d.
    pub fn loss_and_gradient_with(
        &self,
        x: &DMatrix<T>,
        y: &DVector<T>,
        workspace: &mut Workspace<T>,
        grad: &mut DMatrix<T>,
    ) -> Result<T> {
        self.check_inputs(x)?;
        Self::check_targets(y, x.nrows())?;
        if grad.shape() != self.weights.shape() {
            return Err(Error::shape("grad", shape_str(&self.weights), shape_str(grad)));
        }
        workspace.ensure(self.width(), x.nrows());
        self.preactivations_into(x, &mut workspace.preactivations);
        let loss = residual_weights(
            &workspace.preactivations,
            None,
            &self.output_weights,
            y,
            &mut workspace.residual_weights,
            &mut workspace.column_losses,
        );
        // G = Mᵀ X
        gemm(
            grad,
            false,
            T::zero(),
            Operand::n(&workspace.residual_weights),
            Operand::n(x),
            T::one(),
        );
        Ok(T::cast(loss))
    }

    /// The Jacobian `J = ∂u/∂vec(W)` (n × md): entry `(i, r·d + k)` is
    /// `(a_r/√m) S_ir x_ik` (column index r·d + k: neuron r, input coordinate
    /// k).
    ///
    /// # Errors
    /// As [`TwoLayerReLU::forward`], and [`Error::TooLarge`] if n·m·d exceeds
    /// [`JACOBIAN_MAX_ENTRIES`].
    pub fn jacobian(&self, x: &DMatrix<T>) -> Result<DMatrix<T>> {
        self.check_inputs(x)?;
        let (n, m, d) = (x.nrows(), self.width(), self.input_dim());
        let entries = n.checked_mul(m).and_then(|v| v.checked_mul(d)).unwrap_or(usize::MAX);
        if entries > JACOBIAN_MAX_ENTRIES {
            return Err(Error::TooLarge {
                what: "Jacobian (use jvp/vjp instead)".into(),
                requested: entries,
                limit: JACOBIAN_MAX_ENTRIES,
            });
        }
        let mut p = DMatrix::zeros(m, n);
        self.preactivations_into(x, &mut p);
        let scale = T::one() / T::cast(m as f64).sqrt();
        let mut j = DMatrix::zeros(n, m * d);
        for r in 0..m {
            let ar = self.output_weights[r] * scale;
            for i in 0..n {
                if p[(r, i)] > T::zero() {
                    for k in 0..d {
                        j[(i, r * d + k)] = ar * x[(i, k)];
                    }
                }
            }
        }
        Ok(j)
    }

    /// The Jacobian-vector product `J v` (n entries) for a direction `v`
    /// (m × d, same layout as `W`), without forming `J`:
    /// `(J v)_i = (1/√m) Σ_r a_r S_ir (v_r · x_i)`.
    ///
    /// # Errors
    /// As [`TwoLayerReLU::forward`], and [`Error::ShapeMismatch`] /
    /// [`Error::NonFinite`] for `v`.
    pub fn jvp(&self, x: &DMatrix<T>, v: &DMatrix<T>) -> Result<DVector<T>> {
        self.check_inputs(x)?;
        if v.shape() != self.weights.shape() {
            return Err(Error::shape("v", shape_str(&self.weights), shape_str(v)));
        }
        check_finite_matrix("v", v)?;
        let (n, m) = (x.nrows(), self.width());
        let mut p = DMatrix::zeros(m, n);
        self.preactivations_into(x, &mut p);
        let mut q = DMatrix::zeros(m, n);
        gemm(&mut q, false, T::zero(), Operand::n(v), Operand::t(x), T::one());
        let scale = T::one() / T::cast(m as f64).sqrt();
        Ok(DVector::from_fn(n, |i, _| {
            let mut acc = T::zero();
            for ((&pr, &qr), &a) in p
                .column(i)
                .iter()
                .zip(q.column(i).iter())
                .zip(self.output_weights.iter())
            {
                if pr > T::zero() {
                    acc += a * qr;
                }
            }
            acc * scale
        }))
    }

    /// The vector-Jacobian product `Jᵀ r` (m × d, same layout as `W`) for
    /// `r` (n entries), without forming `J`: `Jᵀ r = Mᵀ X` with
    /// `M_ir = r_i S_ir a_r / √m`. With `r = u − y` it is the gradient.
    ///
    /// # Errors
    /// As [`TwoLayerReLU::forward`], and [`Error::ShapeMismatch`] /
    /// [`Error::NonFinite`] for `r`.
    pub fn vjp(&self, x: &DMatrix<T>, r: &DVector<T>) -> Result<DMatrix<T>> {
        self.check_inputs(x)?;
        if r.len() != x.nrows() {
            return Err(Error::shape(
                "r",
                format!("{} entries (one per row of x)", x.nrows()),
                format!("{} entries", r.len()),
            ));
        }
        if let Some(i) = first_non_finite(r.as_slice()) {
            return Err(Error::NonFinite {
                what: "r".into(),
                location: format!("entry {i}, value {}", r[i]),
            });
        }
        let (n, m) = (x.nrows(), self.width());
        let mut p = DMatrix::zeros(m, n);
        self.preactivations_into(x, &mut p);
        let scale = T::one() / T::cast(m as f64).sqrt();
        for (i, mut col) in p.column_iter_mut().enumerate() {
            let ri = r[i] * scale;
            for (z, &a) in col.iter_mut().zip(self.output_weights.iter()) {
                *z = if *z > T::zero() { ri * a } else { T::zero() };
            }
        }
        let mut g = DMatrix::zeros(m, self.input_dim());
        gemm(&mut g, false, T::zero(), Operand::n(&p), Operand::n(x), T::one());
        Ok(g)
    }

    /// The empirical neural tangent kernel `H = J Jᵀ = (X Xᵀ) ∘ (S Sᵀ) / m`
    /// (n × n), in O(n² (d + m)) work with no n × m × d intermediate.
    ///
    /// # Errors
    /// As [`TwoLayerReLU::forward`].
    pub fn ntk_gram(&self, x: &DMatrix<T>) -> Result<DMatrix<T>> {
        self.check_inputs(x)?;
        let mut p = DMatrix::zeros(self.width(), x.nrows());
        self.preactivations_into(x, &mut p);
        Ok(ntk_gram_from_preactivations(x, &p))
    }
}

/// `H = (X Xᵀ) ∘ (Sᵀ S) / m` from the pre-activations `P` (m × n).
pub(crate) fn ntk_gram_from_preactivations<T: Float>(x: &DMatrix<T>, p: &DMatrix<T>) -> DMatrix<T> {
    let n = p.ncols();
    let mut k = DMatrix::zeros(n, n);
    gram_of_columns(Operand::t(x), &mut k);
    let mut h = DMatrix::zeros(n, n);
    ntk_from_preactivations(p, None, &k, &mut Vec::new(), &mut h);
    h
}

/// `h ← K ∘ (Sᵀ S) / m` with `S_ri = 1[P_ri > 0]`, `P = base + offset`
/// (m × n; the offset is the kernel-space `B K`).
///
/// `Sᵀ S` counts co-activations: the masks are packed into bits (`bits` is
/// the reused buffer, n · ⌈m/64⌉ words) and `(Sᵀ S)_ij` is the population
/// count of `s_i AND s_j`, an exact integer, so the result equals the GEMM
/// formulation bit for bit at 1/64 of its memory and a fraction of its work.
pub(crate) fn ntk_from_preactivations<T: Float>(
    base: &DMatrix<T>,
    offset: Option<&DMatrix<T>>,
    k: &DMatrix<T>,
    bits: &mut Vec<u64>,
    h: &mut DMatrix<T>,
) {
    use rayon::prelude::*;
    let (m, n) = base.shape();
    let words = m.div_ceil(64);
    bits.clear();
    bits.resize(n * words, 0);
    let pack = |i: usize, w: &mut [u64]| {
        let pc = &base.as_slice()[i * m..(i + 1) * m];
        let qc = offset.map(|q| &q.as_slice()[i * m..(i + 1) * m]);
        for (r, &z) in pc.iter().enumerate() {
            let z = match qc {
                Some(q) => z + q[r],
                None => z,
            };
            if z > T::zero() {
                w[r / 64] |= 1 << (r % 64);
            }
        }
    };
    let parallel = crate::linalg::parallel(m * n);
    if parallel {
        bits.par_chunks_mut(words).enumerate().for_each(|(i, w)| pack(i, w));
    } else {
        bits.chunks_mut(words).enumerate().for_each(|(i, w)| pack(i, w));
    }
    let inv_m = T::one() / T::cast(m as f64);
    let bits = &bits[..];
    let column = |j: usize, hc: &mut [T]| {
        let bj = &bits[j * words..(j + 1) * words];
        let kc = &k.as_slice()[j * n..(j + 1) * n];
        for (i, (hij, &kij)) in hc.iter_mut().zip(kc).enumerate() {
            let count = and_popcount(&bits[i * words..(i + 1) * words], bj);
            *hij = T::cast(count as f64) * kij * inv_m;
        }
    };
    if parallel {
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

/// `u_i = (1/√m) Σ_r a_r relu(P_ri)`.
pub(crate) fn outputs<T: Float>(p: &DMatrix<T>, a: &DVector<T>) -> DVector<T> {
    let scale = T::one() / T::cast(p.nrows() as f64).sqrt();
    DVector::from_iterator(
        p.ncols(),
        p.column_iter()
            .map(|col| relu_dot(col.as_slice(), None, a.as_slice()) * scale),
    )
}

/// Σ_r a_r relu(p_r + q_r) (q absent: 0), summed in 8 interleaved partial
/// sums (a fixed order, so the result is reproducible, and independent
/// chains the CPU can vectorise).
#[inline]
fn relu_dot<T: Float>(p: &[T], q: Option<&[T]>, a: &[T]) -> T {
    const LANES: usize = 8;
    let mut acc = [T::zero(); LANES];
    let whole = p.len() / LANES * LANES;
    match q {
        None => {
            for (pc, ac) in p[..whole].chunks_exact(LANES).zip(a[..whole].chunks_exact(LANES)) {
                for l in 0..LANES {
                    acc[l] += pc[l].max(T::zero()) * ac[l];
                }
            }
            for r in whole..p.len() {
                acc[r - whole] += p[r].max(T::zero()) * a[r];
            }
        }
        Some(q) => {
            let chunks = p[..whole].chunks_exact(LANES).zip(q[..whole].chunks_exact(LANES));
            for ((pc, qc), ac) in chunks.zip(a[..whole].chunks_exact(LANES)) {
                for l in 0..LANES {
                    acc[l] += (pc[l] + qc[l]).max(T::zero()) * ac[l];
                }
            }
            for r in whole..p.len() {
                acc[r - whole] += (p[r] + q[r]).max(T::zero()) * a[r];
            }
        }
    }
    let mut total = T::zero();
    for v in acc {
        total += v;
    }
    total
}

/// `m_r ← c a_r 1[p_r + q_r > 0]` (q absent: 0).
#[inline]
fn masked_scale<T: Float>(p: &[T], q: Option<&[T]>, a: &[T], c: T, m: &mut [T]) {
    match q {
        None => {
            for ((mv, &z), &ar) in m.iter_mut().zip(p).zip(a) {
                *mv = if z > T::zero() { c * ar } else { T::zero() };
            }
        }
        Some(q) => {
            for ((mv, (&z, &dz)), &ar) in m.iter_mut().zip(p.iter().zip(q)).zip(a) {
                *mv = if z + dz > T::zero() { c * ar } else { T::zero() };
            }
        }
    }
}

/// One fused pass over the pre-activations `P = base + offset` (m × n; the
/// offset is the kernel-space `B K`, absent in weight space): for each sample
/// i the output `u_i`, the residual `r_i = u_i − y_i`, and column i of `Mᵀ`
/// (`Mᵀ_ri = r_i S_ir a_r / √m`) into `mt`. Returns the loss ½ Σ r_i²,
/// accumulated in `f64` in sample order whatever the thread count (the
/// columns are processed in parallel, their losses summed sequentially from
/// `column_losses`).
pub(crate) fn residual_weights<T: Float>(
    base: &DMatrix<T>,
    offset: Option<&DMatrix<T>>,
    a: &DVector<T>,
    y: &DVector<T>,
    mt: &mut DMatrix<T>,
    column_losses: &mut Vec<f64>,
) -> f64 {
    use rayon::prelude::*;
    let m = base.nrows();
    let scale = T::one() / T::cast(m as f64).sqrt();
    let a = a.as_slice();
    column_losses.resize(base.ncols(), 0.0);
    let column = |i: usize, pc: &[T], qc: Option<&[T]>, mc: &mut [T]| -> f64 {
        let residual = relu_dot(pc, qc, a) * scale - y[i];
        masked_scale(pc, qc, a, residual * scale, mc);
        0.5 * residual.to_f64() * residual.to_f64()
    };
    let qs = offset.map(|q| q.as_slice());
    if crate::linalg::parallel(base.len()) {
        mt.as_mut_slice()
            .par_chunks_mut(m)
            .zip(base.as_slice().par_chunks(m))
            .zip(column_losses.par_iter_mut())
            .enumerate()
            .for_each(|(i, ((mc, pc), l))| *l = column(i, pc, qs.map(|q| &q[i * m..(i + 1) * m]), mc));
    } else {
        for (i, ((mc, pc), l)) in mt
            .as_mut_slice()
            .chunks_mut(m)
            .zip(base.as_slice().chunks(m))
            .zip(column_losses.iter_mut())
            .enumerate()
        {
            *l = column(i, pc, qs.map(|q| &q[i * m..(i + 1) * m]), mc);
        }
    }
    column_losses.iter().sum()
}

/// ½ ‖u − y‖², accumulated in `f64`.
pub(crate) fn half_squared_distance<T: Float>(u: &DVector<T>, y: &DVector<T>) -> f64 {
    u.iter()
        .zip(y.iter())
        .map(|(&a, &b)| (a - b).to_f64().powi(2))
        .sum::<f64>()
        * 0.5
}

pub(crate) fn shape_str<T>(m: &DMatrix<T>) -> String {
    format!("{} x {}", m.nrows(), m.ncols())
}
