//! The UCI digits data set and a 64-128-10 MLP trained on it, shared by
//! `examples/digits.rs` and `tests/digits.rs` (included with `#[path]`).

#![allow(dead_code)] // each includer uses its own part

use std::io::Read;
use std::path::Path;

use rand::seq::SliceRandom;
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use tapeflow::init;
use tapeflow::prelude::*;

/// Pixels per image (8 × 8).
pub const FEATURES: usize = 64;
/// Digit classes.
pub const CLASSES: usize = 10;
/// Hidden units.
pub const HIDDEN: usize = 128;

/// `data/digits/digits.csv.gz` of this repository.
pub fn default_path() -> &'static Path {
    Path::new(concat!(env!("CARGO_MANIFEST_DIR"), "/data/digits/digits.csv.gz"))
}

/// Images (row-major `[n, 64]`, pixels scaled to [0, 1]) and their labels.
pub struct Split {
    pub pixels: Vec<f32>,
    pub labels: Vec<i32>,
}

impl Split {
    pub fn len(&self) -> usize {
        self.labels.len()
    }

    /// Rows `rows` as an input batch `[rows.len(), 64]` and its labels `[rows.len()]`.
    pub fn batch(&self, rows: &[usize]) -> Result<(Tensor, Tensor)> {
        let mut pixels = Vec::with_capacity(rows.len() * FEATURES);
        for &r in rows {
            pixels.extend_from_slice(&self.pixels[r * FEATURES..(r + 1) * FEATURES]);
        }
        let labels: Vec<i32> = rows.iter().map(|&r| self.labels[r]).collect();
        Ok((Tensor::from_vec(pixels, [rows.len(), FEATURES])?, Tensor::from_vec(labels, [rows.len()])?))
    }

    /// Every row, in order.
    pub fn all(&self) -> Result<(Tensor, Tensor)> {
        self.batch(&(0..self.len()).collect::<Vec<_>>())
    }
}

/// Reads the gzipped CSV (64 pixel counts 0..16 then the label, per line) and splits it:
/// the first 80 % of rows for training, the last 20 % for testing.
pub fn load(path: &Path) -> std::result::Result<(Split, Split), Box<dyn std::error::Error>> {
    let mut text = String::new();
    flate2::read::GzDecoder::new(std::fs::File::open(path)?).read_to_string(&mut text)?;
    let mut pixels = Vec::new();
    let mut labels = Vec::new();
    for (i, line) in text.lines().filter(|l| !l.trim().is_empty()).enumerate() {
        let fields: Vec<&str> = line.split(',').map(str::trim).collect();
        if fields.len() != FEATURES + 1 {
            return Err(format!("line {}: {} fields, expected {}", i + 1, fields.len(), FEATURES + 1).into());
        }
        for f in &fields[..FEATURES] {
            pixels.push(f.parse::<f32>()? / 16.0);
        }
        let label: i32 = fields[FEATURES].parse()?;
        if !(0..CLASSES as i32).contains(&label) {
            return Err(format!("line {}: label {label} outside 0..{CLASSES}", i + 1).into());
        }
        labels.push(label);
    }
    let n_train = labels.len() * 4 / 5;
    let test = Split { pixels: pixels.split_off(n_train * FEATURES), labels: labels.split_off(n_train) };
    Ok((Split { pixels, labels }, test))
}

/// `Dense(128, relu) → Dense(10)` with Glorot-uniform kernels and zero biases, as Keras
/// builds them.
pub struct Mlp {
    pub w1: Variable,
    pub b1: Variable,
    pub w2: Variable,
    pub b2: Variable,
}

impl Mlp {
    pub fn new(seed: u64) -> Result<Self> {
        Ok(Mlp {
            w1: Variable::new(init::glorot_uniform([FEATURES, HIDDEN], DType::F32, seed)?),
            b1: Variable::new(init::zeros([HIDDEN], DType::F32)),
            w2: Variable::new(init::glorot_uniform([HIDDEN, CLASSES], DType::F32, seed + 1)?),
            b2: Variable::new(init::zeros([CLASSES], DType::F32)),
        })
    }

    pub fn variables(&self) -> [&Variable; 4] {
        [&self.w1, &self.b1, &self.w2, &self.b2]
    }

    /// Logits `[n, 10]` of inputs `[n, 64]`.
    pub fn logits(&self, x: &Tensor) -> Result<Tensor> {
        self.logits_with_dropout(x, None)
    }

    /// Logits with the hidden activations multiplied by `mask` (dropout while training).
    pub fn logits_with_dropout(&self, x: &Tensor, mask: Option<&Tensor>) -> Result<Tensor> {
        let hidden = (x.matmul(&self.w1)? + &self.b1)?.relu()?;
        let hidden = match mask {
            Some(mask) => (hidden * mask)?,
            None => hidden,
        };
        hidden.matmul(&self.w2)? + &self.b2
    }

