//! Fuzz the checkpoint loader: any bytes given as a checkpoint file must give
//! `Ok` or an error, never a panic, an abort or an unbounded allocation, and
//! an error must leave the trainer unchanged. A file that loads must save
//! and load again to the same state.
#![no_main]

use std::path::PathBuf;
use std::sync::OnceLock;

use libfuzzer_sys::fuzz_target;
use nalgebra::DMatrix;
use ntk_momentum::{HeavyBall, Nesterov, Optimizer, Trainer, TwoLayerReLU};

/// One file per fuzzing process, in the system's temporary directory.
fn path() -> &'static PathBuf {
    static PATH: OnceLock<PathBuf> = OnceLock::new();
    PATH.get_or_init(|| std::env::temp_dir().join(format!("ntk-fuzz-checkpoint-{}.ckpt", std::process::id())))
}

fn check<O: Optimizer<DMatrix<f64>>>(optimizer: impl Fn() -> O, file: &std::path::Path) {
    let mut trainer = Trainer::new(TwoLayerReLU::new(3, 8, 0).unwrap(), optimizer());
    let before = (trainer.model().weights().clone(), trainer.optimizer().state());
    match trainer.load_checkpoint(file) {
        Err(_) => assert_eq!((trainer.model().weights().clone(), trainer.optimizer().state()), before),
        Ok(()) => {
            // Save and load again: the same model and optimizer state.
            let again = file.with_extension("again");
            trainer.save_checkpoint(&again).unwrap();
            let mut other = Trainer::new(TwoLayerReLU::new(3, 8, 0).unwrap(), optimizer());
            other.load_checkpoint(&again).unwrap();
            assert_eq!(other.model().weights(), trainer.model().weights());
            assert_eq!(other.optimizer().state(), trainer.optimizer().state());
        }
    }
}

fuzz_target!(|data: &[u8]| {
    let file = path();
    if std::fs::write(file, data).is_err() {
        return;
    }
    check(|| HeavyBall::new(0.1, 0.5).unwrap(), file);
    check(|| Nesterov::new(0.1, 0.5).unwrap(), file);
});
