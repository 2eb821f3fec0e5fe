//! A loaded module and a kernel function in it.

use std::ffi::CString;
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::Arc;

use cudarc::driver::result as cu;
use cudarc::driver::sys::{self, CUfunction_attribute as Attr};
use parking_lot::Mutex;

use crate::device::cuda::{err, Handle};
use crate::device::CudaContext;
use crate::{MlxError, Result};

pub(crate) struct LoadedModule {
    module: Handle<sys::CUmodule>,
    ctx: Arc<CudaContext>,
}

impl LoadedModule {
    /// Loads a cubin or a NUL-terminated PTX image.
    pub fn load(ctx: Arc<CudaContext>, image: &[u8]) -> Result<LoadedModule> {
        ctx.bind()?;
        // SAFETY: `image` is a complete cubin or NUL-terminated PTX that
        // outlives the call; the driver copies it.
        let module =
            unsafe { cu::module::load_data(image.as_ptr().cast()) }.map_err(err("load module"))?;
        Ok(LoadedModule {
            module: Handle(module),
            ctx,
        })
    }
}

impl Drop for LoadedModule {
    fn drop(&mut self) {
        if self.ctx.bind().is_ok() {
            // SAFETY: no pipeline of this module is alive (they hold an Arc to it).
            let _ = unsafe { cu::module::unload(self.module.0) };
        }
    }
}

/// A compiled kernel, ready to launch.
pub struct Pipeline {
    name: String,
    function: Handle<sys::CUfunction>,
    max_threads_per_block: u32,
    static_shared_bytes: u32,
    registers: u32,
    /// Byte sizes of the kernel's parameters, in order; None where the
    /// driver cannot tell (before CUDA 12.4).
    param_sizes: Option<Vec<usize>>,
    /// The dynamic shared memory this function is currently allowed; it
    /// only grows, and only under `raise_shared_limit`, so that a thread
    /// raising it less cannot overwrite the attribute another thread has
    /// just raised further (that launch would then fail).
    dynamic_shared_limit: AtomicU32,
    raise_shared_limit: Mutex<()>,
    ctx: Arc<CudaContext>,
    _module: Arc<LoadedModule>,
}

impl Pipeline {
    pub(crate) fn new(
        ctx: Arc<CudaContext>,
        module: Arc<LoadedModule>,
        name: &str,
    ) -> Result<Pipeline> {
        ctx.bind()?;
        let cname = CString::new(name)
            .map_err(|_| MlxError::invalid("get_pipeline", "kernel name contains NUL"))?;
        // SAFETY: the module is loaded; a missing name is an error result.
        let f = unsafe { cu::module::get_function(module.module.0, cname) }.map_err(|e| {
            MlxError::cuda(
                "get_pipeline",
                format!("kernel '{name}' is not in its compiled module: {e}"),
            )
        })?;
        let attr = |a: Attr| -> Result<u32> {
            // SAFETY: `f` is a valid function handle.
            unsafe { cu::function::get_function_attribute(f, a) }
                .map(|v| v.max(0) as u32)
                .map_err(err("function attribute"))
        };
        let static_shared_bytes = attr(Attr::CU_FUNC_ATTRIBUTE_SHARED_SIZE_BYTES)?;
        Ok(Pipeline {
            name: name.to_string(),
            function: Handle(f),
            max_threads_per_block: attr(Attr::CU_FUNC_ATTRIBUTE_MAX_THREADS_PER_BLOCK)?,
            static_shared_bytes,
            registers: attr(Attr::CU_FUNC_ATTRIBUTE_NUM_REGS)?,
            param_sizes: param_sizes(&ctx, f)?,
            dynamic_shared_limit: AtomicU32::new(attr(
                Attr::CU_FUNC_ATTRIBUTE_MAX_DYNAMIC_SHARED_SIZE_BYTES,
            )?),
            raise_shared_limit: Mutex::new(()),
            ctx,
            _module: module,
        })
    }

    pub fn name(&self) -> &str {
        &self.name
    }

    pub fn max_threads_per_block(&self) -> u32 {
        self.max_threads_per_block
    }

    pub fn static_shared_bytes(&self) -> u32 {
        self.static_shared_bytes
    }

    pub fn registers(&self) -> u32 {
        self.registers
    }

    /// Byte sizes of the kernel's parameters, where the driver can tell.
    pub fn param_sizes(&self) -> Option<&[usize]> {
        self.param_sizes.as_deref()
    }

    pub(crate) fn function(&self) -> sys::CUfunction {
        self.function.0
    }

    pub(crate) fn context(&self) -> &Arc<CudaContext> {
        &self.ctx
    }

    /// Allows `bytes` of dynamic shared memory, raising the function's
    /// limit when needed; errors past what the device allows a block.
    pub(crate) fn ensure_dynamic_shared(&self, bytes: u32) -> Result<()> {
        if bytes <= self.dynamic_shared_limit.load(Ordering::Acquire) {
            return Ok(());
        }
        let _raising = self.raise_shared_limit.lock();
        if bytes <= self.dynamic_shared_limit.load(Ordering::Acquire) {
            return Ok(());
        }
        let max = self
            .ctx
            .props
            .max_shared_memory_per_block_optin
            .saturating_sub(self.static_shared_bytes);
        if bytes > max {
            return Err(MlxError::invalid(
                "dispatch",
                format!(
                    "kernel '{}' asks for {bytes} bytes of dynamic shared memory; the device allows {max} (opt-in {} minus {} static)",
                    self.name, self.ctx.props.max_shared_memory_per_block_optin, self.static_shared_bytes
                ),
            ));
        }
        // SAFETY: `bytes` is within the device's opt-in limit.
        unsafe {
            cu::function::set_function_attribute(
                self.function.0,
                Attr::CU_FUNC_ATTRIBUTE_MAX_DYNAMIC_SHARED_SIZE_BYTES,
                bytes as i32,
            )
        }
        .map_err(err("set shared memory limit"))?;
        self.dynamic_shared_limit.store(bytes, Ordering::Release);
        Ok(())
    }
}

impl std::fmt::Debug for Pipeline {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "Pipeline({}, {} regs, {} B static smem)",
            self.name, self.registers, self.static_shared_bytes
        )
    }
}

/// The byte size of each parameter of `f`, asked of the driver one index
/// at a time until it answers that there is no such parameter.
fn param_sizes(ctx: &CudaContext, f: sys::CUfunction) -> Result<Option<Vec<usize>>> {
    if ctx.props.driver_version < 12040 {
        return Ok(None); // cuFuncGetParamInfo is missing from older drivers
    }
    let mut sizes = Vec::new();
    loop {
        let (mut offset, mut size) = (0usize, 0usize);
        // SAFETY: `f` is a valid function handle; writes two integers.
        let r = unsafe { sys::cuFuncGetParamInfo(f, sizes.len(), &mut offset, &mut size) };
        if r == sys::CUresult::CUDA_ERROR_INVALID_VALUE {
            return Ok(Some(sizes));
        }
        r.result().map_err(err("parameter info"))?;
        sizes.push(size);
    }
}
