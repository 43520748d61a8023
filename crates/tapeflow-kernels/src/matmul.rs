//! Matrix products: 2-D and batched, with broadcast batch dimensions and transposed
//! operands.

use half::f16;
use tapeflow_dtype::{DType, Error, Result, Shape, Storage, Tensor};

use crate::gemm::{self, GemmError, MatRef};
use crate::gemv::{RowUse, gemv_f32};
use crate::isa::{self, Level};
use crate::layout::{broadcast_dims, broadcast_strides, for_each_strided};
use crate::reference;

/// `tf.linalg.matmul(a, b, transpose_a, transpose_b)`: both operands of rank ≥ 2; the
/// leading (batch) dimensions broadcast; the inner dimensions must agree.
pub fn matmul<R>(a: &Tensor<R>, b: &Tensor<R>, transpose_a: bool, transpose_b: bool) -> Result<Tensor<R>> {
    let mismatch = |reason: String| Error::shape_mismatch("matmul", a, b, reason);
    if a.dtype() != b.dtype() {
        return Err(Error::dtype_mismatch("matmul", a, b));
    }
    if a.rank() < 2 || b.rank() < 2 {
        return Err(mismatch("both operands must have rank 2 or more".into()));
    }
    let (ad, bd) = (a.dims(), b.dims());
    let (ra, rb) = (ad.len(), bd.len());
    let (m, ka) = if transpose_a { (ad[ra - 1], ad[ra - 2]) } else { (ad[ra - 2], ad[ra - 1]) };
    let (kb, n) = if transpose_b { (bd[rb - 1], bd[rb - 2]) } else { (bd[rb - 2], bd[rb - 1]) };
    if ka != kb {
        return Err(mismatch(format!("inner dimensions differ ({ka} and {kb})")));
    }
    let batch = broadcast_dims(&ad[..ra - 2], &bd[..rb - 2])
        .ok_or_else(|| mismatch("batch dimensions do not broadcast".into()))?;
    let mut out_dims = batch.dims().to_vec();
    out_dims.extend([m, n]);
    let out_shape = Shape::from(out_dims);
    crate::layout::checked_output_len("matmul", a, &out_shape)?;
    let batches = batch.num_elements();
    // Matrix index of each operand for each output batch (0-stride where broadcast).
    let sa = broadcast_strides(&ad[..ra - 2], batch.dims());
    let sb = broadcast_strides(&bd[..rb - 2], batch.dims());
    let mut pairs = Vec::with_capacity(batches);
    for_each_strided(batch.dims(), [&sa, &sb], |_, [i, j]| pairs.push((i, j)));
    let k = ka;
    // Saturating: with no batch (`[0, 1, 2^64 − 1]`) a matrix's size may exceed usize, and
    // no loop below reads it; with a batch, each is at most an operand's or the result's
    // element count.
    let (size_a, size_b, size_c) = (m.saturating_mul(k), k.saturating_mul(n), m.saturating_mul(n));
    let dims = Dims { m, k, n, transpose_a, transpose_b };
    let level = isa::current();
    let storage = match a.dtype() {
        DType::F32 if m == 1 || n == 1 => {
            let (x, y) = (a.as_slice::<f32>()?, b.as_slice::<f32>()?);
            Storage::for_overwrite::<f32>(batches * size_c, |c| {
                for (bi, &(i, j)) in pairs.iter().enumerate() {
                    let (xa, yb) = (&x[i * size_a..(i + 1) * size_a], &y[j * size_b..(j + 1) * size_b]);
                    let out = &mut c[bi * size_c..(bi + 1) * size_c];
                    matrix_vector(level, xa, yb, out, dims);
                }
            })
        }
        DType::F32 => {
            let (x, y) = (a.as_slice::<f32>()?, b.as_slice::<f32>()?);
            let mut done = Ok(());
            // gemm overwrites every element of C (k = 0 included), so a recycled buffer works.
            let storage =
                Storage::for_overwrite::<f32>(batches * size_c, |c| done = gemm_batch(level, x, y, c, &pairs, dims));
            done.map_err(|e| mismatch(e.to_string()))?;
            storage
        }
        DType::F16 => {
            // Widened to f32 while packing, accumulated in f32, rounded once here.
            let (x, y) = (a.as_slice::<f16>()?, b.as_slice::<f16>()?);
            let mut done = Ok(());
            let wide =
                Storage::for_overwrite::<f32>(batches * size_c, |c| done = gemm_batch(level, x, y, c, &pairs, dims));
            done.map_err(|e| mismatch(e.to_string()))?;
            let c = wide.as_slice::<f32>().unwrap_or(&[]);
            Storage::for_overwrite::<f16>(c.len(), |out| crate::simd::narrow_f16(level, c, out))
        }
        DType::I32 => {
            let (x, y) = (a.as_slice::<i32>()?, b.as_slice::<i32>()?);
            Storage::from_fn::<i32>(batches * size_c, |c| {
                for (bi, &(i, j)) in pairs.iter().enumerate() {
                    reference::matmul_i32(
                        &x[i * size_a..(i + 1) * size_a],
                        &y[j * size_b..(j + 1) * size_b],
                        &mut c[bi * size_c..(bi + 1) * size_c],
                        m,
                        k,
                        n,
                        transpose_a,
                        transpose_b,
                    );
                }
            })
        }
        DType::Bool => {
            return Err(Error::UnsupportedDType { op: "matmul", shape: a.shape().clone(), dtype: a.dtype() });
        }
    };
    Tensor::from_storage(storage, out_shape)
}

