// Gated DeltaNet chunked prefill, chunk size 64 (math: src/ops/gdn/reference/mod.rs).
//
// Two kernels per call:
//   prep  (chunk, value head), fully parallel: cumulative decay G, the
//         β-weighted K·Kᵀ with decay ratios, T = (I + A)⁻¹, W = T·diag(βe^G r_k)·K,
//         U = T·diag(β)·V, the causal chunk attention P = scale·(QKᵀ ∘ e^{G_i−G_j})
//         and the per-token row factors of the state kernel;
//   state (sequence, value head, 32-row V tile; 8 warps), sequential over the chunks:
//         V_new = U − W·Hᵀ, O = f_q ∘ (Q·Hᵀ) + P·V_new, H ← e^{G_L} H + (f_k ∘ V_new)ᵀ·K,
//         the state H staying in registers from the first chunk to the last.
// q/k L2 normalisation is folded in as row factors r_q, r_k (no normalised copy).
// Matrix products use mma.sync: bf16 (m16n8k16) for BF16 calls, tf32 (m16n8k8)
// for F32 calls, always with f32 accumulation.
#include "mlxn_prelude.cuh"

#define GDN_C 64
#define GDN_MAX_SEQS 256
#define GDN_VT 32

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
    i32 stages;     // state kernel: shared-memory stages (1 to 3)
    i32 q_in_w;     // state kernel: Q is loaded into W's buffer (largest shapes)
    i32 reserved;
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

__device__ __forceinline__ u32 gdn_smem_addr(const void* p) {
    u32 r;
    asm("{ .reg .u64 a; cvta.to.shared.u64 a, %1; cvt.u32.u64 %0, a; }" : "=r"(r) : "l"(p));
    return r;
}
// 16 bytes, or 16 zero bytes when !valid (src is then not read).
__device__ __forceinline__ void gdn_cp16(void* dst, const void* src, bool valid) {
    asm volatile("cp.async.cg.shared.global [%0], [%1], 16, %2;" ::"r"(gdn_smem_addr(dst)), "l"(src), "r"(valid ? 16 : 0));
}
__device__ __forceinline__ void gdn_cp4(void* dst, const void* src, bool valid) {
    asm volatile("cp.async.ca.shared.global [%0], [%1], 4, %2;" ::"r"(gdn_smem_addr(dst)), "l"(src), "r"(valid ? 4 : 0));
}
__device__ __forceinline__ void gdn_cp_commit() { asm volatile("cp.async.commit_group;"); }
template <int N> __device__ __forceinline__ void gdn_cp_wait() { asm volatile("cp.async.wait_group %0;" ::"n"(N)); }

