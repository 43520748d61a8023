//! The AVX2 level (with FMA and F16C): a vector is two `__m256`, lanes 0–7 and 8–15;
//! masks are vectors of all-ones / all-zeros lanes.

use std::arch::x86_64::*;
use std::ops::{Add, AddAssign, BitAnd, BitOr, Div, Mul, Neg, Not, Sub};

use half::f16;

use super::vector::{F32s, I32s, Mask, Simd};
use super::{Kernel, LANES};

/// Runs an intrinsic of this level. Every use sits in a method of a vector or token of this
/// file, and such a value exists only after `Avx2::try_new` (or `new_unchecked`, whose
/// callers checked the same) found the features on this CPU.
macro_rules! avx2 {
    ($e:expr) => {{
        // SAFETY: the features are present (see the macro's doc); the intrinsics used take
        // registers only, or pointers derived from references of the right size.
        #[allow(unused_unsafe)]
        unsafe {
            $e
        }
    }};
}

/// The token: AVX2, FMA and F16C are available.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Avx2(());

impl Avx2 {
    /// The token, if this CPU (and OS) runs AVX2 with FMA and F16C.
    pub(crate) fn try_new() -> Option<Self> {
        let ok =
            is_x86_feature_detected!("avx2") && is_x86_feature_detected!("fma") && is_x86_feature_detected!("f16c");
        ok.then_some(Avx2(()))
    }

    /// The token without checking.
    ///
    /// # Safety
    /// The CPU must support what [`Avx2::try_new`] checks.
    #[inline(always)]
    pub(crate) unsafe fn new_unchecked() -> Self {
        Avx2(())
    }
}

/// 16 f32 in two ymm registers.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Y(__m256, __m256);

/// 16 i32 in two ymm registers.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Yi(__m256i, __m256i);

/// A mask: lanes of all ones (set) or all zeros, as floats.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Ym(__m256, __m256);

#[target_feature(enable = "avx2,fma,f16c")]
fn run_avx2<K: Kernel>(s: Avx2, kernel: K) -> K::Output {
    kernel.run(s)
}

impl Simd for Avx2 {
    type F = Y;
    type M = Ym;
    type I = Yi;

    #[inline(always)]
    fn vectorize<K: Kernel>(self, kernel: K) -> K::Output {
        // SAFETY: `self` exists, so the CPU has the features `run_avx2` is compiled for.
        unsafe { run_avx2(self, kernel) }
    }
    #[inline(always)]
    fn splat(self, x: f32) -> Y {
        avx2!(Y(_mm256_set1_ps(x), _mm256_set1_ps(x)))
    }
    #[inline(always)]
    fn load(self, a: &[f32; LANES]) -> Y {
        avx2!(Y(_mm256_loadu_ps(a.as_ptr()), _mm256_loadu_ps(a.as_ptr().add(8))))
    }
    #[inline(always)]
    fn load_f16(self, a: &[f16; LANES]) -> Y {
        let p: *const __m128i = a.as_ptr().cast();
        avx2!(Y(_mm256_cvtph_ps(_mm_loadu_si128(p)), _mm256_cvtph_ps(_mm_loadu_si128(p.add(1)))))
    }
    #[inline(always)]
    fn load_i(self, a: &[i32; LANES]) -> Yi {
        let p: *const __m256i = a.as_ptr().cast();
        avx2!(Yi(_mm256_loadu_si256(p), _mm256_loadu_si256(p.add(1))))
    }
    /// Four 8 × 8 transposes of the halves (unpack, shuffle, then swap 128-bit lanes: 24
    /// instructions each); output row r < 8 takes the low halves' columns, r ≥ 8 the high.
    #[inline(always)]
    fn transpose16(self, m: [Y; LANES]) -> [Y; LANES] {
        let (a, b) = (transpose8(halves(&m, false, 0)), transpose8(halves(&m, false, 8)));
        let (c, d) = (transpose8(halves(&m, true, 0)), transpose8(halves(&m, true, 8)));
        let mut out = m;
        for i in 0..8 {
            out[i] = Y(a[i], b[i]);
            out[i + 8] = Y(c[i], d[i]);
        }
        out
    }
    #[inline(always)]
    fn splat_i(self, x: i32) -> Yi {
        avx2!(Yi(_mm256_set1_epi32(x), _mm256_set1_epi32(x)))
    }
}

/// The low (or high) halves of rows `first .. first + 8`.
#[inline(always)]
fn halves(m: &[Y; LANES], high: bool, first: usize) -> [__m256; 8] {
    let mut r = [m[first].0; 8];
    for (i, x) in r.iter_mut().enumerate() {
        let v = m[first + i];
        *x = if high { v.1 } else { v.0 };
    }
    r
}

