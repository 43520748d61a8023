//! cumsum / cumprod at every instruction-set level against the scalar reference: the same
//! order of operations, so the same bits.

use super::*;
use crate::reference;
use half::f16;

type T = Tensor<()>;

fn values(n: usize, seed: usize) -> Vec<f32> {
    (0..n)
        .map(|i| match (i * 7 + seed) % 31 {
            0 => 0.0,
            1 => f32::NAN,
            2 => f32::INFINITY,
            k => (((i * 2654435761 + seed) % 1999) as f32 / 1000.0 - 1.0) * (1 + k % 3) as f32,
        })
        .collect()
}

fn bits(v: &[f32]) -> Vec<u32> {
    v.iter().map(|x| if x.is_nan() { u32::MAX } else { x.to_bits() }).collect()
}

#[test]
fn float_scans_match_the_reference_bit_for_bit_at_every_level() {
    for level in isa::supported_levels() {
        isa::with_isa(level.isa(), || {
            for dims in
                // Rows of the last axis in transposed tiles of 16 (and leftovers), columns.
                [
                    vec![1usize],
                    vec![17],
                    vec![4, 33],
                    vec![3, 5, 16],
                    vec![2, 7, 70],
                    vec![5, 1, 3],
                    vec![65, 2],
                    vec![17, 33],
                    vec![32, 16],
                    vec![16, 1],
                    vec![2, 24, 15],
                ]
            {
                let data = values(dims.iter().product(), dims.len());
                let x = T::from_vec(data.clone(), dims.clone()).unwrap();
                for axis in 0..dims.len() {
                    for (op, identity) in [(ScanOp::Sum, 0.0f32), (ScanOp::Prod, 1.0)] {
                        for (exclusive, reverse) in [(false, false), (true, false), (false, true), (true, true)] {
                            let got = scan(op, &x, axis as isize, exclusive, reverse).unwrap().to_vec::<f32>().unwrap();
                            let want = reference::scan(&data, &dims, axis, exclusive, reverse, identity, |a, v| {
                                if op == ScanOp::Prod { a * v } else { a + v }
                            });
                            assert_eq!(
                                bits(&got),
                                bits(&want),
                                "{op:?} {dims:?} axis {axis} {exclusive} {reverse} {level:?}"
                            );
                        }
                    }
                }
            }
        });
    }
}

#[test]
fn float16_accumulates_in_f32_and_rounds_once_and_int32_wraps() {
    let data = values(48, 3);
    let half: Vec<f16> = data.iter().map(|&v| f16::from_f32(v)).collect();
    let widened: Vec<f32> = half.iter().map(|h| h.to_f32()).collect();
    let x = T::from_vec(half, [3, 16]).unwrap();
    for axis in [0usize, 1] {
        let got = scan(ScanOp::Sum, &x, axis as isize, false, true).unwrap().to_vec::<f16>().unwrap();
        let want = reference::scan(&widened, &[3, 16], axis, false, true, 0.0, |a, v| a + v);
        let want: Vec<f16> = want.iter().map(|&v| f16::from_f32(v)).collect();
        assert_eq!(
            got.iter().map(|h| h.to_bits()).collect::<Vec<_>>(),
            want.iter().map(|h| h.to_bits()).collect::<Vec<_>>()
        );
    }
    let ints = T::from_vec(vec![i32::MAX, 1, 2, 3, -4, 5], [2, 3]).unwrap();
    assert_eq!(
        scan(ScanOp::Sum, &ints, 1, false, false).unwrap().to_vec::<i32>().unwrap(),
        vec![i32::MAX, i32::MIN, i32::MIN + 2, 3, -1, 4]
    );
    assert_eq!(
        scan(ScanOp::Prod, &ints, 0, true, false).unwrap().to_vec::<i32>().unwrap(),
        vec![1, 1, 1, i32::MAX, 1, 2]
    );
    assert_eq!(scan(ScanOp::Prod, &ints, -1, true, true).unwrap().to_vec::<i32>().unwrap(), vec![2, 2, 1, -20, 5, 1]);
}

#[test]
fn exclusive_and_reverse_follow_tensorflow() {
    let x = T::from_vec(vec![1.0f32, 2.0, 3.0, 4.0], [4]).unwrap();
    let run = |op, exclusive, reverse| scan(op, &x, 0, exclusive, reverse).unwrap().to_vec::<f32>().unwrap();
    assert_eq!(run(ScanOp::Sum, false, false), vec![1.0, 3.0, 6.0, 10.0]);
    assert_eq!(run(ScanOp::Sum, true, false), vec![0.0, 1.0, 3.0, 6.0]);
    assert_eq!(run(ScanOp::Sum, false, true), vec![10.0, 9.0, 7.0, 4.0]);
    assert_eq!(run(ScanOp::Sum, true, true), vec![9.0, 7.0, 4.0, 0.0]);
    assert_eq!(run(ScanOp::Prod, true, true), vec![24.0, 12.0, 4.0, 1.0]);
}

#[test]
fn bad_axes_and_empty_tensors() {
    let x = T::from_vec(vec![1.0f32; 6], [2, 3]).unwrap();
    for axis in [2, -3] {
        let msg = scan(ScanOp::Sum, &x, axis, false, false).unwrap_err().to_string();
        assert!(msg.contains("cumsum") && msg.contains("(2, 3)") && msg.contains("float32"), "{msg}");
    }
    assert!(scan(ScanOp::Prod, &T::scalar(2.0f32), 0, false, false).is_err());
    let e = T::from_vec(Vec::<f32>::new(), [0, 1 << 62]).unwrap();
    assert_eq!(scan(ScanOp::Prod, &e, 1, true, true).unwrap().dims(), &[0, 1 << 62]);
}

#[test]
fn large_scans_are_the_same_on_one_and_two_threads() {
    for (dims, axis) in [(vec![2000usize, 100], 1usize), (vec![40, 300, 20], 1), (vec![600, 300], 0)] {
        let data = values(dims.iter().product(), 5);
        let x = T::from_vec(data, dims.clone()).unwrap();
        let run = |threads: usize| {
            let pool = rayon::ThreadPoolBuilder::new().num_threads(threads).build().unwrap();
            pool.install(|| bits(&scan(ScanOp::Sum, &x, axis as isize, false, false).unwrap().to_vec::<f32>().unwrap()))
        };
        assert_eq!(run(1), run(2), "{dims:?}");
    }
}
