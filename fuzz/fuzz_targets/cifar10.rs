//! Fuzz the CIFAR-10 binary reader: any bytes must give `Ok` or an error,
//! never a panic, and `Ok` exactly for a non-empty whole number of records
//! with labels 0..=9 (which then re-encode to the same bytes).
#![no_main]

use libfuzzer_sys::fuzz_target;
use ntk_momentum::data::cifar10;

fuzz_target!(|data: &[u8]| {
    let valid = !data.is_empty()
        && data.len().is_multiple_of(cifar10::RECORD_LEN)
        && data.chunks(cifar10::RECORD_LEN).all(|r| r[0] <= 9);
    match cifar10::from_bytes(data, "fuzz.bin") {
        Ok(images) => {
            assert!(valid);
            assert_eq!(images.len(), data.len() / cifar10::RECORD_LEN);
            assert_eq!(cifar10::to_bytes(&images).unwrap(), data);
        }
        Err(e) => {
            assert!(!valid);
            assert!(e.to_string().contains("fuzz.bin at byte offset"));
        }
    }
});
