//! The CUDA side of a device: driver loading, the primary context, streams,
//! events, memory. Everything here is thin and `pub(crate)`; the public
//! surface is `MlxDevice`, `MlxBuffer` and `CommandEncoder`.

use std::cell::Cell;
use std::ffi::c_void;
use std::sync::Arc;

use cudarc::driver::result as cu;
use cudarc::driver::sys;
use parking_lot::RwLock;

use crate::{MlxError, Result};

/// Properties of a CUDA GPU, read once when it is opened.
#[derive(Debug, Clone, serde::Serialize)]
pub struct CudaProperties {
    pub ordinal: usize,
    pub name: String,
    pub total_memory: usize,
    pub compute_capability: (u32, u32),
    pub sm_count: u32,
    pub max_threads_per_block: u32,
    /// Largest dynamic shared memory a block may opt into, in bytes.
    pub max_shared_memory_per_block_optin: u32,
    pub shared_memory_per_sm: u32,
    pub l2_cache_bytes: u32,
    pub memory_bus_width_bits: u32,
    pub memory_clock_khz: u32,
    pub driver_version: i32,
}

/// A CUDA handle that the driver allows to be used from any thread once the
/// context is current there.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Handle<T>(pub T);
// SAFETY: driver handles (contexts, streams, events, functions) are plain
// identifiers; the driver API is thread-safe, and every use binds the context
// to the calling thread first (`CudaContext::bind`).
unsafe impl<T> Send for Handle<T> {}
// SAFETY: as above.
unsafe impl<T> Sync for Handle<T> {}

pub(crate) fn err(op: &'static str) -> impl Fn(cu::DriverError) -> MlxError {
    move |e| MlxError::cuda(op, e)
}

/// One GPU's primary context plus the stream of its default encoder.
#[derive(Debug)]
pub(crate) struct CudaContext {
    ctx: Handle<sys::CUcontext>,
    default_stream: Handle<sys::CUstream>,
    /// Every live stream of the context, so that host access can wait for
    /// each one but a stream being recorded into a graph: waiting for the
    /// whole context (`cuCtxSynchronize`) would fail, and break the
    /// recording, while any stream records. Read-locked while waiting;
    /// write-locked to add, remove, or start or end a recording.
    streams: RwLock<Vec<TrackedStream>>,
    /// The device's default memory pool, where stream-ordered scratch goes
    /// when freed (`None` where the driver has no pools).
    scratch_pool: Option<Handle<sys::CUmemoryPool>>,
    pub props: CudaProperties,
}

#[derive(Debug)]
struct TrackedStream {
    stream: Handle<sys::CUstream>,
    recording: bool,
}

thread_local! {
    /// Set while this thread records a graph: its host accesses would read
    /// or write memory before the recorded work ever runs, so they fail.
    static RECORDING: Cell<bool> = const { Cell::new(false) };
    /// Set when this thread frees a plain allocation while recording: the
    /// graph may hold its address, so the recording fails when it ends.
    static FREED_WHILE_RECORDING: Cell<bool> = const { Cell::new(false) };
}

impl CudaContext {
    /// Opens GPU `ordinal`. Fails cleanly (never panics) when the driver
    /// library is missing, no GPU is present, or the ordinal is out of range.
    pub fn open(ordinal: usize) -> Result<Arc<CudaContext>> {
        // SAFETY: only tries to dlopen the driver library by its names.
        if !unsafe { sys::is_culib_present() } {
            return Err(MlxError::CudaUnavailable(
                "the CUDA driver library (libcuda.so.1) was not found".into(),
            ));
        }
        cu::init().map_err(|e| MlxError::CudaUnavailable(format!("cuInit failed: {e}")))?;
        let count = cu::device::get_count()
            .map_err(|e| MlxError::CudaUnavailable(format!("cuDeviceGetCount: {e}")))?;
        if ordinal >= count as usize {
            return Err(MlxError::CudaUnavailable(format!(
                "CUDA device {ordinal} requested, {count} present"
            )));
        }
        let device = cu::device::get(ordinal as i32).map_err(err("open device"))?;
        // SAFETY: `device` is a valid ordinal; the primary context is retained
        // for the life of the process (devices are process-wide singletons).
        let ctx = unsafe { cu::primary_ctx::retain(device) }.map_err(err("retain context"))?;
        // SAFETY: `ctx` was just retained.
        unsafe { cu::ctx::set_current(ctx) }.map_err(err("set context"))?;
        let props = read_properties(ordinal, device)?;
        let scratch_pool = keep_freed_scratch(device);
        let stream = cu::stream::create(cu::stream::StreamKind::NonBlocking)
            .map_err(err("create stream"))?;
        Ok(Arc::new(CudaContext {
            ctx: Handle(ctx),
            default_stream: Handle(stream),
            streams: RwLock::new(vec![TrackedStream {
                stream: Handle(stream),
                recording: false,
            }]),
            scratch_pool,
            props,
        }))
    }

