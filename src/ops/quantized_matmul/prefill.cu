// Prefill (many input rows) quantized matrix product on tensor cores:
// out[m, n] = x[m, k] · dequant(w[n, k])ᵀ, bf16 operands, f32 accumulation.
//
// One CTA computes a 128 (rows of x) × 128 (rows of w) tile with 8 warps in a
// 4 × 2 grid, each warp 32 × 64 with mma.sync.m16n8k16. The k loop runs in
// steps of 32:
//   - x tiles (128 × 32, f32 or bf16 as given) are copied to shared memory
//     with cp.async, three steps ahead; a misaligned x takes a plain load path;
//   - w tiles are copied raw (the GGML blocks as stored) with cp.async, one
//     stage of KB elements (256 for the quantized types) at a time, two
//     stages deep; each row's bytes land at their address modulo 16, since
//     rows and blocks are only 2-byte aligned;
//   - each step the CTA dequantizes its 128 × 32 weights once into a bf16
//     tile (Deq::dequant8, the only per-type code, in
//     qmm_prefill_dequant.cuh) that the warps read with ldmatrix; the tile
//     is double-buffered, step s+1 dequantized while step s multiplies, so
//     one barrier per step orders everything; x is converted to bf16 as the
//     A fragments are loaded.
// Within each step of 32 the k order is permuted, the same way for x and w:
// the mma's logical k pair (2t, 2t+1) / (2t+8, 2t+9) of slab s is physical
// k 8t+4s+{0,1} / 8t+4s+{2,3}. So lane t of a fragment row owns the 8
// consecutive elements 8t..8t+7, which one dequant8 call produces and one or
// two 16-byte shared loads of x cover; the dequantized tile is stored in
// the logical order so that ldmatrix yields matching B fragments.
//
// The including module defines QMM_DEQ (the Deq struct) and the two entry
// names QMM_NAME_F32 / QMM_NAME_BF16 (see prefill.rs).
#include "mlxn_prelude.cuh"
#include "ggml_blocks.cuh"
#include "qmm_prefill_dequant.cuh"

#define QMM_BM 128
#define QMM_BN 128
#define QMM_BK 32
#define QMM_THREADS 256
#define QMM_A_STAGES 4

__device__ __forceinline__ u32 qmm_smem_addr(const void* p) {
    u32 a;
    asm("{ .reg .u64 t; cvta.to.shared.u64 t, %1; cvt.u32.u64 %0, t; }" : "=r"(a) : "l"(p));
    return a;
}
// 16 bytes global → shared; only `src_bytes` (0 or 16) are read, the rest
// is zero-filled.
__device__ __forceinline__ void qmm_cp_async16(void* dst, const void* src, u32 src_bytes) {
    asm volatile("cp.async.cg.shared.global [%0], [%1], 16, %2;\n" ::"r"(qmm_smem_addr(dst)), "l"(src), "r"(src_bytes)
                 : "memory");
}
__device__ __forceinline__ void qmm_cp_async_commit() { asm volatile("cp.async.commit_group;\n" ::: "memory"); }
template <int N> __device__ __forceinline__ void qmm_cp_async_wait() { asm volatile("cp.async.wait_group %0;\n" ::"n"(N) : "memory"); }

__device__ __forceinline__ u32 qmm_pack_bf16(float lo, float hi) {
    u32 r;
    asm("cvt.rn.bf16x2.f32 %0, %1, %2;" : "=r"(r) : "f"(hi), "f"(lo));
    return r;
}

__device__ __forceinline__ void qmm_mma(float c[4], u32 a0, u32 a1, u32 a2, u32 a3, u32 b0, u32 b1) {
    asm("mma.sync.aligned.m16n8k16.row.col.f32.bf16.bf16.f32 {%0,%1,%2,%3}, {%4,%5,%6,%7}, {%8,%9}, {%0,%1,%2,%3};\n"
        : "+f"(c[0]), "+f"(c[1]), "+f"(c[2]), "+f"(c[3])
        : "r"(a0), "r"(a1), "r"(a2), "r"(a3), "r"(b0), "r"(b1));
}

