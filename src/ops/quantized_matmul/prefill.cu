// Prefill (many input rows) quantized matrix product on Hopper tensor cores:
// out[m, n] = x[m, k] · dequant(w[n, k])ᵀ, bf16 operands, f32 accumulation.
//
// One CTA computes 64 weight rows × 256 input rows with two warpgroups;
// each warpgroup owns 128 of the input rows and issues wgmma.m64n128k16
// with both operands in shared memory, K-major with the 128-byte swizzle:
//   A = the 64 weight rows of a 64-k stage, dequantized once per CTA by all
//       eight warps (Deq::dequant32, the only per-type code, in
//       qmm_prefill_dequant.cuh, yields wgmma fragments; stmatrix stores
//       them) and read by both warpgroups: a weight is dequantized once per
//       256 input rows, which keeps the dequantization (the issue-bound
//       part) under the tensor-core time of a stage;
//   B = the warpgroup's input rows, 128 × 64 k of bf16.
// The product is computed transposed (weight rows are wgmma's M), so the
// accumulators are written to out with rows and columns swapped.
//
// The input is bf16 rows 16-byte aligned (the launcher converts any other
// input first), read through a TMA descriptor (box 256 rows × 64 k, the
// 128-byte swizzle, zeros outside the matrix): one thread queues a stage
// with one instruction, so the copies cost the other threads nothing.
//
// The k loop runs in stages of 64 (one 128-byte row of bf16 per row):
//   - input tiles go to four shared slots, two stages ahead, each completing
//     on its own mbarrier;
//   - raw weight blocks (as stored) go to two shared slots of Deq::KB
//     elements, copied with the input group that precedes their first use;
//     each row's bytes land at their address modulo 16, since rows and
//     blocks are only 2-byte aligned;
//   - dequantized weights go to three slots: stage s + 1 is written while
//     the wgmmas of stage s read theirs and those of stage s − 1 may still
//     read theirs;
//   - iteration s: one barrier; the copies of stage s+2 are queued; four
//     wgmmas on stage s are issued asynchronously; while they run, the
//     weights of stage s+1 are dequantized, then wgmma.wait_group 1: the
//     barrier of iteration s + 1 then orders both warpgroups' stage s − 1
//     reads before that slot is written again.
//
// The including module defines QMM_DEQ (the Deq struct) and the two entry
// names QMM_NAME_F32 / QMM_NAME_BF16, for f32 and bf16 output (see
// prefill.rs).
#include "mlxn_prelude.cuh"
#include "ggml_blocks.cuh"
#include "qmm_prefill_dequant.cuh"

#define QMM_BM 256  // input rows per CTA, 128 per warpgroup
#define QMM_BN 64   // weight rows per CTA
#define QMM_BK 64
#define QMM_THREADS 256
#define QMM_X_SLOTS 4
#define QMM_AHEAD 2
#define QMM_X_SLOT_BYTES (QMM_BM * QMM_BK * 2)
#define QMM_A_SLOTS 3
#define QMM_A_SLOT_BYTES (QMM_BN * QMM_BK * 2)

static_assert(QMM_THREADS == 4 * QMM_BN, "the weight copy takes four threads per row");

// Raw weight stage geometry of a type; prefill.rs mirrors it to size the
// shared memory. Rows are an odd number of 16-byte units apart so that
// eight rows read at one offset hit distinct banks.
template <typename Deq> struct QmmW {
    static constexpr int SPB = Deq::KB / QMM_BK;  // input stages per weight stage
    static constexpr int STAGE_BYTES = Deq::KB / Deq::QK * Deq::BYTES;
    static constexpr int STRIDE = 16 * (((STAGE_BYTES + 14 + 15) / 16) | 1);
    static constexpr int CHUNKS = STRIDE / 16;
};

