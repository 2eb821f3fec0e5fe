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
    i32 stages;     // state kernel: shared-memory stages (1 or 2)
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
        asm volatile("mma.sync.aligned.m16n8k16.row.col.f32.bf16.bf16.f32 {%0,%1,%2,%3}, {%4,%5,%6,%7}, {%8,%9}, {%0,%1,%2,%3};"
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
        asm volatile("mma.sync.aligned.m16n8k8.row.col.f32.tf32.tf32.f32 {%0,%1,%2,%3}, {%4,%5,%6,%7}, {%8,%9}, {%0,%1,%2,%3};"
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

// rows × (cols elements) of T from global rows `row_stride` apart into shared
// rows `sstride` apart; rows ≥ valid_rows are zero-filled. All threads call.
template <typename T>
__device__ __forceinline__ void gdn_load_tile(T* dst, int sstride, const T* src, u64 row_stride,
                                              int rows, int cols, int valid_rows) {
    const int per_row = cols * (int)sizeof(T) / 16;
    const int vec = 16 / (int)sizeof(T);
    for (int i = threadIdx.x; i < rows * per_row; i += blockDim.x) {
        const int r = i / per_row, c = (i - r * per_row) * vec;
        const bool valid = r < valid_rows;
        gdn_cp16(dst + r * sstride + c, valid ? src + r * row_stride + c : src, valid);
    }
}

// ---- prep: one block of 128 threads per (chunk, value head) ----------------

template <typename T, int K>
__device__ void gdn_prep(const T* __restrict__ q, const T* __restrict__ k, const T* __restrict__ v,
                         const float* __restrict__ g, const float* __restrict__ beta,
                         T* __restrict__ w_out, T* __restrict__ u_out, T* __restrict__ p_out,
                         float* __restrict__ fq_out, float* __restrict__ fk_out, float* __restrict__ cd_out,
                         const GdnSeqs& seqs, const GdnDims& d) {
    constexpr int PAD = 16 / (int)sizeof(T);
    constexpr int KS = K + PAD;
    constexpr int FS = GDN_C + 1;  // f32 matrices: odd stride, column walks are conflict-free
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
    float* as = reinterpret_cast<float*>(xs + GDN_C * XS);  // [64][FS] A, then T·diag(βe^G r_k)
    float* ts = as + GDN_C * FS;                        // [64][FS] T, then T·diag(β)
    float* gs = ts + GDN_C * FS;                        // G (cumulative log-decay)
    float* bs = gs + GDN_C;                             // β
    float* rk = bs + GDN_C;                             // key row factors
    float* rq = rk + GDN_C;                             // query row factors

    const u64 qk_row = (u64)Hk * K;
    gdn_load_tile<T>(ks, KS, k + ((u64)start * Hk + kh) * K, qk_row, GDN_C, K, len);
    gdn_load_tile<T>(xs, XS, q + ((u64)start * Hk + kh) * K, qk_row, GDN_C, K, len);
    gdn_cp_commit();
    if (tid < GDN_C) {
        const bool ok = tid < len;
        gs[tid] = ok ? g[(u64)(start + tid) * Hv + h] : 0.f;
        bs[tid] = ok ? beta[(u64)(start + tid) * Hv + h] : 0.f;
    }
    gdn_cp_wait<0>();
    __syncthreads();

    // Row factors of the optional L2 norm: 1 / sqrt(Σx² + 1e-6).
    for (int r = warp * 16; r < warp * 16 + 16; ++r) {
        float sk = 0.f, sq = 0.f;
        for (int e = lane; e < K; e += 32) {
            const float a = to_f32(ks[r * KS + e]), b = to_f32(xs[r * XS + e]);
            sk += a * a;
            sq += b * b;
        }
        sk = warp_sum(sk);
        sq = warp_sum(sq);
        if (lane == 0) {
            rk[r] = d.l2_norm ? 1.f / sqrtf(sk + 1e-6f) : 1.f;
            rq[r] = d.l2_norm ? 1.f / sqrtf(sq + 1e-6f) : 1.f;
        }
    }
    if (tid == 0) {
        float run = 0.f;
        for (int i = 0; i < GDN_C; ++i) { run += gs[i]; gs[i] = run; }
    }
    __syncthreads();

    {
        // S = K·Kᵀ and QK = Q·Kᵀ for this warp's 16 rows.
        float s_acc[8][4], q_acc[8][4];
        gdn_zero<8>(s_acc);
        gdn_zero<8>(q_acc);
        gdn_warp_gemm<T, 8>(s_acc, ks + warp * 16 * KS, KS, 1, ks, KS, 1, K);
        gdn_warp_gemm<T, 8>(q_acc, xs + warp * 16 * XS, XS, 1, ks, KS, 1, K);
        T* p_tile = p_out + ((u64)c * Hv + h) * GDN_C * GDN_C;
#pragma unroll
        for (int n = 0; n < 8; ++n) {
#pragma unroll
            for (int e = 0; e < 4; ++e) {
                const int i = warp * 16 + gq + (e >= 2 ? 8 : 0);
                const int j = n * 8 + 2 * tq + (e & 1);
                const float decay = j <= i ? expf(gs[i] - gs[j]) : 0.f;
                as[i * FS + j] = j < i ? bs[i] * rk[i] * rk[j] * decay * s_acc[n][e] : 0.f;
                p_tile[i * GDN_C + j] = from_f32<T>(d.scale * rq[i] * rk[j] * decay * q_acc[n][e]);
            }
        }
    }
    __syncthreads();

    // v rows replace q rows while the warps solve for T.
    gdn_load_tile<T>(xs, XS, v + ((u64)start * Hv + h) * V, (u64)Hv * V, GDN_C, V, len);
    gdn_cp_commit();
    {
        // Column j of T = (I + A)⁻¹ by forward substitution, two lanes of one
        // warp per column (odd and even m), four independent sums each so
        // the shared-memory loads overlap; only __syncwarp is needed.
        const int j = tid >> 1, half = tid & 1;
        for (int i = 0; i < GDN_C; ++i) {
            const float* a_row = as + i * FS;
            float s0 = 0.f, s1 = 0.f, s2 = 0.f, s3 = 0.f;
            int m = half;
            for (; m + 6 < i; m += 8) {
                s0 = fmaf(a_row[m], ts[m * FS + j], s0);
                s1 = fmaf(a_row[m + 2], ts[(m + 2) * FS + j], s1);
                s2 = fmaf(a_row[m + 4], ts[(m + 4) * FS + j], s2);
                s3 = fmaf(a_row[m + 6], ts[(m + 6) * FS + j], s3);
            }
            for (; m < i; m += 2) s0 = fmaf(a_row[m], ts[m * FS + j], s0);
            float s = (s0 + s1) + (s2 + s3);
            s += __shfl_xor_sync(0xffffffffu, s, 1);
            if (half == 0) ts[i * FS + j] = (i == j ? 1.f : 0.f) - s;
            __syncwarp();
        }
    }
    gdn_cp_wait<0>();
    __syncthreads();
    for (int e = tid; e < GDN_C * GDN_C; e += blockDim.x) {
        const int i = e / GDN_C, j = e % GDN_C;
        const float t = ts[i * FS + j];
        as[i * FS + j] = t * bs[j] * expf(gs[j]) * rk[j];
        ts[i * FS + j] = t * bs[j];
    }
    __syncthreads();

    // W = (T·diag(βe^G r_k))·K and U = (T·diag(β))·V, 64 columns at a time.
    for (int n0 = 0; n0 < K; n0 += 64) {
        float acc[8][4];
        gdn_zero<8>(acc);
        gdn_warp_gemm<T, 8>(acc, as + warp * 16 * FS, FS, 1, ks + n0, 1, KS, GDN_C);
#pragma unroll
        for (int n = 0; n < 8; ++n)
#pragma unroll
            for (int e = 0; e < 4; ++e) {
                const int i = warp * 16 + gq + (e >= 2 ? 8 : 0);
                if (i < len) w_out[((u64)(start + i) * Hv + h) * K + n0 + n * 8 + 2 * tq + (e & 1)] = from_f32<T>(acc[n][e]);
            }
    }
    for (int n0 = 0; n0 < V; n0 += 64) {
        float acc[8][4];
        gdn_zero<8>(acc);
        gdn_warp_gemm<T, 8>(acc, ts + warp * 16 * FS, FS, 1, xs + n0, 1, XS, GDN_C);
#pragma unroll
        for (int n = 0; n < 8; ++n)
#pragma unroll
            for (int e = 0; e < 4; ++e) {
                const int i = warp * 16 + gq + (e >= 2 ? 8 : 0);
                if (i < len) u_out[((u64)(start + i) * Hv + h) * V + n0 + n * 8 + 2 * tq + (e & 1)] = from_f32<T>(acc[n][e]);
            }
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
    auto load_chunk = [&](int c, int s) {
        T *ws, *kt, *qt, *pt, *ut;
        float* fl;
        stage_ptrs(s, ws, kt, qt, pt, ut, fl);
        const int start = tok0 + (c - c0) * GDN_C;
        const int len = min(GDN_C, tok1 - start);
        gdn_load_tile<T>(ws, KS, w_in + ((u64)start * Hv + h) * K, (u64)Hv * K, GDN_C, K, len);
        gdn_load_tile<T>(kt, KS, k + ((u64)start * Hk + kh) * K, (u64)Hk * K, GDN_C, K, len);
        if (!q_in_w) gdn_load_tile<T>(qt, KS, q + ((u64)start * Hk + kh) * K, (u64)Hk * K, GDN_C, K, len);
        gdn_load_tile<T>(pt, PS, p_in + ((u64)c * Hv + h) * GDN_C * GDN_C, GDN_C, GDN_C, GDN_C, GDN_C);
        gdn_load_tile<T>(ut, US, u_in + ((u64)start * Hv + h) * V + v0, (u64)Hv * V, GDN_C, GDN_VT, len);
        if (tid < GDN_C) {
            const u64 at = (u64)(start + tid) * Hv + h;
            const bool ok = tid < len;
            gdn_cp4(fl + tid, ok ? fq_in + at : fq_in, ok);
            gdn_cp4(fl + GDN_C + tid, ok ? fk_in + at : fk_in, ok);
        } else if (tid == GDN_C) {
            gdn_cp4(fl + 2 * GDN_C, cd_in + (u64)c * Hv + h, true);
        }
    };

    if (c0 < c1) load_chunk(c0, 0);
    gdn_cp_commit();
    for (int c = c0; c < c1; ++c) {
        const int s = d.stages == 2 ? (c - c0) & 1 : 0;
        if (d.stages == 2) {
            if (c + 1 < c1) load_chunk(c + 1, s ^ 1);
            gdn_cp_commit();
            gdn_cp_wait<1>();
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
            for (int e = 0; e < 4; ++e) {
                const int r = mw * 16 + gq + (e >= 2 ? 8 : 0);
                const int col = nq * (K / 4) + n * 8 + 2 * tq + (e & 1);
                hs[r * KS + col] = from_f32<T>(acc_h[n][e]);
                if (chunk_states) chunk_states[((u64)c * Hv + h) * V * K + (u64)(v0 + r) * K + col] = acc_h[n][e];
            }
        __syncthreads();

        // (b) V_new = U − W·Hᵀ for this warp's 16 tokens.
        {
            float acc[2][4];
            gdn_zero<2>(acc);
            gdn_warp_gemm<T, 2>(acc, ws + rb * 16 * KS, KS, 1, hs + ch * 16 * KS, KS, 1, K);
            const float* fk = fl + GDN_C;
#pragma unroll
            for (int n = 0; n < 2; ++n)
#pragma unroll
                for (int e = 0; e < 4; ++e) {
                    const int i = rb * 16 + gq + (e >= 2 ? 8 : 0);
                    const int col = ch * 16 + n * 8 + 2 * tq + (e & 1);
                    const float x = to_f32(ut[i * US + col]) - acc[n][e];
                    vn[i * US + col] = from_f32<T>(x);
                    vd[i * US + col] = from_f32<T>(fk[i] * x);
                }
        }
        __syncthreads();
        if (q_in_w) {
            gdn_load_tile<T>(qt, KS, q + ((u64)start * Hk + kh) * K, (u64)Hk * K, GDN_C, K, len);
            gdn_cp_commit();
            gdn_cp_wait<0>();
            __syncthreads();
        }

        // (c) O = f_q ∘ (Q·Hᵀ) + P·V_new.
        {
            float acc[2][4];
            gdn_zero<2>(acc);
            gdn_warp_gemm<T, 2>(acc, qt + rb * 16 * KS, KS, 1, hs + ch * 16 * KS, KS, 1, K);
#pragma unroll
            for (int n = 0; n < 2; ++n)
#pragma unroll
                for (int e = 0; e < 4; ++e) acc[n][e] *= fl[rb * 16 + gq + (e >= 2 ? 8 : 0)];
            gdn_warp_gemm<T, 2>(acc, pt + rb * 16 * PS, PS, 1, vn + ch * 16, 1, US, GDN_C);
#pragma unroll
            for (int n = 0; n < 2; ++n)
#pragma unroll
                for (int e = 0; e < 4; ++e) {
                    const int i = rb * 16 + gq + (e >= 2 ? 8 : 0);
                    if (i < len) o[((u64)(start + i) * Hv + h) * V + v0 + ch * 16 + n * 8 + 2 * tq + (e & 1)] = from_f32<T>(acc[n][e]);
                }
        }

        // (d) H ← e^{G_L} H + (f_k ∘ V_new)ᵀ·K.
        {
            const float cd = fl[2 * GDN_C];
#pragma unroll
            for (int n = 0; n < NTH; ++n)
#pragma unroll
                for (int e = 0; e < 4; ++e) acc_h[n][e] *= cd;
            gdn_warp_gemm<T, NTH>(acc_h, vd + mw * 16, 1, US, kt + nq * (K / 4), 1, KS, GDN_C);
        }
        __syncthreads();
        if (d.stages != 2 && c + 1 < c1) {
            load_chunk(c + 1, 0);
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

#define GDN_PREFILL(KD, DN, T)                                                                                   \
    extern "C" __global__ void __launch_bounds__(128) gdn_prefill_prep_k##KD##_##DN(                             \
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

GDN_PREFILL(64, bf16, bf16_t)
GDN_PREFILL(128, bf16, bf16_t)
GDN_PREFILL(256, bf16, bf16_t)
GDN_PREFILL(64, f32, float)
GDN_PREFILL(128, f32, float)
GDN_PREFILL(256, f32, float)
