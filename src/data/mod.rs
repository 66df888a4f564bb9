//! Readers for CIFAR-10 and IDX (MNIST, Fashion-MNIST), preprocessing and binary tasks.
//!
//! The path from files to a training problem `(X, y)`:
//!
//! 1. Read: [`cifar10`] (official binary layout: a file, or a directory's
//!    train and test splits) or [`idx`] (raw or gzipped IDX pairs), or take
//!    the real subsets compiled into the library in [`embedded`]. Each gives
//!    an [`Images`]: 8-bit pixels plus labels `0..=9`.
//! 2. Choose a [`BinaryTask`] (defaults per [`Dataset`]: CIFAR-10 vehicles
//!    vs animals, MNIST even vs odd, Fashion-MNIST tops vs the rest) and a
//!    class-balanced, seeded subset ([`balanced_subset`]).
//! 3. [`preprocess`]: flatten, scale to [0, 1], optionally subtract the mean
//!    image, scale every row to unit norm — the `||x_i|| = 1` the NTK theory
//!    assumes.
//!
//! [`binary_dataset`] does 2 and 3 in one call.
//!
//! Readers never panic on any input and never size an allocation from an
//! unchecked header field; truncated, oversized or inconsistent files are
//! [`crate::Error::Format`] errors naming the path and byte offset.
//!
//! # Examples
//!
//! ```
//! use ntk_momentum::data::{binary_dataset, embedded, Centering, Dataset};
//!
//! let images = embedded::mnist();
//! let task = Dataset::Mnist.default_task(); // even (+1) vs odd (-1)
//! let (x, y) = binary_dataset::<f64>(&images, &task, 1000, 42, Centering::MeanImage)?;
//! assert_eq!(x.shape(), (1000, 784));
//! assert_eq!(y.sum(), 0.0); // 500 of each
//! # Ok::<(), ntk_momentum::Error>(())
//! ```
//!
//! Reading the official CIFAR-10 download:
//!
//! ```no_run
//! use ntk_momentum::data::cifar10;
//!
//! let train = cifar10::read_train("cifar-10-batches-bin")?; // 50,000 images
//! let test = cifar10::read_test("cifar-10-batches-bin")?; // 10,000 images
//! # Ok::<(), ntk_momentum::Error>(())
//! ```

pub mod cifar10;
#[cfg(feature = "download")]
#[cfg_attr(docsrs, doc(cfg(feature = "download")))]
pub mod download;
pub mod embedded;
mod files;
pub mod idx;
mod images;
mod preprocess;
mod synthetic;
mod task;

pub use images::{Images, NUM_CLASSES};
pub use preprocess::{center_columns, normalize_rows, preprocess, unit_interval, Centering};
pub use synthetic::unit_sphere;
pub use task::{balanced_subset, binary_dataset, targets, BinaryTask, Dataset};
