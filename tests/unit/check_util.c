/* check_util.c - the util module: hash map, error table, CRCs, descriptor limits, rate limit,
 * loop clock and timers, payload codecs (the listener over sockets:
 * tests/integration/check_listen.c). */
#include "lib/tl.h"
#include "util/alloc.h"
#include "util/base64.h"
#include "util/bev.h"
#include "util/compress.h"
#include "util/crc.h"
#include "util/err.h"
#include "util/fs.h"
#include "util/http.h"
#include "util/listen.h"
#include "util/loop.h"
#include "util/map.h"
#include "util/mbox.h"
#include "util/ratelimit.h"
#include "util/url.h"

#include <check.h>
#include <errno.h>
#include <event2/buffer.h>
#include <event2/bufferevent.h>
#include <event2/bufferevent_ssl.h>
#include <event2/event.h>
#include <event2/keyvalq_struct.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <openssl/ssl.h>
#include <openssl/x509.h>
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

START_TEST(test_map_basic)
{
    struct mg_map m;
    mg_map_init(&m);
    ck_assert_ptr_null(mg_map_get_str(&m, "a"));
    int a = 1, b = 2;
    ck_assert_ptr_null(mg_map_put_str(&m, "a", &a));
    ck_assert_ptr_eq(mg_map_put_str(&m, "a", &b), &a); /* replace returns the old value */
    ck_assert_ptr_eq(mg_map_get_str(&m, "a"), &b);
    ck_assert_ptr_null(mg_map_put_u64(&m, 42, &a));
    ck_assert_ptr_eq(mg_map_get_u64(&m, 42), &a);
    ck_assert_uint_eq(m.count, 2);
    ck_assert_ptr_eq(mg_map_del_str(&m, "a"), &b);
    ck_assert_ptr_null(mg_map_get_str(&m, "a"));
    ck_assert_ptr_null(mg_map_del_str(&m, "a"));
    ck_assert_uint_eq(m.count, 1);
    mg_map_fini(&m);
}
END_TEST

/* Many inserts and deletes: growth and tombstone reuse keep every live key findable, and
 * iteration yields each live key once, as a NUL-terminated string. */
START_TEST(test_map_many)
{
    struct mg_map m;
    mg_map_init(&m);
    enum { N = 20000 };
    char key[32];
    for (int i = 0; i < N; i++) {
        snprintf(key, sizeof key, "topic-%d", i);
        mg_map_put_str(&m, key, (void *)(intptr_t)(i + 1));
    }
    for (int i = 0; i < N; i += 2) {
        snprintf(key, sizeof key, "topic-%d", i);
        ck_assert_ptr_eq(mg_map_del_str(&m, key), (void *)(intptr_t)(i + 1));
    }
    ck_assert_uint_eq(m.count, N / 2);
    for (int i = 0; i < N; i++) {
        snprintf(key, sizeof key, "topic-%d", i);
        void *v = mg_map_get_str(&m, key);
        if (i % 2)
            ck_assert_ptr_eq(v, (void *)(intptr_t)(i + 1));
        else
            ck_assert_ptr_null(v);
    }
    size_t pos = 0, seen = 0, klen;
    const char *k;
    void *v;
    while (mg_map_next(&m, &pos, &k, &klen, &v)) {
        ck_assert_uint_eq(strlen(k), klen);
        int i = atoi(k + strlen("topic-"));
        ck_assert_int_eq(i % 2, 1);
        ck_assert_ptr_eq(v, (void *)(intptr_t)(i + 1));
        seen++;
    }
    ck_assert_uint_eq(seen, N / 2);
    mg_map_fini(&m);
}
END_TEST

/* A map that owns its values hands each live one to the free function exactly once (one that
 * deletes its own entry too), then is empty; the string-vector and event frees take what they
 * own and accept nothing. ASan reports anything left. */
static struct mg_map *owning_map;
static int values_freed;

static void free_and_unlink(void *value)
{
    char *s = value;
    ck_assert_ptr_eq(mg_map_del_str(owning_map, s), s); /* the entry being freed is live */
    values_freed++;
    mg_free(s);
}

START_TEST(test_map_fini_free)
{
    struct mg_map m;
    mg_map_init(&m);
    owning_map = &m;
    values_freed = 0;
    enum { N = 100 };
    for (int i = 0; i < N; i++) {
        char *k = mg_asprintf("k%d", i);
        mg_map_put_str(&m, k, k);
    }
    char key[16];
    for (int i = 0; i < N; i += 3) { /* some values are gone before the end */
        snprintf(key, sizeof key, "k%d", i);
        mg_free(mg_map_del_str(&m, key));
    }
    int live = (int)m.count;
    mg_map_fini_free(&m, free_and_unlink);
    ck_assert_int_eq(values_freed, live);
    ck_assert_uint_eq(m.count, 0);
    ck_assert_ptr_null(m.slots);
    mg_map_fini_free(&m, free_and_unlink); /* a finished map is empty: nothing more */
    ck_assert_int_eq(values_freed, live);

    char **v = mg_calloc(3, sizeof *v);
    v[0] = mg_strdup("a");
    v[1] = mg_strdup("b");
    mg_free_strv(v, 2); /* v[2] was never set */
    mg_free_strv(NULL, 0);
    mg_event_free(NULL);
}
END_TEST

/* mg_grow doubles from the minimum (or the current capacity) to the first size that holds
 * what is asked, keeps the contents, and leaves an array that is big enough alone. */
/* base64 in both alphabets: padding optional at the end only, no character outside the
 * alphabet, no length an encoding cannot have. */
START_TEST(test_base64)
{
    uint8_t out[32];
    ck_assert_int_eq(mg_base64_decode("aGk=", 4, false, out), 2);
    ck_assert_mem_eq(out, "hi", 2);
    ck_assert_int_eq(mg_base64_decode("aGk", 3, false, out), 2);
    ck_assert_int_eq(mg_base64_decode("", 0, false, out), 0);
    ck_assert_int_eq(mg_base64_decode("+/8=", 4, false, out), 2); /* fb ff */
    ck_assert_uint_eq(out[0], 0xfb);
    ck_assert_uint_eq(out[1], 0xff);
    ck_assert_int_eq(mg_base64_decode("-_8", 3, true, out), 2);
    ck_assert_uint_eq(out[0], 0xfb);
    ck_assert_uint_eq(out[1], 0xff);
    ck_assert_int_eq(mg_base64_decode("-_8", 3, false, out), -1); /* wrong alphabet */
    ck_assert_int_eq(mg_base64_decode("+/8", 3, true, out), -1);
    ck_assert_int_eq(mg_base64_decode("aG=k", 4, false, out), -1); /* padding inside */
    ck_assert_int_eq(mg_base64_decode("aGk!", 4, false, out), -1);
    ck_assert_int_eq(mg_base64_decode("aGkxY", 5, false, out), -1); /* 1 char left over */
    ck_assert_int_eq(mg_base64_decode("aGkxYg===", 9, false, out), -1);
}
END_TEST

START_TEST(test_grow)
{
    size_t cap = 0;
    int *a = mg_grow(NULL, &cap, 5, sizeof *a, 4);
    ck_assert_uint_eq(cap, 8);
    for (int i = 0; i < 5; i++)
        a[i] = i * 7;
    int *same = mg_grow(a, &cap, 8, sizeof *a, 4);
    ck_assert_ptr_eq(same, a);
    ck_assert_uint_eq(cap, 8);
    a = mg_grow(a, &cap, 33, sizeof *a, 4);
    ck_assert_uint_eq(cap, 64);
    for (int i = 0; i < 5; i++)
        ck_assert_int_eq(a[i], i * 7);
    a[63] = 1; /* ASan: the whole capacity is there */
    mg_free(a);
    cap = 0;
    char *b = mg_grow(NULL, &cap, 3, 1, 0); /* no minimum: from 1 */
    ck_assert_uint_eq(cap, 4);
    mg_free(b);
}
END_TEST

