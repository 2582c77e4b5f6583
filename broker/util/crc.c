/*
 * crc.c - CRC32C (Castagnoli, reflected poly 0x82F63B78) and CRC-32 (IEEE, 0xEDB88320).
 * Tables are built once on first use (pthread_once), so there is no mutable global state
 * after initialisation.
 */
#include "util/crc.h"

#include <event2/buffer.h>
#include <pthread.h>
#include <string.h>

static uint32_t c_table[8][256];
static uint32_t ieee_table[256];
static int have_sse42;
static pthread_once_t tables_once = PTHREAD_ONCE_INIT;

static void mg_crc_build_tables(void)
{
    for (uint32_t i = 0; i < 256; i++) {
        uint32_t c = i, d = i;
        for (int k = 0; k < 8; k++) {
            c = (c & 1) ? (c >> 1) ^ 0x82F63B78u : c >> 1;
            d = (d & 1) ? (d >> 1) ^ 0xEDB88320u : d >> 1;
        }
        c_table[0][i] = c;
        ieee_table[i] = d;
    }
    for (int t = 1; t < 8; t++)
        for (int i = 0; i < 256; i++)
            c_table[t][i] = (c_table[t - 1][i] >> 8) ^ c_table[0][c_table[t - 1][i] & 0xff];
#if defined(__x86_64__)
    __builtin_cpu_init();
    have_sse42 = __builtin_cpu_supports("sse4.2");
#endif
}

#if defined(__x86_64__)
__attribute__((target("sse4.2"))) static uint32_t mg_crc32c_hw(uint32_t crc, const uint8_t *p,
                                                               size_t len)
{
    uint64_t c = crc;
    while (len >= 8) {
        uint64_t v;
        memcpy(&v, p, 8);
        c = __builtin_ia32_crc32di(c, v);
        p += 8;
        len -= 8;
    }
    uint32_t c32 = (uint32_t)c;
    while (len--)
        c32 = __builtin_ia32_crc32qi(c32, *p++);
    return c32;
}
#endif

static uint32_t mg_crc32c_sw(uint32_t crc, const uint8_t *p, size_t len)
{
    while (len >= 8) {
        uint32_t lo =
            ((uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24) ^
            crc;
        uint32_t hi =
            (uint32_t)p[4] | (uint32_t)p[5] << 8 | (uint32_t)p[6] << 16 | (uint32_t)p[7] << 24;
        crc = c_table[7][lo & 0xff] ^ c_table[6][(lo >> 8) & 0xff] ^ c_table[5][(lo >> 16) & 0xff] ^
              c_table[4][lo >> 24] ^ c_table[3][hi & 0xff] ^ c_table[2][(hi >> 8) & 0xff] ^
              c_table[1][(hi >> 16) & 0xff] ^ c_table[0][hi >> 24];
        p += 8;
        len -= 8;
    }
    while (len--)
        crc = (crc >> 8) ^ c_table[0][(crc ^ *p++) & 0xff];
    return crc;
}

uint32_t mg_crc32c(uint32_t crc, const void *data, size_t len)
{
    pthread_once(&tables_once, mg_crc_build_tables);
    crc = ~crc;
#if defined(__x86_64__)
    if (have_sse42)
        return ~mg_crc32c_hw(crc, data, len);
#endif
    return ~mg_crc32c_sw(crc, data, len);
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
