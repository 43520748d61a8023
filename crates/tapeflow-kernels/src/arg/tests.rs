//! argmax / argmin at every instruction-set level against the scalar reference (TF's
//! sequential rule), over rows and columns, with ties, NaN, infinities and tails.

use super::*;
use crate::reference;
use half::f16;

type T = Tensor<()>;

/// Values with many ties (a small grid), NaN, infinities and the lowest and highest finite
/// values sprinkled in, from a fixed seed.
fn hostile_values(n: usize, seed: u64) -> Vec<f32> {
    let mut state = seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
    (0..n)
        .map(|_| {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            match state % 29 {
                0 => f32::NAN,
                1 => f32::INFINITY,
                2 => f32::NEG_INFINITY,
                3 => f32::MAX,
                4 => -f32::MAX,
                5 => -0.0,
                k => ((k % 9) as f32 - 4.0) * 0.5,
            }
        })
        .collect()
}

const LENGTHS: [usize; 12] = [1, 2, 3, 15, 16, 17, 33, 63, 64, 65, 100, 257];

fn every_level(f: impl Fn()) {
    for level in isa::supported_levels() {
        isa::with_isa(level.isa(), &f);
    }
}

#[test]
fn rows_and_columns_match_the_reference_at_every_level() {
    every_level(|| {
        for &n in &LENGTHS {
            // [outer, n, inner]: the reduced axis last (rows), and in the middle (columns of
            // widths below, at and beyond one and four vectors).
            for inner in [1usize, 3, 16, 17, 64, 70] {
                let outer = 3;
                let dims = [outer, n, inner];
                let data = hostile_values(outer * n * inner, (n * 131 + inner) as u64);
                let x = T::from_vec(data.clone(), dims).unwrap();
                for op in [ArgOp::Max, ArgOp::Min] {
                    let got = arg_reduce(op, &x, 1).unwrap();
                    assert_eq!(got.dims(), &[outer, inner]);
                    let want = reference::arg_reduce(op == ArgOp::Max, &data, &dims, 1, op.start_f32(DType::F32));
                    assert_eq!(got.to_vec::<i32>().unwrap(), want, "{op:?} {dims:?} at {:?}", isa::current());
                }
            }
        }
    });
}

#[test]
fn float16_and_int32_match_the_reference_at_every_level() {
    every_level(|| {
        for &n in &LENGTHS {
            for inner in [1usize, 5, 40] {
                let dims = [2, n, inner];
                let wide = hostile_values(2 * n * inner, n as u64 + 7);
                let half: Vec<f16> = wide.iter().map(|&v| f16::from_f32(v)).collect();
                let ints: Vec<i32> = wide
                    .iter()
                    .enumerate()
                    .map(|(i, &v)| match i % 11 {
                        0 => i32::MIN,
                        1 => i32::MAX,
                        _ if v.is_nan() => -1,
                        _ => v.clamp(-9.0, 9.0) as i32,
                    })
                    .collect();
                let xh = T::from_vec(half.clone(), dims).unwrap();
                let xi = T::from_vec(ints.clone(), dims).unwrap();
                for op in [ArgOp::Max, ArgOp::Min] {
                    let max = op == ArgOp::Max;
                    let start = op.start_f32(DType::F16);
                    let widened: Vec<f32> = half.iter().map(|h| h.to_f32()).collect();
                    let want_h = reference::arg_reduce(max, &widened, &dims, 1, start);
                    assert_eq!(arg_reduce(op, &xh, 1).unwrap().to_vec::<i32>().unwrap(), want_h, "f16 {op:?} {dims:?}");
                    let start_i = if max { i32::MIN } else { i32::MAX };
                    let want_i = reference::arg_reduce(max, &ints, &dims, 1, start_i);
                    assert_eq!(arg_reduce(op, &xi, 1).unwrap().to_vec::<i32>().unwrap(), want_i, "i32 {op:?} {dims:?}");
                }
            }
        }
    });
}

