// Gated DeltaNet prefill, state kernel for F32 calls (see gdn_prefill.cuh;
// BF16 calls use gdn_prefill_state_wg.cu): tf32 mma.sync on tiles staged
// with cp.async.
#include "gdn_prefill.cuh"

// ---- state: one block of 256 threads per (value head × V tile, sequence) ---

#define GDN_STATE_THREADS 256

template <typename T, int K>
struct GdnStateLayout {
    static constexpr int PAD = 16 / (int)sizeof(T);
    static constexpr int KS = K + PAD;
    static constexpr int PS = GDN_C + PAD;
    static constexpr int US = GDN_VT + PAD;
    static constexpr int FLOATS = GDN_F_FLOATS;
    // Elements of T per stage: W, K, [Q], P, U tiles, then the floats.
    __device__ static int stage_elems(bool q_in_w) {
        return (q_in_w ? 2 : 3) * GDN_C * KS + GDN_C * PS + GDN_C * US + FLOATS * 4 / (int)sizeof(T);
    }
};

template <typename T, int K>
__device__ void gdn_state(const T* __restrict__ q, const T* __restrict__ k,
                          const T* __restrict__ w_in, const T* __restrict__ u_in, const T* __restrict__ p_in,
                          const float* __restrict__ f_in,
                          const float* initial_state, float* final_state, float* __restrict__ chunk_states,
                          T* __restrict__ o, const GdnSeqs& seqs, const GdnDims& d) {
    using L = GdnStateLayout<T, K>;
    constexpr int KS = L::KS, PS = L::PS, US = L::US;
    constexpr int NTH = K / 32;  // state column tiles per warp (each warp holds 16 rows × K/4)
    const int V = d.value_dim, Hv = d.num_value_heads, Hk = d.num_key_heads;
    const GdnStateBlock blk = gdn_state_block(seqs, d, GDN_VT, f_in);
    if (blk.idle) return;
    const int h = blk.h, kh = blk.kh, v0 = blk.v0, seq = blk.seq;
    const int tok0 = blk.tok0, tok1 = blk.tok1, c0 = blk.c0;
    const int c_first = blk.c_first, c_out = blk.c_out, c_end = blk.c_end;
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
    gdn_state_load<NTH>(acc_h, initial_state && c_first == c0 ? initial_state + state_base : nullptr, K, v0 + mw * 16,
                        nq * (K / 4));

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
        if (tid < GDN_F_FLOATS / 4) cp_async<16>(smem_addr(fl + 4 * tid), f_in + ((u64)c * Hv + h) * GDN_F_FLOATS + 4 * tid);
    };

    // With S stages, chunk c + S − 1 is being loaded while chunk c is used.
    // With three, its copies are issued in two halves, at the start of the
    // step and after V_new: issued all at once, they kept every warp in the
    // copy queue with no products to overlap (the step took 9% longer on an
    // H200, 16 key / 32 value heads, T = 32768).
    const int S = d.stages;
    const bool halves = S == 3 && !q_in_w;
    for (int p = 0; p < (S > 1 ? S - 1 : 1); ++p) {
        if (c_first + p < c_end) load_chunk(c_first + p, p, 3);
        cp_async_commit();
    }
    for (int c = c_first; c < c_end; ++c) {
        const int s = (c - c_first) % S;
        const bool writes = c >= c_out;
        if (halves) {
            // Chunk c + 2's group is committed after its second half, so
            // chunk c's is the older of the two pending.
            if (c + 2 < c_end) load_chunk(c + 2, (c - c_first + 2) % 3, 1);
            cp_async_wait<1>();
        } else if (S > 1) {
            if (c + S - 1 < c_end) load_chunk(c + S - 1, (c - c_first + S - 1) % S, 3);
            cp_async_commit();
            if (S == 3) cp_async_wait<2>();
            else cp_async_wait<1>();
        } else {
            cp_async_wait<0>();
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
                if (chunk_states && writes)
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
            else {
                gdn_mma_smem<T, 2, false, false>(acc, ws + rb * 16 * KS, KS, hs + ch * 16 * KS, KS, K);
                gdn_mma_smem<T, 2, false, false>(oq, qt + rb * 16 * KS, KS, hs + ch * 16 * KS, KS, K);
            }
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
            if (c + 2 < c_end) load_chunk(c + 2, (c - c_first + 2) % 3, 2);
            cp_async_commit();
        }
        if (q_in_w) {
            gdn_load_tile<T, GDN_C, K, GDN_STATE_THREADS>(qt, KS, q + ((u64)start * Hk + kh) * K, (u64)Hk * K, len);
            cp_async_commit();
            cp_async_wait<0>();
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
                    if (writes && i < len) gdn_store2(o + ((u64)(start + i) * Hv + h) * V + v0 + ch * 16 + n * 8 + 2 * tq, acc[n][2 * hr], acc[n][2 * hr + 1]);
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
        if (S == 1 && c + 1 < c_end) {
            load_chunk(c + 1, 0, 3);
            cp_async_commit();
        }
    }
    cp_async_wait<0>();

    if (final_state && c_end == blk.c1) gdn_state_store<NTH>(final_state + state_base, acc_h, K, v0 + mw * 16, nq * (K / 4));
}

#define GDN_STATE(KD)                                                                                            \
    extern "C" __global__ void __launch_bounds__(GDN_STATE_THREADS) gdn_prefill_state_k##KD##_f32(               \
        const float* q, const float* k, const float* w, const float* u, const float* p, const float* f,          \
        const float* initial_state, float* final_state, float* chunk_states, float* o, GdnSeqs seqs, GdnDims d) { \
        gdn_state<float, KD>(q, k, w, u, p, f, initial_state, final_state, chunk_states, o, seqs, d);            \
    }

GDN_STATE(64)
GDN_STATE(128)
GDN_STATE(256)