/// The transpose of an 8 × 8 block of f32 held as 8 row registers.
#[inline(always)]
fn transpose8(r: [__m256; 8]) -> [__m256; 8] {
    avx2!({
        let t0 = _mm256_unpacklo_ps(r[0], r[1]);
        let t1 = _mm256_unpackhi_ps(r[0], r[1]);
        let t2 = _mm256_unpacklo_ps(r[2], r[3]);
        let t3 = _mm256_unpackhi_ps(r[2], r[3]);
        let t4 = _mm256_unpacklo_ps(r[4], r[5]);
        let t5 = _mm256_unpackhi_ps(r[4], r[5]);
        let t6 = _mm256_unpacklo_ps(r[6], r[7]);
        let t7 = _mm256_unpackhi_ps(r[6], r[7]);
        let s0 = _mm256_shuffle_ps::<0x44>(t0, t2);
        let s1 = _mm256_shuffle_ps::<0xEE>(t0, t2);
        let s2 = _mm256_shuffle_ps::<0x44>(t1, t3);
        let s3 = _mm256_shuffle_ps::<0xEE>(t1, t3);
        let s4 = _mm256_shuffle_ps::<0x44>(t4, t6);
        let s5 = _mm256_shuffle_ps::<0xEE>(t4, t6);
        let s6 = _mm256_shuffle_ps::<0x44>(t5, t7);
        let s7 = _mm256_shuffle_ps::<0xEE>(t5, t7);
        [
            _mm256_permute2f128_ps::<0x20>(s0, s4),
            _mm256_permute2f128_ps::<0x20>(s1, s5),
            _mm256_permute2f128_ps::<0x20>(s2, s6),
            _mm256_permute2f128_ps::<0x20>(s3, s7),
            _mm256_permute2f128_ps::<0x31>(s0, s4),
            _mm256_permute2f128_ps::<0x31>(s1, s5),
            _mm256_permute2f128_ps::<0x31>(s2, s6),
            _mm256_permute2f128_ps::<0x31>(s3, s7),
        ]
    })
}

macro_rules! binop {
    ($T:ident, $Trait:ident, $f:ident, $intr:ident) => {
        impl $Trait for $T {
            type Output = $T;
            #[inline(always)]
            fn $f(self, b: $T) -> $T {
                avx2!($T($intr(self.0, b.0), $intr(self.1, b.1)))
            }
        }
    };
}
binop!(Y, Add, add, _mm256_add_ps);
binop!(Y, Sub, sub, _mm256_sub_ps);
binop!(Y, Mul, mul, _mm256_mul_ps);
binop!(Y, Div, div, _mm256_div_ps);
binop!(Yi, Add, add, _mm256_add_epi32);
binop!(Yi, Sub, sub, _mm256_sub_epi32);
binop!(Yi, BitAnd, bitand, _mm256_and_si256);
binop!(Yi, BitOr, bitor, _mm256_or_si256);
binop!(Ym, BitAnd, bitand, _mm256_and_ps);
binop!(Ym, BitOr, bitor, _mm256_or_ps);

/// Both halves through one intrinsic with extra arguments.
macro_rules! halves {
    ($T:ident, $s:expr, |$h:ident| $e:expr) => {{
        let $h = $s.0;
        let lo = avx2!($e);
        let $h = $s.1;
        let hi = avx2!($e);
        $T(lo, hi)
    }};
}

impl AddAssign for Y {
    #[inline(always)]
    fn add_assign(&mut self, b: Y) {
        *self = *self + b;
    }
}

impl Neg for Y {
    type Output = Y;
    #[inline(always)]
    fn neg(self) -> Y {
        halves!(Y, self, |h| _mm256_xor_ps(h, _mm256_set1_ps(-0.0)))
    }
}

impl Not for Ym {
    type Output = Ym;
    #[inline(always)]
    fn not(self) -> Ym {
        halves!(Ym, self, |h| _mm256_xor_ps(h, _mm256_castsi256_ps(_mm256_set1_epi32(-1))))
    }
}

macro_rules! compare {
    ($f:ident, $pred:ident) => {
        #[inline(always)]
        fn $f(self, b: Y) -> Ym {
            avx2!(Ym(_mm256_cmp_ps::<$pred>(self.0, b.0), _mm256_cmp_ps::<$pred>(self.1, b.1)))
        }
    };
}

impl F32s for Y {
    type M = Ym;
    type I = Yi;

