//! Optimizers that apply gradients to [`Variable`]s in place, as Keras' do:
//! [`Sgd`] (with momentum and Nesterov), [`Adam`] and [`AdamW`].
//!
//! ```
//! use tapeflow_dtype::Result;
//! use tapeflow_tape::{GradientTape, Optimizer, Sgd, TensorMath, Variable};
//!
//! # fn main() -> Result<()> {
//! let w = Variable::new([1.0, -2.0]);
//! let mut opt = Sgd::new(0.1).momentum(0.9);
//! for _ in 0..3 {
//!     let tape = GradientTape::new();
//!     let loss = tape.record(|| w.square()?.sum_all())?;   // loss = Σ w²
//!     let grads = tape.gradients(&[&loss], &[&w])?;        // [Some(2w)]
//!     opt.apply_gradients(&grads, &[&w])?;
//! }
//! assert_eq!(opt.iterations(), 3);
//! assert!(w.value().to_vec::<f32>()?[0] < 1.0);
//! # Ok(()) }
//! ```
//!
//! Every update runs in f32: a float16 variable is widened, updated and rounded once, and
//! the optimizer's state (velocities, moments) is always f32. State is created on a
//! variable's first update and keyed by its handle, so one optimizer can serve variables
//! that appear in different calls. A call validates every gradient against its variable
//! before it changes anything: on `Err`, no variable, state or step count has moved.
//!
//! As in Keras, an optimizer updates whatever variables it is given: a variable built with
//! `trainable(false)` is updated too if it is passed with a gradient (tapes do not watch
//! such variables, so its gradient is normally `None` and it is skipped). State is kept
//! until the optimizer is dropped, also for variables that were dropped before it.

mod adam;
mod sgd;

use std::borrow::Borrow;

use tapeflow_dtype::{DType, Error, Result};

use crate::runtime::Tensor;
use crate::variable::Variable;

pub use adam::{Adam, AdamW};
pub use sgd::Sgd;

const OP: &str = "apply_gradients";

/// What every optimizer offers. `apply_gradients` takes what
/// [`GradientTape::gradients`](crate::GradientTape::gradients) returns, one entry per
/// variable, in the same order.
pub trait Optimizer: Send + Sync {
    /// Applies one step to `vars` (Keras' `optimizer.apply(grads, trainable_variables)`).
    /// Object-safe form of [`apply_gradients`](Self::apply_gradients).
    fn apply(&mut self, grads: &[Option<Tensor>], vars: &[&Variable]) -> Result<()>;

    /// Applies one step: each variable moves by its gradient. A `None` gradient skips its
    /// variable with a logged warning (as Keras warns and skips); all `None` is an `Err`;
    /// empty lists do nothing. Lengths, dtypes and shapes must match (`Err` naming
    /// `apply_gradients`, and nothing changes); int32 variables are refused.
    fn apply_gradients<V: Borrow<Variable>>(&mut self, grads: &[Option<Tensor>], vars: &[V]) -> Result<()>
    where
        Self: Sized,
    {
        let vars: Vec<&Variable> = vars.iter().map(Borrow::borrow).collect();
        self.apply(grads, &vars)
    }

    /// How many steps were applied (Keras' `optimizer.iterations`).
    fn iterations(&self) -> u64;

    /// The learning rate.
    fn learning_rate(&self) -> f32;

    /// Changes the learning rate for the following steps (a schedule, by hand).
    fn set_learning_rate(&mut self, learning_rate: f32);
}

/// The (gradient, variable) pairs a step updates, after checking the whole call. The
/// checks run before anything changes, so a refused call leaves everything as it was.
pub(crate) fn pairs_to_update<'a>(
    grads: &'a [Option<Tensor>],
    vars: &[&'a Variable],
) -> Result<Vec<(&'a Tensor, &'a Variable)>> {
    if grads.len() != vars.len() {
        return Err(Error::InvalidArgument {
            op: OP,
            reason: format!(
                "{} gradients for {} variables; one gradient (or None) per variable",
                grads.len(),
                vars.len()
            ),
        });
    }
    let mut pairs = Vec::with_capacity(vars.len());
    let mut missing = Vec::new();
    for (grad, &var) in grads.iter().zip(vars) {
        match grad {
            Some(grad) => pairs.push((grad, var)),
            None => missing.push(format!("'{}'", var.name())),
        }
    }
    if pairs.is_empty() && !missing.is_empty() {
        return Err(Error::InvalidArgument {
            op: OP,
            reason: format!("No gradients provided for any variable: [{}]", missing.join(", ")),
        });
    }
    for &(grad, var) in &pairs {
        check_pair(grad, var)?;
    }
    if !missing.is_empty() {
        log::warn!("Gradients do not exist for variables [{}] when minimizing the loss.", missing.join(", "));
    }
    Ok(pairs)
}