    /// One optimizer step on a batch; returns the batch's mean loss and correct count.
    /// `dropout` (a mask of the hidden layer's shape) is Keras' `Dropout` as a constant.
    pub fn train_step(
        &self,
        opt: &mut impl Optimizer,
        x: &Tensor,
        labels: &Tensor,
        dropout: Option<&Tensor>,
    ) -> Result<(f32, usize)> {
        let tape = GradientTape::new();
        let (loss, logits) = tape.record(|| {
            let logits = self.logits_with_dropout(x, dropout)?;
            Ok::<_, Error>((logits.sparse_softmax_cross_entropy(labels)?.mean_all()?, logits))
        })?;
        let vars = self.variables();
        let grads = tape.gradients(&[&loss], &vars)?;
        opt.apply_gradients(&grads, &vars)?;
        Ok((loss.to_scalar::<f32>()?, correct(&logits, labels)?))
    }

    /// Fraction of `split` classified correctly.
    pub fn accuracy(&self, split: &Split) -> Result<f32> {
        let (x, labels) = split.all()?;
        Ok(correct(&self.logits(&x)?, &labels)? as f32 / split.len() as f32)
    }
}

/// How many rows of `logits` have their largest value at the label.
pub fn correct(logits: &Tensor, labels: &Tensor) -> Result<usize> {
    let scores = logits.to_vec::<f32>()?;
    let labels = labels.to_vec::<i32>()?;
    let hits = scores.chunks(CLASSES).zip(&labels).filter(|&(row, &label)| {
        let best = row.iter().enumerate().fold(0, |best, (j, &v)| if v > row[best] { j } else { best });
        best as i32 == label
    });
    Ok(hits.count())
}

/// Mean loss and accuracy over one epoch.
pub struct EpochStats {
    pub loss: f32,
    pub accuracy: f32,
}

/// How an epoch runs.
#[derive(Debug, Clone, Copy)]
pub struct TrainConfig {
    /// Rows per mini-batch.
    pub batch: usize,
    /// Fraction of hidden units dropped (0: no dropout).
    pub dropout: f32,
    /// Amplitude of uniform noise added to every pixel (0: none).
    pub noise: f32,
}

/// `x` plus noise drawn uniformly from `[-amplitude, amplitude]` per element: input noise,
/// a regularizer that makes the model's output vary smoothly with the pixels.
pub fn add_noise(x: &Tensor, amplitude: f32, rng: &mut ChaCha8Rng) -> Result<Tensor> {
    let noisy = x.to_vec::<f32>()?.iter().map(|&p| p + amplitude * (2.0 * rng.random::<f32>() - 1.0)).collect();
    Tensor::from_vec(noisy, x.dims())
}

/// A dropout mask for `[rows, HIDDEN]`: each unit kept with probability `1 − rate` and
/// scaled by `1 / (1 − rate)`, as Keras' `Dropout` does while training.
pub fn dropout_mask(rows: usize, rate: f32, rng: &mut ChaCha8Rng) -> Result<Tensor> {
    let keep = 1.0 / (1.0 - rate);
    let mask = (0..rows * HIDDEN).map(|_| if rng.random::<f32>() < rate { 0.0 } else { keep }).collect();
    Tensor::from_vec(mask, [rows, HIDDEN])
}

/// One pass over `train` in shuffled mini-batches (shuffle, noise and dropout seeded with
/// `seed`, so a run is reproducible).
pub fn train_epoch(
    model: &Mlp,
    opt: &mut impl Optimizer,
    train: &Split,
    config: TrainConfig,
    seed: u64,
) -> Result<EpochStats> {
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    let mut order: Vec<usize> = (0..train.len()).collect();
    order.shuffle(&mut rng);
    let (mut loss_sum, mut hits) = (0.0f64, 0usize);
    for rows in order.chunks(config.batch.max(1)) {
        let (x, labels) = train.batch(rows)?;
        let x = if config.noise > 0.0 { add_noise(&x, config.noise, &mut rng)? } else { x };
        let mask = if config.dropout > 0.0 { Some(dropout_mask(rows.len(), config.dropout, &mut rng)?) } else { None };
        let (loss, correct) = model.train_step(opt, &x, &labels, mask.as_ref())?;
        loss_sum += f64::from(loss) * rows.len() as f64;
        hits += correct;
    }
    Ok(EpochStats { loss: (loss_sum / train.len() as f64) as f32, accuracy: hits as f32 / train.len() as f32 })
}
