// Decode mat-vec kernels of quantized_matmul_ggml: out[m, n] = x[m, k] · W[n, k]ᵀ
// for m ≤ 8, with W stored as GGML blocks.
//
// Each weight byte is read once for all m rows, so the kernel is bound by
// the weight stream; m rows of f32 FMAs over dequantized weights would not
// be (8 rows cost more FP32 time than the stream takes), so the products
// run on tensor cores: mma.sync m16n8k16, A = 16 weight rows dequantized
// straight into f16 fragments, B = the ≤ 8 input rows (f16), f32 sums.
//
// Layout of the work:
// - a CTA of 4 warps owns 64 weight rows (16 per warp) and one eighth of
//   k; the 8 CTAs of a thread-block cluster split k and add their partial
//   sums through distributed shared memory, so a product needs no scratch;
// - a CTA streams its k range in stages of whole blocks through a 3-deep
//   cp.async ring (16-byte copies of the 16-byte granules that hold each
//   row's bytes, so blocks of any size and alignment land in shared memory
//   at their global address mod 16);
// - the CTA turns x into B fragments (f16, in the order the weight chunks
//   need) once per phase of `phase_blocks` blocks, read straight from
//   global memory (x is small and stays in L2); a phase usually spans the
//   CTA's whole k range, so stages need one barrier each and no x work;
//   then each warp decodes its rows and issues mmas.
//
// The only per-type code is a "dequantize chunk c of a block" function:
// 8 weights as 4 f16 pairs, and where in the block those weights sit
// (two runs of 4 consecutive elements). The k order inside one mma is free
// as long as A and B agree, so each type picks the chunk shape its bit
// layout makes cheap.
//
// A 16-byte granule that holds at least one byte of the tensor lies inside
// its allocation (allocations are whole granules: `whole_granules` in
// device/cuda.rs), so reading it is in bounds; bytes outside the tensor are
// never used.

#include "mlxn_prelude.cuh"
#include "ggml_blocks.cuh"

#define QMV_ROWS 64      // weight rows per CTA
#define QMV_WARPS 4      // one warp per 16 rows
#define QMV_CLUSTER 8    // CTAs splitting k
#define QMV_STAGES 3     // depth of the cp.async ring
#define QMV_MAX_M 8
// CTAs per multiprocessor the registers must allow: at 4, the GPCs of an
// H200 hold 62 clusters of 8, fewer than the 64 that n = 4096 needs, and a
// second wave doubles the time; the launcher sizes shared memory for 5.
#define QMV_MIN_CTAS 5

struct QmvParams {
    u32 m, n, k;
    u32 row_bytes;   // bytes of one weight row
    u32 row_blocks;  // decode blocks per row (ceil(k / 32) for float types)
    u32 phase_blocks;  // blocks whose B fragments shared memory holds at once (a multiple of SB)
};

// ---- PTX helpers ----------------------------------------------------------

__device__ __forceinline__ u32 h2_sub(u32 a, u32 b) {
    u32 d;
    asm("sub.rn.f16x2 %0, %1, %2;" : "=r"(d) : "r"(a), "r"(b));
    return d;
}
__device__ __forceinline__ u32 h2_mul(u32 a, u32 b) {
    u32 d;
    asm("mul.rn.f16x2 %0, %1, %2;" : "=r"(d) : "r"(a), "r"(b));
    return d;
}
__device__ __forceinline__ u32 h2_fma(u32 a, u32 b, u32 c) {
    u32 d;
    asm("fma.rn.f16x2 %0, %1, %2, %3;" : "=r"(d) : "r"(a), "r"(b), "r"(c));
    return d;
}
// {lo, hi} rounded to f16 and packed (lo in the low half).
__device__ __forceinline__ u32 pack_h2(float lo, float hi) {
    u32 d;
    asm("cvt.rn.f16x2.f32 %0, %1, %2;" : "=r"(d) : "f"(hi), "f"(lo));
    return d;
}
__device__ __forceinline__ u32 splat_h2(float v) { return pack_h2(v, v); }
__device__ __forceinline__ u32 splat_bits(u16 h) { return (u32)h | ((u32)h << 16); }