#define QMM_D8(o) "+f"(d[o]), "+f"(d[o + 1]), "+f"(d[o + 2]), "+f"(d[o + 3]), "+f"(d[o + 4]), "+f"(d[o + 5]), "+f"(d[o + 6]), "+f"(d[o + 7])
// d (64 × 128, f32) += a (64 × 16 bf16) · b (16 × 128 bf16), both K-major in
// shared memory.
__device__ __forceinline__ void qmm_wgmma(float (&d)[64], u64 desc_a, u64 desc_b) {
    asm volatile(
        "{\n.reg .pred p;\nsetp.ne.b32 p, %66, 0;\n"
        "wgmma.mma_async.sync.aligned.m64n128k16.f32.bf16.bf16 "
        "{%0, %1, %2, %3, %4, %5, %6, %7, %8, %9, %10, %11, %12, %13, %14, %15, %16, %17, %18, %19, %20, %21, "
        "%22, %23, %24, %25, %26, %27, %28, %29, %30, %31, %32, %33, %34, %35, %36, %37, %38, %39, %40, %41, %42, "
        "%43, %44, %45, %46, %47, %48, %49, %50, %51, %52, %53, %54, %55, %56, %57, %58, %59, %60, %61, %62, %63}, "
        "%64, %65, p, 1, 1, 0, 0;\n}\n"
        : QMM_D8(0), QMM_D8(8), QMM_D8(16), QMM_D8(24), QMM_D8(32), QMM_D8(40), QMM_D8(48), QMM_D8(56)
        : "l"(desc_a), "l"(desc_b), "r"(1));
}

