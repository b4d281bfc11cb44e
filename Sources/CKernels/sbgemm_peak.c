// The machine's arithmetic peaks for docs/bf16-kernels.md and `bench-sgemm --precision`: a tight loop of 24
// independent VDPBF16PS (bf16 pairs, 64 FLOP per 512-bit instruction) or VFMADD231PS (fp32, 32 FLOP) on
// registers only, so the figure is the core's issue rate for that instruction and nothing else.
#include <time.h>
#include "CKernels.h"

static double now(void) {
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (double)t.tv_sec + 1e-9 * (double)t.tv_nsec;
}

#if defined(__x86_64__)
#define R24(op) op(8) op(9) op(10) op(11) op(12) op(13) op(14) op(15) op(16) op(17) op(18) op(19) op(20) op(21) \
    op(22) op(23) op(24) op(25) op(26) op(27) op(28) op(29) op(30) op(31)
#define DP(i) "vdpbf16ps %%zmm0, %%zmm1, %%zmm" #i "\n\t"
#define FMA(i) "vfmadd231ps %%zmm0, %%zmm1, %%zmm" #i "\n\t"
#define CLOBBERS "xmm0", "xmm1", "xmm8", "xmm9", "xmm10", "xmm11", "xmm12", "xmm13", "xmm14", "xmm15", "xmm16", \
    "xmm17", "xmm18", "xmm19", "xmm20", "xmm21", "xmm22", "xmm23", "xmm24", "xmm25", "xmm26", "xmm27", "xmm28", \
    "xmm29", "xmm30", "xmm31"
#define LOOP(body) \
    __asm__ volatile("vpxord %%zmm0, %%zmm0, %%zmm0\n\tvpxord %%zmm1, %%zmm1, %%zmm1\n\t1:\n\t" body \
                     "dec %0\n\tjnz 1b" : "+r"(n) :: "memory", CLOBBERS)

__attribute__((target("avx512f,avx512bf16"))) static void dp_loop(long n) { LOOP(R24(DP)); }
__attribute__((target("avx512f"))) static void fma_loop(long n) { LOOP(R24(FMA)); }
#endif

double ck_peak_gflops(int kind, long iterations) {
#if defined(__x86_64__)
    __builtin_cpu_init();
    if (!__builtin_cpu_supports("avx512f") || (kind == 1 && !__builtin_cpu_supports("avx512bf16"))) return 0;
    if (iterations < 1) return 0;
    double best = 1e30;
    for (int r = 0; r < 5; r++) {
        const double t0 = now();
        if (kind == 1) dp_loop(iterations); else fma_loop(iterations);
        const double t = now() - t0;
        if (t < best) best = t;
    }
    return (double)iterations * 24 * 16 * (kind == 1 ? 4 : 2) / best / 1e9;
#else
    (void)kind;
    (void)iterations;
    return 0;
#endif
}
