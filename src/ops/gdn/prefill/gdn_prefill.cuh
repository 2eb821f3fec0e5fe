// Gated DeltaNet chunked prefill, chunk size 64 (math: src/ops/gdn/reference/mod.rs).
//
// Two kernels per call:
//   prep  (chunk, value head), fully parallel: cumulative decay G, the
//         β-weighted K·Kᵀ with decay ratios, T = (I + A)⁻¹, W = T·diag(βe^G r_k)·K,
//         U = T·diag(β)·V, the causal chunk attention P = scale·(QKᵀ ∘ e^{G_i−G_j})
//         and the per-token row factors of the state kernel;
//   state (sequence, value head, V tile, segment; 8 warps), sequential over the chunks:
//         V_new = U − W·Hᵀ, O = f_q ∘ (Q·Hᵀ) + P·V_new, H ← e^{G_L} H + (f_k ∘ V_new)ᵀ·K,
//         the state H staying in registers from the block's first chunk to its last;
//         gdn_prefill_state_wg.cu for BF16 calls (64-row V tiles; TMA, wgmma; sm_90),
//         gdn_prefill_state.cu for F32 calls (32-row V tiles). A long sequence
//         may be cut into segments, each block's chain starting where the
//         state's dependence on the segment's past has decayed (see
//         gdn_chain_start).
// q/k L2 normalisation is folded in as row factors r_q, r_k (no normalised copy).
// Matrix products run on tensor cores: bf16 (mma.sync m16n8k16, wgmma) for
// BF16 calls, tf32 (mma.sync m16n8k8) for F32 calls, always with f32
// accumulation.
//
// This header holds what the kernels share; each .cu is its own module.
#pragma once
#include "mlxn_prelude.cuh"

#define GDN_C 64
#define GDN_MAX_SEQS 256
#define GDN_VT 32
// Row factors of one (chunk, value head), written by prep and read by the
// state kernels as one block: f_q[64], f_k[64], e^{G_L}, the chunk's
// contraction flag, 2 zeros (rows of a partial chunk past its end hold
// zeros). Mirrored in prefill/cuda.rs. The flag is 1 where keys are
// L2-normalised and every β lies in [0, 2], so that each token's step
// S ← γ S (I − β k kᵀ) is a contraction scaled by γ and e^{G_L} caps the
// norm of the chunk's map from its initial state to its final one; 0
// otherwise (no cap).
#define GDN_F_FLOATS (2 * GDN_C + 4)

// Sequences of a call; mirrored by `SeqTable` in prefill/cuda.rs.
struct GdnSeqs {
    i32 num_seqs;
    i32 uniform_len;  // > 0: sequence s is tokens [s·len, (s+1)·len); tok/chunk unused
    i32 num_chunks;
    i32 reserved;
    i32 tok[GDN_MAX_SEQS + 1];
    i32 chunk[GDN_MAX_SEQS + 1];
};

// Mirrored by `Dims` in prefill/cuda.rs.
struct GdnDims {
    i32 num_key_heads;
    i32 num_value_heads;
    i32 value_dim;
    i32 l2_norm;
    float scale;
    i32 stages;      // state kernels: shared-memory stages (1 to 3; BF16: of WG0's ring)
    i32 q_in_w;      // F32 state kernel: Q is loaded into W's buffer (largest shapes)
    i32 out_stages;  // BF16 state kernel: stages of WG1's ring (1 to 3)
    i32 seg_chunks;  // state kernels: chunks per segment (grid z), 0: whole sequences
};

__device__ __forceinline__ void gdn_seq_range(const GdnSeqs& s, int seq, int& tok0, int& tok1, int& c0, int& c1) {
    if (s.uniform_len > 0) {
        const int per = (s.uniform_len + GDN_C - 1) / GDN_C;
        tok0 = seq * s.uniform_len;
        tok1 = tok0 + s.uniform_len;
        c0 = seq * per;
        c1 = c0 + per;
    } else {
        tok0 = s.tok[seq];
        tok1 = s.tok[seq + 1];
        c0 = s.chunk[seq];
        c1 = s.chunk[seq + 1];
    }
}

