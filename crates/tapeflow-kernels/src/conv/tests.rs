//! The convolution kernels against `reference::conv`, at every instruction-set level:
//! odd sizes, strides larger than the window, dilations, SAME and VALID, batch 1, one
//! channel, empty batches, multipliers; and the same bits on one thread and on two.
//!
//! Tolerance: `|got − want| ≤ 1e-5 · (taps + 1) · max|a| · max|b|` per element (the kernels
//! sum in f32 in another order than the f64 reference; each element is a sum of at most
//! `taps` products).

use super::*;
use crate::reference::conv as reference;

/// Deterministic values in [-1, 1).
fn values(len: usize, seed: u64) -> Vec<f32> {
    let mut s = seed.wrapping_mul(0x9E37_79B9_7F4A_7C15).wrapping_add(7);
    (0..len)
        .map(|_| {
            s = s.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
            ((s >> 40) as f32 / (1u64 << 24) as f32) * 2.0 - 1.0
        })
        .collect()
}

fn assert_close(got: &[f32], want: &[f32], terms: usize, what: &str) {
    assert_eq!(got.len(), want.len(), "{what}: length");
    let tol = 1e-5 * (terms + 1) as f32;
    for (i, (g, w)) in got.iter().zip(want).enumerate() {
        assert!((g - w).abs() <= tol, "{what}: element {i}: got {g}, want {w}, tol {tol}");
    }
}

/// `(input NHWC, taps, out channels or multiplier, spec)` of the cases.
fn cases() -> Vec<([usize; 4], [usize; 2], usize, ConvSpec)> {
    let spec = |s: [usize; 2], p: Padding, d: [usize; 2]| ConvSpec { strides: s, padding: p, dilations: d };
    let (same, valid) = (Padding::Same, Padding::Valid);
    vec![
        ([2, 6, 6, 3], [3, 3], 4, spec([1, 1], valid, [1, 1])),
        ([1, 7, 7, 2], [3, 3], 3, spec([2, 2], same, [1, 1])),
        ([2, 5, 6, 2], [2, 3], 2, spec([1, 2], same, [1, 1])),
        ([1, 8, 8, 1], [3, 3], 2, spec([1, 1], valid, [2, 2])),
        ([1, 9, 7, 1], [2, 2], 1, spec([3, 4], same, [1, 1])), // stride > window
        ([3, 11, 13, 5], [3, 2], 17, spec([2, 1], same, [2, 1])),
        ([2, 5, 5, 3], [1, 1], 33, spec([1, 1], same, [1, 1])), // the input is the patch matrix
        ([1, 4, 4, 2], [1, 1], 3, spec([2, 2], valid, [1, 1])),
        ([0, 5, 5, 3], [3, 3], 4, spec([1, 1], same, [1, 1])), // empty batch
        ([1, 4, 4, 0], [2, 2], 3, spec([1, 1], same, [1, 1])), // no input channels: zeros
        ([2, 3, 3, 4], [5, 5], 3, spec([1, 1], same, [1, 1])), // window larger than the image
        // Large enough for several blocks, partials and parallel pieces.
        ([4, 17, 19, 19], [3, 3], 37, spec([1, 1], same, [1, 1])),
        ([2, 30, 30, 40], [3, 3], 20, spec([2, 2], valid, [1, 1])),
    ]
}

fn full(input: [usize; 4], taps: [usize; 2], out: usize, spec: ConvSpec) -> ConvGeometry {
    ConvGeometry::new("test", input, taps, out, false, spec).unwrap()
}

fn depthwise_geometry(input: [usize; 4], taps: [usize; 2], mult: usize, spec: ConvSpec) -> ConvGeometry {
    ConvGeometry::new("test", input, taps, input[3] * mult, true, spec).unwrap()
}

fn at_every_level(f: impl Fn(Level)) {
    for level in isa::supported_levels() {
        level.enter(|| f(level));
    }
}