START_TEST(test_errors)
{
    ck_assert_str_eq(mg_strerror(-MG_ECHECKSUM), "checksum mismatch");
    ck_assert_str_eq(mg_strerror(MG_ECHECKSUM), "checksum mismatch");
    ck_assert_str_eq(mg_errname(-MG_EFENCED), "MG_EFENCED");
    ck_assert_int_eq(mg_err_server_error(-MG_ECONSUMERBUSY), 5);  /* ConsumerBusy */
    ck_assert_int_eq(mg_err_server_error(-MG_ECHECKSUM), 9);      /* ChecksumError */
    ck_assert_int_eq(mg_err_server_error(-MG_EPRODUCERBUSY), 16); /* ProducerBusy */
    ck_assert_str_eq(mg_strerror(-12345), "unknown error");
}
END_TEST

START_TEST(test_crc)
{
    ck_assert_uint_eq(mg_crc32c(0, "123456789", 9), 0xe3069283u);
    ck_assert_uint_eq(mg_crc32(0, "123456789", 9), 0xcbf43926u);
    /* resumable */
    uint32_t c = mg_crc32c(0, "1234", 4);
    ck_assert_uint_eq(mg_crc32c(c, "56789", 5), 0xe3069283u);
    c = mg_crc32(0, "12345", 5);
    ck_assert_uint_eq(mg_crc32(c, "6789", 4), 0xcbf43926u);
}
END_TEST

/* CRC32C straight from its definition, a bit at a time: what the fast code must equal. */
static uint32_t crc32c_bitwise(uint32_t crc, const uint8_t *p, size_t len)
{
    crc = ~crc;
    while (len--) {
        crc ^= *p++;
        for (int k = 0; k < 8; k++)
            crc = (crc & 1) ? (crc >> 1) ^ 0x82F63B78u : crc >> 1;
    }
    return ~crc;
}

static uint64_t crc_test_rng = 0x9E3779B97F4A7C15ull;
static uint32_t crc_test_rand(void)
{
    crc_test_rng ^= crc_test_rng << 13;
    crc_test_rng ^= crc_test_rng >> 7;
    crc_test_rng ^= crc_test_rng << 17;
    return (uint32_t)(crc_test_rng >> 16);
}

START_TEST(test_crc32c_random_buffers)
{
    /* Every length up to 600 at every alignment mod 8, then longer ones, resumed at random
     * split points and over an evbuffer of several chunks: all equal to the definition. */
    size_t cap = 70000;
    uint8_t *buf = mg_malloc(cap + 8);
    for (size_t i = 0; i < cap + 8; i++)
        buf[i] = (uint8_t)crc_test_rand();
    for (size_t len = 0; len <= 600; len++) {
        size_t al = len % 8;
        uint32_t seed = len % 3 ? crc_test_rand() : 0;
        ck_assert_uint_eq(mg_crc32c(seed, buf + al, len), crc32c_bitwise(seed, buf + al, len));
    }
    for (int round = 0; round < 40; round++) {
        size_t len = crc_test_rand() % cap, off = crc_test_rand() % 8;
        uint32_t want = crc32c_bitwise(0, buf + off, len);
        ck_assert_uint_eq(mg_crc32c(0, buf + off, len), want);
        size_t split = len ? crc_test_rand() % len : 0;
        uint32_t c = mg_crc32c(0, buf + off, split);
        ck_assert_uint_eq(mg_crc32c(c, buf + off + split, len - split), want);
        struct evbuffer *eb = evbuffer_new();
        for (size_t at = 0; at < len + 8;) { /* separate chunks of random sizes */
            size_t n = 1 + crc_test_rand() % 3000;
            n = n > len + 8 - at ? len + 8 - at : n;
            evbuffer_add_reference(eb, buf + at, n, NULL, NULL);
            at += n;
        }
        ck_assert_uint_eq(mg_crc32c_evbuffer(0, eb, off, len), want);
        evbuffer_free(eb);
    }
    mg_free(buf);
}
END_TEST

START_TEST(test_crc32c_combine)
{
    /* CRC(a||b) from CRC(a), CRC(b) and |b|, for random contents and splits, empty parts,
     * and a long b (a megabyte of zeros and random bytes). */
    size_t cap = 1u << 20;
    uint8_t *buf = mg_malloc(cap);
    for (size_t i = 0; i < cap; i++)
        buf[i] = i < cap / 2 ? 0 : (uint8_t)crc_test_rand();
    for (int round = 0; round < 200; round++) {
        size_t len = round < 100 ? crc_test_rand() % 5000 : crc_test_rand() % cap;
        size_t off = crc_test_rand() % (cap - len + 1);
        size_t split = round % 10 == 0   ? 0
                       : round % 10 == 1 ? len
                                         : (len ? crc_test_rand() % len : 0);
        uint32_t whole = mg_crc32c(0, buf + off, len);
        uint32_t a = mg_crc32c(0, buf + off, split);
        uint32_t b = mg_crc32c(0, buf + off + split, len - split);
        ck_assert_uint_eq(mg_crc32c_combine(a, b, len - split), whole);
    }
    ck_assert_uint_eq(mg_crc32c_combine(mg_crc32c(0, "1234", 4), mg_crc32c(0, "56789", 5), 5),
                      0xe3069283u);
    mg_free(buf);
}
END_TEST

/* ---- large socket reads (bev.h) ------------------------------------------------------------ */

struct bev_reads {
    int calls, eof, err;
    size_t before, read_more, after; /* of the first read callback */
    size_t n, short_by;   /* short_by > 0: its mg_bev_read_more asks for all but short_by */
    struct evbuffer *got; /* what the callbacks took, in order */
};

/* The read callback: the first time it calls mg_bev_read_more, every time it takes all the
 * input (as a reader must at the high watermark, or libevent calls it again at once). */
static void bev_reads_cb(struct bufferevent *bev, void *arg)
{
    struct bev_reads *r = arg;
    struct evbuffer *in = bufferevent_get_input(bev);
    if (r->calls++ == 0) {
        r->before = evbuffer_get_length(in);
        r->read_more =
            mg_bev_read_more(bev, r->short_by ? r->n - r->before - r->short_by : 1u << 20);
        r->after = evbuffer_get_length(in);
    }
    evbuffer_add_buffer(r->got, in);
}

static void bev_reads_event(struct bufferevent *bev, short what, void *arg)
{
    (void)bev;
    struct bev_reads *r = arg;
    if (what & BEV_EVENT_EOF)
        r->eof = 1;
    if (what & BEV_EVENT_ERROR)
        r->err = 1;
}

/* A non-blocking socket pair with room for 2 MiB in flight, and n pattern bytes to send
 * (mg_free them). */
static uint8_t *bev_reads_setup(int sv[2], size_t n)
{
    ck_assert_int_eq(socketpair(AF_UNIX, SOCK_STREAM, 0, sv), 0);
    int sz = 1 << 21;
    setsockopt(sv[1], SOL_SOCKET, SO_SNDBUF, &sz, sizeof sz);
    setsockopt(sv[0], SOL_SOCKET, SO_RCVBUF, &sz, sizeof sz);
    evutil_make_socket_nonblocking(sv[0]);
    evutil_make_socket_nonblocking(sv[1]);
    uint8_t *pat = mg_malloc(n);
    for (size_t i = 0; i < n; i++)
        pat[i] = (uint8_t)(i * 7 + i / 251);
    return pat;
}

