// Prefill (many input rows) quantized matrix product on Hopper tensor cores:
// out[m, n] = x[m, k] · dequant(w[n, k])ᵀ, bf16 operands, f32 accumulation.
//
// One CTA computes 128 weight rows × 128 input rows with two warpgroups;
// each warpgroup owns 64 weight rows and issues wgmma.m64n128k16 with
//   A = its dequantized weights, from registers: each thread dequantizes
//       exactly the elements of its own A fragment (Deq::dequant32, the
//       only per-type code, in qmm_prefill_dequant.cuh), so the weights are
//       dequantized once per CTA and never stored back to shared memory;
//   B = the input tile, 128 rows × 64 k of bf16 in shared memory with the
//       128-byte swizzle, read by the tensor cores through a descriptor.
// The product is computed transposed (weight rows are wgmma's M), so the
// accumulators are written to out with rows and columns swapped.
//
// The k loop runs in stages of 64 (one 128-byte row of bf16 per input row):
//   - input tiles go to four shared slots, two stages ahead: bf16 rows on 16
//     bytes by cp.async straight into the swizzled layout; f32 (or
//     misaligned) rows through registers, converted to bf16 and stored at
//     the end of the iteration, so their load latency overlaps the work;
//   - raw weight blocks (as stored) go to two shared slots of Deq::KB
//     elements, copied with the input group that precedes their first use;
//     each row's bytes land at their address modulo 16, since rows and
//     blocks are only 2-byte aligned;
//   - iteration s: one barrier; the copies of stage s+2 are queued; four
//     wgmmas on stage s are issued asynchronously; while they run, the
//     weights of stage s+1 are dequantized into the other A register set
//     (wgmma.wait_group 1 first frees it: the wgmmas of stage s-1 read it).
//
// The including module defines QMM_DEQ (the Deq struct) and the two entry
// names QMM_NAME_F32 / QMM_NAME_BF16 (see prefill.rs).
#include "mlxn_prelude.cuh"
#include "ggml_blocks.cuh"
#include "qmm_prefill_dequant.cuh"

#define QMM_BM 128
#define QMM_BN 128
#define QMM_BK 64
#define QMM_THREADS 256
#define QMM_X_SLOTS 4
#define QMM_AHEAD 2
#define QMM_X_SLOT_BYTES (QMM_BM * QMM_BK * 2)

// Raw weight stage geometry of a type; prefill.rs mirrors it to size the
// shared memory. Rows are an odd number of 16-byte units apart so that
// eight rows read at one offset hit distinct banks.
template <typename Deq> struct QmmW {
    static constexpr int SPB = Deq::KB / QMM_BK;  // input stages per weight stage
    static constexpr int STAGE_BYTES = Deq::KB / Deq::QK * Deq::BYTES;
    static constexpr int STRIDE = 16 * (((STAGE_BYTES + 14 + 15) / 16) | 1);
    static constexpr int CHUNKS = STRIDE / 16;
};

__device__ __forceinline__ u32 qmm_smem_addr(const void* p) {
    u32 a;
    asm("{ .reg .u64 t; cvta.to.shared.u64 t, %1; cvt.u32.u64 %0, t; }" : "=r"(a) : "l"(p));
    return a;
}
// 16 bytes global → shared; only `src_bytes` (0 or 16) are read, the rest
// is zero-filled.
__device__ __forceinline__ void qmm_cp_async16(u32 dst, const void* src, u32 src_bytes) {
    asm volatile("cp.async.cg.shared.global [%0], [%1], 16, %2;\n" ::"r"(dst), "l"(src), "r"(src_bytes) : "memory");
}
__device__ __forceinline__ void qmm_cp_async_commit() { asm volatile("cp.async.commit_group;\n" ::: "memory"); }
template <int N> __device__ __forceinline__ void qmm_cp_async_wait() { asm volatile("cp.async.wait_group %0;\n" ::"n"(N) : "memory"); }
// Makes this thread's shared-memory writes (plain stores and cp.async)
// visible to the tensor cores, which read through the async proxy.
__device__ __forceinline__ void qmm_fence_proxy_async() { asm volatile("fence.proxy.async.shared::cta;\n" ::: "memory"); }

__device__ __forceinline__ void qmm_wgmma_fence() { asm volatile("wgmma.fence.sync.aligned;\n" ::: "memory"); }
__device__ __forceinline__ void qmm_wgmma_commit() { asm volatile("wgmma.commit_group.sync.aligned;\n" ::: "memory"); }
template <int N> __device__ __forceinline__ void qmm_wgmma_wait() {
    asm volatile("wgmma.wait_group.sync.aligned %0;\n" ::"n"(N) : "memory");
}
// Keeps the compiler from moving accumulator reads or writes across the
// asynchronous wgmma window.
__device__ __forceinline__ void qmm_fence_acc(float (&d)[64]) {
#pragma unroll
    for (int i = 0; i < 64; i++) asm volatile("" : "+f"(d[i])::"memory");
}

