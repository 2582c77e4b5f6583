/*
 * check_bookie.c - unit tests of the bookie module (Check).
 *
 * Each test starts a bk_server in process on port 0 with temporary directories; its event
 * loop runs on a helper thread, and the test talks to it over real sockets with a small
 * blocking client speaking v2 and v3 (every receive has a 10 s timeout, so a broken bookie
 * fails a test instead of hanging it). Server-side hooks (checkpoint, disk check) run on the
 * loop thread through event_base_once. No assertion depends on timing.
 */
#include "BookkeeperProtocol.pb-c.h"
#include "bookie/bookie_int.h"
#include "util/alloc.h"
#include "util/log.h"

#include <arpa/inet.h>
#include <check.h>
#include <errno.h>
#include <event2/event.h>
#include <event2/thread.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <pthread.h>
#include <semaphore.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mount.h>
#include <sys/socket.h>
#include <unistd.h>

#define OP(x) BOOKKEEPER__PROTO__OPERATION_TYPE__##x
#define ST(x) BOOKKEEPER__PROTO__STATUS_CODE__##x

static const uint8_t KEY_A[20] = "masterkey-aaaaaaaaaa";
static const uint8_t KEY_B[20] = "masterkey-bbbbbbbbbb";

/* ---- server harness ---------------------------------------------------------------------- */

struct harness {
    char dir[256];
    char jdir[300], ldir[300];
    struct bk_options o;
    struct event_base *base;
    struct bk_server *srv;
    pthread_t thread;
    int port;
};

static void *loop_main(void *arg)
{
    struct harness *h = arg;
    event_base_dispatch(h->base);
    return NULL;
}

static void h_start(struct harness *h)
{
    h->base = event_base_new();
    ck_assert_ptr_nonnull(h->base);
    ck_assert_int_eq(bk_server_new(h->base, &h->o, &h->srv), 0);
    h->port = bk_server_port(h->srv);
    ck_assert_int_eq(pthread_create(&h->thread, NULL, loop_main, h), 0);
}

static void h_stop(struct harness *h, bool clean)
{
    event_base_loopbreak(h->base);
    pthread_join(h->thread, NULL);
    if (clean)
        bk_server_free(h->srv);
    else
        bk_server_free_unclean(h->srv);
    h->srv = NULL;
    event_base_free(h->base);
    h->base = NULL;
}

static void h_init_dirs(struct harness *h, const char *root)
{
    memset(h, 0, sizeof *h);
    if (root) {
        snprintf(h->dir, sizeof h->dir, "%s", root);
    } else {
        snprintf(h->dir, sizeof h->dir, "/tmp/check_bookie.XXXXXX");
        ck_assert_ptr_nonnull(mkdtemp(h->dir));
    }
    snprintf(h->jdir, sizeof h->jdir, "%s/journal", h->dir);
    snprintf(h->ldir, sizeof h->ldir, "%s/ledgers", h->dir);
    bk_options_default(&h->o);
    h->o.bind_address = "127.0.0.1";
    h->o.port = 0;
    h->o.journal_dir = h->jdir;
    h->o.ledger_dir = h->ldir;
    h->o.flush_interval_ms = 3600 * 1000; /* checkpoints only when a test asks */
    h->o.disk_check_interval_ms = 3600 * 1000;
}

static void h_rm(struct harness *h)
{
    char cmd[600];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", h->dir);
    ck_assert_int_eq(system(cmd), 0);
}

struct on_loop {
    struct harness *h;
    int what; /* 0 checkpoint, 1 disk check */
    int rc;
    sem_t done;
};

static void on_loop_cb(evutil_socket_t fd, short ev, void *arg)
{
    (void)fd;
    (void)ev;
    struct on_loop *r = arg;
    if (r->what == 0)
        r->rc = bk_server_checkpoint(r->h->srv);
    else
        bk_server_check_disk(r->h->srv);
    sem_post(&r->done);
}

static int run_on_loop(struct harness *h, int what)
{
    struct on_loop r = {h, what, 0, {{0}}};
    sem_init(&r.done, 0, 0);
    struct timeval zero = {0, 0};
    ck_assert_int_eq(event_base_once(h->base, -1, EV_TIMEOUT, on_loop_cb, &r, &zero), 0);
    sem_wait(&r.done);
    sem_destroy(&r.done);
    return r.rc;
}

/* ---- client ------------------------------------------------------------------------------ */

static int cl_connect(int port)
{
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    ck_assert_int_ge(fd, 0);
    struct sockaddr_in sin = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port)};
    inet_pton(AF_INET, "127.0.0.1", &sin.sin_addr);
    ck_assert_int_eq(connect(fd, (struct sockaddr *)&sin, sizeof sin), 0);
    struct timeval tv = {10, 0};
    setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
    int one = 1;
    setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    return fd;
}