static void bev_reads_tick(evutil_socket_t fd, short what, void *arg)
{
    (void)fd;
    (void)what;
    (void)arg;
}

/* Read bev (read high watermark high, 0: none) with bev_reads_cb until the n bytes of pat
 * and, when eof, the end of stream arrived, for at most 10 s (a stalled read wakes no loop
 * turn: a 50 ms timer does); check that every byte came, in order. r->short_by is kept. */
static void bev_reads_collect(struct event_base *base, struct bufferevent *bev, size_t high,
                              const uint8_t *pat, size_t n, bool eof, struct bev_reads *r)
{
    size_t short_by = r->short_by;
    memset(r, 0, sizeof *r);
    r->n = n;
    r->short_by = short_by;
    r->got = evbuffer_new();
    bufferevent_setcb(bev, bev_reads_cb, NULL, bev_reads_event, r);
    bufferevent_setwatermark(bev, EV_READ, 0, high);
    bufferevent_enable(bev, EV_READ);
    struct event *tick = event_new(base, -1, EV_PERSIST, bev_reads_tick, NULL);
    struct timeval tv = {0, 50000};
    event_add(tick, &tv);
    uint64_t deadline = mg_mono_us() + 10 * 1000000;
    while ((eof ? !r->eof : evbuffer_get_length(r->got) < n) && mg_mono_us() < deadline)
        event_base_loop(base, EVLOOP_ONCE);
    event_free(tick);
    ck_assert(r->eof || !eof);
    ck_assert_uint_eq(evbuffer_get_length(r->got), n);
    ck_assert(memcmp(evbuffer_pullup(r->got, -1), pat, n) == 0);
    evbuffer_free(r->got);
}

/* Write n pattern bytes into one end of a socket pair and close it; read the other end
 * through a socket bufferevent (read high watermark high, 0: none) until end of stream and
 * check that every byte arrived in order. */
static void bev_reads_run(size_t n, size_t high, struct bev_reads *r)
{
    int sv[2];
    uint8_t *pat = bev_reads_setup(sv, n);
    size_t sent = 0;
    for (int guard = 0; guard < 1000 && sent < n; guard++) {
        ssize_t w = write(sv[1], pat + sent, n - sent);
        ck_assert_int_gt(w, 0);
        sent += (size_t)w;
    }
    ck_assert_uint_eq(sent, n);
    close(sv[1]);
    struct event_base *base = event_base_new();
    struct bufferevent *bev = bufferevent_socket_new(base, sv[0], BEV_OPT_CLOSE_ON_FREE);
    bev_reads_collect(base, bev, high, pat, n, true, r);
    bufferevent_free(bev);
    event_base_free(base);
    mg_free(pat);
}

/* run (bev_reads_run or bev_tls_reads_run): the first read callback takes all that is
 * there beyond the bufferevent's own read of at least min_before bytes, but not past a read
 * high watermark of high by more than over bytes (TLS: less than a record, the rest of the
 * one cut there), and nothing is lost either way. */
static void bev_read_more_expect(void (*run)(size_t, size_t, struct bev_reads *), size_t high,
                                 size_t min_before, size_t over)
{
    struct bev_reads r = {0};
    size_t n = 150000 + (size_t)(crc_test_rand() % 50000);
    run(n, 0, &r);
    ck_assert_uint_ge(r.before, min_before);
    ck_assert_uint_lt(r.before, n);
    ck_assert_uint_eq(r.after, n);
    ck_assert_uint_eq(r.read_more, n - r.before);
    run(n, high, &r);
    ck_assert_uint_gt(r.read_more, 0);
    ck_assert_uint_le(r.after, high + over);
    ck_assert_uint_eq(r.read_more, r.after - r.before);
}

START_TEST(test_bev_read_more)
{
    bev_read_more_expect(bev_reads_run, 20000, MG_BEV_READ_MORE_MIN, 0);
    /* A pair has no socket: left alone. */
    struct event_base *base = event_base_new();
    struct bufferevent *pair[2];
    ck_assert_int_eq(bufferevent_pair_new(base, 0, pair), 0);
    bufferevent_enable(pair[1], EV_READ);
    ck_assert_uint_eq(mg_bev_read_more(pair[1], 4096), 0);
    bufferevent_free(pair[0]);
    bufferevent_free(pair[1]);
    event_base_free(base);
}
END_TEST

/* A server context with a fresh self-signed P-256 certificate (the test's client trusts
 * anything). */
static SSL_CTX *bev_tls_server_ctx(void)
{
    EVP_PKEY *k = EVP_PKEY_Q_keygen(NULL, NULL, "EC", "P-256");
    X509 *x = X509_new();
    X509_set_pubkey(x, k);
    X509_gmtime_adj(X509_getm_notBefore(x), 0);
    X509_gmtime_adj(X509_getm_notAfter(x), 3600);
    ck_assert(X509_sign(x, k, EVP_sha256()) > 0);
    SSL_CTX *ctx = SSL_CTX_new(TLS_server_method());
    ck_assert(SSL_CTX_use_certificate(ctx, x) == 1 && SSL_CTX_use_PrivateKey(ctx, k) == 1);
    X509_free(x);
    EVP_PKEY_free(k);
    return ctx;
}

static void bev_tls_event(struct bufferevent *bev, short what, void *arg)
{
    (void)bev;
    if (what & BEV_EVENT_CONNECTED)
        (*(int *)arg)++;
}

struct bev_tls_pair {
    struct event_base *base;
    SSL_CTX *sctx, *cctx;
    struct bufferevent *srv, *cli; /* on sv[0] and sv[1] */
};

/* A TLS server and client bufferevent on the socket pair sv, handshake done, the server not
 * reading. */
static void bev_tls_pair_open(struct bev_tls_pair *t, int sv[2])
{
    t->base = event_base_new();
    t->sctx = bev_tls_server_ctx();
    t->cctx = SSL_CTX_new(TLS_client_method());
    t->srv = bufferevent_openssl_socket_new(t->base, sv[0], SSL_new(t->sctx),
                                            BUFFEREVENT_SSL_ACCEPTING, BEV_OPT_CLOSE_ON_FREE);
    t->cli = bufferevent_openssl_socket_new(t->base, sv[1], SSL_new(t->cctx),
                                            BUFFEREVENT_SSL_CONNECTING, BEV_OPT_CLOSE_ON_FREE);
    int connected = 0;
    bufferevent_setcb(t->srv, NULL, NULL, bev_tls_event, &connected);
    bufferevent_setcb(t->cli, NULL, NULL, bev_tls_event, &connected);
    bufferevent_enable(t->srv, EV_READ | EV_WRITE);
    bufferevent_enable(t->cli, EV_READ | EV_WRITE);
    for (int guard = 0; guard < 1000 && connected < 2; guard++)
        event_base_loop(t->base, EVLOOP_ONCE);
    ck_assert_int_eq(connected, 2);
    bufferevent_disable(t->srv, EV_READ);
}

static void bev_tls_pair_close(struct bev_tls_pair *t)
{
    bufferevent_free(t->cli);
    bufferevent_free(t->srv);
    SSL_CTX_free(t->cctx);
    SSL_CTX_free(t->sctx);
    event_base_free(t->base);
}

/* n pattern bytes sent over TLS on a socket pair, all of them in the socket (as records)
 * before the reading end (a TLS bufferevent, read high watermark high) starts reading;
 * checks that every byte arrives, in order. */
