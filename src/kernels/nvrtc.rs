//! Run-time loading of NVRTC.
//!
//! NVRTC is loaded by its own small binding rather than through cudarc so
//! that the library can be found by explicit path (`MLXN_NVRTC`, the CUDA
//! roots of the config) as well as by name, for NVRTC 12.x and 13.x alike,
//! and so that a missing library is an error rather than a panic.

use std::ffi::{c_char, c_int, c_void, CStr, CString};
use std::path::PathBuf;
use std::sync::OnceLock;

use crate::config::Config;
use crate::{MlxError, Result};

type Program = *mut c_void;
type Status = c_int;

struct Api {
    version: unsafe extern "C" fn(*mut c_int, *mut c_int) -> Status,
    error_string: unsafe extern "C" fn(Status) -> *const c_char,
    create: unsafe extern "C" fn(
        *mut Program,
        *const c_char,
        *const c_char,
        c_int,
        *const *const c_char,
        *const *const c_char,
    ) -> Status,
    compile: unsafe extern "C" fn(Program, c_int, *const *const c_char) -> Status,
    log_size: unsafe extern "C" fn(Program, *mut usize) -> Status,
    log: unsafe extern "C" fn(Program, *mut c_char) -> Status,
    cubin_size: unsafe extern "C" fn(Program, *mut usize) -> Status,
    cubin: unsafe extern "C" fn(Program, *mut c_char) -> Status,
    ptx_size: unsafe extern "C" fn(Program, *mut usize) -> Status,
    ptx: unsafe extern "C" fn(Program, *mut c_char) -> Status,
    destroy: unsafe extern "C" fn(*mut Program) -> Status,
    num_archs: unsafe extern "C" fn(*mut c_int) -> Status,
    archs: unsafe extern "C" fn(*mut c_int) -> Status,
}

/// A loaded NVRTC library.
pub(crate) struct Nvrtc {
    api: Api,
    pub path: String,
    pub version: (i32, i32),
    /// Real architectures this NVRTC can emit machine code for (e.g. 90).
    pub archs: Vec<i32>,
    _lib: libloading::Library,
}

/// What one compile produced.
pub(crate) enum Image {
    Cubin(Vec<u8>),
    /// NUL-terminated PTX, for architectures newer than this NVRTC knows.
    Ptx(Vec<u8>),
}

