//! `KernelRegistry`: named CUDA C sources, compiled by NVRTC for the exact
//! GPU on first use, cached in memory and on disk.
//!
//! Sources include the crate's prelude (`#include "mlxn_prelude.cuh"`) and
//! any header registered with [`KernelRegistry::register_header`], so no CUDA
//! toolkit header is needed at run time. The disk cache key hashes the
//! source, every header, the compile options, the target architecture and
//! the NVRTC version; a stale or unreadable cache file is recompiled.

mod disk_cache;
pub(crate) mod nvrtc;
mod pipeline;

use std::borrow::Cow;
use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Instant;

use parking_lot::{Mutex, RwLock};

use pipeline::LoadedModule;
pub use pipeline::Pipeline;

use crate::config::{self, Config};
use crate::device::CudaContext;
use crate::{MlxDevice, MlxError, Result};

/// The prelude every kernel source may include.
pub const PRELUDE_NAME: &str = "mlxn_prelude.cuh";
const PRELUDE: &str = include_str!("prelude.cuh");

struct ModuleSource {
    name: String,
    source: Cow<'static, str>,
    kernels: Vec<String>,
}

#[derive(Default)]
struct Sources {
    modules: Vec<ModuleSource>,
    kernel_module: HashMap<String, usize>,
    headers: Vec<(String, String)>,
}

/// Counters of a registry.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, serde::Serialize)]
pub struct RegistryStats {
    /// Modules compiled by NVRTC.
    pub compiles: u64,
    /// Modules loaded from the disk cache.
    pub disk_hits: u64,
    /// `get_pipeline` calls answered from memory.
    pub memory_hits: u64,
}

struct Inner {
    target: Option<Arc<CudaContext>>,
    cache_dir: Option<PathBuf>,
    sources: RwLock<Sources>,
    pipelines: RwLock<HashMap<String, Arc<Pipeline>>>,
    loaded: Mutex<HashMap<usize, Arc<LoadedModule>>>,
    compiles: AtomicU64,
    disk_hits: AtomicU64,
    memory_hits: AtomicU64,
}

/// Named kernel sources of one device and their compiled pipelines.
/// Cheap to clone; thread-safe.
#[derive(Clone)]
pub struct KernelRegistry {
    inner: Arc<Inner>,
}

impl KernelRegistry {
    pub(crate) fn for_target(target: Option<Arc<CudaContext>>) -> KernelRegistry {
        let cache_dir = Config::get()
            .kernel_cache_dir
            .as_ref()
            .map(|d| d.join("kernels"));
        KernelRegistry::with_cache(target, cache_dir)
    }

    fn with_cache(target: Option<Arc<CudaContext>>, cache_dir: Option<PathBuf>) -> KernelRegistry {
        let sources = Sources {
            headers: vec![(PRELUDE_NAME.to_string(), PRELUDE.to_string())],
            ..Sources::default()
        };
        KernelRegistry {
            inner: Arc::new(Inner {
                target,
                cache_dir,
                sources: RwLock::new(sources),
                pipelines: RwLock::new(HashMap::new()),
                loaded: Mutex::new(HashMap::new()),
                compiles: AtomicU64::new(0),
                disk_hits: AtomicU64::new(0),
                memory_hits: AtomicU64::new(0),
            }),
        }
    }

    /// A registry of its own for `device`, with the crate's kernels
    /// registered and its disk cache in `cache_dir` (`None`: no disk cache).
    /// Used to measure cold compiles; ops use the device's own registry.
    pub fn new(device: &MlxDevice, cache_dir: Option<PathBuf>) -> Result<KernelRegistry> {
        let r = KernelRegistry::with_cache(device.cuda_context().cloned(), cache_dir);
        crate::ops::register_builtin_kernels(&r)?;
        Ok(r)
    }

    /// Registers a source that defines one kernel, `extern "C" __global__ void name(...)`.
    pub fn register_source(&self, name: &str, source: impl Into<Cow<'static, str>>) -> Result<()> {
        self.register_module(name, source, &[name])
    }

