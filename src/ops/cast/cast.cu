#include "mlxn_prelude.cuh"

// Where both arrays start on 16 bytes (`aligned`), each step converts 8
// elements with 16-byte loads and stores; element-wise otherwise, and for
// the last n % 8 elements. The op is memory-bound, and 2-byte element
// accesses would leave most of each memory transaction unused.
template <typename S, typename D>
__device__ void cast_impl(const S* __restrict__ src, D* __restrict__ dst, u64 n, u32 aligned) {
    u64 done = 0;
    if (aligned) {
        union Src { uint4 v[sizeof(S) / 2]; S e[8]; };
        union Dst { uint4 v[sizeof(D) / 2]; D e[8]; };
        const u64 groups = n / 8;
        for (u64 g = global_thread_index(); g < groups; g += grid_threads()) {
            Src a;
            Dst b;
#pragma unroll
            for (int i = 0; i < (int)(sizeof(S) / 2); i++) a.v[i] = reinterpret_cast<const uint4*>(src + 8 * g)[i];
#pragma unroll
            for (int i = 0; i < 8; i++) b.e[i] = from_f32<D>(to_f32(a.e[i]));
#pragma unroll
            for (int i = 0; i < (int)(sizeof(D) / 2); i++) reinterpret_cast<uint4*>(dst + 8 * g)[i] = b.v[i];
        }
        done = 8 * groups;
    }
    for (u64 i = done + global_thread_index(); i < n; i += grid_threads()) dst[i] = from_f32<D>(to_f32(src[i]));
}

#define CAST(SN, ST, DN, DT)                                                                    \
    extern "C" __global__ void cast_##SN##_to_##DN(const ST* src, DT* dst, u64 n, u32 aligned) { \
        cast_impl(src, dst, n, aligned);                                                        \
    }

CAST(f32, float, f16, f16_t)
CAST(f32, float, bf16, bf16_t)
CAST(f16, f16_t, f32, float)
CAST(f16, f16_t, bf16, bf16_t)
CAST(bf16, bf16_t, f32, float)
CAST(bf16, bf16_t, f16, f16_t)