    /// Makes this context current on the calling thread (cheap when it already is).
    pub fn bind(&self) -> Result<()> {
        if cu::ctx::get_current().ok().flatten() != Some(self.ctx.0) {
            // SAFETY: the context is retained for the process lifetime.
            unsafe { cu::ctx::set_current(self.ctx.0) }.map_err(err("set context"))?;
        }
        Ok(())
    }

    pub fn default_stream(&self) -> sys::CUstream {
        self.default_stream.0
    }

    pub fn alloc(&self, bytes: usize) -> Result<u64> {
        self.bind()?;
        let bytes = whole_granules(bytes);
        // SAFETY: plain device allocation of `bytes` > 0 bytes.
        let mut ptr = unsafe { cu::malloc_sync(bytes) };
        if ptr.is_err() {
            if let Some(pool) = self.scratch_pool {
                // Scratch the pool keeps cached may be what is missing:
                // give back what it can release now and retry.
                // SAFETY: the pool is the device's default one, live for the
                // process; trimming never releases memory still in use.
                if unsafe { cu::mem_pool::trim_to(pool.0, 0) }.is_ok() {
                    // SAFETY: as above.
                    ptr = unsafe { cu::malloc_sync(bytes) };
                }
            }
        }
        ptr.map_err(|e| MlxError::cuda("alloc", format!("cuMemAlloc of {bytes} bytes failed: {e}")))
    }

    /// `bytes` of scratch ordered on `stream`: usable by work queued there
    /// after this call (and by no other stream), until [`Self::free_async`].
    pub fn alloc_async(&self, bytes: usize, stream: sys::CUstream) -> Result<u64> {
        self.bind()?;
        let bytes = whole_granules(bytes);
        // SAFETY: a live stream of this context; the memory is only used on it.
        unsafe { cu::malloc_async(stream, bytes) }.map_err(|e| {
            MlxError::cuda(
                "alloc",
                format!("cuMemAllocAsync of {bytes} bytes failed: {e}"),
            )
        })
    }

    /// Frees scratch from [`Self::alloc_async`] once the work queued on
    /// `stream` before this call has run; the host does not wait.
    pub fn free_async(&self, ptr: u64, stream: sys::CUstream) {
        if self.bind().is_ok() {
            // SAFETY: `ptr` came from alloc_async on `stream`, which is still
            // live (scratch never outlives the encoder that made it), and is
            // freed exactly once. An error here cannot be reported.
            let _ = unsafe { cu::free_async(ptr, stream) };
        }
    }

    /// Frees an allocation. The driver waits for queued work that may use it.
    pub fn free(&self, ptr: u64) {
        if RECORDING.get() {
            FREED_WHILE_RECORDING.set(true);
        }
        if self.bind().is_ok() {
            // SAFETY: `ptr` came from `alloc` and is freed exactly once (by
            // the owning storage's Drop). An error here cannot be reported.
            let _ = unsafe { cu::free_sync(ptr) };
        }
    }

    /// Waits for all work queued on every stream of this context (a stream
    /// being recorded into a graph holds no work that runs). The lock is
    /// held across the waits so that no stream starts recording while it
    /// is waited for, which would break the recording.
    pub fn synchronize(&self) -> Result<()> {
        self.bind_for_host_access()?;
        let streams = self.streams.read();
        for s in streams.iter().filter(|s| !s.recording) {
            stream_sync(s.stream.0)?;
        }
        Ok(())
    }

    /// Binds the context for a host access, which a thread recording a
    /// graph may not make.
    fn bind_for_host_access(&self) -> Result<()> {
        if RECORDING.get() {
            return Err(MlxError::invalid(
                "host access",
                "this thread is recording a graph, so no queued work has run; \
                 read, write or wait after the capture",
            ));
        }
        self.bind()
    }