#[test]
fn conv2d_and_its_backward_products_match_the_reference() {
    at_every_level(|level| {
        for (input, taps, out, spec) in cases() {
            let g = full(input, taps, out, spec);
            let what = format!("{g:?} at {:?}", level.isa());
            let x = values(g.input_len(), 1);
            let w = values(g.filter_len(), 2);
            let dy = values(g.output_len(), 3);
            let terms = g.patch_len();
            let mut y = vec![f32::NAN; g.output_len()];
            patches::forward(level, &g, &x, &w, &mut y);
            assert_close(&y, &reference::conv2d(&g, &x, &w), terms, &format!("forward {what}"));
            let mut dx = vec![f32::NAN; g.input_len()];
            patches::backprop_input(level, &g, &dy, &w, &mut dx);
            let terms_dx = g.out_channels * g.rows.taps * g.cols.taps;
            assert_close(&dx, &reference::conv2d_backprop_input(&g, &dy, &w), terms_dx, &format!("input {what}"));
            let mut dw = vec![f32::NAN; g.filter_len()];
            patches::backprop_filter(level, &g, &x, &dy, &mut dw);
            let terms_dw = g.batch * g.output_pixels();
            assert_close(&dw, &reference::conv2d_backprop_filter(&g, &x, &dy), terms_dw, &format!("filter {what}"));
        }
    });
}

#[test]
fn depthwise_and_its_backward_products_match_the_reference() {
    at_every_level(|level| {
        for (input, taps, out, spec) in cases() {
            for mult in [1, 2, out.min(3)] {
                let g = depthwise_geometry(input, taps, mult, spec);
                let what = format!("{g:?} at {:?}", level.isa());
                let x = values(g.input_len(), 4);
                let f = values(g.filter_len(), 5);
                let dy = values(g.output_len(), 6);
                let taps_n = g.rows.taps * g.cols.taps;
                let mut y = vec![f32::NAN; g.output_len()];
                depthwise::forward(level, &g, &x, &f, &mut y);
                assert_close(&y, &reference::depthwise_conv2d(&g, &x, &f), taps_n, &format!("forward {what}"));
                let mut dx = vec![f32::NAN; g.input_len()];
                depthwise::backprop_input(level, &g, &dy, &f, &mut dx);
                let want = reference::depthwise_backprop_input(&g, &dy, &f);
                assert_close(&dx, &want, taps_n * mult, &format!("input {what}"));
                let mut df = vec![f32::NAN; g.filter_len()];
                depthwise::backprop_filter(level, &g, &x, &dy, &mut df);
                let want = reference::depthwise_backprop_filter(&g, &x, &dy);
                assert_close(&df, &want, g.batch * g.output_pixels(), &format!("filter {what}"));
            }
        }
    });
}

/// Every kernel's output, bit for bit, for one large case.
fn all_bits(level: Level) -> Vec<u32> {
    let g = full([5, 21, 23, 24], [3, 3], 40, ConvSpec { strides: [1, 1], padding: Padding::Same, dilations: [1, 1] });
    let x = values(g.input_len(), 7);
    let w = values(g.filter_len(), 8);
    let dy = values(g.output_len(), 9);
    let mut y = vec![0.0; g.output_len()];
    let mut dx = vec![0.0; g.input_len()];
    let mut dw = vec![0.0; g.filter_len()];
    patches::forward(level, &g, &x, &w, &mut y);
    patches::backprop_input(level, &g, &dy, &w, &mut dx);
    patches::backprop_filter(level, &g, &x, &dy, &mut dw);
    let d = depthwise_geometry([5, 21, 23, 24], [3, 3], 2, g_spec(&g));
    let f = values(d.filter_len(), 10);
    let dyd = values(d.output_len(), 11);
    let mut yd = vec![0.0; d.output_len()];
    let mut dxd = vec![0.0; d.input_len()];
    let mut dfd = vec![0.0; d.filter_len()];
    depthwise::forward(level, &d, &x, &f, &mut yd);
    depthwise::backprop_input(level, &d, &dyd, &f, &mut dxd);
    depthwise::backprop_filter(level, &d, &x, &dyd, &mut dfd);
    [y, dx, dw, yd, dxd, dfd].iter().flatten().map(|v| v.to_bits()).collect()
}

