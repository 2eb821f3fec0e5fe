//! `MlxDevice`: a CPU or a CUDA GPU, chosen at run time.

mod cpu;
pub(crate) mod cuda;

use std::fmt;
use std::sync::{Arc, OnceLock};

use parking_lot::Mutex;

pub use cpu::CpuProperties;
pub(crate) use cuda::CudaContext;
pub use cuda::CudaProperties;

use crate::config::{Config, DeviceChoice};
use crate::encoder::CommandEncoder;
use crate::kernels::KernelRegistry;
use crate::{MlxError, Result};

/// Which backend a device runs on.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
pub enum BackendKind {
    Cpu,
    Cuda,
}

pub(crate) enum Backend {
    Cpu(CpuProperties),
    Cuda(Arc<CudaContext>),
}

pub(crate) struct DeviceInner {
    pub backend: Backend,
    pub registry: KernelRegistry,
}

/// A compute device. Cheap to clone (a reference count); `Send + Sync`.
///
/// Devices are process-wide: `MlxDevice::cuda(0)` returns the same device
/// every time, so buffers made through either handle can be used together.
#[derive(Clone)]
pub struct MlxDevice {
    pub(crate) inner: Arc<DeviceInner>,
}

impl MlxDevice {
    /// The device chosen by `MLXN_DEVICE` (default `auto`): the first CUDA
    /// GPU when a driver and a GPU are present, else the CPU.
    pub fn new() -> Result<MlxDevice> {
        let config = Config::get();
        if let Some(msg) = &config.device_error {
            return Err(MlxError::invalid("MlxDevice::new", msg.clone()));
        }
        match config.device {
            DeviceChoice::Cpu => Ok(MlxDevice::cpu()),
            DeviceChoice::Cuda(i) => MlxDevice::cuda(i),
            DeviceChoice::Auto => Ok(MlxDevice::cuda(0).unwrap_or_else(|e| {
                crate::config::log(|| format!("no CUDA device ({e}); using the CPU"));
                MlxDevice::cpu()
            })),
        }
    }

    /// The host CPU.
    pub fn cpu() -> MlxDevice {
        static CPU: OnceLock<MlxDevice> = OnceLock::new();
        CPU.get_or_init(|| {
            let registry = KernelRegistry::for_target(None);
            // Registering the crate's fixed kernel list into an empty registry
            // cannot fail (names are unique; a test checks it), and the CPU
            // registry only answers which kernels exist.
            let _ = crate::ops::register_builtin_kernels(&registry);
            let inner = DeviceInner {
                backend: Backend::Cpu(CpuProperties::read()),
                registry,
            };
            MlxDevice {
                inner: Arc::new(inner),
            }
        })
        .clone()
    }

    /// CUDA GPU number `ordinal`. Fails with `CudaUnavailable` when there is
    /// no driver, no GPU or no such ordinal.
    pub fn cuda(ordinal: usize) -> Result<MlxDevice> {
        static GPUS: OnceLock<Mutex<Vec<(usize, MlxDevice)>>> = OnceLock::new();
        let mut gpus = GPUS.get_or_init(|| Mutex::new(Vec::new())).lock();
        if let Some((_, d)) = gpus.iter().find(|(i, _)| *i == ordinal) {
            return Ok(d.clone());
        }
        let ctx = CudaContext::open(ordinal)?;
        let registry = KernelRegistry::for_target(Some(ctx.clone()));
        crate::ops::register_builtin_kernels(&registry)?;
        let device = MlxDevice {
            inner: Arc::new(DeviceInner {
                backend: Backend::Cuda(ctx),
                registry,
            }),
        };
        gpus.push((ordinal, device.clone()));
        Ok(device)
    }

    /// Number of CUDA GPUs usable from this process (0 without a driver).
    pub fn cuda_device_count() -> usize {
        CudaContext::device_count()
    }

    pub fn backend(&self) -> BackendKind {
        match self.inner.backend {
            Backend::Cpu(_) => BackendKind::Cpu,
            Backend::Cuda(_) => BackendKind::Cuda,
        }
    }

    pub fn is_cuda(&self) -> bool {
        self.backend() == BackendKind::Cuda
    }

    pub fn name(&self) -> String {
        match &self.inner.backend {
            Backend::Cpu(p) => p.name.clone(),
            Backend::Cuda(c) => c.props.name.clone(),
        }
    }

    /// Device memory in bytes (host RAM for the CPU).
    pub fn total_memory(&self) -> usize {
        match &self.inner.backend {
            Backend::Cpu(p) => p.total_memory,
            Backend::Cuda(c) => c.props.total_memory,
        }
    }

    /// CUDA properties (compute capability, SM count, …); `None` on the CPU.
    pub fn cuda_properties(&self) -> Option<&CudaProperties> {
        match &self.inner.backend {
            Backend::Cpu(_) => None,
            Backend::Cuda(c) => Some(&c.props),
        }
    }

    pub fn cpu_properties(&self) -> Option<&CpuProperties> {
        match &self.inner.backend {
            Backend::Cpu(p) => Some(p),
            Backend::Cuda(_) => None,
        }
    }

    /// The kernel registry of this device.
    pub fn registry(&self) -> &KernelRegistry {
        &self.inner.registry
    }

    /// An encoder on this device's default stream.
    pub fn command_encoder(&self) -> Result<CommandEncoder> {
        CommandEncoder::new(self, false)
    }

    /// An encoder on a stream of its own, for work that may overlap with
    /// the default stream; order it with events.
    pub fn command_encoder_on_new_stream(&self) -> Result<CommandEncoder> {
        CommandEncoder::new(self, true)
    }

    /// Waits until all work queued on the device has finished.
    pub fn synchronize(&self) -> Result<()> {
        match &self.inner.backend {
            Backend::Cpu(_) => Ok(()),
            Backend::Cuda(c) => c.synchronize(),
        }
    }

    pub fn same_device(&self, other: &MlxDevice) -> bool {
        Arc::ptr_eq(&self.inner, &other.inner)
    }

    pub(crate) fn cuda_context(&self) -> Option<&Arc<CudaContext>> {
        match &self.inner.backend {
            Backend::Cpu(_) => None,
            Backend::Cuda(c) => Some(c),
        }
    }
}

impl fmt::Debug for MlxDevice {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.inner.backend {
            Backend::Cpu(p) => write!(f, "MlxDevice(cpu: {})", p.name),
            Backend::Cuda(c) => write!(f, "MlxDevice(cuda:{}: {})", c.props.ordinal, c.props.name),
        }
    }
}
