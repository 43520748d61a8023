//! Blocked, packed, multithreaded GEMM (`C = A·B`, f32 accumulation) for f32 and f16
//! inputs, after Goto and van de Geijn's layering (the BLIS loop nest):
//!
//! ```text
//! for jc in n by NC                   B panel: NC bounds the packed-B memory
//!   for pc in k by KC                 K blocks, ascending; a block is never split over threads
//!     pack A[:, pc..] → MR-row slivers                                        (parallel)
//!     for each column group (≤ NCB cols)                                      (parallel)
//!       pack its B[pc.., cols] → NR-column slivers, on the thread that uses them
//!       for each task = that group × a row group (≤ MC rows)                  (parallel)
//!         for ir over the task's A slivers    A sliver (MR × KC) from L1/L2
//!           for jr over the task's B slivers  B block (KC × NCB) stays in L2
//!             micro-kernel: MR × NR tile in registers; C = tile (pc = 0), else C += tile
//! ```
//!
//! The micro-kernel asks for its C tile's cache lines (`prefetchw`) before its FMAs: C is
//! only written after all of the block's k-steps, and a freshly recycled output buffer is
//! usually out of cache. A product with few C tiles and a long K (a weight gradient over a
//! large batch) is cut into two K halves computed side by side (`k_halves`): C = first
//! half + second half, decided by the shape alone.
//!
//! The driver is generic over the instruction-set token (`crate::isa`); the micro-kernel and
//! the packing routines are kernel calls compiled per level, and the tile shape is the
//! level's (`KernelShape::for_level`): AVX-512 14 × 32, AVX2 6 × 16 (12 ymm accumulators,
//! 95–98 % of one core's FMA peak on L1-resident slivers of depth 256–512 on an AVX2 Zen 3),
//! the baseline 3 × 16 on SSE2. The other sizes were measured on AVX-512 with a 48 KiB L1d
//! and a 2 MiB L2 per core (the crate's `gemm` bench; see `Tuning::DEFAULT`):
//! * MR × NR = 14 × 32: 28 zmm accumulators + 2 B vectors + 1 broadcast = 31 of the 32
//!   registers; 16 loads per 28 FMAs. 12 × 32, 8 × 48 and 6 × 64 measured within noise
//!   of it (8 × 48 a few % slower); 14 × 32 wastes least on edges of powers of two.
//! * KC = 800: the A sliver (14 × 800 × 4 B = 44 KiB) streams through L1 beside B; one
//!   C-tile read-modify-write per block. KC 256 measured ~5 % slower than 512; 800 against
//!   512 measured the same on squares of 512–2048 and 5–8 % faster where it saves a block
//!   (256 × 784 × 512, 256 × 600 × 512, 512 × 700 × 512, alternating runs; 3–4 % on one
//!   thread). K is split into equal blocks (k = 1000 → 500 + 500).
//! * NCB = 256 columns: a task's packed-B block (at most 800 × 256 × 4 B = 800 KiB) stays in L2
//!   next to its A block (MC = 280 rows: up to 875 KiB) and its C rows. Tasks are ordered
//!   column group by column group, so consecutive tasks on a core share the B block.
//! * At least 16 tasks when the shape allows: dynamic load balance between the two cores
//!   (the machine is shared; a static half each loses whenever one core is disturbed).
//! * NC = 4096 bounds the packed panels (≤ 8 MiB of B); A is packed once per K block.
//!
//! Reproducibility: every element of C is the sum of its K blocks in ascending order,
//! each block summed by one FMA chain in ascending `p`; the blocking depends only on the
//! shape, never on the number of threads or on how tasks land on them, so results are
//! bitwise identical for any rayon pool size. Products below [`INLINE_BELOW`] multiply-adds
//! ([`SKINNY_INLINE_BELOW`] when `n` or `k` is at most 16) run on the calling thread
//! through the same code (same bits).
//!
//! Operands are [`MatRef`] views with arbitrary strides, so transposed operands and batch
//! members are read in place; the only copies are the packed panels. f16 inputs are
//! widened to f32 while packing (F16C) and accumulate in f32; C is always f32 (the
//! caller rounds it once). Bits are identical for any thread count at a given level; across
//! levels they agree within rounding (the baseline of an SSE2 build has no fused
//! multiply-add, and the K halves are planned from the level's tile counts).

mod kernel;
mod pack;
mod small_k;
mod small_n;
#[cfg(test)]
mod tests;
mod view;