// c += A·B, m16n8k16, f16 operands, f32 accumulators.
__device__ __forceinline__ void mma_f16(float c[4], u32 a0, u32 a1, u32 a2, u32 a3, u32 b0, u32 b1) {
    asm(
        "mma.sync.aligned.m16n8k16.row.col.f32.f16.f16.f32 {%0,%1,%2,%3}, {%4,%5,%6,%7}, {%8,%9}, "
        "{%0,%1,%2,%3};"
        : "+f"(c[0]), "+f"(c[1]), "+f"(c[2]), "+f"(c[3])
        : "r"(a0), "r"(a1), "r"(a2), "r"(a3), "r"(b0), "r"(b1));
}

// Blocks sit at even addresses only, so wider values are read in halves.
__device__ __forceinline__ u16 ld16(const u8* p) { return *(const u16*)p; }
__device__ __forceinline__ u32 ld32(const u8* p) { return (u32)ld16(p) | ((u32)ld16(p + 2) << 16); }
__device__ __forceinline__ float ld_f16(const u8* p) { return f16_bits_to_f32(ld16(p)); }

// ---- chunk decoding helpers ------------------------------------------------
// A chunk is 8 weights in two runs of 4 consecutive elements; out[2r] holds
// elements (0, 2) of run r and out[2r+1] elements (1, 3), each pair as
// (low half, high half). Codes become f16 1024 + q by OR-ing 0x6400 into
// the bits (exact for q < 1024).

#define H2_1024 0x64006400u

// (a & mask) | bits in one LOP3 (the compiler otherwise emits two).
__device__ __forceinline__ u32 and_or(u32 a, u32 mask, u32 bits) {
    u32 d;
    asm("lop3.b32 %0, %1, %2, %3, 0xEA;" : "=r"(d) : "r"(a), "r"(mask), "r"(bits));
    return d;
}

// Nibble codes of a 4-byte word: run 0 = low nibbles, run 1 = high nibbles.
__device__ __forceinline__ void nibble_codes(u32 w, u32 out[4]) {
    out[0] = and_or(w, 0x000F000Fu, H2_1024);
    out[1] = and_or(w >> 8, 0x000F000Fu, H2_1024);
    out[2] = and_or(w >> 4, 0x000F000Fu, H2_1024);
    out[3] = and_or(w >> 12, 0x000F000Fu, H2_1024);
}
// Byte codes (unsigned) of one run: pairs (b0, b2) and (b1, b3).
__device__ __forceinline__ void byte_codes(u32 w, u32& p02, u32& p13) {
    p02 = __byte_perm(w, 0x64646464u, 0x4240);
    p13 = __byte_perm(w, 0x64646464u, 0x4341);
}
// 4 nibble indices (one per byte, high nibbles ignored) → 4 signed IQ4_NL levels.
__device__ __forceinline__ u32 iq4_levels(u32 idx) {
    const u32 t0 = 0xBFAD9881u, t1 = 0xF6EADDCFu, t2 = 0x26190D01u, t3 = 0x71594535u;
    u32 s = idx & 0x07070707u;
    u32 lo = s & 0xFFFFu, hi = s >> 16;
    u32 sel = ((lo | (lo >> 4)) & 0xFFu) | (((hi | (hi >> 4)) & 0xFFu) << 8);
    u32 low = __byte_perm(t0, t1, sel), high = __byte_perm(t2, t3, sel);
    u32 mask = ((idx >> 3) & 0x01010101u) * 0xFFu;
    return (high & mask) | (low & ~mask);
}
// Signed bytes of one run (4 int8) → codes 1024 + 128 + q.
__device__ __forceinline__ void signed_byte_codes(u32 w, u32& p02, u32& p13) {
    byte_codes(w ^ 0x80808080u, p02, p13);
}
#define H2_1152 0x64806480u  // 1024 + 128

// Q4_K / Q5_K 6-bit (scale, min) of sub-block j.
__device__ __forceinline__ void k4_scale_min(const u8* s, int j, float& sc, float& mn) {
    if (j < 4) {
        sc = (float)(s[j] & 63);
        mn = (float)(s[j + 4] & 63);
    } else {
        sc = (float)((s[j + 4] & 0xF) | ((s[j - 4] >> 6) << 4));
        mn = (float)((s[j + 4] >> 4) | ((s[j] >> 6) << 4));
    }
}

// ---- per-type chunk decoders ----------------------------------------------
// BB: bytes per block, BE: elements per block (a multiple of 32: 4 chunks per
// mma pair), RAGGED: the float types, whose rows need not fill the last
// 32-element block.

