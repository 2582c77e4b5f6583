/*
 * bytes.h - big-endian integers in byte buffers, the byte order of every protocol and file
 * format here (Pulsar and BookKeeper framing, the bookie's journal, entry logs and index).
 *
 * mg_put_be16/32/64 write an unsigned integer at p; mg_get_be16/32/64 read one. p need not
 * be aligned and the caller guarantees the 2, 4 or 8 bytes are there. Signed values go
 * through a cast: (uint64_t)ledger_id, (int64_t)mg_get_be64(p).
 */
#ifndef MG_BYTES_H
#define MG_BYTES_H

#include <stdint.h>

static inline void mg_put_be16(uint8_t *p, uint16_t v)
{
    p[0] = (uint8_t)(v >> 8);
    p[1] = (uint8_t)v;
}

static inline void mg_put_be32(uint8_t *p, uint32_t v)
{
    p[0] = (uint8_t)(v >> 24);
    p[1] = (uint8_t)(v >> 16);
    p[2] = (uint8_t)(v >> 8);
    p[3] = (uint8_t)v;
}

static inline void mg_put_be64(uint8_t *p, uint64_t v)
{
    mg_put_be32(p, (uint32_t)(v >> 32));
    mg_put_be32(p + 4, (uint32_t)v);
}

static inline uint16_t mg_get_be16(const uint8_t *p)
{
    return (uint16_t)((unsigned)p[0] << 8 | p[1]);
}

static inline uint32_t mg_get_be32(const uint8_t *p)
{
    return (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8 | (uint32_t)p[3];
}

static inline uint64_t mg_get_be64(const uint8_t *p)
{
    return (uint64_t)mg_get_be32(p) << 32 | mg_get_be32(p + 4);
}

#endif