use std::cell::RefCell;

use rayon::prelude::*;

use crate::isa::{self, Level, Simd, Token};
use kernel::{LANES, Tile};
pub use pack::Element;
use pack::{Line, PackA, PackBGroup};
pub use view::{GemmError, MatRef};

/// Products with fewer multiply-adds (`m·n·k`) than this run inline on the calling
/// thread. Handing a product to rayon's pool from outside costs ~6.5 µs here (measured
/// with `cargo bench --bench gemm -- overhead`), plus the fork/joins of the phases; the
/// bench's `inline` mode puts the break-even of square products at n ≈ 150-160
/// (n = 128: 105 GFLOP/s inline vs 72 through rayon; n = 192: 128 vs 164).
pub const INLINE_BELOW: usize = 160 * 160 * 160;

/// [`INLINE_BELOW`] for skinny products, whose `n` or `k` is at most 16 (an output layer
/// and its gradients: `[B, H]·[H, 10]`, `[B, 10]·[10, H]`). They do a few multiply-adds
/// per element of their large operand, so their time goes to reading it (and packing it)
/// or writing C, which two cores do faster; inside training steps, where those operands
/// come from L3, running them on the pool from 100³ multiply-adds made the digits step
/// faster in 4 of 5 alternating runs (medians 1.03 vs 1.23 ms).
pub const SKINNY_INLINE_BELOW: usize = 100 * 100 * 100;

/// The inline threshold of an `m × k` by `k × n` product.
fn inline_below(n: usize, k: usize) -> usize {
    if n.min(k) <= 16 { SKINNY_INLINE_BELOW } else { INLINE_BELOW }
}

/// Most B slivers packed by one job: row-major B is then read in runs of up to
/// `B_GROUP·NR` elements. Narrow panels use smaller groups so that at least 4 jobs share
/// the packing.
const B_GROUP: usize = 8;

/// Micro-kernel shapes (`MR × NR`).
#[doc(hidden)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum KernelShape {
    /// 14 × 32: 28 accumulators.
    K14x32,
    /// 12 × 32: 24 accumulators.
    K12x32,
    /// 8 × 48: 24 accumulators.
    K8x48,
    /// 6 × 64: 24 accumulators.
    K6x64,
    /// 28 × 16: 28 accumulators, one vector wide: for products with at most 16 columns
    /// (a 10-class output layer), which the 32-wide shapes would compute mostly as padding.
    K28x16,
    /// 6 × 16: 6 vectors, i.e. 12 ymm accumulators: the AVX2 kernel.
    K6x16,
    /// 3 × 16: 3 vectors, i.e. 12 xmm accumulators: the baseline kernel of an SSE build.
    K3x16,
}

impl KernelShape {
    /// Every shape (the tests run each at every level; the bench's kernel mode times each).
    pub const ALL: [KernelShape; 7] = [
        KernelShape::K14x32,
        KernelShape::K12x32,
        KernelShape::K8x48,
        KernelShape::K6x64,
        KernelShape::K28x16,
        KernelShape::K6x16,
        KernelShape::K3x16,
    ];

    /// The main micro-kernel of a level: as many accumulators as its registers hold beside
    /// the B vectors and one broadcast. The baseline's depends on the build's target.
    pub fn for_level(level: Level) -> KernelShape {
        match level.isa() {
            isa::Isa::Avx512 => KernelShape::K14x32,
            isa::Isa::Avx2 => KernelShape::K6x16,
            isa::Isa::Baseline if cfg!(target_feature = "avx512f") => KernelShape::K14x32,
            isa::Isa::Baseline if cfg!(target_feature = "avx2") => KernelShape::K6x16,
            isa::Isa::Baseline => KernelShape::K3x16,
        }
    }
}

/// Blocking parameters; [`Tuning::DEFAULT`] is what [`gemm`] uses. Exposed for the
/// benchmark's parameter sweeps only.
#[doc(hidden)]
#[derive(Clone, Copy, Debug)]
pub struct Tuning {
    /// Micro-kernel shape.
    pub kernel: KernelShape,
    /// Largest K block.
    pub kc: usize,
    /// Largest number of rows of one task (rounded down to a multiple of MR).
    pub mc: usize,
    /// Largest B panel width.
    pub nc: usize,
    /// Fewest tasks per panel when the shape allows (load balance over the cores).
    pub min_tasks: usize,
    /// Inline threshold in multiply-adds.
    pub inline_below: usize,
    /// Loop order inside a task: `true` = A sliver outer (in L1), B slivers inner
    /// (streaming from L2, in column chunks of `ncb`); `false` = B sliver outer.
    pub a_outer: bool,
    /// Widest column group of a task (its block of packed B stays in L2).
    pub ncb: usize,
    /// Each column group's B block is packed by the thread that then runs (most of) the
    /// group's tasks, instead of in a separate parallel phase.
    pub owner_pack: bool,
}

