//! `tf.nn.dropout(x, rate, seed)`: seeded and reproducible.
//!
//! Element `i` is kept when `u(seed, i) ≥ rate`, `u` a uniform draw in [0, 1) made by
//! hashing the pair `(seed, i)` (SplitMix64's finalizer applied twice, a counter-based
//! generator): the mask depends only on the seed and the position, never on how the work
//! is split across threads. Kept values are scaled by `1 / (1 − rate)`; the result is
//! `x · mask` with the mask a constant, so the gradient is `g · mask`.

use tapeflow_dtype::{Error, Result};

use crate::nn::norm::float_operand;
use crate::ops::TensorMath;
use crate::random::{Generator, keep_mask};
use crate::runtime::Tensor;

/// `tf.nn.dropout(x, rate, seed)`: each element zeroed with probability `rate` (in [0, 1):
/// anything else, NaN included, is an `Err`) and the kept ones scaled by `1 / (1 − rate)`.
/// The same seed gives the same mask. `rate = 0` returns `x` itself.
pub fn dropout(x: impl TensorMath, rate: f64, seed: u64) -> Result<Tensor> {
    let op = "dropout";
    let x = x.to_tensor();
    check(op, &x, rate)?;
    if rate == 0.0 {
        return Ok(x);
    }
    // The mask is a constant of the seed: a compiled function uses the same one every call
    // (`dropout_with` draws a new one per call from a generator).
    let mask = keep_mask(seed, rate, x.shape(), x.dtype())?;
    x.mul(&mask)
}

/// `tf.nn.dropout(x, rate, rng_seed)` with its randomness from `generator`
/// (`tf.random.Generator`): each call draws a new mask and advances the generator's state,
/// a variable, so inside `tapeflow::function` every replay draws anew, the same sequence as
/// eager calls. `rate` as in [`dropout`].
pub fn dropout_with(x: impl TensorMath, rate: f64, generator: &Generator) -> Result<Tensor> {
    let op = "dropout_with";
    let x = x.to_tensor();
    check(op, &x, rate)?;
    if rate == 0.0 {
        return Ok(x);
    }
    let mask = generator.keep_mask(rate, x.shape().clone(), x.dtype())?;
    x.mul(&mask)
}

fn check(op: &'static str, x: &Tensor, rate: f64) -> Result<()> {
    float_operand(op, x)?;
    if !(0.0..1.0).contains(&rate) {
        return Err(Error::InvalidArgument {
            op,
            reason: format!("rate must be in [0, 1), not {rate} (x {} {})", x.shape(), x.dtype()),
        });
    }
    Ok(())
}
