//! Catalog II's shape, slicing, indexing and einsum ops against central differences of
//! plain f64 references written here, element by element from multi-indices (no row
//! copies, no index resolution: nothing shared with the kernels). Every op is linear in
//! its float input except two-operand einsum (bilinear), so the differences are exact up
//! to rounding; the properties check the index bookkeeping of each gradient rule.

use proptest::collection::vec;
use proptest::prelude::*;
use proptest::sample::select;

use super::*;

/// Values away from nothing in particular: these ops have no kinks.
fn values(n: usize) -> impl Strategy<Value = Vec<f64>> {
    Domain::range(-3.0, 3.0).values(n)
}

fn resolve(axis: isize, rank: usize) -> usize {
    if axis < 0 { (axis + rank as isize) as usize } else { axis as usize }
}

/// Shapes around the vector width, empty and size-1 axes.
fn shape() -> impl Strategy<Value = Vec<usize>> {
    select(vec![vec![5], vec![17], vec![3, 4], vec![2, 16], vec![2, 3, 4], vec![1, 33], vec![0, 3], vec![4, 1, 2]])
}

// ---- references ----

/// `x` (shape `dims`) read at `source(out index)` for every index of `out`.
fn remap(x: &[f64], dims: &[usize], out: &[usize], source: impl Fn(&[usize]) -> Option<Vec<usize>>) -> Vec<f64> {
    (0..numel(out)).map(|o| source(&unravel(o, out)).map_or(0.0, |i| x[ravel(&i, dims)])).collect()
}

fn stack_ref(xs: &[Vec<f64>], dims: &[usize], axis: usize) -> (Vec<f64>, Vec<usize>) {
    let mut out = dims.to_vec();
    out.insert(axis, xs.len());
    let values = (0..numel(&out))
        .map(|o| {
            let mut i = unravel(o, &out);
            let which = i.remove(axis);
            xs[which][ravel(&i, dims)]
        })
        .collect();
    (values, out)
}

fn tile_ref(x: &[f64], dims: &[usize], multiples: &[usize]) -> (Vec<f64>, Vec<usize>) {
    let out: Vec<usize> = dims.iter().zip(multiples).map(|(d, m)| d * m).collect();
    (remap(x, dims, &out, |i| Some(i.iter().zip(dims).map(|(&i, &d)| i % d).collect())), out)
}

/// Python's `range(n)[begin:end:step]`, by CPython's slice adjustment.
fn python_indices(n: usize, begin: isize, end: isize, step: isize) -> Vec<usize> {
    let n = n as isize;
    let adjust = |v: isize| {
        if v < 0 {
            let v = v + n;
            if v < 0 { if step < 0 { -1 } else { 0 } } else { v }
        } else if v >= n {
            if step < 0 { n - 1 } else { n }
        } else {
            v
        }
    };
    let (mut i, stop) = (adjust(begin), adjust(end));
    let mut picked = Vec::new();
    while (step > 0 && i < stop) || (step < 0 && i > stop) {
        picked.push(i as usize);
        i += step;
    }
    picked
}

/// `x` restricted to `picks[axis]` along each axis.
fn pick_ref(x: &[f64], dims: &[usize], picks: &[Vec<usize>]) -> (Vec<f64>, Vec<usize>) {
    let out: Vec<usize> = picks.iter().map(Vec::len).collect();
    (remap(x, dims, &out, |i| Some(i.iter().zip(picks).map(|(&i, p)| p[i]).collect())), out)
}

#[derive(Clone, Copy, Debug, PartialEq)]
enum Mode {
    Constant(f64),
    Reflect,
    Symmetric,
}

fn pad_ref(x: &[f64], dims: &[usize], paddings: &[[usize; 2]], mode: Mode) -> (Vec<f64>, Vec<usize>) {
    let out: Vec<usize> = dims.iter().zip(paddings).map(|(d, p)| d + p[0] + p[1]).collect();
    let values = (0..numel(&out))
        .map(|o| {
            let mut index = Vec::new();
            for ((&i, &d), p) in unravel(o, &out).iter().zip(dims).zip(paddings) {
                let (pos, d) = (i as isize - p[0] as isize, d as isize);
                // Mirror images: reflect about the edge element, symmetric about the edge.
                let j = match mode {
                    _ if (0..d).contains(&pos) => pos,
                    Mode::Constant(c) => return c,
                    Mode::Reflect => {
                        if pos < 0 {
                            -pos
                        } else {
                            2 * d - 2 - pos
                        }
                    }
                    Mode::Symmetric => {
                        if pos < 0 {
                            -1 - pos
                        } else {
                            2 * d - 1 - pos
                        }
                    }
                };
                index.push(j as usize);
            }
            x[ravel(&index, dims)]
        })
        .collect();
    (values, out)
}

