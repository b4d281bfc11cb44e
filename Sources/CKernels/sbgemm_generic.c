// The bf16 GEMM for any CPU: sbgemm.h's arithmetic in plain scalar C, the same rounding and order as VDPBF16PS,
// so a CPU without vector units gets the same bits, only slower. It reads the same packed operands as the FMA
// emulations (A as rounded floats).
#include "sbgemm.h"

#pragma clang fp contract(off)

static void gemm_generic(long m, long n, long k, float alpha, const void *apanels, const uint32_t *bp, float beta,
                         float *c, long ldc) {
    const long kp = sb_kpairs(k);
    const float *a = (const float *)((const char *)apanels + SB_AHEADER);
    for (long i = 0; i < m; i++) {
        const float *ap = a + ((i / SB_MR) * kp * SB_MR + i % SB_MR) * 2;
        for (long j = 0; j < n; j++) {
            const uint32_t *b = bp + (j / SB_NP) * kp * SB_NP + j % SB_NP;
            float acc = 0;
            for (long p = 0; p < kp; p++) {
                const uint32_t w = b[p * SB_NP];
                const float odd = ck_f32_of_bf16((uint16_t)(w >> 16)), even = ck_f32_of_bf16((uint16_t)w);
                acc = acc + ap[p * SB_MR * 2 + 1] * odd;
                acc = acc + ap[p * SB_MR * 2] * even;
            }
            float v = alpha * acc;
            if (beta != 0) v = v + beta * c[i * ldc + j];
            c[i * ldc + j] = v;
        }
    }
}

const sb_variant sb_generic = {"generic", SB_A_F32, gemm_generic};
