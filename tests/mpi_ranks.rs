//! `tapeflow::mpi` across ranks: run by `.ci/run` under `mpirun -np 2` and
//! `mpirun -np 3 --oversubscribe` (uneven shards), and by `cargo test --features mpi` as a
//! world of one. Every rank checks its own results; a failed check panics, which ends the
//! rank (and, through the world's exit protocol, the job) with a nonzero status.
//!
//! On rank 0 it prints `weights digest: <hex>`, a hash of the trained weights' bytes:
//! `.ci/run` runs the program twice and compares the digests (same run, same bits).

use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use tapeflow::mpi::{self, DistributedGradientTape, World};
use tapeflow::prelude::*;

fn main() -> Result<()> {
    let world = mpi::init()?;
    let (rank, size) = (world.rank(), world.size());
    assert!(mpi::init().is_err(), "a second init must be an Err");

    shards_cover_the_batch(&world)?;
    tensor_all_reduce(&world)?;
    broadcast_makes_every_rank_hold_the_roots_values(&world)?;
    gradients_match_the_single_process_full_batch(&world)?;
    none_gradients_are_agreed(&world)?;
    mismatched_calls_are_an_err_on_every_rank(&world)?;
    a_failure_on_one_rank_is_an_err_on_every_rank(&world)?;
    let digest = training_is_identical_on_every_rank_and_reproducible(&world)?;
    if rank == 0 {
        println!("weights digest: {digest:016x}");
    }
    println!("rank {rank} of {size}: every check passed");
    Ok(())
}

/// Rank 0's value of `tensor` (through `broadcast_variables`), compared bit for bit with
/// this rank's; true on every rank only if every rank holds the same bits.
fn same_bits_on_every_rank(world: &World, tensor: &Tensor) -> Result<bool> {
    let roots = Variable::new(tensor.clone());
    world.broadcast_variables(&[&roots], 0)?;
    let differs = bits(&roots.value())? != bits(tensor)?;
    let differing = world.all_reduce_sum(&Tensor::from_vec(vec![i32::from(differs)], [1])?)?;
    Ok(differing.to_vec::<i32>()?[0] == 0)
}

fn bits(t: &Tensor) -> Result<Vec<u32>> {
    Ok(t.to_vec::<f32>()?.iter().map(|v| v.to_bits()).collect())
}

fn shards_cover_the_batch(world: &World) -> Result<()> {
    for n in [0usize, 1, 5, 1437] {
        let rows = world.shard(n);
        let len = Tensor::from_vec(vec![rows.len() as i32], [1])?;
        assert_eq!(world.all_reduce_sum(&len)?.to_vec::<i32>()?, vec![n as i32], "shards of {n}");
        assert!(rows.len() <= n.div_ceil(world.size()) && rows.len() >= n / world.size());
    }
    Ok(())
}

fn tensor_all_reduce(world: &World) -> Result<()> {
    let (r, n) = (world.rank() as f32, world.size() as f32);
    // Rank r holds r + 1 (and 2(r + 1) at the second position): the sum is n(n + 1)/2.
    let sum = n * (n + 1.0) / 2.0;
    let x = Tensor::from_vec(vec![r + 1.0, 2.0 * (r + 1.0)], [1, 2])?;
    let total = world.all_reduce_sum(&x)?;
    assert_eq!(total.dims(), &[1, 2]);
    assert_eq!(total.to_vec::<f32>()?, vec![sum, 2.0 * sum]);
    assert_eq!(world.all_reduce_mean(&x)?.to_vec::<f32>()?, vec![sum / n, 2.0 * sum / n]);
    // float16 is summed in f32 and rounded once: 1000 + 0.25 + ... would lose the quarters
    // if summed in f16 (its spacing at 1000 is 0.5).
    let h = Tensor::from_vec(vec![f16::from_f32(if world.rank() == 0 { 1000.0 } else { 0.25 })], [1])?;
    let expected = 1000.0 + 0.25 * (n - 1.0);
    assert_eq!(world.all_reduce_sum(&h)?.to_vec::<f16>()?, vec![f16::from_f32(expected)]);
    let i = Tensor::from_vec(vec![world.rank() as i32, -1], [2])?;
    let ranks = (0..world.size() as i32).sum::<i32>();
    assert_eq!(world.all_reduce_sum(&i)?.to_vec::<i32>()?, vec![ranks, -(world.size() as i32)]);
    // A large tensor goes through several buckets of the fused buffer.
    let big = Tensor::full([3, 1 << 19], f64::from(r + 1.0), DType::F32)?;
    let total = world.all_reduce_sum(&big)?.to_vec::<f32>()?;
    assert!(total.iter().all(|&v| v == sum));
    // Means of int32 and any sum of bool are refused on every rank, after agreeing.
    assert!(world.all_reduce_mean(&i).is_err());
    assert!(world.all_reduce_sum(&Tensor::from_vec(vec![true], [1])?).is_err());
    Ok(())
}

