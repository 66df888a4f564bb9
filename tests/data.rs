//! Tests of the `data` module: readers (round trips, bad input), embedded
//! subsets, preprocessing, binary tasks and balanced subsets.
#![cfg(feature = "full")]

use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};

use ntk_momentum::data::{
    balanced_subset, binary_dataset, center_columns, cifar10, embedded, idx, normalize_rows, preprocess, targets,
    unit_interval, BinaryTask, Centering, Dataset, Images,
};
use ntk_momentum::Error;
use proptest::prelude::*;
use sha2::{Digest, Sha256};

// ------------------------------------------------------------------ helpers

/// A temporary directory under `std::env::temp_dir()`, removed on drop.
struct TempDir(PathBuf);

impl TempDir {
    fn new(tag: &str) -> Self {
        static COUNTER: AtomicUsize = AtomicUsize::new(0);
        let path = std::env::temp_dir().join(format!(
            "ntk-momentum-data-test-{}-{tag}-{}",
            std::process::id(),
            COUNTER.fetch_add(1, Ordering::Relaxed)
        ));
        let _ = std::fs::remove_dir_all(&path);
        std::fs::create_dir_all(&path).unwrap();
        TempDir(path)
    }
    fn path(&self) -> &Path {
        &self.0
    }
    fn write(&self, name: &str, bytes: &[u8]) -> PathBuf {
        let path = self.0.join(name);
        std::fs::write(&path, bytes).unwrap();
        path
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// Deterministic pseudo-random bytes (xorshift), no dependency on the crate.
fn bytes(seed: u64, n: usize) -> Vec<u8> {
    let mut s = seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
    (0..n)
        .map(|_| {
            s ^= s << 13;
            s ^= s >> 7;
            s ^= s << 17;
            (s >> 24) as u8
        })
        .collect()
}

/// `count` CIFAR-10 records written by hand in the official layout:
/// label byte, then the R, G, B planes. Returns (file bytes, labels, pixels).
fn cifar_file(count: usize, seed: u64) -> (Vec<u8>, Vec<u8>, Vec<u8>) {
    let labels: Vec<u8> = (0..count).map(|i| ((i as u64 * 7 + seed) % 10) as u8).collect();
    let pixels = bytes(seed, count * 3072);
    let mut file = Vec::new();
    for i in 0..count {
        file.push(labels[i]);
        for plane in 0..3 {
            file.extend_from_slice(&pixels[i * 3072 + plane * 1024..i * 3072 + (plane + 1) * 1024]);
        }
    }
    (file, labels, pixels)
}

/// An IDX images file and labels file, written by hand (big-endian header).
fn idx_files(count: usize, rows: usize, cols: usize, seed: u64) -> (Vec<u8>, Vec<u8>, Vec<u8>, Vec<u8>) {
    let pixels = bytes(seed, count * rows * cols);
    let labels: Vec<u8> = (0..count).map(|i| ((i as u64 * 3 + seed) % 10) as u8).collect();
    let mut img = vec![0, 0, 8, 3];
    for d in [count, rows, cols] {
        img.extend_from_slice(&(d as u32).to_be_bytes());
    }
    img.extend_from_slice(&pixels);
    let mut lbl = vec![0, 0, 8, 1];
    lbl.extend_from_slice(&(count as u32).to_be_bytes());
    lbl.extend_from_slice(&labels);
    (img, lbl, pixels, labels)
}

fn gzip(data: &[u8]) -> Vec<u8> {
    let mut enc = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
    enc.write_all(data).unwrap();
    enc.finish().unwrap()
}

fn message(r: Result<impl std::fmt::Debug, Error>) -> String {
    r.expect_err("expected an error").to_string()
}

fn assert_contains(msg: &str, parts: &[&str]) {
    for p in parts {
        assert!(msg.contains(p), "message {msg:?} lacks {p:?}");
    }
}

fn hex(digest: &[u8]) -> String {
    digest.iter().map(|b| format!("{b:02x}")).collect()
}

// ------------------------------------------------------------------ CIFAR-10 round trips

#[test]
fn cifar10_single_file_round_trip() {
    let (file, labels, pixels) = cifar_file(5, 1);
    let dir = TempDir::new("cifar-file");
    let path = dir.write("some_batch.bin", &file);
    let images = cifar10::read_file(&path).unwrap();
    assert_eq!(
        (images.len(), images.rows(), images.cols(), images.channels()),
        (5, 32, 32, 3)
    );
    assert_eq!(images.labels(), &labels[..]);
    assert_eq!(images.pixels(), &pixels[..]);
    assert_eq!(images.image(2).unwrap(), &pixels[2 * 3072..3 * 3072]);
    // The encoder writes exactly the official layout.
    assert_eq!(cifar10::to_bytes(&images).unwrap(), file);
    assert_eq!(cifar10::from_bytes(&file, "mem").unwrap(), images);
}

#[test]
fn cifar10_directory_train_and_test_splits() {
    let dir = TempDir::new("cifar-dir");
    let (b1, l1, _) = cifar_file(3, 11);
    let (b3, l3, _) = cifar_file(2, 13);
    let (t, lt, _) = cifar_file(4, 17);
    dir.write("data_batch_1.bin", &b1);
    dir.write("data_batch_3.bin", &b3); // 2, 4, 5 missing: whichever exist, in order
    dir.write("test_batch.bin", &t);
    let train = cifar10::read_train(dir.path()).unwrap();
    assert_eq!(train.len(), 5);
    assert_eq!(train.labels(), &[l1.clone(), l3].concat()[..]);
    let mut both = b1.clone();
    both.extend_from_slice(&b3);
    assert_eq!(cifar10::to_bytes(&train).unwrap(), both);
    let test = cifar10::read_test(dir.path()).unwrap();
    assert_eq!(test.labels(), &lt[..]);

    // The directory that contains the unpacked archive works too.
    let outer = TempDir::new("cifar-outer");
    let nested = outer.path().join(cifar10::ARCHIVE_DIR);
    std::fs::create_dir(&nested).unwrap();
    std::fs::write(nested.join("data_batch_2.bin"), &b1).unwrap();
    std::fs::write(nested.join("test_batch.bin"), &t).unwrap();
    assert_eq!(cifar10::read_train(outer.path()).unwrap().labels(), &l1[..]);
    assert_eq!(cifar10::read_test(outer.path()).unwrap().labels(), &lt[..]);
}

// ------------------------------------------------------------------ IDX round trips

#[test]
fn idx_round_trip_raw_and_gzip() {
    let (img, lbl, pixels, labels) = idx_files(7, 28, 28, 3);
    for compress in [false, true] {
        let dir = TempDir::new("idx");
        let (i_bytes, l_bytes, suffix) = if compress {
            (gzip(&img), gzip(&lbl), ".gz")
        } else {
            (img.clone(), lbl.clone(), "")
        };
        dir.write(&format!("train-images-idx3-ubyte{suffix}"), &i_bytes);
        dir.write(&format!("train-labels-idx1-ubyte{suffix}"), &l_bytes);
        dir.write(&format!("t10k-images-idx3-ubyte{suffix}"), &i_bytes);
        dir.write(&format!("t10k-labels-idx1-ubyte{suffix}"), &l_bytes);
        for images in [
            idx::read_train(dir.path()).unwrap(),
            idx::read_test(dir.path()).unwrap(),
        ] {
            assert_eq!(
                (images.len(), images.rows(), images.cols(), images.channels()),
                (7, 28, 28, 1)
            );
            assert_eq!(images.pixels(), &pixels[..]);
            assert_eq!(images.labels(), &labels[..]);
            assert_eq!(idx::to_bytes(&images).unwrap(), (img.clone(), lbl.clone()));
        }
        let single = idx::read_images(dir.path().join(format!("train-images-idx3-ubyte{suffix}"))).unwrap();
        assert_eq!((single.count, single.rows, single.cols), (7, 28, 28));
        assert_eq!(
            idx::read_labels(dir.path().join(format!("t10k-labels-idx1-ubyte{suffix}"))).unwrap(),
            labels
        );
    }
}

#[test]
fn idx_gzip_is_detected_by_magic_not_name() {
    let (img, lbl, pixels, labels) = idx_files(3, 4, 5, 9);
    let dir = TempDir::new("idx-magic");
    let a = dir.write("images.raw", &gzip(&img)); // gzip without .gz
    let b = dir.write("labels.gz", &lbl); // raw with .gz
    let images = idx::read(&a, &b).unwrap();
    assert_eq!(images.pixels(), &pixels[..]);
    assert_eq!(images.labels(), &labels[..]);
    // Kaggle-style names are found too.
    dir.write("train-images.idx3-ubyte", &img);
    dir.write("train-labels.idx1-ubyte", &lbl);
    assert_eq!(idx::read_train(dir.path()).unwrap().len(), 3);
}

#[test]
fn idx_concatenated_gzip_members_read_as_one_stream() {
    let (img, lbl, pixels, _) = idx_files(4, 2, 3, 5);
    let mut two = gzip(&img[..10]);
    two.extend(gzip(&img[10..]));
    let set = idx::from_bytes(&two, "two-members.gz", &lbl, "l").unwrap();
    assert_eq!(set.pixels(), &pixels[..]);
}

// ------------------------------------------------------------------ embedded data

const EMBEDDED_SHA256: [(&str, &str); 5] = [
    (
        "cifar10-test-0-19.bin",
        "7a75c7f3d741a45b5f79cc341c8607a874c6f441de815b9d426ace5249b5c733",
    ),
    (
        "fashion-mnist-t10k-2000-images-idx3-ubyte.gz",
        "34b6848fb35a59e5287bf485522433dfd8bd017eb126fde6f02e96123c8ff741",
    ),
    (
        "fashion-mnist-t10k-2000-labels-idx1-ubyte.gz",
        "6a1ad38ad7d33240e59f70a44ddce4e9483e573ffad983d287064bd467dcbd4e",
    ),
    (
        "mnist-2000-images-idx3-ubyte.gz",
        "af69d26f3e8ec8cc791ab8d8c484aba80e4b7c13a42908b3ae117d5bbcb10ac3",
    ),
    (
        "mnist-2000-labels-idx1-ubyte.gz",
        "54cc9684c6fdb8913743444879b91c176f98ee10d976a4e557d5bbcb93cf60d1",
    ),
];

#[test]
fn embedded_checksums_match_sha256sums_and_files() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let sums = std::fs::read_to_string(root.join("data/SHA256SUMS")).unwrap();
    let listed: Vec<(String, String)> = sums
        .lines()
        .map(|l| {
            let (h, n) = l.split_once("  ").unwrap();
            (n.to_string(), h.to_string())
        })
        .collect();
    let files = embedded::files();
    assert_eq!(listed.len(), files.len());
    let mut total = 0;
    for (((name, data), (listed_name, listed_hash)), (const_name, const_hash)) in
        files.iter().zip(&listed).zip(EMBEDDED_SHA256)
    {
        let digest = hex(&Sha256::digest(data));
        assert_eq!((*name, digest.as_str()), (listed_name.as_str(), listed_hash.as_str()));
        assert_eq!((*name, digest.as_str()), (const_name, const_hash));
        assert_eq!(&std::fs::read(root.join("data").join(name)).unwrap()[..], *data);
        total += data.len();
    }
    assert!(total <= 2_000_000, "embedded data is {total} bytes");
}

#[test]
fn embedded_cifar10_has_documented_records() {
    let cifar = embedded::cifar10_test();
    assert_eq!(
        (cifar.len(), cifar.rows(), cifar.cols(), cifar.channels()),
        (20, 32, 32, 3)
    );
    assert_eq!(
        cifar.labels(),
        &[3, 8, 8, 0, 6, 6, 1, 6, 3, 1, 0, 9, 5, 7, 9, 8, 5, 7, 8, 6]
    );
    let task = BinaryTask::cifar10_vehicles_vs_animals();
    let (pos, neg) = task.split(&cifar);
    assert_eq!((pos.len(), neg.len()), (10, 10));
    assert_eq!(embedded::load(Dataset::Cifar10), cifar);
}

#[test]
fn embedded_mnist_and_fashion_have_documented_counts() {
    let mnist = embedded::mnist();
    assert_eq!(
        (mnist.len(), mnist.rows(), mnist.cols(), mnist.channels()),
        (2000, 28, 28, 1)
    );
    assert_eq!(mnist.class_counts(), [200; 10]);
    assert!(mnist
        .labels()
        .iter()
        .enumerate()
        .all(|(k, &l)| usize::from(l) == k % 10));
    let fashion = embedded::fashion_mnist();
    assert_eq!((fashion.len(), fashion.rows(), fashion.cols()), (2000, 28, 28));
    assert_eq!(
        fashion.class_counts(),
        [200, 203, 214, 190, 219, 195, 197, 200, 194, 188]
    );
    // Enough for the class-balanced n = 1000 of the examples.
    assert!(Dataset::Mnist.default_task().max_balanced(&mnist) >= 1000);
    assert!(Dataset::FashionMnist.default_task().max_balanced(&fashion) >= 1000);
    assert_eq!(Dataset::FashionMnist.default_task().max_balanced(&fashion), 1660);
    assert_eq!(embedded::load(Dataset::Mnist), mnist);
    assert_eq!(embedded::load(Dataset::FashionMnist), fashion);
}

#[test]
fn shared_cifar10_copy_starts_with_the_embedded_records() {
    // The validation copy outside the repository, when present (read only).
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("../shared/data/cifar-10-batches-bin/test_batch.bin");
    if !path.exists() {
        eprintln!("skipped: {} not present", path.display());
        return;
    }
    let shared = cifar10::read_file(&path).unwrap();
    assert_eq!(shared.head(20), embedded::cifar10_test());
}

// ------------------------------------------------------------------ bad input: files

#[test]
fn missing_directory_and_files_are_named() {
    let missing = std::env::temp_dir().join("ntk-momentum-no-such-dir-8f3a");
    let msg = message(cifar10::read_train(&missing));
    assert_contains(&msg, &["ntk-momentum-no-such-dir-8f3a", "I/O error"]);
    assert_contains(
        &message(cifar10::read_test(&missing)),
        &["ntk-momentum-no-such-dir-8f3a"],
    );
    assert_contains(&message(idx::read_train(&missing)), &["ntk-momentum-no-such-dir-8f3a"]);

    let dir = TempDir::new("empty");
    assert_contains(
        &message(cifar10::read_train(dir.path())),
        &["data_batch_1.bin", "no CIFAR-10 training batch"],
    );
    assert_contains(&message(cifar10::read_test(dir.path())), &["test_batch.bin"]);
    assert_contains(&message(idx::read_test(dir.path())), &["t10k-images-idx3-ubyte"]);
    assert_contains(&message(cifar10::read_file(dir.path().join("nope.bin"))), &["nope.bin"]);
    // A directory where a file is expected, a file where a directory is.
    assert_contains(&message(cifar10::read_file(dir.path())), &["is a directory"]);
    let f = dir.write("plain", b"x");
    assert_contains(&message(cifar10::read_train(&f)), &["plain", "not a directory"]);
    // Images present, labels missing.
    let (img, _, _, _) = idx_files(2, 2, 2, 1);
    dir.write("train-images-idx3-ubyte", &img);
    assert_contains(&message(idx::read_train(dir.path())), &["train-labels-idx1-ubyte"]);
}

#[test]
fn cifar10_truncated_oversized_and_bad_label_are_located() {
    let (file, _, _) = cifar_file(3, 2);
    let msg = message(cifar10::from_bytes(&file[..2 * 3073 + 100], "batch.bin"));
    assert_contains(&msg, &["batch.bin", "byte offset 6146", "record 2", "100 of 3073"]);
    let mut longer = file.clone();
    longer.extend_from_slice(&[1, 2, 3]);
    let msg = message(cifar10::from_bytes(&longer, "long.bin"));
    assert_contains(&msg, &["long.bin", "byte offset 9219", "3 of 3073"]);
    assert_contains(
        &message(cifar10::from_bytes(&[], "empty.bin")),
        &["empty.bin", "byte offset 0", "empty file"],
    );
    let mut bad = file.clone();
    bad[3073] = 10;
    let msg = message(cifar10::from_bytes(&bad, "labels.bin"));
    assert_contains(
        &msg,
        &["labels.bin", "byte offset 3073", "label 10", "record 1", "0..=9"],
    );
    // Through a real file the path is named.
    let dir = TempDir::new("cifar-bad");
    let p = dir.write("test_batch.bin", &bad);
    assert_contains(
        &message(cifar10::read_test(dir.path())),
        &[&p.display().to_string(), "label 10"],
    );
}

#[test]
fn wrong_layouts_are_rejected() {
    let (img, lbl, _, _) = idx_files(3, 28, 28, 4);
    // An IDX file given to the CIFAR-10 reader: not a whole number of records.
    assert_contains(
        &message(cifar10::from_bytes(&img, "mnist-as-cifar")),
        &["mnist-as-cifar", "not a multiple of 3073"],
    );
    // A CIFAR-10 file given to the IDX reader: bad magic.
    let (cifar, _, _) = cifar_file(1, 1);
    assert_contains(
        &message(idx::images_from_bytes(&cifar, "cifar-as-idx")),
        &[
            "cifar-as-idx",
            "byte offset 0",
            "bad IDX magic 0x",
            "expected 0x00000803",
        ],
    );
    // Images and labels swapped.
    assert_contains(
        &message(idx::from_bytes(&lbl, "labels-file", &img, "images-file")),
        &["labels-file", "bad IDX magic 0x00000801", "this is a labels file"],
    );
    assert_contains(
        &message(idx::labels_from_bytes(&img, "imgs")),
        &[
            "bad IDX magic 0x00000803",
            "expected 0x00000801",
            "this is an images file",
        ],
    );
    // A 4-dimensional magic.
    let mut four = img.clone();
    four[3] = 4;
    assert_contains(
        &message(idx::images_from_bytes(&four, "four")),
        &["bad IDX magic 0x00000804"],
    );
}

#[test]
fn idx_header_counts_that_disagree_with_the_length() {
    let (img, lbl, _, _) = idx_files(3, 28, 28, 4);
    // Header says 4 images, data holds 3.
    let mut more = img.clone();
    more[4..8].copy_from_slice(&4u32.to_be_bytes());
    let msg = message(idx::images_from_bytes(&more, "claims-4"));
    assert_contains(
        &msg,
        &[
            "claims-4",
            "byte offset 2368",
            "truncated",
            "4 images of 28 x 28",
            "sample 3 is incomplete",
        ],
    );
    // Header says 2 images, data holds 3: oversized.
    let mut fewer = img.clone();
    fewer[4..8].copy_from_slice(&2u32.to_be_bytes());
    let msg = message(idx::images_from_bytes(&fewer, "claims-2"));
    assert_contains(&msg, &["claims-2", "byte offset 1584", "oversized", "784 extra bytes"]);
    // Labels: one byte too many / too few.
    let mut extra = lbl.clone();
    extra.push(0);
    assert_contains(
        &message(idx::labels_from_bytes(&extra, "lbl")),
        &["lbl", "byte offset 11", "oversized", "1 extra bytes"],
    );
    assert_contains(
        &message(idx::labels_from_bytes(&lbl[..10], "lbl")),
        &["byte offset 10", "truncated"],
    );
    // A truncated header.
    assert_contains(
        &message(idx::images_from_bytes(&img[..10], "short")),
        &["short", "byte offset 10", "truncated IDX header"],
    );
    assert_contains(&message(idx::images_from_bytes(&img[..2], "tiny")), &["byte offset 2"]);
    // Zero rows.
    let mut zero = img.clone();
    zero[8..12].copy_from_slice(&0u32.to_be_bytes());
    assert_contains(
        &message(idx::images_from_bytes(&zero, "z")),
        &["byte offset 8", "rows is 0"],
    );
    // A header implying terabytes is refused before any allocation.
    let mut huge = vec![0, 0, 8, 3];
    for d in [u32::MAX, 60_000, 60_000] {
        huge.extend_from_slice(&d.to_be_bytes());
    }
    for data in [huge.clone(), gzip(&huge)] {
        assert_contains(
            &message(idx::images_from_bytes(&data, "huge")),
            &["huge", "byte offset 4", "4294967295 x 60000 x 60000", "imply more than"],
        );
    }
}

#[test]
fn idx_labels_out_of_range_and_count_mismatch() {
    let (img, lbl, _, _) = idx_files(3, 2, 2, 4);
    let mut bad = lbl.clone();
    bad[9] = 12;
    assert_contains(
        &message(idx::labels_from_bytes(&bad, "labels")),
        &["labels", "byte offset 9", "label 12 of sample 1", "0..=9"],
    );
    assert_contains(
        &message(idx::labels_from_bytes(&gzip(&bad), "labels.gz")),
        &["labels.gz", "byte offset 9", "label 12", "decompressed"],
    );
    let (_, lbl2, _, _) = idx_files(2, 2, 2, 4);
    assert_contains(
        &message(idx::from_bytes(&img, "imgs", &lbl2, "lbls")),
        &["lbls", "byte offset 4", "2 labels but 3 images in imgs"],
    );
}

#[test]
fn gzip_truncated_corrupt_and_bomb() {
    let (img, _, _, _) = idx_files(20, 28, 28, 6);
    let gz = gzip(&img);
    // Truncated gzip stream.
    let msg = message(idx::images_from_bytes(&gz[..gz.len() / 2], "cut.gz"));
    assert_contains(&msg, &["cut.gz", "gzip", "decompressed"]);
    // Corrupt CRC trailer.
    let mut crc = gz.clone();
    let n = crc.len();
    crc[n - 8] ^= 0xff;
    assert_contains(&message(idx::images_from_bytes(&crc, "crc.gz")), &["crc.gz", "gzip"]);
    // Trailing garbage after the gzip member.
    let mut trailing = gz.clone();
    trailing.extend_from_slice(b"garbage");
    assert!(idx::images_from_bytes(&trailing, "t.gz").is_err());
    // A bomb: the header promises one 28 x 28 image, the stream holds 64 MiB.
    let mut bomb = vec![0, 0, 8, 3, 0, 0, 0, 1, 0, 0, 0, 28, 0, 0, 0, 28];
    bomb.resize(64 << 20, 0);
    let bomb_gz = gzip(&bomb);
    assert!(bomb_gz.len() < 100_000);
    let start = std::time::Instant::now();
    let msg = message(idx::images_from_bytes(&bomb_gz, "bomb.gz"));
    assert_contains(&msg, &["bomb.gz", "byte offset 800", "oversized", "decompressed"]);
    assert!(start.elapsed().as_secs_f64() < 1.0, "the bomb was decompressed");
}

// ------------------------------------------------------------------ proptest: never panic

fn valid_idx_pair() -> (Vec<u8>, Vec<u8>) {
    let (img, lbl, _, _) = idx_files(3, 5, 4, 8);
    (img, lbl)
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 256, ..ProptestConfig::default() })]

    #[test]
    fn random_bytes_never_panic(data in proptest::collection::vec(any::<u8>(), 0..8000)) {
        let c = cifar10::from_bytes(&data, "random");
        let valid_cifar = !data.is_empty()
            && data.len().is_multiple_of(3073)
            && data.chunks(3073).all(|r| r[0] <= 9);
        prop_assert_eq!(c.is_ok(), valid_cifar);
        let _ = idx::images_from_bytes(&data, "random");
        let _ = idx::labels_from_bytes(&data, "random");
        let _ = idx::images_from_bytes(&gzip(&data), "random.gz");
        // Random bytes after a valid header: ok only with the exact length.
        let mut with_header = vec![0, 0, 8, 3, 0, 0, 0, 2, 0, 0, 0, 3, 0, 0, 0, 3];
        with_header.extend_from_slice(&data);
        prop_assert_eq!(idx::images_from_bytes(&with_header, "h").is_ok(), data.len() == 18);
    }

    #[test]
    fn truncations_of_valid_files_are_errors(cut in 0usize..10_000, extra in 1usize..50) {
        let (cifar, _, _) = cifar_file(3, 5);
        let cut_cifar = cut % (cifar.len() + 1);
        let r = cifar10::from_bytes(&cifar[..cut_cifar], "cifar");
        prop_assert_eq!(r.is_ok(), cut_cifar > 0 && cut_cifar.is_multiple_of(3073));
        if let Err(e) = r {
            prop_assert!(matches!(e, Error::Format { .. }), "{}", e);
        }
        let (img, lbl) = valid_idx_pair();
        for (data, is_images) in [(img, true), (lbl, false)] {
            let gz = gzip(&data);
            let parse = |d: &[u8]| if is_images {
                idx::images_from_bytes(d, "x").map(|_| ())
            } else {
                idx::labels_from_bytes(d, "x").map(|_| ())
            };
            prop_assert!(parse(&data).is_ok());
            prop_assert!(parse(&gz).is_ok());
            let c = cut % data.len();
            prop_assert!(matches!(parse(&data[..c]), Err(Error::Format { .. })), "prefix {}", c);
            let g = cut % gz.len();
            prop_assert!(matches!(parse(&gz[..g]), Err(Error::Format { .. })), "gzip prefix {}", g);
            let mut longer = data.clone();
            longer.extend(std::iter::repeat_n(0u8, extra));
            prop_assert!(matches!(parse(&longer), Err(Error::Format { .. })), "{} extra", extra);
            prop_assert!(matches!(parse(&gzip(&longer)), Err(Error::Format { .. })), "{} extra, gzip", extra);
        }
    }

    #[test]
    fn corrupted_valid_files_never_panic(pos in any::<usize>(), byte in any::<u8>()) {
        let (img, lbl) = valid_idx_pair();
        for data in [img.clone(), lbl.clone(), gzip(&img), gzip(&lbl)] {
            let mut d = data.clone();
            let p = pos % d.len();
            d[p] = byte;
            let _ = idx::images_from_bytes(&d, "x");
            let _ = idx::labels_from_bytes(&d, "x");
            let _ = idx::from_bytes(&d, "x", &lbl, "y");
        }
        let (cifar, _, _) = cifar_file(2, 3);
        let mut d = cifar.clone();
        let p = pos % d.len();
        d[p] = byte;
        let r = cifar10::from_bytes(&d, "c");
        prop_assert_eq!(r.is_ok(), d[0] <= 9 && d[3073] <= 9);
    }
}

