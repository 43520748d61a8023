//! Weight initializers with Keras' definitions: Glorot (Xavier) and He, uniform and normal,
//! plus zeros and ones.
//!
//! ```
//! use tapeflow_dtype::{DType, Result};
//! use tapeflow_tape::{Variable, init};
//!
//! # fn main() -> Result<()> {
//! // keras.initializers.GlorotUniform(seed=42)(shape=(64, 128))
//! let w = Variable::new(init::glorot_uniform([64, 128], DType::F32, 42)?);
//! let limit = (6.0f32 / (64.0 + 128.0)).sqrt();
//! assert!(w.value().to_vec::<f32>()?.iter().all(|v| v.abs() <= limit));
//! # Ok(()) }
//! ```
//!
//! Random values come from ChaCha8 (`rand_chacha`) seeded with the `seed` argument through
//! `SeedableRng::seed_from_u64`, so a seed gives the same tensor on every run and every
//! platform, as a seeded Keras initializer gives the same values on every call. (The values
//! are not the ones Keras draws: its random generator is another.) Samples are drawn in
//! f64 and rounded once to the requested dtype, in row-major order.
//!
//! Fans follow Keras' `compute_fans`: for a 2-D shape `[in, out]`, `fan_in = in`,
//! `fan_out = out`; a scalar has fans 1 and a vector `[n]` has `n` for both; a rank ≥ 3
//! kernel `[..., in, out]` multiplies both by its receptive field (the product of the
//! leading dimensions).

use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use rand_distr::StandardNormal;
use tapeflow_dtype::{DType, Error, Result, Shape, f16};

use crate::runtime::Tensor;

/// `stddev` of a standard normal truncated to `[-2, 2]`: dividing by it gives the truncated
/// distribution the requested variance (Keras' constant).
const TRUNCATED_STDDEV: f64 = 0.879_625_661_034_239_8;

/// Keras' `compute_fans(shape)`: `(fan_in, fan_out)`.
pub fn compute_fans(dims: &[usize]) -> (f64, f64) {
    match dims {
        [] => (1.0, 1.0),
        [n] => (*n as f64, *n as f64),
        [fan_in, fan_out] => (*fan_in as f64, *fan_out as f64),
        [leading @ .., fan_in, fan_out] => {
            let receptive: f64 = leading.iter().map(|&d| d as f64).product();
            (*fan_in as f64 * receptive, *fan_out as f64 * receptive)
        }
    }
}

/// Which fan a variance-scaling initializer divides by.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FanMode {
    /// `fan_in` (He).
    FanIn,
    /// `fan_out`.
    FanOut,
    /// `(fan_in + fan_out) / 2` (Glorot).
    FanAvg,
}

/// The distribution of a variance-scaling initializer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Distribution {
    /// A normal truncated at two standard deviations (values beyond are redrawn), scaled so
    /// that the truncated distribution has the requested variance.
    TruncatedNormal,
    /// A plain normal.
    UntruncatedNormal,
    /// Uniform on `[-limit, limit]`, `limit = sqrt(3 · variance)`.
    Uniform,
}

/// An initializer: a recipe for a tensor of a given shape and dtype (Keras'
/// `keras.initializers.*`).
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Initializer {
    /// All zeros (any dtype).
    Zeros,
    /// All ones (any dtype).
    Ones,
    /// Keras' `VarianceScaling(scale, mode, distribution, seed)`: variance
    /// `scale / max(1, n)` where `n` is the fan chosen by `mode`.
    VarianceScaling {
        /// The scale of the variance.
        scale: f64,
        /// Which fan divides the scale.
        mode: FanMode,
        /// The distribution drawn from.
        distribution: Distribution,
        /// The random seed.
        seed: u64,
    },
}

impl Initializer {
    /// `GlorotUniform(seed)`: uniform on `±sqrt(6 / (fan_in + fan_out))`.
    pub fn glorot_uniform(seed: u64) -> Self {
        Self::variance_scaling(1.0, FanMode::FanAvg, Distribution::Uniform, seed)
    }

    /// `GlorotNormal(seed)`: truncated normal, stddev `sqrt(2 / (fan_in + fan_out)) / 0.8796…`.
    pub fn glorot_normal(seed: u64) -> Self {
        Self::variance_scaling(1.0, FanMode::FanAvg, Distribution::TruncatedNormal, seed)
    }

    /// `HeUniform(seed)`: uniform on `±sqrt(6 / fan_in)`.
    pub fn he_uniform(seed: u64) -> Self {
        Self::variance_scaling(2.0, FanMode::FanIn, Distribution::Uniform, seed)
    }

    /// `HeNormal(seed)`: truncated normal, stddev `sqrt(2 / fan_in) / 0.8796…`.
    pub fn he_normal(seed: u64) -> Self {
        Self::variance_scaling(2.0, FanMode::FanIn, Distribution::TruncatedNormal, seed)
    }

    fn variance_scaling(scale: f64, mode: FanMode, distribution: Distribution, seed: u64) -> Self {
        Initializer::VarianceScaling { scale, mode, distribution, seed }
    }

