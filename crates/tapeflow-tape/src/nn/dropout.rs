//! `tf.nn.dropout(x, rate, seed)`: seeded and reproducible.
//!
//! Element `i` is kept when `u(seed, i) ≥ rate`, `u` a uniform draw in [0, 1) made by
//! hashing the pair `(seed, i)` (SplitMix64's finalizer applied twice, a counter-based
//! generator): the mask depends only on the seed and the position, never on how the work
//! is split across threads. Kept values are scaled by `1 / (1 − rate)`; the result is
//! `x · mask` with the mask a constant, so the gradient is `g · mask`.

use tapeflow_dtype::{DType, Error, Result};
use tapeflow_kernels::parallel;

use crate::nn::norm::float_operand;
use crate::ops::TensorMath;
use crate::runtime::Tensor;

/// SplitMix64's output function: a bijection of u64 whose bits are well mixed.
fn mix(mut z: u64) -> u64 {
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

/// The uniform draw in [0, 1) of element `index` under `seed` (53 random bits).
pub(crate) fn uniform(seed: u64, index: u64) -> f64 {
    let bits = mix(mix(seed ^ 0x9E37_79B9_7F4A_7C15).wrapping_add(index.wrapping_mul(0x9E37_79B9_7F4A_7C15)));
    (bits >> 11) as f64 * (1.0 / (1u64 << 53) as f64)
}

/// `tf.nn.dropout(x, rate, seed)`: each element zeroed with probability `rate` (in [0, 1):
/// anything else, NaN included, is an `Err`) and the kept ones scaled by `1 / (1 − rate)`.
/// The same seed gives the same mask. `rate = 0` returns `x` itself.
pub fn dropout(x: impl TensorMath, rate: f64, seed: u64) -> Result<Tensor> {
    let op = "dropout";
    let x = x.to_tensor();
    float_operand(op, &x)?;
    if !(0.0..1.0).contains(&rate) {
        return Err(Error::InvalidArgument {
            op,
            reason: format!("rate must be in [0, 1), not {rate} (x {} {})", x.shape(), x.dtype()),
        });
    }
    if rate == 0.0 {
        return Ok(x);
    }
    let scale = (1.0 / (1.0 - rate)) as f32;
    let mut keep = vec![0.0f32; x.num_elements()];
    parallel::for_each_chunk(&mut keep, 8, |start, chunk| {
        for (i, m) in chunk.iter_mut().enumerate() {
            *m = if uniform(seed, (start + i) as u64) >= rate { scale } else { 0.0 };
        }
    });
    let mask = Tensor::from_vec(keep, x.shape().clone())?;
    let mask = if x.dtype() == DType::F16 { mask.cast(DType::F16)? } else { mask };
    x.mul(&mask)
}