#define QMV_TYPE(NAME, BYTES, ELEMS, IS_RAGGED) \
    struct NAME { \
        static constexpr int BB = BYTES, BE = ELEMS; \
        static constexpr bool RAGGED = IS_RAGGED; \
        static constexpr int SB = (160 / BYTES) < 1 ? 1 : ((160 / BYTES) > 8 ? 8 : 160 / BYTES); \
        __device__ static __forceinline__ int run_base(int c, int r); \
        __device__ static __forceinline__ void chunk(const u8* b, int c, u32 h[4]); \
    };

QMV_TYPE(Dq_q4_0, 18, 32, false)
__device__ int Dq_q4_0::run_base(int c, int r) { return 4 * c + 16 * r; }
__device__ void Dq_q4_0::chunk(const u8* b, int c, u32 h[4]) {
    u32 d = splat_bits(ld16(b));
    nibble_codes(ld32(b + 2 + 4 * c), h);
#pragma unroll
    for (int j = 0; j < 4; j++) h[j] = h2_mul(h2_sub(h[j], 0x64086408u), d);  // d·(q − 8)
}

QMV_TYPE(Dq_q4_1, 20, 32, false)
__device__ int Dq_q4_1::run_base(int c, int r) { return 4 * c + 16 * r; }
__device__ void Dq_q4_1::chunk(const u8* b, int c, u32 h[4]) {
    u32 d = splat_bits(ld16(b)), m = splat_bits(ld16(b + 2));
    nibble_codes(ld32(b + 4 + 4 * c), h);
#pragma unroll
    for (int j = 0; j < 4; j++) h[j] = h2_fma(h2_sub(h[j], H2_1024), d, m);  // d·q + m
}

// Fifth bits of Q5_0/Q5_1: bit e of qh is the high bit of element e.
__device__ __forceinline__ void add_fifth_bits(u32 qh, int c, u32 h[4]) {
#pragma unroll
    for (int r = 0; r < 2; r++) {
        u32 hb = qh >> (4 * c + 16 * r);
        h[2 * r] |= ((hb & 1u) << 4) | ((hb & 4u) << 18);
        h[2 * r + 1] |= ((hb & 2u) << 3) | ((hb & 8u) << 17);
    }
}

QMV_TYPE(Dq_q5_0, 22, 32, false)
__device__ int Dq_q5_0::run_base(int c, int r) { return 4 * c + 16 * r; }
__device__ void Dq_q5_0::chunk(const u8* b, int c, u32 h[4]) {
    u32 d = splat_bits(ld16(b));
    nibble_codes(ld32(b + 6 + 4 * c), h);
    add_fifth_bits(ld32(b + 2), c, h);
#pragma unroll
    for (int j = 0; j < 4; j++) h[j] = h2_mul(h2_sub(h[j], 0x64106410u), d);  // d·(q − 16)
}

QMV_TYPE(Dq_q5_1, 24, 32, false)
__device__ int Dq_q5_1::run_base(int c, int r) { return 4 * c + 16 * r; }
__device__ void Dq_q5_1::chunk(const u8* b, int c, u32 h[4]) {
    u32 d = splat_bits(ld16(b)), m = splat_bits(ld16(b + 2));
    nibble_codes(ld32(b + 8 + 4 * c), h);
    add_fifth_bits(ld32(b + 4), c, h);
#pragma unroll
    for (int j = 0; j < 4; j++) h[j] = h2_fma(h2_sub(h[j], H2_1024), d, m);
}

QMV_TYPE(Dq_q8_0, 34, 32, false)
__device__ int Dq_q8_0::run_base(int c, int r) { return 8 * c + 4 * r; }
__device__ void Dq_q8_0::chunk(const u8* b, int c, u32 h[4]) {
    u32 d = splat_bits(ld16(b));
    signed_byte_codes(ld32(b + 2 + 8 * c), h[0], h[1]);
    signed_byte_codes(ld32(b + 6 + 8 * c), h[2], h[3]);
#pragma unroll
    for (int j = 0; j < 4; j++) h[j] = h2_mul(h2_sub(h[j], H2_1152), d);
}

QMV_TYPE(Dq_iq4_nl, 18, 32, false)
__device__ int Dq_iq4_nl::run_base(int c, int r) { return 4 * c + 16 * r; }
__device__ void Dq_iq4_nl::chunk(const u8* b, int c, u32 h[4]) {
    u32 d = splat_bits(ld16(b));
    u32 w = ld32(b + 2 + 4 * c);
    signed_byte_codes(iq4_levels(w), h[0], h[1]);
    signed_byte_codes(iq4_levels(w >> 4), h[2], h[3]);
#pragma unroll
    for (int j = 0; j < 4; j++) h[j] = h2_mul(h2_sub(h[j], H2_1152), d);
}

