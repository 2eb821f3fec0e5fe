//! `CommandEncoder`: records work on one stream of a device.
//!
//! On CUDA each dispatch is enqueued on the encoder's stream when it is
//! encoded; work on one encoder runs in order. `commit()` marks the end of a
//! batch and returns at once (the work is already queued), `commit_and_wait()`
//! blocks until the stream is idle. Encoders on different streams are
//! ordered with [`MlxEvent`]s. On the CPU every op runs when it is encoded,
//! so commits and events complete at once.

use std::borrow::Cow;
use std::ffi::c_void;
use std::marker::PhantomData;
use std::sync::Arc;
use std::time::Instant;

use cudarc::driver::sys;

use crate::buffer::{element_count_of, MlxBuffer, Storage};
use crate::device::cuda::{self, Handle};
use crate::device::{BackendKind, CudaContext};
use crate::kernels::Pipeline;
use crate::{DType, MlxDevice, MlxError, Result};

mod early_start;
use early_start::{Footprint, RecentKernels};

/// The oldest driver (CUDA 12.3) early starts are used with, recorded into
/// graphs included.
const EARLY_START_DRIVER: i32 = 12030;

/// Most parameters a kernel launch may take.
pub const MAX_KERNEL_ARGS: usize = 32;

/// One kernel parameter.
#[derive(Clone, Copy)]
pub enum KernelArg<'a> {
    /// A device buffer, bound at its view's byte offset (a pointer parameter).
    Buffer(&'a MlxBuffer),
    /// A device buffer, like `Buffer`, that the kernel may read before it
    /// calls `wait_previous_kernel()` (see the kernel prelude) and read or
    /// write after. The encoder may then start the kernel while the
    /// previous kernel on its stream still runs (see
    /// [`EncoderStats::early_launches`]), so the loads of such a buffer
    /// overlap that kernel's tail. The kernel's contract: every thread calls
    /// `wait_previous_kernel()` before it touches any memory other than its
    /// `ReadEarly` buffers, and `release_next_kernel()`, if at all, only
    /// after that wait. A kernel that breaks it races with its predecessor.
    ReadEarly(&'a MlxBuffer),
    /// A value passed by value: a scalar or a `#[repr(C)]` POD struct whose
    /// layout matches the kernel's parameter type. It must not hold a device
    /// address the kernel writes through: the encoder knows what a kernel
    /// writes by its buffer arguments.
    Bytes(&'a [u8]),
}

impl<'a> KernelArg<'a> {
    /// A POD value passed by value.
    pub fn pod<T: bytemuck::Pod>(value: &'a T) -> KernelArg<'a> {
        KernelArg::Bytes(bytemuck::bytes_of(value))
    }

    /// A buffer, or a null device pointer where an optional one is absent.
    pub fn optional(buffer: Option<&'a MlxBuffer>) -> KernelArg<'a> {
        const NULL: u64 = 0;
        buffer.map_or(KernelArg::pod(&NULL), KernelArg::Buffer)
    }
}

/// Grid, block and dynamic shared memory of one launch.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LaunchConfig {
    pub grid: (u32, u32, u32),
    pub block: (u32, u32, u32),
    pub shared_mem_bytes: u32,
}

impl LaunchConfig {
    /// A 1-D launch of `blocks` blocks of `threads` threads.
    pub fn linear(blocks: u32, threads: u32) -> LaunchConfig {
        LaunchConfig {
            grid: (blocks, 1, 1),
            block: (threads, 1, 1),
            shared_mem_bytes: 0,
        }
    }
}

/// Counters of one encoder.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, serde::Serialize)]
pub struct EncoderStats {
    pub dispatches: u64,
    pub commits: u64,
    pub syncs: u64,
    /// Kernels launched so that they may start before the previous kernel on
    /// the stream has finished (programmatic dependent launch), counted at
    /// launch (for a graph, once, at capture). A kernel with a
    /// [`KernelArg::ReadEarly`] buffer is launched so when the encoder has a
    /// stream of its own, the GPU has compute capability 9.0 or newer and a
    /// CUDA 12.3 or newer driver, per-dispatch timing is off, only this
    /// encoder's kernels were queued on the stream since the last two it
    /// launched, and no `ReadEarly` buffer overlaps a buffer of the last
    /// kernel, or of the one before it when the last one was itself
    /// launched early.
    pub early_launches: u64,
}

/// GPU (or, on the CPU, wall) time of one dispatch.
#[derive(Debug, Clone, serde::Serialize)]
pub struct DispatchTiming {
    pub label: String,
    pub ms: f64,
}

/// A point in an encoder's work that another encoder or the host can wait for.
#[derive(Clone)]
pub struct MlxEvent {
    cuda: Option<Arc<CudaEvent>>,
}

struct CudaEvent {
    event: Handle<sys::CUevent>,
    ctx: Arc<CudaContext>,
}

impl Drop for CudaEvent {
    fn drop(&mut self) {
        self.ctx.destroy_event(self.event.0);
    }
}

impl std::fmt::Debug for MlxEvent {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(if self.cuda.is_some() {
            "MlxEvent(cuda)"
        } else {
            "MlxEvent(cpu)"
        })
    }
}

impl MlxEvent {
    /// Blocks the calling thread until the work before the event is done.
    pub fn wait(&self) -> Result<()> {
        match &self.cuda {
            None => Ok(()),
            Some(e) => {
                e.ctx.bind()?;
                cuda::event_sync(e.event.0)
            }
        }
    }
}

/// A point in an encoder's stream with a timestamp, for measuring GPU time
/// between two points (host time on the CPU).
pub struct Timestamp {
    cuda: Option<CudaEvent>,
    host: Instant,
}

impl Timestamp {
    /// Milliseconds from `self` to `later`; waits for `later` to complete.
    pub fn elapsed_ms(&self, later: &Timestamp) -> Result<f64> {
        match (&self.cuda, &later.cuda) {
            (Some(a), Some(b)) => {
                b.ctx.bind()?;
                cuda::event_sync(b.event.0)?;
                Ok(cuda::elapsed_ms(a.event.0, b.event.0)? as f64)
            }
            _ => Ok(later.host.duration_since(self.host).as_secs_f64() * 1e3),
        }
    }
}

enum Queue {
    Cpu,
    Cuda {
        ctx: Arc<CudaContext>,
        stream: Handle<sys::CUstream>,
        owned: bool,
    },
}

struct PendingTiming {
    label: Cow<'static, str>,
    start: Handle<sys::CUevent>,
    end: Handle<sys::CUevent>,
}

pub struct CommandEncoder {
    device: MlxDevice,
    queue: Queue,
    label: Option<Cow<'static, str>>,
    stats: EncoderStats,
    timing_enabled: bool,
    pending: Vec<PendingTiming>,
    spare_events: Vec<Handle<sys::CUevent>>,
    finished: Vec<DispatchTiming>,
    /// The last kernels queued on the stream, for starting one early.
    recent: RecentKernels,
}

impl CommandEncoder {
    pub(crate) fn new(device: &MlxDevice, own_stream: bool) -> Result<CommandEncoder> {
        let queue = match device.cuda_context() {
            None => Queue::Cpu,
            Some(ctx) => {
                let stream = if own_stream {
                    ctx.new_stream()?
                } else {
                    Handle(ctx.default_stream())
                };
                Queue::Cuda {
                    ctx: ctx.clone(),
                    stream,
                    owned: own_stream,
                }
            }
        };
        Ok(CommandEncoder {
            device: device.clone(),
            queue,
            label: None,
            stats: EncoderStats::default(),
            timing_enabled: false,
            pending: Vec::new(),
            spare_events: Vec::new(),
            finished: Vec::new(),
            recent: RecentKernels::new(),
        })
    }

    pub fn device(&self) -> &MlxDevice {
        &self.device
    }

    /// A scratch buffer for work this encoder queues, for an op's own use:
    /// on CUDA allocated and freed in the stream's order (neither waits for
    /// the GPU, and both may be recorded into a graph), so it must only be
    /// used by work on this encoder and dropped before the encoder; on the
    /// CPU plain memory. Its contents are unspecified.
    pub(crate) fn scratch(&self, dtype: DType, shape: &[usize]) -> Result<MlxBuffer> {
        let n = element_count_of("scratch", dtype, shape)?;
        let storage = match &self.queue {
            Queue::Cpu => Storage::new(&self.device, n * dtype.size_of(), false)?,
            Queue::Cuda { ctx, stream, .. } => {
                let unseen = self.recent.unseen_work().clone();
                Storage::scratch(ctx, &self.device, n * dtype.size_of(), *stream, unseen)?
            }
        };
        Ok(MlxBuffer::on_storage(storage, dtype, shape))
    }

    /// The context and stream of a CUDA encoder (`None` on the CPU). The
    /// caller queues work there that the encoder does not see (before the
    /// encoder's next dispatch), so the encoder forgets its recent kernels.
    pub(crate) fn cuda_queue(&mut self) -> Option<(&Arc<CudaContext>, sys::CUstream)> {
        self.forget_recent_kernels();
        match &self.queue {
            Queue::Cpu => None,
            Queue::Cuda { ctx, stream, .. } => Some((ctx, stream.0)),
        }
    }

    /// Makes the next kernel wait for all earlier work on the stream: for
    /// work queued that the encoder's record of its recent kernels does not
    /// show, or kernels recorded into a graph rather than run.
    pub(crate) fn forget_recent_kernels(&mut self) {
        self.recent.forget();
    }

    pub(crate) fn timing_enabled(&self) -> bool {
        self.timing_enabled
    }

    pub fn backend(&self) -> BackendKind {
        self.device.backend()
    }

    pub fn stats(&self) -> EncoderStats {
        self.stats
    }

    /// Names the following dispatches (in timings and errors) until changed.
    pub fn set_label(&mut self, label: impl Into<Cow<'static, str>>) {
        self.label = Some(label.into());
    }

    /// Records GPU time per dispatch with CUDA events (host time on the CPU).
    /// Read them with [`CommandEncoder::take_timings`] after `commit_and_wait`.
    pub fn enable_timing(&mut self, on: bool) {
        self.timing_enabled = on;
    }

    /// Timings of the dispatches since the last call. Waits for them.
    pub fn take_timings(&mut self) -> Result<Vec<DispatchTiming>> {
        for p in std::mem::take(&mut self.pending) {
            cuda::event_sync(p.end.0)?;
            let ms = cuda::elapsed_ms(p.start.0, p.end.0)? as f64;
            self.finished.push(DispatchTiming {
                label: p.label.into_owned(),
                ms,
            });
            self.spare_events.extend([p.start, p.end]);
        }
        Ok(std::mem::take(&mut self.finished))
    }

    /// Runs an op: `cpu` eagerly on the CPU backend, `cuda` (which
    /// dispatches kernels on this encoder) on the CUDA backend. This is the
    /// one place ops branch on the backend.
    pub(crate) fn encode_op(
        &mut self,
        label: &'static str,
        cpu: impl FnOnce() -> Result<()>,
        cuda: impl FnOnce(&mut CommandEncoder) -> Result<()>,
    ) -> Result<()> {
        let previous = self.label.replace(Cow::Borrowed(label));
        let result = match self.queue {
            Queue::Cpu => {
                let t = Instant::now();
                let r = cpu();
                self.stats.dispatches += 1;
                if self.timing_enabled {
                    let ms = t.elapsed().as_secs_f64() * 1e3;
                    self.finished.push(DispatchTiming {
                        label: label.to_string(),
                        ms,
                    });
                }
                r
            }
            Queue::Cuda { .. } => cuda(self),
        };
        self.label = previous;
        result
    }

    /// Launches the kernel `name` from the device's registry.
    pub fn dispatch_kernel(
        &mut self,
        name: &str,
        config: LaunchConfig,
        args: &[KernelArg],
    ) -> Result<()> {
        let pipeline = self.device.registry().get_pipeline(name)?;
        self.dispatch(&pipeline, config, args)
    }

    /// Launches `pipeline` with `args` in the order of the kernel's parameters.
    pub fn dispatch(
        &mut self,
        pipeline: &Pipeline,
        config: LaunchConfig,
        args: &[KernelArg],
    ) -> Result<()> {
        let Queue::Cuda { ctx, stream, owned } = &self.queue else {
            return Err(MlxError::unsupported(
                "dispatch",
                "the CPU device runs no CUDA kernels",
            ));
        };
        let name = pipeline.name();
        if !Arc::ptr_eq(ctx, pipeline.context()) {
            return Err(MlxError::DeviceMismatch {
                op: "dispatch",
                msg: format!("kernel '{name}' was loaded for another device"),
            });
        }
        check_launch(pipeline, &config, args)?;
        pipeline.ensure_dynamic_shared(config.shared_mem_bytes)?;
        let mut marshalled = Marshalled::new(name, &self.device, args)?;
        let footprint = marshalled.footprint;
        let early = footprint.reads_early()
            && *owned
            && ctx.props.compute_capability.0 >= 9
            && ctx.props.driver_version >= EARLY_START_DRIVER
            && !self.timing_enabled
            && self.recent.allow_early(&footprint);
        let mut params = marshalled.params(args);
        ctx.bind()?;
        let timing = if self.timing_enabled {
            Some(timing_events(&mut self.spare_events, ctx)?)
        } else {
            None
        };
        if let Some((start, _)) = &timing {
            cuda::record(start.0, stream.0)?;
        }
        let launched = cuda::launch(
            pipeline.function(),
            config.grid,
            config.block,
            config.shared_mem_bytes,
            stream.0,
            params.as_mut(args.len()),
            early,
        );
        self.recent.record(launched.is_ok(), footprint, early);
        launched.map_err(|e| MlxError::cuda("dispatch", format!("kernel '{name}': {e}")))?;
        self.stats.early_launches += early as u64;
        if let Some((start, end)) = timing {
            cuda::record(end.0, stream.0)?;
            self.recent.forget();
            let label = self
                .label
                .clone()
                .unwrap_or_else(|| Cow::Owned(name.to_string()));
            self.pending.push(PendingTiming { label, start, end });
        }
        self.stats.dispatches += 1;
        Ok(())
    }

    /// The driver's launch plus argument marshalling, with none of
    /// `dispatch`'s launch checks, counters or timing: the floor that
    /// `mlxn bench launch` compares `dispatch` with. The launch shape is
    /// not validated.
    #[doc(hidden)]
    pub fn dispatch_raw_for_benchmark(
        &mut self,
        pipeline: &Pipeline,
        config: LaunchConfig,
        args: &[KernelArg],
    ) -> Result<()> {
        let Queue::Cuda { stream, .. } = &self.queue else {
            return Err(MlxError::unsupported(
                "dispatch",
                "the CPU device runs no CUDA kernels",
            ));
        };
        let mut marshalled = Marshalled::new(pipeline.name(), &self.device, args)?;
        let footprint = marshalled.footprint;
        let mut params = marshalled.params(args);
        let launched = cuda::launch(
            pipeline.function(),
            config.grid,
            config.block,
            config.shared_mem_bytes,
            stream.0,
            params.as_mut(args.len()),
            false,
        );
        self.recent.record(launched.is_ok(), footprint, false);
        launched
    }

    /// Copies `src` to `dst` (same byte length, same device) in stream order.
    pub fn copy_buffer(&mut self, src: &MlxBuffer, dst: &MlxBuffer) -> Result<()> {
        let op = "copy_buffer";
        if !src.device().same_device(dst.device()) || !src.device().same_device(&self.device) {
            return Err(MlxError::DeviceMismatch {
                op,
                msg: format!("{src:?} -> {dst:?}"),
            });
        }
        if src.byte_len() != dst.byte_len() {
            return Err(MlxError::shape(
                op,
                format!(
                    "source has {} bytes, destination {}",
                    src.byte_len(),
                    dst.byte_len()
                ),
            ));
        }
        if src.overlaps(dst) && src.byte_offset() != dst.byte_offset() {
            return Err(MlxError::invalid(op, "source and destination overlap"));
        }
        let (s, d) = (src.clone(), dst.clone());
        self.encode_op(
            op,
            || d.cpu_copy_from(&s),
            |enc| {
                enc.forget_recent_kernels();
                let Queue::Cuda { ctx, stream, .. } = &enc.queue else {
                    return Ok(());
                };
                let (sp, dp) = (s.device_ptr().unwrap_or(0), d.device_ptr().unwrap_or(0));
                ctx.bind()?;
                ctx.copy_async(dp, sp, s.byte_len(), stream.0)?;
                enc.stats.dispatches += 1;
                Ok(())
            },
        )
    }

    /// Kept for the original system's vocabulary: work on one stream is
    /// already ordered, so this is a no-op on both backends.
    pub fn memory_barrier(&mut self) {}

    /// Ends a batch of work. The work was queued as it was encoded; this
    /// returns at once.
    pub fn commit(&mut self) {
        self.stats.commits += 1;
    }

    /// Ends a batch and waits until everything encoded so far has run.
    pub fn commit_and_wait(&mut self) -> Result<()> {
        self.stats.commits += 1;
        self.wait()
    }

    /// Waits until everything encoded so far has run.
    pub fn wait(&mut self) -> Result<()> {
        self.stats.syncs += 1;
        match &self.queue {
            Queue::Cpu => Ok(()),
            Queue::Cuda { ctx, stream, .. } => {
                ctx.bind()?;
                cuda::stream_sync(stream.0)
            }
        }
    }

    /// An event that completes when the work encoded so far has run.
    pub fn signal_event(&mut self) -> Result<MlxEvent> {
        self.forget_recent_kernels();
        match &self.queue {
            Queue::Cpu => Ok(MlxEvent { cuda: None }),
            Queue::Cuda { ctx, stream, .. } => {
                let event = ctx.new_event(false)?;
                let event = Arc::new(CudaEvent {
                    event,
                    ctx: ctx.clone(),
                });
                cuda::record(event.event.0, stream.0)?;
                Ok(MlxEvent { cuda: Some(event) })
            }
        }
    }

    /// Records a timestamp at this point of the encoder's work.
    pub fn timestamp(&mut self) -> Result<Timestamp> {
        self.forget_recent_kernels();
        let cuda = match &self.queue {
            Queue::Cpu => None,
            Queue::Cuda { ctx, stream, .. } => {
                let event = CudaEvent {
                    event: ctx.new_event(true)?,
                    ctx: ctx.clone(),
                };
                cuda::record(event.event.0, stream.0)?;
                Some(event)
            }
        };
        Ok(Timestamp {
            cuda,
            host: Instant::now(),
        })
    }

    /// Makes the work encoded after this call wait for `event`.
    pub fn wait_event(&mut self, event: &MlxEvent) -> Result<()> {
        // The event's work may have written what a kernel reads early.
        self.forget_recent_kernels();
        match (&self.queue, &event.cuda) {
            (_, None) => Ok(()),
            (Queue::Cuda { ctx, stream, .. }, Some(e)) if Arc::ptr_eq(ctx, &e.ctx) => {
                ctx.bind()?;
                cuda::stream_wait(stream.0, e.event.0)
            }
            _ => Err(MlxError::DeviceMismatch {
                op: "wait_event",
                msg: "the event belongs to another device".into(),
            }),
        }
    }
}

/// A launch's arguments as the driver takes them: each buffer's device
/// address, and the address ranges the buffers cover.
struct Marshalled {
    addresses: [u64; MAX_KERNEL_ARGS],
    footprint: Footprint,
}

impl Marshalled {
    /// Checks the argument count and that every buffer is on `device`.
    fn new(name: &str, device: &MlxDevice, args: &[KernelArg]) -> Result<Marshalled> {
        if args.len() > MAX_KERNEL_ARGS {
            return Err(MlxError::invalid(
                "dispatch",
                format!(
                    "kernel '{name}': {} arguments, at most {MAX_KERNEL_ARGS}",
                    args.len()
                ),
            ));
        }
        let mut m = Marshalled {
            addresses: [0; MAX_KERNEL_ARGS],
            footprint: Footprint::EMPTY,
        };
        for (i, arg) in args.iter().enumerate() {
            let (KernelArg::Buffer(b) | KernelArg::ReadEarly(b)) = *arg else {
                continue;
            };
            let address = b
                .device_ptr()
                .filter(|_| b.device().same_device(device))
                .ok_or_else(|| MlxError::DeviceMismatch {
                    op: "dispatch",
                    msg: format!(
                        "kernel '{name}' argument {i} is a buffer on {:?}",
                        b.device()
                    ),
                })?;
            m.addresses[i] = address;
            let early = matches!(arg, KernelArg::ReadEarly(_));
            m.footprint.push(address, b.byte_len(), early);
        }
        Ok(m)
    }

    /// Points entry i at argument i's value, as `cuLaunchKernel` wants: a
    /// buffer's address held here, or a by-value POD. The pointers borrow
    /// `self` and `args`.
    fn params<'m>(&'m mut self, args: &'m [KernelArg]) -> Params<'m> {
        let mut pointers = [std::ptr::null_mut::<c_void>(); MAX_KERNEL_ARGS];
        for (i, arg) in args.iter().enumerate() {
            pointers[i] = match arg {
                KernelArg::Buffer(_) | KernelArg::ReadEarly(_) => {
                    (&mut self.addresses[i]) as *mut u64 as *mut c_void
                }
                KernelArg::Bytes(bytes) => bytes.as_ptr() as *mut c_void,
            };
        }
        Params {
            pointers,
            _borrows: PhantomData,
        }
    }
}

/// Kernel parameter pointers into a [`Marshalled`] and its arguments, which
/// stay borrowed while these live.
struct Params<'m> {
    pointers: [*mut c_void; MAX_KERNEL_ARGS],
    _borrows: PhantomData<&'m mut Marshalled>,
}

impl Params<'_> {
    fn as_mut(&mut self, count: usize) -> &mut [*mut c_void] {
        &mut self.pointers[..count]
    }
}