static void cl_send(int fd, const void *buf, size_t len)
{
    const uint8_t *p = buf;
    while (len > 0) {
        ssize_t n = send(fd, p, len, MSG_NOSIGNAL);
        ck_assert_int_gt(n, 0);
        p += n;
        len -= (size_t)n;
    }
}

/* Read exactly len bytes; returns false on EOF/timeout. */
static bool cl_recv_exact(int fd, void *buf, size_t len)
{
    uint8_t *p = buf;
    while (len > 0) {
        ssize_t n = recv(fd, p, len, 0);
        if (n <= 0)
            return false;
        p += n;
        len -= (size_t)n;
    }
    return true;
}

/* One frame body (owned) or NULL on EOF. */
static uint8_t *cl_recv_frame(int fd, size_t *len)
{
    uint8_t lb[4];
    if (!cl_recv_exact(fd, lb, 4))
        return NULL;
    *len = bk_get_be32(lb);
    uint8_t *b = mg_malloc(*len + 1);
    ck_assert(cl_recv_exact(fd, b, *len));
    return b;
}

/* A BookKeeper entry body: header (ledger, entry, lac, length), 4-byte digest, payload. */
static uint8_t *make_entry(int64_t ledger, int64_t entry, int64_t lac, size_t payload, size_t *len)
{
    *len = 32 + 4 + payload;
    uint8_t *b = mg_malloc(*len);
    bk_put_be64(b, (uint64_t)ledger);
    bk_put_be64(b + 8, (uint64_t)entry);
    bk_put_be64(b + 16, (uint64_t)lac);
    bk_put_be64(b + 24, (uint64_t)(payload * (uint64_t)(entry + 1)));
    bk_put_be32(b + 32, 0xdeadbeef);
    for (size_t i = 0; i < payload; i++)
        b[36 + i] = (uint8_t)(entry * 31 + (int64_t)i);
    return b;
}

static void v2_add_send(int fd, int64_t ledger, int64_t entry, const uint8_t *key, unsigned flags,
                        size_t payload)
{
    size_t len;
    uint8_t *e = make_entry(ledger, entry, entry - 1, payload, &len);
    uint8_t *f = mg_malloc(8 + 20 + len);
    bk_put_be32(f, (uint32_t)(4 + 20 + len));
    bk_put_be32(f + 4, (2u << 24) | (1u << 16) | flags);
    memcpy(f + 8, key, 20);
    memcpy(f + 28, e, len);
    cl_send(fd, f, 28 + len);
    mg_free(f);
    mg_free(e);
}

/* Receive a v2 ADD response; returns rc, checks the echoed ids. */
static int v2_add_recv(int fd, int64_t ledger, int64_t entry)
{
    size_t n;
    uint8_t *b = cl_recv_frame(fd, &n);
    ck_assert_ptr_nonnull(b);
    ck_assert_uint_eq(n, 24);
    ck_assert_uint_eq(bk_get_be32(b), (2u << 24) | (1u << 16));
    int rc = (int)bk_get_be32(b + 4);
    ck_assert_int_eq((int64_t)bk_get_be64(b + 8), ledger);
    ck_assert_int_eq((int64_t)bk_get_be64(b + 16), entry);
    mg_free(b);
    return rc;
}

static int v2_add(int fd, int64_t ledger, int64_t entry, const uint8_t *key, unsigned flags)
{
    v2_add_send(fd, ledger, entry, key, flags, 100);
    return v2_add_recv(fd, ledger, entry);
}

/* v2 READ; returns rc and the body (owned) in *body when EOK. */
static int v2_read(int fd, int64_t ledger, int64_t entry, const uint8_t *fence_key, uint8_t **body,
                   size_t *blen)
{
    uint8_t f[4 + 4 + 16 + 20];
    size_t n = fence_key ? sizeof f : 24;
    bk_put_be32(f, (uint32_t)(n - 4));
    bk_put_be32(f + 4, (2u << 24) | (2u << 16) | (fence_key ? 1u : 0u));
    bk_put_be64(f + 8, (uint64_t)ledger);
    bk_put_be64(f + 16, (uint64_t)entry);
    if (fence_key)
        memcpy(f + 24, fence_key, 20);
    cl_send(fd, f, n);
    size_t len;
    uint8_t *b = cl_recv_frame(fd, &len);
    ck_assert_ptr_nonnull(b);
    ck_assert_uint_ge(len, 24);
    ck_assert_uint_eq(bk_get_be32(b), (2u << 24) | (2u << 16));
    int rc = (int)bk_get_be32(b + 4);
    ck_assert_int_eq((int64_t)bk_get_be64(b + 8), ledger);
    ck_assert_int_eq((int64_t)bk_get_be64(b + 16), entry);
    if (rc != 0)
        ck_assert_uint_eq(len, 24);
    if (body) {
        *blen = len - 24;
        *body = mg_malloc(*blen + 1);
        memcpy(*body, b + 24, *blen);
    }
    mg_free(b);
    return rc;
}

