// The bf16 GEMM's internal contract: packed operand layouts, the rounding every variant shares, and the table of
// micro-kernel variants that sbgemm_dispatch.c chooses from. Public entry points are in include/CKernels.h.
//
// Semantics every variant implements, bit for bit (the "vdpbf16ps order"): operands are rounded to bf16 once, when
// packed (ck_bf16_round: round to nearest even, fp32 subnormals to signed zero, NaNs quieted; exactly what
// VCVTNE2PS2BF16 does). Each C element then has ONE fp32 accumulator that starts at 0 and, for k-pairs p = 0, 1, ...
// in order, takes acc += a[2p+1] b[2p+1], then acc += a[2p] b[2p], each rounded to nearest even. A product of two
// bf16 values is exact in fp32, so this is one FMA per term and needs no FMA instruction to reproduce; it is the
// order Intel's SDM gives for VDPBF16PS and the order measured on this project's Xeon (3.2M random cases, 0
// mismatches). Finally C = alpha acc (+ beta C when beta != 0, product and sum rounded separately). Only results
// that pass through the fp32 subnormal range may differ (VDPBF16PS flushes them, the FMA emulation does not).
#ifndef CKERNELS_SBGEMM_H
#define CKERNELS_SBGEMM_H
#include <stdint.h>
#include <string.h>

/// Rows per packed-A panel (every variant's register tile is 8 rows, or 4 x 2 for AVX2).
#define SB_MR 8
/// Columns per packed-B panel: one 512-bit vector of bf16 pairs.
#define SB_NP 16
/// Bytes before a packed A's data: a header naming its layout, so a mismatch is caught instead of misread.
#define SB_AHEADER 64

/// Layouts of packed A. A panel of SB_MR rows holds, for each k-pair p, SB_MR pairs (a[r][2p], a[r][2p+1]):
/// as two bf16 in one 32-bit word (SB_A_BF16, for VDPBF16PS's broadcast operand) or as two floats holding the
/// rounded values (SB_A_F32, for the FMA emulation's broadcasts). Rows past m and the pad of an odd k are zero.
enum { SB_A_BF16 = 1, SB_A_F32 = 2 };

typedef struct {
    uint32_t magic, layout;
    int64_t m, k;
} sb_aheader;
#define SB_MAGIC 0x5342474du  // "SBGM"

/// fp32 bits -> bf16 bits, round to nearest even; subnormals -> signed zero; NaN -> quiet NaN of the same sign.
static inline uint16_t ck_bf16_round_bits(uint32_t u) {
    if ((u & 0x7f800000u) == 0) return (uint16_t)((u >> 16) & 0x8000u);
    if ((u & 0x7fffffffu) > 0x7f800000u) return (uint16_t)((u >> 16) | 0x0040u);
    return (uint16_t)((u + 0x7fffu + ((u >> 16) & 1u)) >> 16);
}

static inline uint16_t ck_bf16_of(float f) {
    uint32_t u;
    memcpy(&u, &f, 4);
    return ck_bf16_round_bits(u);
}

static inline float ck_f32_of_bf16(uint16_t h) {
    uint32_t u = (uint32_t)h << 16;
    float f;
    memcpy(&f, &u, 4);
    return f;
}

/// Packed B: ceil(n / SB_NP) panels of SB_NP columns, each (kp, SB_NP) 32-bit words, word (p, j) holding bf16
/// b[2p][j] in its low half and b[2p+1][j] in its high half (the "VNNI" layout VDPBF16PS reads). kp = ceil(k / 2).
static inline long sb_kpairs(long k) { return (k + 1) / 2; }
static inline long sb_bpanels(long n) { return (n + SB_NP - 1) / SB_NP; }

/// One micro-kernel variant: C (m, n) = alpha A B + beta C from packed A (of `alayout`) and packed B.
typedef struct {
    const char *name;
    int alayout;
    void (*gemm)(long m, long n, long k, float alpha, const void *apanels, const uint32_t *bpanels, float beta,
                 float *c, long ldc);
} sb_variant;

extern const sb_variant sb_generic;
#if defined(__x86_64__)
extern const sb_variant sb_avx2, sb_avx512, sb_avx512bf16;
#endif

/// Packs A into the layout `alayout` (data after the header). Shared by every variant (sbgemm_pack.c).
void sb_pack_a(int alayout, int transA, long m, long k, const float *a, long lda, void *packed);

#endif
