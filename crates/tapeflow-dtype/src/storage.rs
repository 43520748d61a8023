//! Element storage: cache-line (64-byte) aligned beyond 64 bytes, inline below.

use std::sync::Arc;

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

/// Freed buffers kept for reuse. A fresh allocation costs more than the kernel that fills
/// it on many shapes: a large one arrives as untouched pages whose first write faults (for a
/// 16 MiB tensor, more than the kernel), a middle-sized one is zeroed by the allocator and
/// often returned to the OS when freed (measured on the 16-chain backward benchmark: 20 % of
/// its time went to memset, page faults and the allocator). Reusing the buffers of finished
/// tensors avoids both. Buffers are kept in size classes, four per power of two, so a
/// request is served in constant time by any buffer of its class.
mod pool {
    use std::sync::Mutex;

    use super::Line;

    /// Buffers smaller than this (1 KiB) go back to the allocator, whose small-size caches
    /// are fast and need no zeroing pass here.
    pub(super) const MIN_LINES: usize = 16;
    /// At most this many bytes wait in the pool; beyond, freed buffers are released.
    const CAP_BYTES: usize = 1 << 30;
    const LINE_BYTES: usize = std::mem::size_of::<Line>();
    /// Four classes per power of two of the line count.
    const CLASSES: usize = 4 * usize::BITS as usize;

    /// The line count of class `c`: `2^k · (4 + j) / 4` for `c = 4k + j`.
    fn class_lines(c: usize) -> usize {
        let (k, j) = (c / 4, c % 4);
        (1usize << k.saturating_sub(2)).saturating_mul(4 + j) >> (2usize.saturating_sub(k))
    }

    /// The smallest class holding at least `lines` lines (`lines ≥ MIN_LINES`).
    fn class_up(lines: usize) -> usize {
        let k = (usize::BITS - 1 - lines.leading_zeros()) as usize;
        let c = (4 * k..4 * k + 4).find(|&c| class_lines(c) >= lines).unwrap_or(4 * k + 4);
        c.min(CLASSES - 1)
    }

    /// The largest class whose size `lines` lines can serve.
    fn class_down(lines: usize) -> usize {
        let k = (usize::BITS - 1 - lines.leading_zeros()) as usize;
        (4 * k..4 * k + 4).rev().find(|&c| class_lines(c) <= lines).unwrap_or(4 * k)
    }

    /// The size to allocate for a request of `lines` lines, so that the buffer can serve
    /// its whole class when it comes back (at most 25 % more than asked).
    pub(super) fn rounded(lines: usize) -> usize {
        if lines < MIN_LINES { lines } else { class_lines(class_up(lines)).max(lines) }
    }

    /// Buffers by size class, and their total size in lines.
    struct Pool {
        classes: Vec<Vec<Vec<Line>>>,
        lines: usize,
    }

    impl Pool {
        const fn new() -> Self {
            Pool { classes: Vec::new(), lines: 0 }
        }

        fn pop(&mut self, class: usize) -> Option<Vec<Line>> {
            let buffer = self.classes.get_mut(class)?.pop()?;
            self.lines -= buffer.len();
            Some(buffer)
        }

        /// Keeps `buffer` if the pool stays within `cap_bytes`; else hands it back.
        fn push(&mut self, buffer: Vec<Line>, cap_bytes: usize) -> Option<Vec<Line>> {
            if (self.lines + buffer.len()).saturating_mul(LINE_BYTES) > cap_bytes {
                return Some(buffer);
            }
            if self.classes.is_empty() {
                self.classes.resize_with(CLASSES, Vec::new);
            }
            self.lines += buffer.len();
            self.classes[class_down(buffer.len())].push(buffer);
            None
        }
    }

    /// Each thread first reuses what it freed itself: no lock, and the buffer is likely
    /// still in this core's cache. That pays for the many small and middle-sized tensors of
    /// a backward pass; larger buffers (whose kernels dwarf a lock) and whatever a thread's
    /// pool cannot hold go to the shared pool, where every thread finds them.
    const THREAD_CAP_BYTES: usize = 8 << 20;
    const THREAD_MAX_LINES: usize = (256 << 10) / LINE_BYTES;

