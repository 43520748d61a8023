//! The convolutions of `tapeflow::nn` against central differences of f64 references
//! written here from the definition (every product term enumerated from the window
//! arithmetic: nothing shared with the kernels). Each op is bilinear, so its first
//! derivatives are exact up to rounding, and its second derivatives are checked as the
//! first derivatives of its gradients: `∂/∂x ⟨conv(x, w), u⟩` (a function of `w` and `u`)
//! and `∂/∂w ⟨conv(x, w), u⟩` (of `x` and `u`), each computed by an inner tape while the
//! outer one records. Geometries: odd sizes, strides larger than the window, dilations,
//! batch 1, one channel, SAME and VALID.

use proptest::prelude::*;
use proptest::sample::select;
use tapeflow::nn::{self, Padding};

use super::*;

/// One convolution's shape. `out` is the output channels of a full convolution, the
/// multiplier of a depthwise one.
#[derive(Clone, Copy, Debug)]
struct Geo {
    input: [usize; 4],
    taps: [usize; 2],
    out: usize,
    strides: [usize; 2],
    dilations: [usize; 2],
    same: bool,
    depthwise: bool,
}

/// TensorFlow's output size and padding before, from its documented formulas.
fn axis(n: usize, k: usize, s: usize, d: usize, same: bool) -> (usize, usize) {
    let extent = (k - 1) * d + 1;
    if same {
        let out = n.div_ceil(s);
        let total = ((out.max(1) - 1) * s + extent).saturating_sub(n);
        (out, total / 2)
    } else {
        ((n - extent) / s + 1, 0)
    }
}

impl Geo {
    fn padding(&self) -> Padding {
        if self.same { Padding::Same } else { Padding::Valid }
    }
    fn out_channels(&self) -> usize {
        if self.depthwise { self.input[3] * self.out } else { self.out }
    }
    fn filter_dims(&self) -> Vec<usize> {
        vec![self.taps[0], self.taps[1], self.input[3], self.out]
    }
    fn output_dims(&self) -> Vec<usize> {
        let (oh, _) = axis(self.input[1], self.taps[0], self.strides[0], self.dilations[0], self.same);
        let (ow, _) = axis(self.input[2], self.taps[1], self.strides[1], self.dilations[1], self.same);
        vec![self.input[0], oh, ow, self.out_channels()]
    }

    /// Calls `term(x index, filter index, output index)` for every product of the sum.
    fn terms(&self, mut term: impl FnMut(usize, usize, usize)) {
        let [n, h, w, ci] = self.input;
        let (oh, ph) = axis(h, self.taps[0], self.strides[0], self.dilations[0], self.same);
        let (ow, pw) = axis(w, self.taps[1], self.strides[1], self.dilations[1], self.same);
        let co = self.out_channels();
        for b in 0..n {
            for oy in 0..oh {
                for ox in 0..ow {
                    for ky in 0..self.taps[0] {
                        for kx in 0..self.taps[1] {
                            let iy = (oy * self.strides[0] + ky * self.dilations[0]) as isize - ph as isize;
                            let ix = (ox * self.strides[1] + kx * self.dilations[1]) as isize - pw as isize;
                            if iy < 0 || ix < 0 || iy >= h as isize || ix >= w as isize {
                                continue;
                            }
                            let xi = ((b * h + iy as usize) * w + ix as usize) * ci;
                            let yi = ((b * oh + oy) * ow + ox) * co;
                            let tap = (ky * self.taps[1] + kx) * ci;
                            if self.depthwise {
                                for c in 0..ci {
                                    for m in 0..self.out {
                                        term(xi + c, (tap + c) * self.out + m, yi + c * self.out + m);
                                    }
                                }
                            } else {
                                for i in 0..ci {
                                    for o in 0..co {
                                        term(xi + i, (tap + i) * co + o, yi + o);
                                    }
                                }
                            }
                        }
                    }
                }
            }
        }
    }

    /// The convolution of `x` with `w`.
    fn forward(&self, x: &[f64], w: &[f64]) -> (Vec<f64>, Vec<usize>) {
        let dims = self.output_dims();
        let mut y = vec![0.0; numel(&dims)];
        self.terms(|i, j, o| y[o] += x[i] * w[j]);
        (y, dims)
    }

    /// `∂/∂x ⟨conv(x, w), u⟩`.
    fn input_grad(&self, u: &[f64], w: &[f64]) -> (Vec<f64>, Vec<usize>) {
        let mut dx = vec![0.0; numel(&self.input)];
        self.terms(|i, j, o| dx[i] += u[o] * w[j]);
        (dx, self.input.to_vec())
    }

    /// `∂/∂w ⟨conv(x, w), u⟩`.
    fn filter_grad(&self, x: &[f64], u: &[f64]) -> (Vec<f64>, Vec<usize>) {
        let dims = self.filter_dims();
        let mut dw = vec![0.0; numel(&dims)];
        self.terms(|i, j, o| dw[j] += x[i] * u[o]);
        (dw, dims)
    }

    /// The op under test.
    fn run(&self, x: &Tensor, w: &Tensor) -> Result<Tensor> {
        if self.depthwise {
            nn::depthwise_conv2d(x, w, self.strides, self.padding())
        } else {
            nn::conv2d(x, w, self.strides, self.padding(), self.dilations)
        }
    }
}

