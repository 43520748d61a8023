//! The immutable tensor value.

use std::cell::Cell;
use std::fmt;
use std::marker::PhantomData;
use std::sync::atomic::{AtomicU64, Ordering};

use crate::display::{Values, format_numpy};
use crate::dtype::{DType, Element, float_to_i32};
use crate::error::{Error, Result};
use crate::shape::Shape;
use crate::storage::{Buffer, Storage};
use half::f16;

/// Ids a thread claims at once (see [`TensorId::fresh`]).
const ID_BLOCK: u64 = 1 << 12;

/// A process-wide unique identity of one tensor value; gradient tapes key on it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct TensorId(u64);

impl TensorId {
    /// A fresh id, never returned before in this process.
    ///
    /// Each thread takes ids from a block of its own and claims a new block from the
    /// process-wide counter only every [`ID_BLOCK`] ids: one shared atomic add per tensor
    /// cost more than the rest of creating a scalar, and on several threads the counter's
    /// cache line would move between cores on every op.
    pub fn fresh() -> Self {
        static NEXT_BLOCK: AtomicU64 = AtomicU64::new(1);
        thread_local! {
            /// The next id of this thread's block and the end of the block.
            static BLOCK: std::cell::Cell<(u64, u64)> = const { std::cell::Cell::new((0, 0)) };
        }
        BLOCK.with(|block| {
            let (mut next, mut end) = block.get();
            if next == end {
                next = NEXT_BLOCK.fetch_add(ID_BLOCK, Ordering::Relaxed);
                end = next + ID_BLOCK;
            }
            block.set((next + 1, end));
            TensorId(next)
        })
    }

    /// The id as a number (for logs and debugging).
    pub fn as_u64(self) -> u64 {
        self.0
    }
}

/// An immutable n-dimensional array: shape + dtype + shared, 64-byte aligned storage, and a
/// unique [`TensorId`]. Cloning is O(1) and keeps the id (it is the same value).
///
/// `R` is the [`Runtime`](crate::Runtime) that executes the arithmetic operators; users
/// see `tapeflow::Tensor`, where it is tapeflow's recording runtime.
pub struct Tensor<R> {
    data: Buffer,
    shape: Shape,
    id: TensorId,
    runtime: PhantomData<fn() -> R>,
}

impl<R> Clone for Tensor<R> {
    fn clone(&self) -> Self {
        Tensor { data: self.data.clone(), shape: self.shape.clone(), id: self.id, runtime: PhantomData }
    }
}

impl<R> Tensor<R> {
    /// A tensor over `storage` with `shape`; `Err` if the element count differs.
    pub fn from_storage(storage: Storage, shape: impl Into<Shape>) -> Result<Self> {
        Self::from_buffer(Buffer::new(storage), shape.into())
    }

    fn from_buffer(data: Buffer, shape: Shape) -> Result<Self> {
        match shape.checked_num_elements() {
            Some(n) if n == data.len() => Ok(Tensor { data, shape, id: TensorId::fresh(), runtime: PhantomData }),
            expected => Err(Error::DataLength {
                op: "from_storage",
                len: data.len(),
                expected: expected.unwrap_or(usize::MAX),
                shape,
                dtype: data.dtype(),
            }),
        }
    }

    /// A tensor over `storage` whose element count the caller has made equal to `shape`'s.
    #[cfg(feature = "ndarray")]
    pub(crate) fn from_storage_exact(storage: Storage, shape: Shape) -> Self {
        debug_assert_eq!(shape.checked_num_elements(), Some(storage.len()));
        Tensor { data: Buffer::new(storage), shape, id: TensorId::fresh(), runtime: PhantomData }
    }

    /// A tensor holding `values` in row-major order; `Err` if their number does not fill
    /// `shape` exactly.
    pub fn from_vec<T: Element>(values: Vec<T>, shape: impl Into<Shape>) -> Result<Self> {
        Self::from_slice(&values, shape)
    }

