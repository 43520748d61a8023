//! Matrix products and their derivatives.

use tapeflow_dtype::Result;
use tapeflow_kernels as kernels;

use crate::context::{InputGrads, Rule, record};
use crate::ops::binary::unbroadcast;
use crate::runtime::Tensor;

/// `op(a) · op(b)`, recorded with its derivative.
pub(crate) fn matmul(a: &Tensor, b: &Tensor, transpose_a: bool, transpose_b: bool) -> Result<Tensor> {
    let out = kernels::matmul(a, b, transpose_a, transpose_b)?;
    record(&[a, b], &out, || Rule::Matmul { a: a.clone(), b: b.clone(), transpose_a, transpose_b });
    Ok(out)
}

/// C = A·B: dA = G·Bᵀ, dB = Aᵀ·G, with the transposes folded into the products (as
/// TensorFlow's MatMul gradient does) and batch broadcasting summed away.
pub(crate) fn derivatives(
    a: &Tensor,
    b: &Tensor,
    transpose_a: bool,
    transpose_b: bool,
    g: &Tensor,
    needs: &[bool],
) -> Result<InputGrads> {
    let (need_a, need_b) = (needs.first() == Some(&true), needs.get(1) == Some(&true));
    // (x, y, transpose x, transpose y) of each product.
    let (pa, pb) = match (transpose_a, transpose_b) {
        (false, false) => ((g, b, false, true), (a, g, true, false)),
        (false, true) => ((g, b, false, false), (g, a, true, false)),
        (true, false) => ((b, g, false, true), (a, g, false, false)),
        (true, true) => ((b, g, true, true), (g, a, true, true)),
    };
    let mm = |(x, y, tx, ty): (&Tensor, &Tensor, bool, bool)| matmul(x, y, tx, ty);
    let (ga, gb) = if need_a && need_b && crate::context::nothing_records() && both_large(&pa, &pb) {
        // Two independent products, each on its own core: no tape records on this thread,
        // so nothing has to be recorded in order, and the results do not depend on where
        // a product runs.
        // The kernel level of this thread (`isa::with_isa`) goes with the product that may
        // be stolen by another thread.
        let level = kernels::isa::current();
        let run = |(x, y, tx, ty): (&Tensor, &Tensor, bool, bool)| level.enter(|| kernels::matmul(x, y, tx, ty));
        let (ga, gb) = rayon::join(|| run(pa), || run(pb));
        (Some(ga), Some(gb))
    } else {
        (need_a.then(|| mm(pa)), need_b.then(|| mm(pb)))
    };
    let ga = ga.map(|r| r.and_then(|t| unbroadcast(&t, a.shape()))).transpose()?;
    let gb = gb.map(|r| r.and_then(|t| unbroadcast(&t, b.shape()))).transpose()?;
    Ok(smallvec::smallvec![ga, gb])
}

/// Whether both products are large enough that running them side by side pays for handing
/// one to another thread ([`JOIN_MIN_WORK`] each), on a pool of more than one thread.
fn both_large(pa: &(&Tensor, &Tensor, bool, bool), pb: &(&Tensor, &Tensor, bool, bool)) -> bool {
    // Multiply-adds: every element of op(x), batch included, times the columns of op(y).
    let work = |&(x, y, _, ty): &(&Tensor, &Tensor, bool, bool)| {
        let yd = y.dims();
        let cols = if yd.len() < 2 {
            0
        } else if ty {
            yd[yd.len() - 2]
        } else {
            yd[yd.len() - 1]
        };
        x.num_elements().saturating_mul(cols)
    };
    // Inside a parallel backward pass's component every thread is busy already.
    rayon::current_num_threads() > 1 && !kernels::parallel::sharing() && work(pa).min(work(pb)) >= JOIN_MIN_WORK
}

/// Fewest multiply-adds of each product for the two to run side by side: 2^18 take
/// ~10 µs on one core, above the ~7 µs of handing one to the other thread.
const JOIN_MIN_WORK: usize = 1 << 18;
