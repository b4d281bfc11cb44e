// The system libjpeg-turbo through its TurboJPEG API. libjpeg reports errors by longjmp; TurboJPEG catches them
// inside its own functions and returns -1 with a message, so no longjmp ever crosses Swift frames: a corrupt file is
// an error code here, never a crash. The helpers are static inline so the module stays a header-only system
// library, as CZlib is.
#ifndef CTURBOJPEG_SHIM_H
#define CTURBOJPEG_SHIM_H
#include <stddef.h>
#include <stdint.h>
#include <string.h>
#include <turbojpeg.h>

// Copies TurboJPEG's last message for `handle` into message[0..<256].
static inline void cjpeg_copy_message(tjhandle handle, char *message) {
    const char *text = handle ? tjGetErrorStr2(handle) : tjGetErrorStr2(NULL);
    strncpy(message, text ? text : "unknown TurboJPEG error", 255);
    message[255] = 0;
}

// Reads the frame header: width, height and the JPEG colour space (TJCS_YCbCr, _GRAY, _RGB, _CMYK, _YCCK).
// Returns 0 on success, -1 with message[256] filled on failure.
static inline int cjpeg_read_header(const unsigned char *bytes, size_t size, int *width, int *height,
                                    int *colorspace, char *message) {
    tjhandle handle = tjInitDecompress();
    if (!handle) { cjpeg_copy_message(NULL, message); return -1; }
    int subsampling = 0;
    int status = tjDecompressHeader3(handle, bytes, (unsigned long)size, width, height, &subsampling, colorspace);
    // A warning (e.g. junk bytes between header markers) still leaves a usable header; cjpeg_decode judges it.
    if (status != 0 && tjGetErrorCode(handle) == TJERR_WARNING && *width > 0 && *height > 0) status = 0;
    if (status != 0) cjpeg_copy_message(handle, message);
    tjDestroy(handle);
    return status;
}

// Decodes into `pixels` (height rows of width * channels bytes) as TJPF_GRAY (1 byte/pixel) or TJPF_RGB (3), with
// the accurate integer IDCT and fancy upsampling, which is what Pillow asks libjpeg for. Progressive files with an
// unreasonable number of scans are refused (TJFLAG_LIMITSCANS). Returns 0 on success; -1 on a fatal error; 1 when
// the image decoded but libjpeg warned (e.g. "Premature end of JPEG file": the missing part is filled with gray).
// message[256] holds the error or warning text.
static inline int cjpeg_decode(const unsigned char *bytes, size_t size, unsigned char *pixels, int width,
                               int height, int pixelFormat, char *message) {
    tjhandle handle = tjInitDecompress();
    if (!handle) { cjpeg_copy_message(NULL, message); return -1; }
    int status = tjDecompress2(handle, bytes, (unsigned long)size, pixels, width, 0, height, pixelFormat,
                               TJFLAG_ACCURATEDCT | TJFLAG_LIMITSCANS);
    int result = 0;
    if (status != 0) {
        cjpeg_copy_message(handle, message);
        result = tjGetErrorCode(handle) == TJERR_WARNING ? 1 : -1;
    }
    tjDestroy(handle);
    return result;
}
#endif
