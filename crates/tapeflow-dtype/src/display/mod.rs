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

mod digits;
mod float;
mod layout;
#[cfg(test)]
mod tests;

use half::f16;

use float::{FloatFormat, FloatKind, decode_f16, decode_f32, float_scalar_str};
use layout::{Layout, row_major_strides, shown_offsets};

/// Borrowed element data of one tensor, row-major.
#[derive(Clone, Copy, Debug)]
pub(crate) enum Values<'a> {
    /// `float32` elements.
    F32(&'a [f32]),
    /// `float16` elements.
    F16(&'a [f16]),
    /// `int32` elements.
    I32(&'a [i32]),
    /// `bool` elements.
    Bool(&'a [bool]),
}

impl Values<'_> {
    /// Number of elements borrowed.
    fn len(&self) -> usize {
        match self {
            Values::F32(v) => v.len(),
            Values::F16(v) => v.len(),
            Values::I32(v) => v.len(),
            Values::Bool(v) => v.len(),
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

/// numpy's `str(np.array(values).reshape(dims))` for the dtype (float32/float16/int32/bool).
/// dims = [] means a 0-d array (e.g. "40.0", "27000", "nan", "-inf", "1e-05").
///
/// If `values.len()` is not the product of `dims` (or `dims` has more axes than numpy allows),
/// the values are printed as a 1-D array instead of panicking.
pub(crate) fn format_numpy(values: Values<'_>, dims: &[usize]) -> String {
    let len = values.len();
    let size = dims.iter().try_fold(1usize, |acc, &d| acc.checked_mul(d));
    let flat = [len];
    let dims: &[usize] = if size == Some(len) && dims.len() <= MAX_DIMS { dims } else { &flat };

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
    let layout = Layout { dims, strides: row_major_strides(dims), summarise };

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
        // numpy's `BoolFormat`: in an array `True` always takes a leading space, so that
        // both words are five columns wide, whatever the values.
        Values::Bool(v) => {
            layout.render(&|i| if v.get(i).copied().unwrap_or_default() { " True" } else { "False" }.into())
        }
    }
}

/// `str()` of a 0-d array: numpy prints the scalar, with full round-trip precision.
fn scalar_str(values: Values<'_>) -> String {
    match values {
        Values::I32(v) => v.first().map_or_else(String::new, i32::to_string),
        Values::F32(v) => float_scalar_str(&decode_f32(v.first().copied().unwrap_or_default()), FloatKind::F32),
        Values::F16(v) => float_scalar_str(&decode_f16(v.first().copied().unwrap_or_default()), FloatKind::F16),
        Values::Bool(v) => if v.first().copied().unwrap_or_default() { "True" } else { "False" }.into(),
    }
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
