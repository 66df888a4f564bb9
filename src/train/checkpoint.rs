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
//! | `history.diagnostics` | k × 5 | `F64`: step, ‖W_t − W_0‖_F, max_r ‖w_r(t) − w_r(0)‖, flip fraction, NTK drift (NaN if not tracked) |
//!
//! Matrices are stored row-major, as safetensors (and numpy) expect. The
//! string metadata holds the format name and version, dtype, step,
//! parameterization, optimizer name, step count, shape and hyper-parameters
//! (as exact `f64` bit patterns), a fingerprint of the training data, and a
//! CRC-32 of all tensor bytes, so a damaged file is rejected rather than
//! resumed.

use std::collections::HashMap;
use std::path::Path;

use nalgebra::{DMatrix, DVector};
use safetensors::tensor::{Dtype, SafeTensors, TensorView};

use super::{Diagnostics, History, Parameterization, RunState, Trainer};
use crate::optim::TensorState;
use crate::{Error, Float, Optimizer, OptimizerState, Result, TwoLayerReLU};

const FORMAT: &str = "ntk-momentum-checkpoint";
const VERSION: &str = "1";
/// Columns of `history.diagnostics`: step, weight distance, largest neuron
/// distance, activation flip fraction, NTK drift, test loss, test accuracy
/// (NaN for an absent value). Files with the first five are read too.
const DIAGNOSTICS_COLUMNS: usize = 7;

/// Row-major little-endian bytes of a column-major matrix.
fn matrix_bytes<T: Float>(m: &DMatrix<T>) -> Vec<u8> {
    let mut out = Vec::with_capacity(m.len() * T::BYTES);
    for i in 0..m.nrows() {
        for j in 0..m.ncols() {
            m[(i, j)].extend_le_bytes(&mut out);
        }
    }
    out
}

fn slice_bytes<T: Float>(v: &[T]) -> Vec<u8> {
    let mut out = Vec::with_capacity(v.len() * T::BYTES);
    for &x in v {
        x.extend_le_bytes(&mut out);
    }
    out
}

fn hyper_string(h: &[(String, f64)]) -> String {
    h.iter()
        .map(|(n, v)| format!("{n}={:#018x}", v.to_bits()))
        .collect::<Vec<_>>()
        .join(",")
}

/// A read failure, named with the checkpoint's path.
fn bad(path: &Path, message: impl Into<String>) -> Error {
    Error::Checkpoint {
        path: path.to_path_buf(),
        message: message.into(),
    }
}

/// CRC-32 over the metadata (but the CRC itself) and every tensor's name and
/// bytes, in sorted order.
fn crc_of(tensors: &[(String, Dtype, Vec<usize>, Vec<u8>)], meta: &HashMap<String, String>) -> u32 {
    let mut sorted: Vec<&(String, Dtype, Vec<usize>, Vec<u8>)> = tensors.iter().collect();
    sorted.sort_by(|a, b| a.0.cmp(&b.0));
    let mut h = crc32fast::Hasher::new();
    let mut keys: Vec<&String> = meta.keys().filter(|k| k.as_str() != "crc32").collect();
    keys.sort();
    for k in keys {
        h.update(k.as_bytes());
        h.update(&[0]);
        h.update(meta[k].as_bytes());
        h.update(&[0]);
    }
    for (name, _, _, bytes) in sorted {
        h.update(name.as_bytes());
        h.update(bytes);
    }
    h.finalize()
}

