//! # tapeflow
//!
//! TensorFlow's `GradientTape` autodiff for Rust, on a SIMD, multithreaded CPU tensor
//! runtime. Write `use tapeflow::prelude::*;` and port TensorFlow code line by line:
//!
//! ```
//! use tapeflow::prelude::*;
//!
//! # fn main() -> Result<()> {
//! let x = Variable::new(20.0);
//! let tape = GradientTape::new();
//! let y = tape.record(|| x.pow(2.0))?;               // y = x²
//! let dy_dx = tape.gradient(&y, &x)?.unwrap();        // 2x = 40
//! println!("{dy_dx}");                                // Tensor(40.0, shape=(), dtype=float32)
//! assert_eq!(dy_dx.to_scalar::<f32>()?, 40.0);
//! # Ok(()) }
//! ```
//!
//! This package is a facade: values live in `tapeflow-dtype`, kernels in
//! `tapeflow-kernels`, autodiff in `tapeflow-tape`, data-parallel training on MPI in
//! `tapeflow-mpi` (feature `mpi`).

pub use tapeflow_dtype::{DType, Element, Error, Result, Shape, Storage, TensorId, f16};
pub use tapeflow_tape::{
    Adam, AdamW, Autodiff, Block, ForwardAccumulator, GradFn, GradSource, GradientOptions, GradientSink, GradientTape,
    IntoOperand, JacobianOptions, Operand, Optimizer, SavedValue, Sgd, Tensor, TensorMath, UnconnectedGradients,
    Variable, VariableBuilder, Watchable, assign_variables, concat, constant, from_safetensors_bytes, init,
    load_safetensors, load_variables, nn, ops, optim, save_safetensors, select, stop_gradient, to_safetensors_bytes,
    weights,
};
pub use tapeflow_tape::{Function, FunctionArgs, FunctionOutput, function, random};
pub use tapeflow_tape::{PadMode, einsum, one_hot, scatter_nd, stack, unsorted_segment_sum};
pub use tapeflow_tape::{custom_gradient, recompute_grad};

// The README's examples run as doctests.
#[doc = include_str!("../README.md")]
#[cfg(doctest)]
pub struct ReadmeDoctests;

// Every Rust block of the guide for TensorFlow users runs as a doctest.
#[doc = include_str!("../docs/tensorflow-users.md")]
#[cfg(doctest)]
pub struct TensorflowUsersDoctests;

// Every Rust block of the compiled-functions guide runs as a doctest.
#[doc = include_str!("../docs/function.md")]
#[cfg(doctest)]
pub struct FunctionDoctests;

/// The kernels, for users who want them without autodiff.
pub use tapeflow_kernels as kernels;

/// Data-parallel training on MPI (cargo feature `mpi`): `mpi::init()`, the world's
/// collectives and [`DistributedGradientTape`](tapeflow_mpi::DistributedGradientTape);
/// `docs/distributed.md` says how to run it.
#[cfg(feature = "mpi")]
pub use tapeflow_mpi as mpi;

/// Everything a program needs: `use tapeflow::prelude::*;`.
pub mod prelude {
    pub use crate::{
        Adam, AdamW, DType, Error, GradientOptions, GradientTape, JacobianOptions, Optimizer, Result, Sgd, Shape,
        Tensor, TensorMath, UnconnectedGradients, Variable, concat, constant, f16, select, stop_gradient,
    };
    pub use crate::{ForwardAccumulator, custom_gradient, recompute_grad};
    pub use crate::{PadMode, einsum, one_hot, scatter_nd, stack, unsorted_segment_sum};
}
