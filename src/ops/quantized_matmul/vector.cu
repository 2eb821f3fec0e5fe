// Vector (m = 1) kernels of quantized_matmul_ggml: out[n] = x[k] · W[n, k]ᵀ,
// W stored as GGML blocks, with integer dot products on the raw weight codes.
//
// At m = 1 the product is a stream of the weight bytes; what limits it is
// the instructions spent per byte and the bytes kept in flight. So:
// - x is quantized once per CTA into shared memory: per 32 elements a scale
//   d = amax / 127 and int8 codes q = rint(x · (1 / d)) (IEEE f32
//   operations, ties to even, so a host reference can repeat them
//   exactly), with the sums of the
//   codes over the 32 elements and over each half, which turn the weight
//   codes' offsets and mins into one integer product;
// - the weight codes are unpacked with a few logic ops per 4 codes and
//   multiplied by x with dp4a (4 products and a sum in one instruction);
//   scales apply once per 16- or 32-element group, in f32;
// - weights stream through shared memory: each warp has a private ring of
//   slots filled by bulk async copies (cp.async.bulk, completion on an
//   mbarrier), so the copy engine keeps ~100 KB per multiprocessor in
//   flight without registers, and a copy of the 16-byte aligned superset
//   of a row segment lands it at its global address mod 16: views at any
//   2-byte-aligned offset need no special case;
// - shared-memory wavefronts are the scarce resource (a lane reads ~32
//   bytes of x and the block's bytes per item), so a warp's 32 lanes are 8
//   rows × 4 columns: the 8 rows read the same x (a broadcast), and the 4
//   columns — consecutive blocks, or the parts of one K-quant block — read
//   4 distinct x addresses, one wavefront per 16-byte load.
//
// Layout of the work: a tile is 32 rows; a CTA (16 warps, persistent, one
// per multiprocessor) takes tiles blockIdx.x, blockIdx.x + gridDim.x, …;
// warp w streams rows 8·(w % 4) … + 7 of the tile over quarter w / 4 of k,
// in segments of `T::SB` blocks per row (one slot: 8 row copies). Each
// warp keeps its quarter's row sums in shared memory and moves on without
// waiting for the others (a CTA-wide barrier per tile idles the warps whose
// copies landed first); the four quarters' sums are added, in a fixed
// order, once every tile is done. The launcher sizes the grid so that a
// CTA's row sums fit. When k exceeds what shared memory holds (`QV_XCAP`
// elements), the CTA walks k in phases, x of each phase quantized in turn.
//
// A 16-byte granule that holds at least one byte of the tensor lies inside
// its allocation (allocations are whole granules: `whole_granules` in
// device/cuda.rs), so reading it is in bounds; bytes outside it are not used.

#include "mlxn_prelude.cuh"

#define QV_WARPS 16     // warps per CTA: 4 row groups × 4 quarters of k
#define QV_STAGES 2     // slots in a warp's ring
#define QV_ROW_SLOT 720 // bytes of a row's segment in a slot (an odd number of 16-byte units, for banks)
#define QV_XCAP 16384   // x elements quantized at once (a multiple of 256)

struct QvParams {
    u64 row_bytes;   // bytes per weight row
    u32 n;
    u32 row_blocks;  // blocks per weight row
};

// ---- shared-memory access --------------------------------------------------
// Offsets are bytes from the start of dynamic shared memory; blocks sit at
// any even offset, x codes and their sums at multiples of 16.

