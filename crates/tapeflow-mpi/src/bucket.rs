//! Tensor fusion: the gradients of one step laid end to end in one f32 buffer, cut into
//! buckets of a fixed size, one all-reduce per bucket (Horovod's fusion buffer).
//!
//! float16 gradients are widened into the buffer and rounded back once after the sum, so
//! they are summed in f32. The layout depends only on the gradients' dtypes and shapes and
//! the bucket size, which every rank has agreed on before any bucket moves, so every rank
//! cuts the same buckets.

use std::ops::Range;

use half::f16;
use tapeflow_dtype::{DType, Error, Result, Storage};
use tapeflow_tape::Tensor;

/// Bytes per bucket unless the tape is told otherwise (1 MiB): large enough that a
/// bucket's all-reduce on one machine runs at memory bandwidth rather than at its
/// per-message latency, small enough that a model of a few MB has several buckets, so that
/// the first ones start while the backward pass computes the first layers' gradients
/// (docs/distributed.md measures it; over a network, larger buckets may pay).
pub const DEFAULT_BUCKET_BYTES: usize = 1 << 20;

/// One gradient's place in the fused buffer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Slot {
    /// Position in the caller's list of gradients.
    pub index: usize,
    pub dtype: DType,
    pub dims: Vec<usize>,
    /// Elements of the fused buffer this gradient occupies.
    pub range: Range<usize>,
}

/// Where each gradient goes in the fused buffer, and where the buckets are cut.
#[derive(Debug, Clone)]
pub(crate) struct Layout {
    pub slots: Vec<Slot>,
    /// Elements after the slots that carry no gradient (the streaming tape's flags).
    pub trailer: Range<usize>,
    pub total: usize,
    /// Elements per bucket (at least one).
    pub bucket: usize,
}

impl Layout {
    /// Lays out the float gradients `(index, dtype, dims)` in the given order, in buckets
    /// of `bucket_bytes` (rounded down to whole f32 elements, at least one).
    pub(crate) fn new(items: impl IntoIterator<Item = (usize, DType, Vec<usize>)>, bucket_bytes: usize) -> Self {
        Self::with_trailer(items, 0, bucket_bytes)
    }

    /// [`new`](Self::new), with `trailer` more elements after the gradients.
    pub(crate) fn with_trailer(
        items: impl IntoIterator<Item = (usize, DType, Vec<usize>)>,
        trailer: usize,
        bucket_bytes: usize,
    ) -> Self {
        let mut total = 0;
        let slots = items
            .into_iter()
            .map(|(index, dtype, dims)| {
                let len: usize = dims.iter().product();
                let slot = Slot { index, dtype, dims, range: total..total + len };
                total += len;
                slot
            })
            .collect();
        let trailer = total..total + trailer;
        Layout { slots, total: trailer.end, trailer, bucket: (bucket_bytes / 4).max(1) }
    }

    /// The buckets that hold any of the elements `range`.
    pub(crate) fn buckets_of(&self, range: &Range<usize>) -> Range<usize> {
        if range.is_empty() {
            return 0..0;
        }
        range.start / self.bucket..(range.end - 1) / self.bucket + 1
    }

    /// The elements of bucket `k`.
    pub(crate) fn bucket_range(&self, k: usize) -> Range<usize> {
        k * self.bucket..((k + 1) * self.bucket).min(self.total)
    }

