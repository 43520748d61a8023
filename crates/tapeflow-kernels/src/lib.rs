//! tapeflow's CPU kernels and the forward ops on tensors built from them.
//!
//! Every op has a scalar [`reference`] implementation; the forward ops here validate their
//! operands (shapes, dtypes, axes: an `Err`, never a panic), dispatch on the dtype once, and
//! run the kernel. float16 is computed in f32 and rounded once per op; int32 wraps.
//! Nothing here knows about gradient tapes: the functions are generic over the tensor's
//! runtime parameter and never record anything.

pub mod arg;
pub mod conv;
pub mod elementwise;
pub mod fastmath;
pub mod gemm;
pub mod gemv;
pub mod grad;
pub mod indexing;
pub mod isa;
pub mod layout;
pub mod mask;
pub mod matmul;
pub mod nn;
pub mod optim;
pub mod parallel;
pub mod pool;
pub mod reduce;
pub mod reference;
pub mod scan;
pub mod simd;
pub mod slicing;
pub mod window;

pub use arg::{ArgOp, arg_reduce};
pub use elementwise::{
    BinaryOp, MaskedGrad, UnaryOp, binary, clip_by_value, leaky_relu, mask_grad, relu_grad, select, unary,
};
pub use indexing::{
    gather, gather_nd, gather_nd_lead, gather_or_zero, one_hot_indices, scatter_nd, scatter_nd_lead, segment_sum,
    unsorted_segment_sum,
};
pub use isa::{Isa, isa};
pub use layout::{broadcast_shapes, broadcast_to, concat, reshape, slice_axis, transpose};
pub use mask::{ClassifyOp, CompareOp, LogicalOp, any_all, classify, compare, logical, logical_not};
pub use matmul::matmul;
pub use nn::{
    log_softmax, one_hot, softmax, sparse_softmax_cross_entropy, sparse_softmax_cross_entropy_grad,
    sparse_softmax_cross_entropy_with_probs,
};
pub use pool::{
    MaxPoolTaps, PoolGeometry, avg_pool2d, avg_pool2d_grad, avg_pool2d_with, max_pool2d, max_pool2d_gather,
    max_pool2d_scatter,
};
pub use reduce::{ReduceOp, reduce, resolve_axes};
pub use scan::{ScanOp, scan};
pub use slicing::{AxisRange, PadMode, SlicePlan, mirror_fits, mirror_index, put, take};
pub use window::{AxisWindow, Padding};
