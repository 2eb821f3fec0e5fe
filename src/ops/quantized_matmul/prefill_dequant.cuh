// Per-type dequantization for the prefill kernels: the only per-type code.
//
// Each struct describes one GGML type and provides
//   dequant32(b, e0, t, valid, out[4]): of the 32 elements e0 .. e0+31 (e0 a
//     multiple of 32 inside the block at `b`), the pairs that lane t of a
//     quad holds in a wgmma A fragment: out[j] = bf16x2 of elements
//     e0 + 2t + 8j and +1, j = 0..3 (k 2t,2t+1 and 2t+8,2t+9 of the two k16
//     slabs). For QK = 1, `b` points at element e0 itself.
// The types the prefill path is tuned for write dequant32 directly; the
// others derive it from dequant8(b, e0, valid, v[8]) (elements e0 .. e0+7,
// e0 even, of which only the first two are used and the rest are dead
// code), through QmmPairs.
// `b` points into shared memory where the raw blocks were copied verbatim,
// so it is only 2-byte aligned (blocks of 18, 22, 34 ... bytes).
// The math is that of src/formats/quants (the CPU reference).
//
//   QK    elements per block (1 for the float types: `b` is the element)
//   BYTES bytes per block
//   KB    elements per pipeline stage of the weight tile (a multiple of 64)
//
// `valid` is how many of the 32 elements from e0 lie inside the row; only
// the float types can end a row mid-chunk (quantized rows are whole blocks
// of at least 32 elements).
#pragma once

__device__ __forceinline__ u32 qmm_pack_bf16(float lo, float hi) {
    u32 r;
    asm("cvt.rn.bf16x2.f32 %0, %1, %2;" : "=r"(r) : "f"(hi), "f"(lo));
    return r;
}
// Exact int → float for |v| < 2^22 without the quarter-rate I2F: v is added
// to the mantissa of 1.5 · 2^23, which is then subtracted.
__device__ __forceinline__ float qmm_i2f(int v) { return __int_as_float(0x4B400000 + v) - 12582912.0f; }

// Packed bf16 dequantization for codes below 128: the code goes into the
// mantissa of bf16 128.0 (0x4300), exact; subtracting 128 + offset is exact
// too, so the only roundings are the scale's (to bf16) and the product's.
#define QMM_BF16X2_ONE 0x3F803F80u
#define QMM_BF16X2_NEG_ZERO 0x80008000u
__device__ __forceinline__ u32 qmm_bf16x2_fma(u32 a, u32 b, u32 c) {
    u32 d;
    asm("fma.rn.bf16x2 %0, %1, %2, %3;" : "=r"(d) : "r"(a), "r"(b), "r"(c));
    return d;
}
// Bytes 0 and 1 of w moved to bytes 0 and 2 (one per bf16 half).
__device__ __forceinline__ u32 qmm_spread(u32 w) { return __byte_perm(w, 0, 0x4140); }
// scale · (code − 128 − off) for two codes c (bits 0-6 and 16-22), where
// neg_base is the bf16x2 of −(128 + off).
__device__ __forceinline__ u32 qmm_scale_codes(u32 c, u32 neg_base, u32 scale2, u32 add2) {
    return qmm_bf16x2_fma(qmm_bf16x2_fma(c | 0x43004300u, QMM_BF16X2_ONE, neg_base), scale2, add2);
}

__device__ __forceinline__ u32 qmm_ld16(const u8* p) { return *(const u16*)p; }
__device__ __forceinline__ u32 qmm_ld32(const u8* p) { return qmm_ld16(p) | (qmm_ld16(p + 2) << 16); }
__device__ __forceinline__ float qmm_half(const u8* p) { return f16_bits_to_f32((u16)qmm_ld16(p)); }

// 8 bytes at 2-byte-aligned p, as two little-endian words.
struct QmmBytes8 {
    u32 w[2];
    __device__ __forceinline__ explicit QmmBytes8(const u8* p) { w[0] = qmm_ld32(p); w[1] = qmm_ld32(p + 4); }
    __device__ __forceinline__ u32 operator[](int i) const { return (w[i >> 2] >> (8 * (i & 3))) & 0xFFu; }
};

