// Gated DeltaNet prefill, state kernel for BF16 calls on sm_90 (the
// algorithm is in gdn_prefill.cuh; F32 calls use gdn_prefill_state.cu).
//
// One block of two warpgroups per (value head × 64-row V tile, sequence,
// segment), sequential over its chunks; the chunks a segment's chain runs
// before its own (gdn_chain_start) go through every step but write no
// output or snapshot. The recurrence runs transposed, so that the
// state H (64 × K, f32) and V_new never leave warpgroup 0's registers on the
// way from one chunk to the next:
//   (b) WG0: V_newᵀ = Uᵀ − H·Wᵀ on wgmma, H the register A operand;
//   (d) WG0: H ← e^{G_L} H + (f_k ∘ V_new)ᵀ·K on wgmma, (f_k ∘ V_new)ᵀ the
//       register A operand and the K tile N-major from shared memory;
//   (c) WG1: Oᵀ = f_q ∘ (H·Qᵀ) + V_newᵀ·Pᵀ on wgmma, from copies of H and
//       V_newᵀ that WG0 writes to shared memory while its products run.
// Each warp of a warpgroup holds 16 value rows of every accumulator (the
// wgmma and mma.sync C layouts agree there), and a C fragment pair packs
// into the A fragment of the next product without moving between lanes.
// The warpgroups meet on named barriers only where data passes.
// W, K, Q, P and U arrive by TMA with the 128-byte swizzle (16-byte unit u
// of row r at unit u ^ (r % 8) of its 128-byte row), the row factors by one
// bulk copy, in two rings of stages: W, K and U for WG0 (refilled by thread
// 0), Q and P for WG1 (refilled by thread 128), each stage refilled as soon
// as its warpgroup is done with it, so that WG0's loads run ahead of it by
// as many chunks as its ring holds, whatever WG1's pace.
#include "gdn_prefill.cuh"

#define GDN_WG_THREADS 256
#define GDN_WG_VT 64       // value rows per block
#define GDN_BOX 8192       // one TMA box: 64 rows × 64 bf16 columns (128 bytes)

// Byte offsets inside a stage of each ring, and the sizes after the rings;
// mirrored by `state_wg_smem` in prefill/cuda.rs.
template <int K> struct GdnWgLayout {
    static constexpr int TILE = K / 64 * GDN_BOX;  // a 64 × K tile (W, K or Q)
    static constexpr int F_BYTES = GDN_F_FLOATS * 4;
    // WG0's ring: W, K, U and the row factors.
    static constexpr int W = 0, KT = TILE, U = 2 * TILE, FA = U + GDN_BOX;
    static constexpr int A_BYTES = FA + F_BYTES;
    static constexpr int A_STAGE = (A_BYTES + 1023) / 1024 * 1024;
    // WG1's ring: Q, P and the row factors; O leaves through Q's place.
    static constexpr int Q = 0, OT = 0, P = TILE, FB = P + GDN_BOX;
    static constexpr int B_BYTES = FB + F_BYTES;
    static constexpr int B_STAGE = (B_BYTES + 1023) / 1024 * 1024;
    static constexpr int HS = TILE;     // H as bf16: 64 value rows × K
    static constexpr int VN = GDN_BOX;  // V_newᵀ: 64 value rows × 64 tokens
};

