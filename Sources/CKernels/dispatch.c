// Picks the kernels' instruction set once, at load time, from what the CPU (and its OS) supports; the CLI may
// override it (CONTROLNET_KERNEL_ISA) and the tests run every variant this machine has against the references.
#include <string.h>
#include "CKernels.h"
#include "table.h"

// NULL until first use: the choice is made lazily so no constructor ordering or linker behaviour can skip it.
static const ck_table *active;

static const ck_table *table_named(const char *name) {
    if (strcmp(name, "generic") == 0) return &ck_table_generic;
#if defined(__x86_64__)
    if (strcmp(name, "avx2") == 0) return &ck_table_avx2;
    if (strcmp(name, "avx512") == 0) return &ck_table_avx512;
#endif
    return NULL;
}

static int cpu_runs(const ck_table *t) {
    if (t == &ck_table_generic) return 1;
#if defined(__x86_64__)
    // __builtin_cpu_supports also checks that the OS saves the wide registers (XGETBV), not only CPUID.
    __builtin_cpu_init();
    int avx2 = __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma") && __builtin_cpu_supports("bmi2");
    if (t == &ck_table_avx2) return avx2;
    if (t == &ck_table_avx512)
        return avx2 && __builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512dq") &&
               __builtin_cpu_supports("avx512bw") && __builtin_cpu_supports("avx512vl");
#endif
    return 0;
}

static const ck_table *best(void) {
    static const char *order[] = {"avx512", "avx2", "generic"};
    for (unsigned i = 0; i < sizeof order / sizeof order[0]; i++) {
        const ck_table *t = table_named(order[i]);
        if (t && cpu_runs(t)) return t;
    }
    return &ck_table_generic;
}

// Every entry point goes through here; racing first calls store the same table.
static inline const ck_table *kernels(void) {
    const ck_table *t = __atomic_load_n(&active, __ATOMIC_ACQUIRE);
    if (!t) {
        t = best();
        __atomic_store_n(&active, t, __ATOMIC_RELEASE);
    }
    return t;
}

const char *ck_isa(void) { return kernels()->name; }

int ck_isa_supported(const char *name) {
    const ck_table *t = table_named(name);
    return t && cpu_runs(t);
}

int ck_select_isa(const char *name) {
    if (strcmp(name, "auto") == 0) {
        __atomic_store_n(&active, best(), __ATOMIC_RELEASE);
        return 0;
    }
    const ck_table *t = table_named(name);
    if (!t) return -1;
    if (!cpu_runs(t)) return -2;
    __atomic_store_n(&active, t, __ATOMIC_RELEASE);
    return 0;
}

void ck_groupnorm_forward(const float *x, const float *gamma, const float *beta, float *y, float *mean, float *rstd,
                          long batch, long channels, long spatial, long groups, float eps, int silu) {
    kernels()->groupnorm_forward(x, gamma, beta, y, mean, rstd, batch, channels, spatial, groups, eps, silu);
}

void ck_groupnorm_statistics(const float *x, const float *gamma, float *mean, float *rstd, float *scale, long batch,
                             long channels, long spatial, long groups, float eps) {
    kernels()->groupnorm_statistics(x, gamma, mean, rstd, scale, batch, channels, spatial, groups, eps);
}

void ck_groupnorm_silu_plane(const float *x, long spatial, float mean, float scale, float shift, float *y) {
    kernels()->groupnorm_silu_plane(x, spatial, mean, scale, shift, y);
}

void ck_groupnorm_backward(const float *x, const float *gamma, const float *beta, const float *mean,
                           const float *rstd, const float *dY, float *dX, float *dGamma, float *dBeta, float *scratch,
                           long batch, long channels, long spatial, long groups, int silu, int overwrite) {
    kernels()->groupnorm_backward(x, gamma, beta, mean, rstd, dY, dX, dGamma, dBeta, scratch, batch, channels, spatial,
                               groups, silu, overwrite);
}

void ck_silu_forward(long count, const float *x, float *y) { kernels()->silu_forward(count, x, y); }
void ck_silu_backward(long count, const float *x, const float *dY, float *dX) {
    kernels()->silu_backward(count, x, dY, dX);
}
void ck_exp(long count, const float *x, float *y) { kernels()->exp(count, x, y); }
