//! `tf.nn.bias_add`, `tf.nn.moments`, `tf.nn.batch_normalization`, `tf.nn.l2_loss` and
//! `tf.nn.l2_normalize`, composed of the differentiable ops in TensorFlow's order (so the
//! values, and the gradients of every order, are TensorFlow's).

use tapeflow_dtype::{DType, Error, Result, Shape};
use tapeflow_kernels as kernels;

use crate::ops::{TensorMath, stop_gradient};
use crate::runtime::Tensor;

/// An optional tensor argument ([`batch_normalization`]'s offset and scale): a `Tensor` or a
/// `Variable`, so `Some(&t)` and `None` both work without naming a type.
pub trait TensorArg {
    /// The argument's value (a variable read).
    fn value(&self) -> Tensor;
}

impl<T: TensorMath> TensorArg for T {
    fn value(&self) -> Tensor {
        self.to_tensor()
    }
}

/// `x` must be float: an `Err` naming `op` otherwise.
pub(crate) fn float_operand(op: &'static str, x: &Tensor) -> Result<()> {
    if x.dtype().is_float() {
        Ok(())
    } else {
        Err(Error::UnsupportedDType { op, shape: x.shape().clone(), dtype: x.dtype() })
    }
}

/// `other` must have `x`'s dtype.
pub(crate) fn same_dtype(op: &'static str, x: &Tensor, other: &Tensor) -> Result<()> {
    if x.dtype() == other.dtype() { Ok(()) } else { Err(Error::dtype_mismatch(op, x, other)) }
}

/// `tf.nn.bias_add(value, bias)`: `bias` (1-D) added along the last axis of `value` (rank ≥ 2,
/// NHWC or `[..., C]`). The bias's gradient sums `g` over every other axis.
pub fn bias_add(value: impl TensorMath, bias: impl TensorMath) -> Result<Tensor> {
    let op = "bias_add";
    let (value, bias) = (value.to_tensor(), bias.to_tensor());
    float_operand(op, &value)?;
    same_dtype(op, &value, &bias)?;
    if value.rank() < 2 || bias.rank() != 1 || value.dims().last() != bias.dims().first() {
        return Err(Error::shape_mismatch(
            op,
            &value,
            &bias,
            "value must have rank at least 2 and bias be 1-D of the size of value's last dimension",
        ));
    }
    value.add(&bias)
}

/// `tf.nn.moments(x, axes, keepdims)`: `(mean, variance)` over `axes`, the variance taken
/// about the mean with the mean's gradient stopped (`mean((x - stop_gradient(mean))²)`),
/// as TensorFlow computes it; float16 is computed in float32 and cast back.
pub fn moments(x: impl TensorMath, axes: &[isize], keepdims: bool) -> Result<(Tensor, Tensor)> {
    let op = "moments";
    let x = x.to_tensor();
    float_operand(op, &x)?;
    // The axes must name axes of x (the kernels' check, with this op's name).
    let reduced = kernels::resolve_axes(op, &x, Some(axes))?;
    // The statistics are computed with their reduced axes kept: an empty input whose kept
    // shape no allocation can hold ([4, 2^64 − 1, 4, 0] over its last two axes) is this
    // op's Err, not its inner mean's.
    let kept: Vec<usize> =
        x.dims().iter().enumerate().map(|(k, &d)| if reduced.contains(&k) { 1 } else { d }).collect();
    kernels::layout::checked_output_len(op, &x, &Shape::from(kept))?;
    let y = if x.dtype() == DType::F16 { x.cast(DType::F32)? } else { x.clone() };
    let mean = y.mean(axes, true)?;
    let variance = y.squared_difference(stop_gradient(&mean))?.mean(axes, true)?;
    let (mean, variance) =
        if keepdims || axes.is_empty() { (mean, variance) } else { (mean.squeeze(axes)?, variance.squeeze(axes)?) };
    if x.dtype() == DType::F16 {
        Ok((mean.cast(DType::F16)?, variance.cast(DType::F16)?))
    } else {
        Ok((mean, variance))
    }
}

/// `tf.nn.batch_normalization(x, mean, variance, offset, scale, variance_epsilon)`:
/// `x · inv + (offset − mean · inv)` with `inv = rsqrt(variance + ε) · scale`, TensorFlow's
/// order of operations (`offset` and `scale` optional; every parameter broadcasts to `x`).
pub fn batch_normalization(
    x: impl TensorMath,
    mean: impl TensorMath,
    variance: impl TensorMath,
    offset: Option<&dyn TensorArg>,
    scale: Option<&dyn TensorArg>,
    variance_epsilon: f64,
) -> Result<Tensor> {
    let op = "batch_normalization";
    let x = x.to_tensor();
    float_operand(op, &x)?;
    let (mean, variance) = (mean.to_tensor(), variance.to_tensor());
    let (offset, scale) = (offset.map(TensorArg::value), scale.map(TensorArg::value));
    for p in [Some(&mean), Some(&variance), offset.as_ref(), scale.as_ref()].into_iter().flatten() {
        same_dtype(op, &x, p)?;
        if kernels::broadcast_shapes(op, &x, p)?.dims() != x.dims() {
            return Err(Error::shape_mismatch(op, &x, p, "every parameter must broadcast to the shape of x"));
        }
    }
    if !variance_epsilon.is_finite() || variance_epsilon < 0.0 {
        return Err(Error::InvalidArgument {
            op,
            reason: format!(
                "variance_epsilon must be finite and ≥ 0, not {variance_epsilon} (x {} {})",
                x.shape(),
                x.dtype()
            ),
        });
    }
    let mut inv = variance.add(variance_epsilon)?.rsqrt()?;
    if let Some(scale) = &scale {
        inv = inv.mul(scale)?;
    }
    let shift = match &offset {
        Some(offset) => offset.sub(mean.mul(&inv)?)?,
        None => mean.neg()?.mul(&inv)?,
    };
    x.mul(&inv)?.add(&shift)
}

/// `tf.nn.l2_loss(t)`: `sum(t²) / 2`, a scalar.
pub fn l2_loss(t: impl TensorMath) -> Result<Tensor> {
    let t = t.to_tensor();
    float_operand("l2_loss", &t)?;
    t.square()?.sum_all()?.mul(0.5)
}

/// `tf.nn.l2_normalize(x, axis)`: `x · rsqrt(max(sum(x², axis), 1e-12))` (TensorFlow's
/// epsilon, which rounds to 0 in float16 as it does there).
pub fn l2_normalize(x: impl TensorMath, axis: isize) -> Result<Tensor> {
    let x = x.to_tensor();
    float_operand("l2_normalize", &x)?;
    kernels::resolve_axes("l2_normalize", &x, Some(&[axis]))?;
    if x.num_elements() == 0 {
        // Nothing to normalize; the sum's keepdims shape ([1, 2^62] for (0, 2^62)) may not
        // even be allocatable.
        return x.mul(1.0);
    }
    let square_sum = x.square()?.sum(&[axis], true)?;
    x.mul(square_sum.maximum(1e-12)?.rsqrt()?)
}