/// One product with `m = 1` or `n = 1`, read in place (no packing).
fn matrix_vector(level: Level, x: &[f32], y: &[f32], out: &mut [f32], d: Dims) {
    let Dims { m, k, n, transpose_a, transpose_b } = d;
    if n == 1 {
        // op(A) (m × k) · b (k): A stored m × k gives dot products, k × m multiply-adds.
        if transpose_a {
            gemv_f32(level, x, k, m, y, out, RowUse::Axpy);
        } else {
            gemv_f32(level, x, m, k, y, out, RowUse::Dot);
        }
    } else {
        // a (k) · op(B) (k × n): B stored k × n gives multiply-adds, n × k dot products.
        if transpose_b {
            gemv_f32(level, y, n, k, x, out, RowUse::Dot);
        } else {
            gemv_f32(level, y, k, n, x, out, RowUse::Axpy);
        }
    }
}

/// Shape of one product of a batch: `op(A)` is `m × k`, `op(B)` is `k × n`.
#[derive(Clone, Copy)]
struct Dims {
    m: usize,
    k: usize,
    n: usize,
    transpose_a: bool,
    transpose_b: bool,
}

/// Every product of a batch through [`gemm::gemm`]: operand `i` of `x` (`j` of `y`) for
/// each `(i, j)` of `pairs`, read in place through strides (a transposed operand is a
/// view with swapped strides), into consecutive `m × n` blocks of `c`. Products too small
/// to split (see [`gemm::runs_inline`]) run one per rayon task instead; each product is
/// computed exactly the same way either way, so results never depend on the threads.
fn gemm_batch<T: gemm::Element>(
    level: Level,
    x: &[T],
    y: &[T],
    c: &mut [f32],
    pairs: &[(usize, usize)],
    d: Dims,
) -> std::result::Result<(), GemmError> {
    let Dims { m, k, n, transpose_a, transpose_b } = d;
    // Saturating: with no batch (`[0, 1, 2^64 − 1]`) a matrix's size may exceed usize, and
    // no loop below reads it; with a batch, each is at most an operand's or the result's
    // element count.
    let (size_a, size_b, size_c) = (m.saturating_mul(k), k.saturating_mul(n), m.saturating_mul(n));
    if size_c == 0 {
        return Ok(());
    }
    let one = |&(i, j): &(usize, usize), out: &mut [f32]| {
        let xa = x.get(i * size_a..(i + 1) * size_a).and_then(|d| MatRef::op(d, m, k, transpose_a));
        let yb = y.get(j * size_b..(j + 1) * size_b).and_then(|d| MatRef::op(d, k, n, transpose_b));
        match (xa, yb) {
            (Some(xa), Some(yb)) => gemm::gemm_at(level, xa, yb, out),
            _ => Err(GemmError::OutOfBounds),
        }
    };
    let total = pairs.len().saturating_mul(m).saturating_mul(n).saturating_mul(k);
    if pairs.len() > 1 && gemm::runs_inline(m, n, k) && total >= gemm::INLINE_BELOW {
        let mut results: Vec<Result<(), GemmError>> = std::iter::repeat_with(|| Ok(())).take(pairs.len()).collect();
        let items = c.chunks_mut(size_c).zip(pairs).zip(results.iter_mut()).collect();
        crate::parallel::for_each_item(items, |_, ((out, p), result)| *result = one(p, out));
        results.into_iter().collect()
    } else {
        c.chunks_mut(size_c).zip(pairs).try_for_each(|(out, p)| one(p, out))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    type T = Tensor<()>;

    #[test]
    fn two_by_two_and_transposes() {
        let a = T::from_vec(vec![1.0f32, 2.0, 3.0, 4.0], [2, 2]).unwrap();
        assert_eq!(matmul(&a, &a, false, false).unwrap().to_vec::<f32>().unwrap(), vec![7.0, 10.0, 15.0, 22.0]);
        assert_eq!(matmul(&a, &a, true, false).unwrap().to_vec::<f32>().unwrap(), vec![10.0, 14.0, 14.0, 20.0]);
        assert_eq!(matmul(&a, &a, false, true).unwrap().to_vec::<f32>().unwrap(), vec![5.0, 11.0, 11.0, 25.0]);
    }

    #[test]
    fn batch_dimensions_broadcast() {
        let a = T::from_vec(vec![1i32; 3 * 2 * 4], [3, 2, 4]).unwrap();
        let b = T::from_vec(vec![2i32; 4 * 5], [4, 5]).unwrap();
        let c = matmul(&a, &b, false, false).unwrap();
        assert_eq!(c.dims(), &[3, 2, 5]);
        assert!(c.to_vec::<i32>().unwrap().iter().all(|&v| v == 8));
        assert!(matmul(&b, &a, false, false).is_err());
        let v = T::from_vec(vec![1i32; 4], [4]).unwrap();
        assert!(matmul(&v, &b, false, false).is_err());
    }
}
