//! Exact shortest-digit generation: a port of the semantics of numpy's Dragon4 on a minimal
//! big integer, including rounding at a digit cut-off and IEEE unbiased tie-breaking.

use std::cmp::Ordering;

/// Upper bound on digits Dragon4 may produce; numpy's scratch buffer plays the same role. Unique
/// digit generation always stops far earlier for f32/f16, this only bounds the loop.
const MAX_DIGITS: i32 = 16_000;

/// A finite binary float as `mantissa * 2^exponent`, in the form Dragon4 needs.
#[derive(Clone, Copy, Debug)]
pub(super) struct Finite {
    /// Integer significand (implicit bit included for normal numbers).
    pub(super) mantissa: u32,
    /// Power of two applied to `mantissa`.
    pub(super) exponent: i32,
    /// Index of the highest set bit of `mantissa`.
    pub(super) mantissa_bit: u32,
    /// True at a power of two (not subnormal), where the gap below is half the gap above.
    pub(super) unequal_margins: bool,
}

/// Whether digit limits count all significant digits or only those after the point.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum Cutoff {
    /// Limits count significant digits.
    TotalLength,
    /// Limits count digits after the decimal point.
    FractionLength,
}

// ---------------------------------------------------------------------------------------------
// Dragon4 digit generation (Steele & White / Burger & Dybvig with numpy's conventions).
// ---------------------------------------------------------------------------------------------

/// Generates the decimal digits of `f` in unique mode: the fewest digits that identify the
/// value among its neighbours (boundaries included for even mantissas), but no digit at or
/// past `cutoff_max` and, where `cutoff_min` asks for more, further exact digits.
/// Returns the digits and the decimal exponent of the first one.
pub(super) fn dragon4(f: Finite, cutoff: Cutoff, cutoff_max: i32, cutoff_min: i32) -> (Vec<u8>, i32) {
    if f.mantissa == 0 {
        return (vec![0], 0);
    }
    let is_even = f.mantissa & 1 == 0;
    // value = value_num / scale, and the half-gaps to the neighbours are margin / scale;
    // everything is scaled by 2 (4 with unequal margins) to keep the halves integral.
    let extra = if f.unequal_margins { 2 } else { 1 };
    let mut value = Big::from_u64(u64::from(f.mantissa));
    let mut scale;
    let mut margin_low;
    if f.exponent > 0 {
        value.shl(f.exponent.unsigned_abs() + extra);
        scale = Big::from_u64(1 << extra);
        margin_low = Big::pow2(f.exponent.unsigned_abs());
    } else {
        value.shl(extra);
        scale = Big::pow2(f.exponent.unsigned_abs() + extra);
        margin_low = Big::from_u64(1);
    }
    // The upper half-gap is twice the lower one at powers of two.
    let margin_high = |low: &Big| {
        let mut high = low.clone();
        if f.unequal_margins {
            high.shl(1);
        }
        high
    };

    // Estimate of floor(log10(v)) + 1 that is exact or one too small (Burger & Dybvig); the
    // 0.69 bias is numpy's, and matters because the fraction cut-off clamps this estimate.
    let log2 = i32::try_from(f.mantissa_bit).unwrap_or(0) + f.exponent;
    let mut digit_exp = (f64::from(log2) * std::f64::consts::LOG10_2 - 0.69).ceil() as i32;
    if cutoff_max >= 0 && cutoff == Cutoff::FractionLength && digit_exp <= -cutoff_max {
        digit_exp = -cutoff_max + 1;
    }
    if digit_exp > 0 {
        scale.mul_pow10(digit_exp.unsigned_abs());
    } else if digit_exp < 0 {
        value.mul_pow10(digit_exp.unsigned_abs());
        margin_low.mul_pow10(digit_exp.unsigned_abs());
    }
    if value.cmp_big(&scale) != Ordering::Less {
        digit_exp += 1;
    } else {
        value.mul_small(10);
        margin_low.mul_small(10);
    }

    let mut max_exp = digit_exp - MAX_DIGITS;
    if cutoff_max >= 0 {
        let desired = match cutoff {
            Cutoff::TotalLength => digit_exp - cutoff_max,
            Cutoff::FractionLength => -cutoff_max,
        };
        max_exp = max_exp.max(desired);
    }
    let mut min_exp = digit_exp;
    if cutoff_min >= 0 {
        let desired = match cutoff {
            Cutoff::TotalLength => digit_exp - cutoff_min,
            Cutoff::FractionLength => -cutoff_min,
        };
        min_exp = min_exp.min(desired);
    }
    let mut out_exp = digit_exp - 1;

    let mut digits = Vec::new();
    let (low, high, digit) = loop {
        digit_exp -= 1;
        let digit = value.div_rem_digit(&scale);
        let high_value = value.add(&margin_high(&margin_low));
        // Inclusive bounds for even mantissas: round-half-even parsing maps them back.
        let low = match value.cmp_big(&margin_low) {
            Ordering::Less => true,
            Ordering::Equal => is_even,
            Ordering::Greater => false,
        };
        let high = match high_value.cmp_big(&scale) {
            Ordering::Greater => true,
            Ordering::Equal => is_even,
            Ordering::Less => false,
        };
        if ((low || high) && digit_exp <= min_exp) || digit_exp <= max_exp {
            break (low, high, digit);
        }
        digits.push(digit);
        value.mul_small(10);
        margin_low.mul_small(10);
    };

    // Round the last digit: towards whichever neighbour is still distinguishable, else to
    // nearest with ties to even.
    let round_down = if low == high {
        value.shl(1);
        match value.cmp_big(&scale) {
            Ordering::Less => true,
            Ordering::Equal => digit & 1 == 0,
            Ordering::Greater => false,
        }
    } else {
        low
    };
    if round_down {
        digits.push(digit);
    } else if digit < 9 {
        digits.push(digit + 1);
    } else {
        // Carry: drop trailing nines and bump the first other digit, or start over at "1".
        loop {
            match digits.pop() {
                Some(9) => {}
                Some(d) => {
                    digits.push(d + 1);
                    break;
                }
                None => {
                    digits.push(1);
                    out_exp += 1;
                    break;
                }
            }
        }
    }
    (digits, out_exp)
}

