//! The convolutions of `tapeflow::nn` in the hostile generator: images and filters of
//! random rank, size (0 included), dtype and channel count (mostly fitting, often not),
//! strides and dilations 0–3, both paddings, VALID windows larger than the image, and
//! `conv2d_transpose` output shapes that the forward convolution does not map onto its
//! input.

use tapeflow::nn::{self, Padding};

use super::*;

/// The ops these cases call, each of which must succeed and differentiate somewhere.
pub(crate) const OPS: [&str; 3] = ["conv2d", "conv2d_transpose", "depthwise_conv2d"];

impl Hostile {
    /// Every convolution once.
    pub(crate) fn conv_cases(&mut self) {
        self.conv2d_case();
        self.conv2d_transpose_case();
        self.depthwise_case();
    }

    /// Dims of an NHWC image: mostly rank 4 with small sides, sometimes anything.
    fn image_dims(&mut self) -> Vec<usize> {
        if self.rng.one_in(8) {
            return self.dims();
        }
        vec![self.rng.below(3), self.rng.below(7), self.rng.below(7), 1 + self.rng.below(3)]
    }

    /// Dims of a filter for `channels` input channels: mostly fitting, sometimes not.
    fn filter_dims(&mut self, channels: usize) -> Vec<usize> {
        if self.rng.one_in(8) {
            return self.dims();
        }
        let channels = if self.rng.one_in(6) { self.rng.below(4) } else { channels };
        vec![1 + self.rng.below(3), 1 + self.rng.below(3), channels, 1 + self.rng.below(3)]
    }

    /// A stride or dilation pair: mostly 1–2, sometimes 0 or 3.
    fn pair(&mut self) -> [usize; 2] {
        let mut one = || if self.rng.one_in(10) { self.rng.pick(&[0, 3]) } else { 1 + self.rng.below(2) };
        [one(), one()]
    }

    fn padding(&mut self) -> Padding {
        if self.rng.one_in(2) { Padding::Same } else { Padding::Valid }
    }

    /// An image and a filter of one dtype (mostly).
    fn image_and_filter(&mut self) -> (Input, Input) {
        let dtype = self.dtype();
        let dims = self.image_dims();
        let x = self.tensor(dtype, &dims);
        let fd = self.filter_dims(dims.get(3).copied().unwrap_or(1));
        let fdtype = if self.rng.one_in(10) { self.dtype() } else { dtype };
        let w = self.tensor(fdtype, &fd);
        (self.input(x), self.input(w))
    }

    fn conv2d_case(&mut self) {
        let (x, w) = self.image_and_filter();
        let (strides, padding, dilations) = (self.pair(), self.padding(), self.pair());
        let describe =
            || format!("conv2d({}, {}, {strides:?}, {padding:?}, {dilations:?})", x.describe(), w.describe());
        let inputs = [x.clone(), w.clone()];
        self.differentiate("conv2d", &inputs, &describe, || nn::conv2d(&x, &w, strides, padding, dilations));
    }

    fn depthwise_case(&mut self) {
        let (x, w) = self.image_and_filter();
        let (strides, padding) = (self.pair(), self.padding());
        let describe = || format!("depthwise_conv2d({}, {}, {strides:?}, {padding:?})", x.describe(), w.describe());
        let inputs = [x.clone(), w.clone()];
        self.differentiate("depthwise_conv2d", &inputs, &describe, || nn::depthwise_conv2d(&x, &w, strides, padding));
    }

