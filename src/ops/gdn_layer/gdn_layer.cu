#include "mlxn_prelude.cuh"

// The Gated DeltaNet layer around the recurrence: short causal conv1d +
// SiLU (prefill and decode), the gates g and β, and the gated RMS norm.
// All are memory-bound: each kernel reads its activations once and writes
// its outputs once, with 16-byte (or 8-byte) accesses where the launcher
// found the rows aligned (`VEC` > 1), one element per access otherwise.

struct alignas(16) raw16_t { u32 w[4]; };
struct alignas(8) raw8_t { u32 w[2]; };
template <int BYTES> struct RawOf;
template <> struct RawOf<16> { typedef raw16_t type; };
template <> struct RawOf<8> { typedef raw8_t type; };
template <> struct RawOf<4> { typedef u32 type; };
template <> struct RawOf<2> { typedef u16 type; };

// VEC consecutive elements as f32, in one access of VEC·sizeof(T) bytes.
template <typename T, int VEC>
__device__ __forceinline__ void load_vec(const T* p, float (&v)[VEC]) {
    typedef typename RawOf<VEC * sizeof(T)>::type Raw;
    union { Raw raw; T e[VEC]; } u;
    u.raw = *reinterpret_cast<const Raw*>(p);
#pragma unroll
    for (int k = 0; k < VEC; ++k) v[k] = to_f32(u.e[k]);
}

template <typename T, int VEC>
__device__ __forceinline__ void store_vec(T* p, const float (&v)[VEC]) {
    typedef typename RawOf<VEC * sizeof(T)>::type Raw;
    union { Raw raw; T e[VEC]; } u;
#pragma unroll
    for (int k = 0; k < VEC; ++k) u.e[k] = from_f32<T>(v[k]);
    *reinterpret_cast<Raw*>(p) = u.raw;
}

// x · sigmoid(x) with the hardware exp2 and reciprocal: these kernels move
// 2 to 4 bytes per element, so the precise expf and IEEE division would
// make them issue-bound. Relative error ≈ (2 + |x|) · 2^-23; for x < −87
// the exp overflows (or its reciprocal flushes) and the result is −0, the
// limit.
__device__ __forceinline__ float silu(float x) { return __fdividef(x, 1.0f + __expf(-x)); }

// ---------------------------------------------------------------------------
// ssm_conv: y[t, c] = silu(bias[c] + Σ_{j<W} weight[c, W−1−j] · in(t − j, c)),
// with in(p) = x[p] for p ≥ 0 and the carried state row W − 1 + p for p < 0.
//
// Work items are blocks of CONV_TOKENS_PER_THREAD consecutive tokens of one
// sequence × VEC channels. A thread keeps its channels (and their weights,
// in registers) and strides over the token blocks of every sequence, so the
// weights are read once per thread; inside a block it walks the tokens with
// the last W inputs in registers, so each x element is read from DRAM once
// (the W − 1 halo rows before a block are read again, from L2). Only the
// item of a sequence's first block reads its carried state (a block is at
// least W − 1 tokens long), and that item writes the new state after it
// has read the old one: so the state may be updated in place.
// ---------------------------------------------------------------------------

#define CONV_TOKENS_PER_THREAD 16
// Tokens whose loads a thread issues together before using them.
#define CONV_LOAD_GROUP 16
// The register-window kernel handles W ≤ CONV_WINDOW_MAX.
#define CONV_WINDOW_MAX 4
#define CONV_THREADS 256
// Channels per thread in the vectorized kernel: 16-byte F32 or 8-byte
// F16/BF16 accesses. Eight 2-byte channels (16-byte accesses) with 16 rows
// in flight do not fit in 128 registers; at 8 bytes per access the BF16
// kernel is bound by the number of requests in flight, not by bytes (on an
// H200 it reaches about 0.57× the copy bandwidth, F32 about 0.85×).
#define CONV_VEC 4
// Blocks of CONV_THREADS each multiprocessor must hold (caps registers at
// 85), so that the launcher's one wave of threads is resident at once.
#define CONV_MIN_BLOCKS 2

// Input of a sequence at token p (p < 0: its carried state; zeros without one).
// `xb` and `sb` point at the thread's first channel of the sequence.
template <typename T, int VEC>
__device__ __forceinline__ void conv_input(const T* xb, const T* sb, int p, u32 width, u32 channels,
                                           float (&v)[VEC]) {
    if (p >= 0) {
        load_vec<T, VEC>(xb + (u64)p * channels, v);
    } else if (sb != nullptr) {
        load_vec<T, VEC>(sb + (u64)((int)width - 1 + p) * channels, v);
    } else {
#pragma unroll
        for (int k = 0; k < VEC; ++k) v[k] = 0.0f;
    }
}

