//! Adam and AdamW, as Keras' `Adam` and `AdamW`.

use std::collections::HashMap;

use tapeflow_dtype::{Result, TensorId};
use tapeflow_kernels::optim::{AdamStep, adam_in_place};

use super::{Counters, Optimizer, copy_state, pairs_to_update, state_slice, state_values, zeros_state};
use crate::runtime::Tensor;
use crate::trace;
use crate::variable::Variable;

/// The first and second moment estimates of one variable.
#[derive(Debug)]
struct Moments {
    m: Variable,
    v: Variable,
}

/// Keras' `Adam(learning_rate=0.001, beta_1=0.9, beta_2=0.999, epsilon=1e-7)`. At step
/// `t` (counted from 1 by the optimizer, for all variables together, as Keras'
/// `iterations + 1`):
///
/// ```text
/// α = lr · sqrt(1 − β₂ᵗ) / (1 − β₁ᵗ)
/// m += (g − m) · (1 − β₁)
/// v += (g² − v) · (1 − β₂)
/// w -= m · α / (sqrt(v) + ε)
/// ```
///
/// ```
/// use tapeflow_tape::{Adam, Optimizer};
///
/// let opt = Adam::new(1e-3).beta_1(0.9).beta_2(0.999).epsilon(1e-7);
/// assert_eq!(opt.learning_rate(), 1e-3);
/// ```
#[derive(Debug)]
pub struct Adam {
    beta_1: f32,
    beta_2: f32,
    epsilon: f32,
    /// The step count and learning rate, in variables (a compiled step replays them).
    counters: Counters,
    moments: HashMap<TensorId, Moments>,
}

impl Clone for Adam {
    /// A copy with state of its own.
    fn clone(&self) -> Self {
        Adam {
            beta_1: self.beta_1,
            beta_2: self.beta_2,
            epsilon: self.epsilon,
            counters: self.counters.deep_clone(),
            moments: self
                .moments
                .iter()
                .map(|(k, s)| (*k, Moments { m: copy_state(&s.m), v: copy_state(&s.v) }))
                .collect(),
        }
    }
}

impl Adam {
    /// Adam with this learning rate and Keras' other defaults.
    pub fn new(learning_rate: f32) -> Self {
        Adam {
            beta_1: 0.9,
            beta_2: 0.999,
            epsilon: 1e-7,
            counters: Counters::new(learning_rate),
            moments: HashMap::new(),
        }
    }

    /// The decay rate of the first moment (default 0.9).
    pub fn beta_1(mut self, beta_1: f32) -> Self {
        self.beta_1 = beta_1;
        self
    }

    /// The decay rate of the second moment (default 0.999).
    pub fn beta_2(mut self, beta_2: f32) -> Self {
        self.beta_2 = beta_2;
        self
    }

    /// The constant added to `sqrt(v)` (default 1e-7, Keras' value).
    pub fn epsilon(mut self, epsilon: f32) -> Self {
        self.epsilon = epsilon;
        self
    }

    /// The moments `(m, v)` kept for `var`, once it has been updated.
    pub fn moments(&self, var: &Variable) -> Option<(Vec<f32>, Vec<f32>)> {
        self.moments.get(&var.handle_id()).map(|s| (state_values(&s.m), state_values(&s.v)))
    }

