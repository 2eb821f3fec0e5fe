//! `GraphExecutor`: work recorded once and replayed with one launch.
//!
//! A decode step launches dozens of small kernels; launched one by one each
//! costs the driver's launch time (about 3 µs on the H200 machine), which is
//! more than many of those kernels run. [`GraphExecutor::capture`] runs a
//! closure on an encoder while the encoder's stream is recording, so the
//! kernels it encodes become a CUDA graph instead of running;
//! [`GraphExecutor::replay`] then queues the whole graph with one call. On
//! the CPU backend the closure itself is kept and replay runs it, so there
//! an error in the closure shows at replay rather than at capture.
//!
//! Rules that follow from recording:
//! - Nothing runs at capture time; the first replay runs the work.
//! - Each replay repeats the same kernels with the same arguments on the
//!   same buffers. Values that change between steps (a position, a length)
//!   belong in a small device buffer the kernels read, written before each
//!   replay.
//! - The closure is `'static`: it owns (clones of) every buffer it uses, and
//!   the executor keeps the closure, so the buffers a graph touches live as
//!   long as the graph.
//! - While capturing, the closure may only queue work: anything that waits
//!   for the GPU (`commit_and_wait`, host `read`/`write` on the capturing
//!   thread) fails the capture with an error, and so does freeing a buffer
//!   (one made and dropped inside the closure), whose memory the graph
//!   would use after the free. Scratch that ops take from the encoder is
//!   allocated and freed in stream order, which a graph records.
//! - Capture needs an encoder of its own
//!   ([`MlxDevice::command_encoder_on_new_stream`]): the device's shared
//!   stream carries host reads and writes, and no other thread may queue
//!   work on the recording stream. Other threads keep working meanwhile:
//!   their host accesses wait for every stream but the recording one, which
//!   holds no work that runs (capture first waits for what it held).

use std::sync::Arc;

use cudarc::driver::sys;

use crate::device::cuda::{self, Handle};
use crate::device::CudaContext;
use crate::{CommandEncoder, MlxDevice, MlxError, Result};

type Record = Box<dyn FnMut(&mut CommandEncoder) -> Result<()> + Send>;

/// Recorded work that replays with one launch (see the module docs).
pub struct GraphExecutor {
    device: MlxDevice,
    /// Owns the buffers the work uses; runs again on each replay on the CPU.
    record: Record,
    cuda: Option<CudaGraph>,
    replays: u64,
}

struct CudaGraph {
    exec: Handle<sys::CUgraphExec>,
    ctx: Arc<CudaContext>,
}

impl Drop for CudaGraph {
    fn drop(&mut self) {
        if self.ctx.bind().is_ok() {
            cuda::destroy_graph_exec(self.exec.0);
        }
    }
}

impl std::fmt::Debug for GraphExecutor {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("GraphExecutor")
            .field("device", &self.device)
            .field("replays", &self.replays)
            .finish()
    }
}

impl GraphExecutor {
    /// Records the work `record` encodes on `enc`. Nothing runs yet.
    ///
    /// Fails, leaving `enc` usable, when `record` fails, when it waits for
    /// the GPU while recording, or when `enc` has per-dispatch timing on
    /// (its events cannot be read back from a replayed graph).
    pub fn capture(
        enc: &mut CommandEncoder,
        mut record: impl FnMut(&mut CommandEncoder) -> Result<()> + Send + 'static,
    ) -> Result<GraphExecutor> {
        const OP: &str = "GraphExecutor::capture";
        if enc.timing_enabled() {
            return Err(MlxError::invalid(
                OP,
                "per-dispatch timing is on; turn it off before capturing",
            ));
        }
        let cuda = match enc.cuda_queue() {
            None => None,
            Some((ctx, stream)) => {
                let ctx = ctx.clone();
                let recording = ctx.begin_capture(stream)?;
                let recorded = record(enc);
                // Its kernels were recorded, not run.
                enc.forget_recent_kernels();
                // End the recording whatever happened, so the stream is usable.
                let graph = match (recorded, recording.end()) {
                    (Ok(()), Ok(graph)) => graph,
                    (Err(e), Ok(graph)) => {
                        cuda::destroy_graph(graph);
                        return Err(e);
                    }
                    (Err(e), Err(_)) => return Err(e),
                    (Ok(()), Err(e)) => {
                        return Err(MlxError::invalid(
                            OP,
                            format!(
                                "the capture was invalidated, for example by waiting for \
                                 the GPU while recording ({e})"
                            ),
                        ))
                    }
                };
                let exec = cuda::instantiate_graph(graph)?;
                Some(CudaGraph {
                    exec: Handle(exec),
                    ctx,
                })
            }
        };
        Ok(GraphExecutor {
            device: enc.device().clone(),
            record: Box::new(record),
            cuda,
            replays: 0,
        })
    }

    /// Queues the recorded work on `enc` (any encoder of the same device).
    pub fn replay(&mut self, enc: &mut CommandEncoder) -> Result<()> {
        if !enc.device().same_device(&self.device) {
            return Err(MlxError::DeviceMismatch {
                op: "GraphExecutor::replay",
                msg: format!(
                    "the graph was recorded on {:?}, the encoder is on {:?}",
                    self.device,
                    enc.device()
                ),
            });
        }
        match (&self.cuda, enc.cuda_queue()) {
            (Some(graph), Some((ctx, stream))) => {
                ctx.bind()?;
                cuda::launch_graph(graph.exec.0, stream)?;
            }
            _ => (self.record)(enc)?,
        }
        self.replays += 1;
        Ok(())
    }

    /// Replays so far.
    pub fn replays(&self) -> u64 {
        self.replays
    }

    pub fn device(&self) -> &MlxDevice {
        &self.device
    }
}
