use half::f16;
use tapeflow_dtype::{DType, Shape, Tensor};

use super::*;
use crate::isa::supported_levels;
use crate::reference::indexing as reference;

type T = Tensor<()>;

/// Distinct small values of `dtype`: `(i % 97) - 40` scaled so float16 holds them exactly.
fn data(dims: &[usize], dtype: DType) -> T {
    let n: usize = dims.iter().product();
    let v: Vec<f32> = (0..n).map(|i| ((i * 7) % 97) as f32 * 0.25 - 10.0).collect();
    T::from_vec(v, dims.to_vec()).unwrap().to_dtype(dtype)
}

fn ints(values: Vec<i32>, dims: &[usize]) -> T {
    T::from_vec(values, dims.to_vec()).unwrap()
}

/// Deterministic indices in `lo..hi` (splitmix).
fn indices(n: usize, lo: i32, hi: i32, seed: u64) -> Vec<i32> {
    let mut state = seed;
    (0..n)
        .map(|_| {
            state = state.wrapping_add(0x9E37_79B9_7F4A_7C15);
            let mut z = state;
            z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
            z ^= z >> 27;
            lo + (z % (hi - lo) as u64) as i32
        })
        .collect()
}

/// Every level in this thread and inside a two-thread pool: the kernels' pieces go to
/// rayon either way, and sums must give the same bits everywhere.
fn everywhere(check: impl Fn() + Sync + Send) {
    for level in supported_levels() {
        level.enter(&check);
        rayon::ThreadPoolBuilder::new().num_threads(2).build().unwrap().install(|| level.enter(&check));
    }
}

fn bits(t: &T) -> Vec<u64> {
    t.to_f64_vec().iter().map(|v| v.to_bits()).collect()
}

#[test]
fn gathers_match_the_reference() {
    // (params dims, axis, index dims): ranks 0–2 of indices, rows of 1, 15, 16, 17, 33 elements,
    // empty params and indices, and a gather large enough to split.
    let cases: [(&[usize], usize, &[usize]); 10] = [
        (&[5, 3], 0, &[4]),
        (&[3, 5, 2], 1, &[2, 2]),
        (&[4, 17], 0, &[]),
        (&[2, 6, 15], 1, &[7]),
        (&[6, 16], 1, &[3, 1]),
        (&[9, 33], 0, &[9]),
        (&[4, 0], 0, &[3]),
        (&[4], 0, &[0]),
        (&[1], 0, &[5]),
        (&[2000, 129], 0, &[1500]),
    ];
    everywhere(|| {
        for (dims, axis, idims) in cases {
            let k: usize = idims.iter().product();
            let ids = indices(k, 0, dims[axis] as i32, k as u64);
            for dtype in [DType::F32, DType::F16, DType::I32] {
                let x = data(dims, dtype);
                let got = gather(&x, &ints(ids.clone(), idims), axis as isize).unwrap();
                let want = reference::gather(&x.to_f64_vec(), dims, &ids, idims, axis, false).unwrap();
                assert_eq!(got.to_f64_vec(), want, "{dims:?} axis {axis} {idims:?} {dtype}");
                assert_eq!(got.dtype(), dtype);
                assert_eq!(got.dims()[axis..axis + idims.len()], *idims);
            }
        }
    });
}

#[test]
fn negative_indices_give_zero_rows_only_where_asked() {
    let x = data(&[3, 4], DType::F32);
    let ids = ints(vec![2, -1, 0], &[3]);
    let got = gather_or_zero(&x, &ids, 0).unwrap();
    let want = reference::gather(&x.to_f64_vec(), &[3, 4], &[2, -1, 0], &[3], 0, true).unwrap();
    assert_eq!(got.to_f64_vec(), want);
    assert!(got.to_f64_vec()[4..8].iter().all(|&v| v == 0.0));
    let msg = gather(&x, &ids, 0).unwrap_err().to_string();
    assert!(msg.starts_with("gather") && msg.contains("indices[1] = -1") && msg.contains("(3, 4)"), "{msg}");
}

#[test]
fn segment_sums_match_the_reference_with_the_same_bits_everywhere() {
    // (data dims, axis, id dims, segments); ids include negatives (dropped) and duplicates.
    let cases: [(&[usize], usize, &[usize], usize); 8] = [
        (&[5, 3], 0, &[5], 3),
        (&[4], 0, &[4], 2),
        (&[2, 3, 17], 0, &[2, 3], 4),
        (&[3, 6, 16], 1, &[6], 5),
        (&[3, 4, 33], 1, &[4], 1),
        (&[0, 3], 0, &[0], 4),
        (&[6, 2], 0, &[6], 0),
        (&[3000, 65], 0, &[3000], 700),
    ];
    for (dims, axis, idims, n) in cases {
        let k: usize = idims.iter().product();
        let ids = indices(k, if n == 0 { -3 } else { -2 }, n.max(1) as i32 - if n == 0 { 1 } else { 0 }, 5 + k as u64);
        for dtype in [DType::F32, DType::F16, DType::I32] {
            let x = data(dims, dtype);
            let want = reference::segment_sum(&x.to_f64_vec(), dims, &ids, idims, axis, n).unwrap();
            let first = segment_sum(&x, &ints(ids.clone(), idims), axis, n).unwrap();
            // Quarter-integers up to ±3000·10 sum exactly in f32; float16 rounds once.
            let tol = if dtype == DType::F16 { 1e-3 } else { 0.0 };
            for (i, (&g, &w)) in first.to_f64_vec().iter().zip(&want).enumerate() {
                assert!((g - w).abs() <= tol * w.abs(), "{dims:?} {dtype} element {i}: {g} vs {w}");
            }
            everywhere(|| {
                let again = segment_sum(&x, &ints(ids.clone(), idims), axis, n).unwrap();
                assert_eq!(bits(&again), bits(&first), "{dims:?} {dtype}");
            });
        }
    }
}

