//! `tapeflow::nn`, laid out as `tf.nn`: convolution, pooling, normalization and losses on
//! NHWC images (filters HWIO), each differentiable to any order.
//!
//! Windowed ops share [`Padding`] and TensorFlow's padding arithmetic
//! ([`tapeflow_kernels::AxisWindow`]).

mod dropout;
mod losses;
mod norm;
mod pool;

pub use dropout::{dropout, dropout_with};
pub use losses::{sigmoid_cross_entropy, softmax_cross_entropy};
pub use norm::{TensorArg, batch_normalization, bias_add, l2_loss, l2_normalize, moments};
pub use pool::{avg_pool2d, max_pool2d};
pub use tapeflow_kernels::Padding;

mod conv;

pub use conv::{conv2d, conv2d_transpose, depthwise_conv2d};