    /// The buckets' element ranges, in order: `ceil(total / bucket)` of them.
    pub(crate) fn buckets(&self) -> impl Iterator<Item = Range<usize>> + '_ {
        (0..self.bucket_count()).map(|k| self.bucket_range(k))
    }

    pub(crate) fn bucket_count(&self) -> usize {
        self.total.div_ceil(self.bucket)
    }

    /// Copies the part of `slot` that lies in `bucket` into `dst` (the bucket's elements)
    /// from `gradient` (`None`: zeros).
    pub(crate) fn pack_slot(&self, slot: &Slot, bucket: Range<usize>, dst: &mut [f32], gradient: Option<&Tensor>) {
        let (from, to) = (slot.range.start.max(bucket.start), slot.range.end.min(bucket.end));
        if from >= to {
            return;
        }
        let out = &mut dst[from - bucket.start..to - bucket.start];
        let local = from - slot.range.start..to - slot.range.start;
        // The slot was laid out from this very gradient's dtype and shape (its callers
        // check), and the backward pass gives float32 or float16 gradients only: the
        // slices below exist.
        match gradient {
            None => out.fill(0.0),
            Some(g) => match g.dtype() {
                DType::F16 => {
                    let src = &g.as_slice::<f16>().expect("an f16 slot holds an f16 tensor")[local];
                    out.iter_mut().zip(src).for_each(|(o, s)| *o = s.to_f32());
                }
                _ => out.copy_from_slice(&g.as_slice::<f32>().expect("an f32 slot holds an f32 tensor")[local]),
            },
        }
    }

    /// The gradient of `slot` from the summed buffer, divided by `divisor` (the rank count
    /// for a mean, 1 for a sum) and rounded to the slot's dtype.
    pub(crate) fn unpack(&self, slot: &Slot, summed: &[f32], divisor: f32) -> Result<Tensor> {
        let src = &summed[slot.range.clone()];
        let storage = match slot.dtype {
            DType::F32 => Storage::for_overwrite::<f32>(src.len(), |dst| {
                dst.iter_mut().zip(src).for_each(|(d, s)| *d = s / divisor);
            }),
            DType::F16 => Storage::for_overwrite::<f16>(src.len(), |dst| {
                dst.iter_mut().zip(src).for_each(|(d, s)| *d = f16::from_f32(s / divisor));
            }),
            dtype => {
                return Err(Error::InvalidArgument {
                    op: "all_reduce",
                    reason: format!("a fused buffer holds float32 and float16 values, not {dtype}"),
                });
            }
        };
        Tensor::from_storage(storage, slot.dims.clone())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn layout(bucket_bytes: usize) -> Layout {
        Layout::new([(0, DType::F32, vec![2, 3]), (2, DType::F16, vec![4]), (3, DType::F32, vec![5])], bucket_bytes)
    }

    #[test]
    fn buckets_tile_the_buffer_in_fixed_sizes() {
        // 6 + 4 + 5 = 15 elements in buckets of 4: 4, 4, 4, 3.
        let l = layout(16);
        assert_eq!(l.total, 15);
        assert_eq!(l.buckets().collect::<Vec<_>>(), vec![0..4, 4..8, 8..12, 12..15]);
        // A bucket larger than everything: one all-reduce for the whole step.
        assert_eq!(layout(DEFAULT_BUCKET_BYTES).buckets().count(), 1);
        // The bucket of each element range.
        assert_eq!(l.buckets_of(&(0..4)), 0..1);
        assert_eq!(l.buckets_of(&(3..9)), 0..3);
        assert_eq!(l.buckets_of(&(12..15)), 3..4);
        assert_eq!(l.buckets_of(&(5..5)), 0..0);
        assert_eq!(l.bucket_range(3), 12..15);
        // Fewer bytes than an element still moves one element per bucket.
        assert_eq!(layout(1).buckets().count(), 15);
    }

    #[test]
    fn pack_then_unpack_gives_the_gradients_back_across_bucket_edges() {
        let a = Tensor::from_vec(vec![1.0f32, 2.0, 3.0, 4.0, 5.0, 6.0], [2, 3]).unwrap();
        let b = Tensor::from_vec(vec![f16::from_f32(0.5), f16::from_f32(-1.5), f16::ONE, f16::ZERO], [4]).unwrap();
        let c = Tensor::from_vec(vec![10.0f32, 20.0, 30.0, 40.0, 50.0], [5]).unwrap();
        let grads = [Some(&a), None, Some(&b), Some(&c)];
        for bucket_bytes in [4, 12, 16, 28, 1 << 20] {
            let l = layout(bucket_bytes);
            let mut buffer = vec![f32::NAN; l.total];
            for bucket in l.buckets() {
                for slot in &l.slots {
                    l.pack_slot(slot, bucket.clone(), &mut buffer[bucket.clone()], grads[slot.index]);
                }
            }
            assert_eq!(buffer[..6], [1.0, 2.0, 3.0, 4.0, 5.0, 6.0]);
            assert_eq!(buffer[6..10], [0.5, -1.5, 1.0, 0.0]);
            // Divided by 2 (a mean over two ranks holding these sums).
            let back: Vec<Tensor> = l.slots.iter().map(|s| l.unpack(s, &buffer, 2.0).unwrap()).collect();
            assert_eq!(back[0].dims(), &[2, 3]);
            assert_eq!(back[0].to_vec::<f32>().unwrap(), vec![0.5, 1.0, 1.5, 2.0, 2.5, 3.0]);
            assert_eq!(back[1].dtype(), DType::F16);
            assert_eq!(
                back[1].to_vec::<f16>().unwrap(),
                vec![f16::from_f32(0.25), f16::from_f32(-0.75), f16::from_f32(0.5), f16::ZERO]
            );
            assert_eq!(back[2].to_vec::<f32>().unwrap(), vec![5.0, 10.0, 15.0, 20.0, 25.0]);
        }
    }

    #[test]
    fn the_trailer_follows_the_gradients() {
        let l = Layout::with_trailer([(1, DType::F32, vec![3]), (0, DType::F16, vec![2])], 4, 8);
        assert_eq!(l.slots[1].range, 3..5);
        assert_eq!(l.trailer, 5..9);
        assert_eq!(l.total, 9);
        assert_eq!(l.buckets().collect::<Vec<_>>(), vec![0..2, 2..4, 4..6, 6..8, 8..9]);
        assert_eq!(l.buckets_of(&l.trailer), 2..5);
    }

    #[test]
    fn a_missing_gradient_packs_as_zeros() {
        let l = Layout::new([(0, DType::F32, vec![3])], 1 << 10);
        let mut buffer = vec![f32::NAN; 3];
        l.pack_slot(&l.slots[0], 0..3, &mut buffer, None);
        assert_eq!(buffer, vec![0.0; 3]);
    }
}
