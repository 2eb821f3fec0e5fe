// mlx-native kernel prelude: the small set of types and helpers every kernel
// may use, so that no CUDA toolkit header is needed at run time.
#pragma once

typedef unsigned char u8;
typedef signed char i8;
typedef unsigned short u16;
typedef short i16;
typedef unsigned int u32;
typedef int i32;
typedef unsigned long long u64;
typedef long long i64;

// Storage types for 16-bit floats: distinct types so templates can tell
// them apart; arithmetic happens in f32.
struct f16_t { u16 bits; };
struct bf16_t { u16 bits; };

__device__ __forceinline__ float f16_bits_to_f32(u16 h) {
    float f;
    asm("cvt.f32.f16 %0, %1;" : "=f"(f) : "h"(h));
    return f;
}
__device__ __forceinline__ u16 f32_to_f16_bits(float f) {
    u16 h;
    asm("cvt.rn.f16.f32 %0, %1;" : "=h"(h) : "f"(f));
    return h;
}
__device__ __forceinline__ float bf16_bits_to_f32(u16 b) {
    return __uint_as_float(((u32)b) << 16);
}
// Round to nearest even, NaN stays NaN (sm_80 and newer have the instruction).
__device__ __forceinline__ u16 f32_to_bf16_bits(float f) {
    u16 b;
    asm("cvt.rn.bf16.f32 %0, %1;" : "=h"(b) : "f"(f));
    return b;
}

__device__ __forceinline__ float to_f32(float v) { return v; }
__device__ __forceinline__ float to_f32(f16_t v) { return f16_bits_to_f32(v.bits); }
__device__ __forceinline__ float to_f32(bf16_t v) { return bf16_bits_to_f32(v.bits); }

template <typename T> __device__ __forceinline__ T from_f32(float v);
template <> __device__ __forceinline__ float from_f32<float>(float v) { return v; }
template <> __device__ __forceinline__ f16_t from_f32<f16_t>(float v) { f16_t r; r.bits = f32_to_f16_bits(v); return r; }
template <> __device__ __forceinline__ bf16_t from_f32<bf16_t>(float v) { bf16_t r; r.bits = f32_to_bf16_bits(v); return r; }

__device__ __forceinline__ float warp_sum(float v) {
#pragma unroll
    for (int o = 16; o > 0; o >>= 1) v += __shfl_xor_sync(0xffffffffu, v, o);
    return v;
}
__device__ __forceinline__ float warp_max(float v) {
#pragma unroll
    for (int o = 16; o > 0; o >>= 1) v = fmaxf(v, __shfl_xor_sync(0xffffffffu, v, o));
    return v;
}

// Global index and stride of a 1-D grid-stride loop, in 64 bits.
__device__ __forceinline__ u64 global_thread_index() {
    return (u64)blockIdx.x * blockDim.x + threadIdx.x;
}
__device__ __forceinline__ u64 grid_threads() {
    return (u64)gridDim.x * blockDim.x;
}
