// Packing for the bf16 GEMM: fp32 operands rounded to bf16 (round to nearest even, ck_bf16_round_bits) and laid
// out as the micro-kernels read them (sbgemm.h). B's layout is the same for every variant; A's depends on whether
// the variant broadcasts bf16 pairs (VDPBF16PS) or floats (the FMA emulation). Packing is memory-bound, so it is
// built once per instruction set like the other kernels (pack_body.h) and the widest the CPU runs is used.
#include "CKernels.h"
#include "sbgemm.h"

typedef struct {
    void (*b)(int, long, long, const float *, long, uint32_t *);
    void (*a)(int, int, long, long, const float *, long, char *);
    void (*round)(long, const float *, float *);
    void (*store)(long, const float *, uint16_t *);
    void (*load)(long, const uint16_t *, float *);
} packers;

#define SB_PACK_ISA generic
#include "sbgemm_pack_body.h"
#undef SB_PACK_ISA

#if defined(__x86_64__)
#pragma clang attribute push(__attribute__((target("avx512f,avx512bw,avx512vl,avx2,fma,bmi2"))), apply_to = function)
#define SB_PACK_ISA avx512
#include "sbgemm_pack_body.h"
#undef SB_PACK_ISA
#pragma clang attribute pop
#endif

static const packers generic_packers = {pack_b_generic, pack_a_generic, round_f32_generic, store_bf16_generic,
                                        load_bf16_generic};
#if defined(__x86_64__)
static const packers avx512_packers = {pack_b_avx512, pack_a_avx512, round_f32_avx512, store_bf16_avx512,
                                       load_bf16_avx512};
#endif

static const packers *current_packers(void) {
    static const packers *chosen;
    const packers *p = __atomic_load_n(&chosen, __ATOMIC_ACQUIRE);
    if (!p) {
        p = &generic_packers;
#if defined(__x86_64__)
        __builtin_cpu_init();
        if (__builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512bw") &&
            __builtin_cpu_supports("avx512vl"))
            p = &avx512_packers;
#endif
        __atomic_store_n(&chosen, p, __ATOMIC_RELEASE);
    }
    return p;
}

long ck_sbgemm_packed_b_bytes(long k, long n) { return sb_bpanels(n) * sb_kpairs(k) * SB_NP * 4; }

void ck_sbgemm_pack_b(int transB, long k, long n, const float *b, long ldb, uint16_t *packed) {
    current_packers()->b(transB, k, n, b, ldb, (uint32_t *)packed);
}

long ck_sbgemm_packed_a_bytes(long m, long k) {
    // the larger layout (two floats per pair) for any variant
    return SB_AHEADER + (m + SB_MR - 1) / SB_MR * SB_MR * sb_kpairs(k) * 8;
}

void sb_pack_a(int alayout, int transA, long m, long k, const float *a, long lda, void *packed) {
    sb_aheader h = {SB_MAGIC, (uint32_t)alayout, m, k};
    memcpy(packed, &h, sizeof h);
    current_packers()->a(alayout, transA, m, k, a, lda, (char *)packed + SB_AHEADER);
}

void ck_bf16_round(long count, const float *x, float *y) { current_packers()->round(count, x, y); }

void ck_bf16_store(long count, const float *x, uint16_t *out) { current_packers()->store(count, x, out); }

void ck_bf16_load(long count, const uint16_t *in, float *y) { current_packers()->load(count, in, y); }