// Segments: a block may own only chunks [c_out, c_end) of its sequence
// (grid z, `seg_chunks` each), so that a long sequence keeps more SMs busy
// than it has heads. Such a block starts its chain at the latest chunk c at
// which the state at c_out depends on the state at c by less than GDN_CUT
// (relative): the product of the chunks' e^{G_L} over [c, c_out) bounds
// that dependence where every chunk there contracts (GDN_F_FLOATS above). It runs the chunks
// [c, c_out) from a zero state without writing their outputs (those are
// the previous segment's), and from the sequence's own start (and initial
// state) where the bound never falls that low.
#define GDN_CUT 2.3283064e-10f  // 2^-32

// The first chunk a segment's chain must run to produce chunk c_out's state
// (every thread of a warp, the same answer in every warp).
__device__ __forceinline__ int gdn_chain_start(const float* __restrict__ f, int c0, int c_out, int h, int Hv) {
    const int lane = threadIdx.x & 31;
    float carry = 1.f;
    for (int top = c_out; top > c0; top -= 32) {
        const int c = top - 1 - lane;  // lane l: the product over [c, c_out)
        float x = 1.f;
        if (c >= c0) {
            const float* fc = f + ((u64)c * Hv + h) * GDN_F_FLOATS + 2 * GDN_C;
            x = fc[1] != 0.f ? fc[0] : __int_as_float(0x7f800000);  // +inf: no cap
        }
#pragma unroll
        for (int o = 1; o < 32; o <<= 1) {
            const float y = __shfl_up_sync(~0u, x, o);
            if (lane >= o) x *= y;
        }
        x *= carry;
        const unsigned below = __ballot_sync(~0u, c >= c0 && x < GDN_CUT);
        if (below) return top - __ffs(below);
        carry = __shfl_sync(~0u, x, 31);
    }
    return c0;
}

// What a state-kernel block (grid x: value head × `vt`-row V tile, y:
// sequence, z: segment) works on: its heads, first value row, the tokens
// and chunks [c0, c1) of its sequence, and of those the chunks its chain
// runs, [c_first, c_end), and whose outputs it writes, [c_out, c_end).
// `idle`: a segment past its sequence's end (segment 0 always runs, so
// that an empty sequence still gets its final state).
struct GdnStateBlock {
    int h, kh, v0, seq, tok0, tok1, c0, c1, c_first, c_out, c_end;
    bool idle;
};
__device__ __forceinline__ GdnStateBlock gdn_state_block(const GdnSeqs& seqs, const GdnDims& d, int vt,
                                                         const float* __restrict__ f) {
    const int tiles = d.value_dim / vt;
    GdnStateBlock b;
    b.h = blockIdx.x / tiles;
    b.kh = b.h / (d.num_value_heads / d.num_key_heads);
    b.v0 = (blockIdx.x % tiles) * vt;
    b.seq = blockIdx.y;
    gdn_seq_range(seqs, b.seq, b.tok0, b.tok1, b.c0, b.c1);
    b.c_out = b.c0;
    b.c_end = b.c1;
    b.idle = false;
    if (d.seg_chunks > 0) {
        b.c_out = b.c0 + (int)blockIdx.z * d.seg_chunks;
        b.idle = blockIdx.z > 0 && b.c_out >= b.c1;
        b.c_end = min(b.c1, b.c_out + d.seg_chunks);
    }
    b.c_first = b.idle ? b.c_out : gdn_chain_start(f, b.c0, b.c_out, b.h, d.num_value_heads);
    return b;
}

// The sequence owning chunk c: the last one whose first chunk is ≤ c
// (empty sequences own no chunk and are skipped by taking the last).
__device__ __forceinline__ int gdn_seq_of_chunk(const GdnSeqs& s, int c) {
    if (s.uniform_len > 0) return c / ((s.uniform_len + GDN_C - 1) / GDN_C);
    int lo = 0, hi = s.num_seqs - 1;
    while (lo < hi) {
        const int mid = (lo + hi + 1) >> 1;
        if (s.chunk[mid] <= c) lo = mid; else hi = mid - 1;
    }
    return lo;
}

// 2^x in one MUFU instruction (relative error ~2⁻²²; 0 below 2⁻¹²⁶): the
// prep kernel keeps cumulative decays in log2 units so that each factor
// e^{G_i − G_j} is one subtraction and this.
__device__ __forceinline__ float gdn_exp2(float x) {
    float y;
    asm("ex2.approx.ftz.f32 %0, %1;" : "=f"(y) : "f"(x));
    return y;
}