// x tile rows in shared memory: 32 f32 padded to 144 bytes (an odd number of
// 16-byte units, so the 16-byte loads of 8 lanes on two rows hit distinct
// banks), or 32 bf16 in 64 bytes (two rows fill the 128 bytes of banks).
template <typename T> struct QmmX;
template <> struct QmmX<float> {
    static constexpr int STRIDE = 144;
    // Elements 8t .. 8t+7 of a row as four bf16 pairs.
    __device__ static void pairs(const u8* p, u32 out[4]) {
        const float4 u = *(const float4*)p, v = *(const float4*)(p + 16);
        out[0] = qmm_pack_bf16(u.x, u.y);
        out[1] = qmm_pack_bf16(u.z, u.w);
        out[2] = qmm_pack_bf16(v.x, v.y);
        out[3] = qmm_pack_bf16(v.z, v.w);
    }
};
template <> struct QmmX<bf16_t> {
    static constexpr int STRIDE = 64;
    __device__ static void pairs(const u8* p, u32 out[4]) {
        const uint4 u = *(const uint4*)p;
        out[0] = u.x;
        out[1] = u.y;
        out[2] = u.z;
        out[3] = u.w;
    }
};

template <typename Deq>
__device__ __forceinline__ u64 qmm_stage_bytes() {
    return (u64)(Deq::KB / Deq::QK) * Deq::BYTES;
}

// Queues the copies of k step s: the x tile, and at a stage boundary the raw
// weight stage.
template <typename Deq, typename T>
__device__ __forceinline__ void qmm_issue(int s, u8* a_s, u8* w_s, const T* x, const u8* w, u32 m, u32 n, u32 k,
                                          u64 row_bytes, u32 w_stride, bool a_vec, u32 m0, u32 n0) {
    constexpr int ES = sizeof(T);
    constexpr int STRIDE = QmmX<T>::STRIDE;
    u8* ab = a_s + (s % QMM_A_STAGES) * (QMM_BM * STRIDE);
    const u32 kbase = (u32)s * QMM_BK;
    if (a_vec) {
        constexpr int CPR = QMM_BK * ES / 16, EPC = 16 / ES;
        for (int i = threadIdx.x; i < QMM_BM * CPR; i += QMM_THREADS) {
            const int r = i / CPR, c = i % CPR;
            const u32 row = m0 + r, kk = kbase + c * EPC;
            const bool ok = row < m && kk < k;
            qmm_cp_async16(ab + r * STRIDE + c * 16, ok ? (const void*)(x + (u64)row * k + kk) : (const void*)x,
                           ok ? 16 : 0);
        }
    } else {
        for (int i = threadIdx.x; i < QMM_BM * QMM_BK; i += QMM_THREADS) {
            const int r = i / QMM_BK, c = i % QMM_BK;
            const u32 row = m0 + r, kk = kbase + c;
            T v = from_f32<T>(0.0f);
            if (row < m && kk < k) v = x[(u64)row * k + kk];
            *(T*)(ab + r * STRIDE + c * ES) = v;
        }
    }
    constexpr int SPB = Deq::KB / QMM_BK;
    if (s % SPB == 0) {
        const u64 off = (u64)(s / SPB) * qmm_stage_bytes<Deq>();
        const u64 rem = row_bytes - off;
        const u64 bytes = rem < qmm_stage_bytes<Deq>() ? rem : qmm_stage_bytes<Deq>();
        u8* wb = w_s + ((s / SPB) & 1) * (QMM_BN * w_stride);
        const int chunks = (int)(w_stride / 16);
        for (int i = threadIdx.x; i < QMM_BN * chunks; i += QMM_THREADS) {
            const int r = i / chunks, c = i % chunks;
            const u32 row = n0 + r < n ? n0 + r : n - 1;
            const u64 start = (u64)w + row * row_bytes + off;
            const u64 src = (start & ~(u64)15) + 16 * (u64)c;
            if (src < start + bytes) qmm_cp_async16(wb + r * w_stride + 16 * c, (const void*)src, 16);
        }
    }
}

// The dequantized weights of one k step (two buffers): 128 rows of 32 bf16 in logical
// (mma) k order, rows 80 bytes apart (an odd number of 16-byte units, so
// that ldmatrix's eight rows hit distinct banks).
#define QMM_WB_STRIDE 80