fn gather_ref(x: &[f64], dims: &[usize], ids: &[i32], idims: &[usize], axis: usize) -> (Vec<f64>, Vec<usize>) {
    let out: Vec<usize> = dims[..axis].iter().chain(idims).chain(&dims[axis + 1..]).copied().collect();
    let values = remap(x, dims, &out, |i| {
        let k = ravel(&i[axis..axis + idims.len()], idims);
        Some(i[..axis].iter().chain(&[ids[k] as usize]).chain(&i[axis + idims.len()..]).copied().collect())
    });
    (values, out)
}

fn gather_nd_ref(x: &[f64], dims: &[usize], ids: &[i32], idims: &[usize]) -> (Vec<f64>, Vec<usize>) {
    let q = idims[idims.len() - 1];
    let lead = &idims[..idims.len() - 1];
    let out: Vec<usize> = lead.iter().chain(&dims[q..]).copied().collect();
    let values = remap(x, dims, &out, |i| {
        let k = ravel(&i[..lead.len()], lead);
        Some(ids[k * q..(k + 1) * q].iter().map(|&v| v as usize).chain(i[lead.len()..].iter().copied()).collect())
    });
    (values, out)
}

/// Adds every update element into its place (scatter_nd, and unsorted_segment_sum with
/// `target` mapping a data index to its segment's index or `None` when dropped).
fn add_into(x: &[f64], dims: &[usize], out: &[usize], target: impl Fn(&[usize]) -> Option<Vec<usize>>) -> Vec<f64> {
    let mut sums = vec![0.0; numel(out)];
    for (i, &v) in x.iter().enumerate() {
        if let Some(t) = target(&unravel(i, dims)) {
            sums[ravel(&t, out)] += v;
        }
    }
    sums
}

/// Σ over every assignment of the equation's labels of the operands' product.
fn einsum_ref(inputs: &[&str], output: &str, xs: &[Vec<f64>], dims: &[Vec<usize>]) -> (Vec<f64>, Vec<usize>) {
    let mut labels: Vec<(char, usize)> = Vec::new();
    for (term, d) in inputs.iter().zip(dims) {
        for (c, &n) in term.chars().zip(d) {
            if !labels.iter().any(|&(l, _)| l == c) {
                labels.push((c, n));
            }
        }
    }
    let size = |c: char| labels.iter().find(|&&(l, _)| l == c).map_or(0, |&(_, n)| n);
    let out: Vec<usize> = output.chars().map(size).collect();
    let all: Vec<usize> = labels.iter().map(|&(_, n)| n).collect();
    let mut sums = vec![0.0; numel(&out)];
    for a in 0..numel(&all) {
        let value_of = unravel(a, &all);
        let at = |c: char| value_of[labels.iter().position(|&(l, _)| l == c).unwrap()];
        let product: f64 = inputs
            .iter()
            .zip(xs)
            .zip(dims)
            .map(|((term, x), d)| x[ravel(&term.chars().map(at).collect::<Vec<_>>(), d)])
            .product();
        sums[ravel(&output.chars().map(at).collect::<Vec<_>>(), &out)] += product;
    }
    (sums, out)
}

// ---- cases ----

fn one_input(dims: Vec<usize>) -> impl Strategy<Value = (Vec<usize>, Vec<f64>, u64)> {
    let n = numel(&dims);
    (Just(dims), values(n), any::<u64>())
}

fn both(name: &str, check: impl Fn(Prec) -> Check) -> Check {
    check(Prec::F32).map_err(|e| TestCaseError::fail(format!("{name} float32: {e}")))?;
    check(Prec::F16).map_err(|e| TestCaseError::fail(format!("{name} float16: {e}")))
}