// ------------------------------------------------------------------ tasks and subsets

#[test]
fn unknown_class_and_bad_tasks_are_rejected() {
    let msg = message(BinaryTask::from_class_names(Dataset::Cifar10, &["plane"], &["cat"]));
    assert_contains(&msg, &["unknown CIFAR-10 class \"plane\"", "airplane, automobile"]);
    assert_contains(
        &message(BinaryTask::parse(Dataset::FashionMnist, "tshirt:rest")),
        &["unknown Fashion-MNIST class \"tshirt\"", "T-shirt/top"],
    );
    assert_contains(
        &message(BinaryTask::parse(Dataset::Mnist, "12:3")),
        &["unknown MNIST class \"12\""],
    );
    assert_contains(&message(BinaryTask::parse(Dataset::Mnist, "3,5")), &["no ':'"]);
    assert_contains(
        &message(BinaryTask::new("t", &[1, 2], &[2, 3])),
        &["class 2 is on both sides"],
    );
    assert_contains(
        &message(BinaryTask::new("t", &[], &[2])),
        &["positive side", "no class"],
    );
    assert_contains(
        &message(BinaryTask::new("t", &[1], &[10])),
        &["class label 10", "0..=9"],
    );
    assert_contains(
        &message("imagenet".parse::<Dataset>()),
        &["unknown dataset \"imagenet\""],
    );
}

