//! A CI fixture for the failure path: rank 1 fails (returns an `Err`) before its first
//! collective while the other ranks go on to an all-reduce it will never join. The job
//! must end with a message naming both ranks (MPI_Abort), not hang: `.ci/run` runs
//! `mpirun -np 2 rank_failure` under `timeout` and checks the exit status and the message.

use tapeflow_dtype::{DType, Error, Result};
use tapeflow_tape::Tensor;

fn main() -> Result<()> {
    let world = tapeflow_mpi::init()?;
    // One collective every rank joins, so the failure comes after a healthy start.
    let total = world.all_reduce_sum(&Tensor::ones([4], DType::F32))?;
    assert_eq!(total.to_vec::<f32>()?, vec![world.size() as f32; 4]);
    if world.rank() == 1 {
        // The rank's own work fails: it returns, dropping its world (the leaving notice).
        return Err(Error::InvalidArgument { op: "rank_failure", reason: "rank 1 fails on purpose".into() });
    }
    // Rank 0 keeps training: this all-reduce never completes, and must not wait forever.
    world.all_reduce_sum(&Tensor::ones([1 << 16], DType::F32))?;
    eprintln!("rank {}: the all-reduce completed without rank 1", world.rank());
    Ok(())
}
