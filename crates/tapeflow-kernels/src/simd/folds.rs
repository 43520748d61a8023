//! Slice kernels of the catalog-II reductions and scans: min and product of a run (and
//! into an accumulator row), the index of the maximum or minimum of a run or of each
//! column of a block, and a cumulative sum or product down the columns of a block.
//!
//! Like the kernels of `simd/mod.rs` they are written once over the instruction-set token
//! and keep 16 lanes on every level, so every level gives the same bits.

use super::{Binary, binary_in_place};
use crate::elementwise::BinaryOp;
use crate::isa::{F32s, I32s, LANES, Mask, Simd, kernel};

kernel! {
    /// Minimum of a run (+inf if empty); NaN if any element is NaN.
    pub fn min_f32<'a>(src: &'a [f32]) -> f32 => min_body;
}

#[inline(always)]
fn min_body<S: Simd>(s: S, src: &[f32]) -> f32 {
    let (vecs, tail) = src.as_chunks::<LANES>();
    let mut acc = s.splat(f32::INFINITY);
    let mut nan = s.none();
    for v in vecs {
        let v = s.load(v);
        nan = nan | v.is_nan();
        acc = acc.fast_min(v);
    }
    let t = s.load_padded(tail, f32::INFINITY);
    nan = nan | t.is_nan();
    acc = acc.fast_min(t);
    if nan.any() { f32::NAN } else { acc.to_array().into_iter().fold(f32::INFINITY, f32::min) }
}

kernel! {
    /// Product of a run (1 if empty), in 4 × 16 lanes of partial products combined in a
    /// fixed order (the same on every level).
    pub fn prod_f32<'a>(src: &'a [f32]) -> f32 => prod_body;
}

#[inline(always)]
fn prod_body<S: Simd>(s: S, src: &[f32]) -> f32 {
    let (vecs, tail) = src.as_chunks::<LANES>();
    let one = s.splat(1.0);
    let mut acc = [one; 4];
    let (quads, rest) = vecs.as_chunks::<4>();
    for q in quads {
        for k in 0..4 {
            acc[k] = acc[k] * s.load(&q[k]);
        }
    }
    for (k, v) in rest.iter().enumerate() {
        acc[k] = acc[k] * s.load(v);
    }
    acc[0] = acc[0] * s.load_padded(tail, 1.0);
    let a = ((acc[0] * acc[1]) * (acc[2] * acc[3])).to_array();
    // Lane i times lane i + 8, then i + 4, i + 2, i + 1: the order of `reduce_add`.
    let h: [f32; 8] = std::array::from_fn(|i| a[i] * a[i + 8]);
    let q: [f32; 4] = std::array::from_fn(|i| h[i] * h[i + 4]);
    let p: [f32; 2] = std::array::from_fn(|i| q[i] * q[i + 2]);
    p[0] * p[1]
}

kernel! {
    /// `acc[i] = min(acc[i], src[i])`, NaN sticking.
    pub fn min_into_f32<'a>(acc: &'a mut [f32], src: &'a [f32]) => min_into_body;
}

#[inline(always)]
fn min_into_body<S: Simd>(s: S, acc: &mut [f32], src: &[f32]) {
    binary_in_place(s, acc, src, Binary(s, BinaryOp::Minimum));
}

kernel! {
    /// `acc[i] *= src[i]`.
    pub fn mul_into_f32<'a>(acc: &'a mut [f32], src: &'a [f32]) => mul_into_body;
}

#[inline(always)]
fn mul_into_body<S: Simd>(s: S, acc: &mut [f32], src: &[f32]) {
    binary_in_place(s, acc, src, Binary(s, BinaryOp::Mul));
}

// ---------------------------------------------------------------------------------------
// argmax / argmin: a running best and its index per lane, then a tie-aware combine.
// ---------------------------------------------------------------------------------------

