//! `tapeflow::random`: TensorFlow's `tf.random.Generator`, whose state is a variable.
//!
//! A generator draws from a counter-based stream: draw number `c` of the generator seeded
//! with `s` uses the key `mix(s, c)`, and element `i` of a draw is a pure function of the
//! key and `i` (SplitMix64's finalizer, as `nn::dropout`'s seeded masks). The seed and the
//! counter live in one int32 variable (four words), so every draw reads and advances
//! state the way an assignment does: inside `tapeflow::function` a replay draws anew on each
//! call, the same sequence as eager calls would, and a failed call leaves the counter as it
//! was. Draws are the same for any thread count (an element's value depends on its index
//! only).
//!
//! ```
//! use tapeflow_tape::random::Generator;
//! use tapeflow_dtype::DType;
//!
//! # fn main() -> tapeflow_dtype::Result<()> {
//! let g = Generator::from_seed(1);              // tf.random.Generator.from_seed(1)
//! let a = g.uniform([3], DType::F32)?;          // g.uniform([3])
//! let b = g.uniform([3], DType::F32)?;          // the next draw: other values
//! assert_ne!(a.to_vec::<f32>()?, b.to_vec::<f32>()?);
//! assert_eq!(Generator::from_seed(1).uniform([3], DType::F32)?.to_vec::<f32>()?, a.to_vec::<f32>()?);
//! # Ok(()) }
//! ```

use tapeflow_dtype::{DType, Error, Result, Shape};
use tapeflow_kernels::parallel;

use crate::ops::TensorMath;
use crate::runtime::Tensor;
use crate::trace;
use crate::variable::Variable;

