//! A small CNN for the UCI digits (8 × 8 × 1 images), shared by `examples/cnn_digits.rs`,
//! `tests/cnn_digits.rs` and the benchmarks (included with `#[path]`, next to
//! `common/digits.rs`, whose loader and split it uses).
//!
//! The model is the Keras one of the issue, layer for layer:
//! `Conv2D(32, 3, same, relu) → Conv2D(32, 3, same, relu) → MaxPool2D(2) →
//! Conv2D(64, 3, same, relu) → MaxPool2D(2) → Flatten → Dropout → Dense(10)`, Glorot-uniform
//! kernels and zero biases as Keras initializes them.

#![allow(dead_code)] // each includer uses its own part

use rand::seq::SliceRandom;
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use tapeflow::init;
use tapeflow::nn::{self, Padding};
use tapeflow::prelude::*;

use super::digits::{CLASSES, Split, correct};

/// Image side (the digits are 8 × 8).
pub const SIDE: usize = 8;
/// Features after the second pooling: 2 × 2 × 64.
pub const FLAT: usize = 2 * 2 * 64;

/// The CNN's variables.
pub struct Cnn {
    pub k1: Variable,
    pub b1: Variable,
    pub k2: Variable,
    pub b2: Variable,
    pub k3: Variable,
    pub b3: Variable,
    pub w: Variable,
    pub b: Variable,
}

impl Cnn {
    pub fn new(seed: u64) -> Result<Self> {
        let kernel = |shape: [usize; 4], seed| init::glorot_uniform(shape, DType::F32, seed).map(Variable::new);
        let bias = |n: usize| Variable::new(init::zeros([n], DType::F32));
        Ok(Cnn {
            k1: kernel([3, 3, 1, 32], seed)?,
            b1: bias(32),
            k2: kernel([3, 3, 32, 32], seed + 1)?,
            b2: bias(32),
            k3: kernel([3, 3, 32, 64], seed + 2)?,
            b3: bias(64),
            w: Variable::new(init::glorot_uniform([FLAT, CLASSES], DType::F32, seed + 3)?),
            b: bias(CLASSES),
        })
    }

    pub fn variables(&self) -> [&Variable; 8] {
        [&self.k1, &self.b1, &self.k2, &self.b2, &self.k3, &self.b3, &self.w, &self.b]
    }

    /// Logits `[n, 10]` of images `[n, 8, 8, 1]`; `dropout` is `(rate, seed)` while training.
    pub fn logits(&self, x: &Tensor, dropout: Option<(f64, u64)>) -> Result<Tensor> {
        let conv = |x: &Tensor, k: &Variable, b: &Variable| {
            nn::bias_add(nn::conv2d(x, k, [1, 1], Padding::Same, [1, 1])?, b)?.relu()
        };
        let h = conv(x, &self.k1, &self.b1)?;
        let h = conv(&h, &self.k2, &self.b2)?;
        let h = nn::max_pool2d(&h, [2, 2], [2, 2], Padding::Valid)?;
        let h = conv(&h, &self.k3, &self.b3)?;
        let h = nn::max_pool2d(&h, [2, 2], [2, 2], Padding::Valid)?;
        let h = h.reshape([-1, FLAT as isize])?;
        let h = match dropout {
            Some((rate, seed)) => nn::dropout(&h, rate, seed)?,
            None => h,
        };
        h.matmul(&self.w)? + &self.b
    }

    /// One optimizer step on a batch; the batch's mean loss and correct count.
    pub fn train_step(
        &self,
        opt: &mut impl Optimizer,
        x: &Tensor,
        labels: &Tensor,
        dropout: Option<(f64, u64)>,
    ) -> Result<(f32, usize)> {
        let tape = GradientTape::new();
        let (loss, logits) = tape.record(|| {
            let logits = self.logits(x, dropout)?;
            Ok::<_, Error>((logits.sparse_softmax_cross_entropy(labels)?.mean_all()?, logits))
        })?;
        let vars = self.variables();
        let grads = tape.gradients(&[&loss], &vars)?;
        opt.apply_gradients(&grads, &vars)?;
        Ok((loss.to_scalar::<f32>()?, correct(&logits, labels)?))
    }

    /// Fraction of `split` classified correctly (no dropout, no augmentation).
    pub fn accuracy(&self, split: &Split) -> Result<f32> {
        let (x, labels) = split.all()?;
        let x = x.reshape([-1, SIDE as isize, SIDE as isize, 1])?;
        Ok(correct(&self.logits(&x, None)?, &labels)? as f32 / split.len() as f32)
    }
}

