// The kernels' one source, compiled once per instruction set: each isa_*.c defines CK_ISA and wraps this file in a
// `#pragma clang attribute` target region, so the same 16-lane vector code becomes one zmm register per vector with
// AVX-512, two ymm with AVX2 (FMA contracted), four xmm on generic x86-64. Everything here is static except the
// table at the end, so the copies never clash.
//
// Numerics follow the Swift kernels they replace: two-pass GroupNorm statistics (biased variance, like PyTorch)
// with Float lane sums flushed to Double every 256 elements, the normalised value computed as (x - mean) * (rstd
// gamma) + beta, and a degree-6 polynomial exp (Cephes expf coefficients).
#include <stddef.h>
#include "table.h"

// Vectors passed between these static, always-inlined helpers never cross an ABI boundary, so the AVX2 copy's
// warning that 512-bit arguments change the calling convention does not apply.
#pragma clang diagnostic ignored "-Wpsabi"

#define CK_CAT2(a, b) a##_##b
#define CK_CAT(a, b) CK_CAT2(a, b)
#define CK_FN(name) CK_CAT(name, CK_ISA)

typedef float vf __attribute__((ext_vector_type(16)));
typedef int vi __attribute__((ext_vector_type(16)));
enum { W = 16, FLUSH = 256 };

static inline __attribute__((always_inline)) vf ld(const float *p) { vf v; __builtin_memcpy(&v, p, sizeof v); return v; }
static inline __attribute__((always_inline)) void st(float *p, vf v) { __builtin_memcpy(p, &v, sizeof v); }

/// The first n (< W) floats at p, zeros elsewhere: tails reuse the vector code.
static inline __attribute__((always_inline)) vf ldn(const float *p, long n) {
    vf v = 0;
    for (long i = 0; i < n; i++) v[i] = p[i];
    return v;
}

static inline __attribute__((always_inline)) void stn(float *p, vf v, long n) {
    for (long i = 0; i < n; i++) p[i] = v[i];
}

typedef double vd __attribute__((ext_vector_type(8)));

/// Lanes i and i + 8 of v widened to Double and added: Float lane sums flushed into Double lanes with two
/// conversions and an add, where `lanesum`'s 16 dependent scalar adds made the flush as slow as the loop it ends.
static inline __attribute__((always_inline)) vd widen(vf v) {
    return __builtin_convertvector(v.lo, vd) + __builtin_convertvector(v.hi, vd);
}

static inline __attribute__((always_inline)) double dlanesum(vd v) {
    return ((v[0] + v[4]) + (v[2] + v[6])) + ((v[1] + v[5]) + (v[3] + v[7]));
}

/// e^x: x = n ln2 + r with n rounded by the 1.5 * 2^23 trick (the low mantissa bits then hold n), a degree-6
/// polynomial for e^r on |r| <= ln2 / 2, and 2^n built in the exponent bits. Clamped to [-87.3, 88.3]: e^-87.3 is
/// the smallest normal float, e^88.3 near the largest finite one.
static inline __attribute__((always_inline)) vf vexp(vf x) {
    const float magic = 12582912.0f;
    x = __builtin_elementwise_min(__builtin_elementwise_max(x, (vf)(-87.3f)), (vf)(88.3f));
    vf t = x * 1.4426950408889634f + magic;
    vf n = t - magic;
    vf r = x - n * 0.693359375f;
    r = r - n * -2.12194440e-4f;
    vf p = 1.9875691500e-4f;
    p = p * r + 1.3981999507e-3f;
    p = p * r + 8.3334519073e-3f;
    p = p * r + 4.1665795894e-2f;
    p = p * r + 1.6666665459e-1f;
    p = p * r + 5.0000001201e-1f;
    p = p * (r * r) + r + 1.0f;
    vi bits = (vi)t - 0x4B400000;  // n, as the bits of t above magic's
    return p * (vf)((bits + 127) << 23);
}

static inline __attribute__((always_inline)) vf vsigmoid(vf z) { return 1.0f / (1.0f + vexp(-z)); }

