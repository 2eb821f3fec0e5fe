#include "mlxn_prelude.cuh"

// The Gated DeltaNet layer around the recurrence: short causal conv1d +
// SiLU (prefill and decode), the gates g and β, and the gated RMS norm.
// All are memory-bound: each kernel reads its activations once and writes
// its outputs once, with vector accesses where the launcher found the rows
// aligned (`VEC` > 1: 16 bytes; 4 elements for gdn_gates), one element per
// access otherwise.

struct alignas(16) raw16_t { u32 w[4]; };
struct alignas(8) raw8_t { u32 w[2]; };
// Eight f32 weights beside 16-byte rows of 2-byte elements: two 16-byte loads.
struct alignas(16) raw32_t { u32 w[8]; };
template <int BYTES> struct RawOf;
template <> struct RawOf<32> { typedef raw32_t type; };
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
// sequence × VEC channels. A thread keeps its channels (and their weights)
// and strides over the token blocks of every sequence, so the weights are
// read from DRAM once per thread; inside a block it loads CONV_LOAD_GROUP
// rows at once and keeps the W − 1 rows before them in registers, so each
// x element is read from DRAM once (the W − 1 halo rows before a block are
// read again, from L2). Only the item of a sequence's first block reads its
// carried state (a block is at least W − 1 tokens long), and that item
// writes the new state after it has read the old one: so the state may be
// updated in place.
// ---------------------------------------------------------------------------

#define CONV_TOKENS_PER_THREAD 16
// Rows whose loads a thread issues together before using them: with 16
// bytes per row, 8 rows are what fits in 128 registers beside the
// accumulators the compiler keeps in flight.
#define CONV_LOAD_GROUP 8
// The register-window kernel handles W ≤ CONV_WINDOW_MAX.
#define CONV_WINDOW_MAX 4
#define CONV_THREADS 256
// Blocks of CONV_THREADS each multiprocessor must hold (caps registers at
// 128), so that the launcher's one wave of threads is resident at once.
#define CONV_MIN_BLOCKS 2

// The storage bits of a value, in the low bits of a word, and back.
__device__ __forceinline__ u32 bits_of(float v) { return __float_as_uint(v); }
__device__ __forceinline__ u32 bits_of(f16_t v) { return v.bits; }
__device__ __forceinline__ u32 bits_of(bf16_t v) { return v.bits; }
template <typename T> __device__ __forceinline__ T of_bits(u32 b);
template <> __device__ __forceinline__ float of_bits<float>(u32 b) { return __uint_as_float(b); }
template <> __device__ __forceinline__ f16_t of_bits<f16_t>(u32 b) { f16_t r; r.bits = (u16)b; return r; }
template <> __device__ __forceinline__ bf16_t of_bits<bf16_t>(u32 b) { bf16_t r; r.bits = (u16)b; return r; }

// VEC elements of one row kept as loaded (2 bytes each for F16/BF16), so
// the rows a thread has in flight cost half the registers of f32. They are
// held as 32-bit words (two 2-byte elements each), not as 2-byte elements:
// a 16-bit member would take a register of its own, and the compiler could
// no longer replace a word's two inputs by two outputs in place.
template <typename T, int VEC>
struct RawRow {
    static constexpr int BYTES = VEC * (int)sizeof(T);
    static constexpr int WORD_BYTES = BYTES < 4 ? BYTES : 4;
    // Elements per word.
    static constexpr int PER_WORD = WORD_BYTES / (int)sizeof(T);
    static constexpr int WORDS = BYTES / WORD_BYTES;
    typedef typename RawOf<BYTES>::type Raw;
    typedef typename RawOf<WORD_BYTES>::type Word;
    union Access { Raw raw; Word w[WORDS]; };
    Word w[WORDS];

    __device__ __forceinline__ void load(const T* p) {
        Access a;
        a.raw = *reinterpret_cast<const Raw*>(p);
#pragma unroll
        for (int m = 0; m < WORDS; ++m) w[m] = a.w[m];
    }
    __device__ __forceinline__ void store(T* p) const {
        Access a;
#pragma unroll
        for (int m = 0; m < WORDS; ++m) a.w[m] = w[m];
        *reinterpret_cast<Raw*>(p) = a.raw;
    }
    __device__ __forceinline__ void zero() {
#pragma unroll
        for (int m = 0; m < WORDS; ++m) w[m] = 0;
    }
    __device__ __forceinline__ float operator[](int k) const {
        return to_f32(of_bits<T>((u32)w[k / PER_WORD] >> (8 * sizeof(T) * (k % PER_WORD))));
    }
    // Word m from the PER_WORD elements it holds, as f32.
    __device__ __forceinline__ void set_word(int m, const float (&v)[PER_WORD]) {
        u32 word = 0;
#pragma unroll
        for (int q = 0; q < PER_WORD; ++q) word |= bits_of(from_f32<T>(v[q])) << (8 * sizeof(T) * q);
        w[m] = (Word)word;
    }
};

