// OpenBLAS's cblas plus the runtime controls the product needs: thread count and the name of the kernel
// set ("core") OpenBLAS picked for this CPU at load time.
#ifndef CBLAS_SHIM_H
#define CBLAS_SHIM_H
#include <cblas.h>

void openblas_set_num_threads(int num_threads);
int openblas_get_num_threads(void);
char *openblas_get_corename(void);
char *openblas_get_config(void);
#endif
