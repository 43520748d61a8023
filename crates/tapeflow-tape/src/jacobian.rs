//! Jacobians as stacked vector–Jacobian products: by default one backward pass carrying all
//! seeds on a leading axis (TensorFlow's pfor, JAX's vmap over seeds); one pass per output
//! element when asked, or when an op on the way has no batched backward rule.

use std::borrow::Cow;

use rayon::prelude::*;
use tapeflow_dtype::{DType, Error, Result, Shape, Storage};

use crate::backward::{self, NO_BATCHED_RULE, Request, Snapshot, SourceInfo, UnconnectedGradients};
use crate::context;
use crate::operand::GradSource;
use crate::ops::{self, TensorMath};
use crate::runtime::Tensor;
use crate::tape::warn_if_int;
use crate::trace;

/// Options of [`GradientTape::jacobian_with`](crate::GradientTape::jacobian_with) and
/// [`batch_jacobian_with`](crate::GradientTape::batch_jacobian_with).
#[derive(Debug, Clone, Copy, Default)]
pub struct JacobianOptions {
    pub(crate) unconnected: UnconnectedGradients,
    pub(crate) parallel_iterations: Option<usize>,
    /// `vectorized(false)`: stored inverted so that the derived default is vectorized.
    pub(crate) row_loop: bool,
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