// The 16 IQ4_NL levels as bytes, selected with prmt so that no divergent
// constant-memory lookup is needed.
__device__ __forceinline__ float qmm_iq4_level(u32 q) {
    const u32 lo = q < 8 ? 0xBFAD9881u : 0x26190D01u;  // levels 0..3 / 8..11 (bytes LE)
    const u32 hi = q < 8 ? 0xF6EADDCFu : 0x71594535u;  // levels 4..7 / 12..15
    return (float)(i8)(__byte_perm(lo, hi, q & 7) & 0xFF);
}

// dequant32 from a type's dequant8: the pair at e0 + 2t + 8j is the start of
// an 8-element run (its last six elements are unused and compiled away).
template <typename D> struct QmmPairs {
    __device__ static void dequant32(const u8* b, int e0, int t, int valid, u32 out[4]) {
#pragma unroll
        for (int j = 0; j < 4; j++) {
            const int l = 2 * t + 8 * j;
            float v[8];
            if (D::QK == 1) D::dequant8(b + l * D::BYTES, 0, valid - l, v);
            else D::dequant8(b, e0 + l, 8, v);
            out[j] = qmm_pack_bf16(v[0], v[1]);
        }
    }
};

struct DeqF32 : QmmPairs<DeqF32> {
    static constexpr int QK = 1, BYTES = 4, KB = 128;
    __device__ static void dequant8(const u8* b, int, int valid, float v[8]) {
#pragma unroll
        for (int i = 0; i < 8; i++) v[i] = i < valid ? __uint_as_float(qmm_ld32(b + 4 * i)) : 0.0f;
    }
};
struct DeqF16 : QmmPairs<DeqF16> {
    static constexpr int QK = 1, BYTES = 2, KB = 128;
    __device__ static void dequant8(const u8* b, int, int valid, float v[8]) {
#pragma unroll
        for (int i = 0; i < 8; i++) v[i] = i < valid ? qmm_half(b + 2 * i) : 0.0f;
    }
};
struct DeqBF16 : QmmPairs<DeqBF16> {
    static constexpr int QK = 1, BYTES = 2, KB = 128;
    __device__ static void dequant8(const u8* b, int, int valid, float v[8]) {
#pragma unroll
        for (int i = 0; i < 8; i++) v[i] = i < valid ? bf16_bits_to_f32((u16)qmm_ld16(b + 2 * i)) : 0.0f;
    }
};

// Legacy 32-element blocks: element e < 16 is the low nibble of qs[e],
// element e >= 16 the high nibble of qs[e - 16].
struct DeqQ4_0 {
    static constexpr int QK = 32, BYTES = 18, KB = 256;
    // Pair j: low (j < 2) or high nibbles of qs[2t + 8(j % 2)], +1.
    __device__ static void dequant32(const u8* b, int, int t, int, u32 out[4]) {
        const u32 d2 = qmm_pack_bf16(qmm_half(b), qmm_half(b));
        const u32 q[2] = {qmm_spread(qmm_ld16(b + 2 + 2 * t)), qmm_spread(qmm_ld16(b + 10 + 2 * t))};
#pragma unroll
        for (int j = 0; j < 4; j++)
            out[j] = qmm_scale_codes((q[j & 1] >> (j & 2 ? 4 : 0)) & 0x000F000Fu, 0xC308C308u /* -136 */, d2,
                                     QMM_BF16X2_NEG_ZERO);
    }
};
struct DeqQ4_1 : QmmPairs<DeqQ4_1> {
    static constexpr int QK = 32, BYTES = 20, KB = 256;
    __device__ static void dequant8(const u8* b, int e0, int, float v[8]) {
        const float d = qmm_half(b), m = qmm_half(b + 2);
        const QmmBytes8 q(b + 4 + (e0 & 15));
        const int sh = e0 & 16 ? 4 : 0;
#pragma unroll
        for (int i = 0; i < 8; i++) v[i] = d * (float)((q[i] >> sh) & 15) + m;
    }
};
struct DeqQ5_0 : QmmPairs<DeqQ5_0> {
    static constexpr int QK = 32, BYTES = 22, KB = 256;
    __device__ static void dequant8(const u8* b, int e0, int, float v[8]) {
        const float d = qmm_half(b);
        const u32 qh = qmm_ld32(b + 2) >> e0;
        const QmmBytes8 q(b + 6 + (e0 & 15));
        const int sh = e0 & 16 ? 4 : 0;
#pragma unroll
        for (int i = 0; i < 8; i++) {
            const int code = (int)(((q[i] >> sh) & 15) | (((qh >> i) & 1) << 4));
            v[i] = d * (float)(code - 16);
        }
    }
};
struct DeqQ5_1 : QmmPairs<DeqQ5_1> {
    static constexpr int QK = 32, BYTES = 24, KB = 256;
    __device__ static void dequant8(const u8* b, int e0, int, float v[8]) {
        const float d = qmm_half(b), m = qmm_half(b + 2);
        const u32 qh = qmm_ld32(b + 4) >> e0;
        const QmmBytes8 q(b + 8 + (e0 & 15));
        const int sh = e0 & 16 ? 4 : 0;
#pragma unroll
        for (int i = 0; i < 8; i++) {
            const u32 code = ((q[i] >> sh) & 15) | (((qh >> i) & 1) << 4);
            v[i] = d * (float)code + m;
        }
    }
};
struct DeqQ8_0 {
    static constexpr int QK = 32, BYTES = 34, KB = 256;
    __device__ static void dequant32(const u8* b, int, int t, int, u32 out[4]) {
        const float d = qmm_half(b);
#pragma unroll
        for (int j = 0; j < 4; j++) {
            const u32 w = qmm_ld16(b + 2 + 2 * t + 8 * j);
            out[j] = qmm_pack_bf16(d * qmm_i2f((int)(i8)(w & 0xFF)), d * qmm_i2f((int)(i8)(w >> 8)));
        }
    }
};
struct DeqIQ4_NL : QmmPairs<DeqIQ4_NL> {
    static constexpr int QK = 32, BYTES = 18, KB = 256;
    __device__ static void dequant8(const u8* b, int e0, int, float v[8]) {
        const float d = qmm_half(b);
        const QmmBytes8 q(b + 2 + (e0 & 15));
        const int sh = e0 & 16 ? 4 : 0;
#pragma unroll
        for (int i = 0; i < 8; i++) v[i] = d * qmm_iq4_level((q[i] >> sh) & 15);
    }
};