fn broadcast_makes_every_rank_hold_the_roots_values(world: &World) -> Result<()> {
    let r = world.rank() as f32;
    for root in [0, world.size() - 1] {
        // Each rank's own values first: float32, int32 and float16 in one broadcast.
        let w = Variable::new(Tensor::from_vec(vec![r, r + 0.5, -r], [3])?);
        let k = Variable::new(Tensor::from_vec(vec![world.rank() as i32; 2], [2])?);
        let h = Variable::new(Tensor::from_vec(vec![f16::from_f32(r)], [1])?);
        world.broadcast_variables(&[&w, &k, &h], root)?;
        let root_f = root as f32;
        assert_eq!(w.value().to_vec::<f32>()?, vec![root_f, root_f + 0.5, -root_f]);
        assert_eq!(k.value().to_vec::<i32>()?, vec![root as i32; 2]);
        assert_eq!(h.value().to_vec::<f16>()?, vec![f16::from_f32(root_f)]);
    }
    let w = Variable::new(Tensor::ones([2], DType::F32));
    assert!(world.broadcast_variables(&[&w], world.size()).is_err(), "a root outside the world");
    Ok(())
}

/// A 12-16-3 tanh MLP's data and weights, the same on every rank (seeded).
struct Problem {
    x: Vec<f32>,
    labels: Vec<i32>,
    w1: Variable,
    b1: Variable,
    w2: Variable,
}

const ROWS: usize = 23; // odd: uneven shards on 2 and 3 ranks
const IN: usize = 12;

impl Problem {
    fn new(seed: u64) -> Result<Self> {
        let mut rng = ChaCha8Rng::seed_from_u64(seed);
        let x = (0..ROWS * IN).map(|_| rng.random::<f32>() * 2.0 - 1.0).collect();
        let labels = (0..ROWS).map(|_| rng.random_range(0..3)).collect();
        Ok(Problem {
            x,
            labels,
            w1: Variable::new(tapeflow::init::glorot_uniform([IN, 16], DType::F32, seed)?),
            b1: Variable::new(Tensor::full([16], 0.1, DType::F32)?),
            w2: Variable::new(tapeflow::init::glorot_uniform([16, 3], DType::F32, seed + 1)?),
        })
    }

    fn vars(&self) -> [&Variable; 3] {
        [&self.w1, &self.b1, &self.w2]
    }

    /// The cross-entropy of `rows`, summed and divided by the whole batch's row count and
    /// multiplied by `ranks`: the mean over the ranks of this loss is the full batch's mean
    /// loss whatever the shard sizes.
    fn loss(&self, rows: std::ops::Range<usize>, ranks: usize) -> Result<Tensor> {
        let x = Tensor::from_slice(&self.x[rows.start * IN..rows.end * IN], [rows.len(), IN])?;
        let labels = Tensor::from_slice(&self.labels[rows.clone()], [rows.len()])?;
        let hidden = (x.matmul(&self.w1)? + &self.b1)?.tanh()?;
        let per_row = hidden.matmul(&self.w2)?.sparse_softmax_cross_entropy(&labels)?;
        per_row.sum(&[0], false)?.mul(ranks as f32 / ROWS as f32)
    }
}

