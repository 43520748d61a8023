//! Element storage: cache-line (64-byte) aligned beyond 64 bytes, inline below.

use bytemuck::{Pod, Zeroable};

use crate::dtype::{DType, Element};

/// One cache line. A heap buffer is a sequence of these, so it starts on a 64-byte boundary
/// and SIMD loads never split a cache line.
#[derive(Clone, Copy, Pod, Zeroable)]
#[repr(C, align(64))]
struct Line([u8; 64]);

const LINE: usize = std::mem::size_of::<Line>();

/// Data up to 64 bytes lives inline: a scalar tensor then costs exactly one allocation (its
/// `Arc<Storage>`), which dominates the tape's per-op cost on scalar code. Inline data is
/// only 4-byte aligned, on purpose: a 64-byte aligned `Arc` goes through the allocator's
/// slow aligned path (measured: `_int_memalign` among the top costs of a scalar op), and
/// data this small fits one vector load anyway. Larger buffers are cache-line aligned.
#[derive(Clone)]
enum Lines {
    Inline([u32; 16]),
    Heap(Vec<Line>),
}

/// Large freed buffers kept for reuse. A fresh large allocation comes from the OS as
/// untouched pages, and the first write to each page faults: for a 16 MiB tensor that costs
/// more than the kernel that fills it. Reusing buffers of finished tensors avoids it.
mod pool {
    use std::sync::Mutex;

    use super::Line;

    /// Buffers smaller than this (64 KiB) go back to the allocator, which serves small sizes
    /// from warm memory anyway.
    const MIN_LINES: usize = 1024;
    /// At most this many bytes wait in the pool; beyond, freed buffers are released.
    const CAP_BYTES: usize = 1 << 30;
    const LINE_BYTES: usize = std::mem::size_of::<Line>();

    struct Pool {
        buffers: Vec<Vec<Line>>,
        lines: usize,
    }

    static POOL: Mutex<Pool> = Mutex::new(Pool { buffers: Vec::new(), lines: 0 });

    fn lock() -> std::sync::MutexGuard<'static, Pool> {
        POOL.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// A buffer of at least `lines` lines (at most twice that) from the pool, if one waits.
    pub(super) fn take(lines: usize) -> Option<Vec<Line>> {
        if lines < MIN_LINES {
            return None;
        }
        let mut pool = lock();
        let i = pool.buffers.iter().position(|b| b.len() >= lines && b.len() <= 2 * lines)?;
        let buffer = pool.buffers.swap_remove(i);
        pool.lines -= buffer.len();
        Some(buffer)
    }

    /// Returns a buffer for reuse (or frees it when the pool is full or it is small).
    pub(super) fn give(buffer: Vec<Line>) {
        if buffer.len() < MIN_LINES {
            return;
        }
        let mut pool = lock();
        if (pool.lines + buffer.len()) * LINE_BYTES <= CAP_BYTES {
            pool.lines += buffer.len();
            pool.buffers.push(buffer);
        }
    }
}

impl Lines {
    /// Lines whose previous contents are unspecified (reused or zero), for a caller that
    /// overwrites every element.
    fn for_overwrite(bytes: usize) -> Self {
        let lines = bytes.div_ceil(LINE);
        match pool::take(lines) {
            Some(buffer) => Lines::Heap(buffer),
            None => Self::zeroed(bytes),
        }
    }

    fn zeroed(bytes: usize) -> Self {
        if bytes <= LINE {
            Lines::Inline([0; 16])
        } else {
            // alloc_zeroed: large buffers come as fresh zero pages, so no memset pass
            // precedes the kernel that fills them.
            Lines::Heap(bytemuck::allocation::zeroed_vec(bytes.div_ceil(LINE)))
        }
    }

    fn typed<T: Element>(&self) -> &[T] {
        match self {
            Lines::Inline(words) => bytemuck::cast_slice(words),
            Lines::Heap(lines) => bytemuck::cast_slice(lines),
        }
    }

    fn typed_mut<T: Element>(&mut self) -> &mut [T] {
        match self {
            Lines::Inline(words) => bytemuck::cast_slice_mut(words),
            Lines::Heap(lines) => bytemuck::cast_slice_mut(lines),
        }
    }
}

