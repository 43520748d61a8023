//! tapeflow's autodiff: differentiable ops, [`Variable`], [`GradientTape`].
//!
//! Every op computes its value with `tapeflow-kernels` and records itself on each active
//! tape that watches one of its inputs. Backward rules are written with the same
//! differentiable ops, so a gradient computed while an outer tape records is itself
//! recorded: higher-order gradients to any order.

mod backward;
mod context;
mod custom;
mod forward;
mod function;
pub mod init;
mod jacobian;
pub mod nn;
mod operand;
mod operators;
pub mod ops;
pub mod optim;
pub mod random;
mod runtime;
mod tape;
mod trace;
mod variable;
pub mod weights;

pub use backward::{GradientOptions, GradientSink, UnconnectedGradients};
pub use custom::{Block, GradFn, custom_gradient, recompute_grad};
pub use forward::ForwardAccumulator;
pub use function::{Function, FunctionArgs, FunctionOutput, function};
pub use jacobian::JacobianOptions;
pub use operand::{GradSource, IntoOperand, Operand, Watchable};
pub use ops::{
    TensorMath, concat, constant, einsum, one_hot, scatter_nd, select, stack, stop_gradient, unsorted_segment_sum,
};
pub use optim::{Adam, AdamW, Optimizer, Sgd};
pub use runtime::{Autodiff, Tensor};
pub use tape::GradientTape;
pub use tapeflow_kernels::PadMode;
pub use variable::{Variable, VariableBuilder};
pub use weights::{
    SavedValue, assign_variables, from_safetensors_bytes, load_safetensors, load_variables, save_safetensors,
    to_safetensors_bytes,
};
