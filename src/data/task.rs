//! Binary tasks (+1 / -1 labels) and class-balanced, seeded subsets.

use std::fmt;
use std::str::FromStr;

use nalgebra::{DMatrix, DVector};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

use super::cifar10;
use super::idx;
use super::images::{Images, NUM_CLASSES};
use super::preprocess::{preprocess, Centering};
use crate::{Error, Float, Result};

/// The datasets the crate reads, with their class names and default tasks.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Dataset {
    /// CIFAR-10: 32 x 32 colour images, 10 classes.
    Cifar10,
    /// MNIST: 28 x 28 handwritten digits.
    Mnist,
    /// Fashion-MNIST: 28 x 28 clothing images (Zalando).
    FashionMnist,
}

impl Dataset {
    /// All datasets.
    pub const ALL: [Dataset; 3] = [Dataset::Cifar10, Dataset::Mnist, Dataset::FashionMnist];

    /// Display name: `"CIFAR-10"`, `"MNIST"` or `"Fashion-MNIST"`.
    pub fn name(self) -> &'static str {
        match self {
            Dataset::Cifar10 => "CIFAR-10",
            Dataset::Mnist => "MNIST",
            Dataset::FashionMnist => "Fashion-MNIST",
        }
    }

    /// Class names, indexed by label.
    pub fn class_names(self) -> &'static [&'static str; NUM_CLASSES] {
        match self {
            Dataset::Cifar10 => &cifar10::CLASS_NAMES,
            Dataset::Mnist => &idx::MNIST_CLASS_NAMES,
            Dataset::FashionMnist => &idx::FASHION_MNIST_CLASS_NAMES,
        }
    }

    /// The label of a class given by name (case, spaces, `-`, `_` and `/`
    /// ignored, so `"ankle-boot"` and `"t-shirt/top"` work) or by its label
    /// `0`..`9`.
    ///
    /// # Errors
    ///
    /// [`Error::Data`] naming the unknown class and listing the valid ones.
    pub fn class_index(self, class: &str) -> Result<u8> {
        let key = normalize_name(class);
        if let Ok(label) = key.parse::<u8>() {
            if usize::from(label) < NUM_CLASSES {
                return Ok(label);
            }
        }
        if let Some(i) = self.class_names().iter().position(|c| normalize_name(c) == key) {
            return Ok(i as u8);
        }
        Err(Error::Data(format!(
            "unknown {} class {class:?}: expected one of {} (or a label 0..9)",
            self.name(),
            self.class_names().join(", ")
        )))
    }

    /// The default binary task of this dataset:
    /// [`BinaryTask::cifar10_vehicles_vs_animals`],
    /// [`BinaryTask::mnist_even_vs_odd`] or
    /// [`BinaryTask::fashion_mnist_tops_vs_rest`].
    pub fn default_task(self) -> BinaryTask {
        match self {
            Dataset::Cifar10 => BinaryTask::cifar10_vehicles_vs_animals(),
            Dataset::Mnist => BinaryTask::mnist_even_vs_odd(),
            Dataset::FashionMnist => BinaryTask::fashion_mnist_tops_vs_rest(),
        }
    }
}

