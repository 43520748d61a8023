//! Shape ops (reshape, transpose, broadcast_to, concat, slice) and cast.

use std::sync::Arc;

use tapeflow_dtype::{DType, Result, Shape};
use tapeflow_kernels as kernels;

use crate::context::record_custom;
use crate::ops::binary::unbroadcast;
use crate::runtime::Tensor;

/// `tf.reshape`; the gradient is reshaped back.
pub(crate) fn reshape(x: &Tensor, dims: &[isize]) -> Result<Tensor> {
    let y = kernels::reshape(x, dims)?;
    record_custom(&[x], &y, || {
        let back: Vec<isize> = x.dims().iter().map(|&d| d as isize).collect();
        Arc::new(move |g: &Tensor, _: &[bool]| Ok(vec![Some(reshape(g, &back)?)]))
    });
    Ok(y)
}

/// `tf.transpose`; the gradient goes through the inverse permutation.
pub(crate) fn transpose(x: &Tensor, perm: &[usize]) -> Result<Tensor> {
    let y = kernels::transpose(x, perm)?;
    record_custom(&[x], &y, || {
        let mut inverse = vec![0; perm.len()];
        perm.iter().enumerate().for_each(|(i, &p)| inverse[p] = i);
        Arc::new(move |g: &Tensor, _: &[bool]| Ok(vec![Some(transpose(g, &inverse)?)]))
    });
    Ok(y)
}

/// `tf.broadcast_to`; the gradient is summed over the stretched dimensions.
pub(crate) fn broadcast_to(x: &Tensor, shape: &Shape) -> Result<Tensor> {
    let y = kernels::broadcast_to(x, shape)?;
    record_custom(&[x], &y, || {
        let original = x.shape().clone();
        Arc::new(move |g: &Tensor, _: &[bool]| Ok(vec![Some(unbroadcast(g, &original)?)]))
    });
    Ok(y)
}

/// `tf.concat`; each input's gradient is its slice of the upstream gradient.
pub(crate) fn concat(values: &[Tensor], axis: isize) -> Result<Tensor> {
    let refs: Vec<&Tensor> = values.iter().collect();
    let y = kernels::concat(&refs, axis)?;
    record_custom(&refs, &y, || {
        let resolved = values[0].shape().resolve_axis(axis).unwrap_or(0);
        let widths: Vec<usize> = values.iter().map(|v| v.dims()[resolved]).collect();
        Arc::new(move |g: &Tensor, needs: &[bool]| {
            let mut start = 0;
            let mut grads = Vec::with_capacity(widths.len());
            for (&width, &need) in widths.iter().zip(needs) {
                grads.push(if need { Some(slice(g, resolved as isize, start, width)?) } else { None });
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
    record_custom(&[x], &y, || {
        let dims = x.dims().to_vec();
        let resolved = x.shape().resolve_axis(axis).unwrap_or(0);
        let dtype = x.dtype();
        Arc::new(move |g: &Tensor, _: &[bool]| {
            let zeros = |width: usize| {
                let mut d = dims.clone();
                d[resolved] = width;
                Tensor::zeros(d, dtype)
            };
            let after = dims[resolved] - start - len;
            let parts = [zeros(start), g.clone(), zeros(after)];
            Ok(vec![Some(concat(&parts, resolved as isize)?)])
        })
    });
    Ok(y)
}

/// `tf.cast`: between float dtypes the gradient is cast back; nothing flows through int32.
pub(crate) fn cast(x: &Tensor, dtype: DType) -> Result<Tensor> {
    let y = x.to_dtype(dtype);
    if x.dtype().is_float() && dtype.is_float() {
        record_custom(&[x], &y, || {
            let back = x.dtype();
            Arc::new(move |g: &Tensor, _: &[bool]| Ok(vec![Some(cast(g, back)?)]))
        });
    }
    Ok(y)
}
