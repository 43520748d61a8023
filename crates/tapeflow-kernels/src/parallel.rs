//! Splitting large kernels across rayon's threads in fixed-size chunks.
//!
//! Chunk boundaries depend only on the length, never on the number of threads, and every
//! chunk computes its elements exactly as the inline path would, so results are bitwise
//! identical under `RAYON_NUM_THREADS=1` and `=2`.

use rayon::prelude::*;

/// Elements per chunk of an elementwise kernel: 64 Ki f32 = 256 KiB of output, large enough
/// that scheduling costs vanish, small enough that both cores get many chunks.
pub const CHUNK: usize = 1 << 16;

/// Below this much work (elements × the op's cost, where an add costs 1) a kernel runs
/// inline on the calling thread. Measured on this machine (2 cores, AVX-512): handing half
/// of a kernel to the second rayon thread costs about 7 µs. On operands hot in one core's
/// cache an inline add of 128 Ki f32 takes 20 µs against 26 µs split in two (break-even
/// near 256 Ki); inside training steps, whose operands arrive from L3, splitting from
/// 128 Ki on made the 784-512-512-10 step faster in 5 of 5 alternating runs (median
/// 5.31 vs 6.38 ms) and left the digits step unchanged (1.26 ms both), so the threshold
/// is 128 Ki. An inline exp breaks even near 48 Ki elements (exp costs about 5 adds).
pub const PARALLEL_MIN_WORK: usize = 1 << 17;

/// Calls `f(start, chunk)` for consecutive `CHUNK`-sized pieces of `out`, in parallel when
/// `out.len() × cost` reaches [`PARALLEL_MIN_WORK`].
pub fn for_each_chunk<T: Send>(out: &mut [T], cost: usize, f: impl Fn(usize, &mut [T]) + Sync + Send) {
    if out.len().saturating_mul(cost) < PARALLEL_MIN_WORK {
        out.chunks_mut(CHUNK).enumerate().for_each(|(i, c)| f(i * CHUNK, c));
    } else {
        out.par_chunks_mut(CHUNK).enumerate().for_each(|(i, c)| f(i * CHUNK, c));
    }
}

/// Maps `f` over the chunk indices `0..chunks` (each of `CHUNK` input elements), in
/// parallel when the input is large, returning the results in chunk order.
pub fn map_chunks<R: Send>(len: usize, f: impl Fn(std::ops::Range<usize>) -> R + Sync + Send) -> Vec<R> {
    let chunks = len.div_ceil(CHUNK);
    let range = |i: usize| i * CHUNK..((i + 1) * CHUNK).min(len);
    if len < PARALLEL_MIN_WORK {
        (0..chunks).map(|i| f(range(i))).collect()
    } else {
        (0..chunks).into_par_iter().map(|i| f(range(i))).collect()
    }
}
