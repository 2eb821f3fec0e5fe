//! `MlxBuffer`: a typed, shaped view of a device allocation.
//!
//! A buffer is an allocation (`Storage`, shared by reference count) plus a
//! dtype, a shape and a byte offset. Views made with [`MlxBuffer::slice_view`]
//! and [`MlxBuffer::with_shape`] share the allocation. On CUDA the memory is
//! a plain device allocation and host access (`write`, `read`) is explicit
//! and waits for queued work; on the CPU it is host memory behind a
//! reader-writer lock, which also lends borrowed slices.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use bytemuck::{Pod, Zeroable};
use parking_lot::{
    MappedRwLockReadGuard, MappedRwLockWriteGuard, RwLock, RwLockReadGuard, RwLockWriteGuard,
};

use cudarc::driver::sys;

use crate::device::cuda::Handle;
use crate::device::{Backend, CudaContext, MlxDevice};
use crate::{DType, Element, MlxError, Result};

/// CPU allocations are made of 64-byte aligned chunks so that any element
/// type (and SIMD loads) can be borrowed from them.
#[derive(Clone, Copy, Pod, Zeroable)]
#[repr(C, align(64))]
pub(crate) struct Chunk([u8; 64]);

pub(crate) enum Memory {
    Cpu(RwLock<Vec<Chunk>>),
    /// `ordered_on`: scratch from [`Storage::scratch`], freed in order on
    /// that stream rather than with a wait.
    Cuda {
        ptr: u64,
        ctx: Arc<CudaContext>,
        ordered_on: Option<StreamOrder>,
    },
}

/// The stream that scratch is allocated and freed on, and the flag by which
/// its encoder learns of that allocation and free, stream work it did not
/// queue itself.
pub(crate) struct StreamOrder {
    stream: Handle<sys::CUstream>,
    unseen_work: Arc<AtomicBool>,
}

/// One allocation on one device.
pub(crate) struct Storage {
    pub device: MlxDevice,
    pub bytes: usize,
    pub memory: Memory,
}

impl Storage {
    /// Allocates `bytes` bytes; zero-filled when `zeroed` (CPU memory is
    /// always zeroed).
    pub fn new(device: &MlxDevice, bytes: usize, zeroed: bool) -> Result<Arc<Storage>> {
        let memory = match &device.inner.backend {
            Backend::Cpu(_) => {
                let chunks = bytes.div_ceil(64);
                let mut v = Vec::new();
                v.try_reserve_exact(chunks).map_err(|_| {
                    MlxError::invalid(
                        "alloc",
                        format!("cannot allocate {bytes} bytes of host memory"),
                    )
                })?;
                v.resize(chunks, Chunk([0; 64]));
                Memory::Cpu(RwLock::new(v))
            }
            Backend::Cuda(ctx) => {
                let ptr = ctx.alloc(bytes)?;
                if zeroed {
                    if let Err(e) = ctx.zero(ptr, bytes) {
                        ctx.free(ptr);
                        return Err(e);
                    }
                }
                Memory::Cuda {
                    ptr,
                    ctx: ctx.clone(),
                    ordered_on: None,
                }
            }
        };
        Ok(Arc::new(Storage {
            device: device.clone(),
            bytes,
            memory,
        }))
    }

    /// `bytes` of scratch for work queued on `stream` (CUDA) and nowhere
    /// else, freed in stream order when dropped: neither allocating nor
    /// freeing waits for the GPU, and both may be recorded into a graph.
    /// It must be dropped while `stream` lives (see `CommandEncoder::scratch`).
    /// Allocating and freeing each set `unseen_work`.
    pub fn scratch(
        ctx: &Arc<CudaContext>,
        device: &MlxDevice,
        bytes: usize,
        stream: Handle<sys::CUstream>,
        unseen_work: Arc<AtomicBool>,
    ) -> Result<Arc<Storage>> {
        let ptr = ctx.alloc_async(bytes, stream.0)?;
        unseen_work.store(true, Ordering::Release);
        Ok(Arc::new(Storage {
            device: device.clone(),
            bytes,
            memory: Memory::Cuda {
                ptr,
                ctx: ctx.clone(),
                ordered_on: Some(StreamOrder {
                    stream,
                    unseen_work,
                }),
            },
        }))
    }
}

impl Drop for Storage {
    fn drop(&mut self) {
        match &self.memory {
            Memory::Cuda {
                ptr,
                ctx,
                ordered_on: Some(order),
            } => {
                ctx.free_async(*ptr, order.stream.0);
                order.unseen_work.store(true, Ordering::Release);
            }
            Memory::Cuda { ptr, ctx, .. } => ctx.free(*ptr),
            Memory::Cpu(_) => {}
        }
    }
}