// New state row r = in(T − (W − 1) + r). In place, row r is written after
// the old row r + T it may read, and rows are visited in increasing order,
// so no old row is overwritten before it is read.
template <typename T, int VEC>
__device__ void conv_write_state(const T* xb, const T* sb, T* sob, int seq_len, u32 width, u32 channels) {
    for (u32 r = 0; r + 1 < width; ++r) {
        float v[VEC];
        conv_input<T, VEC>(xb, sb, seq_len - (int)(width - 1) + (int)r, width, channels, v);
        store_vec<T, VEC>(sob + (u64)r * channels, v);
    }
}

// VEC elements of one row kept as loaded (2 bytes each for F16/BF16), so
// the rows a thread has in flight cost half the registers of f32.
template <typename T, int VEC>
struct RawRow {
    typedef typename RawOf<VEC * sizeof(T)>::type Raw;
    union { Raw raw; T e[VEC]; } u;
    __device__ __forceinline__ void load(const T* p) { u.raw = *reinterpret_cast<const Raw*>(p); }
    __device__ __forceinline__ float operator[](int k) const { return to_f32(u.e[k]); }
};

// Thread `idx` owns channel group idx % vecs and visits items idx / vecs,
// + lanes, + 2·lanes, … of the batch × blocks token blocks.
struct ConvWork {
    u32 c0, first_item, lanes;
    bool valid;
};

__device__ __forceinline__ ConvWork conv_work(u32 channels, u32 vec) {
    ConvWork w;
    const u32 vecs = channels / vec;
    const u64 idx = global_thread_index();
    w.c0 = (u32)(idx % vecs) * vec;
    w.first_item = (u32)(idx / vecs);
    w.lanes = (u32)(grid_threads() / vecs);
    w.valid = idx < (u64)w.lanes * vecs;
    return w;
}

template <typename T, int VEC>
__device__ void ssm_conv_window_impl(const T* x, const float* weight, const float* bias, const T* state_in, T* out,
                                     T* state_out, u32 batch, u32 seq_len, u32 channels, u32 width) {
    constexpr int WMAX = CONV_WINDOW_MAX;
    const ConvWork work = conv_work(channels, VEC);
    if (!work.valid) return;
    const u32 c0 = work.c0;

    // wl[j]: the weight of the input j tokens back (weight[c, W − 1 − j]).
    float wl[WMAX][VEC], bv[VEC];
    const bool w4 = width == WMAX && ((u64)weight & 15) == 0;
#pragma unroll
    for (int k = 0; k < VEC; ++k) {
        const float* wc = weight + (u64)(c0 + k) * width;
        if (w4) {
            float w[WMAX];
            load_vec<float, WMAX>(wc, w);
#pragma unroll
            for (int j = 0; j < WMAX; ++j) wl[j][k] = w[WMAX - 1 - j];
        } else {
#pragma unroll
            for (int j = 0; j < WMAX; ++j) wl[j][k] = j < (int)width ? wc[width - 1 - j] : 0.0f;
        }
        bv[k] = bias != nullptr ? bias[c0 + k] : 0.0f;
    }

    const u32 blocks = (seq_len + CONV_TOKENS_PER_THREAD - 1) / CONV_TOKENS_PER_THREAD;
    for (u32 item = work.first_item; item < batch * blocks; item += work.lanes) {
        const u32 b = item / blocks;
        const int t0 = (int)((item % blocks) * CONV_TOKENS_PER_THREAD);
        const u64 seq_off = (u64)b * seq_len * channels + c0;
        const T* xb = x + seq_off;
        T* ob = out + seq_off;
        const u64 state_off = (u64)b * (width - 1) * channels + c0;
        const T* sb = state_in != nullptr ? state_in + state_off : nullptr;

        // win[j] = in(t − j); win[0] is the current token.
        float win[WMAX][VEC];
#pragma unroll
        for (int j = 1; j < WMAX; ++j) {
            if (j < (int)width) {
                conv_input<T, VEC>(xb, sb, t0 - j, width, channels, win[j]);
            } else {
#pragma unroll
                for (int k = 0; k < VEC; ++k) win[j][k] = 0.0f;
            }
        }
        const int t_end = t0 + CONV_TOKENS_PER_THREAD < (int)seq_len ? t0 + CONV_TOKENS_PER_THREAD : (int)seq_len;
        // Running pointers, so no per-row 64-bit offset stays live from a
        // row's load to its store.
        const T* px = xb + (u64)t0 * channels;
        T* po = ob + (u64)t0 * channels;
#pragma unroll 1
        for (int g = t0; g < t_end; g += CONV_LOAD_GROUP) {
            RawRow<T, VEC> cur[CONV_LOAD_GROUP];
#pragma unroll
            for (int i = 0; i < CONV_LOAD_GROUP; ++i) {
                if (g + i < t_end) cur[i].load(px);
                px += channels;
            }
#pragma unroll
            for (int i = 0; i < CONV_LOAD_GROUP; ++i) {
                if (g + i < t_end) {
#pragma unroll
                    for (int k = 0; k < VEC; ++k) win[0][k] = cur[i][k];
                    float y[VEC];
#pragma unroll
                    for (int k = 0; k < VEC; ++k) {
                        float acc = bv[k];
                        // Oldest input first: the order of the decode kernel,
                        // so prefill and decode round alike.
#pragma unroll
                        for (int j = WMAX - 1; j >= 0; --j) {
                            if (j < (int)width) acc = fmaf(wl[j][k], win[j][k], acc);
                        }
                        y[k] = silu(acc);
                    }
                    store_vec<T, VEC>(po, y);
                    po += channels;
#pragma unroll
                    for (int j = WMAX - 1; j > 0; --j) {
#pragma unroll
                        for (int k = 0; k < VEC; ++k) win[j][k] = win[j - 1][k];
                    }
                }
            }
        }
        if (t0 == 0 && state_out != nullptr) {
            conv_write_state<T, VEC>(xb, sb, state_out + state_off, (int)seq_len, width, channels);
        }
    }
}

