//! The AVX-512 level: one `__m512` per vector, `__mmask16` masks.

use std::arch::x86_64::*;
use std::ops::{Add, AddAssign, BitAnd, BitOr, Div, Mul, Neg, Not, Sub};

use half::f16;

use super::vector::{F32s, I32s, Mask, Simd};
use super::{Kernel, LANES};

/// Runs an intrinsic of this level. Every use sits in a method of a vector or token of this
/// file, and such a value exists only after `Avx512::try_new` (or `new_unchecked`, whose
/// callers checked the same) found the features on this CPU.
macro_rules! avx512 {
    ($e:expr) => {{
        // SAFETY: the features are present (see the macro's doc); the intrinsics used take
        // registers only, or pointers derived from references of the right size.
        #[allow(unused_unsafe)]
        unsafe {
            $e
        }
    }};
}

/// The token: AVX-512 F/BW/DQ/VL, FMA and F16C are available.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Avx512(());

impl Avx512 {
    /// The token, if this CPU (and OS) runs AVX-512.
    pub(crate) fn try_new() -> Option<Self> {
        let ok = is_x86_feature_detected!("avx512f")
            && is_x86_feature_detected!("avx512bw")
            && is_x86_feature_detected!("avx512dq")
            && is_x86_feature_detected!("avx512vl")
            && is_x86_feature_detected!("avx2")
            && is_x86_feature_detected!("fma")
            && is_x86_feature_detected!("f16c");
        ok.then_some(Avx512(()))
    }

    /// The token without checking.
    ///
    /// # Safety
    /// The CPU must support what [`Avx512::try_new`] checks.
    #[inline(always)]
    pub(crate) unsafe fn new_unchecked() -> Self {
        Avx512(())
    }
}

/// 16 f32 in one zmm register.
#[derive(Clone, Copy, Debug)]
#[repr(transparent)]
pub(crate) struct Z(__m512);

/// 16 i32 in one zmm register.
#[derive(Clone, Copy, Debug)]
#[repr(transparent)]
pub(crate) struct Zi(__m512i);

/// A 16-lane mask register.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Zm(__mmask16);

#[target_feature(enable = "avx512f,avx512bw,avx512dq,avx512vl,avx2,fma,f16c")]
fn run_avx512<K: Kernel>(s: Avx512, kernel: K) -> K::Output {
    kernel.run(s)
}

impl Simd for Avx512 {
    type F = Z;
    type M = Zm;
    type I = Zi;

    #[inline(always)]
    fn vectorize<K: Kernel>(self, kernel: K) -> K::Output {
        // SAFETY: `self` exists, so the CPU has the features `run_avx512` is compiled for.
        unsafe { run_avx512(self, kernel) }
    }
    #[inline(always)]
    fn splat(self, x: f32) -> Z {
        avx512!(Z(_mm512_set1_ps(x)))
    }
    #[inline(always)]
    fn load(self, a: &[f32; LANES]) -> Z {
        avx512!(Z(_mm512_loadu_ps(a.as_ptr())))
    }
    #[inline(always)]
    fn load_f16(self, a: &[f16; LANES]) -> Z {
        avx512!(Z(_mm512_cvtph_ps(_mm256_loadu_si256(a.as_ptr().cast()))))
    }
    #[inline(always)]
    fn load_i(self, a: &[i32; LANES]) -> Zi {
        avx512!(Zi(_mm512_loadu_si512(a.as_ptr().cast())))
    }
    /// Four butterfly stages; each swaps bit `log2(B)` of the row index with the same bit of
    /// the column index, one two-source permute (`vpermt2ps`) per output row: 64 permutes.
    #[inline(always)]
    fn transpose16(self, mut m: [Z; LANES]) -> [Z; LANES] {
        #[inline(always)]
        fn stage(m: &mut [Z; LANES], bit: u32) {
            // Lane c of the low row of a pair takes (row r, col c) when the bit of c is
            // clear, else (row r | bit, col c ^ bit); the high row takes the mirror image.
            let lo: [i32; LANES] = std::array::from_fn(|c| {
                let c = c as u32;
                (if c & bit == 0 { c } else { 16 + (c ^ bit) }) as i32
            });
            let hi: [i32; LANES] = std::array::from_fn(|c| {
                let c = c as u32;
                (if c & bit == 0 { c | bit } else { 16 + c }) as i32
            });
            let (lo, hi) = avx512!((_mm512_loadu_si512(lo.as_ptr().cast()), _mm512_loadu_si512(hi.as_ptr().cast())));
            let b = bit as usize;
            for base in (0..LANES).step_by(2 * b) {
                for r in base..base + b {
                    let (x, y) = (m[r].0, m[r + b].0);
                    m[r] = avx512!(Z(_mm512_permutex2var_ps(x, lo, y)));
                    m[r + b] = avx512!(Z(_mm512_permutex2var_ps(x, hi, y)));
                }
            }
        }
        stage(&mut m, 1);
        stage(&mut m, 2);
        stage(&mut m, 4);
        stage(&mut m, 8);
        m
    }
    #[inline(always)]
    fn splat_i(self, x: i32) -> Zi {
        avx512!(Zi(_mm512_set1_epi32(x)))
    }
}

