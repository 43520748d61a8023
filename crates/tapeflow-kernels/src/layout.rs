//! Shape ops and the broadcasting machinery: broadcast shapes and strides, reshape,
//! transpose, broadcast_to, concat and slicing along one axis.

use half::f16;
use smallvec::SmallVec;
use tapeflow_dtype::{DType, Element, Error, Result, Shape, Storage, Tensor};

/// Strides in elements, inline for up to six dimensions.
pub type Strides = SmallVec<[usize; 6]>;

/// The NumPy/TensorFlow broadcast of two shapes (trailing dims aligned, 1 stretches).
pub fn broadcast_shapes<R>(op: &'static str, a: &Tensor<R>, b: &Tensor<R>) -> Result<Shape> {
    broadcast_dims(a.dims(), b.dims()).ok_or_else(|| {
        Error::shape_mismatch(op, a, b, "they do not broadcast (trailing dimensions must be equal or 1)")
    })
}

/// The broadcast of two dimension lists, or `None` if they are incompatible.
pub fn broadcast_dims(a: &[usize], b: &[usize]) -> Option<Shape> {
    let rank = a.len().max(b.len());
    let mut out = vec![0usize; rank];
    for (i, o) in out.iter_mut().enumerate() {
        let da = (i + a.len()).checked_sub(rank).map_or(1, |j| a[j]);
        let db = (i + b.len()).checked_sub(rank).map_or(1, |j| b[j]);
        *o = match (da, db) {
            (x, y) if x == y => x,
            (1, y) => y,
            (x, 1) => x,
            _ => return None,
        };
    }
    Some(Shape::from(out))
}

/// The element count of `out`, the result shape of `op` on `x`, or an `Err` naming both when
/// no allocation could hold it (an empty `[2^62, 0]` reduced over its empty axis, a
/// `broadcast_to` target of 2^80 elements). Checked at the width kernels compute in (f32).
pub fn checked_output_len<R>(op: &'static str, x: &Tensor<R>, out: &Shape) -> Result<usize> {
    out.checked_len_for(DType::F32).ok_or_else(|| Error::InvalidShape {
        op,
        shape: x.shape().clone(),
        dtype: x.dtype(),
        target: out.dims().iter().map(|&d| d as isize).collect(),
        reason: "the result holds more elements than one allocation can".into(),
    })
}

/// Strides that read an operand of shape `dims` at every index of `out` (0 where the
/// operand is broadcast). `dims` must broadcast to `out`.
pub fn broadcast_strides(dims: &[usize], out: &[usize]) -> Strides {
    let mut strides: Strides = SmallVec::from_elem(0, out.len());
    let offset = out.len() - dims.len();
    let mut stride = 1;
    for i in (0..dims.len()).rev() {
        if dims[i] != 1 {
            strides[i + offset] = stride;
        }
        // Saturating: only an empty operand ([0, 2^62, 4]) overflows, and it is never read.
        stride = stride.saturating_mul(dims[i]);
    }
    strides
}

/// Calls `f(out_index, offsets)` for every element of `out` in row-major order, where
/// `offsets[i]` is the flat position in operand `i`, read through `strides[i]`.
pub fn for_each_strided<const N: usize>(out: &[usize], strides: [&[usize]; N], mut f: impl FnMut(usize, [usize; N])) {
    // Checked before any product: [2^62, 4, 0] has no elements and an overflowing prefix.
    if out.contains(&0) {
        return;
    }
    let rank = out.len();
    if rank == 0 {
        f(0, [0; N]);
        return;
    }
    let inner = out[rank - 1];
    let inner_strides: [usize; N] = std::array::from_fn(|i| strides[i][rank - 1]);
    let mut index = vec![0usize; rank];
    let mut base = [0usize; N];
    let mut flat = 0;
    loop {
        for j in 0..inner {
            f(flat + j, std::array::from_fn(|i| base[i] + j * inner_strides[i]));
        }
        flat += inner;
        // Odometer over the outer dimensions.
        let mut d = rank - 1;
        loop {
            if d == 0 {
                return;
            }
            d -= 1;
            index[d] += 1;
            for i in 0..N {
                base[i] += strides[i][d];
            }
            if index[d] < out[d] {
                break;
            }
            for i in 0..N {
                base[i] -= strides[i][d] * out[d];
            }
            index[d] = 0;
        }
    }
}