static uint64_t next_txn = 1;

static void v3_send_req(int fd, Bookkeeper__Proto__Request *req)
{
    size_t n = bookkeeper__proto__request__get_packed_size(req);
    uint8_t *b = mg_malloc(4 + n);
    bk_put_be32(b, (uint32_t)n);
    bookkeeper__proto__request__pack(req, b + 4);
    cl_send(fd, b, 4 + n);
    mg_free(b);
}

static Bookkeeper__Proto__Response *v3_recv(int fd)
{
    size_t n;
    uint8_t *b = cl_recv_frame(fd, &n);
    ck_assert_ptr_nonnull(b);
    Bookkeeper__Proto__Response *r = bookkeeper__proto__response__unpack(NULL, n, b);
    mg_free(b);
    ck_assert_ptr_nonnull(r);
    ck_assert_int_eq(r->header->version, BOOKKEEPER__PROTO__PROTOCOL_VERSION__VERSION_THREE);
    return r;
}

/* Send a request with the given operation and body and wait for its response. */
static Bookkeeper__Proto__Response *v3_call(int fd, Bookkeeper__Proto__Request *req, int op,
                                            int version)
{
    Bookkeeper__Proto__BKPacketHeader h = BOOKKEEPER__PROTO__BKPACKET_HEADER__INIT;
    h.version = (Bookkeeper__Proto__ProtocolVersion)version;
    h.operation = (Bookkeeper__Proto__OperationType)op;
    h.txnid = next_txn++;
    req->header = &h;
    v3_send_req(fd, req);
    Bookkeeper__Proto__Response *r = v3_recv(fd);
    ck_assert_int_eq(r->header->operation, op);
    ck_assert_uint_eq(r->header->txnid, h.txnid);
    return r;
}

static int v3_add(int fd, int64_t ledger, int64_t entry, const uint8_t *key, bool recovery,
                  uint8_t **sent, size_t *sent_len)
{
    Bookkeeper__Proto__Request req = BOOKKEEPER__PROTO__REQUEST__INIT;
    Bookkeeper__Proto__AddRequest a = BOOKKEEPER__PROTO__ADD_REQUEST__INIT;
    size_t len;
    uint8_t *e = make_entry(ledger, entry, entry - 1, 200, &len);
    a.ledgerid = ledger;
    a.entryid = entry;
    a.masterkey.data = (uint8_t *)key;
    a.masterkey.len = 20;
    a.body.data = e;
    a.body.len = len;
    if (recovery) {
        a.has_flag = true;
        a.flag = BOOKKEEPER__PROTO__ADD_REQUEST__FLAG__RECOVERY_ADD;
    }
    req.addrequest = &a;
    Bookkeeper__Proto__Response *r = v3_call(fd, &req, OP(ADD_ENTRY), 3);
    int st = r->status;
    ck_assert_ptr_nonnull(r->addresponse);
    ck_assert_int_eq(r->addresponse->status, st);
    ck_assert_int_eq(r->addresponse->ledgerid, ledger);
    ck_assert_int_eq(r->addresponse->entryid, entry);
    bookkeeper__proto__response__free_unpacked(r, NULL);
    if (sent) {
        *sent = e;
        *sent_len = len;
    } else {
        mg_free(e);
    }
    return st;
}

static Bookkeeper__Proto__Response *v3_read(int fd, int64_t ledger, int64_t entry,
                                            const uint8_t *fence_key)
{
    Bookkeeper__Proto__Request req = BOOKKEEPER__PROTO__REQUEST__INIT;
    Bookkeeper__Proto__ReadRequest rr = BOOKKEEPER__PROTO__READ_REQUEST__INIT;
    rr.ledgerid = ledger;
    rr.entryid = entry;
    if (fence_key) {
        rr.has_flag = true;
        rr.flag = BOOKKEEPER__PROTO__READ_REQUEST__FLAG__FENCE_LEDGER;
        rr.has_masterkey = true;
        rr.masterkey.data = (uint8_t *)fence_key;
        rr.masterkey.len = 20;
    }
    req.readrequest = &rr;
    Bookkeeper__Proto__Response *r = v3_call(fd, &req, OP(READ_ENTRY), 3);
    ck_assert_ptr_nonnull(r->readresponse);
    ck_assert_int_eq(r->readresponse->status, r->status);
    return r;
}

/* ---- tests ------------------------------------------------------------------------------- */

