//! The decode launcher.

use bytemuck::{Pod, Zeroable};

use crate::encoder::{KernelArg, LaunchConfig};
use crate::ops::gdn::params::{GdnCall, GdnDecodeParams, GdnTensors};
use crate::{CommandEncoder, DType, MlxBuffer, MlxError, Result};

pub(crate) const SOURCE: &str = include_str!("gdn_decode.cu");
pub(crate) const KERNELS: &[&str] = &[
    "gdn_decode_k64_bf16",
    "gdn_decode_k128_bf16",
    "gdn_decode_k256_bf16",
    "gdn_decode_k64_f32",
    "gdn_decode_k128_f32",
    "gdn_decode_k256_f32",
];

/// State rows per block: GDN_DECODE_WARPS × GDN_DECODE_ROWS.
const ROWS_PER_BLOCK: usize = 16;
const THREADS: u32 = 128;

/// `GdnDecodeDims` of the kernel.
#[repr(C)]
#[derive(Clone, Copy, Pod, Zeroable)]
struct Dims {
    num_tokens: i32,
    num_key_heads: i32,
    num_value_heads: i32,
    value_dim: i32,
    scale: f32,
    l2_norm: i32,
    reserved: [i32; 2],
}

pub(super) fn decode(
    enc: &mut CommandEncoder,
    call: &GdnCall,
    params: &GdnDecodeParams,
    t: &GdnTensors<'_>,
    state: &MlxBuffer,
) -> Result<()> {
    let s = &call.shape;
    if s.batch > 65535 || s.num_value_heads > 65535 || s.num_tokens() > i32::MAX as usize {
        return Err(MlxError::unsupported(
            "gated_delta_net_decode",
            format!(
                "batch {}, {} value heads and {} tokens: the launch grid takes at most 65535 \
                 sequences and value heads, the kernel at most 2^31 - 1 tokens",
                s.batch,
                s.num_value_heads,
                s.num_tokens()
            ),
        ));
    }
    let kernel = KERNELS[match s.key_dim {
        64 => 0,
        128 => 1,
        _ => 2,
    } + if call.dtype == DType::F32 { 3 } else { 0 }];
    let dims = Dims {
        num_tokens: s.seq_len as i32,
        num_key_heads: s.num_key_heads as i32,
        num_value_heads: s.num_value_heads as i32,
        value_dim: s.value_dim as i32,
        scale: call.scale,
        l2_norm: params.l2_normalize_qk as i32,
        reserved: [0; 2],
    };
    enc.dispatch_kernel(
        kernel,
        LaunchConfig {
            grid: (
                (s.value_dim / ROWS_PER_BLOCK) as u32,
                s.num_value_heads as u32,
                s.batch as u32,
            ),
            block: (THREADS, 1, 1),
            shared_mem_bytes: 0,
        },
        &[
            KernelArg::Buffer(t.q),
            KernelArg::Buffer(t.k),
            KernelArg::Buffer(t.v),
            KernelArg::Buffer(t.g),
            KernelArg::Buffer(t.beta),
            KernelArg::ReadEarly(state),
            KernelArg::Buffer(t.o),
            KernelArg::pod(&dims),
        ],
    )
}
