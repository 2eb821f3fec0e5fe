//! mlx-native: GPU compute kernels for LLM inference.
//!
//! A device (`MlxDevice`) is a CUDA GPU or the CPU, chosen at run time.
//! Buffers (`MlxBuffer`) hold typed, shaped device memory. Ops take a
//! `CommandEncoder`, their inputs and outputs, and parameters; on CUDA they
//! launch kernels compiled by NVRTC for the exact GPU (`KernelRegistry`),
//! on the CPU they run a plain-Rust reference implementation.
//!
//! ```no_run
//! use mlx_native::{ops, DType, MlxBuffer, MlxDevice};
//! # fn main() -> mlx_native::Result<()> {
//! let device = MlxDevice::new()?; // first CUDA GPU, else the CPU
//! let a = MlxBuffer::from_slice(&device, &[1.0f32, 2.0, 3.0, 4.0], &[2, 2])?;
//! let row = MlxBuffer::from_slice(&device, &[10.0f32, 20.0], &[2])?;
//! let out = MlxBuffer::zeros(&device, DType::F32, &[2, 2])?;
//! let mut enc = device.command_encoder()?;
//! ops::elementwise::add(&mut enc, &a, &row, &out)?;
//! enc.commit_and_wait()?;
//! assert_eq!(out.read::<f32>()?, vec![11.0, 22.0, 13.0, 24.0]);
//! # Ok(()) }
//! ```
#![cfg_attr(
    not(test),
    deny(clippy::unwrap_used, clippy::expect_used, clippy::panic)
)]

mod buffer;
pub mod config;
mod device;
mod dtype;
mod encoder;
mod error;
pub mod formats;
mod graph;
pub mod kernels;
pub mod ops;
mod pool;
mod worker;

pub use buffer::MlxBuffer;
pub use device::{BackendKind, CpuProperties, CudaProperties, MlxDevice};
pub use dtype::{DType, Element};
pub use encoder::{
    CommandEncoder, DispatchTiming, EncoderStats, KernelArg, LaunchConfig, MlxEvent, Timestamp,
    MAX_KERNEL_ARGS,
};
pub use error::{MlxError, Result};
pub use formats::{GgmlType, GgufFile, GgufParseError, GgufValue, GgufWriter};
pub use graph::GraphExecutor;
pub use kernels::{KernelRegistry, Pipeline, RegistryStats};
pub use pool::{MlxBufferPool, PoolStats};
pub use worker::EncoderWorker;
