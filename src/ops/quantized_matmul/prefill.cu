#include "mlxn_prelude.cuh"
#include "ggml_blocks.cuh"
