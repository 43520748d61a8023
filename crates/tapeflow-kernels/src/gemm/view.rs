//! The GEMM's operand view (`MatRef`: any strides, so transposed operands and batch members
//! are read in place) and its shape error.

use std::fmt;

/// A read-only `rows × cols` matrix view: element `(i, j)` is `data[i·row_stride + j·col_stride]`.
#[derive(Clone, Copy, Debug)]
pub struct MatRef<'a, T> {
    pub(super) data: &'a [T],
    pub(super) rows: usize,
    pub(super) cols: usize,
    pub(super) row_stride: usize,
    pub(super) col_stride: usize,
}

impl<'a, T: Copy> MatRef<'a, T> {
    /// A strided view, or `None` if some element would lie outside `data` (or the index
    /// arithmetic overflows). An empty view (`rows` or `cols` 0) is always valid.
    pub fn new(data: &'a [T], rows: usize, cols: usize, row_stride: usize, col_stride: usize) -> Option<Self> {
        if rows > 0 && cols > 0 {
            let last = (rows - 1).checked_mul(row_stride)?.checked_add((cols - 1).checked_mul(col_stride)?)?;
            if last >= data.len() {
                return None;
            }
        }
        Some(MatRef { data, rows, cols, row_stride, col_stride })
    }

    /// A row-major `rows × cols` view of `data[.. rows·cols]`.
    pub fn row_major(data: &'a [T], rows: usize, cols: usize) -> Option<Self> {
        Self::new(data, rows, cols, cols, 1)
    }

    /// The `rows × cols` operand `op(X)` of a row-major `X` in `data`: `X` itself
    /// (`rows × cols`) or, when `transposed`, the transpose of a `cols × rows` `X`: the
    /// `transpose_a`/`transpose_b` convention of matmul.
    pub fn op(data: &'a [T], rows: usize, cols: usize, transposed: bool) -> Option<Self> {
        if transposed { Self::row_major(data, cols, rows).map(Self::t) } else { Self::row_major(data, rows, cols) }
    }

    /// The transposed view (no copy).
    pub fn t(self) -> Self {
        MatRef {
            data: self.data,
            rows: self.cols,
            cols: self.rows,
            row_stride: self.col_stride,
            col_stride: self.row_stride,
        }
    }

    /// Number of rows.
    pub fn rows(&self) -> usize {
        self.rows
    }

    /// Number of columns.
    pub fn cols(&self) -> usize {
        self.cols
    }

    /// Columns `..j` and `j..` (`j ≤ cols`) as two views.
    pub(super) fn split_cols(&self, j: usize) -> (Self, Self) {
        let j = j.min(self.cols);
        let right = self.data.get(j * self.col_stride..).filter(|_| j < self.cols).unwrap_or(&[]);
        (MatRef { cols: j, ..*self }, MatRef { data: right, cols: self.cols - j, ..*self })
    }

    /// Rows `..i` and `i..` (`i ≤ rows`) as two views.
    pub(super) fn split_rows(&self, i: usize) -> (Self, Self) {
        let (top, bottom) = self.t().split_cols(i);
        (top.t(), bottom.t())
    }

    /// Element `(i, j)`; `i < rows` and `j < cols` (in range by construction).
    #[inline]
    pub(super) fn get(&self, i: usize, j: usize) -> T {
        self.data[i * self.row_stride + j * self.col_stride]
    }
}

/// Operand shapes that do not fit together.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum GemmError {
    /// `a.cols() != b.rows()`.
    InnerDims {
        /// Columns of A.
        a_cols: usize,
        /// Rows of B.
        b_rows: usize,
    },
    /// An operand's elements do not all lie inside its data.
    OutOfBounds,
    /// `c.len() != a.rows() · b.cols()`.
    OutputLen {
        /// Required length.
        expected: usize,
        /// Given length.
        got: usize,
    },
}

impl fmt::Display for GemmError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            GemmError::InnerDims { a_cols, b_rows } => {
                write!(f, "gemm: A has {a_cols} columns but B has {b_rows} rows")
            }
            GemmError::OutOfBounds => write!(f, "gemm: an operand view reaches past its data"),
            GemmError::OutputLen { expected, got } => write!(f, "gemm: C has {got} elements, expected {expected}"),
        }
    }
}

impl std::error::Error for GemmError {}
