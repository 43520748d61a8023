//! Broadcasting binary ops, `select`, and reducing a gradient back to an operand's shape.

use std::sync::Arc;

use tapeflow_dtype::{DType, Result, Shape};
use tapeflow_kernels::{self as kernels, BinaryOp};

use crate::context::{InputGrads, Rule, record, record_batchable};
use crate::forward::two_terms;
use crate::operand::IntoOperand;
use crate::ops::{TensorMath, reduce, scalar_like, shape};
use crate::runtime::Tensor;
use crate::trace;

/// `op(a, b)` with a right operand that may be a literal (it adopts `a`'s dtype).
pub(crate) fn with_operand(op: BinaryOp, a: &Tensor, b: impl IntoOperand) -> Result<Tensor> {
    let b = b.into_operand().resolve(a.dtype(), op.name())?;
    binary(op, a, &b)
}

/// `op(a, b)`, recorded with its derivative. Comparisons are piecewise constant and are
/// not recorded, nor is floordiv (TensorFlow's registry gives it no gradient).
pub(crate) fn binary(op: BinaryOp, a: &Tensor, b: &Tensor) -> Result<Tensor> {
    let out = kernel(op, a, b)?;
    let differentiable = matches!(
        op,
        BinaryOp::Add
            | BinaryOp::Sub
            | BinaryOp::Mul
            | BinaryOp::Div
            | BinaryOp::Pow
            | BinaryOp::Maximum
            | BinaryOp::Minimum
            | BinaryOp::SquaredDifference
            | BinaryOp::FloorMod
            | BinaryOp::Atan2
    );
    if matches!(op, BinaryOp::Add | BinaryOp::Sub) {
        // Their gradients need the operands' shapes only: keeping the operands alive
        // until the backward pass would only hold memory (a layer's pre-activation).
        let sub = op == BinaryOp::Sub;
        record(&[a, b], &out, || Rule::AddSub { sub, a: a.shape().clone(), b: b.shape().clone() });
    } else if differentiable {
        // Only pow's gradient reads the output; the others need not keep it alive.
        record(&[a, b], &out, || {
            let saved = (op == BinaryOp::Pow).then(|| Box::new(out.clone()));
            Rule::Binary { op, a: a.clone(), b: b.clone(), out: saved }
        });
    }
    Ok(out)
}

/// `op(a, b)` by the kernel, not recorded on tapes (captured while a function traces).
/// int32 division by zero and int32 powers with a negative exponent fail on the operands'
/// values, so those are captured as fallible.
pub(crate) fn kernel(op: BinaryOp, a: &Tensor, b: &Tensor) -> Result<Tensor> {
    let on_values = a.dtype() == DType::I32
        && matches!(op, BinaryOp::Div | BinaryOp::FloorDiv | BinaryOp::FloorMod | BinaryOp::Pow);
    let run = move |[a, b]: [&Tensor; 2]| kernels::binary(op, a, b);
    if on_values { trace::op_fallible(op.name(), [a, b], run) } else { trace::op(op.name(), [a, b], run) }
}

/// Sum of two gradient contributions (recorded, so it is differentiable too).
pub(crate) fn add_gradients(a: &Tensor, b: &Tensor) -> Result<Tensor> {
    binary(BinaryOp::Add, a, b)
}

/// Gradients of `a ± b` (`sub` for minus), reduced to the operands' shapes.
pub(crate) fn add_sub_derivatives(sub: bool, a: &Shape, b: &Shape, g: &Tensor, needs: &[bool]) -> Result<InputGrads> {
    let (ga, gb) = add_sub_products(sub, g, needs);
    Ok(smallvec::smallvec![reduce_opt(ga, a)?, reduce_opt(gb, b)?])
}

/// [`add_sub_derivatives`] with `g` of shape `[R] ++ out.shape` (R stacked seeds of a
/// vectorized jacobian): the same values, reduced to `[R] ++` each operand's shape.
pub(crate) fn batched_add_sub_derivatives(
    sub: bool,
    a: &Shape,
    b: &Shape,
    g: &Tensor,
    needs: &[bool],
) -> Result<InputGrads> {
    let (ga, gb) = add_sub_products(sub, g, needs);
    Ok(smallvec::smallvec![batched_reduce_opt(ga, a)?, batched_reduce_opt(gb, b)?])
}

/// The gradients of `a ± b` before reduction to the operands' shapes.
fn add_sub_products(sub: bool, g: &Tensor, needs: &[bool]) -> (Option<Result<Tensor>>, Option<Result<Tensor>>) {
    let (need_a, need_b) = (needs.first() == Some(&true), needs.get(1) == Some(&true));
    let ga = need_a.then(|| Ok(g.clone()));
    let gb = need_b.then(|| if sub { -g } else { Ok(g.clone()) });
    (ga, gb)
}

/// Gradients of `out = op(a, b)` for the inputs that need one, reduced to their shapes.
pub(crate) fn derivatives(
    op: BinaryOp,
    a: &Tensor,
    b: &Tensor,
    out: Option<&Tensor>,
    g: &Tensor,
    needs: &[bool],
) -> Result<InputGrads> {
    let (ga, gb) = products(op, a, b, out, g, needs)?;
    Ok(smallvec::smallvec![reduce_opt(ga, a.shape())?, reduce_opt(gb, b.shape())?])
}