impl Tuning {
    /// The measured defaults (AVX-512, 48 KiB L1d, 2 MiB L2); [`gemm`] replaces the kernel
    /// by the level's own ([`KernelShape::for_level`]).
    pub const DEFAULT: Tuning = Tuning {
        kernel: KernelShape::K14x32,
        kc: 800,
        mc: 280,
        nc: 4096,
        min_tasks: 16,
        inline_below: INLINE_BELOW,
        a_outer: true,
        ncb: 256,
        owner_pack: true,
    };
}

impl Default for Tuning {
    /// [`Tuning::DEFAULT`] with the calling thread's level's kernel shape: what [`gemm`]
    /// runs for products wider than one vector.
    fn default() -> Self {
        Tuning { kernel: KernelShape::for_level(isa::current()), ..Self::DEFAULT }
    }
}

/// `c = a · b` with `c` row-major `a.rows() × b.cols()`, accumulated in f32. `k = 0` gives
/// zeros. Errors only on mismatched shapes; never panics. Runs at the calling thread's
/// level ([`isa::current`]).
pub fn gemm<T: Element>(a: MatRef<'_, T>, b: MatRef<'_, T>, c: &mut [f32]) -> Result<(), GemmError> {
    gemm_at(isa::current(), a, b, c)
}

/// [`gemm`] at `level`.
pub fn gemm_at<T: Element>(level: Level, a: MatRef<'_, T>, b: MatRef<'_, T>, c: &mut [f32]) -> Result<(), GemmError> {
    check_shapes(&a, &b, c)?;
    let (m, k, n) = (a.rows, a.cols, b.cols);
    let parallel = !runs_inline(m, n, k);
    if (1..=small_k::MAX_K).contains(&k) {
        small_k::gemm_small_k(level, &a, &b, c, parallel);
        return Ok(());
    }
    if small_n::applies(&a, &b) {
        // The K blocks and halves the blocked path (the narrow kernel) would use: same bits.
        let half = k_halves(m, n, k, NARROW_MR, LANES).filter(|_| parallel);
        small_n::gemm_small_n(level, &a, &b, c, small_n::KPlan { kc: Tuning::DEFAULT.kc, half }, parallel);
        return Ok(());
    }
    let kernel = if n <= LANES { KernelShape::K28x16 } else { KernelShape::for_level(level) };
    run_tuned(level, &a, &b, c, &Tuning { kernel, inline_below: inline_below(n, k), ..Tuning::DEFAULT });
    Ok(())
}

/// Rows of the narrow (28 × 16) micro-kernel.
const NARROW_MR: usize = 28;

/// `Err` unless `a · b` fits into `c`.
fn check_shapes<T>(a: &MatRef<'_, T>, b: &MatRef<'_, T>, c: &[f32]) -> Result<(), GemmError> {
    if a.cols != b.rows {
        return Err(GemmError::InnerDims { a_cols: a.cols, b_rows: b.rows });
    }
    let expected = a.rows.saturating_mul(b.cols);
    if c.len() != expected {
        return Err(GemmError::OutputLen { expected, got: c.len() });
    }
    Ok(())
}

/// [`gemm`] with explicit blocking parameters (benchmarking only), at the calling thread's
/// level.
#[doc(hidden)]
pub fn gemm_tuned<T: Element>(a: MatRef<'_, T>, b: MatRef<'_, T>, c: &mut [f32], t: &Tuning) -> Result<(), GemmError> {
    check_shapes(&a, &b, c)?;
    run_tuned(isa::current(), &a, &b, c, t);
    Ok(())
}

/// The blocked path at `level` with the kernel shape `t.kernel`.
fn run_tuned<T: Element>(level: Level, a: &MatRef<'_, T>, b: &MatRef<'_, T>, c: &mut [f32], t: &Tuning) {
    match level.token() {
        #[cfg(target_arch = "x86_64")]
        Token::Avx512(s) => drive_shape(s, a, b, c, t),
        #[cfg(target_arch = "x86_64")]
        Token::Avx2(s) => drive_shape(s, a, b, c, t),
        Token::Baseline(s) => drive_shape(s, a, b, c, t),
    }
}

