use crate::{MlxBuffer, Result};

pub(super) fn fill(out: &MlxBuffer, pattern: u64) -> Result<()> {
    let size = out.dtype().size_of();
    let element = &pattern.to_le_bytes()[..size];
    out.cpu_bytes_mut(|bytes, range| {
        for chunk in bytes[range].chunks_exact_mut(size) {
            chunk.copy_from_slice(element);
        }
    })
}