__device__ __forceinline__ void qmm_ldmatrix_x4(const u8* p, u32& r0, u32& r1, u32& r2, u32& r3) {
    asm volatile("ldmatrix.sync.aligned.m8n8.x4.shared.b16 {%0,%1,%2,%3}, [%4];\n"
                 : "=r"(r0), "=r"(r1), "=r"(r2), "=r"(r3)
                 : "r"(qmm_smem_addr(p)));
}

// Dequantizes the 128 × 32 weights of step s once for the CTA into the bf16
// tile buffer s % 2. Thread tid handles rows tid/4 and tid/4 + 64, elements
// 8·(tid % 4) .. +7; those 8 physical elements go to logical positions 2t,
// 8+2t, 16+2t, 24+2t (pairs), the k order the x fragments use.
template <typename Deq>
__device__ __forceinline__ void qmm_dequant_step(int s, const u8* w_s, u8* wb_s, u32 w_stride, u32 k,
                                                 const u32 dq_delta[2]) {
    constexpr int SPB = Deq::KB / QMM_BK;
    const int tid = threadIdx.x, dq_t = tid & 3;
    u8* tile = wb_s + (s & 1) * (QMM_BN * QMM_WB_STRIDE);
    const int stage = s / SPB;
    const u8* wb = w_s + (stage & 1) * (QMM_BN * w_stride);
    const u32 stage_off = (u32)((u64)stage * qmm_stage_bytes<Deq>());
    const int e = (s % SPB) * QMM_BK + 8 * dq_t;
    const u32 kk = (u32)(stage * Deq::KB + e);
    const int valid = kk >= k ? 0 : (k - kk >= 8 ? 8 : (int)(k - kk));
#pragma unroll
    for (int h = 0; h < 2; h++) {
        const int r = (tid >> 2) + 64 * h;
        const u32 delta = (dq_delta[h] + stage_off) & 15;
        float v[8];
        if (valid > 0) {
            Deq::dequant8(wb + r * w_stride + delta + (e / Deq::QK) * Deq::BYTES, e % Deq::QK, valid, v);
        } else {
#pragma unroll
            for (int c = 0; c < 8; c++) v[c] = 0.0f;
        }
        u32* dst = (u32*)(tile + r * QMM_WB_STRIDE);
#pragma unroll
        for (int c = 0; c < 4; c++) dst[dq_t + 4 * c] = qmm_pack_bf16(v[2 * c], v[2 * c + 1]);
    }
}