__device__ __forceinline__ u32 shf_r(u32 lo, u32 hi, u32 sh) {
    u32 d;
    asm("shf.r.wrap.b32 %0, %1, %2, %3;" : "=r"(d) : "r"(lo), "r"(hi), "r"(sh));
    return d;
}
// N consecutive 32-bit words from an even offset: N + 1 aligned loads and
// a funnel shift each (a shift of 0 when the offset is a multiple of 4).
template <int N>
__device__ __forceinline__ void lds_words(const u8* sm, u32 off, u32 (&w)[N]) {
    const u32* a = (const u32*)(sm + (off & ~3u));
    const u32 sh = (off & 2u) * 8;
    u32 raw[N + 1];
#pragma unroll
    for (int i = 0; i <= N; i++) raw[i] = a[i];
#pragma unroll
    for (int i = 0; i < N; i++) w[i] = shf_r(raw[i], raw[i + 1], sh);
}
// A block that opens with its f16 scale d (Q4_0, Q8_0): d and the N words
// after it, from N + 1 aligned loads (the block starts at most 2 bytes past
// the first); a clamped funnel shift of 32 takes the second word whole.
template <int N>
__device__ __forceinline__ float lds_scaled_block(const u8* sm, u32 off, u32 (&w)[N]) {
    const u32* a = (const u32*)(sm + (off & ~3u));
    const u32 sh = (off & 2u) * 8;
    u32 raw[N + 1];
#pragma unroll
    for (int i = 0; i <= N; i++) raw[i] = a[i];
#pragma unroll
    for (int i = 0; i < N; i++) asm("shf.r.clamp.b32 %0, %1, %2, %3;" : "=r"(w[i]) : "r"(raw[i]), "r"(raw[i + 1]), "r"(sh + 16));
    return f16_bits_to_f32((u16)(raw[0] >> sh));
}
__device__ __forceinline__ u32 lds16(const u8* sm, u32 off) { return ((const u16*)sm)[off >> 1]; }
__device__ __forceinline__ int4 lds128(const u8* sm, u32 off) { return ((const int4*)sm)[off >> 4]; }
// lds_words, with 16-byte loads when `aligned` (the offset a multiple of
// 16; the same for every lane, so the branch does not diverge): 4 words
// per wavefront where 4-byte loads of aligned data meet 4-way bank
// conflicts.
template <int N>
__device__ __forceinline__ void lds_words_a(const u8* sm, u32 off, u32 (&w)[N], bool aligned) {
    static_assert(N % 4 == 0, "whole 16-byte units");
    if (aligned) {
#pragma unroll
        for (int i = 0; i < N / 4; i++) {
            const int4 v = lds128(sm, off + 16 * i);
            w[4 * i] = v.x;
            w[4 * i + 1] = v.y;
            w[4 * i + 2] = v.z;
            w[4 * i + 3] = v.w;
        }
    } else {
        lds_words<N>(sm, off, w);
    }
}

// Σ a_i · b_i over 4 bytes, a unsigned, b signed, plus c.
__device__ __forceinline__ int dot4_us(u32 a, int b, int c) {
    int d;
    asm("dp4a.u32.s32 %0, %1, %2, %3;" : "=r"(d) : "r"(a), "r"(b), "r"(c));
    return d;
}
__device__ __forceinline__ int dot4_ss(u32 a, int b, int c) {
    int d;
    asm("dp4a.s32.s32 %0, %1, %2, %3;" : "=r"(d) : "r"(a), "r"(b), "r"(c));
    return d;
}
__device__ __forceinline__ float f16_lo(u32 w) { return f16_bits_to_f32((u16)w); }
__device__ __forceinline__ float f16_hi(u32 w) { return f16_bits_to_f32((u16)(w >> 16)); }

// The quantized x of one 32-element group: scale and code sums, at
// meta + 16·group (the codes of element e at xq + e).
struct XMeta {
    float d;
    int s32, s16a, s16b;  // Σ q over the group, its first and second half
};
__device__ __forceinline__ XMeta x_meta(const u8* sm, u32 off) {
    const int4 v = lds128(sm, off);
    return XMeta{__int_as_float(v.x), v.y, v.z, v.w};
}