    fn conv2d_transpose_case(&mut self) {
        let dtype = self.dtype();
        // An output shape, and (mostly) the input its forward convolution gives.
        let out = self.image_dims();
        let fd = self.filter_dims(out.get(3).copied().unwrap_or(1));
        let (strides, padding) = (self.pair(), self.padding());
        let side = |n: usize, k: usize, s: usize| match padding {
            Padding::Same => n.div_ceil(s.max(1)),
            Padding::Valid => n.saturating_sub(k.saturating_sub(1)).div_ceil(s.max(1)),
        };
        let mut input = match (out.as_slice(), fd.as_slice()) {
            ([n, h, w, _], [kh, kw, _, cin]) => vec![*n, side(*h, *kh, strides[0]), side(*w, *kw, strides[1]), *cin],
            _ => self.image_dims(),
        };
        if self.rng.one_in(6) && !input.is_empty() {
            let last = input.len() - 1;
            let axis = self.rng.below(last + 1);
            input[axis] += 1;
        }
        let x = self.tensor(dtype, &input);
        let w = self.tensor(dtype, &fd);
        let (x, w) = (self.input(x), self.input(w));
        let describe =
            || format!("conv2d_transpose({}, {}, {out:?}, {strides:?}, {padding:?})", x.describe(), w.describe());
        let inputs = [x.clone(), w.clone()];
        self.differentiate("conv2d_transpose", &inputs, &describe, || {
            nn::conv2d_transpose(&x, &w, out.clone(), strides, padding)
        });
    }
}

/// `f` must not panic: an `Err` naming `op` (returned as its message), or a value whose
/// gradients with respect to `inputs` (the sum's) are computed without panicking (`None`).
fn no_panic_on_geometry(op: &str, what: &str, inputs: &[&Variable], f: impl Fn() -> Result<Tensor>) -> Option<String> {
    let run = || -> Result<Tensor> {
        let tape = GradientTape::new();
        let y = tape.record(|| f()?.sum_all())?;
        tape.gradients(&[&y], inputs)?;
        Ok(y)
    };
    match std::panic::catch_unwind(std::panic::AssertUnwindSafe(run)) {
        Ok(Ok(_)) => None,
        Ok(Err(e)) => {
            let msg = e.to_string();
            assert!(msg.contains(op), "{what}: the error does not name {op}: {msg}");
            Some(msg)
        }
        Err(payload) => panic!("{what} panicked: {}", panic_text(payload)),
    }
}