/// The element type of an arg kernel and whether it looks for the maximum (`MAX`) or the
/// minimum: how a vector loads and how a running best is replaced. A lane is replaced only
/// by a strictly better value, so each lane keeps the first index of its best; NaN compares
/// false and is never taken (TensorFlow's CPU kernel skips it the same way).
trait ArgLanes<S: Simd>: Copy {
    type E: Copy + PartialOrd;
    type V: Copy;
    /// What pads a partial vector: never better than anything.
    fn pad(self) -> Self::E;
    fn load(self, s: S, a: &[Self::E; LANES]) -> Self::V;
    /// Up to 16 values, [`pad`](Self::pad) in the other lanes.
    fn load_part(self, s: S, a: &[Self::E]) -> Self::V;
    fn splat(self, s: S, x: Self::E) -> Self::V;
    /// The new running best and the lanes where `v` replaced it.
    fn update(self, best: Self::V, v: Self::V) -> (Self::V, S::M);
    fn lanes(self, v: Self::V) -> [Self::E; LANES];
}

#[derive(Clone, Copy)]
struct F32Arg<const MAX: bool>;

impl<S: Simd, const MAX: bool> ArgLanes<S> for F32Arg<MAX> {
    type E = f32;
    type V = S::F;
    #[inline(always)]
    fn pad(self) -> f32 {
        f32::NAN
    }
    #[inline(always)]
    fn load(self, s: S, a: &[f32; LANES]) -> S::F {
        s.load(a)
    }
    #[inline(always)]
    fn load_part(self, s: S, a: &[f32]) -> S::F {
        s.load_padded(a, f32::NAN)
    }
    #[inline(always)]
    fn splat(self, s: S, x: f32) -> S::F {
        s.splat(x)
    }
    #[inline(always)]
    fn update(self, best: S::F, v: S::F) -> (S::F, S::M) {
        let better = if MAX { v.simd_gt(best) } else { v.simd_lt(best) };
        (better.select(v, best), better)
    }
    #[inline(always)]
    fn lanes(self, v: S::F) -> [f32; LANES] {
        v.to_array()
    }
}

#[derive(Clone, Copy)]
struct I32Arg<const MAX: bool>;

impl<S: Simd, const MAX: bool> ArgLanes<S> for I32Arg<MAX> {
    type E = i32;
    type V = S::I;
    #[inline(always)]
    fn pad(self) -> i32 {
        if MAX { i32::MIN } else { i32::MAX }
    }
    #[inline(always)]
    fn load(self, s: S, a: &[i32; LANES]) -> S::I {
        s.load_i(a)
    }
    #[inline(always)]
    fn load_part(self, s: S, a: &[i32]) -> S::I {
        let mut lanes = [<Self as ArgLanes<S>>::pad(self); LANES];
        let n = a.len().min(LANES);
        lanes[..n].copy_from_slice(&a[..n]);
        s.load_i(&lanes)
    }
    #[inline(always)]
    fn splat(self, s: S, x: i32) -> S::I {
        s.splat_i(x)
    }
    #[inline(always)]
    fn update(self, best: S::I, v: S::I) -> (S::I, S::M) {
        let new = if MAX { best.max(v) } else { best.min(v) };
        // max(best, v) differs from best exactly where v > best.
        (new, !new.simd_eq(best))
    }
    #[inline(always)]
    fn lanes(self, v: S::I) -> [i32; LANES] {
        v.to_array()
    }
}

/// Whether `a` is strictly better than `b` for an arg kernel looking for the maximum.
#[inline(always)]
fn better<E: PartialOrd>(max: bool, a: E, b: E) -> bool {
    if max { a > b } else { a < b }
}

/// The running indices where `mask` is set become `cur`. Indices travel as the bits of a
/// float vector, which only selects between them (no arithmetic on the floats).
#[inline(always)]
fn take_index<S: Simd>(mask: S::M, cur: S::I, idx: S::I) -> S::I {
    mask.select(S::F::from_bits(cur), S::F::from_bits(idx)).to_bits()
}

/// Combines (value, index) lane pairs into the first index of the best value; pairs still
/// holding `init` (index 0) stand for "nothing better than `init`", which gives 0.
#[inline(always)]
fn combine<E: PartialOrd + Copy>(max: bool, init: E, pairs: impl Iterator<Item = (E, i32)>) -> usize {
    let (mut best, mut at) = (init, 0i32);
    for (v, i) in pairs {
        if better(max, v, best) || (v == best && i < at) {
            (best, at) = (v, i);
        }
    }
    at as usize
}

