//! Jacobians as stacked vector–Jacobian products, one backward pass per output element.

use std::borrow::Cow;

use rayon::prelude::*;
use tapeflow_dtype::{DType, Error, Result, Shape, Storage};

use crate::backward::{self, Request, Snapshot, SourceInfo, UnconnectedGradients};
use crate::context;
use crate::operand::GradSource;
use crate::ops::{self, TensorMath};
use crate::runtime::Tensor;
use crate::tape::warn_if_int;

/// Options of [`GradientTape::jacobian_with`](crate::GradientTape::jacobian_with) and
/// [`batch_jacobian_with`](crate::GradientTape::batch_jacobian_with).
#[derive(Debug, Clone, Copy, Default)]
pub struct JacobianOptions {
    pub(crate) unconnected: UnconnectedGradients,
    pub(crate) parallel_iterations: Option<usize>,
}

impl JacobianOptions {
    /// What to return when the target does not depend on the source.
    pub fn unconnected(mut self, unconnected: UnconnectedGradients) -> Self {
        self.unconnected = unconnected;
        self
    }

    /// At most this many rows are computed at once (TensorFlow's `parallel_iterations`),
    /// bounding the memory held by rows in flight. Default: all rows may run at once.
    pub fn parallel_iterations(mut self, rows: usize) -> Self {
        self.parallel_iterations = Some(rows.max(1));
        self
    }
}

/// A seed of `shape`/`dtype` with ones at the given flat positions.
fn seed(shape: &Shape, dtype: DType, ones: impl Iterator<Item = usize>) -> Result<Tensor> {
    let n = shape.num_elements();
    let mut values = vec![0.0f32; n];
    ones.for_each(|i| values[i] = 1.0);
    let t = Tensor::from_storage(Storage::from_slice(&values), shape.clone())?;
    Ok(if dtype == DType::F32 { t } else { t.to_dtype(dtype) })
}

/// Runs one backward pass per seed; rows run in parallel on rayon when no tape records on
/// this thread (a recording outer tape must see every op, so then they run here, in order).
fn vjp_rows(
    snapshot: &Snapshot,
    target: &Tensor,
    source: &SourceInfo,
    seeds: Vec<Tensor>,
    options: &JacobianOptions,
) -> Result<Vec<Option<Tensor>>> {
    let one = |seed: Tensor| -> Result<Option<Tensor>> {
        let request = Request {
            seeds: vec![(target.id(), seed)],
            sources: vec![source.clone()],
            unconnected: UnconnectedGradients::None,
            sequential: false,
            batched: false,
        };
        Ok(backward::run(Cow::Borrowed(&snapshot.entries), &snapshot.tracked, &request)?.pop().flatten())
    };
    if context::records_on_this_thread() {
        return seeds.into_iter().map(one).collect();
    }
    let chunk = options.parallel_iterations.unwrap_or(seeds.len().max(1));
    let mut rows = Vec::with_capacity(seeds.len());
    let mut seeds = seeds.into_iter().peekable();
    while seeds.peek().is_some() {
        let batch: Vec<Tensor> = seeds.by_ref().take(chunk).collect();
        // Rows run on rayon's workers at the calling thread's kernel level (`isa::with_isa`).
        let level = tapeflow_kernels::isa::current();
        let done: Vec<Result<Option<Tensor>>> = batch.into_par_iter().map(|seed| level.enter(|| one(seed))).collect();
        for row in done {
            rows.push(row?);
        }
    }
    Ok(rows)
}

fn source_info(source: &impl GradSource) -> SourceInfo {
    SourceInfo { id: source.source_id(), shape: source.source_shape(), dtype: source.source_dtype() }
}

/// All rows `None` → `None` (or zeros); otherwise missing rows become zeros.
fn fill_rows(
    rows: Vec<Option<Tensor>>,
    row_shape: &Shape,
    dtype: DType,
    options: &JacobianOptions,
) -> Option<Vec<Tensor>> {
    if rows.iter().all(Option::is_none) && options.unconnected == UnconnectedGradients::None && !rows.is_empty() {
        return None;
    }
    Some(rows.into_iter().map(|r| r.unwrap_or_else(|| Tensor::zeros(row_shape.clone(), dtype))).collect())
}

