// Packing for the bf16 GEMM, compiled once per instruction set by sbgemm_pack.c (SB_PACK_ISA names the copy):
// fp32 operands -> bf16 rounded by ck_bf16_round_bits, laid out as sbgemm.h says. The inner loops run on 16-lane
// vectors (one zmm with AVX-512, four xmm on generic x86-64): 16 columns of a panel, or 16 pairs of a row.
// B: (k, n) or, transposed, (n, k) -> ceil(n / 16) panels of (ceil(k / 2), 16) words of two bf16.
// A: (m, k) or, transposed, (k, m) -> panels of 8 rows of (ceil(k / 2), 8) pairs, as words or as two floats.
// Vectors passed between these static, always-inlined helpers never cross an ABI boundary.
#pragma clang diagnostic ignored "-Wpsabi"

#define SB_CAT2(a, b) a##_##b
#define SB_CAT(a, b) SB_CAT2(a, b)
#define SB_FN(name) SB_CAT(name, SB_PACK_ISA)

typedef unsigned int SB_FN(vu) __attribute__((ext_vector_type(16)));
#define VU SB_FN(vu)

static inline __attribute__((always_inline)) VU SB_FN(ld)(const float *p) {
    VU v;
    __builtin_memcpy(&v, p, sizeof v);
    return v;
}

/// 16 floats -> their bf16 roundings, each in the TOP half of a lane (as a float with the low bits zero).
static inline __attribute__((always_inline)) VU SB_FN(round_hi)(VU u) {
    const VU rounded = (u + 0x7fffu + ((u >> 16) & 1u)) & 0xffff0000u;
    const VU nan = (u | 0x00400000u) & 0xffff0000u;
    const VU zero = u & 0x80000000u;
    VU out = (u & 0x7fffffffu) > 0x7f800000u ? nan : rounded;
    return (u & 0x7f800000u) == 0 ? zero : out;
}

/// The first n (< 16) floats at p, zeros after: partial panels and odd rows reuse the vector code.
static inline __attribute__((always_inline)) VU SB_FN(ldn)(const float *p, long n) {
    VU v = 0;
    for (long i = 0; i < n; i++) __builtin_memcpy((unsigned int *)&v + i, p + i, 4);
    return v;
}

/// count pairs of floats (x[2i], x[2i + 1]) -> count words, each two bf16 (low half from x[2i]); out may alias x.
static inline __attribute__((always_inline)) void SB_FN(narrow_pairs)(const float *x, long count, uint32_t *out) {
    long i = 0;
    for (; i + SB_NP <= count; i += SB_NP) {
        const VU x0 = SB_FN(round_hi)(SB_FN(ld)(x + 2 * i)), x1 = SB_FN(round_hi)(SB_FN(ld)(x + 2 * i + SB_NP));
        const VU even = __builtin_shufflevector(x0, x1, 0, 2, 4, 6, 8, 10, 12, 14, 16, 18, 20, 22, 24, 26, 28, 30);
        const VU odd = __builtin_shufflevector(x0, x1, 1, 3, 5, 7, 9, 11, 13, 15, 17, 19, 21, 23, 25, 27, 29, 31);
        const VU w = (even >> 16) | odd;
        __builtin_memcpy(out + i, &w, sizeof w);
    }
    for (; i < count; i++) out[i] = (uint32_t)ck_bf16_of(x[2 * i]) | (uint32_t)ck_bf16_of(x[2 * i + 1]) << 16;
}

static void SB_FN(pack_b)(int transB, long k, long n, const float *b, long ldb, uint32_t *out) {
    const long kp = sb_kpairs(k), panels = sb_bpanels(n);
    if (!transB) {
        // rows 2p and 2p + 1 interleaved: low half from row 2p, high half from row 2p + 1
        for (long p = 0; p < kp; p++) {
            const float *r0 = b + 2 * p * ldb, *r1 = r0 + ldb;
            const int odd = 2 * p + 1 < k;
            for (long jp = 0; jp < panels; jp++) {
                const long j0 = jp * SB_NP, cols = n - j0 < SB_NP ? n - j0 : SB_NP;
                VU lo, hi = 0;
                if (cols == SB_NP) {
                    lo = SB_FN(ld)(r0 + j0);
                    if (odd) hi = SB_FN(ld)(r1 + j0);
                } else {
                    lo = SB_FN(ldn)(r0 + j0, cols);
                    if (odd) hi = SB_FN(ldn)(r1 + j0, cols);
                }
                const VU w = (SB_FN(round_hi)(lo) >> 16) | SB_FN(round_hi)(hi);
                __builtin_memcpy(out + (jp * kp + p) * SB_NP, &w, sizeof w);
            }
        }
        return;
    }
    // transposed: row j of the stored matrix is column j of B and its pairs are neighbours (2p, 2p + 1). Pairs
    // are first moved as 64-bit units into (p, j) order in a small L1 buffer, then rounded and narrowed to words
    // in one contiguous vector pass.
    enum { PB = 64 };
    uint64_t tmp[PB * SB_NP];
    for (long jp = 0; jp < panels; jp++) {
        const long j0 = jp * SB_NP, cols = n - j0 < SB_NP ? n - j0 : SB_NP;
        uint32_t *panel = out + jp * kp * SB_NP;
        for (long p0 = 0; p0 < kp; p0 += PB) {
            const long np = kp - p0 < PB ? kp - p0 : PB;
            for (long j = 0; j < SB_NP; j++) {
                if (j >= cols) {
                    for (long p = 0; p < np; p++) tmp[p * SB_NP + j] = 0;
                    continue;
                }
                const float *row = b + (j0 + j) * ldb + 2 * p0;
                const long whole = (k - 2 * p0) / 2 < np ? (k - 2 * p0) / 2 : np;
                for (long p = 0; p < whole; p++) __builtin_memcpy(tmp + p * SB_NP + j, row + 2 * p, 8);
                if (whole < np) {  // odd k: the last pair's second half is zero
                    uint32_t u;
                    __builtin_memcpy(&u, row + 2 * whole, 4);
                    tmp[whole * SB_NP + j] = u;
                }
            }
            SB_FN(narrow_pairs)((const float *)tmp, np * SB_NP, panel + p0 * SB_NP);
        }
    }
}

