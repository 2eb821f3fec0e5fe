//! Tests of the Gated DeltaNet CPU reference math (`mlx_native::gdn_reference`).

mod chunked;
mod common;
mod conv;
mod errors;
mod gates_norm;
mod recurrent;