impl Nvrtc {
    /// The process-wide NVRTC, loaded on first use.
    pub fn get() -> Result<&'static Nvrtc> {
        static NVRTC: OnceLock<std::result::Result<Nvrtc, String>> = OnceLock::new();
        NVRTC
            .get_or_init(Nvrtc::load)
            .as_ref()
            .map_err(|e| MlxError::cuda("nvrtc", e.clone()))
    }

    fn candidates() -> Vec<PathBuf> {
        let config = Config::get();
        let names = ["libnvrtc.so.13", "libnvrtc.so.12", "libnvrtc.so"];
        let mut c: Vec<PathBuf> = config.nvrtc_library.iter().cloned().collect();
        c.extend(names.iter().map(PathBuf::from));
        for root in &config.cuda_roots {
            for dir in [
                "lib64",
                "lib",
                "targets/x86_64-linux/lib",
                "targets/sbsa-linux/lib",
            ] {
                c.extend(names.iter().map(|n| root.join(dir).join(n)));
            }
        }
        c
    }

    fn load() -> std::result::Result<Nvrtc, String> {
        let candidates = Nvrtc::candidates();
        for path in &candidates {
            // SAFETY: loading NVRTC runs no initialisers with preconditions.
            if let Ok(lib) = unsafe { libloading::Library::new(path) } {
                return Nvrtc::bind(lib, path.display().to_string());
            }
        }
        Err(format!(
            "NVRTC was not found (tried {}); set MLXN_NVRTC or CUDA_HOME",
            candidates
                .iter()
                .map(|p| p.display().to_string())
                .collect::<Vec<_>>()
                .join(", ")
        ))
    }

    fn bind(lib: libloading::Library, path: String) -> std::result::Result<Nvrtc, String> {
        macro_rules! sym {
            ($name:literal) => {
                // SAFETY: the symbol has the C signature declared in `Api`
                // (NVRTC's public header, stable since CUDA 11).
                *unsafe { lib.get($name) }.map_err(|e| format!("{path}: {e}"))?
            };
        }
        let api = Api {
            version: sym!(b"nvrtcVersion\0"),
            error_string: sym!(b"nvrtcGetErrorString\0"),
            create: sym!(b"nvrtcCreateProgram\0"),
            compile: sym!(b"nvrtcCompileProgram\0"),
            log_size: sym!(b"nvrtcGetProgramLogSize\0"),
            log: sym!(b"nvrtcGetProgramLog\0"),
            cubin_size: sym!(b"nvrtcGetCUBINSize\0"),
            cubin: sym!(b"nvrtcGetCUBIN\0"),
            ptx_size: sym!(b"nvrtcGetPTXSize\0"),
            ptx: sym!(b"nvrtcGetPTX\0"),
            destroy: sym!(b"nvrtcDestroyProgram\0"),
            num_archs: sym!(b"nvrtcGetNumSupportedArchs\0"),
            archs: sym!(b"nvrtcGetSupportedArchs\0"),
        };
        let (mut major, mut minor, mut n) = (0, 0, 0);
        // SAFETY: each call writes plain integers.
        let archs = unsafe {
            (api.version)(&mut major, &mut minor);
            (api.num_archs)(&mut n);
            let mut a = vec![0; n.max(0) as usize];
            (api.archs)(a.as_mut_ptr());
            a
        };
        Ok(Nvrtc {
            api,
            path,
            version: (major, minor),
            archs,
            _lib: lib,
        })
    }

    fn check(&self, status: Status, what: &str) -> std::result::Result<(), String> {
        if status == 0 {
            return Ok(());
        }
        // SAFETY: NVRTC returns a static string for any status.
        let msg = unsafe { CStr::from_ptr((self.api.error_string)(status)) };
        Err(format!("{what}: {}", msg.to_string_lossy()))
    }

    /// Compiles `source` with the given headers and options. `cubin` asks
    /// for machine code (a real `sm_XX` target), else PTX. On failure the
    /// error string carries NVRTC's log.
    pub fn compile(
        &self,
        name: &str,
        source: &str,
        headers: &[(String, String)],
        options: &[String],
        cubin: bool,
    ) -> std::result::Result<Image, String> {
        let cstr =
            |s: &str| CString::new(s).map_err(|_| format!("'{name}': text contains a NUL byte"));
        let src = cstr(source)?;
        let cname = cstr(name)?;
        let hdr_src = headers
            .iter()
            .map(|(_, s)| cstr(s))
            .collect::<std::result::Result<Vec<_>, _>>()?;
        let hdr_name = headers
            .iter()
            .map(|(n, _)| cstr(n))
            .collect::<std::result::Result<Vec<_>, _>>()?;
        let opts = options
            .iter()
            .map(|o| cstr(o))
            .collect::<std::result::Result<Vec<_>, _>>()?;
        let ptrs = |v: &[CString]| v.iter().map(|c| c.as_ptr()).collect::<Vec<_>>();
        let (hs, hn, op) = (ptrs(&hdr_src), ptrs(&hdr_name), ptrs(&opts));

        let mut prog: Program = std::ptr::null_mut();
        // SAFETY: every pointer refers to a live NUL-terminated string for
        // the duration of the calls; the program is destroyed below.
        unsafe {
            self.check(
                (self.api.create)(
                    &mut prog,
                    src.as_ptr(),
                    cname.as_ptr(),
                    hs.len() as c_int,
                    hs.as_ptr(),
                    hn.as_ptr(),
                ),
                "nvrtcCreateProgram",
            )?;
            let result = (|| {
                let status = (self.api.compile)(prog, op.len() as c_int, op.as_ptr());
                if status != 0 {
                    let mut n = 0usize;
                    (self.api.log_size)(prog, &mut n);
                    let mut log = vec![0u8; n.max(1)];
                    (self.api.log)(prog, log.as_mut_ptr().cast());
                    let log = String::from_utf8_lossy(&log)
                        .trim_end_matches('\0')
                        .to_string();
                    let msg = self
                        .check(status, "nvrtcCompileProgram")
                        .err()
                        .unwrap_or_default();
                    return Err(format!("{msg}\n{log}"));
                }
                let (size_fn, get_fn, what) = if cubin {
                    (self.api.cubin_size, self.api.cubin, "CUBIN")
                } else {
                    (self.api.ptx_size, self.api.ptx, "PTX")
                };
                let mut n = 0usize;
                self.check(size_fn(prog, &mut n), what)?;
                let mut out = vec![0u8; n];
                self.check(get_fn(prog, out.as_mut_ptr().cast()), what)?;
                Ok(if cubin {
                    Image::Cubin(out)
                } else {
                    Image::Ptx(out)
                })
            })();
            (self.api.destroy)(&mut prog);
            result
        }
    }
}
