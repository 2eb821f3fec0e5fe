#include "mlxn_prelude.cuh"

// Contiguous copy of `bytes` bytes, both pointers 16-byte aligned. Each
// block copies a contiguous run of blockDim.x * 4 vectors; every thread has
// its four loads in flight before the first store.
extern "C" __global__ void copy_contiguous_v16(const uint4* __restrict__ src, uint4* __restrict__ dst, u64 bytes) {
    const u64 vectors = bytes / 16;
    const u64 per_block = (u64)blockDim.x * 4;
    for (u64 base = (u64)blockIdx.x * per_block; base < vectors; base += (u64)gridDim.x * per_block) {
        const u64 i = base + threadIdx.x;
        uint4 v[4];
#pragma unroll
        for (int k = 0; k < 4; ++k) {
            const u64 j = i + (u64)k * blockDim.x;
            if (j < vectors) v[k] = __ldcs(src + j);
        }
#pragma unroll
        for (int k = 0; k < 4; ++k) {
            const u64 j = i + (u64)k * blockDim.x;
            if (j < vectors) __stcs(dst + j, v[k]);
        }
    }
    const u64 tail = bytes % 16;
    const u64 t = global_thread_index();
    if (t < tail) {
        ((u8*)dst)[vectors * 16 + t] = ((const u8*)src)[vectors * 16 + t];
    }
}

// Contiguous copy for views that are not 16-byte aligned.
extern "C" __global__ void copy_contiguous_v1(const u8* __restrict__ src, u8* __restrict__ dst, u64 bytes) {
    for (u64 i = global_thread_index(); i < bytes; i += grid_threads()) dst[i] = src[i];
}

#define MAX_COPY_DIMS 8
struct StridedCopyParams {
    u64 n;
    u64 ndim;
    u64 shape[MAX_COPY_DIMS];
    u64 src_strides[MAX_COPY_DIMS];
    u64 dst_strides[MAX_COPY_DIMS];
};

// Element i of the row-major iteration space goes from
// sum(idx_k * src_strides[k]) to sum(idx_k * dst_strides[k]).
template <typename T>
__device__ void copy_strided_impl(const T* __restrict__ src, T* __restrict__ dst, const StridedCopyParams& p) {
    for (u64 i = global_thread_index(); i < p.n; i += grid_threads()) {
        u64 rest = i, s = 0, d = 0;
        for (int k = (int)p.ndim - 1; k >= 0; --k) {
            const u64 idx = rest % p.shape[k];
            rest /= p.shape[k];
            s += idx * p.src_strides[k];
            d += idx * p.dst_strides[k];
        }
        dst[d] = src[s];
    }
}

extern "C" __global__ void copy_strided_b8(const u8* src, u8* dst, StridedCopyParams p) { copy_strided_impl(src, dst, p); }
extern "C" __global__ void copy_strided_b16(const u16* src, u16* dst, StridedCopyParams p) { copy_strided_impl(src, dst, p); }
extern "C" __global__ void copy_strided_b32(const u32* src, u32* dst, StridedCopyParams p) { copy_strided_impl(src, dst, p); }
extern "C" __global__ void copy_strided_b64(const u64* src, u64* dst, StridedCopyParams p) { copy_strided_impl(src, dst, p); }