impl fmt::Display for Dataset {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

impl FromStr for Dataset {
    type Err = Error;
    /// Accepts `cifar10`, `cifar-10`, `mnist`, `fashion-mnist`,
    /// `fashion_mnist`, `fashionmnist` or `fashion` (any case).
    fn from_str(s: &str) -> Result<Self> {
        match normalize_name(s).as_str() {
            "cifar10" => Ok(Dataset::Cifar10),
            "mnist" => Ok(Dataset::Mnist),
            "fashionmnist" | "fashion" => Ok(Dataset::FashionMnist),
            _ => Err(Error::Data(format!(
                "unknown dataset {s:?}: expected cifar10, mnist or fashion-mnist"
            ))),
        }
    }
}

/// The non-empty, trimmed items of a comma-separated list.
fn list(s: &str) -> Vec<&str> {
    s.split(',').map(str::trim).filter(|c| !c.is_empty()).collect()
}

fn normalize_name(s: &str) -> String {
    s.chars()
        .filter(|c| c.is_alphanumeric())
        .flat_map(char::to_lowercase)
        .collect()
}

/// A binary classification task: samples of the positive classes get the
/// target `+1`, samples of the negative classes `-1`, samples of any other
/// class are left out.
///
/// # Examples
///
/// ```
/// use ntk_momentum::data::{BinaryTask, Dataset};
///
/// let task = BinaryTask::cifar10_vehicles_vs_animals();
/// assert_eq!(task.positive(), &[0, 1, 8, 9]);
/// assert_eq!(task.target(8), Some(1.0)); // ship
/// assert_eq!(task.target(3), Some(-1.0)); // cat
///
/// let cat_dog = BinaryTask::parse(Dataset::Cifar10, "cat:dog")?;
/// assert_eq!((cat_dog.positive(), cat_dog.negative()), (&[3u8][..], &[5u8][..]));
/// assert_eq!(cat_dog.target(0), None); // airplanes are left out
/// # Ok::<(), ntk_momentum::Error>(())
/// ```
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct BinaryTask {
    name: String,
    positive: Vec<u8>,
    negative: Vec<u8>,
}

impl BinaryTask {
    /// A task from the labels of its positive and negative classes.
    ///
    /// # Errors
    ///
    /// [`Error::Data`] if a side is empty, a label is above 9, or a class is
    /// on both sides.
    pub fn new(name: impl Into<String>, positive: &[u8], negative: &[u8]) -> Result<Self> {
        let side = |labels: &[u8], which: &str| -> Result<Vec<u8>> {
            if labels.is_empty() {
                return Err(Error::Data(format!("the {which} side of a binary task has no class")));
            }
            if let Some(&l) = labels.iter().find(|&&l| usize::from(l) >= NUM_CLASSES) {
                return Err(Error::Data(format!("class label {l} is out of range: expected 0..=9")));
            }
            let mut v = labels.to_vec();
            v.sort_unstable();
            v.dedup();
            Ok(v)
        };
        let positive = side(positive, "positive")?;
        let negative = side(negative, "negative")?;
        if let Some(l) = positive.iter().find(|l| negative.contains(l)) {
            return Err(Error::Data(format!("class {l} is on both sides of the binary task")));
        }
        Ok(Self {
            name: name.into(),
            positive,
            negative,
        })
    }

    /// A task from class names (or labels) of `dataset`, as accepted by
    /// [`Dataset::class_index`].
    ///
    /// # Errors
    ///
    /// [`Error::Data`] for an unknown class, and as [`BinaryTask::new`].
    pub fn from_class_names(dataset: Dataset, positive: &[&str], negative: &[&str]) -> Result<Self> {
        let labels = |names: &[&str]| -> Result<Vec<u8>> { names.iter().map(|n| dataset.class_index(n)).collect() };
        let (p, n) = (labels(positive)?, labels(negative)?);
        let name = format!("{} vs {}", positive.join("+"), negative.join("+"));
        Self::new(name, &p, &n)
    }

    /// Parses `"POS:NEG"`, each side a comma-separated list of class names
    /// or labels of `dataset`; `NEG` may be `rest` (every class not in
    /// `POS`). The whole string may also be `default`
    /// ([`Dataset::default_task`]).
    ///
    /// # Errors
    ///
    /// [`Error::Data`] for a missing `:`, an unknown class, or as
    /// [`BinaryTask::new`].
    pub fn parse(dataset: Dataset, spec: &str) -> Result<Self> {
        if normalize_name(spec) == "default" {
            return Ok(dataset.default_task());
        }
        let (pos, neg) = spec.split_once(':').ok_or_else(|| {
            Error::Data(format!(
                "binary task {spec:?} has no ':': expected POSITIVE:NEGATIVE, e.g. \"cat,dog:rest\" or \"default\""
            ))
        })?;
        let positive = list(pos);
        if normalize_name(neg) == "rest" {
            let p: Vec<u8> = positive.iter().map(|n| dataset.class_index(n)).collect::<Result<_>>()?;
            let rest: Vec<u8> = (0..NUM_CLASSES as u8).filter(|l| !p.contains(l)).collect();
            return Self::new(format!("{} vs rest", positive.join("+")), &p, &rest);
        }
        Self::from_class_names(dataset, &positive, &list(neg))
    }

    /// CIFAR-10 vehicles (airplane 0, automobile 1, ship 8, truck 9) = +1
    /// versus animals (bird, cat, deer, dog, frog, horse) = -1.
    pub fn cifar10_vehicles_vs_animals() -> Self {
        Self::fixed("vehicles vs animals", &[0, 1, 8, 9], &[2, 3, 4, 5, 6, 7])
    }

