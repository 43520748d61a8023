//! Matrix–vector products: the `n = 1` and `m = 1` shapes of matmul (gradients of
//! matrix–vector layers, jacobian rows). Packing a whole matrix for one column costs more
//! than the product, so these read the matrix in place: a dot product per row, or a
//! multiply-add of each row into the output. One kernel call per product, at the op's level.

use crate::isa::{F32s, LANES, Simd, kernel};

/// How the matrix's rows combine with the vector.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum RowUse {
    /// `out[i] = dot(row_i, v)`: `out` has one element per row.
    Dot,
    /// `out = Σ_i v[i] · row_i`: `out` has one element per column.
    Axpy,
}

/// `dot(a, b)` in four vector accumulators, combined in a fixed order.
#[inline(always)]
fn dot<S: Simd>(s: S, a: &[f32], b: &[f32]) -> f32 {
    let n = a.len().min(b.len());
    let (av, at) = a[..n].as_chunks::<LANES>();
    let (bv, bt) = b[..n].as_chunks::<LANES>();
    let mut acc = [s.zero(); 4];
    for (k, (x, y)) in av.iter().zip(bv).enumerate() {
        acc[k % 4] = s.load(x).mul_add(s.load(y), acc[k % 4]);
    }
    let tail: f32 = at.iter().zip(bt).map(|(x, y)| x * y).sum();
    ((acc[0] + acc[1]) + (acc[2] + acc[3])).reduce_add() + tail
}

/// `out += c · row`.
#[inline(always)]
fn axpy<S: Simd>(s: S, c: f32, row: &[f32], out: &mut [f32]) {
    let n = row.len().min(out.len());
    let (rv, rt) = row[..n].as_chunks::<LANES>();
    let (ov, ot) = out[..n].as_chunks_mut::<LANES>();
    let cv = s.splat(c);
    for (r, o) in rv.iter().zip(ov) {
        s.load(r).mul_add(cv, s.load(o)).store(o);
    }
    for (r, o) in rt.iter().zip(ot) {
        *o = r.mul_add(c, *o);
    }
}

/// `out += c[0]·rows[0] + … + c[3]·rows[3]`: four rows per pass over `out`, so `out` is
/// loaded and stored once per four rows instead of once per row (stores bound the one-row
/// form).
#[inline(always)]
fn axpy4<S: Simd>(s: S, c: [f32; 4], rows: [&[f32]; 4], out: &mut [f32]) {
    let n = out.len();
    let mut cv = [s.zero(); 4];
    for (v, &c) in cv.iter_mut().zip(&c) {
        *v = s.splat(c);
    }
    let (ov, ot) = out.as_chunks_mut::<LANES>();
    let chunks = rows.map(|r| r[..n].as_chunks::<LANES>());
    for (k, o) in ov.iter_mut().enumerate() {
        let mut acc = s.load(o);
        for (j, (rv, _)) in chunks.iter().enumerate() {
            acc = s.load(&rv[k]).mul_add(cv[j], acc);
        }
        acc.store(o);
    }
    for (k, o) in ot.iter_mut().enumerate() {
        for (j, (_, rt)) in chunks.iter().enumerate() {
            *o = rt[k].mul_add(c[j], *o);
        }
    }
}

kernel! {
    /// The product of a row-major `rows × cols` matrix with `v`, written to `out` (which is
    /// overwritten): see [`RowUse`] for the two shapes.
    pub fn gemv_f32<'a>(matrix: &'a [f32], rows: usize, cols: usize, v: &'a [f32], out: &'a mut [f32], rows_use: RowUse) => gemv_body;
}

#[inline(always)]
fn gemv_body<S: Simd>(s: S, matrix: &[f32], rows: usize, cols: usize, v: &[f32], out: &mut [f32], rows_use: RowUse) {
    match rows_use {
        RowUse::Dot => {
            for (i, o) in out.iter_mut().enumerate().take(rows) {
                *o = dot(s, &matrix[i * cols..(i + 1) * cols], v);
            }
        }
        RowUse::Axpy => {
            let width = cols.min(out.len());
            let out = &mut out[..width];
            out.fill(0.0);
            let rows = rows.min(v.len());
            let row = |i: usize| &matrix[i * cols..(i + 1) * cols];
            let blocked = rows - rows % 4;
            for i in (0..blocked).step_by(4) {
                axpy4(s, [v[i], v[i + 1], v[i + 2], v[i + 3]], [row(i), row(i + 1), row(i + 2), row(i + 3)], out);
            }
            for (i, &c) in v.iter().enumerate().take(rows).skip(blocked) {
                axpy(s, c, row(i), out);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::reference;
    use proptest::prelude::*;

    proptest! {
        #[test]
        fn both_row_uses_match_the_reference_matmul(rows in 0usize..40, cols in 0usize..40, seed in 0u32..1000) {
            let value = |i: usize| (((i as u32).wrapping_mul(2654435761) ^ seed) % 2001) as f32 / 1000.0 - 1.0;
            let matrix: Vec<f32> = (0..rows * cols).map(value).collect();
            let v_cols: Vec<f32> = (0..cols).map(|i| value(i + 7)).collect();
            let v_rows: Vec<f32> = (0..rows).map(|i| value(i + 11)).collect();
            for level in crate::isa::supported_levels() {
                // Dot: matrix (rows × cols) · v (cols × 1)
                let mut got = vec![0.0f32; rows];
                gemv_f32(level, &matrix, rows, cols, &v_cols, &mut got, RowUse::Dot);
                let mut want = vec![0.0f32; rows];
                reference::matmul_f32(&matrix, &v_cols, &mut want, rows, cols, 1, false, false);
                for (g, w) in got.iter().zip(&want) {
                    prop_assert!((g - w).abs() <= 1e-5 * (cols as f32 + 1.0));
                }
                // Axpy: v (1 × rows) · matrix (rows × cols)
                let mut got = vec![0.0f32; cols];
                gemv_f32(level, &matrix, rows, cols, &v_rows, &mut got, RowUse::Axpy);
                let mut want = vec![0.0f32; cols];
                reference::matmul_f32(&v_rows, &matrix, &mut want, 1, rows, cols, false, false);
                for (g, w) in got.iter().zip(&want) {
                    prop_assert!((g - w).abs() <= 1e-5 * (rows as f32 + 1.0));
                }
            }
        }
    }
}