/// [`derivatives`] with `g` of shape `[R] ++ out.shape` (R stacked seeds of a vectorized
/// jacobian). The products broadcast the operands over the seed axis, so every element is
/// computed by the same expression as in one pass per seed; the sums of [`batched_unbroadcast`]
/// keep the seed axis.
pub(crate) fn batched_derivatives(
    op: BinaryOp,
    a: &Tensor,
    b: &Tensor,
    out: Option<&Tensor>,
    g: &Tensor,
    needs: &[bool],
) -> Result<InputGrads> {
    let (ga, gb) = products(op, a, b, out, g, needs)?;
    Ok(smallvec::smallvec![batched_reduce_opt(ga, a.shape())?, batched_reduce_opt(gb, b.shape())?])
}

/// The JVP of `out = op(a, b)` from the tangents of `a` and `b` (`None`: zero):
/// `∂out/∂a ⊙ t_a + ∂out/∂b ⊙ t_b`. The backward rule's products are exactly these terms
/// (each is the upstream times an elementwise derivative) with the tangent as upstream,
/// before their reduction to an operand's shape.
pub(crate) fn jvp(
    op: BinaryOp,
    a: &Tensor,
    b: &Tensor,
    out: Option<&Tensor>,
    ta: Option<&Tensor>,
    tb: Option<&Tensor>,
) -> Result<Tensor> {
    let da = match ta {
        Some(t) => products(op, a, b, out, t, &[true, false])?.0,
        None => None,
    };
    let db = match tb {
        Some(t) => products(op, a, b, out, t, &[false, true])?.1,
        None => None,
    };
    two_terms(da, db)
}

/// The JVP of `a ± b`: `t_a ± t_b`.
pub(crate) fn add_sub_jvp(sub: bool, ta: Option<&Tensor>, tb: Option<&Tensor>) -> Result<Tensor> {
    let da = ta.map(|t| Ok(t.clone()));
    let db = tb.map(|t| if sub { -t } else { Ok(t.clone()) });
    two_terms(da, db)
}

type Products = (Option<Result<Tensor>>, Option<Result<Tensor>>);

/// The gradients of `out = op(a, b)` before reduction to the operands' shapes: of `g`'s
/// shape, whether or not `g` has a leading seed axis.
fn products(
    op: BinaryOp,
    a: &Tensor,
    b: &Tensor,
    out: Option<&Tensor>,
    g: &Tensor,
    needs: &[bool],
) -> Result<Products> {
    let c = |v: f64| scalar_like(a, v);
    let (need_a, need_b) = (needs.first() == Some(&true), needs.get(1) == Some(&true));
    let (ga, gb) = match op {
        BinaryOp::Add => (need_a.then(|| Ok(g.clone())), need_b.then(|| Ok(g.clone()))),
        BinaryOp::Sub => (need_a.then(|| Ok(g.clone())), need_b.then(|| -g)),
        // d(ab) = b da + a db
        BinaryOp::Mul => (need_a.then(|| g * b), need_b.then(|| a * g)),
        // d(a/b) = da / b - a / b² db
        BinaryOp::Div => (need_a.then(|| g / b), need_b.then(|| g * ((-a)? / b / b)?)),
        // d(a^b) = b a^(b-1) da + a^b log(a) db, with log(a) taken as 0 where a <= 0
        BinaryOp::Pow => (
            need_a.then(|| (g * b)? * a.pow((b - c(1.0))?)?),
            need_b.then(|| {
                let positive = kernel(BinaryOp::Greater, a, &c(0.0))?;
                let safe_a = select(&positive, a, &c(1.0))?;
                let log_a = select(&positive, &safe_a.log()?, &c(0.0))?;
                // The output, saved for pow (computed again if a caller kept none).
                let out = match out {
                    Some(out) => out.clone(),
                    None => kernel(BinaryOp::Pow, a, b)?,
                };
                (g * out)? * log_a
            }),
        ),
        // Ties send the gradient to the first argument; NaN compares false, so it goes to b.
        BinaryOp::Maximum | BinaryOp::Minimum => {
            let cmp = if op == BinaryOp::Maximum { BinaryOp::GreaterEqual } else { BinaryOp::LessEqual };
            let mask = kernel(cmp, a, b)?;
            (need_a.then(|| select(&mask, g, &c(0.0))), need_b.then(|| select(&mask, &c(0.0), g)))
        }
        // d(a − b)² = 2(a − b)·(da − db): TensorFlow's (2·g)·(a − b), and its negation.
        BinaryOp::SquaredDifference => {
            let ga = || (g * c(2.0))? * (a - b)?;
            (need_a.then(ga), need_b.then(|| -(ga()?)))
        }
        // floormod(a, b) = a − floor(a/b)·b with floor(a/b) piecewise constant:
        // da = g, db = −floor(a/b)·g (TensorFlow's _FloorModGrad).
        BinaryOp::FloorMod => {
            (need_a.then(|| Ok(g.clone())), need_b.then(|| g * (-kernel(BinaryOp::FloorDiv, a, b)?)?))
        }
        // d atan2(a, b) = (b·da − a·db) / (a² + b²), as TensorFlow's _Atan2Grad.
        BinaryOp::Atan2 => {
            let inv = (g / (b.square()? + a.square()?)?)?;
            (need_a.then(|| &inv * b), need_b.then(|| &inv * (-a)?))
        }
        _ => (None, None),
    };
    Ok((ga, gb))
}

