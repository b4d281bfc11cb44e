// The bf16 GEMM for AVX2 + FMA CPUs (Haswell and later, Zen 1-3): the FMA emulation of sbgemm.h's arithmetic in
// 8-lane vectors, so results are bit-identical to VDPBF16PS and the other variants. Register tile: 4 rows x 16
// columns (8 accumulators, 4 widened B vectors, 2 broadcasts: 14 of the 16 ymm registers); the 8-row A panels
// are taken as two halves.
#if defined(__x86_64__)
#include <immintrin.h>
#include "sbgemm.h"

#pragma clang fp contract(off)
#pragma clang attribute push(__attribute__((target("avx2,fma,bmi2"))), apply_to = function)

static inline __attribute__((always_inline)) void store8(float *c, __m256 acc, __m256i mask, int full, float alpha,
                                                         float beta) {
    __m256 v = _mm256_mul_ps(acc, _mm256_set1_ps(alpha));
    if (full) {
        if (beta != 0) v = _mm256_add_ps(v, _mm256_mul_ps(_mm256_loadu_ps(c), _mm256_set1_ps(beta)));
        _mm256_storeu_ps(c, v);
    } else {
        if (beta != 0) v = _mm256_add_ps(v, _mm256_mul_ps(_mm256_maskload_ps(c, mask), _mm256_set1_ps(beta)));
        _mm256_maskstore_ps(c, mask, v);
    }
}

static inline __m256i lanes_below(long cols) {
    const __m256i idx = _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7);
    return _mm256_cmpgt_epi32(_mm256_set1_epi32((int)(cols < 0 ? 0 : cols > 8 ? 8 : cols)), idx);
}

/// Rows [r0, r0 + 4) of an 8-row panel a (kp, 8, 2) floats against one B panel (kp, 16) words.
static void tile4x16(long kp, const float *a, int r0, const uint32_t *b, float *c, long ldc, long rows, long cols,
                     float alpha, float beta) {
    __m256 acc[4][2];
    for (int r = 0; r < 4; r++) acc[r][0] = acc[r][1] = _mm256_setzero_ps();
    const __m256i hi = _mm256_set1_epi32((int)0xffff0000u);
    for (long p = 0; p < kp; p++) {
        const __m256i w0 = _mm256_loadu_si256((const __m256i *)(b + p * SB_NP));
        const __m256i w1 = _mm256_loadu_si256((const __m256i *)(b + p * SB_NP + 8));
        const __m256 odd0 = _mm256_castsi256_ps(_mm256_and_si256(w0, hi));
        const __m256 even0 = _mm256_castsi256_ps(_mm256_slli_epi32(w0, 16));
        const __m256 odd1 = _mm256_castsi256_ps(_mm256_and_si256(w1, hi));
        const __m256 even1 = _mm256_castsi256_ps(_mm256_slli_epi32(w1, 16));
        const float *ap = a + (p * SB_MR + r0) * 2;
        for (int r = 0; r < 4; r++) {
            const __m256 x0 = _mm256_broadcast_ss(ap + 2 * r), x1 = _mm256_broadcast_ss(ap + 2 * r + 1);
            acc[r][0] = _mm256_fmadd_ps(x1, odd0, acc[r][0]);
            acc[r][0] = _mm256_fmadd_ps(x0, even0, acc[r][0]);
            acc[r][1] = _mm256_fmadd_ps(x1, odd1, acc[r][1]);
            acc[r][1] = _mm256_fmadd_ps(x0, even1, acc[r][1]);
        }
    }
    const __m256i mask0 = lanes_below(cols), mask1 = lanes_below(cols - 8);
    for (int r = 0; r < 4 && r < rows; r++) {
        store8(c + r * ldc, acc[r][0], mask0, cols >= 8, alpha, beta);
        if (cols > 8) store8(c + r * ldc + 8, acc[r][1], mask1, cols >= 16, alpha, beta);
    }
}

static void gemm_avx2(long m, long n, long k, float alpha, const void *apanels, const uint32_t *bp, float beta,
                      float *c, long ldc) {
    const long kp = sb_kpairs(k);
    const float *a = (const float *)((const char *)apanels + SB_AHEADER);
    for (long j = 0; j < n; j += SB_NP) {
        const uint32_t *b = bp + (j / SB_NP) * kp * SB_NP;
        for (long i = 0; i < m; i += 4) {
            const float *panel = a + (i / SB_MR) * kp * SB_MR * 2;
            tile4x16(kp, panel, (int)(i % SB_MR), b, c + i * ldc + j, ldc, m - i, n - j, alpha, beta);
        }
    }
}

#pragma clang attribute pop

const sb_variant sb_avx2 = {"avx2", SB_A_F32, gemm_avx2};
#endif