static void bev_tls_reads_run(size_t n, size_t high, struct bev_reads *r)
{
    int sv[2];
    uint8_t *pat = bev_reads_setup(sv, n);
    struct bev_tls_pair t;
    bev_tls_pair_open(&t, sv);
    bufferevent_write(t.cli, pat, n);
    for (int guard = 0; guard < 10000 && evbuffer_get_length(bufferevent_get_output(t.cli)) > 0;
         guard++)
        event_base_loop(t.base, EVLOOP_ONCE);
    ck_assert_uint_eq(evbuffer_get_length(bufferevent_get_output(t.cli)), 0);
    bev_reads_collect(t.base, t.srv, high, pat, n, false, r);
    bev_tls_pair_close(&t);
    mg_free(pat);
}

/* A TLS bufferevent reads one record (at most 16 KiB) a loop turn: mg_bev_read_more
 * decrypts the other records the socket already holds in the same callback, within the
 * read high watermark (past it by less than a record: the one cut there is finished), and
 * nothing is lost or stalls either way. */
START_TEST(test_bev_read_more_tls)
{
    bev_read_more_expect(bev_tls_reads_run, 40000, 1, 16384 - 1);
}
END_TEST

/* mg_bev_read_more asked for less than the socket holds, its limit inside the last record
 * (SSL_pending: OpenSSL holds the rest of it, the socket is empty, the sender is done):
 * the callback still takes that record whole, past its limit by less than a record, so
 * nothing waits for bytes that will not come. */
/* The last of the records mg_bev_read_more takes is bad (a flipped bit), and the sender then
 * waits: the records before it arrive and the bufferevent reports the error at once (not
 * when the sender next writes, or never). */
START_TEST(test_bev_read_more_tls_bad_record)
{
    size_t rec = 16384, last = 1 + (size_t)(crc_test_rand() % rec);
    size_t n = rec * (2 + (size_t)(crc_test_rand() % 4)) + last;
    int sv[2];
    uint8_t *pat = bev_reads_setup(sv, n);
    struct bev_tls_pair t;
    bev_tls_pair_open(&t, sv);
    /* the client's records into memory, the last one spoilt, then onto the socket */
    SSL *cssl = bufferevent_openssl_get_ssl(t.cli);
    BIO *mem = BIO_new(BIO_s_mem());
    SSL_set0_wbio(cssl, mem);
    ck_assert_int_eq(SSL_write(cssl, pat, (int)n), (int)n);
    char *wire = NULL;
    long wlen = BIO_get_mem_data(mem, &wire);
    ck_assert_int_gt(wlen, (long)n);
    wire[wlen - 1 - (long)(crc_test_rand() % 16)] ^= 0x10; /* in the last record's tag */
    ck_assert_int_eq(write(sv[1], wire, (size_t)wlen), wlen);
    struct bev_reads r = {.n = n};
    r.got = evbuffer_new();
    bufferevent_setcb(t.srv, bev_reads_cb, NULL, bev_reads_event, &r);
    bufferevent_enable(t.srv, EV_READ);
    struct event *tick = event_new(t.base, -1, EV_PERSIST, bev_reads_tick, NULL);
    struct timeval tv = {0, 50000};
    event_add(tick, &tv);
    uint64_t deadline = mg_mono_us() + 10 * 1000000;
    while (!r.err && !r.eof && mg_mono_us() < deadline)
        event_base_loop(t.base, EVLOOP_ONCE);
    event_free(tick);
    ck_assert_msg(r.err || r.eof, "no error reported within 10 s (%zu bytes read)",
                  evbuffer_get_length(r.got));
    ck_assert_uint_gt(r.read_more, 0); /* the bad record was mg_bev_read_more's to find */
    ck_assert_uint_eq(evbuffer_get_length(r.got), n - last);
    ck_assert(memcmp(evbuffer_pullup(r.got, -1), pat, n - last) == 0);
    evbuffer_free(r.got);
    bev_tls_pair_close(&t);
    mg_free(pat);
}
END_TEST

START_TEST(test_bev_read_more_tls_pending)
{
    for (int i = 0; i < 4; i++) {
        size_t rec = 16384, last = 2 + (size_t)(crc_test_rand() % (rec - 1)); /* 2..rec */
        size_t n = rec * (2 + (size_t)(crc_test_rand() % 4)) + last;
        struct bev_reads r = {.short_by = 1 + (size_t)(crc_test_rand() % (last - 1))};
        bev_tls_reads_run(n, 0, &r);
        ck_assert_uint_le(r.before, rec);
        ck_assert_uint_eq(r.after, n); /* all of it, in the first callback */
        ck_assert_uint_lt(r.read_more - (n - r.before - r.short_by), rec);
    }
}
END_TEST

/* ---- descriptors ------------------------------------------------------------------------ */
/* (The listener itself, over loopback sockets: tests/integration/check_listen.c.) */

START_TEST(test_fds_limit_helpers)
{
    ck_assert_int_eq(mg_fds_default_reserve(256), 32);
    ck_assert_int_eq(mg_fds_default_reserve(1024), 64);
    ck_assert_int_eq(mg_fds_default_reserve(1 << 20), 1024);
    struct rlimit saved;
    getrlimit(RLIMIT_NOFILE, &saved);
    if (saved.rlim_max > 64) {
        struct rlimit low = {64, saved.rlim_max};
        ck_assert_int_eq(setrlimit(RLIMIT_NOFILE, &low), 0);
        int got = mg_fds_raise_limit();
        ck_assert_int_eq(got, mg_fds_limit());
        ck_assert_int_gt(got, 64);
        setrlimit(RLIMIT_NOFILE, &saved);
    }
    int fd = open("/dev/null", O_RDONLY);
    int before = mg_fds_open(), free_before = mg_fds_free();
    close(fd);
    ck_assert_int_eq(mg_fds_open(), before - 1);
    ck_assert_int_eq(mg_fds_free(), free_before + 1);
}
END_TEST

/* A condition repeating thousands of times within one interval logs once; the next allowed
 * line is told how many were held back. */
START_TEST(test_ratelimit)
{
    struct mg_ratelimit r = {0};
    uint64_t held = 99;
    int allowed = 0;
    ck_assert(mg_ratelimit_allow(&r, 60000, &held)); /* the first is free */
    ck_assert_uint_eq(held, 0);
    for (int i = 0; i < 5000; i++)
        allowed += mg_ratelimit_allow(&r, 60000, &held);
    ck_assert_int_eq(allowed, 0);
    ck_assert_uint_eq(r.held, 5000);
    r.next_ms = 1; /* the interval is over */
    ck_assert(mg_ratelimit_allow(&r, 60000, &held));
    ck_assert_uint_eq(held, 5000);
    ck_assert_uint_eq(r.held, 0);
    ck_assert(!mg_ratelimit_allow(&r, 60000, NULL));
    /* interval 0: every call may log */
    struct mg_ratelimit z = {0};
    for (int i = 0; i < 10; i++)
        ck_assert(mg_ratelimit_allow(&z, 0, &held));
}
END_TEST

/* ---- loop context ------------------------------------------------------------------------ */

struct fired {
    int order[64];
    uint64_t at[64];
    int n;
    struct mg_loop *l;
};

struct tmr {
    struct mg_timer t;
    struct fired *f;
    int id;
    int restart_ms;       /* > 0: re-arm once from the callback */
    struct tmr *activate; /* activate this one from the callback */
};

