//! Catalog II's speed workloads (issue 15), shared by `benches/kernels.rs` and
//! `examples/perf_report.rs` (included with `#[path]`). Each sits beside the workload whose
//! time it is held to: the masks, rounding and clipping ops beside `add` (all
//! bandwidth-bound), the new transcendentals beside `exp`, `gather` beside a plain copy of
//! the same rows, `argmax` beside `max` over the same axis.

use std::hint::black_box;

use tapeflow::prelude::*;

/// Elements of the elementwise workloads (4 Mi, far beyond L2).
pub const ELEMENTS: usize = 4 << 20;
/// The embedding table of the gather workload: 50 000 rows of 512 float32 (100 MB).
pub const TABLE_ROWS: usize = 50_000;
pub const TABLE_COLS: usize = 512;
/// Rows gathered per call.
pub const GATHERED: usize = 256;

/// Deterministic values in [-1, 1) (the same generator as the perf report's).
pub fn values(n: usize, salt: usize) -> Vec<f32> {
    (0..n).map(|i| (((i + salt).wrapping_mul(2654435761) % 2001) as f32 - 1000.0) * 1e-3).collect()
}

/// The inputs, built once.
pub struct Catalog2 {
    pub x: Tensor,
    pub y: Tensor,
    pub cond: Tensor,
    /// The table as a plain vector too, for the copy baseline.
    pub table_data: Vec<f32>,
    pub table: Variable,
    pub ids: Tensor,
    pub row_ids: Vec<usize>,
    pub logits: Tensor,
}

impl Catalog2 {
    pub fn new() -> Result<Self> {
        let x = Tensor::from_vec(values(ELEMENTS, 0), [ELEMENTS])?;
        let y = Tensor::from_vec(values(ELEMENTS, 7), [ELEMENTS])?;
        let cond = x.greater(&y)?;
        let table_data = values(TABLE_ROWS * TABLE_COLS, 3);
        let table = Variable::new(Tensor::from_vec(table_data.clone(), [TABLE_ROWS, TABLE_COLS])?);
        // Spread over the whole table (a multiplicative hash), as token ids are.
        let row_ids: Vec<usize> = (0..GATHERED).map(|i| (i.wrapping_mul(2654435761) >> 7) % TABLE_ROWS).collect();
        let ids = Tensor::from_vec(row_ids.iter().map(|&r| r as i32).collect::<Vec<i32>>(), [GATHERED])?;
        let logits = Tensor::from_vec(values(4096 * 1000, 11), [4096, 1000])?;
        Ok(Catalog2 { x, y, cond, table_data, table, ids, row_ids, logits })
    }

    /// The gathered rows copied out of a plain vector: the floor `gather` is held to.
    pub fn copy_rows(&self, out: &mut [f32]) {
        for (dst, &r) in out.chunks_exact_mut(TABLE_COLS).zip(&self.row_ids) {
            dst.copy_from_slice(&self.table_data[r * TABLE_COLS..(r + 1) * TABLE_COLS]);
        }
        black_box(out);
    }

    /// A zero-filled table-sized buffer: the other part of the dense gradient's floor.
    pub fn zero_table(buffer: &mut [f32]) {
        buffer.fill(0.0);
        black_box(buffer);
    }

    /// `gather` of the rows, no tape.
    pub fn gather(&self) -> Tensor {
        self.table.gather(&self.ids, 0).expect("ids in range")
    }

    /// The dense gradient of a gather with respect to the table: record the gather, then
    /// `gradient` (seed of ones; a segment sum of it into zeros of the table's shape).
    pub fn gather_gradient(&self) -> Tensor {
        let tape = GradientTape::new();
        let rows = tape.record(|| self.table.gather(&self.ids, 0)).expect("ids in range");
        tape.gradient(&rows, &self.table).expect("recorded").expect("connected")
    }
}

/// The elementwise ops held to `add`'s time (name, op).
pub type Op = fn(&Catalog2) -> Result<Tensor>;
pub const LIKE_ADD: [(&str, Op); 8] = [
    ("add f32", |c| &c.x + &c.y),
    ("greater f32", |c| c.x.greater(&c.y)),
    ("equal f32", |c| c.x.equal(&c.y)),
    ("select f32", |c| select(&c.cond, &c.x, &c.y)),
    ("floor f32", |c| c.x.floor()),
    ("ceil f32", |c| c.x.ceil()),
    ("round f32", |c| c.x.round()),
    ("clip_by_value f32", |c| c.x.clip_by_value(-0.5, 0.5)),
];
/// The transcendentals held to 1.5× `exp`'s time.
pub const LIKE_EXP: [(&str, Op); 6] = [
    ("exp f32", |c| c.x.exp()),
    ("erf f32", |c| c.x.erf()),
    ("gelu f32", |c| c.x.gelu(false)),
    ("gelu (tanh) f32", |c| c.x.gelu(true)),
    ("silu f32", |c| c.x.silu()),
    ("elu f32", |c| c.x.elu()),
];
