// Chooses the bf16 GEMM's micro-kernel variant and implements the public ck_sbgemm* entry points (CKernels.h).
// Every variant computes the same bits (sbgemm.h), so the choice is about speed only, and it is measured rather
// than read off the CPU flags: VDPBF16PS is twice the fp32 FMA rate on Zen 4 but half of it on a Sapphire/Emerald
// Rapids Xeon without AMX, where the FMA emulation wins. "auto" times both on a cache-resident problem once (about
// a millisecond) and keeps the faster; CONTROLNET_BF16_KERNEL (through Swift's BF16Kernel) can pin one.
#include <stdlib.h>
#include <time.h>
#include "CKernels.h"
#include "sbgemm.h"

static const sb_variant *variant_named(const char *name) {
#if defined(__x86_64__)
    if (strcmp(name, "avx512bf16") == 0) return &sb_avx512bf16;
    if (strcmp(name, "avx512") == 0) return &sb_avx512;
    if (strcmp(name, "avx2") == 0) return &sb_avx2;
#endif
    if (strcmp(name, "generic") == 0) return &sb_generic;
    return NULL;
}

static int runs(const sb_variant *v) {
    if (v == &sb_generic) return 1;
#if defined(__x86_64__)
    __builtin_cpu_init();
    const int avx2 = __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma") && __builtin_cpu_supports("bmi2");
    const int avx512 = avx2 && __builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512dq") &&
                       __builtin_cpu_supports("avx512bw") && __builtin_cpu_supports("avx512vl");
    if (v == &sb_avx2) return avx2;
    if (v == &sb_avx512) return avx512;
    if (v == &sb_avx512bf16) return avx512 && __builtin_cpu_supports("avx512bf16");
#endif
    return 0;
}

static double seconds(void) {
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (double)t.tv_sec + 1e-9 * (double)t.tv_nsec;
}

/// Fastest of 5 runs of a 64 x 64 x 256 product (in L1/L2) with variant v.
static double probe(const sb_variant *v) {
    enum { M = 64, N = 64, K = 256 };
    static float a[M * K], b[K * N], c[M * N];
    for (int i = 0; i < M * K; i++) a[i] = (float)(i % 17) * 0.125f;
    for (int i = 0; i < K * N; i++) b[i] = (float)(i % 13) * 0.25f;
    void *pa = aligned_alloc(64, (size_t)ck_sbgemm_packed_a_bytes(M, K));
    uint16_t *pb = aligned_alloc(64, (size_t)ck_sbgemm_packed_b_bytes(K, N));
    if (!pa || !pb) {
        free(pa);
        free(pb);
        return 1;
    }
    sb_pack_a(v->alayout, 0, M, K, a, K, pa);
    ck_sbgemm_pack_b(0, K, N, b, N, pb);
    double best = 1e30;
    for (int r = 0; r < 6; r++) {
        const double t0 = seconds();
        for (int rep = 0; rep < 8; rep++) v->gemm(M, N, K, 1, pa, (const uint32_t *)pb, 0, c, N);
        const double t = seconds() - t0;
        if (r > 0 && t < best) best = t;
    }
    free(pa);
    free(pb);
    return best;
}

static const sb_variant *best_variant(void) {
#if defined(__x86_64__)
    const sb_variant *fallback = runs(&sb_avx512) ? &sb_avx512 : runs(&sb_avx2) ? &sb_avx2 : &sb_generic;
    if (runs(&sb_avx512bf16) && probe(&sb_avx512bf16) < probe(fallback)) return &sb_avx512bf16;
    return fallback;
#else
    return &sb_generic;
#endif
}

static const sb_variant *active;

static const sb_variant *current(void) {
    const sb_variant *v = __atomic_load_n(&active, __ATOMIC_ACQUIRE);
    if (!v) {
        v = best_variant();
        __atomic_store_n(&active, v, __ATOMIC_RELEASE);
    }
    return v;
}

const char *ck_sbgemm_variant(void) { return current()->name; }

int ck_sbgemm_variant_supported(const char *name) {
    const sb_variant *v = variant_named(name);
    return v && runs(v);
}

int ck_sbgemm_select(const char *name) {
    if (strcmp(name, "auto") == 0) {
        __atomic_store_n(&active, best_variant(), __ATOMIC_RELEASE);
        return 0;
    }
    const sb_variant *v = variant_named(name);
    if (!v) return -1;
    if (!runs(v)) return -2;
    __atomic_store_n(&active, v, __ATOMIC_RELEASE);
    return 0;
}

int ck_sbgemm_native(void) {
#if defined(__x86_64__)
    return current() == &sb_avx512bf16 || runs(&sb_avx512bf16);
#else
    return 0;
#endif
}

void ck_sbgemm_pack_a(int transA, long m, long k, const float *a, long lda, void *packed) {
    sb_pack_a(current()->alayout, transA, m, k, a, lda, packed);
}

int ck_sbgemm_packed(long m, long n, long k, float alpha, const void *packedA, const uint16_t *packedB, float beta,
                     float *c, long ldc) {
    const sb_variant *v = current();
    sb_aheader h;
    memcpy(&h, packedA, sizeof h);
    if (h.magic != SB_MAGIC || h.layout != (uint32_t)v->alayout || h.m != m || h.k != k) return -1;
    if (m <= 0 || n <= 0) return 0;
    v->gemm(m, n, k, alpha, packedA, (const uint32_t *)packedB, beta, c, ldc);
    return 0;
}

/// This thread's packing buffers, grown as needed and kept (the largest GEMM's operands, a few MB at most).
static _Thread_local void *scratch_a, *scratch_b;
static _Thread_local long scratch_a_bytes, scratch_b_bytes;

static void *grow(void **p, long *have, long need) {
    if (need <= *have) return *p;
    free(*p);
    const long rounded = (need + 4095) / 4096 * 4096;
    *p = aligned_alloc(64, (size_t)rounded);
    *have = *p ? rounded : 0;
    return *p;
}

int ck_sbgemm(int transA, int transB, long m, long n, long k, float alpha, const float *a, long lda, const float *b,
              long ldb, float beta, float *c, long ldc) {
    if (m <= 0 || n <= 0) return 0;
    void *pa = grow(&scratch_a, &scratch_a_bytes, ck_sbgemm_packed_a_bytes(m, k));
    uint16_t *pb = grow(&scratch_b, &scratch_b_bytes, ck_sbgemm_packed_b_bytes(k, n));
    if (!pa || !pb) return -3;
    ck_sbgemm_pack_a(transA, m, k, a, lda, pa);
    ck_sbgemm_pack_b(transB, k, n, b, ldb, pb);
    return ck_sbgemm_packed(m, n, k, alpha, pa, pb, beta, c, ldc);
}