fn timing_events(
    spare: &mut Vec<Handle<sys::CUevent>>,
    ctx: &CudaContext,
) -> Result<(Handle<sys::CUevent>, Handle<sys::CUevent>)> {
    let mut next = || match spare.pop() {
        Some(e) => Ok(e),
        None => ctx.new_event(true),
    };
    Ok((next()?, next()?))
}

fn check_launch(pipeline: &Pipeline, c: &LaunchConfig, args: &[KernelArg]) -> Result<()> {
    let name = pipeline.name();
    let (g, b) = (c.grid, c.block);
    let threads = b.0 as u64 * b.1 as u64 * b.2 as u64;
    let bad = |msg: String| {
        Err(MlxError::invalid(
            "dispatch",
            format!("kernel '{name}': {msg}"),
        ))
    };
    if [g.0, g.1, g.2, b.0, b.1, b.2].contains(&0) {
        return bad(format!("empty launch: grid {g:?}, block {b:?}"));
    }
    if threads > pipeline.max_threads_per_block() as u64 {
        return bad(format!(
            "block {b:?} has {threads} threads, the kernel allows {}",
            pipeline.max_threads_per_block()
        ));
    }
    if g.0 > i32::MAX as u32 || g.1 > 65535 || g.2 > 65535 {
        return bad(format!("grid {g:?} exceeds (2^31-1, 65535, 65535)"));
    }
    // The arguments against the kernel's parameters, where the driver tells
    // their sizes: a list that does not match would launch on garbage.
    let Some(sizes) = pipeline.param_sizes() else {
        return Ok(());
    };
    if sizes.len() != args.len() {
        return bad(format!(
            "{} arguments given, the kernel takes {}",
            args.len(),
            sizes.len()
        ));
    }
    for (i, (arg, &size)) in args.iter().zip(sizes).enumerate() {
        let given = match arg {
            KernelArg::Buffer(_) | KernelArg::ReadEarly(_) => 8,
            KernelArg::Bytes(b) => b.len(),
        };
        if given != size {
            return bad(format!(
                "argument {i} is {given} bytes, the kernel's parameter {size}"
            ));
        }
    }
    Ok(())
}

impl Drop for CommandEncoder {
    fn drop(&mut self) {
        if let Queue::Cuda { ctx, stream, owned } = &self.queue {
            for e in self
                .spare_events
                .drain(..)
                .chain(self.pending.drain(..).flat_map(|p| [p.start, p.end]))
            {
                ctx.destroy_event(e.0);
            }
            if *owned {
                ctx.destroy_stream(stream.0);
            }
        }
    }
}
