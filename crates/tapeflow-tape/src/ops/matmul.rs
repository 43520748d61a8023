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
    let mm = |x: &Tensor, y: &Tensor, tx: bool, ty: bool| matmul(x, y, tx, ty);
    let (ga, gb) = match (transpose_a, transpose_b) {
        (false, false) => (need_a.then(|| mm(g, b, false, true)), need_b.then(|| mm(a, g, true, false))),
        (false, true) => (need_a.then(|| mm(g, b, false, false)), need_b.then(|| mm(g, a, true, false))),
        (true, false) => (need_a.then(|| mm(b, g, false, true)), need_b.then(|| mm(a, g, false, false))),
        (true, true) => (need_a.then(|| mm(b, g, true, true)), need_b.then(|| mm(g, a, true, true))),
    };
    let ga = ga.map(|r| r.and_then(|t| unbroadcast(&t, a.shape()))).transpose()?;
    let gb = gb.map(|r| r.and_then(|t| unbroadcast(&t, b.shape()))).transpose()?;
    Ok(smallvec::smallvec![ga, gb])
}
