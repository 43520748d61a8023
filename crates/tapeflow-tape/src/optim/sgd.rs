//! Stochastic gradient descent with optional (Nesterov) momentum, as Keras' `SGD`.

use std::collections::HashMap;

use tapeflow_dtype::{Error, Result, TensorId};
use tapeflow_kernels::optim::{SgdStep, sgd_in_place};

use super::{OP, Optimizer, pairs_to_update};
use crate::runtime::Tensor;
use crate::variable::Variable;

/// Keras' `SGD(learning_rate=0.01, momentum=0.0, nesterov=False)`:
///
/// - without momentum: `w -= lr · g`;
/// - with momentum: `velocity = momentum · velocity − lr · g`, then `w += velocity`;
/// - with Nesterov: the same velocity, then `w += momentum · velocity − lr · g`.
///
/// ```
/// use tapeflow_tape::{Optimizer, Sgd};
///
/// let opt = Sgd::new(0.1).momentum(0.9).nesterov(true); // SGD(0.1, momentum=0.9, nesterov=True)
/// assert_eq!(opt.learning_rate(), 0.1);
/// ```
#[derive(Debug, Clone)]
pub struct Sgd {
    learning_rate: f32,
    momentum: f32,
    nesterov: bool,
    iterations: u64,
    velocities: HashMap<TensorId, Vec<f32>>,
}

impl Sgd {
    /// Plain gradient descent with this learning rate.
    pub fn new(learning_rate: f32) -> Self {
        Sgd { learning_rate, momentum: 0.0, nesterov: false, iterations: 0, velocities: HashMap::new() }
    }

    /// The momentum factor, in `[0, 1]` (Keras refuses others; here the first
    /// `apply_gradients` returns `Err`).
    pub fn momentum(mut self, momentum: f32) -> Self {
        self.momentum = momentum;
        self
    }

    /// Nesterov momentum (meaningful with a nonzero momentum).
    pub fn nesterov(mut self, nesterov: bool) -> Self {
        self.nesterov = nesterov;
        self
    }

    /// The velocity kept for `var` (one f32 per element), once it has been updated with
    /// momentum; `None` before, or without momentum.
    pub fn velocity(&self, var: &Variable) -> Option<&[f32]> {
        self.velocities.get(&var.handle_id()).map(Vec::as_slice)
    }
}

impl Default for Sgd {
    /// Keras' defaults: learning rate 0.01, no momentum.
    fn default() -> Self {
        Sgd::new(0.01)
    }
}

impl Optimizer for Sgd {
    fn apply(&mut self, grads: &[Option<Tensor>], vars: &[&Variable]) -> Result<()> {
        if !(0.0..=1.0).contains(&self.momentum) {
            return Err(Error::InvalidArgument {
                op: OP,
                reason: format!("SGD momentum must be in [0, 1], got {}", self.momentum),
            });
        }
        let pairs = pairs_to_update(grads, vars)?;
        if pairs.is_empty() {
            return Ok(());
        }
        let step = SgdStep { learning_rate: self.learning_rate, momentum: self.momentum, nesterov: self.nesterov };
        for (grad, var) in pairs {
            let velocity: &mut [f32] = if step.momentum == 0.0 {
                &mut []
            } else {
                let n = grad.num_elements();
                self.velocities.entry(var.handle_id()).or_insert_with(|| vec![0.0; n])
            };
            var.update_in_place(|w| sgd_in_place(step, w, grad, velocity))?;
        }
        self.iterations += 1;
        Ok(())
    }

    fn iterations(&self) -> u64 {
        self.iterations
    }

    fn learning_rate(&self) -> f32 {
        self.learning_rate
    }

    fn set_learning_rate(&mut self, learning_rate: f32) {
        self.learning_rate = learning_rate;
    }
}