static void tmr_cb(struct mg_timer *t, void *arg)
{
    struct tmr *x = arg;
    ck_assert_ptr_eq(t, &x->t);
    x->f->order[x->f->n] = x->id;
    x->f->at[x->f->n++] = mg_loop_mono_ms(x->f->l);
    if (x->restart_ms > 0) {
        int ms = x->restart_ms;
        x->restart_ms = 0;
        mg_timer_start(t, (uint64_t)ms);
    }
    if (x->activate) {
        mg_timer_activate(&x->activate->t);
        x->activate = NULL;
    }
}

/* A simulated loop: time stands still until advanced; timers fire in deadline order, equal
 * deadlines in the order they were started (whatever the heap's shape); both clocks move
 * together by exactly what was advanced. */
/* mg_mkdirs makes missing parents and accepts what exists; it fails with errno kept when a
 * component is a file. The whole-write helpers write every byte where they are told. */
START_TEST(test_fs)
{
    char root[] = "/tmp/check_util_fs.XXXXXX";
    ck_assert_ptr_nonnull(mkdtemp(root));
    char path[128], file[160];
    snprintf(path, sizeof path, "%s/a/b/c", root);
    ck_assert_int_eq(mg_mkdirs(path), 0);
    ck_assert_int_eq(mg_mkdirs(path), 0); /* exists: fine */
    struct stat st;
    ck_assert_int_eq(stat(path, &st), 0);
    ck_assert(S_ISDIR(st.st_mode));
    ck_assert_int_eq(mg_fsync_dir(path), 0);

    snprintf(file, sizeof file, "%s/f", path);
    int fd = open(file, O_RDWR | O_CREAT | O_TRUNC, 0644);
    ck_assert_int_ge(fd, 0);
    static char big[300000];
    for (size_t i = 0; i < sizeof big; i++)
        big[i] = (char)('a' + i % 26);
    ck_assert_int_eq(mg_write_all(fd, big, sizeof big), 0);
    ck_assert_int_eq(mg_pwrite_all(fd, "XYZ", 3, 10), 0);
    ck_assert_int_eq(mg_pwrite_all(fd, "end", 3, sizeof big), 0); /* extends the file */
    char back[16];
    ck_assert_int_eq(pread(fd, back, 6, 8), 6);
    ck_assert_int_eq(memcmp(back, "ijXYZn", 6), 0);
    ck_assert_int_eq(fstat(fd, &st), 0);
    ck_assert_int_eq(st.st_size, (off_t)sizeof big + 3);
    close(fd);
    /* mg_read_file: the whole file, NUL after it; over the bound or missing: NULL, a reason */
    size_t rlen = 0;
    char rerr[256] = "";
    char *whole = mg_read_file(file, sizeof big + 3, &rlen, rerr, sizeof rerr);
    ck_assert_ptr_nonnull(whole);
    ck_assert_uint_eq(rlen, sizeof big + 3);
    ck_assert_mem_eq(whole + sizeof big, "end", 4); /* with its NUL */
    mg_free(whole);
    ck_assert_ptr_null(mg_read_file(file, sizeof big + 2, &rlen, rerr, sizeof rerr));
    ck_assert_msg(strstr(rerr, "larger than") != NULL, "%s", rerr);
    ck_assert_ptr_null(mg_read_file(root, 10, &rlen, rerr, sizeof rerr)); /* a directory */
    ck_assert_ptr_null(mg_read_file("/nonexistent/x", 10, &rlen, rerr, sizeof rerr));
    ck_assert_msg(strstr(rerr, "cannot open") != NULL, "%s", rerr);
    errno = 0;
    ck_assert_int_eq(mg_write_all(-1, "x", 1), -1);
    ck_assert_int_eq(errno, EBADF);

    /* A file where a directory should be: refused, errno says why. */
    char under[300];
    snprintf(under, sizeof under, "%s/g/h", file);
    errno = 0;
    ck_assert_int_lt(mg_mkdirs(under), 0);
    ck_assert_int_eq(errno, ENOTDIR);
    snprintf(under, sizeof under, "%s/missing", root);
    ck_assert_int_lt(mg_fsync_dir(under), 0);

    unlink(file);
    for (int i = 0; i < 3; i++) {
        rmdir(path);
        *strrchr(path, '/') = '\0';
    }
    ck_assert_int_eq(rmdir(root), 0);
}
END_TEST

