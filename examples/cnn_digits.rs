//! A CNN on the UCI handwritten digits: three 3 × 3 convolutions, two max-pools, dropout
//! and a dense layer, trained with Adam on images shifted by up to one pixel at random —
//! the model a Keras user trains after the MLP, written with `tapeflow::nn`.
//!
//! Run: `cargo run --release --example cnn_digits` (data: `data/digits/`, the MLP example's
//! split: first 80 % train, last 20 % test). Model and loop: `examples/common/cnn.rs`.

use std::error::Error;
use std::time::Instant;

use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};
use tapeflow::prelude::*;

#[path = "common/cnn.rs"]
mod cnn;
#[path = "common/digits.rs"]
mod digits;

const EPOCHS: u64 = 40;
const LEARNING_RATE: f32 = 0.002;
const CONFIG: cnn::TrainConfig = cnn::TrainConfig { batch: 64, dropout: 0.25, shift: true };

fn main() -> Result<(), Box<dyn Error>> {
    // The training loop's thread is rayon's worker 0, as in the MLP example.
    rayon::ThreadPoolBuilder::new().use_current_thread().build_global()?;
    let (train, test) = digits::load(digits::default_path())?;
    println!("digits: {} training and {} test images", train.len(), test.len());

    let start = Instant::now();
    let model = cnn::Cnn::new(0)?;
    let mut opt = Adam::new(LEARNING_RATE);
    let bar = ProgressBar::with_draw_target(Some(EPOCHS), ProgressDrawTarget::stderr_with_hz(10));
    bar.set_style(ProgressStyle::with_template("epoch {pos:>2}/{len} [{bar:30}] {msg}")?.progress_chars("=> "));
    let mut last = String::new();
    for epoch in 0..EPOCHS {
        // cosine decay to zero over the run
        let progress = epoch as f32 / EPOCHS as f32;
        opt.set_learning_rate(LEARNING_RATE * 0.5 * (1.0 + (std::f32::consts::PI * progress).cos()));
        let stats = cnn::train_epoch(&model, &mut opt, &train, CONFIG, epoch)?;
        last = format!("loss {:.4}  accuracy {:.1}%", stats.loss, 100.0 * stats.accuracy);
        bar.set_message(last.clone());
        bar.inc(1);
    }
    bar.finish_and_clear();
    println!("epoch {EPOCHS}/{EPOCHS}: training {last}");
    let accuracy = model.accuracy(&test)?;
    println!("trained {EPOCHS} epochs in {:.2} s", start.elapsed().as_secs_f64());
    println!("test accuracy: {:.1}%", 100.0 * accuracy);
    Ok(())
}
