use tapeflow_dtype::{DType, Tensor};

use super::*;
use crate::reference::indexing as reference;

type T = Tensor<()>;

/// Distinct values 0, 1, 2, … of `dtype` (exact in float16 up to 2048).
fn iota(dims: &[usize], dtype: DType) -> T {
    let n: usize = dims.iter().product();
    T::from_vec((0..n).map(|i| (i % 2048) as f32).collect::<Vec<_>>(), dims.to_vec()).unwrap().to_dtype(dtype)
}

fn values(t: &T) -> Vec<f64> {
    t.to_f64_vec()
}

/// Runs `check` on this thread and inside a two-thread pool: pieces go to rayon either way,
/// and the results must not depend on it.
fn both_pools(check: impl Fn() + Sync + Send) {
    check();
    rayon::ThreadPoolBuilder::new().num_threads(2).build().unwrap().install(&check);
}

/// Shapes around the vector width and the parallel threshold, and empty ones.
const SHAPES: [&[usize]; 11] = [
    &[],
    &[0],
    &[1],
    &[17],
    &[3, 16],
    &[2, 15, 3],
    &[4, 33],
    &[0, 3],
    &[2, 0, 5],
    &[1, 1, 1],
    &[300, 513], // two pieces and more: the parallel path
];

#[test]
fn python_ranges_clamp_and_walk_backwards() {
    // range(5)[begin:end:step] in Python.
    let r = |b, e, s| {
        let a = python_range(5, b, e, s);
        (0..a.count).map(|i| a.start as isize + i as isize * a.step).collect::<Vec<_>>()
    };
    assert_eq!(r(1, 4, 1), vec![1, 2, 3]);
    assert_eq!(r(-1, 0, -2), vec![4, 2]);
    assert_eq!(r(-3, -1, 1), vec![2, 3]);
    assert_eq!(r(0, 10, 2), vec![0, 2, 4]);
    assert_eq!(r(10, -10, -1), vec![4, 3, 2, 1, 0]);
    assert_eq!(r(3, 1, 1), Vec::<isize>::new());
    assert_eq!(r(-10, 2, 1), vec![0, 1]);
}

#[test]
fn strided_slices_match_the_reference_for_every_dtype_and_pool() {
    both_pools(|| {
        for dims in SHAPES {
            for dtype in [DType::F32, DType::F16, DType::I32] {
                let x = iota(dims, dtype);
                let rank = dims.len() as isize;
                let plans = [
                    SlicePlan::strided(&x, &vec![0; dims.len()], &vec![isize::MAX; dims.len()], &vec![1; dims.len()]),
                    SlicePlan::strided(&x, &vec![-1; dims.len()], &vec![isize::MIN; dims.len()], &vec![-1; dims.len()]),
                    SlicePlan::strided(&x, &vec![1; dims.len()], &vec![-1; dims.len()], &vec![2; dims.len()]),
                    SlicePlan::strided(&x, &vec![-2; dims.len()], &vec![0; dims.len()], &vec![-3; dims.len()]),
                    SlicePlan::reverse(&x, &(0..rank).rev().step_by(2).collect::<Vec<_>>()),
                    SlicePlan::strided(&x, &[1], &[3], &[1]),
                ];
                for plan in plans.into_iter().flatten() {
                    let got = take("strided_slice", &x, &plan).unwrap();
                    assert_eq!(got.dims(), plan.view_dims().as_slice());
                    assert_eq!(got.dtype(), dtype);
                    let want = reference::strided_view(&values(&x), dims, plan.axes());
                    assert_eq!(values(&got), want, "{dims:?} {dtype} {plan:?}");
                }
            }
        }
    });
}

#[test]
fn put_writes_the_view_back_and_fills_the_rest() {
    both_pools(|| {
        for dims in SHAPES {
            let x = iota(dims, DType::F32);
            let n = dims.len();
            for plan in [
                SlicePlan::strided(&x, &vec![1; n], &vec![isize::MAX; n], &vec![2; n]).unwrap(),
                SlicePlan::reverse(&x, &(0..n as isize).collect::<Vec<_>>()).unwrap(),
            ] {
                let view = take("t", &x, &plan).unwrap();
                let back = put("t", &view, &plan, -7.0).unwrap();
                assert_eq!(back.dims(), x.dims());
                // Every element the view holds is back in place; the others are the fill.
                let mut want = vec![-7.0; x.num_elements()];
                let flat = reference::strided_view(
                    &(0..x.num_elements()).map(|i| i as f64).collect::<Vec<_>>(),
                    dims,
                    plan.axes(),
                );
                for (v, &at) in values(&view).iter().zip(&flat) {
                    want[at as usize] = *v;
                }
                assert_eq!(values(&back), want, "{dims:?} {plan:?}");
            }
        }
    });
}