fn gradients_match_the_single_process_full_batch(world: &World) -> Result<()> {
    let p = Problem::new(3)?;
    // Every rank computes the single-process full-batch gradients itself.
    let tape = GradientTape::new();
    let full = tape.record(|| p.loss(0..ROWS, 1))?;
    let expected = tape.gradients(&[&full], &p.vars())?;
    // One bucket; a few; buckets smaller than the trailer of flags (12 bytes).
    for bucket_bytes in [tapeflow::mpi::DEFAULT_BUCKET_BYTES, 4096, 64, 12] {
        let distributed = |overlap: bool| -> Result<Vec<Option<Tensor>>> {
            let tape =
                DistributedGradientTape::new(GradientTape::new(), world).bucket_bytes(bucket_bytes).overlap(overlap);
            let loss = tape.record(|| p.loss(world.shard(ROWS), world.size()))?;
            tape.gradients(&[&loss], &p.vars())
        };
        let grads = distributed(true)?;
        // Buckets started during the pass or after it: the same sums, the same bits.
        for (a, b) in grads.iter().zip(distributed(false)?) {
            assert_eq!(bits(a.as_ref().expect("connected"))?, bits(&b.expect("connected"))?);
        }
        for (g, e) in grads.iter().zip(&expected) {
            let (g, e) =
                (g.as_ref().expect("connected").to_vec::<f32>()?, e.as_ref().expect("connected").to_vec::<f32>()?);
            let scale = e.iter().fold(0f32, |m, v| m.max(v.abs()));
            let error = g.iter().zip(&e).fold(0f32, |m, (a, b)| m.max((a - b).abs()));
            // Only the order of the sums differs: within 1e-6 of the largest gradient.
            assert!(error <= 1e-6 * scale, "bucket {bucket_bytes}: error {error} against scale {scale}");
        }
        for g in &grads {
            assert!(same_bits_on_every_rank(world, g.as_ref().expect("connected"))?);
        }
    }
    Ok(())
}

fn none_gradients_are_agreed(world: &World) -> Result<()> {
    let used = Variable::new(Tensor::from_vec(vec![1.0f32, 2.0], [2])?);
    let unused = Variable::new(Tensor::from_vec(vec![3.0f32], [1])?);
    let on_rank_0 = Variable::new(Tensor::from_vec(vec![5.0f32, 6.0, 7.0], [3])?);
    let tape = DistributedGradientTape::new(GradientTape::new(), world);
    let loss = tape.record(|| {
        let base = used.square()?.sum(&[0], false)?;
        // Only rank 0 reads `on_rank_0`: its gradient exists on rank 0 alone.
        if world.rank() == 0 { base + on_rank_0.sum(&[0], false)? } else { Ok(base) }
    })?;
    let grads = tape.gradients(&[&loss], &[&used, &unused, &on_rank_0])?;
    assert!(grads[1].is_none(), "a gradient None on every rank stays None");
    // d/dused = 2·used on every rank; the mean of equal values is the value.
    assert_eq!(grads[0].as_ref().unwrap().to_vec::<f32>()?, vec![2.0, 4.0]);
    // Ones on rank 0, zeros (None) elsewhere: the mean is 1/size on every rank.
    let third = 1.0 / world.size() as f32;
    assert_eq!(grads[2].as_ref().expect("Some on every rank").to_vec::<f32>()?, vec![third; 3]);
    Ok(())
}