    /// MNIST even digits (0, 2, 4, 6, 8) = +1 versus odd digits = -1.
    pub fn mnist_even_vs_odd() -> Self {
        Self::fixed("even vs odd", &[0, 2, 4, 6, 8], &[1, 3, 5, 7, 9])
    }

    /// Fashion-MNIST upper-body garments (T-shirt/top 0, pullover 2, coat 4,
    /// shirt 6) = +1 versus the rest (trouser, dress, sandal, sneaker, bag,
    /// ankle boot) = -1.
    pub fn fashion_mnist_tops_vs_rest() -> Self {
        Self::fixed("tops vs rest", &[0, 2, 4, 6], &[1, 3, 5, 7, 8, 9])
    }

    fn fixed(name: &str, positive: &[u8], negative: &[u8]) -> Self {
        Self {
            name: name.to_string(),
            positive: positive.to_vec(),
            negative: negative.to_vec(),
        }
    }

    /// Short description, e.g. `"vehicles vs animals"`.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// Labels of the positive (+1) classes, ascending.
    pub fn positive(&self) -> &[u8] {
        &self.positive
    }

    /// Labels of the negative (-1) classes, ascending.
    pub fn negative(&self) -> &[u8] {
        &self.negative
    }

    /// The target of a class: `Some(1.0)`, `Some(-1.0)`, or `None` if the
    /// class is in neither side.
    pub fn target(&self, class: u8) -> Option<f64> {
        if self.positive.contains(&class) {
            Some(1.0)
        } else if self.negative.contains(&class) {
            Some(-1.0)
        } else {
            None
        }
    }

    /// Indices of the samples of `images` on the (positive, negative) side,
    /// ascending.
    pub fn split(&self, images: &Images) -> (Vec<usize>, Vec<usize>) {
        let (mut pos, mut neg) = (Vec::new(), Vec::new());
        for (i, &l) in images.labels().iter().enumerate() {
            match self.target(l) {
                Some(t) if t > 0.0 => pos.push(i),
                Some(_) => neg.push(i),
                None => {}
            }
        }
        (pos, neg)
    }

    /// The largest `n` that [`balanced_subset`] accepts for `images`.
    pub fn max_balanced(&self, images: &Images) -> usize {
        let (pos, neg) = self.split(images);
        let (p, q) = (pos.len(), neg.len());
        if p > q {
            2 * q + 1
        } else {
            2 * p
        }
    }
}

impl fmt::Display for BinaryTask {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let list = |v: &[u8]| v.iter().map(|l| l.to_string()).collect::<Vec<_>>().join(",");
        write!(
            f,
            "{} (+1: classes {}; -1: classes {})",
            self.name,
            list(&self.positive),
            list(&self.negative)
        )
    }
}

/// A class-balanced random subset of size `n`: `ceil(n / 2)` samples drawn
/// without replacement from the positive classes and `floor(n / 2)` from
/// the negative ones. Returns their indices in `images`, ascending (so the
/// subset keeps the file's order).
///
/// Reproducible: the result depends only on the labels, the task, `n` and
/// `seed`. The draw is a partial Fisher–Yates shuffle of the positive
/// indices and then of the negative ones, driven by `ChaCha8Rng::seed_from_u64(seed)`
/// through its raw `u64` stream with an unbiased multiply-and-reject bound,
/// so it does not change with the `rand` crate's sampling code.
///
/// # Errors
///
/// [`Error::InvalidParameter`] if `n == 0`; [`Error::Data`] if `n` is more
/// than the data can give (the message says how many samples each side has
/// and the largest possible `n`).
///
/// # Examples
///
/// ```
/// use ntk_momentum::data::{balanced_subset, embedded, BinaryTask};
///
/// let images = embedded::mnist();
/// let task = BinaryTask::mnist_even_vs_odd();
/// let a = balanced_subset(&images, &task, 100, 7)?;
/// assert_eq!(a, balanced_subset(&images, &task, 100, 7)?); // same seed, same subset
/// let even = a.iter().filter(|&&i| images.labels()[i] % 2 == 0).count();
/// assert_eq!(even, 50);
/// # Ok::<(), ntk_momentum::Error>(())
/// ```
pub fn balanced_subset(images: &Images, task: &BinaryTask, n: usize, seed: u64) -> Result<Vec<usize>> {
    if n == 0 {
        return Err(Error::invalid("n", 0, "at least 1 sample"));
    }
    let (mut pos, mut neg) = task.split(images);
    let (n_pos, n_neg) = (n - n / 2, n / 2);
    if n_pos > pos.len() || n_neg > neg.len() {
        return Err(Error::Data(format!(
            "n = {n} is more than the data can give for the balanced task {}: it needs {n_pos} samples of +1 \
             and {n_neg} of -1, the data has {} and {} (of {} samples); the largest n is {}",
            task.name,
            pos.len(),
            neg.len(),
            images.len(),
            task.max_balanced(images)
        )));
    }
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    partial_shuffle(&mut pos, n_pos, &mut rng);
    partial_shuffle(&mut neg, n_neg, &mut rng);
    let mut chosen: Vec<usize> = pos[..n_pos].iter().chain(&neg[..n_neg]).copied().collect();
    chosen.sort_unstable();
    Ok(chosen)
}