// Input of a sequence at token p (p < 0: its carried state; zeros without one).
// `xb` and `sb` point at the thread's first channel of the sequence.
template <typename T, int VEC>
__device__ __forceinline__ RawRow<T, VEC> conv_input(const T* xb, const T* sb, int p, u32 width, u32 channels) {
    RawRow<T, VEC> v;
    if (p >= 0) {
        v.load(xb + (u64)p * channels);
    } else if (sb != nullptr) {
        v.load(sb + (u64)((int)width - 1 + p) * channels);
    } else {
        v.zero();
    }
    return v;
}

// New state row r = in(T − (W − 1) + r). In place, row r is written after
// the old row r + T it may read, and rows are visited in increasing order,
// so no old row is overwritten before it is read.
template <typename T, int VEC>
__device__ void conv_write_state(const T* xb, const T* sb, T* sob, int seq_len, u32 width, u32 channels) {
    for (u32 r = 0; r + 1 < width; ++r) {
        conv_input<T, VEC>(xb, sb, seq_len - (int)(width - 1) + (int)r, width, channels)
            .store(sob + (u64)r * channels);
    }
}

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

// taps[j]: the weight of the input j tokens back (weight[c, W − 1 − j]),
// zero past the width.
struct alignas(16) ConvTaps { float w[CONV_WINDOW_MAX]; };

