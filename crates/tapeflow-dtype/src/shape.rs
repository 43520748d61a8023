//! Tensor shapes.

use std::fmt;

use smallvec::SmallVec;

/// The dimensions of a tensor, outermost first. Up to four dimensions are stored inline,
/// so building the shape of a small tensor allocates nothing, and copying it (every tensor
/// clone does) is a plain 40-byte copy: a `SmallVec`'s clone went through a length-dependent
/// slice copy, a memcpy call that showed among a scalar op's top costs.
#[derive(Clone)]
pub struct Shape(Dims);

#[derive(Clone)]
enum Dims {
    /// `dims[..len]` are the dimensions; the rest are zero.
    Inline {
        len: u8,
        dims: [usize; INLINE],
    },
    Heap(Box<[usize]>),
}

/// Dimensions stored without allocation.
const INLINE: usize = 4;

impl Default for Shape {
    fn default() -> Self {
        Shape::scalar()
    }
}

impl PartialEq for Shape {
    fn eq(&self, other: &Self) -> bool {
        self.dims() == other.dims()
    }
}

impl Eq for Shape {}

impl std::hash::Hash for Shape {
    fn hash<H: std::hash::Hasher>(&self, state: &mut H) {
        self.dims().hash(state);
    }
}

impl Shape {
    /// The shape of a scalar: no dimensions.
    pub fn scalar() -> Self {
        Shape(Dims::Inline { len: 0, dims: [0; INLINE] })
    }

    /// A shape from its dimensions.
    pub fn new(dims: &[usize]) -> Self {
        if dims.len() <= INLINE {
            let mut inline = [0; INLINE];
            inline[..dims.len()].copy_from_slice(dims);
            // At most INLINE (4) dimensions: the length fits a byte.
            Shape(Dims::Inline { len: dims.len() as u8, dims: inline })
        } else {
            Shape(Dims::Heap(dims.into()))
        }
    }

    /// The dimensions.
    pub fn dims(&self) -> &[usize] {
        match &self.0 {
            Dims::Inline { len, dims } => &dims[..usize::from(*len)],
            Dims::Heap(dims) => dims,
        }
    }

    /// Number of dimensions.
    pub fn rank(&self) -> usize {
        self.dims().len()
    }

    /// Number of elements (1 for a scalar, 0 if any dimension is 0). Saturates at
    /// `usize::MAX` for a shape no tensor can have; see [`checked_num_elements`](Self::checked_num_elements).
    pub fn num_elements(&self) -> usize {
        self.checked_num_elements().unwrap_or(usize::MAX)
    }

    /// Number of elements, or `None` if the product overflows `usize`.
    pub fn checked_num_elements(&self) -> Option<usize> {
        // A zero dimension empties the shape whatever the others are ([usize::MAX, 2, 0]).
        if self.dims().contains(&0) {
            return Some(0);
        }
        self.dims().iter().try_fold(1usize, |acc, &d| acc.checked_mul(d))
    }

    /// Number of elements if a buffer of them in `dtype` can exist: the byte size must fit
    /// `isize::MAX`, Rust's limit for one allocation. `None` otherwise (`[usize::MAX, 2]`).
    pub fn checked_len_for(&self, dtype: crate::DType) -> Option<usize> {
        let n = self.checked_num_elements()?;
        n.checked_mul(dtype.size_in_bytes()).filter(|&bytes| bytes <= isize::MAX as usize).map(|_| n)
    }

    /// Row-major (C order) strides in elements.
    pub fn strides(&self) -> SmallVec<[usize; 4]> {
        let mut strides: SmallVec<[usize; 4]> = SmallVec::from_elem(1, self.dims().len());
        for i in (0..self.dims().len().saturating_sub(1)).rev() {
            // Saturating: only a tensor with no elements (a zero dimension) can have a
            // shape whose strides overflow, and its strides are never used to index.
            strides[i] = strides[i + 1].saturating_mul(self.dims()[i + 1]);
        }
        strides
    }

    /// Resolves a possibly negative axis against this rank (`-1` is the last axis).
    pub fn resolve_axis(&self, axis: isize) -> Option<usize> {
        let rank = self.dims().len() as isize;
        let resolved = if axis < 0 { axis + rank } else { axis };
        (0..rank).contains(&resolved).then_some(resolved as usize)
    }
}

impl fmt::Display for Shape {
    /// Prints as TensorFlow prints shapes: `()`, `(3,)`, `(2, 2)`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("(")?;
        for (i, d) in self.dims().iter().enumerate() {
            if i > 0 {
                f.write_str(", ")?;
            }
            write!(f, "{d}")?;
        }
        if self.dims().len() == 1 {
            f.write_str(",")?;
        }
        f.write_str(")")
    }
}

impl fmt::Debug for Shape {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(self, f)
    }
}

impl From<&[usize]> for Shape {
    fn from(dims: &[usize]) -> Self {
        Shape::new(dims)
    }
}

impl From<&Vec<usize>> for Shape {
    fn from(dims: &Vec<usize>) -> Self {
        Shape::new(dims)
    }
}

impl From<Vec<usize>> for Shape {
    fn from(dims: Vec<usize>) -> Self {
        Shape::new(&dims)
    }
}

impl<const N: usize> From<[usize; N]> for Shape {
    fn from(dims: [usize; N]) -> Self {
        Shape::new(&dims)
    }
}

impl<const N: usize> From<&[usize; N]> for Shape {
    fn from(dims: &[usize; N]) -> Self {
        Shape::new(dims)
    }
}

impl From<&Shape> for Shape {
    fn from(shape: &Shape) -> Self {
        shape.clone()
    }
}

impl AsRef<[usize]> for Shape {
    fn as_ref(&self) -> &[usize] {
        self.dims()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn displays_like_tensorflow() {
        assert_eq!(Shape::scalar().to_string(), "()");
        assert_eq!(Shape::from([3]).to_string(), "(3,)");
        assert_eq!(Shape::from([2, 2]).to_string(), "(2, 2)");
    }

    #[test]
    fn strides_are_row_major() {
        assert_eq!(Shape::from([2, 3, 4]).strides().as_slice(), &[12, 4, 1]);
        assert!(Shape::scalar().strides().is_empty());
    }

    #[test]
    fn element_counts_that_cannot_exist_are_none() {
        assert_eq!(Shape::from([usize::MAX, 2]).checked_num_elements(), None);
        assert_eq!(Shape::from([usize::MAX, 2, 0]).checked_num_elements(), Some(0));
        assert_eq!(Shape::from([1 << 62]).checked_len_for(crate::DType::F32), None);
        assert_eq!(Shape::from([1 << 20]).checked_len_for(crate::DType::F16), Some(1 << 20));
    }

    #[test]
    fn negative_axes_count_from_the_end() {
        let s = Shape::from([2, 3]);
        assert_eq!(s.resolve_axis(-1), Some(1));
        assert_eq!(s.resolve_axis(1), Some(1));
        assert_eq!(s.resolve_axis(2), None);
        assert_eq!(s.resolve_axis(-3), None);
    }
}