// Any width: one channel per thread, the W taps read per output (from L1 /
// L2 after the first touch); blocks of max(16, W − 1) tokens keep the
// state reads in the first block of each sequence.
template <typename T>
__device__ void ssm_conv_any_width_impl(const T* x, const float* weight, const float* bias, const T* state_in, T* out,
                                        T* state_out, u32 batch, u32 seq_len, u32 channels, u32 width,
                                        u32 tokens_per_thread) {
    const ConvWork work = conv_work(channels, 1);
    if (!work.valid) return;
    const u32 c = work.c0;
    const float* wc = weight + (u64)c * width;
    const float b0 = bias != nullptr ? bias[c] : 0.0f;
    const u32 blocks = (seq_len + tokens_per_thread - 1) / tokens_per_thread;
    for (u32 item = work.first_item; item < batch * blocks; item += work.lanes) {
        const u32 b = item / blocks;
        const u32 t0 = (item % blocks) * tokens_per_thread;
        const u64 seq_off = (u64)b * seq_len * channels + c;
        const T* xb = x + seq_off;
        const u64 state_off = (u64)b * (width - 1) * channels + c;
        const T* sb = state_in != nullptr ? state_in + state_off : nullptr;
        const int t_end = (int)(t0 + tokens_per_thread < seq_len ? t0 + tokens_per_thread : seq_len);
        for (int t = (int)t0; t < t_end; ++t) {
            float acc = b0;
            for (u32 i = 0; i < width; ++i) {  // oldest input first, as in decode
                float v[1];
                conv_input<T, 1>(xb, sb, t - (int)(width - 1 - i), width, channels, v);
                acc = fmaf(wc[i], v[0], acc);
            }
            out[seq_off + (u64)t * channels] = from_f32<T>(silu(acc));
        }
        if (t0 == 0 && state_out != nullptr) {
            conv_write_state<T, 1>(xb, sb, state_out + state_off, (int)seq_len, width, channels);
        }
    }
}

// One token per sequence; a thread owns one channel of one sequence, so
// the in-place shift of its state column races with nothing.
template <typename T>
__device__ void ssm_conv_decode_impl(const T* x, const float* weight, const float* bias, T* state, T* out, u32 batch,
                                     u32 channels, u32 width) {
    const u64 idx = global_thread_index();
    if (idx >= (u64)batch * channels) return;
    const u32 c = (u32)(idx % channels);
    T* s = state + (idx / channels) * (width - 1) * channels + c;
    const float* wc = weight + (u64)c * width;
    float acc = bias != nullptr ? bias[c] : 0.0f;
    for (u32 i = 0; i + 1 < width; ++i) acc = fmaf(wc[i], to_f32(s[(u64)i * channels]), acc);
    const T xv = x[idx];
    acc = fmaf(wc[width - 1], to_f32(xv), acc);
    out[idx] = from_f32<T>(silu(acc));
    for (u32 i = 0; i + 2 < width; ++i) s[(u64)i * channels] = s[(u64)(i + 1) * channels];
    s[(u64)(width - 2) * channels] = xv;
}

