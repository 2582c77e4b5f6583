/*
 * check_bookie.c - the bookie module (Check), over real sockets: in tests/integration
 * because each test runs a server on a thread and talks TCP to it (make check runs it).
 *
 * Each test starts a bk_server in process on port 0 with temporary directories; its event
 * loop runs on a helper thread, and the test talks to it over real sockets with a small
 * blocking client speaking v2 and v3 (every receive has a 10 s timeout, so a broken bookie
 * fails a test instead of hanging it). Server-side hooks (checkpoint, disk check) run on the
 * loop thread through event_base_once. No assertion depends on timing.
 */
#include "BookkeeperProtocol.pb-c.h"
#include "bkc/bkc.h"
#include "bookie/bookie_int.h"
#include "config/cfg.h"
#include "lib/tl.h"
#include "meta/meta.h"
#include "meta/meta_int.h"
#include "util/alloc.h"
#include "util/bytes.h"
#include "util/crc.h"
#include "util/err.h"
#include "util/log.h"
#include "util/loop.h"

#include <arpa/inet.h>
#include <check.h>
#include <dirent.h>
#include <errno.h>
#include <event2/buffer.h>
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
#include <sys/stat.h>
#include <sys/statvfs.h>
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

/* Capture what the process writes to stderr (the log) between cap_start and cap_end. */
struct capture {
    int saved;
    char path[64];
};

static void cap_start(struct capture *c)
{
    snprintf(c->path, sizeof c->path, "/tmp/check_bookie_log.XXXXXX");
    int fd = mkstemp(c->path);
    ck_assert_int_ge(fd, 0);
    fflush(stderr);
    c->saved = dup(2);
    ck_assert_int_ge(c->saved, 0);
    ck_assert_int_ge(dup2(fd, 2), 0);
    close(fd);
}

/* The captured text (owned, NUL-terminated); stderr is restored. */
static char *cap_end(struct capture *c)
{
    fflush(stderr);
    dup2(c->saved, 2);
    close(c->saved);
    FILE *f = fopen(c->path, "rb");
    ck_assert_ptr_nonnull(f);
    char *buf = mg_malloc(1 << 20);
    size_t n = fread(buf, 1, (1 << 20) - 1, f);
    buf[n] = '\0';
    fclose(f);
    unlink(c->path);
    fputs(buf, stderr); /* still visible in the test log */
    return buf;
}

/* Number of occurrences of needle in text. */
static int count_str(const char *text, const char *needle)
{
    int n = 0;
    for (const char *p = text; (p = strstr(p, needle)) != NULL; p++)
        n++;
    return n;
}

/* Number of files in dir whose name ends with suffix. */
static int count_files(const char *dir, const char *suffix)
{
    DIR *d = opendir(dir);
    ck_assert_ptr_nonnull(d);
    int n = 0;
    struct dirent *de;
    size_t sl = strlen(suffix);
    while ((de = readdir(d)) != NULL) {
        size_t l = strlen(de->d_name);
        if (l > sl && strcmp(de->d_name + l - sl, suffix) == 0)
            n++;
    }
    closedir(d);
    return n;
}

struct on_loop {
    struct harness *h;
    int what; /* 0 checkpoint, 1 disk check, 2 read state, 3 begin a checkpoint (no wait) */
    int rc;
    sem_t done;
    struct bk_stats st; /* what 2 */
    bool readonly;      /* what 2 */
    size_t waiting;     /* journalled records waiting for the write cache */
    bool cache_paused;  /* some connection is not read until the write cache has room */
};

static void on_loop_cb(evutil_socket_t fd, short ev, void *arg)
{
    (void)fd;
    (void)ev;
    struct on_loop *r = arg;
    if (r->what == 0)
        r->rc = bk_server_checkpoint(r->h->srv);
    else if (r->what == 1)
        bk_server_check_disk(r->h->srv);
    else if (r->what == 3)
        bk_server_checkpoint_start(r->h->srv);
    bk_server_stats(r->h->srv, &r->st);
    r->readonly = bk_server_readonly(r->h->srv);
    r->waiting = r->h->srv->n_waiting;
    r->cache_paused = r->h->srv->conns_cache_paused;
    sem_post(&r->done);
}

/* Run what on the loop thread (a zero timer) and wait for it; the server's state then. */
static void run_on_loop_full(struct harness *h, struct on_loop *r, int what)
{
    memset(r, 0, sizeof *r);
    r->h = h;
    r->what = what;
    sem_init(&r->done, 0, 0);
    struct timeval zero = {0, 0};
    ck_assert_int_eq(event_base_once(h->base, -1, EV_TIMEOUT, on_loop_cb, r, &zero), 0);
    sem_wait(&r->done);
    sem_destroy(&r->done);
}

static int run_on_loop_state(struct harness *h, int what, struct bk_stats *st, bool *readonly)
{
    struct on_loop r;
    run_on_loop_full(h, &r, what);
    if (st)
        *st = r.st;
    if (readonly)
        *readonly = r.readonly;
    return r.rc;
}

static int run_on_loop(struct harness *h, int what)
{
    return run_on_loop_state(h, what, NULL, NULL);
}

/* The server's read-only state, read on its loop thread. */
static bool h_readonly(struct harness *h)
{
    bool ro;
    run_on_loop_state(h, 2, NULL, &ro);
    return ro;
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
    *len = mg_get_be32(lb);
    uint8_t *b = mg_malloc(*len + 1);
    ck_assert(cl_recv_exact(fd, b, *len));
    return b;
}

/* A BookKeeper entry body: header (ledger, entry, lac, length), 4-byte digest, payload. */
static uint8_t *make_entry(int64_t ledger, int64_t entry, int64_t lac, size_t payload, size_t *len)
{
    *len = 32 + 4 + payload;
    uint8_t *b = mg_malloc(*len);
    mg_put_be64(b, (uint64_t)ledger);
    mg_put_be64(b + 8, (uint64_t)entry);
    mg_put_be64(b + 16, (uint64_t)lac);
    mg_put_be64(b + 24, (uint64_t)(payload * (uint64_t)(entry + 1)));
    mg_put_be32(b + 32, 0xdeadbeef);
    for (size_t i = 0; i < payload; i++)
        b[36 + i] = (uint8_t)(entry * 31 + (int64_t)i);
    return b;
}

/* A v2 ADD frame of make_entry's entry (owned), its length in *flen. */
static uint8_t *v2_add_frame(int64_t ledger, int64_t entry, const uint8_t *key, unsigned flags,
                             size_t payload, size_t *flen)
{
    size_t len;
    uint8_t *e = make_entry(ledger, entry, entry - 1, payload, &len);
    uint8_t *f = mg_malloc(8 + 20 + len);
    mg_put_be32(f, (uint32_t)(4 + 20 + len));
    mg_put_be32(f + 4, (2u << 24) | (1u << 16) | flags);
    memcpy(f + 8, key, 20);
    memcpy(f + 28, e, len);
    mg_free(e);
    *flen = 28 + len;
    return f;
}

static void v2_add_send(int fd, int64_t ledger, int64_t entry, const uint8_t *key, unsigned flags,
                        size_t payload)
{
    size_t len;
    uint8_t *f = v2_add_frame(ledger, entry, key, flags, payload, &len);
    cl_send(fd, f, len);
    mg_free(f);
}

/* Receive a v2 ADD response; returns rc, checks the echoed ids. */
static int v2_add_recv(int fd, int64_t ledger, int64_t entry)
{
    size_t n;
    uint8_t *b = cl_recv_frame(fd, &n);
    ck_assert_ptr_nonnull(b);
    ck_assert_uint_eq(n, 24);
    ck_assert_uint_eq(mg_get_be32(b), (2u << 24) | (1u << 16));
    int rc = (int)mg_get_be32(b + 4);
    ck_assert_int_eq((int64_t)mg_get_be64(b + 8), ledger);
    ck_assert_int_eq((int64_t)mg_get_be64(b + 16), entry);
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
    mg_put_be32(f, (uint32_t)(n - 4));
    mg_put_be32(f + 4, (2u << 24) | (2u << 16) | (fence_key ? 1u : 0u));
    mg_put_be64(f + 8, (uint64_t)ledger);
    mg_put_be64(f + 16, (uint64_t)entry);
    if (fence_key)
        memcpy(f + 24, fence_key, 20);
    cl_send(fd, f, n);
    size_t len;
    uint8_t *b = cl_recv_frame(fd, &len);
    ck_assert_ptr_nonnull(b);
    ck_assert_uint_ge(len, 24);
    ck_assert_uint_eq(mg_get_be32(b), (2u << 24) | (2u << 16));
    int rc = (int)mg_get_be32(b + 4);
    ck_assert_int_eq((int64_t)mg_get_be64(b + 8), ledger);
    ck_assert_int_eq((int64_t)mg_get_be64(b + 16), entry);
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
    mg_put_be32(b, (uint32_t)n);
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

/* ---- journal files ------------------------------------------------------------------------ */

/* Path of the journal file with the highest id (the last one). */
static void last_journal(struct harness *h, char *path, size_t n)
{
    char dir[400];
    snprintf(dir, sizeof dir, "%s/current", h->jdir);
    DIR *d = opendir(dir);
    ck_assert_ptr_nonnull(d);
    unsigned long long best = 0;
    struct dirent *de;
    while ((de = readdir(d)) != NULL) {
        char *end;
        unsigned long long id = strtoull(de->d_name, &end, 16);
        if (end != de->d_name && strcmp(end, ".txn") == 0 && id > best)
            best = id;
    }
    closedir(d);
    ck_assert_uint_gt(best, 0);
    snprintf(path, n, "%s/%llx.txn", dir, best);
}

/* Offsets of the groups of a journal file of the version written (at most max); returns the count.
 */
static int journal_groups(const uint8_t *b, size_t len, uint64_t *offs, int max)
{
    ck_assert_uint_ge(len, BK_JOURNAL_HEADER_SIZE);
    ck_assert_uint_eq(mg_get_be32(b + 4), BK_JOURNAL_VERSION);
    int n = 0;
    uint64_t off = BK_JOURNAL_HEADER_SIZE;
    while (off + BK_GROUP_HEADER_SIZE <= len && mg_get_be32(b + off) == BK_GROUP_MAGIC &&
           mg_get_be32(b + off + 8) != 0) { /* up to the end mark (an empty group) */
        ck_assert_int_lt(n, max);
        offs[n++] = off;
        off += BK_GROUP_HEADER_SIZE + mg_get_be32(b + off + 4);
    }
    return n;
}

/* Overwrite n bytes of a file at off with their complement. */
static void flip_bytes(const char *path, uint64_t off, size_t n)
{
    FILE *f = fopen(path, "r+b");
    ck_assert_ptr_nonnull(f);
    uint8_t b[16];
    ck_assert_uint_le(n, sizeof b);
    fseek(f, (long)off, SEEK_SET);
    ck_assert_uint_eq(fread(b, 1, n, f), n);
    for (size_t i = 0; i < n; i++)
        b[i] = (uint8_t)~b[i];
    fseek(f, (long)off, SEEK_SET);
    ck_assert_uint_eq(fwrite(b, 1, n, f), n);
    fclose(f);
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
    ck_assert_int_eq((int64_t)mg_get_be64(body + 8), 2);
    mg_free(body);
    ck_assert_int_eq(v2_read(fd, 999, 0, NULL, NULL, NULL), 1); /* ENOLEDGER */
    ck_assert_int_eq(v2_read(fd, 7, 10, NULL, NULL, NULL), 2);  /* ENOENTRY */
    /* a different master key for an existing ledger: EUA */
    ck_assert_int_eq(v2_add(fd, 7, 3, KEY_B, 0), 102);
    close(fd);
    h_stop(&h, true);
    tl_rm_rf(h.dir);
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
    mg_put_be64(lacbuf, 11);
    mg_put_be64(lacbuf + 8, 1);
    mg_put_be32(lacbuf + 16, 0x12345678);
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
    /* an operation without its body is refused; the connection goes on */
    const int bodyless[] = {OP(ADD_ENTRY), OP(READ_ENTRY), OP(READ_LAC), OP(WRITE_LAC),
                            OP(FORCE_LEDGER)};
    for (size_t i = 0; i < sizeof bodyless / sizeof bodyless[0]; i++) {
        r = v3_call(fd, &req6, bodyless[i], 3);
        ck_assert_int_eq(r->status, ST(EBADREQ));
        bookkeeper__proto__response__free_unpacked(r, NULL);
    }
    r = v3_call(fd, &req6, OP(READ_ENTRY), 2);
    ck_assert_int_eq(r->status, ST(EBADVERSION));
    bookkeeper__proto__response__free_unpacked(r, NULL);

    /* pipelined requests: every response carries its own txnId */
    close(fd);
    mg_free(sent[0]);
    mg_free(sent[1]);
    h_stop(&h, true);
    tl_rm_rf(h.dir);
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
    ck_assert_int_eq((int64_t)mg_get_be64(body + 8), 3);
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
    tl_rm_rf(h.dir);
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
        mg_put_be32(f, (uint32_t)(one - 4));
        mg_put_be32(f + 4, (2u << 24) | (1u << 16));
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
    tl_rm_rf(h.dir);
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
    tl_rm_rf(h.dir);
}
END_TEST

static void check_entries(int fd, int64_t ledger, int from, int to, size_t payload)
{
    for (int e = from; e < to; e++) {
        uint8_t *body;
        size_t blen, elen;
        ck_assert_int_eq(v2_read(fd, ledger, e, NULL, &body, &blen), 0);
        uint8_t *want = make_entry(ledger, e, e - 1, payload, &elen);
        ck_assert_uint_eq(blen, elen);
        ck_assert_mem_eq(body, want, elen);
        mg_free(body);
        mg_free(want);
    }
}

/* Wait (bounded) until the storage thread's checkpoint is parked at its test gate. */
static void wait_parked(struct harness *h)
{
    for (int i = 0; i < 10000 && !bk_store_gate_parked(&h->srv->store); i++)
        usleep(1000);
    ck_assert_msg(bk_store_gate_parked(&h->srv->store), "no checkpoint reached the gate");
}

/* Wait (bounded) until the server completed more than n checkpoints; their count. */
static uint64_t wait_checkpoints(struct harness *h, uint64_t n)
{
    struct bk_stats st = {0};
    for (int i = 0; i < 10000; i++) {
        run_on_loop_state(h, 2, &st, NULL);
        if (st.checkpoints > n)
            break;
        usleep(1000);
    }
    ck_assert_uint_gt(st.checkpoints, n);
    return st.checkpoints;
}

/* While the storage thread holds a checkpoint (its entries written to the entry log, the
 * index not yet committed), the loop goes on: adds are acknowledged into the other half of
 * the write cache, and every entry reads back, from either half; once the checkpoint is
 * done they read back from the entry log. */
START_TEST(test_read_during_flush)
{
    struct harness h;
    h_init_dirs(&h, NULL);
    h_start(&h);
    int fd = cl_connect(h.port);
    enum { N = 40, PAYLOAD = 700 };
    for (int e = 0; e < N; e++)
        v2_add_send(fd, 41, e, KEY_A, 0, PAYLOAD);
    for (int e = 0; e < N; e++)
        ck_assert_int_eq(v2_add_recv(fd, 41, e), 0);
    struct bk_stats st;
    run_on_loop_state(&h, 2, &st, NULL);
    bk_store_gate(&h.srv->store, BK_GATE_BEFORE_INDEX);
    run_on_loop(&h, 3);
    wait_parked(&h);
    for (int e = N; e < 2 * N; e++)
        v2_add_send(fd, 41, e, KEY_A, 0, PAYLOAD);
    for (int e = N; e < 2 * N; e++)
        ck_assert_int_eq(v2_add_recv(fd, 41, e), 0);
    check_entries(fd, 41, 0, 2 * N, PAYLOAD);
    ck_assert(bk_store_gate_parked(&h.srv->store)); /* all of it while the checkpoint waited */
    bk_store_gate(&h.srv->store, BK_GATE_NONE);
    wait_checkpoints(&h, st.checkpoints);
    check_entries(fd, 41, 0, 2 * N, PAYLOAD);
    /* the first half is in the index now, the second still cached: a checkpoint and a
     * restart read all of it from the entry log */
    ck_assert_int_eq(run_on_loop(&h, 0), 0);
    close(fd);
    h_stop(&h, true);
    h_start(&h);
    fd = cl_connect(h.port);
    check_entries(fd, 41, 0, 2 * N, PAYLOAD);
    close(fd);
    h_stop(&h, true);
    tl_rm_rf(h.dir);
}
END_TEST

/* Adds of ledger 42, entries [from, to) of PAYLOAD bytes, sent on fd from a thread of their
 * own: the bookie stops reading a connection while its write cache is full, so a blocking
 * send may wait for it. */
struct add_sender {
    pthread_t thread;
    int fd;
    int from, to;
    size_t payload;
    sem_t *go; /* posted before entries [go_at, to) are sent, when set */
    int go_at;
    bool failed; /* a send failed (asserted by the test thread) */
};

static void *add_sender_main(void *arg)
{
    struct add_sender *a = arg;
    for (int e = a->from; e < a->to && !a->failed; e++) {
        if (a->go && e == a->go_at)
            sem_wait(a->go);
        size_t len;
        uint8_t *f = v2_add_frame(42, e, KEY_A, 0, a->payload, &len);
        for (size_t off = 0; off < len;) {
            ssize_t n = send(a->fd, f + off, len - off, MSG_NOSIGNAL);
            if (n <= 0) {
                a->failed = true;
                break;
            }
            off += (size_t)n;
        }
        mg_free(f);
    }
    return NULL;
}

static void add_sender_start(struct add_sender *a)
{
    ck_assert_int_eq(pthread_create(&a->thread, NULL, add_sender_main, a), 0);
}

static void add_sender_join(struct add_sender *a)
{
    pthread_join(a->thread, NULL);
    ck_assert_msg(!a->failed, "sending the adds failed");
}

/* Wait (bounded) until an add waits for the write cache (both halves full, the checkpoint of
 * one held at its gate). */
static void wait_cache_full(struct harness *h)
{
    struct bk_store *store = &h->srv->store;
    for (int i = 0; i < 10000 && atomic_load(&store->flush_waits_seen) == 0; i++)
        usleep(1000);
    ck_assert_uint_ge(atomic_load(&store->flush_waits_seen), 1);
    wait_parked(h);
}

/* Both halves of the write cache full (a checkpoint held on the storage thread): the next
 * add waits for it, and the loop does not: another connection's READ and a timer are
 * served meanwhile, and the connection sending the adds is no longer read (adds sent after
 * the wait began are not even journalled). Released, every add is answered, EOK and in
 * order; none is lost, and the cache never held more than its two halves (plus the add that
 * filled one). */
START_TEST(test_write_cache_backpressure)
{
    struct harness h;
    h_init_dirs(&h, NULL);
    enum { PAYLOAD = 8 * 1024 };
    h.o.write_cache_max = 256 * 1024; /* halves of 128 KiB: 15 entries each */
    size_t entry = 32 + 4 + PAYLOAD;
    /* enough to fill both halves and more; then some sent once adds wait */
    int n1 = (int)(3 * (h.o.write_cache_max / 2) / entry) + (int)(mg_mono_us() % 8);
    int n = n1 + 3 + (int)(mg_mono_us() % 5);
    h_start(&h);
    struct bk_store *store = &h.srv->store;
    int fd = cl_connect(h.port);
    bk_store_gate(store, BK_GATE_BEFORE_WRITE);
    sem_t go;
    sem_init(&go, 0, 0);
    struct add_sender snd = {
        .fd = fd, .from = 0, .to = n, .payload = PAYLOAD, .go = &go, .go_at = n1};
    add_sender_start(&snd);
    /* the loop fills one half, hands it to the storage thread (held at the gate), fills
     * the other, and then an add waits */
    wait_cache_full(&h);
    /* (a) the loop goes on: another connection's READ (of an entry in the half held) */
    int fd2 = cl_connect(h.port);
    check_entries(fd2, 42, 0, 1, PAYLOAD);
    /* ... and a timer, which sees adds waiting for the cache */
    struct on_loop r;
    run_on_loop_full(&h, &r, 2);
    ck_assert_uint_gt(r.waiting, 0);
    /* the adds sent now are not read: their connection is paused, none of them journalled */
    sem_post(&go);
    for (int i = 0; i < 10000; i++) {
        run_on_loop_full(&h, &r, 2);
        if (r.cache_paused)
            break;
        usleep(1000);
    }
    ck_assert_msg(r.cache_paused, "the connection sending adds is still read");
    ck_assert_uint_le(r.st.adds, (uint64_t)n1);
    ck_assert(bk_store_gate_parked(store)); /* all of it while the checkpoint waited */
    /* some adds were answered before the wait, not all */
    int answered = 0;
    for (;;) {
        uint8_t b[4 + 24];
        ssize_t got = recv(fd, b, sizeof b, MSG_DONTWAIT | MSG_PEEK);
        if (got < (ssize_t)sizeof b)
            break;
        ck_assert_int_eq(v2_add_recv(fd, 42, answered), 0);
        answered++;
    }
    ck_assert_int_lt(answered, n1);
    ck_assert_uint_le(store->cache_peak, 2 * (store->cache_max + entry));
    /* (b) released: the rest, in order */
    bk_store_gate(store, BK_GATE_NONE);
    for (int e = answered; e < n; e++)
        ck_assert_int_eq(v2_add_recv(fd, 42, e), 0);
    add_sender_join(&snd);
    sem_destroy(&go);
    check_entries(fd2, 42, 0, n, PAYLOAD);
    ck_assert_int_eq(run_on_loop(&h, 0), 0);
    ck_assert_uint_le(store->cache_peak, 2 * (store->cache_max + entry));
    close(fd);
    close(fd2);
    h_stop(&h, true);
    h_start(&h);
    fd = cl_connect(h.port);
    check_entries(fd, 42, 0, n, PAYLOAD);
    close(fd);
    h_stop(&h, true);
    tl_rm_rf(h.dir);
}
END_TEST

/* Records journalled but not yet taken by the journal thread (it is held). */
static int journal_queued(struct bk_journal *j)
{
    int n = 0;
    pthread_mutex_lock(&j->lock);
    for (struct bk_jreq *r = j->q_head; r; r = r->next)
        n++;
    pthread_mutex_unlock(&j->lock);
    return n;
}

/* A checkpoint that begins in the middle of a journal group (the write cache half filled by
 * its first records) must not move lastMark past the group: the rest of it went into the
 * next half. After that checkpoint a crash loses nothing acknowledged: replay applies the
 * whole group again. */
START_TEST(test_checkpoint_mid_group)
{
    struct harness h;
    h_init_dirs(&h, NULL);
    enum { PAYLOAD = 4 * 1024 };
    h.o.write_cache_max = 64 * 1024; /* halves of 32 KiB */
    size_t entry = 32 + 4 + PAYLOAD;
    /* one group of over a half but short of two (well under journalBufferedWritesThreshold):
     * its first records fill the first half (the checkpoint begins at the add after the one
     * that took the half past its size, so at least two more than a half), the rest stay in the
     * second half, which does not fill, so no later checkpoint can cover the group before
     * the crash (one that did would rightly leave nothing to replay) */
    int per_half = (int)(h.o.write_cache_max / 2 / entry);
    int k = per_half + 2 + (int)(mg_mono_us() % (uint64_t)(per_half - 2));
    h_start(&h);
    struct bk_journal *j = &h.srv->journal;
    struct bk_stats st;
    run_on_loop_state(&h, 2, &st, NULL);
    int fd = cl_connect(h.port);
    /* the key record and every add in the journal's queue, then taken as one group */
    bk_journal_hold(j, true);
    for (int e = 0; e < k; e++)
        v2_add_send(fd, 42, e, KEY_A, 0, PAYLOAD);
    for (int i = 0; i < 10000 && journal_queued(j) < k + 1; i++)
        usleep(1000);
    ck_assert_int_eq(journal_queued(j), k + 1);
    bk_journal_hold(j, false);
    for (int e = 0; e < k; e++)
        ck_assert_int_eq(v2_add_recv(fd, 42, e), 0);
    struct bk_stats after;
    run_on_loop_state(&h, 2, &after, NULL);
    ck_assert_uint_eq(after.groups, st.groups + 1);
    wait_checkpoints(&h, st.checkpoints); /* begun when the first half filled */
    close(fd);
    h_stop(&h, false); /* the crash: the rest of the group only in the write cache */
    h_start(&h);
    bk_server_stats(h.srv, &st);
    ck_assert_uint_ge(st.replayed, (uint64_t)k);
    fd = cl_connect(h.port);
    check_entries(fd, 42, 0, k, PAYLOAD);
    close(fd);
    h_stop(&h, true);
    tl_rm_rf(h.dir);
}
END_TEST

/* A crash at each step of a checkpoint on the storage thread (before the entry-log write,
 * after it but before the index commit, after the commit but before lastMark moved) loses
 * nothing: lastMark still points before the checkpoint's records, the journal replays them
 * (and the adds acknowledged meanwhile) and every entry reads back. */
START_TEST(test_crash_mid_flush)
{
    static const enum bk_gate gates[] = {BK_GATE_BEFORE_WRITE, BK_GATE_BEFORE_INDEX,
                                         BK_GATE_BEFORE_MARK};
    enum { K = 30, PAYLOAD = 900 };
    for (size_t g = 0; g < sizeof gates / sizeof gates[0]; g++) {
        struct harness h;
        h_init_dirs(&h, NULL);
        h.o.entry_log_max_size = 64 * 1024; /* the held checkpoint rolls logs too */
        h_start(&h);
        int fd = cl_connect(h.port);
        for (int e = 0; e < K; e++)
            ck_assert_int_eq(v2_add(fd, 43, e, KEY_A, 0), 0);
        ck_assert_int_eq(run_on_loop(&h, 0), 0); /* durable: not replayed */
        for (int e = K; e < 2 * K; e++)
            v2_add_send(fd, 43, e, KEY_A, 0, PAYLOAD);
        for (int e = K; e < 2 * K; e++)
            ck_assert_int_eq(v2_add_recv(fd, 43, e), 0);
        bk_store_gate(&h.srv->store, gates[g]);
        run_on_loop(&h, 3);
        wait_parked(&h);
        for (int e = 2 * K; e < 3 * K; e++)
            ck_assert_int_eq(v2_add(fd, 43, e, KEY_A, 0), 0);
        close(fd);
        h_stop(&h, false); /* the crash: the held checkpoint never finishes */

        h_start(&h);
        struct bk_stats st;
        bk_server_stats(h.srv, &st);
        ck_assert_uint_eq(st.replayed, 2 * K);
        fd = cl_connect(h.port);
        check_entries(fd, 43, 0, K, 100);
        check_entries(fd, 43, K, 2 * K, PAYLOAD);
        check_entries(fd, 43, 2 * K, 3 * K, 100);
        uint8_t *body;
        size_t blen;
        ck_assert_int_eq(v2_read(fd, 43, -1, NULL, &body, &blen), 0);
        ck_assert_int_eq((int64_t)mg_get_be64(body + 8), 3 * K - 1);
        mg_free(body);
        close(fd);
        h_stop(&h, true);
        tl_rm_rf(h.dir);
    }
}
END_TEST

/* Journal files rotate at journalMaxSizeMB; a checkpoint deletes those its lastMark covers
 * but the newest journalMaxBackups of them, and replay after a crash starts at lastMark
 * whatever backups lie before it. */
START_TEST(test_journal_backups)
{
    for (int keep = 0; keep <= 2; keep += 2) {
        struct harness h;
        h_init_dirs(&h, NULL);
        h.o.journal_max_size = 32 * 1024; /* a file per ~30 entries of 1000 bytes */
        h.o.journal_max_backups = keep;
        h_start(&h);
        char jcur[400];
        snprintf(jcur, sizeof jcur, "%s/current", h.jdir);
        int fd = cl_connect(h.port);
        for (int e = 0; e < 200; e++) { /* one at a time: small groups, files fill evenly */
            v2_add_send(fd, 44, e, KEY_A, 0, 1000);
            ck_assert_int_eq(v2_add_recv(fd, 44, e), 0);
        }
        ck_assert_int_ge(count_files(jcur, ".txn"), 5); /* rotated */
        ck_assert_int_eq(run_on_loop(&h, 0), 0);
        /* the file holding lastMark (the current one) and keep files before it */
        ck_assert_int_eq(count_files(jcur, ".txn"), 1 + keep);
        for (int e = 200; e < 230; e++)
            ck_assert_int_eq(v2_add(fd, 44, e, KEY_A, 0), 0);
        close(fd);
        h_stop(&h, false);
        h_start(&h);
        struct bk_stats st;
        bk_server_stats(h.srv, &st);
        ck_assert_uint_eq(st.replayed, 30);
        fd = cl_connect(h.port);
        check_entries(fd, 44, 0, 200, 1000);
        check_entries(fd, 44, 200, 230, 100);
        close(fd);
        h_stop(&h, true);
        tl_rm_rf(h.dir);
    }
}
END_TEST

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
    check_entries(fd, 31, 0, 200, 1000);
    close(fd);
    /* crash: no final checkpoint, unflushed entry-log data dropped */
    h_stop(&h, false);

    h_start(&h);
    struct bk_stats st;
    bk_server_stats(h.srv, &st);
    ck_assert_uint_eq(st.replayed, 100); /* the second half: the first one was checkpointed */
    fd = cl_connect(h.port);
    check_entries(fd, 31, 0, 200, 1000);
    uint8_t *body;
    size_t blen;
    ck_assert_int_eq(v2_read(fd, 31, -1, NULL, &body, &blen), 0);
    ck_assert_int_eq((int64_t)mg_get_be64(body + 8), 199);
    mg_free(body);
    ck_assert_int_eq(v2_add(fd, 31, 200, KEY_A, 0), 0);
    close(fd);
    h_stop(&h, true);

    /* after a clean stop nothing is left to replay and everything is in the index */
    h_start(&h);
    bk_server_stats(h.srv, &st);
    ck_assert_uint_eq(st.replayed, 0);
    fd = cl_connect(h.port);
    check_entries(fd, 31, 0, 200, 1000);
    close(fd);
    h_stop(&h, true);
    tl_rm_rf(h.dir);
}
END_TEST