// ROWS × COLS elements of T from global rows `row_stride` apart into shared
// rows `sstride` apart, 16 bytes per copy; rows ≥ valid_rows are zero-filled.
// All NTH threads of the block call.
template <typename T, int ROWS, int COLS, int NTH>
__device__ __forceinline__ void gdn_load_tile(T* dst, int sstride, const T* src, u64 row_stride, int valid_rows) {
    constexpr int VEC = 16 / (int)sizeof(T);
    constexpr int PER_ROW = COLS / VEC;
    constexpr int TOTAL = ROWS * PER_ROW;
#pragma unroll
    for (int i0 = 0; i0 < TOTAL; i0 += NTH) {
        const int i = i0 + (int)threadIdx.x;
        if (TOTAL % NTH == 0 || i < TOTAL) {
            const int r = i / PER_ROW, c = (i % PER_ROW) * VEC;
            const bool valid = r < valid_rows;
            gdn_cp16(dst + r * sstride + c, valid ? src + r * row_stride + c : src, valid);
        }
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

__device__ __forceinline__ void gdn_ldsm(u32 r[4], const void* p) {
    asm volatile("ldmatrix.sync.aligned.m8n8.x4.shared.b16 {%0,%1,%2,%3}, [%4];"
                 : "=r"(r[0]), "=r"(r[1]), "=r"(r[2]), "=r"(r[3]) : "r"(gdn_smem_addr(p)) : "memory");
}
__device__ __forceinline__ void gdn_ldsm_t(u32 r[4], const void* p) {
    asm volatile("ldmatrix.sync.aligned.m8n8.x4.trans.shared.b16 {%0,%1,%2,%3}, [%4];"
                 : "=r"(r[0]), "=r"(r[1]), "=r"(r[2]), "=r"(r[3]) : "r"(gdn_smem_addr(p)) : "memory");
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
        const T* pa = A_COL ? a + (r8 + 8 * m2) * lda + 8 * m1 : a + (r8 + 8 * m1) * lda + 8 * m2;
        const T* pb = B_KN ? b + (r8 + 8 * m1) * ldb + 8 * m2 : b + (r8 + 8 * m2) * ldb + 8 * m1;
#pragma unroll
        for (int k0 = 0; k0 < kdim; k0 += 16) {
            u32 af[4];
            if (A_COL) gdn_ldsm_t(af, pa + k0 * lda);
            else gdn_ldsm(af, pa + k0);
#pragma unroll
            for (int n = 0; n < NT; n += 2) {
                u32 bf[4];
                if (B_KN) gdn_ldsm_t(bf, pb + k0 * ldb + n * 8);
                else gdn_ldsm(bf, pb + n * 8 * ldb + k0);
                GdnMma<bf16_t>::mma(acc[n], af, bf);
                GdnMma<bf16_t>::mma(acc[n + 1], af, bf + 2);
            }
        }
    } else {
        gdn_warp_gemm<T, NT>(acc, a, A_COL ? 1 : lda, A_COL ? lda : 1, b, B_KN ? 1 : ldb, B_KN ? ldb : 1, kdim);
    }
}

// acc0 += A0·B and acc1 += A1·B, A0 and A1 row-major with one stride, B as
// in gdn_mma_smem (n-major): the B fragments are loaded once for both.
template <typename T, int NT>
__device__ __forceinline__ void gdn_mma_smem_pair(float (*acc0)[4], float (*acc1)[4], const T* a0, const T* a1, int lda,
                                                  const T* b, int ldb, int kdim) {
    if constexpr (sizeof(T) == 2) {
        const int lane = threadIdx.x & 31;
        const int r8 = lane & 7, m1 = (lane >> 3) & 1, m2 = lane >> 4;
        const int ao = (r8 + 8 * m1) * lda + 8 * m2;
        const T* pb = b + (r8 + 8 * m2) * ldb + 8 * m1;
#pragma unroll
        for (int k0 = 0; k0 < kdim; k0 += 16) {
            u32 f0[4], f1[4];
            gdn_ldsm(f0, a0 + ao + k0);
            gdn_ldsm(f1, a1 + ao + k0);
#pragma unroll
            for (int n = 0; n < NT; n += 2) {
                u32 bf[4];
                gdn_ldsm(bf, pb + n * 8 * ldb + k0);
                GdnMma<bf16_t>::mma(acc0[n], f0, bf);
                GdnMma<bf16_t>::mma(acc1[n], f1, bf);
                GdnMma<bf16_t>::mma(acc0[n + 1], f0, bf + 2);
                GdnMma<bf16_t>::mma(acc1[n + 1], f1, bf + 2);
            }
        }
    } else {
        gdn_warp_gemm<T, NT>(acc0, a0, lda, 1, b, ldb, 1, kdim);
        gdn_warp_gemm<T, NT>(acc1, a1, lda, 1, b, ldb, 1, kdim);
    }
}

// Two adjacent elements (a C-fragment pair) as one 4- or 8-byte store.
__device__ __forceinline__ void gdn_store2(bf16_t* p, float a, float b) { *reinterpret_cast<u32*>(p) = gdn_pack_bf16(a, b); }
__device__ __forceinline__ void gdn_store2(float* p, float a, float b) { *reinterpret_cast<float2*>(p) = make_float2(a, b); }

// A warp's 16 × 64 tile, staged in its shared rows `stage` (ss apart), to
// global rows `os` apart as 16-byte row pieces (rows ≥ valid are skipped):
// stored straight from C fragments, each instruction would fill half
// sectors of 8 rows.
template <typename T>
__device__ __forceinline__ void gdn_copy_out16x64(T* out, u64 os, int valid, const T* stage, int ss) {
    constexpr int VEC = 16 / (int)sizeof(T);
    constexpr int PER_ROW = 64 / VEC;
    const int lane = threadIdx.x & 31;
    __syncwarp();
#pragma unroll
    for (int x = lane; x < 16 * PER_ROW; x += 32) {
        const int r = x / PER_ROW, col = (x % PER_ROW) * VEC;
        if (r < valid) *reinterpret_cast<uint4*>(out + r * os + col) = *reinterpret_cast<const uint4*>(stage + r * ss + col);
    }
    __syncwarp();
}
template <typename T>
__device__ __forceinline__ void gdn_store16x64(T* out, u64 os, int valid, T* stage, int ss, const float (*acc)[4]) {
    const int g = (threadIdx.x & 31) >> 2, t = threadIdx.x & 3;
    __syncwarp();
#pragma unroll
    for (int n = 0; n < 8; ++n)
#pragma unroll
        for (int hr = 0; hr < 2; ++hr) gdn_store2(stage + (g + 8 * hr) * ss + n * 8 + 2 * t, acc[n][2 * hr], acc[n][2 * hr + 1]);
    gdn_copy_out16x64(out, os, valid, stage, ss);
}

// ---- f32 16×16 blocks on tensor cores (split tf32, about f32 accuracy) -----

__device__ __forceinline__ void gdn_split_tf32(float x, u32& hi, u32& lo) {
    hi = gdn_tf32(x);
    lo = gdn_tf32(x - __uint_as_float(hi));
}

// acc += X(16 × kdim) · Y(kdim × 16), f32 elements read through the
// accessors x(r, k) and y(k, n); hi·hi + hi·lo + lo·hi products of m16n8k8 tf32.
template <typename FX, typename FY>
__device__ __forceinline__ void gdn_block_mma_f32(float (*acc)[4], FX x, FY y, int kdim) {
    const int g = (threadIdx.x & 31) >> 2, t = threadIdx.x & 3;
    for (int k0 = 0; k0 < kdim; k0 += 8) {
        u32 ah[4], al[4];
        gdn_split_tf32(x(g, k0 + t), ah[0], al[0]);
        gdn_split_tf32(x(g + 8, k0 + t), ah[1], al[1]);
        gdn_split_tf32(x(g, k0 + t + 4), ah[2], al[2]);
        gdn_split_tf32(x(g + 8, k0 + t + 4), ah[3], al[3]);
#pragma unroll
        for (int n = 0; n < 2; ++n) {
            u32 bh[2], bl[2];
            gdn_split_tf32(y(k0 + t, n * 8 + g), bh[0], bl[0]);
            gdn_split_tf32(y(k0 + t + 4, n * 8 + g), bh[1], bl[1]);
            GdnMma<float>::mma(acc[n], al, bh);
            GdnMma<float>::mma(acc[n], ah, bl);
            GdnMma<float>::mma(acc[n], ah, bh);
        }
    }
}

// ---- prep: one block of 128 threads per (chunk, value head) ----------------

#define GDN_PREP_THREADS 128

template <typename T, int K>
__device__ void gdn_prep(const T* __restrict__ q, const T* __restrict__ k, const T* __restrict__ v,
                         const float* __restrict__ g, const float* __restrict__ beta,
                         T* __restrict__ w_out, T* __restrict__ u_out, T* __restrict__ p_out,
                         float* __restrict__ fq_out, float* __restrict__ fk_out, float* __restrict__ cd_out,
                         const GdnSeqs& seqs, const GdnDims& d) {
    constexpr int PAD = 16 / (int)sizeof(T);
    constexpr int KS = K + PAD;
    constexpr int FS = GDN_C + 4;    // f32 matrices (rows 16-byte aligned)
    constexpr int TS = GDN_C + PAD;  // T·diag(…) in T's type, as an mma operand
    // A and T share one f32 matrix (A strictly below the diagonal, T on and
    // above it, transposed), later overwritten by T·diag(βe^G r_k) and
    // T·diag(β): one matrix less lets 4 blocks share an SM at K = 128 BF16.
    constexpr int M_BYTES = GDN_C * FS * 4 > 2 * GDN_C * TS * (int)sizeof(T) ? GDN_C * FS * 4 : 2 * GDN_C * TS * (int)sizeof(T);
    static_assert(GDN_PREP_THREADS == 2 * GDN_C, "two threads per row in the norm and T·diag phases");
    const int V = d.value_dim, Hv = d.num_value_heads, Hk = d.num_key_heads;
    const int XS = (V > K ? V : K) + PAD;
    const int c = blockIdx.x, h = blockIdx.y;
    const int kh = h / (Hv / Hk);
    const int seq = gdn_seq_of_chunk(seqs, c);
    int tok0, tok1, c0, c1;
    gdn_seq_range(seqs, seq, tok0, tok1, c0, c1);
    const int start = tok0 + (c - c0) * GDN_C;
    const int len = min(GDN_C, tok1 - start);
    const int tid = threadIdx.x, warp = tid >> 5, lane = tid & 31;
    const int gq = lane >> 2, tq = lane & 3;

    extern __shared__ __align__(16) unsigned char gdn_smem[];
    T* ks = reinterpret_cast<T*>(gdn_smem);            // [64][KS] k rows
    T* xs = ks + GDN_C * KS;                            // [64][XS] q rows, then v rows
    float* ms = reinterpret_cast<float*>(xs + GDN_C * XS);  // [64][FS] A(i, j) at i·FS + j, T(i, j) at j·FS + i
    T* tw = reinterpret_cast<T*>(ms);                   // [64][TS] T·diag(βe^G r_k), over A and T
    T* tu = tw + GDN_C * TS;                            // [64][TS] T·diag(β)
    float* gs = reinterpret_cast<float*>(reinterpret_cast<unsigned char*>(ms) + M_BYTES);  // G (cumulative log-decay)
    float* bs = gs + GDN_C;                             // β
    float* rk = bs + GDN_C;                             // key row factors
    float* rq = rk + GDN_C;                             // query row factors
    float* wf = rq + GDN_C;                             // β e^G r_k, the column factors of W
    // T(i, j) of the lower-triangular inverse; zero above the diagonal.
    auto t_at = [&](int i, int j) { return i >= j ? ms[j * FS + i] : 0.f; };

    const u64 qk_row = (u64)Hk * K;
    gdn_load_tile<T, GDN_C, K, GDN_PREP_THREADS>(ks, KS, k + ((u64)start * Hk + kh) * K, qk_row, len);
    gdn_load_tile<T, GDN_C, K, GDN_PREP_THREADS>(xs, XS, q + ((u64)start * Hk + kh) * K, qk_row, len);
    gdn_cp_commit();
    if (warp == 0) {
        // G = inclusive prefix sum of g (two tokens per lane).
        const int i0 = 2 * lane;
        const float a0 = i0 < len ? g[(u64)(start + i0) * Hv + h] : 0.f;
        const float a1 = i0 + 1 < len ? g[(u64)(start + i0 + 1) * Hv + h] : 0.f;
        float run = a0 + a1;
#pragma unroll
        for (int o = 1; o < 32; o <<= 1) {
            const float x = __shfl_up_sync(0xffffffffu, run, o);
            if (lane >= o) run += x;
        }
        gs[i0] = run - a1;
        gs[i0 + 1] = run;
    } else if (warp == 1) {
#pragma unroll
        for (int i = lane; i < GDN_C; i += 32) bs[i] = i < len ? beta[(u64)(start + i) * Hv + h] : 0.f;
    }
    gdn_cp_wait<0>();
    __syncthreads();

    {
        // Row factors of the optional L2 norm, 1 / sqrt(Σx² + 1e-6): two
        // threads per row, 16-byte reads.
        const int r = tid >> 1, half = tid & 1;
        constexpr int VEC = 16 / (int)sizeof(T);
        const uint4* kr = reinterpret_cast<const uint4*>(ks + r * KS + half * (K / 2));
        const uint4* qr = reinterpret_cast<const uint4*>(xs + r * XS + half * (K / 2));
        float sk = 0.f, sq = 0.f;
#pragma unroll
        for (int e = 0; e < K / 2 / VEC; ++e) {
            const uint4 a = kr[e], b = qr[e];
            const T* av = reinterpret_cast<const T*>(&a);
            const T* bv = reinterpret_cast<const T*>(&b);
#pragma unroll
            for (int x = 0; x < VEC; ++x) {
                const float fa = to_f32(av[x]), fb = to_f32(bv[x]);
                sk = fmaf(fa, fa, sk);
                sq = fmaf(fb, fb, sq);
            }
        }
        sk += __shfl_xor_sync(0xffffffffu, sk, 1);
        sq += __shfl_xor_sync(0xffffffffu, sq, 1);
        if (half == 0) {
            const float fk = d.l2_norm ? 1.f / sqrtf(sk + 1e-6f) : 1.f;
            rk[r] = fk;
            rq[r] = d.l2_norm ? 1.f / sqrtf(sq + 1e-6f) : 1.f;
            wf[r] = bs[r] * expf(gs[r]) * fk;
        }
    }
    __syncthreads();

    {
        // S = K·Kᵀ and QK = Q·Kᵀ for this warp's 16 rows.
        float s_acc[8][4], q_acc[8][4];
        gdn_zero<8>(s_acc);
        gdn_zero<8>(q_acc);
        gdn_mma_smem<T, 8, false, false>(s_acc, ks + warp * 16 * KS, KS, ks, KS, K);
        gdn_mma_smem<T, 8, false, false>(q_acc, xs + warp * 16 * XS, XS, ks, KS, K);
        // P goes through this warp's 16 q rows (read by no other warp) so
        // that it leaves in 16-byte row pieces rather than scattered pairs.
        __syncwarp();
        T* p_stage = xs + warp * 16 * XS;
#pragma unroll
        for (int n = 0; n < 8; ++n) {
#pragma unroll
            for (int hr = 0; hr < 2; ++hr) {
                const int i = warp * 16 + gq + 8 * hr;
                const int j = n * 8 + 2 * tq;
                const float gi = gs[i], fi = d.scale * rq[i], ai = bs[i] * rk[i];
                const float e0 = j <= i ? expf(gi - gs[j]) * rk[j] : 0.f;
                const float e1 = j + 1 <= i ? expf(gi - gs[j + 1]) * rk[j + 1] : 0.f;
                ms[i * FS + j] = j < i ? ai * e0 * s_acc[n][2 * hr] : 0.f;
                ms[i * FS + j + 1] = j + 1 < i ? ai * e1 * s_acc[n][2 * hr + 1] : 0.f;
                gdn_store2(p_stage + (gq + 8 * hr) * XS + j, fi * e0 * q_acc[n][2 * hr], fi * e1 * q_acc[n][2 * hr + 1]);
            }
        }
        gdn_copy_out16x64(p_out + ((u64)c * Hv + h) * GDN_C * GDN_C + warp * 16 * GDN_C, GDN_C, 16, p_stage, XS);
    }
    __syncthreads();

    // v rows replace q rows while the warps solve for T.
    gdn_load_rows<T, GDN_C, GDN_PREP_THREADS>(xs, XS, v + ((u64)start * Hv + h) * V, (u64)Hv * V, V, len);
    gdn_cp_commit();
    {
        // T = (I + A)⁻¹ by 16×16 blocks. Warp w inverts diagonal block w by
        // forward substitution (lane j < 16 owns column j in registers);
        // then level by level T_ij = −T_ii · Σ_{i>m≥j} A_im T_mj, warp i
        // computing block (i, i − lvl). A is read only strictly below the
        // diagonal, T only on and below it, so they never meet in ms.
        const int d0 = warp * 16;
        const int j = lane & 15;
        float col[16];
#pragma unroll
        for (int i = 0; i < 16; ++i) {
            const float* a_row = ms + (d0 + i) * FS + d0;
            float s = i == j ? 1.f : 0.f;
#pragma unroll
            for (int m = 0; m < i; ++m) s = fmaf(-a_row[m], col[m], s);
            col[i] = s;
        }
        if (lane < 16) {
#pragma unroll
            for (int i = 0; i < 16; ++i)
                if (i >= j) ms[(d0 + j) * FS + d0 + i] = col[i];
        }
        __syncthreads();
        for (int lvl = 1; lvl < 4; ++lvl) {
            if (warp >= lvl) {
                const int j0 = (warp - lvl) * 16;
                float x[2][4];
                // X, then T_ij, in place at block (i, j) of T.
                auto put = [&](float sign) {
#pragma unroll
                    for (int n = 0; n < 2; ++n)
#pragma unroll
                        for (int e = 0; e < 4; ++e)
                            ms[(j0 + n * 8 + 2 * tq + (e & 1)) * FS + d0 + gq + 8 * (e >> 1)] = sign * x[n][e];
                };
                gdn_zero<2>(x);
                gdn_block_mma_f32(
                    x, [&](int r, int kk) { return ms[(d0 + r) * FS + j0 + kk]; },
                    [&](int kk, int n) { return t_at(j0 + kk, j0 + n); }, 16 * lvl);
                put(1.f);
                __syncwarp();
                gdn_zero<2>(x);
                gdn_block_mma_f32(
                    x, [&](int r, int kk) { return t_at(d0 + r, d0 + kk); },
                    [&](int kk, int n) { return ms[(j0 + n) * FS + d0 + kk]; }, 16);
                __syncwarp();
                put(-1.f);
            }
            __syncthreads();
        }
    }
    {
        // T·diag(βe^G r_k) and T·diag(β) in T's type, over A and T. Lane
        // (a, b) = (lane % 8, lane / 8) takes rows 16·warp + a + 8·ri and
        // column pairs b + 4m, so neither the reads down T's columns nor the
        // row writes meet bank conflicts.
        const int a = lane & 7, b = lane >> 3;
        float2 tv[2][8];
#pragma unroll
        for (int ri = 0; ri < 2; ++ri)
#pragma unroll
            for (int m = 0; m < 8; ++m) {
                const int i = warp * 16 + a + 8 * ri, jj = 2 * (b + 4 * m);
                tv[ri][m] = make_float2(t_at(i, jj), t_at(i, jj + 1));
            }
        __syncthreads();
#pragma unroll
        for (int ri = 0; ri < 2; ++ri)
#pragma unroll
            for (int m = 0; m < 8; ++m) {
                const int i = warp * 16 + a + 8 * ri, jj = 2 * (b + 4 * m);
                gdn_store2(tw + i * TS + jj, tv[ri][m].x * wf[jj], tv[ri][m].y * wf[jj + 1]);
                gdn_store2(tu + i * TS + jj, tv[ri][m].x * bs[jj], tv[ri][m].y * bs[jj + 1]);
            }
    }
    gdn_cp_wait<0>();
    __syncthreads();

    // W = (T·diag(βe^G r_k))·K over all K columns at once, so that this
    // warp's rows of T·diag(βe^G r_k) are free to stage its output; then
    // U = (T·diag(β))·V 64 columns at a time, staged there too.
    T* stage = tw + warp * 16 * TS;
    const int rows = len - warp * 16;
    {
        float acc[K / 8][4];
        gdn_zero<K / 8>(acc);
        gdn_mma_smem<T, K / 8, false, true>(acc, stage, TS, ks, KS, GDN_C);
        T* out = w_out + ((u64)(start + warp * 16) * Hv + h) * K;
#pragma unroll
        for (int n0 = 0; n0 < K; n0 += 64) gdn_store16x64(out + n0, (u64)Hv * K, rows, stage, TS, acc + n0 / 8);
    }
    for (int n0 = 0; n0 < V; n0 += 64) {
        float acc[8][4];
        gdn_zero<8>(acc);
        gdn_mma_smem<T, 8, false, true>(acc, tu + warp * 16 * TS, TS, xs + n0, XS, GDN_C);
        gdn_store16x64(u_out + ((u64)(start + warp * 16) * Hv + h) * V + n0, (u64)Hv * V, rows, stage, TS, acc);
    }
    if (tid < len) {
        const float g_last = gs[len - 1];
        const u64 at = (u64)(start + tid) * Hv + h;
        fq_out[at] = d.scale * rq[tid] * expf(gs[tid]);
        fk_out[at] = rk[tid] * expf(g_last - gs[tid]);
        if (tid == 0) cd_out[(u64)c * Hv + h] = expf(g_last);
    }
}

// ---- state: one block of 256 threads per (value head × V tile, sequence) ---

#define GDN_STATE_THREADS 256

template <typename T, int K>
struct GdnStateLayout {
    static constexpr int PAD = 16 / (int)sizeof(T);
    static constexpr int KS = K + PAD;
    static constexpr int PS = GDN_C + PAD;
    static constexpr int US = GDN_VT + PAD;
    static constexpr int FLOATS = 2 * GDN_C + 4;  // f_q, f_k, chunk decay (padded to 16 bytes)
    // Elements of T per stage: W, K, [Q], P, U tiles, then the floats.
    __device__ static int stage_elems(bool q_in_w) {
        return (q_in_w ? 2 : 3) * GDN_C * KS + GDN_C * PS + GDN_C * US + FLOATS * 4 / (int)sizeof(T);
    }
};

template <typename T, int K>
__device__ void gdn_state(const T* __restrict__ q, const T* __restrict__ k,
                          const T* __restrict__ w_in, const T* __restrict__ u_in, const T* __restrict__ p_in,
                          const float* __restrict__ fq_in, const float* __restrict__ fk_in, const float* __restrict__ cd_in,
                          const float* initial_state, float* final_state, float* __restrict__ chunk_states,
                          T* __restrict__ o, const GdnSeqs& seqs, const GdnDims& d) {
    using L = GdnStateLayout<T, K>;
    constexpr int KS = L::KS, PS = L::PS, US = L::US;
    constexpr int NTH = K / 32;  // state column tiles per warp (each warp holds 16 rows × K/4)
    const int V = d.value_dim, Hv = d.num_value_heads, Hk = d.num_key_heads;
    const int tiles = V / GDN_VT;
    const int h = blockIdx.x / tiles, v0 = (blockIdx.x % tiles) * GDN_VT;
    const int kh = h / (Hv / Hk);
    const int seq = blockIdx.y;
    int tok0, tok1, c0, c1;
    gdn_seq_range(seqs, seq, tok0, tok1, c0, c1);
    const int tid = threadIdx.x, warp = tid >> 5, lane = tid & 31;
    const int gq = lane >> 2, tq = lane & 3;
    // State update: warp = (16-row half mw, K/4 column quarter nq); token
    // phases: warp = (16-token block rb, 16-column half ch of the V tile).
    const int mw = warp & 1, nq = warp >> 1;
    const int rb = warp & 3, ch = warp >> 2;
    const bool q_in_w = d.q_in_w != 0;
    const int stage_elems = L::stage_elems(q_in_w);

    extern __shared__ __align__(16) unsigned char gdn_smem[];
    T* stages = reinterpret_cast<T*>(gdn_smem);
    T* hs = stages + d.stages * stage_elems;  // [VT][KS] the state as an mma operand
    T* vn = hs + GDN_VT * KS;                 // [64][US] V_new
    T* vd = vn + GDN_C * US;                  // [64][US] f_k ∘ V_new

    const u64 state_base = ((u64)seq * Hv + h) * V * K;
    float acc_h[NTH][4];
#pragma unroll
    for (int n = 0; n < NTH; ++n)
#pragma unroll
        for (int e = 0; e < 4; ++e) {
            const int r = v0 + mw * 16 + gq + (e >= 2 ? 8 : 0);
            const int col = nq * (K / 4) + n * 8 + 2 * tq + (e & 1);
            acc_h[n][e] = initial_state ? initial_state[state_base + (u64)r * K + col] : 0.f;
        }

    auto stage_ptrs = [&](int s, T*& ws, T*& kt, T*& qt, T*& pt, T*& ut, float*& fl) {
        T* base = stages + s * stage_elems;
        ws = base;
        kt = ws + GDN_C * KS;
        qt = q_in_w ? ws : kt + GDN_C * KS;
        pt = (q_in_w ? kt : qt) + GDN_C * KS;
        ut = pt + GDN_C * PS;
        fl = reinterpret_cast<float*>(ut + GDN_C * US);
    };
    // Part 1: W and K; part 2: Q, P, U and the row factors.
    auto load_chunk = [&](int c, int s, int parts) {
        T *ws, *kt, *qt, *pt, *ut;
        float* fl;
        stage_ptrs(s, ws, kt, qt, pt, ut, fl);
        const int start = tok0 + (c - c0) * GDN_C;
        const int len = min(GDN_C, tok1 - start);
        if (parts & 1) {
            gdn_load_tile<T, GDN_C, K, GDN_STATE_THREADS>(ws, KS, w_in + ((u64)start * Hv + h) * K, (u64)Hv * K, len);
            gdn_load_tile<T, GDN_C, K, GDN_STATE_THREADS>(kt, KS, k + ((u64)start * Hk + kh) * K, (u64)Hk * K, len);
        }
        if (!(parts & 2)) return;
        if (!q_in_w) gdn_load_tile<T, GDN_C, K, GDN_STATE_THREADS>(qt, KS, q + ((u64)start * Hk + kh) * K, (u64)Hk * K, len);
        gdn_load_tile<T, GDN_C, GDN_C, GDN_STATE_THREADS>(pt, PS, p_in + ((u64)c * Hv + h) * GDN_C * GDN_C, GDN_C, GDN_C);
        gdn_load_tile<T, GDN_C, GDN_VT, GDN_STATE_THREADS>(ut, US, u_in + ((u64)start * Hv + h) * V + v0, (u64)Hv * V, len);
        if (tid < GDN_C) {
            const u64 at = (u64)(start + tid) * Hv + h;
            const bool ok = tid < len;
            gdn_cp4(fl + tid, ok ? fq_in + at : fq_in, ok);
            gdn_cp4(fl + GDN_C + tid, ok ? fk_in + at : fk_in, ok);
        } else if (tid == GDN_C) {
            gdn_cp4(fl + 2 * GDN_C, cd_in + (u64)c * Hv + h, true);
        }
    };

    // With S stages, chunk c + S − 1 is being loaded while chunk c is used.
    // With three, its copies are issued in two halves, at the start of the
    // step and after V_new: issued all at once, they kept every warp in the
    // copy queue with no products to overlap (the step took 9% longer on an
    // H200, 16 key / 32 value heads, T = 32768).
    const int S = d.stages;
    const bool halves = S == 3 && !q_in_w;
    for (int p = 0; p < (S > 1 ? S - 1 : 1); ++p) {
        if (c0 + p < c1) load_chunk(c0 + p, p, 3);
        gdn_cp_commit();
    }
    for (int c = c0; c < c1; ++c) {
        const int s = (c - c0) % S;
        if (halves) {
            // Chunk c + 2's group is committed after its second half, so
            // chunk c's is the older of the two pending.
            if (c + 2 < c1) load_chunk(c + 2, (c - c0 + 2) % 3, 1);
            gdn_cp_wait<1>();
        } else if (S > 1) {
            if (c + S - 1 < c1) load_chunk(c + S - 1, (c - c0 + S - 1) % S, 3);
            gdn_cp_commit();
            if (S == 3) gdn_cp_wait<2>();
            else gdn_cp_wait<1>();
        } else {
            gdn_cp_wait<0>();
        }
        T *ws, *kt, *qt, *pt, *ut;
        float* fl;
        stage_ptrs(s, ws, kt, qt, pt, ut, fl);
        const int start = tok0 + (c - c0) * GDN_C;
        const int len = min(GDN_C, tok1 - start);

        // (a) The chunk-start state: mma operand copy, and the optional snapshot.
#pragma unroll
        for (int n = 0; n < NTH; ++n)
#pragma unroll
            for (int hr = 0; hr < 2; ++hr) {
                const int r = mw * 16 + gq + 8 * hr;
                const int col = nq * (K / 4) + n * 8 + 2 * tq;
                gdn_store2(hs + r * KS + col, acc_h[n][2 * hr], acc_h[n][2 * hr + 1]);
                if (chunk_states)
                    gdn_store2(chunk_states + ((u64)c * Hv + h) * V * K + (u64)(v0 + r) * K + col, acc_h[n][2 * hr], acc_h[n][2 * hr + 1]);
            }
        __syncthreads();

        // (b) V_new = U − W·Hᵀ for this warp's 16 tokens, and Q·Hᵀ beside it
        // (same B operand) unless Q arrives later.
        float oq[2][4];
        gdn_zero<2>(oq);
        {
            float acc[2][4];
            gdn_zero<2>(acc);
            if (q_in_w) gdn_mma_smem<T, 2, false, false>(acc, ws + rb * 16 * KS, KS, hs + ch * 16 * KS, KS, K);
            else gdn_mma_smem_pair<T, 2>(acc, oq, ws + rb * 16 * KS, qt + rb * 16 * KS, KS, hs + ch * 16 * KS, KS, K);
            const float* fk = fl + GDN_C;
#pragma unroll
            for (int n = 0; n < 2; ++n)
#pragma unroll
                for (int hr = 0; hr < 2; ++hr) {
                    const int i = rb * 16 + gq + 8 * hr;
                    const int col = ch * 16 + n * 8 + 2 * tq;
                    const float x0 = to_f32(ut[i * US + col]) - acc[n][2 * hr];
                    const float x1 = to_f32(ut[i * US + col + 1]) - acc[n][2 * hr + 1];
                    gdn_store2(vn + i * US + col, x0, x1);
                    gdn_store2(vd + i * US + col, fk[i] * x0, fk[i] * x1);
                }
        }
        __syncthreads();
        if (halves) {
            if (c + 2 < c1) load_chunk(c + 2, (c - c0 + 2) % 3, 2);
            gdn_cp_commit();
        }
        if (q_in_w) {
            gdn_load_tile<T, GDN_C, K, GDN_STATE_THREADS>(qt, KS, q + ((u64)start * Hk + kh) * K, (u64)Hk * K, len);
            gdn_cp_commit();
            gdn_cp_wait<0>();
            __syncthreads();
        }

        // (c) O = f_q ∘ (Q·Hᵀ) + P·V_new.
        {
            float (*acc)[4] = oq;
            if (q_in_w) gdn_mma_smem<T, 2, false, false>(acc, qt + rb * 16 * KS, KS, hs + ch * 16 * KS, KS, K);
#pragma unroll
            for (int n = 0; n < 2; ++n)
#pragma unroll
                for (int e = 0; e < 4; ++e) acc[n][e] *= fl[rb * 16 + gq + (e >= 2 ? 8 : 0)];
            gdn_mma_smem<T, 2, false, true>(acc, pt + rb * 16 * PS, PS, vn + ch * 16, US, GDN_C);
#pragma unroll
            for (int n = 0; n < 2; ++n)
#pragma unroll
                for (int hr = 0; hr < 2; ++hr) {
                    const int i = rb * 16 + gq + 8 * hr;
                    if (i < len) gdn_store2(o + ((u64)(start + i) * Hv + h) * V + v0 + ch * 16 + n * 8 + 2 * tq, acc[n][2 * hr], acc[n][2 * hr + 1]);
                }
        }

        // (d) H ← e^{G_L} H + (f_k ∘ V_new)ᵀ·K.
        {
            const float cd = fl[2 * GDN_C];
#pragma unroll
            for (int n = 0; n < NTH; ++n)
#pragma unroll
                for (int e = 0; e < 4; ++e) acc_h[n][e] *= cd;
            gdn_mma_smem<T, NTH, true, true>(acc_h, vd + mw * 16, US, kt + nq * (K / 4), KS, GDN_C);
        }
        __syncthreads();
        if (S == 1 && c + 1 < c1) {
            load_chunk(c + 1, 0, 3);
            gdn_cp_commit();
        }
    }
    gdn_cp_wait<0>();

    if (final_state) {
#pragma unroll
        for (int n = 0; n < NTH; ++n)
#pragma unroll
            for (int e = 0; e < 4; ++e) {
                const int r = v0 + mw * 16 + gq + (e >= 2 ? 8 : 0);
                const int col = nq * (K / 4) + n * 8 + 2 * tq + (e & 1);
                final_state[state_base + (u64)r * K + col] = acc_h[n][e];
            }
    }
}

// MINB: prep blocks per SM the registers must allow (shared memory permits
// 4 at K ≤ 128 in BF16; the others are held to fewer by shared memory).
#define GDN_PREFILL(KD, DN, T, MINB)                                                                             \
    extern "C" __global__ void __launch_bounds__(128, MINB) gdn_prefill_prep_k##KD##_##DN(                             \
        const T* q, const T* k, const T* v, const float* g, const float* beta, T* w, T* u, T* p, float* fq,      \
        float* fk, float* cd, GdnSeqs seqs, GdnDims d) {                                                         \
        gdn_prep<T, KD>(q, k, v, g, beta, w, u, p, fq, fk, cd, seqs, d);                                         \
    }                                                                                                            \
    extern "C" __global__ void __launch_bounds__(256) gdn_prefill_state_k##KD##_##DN(                            \
        const T* q, const T* k, const T* w, const T* u, const T* p, const float* fq, const float* fk,            \
        const float* cd, const float* initial_state, float* final_state, float* chunk_states, T* o,              \
        GdnSeqs seqs, GdnDims d) {                                                                               \
        gdn_state<T, KD>(q, k, w, u, p, fq, fk, cd, initial_state, final_state, chunk_states, o, seqs, d);       \
    }

GDN_PREFILL(64, bf16, bf16_t, 4)
GDN_PREFILL(128, bf16, bf16_t, 4)
GDN_PREFILL(256, bf16, bf16_t, 1)
GDN_PREFILL(64, f32, float, 1)
GDN_PREFILL(128, f32, float, 1)
GDN_PREFILL(256, f32, float, 1)