    thread_local! {
        static LOCAL: std::cell::RefCell<Pool> = const { std::cell::RefCell::new(Pool::new()) };
    }

    static SHARED: Mutex<Pool> = Mutex::new(Pool::new());

    fn shared() -> std::sync::MutexGuard<'static, Pool> {
        SHARED.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// A buffer of at least `lines` lines (at most a quarter more) from the pools, if one
    /// waits.
    pub(super) fn take(lines: usize) -> Option<Vec<Line>> {
        if lines < MIN_LINES {
            return None;
        }
        let class = class_up(lines);
        if class_lines(class) < lines {
            return None; // beyond the last class: never pooled
        }
        let local = (lines <= THREAD_MAX_LINES)
            .then(|| LOCAL.try_with(|pool| pool.try_borrow_mut().ok().and_then(|mut pool| pool.pop(class))))
            .and_then(|found| found.ok().flatten());
        local.or_else(|| shared().pop(class))
    }

    /// Returns a buffer for reuse (or frees it when the pools are full or it is small).
    pub(super) fn give(buffer: Vec<Line>) {
        if buffer.len() < MIN_LINES {
            return;
        }
        // During thread teardown, or re-entered, the thread's pool is unavailable: share.
        let mut spare = Some(buffer);
        let small = spare.as_ref().is_some_and(|b| b.len() <= THREAD_MAX_LINES);
        let _ = small.then(|| {
            LOCAL.try_with(|pool| {
                if let (Ok(mut pool), Some(buffer)) = (pool.try_borrow_mut(), spare.take()) {
                    spare = pool.push(buffer, THREAD_CAP_BYTES);
                }
            })
        });
        if let Some(buffer) = spare {
            let _ = shared().push(buffer, CAP_BYTES);
        }
    }

    #[cfg(test)]
    mod tests {
        use super::*;

        #[test]
        fn size_classes_are_ordered_and_serve_their_requests() {
            for c in 4 * 6..4 * 40 {
                assert!(class_lines(c) < class_lines(c + 1), "class {c}");
            }
            for lines in (MIN_LINES..5000).chain([1 << 20, (1 << 20) + 1, 3 << 30]) {
                let up = class_up(lines);
                assert!(class_lines(up) >= lines && class_lines(up) <= lines + lines / 4 + 1, "{lines}");
                assert!(up == 0 || class_lines(up - 1) < lines, "{lines}: a smaller class would do");
                let down = class_down(lines);
                assert!(class_lines(down) <= lines && class_lines(down + 1) > lines, "{lines}");
            }
        }
    }
}