    /// Whether to compute all rows in one backward pass that carries the seeds on a leading
    /// axis (default `true`, as TensorFlow's `experimental_use_pfor`), or one pass per row.
    /// The vectorized pass falls back to rows when an op on the way has no batched rule.
    /// Results agree to about 1e-6 relative: matrix products see differently shaped GEMMs.
    pub fn vectorized(mut self, vectorized: bool) -> Self {
        self.row_loop = !vectorized;
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
/// this thread and no function traces on it (a recording outer tape, or the trace, must see
/// every op, so then they run here, in order: the same bits).
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
        Ok(backward::run(Cow::Borrowed(&snapshot.entries), &snapshot.tracked, &request, None)?.pop().flatten())
    };
    if context::records_on_this_thread() || trace::tracing() {
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

/// Seeds of R rows stacked on a leading axis, `[R] ++ target.shape`: row `r` (counted from
/// `first`) has ones at the flat positions `ones(first + r)`.
fn stacked_seeds(
    target: &Tensor,
    rows: std::ops::Range<usize>,
    ones: impl Fn(usize) -> std::ops::Range<usize>,
    step: usize,
) -> Result<Tensor> {
    let n = target.num_elements();
    let count = rows.len();
    let mut dims = vec![count];
    dims.extend_from_slice(target.dims());
    // A recycled buffer, zeroed here: a fresh zeroed one (as large as R times the target)
    // costs a page fault per 4 KiB on every call.
    let storage = Storage::for_overwrite::<f32>(count.saturating_mul(n), |values| {
        values.fill(0.0);
        for (r, row) in rows.clone().enumerate() {
            ones(row).step_by(step.max(1)).for_each(|i| values[r * n + i] = 1.0);
        }
    });
    let t = Tensor::from_storage(storage, Shape::from(dims))?;
    Ok(if target.dtype() == DType::F32 { t } else { t.to_dtype(target.dtype()) })
}

/// Most elements of one stacked seed (64 MiB of float32) when `parallel_iterations` is unset.
const MAX_STACKED_SEED: usize = 1 << 24;

/// One batched backward pass per chunk of rows (`parallel_iterations`, or as many as
/// [`MAX_STACKED_SEED`] allows): the gradient `[R] ++ source.shape`, or `Ok(None)` when an op on the way
/// has no batched rule (logged; the caller runs the row loop). `Some(None)`: unconnected.
fn vectorized_rows(
    snapshot: &Snapshot,
    target: &Tensor,
    source: &SourceInfo,
    rows: usize,
    seeds: impl Fn(std::ops::Range<usize>) -> Result<Tensor>,
    options: &JacobianOptions,
) -> Result<Option<Option<Tensor>>> {
    // Every gradient of the pass is R times its op's size: without a bound from the caller,
    // chunks keep the stacked seed within MAX_STACKED_SEED elements, so a large target
    // costs several passes rather than an allocation failure.
    let per_seed = target.num_elements().max(1);
    let chunk = options.parallel_iterations.unwrap_or((MAX_STACKED_SEED / per_seed).clamp(1, rows.max(1))).max(1);
    let mut parts = Vec::with_capacity(rows.div_ceil(chunk));
    for start in (0..rows).step_by(chunk) {
        let request = Request {
            seeds: vec![(target.id(), seeds(start..(start + chunk).min(rows))?)],
            sources: vec![source.clone()],
            unconnected: UnconnectedGradients::None,
            sequential: false,
            batched: true,
        };
        match backward::run(Cow::Borrowed(&snapshot.entries), &snapshot.tracked, &request, None) {
            Ok(mut grads) => match grads.pop().flatten() {
                Some(part) => parts.push(part),
                // Which ops connect does not depend on the seeds: every chunk is unconnected.
                None => return Ok(Some(None)),
            },
            Err(Error::InvalidArgument { op, reason }) if op == NO_BATCHED_RULE => {
                log::debug!("jacobian: {reason}; computing one backward pass per row instead");
                return Ok(None);
            }
            Err(error) => return Err(error),
        }
    }
    Ok(Some(Some(if parts.len() == 1 { parts.remove(0) } else { ops::concat(&parts, 0)? })))
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

/// The jacobian of an unconnected target: `None`, or zeros with `UnconnectedGradients::Zero`
/// (as the row loop's [`fill_rows`]).
fn unconnected(dims: Vec<usize>, dtype: DType, options: &JacobianOptions) -> Option<Tensor> {
    (options.unconnected == UnconnectedGradients::Zero).then(|| Tensor::zeros(dims, dtype))
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
    if !options.row_loop {
        // Seed r is row r of the identity.
        let seeds = |rows: std::ops::Range<usize>| stacked_seeds(target, rows, |r| r..r + 1, 1);
        if let Some(stacked) = vectorized_rows(snapshot, target, &source, n, seeds, options)? {
            // [n] ++ source.shape is the jacobian, flattened over the target's axes.
            return match stacked {
                Some(j) => Ok(Some(j.reshape(dims_isize(&out_dims))?)),
                None => Ok(unconnected(out_dims, source.dtype, options)),
            };
        }
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
    let per_source: usize = source.shape.dims()[1..].iter().fold(1, |n, &d| n.saturating_mul(d));
    if !options.row_loop {
        // Seed r has ones at element r of every batch row: flat positions r, r + per_row, …
        let seeds = |rows: std::ops::Range<usize>| stacked_seeds(target, rows, |r| r..batch * per_row, per_row);
        if let Some(stacked) = vectorized_rows(snapshot, target, &source, per_row, seeds, options)? {
            // [per_row, B, source…] → [B, per_row, source…]: the seed axis moves after the batch.
            return match stacked {
                Some(j) => Ok(Some(
                    j.reshape([per_row as isize, batch as isize, per_source as isize])?
                        .transpose(&[1, 0, 2])?
                        .reshape(dims_isize(&out_dims))?,
                )),
                None => Ok(unconnected(out_dims, source.dtype, options)),
            };
        }
    }
    let seeds = (0..per_row)
        .map(|j| seed(target.shape(), target.dtype(), (0..batch).map(|b| b * per_row + j)))
        .collect::<Result<Vec<_>>>()?;
    let rows = vjp_rows(snapshot, target, &source, seeds, options)?;
    let Some(rows) = fill_rows(rows, &source.shape, source.dtype, options) else { return Ok(None) };
    let rows = rows.iter().map(|r| r.reshape([batch as isize, 1, per_source as isize])).collect::<Result<Vec<_>>>()?;
    Ok(Some(ops::concat(&rows, 1)?.reshape(dims_isize(&out_dims))?))
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use tapeflow_kernels::BinaryOp;

    use super::*;
    use crate::context::{Rule, record_custom};
    use crate::ops::{binary, scalar_like, shape};
    use crate::{GradientTape, Variable};

    /// `2x`, recorded with a closure rule that has no batched form.
    fn doubled_without_batched_rule(x: &Tensor) -> Result<Tensor> {
        let y = tapeflow_kernels::binary(BinaryOp::Mul, x, &scalar_like(x, 2.0))?;
        record_custom("doubled", &[x], &y, || {
            Arc::new(|g: &Tensor, _: &[bool]| Ok(vec![Some((g * scalar_like(g, 2.0))?)]))
        });
        Ok(y)
    }

    fn bits(t: Option<Tensor>) -> Vec<u32> {
        t.expect("connected").to_vec::<f32>().expect("float32").into_iter().map(f32::to_bits).collect()
    }

    #[test]
    fn forward_mode_through_an_op_without_a_jvp_rule_is_an_error_naming_it() -> Result<()> {
        let x = Tensor::from_vec(vec![1.0f32, 2.0], [2])?;
        let acc = crate::ForwardAccumulator::new().primal(&x, &Tensor::ones([2], DType::F32))?;
        let (y, z) = acc.record(|| -> Result<(Tensor, Tensor)> {
            let y = doubled_without_batched_rule(&x)?;
            Ok((y.clone(), y.exp()?))
        })?;
        for t in [&y, &z] {
            let err = acc.jvp(t).expect_err("no JVP rule on the way");
            assert!(err.to_string().starts_with("doubled:"), "{err}");
        }
        // Reverse mode through the same op is unaffected.
        let tape = GradientTape::new();
        tape.watch(&x);
        let y = tape.record(|| doubled_without_batched_rule(&x))?;
        assert_eq!(tape.gradient(&y, &x)?.expect("connected").to_vec::<f32>()?, vec![2.0, 2.0]);
        Ok(())
    }

    #[test]
    fn an_op_without_a_batched_rule_falls_back_to_rows() -> Result<()> {
        let rule = Rule::Custom(Arc::new(|g: &Tensor, _: &[bool]| Ok(vec![Some(g.clone())])));
        assert!(rule.without_batched_form().is_some());
        assert!(rule.apply_batched(&Tensor::zeros([2, 3], DType::F32), &[true])?.is_none());

        let x = Variable::new([0.5f32, -1.0, 2.0]);
        let tape = GradientTape::new().persistent(true);
        let y = tape.record(|| doubled_without_batched_rule(&x.to_tensor())?.tanh())?;
        let fast = tape.jacobian_with(&y, &x, JacobianOptions::default())?;
        let rows = tape.jacobian_with(&y, &x, JacobianOptions::default().vectorized(false))?;
        assert_eq!(bits(fast.clone()), bits(rows));
        // d tanh(2x) = 2 (1 - tanh²(2x)) on the diagonal
        let j = fast.expect("connected").to_vec::<f32>()?;
        for (i, &xi) in [0.5f32, -1.0, 2.0].iter().enumerate() {
            let t = (2.0 * xi).tanh();
            assert!((j[i * 4] - 2.0 * (1.0 - t * t)).abs() < 1e-6);
        }
        let fast = tape.batch_jacobian_with(&y, &x, JacobianOptions::default())?;
        let rows = tape.batch_jacobian_with(&y, &x, JacobianOptions::default().vectorized(false))?;
        assert_eq!(bits(fast), bits(rows));
        Ok(())
    }

    /// `slice` and `select` are public only through other ops' gradients; their batched
    /// rules are checked here directly.
    #[test]
    fn slice_and_select_agree_with_rows_bit_for_bit() -> Result<()> {
        let x = Variable::new([[0.5f32, -1.0, 2.0, 0.25], [1.5, -0.5, 0.75, -2.0]]);
        let tape = GradientTape::new().persistent(true);
        let sliced = tape.record(|| shape::slice(&x.to_tensor(), 1, 1, 2)?.exp())?;
        let t = x.to_tensor();
        let cond = tapeflow_kernels::binary(BinaryOp::Greater, &t, &scalar_like(&t, 0.0))?;
        let selected = tape.record(|| binary::select(&cond, &x.to_tensor().square()?, &x.to_tensor().sin()?))?;
        for y in [sliced, selected] {
            let rows = JacobianOptions::default().vectorized(false);
            assert_eq!(bits(tape.jacobian(&y, &x)?), bits(tape.jacobian_with(&y, &x, rows)?));
            assert_eq!(bits(tape.batch_jacobian(&y, &x)?), bits(tape.batch_jacobian_with(&y, &x, rows)?));
        }
        Ok(())
    }
}