#[test]
fn task_parsing_and_defaults() {
    let t = BinaryTask::parse(Dataset::FashionMnist, "T-shirt/top, pullover,coat,shirt:rest").unwrap();
    assert_eq!(t.positive(), BinaryTask::fashion_mnist_tops_vs_rest().positive());
    assert_eq!(t.negative(), BinaryTask::fashion_mnist_tops_vs_rest().negative());
    let t = BinaryTask::parse(Dataset::FashionMnist, "Ankle boot,sneaker:sandal").unwrap();
    assert_eq!((t.positive(), t.negative()), (&[7u8, 9][..], &[5u8][..]));
    assert_eq!(
        BinaryTask::parse(Dataset::Mnist, "default").unwrap(),
        BinaryTask::mnist_even_vs_odd()
    );
    assert_eq!(BinaryTask::parse(Dataset::Mnist, "3:8").unwrap().positive(), &[3]);
    assert_eq!(
        BinaryTask::parse(Dataset::Cifar10, "airplane,automobile,ship,truck:rest")
            .unwrap()
            .negative(),
        BinaryTask::cifar10_vehicles_vs_animals().negative()
    );
    assert_eq!("fashion-mnist".parse::<Dataset>().unwrap(), Dataset::FashionMnist);
    assert_eq!("CIFAR-10".parse::<Dataset>().unwrap(), Dataset::Cifar10);
    assert_eq!(
        Dataset::Cifar10.default_task().to_string(),
        "vehicles vs animals (+1: classes 0,1,8,9; -1: classes 2,3,4,5,6,7)"
    );
}