fn geometries(depthwise: bool) -> impl Strategy<Value = Geo> {
    let g = |input, taps, out, strides, dilations, same| Geo { input, taps, out, strides, dilations, same, depthwise };
    let d = |full: [usize; 2]| if depthwise { [1, 1] } else { full };
    select(vec![
        g([2, 5, 5, 2], [3, 3], 2, [1, 1], [1, 1], true),
        g([1, 7, 6, 1], [3, 2], 3, [2, 2], d([1, 1]), true), // batch 1, one channel, odd sizes
        g([1, 6, 7, 2], [2, 2], 2, [3, 3], [1, 1], false),   // stride > window
        g([2, 7, 7, 1], [3, 3], 1, [1, 1], d([2, 2]), false), // dilation (depthwise: plain)
        g([1, 5, 6, 3], [2, 3], 2, [1, 2], d([2, 1]), true),
        g([1, 4, 5, 2], [1, 1], 3, [2, 1], [1, 1], false),
    ])
}

fn case(depthwise: bool) -> impl Strategy<Value = (Geo, Vec<f64>, Vec<f64>, u64)> {
    geometries(depthwise).prop_flat_map(|g| {
        let v = |n: usize| proptest::collection::vec(-1.0f64..1.0, n);
        (Just(g), v(numel(&g.input)), v(numel(&g.filter_dims())), any::<u64>())
    })
}

fn both(name: &str, check: impl Fn(Prec) -> Check) -> Check {
    check(Prec::F32).map_err(|e| TestCaseError::fail(format!("{name} float32: {e}")))?;
    check(Prec::F16).map_err(|e| TestCaseError::fail(format!("{name} float16: {e}")))
}

/// `∂/∂(wrt) ⟨op(x, w), u⟩` by an inner tape, while any outer tape records.
fn inner_gradient(g: &Geo, x: &Tensor, w: &Tensor, u: &Tensor, wrt_input: bool) -> Result<Tensor> {
    let tape = GradientTape::new();
    let loss = tape.record(|| {
        tape.watch(&[x.clone(), w.clone()][..]);
        (g.run(x, w)? * u)?.sum_all()
    })?;
    let grads = tape.gradients(&[&loss], &[if wrt_input { x } else { w }])?;
    grads
        .into_iter()
        .next()
        .flatten()
        .ok_or_else(|| Error::InvalidArgument { op: "test", reason: "no gradient".into() })
}

fn check_all(name: &str, g: Geo, x: &[f64], w: &[f64], seed: u64) -> Check {
    let dims = (g.input.to_vec(), g.filter_dims(), g.output_dims());
    let u = upstream(seed ^ 0x5eed, numel(&dims.2), Prec::F32);
    let (xi, wi, ui) = ((x.to_vec(), dims.0.clone()), (w.to_vec(), dims.1.clone()), (u.clone(), dims.2.clone()));
    both(name, |p| {
        check_vjp(name, p, &[xi.clone(), wi.clone()], seed, |t| g.run(&t[0], &t[1]), |xs| g.forward(&xs[0], &xs[1]))
    })?;
    // Second order: the input gradient as a function of (w, u), the filter gradient of (x, u).
    both(name, |p| {
        let x = p.tensor(&x.iter().map(|&v| p.round(v)).collect::<Vec<_>>(), &dims.0);
        check_vjp(
            &format!("{name} d/dx"),
            p,
            &[wi.clone(), ui.clone()],
            seed,
            |t| inner_gradient(&g, &x, &t[0], &t[1], true),
            |xs| g.input_grad(&xs[1], &xs[0]),
        )
    })?;
    both(name, |p| {
        let w = p.tensor(&w.iter().map(|&v| p.round(v)).collect::<Vec<_>>(), &dims.1);
        check_vjp(
            &format!("{name} d/dw"),
            p,
            &[xi.clone(), ui.clone()],
            seed,
            |t| inner_gradient(&g, &t[0], &w, &t[1], false),
            |xs| g.filter_grad(&xs[0], &xs[1]),
        )
    })
}

proptest! {
    #![proptest_config(config())]

    #[test]
    fn conv2d_gradients_to_second_order_match_central_differences((g, x, w, seed) in case(false)) {
        check_all("conv2d", g, &x, &w, seed)?;
    }

    #[test]
    fn depthwise_conv2d_gradients_to_second_order_match_central_differences((g, x, w, seed) in case(true)) {
        check_all("depthwise_conv2d", g, &x, &w, seed)?;
    }

    /// conv2d_transpose(dy, w, shape) is the input gradient of the convolution of `shape`:
    /// its own gradients (first order; its second order is conv2d's above).
    #[test]
    fn conv2d_transpose_gradients_match_central_differences((g, _x, w, seed) in case(false)) {
        let g = Geo { dilations: [1, 1], ..g };
        let dy_dims = g.output_dims();
        let dy: Vec<f64> = upstream(seed, numel(&dy_dims), Prec::F32);
        let shape = g.input.to_vec();
        both("conv2d_transpose", |p| check_vjp(
            "conv2d_transpose", p, &[(dy.clone(), dy_dims.clone()), (w.clone(), g.filter_dims())], seed,
            |t| nn::conv2d_transpose(&t[0], &t[1], shape.clone(), g.strides, g.padding()),
            |xs| g.input_grad(&xs[0], &xs[1]),
        ))?;
    }
}
