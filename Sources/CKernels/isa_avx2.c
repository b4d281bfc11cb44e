// The kernels built for AVX2 + FMA (Haswell and later, Zen): 256-bit vectors, fused multiply-add.
#if defined(__x86_64__)
#define CK_ISA avx2
#define CK_ISA_NAME "avx2"
#pragma clang attribute push(__attribute__((target("avx2,fma,bmi2"))), apply_to = function)
#include "kernels_body.h"
#pragma clang attribute pop
#endif
