//! The walk of a broadcasting binary op over its output, in runs.

use tapeflow_dtype::{Shape, Tensor};

use crate::layout::broadcast_strides;

/// How a broadcasting binary op walks its output: the trailing dimensions along which each
/// operand is either contiguous or constant form one run of `inner` elements; the leading
/// dimensions index runs.
pub(crate) struct BroadcastPlan {
    pub(super) inner: usize,
    pub(super) outer_dims: Vec<usize>,
    /// Per operand: element strides over the outer dims, and whether it is contiguous
    /// along a run (else one element repeats).
    pub(super) strides: [Vec<usize>; 2],
    pub(super) contiguous: [bool; 2],
}

impl BroadcastPlan {
    /// The allocation-free plan of the common cases: equal shapes, or one operand a single
    /// element (a scalar) of no higher rank. `None` otherwise.
    pub(crate) fn trivial<R>(a: &Tensor<R>, b: &Tensor<R>) -> Option<(Shape, Self)> {
        let plan = |n: usize, contiguous: [bool; 2]| BroadcastPlan {
            inner: n,
            outer_dims: Vec::new(),
            strides: [Vec::new(), Vec::new()],
            contiguous,
        };
        if a.shape() == b.shape() {
            Some((a.shape().clone(), plan(a.num_elements(), [true, true])))
        } else if b.num_elements() == 1 && b.rank() <= a.rank() {
            Some((a.shape().clone(), plan(a.num_elements(), [true, false])))
        } else if a.num_elements() == 1 && a.rank() <= b.rank() {
            Some((b.shape().clone(), plan(b.num_elements(), [false, true])))
        } else {
            None
        }
    }

    pub(crate) fn new(a: &[usize], b: &[usize], out: &[usize]) -> Self {
        let rank = out.len();
        let padded = |d: &[usize]| -> Vec<usize> {
            let mut p = vec![1; rank - d.len()];
            p.extend_from_slice(d);
            p
        };
        let dims = [padded(a), padded(b)];
        // Grow the run from the last dimension while each operand keeps one kind
        // (contiguous or repeated); a dimension of length 1 fits either kind.
        let mut kinds: [Option<bool>; 2] = [None, None];
        let mut split = rank;
        while split > 0 {
            let d = split - 1;
            let fits = (0..2).all(|k| out[d] == 1 || kinds[k].is_none_or(|contig| contig == (dims[k][d] == out[d])));
            if !fits {
                break;
            }
            for k in 0..2 {
                if out[d] != 1 && kinds[k].is_none() {
                    kinds[k] = Some(dims[k][d] == out[d]);
                }
            }
            split = d;
        }
        // Saturating: an empty output (a zero dimension) is never walked.
        let inner: usize = out[split..].iter().fold(1, |a, &d| a.saturating_mul(d));
        let contiguous = [kinds[0].unwrap_or(true), kinds[1].unwrap_or(true)];
        let strides = std::array::from_fn(|k| {
            let run = if contiguous[k] { inner } else { 1 };
            let mut s = broadcast_strides(&dims[k][..split], &out[..split]).to_vec();
            s.iter_mut().for_each(|v| *v = v.saturating_mul(run));
            s
        });
        BroadcastPlan { inner, outer_dims: out[..split].to_vec(), strides, contiguous }
    }

    /// Offsets of run number `o` in each operand.
    fn run_offsets(&self, mut o: usize) -> [usize; 2] {
        let mut offsets = [0usize; 2];
        for d in (0..self.outer_dims.len()).rev() {
            let len = self.outer_dims[d];
            let idx = o % len;
            o /= len;
            offsets[0] += idx * self.strides[0][d];
            offsets[1] += idx * self.strides[1][d];
        }
        offsets
    }

    /// Calls `f(a, b, out)` for each run piece of `chunk` (output elements `start..`), where
    /// each operand is `Ok(range)` of contiguous elements or `Err(index)` of one element.
    pub(crate) fn for_each_run<T>(
        &self,
        start: usize,
        chunk: &mut [T],
        mut f: impl FnMut(
            std::result::Result<std::ops::Range<usize>, usize>,
            std::result::Result<std::ops::Range<usize>, usize>,
            &mut [T],
        ),
    ) {
        if self.inner == 0 {
            return;
        }
        let mut done = 0;
        while done < chunk.len() {
            let pos = start + done;
            let (run, within) = (pos / self.inner, pos % self.inner);
            let len = (self.inner - within).min(chunk.len() - done);
            let offsets = self.run_offsets(run);
            let piece = |k: usize| {
                if self.contiguous[k] { Ok(offsets[k] + within..offsets[k] + within + len) } else { Err(offsets[k]) }
            };
            f(piece(0), piece(1), &mut chunk[done..done + len]);
            done += len;
        }
    }
}
