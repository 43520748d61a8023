//! Data-parallel scaling of a training step: a 784-512-512-10 ReLU MLP, global batch 512,
//! SGD, on `mpirun -np N` ranks (each on its 512/N rows) against one process.
//!
//! Run (one rayon thread per rank, as docs/distributed.md measures it):
//!
//! ```text
//! cargo build --release --features mpi --example mpi_scaling
//! RAYON_NUM_THREADS=1 target/release/examples/mpi_scaling                  # one process
//! RAYON_NUM_THREADS=1 mpirun -np 2 -x RAYON_NUM_THREADS target/release/examples/mpi_scaling
//! ```
//!
//! Options: `--steps N` (timed steps of each kind, default 40), `--batch ROWS` (the global
//! batch, default 512), `--bucket BYTES` (the fusion bucket, default 1 MiB).
//!
//! Each round times a distributed forward and backward pass (`DistributedGradientTape`,
//! with the all-reduce overlapping the backward pass), the same distributed pass with every
//! bucket started after the backward pass (`overlap(false)`), the SGD update (of the first),
//! and a local forward and backward pass on the same rows (a plain `GradientTape`), so all
//! kinds see the same machine; the all-reduce is the
//! difference of the two passes' medians. Rank 0 prints one line; throughput is global rows
//! per second of a step (one process: local pass plus update over the whole batch).

use std::error::Error;
use std::time::Instant;

use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use tapeflow::mpi::{self, DistributedGradientTape};
use tapeflow::prelude::*;

const LAYERS: [usize; 4] = [784, 512, 512, 10];

fn main() -> Result<(), Box<dyn Error>> {
    rayon::ThreadPoolBuilder::new().use_current_thread().build_global()?;
    let mut steps = 40usize;
    let mut batch = 512usize;
    let mut bucket = tapeflow::mpi::DEFAULT_BUCKET_BYTES;
    let mut args = std::env::args().skip(1);
    while let Some(arg) = args.next() {
        let value = args.next().ok_or(format!("{arg} needs a value"))?;
        match arg.as_str() {
            "--steps" => steps = value.parse()?,
            "--batch" => batch = value.parse()?,
            "--bucket" => bucket = value.parse()?,
            other => return Err(format!("unknown option {other} (use --steps N, --batch ROWS, --bucket BYTES)").into()),
        }
    }
    let world = mpi::init()?;
    let rows = world.shard(batch);
    let mut rng = ChaCha8Rng::seed_from_u64(7);
    let x: Vec<f32> = (0..batch * LAYERS[0]).map(|_| rng.random::<f32>()).collect();
    let labels: Vec<i32> = (0..batch).map(|_| rng.random_range(0..LAYERS[3] as i32)).collect();
    let x = Tensor::from_slice(&x[rows.start * LAYERS[0]..rows.end * LAYERS[0]], [rows.len(), LAYERS[0]])?;
    let labels = Tensor::from_slice(&labels[rows.clone()], [rows.len()])?;
    let mut vars = Vec::new();
    for (k, pair) in LAYERS.windows(2).enumerate() {
        vars.push(Variable::new(tapeflow::init::glorot_uniform([pair[0], pair[1]], DType::F32, k as u64)?));
        vars.push(Variable::new(Tensor::zeros([pair[1]], DType::F32)));
    }
    let vars: Vec<&Variable> = vars.iter().collect();
    world.broadcast_variables(&vars, 0)?;
    let parameters: usize = vars.iter().map(|v| v.shape().num_elements()).sum();
    let weight = world.size() as f32 / batch as f32;
    let loss_of = || -> Result<Tensor> {
        let mut h = x.clone();
        for (k, pair) in vars.chunks(2).enumerate() {
            h = (h.matmul(pair[0])? + pair[1])?;
            if k + 1 < vars.len() / 2 {
                h = h.relu()?;
            }
        }
        h.sparse_softmax_cross_entropy(&labels)?.sum(&[0], false)?.mul(weight)
    };
    let mut opt = Sgd::new(0.01);
    let (mut distributed, mut local, mut update) = (Vec::new(), Vec::new(), Vec::new());
    let mut after_pass = Vec::new();
    // Two warm-up rounds, then `steps` timed rounds of one step of each kind.
    for round in 0..steps + 2 {
        // Forward, backward and the all-reduce of the gradients, with the overlap and
        // without (the order alternates from round to round, so neither always goes first);
        // the update applies the first.
        let distributed_step = |overlap: bool| -> Result<(f64, Vec<Option<Tensor>>)> {
            let start = Instant::now();
            let tape = DistributedGradientTape::new(GradientTape::new(), &world).bucket_bytes(bucket).overlap(overlap);
            let loss = tape.record(loss_of)?;
            let grads = tape.gradients(&[&loss], &vars)?;
            Ok((start.elapsed().as_secs_f64(), grads))
        };
        let ((d, grads), (a, _)) = if round % 2 == 0 {
            let with = distributed_step(true)?;
            (with, distributed_step(false)?)
        } else {
            let without = distributed_step(false)?;
            (distributed_step(true)?, without)
        };
        // ... the update, the same on every rank ...
        let start = Instant::now();
        opt.apply_gradients(&grads, &vars)?;
        let u = start.elapsed().as_secs_f64();
        // ... and forward and backward alone, on the same rows (not applied).
        let start = Instant::now();
        let tape = GradientTape::new();
        let loss = tape.record(loss_of)?;
        let grads = tape.gradients(&[&loss], &vars)?;
        let l = start.elapsed().as_secs_f64();
        drop(grads);
        if round >= 2 {
            distributed.push(d);
            after_pass.push(a);
            local.push(l);
            update.push(u);
        }
    }
    let (d, l, u) = (median(&mut distributed), median(&mut local), median(&mut update));
    let a = median(&mut after_pass);
    // The all-reduce alone, without the ranks' differences in compute time: every rank
    // first meets the others in a one-element all-reduce, then sums one tensor of the
    // model's size.
    let flat = Tensor::ones([parameters], DType::F32);
    let mut alone = Vec::new();
    for _ in 0..steps {
        world.all_reduce_sum(&Tensor::ones([1], DType::F32))?;
        let start = Instant::now();
        world.all_reduce_mean(&flat)?;
        alone.push(start.elapsed().as_secs_f64());
    }
    let alone = median(&mut alone);
    if world.rank() == 0 {
        // One process: a plain training step; several: the distributed one.
        let step = if world.size() == 1 { l + u } else { d + u };
        println!(
            "ranks {} threads {} batch {batch} parameters {parameters} bucket {bucket}: step {:.2} ms \
             (forward+backward {:.2} ms, all-reduce {:.2} ms, update {:.2} ms; medians of {steps}), \
             all-reduce share {:.1}%, throughput {:.0} rows/s; all-reduce of {parameters} floats alone {:.2} ms; \
             without overlap: forward+backward+all-reduce {:.2} ms against {:.2} ms with it",
            world.size(),
            rayon::current_num_threads(),
            1e3 * step,
            1e3 * l,
            1e3 * (d - l),
            1e3 * u,
            100.0 * (d - l) / (d + u),
            batch as f64 / step,
            1e3 * alone,
            1e3 * a,
            1e3 * d,
        );
    }
    Ok(())
}

fn median(v: &mut [f64]) -> f64 {
    v.sort_by(f64::total_cmp);
    v[v.len() / 2]
}