/// Images `[n, 64]` as NHWC `[n, 8, 8, 1]`, each moved by its own random shift of −1, 0 or
/// +1 pixel along each axis (the vacated border is 0, the background): the augmentation of
/// Keras' `RandomTranslation` by one pixel, with a constant fill.
pub fn shifted(pixels: &[f32], rng: &mut ChaCha8Rng) -> Result<Tensor> {
    let n = pixels.len() / (SIDE * SIDE);
    let mut out = vec![0.0f32; pixels.len()];
    for (src, dst) in pixels.chunks_exact(SIDE * SIDE).zip(out.chunks_exact_mut(SIDE * SIDE)) {
        let (dy, dx) = (rng.random_range(-1i32..=1) as isize, rng.random_range(-1i32..=1) as isize);
        for y in 0..SIDE as isize {
            for x in 0..SIDE as isize {
                let (sy, sx) = (y - dy, x - dx);
                if (0..SIDE as isize).contains(&sy) && (0..SIDE as isize).contains(&sx) {
                    dst[(y * SIDE as isize + x) as usize] = src[(sy * SIDE as isize + sx) as usize];
                }
            }
        }
    }
    Tensor::from_vec(out, [n, SIDE, SIDE, 1])
}

/// How an epoch runs.
#[derive(Debug, Clone, Copy)]
pub struct TrainConfig {
    /// Rows per mini-batch.
    pub batch: usize,
    /// Dropout rate before the dense layer (0: none).
    pub dropout: f64,
    /// Shift every training image by up to one pixel at random.
    pub shift: bool,
}

/// Mean loss and accuracy over one epoch.
pub struct EpochStats {
    pub loss: f32,
    pub accuracy: f32,
}

/// One pass over `train` in shuffled mini-batches (shuffle, shifts and dropout seeded with
/// `seed`, so a run is reproducible).
pub fn train_epoch(
    model: &Cnn,
    opt: &mut impl Optimizer,
    train: &Split,
    config: TrainConfig,
    seed: u64,
) -> Result<EpochStats> {
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    let mut order: Vec<usize> = (0..train.len()).collect();
    order.shuffle(&mut rng);
    let (mut loss_sum, mut hits) = (0.0f64, 0usize);
    for (step, rows) in order.chunks(config.batch.max(1)).enumerate() {
        let (x, labels) = train.batch(rows)?;
        let x = if config.shift {
            shifted(&x.to_vec::<f32>()?, &mut rng)?
        } else {
            x.reshape([-1, SIDE as isize, SIDE as isize, 1])?
        };
        let dropout = (config.dropout > 0.0).then(|| (config.dropout, seed.wrapping_mul(1 << 20) + step as u64));
        let (loss, correct) = model.train_step(opt, &x, &labels, dropout)?;
        loss_sum += f64::from(loss) * rows.len() as f64;
        hits += correct;
    }
    Ok(EpochStats { loss: (loss_sum / train.len() as f64) as f32, accuracy: hits as f32 / train.len() as f32 })
}

/// The training step the benchmarks and the perf report time: the example's model without
/// dropout, Adam, on the first 64 training images (unshifted).
pub struct CnnStep {
    model: Cnn,
    opt: Adam,
    x: Tensor,
    labels: Tensor,
}

/// Images per benchmarked step.
pub const STEP_BATCH: usize = 64;

impl CnnStep {
    pub fn new() -> std::result::Result<Self, Box<dyn std::error::Error>> {
        let (train, _) = super::digits::load(super::digits::default_path())?;
        let (x, labels) = train.batch(&(0..STEP_BATCH).collect::<Vec<_>>())?;
        let x = x.reshape([-1, SIDE as isize, SIDE as isize, 1])?;
        Ok(CnnStep { model: Cnn::new(0)?, opt: Adam::new(0.001), x, labels })
    }

    /// One step: forward, backward, Adam update; the loss.
    pub fn step(&mut self) -> Result<f32> {
        self.model.train_step(&mut self.opt, &self.x, &self.labels, None).map(|(loss, _)| loss)
    }

    /// Multiply-adds of one step in the convolutions and the dense layer: each layer's
    /// forward product, its filter gradient (the same count) and, except for the first
    /// convolution (whose input needs no gradient), its input gradient (the same again).
    pub fn multiply_adds(&self) -> f64 {
        let n = STEP_BATCH as f64;
        // (output pixels per image, taps · input channels, output channels)
        let layers = [(64.0, 9.0, 32.0), (64.0, 9.0 * 32.0, 32.0), (16.0, 9.0 * 32.0, 64.0), (1.0, FLAT as f64, 10.0)];
        layers.iter().enumerate().map(|(i, (pixels, k, c))| n * pixels * k * c * if i == 0 { 2.0 } else { 3.0 }).sum()
    }
}