// ---------------------------------------------------------------------------
// gdn_gates: g = −exp(A_log[h]) · softplus(a + dt_bias[h]), β = sigmoid(b),
// VEC consecutive elements per step of a grid-stride loop.
// ---------------------------------------------------------------------------

// PyTorch's softplus threshold, as the reference's SOFTPLUS_THRESHOLD.
#define GATES_SOFTPLUS_THRESHOLD 20.0f

template <typename T, int VEC>
__device__ void gdn_gates_impl(const T* a, const T* b, const float* a_log, const float* dt_bias, float* g,
                               float* beta, u64 n, u32 heads) {
    const u64 stride = grid_threads() * VEC;
    // The head of element i, kept up to date without a 64-bit division per step.
    const u32 stride_heads = (u32)(stride % heads);
    u32 h_first = (u32)((global_thread_index() * VEC) % heads);
    for (u64 i = global_thread_index() * VEC; i < n; i += stride) {
        float av[VEC], bv[VEC], gv[VEC], betav[VEC];
        load_vec<T, VEC>(a + i, av);
        load_vec<T, VEC>(b + i, bv);
        u32 h = h_first;
        h_first += stride_heads;
        if (h_first >= heads) h_first -= heads;
#pragma unroll
        for (int k = 0; k < VEC; ++k) {
            const float s = av[k] + dt_bias[h];
            const float softplus = s > GATES_SOFTPLUS_THRESHOLD ? s : log1pf(expf(s));
            gv[k] = -expf(a_log[h]) * softplus;
            betav[k] = 1.0f / (1.0f + expf(-bv[k]));
            h = h + 1 == heads ? 0 : h + 1;
        }
        store_vec<float, VEC>(g + i, gv);
        store_vec<float, VEC>(beta + i, betav);
    }
}

// ---------------------------------------------------------------------------
// rms_norm_gated: y = o · rsqrt(mean(o²) + eps) · weight · silu(z) per row
// of `dim` elements. One warp per row: lane l holds elements
// [(32k + l)·VEC, +VEC) for k < CHUNKS of o and z in registers, so o is read
// once and the z loads are in flight during the reduction. Rows longer than
// 32·VEC·CHUNKS go to the `wide` kernel, which reads o twice (from L1).
// ---------------------------------------------------------------------------

template <typename T, int VEC, int CHUNKS>
__device__ void rms_norm_gated_impl(const T* o, const T* z, const float* weight, T* out, u64 rows, u32 dim,
                                    float eps) {
    const u32 lane = threadIdx.x % 32;
    const u64 warps = grid_threads() / 32;
    for (u64 r = global_thread_index() / 32; r < rows; r += warps) {
        const u64 row = r * dim;
        float ov[CHUNKS][VEC], zv[CHUNKS][VEC];
        float sum_sq = 0.0f;
#pragma unroll
        for (int k = 0; k < CHUNKS; ++k) {
            const u32 e = (k * 32 + lane) * VEC;
            if (e < dim) {
                load_vec<T, VEC>(o + row + e, ov[k]);
                load_vec<T, VEC>(z + row + e, zv[k]);
#pragma unroll
                for (int v = 0; v < VEC; ++v) sum_sq = fmaf(ov[k][v], ov[k][v], sum_sq);
            }
        }
        const float inv_rms = rsqrtf(warp_sum(sum_sq) / (float)dim + eps);
#pragma unroll
        for (int k = 0; k < CHUNKS; ++k) {
            const u32 e = (k * 32 + lane) * VEC;
            if (e < dim) {
                float w[VEC], y[VEC];
                load_vec<float, VEC>(weight + e, w);
#pragma unroll
                for (int v = 0; v < VEC; ++v) y[v] = ov[k][v] * inv_rms * w[v] * silu(zv[k][v]);
                store_vec<T, VEC>(out + row + e, y);
            }
        }
    }
}