/* java.net.URLEncoder / URLDecoder: what Pulsar writes for ML and cursor node names. */
START_TEST(test_url)
{
    static const struct {
        const char *plain, *enc;
    } cases[] = {
        {"", ""},
        {"AZaz09.-*_", "AZaz09.-*_"},
        {"my sub/1", "my+sub%2F1"},
        {"a+b%c~d!", "a%2Bb%25c%7Ed%21"},
        {"\xc3\xa9t\xc3\xa9", "%C3%A9t%C3%A9"}, /* UTF-8 bytes, upper-case hex */
        {"\x7f\x01:?#&=", "%7F%01%3A%3F%23%26%3D"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        char *e = mg_url_encode(cases[i].plain);
        ck_assert_str_eq(e, cases[i].enc);
        size_t len = 99;
        char *d = mg_url_decode(e, strlen(e), &len);
        ck_assert_str_eq(d, cases[i].plain);
        ck_assert_uint_eq(len, strlen(cases[i].plain));
        mg_free(d);
        mg_free(e);
    }
    /* Lower-case hex decodes; a '%' without two hex digits stays; only n bytes are read. */
    char *d = mg_url_decode("%2f%zz%4+%", 10, NULL);
    ck_assert_str_eq(d, "/%zz%4 %");
    mg_free(d);
    d = mg_url_decode("ab%41cd", 5, NULL);
    ck_assert_str_eq(d, "abA");
    mg_free(d);
    d = mg_url_decode("ab%4", 4, NULL);
    ck_assert_str_eq(d, "ab%4");
    mg_free(d);
    /* %00 is a NUL byte: the length tells. */
    size_t len = 0;
    d = mg_url_decode("a%00b", 5, &len);
    ck_assert_uint_eq(len, 3);
    ck_assert_uint_eq(strlen(d), 1);
    ck_assert_int_eq(d[2], 'b');
    mg_free(d);
}
END_TEST

START_TEST(test_loop_sim_order)
{
    struct event_base *base = event_base_new();
    struct mg_loop *l = mg_loop_new_sim(base, 5000, 1700000000000);
    ck_assert(mg_loop_is_sim(l));
    ck_assert_uint_eq(mg_loop_mono_ms(l), 5000);
    ck_assert_int_eq(mg_loop_wall_ms(l), 1700000000000);
    struct fired f = {.l = l};
    enum { N = 40 };
    struct tmr x[N];
    /* Deadlines 10, 20, 30 (ms), each with several timers started in a scrambled order. */
    int dl[N], started[N];
    for (int i = 0; i < N; i++) {
        x[i] = (struct tmr){.f = &f, .id = i};
        mg_timer_init(&x[i].t, l, tmr_cb, &x[i]);
        dl[i] = 10 * (1 + (i * 7) % 3);
    }
    for (int k = 0; k < N; k++) {
        int i = (k * 13) % N; /* 13 is prime to 40: a permutation */
        started[k] = i;
        mg_timer_start(&x[i].t, (uint64_t)dl[i]);
    }
    ck_assert_uint_eq(mg_loop_timers_pending(l), N);
    ck_assert_int_eq(mg_loop_run_due(l), 0);
    ck_assert_int_eq(f.n, 0);
    ck_assert_int_eq(mg_loop_advance(l, 9), 0);
    ck_assert_int_eq(f.n, 0);
    ck_assert_uint_eq(mg_loop_mono_ms(l), 5009);
    mg_loop_advance(l, 21);
    ck_assert_int_eq(f.n, N);
    ck_assert_uint_eq(mg_loop_mono_ms(l), 5030);
    ck_assert_int_eq(mg_loop_wall_ms(l), 1700000000030);
    /* Expected: by deadline, then by start order. */
    int k = 0;
    for (int d = 10; d <= 30; d += 10)
        for (int s = 0; s < N; s++)
            if (dl[started[s]] == d) {
                ck_assert_int_eq(f.order[k], started[s]);
                ck_assert_uint_eq(f.at[k], 5000 + (uint64_t)d);
                k++;
            }
    for (int i = 0; i < N; i++)
        mg_timer_fini(&x[i].t);
    mg_loop_free(l);
    event_base_free(base);
}
END_TEST

/* Stop, re-arm, activate, step: a stopped timer never fires, a re-armed one fires at its new
 * deadline only, an activated one fires before time moves, and step stops at the next
 * deadline within its bound. */
START_TEST(test_loop_sim_rearm)
{
    struct event_base *base = event_base_new();
    struct mg_loop *l = mg_loop_new_sim(base, 0, 0);
    struct fired f = {.l = l};
    struct tmr a = {.f = &f, .id = 1}, b = {.f = &f, .id = 2}, c = {.f = &f, .id = 3};
    mg_timer_init(&a.t, l, tmr_cb, &a);
    mg_timer_init(&b.t, l, tmr_cb, &b);
    mg_timer_init(&c.t, l, tmr_cb, &c);
    mg_timer_start(&a.t, 100);
    mg_timer_start(&b.t, 50);
    mg_timer_stop(&b.t);
    ck_assert(!mg_timer_pending(&b.t));
    mg_timer_start(&a.t, 200); /* re-arm: only the new deadline counts */
    ck_assert(mg_timer_pending(&a.t));
    ck_assert(!mg_loop_step(l, 150));
    ck_assert_uint_eq(mg_loop_mono_ms(l), 0);
    /* a fires at 200, re-arms itself for +10 and activates c, which runs at 200 */
    a.restart_ms = 10;
    a.activate = &c;
    ck_assert(mg_loop_step(l, 1000));
    ck_assert_int_eq(f.n, 2);
    ck_assert_int_eq(f.order[0], 1);
    ck_assert_int_eq(f.order[1], 3);
    ck_assert_uint_eq(f.at[1], 200);
    ck_assert(mg_loop_step(l, 1000));
    ck_assert_int_eq(f.n, 3);
    ck_assert_uint_eq(f.at[2], 210);
    ck_assert(!mg_loop_step(l, 1000000));
    ck_assert_int_eq(f.n, 3);
    mg_timer_fini(&a.t);
    mg_timer_fini(&b.t);
    mg_timer_fini(&c.t);
    mg_timer_fini(&c.t); /* twice is fine */
    mg_loop_free(l);
    event_base_free(base);
}
END_TEST

static void active_ev_cb(evutil_socket_t fd, short what, void *arg)
{
    (void)fd;
    (void)what;
    struct fired *f = arg;
    f->order[f->n] = 100;
    f->at[f->n++] = mg_loop_mono_ms(f->l);
}

/* The base's active events (deferred completions) run before a later timer, at the time
 * they were activated. */
START_TEST(test_loop_sim_runs_active_events)
{
    struct event_base *base = event_base_new();
    struct mg_loop *l = mg_loop_new_sim(base, 1000, 0);
    struct fired f = {.l = l};
    struct event *ev = event_new(base, -1, 0, active_ev_cb, &f);
    struct tmr a = {.f = &f, .id = 1};
    mg_timer_init(&a.t, l, tmr_cb, &a);
    mg_timer_start(&a.t, 5);
    event_active(ev, 0, 0);
    mg_loop_advance(l, 10);
    ck_assert_int_eq(f.n, 2);
    ck_assert_int_eq(f.order[0], 100);
    ck_assert_uint_eq(f.at[0], 1000);
    ck_assert_int_eq(f.order[1], 1);
    ck_assert_uint_eq(f.at[1], 1005);
    event_free(ev);
    mg_timer_fini(&a.t);
    mg_loop_free(l);
    event_base_free(base);
}
END_TEST

/* A real loop: its clocks are the process's, and a timer fires after its delay from the
 * base's dispatch; activate runs it on the next pass. */
START_TEST(test_loop_real)
{
    /* As main.c does: libevent's default timer clock is coarse (a few ms). */
    struct event_config *ec = event_config_new();
    event_config_set_flag(ec, EVENT_BASE_FLAG_PRECISE_TIMER);
    struct event_base *base = event_base_new_with_config(ec);
    event_config_free(ec);
    struct mg_loop *l = mg_loop_new(base);
    ck_assert(!mg_loop_is_sim(l));
    uint64_t m0 = mg_mono_ms();
    ck_assert_uint_ge(mg_loop_mono_ms(l), m0);
    int64_t w = mg_wall_ms();
    ck_assert_int_ge(mg_loop_wall_ms(l), w);
    struct fired f = {.l = l};
    struct tmr a = {.f = &f, .id = 1}, b = {.f = &f, .id = 2};
    mg_timer_init(&a.t, l, tmr_cb, &a);
    mg_timer_init(&b.t, l, tmr_cb, &b);
    mg_timer_start(&a.t, 20);
    mg_timer_activate(&b.t);
    ck_assert(mg_timer_pending(&a.t));
    uint64_t end = mg_mono_ms() + 5000;
    while (f.n < 2 && mg_mono_ms() < end)
        event_base_loop(base, EVLOOP_ONCE);
    ck_assert_int_eq(f.n, 2);
    ck_assert_int_eq(f.order[0], 2);
    ck_assert_int_eq(f.order[1], 1);
    ck_assert_uint_ge(f.at[1], m0 + 20);
    ck_assert(!mg_timer_pending(&a.t));
    mg_timer_fini(&a.t);
    mg_timer_fini(&b.t);
    mg_loop_free(l);
    event_base_free(base);
}
END_TEST

/* ---- payload codecs (compress.h) ------------------------------------------------------- */

#define CZ_TEXT "hello pulsar hello pulsar"

/* Known encodings of CZ_TEXT, framed as Pulsar frames each codec. */
static const uint8_t cz_lz4[] = {/* one raw block: 13 literals + a match (offset 13, 7 bytes),
                                    then 5 literals (no LZ4 frame header) */
                                 0xd3, 'h', 'e', 'l',  'l',  'o',  ' ', 'p', 'u', 'l', 's',
                                 'a',  'r', ' ', 0x0d, 0x00, 0x50, 'u', 'l', 's', 'a', 'r'};
static const uint8_t cz_zlib[] = {/* zlib.compress(CZ_TEXT): 78 9c header, Adler-32 trailer */
                                  0x78, 0x9c, 0xcb, 0x48, 0xcd, 0xc9, 0xc9, 0x57,
                                  0x28, 0x28, 0xcd, 0x29, 0x4e, 0x2c, 0x52, 0xc8,
                                  0x40, 0xe2, 0x00, 0x00, 0x7d, 0x7a, 0x09, 0xb7};
static const uint8_t cz_zstd[] = {/* zstd -3 --no-check: one frame with its content size */
                                  0x28, 0xb5, 0x2f, 0xfd, 0x20, 0x19, 0x9d, 0x00, 0x00, 0x68,
                                  0x68, 0x65, 0x6c, 0x6c, 0x6f, 0x20, 0x70, 0x75, 0x6c, 0x73,
                                  0x61, 0x72, 0x20, 0x01, 0x00, 0xc0, 0xcd, 0x2f};
static const uint8_t cz_snappy[] = {/* raw: varint 25, 13 literals, copy (offset 13, 12) */
                                    0x19, 0x30, 'h', 'e', 'l', 'l', 'o',  ' ',  'p',
                                    'u',  'l',  's', 'a', 'r', ' ', 0x2e, 0x0d, 0x00};

static const struct {
    int codec;
    const uint8_t *b;
    size_t n;
} cz_vectors[] = {
    {MG_CODEC_LZ4, cz_lz4, sizeof cz_lz4},
    {MG_CODEC_ZLIB, cz_zlib, sizeof cz_zlib},
    {MG_CODEC_ZSTD, cz_zstd, sizeof cz_zstd},
    {MG_CODEC_SNAPPY, cz_snappy, sizeof cz_snappy},
};

START_TEST(test_codec_known_vectors)
{
    for (size_t i = 0; i < sizeof cz_vectors / sizeof cz_vectors[0]; i++) {
        uint8_t *out = NULL;
        char err[160] = "";
        int rc = mg_decompress(cz_vectors[i].codec, cz_vectors[i].b, cz_vectors[i].n,
                               strlen(CZ_TEXT), 1 << 20, &out, err, sizeof err);
        ck_assert_msg(rc == 0, "%s: %s", mg_codec_name(cz_vectors[i].codec), err);
        ck_assert_mem_eq(out, CZ_TEXT, strlen(CZ_TEXT));
        mg_free(out);
    }
}
END_TEST

/* Every codec's output decodes back to its input, for sizes around block boundaries, empty,
 * incompressible and repetitive input. */
START_TEST(test_codec_round_trip)
{
    static const size_t sizes[] = {0, 1, 15, 16, 255, 4096, 65537, 300000};
    uint32_t x = 0x9e3779b9u;
    for (int codec = MG_CODEC_NONE; codec <= MG_CODEC_SNAPPY; codec++) {
        for (size_t k = 0; k < sizeof sizes / sizeof sizes[0]; k++) {
            for (int noisy = 0; noisy < 2; noisy++) {
                size_t n = sizes[k];
                uint8_t *in = mg_malloc(n ? n : 1);
                for (size_t i = 0; i < n; i++) {
                    x ^= x << 13, x ^= x >> 17, x ^= x << 5;
                    in[i] = noisy ? (uint8_t)x : (uint8_t)("abcdefgh"[i % 8] + (i / 4096));
                }
                uint8_t *c = NULL, *d = NULL;
                size_t cn = 0;
                ck_assert_int_eq(mg_compress(codec, in, n, &c, &cn), 0);
                if (!noisy && n >= 4096 && codec != MG_CODEC_NONE)
                    ck_assert_uint_lt(cn, n / 4);
                char err[160] = "";
                int rc = mg_decompress(codec, c, cn, n, n, &d, err, sizeof err);
                ck_assert_msg(rc == 0, "%s %zu: %s", mg_codec_name(codec), n, err);
                if (n)
                    ck_assert_mem_eq(d, in, n);
                mg_free(c);
                mg_free(d);
                mg_free(in);
            }
        }
    }
}
END_TEST

/* A declared size over the maximum is refused before allocating; a size that lies (too
 * small, too large) or corrupt bytes are refused with a reason, never a partial output. */
START_TEST(test_codec_bounds_and_corrupt)
{
    size_t tn = strlen(CZ_TEXT);
    for (size_t i = 0; i < sizeof cz_vectors / sizeof cz_vectors[0]; i++) {
        int codec = cz_vectors[i].codec;
        const uint8_t *b = cz_vectors[i].b;
        size_t n = cz_vectors[i].n;
        uint8_t *out = (uint8_t *)1;
        char err[160] = "";
        ck_assert_int_eq(mg_decompress(codec, b, n, tn, tn - 1, &out, err, sizeof err),
                         -MG_ETOOBIG);
        ck_assert_ptr_null(out);
        ck_assert_ptr_nonnull(strstr(err, "maximum"));
        ck_assert_int_eq(
            mg_decompress(codec, b, n, (size_t)1 << 40, (size_t)1 << 20, &out, err, sizeof err),
            -MG_ETOOBIG);
        for (size_t lie = 0; lie < 2 * tn; lie++) {
            if (lie == tn)
                continue;
            err[0] = '\0';
            ck_assert_msg(mg_decompress(codec, b, n, lie, 1 << 20, &out, err, sizeof err) ==
                              -MG_EPROTO,
                          "%s accepted size %zu", mg_codec_name(codec), lie);
            ck_assert_ptr_null(out);
            ck_assert_ptr_nonnull(strstr(err, "declared"));
        }
        for (size_t cut = 0; cut < n; cut++) { /* every truncation */
            ck_assert_msg(mg_decompress(codec, b, cut, tn, 1 << 20, &out, NULL, 0) < 0,
                          "%s accepted %zu of %zu bytes", mg_codec_name(codec), cut, n);
            ck_assert_ptr_null(out);
        }
        uint8_t *bad = mg_malloc(n);
        for (size_t pos = 0; pos < n; pos++) { /* every flipped byte: refused or exact size */
            memcpy(bad, b, n);
            bad[pos] ^= 0xa5;
            int rc = mg_decompress(codec, bad, n, tn, 1 << 20, &out, NULL, 0);
            ck_assert(rc == 0 || rc == -MG_EPROTO);
            ck_assert(rc == 0 ? out != NULL : out == NULL);
            mg_free(out);
        }
        mg_free(bad);
    }
    uint8_t *out = NULL;
    ck_assert_int_eq(mg_decompress(7, cz_lz4, sizeof cz_lz4, 4, 100, &out, NULL, 0), -MG_ENOTSUP);
    uint8_t *c = NULL;
    size_t cn = 0;
    ck_assert_int_eq(mg_compress(9, (const uint8_t *)"x", 1, &c, &cn), -MG_ENOTSUP);
    ck_assert_int_eq(mg_codec_parse("zstd"), MG_CODEC_ZSTD);
    ck_assert_int_eq(mg_codec_parse("SNAPPY"), MG_CODEC_SNAPPY);
    ck_assert_int_eq(mg_codec_parse("gzip"), -1);
    ck_assert_str_eq(mg_codec_name(MG_CODEC_LZ4), "LZ4");
}
END_TEST

/* What a server sees of a request made by mg_http_request_new: Host as host:port,
 * "Connection: close", the Authorization and the JSON body when given, neither when not. */
struct http_seen {
    int n;
    char host[64], conn[16], authz[64], ctype[64], body[64];
    int status; /* the client's: the answer's code */
};

static void http_copy(char *dst, size_t n, const char *v)
{
    snprintf(dst, n, "%s", v ? v : "");
}

static void http_serve(struct evhttp_request *req, void *arg)
{
    struct http_seen *s = arg;
    struct evkeyvalq *h = evhttp_request_get_input_headers(req);
    http_copy(s->host, sizeof s->host, evhttp_find_header(h, "Host"));
    http_copy(s->conn, sizeof s->conn, evhttp_find_header(h, "Connection"));
    http_copy(s->authz, sizeof s->authz, evhttp_find_header(h, "Authorization"));
    http_copy(s->ctype, sizeof s->ctype, evhttp_find_header(h, "Content-Type"));
    struct evbuffer *in = evhttp_request_get_input_buffer(req);
    size_t len = evbuffer_copyout(in, s->body, sizeof s->body - 1);
    s->body[len] = '\0';
    evhttp_send_reply(req, 200, "OK", NULL);
}

static void http_answered(struct evhttp_request *req, void *arg)
{
    struct http_seen *s = arg;
    s->status = req ? evhttp_request_get_response_code(req) : -1;
    s->n++;
}

static bool http_done(const void *arg)
{
    return ((const struct http_seen *)arg)->n > 0;
}

START_TEST(test_http_request)
{
    struct event_base *base = event_base_new();
    struct evhttp *srv = evhttp_new(base);
    struct http_seen seen = {0}, got = {0};
    evhttp_set_gencb(srv, http_serve, &seen);
    struct evhttp_bound_socket *bs = evhttp_bind_socket_with_handle(srv, "127.0.0.1", 0);
    ck_assert_ptr_nonnull(bs);
    struct sockaddr_in sin;
    socklen_t sl = sizeof sin;
    ck_assert_int_eq(getsockname(evhttp_bound_socket_get_fd(bs), (struct sockaddr *)&sin, &sl), 0);
    int port = ntohs(sin.sin_port);
    char want_host[64];
    snprintf(want_host, sizeof want_host, "127.0.0.1:%d", port);
    for (int with = 1; with >= 0; with--) {
        memset(&seen, 0, sizeof seen);
        memset(&got, 0, sizeof got);
        struct evhttp_connection *conn;
        struct evhttp_request *req =
            mg_http_request_new(base, NULL, "127.0.0.1", port, 10, with ? "Bearer abc" : NULL,
                                with ? "{\"a\":1}" : NULL, http_answered, &got, &conn);
        ck_assert_ptr_nonnull(req);
        ck_assert_ptr_nonnull(conn);
        ck_assert_int_eq(
            evhttp_make_request(conn, req, with ? EVHTTP_REQ_POST : EVHTTP_REQ_GET, "/x"), 0);
        ck_assert(tl_base_until(base, http_done, &got, 10000));
        ck_assert_int_eq(got.status, 200);
        ck_assert_str_eq(seen.host, want_host);
        ck_assert_str_eq(seen.conn, "close");
        ck_assert_str_eq(seen.authz, with ? "Bearer abc" : "");
        ck_assert_str_eq(seen.ctype, with ? "application/json" : "");
        ck_assert_str_eq(seen.body, with ? "{\"a\":1}" : "");
        evhttp_connection_free(conn);
    }
    evhttp_free(srv);
    event_base_free(base);
}
END_TEST

/* ---- mailboxes and I/O threads (mbox.h) ---- */

struct mbox_test_msg {
    struct mg_mbox_msg m;
    int poster;
    int seq;
    int *next_seq; /* per poster: the seq expected next; -1 once one came out of order */
    int *received;
};

static void mbox_test_run(struct mg_mbox_msg *m)
{
    struct mbox_test_msg *t = (struct mbox_test_msg *)m;
    int *next = &t->next_seq[t->poster];
    *next = (*next == t->seq) ? *next + 1 : INT32_MIN; /* stays wrong */
    (*t->received)++;
    mg_free(t);
}

enum { MBOX_POSTERS = 4, MBOX_PER_POSTER = 20000 };

struct mbox_poster {
    struct mg_mbox *b;
    int id;
    int *next_seq;
    int *received;
};

static void *mbox_poster_main(void *arg)
{
    struct mbox_poster *p = arg;
    for (int i = 0; i < MBOX_PER_POSTER; i++) {
        struct mbox_test_msg *t = mg_calloc(1, sizeof *t);
        t->m.run = mbox_test_run;
        t->poster = p->id;
        t->seq = i;
        t->next_seq = p->next_seq;
        t->received = p->received;
        mg_mbox_post(p->b, &t->m);
    }
    return NULL;
}

/* Posters on several threads: every message runs once on the loop's thread, and each
 * poster's messages in the order it posted them. */
START_TEST(test_mbox_order_many_posters)
{
    struct event_base *base = event_base_new();
    struct mg_mbox *b = mg_mbox_new(base);
    int next_seq[MBOX_POSTERS] = {0}, received = 0;
    struct mbox_poster p[MBOX_POSTERS];
    pthread_t tid[MBOX_POSTERS];
    for (int i = 0; i < MBOX_POSTERS; i++) {
        p[i] = (struct mbox_poster){b, i, next_seq, &received};
        ck_assert_int_eq(pthread_create(&tid[i], NULL, mbox_poster_main, &p[i]), 0);
    }
    uint64_t deadline = mg_mono_ms() + 20000;
    while (received < MBOX_POSTERS * MBOX_PER_POSTER && mg_mono_ms() < deadline)
        event_base_loop(base, EVLOOP_ONCE);
    for (int i = 0; i < MBOX_POSTERS; i++) {
        pthread_join(tid[i], NULL);
        ck_assert_int_eq(next_seq[i], MBOX_PER_POSTER);
    }
    ck_assert_int_eq(received, MBOX_POSTERS * MBOX_PER_POSTER);
    mg_mbox_free(b);
    event_base_free(base);
}
END_TEST

struct mbox_echo {
    struct mg_mbox_msg m;
    struct mg_mbox *home; /* where it goes back to */
    pthread_t main_thread;
    bool ran_elsewhere;
    int *back;
};

static void mbox_echo_home(struct mg_mbox_msg *m)
{
    struct mbox_echo *e = (struct mbox_echo *)m;
    if (e->ran_elsewhere)
        (*e->back)++;
    mg_free(e);
}

static void mbox_echo_away(struct mg_mbox_msg *m)
{
    struct mbox_echo *e = (struct mbox_echo *)m;
    e->ran_elsewhere = !pthread_equal(pthread_self(), e->main_thread);
    e->m.run = mbox_echo_home;
    mg_mbox_post(e->home, &e->m);
}

/* Messages posted to an I/O thread run on that thread and can answer through the poster's
 * mailbox; stopping the thread runs what was posted before the stop. */
START_TEST(test_iothread_round_trip)
{
    struct event_base *base = event_base_new();
    struct mg_mbox *home = mg_mbox_new(base);
    struct mg_iothread *t = mg_iothread_start("mg-test-io");
    ck_assert_ptr_nonnull(mg_iothread_base(t));
    enum { N = 5000 };
    int back = 0;
    for (int i = 0; i < N; i++) {
        struct mbox_echo *e = mg_calloc(1, sizeof *e);
        *e = (struct mbox_echo){
            .m.run = mbox_echo_away, .home = home, .main_thread = pthread_self(), .back = &back};
        mg_iothread_post(t, &e->m);
    }
    uint64_t deadline = mg_mono_ms() + 20000;
    while (back < N && mg_mono_ms() < deadline)
        event_base_loop(base, EVLOOP_ONCE);
    ck_assert_int_eq(back, N);
    mg_iothread_stop(t);
    mg_mbox_free(home);
    event_base_free(base);
}
END_TEST

int main(void)
{
    Suite *s = suite_create("util");
    TCase *tc = tl_tcase(s, "core", 0, NULL, NULL);
    tl_add(tc, test_map_basic, test_map_many, test_map_fini_free, test_base64, test_grow,
           test_errors, test_crc, test_crc32c_random_buffers, test_crc32c_combine,
           test_bev_read_more, test_bev_read_more_tls, test_bev_read_more_tls_pending,
           test_bev_read_more_tls_bad_record, test_ratelimit, test_url, test_fs,
           test_loop_sim_order, test_loop_sim_rearm, test_loop_sim_runs_active_events,
           test_loop_real, test_codec_known_vectors, test_codec_round_trip,
           test_codec_bounds_and_corrupt, test_http_request, test_mbox_order_many_posters,
           test_iothread_round_trip);
    tc = tl_tcase(s, "descriptors", 30, tl_nofile_save, tl_nofile_restore);
    tl_add(tc, test_fds_limit_helpers);
    return tl_run(s);
}