fn mismatched_calls_are_an_err_on_every_rank(world: &World) -> Result<()> {
    let last = world.size() - 1;
    if world.size() > 1 {
        // One rank with another shape, then another dtype: an Err everywhere, no hang.
        let len = if world.rank() == last { 4 } else { 3 };
        let error = world.all_reduce_sum(&Tensor::ones([len], DType::F32)).expect_err("shapes differ");
        assert!(error.to_string().contains("disagree"), "{error}");
        let dtype = if world.rank() == last { DType::F16 } else { DType::F32 };
        assert!(world.all_reduce_sum(&Tensor::ones([3], dtype)).is_err(), "dtypes differ");
        // Different collectives at the same point: an Err, not a mismatched exchange.
        let x = Tensor::ones([3], DType::F32);
        let result = if world.rank() == last {
            world.broadcast_variables(&[&Variable::new(x)], 0)
        } else {
            world.all_reduce_sum(&x).map(|_| ())
        };
        assert!(result.is_err(), "different collectives");
        // A model whose variable has another shape on one rank.
        let w = Variable::new(Tensor::ones([if world.rank() == last { 2 } else { 3 }], DType::F32));
        let tape = DistributedGradientTape::new(GradientTape::new(), world);
        let loss = tape.record(|| w.square()?.sum(&[0], false))?;
        let error = tape.gradients(&[&loss], &[&w]).expect_err("variable shapes differ");
        assert!(error.to_string().contains("float32"), "{error}");
    }
    // The world still works after the refused calls.
    let total = world.all_reduce_sum(&Tensor::ones([2], DType::F32))?;
    assert_eq!(total.to_vec::<f32>()?, vec![world.size() as f32; 2]);
    Ok(())
}

fn a_failure_on_one_rank_is_an_err_on_every_rank(world: &World) -> Result<()> {
    let w = Variable::new(Tensor::ones([3], DType::F32));
    let tape = DistributedGradientTape::new(GradientTape::new(), world);
    let loss = tape.record(|| w.square()?.sum(&[0], false))?;
    // The last rank's own backward pass fails (an output gradient of the wrong shape).
    let seed =
        if world.rank() == world.size() - 1 { Tensor::ones([2], DType::F32) } else { Tensor::ones([], DType::F32) };
    let options = GradientOptions::default().output_gradients(vec![seed]);
    let error = tape.gradients_with(&[&loss], &[&w], options).expect_err("the last rank failed");
    if world.rank() != world.size() - 1 {
        assert!(error.to_string().contains(&format!("rank {} failed", world.size() - 1)), "{error}");
    }
    Ok(())
}

/// Ten Adam steps of the MLP on shards of 23-row batches, from weights broadcast from
/// rank 0 (every rank seeds its own first: the broadcast must make them equal), checking
/// after every step that every rank holds the same bits; twice, from the same start.
/// Returns a hash of the final weights' bytes.
fn training_is_identical_on_every_rank_and_reproducible(world: &World) -> Result<u64> {
    let run = || -> Result<Vec<Vec<u32>>> {
        let p = Problem::new(10 + world.rank() as u64)?;
        world.broadcast_variables(&p.vars(), 0)?;
        let mut opt = Adam::new(0.01);
        for _ in 0..10 {
            let tape = DistributedGradientTape::new(GradientTape::new(), world).bucket_bytes(256);
            let loss = tape.record(|| p.loss(world.shard(ROWS), world.size()))?;
            let grads = tape.gradients(&[&loss], &p.vars())?;
            opt.apply_gradients(&grads, &p.vars())?;
            for v in p.vars() {
                assert!(same_bits_on_every_rank(world, &v.value())?, "the ranks' variables differ after a step");
            }
        }
        p.vars().iter().map(|v| bits(&v.value())).collect()
    };
    let first = run()?;
    assert_eq!(first, run()?, "the same run twice gives other bits");
    // FNV-1a over the weights' bits.
    Ok(first
        .iter()
        .flatten()
        .fold(0xcbf2_9ce4_8422_2325u64, |h, &b| (h ^ u64::from(b)).wrapping_mul(0x0000_0100_0000_01b3)))
}