/// Window geometry at the edge of `usize` (dilations and strides near `usize::MAX`, filters
/// of 2^62 taps with no elements): an `Err` naming the op (the window's extent or the end of
/// the last SAME window overflows) or a result, never an arithmetic-overflow panic. Huge
/// strides are valid (one window per axis) and differentiate, through the strided scatter.
#[test]
fn overflowing_window_geometry_is_an_err() {
    let huge = usize::MAX;
    let x = Variable::new(Tensor::from_vec((0..32).map(|i| i as f32).collect::<Vec<_>>(), [2, 4, 4, 1]).unwrap());
    let w = Variable::new(Tensor::from_vec(vec![0.5f32; 9], [3, 3, 1, 1]).unwrap());
    let both = [&x, &w];
    for padding in [Padding::Same, Padding::Valid] {
        for dilations in [[huge, 1], [1, huge / 2], [huge / 2 + 1, 1], [1, huge - 1]] {
            let what = format!("conv2d(x [2, 4, 4, 1], w [3, 3, 1, 1], dilations {dilations:?}, {padding:?})");
            let err = no_panic_on_geometry("conv2d", &what, &both, || nn::conv2d(&x, &w, [1, 1], padding, dilations));
            assert!(err.is_some(), "{what} succeeded");
        }
        // Dilation 2^62: only the centre tap reads the 4 × 4 image under SAME.
        let what = format!("conv2d(.., dilations [2^62, 1], {padding:?})");
        let err = no_panic_on_geometry("conv2d", &what, &both, || nn::conv2d(&x, &w, [1, 1], padding, [1 << 62, 1]));
        assert_eq!(err.is_none(), padding == Padding::Same, "{what}: {err:?}");
        // (Stride 4 at width 4: one window under both paddings, as the others.)
        for strides in [[huge, 1], [1, huge], [huge, huge], [1 << 62, 4]] {
            let what = format!("conv2d(.., strides {strides:?}, {padding:?})");
            let err = no_panic_on_geometry("conv2d", &what, &both, || nn::conv2d(&x, &w, strides, padding, [1, 1]));
            assert!(err.is_none(), "{what}: {err:?}");
            let what = format!("depthwise_conv2d(.., strides {strides:?}, {padding:?})");
            let err = no_panic_on_geometry("depthwise_conv2d", &what, &both, || {
                nn::depthwise_conv2d(&x, &w, strides, padding)
            });
            assert!(err.is_none(), "{what}: {err:?}");
            // The transposed convolution onto [2, 4, 4, 1]: its input has the forward's shape
            // (one window along a huge stride, ceil(4 / s) or (4 − 3) / s + 1 along another).
            let side = |s: usize| if padding == Padding::Same { 4usize.div_ceil(s) } else { 1 / s + 1 };
            let dims = [2, side(strides[0]), side(strides[1]), 1];
            let dy = Variable::new(Tensor::from_vec(vec![1.0f32; dims.iter().product()], dims).unwrap());
            let what = format!("conv2d_transpose(dy {dims:?}, .., [2, 4, 4, 1], strides {strides:?}, {padding:?})");
            let err = no_panic_on_geometry("conv2d_transpose", &what, &[&dy, &w], || {
                nn::conv2d_transpose(&dy, &w, [2usize, 4, 4, 1], strides, padding)
            });
            assert!(err.is_none(), "{what}: {err:?}");
        }
        // Filters of 2^62 × 2^62 taps with no elements (0 output channels) and a huge
        // dilation: the extent overflows.
        let empty = Variable::new(Tensor::from_vec(Vec::<f32>::new(), [1 << 62, 1 << 62, 1, 0]).unwrap());
        let what = format!("conv2d(.., w [2^62, 2^62, 1, 0], dilations [4, 4], {padding:?})");
        let err =
            no_panic_on_geometry("conv2d", &what, &[&x, &empty], || nn::conv2d(&x, &empty, [1, 1], padding, [4, 4]));
        assert!(err.is_some(), "{what} succeeded");
        // The same filters transposed onto an empty image of height usize::MAX: under SAME
        // the patch length 2^62 · 2^62 overflows.
        let what = format!("conv2d_transpose(dy [0, 1, 4, 0], w [2^62, 2^62, 1, 0], [0, huge, 4, 1], {padding:?})");
        let dy = Variable::new(Tensor::from_vec(Vec::<f32>::new(), [0, 1, 4, 0]).unwrap());
        let err = no_panic_on_geometry("conv2d_transpose", &what, &[&dy, &empty], || {
            nn::conv2d_transpose(&dy, &empty, [0, huge, 4, 1], [huge, 1], padding)
        });
        // (VALID fails first: the window does not fit the 4 columns.)
        assert!(err.is_some_and(|e| padding == Padding::Valid || e.contains("overflows")), "{what}");
        // Empty images whose pixel counts overflow any product, under a 1 × 1 filter.
        for dims in [[1, 1 << 40, 1 << 40, 0], [1 << 40, 1 << 40, 1, 0], [0, huge, huge, 1]] {
            let image = Variable::new(Tensor::from_vec(Vec::<f32>::new(), dims).unwrap());
            let one = Variable::new(Tensor::from_vec(vec![1.0f32; dims[3]], [1, 1, dims[3], 1]).unwrap());
            let what = format!("conv2d(x {dims:?}, w [1, 1, {}, 1], {padding:?})", dims[3]);
            no_panic_on_geometry("conv2d", &what, &[&image, &one], || {
                nn::conv2d(&image, &one, [1, 1], padding, [1, 1])
            });
            let what = format!("depthwise_conv2d(x {dims:?}, w [1, 1, {}, 1], {padding:?})", dims[3]);
            no_panic_on_geometry("depthwise_conv2d", &what, &[&image, &one], || {
                nn::depthwise_conv2d(&image, &one, [1, 1], padding)
            });
        }
    }
}