/// Minimal unsigned big integer (little-endian 32-bit limbs, no trailing zero limbs), enough
/// for exact Dragon4 arithmetic on f32 and f16 values.
#[derive(Clone, Debug)]
struct Big(Vec<u32>);

impl Big {
    /// Builds from a machine integer.
    fn from_u64(v: u64) -> Big {
        // Splitting into low and high halves; truncation is intended.
        let mut b = Big(vec![v as u32, (v >> 32) as u32]);
        b.normalize();
        b
    }

    /// `2^n`.
    fn pow2(n: u32) -> Big {
        let mut b = Big::from_u64(1);
        b.shl(n);
        b
    }

    /// Drops high zero limbs so comparisons can start from the length.
    fn normalize(&mut self) {
        while self.0.last() == Some(&0) {
            self.0.pop();
        }
    }

    /// `self <<= n`.
    fn shl(&mut self, n: u32) {
        if self.0.is_empty() {
            return;
        }
        let bits = n % 32;
        if bits != 0 {
            let mut carry = 0u32;
            for limb in &mut self.0 {
                let next = *limb >> (32 - bits);
                *limb = (*limb << bits) | carry;
                carry = next;
            }
            if carry != 0 {
                self.0.push(carry);
            }
        }
        let words = (n / 32) as usize;
        if words > 0 {
            self.0.splice(0..0, std::iter::repeat_n(0, words));
        }
    }

    /// `self *= m`.
    fn mul_small(&mut self, m: u32) {
        let mut carry = 0u64;
        for limb in &mut self.0 {
            let p = u64::from(*limb) * u64::from(m) + carry;
            *limb = p as u32; // low half; the high half carries
            carry = p >> 32;
        }
        if carry != 0 {
            self.0.push(carry as u32);
        }
        self.normalize();
    }

    /// `self *= 10^n`.
    fn mul_pow10(&mut self, mut n: u32) {
        while n >= 9 {
            self.mul_small(1_000_000_000);
            n -= 9;
        }
        if n > 0 {
            self.mul_small(10u32.pow(n));
        }
    }

    /// `self + other`.
    fn add(&self, other: &Big) -> Big {
        let (long, short) = if self.0.len() >= other.0.len() { (&self.0, &other.0) } else { (&other.0, &self.0) };
        let mut out = Vec::with_capacity(long.len() + 1);
        let mut carry = 0u64;
        for (k, &a) in long.iter().enumerate() {
            let sum = u64::from(a) + u64::from(short.get(k).copied().unwrap_or(0)) + carry;
            out.push(sum as u32); // low half; the high half carries
            carry = sum >> 32;
        }
        if carry != 0 {
            out.push(carry as u32);
        }
        Big(out)
    }

    /// `self -= other`; callers guarantee `self >= other`.
    fn sub_assign(&mut self, other: &Big) {
        let mut borrow = 0i64;
        for (k, limb) in self.0.iter_mut().enumerate() {
            let diff = i64::from(*limb) - i64::from(other.0.get(k).copied().unwrap_or(0)) - borrow;
            borrow = i64::from(diff < 0);
            *limb = diff.rem_euclid(1 << 32) as u32; // in range after rem_euclid
        }
        self.normalize();
    }

    /// Numeric comparison.
    fn cmp_big(&self, other: &Big) -> Ordering {
        self.0.len().cmp(&other.0.len()).then_with(|| self.0.iter().rev().cmp(other.0.iter().rev()))
    }

    /// Replaces `self` by `self mod scale` and returns `self / scale`, which Dragon4 keeps
    /// below 10; repeated subtraction is plenty fast for that.
    fn div_rem_digit(&mut self, scale: &Big) -> u8 {
        let mut q = 0u8;
        while q < 9 && self.cmp_big(scale) != Ordering::Less {
            self.sub_assign(scale);
            q += 1;
        }
        q
    }
}