/* A brand-new bookie starts without the start checkpoint (no lastMark, no sync of an empty
 * entry log); what it acknowledges before its first checkpoint survives a crash through the
 * journal alone, and the next start, which has a journal to cover, checkpoints. */
START_TEST(test_new_bookie_no_start_checkpoint)
{
    struct harness h;
    h_init_dirs(&h, NULL);
    h_start(&h);
    struct bk_stats st;
    bk_server_stats(h.srv, &st);
    ck_assert_uint_eq(st.checkpoints, 0);
    char mark[400];
    snprintf(mark, sizeof mark, "%s/current/lastMark", h.ldir);
    ck_assert_int_ne(access(mark, F_OK), 0);
    int fd = cl_connect(h.port);
    const int n = 37;
    for (int e = 0; e < n; e++)
        v2_add_send(fd, 41, e, KEY_A, 0, 700);
    for (int e = 0; e < n; e++)
        ck_assert_int_eq(v2_add_recv(fd, 41, e), 0);
    close(fd);
    h_stop(&h, false); /* crash: no checkpoint ever ran */

    h_start(&h);
    bk_server_stats(h.srv, &st);
    ck_assert_uint_eq(st.replayed, (uint64_t)n + 1); /* the ledger's key record and the adds */
    ck_assert_uint_eq(st.checkpoints, 1);            /* the replay is covered at once */
    ck_assert_int_eq(access(mark, F_OK), 0);
    fd = cl_connect(h.port);
    check_entries(fd, 41, 0, n, 700);
    close(fd);
    h_stop(&h, true);
    tl_rm_rf(h.dir);
}
END_TEST

/* Start the bookie and check that its log reports a torn write in the journal file path,
 * truncated at offset at. */
static void start_cutting_torn_tail(struct harness *h, const char *path, uint64_t at)
{
    struct capture cap;
    cap_start(&cap);
    h_start(h);
    char *log = cap_end(&cap);
    ck_assert_ptr_nonnull(strstr(log, "torn write"));
    ck_assert_ptr_nonnull(strstr(log, path));
    char want[64];
    snprintf(want, sizeof want, "truncating the file to %llu ", (unsigned long long)at);
    ck_assert_ptr_nonnull(strstr(log, want));
    mg_free(log);
}

/* Damage in the last record of the last journal file is a torn write: the bookie truncates it
 * (logged) and starts; what comes before is intact and nothing damaged is ever served. */
START_TEST(test_journal_torn_tail)
{
    struct harness h;
    h_init_dirs(&h, NULL);
    h_start(&h);
    int fd = cl_connect(h.port);
    const int n = 20;
    for (int e = 0; e < n; e++) { /* one at a time: one group each */
        v2_add_send(fd, 101, e, KEY_A, 0, 1000);
        ck_assert_int_eq(v2_add_recv(fd, 101, e), 0);
    }
    close(fd);
    h_stop(&h, false); /* crash: everything is still to be replayed */

    char path[512];
    last_journal(&h, path, sizeof path);
    size_t len;
    uint8_t *b = (uint8_t *)tl_read_file(path, &len);
    uint64_t g[64];
    int ng = journal_groups(b, len, g, 64);
    ck_assert_int_ge(ng, n);
    uint64_t last = g[ng - 1], rec = last + BK_GROUP_HEADER_SIZE;
    ck_assert_int_eq((int64_t)mg_get_be64(b + rec + BK_RECORD_HEADER_SIZE + 8), n - 1);
    uint32_t rlen = mg_get_be32(b + rec);
    mg_free(b);
    /* four bytes in the middle of the last entry's payload */
    flip_bytes(path, rec + BK_RECORD_HEADER_SIZE + rlen / 2, 4);

    /* truncated at the damaged group (then trimmed by the start checkpoint) */
    start_cutting_torn_tail(&h, path, last);
    fd = cl_connect(h.port);
    check_entries(fd, 101, 0, n - 1, 1000);
    ck_assert_int_eq(v2_read(fd, 101, n - 1, NULL, NULL, NULL), 2); /* ENOENTRY, not damaged */
    ck_assert_int_eq(v2_add(fd, 101, n - 1, KEY_A, 0), 0);          /* the writer re-adds it */
    close(fd);
    h_stop(&h, true);

    /* a last file whose creation was cut short (header incomplete) holds nothing: removed */
    char dir[400], extra[512];
    snprintf(dir, sizeof dir, "%s/current", h.jdir);
    last_journal(&h, path, sizeof path);
    unsigned long long id = strtoull(strrchr(path, '/') + 1, NULL, 16);
    snprintf(extra, sizeof extra, "%s/%llx.txn", dir, id + 10);
    FILE *f = fopen(extra, "wb");
    ck_assert_ptr_nonnull(f);
    fwrite("BK", 1, 2, f);
    fclose(f);
    h_start(&h);
    ck_assert_int_ne(access(extra, F_OK), 0);
    fd = cl_connect(h.port);
    check_entries(fd, 101, 0, n - 1, 1000);
    close(fd);
    h_stop(&h, true);
    tl_rm_rf(h.dir);
}
END_TEST

/* Damage before the tail (a record length, or a record's contents, with valid groups after
 * it) stops the start with an error naming the file and offset and saying how to proceed;
 * following that advice (cut the file there) lets the bookie start with what came before. */
START_TEST(test_journal_corrupt_middle)
{
    for (int how = 0; how < 2; how++) { /* 0: a length field, 1: four payload bytes */
        struct harness h;
        h_init_dirs(&h, NULL);
        h_start(&h);
        int fd = cl_connect(h.port);
        const int n = 30;
        for (int e = 0; e < n; e++) {
            v2_add_send(fd, 102, e, KEY_A, 0, 1000);
            ck_assert_int_eq(v2_add_recv(fd, 102, e), 0);
        }
        close(fd);
        h_stop(&h, false);

        char path[512];
        last_journal(&h, path, sizeof path);
        size_t len;
        uint8_t *b = (uint8_t *)tl_read_file(path, &len);
        uint64_t g[64];
        int ng = journal_groups(b, len, g, 64);
        ck_assert_int_ge(ng, n);
        uint64_t grp = g[ng / 2], rec = grp + BK_GROUP_HEADER_SIZE;
        int64_t victim = (int64_t)mg_get_be64(b + rec + BK_RECORD_HEADER_SIZE + 8);
        ck_assert(victim > 0 && victim < n - 1);
        uint32_t rlen = mg_get_be32(b + rec);
        mg_free(b);
        if (how == 0)
            flip_bytes(path, rec, 2); /* the high half of the length */
        else
            flip_bytes(path, rec + BK_RECORD_HEADER_SIZE + rlen - 8, 4);

        h.base = event_base_new();
        struct capture cap;
        cap_start(&cap);
        int rc = bk_server_new(h.base, &h.o, &h.srv);
        char *log = cap_end(&cap);
        ck_assert_int_eq(rc, -MG_ECHECKSUM);
        ck_assert_ptr_null(h.srv);
        char want[700];
        snprintf(want, sizeof want, "journal %s: ", path);
        ck_assert_ptr_nonnull(strstr(log, want));
        snprintf(want, sizeof want, "at offset %llu", (unsigned long long)grp);
        ck_assert_ptr_nonnull(strstr(log, want));
        snprintf(want, sizeof want, "truncate -s %llu %s", (unsigned long long)grp, path);
        ck_assert_ptr_nonnull(strstr(log, want));
        mg_free(log);
        event_base_free(h.base);
        h.base = NULL;
        ck_assert_int_eq(tl_file_size(path) > (off_t)rec, 1); /* nothing was cut by the bookie */

        /* the advice works: cut the file there and start */
        ck_assert_int_eq(truncate(path, (off_t)grp), 0);
        h_start(&h);
        fd = cl_connect(h.port);
        check_entries(fd, 102, 0, (int)victim, 1000);
        ck_assert_int_eq(v2_read(fd, 102, victim, NULL, NULL, NULL), 2);
        close(fd);
        h_stop(&h, true);
        tl_rm_rf(h.dir);
    }
}
END_TEST

/* The directories of a bookie of an earlier version, for a journal file of its format to be
 * put in *dir (its journal's current/): the ledger directory such a bookie had (no cookies
 * then: both directories with data are taken over; a journal without its ledger directory
 * would be refused). */
static void old_bookie_dirs(struct harness *h, char *dir, size_t n)
{
    h_init_dirs(h, NULL);
    snprintf(dir, n, "%s/current", h->jdir);
    char cmd[1024];
    snprintf(cmd, sizeof cmd, "mkdir -p '%s' '%s/current/index'", dir, h->ldir);
    ck_assert_int_eq(system(cmd), 0);
}

/* After the replay of a journal of an earlier format (the bookie started): entries 0..n-1 of
 * ledger are there, its key came from the journal, entry n is added; after a crash the new
 * journal file is of the current version and everything replays again. Stops the bookie and
 * removes its directories. */
static void check_upgraded(struct harness *h, int64_t ledger, int n, size_t payload)
{
    int fd = cl_connect(h->port);
    check_entries(fd, ledger, 0, n, payload);
    ck_assert_int_eq(v2_add(fd, ledger, n, KEY_B, 0), 102); /* the key came from the journal */
    ck_assert_int_eq(v2_add(fd, ledger, n, KEY_A, 0), 0);
    close(fd);
    h_stop(h, false);
    char path[512];
    last_journal(h, path, sizeof path);
    size_t len;
    uint8_t *b = (uint8_t *)tl_read_file(path, &len);
    uint64_t g[8];
    ck_assert_int_ge(journal_groups(b, len, g, 8), 1); /* asserts the version */
    mg_free(b);
    h_start(h);
    fd = cl_connect(h->port);
    check_entries(fd, ledger, 0, n, payload);
    ck_assert_int_eq(v2_read(fd, ledger, n, NULL, NULL, NULL), 0);
    close(fd);
    h_stop(h, true);
    tl_rm_rf(h->dir);
}

/* A journal of the previous format (version 6: [BE32 len][body] records, no checksums) is
 * still replayed, its torn tail ignored; the bookie then writes the current version. */
START_TEST(test_journal_v6)
{
    struct harness h;
    char dir[400], path[512];
    old_bookie_dirs(&h, dir, sizeof dir);
    snprintf(path, sizeof path, "%s/5.txn", dir);
    FILE *f = fopen(path, "wb");
    ck_assert_ptr_nonnull(f);
    uint8_t hdr[BK_JOURNAL_HEADER_SIZE] = {0};
    memcpy(hdr, "BKLG", 4);
    mg_put_be32(hdr + 4, 6);
    fwrite(hdr, 1, sizeof hdr, f);
    uint8_t key[4 + 16 + 4 + 20];
    mg_put_be32(key, 16 + 4 + 20);
    mg_put_be64(key + 4, 103);
    mg_put_be64(key + 12, (uint64_t)BK_META_LEDGER_KEY);
    mg_put_be32(key + 20, 20);
    memcpy(key + 24, KEY_A, 20);
    fwrite(key, 1, sizeof key, f);
    for (int e = 0; e < 10; e++) {
        size_t len;
        uint8_t *en = make_entry(103, e, e - 1, 1000, &len);
        uint8_t lb[4];
        mg_put_be32(lb, (uint32_t)len);
        fwrite(lb, 1, 4, f);
        fwrite(en, 1, len, f);
        mg_free(en);
    }
    uint8_t torn[4 + 30];
    mg_put_be32(torn, 1000); /* a record cut short at the end */
    memset(torn + 4, 7, 30);
    fwrite(torn, 1, sizeof torn, f);
    fclose(f);
    /* an earlier file whose torn tail an earlier version left behind (it never cut them) */
    snprintf(path, sizeof path, "%s/4.txn", dir);
    f = fopen(path, "wb");
    ck_assert_ptr_nonnull(f);
    fwrite(hdr, 1, sizeof hdr, f);
    mg_put_be64(key + 4, 104);
    fwrite(key, 1, sizeof key, f);
    for (int e = 0; e < 3; e++) {
        size_t len;
        uint8_t *en = make_entry(104, e, e - 1, 1000, &len);
        uint8_t lb[4];
        mg_put_be32(lb, (uint32_t)len);
        fwrite(lb, 1, 4, f);
        fwrite(en, 1, len, f);
        mg_free(en);
    }
    fwrite(torn, 1, sizeof torn, f);
    fclose(f);

    h_start(&h);
    struct bk_stats st;
    bk_server_stats(h.srv, &st);
    ck_assert_uint_eq(st.replayed, 15);
    int fd = cl_connect(h.port);
    check_entries(fd, 104, 0, 3, 1000);
    close(fd);
    check_upgraded(&h, 103, 10, 1000);
}
END_TEST

/* Append a version-7 group (no body checksum: that word is 0) of one record to f, a journal
 * file of id id, at offset *off; the record's bytes are body (len). */
static void put_v7_group(FILE *f, uint64_t id, uint64_t *off, const uint8_t *body, uint32_t len)
{
    uint8_t gh[BK_GROUP_HEADER_SIZE + BK_RECORD_HEADER_SIZE], idb[8];
    mg_put_be32(gh, BK_GROUP_MAGIC);
    mg_put_be32(gh + 4, BK_RECORD_HEADER_SIZE + len);
    mg_put_be32(gh + 8, 1);
    mg_put_be32(gh + 12, 0);
    mg_put_be64(gh + 16, *off);
    mg_put_be64(idb, id);
    mg_put_be32(gh + 24, mg_crc32c(mg_crc32c(0, idb, 8), gh, 24));
    uint8_t *rec = gh + BK_GROUP_HEADER_SIZE;
    mg_put_be32(rec, len);
    mg_put_be32(rec + 4, mg_crc32c(mg_crc32c(0, rec, 4), body, len));
    ck_assert_uint_eq(fwrite(gh, 1, sizeof gh, f), sizeof gh);
    ck_assert_uint_eq(fwrite(body, 1, len, f), len);
    *off += sizeof gh + len;
}

/* A journal of the previous format (version 7: group headers without the body checksum) is
 * still replayed, a torn last record cut off as that version did; the bookie then writes the
 * current version. */