// Q2_K / Q3_K: the 2-bit codes of 128 elements fill 32 bytes; byte i holds
// elements i, i+32, i+64, i+96 at shifts 0, 2, 4, 6. Chunk c takes the word
// at byte 32·(c/16) + 4·(c%8) and shift pair (c/8)%2: runs at shift 2s,
// s = 2·((c/8)%2) + r.
__device__ __forceinline__ int k2_shift(int c, int r) { return 2 * (((c >> 3) & 1) * 2 + r); }
__device__ __forceinline__ int k2_run_base(int c, int r) {
    return 128 * (c >> 4) + 16 * k2_shift(c, r) + 4 * (c & 7);
}

QMV_TYPE(Dq_q2_k, 84, 256, false)
__device__ int Dq_q2_k::run_base(int c, int r) { return k2_run_base(c, r); }
__device__ void Dq_q2_k::chunk(const u8* b, int c, u32 h[4]) {
    float d = ld_f16(b + 80), dmin = ld_f16(b + 82);
    u32 w = ld32(b + 16 + 32 * (c >> 4) + 4 * (c & 7));
#pragma unroll
    for (int r = 0; r < 2; r++) {
        int sh = k2_shift(c, r);
        u32 sc = b[k2_run_base(c, r) >> 4];
        u32 dl = splat_h2(d * (float)(sc & 15)), ml = splat_h2(-(dmin * (float)(sc >> 4)));
        h[2 * r] = h2_fma(h2_sub(and_or(w >> sh, 0x00030003u, H2_1024), H2_1024), dl, ml);
        h[2 * r + 1] = h2_fma(h2_sub(and_or(w >> (sh + 8), 0x00030003u, H2_1024), H2_1024), dl, ml);
    }
}

QMV_TYPE(Dq_q3_k, 110, 256, false)
__device__ int Dq_q3_k::run_base(int c, int r) { return k2_run_base(c, r); }
__device__ void Dq_q3_k::chunk(const u8* b, int c, u32 h[4]) {
    float d = ld_f16(b + 108);
    const u8* s = b + 96;
    u32 w = ld32(b + 32 + 32 * (c >> 4) + 4 * (c & 7));
    u32 hm = ld32(b + 4 * (c & 7));
#pragma unroll
    for (int r = 0; r < 2; r++) {
        int sh = k2_shift(c, r);
        int g = k2_run_base(c, r) >> 4;  // 16-element group: its 6-bit scale
        int low = g < 8 ? (s[g] & 15) : (s[g - 8] >> 4);
        int high = (s[8 + (g & 3)] >> (2 * (g >> 2))) & 3;
        u32 dl = splat_h2(d * (float)((low | (high << 4)) - 32));
        // A set hmask bit (bit 4·(c/16) + shift/2) means no −4: code 4 + q.
        u32 v = ((w >> sh) & 0x03030303u) | (((hm >> (4 * (c >> 4) + sh / 2)) & 0x01010101u) << 2);
        h[2 * r] = h2_mul(h2_sub(and_or(v, 0x00070007u, H2_1024), 0x64046404u), dl);
        h[2 * r + 1] = h2_mul(h2_sub(and_or(v >> 8, 0x00070007u, H2_1024), 0x64046404u), dl);
    }
}

// Q4_K / Q5_K: 64 elements per 32 bytes of qs, low nibbles first. Chunk c
// takes the word at 32·(c/8) + 4·(c%8): run 0 in sub-block 2·(c/8), run 1
// in the next.
__device__ __forceinline__ int k4_run_base(int c, int r) { return 64 * (c >> 3) + 32 * r + 4 * (c & 7); }

__device__ __forceinline__ void k4_finish(const u8* b, int c, u32 h[4]) {
    float d = ld_f16(b), dmin = ld_f16(b + 2);
#pragma unroll
    for (int r = 0; r < 2; r++) {
        float sc, mn;
        k4_scale_min(b + 4, 2 * (c >> 3) + r, sc, mn);
        u32 dl = splat_h2(d * sc), ml = splat_h2(-(dmin * mn));
        h[2 * r] = h2_fma(h2_sub(h[2 * r], H2_1024), dl, ml);
        h[2 * r + 1] = h2_fma(h2_sub(h[2 * r + 1], H2_1024), dl, ml);
    }
}