    /// Registers a source defining several kernels (`extern "C"` entry
    /// points named in `kernels`), compiled together as one module.
    /// Registering a name again with the same source is a no-op; with a
    /// different source it is an error.
    pub fn register_module(
        &self,
        module: &str,
        source: impl Into<Cow<'static, str>>,
        kernels: &[&str],
    ) -> Result<()> {
        let source = source.into();
        if kernels.is_empty() {
            return Err(MlxError::invalid(
                "register_module",
                format!("module '{module}' names no kernels"),
            ));
        }
        let mut s = self.inner.sources.write();
        for k in kernels {
            if let Some(&i) = s.kernel_module.get(*k) {
                if s.modules[i].source != source {
                    return Err(MlxError::invalid(
                        "register_module",
                        format!(
                            "kernel '{k}' is already registered by module '{}' with another source",
                            s.modules[i].name
                        ),
                    ));
                }
            }
        }
        let index = match s.modules.iter().position(|m| m.source == source) {
            Some(i) => i,
            None => {
                s.modules.push(ModuleSource {
                    name: module.to_string(),
                    source,
                    kernels: Vec::new(),
                });
                s.modules.len() - 1
            }
        };
        for k in kernels {
            if !s.modules[index].kernels.iter().any(|x| x == k) {
                s.modules[index].kernels.push((*k).to_string());
            }
            s.kernel_module.insert((*k).to_string(), index);
        }
        Ok(())
    }

    /// Registers a header that sources can `#include "name"`.
    pub fn register_header(&self, name: &str, source: &str) -> Result<()> {
        let mut s = self.inner.sources.write();
        match s.headers.iter().position(|(n, _)| n == name) {
            Some(i) if s.headers[i].1 == source => Ok(()),
            Some(_) => Err(MlxError::invalid(
                "register_header",
                format!("header '{name}' is already registered with other text"),
            )),
            None => {
                s.headers.push((name.to_string(), source.to_string()));
                Ok(())
            }
        }
    }

    /// Names of every registered kernel, sorted.
    pub fn kernel_names(&self) -> Vec<String> {
        let mut v: Vec<String> = self
            .inner
            .sources
            .read()
            .kernel_module
            .keys()
            .cloned()
            .collect();
        v.sort();
        v
    }

    pub fn stats(&self) -> RegistryStats {
        RegistryStats {
            compiles: self.inner.compiles.load(Ordering::Relaxed),
            disk_hits: self.inner.disk_hits.load(Ordering::Relaxed),
            memory_hits: self.inner.memory_hits.load(Ordering::Relaxed),
        }
    }

    /// The loaded kernel `name`, compiling its module on first use.
    /// Once loaded, this is one hash-map lookup under a read lock.
    pub fn get_pipeline(&self, name: &str) -> Result<Arc<Pipeline>> {
        if let Some(p) = self.inner.pipelines.read().get(name) {
            self.inner.memory_hits.fetch_add(1, Ordering::Relaxed);
            return Ok(p.clone());
        }
        self.load_pipeline(name)
    }

    /// Compiles (or loads from disk) the modules of the named kernels now.
    pub fn precompile(&self, names: &[&str]) -> Result<()> {
        names
            .iter()
            .try_for_each(|n| self.get_pipeline(n).map(drop))
    }

    /// Compiles every registered kernel.
    pub fn precompile_all(&self) -> Result<()> {
        self.kernel_names()
            .iter()
            .try_for_each(|n| self.get_pipeline(n).map(drop))
    }

    fn load_pipeline(&self, name: &str) -> Result<Arc<Pipeline>> {
        let index = *self
            .inner
            .sources
            .read()
            .kernel_module
            .get(name)
            .ok_or_else(|| MlxError::KernelNotFound(name.to_string()))?;
        let ctx = self.inner.target.as_ref().ok_or_else(|| {
            MlxError::unsupported(
                "get_pipeline",
                format!("kernel '{name}': the CPU device runs no CUDA kernels"),
            )
        })?;
        let module = {
            let mut loaded = self.inner.loaded.lock();
            match loaded.get(&index) {
                Some(m) => m.clone(),
                None => {
                    let m = Arc::new(self.build_module(ctx, index)?);
                    loaded.insert(index, m.clone());
                    m
                }
            }
        };
        let pipeline = Arc::new(Pipeline::new(ctx.clone(), module, name)?);
        // Threads that missed the map together share the first one stored:
        // every Pipeline of a function must be the same object, or their
        // separate shared-memory limits would lower each other's attribute.
        let mut pipelines = self.inner.pipelines.write();
        Ok(pipelines
            .entry(name.to_string())
            .or_insert(pipeline)
            .clone())
    }