START_TEST(test_v2_add_read)
{
    struct harness h;
    h_init_dirs(&h, NULL);
    h_start(&h);
    int fd = cl_connect(h.port);
    for (int64_t e = 0; e < 3; e++)
        ck_assert_int_eq(v2_add(fd, 7, e, KEY_A, 0), 0);
    for (int64_t e = 0; e < 3; e++) {
        uint8_t *body;
        size_t blen, elen;
        ck_assert_int_eq(v2_read(fd, 7, e, NULL, &body, &blen), 0);
        uint8_t *want = make_entry(7, e, e - 1, 100, &elen);
        ck_assert_uint_eq(blen, elen);
        ck_assert_mem_eq(body, want, elen);
        mg_free(body);
        mg_free(want);
    }
    /* entry -1 = last stored entry; the reply carries entry id -1 */
    uint8_t *body;
    size_t blen;
    ck_assert_int_eq(v2_read(fd, 7, -1, NULL, &body, &blen), 0);
    ck_assert_int_eq((int64_t)bk_get_be64(body + 8), 2);
    mg_free(body);
    ck_assert_int_eq(v2_read(fd, 999, 0, NULL, NULL, NULL), 1); /* ENOLEDGER */
    ck_assert_int_eq(v2_read(fd, 7, 10, NULL, NULL, NULL), 2);  /* ENOENTRY */
    /* a different master key for an existing ledger: EUA */
    ck_assert_int_eq(v2_add(fd, 7, 3, KEY_B, 0), 102);
    close(fd);
    h_stop(&h, true);
    h_rm(&h);
}
END_TEST

