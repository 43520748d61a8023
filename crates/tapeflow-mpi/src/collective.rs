//! Collectives on tensors and variables: fused all-reduce of float buffers, all-reduce of
//! int32 tensors, broadcast of variables.

use half::f16;
use mpi::collective::SystemOperation;
use mpi::traits::*;
use tapeflow_dtype::{DType, Error, Result};
use tapeflow_tape::{GradientSink, Tensor, Variable};

use crate::bucket::{DEFAULT_BUCKET_BYTES, Layout};
use crate::meta::Signature;
use crate::stream::Reducer;
use crate::world::World;

/// A tensor's dtype and shape as an error message shows them.
pub(crate) fn describe(dtype: DType, dims: &[usize]) -> String {
    format!("{dims:?} {dtype}")
}

impl World {
    /// The element-wise sum of `tensor` over all ranks, on every rank (float32, float16
    /// summed in f32 and rounded once, int32 wrapping). Every rank passes a tensor of the
    /// same shape and dtype, or every rank gets an `Err` and nothing is exchanged.
    pub fn all_reduce_sum(&self, tensor: &Tensor) -> Result<Tensor> {
        self.all_reduce(tensor, "all_reduce_sum", false)
    }

    /// The element-wise mean of `tensor` over all ranks (float32 or float16; the sum
    /// divided by the rank count), on every rank.
    pub fn all_reduce_mean(&self, tensor: &Tensor) -> Result<Tensor> {
        self.all_reduce(tensor, "all_reduce_mean", true)
    }

    fn all_reduce(&self, tensor: &Tensor, op: &'static str, mean: bool) -> Result<Tensor> {
        let (dtype, dims) = (tensor.dtype(), tensor.dims());
        let supported = match dtype {
            DType::F32 | DType::F16 => true,
            DType::I32 => !mean,
            DType::Bool => false,
        };
        // An unsupported dtype is the same verdict on every rank that passes it; it still
        // takes part in the agreement round, so that a rank passing another dtype does not
        // wait for it.
        let signature = Signature::new(op).tensor(dtype, dims).value();
        self.agree(op, signature, false, || describe(dtype, dims))?;
        if !supported {
            return Err(Error::UnsupportedDType { op, shape: tensor.shape().clone(), dtype });
        }
        if dtype == DType::I32 {
            return self.all_reduce_i32(op, tensor);
        }
        let layout = Layout::new([(0, dtype, dims.to_vec())], DEFAULT_BUCKET_BYTES);
        let divisor = if mean { self.size() as f32 } else { 1.0 };
        self.all_reduce_fused(op, &layout, tensor, |summed| layout.unpack(&layout.slots[0], summed, divisor))
    }

    fn all_reduce_i32(&self, op: &'static str, tensor: &Tensor) -> Result<Tensor> {
        let local = tensor.as_slice::<i32>()?;
        let mut summed = vec![0i32; local.len()];
        let seq = self.begin();
        mpi::request::scope(|scope| {
            let request = self.data().immediate_all_reduce_into(scope, local, &mut summed[..], SystemOperation::sum());
            self.wait(op, seq, request);
        });
        Tensor::from_vec(summed, tensor.dims())
    }

    /// Sums one float tensor over the ranks through the fused buffer of `layout` (its one
    /// slot, no trailer), then hands the summed buffer to `finish`.
    fn all_reduce_fused<T>(
        &self,
        op: &'static str,
        layout: &Layout,
        tensor: &Tensor,
        finish: impl FnOnce(&[f32]) -> Result<T>,
    ) -> Result<T> {
        self.with_buffers(layout.total, |send, recv| {
            mpi::request::scope(|scope| {
                let mut reducer = Reducer::new(op, self, layout, scope, 1, send, &mut *recv);
                reducer.ready(0, Some(tensor));
                reducer.finish(Ok(Vec::new()))
            })?;
            finish(recv)
        })
    }

