//! The typed record of a checkpoint, and its one encoding and decoding: save
//! builds a [`Checkpoint`] and encodes it; load decodes one, checks it
//! against the trainer, and applies it.

use std::collections::HashMap;
use std::path::Path;

use nalgebra::{DMatrix, DVector};
use safetensors::tensor::SafeTensors;

use super::codec::{bad, crc_of, serialize, Tensor, Tensors};
use crate::optim::TensorState;
use crate::record::{Diagnostics, History};
use crate::train::trainer::Space;
use crate::{Error, Float, OptimizerState, Result};

const FORMAT: &str = "ntk-momentum-checkpoint";
const VERSION: &str = "1";

/// Columns of `history.diagnostics`: step, weight distance, largest neuron
/// distance, activation flip fraction, NTK drift, test loss, test accuracy,
/// λ_min and λ_max of H(W_t) (NaN for an absent value). Files with the
/// first five or seven are read too.
const DIAGNOSTICS_COLUMNS: usize = 9;

/// Everything a checkpoint holds.
pub(super) struct Checkpoint<T: Float> {
    pub(super) step: usize,
    /// The run's coordinates (B_t in kernel space).
    pub(super) space: Space<T>,
    /// Fingerprint of the run's data.
    pub(super) fingerprint: u64,
    pub(super) weights: DMatrix<T>,
    pub(super) initial_weights: DMatrix<T>,
    pub(super) output_weights: DVector<T>,
    /// The optimizer's state: one matrix tensor (W's or B's), or none
    /// before the first step.
    pub(super) optimizer: OptimizerState,
    pub(super) history: History,
}

/// The shape (rows, columns) of the optimizer's one matrix tensor, if it has
/// taken a step.
fn optimizer_shape(state: &OptimizerState) -> Result<Option<(usize, usize)>> {
    match (
        state.tensors.as_slice(),
        state.tensors.first().map(|t| t.shape.as_slice()),
    ) {
        ([], _) => Ok(None),
        ([_], Some(&[r, c])) => Ok(Some((r, c))),
        (tensors, _) => Err(Error::Unsupported(format!(
            "saving optimizer \"{}\" whose state holds {} tensors of shapes {:?}: a trainer's optimizer state is one \
             matrix",
            state.optimizer,
            tensors.len(),
            tensors.iter().map(|t| &t.shape).collect::<Vec<_>>()
        ))),
    }
}

/// `name=0x<bits>,…` with the exact bit patterns of the values.
fn hyper_string(h: &[(String, f64)]) -> String {
    h.iter()
        .map(|(n, v)| format!("{n}={:#018x}", v.to_bits()))
        .collect::<Vec<_>>()
        .join(",")
}

