//! Parameter containers: one tensor, or a set of tensors of different shapes.

#[cfg(feature = "nalgebra")]
use nalgebra::{DMatrix, DVector};

use crate::{Error, Float, Result};

/// Most dimensions a [`Shape`] holds.
pub const MAX_DIMS: usize = 8;

/// The declared dimensions of one tensor (at most [`MAX_DIMS`]), stored
/// inline so that reading a shape never allocates.
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub struct Shape {
    dims: [usize; MAX_DIMS],
    rank: u8,
}

impl Shape {
    /// A shape with the given dimensions.
    ///
    /// # Errors
    /// [`Error::InvalidParameter`] for more than [`MAX_DIMS`] dimensions.
    pub fn new(dims: &[usize]) -> Result<Shape> {
        if dims.len() > MAX_DIMS {
            return Err(Error::invalid(
                "shape",
                format!("{dims:?}"),
                format!("at most {MAX_DIMS} dimensions"),
            ));
        }
        let mut d = [0; MAX_DIMS];
        d[..dims.len()].copy_from_slice(dims);
        Ok(Shape {
            dims: d,
            rank: dims.len() as u8,
        })
    }

    /// A vector of `len` entries.
    pub const fn vector(len: usize) -> Shape {
        let mut dims = [0; MAX_DIMS];
        dims[0] = len;
        Shape { dims, rank: 1 }
    }

    /// A `rows × columns` matrix.
    pub const fn matrix(rows: usize, columns: usize) -> Shape {
        let mut dims = [0; MAX_DIMS];
        dims[0] = rows;
        dims[1] = columns;
        Shape { dims, rank: 2 }
    }

    /// The dimensions.
    pub fn dims(&self) -> &[usize] {
        &self.dims[..self.rank as usize]
    }

    /// The number of entries the shape declares (`None` if the product
    /// overflows `usize`); 1 for a rank-0 (scalar) shape.
    pub fn entries(&self) -> Option<usize> {
        self.dims().iter().try_fold(1usize, |a, &d| a.checked_mul(d))
    }
}

impl std::fmt::Debug for Shape {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{:?}", self.dims())
    }
}

impl std::fmt::Display for Shape {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let dims = self.dims();
        if dims.is_empty() {
            return f.write_str("scalar");
        }
        for (i, d) in dims.iter().enumerate() {
            if i > 0 {
                f.write_str(" x ")?;
            }
            write!(f, "{d}")?;
        }
        Ok(())
    }
}

/// A set of tensors the optimizers read: gradients, and (with
/// [`ParametersMut`]) parameters.
///
/// A set holds [`Parameters::tensor_count`] tensors; tensor `i` has a declared
/// [`Shape`] and its entries as one contiguous slice. The optimizers check,
/// before they change anything, that the declared shape and the slice length
/// agree, that parameters and gradients have the same number of tensors with
/// the same shapes, and that the shapes are those of the first step.
/// Gradient and parameter slices are matched entry by entry, so both must
/// store their entries in the same order (true of every container below).
///
/// Implemented for:
/// - one tensor: `Vec<T>` and `[T]` (shape `[len]`), `nalgebra::DVector<T>`
///   (`[len]`), `nalgebra::DMatrix<T>` (`[rows, columns]`, column-major),
///   and with the feature `ndarray`, ndarray arrays and views of any
///   dimension (standard layout);
/// - sets: tuples of up to eight sets, arrays `[S; N]` of sets, and
///   `Vec`s of `Vec<T>`, `DVector<T>` or `DMatrix<T>`;
/// - references `&S` and `&mut S` to any of them, so a tuple of references
///   to a struct's fields is a set without writing any code.
///
/// For a struct of your own, return each field's tensor from
/// [`Parameters::tensor`]:
///
/// ```
/// use nalgebra::{DMatrix, DVector};
/// use ntk_momentum::optim::{Parameters, ParametersMut, Shape};
/// use ntk_momentum::{HeavyBall, Optimizer, Result};
///
/// #[derive(Clone)]
/// struct Mlp { w1: DMatrix<f64>, b1: DVector<f64>, w2: DMatrix<f64> }
///
/// impl Parameters for Mlp {
///     type Scalar = f64;
///     fn tensor_count(&self) -> usize { 3 }
///     fn tensor(&self, i: usize) -> Result<(Shape, &[f64])> {
///         match i { 0 => self.w1.tensor(0), 1 => self.b1.tensor(0), _ => self.w2.tensor(i - 2) }
///     }
/// }
/// impl ParametersMut for Mlp {
///     fn tensor_mut(&mut self, i: usize) -> Result<(Shape, &mut [f64])> {
///         match i { 0 => self.w1.tensor_mut(0), 1 => self.b1.tensor_mut(0), _ => self.w2.tensor_mut(i - 2) }
///     }
/// }
///
/// let mut net = Mlp { w1: DMatrix::zeros(4, 3), b1: DVector::zeros(4), w2: DMatrix::zeros(1, 4) };
/// let grad = Mlp { w1: DMatrix::from_element(4, 3, 1.0), b1: DVector::from_element(4, 2.0), w2: DMatrix::zeros(1, 4) };
/// let mut hb = HeavyBall::new(0.1, 0.9)?;
/// hb.step(&mut net, &grad)?;
/// assert_eq!(net.b1[0], -0.2);
/// // The same without implementing anything: a tuple of references.
/// hb.reset();
/// hb.step(&mut (&mut net.w1, &mut net.b1, &mut net.w2), &(&grad.w1, &grad.b1, &grad.w2))?;
/// assert_eq!(net.b1[0], -0.4);
/// # Ok::<(), ntk_momentum::Error>(())
/// ```
pub trait Parameters {
    /// The element type, `f32` or `f64`.
    type Scalar: Float;
    /// Number of tensors in the set (1 for a single container).
    fn tensor_count(&self) -> usize;
    /// Declared shape and entries (in storage order) of tensor `index`.
    ///
    /// # Errors
    /// [`Error::InvalidParameter`] if `index >= tensor_count()`;
    /// [`Error::Unsupported`] if the tensor is not stored contiguously.
    fn tensor(&self, index: usize) -> Result<(Shape, &[Self::Scalar])>;
}