/// A typed, shaped view of device memory. Cloning makes another view of the
/// same allocation.
#[derive(Clone)]
pub struct MlxBuffer {
    pub(crate) storage: Arc<Storage>,
    dtype: DType,
    shape: Vec<usize>,
    offset: usize,
}

/// Element count of `shape`, rejecting empty, zero-sized and overflowing shapes.
pub(crate) fn element_count_of(op: &'static str, dtype: DType, shape: &[usize]) -> Result<usize> {
    if shape.is_empty() {
        return Err(MlxError::invalid(
            op,
            "shape must have at least one dimension",
        ));
    }
    let n = shape
        .iter()
        .try_fold(1usize, |acc, &d| acc.checked_mul(d))
        .ok_or_else(|| {
            MlxError::invalid(op, format!("shape {shape:?} overflows the element count"))
        })?;
    if n == 0 {
        return Err(MlxError::invalid(
            op,
            format!("shape {shape:?} has no elements"),
        ));
    }
    n.checked_mul(dtype.size_of())
        .filter(|&b| b <= isize::MAX as usize)
        .ok_or_else(|| {
            MlxError::invalid(
                op,
                format!("shape {shape:?} of {dtype} overflows the byte size"),
            )
        })?;
    Ok(n)
}

impl MlxBuffer {
    /// A zero-filled buffer.
    pub fn zeros(device: &MlxDevice, dtype: DType, shape: &[usize]) -> Result<MlxBuffer> {
        let n = element_count_of("MlxBuffer::zeros", dtype, shape)?;
        let storage = Storage::new(device, n * dtype.size_of(), true)?;
        Ok(MlxBuffer {
            storage,
            dtype,
            shape: shape.to_vec(),
            offset: 0,
        })
    }

    /// A buffer holding a copy of `data`, whose length must match `shape`.
    pub fn from_slice<T: Element>(
        device: &MlxDevice,
        data: &[T],
        shape: &[usize],
    ) -> Result<MlxBuffer> {
        MlxBuffer::from_bytes(device, bytemuck::cast_slice(data), T::DTYPE, shape)
    }

    /// A buffer of `dtype` and `shape` holding a copy of raw `bytes`.
    pub fn from_bytes(
        device: &MlxDevice,
        bytes: &[u8],
        dtype: DType,
        shape: &[usize],
    ) -> Result<MlxBuffer> {
        let op = "MlxBuffer::from_bytes";
        let n = element_count_of(op, dtype, shape)?;
        if bytes.len() != n * dtype.size_of() {
            return Err(MlxError::shape(
                op,
                format!(
                    "{} bytes given, shape {shape:?} of {dtype} needs {}",
                    bytes.len(),
                    n * dtype.size_of()
                ),
            ));
        }
        let buf = MlxBuffer {
            storage: Storage::new(device, bytes.len(), false)?,
            dtype,
            shape: shape.to_vec(),
            offset: 0,
        };
        buf.write_bytes(bytes)?;
        Ok(buf)
    }

    /// A view at offset 0 of an existing allocation (the pool's buffers).
    pub(crate) fn on_storage(storage: Arc<Storage>, dtype: DType, shape: &[usize]) -> MlxBuffer {
        MlxBuffer {
            storage,
            dtype,
            shape: shape.to_vec(),
            offset: 0,
        }
    }

    pub fn device(&self) -> &MlxDevice {
        &self.storage.device
    }

    pub fn dtype(&self) -> DType {
        self.dtype
    }

    pub fn shape(&self) -> &[usize] {
        &self.shape
    }

    pub fn element_count(&self) -> usize {
        self.shape.iter().product()
    }

    /// Bytes covered by this view.
    pub fn byte_len(&self) -> usize {
        self.element_count() * self.dtype.size_of()
    }

    /// Offset of this view in its allocation, in bytes.
    pub fn byte_offset(&self) -> usize {
        self.offset
    }

    /// Size of the whole allocation behind this view, in bytes.
    pub fn allocation_bytes(&self) -> usize {
        self.storage.bytes
    }

    /// True when both views share one allocation.
    pub fn same_allocation(&self, other: &MlxBuffer) -> bool {
        Arc::ptr_eq(&self.storage, &other.storage)
    }

    /// True when the byte ranges of the two views intersect.
    pub fn overlaps(&self, other: &MlxBuffer) -> bool {
        self.same_allocation(other)
            && self.offset < other.offset + other.byte_len()
            && other.offset < self.offset + self.byte_len()
    }