START_TEST(test_v3_ops)
{
    struct harness h;
    h_init_dirs(&h, NULL);
    h_start(&h);
    int fd = cl_connect(h.port);
    uint8_t *sent[2];
    size_t sent_len[2];
    for (int e = 0; e < 2; e++)
        ck_assert_int_eq(v3_add(fd, 11, e, KEY_A, false, &sent[e], &sent_len[e]), ST(EOK));

    Bookkeeper__Proto__Response *r = v3_read(fd, 11, 1, NULL);
    ck_assert_int_eq(r->status, ST(EOK));
    ck_assert(r->readresponse->has_body);
    ck_assert_uint_eq(r->readresponse->body.len, sent_len[1]);
    ck_assert_mem_eq(r->readresponse->body.data, sent[1], sent_len[1]);
    ck_assert(r->readresponse->has_maxlac);
    ck_assert_int_eq(r->readresponse->maxlac, 0); /* LAC field of entry 1 */
    bookkeeper__proto__response__free_unpacked(r, NULL);

    r = v3_read(fd, 11, -1, NULL);
    ck_assert_int_eq(r->status, ST(EOK));
    ck_assert_mem_eq(r->readresponse->body.data, sent[1], sent_len[1]);
    bookkeeper__proto__response__free_unpacked(r, NULL);
    r = v3_read(fd, 12, 0, NULL);
    ck_assert_int_eq(r->status, ST(ENOLEDGER));
    bookkeeper__proto__response__free_unpacked(r, NULL);
    r = v3_read(fd, 11, 5, NULL);
    ck_assert_int_eq(r->status, ST(ENOENTRY));
    ck_assert(!r->readresponse->has_body);
    bookkeeper__proto__response__free_unpacked(r, NULL);
    ck_assert_int_eq(v3_add(fd, 11, 2, KEY_B, false, NULL, NULL), ST(EUA));

    /* READ_LAC: only the last entry so far */
    Bookkeeper__Proto__Request req = BOOKKEEPER__PROTO__REQUEST__INIT;
    Bookkeeper__Proto__ReadLacRequest rl = BOOKKEEPER__PROTO__READ_LAC_REQUEST__INIT;
    rl.ledgerid = 11;
    req.readlacrequest = &rl;
    r = v3_call(fd, &req, OP(READ_LAC), 3);
    ck_assert_int_eq(r->status, ST(EOK));
    ck_assert(r->readlacresponse->has_lastentrybody);
    ck_assert(!r->readlacresponse->has_lacbody);
    ck_assert_mem_eq(r->readlacresponse->lastentrybody.data, sent[1], sent_len[1]);
    bookkeeper__proto__response__free_unpacked(r, NULL);

    /* WRITE_LAC then READ_LAC returns the explicit LAC body */
    Bookkeeper__Proto__Request req2 = BOOKKEEPER__PROTO__REQUEST__INIT;
    Bookkeeper__Proto__WriteLacRequest wl = BOOKKEEPER__PROTO__WRITE_LAC_REQUEST__INIT;
    uint8_t lacbuf[20];
    bk_put_be64(lacbuf, 11);
    bk_put_be64(lacbuf + 8, 1);
    bk_put_be32(lacbuf + 16, 0x12345678);
    wl.ledgerid = 11;
    wl.lac = 1;
    wl.masterkey.data = (uint8_t *)KEY_A;
    wl.masterkey.len = 20;
    wl.body.data = lacbuf;
    wl.body.len = sizeof lacbuf;
    req2.writelacrequest = &wl;
    r = v3_call(fd, &req2, OP(WRITE_LAC), 3);
    ck_assert_int_eq(r->status, ST(EOK));
    ck_assert_ptr_nonnull(r->writelacresponse);
    bookkeeper__proto__response__free_unpacked(r, NULL);
    r = v3_call(fd, &req, OP(READ_LAC), 3);
    ck_assert_int_eq(r->status, ST(EOK));
    ck_assert(r->readlacresponse->has_lacbody);
    ck_assert_mem_eq(r->readlacresponse->lacbody.data, lacbuf, sizeof lacbuf);
    bookkeeper__proto__response__free_unpacked(r, NULL);
    rl.ledgerid = 4242;
    r = v3_call(fd, &req, OP(READ_LAC), 3);
    ck_assert_int_eq(r->status, ST(ENOLEDGER));
    bookkeeper__proto__response__free_unpacked(r, NULL);

    /* GET_BOOKIE_INFO */
    Bookkeeper__Proto__Request req3 = BOOKKEEPER__PROTO__REQUEST__INIT;
    Bookkeeper__Proto__GetBookieInfoRequest gi = BOOKKEEPER__PROTO__GET_BOOKIE_INFO_REQUEST__INIT;
    gi.has_requested = true;
    gi.requested = 3;
    req3.getbookieinforequest = &gi;
    r = v3_call(fd, &req3, OP(GET_BOOKIE_INFO), 3);
    ck_assert_int_eq(r->status, ST(EOK));
    ck_assert(r->getbookieinforesponse->has_totaldiskcapacity);
    ck_assert(r->getbookieinforesponse->has_freediskspace);
    ck_assert_int_gt(r->getbookieinforesponse->totaldiskcapacity, 0);
    ck_assert_int_le(r->getbookieinforesponse->freediskspace,
                     r->getbookieinforesponse->totaldiskcapacity);
    bookkeeper__proto__response__free_unpacked(r, NULL);

    /* FORCE_LEDGER, AUTH, START_TLS, unknown operation, bad version */
    Bookkeeper__Proto__Request req4 = BOOKKEEPER__PROTO__REQUEST__INIT;
    Bookkeeper__Proto__ForceLedgerRequest fl = BOOKKEEPER__PROTO__FORCE_LEDGER_REQUEST__INIT;
    fl.ledgerid = 11;
    req4.forceledgerrequest = &fl;
    r = v3_call(fd, &req4, OP(FORCE_LEDGER), 3);
    ck_assert_int_eq(r->status, ST(EOK));
    ck_assert_int_eq(r->forceledgerresponse->ledgerid, 11);
    bookkeeper__proto__response__free_unpacked(r, NULL);

    Bookkeeper__Proto__Request req5 = BOOKKEEPER__PROTO__REQUEST__INIT;
    Bookkeeper__Proto__AuthMessage am = BOOKKEEPER__PROTO__AUTH_MESSAGE__INIT;
    am.authpluginname = (char *)"AuthDisabledPlugin";
    req5.authrequest = &am;
    r = v3_call(fd, &req5, OP(AUTH), 3);
    ck_assert_int_eq(r->status, ST(EOK));
    ck_assert_str_eq(r->authresponse->authpluginname, "AuthDisabledPlugin");
    bookkeeper__proto__response__free_unpacked(r, NULL);

    Bookkeeper__Proto__Request req6 = BOOKKEEPER__PROTO__REQUEST__INIT;
    r = v3_call(fd, &req6, OP(START_TLS), 3);
    ck_assert_int_eq(r->status, ST(EBADREQ));
    bookkeeper__proto__response__free_unpacked(r, NULL);
    r = v3_call(fd, &req6, OP(GET_LIST_OF_ENTRIES_OF_LEDGER), 3);
    ck_assert_int_eq(r->status, ST(EBADREQ));
    bookkeeper__proto__response__free_unpacked(r, NULL);
    r = v3_call(fd, &req6, 77, 3);
    ck_assert_int_eq(r->status, ST(EBADREQ));
    bookkeeper__proto__response__free_unpacked(r, NULL);
    r = v3_call(fd, &req6, OP(READ_ENTRY), 2);
    ck_assert_int_eq(r->status, ST(EBADVERSION));
    bookkeeper__proto__response__free_unpacked(r, NULL);

    /* pipelined requests: every response carries its own txnId */
    close(fd);
    mg_free(sent[0]);
    mg_free(sent[1]);
    h_stop(&h, true);
    h_rm(&h);
}
END_TEST