template <typename Deq, typename T> struct QmmPrefill {
    using W = QmmW<Deq>;
    const TensorMap* x_map;
    const u8* w;
    u32 m, n, k;
    u64 row_bytes;
    u8* xs;    // QMM_X_SLOTS input slots, 1024-byte aligned
    u8* as;    // QMM_A_SLOTS dequantized weight slots, 1024-byte aligned
    u8* ws;    // two raw weight slots
    u32 bars;  // QMM_X_SLOTS mbarriers (8 bytes each) of the input slots
    u32 m0, n0;
    int x_stages, w_stages;
    // Dequantization: the warp's 16 weight rows and 32 of the stage's 64 k.
    // Rows wrow[h] of the tile (their shared rows start at w_row[h] in
    // slot 0), whose bytes start wdelta[h] past the row start (before the
    // stage offset); lane's t; where this lane's stmatrix rows go in slot 0.
    int wrow[2];
    const u8* w_row[2];
    u32 wdelta[2];
    int t, k_half;
    u32 a_dst[2];
    // wgmma descriptors of slot 0: the dequantized weights and this
    // warpgroup's 128 input rows.
    u64 a_desc, x_desc;
    // Weight copy: the row this thread copies (rows past n repeat row n − 1:
    // valid bytes, results dropped), which of every four granules, and the
    // shared address of its first granule in slot 0.
    u64 w_copy_row;
    u32 w_copy_part, w_copy_dst;

    // Input stage g into slot g % QMM_X_SLOTS (one thread issues it).
    __device__ void x_issue(int g) {
        const u32 slot = g % QMM_X_SLOTS, bar = bars + 8 * slot;
        mbar_expect_tx(bar, QMM_X_SLOT_BYTES);
        tma_load_2d(smem_addr(xs + slot * QMM_X_SLOT_BYTES), x_map, g * QMM_BK, (int)m0, bar);
    }
    // Raw weight stage j into slot j & 1: four threads per row, each taking
    // every fourth of the 16-byte granules that span the row's bytes.
    __device__ void w_issue(int j) {
        const u64 off = (u64)j * W::STAGE_BYTES;
        const u64 rem = row_bytes - off;
        const u64 start = w_copy_row + off, end = start + (rem < (u64)W::STAGE_BYTES ? rem : (u64)W::STAGE_BYTES);
        const u64 first = (start & ~(u64)15) + 16 * w_copy_part;
        const u32 dst = w_copy_dst + (j & 1) * (QMM_BN * W::STRIDE);
#pragma unroll
        for (int u = 0; u < (W::CHUNKS + 3) / 4; u++)
            if (first + 64 * u < end) cp_async<16>(dst + 64 * u, (const void*)(first + 64 * u), 16);
    }
    // Copy group g: input stage g, and the weight stage first needed by
    // input stage g + 1 (weight stage 0 with group 0). Always commits, so
    // that group g is the g-th committed.
    __device__ void issue(int g) {
        if (g < x_stages && threadIdx.x == 0) x_issue(g);
        if (g == 0) w_issue(0);
        if ((g + 1) % W::SPB == 0 && (g + 1) / W::SPB < w_stages) w_issue((g + 1) / W::SPB);
        cp_async_commit();
    }
    // The warp's 16 rows × 32 k of input stage s, dequantized into A slot
    // s % QMM_A_SLOTS: fragments of the two k16 slabs, stored with stmatrix
    // (matrices: rows 0-7 / 8-15 × k 0-7 / 8-15 of a slab).
    __device__ void dequant(int s) {
        const int j = s / W::SPB;
        const u32 stage_off = (u32)((u64)j * W::STAGE_BYTES);
        const int es = (s % W::SPB) * QMM_BK + 32 * k_half;
        const u32 kk = (u32)j * Deq::KB + es;
        const int valid = kk >= k ? 0 : (k - kk >= 32 ? 32 : (int)(k - kk));
        u32 o[2][4];
#pragma unroll
        for (int h = 0; h < 2; h++) {
            if (valid > 0) {
                // A stage of whole 16-byte units keeps every row's offset in its granule.
                const u32 in_granule = W::STAGE_BYTES % 16 == 0 ? wdelta[h] : (wdelta[h] + stage_off) & 15;
                const u8* row = w_row[h] + (j & 1) * (QMM_BN * W::STRIDE) + in_granule;
                Deq::dequant32(row + (es / Deq::QK) * Deq::BYTES, es % Deq::QK, t, valid, o[h]);
            } else {
#pragma unroll
                for (int q = 0; q < 4; q++) o[h][q] = 0;
            }
        }
        const u32 slot = (u32)(s % QMM_A_SLOTS) * QMM_A_SLOT_BYTES;
#pragma unroll
        for (int q = 0; q < 2; q++) stmatrix_x4(a_dst[q] + slot, o[0][2 * q], o[1][2 * q], o[0][2 * q + 1], o[1][2 * q + 1]);
    }
    // Iteration s: the wgmmas of stage s, then the dequantization of s + 1.
    __device__ void step(int s, float (&acc)[64]) {
        cp_async_wait<QMM_AHEAD - 1>();
        fence_proxy_async();
        __syncthreads();
        issue(s + QMM_AHEAD);
        mbar_wait(bars + 8 * (s % QMM_X_SLOTS), (s / QMM_X_SLOTS) & 1);
        const u64 x_d = x_desc + (s % QMM_X_SLOTS) * (QMM_X_SLOT_BYTES >> 4);
        const u64 a_d = a_desc + (s % QMM_A_SLOTS) * (QMM_A_SLOT_BYTES >> 4);
        wgmma_fence();
#pragma unroll
        for (int q = 0; q < 4; q++) qmm_wgmma(acc, a_d + 2 * q, x_d + 2 * q);  // +32 bytes per k16 slab
        wgmma_commit();
        if (s + 1 < x_stages) dequant(s + 1);
        // Stage s − 1's wgmmas are done before the next barrier, after
        // which dequant(s + 2) rewrites their A slot; dequant(s + 1) writes
        // the slot of stage s − 2, which the last iteration's wait freed.
        wgmma_wait<1>();
    }
};