    /// Zero-fills `bytes` at `ptr` and waits for it, so the memory is ready
    /// for any stream.
    pub fn zero(&self, ptr: u64, bytes: usize) -> Result<()> {
        self.bind_for_host_access()?;
        let s = self.default_stream();
        // SAFETY: `ptr..ptr+bytes` lies in a live allocation.
        unsafe {
            cu::memset_d8_async(ptr, 0, bytes, s).map_err(err("memset"))?;
            cu::stream::synchronize(s).map_err(err("memset"))
        }
    }

    /// Copies host bytes to the device after all queued work has finished,
    /// and waits for the copy (host access is a synchronization point).
    pub fn write(&self, dst: u64, src: &[u8]) -> Result<()> {
        self.synchronize()?;
        let s = self.default_stream();
        // SAFETY: `dst` holds at least `src.len()` bytes (checked by the
        // buffer); we wait for the copy before `src` can go away.
        unsafe {
            cu::memcpy_htod_async(dst, src, s).map_err(err("write"))?;
            cu::stream::synchronize(s).map_err(err("write"))
        }
    }

    /// Copies device bytes to the host after all queued work has finished.
    pub fn read(&self, dst: &mut [u8], src: u64) -> Result<()> {
        self.synchronize()?;
        let s = self.default_stream();
        // SAFETY: `src` holds at least `dst.len()` bytes; we wait for the copy.
        unsafe {
            cu::memcpy_dtoh_async(dst, src, s).map_err(err("read"))?;
            cu::stream::synchronize(s).map_err(err("read"))
        }
    }

    pub fn copy_async(
        &self,
        dst: u64,
        src: u64,
        bytes: usize,
        stream: sys::CUstream,
    ) -> Result<()> {
        // SAFETY: both ranges lie in live allocations (checked by the caller).
        unsafe { cu::memcpy_dtod_async(dst, src, bytes, stream) }.map_err(err("copy"))
    }

    pub fn new_stream(&self) -> Result<Handle<sys::CUstream>> {
        self.bind()?;
        let stream = cu::stream::create(cu::stream::StreamKind::NonBlocking)
            .map(Handle)
            .map_err(err("create stream"))?;
        self.streams.write().push(TrackedStream {
            stream,
            recording: false,
        });
        Ok(stream)
    }

    /// Destroys a stream from `new_stream` once its queued work has run:
    /// host waits no longer see it afterwards, so they must not miss work
    /// that was still queued there.
    pub fn destroy_stream(&self, stream: sys::CUstream) {
        if self.bind().is_ok() {
            // An error here (a failed kernel) cannot be reported from a drop.
            let _ = stream_sync(stream);
        }
        self.streams.write().retain(|s| s.stream.0 != stream);
        if self.bind().is_ok() {
            // SAFETY: the stream was created by `new_stream` and is destroyed once.
            let _ = unsafe { cu::stream::destroy(stream) };
        }
    }

    /// Starts recording the work queued on `stream` (one from `new_stream`)
    /// into a graph, after the work already queued there has finished, so
    /// that host waits may skip the stream while it records. Relaxed mode:
    /// compiling a kernel or allocating on first use stays legal meanwhile.
    /// Host access on this thread fails until the recording ends.
    pub fn begin_capture(&self, stream: sys::CUstream) -> Result<Recording<'_>> {
        const OP: &str = "begin graph capture";
        if stream == self.default_stream() {
            return Err(MlxError::invalid(
                OP,
                "the device's shared stream cannot record, since host reads and \
                 writes use it; capture on an encoder of its own \
                 (MlxDevice::command_encoder_on_new_stream)",
            ));
        }
        self.bind_for_host_access()?;
        // Only the recording encoder queues on its stream, so the wait can
        // come before the lock that other threads' host waits take.
        stream_sync(stream)?;
        let mut streams = self.streams.write();
        let tracked = streams
            .iter_mut()
            .find(|s| s.stream.0 == stream)
            .ok_or_else(|| MlxError::invalid(OP, "the stream is not one of this context's"))?;
        // SAFETY: the stream is live and is not the legacy NULL stream.
        unsafe {
            cu::stream::begin_capture(
                stream,
                sys::CUstreamCaptureMode::CU_STREAM_CAPTURE_MODE_RELAXED,
            )
        }
        .map_err(err(OP))?;
        tracked.recording = true;
        RECORDING.set(true);
        FREED_WHILE_RECORDING.set(false);
        Ok(Recording {
            ctx: self,
            stream,
            ended: false,
        })
    }

    pub fn new_event(&self, timing: bool) -> Result<Handle<sys::CUevent>> {
        self.bind()?;
        let flags = if timing {
            sys::CUevent_flags::CU_EVENT_DEFAULT
        } else {
            sys::CUevent_flags::CU_EVENT_DISABLE_TIMING
        };
        cu::event::create(flags)
            .map(Handle)
            .map_err(err("create event"))
    }

    pub fn destroy_event(&self, event: sys::CUevent) {
        if self.bind().is_ok() {
            // SAFETY: the event was created by `new_event` and is destroyed once.
            let _ = unsafe { cu::event::destroy(event) };
        }
    }
}

