//! Data-parallel training on MPI, Horovod's way: every process (rank) holds the model,
//! computes gradients on its share of each batch, and the ranks average the gradients by
//! MPI all-reduce before every update.
//!
//! ```no_run
//! # #[cfg(feature = "mpi")]
//! # fn main() -> tapeflow_dtype::Result<()> {
//! use tapeflow_mpi::{self as mpi, DistributedGradientTape};
//! use tapeflow_tape::{GradientTape, Optimizer, Sgd, Tensor, TensorMath, Variable};
//! use tapeflow_dtype::DType;
//!
//! let world = mpi::init()?; // mpirun -np 2 <program>
//! let w = Variable::new(tapeflow_tape::init::glorot_uniform([64, 10], DType::F32, world.rank() as u64)?);
//! world.broadcast_variables(&[&w], 0)?; // every rank starts from rank 0's weights
//! let x = Tensor::ones([world.shard(1437).len(), 64], DType::F32);
//! let tape = DistributedGradientTape::new(GradientTape::new(), &world);
//! let loss = tape.record(|| x.matmul(&w)?.square()?.mean_all())?;
//! let grads = tape.gradients(&[&loss], &[&w])?; // the mean over ranks
//! Sgd::new(0.1).apply_gradients(&grads, &[&w])?;
//! # Ok(()) }
//! # #[cfg(not(feature = "mpi"))]
//! # fn main() {}
//! ```
//!
//! The MPI parts need the cargo feature `mpi` (the system's MPI library, found through
//! `mpicc`, and libclang for the bindings). Without it the crate holds the parts that need
//! no MPI — shards, the fusion buffer's layout, the agreement on a call's signature — so
//! the default workspace build and its tests run on a machine without MPI.

// Without `mpi`, the layout and the agreement are used only by their unit tests: they are
// compiled (and tested) all the same, so that the default build checks them.
#![cfg_attr(not(feature = "mpi"), allow(dead_code))]

mod bucket;
mod meta;
mod shard;

#[cfg(feature = "mpi")]
mod collective;
#[cfg(feature = "mpi")]
mod stream;
#[cfg(feature = "mpi")]
mod tape;
#[cfg(feature = "mpi")]
mod world;

pub use bucket::DEFAULT_BUCKET_BYTES;
pub use shard::shard_range;
#[cfg(feature = "mpi")]
pub use tape::DistributedGradientTape;
#[cfg(feature = "mpi")]
pub use world::{World, init};