    /// Like [`from_vec`](Self::from_vec), copying from a slice.
    pub fn from_slice<T: Element>(values: &[T], shape: impl Into<Shape>) -> Result<Self> {
        let shape = shape.into();
        if shape.checked_num_elements() != Some(values.len()) {
            return Err(Error::DataLength {
                op: "from_vec",
                len: values.len(),
                expected: shape.checked_num_elements().unwrap_or(usize::MAX),
                shape,
                dtype: T::DTYPE,
            });
        }
        Self::from_buffer(Buffer::new(Storage::from_slice(values)), shape)
    }

    /// A rank-0 tensor.
    pub fn scalar<T: Element>(value: T) -> Self {
        Tensor { data: Buffer::scalar(value), shape: Shape::scalar(), id: TensorId::fresh(), runtime: PhantomData }
    }

    /// A scalar constant used as an op's operand (a literal such as the `1.0001` in
    /// `y * 1.0001`, or a constant inside a backward rule). A scalar is held by value, so
    /// this allocates nothing; the name stays for the call sites that build such operands.
    pub fn shared_scalar<T: Element>(value: T) -> Self {
        Self::scalar(value)
    }

    /// A tensor of zeros.
    ///
    /// # Panics
    /// If the shape holds more elements than one allocation can (`[usize::MAX, 2]`), like
    /// `Vec::with_capacity`; [`try_zeros`](Self::try_zeros) returns an `Err` instead.
    pub fn zeros(shape: impl Into<Shape>, dtype: DType) -> Self {
        Self::try_zeros(shape, dtype).unwrap_or_else(|e| panic!("{e}"))
    }

    /// A tensor of zeros; `Err` if the shape holds more elements than one allocation can.
    pub fn try_zeros(shape: impl Into<Shape>, dtype: DType) -> Result<Self> {
        let shape = shape.into();
        let n = allocatable_len("zeros", &shape, dtype)?;
        let storage = match dtype {
            DType::F32 => Storage::zeroed::<f32>(n),
            DType::F16 => Storage::zeroed::<f16>(n),
            DType::I32 => Storage::zeroed::<i32>(n),
            DType::Bool => Storage::zeroed::<bool>(n),
        };
        Ok(Tensor { data: Buffer::new(storage), shape, id: TensorId::fresh(), runtime: PhantomData })
    }

    /// A tensor of ones.
    ///
    /// # Panics
    /// As [`zeros`](Self::zeros); [`try_ones`](Self::try_ones) returns an `Err` instead.
    pub fn ones(shape: impl Into<Shape>, dtype: DType) -> Self {
        Self::try_ones(shape, dtype).unwrap_or_else(|e| panic!("{e}"))
    }

    /// A tensor of ones; `Err` if the shape holds more elements than one allocation can.
    pub fn try_ones(shape: impl Into<Shape>, dtype: DType) -> Result<Self> {
        let shape = shape.into();
        let n = allocatable_len("ones", &shape, dtype)?;
        let storage = match dtype {
            DType::F32 => Storage::for_overwrite::<f32>(n, |v| v.fill(1.0)),
            DType::F16 => Storage::for_overwrite::<f16>(n, |v| v.fill(f16::ONE)),
            DType::I32 => Storage::for_overwrite::<i32>(n, |v| v.fill(1)),
            DType::Bool => Storage::for_overwrite::<bool>(n, |v| v.fill(true)),
        };
        Ok(Tensor { data: Buffer::new(storage), shape, id: TensorId::fresh(), runtime: PhantomData })
    }