#[test]
fn n_larger_than_data_is_rejected() {
    let cifar = embedded::cifar10_test();
    let task = BinaryTask::cifar10_vehicles_vs_animals();
    assert_eq!(task.max_balanced(&cifar), 20);
    let msg = message(balanced_subset(&cifar, &task, 21, 0));
    assert_contains(
        &msg,
        &[
            "n = 21",
            "11 samples of +1",
            "the data has 10 and 10",
            "the largest n is 20",
        ],
    );
    assert_contains(&message(balanced_subset(&cifar, &task, 0, 0)), &["invalid n = 0"]);
    let fashion = embedded::fashion_mnist();
    let msg = message(binary_dataset::<f32>(
        &fashion,
        &Dataset::FashionMnist.default_task(),
        1661,
        1,
        Centering::Off,
    ));
    assert_contains(&msg, &["n = 1661", "the largest n is 1660"]);
    // A task whose classes are absent.
    let only_cats = cifar.select(&[0, 8]).unwrap(); // labels 3, 3
    assert_contains(
        &message(balanced_subset(&only_cats, &task, 2, 0)),
        &["the data has 0 and 2", "the largest n is 0"],
    );
}

#[test]
fn balanced_subsets_are_balanced_sorted_and_seeded() {
    let mnist = embedded::mnist();
    let task = BinaryTask::mnist_even_vs_odd();
    for n in [1, 2, 7, 100, 1000, 2000] {
        let a = balanced_subset(&mnist, &task, n, 3).unwrap();
        assert_eq!(a.len(), n);
        assert!(a.windows(2).all(|w| w[0] < w[1]), "sorted, no repeats");
        let pos = a.iter().filter(|&&i| mnist.labels()[i].is_multiple_of(2)).count();
        assert_eq!(pos, n - n / 2);
        assert_eq!(a, balanced_subset(&mnist, &task, n, 3).unwrap());
        if n < 2000 {
            assert_ne!(a, balanced_subset(&mnist, &task, n, 4).unwrap());
        }
    }
    // A fixed seed gives a fixed subset, version after version.
    let fixed = balanced_subset(
        &embedded::cifar10_test(),
        &BinaryTask::cifar10_vehicles_vs_animals(),
        6,
        2024,
    )
    .unwrap();
    assert_eq!(
        balanced_subset(&embedded::mnist(), &BinaryTask::mnist_even_vs_odd(), 8, 1).unwrap(),
        [162, 311, 442, 567, 804, 925, 1194, 1421]
    );
    assert_eq!(fixed, [2, 12, 14, 16, 18, 19]);
    assert_eq!(
        fixed,
        balanced_subset(
            &embedded::cifar10_test(),
            &BinaryTask::cifar10_vehicles_vs_animals(),
            6,
            2024
        )
        .unwrap()
    );
    // Classes outside the task are never drawn.
    let t = BinaryTask::parse(Dataset::Mnist, "3:8").unwrap();
    let s = balanced_subset(&mnist, &t, 400, 1).unwrap();
    assert!(s.iter().all(|&i| [3, 8].contains(&mnist.labels()[i])));
    assert_eq!(s.iter().filter(|&&i| mnist.labels()[i] == 3).count(), 200);
}