    /// A 1-D view of `elements` elements starting `byte_offset` bytes into
    /// this view. The offset must be a multiple of the element size.
    pub fn slice_view(&self, byte_offset: usize, elements: usize) -> Result<MlxBuffer> {
        let op = "slice_view";
        let size = self.dtype.size_of();
        if byte_offset % size != 0 {
            return Err(MlxError::invalid(
                op,
                format!(
                    "byte offset {byte_offset} is not a multiple of the {} element size {size}",
                    self.dtype
                ),
            ));
        }
        if elements == 0 {
            return Err(MlxError::invalid(op, "a view needs at least one element"));
        }
        let end = elements
            .checked_mul(size)
            .and_then(|b| b.checked_add(byte_offset));
        match end {
            Some(end) if end <= self.byte_len() => Ok(MlxBuffer {
                storage: self.storage.clone(),
                dtype: self.dtype,
                shape: vec![elements],
                offset: self.offset + byte_offset,
            }),
            _ => Err(MlxError::bounds(
                op,
                format!(
                    "{elements} elements of {} at byte offset {byte_offset} exceed the view of {} bytes",
                    self.dtype,
                    self.byte_len()
                ),
            )),
        }
    }

    /// The same bytes with another shape of the same element count.
    pub fn with_shape(&self, shape: &[usize]) -> Result<MlxBuffer> {
        let n = element_count_of("with_shape", self.dtype, shape)?;
        if n != self.element_count() {
            return Err(MlxError::shape(
                "with_shape",
                format!(
                    "shape {shape:?} has {n} elements, the view has {}",
                    self.element_count()
                ),
            ));
        }
        Ok(MlxBuffer {
            shape: shape.to_vec(),
            ..self.clone()
        })
    }

    /// The same bytes seen as another dtype and shape of equal byte length
    /// (e.g. raw quantized blocks as `U8`).
    pub fn reinterpret(&self, dtype: DType, shape: &[usize]) -> Result<MlxBuffer> {
        let op = "reinterpret";
        let n = element_count_of(op, dtype, shape)?;
        if n * dtype.size_of() != self.byte_len() {
            return Err(MlxError::shape(
                op,
                format!(
                    "{dtype} {shape:?} is {} bytes, the view is {}",
                    n * dtype.size_of(),
                    self.byte_len()
                ),
            ));
        }
        if self.offset % dtype.size_of() != 0 {
            return Err(MlxError::invalid(
                op,
                format!("byte offset {} is not aligned for {dtype}", self.offset),
            ));
        }
        Ok(MlxBuffer {
            storage: self.storage.clone(),
            dtype,
            shape: shape.to_vec(),
            offset: self.offset,
        })
    }

    /// Copies `data` into this view. Waits for queued device work first.
    pub fn write<T: Element>(&self, data: &[T]) -> Result<()> {
        self.check_element::<T>("write")?;
        if data.len() != self.element_count() {
            return Err(MlxError::shape(
                "write",
                format!(
                    "{} elements given, the view holds {}",
                    data.len(),
                    self.element_count()
                ),
            ));
        }
        self.write_bytes(bytemuck::cast_slice(data))
    }

    /// Copies raw bytes into this view; `bytes.len()` must equal `byte_len()`.
    pub fn write_bytes(&self, bytes: &[u8]) -> Result<()> {
        if bytes.len() != self.byte_len() {
            return Err(MlxError::shape(
                "write_bytes",
                format!(
                    "{} bytes given, the view holds {}",
                    bytes.len(),
                    self.byte_len()
                ),
            ));
        }
        match &self.storage.memory {
            Memory::Cpu(lock) => {
                let mut g = lock.write();
                let all: &mut [u8] = bytemuck::cast_slice_mut(g.as_mut_slice());
                all[self.offset..self.offset + bytes.len()].copy_from_slice(bytes);
                Ok(())
            }
            Memory::Cuda { ptr, ctx, .. } => ctx.write(ptr + self.offset as u64, bytes),
        }
    }

    /// Copies this view to the host. Waits for queued device work first.
    pub fn read<T: Element>(&self) -> Result<Vec<T>> {
        self.check_element::<T>("read")?;
        let mut out = vec![T::zeroed(); self.element_count()];
        self.read_into_bytes(bytemuck::cast_slice_mut(&mut out))?;
        Ok(out)
    }

    /// Same as [`MlxBuffer::read`].
    pub fn to_vec<T: Element>(&self) -> Result<Vec<T>> {
        self.read()
    }

