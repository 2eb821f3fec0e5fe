use crate::ops::host::{read_f32, write_f32};
use crate::{MlxBuffer, Result};

/// Via f32, which holds every F16 and BF16 value exactly.
pub(super) fn cast(src: &MlxBuffer, dst: &MlxBuffer) -> Result<()> {
    write_f32(dst, &read_f32(src)?)
}