// Shared-memory matrix descriptor of a K-major bf16 tile with the 128-byte
// swizzle: rows of 128 bytes, groups of 8 rows 1024 bytes apart.
__device__ __forceinline__ u64 qmm_desc(u32 saddr) {
    return (u64)((saddr & 0x3FFFF) >> 4) | ((u64)1 << 16) | ((u64)(1024 >> 4) << 32) | ((u64)1 << 62);
}

#define QMM_D8(o) "+f"(d[o]), "+f"(d[o + 1]), "+f"(d[o + 2]), "+f"(d[o + 3]), "+f"(d[o + 4]), "+f"(d[o + 5]), "+f"(d[o + 6]), "+f"(d[o + 7])
// d (64 × 128, f32) += a (64 × 16 bf16, registers) · b (16 × 128 bf16, K-major in shared memory).
__device__ __forceinline__ void qmm_wgmma(float (&d)[64], const u32 (&a)[4], u64 desc) {
    asm volatile(
        "{\n.reg .pred p;\nsetp.ne.b32 p, %69, 0;\n"
        "wgmma.mma_async.sync.aligned.m64n128k16.f32.bf16.bf16 "
        "{%0, %1, %2, %3, %4, %5, %6, %7, %8, %9, %10, %11, %12, %13, %14, %15, %16, %17, %18, %19, %20, %21, "
        "%22, %23, %24, %25, %26, %27, %28, %29, %30, %31, %32, %33, %34, %35, %36, %37, %38, %39, %40, %41, %42, "
        "%43, %44, %45, %46, %47, %48, %49, %50, %51, %52, %53, %54, %55, %56, %57, %58, %59, %60, %61, %62, %63}, "
        "{%64, %65, %66, %67}, %68, p, 1, 1, 0;\n}\n"
        : QMM_D8(0), QMM_D8(8), QMM_D8(16), QMM_D8(24), QMM_D8(32), QMM_D8(40), QMM_D8(48), QMM_D8(56)
        : "r"(a[0]), "r"(a[1]), "r"(a[2]), "r"(a[3]), "l"(desc), "r"(1));
}