/// A typed buffer of `len` elements of one [`DType`]: 64-byte aligned when larger than 64
/// bytes, inline (one allocation less) when smaller.
#[derive(Clone)]
pub struct Storage {
    lines: Lines,
    len: usize,
    dtype: DType,
}

impl Storage {
    /// A zero-filled buffer of `len` elements of type `T`.
    pub fn zeroed<T: Element>(len: usize) -> Self {
        Storage { lines: Lines::zeroed(len * std::mem::size_of::<T>()), len, dtype: T::DTYPE }
    }

    /// A buffer of `len` elements filled by `fill`, which receives the (zeroed) slice.
    pub fn from_fn<T: Element>(len: usize, fill: impl FnOnce(&mut [T])) -> Self {
        let mut storage = Self::zeroed::<T>(len);
        fill(storage.typed_mut::<T>());
        storage
    }

    /// A buffer of `len` elements filled by `fill`, which must write every element: the
    /// slice it receives holds unspecified (initialized) values, because large buffers are
    /// recycled from tensors that were dropped. The fast path of every kernel.
    pub fn for_overwrite<T: Element>(len: usize, fill: impl FnOnce(&mut [T])) -> Self {
        let mut storage = Storage { lines: Lines::for_overwrite(len * std::mem::size_of::<T>()), len, dtype: T::DTYPE };
        fill(storage.typed_mut::<T>());
        storage
    }

    /// A buffer holding a copy of `values`.
    pub fn from_slice<T: Element>(values: &[T]) -> Self {
        Self::for_overwrite(values.len(), |out: &mut [T]| out.copy_from_slice(values))
    }

    /// Number of elements.
    pub fn len(&self) -> usize {
        self.len
    }

    /// Whether the buffer holds no element.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// The element type.
    pub fn dtype(&self) -> DType {
        self.dtype
    }

    /// The elements as `&[T]`, or `None` if `T` is not the buffer's dtype.
    pub fn as_slice<T: Element>(&self) -> Option<&[T]> {
        (T::DTYPE == self.dtype).then(|| {
            let all: &[T] = self.lines.typed();
            &all[..self.len]
        })
    }

    fn typed_mut<T: Element>(&mut self) -> &mut [T] {
        let len = self.len;
        let all: &mut [T] = self.lines.typed_mut();
        &mut all[..len]
    }

    /// Mutable access while the buffer is still uniquely owned (before it is shared in a
    /// tensor); `None` if `T` is not the buffer's dtype.
    pub fn as_mut_slice<T: Element>(&mut self) -> Option<&mut [T]> {
        (T::DTYPE == self.dtype).then(|| self.typed_mut::<T>())
    }
}

impl Drop for Storage {
    fn drop(&mut self) {
        if let Lines::Heap(buffer) = std::mem::replace(&mut self.lines, Lines::Inline([0; 16])) {
            pool::give(buffer);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn heap_buffers_are_cache_line_aligned() {
        for len in [0usize, 1, 15, 16, 17, 1000] {
            let s = Storage::from_fn::<f32>(len, |v| v.iter_mut().enumerate().for_each(|(i, x)| *x = i as f32));
            let slice = s.as_slice::<f32>().unwrap();
            assert_eq!(slice.len(), len);
            if len > 16 {
                assert_eq!(slice.as_ptr() as usize % 64, 0);
            }
            assert!(slice.iter().enumerate().all(|(i, &x)| x == i as f32));
        }
    }

    #[test]
    fn recycled_buffers_are_fully_overwritten() {
        let first = Storage::from_fn::<f32>(100_000, |v| v.fill(7.0));
        drop(first);
        let second =
            Storage::for_overwrite::<f32>(100_000, |v| v.iter_mut().enumerate().for_each(|(i, x)| *x = i as f32));
        assert!(second.as_slice::<f32>().unwrap().iter().enumerate().all(|(i, &x)| x == i as f32));
        // from_fn still hands out zeros, recycled or not
        drop(second);
        let third = Storage::from_fn::<f32>(100_000, |_| {});
        assert!(third.as_slice::<f32>().unwrap().iter().all(|&x| x == 0.0));
    }

    #[test]
    fn wrong_element_type_is_refused() {
        let s = Storage::from_slice(&[1i32, 2]);
        assert!(s.as_slice::<f32>().is_none());
        assert_eq!(s.as_slice::<i32>().unwrap(), &[1, 2]);
    }
}
