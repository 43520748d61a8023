//! Shape ops (reshape, transpose, broadcast_to, concat, slice along an axis, squeeze,
//! expand_dims, stack, unstack, split, tile) and cast.

use std::sync::Arc;

use smallvec::SmallVec;
use tapeflow_dtype::{DType, Error, Result, Shape};
use tapeflow_kernels as kernels;

use crate::context::{Rule, record, record_batchable};
use crate::forward::tangent_at;
use crate::runtime::Tensor;
use crate::trace;

/// `tf.reshape`; the gradient is reshaped back.
pub(crate) fn reshape(x: &Tensor, dims: &[isize]) -> Result<Tensor> {
    // Inline for ranks ≤ 5: the eager path allocates nothing for the capture's sake.
    let target: SmallVec<[isize; 5]> = SmallVec::from_slice(dims);
    let y = trace::op("reshape", [x], move |[x]| kernels::reshape(x, &target))?;
    record(&[x], &y, || Rule::Reshape { shape: x.shape().clone() });
    Ok(y)
}

/// `tf.transpose`; the gradient goes through the inverse permutation.
pub(crate) fn transpose(x: &Tensor, perm: &[usize]) -> Result<Tensor> {
    let order: SmallVec<[usize; 5]> = SmallVec::from_slice(perm);
    let y = trace::op("transpose", [x], move |[x]| kernels::transpose(x, &order))?;
    record(&[x], &y, || {
        let mut inverse = SmallVec::from_elem(0, perm.len());
        perm.iter().enumerate().for_each(|(i, &p)| inverse[p] = i);
        Rule::Transpose { inverse }
    });
    Ok(y)
}

/// The JVP of a transpose whose inverse permutation is `inverse`: the tangent transposed
/// by the forward permutation.
pub(crate) fn transpose_jvp(t: &Tensor, inverse: &[usize]) -> Result<Tensor> {
    let mut perm = vec![0; inverse.len()];
    inverse.iter().enumerate().for_each(|(i, &p)| perm[p] = i);
    transpose(t, &perm)
}

/// `tf.broadcast_to`; the gradient is summed over the stretched dimensions.
pub(crate) fn broadcast_to(x: &Tensor, shape: &Shape) -> Result<Tensor> {
    let target = shape.clone();
    let y = trace::op("broadcast_to", [x], move |[x]| kernels::broadcast_to(x, &target))?;
    record(&[x], &y, || Rule::BroadcastTo { shape: x.shape().clone() });
    Ok(y)
}

/// `tf.concat`; each input's gradient is its slice of the upstream gradient.
pub(crate) fn concat(values: &[Tensor], axis: isize) -> Result<Tensor> {
    let refs: Vec<&Tensor> = values.iter().collect();
    let y = trace::op_n("concat", values, move |values| {
        let refs: Vec<&Tensor> = values.iter().collect();
        kernels::concat(&refs, axis)
    })?;
    // Linear: the concat of the tangents, zeros for inputs without one.
    let jvp = |t: &[Option<Tensor>]| {
        let parts: Vec<Tensor> = t
            .iter()
            .zip(values)
            .map(|(t, v)| t.clone().unwrap_or_else(|| Tensor::zeros(v.shape().clone(), v.dtype())))
            .collect();
        concat(&parts, axis)
    };
    record_batchable(&refs, &y, jvp, || {
        let resolved = values[0].shape().resolve_axis(axis).unwrap_or(0);
        let widths: Vec<usize> = values.iter().map(|v| v.dims()[resolved]).collect();
        Arc::new(move |g: &Tensor, needs: &[bool], batched: bool| {
            // Batched, g's axes are x's shifted by the seed axis.
            let along = (resolved + usize::from(batched)) as isize;
            let mut start = 0;
            let mut grads = Vec::with_capacity(widths.len());
            for (&width, &need) in widths.iter().zip(needs) {
                grads.push(if need { Some(slice(g, along, start, width)?) } else { None });
                start += width;
            }
            Ok(grads)
        })
    });
    Ok(y)
}

/// Elements `start..start + len` along `axis`; the gradient is padded back with zeros.
pub(crate) fn slice(x: &Tensor, axis: isize, start: usize, len: usize) -> Result<Tensor> {
    let y = trace::op("slice", [x], move |[x]| kernels::slice_axis(x, axis, start, len))?;
    record_batchable(
        &[x],
        &y,
        |t| slice(tangent_at(t, 0)?, axis, start, len),
        || {
            let dims = x.dims().to_vec();
            let resolved = x.shape().resolve_axis(axis).unwrap_or(0);
            let dtype = x.dtype();
            Arc::new(move |g: &Tensor, _: &[bool], batched: bool| {
                // Batched, the zeros get g's seed axis in front and the axis shifts by one.
                let (lead, along) = if batched { (g.dims().first().copied(), resolved + 1) } else { (None, resolved) };
                let zeros = |width: usize| {
                    let mut d: Vec<usize> = lead.into_iter().chain(dims.iter().copied()).collect();
                    d[along] = width;
                    Tensor::zeros(d, dtype)
                };
                let after = dims[resolved] - start - len;
                let parts = [zeros(start), g.clone(), zeros(after)];
                Ok(vec![Some(concat(&parts, along as isize)?)])
            })
        },
    );
    Ok(y)
}

