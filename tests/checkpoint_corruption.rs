//! Corrupted checkpoints: random byte flips, truncations and splices of valid
//! files are refused with an error, and leave the trainer unchanged.

use nalgebra::{DMatrix, DVector};
use ntk_momentum::{Error, HeavyBall, Trainer, TwoLayerReLU};
use proptest::prelude::*;

fn problem() -> (DMatrix<f64>, DVector<f64>) {
    let x = DMatrix::from_fn(5, 3, |i, j| ((i * 3 + j * 5) % 7) as f64 / 7.0 - 0.4);
    let y = DVector::from_fn(5, |i, _| if i % 2 == 0 { 1.0 } else { -1.0 });
    (x, y)
}

fn trainer(steps: usize) -> Trainer<f64, HeavyBall> {
    Trainer::new(TwoLayerReLU::new(3, 8, 1).unwrap(), HeavyBall::new(0.1, 0.5).unwrap()).max_steps(steps)
}

/// Two valid checkpoints of the same model shape: after 3 and after 7 steps.
fn valid_files(dir: &std::path::Path) -> (Vec<u8>, Vec<u8>) {
    let (x, y) = problem();
    let mut t = trainer(3);
    t.run(&x, &y).unwrap();
    let a = dir.join("a.ckpt");
    t.save_checkpoint(&a).unwrap();
    t.set_max_steps(7);
    t.run(&x, &y).unwrap();
    let b = dir.join("b.ckpt");
    t.save_checkpoint(&b).unwrap();
    (std::fs::read(a).unwrap(), std::fs::read(b).unwrap())
}

#[derive(Clone, Debug)]
enum Damage {
    /// XOR one byte with a non-zero mask.
    Flip(prop::sample::Index, u8),
    /// Keep only a prefix.
    Truncate(prop::sample::Index),
    /// Replace a range with the bytes of the other file at the same offsets.
    Splice(prop::sample::Index, prop::sample::Index),
}

fn damage() -> impl Strategy<Value = Damage> {
    prop_oneof![
        (any::<prop::sample::Index>(), 1u8..=255).prop_map(|(i, m)| Damage::Flip(i, m)),
        any::<prop::sample::Index>().prop_map(Damage::Truncate),
        (any::<prop::sample::Index>(), any::<prop::sample::Index>()).prop_map(|(a, b)| Damage::Splice(a, b)),
    ]
}

fn apply(d: &Damage, file: &[u8], other: &[u8]) -> Vec<u8> {
    let mut out = file.to_vec();
    match d {
        Damage::Flip(i, mask) => {
            let i = i.index(out.len());
            out[i] ^= mask;
        }
        Damage::Truncate(i) => out.truncate(i.index(out.len())),
        Damage::Splice(a, b) => {
            let n = out.len().min(other.len());
            let (a, b) = (a.index(n), b.index(n));
            let (lo, hi) = (a.min(b), a.max(b) + 1);
            out[lo..hi].copy_from_slice(&other[lo..hi]);
        }
    }
    out
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 512, failure_persistence: None, ..ProptestConfig::default() })]

    #[test]
    fn damaged_checkpoints_are_refused_and_change_nothing(d in damage(), which in any::<bool>()) {
        let dir = std::env::temp_dir().join(format!("ntk_momentum_corrupt_{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let (a, b) = valid_files(&dir);
        let (file, other) = if which { (&a, &b) } else { (&b, &a) };
        let damaged = apply(&d, file, other);
        let path = dir.join(format!("damaged-{}.ckpt", which as u8));
        std::fs::write(&path, &damaged).unwrap();
        let (x, y) = problem();
        let mut t = trainer(2);
        t.run(&x, &y).unwrap();
        let before = (t.model().weights().clone(), t.optimizer().state(), t.history().losses().to_vec());
        let result = t.load_checkpoint(&path);
        if damaged == a || damaged == b {
            // The damage happened to leave a valid file (e.g. a splice of
            // identical bytes): it loads.
            prop_assert!(result.is_ok(), "{result:?}");
        } else {
            let err = result.unwrap_err();
            prop_assert!(matches!(err, Error::Checkpoint { .. }), "{d:?}: {err:?}");
            prop_assert!(err.to_string().contains("damaged-"), "{err}");
            let after = (t.model().weights().clone(), t.optimizer().state(), t.history().losses().to_vec());
            prop_assert_eq!(after, before);
        }
    }
}

/// Writes valid checkpoints of the fuzz target's model shape (8 x 3; HB and
/// NAG, weight and kernel space) into `fuzz/corpus/checkpoint/` as seeds
/// (`cargo test --test checkpoint_corruption -- --ignored`; see
/// `fuzz/README.md`).
#[test]
#[ignore = "writes the fuzzing seeds"]
fn write_fuzz_seeds() {
    use ntk_momentum::{Nesterov, Parameterization};
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("fuzz/corpus/checkpoint");
    std::fs::create_dir_all(&dir).unwrap();
    let (x, y) = problem();
    for space in [Parameterization::Weight, Parameterization::Kernel] {
        let mut hb = Trainer::new(TwoLayerReLU::new(3, 8, 0).unwrap(), HeavyBall::new(0.1, 0.5).unwrap())
            .parameterization(space)
            .max_steps(2);
        hb.run(&x, &y).unwrap();
        hb.save_checkpoint(dir.join(format!("hb-{space}.ckpt"))).unwrap();
        let mut nag = Trainer::new(TwoLayerReLU::new(3, 8, 0).unwrap(), Nesterov::new(0.1, 0.5).unwrap())
            .parameterization(space)
            .max_steps(2);
        nag.run(&x, &y).unwrap();
        nag.save_checkpoint(dir.join(format!("nag-{space}.ckpt"))).unwrap();
    }
}
