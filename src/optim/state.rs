//! Optimizer state: what an optimizer remembers between steps, readable and
//! restorable, and the bookkeeping the built-in optimizers share.

use std::any::Any;

use super::params::{Parameters, ParametersMut, Shape};
use crate::checks::{first_non_finite, scan_pair, PairScan};
use crate::{Error, Float, Precision, Result};

/// The complete state of an optimizer: enough to continue a run exactly.
///
/// With the feature `nalgebra` (part of the default `full`), `approx`'s
/// `AbsDiffEq` and `RelativeEq` compare two states: names, step, precision,
/// shapes and buffer names exactly, values within the tolerance.
///
/// Buffers are stored as `f64` whatever the parameters' float type: `f32`
/// values convert to `f64` and back exactly, so a state read from an `f32`
/// run restores it bit for bit.
#[derive(Clone, Debug, PartialEq)]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
#[non_exhaustive]
pub struct OptimizerState {
    /// The optimizer's name, e.g. `"nesterov"`.
    pub optimizer: String,
    /// The hyper-parameter values the next step would use, by name (a record
    /// for the reader: [`crate::Optimizer::set_state`] does not compare them,
    /// so an optimizer rebuilt with another step size keeps its velocity).
    pub hyperparameters: Vec<(String, f64)>,
    /// Steps taken since construction or the last reset.
    pub step: u64,
    /// The float type fixed by the first step (`None` before it).
    pub precision: Option<Precision>,
    /// One entry per parameter tensor, in the set's order (empty before the
    /// first step).
    pub tensors: Vec<TensorState>,
}

impl OptimizerState {
    /// A state from its parts (what a user optimizer returns from
    /// [`crate::Optimizer::state`]; the built-in ones check it in
    /// `set_state`).
    pub fn new(
        optimizer: impl Into<String>,
        hyperparameters: Vec<(String, f64)>,
        step: u64,
        precision: Option<Precision>,
        tensors: Vec<TensorState>,
    ) -> Self {
        OptimizerState {
            optimizer: optimizer.into(),
            hyperparameters,
            step,
            precision,
            tensors,
        }
    }

    /// The state of optimizer `optimizer` before its first step: no
    /// hyper-parameters recorded, step 0, no tensors (what a stateless user
    /// optimizer returns from [`crate::Optimizer::state`]).
    pub fn empty(optimizer: impl Into<String>) -> Self {
        OptimizerState {
            optimizer: optimizer.into(),
            hyperparameters: Vec::new(),
            step: 0,
            precision: None,
            tensors: Vec::new(),
        }
    }
}

/// The state an optimizer keeps for one parameter tensor.
#[derive(Clone, Debug, PartialEq)]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
#[non_exhaustive]
pub struct TensorState {
    /// The tensor's shape, fixed by the first step.
    pub shape: Vec<usize>,
    /// Named buffers (e.g. `"velocity"`, `"previous_gradient"`), each with
    /// as many entries as the shape declares, in storage order.
    pub buffers: Vec<(String, Vec<f64>)>,
}

impl TensorState {
    /// One tensor's state: its shape and named buffers.
    pub fn new(shape: Vec<usize>, buffers: Vec<(String, Vec<f64>)>) -> Self {
        TensorState { shape, buffers }
    }
}

// Names, steps, precision and shapes equal; hyper-parameter values and
// buffer entries within the tolerance.
#[cfg(feature = "nalgebra")]
crate::float::approx_record!(OptimizerState, |a, b, same| {
    let names = |s: &OptimizerState| s.hyperparameters.iter().map(|(n, _)| n.clone()).collect::<Vec<_>>();
    let values = |s: &OptimizerState| s.hyperparameters.iter().map(|(_, v)| *v).collect::<Vec<_>>();
    a.optimizer == b.optimizer
        && a.step == b.step
        && a.precision == b.precision
        && names(a) == names(b)
        && same(&values(a), &values(b))
        && a.tensors.len() == b.tensors.len()
        && a.tensors.iter().zip(&b.tensors).all(|(x, y)| {
            x.shape == y.shape
                && x.buffers.len() == y.buffers.len()
                && x.buffers
                    .iter()
                    .zip(&y.buffers)
                    .all(|((n, u), (m, v))| n == m && same(u, v))
        })
});

/// Per-tensor state of the built-in optimizers.
#[derive(Clone, Debug)]
pub(crate) struct Slot<T> {
    pub(crate) shape: Shape,
    pub(crate) buffers: Vec<Vec<T>>,
}