/// `tf.cast`: between float dtypes the gradient is cast back; nothing flows through int32.
pub(crate) fn cast(x: &Tensor, dtype: DType) -> Result<Tensor> {
    let y = trace::op("cast", [x], move |[x]| Ok(x.to_dtype(dtype)))?;
    if x.dtype().is_float() && dtype.is_float() {
        record(&[x], &y, || Rule::Cast { from: x.dtype() });
    }
    Ok(y)
}

/// The gradient of a reshape from `shape` for `g` with a leading seed axis: to
/// `[R] ++ shape`.
pub(crate) fn batched_reshape_back(g: &Tensor, shape: &Shape) -> Result<Tensor> {
    let mut dims: SmallVec<[isize; 5]> = smallvec::smallvec![g.dims().first().copied().unwrap_or(1) as isize];
    dims.extend(signed(shape));
    reshape(g, &dims)
}

/// The gradient of a transpose (inverse permutation `inverse`) for `g` with a leading seed
/// axis: the seed axis stays first, the others move as without it.
pub(crate) fn batched_transpose_back(g: &Tensor, inverse: &[usize]) -> Result<Tensor> {
    let perm: SmallVec<[usize; 5]> = std::iter::once(0).chain(inverse.iter().map(|&p| p + 1)).collect();
    transpose(g, &perm)
}

/// `shape`'s dimensions as the signed dimensions `reshape` takes.
pub(crate) fn signed(shape: &Shape) -> SmallVec<[isize; 4]> {
    shape.dims().iter().map(|&d| d as isize).collect()
}

// ---- Catalog II: squeeze, expand_dims, stack, unstack, split, tile (all built on the ops
// above, so their gradients are reshapes, slices, concats and sums).

fn shape_error(op: &'static str, x: &Tensor, reason: String) -> Error {
    Error::InvalidArgument { op, reason: format!("{reason} (operand of shape {} {})", x.shape(), x.dtype()) }
}

/// `tf.squeeze(x, axes)`: drops the listed axes, which must have size 1; `&[]` drops every
/// axis of size 1. The gradient is reshaped back.
pub(crate) fn squeeze(x: &Tensor, axes: &[isize]) -> Result<Tensor> {
    const OP: &str = "squeeze";
    let mut drop = vec![axes.is_empty(); x.rank()];
    for &axis in axes {
        let a = x.shape().resolve_axis(axis).ok_or_else(|| invalid_axis(OP, axis, x))?;
        if x.dims()[a] != 1 {
            return Err(shape_error(OP, x, format!("cannot squeeze axis {axis} of size {}", x.dims()[a])));
        }
        drop[a] = true;
    }
    let dims: Vec<usize> =
        x.dims().iter().zip(&drop).filter(|&(&d, &dropped)| !(dropped && d == 1)).map(|(&d, _)| d).collect();
    reshape_to(x, dims)
}

/// `x` under the dimensions `dims` (same element count), recorded as a reshape. Unlike
/// [`reshape`] the dimensions are not signed, so an empty tensor with a dimension past
/// `isize::MAX` keeps it (`[usize::MAX, 0]`).
pub(crate) fn reshape_to(x: &Tensor, dims: Vec<usize>) -> Result<Tensor> {
    let y = trace::op("reshape", [x], move |[x]| Ok(x.with_shape(dims.clone())?.with_new_id()))?;
    record_batchable(
        &[x],
        &y,
        |t| reshape_to(tangent_at(t, 0)?, y.dims().to_vec()),
        || {
            let dims = x.dims().to_vec();
            Arc::new(move |g: &Tensor, _: &[bool], batched: bool| {
                // Batched, the seed axis stays in front.
                let back: Vec<usize> = g.dims().iter().take(usize::from(batched)).chain(&dims).copied().collect();
                Ok(vec![Some(reshape_to(g, back)?)])
            })
        },
    );
    Ok(y)
}