START_TEST(test_fencing)
{
    struct harness h;
    h_init_dirs(&h, NULL);
    h_start(&h);
    int fd = cl_connect(h.port);
    for (int64_t e = 0; e < 3; e++)
        ck_assert_int_eq(v2_add(fd, 5, e, KEY_A, 0), 0);
    /* fencing read with the wrong key: EUA, ledger not fenced */
    ck_assert_int_eq(v2_read(fd, 5, -1, KEY_B, NULL, NULL), 102);
    ck_assert_int_eq(v2_add(fd, 5, 3, KEY_A, 0), 0);
    /* fencing read: EOK with the last entry */
    uint8_t *body;
    size_t blen;
    ck_assert_int_eq(v2_read(fd, 5, -1, KEY_A, &body, &blen), 0);
    ck_assert_int_eq((int64_t)bk_get_be64(body + 8), 3);
    mg_free(body);
    ck_assert_int_eq(v2_add(fd, 5, 4, KEY_A, 0), 104);    /* EFENCED */
    ck_assert_int_eq(v2_add(fd, 5, 4, KEY_A, 0x0002), 0); /* recovery add */
    ck_assert_int_eq(v2_add(fd, 5, 2, KEY_A, 0x0002), 0); /* re-add: re-acked */
    /* v3 fencing of an unknown ledger creates it fenced */
    int fd3 = cl_connect(h.port);
    Bookkeeper__Proto__Response *r = v3_read(fd3, 6, -1, KEY_A);
    ck_assert(r->status == ST(ENOENTRY) || r->status == ST(ENOLEDGER));
    bookkeeper__proto__response__free_unpacked(r, NULL);
    ck_assert_int_eq(v3_add(fd3, 6, 0, KEY_A, false, NULL, NULL), ST(EFENCED));
    ck_assert_int_eq(v3_add(fd3, 6, 0, KEY_A, true, NULL, NULL), ST(EOK));
    close(fd);
    close(fd3);
    h_stop(&h, true);

    /* the fence survives a restart (clean: from the index) ... */
    h_start(&h);
    fd = cl_connect(h.port);
    ck_assert_int_eq(v2_add(fd, 5, 5, KEY_A, 0), 104);
    ck_assert_int_eq(v2_add(fd, 6, 1, KEY_A, 0), 104);
    ck_assert_int_eq(v2_read(fd, 5, 4, NULL, NULL, NULL), 0);
    /* ... and an unclean one (from the journal) */
    ck_assert_int_eq(v2_add(fd, 8, 0, KEY_A, 0), 0);
    ck_assert_int_eq(v2_read(fd, 8, -1, KEY_A, NULL, NULL), 0);
    close(fd);
    h_stop(&h, false);
    h_start(&h);
    fd = cl_connect(h.port);
    ck_assert_int_eq(v2_add(fd, 8, 1, KEY_A, 0), 104);
    ck_assert_int_eq(v2_add(fd, 8, 1, KEY_B, 0x0002), 102); /* key survives too */
    close(fd);
    h_stop(&h, true);
    h_rm(&h);
}
END_TEST

START_TEST(test_group_commit)
{
    struct harness h;
    h_init_dirs(&h, NULL);
    h_start(&h);
    int fd = cl_connect(h.port);
    enum { N = 1000, PAYLOAD = 100 };
    /* All N adds in one write: they reach the bookie together, so the journal has many of
     * them queued whenever it syncs and must share each fsync among them (group commit). The
     * N responses (24 bytes each) fit in the socket buffers meanwhile. */
    size_t one = 8 + 20 + 32 + 4 + PAYLOAD, len = N * one;
    uint8_t *all = mg_malloc(len);
    for (int i = 0; i < N; i++) {
        size_t elen;
        uint8_t *e = make_entry(21, i, i - 1, PAYLOAD, &elen);
        ck_assert_uint_eq(8 + 20 + elen, one);
        uint8_t *f = all + (size_t)i * one;
        bk_put_be32(f, (uint32_t)(one - 4));
        bk_put_be32(f + 4, (2u << 24) | (1u << 16));
        memcpy(f + 8, KEY_A, 20);
        memcpy(f + 28, e, elen);
        mg_free(e);
    }
    cl_send(fd, all, len);
    mg_free(all);
    for (int i = 0; i < N; i++)
        ck_assert_int_eq(v2_add_recv(fd, 21, i), 0);
    struct bk_stats st;
    bk_server_stats(h.srv, &st);
    ck_assert_uint_eq(st.adds, N);
    ck_assert_uint_eq(st.records, N + 1);    /* + the ledger's masterKey record */
    ck_assert_uint_eq(st.fsyncs, st.groups); /* one fsync per group write */
    /* Shared: on average at least 10 adds per fsync (one per add would be N). */
    ck_assert_msg(st.fsyncs * 10 <= N, "%llu fsyncs for %d adds: group commit does not share them",
                  (unsigned long long)st.fsyncs, N);
    close(fd);
    h_stop(&h, true);
    h_rm(&h);
}
END_TEST

