//! The operations a kernel body may use, as traits every level implements.
//!
//! A token (`S: Simd`) is a zero-sized proof that its instruction set is available; vectors
//! are made only from a token (`s.splat(x)`, `s.load(&a)`), so a vector value also proves it.
//! Once made, vectors combine with operators and methods named as in `wide` (`mul_add`,
//! `simd_gt`, `select`), so a body reads like the math. Every method is `#[inline(always)]`.

use std::ops::{Add, AddAssign, BitAnd, BitOr, Div, Mul, Neg, Not, Sub};

use half::f16;

use super::{Kernel, LANES};

/// An instruction-set token.
pub(crate) trait Simd: Copy + Send + Sync + 'static {
    /// 16 f32 lanes.
    type F: F32s<M = Self::M, I = Self::I>;
    /// A lane mask from comparing two [`Simd::F`].
    type M: Mask<F = Self::F>;
    /// 16 i32 lanes.
    type I: I32s<F = Self::F, M = Self::M>;

    /// Runs `kernel.run(self)` inside a function compiled for this level.
    fn vectorize<K: Kernel>(self, kernel: K) -> K::Output;

    /// Every lane `x`.
    fn splat(self, x: f32) -> Self::F;
    /// Every lane zero.
    #[inline(always)]
    fn zero(self) -> Self::F {
        self.splat(0.0)
    }
    /// The 16 values of `a`.
    fn load(self, a: &[f32; LANES]) -> Self::F;
    /// The 16 float16 values of `a`, widened (exactly).
    fn load_f16(self, a: &[f16; LANES]) -> Self::F;
    /// Every lane `x`.
    fn splat_i(self, x: i32) -> Self::I;
    /// The 16 values of `a`.
    fn load_i(self, a: &[i32; LANES]) -> Self::I;
    /// A mask with no lane set.
    #[inline(always)]
    fn none(self) -> Self::M {
        let z = self.zero();
        z.simd_ne(z)
    }

    /// The transpose of a 16 × 16 block held as 16 row vectors: lane `c` of output `r` is
    /// lane `r` of input `c`. Through memory here; levels with a two-source permute do it
    /// in registers.
    #[inline(always)]
    fn transpose16(self, m: [Self::F; LANES]) -> [Self::F; LANES] {
        let mut rows = [[0.0f32; LANES]; LANES];
        for (row, v) in rows.iter_mut().zip(m) {
            v.store(row);
        }
        let mut out = [self.zero(); LANES];
        for (r, o) in out.iter_mut().enumerate() {
            let mut column = [0.0f32; LANES];
            for (c, x) in column.iter_mut().enumerate() {
                *x = rows[c][r];
            }
            *o = self.load(&column);
        }
        out
    }

    /// Up to 16 values of `src` (the first `src.len()` lanes), `pad` in the other lanes.
    #[inline(always)]
    fn load_padded(self, src: &[f32], pad: f32) -> Self::F {
        let mut lanes = [pad; LANES];
        let n = src.len().min(LANES);
        lanes[..n].copy_from_slice(&src[..n]);
        self.load(&lanes)
    }
}

