//! Sliding-window geometry shared by convolution and pooling: TensorFlow's `SAME` and
//! `VALID` padding arithmetic, per spatial axis.
//!
//! For an input of length `n`, a window of `k` taps `d` apart (effective extent
//! `e = (k - 1)·d + 1`) moved by stride `s`:
//! - `VALID`: `out = (n - e) / s + 1` windows that lie wholly inside the input (none fits
//!   when `n < e`: TensorFlow's error, an `Err` here), no padding;
//! - `SAME`: `out = ceil(n / s)`; the padding needed, `max((out - 1)·s + e - n, 0)`, goes
//!   half before and the odd element after (TensorFlow's `GetWindowedOutputSize`).

use tapeflow_dtype::{Error, Result};

/// TensorFlow's padding modes for windowed ops (`padding="SAME"` / `"VALID"`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Padding {
    /// Zero-pad so that `out = ceil(n / stride)`; windows centred as TensorFlow centres them.
    Same,
    /// No padding: only windows wholly inside the input.
    Valid,
}

impl Padding {
    /// TensorFlow's spelling (`"SAME"`, `"VALID"`), for messages.
    pub fn name(self) -> &'static str {
        match self {
            Padding::Same => "SAME",
            Padding::Valid => "VALID",
        }
    }
}

/// One spatial axis of a windowed op.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct AxisWindow {
    /// Input length.
    pub input: usize,
    /// Taps in the window.
    pub taps: usize,
    /// Step between windows.
    pub stride: usize,
    /// Step between taps (1: contiguous).
    pub dilation: usize,
    /// Output length.
    pub output: usize,
    /// Padding before the first input element (the element at output `o`, tap `t` reads
    /// input `o·stride + t·dilation - pad_before`, when that lies in `0..input`).
    pub pad_before: usize,
}

impl AxisWindow {
    /// The geometry of one axis, or an `Err` naming `op` (strides, taps and dilations must be
    /// ≥ 1; a `VALID` window must fit the input; the window's extent and, with `SAME`, the
    /// end of the last window must fit a `usize`, so that [`source`](Self::source) and
    /// [`valid_taps`](Self::valid_taps) never overflow).
    pub fn new(
        op: &'static str,
        axis: &str,
        input: usize,
        taps: usize,
        stride: usize,
        dilation: usize,
        padding: Padding,
    ) -> Result<Self> {
        let invalid = |reason: String| Error::InvalidArgument { op, reason };
        if taps == 0 || stride == 0 || dilation == 0 {
            return Err(invalid(format!(
                "{axis}: window size {taps}, stride {stride} and dilation {dilation} must all be at least 1"
            )));
        }
        let extent = (taps - 1)
            .checked_mul(dilation)
            .and_then(|e| e.checked_add(1))
            .ok_or_else(|| invalid(format!("{axis}: window of {taps} taps with dilation {dilation} overflows")))?;
        let (output, pad_before) = match padding {
            Padding::Valid => {
                if input < extent {
                    return Err(invalid(format!(
                        "{axis}: a VALID window of extent {extent} does not fit an input of size {input}"
                    )));
                }
                ((input - extent) / stride + 1, 0)
            }
            Padding::Same => {
                let output = input.div_ceil(stride);
                // (out − 1)·s < n cannot overflow, but the last window's end can: the
                // kernels index up to `o·stride + t·dilation`, which must be representable.
                let end = (output.saturating_sub(1) * stride).checked_add(extent).ok_or_else(|| {
                    invalid(format!(
                        "{axis}: a SAME window of extent {extent} at stride {stride} over an input of size {input} overflows"
                    ))
                })?;
                (output, end.saturating_sub(input) / 2)
            }
        };
        Ok(AxisWindow { input, taps, stride, dilation, output, pad_before })
    }

    /// The input element that output `o`'s tap `t` reads, `None` when it falls in the padding.
    #[inline]
    pub fn source(&self, o: usize, t: usize) -> Option<usize> {
        (o * self.stride + t * self.dilation).checked_sub(self.pad_before).filter(|&i| i < self.input)
    }

    /// The taps of output `o` that read inside the input, as a half-open range `t0..t1`
    /// (taps read increasing input positions, so the valid ones are contiguous).
    #[inline]
    pub fn valid_taps(&self, o: usize) -> (usize, usize) {
        let start = o * self.stride;
        // First tap with start + t·d ≥ pad_before.
        let t0 = self.pad_before.saturating_sub(start).div_ceil(self.dilation);
        // Taps with start + t·d - pad_before < input.
        let limit = self.input + self.pad_before;
        let t1 = if start >= limit { 0 } else { (limit - start).div_ceil(self.dilation).min(self.taps) };
        (t0.min(t1), t1)
    }
}