fn drive_shape<T: Element, S: Simd>(s: S, a: &MatRef<'_, T>, b: &MatRef<'_, T>, c: &mut [f32], t: &Tuning) {
    match t.kernel {
        KernelShape::K14x32 => drive::<T, S, 14, 2, 32>(s, a, b, c, t),
        KernelShape::K12x32 => drive::<T, S, 12, 2, 32>(s, a, b, c, t),
        KernelShape::K8x48 => drive::<T, S, 8, 3, 48>(s, a, b, c, t),
        KernelShape::K6x64 => drive::<T, S, 6, 4, 64>(s, a, b, c, t),
        KernelShape::K28x16 => drive::<T, S, NARROW_MR, 1, 16>(s, a, b, c, t),
        KernelShape::K6x16 => drive::<T, S, 6, 1, 16>(s, a, b, c, t),
        KernelShape::K3x16 => drive::<T, S, 3, 1, 16>(s, a, b, c, t),
    }
}

/// Whether a product of this shape runs on the calling thread (no rayon).
pub fn runs_inline(m: usize, n: usize, k: usize) -> bool {
    m.saturating_mul(n).saturating_mul(k) < inline_below(n, k)
}

/// `len` split into `parts` near-equal pieces: piece `i`'s `(start, len)`.
fn split_even(len: usize, parts: usize, i: usize) -> (usize, usize) {
    let (base, extra) = (len / parts, len % parts);
    (i * base + i.min(extra), base + usize::from(i < extra))
}

/// One unit of parallel work: a rectangle of the current C panel. `rows[r]` is the part
/// of C row `r0·MR + r` that lies in the task's columns.
struct Task<'c> {
    /// First A sliver (row `r0·MR`).
    r0: usize,
    /// Number of A slivers.
    slivers: usize,
    /// First B sliver of the panel.
    s0: usize,
    /// Valid columns.
    cols: usize,
    rows: Vec<&'c mut [f32]>,
}

thread_local! {
    /// Packing buffers reused across calls on this thread (no page faults and no zeroing
    /// on repeated products). `try_borrow_mut` falls back to fresh buffers when a nested
    /// call (rayon work stealing inside a gemm) finds them in use.
    static BUFFERS: RefCell<(Vec<Line>, Vec<Line>)> = const { RefCell::new((Vec::new(), Vec::new())) };
}

/// Buffers larger than this (in vectors, 16 MiB) are allocated per call, not kept.
const RETAIN_VECS: usize = (16 << 20) / std::mem::size_of::<Line>();

fn with_buffers(a_vecs: usize, b_vecs: usize, f: impl FnOnce(&mut [Line], &mut [Line])) {
    let grow = |v: &mut Vec<Line>, len: usize| {
        if v.len() < len {
            v.resize(len, Line::ZERO);
        }
    };
    let mut f = Some(f);
    if a_vecs + b_vecs > RETAIN_VECS {
        if let Some(f) = f.take() {
            f(&mut vec![Line::ZERO; a_vecs], &mut vec![Line::ZERO; b_vecs]);
        }
        return;
    }
    BUFFERS.with(|cell| {
        if let Ok(mut bufs) = cell.try_borrow_mut() {
            let (a, b) = &mut *bufs;
            grow(a, a_vecs);
            grow(b, b_vecs);
            if let Some(f) = f.take() {
                f(&mut a[..a_vecs], &mut b[..b_vecs]);
            }
        }
    });
    if let Some(f) = f {
        f(&mut vec![Line::ZERO; a_vecs], &mut vec![Line::ZERO; b_vecs]);
    }
}

/// Runs `f` on every chunk, through rayon when `parallel`.
fn for_chunks<F>(parallel: bool, data: &mut [f32], size: usize, f: F)
where
    F: Fn(usize, &mut [f32]) + Sync + Send,
{
    if parallel {
        data.par_chunks_mut(size).enumerate().for_each(|(i, d)| f(i, d));
    } else {
        data.chunks_mut(size).enumerate().for_each(|(i, d)| f(i, d));
    }
}

