//! A minimal run-time binding of cuBLAS: enough to time a bf16 GEMM as the
//! matrix-throughput limit the benchmarks compare against.
//!
//! cuBLAS works in the device's primary context (the runtime API's), so the
//! measurement uses `cudarc` for its own allocations, stream and events
//! rather than the library's buffers.

use std::ffi::c_void;
use std::path::PathBuf;

use cudarc::driver::sys::CUstream;
use libloading::Library;
use mlx_native::config::Config;
use mlx_native::{MlxError, Result};

type Handle = *mut c_void;
type Status = i32;

// cublas_api.h / library_types.h values.
const CUBLAS_OP_N: i32 = 0;
const CUBLAS_OP_T: i32 = 1;
const CUDA_R_16BF: i32 = 14;
const CUBLAS_COMPUTE_32F: i32 = 68;
const CUBLAS_GEMM_DEFAULT_TENSOR_OP: i32 = 99;

type GemmEx = unsafe extern "C" fn(
    Handle,
    i32,
    i32,
    i32,
    i32,
    i32,
    *const c_void,
    *const c_void,
    i32,
    i32,
    *const c_void,
    i32,
    i32,
    *const c_void,
    *mut c_void,
    i32,
    i32,
    i32,
    i32,
) -> Status;

/// A cuBLAS handle and the library it came from.
pub struct Cublas {
    handle: Handle,
    destroy: unsafe extern "C" fn(Handle) -> Status,
    set_stream: unsafe extern "C" fn(Handle, CUstream) -> Status,
    gemm_ex: GemmEx,
    /// Where the library was found.
    pub path: String,
    _lib: Library,
}

fn fail(msg: String) -> MlxError {
    MlxError::Unsupported { op: "cublas", msg }
}

fn check(what: &str, status: Status) -> Result<()> {
    if status == 0 {
        Ok(())
    } else {
        Err(MlxError::Cuda {
            op: "cublas",
            msg: format!("{what} returned cuBLAS status {status}"),
        })
    }
}

/// Library names tried in order: the loader's search path first, then the
/// CUDA roots of the configuration (`CUDA_HOME`, `CUDA_PATH`,
/// `/usr/local/cuda`); a path given by `MLXN_CUBLAS` comes before all.
fn candidates() -> Vec<PathBuf> {
    let config = Config::get();
    let names = ["libcublas.so.13", "libcublas.so.12"];
    let mut c: Vec<PathBuf> = config.cublas_library.iter().cloned().collect();
    c.extend(names.iter().map(PathBuf::from));
    for root in &config.cuda_roots {
        for dir in ["lib64", "lib", "targets/x86_64-linux/lib"] {
            c.extend(names.iter().map(|n| root.join(dir).join(n)));
        }
    }
    c
}

impl Cublas {
    /// Loads cuBLAS and creates a handle in the current (primary) context.
    pub fn new() -> Result<Cublas> {
        let tried = candidates();
        // SAFETY: loading cuBLAS runs its initialisers, which have no
        // preconditions.
        let (lib, path) = tried
            .iter()
            .find_map(|p| unsafe { Library::new(p) }.ok().map(|l| (l, p)))
            .ok_or_else(|| {
                fail(format!(
                    "cuBLAS was not found (tried {}); set MLXN_CUBLAS or CUDA_HOME",
                    tried
                        .iter()
                        .map(|p| p.display().to_string())
                        .collect::<Vec<_>>()
                        .join(", ")
                ))
            })?;
        let path = path.display().to_string();
        macro_rules! sym {
            ($name:literal) => {
                // SAFETY: the symbol has the C signature of cublas_api.h,
                // stable across cuBLAS 11–13.
                *unsafe { lib.get($name) }.map_err(|e| fail(format!("{path}: {e}")))?
            };
        }
        let create: unsafe extern "C" fn(*mut Handle) -> Status = sym!(b"cublasCreate_v2\0");
        let destroy = sym!(b"cublasDestroy_v2\0");
        let set_stream = sym!(b"cublasSetStream_v2\0");
        let gemm_ex = sym!(b"cublasGemmEx\0");
        let mut handle: Handle = std::ptr::null_mut();
        // SAFETY: `handle` is a valid out-pointer.
        check("cublasCreate_v2", unsafe { create(&mut handle) })?;
        Ok(Cublas {
            handle,
            destroy,
            set_stream,
            gemm_ex,
            path,
            _lib: lib,
        })
    }

    /// Makes cuBLAS queue its work on `stream`.
    ///
    /// # Safety
    /// `stream` is a live stream of the context current on this thread, and
    /// outlives every GEMM queued on it.
    pub unsafe fn set_stream(&self, stream: CUstream) -> Result<()> {
        // SAFETY: the handle is live; the caller vouches for the stream.
        check("cublasSetStream_v2", unsafe {
            (self.set_stream)(self.handle, stream)
        })
    }

    /// `c[m, n] = a[m, k] · b[n, k]ᵀ`, all row-major bf16, f32 accumulation.
    ///
    /// # Safety
    /// `m`, `n`, `k` are positive; `a`, `b`, `c` are device pointers to at
    /// least `m·k`, `n·k`, `m·n` bf16 values in the handle's context, live
    /// until the stream set with [`Cublas::set_stream`] has run the GEMM.
    pub unsafe fn gemm_bf16_nt(
        &self,
        m: i32,
        n: i32,
        k: i32,
        a: u64,
        b: u64,
        c: u64,
    ) -> Result<()> {
        let (alpha, beta) = (1.0f32, 0.0f32);
        // Column-major view: cᵀ (n × m) = b (k × n)ᵀ · aᵀ (k × m).
        // SAFETY: the sizes and pointers are as the caller promised; alpha
        // and beta live on this frame for the duration of the call, which
        // reads them before returning (host pointer mode).
        check("cublasGemmEx", unsafe {
            (self.gemm_ex)(
                self.handle,
                CUBLAS_OP_T,
                CUBLAS_OP_N,
                n,
                m,
                k,
                (&alpha as *const f32).cast(),
                b as *const c_void,
                CUDA_R_16BF,
                k,
                a as *const c_void,
                CUDA_R_16BF,
                k,
                (&beta as *const f32).cast(),
                c as *mut c_void,
                CUDA_R_16BF,
                n,
                CUBLAS_COMPUTE_32F,
                CUBLAS_GEMM_DEFAULT_TENSOR_OP,
            )
        })
    }
}

impl Drop for Cublas {
    fn drop(&mut self) {
        // SAFETY: the handle was created by `new` and is destroyed once.
        let _ = unsafe { (self.destroy)(self.handle) };
    }
}