#[test]
fn binary_dataset_gives_unit_rows_and_matching_targets() {
    let fashion = embedded::fashion_mnist();
    let task = Dataset::FashionMnist.default_task();
    for center in [Centering::Off, Centering::MeanImage] {
        let (x, y) = binary_dataset::<f64>(&fashion, &task, 300, 9, center).unwrap();
        assert_eq!(x.shape(), (300, 784));
        assert_eq!(y.len(), 300);
        for row in x.row_iter() {
            approx::assert_abs_diff_eq!(row.norm(), 1.0, epsilon = 1e-12);
        }
        let idx = balanced_subset(&fashion, &task, 300, 9).unwrap();
        for (k, &i) in idx.iter().enumerate() {
            let expected = if [0, 2, 4, 6].contains(&fashion.labels()[i]) {
                1.0
            } else {
                -1.0
            };
            assert_eq!(y[k], expected);
        }
        assert_eq!(y.sum(), 0.0);
        // f32 is the f64 result rounded.
        let (x32, y32) = binary_dataset::<f32>(&fashion, &task, 300, 9, center).unwrap();
        assert_eq!(x32, x.map(|v| v as f32));
        assert_eq!(y32, y.map(|v| v as f32));
    }
    assert_contains(
        &message(targets::<f64>(
            &fashion,
            &BinaryTask::parse(Dataset::FashionMnist, "3:5").unwrap(),
            &[2],
        )),
        &["sample 2 has class 1", "neither side"],
    );
}