#[test]
fn ties_nan_and_infinities_follow_tensorflows_cpu_kernel() {
    let arg = |op: ArgOp, v: Vec<f32>| {
        arg_reduce(op, &T::from_vec(v.clone(), [v.len()]).unwrap(), 0).unwrap().to_scalar::<i32>().unwrap()
    };
    every_level(|| {
        // Ties: the first index.
        assert_eq!(arg(ArgOp::Max, vec![1.0, 3.0, 3.0, -1.0, -1.0]), 1);
        assert_eq!(arg(ArgOp::Min, vec![1.0, 3.0, 3.0, -1.0, -1.0]), 3);
        // NaN compares false: it is skipped wherever it sits.
        assert_eq!(arg(ArgOp::Max, vec![f32::NAN, 1.0, 2.0]), 2);
        assert_eq!(arg(ArgOp::Min, vec![3.0, f32::NAN, 1.0, 5.0]), 2);
        assert_eq!(arg(ArgOp::Max, vec![f32::NAN, f32::NAN]), 0);
        // Nothing beyond the lowest finite value: index 0.
        assert_eq!(arg(ArgOp::Max, vec![f32::NEG_INFINITY, f32::NEG_INFINITY, -f32::MAX]), 0);
        assert_eq!(arg(ArgOp::Min, vec![f32::INFINITY, f32::MAX, f32::INFINITY]), 0);
        assert_eq!(arg(ArgOp::Max, vec![f32::NEG_INFINITY, 7.0, f32::INFINITY, f32::INFINITY]), 2);
        // A tie in a later vector than the first occurrence, in another chain and lane.
        let mut long = vec![0.0f32; 200];
        long[37] = 5.0;
        long[150] = 5.0;
        long[3] = 5.0;
        assert_eq!(arg(ArgOp::Max, long.clone()), 3);
        long[3] = f32::NAN;
        assert_eq!(arg(ArgOp::Max, long), 37);
    });
    // float16's lowest finite value is −65504.
    let h = T::from_vec(vec![f16::NEG_INFINITY, f16::MIN, f16::from_f32(-60000.0)], [3]).unwrap();
    assert_eq!(arg_reduce(ArgOp::Max, &h, 0).unwrap().to_scalar::<i32>().unwrap(), 2);
    let h = T::from_vec(vec![f16::NEG_INFINITY, f16::MIN], [2]).unwrap();
    assert_eq!(arg_reduce(ArgOp::Max, &h, 0).unwrap().to_scalar::<i32>().unwrap(), 0);
}

#[test]
fn empty_axes_bad_axes_and_scalars_are_errors() {
    let x = T::from_vec(vec![1.0f32; 6], [2, 3]).unwrap();
    assert_eq!(arg_reduce(ArgOp::Max, &x, -1).unwrap().to_vec::<i32>().unwrap(), vec![0, 0]);
    for axis in [2, -3, 7] {
        let msg = arg_reduce(ArgOp::Max, &x, axis).unwrap_err().to_string();
        assert!(msg.contains("argmax") && msg.contains("float32"), "{msg}");
    }
    assert!(arg_reduce(ArgOp::Min, &T::scalar(1.0f32), 0).is_err());
    let e = T::from_vec(Vec::<f32>::new(), [2, 0]).unwrap();
    let msg = arg_reduce(ArgOp::Min, &e, 1).unwrap_err().to_string();
    assert!(msg.contains("argmin") && msg.contains("empty") && msg.contains("(2, 0)"), "{msg}");
    // Reducing a non-empty axis of an empty tensor gives an empty result.
    assert_eq!(arg_reduce(ArgOp::Max, &e, 0).unwrap().dims(), &[0]);
    let huge = T::from_vec(Vec::<f32>::new(), [0, 1 << 62]).unwrap();
    assert_eq!(arg_reduce(ArgOp::Max, &huge, 1).unwrap().dims(), &[0]);
}

#[test]
fn large_inputs_give_the_same_indices_on_one_and_two_threads() {
    // Rows (the benchmark's [4096, 1000] shape, smaller) and columns of a long axis.
    for (dims, axis) in [(vec![700usize, 1000], 1usize), (vec![300, 700], 0), (vec![3, 500, 130], 1)] {
        let n: usize = dims.iter().product();
        let data = hostile_values(n, 99);
        let x = T::from_vec(data.clone(), dims.clone()).unwrap();
        let run = |threads: usize| {
            let pool = rayon::ThreadPoolBuilder::new().num_threads(threads).build().unwrap();
            pool.install(|| arg_reduce(ArgOp::Max, &x, axis as isize).unwrap().to_vec::<i32>().unwrap())
        };
        let one = run(1);
        assert_eq!(one, run(2), "{dims:?}");
        assert_eq!(one, reference::arg_reduce(true, &data, &dims, axis, -f32::MAX), "{dims:?}");
    }
}