template <typename T>
__device__ void rms_norm_gated_wide_impl(const T* o, const T* z, const float* weight, T* out, u64 rows, u32 dim,
                                         float eps) {
    const u32 lane = threadIdx.x % 32;
    const u64 warps = grid_threads() / 32;
    for (u64 r = global_thread_index() / 32; r < rows; r += warps) {
        const u64 row = r * dim;
        float sum_sq = 0.0f;
        for (u32 e = lane; e < dim; e += 32) {
            const float v = to_f32(o[row + e]);
            sum_sq = fmaf(v, v, sum_sq);
        }
        const float inv_rms = rsqrtf(warp_sum(sum_sq) / (float)dim + eps);
        for (u32 e = lane; e < dim; e += 32) {
            const float y = to_f32(o[row + e]) * inv_rms * weight[e] * silu(to_f32(z[row + e]));
            out[row + e] = from_f32<T>(y);
        }
    }
}

// ---------------------------------------------------------------------------
// Entry points: one per variant and dtype.
// ---------------------------------------------------------------------------

#define CONV_ARGS(T) const T *x, const float *weight, const float *bias, const T *state_in, T *out, T *state_out, \
                     u32 batch, u32 seq_len, u32 channels, u32 width
#define CONV_PASS x, weight, bias, state_in, out, state_out, batch, seq_len, channels, width

#define GDN_LAYER_KERNELS(DN, T)                                                                               \
    extern "C" __global__ void __launch_bounds__(CONV_THREADS, CONV_MIN_BLOCKS) ssm_conv_w4_vec_##DN(CONV_ARGS(T)) {        \
        ssm_conv_window_impl<T, CONV_VEC>(CONV_PASS);                                                          \
    }                                                                                                          \
    extern "C" __global__ void __launch_bounds__(CONV_THREADS, CONV_MIN_BLOCKS) ssm_conv_w4_##DN(CONV_ARGS(T)) {             \
        ssm_conv_window_impl<T, 1>(CONV_PASS);                                                                 \
    }                                                                                                          \
    extern "C" __global__ void ssm_conv_any_width_##DN(CONV_ARGS(T), u32 tokens_per_thread) {                  \
        ssm_conv_any_width_impl<T>(CONV_PASS, tokens_per_thread);                                              \
    }                                                                                                          \
    extern "C" __global__ void ssm_conv_decode_##DN(const T* x, const float* weight, const float* bias,        \
                                                    T* state, T* out, u32 batch, u32 channels, u32 width) {    \
        ssm_conv_decode_impl<T>(x, weight, bias, state, out, batch, channels, width);                          \
    }                                                                                                          \
    extern "C" __global__ void gdn_gates_vec4_##DN(const T* a, const T* b, const float* a_log,                 \
                                                   const float* dt_bias, float* g, float* beta, u64 n,         \
                                                   u32 heads) {                                                \
        gdn_gates_impl<T, 4>(a, b, a_log, dt_bias, g, beta, n, heads);                                         \
    }                                                                                                          \
    extern "C" __global__ void gdn_gates_##DN(const T* a, const T* b, const float* a_log,                      \
                                              const float* dt_bias, float* g, float* beta, u64 n, u32 heads) { \
        gdn_gates_impl<T, 1>(a, b, a_log, dt_bias, g, beta, n, heads);                                         \
    }                                                                                                          \
    extern "C" __global__ void rms_norm_gated_vec4_##DN(const T* o, const T* z, const float* weight, T* out,   \
                                                        u64 rows, u32 dim, float eps) {                        \
        rms_norm_gated_impl<T, 4, 4>(o, z, weight, out, rows, dim, eps);                                       \
    }                                                                                                          \
    extern "C" __global__ void rms_norm_gated_##DN(const T* o, const T* z, const float* weight, T* out,        \
                                                   u64 rows, u32 dim, float eps) {                             \
        rms_norm_gated_impl<T, 1, 8>(o, z, weight, out, rows, dim, eps);                                       \
    }                                                                                                          \
    extern "C" __global__ void rms_norm_gated_wide_##DN(const T* o, const T* z, const float* weight, T* out,   \
                                                        u64 rows, u32 dim, float eps) {                        \
        rms_norm_gated_wide_impl<T>(o, z, weight, out, rows, dim, eps);                                        \
    }

GDN_LAYER_KERNELS(f32, float)
GDN_LAYER_KERNELS(f16, f16_t)
GDN_LAYER_KERNELS(bf16, bf16_t)
