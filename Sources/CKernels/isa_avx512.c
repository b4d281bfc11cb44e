// The kernels built for AVX-512 (Skylake-SP and later, Zen 4): one 512-bit register per 16-lane vector.
#if defined(__x86_64__)
#define CK_ISA avx512
#define CK_ISA_NAME "avx512"
#pragma clang attribute push(__attribute__((target("avx512f,avx512dq,avx512bw,avx512vl,avx2,fma,bmi2"))), \
                             apply_to = function)
#include "kernels_body.h"
#pragma clang attribute pop
#endif