#define GDN_D4(o) "+f"(d[o]), "+f"(d[o + 1]), "+f"(d[o + 2]), "+f"(d[o + 3])
// d (64 × 64, f32) += a · b over k16: a from registers (the mma.sync A
// fragment of each warp's 16 rows), b from the descriptor, K-major (TB = 0)
// or N-major (TB = 1).
template <int TB>
__device__ __forceinline__ void gdn_wgmma_rs_n64(float (&d)[32], const u32 (&a)[4], u64 desc_b, int accumulate) {
    asm volatile(
        "{\n.reg .pred p;\nsetp.ne.b32 p, %37, 0;\n"
        "wgmma.mma_async.sync.aligned.m64n64k16.f32.bf16.bf16 "
        "{%0, %1, %2, %3, %4, %5, %6, %7, %8, %9, %10, %11, %12, %13, %14, %15, %16, %17, %18, %19, %20, %21, %22, %23, %24, %25, %26, %27, %28, %29, %30, %31}, "
        "{%32, %33, %34, %35}, %36, p, 1, 1, %38;\n}\n"
        : GDN_D4(0), GDN_D4(4), GDN_D4(8), GDN_D4(12), GDN_D4(16), GDN_D4(20), GDN_D4(24), GDN_D4(28)
        : "r"(a[0]), "r"(a[1]), "r"(a[2]), "r"(a[3]), "l"(desc_b), "r"(accumulate), "n"(TB));
}

// d (64 × 128, f32) += a · b over k16: a from registers (the mma.sync A
// fragment of each warp's 16 rows), b from the descriptor, K-major (TB = 0)
// or N-major (TB = 1).
template <int TB>
__device__ __forceinline__ void gdn_wgmma_rs_n128(float (&d)[64], const u32 (&a)[4], u64 desc_b, int accumulate) {
    asm volatile(
        "{\n.reg .pred p;\nsetp.ne.b32 p, %69, 0;\n"
        "wgmma.mma_async.sync.aligned.m64n128k16.f32.bf16.bf16 "
        "{%0, %1, %2, %3, %4, %5, %6, %7, %8, %9, %10, %11, %12, %13, %14, %15, %16, %17, %18, %19, %20, %21, %22, %23, %24, %25, %26, %27, %28, %29, %30, %31, %32, %33, %34, %35, %36, %37, %38, %39, %40, %41, %42, %43, %44, %45, %46, %47, %48, %49, %50, %51, %52, %53, %54, %55, %56, %57, %58, %59, %60, %61, %62, %63}, "
        "{%64, %65, %66, %67}, %68, p, 1, 1, %70;\n}\n"
        : GDN_D4(0), GDN_D4(4), GDN_D4(8), GDN_D4(12), GDN_D4(16), GDN_D4(20), GDN_D4(24), GDN_D4(28), GDN_D4(32), GDN_D4(36), GDN_D4(40), GDN_D4(44), GDN_D4(48), GDN_D4(52), GDN_D4(56), GDN_D4(60)
        : "r"(a[0]), "r"(a[1]), "r"(a[2]), "r"(a[3]), "l"(desc_b), "r"(accumulate), "n"(TB));
}

// d (64 × 64, f32) += a · b over k16, both from descriptors, K-major.
__device__ __forceinline__ void gdn_wgmma_ss_n64(float (&d)[32], u64 desc_a, u64 desc_b, int accumulate) {
    asm volatile(
        "{\n.reg .pred p;\nsetp.ne.b32 p, %34, 0;\n"
        "wgmma.mma_async.sync.aligned.m64n64k16.f32.bf16.bf16 "
        "{%0, %1, %2, %3, %4, %5, %6, %7, %8, %9, %10, %11, %12, %13, %14, %15, %16, %17, %18, %19, %20, %21, %22, %23, %24, %25, %26, %27, %28, %29, %30, %31}, "
        "%32, %33, p, 1, 1, 0, 0;\n}\n"
        : GDN_D4(0), GDN_D4(4), GDN_D4(8), GDN_D4(12), GDN_D4(16), GDN_D4(20), GDN_D4(24), GDN_D4(28)
        : "l"(desc_a), "l"(desc_b), "r"(accumulate));
}

// Shared-memory descriptor of an N-major bf16 tile with the 128-byte
// swizzle, as TMA writes a 64-column box: each 128-byte row holds 64
// consecutive N of one k, groups of 8 k rows 1024 bytes apart, and the
// next 64 N `mn_stride` bytes on (the next box).
__device__ __forceinline__ u64 gdn_desc_sw128_mn(u32 saddr, u32 mn_stride) {
    return (u64)((saddr & 0x3FFFF) >> 4) | ((u64)(mn_stride >> 4) << 16) | ((u64)(1024 >> 4) << 32) | ((u64)1 << 62);
}