fn g_spec(g: &ConvGeometry) -> ConvSpec {
    ConvSpec {
        strides: [g.rows.stride, g.cols.stride],
        padding: Padding::Same,
        dilations: [g.rows.dilation, g.cols.dilation],
    }
}

#[test]
fn the_bits_do_not_depend_on_the_thread_count() {
    at_every_level(|level| {
        let run = |threads: usize| {
            let pool = rayon::ThreadPoolBuilder::new().num_threads(threads).build().unwrap();
            pool.install(|| all_bits(level))
        };
        let one = run(1);
        assert_eq!(one, run(2), "1 vs 2 threads at {:?}", level.isa());
        assert_eq!(one, all_bits(level), "pool vs calling thread at {:?}", level.isa());
    });
}

#[test]
fn tensors_validate_and_f16_rounds_once() {
    let spec = ConvSpec { strides: [1, 1], padding: Padding::Same, dilations: [1, 1] };
    let x: Tensor<()> = Tensor::from_vec(values(2 * 5 * 5 * 3, 1), [2, 5, 5, 3]).unwrap();
    let w: Tensor<()> = Tensor::from_vec(values(3 * 3 * 3 * 4, 2), [3, 3, 3, 4]).unwrap();
    let y = conv2d(&x, &w, spec).unwrap();
    assert_eq!(y.dims(), &[2, 5, 5, 4]);
    let narrow = |t: &Tensor<()>| {
        let v: Vec<f16> = t.as_slice::<f32>().unwrap().iter().map(|&v| f16::from_f32(v)).collect();
        Tensor::<()>::from_vec(v, t.shape().clone()).unwrap()
    };
    let (xh, wh) = (narrow(&x), narrow(&w));
    let yh = conv2d(&xh, &wh, spec).unwrap();
    let wide = |t: &Tensor<()>| t.as_slice::<f16>().unwrap().iter().map(|v| v.to_f32()).collect::<Vec<_>>();
    let g = full([2, 5, 5, 3], [3, 3], 4, spec);
    let want: Vec<f16> = reference::conv2d(&g, &wide(&xh), &wide(&wh)).into_iter().map(f16::from_f32).collect();
    let got = yh.as_slice::<f16>().unwrap();
    for (a, b) in got.iter().zip(&want) {
        assert!((a.to_f32() - b.to_f32()).abs() <= 1e-3 + 1e-3 * b.to_f32().abs(), "{a} vs {b}");
    }
    assert!(conv2d(&x, &xh, spec).is_err(), "dtype mismatch");
    assert!(conv2d(&x, &x, spec).is_err(), "channel mismatch");
    let bad = ConvSpec { strides: [0, 1], ..spec };
    assert!(conv2d(&x, &w, bad).is_err(), "stride 0");
    let valid = ConvSpec { padding: Padding::Valid, ..spec };
    let big: Tensor<()> = Tensor::zeros([6, 6, 3, 1], DType::F32);
    assert!(conv2d(&x, &big, valid).is_err(), "VALID window larger than the input");
    let dy = Tensor::<()>::zeros([2, 5, 5, 4], DType::F32);
    assert!(conv2d_backprop_input("t", &dy, &w, &Shape::from(vec![2, 5, 5, 3]), spec).is_ok());
    assert!(conv2d_backprop_input("t", &dy, &w, &Shape::from(vec![2, 9, 5, 3]), spec).is_err());
    assert!(conv2d_backprop_filter(&x, &dy, &Shape::from(vec![3, 3, 3, 4]), spec).is_ok());
    assert!(conv2d_backprop_filter(&x, &dy, &Shape::from(vec![3, 3, 2, 4]), spec).is_err());
    let ints = Tensor::<()>::zeros([1, 2, 2, 1], DType::I32);
    assert!(depthwise_conv2d(&ints, &ints, spec).is_err(), "int32");
}
