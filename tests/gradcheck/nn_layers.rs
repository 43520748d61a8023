//! `tapeflow::nn`'s pooling, normalization, losses and dropout against central differences
//! of plain f64 references written here (windows enumerated tap by tap, nothing shared with
//! the kernels), in float32 and float16. Max pooling draws distinct values (at least 0.03
//! apart) so that no window has a tie the differences would straddle.

use proptest::prelude::*;
use proptest::sample::select;
use tapeflow::nn::{self, Padding};

use super::*;

/// (dims, ksize, strides, padding): odd sizes, stride > ksize, SAME and VALID, batch 1,
/// one channel, channels past a vector (17).
type Pool = ([usize; 4], [usize; 2], [usize; 2], Padding);

fn pool_case() -> impl Strategy<Value = Pool> {
    select(vec![
        ([2, 5, 5, 3], [2, 2], [2, 2], Padding::Valid),
        ([1, 7, 7, 1], [3, 3], [2, 2], Padding::Same),
        ([1, 5, 6, 2], [2, 3], [1, 2], Padding::Valid),
        ([1, 7, 5, 1], [2, 2], [3, 3], Padding::Same),
        ([1, 3, 4, 17], [3, 3], [1, 1], Padding::Same),
        ([2, 4, 3, 1], [1, 2], [3, 1], Padding::Valid),
    ])
}

/// Output size and padding before of one axis, by TensorFlow's rule.
fn axis(n: usize, k: usize, s: usize, padding: Padding) -> (usize, usize) {
    match padding {
        Padding::Valid => ((n - k) / s + 1, 0),
        Padding::Same => {
            let out = n.div_ceil(s);
            (out, ((out - 1) * s + k).saturating_sub(n) / 2)
        }
    }
}

/// `f(window values)` for every output element of a pool.
fn pool_ref(x: &[f64], (dims, k, s, padding): Pool, f: fn(&[f64]) -> f64) -> (Vec<f64>, Vec<usize>) {
    let [n, h, w, c] = dims;
    let ((oh, ph), (ow, pw)) = (axis(h, k[0], s[0], padding), axis(w, k[1], s[1], padding));
    let mut out = Vec::new();
    for b in 0..n {
        for i in 0..oh {
            for j in 0..ow {
                for ch in 0..c {
                    let mut window = Vec::new();
                    for th in 0..k[0] {
                        for tw in 0..k[1] {
                            let (r, q) =
                                ((i * s[0] + th) as isize - ph as isize, (j * s[1] + tw) as isize - pw as isize);
                            if (0..h as isize).contains(&r) && (0..w as isize).contains(&q) {
                                window.push(x[((b * h + r as usize) * w + q as usize) * c + ch]);
                            }
                        }
                    }
                    out.push(f(&window));
                }
            }
        }
    }
    (out, vec![n, oh, ow, c])
}

fn max_of(w: &[f64]) -> f64 {
    w.iter().copied().fold(f64::NEG_INFINITY, f64::max)
}

fn mean_of(w: &[f64]) -> f64 {
    w.iter().sum::<f64>() / w.len() as f64
}

/// Rows of the last axis of `x` (shape `dims`).
fn rows(x: &[f64], dims: &[usize]) -> Vec<Vec<f64>> {
    x.chunks(*dims.last().unwrap()).map(<[f64]>::to_vec).collect()
}

fn log_softmax_row(row: &[f64]) -> Vec<f64> {
    let max = max_of(row);
    let lse = row.iter().map(|v| (v - max).exp()).sum::<f64>().ln() + max;
    row.iter().map(|v| v - lse).collect()
}

fn both_precisions(name: &str, check: impl Fn(Prec) -> Check) -> Check {
    check(Prec::F32).map_err(|e| TestCaseError::fail(format!("{name} float32: {e}")))?;
    check(Prec::F16).map_err(|e| TestCaseError::fail(format!("{name} float16: {e}")))
}

fn sized(dims: Vec<usize>) -> impl Strategy<Value = (Vec<usize>, Vec<f64>, u64)> {
    let n = numel(&dims);
    // Away from 0: l2_normalize of a row near zero norm has its epsilon kink there.
    (Just(dims), Domain::avoiding(-2.0, 2.0, 0.0, 0.2).values(n), any::<u64>())
}