/// Gathers `x` (shape `dims`) read through `strides` into a new row-major buffer of
/// shape `out`: the single copy routine behind transpose and broadcast_to.
fn gather<R>(x: &Tensor<R>, out: &Shape, strides: &[usize]) -> Result<Tensor<R>> {
    fn run<T: Element>(src: &[T], out: &Shape, strides: &[usize]) -> Storage {
        Storage::for_overwrite::<T>(out.num_elements(), |dst| {
            let dims = out.dims();
            match (dims.split_last(), strides.split_last()) {
                // The last axis stays contiguous (a transpose keeping it, a broadcast that
                // does not stretch it): copy whole runs instead of walking element by
                // element (walking, the [64, 64, 64] transpose of a 64 × 64 batch_jacobian's
                // two leading axes took 23 % of its time in `perf`; copying runs, under 1 %).
                (Some((&inner, outer)), Some((1, outer_strides))) if inner > 1 => {
                    for_each_strided(outer, [outer_strides], |o, [i]| {
                        dst[o * inner..(o + 1) * inner].copy_from_slice(&src[i..i + inner]);
                    });
                }
                _ => for_each_strided(dims, [strides], |o, [i]| dst[o] = src[i]),
            }
        })
    }
    let storage = match x.dtype() {
        DType::F32 => run(x.as_slice::<f32>()?, out, strides),
        DType::F16 => run(x.as_slice::<f16>()?, out, strides),
        DType::I32 => run(x.as_slice::<i32>()?, out, strides),
        DType::Bool => run(x.as_slice::<bool>()?, out, strides),
    };
    Tensor::from_storage(storage, out.clone())
}

/// `tf.reshape`: the same elements under new dimensions; at most one may be `-1`
/// (inferred). Shares storage, no copy.
pub fn reshape<R>(x: &Tensor<R>, dims: &[isize]) -> Result<Tensor<R>> {
    let bad = |reason: &str| Error::InvalidShape {
        op: "reshape",
        shape: x.shape().clone(),
        dtype: x.dtype(),
        target: dims.to_vec(),
        reason: reason.into(),
    };
    let mut inferred = None;
    let mut known = 1usize;
    for (i, &d) in dims.iter().enumerate() {
        match d {
            -1 if inferred.is_none() => inferred = Some(i),
            -1 => return Err(bad("only one dimension may be -1")),
            d if d < 0 => return Err(bad("dimensions must be non-negative or -1")),
            d => known = known.checked_mul(d as usize).ok_or_else(|| bad("too many elements"))?,
        }
    }
    let n = x.num_elements();
    let mut out: Vec<usize> = dims.iter().map(|&d| d.max(0) as usize).collect();
    if let Some(i) = inferred {
        if known == 0 || !n.is_multiple_of(known) {
            return Err(bad("the element count is not divisible by the known dimensions"));
        }
        out[i] = n / known;
    } else if known != n {
        return Err(bad("the element counts differ"));
    }
    x.with_shape(out)
}

/// `tf.transpose(x, perm)`: output dimension `i` is input dimension `perm[i]`.
pub fn transpose<R>(x: &Tensor<R>, perm: &[usize]) -> Result<Tensor<R>> {
    let rank = x.rank();
    let mut seen = vec![false; rank];
    let valid = perm.len() == rank && perm.iter().all(|&p| p < rank && !std::mem::replace(&mut seen[p], true));
    if !valid {
        return Err(Error::InvalidPermutation {
            op: "transpose",
            perm: perm.to_vec(),
            shape: x.shape().clone(),
            dtype: x.dtype(),
        });
    }
    if perm.iter().enumerate().all(|(i, &p)| i == p) {
        return Ok(x.with_new_id());
    }
    let in_strides = x.shape().strides();
    let out = Shape::from(perm.iter().map(|&p| x.dims()[p]).collect::<Vec<_>>());
    let strides: Strides = perm.iter().map(|&p| in_strides[p]).collect();
    gather(x, &out, &strides)
}