#[derive(Clone, Debug)]
enum Store {
    Empty,
    F32(Vec<Slot<f32>>),
    F64(Vec<Slot<f64>>),
}

impl Store {
    fn precision(&self) -> Option<Precision> {
        match self {
            Store::Empty => None,
            Store::F32(_) => Some(Precision::F32),
            Store::F64(_) => Some(Precision::F64),
        }
    }

    fn slots<T: Float>(&self) -> Option<&Vec<Slot<T>>> {
        match self {
            Store::Empty => None,
            Store::F32(v) => (v as &dyn Any).downcast_ref(),
            Store::F64(v) => (v as &dyn Any).downcast_ref(),
        }
    }

    fn slots_mut<T: Float>(&mut self) -> Option<&mut Vec<Slot<T>>> {
        match self {
            Store::Empty => None,
            Store::F32(v) => (v as &mut dyn Any).downcast_mut(),
            Store::F64(v) => (v as &mut dyn Any).downcast_mut(),
        }
    }

    fn of<T: Float>(slots: Vec<Slot<T>>) -> Store {
        let mut slots = Some(slots);
        let any = &mut slots as &mut dyn Any;
        if let Some(s) = any.downcast_mut::<Option<Vec<Slot<f32>>>>() {
            return Store::F32(s.take().unwrap_or_default());
        }
        match any.downcast_mut::<Option<Vec<Slot<f64>>>>() {
            Some(s) => Store::F64(s.take().unwrap_or_default()),
            None => Store::Empty,
        }
    }
}

/// Bookkeeping shared by the built-in optimizers: the step count and, per
/// parameter tensor, its shape and named buffers, allocated at the first
/// step in that step's float type.
#[derive(Clone, Debug)]
pub(crate) struct Core {
    step: u64,
    buffer_names: &'static [&'static str],
    store: Store,
    /// Whether a step checks parameters and gradient for NaN and infinities
    /// before it writes anything.
    check_finite: bool,
    /// Upper bounds on max |entry| of each state buffer over all tensors
    /// (∞: unknown, e.g. after an unchecked step), for the overflow guard.
    bounds: [f64; 2],
}

/// The error for the first non-finite entry found by [`scan_pair`]`(g, p)`
/// in tensor `index` of `count`.
fn non_finite_error<T: Float>(index: usize, count: usize, found: PairScan, p: &[T], g: &[T]) -> Result<()> {
    match found.non_finite {
        None => Ok(()),
        Some((0, j)) => Err(Error::NonFinite {
            what: format!("gradient of {}", describe(index, count)),
            location: format!("entry {j} (storage order), value {}", g[j]),
        }),
        Some((_, j)) => Err(Error::NonFinite {
            what: describe(index, count),
            location: format!("entry {j} (storage order), value {}", p[j]),
        }),
    }
}

/// Runs `kernel` on copies of every tensor's parameters and state, block by
/// block, and returns the largest |entry| of each new state buffer, or the
/// error for the first entry the update would make non-finite (an
/// overflow, the inputs being finite). Writes nothing: the path taken when
/// the cheap bound cannot exclude an overflow.
fn dry_run<T, P, G, K>(params: &P, grad: &G, slots: &[Slot<T>], kernel: &K) -> Result<[f64; 2]>
where
    T: Float,
    P: Parameters<Scalar = T> + ?Sized,
    G: Parameters<Scalar = T> + ?Sized,
    K: Fn(usize, &mut [T], &[T], &mut [Vec<T>]),
{
    const BLOCK: usize = 4096;
    let count = slots.len();
    let mut maxima = [0.0f64; 2];
    let mut p_copy: Vec<T> = Vec::with_capacity(BLOCK);
    let mut b_copy: Vec<Vec<T>> = vec![Vec::with_capacity(BLOCK); slots.first().map_or(0, |s| s.buffers.len())];
    for (i, slot) in slots.iter().enumerate() {
        let (_, p) = params.tensor(i)?;
        let (_, g) = grad.tensor(i)?;
        for start in (0..p.len()).step_by(BLOCK) {
            let end = (start + BLOCK).min(p.len());
            p_copy.clear();
            p_copy.extend_from_slice(&p[start..end]);
            for (c, b) in b_copy.iter_mut().zip(&slot.buffers) {
                c.clear();
                c.extend_from_slice(&b[start..end]);
            }
            kernel(i, &mut p_copy, &g[start..end], &mut b_copy);
            let in_state = || {
                b_copy
                    .iter()
                    .enumerate()
                    .find_map(|(k, c)| c.iter().position(|x| !x.finite()).map(|j| (Some(k), j)))
            };
            let bad = p_copy
                .iter()
                .position(|x| !x.finite())
                .map(|j| (None, j))
                .or_else(in_state);
            if let Some((buffer, j)) = bad {
                let e = start + j;
                let result = match buffer {
                    None => format!("parameter {}", p_copy[j]),
                    Some(k) => format!("state buffer {k} {}", b_copy[k][j]),
                };
                return Err(Error::NonFinite {
                    what: format!(
                        "update of {} (it would overflow; nothing was changed)",
                        describe(i, count)
                    ),
                    location: format!(
                        "entry {e} (storage order): parameter {}, gradient {} give {result}",
                        p[e], g[e]
                    ),
                });
            }
            for (m, c) in maxima.iter_mut().zip(&b_copy) {
                *m = c.iter().fold(*m, |m, x| m.max(x.to_f64().abs()));
            }
        }
    }
    Ok(maxima)
}

