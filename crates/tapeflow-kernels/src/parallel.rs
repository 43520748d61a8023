//! Splitting large kernels across rayon's threads in fixed-size chunks.
//!
//! Chunk boundaries depend only on the length, never on the number of threads, and every
//! chunk computes its elements exactly as the inline path would, so results are bitwise
//! identical under `RAYON_NUM_THREADS=1` and `=2`.

use rayon::prelude::*;

/// Elements per chunk of an elementwise kernel: 64 Ki f32 = 256 KiB of output, large enough
/// that scheduling costs vanish, small enough that both cores get many chunks.
pub const CHUNK: usize = 1 << 16;

/// Below this many elements a kernel runs inline on the calling thread: waking a second
/// thread costs microseconds, more than the work saves. (Measured with the perf report's
/// elementwise rows: at 128 Ki elements an add takes about 20 µs inline.)
pub const PARALLEL_MIN: usize = 1 << 17;

/// Calls `f(start, chunk)` for consecutive `CHUNK`-sized pieces of `out`, in parallel when
/// `out` is large.
pub fn for_each_chunk<T: Send>(out: &mut [T], f: impl Fn(usize, &mut [T]) + Sync + Send) {
    if out.len() < PARALLEL_MIN {
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
    if len < PARALLEL_MIN {
        (0..chunks).map(|i| f(range(i))).collect()
    } else {
        (0..chunks).into_par_iter().map(|i| f(range(i))).collect()
    }
}
