//! The on-disk cache of compiled kernel modules.

use std::path::{Path, PathBuf};

use sha2::{Digest, Sha256};

/// Hex key of everything that changes the compiled code.
pub(super) fn key(
    source: &str,
    headers: &[(String, String)],
    options: &[String],
    arch: &str,
    nvrtc: (i32, i32),
) -> String {
    let mut h = Sha256::new();
    let mut field = |bytes: &[u8]| {
        h.update((bytes.len() as u64).to_le_bytes());
        h.update(bytes);
    };
    field(b"mlx-native kernel cache v1");
    field(source.as_bytes());
    for (name, text) in headers {
        field(name.as_bytes());
        field(text.as_bytes());
    }
    for o in options {
        field(o.as_bytes());
    }
    field(arch.as_bytes());
    field(format!("nvrtc {}.{}", nvrtc.0, nvrtc.1).as_bytes());
    h.finalize()
        .iter()
        .take(16)
        .map(|b| format!("{b:02x}"))
        .collect()
}

pub(super) fn path(dir: &Path, module: &str, key: &str, cubin: bool) -> PathBuf {
    let safe: String = module
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '_' {
                c
            } else {
                '-'
            }
        })
        .collect();
    dir.join(format!(
        "{safe}-{key}.{}",
        if cubin { "cubin" } else { "ptx" }
    ))
}

pub(super) fn read(path: &Path) -> Option<Vec<u8>> {
    std::fs::read(path).ok().filter(|b| !b.is_empty())
}

/// Writes atomically (temporary file, then rename). A cache that cannot be
/// written is not an error: the next run compiles again.
pub(super) fn write(path: &Path, image: &[u8]) {
    let Some(dir) = path.parent() else { return };
    let tmp = path.with_extension(format!("tmp{}", std::process::id()));
    let ok = std::fs::create_dir_all(dir).is_ok()
        && std::fs::write(&tmp, image).is_ok()
        && std::fs::rename(&tmp, path).is_ok();
    if !ok {
        let _ = std::fs::remove_file(&tmp);
        crate::config::log(|| format!("could not write kernel cache file {}", path.display()));
    }
}