template <typename Deq, typename T> struct QmmPrefill {
    using W = QmmW<Deq>;
    const T* x;
    const u8* w;
    u32 m, n, k;
    u64 row_bytes;
    u8* xs;  // QMM_X_SLOTS input slots, 1024-byte aligned
    u8* ws;  // two raw weight slots
    u32 m0, n0;
    int x_stages, w_stages;
    bool async_x;  // bf16 rows on 16 bytes: cp.async; else through registers
    bool vec_x;    // f32 rows on 16 bytes: float4 loads
    // Input copy: thread handles rows xr + 32i (i < 4), 8 elements at 8·xc.
    // Kept in registers: the first row's source, 32 rows in bytes, which
    // rows exist, and the shared address of the chunk in slot 0.
    int xr, xc;
    u32 x_swz;  // byte offset of its 16-byte chunk in a row, swizzled
    const u8* x_src;
    u64 x_rows32;
    u32 x_ok;
    u32 x_dst;
    float4 xv[4][2];
    // Dequantization: rows wrow[h] of the tile (their shared rows start at
    // w_row[h] in slot 0), whose bytes start wdelta[h] past the row start
    // (before the stage offset); lane's t.
    int wrow[2];
    const u8* w_row[2];
    u32 wdelta[2];
    int t;

    __device__ void x_async(int s) {
        const u32 dst = x_dst + (s % QMM_X_SLOTS) * QMM_X_SLOT_BYTES;
        const u8* src = x_src + (u64)s * (QMM_BK * sizeof(T));
        const u32 ok = (u32)s * QMM_BK + 8 * xc < k ? x_ok : 0;
#pragma unroll
        for (int i = 0; i < 4; i++) {
            const bool on = (ok >> i) & 1;
            qmm_cp_async16(dst + 32 * 128 * i, on ? (const void*)(src + i * x_rows32) : (const void*)x, on ? 16 : 0);
        }
    }
    __device__ void x_load(int s) {
        const u32 kk = (u32)s * QMM_BK + 8 * xc;
#pragma unroll
        for (int i = 0; i < 4; i++) {
            const u32 row = m0 + xr + 32 * i;
            const T* src = x + (u64)row * k + kk;
            if constexpr (sizeof(T) == 4) {
                if (vec_x) {
#pragma unroll
                    for (int h = 0; h < 2; h++)
                        xv[i][h] = row < m && kk + 4 * h < k ? *(const float4*)(src + 4 * h) : float4{0, 0, 0, 0};
                    continue;
                }
            }
            {
                float v[8];
#pragma unroll
                for (int e = 0; e < 8; e++) v[e] = row < m && kk + e < k ? to_f32(src[e]) : 0.0f;
                xv[i][0] = float4{v[0], v[1], v[2], v[3]};
                xv[i][1] = float4{v[4], v[5], v[6], v[7]};
            }
        }
    }
    __device__ void x_store(int s) {
        u8* slot = xs + (s % QMM_X_SLOTS) * QMM_X_SLOT_BYTES;
#pragma unroll
        for (int i = 0; i < 4; i++) {
            const float4 a = xv[i][0], b = xv[i][1];
            *(uint4*)(slot + (xr + 32 * i) * 128 + x_swz) =
                uint4{qmm_pack_bf16(a.x, a.y), qmm_pack_bf16(a.z, a.w), qmm_pack_bf16(b.x, b.y), qmm_pack_bf16(b.z, b.w)};
        }
    }
    __device__ void w_issue(int j) {
        const u64 off = (u64)j * W::STAGE_BYTES;
        const u64 rem = row_bytes - off;
        const u64 bytes = rem < (u64)W::STAGE_BYTES ? rem : (u64)W::STAGE_BYTES;
        u8* wb = ws + (j & 1) * (QMM_BN * W::STRIDE);
        for (int i = threadIdx.x; i < QMM_BN * W::CHUNKS; i += QMM_THREADS) {
            const int r = i / W::CHUNKS, c = i % W::CHUNKS;
            const u32 row = n0 + r < n ? n0 + r : n - 1;
            const u64 start = (u64)w + row * row_bytes + off;
            const u64 src = (start & ~(u64)15) + 16 * (u64)c;
            if (src < start + bytes) qmm_cp_async16(qmm_smem_addr(wb + r * W::STRIDE + 16 * c), (const void*)src, 16);
        }
    }
    // Copy group g: input stage g, and the weight stage first needed by
    // input stage g + 1 (weight stage 0 with group 0). Always commits, so
    // that group g is the g-th committed.
    __device__ void issue(int g) {
        if (g < x_stages) {
            if (async_x) x_async(g);
            else x_load(g);
        }
        if (g == 0) w_issue(0);
        if ((g + 1) % W::SPB == 0 && (g + 1) / W::SPB < w_stages) w_issue((g + 1) / W::SPB);
        qmm_cp_async_commit();
    }
    // A fragments of input stage s: slab q (16 k) of row h is a[q] with
    // a[q][h] = k 2t,2t+1 and a[q][2+h] = k 2t+8,2t+9.
    __device__ void dequant(int s, u32 (&a)[4][4]) {
        const int j = s / W::SPB;
        const u32 stage_off = (u32)((u64)j * W::STAGE_BYTES);
#pragma unroll
        for (int c = 0; c < 2; c++) {
            const int es = (s % W::SPB) * QMM_BK + 32 * c;
            const u32 kk = (u32)j * Deq::KB + es;
            const int valid = kk >= k ? 0 : (k - kk >= 32 ? 32 : (int)(k - kk));
            u32 o[2][4];
#pragma unroll
            for (int h = 0; h < 2; h++) {
                if (valid > 0) {
                    const u8* row = w_row[h] + (j & 1) * (QMM_BN * W::STRIDE) + ((wdelta[h] + stage_off) & 15);
                    Deq::dequant32(row + (es / Deq::QK) * Deq::BYTES, es % Deq::QK, t, valid, o[h]);
                } else {
#pragma unroll
                    for (int q = 0; q < 4; q++) o[h][q] = 0;
                }
            }
#pragma unroll
            for (int q = 0; q < 2; q++) {
                a[2 * c + q][0] = o[0][2 * q];
                a[2 * c + q][1] = o[1][2 * q];
                a[2 * c + q][2] = o[0][2 * q + 1];
                a[2 * c + q][3] = o[1][2 * q + 1];
            }
        }
    }
    // Iteration s; `a` holds stage s's fragments, `next` receives s+1's.
    __device__ void step(int s, float (&acc)[64], const u32 (&a)[4][4], u32 (&next)[4][4]) {
        qmm_cp_async_wait<QMM_AHEAD - 1>();
        qmm_fence_proxy_async();
        __syncthreads();
        issue(s + QMM_AHEAD);
        const u32 slot = qmm_smem_addr(xs + (s % QMM_X_SLOTS) * QMM_X_SLOT_BYTES);
        qmm_wgmma_fence();
#pragma unroll
        for (int q = 0; q < 4; q++) qmm_wgmma(acc, a[q], qmm_desc(slot + 32 * q));
        qmm_wgmma_commit();
        qmm_wgmma_wait<1>();
        if (s + 1 < x_stages) dequant(s + 1, next);
        if (!async_x && s + QMM_AHEAD < x_stages) x_store(s + QMM_AHEAD);
    }
};

