/*
 * crc.h - the two CRCs the protocols use.
 *
 * mg_crc32c: Castagnoli (Pulsar frame checksums, BookKeeper CRC32C digests). Resumable:
 *   crc = mg_crc32c(0, a, n); crc = mg_crc32c(crc, b, m) equals one call over a||b.
 *   Uses SSE4.2 when the CPU has it, else slicing-by-8 tables.
 * mg_crc32: zlib/IEEE CRC-32 (Pulsar bundle hashing), resumable the same way.
 */
#ifndef MG_CRC_H
#define MG_CRC_H

#include <stddef.h>
#include <stdint.h>

struct evbuffer;

uint32_t mg_crc32c(uint32_t crc, const void *data, size_t len);
/* CRC32C over len bytes of buf starting at offset, without copying or draining. */
uint32_t mg_crc32c_evbuffer(uint32_t crc, struct evbuffer *buf, size_t offset, size_t len);
uint32_t mg_crc32(uint32_t crc, const void *data, size_t len);

/* Pass len bytes of buf from offset to fn, chunk by chunk in order, without copying or
 * draining (stops early if buf is shorter): the walk of mg_crc32c_evbuffer, for the other
 * checksums and digests over a buffer. */
typedef void (*mg_chunk_fn)(void *ctx, const void *p, size_t n);
void mg_evbuffer_chunks(struct evbuffer *buf, size_t offset, size_t len, mg_chunk_fn fn, void *ctx);

#endif