// ------------------------------------------------------------------ preprocessing

#[test]
fn rows_have_unit_norm_and_values_are_scaled() {
    let cifar = embedded::cifar10_test();
    let all: Vec<usize> = (0..cifar.len()).collect();
    let u = unit_interval::<f64>(&cifar, &all).unwrap();
    assert_eq!(u.shape(), (20, 3072));
    assert!(u.iter().all(|&v| (0.0..=1.0).contains(&v)));
    assert_eq!(u[(3, 1025)], f64::from(cifar.image(3).unwrap()[1025]) / 255.0);
    for center in [Centering::Off, Centering::MeanImage] {
        let x = preprocess::<f32>(&cifar, &all, center).unwrap();
        for row in x.row_iter() {
            approx::assert_abs_diff_eq!(row.norm(), 1.0, epsilon = 1e-5);
        }
        let x = preprocess::<f64>(&cifar, &all, center).unwrap();
        for row in x.row_iter() {
            approx::assert_abs_diff_eq!(row.norm(), 1.0, epsilon = 1e-12);
        }
    }
    // Without centring, a row is the scaled image divided by its norm.
    let x = preprocess::<f64>(&cifar, &[4, 2], Centering::Off).unwrap();
    let img = cifar.image(4).unwrap();
    let norm = img.iter().map(|&p| (f64::from(p) / 255.0).powi(2)).sum::<f64>().sqrt();
    approx::assert_abs_diff_eq!(x[(0, 10)], f64::from(img[10]) / 255.0 / norm, epsilon = 1e-15);
}