// Σ (4-bit codes of 8 words, low nibbles) · x[0 … 31] and the same for the
// high nibbles · x[32 … 63] (masked in place: 16 × the products, so >> 4).
__device__ __forceinline__ void nibble_dots(const u32 (&q)[8], const u8* sm, u32 xlo, u32 xhi, int& lo, int& hi) {
    const int4 a0 = lds128(sm, xlo), a1 = lds128(sm, xlo + 16);
    const int4 b0 = lds128(sm, xhi), b1 = lds128(sm, xhi + 16);
    const int xa[8] = {a0.x, a0.y, a0.z, a0.w, a1.x, a1.y, a1.z, a1.w};
    const int xb[8] = {b0.x, b0.y, b0.z, b0.w, b1.x, b1.y, b1.z, b1.w};
    int l = 0, h = 0;
#pragma unroll
    for (int i = 0; i < 8; i++) {
        l = dot4_us(q[i] & 0x0F0F0F0Fu, xa[i], l);
        h = dot4_us(q[i] & 0xF0F0F0F0u, xb[i], h);
    }
    lo = l;
    hi = h >> 4;
}

// ---- per-type parts --------------------------------------------------------
// BB: bytes per block, BE: elements per block, PARTS: lanes' shares of a
// block (each `dot` call takes one), SB: blocks of a row per slot (whole
// rounds of the 4 columns where the row slot allows; a segment's bytes,
// their alignment slack and 4 bytes of over-read fit the row slot).
// dot(sm, b, part, xq, xm, aligned): the part's contribution, b the
// block's offset (a multiple of 16 when `aligned`), xq / xm those of the x
// codes / groups of the block's first element.

template <int BB_, int BE_, int PARTS_> struct QvType {
    static constexpr int BB = BB_, BE = BE_, PARTS = PARTS_;
    static constexpr int SB_MAX = (QV_ROW_SLOT - 33) / BB;
    static constexpr int SB_ROUND = 4 / PARTS < 1 ? 1 : 4 / PARTS;
    static constexpr int SB = SB_MAX >= SB_ROUND ? SB_MAX / SB_ROUND * SB_ROUND : SB_MAX;
    static_assert(SB >= 1, "a block fits a row slot");
};

// Q4_0: d, 16 bytes of nibbles; byte j holds elements j (low) and j + 16.
struct Qv_q4_0 : QvType<18, 32, 1> {
    __device__ static __forceinline__ float dot(const u8* sm, u32 b, int, u32 xq, u32 xm, bool) {
        u32 q[4];
        const float d = lds_scaled_block<4>(sm, b, q);
        const int4 a0 = lds128(sm, xq), a1 = lds128(sm, xq + 16);
        const int xa[4] = {a0.x, a0.y, a0.z, a0.w}, xb[4] = {a1.x, a1.y, a1.z, a1.w};
        int lo = 0, hi = 0;  // hi: 16 × Σ (high nibble)·x, the nibbles masked in place
#pragma unroll
        for (int i = 0; i < 4; i++) {
            lo = dot4_us(q[i] & 0x0F0F0F0Fu, xa[i], lo);
            hi = dot4_us(q[i] & 0xF0F0F0F0u, xb[i], hi);
        }
        const XMeta x = x_meta(sm, xm);
        const int sumi = lo + (hi >> 4) - 8 * x.s32;  // Σ (q − 8)·x
        return d * x.d * (float)sumi;
    }
};

// Q8_0: d, 32 signed bytes.
struct Qv_q8_0 : QvType<34, 32, 1> {
    __device__ static __forceinline__ float dot(const u8* sm, u32 b, int, u32 xq, u32 xm, bool) {
        u32 q[8];
        const float d = lds_scaled_block<8>(sm, b, q);
        const int4 a0 = lds128(sm, xq), a1 = lds128(sm, xq + 16);
        const int xa[8] = {a0.x, a0.y, a0.z, a0.w, a1.x, a1.y, a1.z, a1.w};
        int s = 0;
#pragma unroll
        for (int i = 0; i < 8; i++) s = dot4_ss(q[i], xa[i], s);
        return d * x_meta(sm, xm).d * (float)s;
    }
};