    /// A tensor with every element `value`, converted to `dtype` (rounded for float16;
    /// `value != 0` for bool). `Err` for int32 if `value` is not an integer in range (NaN,
    /// 2.5, 1e10).
    pub fn full(shape: impl Into<Shape>, value: f64, dtype: DType) -> Result<Self> {
        let shape = shape.into();
        let n = allocatable_len("full", &shape, dtype)?;
        let storage = match dtype {
            DType::F32 => Storage::for_overwrite::<f32>(n, |v| v.fill(value as f32)),
            DType::F16 => Storage::for_overwrite::<f16>(n, |v| v.fill(f16::from_f64(value))),
            DType::I32 => {
                let int = float_to_i32(value);
                if f64::from(int) != value {
                    return Err(Error::InvalidValue {
                        op: "full",
                        shape,
                        dtype,
                        reason: format!("{value} is not an int32 value"),
                    });
                }
                Storage::for_overwrite::<i32>(n, |v| v.fill(int))
            }
            // As a cast to bool: nonzero (and NaN) is true.
            DType::Bool => Storage::for_overwrite::<bool>(n, |v| v.fill(value != 0.0)),
        };
        Ok(Tensor { data: Buffer::new(storage), shape, id: TensorId::fresh(), runtime: PhantomData })
    }

    /// The dimensions, outermost first.
    pub fn dims(&self) -> &[usize] {
        self.shape.dims()
    }

    /// The shape.
    pub fn shape(&self) -> &Shape {
        &self.shape
    }

    /// Number of dimensions.
    pub fn rank(&self) -> usize {
        self.shape.rank()
    }

    /// Number of elements.
    pub fn num_elements(&self) -> usize {
        self.data.len()
    }

    /// The element type.
    pub fn dtype(&self) -> DType {
        self.data.dtype()
    }

    /// This value's identity.
    pub fn id(&self) -> TensorId {
        self.id
    }

    /// The same value (shared storage, no copy) under a fresh id: a distinct tensor as far
    /// as gradient tapes are concerned.
    pub fn with_new_id(&self) -> Self {
        Tensor { id: TensorId::fresh(), ..self.clone() }
    }

    /// The same elements under another shape with the same element count, sharing storage.
    pub fn with_shape(&self, shape: impl Into<Shape>) -> Result<Self> {
        let shape = shape.into();
        if shape.checked_num_elements() != Some(self.num_elements()) {
            return Err(Error::InvalidShape {
                op: "reshape",
                shape: self.shape.clone(),
                dtype: self.dtype(),
                target: shape.dims().iter().map(|&d| d as isize).collect(),
                reason: "the element counts differ".into(),
            });
        }
        Self::from_buffer(self.data.clone(), shape)
    }

    /// The elements, mutably, when this handle is the only owner of its storage (no clone of
    /// it, and no tensor sharing its storage, exists anywhere) and `T` is its dtype; `None`
    /// otherwise. Nothing else can observe the change, and the tensor takes a fresh id
    /// first: it becomes another value. (Optimizers update variables in place this way.)
    pub fn unique_slice_mut<T: Element>(&mut self) -> Option<&mut [T]> {
        self.data.unique_slice_mut::<T>()?;
        self.id = TensorId::fresh();
        self.data.unique_slice_mut::<T>()
    }

    /// A bool tensor's elements as bytes, 0 or 1 each, without the validating pass of
    /// `as_slice::<bool>()` (the kernels' read path); `Err` for any other dtype.
    pub fn bool_bytes(&self) -> Result<&[u8]> {
        if self.dtype() != DType::Bool {
            return Err(Error::UnsupportedDType { op: "bool_bytes", shape: self.shape().clone(), dtype: self.dtype() });
        }
        Ok(self.data.element_bytes())
    }

    /// The elements as a slice of `T`; `Err` if `T` is not the tensor's dtype.
    pub fn as_slice<T: Element>(&self) -> Result<&[T]> {
        self.slice_for::<T>("as_slice")
    }

    /// The elements, row-major; `Err` if `T` is not the tensor's dtype.
    pub fn to_vec<T: Element>(&self) -> Result<Vec<T>> {
        self.slice_for::<T>("to_vec").map(<[T]>::to_vec)
    }

    /// [`as_slice`](Self::as_slice) whose error names `op`.
    fn slice_for<T: Element>(&self, op: &'static str) -> Result<&[T]> {
        if let Some(made_by) = self.symbolic() {
            return Err(Error::SymbolicValue { op, made_by, shape: self.shape.clone(), dtype: self.dtype() });
        }
        self.data.as_slice::<T>().ok_or_else(|| Error::DTypeMismatch {
            op,
            lhs: self.shape.clone(),
            lhs_dtype: self.dtype(),
            rhs: self.shape.clone(),
            rhs_dtype: T::DTYPE,
        })
    }

