//! Matrix products and their derivatives.

use std::sync::Arc;

use tapeflow_dtype::Result;
use tapeflow_kernels as kernels;

use crate::context::record_custom;
use crate::ops::binary::unbroadcast;
use crate::runtime::Tensor;

/// `op(a) · op(b)`, recorded with its derivative.
pub(crate) fn matmul(a: &Tensor, b: &Tensor, transpose_a: bool, transpose_b: bool) -> Result<Tensor> {
    let out = kernels::matmul(a, b, transpose_a, transpose_b)?;
    record_custom(&[a, b], &out, || {
        let (a, b) = (a.clone(), b.clone());
        Arc::new(move |g: &Tensor, needs: &[bool]| {
            // C = A·B: dA = G·Bᵀ, dB = Aᵀ·G, with the transposes folded into the products
            // (as TensorFlow's MatMul gradient does) and batch broadcasting summed away.
            let mm = |x: &Tensor, y: &Tensor, tx: bool, ty: bool| matmul(x, y, tx, ty);
            let (ga, gb) = match (transpose_a, transpose_b) {
                (false, false) => (needs[0].then(|| mm(g, &b, false, true)), needs[1].then(|| mm(&a, g, true, false))),
                (false, true) => (needs[0].then(|| mm(g, &b, false, false)), needs[1].then(|| mm(g, &a, true, false))),
                (true, false) => (needs[0].then(|| mm(&b, g, false, true)), needs[1].then(|| mm(&a, g, false, false))),
                (true, true) => (needs[0].then(|| mm(&b, g, true, true)), needs[1].then(|| mm(g, &a, true, true))),
            };
            let ga = ga.map(|r| r.and_then(|t| unbroadcast(&t, a.shape()))).transpose()?;
            let gb = gb.map(|r| r.and_then(|t| unbroadcast(&t, b.shape()))).transpose()?;
            Ok(vec![ga, gb])
        })
    });
    Ok(out)
}