fn drive<T: Element, S: Simd, const MR: usize, const NV: usize, const NR: usize>(
    s: S,
    a: &MatRef<'_, T>,
    b: &MatRef<'_, T>,
    c: &mut [f32],
    t: &Tuning,
) {
    const { assert!(NR == NV * LANES) };
    let (m, k, n) = (a.rows, a.cols, b.cols);
    if m == 0 || n == 0 {
        return;
    }
    if k == 0 {
        c.fill(0.0);
        return;
    }
    let parallel = m.saturating_mul(n).saturating_mul(k) >= t.inline_below;
    let halves = k_halves(m, n, k, MR, NR).filter(|_| parallel);
    let run = |c: &mut [f32]| match halves {
        Some(k0) => drive_k_halves::<T, S, MR, NV, NR>(s, a, b, c, t, k0),
        None => drive_in_pool::<T, S, MR, NV, NR>(s, a, b, c, t, parallel),
    };
    if parallel && rayon::current_thread_index().is_none() {
        // Enter the pool once for the whole product: every fork/join below then starts
        // from a worker, instead of each phase waking a worker and putting this thread
        // to sleep (tens of µs per phase on small products).
        return rayon::scope(|_| run(c));
    }
    run(c);
}

/// Where to cut K in two for a product with few tiles of C and a long K (weight gradients
/// `xᵀ·g` over a large batch: 64 × 1437 × 128): its tile grid cannot keep two cores
/// busy, and both would stream the same packed B through each other's caches (measured:
/// as slow on two threads as on one). Cut in two halves, each half is a product of its
/// own (packed and computed where it runs, in parallel), and C is the first half's sum
/// plus the second's. The cut depends on the shape alone, so the sums — and the bits —
/// are the same on any number of threads.
fn k_halves(m: usize, n: usize, k: usize, mr: usize, nr: usize) -> Option<usize> {
    let tiles = m.div_ceil(mr).saturating_mul(n.div_ceil(nr));
    (tiles <= 32 && k >= 1024).then(|| (k / 2).next_multiple_of(pack::KB))
}

/// `c = a[:, ..k0]·b[..k0, :] + a[:, k0..]·b[k0.., :]`, the halves side by side.
fn drive_k_halves<T: Element, S: Simd, const MR: usize, const NV: usize, const NR: usize>(
    s: S,
    a: &MatRef<'_, T>,
    b: &MatRef<'_, T>,
    c: &mut [f32],
    t: &Tuning,
    k0: usize,
) {
    let (a0, a1) = a.split_cols(k0);
    let (b0, b1) = b.split_rows(k0);
    let mut second = vec![0.0f32; c.len()];
    rayon::join(
        || drive_in_pool::<T, S, MR, NV, NR>(s, &a0, &b0, c, t, true),
        || drive_in_pool::<T, S, MR, NV, NR>(s, &a1, &b1, &mut second, t, true),
    );
    for (c, s) in c.iter_mut().zip(&second) {
        *c += *s;
    }
}

