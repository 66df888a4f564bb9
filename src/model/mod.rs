//! The over-parameterized two-layer ReLU network of the NTK analysis.

use nalgebra::{DMatrix, DVector};
use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;
use rand_distr::{Bernoulli, Distribution, Normal};

mod jacobian;

use crate::checks::{check_finite_matrix, first_non_finite};
use crate::linalg::{gemm, half_squared_distance, relu_outputs, residual_weights, Operand, Preactivations};
use crate::memory::bytes_of;
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

    /// Whether the buffers are already sized for m × n.
    pub(crate) fn fits(&self, m: usize, n: usize) -> bool {
        self.preactivations.shape() == (m, n)
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
    /// [`Error::TooLarge`] if the weights exceed the memory budget
    /// ([`crate::memory_limit`]).
    pub fn init(input_dim: usize, width: usize, seed: u64) -> Result<Self> {
        Self::with_init_scale(input_dim, width, 1.0, seed)
    }

    /// As [`TwoLayerReLU::init`] with `w_r ~ N(0, sigma² I)`.
    ///
    /// # Errors
    /// [`Error::InvalidParameter`] if `input_dim` or `width` is 0 or `sigma`
    /// is not finite and > 0, [`Error::TooLarge`] if the weights exceed the
    /// memory budget ([`crate::memory_limit`]).
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
        // The f64 draws and the weights in T, held at once.
        crate::memory::reserve(
            || format!("weights ({width} x {input_dim}) and their f64 draws"),
            &[
                bytes_of(&[width, input_dim], 8),
                bytes_of(&[width, input_dim], std::mem::size_of::<T>()),
            ],
        )?;
        let entries = width * input_dim;
        let mut rng = ChaCha8Rng::seed_from_u64(seed);
        let normal = Normal::new(0.0, sigma).map_err(|e| Error::invalid("sigma", sigma, e.to_string()))?;
        // Row-major draw order: w_1 first, entry by entry.
        let draws: Vec<f64> = (0..entries).map(|_| normal.sample(&mut rng)).collect();
        // Transposed into column-major storage in 64 x 64 blocks (a plain
        // gather strides through `draws` and misses the cache on every entry).
        let mut weights = DMatrix::<T>::zeros(width, input_dim);
        const BLOCK: usize = 64;
        for r0 in (0..width).step_by(BLOCK) {
            for k0 in (0..input_dim).step_by(BLOCK) {
                for k in k0..(k0 + BLOCK).min(input_dim) {
                    for r in r0..(r0 + BLOCK).min(width) {
                        weights[(r, k)] = T::cast(draws[r * input_dim + k]);
                    }
                }
            }
        }
        #[allow(clippy::expect_used)] // a constant probability
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

    /// Checks an m × n pre-activation matrix against the memory budget.
    pub(crate) fn reserve_preactivations(&self, n: usize) -> Result<()> {
        let m = self.width();
        crate::memory::reserve(
            || format!("pre-activations ({m} x {n})"),
            &[bytes_of(&[m, n], std::mem::size_of::<T>())],
        )
    }

    /// `P = W Xᵀ` (m × n) into `p`.
    pub(crate) fn preactivations_into(&self, x: &DMatrix<T>, p: &mut DMatrix<T>) {
        gemm(T::one(), Operand::n(&self.weights), Operand::t(x), T::zero(), p);
    }

    /// Network outputs `u = f(W; X)` (n entries) for `x` (n × d, one sample
    /// per row).
    ///
    /// # Errors
    /// [`Error::ShapeMismatch`] if `x` does not have d columns or has no
    /// rows; [`Error::NonFinite`] if it holds NaN or an infinity, or if an
    /// output overflows; [`Error::TooLarge`] if the m × n pre-activations
    /// exceed the memory budget ([`crate::memory_limit`]).
    pub fn forward(&self, x: &DMatrix<T>) -> Result<DVector<T>> {
        self.check_inputs(x)?;
        self.reserve_preactivations(x.nrows())?;
        let mut p = DMatrix::zeros(self.width(), x.nrows());
        self.preactivations_into(x, &mut p);
        let u = relu_outputs(Preactivations::One(&p), &self.output_weights);
        match first_non_finite(u.as_slice()) {
            None => Ok(u),
            Some(i) => Err(overflowed::<T>("network outputs f(W; X)", format!("sample {i}"))),
        }
    }

    /// The loss `L(W) = ½ ‖f(W; X) − y‖²`.
    ///
    /// # Errors
    /// As [`TwoLayerReLU::forward`], and [`Error::ShapeMismatch`] /
    /// [`Error::NonFinite`] for `y`; [`Error::NonFinite`] if the loss
    /// overflows.
    pub fn loss(&self, x: &DMatrix<T>, y: &DVector<T>) -> Result<T> {
        let u = self.forward(x)?;
        Self::check_targets(y, x.nrows())?;
        checked_loss(half_squared_distance(&u, y))
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
    /// not m × d; [`Error::NonFinite`] if a gradient entry overflows.
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
        if !workspace.fits(self.width(), x.nrows()) {
            // Two m × n matrices (pre-activations, residual weights).
            self.reserve_preactivations(x.nrows().saturating_mul(2))?;
        }
        workspace.ensure(self.width(), x.nrows());
        self.preactivations_into(x, &mut workspace.preactivations);
        let loss = residual_weights(
            Preactivations::One(&workspace.preactivations),
            &self.output_weights,
            y,
            &mut workspace.residual_weights,
            &mut workspace.column_losses,
        );
        // G = Mᵀ X
        gemm(
            T::one(),
            Operand::n(&workspace.residual_weights),
            Operand::n(x),
            T::zero(),
            grad,
        );
        let loss = checked_loss(loss)?;
        match first_non_finite(grad.as_slice()) {
            None => Ok(loss),
            Some(i) => Err(overflowed::<T>(
                "gradient",
                format!("row {}, column {}", i % grad.nrows(), i / grad.nrows()),
            )),
        }
    }
}

/// The error for a model output that overflowed `T` at `location`.
fn overflowed<T: Float>(what: &str, location: String) -> Error {
    Error::NonFinite {
        what: what.into(),
        location: format!("{location}: overflowed {} (inputs or weights too large)", T::NAME),
    }
}

/// `loss` in `T`, or an error if it overflowed (in `f64` or when rounded to
/// `T`): the outputs were finite but too far from the targets.
fn checked_loss<T: Float>(loss: f64) -> Result<T> {
    let l = T::cast(loss);
    if l.finite() {
        Ok(l)
    } else {
        Err(Error::NonFinite {
            what: "loss".into(),
            location: format!(
                "½ ‖f(W; X) − y‖² = {loss:e} overflowed {} (inputs, weights or targets too large)",
                T::NAME
            ),
        })
    }
}

pub(crate) fn shape_str<T>(m: &DMatrix<T>) -> String {
    format!("{} x {}", m.nrows(), m.ncols())
}