// Q4_K / Q5_K: d, dmin, 12 bytes of 6-bit (scale, min) for 8 sub-blocks of
// 32; part g covers elements 64g … 64g + 63 (sub-blocks 2g, 2g + 1), whose
// codes are the low and high nibbles of 32 bytes.
struct K4Scales {
    int sc0, sc1, mn0, mn1;
    float d, dmin;
};
__device__ __forceinline__ K4Scales k4_scales(const u8* sm, u32 b, int g) {
    u32 s[3], dm[1];
    lds_words<3>(sm, b + 4, s);
    lds_words<1>(sm, b, dm);
    const u32 h = (g & 1) * 16;
    const u32 a = s[0] >> h, bb = s[1] >> h, c = s[2] >> h;
    u32 sc, mn;
    if (g < 2) {
        sc = a & 0x3F3Fu;
        mn = bb & 0x3F3Fu;
    } else {
        sc = (c & 0x0F0Fu) | ((a >> 2) & 0x3030u);
        mn = ((c >> 4) & 0x0F0Fu) | ((bb >> 2) & 0x3030u);
    }
    return K4Scales{(int)(sc & 0xFF), (int)((sc >> 8) & 0xFF), (int)(mn & 0xFF), (int)((mn >> 8) & 0xFF),
                    f16_lo(dm[0]), f16_hi(dm[0])};
}
// d·sc·Σ q·x − dmin·m·Σ x over the part's two sub-blocks.
__device__ __forceinline__ float k4_combine(const K4Scales& s, int lo, int hi, const u8* sm, u32 xm, int g) {
    const XMeta a = x_meta(sm, xm + 32 * g), c = x_meta(sm, xm + 32 * g + 16);
    const float ra = a.d * (s.d * (float)(s.sc0 * lo) - s.dmin * (float)(s.mn0 * a.s32));
    const float rc = c.d * (s.d * (float)(s.sc1 * hi) - s.dmin * (float)(s.mn1 * c.s32));
    return ra + rc;
}

struct Qv_q4_k : QvType<144, 256, 4> {
    __device__ static __forceinline__ float dot(const u8* sm, u32 b, int g, u32 xq, u32 xm, bool aligned) {
        u32 q[8];
        lds_words_a<8>(sm, b + 16 + 32 * g, q, aligned);
        int lo, hi;
        nibble_dots(q, sm, xq + 64 * g, xq + 64 * g + 32, lo, hi);
        return k4_combine(k4_scales(sm, b, g), lo, hi, sm, xm, g);
    }
};

// Q5_K: as Q4_K, with the fifth bits in 32 bytes qh: bit 2g of qh[j] for
// element 64g + j, bit 2g + 1 for element 64g + 32 + j.
struct Qv_q5_k : QvType<176, 256, 4> {
    __device__ static __forceinline__ float dot(const u8* sm, u32 b, int g, u32 xq, u32 xm, bool aligned) {
        u32 q[8], qh[8];
        lds_words_a<8>(sm, b + 48 + 32 * g, q, aligned);
        lds_words_a<8>(sm, b + 16, qh, aligned);
        const int4 a0 = lds128(sm, xq + 64 * g), a1 = lds128(sm, xq + 64 * g + 16);
        const int4 b0 = lds128(sm, xq + 64 * g + 32), b1 = lds128(sm, xq + 64 * g + 48);
        const int xa[8] = {a0.x, a0.y, a0.z, a0.w, a1.x, a1.y, a1.z, a1.w};
        const int xb[8] = {b0.x, b0.y, b0.z, b0.w, b1.x, b1.y, b1.z, b1.w};
        int lo = 0, hi = 0;
#pragma unroll
        for (int i = 0; i < 8; i++) {
            const u32 h = qh[i] >> (2 * g);
            lo = dot4_us((q[i] & 0x0F0F0F0Fu) | ((h << 4) & 0x10101010u), xa[i], lo);
            hi = dot4_us(((q[i] >> 4) & 0x0F0F0F0Fu) | ((h << 3) & 0x10101010u), xb[i], hi);
        }
        return k4_combine(k4_scales(sm, b, g), lo, hi, sm, xm, g);
    }
};