fn drive_in_pool<T: Element, S: Simd, const MR: usize, const NV: usize, const NR: usize>(
    s: S,
    a: &MatRef<'_, T>,
    b: &MatRef<'_, T>,
    c: &mut [f32],
    t: &Tuning,
    parallel: bool,
) {
    let nr = NR;
    let (m, k, n) = (a.rows, a.cols, b.cols);
    // Even K and N blocks no larger than the limits: 300 = 150 + 150, not 256 + 44.
    let k_blocks = k.div_ceil(t.kc.max(1));
    let kc_max = k.div_ceil(k_blocks);
    let n_panels = n.div_ceil(t.nc.max(nr));
    let nc_max = n.div_ceil(n_panels).next_multiple_of(nr);
    let m_sl = m.div_ceil(MR);
    // Each A sliver starts on a cache line (its 16-column blocks are whole lines).
    let a_stride = |kc: usize| (MR * kc).next_multiple_of(LANES);
    let a_len = m_sl * a_stride(kc_max);
    let b_len = nc_max * kc_max;
    with_buffers(a_len.div_ceil(LANES), b_len.div_ceil(LANES), |abuf, bbuf| {
        for jp in 0..n_panels {
            let (jc, nc) = split_even(n.div_ceil(nr), n_panels, jp);
            let (jc, nc) = (jc * nr, (nc * nr).min(n - jc * nr));
            let (mut tasks, col_groups) = make_tasks::<MR>(c, m, n, (jc, nc), nr, t, parallel);
            let row_groups = tasks.len() / col_groups.max(1);
            for kb in 0..k_blocks {
                let (pc, kc) = split_even(k, k_blocks, kb);
                let apack: &mut [f32] = &mut bytemuck::cast_slice_mut(&mut *abuf)[..m_sl * a_stride(kc)];
                let bpack: &mut [f32] = &mut bytemuck::cast_slice_mut(&mut *bbuf)[..nc.div_ceil(nr) * nr * kc];
                let pack_all_a =
                    |i: usize, dst: &mut [f32]| s.vectorize(PackA::<T, MR> { a, i0: i * MR, p0: pc, kc, dst });
                let group = (nc.div_ceil(nr) / 4).clamp(1, B_GROUP);
                let pack_all_b = |g: usize, dst: &mut [f32]| {
                    s.vectorize(PackBGroup::<T, NR> { b, j0: jc + g * group * nr, p0: pc, kc, dst })
                };
                if parallel && t.owner_pack && col_groups > 1 {
                    // Each column group packs its own B block and then runs its tasks:
                    // the block is written into the L2 of the core that reads it.
                    for_chunks(true, apack, a_stride(kc), pack_all_a);
                    let apack: &[f32] = apack;
                    let mut rest: &mut [Line] = &mut bbuf[..];
                    let mut blocks = Vec::with_capacity(col_groups);
                    for cg in 0..col_groups {
                        let (s0, ns) = split_even(nc.div_ceil(nr), col_groups, cg);
                        let (block, tail) = std::mem::take(&mut rest).split_at_mut(ns * NV * kc);
                        blocks.push((s0, block));
                        rest = tail;
                    }
                    blocks.par_iter_mut().zip(tasks.par_chunks_mut(row_groups)).for_each(|((s0, block), group)| {
                        let dst = bytemuck::cast_slice_mut(block);
                        s.vectorize(PackBGroup::<T, NR> { b, j0: jc + *s0 * nr, p0: pc, kc, dst });
                        let block: &[Line] = block;
                        group.par_iter_mut().for_each(|task| {
                            run_task::<S, MR, NV>(s, task, (apack, a_stride(kc)), (block, *s0), kc, kb == 0, t)
                        });
                    });
                    continue;
                }
                if parallel {
                    rayon::join(
                        || for_chunks(true, apack, a_stride(kc), pack_all_a),
                        || for_chunks(true, bpack, group * nr * kc, pack_all_b),
                    );
                } else {
                    for_chunks(false, apack, a_stride(kc), pack_all_a);
                    for_chunks(false, bpack, group * nr * kc, pack_all_b);
                }
                let (apack, bpack): (&[f32], &[Line]) = (apack, &bbuf[..]);
                let run = |task: &mut Task<'_>| {
                    run_task::<S, MR, NV>(s, task, (apack, a_stride(kc)), (bpack, 0), kc, kb == 0, t)
                };
                if parallel {
                    tasks.par_iter_mut().for_each(run);
                } else {
                    tasks.iter_mut().for_each(run);
                }
            }
        }
    });
}

/// Splits columns `jc .. jc + nc` of C into a grid of tasks, from the shape alone (never
/// from the thread count): column groups of at most `t.ncb` columns (the packed-B block
/// one task streams from L2), times row groups of at most `t.mc` rows, with at least
/// `t.min_tasks` tasks (when `parallel`) if there are enough slivers. Tasks are ordered
/// column group by column group, so the tasks one thread runs in a row share their B
/// block, which stays in that core's L2. (The grid only decides who computes a tile,
/// never how: the results do not depend on it.)
fn make_tasks<'c, const MR: usize>(
    c: &'c mut [f32],
    m: usize,
    n: usize,
    (jc, nc): (usize, usize),
    nr: usize,
    t: &Tuning,
    parallel: bool,
) -> (Vec<Task<'c>>, usize) {
    let m_sl = m.div_ceil(MR);
    let n_sl = nc.div_ceil(nr);
    let col_groups = n_sl.div_ceil((t.ncb / nr).max(1));
    let min_tasks = if parallel { t.min_tasks } else { 1 };
    let row_groups = m_sl.div_ceil((t.mc / MR).max(1)).max(min_tasks.div_ceil(col_groups)).clamp(1, m_sl);
    let mut tasks = Vec::with_capacity(row_groups * col_groups);
    for cg in 0..col_groups {
        let (s0, ns) = split_even(n_sl, col_groups, cg);
        let cols = (ns * nr).min(nc - s0 * nr);
        for rg in 0..row_groups {
            let (r0, slivers) = split_even(m_sl, row_groups, rg);
            tasks.push(Task { r0, slivers, s0, cols, rows: Vec::with_capacity((slivers * MR).min(m)) });
        }
    }
    // Hand each C row's pieces to the tasks of its row group, left to right.
    let mut rg = 0;
    for (i, row) in c.chunks_exact_mut(n).enumerate() {
        while i >= (tasks[rg].r0 + tasks[rg].slivers) * MR {
            rg += 1;
        }
        let mut rest = &mut row[jc..jc + nc];
        for cg in 0..col_groups {
            let task = &mut tasks[cg * row_groups + rg];
            let (piece, tail) = rest.split_at_mut(task.cols);
            task.rows.push(piece);
            rest = tail;
        }
    }
    (tasks, col_groups)
}

