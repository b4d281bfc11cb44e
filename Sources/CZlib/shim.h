// The system zlib: gzip reading for datasets, deflate + crc32 for PNG and checksums.
#ifndef CZLIB_SHIM_H
#define CZLIB_SHIM_H
#include <zlib.h>
#endif