macro_rules! binop {
    ($T:ident, $Trait:ident, $f:ident, $intr:ident) => {
        impl $Trait for $T {
            type Output = $T;
            #[inline(always)]
            fn $f(self, b: $T) -> $T {
                avx512!($T($intr(self.0, b.0)))
            }
        }
    };
}
binop!(Z, Add, add, _mm512_add_ps);
binop!(Z, Sub, sub, _mm512_sub_ps);
binop!(Z, Mul, mul, _mm512_mul_ps);
binop!(Z, Div, div, _mm512_div_ps);
binop!(Zi, Add, add, _mm512_add_epi32);
binop!(Zi, Sub, sub, _mm512_sub_epi32);
binop!(Zi, BitAnd, bitand, _mm512_and_si512);
binop!(Zi, BitOr, bitor, _mm512_or_si512);

impl AddAssign for Z {
    #[inline(always)]
    fn add_assign(&mut self, b: Z) {
        *self = *self + b;
    }
}

impl Neg for Z {
    type Output = Z;
    #[inline(always)]
    fn neg(self) -> Z {
        avx512!(Z(_mm512_castsi512_ps(_mm512_xor_si512(_mm512_castps_si512(self.0), _mm512_set1_epi32(i32::MIN)))))
    }
}

impl F32s for Z {
    type M = Zm;
    type I = Zi;

    #[inline(always)]
    fn to_array(self) -> [f32; LANES] {
        let mut out = [0.0f32; LANES];
        self.store(&mut out);
        out
    }
    #[inline(always)]
    fn store(self, dst: &mut [f32; LANES]) {
        avx512!(_mm512_storeu_ps(dst.as_mut_ptr(), self.0))
    }
    #[inline(always)]
    fn store_f16(self, dst: &mut [f16; LANES]) {
        avx512!(_mm256_storeu_si256(
            dst.as_mut_ptr().cast(),
            _mm512_cvtps_ph::<{ _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC }>(self.0)
        ))
    }
    #[inline(always)]
    fn mul_add(self, b: Z, c: Z) -> Z {
        avx512!(Z(_mm512_fmadd_ps(self.0, b.0, c.0)))
    }
    #[inline(always)]
    fn mul_neg_add(self, b: Z, c: Z) -> Z {
        avx512!(Z(_mm512_fnmadd_ps(self.0, b.0, c.0)))
    }
    #[inline(always)]
    fn abs(self) -> Z {
        avx512!(Z(_mm512_abs_ps(self.0)))
    }
    #[inline(always)]
    fn sqrt(self) -> Z {
        avx512!(Z(_mm512_sqrt_ps(self.0)))
    }
    #[inline(always)]
    fn round(self) -> Z {
        avx512!(Z(_mm512_roundscale_ps::<{ _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC }>(self.0)))
    }
    #[inline(always)]
    fn fast_max(self, b: Z) -> Z {
        avx512!(Z(_mm512_max_ps(self.0, b.0)))
    }
    #[inline(always)]
    fn fast_min(self, b: Z) -> Z {
        avx512!(Z(_mm512_min_ps(self.0, b.0)))
    }
    #[inline(always)]
    fn simd_gt(self, b: Z) -> Zm {
        avx512!(Zm(_mm512_cmp_ps_mask::<_CMP_GT_OQ>(self.0, b.0)))
    }
    #[inline(always)]
    fn simd_ge(self, b: Z) -> Zm {
        avx512!(Zm(_mm512_cmp_ps_mask::<_CMP_GE_OQ>(self.0, b.0)))
    }
    #[inline(always)]
    fn simd_lt(self, b: Z) -> Zm {
        avx512!(Zm(_mm512_cmp_ps_mask::<_CMP_LT_OQ>(self.0, b.0)))
    }
    #[inline(always)]
    fn simd_le(self, b: Z) -> Zm {
        avx512!(Zm(_mm512_cmp_ps_mask::<_CMP_LE_OQ>(self.0, b.0)))
    }
    #[inline(always)]
    fn simd_eq(self, b: Z) -> Zm {
        avx512!(Zm(_mm512_cmp_ps_mask::<_CMP_EQ_OQ>(self.0, b.0)))
    }
    #[inline(always)]
    fn simd_ne(self, b: Z) -> Zm {
        avx512!(Zm(_mm512_cmp_ps_mask::<_CMP_NEQ_UQ>(self.0, b.0)))
    }
    #[inline(always)]
    fn to_bits(self) -> Zi {
        avx512!(Zi(_mm512_castps_si512(self.0)))
    }
    #[inline(always)]
    fn from_bits(bits: Zi) -> Z {
        avx512!(Z(_mm512_castsi512_ps(bits.0)))
    }
    #[inline(always)]
    fn round_int(self) -> Zi {
        avx512!(Zi(_mm512_cvtps_epi32(self.0)))
    }
    #[inline(always)]
    fn trunc_int(self) -> Zi {
        avx512!(Zi(_mm512_cvttps_epi32(self.0)))
    }
}