/// The device's default memory pool, set to keep what stream-ordered
/// scratch frees (`None` where the driver has no pools; scratch then still
/// works, allocated afresh). By default the pool returns freed memory to
/// the driver at every synchronization, so each step's scratch would be a
/// fresh allocation; kept, scratch is a pool hit after the first step, at
/// the cost of holding the largest scratch in use at once until a plain
/// allocation runs short (`CudaContext::alloc` then trims the pool). The
/// setting is the device's, for the whole process.
fn keep_freed_scratch(device: sys::CUdevice) -> Option<Handle<sys::CUmemoryPool>> {
    let mut threshold = u64::MAX;
    // SAFETY: `device` came from cuDeviceGet; the attribute takes a u64.
    unsafe {
        let pool = cu::device::get_default_mem_pool(device).ok()?;
        cu::mem_pool::set_attribute(
            pool,
            sys::CUmemPool_attribute::CU_MEMPOOL_ATTR_RELEASE_THRESHOLD,
            (&mut threshold as *mut u64).cast(),
        )
        .ok()?;
        Some(Handle(pool))
    }
}

fn read_properties(ordinal: usize, device: sys::CUdevice) -> Result<CudaProperties> {
    use sys::CUdevice_attribute as A;
    let attr = |a: A| -> Result<u32> {
        // SAFETY: `device` is valid; attributes are plain integers.
        unsafe { cu::device::get_attribute(device, a) }
            .map(|v| v.max(0) as u32)
            .map_err(err("device attribute"))
    };
    let mut driver_version = 0i32;
    // SAFETY: writes one int.
    unsafe { sys::cuDriverGetVersion(&mut driver_version) }
        .result()
        .map_err(err("driver version"))?;
    Ok(CudaProperties {
        ordinal,
        name: cu::device::get_name(device).map_err(err("device name"))?,
        // SAFETY: `device` is valid.
        total_memory: unsafe { cu::device::total_mem(device) }.map_err(err("device memory"))?,
        compute_capability: (
            attr(A::CU_DEVICE_ATTRIBUTE_COMPUTE_CAPABILITY_MAJOR)?,
            attr(A::CU_DEVICE_ATTRIBUTE_COMPUTE_CAPABILITY_MINOR)?,
        ),
        sm_count: attr(A::CU_DEVICE_ATTRIBUTE_MULTIPROCESSOR_COUNT)?,
        max_threads_per_block: attr(A::CU_DEVICE_ATTRIBUTE_MAX_THREADS_PER_BLOCK)?,
        max_shared_memory_per_block_optin: attr(
            A::CU_DEVICE_ATTRIBUTE_MAX_SHARED_MEMORY_PER_BLOCK_OPTIN,
        )?,
        shared_memory_per_sm: attr(A::CU_DEVICE_ATTRIBUTE_MAX_SHARED_MEMORY_PER_MULTIPROCESSOR)?,
        l2_cache_bytes: attr(A::CU_DEVICE_ATTRIBUTE_L2_CACHE_SIZE)?,
        memory_bus_width_bits: attr(A::CU_DEVICE_ATTRIBUTE_GLOBAL_MEMORY_BUS_WIDTH)?,
        memory_clock_khz: attr(A::CU_DEVICE_ATTRIBUTE_MEMORY_CLOCK_RATE)?,
        driver_version,
    })
}

