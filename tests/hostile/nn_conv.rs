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