template <typename Deq, typename T>
__device__ void qmm_prefill(const T* __restrict__ x, const u8* __restrict__ w, T* __restrict__ out, u32 m, u32 n,
                            u32 k, u64 row_bytes, u32 a_vec) {
    using W = QmmW<Deq>;
    extern __shared__ __align__(1024) u8 qmm_smem[];
    QmmPrefill<Deq, T> p;
    p.xs = qmm_smem + ((1024 - (qmm_smem_addr(qmm_smem) & 1023)) & 1023);
    p.ws = p.xs + QMM_X_SLOTS * QMM_X_SLOT_BYTES;
    p.x = x;
    p.w = w;
    p.m = m;
    p.n = n;
    p.k = k;
    p.row_bytes = row_bytes;
    p.m0 = blockIdx.y * QMM_BM;
    p.n0 = blockIdx.x * QMM_BN;
    p.x_stages = (int)((k + QMM_BK - 1) / QMM_BK);
    p.w_stages = (int)((k + Deq::KB - 1) / Deq::KB);
    p.async_x = sizeof(T) == 2 && a_vec != 0;
    p.vec_x = sizeof(T) == 4 && a_vec != 0;
    const int tid = threadIdx.x, lane = tid & 31, warp = tid >> 5;
    p.xr = tid >> 3;
    p.xc = tid & 7;
    p.x_swz = (u32)((p.xc ^ (p.xr & 7)) << 4);
    p.x_src = (const u8*)(x + (u64)(p.m0 + p.xr) * k + 8 * p.xc);
    p.x_rows32 = (u64)32 * k * sizeof(T);
    p.x_ok = 0;
#pragma unroll
    for (int i = 0; i < 4; i++) p.x_ok |= (p.m0 + p.xr + 32 * i < m ? 1u : 0u) << i;
    p.x_dst = qmm_smem_addr(p.xs) + p.xr * 128 + p.x_swz;
    const int g = lane >> 2;
    p.t = lane & 3;
#pragma unroll
    for (int h = 0; h < 2; h++) {
        p.wrow[h] = 16 * warp + g + 8 * h;  // warpgroup warp/4 owns rows 64·(warp/4) ..
        p.w_row[h] = p.ws + p.wrow[h] * W::STRIDE;
        const u32 want = p.n0 + p.wrow[h], row = want < n ? want : n - 1;
        p.wdelta[h] = (u32)(((u64)w + row * row_bytes) & 15);
    }

    float acc[64];
#pragma unroll
    for (int i = 0; i < 64; i++) acc[i] = 0.0f;
    u32 a0[4][4], a1[4][4];

    for (int g0 = 0; g0 < QMM_AHEAD; g0++) {
        p.issue(g0);
        if (!p.async_x && g0 < p.x_stages) p.x_store(g0);
    }
    qmm_cp_async_wait<QMM_AHEAD - 1>();
    __syncthreads();
    p.dequant(0, a0);
    qmm_fence_acc(acc);
    // Unrolled by two so that the A register sets are indexed statically.
    for (int s = 0; s < p.x_stages; s += 2) {
        p.step(s, acc, a0, a1);
        if (s + 1 < p.x_stages) p.step(s + 1, acc, a1, a0);
    }
    qmm_wgmma_wait<0>();
    qmm_fence_acc(acc);

    // acc[4j + c]: weight row g (+8 for c ≥ 2) of the warp's 16, input row
    // 8j + 2t + (c & 1).
    const int t = lane & 3;
#pragma unroll
    for (int half = 0; half < 2; half++) {
        const u32 col = p.n0 + 16 * warp + g + 8 * half;
        if (col >= n) continue;
#pragma unroll
        for (int j = 0; j < 16; j++) {
#pragma unroll
            for (int c = 0; c < 2; c++) {
                const u32 row = p.m0 + 8 * j + 2 * t + c;
                if (row < m) out[(u64)row * n + col] = from_f32<T>(acc[4 * j + 2 * half + c]);
            }
        }
    }
}

#ifdef QMM_DEQ
#define QMM_ENTRY(NAME, T)                                                                                       \
    extern "C" __global__ void __launch_bounds__(QMM_THREADS, 1)                                                 \
        NAME(const T* x, const u8* w, T* out, u32 m, u32 n, u32 k, u64 row_bytes, u32 a_vec) {                   \
        qmm_prefill<QMM_DEQ, T>(x, w, out, m, n, k, row_bytes, a_vec);                                           \
    }
QMM_ENTRY(QMM_NAME_F32, float)
QMM_ENTRY(QMM_NAME_BF16, bf16_t)
#endif