    /// The single element of a tensor with one element (a scalar, or shape `(1,)`, ...);
    /// `Err` if it has another number of elements or `T` is not its dtype.
    pub fn to_scalar<T: Element>(&self) -> Result<T> {
        match self.slice_for::<T>("to_scalar")? {
            [value] => Ok(*value),
            values => Err(Error::InvalidArgument {
                op: "to_scalar",
                reason: format!(
                    "a tensor of shape {} {} has {} elements, not 1",
                    self.shape,
                    self.dtype(),
                    values.len()
                ),
            }),
        }
    }

    /// Every element converted to f64 (exact for every dtype; `true` is 1).
    pub fn to_f64_vec(&self) -> Vec<f64> {
        match self.dtype() {
            DType::F32 => self.typed::<f32>().iter().map(|&v| f64::from(v)).collect(),
            DType::F16 => self.typed::<f16>().iter().map(|v| v.to_f64()).collect(),
            DType::I32 => self.typed::<i32>().iter().map(|&v| f64::from(v)).collect(),
            DType::Bool => self.typed::<bool>().iter().map(|&v| v.to_f64()).collect(),
        }
    }

    /// The raw value conversion behind `cast`: floats round to nearest; float → int32
    /// truncates toward zero, NaN and out-of-range values giving `i32::MIN` (TensorFlow on
    /// x86); → bool is `x != 0` (NaN is true), bool → a number is 1 or 0. Not recorded on
    /// any tape; the differentiable `cast` is in `tapeflow-tape`.
    pub fn to_dtype(&self, dtype: DType) -> Self {
        if dtype == self.dtype() {
            return self.with_new_id();
        }
        let n = self.num_elements();
        let storage = match (self.dtype(), dtype) {
            (DType::F32, DType::F16) => Storage::for_overwrite::<f16>(n, |out| {
                half::slice::HalfFloatSliceExt::convert_from_f32_slice(out, self.typed::<f32>())
            }),
            (DType::F16, DType::F32) => Storage::for_overwrite::<f32>(n, |out| {
                half::slice::HalfFloatSliceExt::convert_to_f32_slice(self.typed::<f16>(), out)
            }),
            (DType::F32, DType::I32) => Storage::for_overwrite::<i32>(n, |out| {
                out.iter_mut().zip(self.typed::<f32>()).for_each(|(o, &v)| *o = float_to_i32(f64::from(v)))
            }),
            (DType::F16, DType::I32) => Storage::for_overwrite::<i32>(n, |out| {
                out.iter_mut().zip(self.typed::<f16>()).for_each(|(o, v)| *o = float_to_i32(v.to_f64()))
            }),
            (DType::I32, DType::F32) => Storage::for_overwrite::<f32>(n, |out| {
                out.iter_mut().zip(self.typed::<i32>()).for_each(|(o, &v)| *o = v as f32)
            }),
            (DType::I32, DType::F16) => Storage::for_overwrite::<f16>(n, |out| {
                out.iter_mut().zip(self.typed::<i32>()).for_each(|(o, &v)| *o = f16::from_f32(v as f32))
            }),
            (DType::F32, DType::Bool) => self.convert::<f32, bool>(|v| v != 0.0),
            (DType::F16, DType::Bool) => self.convert::<f16, bool>(|v| v.to_f32() != 0.0),
            (DType::I32, DType::Bool) => self.convert::<i32, bool>(|v| v != 0),
            (DType::Bool, DType::F32) => self.convert::<bool, f32>(|v| f32::from(u8::from(v))),
            (DType::Bool, DType::F16) => self.convert::<bool, f16>(|v| if v { f16::ONE } else { f16::ZERO }),
            (DType::Bool, DType::I32) => self.convert::<bool, i32>(i32::from),
            (DType::F32, DType::F32)
            | (DType::F16, DType::F16)
            | (DType::I32, DType::I32)
            | (DType::Bool, DType::Bool) => {
                return self.with_new_id();
            }
        };
        Tensor { data: Buffer::new(storage), shape: self.shape.clone(), id: TensorId::fresh(), runtime: PhantomData }
    }