impl<T: Float> Checkpoint<T> {
    /// The safetensors bytes of the checkpoint.
    pub(super) fn encode(&self, path: &Path) -> Result<Vec<u8>> {
        let opt_shape = optimizer_shape(&self.optimizer)?;
        let mut tensors = vec![
            Tensor::matrix("model.weights", &self.weights),
            Tensor::matrix("model.initial_weights", &self.initial_weights),
            Tensor::values(
                "model.output_weights",
                vec![self.output_weights.len()],
                self.output_weights.as_slice(),
            ),
        ];
        if let Space::Kernel { coefficients } = &self.space {
            tensors.push(Tensor::matrix("run.coefficients", coefficients));
        }
        let buffers = self.optimizer.tensors.first().map_or(&[][..], |t| t.buffers.as_slice());
        if let Some((r, c)) = opt_shape {
            for (name, buf) in buffers {
                // Buffers are in storage (column-major) order: a column-major
                // r x c matrix is a row-major c x r one.
                let values: Vec<T> = buf.iter().map(|&v| T::cast(v)).collect();
                tensors.push(Tensor::values(&format!("optimizer.{name}"), vec![c, r], &values));
            }
        }
        let h = &self.history;
        tensors.push(Tensor::values("history.losses", vec![h.losses().len()], h.losses()));
        tensors.push(Tensor::values("history.elapsed", vec![h.elapsed().len()], h.elapsed()));
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
                    d.ntk_lambda_min.unwrap_or(f64::NAN),
                    d.ntk_lambda_max.unwrap_or(f64::NAN),
                ]
            })
            .collect();
        tensors.push(Tensor::values(
            "history.diagnostics",
            vec![h.diagnostics().len(), DIAGNOSTICS_COLUMNS],
            &diag,
        ));
        let state = &self.optimizer;
        let buffer_names: Vec<&str> = buffers.iter().map(|(n, _)| n.as_str()).collect();
        let meta: HashMap<String, String> = [
            ("format", FORMAT.to_string()),
            ("version", VERSION.to_string()),
            ("dtype", T::NAME.to_string()),
            ("step", self.step.to_string()),
            ("parameterization", self.space.parameterization().to_string()),
            ("data_fingerprint", format!("{:#018x}", self.fingerprint)),
            ("optimizer", state.optimizer.clone()),
            ("optimizer.step", state.step.to_string()),
            (
                "optimizer.shape",
                opt_shape.map_or("none".to_string(), |(r, c)| format!("{r}x{c}")),
            ),
            ("optimizer.hyperparameters", hyper_string(&state.hyperparameters)),
            ("optimizer.buffers", buffer_names.join(",")),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_string(), v))
        .collect();
        serialize(&tensors, meta, path)
    }

    /// Decodes and checks a checkpoint on its own terms: format, version,
    /// dtype `T`, CRC, and shapes that agree with each other. Whether it
    /// fits a given trainer is the caller's check.
    pub(super) fn decode(bytes: &[u8], path: &Path) -> Result<Self> {
        let not_safetensors = |e: safetensors::SafeTensorError| bad(path, format!("not a safetensors file: {e}"));
        let (_, metadata) = SafeTensors::read_metadata(bytes).map_err(not_safetensors)?;
        let st = SafeTensors::deserialize(bytes).map_err(not_safetensors)?;
        let meta = Metadata {
            map: metadata.metadata().clone().unwrap_or_default(),
            path,
        };
        if meta.get("format")? != FORMAT || meta.get("version")? != VERSION {
            return Err(bad(path, format!("expected format {FORMAT} version {VERSION}")));
        }
        if meta.get("dtype")? != T::NAME {
            return Err(bad(
                path,
                format!("dtype {} but this trainer computes in {}", meta.get("dtype")?, T::NAME),
            ));
        }
        let tensors = Tensors::read(&st, path)?;
        let crc = format!("{:#010x}", crc_of(tensors.all(), &meta.map));
        if meta.get("crc32")? != crc {
            return Err(bad(
                path,
                format!(
                    "CRC-32 mismatch (stored {}, computed {crc}): the file is corrupted",
                    meta.get("crc32")?
                ),
            ));
        }
        let step = meta.count("step")?;
        let (m, d) = match tensors.shape("model.weights") {
            Some(&[m, d]) => (m, d),
            other => {
                return Err(bad(
                    path,
                    format!("model.weights of shape {other:?}, expected 2 dimensions"),
                ))
            }
        };
        let weights = tensors.matrix::<T>("model.weights", m, d)?;
        let initial_weights = tensors.matrix::<T>("model.initial_weights", m, d)?;
        let output_weights = DVector::from_vec(tensors.values::<T>("model.output_weights", &[m])?);
        let space = match (meta.get("parameterization")?, tensors.shape("run.coefficients")) {
            ("kernel", Some(&[r, n])) if r == m => Space::Kernel {
                coefficients: tensors.matrix::<T>("run.coefficients", m, n)?,
            },
            ("weight", None) => Space::Weight,
            (p, s) => {
                return Err(bad(
                    path,
                    format!("parameterization \"{p}\" with coefficients of shape {s:?}"),
                ))
            }
        };
        if let Space::Kernel { coefficients } = &space {
            if coefficients.iter().any(|v| !v.finite()) {
                return Err(bad(path, "run.coefficients hold NaN or infinite values"));
            }
        }
        let fingerprint = u64::from_str_radix(meta.get("data_fingerprint")?.trim_start_matches("0x"), 16)
            .map_err(|_| bad(path, "data_fingerprint is not a hexadecimal number"))?;
        let optimizer = meta.optimizer_state::<T>(&tensors, &space, (m, d))?;
        let history = read_history(&tensors, step, path)?;
        Ok(Checkpoint {
            step,
            space,
            fingerprint,
            weights,
            initial_weights,
            output_weights,
            optimizer,
            history,
        })
    }
}

/// The string metadata of a checkpoint, with typed accessors.
struct Metadata<'p> {
    map: HashMap<String, String>,
    path: &'p Path,
}