    fn build_module(&self, ctx: &Arc<CudaContext>, index: usize) -> Result<LoadedModule> {
        let nvrtc = nvrtc::Nvrtc::get()?;
        let (arch, real) = target_arch(ctx.props.compute_capability, &nvrtc.archs);
        let options = vec![
            format!("--gpu-architecture={arch}"),
            "--std=c++17".to_string(),
            format!(
                "-DMLXN_CUDA_ARCH={}",
                ctx.props.compute_capability.0 * 100 + ctx.props.compute_capability.1 * 10
            ),
        ];
        let sources = self.inner.sources.read();
        let m = &sources.modules[index];
        let key = disk_cache::key(&m.source, &sources.headers, &options, &arch, nvrtc.version);
        let path = self
            .inner
            .cache_dir
            .as_ref()
            .map(|d| disk_cache::path(d, &m.name, &key, real));
        if let Some(image) = path.as_deref().and_then(disk_cache::read) {
            if let Ok(module) = LoadedModule::load(ctx.clone(), &image) {
                self.inner.disk_hits.fetch_add(1, Ordering::Relaxed);
                config::log(|| format!("kernel module '{}' loaded from the disk cache", m.name));
                return Ok(module);
            }
        }
        let t = Instant::now();
        let image = nvrtc
            .compile(
                &format!("{}.cu", m.name),
                &m.source,
                &sources.headers,
                &options,
                real,
            )
            .map_err(|log| MlxError::KernelCompile {
                module: m.name.clone(),
                kernels: m.kernels.join(", "),
                log,
            })?;
        let image = match image {
            nvrtc::Image::Cubin(b) | nvrtc::Image::Ptx(b) => b,
        };
        self.inner.compiles.fetch_add(1, Ordering::Relaxed);
        config::log(|| {
            format!(
                "compiled kernel module '{}' for {arch} in {:.1} ms",
                m.name,
                t.elapsed().as_secs_f64() * 1e3
            )
        });
        if let Some(p) = &path {
            disk_cache::write(p, &image);
        }
        LoadedModule::load(ctx.clone(), &image)
    }
}

/// The NVRTC target for a GPU of compute capability `cc`: `(arch, is_real)`.
/// Hopper and newer get the architecture-specific `a` target (wgmma,
/// setmaxnreg); a GPU newer than NVRTC knows gets PTX for the newest
/// architecture NVRTC has, which the driver compiles.
fn target_arch(cc: (u32, u32), supported: &[i32]) -> (String, bool) {
    let sm = (cc.0 * 10 + cc.1) as i32;
    if supported.contains(&sm) {
        let suffix = if cc.0 >= 9 { "a" } else { "" };
        (format!("sm_{sm}{suffix}"), true)
    } else {
        let best = supported
            .iter()
            .copied()
            .filter(|&a| a <= sm)
            .max()
            .unwrap_or(sm);
        (format!("compute_{best}"), false)
    }
}

/// The NVRTC library in use: its path, version and target architectures.
#[derive(Debug, Clone, serde::Serialize)]
pub struct NvrtcInfo {
    pub path: String,
    pub version: (i32, i32),
    pub architectures: Vec<i32>,
}

/// Loads NVRTC (if not yet loaded) and describes it.
pub fn nvrtc_info() -> Result<NvrtcInfo> {
    let n = nvrtc::Nvrtc::get()?;
    Ok(NvrtcInfo {
        path: n.path.clone(),
        version: n.version,
        architectures: n.archs.clone(),
    })
}