/// A set of tensors the optimizers can update in place (see [`Parameters`]).
pub trait ParametersMut: Parameters {
    /// Declared shape and entries (in storage order) of tensor `index`,
    /// mutably.
    ///
    /// # Errors
    /// As [`Parameters::tensor`].
    fn tensor_mut(&mut self, index: usize) -> Result<(Shape, &mut [Self::Scalar])>;

    /// Every tensor at once, in index order, or `None` (the default) if the
    /// set can only lend one tensor at a time.
    ///
    /// Optional and only about speed: with it the built-in optimizers check
    /// and update a set of several tensors in one parallel pass over all of
    /// them; without it they visit the tensors one at a time through
    /// [`ParametersMut::tensor_mut`] (the same results, but one thread-pool
    /// dispatch per tensor, which dominates for many small tensors).
    /// Implemented by every set listed under [`Parameters`] whose members
    /// implement it or hold one tensor each. For a struct of your own, lend
    /// the fields' slices together:
    ///
    /// ```
    /// use ntk_momentum::optim::{Parameters, ParametersMut, Shape};
    /// use ntk_momentum::Result;
    /// struct Net { w: Vec<f32>, b: Vec<f32> }
    /// impl Parameters for Net {
    ///     type Scalar = f32;
    ///     fn tensor_count(&self) -> usize { 2 }
    ///     fn tensor(&self, i: usize) -> Result<(Shape, &[f32])> {
    ///         if i == 0 { self.w.tensor(0) } else { self.b.tensor(i - 1) }
    ///     }
    /// }
    /// impl ParametersMut for Net {
    ///     fn tensor_mut(&mut self, i: usize) -> Result<(Shape, &mut [f32])> {
    ///         if i == 0 { self.w.tensor_mut(0) } else { self.b.tensor_mut(i - 1) }
    ///     }
    ///     fn all_tensors_mut(&mut self) -> Result<Option<Vec<(Shape, &mut [f32])>>> {
    ///         let (w, b) = (&mut self.w, &mut self.b);
    ///         Ok(Some(vec![(Shape::vector(w.len()), w), (Shape::vector(b.len()), b)]))
    ///     }
    /// }
    /// ```
    ///
    /// The list must hold the very slices [`ParametersMut::tensor_mut`] would
    /// lend, in index order: the optimizers check its length, each tensor's
    /// shape and storage address against [`Parameters::tensor`] before they
    /// write anything.
    ///
    /// # Errors
    /// As [`Parameters::tensor`].
    #[allow(clippy::type_complexity)]
    fn all_tensors_mut(&mut self) -> Result<Option<Vec<(Shape, &mut [Self::Scalar])>>> {
        Ok(None)
    }
}

/// Appends every tensor of `set` to `out` (its single tensor, or its
/// [`ParametersMut::all_tensors_mut`]); `false` if `set` cannot lend them
/// together.
fn lend_all<'a, S: ParametersMut + ?Sized>(
    set: &'a mut S,
    out: &mut Vec<(Shape, &'a mut [S::Scalar])>,
) -> Result<bool> {
    if set.tensor_count() == 1 {
        out.push(set.tensor_mut(0)?);
        return Ok(true);
    }
    match set.all_tensors_mut()? {
        Some(all) => {
            out.extend(all);
            Ok(true)
        }
        None => Ok(false),
    }
}