START_TEST(test_journal_v7)
{
    struct harness h;
    char dir[400], path[512];
    old_bookie_dirs(&h, dir, sizeof dir);
    const uint64_t id = 9;
    snprintf(path, sizeof path, "%s/%llx.txn", dir, (unsigned long long)id);
    FILE *f = fopen(path, "wb");
    ck_assert_ptr_nonnull(f);
    uint8_t hdr[BK_JOURNAL_HEADER_SIZE] = {0};
    memcpy(hdr, "BKLG", 4);
    mg_put_be32(hdr + 4, BK_JOURNAL_VERSION_V7);
    mg_put_be64(hdr + 8, id);
    fwrite(hdr, 1, sizeof hdr, f);
    uint64_t off = sizeof hdr;
    uint8_t key[16 + 4 + 20];
    mg_put_be64(key, 148);
    mg_put_be64(key + 8, (uint64_t)BK_META_LEDGER_KEY);
    mg_put_be32(key + 16, 20);
    memcpy(key + 20, KEY_A, 20);
    put_v7_group(f, id, &off, key, sizeof key);
    const int n = 12;
    uint64_t torn_at = 0;
    for (int e = 0; e <= n; e++) { /* entry n: a torn last group */
        size_t len;
        uint8_t *en = make_entry(148, e, e - 1, 900, &len);
        if (e == n) {
            torn_at = off + BK_GROUP_HEADER_SIZE; /* v7 cuts at the failing record */
            put_v7_group(f, id, &off, en, (uint32_t)len);
            ck_assert_int_eq(fseek(f, (long)(off - 50), SEEK_SET), 0);
            fwrite("torn", 1, 4, f);
        } else {
            put_v7_group(f, id, &off, en, (uint32_t)len);
        }
        mg_free(en);
    }
    fclose(f);

    start_cutting_torn_tail(&h, path, torn_at);
    struct bk_stats st;
    bk_server_stats(h.srv, &st);
    ck_assert_uint_eq(st.replayed, (uint64_t)n + 1); /* the key and the intact entries */
    int fd = cl_connect(h.port);
    ck_assert_int_eq(v2_read(fd, 148, n, NULL, NULL, NULL), 2); /* the torn one */
    close(fd);
    check_upgraded(&h, 148, n, 900);
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
    /* a length no client sends (negative as a Java int); oversized frames of real requests
     * are answered instead: test_oversized_frame */
    bad = cl_connect(h.port);
    uint8_t big[8];
    mg_put_be32(big, 0x80000000u);
    mg_put_be32(big + 4, (2u << 24) | (1u << 16));
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
    tl_rm_rf(h.dir);
}
END_TEST

/* Receive one v2 response (any opcode); returns rc, sets *ledger and *entry. */
static int v2_recv_any(int fd, int64_t *ledger, int64_t *entry)
{
    size_t n;
    uint8_t *b = cl_recv_frame(fd, &n);
    ck_assert_msg(b != NULL, "connection closed by the bookie");
    ck_assert_uint_ge(n, 24);
    int rc = (int)mg_get_be32(b + 4);
    *ledger = (int64_t)mg_get_be64(b + 8);
    *entry = (int64_t)mg_get_be64(b + 16);
    mg_free(b);
    return rc;
}

/* With the default nettyMaxFrameSizeBytes a message of the broker's default maxMessageSize
 * (5 MiB) fits in an add once framed, in v2 and in v3. */
START_TEST(test_max_message_frame)
{
    struct harness h;
    h_init_dirs(&h, NULL);
    struct bk_options def;
    bk_options_default(&def);
    ck_assert_int_eq(h.o.max_frame_size, def.max_frame_size);
    h_start(&h);
    int fd = cl_connect(h.port);
    /* a Pulsar message of maxMessageSize plus its metadata (a few hundred bytes) */
    const size_t max_message = 5u << 20;
    const size_t sizes[] = {max_message - 1, max_message, max_message + 1024};
    for (int i = 0; i < 3; i++) {
        v2_add_send(fd, 81, i, KEY_A, 0, sizes[i]);
        ck_assert_int_eq(v2_add_recv(fd, 81, i), 0);
        uint8_t *body;
        size_t blen, elen;
        ck_assert_int_eq(v2_read(fd, 81, i, NULL, &body, &blen), 0);
        uint8_t *want = make_entry(81, i, i - 1, sizes[i], &elen);
        ck_assert_uint_eq(blen, elen);
        ck_assert_mem_eq(body, want, elen);
        mg_free(body);
        mg_free(want);
    }
    close(fd);
    /* v3 */
    fd = cl_connect(h.port);
    Bookkeeper__Proto__Request req = BOOKKEEPER__PROTO__REQUEST__INIT;
    Bookkeeper__Proto__AddRequest a = BOOKKEEPER__PROTO__ADD_REQUEST__INIT;
    size_t len;
    uint8_t *e = make_entry(82, 0, -1, max_message + 1024, &len);
    a.ledgerid = 82;
    a.entryid = 0;
    a.masterkey.data = (uint8_t *)KEY_A;
    a.masterkey.len = 20;
    a.body.data = e;
    a.body.len = len;
    req.addrequest = &a;
    Bookkeeper__Proto__Response *r = v3_call(fd, &req, OP(ADD_ENTRY), 3);
    ck_assert_int_eq(r->status, ST(EOK));
    bookkeeper__proto__response__free_unpacked(r, NULL);
    mg_free(e);
    close(fd);
    h_stop(&h, true);
    tl_rm_rf(h.dir);
}
END_TEST

/* A frame above the limit fails only its request (EBADREQ, matched by ledger/entry in v2 and
 * by txnId in v3); the bookie answers from its first bytes without waiting for the rest, and
 * the connection and the requests around it go on. */
