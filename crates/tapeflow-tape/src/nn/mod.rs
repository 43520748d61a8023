//! `tapeflow::nn`, laid out as `tf.nn`: convolution, pooling, normalization and losses on
//! NHWC images (filters HWIO), each differentiable to any order.
//!
//! Windowed ops share [`Padding`] and TensorFlow's padding arithmetic
//! ([`tapeflow_kernels::AxisWindow`]).

pub use tapeflow_kernels::Padding;

mod conv;

pub use conv::{conv2d, conv2d_transpose, depthwise_conv2d};
