#include "mlxn_prelude.cuh"

// Reads `bytes` (a multiple of 16) and writes one word per block, so the
// time is the read bandwidth. XOR keeps the loads live without FP cost.
extern "C" __global__ void bench_read_only(const uint4* __restrict__ src, u32* __restrict__ out, u64 bytes) {
    const u64 vectors = bytes / 16;
    u32 acc = 0;
    const u64 per_block = (u64)blockDim.x * 4;
    for (u64 base = (u64)blockIdx.x * per_block; base < vectors; base += (u64)gridDim.x * per_block) {
        const u64 i = base + threadIdx.x;
        uint4 v[4];
#pragma unroll
        for (int k = 0; k < 4; ++k) {
            const u64 j = i + (u64)k * blockDim.x;
            v[k] = j < vectors ? __ldcs(src + j) : make_uint4(0, 0, 0, 0);
        }
#pragma unroll
        for (int k = 0; k < 4; ++k) acc ^= v[k].x ^ v[k].y ^ v[k].z ^ v[k].w;
    }
    for (int o = 16; o > 0; o >>= 1) acc ^= __shfl_xor_sync(0xffffffffu, acc, o);
    if ((threadIdx.x & 31) == 0) atomicXor(out + blockIdx.x, acc);
}

// Five arguments and almost no work: measures the cost of a dispatch.
extern "C" __global__ void bench_tiny5(const float* a, const float* b, float* c, u64 n, float x) {
    const u64 i = global_thread_index();
    if (i < n) c[i] = a[i] * x + b[i];
}