START_TEST(test_oversized_frame)
{
    struct harness h;
    h_init_dirs(&h, NULL);
    h.o.max_frame_size = 64 * 1024;
    h_start(&h);
    int fd = cl_connect(h.port);
    int other = cl_connect(h.port);
    ck_assert_int_eq(v2_add(other, 92, 0, KEY_A, 0), 0);
    /* pipelined: small, oversized (3x the limit), small */
    v2_add_send(fd, 91, 0, KEY_A, 0, 1000);
    v2_add_send(fd, 91, 1, KEY_A, 0, 3 * 64 * 1024);
    v2_add_send(fd, 91, 2, KEY_A, 0, 1000);
    int rc[3] = {-1, -1, -1};
    for (int i = 0; i < 3; i++) {
        int64_t l, e;
        int st = v2_recv_any(fd, &l, &e);
        ck_assert_int_eq(l, 91);
        ck_assert(e >= 0 && e < 3 && rc[e] == -1);
        rc[e] = st;
    }
    ck_assert_int_eq(rc[0], 0);
    ck_assert_int_eq(rc[1], 100); /* EBADREQ */
    ck_assert_int_eq(rc[2], 0);
    ck_assert_int_eq(v2_read(fd, 91, 0, NULL, NULL, NULL), 0);
    ck_assert_int_eq(v2_read(fd, 91, 1, NULL, NULL, NULL), 2); /* ENOENTRY: never stored */
    ck_assert_int_eq(v2_read(fd, 91, 2, NULL, NULL, NULL), 0);

    /* the answer comes from the first bytes: send 64 MiB's header and a few bytes only */
    uint8_t head[4 + 4 + 20 + 16 + 64];
    memset(head, 0, sizeof head);
    mg_put_be32(head, 64u << 20);
    mg_put_be32(head + 4, (2u << 24) | (1u << 16));
    memcpy(head + 8, KEY_A, 20);
    mg_put_be64(head + 28, 91);
    mg_put_be64(head + 36, 3);
    cl_send(fd, head, sizeof head);
    int64_t l, e;
    ck_assert_int_eq(v2_recv_any(fd, &l, &e), 100);
    ck_assert_int_eq(l, 91);
    ck_assert_int_eq(e, 3);
    /* the rest of that frame is skipped as it arrives, in pieces */
    size_t left = (64u << 20) - (sizeof head - 4);
    uint8_t *junk = mg_calloc(1, 1 << 20);
    while (left > 0) {
        size_t n = left < (1u << 20) ? left : (1u << 20);
        cl_send(fd, junk, n);
        left -= n;
    }
    mg_free(junk);
    ck_assert_int_eq(v2_add(fd, 91, 4, KEY_A, 0), 0);
    close(fd);

    /* v3: answered by txnId with the request's operation */
    fd = cl_connect(h.port);
    Bookkeeper__Proto__Request req = BOOKKEEPER__PROTO__REQUEST__INIT;
    Bookkeeper__Proto__AddRequest a = BOOKKEEPER__PROTO__ADD_REQUEST__INIT;
    size_t len;
    uint8_t *big = make_entry(93, 0, -1, 100 * 1024, &len);
    a.ledgerid = 93;
    a.entryid = 0;
    a.masterkey.data = (uint8_t *)KEY_A;
    a.masterkey.len = 20;
    a.body.data = big;
    a.body.len = len;
    req.addrequest = &a;
    Bookkeeper__Proto__Response *r = v3_call(fd, &req, OP(ADD_ENTRY), 3);
    ck_assert_int_eq(r->status, ST(EBADREQ));
    bookkeeper__proto__response__free_unpacked(r, NULL);
    mg_free(big);
    ck_assert_int_eq(v3_add(fd, 93, 0, KEY_A, false, NULL, NULL), ST(EOK));
    close(fd);
    /* the other connection never noticed */
    ck_assert_int_eq(v2_add(other, 92, 1, KEY_A, 0), 0);
    close(other);
    h_stop(&h, true);
    tl_rm_rf(h.dir);
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
    bk_server_inject_journal_error(h.srv, EIO); /* out of space: test_nospace_journal */
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
    tl_rm_rf(h.dir);
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

/* ---- disk space ------------------------------------------------------------------------ */

/* Mount a tmpfs of size_mb at a new directory (path); false (with a SKIP: line) when mounting
 * is not permitted here. */
static bool tmpfs_mount(char *path, size_t n, int size_mb, const char *test)
{
    snprintf(path, n, "/tmp/check_bookie_tmpfs.XXXXXX");
    ck_assert_ptr_nonnull(mkdtemp(path));
    char opt[32];
    snprintf(opt, sizeof opt, "size=%dm", size_mb);
    if (mount("tmpfs", path, "tmpfs", 0, opt) != 0) {
        printf("SKIP: %s: cannot mount a %d MiB tmpfs (%s): needs root\n", test, size_mb,
               strerror(errno));
        fprintf(stderr, "SKIP: %s: cannot mount a tmpfs (%s)\n", test, strerror(errno));
        rmdir(path);
        return false;
    }
    return true;
}

static void tmpfs_unmount(const char *path)
{
    ck_assert_int_eq(umount(path), 0);
    rmdir(path);
}

/* Percentage of the file system of path in use (as the bookie computes it). */
static double usage_pct(const char *path)
{
    struct statvfs sv;
    ck_assert_int_eq(statvfs(path, &sv), 0);
    return 100.0 * (double)(sv.f_blocks - sv.f_bavail) / (double)sv.f_blocks;
}

/* Write a file of mb MiB (or until the disk is full when mb < 0). */
static void fill_file(const char *path, int mb)
{
    FILE *f = fopen(path, "wb");
    ck_assert_ptr_nonnull(f);
    static uint8_t chunk[1 << 16];
    memset(chunk, 0x5a, sizeof chunk);
    for (long i = 0; mb < 0 || i < (long)mb * 16; i++)
        if (fwrite(chunk, 1, sizeof chunk, f) != sizeof chunk)
            break;
    fclose(f);
}

/* Wait (at most 20 s) until n more periodic disk checks have run; the read-only state then. */
static bool wait_disk_checks(struct harness *h, uint64_t n)
{
    struct bk_stats st;
    bool ro;
    run_on_loop_state(h, 2, &st, &ro);
    uint64_t want = st.disk_checks + n;
    for (int i = 0; i < 2000 && st.disk_checks < want; i++) {
        usleep(10000);
        run_on_loop_state(h, 2, &st, &ro);
    }
    ck_assert_uint_ge(st.disk_checks, want);
    return ro;
}

/* Add entries (ledger, from..) of payload bytes until one is refused; returns the number
 * acknowledged and the refusing status in *rc. */
static int add_until_refused(int fd, int64_t ledger, int from, size_t payload, int max, int *rc)
{
    int acked = 0;
    *rc = 0;
    for (int e = from; e < from + max; e++) {
        v2_add_send(fd, ledger, e, KEY_A, 0, payload);
        *rc = v2_add_recv(fd, ledger, e);
        if (*rc != 0)
            break;
        acked++;
    }
    return acked;
}

/* The journal's disk runs out of space: the add whose group could not be written is
 * refused with EREADONLY (never EIO, never EOK), the bookie turns read-only saying why,
 * repeated failures log one line per interval, and once space is freed the bookie is
 * writable again by itself, without a restart. */
START_TEST(test_nospace_journal)
{
    char jroot[64];
    if (!tmpfs_mount(jroot, sizeof jroot, 8, "test_nospace_journal"))
        return;
    struct harness h;
    h_init_dirs(&h, NULL);
    snprintf(h.jdir, sizeof h.jdir, "%s/journal", jroot);
    h.o.disk_usage_threshold_pct = 100; /* only a real ENOSPC stops it */
    h.o.disk_usage_lwm_pct = 90;
    struct capture cap;
    cap_start(&cap);
    h_start(&h);
    char filler[128];
    snprintf(filler, sizeof filler, "%s/filler", jroot);
    fill_file(filler, -1); /* the journal disk is full but for what the journal preallocated */
    int fd = cl_connect(h.port);
    int rc, acked = add_until_refused(fd, 111, 0, 64 * 1024, 1000, &rc);
    ck_assert_int_eq(rc, 105); /* EREADONLY */
    ck_assert(h_readonly(&h));
    ck_assert_int_eq(v2_add(fd, 111, acked, KEY_A, 0), 105);
    /* high-priority adds still reach the journal, and fail there, 200 times */
    for (int i = 0; i < 200; i++)
        v2_add_send(fd, 111, acked + i, KEY_A, 0x4 /* HIGH_PRIORITY */, 64 * 1024);
    for (int i = 0; i < 200; i++)
        ck_assert_int_eq(v2_add_recv(fd, 111, acked + i), 105);
    for (int e = 0; e < acked; e++) /* reads go on */
        ck_assert_int_eq(v2_read(fd, 111, e, NULL, NULL, NULL), 0);
    char *log = cap_end(&cap);
    ck_assert_ptr_nonnull(strstr(log, "READ-ONLY: journal write: No space left on device"));
    int lines = count_str(log, "journal failures since the last line");
    ck_assert_msg(lines >= 1 && lines <= 2, "%d journal failure lines for 201 failures", lines);
    mg_free(log);
    /* space returns: the next disk check makes the bookie writable */
    ck_assert_int_eq(unlink(filler), 0);
    ck_assert(h_readonly(&h));
    run_on_loop(&h, 1);
    ck_assert(!h_readonly(&h));
    ck_assert_int_eq(v2_add(fd, 111, acked, KEY_A, 0), 0);
    for (int e = 0; e <= acked; e++)
        ck_assert_int_eq(v2_read(fd, 111, e, NULL, NULL, NULL), 0);
    close(fd);
    h_stop(&h, false); /* crash: the journal holds it all */
    h_start(&h);
    fd = cl_connect(h.port);
    for (int e = 0; e <= acked; e++)
        ck_assert_int_eq(v2_read(fd, 111, e, NULL, NULL, NULL), 0);
    ck_assert_int_eq(v2_read(fd, 111, acked + 1, NULL, NULL, NULL), 2);
    close(fd);
    h_stop(&h, true);
    tmpfs_unmount(jroot);
    tl_rm_rf(h.dir);
}
END_TEST

/* The ledger disk runs out of space: the entries stay acknowledged (they are in the journal)
 * and readable, the bookie turns read-only (EREADONLY), and when space returns the data kept
 * in memory is written out and the bookie is writable again, without a restart. */
START_TEST(test_nospace_entry_log)
{
    char lroot[64];
    if (!tmpfs_mount(lroot, sizeof lroot, 8, "test_nospace_entry_log"))
        return;
    struct harness h;
    h_init_dirs(&h, NULL);
    snprintf(h.ldir, sizeof h.ldir, "%s/ledgers", lroot);
    h.o.disk_usage_threshold_pct = 100;
    h.o.disk_usage_lwm_pct = 90;
    /* checkpoints find the disk full: a cache half must fit in the room freed below */
    h.o.write_cache_max = 2 << 20;
    h_start(&h);
    char filler[128];
    snprintf(filler, sizeof filler, "%s/filler", lroot);
    fill_file(filler, -1);
    int fd = cl_connect(h.port);
    int rc, acked = add_until_refused(fd, 112, 0, 64 * 1024, 1000, &rc);
    ck_assert_int_eq(rc, 105);
    ck_assert_int_gt(acked, 0);
    ck_assert(h_readonly(&h));
    for (int e = 0; e < acked; e++) {
        uint8_t *body;
        size_t blen, elen;
        ck_assert_int_eq(v2_read(fd, 112, e, NULL, &body, &blen), 0);
        uint8_t *want = make_entry(112, e, e - 1, 64 * 1024, &elen);
        ck_assert_uint_eq(blen, elen);
        ck_assert_mem_eq(body, want, elen);
        mg_free(body);
        mg_free(want);
    }
    ck_assert_int_eq(run_on_loop(&h, 0), -MG_EREADONLY); /* a checkpoint cannot write yet */
    run_on_loop(&h, 1);
    ck_assert(h_readonly(&h)); /* still full */
    ck_assert_int_eq(unlink(filler), 0);
    run_on_loop(&h, 1);
    ck_assert(!h_readonly(&h));
    ck_assert_int_eq(v2_add(fd, 112, acked, KEY_A, 0), 0);
    close(fd);
    /* what was kept in memory reached the entry logs and the index: after a clean stop
     * nothing is replayed and everything is there */
    h_stop(&h, true);
    h_start(&h);
    struct bk_stats st;
    bk_server_stats(h.srv, &st);
    ck_assert_uint_eq(st.replayed, 0);
    fd = cl_connect(h.port);
    check_entries(fd, 112, 0, acked, 64 * 1024);
    close(fd);
    h_stop(&h, true);
    tmpfs_unmount(lroot);
    tl_rm_rf(h.dir);
}
END_TEST

/* A bookie's directories on a 32 MiB tmpfs already 62.5 % full (root, its mount point;
 * filler, the 20 MiB file that fills it), diskUsageThreshold 80 %: h is ready to start. False
 * (the test returns) where no tmpfs can be mounted. */
static bool h_init_filled(struct harness *h, char *root, size_t rn, char *filler, size_t fn,
                          const char *test)
{
    if (!tmpfs_mount(root, rn, 32, test))
        return false;
    snprintf(filler, fn, "%s/filler", root);
    fill_file(filler, 20);
    h_init_dirs(h, root);
    h->o.disk_usage_threshold_pct = 80;
    return true;
}

/* The journal's preallocation never takes the disk past diskUsageThreshold (it used to take
 * its 16 MiB first, filling a small disk before the threshold check fired). */
START_TEST(test_prealloc_threshold)
{
    char root[64], filler[128];
    struct harness h;
    if (!h_init_filled(&h, root, sizeof root, filler, sizeof filler, "test_prealloc_threshold"))
        return;
    h_start(&h);
    ck_assert(!h_readonly(&h));
    int fd = cl_connect(h.port);
    ck_assert_int_eq(v2_add(fd, 113, 0, KEY_A, 0), 0);
    ck_assert_double_le(usage_pct(root), 80.0);
    ck_assert(!h_readonly(&h));
    /* and writing on: read-only (EREADONLY) before the disk is full */
    int rc, acked = add_until_refused(fd, 113, 1, 256 * 1024, 200, &rc);
    ck_assert_int_eq(rc, 105);
    ck_assert_int_gt(acked, 0);
    ck_assert_double_lt(usage_pct(root), 100.0);
    close(fd);
    h_stop(&h, true);
    tmpfs_unmount(root);
}
END_TEST

/* A group written past the preallocated zeros (no room below diskUsageThreshold to zero-fill
 * ahead) is never zeroed later: once space returns the next preallocation starts after it.
 * Every acknowledged entry survives a crash and the replay (the zero-fill used to start at the
 * old preallocation end and overwrite the groups written past it). */
START_TEST(test_prealloc_after_room_returns)
{
    char root[64], filler[128];
    struct harness h;
    if (!h_init_filled(&h, root, sizeof root, filler, sizeof filler,
                       "test_prealloc_after_room_returns"))
        return;
    h.o.disk_usage_lwm_pct = 70;
    h_start(&h);
    int fd = cl_connect(h.port);
    int rc, acked = add_until_refused(fd, 115, 0, 256 * 1024, 200, &rc);
    ck_assert_int_eq(rc, 105);
    ck_assert_int_gt(acked, 0);
    ck_assert_int_eq(unlink(filler), 0);
    run_on_loop(&h, 1);
    ck_assert(!h_readonly(&h));
    for (int e = acked; e < acked + 8; e++) {
        v2_add_send(fd, 115, e, KEY_A, 0, 256 * 1024);
        ck_assert_int_eq(v2_add_recv(fd, 115, e), 0);
    }
    close(fd);
    h_stop(&h, false); /* a crash: everything comes back from the journal */
    h_start(&h);
    fd = cl_connect(h.port);
    check_entries(fd, 115, 0, acked + 8, 256 * 1024);
    close(fd);
    h_stop(&h, true);
    tmpfs_unmount(root);
}
END_TEST

/* The journal's preallocation thread is idle: everything asked of it is zero-filled. */
static void wait_prealloc_idle(struct harness *h)
{
    struct bk_journal *j = &h->srv->journal;
    for (int i = 0; i < 10000; i++) { /* 10 s */
        pthread_mutex_lock(&j->pa_lock);
        bool idle = !j->pa_busy && j->alloc_end >= j->pa_target;
        pthread_mutex_unlock(&j->pa_lock);
        if (idle)
            return;
        usleep(1000);
    }
    ck_abort_msg("the journal's preallocation thread did not finish within 10 s");
}

/* The zero-fill ahead of the journal (journalPreAllocSizeMB) is done off the group path: over
 * many preallocation regions, no group write waits for it once the first region is there
 * (it used to be written and synced inline before the group that needed it, stopping the
 * journal for 10-90 ms every 16 MiB: the p99 publish latency). The file is zero-filled ahead
 * of its data, and a crash replays every acknowledged entry (the zeros read as the end). */
START_TEST(test_journal_zero_fill_ahead)
{
    struct harness h;
    h_init_dirs(&h, NULL);
    h.o.journal_prealloc = 1 << 20;
    h_start(&h);
    int fd = cl_connect(h.port);
    enum { PAYLOAD = 48 * 1024, N = 120 }; /* ~5.6 MiB: five regions and more */
    ck_assert_int_eq(v2_add(fd, 131, 0, KEY_A, 0), 0);
    struct bk_stats st;
    bk_server_stats(h.srv, &st);
    uint64_t first = st.prealloc_waits; /* the first group of a new file may wait for it */
    ck_assert_uint_le(first, 1);
    for (int e = 1; e < N; e++) {
        wait_prealloc_idle(&h); /* the disk keeps up: only the journal's own order counts */
        v2_add_send(fd, 131, e, KEY_A, 0, PAYLOAD);
        ck_assert_int_eq(v2_add_recv(fd, 131, e), 0);
    }
    bk_server_stats(h.srv, &st);
    ck_assert_uint_eq(st.prealloc_waits, first);
    ck_assert_uint_ge(st.bytes, (uint64_t)(N - 1) * PAYLOAD);
    wait_prealloc_idle(&h);
    char path[512];
    last_journal(&h, path, sizeof path);
    struct bk_journal *j = &h.srv->journal;
    ck_assert_int_ge(tl_file_size(path), (int64_t)(j->file_off + (1 << 19))); /* zeros ahead */
    close(fd);
    h_stop(&h, false); /* a crash: every entry comes back from the journal */
    h_start(&h);
    bk_server_stats(h.srv, &st);
    ck_assert_uint_ge(st.replayed, N);
    fd = cl_connect(h.port);
    check_entries(fd, 131, 1, N, PAYLOAD);
    ck_assert_int_eq(v2_add(fd, 131, N, KEY_A, 0), 0); /* and the journal goes on */
    close(fd);
    h_stop(&h, true);
    tl_rm_rf(h.dir);
}
END_TEST

/* Offsets of the groups of journal file id in b (header offset and checksum checked, so that
 * an earlier life's groups of a file taken over are not counted); returns the count and the
 * end of the last one (*end). */
static int journal_groups_of(const uint8_t *b, size_t len, uint64_t id, uint64_t *offs, int max,
                             uint64_t *end)
{
    int n = 0;
    uint64_t off = BK_JOURNAL_HEADER_SIZE;
    while (off + BK_GROUP_HEADER_SIZE <= len && mg_get_be32(b + off) == BK_GROUP_MAGIC &&
           mg_get_be64(b + off + 16) == off) {
        uint8_t idb[8];
        mg_put_be64(idb, id);
        if (mg_get_be32(b + off + 24) != mg_crc32c(mg_crc32c(0, idb, 8), b + off, 24) ||
            mg_get_be32(b + off + 8) == 0) /* not this file's, or the end mark */
            break;
        ck_assert_int_lt(n, max);
        offs[n++] = off;
        off += BK_GROUP_HEADER_SIZE + mg_get_be32(b + off + 4);
    }
    *end = off;
    return n;
}

/* journalReuseFiles: once lastMark covers journalMaxBackups files, a new journal file takes
 * the oldest one over (renamed, header rewritten with the flag) instead of being created and
 * zero-filled. A crash while it is current leaves the earlier life's groups after the new
 * ones: replay stops there without calling it a torn write (how 0) and replays every
 * acknowledged entry; a damaged last group (its body: how 1, its header: how 3, which the end
 * mark after the last group tells from the earlier life) is a torn write, cut off, the start
 * goes on; damage with valid groups of the new life after it still stops the start (how 2). */
/* Start a bookie with journalReuseFiles and small journal files, add entries of 1000 bytes to
 * ledger one at a time (one group each, so files fill evenly) until a covered file has been
 * taken over and a few groups went into it, then crash. Returns the number of entries added
 * (0 .. n-1, all acknowledged); *path is the file taken over (the last one). */
static int reuse_and_crash(struct harness *h, int64_t ledger, char *path, size_t n)
{
    h_init_dirs(h, NULL);
    h->o.journal_max_size = 32 * 1024; /* a file per ~30 entries of 1000 bytes */
    h->o.journal_max_backups = 1;
    h->o.journal_reuse = true;
    h_start(h);
    int fd = cl_connect(h->port);
    int e = 0;
    for (; e < 100; e++) {
        v2_add_send(fd, ledger, e, KEY_A, 0, 1000);
        ck_assert_int_eq(v2_add_recv(fd, ledger, e), 0);
    }
    ck_assert_int_eq(run_on_loop(h, 0), 0); /* covers every file but the current one */
    struct bk_stats st;
    bk_server_stats(h->srv, &st);
    ck_assert_uint_eq(st.journal_reused, 0);
    int reused_at = -1;
    for (; e < 300 && (reused_at < 0 || e < reused_at + 6); e++) {
        v2_add_send(fd, ledger, e, KEY_A, 0, 1000);
        ck_assert_int_eq(v2_add_recv(fd, ledger, e), 0);
        bk_server_stats(h->srv, &st);
        if (reused_at < 0 && st.journal_reused == 1)
            reused_at = e;
    }
    ck_assert_int_ge(reused_at, 0);
    ck_assert_uint_eq(st.journal_reused, 1);
    close(fd);
    h_stop(h, false); /* a crash while the file taken over is current */
    last_journal(h, path, n);
    return e;
}

START_TEST(test_journal_reuse_files)
{
    for (int how = 0; how < 4; how++) {
        struct harness h;
        char path[512];
        int e = reuse_and_crash(&h, 141, path, sizeof path);
        int fd;
        uint64_t id = strtoull(strrchr(path, '/') + 1, NULL, 16);
        size_t len;
        uint8_t *b = (uint8_t *)tl_read_file(path, &len);
        ck_assert_uint_eq(mg_get_be64(b + 8), id);
        ck_assert_uint_eq(mg_get_be32(b + 16), BK_JOURNAL_F_REUSED);
        uint64_t g[64], end;
        int ng = journal_groups_of(b, len, id, g, 64, &end);
        ck_assert_int_ge(ng, 5);
        /* the end mark (an empty group of this file), then the earlier life */
        ck_assert_uint_lt(end + 2 * BK_GROUP_HEADER_SIZE, len);
        ck_assert_uint_eq(mg_get_be32(b + end), BK_GROUP_MAGIC);
        ck_assert_uint_eq(mg_get_be32(b + end + 4), 0);
        ck_assert_uint_eq(mg_get_be32(b + end + 8), 0);
        ck_assert_uint_eq(mg_get_be64(b + end + 16), end);
        ck_assert(!bk_all_zero(b + end + BK_GROUP_HEADER_SIZE, BK_GROUP_HEADER_SIZE));
        uint64_t victim_rec =
            (how % 2 ? g[ng - 1] : g[ng / 2]) + BK_GROUP_HEADER_SIZE + BK_RECORD_HEADER_SIZE;
        int64_t victim = (int64_t)mg_get_be64(b + victim_rec + 8);
        uint64_t last_group = g[ng - 1];
        mg_free(b);
        if (how == 3)
            flip_bytes(path, last_group + 8, 4); /* its record count */
        else if (how > 0)
            flip_bytes(path, victim_rec + 100, 4); /* payload bytes of that group's entry */

        h.base = event_base_new();
        struct capture cap;
        cap_start(&cap);
        int rc = bk_server_new(h.base, &h.o, &h.srv);
        char *log = cap_end(&cap);
        if (how == 2) {
            ck_assert_int_eq(rc, -MG_ECHECKSUM);
            char want[700];
            snprintf(want, sizeof want, "journal %s: ", path);
            ck_assert_ptr_nonnull(strstr(log, want));
            ck_assert_ptr_nonnull(strstr(log, "a valid group follows"));
            mg_free(log);
            event_base_free(h.base);
            h.base = NULL;
            tl_rm_rf(h.dir);
            continue;
        }
        ck_assert_int_eq(rc, 0);
        if (how % 2) { /* the last group of this file fails: a torn write, cut off */
            char want[64];
            snprintf(want, sizeof want, "truncating the file to %llu ",
                     (unsigned long long)last_group);
            ck_assert_ptr_nonnull(strstr(log, "torn write"));
            ck_assert_ptr_nonnull(strstr(log, want));
        } else {
            ck_assert_ptr_null(strstr(log, "torn write"));
        }
        ck_assert_ptr_null(strstr(log, "damage"));
        mg_free(log);
        h.port = bk_server_port(h.srv);
        ck_assert_int_eq(pthread_create(&h.thread, NULL, loop_main, &h), 0);
        fd = cl_connect(h.port);
        int upto = how % 2 ? (int)victim : e;
        ck_assert_int_eq(upto, how % 2 ? e - 1 : e); /* the damaged group is the last one */
        check_entries(fd, 141, 0, upto, 1000);
        if (how % 2)
            ck_assert_int_eq(v2_read(fd, 141, victim, NULL, NULL, NULL), 2);
        close(fd);
        h_stop(&h, true);
        tl_rm_rf(h.dir);
    }
}
END_TEST

/* In a file taken over, a crash tore the newest group after its header: the header (this
 * file's id and offset, a valid header checksum) lies over the end mark, and under it the
 * earlier life's group's records, which fall on the same boundaries and pass their own
 * checksums. Replay must stop at that
 * group, cut it off as a torn write and apply none of the stale records (version 7 replayed
 * them as new entries: the group body's checksum in the header is what tells them apart). */
START_TEST(test_journal_reuse_torn_group)
{
    struct harness h;
    char path[512];
    int e = reuse_and_crash(&h, 146, path, sizeof path);
    uint64_t id = strtoull(strrchr(path, '/') + 1, NULL, 16);
    size_t len;
    uint8_t *b = (uint8_t *)tl_read_file(path, &len);
    uint64_t g[64], end;
    int ng = journal_groups_of(b, len, id, g, 64, &end);
    ck_assert_int_ge(ng, 2);
    /* the end mark over the header of the earlier life's group (same-size groups line up),
     * whose records follow up to its next group's header */
    ck_assert_uint_eq(mg_get_be32(b + end), BK_GROUP_MAGIC);
    ck_assert_uint_eq(mg_get_be32(b + end + 8), 0);
    uint64_t first = end + BK_GROUP_HEADER_SIZE, p = first;
    uint32_t nrec = 0;
    while (p + BK_RECORD_HEADER_SIZE <= len && mg_get_be32(b + p) != BK_GROUP_MAGIC) {
        uint32_t rlen = mg_get_be32(b + p);
        ck_assert_uint_ge(rlen, 16);
        ck_assert_uint_le(p + BK_RECORD_HEADER_SIZE + rlen, len);
        p += BK_RECORD_HEADER_SIZE + rlen;
        nrec++;
    }
    ck_assert_uint_ge(nrec, 1);
    uint32_t body_len = (uint32_t)(p - first);
    /* make its records stale entries of another ledger, each with a valid record checksum,
     * so that a replay that applies them shows (the earlier life's own entries would be the
     * same bytes as the index holds) */
    p = first;
    for (uint32_t k = 0; k < nrec; k++) {
        uint32_t rlen = mg_get_be32(b + p);
        uint8_t *rb = b + p + BK_RECORD_HEADER_SIZE;
        if (rlen >= 16 && (int64_t)mg_get_be64(rb + 8) >= 0) {
            mg_put_be64(rb, 147);
            mg_put_be64(rb + 8, k);
        }
        mg_put_be32(b + p + 4, mg_crc32c(mg_crc32c(0, b + p, 4), rb, rlen));
        p += BK_RECORD_HEADER_SIZE + rlen;
    }
    /* the new group's header, as the torn write left it: this file's id and offset, sized as
     * the group under it, for a body (the next entry) that never reached the disk */
    size_t nlen;
    uint8_t *next = make_entry(146, e, e - 1, body_len, &nlen);
    uint8_t *gh = b + end;
    mg_put_be32(gh, BK_GROUP_MAGIC);
    mg_put_be32(gh + 4, body_len);
    mg_put_be32(gh + 8, nrec);
    mg_put_be32(gh + 12, mg_crc32c(0, next, body_len));
    mg_put_be64(gh + 16, end);
    uint8_t idb[8];
    mg_put_be64(idb, id);
    mg_put_be32(gh + 24, mg_crc32c(mg_crc32c(0, idb, 8), gh, 24));
    mg_free(next);
    FILE *f = fopen(path, "r+b");
    ck_assert_ptr_nonnull(f);
    ck_assert_int_eq(fseek(f, (long)end, SEEK_SET), 0);
    ck_assert_uint_eq(fwrite(b + end, 1, BK_GROUP_HEADER_SIZE + body_len, f),
                      BK_GROUP_HEADER_SIZE + body_len);
    fclose(f);
    mg_free(b);

    start_cutting_torn_tail(&h, path, end);
    int fd = cl_connect(h.port);
    check_entries(fd, 146, 0, e, 1000); /* every acknowledged entry */
    for (uint32_t k = 0; k < nrec; k++) /* and none of the stale records */
        ck_assert_int_ne(v2_read(fd, 147, k, NULL, NULL, NULL), 0);
    ck_assert_int_ne(v2_read(fd, 146, e, NULL, NULL, NULL), 0);
    close(fd);
    h_stop(&h, true);
    tl_rm_rf(h.dir);
}
END_TEST

/* A restarted bookie does not turn read-only because of the previous run's journal: its data
 * is in the entry logs by then, and the start checkpoint trims it (it used to linger until
 * the new journal file filled up, doubling the bookie's disk usage). */
START_TEST(test_restart_trims_journal)
{
    char root[64];
    if (!tmpfs_mount(root, sizeof root, 32, "test_restart_trims_journal"))
        return;
    struct harness h;
    h_init_dirs(&h, root);
    h.o.disk_usage_threshold_pct = 90;
    h.o.disk_check_interval_ms = 20;
    /* zeros ahead of the journal's writes: up to journalPreAllocSizeMB, filled early (at half
     * of it); 16 MiB of them and 11 MiB of entry logs would not fit below 90% of 32 MiB */
    h.o.journal_prealloc = 4 << 20;
    h_start(&h);
    int fd = cl_connect(h.port);
    const int n = 44; /* 11 MiB: in the journal and in the entry logs, about 70% of the disk */
    for (int e = 0; e < n; e++) {
        v2_add_send(fd, 114, e, KEY_A, 0, 256 * 1024);
        ck_assert_int_eq(v2_add_recv(fd, 114, e), 0);
    }
    close(fd);
    h_stop(&h, true);
    double before = usage_pct(root);
    ck_assert_double_gt(before, 60.0);

    /* restart with a lower threshold: the entry logs alone are well below it */
    h.o.disk_usage_threshold_pct = 60;
    h_start(&h);
    ck_assert_msg(!wait_disk_checks(&h, 3), "read-only again after the restart (%.1f%% used)",
                  usage_pct(root));
    ck_assert_double_lt(usage_pct(root), 50.0);
    char jcur[400];
    snprintf(jcur, sizeof jcur, "%s/current", h.jdir);
    ck_assert_int_eq(count_files(jcur, ".txn"), 1); /* only the new one */
    fd = cl_connect(h.port);
    ck_assert_int_eq(v2_add(fd, 114, n, KEY_A, 0), 0);
    check_entries(fd, 114, 0, n, 256 * 1024);
    close(fd);
    h_stop(&h, true);
    tmpfs_unmount(root);
}
END_TEST

START_TEST(test_dir_lock)
{
    struct harness a, b;
    h_init_dirs(&a, NULL);
    h_start(&a);
    int fd = cl_connect(a.port);
    ck_assert_int_eq(v2_add(fd, 71, 0, KEY_A, 0), 0);
    char jcur[400];
    snprintf(jcur, sizeof jcur, "%s/current", a.jdir);
    int journals = count_files(jcur, ".txn");
    /* a second bookie on the same directories is refused before it touches anything */
    h_init_dirs(&b, a.dir);
    b.base = event_base_new();
    struct capture cap;
    cap_start(&cap);
    int rc = bk_server_new(b.base, &b.o, &b.srv);
    char *log = cap_end(&cap);
    ck_assert_int_eq(rc, -MG_EBUSY);
    ck_assert_ptr_null(b.srv);
    ck_assert_ptr_nonnull(strstr(log, a.jdir));
    char pid[32];
    snprintf(pid, sizeof pid, "pid %ld", (long)getpid());
    ck_assert_ptr_nonnull(strstr(log, pid));
    mg_free(log);
    ck_assert_int_eq(count_files(jcur, ".txn"), journals);
    /* a different journal directory on the same ledger directory is refused too */
    char other[400];
    snprintf(other, sizeof other, "%s/journal2", a.dir);
    b.o.journal_dir = other;
    cap_start(&cap);
    rc = bk_server_new(b.base, &b.o, &b.srv);
    log = cap_end(&cap);
    ck_assert_int_eq(rc, -MG_EBUSY);
    ck_assert_ptr_nonnull(strstr(log, a.ldir));
    mg_free(log);
    /* the first bookie is unaffected */
    ck_assert_int_eq(v2_add(fd, 71, 1, KEY_A, 0), 0);
    close(fd);
    h_stop(&a, true);
    /* once it is gone the directories can be used again */
    b.o.journal_dir = b.jdir;
    ck_assert_int_eq(bk_server_new(b.base, &b.o, &b.srv), 0);
    bk_server_free(b.srv);
    event_base_free(b.base);
    tl_rm_rf(a.dir);
}
END_TEST

/* ---- cookies ------------------------------------------------------------------------------ */

/* A bookie's directories and a memory metadata store, on one base whose loop runs only
 * inside the calls (bk_server_new waits for the store by running it). */
struct ck {
    struct harness h;
    struct event_base *base;
    struct mg_loop *loop;
    struct meta_store *meta;
    int port; /* of the last successful start */
};

static void ck_init(struct ck *c)
{
    memset(c, 0, sizeof *c);
    h_init_dirs(&c->h, NULL);
    c->base = event_base_new();
    c->loop = mg_loop_new(c->base);
    struct meta_options mo = {.url = "memory"};
    ck_assert_int_eq(meta_open(c->loop, &mo, &c->meta), 0);
    c->h.o.meta = c->meta;
    c->h.o.advertised_address = "127.0.0.1";
}

/* Start a bookie with c's options and stop it again (clean); returns bk_server_new's code
 * and, if log, what it logged. */
static int ck_start(struct ck *c, char **log)
{
    struct capture cap;
    cap_start(&cap);
    struct bk_server *s = NULL;
    int rc = bk_server_new(c->base, &c->h.o, &s);
    if (rc == 0) {
        c->port = bk_server_port(s);
        bk_server_free(s);
    } else {
        ck_assert_ptr_null(s);
    }
    char *l = cap_end(&cap);
    if (log)
        *log = l;
    else
        mg_free(l);
    return rc;
}

static void ck_fini(struct ck *c)
{
    meta_close(c->meta);
    mg_loop_free(c->loop);
    event_base_free(c->base);
    tl_rm_rf(c->h.dir);
}

struct ck_wait {
    struct meta_req req; /* first */
    bool done;
    int status;
};

static void ck_wait_cb(struct meta_req *req, int status)
{
    struct ck_wait *w = (struct ck_wait *)req;
    w->done = true;
    w->status = status;
}

/* Wait (bounded) for the request just issued; results stay in w->req. */
static int ck_wait(struct ck *c, struct ck_wait *w, int rc)
{
    if (rc < 0)
        return rc;
    for (int i = 0; i < 10000 && !w->done; i++)
        event_base_loop(c->base, EVLOOP_ONCE);
    ck_assert(w->done);
    return w->status;
}

/* The store's value at path (owned), or NULL if absent. */
static char *ck_get(struct ck *c, const char *path)
{
    struct ck_wait w = {0};
    int rc = ck_wait(c, &w, meta_get(c->meta, path, &w.req, ck_wait_cb));
    char *v = rc == 0 ? mg_strndup(w.req.value, w.req.len) : NULL;
    if (rc != 0)
        ck_assert_int_eq(rc, -MG_ENOTFOUND);
    meta_req_fini(&w.req);
    return v;
}

static void ck_put(struct ck *c, const char *path, const char *v)
{
    struct ck_wait w = {0};
    ck_assert_int_eq(ck_wait(c, &w,
                             meta_put(c->meta, path, v, strlen(v), META_VERSION_ANY,
                                      META_CREATE_PARENTS, &w.req, ck_wait_cb)),
                     0);
    meta_req_fini(&w.req);
}

static void ck_del(struct ck *c, const char *path)
{
    struct ck_wait w = {0};
    ck_assert_int_eq(
        ck_wait(c, &w, meta_delete(c->meta, path, META_VERSION_ANY, &w.req, ck_wait_cb)), 0);
    meta_req_fini(&w.req);
}

static char *ck_read_file(const char *path)
{
    FILE *f = fopen(path, "rb");
    if (!f)
        return NULL;
    char *buf = mg_calloc(1, 65536);
    size_t n = fread(buf, 1, 65535, f);
    buf[n] = '\0';
    fclose(f);
    return buf;
}

static char *ck_cookie_of(const char *dir)
{
    char path[512];
    snprintf(path, sizeof path, "%s/current/VERSION", dir);
    return ck_read_file(path);
}

static bool ck_exists(const char *path)
{
    struct stat st;
    return stat(path, &st) == 0;
}

/* The text format: BookKeeper's layout 5 (protobuf text), escapes round-trip, garbage and
 * cookies missing a field are refused, layout 3 and unknown fields are read. */
START_TEST(test_cookie_format)
{
    struct bk_cookie c = {
        .bookie_host = "10.0.0.1:3181",
        .journal_dirs = "/data/j\"1\\x",
        .ledger_dirs = "1\t/data/l\xc3\xa9",
        .instance_id = "4c1b2cbb-7d7e-4d3c-9f62-0d0f2d1e8a11",
    };
    char *t = bk_cookie_text(&c);
    ck_assert_str_eq(t, "5\n"
                        "bookieHost: \"10.0.0.1:3181\"\n"
                        "journalDir: \"/data/j\\\"1\\\\x\"\n"
                        "ledgerDirs: \"1\\t/data/l\\303\\251\"\n"
                        "instanceId: \"4c1b2cbb-7d7e-4d3c-9f62-0d0f2d1e8a11\"\n");
    struct bk_cookie r;
    ck_assert_int_eq(bk_cookie_parse(t, strlen(t), &r), 0);
    ck_assert_int_eq(r.layout, 5);
    ck_assert_str_eq(r.bookie_host, c.bookie_host);
    ck_assert_str_eq(r.journal_dirs, c.journal_dirs);
    ck_assert_str_eq(r.ledger_dirs, c.ledger_dirs);
    ck_assert_str_eq(r.instance_id, c.instance_id);
    bk_cookie_fini(&r);
    mg_free(t);
    /* without an instance id (no metadata store) the field is left out */
    c.instance_id = NULL;
    t = bk_cookie_text(&c);
    ck_assert_ptr_null(strstr(t, "instanceId"));
    ck_assert_int_eq(bk_cookie_parse(t, strlen(t), &r), 0);
    ck_assert_ptr_null(r.instance_id);
    bk_cookie_fini(&r);
    mg_free(t);
    /* BookKeeper's layout 3 (plain lines), and later fields it does not know */
    const char *v3 = "3\nh:1\n/j\n1\t/l\n";
    ck_assert_int_eq(bk_cookie_parse(v3, strlen(v3), &r), 0);
    ck_assert_str_eq(r.bookie_host, "h:1");
    ck_assert_str_eq(r.ledger_dirs, "1\t/l");
    bk_cookie_fini(&r);
    const char *v5 = "5\nbookieHost: \"h:1\"\njournalDir: \"/j\"\nledgerDirs: \"1\\t/l\"\n"
                     "indexDirs: \"1\\t/i\"\n";
    ck_assert_int_eq(bk_cookie_parse(v5, strlen(v5), &r), 0);
    ck_assert_str_eq(r.journal_dirs, "/j");
    bk_cookie_fini(&r);
    const char *bad[] = {
        "",
        "x\n",
        "5\nbookieHost: \"h:1\"\njournalDir: \"/j\"\n",                       /* no ledgerDirs */
        "5\nbookieHost: \"h:1\"\njournalDir: \"/j\"\nledgerDirs: \"1\\t/l\n", /* unterminated */
        "5\nbookieHost \"h:1\"\n",                                            /* no colon */
        "5\nbookieHost: \"h\\q\"\njournalDir: \"/j\"\nledgerDirs: \"1\"\n",   /* bad escape */
        "2\nh:1\n/j\n1\t/l\n",                                                /* too old */
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++)
        ck_assert_int_eq(bk_cookie_parse(bad[i], strlen(bad[i]), &r), -MG_EPROTO);
}
END_TEST

/* First start writes the same cookie to both directories and to /ledgers/cookies/<id>, with
 * the instance id it created at /ledgers/INSTANCEID; a restart with bookiePort 0 takes the
 * cookie's port again and starts (the cookies unchanged). */
START_TEST(test_cookie_new_and_restart)
{
    struct ck c;
    ck_init(&c);
    ck_assert_int_eq(ck_start(&c, NULL), 0);
    int port = c.port;
    char id[64], path[128];
    snprintf(id, sizeof id, "127.0.0.1:%d", port);
    snprintf(path, sizeof path, "/ledgers/cookies/%s", id);
    char *inst = ck_get(&c, "/ledgers/INSTANCEID");
    ck_assert_ptr_nonnull(inst);
    ck_assert_int_eq(strlen(inst), 36);
    char *store = ck_get(&c, path);
    ck_assert_ptr_nonnull(store);
    char *jc = ck_cookie_of(c.h.jdir), *lc = ck_cookie_of(c.h.ldir);
    ck_assert_ptr_nonnull(jc);
    ck_assert_str_eq(jc, store);
    ck_assert_str_eq(lc, store);
    struct bk_cookie r;
    ck_assert_int_eq(bk_cookie_parse(store, strlen(store), &r), 0);
    ck_assert_str_eq(r.bookie_host, id);
    ck_assert_str_eq(r.journal_dirs, c.h.jdir);
    char want[400];
    snprintf(want, sizeof want, "1\t%s", c.h.ldir);
    ck_assert_str_eq(r.ledger_dirs, want);
    ck_assert_str_eq(r.instance_id, inst);
    bk_cookie_fini(&r);
    /* restart: same port (hence same id), nothing rewritten */
    ck_assert_int_eq(ck_start(&c, NULL), 0);
    ck_assert_int_eq(c.port, port);
    char *jc2 = ck_cookie_of(c.h.jdir), *store2 = ck_get(&c, path),
         *inst2 = ck_get(&c, "/ledgers/INSTANCEID");
    ck_assert_str_eq(jc2, jc);
    ck_assert_str_eq(store2, store);
    ck_assert_str_eq(inst2, inst);
    mg_free(jc2);
    mg_free(store2);
    mg_free(inst2);
    /* a second bookie of the same cluster reuses the instance id */
    struct ck d;
    ck_init(&d);
    meta_close(d.meta);
    mg_loop_free(d.loop);
    event_base_free(d.base);
    d.base = c.base; /* the store's loop */
    d.h.o.meta = c.meta;
    ck_assert_int_eq(ck_start(&d, NULL), 0);
    ck_assert_int_ne(d.port, port);
    char *dc = ck_cookie_of(d.h.ldir);
    ck_assert_ptr_nonnull(strstr(dc, inst));
    mg_free(dc);
    tl_rm_rf(d.h.dir);
    mg_free(inst);
    mg_free(store);
    mg_free(jc);
    mg_free(lc);
    ck_fini(&c);
}
END_TEST

/* counts the embedded store's syncs (meta_embedded_set_fault) */
static int ck_count_syncs(void *arg, const char *op, size_t *len)
{
    (void)len;
    if (strcmp(op, "sync") == 0)
        (*(int *)arg)++;
    return 0;
}

/* The first bookie of a new cluster on the embedded store: /ledgers/INSTANCEID, the
 * /ledgers/available parent of the registrations and its cookie are made durable by one sync
 * of the store (they were three: each create waited for its own); everything is there after
 * the store is reopened, the cookie names the instance id, and a restart syncs nothing. */
START_TEST(test_cookie_new_cluster_one_sync)
{
    struct ck c;
    ck_init(&c);
    meta_close(c.meta);
    char mdir[512];
    snprintf(mdir, sizeof mdir, "%s/metadata", c.h.dir);
    struct meta_options mo = {.url = "embedded", .data_dir = mdir};
    ck_assert_int_eq(meta_open(c.loop, &mo, &c.meta), 0);
    c.h.o.meta = c.meta;
    /* the store's first persistent change also syncs its new log's directory entry: made
     * here, so that what follows counts the bookie's writes alone */
    ck_put(&c, "/other", "x");
    int syncs = 0;
    meta_embedded_set_fault(c.meta, ck_count_syncs, &syncs);
    ck_assert_int_eq(ck_start(&c, NULL), 0);
    ck_assert_int_eq(syncs, 1);
    /* what that one sync covered survives a reopen of the store */
    meta_close(c.meta);
    ck_assert_int_eq(meta_open(c.loop, &mo, &c.meta), 0);
    c.h.o.meta = c.meta;
    char *inst = ck_get(&c, "/ledgers/INSTANCEID"), *avail = ck_get(&c, "/ledgers/available");
    char path[128];
    snprintf(path, sizeof path, "/ledgers/cookies/127.0.0.1:%d", c.port);
    char *store = ck_get(&c, path);
    ck_assert_ptr_nonnull(inst);
    ck_assert_int_eq(strlen(inst), 36);
    ck_assert_ptr_nonnull(avail);
    ck_assert_ptr_nonnull(store);
    ck_assert_ptr_nonnull(strstr(store, inst));
    char *jc = ck_cookie_of(c.h.jdir);
    ck_assert_str_eq(jc, store);
    /* a restart reads and compares: no metadata sync */
    syncs = 0;
    meta_embedded_set_fault(c.meta, ck_count_syncs, &syncs);
    int port = c.port;
    ck_assert_int_eq(ck_start(&c, NULL), 0);
    ck_assert_int_eq(c.port, port);
    ck_assert_int_eq(syncs, 0);
    mg_free(jc);
    mg_free(store);
    mg_free(avail);
    mg_free(inst);
    ck_fini(&c);
}
END_TEST

enum ck_case {
    CK_ADDRESS,       /* advertisedAddress changed */
    CK_BOOKIE_ID,     /* bookieId set to something else */
    CK_WIPE_LEDGER,   /* ledger directory emptied */
    CK_WIPE_JOURNAL,  /* journal directory emptied */
    CK_OTHER_JOURNAL, /* journalDirectory points elsewhere */
    CK_INSTANCE,      /* /ledgers/INSTANCEID replaced (another cluster) */
    CK_STORE_DIFFERS, /* the store's cookie names other directories */
    CK_STORE_GONE,    /* the store lost the cookie, the directories have data */
    CK_ALL_EMPTY,     /* every directory empty, the store has the cookie */
    CK_NO_STORE,      /* started without a metadata store */
    CK_GARBLED,       /* a directory's cookie is not a cookie */
    CK_MIXED_OLD,     /* no cookies anywhere, one directory has data, the other none */
    CK__COUNT
};

/* Each way a bookie can come back changed is refused before its storage is opened, with an
 * ERROR naming what changed; the unchanged bookie then still starts. */
START_TEST(test_cookie_refusals)
{
    for (int k = 0; k < CK__COUNT; k++) {
        struct ck c;
        ck_init(&c);
        ck_assert_int_eq(ck_start(&c, NULL), 0);
        char id[64], spath[128], other[400], pat[800];
        snprintf(id, sizeof id, "127.0.0.1:%d", c.port);
        snprintf(spath, sizeof spath, "/ledgers/cookies/%s", id);
        snprintf(other, sizeof other, "%s/journal-other", c.h.dir);
        char jcur[400], lcur[400], lver[420];
        snprintf(jcur, sizeof jcur, "%s/current", c.h.jdir);
        snprintf(lcur, sizeof lcur, "%s/current", c.h.ldir);
        snprintf(lver, sizeof lver, "%s/VERSION", lcur);
        struct bk_options saved = c.h.o;
        switch ((enum ck_case)k) {
        case CK_ADDRESS:
            c.h.o.advertised_address = "127.0.0.2";
            snprintf(pat, sizeof pat, "belongs to bookie %s but this bookie is 127.0.0.2:%d", id,
                     c.port);
            break;
        case CK_BOOKIE_ID:
            c.h.o.bookie_id = "renamed-bookie";
            snprintf(pat, sizeof pat, "belongs to bookie %s but this bookie is renamed-bookie", id);
            break;
        case CK_WIPE_LEDGER:
            tl_rm_rf(lcur);
            snprintf(pat, sizeof pat, "ledgerDirectories %s has no cookie", c.h.ldir);
            break;
        case CK_WIPE_JOURNAL:
            tl_rm_rf(jcur);
            snprintf(pat, sizeof pat, "journalDirectory %s has no cookie", c.h.jdir);
            break;
        case CK_OTHER_JOURNAL:
            c.h.o.journal_dir = other;
            snprintf(pat, sizeof pat,
                     "it was written with journalDirectory %s, the configuration now says %s",
                     c.h.jdir, other);
            break;
        case CK_INSTANCE:
            ck_put(&c, "/ledgers/INSTANCEID", "00000000-1111-4222-8333-444444444444");
            snprintf(pat, sizeof pat,
                     "/ledgers/INSTANCEID is 00000000-1111-4222-8333-444444444444");
            break;
        case CK_STORE_DIFFERS: {
            char *v = ck_get(&c, spath);
            char *t = strstr(v, "ledgerDirs: \"1\\t");
            ck_assert_ptr_nonnull(t);
            t[strlen("ledgerDirs: \"1\\t")] = 'X'; /* the path's first character */
            ck_put(&c, spath, v);
            mg_free(v);
            snprintf(pat, sizeof pat, "the metadata store's cookie %s does not match", spath);
            break;
        }
        case CK_STORE_GONE:
            ck_del(&c, spath);
            snprintf(pat, sizeof pat, "the metadata store has no %s", spath);
            break;
        case CK_ALL_EMPTY:
            tl_rm_rf(jcur);
            tl_rm_rf(lcur);
            c.h.o.port = c.port; /* the cookies that remembered it are gone */
            snprintf(pat, sizeof pat, "the metadata store has its cookie %s but none", spath);
            break;
        case CK_NO_STORE:
            c.h.o.meta = NULL;
            snprintf(pat, sizeof pat, "this bookie has no metadata store");
            break;
        case CK_GARBLED: {
            FILE *f = fopen(lver, "w");
            ck_assert_ptr_nonnull(f);
            fputs("not a cookie\n", f);
            fclose(f);
            snprintf(pat, sizeof pat, "ledgerDirectories %s: cannot read its cookie", c.h.ldir);
            break;
        }
        case CK_MIXED_OLD: {
            char jver[420];
            snprintf(jver, sizeof jver, "%s/VERSION", jcur);
            ck_assert_int_eq(unlink(jver), 0);
            tl_rm_rf(lcur);
            ck_del(&c, spath);
            c.h.o.port = c.port;
            snprintf(pat, sizeof pat,
                     "journalDirectory %s holds bookie data without a cookie while "
                     "ledgerDirectories %s is empty",
                     c.h.jdir, c.h.ldir);
            break;
        }
        default:
            ck_abort();
        }
        bool had_lcur = ck_exists(lcur);
        char *log = NULL;
        int rc = ck_start(&c, &log);
        if (rc != -MG_ENOTALLOWED || !strstr(log, pat))
            ck_abort_msg("case %d: rc %d, expected \"%s\" in: %s", k, rc, pat, log);
        ck_assert_ptr_nonnull(strstr(log, "Refusing to start"));
        ck_assert_ptr_nonnull(strstr(log, "--format --force"));
        mg_free(log);
        /* refused before the storage was opened: nothing created in a wiped directory */
        ck_assert_int_eq(ck_exists(lcur), had_lcur);
        ck_assert(!ck_exists(other) || k == CK_OTHER_JOURNAL);
        if (k == CK_OTHER_JOURNAL) {
            char ocur[450];
            snprintf(ocur, sizeof ocur, "%s/current", other);
            ck_assert(!ck_exists(ocur));
        }
        /* back as it was (where that is possible), it starts */
        if (k == CK_ADDRESS || k == CK_BOOKIE_ID || k == CK_OTHER_JOURNAL || k == CK_NO_STORE) {
            c.h.o = saved;
            ck_assert_int_eq(ck_start(&c, NULL), 0);
        }
        ck_fini(&c);
    }
}
END_TEST

/* Directories with data from before cookies (none anywhere, both with data) are adopted with
 * a WARN; a first start that stopped between the directories' cookies and the store's
 * completes on the next start. */
START_TEST(test_cookie_adopt_and_resume)
{
    struct ck c;
    ck_init(&c);
    ck_assert_int_eq(ck_start(&c, NULL), 0);
    char id[64], spath[128], p[450];
    snprintf(id, sizeof id, "127.0.0.1:%d", c.port);
    snprintf(spath, sizeof spath, "/ledgers/cookies/%s", id);
    snprintf(p, sizeof p, "%s/current/VERSION", c.h.jdir);
    ck_assert_int_eq(unlink(p), 0);
    snprintf(p, sizeof p, "%s/current/VERSION", c.h.ldir);
    ck_assert_int_eq(unlink(p), 0);
    ck_del(&c, spath);
    c.h.o.port = c.port;
    char *log;
    ck_assert_int_eq(ck_start(&c, &log), 0);
    ck_assert_ptr_nonnull(strstr(log, "written before cookies existed"));
    mg_free(log);
    char *v = ck_get(&c, spath);
    ck_assert_ptr_nonnull(v);
    char *lc = ck_cookie_of(c.h.ldir);
    ck_assert_str_eq(lc, v);
    mg_free(lc);
    mg_free(v);
    ck_fini(&c);
    /* interrupted first start: the cookie files are there, the directories otherwise empty,
     * no store cookie */
    ck_init(&c);
    ck_assert_int_eq(ck_start(&c, NULL), 0);
    snprintf(id, sizeof id, "127.0.0.1:%d", c.port);
    snprintf(spath, sizeof spath, "/ledgers/cookies/%s", id);
    char *jc = ck_cookie_of(c.h.jdir);
    tl_rm_rf(c.h.jdir);
    tl_rm_rf(c.h.ldir);
    const char *dirs[] = {c.h.jdir, c.h.ldir};
    for (int i = 0; i < 2; i++) {
        snprintf(p, sizeof p, "%s/current", dirs[i]);
        char cmd[600];
        snprintf(cmd, sizeof cmd, "mkdir -p '%s'", p);
        ck_assert_int_eq(system(cmd), 0);
        snprintf(p, sizeof p, "%s/current/VERSION", dirs[i]);
        FILE *f = fopen(p, "w");
        ck_assert_ptr_nonnull(f);
        fputs(jc, f);
        fclose(f);
    }
    ck_del(&c, spath);
    ck_assert_int_eq(ck_start(&c, NULL), 0);
    v = ck_get(&c, spath);
    ck_assert_ptr_nonnull(v);
    ck_assert_str_eq(v, jc);
    mg_free(v);
    mg_free(jc);
    ck_fini(&c);
}
END_TEST

/* Another bookie with the same id (and the same configuration, on another host) creates the
 * store's cookie while this one starts, after this one found none: the start is refused,
 * nothing is left in this bookie's directories, and its next start is refused again. The
 * twin's create is fired after a growing number of loop turns of the start, so that some try
 * lands between this bookie's read of the store and its own create. */
struct ck_twin {
    struct ck *c;
    struct event *ev;
    const char *path, *text;
    int turns; /* loop turns left before the twin creates its cookie */
    struct ck_wait w;
    bool issued;
};

static void ck_twin_cb(evutil_socket_t fd, short what, void *arg)
{
    (void)fd;
    (void)what;
    struct ck_twin *t = arg;
    if (--t->turns > 0) {
        struct timeval tv = {0, 0};
        evtimer_add(t->ev, &tv);
        return;
    }
    t->issued = meta_put(t->c->meta, t->path, t->text, strlen(t->text), META_VERSION_NONE,
                         META_PERSISTENT | META_CREATE_PARENTS, &t->w.req, ck_wait_cb) == 0;
    ck_assert(t->issued);
}

START_TEST(test_cookie_twin_refused)
{
    struct ck c;
    ck_init(&c);
    c.h.o.bookie_id = "twin-bookie";
    const char *spath = "/ledgers/cookies/twin-bookie";
    ck_assert_int_eq(ck_start(&c, NULL), 0);
    char *text = ck_get(&c, spath); /* what the twin, configured alike, writes */
    ck_assert_ptr_nonnull(text);
    char jcur[400], lcur[400];
    snprintf(jcur, sizeof jcur, "%s/current", c.h.jdir);
    snprintf(lcur, sizeof lcur, "%s/current", c.h.ldir);
    int raced = 0;
    for (int turns = 1; turns <= 8; turns++) {
        tl_rm_rf(jcur);
        tl_rm_rf(lcur);
        ck_del(&c, spath);
        struct ck_twin t = {.c = &c, .path = spath, .text = text, .turns = turns};
        t.ev = evtimer_new(c.base, ck_twin_cb, &t);
        struct timeval tv = {0, 0};
        evtimer_add(t.ev, &tv);
        char *log = NULL;
        int rc = ck_start(&c, &log);
        for (int i = 0; i < 10000 && !t.issued; i++) /* the start ended before the twin */
            event_base_loop(c.base, EVLOOP_ONCE);
        ck_assert(t.issued);
        ck_wait(&c, &t.w, 0);
        meta_req_fini(&t.w.req);
        event_free(t.ev);
        if (rc == 0) { /* this bookie created the cookie first: the twin's create failed */
            ck_assert_int_eq(t.w.status, -MG_EEXIST);
            mg_free(log);
            continue;
        }
        ck_assert_int_eq(rc, -MG_ENOTALLOWED);
        if (strstr(log, "another bookie with the id twin-bookie is starting")) {
            raced++;
            /* refused: nothing stamped here */
            char *jc = ck_cookie_of(c.h.jdir), *lc = ck_cookie_of(c.h.ldir);
            ck_assert_ptr_null(jc);
            ck_assert_ptr_null(lc);
        }
        mg_free(log);
        /* and the next start (the twin's cookie still there) is refused again */
        rc = ck_start(&c, &log);
        if (rc != -MG_ENOTALLOWED || !strstr(log, "the metadata store has its cookie"))
            ck_abort_msg("turns %d: next start rc %d: %s", turns, rc, log);
        mg_free(log);
    }
    ck_assert_int_gt(raced, 0);
    mg_free(text);
    ck_fini(&c);
}
END_TEST

/* --format: refused while the bookie runs (its lock), lists without force and deletes
 * nothing, with force but a store cookie that cannot be deleted deletes nothing (the bookie
 * still starts), with force empties both directories and deletes the store's cookie; the next
 * start is a new bookie (even on empty directories with the old port). */
START_TEST(test_cookie_format_cmd)
{
    struct ck c;
    ck_init(&c);
    struct bk_server *s = NULL;
    ck_assert_int_eq(bk_server_new(c.base, &c.h.o, &s), 0);
    int port = bk_server_port(s);
    struct bk_options fo = c.h.o;
    fo.port = port;
    struct capture cap;
    cap_start(&cap);
    int rc = bk_format(c.base, c.meta, &fo, true);
    mg_free(cap_end(&cap));
    ck_assert_int_eq(rc, -MG_EBUSY);
    bk_server_free(s);
    char spath[128], jcur[400], lcur[400];
    snprintf(spath, sizeof spath, "/ledgers/cookies/127.0.0.1:%d", port);
    snprintf(jcur, sizeof jcur, "%s/current", c.h.jdir);
    snprintf(lcur, sizeof lcur, "%s/current", c.h.ldir);
    cap_start(&cap);
    rc = bk_format(c.base, c.meta, &fo, false);
    char *log = cap_end(&cap);
    ck_assert_int_eq(rc, -MG_ENOTALLOWED);
    ck_assert_ptr_nonnull(strstr(log, spath));
    ck_assert_ptr_nonnull(strstr(log, jcur));
    mg_free(log);
    ck_assert(ck_exists(jcur) && ck_exists(lcur));
    char *v = ck_get(&c, spath);
    ck_assert_ptr_nonnull(v);
    mg_free(v);
    /* the store's cookie cannot be deleted (a child under it): nothing is deleted, and the
     * bookie still starts as it was */
    char child[160];
    snprintf(child, sizeof child, "%s/child", spath);
    ck_put(&c, child, "x");
    cap_start(&cap);
    rc = bk_format(c.base, c.meta, &fo, true);
    log = cap_end(&cap);
    ck_assert_int_lt(rc, 0);
    ck_assert_ptr_nonnull(strstr(log, "format: cannot delete"));
    mg_free(log);
    ck_assert(ck_exists(jcur) && ck_exists(lcur));
    v = ck_get(&c, spath);
    ck_assert_ptr_nonnull(v);
    mg_free(v);
    c.h.o.port = port;
    ck_assert_int_eq(ck_start(&c, NULL), 0);
    ck_del(&c, child);
    ck_assert_int_eq(bk_format(c.base, c.meta, &fo, true), 0);
    ck_assert(!ck_exists(jcur) && !ck_exists(lcur));
    ck_assert_ptr_null(ck_get(&c, spath));
    c.h.o.port = port;
    ck_assert_int_eq(ck_start(&c, NULL), 0);
    ck_assert_int_eq(c.port, port);
    v = ck_get(&c, spath);
    ck_assert_ptr_nonnull(v);
    mg_free(v);
    ck_fini(&c);
}
END_TEST

/* The bookie's options from the configuration: BookKeeper's disk keys (fractions) and the
 * frame limit's default. */
START_TEST(test_options_from_cfg)
{
    struct cfg c;
    cfg_init(&c);
    struct bk_options o;
    bk_options_from_cfg(&o, &c, "ledgers");
    ck_assert_int_eq(o.max_frame_size, 5 * 1024 * 1024 + 10 * 1024); /* Pulsar's 5253120 */
    ck_assert_int_eq(o.max_frame_size, BK_DEFAULT_MAX_FRAME);
    ck_assert_double_eq_tol(o.disk_usage_threshold_pct, 95.0, 1e-9);
    ck_assert_double_eq_tol(o.disk_usage_lwm_pct, 95.0, 1e-9);
    ck_assert_int_eq(o.write_cache_max, 16LL << 20);
    ck_assert_int_eq(o.flush_entrylog_bytes, 1 << 20); /* write-behind on by default */
    ck_assert_int_eq(o.journal_max_backups, 5);
    ck_assert_double_eq_tol(o.disk_usage_warn_pct, 90.0, 1e-9); /* BookKeeper's 0.90 */
    ck_assert_str_eq(o.journal_dir, "data/bookie/journal");
    char err[256];
    /* journalDirectories, BookKeeper's plural key, wins over journalDirectory when set */
    ck_assert_int_eq(cfg_set(&c, "journalDirectories", "/j1", "test", err, sizeof err), 0);
    ck_assert_int_eq(cfg_set(&c, "diskUsageWarnThreshold", "0.8", "test", err, sizeof err), 0);
    ck_assert_int_eq(cfg_set(&c, "flushEntrylogBytes", "0", "test", err, sizeof err), 0);
    bk_options_from_cfg(&o, &c, "ledgers");
    ck_assert_str_eq(o.journal_dir, "/j1");
    ck_assert_int_eq(o.flush_entrylog_bytes, 0);
    ck_assert_double_eq_tol(o.disk_usage_warn_pct, 80.0, 1e-9);
    /* more than one journal directory refuses the start, naming the key */
    struct harness h;
    h_init_dirs(&h, NULL);
    char jl[700];
    snprintf(jl, sizeof jl, "%s/j1,%s/j2", h.dir, h.dir);
    h.o.journal_dir = jl;
    struct event_base *base = event_base_new();
    struct bk_server *srv = NULL;
    struct capture cap;
    cap_start(&cap);
    ck_assert_int_eq(bk_server_new(base, &h.o, &srv), -MG_EINVAL);
    char *log = cap_end(&cap);
    ck_assert_ptr_nonnull(strstr(log, "journalDirectories"));
    mg_free(log);
    event_base_free(base);
    tl_rm_rf(h.dir);
    ck_assert_int_eq(cfg_set(&c, "dbStorage_writeCacheMaxSizeMb", "3", "test", err, sizeof err), 0);
    ck_assert_int_eq(cfg_set(&c, "journalMaxBackups", "0", "test", err, sizeof err), 0);
    ck_assert(o.journal_reuse); /* journalReuseFiles: true (BookKeeper's default is false) */
    ck_assert_int_eq(cfg_set(&c, "journalReuseFiles", "false", "test", err, sizeof err), 0);
    bk_options_from_cfg(&o, &c, "ledgers");
    ck_assert_int_eq(o.write_cache_max, 3LL << 20);
    ck_assert_int_eq(o.journal_max_backups, 0);
    ck_assert(!o.journal_reuse);
    ck_assert_int_eq(cfg_set(&c, "diskUsageThreshold", "0.9", "test", err, sizeof err), 0);
    ck_assert_int_eq(cfg_set(&c, "diskUsageLwmThreshold", ".85", "test", err, sizeof err), 0);
    bk_options_from_cfg(&o, &c, "ledgers");
    ck_assert_double_eq_tol(o.disk_usage_threshold_pct, 90.0, 1e-9);
    ck_assert_double_eq_tol(o.disk_usage_lwm_pct, 85.0, 1e-9);
    const char *bad[] = {"1", "0", "1.5", "0.95x", " 0.9", "-0.5", "1e-1", "0x0.8", "nan", ""};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        err[0] = '\0';
        ck_assert_int_eq(cfg_set(&c, "diskUsageThreshold", bad[i], "test", err, sizeof err),
                         -MG_EINVAL);
        ck_assert_ptr_nonnull(strstr(err, "diskUsageThreshold"));
    }
    ck_assert_double_eq_tol(c.disk_usage_threshold, 0.9, 1e-12); /* unchanged */
    /* the dump reads back */
    char *buf = tl_cfg_dump(&c);
    ck_assert_ptr_nonnull(strstr(buf, "\ndiskUsageThreshold: 0.9"));
    ck_assert_ptr_nonnull(strstr(buf, "\ndiskUsageLwmThreshold: 0.85"));
    mg_free(buf);
    cfg_fini(&c);
}
END_TEST