/// One task's share of a K block: A slivers outer (each stays in L1 while the task's B
/// slivers stream past it from L2), or B slivers outer when `!t.a_outer`.
fn run_task<S: Simd, const MR: usize, const NV: usize>(
    s: S,
    task: &mut Task<'_>,
    (apack, a_stride): (&[f32], usize),
    (bpack, s_base): (&[Line], usize),
    kc: usize,
    first: bool,
    t: &Tuning,
) {
    let nr = NV * LANES;
    let rows = task.rows.len();
    let n_sl = task.cols.div_ceil(nr);
    let tile = |task: &mut Task<'_>, is: usize, js: usize| {
        let asl = &apack[(task.r0 + is) * a_stride..][..kc * MR];
        let bs = &bpack[(task.s0 - s_base + js) * kc * NV..][..kc * NV];
        let ncols = nr.min(task.cols - js * nr);
        let lo = is * MR;
        let hi = (lo + MR).min(rows);
        s.vectorize(Tile::<MR, NV> { kc, a: asl, b: bs, rows: &mut task.rows[lo..hi], col: js * nr, ncols, first });
    };
    if t.a_outer {
        for is in 0..task.slivers {
            for js in 0..n_sl {
                tile(task, is, js);
            }
        }
    } else {
        for js in 0..n_sl {
            for is in 0..task.slivers {
                tile(task, is, js);
            }
        }
    }
}

/// Benchmark hook: `reps` micro-kernel calls on L1-resident slivers of depth `kc`, at the
/// calling thread's level; returns the flops done.
#[doc(hidden)]
pub fn bench_kernel(shape: KernelShape, kc: usize, reps: usize) -> f64 {
    fn go<S: Simd, const MR: usize, const NV: usize>(s: S, kc: usize, reps: usize) -> f64 {
        let a = vec![0.5f32; kc * MR];
        let b = vec![Line([0.25; LANES]); kc * NV];
        let mut c = vec![0.0f32; MR * NV * LANES];
        for _ in 0..reps {
            let mut rows: Vec<&mut [f32]> = c.chunks_mut(NV * LANES).collect();
            let ncols = NV * LANES;
            s.vectorize(Tile::<MR, NV> { kc, a: &a, b: &b, rows: &mut rows, col: 0, ncols, first: false });
        }
        std::hint::black_box(&c);
        (2 * MR * NV * LANES * kc * reps) as f64
    }
    fn at<S: Simd>(s: S, shape: KernelShape, kc: usize, reps: usize) -> f64 {
        match shape {
            KernelShape::K14x32 => go::<S, 14, 2>(s, kc, reps),
            KernelShape::K12x32 => go::<S, 12, 2>(s, kc, reps),
            KernelShape::K8x48 => go::<S, 8, 3>(s, kc, reps),
            KernelShape::K6x64 => go::<S, 6, 4>(s, kc, reps),
            KernelShape::K28x16 => go::<S, 28, 1>(s, kc, reps),
            KernelShape::K6x16 => go::<S, 6, 1>(s, kc, reps),
            KernelShape::K3x16 => go::<S, 3, 1>(s, kc, reps),
        }
    }
    match isa::current().token() {
        #[cfg(target_arch = "x86_64")]
        Token::Avx512(s) => at(s, shape, kc, reps),
        #[cfg(target_arch = "x86_64")]
        Token::Avx2(s) => at(s, shape, kc, reps),
        Token::Baseline(s) => at(s, shape, kc, reps),
    }
}
