//! Training-step workloads (forward, backward, SGD update), shared by `benches/train.rs`
//! and `examples/perf_report.rs`. The including crate also includes
//! `examples/common/digits.rs` as `crate::digits` (the data loader).

use tapeflow::prelude::*;
use tapeflow::{Optimizer, Sgd, init};

/// A ReLU MLP with a softmax cross-entropy loss, its batch and its optimizer.
pub struct TrainStep {
    layers: Vec<(Variable, Variable)>,
    x: Tensor,
    labels: Tensor,
    opt: Sgd,
}

impl TrainStep {
    /// Layers `sizes[0] → sizes[1] → …` (Glorot-uniform weights, zero biases) on `x`
    /// `[batch, sizes[0]]` with int32 `labels` `[batch]`.
    pub fn new(sizes: &[usize], x: Tensor, labels: Tensor) -> Result<Self> {
        let layers = sizes
            .windows(2)
            .enumerate()
            .map(|(i, pair)| {
                let w = init::glorot_uniform([pair[0], pair[1]], DType::F32, i as u64)?;
                Ok((Variable::new(w), Variable::new(init::zeros([pair[1]], DType::F32))))
            })
            .collect::<Result<Vec<_>>>()?;
        Ok(TrainStep { layers, x, labels, opt: Sgd::new(0.1) })
    }

    /// The 64-128-10 digits model on the full training split (1437 images).
    pub fn digits() -> std::result::Result<Self, Box<dyn std::error::Error>> {
        let (train, _) = crate::digits::load(crate::digits::default_path())?;
        let (x, labels) = train.all()?;
        Ok(Self::new(&[crate::digits::FEATURES, crate::digits::HIDDEN, crate::digits::CLASSES], x, labels)?)
    }

    /// `sizes` on a synthetic batch of `batch` rows (deterministic inputs in [-1, 1]).
    pub fn synthetic(sizes: &[usize], batch: usize) -> Result<Self> {
        let (inputs, classes) = (sizes[0], sizes[sizes.len() - 1]);
        let values = (0..batch * inputs).map(|i| ((i * 2654435761) % 2001) as f32 / 1000.0 - 1.0).collect::<Vec<_>>();
        let x = Tensor::from_vec(values, [batch, inputs])?;
        let labels = Tensor::from_vec((0..batch).map(|i| ((i * 7) % classes) as i32).collect::<Vec<_>>(), [batch])?;
        Self::new(sizes, x, labels)
    }

    /// Multiply-adds of one step: forward (m·k·n per layer), then the weight gradients of
    /// every layer and the input gradients of all but the first.
    pub fn multiply_adds(&self) -> f64 {
        let batch = self.x.dims()[0] as f64;
        let per_layer: Vec<f64> = self.layers.iter().map(|(w, _)| batch * w.shape().num_elements() as f64).collect();
        let first = per_layer.first().copied().unwrap_or(0.0);
        3.0 * per_layer.iter().sum::<f64>() - first
    }

    /// One step: forward, gradients of the mean loss, SGD update; returns the loss.
    pub fn step(&mut self) -> Result<f32> {
        self.loss_step()?.to_scalar::<f32>()
    }

    /// [`step`](Self::step) returning the loss as a tensor (what a compiled step returns:
    /// its value is read after the call).
    pub fn loss_step(&mut self) -> Result<Tensor> {
        let tape = GradientTape::new();
        let loss = tape.record(|| {
            let mut h = self.x.clone();
            for (i, (w, b)) in self.layers.iter().enumerate() {
                h = (h.matmul(w)? + b)?;
                if i + 1 < self.layers.len() {
                    h = h.relu()?;
                }
            }
            h.sparse_softmax_cross_entropy(&self.labels)?.mean_all()
        })?;
        let vars: Vec<&Variable> = self.layers.iter().flat_map(|(w, b)| [w, b]).collect();
        let grads = tape.gradients(&[&loss], &vars)?;
        self.opt.apply_gradients(&grads, &vars)?;
        Ok(loss)
    }
}