QMV_TYPE(Dq_q4_k, 144, 256, false)
__device__ int Dq_q4_k::run_base(int c, int r) { return k4_run_base(c, r); }
__device__ void Dq_q4_k::chunk(const u8* b, int c, u32 h[4]) {
    nibble_codes(ld32(b + 16 + 32 * (c >> 3) + 4 * (c & 7)), h);
    k4_finish(b, c, h);
}

QMV_TYPE(Dq_q5_k, 176, 256, false)
__device__ int Dq_q5_k::run_base(int c, int r) { return k4_run_base(c, r); }
__device__ void Dq_q5_k::chunk(const u8* b, int c, u32 h[4]) {
    nibble_codes(ld32(b + 48 + 32 * (c >> 3) + 4 * (c & 7)), h);
    // qh[e % 32] bit e / 32 is the fifth bit of element e.
    u32 qh = ld32(b + 16 + 4 * (c & 7));
#pragma unroll
    for (int r = 0; r < 2; r++) {
        u32 hb = (qh >> (2 * (c >> 3) + r)) & 0x01010101u;
        h[2 * r] |= (hb & 0x00010001u) << 4;
        h[2 * r + 1] |= ((hb >> 8) & 0x00010001u) << 4;
    }
    k4_finish(b, c, h);
}

// Q6_K: per 128 elements, ql[l] holds elements l (low nibble) and l + 64
// (high), ql[l + 32] elements l + 32 and l + 96; qh[l] the top 2 bits of
// l + 32·q at shift 2q. Chunk c: half c/16, l = 4·(c%8), quarters
// (c%16)/8 + 2r.
QMV_TYPE(Dq_q6_k, 210, 256, false)
__device__ int Dq_q6_k::run_base(int c, int r) {
    return 128 * (c >> 4) + 32 * (((c >> 3) & 1) + 2 * r) + 4 * (c & 7);
}
__device__ void Dq_q6_k::chunk(const u8* b, int c, u32 h[4]) {
    float d = ld_f16(b + 208);
    int half = c >> 4, qa = (c >> 3) & 1, l = 4 * (c & 7);
    u32 w = ld32(b + 64 * half + 32 * qa + l);
    u32 qh = ld32(b + 128 + 32 * half + l);
#pragma unroll
    for (int r = 0; r < 2; r++) {
        int q = qa + 2 * r;
        u32 dl = splat_h2(d * (float)(signed char)b[192 + (run_base(c, r) >> 4)]);
        u32 hi = qh >> (2 * q);
        u32 p02 = ((w >> (4 * r)) & 0x000F000Fu) | ((hi & 0x00030003u) << 4) | H2_1024;
        u32 p13 = ((w >> (4 * r + 8)) & 0x000F000Fu) | (((hi >> 8) & 0x00030003u) << 4) | H2_1024;
        h[2 * r] = h2_mul(h2_sub(p02, 0x64206420u), dl);  // d·sc·(q − 32)
        h[2 * r + 1] = h2_mul(h2_sub(p13, 0x64206420u), dl);
    }
}

QMV_TYPE(Dq_iq4_xs, 136, 256, false)
__device__ int Dq_iq4_xs::run_base(int c, int r) { return 32 * (c >> 2) + 16 * r + 4 * (c & 3); }
__device__ void Dq_iq4_xs::chunk(const u8* b, int c, u32 h[4]) {
    int ib = c >> 2;
    int ls = ((b[4 + ib / 2] >> (4 * (ib & 1))) & 15) | (((ld16(b + 2) >> (2 * ib)) & 3) << 4);
    u32 dl = splat_h2(ld_f16(b) * (float)(ls - 32));
    u32 w = ld32(b + 8 + 16 * ib + 4 * (c & 3));
    signed_byte_codes(iq4_levels(w), h[0], h[1]);
    signed_byte_codes(iq4_levels(w >> 4), h[2], h[3]);
#pragma unroll
    for (int j = 0; j < 4; j++) h[j] = h2_mul(h2_sub(h[j], H2_1152), dl);
}

// Float weights, in blocks of 32 elements; chunk c = elements 8c … 8c + 7.
QMV_TYPE(Dq_f32, 128, 32, true)
__device__ int Dq_f32::run_base(int c, int r) { return 8 * c + 4 * r; }
__device__ void Dq_f32::chunk(const u8* b, int c, u32 h[4]) {
    const float* p = (const float*)(b + 32 * c);
#pragma unroll
    for (int r = 0; r < 2; r++) {
        h[2 * r] = pack_h2(p[4 * r], p[4 * r + 2]);
        h[2 * r + 1] = pack_h2(p[4 * r + 1], p[4 * r + 3]);
    }
}