/// A TMA descriptor (`CUtensorMap`, passed to a kernel by value) of the
/// row-major bf16 matrix at device address `ptr`: `rows` rows of `cols`
/// elements, `row_stride` bytes apart, read in boxes of `box_rows` ×
/// `box_cols` elements into shared memory, with the 128-byte swizzle when
/// `swizzle` (a box row is then at most 128 bytes) or as dense rows.
/// Elements outside the matrix read as zero. The driver checks the rest:
/// `ptr` and `row_stride` multiples of 16.
pub(crate) fn bf16_tensor_map(
    ptr: u64,
    rows: usize,
    cols: usize,
    row_stride: usize,
    (box_rows, box_cols): (u32, u32),
    swizzle: bool,
) -> Result<[u64; 16]> {
    let mut map = std::mem::MaybeUninit::<sys::CUtensorMap>::uninit();
    let dims = [cols as u64, rows as u64];
    let strides = [row_stride as u64];
    let boxes = [box_cols, box_rows];
    let steps = [1u32, 1];
    // SAFETY: every pointer is to a live local of the length rank 2 needs;
    // the driver only encodes the descriptor (no memory is touched).
    let status = unsafe {
        sys::cuTensorMapEncodeTiled(
            map.as_mut_ptr(),
            sys::CUtensorMapDataType::CU_TENSOR_MAP_DATA_TYPE_BFLOAT16,
            2,
            ptr as *mut c_void,
            dims.as_ptr(),
            strides.as_ptr(),
            boxes.as_ptr(),
            steps.as_ptr(),
            sys::CUtensorMapInterleave::CU_TENSOR_MAP_INTERLEAVE_NONE,
            if swizzle {
                sys::CUtensorMapSwizzle::CU_TENSOR_MAP_SWIZZLE_128B
            } else {
                sys::CUtensorMapSwizzle::CU_TENSOR_MAP_SWIZZLE_NONE
            },
            sys::CUtensorMapL2promotion::CU_TENSOR_MAP_L2_PROMOTION_L2_256B,
            sys::CUtensorMapFloatOOBfill::CU_TENSOR_MAP_FLOAT_OOB_FILL_NONE,
        )
    };
    status.result().map_err(err("encode tensor map"))?;
    // SAFETY: initialized by the successful call above.
    Ok(unsafe { map.assume_init() }.opaque)
}

/// Records `event` on `stream`.
pub(crate) fn record(event: sys::CUevent, stream: sys::CUstream) -> Result<()> {
    // SAFETY: both handles are live; the caller bound the context.
    unsafe { cu::event::record(event, stream) }.map_err(err("record event"))
}

/// Milliseconds between two completed events.
pub(crate) fn elapsed_ms(start: sys::CUevent, end: sys::CUevent) -> Result<f32> {
    // SAFETY: both events were recorded and have completed (the caller synced).
    unsafe { cu::event::elapsed(start, end) }.map_err(err("event timing"))
}

pub(crate) fn stream_wait(stream: sys::CUstream, event: sys::CUevent) -> Result<()> {
    // SAFETY: both handles are live.
    unsafe {
        cu::stream::wait_event(
            stream,
            event,
            sys::CUevent_wait_flags::CU_EVENT_WAIT_DEFAULT,
        )
    }
    .map_err(err("wait event"))
}

pub(crate) fn stream_sync(stream: sys::CUstream) -> Result<()> {
    // SAFETY: the stream is live.
    unsafe { cu::stream::synchronize(stream) }.map_err(err("synchronize"))
}

pub(crate) fn event_sync(event: sys::CUevent) -> Result<()> {
    // SAFETY: the event is live.
    unsafe { cu::event::synchronize(event) }.map_err(err("event synchronize"))
}

/// `bytes` rounded up to whole 16-byte granules. Kernels copy 16-byte
/// aligned granules, among them the one that holds a tensor's last byte;
/// allocating whole granules keeps that copy inside the allocation (which
/// starts on a 16-byte boundary at least), so it is in bounds for the
/// hardware and for compute-sanitizer alike.
fn whole_granules(bytes: usize) -> usize {
    bytes.next_multiple_of(16)
}

