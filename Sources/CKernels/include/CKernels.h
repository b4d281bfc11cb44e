// Element-wise and normalisation kernels in C, built once per x86 instruction set (generic x86-64, AVX2+FMA,
// AVX-512) and chosen at run time for the CPU at hand. Swift compiles the whole program for baseline x86-64, where
// these loops run on 128-bit SSE without FMA; the same source built for AVX-512 halves the time of GroupNorm+SiLU,
// which is the largest cost of a training step after the matrix products. Swift keeps the shapes, the phase
// accounting and the naive references; these functions only compute.
//
// Buffers are float32 NCHW; `spatial` is H*W. Backward functions add into gradients unless `overwrite` is set.
#ifndef CKERNELS_H
#define CKERNELS_H
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

/// x (N, C, HW), gamma/beta (C) -> y (N, C, HW) = groupnorm(x) (then SiLU when silu != 0); mean, rstd (N, G).
void ck_groupnorm_forward(const float *_Nonnull x, const float *_Nonnull gamma, const float *_Nonnull beta,
                          float *_Nonnull y, float *_Nonnull mean, float *_Nonnull rstd,
                          long batch, long channels, long spatial, long groups, float eps, int silu);

/// Backward of `ck_groupnorm_forward`: dY (N, C, HW) -> dX (N, C, HW, added, or overwritten with overwrite != 0),
/// dGamma, dBeta (C, added); each may be NULL. With silu != 0, beta is the forward's and scratch holds (C / G) * HW
/// floats; without, both may be NULL.
void ck_groupnorm_backward(const float *_Nonnull x, const float *_Nonnull gamma, const float *_Nullable beta,
                           const float *_Nonnull mean, const float *_Nonnull rstd, const float *_Nonnull dY,
                           float *_Nullable dX, float *_Nullable dGamma, float *_Nullable dBeta,
                           float *_Nullable scratch, long batch, long channels, long spatial, long groups,
                           int silu, int overwrite);

/// The statistics of `ck_groupnorm_forward` without its output: mean, rstd (N, G), and scale (N, C) =
/// rstd x gamma per channel, as the forward rounds it, for `ck_groupnorm_silu_plane`.
void ck_groupnorm_statistics(const float *_Nonnull x, const float *_Nonnull gamma, float *_Nonnull mean,
                             float *_Nonnull rstd, float *_Nonnull scale, long batch, long channels, long spatial,
                             long groups, float eps);
/// One channel plane of `ck_groupnorm_forward` with SiLU, bit for bit: y (spatial) = silu((x - mean) scale + shift)
/// (mean of the channel's group, scale from ck_groupnorm_statistics, shift = beta). Lets a conv normalise its input
/// plane by plane as it reads it, instead of reading a normalised copy (Winograd.swift).
void ck_groupnorm_silu_plane(const float *_Nonnull x, long spatial, float mean, float scale, float shift,
                             float *_Nonnull y);

/// x (count) -> y (count) = x sigmoid(x); y may alias x.
void ck_silu_forward(long count, const float *_Nonnull x, float *_Nonnull y);
/// dX (count) += dY silu'(x).
void ck_silu_backward(long count, const float *_Nonnull x, const float *_Nonnull dY, float *_Nonnull dX);
/// x (count) -> y (count) = e^x (relative error ~2 ulp; clamped to the finite normal range); y may alias x.
void ck_exp(long count, const float *_Nonnull x, float *_Nonnull y);

/// Name of the instruction set the kernels run with: "avx512", "avx2" or "generic".
const char *_Nonnull ck_isa(void);
/// Selects an instruction set by name ("avx512", "avx2", "generic", or "auto" for the best this CPU supports).
/// Returns 0 on success, -1 for an unknown name, -2 when this CPU (or build) cannot run it; nothing changes then.
int ck_select_isa(const char *_Nonnull name);
/// 1 when this CPU and build can run the named instruction set.
int ck_isa_supported(const char *_Nonnull name);


// ---- bf16 matrix multiply (sbgemm*.c): fp32 in and out, operands rounded to bf16, fp32 accumulation ----
// C (m, n) = alpha op(A) (m, k) op(B) (k, n) + beta C, row-major; op(A) = A^T (A stored (k, m)) when transA != 0,
// likewise B (stored (n, k)). Operands are rounded to bf16 (nearest even; subnormals to zero) when packed; every
// variant gives the same bits (sbgemm.h). With beta == 0, C's old contents are not read.

/// Packs, multiplies, returns 0 (or -3 when the packing scratch cannot be allocated).
int ck_sbgemm(int transA, int transB, long m, long n, long k, float alpha, const float *_Nonnull a, long lda,
              const float *_Nonnull b, long ldb, float beta, float *_Nonnull c, long ldc);
/// Bytes of a packed A (m, k) and of a packed B (k, n) (pass 64-byte-aligned buffers).
long ck_sbgemm_packed_a_bytes(long m, long k);
long ck_sbgemm_packed_b_bytes(long k, long n);
/// op(A) (m, k) -> packed, for the variant running now (weights: pack once, multiply many times).
void ck_sbgemm_pack_a(int transA, long m, long k, const float *_Nonnull a, long lda, void *_Nonnull packed);
/// op(B) (k, n) -> packed (the same layout for every variant).
void ck_sbgemm_pack_b(int transB, long k, long n, const float *_Nonnull b, long ldb, uint16_t *_Nonnull packed);
/// C (m, n) = alpha A B + beta C from packed operands. Returns -1 (computing nothing) when packedA was not packed
/// as (m, k) for the variant running now.
int ck_sbgemm_packed(long m, long n, long k, float alpha, const void *_Nonnull packedA,
                     const uint16_t *_Nonnull packedB, float beta, float *_Nonnull c, long ldc);
/// y (count) = x rounded to bf16 and back (the operands' rounding); y may alias x.
void ck_bf16_round(long count, const float *_Nonnull x, float *_Nonnull y);
/// x (count) floats -> out (count) bf16, rounded as above (activations kept for backward in half the bytes).
/// out may alias x (an in-place narrowing: the bf16 values end up in the first half of x's bytes).
void ck_bf16_store(long count, const float *_Nonnull x, uint16_t *_Nonnull out);
/// in (count) bf16 -> y (count) floats, exactly. y may alias in (an in-place widening back over the same bytes).
void ck_bf16_load(long count, const uint16_t *_Nonnull in, float *_Nonnull y);

/// The micro-kernel variant running now: "avx512bf16" (VDPBF16PS), "avx512", "avx2" (FMA emulation), "generic".
const char *_Nonnull ck_sbgemm_variant(void);
/// 1 when this CPU can run the named variant.
int ck_sbgemm_variant_supported(const char *_Nonnull name);
/// Selects a variant by name, or "auto" (the faster on this CPU, measured). 0, or -1 unknown, -2 unsupported.
int ck_sbgemm_select(const char *_Nonnull name);
/// GFLOP/s of a register-only loop of 512-bit VFMADD231PS (kind 0) or VDPBF16PS (kind 1), fastest of 5 runs of
/// `iterations` x 24 instructions; 0 when the CPU lacks the instruction.
double ck_peak_gflops(int kind, long iterations);
/// 1 when this CPU has bf16 dot-product instructions (whether or not they are the faster choice here).
int ck_sbgemm_native(void);

#ifdef __cplusplus
}
#endif
#endif