    /// A storage of `D` holding `f` of each element (of type `S`, the caller's match).
    fn convert<S: Element, D: Element>(&self, f: impl Fn(S) -> D) -> Storage {
        Storage::for_overwrite::<D>(self.num_elements(), |out| {
            out.iter_mut().zip(self.typed::<S>()).for_each(|(o, &v)| *o = f(v))
        })
    }

    /// The elements as `&[T]` when the caller has already matched on the dtype.
    fn typed<T: Element>(&self) -> &[T] {
        // The dtype was matched by the caller, so the slice exists; an empty slice keeps
        // this total if that invariant were ever broken.
        self.data.as_slice::<T>().unwrap_or(&[])
    }
}

/// The element count of `shape` in `dtype`, or an `Err` naming `op` when no allocation can
/// hold that many (the count or its byte size overflows).
fn allocatable_len(op: &'static str, shape: &Shape, dtype: DType) -> Result<usize> {
    shape.checked_len_for(dtype).ok_or_else(|| Error::InvalidValue {
        op,
        shape: shape.clone(),
        dtype,
        reason: "the shape holds more elements than one allocation can".into(),
    })
}

impl<R> Tensor<R> {
    /// The values as numpy prints them (`str(tensor.numpy())`): `40.0`, `[ 1.  8. 27.]`,
    /// several lines for rank ≥ 2, summarised with `...` past 1000 elements.
    pub fn values_text(&self) -> String {
        let values = match self.dtype() {
            DType::F32 => Values::F32(self.typed()),
            DType::F16 => Values::F16(self.typed()),
            DType::I32 => Values::I32(self.typed()),
            DType::Bool => Values::Bool(self.typed()),
        };
        format_numpy(values, self.dims())
    }
}

/// The hook that tells whether a tensor id stands for a value of a program being traced on
/// this thread, and which op made it (see [`set_symbolic_hook`]).
pub type SymbolicHook = fn(TensorId) -> Option<&'static str>;

thread_local! {
    static SYMBOLIC: Cell<Option<SymbolicHook>> = const { Cell::new(None) };
}

/// Installs `hook` on this thread (or removes it with `None`) and returns the previous one.
/// While `tapeflow::function` traces, host reads of the program's values (`to_vec`,
/// `to_scalar`, `as_slice`) are an `Err` and `Display` prints TensorFlow's symbolic form;
/// the value crate knows nothing of tracing, so the tape crate answers through this hook.
pub fn set_symbolic_hook(hook: Option<SymbolicHook>) -> Option<SymbolicHook> {
    SYMBOLIC.with(|s| s.replace(hook))
}

impl<R> Tensor<R> {
    /// The op that made this tensor when it stands for a traced program's value.
    fn symbolic(&self) -> Option<&'static str> {
        SYMBOLIC.with(Cell::get).and_then(|hook| hook(self.id))
    }
}

impl<R> fmt::Display for Tensor<R> {
    /// TensorFlow's `tf.Tensor` print: numpy-style values, then shape and dtype; while a
    /// function traces, its symbolic tensors print as TF's do: `Tensor("op:0", shape=…)`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if let Some(made_by) = self.symbolic() {
            return write!(f, "Tensor(\"{made_by}:0\", shape={}, dtype={})", self.shape, self.dtype());
        }
        let text = self.values_text();
        let sep = if text.contains('\n') { "\n" } else { "" };
        write!(f, "Tensor({sep}{text}, shape={}, dtype={})", self.shape, self.dtype())
    }
}

