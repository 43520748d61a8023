//! Benchmark inputs shared by `benches/kernels.rs` and `examples/perf_report.rs`
//! (included with `#[path]`).

use tapeflow::prelude::*;

/// `n` subnormal f32 values of both signs, spread over the whole subnormal range.
pub fn subnormals(n: usize) -> Tensor {
    let values: Vec<f32> = (0..n)
        .map(|i| {
            let bits = 1 + (i.wrapping_mul(2654435761) % 0x007F_FFFF) as u32;
            let v = f32::from_bits(bits);
            if i % 2 == 0 { v } else { -v }
        })
        .collect();
    Tensor::from_vec(values, [n]).expect("length matches")
}
