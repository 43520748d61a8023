//! `tf.einsum` for one or two operands without ellipsis, lowered to differentiable ops
//! (transposes, reshapes, sums, products, matmuls, and gathers for diagonals), so its
//! gradients of every order are theirs.
//!
//! The lowering, per operand: a label repeated within the operand takes the diagonal (the
//! two axes moved last, flattened, and every `n + 1`-th element gathered); a label found
//! nowhere else and not in the output is summed out. Of two operands, the labels both
//! share are batch labels when the output keeps them and contracted ones otherwise. With
//! contracted labels, the operands become `[batch, free, contracted]` and
//! `[batch, contracted, free]` matrices for one (batched) matmul; without, they are
//! aligned to the output's axes and multiplied with broadcasting. A final transpose puts
//! the output's axes in the equation's order.

use tapeflow_dtype::{Error, Result};

use crate::ops::{TensorMath, gather, shape};
use crate::runtime::Tensor;

const OP: &str = "einsum";

/// A parsed equation: each input's labels and the output's.
struct Equation {
    inputs: Vec<Vec<char>>,
    output: Vec<char>,
}

fn describe(operands: &[Tensor]) -> String {
    let parts: Vec<String> = operands.iter().map(|t| format!("{} {}", t.shape(), t.dtype())).collect();
    parts.join(", ")
}

/// Parses and checks `equation` against the operands: labels are ASCII letters, one per
/// axis; output labels appear once and in some input; a label has one size everywhere.
fn parse(equation: &str, operands: &[Tensor]) -> Result<Equation> {
    let fail = |why: String| Error::InvalidArgument {
        op: OP,
        reason: format!("equation {equation:?} with operands of shapes {}: {why}", describe(operands)),
    };
    if equation.contains('.') {
        return Err(fail("ellipsis (`...`) is not supported".into()));
    }
    if !(1..=2).contains(&operands.len()) {
        return Err(fail(format!("{} operands given; one or two are supported", operands.len())));
    }
    let text: String = equation.chars().filter(|c| !c.is_whitespace()).collect();
    let (lhs, rhs) = match text.split_once("->") {
        Some((lhs, rhs)) => (lhs, Some(rhs)),
        None => (text.as_str(), None),
    };
    let labels = |term: &str| -> Result<Vec<char>> {
        match term.chars().find(|c| !c.is_ascii_alphabetic()) {
            Some(c) => Err(fail(format!("{c:?} is not a label (labels are letters)"))),
            None => Ok(term.chars().collect()),
        }
    };
    let inputs = lhs.split(',').map(labels).collect::<Result<Vec<_>>>()?;
    if inputs.len() != operands.len() {
        return Err(fail(format!("{} input terms for {} operands", inputs.len(), operands.len())));
    }
    let mut size: Vec<(char, usize)> = Vec::new();
    for (term, x) in inputs.iter().zip(operands) {
        if term.len() != x.rank() {
            return Err(fail(format!(
                "term {:?} has {} labels for rank {}",
                String::from_iter(term),
                term.len(),
                x.rank()
            )));
        }
        for (&label, &d) in term.iter().zip(x.dims()) {
            match size.iter().find(|(l, _)| *l == label) {
                Some(&(_, known)) if known != d => {
                    return Err(fail(format!("label {label:?} has sizes {known} and {d}")));
                }
                Some(_) => {}
                None => size.push((label, d)),
            }
        }
    }
    let output = match rhs {
        Some(rhs) => {
            let output = labels(rhs)?;
            for (i, l) in output.iter().enumerate() {
                if output[..i].contains(l) {
                    return Err(fail(format!("output label {l:?} appears twice")));
                }
                if !size.iter().any(|(known, _)| known == l) {
                    return Err(fail(format!("output label {l:?} is in no input")));
                }
            }
            output
        }
        // Implicit output: the labels used once, in alphabetical order (NumPy's rule).
        None => {
            let all: Vec<char> = inputs.concat();
            let mut once: Vec<char> =
                size.iter().map(|&(l, _)| l).filter(|l| all.iter().filter(|m| *m == l).count() == 1).collect();
            once.sort_unstable();
            once
        }
    };
    Ok(Equation { inputs, output })
}

/// The first label that appears twice in `labels`, as the positions of two occurrences.
fn repeated(labels: &[char]) -> Option<(usize, usize)> {
    (0..labels.len()).find_map(|j| labels[..j].iter().position(|&l| l == labels[j]).map(|i| (i, j)))
}

/// The diagonal of `x` over its axes `i < j` (of equal size n): those axes removed and one
/// of size n appended, holding `x[.., k, .., k, ..]`.
fn diagonal(x: &Tensor, i: usize, j: usize) -> Result<Tensor> {
    let n = x.dims()[i];
    let mut perm: Vec<usize> = (0..x.rank()).filter(|&a| a != i && a != j).collect();
    let mut dims: Vec<usize> = perm.iter().map(|&a| x.dims()[a]).collect();
    perm.extend([i, j]);
    // The flattened pair is indexed by int32 (the last pick is n² - 1).
    if n.checked_mul(n).is_none_or(|square| square > i32::MAX as usize) {
        return Err(Error::InvalidArgument {
            op: OP,
            reason: format!("a diagonal of size {n} of shape {} {} is too large", x.shape(), x.dtype()),
        });
    }
    dims.push(n * n);
    let last = dims.len() - 1;
    let flat = shape::reshape_to(&shape::transpose(x, &perm)?, dims)?;
    let picks: Vec<i32> = (0..n).map(|k| (k * (n + 1)) as i32).collect();
    gather::gather_axis(&flat, &Tensor::from_vec(picks, [n])?, last, false)
}