START_TEST(test_fsync_per_add)
{
    struct harness h;
    h_init_dirs(&h, NULL);
    h.o.max_group_wait_ms = 0;
    h.o.buffered_entries_threshold = 1;
    h_start(&h);
    int fd = cl_connect(h.port);
    for (int i = 0; i < 20; i++)
        v2_add_send(fd, 22, i, KEY_A, 0, 100);
    for (int i = 0; i < 20; i++)
        ck_assert_int_eq(v2_add_recv(fd, 22, i), 0);
    struct bk_stats st;
    bk_server_stats(h.srv, &st);
    ck_assert_uint_eq(st.adds, 20);
    ck_assert_uint_eq(st.records, 21); /* + the masterKey record */
    ck_assert_uint_eq(st.fsyncs, 21);  /* one per record: nothing shared */
    ck_assert_uint_eq(st.groups, 21);
    close(fd);
    h_stop(&h, true);
    h_rm(&h);
}
END_TEST

static void check_entries(int fd, int64_t ledger, int from, int to)
{
    for (int e = from; e < to; e++) {
        uint8_t *body;
        size_t blen, elen;
        ck_assert_int_eq(v2_read(fd, ledger, e, NULL, &body, &blen), 0);
        uint8_t *want = make_entry(ledger, e, e - 1, 1000, &elen);
        ck_assert_uint_eq(blen, elen);
        ck_assert_mem_eq(body, want, elen);
        mg_free(body);
        mg_free(want);
    }
}

START_TEST(test_replay_unclean)
{
    struct harness h;
    h_init_dirs(&h, NULL);
    h.o.journal_max_size = 32 * 1024; /* several journal files */
    h.o.entry_log_max_size = 64 * 1024;
    h_start(&h);
    int fd = cl_connect(h.port);
    for (int e = 0; e < 100; e++)
        v2_add_send(fd, 31, e, KEY_A, 0, 1000);
    for (int e = 0; e < 100; e++)
        ck_assert_int_eq(v2_add_recv(fd, 31, e), 0);
    /* a checkpoint in the middle: the first half goes to the index, old journals go */
    ck_assert_int_eq(run_on_loop(&h, 0), 0);
    for (int e = 100; e < 200; e++)
        v2_add_send(fd, 31, e, KEY_A, 0, 1000);
    for (int e = 100; e < 200; e++)
        ck_assert_int_eq(v2_add_recv(fd, 31, e), 0);
    check_entries(fd, 31, 0, 200);
    close(fd);
    /* crash: no final checkpoint, unflushed entry-log data dropped */
    h_stop(&h, false);

    h_start(&h);
    struct bk_stats st;
    bk_server_stats(h.srv, &st);
    ck_assert_uint_eq(st.replayed, 100); /* the second half: the first one was checkpointed */
    fd = cl_connect(h.port);
    check_entries(fd, 31, 0, 200);
    uint8_t *body;
    size_t blen;
    ck_assert_int_eq(v2_read(fd, 31, -1, NULL, &body, &blen), 0);
    ck_assert_int_eq((int64_t)bk_get_be64(body + 8), 199);
    mg_free(body);
    ck_assert_int_eq(v2_add(fd, 31, 200, KEY_A, 0), 0);
    close(fd);
    h_stop(&h, true);

    /* after a clean stop nothing is left to replay and everything is in the index */
    h_start(&h);
    bk_server_stats(h.srv, &st);
    ck_assert_uint_eq(st.replayed, 0);
    fd = cl_connect(h.port);
    check_entries(fd, 31, 0, 200);
    close(fd);
    h_stop(&h, true);
    h_rm(&h);
}
END_TEST

START_TEST(test_garbage_frame)
{
    struct harness h;
    h_init_dirs(&h, NULL);
    h_start(&h);
    int good = cl_connect(h.port);
    ck_assert_int_eq(v2_add(good, 41, 0, KEY_A, 0), 0);
    /* garbage: neither framing */
    int bad = cl_connect(h.port);
    uint8_t g[12] = {0, 0, 0, 8, 0x7f, 1, 2, 3, 4, 5, 6, 7};
    cl_send(bad, g, sizeof g);
    uint8_t x;
    ck_assert_int_eq(recv(bad, &x, 1, 0), 0); /* closed by the bookie */
    close(bad);
    /* oversized frame */
    bad = cl_connect(h.port);
    uint8_t big[8];
    bk_put_be32(big, 6u << 20);
    bk_put_be32(big + 4, (2u << 24) | (1u << 16));
    cl_send(bad, big, sizeof big);
    ck_assert_int_eq(recv(bad, &x, 1, 0), 0);
    close(bad);
    /* undecodable v3 */
    bad = cl_connect(h.port);
    uint8_t u[9] = {0, 0, 0, 5, 0x0a, 0xff, 0xff, 0xff, 0xff};
    cl_send(bad, u, sizeof u);
    ck_assert_int_eq(recv(bad, &x, 1, 0), 0);
    close(bad);
    /* the other connection is unaffected */
    ck_assert_int_eq(v2_add(good, 41, 1, KEY_A, 0), 0);
    ck_assert_int_eq(v2_read(good, 41, 1, NULL, NULL, NULL), 0);
    close(good);
    h_stop(&h, true);
    h_rm(&h);
}
END_TEST

