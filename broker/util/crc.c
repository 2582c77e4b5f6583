/*
 * crc.c - CRC32C (Castagnoli, reflected poly 0x82F63B78) and CRC-32 (IEEE, 0xEDB88320).
 *
 * CRC32C runs through Intel ISA-L's crc32_iscsi, which picks at run time the fastest code
 * the CPU has (several interleaved crc32 / carry-less multiply streams folded together;
 * a table walk on CPUs without either). ISA-L's function neither inverts its seed nor its
 * result, so the usual pre- and post-inversion is done here, which keeps mg_crc32c resumable
 * and bit-identical to the plain definition. mg_crc32c_combine derives CRC(A||B) from
 * CRC(A), CRC(B) and |B| by multiplying CRC(A) with x^(8|B|) modulo the polynomial (the
 * method of zlib's crc32_combine), in O(log |B|) steps.
 * Tables are built once on first use (pthread_once), so there is no mutable global state
 * after initialisation.
 */
#include "util/crc.h"

#include <event2/buffer.h>
#include <isa-l/crc.h>
#include <limits.h>
#include <pthread.h>
#include <string.h>

#define MG_CRC32C_POLY 0x82F63B78u

static uint32_t ieee_table[256];
static uint32_t c_x2n[64]; /* x^(2^k) modulo the CRC32C polynomial, reflected */
static pthread_once_t tables_once = PTHREAD_ONCE_INIT;

/* a * b modulo the CRC32C polynomial; both reflected (bit 31 is x^0). */
static uint32_t mg_crc32c_mulmod(uint32_t a, uint32_t b)
{
    uint32_t prod = 0;
    while (a != 0) { /* x^i (bit 31 - i of a) times b, for each term of a */
        if (a & (1u << 31))
            prod ^= b;
        a <<= 1;
        b = (b >> 1) ^ (MG_CRC32C_POLY & (0u - (b & 1)));
    }
    return prod;
}

static void mg_crc_build_tables(void)
{
    for (uint32_t i = 0; i < 256; i++) {
        uint32_t d = i;
        for (int k = 0; k < 8; k++)
            d = (d & 1) ? (d >> 1) ^ 0xEDB88320u : d >> 1;
        ieee_table[i] = d;
    }
    c_x2n[0] = 1u << 30; /* x^1 */
    for (int k = 1; k < 64; k++)
        c_x2n[k] = mg_crc32c_mulmod(c_x2n[k - 1], c_x2n[k - 1]);
}

uint32_t mg_crc32c(uint32_t crc, const void *data, size_t len)
{
    const unsigned char *p = data;
    crc = ~crc;
    while (len > 0) { /* ISA-L takes an int length */
        int n = len > (size_t)(INT_MAX & ~63) ? (INT_MAX & ~63) : (int)len;
        crc = crc32_iscsi((unsigned char *)(uintptr_t)p, n, crc);
        p += n;
        len -= (size_t)n;
    }
    return ~crc;
}

uint32_t mg_crc32c_combine(uint32_t crc_a, uint32_t crc_b, uint64_t len_b)
{
    pthread_once(&tables_once, mg_crc_build_tables);
    /* x^(8 len_b): the bits of len_b * 8 pick the powers x^(2^k) to multiply together. */
    uint32_t shift = 1u << 31; /* x^0 */
    for (int k = 3; len_b != 0 && k < 64; len_b >>= 1, k++)
        if (len_b & 1)
            shift = mg_crc32c_mulmod(c_x2n[k], shift);
    return mg_crc32c_mulmod(shift, crc_a) ^ crc_b;
}

void mg_evbuffer_chunks(struct evbuffer *buf, size_t offset, size_t len, mg_chunk_fn fn, void *ctx)
{
    struct evbuffer_ptr pos;
    if (evbuffer_ptr_set(buf, &pos, offset, EVBUFFER_PTR_SET) < 0)
        return;
    while (len > 0) {
        struct evbuffer_iovec v[8];
        int n = evbuffer_peek(buf, (ev_ssize_t)len, &pos, v, 8);
        if (n <= 0)
            break;
        size_t done = 0;
        for (int i = 0; i < n && i < 8 && len > 0; i++) {
            size_t take = v[i].iov_len < len ? v[i].iov_len : len;
            fn(ctx, v[i].iov_base, take);
            len -= take;
            done += take;
        }
        if (evbuffer_ptr_set(buf, &pos, done, EVBUFFER_PTR_ADD) < 0)
            break;
    }
}

static void mg_crc32c_chunk(void *ctx, const void *p, size_t n)
{
    uint32_t *crc = ctx;
    *crc = mg_crc32c(*crc, p, n);
}

uint32_t mg_crc32c_evbuffer(uint32_t crc, struct evbuffer *buf, size_t offset, size_t len)
{
    mg_evbuffer_chunks(buf, offset, len, mg_crc32c_chunk, &crc);
    return crc;
}

uint32_t mg_crc32(uint32_t crc, const void *data, size_t len)
{
    pthread_once(&tables_once, mg_crc_build_tables);
    const uint8_t *p = data;
    crc = ~crc;
    while (len--)
        crc = (crc >> 8) ^ ieee_table[(crc ^ *p++) & 0xff];
    return ~crc;
}