/// Launches `f`. `params` holds one pointer per kernel parameter, each to
/// the parameter's value, in declaration order. `early` lets the kernel
/// start before the previous kernel on the stream has finished
/// (programmatic stream serialization; compute capability 9.0 and newer).
pub(crate) fn launch(
    f: sys::CUfunction,
    grid: (u32, u32, u32),
    block: (u32, u32, u32),
    shared_mem: u32,
    stream: sys::CUstream,
    params: &mut [*mut c_void],
    early: bool,
) -> Result<()> {
    if !early {
        // SAFETY: the launcher validated the parameter list against the
        // kernel's documented signature and that every buffer is live and
        // on this device; the driver copies parameter values before
        // returning.
        return unsafe { cu::launch_kernel(f, grid, block, shared_mem, stream, params) }
            .map_err(err("launch"));
    }
    let mut attribute = sys::CUlaunchAttribute {
        id: sys::CUlaunchAttributeID::CU_LAUNCH_ATTRIBUTE_PROGRAMMATIC_STREAM_SERIALIZATION,
        pad: [0; 4],
        value: sys::CUlaunchAttributeValue {
            programmaticStreamSerializationAllowed: 1,
        },
    };
    let config = sys::CUlaunchConfig {
        gridDimX: grid.0,
        gridDimY: grid.1,
        gridDimZ: grid.2,
        blockDimX: block.0,
        blockDimY: block.1,
        blockDimZ: block.2,
        sharedMemBytes: shared_mem,
        hStream: stream,
        attrs: &mut attribute,
        numAttrs: 1,
    };
    // SAFETY: as above; `config` and its attribute outlive the call.
    unsafe { sys::cuLaunchKernelEx(&config, f, params.as_mut_ptr(), std::ptr::null_mut()) }
        .result()
        .map_err(err("launch"))
}

impl CudaContext {
    /// Number of GPUs, 0 when the driver is missing or fails to start.
    pub fn device_count() -> usize {
        // SAFETY: only tries to dlopen the driver library.
        if !unsafe { sys::is_culib_present() } || cu::init().is_err() {
            return 0;
        }
        cu::device::get_count().map_or(0, |n| n.max(0) as usize)
    }
}

/// An executable graph from `graph`, which is destroyed either way.
pub(crate) fn instantiate_graph(graph: sys::CUgraph) -> Result<sys::CUgraphExec> {
    // SAFETY: `graph` came from end_capture and is destroyed exactly once
    // here; instantiation copies what it needs.
    let exec = unsafe { cu::graph::instantiate(graph, sys::CUgraphInstantiate_flags(0)) };
    // SAFETY: as above.
    unsafe { cu::graph::destroy(graph) }.map_err(err("destroy graph"))?;
    exec.map_err(err("instantiate graph"))
}

/// Frees a graph that will not be instantiated.
pub(crate) fn destroy_graph(graph: sys::CUgraph) {
    // SAFETY: `graph` came from end_capture and is not used again.
    let _ = unsafe { cu::graph::destroy(graph) };
}

pub(crate) fn launch_graph(exec: sys::CUgraphExec, stream: sys::CUstream) -> Result<()> {
    // SAFETY: both handles are live; the graph's kernels read buffers its
    // owner keeps alive.
    unsafe { cu::graph::launch(exec, stream) }.map_err(err("launch graph"))
}

pub(crate) fn destroy_graph_exec(exec: sys::CUgraphExec) {
    // SAFETY: called once, from the owner's Drop; a launched graph finishes
    // its queued work before the driver frees it.
    let _ = unsafe { cu::graph::exec_destroy(exec) };
}

/// A stream recording into a graph (from [`CudaContext::begin_capture`]).
/// Dropping it without [`Recording::end`] (an error or a panic while
/// recording) ends the recording and discards the graph, so the stream and
/// the thread work again.
pub(crate) struct Recording<'a> {
    ctx: &'a CudaContext,
    stream: sys::CUstream,
    ended: bool,
}

impl Recording<'_> {
    /// Ends the recording; the graph of what was queued meanwhile.
    pub fn end(mut self) -> Result<sys::CUgraph> {
        self.ended = true;
        self.finish()
    }

    fn finish(&mut self) -> Result<sys::CUgraph> {
        self.ctx.bind()?;
        let mut streams = self.ctx.streams.write();
        // SAFETY: the stream is live and recording (begin_capture succeeded).
        let graph =
            unsafe { cu::stream::end_capture(self.stream) }.map_err(err("end graph capture"));
        if let Some(tracked) = streams.iter_mut().find(|s| s.stream.0 == self.stream) {
            tracked.recording = false;
        }
        RECORDING.set(false);
        if FREED_WHILE_RECORDING.replace(false) {
            if let Ok(g) = graph {
                destroy_graph(g);
            }
            return Err(MlxError::invalid(
                "end graph capture",
                "memory was freed while recording (a buffer made and dropped inside the \
                 recorded work); the graph would use it after the free. Keep such buffers \
                 outside the closure, or let ops take encoder scratch",
            ));
        }
        graph
    }
}

impl Drop for Recording<'_> {
    fn drop(&mut self) {
        if !self.ended {
            if let Ok(graph) = self.finish() {
                destroy_graph(graph);
            }
        }
    }
}
