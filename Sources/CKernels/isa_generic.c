// The kernels for any x86-64 (or other) CPU: the baseline the build targets.
#define CK_ISA generic
#define CK_ISA_NAME "generic"
#include "kernels_body.h"