// ---- tensor-core fragments -------------------------------------------------
// A(m, k) = a[m·rs + k·ks] (16 rows), B(k, n) = b[n·ns + k·ks] (8 columns).
// Fragment layouts of mma.sync m16n8k16 / m16n8k8 (PTX ISA): g = lane / 4,
// t = lane % 4; C holds (g, 2t), (g, 2t+1), (g+8, 2t), (g+8, 2t+1).

__device__ __forceinline__ u32 gdn_pack_bf16(float lo, float hi) {
    u32 r;
    asm("cvt.rn.bf16x2.f32 %0, %1, %2;" : "=r"(r) : "f"(hi), "f"(lo));
    return r;
}
__device__ __forceinline__ u32 gdn_pair(const bf16_t* p, int ks) {
    if (ks == 1) return *reinterpret_cast<const u32*>(p);
    return (u32)p[0].bits | ((u32)p[ks].bits << 16);
}
__device__ __forceinline__ u32 gdn_pair(const float* p, int ks) { return gdn_pack_bf16(p[0], p[ks]); }
__device__ __forceinline__ u32 gdn_tf32(float x) {
    u32 r;
    asm("cvt.rna.tf32.f32 %0, %1;" : "=r"(r) : "f"(x));
    return r;
}

template <typename T> struct GdnMma;

template <> struct GdnMma<bf16_t> {
    static constexpr int KSTEP = 16;
    template <typename S>
    __device__ static __forceinline__ void load_a(u32 a[4], const S* p, int rs, int ks) {
        const int g = (threadIdx.x & 31) >> 2, t = threadIdx.x & 3;
        a[0] = gdn_pair(p + g * rs + (2 * t) * ks, ks);
        a[1] = gdn_pair(p + (g + 8) * rs + (2 * t) * ks, ks);
        a[2] = gdn_pair(p + g * rs + (2 * t + 8) * ks, ks);
        a[3] = gdn_pair(p + (g + 8) * rs + (2 * t + 8) * ks, ks);
    }
    template <typename S>
    __device__ static __forceinline__ void load_b(u32 b[2], const S* p, int ns, int ks) {
        const int g = (threadIdx.x & 31) >> 2, t = threadIdx.x & 3;
        b[0] = gdn_pair(p + g * ns + (2 * t) * ks, ks);
        b[1] = gdn_pair(p + g * ns + (2 * t + 8) * ks, ks);
    }
    __device__ static __forceinline__ void mma(float c[4], const u32 a[4], const u32 b[2]) {
        asm("mma.sync.aligned.m16n8k16.row.col.f32.bf16.bf16.f32 {%0,%1,%2,%3}, {%4,%5,%6,%7}, {%8,%9}, {%0,%1,%2,%3};"
                     : "+f"(c[0]), "+f"(c[1]), "+f"(c[2]), "+f"(c[3])
                     : "r"(a[0]), "r"(a[1]), "r"(a[2]), "r"(a[3]), "r"(b[0]), "r"(b[1]));
    }
};

template <> struct GdnMma<float> {
    static constexpr int KSTEP = 8;
    __device__ static __forceinline__ void load_a(u32 a[4], const float* p, int rs, int ks) {
        const int g = (threadIdx.x & 31) >> 2, t = threadIdx.x & 3;
        a[0] = gdn_tf32(p[g * rs + t * ks]);
        a[1] = gdn_tf32(p[(g + 8) * rs + t * ks]);
        a[2] = gdn_tf32(p[g * rs + (t + 4) * ks]);
        a[3] = gdn_tf32(p[(g + 8) * rs + (t + 4) * ks]);
    }
    __device__ static __forceinline__ void load_b(u32 b[2], const float* p, int ns, int ks) {
        const int g = (threadIdx.x & 31) >> 2, t = threadIdx.x & 3;
        b[0] = gdn_tf32(p[g * ns + t * ks]);
        b[1] = gdn_tf32(p[g * ns + (t + 4) * ks]);
    }
    __device__ static __forceinline__ void mma(float c[4], const u32 a[4], const u32 b[2]) {
        asm("mma.sync.aligned.m16n8k8.row.col.f32.tf32.tf32.f32 {%0,%1,%2,%3}, {%4,%5,%6,%7}, {%8,%9}, {%0,%1,%2,%3};"
                     : "+f"(c[0]), "+f"(c[1]), "+f"(c[2]), "+f"(c[3])
                     : "r"(a[0]), "r"(a[1]), "r"(a[2]), "r"(a[3]), "r"(b[0]), "r"(b[1]));
    }
};