/* ---- garbage collection and compaction ---------------------------------------------------- */

#define GC_PAYLOAD 1000

/* A bookie on a memory store (ck), entry logs of 64 KiB, no periodic gc: runs are forced. */
static struct bk_server *gc_start(struct ck *c)
{
    c->h.o.entry_log_max_size = 64 * 1024;
    c->h.o.gc_wait_ms = 0;
    c->h.o.compaction_rate_by_entries = 100000;
    struct bk_server *s = NULL;
    ck_assert_int_eq(bk_server_new(c->base, &c->h.o, &s), 0);
    return s;
}

static void gc_put_md(struct ck *c, int64_t ledger)
{
    char *p = bkc_ledger_path("/ledgers", ledger);
    ck_put(c, p, "md");
    mg_free(p);
}

static void gc_del_md(struct ck *c, int64_t ledger)
{
    char *p = bkc_ledger_path("/ledgers", ledger);
    ck_del(c, p);
    mg_free(p);
}

/* Store entries [from, to) of ledger directly (as the journal completion does). */
static void gc_add(struct bk_server *s, int64_t ledger, int from, int to)
{
    for (int e = from; e < to; e++) {
        size_t len;
        uint8_t *b = make_entry(ledger, e, e - 1, GC_PAYLOAD, &len);
        ck_assert_int_eq(bk_store_apply(&s->store, ledger, e, b, len), 0);
    }
}

