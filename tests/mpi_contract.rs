//! The contract of `../shared/api/distributed.md`, verbatim, run by every rank under
//! `mpirun -np 2` (and as a world of one by `cargo test --features mpi`).

use tapeflow::mpi::{self, DistributedGradientTape};
use tapeflow::prelude::*;

// mpirun -np 2 target/release/examples/<example>
fn data_parallel_step() -> Result<()> {
    let world = mpi::init()?; // once per process; a second call is an Err
    let (rank, size) = (world.rank(), world.size());
    let w = Variable::new(tapeflow::init::glorot_uniform([64, 10], DType::F32, rank as u64)?);
    world.broadcast_variables(&[&w], 0)?; // every rank now holds rank 0's values
    let rows = world.shard(1437); // this rank's contiguous share of 0..1437
    let x = Tensor::ones([rows.len(), 64], DType::F32);
    let tape = DistributedGradientTape::new(GradientTape::new(), &world);
    let loss = tape.record(|| x.matmul(&w)?.square()?.mean_all())?;
    let grads = tape.gradients(&[&loss], &[&w])?; // the mean over ranks of each rank's gradients
    Sgd::new(0.1).apply_gradients(&grads, &[&w])?; // identical update on every rank
    let total = world.all_reduce_sum(&loss)?; // any tensor, summed over the ranks
    let _ = (size, total);
    Ok(())
}

fn main() {
    if let Err(error) = data_parallel_step() {
        eprintln!("the contract's data-parallel step failed: {error}");
        std::process::exit(1);
    }
    println!("contract: data-parallel step ok");
}