/// The first index of the best value of `src` among those strictly better than `init`
/// (0 when there is none): 4 chains of 16 lanes, each holding its best and that best's
/// first index, combined at the end.
#[inline(always)]
fn arg_row<S: Simd, A: ArgLanes<S>>(s: S, a: A, max: bool, src: &[A::E], init: A::E) -> usize {
    let step = s.splat_i(LANES as i32);
    let mut cur = s.load_i(&std::array::from_fn(|i| i as i32));
    let mut best = [a.splat(s, init); 4];
    let mut idx = [s.splat_i(0); 4];
    let (vecs, tail) = src.as_chunks::<LANES>();
    let (quads, rest) = vecs.as_chunks::<4>();
    for q in quads {
        for k in 0..4 {
            let (b, m) = a.update(best[k], a.load(s, &q[k]));
            best[k] = b;
            idx[k] = take_index::<S>(m, cur, idx[k]);
            cur = cur + step;
        }
    }
    for (k, v) in rest.iter().enumerate() {
        let (b, m) = a.update(best[k], a.load(s, v));
        best[k] = b;
        idx[k] = take_index::<S>(m, cur, idx[k]);
        cur = cur + step;
    }
    if !tail.is_empty() {
        let k = rest.len();
        let (b, m) = a.update(best[k], a.load_part(s, tail));
        best[k] = b;
        idx[k] = take_index::<S>(m, cur, idx[k]);
    }
    let pairs = (0..4).flat_map(|k| a.lanes(best[k]).into_iter().zip(idx[k].to_array()));
    combine(max, init, pairs)
}

/// For `out.len()` columns of `rows` rows, row `r` starting at `src[r * stride]`, the row
/// index of each column's first best value (as [`arg_row`]), `G` vectors of columns at a
/// time from column `c`; `out` holds the group's columns.
#[inline(always)]
#[allow(clippy::too_many_arguments)]
fn arg_column_group<S: Simd, A: ArgLanes<S>, const G: usize>(
    s: S,
    a: A,
    src: &[A::E],
    stride: usize,
    rows: usize,
    init: A::E,
    c: usize,
    out: &mut [i32],
) {
    let width = out.len();
    let mut best = [a.splat(s, init); G];
    let mut idx = [s.splat_i(0); G];
    for r in 0..rows {
        let row = &src[r * stride + c..r * stride + c + width];
        let (whole, part) = row.as_chunks::<LANES>();
        let cur = s.splat_i(r as i32);
        for g in 0..G {
            let v = if g < whole.len() { a.load(s, &whole[g]) } else { a.load_part(s, part) };
            let (b, m) = a.update(best[g], v);
            best[g] = b;
            idx[g] = take_index::<S>(m, cur, idx[g]);
        }
    }
    for (g, part) in out.chunks_mut(LANES).enumerate() {
        let len = part.len();
        part.copy_from_slice(&idx[g].to_array()[..len]);
    }
}

/// [`arg_column_group`] over all of `out`: 4 vectors at a time, then one, then the tail.
#[inline(always)]
fn arg_columns<S: Simd, A: ArgLanes<S>>(
    s: S,
    a: A,
    src: &[A::E],
    stride: usize,
    rows: usize,
    init: A::E,
    out: &mut [i32],
) {
    let width = out.len();
    let mut c = 0;
    while width - c >= 4 * LANES {
        arg_column_group::<S, A, 4>(s, a, src, stride, rows, init, c, &mut out[c..c + 4 * LANES]);
        c += 4 * LANES;
    }
    while c < width {
        let w = (width - c).min(LANES);
        arg_column_group::<S, A, 1>(s, a, src, stride, rows, init, c, &mut out[c..c + w]);
        c += w;
    }
}

kernel! {
    /// The index of the first maximum (`max`) or minimum of `src` among the values strictly
    /// beyond `init` (the dtype's lowest or highest finite value); NaN is skipped; 0 when no
    /// value qualifies. `src.len()` must not exceed `i32::MAX`.
    pub fn arg_row_f32<'a>(src: &'a [f32], max: bool, init: f32) -> usize => arg_row_f32_body;
}

