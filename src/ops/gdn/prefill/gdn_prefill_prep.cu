// Gated DeltaNet prefill, prep kernel (see gdn_prefill.cuh).
#include "gdn_prefill.cuh"

// A warp's 16 × 64 tile, staged in its shared rows `stage` (ss apart), to
// global rows `os` apart as 16-byte row pieces (rows ≥ valid are skipped):
// stored straight from C fragments, each instruction would fill half
// sectors of 8 rows.
template <typename T>
__device__ __forceinline__ void gdn_copy_out16x64(T* out, u64 os, int valid, const T* stage, int ss) {
    constexpr u32 VEC = 16 / sizeof(T);
    constexpr u32 PER_ROW = 64 / VEC;
    constexpr u32 STEP = 32 / PER_ROW;  // rows per pass of the warp
    const u32 lane = threadIdx.x & 31;
    const u32 r0 = lane / PER_ROW, col = lane % PER_ROW * VEC;
    T* to = out + r0 * os + col;
    const T* from = stage + r0 * ss + col;
    __syncwarp();
#pragma unroll
    for (u32 r = r0; r < 16; r += STEP, to += STEP * os, from += STEP * ss)
        if ((int)r < valid) *reinterpret_cast<uint4*>(to) = *reinterpret_cast<const uint4*>(from);
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

// acc[n] of S = K·Kᵀ and QK = Q·Kᵀ for this warp's 16 rows of the BF16
// tiles k and q (rows `stride` apart), which share their B fragments (the k
// rows); and, when `diag`, the 16 × 16 diagonal blocks of K·Kᵀ and Q·Qᵀ
// from the A fragments alone: the halves {a0, a2} and {a1, a3} of a row
// block's A fragment are the B fragments of its two 8-row tiles.
template <int K>
__device__ __forceinline__ void gdn_prep_products(float (*s_acc)[4], float (*q_acc)[4], float (*kk)[4],
                                                  float (*qq)[4], const bf16_t* k, const bf16_t* q, int stride,
                                                  int warp, bool diag) {
    const int lane = threadIdx.x & 31;
    const int r8 = lane & 7, m1 = (lane >> 3) & 1, m2 = lane >> 4;
    const u32 a_off = 2 * ((warp * 16 + r8 + 8 * m1) * stride + 8 * m2);
    const u32 pk = smem_addr(k) + a_off, pq = smem_addr(q) + a_off;
    const u32 pb = smem_addr(k) + 2 * ((r8 + 8 * m2) * stride + 8 * m1);
    using M = GdnMma<bf16_t>;
#pragma unroll
    for (int k0 = 0; k0 < K; k0 += 16) {
        u32 ak[4], aq[4];
        gdn_ldsm(ak, pk + 2 * k0);
        gdn_ldsm(aq, pq + 2 * k0);
#pragma unroll
        for (int n = 0; n < 8; n += 2) {
            u32 bf[4];
            gdn_ldsm(bf, pb + 2 * (n * 8 * stride + k0));
            M::mma(s_acc[n], ak, bf);
            M::mma(s_acc[n + 1], ak, bf + 2);
            M::mma(q_acc[n], aq, bf);
            M::mma(q_acc[n + 1], aq, bf + 2);
        }
        if (diag) {
            const u32 k_lo[2] = {ak[0], ak[2]}, k_hi[2] = {ak[1], ak[3]};
            const u32 q_lo[2] = {aq[0], aq[2]}, q_hi[2] = {aq[1], aq[3]};
            M::mma(kk[0], ak, k_lo);
            M::mma(kk[1], ak, k_hi);
            M::mma(qq[0], aq, q_lo);
            M::mma(qq[1], aq, q_hi);
        }
    }
}

// ---- f32 16×16 blocks on tensor cores (split tf32, about f32 accuracy) -----

// x ≈ hi + lo, both tf32 (the low 13 bits clear), by truncation: three
// instructions where rounding (cvt.rna.tf32) takes about eight; hi + lo
// is within 2⁻²⁰|x| of x.
__device__ __forceinline__ void gdn_split_tf32(float x, u32& hi, u32& lo) {
    constexpr u32 TF32 = 0xffffe000u;
    hi = __float_as_uint(x) & TF32;
    lo = __float_as_uint(x - __uint_as_float(hi)) & TF32;
}

// acc += X(16 × kdim) · Y(kdim × 8·NT), f32 elements read through the
// accessors x(r, k) and y(k, n); hi·hi + hi·lo + lo·hi products of m16n8k8 tf32.
template <int NT, typename FX, typename FY>
__device__ __forceinline__ void gdn_block_mma_f32(float (*acc)[4], FX x, FY y, int kdim) {
    const int g = (threadIdx.x & 31) >> 2, t = threadIdx.x & 3;
    for (int k0 = 0; k0 < kdim; k0 += 8) {
        u32 ah[4], al[4];
        gdn_split_tf32(x(g, k0 + t), ah[0], al[0]);
        gdn_split_tf32(x(g + 8, k0 + t), ah[1], al[1]);
        gdn_split_tf32(x(g, k0 + t + 4), ah[2], al[2]);
        gdn_split_tf32(x(g + 8, k0 + t + 4), ah[3], al[3]);
#pragma unroll
        for (int n = 0; n < NT; ++n) {
            u32 bh[2], bl[2];
            gdn_split_tf32(y(k0 + t, n * 8 + g), bh[0], bl[0]);
            gdn_split_tf32(y(k0 + t + 4, n * 8 + g), bh[1], bl[1]);
            GdnMma<float>::mma(acc[n], al, bh);
            GdnMma<float>::mma(acc[n], ah, bl);
            GdnMma<float>::mma(acc[n], ah, bh);
        }
    }
}

// sign · X (16 × 8·NT, C fragments) to T's transposed place for rows
// i0 … i0 + 15 and columns c0 …: T(i0 + r, c0 + n) is ms[(c0 + n)·FS + i0 + r].
template <int NT, int FS>
__device__ __forceinline__ void gdn_put_t(float* ms, const float (*x)[4], int i0, int c0, float sign) {
    const int g = (threadIdx.x & 31) >> 2, t = threadIdx.x & 3;
#pragma unroll
    for (int n = 0; n < NT; ++n)
#pragma unroll
        for (int e = 0; e < 4; ++e) ms[(c0 + n * 8 + 2 * t + (e & 1)) * FS + i0 + g + 8 * (e >> 1)] = sign * x[n][e];
}

// ---- prep: one block of 128 threads per (chunk, value head), heads fastest --

#define GDN_PREP_THREADS 128

template <typename T, int K>
__device__ void gdn_prep(const T* __restrict__ q, const T* __restrict__ k, const T* __restrict__ v,
                         const float* __restrict__ g, const float* __restrict__ beta,
                         T* __restrict__ w_out, T* __restrict__ u_out, T* __restrict__ p_out,
                         float* __restrict__ f_out,
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
    // Value heads vary fastest along the grid: the blocks in flight then
    // cover a few chunks of every head, contiguous stretches of v, W and U.
    const int c = blockIdx.x / (u32)Hv, h = blockIdx.x % (u32)Hv;
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
    T* xs = ks + GDN_C * KS;                            // [64][KS] q rows, then [64][XS] v rows
    float* ms = reinterpret_cast<float*>(xs + GDN_C * XS);  // [64][FS] A(i, j) at i·FS + j, T(i, j) at j·FS + i
    T* tw = reinterpret_cast<T*>(ms);                   // [64][TS] T·diag(βe^G r_k), over A and T
    T* tu = tw + GDN_C * TS;                            // [64][TS] T·diag(β)
    float* gs = reinterpret_cast<float*>(reinterpret_cast<unsigned char*>(ms) + M_BYTES);  // G·log2(e) (cumulative decay)
    float* bs = gs + GDN_C;                             // β
    float* rk = bs + GDN_C;                             // key row factors
    float* rq = rk + GDN_C;                             // query row factors
    float* wf = rq + GDN_C;                             // β e^G r_k, the column factors of W
    // 2^x of the decays (G is kept in log2 units): one MUFU instruction, but
    // at K = 256 that form costs ptxas 200 more bytes of spills.
    auto pow2 = [](float x) {
        if constexpr (K > 128) return exp2f(x);
        else return gdn_exp2(x);
    };
    // T(i, j) of the lower-triangular inverse; zero above the diagonal.
    auto t_at = [&](int i, int j) { return i >= j ? ms[j * FS + i] : 0.f; };

    const u64 qk_row = (u64)Hk * K;
    gdn_load_tile<T, GDN_C, K, GDN_PREP_THREADS>(ks, KS, k + ((u64)start * Hk + kh) * K, qk_row, len);
    gdn_load_tile<T, GDN_C, K, GDN_PREP_THREADS>(xs, KS, q + ((u64)start * Hk + kh) * K, qk_row, len);
    cp_async_commit();
    if (warp == 0) {
        // G = inclusive prefix sum of g (two tokens per lane), kept as
        // G·log2(e) for pow2.
        const int i0 = 2 * lane;
        const float a0 = i0 < len ? g[(u64)(start + i0) * Hv + h] : 0.f;
        const float a1 = i0 + 1 < len ? g[(u64)(start + i0 + 1) * Hv + h] : 0.f;
        float run = a0 + a1;
#pragma unroll
        for (int o = 1; o < 32; o <<= 1) {
            const float x = __shfl_up_sync(0xffffffffu, run, o);
            if (lane >= o) run += x;
        }
        constexpr float LOG2E = 1.4426950408889634f;
        gs[i0] = (run - a1) * LOG2E;
        gs[i0 + 1] = run * LOG2E;
    } else if (warp == 1) {
        bool contracts = d.l2_norm != 0;
#pragma unroll
        for (int i = lane; i < GDN_C; i += 32) {
            const float b = i < len ? beta[(u64)(start + i) * Hv + h] : 0.f;
            bs[i] = b;
            contracts &= b >= 0.f && b <= 2.f;
        }
        // The chunk's contraction flag (GDN_F_FLOATS), stored at once so
        // that nothing stays live for it.
        contracts = __all_sync(0xffffffffu, contracts);
        if (lane == 0) f_out[((u64)c * Hv + h) * GDN_F_FLOATS + 2 * GDN_C + 1] = contracts ? 1.f : 0.f;
    }
    cp_async_wait<0>();
    __syncthreads();

    // Row factors of the optional L2 norm, 1 / sqrt(Σx² + 1e-6), and the
    // column factors of W, βe^G r_k. BF16 calls at K ≤ 128 take Σk² and Σq²
    // from diagonals of K·Kᵀ and Q·Qᵀ on tensor cores, below; the others
    // sum here (tf32 products would round F32 inputs to 10 bits, and K = 256
    // has no registers to spare).
    constexpr bool DIAG_NORMS = sizeof(T) == 2 && K <= 128;
    auto row_factors = [&](int r, float sk, float sq) {
        const float fk = d.l2_norm ? 1.f / sqrtf(sk + 1e-6f) : 1.f;
        rk[r] = fk;
        rq[r] = d.l2_norm ? 1.f / sqrtf(sq + 1e-6f) : 1.f;
        wf[r] = bs[r] * pow2(gs[r]) * fk;
    };
    if constexpr (!DIAG_NORMS) {
        // Two threads per row, 16-byte reads.
        const int r = tid >> 1, half = tid & 1;
        constexpr int VEC = 16 / (int)sizeof(T);
        const uint4* kr = reinterpret_cast<const uint4*>(ks + r * KS + half * (K / 2));
        const uint4* qr = reinterpret_cast<const uint4*>(xs + r * KS + half * (K / 2));
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
        if (half == 0) row_factors(r, sk, sq);
        __syncthreads();
    }

    {
        // S = K·Kᵀ and QK = Q·Kᵀ for this warp's 16 rows.
        float s_acc[8][4], q_acc[8][4];
        gdn_zero<8>(s_acc);
        gdn_zero<8>(q_acc);
        if constexpr (DIAG_NORMS) {
            // Σk² and Σq² of row 16·warp + gq + 8hr: element (gq + 8hr,
            // gq + 8hr) of this warp's 16 × 16 blocks of K·Kᵀ and Q·Qᵀ, in
            // tile hr at the lanes with 2tq + e = gq.
            float kk[2][4], qq[2][4];
            gdn_zero<2>(kk);
            gdn_zero<2>(qq);
            gdn_prep_products<K>(s_acc, q_acc, kk, qq, ks, xs, KS, warp, d.l2_norm != 0);
            if (tq == gq >> 1)
#pragma unroll
                for (int hr = 0; hr < 2; ++hr) {
                    const bool odd = gq & 1;
                    row_factors(warp * 16 + gq + 8 * hr, odd ? kk[hr][2 * hr + 1] : kk[hr][2 * hr],
                                odd ? qq[hr][2 * hr + 1] : qq[hr][2 * hr]);
                }
            __syncthreads();
        } else {
            gdn_mma_smem<T, 8, false, false>(s_acc, ks + warp * 16 * KS, KS, ks, KS, K);
            gdn_mma_smem<T, 8, false, false>(q_acc, xs + warp * 16 * KS, KS, ks, KS, K);
        }
        // P goes through this warp's 16 q rows (read by no other warp) so
        // that it leaves in 16-byte row pieces rather than scattered pairs.
        // Each factor is read once into a register: the stores to ms could
        // alias gs and rk, so the compiler would read them again per store.
        __syncwarp();
        T* p_stage = xs + warp * 16 * KS;
        float gi[2], fi[2], ai[2];
#pragma unroll
        for (int hr = 0; hr < 2; ++hr) {
            const int i = warp * 16 + gq + 8 * hr;
            gi[hr] = gs[i];
            fi[hr] = d.scale * rq[i];
            ai[hr] = bs[i] * rk[i];
        }
#pragma unroll
        for (int n = 0; n < 8; ++n) {
            const int j = n * 8 + 2 * tq;  // even: float2 accesses are aligned
            const float2 gj = *reinterpret_cast<const float2*>(gs + j);
            const float2 rj = *reinterpret_cast<const float2*>(rk + j);
#pragma unroll
            for (int hr = 0; hr < 2; ++hr) {
                const int i = warp * 16 + gq + 8 * hr;
                const float e0 = j <= i ? pow2(gi[hr] - gj.x) * rj.x : 0.f;
                const float e1 = j + 1 <= i ? pow2(gi[hr] - gj.y) * rj.y : 0.f;
                *reinterpret_cast<float2*>(ms + i * FS + j) =
                    make_float2(j < i ? ai[hr] * e0 * s_acc[n][2 * hr] : 0.f,
                                j + 1 < i ? ai[hr] * e1 * s_acc[n][2 * hr + 1] : 0.f);
                gdn_store2(p_stage + (gq + 8 * hr) * KS + j, fi[hr] * e0 * q_acc[n][2 * hr],
                           fi[hr] * e1 * q_acc[n][2 * hr + 1]);
            }
        }
        gdn_copy_out16x64(p_out + ((u64)c * Hv + h) * GDN_C * GDN_C + warp * 16 * GDN_C, GDN_C, 16, p_stage, KS);
    }
    __syncthreads();

    // v rows replace q rows while the warps solve for T.
    gdn_load_rows<T, GDN_C, GDN_PREP_THREADS>(xs, XS, v + ((u64)start * Hv + h) * V, (u64)Hv * V, V, len);
    cp_async_commit();
    {
        // T = (I + A)⁻¹ by 16×16 blocks. Warp w inverts diagonal block w by
        // forward substitution (lane j < 16 owns column j in registers);
        // then the blocks below the diagonal in two rounds that give every
        // warp the same work (level by level, one warp would do 9 of 16
        // block products while the others waited). A is read only strictly
        // below the diagonal, T only on and below it, so they never meet in
        // ms.
        const int d0 = warp * 16;
        const int j = lane & 15;
        float col[16];
#pragma unroll
        for (int i = 0; i < 16; ++i) {
            // Row i of the block, four elements per shared load (rows are
            // 16-byte aligned).
            const float4* a_row = reinterpret_cast<const float4*>(ms + (d0 + i) * FS + d0);
            float s = i == j ? 1.f : 0.f;
#pragma unroll
            for (int m4 = 0; m4 < i; m4 += 4) {
                const float4 a = a_row[m4 / 4];
                const float e[4] = {a.x, a.y, a.z, a.w};
#pragma unroll
                for (int m = m4; m < i && m < m4 + 4; ++m) s = fmaf(-e[m - m4], col[m], s);
            }
            col[i] = s;
        }
        if (lane < 16) {
#pragma unroll
            for (int i = 0; i < 16; ++i)
                if (i >= j) ms[(d0 + j) * FS + d0 + i] = col[i];
        }
        __syncthreads();
        {
            // Round 1: T_10 and T_32 = −T_ii · (A_ij T_jj), j = i − 1, each
            // warp taking 8 of a block's 16 columns (X staged in T's place).
            const int i0 = (warp < 2 ? 1 : 3) * 16, j0 = i0 - 16, c0 = j0 + (warp & 1) * 8;
            float x[1][4];
            gdn_zero<1>(x);
            gdn_block_mma_f32<1>(
                x, [&](int r, int kk) { return ms[(i0 + r) * FS + j0 + kk]; },
                [&](int kk, int n) { return t_at(j0 + kk, c0 + n); }, 16);
            gdn_put_t<1, FS>(ms, x, i0, c0, 1.f);
            __syncwarp();
            gdn_zero<1>(x);
            gdn_block_mma_f32<1>(
                x, [&](int r, int kk) { return t_at(i0 + r, i0 + kk); },
                [&](int kk, int n) { return ms[(c0 + n) * FS + i0 + kk]; }, 16);
            __syncwarp();
            gdn_put_t<1, FS>(ms, x, i0, c0, -1.f);
        }
        __syncthreads();
        {
            // Round 2: the lower-left 32 × 32 quarter, warp w taking block
            // (i, j) = (2 + w / 2, w % 2): X_ij = Σ_{j≤m≤1} A_im T_mj, staged
            // in T's place, then T_ij = −Σ_{2≤m≤i} T_im X_mj once every X
            // is there, stored once every warp has read them.
            const int i0 = (2 + (warp >> 1)) * 16, j0 = (warp & 1) * 16;
            float x[2][4];
            gdn_zero<2>(x);
            gdn_block_mma_f32<2>(
                x, [&](int r, int kk) { return ms[(i0 + r) * FS + j0 + kk]; },
                [&](int kk, int n) { return t_at(j0 + kk, j0 + n); }, 32 - j0);
            gdn_put_t<2, FS>(ms, x, i0, j0, 1.f);
            __syncthreads();
            gdn_zero<2>(x);
            gdn_block_mma_f32<2>(
                x, [&](int r, int kk) { return t_at(i0 + r, 32 + kk); },
                [&](int kk, int n) { return ms[(j0 + n) * FS + 32 + kk]; }, i0 - 16);
            __syncthreads();
            gdn_put_t<2, FS>(ms, x, i0, j0, -1.f);
        }
        __syncthreads();
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
    cp_async_wait<0>();
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
    if (tid < GDN_C) {
        const float g_last = gs[len - 1];
        float* f = f_out + ((u64)c * Hv + h) * GDN_F_FLOATS;
        const bool in = tid < len;
        f[tid] = in ? d.scale * rq[tid] * pow2(gs[tid]) : 0.f;
        f[GDN_C + tid] = in ? rk[tid] * pow2(g_last - gs[tid]) : 0.f;
        if (tid < GDN_F_FLOATS - 2 * GDN_C && tid != 1) f[2 * GDN_C + tid] = tid == 0 ? pow2(g_last) : 0.f;
    }
}

// MINB: blocks per SM the registers must allow (shared memory permits 4 at
// K ≤ 128 in BF16; the others are held to fewer by shared memory).
#define GDN_PREP(KD, DN, T, MINB)                                                                                \
    extern "C" __global__ void __launch_bounds__(GDN_PREP_THREADS, MINB) gdn_prefill_prep_k##KD##_##DN(          \
        const T* q, const T* k, const T* v, const float* g, const float* beta, T* w, T* u, T* p, float* f,       \
        GdnSeqs seqs, GdnDims d) {                                                                               \
        gdn_prep<T, KD>(q, k, v, g, beta, w, u, p, f, seqs, d);                                                  \
    }

GDN_PREP(64, bf16, bf16_t, 4)
GDN_PREP(128, bf16, bf16_t, 4)
GDN_PREP(256, bf16, bf16_t, 1)
GDN_PREP(64, f32, float, 1)
GDN_PREP(128, f32, float, 1)
GDN_PREP(256, f32, float, 1)
