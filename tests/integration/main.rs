//! The one integration-test binary: every module runs each test on the
//! CPU and, as a separate test marked ignored, on CUDA. On a GPU machine
//! run the CUDA ones with `cargo test --release -- --include-ignored`
//! (or the GPU bundle's `run-gpu-tests.sh`); there a missing GPU fails.

#[macro_use]
mod harness;
mod formats;
mod gdn_layer;
mod gdn_ops;
mod gdn_reference;
mod graph;
mod ops_basic;
mod quantized_matmul;
mod runtime;
