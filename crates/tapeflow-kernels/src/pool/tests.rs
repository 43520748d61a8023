use tapeflow_dtype::{DType, Tensor};

use super::*;
use crate::isa::supported_levels;
use crate::reference::pool as reference;

type T = Tensor<()>;

/// Values of `dims` exact in float16, distinct within any 2039 consecutive elements.
fn distinct(dims: [usize; 4], dtype: DType) -> T {
    let n: usize = dims.iter().product();
    let v: Vec<f32> = (0..n).map(|i| ((i * 7919) % 2039) as f32 * 0.25 - 255.0).collect();
    T::from_vec(v, dims.to_vec()).unwrap().to_dtype(dtype)
}

/// Values with many ties (a few levels), to check the first-maximum rule.
fn tied(dims: [usize; 4]) -> T {
    let n: usize = dims.iter().product();
    let v: Vec<f32> = (0..n).map(|i| ((i * 13) % 3) as f32).collect();
    T::from_vec(v, dims.to_vec()).unwrap()
}

/// Every level in this thread and inside a two-thread pool.
fn everywhere(check: impl Fn() + Sync + Send) {
    for level in supported_levels() {
        level.enter(&check);
        rayon::ThreadPoolBuilder::new().num_threads(2).build().unwrap().install(|| level.enter(&check));
    }
}

/// A pool to test: input dims, ksize, strides, padding.
type Case = ([usize; 4], [usize; 2], [usize; 2], Padding);

/// (dims, ksize, strides, padding): channel tails (1, 3, 16, 17, 35), odd sizes, stride >
/// ksize, SAME and VALID, batch 1, empty inputs, and shapes large enough to split.
fn cases() -> Vec<Case> {
    use Padding::{Same, Valid};
    vec![
        ([2, 6, 6, 3], [2, 2], [2, 2], Valid),
        ([1, 7, 7, 2], [3, 3], [2, 2], Same),
        ([1, 5, 6, 1], [2, 3], [1, 2], Valid),
        ([1, 5, 7, 16], [3, 2], [1, 1], Same),
        ([2, 9, 5, 17], [2, 2], [3, 3], Valid),
        ([1, 4, 4, 35], [4, 4], [1, 1], Same),
        ([3, 1, 1, 33], [1, 1], [1, 1], Valid),
        ([1, 3, 3, 5], [5, 5], [2, 2], Same),
        ([0, 4, 4, 3], [2, 2], [2, 2], Valid),
        ([2, 4, 4, 0], [2, 2], [1, 1], Same),
        ([1, 0, 4, 3], [2, 2], [1, 1], Same),
        ([8, 28, 28, 64], [2, 2], [2, 2], Valid),
        ([1, 61, 47, 19], [3, 3], [2, 2], Same),
    ]
}

fn assert_close(got: &[f64], want: &[f64], what: &str) {
    assert_eq!(got.len(), want.len(), "{what}");
    for (i, (g, w)) in got.iter().zip(want).enumerate() {
        assert!((g - w).abs() <= 1e-5 * w.abs() + 1e-6, "{what}: element {i}: {g} vs {w}");
    }
}

#[test]
fn max_pool_and_its_gradients_match_the_reference() {
    everywhere(|| {
        for (dims, k, s, p) in cases() {
            for dtype in [DType::F32, DType::F16] {
                for x in [distinct(dims, dtype), tied(dims).to_dtype(dtype)] {
                    let what = format!("{dims:?} k {k:?} s {s:?} {p:?} {dtype}");
                    let (y, taps) = max_pool2d(&x, k, s, p).unwrap();
                    let xs = x.to_f64_vec();
                    assert_eq!(y.dtype(), dtype);
                    assert_eq!(y.dims(), taps.geometry().output_dims(), "{what}");
                    assert_eq!(y.to_f64_vec(), reference::max_pool(&xs, dims, k, s, p).unwrap(), "{what}");
                    let g = distinct(taps.geometry().output_dims(), dtype);
                    let dx = max_pool2d_scatter(&taps, &g).unwrap();
                    let want = reference::max_pool_grad(&xs, dims, &g.to_f64_vec(), k, s, p).unwrap();
                    let want = T::from_vec(want.iter().map(|&v| v as f32).collect::<Vec<_>>(), dims.to_vec())
                        .unwrap()
                        .to_dtype(dtype);
                    assert_close(&dx.to_f64_vec(), &want.to_f64_vec(), &format!("grad {what}"));
                    let u = distinct(dims, dtype);
                    let gg = max_pool2d_gather(&taps, &u).unwrap();
                    let want = reference::max_pool_grad_grad(&xs, dims, &u.to_f64_vec(), k, s, p).unwrap();
                    assert_eq!(gg.to_f64_vec(), want, "grad grad {what}");
                }
            }
        }
    });
}

