// Gated DeltaNet prefill, state kernel for BF16 calls on sm_90 (the
// algorithm is in gdn_prefill.cuh; F32 calls use gdn_prefill_state.cu).
//
// One block of two warpgroups per (value head × 32-row V tile, sequence),
// sequential over the chunks; the state H (32 × K, f32) stays in the
// registers of warpgroup 0 from the first chunk to the last. Per chunk:
//   (a) WG0 writes H as a bf16 operand tile (two buffers);
//   (b) WG0: V_new = U − W·Hᵀ on wgmma m64n32 (W and H read from shared
//       memory once per warpgroup, not once per warp), V_newᵀ stored;
//   (c) WG1, once V_new is there: O = f_q ∘ (Q·Hᵀ) (wgmma) + P·V_new
//       (mma.sync), stored;
//   (d) WG0, beside (c): H ← e^{G_L} H + (f_k ∘ V_new)ᵀ·K (mma.sync).
// Only WG0's chain (a) → (b) → V_new → (d) is sequential from chunk to
// chunk, and it has the tensor cores to itself during (b); the warpgroups
// meet on named barriers only where data passes.
// W, K, Q and P arrive by TMA with the 128-byte swizzle (16-byte unit u of
// row r at unit u ^ (r % 8) of its 128-byte row), U unswizzled, the row
// factors by one bulk copy, in S stages; thread 128 refills a stage with
// chunk c + S as soon as every thread is done with chunk c.
#include "gdn_prefill.cuh"

#define GDN_WG_THREADS 256
#define GDN_BOX 8192  // one TMA box: 64 rows × 64 bf16 columns (128 bytes)

// Byte offsets inside a stage, and the sizes after the stages; mirrored by
// `state_wg_smem` in prefill/cuda.rs.
template <int K> struct GdnWgLayout {
    static constexpr int TILE = K / 64 * GDN_BOX;  // a 64 × K tile (W, K or Q)
    static constexpr int W = 0, KT = TILE, Q = 2 * TILE, P = 3 * TILE, U = P + GDN_BOX;
    static constexpr int F = U + GDN_C * GDN_VT * 2;
    static constexpr int BYTES = F + GDN_F_FLOATS * 4;  // what lands per chunk
    static constexpr int STAGE = (BYTES + 1023) / 1024 * 1024;
    static constexpr int HS = K / 64 * GDN_VT * 128;  // H as bf16: K/64 blocks of 32 rows × 128 bytes
    static constexpr int VN = GDN_VT * 128;           // V_newᵀ: 32 rows × 64 tokens
};

#define GDN_D4(o) "+f"(d[o]), "+f"(d[o + 1]), "+f"(d[o + 2]), "+f"(d[o + 3])
// d (64 × 32, f32) = a (64 × 16 bf16) · b (16 × 32 bf16) + (accumulate ? d : 0),
// both K-major with the 128-byte swizzle. Thread (warp w, lane 4g + t)
// holds d[4n + 2hr + e] = D(16w + g + 8hr, 8n + 2t + e).
__device__ __forceinline__ void gdn_wgmma_n32(float (&d)[16], u64 desc_a, u64 desc_b, int accumulate) {
    asm volatile(
        "{\n.reg .pred p;\nsetp.ne.b32 p, %18, 0;\n"
        "wgmma.mma_async.sync.aligned.m64n32k16.f32.bf16.bf16 "
        "{%0, %1, %2, %3, %4, %5, %6, %7, %8, %9, %10, %11, %12, %13, %14, %15}, %16, %17, p, 1, 1, 0, 0;\n}\n"
        : GDN_D4(0), GDN_D4(4), GDN_D4(8), GDN_D4(12)
        : "l"(desc_a), "l"(desc_b), "r"(accumulate));
}

// Issues d = A·Hᵀ (64 × 32 over K) and commits it: A a 64 × K tile of
// K / 64 swizzled boxes at `a`, H the 32 × K operand at `hs` (K / 64
// swizzled blocks of 32 rows); the caller waits.
template <int K>
__device__ __forceinline__ void gdn_tile_times_ht(float (&d)[16], u32 a, u32 hs) {
    wgmma_fence();
#pragma unroll
    for (int j = 0; j < K / 16; ++j)
        gdn_wgmma_n32(d, wgmma_desc_sw128(a + (j >> 2) * GDN_BOX + (j & 3) * 32),
                      wgmma_desc_sw128(hs + (j >> 2) * (GDN_VT * 128) + (j & 3) * 32), j > 0);
    wgmma_commit();
}