QMV_TYPE(Dq_f16, 64, 32, true)
__device__ int Dq_f16::run_base(int c, int r) { return 8 * c + 4 * r; }
__device__ void Dq_f16::chunk(const u8* b, int c, u32 h[4]) {
    const u16* p = (const u16*)(b + 16 * c);
#pragma unroll
    for (int r = 0; r < 2; r++) {
        h[2 * r] = (u32)p[4 * r] | ((u32)p[4 * r + 2] << 16);
        h[2 * r + 1] = (u32)p[4 * r + 1] | ((u32)p[4 * r + 3] << 16);
    }
}

QMV_TYPE(Dq_bf16, 64, 32, true)
__device__ int Dq_bf16::run_base(int c, int r) { return 8 * c + 4 * r; }
__device__ void Dq_bf16::chunk(const u8* b, int c, u32 h[4]) {
    const u16* p = (const u16*)(b + 16 * c);
#pragma unroll
    for (int r = 0; r < 2; r++) {
        h[2 * r] = pack_h2(bf16_bits_to_f32(p[4 * r]), bf16_bits_to_f32(p[4 * r + 2]));
        h[2 * r + 1] = pack_h2(bf16_bits_to_f32(p[4 * r + 1]), bf16_bits_to_f32(p[4 * r + 3]));
    }
}


// ---- the kernel template ---------------------------------------------------

struct alignas(16) u32x4 { u32 x, y, z, w; };

template <typename IO> struct Io;
template <> struct Io<float> {
    static constexpr int SIZE = 4;
    __device__ static __forceinline__ float load(const u8* p) { return *(const float*)p; }
};
template <> struct Io<bf16_t> {
    static constexpr int SIZE = 2;
    __device__ static __forceinline__ float load(const u8* p) { return bf16_bits_to_f32(ld16(p)); }
};

__device__ __forceinline__ float ld_cluster_f32(const float* local, u32 rank) {
    float v;
    asm volatile("ld.shared::cluster.f32 %0, [%1];" : "=f"(v) : "r"(cluster_map(smem_addr(local), rank)) : "memory");
    return v;
}