// 256-element super-blocks. Eight consecutive elements from a multiple of 8
// always share one sub-block scale and one bit position, and their code
// bytes are contiguous.
struct DeqQ2_K : QmmPairs<DeqQ2_K> {
    static constexpr int QK = 256, BYTES = 84, KB = 256;
    __device__ static void dequant8(const u8* b, int e0, int, float v[8]) {
        const u32 sc = b[e0 / 16];
        const float dl = qmm_half(b + 80) * (float)(sc & 15);
        const float ml = qmm_half(b + 82) * (float)(sc >> 4);
        const QmmBytes8 q(b + 16 + 32 * (e0 / 128) + e0 % 32);
        const int sh = 2 * ((e0 % 128) / 32);
#pragma unroll
        for (int i = 0; i < 8; i++) v[i] = dl * (float)((q[i] >> sh) & 3) - ml;
    }
};
struct DeqQ3_K : QmmPairs<DeqQ3_K> {
    static constexpr int QK = 256, BYTES = 110, KB = 256;
    __device__ static void dequant8(const u8* b, int e0, int, float v[8]) {
        const u8* s = b + 96;
        const int j = e0 / 16;
        const u32 low = j < 8 ? (s[j] & 15) : (s[j - 8] >> 4);
        const u32 high = (s[8 + j % 4] >> (2 * (j / 4))) & 3;
        const float dl = qmm_half(b + 108) * (float)((int)(low | (high << 4)) - 32);
        const QmmBytes8 hm(b + e0 % 32);
        const QmmBytes8 q(b + 32 + 32 * (e0 / 128) + e0 % 32);
        const int sh = 2 * ((e0 % 128) / 32), hb = e0 / 32;
#pragma unroll
        for (int i = 0; i < 8; i++) {
            const int code = (int)((q[i] >> sh) & 3) - (((hm[i] >> hb) & 1) ? 0 : 4);
            v[i] = dl * (float)code;
        }
    }
};

// The 6-bit (scale, min) pair of sub-block j of Q4_K/Q5_K (12 bytes at s).
__device__ __forceinline__ void qmm_k4_scale_min(const u8* s, int j, u32& sc, u32& mn) {
    if (j < 4) {
        sc = s[j] & 63;
        mn = s[j + 4] & 63;
    } else {
        sc = (s[j + 4] & 15) | ((s[j - 4] >> 6) << 4);
        mn = (s[j + 4] >> 4) | ((s[j] >> 6) << 4);
    }
}

