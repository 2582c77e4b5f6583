/*
 * compress.c - Pulsar's payload codecs on liblz4, zlib, libzstd and libsnappy (compress.h).
 *
 * Every decoder writes into a buffer of exactly the declared size and checks that the
 * decoder produced exactly that many bytes: the libraries' bounded entry points
 * (LZ4_decompress_safe, uncompress, ZSTD_decompress, snappy_uncompress) never write past it,
 * so a lying size or a corrupt payload is a refusal, never an overrun or a large allocation.
 *
 * libsnappy is loaded (dlopen) on the first SNAPPY payload, not linked: it is a C++ library
 * that brings libstdc++ and libgcc_s, whose loading and relocation cost every start ~0.5 ms
 * of CPU (docs/design.md §10) though a broker rarely meets a SNAPPY payload. The load runs
 * once (pthread_once); when it fails, SNAPPY is refused (-MG_ENOTSUP) with dlerror()'s reason,
 * logged once.
 */
#include "util/compress.h"

#include "util/alloc.h"
#include "util/err.h"
#include "util/log.h"

#include <dlfcn.h>
#include <limits.h>
#include <lz4.h>
#include <pthread.h>
#include <snappy-c.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>
#include <zlib.h>
#include <zstd.h>

#define CODEC_ZSTD_LEVEL 3 /* Pulsar's CompressionCodecZstd.ZSTD_COMPRESSION_LEVEL */

/* the soname of Debian's libsnappy1v5 (snappy-c.h's ABI) */
#define CODEC_SNAPPY_SONAME "libsnappy.so.1"

/* snappy-c.h's entry points, resolved by mg_codec_snappy_load; all NULL when it failed */
static struct {
    snappy_status (*compress)(const char *, size_t, char *, size_t *);
    snappy_status (*uncompress)(const char *, size_t, char *, size_t *);
    size_t (*max_compressed_length)(size_t);
    snappy_status (*uncompressed_length)(const char *, size_t, size_t *);
    char why[256]; /* why the load failed */
} codec_snappy;
static pthread_once_t codec_snappy_once = PTHREAD_ONCE_INIT;

static void mg_codec_snappy_load(void)
{
    void *h = dlopen(CODEC_SNAPPY_SONAME, RTLD_NOW | RTLD_LOCAL);
    if (h) {
        /* dlsym's POSIX idiom for function pointers (a plain cast warns under -Wpedantic) */
        *(void **)&codec_snappy.compress = dlsym(h, "snappy_compress");
        *(void **)&codec_snappy.uncompress = dlsym(h, "snappy_uncompress");
        *(void **)&codec_snappy.max_compressed_length = dlsym(h, "snappy_max_compressed_length");
        *(void **)&codec_snappy.uncompressed_length = dlsym(h, "snappy_uncompressed_length");
        if (codec_snappy.compress && codec_snappy.uncompress &&
            codec_snappy.max_compressed_length && codec_snappy.uncompressed_length)
            return;
    }
    const char *e = dlerror();
    snprintf(codec_snappy.why, sizeof codec_snappy.why, "%s", e ? e : "a symbol is missing");
    codec_snappy.compress = NULL;
    codec_snappy.uncompress = NULL;
    codec_snappy.max_compressed_length = NULL;
    codec_snappy.uncompressed_length = NULL;
    MG_ERROR("codec", "SNAPPY payloads are refused: cannot load %s: %s", CODEC_SNAPPY_SONAME,
             codec_snappy.why);
}

/* 1 when libsnappy is loaded (loading it on the first call), 0 when it cannot be */
static int mg_codec_snappy_ready(void)
{
    pthread_once(&codec_snappy_once, mg_codec_snappy_load);
    return codec_snappy.compress != NULL;
}

static const char *const codec_names[] = {"NONE", "LZ4", "ZLIB", "ZSTD", "SNAPPY"};

const char *mg_codec_name(int codec)
{
    if (codec < 0 || codec > MG_CODEC_SNAPPY)
        return "?";
    return codec_names[codec];
}

int mg_codec_parse(const char *name)
{
    for (int i = 0; i <= MG_CODEC_SNAPPY; i++)
        if (name && strcasecmp(name, codec_names[i]) == 0)
            return i;
    return -1;
}

__attribute__((format(printf, 4, 5))) static int mg_codec_refuse(int rc, char *err, size_t errlen,
                                                                 const char *fmt, ...)
{
    if (err && errlen) {
        va_list ap;
        va_start(ap, fmt);
        vsnprintf(err, errlen, fmt, ap);
        va_end(ap);
    }
    return rc;
}

/* The decoded length of in, or -1 when it is not a valid payload of codec for exactly size
 * bytes (out has room for size bytes, at least 1). */