impl Metadata<'_> {
    fn get(&self, k: &str) -> Result<&str> {
        self.map
            .get(k)
            .map(String::as_str)
            .ok_or_else(|| bad(self.path, format!("metadata lacks \"{k}\"")))
    }

    fn count(&self, k: &str) -> Result<usize> {
        self.get(k)?
            .parse()
            .map_err(|_| bad(self.path, format!("metadata \"{k}\" is not a count")))
    }

    /// The optimizer's state, whose one tensor must have the shape of the
    /// run's parameters (W: m × d, or B: m × n).
    fn optimizer_state<T: Float>(
        &self,
        tensors: &Tensors<'_>,
        space: &Space<T>,
        md: (usize, usize),
    ) -> Result<OptimizerState> {
        let path = self.path;
        let malformed = |what: &str| bad(path, format!("{what} is malformed"));
        let shape = match self.get("optimizer.shape")? {
            "none" => None,
            s => {
                let (r, c) = s.split_once('x').ok_or_else(|| malformed("optimizer.shape"))?;
                let r: usize = r.parse().map_err(|_| malformed("optimizer.shape"))?;
                let c: usize = c.parse().map_err(|_| malformed("optimizer.shape"))?;
                Some((r, c))
            }
        };
        let params = match space {
            Space::Kernel { coefficients } => coefficients.shape(),
            Space::Weight => md,
        };
        if shape.is_some_and(|s| s != params) {
            return Err(bad(
                path,
                format!(
                    "optimizer state of shape {shape:?} for {}-space parameters {params:?}",
                    space.parameterization()
                ),
            ));
        }
        let mut hyperparameters = Vec::new();
        for item in self
            .get("optimizer.hyperparameters")?
            .split(',')
            .filter(|s| !s.is_empty())
        {
            let (n, v) = item
                .split_once('=')
                .ok_or_else(|| malformed("optimizer.hyperparameters"))?;
            let bits = u64::from_str_radix(v.trim_start_matches("0x"), 16)
                .map_err(|_| malformed("optimizer.hyperparameters"))?;
            hyperparameters.push((n.to_string(), f64::from_bits(bits)));
        }
        let mut tensor_states = Vec::new();
        if let Some((r, c)) = shape {
            let mut buffers = Vec::new();
            for name in self.get("optimizer.buffers")?.split(',').filter(|s| !s.is_empty()) {
                let values = tensors.values::<T>(&format!("optimizer.{name}"), &[c, r])?;
                buffers.push((name.to_string(), values.iter().map(|v| v.to_f64()).collect()));
            }
            tensor_states.push(TensorState {
                shape: vec![r, c],
                buffers,
            });
        }
        Ok(OptimizerState {
            optimizer: self.get("optimizer")?.to_string(),
            hyperparameters,
            step: self
                .get("optimizer.step")?
                .parse()
                .map_err(|_| malformed("optimizer.step"))?,
            precision: shape.map(|_| T::PRECISION),
            tensors: tensor_states,
        })
    }
}

/// Losses, times and diagnostics, which must end at `step`.
fn read_history(tensors: &Tensors<'_>, step: usize, path: &Path) -> Result<History> {
    let n_losses = tensors
        .shape("history.losses")
        .and_then(|s| s.first().copied())
        .unwrap_or(0);
    let losses = tensors.values::<f64>("history.losses", &[n_losses])?;
    let elapsed = tensors.values::<f64>("history.elapsed", &[n_losses])?;
    let (k, columns) = match tensors.shape("history.diagnostics") {
        // Older checkpoints have the first 5 or 7 columns only.
        Some(&[k, c @ (5 | 7)]) => (k, c),
        Some(&[k, _]) => (k, DIAGNOSTICS_COLUMNS),
        _ => (0, DIAGNOSTICS_COLUMNS),
    };
    let raw = tensors.values::<f64>("history.diagnostics", &[k, columns])?;
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
            ntk_lambda_min: optional(c, 7),
            ntk_lambda_max: optional(c, 8),
        })
        .collect();
    if losses.len() != step + 1 || diagnostics.iter().any(|d| d.step > step) {
        return Err(bad(
            path,
            format!("history of {} losses does not match step {step}", losses.len()),
        ));
    }
    Ok(History::from_parts(losses, elapsed, diagnostics))
}