/// Whether `params` lends its tensors together
/// ([`ParametersMut::all_tensors_mut`]); if so, checks that the list matches
/// what it declares tensor by tensor (a user-written `all_tensors_mut` could
/// disagree) and, if `check_finite`, the entries of every tensor and
/// gradient in one parallel pass (one dispatch to the thread pool instead of
/// one per tensor). Returns the largest |entry| of the parameters and of
/// the gradient (0 when not checked), or `None` if the set cannot lend its
/// tensors together. Writes nothing.
fn check_together<P, G>(params: &mut P, grad: &G, check_finite: bool) -> Result<Option<(f64, f64)>>
where
    P: ParametersMut + ?Sized,
    G: Parameters<Scalar = P::Scalar> + ?Sized,
{
    use rayon::prelude::*;
    let count = params.tensor_count();
    // Shape and storage address of each tensor as `tensor(i)` lends it.
    let mut declared = Vec::with_capacity(count);
    for i in 0..count {
        let (shape, p) = params.tensor(i)?;
        declared.push((shape, p.as_ptr() as usize));
    }
    let Some(tensors) = params.all_tensors_mut()? else {
        return Ok(None);
    };
    if tensors.len() != count {
        return Err(Error::shape(
            "parameters (tensors lent by all_tensors_mut)",
            format!("{count} tensors, as tensor_count()"),
            format!("{} tensors", tensors.len()),
        ));
    }
    for (i, ((shape, p), (d, address))) in tensors.iter().zip(&declared).enumerate() {
        if shape != d || shape.entries() != Some(p.len()) || p.as_ptr() as usize != *address {
            return Err(Error::shape(
                format!("parameter tensor {i} as lent by all_tensors_mut"),
                format!("{d}, the storage tensor({i}) lends"),
                format!(
                    "{shape} with {} entries{}",
                    p.len(),
                    if p.as_ptr() as usize != *address {
                        " in other storage"
                    } else {
                        ""
                    }
                ),
            ));
        }
    }
    let mut maxima = (0.0f64, 0.0f64);
    if check_finite {
        let mut grads = Vec::with_capacity(count);
        for i in 0..count {
            grads.push(grad.tensor(i)?.1);
        }
        let scans: Vec<PairScan> = tensors
            .par_iter()
            .zip(&grads)
            .map(|((_, p), g)| scan_pair(g, p))
            .collect();
        for (i, (found, ((_, p), g))) in scans.iter().zip(tensors.iter().zip(&grads)).enumerate() {
            non_finite_error(i, count, *found, p, g)?;
            maxima = (maxima.0.max(found.max_abs.1), maxima.1.max(found.max_abs.0));
        }
    }
    Ok(Some(maxima))
}

