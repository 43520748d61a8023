//! Float formatting decisions: decoding f32/f16 elements, choosing positional or scientific
//! notation (with the numpy 2.3+ cut-offs), sizing and padding the columns of an array, and
//! rendering one value from the digits Dragon4 produces.

use half::f16;

use super::PRECISION;
use super::digits::{Cutoff, Finite, dragon4};

/// numpy's `str(np.float32(x))` / `str(np.float16(x))`.
pub(super) fn float_scalar_str(x: &Decoded, kind: FloatKind) -> String {
    let finite = match x.class {
        Class::Nan => return "nan".to_string(),
        Class::Inf => return if x.negative { "-inf" } else { "inf" }.to_string(),
        Class::Finite(f) => f,
    };
    // Same cut-offs as arrays use for the largest value (numpy <= 2.2 used 1e16 here).
    let abs = x.value.abs();
    let positional = x.value == 0.0 || (abs < kind.exp_cutoff() && abs >= 1e-4);
    if positional {
        format_positional(x.negative, finite, -1, -1, Cutoff::TotalLength, Trim::LeaveOneZero, -1, -1)
    } else {
        format_scientific(x.negative, finite, -1, -1, Trim::DptZeros, -1, -1)
    }
}

// ---------------------------------------------------------------------------------------------
// Float classification.
// ---------------------------------------------------------------------------------------------

/// The float dtypes whose printing rules differ.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum FloatKind {
    /// IEEE binary32.
    F32,
    /// IEEE binary16.
    F16,
}

impl FloatKind {
    /// Magnitude from which numpy 2.3+ switches to scientific notation, for arrays and 0-d
    /// arrays alike: `10.**min(8, finfo(dtype).precision)`, where finfo precision is 6 for
    /// float32 and 3 for float16. (numpy <= 2.2 used 1e8 for arrays and 1e16 for scalars.)
    fn exp_cutoff(self) -> f64 {
        match self {
            FloatKind::F32 => 1e6,
            FloatKind::F16 => 1e3,
        }
    }

    /// The Python literal `0.0001` as the array's dtype: numpy compares the smallest magnitude
    /// with it after casting it to that dtype (NEP 50).
    fn small_cutoff(self) -> f64 {
        match self {
            FloatKind::F32 => f64::from(1e-4_f32),
            FloatKind::F16 => f16::from_f64(1e-4).to_f64(),
        }
    }

    /// `max / min` evaluated in the dtype, as numpy's scalar division does (float16 divides in
    /// float32 and rounds back). Both inputs are values of this dtype, so the casts are exact.
    fn ratio(self, max: f64, min: f64) -> f64 {
        let q = max as f32 / min as f32;
        match self {
            FloatKind::F32 => f64::from(q),
            FloatKind::F16 => f16::from_f32(q).to_f64(),
        }
    }
}

/// What kind of value a float holds.
#[derive(Clone, Copy, Debug)]
enum Class {
    /// Not a number (its sign is never printed).
    Nan,
    /// Infinity of the sign in [`Decoded::negative`].
    Inf,
    /// An ordinary number, zero included.
    Finite(Finite),
}

/// One float element, split up for formatting.
#[derive(Clone, Copy, Debug)]
pub(super) struct Decoded {
    /// Sign bit (so `-0.0` and `-nan` count as negative).
    negative: bool,
    /// NaN, infinity or finite parts.
    class: Class,
    /// The exact value (f32 and f16 embed exactly in f64), used for magnitude comparisons.
    value: f64,
}