    /// Runs `f` on the world's send and receive buffers, `len` elements each (kept from
    /// call to call, so a training step allocates none).
    pub(crate) fn with_buffers<T>(&self, len: usize, f: impl FnOnce(&mut [f32], &mut [f32]) -> T) -> T {
        let mut buffers = self.buffers.borrow_mut();
        let (send, recv) = &mut *buffers;
        send.resize(len, 0.0);
        recv.resize(len, 0.0);
        f(&mut send[..len], &mut recv[..len])
    }

    /// Makes every rank's `variables` hold rank `root`'s values (Horovod's
    /// `broadcast_variables`): call it once after building the model, so that every rank
    /// starts from the same weights. Every rank passes the same number of variables with the
    /// same shapes and dtypes, or every rank gets an `Err` and nothing changes.
    pub fn broadcast_variables(&self, variables: &[&Variable], root: usize) -> Result<()> {
        let op = "broadcast_variables";
        let signature = variables
            .iter()
            .fold(Signature::new(op).word(root as u64).word(variables.len() as u64), |s, v| {
                s.tensor(v.dtype(), &v.dims())
            })
            .value();
        let what = || {
            let shapes: Vec<String> = variables.iter().map(|v| describe(v.dtype(), &v.dims())).collect();
            format!("{} variables [{}] from root {root}", variables.len(), shapes.join(", "))
        };
        self.agree(op, signature, false, what)?;
        if root >= self.size() {
            return Err(Error::InvalidArgument {
                op,
                reason: format!("root {root} is not a rank of a world of {}", self.size()),
            });
        }
        let values: Vec<Tensor> = variables.iter().map(|v| v.value()).collect();
        let mut bytes = Vec::new();
        if self.rank() == root {
            for value in &values {
                append_bytes(value, &mut bytes)?;
            }
        } else {
            bytes.resize(values.iter().map(|v| v.num_elements() * v.dtype().size_in_bytes()).sum(), 0u8);
        }
        let seq = self.begin();
        mpi::request::scope(|scope| {
            let request = self.data().process_at_rank(root as i32).immediate_broadcast_into(scope, &mut bytes[..]);
            self.wait(op, seq, request);
        });
        if self.rank() != root {
            let mut offset = 0;
            for (variable, value) in variables.iter().zip(&values) {
                let len = value.num_elements() * value.dtype().size_in_bytes();
                variable.assign(from_bytes(&bytes[offset..offset + len], value.dtype(), value.dims())?)?;
                offset += len;
            }
        }
        Ok(())
    }
}

/// A tensor's elements as native-endian bytes (every rank of a job runs on one kind of CPU).
fn append_bytes(tensor: &Tensor, out: &mut Vec<u8>) -> Result<()> {
    match tensor.dtype() {
        DType::F32 => tensor.as_slice::<f32>()?.iter().for_each(|v| out.extend_from_slice(&v.to_ne_bytes())),
        DType::F16 => tensor.as_slice::<f16>()?.iter().for_each(|v| out.extend_from_slice(&v.to_bits().to_ne_bytes())),
        DType::I32 => tensor.as_slice::<i32>()?.iter().for_each(|v| out.extend_from_slice(&v.to_ne_bytes())),
        DType::Bool => out.extend_from_slice(tensor.bool_bytes()?),
    }
    Ok(())
}

/// The tensor `append_bytes` wrote.
fn from_bytes(bytes: &[u8], dtype: DType, dims: &[usize]) -> Result<Tensor> {
    match dtype {
        DType::F32 => Tensor::from_vec(
            bytes.chunks_exact(4).map(|b| f32::from_ne_bytes([b[0], b[1], b[2], b[3]])).collect(),
            dims,
        ),
        DType::F16 => Tensor::from_vec(
            bytes.chunks_exact(2).map(|b| f16::from_bits(u16::from_ne_bytes([b[0], b[1]]))).collect(),
            dims,
        ),
        DType::I32 => Tensor::from_vec(
            bytes.chunks_exact(4).map(|b| i32::from_ne_bytes([b[0], b[1], b[2], b[3]])).collect(),
            dims,
        ),
        DType::Bool => Tensor::from_vec(bytes.iter().map(|&b| b != 0).collect(), dims),
    }
}