template <class T, class IO>
__device__ __forceinline__ void qmv(const u8* __restrict__ x, const u8* __restrict__ wt,
                                    IO* __restrict__ out, const QmvParams p) {
    constexpr int SB = T::SB, STEPS = T::BE / 32, XS = Io<IO>::SIZE;
    constexpr int W_G = (SB * T::BB + 29) / 16;  // granules of a row's stage, any even start
    constexpr int W_SLOT = W_G * 16;
    constexpr u32 STAGE_BYTES = QMV_ROWS * W_SLOT;
    extern __shared__ u32x4 smem_vec[];
    u8* smem = (u8*)smem_vec;
    const int m = (int)p.m, xw = 4 * m;  // B-fragment entries per block step: lanes 0 … 4m − 1
    // B fragments of one phase: entry (block step bs, lane l < 4m) at bs·4m + l
    // holds the 8 values of input row l/4 that pair with chunk 4·(bs % STEPS) + l%4.
    u32x4* xf = (u32x4*)(smem + QMV_STAGES * STAGE_BYTES);

    const int tid = threadIdx.x, warp = tid >> 5, lane = tid & 31, g = lane >> 2, t = lane & 3;
    const u32 rank = cluster_rank();
    const u32 row0 = blockIdx.x / QMV_CLUSTER * QMV_ROWS;
    const u32 kb_begin = (u32)((u64)p.row_blocks * rank / QMV_CLUSTER);
    const u32 kb_end = (u32)((u64)p.row_blocks * (rank + 1) / QMV_CLUSTER);
    const u32 n_stages = (kb_end - kb_begin + SB - 1) / SB;
    const u32 phase_stages = p.phase_blocks / SB;

    // Offsets inside the tile are 32-bit from its first row (a tile spans
    // at most 64 rows). Rows past n repeat row n − 1: valid bytes, results
    // dropped.
    const u8* w_tile = wt + (u64)row0 * p.row_bytes;
    const u32 w_mod = (u32)(u64)w_tile & 15;
    const u8* w_granules = w_tile - w_mod;
    auto row_offset = [&](u32 local) { return (min(row0 + local, p.n - 1) - row0) * p.row_bytes + w_mod; };
    // This lane's share of its warp's copies: granule (i % W_G) of row
    // (i / W_G) for i = lane + 32·j, the same in every stage, so granule
    // index and shared-memory destination are kept rather than recomputed.
    constexpr int COPIES = (16 * W_G + 31) / 32;
    u32 copy_row[COPIES], copy_gi[COPIES], copy_dst[COPIES];
#pragma unroll
    for (int j = 0; j < COPIES; j++) {
        const u32 i = lane + 32 * j, r = min(i / W_G, 15u);
        copy_row[j] = row_offset(warp * 16 + r);
        copy_gi[j] = i < 16 * W_G ? i % W_G : 0xFFFFu;  // never copies
        copy_dst[j] = (warp * 16 + r) * W_SLOT + copy_gi[j] * 16;
    }

    auto issue_stage = [&](u32 s) {
        if (s < n_stages) {
            const u32 kb0 = kb_begin + s * SB, nb = min((u32)SB, kb_end - kb0);
            const u32 base = smem_addr(smem + (s % QMV_STAGES) * STAGE_BYTES);
            // Each warp copies its own 16 rows, consecutive lanes taking
            // consecutive granules, so one instruction reads whole runs. A
            // stage never runs past the row's end except in the ragged last
            // block of a float type.
            const u32 stage_w = kb0 * T::BB, stage_len = nb * T::BB;
#pragma unroll
            for (int j = 0; j < COPIES; j++) {
                const u32 a = copy_row[j] + stage_w;
                const u32 e = T::RAGGED ? min(a + stage_len, copy_row[j] + p.row_bytes) : a + stage_len;
                if (copy_gi[j] <= ((e - 1) >> 4) - (a >> 4))
                    cp_async<16>(base + copy_dst[j], w_granules + (u64)((a >> 4) + copy_gi[j]) * 16);
            }
        }
        cp_async_commit();
    };

    // x → B fragments of the phase starting at block kb0. Threads walk the
    // entries packed: item j is block step j / 4m, lane j % 4m; each thread
    // loads XU items before converting them, so that several L2 reads are
    // in flight.
    constexpr int XU = 4;
    const int x_bs0 = tid / xw, x_l0 = tid % xw;
    const int x_bs_step = QMV_WARPS * 32 / xw, x_l_step = QMV_WARPS * 32 % xw;
    auto convert_phase = [&](u32 kb0) {
        const int items = (int)min(p.phase_blocks, kb_end - kb0) * STEPS * xw;
        int bs = x_bs0, l = x_l0;
        for (int j = tid; j < items; j += XU * QMV_WARPS * 32) {
            float f[XU][8];
            int slot[XU];
#pragma unroll
            for (int u = 0; u < XU; u++) {
                const bool live = j + u * QMV_WARPS * 32 < items;
                const int xr = l >> 2, bi = bs / STEPS, c = 4 * (bs % STEPS) + (l & 3);
                const u32 e0 = (kb0 + bi) * T::BE;
                const u8* row = x + ((u64)xr * p.k + e0) * XS;
#pragma unroll
                for (int r = 0; r < 2; r++) {
                    const int e = T::run_base(c, r);
#pragma unroll
                    for (int q = 0; q < 4; q++)
                        f[u][4 * r + q] = live && (!T::RAGGED || e0 + e + q < p.k) ? Io<IO>::load(row + (e + q) * XS) : 0.f;
                }
                slot[u] = live ? bs * xw + l : -1;
                bs += x_bs_step;
                l += x_l_step;
                if (l >= xw) {
                    l -= xw;
                    bs++;
                }
            }
#pragma unroll
            for (int u = 0; u < XU; u++) {
                if (slot[u] >= 0)
                    xf[slot[u]] = u32x4{pack_h2(f[u][0], f[u][2]), pack_h2(f[u][1], f[u][3]),
                                        pack_h2(f[u][4], f[u][6]), pack_h2(f[u][5], f[u][7])};
            }
        }
    };

    const u32 lr0 = warp * 16 + g, lr1 = lr0 + 8;  // this thread's rows in the tile
    const u32 off0 = row_offset(lr0), off1 = row_offset(lr1);
    float acc0[4] = {0.f, 0.f, 0.f, 0.f}, acc1[4] = {0.f, 0.f, 0.f, 0.f};

#pragma unroll
    for (int s = 0; s < QMV_STAGES - 1; s++) issue_stage(s);
    for (u32 s = 0, ps = 0; s < n_stages; s++, ps++) {
        if (ps == phase_stages) ps = 0;
        if (ps == 0) {
            if (s > 0) __syncthreads();  // every warp is done with the last phase
            convert_phase(kb_begin + s * SB);
        }
        cp_async_wait<QMV_STAGES - 2>();
        __syncthreads();
        issue_stage(s + QMV_STAGES - 1);
        const u8* base = smem + (s % QMV_STAGES) * STAGE_BYTES;
        const u32 kb0 = kb_begin + s * SB, nb = min((u32)SB, kb_end - kb0);
        const u32x4* xs = xf + ps * SB * STEPS * xw + lane;

        const u8* w0 = base + lr0 * W_SLOT + ((off0 + kb0 * T::BB) & 15);
        const u8* w1 = base + lr1 * W_SLOT + ((off1 + kb0 * T::BB) & 15);
        // Unrolled over the stage's blocks so that the decoding of one
        // block overlaps the loads and mmas of the next.
#pragma unroll
        for (u32 bi = 0; bi < (u32)SB; bi++) {
            if (bi >= nb) break;
#pragma unroll
            for (int st = 0; st < STEPS; st++) {
                const int c = 4 * st + t;
                u32 a[4], b[4];
                T::chunk(w0 + bi * T::BB, c, a);
                T::chunk(w1 + bi * T::BB, c, b);
                if (T::RAGGED && (kb0 + bi + 1) * T::BE > p.k) {
#pragma unroll
                    for (int r = 0; r < 2; r++) {
                        const u32 e = (kb0 + bi) * T::BE + T::run_base(c, r);
#pragma unroll
                        for (int q = 0; q < 2; q++) {
                            const u32 keep = (e + q < p.k ? 0xFFFFu : 0u) | (e + q + 2 < p.k ? 0xFFFF0000u : 0u);
                            a[2 * r + q] &= keep;
                            b[2 * r + q] &= keep;
                        }
                    }
                }
                const u32x4 xv = g < m ? xs[(bi * STEPS + st) * xw] : u32x4{0, 0, 0, 0};
                mma_f16(acc0, a[0], b[0], a[1], b[1], xv.x, xv.y);
                mma_f16(acc1, a[2], b[2], a[3], b[3], xv.z, xv.w);
            }
        }
    }

    // Partial sums of this CTA's k range → shared memory (the ring is free
    // now); CTA `rank` of the cluster adds 8 of the 64 rows over all 8.
    cp_async_wait<0>();
    __syncthreads();
    float* red = (float*)smem;  // [QMV_ROWS][QMV_MAX_M]
    red[lr0 * QMV_MAX_M + 2 * t] = acc0[0] + acc1[0];
    red[lr0 * QMV_MAX_M + 2 * t + 1] = acc0[1] + acc1[1];
    red[lr1 * QMV_MAX_M + 2 * t] = acc0[2] + acc1[2];
    red[lr1 * QMV_MAX_M + 2 * t + 1] = acc0[3] + acc1[3];
    cluster_sync();
    if (tid < 8 * QMV_MAX_M) {
        const int col = tid >> 3, lr = 8 * rank + (tid & 7);
        float sum = 0.f;
#pragma unroll
        for (u32 q = 0; q < QMV_CLUSTER; q++) sum += ld_cluster_f32(red + lr * QMV_MAX_M + col, q);
        const u32 row = row0 + lr;
        if (col < m && row < p.n) out[(u64)col * p.n + row] = from_f32<IO>(sum);
    }
    cluster_sync();  // keep this CTA's shared memory alive until every CTA has read it
}

// One module per GGML type: the launcher appends QMV_INSTANTIATE(tag).
#define QMV_INSTANTIATE(tag)                                                                        \
    extern "C" __global__ void __cluster_dims__(QMV_CLUSTER, 1, 1) __launch_bounds__(QMV_WARPS * 32, QMV_MIN_CTAS) \
        quantized_matmul_decode_##tag##_f32(const u8* x, const u8* w, float* out, QmvParams p) {     \
        qmv<Dq_##tag, float>(x, w, out, p);                                                         \
    }                                                                                               \
    extern "C" __global__ void __cluster_dims__(QMV_CLUSTER, 1, 1) __launch_bounds__(QMV_WARPS * 32, QMV_MIN_CTAS) \
        quantized_matmul_decode_##tag##_bf16(const u8* x, const u8* w, bf16_t* out, QmvParams p) {   \
        qmv<Dq_##tag, bf16_t>(x, w, out, p);                                                        \
    }
