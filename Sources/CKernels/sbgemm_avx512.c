// The bf16 GEMM's AVX-512 micro-kernels: VDPBF16PS (AVX512_BF16: Cooper Lake, Sapphire Rapids and later Xeons,
// Zen 4) and, for AVX-512 CPUs without it, the same arithmetic as fp32 FMAs on the bf16 values (sbgemm.h: one
// rounding per term in the same order, so both give the same bits). Register tile: 8 rows x 32 columns (16
// accumulators), or 8 x 16 for the last panel; A's pairs are broadcast, B's panels are read as whole vectors.
// Which one runs where is measured, not assumed: on a Xeon (Sapphire/Emerald Rapids) without AMX, VDPBF16PS
// retires one per two cycles (half the fp32 FMA rate), so the emulation is the faster of the two there.
#if defined(__x86_64__)
#include <immintrin.h>
#include "sbgemm.h"

#pragma clang fp contract(off)

// Two target regions: the emulation must not be built where the compiler may use AVX512_BF16.
#pragma clang attribute push(__attribute__((target("avx512f,avx512bw,avx512vl,avx512dq,avx2,fma,bmi2"))), \
                             apply_to = function)

/// C rows [0, rows) of the tile: alpha acc (+ beta C), columns masked by m0 / m1.
static inline __attribute__((always_inline)) void store_row(float *c, __m512 acc, __mmask16 mask, float alpha,
                                                            float beta) {
    __m512 v = _mm512_mul_ps(acc, _mm512_set1_ps(alpha));
    if (beta != 0) v = _mm512_add_ps(v, _mm512_mul_ps(_mm512_maskz_loadu_ps(mask, c), _mm512_set1_ps(beta)));
    _mm512_mask_storeu_ps(c, mask, v);
}

/// The FMA emulation: a (kp, 8, 2) floats (rounded values); each B word splits into its high (odd k) and low
/// (even k) bf16, widened to fp32 by placing them in the top 16 bits.
static inline __attribute__((always_inline)) void tile_fma(const int NV, long kp, const float *a, const uint32_t *b0,
                                                           const uint32_t *b1, float *c, long ldc, long rows,
                                                           __mmask16 m0, __mmask16 m1, float alpha, float beta) {
    __m512 acc0[SB_MR], acc1[SB_MR];
    for (int r = 0; r < SB_MR; r++) acc0[r] = acc1[r] = _mm512_setzero_ps();
    const __m512i hi = _mm512_set1_epi32((int)0xffff0000u);
    for (long p = 0; p < kp; p++) {
        const __m512i w0 = _mm512_loadu_si512(b0 + p * SB_NP);
        const __m512i w1 = NV == 2 ? _mm512_loadu_si512(b1 + p * SB_NP) : w0;
        const __m512 odd0 = _mm512_castsi512_ps(_mm512_and_si512(w0, hi));
        const __m512 even0 = _mm512_castsi512_ps(_mm512_slli_epi32(w0, 16));
        const __m512 odd1 = _mm512_castsi512_ps(_mm512_and_si512(w1, hi));
        const __m512 even1 = _mm512_castsi512_ps(_mm512_slli_epi32(w1, 16));
        const float *ap = a + p * SB_MR * 2;
        for (int r = 0; r < SB_MR; r++) {
            const __m512 x0 = _mm512_set1_ps(ap[2 * r]), x1 = _mm512_set1_ps(ap[2 * r + 1]);
            acc0[r] = _mm512_fmadd_ps(x1, odd0, acc0[r]);
            acc0[r] = _mm512_fmadd_ps(x0, even0, acc0[r]);
            if (NV == 2) {
                acc1[r] = _mm512_fmadd_ps(x1, odd1, acc1[r]);
                acc1[r] = _mm512_fmadd_ps(x0, even1, acc1[r]);
            }
        }
    }
    for (int r = 0; r < SB_MR; r++) {
        if (r >= rows) break;
        store_row(c + r * ldc, acc0[r], m0, alpha, beta);
        if (NV == 2) store_row(c + r * ldc + SB_NP, acc1[r], m1, alpha, beta);
    }
}

