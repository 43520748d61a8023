//! Element types and the per-type facts kernels need.

use std::fmt;

use half::f16;

/// The element type of a tensor. Names print as TensorFlow prints them.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum DType {
    /// IEEE binary32, TensorFlow's `float32` (the default for float literals).
    F32,
    /// IEEE binary16 (`half::f16`), TensorFlow's `float16`.
    F16,
    /// 32-bit two's-complement integer, TensorFlow's `int32` (the default for integer literals).
    I32,
}

impl DType {
    /// TensorFlow's name of the dtype: `float32`, `float16` or `int32`.
    pub const fn name(self) -> &'static str {
        match self {
            DType::F32 => "float32",
            DType::F16 => "float16",
            DType::I32 => "int32",
        }
    }

    /// Whether the dtype is a floating-point type (the only kind gradients flow through).
    pub const fn is_float(self) -> bool {
        matches!(self, DType::F32 | DType::F16)
    }

    /// Size of one element in bytes.
    pub const fn size_in_bytes(self) -> usize {
        match self {
            DType::F32 | DType::I32 => 4,
            DType::F16 => 2,
        }
    }
}

impl fmt::Display for DType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

mod sealed {
    pub trait Sealed {}
    impl Sealed for f32 {}
    impl Sealed for half::f16 {}
    impl Sealed for i32 {}
}

/// A Rust type that can be a tensor element: `f32`, `half::f16` or `i32`.
///
/// Sealed: tapeflow's kernels are written for exactly these three types.
pub trait Element: sealed::Sealed + bytemuck::Pod + Copy + PartialEq + fmt::Debug + Send + Sync + 'static {
    /// The dtype of this element type.
    const DTYPE: DType;
    /// Zero of the type.
    const ZERO: Self;
    /// One of the type.
    const ONE: Self;
    /// Converts to f64 exactly (every f32, f16 and i32 value is an f64 value).
    fn to_f64(self) -> f64;
    /// Converts from f64 with the type's own rounding: nearest for floats; for `i32`,
    /// truncation toward zero, with NaN and out-of-range values giving `i32::MIN`
    /// (what TensorFlow's cast does on x86).
    fn from_f64(value: f64) -> Self;
}

impl Element for f32 {
    const DTYPE: DType = DType::F32;
    const ZERO: Self = 0.0;
    const ONE: Self = 1.0;
    fn to_f64(self) -> f64 {
        f64::from(self)
    }
    fn from_f64(value: f64) -> Self {
        value as f32
    }
}

impl Element for f16 {
    const DTYPE: DType = DType::F16;
    const ZERO: Self = f16::ZERO;
    const ONE: Self = f16::ONE;
    fn to_f64(self) -> f64 {
        self.to_f64()
    }
    fn from_f64(value: f64) -> Self {
        f16::from_f64(value)
    }
}

impl Element for i32 {
    const DTYPE: DType = DType::I32;
    const ZERO: Self = 0;
    const ONE: Self = 1;
    fn to_f64(self) -> f64 {
        f64::from(self)
    }
    fn from_f64(value: f64) -> Self {
        float_to_i32(value)
    }
}

/// Truncating float → int32 conversion as TensorFlow does it on x86 (`cvttss2si`):
/// NaN and values outside the i32 range give `i32::MIN`.
pub(crate) fn float_to_i32(value: f64) -> i32 {
    let t = value.trunc();
    if value.is_nan() || t < f64::from(i32::MIN) || t > f64::from(i32::MAX) { i32::MIN } else { t as i32 }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_match_tensorflow() {
        assert_eq!(DType::F32.to_string(), "float32");
        assert_eq!(DType::F16.to_string(), "float16");
        assert_eq!(DType::I32.to_string(), "int32");
    }

    #[test]
    fn float_to_int_truncates_and_saturates_to_min() {
        assert_eq!(i32::from_f64(2.9), 2);
        assert_eq!(i32::from_f64(-2.9), -2);
        assert_eq!(i32::from_f64(f64::NAN), i32::MIN);
        assert_eq!(i32::from_f64(3e9), i32::MIN);
        assert_eq!(i32::from_f64(-3e9), i32::MIN);
        assert_eq!(i32::from_f64(2147483647.0), i32::MAX);
    }
}
