//! The activations that carry an attribute (tf.nn.leaky_relu's slope, tf.clip_by_value's
//! bounds) and the fused gradient kernels of relu6, leaky ReLU and clip: one pass each,
//! written with the SIMD kernels of `simd::math`.

use half::f16;
use tapeflow_dtype::{DType, Error, Result, Storage, Tensor};

use super::{BLOCK, FloatIo, check_same_dtype};
use crate::isa::{self, Level};
use crate::parallel::for_each_chunk;
use crate::simd::{self, MaskGrad};

/// Runs `kernel` over a float tensor's elements in f32 (float16 widened in blocks and
/// rounded once), split over threads in fixed chunks.
fn map_float<T: FloatIo>(level: Level, src: &[T], kernel: impl Fn(&[f32], &mut [f32]) + Sync + Send) -> Storage {
    Storage::for_overwrite::<T>(src.len(), |dst| {
        for_each_chunk(dst, 1, |start, out| {
            let src = &src[start..start + out.len()];
            if let (Some(s), Some(o)) = (T::as_f32(src), T::as_f32_mut(out)) {
                return kernel(s, o);
            }
            let (mut wide_in, mut wide_out) = ([0.0f32; BLOCK], [0.0f32; BLOCK]);
            for (s, o) in src.chunks(BLOCK).zip(out.chunks_mut(BLOCK)) {
                let len = s.len();
                T::load(level, s, &mut wide_in[..len]);
                kernel(&wide_in[..len], &mut wide_out[..len]);
                T::store(level, &wide_out[..len], o);
            }
        })
    })
}

/// A scalar attribute as the tensor's dtype holds it: float32 rounds it once, float16
/// rounds the float32 value again (TensorFlow's float attributes are float32, cast to the
/// element type inside the kernel).
fn attr_as(dtype: DType, value: f64) -> f32 {
    let v = value as f32;
    if dtype == DType::F16 { f16::from_f32(v).to_f32() } else { v }
}

/// A scalar bound converted as `tf.convert_to_tensor(bound, dtype)` converts it: float16
/// directly from the f64 (no float32 step).
fn bound_as(dtype: DType, value: f64) -> f32 {
    if dtype == DType::F16 { f16::from_f64(value).to_f32() } else { value as f32 }
}

/// tf.nn.leaky_relu: `x > 0 ? x : alpha·x` for float tensors (alpha may be negative or
/// above 1). int32 is an `Err` here; the tape's op casts it to float32 first, as
/// TensorFlow's Python function does.
pub fn leaky_relu<R>(x: &Tensor<R>, alpha: f64) -> Result<Tensor<R>> {
    let level = isa::current();
    let a = attr_as(x.dtype(), alpha);
    let kernel = |s: &[f32], o: &mut [f32]| simd::leaky_relu_f32(level, a, s, o);
    let storage = match x.dtype() {
        DType::F32 => map_float(level, x.as_slice::<f32>()?, kernel),
        DType::F16 => map_float(level, x.as_slice::<f16>()?, kernel),
        DType::I32 | DType::Bool => {
            return Err(Error::UnsupportedDType { op: "leaky_relu", shape: x.shape().clone(), dtype: x.dtype() });
        }
    };
    Tensor::from_storage(storage, x.shape().clone())
}

/// tf.clip_by_value with scalar bounds: `maximum(minimum(x, max), min)`, NaN propagating
/// (a NaN bound makes every element NaN); min > max gives min everywhere, as the
/// composition does. int32 bounds must be integers within int32's range.
pub fn clip_by_value<R>(x: &Tensor<R>, min: f64, max: f64) -> Result<Tensor<R>> {
    let level = isa::current();
    let n = x.num_elements();
    let storage = match x.dtype() {
        DType::F32 | DType::F16 => {
            let (lo, hi) = (bound_as(x.dtype(), min), bound_as(x.dtype(), max));
            let kernel = |s: &[f32], o: &mut [f32]| {
                if lo.is_nan() || hi.is_nan() {
                    o.fill(f32::NAN);
                } else {
                    simd::clip_f32(level, lo, hi, s, o);
                }
            };
            if x.dtype() == DType::F32 {
                map_float(level, x.as_slice::<f32>()?, kernel)
            } else {
                map_float(level, x.as_slice::<f16>()?, kernel)
            }
        }
        DType::Bool => {
            return Err(Error::UnsupportedDType { op: "clip_by_value", shape: x.shape().clone(), dtype: x.dtype() });
        }
        DType::I32 => {
            let int = |v: f64| {
                let ok = v.fract() == 0.0 && v >= f64::from(i32::MIN) && v <= f64::from(i32::MAX);
                ok.then_some(v as i32).ok_or_else(|| Error::InvalidValue {
                    op: "clip_by_value",
                    shape: x.shape().clone(),
                    dtype: x.dtype(),
                    reason: format!("the bound {v} is not an int32 value"),
                })
            };
            let (lo, hi) = (int(min)?, int(max)?);
            let src = x.as_slice::<i32>()?;
            Storage::for_overwrite::<i32>(n, |dst| {
                for_each_chunk(dst, 1, |start, out| {
                    let src = &src[start..start + out.len()];
                    out.iter_mut().zip(src).for_each(|(o, &v)| *o = v.min(hi).max(lo));
                })
            })
        }
    };
    Tensor::from_storage(storage, x.shape().clone())
}

