//! Scalar references for the data-movement kernels (`slicing.rs`, `indexing.rs`): each
//! output element computed on its own from its multi-index, in f64, with none of the
//! kernels' row merging, index resolution or threading. `None` for invalid arguments.

use crate::slicing::{AxisRange, PadMode};

fn unravel(mut i: usize, dims: &[usize]) -> Vec<usize> {
    let mut index = vec![0; dims.len()];
    for d in (0..dims.len()).rev() {
        if dims[d] > 0 {
            index[d] = i % dims[d];
            i /= dims[d];
        }
    }
    index
}

fn ravel(index: &[usize], dims: &[usize]) -> usize {
    index.iter().zip(dims).fold(0, |flat, (&i, &d)| flat * d + i)
}

fn count(dims: &[usize]) -> usize {
    dims.iter().product()
}

/// The view `axes` (one range per axis) of `x` of shape `dims`.
pub fn strided_view(x: &[f64], dims: &[usize], axes: &[AxisRange]) -> Vec<f64> {
    let out: Vec<usize> = axes.iter().map(|a| a.count).collect();
    (0..count(&out))
        .map(|o| {
            let index: Vec<usize> = unravel(o, &out)
                .iter()
                .zip(axes)
                .map(|(&i, a)| (a.start as isize + i as isize * a.step) as usize)
                .collect();
            x[ravel(&index, dims)]
        })
        .collect()
}

/// `x` (shape `dims`) padded by `paddings` in `mode`.
pub fn pad(x: &[f64], dims: &[usize], paddings: &[[usize; 2]], mode: PadMode) -> Vec<f64> {
    let out: Vec<usize> = dims.iter().zip(paddings).map(|(&d, p)| d + p[0] + p[1]).collect();
    (0..count(&out))
        .map(|o| {
            let mut index = Vec::with_capacity(dims.len());
            for ((&i, &d), p) in unravel(o, &out).iter().zip(dims).zip(paddings) {
                let pos = i as isize - p[0] as isize;
                let n = d as isize;
                let source = match mode {
                    _ if (0..n).contains(&pos) => pos,
                    PadMode::Constant(c) => return c,
                    PadMode::Reflect if pos < 0 => -pos,
                    PadMode::Reflect => 2 * (n - 1) - pos,
                    PadMode::Symmetric if pos < 0 => -pos - 1,
                    PadMode::Symmetric => 2 * n - 1 - pos,
                };
                index.push(source as usize);
            }
            x[ravel(&index, dims)]
        })
        .collect()
}

/// `tf.gather(params, indices, axis)` of `params` (shape `dims`) by `indices` (shape
/// `idims`); a negative index gives zeros when `negative_zero`.
pub fn gather(
    params: &[f64],
    dims: &[usize],
    indices: &[i32],
    idims: &[usize],
    axis: usize,
    negative_zero: bool,
) -> Option<Vec<f64>> {
    let out: Vec<usize> = dims[..axis].iter().chain(idims).chain(&dims[axis + 1..]).copied().collect();
    (0..count(&out))
        .map(|o| {
            let index = unravel(o, &out);
            let k = ravel(&index[axis..axis + idims.len()], idims);
            let v = indices[k];
            if v < 0 && negative_zero {
                return Some(0.0);
            }
            let row = usize::try_from(v).ok().filter(|&r| r < dims[axis])?;
            let source: Vec<usize> =
                index[..axis].iter().chain(&[row]).chain(&index[axis + idims.len()..]).copied().collect();
            Some(params[ravel(&source, dims)])
        })
        .collect()
}

/// `unsorted_segment_sum` of `data` (shape `dims`) along axes `axis..axis + idims.len()`
/// by `ids` (shape `idims`) into `n` segments; negative ids are dropped.
pub fn segment_sum(
    data: &[f64],
    dims: &[usize],
    ids: &[i32],
    idims: &[usize],
    axis: usize,
    n: usize,
) -> Option<Vec<f64>> {
    let r = idims.len();
    let out: Vec<usize> = dims[..axis].iter().chain(&[n]).chain(&dims[axis + r..]).copied().collect();
    let mut sums = vec![0.0; count(&out)];
    for (i, &v) in data.iter().enumerate() {
        let index = unravel(i, dims);
        let id = ids[ravel(&index[axis..axis + r], idims)];
        if id < 0 {
            continue;
        }
        let j = usize::try_from(id).ok().filter(|&j| j < n)?;
        let target: Vec<usize> = index[..axis].iter().chain(&[j]).chain(&index[axis + r..]).copied().collect();
        sums[ravel(&target, &out)] += v;
    }
    Some(sums)
}

/// `tf.gather_nd(params, indices)` of `params` (shape `dims`), `indices` of shape `idims`.
pub fn gather_nd(params: &[f64], dims: &[usize], indices: &[i32], idims: &[usize]) -> Option<Vec<f64>> {
    let (&q, lead) = idims.split_last()?;
    let out: Vec<usize> = lead.iter().chain(&dims[q..]).copied().collect();
    (0..count(&out))
        .map(|o| {
            let index = unravel(o, &out);
            let k = ravel(&index[..lead.len()], lead);
            let mut source = Vec::with_capacity(dims.len());
            for (&v, &d) in indices[k * q..(k + 1) * q].iter().zip(dims) {
                source.push(usize::try_from(v).ok().filter(|&i| i < d)?);
            }
            source.extend_from_slice(&index[lead.len()..]);
            Some(params[ravel(&source, dims)])
        })
        .collect()
}

/// `tf.scatter_nd(indices, updates, shape)`, duplicates added.
pub fn scatter_nd(indices: &[i32], idims: &[usize], updates: &[f64], shape: &[usize]) -> Option<Vec<f64>> {
    let (&q, lead) = idims.split_last()?;
    let udims: Vec<usize> = lead.iter().chain(&shape[q..]).copied().collect();
    let mut out = vec![0.0; count(shape)];
    for (u, &v) in updates.iter().enumerate() {
        let index = unravel(u, &udims);
        let k = ravel(&index[..lead.len()], lead);
        let mut target = Vec::with_capacity(shape.len());
        for (&i, &d) in indices[k * q..(k + 1) * q].iter().zip(shape) {
            target.push(usize::try_from(i).ok().filter(|&i| i < d)?);
        }
        target.extend_from_slice(&index[lead.len()..]);
        out[ravel(&target, shape)] += v;
    }
    Some(out)
}

/// `tf.one_hot(indices, depth)`.
pub fn one_hot(indices: &[i32], depth: usize) -> Vec<f64> {
    indices.iter().flat_map(|&v| (0..depth).map(move |j| if v >= 0 && v as usize == j { 1.0 } else { 0.0 })).collect()
}
