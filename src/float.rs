//! The floating-point types the crate computes in.

use nalgebra::RealField;

mod sealed {
    pub trait Sealed {}
    impl Sealed for f32 {}
    impl Sealed for f64 {}
}

/// Which float type a computation or a saved state uses.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
pub enum Precision {
    /// `f32`.
    F32,
    /// `f64`.
    F64,
}

impl std::fmt::Display for Precision {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Precision::F32 => "f32",
            Precision::F64 => "f64",
        })
    }
}

/// `f32` or `f64`: the one bound generic user code needs.
///
/// It extends nalgebra's [`RealField`] (so `DMatrix<T>` arithmetic works)
/// with lossless conversion to `f64` and its [`Precision`] tag. The
/// trait is sealed: only `f32` and `f64` implement it.
///
/// ```
/// use ntk_momentum::{Float, GradientDescent, Optimizer};
///
/// fn descend<T: Float>(x: &mut Vec<T>) -> Result<(), ntk_momentum::Error> {
///     let mut gd = GradientDescent::new(0.5)?;
///     let grad = x.clone(); // gradient of |x|^2 / 2
///     gd.step(x, &grad)
/// }
/// let mut x = vec![2.0f32, -4.0];
/// descend(&mut x).unwrap();
/// assert_eq!(x, vec![1.0, -2.0]);
/// ```
pub trait Float:
    RealField + Copy + Send + Sync + std::fmt::Display + std::fmt::LowerExp + sealed::Sealed + 'static
{
    /// `"f32"` or `"f64"`.
    const NAME: &'static str;
    /// [`Precision::F32`] or [`Precision::F64`].
    const PRECISION: Precision;
    /// The largest finite value, as `f64`.
    const MAX_FINITE: f64;
    /// Conversion from `f64` (rounds to nearest for `f32`).
    fn cast(x: f64) -> Self;
    /// Lossless conversion to `f64`.
    fn to_f64(self) -> f64;
    /// Whether the value is neither NaN nor infinite.
    fn finite(self) -> bool;
}

macro_rules! impl_float {
    ($t:ty, $name:literal, $dtype:ident) => {
        impl Float for $t {
            const NAME: &'static str = $name;
            const PRECISION: Precision = Precision::$dtype;
            const MAX_FINITE: f64 = <$t>::MAX as f64;
            #[inline]
            fn cast(x: f64) -> Self {
                x as $t
            }
            #[inline]
            fn to_f64(self) -> f64 {
                self as f64
            }
            #[inline]
            fn finite(self) -> bool {
                self.is_finite()
            }
        }
    };
}

impl_float!(f32, "f32", F32);
impl_float!(f64, "f64", F64);
