//! Contiguous shares of a batch: which rows each rank trains on.

use std::ops::Range;

/// Rank `rank`'s contiguous share of `0..n` among `size` ranks: the first `n % size` ranks
/// take one row more, so shares differ by at most one and, in rank order, cover `0..n`
/// exactly once. `size` 0 is treated as 1 (a rank always exists).
pub fn shard_range(n: usize, rank: usize, size: usize) -> Range<usize> {
    let size = size.max(1);
    let (base, extra) = (n / size, n % size);
    let start = rank * base + rank.min(extra);
    let len = base + usize::from(rank < extra);
    start.min(n)..(start + len).min(n)
}

#[cfg(test)]
mod tests {
    use super::shard_range;

    #[test]
    fn shards_cover_every_row_once_and_differ_by_at_most_one() {
        for size in 1..=9 {
            for n in [0, 1, 2, 7, 8, 9, 100, 1437] {
                let shards: Vec<_> = (0..size).map(|r| shard_range(n, r, size)).collect();
                // In rank order the shards tile 0..n with no gap and no overlap.
                let mut next = 0;
                for s in &shards {
                    assert_eq!(s.start, next, "n {n}, size {size}: {shards:?}");
                    next = s.end;
                }
                assert_eq!(next, n);
                let lens: Vec<usize> = shards.iter().map(|s| s.len()).collect();
                let (min, max) = (lens.iter().min().unwrap(), lens.iter().max().unwrap());
                assert!(max - min <= 1, "n {n}, size {size}: {lens:?}");
            }
        }
    }

    #[test]
    fn the_first_ranks_take_the_remainder() {
        // 1437 = 2 · 718 + 1: rank 0 takes the extra row.
        assert_eq!(shard_range(1437, 0, 2), 0..719);
        assert_eq!(shard_range(1437, 1, 2), 719..1437);
        // 10 = 3 · 3 + 1
        assert_eq!(shard_range(10, 0, 3), 0..4);
        assert_eq!(shard_range(10, 1, 3), 4..7);
        assert_eq!(shard_range(10, 2, 3), 7..10);
    }
}