static inline __mmask16 cols_mask(long cols) { return cols >= 16 ? (__mmask16)0xffff : (__mmask16)((1u << cols) - 1); }

/// Column blocks of 32 (two B panels) outside, row panels of 8 inside: the block of B stays in L1 while A's
/// panels stream past it.
#define SB_DRIVER(NAME, TILE, AT, ASTRIDE)                                                                           \
    static void NAME(long m, long n, long k, float alpha, const void *apanels, const uint32_t *bp, float beta,     \
                     float *c, long ldc) {                                                                         \
        const long kp = sb_kpairs(k);                                                                              \
        const AT *a = (const AT *)((const char *)apanels + SB_AHEADER);                                            \
        for (long j = 0; j < n; j += 2 * SB_NP) {                                                                  \
            const uint32_t *b0 = bp + (j / SB_NP) * kp * SB_NP, *b1 = b0 + kp * SB_NP;                             \
            const __mmask16 m0 = cols_mask(n - j), m1 = cols_mask(n - j - SB_NP);                                  \
            const int two = n - j > SB_NP;                                                                         \
            for (long i = 0; i < m; i += SB_MR) {                                                                  \
                const AT *ai = a + (i / SB_MR) * kp * (ASTRIDE);                                                   \
                const long rows = m - i;                                                                           \
                if (two)                                                                                           \
                    TILE(2, kp, ai, b0, b1, c + i * ldc + j, ldc, rows, m0, m1, alpha, beta);                     \
                else                                                                                               \
                    TILE(1, kp, ai, b0, b0, c + i * ldc + j, ldc, rows, m0, m1, alpha, beta);                     \
            }                                                                                                      \
        }                                                                                                          \
    }

SB_DRIVER(gemm_fma, tile_fma, float, 2 * SB_MR)

#pragma clang attribute pop

#pragma clang attribute push(__attribute__((target("avx512f,avx512bw,avx512vl,avx512dq,avx512bf16,avx2,fma,bmi2"))), \
                             apply_to = function)

/// VDPBF16PS: a (kp, 8) bf16-pair words, b0 / b1 (kp, 16) words; NV = 1 or 2 panels.
static inline __attribute__((always_inline)) void tile_dp(const int NV, long kp, const uint32_t *a, const uint32_t *b0,
                                                          const uint32_t *b1, float *c, long ldc, long rows,
                                                          __mmask16 m0, __mmask16 m1, float alpha, float beta) {
    __m512 acc0[SB_MR], acc1[SB_MR];
    for (int r = 0; r < SB_MR; r++) acc0[r] = acc1[r] = _mm512_setzero_ps();
    for (long p = 0; p < kp; p++) {
        const __m512bh v0 = (__m512bh)_mm512_loadu_si512(b0 + p * SB_NP);
        const __m512bh v1 = NV == 2 ? (__m512bh)_mm512_loadu_si512(b1 + p * SB_NP) : v0;
        const uint32_t *ap = a + p * SB_MR;
        for (int r = 0; r < SB_MR; r++) {
            const __m512bh x = (__m512bh)_mm512_set1_epi32((int)ap[r]);
            acc0[r] = _mm512_dpbf16_ps(acc0[r], x, v0);
            if (NV == 2) acc1[r] = _mm512_dpbf16_ps(acc1[r], x, v1);
        }
    }
    for (int r = 0; r < SB_MR; r++) {
        if (r >= rows) break;
        store_row(c + r * ldc, acc0[r], m0, alpha, beta);
        if (NV == 2) store_row(c + r * ldc + SB_NP, acc1[r], m1, alpha, beta);
    }
}

SB_DRIVER(gemm_dp, tile_dp, uint32_t, SB_MR)

#pragma clang attribute pop

const sb_variant sb_avx512bf16 = {"avx512bf16", SB_A_BF16, gemm_dp};
const sb_variant sb_avx512 = {"avx512", SB_A_F32, gemm_fma};
#endif