template <int K>
__device__ void gdn_state_wg(const TensorMap* q_map, const TensorMap* k_map, const TensorMap* w_map,
                             const TensorMap* p_map, const TensorMap* u_map, const float* __restrict__ f_in,
                             const float* initial_state, float* final_state, float* __restrict__ chunk_states,
                             bf16_t* __restrict__ o, const GdnSeqs& seqs, const GdnDims& d) {
    using L = GdnWgLayout<K>;
    constexpr int NTH = K / 16;  // 8-column state tiles of a WG0 warp (16 rows × K/2 columns)
    const int V = d.value_dim, Hv = d.num_value_heads;
    const GdnStateBlock blk = gdn_state_block(seqs, d);
    const int h = blk.h, kh = blk.kh, v0 = blk.v0, seq = blk.seq;
    const int tok0 = blk.tok0, tok1 = blk.tok1, c0 = blk.c0, c1 = blk.c1;
    const int tid = threadIdx.x, warp = tid >> 5, lane = tid & 31;
    const int wg = warp >> 2, w4 = warp & 3;
    const int g = lane >> 2, t = lane & 3;
    const int r8 = lane & 7, m1 = (lane >> 3) & 1, m2 = lane >> 4;
    // WG0 warp w4 holds state rows 16·mw … +16, columns (K/2)·nq … +K/2.
    const int mw = w4 & 1, nq = w4 >> 1;
    const int S = d.stages;

    extern __shared__ __align__(16) unsigned char gdn_smem_raw[];
    const u32 raw = smem_addr(gdn_smem_raw);
    const u32 base = (raw + 1023) & ~1023u;  // swizzled tiles start 1024-byte aligned
    unsigned char* smem = gdn_smem_raw + (base - raw);
    // H is double-buffered: WG1 reads chunk c's while WG0 writes chunk c + 1's.
    const u32 hs0 = base + S * L::STAGE, vnt = hs0 + 2 * L::HS, vdt = vnt + L::VN, bars = vdt + L::VN;

    const u64 state_base = ((u64)seq * Hv + h) * V * K;
    float acc_h[NTH][4];
    if (wg == 0)
        gdn_state_load<NTH>(acc_h, initial_state ? initial_state + state_base : nullptr, K, v0 + mw * 16, nq * (K / 2));
    // full[s]: the copies of the chunk in stage s landed; empty[s]: all 256
    // threads are done with it.
    const u32 full = bars, empty = bars + 8 * 3;
    if (tid == 0) {
        for (int s = 0; s < S; ++s) {
            mbar_init(full + 8 * s, 1);
            mbar_init(empty + 8 * s, GDN_WG_THREADS);
        }
        mbar_init_fence();
    }
    __syncthreads();

    auto load_chunk = [&](int c, int s) {
        const u32 st = base + s * L::STAGE, bar = full + 8 * s;
        const int start = tok0 + (c - c0) * GDN_C;
        mbar_expect_tx(bar, L::BYTES);
#pragma unroll
        for (int j = 0; j < K / 64; ++j) {
            tma_load_2d(st + L::W + j * GDN_BOX, w_map, h * K + j * 64, start, bar);
            tma_load_2d(st + L::KT + j * GDN_BOX, k_map, kh * K + j * 64, start, bar);
            tma_load_2d(st + L::Q + j * GDN_BOX, q_map, kh * K + j * 64, start, bar);
        }
        tma_load_2d(st + L::P, p_map, 0, (c * Hv + h) * GDN_C, bar);
        tma_load_2d(st + L::U, u_map, h * V + v0, start, bar);
        bulk_copy(st + L::F, f_in + ((u64)c * Hv + h) * GDN_F_FLOATS, GDN_F_FLOATS * 4, bar);
    };
    // The warpgroups meet only where data passes between them, on named
    // barriers of all 256 threads: H_FREE + b (WG1 done reading H buffer
    // b), VN_READY (H and V_newᵀ written), VN_FREE (WG1 done reading V_newᵀ);
    // WG0 alone syncs on WG0_SYNC. WG1 arrives on each FREE barrier once
    // before the first chunk and WG0 syncs on each once after the last, so
    // every arrival is matched by the other side's sync before the next.
    enum { H_FREE = 1, VN_READY = 3, VN_FREE, WG0_SYNC };
    const int producer = 128;  // a WG1 thread: WG1 is off the state's critical path
    if (tid == producer)
        for (int p = 0; p < S && c0 + p < c1; ++p) load_chunk(c0 + p, p);
    if (wg == 1) {
        named_arrive(H_FREE, GDN_WG_THREADS);
        named_arrive(H_FREE + 1, GDN_WG_THREADS);
        named_arrive(VN_FREE, GDN_WG_THREADS);
    }

    float acc[16];
#pragma unroll
    for (int i = 0; i < 16; ++i) acc[i] = 0.f;
    // Chunk c sits in stage s; `fill` is the parity of that stage's fill.
    int s = 0, prev_s = 0;
    u32 fill = 0, prev_fill = 0;
    for (int c = c0; c < c1; ++c) {
        const int i = c - c0;
        const u32 st = base + s * L::STAGE, hs = hs0 + (i & 1) * L::HS;
        const unsigned char* sp = smem + s * L::STAGE;
        const float* fl = reinterpret_cast<const float*>(sp + L::F);
        const int start = tok0 + i * GDN_C;
        const int len = min(GDN_C, tok1 - start);

        if (wg == 0) {
            // (a) H as the bf16 B operand of (b): row v, column k at block k / 64.
            named_sync(H_FREE + (i & 1), GDN_WG_THREADS);
#pragma unroll
            for (int n = 0; n < NTH; ++n)
#pragma unroll
                for (int hr = 0; hr < 2; ++hr) {
                    const int r = mw * 16 + g + 8 * hr;  // r % 8 == g
                    const int col = nq * (K / 2) + n * 8 + 2 * t;
                    const int off = (col >> 6) * (GDN_VT * 128) + r * 128 + ((((col & 63) >> 3) ^ g) << 4) + 4 * t;
                    *reinterpret_cast<u32*>(smem + (hs - base) + off) = gdn_pack_bf16(acc_h[n][2 * hr], acc_h[n][2 * hr + 1]);
                    if (chunk_states)
                        gdn_store2(chunk_states + ((u64)c * Hv + h) * V * K + (u64)(v0 + r) * K + col, acc_h[n][2 * hr],
                                   acc_h[n][2 * hr + 1]);
                }
            fence_proxy_async();
            named_sync(WG0_SYNC, 128);
            mbar_wait(full + 8 * s, fill);

            // (b) W·Hᵀ (64 tokens × 32 values over K); U and f_k are read
            // while the tensor cores work.
            gdn_tile_times_ht<K>(acc, st + L::W, hs);
            const unsigned char* u = sp + L::U;
            u32 uw[4][2];
            float fk[2];
#pragma unroll
            for (int hr = 0; hr < 2; ++hr) {
                const int tok = w4 * 16 + g + 8 * hr;
                fk[hr] = fl[GDN_C + tok];
#pragma unroll
                for (int n = 0; n < 4; ++n) uw[n][hr] = *reinterpret_cast<const u32*>(u + tok * (GDN_VT * 2) + (8 * n + 2 * t) * 2);
            }
            wgmma_wait<0>();
            wgmma_fence_acc(acc);

            // V_new = U − W·Hᵀ (rows past the chunk's end are zero), stored
            // transposed, as is f_k ∘ V_new: V_newᵀ is the B operand of (c),
            // (f_k ∘ V_new)ᵀ the A operand of (d).
            u32 vn[4][2], vd[4][2];
#pragma unroll
            for (int n = 0; n < 4; ++n)
#pragma unroll
                for (int hr = 0; hr < 2; ++hr) {
                    const bool in = w4 * 16 + g + 8 * hr < len;
                    const float x0 = in ? bf16_bits_to_f32((u16)uw[n][hr]) - acc[4 * n + 2 * hr] : 0.f;
                    const float x1 = in ? bf16_bits_to_f32((u16)(uw[n][hr] >> 16)) - acc[4 * n + 2 * hr + 1] : 0.f;
                    vn[n][hr] = gdn_pack_bf16(x0, x1);
                    vd[n][hr] = gdn_pack_bf16(fk[hr] * x0, fk[hr] * x1);
                }
            named_sync(VN_FREE, GDN_WG_THREADS);
            // Matrix lane / 8 of each x4 is (n = 2q + mi / 2, hr = mi % 2);
            // its transposed row r8 is value 8n + r8, tokens 16·w4 + 8hr … +8.
#pragma unroll
            for (int q = 0; q < 2; ++q) {
                const int mi = lane >> 3;
                const int v = 8 * (2 * q + (mi >> 1)) + r8;  // v % 8 == r8
                const u32 off = v * 128 + (((2 * w4 + (mi & 1)) ^ r8) << 4);
                stmatrix_x4_trans(vnt + off, vn[2 * q][0], vn[2 * q][1], vn[2 * q + 1][0], vn[2 * q + 1][1]);
                stmatrix_x4_trans(vdt + off, vd[2 * q][0], vd[2 * q][1], vd[2 * q + 1][0], vd[2 * q + 1][1]);
            }
            // K rows past a partial chunk's end hold another sequence's
            // tokens (or TMA zeros): zero them so (d) multiplies zeros only.
            if (len < GDN_C) {
                unsigned char* kt = smem + s * L::STAGE + L::KT;
                for (int x = tid; x < (GDN_C - len) * (K / 8); x += 128) {
                    const int r = len + x / (K / 8), unit = x % (K / 8);
                    *reinterpret_cast<uint4*>(kt + (unit >> 3) * GDN_BOX + r * 128 + (unit & 7) * 16) = make_uint4(0, 0, 0, 0);
                }
                fence_proxy_async();  // before the stage's next TMA fill
            }
            named_arrive(VN_READY, GDN_WG_THREADS);
            named_sync(WG0_SYNC, 128);

            // (d) H ← e^{G_L} H + (f_k ∘ V_new)ᵀ·K: A from V_dᵀ (rows v,
            // tokens along k), B from the K tile (tokens along k, read
            // transposed); both swizzled, rows r with r % 8 == r8.
            const float cd = fl[2 * GDN_C];
#pragma unroll
            for (int n = 0; n < NTH; ++n)
#pragma unroll
                for (int e = 0; e < 4; ++e) acc_h[n][e] *= cd;
            const u32 kt = st + L::KT;
#pragma unroll
            for (int k0 = 0; k0 < GDN_C; k0 += 16) {
                u32 af[4];
                gdn_ldsm(af, vdt + (mw * 16 + r8 + 8 * m1) * 128 + ((((k0 >> 3) + m2) ^ r8) << 4));
#pragma unroll
                for (int n = 0; n < NTH; n += 2) {
                    const int col = nq * (K / 2) + n * 8 + 8 * m2;
                    u32 bf[4];
                    gdn_ldsm_t(bf, kt + (col >> 6) * GDN_BOX + (k0 + r8 + 8 * m1) * 128 + ((((col & 63) >> 3) ^ r8) << 4));
                    GdnMma<bf16_t>::mma(acc_h[n], af, bf);
                    GdnMma<bf16_t>::mma(acc_h[n + 1], af, bf + 2);
                }
            }
        } else {
            // The stage chunk c − 1 used is free once all threads arrived on it.
            if (tid == producer && i > 0 && c - 1 + S < c1) {
                mbar_wait(empty + 8 * prev_s, prev_fill);
                load_chunk(c - 1 + S, prev_s);
            }
            // (c) O = f_q ∘ (Q·Hᵀ) + P·V_new, after WG0 wrote H and V_new.
            named_sync(VN_READY, GDN_WG_THREADS);
            mbar_wait(full + 8 * s, fill);
            gdn_tile_times_ht<K>(acc, st + L::Q, hs);
            wgmma_wait<0>();
            wgmma_fence_acc(acc);
            named_arrive(H_FREE + (i & 1), GDN_WG_THREADS);
#pragma unroll
            for (int n = 0; n < 4; ++n)
#pragma unroll
                for (int e = 0; e < 4; ++e) acc[4 * n + e] *= fl[w4 * 16 + g + (e >= 2 ? 8 : 0)];
            // P·V_new on mma.sync (the acc layout of a warp's 16 rows is the
            // mma C layout): A = P rows 16·w4 …, B = V_newᵀ rows (values).
            float (*o4)[4] = reinterpret_cast<float (*)[4]>(acc);
#pragma unroll
            for (int k0 = 0; k0 < GDN_C; k0 += 16) {
                u32 af[4];
                gdn_ldsm(af, st + L::P + (w4 * 16 + r8 + 8 * m1) * 128 + ((((k0 >> 3) + m2) ^ r8) << 4));
#pragma unroll
                for (int n = 0; n < 4; n += 2) {
                    u32 bf[4];
                    gdn_ldsm(bf, vnt + (n * 8 + r8 + 8 * m2) * 128 + ((((k0 >> 3) + m1) ^ r8) << 4));
                    GdnMma<bf16_t>::mma(o4[n], af, bf);
                    GdnMma<bf16_t>::mma(o4[n + 1], af, bf + 2);
                }
            }
            named_arrive(VN_FREE, GDN_WG_THREADS);
#pragma unroll
            for (int n = 0; n < 4; ++n)
#pragma unroll
                for (int hr = 0; hr < 2; ++hr) {
                    const int tok = w4 * 16 + g + 8 * hr;
                    if (tok < len)
                        gdn_store2(o + ((u64)(start + tok) * Hv + h) * V + v0 + 8 * n + 2 * t, acc[4 * n + 2 * hr],
                                   acc[4 * n + 2 * hr + 1]);
                }
        }
        mbar_arrive(empty + 8 * s);
        prev_s = s;
        prev_fill = fill;
        if (++s == S) {
            s = 0;
            fill ^= 1;
        }
    }
    if (wg == 0) {
        named_sync(H_FREE, GDN_WG_THREADS);
        named_sync(H_FREE + 1, GDN_WG_THREADS);
        named_sync(VN_FREE, GDN_WG_THREADS);
    }

    if (final_state && wg == 0) gdn_state_store<NTH>(final_state + state_base, acc_h, K, v0 + mw * 16, nq * (K / 2));
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