template <typename Deq, typename T>
__device__ void qmm_prefill(const TensorMap* x_map, const u8* __restrict__ w, T* __restrict__ out, u32 m, u32 n,
                            u32 k, u64 row_bytes) {
    using W = QmmW<Deq>;
    extern __shared__ __align__(1024) u8 qmm_smem[];
    __shared__ alignas(8) u64 qmm_bars[QMM_X_SLOTS];
    QmmPrefill<Deq, T> p;
    p.xs = qmm_smem + ((1024 - (smem_addr(qmm_smem) & 1023)) & 1023);
    p.as = p.xs + QMM_X_SLOTS * QMM_X_SLOT_BYTES;
    p.ws = p.as + QMM_A_SLOTS * QMM_A_SLOT_BYTES;
    p.bars = smem_addr(qmm_bars);
    p.x_map = x_map;
    p.w = w;
    p.m = m;
    p.n = n;
    p.k = k;
    p.row_bytes = row_bytes;
    p.m0 = blockIdx.y * QMM_BM;
    p.n0 = blockIdx.x * QMM_BN;
    p.x_stages = (int)((k + QMM_BK - 1) / QMM_BK);
    p.w_stages = (int)((k + Deq::KB - 1) / Deq::KB);
    const int tid = threadIdx.x, lane = tid & 31, warp = tid >> 5, wg = warp >> 2;
    if (tid == 0) {
#pragma unroll
        for (int i = 0; i < QMM_X_SLOTS; i++) mbar_init(p.bars + 8 * i, 1);
        mbar_init_fence();
    }
    __syncthreads();
    {
        const u32 r = tid >> 2, row = p.n0 + r < n ? p.n0 + r : n - 1;
        p.w_copy_row = (u64)w + row * row_bytes;
        p.w_copy_part = tid & 3;
        p.w_copy_dst = smem_addr(p.ws + r * W::STRIDE) + 16 * p.w_copy_part;
    }
    p.a_desc = wgmma_desc_sw128(smem_addr(p.as));
    p.x_desc = wgmma_desc_sw128(smem_addr(p.xs) + wg * (128 * 128));
    const int g = lane >> 2;
    p.t = lane & 3;
    p.k_half = wg;  // warps 0-3 dequantize k 0-31 of a stage, warps 4-7 k 32-63
#pragma unroll
    for (int h = 0; h < 2; h++) {
        p.wrow[h] = 16 * (warp & 3) + g + 8 * h;
        p.w_row[h] = p.ws + p.wrow[h] * W::STRIDE;
        const u32 want = p.n0 + p.wrow[h], row = want < n ? want : n - 1;
        p.wdelta[h] = (u32)(((u64)w + row * row_bytes) & 15);
    }
    // stmatrix: lane l stores row l % 8 of matrix l / 8 (rows +8 for odd
    // matrices, k +8 for the last two), into the 128-byte-swizzled rows.
    {
        const int mat = lane >> 3, row = 16 * (warp & 3) + 8 * (mat & 1) + (lane & 7);
#pragma unroll
        for (int q = 0; q < 2; q++) {
            const int chunk = 4 * p.k_half + 2 * q + (mat >> 1);
            p.a_dst[q] = smem_addr(p.as) + row * 128 + ((chunk ^ (row & 7)) << 4);
        }
    }

    float acc[64];
#pragma unroll
    for (int i = 0; i < 64; i++) acc[i] = 0.0f;

    for (int g0 = 0; g0 < QMM_AHEAD; g0++) p.issue(g0);
    cp_async_wait<QMM_AHEAD - 1>();
    __syncthreads();
    p.dequant(0);
    wgmma_fence_acc(acc);
    for (int s = 0; s < p.x_stages; s++) p.step(s, acc);
    wgmma_wait<0>();
    wgmma_fence_acc(acc);

    // acc[4j + c]: weight row g (+8 for c ≥ 2) of the warp's 16, input row
    // 8j + 2t + (c & 1) of the warpgroup's 128.
    const int t = lane & 3;
#pragma unroll
    for (int half = 0; half < 2; half++) {
        const u32 col = p.n0 + 16 * (warp & 3) + g + 8 * half;
        if (col >= n) continue;
#pragma unroll
        for (int j = 0; j < 16; j++) {
#pragma unroll
            for (int c = 0; c < 2; c++) {
                const u32 row = p.m0 + 128 * wg + 8 * j + 2 * t + c;
                if (row < m) out[(u64)row * n + col] = from_f32<T>(acc[4 * j + 2 * half + c]);
            }
        }
    }
}

#ifdef QMM_DEQ
#define QMM_ENTRY(NAME, T)                                                                                       \
    extern "C" __global__ void __launch_bounds__(QMM_THREADS, 1)                                                 \
        NAME(const __grid_constant__ TensorMap x_map, const u8* w, T* out, u32 m, u32 n, u32 k, u64 row_bytes) { \
        qmm_prefill<QMM_DEQ, T>(&x_map, w, out, m, n, k, row_bytes);                                             \
    }
QMM_ENTRY(QMM_NAME_F32, float)
QMM_ENTRY(QMM_NAME_BF16, bf16_t)
#endif