/* Entries [0, n) of ledgers 1 and 2, alternately, with a checkpoint every 20 of each: the
 * storage thread writes each checkpoint's entries sorted by ledger, so this is what puts
 * both ledgers in every 64 KiB log (half-live logs once one ledger is gone). */
static void gc_add_mixed(struct bk_server *s, int n)
{
    for (int e = 0; e < n; e++) {
        gc_add(s, 1, e, e + 1);
        gc_add(s, 2, e, e + 1);
        if (e % 20 == 19)
            ck_assert_int_eq(bk_server_checkpoint(s), 0);
    }
    ck_assert_int_eq(bk_server_checkpoint(s), 0);
}

/* Every entry [0, n) of ledger reads back byte for byte. */
static void gc_check(struct bk_server *s, int64_t ledger, int n)
{
    for (int e = 0; e < n; e++) {
        size_t len, got;
        uint8_t *want = make_entry(ledger, e, e - 1, GC_PAYLOAD, &len);
        uint8_t *data;
        bool owned;
        ck_assert_int_eq(bk_store_read(&s->store, ledger, e, &data, &got, &owned), WIRE_BK_EOK);
        ck_assert_uint_eq(got, len);
        ck_assert(memcmp(data, want, len) == 0);
        if (owned)
            mg_free(data);
        mg_free(want);
    }
}

/* A gc bookie on a new memory store (c) holding entries [0, n) of ledger 1, which the store
 * knows, checkpointed. */
static struct bk_server *gc_start_one(struct ck *c, int n)
{
    ck_init(c);
    struct bk_server *s = gc_start(c);
    gc_put_md(c, 1);
    gc_add(s, 1, 0, n);
    ck_assert_int_eq(bk_server_checkpoint(s), 0);
    return s;
}

/* A gc bookie on a new memory store (c) whose logs hold n entries of ledgers 1 and 2 mixed
 * (gc_add_mixed), ledger 2 then deleted from the store's metadata: half of it is garbage. */
static struct bk_server *gc_start_half_deleted(struct ck *c, int n)
{
    ck_init(c);
    struct bk_server *s = gc_start(c);
    gc_put_md(c, 1);
    gc_put_md(c, 2);
    gc_add_mixed(s, n);
    gc_del_md(c, 2);
    return s;
}

/* Every entry [0, n) of ledger reads back now and after a clean restart; s is freed. */
static void gc_check_restarted(struct ck *c, struct bk_server *s, int64_t ledger, int n)
{
    gc_check(s, ledger, n);
    bk_server_free(s);
    s = gc_start(c);
    gc_check(s, ledger, n);
    bk_server_free(s);
}

static int gc_read_rc(struct bk_server *s, int64_t ledger, int64_t entry)
{
    uint8_t *data;
    size_t len;
    bool owned;
    int rc = bk_store_read(&s->store, ledger, entry, &data, &len, &owned);
    if (rc == WIRE_BK_EOK && owned)
        mg_free(data);
    return rc;
}

/* Run the loop until the gc run (and its compaction) is over; bounded. */
static void gc_wait_idle(struct ck *c, struct bk_server *s)
{
    for (int i = 0; i < 200000 && !bk_gc_idle(s->gc); i++) {
        event_base_loop(c->base, EVLOOP_NONBLOCK);
        if (!bk_gc_idle(s->gc))
            usleep(1000);
    }
    ck_assert(bk_gc_idle(s->gc));
}

/* One gc run (forced compaction or not) to its end; its statistics in *gs. */
static void gc_run_wait(struct ck *c, struct bk_server *s, bool force, struct bk_gc_stats *gs)
{
    ck_assert_int_eq(bk_gc_run(s->gc, force), 0);
    gc_wait_idle(c, s);
    bk_gc_stats(s->gc, gs);
}

/* Bytes of the entry logs in the ledger directory. */
static uint64_t gc_log_bytes(struct ck *c)
{
    char dir[600];
    snprintf(dir, sizeof dir, "%s/current", c->h.ldir);
    DIR *d = opendir(dir);
    ck_assert_ptr_nonnull(d);
    uint64_t sum = 0;
    struct dirent *de;
    while ((de = readdir(d)) != NULL) {
        size_t l = strlen(de->d_name);
        if (l > 4 && strcmp(de->d_name + l - 4, ".log") == 0) {
            char p[1200];
            snprintf(p, sizeof p, "%s/%s", dir, de->d_name);
            sum += (uint64_t)tl_file_size(p);
        }
    }
    closedir(d);
    return sum;
}

static int gc_log_count(struct ck *c)
{
    char dir[600];
    snprintf(dir, sizeof dir, "%s/current", c->h.ldir);
    return count_files(dir, ".log");
}

/* A ledger deleted from the store: gone from the index (ENOLEDGER, also after a restart),
 * the logs that held only its entries deleted; the other ledgers untouched. */
START_TEST(test_gc_deleted_ledger)
{
    struct ck c;
    ck_init(&c);
    struct bk_server *s = gc_start(&c);
    for (int64_t l = 1; l <= 3; l++)
        gc_put_md(&c, l);
    gc_put_md(&c, 3000000000LL); /* the long layout too */
    gc_add(s, 1, 0, 150);
    gc_add(s, 2, 0, 300); /* about 300 KiB: several logs of its own */
    gc_add(s, 3, 0, 150);
    gc_add(s, 3000000000LL, 0, 10);
    ck_assert_int_eq(bk_server_checkpoint(s), 0);
    int logs_before = gc_log_count(&c);
    uint64_t bytes_before = gc_log_bytes(&c);
    gc_del_md(&c, 2);
    struct bk_gc_stats gs;
    gc_run_wait(&c, s, false, &gs);
    ck_assert_uint_eq(gs.ledgers_deleted, 1);
    ck_assert_uint_ge(gs.logs_deleted, 3);
    ck_assert_int_eq(gc_read_rc(s, 2, 0), WIRE_BK_ENOLEDGER);
    ck_assert_int_le(gc_log_count(&c), logs_before - 3);
    ck_assert_uint_le(gc_log_bytes(&c), bytes_before - 3 * 60 * 1024);
    gc_check(s, 1, 150);
    gc_check(s, 3, 150);
    gc_check(s, 3000000000LL, 10);
    bk_server_free(s);
    s = gc_start(&c);
    ck_assert_int_eq(gc_read_rc(s, 2, 0), WIRE_BK_ENOLEDGER);
    gc_check(s, 1, 150);
    gc_check(s, 3, 150);
    bk_server_free(s);
    ck_fini(&c);
}
END_TEST

/* The value of the sample `sample` (name and labels) in a scrape, or -1 when absent. */
static double metric_value(const char *text, const char *sample)
{
    size_t n = strlen(sample);
    for (const char *p = text; p && *p; p = strchr(p, '\n'), p = p ? p + 1 : NULL)
        if (strncmp(p, sample, n) == 0 && p[n] == ' ')
            return strtod(p + n + 1, NULL);
    return -1;
}

/* What bk_metrics writes (free with free). */
static char *scrape(struct bk_server *s)
{
    struct evbuffer *b = evbuffer_new();
    bk_metrics(s, b);
    char *text = strndup((const char *)evbuffer_pullup(b, -1), evbuffer_get_length(b));
    evbuffer_free(b);
    return text;
}

/* bk_metrics: BookKeeper's names for the journal latencies (a summary in ms: quantiles from
 * the buckets, count, sum, failures), the read-only state, the entry logs and the garbage
 * collector's counters. */
START_TEST(test_metrics)
{
    struct ck c;
    ck_init(&c);
    struct bk_server *s = gc_start(&c);
    gc_put_md(&c, 1);
    gc_put_md(&c, 2);
    gc_add(s, 1, 0, 100);
    gc_add(s, 2, 0, 100);
    ck_assert_int_eq(bk_server_checkpoint(s), 0);
    gc_del_md(&c, 2);
    ck_assert_int_eq(bk_gc_run(s->gc, false), 0);
    gc_wait_idle(&c, s);
    /* 99 fsyncs of 100 us, one of 50 ms, one failed */
    for (int i = 0; i < 99; i++)
        bk_lat_add(&s->journal.lat_sync, 100 * 1000, true);
    bk_lat_add(&s->journal.lat_sync, 50 * 1000 * 1000, true);
    bk_lat_add(&s->journal.lat_sync, 1, false);
    char *t = scrape(s);
    const char *q = "bookie_journal_JOURNAL_SYNC{success=\"true\",quantile=";
    char k[160];
    struct {
        const char *q;
        double ms; /* the upper bound of the quantile's power-of-two bucket of microseconds */
    } want[] = {{"0.5", 0.128}, {"0.99", 0.128}, {"0.999", 65.536}, {"1.0", 65.536}};
    for (size_t i = 0; i < sizeof want / sizeof *want; i++) {
        snprintf(k, sizeof k, "%s\"%s\"}", q, want[i].q);
        ck_assert_msg(metric_value(t, k) == want[i].ms, "%s: %g\n%s", k, metric_value(t, k), t);
    }
    ck_assert(metric_value(t, "bookie_journal_JOURNAL_SYNC_count{success=\"true\"}") == 100);
    ck_assert(metric_value(t, "bookie_journal_JOURNAL_SYNC_count{success=\"false\"}") == 1);
    ck_assert_double_eq_tol(metric_value(t, "bookie_journal_JOURNAL_SYNC_sum{success=\"true\"}"),
                            59.9, 1e-9);
    ck_assert(metric_value(t, "bookie_journal_JOURNAL_ADD_ENTRY_count{success=\"true\"}") >= 0);
    ck_assert(metric_value(t, "bookie_SERVER_STATUS") == 1);
    ck_assert(metric_value(t, "bookie_DELETED_LEDGER_COUNT") == 1);
    ck_assert(metric_value(t, "bookie_gc_ACTIVE_ENTRY_LOG_COUNT") >= 1);
    double live = metric_value(t, "bookie_gc_ACTIVE_ENTRY_LOG_SPACE_BYTES");
    ck_assert_msg(live >= 100 * GC_PAYLOAD && live < 200 * GC_PAYLOAD, "live %g", live);
    double use = metric_value(t, "magnetar_bookie_disk_usage{dir=\"ledger\"}");
    ck_assert_msg(use > 0 && use < 1, "disk usage %g", use);
    free(t);
    /* read-only: SERVER_STATUS 0 */
    bk_server_set_readonly(s, BK_RO_DISK, true, "test");
    t = scrape(s);
    ck_assert(metric_value(t, "bookie_SERVER_STATUS") == 0);
    ck_assert(metric_value(t, "bookie_ledger_writable_dirs") == 0);
    free(t);
    bk_server_set_readonly(s, BK_RO_DISK, false, "test");
    bk_server_free(s);
    ck_fini(&c);
}
END_TEST

/* The entry log of a start that wrote nothing (only its header) is deleted by the next gc
 * run like any log without live entries; the logs with data and the current one stay. */
START_TEST(test_gc_empty_logs_of_restarts)
{
    struct ck c;
    struct bk_server *s = gc_start_one(&c, 100);
    bk_server_free(s);
    int with_data = gc_log_count(&c);
    const int restarts = 3;
    for (int i = 0; i < restarts; i++)
        bk_server_free(gc_start(&c));
    s = gc_start(&c);
    ck_assert_int_eq(gc_log_count(&c), with_data + restarts + 1);
    ck_assert_int_eq(bk_gc_run(s->gc, false), 0);
    gc_wait_idle(&c, s);
    struct bk_gc_stats gs;
    bk_gc_stats(s->gc, &gs);
    ck_assert_uint_eq(gs.logs_deleted, (uint64_t)restarts);
    ck_assert_int_eq(gc_log_count(&c), with_data + 1);
    gc_check(s, 1, 100);
    bk_server_free(s);
    ck_fini(&c);
}
END_TEST

/* A ledger whose metadata and first entries arrive while a run re-checks its candidates (the
 * listing is over and does not name it) survives; the deleted one goes. */
START_TEST(test_gc_ledger_created_during_scan)
{
    struct ck c;
    ck_init(&c);
    struct bk_server *s = gc_start(&c);
    gc_put_md(&c, 1);
    gc_add(s, 1, 0, 5);
    gc_add(s, 2, 0, 5); /* no metadata: deleted */
    bk_gc_pause_after_listing(s->gc, true);
    ck_assert_int_eq(bk_gc_run(s->gc, false), 0);
    for (int i = 0; i < 10000 && !bk_gc_listing_done(s->gc); i++)
        event_base_loop(c.base, EVLOOP_NONBLOCK);
    ck_assert(bk_gc_listing_done(s->gc));
    /* a client creates ledger 4 now, in a directory the listing already read, and writes it */
    struct ck_wait w = {0};
    char *p = bkc_ledger_path("/ledgers", 4);
    ck_assert_int_eq(
        meta_put(c.meta, p, "md", 2, META_VERSION_ANY, META_CREATE_PARENTS, &w.req, ck_wait_cb), 0);
    mg_free(p);
    gc_add(s, 4, 0, 5);
    for (int i = 0; i < 10000 && !w.done; i++)
        event_base_loop(c.base, EVLOOP_NONBLOCK);
    ck_assert(w.done);
    bk_gc_pause_after_listing(s->gc, false);
    bk_gc_resume(s->gc);
    gc_wait_idle(&c, s);
    meta_req_fini(&w.req);
    ck_assert_int_eq(gc_read_rc(s, 2, 0), WIRE_BK_ENOLEDGER);
    gc_check(s, 1, 5);
    gc_check(s, 4, 5);
    /* also when the ledger's data reached the bookie but the candidate re-check raced: a
     * second run keeps it (it is listed now) */
    ck_assert_int_eq(bk_gc_run(s->gc, false), 0);
    gc_wait_idle(&c, s);
    gc_check(s, 4, 5);
    bk_server_free(s);
    ck_fini(&c);
}
END_TEST

