//! Checkpoints in the safetensors format.
//!
//! A checkpoint is a standard [safetensors](https://github.com/huggingface/safetensors)
//! file, readable from Python with `safetensors.numpy.load_file`. Tensors
//! (dtype of the model, `F32` or `F64`, unless noted):
//!
//! | name | shape | content |
//! |---|---|---|
//! | `model.weights` | m × d | W_t (row r = w_r) |
//! | `model.initial_weights` | m × d | W_0 |
//! | `model.output_weights` | m | a |
//! | `run.coefficients` | m × n | B_t (kernel space only) |
//! | `optimizer.<buffer>` | the optimizer's shape | each state buffer |
//! | `history.losses`, `history.elapsed` | steps + 1 | `F64` |
//! | `history.diagnostics` | k × 9 | `F64`: step, ‖W_t − W_0‖_F, max_r ‖w_r(t) − w_r(0)‖, flip fraction, NTK drift, test loss, test accuracy, λ_min(H(W_t)), λ_max(H(W_t)) (NaN where not recorded; files with the first 5 or 7 columns load too) |
//!
//! Matrices are stored row-major, as safetensors (and numpy) expect. The
//! string metadata holds the format name and version, dtype, step,
//! parameterization, optimizer name, step count, shape and hyper-parameters
//! (as exact `f64` bit patterns), a fingerprint of the training data, and a
//! CRC-32 of all tensor bytes, so a damaged file is rejected rather than
//! resumed.

mod codec;
mod record;

use std::path::Path;

use nalgebra::DMatrix;

use self::codec::{bad, write_atomically};
use self::record::Checkpoint;
use super::trainer::RunState;
use super::{Parameterization, Trainer};
use crate::{Error, Float, Optimizer, Result, TwoLayerReLU};

impl<T: Float, O: Optimizer<DMatrix<T>>> Trainer<T, O> {
    /// Saves the model, optimizer state, step and history to `path` (in the
    /// [checkpoint format](crate::train::checkpoint)). The file is
    /// written to a temporary file beside `path` (hidden,
    /// `.{name}.tmp-{pid}-{n}-{nanos}`, a new one for every call), synced,
    /// renamed over `path`, and the directory synced, so an existing
    /// checkpoint is never left half-written and a saved one survives a
    /// crash. Concurrent saves to one path (from several threads or
    /// processes) each replace it by one whole checkpoint; the last rename
    /// wins. A process killed during a save leaves `path` as it was and
    /// may leave its temporary file behind.
    ///
    /// # Errors
    /// [`Error::Unsupported`] before the first [`Trainer::run`] or for an
    /// optimizer whose state is not one matrix; [`Error::Io`] if the file
    /// cannot be written.
    pub fn save_checkpoint(&self, path: impl AsRef<Path>) -> Result<()> {
        let path = path.as_ref();
        let run = self
            .run
            .as_ref()
            .ok_or_else(|| Error::Unsupported("saving a checkpoint before the first call to Trainer::run".into()))?;
        let record = Checkpoint {
            step: self.step,
            space: run.space.clone(),
            fingerprint: run.fingerprint,
            weights: self.model.weights().clone(),
            initial_weights: run.initial_weights.clone(),
            output_weights: self.model.output_weights().clone(),
            optimizer: self.optimizer.state(),
            history: self.history.clone(),
        };
        write_atomically(path, &record.encode(path)?)
    }