// Q6_K: per 128 elements (half h), ql[64h + l] holds elements l (low
// nibble) and l + 64, ql[64h + 32 + l] elements l + 32 and l + 96, qh[32h +
// l] their top 2 bits at shifts 0, 4, 2, 6; value d·sc·(q − 32), one int8
// scale per 16 elements. Part p: half p / 2, ql run a = p % 2: elements
// 32a + [0, 32) (low nibbles) and 64 + 32a + [0, 32) (high).
struct Qv_q6_k : QvType<210, 256, 4> {
    __device__ static __forceinline__ float dot(const u8* sm, u32 b, int p, u32 xq, u32 xm, bool) {
        const int h = p >> 1, a = p & 1;
        u32 q[8], qh[8];
        lds_words<8>(sm, b + 64 * h + 32 * a, q);
        lds_words<8>(sm, b + 128 + 32 * h, qh);
        const u32 e_lo = 128 * h + 32 * a, e_hi = e_lo + 64;
        const int4 a0 = lds128(sm, xq + e_lo), a1 = lds128(sm, xq + e_lo + 16);
        const int4 b0 = lds128(sm, xq + e_hi), b1 = lds128(sm, xq + e_hi + 16);
        const int xa[8] = {a0.x, a0.y, a0.z, a0.w, a1.x, a1.y, a1.z, a1.w};
        const int xb[8] = {b0.x, b0.y, b0.z, b0.w, b1.x, b1.y, b1.z, b1.w};
        int lo[2] = {0, 0}, hi[2] = {0, 0};  // per 16 elements
#pragma unroll
        for (int i = 0; i < 8; i++) {
            const u32 t = qh[i] >> (2 * a);
            lo[i / 4] = dot4_us((q[i] & 0x0F0F0F0Fu) | ((t << 4) & 0x30303030u), xa[i], lo[i / 4]);
            hi[i / 4] = dot4_us(((q[i] >> 4) & 0x0F0F0F0Fu) | (t & 0x30303030u), xb[i], hi[i / 4]);
        }
        const u32 s_lo = lds16(sm, b + 192 + 8 * h + 2 * a), s_hi = lds16(sm, b + 196 + 8 * h + 2 * a);
        const XMeta xl = x_meta(sm, xm + 16 * (e_lo / 32)), xh = x_meta(sm, xm + 16 * (e_hi / 32));
        const int il = (int)(signed char)s_lo * (lo[0] - 32 * xl.s16a) + (int)(signed char)(s_lo >> 8) * (lo[1] - 32 * xl.s16b);
        const int ih = (int)(signed char)s_hi * (hi[0] - 32 * xh.s16a) + (int)(signed char)(s_hi >> 8) * (hi[1] - 32 * xh.s16b);
        return f16_bits_to_f32((u16)lds16(sm, b + 208)) * (xl.d * (float)il + xh.d * (float)ih);
    }
};

// ---- x quantization --------------------------------------------------------

__device__ __forceinline__ float div_rn(float a, float b) {
    float d;
    asm("div.rn.f32 %0, %1, %2;" : "=f"(d) : "f"(a), "f"(b));
    return d;
}
__device__ __forceinline__ int rint_s32(float v) {
    int d;
    asm("cvt.rni.s32.f32 %0, %1;" : "=r"(d) : "f"(v));
    return d;
}