/// SplitMix64's output function: a bijection of u64 whose bits are well mixed.
pub(crate) fn mix(mut z: u64) -> u64 {
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

/// The uniform draw in [0, 1) of element `index` under `key` (53 random bits).
pub(crate) fn uniform_at(key: u64, index: u64) -> f64 {
    let bits = mix(mix(key ^ 0x9E37_79B9_7F4A_7C15).wrapping_add(index.wrapping_mul(0x9E37_79B9_7F4A_7C15)));
    (bits >> 11) as f64 * (1.0 / (1u64 << 53) as f64)
}

/// A standard normal draw of element `index` under `key` (Box–Muller on two uniforms).
fn normal_at(key: u64, index: u64) -> f64 {
    let u1 = uniform_at(key, index.wrapping_mul(2));
    let u2 = uniform_at(key, index.wrapping_mul(2).wrapping_add(1));
    // 1 - u1 is in (0, 1]: the logarithm is finite.
    (-2.0 * (1.0 - u1).ln()).sqrt() * (std::f64::consts::TAU * u2).cos()
}

/// `tf.random.Generator`: a stream of random tensors whose state (seed and counter) is a
/// variable.
#[derive(Debug, Clone)]
pub struct Generator {
    /// int32 `[4]`: the seed's low and high words, the counter's low and high words.
    state: Variable,
}

impl Generator {
    /// `tf.random.Generator.from_seed(seed)`.
    pub fn from_seed(seed: u64) -> Self {
        // Four words for shape (4,), no dtype conversion: neither call can fail.
        let state = Tensor::from_vec(words(seed, 0).to_vec(), [4]).expect("four words for shape (4,)");
        Generator {
            state: Variable::builder(state).trainable(false).name("generator_state").build().expect("no dtype change"),
        }
    }

    /// `reset_from_seed(seed)`: the stream starts again from `seed` (an assignment: inside a
    /// function it happens on every call).
    pub fn reset_from_seed(&self, seed: u64) -> Result<()> {
        self.state.assign(Tensor::from_vec(words(seed, 0).to_vec(), [4])?)
    }

    /// The state variable (seed and counter as four int32 words), as TF's `state`.
    pub fn state(&self) -> &Variable {
        &self.state
    }

    /// Reads and advances the counter: the key of this draw. Runs inside a captured call.
    fn next_key(state: &Variable) -> Result<u64> {
        let current = state.current();
        let w = current.as_slice::<i32>()?;
        let (seed, counter) = (join(w[0], w[1]), join(w[2], w[3]));
        state.restore(Tensor::from_vec(words(seed, counter.wrapping_add(1)).to_vec(), [4])?);
        Ok(mix(seed ^ mix(counter.wrapping_add(0x632B_E59B_D9B4_E019))))
    }

    /// A draw of `shape` in `dtype`, element `i` being `value(key, i)`, as one captured
    /// stateful call.
    fn draw(&self, op: &'static str, shape: Shape, dtype: DType, value: fn(u64, u64) -> f64) -> Result<Tensor> {
        if !dtype.is_float() {
            return Err(Error::UnsupportedDType { op, shape, dtype });
        }
        tapeflow_kernels::layout::checked_output_len(op, &Tensor::zeros([0], dtype), &shape)?;
        let state = self.state.clone();
        trace::stateful(op, &[&self.state], move || {
            let key = Self::next_key(&state)?;
            let n = shape.num_elements();
            let mut out = vec![0.0f32; n];
            parallel::for_each_chunk(&mut out, 16, |start, chunk| {
                for (i, x) in chunk.iter_mut().enumerate() {
                    *x = value(key, (start + i) as u64) as f32;
                }
            });
            let t = Tensor::from_vec(out, shape.clone())?;
            Ok(if dtype == DType::F32 { t } else { t.to_dtype(dtype) })
        })
    }

    /// `uniform(shape, minval=0, maxval=1, dtype)`: uniform in [0, 1).
    pub fn uniform(&self, shape: impl Into<Shape>, dtype: DType) -> Result<Tensor> {
        self.draw("RngReadAndSkip/uniform", shape.into(), dtype, uniform_at)
    }

    /// `uniform` scaled to [minval, maxval).
    pub fn uniform_range(&self, shape: impl Into<Shape>, minval: f64, maxval: f64, dtype: DType) -> Result<Tensor> {
        let u = self.uniform(shape, dtype)?;
        u.mul(maxval - minval)?.add(minval)
    }

    /// `normal(shape, mean=0, stddev=1, dtype)`.
    pub fn normal(&self, shape: impl Into<Shape>, dtype: DType) -> Result<Tensor> {
        self.draw("RngReadAndSkip/normal", shape.into(), dtype, normal_at)
    }

    /// The keep mask of dropout: `1 / (1 − rate)` where the draw is ≥ `rate`, else 0, in
    /// `dtype` (one captured draw).
    pub(crate) fn keep_mask(&self, rate: f64, shape: Shape, dtype: DType) -> Result<Tensor> {
        let state = self.state.clone();
        trace::stateful("RngReadAndSkip/dropout", &[&self.state], move || {
            let key = Self::next_key(&state)?;
            keep_mask(key, rate, &shape, dtype)
        })
    }
}

/// Dropout's mask under `key`: element `i` kept (scaled by `1 / (1 − rate)`) when its
/// uniform draw is ≥ `rate`.
pub(crate) fn keep_mask(key: u64, rate: f64, shape: &Shape, dtype: DType) -> Result<Tensor> {
    let scale = (1.0 / (1.0 - rate)) as f32;
    let mut keep = vec![0.0f32; shape.num_elements()];
    parallel::for_each_chunk(&mut keep, 8, |start, chunk| {
        for (i, m) in chunk.iter_mut().enumerate() {
            *m = if uniform_at(key, (start + i) as u64) >= rate { scale } else { 0.0 };
        }
    });
    let mask = Tensor::from_vec(keep, shape.clone())?;
    Ok(if dtype == DType::F32 { mask } else { mask.to_dtype(dtype) })
}

fn words(seed: u64, counter: u64) -> [i32; 4] {
    let split = |x: u64| [x as u32 as i32, (x >> 32) as u32 as i32];
    let [a, b] = split(seed);
    let [c, d] = split(counter);
    [a, b, c, d]
}

fn join(lo: i32, hi: i32) -> u64 {
    u64::from(lo as u32) | (u64::from(hi as u32) << 32)
}