static long long mg_codec_decode(int codec, const uint8_t *in, size_t n, size_t size, uint8_t *out)
{
    switch (codec) {
    case MG_CODEC_LZ4: {
        if (n > INT_MAX || size > INT_MAX)
            return -1;
        int r = LZ4_decompress_safe((const char *)in, (char *)out, (int)n, (int)size);
        return r;
    }
    case MG_CODEC_ZLIB: {
        uLongf dl = (uLongf)size;
        uLong sl = (uLong)n;
        /* uncompress2 reports Z_BUF_ERROR for a stream longer than size, Z_DATA_ERROR for
         * a corrupt one and for one cut short (with dl = what was produced). */
        int r = uncompress2(out, &dl, in, &sl);
        if (r != Z_OK || sl != n)
            return -1;
        return (long long)dl;
    }
    case MG_CODEC_ZSTD: {
        size_t r = ZSTD_decompress(out, size, in, n);
        if (ZSTD_isError(r))
            return -1;
        return (long long)r;
    }
    case MG_CODEC_SNAPPY: {
        size_t dl = 0;
        if (codec_snappy.uncompressed_length((const char *)in, n, &dl) != SNAPPY_OK || dl != size)
            return -1;
        if (codec_snappy.uncompress((const char *)in, n, (char *)out, &dl) != SNAPPY_OK)
            return -1;
        return (long long)dl;
    }
    default:
        return -1;
    }
}

int mg_decompress(int codec, const uint8_t *in, size_t n, size_t size, size_t max, uint8_t **out,
                  char *err, size_t errlen)
{
    *out = NULL;
    if (codec < MG_CODEC_NONE || codec > MG_CODEC_SNAPPY)
        return mg_codec_refuse(-MG_ENOTSUP, err, errlen, "unknown compression type %d", codec);
    if (size > max)
        return mg_codec_refuse(-MG_ETOOBIG, err, errlen,
                               "%s payload declares %zu uncompressed bytes, over the maximum %zu",
                               mg_codec_name(codec), size, max);
    if (codec == MG_CODEC_SNAPPY && !mg_codec_snappy_ready())
        return mg_codec_refuse(-MG_ENOTSUP, err, errlen, "SNAPPY codec unavailable: %s",
                               codec_snappy.why);
    uint8_t *b = mg_malloc(size ? size : 1);
    long long got;
    if (codec == MG_CODEC_NONE) {
        got = (long long)n;
        if (n == size)
            memcpy(b, in, n);
    } else {
        got = mg_codec_decode(codec, in, n, size, b);
    }
    if (got < 0 || (unsigned long long)got != size) {
        mg_free(b);
        return mg_codec_refuse(
            -MG_EPROTO, err, errlen,
            "%s payload of %zu bytes does not decompress to its declared %zu bytes",
            mg_codec_name(codec), n, size);
    }
    *out = b;
    return 0;
}

int mg_compress(int codec, const uint8_t *in, size_t n, uint8_t **out, size_t *outn)
{
    *out = NULL;
    *outn = 0;
    size_t cap;
    switch (codec) {
    case MG_CODEC_NONE:
        cap = n;
        break;
    case MG_CODEC_LZ4:
        if (n > LZ4_MAX_INPUT_SIZE)
            return -MG_ETOOBIG;
        cap = (size_t)LZ4_compressBound((int)n);
        break;
    case MG_CODEC_ZLIB:
        cap = compressBound((uLong)n);
        break;
    case MG_CODEC_ZSTD:
        cap = ZSTD_compressBound(n);
        break;
    case MG_CODEC_SNAPPY:
        if (n > UINT32_MAX)
            return -MG_ETOOBIG;
        if (!mg_codec_snappy_ready())
            return -MG_ENOTSUP;
        cap = codec_snappy.max_compressed_length(n);
        break;
    default:
        return -MG_ENOTSUP;
    }
    uint8_t *b = mg_malloc(cap ? cap : 1);
    size_t got = 0;
    int ok = 1;
    switch (codec) {
    case MG_CODEC_NONE:
        if (n)
            memcpy(b, in, n);
        got = n;
        break;
    case MG_CODEC_LZ4: {
        int r = LZ4_compress_default((const char *)in, (char *)b, (int)n, (int)cap);
        ok = r > 0 || n == 0;
        got = r > 0 ? (size_t)r : 0;
        break;
    }
    case MG_CODEC_ZLIB: {
        uLongf dl = (uLongf)cap;
        ok = compress2(b, &dl, in, (uLong)n, Z_DEFAULT_COMPRESSION) == Z_OK;
        got = dl;
        break;
    }
    case MG_CODEC_ZSTD: {
        size_t r = ZSTD_compress(b, cap, in, n, CODEC_ZSTD_LEVEL);
        ok = !ZSTD_isError(r);
        got = ok ? r : 0;
        break;
    }
    case MG_CODEC_SNAPPY: {
        size_t dl = cap;
        ok = codec_snappy.compress((const char *)in, n, (char *)b, &dl) == SNAPPY_OK;
        got = dl;
        break;
    }
    }
    if (!ok) { /* the bounds above make this unreachable short of memory */
        mg_free(b);
        return -MG_ENOMEM;
    }
    *out = b;
    *outn = got;
    return 0;
}