/// z sigmoid(z) as one division. (VRCP14PS and a Newton step instead measured 8% slower on this loop in L1 on a
/// Xeon: the division overlaps the exponential's FMAs, the reciprocal's FMAs compete with them.)
static inline __attribute__((always_inline)) vf vsilu(vf z) { return z / (1.0f + vexp(-z)); }

/// silu'(z) = s (1 + z (1 - s)), s = sigmoid(z).
static inline __attribute__((always_inline)) vf vsiluprime(vf z) {
    vf s = vsigmoid(z);
    return s * (1.0f + z * (1.0f - s));
}

/// Two-pass mean and 1 / sqrt(biased variance + eps) of x (count).
static void statistics(const float *x, long count, float eps, double *mean_out, double *rstd_out) {
    // The mean of x - x[0]: its terms are the size of the spread, not of the mean, so Float lanes lose nothing
    // even when |mean| >> std.
    // Four independent Float accumulators per pass: one would chain every add on the last (4 cycles each), which
    // made these passes latency-bound at a quarter of the rate the loads allow.
    const float shift = x[0];
    double shifted = 0;
    vd wide = 0;
    long i = 0;
    while (i < count) {
        long end = count < i + FLUSH ? count : i + FLUSH;
        vf a0 = 0, a1 = 0, a2 = 0, a3 = 0;
        for (; i + 4 * W <= end; i += 4 * W) {
            a0 += ld(x + i) - shift;
            a1 += ld(x + i + W) - shift;
            a2 += ld(x + i + 2 * W) - shift;
            a3 += ld(x + i + 3 * W) - shift;
        }
        for (; i + W <= end; i += W) a0 += ld(x + i) - shift;
        wide += widen((a0 + a1) + (a2 + a3));
        for (; i < end; i++) shifted += (double)(x[i] - shift);
    }
    shifted += dlanesum(wide);
    const double m = (double)shift + shifted / (double)count;
    const float mf = (float)m;
    double total = 0;
    wide = 0;
    i = 0;
    while (i < count) {
        long end = count < i + FLUSH ? count : i + FLUSH;
        vf a0 = 0, a1 = 0, a2 = 0, a3 = 0;
        for (; i + 4 * W <= end; i += 4 * W) {
            vf d0 = ld(x + i) - mf, d1 = ld(x + i + W) - mf, d2 = ld(x + i + 2 * W) - mf;
            vf d3 = ld(x + i + 3 * W) - mf;
            a0 += d0 * d0;
            a1 += d1 * d1;
            a2 += d2 * d2;
            a3 += d3 * d3;
        }
        for (; i + W <= end; i += W) {
            vf d = ld(x + i) - mf;
            a0 += d * d;
        }
        wide += widen((a0 + a1) + (a2 + a3));
        for (; i < end; i++) {
            double d = (double)x[i] - m;
            total += d * d;
        }
    }
    total += dlanesum(wide);
    *mean_out = m;
    *rstd_out = 1.0 / __builtin_sqrt(total / (double)count + (double)eps);
}

/// One channel plane: y (hw) = (x - m) a + b, then SiLU when silu != 0. groupnorm_forward and the fused conv input
/// (groupnorm_silu_plane) share it, so both give the same bits.
static inline __attribute__((always_inline)) void normalize_plane(const float *xs, float *ys, long hw, float mf,
                                                                  float a, float b, int silu) {
    // subtracting the mean first keeps digits when |mean| >> std
    long i = 0;
    if (silu) {
        for (; i + W <= hw; i += W) {
            vf z = (ld(xs + i) - mf) * a + b;
            st(ys + i, vsilu(z));
        }
        if (i < hw) {
            vf z = (ldn(xs + i, hw - i) - mf) * a + b;
            stn(ys + i, vsilu(z), hw - i);
        }
    } else {
        for (; i + W <= hw; i += W) st(ys + i, (ld(xs + i) - mf) * a + b);
        if (i < hw) stn(ys + i, (ldn(xs + i, hw - i) - mf) * a + b, hw - i);
    }
}

/// A channel's scale: rstd (Double) times gamma, rounded once, as both paths use it.
static inline __attribute__((always_inline)) float channel_scale(double r, float gamma) {
    return (float)(r * (double)gamma);
}