/// `tf.expand_dims(x, axis)`: a new axis of size 1 at `axis` (in `-(rank + 1)..=rank`).
pub(crate) fn expand_dims(x: &Tensor, axis: isize) -> Result<Tensor> {
    let a = resolve_new_axis("expand_dims", x, axis)?;
    let mut dims = x.dims().to_vec();
    dims.insert(a, 1);
    reshape_to(x, dims)
}

/// An axis of a tensor one rank larger than `x` (where stack and expand_dims insert).
fn resolve_new_axis(op: &'static str, x: &Tensor, axis: isize) -> Result<usize> {
    let rank = x.rank() as isize + 1;
    let a = if axis < 0 { axis + rank } else { axis };
    if (0..rank).contains(&a) { Ok(a as usize) } else { Err(invalid_axis(op, axis, x)) }
}

fn invalid_axis(op: &'static str, axis: isize, x: &Tensor) -> Error {
    Error::InvalidAxis { op, axis, shape: x.shape().clone(), dtype: x.dtype() }
}

/// `tf.stack(values, axis)`: tensors of one shape and dtype joined along a new axis.
pub(crate) fn stack(values: &[Tensor], axis: isize) -> Result<Tensor> {
    const OP: &str = "stack";
    let Some(first) = values.first() else {
        return Err(Error::InvalidArgument { op: OP, reason: "needs at least one tensor".into() });
    };
    let a = resolve_new_axis(OP, first, axis)?;
    for v in values {
        if v.dtype() != first.dtype() {
            return Err(Error::dtype_mismatch(OP, first, v));
        }
        if v.shape() != first.shape() {
            return Err(Error::shape_mismatch(OP, first, v, "stacked tensors must have one shape".to_string()));
        }
    }
    let expanded = values.iter().map(|v| expand_dims(v, a as isize)).collect::<Result<Vec<_>>>()?;
    concat(&expanded, a as isize)
}

/// `tf.unstack(x, axis)`: the slices of `x` along `axis`, that axis dropped.
pub(crate) fn unstack(x: &Tensor, axis: isize) -> Result<Vec<Tensor>> {
    let a = x.shape().resolve_axis(axis).ok_or_else(|| invalid_axis("unstack", axis, x))?;
    // Only an empty tensor can have an axis this long ([0, 2^64 - 1]).
    if x.dims()[a] > i32::MAX as usize {
        return Err(shape_error("unstack", x, format!("axis {axis} would give {} pieces", x.dims()[a])));
    }
    let mut dims = x.dims().to_vec();
    dims.remove(a);
    (0..x.dims()[a]).map(|i| reshape_to(&slice(x, a as isize, i, 1)?, dims.clone())).collect()
}

/// `tf.split(x, sizes, axis)`: consecutive pieces of `x` along `axis` of the given sizes,
/// which must add up to the axis's length.
pub(crate) fn split(x: &Tensor, sizes: &[usize], axis: isize) -> Result<Vec<Tensor>> {
    const OP: &str = "split";
    let a = x.shape().resolve_axis(axis).ok_or_else(|| invalid_axis(OP, axis, x))?;
    let total = sizes.iter().try_fold(0usize, |t, &s| t.checked_add(s));
    if total != Some(x.dims()[a]) {
        return Err(shape_error(OP, x, format!("sizes {sizes:?} do not add up to axis {axis}'s length")));
    }
    let mut start = 0;
    sizes
        .iter()
        .map(|&len| {
            start += len;
            slice(x, a as isize, start - len, len)
        })
        .collect()
}

/// `tf.tile(x, multiples)`: `x` repeated `multiples[i]` times along axis `i`, as a reshape
/// to `[1, d₀, 1, d₁, …]`, a broadcast to `[m₀, d₀, m₁, d₁, …]` and a reshape to
/// `[m₀·d₀, m₁·d₁, …]`; the gradient is the reshape back and a sum over the copies.
pub(crate) fn tile(x: &Tensor, multiples: &[usize]) -> Result<Tensor> {
    const OP: &str = "tile";
    if multiples.len() != x.rank() {
        return Err(shape_error(OP, x, format!("multiples {multiples:?} need one entry per axis")));
    }
    let mut spread: Vec<usize> = Vec::with_capacity(2 * x.rank());
    let mut target: Vec<usize> = Vec::with_capacity(x.rank());
    for (&d, &m) in x.dims().iter().zip(multiples) {
        spread.extend([m, d]);
        target.push(d.checked_mul(m).ok_or_else(|| shape_error(OP, x, format!("multiples {multiples:?} overflow")))?);
    }
    kernels::layout::checked_output_len(OP, x, &Shape::from(spread.as_slice()))?;
    let ones: Vec<usize> = x.dims().iter().flat_map(|&d| [1, d]).collect();
    reshape_to(&broadcast_to(&reshape_to(x, ones)?, &Shape::from(spread))?, target)
}