fn slice_case() -> impl Strategy<Value = (Vec<usize>, Vec<usize>, Vec<isize>, Vec<f64>, u64)> {
    shape().prop_flat_map(|dims| {
        let begin: Vec<BoxedStrategy<usize>> = dims.iter().map(|&d| (0..=d).boxed()).collect();
        (Just(dims), begin).prop_flat_map(|(dims, begin)| {
            let size: Vec<BoxedStrategy<isize>> =
                dims.iter().zip(&begin).map(|(&d, &b)| (-1..=(d - b) as isize).boxed()).collect();
            let n = numel(&dims);
            (Just(dims), Just(begin), size, values(n), any::<u64>())
        })
    })
}

type Strided = (Vec<usize>, Vec<isize>, Vec<isize>, Vec<isize>, Vec<f64>, u64);

fn strided_case() -> impl Strategy<Value = Strided> {
    shape().prop_flat_map(|dims| {
        let r = dims.len();
        let n = numel(&dims);
        (
            Just(dims),
            vec(-7isize..7, r),
            vec(-7isize..7, r),
            vec(select(vec![-3isize, -2, -1, 1, 2, 3]), r),
            values(n),
            any::<u64>(),
        )
    })
}

fn gather_case() -> impl Strategy<Value = (Vec<usize>, usize, Vec<usize>, Vec<i32>, Vec<f64>, u64)> {
    (shape(), select(vec![vec![], vec![3], vec![2, 2], vec![0], vec![17]]))
        .prop_filter("a non-empty axis", |(d, _)| !d.contains(&0))
        .prop_flat_map(|(dims, idims)| {
            let rank = dims.len();
            (0..rank).prop_flat_map(move |axis| {
                let (dims, idims) = (dims.clone(), idims.clone());
                let k = numel(&idims);
                let n = numel(&dims);
                (Just(dims.clone()), Just(axis), Just(idims), vec(0..dims[axis] as i32, k), values(n), any::<u64>())
            })
        })
}

/// (params / output shape, index dims, indices)
fn nd_case() -> impl Strategy<Value = (Vec<usize>, Vec<usize>, Vec<i32>, u64)> {
    select(vec![
        (vec![3, 4], vec![3, 2]),
        (vec![3, 4, 2], vec![2, 1]),
        (vec![5, 2], vec![4, 1]),
        (vec![3, 2], vec![2, 2]),
        (vec![2, 17], vec![5, 1]),
        (vec![4], vec![2, 3, 1]),
        (vec![2, 3], vec![2, 0]),
    ])
    .prop_flat_map(|(dims, idims)| {
        let q = idims[idims.len() - 1];
        let vectors = numel(&idims[..idims.len() - 1]);
        let one: Vec<BoxedStrategy<i32>> = dims[..q].iter().map(|&d| (0..d as i32).boxed()).collect();
        (Just(dims), Just(idims), vec(one, vectors).prop_map(|v| v.concat()), any::<u64>())
    })
}

fn einsum_case() -> impl Strategy<Value = (&'static str, Vec<Vec<usize>>)> {
    select(vec![
        ("ij,jk->ik", vec![vec![3, 4], vec![4, 5]]),
        ("bij,bjk->bik", vec![vec![2, 3, 4], vec![2, 4, 2]]),
        ("bqd,bkd->bqk", vec![vec![2, 3, 17], vec![2, 5, 17]]),
        ("ij,kj->ik", vec![vec![3, 16], vec![2, 16]]),
        ("i,i->", vec![vec![33], vec![33]]),
        ("i,j->ij", vec![vec![3], vec![4]]),
        ("ij,ij->ij", vec![vec![2, 3], vec![2, 3]]),
        ("ijk,jil->kl", vec![vec![2, 3, 4], vec![3, 2, 5]]),
        ("ij,j->i", vec![vec![4, 15], vec![15]]),
        ("ab,cd->", vec![vec![2, 3], vec![2, 2]]),
        ("ij->ji", vec![vec![3, 4]]),
        ("ij->", vec![vec![3, 4]]),
        ("ijk->kj", vec![vec![2, 3, 4]]),
        ("ii->i", vec![vec![4, 4]]),
        ("iji->j", vec![vec![3, 2, 3]]),
        ("ii,i->", vec![vec![3, 3], vec![3]]),
    ])
}