    /// The Keras name of the initializer, for error messages.
    fn name(&self) -> &'static str {
        match *self {
            Initializer::Zeros => "zeros",
            Initializer::Ones => "ones",
            Initializer::VarianceScaling { scale, mode, distribution, .. } => match (mode, distribution) {
                (FanMode::FanAvg, Distribution::Uniform) if scale == 1.0 => "glorot_uniform",
                (FanMode::FanAvg, Distribution::TruncatedNormal) if scale == 1.0 => "glorot_normal",
                (FanMode::FanIn, Distribution::Uniform) if scale == 2.0 => "he_uniform",
                (FanMode::FanIn, Distribution::TruncatedNormal) if scale == 2.0 => "he_normal",
                _ => "variance_scaling",
            },
        }
    }

    /// A tensor of `shape` and `dtype`. Random initializers need a float dtype (`Err` for
    /// int32, naming the initializer, the shape and the dtype).
    pub fn init(&self, shape: impl Into<Shape>, dtype: DType) -> Result<Tensor> {
        let shape = shape.into();
        match *self {
            Initializer::Zeros => Ok(Tensor::zeros(shape, dtype)),
            Initializer::Ones => Ok(Tensor::ones(shape, dtype)),
            Initializer::VarianceScaling { scale, mode, distribution, seed } => {
                if !dtype.is_float() {
                    return Err(Error::UnsupportedDType { op: self.name(), shape, dtype });
                }
                let Some(n) = shape.checked_num_elements() else {
                    return Err(Error::InvalidArgument {
                        op: self.name(),
                        reason: format!("shape {shape} {dtype} has more elements than memory can index"),
                    });
                };
                let (fan_in, fan_out) = compute_fans(shape.dims());
                let fan = match mode {
                    FanMode::FanIn => fan_in,
                    FanMode::FanOut => fan_out,
                    FanMode::FanAvg => (fan_in + fan_out) / 2.0,
                };
                let variance = scale / fan.max(1.0);
                let mut rng = ChaCha8Rng::seed_from_u64(seed);
                let mut draw: Box<dyn FnMut() -> f64> = match distribution {
                    Distribution::Uniform => {
                        let limit = (3.0 * variance).sqrt();
                        Box::new(move || rng.random_range(-limit..=limit))
                    }
                    Distribution::UntruncatedNormal => {
                        let stddev = variance.sqrt();
                        Box::new(move || stddev * rng.sample::<f64, _>(StandardNormal))
                    }
                    Distribution::TruncatedNormal => {
                        let stddev = variance.sqrt() / TRUNCATED_STDDEV;
                        Box::new(move || {
                            loop {
                                let z: f64 = rng.sample(StandardNormal);
                                if z.abs() <= 2.0 {
                                    break stddev * z;
                                }
                            }
                        })
                    }
                };
                match dtype {
                    DType::F16 => Tensor::from_vec((0..n).map(|_| f16::from_f64(draw())).collect(), shape),
                    _ => Tensor::from_vec((0..n).map(|_| draw() as f32).collect(), shape),
                }
            }
        }
    }
}

/// Zeros of `shape` and `dtype` (`keras.initializers.Zeros`).
pub fn zeros(shape: impl Into<Shape>, dtype: DType) -> Tensor {
    Tensor::zeros(shape, dtype)
}

/// Ones of `shape` and `dtype` (`keras.initializers.Ones`).
pub fn ones(shape: impl Into<Shape>, dtype: DType) -> Tensor {
    Tensor::ones(shape, dtype)
}

/// `keras.initializers.GlorotUniform(seed)(shape, dtype)`; see [`Initializer::glorot_uniform`].
pub fn glorot_uniform(shape: impl Into<Shape>, dtype: DType, seed: u64) -> Result<Tensor> {
    Initializer::glorot_uniform(seed).init(shape, dtype)
}

/// `keras.initializers.GlorotNormal(seed)(shape, dtype)`; see [`Initializer::glorot_normal`].
pub fn glorot_normal(shape: impl Into<Shape>, dtype: DType, seed: u64) -> Result<Tensor> {
    Initializer::glorot_normal(seed).init(shape, dtype)
}

/// `keras.initializers.HeUniform(seed)(shape, dtype)`; see [`Initializer::he_uniform`].
pub fn he_uniform(shape: impl Into<Shape>, dtype: DType, seed: u64) -> Result<Tensor> {
    Initializer::he_uniform(seed).init(shape, dtype)
}

/// `keras.initializers.HeNormal(seed)(shape, dtype)`; see [`Initializer::he_normal`].
pub fn he_normal(shape: impl Into<Shape>, dtype: DType, seed: u64) -> Result<Tensor> {
    Initializer::he_normal(seed).init(shape, dtype)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fans_follow_keras_compute_fans() {
        assert_eq!(compute_fans(&[]), (1.0, 1.0));
        assert_eq!(compute_fans(&[7]), (7.0, 7.0));
        assert_eq!(compute_fans(&[64, 10]), (64.0, 10.0));
        // a 3×3 conv kernel with 16 input and 32 output channels: receptive field 9
        assert_eq!(compute_fans(&[3, 3, 16, 32]), (144.0, 288.0));
    }

    #[test]
    fn names_the_initializer_in_errors() {
        let err = he_normal([2, 3], DType::I32, 1).unwrap_err().to_string();
        assert!(err.contains("he_normal") && err.contains("(2, 3)") && err.contains("int32"), "{err}");
        let err = Initializer::variance_scaling(1.0, FanMode::FanOut, Distribution::UntruncatedNormal, 0)
            .init([1], DType::I32)
            .unwrap_err()
            .to_string();
        assert!(err.contains("variance_scaling"), "{err}");
    }
}