    #[inline(always)]
    fn to_array(self) -> [f32; LANES] {
        let mut out = [0.0f32; LANES];
        self.store(&mut out);
        out
    }
    #[inline(always)]
    fn store(self, dst: &mut [f32; LANES]) {
        let p = dst.as_mut_ptr();
        avx2!({
            _mm256_storeu_ps(p, self.0);
            _mm256_storeu_ps(p.add(8), self.1);
        })
    }
    #[inline(always)]
    fn store_f16(self, dst: &mut [f16; LANES]) {
        let p: *mut __m128i = dst.as_mut_ptr().cast();
        avx2!({
            _mm_storeu_si128(p, _mm256_cvtps_ph::<_MM_FROUND_TO_NEAREST_INT>(self.0));
            _mm_storeu_si128(p.add(1), _mm256_cvtps_ph::<_MM_FROUND_TO_NEAREST_INT>(self.1));
        })
    }
    #[inline(always)]
    fn mul_add(self, b: Y, c: Y) -> Y {
        avx2!(Y(_mm256_fmadd_ps(self.0, b.0, c.0), _mm256_fmadd_ps(self.1, b.1, c.1)))
    }
    #[inline(always)]
    fn mul_neg_add(self, b: Y, c: Y) -> Y {
        avx2!(Y(_mm256_fnmadd_ps(self.0, b.0, c.0), _mm256_fnmadd_ps(self.1, b.1, c.1)))
    }
    #[inline(always)]
    fn abs(self) -> Y {
        halves!(Y, self, |h| _mm256_andnot_ps(_mm256_set1_ps(-0.0), h))
    }
    #[inline(always)]
    fn sqrt(self) -> Y {
        halves!(Y, self, |h| _mm256_sqrt_ps(h))
    }
    #[inline(always)]
    fn round(self) -> Y {
        halves!(Y, self, |h| _mm256_round_ps::<{ _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC }>(h))
    }
    #[inline(always)]
    fn fast_max(self, b: Y) -> Y {
        avx2!(Y(_mm256_max_ps(self.0, b.0), _mm256_max_ps(self.1, b.1)))
    }
    #[inline(always)]
    fn fast_min(self, b: Y) -> Y {
        avx2!(Y(_mm256_min_ps(self.0, b.0), _mm256_min_ps(self.1, b.1)))
    }
    compare!(simd_gt, _CMP_GT_OQ);
    compare!(simd_ge, _CMP_GE_OQ);
    compare!(simd_lt, _CMP_LT_OQ);
    compare!(simd_le, _CMP_LE_OQ);
    compare!(simd_eq, _CMP_EQ_OQ);
    compare!(simd_ne, _CMP_NEQ_UQ);
    #[inline(always)]
    fn to_bits(self) -> Yi {
        halves!(Yi, self, |h| _mm256_castps_si256(h))
    }
    #[inline(always)]
    fn from_bits(bits: Yi) -> Y {
        halves!(Y, bits, |h| _mm256_castsi256_ps(h))
    }
    #[inline(always)]
    fn round_int(self) -> Yi {
        halves!(Yi, self, |h| _mm256_cvtps_epi32(h))
    }
    #[inline(always)]
    fn trunc_int(self) -> Yi {
        halves!(Yi, self, |h| _mm256_cvttps_epi32(h))
    }
}

impl Mask for Ym {
    type F = Y;
    #[inline(always)]
    fn select(self, a: Y, b: Y) -> Y {
        // The blend takes its second operand where the mask's sign bit is set.
        avx2!(Y(_mm256_blendv_ps(b.0, a.0, self.0), _mm256_blendv_ps(b.1, a.1, self.1)))
    }
    #[inline(always)]
    fn bitmask(self) -> u32 {
        let (lo, hi) = avx2!((_mm256_movemask_ps(self.0), _mm256_movemask_ps(self.1)));
        (lo as u32) | ((hi as u32) << 8)
    }
}

impl I32s for Yi {
    type F = Y;
    type M = Ym;
    #[inline(always)]
    fn mul_lo(self, b: Yi) -> Yi {
        avx2!(Yi(_mm256_mullo_epi32(self.0, b.0), _mm256_mullo_epi32(self.1, b.1)))
    }
    #[inline(always)]
    fn shl(self, n: u32) -> Yi {
        halves!(Yi, self, |h| _mm256_sll_epi32(h, _mm_cvtsi32_si128(n as i32)))
    }
    #[inline(always)]
    fn shr(self, n: u32) -> Yi {
        halves!(Yi, self, |h| _mm256_sra_epi32(h, _mm_cvtsi32_si128(n as i32)))
    }
    #[inline(always)]
    fn max(self, b: Yi) -> Yi {
        avx2!(Yi(_mm256_max_epi32(self.0, b.0), _mm256_max_epi32(self.1, b.1)))
    }
    #[inline(always)]
    fn min(self, b: Yi) -> Yi {
        avx2!(Yi(_mm256_min_epi32(self.0, b.0), _mm256_min_epi32(self.1, b.1)))
    }
    #[inline(always)]
    fn simd_eq(self, b: Yi) -> Ym {
        avx2!(Ym(
            _mm256_castsi256_ps(_mm256_cmpeq_epi32(self.0, b.0)),
            _mm256_castsi256_ps(_mm256_cmpeq_epi32(self.1, b.1))
        ))
    }
    #[inline(always)]
    fn to_f32(self) -> Y {
        halves!(Y, self, |h| _mm256_cvtepi32_ps(h))
    }
    #[inline(always)]
    fn to_array(self) -> [i32; LANES] {
        let mut out = [0i32; LANES];
        let p: *mut __m256i = out.as_mut_ptr().cast();
        avx2!({
            _mm256_storeu_si256(p, self.0);
            _mm256_storeu_si256(p.add(1), self.1);
        });
        out
    }
}