static void groupnorm_forward(const float *x, const float *gamma, const float *beta, float *y, float *mean,
                              float *rstd, long batch, long channels, long hw, long groups, float eps, int silu) {
    const long cpg = channels / groups, gs = cpg * hw;
    for (long ng = 0; ng < batch * groups; ng++) {
        const long off = ng * gs, g = ng % groups;
        double m, r;
        statistics(x + off, gs, eps, &m, &r);
        mean[ng] = (float)m;
        rstd[ng] = (float)r;
        for (long cl = 0; cl < cpg; cl++) {
            const long c = g * cpg + cl;
            normalize_plane(x + off + cl * hw, y + off + cl * hw, hw, (float)m, channel_scale(r, gamma[c]), beta[c],
                            silu);
        }
    }
}

/// groupnorm_forward's statistics without its output: mean, rstd (N, G) and each channel's scale (N, C) for
/// groupnorm_silu_plane.
static void groupnorm_statistics(const float *x, const float *gamma, float *mean, float *rstd, float *scale,
                                 long batch, long channels, long hw, long groups, float eps) {
    const long cpg = channels / groups, gs = cpg * hw;
    for (long ng = 0; ng < batch * groups; ng++) {
        const long n = ng / groups, g = ng % groups;
        double m, r;
        statistics(x + ng * gs, gs, eps, &m, &r);
        mean[ng] = (float)m;
        rstd[ng] = (float)r;
        for (long cl = 0; cl < cpg; cl++) scale[n * channels + g * cpg + cl] = channel_scale(r, gamma[g * cpg + cl]);
    }
}

static void groupnorm_silu_plane(const float *x, long hw, float mean, float scale, float shift, float *y) {
    normalize_plane(x, y, hw, mean, scale, shift, 1);
}

/// Sum dZ and sum dZ (x - m) over one channel (hw), in Double, Float lanes flushed every FLUSH elements.
static inline __attribute__((always_inline)) void channel_sums(const float *dz, const float *xs, long hw, float m,
                                                               double *sum_d, double *sum_dx) {
    double sd = 0, sdx = 0;
    vd wideD = 0, wideDX = 0;
    long i = 0;
    while (i < hw) {
        long end = hw < i + FLUSH ? hw : i + FLUSH;
        vf accD = 0, accDX = 0, accD2 = 0, accDX2 = 0;  // two chains each, as in `statistics`
        for (; i + 2 * W <= end; i += 2 * W) {
            vf d = ld(dz + i), d2 = ld(dz + i + W);
            accD += d;
            accDX += d * (ld(xs + i) - m);
            accD2 += d2;
            accDX2 += d2 * (ld(xs + i + W) - m);
        }
        for (; i + W <= end; i += W) {
            vf d = ld(dz + i);
            accD += d;
            accDX += d * (ld(xs + i) - m);
        }
        wideD += widen(accD + accD2);
        wideDX += widen(accDX + accDX2);
        for (; i < end; i++) {
            sd += (double)dz[i];
            sdx += (double)dz[i] * ((double)xs[i] - (double)m);
        }
    }
    *sum_d = sd + dlanesum(wideD);
    *sum_dx = sdx + dlanesum(wideDX);
}