// The A fragment of k16 step j from C fragments c[2j], c[2j + 1] (16 rows × 16 columns).
__device__ __forceinline__ void gdn_c_to_a(u32 (&a)[4], const float (&c0)[4], const float (&c1)[4]) {
    a[0] = gdn_pack_bf16(c0[0], c0[1]);
    a[1] = gdn_pack_bf16(c0[2], c0[3]);
    a[2] = gdn_pack_bf16(c1[0], c1[1]);
    a[3] = gdn_pack_bf16(c1[2], c1[3]);
}

// Stores A fragment `a` of k16 step j as the warp's 16 rows × 16 columns of
// a swizzled tile of 128-byte rows (64-column boxes GDN_BOX apart), rows
// 16·w4 … : matrix lane / 8 of the x4 is (rows + 8·(lane / 8 % 2), columns + 8·(lane / 16)).
__device__ __forceinline__ void gdn_store_a(u32 tile, int w4, int j, const u32 (&a)[4]) {
    const int lane = threadIdx.x & 31, r8 = lane & 7;
    const int r = 16 * w4 + 8 * ((lane >> 3) & 1) + r8;
    const int col = 16 * j + 8 * (lane >> 4);
    stmatrix_x4(tile + (col >> 6) * GDN_BOX + r * 128 + ((((col & 63) >> 3) ^ r8) << 4), a[0], a[1], a[2], a[3]);
}