#[inline(always)]
fn arg_row_f32_body<S: Simd>(s: S, src: &[f32], max: bool, init: f32) -> usize {
    if max { arg_row(s, F32Arg::<true>, true, src, init) } else { arg_row(s, F32Arg::<false>, false, src, init) }
}

kernel! {
    /// [`arg_row_f32`] for int32 (`init`: `i32::MIN` for the maximum, `i32::MAX` for the
    /// minimum).
    pub fn arg_row_i32<'a>(src: &'a [i32], max: bool) -> usize => arg_row_i32_body;
}

#[inline(always)]
fn arg_row_i32_body<S: Simd>(s: S, src: &[i32], max: bool) -> usize {
    if max {
        arg_row(s, I32Arg::<true>, true, src, i32::MIN)
    } else {
        arg_row(s, I32Arg::<false>, false, src, i32::MAX)
    }
}

kernel! {
    /// For each of the `out.len()` columns of a block of `rows` rows, row `r` starting at
    /// `src[r * stride]`, the row index of the column's first maximum or minimum, by the
    /// rules of [`arg_row_f32`]. `rows` must not exceed `i32::MAX`.
    pub fn arg_columns_f32<'a>(src: &'a [f32], stride: usize, rows: usize, max: bool, init: f32, out: &'a mut [i32]) => arg_columns_f32_body;
}

#[inline(always)]
fn arg_columns_f32_body<S: Simd>(s: S, src: &[f32], stride: usize, rows: usize, max: bool, init: f32, out: &mut [i32]) {
    if max {
        arg_columns(s, F32Arg::<true>, src, stride, rows, init, out)
    } else {
        arg_columns(s, F32Arg::<false>, src, stride, rows, init, out)
    }
}

kernel! {
    /// [`arg_columns_f32`] for int32.
    pub fn arg_columns_i32<'a>(src: &'a [i32], stride: usize, rows: usize, max: bool, out: &'a mut [i32]) => arg_columns_i32_body;
}

#[inline(always)]
fn arg_columns_i32_body<S: Simd>(s: S, src: &[i32], stride: usize, rows: usize, max: bool, out: &mut [i32]) {
    if max {
        arg_columns(s, I32Arg::<true>, src, stride, rows, i32::MIN, out)
    } else {
        arg_columns(s, I32Arg::<false>, src, stride, rows, i32::MAX, out)
    }
}

// ---------------------------------------------------------------------------------------
// Scans down the columns of a block: cumsum and cumprod along an axis that is not the last.
// ---------------------------------------------------------------------------------------

/// One step of a scan: `acc + x` or (`PROD`) `acc · x`.
#[inline(always)]
fn step<S: Simd, const PROD: bool>(acc: S::F, x: S::F) -> S::F {
    if PROD { acc * x } else { acc + x }
}

/// The scan of `G` vectors of columns from column `c` (`width` columns in all, the last
/// vector possibly partial) down the `rows` rows of `src` (row-major, `stride` columns).
#[inline(always)]
#[allow(clippy::too_many_arguments)]
fn scan_column_group<S: Simd, const PROD: bool, const G: usize>(
    s: S,
    src: &[f32],
    dst: &mut [f32],
    stride: usize,
    rows: usize,
    c: usize,
    width: usize,
    exclusive: bool,
    reverse: bool,
) {
    let mut acc = [s.splat(if PROD { 1.0 } else { 0.0 }); G];
    for i in 0..rows {
        let r = if reverse { rows - 1 - i } else { i };
        let at = r * stride + c;
        let (whole, part) = src[at..at + width].as_chunks::<LANES>();
        let (out_whole, out_part) = dst[at..at + width].as_chunks_mut::<LANES>();
        for g in 0..G {
            let x = if g < whole.len() { s.load(&whole[g]) } else { s.load_padded(part, 1.0) };
            let before = acc[g];
            acc[g] = step::<S, PROD>(acc[g], x);
            let y = if exclusive { before } else { acc[g] };
            if g < out_whole.len() {
                y.store(&mut out_whole[g]);
            } else {
                let len = out_part.len();
                out_part.copy_from_slice(&y.to_array()[..len]);
            }
        }
    }
}