/// Splits an IEEE float given its fields; `mant_bits` and `exp_bits` describe the format.
fn decode_bits(bits: u32, mant_bits: u32, exp_bits: u32, value: f64) -> Decoded {
    let mant_mask = (1u32 << mant_bits) - 1;
    let exp_mask = (1u32 << exp_bits) - 1;
    let frac = bits & mant_mask;
    let biased = (bits >> mant_bits) & exp_mask;
    let negative = (bits >> (mant_bits + exp_bits)) & 1 == 1;
    // Exponent of the lowest mantissa bit for biased exponent 1 (also used by subnormals).
    let bias = i32::try_from(exp_mask >> 1).unwrap_or(0);
    let min_exp = 1 - bias - i32::try_from(mant_bits).unwrap_or(0);
    let class = if biased == exp_mask {
        if frac == 0 { Class::Inf } else { Class::Nan }
    } else if biased != 0 {
        Class::Finite(Finite {
            mantissa: (1 << mant_bits) | frac,
            exponent: min_exp + i32::try_from(biased).unwrap_or(1) - 1,
            mantissa_bit: mant_bits,
            unequal_margins: biased != 1 && frac == 0,
        })
    } else {
        Class::Finite(Finite {
            mantissa: frac,
            exponent: min_exp,
            mantissa_bit: frac.checked_ilog2().unwrap_or(0),
            unequal_margins: false,
        })
    };
    Decoded { negative, class, value }
}

/// Decodes an `f32` element.
pub(super) fn decode_f32(x: f32) -> Decoded {
    decode_bits(x.to_bits(), 23, 8, f64::from(x))
}

/// Decodes an `f16` element.
pub(super) fn decode_f16(x: f16) -> Decoded {
    decode_bits(u32::from(x.to_bits()), 10, 5, x.to_f64())
}

// ---------------------------------------------------------------------------------------------
// Array float format (numpy's `FloatingFormat` in 'maxprec' mode).
// ---------------------------------------------------------------------------------------------

/// Formatting parameters shared by every element of one float array.
#[derive(Debug)]
pub(super) struct FloatFormat {
    /// Scientific rather than positional notation.
    exp_format: bool,
    /// Maximum fractional digits.
    precision: i32,
    /// Minimum fractional digits (-1: none).
    min_digits: i32,
    /// Trailing zero handling.
    trim: Trim,
    /// Characters left of the decimal point, sign included.
    pad_left: i32,
    /// Characters right of the decimal point (in scientific mode: mantissa digits + exponent).
    pad_right: i32,
    /// Minimum exponent digits in scientific mode (-1: numpy's default of 2).
    exp_size: i32,
}

impl FloatFormat {
    /// Sizes the columns from the elements that will be shown, as numpy's `fillFormat` does.
    pub(super) fn new(data: impl Iterator<Item = Decoded>, kind: FloatKind) -> FloatFormat {
        let data: Vec<Decoded> = data.collect();
        let finite: Vec<(bool, Finite, f64)> = data
            .iter()
            .filter_map(|d| match d.class {
                Class::Finite(f) => Some((d.negative, f, d.value)),
                _ => None,
            })
            .collect();

        // Notation is chosen from the non-zero finite magnitudes only.
        let mut exp_format = false;
        let nonzero = finite.iter().map(|t| t.2.abs()).filter(|a| *a != 0.0);
        let extremes = nonzero
            .fold(None, |acc: Option<(f64, f64)>, a| Some(acc.map_or((a, a), |(lo, hi)| (lo.min(a), hi.max(a)))));
        if let Some((min, max)) = extremes {
            exp_format = max >= kind.exp_cutoff() || min < kind.small_cutoff() || kind.ratio(max, min) > 1000.0;
        }

        let mut fmt = FloatFormat {
            exp_format,
            precision: PRECISION,
            min_digits: -1,
            trim: Trim::Zeros,
            pad_left: 0,
            pad_right: 0,
            exp_size: -1,
        };
        if finite.is_empty() {
            // Only nan/inf: widths come from those strings below.
        } else if exp_format {
            // First pass with unique digits (capped at `precision`) to learn the widths; every
            // element is then printed with the longest fraction found.
            let (mut int_len, mut frac_len, mut exp_len) = (0, 0, 0);
            for &(neg, f, _) in &finite {
                let s = format_scientific(neg, f, PRECISION, -1, Trim::Zeros, -1, -1);
                let (mant, exp) = s.split_once('e').unwrap_or((&s, ""));
                let (int, frac) = mant.split_once('.').unwrap_or((mant, ""));
                int_len = int_len.max(int.len());
                frac_len = frac_len.max(frac.len());
                exp_len = exp_len.max(exp.len());
            }
            fmt.exp_size = to_i32(exp_len) - 1;
            fmt.trim = Trim::Keep;
            fmt.precision = to_i32(frac_len);
            fmt.min_digits = fmt.precision;
            fmt.pad_left = to_i32(int_len);
            fmt.pad_right = fmt.exp_size + 2 + fmt.precision;
        } else {
            let (mut int_len, mut frac_len) = (0, 0);
            for &(neg, f, _) in &finite {
                let s = format_positional(neg, f, PRECISION, -1, Cutoff::FractionLength, Trim::Zeros, -1, -1);
                let (int, frac) = s.split_once('.').unwrap_or((&s, ""));
                int_len = int_len.max(int.len());
                frac_len = frac_len.max(frac.len());
            }
            fmt.pad_left = to_i32(int_len);
            fmt.pad_right = to_i32(frac_len);
            fmt.min_digits = 0;
        }

        // nan/inf are right-aligned in the full width, which they may widen.
        if finite.len() != data.len() {
            let neg_inf = data.iter().any(|d| matches!(d.class, Class::Inf) && d.negative);
            let offset = fmt.pad_right + 1;
            fmt.pad_left = fmt.pad_left.max(3 - offset).max(3 + i32::from(neg_inf) - offset);
        }
        fmt
    }

