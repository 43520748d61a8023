//! Text rendering of tensor data exactly as numpy's `str(ndarray)` prints it.
//!
//! `tf.Tensor` prints its values through `str(tensor.numpy())`, so matching that output means
//! reproducing numpy's array printer (`numpy/_core/arrayprint.py`, numpy 2.4) with its default
//! options: `precision=8`, `floatmode='maxprec'`, `suppress=False`, `threshold=1000`,
//! `edgeitems=3`, `linewidth=75`, `sign='-'`, `legacy=False`.
//!
//! Floats are turned into digits by a port of the *semantics* of numpy's Dragon4 (exact big
//! integer arithmetic, shortest digits that round-trip in the element's own format, IEEE
//! unbiased tie-breaking), because numpy's choice of digits, rounding at the precision cut-off
//! and the digits it adds to reach a minimum count all follow that algorithm exactly.

use std::cmp::Ordering;

use half::f16;

/// Borrowed element data of one tensor, row-major.
#[derive(Clone, Copy, Debug)]
pub(crate) enum Values<'a> {
    /// `float32` elements.
    F32(&'a [f32]),
    /// `float16` elements.
    F16(&'a [half::f16]),
    /// `int32` elements.
    I32(&'a [i32]),
}

impl Values<'_> {
    /// Number of elements borrowed.
    fn len(&self) -> usize {
        match self {
            Values::F32(v) => v.len(),
            Values::F16(v) => v.len(),
            Values::I32(v) => v.len(),
        }
    }
}

/// numpy's `threshold`: arrays with more elements than this are summarised with `...`.
const THRESHOLD: usize = 1000;
/// numpy's `edgeitems`: items kept at each end of a summarised axis.
const EDGE_ITEMS: usize = 3;
/// numpy's `linewidth`.
const LINE_WIDTH: isize = 75;
/// numpy's `precision` for array elements.
const PRECISION: i32 = 8;
/// numpy cannot build arrays with more axes than this; deeper `dims` are printed flat so that
/// the recursive layout stays shallow.
const MAX_DIMS: usize = 64;
/// Upper bound on digits Dragon4 may produce; numpy's scratch buffer plays the same role. Unique
/// digit generation always stops far earlier for f32/f16, this only bounds the loop.
const MAX_DIGITS: i32 = 16_000;

/// numpy's `str(np.array(values).reshape(dims))` for the dtype (float32/float16/int32).
/// dims = [] means a 0-d array (e.g. "40.0", "27000", "nan", "-inf", "1e-05").
///
/// If `values.len()` is not the product of `dims` (or `dims` has more axes than numpy allows),
/// the values are printed as a 1-D array instead of panicking.
pub(crate) fn format_numpy(values: Values<'_>, dims: &[usize]) -> String {
    let len = values.len();
    let size = dims.iter().try_fold(1usize, |acc, &d| acc.checked_mul(d));
    let flat = [len];
    let dims: &[usize] = if size == Some(len) && dims.len() <= MAX_DIMS {
        dims
    } else {
        &flat
    };

    if dims.is_empty() {
        return scalar_str(values);
    }
    // numpy prints every empty array of rank >= 1 as "[]", whatever its shape.
    if len == 0 {
        return "[]".to_string();
    }

    // Above the threshold numpy both elides the middle of long axes and sizes the columns
    // from the elements that remain visible only.
    let summarise = len > THRESHOLD;
    let shown = shown_offsets(dims, summarise);
    let layout = Layout {
        dims,
        strides: row_major_strides(dims),
        summarise,
    };

    match values {
        Values::I32(v) => {
            let get = |i: usize| v.get(i).copied().unwrap_or_default();
            let width = int_width(shown.iter().map(|&i| get(i)));
            layout.render(&|i| format!("{:>width$}", get(i)))
        }
        Values::F32(v) => {
            let get = |i: usize| decode_f32(v.get(i).copied().unwrap_or_default());
            let fmt = FloatFormat::new(shown.iter().map(|&i| get(i)), FloatKind::F32);
            layout.render(&|i| fmt.format(&get(i)))
        }
        Values::F16(v) => {
            let get = |i: usize| decode_f16(v.get(i).copied().unwrap_or_default());
            let fmt = FloatFormat::new(shown.iter().map(|&i| get(i)), FloatKind::F16);
            layout.render(&|i| fmt.format(&get(i)))
        }
    }
}

/// `str()` of a 0-d array: numpy prints the scalar, with full round-trip precision.
fn scalar_str(values: Values<'_>) -> String {
    match values {
        Values::I32(v) => v.first().map_or_else(String::new, i32::to_string),
        Values::F32(v) => float_scalar_str(
            &decode_f32(v.first().copied().unwrap_or_default()),
            FloatKind::F32,
        ),
        Values::F16(v) => float_scalar_str(
            &decode_f16(v.first().copied().unwrap_or_default()),
            FloatKind::F16,
        ),
    }
}

/// numpy's `str(np.float32(x))` / `str(np.float16(x))`.
fn float_scalar_str(x: &Decoded, kind: FloatKind) -> String {
    let finite = match x.class {
        Class::Nan => return "nan".to_string(),
        Class::Inf => return if x.negative { "-inf" } else { "inf" }.to_string(),
        Class::Finite(f) => f,
    };
    // Same cut-offs as arrays use for the largest value (numpy <= 2.2 used 1e16 here).
    let abs = x.value.abs();
    let positional = x.value == 0.0 || (abs < kind.exp_cutoff() && abs >= 1e-4);
    if positional {
        format_positional(
            x.negative,
            finite,
            -1,
            -1,
            Cutoff::TotalLength,
            Trim::LeaveOneZero,
            -1,
            -1,
        )
    } else {
        format_scientific(x.negative, finite, -1, -1, Trim::DptZeros, -1, -1)
    }
}

/// Row-major strides (in elements) of `dims`; saturating so that absurd shapes cannot overflow.
fn row_major_strides(dims: &[usize]) -> Vec<usize> {
    let mut strides = vec![1usize; dims.len()];
    for k in (0..dims.len().saturating_sub(1)).rev() {
        strides[k] = strides[k + 1].saturating_mul(dims[k + 1]);
    }
    strides
}

/// Indices kept along an axis of length `len`: all of them, or the edges when summarising.
fn axis_items(len: usize, summarise: bool) -> Vec<usize> {
    if summarise && len > 2 * EDGE_ITEMS {
        (0..EDGE_ITEMS).chain(len - EDGE_ITEMS..len).collect()
    } else {
        (0..len).collect()
    }
}

/// Flat offsets of the elements numpy keeps for sizing columns (its `_leading_trailing`).
fn shown_offsets(dims: &[usize], summarise: bool) -> Vec<usize> {
    let strides = row_major_strides(dims);
    let mut offsets = vec![0usize];
    for (&len, &stride) in dims.iter().zip(&strides) {
        let items = axis_items(len, summarise);
        offsets = offsets
            .iter()
            .flat_map(|&base| items.iter().map(move |&i| base + i * stride))
            .collect();
    }
    offsets
}

/// Common width of integer columns: numpy's `IntegerFormat` pads to the longer of `str(max)`
/// and `str(min)`.
fn int_width(values: impl Iterator<Item = i32>) -> usize {
    let (min, max) = values.fold((i32::MAX, i32::MIN), |(lo, hi), v| (lo.min(v), hi.max(v)));
    if min > max {
        return 0;
    }
    min.to_string().len().max(max.to_string().len())
}

// ---------------------------------------------------------------------------------------------
// Layout: brackets, separators, wrapping and summarisation (numpy's `_formatArray`).
// ---------------------------------------------------------------------------------------------

/// Shape information needed to lay out nested brackets.
struct Layout<'a> {
    /// Shape of the array being printed (at least one axis, no zero-length axis).
    dims: &'a [usize],
    /// Row-major strides matching `dims`.
    strides: Vec<usize>,
    /// Whether long axes are shortened to their edges around `...`.
    summarise: bool,
}