// acc[n] += A(16 × kdim) · B(kdim × 8) for the NT column tiles n (tile n
// starts at b + 8n·ns). One warp; T picks the tensor-core precision.
template <typename T, int NT, typename SA, typename SB>
__device__ __forceinline__ void gdn_warp_gemm(float (*acc)[4], const SA* a, int ars, int aks,
                                              const SB* b, int bns, int bks, int kdim) {
    for (int k0 = 0; k0 < kdim; k0 += GdnMma<T>::KSTEP) {
        u32 af[4];
        GdnMma<T>::load_a(af, a + k0 * aks, ars, aks);
#pragma unroll
        for (int n = 0; n < NT; ++n) {
            u32 bf[2];
            GdnMma<T>::load_b(bf, b + n * 8 * bns + k0 * bks, bns, bks);
            GdnMma<T>::mma(acc[n], af, bf);
        }
    }
}

template <int NT>
__device__ __forceinline__ void gdn_zero(float (*acc)[4]) {
#pragma unroll
    for (int n = 0; n < NT; ++n) acc[n][0] = acc[n][1] = acc[n][2] = acc[n][3] = 0.f;
}

// ---- asynchronous copies ---------------------------------------------------

// ROWS × COLS elements of T from global rows `row_stride` apart into shared
// rows `sstride` apart, 16 bytes per copy; rows ≥ valid_rows are zero-filled.
// All NTH threads of the block call. Each thread keeps one column and steps
// its two addresses by a fixed number of rows: indices and 64-bit products
// computed per copy cost about 20 instructions each.
template <typename T, int ROWS, int COLS, int NTH>
__device__ __forceinline__ void gdn_load_tile(T* dst, int sstride, const T* src, u64 row_stride, int valid_rows) {
    constexpr u32 VEC = 16 / sizeof(T);
    constexpr u32 PER_ROW = COLS / VEC;
    constexpr u32 STEP = NTH / PER_ROW;  // rows per pass of the block
    static_assert(NTH % PER_ROW == 0 && ROWS % STEP == 0, "whole rows per pass, whole passes per tile");
    const u32 r0 = threadIdx.x / PER_ROW, c = threadIdx.x % PER_ROW * VEC;
    const T* from = src + r0 * row_stride + c;
    u32 to = smem_addr(dst + r0 * sstride + c);
#pragma unroll
    for (u32 r = r0; r < ROWS; r += STEP) {
        const bool valid = (int)r < valid_rows;
        cp_async<16>(to, valid ? from : src, valid ? 16 : 0);
        from += STEP * row_stride;
        to += STEP * sstride * (u32)sizeof(T);
    }
}

// The same for a row length known only at run time (one of 64, 128, 256).
template <typename T, int ROWS, int NTH>
__device__ __forceinline__ void gdn_load_rows(T* dst, int sstride, const T* src, u64 row_stride, int cols, int valid_rows) {
    if (cols == 64) gdn_load_tile<T, ROWS, 64, NTH>(dst, sstride, src, row_stride, valid_rows);
    else if (cols == 128) gdn_load_tile<T, ROWS, 128, NTH>(dst, sstride, src, row_stride, valid_rows);
    else gdn_load_tile<T, ROWS, 256, NTH>(dst, sstride, src, row_stride, valid_rows);
}

// ---- warp tiles from shared memory ------------------------------------------

__device__ __forceinline__ void gdn_ldsm(u32 r[4], u32 addr) {
    asm volatile("ldmatrix.sync.aligned.m8n8.x4.shared.b16 {%0,%1,%2,%3}, [%4];"
                 : "=r"(r[0]), "=r"(r[1]), "=r"(r[2]), "=r"(r[3]) : "r"(addr) : "memory");
}
__device__ __forceinline__ void gdn_ldsm_t(u32 r[4], u32 addr) {
    asm volatile("ldmatrix.sync.aligned.m8n8.x4.trans.shared.b16 {%0,%1,%2,%3}, [%4];"
                 : "=r"(r[0]), "=r"(r[1]), "=r"(r[2]), "=r"(r[3]) : "r"(addr) : "memory");
}

