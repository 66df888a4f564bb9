//! The floating-point types the crate computes in.

mod sealed {
    /// The arithmetic bound: nalgebra's `RealField` where nalgebra is in
    /// the build (feature `nalgebra`, part of `full`), num-traits' `Float`
    /// in the optimizer-only build.
    #[cfg(feature = "nalgebra")]
    pub trait Sealed: nalgebra::RealField {}
    #[cfg(not(feature = "nalgebra"))]
    pub trait Sealed: num_traits::Num + num_traits::NumAssign + std::ops::Neg<Output = Self> + PartialOrd {}
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
/// It extends nalgebra's `RealField` where nalgebra is in the build (the
/// features `full`, the default, and `nalgebra`: `DMatrix<T>` arithmetic
/// works) and num-traits' `Num + NumAssign + Neg + PartialOrd` in the
/// optimizer-only build, with lossless conversion to `f64`, `magnitude`
/// (|x|) and its [`Precision`] tag. The trait is sealed: only `f32` and
/// `f64` implement it.
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
pub trait Float: sealed::Sealed + Copy + Send + Sync + std::fmt::Display + std::fmt::LowerExp + 'static {
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
    /// |x| (a name of its own: `abs` comes from nalgebra's `RealField` in the full build).
    fn magnitude(self) -> Self;
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
            fn magnitude(self) -> Self {
                self.abs()
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

/// Entrywise `approx` comparisons of `f64` slices of equal length, for the
/// `AbsDiffEq` / `RelativeEq` implementations of the public records.
#[cfg(feature = "nalgebra")]
pub(crate) mod close {
    use approx::{AbsDiffEq, RelativeEq};

    pub(crate) fn abs(a: &[f64], b: &[f64], epsilon: f64) -> bool {
        a.len() == b.len() && a.iter().zip(b).all(|(x, y)| x == y || x.abs_diff_eq(y, epsilon))
    }

    pub(crate) fn relative(a: &[f64], b: &[f64], epsilon: f64, max_relative: f64) -> bool {
        a.len() == b.len()
            && a.iter()
                .zip(b)
                .all(|(x, y)| x == y || x.relative_eq(y, epsilon, max_relative))
    }

    pub(crate) fn option(a: Option<f64>, b: Option<f64>, same: impl Fn(&[f64], &[f64]) -> bool) -> bool {
        match (a, b) {
            (None, None) => true,
            (Some(x), Some(y)) => same(&[x], &[y]),
            _ => false,
        }
    }
}

/// `AbsDiffEq` and `RelativeEq` (epsilon `f64`, default `f64::EPSILON`)
/// for a record, from a function that compares two of them with a slice
/// comparison.
#[cfg(feature = "nalgebra")]
macro_rules! approx_record {
    ($t:ty, |$a:ident, $b:ident, $same:ident| $body:expr) => {
        impl approx::AbsDiffEq for $t {
            type Epsilon = f64;
            fn default_epsilon() -> f64 {
                f64::EPSILON
            }
            fn abs_diff_eq(&self, other: &Self, epsilon: f64) -> bool {
                let ($a, $b) = (self, other);
                let $same = |x: &[f64], y: &[f64]| $crate::float::close::abs(x, y, epsilon);
                $body
            }
        }
        impl approx::RelativeEq for $t {
            fn default_max_relative() -> f64 {
                f64::EPSILON
            }
            fn relative_eq(&self, other: &Self, epsilon: f64, max_relative: f64) -> bool {
                let ($a, $b) = (self, other);
                let $same = |x: &[f64], y: &[f64]| $crate::float::close::relative(x, y, epsilon, max_relative);
                $body
            }
        }
    };
}
#[cfg(feature = "nalgebra")]
pub(crate) use approx_record;