proptest! {
    #![proptest_config(config())]

    #[test]
    fn squeeze_and_expand_dims_gradients_match_central_differences((dims, x, seed) in one_input(vec![1, 3, 1, 2])) {
        for (axes, want) in [(vec![], vec![3, 2]), (vec![2isize], vec![1, 3, 2]), (vec![-4, 2], vec![3, 2])] {
            both("squeeze", |p| check_vjp("squeeze", p, &[(x.clone(), dims.clone())], seed, |t| t[0].squeeze(&axes), |xs| (xs[0].clone(), want.clone())))?;
        }
        for axis in [0isize, 2, -1, -5] {
            let a = resolve(axis, dims.len() + 1);
            let mut want = dims.clone();
            want.insert(a, 1);
            both("expand_dims", |p| check_vjp("expand_dims", p, &[(x.clone(), dims.clone())], seed, |t| t[0].expand_dims(axis), |xs| (xs[0].clone(), want.clone())))?;
        }
    }

    #[test]
    fn stack_gradient_matches_central_differences(dims in shape(), count in 1usize..4, axis_pick in 0usize..8, seed in any::<u64>()) {
        let axis = (axis_pick % (dims.len() + 1)) as isize - if axis_pick % 2 == 0 { 0 } else { dims.len() as isize + 1 };
        let inputs: Vec<(Vec<f64>, Vec<usize>)> = (0..count).map(|k| ((0..numel(&dims)).map(|i| ((i * 7 + k * 3) % 11) as f64 * 0.3 - 1.5).collect(), dims.clone())).collect();
        let a = resolve(axis, dims.len() + 1);
        both("stack", |p| check_vjp(&format!("stack axis {axis}"), p, &inputs, seed, |t| stack(t, axis), |xs| stack_ref(xs, &dims, a)))?;
    }

    #[test]
    fn unstack_and_split_gradients_match_central_differences((dims, x, seed) in shape().prop_flat_map(one_input), pick in 0usize..64) {
        let rank = dims.len();
        let a = pick % rank;
        let len = dims[a];
        if len > 0 {
            let i = pick % len;
            let mut picks: Vec<Vec<usize>> = dims.iter().map(|&d| (0..d).collect()).collect();
            picks[a] = vec![i];
            let mut out_dims = dims.clone();
            out_dims.remove(a);
            both("unstack", |p| check_vjp("unstack", p, &[(x.clone(), dims.clone())], seed, |t| Ok(t[0].unstack(a as isize)?.swap_remove(i)), |xs| (pick_ref(&xs[0], &dims, &picks).0, out_dims.clone())))?;
        }
        // Sizes [s, len - s]: check the second piece.
        let s = pick % (len + 1);
        let mut picks: Vec<Vec<usize>> = dims.iter().map(|&d| (0..d).collect()).collect();
        picks[a] = (s..len).collect();
        both("split", |p| check_vjp("split", p, &[(x.clone(), dims.clone())], seed, |t| Ok(t[0].split(&[s, len - s], a as isize - rank as isize)?.swap_remove(1)), |xs| pick_ref(&xs[0], &dims, &picks)))?;
    }

    #[test]
    fn tile_gradient_matches_central_differences((dims, x, seed) in shape().prop_flat_map(one_input), m in vec(0usize..4, 3)) {
        let multiples: Vec<usize> = m[..dims.len().min(3)].iter().copied().chain(std::iter::repeat(1)).take(dims.len()).collect();
        both("tile", |p| check_vjp(&format!("tile {multiples:?}"), p, &[(x.clone(), dims.clone())], seed, |t| t[0].tile(&multiples), |xs| tile_ref(&xs[0], &dims, &multiples)))?;
    }

    #[test]
    fn pad_gradients_match_central_differences((dims, x, seed) in shape().prop_flat_map(one_input), raw in vec((0usize..4, 0usize..4), 3), c in -2.0f64..2.0) {
        let paddings: Vec<[usize; 2]> = raw.iter().take(dims.len()).map(|&(b, a)| [b, a]).collect();
        let constant = f16::from_f64(c).to_f64(); // exact in both precisions
        both("pad constant", |p| check_vjp(&format!("pad {paddings:?} constant"), p, &[(x.clone(), dims.clone())], seed, |t| t[0].pad(&paddings, PadMode::Constant(constant)), |xs| pad_ref(&xs[0], &dims, &paddings, Mode::Constant(constant))))?;
        for (mode, ours, limit) in [(Mode::Reflect, PadMode::Reflect, 1usize), (Mode::Symmetric, PadMode::Symmetric, 0)] {
            if mode == Mode::Reflect && dims.contains(&0) {
                continue; // an empty axis cannot reflect (an Err, as in TensorFlow)
            }
            // Within MirrorPad's limits: reflect pads < dim, symmetric ≤ dim.
            let fitted: Vec<[usize; 2]> = paddings.iter().zip(&dims).map(|(p, &d)| { let m = (d + 1).saturating_sub(limit + 1); [p[0].min(m), p[1].min(m)] }).collect();
            both("pad mirror", |p| check_vjp(&format!("pad {fitted:?} {mode:?}"), p, &[(x.clone(), dims.clone())], seed, |t| t[0].pad(&fitted, ours), |xs| pad_ref(&xs[0], &dims, &fitted, mode)))?;
        }
    }

    #[test]
    fn reverse_gradient_matches_central_differences((dims, x, seed) in shape().prop_flat_map(one_input), mask in 0usize..8) {
        let axes: Vec<isize> = (0..dims.len()).filter(|a| mask >> a & 1 == 1).map(|a| a as isize - if a % 2 == 0 { 0 } else { dims.len() as isize }).collect();
        let picks: Vec<Vec<usize>> = dims.iter().enumerate().map(|(a, &d)| if mask >> a & 1 == 1 { (0..d).rev().collect() } else { (0..d).collect() }).collect();
        both("reverse", |p| check_vjp(&format!("reverse {axes:?}"), p, &[(x.clone(), dims.clone())], seed, |t| t[0].reverse(&axes), |xs| pick_ref(&xs[0], &dims, &picks)))?;
    }

    #[test]
    fn slice_gradient_matches_central_differences((dims, begin, size, x, seed) in slice_case()) {
        let picks: Vec<Vec<usize>> = dims.iter().zip(&begin).zip(&size).map(|((&d, &b), &s)| (b..if s < 0 { d } else { b + s as usize }).collect()).collect();
        both("slice", |p| check_vjp(&format!("slice {begin:?} {size:?}"), p, &[(x.clone(), dims.clone())], seed, |t| t[0].slice(&begin, &size), |xs| pick_ref(&xs[0], &dims, &picks)))?;
    }

    #[test]
    fn strided_slice_gradient_matches_central_differences((dims, begin, end, strides, x, seed) in strided_case()) {
        let picks: Vec<Vec<usize>> = (0..dims.len()).map(|a| python_indices(dims[a], begin[a], end[a], strides[a])).collect();
        both("strided_slice", |p| check_vjp(&format!("strided_slice {begin:?} {end:?} {strides:?}"), p, &[(x.clone(), dims.clone())], seed, |t| t[0].strided_slice(&begin, &end, &strides), |xs| pick_ref(&xs[0], &dims, &picks)))?;
    }

    #[test]
    fn gather_gradient_matches_central_differences((dims, axis, idims, ids, x, seed) in gather_case()) {
        let it = Tensor::from_vec(ids.clone(), idims.clone()).unwrap();
        both("gather", |p| check_vjp(&format!("gather axis {axis} {ids:?}"), p, &[(x.clone(), dims.clone())], seed, |t| t[0].gather(&it, axis as isize), |xs| gather_ref(&xs[0], &dims, &ids, &idims, axis)))?;
    }

    #[test]
    fn unsorted_segment_sum_gradient_matches_central_differences((dims, x, seed) in shape().prop_flat_map(one_input), ids in vec(-1i32..4, 17), lead in 0usize..3) {
        let r = lead.min(dims.len());
        let idims = dims[..r].to_vec();
        let ids: Vec<i32> = ids.iter().copied().cycle().take(numel(&idims)).collect();
        let it = Tensor::from_vec(ids.clone(), idims.clone()).unwrap();
        let mut out = vec![4];
        out.extend_from_slice(&dims[r..]);
        both("unsorted_segment_sum", |p| check_vjp(&format!("unsorted_segment_sum {ids:?}"), p, &[(x.clone(), dims.clone())], seed, |t| unsorted_segment_sum(&t[0], &it, 4), |xs| {
            let target = |i: &[usize]| { let id = ids[ravel(&i[..r], &idims)]; (id >= 0).then(|| std::iter::once(id as usize).chain(i[r..].iter().copied()).collect()) };
            (add_into(&xs[0], &dims, &out, target), out.clone())
        }))?;
    }

    #[test]
    fn gather_nd_and_scatter_nd_gradients_match_central_differences((dims, idims, ids, seed) in nd_case()) {
        let it = Tensor::from_vec(ids.clone(), idims.clone()).unwrap();
        let x: Vec<f64> = (0..numel(&dims)).map(|i| (i as f64 * 0.37).sin()).collect();
        both("gather_nd", |p| check_vjp("gather_nd", p, &[(x.clone(), dims.clone())], seed, |t| t[0].gather_nd(&it), |xs| gather_nd_ref(&xs[0], &dims, &ids, &idims)))?;
        let q = idims[idims.len() - 1];
        let lead = idims[..idims.len() - 1].to_vec();
        let udims: Vec<usize> = lead.iter().chain(&dims[q..]).copied().collect();
        let u: Vec<f64> = (0..numel(&udims)).map(|i| (i as f64 * 0.53).cos()).collect();
        both("scatter_nd", |p| check_vjp("scatter_nd", p, &[(u.clone(), udims.clone())], seed, |t| scatter_nd(&it, &t[0], dims.clone()), |xs| {
            let target = |i: &[usize]| { let k = ravel(&i[..lead.len()], &lead); Some(ids[k * q..(k + 1) * q].iter().map(|&v| v as usize).chain(i[lead.len()..].iter().copied()).collect()) };
            (add_into(&xs[0], &udims, &dims, target), dims.clone())
        }))?;
    }

    #[test]
    fn einsum_gradients_match_central_differences((equation, dims) in einsum_case(), seed in any::<u64>()) {
        let (lhs, output) = equation.split_once("->").unwrap();
        let terms: Vec<&str> = lhs.split(',').collect();
        let inputs: Vec<(Vec<f64>, Vec<usize>)> = dims.iter().enumerate().map(|(k, d)| ((0..numel(d)).map(|i| ((i * 5 + k * 2) % 13) as f64 * 0.2 - 1.2).collect(), d.clone())).collect();
        both("einsum", |p| check_vjp(equation, p, &inputs, seed, |t| einsum(equation, t), |xs| einsum_ref(&terms, output, xs, &dims)))?;
    }
}