impl<R> fmt::Debug for Tensor<R> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(self, f)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    type T = Tensor<()>;

    #[test]
    fn bool_bytes_are_a_bool_tensors_and_an_err_for_other_dtypes() {
        let t = T::from_vec(vec![true, false, true], [3]).unwrap();
        assert_eq!(t.bool_bytes().unwrap(), &[1, 0, 1]);
        let f = T::from_vec(vec![1.0f32], [1]).unwrap();
        assert!(f.bool_bytes().unwrap_err().to_string().contains("bool_bytes"));
    }

    #[test]
    fn unique_slice_mut_only_for_the_sole_owner_and_the_right_dtype() {
        // Eight elements: beyond the bytes a tensor holds by value, so clones share them.
        let mut t = T::from_vec(vec![1.0f32, 2.0, 3.0, 4.0, 5.0, 6.0, 7.0, 8.0], [8]).unwrap();
        let id = t.id();
        let held = t.clone();
        assert!(t.unique_slice_mut::<f32>().is_none(), "a clone shares the storage");
        assert_eq!(t.id(), id, "no change, no new id");
        drop(held);
        let view = t.with_shape([2, 4]).unwrap();
        assert!(t.unique_slice_mut::<f32>().is_none(), "a reshaped view shares the storage");
        drop(view);
        assert!(t.unique_slice_mut::<i32>().is_none(), "wrong dtype");
        t.unique_slice_mut::<f32>().expect("sole owner")[1] = 5.0;
        assert_ne!(t.id(), id, "a changed value is another value");
        assert_eq!(t.to_vec::<f32>().unwrap(), vec![1.0, 5.0, 3.0, 4.0, 5.0, 6.0, 7.0, 8.0]);
    }

    #[test]
    fn small_values_are_copies_so_changing_one_leaves_its_clones_alone() {
        for len in [0usize, 1, 3, 4] {
            let mut t = T::from_vec((0..len).map(|i| i as f32).collect::<Vec<_>>(), [len]).unwrap();
            let held = t.clone();
            if let Some(first) = t.unique_slice_mut::<f32>().expect("a small value is never shared").first_mut() {
                *first = 9.0;
            }
            assert_eq!(held.to_vec::<f32>().unwrap(), (0..len).map(|i| i as f32).collect::<Vec<_>>());
            assert_ne!(t.id(), held.id());
        }
        // Eight float16 values (16 bytes) are small too; five float32 values are not.
        assert!(T::from_vec(vec![half::f16::ONE; 8], [8]).unwrap().clone().unique_slice_mut::<half::f16>().is_some());
        let big = T::from_vec(vec![1.0f32; 5], [5]).unwrap();
        let mut copy = big.clone();
        assert!(copy.unique_slice_mut::<f32>().is_none());
    }

    #[test]
    fn from_vec_checks_the_length() {
        let err = T::from_vec(vec![1.0f32; 5], [2, 2]).unwrap_err();
        let msg = err.to_string();
        assert!(msg.contains("from_vec") && msg.contains("(2, 2)") && msg.contains("float32"), "{msg}");
        assert!(T::from_vec(vec![1.0f32; 4], [2, 2]).is_ok());
        assert!(T::from_vec(Vec::<i32>::new(), [0, 3]).is_ok());
    }

    #[test]
    fn clones_share_the_id_and_new_ids_are_distinct() {
        let a = T::scalar(1.0f32);
        assert_eq!(a.clone().id(), a.id());
        assert_ne!(a.with_new_id().id(), a.id());
    }

    #[test]
    fn accessors_check_the_dtype() {
        let a = T::from_vec(vec![1i32, 2], [2]).unwrap();
        assert!(a.to_vec::<f32>().is_err());
        assert_eq!(a.to_vec::<i32>().unwrap(), vec![1, 2]);
        assert!(a.to_scalar::<i32>().is_err());
    }

    #[test]
    fn float_to_int_conversion_is_tensorflow_x86() {
        let a = T::from_vec(vec![1.9f32, -1.9, f32::NAN, 1e20], [4]).unwrap();
        assert_eq!(a.to_dtype(DType::I32).to_vec::<i32>().unwrap(), vec![1, -1, i32::MIN, i32::MIN]);
    }

    #[test]
    fn shapes_too_large_to_allocate_are_errors_or_documented_panics() {
        for shape in [Shape::from([usize::MAX, 2]), Shape::from([1 << 62, 4]), Shape::from([1usize << 62])] {
            let msg = T::try_zeros(shape.clone(), DType::F32).unwrap_err().to_string();
            assert!(msg.contains("zeros") && msg.contains(&shape.to_string()) && msg.contains("float32"), "{msg}");
            assert!(T::try_ones(shape.clone(), DType::I32).unwrap_err().to_string().contains("ones"));
            assert!(T::full(shape.clone(), 1.0, DType::F16).unwrap_err().to_string().contains("full"));
            let panic = std::panic::catch_unwind(|| T::zeros(shape.clone(), DType::F32)).unwrap_err();
            let text = panic.downcast_ref::<String>().cloned().unwrap_or_default();
            assert!(text.contains("zeros") && text.contains("more elements than one allocation"), "{text}");
        }
        // A zero dimension empties any shape.
        assert_eq!(T::zeros([usize::MAX, 0], DType::F32).num_elements(), 0);
    }

    #[test]
    fn accessor_errors_name_the_accessor() {
        let a = T::from_vec(vec![1i32, 2], [2]).unwrap();
        assert!(a.to_vec::<f32>().unwrap_err().to_string().starts_with("to_vec"));
        assert!(a.to_scalar::<f32>().unwrap_err().to_string().starts_with("to_scalar"));
        assert!(a.as_slice::<f16>().unwrap_err().to_string().starts_with("as_slice"));
    }

    #[test]
    fn casts_to_and_from_bool_follow_tensorflow() {
        // Nonzero (NaN and -inf included) is true; -0 is false; true is 1.
        let x = T::from_vec(vec![0.0f32, -0.0, 0.5, f32::NAN, f32::NEG_INFINITY], [5]).unwrap();
        assert_eq!(x.to_dtype(DType::Bool).to_vec::<bool>().unwrap(), vec![false, false, true, true, true]);
        let h = x.to_dtype(DType::F16).to_dtype(DType::Bool);
        assert_eq!(h.to_vec::<bool>().unwrap(), vec![false, false, true, true, true]);
        let i = T::from_vec(vec![0i32, -3, i32::MIN], [3]).unwrap().to_dtype(DType::Bool);
        assert_eq!(i.to_vec::<bool>().unwrap(), vec![false, true, true]);
        let m = T::from_vec(vec![true, false], [2]).unwrap();
        assert_eq!(m.to_dtype(DType::F32).to_vec::<f32>().unwrap(), vec![1.0, 0.0]);
        assert_eq!(m.to_dtype(DType::F16).to_vec::<f16>().unwrap(), vec![f16::ONE, f16::ZERO]);
        assert_eq!(m.to_dtype(DType::I32).to_vec::<i32>().unwrap(), vec![1, 0]);
        assert_eq!(m.to_f64_vec(), vec![1.0, 0.0]);
        assert_eq!(format!("{m}"), "Tensor([ True False], shape=(2,), dtype=bool)");
        assert_eq!(format!("{}", T::scalar(true)), "Tensor(True, shape=(), dtype=bool)");
        assert_eq!(T::full([2], -2.0, DType::Bool).unwrap().to_vec::<bool>().unwrap(), vec![true, true]);
        assert_eq!(T::ones([1], DType::Bool).to_vec::<bool>().unwrap(), vec![true]);
        assert_eq!(T::zeros([1], DType::Bool).to_vec::<bool>().unwrap(), vec![false]);
    }

    #[test]
    fn full_refuses_non_integers_for_int32() {
        assert!(T::full([2], 2.5, DType::I32).is_err());
        assert!(T::full([2], f64::NAN, DType::I32).is_err());
        assert_eq!(T::full([2], 3.0, DType::I32).unwrap().to_vec::<i32>().unwrap(), vec![3, 3]);
    }
}