impl<T: Float, O: Optimizer<DMatrix<T>>> Trainer<T, O> {
    /// Saves the model, optimizer state, step and history to `path` (in the
    /// [checkpoint format](crate::train::checkpoint)). The file is
    /// written to a temporary file beside `path` and renamed over it, so an
    /// existing checkpoint is never left half-written.
    ///
    /// # Errors
    /// [`Error::Unsupported`] before the first [`Trainer::run`];
    /// [`Error::Io`] if the file cannot be written.
    pub fn save_checkpoint(&self, path: impl AsRef<Path>) -> Result<()> {
        let path = path.as_ref();
        let run = self
            .run
            .as_ref()
            .ok_or_else(|| Error::Unsupported("saving a checkpoint before the first call to Trainer::run".into()))?;
        let state = self.optimizer.state();
        let mut tensors: Vec<(String, Dtype, Vec<usize>, Vec<u8>)> = Vec::new();
        let dt = T::SAFETENSORS_DTYPE;
        let w = self.model.weights();
        tensors.push(("model.weights".into(), dt, vec![w.nrows(), w.ncols()], matrix_bytes(w)));
        tensors.push((
            "model.initial_weights".into(),
            dt,
            vec![w.nrows(), w.ncols()],
            matrix_bytes(&run.initial_weights),
        ));
        let a = self.model.output_weights();
        tensors.push((
            "model.output_weights".into(),
            dt,
            vec![a.len()],
            slice_bytes(a.as_slice()),
        ));
        if let Some(b) = &run.coefficients {
            tensors.push((
                "run.coefficients".into(),
                dt,
                vec![b.nrows(), b.ncols()],
                matrix_bytes(b),
            ));
        }
        // The trainer's optimizer updates one matrix (W or B).
        let opt_shape = match (
            state.tensors.as_slice(),
            state.tensors.first().map(|t| t.shape.as_slice()),
        ) {
            ([], _) => None,
            ([_], Some(&[r, c])) => Some((r, c)),
            (tensors, _) => {
                return Err(Error::Unsupported(format!(
                    "saving optimizer \"{}\" whose state holds {} tensors of shapes {:?}: a trainer's optimizer \
                     state is one matrix",
                    state.optimizer,
                    tensors.len(),
                    tensors.iter().map(|t| &t.shape).collect::<Vec<_>>()
                )))
            }
        };
        if let (Some((r, c)), Some(t)) = (opt_shape, state.tensors.first()) {
            for (name, buf) in &t.buffers {
                // Buffers are in storage (column-major) order: a column-major
                // r x c matrix is a row-major c x r one.
                let values: Vec<T> = buf.iter().map(|&v| T::cast(v)).collect();
                tensors.push((format!("optimizer.{name}"), dt, vec![c, r], slice_bytes(&values)));
            }
        }
        let h = &self.history;
        tensors.push((
            "history.losses".into(),
            Dtype::F64,
            vec![h.losses().len()],
            slice_bytes(h.losses()),
        ));
        tensors.push((
            "history.elapsed".into(),
            Dtype::F64,
            vec![h.elapsed().len()],
            slice_bytes(h.elapsed()),
        ));
        let diag: Vec<f64> = h
            .diagnostics()
            .iter()
            .flat_map(|d| {
                [
                    d.step as f64,
                    d.weight_distance,
                    d.max_neuron_distance,
                    d.activation_flip_fraction,
                    d.ntk_drift.unwrap_or(f64::NAN),
                    d.test_loss.unwrap_or(f64::NAN),
                    d.test_accuracy.unwrap_or(f64::NAN),
                ]
            })
            .collect();
        tensors.push((
            "history.diagnostics".into(),
            Dtype::F64,
            vec![h.diagnostics().len(), DIAGNOSTICS_COLUMNS],
            slice_bytes(&diag),
        ));

        let mut meta = HashMap::new();
        meta.insert("format".to_string(), FORMAT.to_string());
        meta.insert("version".to_string(), VERSION.to_string());
        meta.insert("dtype".to_string(), T::NAME.to_string());
        meta.insert("step".to_string(), self.step.to_string());
        meta.insert("parameterization".to_string(), run.parameterization.to_string());
        meta.insert("data_fingerprint".to_string(), format!("{:#018x}", run.fingerprint));
        meta.insert("optimizer".to_string(), state.optimizer.clone());
        meta.insert("optimizer.step".to_string(), state.step.to_string());
        meta.insert(
            "optimizer.shape".to_string(),
            opt_shape.map_or("none".to_string(), |(r, c)| format!("{r}x{c}")),
        );
        meta.insert(
            "optimizer.hyperparameters".to_string(),
            hyper_string(&state.hyperparameters),
        );
        meta.insert(
            "optimizer.buffers".to_string(),
            state
                .tensors
                .first()
                .map(|t| t.buffers.as_slice())
                .unwrap_or(&[])
                .iter()
                .map(|(n, _)| n.as_str())
                .collect::<Vec<_>>()
                .join(","),
        );
        let crc = crc_of(&tensors, &meta);
        meta.insert("crc32".to_string(), format!("{crc:#010x}"));

        let views: Vec<(String, TensorView<'_>)> = tensors
            .iter()
            .map(|(n, dt, shape, bytes)| {
                TensorView::new(*dt, shape.clone(), bytes)
                    .map(|v| (n.clone(), v))
                    .map_err(|e| bad(path, e.to_string()))
            })
            .collect::<Result<_>>()?;
        let bytes = safetensors::serialize(views, Some(meta)).map_err(|e| bad(path, e.to_string()))?;
        write_atomically(path, &bytes)
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
        let bytes = std::fs::read(path).map_err(|e| Error::io(path, e))?;
        let (_, metadata) =
            SafeTensors::read_metadata(&bytes).map_err(|e| bad(path, format!("not a safetensors file: {e}")))?;
        let st = SafeTensors::deserialize(&bytes).map_err(|e| bad(path, format!("not a safetensors file: {e}")))?;
        let meta = metadata.metadata().clone().unwrap_or_default();
        let get = |k: &str| {
            meta.get(k)
                .map(String::as_str)
                .ok_or_else(|| bad(path, format!("metadata lacks \"{k}\"")))
        };
        if get("format")? != FORMAT || get("version")? != VERSION {
            return Err(bad(path, format!("expected format {FORMAT} version {VERSION}")));
        }
        if get("dtype")? != T::NAME {
            return Err(bad(
                path,
                format!("dtype {} but this trainer computes in {}", get("dtype")?, T::NAME),
            ));
        }
        let parse_usize = |k: &str| -> Result<usize> {
            get(k)?
                .parse()
                .map_err(|_| bad(path, format!("metadata \"{k}\" is not a count")))
        };
        let step = parse_usize("step")?;

        // Every tensor, and the CRC over all of them.
        let mut tensors = Vec::new();
        for name in st.names() {
            let t = st.tensor(name).map_err(|e| bad(path, e.to_string()))?;
            tensors.push((name.to_string(), t.dtype(), t.shape().to_vec(), t.data().to_vec()));
        }
        let crc = format!("{:#010x}", crc_of(&tensors, &meta));
        if get("crc32")? != crc {
            return Err(bad(
                path,
                format!(
                    "CRC-32 mismatch (stored {}, computed {crc}): the file is corrupted",
                    get("crc32")?
                ),
            ));
        }
        let find = |name: &str, dtype: Dtype, shape: &[usize]| -> Result<&[u8]> {
            let t = tensors
                .iter()
                .find(|t| t.0 == name)
                .ok_or_else(|| bad(path, format!("tensor \"{name}\" missing")))?;
            if t.1 != dtype || t.2 != shape {
                return Err(bad(
                    path,
                    format!("tensor \"{name}\" is {:?} {:?}, expected {dtype:?} {shape:?}", t.1, t.2),
                ));
            }
            Ok(&t.3)
        };
        let (m, d) = (self.model.width(), self.model.input_dim());
        let shape_of = |name: &str| tensors.iter().find(|t| t.0 == name).map(|t| t.2.clone());
        if shape_of("model.weights") != Some(vec![m, d]) {
            return Err(bad(
                path,
                format!(
                    "model shape {:?} but this trainer's model is {m} x {d}",
                    shape_of("model.weights")
                ),
            ));
        }
        let dt = T::SAFETENSORS_DTYPE;
        let weights = read_matrix::<T>(find("model.weights", dt, &[m, d])?, m, d);
        let initial_weights = read_matrix::<T>(find("model.initial_weights", dt, &[m, d])?, m, d);
        let output_weights = DVector::from_vec(read_vec::<T>(find("model.output_weights", dt, &[m])?));
        let model = TwoLayerReLU::from_parts(weights, output_weights).map_err(|e| bad(path, format!("model: {e}")))?;
        TwoLayerReLU::from_parts(initial_weights.clone(), model.output_weights().clone())
            .map_err(|e| bad(path, format!("initial model: {e}")))?;

        let parameterization = match get("parameterization")? {
            "weight" => Parameterization::Weight,
            "kernel" => Parameterization::Kernel,
            other => return Err(bad(path, format!("unknown parameterization \"{other}\""))),
        };
        if self.options.parameterization != Parameterization::Auto && self.options.parameterization != parameterization
        {
            return Err(bad(
                path,
                format!(
                    "saved in {parameterization} space but this trainer is set to {} space",
                    self.options.parameterization
                ),
            ));
        }
        let coefficients = match (parameterization, shape_of("run.coefficients")) {
            (Parameterization::Kernel, Some(s)) if s.len() == 2 && s[0] == m => {
                Some(read_matrix::<T>(find("run.coefficients", dt, &s)?, s[0], s[1]))
            }
            (Parameterization::Weight, None) => None,
            (p, s) => return Err(bad(path, format!("{p} space with coefficients of shape {s:?}"))),
        };
        if parameterization == Parameterization::Kernel && !self.optimizer.is_linear() {
            return Err(bad(
                path,
                format!(
                    "saved in kernel space, which optimizer \"{}\" does not support (Optimizer::is_linear)",
                    self.optimizer.name()
                ),
            ));
        }
        if coefficients.as_ref().is_some_and(|b| b.iter().any(|v| !v.finite())) {
            return Err(bad(path, "run.coefficients hold NaN or infinite values"));
        }
        // The optimizer works on W (m x d) in weight space and on B (m x n) in kernel space.
        let param_shape = coefficients.as_ref().map_or((m, d), |b| b.shape());
        let fingerprint = u64::from_str_radix(get("data_fingerprint")?.trim_start_matches("0x"), 16)
            .map_err(|_| bad(path, "data_fingerprint is not a hexadecimal number"))?;

        // Optimizer state.
        let opt_shape = match get("optimizer.shape")? {
            "none" => None,
            s => {
                let (r, c) = s
                    .split_once('x')
                    .ok_or_else(|| bad(path, "optimizer.shape is not RxC"))?;
                let r = r.parse().map_err(|_| bad(path, "optimizer.shape is not RxC"))?;
                let c = c.parse().map_err(|_| bad(path, "optimizer.shape is not RxC"))?;
                Some((r, c))
            }
        };
        let mut hyperparameters = Vec::new();
        for item in get("optimizer.hyperparameters")?.split(',').filter(|s| !s.is_empty()) {
            let (n, v) = item
                .split_once('=')
                .ok_or_else(|| bad(path, "optimizer.hyperparameters is malformed"))?;
            let bits = u64::from_str_radix(v.trim_start_matches("0x"), 16)
                .map_err(|_| bad(path, "optimizer.hyperparameters is malformed"))?;
            hyperparameters.push((n.to_string(), f64::from_bits(bits)));
        }
        let mut buffers = Vec::new();
        if let Some((r, c)) = opt_shape {
            for name in get("optimizer.buffers")?.split(',').filter(|s| !s.is_empty()) {
                let values = read_vec::<T>(find(&format!("optimizer.{name}"), dt, &[c, r])?);
                buffers.push((name.to_string(), values.iter().map(|v| v.to_f64()).collect()));
            }
        }
        if opt_shape.is_some_and(|s| s != param_shape) {
            return Err(bad(
                path,
                format!(
                    "optimizer state of shape {opt_shape:?} for {parameterization}-space parameters {param_shape:?}"
                ),
            ));
        }
        let state = OptimizerState {
            optimizer: get("optimizer")?.to_string(),
            hyperparameters,
            step: get("optimizer.step")?
                .parse()
                .map_err(|_| bad(path, "optimizer.step is not a count"))?,
            precision: opt_shape.map(|_| T::PRECISION),
            tensors: opt_shape
                .map(|(r, c)| {
                    vec![TensorState {
                        shape: vec![r, c],
                        buffers,
                    }]
                })
                .unwrap_or_default(),
        };

        // History.
        let n_losses = shape_of("history.losses").and_then(|s| s.first().copied()).unwrap_or(0);
        let losses = read_vec::<f64>(find("history.losses", Dtype::F64, &[n_losses])?);
        let elapsed = read_vec::<f64>(find("history.elapsed", Dtype::F64, &[n_losses])?);
        let k = shape_of("history.diagnostics")
            .and_then(|s| s.first().copied())
            .unwrap_or(0);
        // Checkpoints of version 0.1 have the first 5 columns only.
        let columns = match shape_of("history.diagnostics").and_then(|s| s.get(1).copied()) {
            Some(5) => 5,
            _ => DIAGNOSTICS_COLUMNS,
        };
        let raw = read_vec::<f64>(find("history.diagnostics", Dtype::F64, &[k, columns])?);
        let optional = |c: &[f64], j: usize| c.get(j).copied().filter(|v| !v.is_nan());
        let diagnostics: Vec<Diagnostics> = raw
            .chunks_exact(columns)
            .map(|c| Diagnostics {
                step: c[0] as usize,
                weight_distance: c[1],
                max_neuron_distance: c[2],
                activation_flip_fraction: c[3],
                ntk_drift: optional(c, 4),
                test_loss: optional(c, 5),
                test_accuracy: optional(c, 6),
            })
            .collect();
        if losses.len() != step + 1 || diagnostics.iter().any(|d| d.step > step) {
            return Err(bad(
                path,
                format!("history of {} losses does not match step {step}", losses.len()),
            ));
        }

        // Everything is validated; the optimizer goes last since it can still
        // refuse. Its schedules must give the saved hyper-parameters at the
        // saved step, or the continued run would not be the saved one.
        let previous = self.optimizer.state();
        self.optimizer.set_state(&state)?;
        let own = self.optimizer.state().hyperparameters;
        let same = own.len() == state.hyperparameters.len()
            && own
                .iter()
                .zip(&state.hyperparameters)
                .all(|((n1, v1), (n2, v2))| n1 == n2 && v1.to_bits() == v2.to_bits());
        if !same {
            self.optimizer.set_state(&previous)?;
            return Err(bad(
                path,
                format!(
                    "the checkpoint's optimizer hyper-parameters at step {} are {:?}, this trainer's optimizer \
                     gives {own:?} there",
                    state.step, state.hyperparameters
                ),
            ));
        }
        self.model = model;
        self.step = step;
        self.history = History::from_parts(losses, elapsed, diagnostics);
        self.run = Some(RunState {
            parameterization,
            fingerprint,
            initial_weights,
            coefficients,
        });
        Ok(())
    }
}

fn read_vec<T: Float>(bytes: &[u8]) -> Vec<T> {
    bytes.chunks_exact(T::BYTES).map(T::from_le_slice).collect()
}

fn read_matrix<T: Float>(bytes: &[u8], rows: usize, cols: usize) -> DMatrix<T> {
    DMatrix::from_row_iterator(rows, cols, bytes.chunks_exact(T::BYTES).map(T::from_le_slice))
}

/// Writes `bytes` to a temporary file beside `path`, syncs it, and renames it
/// over `path`.
fn write_atomically(path: &Path, bytes: &[u8]) -> Result<()> {
    use std::io::Write;
    let dir = path
        .parent()
        .filter(|p| !p.as_os_str().is_empty())
        .unwrap_or(Path::new("."));
    let name = path
        .file_name()
        .ok_or_else(|| Error::invalid("path", path.display(), "a file path"))?;
    let tmp = dir.join(format!(".{}.tmp-{}", name.to_string_lossy(), std::process::id()));
    let result = (|| {
        let mut f = std::fs::File::create(&tmp)?;
        f.write_all(bytes)?;
        f.sync_all()?;
        std::fs::rename(&tmp, path)
    })();
    if let Err(e) = result {
        let _ = std::fs::remove_file(&tmp);
        return Err(Error::io(path, e));
    }
    Ok(())
}
