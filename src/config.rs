//! All environment configuration, read once into a typed struct.
//!
//! No other module reads environment variables (ARCHITECTURE.md decision 8).
//!
//! | variable | meaning | default |
//! |---|---|---|
//! | `MLXN_DEVICE` | `auto`, `cpu`, `cuda` or `cuda:N`: what `MlxDevice::new()` picks | `auto` |
//! | `MLXN_CACHE_DIR` | directory of the on-disk kernel cache | `$XDG_CACHE_HOME/mlx-native` or `~/.cache/mlx-native` |
//! | `MLXN_NO_DISK_CACHE` | `1` disables the on-disk kernel cache | unset |
//! | `MLXN_NVRTC` | path of the NVRTC library to load | searched |
//! | `CUDA_HOME`, `CUDA_PATH` | toolkit roots searched for NVRTC (`lib64/`, `lib/`) | `/usr/local/cuda` |
//! | `MLXN_CUBLAS` | path of the cuBLAS library `mlxn bench` loads for its GEMM limit | searched like NVRTC |
//! | `MLXN_LOG` | `1` prints kernel compiles and cache hits to stderr | unset |

use std::path::PathBuf;
use std::sync::OnceLock;

/// Which device `MlxDevice::new()` should open.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DeviceChoice {
    /// The first CUDA GPU if one is usable, else the CPU.
    Auto,
    Cpu,
    Cuda(usize),
}

/// The crate's configuration, read from the environment once per process.
#[derive(Debug, Clone)]
pub struct Config {
    pub device: DeviceChoice,
    /// `None` when the disk cache is disabled or no home directory is known.
    pub kernel_cache_dir: Option<PathBuf>,
    pub nvrtc_library: Option<PathBuf>,
    /// cuBLAS for the benchmarks' GEMM limit (`MLXN_CUBLAS`).
    pub cublas_library: Option<PathBuf>,
    pub cuda_roots: Vec<PathBuf>,
    pub log: bool,
    /// A value that could not be understood, reported by `MlxDevice::new()`.
    pub device_error: Option<String>,
}

impl Config {
    /// The process-wide configuration.
    pub fn get() -> &'static Config {
        static CONFIG: OnceLock<Config> = OnceLock::new();
        CONFIG.get_or_init(|| Config::from_lookup(|k| std::env::var(k).ok()))
    }

    /// Builds a configuration from any key lookup (tests pass a map).
    pub fn from_lookup(get: impl Fn(&str) -> Option<String>) -> Config {
        let (device, device_error) = match get("MLXN_DEVICE") {
            None => (DeviceChoice::Auto, None),
            Some(v) => match parse_device(&v) {
                Some(d) => (d, None),
                None => (
                    DeviceChoice::Auto,
                    Some(format!(
                        "MLXN_DEVICE='{v}' is not one of auto, cpu, cuda, cuda:N"
                    )),
                ),
            },
        };
        let disk_cache_off = get("MLXN_NO_DISK_CACHE").is_some_and(|v| v == "1");
        let kernel_cache_dir = if disk_cache_off {
            None
        } else {
            get("MLXN_CACHE_DIR")
                .map(PathBuf::from)
                .or_else(|| get("XDG_CACHE_HOME").map(|d| PathBuf::from(d).join("mlx-native")))
                .or_else(|| get("HOME").map(|h| PathBuf::from(h).join(".cache/mlx-native")))
        };
        let mut cuda_roots: Vec<PathBuf> = ["CUDA_HOME", "CUDA_PATH"]
            .iter()
            .filter_map(|k| get(k).map(PathBuf::from))
            .collect();
        cuda_roots.push(PathBuf::from("/usr/local/cuda"));
        Config {
            device,
            kernel_cache_dir,
            nvrtc_library: get("MLXN_NVRTC").map(PathBuf::from),
            cublas_library: get("MLXN_CUBLAS").map(PathBuf::from),
            cuda_roots,
            log: get("MLXN_LOG").is_some_and(|v| v == "1"),
            device_error,
        }
    }
}

fn parse_device(v: &str) -> Option<DeviceChoice> {
    match v.trim().to_ascii_lowercase().as_str() {
        "" | "auto" => Some(DeviceChoice::Auto),
        "cpu" => Some(DeviceChoice::Cpu),
        "cuda" | "gpu" => Some(DeviceChoice::Cuda(0)),
        s => s
            .strip_prefix("cuda:")
            .and_then(|n| n.parse().ok())
            .map(DeviceChoice::Cuda),
    }
}

/// Prints a line to stderr when `MLXN_LOG=1`.
pub(crate) fn log(msg: impl FnOnce() -> String) {
    if Config::get().log {
        eprintln!("[mlx-native] {}", msg());
    }
}
