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

// x · sigmoid(x) with the hardware exp2 and reciprocal, flushing subnormal
// results (as `--use_fast_math` would): these kernels move 2 to 4 bytes per
// element, so the precise expf and IEEE division would make them
// issue-bound, and the non-flushing approximations cost three more
// instructions per element for their subnormal cases. Relative error
// ≈ (2 + |x|) · 2^-23; for x > 87 the exp flushes to 0 and the result is x;
// for x < −87 the exp overflows (or its reciprocal flushes) and the result
// is −0, the limit.
__device__ __forceinline__ float silu(float x) {
    float e, r;
    asm("ex2.approx.ftz.f32 %0, %1;" : "=f"(e) : "f"(x * -1.4426950408889634f));
    asm("rcp.approx.ftz.f32 %0, %1;" : "=f"(r) : "f"(1.0f + e));
    return x * r;
}

// Element q of a 32-bit word of 4 / sizeof(T) elements, as f32. A BF16
// element is the high half of an f32, so it needs one shift or mask, not
// an extraction and a shift.
template <typename T> __device__ __forceinline__ float word_elem_to_f32(u32 w, int q);
template <> __device__ __forceinline__ float word_elem_to_f32<float>(u32 w, int) { return __uint_as_float(w); }
template <> __device__ __forceinline__ float word_elem_to_f32<f16_t>(u32 w, int q) {
    return f16_bits_to_f32((u16)(w >> (16 * q)));
}
template <> __device__ __forceinline__ float word_elem_to_f32<bf16_t>(u32 w, int q) {
    return __uint_as_float(q == 0 ? w << 16 : w & 0xffff0000u);
}

// VEC elements of one row kept as loaded (2 bytes each for F16/BF16), so
// the rows a thread has in flight cost half the registers of f32. They are
// held as 32-bit words (two 2-byte elements each), not as 2-byte elements:
// a 16-bit member would take a register of its own.
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
        return word_elem_to_f32<T>((u32)w[k / PER_WORD], k % PER_WORD);
    }
};

// ---------------------------------------------------------------------------
// ssm_conv: y[t, c] = silu(bias[c] + Σ_{j<W} weight[c, W−1−j] · in(t − j, c)),
// with in(p) = x[p] for p ≥ 0 and the carried state row W − 1 + p for p < 0.
//
// The tile kernel (W ≤ CONV_WINDOW_MAX, rows of whole 16-byte pieces from
// 16-byte-aligned addresses, sm_80): a block takes CONV_TILE_CHANNELS
// channels of ConvTile<T>::ROWS consecutive tokens of one sequence. Its
// threads copy those rows, and the W − 1 rows before them, into shared
// memory with 16-byte cp.async, every copy issued at once in CONV_GROUPS
// commit groups of about CONV_GROUP_BYTES, and compute each group of rows
// as soon as it has landed, while the later groups are still in flight. A
// thread computes CONV_VEC channels of 1 / CONV_TILE_ROW_SPLIT of a group's
// rows. Measured on an H200 (PERF.md): 0.83× of the copy bandwidth for BF16
// and 0.93× for F32, against 0.79–0.80× and 0.88× for a producer warp
// streaming the rows through a ring of bulk copies: the blocks hold no
// pipeline bookkeeping, so four of them fit on a multiprocessor, and their
// copies are in flight all at once.
//
// Only a sequence's first block reads its carried state, and it writes the
// new state once all of its copies have landed: so the state may be
// updated in place.
//
// The any-width kernel (other widths, rows not aligned for 16-byte copies,
// GPUs before sm_80): one channel per thread, the W taps read per output.
// ---------------------------------------------------------------------------

// The tile kernel handles W ≤ CONV_WINDOW_MAX.
#define CONV_WINDOW_MAX 4
#define CONV_VEC 4
#define CONV_THREADS 256
// Threads across a tile's channels; the CONV_TILE_ROW_SPLIT rows of them
// split each group's rows.
#define CONV_TILE_TX 128
#define CONV_TILE_ROW_SPLIT (CONV_THREADS / CONV_TILE_TX)
#define CONV_TILE_CHANNELS (CONV_TILE_TX * CONV_VEC)
// One commit group of copies: 16 rows of BF16, 8 of F32.
#define CONV_GROUP_BYTES 16384
#define CONV_GROUPS 2
// Blocks each multiprocessor must hold (caps registers at 64).
#define CONV_MIN_BLOCKS 4

