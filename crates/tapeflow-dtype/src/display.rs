//! Placeholder until the numpy formatter lands (replaced in the same change).
/// Borrowed element data of one tensor, row-major.
pub(crate) enum Values<'a> {
    /// f32
    F32(&'a [f32]),
    /// f16
    F16(&'a [half::f16]),
    /// i32
    I32(&'a [i32]),
}
/// numpy-like text.
pub(crate) fn format_numpy(values: Values<'_>, _dims: &[usize]) -> String {
    match values {
        Values::F32(v) => format!("{v:?}"),
        Values::F16(v) => format!("{v:?}"),
        Values::I32(v) => format!("{v:?}"),
    }
}
