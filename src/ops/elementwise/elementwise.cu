#include "mlxn_prelude.cuh"

struct AddOp { __device__ static float apply(float a, float b) { return a + b; } };
struct MulOp { __device__ static float apply(float a, float b) { return a * b; } };

// out[i] = a[i] op b[i % b_len]; b_len is n (elementwise) or a row length.
// `a` and `out` may be the same memory, so no __restrict__ on them.
template <typename Op, typename T>
__device__ void binary_impl(const T* a, const T* __restrict__ b, T* out, u64 n, u64 b_len) {
    const bool full = b_len == n;
    for (u64 i = global_thread_index(); i < n; i += grid_threads()) {
        const float y = to_f32(b[full ? i : i % b_len]);
        out[i] = from_f32<T>(Op::apply(to_f32(a[i]), y));
    }
}

template <typename T>
__device__ void scale_impl(const T* a, T* out, float factor, u64 n) {
    for (u64 i = global_thread_index(); i < n; i += grid_threads()) out[i] = from_f32<T>(to_f32(a[i]) * factor);
}

#define BINARY(NAME, OP, DN, T) \
    extern "C" __global__ void NAME##_##DN(const T* a, const T* b, T* out, u64 n, u64 b_len) { binary_impl<OP, T>(a, b, out, n, b_len); }
#define SCALE(DN, T) \
    extern "C" __global__ void scale_##DN(const T* a, T* out, float factor, u64 n) { scale_impl<T>(a, out, factor, n); }

BINARY(add, AddOp, f32, float)
BINARY(add, AddOp, f16, f16_t)
BINARY(add, AddOp, bf16, bf16_t)
BINARY(mul, MulOp, f32, float)
BINARY(mul, MulOp, f16, f16_t)
BINARY(mul, MulOp, bf16, bf16_t)
SCALE(f32, float)
SCALE(f16, f16_t)
SCALE(bf16, bf16_t)
