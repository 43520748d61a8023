//! tapeflow's values: [`DType`], [`Element`], [`Shape`], 64-byte aligned [`Storage`] and the
//! immutable [`Tensor`].
//!
//! This crate knows nothing of SIMD kernels or of autodiff. The arithmetic operators on
//! [`Tensor`] are routed through a [`Runtime`], the type parameter that the layer above
//! (`tapeflow-tape`) fills in so that every `a + b` can be recorded on a gradient tape.

mod display;
mod dtype;
mod error;
#[cfg(feature = "ndarray")]
mod interop;
mod literal;
mod operators;
mod shape;
mod storage;
mod tensor;

pub use dtype::{DType, Element};
pub use error::{Error, Result};
pub use half::f16;
pub use literal::{Literal, ScalarLiteral};
pub use operators::{ArithOp, Runtime};
pub use shape::Shape;
pub use storage::Storage;
pub use tensor::{SymbolicHook, Tensor, TensorId, set_symbolic_hook};