impl Lines {
    /// Lines whose previous contents are unspecified (reused or zero), for a caller that
    /// overwrites every element.
    fn for_overwrite(bytes: usize) -> Self {
        if bytes <= LINE {
            return Lines::Inline([0; 16]);
        }
        let lines = bytes.div_ceil(LINE);
        match pool::take(lines) {
            Some(buffer) => Lines::Heap(buffer),
            // Allocated at its size class's size, so it can serve the whole class later.
            None => Self::zeroed(pool::rounded(lines).saturating_mul(LINE).max(bytes)),
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

    fn bytes(&self) -> &[u8] {
        match self {
            Lines::Inline(words) => bytemuck::cast_slice(words),
            Lines::Heap(lines) => bytemuck::cast_slice(lines),
        }
    }

    fn bytes_mut(&mut self) -> &mut [u8] {
        match self {
            Lines::Inline(words) => bytemuck::cast_slice_mut(words),
            Lines::Heap(lines) => bytemuck::cast_slice_mut(lines),
        }
    }

    /// The first `len` elements of type `T` (only those: bytes past them may be left over
    /// from a recycled buffer, which for `bool` need not be elements).
    fn typed<T: Element>(&self, len: usize) -> &[T] {
        T::from_bytes(&self.bytes()[..len * std::mem::size_of::<T>()])
    }

    fn typed_mut<T: Element>(&mut self, len: usize) -> &mut [T] {
        T::from_bytes_mut(&mut self.bytes_mut()[..len * std::mem::size_of::<T>()])
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
        let bytes = len * std::mem::size_of::<T>();
        let mut storage = Storage { lines: Lines::for_overwrite(bytes), len, dtype: T::DTYPE };
        if !T::ANY_BIT_PATTERN {
            // A recycled buffer's bytes are not all elements of this type (bool): zero them.
            storage.lines.bytes_mut()[..bytes].fill(0);
        }
        fill(storage.typed_mut::<T>());
        storage
    }

    /// A bool buffer of `len` elements written as bytes by `fill`, which must set every
    /// byte to 0 (false) or 1 (true). Unlike `for_overwrite::<bool>` a recycled buffer is
    /// not zeroed first (the kernel overwrites it anyway) and no validating pass follows.
    /// Safe either way: a byte other than 0 or 1 can only be read as bytes, and every
    /// `&[bool]` view validates its bytes, so a wrong kernel panics there instead of
    /// producing an invalid `bool`.
    pub fn for_overwrite_bool_bytes(len: usize, fill: impl FnOnce(&mut [u8])) -> Self {
        let mut storage = Storage { lines: Lines::for_overwrite(len), len, dtype: DType::Bool };
        fill(&mut storage.lines.bytes_mut()[..len]);
        storage
    }

    /// The elements' bytes (`len · size_of(dtype)` of them), for kernels that read a bool
    /// tensor as bytes without the validating pass of a `&[bool]` view.
    pub fn element_bytes(&self) -> &[u8] {
        &self.lines.bytes()[..self.len * self.dtype.size_in_bytes()]
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
        (T::DTYPE == self.dtype).then(|| self.lines.typed(self.len))
    }

    fn typed_mut<T: Element>(&mut self) -> &mut [T] {
        self.lines.typed_mut(self.len)
    }

    /// Mutable access while the buffer is still uniquely owned (before it is shared in a
    /// tensor); `None` if `T` is not the buffer's dtype.
    pub fn as_mut_slice<T: Element>(&mut self) -> Option<&mut [T]> {
        (T::DTYPE == self.dtype).then(|| self.typed_mut::<T>())
    }
}

/// The elements of one tensor: up to [`SMALL_BYTES`] bytes held by value, larger buffers
/// shared behind an `Arc`. A scalar op then allocates nothing and counts no references:
/// a heap allocation, its free and two atomic counts were a third of a recorded scalar op's
/// cost (callgrind, issue 14), more than its arithmetic.
#[derive(Clone)]
pub(crate) enum Buffer {
    /// At most four 4-byte (eight 2-byte, sixteen 1-byte) elements.
    Small {
        words: [u32; SMALL_WORDS],
        len: u8,
        dtype: DType,
    },
    Shared(Arc<Storage>),
}

/// Words held by value in a [`Buffer`].
const SMALL_WORDS: usize = 4;
/// Bytes held by value in a [`Buffer`] (one 16-byte vector).
pub(crate) const SMALL_BYTES: usize = 4 * SMALL_WORDS;

impl Buffer {
    /// Takes `storage` by value if it is small, else shares it.
    pub fn new(storage: Storage) -> Self {
        let bytes = storage.len * storage.dtype.size_in_bytes();
        match &storage.lines {
            Lines::Inline(words) if bytes <= SMALL_BYTES => {
                let mut small = [0; SMALL_WORDS];
                small.copy_from_slice(&words[..SMALL_WORDS]);
                // len ≤ 16 bytes / element size ≤ 16.
                Buffer::Small { words: small, len: storage.len as u8, dtype: storage.dtype }
            }
            _ => Buffer::Shared(Arc::new(storage)),
        }
    }

    /// One element, held by value.
    pub fn scalar<T: Element>(value: T) -> Self {
        let mut words = [0u32; SMALL_WORDS];
        let bytes: &mut [u8] = bytemuck::cast_slice_mut(&mut words);
        // Zero bytes are a valid element of every dtype (bool included).
        T::from_bytes_mut(&mut bytes[..std::mem::size_of::<T>()])[0] = value;
        Buffer::Small { words, len: 1, dtype: T::DTYPE }
    }

    /// Number of elements.
    pub fn len(&self) -> usize {
        match self {
            Buffer::Small { len, .. } => usize::from(*len),
            Buffer::Shared(storage) => storage.len,
        }
    }

    /// The element type.
    pub fn dtype(&self) -> DType {
        match self {
            Buffer::Small { dtype, .. } => *dtype,
            Buffer::Shared(storage) => storage.dtype,
        }
    }

    /// The elements' bytes (see [`Storage::element_bytes`]).
    pub fn element_bytes(&self) -> &[u8] {
        match self {
            Buffer::Small { words, len, dtype } => {
                let bytes: &[u8] = bytemuck::cast_slice(words);
                &bytes[..usize::from(*len) * dtype.size_in_bytes()]
            }
            Buffer::Shared(storage) => storage.element_bytes(),
        }
    }

    /// The elements as `&[T]`, or `None` if `T` is not the buffer's dtype.
    pub fn as_slice<T: Element>(&self) -> Option<&[T]> {
        match self {
            Buffer::Small { words, len, dtype } => (T::DTYPE == *dtype).then(|| {
                let bytes: &[u8] = bytemuck::cast_slice(words);
                T::from_bytes(&bytes[..usize::from(*len) * std::mem::size_of::<T>()])
            }),
            Buffer::Shared(storage) => storage.as_slice(),
        }
    }

    /// The elements, mutably, if no other tensor shares them (a small buffer never is
    /// shared); `None` if shared or if `T` is not the dtype.
    pub fn unique_slice_mut<T: Element>(&mut self) -> Option<&mut [T]> {
        match self {
            Buffer::Small { words, len, dtype } => (T::DTYPE == *dtype).then(|| {
                let bytes: &mut [u8] = bytemuck::cast_slice_mut(words);
                T::from_bytes_mut(&mut bytes[..usize::from(*len) * std::mem::size_of::<T>()])
            }),
            Buffer::Shared(storage) => Arc::get_mut(storage)?.as_mut_slice(),
        }
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
    fn bool_bytes_from_a_kernel_are_checked_when_seen_as_bools() {
        // Recycled bytes are not zeroed first: the kernel writes every one of them.
        drop(Storage::for_overwrite::<f32>(50_000, |v| v.fill(f32::from_bits(0x0203_0405))));
        let ok = Storage::for_overwrite_bool_bytes(200_000, |b| {
            b.iter_mut().enumerate().for_each(|(i, v)| *v = u8::from(i % 3 == 0))
        });
        assert_eq!(ok.as_slice::<bool>().unwrap()[..4], [true, false, false, true]);
        assert_eq!(ok.element_bytes().len(), 200_000);
        // A kernel that wrote another byte is caught by the view, never read as a bool.
        let bad = Storage::for_overwrite_bool_bytes(200_000, |b| b.fill(2));
        assert_eq!(bad.element_bytes()[7], 2);
        let seen = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| bad.as_slice::<bool>().map(<[bool]>::len)));
        assert!(seen.is_err());
    }

    #[test]
    fn recycled_bool_buffers_hold_only_bools() {
        // A recycled buffer that held other bytes is zeroed before it is seen as bools.
        drop(Storage::from_fn::<i32>(100_000, |v| v.fill(-1)));
        let bools = Storage::for_overwrite::<bool>(400_000, |v| assert!(v.iter().all(|&b| !b)));
        assert_eq!(bools.as_slice::<bool>().unwrap().len(), 400_000);
        let mask = Storage::from_slice(&[true, false, true]);
        assert_eq!(mask.as_slice::<bool>().unwrap(), &[true, false, true]);
        assert_eq!(mask.dtype(), DType::Bool);
    }

    #[test]
    fn wrong_element_type_is_refused() {
        let s = Storage::from_slice(&[1i32, 2]);
        assert!(s.as_slice::<f32>().is_none());
        assert_eq!(s.as_slice::<i32>().unwrap(), &[1, 2]);
    }
}