#[test]
fn constant_and_mirror_pads_match_the_reference() {
    let cases: [(&[usize], &[[usize; 2]]); 6] = [
        (&[3, 4], &[[1, 2], [2, 0]]),
        (&[5], &[[4, 3]]),
        (&[2, 3, 2], &[[0, 0], [1, 1], [0, 2]]),
        (&[17, 2], &[[1, 1], [1, 0]]),
        (&[], &[]),
        (&[400, 300], &[[2, 3], [1, 1]]),
    ];
    for (dims, paddings) in cases {
        for dtype in [DType::F32, DType::F16, DType::I32] {
            let x = iota(dims, dtype);
            let plan = SlicePlan::interior("pad", &x, paddings).unwrap();
            let got = put("pad", &x, &plan, 3.0).unwrap();
            assert_eq!(values(&got), reference::pad(&values(&x), dims, paddings, PadMode::Constant(3.0)));
            for (reflect, mode) in [(true, PadMode::Reflect), (false, PadMode::Symmetric)] {
                let limit = |d: usize| if reflect { d.saturating_sub(1) } else { d };
                if dims.iter().zip(paddings).any(|(&d, p)| p[0].max(p[1]) > limit(d)) {
                    continue; // beyond MirrorPad's limit: `mirror_limits_are_tensorflows`
                }
                let want = reference::pad(&values(&x), dims, paddings, mode);
                // A mirror pad is a gather along each axis by the index map.
                let mut got = values(&x);
                let mut cur: Vec<usize> = dims.to_vec();
                for (axis, &p) in paddings.iter().enumerate() {
                    let map = mirror_index("pad", &x, axis, p, reflect).unwrap();
                    let (outer, inner) =
                        (cur[..axis].iter().product::<usize>(), cur[axis + 1..].iter().product::<usize>());
                    let len = cur[axis];
                    got = (0..outer)
                        .flat_map(|o| map.iter().flat_map(move |&j| (0..inner).map(move |i| (o * len + j) * inner + i)))
                        .map(|at| got[at])
                        .collect();
                    cur[axis] = map.len();
                }
                assert_eq!(got, want, "{dims:?} {paddings:?} {mode:?}");
            }
        }
    }
}

#[test]
fn mirror_limits_are_tensorflows() {
    let x = iota(&[3, 0], DType::F32);
    assert!(mirror_index("pad", &x, 0, [2, 2], true).is_ok());
    assert!(mirror_index("pad", &x, 0, [3, 0], true).is_err()); // reflect: < dim
    assert!(mirror_index("pad", &x, 0, [3, 3], false).is_ok()); // symmetric: ≤ dim
    assert!(mirror_index("pad", &x, 0, [0, 4], false).is_err());
    assert!(mirror_index("pad", &x, 1, [0, 0], true).is_err()); // an empty axis cannot reflect
    assert!(mirror_index("pad", &x, 1, [0, 0], false).is_ok());
    let msg = mirror_index("pad", &x, 0, [3, 0], true).unwrap_err().to_string();
    assert!(msg.contains("pad") && msg.contains("(3, 0)") && msg.contains("float32"), "{msg}");
}

#[test]
fn bad_plans_are_errors_naming_the_op() {
    let x = iota(&[4, 5], DType::F16);
    for err in [
        SlicePlan::slice(&x, &[1], &[1]).unwrap_err(),
        SlicePlan::slice(&x, &[1, 0], &[4, 1]).unwrap_err(),
        SlicePlan::slice(&x, &[5, 0], &[-1, 1]).unwrap_err(),
        SlicePlan::slice(&x, &[0, 0], &[-2, 1]).unwrap_err(),
        SlicePlan::strided(&x, &[0], &[1], &[0]).unwrap_err(),
        SlicePlan::strided(&x, &[0, 0, 0], &[1, 1, 1], &[1, 1, 1]).unwrap_err(),
        SlicePlan::strided(&x, &[0], &[1, 1], &[1]).unwrap_err(),
        SlicePlan::reverse(&x, &[0, -2]).unwrap_err(),
        SlicePlan::reverse(&x, &[2]).unwrap_err(),
        SlicePlan::interior("pad", &x, &[[1, 1]]).unwrap_err(),
        SlicePlan::interior("pad", &x, &[[usize::MAX, 1], [0, 0]]).unwrap_err(),
    ] {
        let msg = err.to_string();
        assert!(msg.contains("slice") || msg.contains("reverse") || msg.contains("pad"), "{msg}");
        assert!(msg.contains("(4, 5)") && msg.contains("float16"), "{msg}");
    }
    // A view or source of the wrong shape.
    let plan = SlicePlan::slice(&x, &[0, 0], &[2, 2]).unwrap();
    assert!(take("slice", &iota(&[4, 4], DType::F16), &plan).is_err());
    assert!(put("slice", &x, &plan, 0.0).is_err());
    // An int32 constant must be an int32 value.
    let ints = iota(&[2, 2], DType::I32);
    let plan = SlicePlan::interior("pad", &ints, &[[1, 0], [0, 1]]).unwrap();
    assert!(put("pad", &ints, &plan, 1.5).is_err());
    assert_eq!(values(&put("pad", &ints, &plan, -4.0).unwrap())[0], -4.0);
}

#[test]
fn slices_are_the_plans_of_tf_slice() {
    let x = iota(&[4, 5, 3], DType::F32);
    let plan = SlicePlan::slice(&x, &[1, 0, 1], &[2, -1, 2]).unwrap();
    assert_eq!(plan.view_dims(), vec![2, 5, 2]);
    let got = values(&take("slice", &x, &plan).unwrap());
    assert_eq!(&got[..4], &[16.0, 17.0, 19.0, 20.0]);
    let leading = plan.with_leading_axis(3);
    assert_eq!(leading.view_dims(), vec![3, 2, 5, 2]);
    assert_eq!(leading.source_dims(), &[3, 4, 5, 3]);
    assert!(!plan.covers_source() && SlicePlan::reverse(&x, &[1]).unwrap().covers_source());
    let f = x.to_dtype(DType::F16);
    assert_eq!(values(&take("slice", &f, &plan).unwrap()), got);
}
