//! Gated DeltaNet (Yang, Kautz, Hatamizadeh, arXiv 2412.06464): the linear
//! attention of the Qwen3-Next / Qwen3.5 hybrids.
//!
//! `reference` holds the math as plain functions over slices: the f64
//! token recurrence, the chunked algorithm stage by stage, the short
//! convolution, the gates and the gated RMS norm. The device ops are built
//! on it.

pub mod reference;