pub(crate) fn index_error(index: usize, count: usize) -> Error {
    Error::invalid(
        "tensor index",
        index,
        format!("an index below the set's {count} tensors"),
    )
}

/// Implements `Parameters` and `ParametersMut` for one contiguous container.
macro_rules! single_tensor {
    ($ty:ty, $self:ident => $shape:expr, $slice:expr, $slice_mut:expr) => {
        impl<T: Float> Parameters for $ty {
            type Scalar = T;
            fn tensor_count(&self) -> usize {
                1
            }
            fn tensor(&$self, index: usize) -> Result<(Shape, &[T])> {
                if index != 0 {
                    return Err(index_error(index, 1));
                }
                Ok(($shape, $slice))
            }
        }
        impl<T: Float> ParametersMut for $ty {
            fn tensor_mut(&mut $self, index: usize) -> Result<(Shape, &mut [T])> {
                if index != 0 {
                    return Err(index_error(index, 1));
                }
                Ok(($shape, $slice_mut))
            }
        }
    };
}

single_tensor!(Vec<T>, self => Shape::vector(self.len()), self.as_slice(), self.as_mut_slice());
single_tensor!([T], self => Shape::vector(self.len()), self, self);
#[cfg(feature = "nalgebra")]
single_tensor!(DVector<T>, self => Shape::vector(self.nrows()), nalgebra::Matrix::as_slice(self),
    nalgebra::Matrix::as_mut_slice(self));
#[cfg(feature = "nalgebra")]
single_tensor!(DMatrix<T>, self => Shape::matrix(self.nrows(), self.ncols()), nalgebra::Matrix::as_slice(self),
    nalgebra::Matrix::as_mut_slice(self));

impl<S: Parameters + ?Sized> Parameters for &S {
    type Scalar = S::Scalar;
    fn tensor_count(&self) -> usize {
        (**self).tensor_count()
    }
    fn tensor(&self, index: usize) -> Result<(Shape, &[S::Scalar])> {
        (**self).tensor(index)
    }
}

impl<S: Parameters + ?Sized> Parameters for &mut S {
    type Scalar = S::Scalar;
    fn tensor_count(&self) -> usize {
        (**self).tensor_count()
    }
    fn tensor(&self, index: usize) -> Result<(Shape, &[S::Scalar])> {
        (**self).tensor(index)
    }
}

impl<S: ParametersMut + ?Sized> ParametersMut for &mut S {
    fn tensor_mut(&mut self, index: usize) -> Result<(Shape, &mut [S::Scalar])> {
        (**self).tensor_mut(index)
    }
    fn all_tensors_mut(&mut self) -> Result<Option<Vec<(Shape, &mut [S::Scalar])>>> {
        (**self).all_tensors_mut()
    }
}

/// Sets whose members are sets: the tensors of member 0, then member 1, ...
macro_rules! set_of_sets {
    ($ty:ty, [$($gen:tt)*], [$($gen_mut:tt)*], $member:ty, $self:ident => $members:expr, $members_mut:expr) => {
        impl<$($gen)*> Parameters for $ty {
            type Scalar = <$member as Parameters>::Scalar;
            fn tensor_count(&self) -> usize {
                self.iter().map(|s| s.tensor_count()).sum()
            }
            fn tensor(&$self, index: usize) -> Result<(Shape, &[Self::Scalar])> {
                let mut i = index;
                for s in $members {
                    let c = s.tensor_count();
                    if i < c {
                        return s.tensor(i);
                    }
                    i -= c;
                }
                Err(index_error(index, $self.tensor_count()))
            }
        }
        impl<$($gen_mut)*> ParametersMut for $ty {
            fn tensor_mut(&mut $self, index: usize) -> Result<(Shape, &mut [Self::Scalar])> {
                let count = $self.tensor_count();
                let mut i = index;
                for s in $members_mut {
                    let c = s.tensor_count();
                    if i < c {
                        return s.tensor_mut(i);
                    }
                    i -= c;
                }
                Err(index_error(index, count))
            }
            fn all_tensors_mut(&mut $self) -> Result<Option<Vec<(Shape, &mut [Self::Scalar])>>> {
                let mut out = Vec::with_capacity($self.tensor_count());
                for s in $members_mut {
                    if !lend_all(s, &mut out)? {
                        return Ok(None);
                    }
                }
                Ok(Some(out))
            }
        }
    };
}

