//! Agreeing on what a collective call is about before moving any data.
//!
//! MPI matches collectives by order only: if two ranks pass buffers of different lengths,
//! or one rank calls another collective, MPI hangs or sums garbage. So every call of this
//! crate first all-reduces (with `max`) three words per rank — a signature of the call (the
//! operation, dtypes and shapes), its complement, and a failure flag — and moves data only
//! when every rank agrees. The maximum of the signatures equals the complement of the
//! maximum of the complements only if all signatures are equal (`max(h) = !max(!h)` means
//! `max(h) = min(h)`); the failure word is the highest failed rank plus one.

use tapeflow_dtype::DType;

/// A 64-bit FNV-1a hash of a call's description, fed word by word.
#[derive(Clone, Copy)]
pub(crate) struct Signature(u64);

impl Signature {
    /// A signature for the operation `op` (its name is part of what must agree).
    pub(crate) fn new(op: &str) -> Self {
        let mut s = Signature(0xcbf2_9ce4_8422_2325);
        for b in op.bytes() {
            s.byte(b);
        }
        s
    }

    fn byte(&mut self, b: u8) {
        self.0 ^= u64::from(b);
        self.0 = self.0.wrapping_mul(0x0000_0100_0000_01b3);
    }

    /// Adds a number (a count, a rank, a size).
    pub(crate) fn word(mut self, w: u64) -> Self {
        for b in w.to_le_bytes() {
            self.byte(b);
        }
        self
    }

    /// Adds one tensor's dtype and shape (the rank of the shape too, so `[2, 3]` followed by
    /// `[4]` differs from `[2]` followed by `[3, 4]`).
    pub(crate) fn tensor(self, dtype: DType, dims: &[usize]) -> Self {
        let code = match dtype {
            DType::F32 => 1,
            DType::F16 => 2,
            DType::I32 => 3,
            DType::Bool => 4,
        };
        dims.iter().fold(self.word(code).word(dims.len() as u64), |s, &d| s.word(d as u64))
    }

    pub(crate) fn value(self) -> u64 {
        self.0
    }
}

/// What one rank contributes to the agreement round.
pub(crate) fn local_words(signature: u64, rank: usize, failed: bool) -> [u64; 3] {
    [signature, !signature, if failed { rank as u64 + 1 } else { 0 }]
}

/// The outcome of an agreement round, from the element-wise maximum of every rank's words.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Verdict {
    /// Every rank makes the same call and none failed: data may move.
    Agreed,
    /// Rank `rank` (the highest one that did) failed before the call could start.
    Failed { rank: usize },
    /// The ranks describe different calls (shapes, dtypes, lengths or operations differ).
    Mismatch,
}

pub(crate) fn verdict(reduced: [u64; 3]) -> Verdict {
    if reduced[2] != 0 {
        Verdict::Failed { rank: (reduced[2] - 1) as usize }
    } else if reduced[0] != !reduced[1] {
        Verdict::Mismatch
    } else {
        Verdict::Agreed
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The element-wise maximum MPI computes over the ranks' words.
    fn max_over(ranks: &[[u64; 3]]) -> [u64; 3] {
        ranks.iter().fold([0; 3], |acc, w| [acc[0].max(w[0]), acc[1].max(w[1]), acc[2].max(w[2])])
    }

    fn sig(dims: &[usize], dtype: DType) -> u64 {
        Signature::new("all_reduce_sum").tensor(dtype, dims).value()
    }

    #[test]
    fn equal_calls_agree() {
        let h = sig(&[3, 4], DType::F32);
        let words: Vec<_> = (0..3).map(|r| local_words(h, r, false)).collect();
        assert_eq!(verdict(max_over(&words)), Verdict::Agreed);
    }

    #[test]
    fn one_rank_with_another_shape_or_dtype_is_a_mismatch_for_everyone() {
        let base = sig(&[3, 4], DType::F32);
        for other in [sig(&[4, 3], DType::F32), sig(&[3, 4], DType::F16), sig(&[12], DType::F32)] {
            assert_ne!(base, other);
            for odd in 0..3 {
                let words: Vec<_> =
                    (0..3).map(|r| local_words(if r == odd { other } else { base }, r, false)).collect();
                assert_eq!(verdict(max_over(&words)), Verdict::Mismatch);
            }
        }
    }

    #[test]
    fn shapes_are_delimited_and_operations_named() {
        let a = Signature::new("x").tensor(DType::F32, &[2, 3]).tensor(DType::F32, &[4]).value();
        let b = Signature::new("x").tensor(DType::F32, &[2]).tensor(DType::F32, &[3, 4]).value();
        assert_ne!(a, b);
        let sum = Signature::new("all_reduce_sum").tensor(DType::F32, &[2]).value();
        let bcast = Signature::new("broadcast_variables").tensor(DType::F32, &[2]).value();
        assert_ne!(sum, bcast);
    }

    #[test]
    fn a_failure_wins_over_everything_and_names_the_highest_failed_rank() {
        let h = sig(&[2], DType::F32);
        let words = [local_words(h, 0, true), local_words(h ^ 1, 1, false), local_words(h, 2, true)];
        assert_eq!(verdict(max_over(&words)), Verdict::Failed { rank: 2 });
    }
}