/// Elements of `dims`: 0 when any dimension is (`[2^62, 4, 4, 0]` must not overflow). The
/// product saturates: a part of an empty tensor's dimensions (the row length of an input
/// `[0, 0, 2^64 − 1, 3]`) may exceed `usize`, and every buffer that such a length would
/// walk is empty; a part of a non-empty tensor's dimensions is at most its element count.
pub(crate) fn count(dims: &[usize]) -> usize {
    if dims.contains(&0) { 0 } else { dims.iter().fold(1usize, |n, &d| n.saturating_mul(d)) }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn window(n: usize, k: usize, s: usize, d: usize, p: Padding) -> AxisWindow {
        AxisWindow::new("test", "height", n, k, s, d, p).unwrap()
    }

    #[test]
    fn valid_and_same_match_tensorflow() {
        // tf.nn.conv2d(.., [1, 7, 7, 1], k 3, stride 2, SAME) -> 4, padding 1 before, 1 after.
        let w = window(7, 3, 2, 1, Padding::Same);
        assert_eq!((w.output, w.pad_before), (4, 1));
        // Even padding total split with the odd one after: n 6, k 4, s 1 -> pad 3 = 1 + 2.
        let w = window(6, 4, 1, 1, Padding::Same);
        assert_eq!((w.output, w.pad_before), (6, 1));
        // Stride larger than the window: no padding needed.
        let w = window(5, 1, 3, 1, Padding::Same);
        assert_eq!((w.output, w.pad_before), (2, 0));
        let w = window(8, 3, 1, 2, Padding::Valid);
        assert_eq!((w.output, w.pad_before), (4, 0));
        let w = window(5, 2, 1, 1, Padding::Valid);
        assert_eq!(w.output, 4);
        assert!(AxisWindow::new("t", "h", 4, 3, 1, 2, Padding::Valid).is_err());
        assert!(AxisWindow::new("t", "h", 4, 3, 0, 1, Padding::Same).is_err());
        assert!(AxisWindow::new("t", "h", 4, 0, 1, 1, Padding::Same).is_err());
        assert!(AxisWindow::new("t", "h", 4, 3, 1, 0, Padding::Same).is_err());
        assert!(AxisWindow::new("t", "h", 4, usize::MAX, 1, 2, Padding::Same).is_err());
        let w = window(0, 3, 1, 1, Padding::Same);
        assert_eq!(w.output, 0);
    }

    #[test]
    fn overflowing_geometry_is_an_err() {
        let huge = usize::MAX;
        // Extents past usize::MAX, both paddings.
        for p in [Padding::Same, Padding::Valid] {
            assert!(AxisWindow::new("t", "h", 4, huge, 1, 1, p).is_err());
            assert!(AxisWindow::new("t", "h", 4, 3, 1, huge / 2 + 1, p).is_err());
            assert!(AxisWindow::new("t", "h", 4, huge / 2, 1, 3, p).is_err());
        }
        // An extent that fits exactly, but not added to the last window's start (SAME).
        let err = AxisWindow::new("conv2d", "width", 4, 3, 1, huge / 2, Padding::Same).unwrap_err().to_string();
        assert!(err.contains("conv2d") && err.contains("width") && err.contains("overflows"), "{err}");
        assert!(AxisWindow::new("t", "h", huge, 2, 1, 1, Padding::Same).is_err());
        // The same window is too large for a VALID input: an Err of its own.
        assert!(AxisWindow::new("t", "h", 4, 3, 1, huge / 2, Padding::Valid).is_err());
        // Huge strides are fine: one window, whose taps never leave the representable range.
        let w = window(4, 3, huge, 1, Padding::Same);
        assert_eq!((w.output, w.pad_before), (1, 0));
        assert_eq!(w.valid_taps(0), (0, 3));
        let w = window(huge - 1, 1, huge, 1, Padding::Valid);
        assert_eq!(w.output, 1);
        // The largest SAME extent that fits: every tap's position is computable.
        let w = window(4, 2, 1, huge - 4, Padding::Same);
        for o in 0..w.output {
            let (t0, t1) = w.valid_taps(o);
            assert!(t0 <= t1 && t1 <= 2);
            for t in 0..2 {
                let _ = w.source(o, t);
            }
        }
    }

    #[test]
    fn valid_taps_agree_with_source() {
        for n in 0..9 {
            for k in 1..5 {
                for s in 1..4 {
                    for d in 1..3 {
                        for p in [Padding::Same, Padding::Valid] {
                            let Ok(w) = AxisWindow::new("t", "h", n, k, s, d, p) else { continue };
                            for o in 0..w.output {
                                let (t0, t1) = w.valid_taps(o);
                                let want: Vec<usize> = (0..k).filter(|&t| w.source(o, t).is_some()).collect();
                                assert_eq!((t0..t1).collect::<Vec<_>>(), want, "{w:?} o {o}");
                            }
                        }
                    }
                }
            }
        }
    }
}