/// `tf.broadcast_to`: the target must have at least `x`'s rank, and each of `x`'s
/// trailing dimensions must equal the target's or be 1.
pub fn broadcast_to<R>(x: &Tensor<R>, shape: &Shape) -> Result<Tensor<R>> {
    let fits = shape.rank() >= x.rank() && broadcast_dims(x.dims(), shape.dims()).is_some_and(|s| &s == shape);
    if !fits {
        return Err(Error::InvalidShape {
            op: "broadcast_to",
            shape: x.shape().clone(),
            dtype: x.dtype(),
            target: shape.dims().iter().map(|&d| d as isize).collect(),
            reason: "each dimension must equal the target's or be 1".into(),
        });
    }
    if x.shape() == shape {
        return Ok(x.with_new_id());
    }
    checked_output_len("broadcast_to", x, shape)?;
    gather(x, shape, &broadcast_strides(x.dims(), shape.dims()))
}

/// Splits `dims` around `axis` into (outer, length, inner) element counts.
pub fn split_at_axis(dims: &[usize], axis: usize) -> (usize, usize, usize) {
    // Saturating: only a shape with no elements can overflow ([2^62, 4, 0]); callers
    // skip the loops of an empty tensor.
    let outer = dims[..axis].iter().fold(1usize, |a, &d| a.saturating_mul(d));
    let inner = dims[axis + 1..].iter().fold(1usize, |a, &d| a.saturating_mul(d));
    (outer, dims[axis], inner)
}

/// `tf.concat(values, axis)`: all operands share dtype, rank and every dimension but `axis`.
pub fn concat<R>(values: &[&Tensor<R>], axis: isize) -> Result<Tensor<R>> {
    let Some(first) = values.first() else {
        return Err(Error::InvalidArgument { op: "concat", reason: "needs at least one tensor".into() });
    };
    let resolved = first.shape().resolve_axis(axis).ok_or_else(|| Error::InvalidAxis {
        op: "concat",
        axis,
        shape: first.shape().clone(),
        dtype: first.dtype(),
    })?;
    let mut total = 0usize;
    for v in values {
        if v.dtype() != first.dtype() {
            return Err(Error::dtype_mismatch("concat", first, v));
        }
        let same_other_dims = v.rank() == first.rank()
            && v.dims().iter().zip(first.dims()).enumerate().all(|(i, (a, b))| i == resolved || a == b);
        if !same_other_dims {
            return Err(Error::shape_mismatch(
                "concat",
                first,
                v,
                format!("all dimensions except axis {axis} must be equal"),
            ));
        }
        total = total.saturating_add(v.dims()[resolved]);
    }
    let mut out_dims = first.dims().to_vec();
    out_dims[resolved] = total;
    let n = checked_output_len("concat", first, &Shape::from(out_dims.as_slice()))?;
    let (outer, _, inner) = split_at_axis(&out_dims, resolved);
    // No elements: no rows to copy, however many `outer` counts ([2^61, 1, 0]).
    let (outer, inner) = if n == 0 { (0, 0) } else { (outer, inner) };

    fn run<R, T: Element>(
        values: &[&Tensor<R>],
        outer: usize,
        inner: usize,
        axis: usize,
        total: usize,
    ) -> Result<Storage> {
        let parts =
            values.iter().map(|v| Ok((v.as_slice::<T>()?, v.dims()[axis] * inner))).collect::<Result<Vec<_>>>()?;
        Ok(Storage::for_overwrite::<T>(outer * total * inner, |dst| {
            let mut pos = 0;
            for o in 0..outer {
                for (src, width) in &parts {
                    dst[pos..pos + width].copy_from_slice(&src[o * width..(o + 1) * width]);
                    pos += width;
                }
            }
        }))
    }
    let storage = match first.dtype() {
        DType::F32 => run::<R, f32>(values, outer, inner, resolved, total)?,
        DType::F16 => run::<R, f16>(values, outer, inner, resolved, total)?,
        DType::I32 => run::<R, i32>(values, outer, inner, resolved, total)?,
        DType::Bool => run::<R, bool>(values, outer, inner, resolved, total)?,
    };
    Tensor::from_storage(storage, out_dims)
}