/// 16 f32 lanes. Arithmetic is IEEE per lane (exactly rounded add, sub, mul, div, sqrt).
pub(crate) trait F32s:
    Copy
    + Add<Output = Self>
    + Sub<Output = Self>
    + Mul<Output = Self>
    + Div<Output = Self>
    + Neg<Output = Self>
    + AddAssign
    + Send
    + Sync
    + 'static
{
    /// The mask type of comparisons.
    type M: Mask<F = Self>;
    /// The integer vector of the same width.
    type I: I32s<F = Self, M = Self::M>;

    /// The lanes as an array.
    fn to_array(self) -> [f32; LANES];
    /// Stores the lanes into `dst`.
    #[inline(always)]
    fn store(self, dst: &mut [f32; LANES]) {
        *dst = self.to_array();
    }
    /// Stores the lanes rounded to float16 (nearest, ties to even) into `dst`.
    fn store_f16(self, dst: &mut [f16; LANES]);

    /// `self · b + c`, fused (one rounding) where the level has FMA; the baseline of a build
    /// without FMA rounds twice.
    fn mul_add(self, b: Self, c: Self) -> Self;
    /// `c − self · b`, fused like [`F32s::mul_add`].
    fn mul_neg_add(self, b: Self, c: Self) -> Self;
    /// |x|.
    fn abs(self) -> Self;
    /// √x, exactly rounded.
    fn sqrt(self) -> Self;
    /// Rounds to the nearest integer, ties to even.
    fn round(self) -> Self;
    /// The larger lane; when either is NaN, the result is either operand (x86 `maxps`):
    /// callers that care handle NaN themselves.
    fn fast_max(self, b: Self) -> Self;
    /// The smaller lane, NaN as in [`F32s::fast_max`].
    fn fast_min(self, b: Self) -> Self;

    /// Ordered `>` per lane (false when either is NaN).
    fn simd_gt(self, b: Self) -> Self::M;
    /// Ordered `>=`.
    fn simd_ge(self, b: Self) -> Self::M;
    /// Ordered `<`.
    fn simd_lt(self, b: Self) -> Self::M;
    /// Ordered `<=`.
    fn simd_le(self, b: Self) -> Self::M;
    /// Ordered `==`.
    fn simd_eq(self, b: Self) -> Self::M;
    /// Unordered `!=` (true when either is NaN).
    fn simd_ne(self, b: Self) -> Self::M;
    /// Lanes holding NaN.
    #[inline(always)]
    fn is_nan(self) -> Self::M {
        self.simd_ne(self)
    }

    /// The lanes' bits as integers.
    fn to_bits(self) -> Self::I;
    /// Floats from their bits.
    fn from_bits(bits: Self::I) -> Self;
    /// Converts to i32, rounding to nearest even (lanes out of range: `i32::MIN`).
    fn round_int(self) -> Self::I;
    /// Converts to i32, rounding toward zero (lanes out of range: `i32::MIN`).
    fn trunc_int(self) -> Self::I;

    /// |self| with the sign of `sign`.
    #[inline(always)]
    fn copysign(self, sign: Self) -> Self {
        // The arithmetic shift spreads the sign bit; shifting back keeps only it.
        let sign_bit = sign.to_bits().shr(31).shl(31);
        Self::from_bits(self.abs().to_bits() | sign_bit)
    }

    /// Sum of the lanes in a fixed pairwise order (lane i + lane i+8, then i + i+4, i + i+2,
    /// i + i+1), the same on every level.
    #[inline(always)]
    fn reduce_add(self) -> f32 {
        let a = self.to_array();
        let h: [f32; 8] = std::array::from_fn(|i| a[i] + a[i + 8]);
        let q: [f32; 4] = std::array::from_fn(|i| h[i] + h[i + 4]);
        let p: [f32; 2] = std::array::from_fn(|i| q[i] + q[i + 2]);
        p[0] + p[1]
    }
}

/// A lane mask.
pub(crate) trait Mask:
    Copy + BitAnd<Output = Self> + BitOr<Output = Self> + Not<Output = Self> + Send + Sync + 'static
{
    /// The float vector the mask selects between.
    type F;
    /// `a` in the set lanes, `b` in the others.
    fn select(self, a: Self::F, b: Self::F) -> Self::F;
    /// Bit i set when lane i is.
    fn bitmask(self) -> u32;
    /// Some lane set.
    #[inline(always)]
    fn any(self) -> bool {
        self.bitmask() != 0
    }
    /// Every lane set.
    #[inline(always)]
    fn all(self) -> bool {
        self.bitmask() == 0xFFFF
    }
}

/// 16 i32 lanes, wrapping arithmetic.
pub(crate) trait I32s:
    Copy + Add<Output = Self> + Sub<Output = Self> + BitAnd<Output = Self> + BitOr<Output = Self> + Send + Sync + 'static
{
    /// The float vector of the same width.
    type F;
    /// The mask type.
    type M;
    /// Wrapping lane-wise product (low 32 bits).
    fn mul_lo(self, b: Self) -> Self;
    /// Shift left by `n` (< 32).
    fn shl(self, n: u32) -> Self;
    /// Arithmetic shift right by `n` (< 32).
    fn shr(self, n: u32) -> Self;
    /// Lane-wise maximum.
    fn max(self, b: Self) -> Self;
    /// Lane-wise minimum.
    fn min(self, b: Self) -> Self;
    /// Lanes equal.
    fn simd_eq(self, b: Self) -> Self::M;
    /// Converts to f32 (rounding to nearest).
    fn to_f32(self) -> Self::F;
    /// The lanes as an array.
    fn to_array(self) -> [i32; LANES];
}
