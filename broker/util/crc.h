/*
 * crc.h - the two CRCs the protocols use.
 *
 * mg_crc32c: Castagnoli (Pulsar frame checksums, BookKeeper CRC32C digests). Resumable:
 *   crc = mg_crc32c(0, a, n); crc = mg_crc32c(crc, b, m) equals one call over a||b.
 *   Intel ISA-L's crc32_iscsi underneath (the fastest code the CPU runs, chosen at run time).
 * mg_crc32c_combine: the CRC32C of a||b from crc_a = CRC32C(a), crc_b = CRC32C(b) and
 *   len_b = |b|, without the bytes: a checksum already computed over a tail need not be
 *   computed again when a header is put in front of it.
 * mg_crc32: zlib/IEEE CRC-32 (Pulsar bundle hashing), resumable the same way.
 */
#ifndef MG_CRC_H
#define MG_CRC_H

#include <stddef.h>
#include <stdint.h>

struct evbuffer;

uint32_t mg_crc32c(uint32_t crc, const void *data, size_t len);
uint32_t mg_crc32c_combine(uint32_t crc_a, uint32_t crc_b, uint64_t len_b);
/* CRC32C over len bytes of buf starting at offset, without copying or draining. */
uint32_t mg_crc32c_evbuffer(uint32_t crc, struct evbuffer *buf, size_t offset, size_t len);
uint32_t mg_crc32(uint32_t crc, const void *data, size_t len);

/* Pass len bytes of buf from offset to fn, chunk by chunk in order, without copying or
 * draining (stops early if buf is shorter): the walk of mg_crc32c_evbuffer, for the other
 * checksums and digests over a buffer. */
typedef void (*mg_chunk_fn)(void *ctx, const void *p, size_t n);
void mg_evbuffer_chunks(struct evbuffer *buf, size_t offset, size_t len, mg_chunk_fn fn, void *ctx);

#endif