/// The update of a set checked by [`check_together`]: `kernel` on every
/// tensor in one parallel pass.
fn update_together<T, P, G, K>(params: &mut P, grad: &G, slots: &mut [Slot<T>], kernel: K) -> Result<()>
where
    T: Float,
    P: ParametersMut<Scalar = T> + ?Sized,
    G: Parameters<Scalar = T> + ?Sized,
    K: Fn(usize, &mut [T], &[T], &mut [Vec<T>]) + Sync,
{
    use rayon::prelude::*;
    let mut grads = Vec::with_capacity(slots.len());
    for i in 0..slots.len() {
        grads.push(grad.tensor(i)?.1);
    }
    let Some(mut tensors) = params.all_tensors_mut()? else {
        return Err(Error::Unsupported(
            "a set that stopped lending its tensors together".into(),
        ));
    };
    let same = tensors.len() == slots.len()
        && tensors
            .iter()
            .zip(slots.iter())
            .all(|((_, p), s)| s.shape.entries() == Some(p.len()));
    if !same {
        return Err(Error::Unsupported(
            "a set whose all_tensors_mut lent other tensors than it had just declared".into(),
        ));
    }
    tensors
        .par_iter_mut()
        .zip(grads)
        .zip(slots)
        .enumerate()
        .for_each(|(i, (((_, p), g), slot))| kernel(i, p, g, &mut slot.buffers));
    Ok(())
}

fn describe(index: usize, count: usize) -> String {
    if count == 1 {
        "parameters".to_string()
    } else {
        format!("parameter tensor {index}")
    }
}