    /// Formats one element to the common width.
    pub(super) fn format(&self, x: &Decoded) -> String {
        let f = match x.class {
            Class::Finite(f) => f,
            Class::Nan | Class::Inf => {
                let word = match x.class {
                    Class::Nan => "nan",
                    _ if x.negative => "-inf",
                    _ => "inf",
                };
                let width = usize::try_from(self.pad_left + self.pad_right + 1).unwrap_or(0);
                return format!("{word:>width$}");
            }
        };
        if self.exp_format {
            format_scientific(x.negative, f, self.precision, self.min_digits, self.trim, self.pad_left, self.exp_size)
        } else {
            format_positional(
                x.negative,
                f,
                self.precision,
                self.min_digits,
                Cutoff::FractionLength,
                self.trim,
                self.pad_left,
                self.pad_right,
            )
        }
    }
}

/// Converts a small length to `i32`, saturating (lengths here are a few dozen at most).
fn to_i32(n: usize) -> i32 {
    i32::try_from(n).unwrap_or(i32::MAX)
}

// ---------------------------------------------------------------------------------------------
// Positional and scientific rendering of one finite value (numpy's FormatPositional and
// FormatScientific, always in unique-digit mode).
// ---------------------------------------------------------------------------------------------

/// How trailing zeros and the decimal point are treated (numpy's `trim` argument).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Trim {
    /// `'k'`: keep trailing zeros (and pad to the minimum digit count).
    Keep,
    /// `'.'`: drop trailing zeros, keep the point (`1.`).
    Zeros,
    /// `'0'`: drop trailing zeros but keep one after the point (`1.0`).
    LeaveOneZero,
    /// `'-'`: drop trailing zeros and a bare point (`1`).
    DptZeros,
}