template <typename Deq, typename T>
__device__ void qmm_prefill(const T* __restrict__ x, const u8* __restrict__ w, T* __restrict__ out, u32 m, u32 n,
                            u32 k, u64 row_bytes, u32 w_stride, u32 a_vec_flag) {
    extern __shared__ __align__(16) u8 qmm_smem[];
    constexpr int STRIDE = QmmX<T>::STRIDE;
    u8* a_s = qmm_smem;
    u8* wb_s = qmm_smem + QMM_A_STAGES * QMM_BM * STRIDE;
    u8* w_s = wb_s + 2 * QMM_BN * QMM_WB_STRIDE;
    const bool a_vec = a_vec_flag != 0;

    const int tid = threadIdx.x, lane = tid & 31, warp = tid >> 5;
    const int wm = warp >> 1, wn = warp & 1;  // 4 × 2 warps of 32 × 64
    const int g = lane >> 2, t = lane & 3;
    const u32 m0 = blockIdx.y * QMM_BM, n0 = blockIdx.x * QMM_BN;
    const int steps = (int)((k + QMM_BK - 1) / QMM_BK);

    // Where the two weight rows this thread dequantizes start inside their
    // shared-memory rows.
    u32 dq_delta[2];
#pragma unroll
    for (int h = 0; h < 2; h++) {
        const u32 want = n0 + (tid >> 2) + 64 * h, row = want < n ? want : n - 1;
        dq_delta[h] = (u32)(((u64)w + row * row_bytes) & 15);
    }

    float acc[2][8][4];
#pragma unroll
    for (int i = 0; i < 2; i++)
#pragma unroll
        for (int j = 0; j < 8; j++)
#pragma unroll
            for (int c = 0; c < 4; c++) acc[i][j][c] = 0.0f;

    // Copies run three steps ahead; the weights of step s+1 are dequantized
    // while step s multiplies, so one barrier per step orders everything.
    for (int s = 0; s < 3; s++) {
        if (s < steps) qmm_issue<Deq, T>(s, a_s, w_s, x, w, m, n, k, row_bytes, w_stride, a_vec, m0, n0);
        qmm_cp_async_commit();
    }
    qmm_cp_async_wait<2>();
    __syncthreads();
    qmm_dequant_step<Deq>(0, w_s, wb_s, w_stride, k, dq_delta);

    for (int s = 0; s < steps; s++) {
        qmm_cp_async_wait<1>();
        __syncthreads();
        if (s + 3 < steps) qmm_issue<Deq, T>(s + 3, a_s, w_s, x, w, m, n, k, row_bytes, w_stride, a_vec, m0, n0);
        qmm_cp_async_commit();

        if (s + 1 < steps) qmm_dequant_step<Deq>(s + 1, w_s, wb_s, w_stride, k, dq_delta);

        // A fragments of the warp's two m16 tiles: lane t holds elements
        // 8t..8t+7 of rows g and g+8 (the permuted k order).
        const u8* ab = a_s + (s % QMM_A_STAGES) * (QMM_BM * STRIDE);
        u32 p[2][4], q[2][4];
#pragma unroll
        for (int i = 0; i < 2; i++) {
            const int r = wm * 32 + 16 * i + g;
            QmmX<T>::pairs(ab + r * STRIDE + 8 * t * (int)sizeof(T), p[i]);
            QmmX<T>::pairs(ab + (r + 8) * STRIDE + 8 * t * (int)sizeof(T), q[i]);
        }
        // B fragments by ldmatrix, 16 weight rows × 16 k per call.
        const int mat = lane >> 3, mr = lane & 7;
        const u8* tile = wb_s + (s & 1) * (QMM_BN * QMM_WB_STRIDE);
#pragma unroll
        for (int slab = 0; slab < 2; slab++) {
#pragma unroll
            for (int grp = 0; grp < 4; grp++) {
                const int row = wn * 64 + 16 * grp + mr + 8 * (mat >> 1);
                u32 b0, b1, b2, b3;
                qmm_ldmatrix_x4(tile + row * QMM_WB_STRIDE + 16 * (2 * slab + (mat & 1)), b0, b1, b2, b3);
#pragma unroll
                for (int i = 0; i < 2; i++) {
                    qmm_mma(acc[i][2 * grp], p[i][2 * slab], q[i][2 * slab], p[i][2 * slab + 1], q[i][2 * slab + 1],
                            b0, b1);
                    qmm_mma(acc[i][2 * grp + 1], p[i][2 * slab], q[i][2 * slab], p[i][2 * slab + 1],
                            q[i][2 * slab + 1], b2, b3);
                }
            }
        }
    }

#pragma unroll
    for (int i = 0; i < 2; i++) {
#pragma unroll
        for (int half = 0; half < 2; half++) {
            const u32 row = m0 + wm * 32 + 16 * i + g + 8 * half;
            if (row >= m) continue;
#pragma unroll
            for (int j = 0; j < 8; j++) {
                const u32 col = n0 + wn * 64 + 8 * j + 2 * t;
                if (col < n) out[(u64)row * n + col] = from_f32<T>(acc[i][j][2 * half]);
                if (col + 1 < n) out[(u64)row * n + col + 1] = from_f32<T>(acc[i][j][2 * half + 1]);
            }
        }
    }
}

#ifdef QMM_DEQ
#define QMM_ENTRY(NAME, T)                                                                                       \
    extern "C" __global__ void __launch_bounds__(QMM_THREADS, 1)                                                 \
        NAME(const T* x, const u8* w, T* out, u32 m, u32 n, u32 k, u64 row_bytes, u32 w_stride, u32 a_vec) {     \
        qmm_prefill<QMM_DEQ, T>(x, w, out, m, n, k, row_bytes, w_stride, a_vec);                                 \
    }
QMM_ENTRY(QMM_NAME_F32, float)
QMM_ENTRY(QMM_NAME_BF16, bf16_t)
#endif