// acc[n] += A(16 × kdim) · B(kdim × 8·NT), both in shared memory. A is
// A(m, k) = a[m·lda + k], or a[k·lda + m] when A_COL; B is B(k, n) =
// b[n·ldb + k], or b[k·ldb + n] when B_KN. 16-bit types use ldmatrix (four
// 8×8 matrices per instruction, .trans for the transposed layouts; rows
// must start 16-byte aligned); f32 takes the scalar tf32 path. NT is even.
template <typename T, int NT, bool A_COL, bool B_KN>
__device__ __forceinline__ void gdn_mma_smem(float (*acc)[4], const T* a, int lda, const T* b, int ldb, int kdim) {
    if constexpr (sizeof(T) == 2) {
        const int lane = threadIdx.x & 31;
        const int r8 = lane & 7, m1 = (lane >> 3) & 1, m2 = lane >> 4;
        // 32-bit shared addresses: the offsets below then fold into the
        // instructions, where generic pointers cost a 64-bit add each.
        const u32 pa = smem_addr(A_COL ? a + (r8 + 8 * m2) * lda + 8 * m1 : a + (r8 + 8 * m1) * lda + 8 * m2);
        const u32 pb = smem_addr(B_KN ? b + (r8 + 8 * m1) * ldb + 8 * m2 : b + (r8 + 8 * m2) * ldb + 8 * m1);
#pragma unroll
        for (int k0 = 0; k0 < kdim; k0 += 16) {
            u32 af[4];
            if (A_COL) gdn_ldsm_t(af, pa + 2 * k0 * lda);
            else gdn_ldsm(af, pa + 2 * k0);
#pragma unroll
            for (int n = 0; n < NT; n += 2) {
                u32 bf[4];
                if (B_KN) gdn_ldsm_t(bf, pb + 2 * (k0 * ldb + n * 8));
                else gdn_ldsm(bf, pb + 2 * (n * 8 * ldb + k0));
                GdnMma<bf16_t>::mma(acc[n], af, bf);
                GdnMma<bf16_t>::mma(acc[n + 1], af, bf + 2);
            }
        }
    } else {
        gdn_warp_gemm<T, NT>(acc, a, A_COL ? 1 : lda, A_COL ? lda : 1, b, B_KN ? 1 : ldb, B_KN ? ldb : 1, kdim);
    }
}

// One warp's part of a V × K f32 state at `state` (rows K apart; null
// reads as zeros): NT 8-column mma C tiles of rows r0 … r0 + 15 and columns
// c0 … c0 + 8·NT − 1, as the state kernels keep it in registers.
template <int NT>
__device__ __forceinline__ void gdn_state_load(float (*acc)[4], const float* state, int K, int r0, int c0) {
    const int g = (threadIdx.x & 31) >> 2, t = threadIdx.x & 3;
#pragma unroll
    for (int n = 0; n < NT; ++n)
#pragma unroll
        for (int e = 0; e < 4; ++e) {
            const u64 at = (u64)(r0 + g + (e >= 2 ? 8 : 0)) * K + c0 + n * 8 + 2 * t + (e & 1);
            acc[n][e] = state ? state[at] : 0.f;
        }
}
template <int NT>
__device__ __forceinline__ void gdn_state_store(float* state, const float (*acc)[4], int K, int r0, int c0) {
    const int g = (threadIdx.x & 31) >> 2, t = threadIdx.x & 3;
#pragma unroll
    for (int n = 0; n < NT; ++n)
#pragma unroll
        for (int e = 0; e < 4; ++e) state[(u64)(r0 + g + (e >= 2 ? 8 : 0)) * K + c0 + n * 8 + 2 * t + (e & 1)] = acc[n][e];
}

// Two adjacent elements (a C-fragment pair) as one 4- or 8-byte store.
__device__ __forceinline__ void gdn_store2(bf16_t* p, float a, float b) { *reinterpret_cast<u32*>(p) = gdn_pack_bf16(a, b); }
__device__ __forceinline__ void gdn_store2(float* p, float a, float b) { *reinterpret_cast<float2*>(p) = make_float2(a, b); }