/// Moves a uniformly random `k`-subset, in random order, to the front.
fn partial_shuffle(v: &mut [usize], k: usize, rng: &mut ChaCha8Rng) {
    let len = v.len();
    for i in 0..k.min(len) {
        let j = i + below(rng, (len - i) as u64) as usize;
        v.swap(i, j);
    }
}

/// Uniform integer in `0..bound` (`bound >= 1`), Lemire's multiply-and-reject.
fn below(rng: &mut ChaCha8Rng, bound: u64) -> u64 {
    let threshold = bound.wrapping_neg() % bound;
    loop {
        let m = u128::from(rng.next_u64()) * u128::from(bound);
        if (m as u64) >= threshold {
            return (m >> 64) as u64;
        }
    }
}

/// The targets (+1 / -1) of the samples at `indices` under `task`.
///
/// # Errors
///
/// [`Error::Data`] if an index is out of range or its class is in neither
/// side of the task.
pub fn targets<T: Float>(images: &Images, task: &BinaryTask, indices: &[usize]) -> Result<DVector<T>> {
    let mut y = Vec::with_capacity(indices.len());
    for &i in indices {
        let label = images.label(i).ok_or_else(|| {
            Error::Data(format!(
                "sample index {i} is out of range: the data has {} samples",
                images.len()
            ))
        })?;
        let t = task.target(label).ok_or_else(|| {
            Error::Data(format!(
                "sample {i} has class {label}, which is in neither side of the task {}",
                task.name
            ))
        })?;
        y.push(T::cast(t));
    }
    Ok(DVector::from_vec(y))
}

/// From images to a training problem in one call: a class-balanced subset
/// of size `n` drawn with `seed` ([`balanced_subset`]), preprocessed
/// ([`preprocess`]: scaled to [0, 1], centred as `centering` says, unit-norm rows)
/// into `x` (`n x d`, one sample per row), with targets `y` in {+1, -1}.
///
/// # Errors
///
/// As [`balanced_subset`] and [`preprocess`].
///
/// # Examples
///
/// ```
/// use ntk_momentum::data::{binary_dataset, embedded, BinaryTask, Centering};
///
/// let images = embedded::cifar10_test();
/// let task = BinaryTask::cifar10_vehicles_vs_animals();
/// let (x, y) = binary_dataset::<f32>(&images, &task, 20, 0, Centering::Off)?;
/// assert_eq!(x.shape(), (20, 3072));
/// assert_eq!(y.iter().filter(|&&t| t == 1.0).count(), 10);
///
/// // Asking for more than the data holds is an error, not a smaller set.
/// let err = binary_dataset::<f32>(&images, &task, 21, 0, Centering::Off).unwrap_err();
/// assert!(err.to_string().contains("n = 21"));
/// # Ok::<(), ntk_momentum::Error>(())
/// ```
pub fn binary_dataset<T: Float>(
    images: &Images,
    task: &BinaryTask,
    n: usize,
    seed: u64,
    centering: Centering,
) -> Result<(DMatrix<T>, DVector<T>)> {
    let indices = balanced_subset(images, task, n, seed)?;
    let x = preprocess(images, &indices, centering)?;
    let y = targets(images, task, &indices)?;
    Ok((x, y))
}