/// [`derivatives`] as one fused pass over raw buffers (`mul`: both products at once), for
/// backward passes that nothing records; the same bits. `None` where no fused form applies
/// (broadcast operands, float16, pow).
pub(crate) fn derivatives_first_order(
    op: BinaryOp,
    a: &Tensor,
    b: &Tensor,
    g: &Tensor,
    needs: &[bool],
) -> Result<Option<InputGrads>> {
    let (need_a, need_b) = (needs.first() == Some(&true), needs.get(1) == Some(&true));
    trace::op_grads("binary_grad", [a, b, g], move |[a, b, g]| {
        Ok(kernels::grad::binary_grad(op, a, b, g, need_a, need_b)?.map(|(ga, gb)| smallvec::smallvec![ga, gb]))
    })
}

fn reduce_opt(grad: Option<Result<Tensor>>, shape: &Shape) -> Result<Option<Tensor>> {
    grad.map(|g| unbroadcast(&g?, shape)).transpose()
}

fn batched_reduce_opt(grad: Option<Result<Tensor>>, shape: &Shape) -> Result<Option<Tensor>> {
    grad.map(|g| batched_unbroadcast(&g?, shape)).transpose()
}

/// Sums `grad` over the dimensions that broadcasting added or stretched, so it gets
/// `shape` back (the gradient of broadcasting).
pub(crate) fn unbroadcast(grad: &Tensor, shape: &Shape) -> Result<Tensor> {
    if grad.shape() == shape {
        return Ok(grad.clone());
    }
    let extra = grad.rank().saturating_sub(shape.rank());
    let axes: Vec<isize> = (0..grad.rank())
        .filter(|&i| i < extra || (shape.dims()[i - extra] == 1 && grad.dims()[i] != 1))
        .map(|i| i as isize)
        .collect();
    let summed = reduce::reduce(kernels::ReduceOp::Sum, grad, Some(&axes), false)?;
    shape::reshape(&summed, &shape.dims().iter().map(|&d| d as isize).collect::<Vec<_>>())
}

/// [`unbroadcast`] for `grad` of shape `[R] ++ out` (R stacked seeds): sums to
/// `[R] ++ shape`, never over the seed axis. `shape` aligns to the right of `out` (grad's
/// axes after the first), as broadcasting aligned it in the forward op.
pub(crate) fn batched_unbroadcast(grad: &Tensor, shape: &Shape) -> Result<Tensor> {
    let (gd, sd) = (grad.dims(), shape.dims());
    if gd.len() == sd.len() + 1 && &gd[1..] == sd {
        return Ok(grad.clone());
    }
    // Axes of grad (seed axis included, so numbered from 1) that broadcasting added or
    // stretched.
    let extra = gd.len().saturating_sub(1 + sd.len());
    let axes: Vec<isize> = (1..gd.len())
        .filter(|&i| i - 1 < extra || (sd[i - 1 - extra] == 1 && gd[i] != 1))
        .map(|i| i as isize)
        .collect();
    let summed =
        if axes.is_empty() { grad.clone() } else { reduce::reduce(kernels::ReduceOp::Sum, grad, Some(&axes), false)? };
    let mut dims = vec![gd.first().copied().unwrap_or(1) as isize];
    dims.extend(sd.iter().map(|&d| d as isize));
    shape::reshape(&summed, &dims)
}

/// `where(cond, a, b)`; `cond` is treated as a constant.
pub(crate) fn select(cond: &Tensor, a: &Tensor, b: &Tensor) -> Result<Tensor> {
    let out = trace::op("select", [cond, a, b], |[cond, a, b]| kernels::select(cond, a, b))?;
    // Linear in (a, b): the tangent selects between the tangents (zero where one has none).
    let jvp = |t: &[Option<Tensor>]| {
        let zero = scalar_like(&out, 0.0);
        select(cond, t[0].as_ref().unwrap_or(&zero), t[1].as_ref().unwrap_or(&zero))
    };
    record_batchable(&[a, b], &out, jvp, || {
        let (cond, a_shape, b_shape) = (cond.clone(), a.shape().clone(), b.shape().clone());
        // Batched, the condition broadcasts over the seed axis of g.
        Arc::new(move |g: &Tensor, needs: &[bool], batched: bool| {
            let zero = scalar_like(g, 0.0);
            let ga = needs[0].then(|| select(&cond, g, &zero));
            let gb = needs[1].then(|| select(&cond, &zero, g));
            let reduce = if batched { batched_reduce_opt } else { reduce_opt };
            Ok(vec![reduce(ga, &a_shape)?, reduce(gb, &b_shape)?])
        })
    });
    Ok(out)
}