set_of_sets!([S; N], [S: Parameters, const N: usize], [S: ParametersMut, const N: usize], S, self => self.iter(), self.iter_mut());
set_of_sets!(Vec<Vec<T>>, [T: Float], [T: Float], Vec<T>, self => self.iter(), self.iter_mut());
#[cfg(feature = "nalgebra")]
set_of_sets!(Vec<DVector<T>>, [T: Float], [T: Float], DVector<T>, self => self.iter(), self.iter_mut());
#[cfg(feature = "nalgebra")]
set_of_sets!(Vec<DMatrix<T>>, [T: Float], [T: Float], DMatrix<T>, self => self.iter(), self.iter_mut());

/// Tuples: the tensors of the first member, then the second, ...
macro_rules! tuple_set {
    ($($name:ident $idx:tt),+) => {
        impl<S0: Parameters $(, $name: Parameters<Scalar = S0::Scalar>)+> Parameters for (S0, $($name),+) {
            type Scalar = S0::Scalar;
            fn tensor_count(&self) -> usize {
                self.0.tensor_count() $(+ self.$idx.tensor_count())+
            }
            fn tensor(&self, index: usize) -> Result<(Shape, &[Self::Scalar])> {
                let mut i = index;
                let c = self.0.tensor_count();
                if i < c {
                    return self.0.tensor(i);
                }
                i -= c;
                $(
                    let c = self.$idx.tensor_count();
                    if i < c {
                        return self.$idx.tensor(i);
                    }
                    i -= c;
                )+
                let _ = i;
                Err(index_error(index, self.tensor_count()))
            }
        }
        impl<S0: ParametersMut $(, $name: ParametersMut<Scalar = S0::Scalar>)+> ParametersMut for (S0, $($name),+) {
            fn tensor_mut(&mut self, index: usize) -> Result<(Shape, &mut [Self::Scalar])> {
                let count = self.tensor_count();
                let mut i = index;
                let c = self.0.tensor_count();
                if i < c {
                    return self.0.tensor_mut(i);
                }
                i -= c;
                $(
                    let c = self.$idx.tensor_count();
                    if i < c {
                        return self.$idx.tensor_mut(i);
                    }
                    i -= c;
                )+
                let _ = i;
                Err(index_error(index, count))
            }
            fn all_tensors_mut(&mut self) -> Result<Option<Vec<(Shape, &mut [Self::Scalar])>>> {
                let mut out = Vec::with_capacity(self.tensor_count());
                let all = lend_all(&mut self.0, &mut out)? $(&& lend_all(&mut self.$idx, &mut out)?)+;
                Ok(all.then_some(out))
            }
        }
    };
}

tuple_set!(S1 1);
tuple_set!(S1 1, S2 2);
tuple_set!(S1 1, S2 2, S3 3);
tuple_set!(S1 1, S2 2, S3 3, S4 4);
tuple_set!(S1 1, S2 2, S3 3, S4 4, S5 5);
tuple_set!(S1 1, S2 2, S3 3, S4 4, S5 5, S6 6);
tuple_set!(S1 1, S2 2, S3 3, S4 4, S5 5, S6 6, S7 7);

#[cfg(feature = "ndarray")]
mod ndarray_impls {
    use ndarray::{ArrayBase, Data, DataMut, Dimension};

    use super::{index_error, Parameters, ParametersMut, Shape};
    use crate::{Error, Float, Result};

    fn not_contiguous(shape: &[usize], strides: &[isize]) -> Error {
        Error::Unsupported(format!(
            "an ndarray array of shape {shape:?} with strides {strides:?} is not contiguous in standard \
             (row-major) layout; pass `array.as_standard_layout()` or an owned copy"
        ))
    }

    /// ndarray arrays and views of any dimension in standard (row-major,
    /// contiguous) layout; others are refused with [`Error::Unsupported`].
    impl<T: Float, S: Data<Elem = T>, D: Dimension> Parameters for ArrayBase<S, D> {
        type Scalar = T;
        fn tensor_count(&self) -> usize {
            1
        }
        fn tensor(&self, index: usize) -> Result<(Shape, &[T])> {
            if index != 0 {
                return Err(index_error(index, 1));
            }
            let shape = Shape::new(self.shape())?;
            match self.as_slice() {
                Some(s) => Ok((shape, s)),
                None => Err(not_contiguous(self.shape(), self.strides())),
            }
        }
    }

    impl<T: Float, S: DataMut<Elem = T>, D: Dimension> ParametersMut for ArrayBase<S, D> {
        fn tensor_mut(&mut self, index: usize) -> Result<(Shape, &mut [T])> {
            if index != 0 {
                return Err(index_error(index, 1));
            }
            let shape = Shape::new(self.shape())?;
            if !self.is_standard_layout() {
                return Err(not_contiguous(self.shape(), self.strides()));
            }
            let slice = self
                .as_slice_mut()
                .ok_or_else(|| Error::Unsupported("ndarray array without a contiguous slice".into()))?;
            Ok((shape, slice))
        }
    }
}