/// A: panels of SB_MR (= 8) rows; slot (p, r) holds the pair (a[r][2p], a[r][2p + 1]) as two floats (f32 layout)
/// or one word (bf16 layout). The pairs are first laid out as floats (64-bit moves; transposed A, stored (k, m),
/// interleaves 8 neighbours of rows 2p and 2p + 1), then rounded in place, or narrowed in place to words.
static void SB_FN(pack_a)(int alayout, int transA, long m, long k, const float *a, long lda, char *base) {
    const long kp = sb_kpairs(k), panels = (m + SB_MR - 1) / SB_MR;
    float *f = (float *)base;
    for (long ip = 0; ip < panels; ip++) {
        const long i0 = ip * SB_MR, rows = m - i0 < SB_MR ? m - i0 : SB_MR;
        float *panel = f + ip * kp * SB_MR * 2;
        if (rows < SB_MR) __builtin_memset(panel, 0, (size_t)(kp * SB_MR * 2) * sizeof(float));
        if (transA) {
            // rows 2p and 2p + 1 of the stored (k, m) matrix, 8 neighbours each, interleaved
            for (long p = 0; p < kp; p++) {
                const float *r0 = a + 2 * p * lda + i0, *r1 = 2 * p + 1 < k ? r0 + lda : 0;
                float *dst = panel + p * SB_MR * 2;
                for (long r = 0; r < rows; r++) {
                    dst[2 * r] = r0[r];
                    dst[2 * r + 1] = r1 ? r1[r] : 0;
                }
            }
            continue;
        }
        for (long r = 0; r < rows; r++) {
            const float *row = a + (i0 + r) * lda;
            for (long p = 0; p < k / 2; p++) __builtin_memcpy(panel + (p * SB_MR + r) * 2, row + 2 * p, 8);
            if (k % 2) {
                panel[((kp - 1) * SB_MR + r) * 2] = row[k - 1];
                panel[((kp - 1) * SB_MR + r) * 2 + 1] = 0;
            }
        }
    }
    const long total = panels * kp * SB_MR;  // pairs
    if (alayout == SB_A_BF16) {
        SB_FN(narrow_pairs)(f, total, (uint32_t *)base);
        return;
    }
    long i = 0;
    for (; i + SB_NP <= 2 * total; i += SB_NP) {
        const VU x = SB_FN(round_hi)(SB_FN(ld)(f + i));
        __builtin_memcpy(f + i, &x, sizeof x);
    }
    for (; i < 2 * total; i++) f[i] = ck_f32_of_bf16(ck_bf16_of(f[i]));
}


/// y (count) = x rounded to bf16, kept as floats (operands pre-rounded for an fp32 GEMM); y may alias x.
static void SB_FN(round_f32)(long count, const float *x, float *y) {
    long i = 0;
    for (; i + SB_NP <= count; i += SB_NP) {
        const VU v = SB_FN(round_hi)(SB_FN(ld)(x + i));
        __builtin_memcpy(y + i, &v, sizeof v);
    }
    for (; i < count; i++) y[i] = ck_f32_of_bf16(ck_bf16_of(x[i]));
}

typedef unsigned short SB_FN(vh) __attribute__((ext_vector_type(16)));

/// x (count) floats -> out (count) bf16. out may alias x: element i goes to byte 2i, which only the already-read
/// elements below i occupied (the vector step reads 64 bytes before it writes the first 32 of them).
static void SB_FN(store_bf16)(long count, const float *x, uint16_t *out) {
    long i = 0;
    for (; i + SB_NP <= count; i += SB_NP) {
        const SB_FN(vh) h = __builtin_convertvector(SB_FN(round_hi)(SB_FN(ld)(x + i)) >> 16, SB_FN(vh));
        __builtin_memcpy(out + i, &h, sizeof h);
    }
    for (; i < count; i++) out[i] = ck_bf16_of(x[i]);
}

/// in (count) bf16 -> y (count) floats. y may alias in: run from the end, element i's float (bytes 4i..4i+3)
/// only covers bf16 elements 2i and 2i + 1, which are at or above i and already converted.
static void SB_FN(load_bf16)(long count, const uint16_t *in, float *y) {
    long i = count;
    while (i % SB_NP) {
        i--;
        y[i] = ck_f32_of_bf16(in[i]);
    }
    while (i > 0) {
        i -= SB_NP;
        SB_FN(vh) h;
        __builtin_memcpy(&h, in + i, sizeof h);
        const VU v = __builtin_convertvector(h, VU) << 16;
        __builtin_memcpy(y + i, &v, sizeof v);
    }
}

#undef VU