// x[e0 … e0 + count) → codes at xq and group sums at xm (offsets in
// shared memory); count is a multiple of 32. Each lane quantizes 8
// consecutive elements (4 lanes make a group) of up to QV_X_BATCH chunks
// of 256, all loaded before any is converted, so that their reads overlap;
// a batch starts at x_batch0() and steps by QV_X_BATCH_STEP.
#define QV_X_BATCH 4
#define QV_X_BATCH_STEP (QV_X_BATCH * QV_WARPS * 256)
__device__ __forceinline__ u32 x_batch0() { return (threadIdx.x >> 5) * 256 + 8 * (threadIdx.x & 31); }

template <class IO>
__device__ __forceinline__ void x_load(const IO* __restrict__ x, u32 e0, u32 count, u32 c0, float (&v)[QV_X_BATCH][8]) {
#pragma unroll
    for (int u = 0; u < QV_X_BATCH; u++) {
        const u32 e = c0 + u * QV_WARPS * 256;
#pragma unroll
        for (int j = 0; j < 8; j++) v[u][j] = e < count ? to_f32(x[e0 + e + j]) : 0.f;
    }
}

__device__ __forceinline__ void x_convert(u32 count, u32 c0, const float (&v)[QV_X_BATCH][8], u8* sm, u32 xq, u32 xm) {
    const int lane = threadIdx.x & 31;
#pragma unroll
    for (int u = 0; u < QV_X_BATCH; u++) {
        const u32 e = c0 + u * QV_WARPS * 256;
        float amax = 0.f;
        int nan = 0;
#pragma unroll
        for (int j = 0; j < 8; j++) {
            amax = fmaxf(amax, fabsf(v[u][j]));
            nan |= v[u][j] != v[u][j];
        }
        amax = fmaxf(amax, __shfl_xor_sync(0xffffffffu, amax, 1));
        amax = fmaxf(amax, __shfl_xor_sync(0xffffffffu, amax, 2));
        nan |= __shfl_xor_sync(0xffffffffu, nan, 1);
        nan |= __shfl_xor_sync(0xffffffffu, nan, 2);
        // A d below the smallest normal f32 (amax < 127 · 2⁻¹²⁶) has no
        // finite inverse: such a group counts as zeros. fmaxf skips NaN, so
        // a group holding one gets d = NaN (its codes 0), which makes every
        // output NaN, as on the other paths; an infinite input gives
        // d = inf and codes 0, and so NaN outputs too.
        const float d = nan ? __int_as_float(0x7fc00000) : div_rn(amax, 127.f);
        const float inv = d >= 1.17549435e-38f ? div_rn(1.f, d) : 0.f;
        u32 packed[2] = {0, 0};
        int s = 0;
#pragma unroll
        for (int j = 0; j < 8; j++) {
            const int q = rint_s32(v[u][j] * inv);
            s += q;
            packed[j / 4] |= ((u32)q & 0xFFu) << (8 * (j % 4));
        }
        const int s16 = s + __shfl_xor_sync(0xffffffffu, s, 1);
        const int s32 = s16 + __shfl_xor_sync(0xffffffffu, s16, 2);
        if (e < count) {
            *(uint2*)(sm + xq + e) = make_uint2(packed[0], packed[1]);
            if ((lane & 3) == 0) *(int4*)(sm + xm + 16 * (e / 32)) = make_int4(__float_as_int(d), s32, s16, s32 - s16);
        }
    }
}

// ---- the kernel template ---------------------------------------------------