impl Layout<'_> {
    /// Renders the whole array; `elem` formats the element at a flat offset.
    fn render(&self, elem: &dyn Fn(usize) -> String) -> String {
        // The hanging indent is one space: it lines continuation rows up past the first `[`.
        self.block(elem, 0, 0, " ", LINE_WIDTH)
    }

    /// Renders the sub-array starting at `offset` along `axis`. `hanging` is the indent of
    /// continuation lines and `width` the room left before the closing brackets.
    fn block(
        &self,
        elem: &dyn Fn(usize) -> String,
        axis: usize,
        offset: usize,
        hanging: &str,
        width: isize,
    ) -> String {
        let len = self.dims.get(axis).copied().unwrap_or(0);
        let stride = self.strides.get(axis).copied().unwrap_or(1);
        let show_summary = self.summarise && len > 2 * EDGE_ITEMS;
        // `None` marks the "..." placeholder between the leading and trailing edges.
        let items: Vec<Option<usize>> = if show_summary {
            (0..EDGE_ITEMS)
                .map(Some)
                .chain(std::iter::once(None))
                .chain((len - EDGE_ITEMS..len).map(Some))
                .collect()
        } else {
            (0..len).map(Some).collect()
        };
        let axes_left = self.dims.len() - axis;

        let mut s = String::new();
        if axes_left <= 1 {
            // Innermost axis: words separated by spaces, wrapped when a line gets too long.
            // One column is reserved for the closing `]` (or the separator, which is blank).
            let elem_width = width - 1;
            let mut line = hanging.to_string();
            for (k, item) in items.iter().enumerate() {
                if k > 0 {
                    line.push(' ');
                }
                let word = match item {
                    Some(i) => elem(offset + i * stride),
                    None => "...".to_string(),
                };
                extend_line(&mut s, &mut line, &word, elem_width, hanging);
            }
            s.push_str(&line);
        } else {
            // Outer axes: one sub-block per line, with an extra blank line per extra axis.
            let next_hanging = format!("{hanging} ");
            let line_sep = "\n".repeat(axes_left - 1);
            for (k, item) in items.iter().enumerate() {
                if k > 0 {
                    s.push_str(&line_sep);
                }
                s.push_str(hanging);
                match item {
                    Some(i) => s.push_str(&self.block(
                        elem,
                        axis + 1,
                        offset + i * stride,
                        &next_hanging,
                        width - 1,
                    )),
                    None => s.push_str("..."),
                }
            }
        }
        // The first line carries the hanging indent too; the opening `[` takes its place.
        format!("[{}]", s.get(hanging.len()..).unwrap_or(""))
    }
}

/// Appends `word` to `line`, first flushing `line` into `s` if the word would pass `width`;
/// numpy never wraps a line that holds nothing but the indent, since that would not help.
fn extend_line(s: &mut String, line: &mut String, word: &str, width: isize, hanging: &str) {
    let too_long = isize::try_from(line.len() + word.len()).map_or(true, |n| n > width);
    if too_long && line.len() > hanging.len() {
        s.push_str(line.trim_end());
        s.push('\n');
        line.clear();
        line.push_str(hanging);
    }
    line.push_str(word);
}

// ---------------------------------------------------------------------------------------------
// Float classification.
// ---------------------------------------------------------------------------------------------

/// The float dtypes whose printing rules differ.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum FloatKind {
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

/// A finite binary float as `mantissa * 2^exponent`, in the form Dragon4 needs.
#[derive(Clone, Copy, Debug)]
struct Finite {
    /// Integer significand (implicit bit included for normal numbers).
    mantissa: u32,
    /// Power of two applied to `mantissa`.
    exponent: i32,
    /// Index of the highest set bit of `mantissa`.
    mantissa_bit: u32,
    /// True at a power of two (not subnormal), where the gap below is half the gap above.
    unequal_margins: bool,
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
struct Decoded {
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
    Decoded {
        negative,
        class,
        value,
    }
}

/// Decodes an `f32` element.
fn decode_f32(x: f32) -> Decoded {
    decode_bits(x.to_bits(), 23, 8, f64::from(x))
}

/// Decodes an `f16` element.
fn decode_f16(x: f16) -> Decoded {
    decode_bits(u32::from(x.to_bits()), 10, 5, x.to_f64())
}

// ---------------------------------------------------------------------------------------------
// Array float format (numpy's `FloatingFormat` in 'maxprec' mode).
// ---------------------------------------------------------------------------------------------

/// Formatting parameters shared by every element of one float array.
#[derive(Debug)]
struct FloatFormat {
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
    fn new(data: impl Iterator<Item = Decoded>, kind: FloatKind) -> FloatFormat {
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
        let extremes = nonzero.fold(None, |acc: Option<(f64, f64)>, a| {
            Some(acc.map_or((a, a), |(lo, hi)| (lo.min(a), hi.max(a))))
        });
        if let Some((min, max)) = extremes {
            exp_format = max >= kind.exp_cutoff()
                || min < kind.small_cutoff()
                || kind.ratio(max, min) > 1000.0;
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
                let s = format_positional(
                    neg,
                    f,
                    PRECISION,
                    -1,
                    Cutoff::FractionLength,
                    Trim::Zeros,
                    -1,
                    -1,
                );
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
            let neg_inf = data
                .iter()
                .any(|d| matches!(d.class, Class::Inf) && d.negative);
            let offset = fmt.pad_right + 1;
            fmt.pad_left = fmt
                .pad_left
                .max(3 - offset)
                .max(3 + i32::from(neg_inf) - offset);
        }
        fmt
    }