/* A listing that fails at any of its calls deletes nothing; the next good run does. */
START_TEST(test_gc_listing_failure)
{
    struct ck c;
    ck_init(&c);
    struct bk_server *s = gc_start(&c);
    gc_put_md(&c, 1);
    gc_put_md(&c, 20000); /* another directory: the listing takes several calls */
    gc_add(s, 1, 0, 5);
    gc_add(s, 2, 0, 5);
    gc_add(s, 20000, 0, 5);
    ck_assert_int_eq(bk_server_checkpoint(s), 0);
    /* fail each call of the listing in turn, until a run makes fewer calls than the one
     * failed: that run is the first good one */
    int at = 1;
    for (; at <= 16; at++) {
        bk_gc_inject(s->gc, at, 0);
        ck_assert_int_eq(bk_gc_run(s->gc, false), 0);
        gc_wait_idle(&c, s);
        struct bk_gc_stats gs;
        bk_gc_stats(s->gc, &gs);
        if (gs.scan_failures < (uint64_t)at)
            break;
        ck_assert_uint_eq(gs.scan_failures, (uint64_t)at);
        ck_assert_uint_eq(gs.ledgers_deleted, 0);
        gc_check(s, 2, 5);
    }
    /* /ledgers, /ledgers/00, /ledgers/00/0000 (ledger 1), /ledgers/00/0002 (20000): each of
     * the 4 calls was failed once */
    ck_assert_int_eq(at - 1, 4);
    bk_gc_inject(s->gc, 0, 0);
    ck_assert_int_eq(gc_read_rc(s, 2, 0), WIRE_BK_ENOLEDGER);
    gc_check(s, 1, 5);
    gc_check(s, 20000, 5);
    bk_server_free(s);
    ck_fini(&c);
}
END_TEST

/* Logs half of a deleted ledger: a compaction keeps every live entry readable (before and
 * after a restart) and shrinks the logs. */
START_TEST(test_compaction_half_live)
{
    struct ck c;
    struct bk_server *s = gc_start_half_deleted(&c, 300);
    uint64_t before = gc_log_bytes(&c);
    ck_assert_int_eq(bk_gc_run(s->gc, true), 0);
    gc_wait_idle(&c, s);
    struct bk_gc_stats gs;
    bk_gc_stats(s->gc, &gs);
    ck_assert_uint_ge(gs.logs_compacted, 5);
    ck_assert_uint_ge(gs.entries_compacted, 250);
    uint64_t after = gc_log_bytes(&c);
    ck_assert_msg(after < before * 65 / 100, "logs %llu -> %llu bytes", (unsigned long long)before,
                  (unsigned long long)after);
    ck_assert_int_eq(gc_read_rc(s, 2, 0), WIRE_BK_ENOLEDGER);
    gc_check_restarted(&c, s, 1, 300);
    ck_fini(&c);
}
END_TEST

/* Ledger drops, log deletions and compaction run on the storage thread: while one of them
 * is held there, the loop thread (here the test's) goes on adding and reading; compaction's
 * copies never pass through the write cache; afterwards every entry reads back. */
START_TEST(test_gc_off_loop)
{
    struct ck c;
    struct bk_server *s = gc_start_half_deleted(&c, 120);
    bk_server_free(s);
    c.h.o.compaction_rate_by_entries = 100; /* a log takes several slices */
    s = NULL;
    ck_assert_int_eq(bk_server_new(c.base, &c.h.o, &s), 0);
    bk_store_gate(&s->store, BK_GATE_GC);
    ck_assert_int_eq(bk_gc_run(s->gc, true), 0);
    for (int i = 0; i < 10000 && !bk_store_gate_parked(&s->store); i++) {
        event_base_loop(c.base, EVLOOP_NONBLOCK);
        usleep(1000);
    }
    ck_assert(bk_store_gate_parked(&s->store));
    /* the loop is free: adds and reads are served while gc waits on the storage thread */
    gc_put_md(&c, 3);
    gc_add(s, 3, 0, 20);
    gc_check(s, 3, 20);
    gc_check(s, 1, 120);
    ck_assert(!bk_gc_idle(s->gc));
    ck_assert(bk_store_gate_parked(&s->store));
    bk_store_gate(&s->store, BK_GATE_NONE);
    ck_assert_int_eq(bk_server_checkpoint(s), 0);
    size_t most = 0;
    for (int i = 0; i < 60000 && !bk_gc_idle(s->gc); i++) {
        event_base_loop(c.base, EVLOOP_NONBLOCK);
        if (s->store.cache_bytes > most)
            most = s->store.cache_bytes;
        usleep(1000);
    }
    ck_assert(bk_gc_idle(s->gc));
    struct bk_gc_stats gs;
    bk_gc_stats(s->gc, &gs);
    ck_assert_uint_eq(gs.ledgers_deleted, 1);
    ck_assert_uint_ge(gs.entries_compacted, 60);
    ck_assert_uint_ge(gs.logs_compacted, 1);
    ck_assert_uint_eq(most, 0);
    gc_check(s, 1, 120);
    gc_check(s, 3, 20);
    ck_assert_int_eq(gc_read_rc(s, 2, 0), WIRE_BK_ENOLEDGER);
    bk_server_free(s);
    s = gc_start(&c);
    gc_check(s, 1, 120);
    gc_check(s, 3, 20);
    ck_assert_int_eq(gc_read_rc(s, 2, 0), WIRE_BK_ENOLEDGER);
    bk_server_free(s);
    ck_fini(&c);
}
END_TEST

/* After a fault during the compaction of half-live logs (ledger 1's 200 entries live, ledger
 * 2 deleted, the logs' bytes before): a crash, a restart, every live entry reads back, and a
 * compaction then finishes the job. s is freed, c finished. */
static void gc_crash_and_finish(struct ck *c, struct bk_server *s, uint64_t before)
{
    bk_server_free_unclean(s);
    c->h.o.compaction_rate_by_entries = 100000;
    s = gc_start(c);
    gc_check(s, 1, 200);
    ck_assert_int_eq(gc_read_rc(s, 2, 0), WIRE_BK_ENOLEDGER);
    ck_assert_int_eq(bk_gc_run(s->gc, true), 0);
    gc_wait_idle(c, s);
    gc_check(s, 1, 200);
    ck_assert_uint_lt(gc_log_bytes(c), before * 65 / 100);
    bk_server_free(s);
    ck_fini(c);
}

/* A crash at each step of a compaction (mid-copy, copies made but not synced, synced and
 * indexed but the old log not yet deleted) loses nothing: after the restart every entry
 * reads back, and a later compaction finishes the job. */
START_TEST(test_compaction_crash)
{
    for (int step = 0; step <= 2; step++) {
        struct ck c;
        struct bk_server *s = gc_start_half_deleted(&c, 200);
        uint64_t before = gc_log_bytes(&c);
        if (step == 0) {
            /* slow copies: crash after a few slices */
            bk_server_free(s);
            c.h.o.compaction_rate_by_entries = 50;
            struct bk_server *s2 = NULL;
            ck_assert_int_eq(bk_server_new(c.base, &c.h.o, &s2), 0);
            s = s2;
            ck_assert_int_eq(bk_gc_run(s->gc, true), 0);
            struct bk_gc_stats gs = {0};
            for (int i = 0; i < 2000 && gs.entries_compacted < 10; i++) {
                event_base_loop(c.base, EVLOOP_NONBLOCK);
                usleep(10000);
                bk_gc_stats(s->gc, &gs);
            }
            ck_assert(!bk_gc_idle(s->gc)); /* still copying */
            c.h.o.compaction_rate_by_entries = 100000;
        } else {
            bk_gc_inject(s->gc, 0, step);
            uint64_t ckpts = s->checkpoints;
            ck_assert_int_eq(bk_gc_run(s->gc, true), 0);
            gc_wait_idle(&c, s);
            /* the run ended at the stop, the old log kept; compaction syncs and indexes its
             * own copies on the storage thread: no checkpoint ran meanwhile */
            struct bk_gc_stats gs;
            bk_gc_stats(s->gc, &gs);
            ck_assert_uint_eq(gs.logs_compacted, 0);
            ck_assert_uint_gt(gs.entries_compacted, 0);
            ck_assert_uint_eq(s->checkpoints, ckpts);
        }
        gc_crash_and_finish(&c, s, before);
    }
}
END_TEST

/* ---- several ledger directories, disk thresholds ------------------------------------------ */

/* A new memory store (c) that knows ledger 1, and options for a bookie on the ledger
 * directories <root>/l0..l<n-1> (comma-separated in list). */
static void ld_init(struct ck *c, int n, char (*dirs)[400], char *list, size_t len)
{
    ck_init(c);
    gc_put_md(c, 1);
    list[0] = '\0';
    for (int i = 0; i < n; i++) {
        snprintf(dirs[i], 400, "%s/l%d", c->h.dir, i);
        size_t l = strlen(list);
        snprintf(list + l, len - l, "%s%s", i ? " , " : "", dirs[i]); /* blanks are trimmed */
    }
    c->h.o.ledger_dir = list;
}

static int ld_logs(const char *dir)
{
    char *cur = mg_asprintf("%s/current", dir);
    int n = count_files(cur, ".log");
    mg_free(cur);
    return n;
}

/* Entry logs go round-robin over the ledger directories; the index stays in the first; every
 * directory gets the cookie; after a restart every entry reads back; a changed list (one
 * directory dropped, one added) is refused, naming the directory. */
START_TEST(test_ledger_dirs_round_robin)
{
    struct ck c;
    char dirs[4][400], list[1700];
    ld_init(&c, 3, dirs, list, sizeof list);
    struct bk_server *s = gc_start(&c);
    ck_assert_uint_eq(s->store.n_ldirs, 3);
    for (int e = 0; e < 400; e += 40) {
        gc_add(s, 1, e, e + 40);
        ck_assert_int_eq(bk_server_checkpoint(s), 0);
    }
    int total = 0;
    for (int i = 0; i < 3; i++) {
        int n = ld_logs(dirs[i]);
        ck_assert_msg(n >= 2, "%s has %d entry logs", dirs[i], n);
        total += n;
        char *idx = mg_asprintf("%s/current/index", dirs[i]);
        ck_assert(ck_exists(idx) == (i == 0));
        mg_free(idx);
    }
    ck_assert_int_ge(total, 6);
    char *cookie0 = ck_cookie_of(dirs[0]);
    ck_assert_ptr_nonnull(cookie0);
    ck_assert_ptr_nonnull(strstr(cookie0, "ledgerDirs: \"3\\t"));
    for (int i = 1; i < 3; i++) {
        char *ci = ck_cookie_of(dirs[i]);
        ck_assert_ptr_nonnull(ci);
        ck_assert_str_eq(ci, cookie0);
        mg_free(ci);
    }
    mg_free(cookie0);
    gc_check_restarted(&c, s, 1, 400);
    /* a directory left out, then a new one added: both refused, naming the directory */
    char fewer[1200];
    snprintf(fewer, sizeof fewer, "%s,%s", dirs[0], dirs[1]);
    c.h.o.ledger_dir = fewer;
    char *log;
    ck_assert_int_eq(ck_start(&c, &log), -MG_ENOTALLOWED);
    ck_assert_ptr_nonnull(strstr(log, dirs[0]));
    ck_assert_ptr_nonnull(strstr(log, "ledgerDirectories"));
    mg_free(log);
    char more[2200];
    snprintf(dirs[3], 400, "%s/l3", c.h.dir);
    snprintf(more, sizeof more, "%s,%s", list, dirs[3]);
    c.h.o.ledger_dir = more;
    ck_assert_int_eq(ck_start(&c, &log), -MG_ENOTALLOWED);
    ck_assert_ptr_nonnull(strstr(log, dirs[3]));
    mg_free(log);
    /* the same directory twice is a configuration error */
    char twice[1200];
    snprintf(twice, sizeof twice, "%s,%s", dirs[0], dirs[0]);
    c.h.o.ledger_dir = twice;
    ck_assert_int_eq(ck_start(&c, NULL), -MG_EINVAL);
    c.h.o.ledger_dir = list;
    ck_assert_int_eq(ck_start(&c, NULL), 0);
    ck_fini(&c);
}
END_TEST

/* The fake statvfs: each ledger directory (and the journal's) at the usage set here, or, with
 * ld_capacity set, the entry logs of the directory over that capacity. */
static struct {
    char dir[8][400];
    double pct[8];
    int n;
    double journal_pct;
    uint64_t capacity;
} ld_fake;

static int ld_statvfs(const char *path, struct statvfs *sv)
{
    memset(sv, 0, sizeof *sv);
    sv->f_frsize = sv->f_bsize = 4096;
    sv->f_blocks = 1000000;
    double pct = ld_fake.journal_pct;
    for (int i = 0; i < ld_fake.n; i++)
        if (strcmp(path, ld_fake.dir[i]) == 0) {
            pct = ld_fake.pct[i];
            if (ld_fake.capacity) {
                char cur[600];
                snprintf(cur, sizeof cur, "%s/current", path);
                uint64_t used = 0;
                DIR *d = opendir(cur);
                struct dirent *de;
                while (d && (de = readdir(d)) != NULL) {
                    size_t l = strlen(de->d_name);
                    char p[1200];
                    snprintf(p, sizeof p, "%s/%s", cur, de->d_name);
                    if (l > 4 && strcmp(de->d_name + l - 4, ".log") == 0)
                        used += (uint64_t)tl_file_size(p);
                }
                if (d)
                    closedir(d);
                pct = 100.0 * (double)used / (double)ld_fake.capacity;
            }
        }
    if (pct > 100)
        pct = 100;
    sv->f_bavail = sv->f_bfree = (fsblkcnt_t)((double)sv->f_blocks * (100.0 - pct) / 100.0);
    return 0;
}

/* Capture the log at INFO (transitions back are INFO lines) until ld_cap_expect. */
static void ld_cap_start(struct capture *cap)
{
    cap_start(cap);
    mg_log_set_level(MG_LOG_INFO);
}

/* End the capture: each text of want (up to a NULL one) occurs exactly as often as given. */
struct ld_count {
    const char *text;
    int n;
};
static void ld_cap_expect(struct capture *cap, const struct ld_count *want)
{
    mg_log_set_level(MG_LOG_WARN);
    char *log = cap_end(cap);
    for (; want->text; want++)
        ck_assert_msg(count_str(log, want->text) == want->n, "\"%s\" logged %d times, not %d",
                      want->text, count_str(log, want->text), want->n);
    mg_free(log);
}

static void ld_fake_init(int n, char (*dirs)[400])
{
    memset(&ld_fake, 0, sizeof ld_fake);
    ld_fake.n = n;
    for (int i = 0; i < n; i++) {
        snprintf(ld_fake.dir[i], sizeof ld_fake.dir[i], "%s", dirs[i]);
        ld_fake.pct[i] = 50;
    }
    ld_fake.journal_pct = 10;
}

/* A gc bookie with c's options on the fake statvfs (its one ledger directory at 50%, unless
 * ld_fake says otherwise), holding ledgers 1 and 2 mixed in every log (gc_add_mixed, n). */
static struct bk_server *ld_start_mixed(struct ck *c, int n)
{
    struct bk_server *s = gc_start(c);
    char dirs[1][400];
    snprintf(dirs[0], sizeof dirs[0], "%s", c->h.ldir);
    ld_fake_init(1, dirs);
    s->statvfs_fn = ld_statvfs;
    /* the start's disk check read the real disk, which may be above a test's warn threshold
     * (its transitions would then not be logged again): read the fake's now */
    bk_server_check_disk(s);
    gc_put_md(c, 1);
    gc_put_md(c, 2);
    gc_add_mixed(s, n);
    return s;
}

/* A full directory (above diskUsageThreshold) gets no new entry logs, the current one rolls
 * away from it, and the bookie stays writable; one that fails to take a log is skipped; only
 * when no directory is writable is the bookie read-only, and a directory below the low-water
 * mark makes it writable again. One log line per transition. */
START_TEST(test_ledger_dirs_full_skipped)
{
    struct ck c;
    char dirs[3][400], list[1300];
    ld_init(&c, 3, dirs, list, sizeof list);
    c.h.o.disk_usage_lwm_pct = 90;
    struct bk_server *s = gc_start(&c);
    ld_fake_init(3, dirs);
    s->statvfs_fn = ld_statvfs;
    struct capture cap;
    ld_cap_start(&cap);
    ld_fake.pct[0] = 97;
    bk_server_check_disk(s);
    bk_server_check_disk(s); /* still full: no second line */
    ck_assert(!bk_server_readonly(s));
    int before0 = ld_logs(dirs[0]);
    int before12 = ld_logs(dirs[1]) + ld_logs(dirs[2]);
    for (int e = 0; e < 300; e += 30) {
        gc_add(s, 1, e, e + 30);
        ck_assert_int_eq(bk_server_checkpoint(s), 0);
    }
    ck_assert_int_eq(ld_logs(dirs[0]), before0);
    ck_assert_int_ge(ld_logs(dirs[1]) + ld_logs(dirs[2]), before12 + 4);
    ck_assert_int_ne(s->store.log_dir, 0);
    /* a directory where a log cannot be created is marked failed and skipped */
    atomic_store(&s->store.inject_create_errno, EIO);
    gc_add(s, 1, 300, 400);
    ck_assert_int_eq(bk_server_checkpoint(s), 0);
    unsigned failed = atomic_load(&s->store.dir_failed);
    ck_assert(failed == 2 || failed == 4);
    ck_assert(!bk_server_readonly(s));
    /* the last writable directory fills up: read-only */
    int last = failed == 2 ? 2 : 1;
    ld_fake.pct[last] = 96;
    bk_server_check_disk(s);
    ck_assert(bk_server_readonly(s));
    bk_server_check_disk(s);
    /* between the low-water mark and the threshold: still read-only */
    ld_fake.pct[last] = 93;
    bk_server_check_disk(s);
    ck_assert(bk_server_readonly(s));
    ld_fake.pct[0] = 80;
    bk_server_check_disk(s);
    ck_assert(!bk_server_readonly(s));
    ld_cap_expect(&cap, (const struct ld_count[]){{"is full:", 2},
                                                  {"no new entry logs go there until restart", 1},
                                                  {"READ-ONLY", 1},
                                                  {"used, below diskUsageLwmThreshold", 1},
                                                  {"bookie is writable again", 1},
                                                  {NULL, 0}});
    /* a log that cannot be created for lack of space marks its directory full (not failed)
     * until the disk check finds it below the low-water mark */
    unsigned failed_before = atomic_load(&s->store.dir_failed);
    atomic_store(&s->store.inject_create_errno, ENOSPC);
    gc_add(s, 1, 400, 410);
    ck_assert_int_eq(bk_server_checkpoint(s), 0); /* rolls away from the full directory */
    unsigned full = atomic_load(&s->store.dir_full);
    ck_assert_msg(full & 1u, "directory 0 not marked full (%#x)", full);
    ck_assert_uint_eq(atomic_load(&s->store.dir_failed), failed_before);
    bk_server_check_disk(s);
    full = atomic_load(&s->store.dir_full);
    ck_assert_msg(!(full & 1u), "directory 0 still marked full (%#x)", full);
    ck_assert(!bk_server_readonly(s));
    gc_check_restarted(&c, s, 1, 410);
    ck_fini(&c);
}
END_TEST

/* An entry log whose write, fdatasync or write-behind (sync_file_range: the kernel reports a
 * writeback error once, so it is a failure of the log's data too) fails (I/O error) takes its
 * directory out: the checkpoint writes its entries again to a log in another directory and
 * succeeds, the bookie stays writable, every entry reads back (also after a restart). With
 * no directory left the bookie is read-only (I/O error) and the checkpoint fails. */
START_TEST(test_ledger_dir_io_error)
{
    struct ck c;
    char dirs[4][400], list[1700];
    ld_init(&c, 4, dirs, list, sizeof list);
    struct bk_server *s = gc_start(&c);
    gc_add(s, 1, 0, 30);
    ck_assert_int_eq(bk_server_checkpoint(s), 0);
    atomic_store(&s->store.inject_errno, EIO); /* the next entry-log write */
    gc_add(s, 1, 30, 60);
    ck_assert_int_eq(bk_server_checkpoint(s), 0);
    unsigned failed = atomic_load(&s->store.dir_failed);
    ck_assert_msg(__builtin_popcount(failed) == 1, "failed directories %#x", failed);
    ck_assert(!bk_server_readonly(s));
    atomic_store(&s->store.inject_sync_errno, EIO); /* the next fdatasync */
    gc_add(s, 1, 60, 90);
    ck_assert_int_eq(bk_server_checkpoint(s), 0);
    ck_assert_int_eq(__builtin_popcount(atomic_load(&s->store.dir_failed)), 2);
    ck_assert(!bk_server_readonly(s));
    ck_assert(!s->store.io_failed);
    gc_check(s, 1, 90);
    uint64_t chunks = atomic_load(&s->store.wb_chunks);
    atomic_store(&s->store.inject_wb_errno, EIO); /* the next write-behind */
    gc_add(s, 1, 90, 95);
    ck_assert_int_eq(bk_server_checkpoint(s), 0);
    ck_assert_int_eq(atomic_load(&s->store.inject_wb_errno), 0); /* it was reached */
    ck_assert_int_eq(__builtin_popcount(atomic_load(&s->store.dir_failed)), 3);
    ck_assert_uint_gt(atomic_load(&s->store.wb_chunks), chunks); /* the new log's */
    ck_assert(!bk_server_readonly(s));
    ck_assert(!s->store.io_failed);
    /* the last directory fails too: read-only, nothing more can be checkpointed */
    atomic_store(&s->store.inject_errno, EIO);
    gc_add(s, 1, 95, 100);
    ck_assert_int_lt(bk_server_checkpoint(s), 0);
    ck_assert(bk_server_readonly(s));
    ck_assert(s->store.io_failed);
    gc_check(s, 1, 100); /* still readable: the failed half stays in memory */
    bk_server_free_unclean(s);
    s = gc_start(&c);
    gc_check(s, 1, 95);
    bk_server_free(s);
    ck_fini(&c);
}
END_TEST

/* diskUsageWarnThreshold, diskUsageThreshold and diskUsageLwmThreshold on a disk that fills
 * with entry logs (the fake statvfs counts them against a capacity): a WARN line above the
 * warn threshold, read-only above the threshold; with isForceGCAllowWhenNoSpace the bookie
 * runs gc at once, whose compaction frees space, and it is writable again by itself below
 * the low-water mark. One line per transition; every live entry reads back. */
