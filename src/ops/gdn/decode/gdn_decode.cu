// Gated DeltaNet recurrent decode: a few tokens per sequence, the state
// [B, H_v, V, K] (f32) updated in place. Each state row v is independent
// (S_v ← e^g S_v; δ_v = β(v_v − S_v·k); S_v += δ_v k; o_v = scale·S_v·q), so a
// warp owns GDN_DECODE_ROWS rows, each lane K/32 consecutive columns of them,
// kept in registers across the tokens: the state is read and written once.
// The state's loads start before the previous kernel on the stream is done
// (see wait_previous_kernel in the prelude), which hides their latency behind
// that kernel's tail: a decode step is mostly latency.
#include "mlxn_prelude.cuh"

#define GDN_DECODE_ROWS 4
#define GDN_DECODE_WARPS 4

// Mirrored by `Dims` in decode/cuda.rs.
struct GdnDecodeDims {
    i32 num_tokens;  // tokens per sequence
    i32 num_key_heads;
    i32 num_value_heads;
    i32 value_dim;
    float scale;
    i32 l2_norm;
    i32 reserved0;
    i32 reserved1;
};

template <int N>
__device__ __forceinline__ void gdn_load_f32(float (&dst)[N], const float* src) {
    if constexpr (N % 4 == 0) {
#pragma unroll
        for (int i = 0; i < N; i += 4) {
            const float4 x = *reinterpret_cast<const float4*>(src + i);
            dst[i] = x.x; dst[i + 1] = x.y; dst[i + 2] = x.z; dst[i + 3] = x.w;
        }
    } else {
#pragma unroll
        for (int i = 0; i < N; i += 2) {
            const float2 x = *reinterpret_cast<const float2*>(src + i);
            dst[i] = x.x; dst[i + 1] = x.y;
        }
    }
}

template <int N>
__device__ __forceinline__ void gdn_store_f32(float* dst, const float (&src)[N]) {
    if constexpr (N % 4 == 0) {
#pragma unroll
        for (int i = 0; i < N; i += 4) *reinterpret_cast<float4*>(dst + i) = make_float4(src[i], src[i + 1], src[i + 2], src[i + 3]);
    } else {
#pragma unroll
        for (int i = 0; i < N; i += 2) *reinterpret_cast<float2*>(dst + i) = make_float2(src[i], src[i + 1]);
    }
}

// One block of GDN_DECODE_WARPS warps per (row group, value head, sequence).
template <typename T, int K>
__device__ void gdn_decode(const T* __restrict__ q, const T* __restrict__ k, const T* __restrict__ v,
                           const float* __restrict__ g, const float* __restrict__ beta, float* __restrict__ state,
                           T* __restrict__ o, const GdnDecodeDims& d) {
    constexpr int E = K / 32;
    const int warp = threadIdx.x >> 5, lane = threadIdx.x & 31;
    const int h = blockIdx.y, b = blockIdx.z;
    const int Hv = d.num_value_heads, Hk = d.num_key_heads, V = d.value_dim;
    const int kh = h / (Hv / Hk);
    const int row0 = (blockIdx.x * GDN_DECODE_WARPS + warp) * GDN_DECODE_ROWS;
    float* s_rows = state + (((u64)b * Hv + h) * V + row0) * K + lane * E;

    float s[GDN_DECODE_ROWS][E];
#pragma unroll
    for (int r = 0; r < GDN_DECODE_ROWS; ++r) gdn_load_f32<E>(s[r], s_rows + (u64)r * K);
    // Only the state (ReadEarly in the launcher) is read before this point:
    // the previous kernel may be producing this step's q, k, v, g and β.
    wait_previous_kernel();
    release_next_kernel();

    for (int tau = 0; tau < d.num_tokens; ++tau) {
        const u64 tok = (u64)b * d.num_tokens + tau;
        const T* qp = q + (tok * Hk + kh) * K + lane * E;
        const T* kp = k + (tok * Hk + kh) * K + lane * E;
        float qv[E], kv[E];
        float qq = 0.f, kk = 0.f, kq = 0.f;
#pragma unroll
        for (int e = 0; e < E; ++e) {
            qv[e] = to_f32(qp[e]);
            kv[e] = to_f32(kp[e]);
            qq += qv[e] * qv[e];
            kk += kv[e] * kv[e];
            kq += kv[e] * qv[e];
        }
        const u64 gate = tok * Hv + h;
        const float decay = expf(g[gate]), bt = beta[gate];
        const T* vp = v + gate * V + row0;
        float vr[GDN_DECODE_ROWS];
#pragma unroll
        for (int r = 0; r < GDN_DECODE_ROWS; ++r) vr[r] = to_f32(vp[r]);
        // With S the decayed state, S' = S + δ kᵀ gives S'q = Sq + δ (k·q):
        // S k, S q, k·k, q·q and k·q are reduced together, in one round.
        float sk[GDN_DECODE_ROWS], sq[GDN_DECODE_ROWS];
#pragma unroll
        for (int r = 0; r < GDN_DECODE_ROWS; ++r) {
            float ak = 0.f, aq = 0.f;
#pragma unroll
            for (int e = 0; e < E; ++e) {
                s[r][e] *= decay;
                ak += s[r][e] * kv[e];
                aq += s[r][e] * qv[e];
            }
            sk[r] = ak;
            sq[r] = aq;
        }
#pragma unroll
        for (int off = 16; off > 0; off >>= 1) {
#pragma unroll
            for (int r = 0; r < GDN_DECODE_ROWS; ++r) {
                sk[r] += __shfl_xor_sync(0xffffffffu, sk[r], off);
                sq[r] += __shfl_xor_sync(0xffffffffu, sq[r], off);
            }
            kq += __shfl_xor_sync(0xffffffffu, kq, off);
            if (d.l2_norm) {
                qq += __shfl_xor_sync(0xffffffffu, qq, off);
                kk += __shfl_xor_sync(0xffffffffu, kk, off);
            }
        }
        float qf = d.scale, kf = 1.f;
        if (d.l2_norm) {
            qf *= 1.f / sqrtf(qq + 1e-6f);
            kf = 1.f / sqrtf(kk + 1e-6f);
        }
        float mine = 0.f;
#pragma unroll
        for (int r = 0; r < GDN_DECODE_ROWS; ++r) {
            const float delta = bt * (vr[r] - kf * sk[r]) * kf;  // δ·(k scale) applied to the raw k
#pragma unroll
            for (int e = 0; e < E; ++e) s[r][e] += delta * kv[e];
            if (lane == r) mine = sq[r] + delta * kq;
        }
        if (lane < GDN_DECODE_ROWS) o[gate * V + row0 + lane] = from_f32<T>(qf * mine);
    }
#pragma unroll
    for (int r = 0; r < GDN_DECODE_ROWS; ++r) gdn_store_f32<E>(s_rows + (u64)r * K, s[r]);
}

#define GDN_DECODE(KD, DN, T)                                                                                       \
    extern "C" __global__ void __launch_bounds__(GDN_DECODE_WARPS * 32) gdn_decode_k##KD##_##DN(                    \
        const T* q, const T* k, const T* v, const float* g, const float* beta, float* state, T* o,                  \
        GdnDecodeDims d) {                                                                                           \
        gdn_decode<T, KD>(q, k, v, g, beta, state, o, d);                                                            \
    }

GDN_DECODE(64, bf16, bf16_t)
GDN_DECODE(128, bf16, bf16_t)
GDN_DECODE(256, bf16, bf16_t)
GDN_DECODE(64, f32, float)
GDN_DECODE(128, f32, float)
GDN_DECODE(256, f32, float)