#[test]
fn centring_gives_zero_column_means_before_normalization() {
    let mnist = embedded::mnist();
    let idx = balanced_subset(&mnist, &BinaryTask::mnist_even_vs_odd(), 200, 5).unwrap();
    let mut u = unit_interval::<f64>(&mnist, &idx).unwrap();
    let before = u.clone();
    let mean = center_columns(&mut u);
    assert_eq!(mean.len(), 784);
    for j in 0..784 {
        let expected = before.column(j).mean();
        approx::assert_abs_diff_eq!(mean[j], expected, epsilon = 1e-12);
        assert!(u.column(j).mean().abs() < 1e-12, "column {j}");
    }
    // The pipeline is centre-then-normalize.
    normalize_rows(&mut u).unwrap();
    let x = preprocess::<f64>(&mnist, &idx, Centering::MeanImage).unwrap();
    assert!((x - &u).abs().max() < 1e-12);
    // f32 centring too.
    let mut u32 = unit_interval::<f32>(&mnist, &idx).unwrap();
    center_columns(&mut u32);
    for j in 0..784 {
        assert!(u32.column(j).mean().abs() < 1e-5);
    }
}

#[test]
fn zero_rows_are_errors_naming_the_sample() {
    let mut pixels = vec![0u8; 4 * 3];
    pixels[0] = 9; // sample 0 non-zero, samples 1 and 2 all zero
    let images = Images::new(2, 2, 1, pixels, vec![1, 4, 7]).unwrap();
    let msg = message(preprocess::<f64>(&images, &[0, 2], Centering::Off));
    assert_contains(&msg, &["sample 2 (label 7) is all zeros", "unit norm"]);
    // Centring two identical samples leaves zero rows.
    let twins = Images::new(1, 2, 1, vec![5, 6, 5, 6, 1, 1], vec![0, 1, 2]).unwrap();
    let msg = message(preprocess::<f32>(&twins, &[1, 0], Centering::MeanImage));
    assert_contains(&msg, &["sample 1 (label 1) equals the mean image"]);
    assert_contains(
        &message(preprocess::<f64>(&twins, &[2], Centering::MeanImage)),
        &["single sample"],
    );
    assert_contains(
        &message(preprocess::<f64>(&twins, &[], Centering::Off)),
        &["at least one sample index"],
    );
    assert_contains(
        &message(preprocess::<f64>(&twins, &[3], Centering::Off)),
        &["sample index 3 is out of range"],
    );
    let mut z = nalgebra::DMatrix::<f64>::zeros(2, 3);
    z[(0, 0)] = 1.0;
    assert_contains(&message(normalize_rows(&mut z)), &["row 1 has norm 0"]);
}