template <int K>
__device__ void gdn_state_wg(const TensorMap* q_map, const TensorMap* k_map, const TensorMap* w_map,
                             const TensorMap* p_map, const TensorMap* u_map, const float* __restrict__ f_in,
                             const float* initial_state, float* final_state, float* __restrict__ chunk_states,
                             bf16_t* __restrict__ o, const GdnSeqs& seqs, const GdnDims& d) {
    using L = GdnWgLayout<K>;
    constexpr int KS = K / 16;  // k16 steps of H·Wᵀ and H·Qᵀ
    const int V = d.value_dim, Hv = d.num_value_heads;
    const GdnStateBlock blk = gdn_state_block(seqs, d, GDN_WG_VT, f_in);
    if (blk.idle) return;
    const int h = blk.h, kh = blk.kh, v0 = blk.v0, seq = blk.seq;
    const int tok0 = blk.tok0, tok1 = blk.tok1, c0 = blk.c0, c1 = blk.c1;
    const int c_first = blk.c_first, c_out = blk.c_out, c_end = blk.c_end;
    const int tid = threadIdx.x, warp = tid >> 5, lane = tid & 31;
    const int wg = warp >> 2, w4 = warp & 3;
    const int t = lane & 3, r8 = lane & 7;
    // Stages of this warpgroup's ring (WG0: W, K, U; WG1: Q, P).
    const int S = wg == 0 ? d.stages : d.out_stages, STAGE = wg == 0 ? L::A_STAGE : L::B_STAGE;

    extern __shared__ __align__(16) unsigned char gdn_smem_raw[];
    const u32 raw = smem_addr(gdn_smem_raw);
    const u32 base = (raw + 1023) & ~1023u;  // swizzled tiles start 1024-byte aligned
    unsigned char* smem = gdn_smem_raw + (base - raw);
    const u32 ring_a = base, ring_b = ring_a + d.stages * L::A_STAGE;
    const u32 ring = wg == 0 ? ring_a : ring_b;
    // H and V_newᵀ are double-buffered: WG1 reads chunk c's while WG0
    // writes chunk c + 1's.
    const u32 hs0 = ring_b + d.out_stages * L::B_STAGE, vn0 = hs0 + 2 * L::HS, bars = vn0 + 2 * L::VN;

    const u64 state_base = ((u64)seq * Hv + h) * V * K;
    // H rows v0 + 16·w4 + …, as K/8 C fragments (WG0 only).
    float acc_h[K / 8][4];
    if (wg == 0)
        gdn_state_load<K / 8>(acc_h, initial_state && c_first == c0 ? initial_state + state_base : nullptr, K,
                              v0 + 16 * w4, 0);
    // Per ring, full[s]: the copies of the chunk in stage s landed; empty[s]:
    // the ring's 128 threads are done with it.
    const u32 full = bars + wg * 48, empty = full + 24;
    if (tid == 0) {
        for (int r = 0; r < 2; ++r)
            for (int s = 0; s < (r == 0 ? d.stages : d.out_stages); ++s) {
                mbar_init(bars + r * 48 + 8 * s, 1);
                mbar_init(bars + r * 48 + 24 + 8 * s, 128);
            }
        mbar_init_fence();
    }
    __syncthreads();

    // Chunk c into stage s of this warpgroup's ring (one thread).
    auto load_chunk = [&](int c, int s) {
        const u32 st = ring + s * STAGE, bar = full + 8 * s;
        const int start = tok0 + (c - c0) * GDN_C;
        const float* f = f_in + ((u64)c * Hv + h) * GDN_F_FLOATS;
        if (wg == 0) {
            mbar_expect_tx(bar, L::A_BYTES);
#pragma unroll
            for (int j = 0; j < K / 64; ++j) {
                tma_load_2d(st + L::W + j * GDN_BOX, w_map, h * K + j * 64, start, bar);
                tma_load_2d(st + L::KT + j * GDN_BOX, k_map, kh * K + j * 64, start, bar);
            }
            tma_load_2d(st + L::U, u_map, h * V + v0, start, bar);
            bulk_copy(st + L::FA, f, L::F_BYTES, bar);
        } else {
            mbar_expect_tx(bar, L::B_BYTES);
#pragma unroll
            for (int j = 0; j < K / 64; ++j) tma_load_2d(st + L::Q + j * GDN_BOX, q_map, kh * K + j * 64, start, bar);
            tma_load_2d(st + L::P, p_map, 0, (c * Hv + h) * GDN_C, bar);
            bulk_copy(st + L::FB, f, L::F_BYTES, bar);
        }
    };
    // Named barriers of all 256 threads, one per buffer b: H_READY + b and
    // VN_READY + b (WG0 wrote H or V_newᵀ), H_FREE + b and VN_FREE + b (WG1
    // is done reading it). WG1 arrives on each FREE barrier once before the
    // first chunk and WG0 syncs on each once after the last, so every
    // arrival is matched by the other side's sync before the next. WG0_SYNC
    // and WG1_SYNC are each warpgroup's own.
    enum { H_READY = 1, H_FREE = 3, VN_READY = 5, VN_FREE = 7, WG0_SYNC = 9, WG1_SYNC = 10 };
    const bool producer = (tid & 127) == 0;
    if (producer)
        for (int p = 0; p < S && c_first + p < c_end; ++p) load_chunk(c_first + p, p);
    if (wg == 1)
        for (int b = 0; b < 2; ++b) {
            named_arrive(H_FREE + b, GDN_WG_THREADS);
            named_arrive(VN_FREE + b, GDN_WG_THREADS);
        }

    // Chunk c sits in stage s of each ring; `fill` is the parity of that stage's fill.
    int s = 0;
    u32 fill = 0;
    for (int c = c_first; c < c_end; ++c) {
        const int b = (c - c_first) & 1;
        const bool writes = c >= c_out;
        const u32 st = ring + s * STAGE, hs = hs0 + b * L::HS, vnt = vn0 + b * L::VN;
        const float* fl = reinterpret_cast<const float*>(smem + (st - base) + (wg == 0 ? L::FA : L::FB));
        const int start = tok0 + (c - c0) * GDN_C;
        const int len = min(GDN_C, tok1 - start);

        if (wg == 0) {
            if (chunk_states && writes)
                gdn_state_store<K / 8>(chunk_states + ((u64)c * Hv + h) * V * K, acc_h, K, v0 + 16 * w4, 0);
            // (b) H·Wᵀ (64 values × 64 tokens over K), H as bf16 A fragments.
            // At most 8 k16 steps are in flight: their A fragments stay live
            // until they complete.
            float acc[32];
            constexpr int GROUP = KS < 8 ? KS : 8;
            mbar_wait(full + 8 * s, fill);
#pragma unroll
            for (int j0 = 0; j0 < KS; j0 += GROUP) {
                u32 ha[GROUP][4];
#pragma unroll
                for (int j = 0; j < GROUP; ++j) gdn_c_to_a(ha[j], acc_h[2 * (j0 + j)], acc_h[2 * (j0 + j) + 1]);
                wgmma_fence();
#pragma unroll
                for (int j = 0; j < GROUP; ++j) {
                    const int k = j0 + j;
                    gdn_wgmma_rs_n64<0>(acc, ha[j], wgmma_desc_sw128(st + L::W + (k >> 2) * GDN_BOX + (k & 3) * 32), k > 0);
                }
                wgmma_commit();
                if (j0 + GROUP < KS) wgmma_wait<0>();
            }
            // While the tensor cores work: H for WG1's H·Qᵀ (packed again from
            // the f32 state, which the running products do not use), then Uᵀ
            // (transposed reads of the U tile: tokens 8n + 2t, +1 of value row
            // 16·w4 + 8hr + lane % 8 … ) and f_k.
            named_sync(H_FREE + b, GDN_WG_THREADS);
#pragma unroll
            for (int j = 0; j < KS; ++j) {
                u32 a[4];
                gdn_c_to_a(a, acc_h[2 * j], acc_h[2 * j + 1]);
                gdn_store_a(hs, w4, j, a);
            }
            fence_proxy_async();
            named_arrive(H_READY + b, GDN_WG_THREADS);
            u32 ut[8][2];
#pragma unroll
            for (int n = 0; n < 8; n += 2) {
                const int mi = lane >> 3;  // matrix (n + mi / 2, hr = mi % 2)
                const int tok = 8 * (n + (mi >> 1)) + r8;
                u32 x[4];
                gdn_ldsm_t(x, st + L::U + tok * 128 + (((2 * w4 + (mi & 1)) ^ r8) << 4));
                ut[n][0] = x[0];
                ut[n][1] = x[1];
                ut[n + 1][0] = x[2];
                ut[n + 1][1] = x[3];
            }
            float2 fk[8];
#pragma unroll
            for (int n = 0; n < 8; ++n) fk[n] = *reinterpret_cast<const float2*>(fl + GDN_C + 8 * n + 2 * t);
            wgmma_wait<0>();
            wgmma_fence_acc(acc);

            // V_newᵀ = Uᵀ − H·Wᵀ (tokens past the chunk's end are zero): as A
            // fragments of (d) scaled by f_k, and unscaled for WG1.
            float (*c4)[4] = reinterpret_cast<float (*)[4]>(acc);
#pragma unroll
            for (int n = 0; n < 8; ++n)
#pragma unroll
                for (int hr = 0; hr < 2; ++hr) {
                    const int tok = 8 * n + 2 * t;
                    c4[n][2 * hr] = tok < len ? bf16_bits_to_f32((u16)ut[n][hr]) - c4[n][2 * hr] : 0.f;
                    c4[n][2 * hr + 1] = tok + 1 < len ? bf16_bits_to_f32((u16)(ut[n][hr] >> 16)) - c4[n][2 * hr + 1] : 0.f;
                }
            u32 vn[4][4], vd[4][4];
#pragma unroll
            for (int j = 0; j < 4; ++j) {
                gdn_c_to_a(vn[j], c4[2 * j], c4[2 * j + 1]);
                float s0[4], s1[4];
#pragma unroll
                for (int e = 0; e < 4; ++e) {
                    s0[e] = c4[2 * j][e] * ((e & 1) ? fk[2 * j].y : fk[2 * j].x);
                    s1[e] = c4[2 * j + 1][e] * ((e & 1) ? fk[2 * j + 1].y : fk[2 * j + 1].x);
                }
                gdn_c_to_a(vd[j], s0, s1);
            }
            // K rows past a partial chunk's end hold another sequence's
            // tokens (or TMA zeros): zero them so (d) multiplies zeros only.
            if (len < GDN_C) {
                unsigned char* kt = smem + (st - base) + L::KT;
                for (int x = tid; x < (GDN_C - len) * (K / 8); x += 128) {
                    const int r = len + x / (K / 8), unit = x % (K / 8);
                    *reinterpret_cast<uint4*>(kt + (unit >> 3) * GDN_BOX + r * 128 + (unit & 7) * 16) = make_uint4(0, 0, 0, 0);
                }
                fence_proxy_async();  // before (d) and the stage's next TMA fill
                named_sync(WG0_SYNC, 128);
            }

            // (d) H ← e^{G_L} H + (f_k ∘ V_new)ᵀ·K: B is the K tile read
            // N-major (rows are tokens, k along them), at most 128 columns per wgmma.
            const float cd = fl[2 * GDN_C];
#pragma unroll
            for (int n = 0; n < K / 8; ++n)
#pragma unroll
                for (int e = 0; e < 4; ++e) acc_h[n][e] *= cd;
            wgmma_fence();
#pragma unroll
            for (int j = 0; j < 4; ++j) {
                const u32 kt = st + L::KT + j * 16 * 128;
                if constexpr (K == 64) {
                    gdn_wgmma_rs_n64<1>(reinterpret_cast<float (&)[32]>(acc_h), vd[j], gdn_desc_sw128_mn(kt, GDN_BOX), 1);
                } else {
#pragma unroll
                    for (int half = 0; half < K / 128; ++half)
                        gdn_wgmma_rs_n128<1>(reinterpret_cast<float (&)[64]>(acc_h[16 * half]), vd[j],
                                             gdn_desc_sw128_mn(kt + 2 * half * GDN_BOX, GDN_BOX), 1);
                }
            }
            wgmma_commit();
            // V_newᵀ for WG1 while (d) runs.
            named_sync(VN_FREE + b, GDN_WG_THREADS);
#pragma unroll
            for (int j = 0; j < 4; ++j) gdn_store_a(vnt, w4, j, vn[j]);
            fence_proxy_async();
            named_arrive(VN_READY + b, GDN_WG_THREADS);
            wgmma_wait<0>();
#pragma unroll
            for (int n = 0; n < K / 8; ++n) wgmma_fence_acc(acc_h[n]);
        } else {
            // (c) Oᵀ = f_q ∘ (H·Qᵀ) + V_newᵀ·Pᵀ (64 values × 64 tokens).
            float acc[32];
            named_sync(H_READY + b, GDN_WG_THREADS);
            mbar_wait(full + 8 * s, fill);
            wgmma_fence();
#pragma unroll
            for (int j = 0; j < KS; ++j)
                gdn_wgmma_ss_n64(acc, wgmma_desc_sw128(hs + (j >> 2) * GDN_BOX + (j & 3) * 32),
                                 wgmma_desc_sw128(st + L::Q + (j >> 2) * GDN_BOX + (j & 3) * 32), j > 0);
            wgmma_commit();
            wgmma_wait<0>();
            wgmma_fence_acc(acc);
            named_arrive(H_FREE + b, GDN_WG_THREADS);
            float (*c4)[4] = reinterpret_cast<float (*)[4]>(acc);
#pragma unroll
            for (int n = 0; n < 8; ++n) {
                const float2 fq = *reinterpret_cast<const float2*>(fl + 8 * n + 2 * t);
                c4[n][0] *= fq.x;
                c4[n][1] *= fq.y;
                c4[n][2] *= fq.x;
                c4[n][3] *= fq.y;
            }
            named_sync(VN_READY + b, GDN_WG_THREADS);
            wgmma_fence();
#pragma unroll
            for (int j = 0; j < 4; ++j)
                gdn_wgmma_ss_n64(acc, wgmma_desc_sw128(vnt + j * 32), wgmma_desc_sw128(st + L::P + j * 32), 1);
            wgmma_commit();
            wgmma_wait<0>();
            wgmma_fence_acc(acc);
            named_arrive(VN_FREE + b, GDN_WG_THREADS);
            // O leaves through Q's place in the stage, swizzled (stmatrix.trans:
            // row = token, 16-byte unit = 8 values), as 16-byte row pieces.
            const u32 ot = st + L::OT;
#pragma unroll
            for (int n = 0; n < 8; n += 2) {
                const int mi = lane >> 3;  // matrix (n + mi / 2, hr = mi % 2)
                const int tok = 8 * (n + (mi >> 1)) + r8;
                stmatrix_x4_trans(ot + tok * 128 + (((2 * w4 + (mi & 1)) ^ r8) << 4), gdn_pack_bf16(c4[n][0], c4[n][1]),
                                  gdn_pack_bf16(c4[n][2], c4[n][3]), gdn_pack_bf16(c4[n + 1][0], c4[n + 1][1]),
                                  gdn_pack_bf16(c4[n + 1][2], c4[n + 1][3]));
            }
            named_sync(WG1_SYNC, 128);
            const unsigned char* ots = smem + (ot - base);
#pragma unroll
            for (int x = tid - 128; x < GDN_C * 8; x += 128) {
                const int tok = x >> 3, unit = x & 7;
                if (writes && tok < len)
                    *reinterpret_cast<uint4*>(o + ((u64)(start + tok) * Hv + h) * V + v0 + unit * 8) =
                        *reinterpret_cast<const uint4*>(ots + tok * 128 + ((unit ^ (tok & 7)) << 4));
            }
            fence_proxy_async();  // the O writes, before the stage's next TMA fill
        }
        // The stage is free once the warpgroup's 128 threads arrived; its
        // producer then refills it with chunk c + S.
        mbar_arrive(empty + 8 * s);
        if (producer && c + S < c_end) {
            mbar_wait(empty + 8 * s, fill);
            load_chunk(c + S, s);
        }
        if (++s == S) {
            s = 0;
            fill ^= 1;
        }
    }
    if (wg == 0)
        for (int b = 0; b < 2; ++b) {
            named_sync(H_FREE + b, GDN_WG_THREADS);
            named_sync(VN_FREE + b, GDN_WG_THREADS);
        }

    if (final_state && wg == 0 && c_end == c1) gdn_state_store<K / 8>(final_state + state_base, acc_h, K, v0 + 16 * w4, 0);
}

#define GDN_STATE_WG(KD)                                                                                           \
    extern "C" __global__ void __launch_bounds__(GDN_WG_THREADS, 1) gdn_prefill_state_wg_k##KD(                   \
        const __grid_constant__ TensorMap q_map, const __grid_constant__ TensorMap k_map,                          \
        const __grid_constant__ TensorMap w_map, const __grid_constant__ TensorMap p_map,                          \
        const __grid_constant__ TensorMap u_map, const float* f, const float* initial_state, float* final_state,   \
        float* chunk_states, bf16_t* o, GdnSeqs seqs, GdnDims d) {                                                 \
        gdn_state_wg<KD>(&q_map, &k_map, &w_map, &p_map, &u_map, f, initial_state, final_state, chunk_states, o,   \
                         seqs, d);                                                                                 \
    }

GDN_STATE_WG(64)
GDN_STATE_WG(128)
GDN_STATE_WG(256)
