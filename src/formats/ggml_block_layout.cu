// Writes the layout of every block struct in ggml_blocks.cuh, in the order of
// block_layout_table() in src/formats/blocks.rs:
// per type [ggml type id, sizeof, offsetof each field in declaration order].
// Launch with one thread; `out` holds BLOCK_LAYOUT_TABLE_LEN (65) values.
#include "ggml_blocks.cuh"

// NVRTC has no __builtin_offsetof: take the member's address relative to an
// object placed (never dereferenced) at `out`.
#define GGML_OFFSET(T, f) \
    ((unsigned long long)((const char*)&((const T*)out)->f - (const char*)out))

extern "C" __global__ void ggml_block_layout(unsigned long long* out) {
    if (blockIdx.x != 0 || threadIdx.x != 0) return;
    int i = 0;
    out[i++] = 2;  out[i++] = sizeof(block_q4_0);
    out[i++] = GGML_OFFSET(block_q4_0, d); out[i++] = GGML_OFFSET(block_q4_0, qs);
    out[i++] = 3;  out[i++] = sizeof(block_q4_1);
    out[i++] = GGML_OFFSET(block_q4_1, d); out[i++] = GGML_OFFSET(block_q4_1, m);
    out[i++] = GGML_OFFSET(block_q4_1, qs);
    out[i++] = 6;  out[i++] = sizeof(block_q5_0);
    out[i++] = GGML_OFFSET(block_q5_0, d); out[i++] = GGML_OFFSET(block_q5_0, qh);
    out[i++] = GGML_OFFSET(block_q5_0, qs);
    out[i++] = 7;  out[i++] = sizeof(block_q5_1);
    out[i++] = GGML_OFFSET(block_q5_1, d); out[i++] = GGML_OFFSET(block_q5_1, m);
    out[i++] = GGML_OFFSET(block_q5_1, qh); out[i++] = GGML_OFFSET(block_q5_1, qs);
    out[i++] = 8;  out[i++] = sizeof(block_q8_0);
    out[i++] = GGML_OFFSET(block_q8_0, d); out[i++] = GGML_OFFSET(block_q8_0, qs);
    out[i++] = 10; out[i++] = sizeof(block_q2_k);
    out[i++] = GGML_OFFSET(block_q2_k, scales); out[i++] = GGML_OFFSET(block_q2_k, qs);
    out[i++] = GGML_OFFSET(block_q2_k, d); out[i++] = GGML_OFFSET(block_q2_k, dmin);
    out[i++] = 11; out[i++] = sizeof(block_q3_k);
    out[i++] = GGML_OFFSET(block_q3_k, hmask); out[i++] = GGML_OFFSET(block_q3_k, qs);
    out[i++] = GGML_OFFSET(block_q3_k, scales); out[i++] = GGML_OFFSET(block_q3_k, d);
    out[i++] = 12; out[i++] = sizeof(block_q4_k);
    out[i++] = GGML_OFFSET(block_q4_k, d); out[i++] = GGML_OFFSET(block_q4_k, dmin);
    out[i++] = GGML_OFFSET(block_q4_k, scales); out[i++] = GGML_OFFSET(block_q4_k, qs);
    out[i++] = 13; out[i++] = sizeof(block_q5_k);
    out[i++] = GGML_OFFSET(block_q5_k, d); out[i++] = GGML_OFFSET(block_q5_k, dmin);
    out[i++] = GGML_OFFSET(block_q5_k, scales); out[i++] = GGML_OFFSET(block_q5_k, qh);
    out[i++] = GGML_OFFSET(block_q5_k, qs);
    out[i++] = 14; out[i++] = sizeof(block_q6_k);
    out[i++] = GGML_OFFSET(block_q6_k, ql); out[i++] = GGML_OFFSET(block_q6_k, qh);
    out[i++] = GGML_OFFSET(block_q6_k, scales); out[i++] = GGML_OFFSET(block_q6_k, d);
    out[i++] = 20; out[i++] = sizeof(block_iq4_nl);
    out[i++] = GGML_OFFSET(block_iq4_nl, d); out[i++] = GGML_OFFSET(block_iq4_nl, qs);
    out[i++] = 23; out[i++] = sizeof(block_iq4_xs);
    out[i++] = GGML_OFFSET(block_iq4_xs, d); out[i++] = GGML_OFFSET(block_iq4_xs, scales_h);
    out[i++] = GGML_OFFSET(block_iq4_xs, scales_l); out[i++] = GGML_OFFSET(block_iq4_xs, qs);
}