#[test]
fn images_invariants() {
    assert!(Images::new(2, 2, 1, vec![0; 8], vec![1, 2]).is_ok());
    assert_contains(
        &message(Images::new(2, 2, 1, vec![0; 7], vec![1, 2])),
        &["shape mismatch"],
    );
    assert_contains(&message(Images::new(0, 2, 1, vec![], vec![])), &["invalid rows = 0"]);
    assert_contains(&message(Images::new(1, 1, 1, vec![0], vec![10])), &["10 at sample 0"]);
    let a = Images::new(1, 1, 1, vec![1, 2, 3], vec![0, 1, 2]).unwrap();
    assert_eq!(a.select(&[2, 0, 2]).unwrap().pixels(), &[3, 1, 3]);
    assert_contains(&message(a.select(&[3])), &["sample index 3 is out of range"]);
    assert_eq!(a.head(2).labels(), &[0, 1]);
    assert_eq!(Images::concat(vec![a.clone(), a.head(1)]).unwrap().len(), 4);
    let b = Images::new(1, 2, 1, vec![0, 0], vec![0]).unwrap();
    assert_contains(&message(Images::concat(vec![a.clone(), b])), &["shape mismatch"]);
    assert_eq!(a.image(3), None);
    assert_eq!(a.label(3), None);
    assert_contains(&message(cifar10::to_bytes(&a)), &["32 x 32 x 3"]);
    let rgb = Images::new(1, 1, 3, vec![0; 3], vec![0]).unwrap();
    assert_contains(&message(idx::to_bytes(&rgb)), &["1 channel"]);
}