impl Core {
    pub(crate) fn new(buffer_names: &'static [&'static str]) -> Self {
        Core {
            step: 0,
            buffer_names,
            store: Store::Empty,
            check_finite: true,
            bounds: [0.0; 2],
        }
    }

    /// Steps taken since construction or the last reset.
    pub(crate) fn steps(&self) -> u64 {
        self.step
    }

    /// The float type fixed by the first step.
    pub(crate) fn precision(&self) -> Option<Precision> {
        self.store.precision()
    }

    /// Turns the finiteness check of every step on or off.
    pub(crate) fn set_check_finite(&mut self, check: bool) {
        self.check_finite = check;
    }

    /// Whether steps check finiteness.
    pub(crate) fn checks_finite(&self) -> bool {
        self.check_finite
    }

    /// Replaces the buffer names (a change of convention); forgets the state.
    pub(crate) fn set_buffer_names(&mut self, names: &'static [&'static str]) {
        self.buffer_names = names;
        self.reset();
    }

    /// Checks a step's inputs without changing anything: the same number of
    /// tensors in parameters and gradient, declared shapes that agree with
    /// the storage and with each other and with those of the first step,
    /// the float type of the first step, and finite entries.
    fn validate<P, G>(&self, params: &P, grad: &G, check_finite: bool) -> Result<(f64, f64)>
    where
        P: Parameters + ?Sized,
        G: Parameters<Scalar = P::Scalar> + ?Sized,
    {
        let count = params.tensor_count();
        if grad.tensor_count() != count {
            return Err(Error::shape(
                "gradient (number of tensors)",
                format!("{count} tensors, as the parameters"),
                format!("{} tensors", grad.tensor_count()),
            ));
        }
        if count == 0 {
            return Err(Error::invalid("parameters", "an empty set", "at least one tensor"));
        }
        if let Some(p) = self.store.precision() {
            if p != P::Scalar::PRECISION {
                return Err(Error::Unsupported(format!(
                    "a step on {} parameters with an optimizer whose state is {p} (fixed by its first step); \
                     call reset() to change the float type",
                    P::Scalar::PRECISION
                )));
            }
        }
        let slots = self.store.slots::<P::Scalar>();
        if let Some(slots) = slots {
            if slots.len() != count {
                return Err(Error::shape(
                    "parameters (number of tensors fixed by the first step; call reset() to change it)",
                    format!("{} tensors", slots.len()),
                    format!("{count} tensors"),
                ));
            }
        }
        // Messages are formatted on error only: a valid step allocates nothing.
        let what = |i: usize| describe(i, count);
        let mut maxima = (0.0f64, 0.0f64);
        for i in 0..count {
            let (ps, p) = params.tensor(i)?;
            let (gs, g) = grad.tensor(i)?;
            if ps.entries() != Some(p.len()) {
                return Err(storage_error(what(i), ps, p.len()));
            }
            if gs.entries() != Some(g.len()) {
                return Err(storage_error(format!("gradient of {}", what(i)), gs, g.len()));
            }
            if gs != ps {
                return Err(Error::shape(
                    format!("gradient of {}", what(i)),
                    ps.to_string(),
                    gs.to_string(),
                ));
            }
            if let Some(slot) = slots.map(|s| &s[i]) {
                if slot.shape != ps {
                    return Err(Error::shape(
                        format!("{} (shape fixed by the first step; call reset() to change it)", what(i)),
                        slot.shape.to_string(),
                        ps.to_string(),
                    ));
                }
            }
            if check_finite {
                // Shapes agree, so p and g have the same length.
                let found = scan_pair(g, p);
                non_finite_error(i, count, found, p, g)?;
                maxima = (maxima.0.max(found.max_abs.1), maxima.1.max(found.max_abs.0));
            }
        }
        Ok(maxima)
    }

    /// Validates a step, allocates the state at the first step (zeros,
    /// which realise θ_{−1} = θ_0 and g_{−1} = 0), then applies `kernel` to
    /// each tensor's index, parameters, gradient and buffers, and counts the
    /// step.
    ///
    /// A set of several tensors that can lend them together
    /// ([`ParametersMut::all_tensors_mut`]) is checked and updated in one
    /// parallel pass over all of them (two small lists of slices are
    /// allocated per step); otherwise the tensors are visited one at a time.
    ///
    /// With the finiteness check on, `growth(max|θ|, max|g|, bounds)` must
    /// turn the bounds on max |buffer| into those after the update and return
    /// a bound on max |θ_{t+1}| (the triangle inequality on the update
    /// formula). If every bound is below half the float type's largest
    /// value, no entry can overflow; otherwise the update is first evaluated
    /// on copies ([`dry_run`]), and an overflow is an error with nothing
    /// changed.
    pub(crate) fn apply<P, G, B, K>(&mut self, params: &mut P, grad: &G, growth: B, kernel: K) -> Result<()>
    where
        P: ParametersMut + ?Sized,
        G: Parameters<Scalar = P::Scalar> + ?Sized,
        B: Fn(f64, f64, &mut [f64; 2]) -> f64,
        K: Fn(usize, &mut [P::Scalar], &[P::Scalar], &mut [Vec<P::Scalar>]) + Sync,
    {
        self.validate(params, grad, false)?;
        let lent = if params.tensor_count() > 1 {
            check_together(params, grad, self.check_finite)?
        } else {
            None
        };
        let together = lent.is_some();
        let maxima = match lent {
            Some(m) => m,
            None if self.check_finite => self.validate(params, grad, true)?,
            None => (0.0, 0.0),
        };
        let was_empty = matches!(self.store, Store::Empty);
        if was_empty {
            let count = params.tensor_count();
            let mut slots = Vec::with_capacity(count);
            for i in 0..count {
                let (shape, p) = params.tensor(i)?;
                let buffers = self
                    .buffer_names
                    .iter()
                    .map(|_| vec![<P::Scalar as num_traits::Zero>::zero(); p.len()])
                    .collect();
                slots.push(Slot { shape, buffers });
            }
            self.store = Store::of(slots);
            self.bounds = [0.0; 2];
        }
        let Some(slots) = self.store.slots_mut::<P::Scalar>() else {
            return Err(Error::Unsupported("optimizer state of another float type".into()));
        };
        let mut next = [f64::INFINITY; 2];
        if self.check_finite {
            next = self.bounds;
            let limit = 0.5 * P::Scalar::MAX_FINITE;
            let theta = growth(maxima.0, maxima.1, &mut next);
            if !(theta <= limit && next.iter().all(|&b| b <= limit)) {
                match dry_run(params, grad, slots, &kernel) {
                    Ok(actual) => next = actual,
                    Err(e) => {
                        if was_empty {
                            self.store = Store::Empty;
                        }
                        return Err(e);
                    }
                }
            }
        }
        if together {
            update_together(params, grad, slots, kernel)?;
        } else {
            for (i, slot) in slots.iter_mut().enumerate() {
                let (_, p) = params.tensor_mut(i)?;
                let (_, g) = grad.tensor(i)?;
                kernel(i, p, g, &mut slot.buffers);
            }
        }
        self.bounds = next;
        self.step += 1;
        Ok(())
    }

    pub(crate) fn reset(&mut self) {
        self.step = 0;
        self.store = Store::Empty;
    }

    pub(crate) fn state(&self, name: &str, hyperparameters: Vec<(String, f64)>) -> OptimizerState {
        fn tensors<T: Float>(slots: &[Slot<T>], names: &[&str]) -> Vec<TensorState> {
            slots
                .iter()
                .map(|s| TensorState {
                    shape: s.shape.dims().to_vec(),
                    buffers: names
                        .iter()
                        .zip(&s.buffers)
                        .map(|(n, b)| (n.to_string(), b.iter().map(|v| v.to_f64()).collect()))
                        .collect(),
                })
                .collect()
        }
        OptimizerState {
            optimizer: name.to_string(),
            hyperparameters,
            step: self.step,
            precision: self.store.precision(),
            tensors: match &self.store {
                Store::Empty => Vec::new(),
                Store::F32(s) => tensors(s, self.buffer_names),
                Store::F64(s) => tensors(s, self.buffer_names),
            },
        }
    }

    /// Restores `state` after checking it against this optimizer's name and
    /// buffer names, the buffers against their shapes, and their entries for
    /// finiteness and (for `f32`) exact representability.
    pub(crate) fn set_state(&mut self, state: &OptimizerState, name: &str) -> Result<()> {
        if state.optimizer != name {
            return Err(Error::invalid(
                "state.optimizer",
                format!("\"{}\"", state.optimizer),
                format!("\"{name}\""),
            ));
        }
        let store = match state.precision {
            None => {
                if state.step != 0 || !state.tensors.is_empty() {
                    return Err(Error::invalid(
                        "state",
                        format!(
                            "step {} with {} tensors and no precision",
                            state.step,
                            state.tensors.len()
                        ),
                        "step 0 and no tensors before the first step",
                    ));
                }
                Store::Empty
            }
            Some(Precision::F32) => Store::F32(self.slots_from::<f32>(state)?),
            Some(Precision::F64) => Store::F64(self.slots_from::<f64>(state)?),
        };
        self.step = state.step;
        self.store = store;
        // The overflow guard's bounds, from the restored buffers.
        self.bounds = [0.0; 2];
        for t in &state.tensors {
            for (b, (_, values)) in self.bounds.iter_mut().zip(&t.buffers) {
                *b = values.iter().fold(*b, |m, v| m.max(v.abs()));
            }
        }
        Ok(())
    }

    fn slots_from<T: Float>(&self, state: &OptimizerState) -> Result<Vec<Slot<T>>> {
        if state.tensors.is_empty() {
            return Err(Error::invalid(
                "state.tensors",
                "no tensors",
                format!(
                    "one entry per parameter tensor for a state of precision {}",
                    T::PRECISION
                ),
            ));
        }
        let mut slots = Vec::with_capacity(state.tensors.len());
        for (i, t) in state.tensors.iter().enumerate() {
            let shape = Shape::new(&t.shape)?;
            let Some(len) = shape.entries() else {
                return Err(Error::shape(
                    format!("state tensor {i}"),
                    "a shape with a representable entry count",
                    shape.to_string(),
                ));
            };
            let names: Vec<&str> = t.buffers.iter().map(|(n, _)| n.as_str()).collect();
            if names != self.buffer_names {
                return Err(Error::invalid(
                    "state.tensors.buffers",
                    format!("{names:?} (tensor {i})"),
                    format!("{:?}", self.buffer_names),
                ));
            }
            let mut buffers = Vec::with_capacity(t.buffers.len());
            for (n, b) in &t.buffers {
                if b.len() != len {
                    return Err(Error::shape(
                        format!("state buffer {n} of tensor {i}"),
                        format!("{len} entries (shape {shape})"),
                        format!("{} entries", b.len()),
                    ));
                }
                if let Some(j) = first_non_finite(b) {
                    return Err(Error::NonFinite {
                        what: format!("state buffer {n} of tensor {i}"),
                        location: format!("entry {j}, value {}", b[j]),
                    });
                }
                let converted: Vec<T> = b.iter().map(|&v| T::cast(v)).collect();
                if let Some(j) = converted.iter().zip(b).position(|(c, &v)| c.to_f64() != v) {
                    return Err(Error::invalid(
                        "state buffer entry",
                        format!("{} (buffer {n} of tensor {i}, entry {j})", b[j]),
                        format!("a value exactly representable in {}", T::PRECISION),
                    ));
                }
                buffers.push(converted);
            }
            slots.push(Slot { shape, buffers });
        }
        Ok(slots)
    }
}

/// A tensor whose declared shape disagrees with its storage length.
fn storage_error(what: String, shape: Shape, len: usize) -> Error {
    Error::shape(
        format!("{what} (declared shape against storage)"),
        format!(
            "{} entries for shape {shape}",
            shape
                .entries()
                .map_or("an overflowing number of".to_string(), |e| e.to_string())
        ),
        format!("{len} entries in storage"),
    )
}
