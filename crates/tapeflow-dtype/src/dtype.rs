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
    /// Truth values, TensorFlow's `bool` (what comparisons give), one byte per element.
    Bool,
}

impl DType {
    /// TensorFlow's name of the dtype: `float32`, `float16`, `int32` or `bool`.
    pub const fn name(self) -> &'static str {
        match self {
            DType::F32 => "float32",
            DType::F16 => "float16",
            DType::I32 => "int32",
            DType::Bool => "bool",
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
            DType::Bool => 1,
        }
    }
}

impl fmt::Display for DType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// How storage views its bytes as elements. Private to the crate: the element types are
/// fixed, and only storage reinterprets bytes.
pub(crate) mod sealed {
    /// Byte views of an element type.
    pub trait Sealed: Sized {
        /// Whether every byte pattern is an element. `bool` is the exception (only 0 and
        /// 1 are): storage zeroes a recycled buffer before handing it out as `&mut [bool]`.
        const ANY_BIT_PATTERN: bool;
        /// `bytes` (a whole number of elements, aligned for the type) as elements.
        fn from_bytes(bytes: &[u8]) -> &[Self];
        /// `bytes` as elements, mutably; for a type without `ANY_BIT_PATTERN` every byte
        /// must already hold an element (0 or 1).
        fn from_bytes_mut(bytes: &mut [u8]) -> &mut [Self];
    }

    macro_rules! plain_old_data {
        ($($t:ty),*) => {$(
            impl Sealed for $t {
                const ANY_BIT_PATTERN: bool = true;
                fn from_bytes(bytes: &[u8]) -> &[Self] {
                    bytemuck::cast_slice(bytes)
                }
                fn from_bytes_mut(bytes: &mut [u8]) -> &mut [Self] {
                    bytemuck::cast_slice_mut(bytes)
                }
            }
        )*};
    }
    plain_old_data!(f32, half::f16, i32);

    impl Sealed for bool {
        const ANY_BIT_PATTERN: bool = false;
        fn from_bytes(bytes: &[u8]) -> &[Self] {
            check_bools(bytes);
            // SAFETY: every byte is 0 or 1 (checked above), the two valid bit patterns of
            // `bool`, whose size and alignment are those of `u8`; the slice keeps the
            // length and borrows `bytes`.
            unsafe { std::slice::from_raw_parts(bytes.as_ptr().cast::<bool>(), bytes.len()) }
        }
        fn from_bytes_mut(bytes: &mut [u8]) -> &mut [Self] {
            check_bools(bytes);
            // SAFETY: as in `from_bytes`; the unique borrow of `bytes` moves to the result,
            // through which only valid `bool` values can be written.
            unsafe { std::slice::from_raw_parts_mut(bytes.as_mut_ptr().cast::<bool>(), bytes.len()) }
        }
    }

    /// Panics unless every byte is 0 or 1. A bool storage is only ever written through
    /// `&mut [bool]` or zeroed, so this never fires; it keeps the views above sound without
    /// relying on that. One OR over the bytes, which vectorizes (an early exit would not).
    fn check_bools(bytes: &[u8]) {
        let any_bits = bytes.iter().fold(0u8, |acc, &b| acc | b);
        assert!(any_bits <= 1, "a bool buffer holds a byte other than 0 and 1");
    }
}

/// A Rust type that can be a tensor element: `f32`, `half::f16`, `i32` or `bool`.
///
/// Sealed: tapeflow's kernels are written for exactly these four types.
pub trait Element:
    sealed::Sealed + bytemuck::NoUninit + bytemuck::Zeroable + Copy + PartialEq + fmt::Debug + Send + Sync + 'static
{
    /// The dtype of this element type.
    const DTYPE: DType;
    /// Zero of the type.
    const ZERO: Self;
    /// One of the type.
    const ONE: Self;
    /// Converts to f64 exactly (every f32, f16 and i32 value is an f64 value; `true` is 1).
    fn to_f64(self) -> f64;
    /// Converts from f64 with the type's own rounding: nearest for floats; for `i32`,
    /// truncation toward zero, with NaN and out-of-range values giving `i32::MIN`
    /// (what TensorFlow's cast does on x86); for `bool`, `value != 0` (NaN is true).
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

impl Element for bool {
    const DTYPE: DType = DType::Bool;
    const ZERO: Self = false;
    const ONE: Self = true;
    fn to_f64(self) -> f64 {
        f64::from(u8::from(self))
    }
    fn from_f64(value: f64) -> Self {
        value != 0.0
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
        assert_eq!(DType::Bool.to_string(), "bool");
        assert_eq!(DType::Bool.size_in_bytes(), 1);
        assert!(!DType::Bool.is_float());
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

    #[test]
    fn bool_converts_as_tensorflow_casts() {
        assert!(!bool::from_f64(0.0) && !bool::from_f64(-0.0));
        assert!(
            bool::from_f64(0.5) && bool::from_f64(-3.0) && bool::from_f64(f64::NAN) && bool::from_f64(f64::INFINITY)
        );
        assert_eq!((true.to_f64(), false.to_f64()), (1.0, 0.0));
    }
}