#[inline(always)]
#[allow(clippy::too_many_arguments)]
fn scan_columns<S: Simd, const PROD: bool>(
    s: S,
    src: &[f32],
    dst: &mut [f32],
    rows: usize,
    width: usize,
    exclusive: bool,
    reverse: bool,
) {
    let mut c = 0;
    while width - c >= 4 * LANES {
        scan_column_group::<S, PROD, 4>(s, src, dst, width, rows, c, 4 * LANES, exclusive, reverse);
        c += 4 * LANES;
    }
    while c < width {
        let w = (width - c).min(LANES);
        scan_column_group::<S, PROD, 1>(s, src, dst, width, rows, c, w, exclusive, reverse);
        c += w;
    }
}

kernel! {
    /// The cumulative sum (or, `prod`, product) of a row-major block of `rows` rows of
    /// `width` columns down each column, into `dst` (the same layout): row by row in order
    /// (`reverse`: from the last row), each output the total before (`exclusive`) or after
    /// its row's element — the order of the scalar reference, so the same bits.
    #[allow(clippy::too_many_arguments)]
    pub fn scan_columns_f32<'a>(src: &'a [f32], dst: &'a mut [f32], rows: usize, width: usize, prod: bool, exclusive: bool, reverse: bool) => scan_columns_body;
}

#[inline(always)]
#[allow(clippy::too_many_arguments)]
fn scan_columns_body<S: Simd>(
    s: S,
    src: &[f32],
    dst: &mut [f32],
    rows: usize,
    width: usize,
    prod: bool,
    exclusive: bool,
    reverse: bool,
) {
    if prod {
        scan_columns::<S, true>(s, src, dst, rows, width, exclusive, reverse)
    } else {
        scan_columns::<S, false>(s, src, dst, rows, width, exclusive, reverse)
    }
}

/// The scan of 16 contiguous rows of `n` elements (`src` and `dst` hold `16 · n`) along
/// the rows, 16 × 16 tiles at a time: each tile is transposed so that a vector holds one
/// column (one position of every row), the columns are combined in order, and the tile is
/// transposed back. Each row's elements combine in the reference's order.
#[inline(always)]
fn scan_rows16<S: Simd, const PROD: bool>(
    s: S,
    src: &[f32],
    dst: &mut [f32],
    n: usize,
    exclusive: bool,
    reverse: bool,
) {
    let identity = if PROD { 1.0 } else { 0.0 };
    let mut acc = s.splat(identity);
    let tiles = n.div_ceil(LANES);
    for i in 0..tiles {
        let t = if reverse { tiles - 1 - i } else { i };
        let k0 = t * LANES;
        let w = (n - k0).min(LANES);
        let rows: [S::F; LANES] = std::array::from_fn(|r| s.load_padded(&src[r * n + k0..r * n + k0 + w], identity));
        let mut columns = s.transpose16(rows);
        for j in 0..w {
            let j = if reverse { w - 1 - j } else { j };
            let before = acc;
            acc = step::<S, PROD>(acc, columns[j]);
            columns[j] = if exclusive { before } else { acc };
        }
        for (r, row) in s.transpose16(columns).into_iter().enumerate() {
            dst[r * n + k0..r * n + k0 + w].copy_from_slice(&row.to_array()[..w]);
        }
    }
}

kernel! {
    /// The cumulative sum (or product) along each of 16 contiguous rows of `n` elements, in
    /// the element order of the scalar reference (the same bits).
    pub fn scan_rows16_f32<'a>(src: &'a [f32], dst: &'a mut [f32], n: usize, prod: bool, exclusive: bool, reverse: bool) => scan_rows16_body;
}

#[inline(always)]
fn scan_rows16_body<S: Simd>(s: S, src: &[f32], dst: &mut [f32], n: usize, prod: bool, exclusive: bool, reverse: bool) {
    if prod {
        scan_rows16::<S, true>(s, src, dst, n, exclusive, reverse)
    } else {
        scan_rows16::<S, false>(s, src, dst, n, exclusive, reverse)
    }
}