fn check_pair(grad: &Tensor, var: &Variable) -> Result<()> {
    let value = var.unrecorded_value();
    if !value.dtype().is_float() {
        return Err(Error::UnsupportedDType { op: OP, shape: value.shape().clone(), dtype: value.dtype() });
    }
    if grad.dtype() != value.dtype() {
        return Err(Error::dtype_mismatch(OP, grad, &value));
    }
    if grad.shape() != value.shape() {
        return Err(Error::shape_mismatch(
            OP,
            grad,
            &value,
            format!("the gradient of variable '{}' must have its shape", var.name()),
        ));
    }
    Ok(())
}

/// An optimizer's per-call state, kept in variables so that a compiled function
/// (`tapeflow::function`) replays it: the step count (int32, as Keras' `iterations`) and the
/// learning rate (float32; a new rate takes effect on the next call, traced or not).
#[derive(Debug)]
pub(crate) struct Counters {
    pub iterations: Variable,
    pub learning_rate: Variable,
}

impl Counters {
    pub fn new(learning_rate: f32) -> Self {
        Counters {
            iterations: state_variable(Tensor::scalar(0i32), "iterations"),
            learning_rate: state_variable(Tensor::scalar(learning_rate), "learning_rate"),
        }
    }

    /// The step count now (a host read: outside the program, like Keras' `iterations.numpy()`).
    pub fn iterations(&self) -> u64 {
        scalar_of::<i32>(&self.iterations).map_or(0, |t| u64::from(t as u32))
    }

    pub fn learning_rate(&self) -> f32 {
        scalar_of::<f32>(&self.learning_rate).unwrap_or(f32::NAN)
    }

    /// Sets the rate; inside a trace this is an assignment of the program (a constant
    /// rate for every replay, as TF's `optimizer.learning_rate.assign(x)` in a tf.function).
    pub fn set_learning_rate(&self, learning_rate: f32) {
        if let Err(e) = self.learning_rate.assign(learning_rate) {
            // A float32 scalar into a float32 scalar variable: cannot fail.
            log::error!("set_learning_rate: {e}");
        }
    }

    /// The step the update being made is (from 1) and its learning rate, read inside the
    /// update: a replay reads the variables' current values.
    pub fn this_step(&self) -> Result<(i32, f32)> {
        Ok((scalar_of::<i32>(&self.iterations)?.wrapping_add(1), scalar_of::<f32>(&self.learning_rate)?))
    }

    /// Counts the step made.
    pub fn finish_step(&self, t: i32) {
        self.iterations.restore(Tensor::scalar(t));
    }

    /// A copy with state of its own (cloning an optimizer copies its state, as before the
    /// state moved into variables).
    pub fn deep_clone(&self) -> Self {
        Counters {
            iterations: state_variable(self.iterations.current(), "iterations"),
            learning_rate: state_variable(self.learning_rate.current(), "learning_rate"),
        }
    }
}

/// A non-trainable variable holding optimizer state.
pub(crate) fn state_variable(value: Tensor, name: &str) -> Variable {
    // `build` can fail only converting to another dtype, and none is asked for.
    Variable::builder(value).trainable(false).name(name).build().expect("no dtype conversion is asked")
}

/// An f32 state vector of `n` zeros (velocities, moments).
pub(crate) fn zeros_state(n: usize, name: &str) -> Variable {
    state_variable(Tensor::zeros([n], DType::F32), name)
}

/// A copy of a state variable with storage of its own.
pub(crate) fn copy_state(var: &Variable) -> Variable {
    state_variable(var.current(), var.name())
}

fn scalar_of<T: tapeflow_dtype::Element>(var: &Variable) -> Result<T> {
    var.current().to_scalar::<T>()
}

/// The f32 elements of a state tensor to update in place (copied first when another handle
/// shares the buffer: a caller's clone, or a failed call's saved value).
pub(crate) fn state_slice(t: &mut Tensor) -> Result<&mut [f32]> {
    if t.unique_slice_mut::<f32>().is_none() {
        let copy = t.as_slice::<f32>()?.to_vec();
        *t = Tensor::from_vec(copy, t.shape().clone())?;
    }
    let refused = Error::UnsupportedDType { op: OP, shape: t.shape().clone(), dtype: t.dtype() };
    t.unique_slice_mut::<f32>().ok_or(refused)
}

/// A state vector's values, for inspection (tests, checkpoints).
pub(crate) fn state_values(var: &Variable) -> Vec<f32> {
    var.current().to_vec::<f32>().unwrap_or_default()
}
