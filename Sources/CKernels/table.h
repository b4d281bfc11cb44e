// The per-instruction-set function table: kernels_body.h fills one per isa_*.c, dispatch.c picks one.
#ifndef CKERNELS_TABLE_H
#define CKERNELS_TABLE_H

typedef struct {
    const char *name;
    void (*groupnorm_forward)(const float *, const float *, const float *, float *, float *, float *,
                              long, long, long, long, float, int);
    void (*groupnorm_backward)(const float *, const float *, const float *, const float *, const float *,
                               const float *, float *, float *, float *, float *, long, long, long, long, int, int);
    void (*groupnorm_statistics)(const float *, const float *, float *, float *, float *, long, long, long, long,
                                 float);
    void (*groupnorm_silu_plane)(const float *, long, float, float, float, float *);
    void (*silu_forward)(long, const float *, float *);
    void (*silu_backward)(long, const float *, const float *, float *);
    void (*exp)(long, const float *, float *);
} ck_table;

extern const ck_table ck_table_generic;
#if defined(__x86_64__)
extern const ck_table ck_table_avx2;
extern const ck_table ck_table_avx512;
#endif

#endif