fn dims_isize(dims: &[usize]) -> Vec<isize> {
    dims.iter().map(|&d| d as isize).collect()
}

/// The source as the backward pass sees it, or `None` (after TensorFlow's warnings) when the
/// target or the source is int32: no gradient flows through integers.
fn float_source(target: &Tensor, source: &impl GradSource) -> Option<SourceInfo> {
    let source = source_info(source);
    // `&`, not `&&`: both warnings are logged, as TensorFlow does.
    (warn_if_int("target", target.dtype()) & warn_if_int("source", source.dtype)).then_some(source)
}

pub(crate) fn jacobian(
    snapshot: &Snapshot,
    target: &Tensor,
    source: &impl GradSource,
    options: &JacobianOptions,
) -> Result<Option<Tensor>> {
    let Some(source) = float_source(target, source) else { return Ok(None) };
    let mut out_dims = target.dims().to_vec();
    out_dims.extend_from_slice(source.shape.dims());
    let n = target.num_elements();
    if n == 0 {
        return Ok(Some(Tensor::zeros(out_dims, source.dtype)));
    }
    let seeds = (0..n).map(|i| seed(target.shape(), target.dtype(), std::iter::once(i))).collect::<Result<Vec<_>>>()?;
    let rows = vjp_rows(snapshot, target, &source, seeds, options)?;
    let Some(rows) = fill_rows(rows, &source.shape, source.dtype, options) else { return Ok(None) };
    let mut row_dims = vec![1isize];
    row_dims.extend(dims_isize(source.shape.dims()));
    let rows = rows.iter().map(|r| r.reshape(&row_dims)).collect::<Result<Vec<_>>>()?;
    Ok(Some(ops::concat(&rows, 0)?.reshape(dims_isize(&out_dims))?))
}

pub(crate) fn check_batch(target: &Tensor, source: &impl GradSource) -> Result<()> {
    let shape = source.source_shape();
    if target.rank() == 0 || shape.rank() == 0 || target.dims()[0] != shape.dims()[0] {
        return Err(Error::ShapeMismatch {
            op: "batch_jacobian",
            lhs: target.shape().clone(),
            lhs_dtype: target.dtype(),
            rhs: shape,
            rhs_dtype: source.source_dtype(),
            reason: "target and source need the same leading (batch) dimension".into(),
        });
    }
    Ok(())
}

pub(crate) fn batch_jacobian(
    snapshot: &Snapshot,
    target: &Tensor,
    source: &impl GradSource,
    options: &JacobianOptions,
) -> Result<Option<Tensor>> {
    let Some(source) = float_source(target, source) else { return Ok(None) };
    let batch = target.dims()[0];
    let per_row: usize = target.dims()[1..].iter().fold(1, |n, &d| n.saturating_mul(d));
    let mut out_dims = target.dims().to_vec();
    out_dims.extend_from_slice(&source.shape.dims()[1..]);
    if per_row == 0 || batch == 0 {
        return Ok(Some(Tensor::zeros(out_dims, source.dtype)));
    }
    let seeds = (0..per_row)
        .map(|j| seed(target.shape(), target.dtype(), (0..batch).map(|b| b * per_row + j)))
        .collect::<Result<Vec<_>>>()?;
    let rows = vjp_rows(snapshot, target, &source, seeds, options)?;
    let Some(rows) = fill_rows(rows, &source.shape, source.dtype, options) else { return Ok(None) };
    let per_source: usize = source.shape.dims()[1..].iter().fold(1, |n, &d| n.saturating_mul(d));
    let rows = rows.iter().map(|r| r.reshape([batch as isize, 1, per_source as isize])).collect::<Result<Vec<_>>>()?;
    Ok(Some(ops::concat(&rows, 1)?.reshape(dims_isize(&out_dims))?))
}
