//! Limits the benchmark families compare against, measured in the same run.

use mlx_native::ops::fill::fill;
use mlx_native::{
    CudaProperties, DType, KernelArg, LaunchConfig, MlxBuffer, MlxDevice, MlxError, Result,
};

use super::cublas::Cublas;
use super::data::uniform_values;
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

/// The device's CUDA properties, or an error naming `op` on the CPU.
fn cuda_only<'a>(device: &'a MlxDevice, op: &'static str) -> Result<&'a CudaProperties> {
    device
        .cuda_properties()
        .ok_or_else(|| MlxError::Unsupported {
            op,
            msg: "this limit needs a CUDA device".into(),
        })
}

const BENCH_SOURCE: &str = include_str!("bench.cu");
const BENCH_KERNELS: &[&str] = &["bench_read_only", "bench_tiny5"];

/// Registers the benchmark kernels of `bench.cu` (again is a no-op).
pub fn register_bench_kernels(device: &MlxDevice) -> Result<()> {
    device
        .registry()
        .register_module("bench", BENCH_SOURCE, BENCH_KERNELS)
}

/// Median µs of one read of a buffer by `bench_read_only` (16-byte loads,
/// four in flight per thread, nothing written but one word per block): the
/// reads of `batch` launches back to back per timed repetition, over
/// `srcs` in turn, as the products it is set beside are timed. CUDA only.
pub fn read_only_us(
    device: &MlxDevice,
    srcs: &[MlxBuffer],
    batch: usize,
    reps: usize,
) -> Result<f64> {
    let props = cuda_only(device, "bench_read_only")?;
    register_bench_kernels(device)?;
    let pipeline = device.registry().get_pipeline("bench_read_only")?;
    let threads = 256u32;
    let most = srcs.iter().map(MlxBuffer::byte_len).max().unwrap_or(0) as u64;
    let blocks = (most / 16)
        .div_ceil(threads as u64 * 4)
        .clamp(1, props.sm_count as u64 * 64) as u32;
    let out = MlxBuffer::zeros(device, DType::U32, &[blocks as usize])?;
    let mut enc = device.command_encoder()?;
    let mut next = 0;
    let ms = time_ms(&mut enc, 2, reps, |e, _| {
        for _ in 0..batch {
            let src = &srcs[next % srcs.len()];
            next += 1;
            let bytes = src.byte_len() as u64 / 16 * 16;
            e.dispatch(
                &pipeline,
                LaunchConfig::linear(blocks, threads),
                &[
                    KernelArg::Buffer(src),
                    KernelArg::Buffer(&out),
                    KernelArg::pod(&bytes),
                ],
            )?;
        }
        Ok(())
    })?;
    Ok(ms * 1e3 / batch as f64)
}

/// cuBLAS bf16 GEMM throughput (TFLOP/s, 2·m·n·k per product): row-major
/// `c[m, n] = a[m, k] · b[n, k]ᵀ` on random data, `cublasGemmEx` with f32
/// compute and the default tensor-op algorithm, the median of `reps`
/// event-timed products. When one set of operands would fit in twice the
/// L2, the products rotate among several sets.
pub fn gemm_bf16_tflops(
    device: &MlxDevice,
    m: usize,
    n: usize,
    k: usize,
    reps: usize,
) -> Result<f64> {
    use cudarc::driver::sys::CUevent_flags;
    use cudarc::driver::{CudaContext, DevicePtr};

    let props = cuda_only(device, "gemm_bf16_tflops")?;
    let cuda = |e: cudarc::driver::DriverError| MlxError::Cuda {
        op: "gemm_bf16_tflops",
        msg: e.to_string(),
    };
    let dim = |v: usize| {
        i32::try_from(v).map_err(|_| MlxError::InvalidArgument {
            op: "gemm_bf16_tflops",
            msg: format!("dimension {v} does not fit cuBLAS's int"),
        })
    };
    let (mi, ni, ki) = (dim(m)?, dim(n)?, dim(k)?);
    let ctx = CudaContext::new(props.ordinal).map_err(cuda)?;
    let stream = ctx.new_stream().map_err(cuda)?;
    let cublas = Cublas::new()?;
    super::progress(&format!("cuBLAS from {}", cublas.path));
    // SAFETY: `stream` belongs to `ctx`, current on this thread, and is
    // declared before `cublas`, so it is dropped after the handle.
    unsafe { cublas.set_stream(stream.cu_stream())? };

    let set_bytes = 2 * (m * k + n * k + m * n);
    let sets = (2 * props.l2_cache_bytes as usize)
        .div_ceil(set_bytes)
        .clamp(1, 8);
    let mut seed = 0;
    let mut random_bf16 = |len: usize| -> Vec<u16> {
        seed += 1;
        uniform_values(len, -1.0, 1.0, seed)
            .into_iter()
            .map(|v| half::bf16::from_f32(v).to_bits())
            .collect()
    };
    let mut buffers = Vec::with_capacity(sets);
    for _ in 0..sets {
        let a = stream.clone_htod(&random_bf16(m * k)).map_err(cuda)?;
        let b = stream.clone_htod(&random_bf16(n * k)).map_err(cuda)?;
        let c = stream.alloc_zeros::<u16>(m * n).map_err(cuda)?;
        buffers.push((a, b, c));
    }
    let ptrs: Vec<(u64, u64, u64)> = buffers
        .iter()
        .map(|(a, b, c)| {
            (
                a.device_ptr(&stream).0,
                b.device_ptr(&stream).0,
                c.device_ptr(&stream).0,
            )
        })
        .collect();
    let gemm = |i: usize| {
        let (a, b, c) = ptrs[i % ptrs.len()];
        // SAFETY: the pointers are live allocations of m·k, n·k and m·n
        // bf16 values made on this context and stream.
        unsafe { cublas.gemm_bf16_nt(mi, ni, ki, a, b, c) }
    };
    for i in 0..3 {
        gemm(i)?;
    }
    let mut events = Vec::with_capacity(reps);
    for i in 0..reps {
        let start = stream
            .record_event(Some(CUevent_flags::CU_EVENT_DEFAULT))
            .map_err(cuda)?;
        gemm(i)?;
        let end = stream
            .record_event(Some(CUevent_flags::CU_EVENT_DEFAULT))
            .map_err(cuda)?;
        events.push((start, end));
    }
    stream.synchronize().map_err(cuda)?;
    let mut times = events
        .iter()
        .map(|(s, e)| s.elapsed_ms(e).map(f64::from).map_err(cuda))
        .collect::<Result<Vec<f64>>>()?;
    let ms = super::median(&mut times);
    Ok(2.0 * m as f64 * n as f64 * k as f64 / (ms * 1e-3) / 1e12)
}