impl BitAnd for Zm {
    type Output = Zm;
    #[inline(always)]
    fn bitand(self, b: Zm) -> Zm {
        Zm(self.0 & b.0)
    }
}

impl BitOr for Zm {
    type Output = Zm;
    #[inline(always)]
    fn bitor(self, b: Zm) -> Zm {
        Zm(self.0 | b.0)
    }
}

impl Not for Zm {
    type Output = Zm;
    #[inline(always)]
    fn not(self) -> Zm {
        Zm(!self.0)
    }
}

impl Mask for Zm {
    type F = Z;
    #[inline(always)]
    fn select(self, a: Z, b: Z) -> Z {
        // The blend takes its second operand where the mask is set.
        avx512!(Z(_mm512_mask_blend_ps(self.0, b.0, a.0)))
    }
    #[inline(always)]
    fn bitmask(self) -> u32 {
        u32::from(self.0)
    }
}

impl I32s for Zi {
    type F = Z;
    type M = Zm;
    #[inline(always)]
    fn mul_lo(self, b: Zi) -> Zi {
        avx512!(Zi(_mm512_mullo_epi32(self.0, b.0)))
    }
    #[inline(always)]
    fn shl(self, n: u32) -> Zi {
        avx512!(Zi(_mm512_sll_epi32(self.0, _mm_cvtsi32_si128(n as i32))))
    }
    #[inline(always)]
    fn shr(self, n: u32) -> Zi {
        avx512!(Zi(_mm512_sra_epi32(self.0, _mm_cvtsi32_si128(n as i32))))
    }
    #[inline(always)]
    fn max(self, b: Zi) -> Zi {
        avx512!(Zi(_mm512_max_epi32(self.0, b.0)))
    }
    #[inline(always)]
    fn min(self, b: Zi) -> Zi {
        avx512!(Zi(_mm512_min_epi32(self.0, b.0)))
    }
    #[inline(always)]
    fn simd_eq(self, b: Zi) -> Zm {
        avx512!(Zm(_mm512_cmpeq_epi32_mask(self.0, b.0)))
    }
    #[inline(always)]
    fn to_f32(self) -> Z {
        avx512!(Z(_mm512_cvtepi32_ps(self.0)))
    }
    #[inline(always)]
    fn to_array(self) -> [i32; LANES] {
        let mut out = [0i32; LANES];
        avx512!(_mm512_storeu_si512(out.as_mut_ptr().cast(), self.0));
        out
    }
}