    /// One step, with a decoupled weight decay for AdamW (0 for Adam).
    fn step(&mut self, grads: &[Option<Tensor>], vars: &[&Variable], weight_decay: f32) -> Result<()> {
        let pairs = pairs_to_update(grads, vars)?;
        if pairs.is_empty() {
            return Ok(());
        }
        // State is made on a variable's first update (host work: when tracing, once).
        let mut targets = Vec::with_capacity(pairs.len());
        for &(grad, var) in &pairs {
            let n = grad.num_elements();
            let state = self
                .moments
                .entry(var.handle_id())
                .or_insert_with(|| Moments { m: zeros_state(n, "m"), v: zeros_state(n, "v") });
            targets.push((var.clone(), state.m.clone(), state.v.clone()));
        }
        let grads: Vec<&Tensor> = pairs.iter().map(|(g, _)| *g).collect();
        let mut written = vec![self.counters.iterations.clone()];
        for (var, m, v) in &targets {
            written.extend([var.clone(), m.clone(), v.clone()]);
        }
        let writes: Vec<&Variable> = written.iter().collect();
        let (beta_1, beta_2, epsilon) = (self.beta_1, self.beta_2, self.epsilon);
        let (iterations, learning_rate) = (self.counters.iterations.clone(), self.counters.learning_rate.clone());
        let counters = Counters { iterations, learning_rate };
        let name = if weight_decay == 0.0 { "AdamUpdate" } else { "AdamWUpdate" };
        trace::effect_n(name, &grads, &writes, move |grads| {
            // The step number and rate are read here, so a replay reads their current values.
            let (t, lr) = counters.this_step()?;
            // Keras computes the bias correction in the variable's dtype from float32 betas.
            let tf = t as f32;
            let alpha = lr * (1.0 - beta_2.powf(tf)).sqrt() / (1.0 - beta_1.powf(tf));
            let step = AdamStep {
                learning_rate: lr,
                alpha,
                // Python computes `1 - beta` in double precision before the f32 multiply.
                one_minus_beta_1: (1.0 - f64::from(beta_1)) as f32,
                one_minus_beta_2: (1.0 - f64::from(beta_2)) as f32,
                epsilon,
                weight_decay,
            };
            for ((var, m, v), grad) in targets.iter().zip(grads) {
                m.update_in_place(|m| {
                    let m = state_slice(m)?;
                    v.update_in_place(|v| {
                        let v = state_slice(v)?;
                        var.update_in_place(|w| adam_in_place(step, w, grad, m, v))
                    })
                })?;
            }
            counters.finish_step(t);
            Ok(())
        })
    }
}

impl Default for Adam {
    /// Keras' defaults: learning rate 0.001.
    fn default() -> Self {
        Adam::new(1e-3)
    }
}

impl Optimizer for Adam {
    fn apply(&mut self, grads: &[Option<Tensor>], vars: &[&Variable]) -> Result<()> {
        self.step(grads, vars, 0.0)
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

/// Keras' `AdamW(learning_rate=0.001, weight_decay=0.004, beta_1=0.9, beta_2=0.999,
/// epsilon=1e-7)`: Adam with a decoupled weight decay `w -= w · wd · lr` applied to each
/// variable just before its Adam step (every variable given a gradient is decayed; Keras'
/// `exclude_from_weight_decay` has no counterpart yet).
///
/// ```
/// use tapeflow_tape::AdamW;
///
/// let opt = AdamW::new(1e-3).weight_decay(0.01);
/// assert_eq!(opt.weight_decay_rate(), 0.01);
/// ```
#[derive(Debug, Clone)]
pub struct AdamW {
    adam: Adam,
    weight_decay: f32,
}

impl AdamW {
    /// AdamW with this learning rate and Keras' other defaults (weight decay 0.004).
    pub fn new(learning_rate: f32) -> Self {
        AdamW { adam: Adam::new(learning_rate), weight_decay: 0.004 }
    }

    /// The weight decay rate (default 0.004).
    pub fn weight_decay(mut self, weight_decay: f32) -> Self {
        self.weight_decay = weight_decay;
        self
    }

    /// The weight decay rate.
    pub fn weight_decay_rate(&self) -> f32 {
        self.weight_decay
    }

    /// See [`Adam::beta_1`].
    pub fn beta_1(mut self, beta_1: f32) -> Self {
        self.adam = self.adam.beta_1(beta_1);
        self
    }

    /// See [`Adam::beta_2`].
    pub fn beta_2(mut self, beta_2: f32) -> Self {
        self.adam = self.adam.beta_2(beta_2);
        self
    }

    /// See [`Adam::epsilon`].
    pub fn epsilon(mut self, epsilon: f32) -> Self {
        self.adam = self.adam.epsilon(epsilon);
        self
    }

    /// See [`Adam::moments`].
    pub fn moments(&self, var: &Variable) -> Option<(Vec<f32>, Vec<f32>)> {
        self.adam.moments(var)
    }
}

impl Default for AdamW {
    /// Keras' defaults: learning rate 0.001, weight decay 0.004.
    fn default() -> Self {
        AdamW::new(1e-3)
    }
}

impl Optimizer for AdamW {
    fn apply(&mut self, grads: &[Option<Tensor>], vars: &[&Variable]) -> Result<()> {
        let weight_decay = self.weight_decay;
        self.adam.step(grads, vars, weight_decay)
    }

    fn iterations(&self) -> u64 {
        self.adam.counters.iterations()
    }

    fn learning_rate(&self) -> f32 {
        self.adam.counters.learning_rate()
    }

    fn set_learning_rate(&mut self, learning_rate: f32) {
        self.adam.counters.set_learning_rate(learning_rate);
    }
}