START_TEST(test_readonly_injected)
{
    struct harness h;
    h_init_dirs(&h, NULL);
    h_start(&h);
    int fd = cl_connect(h.port);
    ck_assert_int_eq(v2_add(fd, 51, 0, KEY_A, 0), 0);
    ck_assert(!bk_server_readonly(h.srv));
    bk_server_inject_journal_error(h.srv, ENOSPC);
    /* the add whose journal write failed is NOT acknowledged EOK */
    ck_assert_int_eq(v2_add(fd, 51, 1, KEY_A, 0), 101); /* EIO */
    ck_assert_int_eq(v2_add(fd, 51, 2, KEY_A, 0), 105); /* EREADONLY */
    int fd3 = cl_connect(h.port);
    ck_assert_int_eq(v3_add(fd3, 52, 0, KEY_A, false, NULL, NULL), ST(EREADONLY));
    close(fd3);
    ck_assert(bk_server_readonly(h.srv));
    /* reads go on */
    ck_assert_int_eq(v2_read(fd, 51, 0, NULL, NULL, NULL), 0);
    ck_assert_int_eq(v2_read(fd, 51, 1, NULL, NULL, NULL), 2); /* never stored */
    close(fd);
    h_stop(&h, true);
    h_rm(&h);
}
END_TEST

START_TEST(test_readonly_tmpfs)
{
    char root[] = "/tmp/check_bookie_tmpfs.XXXXXX";
    ck_assert_ptr_nonnull(mkdtemp(root));
    if (mount("tmpfs", root, "tmpfs", 0, "size=4m") != 0) {
        /* scripts/test.sh counts this line as a skip, not a pass */
        printf("SKIP: test_readonly_tmpfs: cannot mount a tmpfs (%s): needs root and "
               "CAP_SYS_ADMIN\n",
               strerror(errno));
        fflush(stdout);
        rmdir(root);
        return;
    }
    struct harness h;
    h_init_dirs(&h, root);
    h.o.disk_check_interval_ms = 20;
    h_start(&h);
    int fd = cl_connect(h.port);
    int acked = 0, rc = 0;
    for (int e = 0; e < 400; e++) {
        v2_add_send(fd, 61, e, KEY_A, 0, 60000);
        rc = v2_add_recv(fd, 61, e);
        if (rc != 0)
            break;
        acked++;
    }
    ck_assert_msg(rc == 101 || rc == 105, "first refused add: rc %d", rc);
    ck_assert_int_gt(acked, 0);
    ck_assert(bk_server_readonly(h.srv));
    ck_assert_int_eq(v2_add(fd, 61, acked + 1, KEY_A, 0), 105);
    /* everything acknowledged is readable */
    for (int e = 0; e < acked; e++)
        ck_assert_int_eq(v2_read(fd, 61, e, NULL, NULL, NULL), 0);
    close(fd);
    h_stop(&h, true);
    umount(root);
    rmdir(root);
}
END_TEST

static Suite *bookie_suite(void)
{
    Suite *s = suite_create("bookie");
    TCase *tc = tcase_create("core");
    tcase_set_timeout(tc, 120);
    tcase_add_test(tc, test_v2_add_read);
    tcase_add_test(tc, test_v3_ops);
    tcase_add_test(tc, test_fencing);
    tcase_add_test(tc, test_group_commit);
    tcase_add_test(tc, test_fsync_per_add);
    tcase_add_test(tc, test_replay_unclean);
    tcase_add_test(tc, test_garbage_frame);
    tcase_add_test(tc, test_readonly_injected);
    tcase_add_test(tc, test_readonly_tmpfs);
    suite_add_tcase(s, tc);
    return s;
}

int main(void)
{
    evthread_use_pthreads();
    mg_log_set_level(MG_LOG_WARN);
    SRunner *sr = srunner_create(bookie_suite());
    srunner_run_all(sr, CK_NORMAL);
    int failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed == 0 ? EXIT_SUCCESS : EXIT_FAILURE;
}