/// Positional notation `ddd.ddd`. `precision` caps and `min_digits` floors the digit count
/// (-1: no limit); `pad_left`/`pad_right` are the character counts on either side of the point
/// (-1: no padding).
#[allow(clippy::too_many_arguments)] // mirrors numpy's option set; a struct would only rename them
fn format_positional(
    negative: bool,
    f: Finite,
    precision: i32,
    min_digits: i32,
    cutoff: Cutoff,
    trim: Trim,
    pad_left: i32,
    pad_right: i32,
) -> String {
    let (digits, print_exp) = dragon4(f, cutoff, precision, min_digits);
    let n = to_i32(digits.len());
    let mut s = String::with_capacity(digits.len() + 8);
    let whole_digits;
    let mut frac_digits;
    if print_exp >= 0 {
        whole_digits = print_exp + 1;
        if n <= whole_digits {
            push_digits(&mut s, &digits);
            push_repeat(&mut s, '0', whole_digits - n);
            frac_digits = 0;
        } else {
            let split = usize::try_from(whole_digits).unwrap_or(0);
            push_digits(&mut s, &digits[..split]);
            s.push('.');
            push_digits(&mut s, &digits[split..]);
            frac_digits = n - whole_digits;
        }
    } else {
        let zeros = -(print_exp + 1);
        s.push_str("0.");
        push_repeat(&mut s, '0', zeros);
        push_digits(&mut s, &digits);
        whole_digits = 1;
        frac_digits = zeros + n;
    }

    if trim != Trim::DptZeros && frac_digits == 0 {
        s.push('.');
    }
    let wanted_frac = match cutoff {
        Cutoff::TotalLength => min_digits - whole_digits,
        Cutoff::FractionLength => min_digits.max(0),
    };
    match trim {
        Trim::LeaveOneZero if frac_digits == 0 => {
            s.push('0');
            frac_digits = 1;
        }
        Trim::Keep if wanted_frac > frac_digits => {
            push_repeat(&mut s, '0', wanted_frac - frac_digits);
            frac_digits = wanted_frac;
        }
        _ => {}
    }
    // Rounding at the cut-off can leave zeros that the trim mode does not want.
    if trim != Trim::Keep && frac_digits > 0 {
        while s.ends_with('0') {
            s.pop();
            frac_digits -= 1;
        }
        if s.ends_with('.') {
            match trim {
                Trim::LeaveOneZero => {
                    s.push('0');
                    frac_digits += 1;
                }
                Trim::DptZeros => {
                    s.pop();
                }
                _ => {}
            }
        }
    }

    if pad_right >= frac_digits {
        if trim == Trim::DptZeros && frac_digits == 0 {
            s.push(' ');
        }
        push_repeat(&mut s, ' ', pad_right - frac_digits);
    }
    let used_left = whole_digits + i32::from(negative);
    let mut out = String::with_capacity(s.len() + 4);
    push_repeat(&mut out, ' ', pad_left - used_left);
    if negative {
        out.push('-');
    }
    out.push_str(&s);
    out
}

/// Scientific notation `d.ddde+XX`. `precision`/`min_digits` count digits after the point
/// (-1: no limit), `pad_left` is the width left of the point and `exp_digits` the minimum
/// exponent digits (-1: two).
fn format_scientific(
    negative: bool,
    f: Finite,
    precision: i32,
    min_digits: i32,
    trim: Trim,
    pad_left: i32,
    exp_digits: i32,
) -> String {
    let mut s = String::new();
    push_repeat(&mut s, ' ', pad_left - 1 - i32::from(negative));
    if negative {
        s.push('-');
    }
    // Digit limits here count the leading digit too.
    let (digits, print_exp) = dragon4(
        f,
        Cutoff::TotalLength,
        if precision < 0 { -1 } else { precision + 1 },
        if min_digits < 0 { -1 } else { min_digits + 1 },
    );
    let (first, rest) = digits.split_first().unwrap_or((&0, &[]));
    s.push(char::from(b'0' + first));
    let mut frac_digits = to_i32(rest.len());
    if !rest.is_empty() {
        s.push('.');
        push_digits(&mut s, rest);
    }
    if trim != Trim::DptZeros && frac_digits == 0 {
        s.push('.');
    }
    match trim {
        Trim::LeaveOneZero if frac_digits == 0 => {
            s.push('0');
            frac_digits = 1;
        }
        Trim::Keep if min_digits.max(0) > frac_digits => {
            push_repeat(&mut s, '0', min_digits - frac_digits);
        }
        _ => {}
    }
    if trim != Trim::Keep && frac_digits > 0 {
        while s.ends_with('0') {
            s.pop();
        }
        // Unlike the positional form, a bare point is kept even in DptZeros mode.
        if trim == Trim::LeaveOneZero && s.ends_with('.') {
            s.push('0');
        }
    }

    s.push('e');
    s.push(if print_exp < 0 { '-' } else { '+' });
    let exp_digits = usize::try_from(exp_digits.min(5)).unwrap_or(2);
    let magnitude = print_exp.unsigned_abs();
    s.push_str(&format!("{magnitude:0exp_digits$}"));
    s
}

/// Appends decimal digits (values 0-9) as characters.
fn push_digits(s: &mut String, digits: &[u8]) {
    s.extend(digits.iter().map(|&d| char::from(b'0' + d.min(9))));
}

/// Appends `count` copies of `c` (nothing if `count` is not positive).
fn push_repeat(s: &mut String, c: char, count: i32) {
    for _ in 0..count.max(0) {
        s.push(c);
    }
}
