//! Fuzz the IDX reader (images, labels and pairs), raw and gzip: any bytes
//! must give `Ok` or an error, never a panic or an unbounded allocation.
//!
//! The first input byte picks the mode: even, the remaining bytes are the
//! file as they are (raw IDX, or gzip when they start with 1f 8b); odd, they
//! are gzip-compressed first, so the fuzzer reaches the bounded
//! decompression path with valid gzip framing. Each file is parsed as
//! images, as labels and as both halves of a pair.
#![no_main]

use std::io::Write;

use libfuzzer_sys::fuzz_target;
use ntk_momentum::data::idx;

fn gzip(data: &[u8]) -> Vec<u8> {
    let mut enc = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
    enc.write_all(data).unwrap();
    enc.finish().unwrap()
}

fn check(file: &[u8]) {
    if let Ok(images) = idx::images_from_bytes(file, "fuzz-images") {
        assert_eq!(images.pixels.len(), images.count * images.rows * images.cols);
    }
    if let Ok(labels) = idx::labels_from_bytes(file, "fuzz-labels") {
        assert!(labels.iter().all(|&l| l <= 9));
    }
    // Pair the input with itself as both files, and with a fixed labels file.
    let _ = idx::from_bytes(file, "fuzz-images", file, "fuzz-labels");
    let _ = idx::from_bytes(file, "fuzz-images", &[0, 0, 8, 1, 0, 0, 0, 1, 5], "one-label");
}

fuzz_target!(|data: &[u8]| {
    let Some((&mode, rest)) = data.split_first() else {
        return;
    };
    match mode % 2 {
        0 => check(rest),
        _ => check(&gzip(rest)),
    }
});