/// Elements `start..start + len` of `x` along `axis` (the inverse of concat).
pub fn slice_axis<R>(x: &Tensor<R>, axis: isize, start: usize, len: usize) -> Result<Tensor<R>> {
    let resolved = x.shape().resolve_axis(axis).ok_or_else(|| Error::InvalidAxis {
        op: "slice",
        axis,
        shape: x.shape().clone(),
        dtype: x.dtype(),
    })?;
    let (outer, length, inner) = split_at_axis(x.dims(), resolved);
    if start.checked_add(len).is_none_or(|end| end > length) {
        return Err(Error::InvalidArgument {
            op: "slice",
            reason: format!(
                "range {start}..{} is outside axis {axis} of shape {} {}",
                start.saturating_add(len),
                x.shape(),
                x.dtype()
            ),
        });
    }
    let mut out_dims = x.dims().to_vec();
    out_dims[resolved] = len;
    // Never larger than `x`; an empty result copies nothing, however many `outer` counts.
    let outer = if Shape::from(out_dims.as_slice()).num_elements() == 0 { 0 } else { outer };
    fn run<T: Element>(src: &[T], outer: usize, length: usize, inner: usize, start: usize, len: usize) -> Storage {
        Storage::for_overwrite::<T>(outer * len * inner, |dst| {
            for o in 0..outer {
                let from = (o * length + start) * inner;
                dst[o * len * inner..(o + 1) * len * inner].copy_from_slice(&src[from..from + len * inner]);
            }
        })
    }
    let storage = match x.dtype() {
        DType::F32 => run(x.as_slice::<f32>()?, outer, length, inner, start, len),
        DType::F16 => run(x.as_slice::<f16>()?, outer, length, inner, start, len),
        DType::I32 => run(x.as_slice::<i32>()?, outer, length, inner, start, len),
        DType::Bool => run(x.as_slice::<bool>()?, outer, length, inner, start, len),
    };
    Tensor::from_storage(storage, out_dims)
}

#[cfg(test)]
mod tests {
    use super::*;
    type T = Tensor<()>;

    #[test]
    fn broadcast_follows_numpy() {
        assert_eq!(broadcast_dims(&[2, 1, 3], &[4, 1]).unwrap().dims(), &[2, 4, 3]);
        assert_eq!(broadcast_dims(&[], &[3]).unwrap().dims(), &[3]);
        assert!(broadcast_dims(&[2, 3], &[4]).is_none());
    }

    #[test]
    fn transpose_moves_elements() {
        let x = T::from_vec((0..6).map(|v| v as f32).collect(), [2, 3]).unwrap();
        let t = transpose(&x, &[1, 0]).unwrap();
        assert_eq!(t.dims(), &[3, 2]);
        assert_eq!(t.to_vec::<f32>().unwrap(), vec![0.0, 3.0, 1.0, 4.0, 2.0, 5.0]);
        assert!(transpose(&x, &[0, 0]).is_err());
        assert!(transpose(&x, &[0]).is_err());
    }

    #[test]
    fn reshape_infers_one_dimension() {
        let x = T::from_vec(vec![0i32; 12], [3, 4]).unwrap();
        assert_eq!(reshape(&x, &[-1, 6]).unwrap().dims(), &[2, 6]);
        assert!(reshape(&x, &[-1, -1]).is_err());
        assert!(reshape(&x, &[5, -1]).is_err());
        assert!(reshape(&x, &[2, 5]).is_err());
    }

    #[test]
    fn concat_and_slice_are_inverse() {
        let a = T::from_vec(vec![1.0f32, 2.0, 3.0, 4.0], [2, 2]).unwrap();
        let b = T::from_vec(vec![5.0f32, 6.0], [2, 1]).unwrap();
        let c = concat(&[&a, &b], -1).unwrap();
        assert_eq!(c.to_vec::<f32>().unwrap(), vec![1.0, 2.0, 5.0, 3.0, 4.0, 6.0]);
        assert_eq!(slice_axis(&c, 1, 2, 1).unwrap().to_vec::<f32>().unwrap(), vec![5.0, 6.0]);
        assert!(concat(&[&a, &b], 0).is_err());
        assert!(slice_axis(&c, 1, 2, 2).is_err());
    }

    #[test]
    fn broadcast_to_stretches_ones() {
        let x = T::from_vec(vec![1i32, 2], [2, 1]).unwrap();
        let y = broadcast_to(&x, &Shape::from([3, 2, 2])).unwrap();
        assert_eq!(y.to_vec::<i32>().unwrap(), vec![1, 1, 2, 2, 1, 1, 2, 2, 1, 1, 2, 2]);
        assert!(broadcast_to(&x, &Shape::from([3])).is_err());
    }
}
