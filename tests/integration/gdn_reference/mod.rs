//! Tests of the Gated DeltaNet CPU reference math (`mlx_native::ops::gdn::reference`).

mod chunked;
pub(crate) mod common;
mod conv;
mod errors;
mod gates_norm;
mod recurrent;