    /// Formats one element to the common width.
    fn format(&self, x: &Decoded) -> String {
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
            format_scientific(
                x.negative,
                f,
                self.precision,
                self.min_digits,
                self.trim,
                self.pad_left,
                self.exp_size,
            )
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

/// Whether digit limits count all significant digits or only those after the point.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Cutoff {
    /// Limits count significant digits.
    TotalLength,
    /// Limits count digits after the decimal point.
    FractionLength,
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

// ---------------------------------------------------------------------------------------------
// Dragon4 digit generation (Steele & White / Burger & Dybvig with numpy's conventions).
// ---------------------------------------------------------------------------------------------

/// Generates the decimal digits of `f` in unique mode: the fewest digits that identify the
/// value among its neighbours (boundaries included for even mantissas), but no digit at or
/// past `cutoff_max` and, where `cutoff_min` asks for more, further exact digits.
/// Returns the digits and the decimal exponent of the first one.
fn dragon4(f: Finite, cutoff: Cutoff, cutoff_max: i32, cutoff_min: i32) -> (Vec<u8>, i32) {
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
        let (long, short) = if self.0.len() >= other.0.len() {
            (&self.0, &other.0)
        } else {
            (&other.0, &self.0)
        };
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
        self.0
            .len()
            .cmp(&other.0.len())
            .then_with(|| self.0.iter().rev().cmp(other.0.iter().rev()))
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
#[cfg(test)]
mod tests {
    //! Expected strings were produced by numpy 2.4 (`str(np.array(values, dtype).reshape(dims))`;
    //! float16 inputs are the listed float32 values cast with `astype(np.float16)`).

    use super::*;

    /// Formats f32 values.
    fn f32s(v: &[f32], dims: &[usize]) -> String {
        format_numpy(Values::F32(v), dims)
    }

    /// Formats f32 values cast to f16 (round to nearest even, like numpy's `astype`).
    fn f16s(v: &[f32], dims: &[usize]) -> String {
        let h: Vec<f16> = v.iter().map(|&x| f16::from_f32(x)).collect();
        format_numpy(Values::F16(&h), dims)
    }

    /// Formats i32 values.
    fn i32s(v: &[i32], dims: &[usize]) -> String {
        format_numpy(Values::I32(v), dims)
    }

    #[test]
    fn zero_dim_f32() {
        assert_eq!(f32s(&[40.0], &[]), "40.0");
        assert_eq!(f32s(&[2700.0], &[]), "2700.0");
        assert_eq!(f32s(&[1e-05], &[]), "1e-05");
        assert_eq!(f32s(&[1e20], &[]), "1e+20");
        assert_eq!(f32s(&[0.1], &[]), "0.1");
        assert_eq!(f32s(&[-0.0], &[]), "-0.0");
        assert_eq!(f32s(&[0.0], &[]), "0.0");
        assert_eq!(f32s(&[f32::NAN], &[]), "nan");
        assert_eq!(f32s(&[f32::NEG_INFINITY], &[]), "-inf");
        assert_eq!(f32s(&[f32::INFINITY], &[]), "inf");
        assert_eq!(f32s(&[1000000.0], &[]), "1e+06");
        assert_eq!(f32s(&[999999.0], &[]), "999999.0");
        assert_eq!(f32s(&[0.0001], &[]), "1e-04");
        assert_eq!(f32s(&[123.456], &[]), "123.456");
        assert_eq!(f32s(&[-7.25], &[]), "-7.25");
        assert_eq!(f32s(&[1.5e-07], &[]), "1.5e-07");
        assert_eq!(f32s(&[3.4028235e38], &[]), "3.4028235e+38");
        assert_eq!(f32s(&[1e-45], &[]), "1e-45");
        assert_eq!(f32s(&[100000.5], &[]), "100000.5");
    }

    #[test]
    fn zero_dim_f16() {
        assert_eq!(f16s(&[0.1], &[]), "0.1");
        assert_eq!(f16s(&[2700.0], &[]), "2.7e+03");
        assert_eq!(f16s(&[65504.0], &[]), "6.55e+04");
        assert_eq!(f16s(&[1e-05], &[]), "1e-05");
        assert_eq!(f16s(&[999.0], &[]), "999.0");
        assert_eq!(f16s(&[1000.0], &[]), "1e+03");
        assert_eq!(f16s(&[-0.0], &[]), "-0.0");
        assert_eq!(f16s(&[f32::NAN], &[]), "nan");
        assert_eq!(f16s(&[f32::INFINITY], &[]), "inf");
        assert_eq!(f16s(&[0.0001], &[]), "0.0001");
        assert_eq!(f16s(&[6e-08], &[]), "6e-08");
        assert_eq!(f16s(&[40.0], &[]), "40.0");
        assert_eq!(f16s(&[0.333], &[]), "0.333");
    }

    #[test]
    fn zero_dim_i32() {
        assert_eq!(i32s(&[27000], &[]), "27000");
        assert_eq!(i32s(&[-5], &[]), "-5");
        assert_eq!(i32s(&[0], &[]), "0");
        assert_eq!(i32s(&[-2147483648], &[]), "-2147483648");
        assert_eq!(i32s(&[2147483647], &[]), "2147483647");
    }

    #[test]
    fn f32_positional() {
        assert_eq!(f32s(&[1.0, 8.0, 27.0], &[3]), "[ 1.  8. 27.]");
        assert_eq!(f32s(&[0.1, 0.2, 0.3], &[3]), "[0.1 0.2 0.3]");
        assert_eq!(f32s(&[1.5, -2.0, 3.25], &[3]), "[ 1.5  -2.    3.25]");
        assert_eq!(f32s(&[100.0, 0.5], &[2]), "[100.    0.5]");
        assert_eq!(f32s(&[-1.0, -2.5, 3.0], &[3]), "[-1.  -2.5  3. ]");
        assert_eq!(f32s(&[0.0001, 0.1], &[2]), "[1.e-04 1.e-01]");
        assert_eq!(f32s(&[1.0, 1000.0], &[2]), "[   1. 1000.]");
        assert_eq!(f32s(&[999999.0, 1.0], &[2]), "[9.99999e+05 1.00000e+00]");
        assert_eq!(f32s(&[0.0, 0.0], &[2]), "[0. 0.]");
        assert_eq!(
            f32s(&[123456.78, 0.5], &[2]),
            "[1.2345678e+05 5.0000000e-01]"
        );
        assert_eq!(f32s(&[0.125, 0.25, 0.5], &[3]), "[0.125 0.25  0.5  ]");
        assert_eq!(f32s(&[2.0], &[1]), "[2.]");
        assert_eq!(f32s(&[-0.5], &[1]), "[-0.5]");
    }

    #[test]
    fn f32_scientific() {
        assert_eq!(f32s(&[1e-05, 1.0], &[2]), "[1.e-05 1.e+00]");
        assert_eq!(f32s(&[1.0, 1001.0], &[2]), "[1.000e+00 1.001e+03]");
        assert_eq!(f32s(&[1000000.0, 1.0], &[2]), "[1.e+06 1.e+00]");
        assert_eq!(f32s(&[1e-10, 1.0, 1e10], &[3]), "[1.e-10 1.e+00 1.e+10]");
        assert_eq!(f32s(&[1.5e-07, -2.25e08], &[2]), "[ 1.50e-07 -2.25e+08]");
        assert_eq!(
            f32s(&[0.1, 1.2345678e-05], &[2]),
            "[1.0000000e-01 1.2345678e-05]"
        );
        assert_eq!(
            f32s(&[0.3, 1.2101415e-07, 0.33333334], &[3]),
            "[3.0000001e-01 1.2101415e-07 3.3333334e-01]"
        );
        assert_eq!(f32s(&[1e20, -1e-20], &[2]), "[ 1.e+20 -1.e-20]");
        assert_eq!(f32s(&[1e-45, 1.0], &[2]), "[1.e-45 1.e+00]");
        assert_eq!(f32s(&[5e-05], &[1]), "[5.e-05]");
        assert_eq!(
            f32s(&[3.4028235e38, -3.4028235e38], &[2]),
            "[ 3.4028235e+38 -3.4028235e+38]"
        );
    }

    #[test]
    fn f32_non_finite() {
        assert_eq!(
            f32s(&[f32::NAN, 1.5, f32::NEG_INFINITY], &[3]),
            "[ nan  1.5 -inf]"
        );
        assert_eq!(f32s(&[-0.0, 0.0], &[2]), "[-0.  0.]");
        assert_eq!(f32s(&[-0.0], &[1]), "[-0.]");
        assert_eq!(f32s(&[f32::NAN, f32::NAN], &[2]), "[nan nan]");
        assert_eq!(f32s(&[f32::INFINITY], &[1]), "[inf]");
        assert_eq!(
            f32s(&[f32::NEG_INFINITY, f32::INFINITY], &[2]),
            "[-inf  inf]"
        );
        assert_eq!(f32s(&[f32::NAN, 1e-05], &[2]), "[   nan 1.e-05]");
        assert_eq!(
            f32s(&[f32::NEG_INFINITY, 1e-07, 2.5], &[3]),
            "[   -inf 1.0e-07 2.5e+00]"
        );
        assert_eq!(
            f32s(&[2.5, f32::NAN, f32::NEG_INFINITY, 3.125], &[4]),
            "[2.5     nan  -inf 3.125]"
        );
        assert_eq!(f32s(&[f32::NAN, 0.0], &[2]), "[nan  0.]");
        assert_eq!(f32s(&[f32::INFINITY, 100.25], &[2]), "[   inf 100.25]");
    }

    #[test]
    fn f16_arrays() {
        assert_eq!(f16s(&[0.1, 0.2, 0.3], &[3]), "[0.1 0.2 0.3]");
        assert_eq!(f16s(&[1000.0, 1.0], &[2]), "[1.e+03 1.e+00]");
        assert_eq!(f16s(&[999.0, 1.0], &[2]), "[999.   1.]");
        assert_eq!(f16s(&[65504.0, -65504.0], &[2]), "[ 6.55e+04 -6.55e+04]");
        assert_eq!(f16s(&[f32::NAN, 0.5], &[2]), "[nan 0.5]");
        assert_eq!(f16s(&[0.1, 0.001], &[2]), "[0.1   0.001]");
        assert_eq!(f16s(&[1e-05, 1.0], &[2]), "[1.e-05 1.e+00]");
        assert_eq!(f16s(&[f32::NEG_INFINITY, 0.25], &[2]), "[-inf 0.25]");
        assert_eq!(f16s(&[-0.0, 2.0], &[2]), "[-0.  2.]");
        assert_eq!(f16s(&[1.0, 8.0, 27.0], &[3]), "[ 1.  8. 27.]");
        assert_eq!(f16s(&[3.17, 0.01], &[2]), "[3.17 0.01]");
        assert_eq!(f16s(&[6e-08, 1.0], &[2]), "[6.e-08 1.e+00]");
    }

    #[test]
    fn i32_arrays() {
        assert_eq!(i32s(&[1, 2, 3], &[3]), "[1 2 3]");
        assert_eq!(i32s(&[-1, 100], &[2]), "[ -1 100]");
        assert_eq!(i32s(&[0], &[1]), "[0]");
        assert_eq!(
            i32s(&[-2147483648, 2147483647], &[2]),
            "[-2147483648  2147483647]"
        );
        assert_eq!(i32s(&[5, -5, 50, -500], &[4]), "[   5   -5   50 -500]");
    }

    #[test]
    fn nested_layout() {
        assert_eq!(
            f32s(&[1.5, -2.0, 3.25, 4.0], &[2, 2]),
            "[[ 1.5  -2.  ]\n [ 3.25  4.  ]]"
        );
        assert_eq!(
            f32s(&[1.0, 2.0, 3.0, 4.0, 5.0, 6.0], &[1, 2, 3]),
            "[[[1. 2. 3.]\n  [4. 5. 6.]]]"
        );
        assert_eq!(
            f32s(&[1.0, 2.0, 3.0, 4.0, 5.0, 6.0], &[3, 1, 2]),
            "[[[1. 2.]]\n\n [[3. 4.]]\n\n [[5. 6.]]]"
        );
        assert_eq!(
            f32s(&[f32::NAN, 1.0, f32::NEG_INFINITY, 1e-05], &[2, 2]),
            "[[   nan 1.e+00]\n [  -inf 1.e-05]]"
        );
        assert_eq!(
            f16s(&[0.5, 1.5, 2.5, 3.5, -4.0, 5.0, 6.0, 7.0], &[2, 2, 2]),
            "[[[ 0.5  1.5]\n  [ 2.5  3.5]]\n\n [[-4.   5. ]\n  [ 6.   7. ]]]"
        );
        assert_eq!(
            i32s(&[0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11], &[2, 2, 3]),
            "[[[ 0  1  2]\n  [ 3  4  5]]\n\n [[ 6  7  8]\n  [ 9 10 11]]]"
        );
        assert_eq!(
            i32s(
                &[-8, -7, -6, -5, -4, -3, -2, -1, 0, 1, 2, 3, 4, 5, 6, 7],
                &[2, 2, 2, 2]
            ),
            "[[[[-8 -7]\n   [-6 -5]]\n\n  [[-4 -3]\n   [-2 -1]]]\n\n\n [[[ 0  1]\n   [ 2  3]]\n\n  [[ 4  5]\n   [ 6  7]]]]"
        );
        assert_eq!(i32s(&[7], &[1, 1, 1]), "[[[7]]]");
        let v: Vec<f32> = (0..24).map(|i| i as f32 / 4.0).collect();
        assert_eq!(
            f32s(&v, &[2, 3, 4]),
            "[[[0.   0.25 0.5  0.75]\n  [1.   1.25 1.5  1.75]\n  [2.   2.25 2.5  2.75]]\n\n [[3.   3.25 3.5  3.75]\n  [4.   4.25 4.5  4.75]\n  [5.   5.25 5.5  5.75]]]"
        );
    }

    #[test]
    fn wrapping() {
        let v: Vec<f32> = (0..30).map(|i| i as f32 * 1.25).collect();
        assert_eq!(
            f32s(&v, &[30]),
            "[ 0.    1.25  2.5   3.75  5.    6.25  7.5   8.75 10.   11.25 12.5  13.75\n 15.   16.25 17.5  18.75 20.   21.25 22.5  23.75 25.   26.25 27.5  28.75\n 30.   31.25 32.5  33.75 35.   36.25]"
        );
        let v: Vec<f32> = (0..60).map(|i| i as f32 / 3.0).collect();
        assert_eq!(
            f32s(&v, &[3, 20]),
            "[[ 0.          0.33333334  0.6666667   1.          1.3333334   1.6666666\n   2.          2.3333333   2.6666667   3.          3.3333333   3.6666667\n   4.          4.3333335   4.6666665   5.          5.3333335   5.6666665\n   6.          6.3333335 ]\n [ 6.6666665   7.          7.3333335   7.6666665   8.          8.333333\n   8.666667    9.          9.333333    9.666667   10.         10.333333\n  10.666667   11.         11.333333   11.666667   12.         12.333333\n  12.666667   13.        ]\n [13.333333   13.666667   14.         14.333333   14.666667   15.\n  15.333333   15.666667   16.         16.333334   16.666666   17.\n  17.333334   17.666666   18.         18.333334   18.666666   19.\n  19.333334   19.666666  ]]"
        );
        let v: Vec<f32> = (0..40).map(|i| (i as f32 - 20.0) * 1e-3).collect();
        assert_eq!(
            f32s(&v, &[2, 2, 10]),
            "[[[-0.02  -0.019 -0.018 -0.017 -0.016 -0.015 -0.014 -0.013 -0.012 -0.011]\n  [-0.01  -0.009 -0.008 -0.007 -0.006 -0.005 -0.004 -0.003 -0.002 -0.001]]\n\n [[ 0.     0.001  0.002  0.003  0.004  0.005  0.006  0.007  0.008  0.009]\n  [ 0.01   0.011  0.012  0.013  0.014  0.015  0.016  0.017  0.018  0.019]]]"
        );
        let v: Vec<i32> = (0..40).map(|i| i * 1000).collect();
        assert_eq!(
            i32s(&v, &[40]),
            "[    0  1000  2000  3000  4000  5000  6000  7000  8000  9000 10000 11000\n 12000 13000 14000 15000 16000 17000 18000 19000 20000 21000 22000 23000\n 24000 25000 26000 27000 28000 29000 30000 31000 32000 33000 34000 35000\n 36000 37000 38000 39000]"
        );
        let v: Vec<i32> = (0..60).map(|i| i - 30).collect();
        assert_eq!(
            i32s(&v, &[2, 30]),
            "[[-30 -29 -28 -27 -26 -25 -24 -23 -22 -21 -20 -19 -18 -17 -16 -15 -14 -13\n  -12 -11 -10  -9  -8  -7  -6  -5  -4  -3  -2  -1]\n [  0   1   2   3   4   5   6   7   8   9  10  11  12  13  14  15  16  17\n   18  19  20  21  22  23  24  25  26  27  28  29]]"
        );
        let v: Vec<f32> = (0..60).map(|i| i as f32 * 0.5).collect();
        assert_eq!(
            f16s(&v, &[2, 30]),
            "[[ 0.   0.5  1.   1.5  2.   2.5  3.   3.5  4.   4.5  5.   5.5  6.   6.5\n   7.   7.5  8.   8.5  9.   9.5 10.  10.5 11.  11.5 12.  12.5 13.  13.5\n  14.  14.5]\n [15.  15.5 16.  16.5 17.  17.5 18.  18.5 19.  19.5 20.  20.5 21.  21.5\n  22.  22.5 23.  23.5 24.  24.5 25.  25.5 26.  26.5 27.  27.5 28.  28.5\n  29.  29.5]]"
        );
        let v: Vec<f32> = vec![f32::NAN; 30];
        assert_eq!(
            f32s(&v, &[30]),
            "[nan nan nan nan nan nan nan nan nan nan nan nan nan nan nan nan nan nan\n nan nan nan nan nan nan nan nan nan nan nan nan]"
        );
    }

    #[test]
    fn summarised() {
        let v: Vec<f32> = (0..2000).map(|i| i as f32 / 7.0).collect();
        assert_eq!(
            f32s(&v, &[2000]),
            "[0.0000000e+00 1.4285715e-01 2.8571430e-01 ... 2.8528571e+02 2.8542856e+02\n 2.8557144e+02]"
        );
        let v: Vec<f32> = (0..1600).map(|i| i as f32 * 0.5).collect();
        assert_eq!(
            f32s(&v, &[40, 40]),
            "[[0.000e+00 5.000e-01 1.000e+00 ... 1.850e+01 1.900e+01 1.950e+01]\n [2.000e+01 2.050e+01 2.100e+01 ... 3.850e+01 3.900e+01 3.950e+01]\n [4.000e+01 4.050e+01 4.100e+01 ... 5.850e+01 5.900e+01 5.950e+01]\n ...\n [7.400e+02 7.405e+02 7.410e+02 ... 7.585e+02 7.590e+02 7.595e+02]\n [7.600e+02 7.605e+02 7.610e+02 ... 7.785e+02 7.790e+02 7.795e+02]\n [7.800e+02 7.805e+02 7.810e+02 ... 7.985e+02 7.990e+02 7.995e+02]]"
        );
        let v: Vec<f32> = (0..1200).map(|i| i as f32 - 600.0).collect();
        assert_eq!(
            f32s(&v, &[3, 20, 20]),
            "[[[-600. -599. -598. ... -583. -582. -581.]\n  [-580. -579. -578. ... -563. -562. -561.]\n  [-560. -559. -558. ... -543. -542. -541.]\n  ...\n  [-260. -259. -258. ... -243. -242. -241.]\n  [-240. -239. -238. ... -223. -222. -221.]\n  [-220. -219. -218. ... -203. -202. -201.]]\n\n [[-200. -199. -198. ... -183. -182. -181.]\n  [-180. -179. -178. ... -163. -162. -161.]\n  [-160. -159. -158. ... -143. -142. -141.]\n  ...\n  [ 140.  141.  142. ...  157.  158.  159.]\n  [ 160.  161.  162. ...  177.  178.  179.]\n  [ 180.  181.  182. ...  197.  198.  199.]]\n\n [[ 200.  201.  202. ...  217.  218.  219.]\n  [ 220.  221.  222. ...  237.  238.  239.]\n  [ 240.  241.  242. ...  257.  258.  259.]\n  ...\n  [ 540.  541.  542. ...  557.  558.  559.]\n  [ 560.  561.  562. ...  577.  578.  579.]\n  [ 580.  581.  582. ...  597.  598.  599.]]]"
        );
        let v: Vec<f32> = (0..1001)
            .map(|i| if i == 500 { 1e9 } else { i as f32 })
            .collect();
        assert_eq!(
            f32s(&v, &[1001]),
            "[   0.    1.    2. ...  998.  999. 1000.]"
        );
        let v: Vec<f32> = (0..1296).map(|i| i as f32).collect();
        assert_eq!(
            f32s(&v, &[6, 6, 6, 6]),
            "[[[[0.000e+00 1.000e+00 2.000e+00 3.000e+00 4.000e+00 5.000e+00]\n   [6.000e+00 7.000e+00 8.000e+00 9.000e+00 1.000e+01 1.100e+01]\n   [1.200e+01 1.300e+01 1.400e+01 1.500e+01 1.600e+01 1.700e+01]\n   [1.800e+01 1.900e+01 2.000e+01 2.100e+01 2.200e+01 2.300e+01]\n   [2.400e+01 2.500e+01 2.600e+01 2.700e+01 2.800e+01 2.900e+01]\n   [3.000e+01 3.100e+01 3.200e+01 3.300e+01 3.400e+01 3.500e+01]]\n\n  [[3.600e+01 3.700e+01 3.800e+01 3.900e+01 4.000e+01 4.100e+01]\n   [4.200e+01 4.300e+01 4.400e+01 4.500e+01 4.600e+01 4.700e+01]\n   [4.800e+01 4.900e+01 5.000e+01 5.100e+01 5.200e+01 5.300e+01]\n   [5.400e+01 5.500e+01 5.600e+01 5.700e+01 5.800e+01 5.900e+01]\n   [6.000e+01 6.100e+01 6.200e+01 6.300e+01 6.400e+01 6.500e+01]\n   [6.600e+01 6.700e+01 6.800e+01 6.900e+01 7.000e+01 7.100e+01]]\n\n  [[7.200e+01 7.300e+01 7.400e+01 7.500e+01 7.600e+01 7.700e+01]\n   [7.800e+01 7.900e+01 8.000e+01 8.100e+01 8.200e+01 8.300e+01]\n   [8.400e+01 8.500e+01 8.600e+01 8.700e+01 8.800e+01 8.900e+01]\n   [9.000e+01 9.100e+01 9.200e+01 9.300e+01 9.400e+01 9.500e+01]\n   [9.600e+01 9.700e+01 9.800e+01 9.900e+01 1.000e+02 1.010e+02]\n   [1.020e+02 1.030e+02 1.040e+02 1.050e+02 1.060e+02 1.070e+02]]\n\n  [[1.080e+02 1.090e+02 1.100e+02 1.110e+02 1.120e+02 1.130e+02]\n   [1.140e+02 1.150e+02 1.160e+02 1.170e+02 1.180e+02 1.190e+02]\n   [1.200e+02 1.210e+02 1.220e+02 1.230e+02 1.240e+02 1.250e+02]\n   [1.260e+02 1.270e+02 1.280e+02 1.290e+02 1.300e+02 1.310e+02]\n   [1.320e+02 1.330e+02 1.340e+02 1.350e+02 1.360e+02 1.370e+02]\n   [1.380e+02 1.390e+02 1.400e+02 1.410e+02 1.420e+02 1.430e+02]]\n\n  [[1.440e+02 1.450e+02 1.460e+02 1.470e+02 1.480e+02 1.490e+02]\n   [1.500e+02 1.510e+02 1.520e+02 1.530e+02 1.540e+02 1.550e+02]\n   [1.560e+02 1.570e+02 1.580e+02 1.590e+02 1.600e+02 1.610e+02]\n   [1.620e+02 1.630e+02 1.640e+02 1.650e+02 1.660e+02 1.670e+02]\n   [1.680e+02 1.690e+02 1.700e+02 1.710e+02 1.720e+02 1.730e+02]\n   [1.740e+02 1.750e+02 1.760e+02 1.770e+02 1.780e+02 1.790e+02]]\n\n  [[1.800e+02 1.810e+02 1.820e+02 1.830e+02 1.840e+02 1.850e+02]\n   [1.860e+02 1.870e+02 1.880e+02 1.890e+02 1.900e+02 1.910e+02]\n   [1.920e+02 1.930e+02 1.940e+02 1.950e+02 1.960e+02 1.970e+02]\n   [1.980e+02 1.990e+02 2.000e+02 2.010e+02 2.020e+02 2.030e+02]\n   [2.040e+02 2.050e+02 2.060e+02 2.070e+02 2.080e+02 2.090e+02]\n   [2.100e+02 2.110e+02 2.120e+02 2.130e+02 2.140e+02 2.150e+02]]]\n\n\n [[[2.160e+02 2.170e+02 2.180e+02 2.190e+02 2.200e+02 2.210e+02]\n   [2.220e+02 2.230e+02 2.240e+02 2.250e+02 2.260e+02 2.270e+02]\n   [2.280e+02 2.290e+02 2.300e+02 2.310e+02 2.320e+02 2.330e+02]\n   [2.340e+02 2.350e+02 2.360e+02 2.370e+02 2.380e+02 2.390e+02]\n   [2.400e+02 2.410e+02 2.420e+02 2.430e+02 2.440e+02 2.450e+02]\n   [2.460e+02 2.470e+02 2.480e+02 2.490e+02 2.500e+02 2.510e+02]]\n\n  [[2.520e+02 2.530e+02 2.540e+02 2.550e+02 2.560e+02 2.570e+02]\n   [2.580e+02 2.590e+02 2.600e+02 2.610e+02 2.620e+02 2.630e+02]\n   [2.640e+02 2.650e+02 2.660e+02 2.670e+02 2.680e+02 2.690e+02]\n   [2.700e+02 2.710e+02 2.720e+02 2.730e+02 2.740e+02 2.750e+02]\n   [2.760e+02 2.770e+02 2.780e+02 2.790e+02 2.800e+02 2.810e+02]\n   [2.820e+02 2.830e+02 2.840e+02 2.850e+02 2.860e+02 2.870e+02]]\n\n  [[2.880e+02 2.890e+02 2.900e+02 2.910e+02 2.920e+02 2.930e+02]\n   [2.940e+02 2.950e+02 2.960e+02 2.970e+02 2.980e+02 2.990e+02]\n   [3.000e+02 3.010e+02 3.020e+02 3.030e+02 3.040e+02 3.050e+02]\n   [3.060e+02 3.070e+02 3.080e+02 3.090e+02 3.100e+02 3.110e+02]\n   [3.120e+02 3.130e+02 3.140e+02 3.150e+02 3.160e+02 3.170e+02]\n   [3.180e+02 3.190e+02 3.200e+02 3.210e+02 3.220e+02 3.230e+02]]\n\n  [[3.240e+02 3.250e+02 3.260e+02 3.270e+02 3.280e+02 3.290e+02]\n   [3.300e+02 3.310e+02 3.320e+02 3.330e+02 3.340e+02 3.350e+02]\n   [3.360e+02 3.370e+02 3.380e+02 3.390e+02 3.400e+02 3.410e+02]\n   [3.420e+02 3.430e+02 3.440e+02 3.450e+02 3.460e+02 3.470e+02]\n   [3.480e+02 3.490e+02 3.500e+02 3.510e+02 3.520e+02 3.530e+02]\n   [3.540e+02 3.550e+02 3.560e+02 3.570e+02 3.580e+02 3.590e+02]]\n\n  [[3.600e+02 3.610e+02 3.620e+02 3.630e+02 3.640e+02 3.650e+02]\n   [3.660e+02 3.670e+02 3.680e+02 3.690e+02 3.700e+02 3.710e+02]\n   [3.720e+02 3.730e+02 3.740e+02 3.750e+02 3.760e+02 3.770e+02]\n   [3.780e+02 3.790e+02 3.800e+02 3.810e+02 3.820e+02 3.830e+02]\n   [3.840e+02 3.850e+02 3.860e+02 3.870e+02 3.880e+02 3.890e+02]\n   [3.900e+02 3.910e+02 3.920e+02 3.930e+02 3.940e+02 3.950e+02]]\n\n  [[3.960e+02 3.970e+02 3.980e+02 3.990e+02 4.000e+02 4.010e+02]\n   [4.020e+02 4.030e+02 4.040e+02 4.050e+02 4.060e+02 4.070e+02]\n   [4.080e+02 4.090e+02 4.100e+02 4.110e+02 4.120e+02 4.130e+02]\n   [4.140e+02 4.150e+02 4.160e+02 4.170e+02 4.180e+02 4.190e+02]\n   [4.200e+02 4.210e+02 4.220e+02 4.230e+02 4.240e+02 4.250e+02]\n   [4.260e+02 4.270e+02 4.280e+02 4.290e+02 4.300e+02 4.310e+02]]]\n\n\n [[[4.320e+02 4.330e+02 4.340e+02 4.350e+02 4.360e+02 4.370e+02]\n   [4.380e+02 4.390e+02 4.400e+02 4.410e+02 4.420e+02 4.430e+02]\n   [4.440e+02 4.450e+02 4.460e+02 4.470e+02 4.480e+02 4.490e+02]\n   [4.500e+02 4.510e+02 4.520e+02 4.530e+02 4.540e+02 4.550e+02]\n   [4.560e+02 4.570e+02 4.580e+02 4.590e+02 4.600e+02 4.610e+02]\n   [4.620e+02 4.630e+02 4.640e+02 4.650e+02 4.660e+02 4.670e+02]]\n\n  [[4.680e+02 4.690e+02 4.700e+02 4.710e+02 4.720e+02 4.730e+02]\n   [4.740e+02 4.750e+02 4.760e+02 4.770e+02 4.780e+02 4.790e+02]\n   [4.800e+02 4.810e+02 4.820e+02 4.830e+02 4.840e+02 4.850e+02]\n   [4.860e+02 4.870e+02 4.880e+02 4.890e+02 4.900e+02 4.910e+02]\n   [4.920e+02 4.930e+02 4.940e+02 4.950e+02 4.960e+02 4.970e+02]\n   [4.980e+02 4.990e+02 5.000e+02 5.010e+02 5.020e+02 5.030e+02]]\n\n  [[5.040e+02 5.050e+02 5.060e+02 5.070e+02 5.080e+02 5.090e+02]\n   [5.100e+02 5.110e+02 5.120e+02 5.130e+02 5.140e+02 5.150e+02]\n   [5.160e+02 5.170e+02 5.180e+02 5.190e+02 5.200e+02 5.210e+02]\n   [5.220e+02 5.230e+02 5.240e+02 5.250e+02 5.260e+02 5.270e+02]\n   [5.280e+02 5.290e+02 5.300e+02 5.310e+02 5.320e+02 5.330e+02]\n   [5.340e+02 5.350e+02 5.360e+02 5.370e+02 5.380e+02 5.390e+02]]\n\n  [[5.400e+02 5.410e+02 5.420e+02 5.430e+02 5.440e+02 5.450e+02]\n   [5.460e+02 5.470e+02 5.480e+02 5.490e+02 5.500e+02 5.510e+02]\n   [5.520e+02 5.530e+02 5.540e+02 5.550e+02 5.560e+02 5.570e+02]\n   [5.580e+02 5.590e+02 5.600e+02 5.610e+02 5.620e+02 5.630e+02]\n   [5.640e+02 5.650e+02 5.660e+02 5.670e+02 5.680e+02 5.690e+02]\n   [5.700e+02 5.710e+02 5.720e+02 5.730e+02 5.740e+02 5.750e+02]]\n\n  [[5.760e+02 5.770e+02 5.780e+02 5.790e+02 5.800e+02 5.810e+02]\n   [5.820e+02 5.830e+02 5.840e+02 5.850e+02 5.860e+02 5.870e+02]\n   [5.880e+02 5.890e+02 5.900e+02 5.910e+02 5.920e+02 5.930e+02]\n   [5.940e+02 5.950e+02 5.960e+02 5.970e+02 5.980e+02 5.990e+02]\n   [6.000e+02 6.010e+02 6.020e+02 6.030e+02 6.040e+02 6.050e+02]\n   [6.060e+02 6.070e+02 6.080e+02 6.090e+02 6.100e+02 6.110e+02]]\n\n  [[6.120e+02 6.130e+02 6.140e+02 6.150e+02 6.160e+02 6.170e+02]\n   [6.180e+02 6.190e+02 6.200e+02 6.210e+02 6.220e+02 6.230e+02]\n   [6.240e+02 6.250e+02 6.260e+02 6.270e+02 6.280e+02 6.290e+02]\n   [6.300e+02 6.310e+02 6.320e+02 6.330e+02 6.340e+02 6.350e+02]\n   [6.360e+02 6.370e+02 6.380e+02 6.390e+02 6.400e+02 6.410e+02]\n   [6.420e+02 6.430e+02 6.440e+02 6.450e+02 6.460e+02 6.470e+02]]]\n\n\n [[[6.480e+02 6.490e+02 6.500e+02 6.510e+02 6.520e+02 6.530e+02]\n   [6.540e+02 6.550e+02 6.560e+02 6.570e+02 6.580e+02 6.590e+02]\n   [6.600e+02 6.610e+02 6.620e+02 6.630e+02 6.640e+02 6.650e+02]\n   [6.660e+02 6.670e+02 6.680e+02 6.690e+02 6.700e+02 6.710e+02]\n   [6.720e+02 6.730e+02 6.740e+02 6.750e+02 6.760e+02 6.770e+02]\n   [6.780e+02 6.790e+02 6.800e+02 6.810e+02 6.820e+02 6.830e+02]]\n\n  [[6.840e+02 6.850e+02 6.860e+02 6.870e+02 6.880e+02 6.890e+02]\n   [6.900e+02 6.910e+02 6.920e+02 6.930e+02 6.940e+02 6.950e+02]\n   [6.960e+02 6.970e+02 6.980e+02 6.990e+02 7.000e+02 7.010e+02]\n   [7.020e+02 7.030e+02 7.040e+02 7.050e+02 7.060e+02 7.070e+02]\n   [7.080e+02 7.090e+02 7.100e+02 7.110e+02 7.120e+02 7.130e+02]\n   [7.140e+02 7.150e+02 7.160e+02 7.170e+02 7.180e+02 7.190e+02]]\n\n  [[7.200e+02 7.210e+02 7.220e+02 7.230e+02 7.240e+02 7.250e+02]\n   [7.260e+02 7.270e+02 7.280e+02 7.290e+02 7.300e+02 7.310e+02]\n   [7.320e+02 7.330e+02 7.340e+02 7.350e+02 7.360e+02 7.370e+02]\n   [7.380e+02 7.390e+02 7.400e+02 7.410e+02 7.420e+02 7.430e+02]\n   [7.440e+02 7.450e+02 7.460e+02 7.470e+02 7.480e+02 7.490e+02]\n   [7.500e+02 7.510e+02 7.520e+02 7.530e+02 7.540e+02 7.550e+02]]\n\n  [[7.560e+02 7.570e+02 7.580e+02 7.590e+02 7.600e+02 7.610e+02]\n   [7.620e+02 7.630e+02 7.640e+02 7.650e+02 7.660e+02 7.670e+02]\n   [7.680e+02 7.690e+02 7.700e+02 7.710e+02 7.720e+02 7.730e+02]\n   [7.740e+02 7.750e+02 7.760e+02 7.770e+02 7.780e+02 7.790e+02]\n   [7.800e+02 7.810e+02 7.820e+02 7.830e+02 7.840e+02 7.850e+02]\n   [7.860e+02 7.870e+02 7.880e+02 7.890e+02 7.900e+02 7.910e+02]]\n\n  [[7.920e+02 7.930e+02 7.940e+02 7.950e+02 7.960e+02 7.970e+02]\n   [7.980e+02 7.990e+02 8.000e+02 8.010e+02 8.020e+02 8.030e+02]\n   [8.040e+02 8.050e+02 8.060e+02 8.070e+02 8.080e+02 8.090e+02]\n   [8.100e+02 8.110e+02 8.120e+02 8.130e+02 8.140e+02 8.150e+02]\n   [8.160e+02 8.170e+02 8.180e+02 8.190e+02 8.200e+02 8.210e+02]\n   [8.220e+02 8.230e+02 8.240e+02 8.250e+02 8.260e+02 8.270e+02]]\n\n  [[8.280e+02 8.290e+02 8.300e+02 8.310e+02 8.320e+02 8.330e+02]\n   [8.340e+02 8.350e+02 8.360e+02 8.370e+02 8.380e+02 8.390e+02]\n   [8.400e+02 8.410e+02 8.420e+02 8.430e+02 8.440e+02 8.450e+02]\n   [8.460e+02 8.470e+02 8.480e+02 8.490e+02 8.500e+02 8.510e+02]\n   [8.520e+02 8.530e+02 8.540e+02 8.550e+02 8.560e+02 8.570e+02]\n   [8.580e+02 8.590e+02 8.600e+02 8.610e+02 8.620e+02 8.630e+02]]]\n\n\n [[[8.640e+02 8.650e+02 8.660e+02 8.670e+02 8.680e+02 8.690e+02]\n   [8.700e+02 8.710e+02 8.720e+02 8.730e+02 8.740e+02 8.750e+02]\n   [8.760e+02 8.770e+02 8.780e+02 8.790e+02 8.800e+02 8.810e+02]\n   [8.820e+02 8.830e+02 8.840e+02 8.850e+02 8.860e+02 8.870e+02]\n   [8.880e+02 8.890e+02 8.900e+02 8.910e+02 8.920e+02 8.930e+02]\n   [8.940e+02 8.950e+02 8.960e+02 8.970e+02 8.980e+02 8.990e+02]]\n\n  [[9.000e+02 9.010e+02 9.020e+02 9.030e+02 9.040e+02 9.050e+02]\n   [9.060e+02 9.070e+02 9.080e+02 9.090e+02 9.100e+02 9.110e+02]\n   [9.120e+02 9.130e+02 9.140e+02 9.150e+02 9.160e+02 9.170e+02]\n   [9.180e+02 9.190e+02 9.200e+02 9.210e+02 9.220e+02 9.230e+02]\n   [9.240e+02 9.250e+02 9.260e+02 9.270e+02 9.280e+02 9.290e+02]\n   [9.300e+02 9.310e+02 9.320e+02 9.330e+02 9.340e+02 9.350e+02]]\n\n  [[9.360e+02 9.370e+02 9.380e+02 9.390e+02 9.400e+02 9.410e+02]\n   [9.420e+02 9.430e+02 9.440e+02 9.450e+02 9.460e+02 9.470e+02]\n   [9.480e+02 9.490e+02 9.500e+02 9.510e+02 9.520e+02 9.530e+02]\n   [9.540e+02 9.550e+02 9.560e+02 9.570e+02 9.580e+02 9.590e+02]\n   [9.600e+02 9.610e+02 9.620e+02 9.630e+02 9.640e+02 9.650e+02]\n   [9.660e+02 9.670e+02 9.680e+02 9.690e+02 9.700e+02 9.710e+02]]\n\n  [[9.720e+02 9.730e+02 9.740e+02 9.750e+02 9.760e+02 9.770e+02]\n   [9.780e+02 9.790e+02 9.800e+02 9.810e+02 9.820e+02 9.830e+02]\n   [9.840e+02 9.850e+02 9.860e+02 9.870e+02 9.880e+02 9.890e+02]\n   [9.900e+02 9.910e+02 9.920e+02 9.930e+02 9.940e+02 9.950e+02]\n   [9.960e+02 9.970e+02 9.980e+02 9.990e+02 1.000e+03 1.001e+03]\n   [1.002e+03 1.003e+03 1.004e+03 1.005e+03 1.006e+03 1.007e+03]]\n\n  [[1.008e+03 1.009e+03 1.010e+03 1.011e+03 1.012e+03 1.013e+03]\n   [1.014e+03 1.015e+03 1.016e+03 1.017e+03 1.018e+03 1.019e+03]\n   [1.020e+03 1.021e+03 1.022e+03 1.023e+03 1.024e+03 1.025e+03]\n   [1.026e+03 1.027e+03 1.028e+03 1.029e+03 1.030e+03 1.031e+03]\n   [1.032e+03 1.033e+03 1.034e+03 1.035e+03 1.036e+03 1.037e+03]\n   [1.038e+03 1.039e+03 1.040e+03 1.041e+03 1.042e+03 1.043e+03]]\n\n  [[1.044e+03 1.045e+03 1.046e+03 1.047e+03 1.048e+03 1.049e+03]\n   [1.050e+03 1.051e+03 1.052e+03 1.053e+03 1.054e+03 1.055e+03]\n   [1.056e+03 1.057e+03 1.058e+03 1.059e+03 1.060e+03 1.061e+03]\n   [1.062e+03 1.063e+03 1.064e+03 1.065e+03 1.066e+03 1.067e+03]\n   [1.068e+03 1.069e+03 1.070e+03 1.071e+03 1.072e+03 1.073e+03]\n   [1.074e+03 1.075e+03 1.076e+03 1.077e+03 1.078e+03 1.079e+03]]]\n\n\n [[[1.080e+03 1.081e+03 1.082e+03 1.083e+03 1.084e+03 1.085e+03]\n   [1.086e+03 1.087e+03 1.088e+03 1.089e+03 1.090e+03 1.091e+03]\n   [1.092e+03 1.093e+03 1.094e+03 1.095e+03 1.096e+03 1.097e+03]\n   [1.098e+03 1.099e+03 1.100e+03 1.101e+03 1.102e+03 1.103e+03]\n   [1.104e+03 1.105e+03 1.106e+03 1.107e+03 1.108e+03 1.109e+03]\n   [1.110e+03 1.111e+03 1.112e+03 1.113e+03 1.114e+03 1.115e+03]]\n\n  [[1.116e+03 1.117e+03 1.118e+03 1.119e+03 1.120e+03 1.121e+03]\n   [1.122e+03 1.123e+03 1.124e+03 1.125e+03 1.126e+03 1.127e+03]\n   [1.128e+03 1.129e+03 1.130e+03 1.131e+03 1.132e+03 1.133e+03]\n   [1.134e+03 1.135e+03 1.136e+03 1.137e+03 1.138e+03 1.139e+03]\n   [1.140e+03 1.141e+03 1.142e+03 1.143e+03 1.144e+03 1.145e+03]\n   [1.146e+03 1.147e+03 1.148e+03 1.149e+03 1.150e+03 1.151e+03]]\n\n  [[1.152e+03 1.153e+03 1.154e+03 1.155e+03 1.156e+03 1.157e+03]\n   [1.158e+03 1.159e+03 1.160e+03 1.161e+03 1.162e+03 1.163e+03]\n   [1.164e+03 1.165e+03 1.166e+03 1.167e+03 1.168e+03 1.169e+03]\n   [1.170e+03 1.171e+03 1.172e+03 1.173e+03 1.174e+03 1.175e+03]\n   [1.176e+03 1.177e+03 1.178e+03 1.179e+03 1.180e+03 1.181e+03]\n   [1.182e+03 1.183e+03 1.184e+03 1.185e+03 1.186e+03 1.187e+03]]\n\n  [[1.188e+03 1.189e+03 1.190e+03 1.191e+03 1.192e+03 1.193e+03]\n   [1.194e+03 1.195e+03 1.196e+03 1.197e+03 1.198e+03 1.199e+03]\n   [1.200e+03 1.201e+03 1.202e+03 1.203e+03 1.204e+03 1.205e+03]\n   [1.206e+03 1.207e+03 1.208e+03 1.209e+03 1.210e+03 1.211e+03]\n   [1.212e+03 1.213e+03 1.214e+03 1.215e+03 1.216e+03 1.217e+03]\n   [1.218e+03 1.219e+03 1.220e+03 1.221e+03 1.222e+03 1.223e+03]]\n\n  [[1.224e+03 1.225e+03 1.226e+03 1.227e+03 1.228e+03 1.229e+03]\n   [1.230e+03 1.231e+03 1.232e+03 1.233e+03 1.234e+03 1.235e+03]\n   [1.236e+03 1.237e+03 1.238e+03 1.239e+03 1.240e+03 1.241e+03]\n   [1.242e+03 1.243e+03 1.244e+03 1.245e+03 1.246e+03 1.247e+03]\n   [1.248e+03 1.249e+03 1.250e+03 1.251e+03 1.252e+03 1.253e+03]\n   [1.254e+03 1.255e+03 1.256e+03 1.257e+03 1.258e+03 1.259e+03]]\n\n  [[1.260e+03 1.261e+03 1.262e+03 1.263e+03 1.264e+03 1.265e+03]\n   [1.266e+03 1.267e+03 1.268e+03 1.269e+03 1.270e+03 1.271e+03]\n   [1.272e+03 1.273e+03 1.274e+03 1.275e+03 1.276e+03 1.277e+03]\n   [1.278e+03 1.279e+03 1.280e+03 1.281e+03 1.282e+03 1.283e+03]\n   [1.284e+03 1.285e+03 1.286e+03 1.287e+03 1.288e+03 1.289e+03]\n   [1.290e+03 1.291e+03 1.292e+03 1.293e+03 1.294e+03 1.295e+03]]]]"
        );
        let v: Vec<i32> = (0..2000).collect();
        assert_eq!(i32s(&v, &[2000]), "[   0    1    2 ... 1997 1998 1999]");
        let v: Vec<i32> = (0..1600).map(|i| i * 3 - 2000).collect();
        assert_eq!(
            i32s(&v, &[40, 40]),
            "[[-2000 -1997 -1994 ... -1889 -1886 -1883]\n [-1880 -1877 -1874 ... -1769 -1766 -1763]\n [-1760 -1757 -1754 ... -1649 -1646 -1643]\n ...\n [ 2440  2443  2446 ...  2551  2554  2557]\n [ 2560  2563  2566 ...  2671  2674  2677]\n [ 2680  2683  2686 ...  2791  2794  2797]]"
        );
        let v: Vec<i32> = (0..1200).collect();
        assert_eq!(
            i32s(&v, &[1, 1200]),
            "[[   0    1    2 ... 1197 1198 1199]]"
        );
        let v: Vec<f32> = (0..1200).map(|i| i as f32 / 8.0).collect();
        assert_eq!(
            f16s(&v, &[1200]),
            "[0.000e+00 1.250e-01 2.500e-01 ... 1.496e+02 1.498e+02 1.499e+02]"
        );
        let v: Vec<f32> = (0..1200).map(|i| i as f32 / 8.0).collect();
        assert_eq!(
            f16s(&v, &[1200, 1]),
            "[[0.000e+00]\n [1.250e-01]\n [2.500e-01]\n ...\n [1.496e+02]\n [1.498e+02]\n [1.499e+02]]"
        );
    }

    #[test]
    fn empty_arrays() {
        assert_eq!(f32s(&[], &[0]), "[]");
        assert_eq!(f16s(&[], &[0]), "[]");
        assert_eq!(i32s(&[], &[0]), "[]");
        assert_eq!(f32s(&[], &[2, 0]), "[]");
        assert_eq!(f16s(&[], &[2, 0]), "[]");
        assert_eq!(i32s(&[], &[2, 0]), "[]");
        assert_eq!(f32s(&[], &[0, 3]), "[]");
        assert_eq!(f16s(&[], &[0, 3]), "[]");
        assert_eq!(i32s(&[], &[0, 3]), "[]");
        assert_eq!(f32s(&[], &[1, 0, 2]), "[]");
        assert_eq!(f16s(&[], &[1, 0, 2]), "[]");
        assert_eq!(i32s(&[], &[1, 0, 2]), "[]");
    }

    #[test]
    fn mismatched_or_odd_dims_do_not_panic() {
        // Length disagrees with the shape: printed as 1-D.
        assert_eq!(f32s(&[1.0, 2.0, 3.0], &[2, 2]), "[1. 2. 3.]");
        assert_eq!(i32s(&[4], &[0]), "[4]");
        assert_eq!(i32s(&[1, 2], &[]), "[1 2]");
        assert_eq!(i32s(&[], &[]), "[]");
        assert_eq!(f16s(&[], &[]), "[]");
        assert_eq!(i32s(&[1], &[usize::MAX, 2]), "[1]");
        // More axes than numpy supports: printed flat.
        assert_eq!(i32s(&[5], &[1; 65]), "[5]");
        // The deepest shape numpy allows still nests.
        let deep = i32s(&[5], &[1; 64]);
        assert_eq!(deep, format!("{}5{}", "[".repeat(64), "]".repeat(64)));
    }

    #[test]
    fn huge_arrays_format_only_the_corners() {
        let v: Vec<f32> = (0..1_000_000).map(|i| i as f32).collect();
        assert_eq!(
            f32s(&v, &[1000, 1000]),
            "[[0.00000e+00 1.00000e+00 2.00000e+00 ... 9.97000e+02 9.98000e+02\n  9.99000e+02]\n [1.00000e+03 1.00100e+03 1.00200e+03 ... 1.99700e+03 1.99800e+03\n  1.99900e+03]\n [2.00000e+03 2.00100e+03 2.00200e+03 ... 2.99700e+03 2.99800e+03\n  2.99900e+03]\n ...\n [9.97000e+05 9.97001e+05 9.97002e+05 ... 9.97997e+05 9.97998e+05\n  9.97999e+05]\n [9.98000e+05 9.98001e+05 9.98002e+05 ... 9.98997e+05 9.98998e+05\n  9.98999e+05]\n [9.99000e+05 9.99001e+05 9.99002e+05 ... 9.99997e+05 9.99998e+05\n  9.99999e+05]]"
        );
    }

    #[test]
    fn every_f16_scalar_round_trips() {
        // Shortest digits must identify the binary16 value (0.1 prints as "0.1").
        for bits in 0..=u16::MAX {
            let x = f16::from_bits(bits);
            let s = format_numpy(Values::F16(&[x]), &[]);
            if x.is_nan() {
                assert_eq!(s, "nan");
                continue;
            }
            let back = f16::from_f64(s.parse::<f64>().unwrap_or(f64::NAN));
            assert_eq!(back.to_bits(), bits, "{s}");
        }
    }

    #[test]
    fn f32_scalars_round_trip() {
        // A spread of bit patterns, stepping by an odd stride through the finite range.
        let mut bits = 1u32;
        while bits < 0x7f80_0000 {
            let x = f32::from_bits(bits);
            let s = format_numpy(Values::F32(&[x]), &[]);
            assert_eq!(s.parse::<f32>().map(f32::to_bits), Ok(bits), "{s}");
            assert_eq!(f32s(&[-x], &[]), format!("-{s}"));
            bits += 99_991;
        }
    }
}
