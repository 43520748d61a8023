//! Stochastic gradient descent with optional (Nesterov) momentum, as Keras' `SGD`.

use std::collections::HashMap;

use tapeflow_dtype::{Error, Result, TensorId};
use tapeflow_kernels::optim::{SgdStep, sgd_in_place};

use super::{Counters, OP, Optimizer, copy_state, pairs_to_update, state_slice, state_values, zeros_state};
use crate::runtime::Tensor;
use crate::trace;
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
#[derive(Debug)]
pub struct Sgd {
    momentum: f32,
    nesterov: bool,
    /// The step count and learning rate, in variables (a compiled step replays them).
    counters: Counters,
    /// Each variable's velocity, an f32 variable of its element count.
    velocities: HashMap<TensorId, Variable>,
}

impl Clone for Sgd {
    /// A copy with state of its own.
    fn clone(&self) -> Self {
        Sgd {
            momentum: self.momentum,
            nesterov: self.nesterov,
            counters: self.counters.deep_clone(),
            velocities: self.velocities.iter().map(|(k, v)| (*k, copy_state(v))).collect(),
        }
    }
}

impl Sgd {
    /// Plain gradient descent with this learning rate.
    pub fn new(learning_rate: f32) -> Self {
        Sgd { momentum: 0.0, nesterov: false, counters: Counters::new(learning_rate), velocities: HashMap::new() }
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
    pub fn velocity(&self, var: &Variable) -> Option<Vec<f32>> {
        self.velocities.get(&var.handle_id()).map(state_values)
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
        let (momentum, nesterov) = (self.momentum, self.nesterov);
        // State is made on a variable's first update (host work: when tracing, once).
        let mut targets = Vec::with_capacity(pairs.len());
        for &(grad, var) in &pairs {
            let velocity = (momentum != 0.0).then(|| {
                let n = grad.num_elements();
                self.velocities.entry(var.handle_id()).or_insert_with(|| zeros_state(n, "velocity")).clone()
            });
            targets.push((var.clone(), velocity));
        }
        let grads: Vec<&Tensor> = pairs.iter().map(|(g, _)| *g).collect();
        let mut written = vec![self.counters.iterations.clone()];
        for (var, velocity) in &targets {
            written.push(var.clone());
            written.extend(velocity.clone());
        }
        let writes: Vec<&Variable> = written.iter().collect();
        let (iterations, learning_rate) = (self.counters.iterations.clone(), self.counters.learning_rate.clone());
        let counters = Counters { iterations, learning_rate };
        trace::effect_n("SGDUpdate", &grads, &writes, move |grads| {
            let (t, learning_rate) = counters.this_step()?;
            let step = SgdStep { learning_rate, momentum, nesterov };
            for ((var, velocity), grad) in targets.iter().zip(grads) {
                match velocity {
                    Some(velocity) => velocity.update_in_place(|v| {
                        let v = state_slice(v)?;
                        var.update_in_place(|w| sgd_in_place(step, w, grad, v))
                    })?,
                    None => var.update_in_place(|w| sgd_in_place(step, w, grad, &mut []))?,
                }
            }
            counters.finish_step(t);
            Ok(())
        })
    }

    fn iterations(&self) -> u64 {
        self.counters.iterations()
    }

    fn learning_rate(&self) -> f32 {
        self.counters.learning_rate()
    }

    fn set_learning_rate(&mut self, learning_rate: f32) {
        self.counters.set_learning_rate(learning_rate);
    }
}