#[test]
fn duplicates_are_summed_in_index_order() {
    // Segments of 1e8, 1 and -1e8 in turns: f32 sums depend on the order (1e8 + 1 rounds
    // to 1e8, but 1e8 - 1e8 + 1 = 1), and each must be the left-to-right sum in index order.
    let rows = 3000; // enough for two threads
    let mut v = vec![0.0f32; rows * 16];
    let mut ids = vec![0i32; rows];
    for (r, id) in ids.iter_mut().enumerate() {
        *id = (r % 7) as i32;
        let value = [1e8f32, 1.0, -1e8][(r / 7) % 3];
        v[r * 16..(r + 1) * 16].fill(value);
    }
    let x = T::from_vec(v.clone(), [rows, 16]).unwrap();
    everywhere(|| {
        let got = unsorted_segment_sum(&x, &ints(ids.clone(), &[rows]), 7).unwrap().to_vec::<f32>().unwrap();
        for j in 0..7 {
            let want =
                ids.iter().enumerate().filter(|&(_, &id)| id == j as i32).fold(0.0f32, |acc, (r, _)| acc + v[r * 16]);
            assert_eq!(got[j * 16].to_bits(), want.to_bits(), "segment {j}");
        }
    });
}

#[test]
fn unsorted_segment_sum_drops_negative_ids_and_refuses_large_ones() {
    let x = data(&[4, 2], DType::F32);
    let got = unsorted_segment_sum(&x, &ints(vec![1, -1, 1, -5], &[4]), 2).unwrap();
    let v = x.to_vec::<f32>().unwrap();
    assert_eq!(got.to_vec::<f32>().unwrap(), vec![0.0, 0.0, v[0] + v[4], v[1] + v[5]]);
    let msg = unsorted_segment_sum(&x, &ints(vec![0, 2, 0, 0], &[4]), 2).unwrap_err().to_string();
    assert!(msg.starts_with("unsorted_segment_sum") && msg.contains("indices[1] = 2"), "{msg}");
    // Ids must have data's leading shape.
    assert!(unsorted_segment_sum(&x, &ints(vec![0, 1, 0], &[3]), 2).is_err());
    assert!(unsorted_segment_sum(&x, &x, 2).is_err());
    // Nothing to sum into, whatever the segment count.
    assert_eq!(
        unsorted_segment_sum(&data(&[3, 0], DType::F32), &ints(vec![0, 1, 2], &[3]), usize::MAX >> 8)
            .unwrap()
            .num_elements(),
        0
    );
}

#[test]
fn gather_nd_and_scatter_nd_match_the_reference() {
    // (params / output dims, index dims)
    let cases: [(&[usize], &[usize]); 7] = [
        (&[3, 4], &[3, 2]),
        (&[3, 4, 2], &[2, 1]),
        (&[5, 2], &[3, 1]),
        (&[3, 2], &[2, 2]),
        (&[2, 3], &[4, 0]),
        (&[4, 17], &[2, 2, 1]),
        (&[600, 300], &[400, 1]),
    ];
    everywhere(|| {
        for (dims, idims) in cases {
            let q = idims[idims.len() - 1];
            let vectors: usize = idims[..idims.len() - 1].iter().product();
            let mut ids = Vec::new();
            for k in 0..vectors {
                for (a, &d) in dims[..q].iter().enumerate() {
                    ids.push(indices(1, 0, d as i32, (k * 31 + a) as u64)[0]);
                }
            }
            for dtype in [DType::F32, DType::F16, DType::I32] {
                let x = data(dims, dtype);
                let idx = ints(ids.clone(), idims);
                let got = gather_nd(&x, &idx).unwrap();
                let want = reference::gather_nd(&x.to_f64_vec(), dims, &ids, idims).unwrap();
                assert_eq!(got.to_f64_vec(), want, "gather_nd {dims:?} {idims:?} {dtype}");
                // scatter_nd adds the gathered slices back: duplicates add up.
                let back = scatter_nd(&idx, &got, &Shape::new(dims)).unwrap();
                let want = reference::scatter_nd(&ids, idims, &got.to_f64_vec(), dims).unwrap();
                let tol = if dtype == DType::F16 { 1e-3 } else { 0.0 };
                for (g, w) in back.to_f64_vec().iter().zip(&want) {
                    assert!((g - w).abs() <= tol * w.abs(), "scatter_nd {dims:?} {idims:?} {dtype}: {g} vs {w}");
                }
            }
        }
    });
}

