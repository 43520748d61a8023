//! Shape ops (reshape, transpose, broadcast_to, concat, slice) and cast.

use std::sync::Arc;

use smallvec::SmallVec;
use tapeflow_dtype::{DType, Result, Shape};
use tapeflow_kernels as kernels;

use crate::context::{Rule, record, record_batchable};
use crate::runtime::Tensor;

/// `tf.reshape`; the gradient is reshaped back.
pub(crate) fn reshape(x: &Tensor, dims: &[isize]) -> Result<Tensor> {
    let y = kernels::reshape(x, dims)?;
    record(&[x], &y, || Rule::Reshape { shape: x.shape().clone() });
    Ok(y)
}

/// `tf.transpose`; the gradient goes through the inverse permutation.
pub(crate) fn transpose(x: &Tensor, perm: &[usize]) -> Result<Tensor> {
    let y = kernels::transpose(x, perm)?;
    record(&[x], &y, || {
        let mut inverse = SmallVec::from_elem(0, perm.len());
        perm.iter().enumerate().for_each(|(i, &p)| inverse[p] = i);
        Rule::Transpose { inverse }
    });
    Ok(y)
}

/// `tf.broadcast_to`; the gradient is summed over the stretched dimensions.
pub(crate) fn broadcast_to(x: &Tensor, shape: &Shape) -> Result<Tensor> {
    let y = kernels::broadcast_to(x, shape)?;
    record(&[x], &y, || Rule::BroadcastTo { shape: x.shape().clone() });
    Ok(y)
}

/// `tf.concat`; each input's gradient is its slice of the upstream gradient.
pub(crate) fn concat(values: &[Tensor], axis: isize) -> Result<Tensor> {
    let refs: Vec<&Tensor> = values.iter().collect();
    let y = kernels::concat(&refs, axis)?;
    record_batchable(&refs, &y, || {
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
    let y = kernels::slice_axis(x, axis, start, len)?;
    record_batchable(&[x], &y, || {
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
    });
    Ok(y)
}

/// `tf.cast`: between float dtypes the gradient is cast back; nothing flows through int32.
pub(crate) fn cast(x: &Tensor, dtype: DType) -> Result<Tensor> {
    let y = x.to_dtype(dtype);
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