/// The gradient kernels of the masked activations, `rule` applied to (x, g) elementwise.
/// `x` (the op's input, or relu6's output) and the upstream gradient `g` must have one
/// shape and one float dtype.
fn mask_grad_of<R>(op: &'static str, rule: MaskGrad, x: &Tensor<R>, g: &Tensor<R>) -> Result<Tensor<R>> {
    check_same_dtype(op, x, g)?;
    if x.shape() != g.shape() {
        return Err(Error::shape_mismatch(op, x, g, "the gradient must have the input's shape"));
    }
    let level = isa::current();
    fn run<T: FloatIo>(level: Level, rule: MaskGrad, x: &[T], g: &[T]) -> Storage {
        Storage::for_overwrite::<T>(x.len(), |dst| {
            for_each_chunk(dst, 1, |start, out| {
                let end = start + out.len();
                let (x, g) = (&x[start..end], &g[start..end]);
                if let (Some(xs), Some(gs), Some(o)) = (T::as_f32(x), T::as_f32(g), T::as_f32_mut(out)) {
                    return simd::mask_grad_f32(level, rule, xs, gs, o);
                }
                let (mut wx, mut wg, mut wo) = ([0.0f32; BLOCK], [0.0f32; BLOCK], [0.0f32; BLOCK]);
                for ((xb, gb), o) in x.chunks(BLOCK).zip(g.chunks(BLOCK)).zip(out.chunks_mut(BLOCK)) {
                    let len = o.len();
                    T::load(level, xb, &mut wx[..len]);
                    T::load(level, gb, &mut wg[..len]);
                    simd::mask_grad_f32(level, rule, &wx[..len], &wg[..len], &mut wo[..len]);
                    T::store(level, &wo[..len], o);
                }
            })
        })
    }
    let storage = match x.dtype() {
        DType::F32 => run(level, rule, x.as_slice::<f32>()?, g.as_slice::<f32>()?),
        DType::F16 => run(level, rule, x.as_slice::<f16>()?, g.as_slice::<f16>()?),
        DType::I32 | DType::Bool => {
            return Err(Error::UnsupportedDType { op, shape: x.shape().clone(), dtype: x.dtype() });
        }
    };
    Tensor::from_storage(storage, x.shape().clone())
}

/// The gradient kernels of the masked activations, by op.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum MaskedGrad {
    /// TensorFlow's Relu6Grad of relu6's output: `g · (0 < y < 6 ? 1 : 0)`.
    Relu6,
    /// TensorFlow's LeakyReluGrad of the input: `x > 0 ? g : alpha·g`.
    LeakyRelu {
        /// The slope of the negative side.
        alpha: f64,
    },
    /// tf.clip_by_value's gradient: `min ≤ x ≤ max ? g : 0` (0 at NaN).
    Clip {
        /// The lower bound.
        min: f64,
        /// The upper bound.
        max: f64,
    },
}

/// `rule`'s gradient through the activation at `x` (the input; for relu6 the output)
/// given upstream `g` of the same shape and float dtype, in one pass. The attributes are
/// rounded to the dtype as the forward op rounds them.
pub fn mask_grad<R>(rule: MaskedGrad, x: &Tensor<R>, g: &Tensor<R>) -> Result<Tensor<R>> {
    let dtype = x.dtype();
    match rule {
        MaskedGrad::Relu6 => mask_grad_of("relu6_grad", MaskGrad::Relu6, x, g),
        MaskedGrad::LeakyRelu { alpha } => {
            mask_grad_of("leaky_relu_grad", MaskGrad::LeakyRelu(attr_as(dtype, alpha)), x, g)
        }
        MaskedGrad::Clip { min, max } => {
            mask_grad_of("clip_by_value_grad", MaskGrad::Clip(bound_as(dtype, min), bound_as(dtype, max)), x, g)
        }
    }
}
