/*
 * compress.h - the payload codecs of Pulsar's MessageMetadata.compression (LZ4, ZLIB, ZSTD,
 * SNAPPY), framed as Pulsar's CompressionCodec* classes frame them, on Debian's libraries:
 *   LZ4     one raw LZ4 block (liblz4's LZ4_compress_default, not the LZ4 frame format);
 *   ZLIB    a zlib stream with its 2-byte header and Adler-32 trailer (java.util.zip.Deflater
 *           with nowrap = false);
 *   ZSTD    one zstd frame, level 3 (Pulsar's ZSTD_COMPRESSION_LEVEL);
 *   SNAPPY  snappy's raw format (varint length + elements), not the framing format.
 * The codec values are the protocol's CompressionType numbers.
 *
 * Decompression runs on bytes a client sent: the declared uncompressed size is the hard bound
 * (the caller refuses anything over its maximum message size before any allocation), and the
 * output must be exactly that size, or the payload is refused with a reason.
 */
#ifndef MG_COMPRESS_H
#define MG_COMPRESS_H

#include <stddef.h>
#include <stdint.h>

/* CompressionType of PulsarApi.proto */
enum mg_codec {
    MG_CODEC_NONE = 0,
    MG_CODEC_LZ4 = 1,
    MG_CODEC_ZLIB = 2,
    MG_CODEC_ZSTD = 3,
    MG_CODEC_SNAPPY = 4,
};

/* "NONE", "LZ4", "ZLIB", "ZSTD", "SNAPPY"; "?" for another value. */
const char *mg_codec_name(int codec);

/* The codec named name (case-insensitive, as pulsar-perf's CompressionType), or -1. */
int mg_codec_parse(const char *name);

/* Decompress the n bytes at in, compressed with codec, that declare size uncompressed bytes.
 * Refused (-MG_ETOOBIG) when size > max before anything is allocated; refused (-MG_EPROTO)
 * when the bytes are corrupt or do not decompress to exactly size bytes; -MG_ENOTSUP for an
 * unknown codec. On success *out (mg_malloc'd, at least 1 byte) holds the size bytes. err
 * (may be NULL) gets the reason of a refusal. */
int mg_decompress(int codec, const uint8_t *in, size_t n, size_t size, size_t max, uint8_t **out,
                  char *err, size_t errlen);

/* Compress the n bytes at in with codec: *out (mg_malloc'd) holds *outn bytes. NONE copies.
 * -MG_ENOTSUP for an unknown codec, -MG_ETOOBIG when n does not fit the codec (LZ4 and
 * SNAPPY take at most INT32_MAX / UINT32_MAX bytes). SNAPPY's library is loaded on its first
 * use; when it cannot be, both calls refuse SNAPPY with -MG_ENOTSUP. */
int mg_compress(int codec, const uint8_t *in, size_t n, uint8_t **out, size_t *outn);

#endif
