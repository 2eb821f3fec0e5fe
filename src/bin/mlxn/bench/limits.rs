//! Limits the benchmark families compare against, measured in the same run.

use mlx_native::ops::fill::fill;
use mlx_native::{DType, MlxBuffer, MlxDevice, Result};

use super::{time_ms, wall_ms};

/// GB/s for `bytes` moved in `ms` milliseconds.
pub fn gb_per_s(bytes: f64, ms: f64) -> f64 {
    bytes / (ms * 1e-3) / 1e9
}

/// Device copy bandwidth (bytes read + bytes written per second, GB/s)
/// over a `bytes`-byte copy: the driver's `cuMemcpyDtoD` on CUDA, a host
/// `memcpy` on the CPU backend. Returns the figure and what it is.
pub fn copy_gbs(device: &MlxDevice, bytes: usize, reps: usize) -> Result<(f64, &'static str)> {
    if !device.is_cuda() {
        let (from, mut to) = (vec![90u8; bytes], vec![0u8; bytes]);
        let ms = wall_ms(reps, || {
            to.copy_from_slice(std::hint::black_box(&from));
            Ok(())
        })?;
        return Ok((gb_per_s(2.0 * bytes as f64, ms), "host memcpy (read+write)"));
    }
    let src = MlxBuffer::zeros(device, DType::U8, &[bytes])?;
    let dst = MlxBuffer::zeros(device, DType::U8, &[bytes])?;
    let mut enc = device.command_encoder()?;
    fill(&mut enc, &src, 90.0)?;
    let ms = time_ms(&mut enc, 2, reps, |e, _| e.copy_buffer(&src, &dst))?;
    Ok((
        gb_per_s(2.0 * bytes as f64, ms),
        "cuMemcpyDtoD copy (read+write)",
    ))
}