struct DeqQ4_K {
    static constexpr int QK = 256, BYTES = 144, KB = 256;
    // The 32 elements share sub-block e0/32: one scale, one min, one nibble.
    __device__ static void dequant32(const u8* b, int e0, int t, int, u32 out[4]) {
        u32 sc, mn;
        qmm_k4_scale_min(b + 4, e0 / 32, sc, mn);
        const float dl = qmm_half(b) * (float)sc, ml = qmm_half(b + 2) * (float)mn;
        const u32 dl2 = qmm_pack_bf16(dl, dl), nml2 = qmm_pack_bf16(-ml, -ml);
        const u8* q = b + 16 + 32 * (e0 / 64) + 2 * t;
        const int sh = (e0 % 64) >= 32 ? 4 : 0;
#pragma unroll
        for (int j = 0; j < 4; j++)
            out[j] = qmm_scale_codes((qmm_spread(qmm_ld16(q + 8 * j)) >> sh) & 0x000F000Fu, 0xC300C300u /* -128 */,
                                     dl2, nml2);
    }
};
struct DeqQ5_K {
    static constexpr int QK = 256, BYTES = 176, KB = 256;
    __device__ static void dequant32(const u8* b, int e0, int t, int, u32 out[4]) {
        u32 sc, mn;
        qmm_k4_scale_min(b + 4, e0 / 32, sc, mn);
        const float dl = qmm_half(b) * (float)sc, ml = qmm_half(b + 2) * (float)mn;
        const u32 dl2 = qmm_pack_bf16(dl, dl), nml2 = qmm_pack_bf16(-ml, -ml);
        const u8* q = b + 48 + 32 * (e0 / 64) + 2 * t;
        const u8* qh = b + 16 + 2 * t;
        const int sh = (e0 % 64) >= 32 ? 4 : 0, hb = e0 / 32;
#pragma unroll
        for (int j = 0; j < 4; j++) {
            const u32 lo = (qmm_spread(qmm_ld16(q + 8 * j)) >> sh) & 0x000F000Fu;
            const u32 hi = ((qmm_spread(qmm_ld16(qh + 8 * j)) >> hb) & 0x00010001u) << 4;
            out[j] = qmm_scale_codes(lo | hi, 0xC300C300u /* -128 */, dl2, nml2);
        }
    }
};
struct DeqQ6_K {
    static constexpr int QK = 256, BYTES = 210, KB = 256;
    // Pairs 0, 1 lie in the first 16 elements (one scale), 2, 3 in the next.
    __device__ static void dequant32(const u8* b, int e0, int t, int, u32 out[4]) {
        const int half = e0 / 128, quarter = (e0 % 128) / 32;
        const float d = qmm_half(b + 208);
        const float s0 = d * (float)(i8)b[192 + e0 / 16], s1 = d * (float)(i8)b[193 + e0 / 16];
        const u32 dl2[2] = {qmm_pack_bf16(s0, s0), qmm_pack_bf16(s1, s1)};
        const u8* ql = b + 64 * half + 32 * (quarter % 2) + 2 * t;
        const u8* qh = b + 128 + 32 * half + 2 * t;
        const int sh = quarter < 2 ? 0 : 4, hb = 2 * quarter;
#pragma unroll
        for (int j = 0; j < 4; j++) {
            const u32 lo = (qmm_spread(qmm_ld16(ql + 8 * j)) >> sh) & 0x000F000Fu;
            const u32 hi = ((qmm_spread(qmm_ld16(qh + 8 * j)) >> hb) & 0x00030003u) << 4;
            out[j] = qmm_scale_codes(lo | hi, 0xC320C320u /* -160 */, dl2[j / 2], QMM_BF16X2_NEG_ZERO);
        }
    }
};
struct DeqIQ4_XS : QmmPairs<DeqIQ4_XS> {
    static constexpr int QK = 256, BYTES = 136, KB = 256;
    __device__ static void dequant8(const u8* b, int e0, int, float v[8]) {
        const int ib = e0 / 32;
        const u32 low = (b[4 + ib / 2] >> (4 * (ib % 2))) & 15;
        const u32 high = (qmm_ld16(b + 2) >> (2 * ib)) & 3;
        const float dl = qmm_half(b) * (float)((int)(low | (high << 4)) - 32);
        const QmmBytes8 q(b + 8 + 16 * ib + e0 % 16);
        const int sh = (e0 % 32) >= 16 ? 4 : 0;
#pragma unroll
        for (int i = 0; i < 8; i++) v[i] = dl * qmm_iq4_level((q[i] >> sh) & 15);
    }
};