START_TEST(test_disk_thresholds_gc_frees)
{
    struct ck c;
    ck_init(&c);
    c.h.o.disk_usage_warn_pct = 80;
    c.h.o.disk_usage_threshold_pct = 90;
    c.h.o.disk_usage_lwm_pct = 70;
    c.h.o.force_gc_when_no_space = true;
    c.h.o.major_compaction_threshold = 0.8;
    struct bk_server *s = ld_start_mixed(&c, 200);
    uint64_t used = gc_log_bytes(&c);
    ld_fake.capacity = used * 100 / 85; /* 85%: between the warn threshold and the threshold */
    struct capture cap;
    ld_cap_start(&cap);
    bk_server_check_disk(s);
    ck_assert(!bk_server_readonly(s));
    bk_server_check_disk(s);
    ld_fake.capacity = used * 100 / 95; /* 95%: full */
    gc_del_md(&c, 2);
    bk_server_check_disk(s);
    ck_assert(bk_server_readonly(s));
    /* read-only for space, isForceGCAllowWhenNoSpace: gc started by itself */
    ck_assert(!bk_gc_idle(s->gc));
    for (int i = 0; i < 60000 && (bk_server_readonly(s) || !bk_gc_idle(s->gc)); i++) {
        event_base_loop(c.base, EVLOOP_NONBLOCK);
        usleep(1000);
    }
    ck_assert(bk_gc_idle(s->gc));
    ck_assert(!bk_server_readonly(s));
    ck_assert_uint_lt(gc_log_bytes(&c), used * 70 / 95);
    ld_cap_expect(&cap, (const struct ld_count[]){{"above diskUsageWarnThreshold", 1},
                                                  {"below diskUsageWarnThreshold", 1},
                                                  {"READ-ONLY", 1},
                                                  {"bookie is writable again", 1},
                                                  {NULL, 0}});
    gc_check(s, 1, 200);
    ck_assert_int_eq(gc_read_rc(s, 2, 0), WIRE_BK_ENOLEDGER);
    bk_server_free(s);
    ck_fini(&c);
}
END_TEST

/* Above diskUsageWarnThreshold (BookKeeper's "almost full") a scheduled gc run deletes
 * ledgers but does not run major compaction; below it again, it does. */
START_TEST(test_gc_major_suspended_almost_full)
{
    struct ck c;
    ck_init(&c);
    c.h.o.major_compaction_interval_s = 0; /* due at every run */
    c.h.o.minor_compaction_threshold = 0;
    struct bk_server *s = ld_start_mixed(&c, 100);
    gc_del_md(&c, 2);
    ld_fake.pct[0] = 92; /* above 0.90, below 0.95 */
    bk_server_check_disk(s);
    ck_assert(!bk_server_readonly(s));
    struct bk_gc_stats gs;
    gc_run_wait(&c, s, false, &gs);
    ck_assert_uint_eq(gs.ledgers_deleted, 1);
    ck_assert_uint_eq(gs.logs_compacted, 0);
    ld_fake.pct[0] = 60;
    bk_server_check_disk(s);
    gc_run_wait(&c, s, false, &gs);
    ck_assert_uint_gt(gs.logs_compacted, 0);
    gc_check_restarted(&c, s, 1, 100);
    ck_fini(&c);
}
END_TEST

/* ---- storage faults during gc and compaction ---------------------------------------------- */

/* Live bytes the log metadata gives ledger, summed over every log. */
static uint64_t ft_live_of(struct bk_server *s, int64_t ledger)
{
    uint64_t sum = 0;
    size_t pos = 0;
    void *val;
    while (mg_map_next(&s->store.log_meta, &pos, NULL, NULL, &val)) {
        struct bk_log_meta *m = val;
        uint64_t *b = mg_map_get_u64(&m->ledgers, (uint64_t)ledger);
        sum += b ? *b : 0;
    }
    return sum;
}

static void ft_dropped(struct bk_server *s, struct bk_sop *op)
{
    (void)s;
    ck_assert_int_eq(op->rc, 0);
    mg_free(op);
}

/* A bookie on a new memory store (c) compacting half-live logs (ledger 2 deleted, ledger 1's
 * 200 entries live) over several slices, its next slice held on the storage thread. */
static struct bk_server *ft_compaction_held(struct ck *c)
{
    ck_init(c);
    struct bk_server *s = gc_start(c);
    gc_put_md(c, 1);
    gc_put_md(c, 2);
    gc_add_mixed(s, 200);
    gc_del_md(c, 2);
    bk_server_free(s);
    c->h.o.compaction_rate_by_entries = 100; /* 10 entries a slice */
    s = NULL;
    ck_assert_int_eq(bk_server_new(c->base, &c->h.o, &s), 0);
    ck_assert_int_eq(bk_gc_run(s->gc, true), 0);
    struct bk_gc_stats gs = {0};
    for (int i = 0; i < 10000 && gs.entries_compacted == 0; i++) {
        event_base_loop(c->base, EVLOOP_NONBLOCK);
        usleep(1000);
        bk_gc_stats(s->gc, &gs);
    }
    ck_assert_uint_gt(gs.entries_compacted, 0);
    bk_store_gate(&s->store, BK_GATE_GC);
    for (int i = 0; i < 10000 && !bk_store_gate_parked(&s->store); i++) {
        event_base_loop(c->base, EVLOOP_NONBLOCK);
        usleep(1000);
    }
    ck_assert(bk_store_gate_parked(&s->store));
    ck_assert(!bk_gc_idle(s->gc));
    return s;
}

/* The ledger a compaction is copying is deleted meanwhile (its drop queued behind a slice
 * that copies it): it is gone from the index and stays gone after a restart, no log's
 * metadata keeps live bytes for it (else its copies would pin their log), and another
 * ledger's entries are untouched. */
START_TEST(test_compaction_ledger_deleted)
{
    struct ck c;
    struct bk_server *s = ft_compaction_held(&c);
    gc_put_md(&c, 3);
    gc_add(s, 3, 0, 30);
    gc_del_md(&c, 1);
    bk_store_drop_ledger(&s->store, 1, ft_dropped, NULL); /* as gc's scan does */
    ck_assert_uint_eq(ft_live_of(s, 1), 0);
    bk_store_gate(&s->store, BK_GATE_NONE);
    gc_wait_idle(&c, s);
    ck_assert_int_eq(gc_read_rc(s, 1, 0), WIRE_BK_ENOLEDGER);
    ck_assert_uint_eq(ft_live_of(s, 1), 0);
    ck_assert_uint_eq(ft_live_of(s, 2), 0);
    gc_check(s, 3, 30);
    /* the logs hold nothing live but ledger 3's entries: a gc run deletes the others */
    ck_assert_int_eq(bk_server_checkpoint(s), 0);
    ck_assert_int_eq(bk_gc_run(s->gc, true), 0);
    gc_wait_idle(&c, s);
    ck_assert_int_le(gc_log_count(&c), 3);
    bk_server_free(s);
    c.h.o.compaction_rate_by_entries = 100000;
    s = gc_start(&c);
    ck_assert_int_eq(gc_read_rc(s, 1, 0), WIRE_BK_ENOLEDGER);
    ck_assert_uint_eq(ft_live_of(s, 1), 0);
    gc_check(s, 3, 30);
    bk_server_free(s);
    ck_fini(&c);
}
END_TEST

/* The disk fills up during a compaction (its copies cannot be written): the compaction stops
 * with the old log kept, nothing is lost (before and after a restart), and once there is room
 * again a later compaction finishes the job. */
START_TEST(test_compaction_disk_full)
{
    struct ck c;
    struct bk_server *s = ft_compaction_held(&c);
    int logs = gc_log_count(&c);
    uint64_t before = gc_log_bytes(&c);
    struct bk_gc_stats gs0, gs;
    bk_gc_stats(s->gc, &gs0);
    atomic_store(&s->store.inject_errno, ENOSPC);
    bk_store_gate(&s->store, BK_GATE_NONE);
    gc_wait_idle(&c, s);
    bk_gc_stats(s->gc, &gs);
    /* the run stopped at the fault: the log being compacted is kept */
    ck_assert_uint_eq(gs.logs_compacted, gs0.logs_compacted);
    ck_assert_int_ge(gc_log_count(&c), logs);
    gc_check(s, 1, 200);
    ck_assert_int_eq(gc_read_rc(s, 2, 0), WIRE_BK_ENOLEDGER);
    /* room again: the records kept in memory are written, a compaction completes */
    ck_assert_int_eq(bk_server_checkpoint(s), 0);
    bk_server_check_disk(s);
    ck_assert(!bk_server_readonly(s));
    ck_assert_int_eq(bk_gc_run(s->gc, true), 0);
    gc_wait_idle(&c, s);
    gc_check(s, 1, 200);
    gc_crash_and_finish(&c, s, before);
}
END_TEST

/* The metadata store is unreachable during gc (a ZooKeeper address nobody listens on, short
 * timeouts): the run gives up with a WARN line and deletes nothing: every ledger, the ones
 * missing from the real store included, reads back, and the entry logs stay. */
START_TEST(test_gc_store_unreachable)
{
    struct ck c;
    struct bk_server *s = gc_start_one(&c, 100);
    gc_add(s, 2, 0, 100); /* not in any store */
    ck_assert_int_eq(bk_server_checkpoint(s), 0);
    int logs = gc_log_count(&c);
    /* a port nothing listens on */
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    socklen_t al = sizeof a;
    ck_assert_int_eq(bind(fd, (struct sockaddr *)&a, sizeof a), 0);
    ck_assert_int_eq(getsockname(fd, (struct sockaddr *)&a, &al), 0);
    close(fd);
    char url[64];
    snprintf(url, sizeof url, "zk:127.0.0.1:%d", ntohs(a.sin_port));
    struct meta_options mo = {.url = url, .session_timeout_ms = 2000, .op_timeout_ms = 300};
    struct meta_store *dead = NULL;
    ck_assert_int_eq(meta_open(c.loop, &mo, &dead), 0);
    struct bk_gc_conf gcc = {.rate_entries = 100000, .rate_bytes = 1000000};
    bk_gc_free(s->gc);
    s->gc = bk_gc_new(s, dead, &gcc);
    for (int run = 0; run < 2; run++) {
        ck_assert_int_eq(bk_gc_run(s->gc, true), 0);
        gc_wait_idle(&c, s);
    }
    struct bk_gc_stats gs;
    bk_gc_stats(s->gc, &gs);
    ck_assert_uint_eq(gs.scans, 0);
    ck_assert_uint_ge(gs.scan_failures, 2);
    ck_assert_uint_eq(gs.ledgers_deleted, 0);
    ck_assert_uint_eq(gs.logs_deleted, 0);
    ck_assert_int_eq(gc_log_count(&c), logs);
    gc_check(s, 1, 100);
    gc_check(s, 2, 100);
    bk_server_free(s);
    meta_close(dead);
    ck_fini(&c);
}
END_TEST

/* ---- checkpoint I/O: entry-log write-behind, lastMark slots ------------------------------ */

/* Send n adds of payload bytes to ledger from entry first, in batches, and wait for each. */
static void add_range(int fd, int64_t ledger, int first, int n, size_t payload)
{
    for (int b = 0; b < n; b += 50) {
        int end = b + 50 < n ? b + 50 : n;
        for (int e = first + b; e < first + end; e++)
            v2_add_send(fd, ledger, e, KEY_A, 0, payload);
        for (int e = first + b; e < first + end; e++)
            ck_assert_int_eq(v2_add_recv(fd, ledger, e), 0);
    }
}

/* flushEntrylogBytes: a checkpoint whose half spans several write-behind chunks starts the
 * writeback of each chunk as it writes it, writes every byte of the half (each entry's
 * record: its length and body) and has fdatasynced all of the log before the index commit
 * (and so before lastMark moves); after a crash right after it nothing is replayed and every
 * entry reads back from the entry log. */
START_TEST(test_entry_log_write_behind)
{
    static const size_t sizes[] = {700, 3100, 9000, 1};
    enum { PER = 250 };
    struct harness h;
    h_init_dirs(&h, NULL);
    h.o.flush_entrylog_bytes = 200 * 1000; /* smaller than the 1 MiB writes: one per write */
    h_start(&h);
    int fd = cl_connect(h.port);
    uint64_t records = 0;
    for (size_t k = 0; k < sizeof sizes / sizeof sizes[0]; k++) {
        add_range(fd, 45, (int)k * PER, PER, sizes[k]);
        for (int e = (int)k * PER; e < (int)(k + 1) * PER; e++) {
            size_t elen;
            mg_free(make_entry(45, e, e - 1, sizes[k], &elen));
            records += 4 + elen;
        }
    }
    struct bk_store *store = &h.srv->store;
    uint64_t chunks = atomic_load(&store->wb_chunks);
    uint64_t start = store->log_flushed; /* the storage thread is idle: no checkpoint yet */
    ck_assert_uint_eq(store->log_synced, 0);
    bk_store_gate(store, BK_GATE_BEFORE_INDEX);
    run_on_loop(&h, 3);
    wait_parked(&h);
    /* parked after the entry-log sync, before the index commit */
    ck_assert_uint_eq(store->log_buf_len, 0);
    ck_assert_uint_eq(store->log_flushed - start, records);
    ck_assert_uint_eq(store->log_synced, store->log_flushed);
    ck_assert_uint_ge(atomic_load(&store->wb_chunks) - chunks, records / (1 << 20));
    ck_assert_uint_ge(atomic_load(&store->wb_chunks) - chunks, 2);
    char path[400];
    snprintf(path, sizeof path, "%s/current/%x.log", h.ldir, store->log_id);
    struct stat sb;
    ck_assert_int_eq(stat(path, &sb), 0);
    ck_assert_uint_eq((uint64_t)sb.st_size, store->log_flushed);
    struct bk_stats st;
    run_on_loop_state(&h, 2, &st, NULL);
    bk_store_gate(store, BK_GATE_NONE);
    wait_checkpoints(&h, st.checkpoints);
    close(fd);
    h_stop(&h, false); /* a crash right after the checkpoint */

    h_start(&h);
    bk_server_stats(h.srv, &st);
    ck_assert_uint_eq(st.replayed, 0);
    fd = cl_connect(h.port);
    for (size_t k = 0; k < sizeof sizes / sizeof sizes[0]; k++)
        check_entries(fd, 45, (int)k * PER, (int)(k + 1) * PER, sizes[k]);
    close(fd);
    h_stop(&h, true);
    tl_rm_rf(h.dir);
}
END_TEST

/* A store that only names the directory of lastMark (for bk_store_read_mark). */
static void mark_store(struct bk_store *st, struct harness *h, char *dir, size_t n)
{
    memset(st, 0, sizeof *st);
    snprintf(dir, n, "%s/current", h->ldir);
    st->dir = dir;
}

/* The sequence, file and offset of lastMark's slot i (the raw file b), false if invalid. */
static bool mark_slot(const uint8_t *b, size_t n, unsigned i, uint64_t *seq, uint64_t *file,
                      uint64_t *off)
{
    const uint8_t *p = b + BK_MARK_SLOT_OFF(i);
    if (BK_MARK_SLOT_OFF(i) + BK_MARK_SLOT_SIZE > n || memcmp(p, "BKLM", 4) != 0 ||
        mg_get_be32(p + BK_MARK_SLOT_SIZE - 4) != mg_crc32c(0, p, BK_MARK_SLOT_SIZE - 4))
        return false;
    *seq = mg_get_be64(p + 8);
    *file = mg_get_be64(p + 16);
    *off = mg_get_be64(p + 24);
    return true;
}

static void write_file(const char *path, const uint8_t *b, size_t n)
{
    FILE *f = fopen(path, "wb");
    ck_assert_ptr_nonnull(f);
    ck_assert_uint_eq(fwrite(b, 1, n, f), n);
    ck_assert_int_eq(fclose(f), 0);
}

/* lastMark is two checksummed slots overwritten in turn: after checkpoints both hold the last
 * two marks; a crash that tore the newest slot leaves the one before, which replay starts
 * from (nothing lost, the records after it replayed); with both slots damaged the mark is an
 * error, never a guess; the old 16-byte file is read and replaced by the new form. */
START_TEST(test_last_mark_slots)
{
    enum { K = 20 };
    struct harness h;
    h_init_dirs(&h, NULL);
    h_start(&h);
    int fd = cl_connect(h.port);
    struct bk_store ms;
    char mdir[400], mpath[420];
    mark_store(&ms, &h, mdir, sizeof mdir);
    snprintf(mpath, sizeof mpath, "%s/lastMark", mdir);
    uint64_t mf[3], mo[3];
    for (int c = 0; c < 3; c++) {
        add_range(fd, 46, c * K, K, 300 + 500 * c);
        ck_assert_int_eq(run_on_loop(&h, 0), 0);
        ck_assert_int_eq(bk_store_read_mark(&ms, &mf[c], &mo[c]), 0);
        if (c > 0)
            ck_assert(mf[c] > mf[c - 1] || (mf[c] == mf[c - 1] && mo[c] > mo[c - 1]));
    }
    add_range(fd, 46, 3 * K, K, 100); /* acknowledged, not checkpointed */
    close(fd);
    h_stop(&h, false);

    size_t n;
    uint8_t *b = (uint8_t *)tl_read_file(mpath, &n);
    ck_assert_ptr_nonnull(b);
    ck_assert_uint_eq(n, BK_MARK_FILE_SIZE);
    uint64_t seq[2], f[2], o[2];
    ck_assert(mark_slot(b, n, 0, &seq[0], &f[0], &o[0]));
    ck_assert(mark_slot(b, n, 1, &seq[1], &f[1], &o[1]));
    unsigned newest = seq[1] > seq[0];
    ck_assert_uint_eq(seq[newest], seq[!newest] + 1);
    ck_assert_uint_eq(f[newest], mf[2]);
    ck_assert_uint_eq(o[newest], mo[2]);
    ck_assert_uint_eq(f[!newest], mf[1]);
    ck_assert_uint_eq(o[!newest], mo[1]);
    /* a torn write of the newest slot: its second half never reached the disk */
    memset(b + BK_MARK_SLOT_OFF(newest) + BK_MARK_SLOT_SIZE / 2, 0, BK_MARK_SLOT_SIZE / 2);
    write_file(mpath, b, n);
    uint64_t rf, ro;
    ck_assert_int_eq(bk_store_read_mark(&ms, &rf, &ro), 0);
    ck_assert_uint_eq(rf, mf[1]);
    ck_assert_uint_eq(ro, mo[1]);
    h_start(&h); /* replays from the mark before: the last two ranges */
    struct bk_stats st;
    bk_server_stats(h.srv, &st);
    ck_assert_uint_eq(st.replayed, 2 * K);
    fd = cl_connect(h.port);
    for (int c = 0; c < 3; c++)
        check_entries(fd, 46, c * K, (c + 1) * K, 300 + 500 * c);
    check_entries(fd, 46, 3 * K, 4 * K, 100);
    close(fd);
    h_stop(&h, true);

    /* both slots damaged (one flipped bit each): an error, not a mark */
    mg_free(b);
    b = (uint8_t *)tl_read_file(mpath, &n);
    ck_assert_int_eq(bk_store_read_mark(&ms, &rf, &ro), 0);
    b[BK_MARK_SLOT_OFF(0) + 17] ^= 0x10;
    b[BK_MARK_SLOT_OFF(1) + 25] ^= 0x01;
    write_file(mpath, b, n);
    uint64_t xf, xo;
    ck_assert_int_eq(bk_store_read_mark(&ms, &xf, &xo), -MG_EIO);

    /* the old form: 16 bytes, read as it is, replaced by the new form at the next write */
    uint8_t old[16];
    mg_put_be64(old, rf);
    mg_put_be64(old + 8, ro);
    write_file(mpath, old, sizeof old);
    ck_assert_int_eq(bk_store_read_mark(&ms, &xf, &xo), 0);
    ck_assert_uint_eq(xf, rf);
    ck_assert_uint_eq(xo, ro);
    h_start(&h);
    bk_server_stats(h.srv, &st);
    ck_assert_uint_eq(st.replayed, 0);
    struct stat sb;
    ck_assert_int_eq(stat(mpath, &sb), 0); /* the start's checkpoint rewrote it */
    ck_assert_uint_eq((uint64_t)sb.st_size, BK_MARK_FILE_SIZE);
    fd = cl_connect(h.port);
    check_entries(fd, 46, 3 * K, 4 * K, 100);
    close(fd);
    h_stop(&h, true);
    mg_free(b);
    tl_rm_rf(h.dir);
}
END_TEST

static Suite *bookie_suite(void)
{
    Suite *s = suite_create("bookie");
    TCase *wc = tl_tcase(s, "write_cache", 120, NULL, NULL);
    tl_add(wc, test_write_cache_backpressure, test_checkpoint_mid_group);
    TCase *ckio = tl_tcase(s, "checkpoint_io", 120, NULL, NULL);
    tl_add(ckio, test_entry_log_write_behind, test_last_mark_slots);
    TCase *tc = tl_tcase(s, "core", 120, NULL, NULL);
    tl_add(tc, test_v2_add_read, test_v3_ops, test_fencing, test_group_commit, test_fsync_per_add,
           test_new_bookie_no_start_checkpoint, test_read_during_flush, test_crash_mid_flush,
           test_journal_backups, test_garbage_frame, test_max_message_frame, test_oversized_frame,
           test_readonly_injected, test_readonly_tmpfs, test_nospace_journal,
           test_nospace_entry_log, test_prealloc_threshold, test_prealloc_after_room_returns,
           test_restart_trims_journal, test_dir_lock, test_options_from_cfg, test_cookie_format,
           test_cookie_new_and_restart, test_cookie_new_cluster_one_sync, test_cookie_refusals,
           test_cookie_adopt_and_resume, test_cookie_twin_refused, test_cookie_format_cmd,
           test_gc_deleted_ledger, test_metrics, test_gc_empty_logs_of_restarts,
           test_gc_ledger_created_during_scan, test_gc_listing_failure, test_compaction_half_live,
           test_gc_off_loop, test_compaction_crash, test_ledger_dirs_round_robin,
           test_ledger_dirs_full_skipped, test_disk_thresholds_gc_frees,
           test_compaction_ledger_deleted, test_compaction_disk_full, test_gc_store_unreachable,
           test_ledger_dir_io_error, test_gc_major_suspended_almost_full);
    /* the journal format, replay and damage (CK_RUN_CASE=journal) */
    TCase *jc = tl_tcase(s, "journal", 120, NULL, NULL);
    tl_add(jc, test_journal_torn_tail, test_journal_corrupt_middle, test_journal_v6,
           test_journal_zero_fill_ahead, test_journal_reuse_files, test_journal_reuse_torn_group,
           test_journal_v7, test_replay_unclean);
    return s;
}

int main(void)
{
    evthread_use_pthreads();
    mg_log_set_level(MG_LOG_WARN);
    return tl_run(bookie_suite());
}