// Input row of a sequence at token p ≥ 1 − W (p < 0: its carried state),
// or null for zeros (without a state). `xb` and `sb` point at the thread's
// first channel of the sequence.
template <typename T>
__device__ __forceinline__ const T* conv_row(const T* xb, const T* sb, int p, u32 width, u32 channels) {
    if (p >= 0) return xb + (u64)p * channels;
    if (sb != nullptr) return sb + (u64)((int)width - 1 + p) * channels;
    return nullptr;
}

template <typename T, int VEC>
__device__ __forceinline__ RawRow<T, VEC> conv_input(const T* xb, const T* sb, int p, u32 width, u32 channels) {
    RawRow<T, VEC> v;
    const T* row = conv_row(xb, sb, p, width, channels);
    if (row != nullptr) {
        v.load(row);
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

#if MLXN_CUDA_ARCH >= 800
template <typename T>
struct ConvTile {
    static constexpr int ROW_BYTES = CONV_TILE_CHANNELS * (int)sizeof(T);
    // 16-byte copies per row, and channels per copy.
    static constexpr int PIECES = ROW_BYTES / 16;
    static constexpr int PIECE_CHANNELS = 16 / (int)sizeof(T);
    static constexpr int GROUP_ROWS = CONV_GROUP_BYTES / ROW_BYTES;
    static constexpr int ROWS = CONV_GROUPS * GROUP_ROWS;
    static constexpr int HALO = CONV_WINDOW_MAX - 1;
    static_assert(GROUP_ROWS % CONV_TILE_ROW_SPLIT == 0, "a group's rows split evenly");
};

// Waits until at most `n` (< N + 1) of this thread's commit groups are in flight.
template <int N>
__device__ __forceinline__ void cp_async_wait_at_most(int n) {
    if (n >= N) {
        cp_async_wait<N>();
    } else if constexpr (N > 0) {
        cp_async_wait_at_most<N - 1>(n);
    }
}

// taps[k][j] = weight[c + k, W − 1 − j] (zero for j ≥ W), b[k] = bias[c + k].
// At W = CONV_WINDOW_MAX a channel's taps are one 16-byte load: as scalar
// loads at a lane stride of 64 bytes (a thread's CONV_VEC channels), each
// touching 16 cache lines, they made the tile kernel 30 % slower (PERF.md).
template <bool FULL>
__device__ __forceinline__ void conv_load_taps(const float* weight, const float* bias, u32 c, u32 width,
                                               float (&taps)[CONV_VEC][CONV_WINDOW_MAX], float (&b)[CONV_VEC]) {
    const bool whole = FULL && (u64)weight % 16 == 0;
#pragma unroll
    for (int k = 0; k < CONV_VEC; ++k) {
        const float* wc = weight + (u64)(c + k) * width;
        if (whole) {
            const float4 w = *reinterpret_cast<const float4*>(wc);
            taps[k][0] = w.w;
            taps[k][1] = w.z;
            taps[k][2] = w.y;
            taps[k][3] = w.x;
        } else {
#pragma unroll
            for (int j = 0; j < CONV_WINDOW_MAX; ++j) taps[k][j] = j < (int)width ? wc[width - 1 - j] : 0.0f;
        }
        b[k] = bias != nullptr ? bias[c + k] : 0.0f;
    }
}

// FULL: W = CONV_WINDOW_MAX, so the loop has no width test per tap.
template <typename T, bool FULL>
__device__ __forceinline__ void ssm_conv_tile_impl(unsigned char* tile, const T* x, const float* weight,
                                                   const float* bias, const T* state_in, T* out, T* state_out,
                                                   u32 batch, u32 seq_len, u32 channels, u32 width) {
    typedef ConvTile<T> Tile;
    constexpr int VEC = CONV_VEC;
    constexpr int WMAX = CONV_WINDOW_MAX;
    constexpr int HALO = Tile::HALO;
    constexpr int RPT = Tile::GROUP_ROWS / CONV_TILE_ROW_SPLIT;  // a thread's rows of a group

    const u32 channel_tiles = (channels + CONV_TILE_CHANNELS - 1) / CONV_TILE_CHANNELS;
    const u32 row_tiles = (seq_len + Tile::ROWS - 1) / Tile::ROWS;
    const u32 rest = blockIdx.x / channel_tiles;
    const u32 seq = rest / row_tiles;
    if (seq >= batch) return;
    const int t0 = (int)((rest % row_tiles) * Tile::ROWS);
    const u32 c_first = (blockIdx.x % channel_tiles) * CONV_TILE_CHANNELS;
    const T* xs = x + (u64)seq * seq_len * channels;
    const u64 state_off = (u64)seq * (width - 1) * channels;
    const T* ss = state_in != nullptr ? state_in + state_off : nullptr;

    // Shared row k holds in(t0 − HALO + k); group g copies rows
    // HALO + g · GROUP_ROWS up to HALO + (g + 1) · GROUP_ROWS, group 0 the
    // halo rows as well. Rows outside the sequence, and channels past its
    // end, are zero-filled. A group's copies split evenly over the threads:
    // each copies one 16-byte piece of every ROW_STEP-th row, stepping a
    // fixed offset.
    constexpr int ROW_STEP = CONV_THREADS / Tile::PIECES;
    constexpr int COPIES = Tile::GROUP_ROWS / ROW_STEP;
    static_assert(CONV_THREADS % Tile::PIECES == 0 && Tile::GROUP_ROWS % ROW_STEP == 0,
                  "a group's copies split evenly, a thread's in one column");
    const u32 base = smem_addr(tile);
#pragma unroll 1
    for (int i = (int)threadIdx.x; i < HALO * Tile::PIECES; i += CONV_THREADS) {
        const int p = t0 - HALO + i / Tile::PIECES;
        const u32 c = c_first + (i % Tile::PIECES) * Tile::PIECE_CHANNELS;
        // Before the sequence (its first block): the carried state, if any.
        const T* src = p >= 1 - (int)width ? conv_row(xs + c, ss != nullptr ? ss + c : nullptr, p, width, channels)
                                           : nullptr;
        const bool valid = src != nullptr && c < channels && p < (int)seq_len;
        cp_async<16>(base + i * 16, valid ? src : x, valid ? 16 : 0);
    }
    const u32 piece = threadIdx.x % Tile::PIECES;
    const u32 c_copy = c_first + piece * Tile::PIECE_CHANNELS;
    const int k_first = HALO + (int)(threadIdx.x / Tile::PIECES);
    const bool column = c_copy < channels;
    const T* src = xs + (u64)(t0 - HALO + k_first) * channels + c_copy;
    u32 dst = base + k_first * Tile::ROW_BYTES + piece * 16;
    int p = t0 - HALO + k_first;
#pragma unroll
    for (int g = 0; g < CONV_GROUPS; ++g) {
#pragma unroll
        for (int n = 0; n < COPIES; ++n) {
            const bool valid = column && p < (int)seq_len;
            cp_async<16>(dst, valid ? src : x, valid ? 16 : 0);
            src += (u64)ROW_STEP * channels;
            dst += ROW_STEP * Tile::ROW_BYTES;
            p += ROW_STEP;
        }
        cp_async_commit();
    }

    const u32 tx = threadIdx.x % CONV_TILE_TX;
    const int r_first = (int)(threadIdx.x / CONV_TILE_TX) * RPT;
    const u32 c0 = c_first + tx * VEC;
    const bool active = c0 < channels;
    const u32 cc = active ? c0 : 0;  // a valid channel for the inactive threads' setup
    float taps[VEC][WMAX], b[VEC];
    conv_load_taps<FULL>(weight, bias, cc, width, taps, b);
    T* po = out + (u64)seq * seq_len * channels + cc;
    const unsigned char* mine = tile + tx * VEC * sizeof(T);
#pragma unroll 1
    for (int g = 0; g < CONV_GROUPS; ++g) {
        cp_async_wait_at_most<CONV_GROUPS - 1>(CONV_GROUPS - 1 - g);
        __syncthreads();  // the group's copies by every thread have landed
        const int r0 = g * Tile::GROUP_ROWS + r_first;
        if (t0 + r0 >= (int)seq_len) continue;
        // in[i % WMAX] holds in(t0 + r0 + i): the rows are unrolled, so every
        // index into `in` is a constant. Rows more than W − 1 tokens back
        // are zero (copied as zeros, or skipped below).
        float in[WMAX][VEC];
        auto input = [&](int slot, int k) {
            RawRow<T, VEC> v;
            v.load(reinterpret_cast<const T*>(mine + k * Tile::ROW_BYTES));
#pragma unroll
            for (int e = 0; e < VEC; ++e) in[slot][e] = v[e];
        };
#pragma unroll
        for (int r = 1; r < WMAX; ++r) input(r, r0 + r - 1);
#pragma unroll
        for (int i = 0; i < RPT; ++i) {
            input(i % WMAX, r0 + i + HALO);
            float y[VEC];
#pragma unroll
            for (int e = 0; e < VEC; ++e) {
                float acc = b[e];
                // Oldest input first: the order of the decode kernel, so
                // prefill and decode round alike. W ≥ 2 (the op rejects W = 1);
                // taps past W are skipped, not multiplied by zero, so that an
                // inf or NaN outside the window stays out.
#pragma unroll
                for (int j = WMAX - 1; j >= 0; --j) {
                    if (FULL || j < 2 || j < (int)width) acc = fmaf(taps[e][j], in[(i - j + WMAX) % WMAX][e], acc);
                }
                y[e] = silu(acc);
            }
            const int t = t0 + r0 + i;
            if (active && t < (int)seq_len) store_vec<T, VEC>(po + (u64)t * channels, y);
        }
    }
    if (active && r_first == 0 && t0 == 0 && state_out != nullptr) {
        conv_write_state<T, VEC>(xs + cc, ss != nullptr ? ss + cc : nullptr, state_out + state_off + cc,
                                 (int)seq_len, width, channels);
    }
}

template <typename T>
__device__ void ssm_conv_tile(const T* x, const float* weight, const float* bias, const T* state_in, T* out,
                              T* state_out, u32 batch, u32 seq_len, u32 channels, u32 width) {
    // One tile for both variants (a static array per instantiation would be two).
    __shared__ alignas(16) unsigned char tile[(ConvTile<T>::HALO + ConvTile<T>::ROWS) * ConvTile<T>::ROW_BYTES];
    if (width == CONV_WINDOW_MAX) {
        ssm_conv_tile_impl<T, true>(tile, x, weight, bias, state_in, out, state_out, batch, seq_len, channels, width);
    } else {
        ssm_conv_tile_impl<T, false>(tile, x, weight, bias, state_in, out, state_out, batch, seq_len, channels, width);
    }
}
#endif

// Any width: a thread takes one channel of one chunk (consecutive threads
// consecutive channels, so a warp's accesses to a row are contiguous), the
// W taps read per output (from L1 / L2 after the first touch).
template <typename T>
__device__ void ssm_conv_any_width_impl(const T* x, const float* weight, const float* bias, const T* state_in, T* out,
                                        T* state_out, u32 batch, u32 seq_len, u32 channels, u32 width,
                                        u32 chunk_tokens) {
    const u32 chunks = (seq_len + chunk_tokens - 1) / chunk_tokens;
    const u64 idx = global_thread_index();
    const u64 chunk = idx / channels;
    if (chunk >= (u64)batch * chunks) return;
    const u32 c = (u32)(idx % channels);
    const u32 seq = (u32)(chunk / chunks);
    const int t0 = (int)((chunk % chunks) * chunk_tokens);
    const int t_end = min(t0 + (int)chunk_tokens, (int)seq_len);
    const float* wc = weight + (u64)c * width;
    const float b0 = bias != nullptr ? bias[c] : 0.0f;
    const u64 seq_off = (u64)seq * seq_len * channels + c;
    const T* xb = x + seq_off;
    const u64 state_off = (u64)seq * (width - 1) * channels + c;
    const T* sb = state_in != nullptr ? state_in + state_off : nullptr;
    for (int t = t0; t < t_end; ++t) {
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

#define CONV_TILE_ARGS(T) const T *x, const float *weight, const float *bias, const T *state_in, T *out, \
                          T *state_out, u32 batch, u32 seq_len, u32 channels, u32 width
#define CONV_TILE_PASS x, weight, bias, state_in, out, state_out, batch, seq_len, channels, width
#define CONV_ARGS(T) CONV_TILE_ARGS(T), u32 chunk_tokens
#define CONV_PASS CONV_TILE_PASS, chunk_tokens
#define NORM_ARGS(T) const T *o, const T *z, const float *weight, T *out, u64 rows, u32 dim, float eps
#define NORM_PASS o, z, weight, out, rows, dim, eps

// `_vec` kernels: 16 / sizeof(T) elements (16 bytes) per access. The tile
// ssm_conv kernel exists only in sm_80 builds and newer.
#if MLXN_CUDA_ARCH >= 800
#define CONV_TILE_KERNEL(DN, T)                                                                                 \
    extern "C" __global__ void __launch_bounds__(CONV_THREADS, CONV_MIN_BLOCKS)                                 \
        ssm_conv_tile_##DN(CONV_TILE_ARGS(T)) {                                                                 \
        ssm_conv_tile<T>(CONV_TILE_PASS);                                                                       \
    }
#else
#define CONV_TILE_KERNEL(DN, T)
#endif

#define GDN_LAYER_KERNELS(DN, T)                                                                                \
    CONV_TILE_KERNEL(DN, T)                                                                                    \
    extern "C" __global__ void ssm_conv_any_width_##DN(CONV_ARGS(T)) {                                          \
        ssm_conv_any_width_impl<T>(CONV_PASS);                                                                  \
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
