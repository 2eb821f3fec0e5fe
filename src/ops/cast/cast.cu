#include "mlxn_prelude.cuh"

template <typename S, typename D>
__device__ void cast_impl(const S* __restrict__ src, D* __restrict__ dst, u64 n) {
    for (u64 i = global_thread_index(); i < n; i += grid_threads()) dst[i] = from_f32<D>(to_f32(src[i]));
}

#define CAST(SN, ST, DN, DT) \
    extern "C" __global__ void cast_##SN##_to_##DN(const ST* src, DT* dst, u64 n) { cast_impl(src, dst, n); }

CAST(f32, float, f16, f16_t)
CAST(f32, float, bf16, bf16_t)
CAST(f16, f16_t, f32, float)
CAST(f16, f16_t, bf16, bf16_t)
CAST(bf16, bf16_t, f32, float)
CAST(bf16, bf16_t, f16, f16_t)
