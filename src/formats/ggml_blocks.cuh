// GGML quantization blocks for CUDA kernels: the same layouts as the
// #[repr(C)] structs in src/formats/blocks.rs (the Rust side is the
// definition; ggml_block_layout.cu lets a GPU test compare the two).
// No toolkit headers: f16 values are their raw bits (unsigned short) and are
// converted by the kernel prelude.
#pragma once

#define GGML_QK 32
#define GGML_QK_K 256

typedef struct { unsigned short d; unsigned char qs[GGML_QK / 2]; } block_q4_0;
typedef struct { unsigned short d; unsigned short m; unsigned char qs[GGML_QK / 2]; } block_q4_1;
typedef struct { unsigned short d; unsigned char qh[4]; unsigned char qs[GGML_QK / 2]; } block_q5_0;
typedef struct { unsigned short d; unsigned short m; unsigned char qh[4]; unsigned char qs[GGML_QK / 2]; } block_q5_1;
typedef struct { unsigned short d; signed char qs[GGML_QK]; } block_q8_0;
typedef struct {
    unsigned char scales[GGML_QK_K / 16];
    unsigned char qs[GGML_QK_K / 4];
    unsigned short d;
    unsigned short dmin;
} block_q2_k;
typedef struct {
    unsigned char hmask[GGML_QK_K / 8];
    unsigned char qs[GGML_QK_K / 4];
    unsigned char scales[12];
    unsigned short d;
} block_q3_k;
typedef struct {
    unsigned short d;
    unsigned short dmin;
    unsigned char scales[12];
    unsigned char qs[GGML_QK_K / 2];
} block_q4_k;
typedef struct {
    unsigned short d;
    unsigned short dmin;
    unsigned char scales[12];
    unsigned char qh[GGML_QK_K / 8];
    unsigned char qs[GGML_QK_K / 2];
} block_q5_k;
typedef struct {
    unsigned char ql[GGML_QK_K / 2];
    unsigned char qh[GGML_QK_K / 4];
    signed char scales[GGML_QK_K / 16];
    unsigned short d;
} block_q6_k;
typedef struct { unsigned short d; unsigned char qs[GGML_QK / 2]; } block_iq4_nl;
typedef struct {
    unsigned short d;
    unsigned short scales_h;
    unsigned char scales_l[GGML_QK_K / 64];
    unsigned char qs[GGML_QK_K / 2];
} block_iq4_xs;

static_assert(sizeof(block_q4_0) == 18, "block_q4_0 size");
static_assert(sizeof(block_q4_1) == 20, "block_q4_1 size");
static_assert(sizeof(block_q5_0) == 22, "block_q5_0 size");
static_assert(sizeof(block_q5_1) == 24, "block_q5_1 size");
static_assert(sizeof(block_q8_0) == 34, "block_q8_0 size");
static_assert(sizeof(block_q2_k) == 84, "block_q2_k size");
static_assert(sizeof(block_q3_k) == 110, "block_q3_k size");
static_assert(sizeof(block_q4_k) == 144, "block_q4_k size");
static_assert(sizeof(block_q5_k) == 176, "block_q5_k size");
static_assert(sizeof(block_q6_k) == 210, "block_q6_k size");
static_assert(sizeof(block_iq4_nl) == 18, "block_iq4_nl size");
static_assert(sizeof(block_iq4_xs) == 136, "block_iq4_xs size");

// The 16 non-uniform levels of IQ4_NL and IQ4_XS.
__device__ __constant__ static const signed char ggml_iq4_nl_values[16] = {
    -127, -104, -83, -65, -49, -35, -22, -10, 1, 13, 25, 38, 53, 69, 89, 113,
};