#[test]
fn avg_pool_and_its_gradient_match_the_reference() {
    everywhere(|| {
        for (dims, k, s, p) in cases() {
            for dtype in [DType::F32, DType::F16] {
                let what = format!("{dims:?} k {k:?} s {s:?} {p:?} {dtype}");
                let x = distinct(dims, dtype);
                let (y, geometry) = avg_pool2d(&x, k, s, p).unwrap();
                let round = |v: Vec<f64>, d: [usize; 4]| {
                    T::from_vec(v.iter().map(|&v| v as f32).collect::<Vec<_>>(), d.to_vec()).unwrap().to_dtype(dtype)
                };
                let want = round(reference::avg_pool(&x.to_f64_vec(), dims, k, s, p).unwrap(), geometry.output_dims());
                let tol = if dtype == DType::F16 { 1e-3 } else { 1e-5 };
                for (g, w) in y.to_f64_vec().iter().zip(want.to_f64_vec()) {
                    assert!((g - w).abs() <= tol * w.abs() + tol, "{what}: {g} vs {w}");
                }
                let g = distinct(geometry.output_dims(), dtype);
                let dx = avg_pool2d_grad(&geometry, &g).unwrap();
                let want = round(reference::avg_pool_grad(dims, &g.to_f64_vec(), k, s, p).unwrap(), dims);
                for (g, w) in dx.to_f64_vec().iter().zip(want.to_f64_vec()) {
                    assert!((g - w).abs() <= tol * w.abs() + tol, "grad {what}: {g} vs {w}");
                }
            }
        }
    });
}

#[test]
fn results_are_the_same_bits_for_any_thread_count_and_level_sums() {
    let dims = [4, 31, 29, 40];
    let x = distinct(dims, DType::F32);
    let run = || {
        let (y, taps) = max_pool2d(&x, [3, 3], [2, 2], Padding::Same).unwrap();
        let g = distinct(taps.geometry().output_dims(), DType::F32);
        let dx = max_pool2d_scatter(&taps, &g).unwrap();
        let (a, geometry) = avg_pool2d(&x, [3, 3], [2, 2], Padding::Same).unwrap();
        let da = avg_pool2d_grad(&geometry, &g).unwrap();
        [y, dx, a, da].map(|t| t.to_vec::<f32>().unwrap().iter().map(|v| v.to_bits()).collect::<Vec<_>>())
    };
    for level in supported_levels() {
        let one = rayon::ThreadPoolBuilder::new().num_threads(1).build().unwrap().install(|| level.enter(run));
        let two = rayon::ThreadPoolBuilder::new().num_threads(2).build().unwrap().install(|| level.enter(run));
        let three = rayon::ThreadPoolBuilder::new().num_threads(3).build().unwrap().install(|| level.enter(run));
        assert_eq!(one, two, "{level:?}");
        assert_eq!(one, three, "{level:?}");
        // No fused multiply-adds: every level gives the same bits.
        assert_eq!(one, supported_levels()[0].enter(run), "{level:?}");
    }
}

#[test]
fn ties_go_to_the_first_maximum_and_a_leading_nan_wins() {
    // One 2×2 window over one channel: [1, 3, 3, 2] picks tap 1; [NaN, 5, 1, 2] keeps the NaN;
    // [1, NaN, 0, 4] ignores the later NaN.
    for (values, value, tap) in
        [([1.0, 3.0, 3.0, 2.0], 3.0, 1), ([f32::NAN, 5.0, 1.0, 2.0], f32::NAN, 0), ([1.0, f32::NAN, 0.0, 4.0], 4.0, 3)]
    {
        for c in [1, 16] {
            let data: Vec<f32> = values.iter().flat_map(|&v| std::iter::repeat_n(v, c)).collect();
            let x = T::from_vec(data, [1, 2, 2, c]).unwrap();
            let (y, taps) = max_pool2d(&x, [2, 2], [2, 2], Padding::Valid).unwrap();
            let got = y.to_vec::<f32>().unwrap();
            assert!(got.iter().all(|&v| v.to_bits() == value.to_bits()), "{values:?} c {c}: {got:?}");
            let dx = max_pool2d_scatter(&taps, &T::ones([1, 1, 1, c], DType::F32)).unwrap().to_vec::<f32>().unwrap();
            let want: Vec<f32> =
                (0..4).flat_map(|t| std::iter::repeat_n(if t == tap { 1.0 } else { 0.0 }, c)).collect();
            assert_eq!(dx, want, "{values:?} c {c}");
        }
    }
}