#[test]
fn nd_errors_name_the_op_and_the_bad_vector() {
    let x = data(&[3, 4], DType::F32);
    let msg = gather_nd(&x, &ints(vec![0, 1, 3, 0], &[2, 2])).unwrap_err().to_string();
    assert!(msg.starts_with("gather_nd") && msg.contains("indices[1] = [3, 0]") && msg.contains("(3, 4)"), "{msg}");
    assert!(gather_nd(&x, &ints(vec![0, 0, 0], &[1, 3])).is_err()); // vectors longer than the rank
    assert!(gather_nd(&x, &ints(vec![1], &[])).is_err()); // indices of rank 0
    assert!(gather_nd(&x, &x).is_err());
    let up = data(&[2], DType::F32);
    let msg = scatter_nd(&ints(vec![1, 3], &[2, 1]), &up, &Shape::new(&[3])).unwrap_err().to_string();
    assert!(msg.starts_with("scatter_nd") && msg.contains("[3]"), "{msg}");
    assert!(scatter_nd(&ints(vec![1, 2], &[2, 1]), &data(&[3], DType::F32), &Shape::new(&[3])).is_err());
    assert!(scatter_nd(&ints(vec![1, 2], &[2, 1]), &up, &Shape::scalar()).is_err());
    // Vectors of length 0 select everything: each adds the whole update.
    let all = scatter_nd(&ints(vec![], &[2, 0]), &data(&[2, 3], DType::F32), &Shape::new(&[3])).unwrap();
    let d = data(&[2, 3], DType::F32).to_vec::<f32>().unwrap();
    assert_eq!(all.to_vec::<f32>().unwrap(), vec![d[0] + d[3], d[1] + d[4], d[2] + d[5]]);
    // Index vectors of length 0 whose count no allocation can hold.
    assert!(gather_nd(&x, &ints(vec![], &[1 << 62, 0])).unwrap_err().to_string().contains("gather_nd"));
}

#[test]
fn batched_nd_forms_pass_leading_axes_through() {
    let p = data(&[2, 3, 4], DType::F32);
    let idx = ints(vec![2, 0, 1], &[3, 1]);
    let got = gather_nd_lead(&p, &idx, 1).unwrap();
    assert_eq!(got.dims(), &[2, 3, 4]);
    for b in 0..2 {
        let row = gather_nd(&gather(&p, &ints(vec![b], &[]), 0).unwrap(), &idx).unwrap();
        assert_eq!(&got.to_f64_vec()[b as usize * 12..(b as usize + 1) * 12], row.to_f64_vec().as_slice());
    }
    let back = scatter_nd_lead(&idx, &got, 1, &Shape::new(&[3, 4])).unwrap();
    assert_eq!(back.to_f64_vec(), p.to_f64_vec()); // a permutation of the rows, put back
}

#[test]
fn one_hot_matches_the_reference() {
    for (ids, dims, depth) in [
        (vec![0, 2, 1, 3], vec![4], 4),
        (vec![0, 5, -1, 2], vec![2, 2], 3),
        (vec![], vec![0], 3),
        (vec![1, 1], vec![2], 0),
        (indices(5000, -1, 40, 3), vec![50, 100], 37),
    ] {
        let got = one_hot_indices(&ints(ids.clone(), &dims), depth).unwrap();
        assert_eq!(got.dtype(), DType::F32);
        assert_eq!(got.dims(), [dims.as_slice(), &[depth]].concat().as_slice());
        assert_eq!(got.to_f64_vec(), reference::one_hot(&ids, depth));
    }
    assert!(one_hot_indices(&data(&[2], DType::F32), 2).unwrap_err().to_string().contains("one_hot"));
    assert!(one_hot_indices(&ints(vec![1], &[1]), usize::MAX).is_err());
}

#[test]
fn float16_sums_round_once() {
    // 1 + 2^-11 + 2^-11 is 1 + 2^-10 in f32, but 1 in float16 summed step by step.
    let x = T::from_vec(vec![f16::ONE, f16::from_f32(2f32.powi(-11)), f16::from_f32(2f32.powi(-11))], [3]).unwrap();
    let s = unsorted_segment_sum(&x, &ints(vec![0, 0, 0], &[3]), 1).unwrap();
    assert_eq!(s.to_vec::<f16>().unwrap()[0], f16::from_f32(1.0 + 2f32.powi(-10)));
}

#[test]
fn int32_sums_wrap() {
    let x = T::from_vec(vec![i32::MAX, 1, 5], [3]).unwrap();
    let s = unsorted_segment_sum(&x, &ints(vec![0, 0, 1], &[3]), 2).unwrap();
    assert_eq!(s.to_vec::<i32>().unwrap(), vec![i32::MIN, 5]);
}