    /// The raw bytes of this view.
    pub fn read_bytes(&self) -> Result<Vec<u8>> {
        let mut out = vec![0u8; self.byte_len()];
        self.read_into_bytes(&mut out)?;
        Ok(out)
    }

    fn read_into_bytes(&self, out: &mut [u8]) -> Result<()> {
        match &self.storage.memory {
            Memory::Cpu(lock) => {
                let g = lock.read();
                let all: &[u8] = bytemuck::cast_slice(g.as_slice());
                out.copy_from_slice(&all[self.offset..self.offset + out.len()]);
                Ok(())
            }
            Memory::Cuda { ptr, ctx, .. } => ctx.read(out, ptr + self.offset as u64),
        }
    }

    /// Borrows a CPU buffer's elements. Errors on a CUDA buffer.
    pub fn as_slice<T: Element>(&self) -> Result<MappedRwLockReadGuard<'_, [T]>> {
        self.check_element::<T>("as_slice")?;
        let (start, len) = (self.offset, self.byte_len());
        let lock = self.cpu_lock("as_slice")?;
        Ok(RwLockReadGuard::map(lock.read(), |v| {
            bytemuck::cast_slice(&bytemuck::cast_slice::<Chunk, u8>(v)[start..start + len])
        }))
    }

    /// Borrows a CPU buffer's elements mutably. Errors on a CUDA buffer.
    pub fn as_mut_slice<T: Element>(&mut self) -> Result<MappedRwLockWriteGuard<'_, [T]>> {
        self.check_element::<T>("as_mut_slice")?;
        let (start, len) = (self.offset, self.byte_len());
        let lock = self.cpu_lock("as_mut_slice")?;
        Ok(RwLockWriteGuard::map(lock.write(), |v| {
            bytemuck::cast_slice_mut(
                &mut bytemuck::cast_slice_mut::<Chunk, u8>(v)[start..start + len],
            )
        }))
    }

    fn cpu_lock(&self, op: &'static str) -> Result<&RwLock<Vec<Chunk>>> {
        match &self.storage.memory {
            Memory::Cpu(lock) => Ok(lock),
            Memory::Cuda { .. } => Err(MlxError::unsupported(
                op,
                "a CUDA buffer has no host slice; use read()/write()",
            )),
        }
    }

    fn check_element<T: Element>(&self, op: &'static str) -> Result<()> {
        if T::DTYPE != self.dtype {
            return Err(MlxError::DTypeMismatch {
                op,
                what: "the buffer".into(),
                expected: T::DTYPE.to_string(),
                got: self.dtype,
            });
        }
        Ok(())
    }

    /// Device address of the view (CUDA only).
    pub(crate) fn device_ptr(&self) -> Option<u64> {
        match &self.storage.memory {
            Memory::Cuda { ptr, .. } => Some(ptr + self.offset as u64),
            Memory::Cpu(_) => None,
        }
    }

    /// Copies the bytes of `src` (same byte length, CPU only) into this view
    /// under the allocations' locks, without an intermediate copy.
    pub(crate) fn cpu_copy_from(&self, src: &MlxBuffer) -> Result<()> {
        let n = self.byte_len();
        if self.same_allocation(src) {
            let (from, to) = (src.offset, self.offset);
            return self.cpu_bytes_mut(|all, _| all.copy_within(from..from + n, to));
        }
        let src_lock = src.cpu_lock("cpu copy")?;
        let guard = src_lock.read();
        let from: &[u8] =
            &bytemuck::cast_slice::<Chunk, u8>(guard.as_slice())[src.offset..src.offset + n];
        self.cpu_bytes_mut(|all, range| all[range].copy_from_slice(from))
    }

    /// Runs `f` on the view's bytes (CPU only): `f(all_bytes_of_allocation, view_range)`.
    pub(crate) fn cpu_bytes_mut<R>(
        &self,
        f: impl FnOnce(&mut [u8], std::ops::Range<usize>) -> R,
    ) -> Result<R> {
        let lock = self.cpu_lock("cpu op")?;
        let mut g = lock.write();
        let all: &mut [u8] = bytemuck::cast_slice_mut(g.as_mut_slice());
        Ok(f(all, self.offset..self.offset + self.byte_len()))
    }
}

impl std::fmt::Debug for MlxBuffer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "MlxBuffer({} {:?} at +{} of {} bytes on {:?})",
            self.dtype, self.shape, self.offset, self.storage.bytes, self.storage.device
        )
    }
}