template <typename T, int VEC>
__device__ void ssm_conv_window_impl(const T* x, const float* weight, const float* bias, const T* state_in, T* out,
                                     T* state_out, u32 batch, u32 seq_len, u32 channels, u32 width) {
    constexpr int WMAX = CONV_WINDOW_MAX;
    constexpr int GROUP = CONV_LOAD_GROUP;
    typedef RawRow<T, VEC> Row;
    // The thread's taps and biases, parked in shared memory (each thread
    // reads only its own): held in registers beside a group of 16-byte rows
    // they would push the kernel past 128 registers. A group reads them once
    // per channel, as it computes one channel at a time.
    __shared__ ConvTaps taps_s[VEC][CONV_THREADS];
    __shared__ float bias_s[VEC][CONV_THREADS];
    const ConvWork work = conv_work(channels, VEC);
    if (!work.valid) return;
    const u32 c0 = work.c0;
    const u32 tid = threadIdx.x;
#pragma unroll
    for (int k = 0; k < VEC; ++k) {
        const float* wc = weight + (u64)(c0 + k) * width;
        ConvTaps taps;
#pragma unroll
        for (int j = 0; j < WMAX; ++j) taps.w[j] = j < (int)width ? wc[width - 1 - j] : 0.0f;
        taps_s[k][tid] = taps;
        bias_s[k][tid] = bias != nullptr ? bias[c0 + k] : 0.0f;
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

        // halo[j − 1] = in(g − j) for the group starting at token g.
        Row halo[WMAX - 1];
#pragma unroll
        for (int j = 1; j < WMAX; ++j) {
            if (j < (int)width) {
                halo[j - 1] = conv_input<T, VEC>(xb, sb, t0 - j, width, channels);
            } else {
                halo[j - 1].zero();
            }
        }
        const int t_end = t0 + CONV_TOKENS_PER_THREAD < (int)seq_len ? t0 + CONV_TOKENS_PER_THREAD : (int)seq_len;
        // Running pointers, so no per-row 64-bit offset stays live from a
        // row's load to its store.
        const T* px = xb + (u64)t0 * channels;
        T* po = ob + (u64)t0 * channels;
#pragma unroll 1
        for (int g = t0; g < t_end; g += GROUP) {
            const int n = t_end - g < GROUP ? t_end - g : GROUP;
            Row cur[GROUP];
#pragma unroll
            for (int i = 0; i < GROUP; ++i) {
                if (i < n) {
                    cur[i].load(px);
                } else {
                    cur[i].zero();
                }
                px += channels;
            }
            // One register word (two 2-byte channels, or one f32) at a time,
            // newest row first: row i is the last to read in(i), so its
            // outputs can replace its inputs in `cur`.
#pragma unroll
            for (int m = 0; m < Row::WORDS; ++m) {
                constexpr int P = Row::PER_WORD;
                // Volatile, so the compiler reloads them here instead of
                // hoisting them out of the loops into registers.
                ConvTaps taps[P];
                float bk[P];
#pragma unroll
                for (int q = 0; q < P; ++q) {
                    const volatile float* tk = taps_s[m * P + q][tid].w;
#pragma unroll
                    for (int j = 0; j < WMAX; ++j) taps[q].w[j] = tk[j];
                    bk[q] = *(const volatile float*)&bias_s[m * P + q][tid];
                }
                // The next group's halo, before its rows are overwritten.
                typename Row::Word next_halo[WMAX - 1];
#pragma unroll
                for (int j = 1; j < WMAX; ++j) next_halo[j - 1] = cur[GROUP - j].w[m];
#pragma unroll
                for (int i = GROUP - 1; i >= 0; --i) {
                    float y[P];
#pragma unroll
                    for (int q = 0; q < P; ++q) {
                        const int k = m * P + q;
                        float acc = bk[q];
                        // Oldest input first: the order of the decode kernel,
                        // so prefill and decode round alike.
#pragma unroll
                        for (int j = WMAX - 1; j >= 0; --j) {
                            if (j < (int)width) {
                                const float v = i - j >= 0 ? cur[i - j][k] : halo[j - i - 1][k];
                                acc = fmaf(taps[q].w[j], v, acc);
                            }
                        }
                        y[q] = silu(acc);
                    }
                    cur[i].set_word(m, y);
                }
#pragma unroll
                for (int j = 1; j < WMAX; ++j) halo[j - 1].w[m] = next_halo[j - 1];
            }
#pragma unroll
            for (int i = 0; i < GROUP; ++i) {
                if (i < n) cur[i].store(po);
                po += channels;
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
                const float v = conv_input<T, 1>(xb, sb, t - (int)(width - 1 - i), width, channels)[0];
                acc = fmaf(wc[i], v, acc);
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
// of `dim` elements. A group of `row_lanes` lanes (a power of two ≤ 32 the
// launcher picks, so that the group covers a row) holds a row: lane l of the
// group holds elements [(row_lanes·k + l)·VEC, +VEC) for k < CHUNKS of o and
// z in registers, so o is read once. A warp holds 32 / row_lanes rows, and
// each group ROWS rows at a time: short rows alone would leave too few
// loads in flight to cover the DRAM latency. Rows longer than
// 32·VEC·CHUNKS go to the `wide` kernel, which reads o twice (from L1).
// ---------------------------------------------------------------------------

#define NORM_THREADS 256
// Blocks of NORM_THREADS the `_vec` kernel fits per multiprocessor (caps
// registers at 64): a fuller machine holds more loads in flight, and the
// Qwen3.5 shape's blocks take fewer, fuller waves.
#define NORM_VEC_MIN_BLOCKS 4

// Sum over each aligned group of `lanes` lanes (a power of two ≤ 32).
__device__ __forceinline__ float lane_group_sum(float v, u32 lanes) {
    for (u32 off = lanes / 2; off > 0; off /= 2) v += __shfl_xor_sync(0xffffffffu, v, off);
    return v;
}

template <typename T, int VEC, int CHUNKS, int ROWS>
__device__ void rms_norm_gated_impl(const T* o, const T* z, const float* weight, T* out, u64 rows, u32 dim,
                                    float eps, u32 row_lanes) {
    const u32 sub = threadIdx.x % row_lanes;
    const u64 groups = grid_threads() / row_lanes;
    const u64 group = global_thread_index() / row_lanes;
    // `base` is the same for every lane of a warp, so all lanes reach the
    // shuffles together.
    for (u64 base = 0; base < rows; base += groups * ROWS) {
        RawRow<T, VEC> ov[ROWS][CHUNKS], zv[ROWS][CHUNKS];
        float sum_sq[ROWS];
#pragma unroll
        for (int r = 0; r < ROWS; ++r) {
            const u64 row = base + r * groups + group;
#pragma unroll
            for (int k = 0; k < CHUNKS; ++k) {
                const u32 e = (k * row_lanes + sub) * VEC;
                if (row < rows && e < dim) {
                    ov[r][k].load(o + row * dim + e);
                    zv[r][k].load(z + row * dim + e);
                } else {
                    ov[r][k].zero();
                    zv[r][k].zero();
                }
            }
        }
#pragma unroll
        for (int r = 0; r < ROWS; ++r) {
            sum_sq[r] = 0.0f;
#pragma unroll
            for (int k = 0; k < CHUNKS; ++k) {
#pragma unroll
                for (int v = 0; v < VEC; ++v) sum_sq[r] = fmaf(ov[r][k][v], ov[r][k][v], sum_sq[r]);
            }
            sum_sq[r] = lane_group_sum(sum_sq[r], row_lanes);
        }
#pragma unroll
        for (int r = 0; r < ROWS; ++r) {
            const u64 row = base + r * groups + group;
            const float inv_rms = rsqrtf(sum_sq[r] / (float)dim + eps);
#pragma unroll
            for (int k = 0; k < CHUNKS; ++k) {
                const u32 e = (k * row_lanes + sub) * VEC;
                if (row < rows && e < dim) {
                    float w[VEC], y[VEC];
                    load_vec<float, VEC>(weight + e, w);
#pragma unroll
                    for (int v = 0; v < VEC; ++v) y[v] = ov[r][k][v] * inv_rms * w[v] * silu(zv[r][k][v]);
                    store_vec<T, VEC>(out + row * dim + e, y);
                }
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
#define NORM_ARGS(T) const T *o, const T *z, const float *weight, T *out, u64 rows, u32 dim, float eps
#define NORM_PASS o, z, weight, out, rows, dim, eps

// `_vec` kernels: 16-byte accesses, 16 / sizeof(T) elements each.
#define GDN_LAYER_KERNELS(DN, T)                                                                                \
    extern "C" __global__ void __launch_bounds__(CONV_THREADS, CONV_MIN_BLOCKS)                                 \
        ssm_conv_w4_vec_##DN(CONV_ARGS(T)) {                                                                    \
        ssm_conv_window_impl<T, 16 / sizeof(T)>(CONV_PASS);                                                     \
    }                                                                                                           \
    extern "C" __global__ void __launch_bounds__(CONV_THREADS, CONV_MIN_BLOCKS) ssm_conv_w4_##DN(CONV_ARGS(T)) { \
        ssm_conv_window_impl<T, 1>(CONV_PASS);                                                                  \
    }                                                                                                           \
    extern "C" __global__ void ssm_conv_any_width_##DN(CONV_ARGS(T), u32 tokens_per_thread) {                   \
        ssm_conv_any_width_impl<T>(CONV_PASS, tokens_per_thread);                                               \
    }                                                                                                           \
    extern "C" __global__ void ssm_conv_decode_##DN(const T* x, const float* weight, const float* bias,         \
                                                    T* state, T* out, u32 batch, u32 channels, u32 width) {     \
        ssm_conv_decode_impl<T>(x, weight, bias, state, out, batch, channels, width);                           \
    }                                                                                                           \
    extern "C" __global__ void gdn_gates_vec4_##DN(const T* a, const T* b, const float* a_log,                  \
                                                   const float* dt_bias, float* g, float* beta, u64 n,          \
                                                   u32 heads) {                                                 \
        gdn_gates_impl<T, 4>(a, b, a_log, dt_bias, g, beta, n, heads);                                          \
    }                                                                                                           \
    extern "C" __global__ void gdn_gates_##DN(const T* a, const T* b, const float* a_log,                       \
                                              const float* dt_bias, float* g, float* beta, u64 n, u32 heads) {  \
        gdn_gates_impl<T, 1>(a, b, a_log, dt_bias, g, beta, n, heads);                                          \
    }                                                                                                           \
    extern "C" __global__ void __launch_bounds__(NORM_THREADS, NORM_VEC_MIN_BLOCKS)                             \
        rms_norm_gated_vec_##DN(NORM_ARGS(T), u32 row_lanes) {                                                  \
        rms_norm_gated_impl<T, 16 / sizeof(T), 1, 4>(NORM_PASS, row_lanes);                                     \
    }                                                                                                           \
    extern "C" __global__ void rms_norm_gated_vec_long_##DN(NORM_ARGS(T), u32 row_lanes) {                      \
        rms_norm_gated_impl<T, 16 / sizeof(T), 4, 1>(NORM_PASS, row_lanes);                                     \
    }                                                                                                           \
    extern "C" __global__ void rms_norm_gated_##DN(NORM_ARGS(T), u32 row_lanes) {                               \
        rms_norm_gated_impl<T, 1, 8, 1>(NORM_PASS, row_lanes);                                                  \
    }                                                                                                           \
    extern "C" __global__ void rms_norm_gated_wide_##DN(NORM_ARGS(T)) {                                         \
        rms_norm_gated_wide_impl<T>(NORM_PASS);                                                                 \
    }

GDN_LAYER_KERNELS(f32, float)
GDN_LAYER_KERNELS(f16, f16_t)
GDN_LAYER_KERNELS(bf16, bf16_t)