proptest! {
    #![proptest_config(config())]

    #[test]
    fn pool_gradients_match_central_differences(case in pool_case().prop_flat_map(|c| (Just(c), distinct_values(numel(&c.0)), any::<u64>()))) {
        let (pool, x, seed) = case;
        let (dims, k, s, p) = pool;
        both_precisions("max_pool2d", |prec| check_vjp("max_pool2d", prec, &[(x.clone(), dims.to_vec())], seed,
            |t| nn::max_pool2d(&t[0], k, s, p), |xs| pool_ref(&xs[0], pool, max_of)))?;
        both_precisions("avg_pool2d", |prec| check_vjp("avg_pool2d", prec, &[(x.clone(), dims.to_vec())], seed,
            |t| nn::avg_pool2d(&t[0], k, s, p), |xs| pool_ref(&xs[0], pool, mean_of)))?;
    }

    #[test]
    fn bias_add_and_l2_gradients_match_central_differences((dims, x, seed) in select(vec![vec![3, 4], vec![2, 3, 3, 5], vec![1, 17], vec![2, 1]]).prop_flat_map(sized)) {
        let c = *dims.last().unwrap();
        let bias: Vec<f64> = (0..c).map(|i| 0.3 * i as f64 - 1.0).collect();
        both_precisions("bias_add", |prec| check_vjp("bias_add", prec, &[(x.clone(), dims.clone()), (bias.clone(), vec![c])], seed,
            |t| nn::bias_add(&t[0], &t[1]),
            |xs| (xs[0].iter().enumerate().map(|(i, v)| v + xs[1][i % c]).collect(), dims.clone())))?;
        both_precisions("l2_loss", |prec| check_vjp("l2_loss", prec, &[(x.clone(), dims.clone())], seed,
            |t| nn::l2_loss(&t[0]),
            |xs| (vec![xs[0].iter().map(|v| v * v).sum::<f64>() / 2.0], vec![])))?;
        // l2_normalize along the last axis (rows of a few elements, away from zero norm).
        both_precisions("l2_normalize", |prec| check_vjp("l2_normalize", prec, &[(x.clone(), dims.clone())], seed,
            |t| nn::l2_normalize(&t[0], -1),
            |xs| {
                let out = rows(&xs[0], &dims).iter().flat_map(|r| {
                    let norm = r.iter().map(|v| v * v).sum::<f64>().max(1e-12).sqrt();
                    r.iter().map(|v| v / norm).collect::<Vec<_>>()
                }).collect();
                (out, dims.clone())
            }))?;
    }

    #[test]
    fn moments_and_batch_normalization_gradients_match_central_differences((dims, x, seed) in select(vec![vec![4, 3], vec![2, 3, 3, 2], vec![5, 1]]).prop_flat_map(sized)) {
        let c = *dims.last().unwrap();
        let count = numel(&dims) / c;
        let axes: Vec<isize> = (0..dims.len() as isize - 1).collect();
        let stats = |x: &[f64]| {
            let mean: Vec<f64> = (0..c).map(|j| x.iter().skip(j).step_by(c).sum::<f64>() / count as f64).collect();
            let var: Vec<f64> = (0..c).map(|j| x.iter().skip(j).step_by(c).map(|v| (v - mean[j]).powi(2)).sum::<f64>() / count as f64).collect();
            (mean, var)
        };
        for which in [0, 1] {
            let axes = axes.clone();
            both_precisions("moments", |prec| check_vjp("moments", prec, &[(x.clone(), dims.clone())], seed,
                |t| nn::moments(&t[0], &axes, false).map(|m| if which == 0 { m.0 } else { m.1 }),
                |xs| { let (m, v) = stats(&xs[0]); (if which == 0 { m } else { v }, vec![c]) }))?;
        }
        let param = |k: f64| (0..c).map(|j| k + 0.25 * j as f64).collect::<Vec<f64>>();
        let inputs = [(x.clone(), dims.clone()), (param(-0.2), vec![c]), (param(0.5), vec![c]), (param(0.1), vec![c]), (param(0.8), vec![c])];
        both_precisions("batch_normalization", |prec| check_vjp("batch_normalization", prec, &inputs, seed,
            |t| nn::batch_normalization(&t[0], &t[1], &t[2], Some(&t[3]), Some(&t[4]), 1e-3),
            |xs| {
                let out = xs[0].iter().enumerate().map(|(i, v)| {
                    let j = i % c;
                    (v - xs[1][j]) / (xs[2][j] + 1e-3).sqrt() * xs[4][j] + xs[3][j]
                }).collect();
                (out, dims.clone())
            }))?;
    }

    #[test]
    fn loss_gradients_match_central_differences((dims, x, seed) in select(vec![vec![4, 5], vec![1, 3], vec![2, 2, 17], vec![6]]).prop_flat_map(sized)) {
        // Label rows summing to 1: TensorFlow's logits gradient, softmax − labels, is the
        // loss's derivative only then (the labels' gradient, −log_softmax, is exact anyway).
        let c = *dims.last().unwrap();
        let raw: Vec<f64> = (0..x.len()).map(|i| ((i * 7) % 5 + 1) as f64).collect();
        let z: Vec<f64> = raw.chunks(c).flat_map(|r| { let s: f64 = r.iter().sum(); r.iter().map(move |v| v / s) }).collect();
        let inputs = [(x.clone(), dims.clone()), (z, dims.clone())];
        both_precisions("softmax_cross_entropy", |prec| check_vjp("softmax_cross_entropy", prec, &inputs, seed,
            |t| nn::softmax_cross_entropy(&t[0], &t[1]),
            |xs| {
                let loss = rows(&xs[0], &dims).iter().zip(rows(&xs[1], &dims)).map(|(l, z)| {
                    -log_softmax_row(l).iter().zip(&z).map(|(a, b)| a * b).sum::<f64>()
                }).collect();
                (loss, dims[..dims.len() - 1].to_vec())
            }))?;
        both_precisions("sigmoid_cross_entropy", |prec| check_vjp("sigmoid_cross_entropy", prec, &inputs, seed,
            |t| nn::sigmoid_cross_entropy(&t[0], &t[1]),
            |xs| (xs[0].iter().zip(&xs[1]).map(|(x, z)| x.max(0.0) - x * z + (-x.abs()).exp().ln_1p()).collect(), dims.clone())))?;
    }
}
