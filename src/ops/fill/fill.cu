#include "mlxn_prelude.cuh"

// Fills n elements of size sizeof(T) with one bit pattern.
template <typename T>
__device__ void fill_impl(T* out, T value, u64 n) {
    for (u64 i = global_thread_index(); i < n; i += grid_threads()) out[i] = value;
}

extern "C" __global__ void fill_b8(u8* out, u8 value, u64 n) { fill_impl(out, value, n); }
extern "C" __global__ void fill_b16(u16* out, u16 value, u64 n) { fill_impl(out, value, n); }
extern "C" __global__ void fill_b32(u32* out, u32 value, u64 n) { fill_impl(out, value, n); }
extern "C" __global__ void fill_b64(u64* out, u64 value, u64 n) { fill_impl(out, value, n); }