    /// Loads a checkpoint written by [`Trainer::save_checkpoint`], so that the
    /// next [`Trainer::run`] on the same data continues the run exactly
    /// (bit-identically to a run that was never interrupted). Observers and
    /// stopping options are this trainer's own.
    ///
    /// # Errors
    /// [`Error::Io`] if the file cannot be read; [`Error::Checkpoint`] if it is
    /// truncated or corrupted (CRC mismatch), of another format or dtype, or
    /// of another model shape or parameterization than this trainer's; the
    /// optimizer's error if the state belongs to another optimizer or other
    /// hyper-parameters. On error the trainer is unchanged.
    pub fn load_checkpoint(&mut self, path: impl AsRef<Path>) -> Result<()> {
        let path = path.as_ref();
        let len = std::fs::metadata(path).map_err(|e| Error::io(path, e))?.len();
        // The file's bytes and the tensors decoded from them.
        crate::memory::reserve(
            || format!("loading checkpoint {} ({len} bytes)", path.display()),
            &[len.checked_mul(2)],
        )?;
        let bytes = std::fs::read(path).map_err(|e| Error::io(path, e))?;
        let record = Checkpoint::<T>::decode(&bytes, path)?;
        let (m, d) = (self.model.width(), self.model.input_dim());
        if record.weights.shape() != (m, d) {
            return Err(bad(
                path,
                format!(
                    "model shape {:?} but this trainer's model is {m} x {d}",
                    record.weights.shape()
                ),
            ));
        }
        let model = TwoLayerReLU::from_parts(record.weights, record.output_weights)
            .map_err(|e| bad(path, format!("model: {e}")))?;
        TwoLayerReLU::from_parts(record.initial_weights.clone(), model.output_weights().clone())
            .map_err(|e| bad(path, format!("initial model: {e}")))?;
        let saved_in = record.space.parameterization();
        let wanted = self.options.parameterization;
        if wanted != Parameterization::Auto && wanted != saved_in {
            return Err(bad(
                path,
                format!("saved in {saved_in} space but this trainer is set to {wanted} space"),
            ));
        }
        if saved_in == Parameterization::Kernel && !self.optimizer.is_linear() {
            return Err(bad(
                path,
                format!(
                    "saved in kernel space, which optimizer \"{}\" does not support (Optimizer::is_linear)",
                    self.optimizer.name()
                ),
            ));
        }
        // Everything else is validated; the optimizer goes last since it can
        // still refuse. Its schedules must give the saved hyper-parameters at
        // the saved step, or the continued run would not be the saved one.
        let previous = self.optimizer.state();
        self.optimizer.set_state(&record.optimizer)?;
        let own = self.optimizer.state().hyperparameters;
        let saved = &record.optimizer.hyperparameters;
        let same = own.len() == saved.len()
            && own
                .iter()
                .zip(saved)
                .all(|((n1, v1), (n2, v2))| n1 == n2 && v1.to_bits() == v2.to_bits());
        if !same {
            self.optimizer.set_state(&previous)?;
            return Err(bad(
                path,
                format!(
                    "the checkpoint's optimizer hyper-parameters at step {} are {saved:?}, this trainer's optimizer \
                     gives {own:?} there",
                    record.optimizer.step
                ),
            ));
        }
        self.model = model;
        self.step = record.step;
        self.history = record.history;
        self.run = Some(RunState {
            space: record.space,
            fingerprint: record.fingerprint,
            initial_weights: record.initial_weights,
        });
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use nalgebra::{DMatrix, DVector};

    use super::codec::{create_temporary, write_stages, Stage};
    use crate::{HeavyBall, Trainer, TwoLayerReLU};

    /// The names of the hidden temporary files in `dir`, sorted.
    fn temporaries(dir: &std::path::Path) -> Vec<String> {
        let mut names: Vec<String> = std::fs::read_dir(dir)
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .filter(|n| n.starts_with('.') && n.contains(".tmp-"))
            .collect();
        names.sort();
        names
    }

    /// A save killed after any stage of the atomic write leaves the previous
    /// checkpoint loadable and unchanged (beside a stale temporary file), and
    /// the next save replaces it and leaves no temporary file of its own.
    #[test]
    fn an_interrupted_save_leaves_the_previous_checkpoint_loadable() {
        let dir = std::env::temp_dir().join(format!("ntk_momentum_interrupted_{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("run.ckpt");
        let x = DMatrix::from_fn(4, 3, |i, j| ((i + 2 * j) % 5) as f64 / 5.0 - 0.4);
        let y = DVector::from_fn(4, |i, _| if i % 2 == 0 { 1.0 } else { -1.0 });
        let mut trainer =
            Trainer::new(TwoLayerReLU::new(3, 16, 0).unwrap(), HeavyBall::new(0.1, 0.5).unwrap()).max_steps(3);
        trainer.run(&x, &y).unwrap();
        trainer.save_checkpoint(&path).unwrap();
        assert!(temporaries(&dir).is_empty());
        let saved = std::fs::read(&path).unwrap();
        let (weights, state) = (trainer.model().weights().clone(), trainer.optimizer().state());
        trainer.set_max_steps(6);
        trainer.run(&x, &y).unwrap();
        let mut stale = Vec::new();
        for stage in [Stage::Created, Stage::HalfWritten, Stage::Written, Stage::Synced] {
            // What save_checkpoint would have written, stopped after `stage`.
            let record = super::Checkpoint {
                step: trainer.step,
                space: trainer.run.as_ref().unwrap().space.clone(),
                fingerprint: trainer.run.as_ref().unwrap().fingerprint,
                weights: trainer.model.weights().clone(),
                initial_weights: trainer.run.as_ref().unwrap().initial_weights.clone(),
                output_weights: trainer.model.output_weights().clone(),
                optimizer: trainer.optimizer.state(),
                history: trainer.history.clone(),
            };
            let bytes = record.encode(&path).unwrap();
            let tmp = write_stages(&path, &bytes, stage).unwrap();
            assert!(tmp.exists(), "{stage:?}");
            assert_eq!(tmp.parent(), Some(dir.as_path()));
            stale.push(tmp.file_name().unwrap().to_string_lossy().into_owned());
            assert_eq!(
                std::fs::read(&path).unwrap(),
                saved,
                "{stage:?}: the previous file changed"
            );
            let mut fresh =
                Trainer::new(TwoLayerReLU::new(3, 16, 0).unwrap(), HeavyBall::new(0.1, 0.5).unwrap()).max_steps(3);
            fresh.load_checkpoint(&path).unwrap();
            assert_eq!(fresh.model().weights(), &weights, "{stage:?}");
            assert_eq!(fresh.optimizer().state(), state, "{stage:?}");
        }
        // One temporary file per interrupted write, each its own.
        stale.sort();
        assert_eq!(temporaries(&dir), stale);
        // The stale temporary files do not stop the next save, which leaves
        // none of its own.
        trainer.save_checkpoint(&path).unwrap();
        let mut fresh = Trainer::new(TwoLayerReLU::new(3, 16, 0).unwrap(), HeavyBall::new(0.1, 0.5).unwrap());
        fresh.load_checkpoint(&path).unwrap();
        assert_eq!(fresh.model().weights(), trainer.model().weights());
        assert_eq!(temporaries(&dir), stale);
        let _ = std::fs::remove_dir_all(&dir);
    }

    /// Every temporary file is new: names never repeat within the process,
    /// even from several threads at once, and an existing file is never
    /// opened again.
    #[test]
    fn temporary_files_are_unique_per_call() {
        let dir = std::env::temp_dir().join(format!("ntk_momentum_temporaries_{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("run.ckpt");
        let names: Vec<std::path::PathBuf> = std::thread::scope(|s| {
            let threads: Vec<_> = (0..4)
                .map(|_| s.spawn(|| (0..50).map(|_| create_temporary(&path).unwrap().0).collect::<Vec<_>>()))
                .collect();
            threads.into_iter().flat_map(|t| t.join().unwrap()).collect()
        });
        let mut unique = names.clone();
        unique.sort();
        unique.dedup();
        assert_eq!(unique.len(), 200);
        let prefix = format!(".run.ckpt.tmp-{}-", std::process::id());
        for n in &names {
            assert!(n.exists());
            assert!(n.file_name().unwrap().to_string_lossy().starts_with(&prefix), "{n:?}");
        }
        // A path without a file name is refused.
        assert!(create_temporary(std::path::Path::new("/")).is_err());
        let _ = std::fs::remove_dir_all(&dir);
    }
}
