//! The baseline level: `wide`'s `f32x16`, compiled for whatever the build targets (SSE2 in a
//! plain x86-64 build, AVX-512 under `-C target-cpu=native` here, NEON on aarch64). It is the
//! only level on targets other than x86-64, and the fallback on x86-64 CPUs without AVX2.

use std::ops::{Add, AddAssign, BitAnd, BitOr, Div, Mul, Neg, Not, Sub};

use half::f16;
use half::slice::HalfFloatSliceExt;
use wide::{f32x16, i32x16};

use super::vector::{F32s, I32s, Mask, Simd};
use super::{Kernel, LANES};

/// The token: always available.
#[derive(Clone, Copy, Debug, Default)]
pub(crate) struct Baseline;

/// 16 f32 lanes.
#[derive(Clone, Copy, Debug)]
pub(crate) struct B(f32x16);

/// 16 i32 lanes.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Bi(i32x16);

/// A mask: lanes of all ones or all zeros (`wide`'s convention).
#[derive(Clone, Copy, Debug)]
pub(crate) struct Bm(f32x16);

impl Simd for Baseline {
    type F = B;
    type M = Bm;
    type I = Bi;

    #[inline(always)]
    fn vectorize<K: Kernel>(self, kernel: K) -> K::Output {
        kernel.run(self)
    }
    #[inline(always)]
    fn splat(self, x: f32) -> B {
        B(f32x16::splat(x))
    }
    #[inline(always)]
    fn load(self, a: &[f32; LANES]) -> B {
        B(f32x16::new(*a))
    }
    #[inline(always)]
    fn load_f16(self, a: &[f16; LANES]) -> B {
        let mut out = [0.0f32; LANES];
        a.convert_to_f32_slice(&mut out);
        B(f32x16::new(out))
    }
    #[inline(always)]
    fn load_i(self, a: &[i32; LANES]) -> Bi {
        Bi(i32x16::new(*a))
    }
    #[inline(always)]
    fn splat_i(self, x: i32) -> Bi {
        Bi(i32x16::splat(x))
    }
}

macro_rules! binop {
    ($T:ident, $Trait:ident, $f:ident) => {
        impl $Trait for $T {
            type Output = $T;
            #[inline(always)]
            fn $f(self, b: $T) -> $T {
                $T(self.0.$f(b.0))
            }
        }
    };
}
binop!(B, Add, add);
binop!(B, Sub, sub);
binop!(B, Mul, mul);
binop!(B, Div, div);
binop!(Bi, Add, add);
binop!(Bi, Sub, sub);
binop!(Bi, BitAnd, bitand);
binop!(Bi, BitOr, bitor);
binop!(Bm, BitAnd, bitand);
binop!(Bm, BitOr, bitor);

impl AddAssign for B {
    #[inline(always)]
    fn add_assign(&mut self, b: B) {
        self.0 += b.0;
    }
}

impl Neg for B {
    type Output = B;
    #[inline(always)]
    fn neg(self) -> B {
        B(-self.0)
    }
}

impl Not for Bm {
    type Output = Bm;
    #[inline(always)]
    fn not(self) -> Bm {
        Bm(!self.0)
    }
}

impl F32s for B {
    type M = Bm;
    type I = Bi;

    #[inline(always)]
    fn to_array(self) -> [f32; LANES] {
        self.0.to_array()
    }
    #[inline(always)]
    fn store_f16(self, dst: &mut [f16; LANES]) {
        dst.convert_from_f32_slice(&self.0.to_array());
    }
    #[inline(always)]
    fn mul_add(self, b: B, c: B) -> B {
        B(self.0.mul_add(b.0, c.0))
    }
    #[inline(always)]
    fn mul_neg_add(self, b: B, c: B) -> B {
        B(self.0.mul_neg_add(b.0, c.0))
    }
    #[inline(always)]
    fn abs(self) -> B {
        B(self.0.abs())
    }
    #[inline(always)]
    fn sqrt(self) -> B {
        B(self.0.sqrt())
    }
    #[inline(always)]
    fn round(self) -> B {
        B(self.0.round())
    }
    #[inline(always)]
    fn fast_max(self, b: B) -> B {
        B(self.0.fast_max(b.0))
    }
    #[inline(always)]
    fn fast_min(self, b: B) -> B {
        B(self.0.fast_min(b.0))
    }
    #[inline(always)]
    fn simd_gt(self, b: B) -> Bm {
        Bm(self.0.simd_gt(b.0))
    }
    #[inline(always)]
    fn simd_ge(self, b: B) -> Bm {
        Bm(self.0.simd_ge(b.0))
    }
    #[inline(always)]
    fn simd_lt(self, b: B) -> Bm {
        Bm(self.0.simd_lt(b.0))
    }
    #[inline(always)]
    fn simd_le(self, b: B) -> Bm {
        Bm(self.0.simd_le(b.0))
    }
    #[inline(always)]
    fn simd_eq(self, b: B) -> Bm {
        Bm(self.0.simd_eq(b.0))
    }
    #[inline(always)]
    fn simd_ne(self, b: B) -> Bm {
        Bm(self.0.simd_ne(b.0))
    }
    #[inline(always)]
    fn to_bits(self) -> Bi {
        Bi(bytemuck::cast(self.0))
    }
    #[inline(always)]
    fn from_bits(bits: Bi) -> B {
        B(bytemuck::cast(bits.0))
    }
    #[inline(always)]
    fn round_int(self) -> Bi {
        Bi(self.0.round_int())
    }
    #[inline(always)]
    fn trunc_int(self) -> Bi {
        Bi(self.0.trunc_int())
    }
}

impl Mask for Bm {
    type F = B;
    #[inline(always)]
    fn select(self, a: B, b: B) -> B {
        B(self.0.select(a.0, b.0))
    }
    #[inline(always)]
    fn bitmask(self) -> u32 {
        self.0.to_bitmask()
    }
}

impl I32s for Bi {
    type F = B;
    type M = Bm;
    #[inline(always)]
    fn mul_lo(self, b: Bi) -> Bi {
        Bi(self.0 * b.0)
    }
    #[inline(always)]
    fn shl(self, n: u32) -> Bi {
        Bi(self.0 << n)
    }
    #[inline(always)]
    fn shr(self, n: u32) -> Bi {
        Bi(self.0 >> n)
    }
    #[inline(always)]
    fn max(self, b: Bi) -> Bi {
        Bi(self.0.max(b.0))
    }
    #[inline(always)]
    fn min(self, b: Bi) -> Bi {
        Bi(self.0.min(b.0))
    }
    #[inline(always)]
    fn simd_eq(self, b: Bi) -> Bm {
        Bm(bytemuck::cast(self.0.simd_eq(b.0)))
    }
    #[inline(always)]
    fn to_f32(self) -> B {
        B(self.0.round_float())
    }
    #[inline(always)]
    fn to_array(self) -> [i32; LANES] {
        self.0.to_array()
    }
}
