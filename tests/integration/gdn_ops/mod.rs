//! The Gated DeltaNet device ops (`gated_delta_net_prefill`,
//! `gated_delta_net_decode`) on every backend against the f64 recurrence.

mod common;
mod decode;
mod early_start;
mod errors;
mod prefill;