#[test]
fn bad_arguments_are_errors_naming_the_op() {
    let x = distinct([1, 4, 4, 2], DType::F32);
    let message = |r: Result<(T, MaxPoolTaps)>| r.unwrap_err().to_string();
    assert!(message(max_pool2d(&x, [0, 2], [1, 1], Padding::Same)).contains("max_pool2d"));
    assert!(message(max_pool2d(&x, [2, 2], [1, 0], Padding::Same)).contains("(1, 4, 4, 2) float32"));
    assert!(message(max_pool2d(&x, [5, 2], [1, 1], Padding::Valid)).contains("VALID"));
    let rank3 = T::from_vec(vec![0.0f32; 8], [2, 2, 2]).unwrap();
    assert!(max_pool2d(&rank3, [1, 1], [1, 1], Padding::Same).is_err());
    assert!(avg_pool2d(&T::from_vec(vec![1i32; 4], [1, 2, 2, 1]).unwrap(), [1, 1], [1, 1], Padding::Same).is_err());
    assert!(max_pool2d(&x, [1 << 13, 1 << 13], [1, 1], Padding::Same).is_err());
    let (_, taps) = max_pool2d(&x, [2, 2], [2, 2], Padding::Valid).unwrap();
    assert!(max_pool2d_scatter(&taps, &distinct([1, 2, 3, 2], DType::F32)).is_err());
    assert!(max_pool2d_gather(&taps, &distinct([1, 2, 2, 2], DType::F32)).is_err());
}

#[test]
fn leading_axes_are_further_batches_of_the_same_images() {
    let dims = [2, 5, 5, 17];
    let x = distinct(dims, DType::F32);
    let (_, taps) = max_pool2d(&x, [2, 2], [2, 2], Padding::Same).unwrap();
    let (_, geometry) = avg_pool2d(&x, [2, 2], [2, 2], Padding::Same).unwrap();
    let out = geometry.output_dims();
    let seeds: Vec<T> = (0..3).map(|r| distinct(out, DType::F32).mul_scalar_for_test(r as f32 + 1.0)).collect();
    let stacked = |ts: &[T], d: [usize; 4]| {
        let data: Vec<f32> = ts.iter().flat_map(|t| t.to_vec::<f32>().unwrap()).collect();
        T::from_vec(data, [&[ts.len()][..], &d[..]].concat()).unwrap()
    };
    let g = stacked(&seeds, out);
    let each = |f: &dyn Fn(&T) -> T| seeds.iter().flat_map(|s| f(s).to_vec::<f32>().unwrap()).collect::<Vec<_>>();
    let scatter = max_pool2d_scatter(&taps, &g).unwrap();
    assert_eq!(scatter.dims(), &[3, 2, 5, 5, 17]);
    assert_eq!(scatter.to_vec::<f32>().unwrap(), each(&|s| max_pool2d_scatter(&taps, s).unwrap()));
    let spread = avg_pool2d_grad(&geometry, &g).unwrap();
    assert_eq!(spread.to_vec::<f32>().unwrap(), each(&|s| avg_pool2d_grad(&geometry, s).unwrap()));
    let us: Vec<T> = (0..3).map(|r| distinct(dims, DType::F32).mul_scalar_for_test(r as f32 - 1.0)).collect();
    let u = stacked(&us, dims);
    let gathered = max_pool2d_gather(&taps, &u).unwrap();
    let want: Vec<f32> =
        us.iter().flat_map(|u| max_pool2d_gather(&taps, u).unwrap().to_vec::<f32>().unwrap()).collect();
    assert_eq!(gathered.to_vec::<f32>().unwrap(), want);
    let pooled = avg_pool2d_with(&geometry, &u).unwrap();
    let want: Vec<f32> =
        us.iter().flat_map(|u| avg_pool2d_with(&geometry, u).unwrap().to_vec::<f32>().unwrap()).collect();
    assert_eq!(pooled.to_vec::<f32>().unwrap(), want);
}

trait Scaled {
    fn mul_scalar_for_test(&self, k: f32) -> T;
}

impl Scaled for T {
    fn mul_scalar_for_test(&self, k: f32) -> T {
        let v: Vec<f32> = self.to_vec::<f32>().unwrap().iter().map(|v| v * k).collect();
        T::from_vec(v, self.dims().to_vec()).unwrap()
    }
}