template <class T, class IO>
__device__ __forceinline__ void qv(const IO* __restrict__ x, const u8* __restrict__ wt, IO* __restrict__ out,
                                   const QvParams p) {
    constexpr u32 SLOT = 8 * QV_ROW_SLOT;  // a warp's slot: its 8 rows
    extern __shared__ int4 smem_vec[];
    u8* sm = (u8*)smem_vec;
    const int warp = threadIdx.x >> 5, lane = threadIdx.x & 31;
    const u32 rg = warp & 3, quarter = warp >> 2;  // row group, quarter of k
    const u32 r = lane >> 2, col = lane & 3;         // this lane's row in the group, column

    const u32 n_tiles = (p.n + 31) / 32;
    const u32 my_tiles = n_tiles > blockIdx.x ? (n_tiles - blockIdx.x + gridDim.x - 1) / gridDim.x : 0;
    const u32 phase_blocks = QV_XCAP / T::BE;
    const u32 n_phases = (p.row_blocks + phase_blocks - 1) / phase_blocks;
    const u32 x_elems = n_phases > 1 ? QV_XCAP : p.row_blocks * T::BE;

    // Shared memory: the warps' rings, their barriers, x codes, x group
    // sums, the rows' sums per quarter ([4][my_tiles · 32]).
    const u32 ring = warp * QV_STAGES * SLOT;
    const u32 bars = QV_WARPS * QV_STAGES * SLOT;
    const u32 xq = bars + QV_WARPS * QV_STAGES * 8;
    const u32 xm = xq + x_elems;
    const u32 cta_rows = my_tiles * 32;
    float* row_sums = (float*)(sm + xm + x_elems / 2);
    const u32 bar0 = smem_addr(sm + bars) + warp * QV_STAGES * 8;
    const u32 ring0 = smem_addr(sm + ring);

    // This warp's blocks of a phase, [q0, q1), in `segs` segments.
    struct Quarter {
        u32 q0, q1, segs;
    };
    auto quarter_of = [&](u32 ph) {
        const u32 p0 = ph * phase_blocks, len = min(phase_blocks, p.row_blocks - p0);
        const u32 q0 = p0 + len * quarter / 4, q1 = p0 + len * (quarter + 1) / 4;
        return Quarter{q0, q1, (q1 - q0 + T::SB - 1) / T::SB};
    };
    // Start of row `i` of this warp's group in a tile; rows past n repeat
    // row n − 1 (valid bytes, results dropped).
    auto row_start = [&](u32 tile, u32 i) {
        return wt + min((blockIdx.x + tile * gridDim.x) * 32 + rg * 8 + i, p.n - 1) * p.row_bytes;
    };

    // The copies run ahead of the sums in the same order: phase, tile,
    // segment; done at f_ph == n_phases. Lanes 0 … 7 copy rows 0 … 7.
    u32 f_ph = 0, f_tile = 0, f_seg = 0;
    Quarter fq = quarter_of(0);
    const u8* f_row = row_start(0, lane & 7);
    auto settle = [&]() {
        while (f_ph < n_phases && (f_tile == my_tiles || fq.segs == 0)) {
            f_tile = 0;
            if (++f_ph < n_phases) fq = quarter_of(f_ph);
        }
        f_row = row_start(f_tile, lane & 7);
    };
    settle();
    auto issue = [&](u32 slot) {
        if (f_ph == n_phases) return;
        if (lane < 8) {
            const u32 b0 = fq.q0 + f_seg * T::SB, nb = min((u32)T::SB, fq.q1 - b0);
            const u64 src = (u64)(f_row + (u64)b0 * T::BB), lo = src & ~(u64)15;
            const u32 bytes = (u32)(((src + nb * T::BB + 15) & ~(u64)15) - lo);
            mbar_expect_tx(bar0 + 8 * slot, bytes);
            bulk_copy(ring0 + slot * SLOT + lane * QV_ROW_SLOT, (const u8*)lo, bytes, bar0 + 8 * slot);
        }
        if (++f_seg < fq.segs) return;
        f_seg = 0;
        f_tile++;
        settle();
    };

    if (lane == 0) {
#pragma unroll
        for (int s = 0; s < QV_STAGES; s++) mbar_init(bar0 + 8 * s, 8);
        mbar_init_fence();
    }
    __syncwarp();
    // x's first batch is read before the first weight copies, which would
    // otherwise fill the memory queues ahead of it; the copies then overlap
    // its quantization.
    const u32 c_first = x_batch0();
    float xv[QV_X_BATCH][8];
    x_load(x, 0, x_elems, c_first, xv);
#pragma unroll
    for (int s = 0; s < QV_STAGES; s++) issue(s);

    u32 slot = 0, parity = 0;
    for (u32 ph = 0; ph < n_phases; ph++) {
        if (ph > 0) __syncthreads();  // every warp is done with the previous phase's x
        const u32 e0 = ph * phase_blocks * T::BE, count = min(x_elems, p.row_blocks * T::BE - e0);
        for (u32 c0 = c_first; c0 - c_first + warp * 256 < count; c0 += QV_X_BATCH_STEP) {
            if (ph > 0 || c0 != c_first) x_load(x, e0, count, c0, xv);
            x_convert(count, c0, xv, sm, xq, xm);
        }
        __syncthreads();
        const Quarter cq = quarter_of(ph);
        for (u32 tile = 0; tile < my_tiles; tile++) {
            const u8* row = row_start(tile, r);
            float acc = 0.f;
            for (u32 b0 = cq.q0; b0 < cq.q1; b0 += T::SB) {
                const u32 nb = min((u32)T::SB, cq.q1 - b0);
                const u32 base = ring + slot * SLOT + r * QV_ROW_SLOT + (u32)((u64)(row + (u64)b0 * T::BB) & 15);
                const u32 xb = (b0 - ph * phase_blocks) * T::BE;  // x offset of the segment in this phase
                const bool aligned = (base & 15) == 0;
                mbar_wait(bar0 + 8 * slot, parity);
                const u32 items = nb * T::PARTS;
                auto item = [&](u32 t) {
                    const u32 bi = t / T::PARTS, part = t % T::PARTS;
                    return T::dot(sm, base + bi * T::BB, (int)part, xq + xb + bi * T::BE, xm + (xb + bi * T::BE) / 2,
                                  aligned);
                };
                // Two items at a time, independent until their sums meet, so
                // that one's loads overlap the other's arithmetic.
                u32 t = col;
                for (; t + 4 < items; t += 8) acc += item(t) + item(t + 4);
                if (t < items) acc += item(t);
                __syncwarp();  // every lane has read the slot before it is refilled
                issue(slot);
                if (++slot == QV_STAGES) {
                    slot = 0;
                    parity ^= 1;
                }
            }
            // The row's sum over this quarter (and the phases so far).
            acc += __shfl_xor_sync(0xffffffffu, acc, 1);
            acc += __shfl_xor_sync(0xffffffffu, acc, 2);
            if (col == 0) {
                float* s = row_sums + quarter * cta_rows + tile * 32 + rg * 8 + r;
                *s = ph == 0 ? acc : *s + acc;
            }
        }
    }
    __syncthreads();
    for (u32 i = threadIdx.x; i < cta_rows; i += QV_WARPS * 32) {
        const u32 row = (blockIdx.x + i / 32 * gridDim.x) * 32 + i % 32;
        const float v = row_sums[i] + row_sums[cta_rows + i] + row_sums[2 * cta_rows + i] + row_sums[3 * cta_rows + i];
        if (row < p.n) out[row] = from_f32<IO>(v);
    }
}

// One module per GGML type: the launcher appends QV_INSTANTIATE(tag).
#define QV_INSTANTIATE(tag)                                                                                  \
    extern "C" __global__ void __launch_bounds__(QV_WARPS * 32, 1)                                          \
        quantized_matmul_vector_##tag##_f32(const float* x, const u8* w, float* out, QvParams p) {          \
        qv<Qv_##tag, float>(x, w, out, p);                                                                   \
    }                                                                                                        \
    extern "C" __global__ void __launch_bounds__(QV_WARPS * 32, 1)                                          \
        quantized_matmul_vector_##tag##_bf16(const bf16_t* x, const u8* w, bf16_t* out, QvParams p) {       \
        qv<Qv_##tag, bf16_t>(x, w, out, p);                                                                  \
    }
