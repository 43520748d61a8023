//! `examples/digits.rs` data-parallel on MPI, Horovod's way: every rank holds the MLP,
//! trains on its shard of every mini-batch, and the ranks average the gradients
//! (`DistributedGradientTape`) before each Adam step.
//!
//! Run: `cargo build --release --features mpi --example digits_mpi` then
//! `mpirun -np 2 target/release/examples/digits_mpi` (docs/distributed.md).
//!
//! Every rank draws the same shuffle, input noise and dropout mask for the whole batch (the
//! same seeded streams as `digits.rs`) and keeps its rows. Its loss is the sum of its rows'
//! cross-entropies times `ranks / batch rows`, so the mean over ranks is the batch's mean
//! loss whatever the shard sizes: the step is the single-process step, up to the order of
//! the sums, and the test accuracy is the single-process one within noise.

use std::error::Error;
use std::time::Instant;

use rand::SeedableRng;
use rand::seq::SliceRandom;
use rand_chacha::ChaCha8Rng;
use tapeflow::mpi::{self, DistributedGradientTape, World};
use tapeflow::prelude::*;

#[path = "common/digits.rs"]
mod digits;

const EPOCHS: u64 = 100;
const LEARNING_RATE: f32 = 0.005;
const CONFIG: digits::TrainConfig = digits::TrainConfig { batch: 16, dropout: 0.2, noise: 0.4 };

fn main() -> Result<(), Box<dyn Error>> {
    // As in digits.rs: the training loop's thread is rayon's worker 0. It is also the
    // thread that talks to MPI.
    rayon::ThreadPoolBuilder::new().use_current_thread().build_global()?;
    let world = mpi::init()?;
    let lead = world.rank() == 0;
    let (train, test) = digits::load(digits::default_path())?;
    if lead {
        println!("digits: {} training and {} test images on {} ranks", train.len(), test.len(), world.size());
    }
    let start = Instant::now();
    let model = digits::Mlp::new(0)?;
    // Every rank seeded the same weights; broadcasting them is what makes it a guarantee.
    world.broadcast_variables(&model.variables(), 0)?;
    let mut opt = Adam::new(LEARNING_RATE);
    let mut last = String::new();
    for epoch in 0..EPOCHS {
        let progress = epoch as f32 / EPOCHS as f32;
        opt.set_learning_rate(LEARNING_RATE * 0.5 * (1.0 + (std::f32::consts::PI * progress).cos()));
        let (loss, accuracy) = train_epoch(&world, &model, &mut opt, &train, epoch)?;
        last = format!("loss {loss:.4}  accuracy {:.1}%", 100.0 * accuracy);
    }
    if lead {
        println!("epoch {EPOCHS}/{EPOCHS}: training {last}");
        let accuracy = model.accuracy(&test)?;
        println!("trained {EPOCHS} epochs in {:.2} s", start.elapsed().as_secs_f64());
        println!("test accuracy: {:.1}%", 100.0 * accuracy);
    }
    Ok(())
}

/// One epoch: the whole batch drawn as in `digits::train_epoch`, this rank's rows of it
/// trained on; returns the epoch's mean loss and accuracy over all ranks' rows.
fn train_epoch(
    world: &World,
    model: &digits::Mlp,
    opt: &mut Adam,
    train: &digits::Split,
    seed: u64,
) -> Result<(f32, f32), Box<dyn Error>> {
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    let mut order: Vec<usize> = (0..train.len()).collect();
    order.shuffle(&mut rng);
    let (mut loss_sum, mut hits) = (0.0f32, 0i32);
    for rows in order.chunks(CONFIG.batch) {
        let (x, labels) = train.batch(rows)?;
        let x = digits::add_noise(&x, CONFIG.noise, &mut rng)?;
        let mask = digits::dropout_mask(rows.len(), CONFIG.dropout, &mut rng)?;
        let mine = world.shard(rows.len());
        let n = mine.len() as isize;
        let begin = mine.start;
        let x = x.slice(&[begin, 0], &[n, -1])?;
        let labels = labels.slice(&[begin], &[n])?;
        let mask = mask.slice(&[begin, 0], &[n, -1])?;
        let weight = world.size() as f32 / rows.len() as f32;
        let tape = DistributedGradientTape::new(GradientTape::new(), world);
        let (loss, logits) = tape.record(|| {
            let logits = model.logits_with_dropout(&x, Some(&mask))?;
            let summed = logits.sparse_softmax_cross_entropy(&labels)?.sum(&[0], false)?;
            Ok::<_, tapeflow::Error>((summed.mul(weight)?, logits))
        })?;
        let vars = model.variables();
        let grads = tape.gradients(&[&loss], &vars)?;
        opt.apply_gradients(&grads, &vars)?;
        // The batch's mean loss (rows.len() · mean = sum of the ranks' row losses).
        loss_sum += loss.to_scalar::<f32>()? / weight;
        hits += digits::correct(&logits, &labels)? as i32;
    }
    // Summed over the ranks once per epoch, for the progress line only.
    let totals = world.all_reduce_sum(&Tensor::from_vec(vec![loss_sum], [1])?)?.to_vec::<f32>()?;
    let hits = world.all_reduce_sum(&Tensor::from_vec(vec![hits], [1])?)?.to_vec::<i32>()?;
    Ok((totals[0] / train.len() as f32, hits[0] as f32 / train.len() as f32))
}
