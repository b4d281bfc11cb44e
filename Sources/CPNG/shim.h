// The system libpng (1.6), through its "simplified" png_image API only. libpng reports errors by longjmp; the
// simplified API catches them itself (png_safe_execute) and returns 0 with a message, so no longjmp ever crosses
// Swift frames: a corrupt file is an error code here, never a crash. The helpers are static inline so the module
// stays a header-only system library, as CZlib is.
#ifndef CPNG_SHIM_H
#define CPNG_SHIM_H
#include <png.h>
#include <stdint.h>
#include <string.h>

// Reads the signature and IHDR (and the chunks before IDAT): fills width, height and the file's format flags
// (PNG_FORMAT_FLAG_COLOR / _ALPHA, set for tRNS too / _LINEAR for 16-bit / _COLORMAP). Returns 0 on failure, with
// the reason in image->message; libpng has then already freed its state.
static inline int cpng_begin_read(png_image *image, const void *bytes, size_t size) {
    memset(image, 0, sizeof *image);
    image->version = PNG_IMAGE_VERSION;
    return png_image_begin_read_from_memory(image, bytes, size);
}

// Decodes every row into `pixels` as 8-bit samples in `format` (PNG_FORMAT_GRAY, _GA, _RGB or _RGBA), rows of
// width * channels bytes. 16-bit files without gAMA/sRGB are taken as sRGB-encoded (PNG_IMAGE_FLAG_16BIT_sRGB), as
// every other decoder does, so 16-bit values are scaled to 8 bits instead of gamma-encoded as if linear. Sub-byte
// gray is scaled to 0...255, palettes are expanded (tRNS becomes alpha), Adam7 is de-interlaced. Frees libpng's
// state on return, success or not.
static inline int cpng_finish_read(png_image *image, uint32_t format, void *pixels) {
    image->format = format;
    image->flags |= PNG_IMAGE_FLAG_16BIT_sRGB;
    return png_image_finish_read(image, NULL, pixels, 0, NULL);
}

// Frees libpng's state after a successful cpng_begin_read that is not followed by cpng_finish_read.
static inline void cpng_abandon(png_image *image) { png_image_free(image); }

// The failure reason libpng left in the image (NUL-terminated, at most 63 characters).
static inline const char *cpng_message(const png_image *image) { return image->message; }

// Encodes 8-bit pixels (rows of width * channels bytes; format PNG_FORMAT_GRAY/_GA/_RGB/_RGBA) as a PNG into `out`,
// whose capacity is *size (use cpng_encoded_size_bound). On success *size is the file's length. Returns 0 on
// failure with the reason in `message` (64 bytes).
static inline int cpng_encode(uint32_t width, uint32_t height, uint32_t format, const void *pixels, void *out,
                              size_t *size, char *message) {
    png_image image;
    memset(&image, 0, sizeof image);
    image.version = PNG_IMAGE_VERSION;
    image.width = width;
    image.height = height;
    image.format = format;
    png_alloc_size_t bytes = *size;
    int ok = png_image_write_to_memory(&image, out, &bytes, 0, pixels, 0, NULL);
    memcpy(message, image.message, sizeof image.message);
    *size = ok ? (size_t)bytes : 0;
    return ok;
}

// An upper bound on the encoded size of a width x height image in `format` (libpng's PNG_IMAGE_PNG_SIZE_MAX).
static inline size_t cpng_encoded_size_bound(uint32_t width, uint32_t height, uint32_t format) {
    png_image image;
    memset(&image, 0, sizeof image);
    image.width = width;
    image.height = height;
    image.format = format;
    return (size_t)PNG_IMAGE_PNG_SIZE_MAX(image);
}
#endif