/// For one (sample, group), with z = xhat gamma + beta the affine output, xhat = (x - m) r and dZ its gradient:
///   dX = r (dxhat - mean(dxhat) - xhat mean(dxhat xhat)) with dxhat = dZ gamma,
///   dGamma += sum dZ xhat, dBeta += sum dZ.
/// Per channel only sum dZ and sum dZ (x - m) are needed; dX is then dZ (r gamma) + (x - m) bcoef + ccoef.
/// With silu, dZ = dY silu'(z) is formed once per group into scratch (the sigmoid is the costly part).
static void groupnorm_backward(const float *x, const float *gamma, const float *beta, const float *mean,
                               const float *rstd, const float *dY, float *dX, float *dGamma, float *dBeta,
                               float *scratch, long batch, long channels, long hw, long groups, int silu,
                               int overwrite) {
    if (!dX && !dGamma && !dBeta) return;
    const long cpg = channels / groups, gs = cpg * hw;
    for (long ng = 0; ng < batch * groups; ng++) {
        const long off = ng * gs, g = ng % groups;
        const float m = mean[ng], r = rstd[ng];
        const float *dZ = dY + off;
        if (silu) {
            for (long cl = 0; cl < cpg; cl++) {
                const long c = g * cpg + cl;
                const float a = r * gamma[c], b = beta[c];
                const float *xs = x + off + cl * hw, *dys = dY + off + cl * hw;
                float *dzs = scratch + cl * hw;
                long i = 0;
                for (; i + W <= hw; i += W) st(dzs + i, ld(dys + i) * vsiluprime((ld(xs + i) - m) * a + b));
                if (i < hw) {
                    const long n = hw - i;
                    stn(dzs + i, ldn(dys + i, n) * vsiluprime((ldn(xs + i, n) - m) * a + b), n);
                }
            }
            dZ = scratch;
        }
        double dxhat = 0, dxhat_xhat = 0;
        for (long cl = 0; cl < cpg; cl++) {
            const long c = g * cpg + cl;
            double sum_d, sum_dx;
            channel_sums(dZ + cl * hw, x + off + cl * hw, hw, m, &sum_d, &sum_dx);
            const double dgamma_c = (double)r * sum_dx;  // sum dZ xhat
            if (dBeta) dBeta[c] += (float)sum_d;
            if (dGamma) dGamma[c] += (float)dgamma_c;
            dxhat += (double)gamma[c] * sum_d;
            dxhat_xhat += (double)gamma[c] * dgamma_c;
        }
        if (!dX) continue;
        const double count = (double)gs, m1 = dxhat / count, m2 = dxhat_xhat / count;
        const float bcoef = (float)(-(double)r * (double)r * m2), ccoef = (float)(-(double)r * m1);
        for (long cl = 0; cl < cpg; cl++) {
            const long c = g * cpg + cl;
            const float acoef = r * gamma[c];
            const float *xs = x + off + cl * hw, *dzs = dZ + cl * hw;
            float *dxs = dX + off + cl * hw;
            long i = 0;
            if (overwrite) {
                for (; i + W <= hw; i += W) st(dxs + i, ld(dzs + i) * acoef + (ld(xs + i) - m) * bcoef + ccoef);
                for (; i < hw; i++) dxs[i] = dzs[i] * acoef + (xs[i] - m) * bcoef + ccoef;
            } else {
                for (; i + W <= hw; i += W)
                    st(dxs + i, ld(dxs + i) + (ld(dzs + i) * acoef + (ld(xs + i) - m) * bcoef + ccoef));
                for (; i < hw; i++) dxs[i] += dzs[i] * acoef + (xs[i] - m) * bcoef + ccoef;
            }
        }
    }
}

static void silu_forward(long count, const float *x, float *y) {
    long i = 0;
    for (; i + W <= count; i += W) {
        vf v = ld(x + i);
        st(y + i, vsilu(v));
    }
    if (i < count) {
        vf v = ldn(x + i, count - i);
        stn(y + i, vsilu(v), count - i);
    }
}

static void silu_backward(long count, const float *x, const float *dY, float *dX) {
    long i = 0;
    for (; i + W <= count; i += W) st(dX + i, ld(dX + i) + ld(dY + i) * vsiluprime(ld(x + i)));
    if (i < count) {
        const long n = count - i;
        stn(dX + i, ldn(dX + i, n) + ldn(dY + i, n) * vsiluprime(ldn(x + i, n)), n);
    }
}

static void exp_kernel(long count, const float *x, float *y) {
    long i = 0;
    for (; i + W <= count; i += W) st(y + i, vexp(ld(x + i)));
    if (i < count) stn(y + i, vexp(ldn(x + i, count - i)), count - i);
}

const ck_table CK_FN(ck_table) = {
    .name = CK_ISA_NAME,
    .groupnorm_forward = groupnorm_forward,
    .groupnorm_backward = groupnorm_backward,
    .groupnorm_statistics = groupnorm_statistics,
    .groupnorm_silu_plane = groupnorm_silu_plane,
    .silu_forward = silu_forward,
    .silu_backward = silu_backward,
    .exp = exp_kernel,
};
