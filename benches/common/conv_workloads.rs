//! The convolution and pooling workloads of issue 16, shared by `benches/kernels.rs` and
//! `examples/perf_report.rs` (included with `#[path]`): `tf.nn.conv2d` at batch 32,
//! 28 × 28 × 32 → 64 channels, 3 × 3, SAME, forward and forward + backward (the gradient of
//! the output's sum with respect to the input and the filters), as
//! `/work/shared/anchors/cnn_anchors.py` times TensorFlow; and `tf.nn.max_pool2d` on that
//! convolution's input shape (the CNN's pooling, 2 × 2 stride 2 VALID, and a 3 × 3 stride 2
//! SAME window whose windows overlap), forward and forward + backward.

use tapeflow::nn::{self, Padding};
use tapeflow::prelude::*;

/// `[batch, height, width, in]` and `[kh, kw, in, out]`.
pub const INPUT: [usize; 4] = [32, 28, 28, 32];
pub const FILTERS: [usize; 4] = [3, 3, 32, 64];

/// Multiply-adds × 2 of the forward pass: 0.92 GFLOP.
pub fn forward_flop() -> f64 {
    let [n, h, w, cin] = INPUT;
    let [kh, kw, _, cout] = FILTERS;
    2.0 * (n * h * w * kh * kw * cin * cout) as f64
}

/// The backward pass is two products of the forward's size (input and filter gradients).
pub fn forward_backward_flop() -> f64 {
    3.0 * forward_flop()
}

/// Deterministic values in [-scale, scale).
fn values(n: usize, salt: usize, scale: f32) -> Vec<f32> {
    (0..n).map(|i| (((i + salt).wrapping_mul(2654435761) % 2001) as f32 - 1000.0) * 1e-3 * scale).collect()
}

/// The inputs, built once.
pub struct ConvWorkload {
    /// The images (a variable, so that the tape watches it like the filters).
    pub x: Variable,
    pub w: Variable,
}

impl ConvWorkload {
    pub fn new() -> Result<Self> {
        let x = Variable::new(Tensor::from_vec(values(INPUT.iter().product(), 1, 1.0), INPUT)?);
        let w = Variable::new(Tensor::from_vec(values(FILTERS.iter().product(), 2, 0.1), FILTERS)?);
        Ok(ConvWorkload { x, w })
    }

    pub fn forward(&self) -> Result<Tensor> {
        nn::conv2d(&self.x, &self.w, [1, 1], Padding::Same, [1, 1])
    }

    /// The gradients of `sum(conv2d(x, w))` with respect to `x` and `w`.
    pub fn forward_backward(&self) -> Result<Vec<Option<Tensor>>> {
        let tape = GradientTape::new();
        let loss = tape.record(|| self.forward()?.sum_all())?;
        tape.gradients(&[&loss], &[&self.x, &self.w])
    }

    /// An output gradient `dy` of the forward's shape, for the two backward kernels alone.
    pub fn upstream(&self) -> Result<Tensor> {
        let [n, h, w, _] = INPUT;
        let dims = [n, h, w, FILTERS[3]];
        Tensor::from_vec(values(dims.iter().product(), 4, 1.0), dims)
    }

    /// `Conv2DBackpropInput` alone (the kernel, no tape): the input gradient for `dy`.
    pub fn input_gradient(&self, dy: &Tensor) -> Result<Tensor> {
        let input = tapeflow::Shape::from(INPUT.to_vec());
        tapeflow::kernels::conv::conv2d_backprop_input("conv2d_backprop_input", dy, &self.w.value(), &input, SPEC)
    }

    /// `Conv2DBackpropFilter` alone (the kernel, no tape): the filter gradient for `dy`.
    pub fn filter_gradient(&self, dy: &Tensor) -> Result<Tensor> {
        let filters = tapeflow::Shape::from(FILTERS.to_vec());
        tapeflow::kernels::conv::conv2d_backprop_filter(&self.x.value(), dy, &filters, SPEC)
    }
}

/// Stride 1, SAME, no dilation: the forward's arguments, for the kernels called directly.
const SPEC: tapeflow::kernels::conv::ConvSpec =
    tapeflow::kernels::conv::ConvSpec { strides: [1, 1], padding: Padding::Same, dilations: [1, 1] };

/// A max-pool window: name, ksize, strides, padding.
pub type PoolCase = (&'static str, [usize; 2], [usize; 2], Padding);

/// The pools timed on [`INPUT`]: the CNN's 2 × 2 stride 2 VALID (disjoint windows) and
/// 3 × 3 stride 2 SAME (overlapping windows, a padded border), both 28 × 28 → 14 × 14.
pub const POOLS: [PoolCase; 2] =
    [("2x2_s2_valid", [2, 2], [2, 2], Padding::Valid), ("3x3_s2_same", [3, 3], [2, 2], Padding::Same)];

/// The pooling inputs, built once.
pub struct PoolWorkload {
    pub x: Variable,
    pub ksize: [usize; 2],
    pub strides: [usize; 2],
    pub padding: Padding,
}

impl PoolWorkload {
    pub fn new((_, ksize, strides, padding): PoolCase) -> Result<Self> {
        let x = Variable::new(Tensor::from_vec(values(INPUT.iter().product(), 3, 1.0), INPUT)?);
        Ok(PoolWorkload { x, ksize, strides, padding })
    }

    /// Elements of the pooled output.
    fn output_len(&self) -> Result<usize> {
        Ok(self.forward()?.num_elements())
    }

    /// The least memory traffic of the forward pass in bytes: the input read once and the
    /// output written once (f32). The winning taps the pool keeps for its gradient are not
    /// counted: they are tapeflow's choice, not the op's.
    pub fn forward_bytes(&self) -> Result<f64> {
        let input: usize = INPUT.iter().product();
        Ok(4.0 * (input + self.output_len()?) as f64)
    }

    /// Forward + backward: the forward's traffic, then the output gradient read and the
    /// input gradient written.
    pub fn forward_backward_bytes(&self) -> Result<f64> {
        Ok(2.0 * self.forward_bytes()?)
    }

    pub fn forward(&self) -> Result<Tensor> {
        nn::max_pool2d(&self.x, self.ksize, self.strides, self.padding)
    }

    /// The gradient of `sum(max_pool2d(x))` with respect to `x`.
    pub fn forward_backward(&self) -> Result<Vec<Option<Tensor>>> {
        let tape = GradientTape::new();
        let loss = tape.record(|| self.forward()?.sum_all())?;
        tape.gradients(&[&loss], &[&self.x])
    }
}
