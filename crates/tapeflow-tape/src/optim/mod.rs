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

use tapeflow_dtype::{Error, Result};

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
