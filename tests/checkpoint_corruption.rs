//! Corrupted checkpoints: random byte flips, truncations and splices of valid
//! files are refused with an error, and leave the trainer unchanged; and
//! concurrent saves to one path never leave a torn or mixed file.
#![cfg(feature = "full")]

use nalgebra::{DMatrix, DVector};
use ntk_momentum::{Error, HeavyBall, Trainer, TwoLayerReLU};
use proptest::prelude::*;
use std::sync::atomic::{AtomicUsize, Ordering::SeqCst};

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

/// Marks a writer thread as finished when dropped (also when it panics).
struct Finished<'a>(&'a AtomicUsize);

impl Drop for Finished<'_> {
    fn drop(&mut self) {
        self.0.fetch_add(1, SeqCst);
    }
}

/// What identifies a checkpoint's content: weights, optimizer state, step
/// and losses.
type Content = (DMatrix<f64>, ntk_momentum::optim::OptimizerState, usize, Vec<f64>);

fn content(t: &Trainer<f64, HeavyBall>) -> Content {
    (
        t.model().weights().clone(),
        t.optimizer().state(),
        t.steps_taken(),
        t.history().losses().to_vec(),
    )
}

/// The file names in `dir`, sorted.
fn listing(dir: &std::path::Path) -> Vec<String> {
    let mut names: Vec<String> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    names.sort();
    names
}

/// Eight threads save eight different checkpoints to one path at once,
/// round after round, while (on Unix, where a file can be replaced while it
/// is read) another thread loads it: every load succeeds and gives one of
/// the eight whole, never a torn or mixed file, and no temporary file is
/// left in the directory.
#[test]
fn concurrent_saves_to_one_path_leave_one_whole_checkpoint() {
    const THREADS: usize = 8;
    const ROUNDS: usize = 12;
    const SAVES: usize = 8;
    let dir = std::env::temp_dir().join(format!("ntk_momentum_concurrent_saves_{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join("shared.ckpt");
    let (x, y) = problem();
    // Runs of 1 to 8 steps: eight different contents of one model shape.
    let mut trainers: Vec<Trainer<f64, HeavyBall>> = (1..=THREADS)
        .map(|steps| {
            let mut t = trainer(steps);
            t.run(&x, &y).unwrap();
            t
        })
        .collect();
    let expected: Vec<Content> = trainers.iter().map(content).collect();
    for (i, a) in expected.iter().enumerate() {
        assert!(
            expected[..i].iter().all(|b| b != a),
            "runs {i} and an earlier one agree"
        );
    }
    let which = |loaded: &Content| expected.iter().position(|e| e == loaded);
    trainers[0].save_checkpoint(&path).unwrap();
    let mut seen = [0usize; THREADS];
    let mut concurrent_loads = 0;
    for round in 0..ROUNDS {
        let done = AtomicUsize::new(0);
        let barrier = std::sync::Barrier::new(THREADS);
        let (done, barrier, path, which) = (&done, &barrier, &path, &which);
        let (loads, failure) = std::thread::scope(|s| {
            // A trainer is Send but not Sync (its observers): each writer owns one.
            let writers: Vec<_> = std::mem::take(&mut trainers)
                .into_iter()
                .map(|t| {
                    s.spawn(move || {
                        // Counts the writer as done even if a save fails, so the reader stops.
                        let _finished = Finished(done);
                        barrier.wait();
                        for _ in 0..SAVES {
                            t.save_checkpoint(path).unwrap();
                        }
                        t
                    })
                })
                .collect();
            // Each load checked at once: a count and the first failure, nothing accumulated.
            let reader = s.spawn(move || {
                let (mut loads, mut failure) = (0usize, None);
                while cfg!(unix) && done.load(SeqCst) < THREADS && failure.is_none() {
                    let mut fresh = trainer(1);
                    loads += 1;
                    failure = match fresh.load_checkpoint(path) {
                        Ok(()) if which(&content(&fresh)).is_some() => None,
                        Ok(()) => Some("a checkpoint that is none of the saved ones".to_string()),
                        Err(e) => Some(e.to_string()),
                    };
                }
                (loads, failure)
            });
            let results: Vec<_> = writers.into_iter().map(|w| w.join()).collect();
            let read = reader.join().unwrap();
            trainers = results
                .into_iter()
                .map(|r| r.unwrap_or_else(|_| panic!("round {round}: a save failed")))
                .collect();
            read
        });
        if let Some(f) = failure {
            panic!("round {round}: load {loads} during the saves: {f}");
        }
        concurrent_loads += loads;
        let mut fresh = trainer(1);
        fresh.load_checkpoint(path).unwrap();
        let k = which(&content(&fresh))
            .unwrap_or_else(|| panic!("round {round}: the file is none of the saved checkpoints"));
        seen[k] += 1;
        assert_eq!(
            listing(&dir),
            ["shared.ckpt"],
            "round {round}: files left beside the checkpoint"
        );
    }
    eprintln!("last writer per round: {seen:?}; {concurrent_loads} loads during the saves");
    let _ = std::fs::remove_dir_all(&dir);
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