/// `x` with labels `labels` reduced to those `keep` accepts: repeated labels to their
/// diagonal, the others summed out. Returns the tensor and its labels.
fn reduce_term(x: &Tensor, labels: &[char], keep: impl Fn(char) -> bool) -> Result<(Tensor, Vec<char>)> {
    let (mut x, mut labels) = (x.clone(), labels.to_vec());
    while let Some((i, j)) = repeated(&labels) {
        x = diagonal(&x, i, j)?;
        let label = labels[i];
        labels.remove(j);
        labels.remove(i);
        labels.push(label);
    }
    let summed: Vec<isize> = (0..labels.len()).filter(|&a| !keep(labels[a])).map(|a| a as isize).collect();
    if !summed.is_empty() {
        x = x.sum(&summed, false)?;
        labels.retain(|&l| keep(l));
    }
    Ok((x, labels))
}

/// The positions in `labels` of `wanted`, in `wanted`'s order.
fn positions(labels: &[char], wanted: &[char]) -> Vec<usize> {
    wanted.iter().filter_map(|w| labels.iter().position(|l| l == w)).collect()
}

/// `x` (labels `labels`) transposed to the order of `output`.
fn to_output(x: &Tensor, labels: &[char], output: &[char]) -> Result<Tensor> {
    shape::transpose(x, &positions(labels, output))
}

/// `tf.einsum(equation, *operands)`.
pub(crate) fn einsum(equation: &str, operands: &[Tensor]) -> Result<Tensor> {
    let eq = parse(equation, operands)?;
    if let [a, b] = operands
        && a.dtype() != b.dtype()
    {
        return Err(Error::dtype_mismatch(OP, a, b));
    }
    // The lowered ops fail only where a result cannot be allocated (empty operands with
    // huge dimensions) or the dtype has no product; the error then names einsum.
    lower(&eq, operands).map_err(|e| Error::InvalidArgument {
        op: OP,
        reason: format!("equation {equation:?} with operands of shapes {}: {e}", describe(operands)),
    })
}

/// The lowering of a checked equation.
fn lower(eq: &Equation, operands: &[Tensor]) -> Result<Tensor> {
    let output = &eq.output;
    if let [x] = operands {
        let (x, labels) = reduce_term(x, &eq.inputs[0], |l| output.contains(&l))?;
        return to_output(&x, &labels, output);
    }
    let (a, la) = reduce_term(&operands[0], &eq.inputs[0], |l| output.contains(&l) || eq.inputs[1].contains(&l))?;
    let (b, lb) = reduce_term(&operands[1], &eq.inputs[1], |l| output.contains(&l) || la.contains(&l))?;
    let in_output = |labels: &[char], f: &dyn Fn(char) -> bool| -> Vec<char> {
        output.iter().copied().filter(|&l| labels.contains(&l) && f(l)).collect()
    };
    let batch = in_output(&la, &|l| lb.contains(&l));
    let free_a = in_output(&la, &|l| !lb.contains(&l));
    let free_b = in_output(&lb, &|l| !la.contains(&l));
    let contracted: Vec<char> = la.iter().copied().filter(|l| lb.contains(l) && !output.contains(l)).collect();
    let size = |x: &Tensor, labels: &[char], group: &[char]| -> usize {
        // Saturating: only an empty operand can overflow ([2^62, 4, 0]), and it stays empty.
        positions(labels, group).iter().fold(1usize, |n, &p| n.saturating_mul(x.dims()[p]))
    };
    if contracted.is_empty() {
        // An outer or elementwise product: both aligned to the output's axes, broadcast.
        let aligned = |x: &Tensor, labels: &[char]| -> Result<Tensor> {
            let mine: Vec<char> = output.iter().copied().filter(|l| labels.contains(l)).collect();
            let t = to_output(x, labels, &mine)?;
            let dims: Vec<usize> =
                output.iter().map(|l| mine.iter().position(|m| m == l).map_or(1, |p| t.dims()[p])).collect();
            shape::reshape_to(&t, dims)
        };
        return aligned(&a, &la)? * aligned(&b, &lb)?;
    }
    let (nb, m, k, n) =
        (size(&a, &la, &batch), size(&a, &la, &free_a), size(&a, &la, &contracted), size(&b, &lb, &free_b));
    let matrix = |x: &Tensor, labels: &[char], order: [&[char]; 3], rows: usize, cols: usize| -> Result<Tensor> {
        let t = to_output(x, labels, &order.concat())?;
        let dims = if batch.is_empty() { vec![rows, cols] } else { vec![nb, rows, cols] };
        shape::reshape_to(&t, dims)
    };
    let product = matrix(&a, &la, [&batch, &free_a, &contracted], m, k)?.matmul(matrix(
        &b,
        &lb,
        [&batch, &contracted, &free_b],
        k,
        n,
    )?)?;
    let labels: Vec<char> = [batch.as_slice(), &free_a, &free_b].concat();
    let dims: Vec<usize> = labels
        .iter()
        .map(|l| match la.iter().position(|m| m == l) {
            Some(p) => a.dims()[p],
            None => b.dims()[lb.iter().position(|m| m == l).unwrap_or(0)],
        })
        .collect();
    to_output(&shape::reshape_to(&product, dims)?, &labels, output)
}
