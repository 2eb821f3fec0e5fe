//! Gated DeltaNet (Yang, Kautz, Hatamizadeh, arXiv 2412.06464): the linear
//! attention of the Qwen3-Next / Qwen3.5 hybrids.
//!
//! `reference` holds the math as plain functions over slices: the f64
//! token recurrence, the chunked algorithm stage by stage, the short
//! convolution, the gates and the gated RMS norm. The device ops are built
//! on it: [`gated_delta_net_prefill`] (chunked, chunk size 64) and
//! [`gated_delta_net_decode`] (the recurrence, state updated in place).

pub mod decode;
mod params;
pub mod prefill;
pub mod reference;

pub use decode::gated_delta_net_decode;
pub use params::{
    GdnDecodeParams, GdnPrefillParams, GDN_CHUNK, GDN_HEAD_DIMS, GDN_MAX_PACKED_SEQUENCES,
    GDN_VIEW_ALIGN,
};
pub use prefill::{gated_delta_net_prefill, gated_delta_net_prefill_scratch_bytes};