#[test]
fn the_references_agree_with_worked_examples() {
    // Python: range(5)[-1:0:-2] = [4, 2]; range(5)[-10:10:3] = [0, 3].
    assert_eq!(python_indices(5, -1, 0, -2), vec![4, 2]);
    assert_eq!(python_indices(5, -10, 10, 3), vec![0, 3]);
    // [1, 2, 3] reflect-padded by 2 both ways: 3 2 | 1 2 3 | 2 1; symmetric: 2 1 | 1 2 3 | 3 2.
    let x = [1.0, 2.0, 3.0];
    assert_eq!(pad_ref(&x, &[3], &[[2, 2]], Mode::Reflect).0, vec![3.0, 2.0, 1.0, 2.0, 3.0, 2.0, 1.0]);
    assert_eq!(pad_ref(&x, &[3], &[[2, 2]], Mode::Symmetric).0, vec![2.0, 1.0, 1.0, 2.0, 3.0, 3.0, 2.0]);
    // [[1, 2], [3, 4]] · [[5, 6], [7, 8]] = [[19, 22], [43, 50]]; its trace "ii" is 5.
    let (a, b) = (vec![1.0, 2.0, 3.0, 4.0], vec![5.0, 6.0, 7.0, 8.0]);
    let d = vec![vec![2, 2], vec![2, 2]];
    assert_eq!(einsum_ref(&["ij", "jk"], "ik", &[a.clone(), b], &d).0, vec![19.0, 22.0, 43.0, 50.0]);
    assert_eq!(einsum_ref(&["ii"], "", &[a], &d[..1]).0, vec![5.0]);
}
