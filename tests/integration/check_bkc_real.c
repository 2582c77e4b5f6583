/*
 * check_bkc_real.c - the bkc client over its TCP transport (bkc_conn.c): real bookies and
 * in-test servers on 127.0.0.1 (the ledger logic itself is tested over the in-memory fake
 * transport by check_bkc.c, without sockets or sleeps).
 *
 * TCP fake bookies: tiny in-test v2 servers (struct fbk) on 127.0.0.1:0, registered under
 * /ledgers/available in a "memory" meta store. They store entry bodies verbatim, implement
 * fencing and READ(-1), and can be told to hold responses or stop reading.
 *
 * Covers: a response over the frame limit failing only its request; a bookie that stops
 * reading (timeout, failover to the next replica); real in-process bookies (and `magnetar
 * bookie` processes when available), each run with v2 and v3: round trip, ensemble change
 * after a bookie stop, recovery and fencing; entries of awkward sizes, readLastConfirmed,
 * recovery of a dead writer and of an empty ledger; the frame limit on adds; v3 frames on the
 * wire (decoded with protobuf-c) and out-of-order txnId matching with StatusCode mapping,
 * against a recording listener; TLS (START_TLS) to bookies requiring it, v2 and v3, and each
 * way it is refused. Waits are bounded in time (real sockets need real time).
 * The in-process transport (bookie/bk_local.c, a standalone's broker to its own bookies):
 * round trip without a connection, acks only after the journal's sync (journal held),
 * fencing and recovery through it, a read-only bookie, a freed client or bookie with
 * requests pending, a mix with a TCP bookie, adds waiting for a full write cache while the loop
 * goes on.
 * Failure modes: each test asserts with Check; run with CK_FORK=no under ASan.
 */
#include "bkc/bkc.h"
#include "bkc/bkc_int.h"
#include "bookie/bookie.h"
#include "bookie/bookie_int.h"
#include "lib/tl_bk.h"
#include "meta/meta.h"
#include "util/alloc.h"
#include "util/bytes.h"
#include "util/err.h"
#include "util/loop.h"

#include "BookkeeperProtocol.pb-c.h"

#include <arpa/inet.h>
#include <check.h>
#include <event2/buffer.h>
#include <event2/bufferevent.h>
#include <event2/event.h>
#include <event2/listener.h>
#include <limits.h>
#include <netinet/in.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

static struct event_base *base;
static struct mg_loop *loop;
static struct meta_store *meta;
static char *dir;        /* the real bookies' files */
static bool use_v3;      /* clients made by client_new speak v3 (real-bookie tests only) */
static struct tl_adds b; /* the test's batch of adds: env_open empties it, env_close frees it */

/* A real loop with a "memory" metadata store on it, and a directory for bookies' files
 * when with_dir. */
static void env_open(bool with_dir)
{
    base = event_base_new();
    loop = mg_loop_new(base);
    struct meta_options mo = {.url = "memory"};
    ck_assert_int_eq(meta_open(loop, &mo, &meta), 0);
    dir = with_dir ? tl_tmpdir("check_bkc") : NULL;
    memset(&b, 0, sizeof b);
}

/* Close what env_open opened (the test freed its clients and bookies). */
static void env_close(void)
{
    tl_adds_fini(&b);
    meta_close(meta);
    meta = NULL;
    tl_passes(base, 5);
    mg_loop_free(loop);
    loop = NULL;
    event_base_free(base);
    base = NULL;
    tl_tmpdir_free(&dir);
    use_v3 = false;
}

/* A listener on 127.0.0.1 (port 0) on base; its port in *port. */
static struct evconnlistener *listen_any(evconnlistener_cb cb, void *arg, int *port)
{
    struct sockaddr_in sin = {.sin_family = AF_INET};
    sin.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    struct evconnlistener *l =
        evconnlistener_new_bind(base, cb, arg, LEV_OPT_CLOSE_ON_FREE | LEV_OPT_REUSEABLE, 16,
                                (struct sockaddr *)&sin, sizeof(sin));
    ck_assert_ptr_nonnull(l);
    struct sockaddr_in got;
    socklen_t gl = sizeof(got);
    ck_assert_int_eq(getsockname(evconnlistener_get_fd(l), (struct sockaddr *)&got, &gl), 0);
    *port = ntohs(got.sin_port);
    return l;
}

/* ---- a TCP fake bookie ------------------------------------------------------------------ */

#define FB_MAX_CONNS 16
#define FB_MAX_ENTRIES 4096

struct fb_entry {
    int64_t ledger, entry;
    struct evbuffer *body;
};

struct fbk {
    struct evconnlistener *lis;
    int port;
    char id[64];
    struct bufferevent *conns[FB_MAX_CONNS];
    struct fb_entry ents[FB_MAX_ENTRIES];
    int n_ents;
    int64_t fenced[64];
    int n_fenced;
    int n_adds, n_reads, n_fence_reads;
};

static bool fb_is_fenced(struct fbk *f, int64_t l)
{
    for (int i = 0; i < f->n_fenced; i++)
        if (f->fenced[i] == l)
            return true;
    return false;
}

static struct fb_entry *fb_find(struct fbk *f, int64_t l, int64_t e)
{
    struct fb_entry *best = NULL;
    for (int i = 0; i < f->n_ents; i++) {
        struct fb_entry *x = &f->ents[i];
        if (x->ledger != l)
            continue;
        if (e >= 0 ? x->entry == e : (!best || x->entry > best->entry))
            best = x;
    }
    return best;
}

static void fb_respond(struct fbk *f, struct bufferevent *bev, int op, int rc, int64_t l, int64_t e,
                       struct evbuffer *body)
{
    uint8_t h[28];
    size_t bl = body ? evbuffer_get_length(body) : 0;
    mg_put_be32(h, (uint32_t)(24 + bl));
    mg_put_be32(h + 4, (2u << 24) | ((uint32_t)op << 16));
    mg_put_be32(h + 8, (uint32_t)rc);
    mg_put_be64(h + 12, (uint64_t)l);
    mg_put_be64(h + 20, (uint64_t)e);
    struct evbuffer *r = evbuffer_new();
    evbuffer_add(r, h, sizeof(h));
    if (body) {
        /* a copy, so the stored body stays intact */
        size_t n = evbuffer_get_length(body);
        uint8_t *tmp = malloc(n ? n : 1);
        evbuffer_copyout(body, tmp, n);
        evbuffer_add(r, tmp, n);
        free(tmp);
    }
    bufferevent_write_buffer(bev, r);
    evbuffer_free(r);
}

static void fb_read_cb(struct bufferevent *bev, void *arg)
{
    struct fbk *f = arg;
    struct evbuffer *in = bufferevent_get_input(bev);
    for (;;) {
        uint8_t lb[4];
        if (evbuffer_copyout(in, lb, 4) < 4)
            return;
        uint32_t len = mg_get_be32(lb);
        if (evbuffer_get_length(in) < 4 + (size_t)len)
            return;
        evbuffer_drain(in, 4);
        uint8_t h[4];
        evbuffer_remove(in, h, 4);
        uint32_t hdr = mg_get_be32(h);
        int op = (int)((hdr >> 16) & 0xff);
        int flags = (int)(hdr & 0xffff);
        if (op == 1) {
            uint8_t mk[20], eh[16];
            evbuffer_remove(in, mk, 20);
            struct evbuffer *body = evbuffer_new();
            evbuffer_remove_buffer(in, body, len - 24);
            evbuffer_copyout(body, eh, 16);
            int64_t l = (int64_t)mg_get_be64(eh), e = (int64_t)mg_get_be64(eh + 8);
            f->n_adds++;
            int rc = 0;
            if (fb_is_fenced(f, l) && !(flags & 2))
                rc = 104;
            if (rc == 0) {
                struct fb_entry *x = fb_find(f, l, e);
                if (x) {
                    evbuffer_free(x->body);
                } else {
                    ck_assert_int_lt(f->n_ents, FB_MAX_ENTRIES);
                    x = &f->ents[f->n_ents++];
                    x->ledger = l;
                    x->entry = e;
                }
                x->body = body;
            } else {
                evbuffer_free(body);
            }
            fb_respond(f, bev, 1, rc, l, e, NULL);
        } else if (op == 2) {
            uint8_t ids[16];
            evbuffer_remove(in, ids, 16);
            int64_t l = (int64_t)mg_get_be64(ids), e = (int64_t)mg_get_be64(ids + 8);
            if (flags & 1) {
                uint8_t mk[20];
                evbuffer_remove(in, mk, 20);
                if (!fb_is_fenced(f, l))
                    f->fenced[f->n_fenced++] = l;
                f->n_fence_reads++;
            }
            f->n_reads++;
            struct fb_entry *x = fb_find(f, l, e);
            bool known = false;
            for (int i = 0; i < f->n_ents; i++)
                known |= f->ents[i].ledger == l;
            if (x)
                fb_respond(f, bev, 2, 0, l, e, x->body);
            else
                fb_respond(f, bev, 2, known || (flags & 1) ? 2 : 1, l, e, NULL);
        } else {
            evbuffer_drain(in, len - 4);
        }
    }
}

static void fb_conn_close(struct fbk *f, struct bufferevent *bev)
{
    for (int j = 0; j < FB_MAX_CONNS; j++)
        if (f->conns[j] == bev)
            f->conns[j] = NULL;
    bufferevent_free(bev);
}

static void fb_event_cb(struct bufferevent *bev, short what, void *arg)
{
    if (what & (BEV_EVENT_EOF | BEV_EVENT_ERROR))
        fb_conn_close(arg, bev);
}

static void fb_accept(struct evconnlistener *l, evutil_socket_t fd, struct sockaddr *sa, int salen,
                      void *arg)
{
    (void)l;
    (void)sa;
    (void)salen;
    struct fbk *f = arg;
    struct bufferevent *bev = bufferevent_socket_new(base, fd, BEV_OPT_CLOSE_ON_FREE);
    bufferevent_setcb(bev, fb_read_cb, NULL, fb_event_cb, f);
    bufferevent_enable(bev, EV_READ | EV_WRITE);
    for (int j = 0; j < FB_MAX_CONNS; j++) {
        if (!f->conns[j]) {
            f->conns[j] = bev;
            return;
        }
    }
    bufferevent_free(bev);
}

static void fbk_register(struct fbk *f)
{
    char p[128];
    snprintf(p, sizeof(p), "/ledgers/available/%s", f->id);
    ck_assert_int_eq(tl_meta_put(meta, p, "", 0, META_EPHEMERAL), 0);
}

static struct fbk *fbk_new(bool reg)
{
    struct fbk *f = calloc(1, sizeof(*f));
    f->lis = listen_any(fb_accept, f, &f->port);
    snprintf(f->id, sizeof(f->id), "127.0.0.1:%d", f->port);
    if (reg)
        fbk_register(f);
    return f;
}

/* Close the listener and every connection; unregister if asked. */
static void fbk_kill(struct fbk *f, bool unreg)
{
    if (f->lis)
        evconnlistener_free(f->lis);
    f->lis = NULL;
    for (int j = 0; j < FB_MAX_CONNS; j++)
        if (f->conns[j])
            fb_conn_close(f, f->conns[j]);
    if (unreg) {
        char p[128];
        snprintf(p, sizeof(p), "/ledgers/available/%s", f->id);
        tl_meta_del(meta, p);
    }
}

static void fbk_free(struct fbk *f)
{
    if (!f)
        return;
    fbk_kill(f, false);
    for (int i = 0; i < f->n_ents; i++)
        evbuffer_free(f->ents[i].body);
    free(f);
}

static struct fbk *fb_by_id(struct fbk **fbs, int n, const char *id)
{
    for (int i = 0; i < n; i++)
        if (fbs[i] && !strcmp(fbs[i]->id, id))
            return fbs[i];
    return NULL;
}

/* ---- fixture -------------------------------------------------------------------------- */

#define NFB 6
static struct fbk *fb[NFB];
static struct bkc_client *cl;

/* A client of cfg, speaking v3 when use_v3. */
static struct bkc_client *client_of(struct bkc_config *cfg)
{
    cfg->use_v3 = use_v3;
    struct bkc_client *c = NULL;
    ck_assert_int_eq(bkc_client_new(loop, meta, cfg, &c), 0);
    return c;
}

static struct bkc_client *client_new(int e, int w, int a, int timeout_ms)
{
    struct bkc_config cfg;
    tl_bkc_config(&cfg, e, w, a, timeout_ms);
    return client_of(&cfg);
}

/* TCP fake bookies (they speak v2 only) and a client of them. */
static void fx_setup(int n_bookies, int e, int w, int a, int timeout_ms)
{
    env_open(false);
    for (int i = 0; i < NFB; i++)
        fb[i] = i < n_bookies ? fbk_new(true) : NULL;
    cl = client_new(e, w, a, timeout_ms);
}

static void fx_teardown(void)
{
    bkc_client_free(cl);
    cl = NULL;
    tl_passes(base, 5);
    for (int i = 0; i < NFB; i++) {
        fbk_free(fb[i]);
        fb[i] = NULL;
    }
    env_close();
}

/* ---- tests: real bookies ------------------------------------------------------------------- */

/* An in-process bookie on the test's loop, registered in meta, its files under dir/b<i>. */
static struct bk_server *real_bookie(int i)
{
    struct bk_options o;
    bk_options_default(&o);
    o.meta = meta;
    o.disk_usage_threshold_pct = 100;
    return tl_bookie_start(base, dir, i, &o);
}

#define NBS 4
static struct bk_server *bs[NBS]; /* the in-process bookies (NULL: none, or stopped) */

/* n in-process bookies, registered, and a client of them (E=3 Qw=2 Qa=2, use_v3). */
static void bookies_start(int n)
{
    env_open(true);
    for (int i = 0; i < n; i++)
        bs[i] = real_bookie(i);
    tl_wait_bookies(meta, n);
    cl = client_new(3, 2, 2, 5000);
}

static struct bk_local *loc; /* the in-process transport's registry, or NULL */

/* Free the client (and the in-process transport), stop the bookies, close what env_open
 * opened. */
static void bookies_stop(void)
{
    bkc_client_free(cl);
    cl = NULL;
    bk_local_free(loc);
    loc = NULL;
    for (int i = 0; i < NBS; i++) {
        tl_bookie_stop(bs[i], base);
        bs[i] = NULL;
    }
    tl_passes(base, 5);
    env_close();
}

/* _i: 0 = v2, 1 = v3 */
START_TEST(test_real_bookies_inprocess)
{
    use_v3 = _i == 1;
    bookies_start(4);
    struct bkc_ledger *w = tl_bkc_create(cl, 0);
    int64_t id = bkc_ledger_id(w);
    tl_adds_all(&b, w, 10);
    tl_bkc_check_read(w, 0, 9);
    /* stop a bookie of the ensemble while adds are in flight */
    char victim[64];
    snprintf(victim, sizeof(victim), "%s", bkc_ledger_bookie(w, 0));
    int vi = -1;
    for (int i = 0; i < 4; i++) {
        char bid[64];
        if (!strcmp(tl_bookie_id(bs[i], bid, sizeof bid), victim))
            vi = i;
    }
    ck_assert_int_ge(vi, 0);
    tl_adds_n(&b, w, 10);
    tl_bookie_stop(bs[vi], base);
    bs[vi] = NULL;
    tl_adds_all(&b, w, 10);
    for (int i = 0; i < 30; i++) {
        ck_assert_msg(b.status[i] == 0, "add %d: %s", i, b.req[i].errmsg);
        ck_assert_int_eq(b.order[i], i);
    }
    ck_assert_int_ge(bkc_ledger_num_segments(w), 2);
    ck_assert_str_ne(bkc_ledger_bookie(w, 0), victim);
    /* recovery by another client while the writer still holds the ledger open */
    struct bkc_client *c2 = client_new(3, 2, 2, 5000);
    tl_bkc_check_ledger(c2, id, true, 29);
    tl_adds_fenced(&b, w);
    bkc_ledger_free(w);
    bkc_client_free(c2);
    bookies_stop();
}
END_TEST

/* Real `magnetar bookie` processes (BKC_MAGNETAR=path, default ./magnetar if present). */
static const char *magnetar_bin(void)
{
    const char *p = getenv("BKC_MAGNETAR");
    if (p && *p)
        return p;
    return access("./magnetar", X_OK) == 0 ? "./magnetar" : NULL;
}

struct port_file {
    const char *path;
    int port;
};

/* Has the bookie written its port file? (Reads it into pf->port.) */
static bool port_written(const void *arg)
{
    struct port_file *pf = (struct port_file *)arg;
    FILE *f = fopen(pf->path, "r");
    if (f) {
        if (fscanf(f, "bookiePort=%d", &pf->port) != 1)
            pf->port = 0;
        fclose(f);
    }
    return pf->port > 0;
}

/* A `magnetar bookie` process with its files under dir/p<i>; its port in *port. */
static pid_t spawn_bookie(const char *bin, int i, int *port)
{
    char *pf = mg_asprintf("%s/port%d", dir, i);
    char *log = mg_asprintf("%s/bookie%d.log", dir, i);
    char *jd = mg_asprintf("journalDirectory=%s/p%d/journal", dir, i);
    char *ld = mg_asprintf("ledgerDirectories=%s/p%d/ledgers", dir, i);
    char *dd = mg_asprintf("dataDirectory=%s/p%d", dir, i);
    unlink(pf);
    pid_t pid = fork();
    ck_assert_int_ge(pid, 0);
    if (pid == 0) {
        FILE *f = freopen(log, "w", stderr);
        (void)f;
        execl(bin, bin, "bookie", "--set", "bookiePort=0", "--set", "bindAddress=127.0.0.1",
              "--set", "advertisedAddress=127.0.0.1", "--set", "metadataStoreUrl=none", "--set", jd,
              "--set", ld, "--set", dd, "--port-file", pf, (char *)NULL);
        _exit(127);
    }
    struct port_file f = {.path = pf};
    ck_assert_msg(tl_base_until(base, port_written, &f, 10000), "bookie %d did not start; see %s",
                  i, log);
    *port = f.port;
    mg_free(pf);
    mg_free(log);
    mg_free(jd);
    mg_free(ld);
    mg_free(dd);
    return pid;
}

START_TEST(test_real_bookie_processes_sigkill)
{
    use_v3 = _i == 1;
    const char *bin = magnetar_bin();
    if (!bin) {
        /* scripts/test.sh counts this line as a skip, not a pass */
        printf("SKIP: test_real_bookie_processes_sigkill (v%d): no ./magnetar in the working "
               "directory (set BKC_MAGNETAR)\n",
               use_v3 ? 3 : 2);
        fflush(stdout);
        return;
    }
    env_open(true);
    pid_t pids[4];
    int ports[4];
    char ids[4][64];
    for (int i = 0; i < 4; i++) {
        pids[i] = spawn_bookie(bin, i, &ports[i]);
        snprintf(ids[i], sizeof(ids[i]), "127.0.0.1:%d", ports[i]);
        char *p = mg_asprintf("/ledgers/available/%s", ids[i]);
        ck_assert_int_eq(tl_meta_put(meta, p, "", 0, 0), 0);
        mg_free(p);
    }
    cl = client_new(3, 2, 2, 5000);
    struct bkc_ledger *w = tl_bkc_create(cl, 0);
    int64_t id = bkc_ledger_id(w);
    tl_adds_all(&b, w, 10);
    int vi = -1;
    for (int i = 0; i < 4; i++)
        if (!strcmp(ids[i], bkc_ledger_bookie(w, 1)))
            vi = i;
    ck_assert_int_ge(vi, 0);
    tl_adds_n(&b, w, 10);
    kill(pids[vi], SIGKILL);
    waitpid(pids[vi], NULL, 0);
    pids[vi] = 0;
    char *p = mg_asprintf("/ledgers/available/%s", ids[vi]);
    tl_meta_del(meta, p);
    mg_free(p);
    tl_adds_all(&b, w, 10);
    for (int i = 0; i < 30; i++)
        ck_assert_msg(b.status[i] == 0, "add %d: %s (logs in %s)", i, b.req[i].errmsg, dir);
    ck_assert_int_ge(bkc_ledger_num_segments(w), 2);
    tl_bkc_check_read(w, 0, 29);
    ck_assert_int_eq(tl_bkc_close(w), 0);
    struct bkc_client *c2 = client_new(3, 2, 2, 5000);
    tl_bkc_check_ledger(c2, id, true, 29);
    bkc_client_free(c2);
    bkc_ledger_free(w);
    bkc_client_free(cl);
    cl = NULL;
    for (int i = 0; i < 4; i++) {
        if (pids[i]) {
            kill(pids[i], SIGTERM);
            waitpid(pids[i], NULL, 0);
        }
    }
    env_close();
}
END_TEST

START_TEST(test_read_timeout_failover)
{
    fx_setup(2, 2, 2, 2, 200);
    struct bkc_ledger *w = tl_bkc_written(cl, &b, 4);
    /* a bookie that accepts connections but never reads */
    struct fbk *f0 = fb_by_id(fb, NFB, bkc_ledger_bookie(w, 0));
    for (int j = 0; j < FB_MAX_CONNS; j++)
        if (f0->conns[j])
            bufferevent_disable(f0->conns[j], EV_READ);
    tl_bkc_check_read(w, 0, 3);
    bkc_ledger_free(w);
    fx_teardown();
}
END_TEST

/* Entries of awkward sizes (empty, multi-byte varint lengths, 300 KiB) through a real bookie
 * set: reads with striping, readLastConfirmed on an OPEN ledger, recovery of a dead writer's
 * ledger (fencing reads, recovery reads, RECOVERY_ADD re-adds) and of an empty ledger
 * (ENOENTRY / ENOLEDGER answers). _i: 0 = v2, 1 = v3. */
static void fill_payload(struct evbuffer *out, size_t n, int seed)
{
    uint8_t chunk[4096];
    for (size_t off = 0; off < n;) {
        size_t k = n - off < sizeof(chunk) ? n - off : sizeof(chunk);
        for (size_t j = 0; j < k; j++)
            chunk[j] = (uint8_t)((off + j) * 31u + (size_t)seed * 7u);
        evbuffer_add(out, chunk, k);
        off += k;
    }
}

static void read_sizes(struct bkc_ledger *lh, const size_t *sz, int64_t first, int64_t last)
{
    struct tl_res r = {0};
    struct bkc_req req = {.data = &r};
    ck_assert_int_eq(bkc_read(lh, first, last, &req, tl_res_cb), 0);
    tl_wait(loop, &r.done);
    ck_assert_msg(r.status == 0, "read: %d (%s)", r.status, req.errmsg);
    ck_assert_int_eq(req.n_entries, last - first + 1);
    for (int i = 0; i < req.n_entries; i++) {
        int e = (int)(first + i);
        struct evbuffer *want = evbuffer_new();
        fill_payload(want, sz[e], e);
        ck_assert_uint_eq(evbuffer_get_length(req.entries[i]), sz[e]);
        if (sz[e])
            ck_assert(
                memcmp(evbuffer_pullup(req.entries[i], -1), evbuffer_pullup(want, -1), sz[e]) == 0);
        evbuffer_free(want);
    }
    bkc_req_fini(&req);
}

/* The frame limit (nettyMaxFrameSizeBytes = maxMessageSize + BKC_FRAME_PADDING on client and
 * bookie, as Pulsar sets them). One real bookie, E=Qw=Qa=1, two ledgers sharing its
 * connection: an entry carrying a maxMessageSize payload (plus room for a Pulsar entry's
 * magic, checksum and metadata) is stored and read back; the largest entry whose frame fits
 * exactly is stored; one byte more, and an entry well over the bookie's limit, are refused
 * synchronously with -MG_ETOOBIG and nothing is sent, so the bookie never drops the connection: the
 * adds in flight on both ledgers around it all succeed, in order, and the connection generation
 * does not change. (Without the check the oversized frame goes out, the bookie closes the
 * connection and every add in flight fails.) _i: 0 = v2, 1 = v3. */
static size_t largest_fitting(bool v3, int64_t ledger, int64_t entry, size_t limit)
{
    size_t plen = limit;
    while (wire_bk_add_frame_size(v3, ledger, entry, 0, WIRE_BK_ENTRY_HDR_LEN + 4, plen) > limit)
        plen--;
    return plen;
}

START_TEST(test_frame_limit)
{
    use_v3 = _i == 1;
    const size_t max_message = 200 * 1024 + 17; /* any maxMessageSize */
    const size_t limit = max_message + BKC_FRAME_PADDING;
    env_open(true);
    struct bk_options o;
    bk_options_default(&o);
    o.meta = meta;
    o.disk_usage_threshold_pct = 100;
    o.max_frame_size = (int)limit;
    struct bk_server *server = tl_bookie_start(base, dir, 0, &o);
    tl_wait_bookies(meta, 1);
    struct bkc_config cfg;
    bkc_config_default(&cfg);
    cfg.use_v3 = use_v3;
    cfg.ensemble_size = cfg.write_quorum = cfg.ack_quorum = 1;
    cfg.timeout_ms = 10000;
    cfg.max_frame_size = limit;
    ck_assert_int_eq(bkc_client_new(loop, meta, &cfg, &cl), 0);
    struct bkc_ledger *la = tl_bkc_create(cl, 0), *lb = tl_bkc_create(cl, 0);
    /* B: small adds in flight on the shared connection */
    tl_adds_n(&b, lb, 8);
    /* A: entry 0 = a maxMessageSize message, entry 1 = exactly at the limit */
    size_t sz[3] = {max_message + 512, largest_fitting(use_v3, bkc_ledger_id(la), 1, limit), 100};
    struct evbuffer *pa[3];
    struct bkc_req ra[3];
    struct tl_res rs[3];
    memset(ra, 0, sizeof(ra));
    memset(rs, 0, sizeof(rs));
    for (int i = 0; i < 2; i++) {
        pa[i] = evbuffer_new();
        fill_payload(pa[i], sz[i], i);
        ra[i].data = &rs[i];
        ck_assert_int_eq(bkc_add(la, bkc_ledger_next_entry(la), pa[i], &ra[i], tl_res_cb), 0);
        ck_assert_int_eq(ra[i].entry_id, i);
    }
    /* one byte more than fits: refused before anything is sent */
    struct evbuffer *big = evbuffer_new();
    fill_payload(big, sz[1] + 1, 9);
    ck_assert_uint_gt(wire_bk_add_frame_size(use_v3, bkc_ledger_id(la), 2, 0,
                                             WIRE_BK_ENTRY_HDR_LEN + 4, sz[1] + 1),
                      limit);
    struct bkc_req rbig = {0};
    struct tl_res rsbig = {0};
    rbig.data = &rsbig;
    ck_assert_int_eq(bkc_add(la, bkc_ledger_next_entry(la), big, &rbig, tl_res_cb), -MG_ETOOBIG);
    ck_assert_msg(strstr(rbig.errmsg, "frame limit") != NULL, "errmsg: %s", rbig.errmsg);
    /* and one well over the bookie's own limit (sent, it would close the connection) */
    fill_payload(big, 4096, 9);
    ck_assert_int_eq(bkc_add(la, bkc_ledger_next_entry(la), big, &rbig, tl_res_cb), -MG_ETOOBIG);
    /* the ledger goes on with the next id */
    pa[2] = evbuffer_new();
    fill_payload(pa[2], sz[2], 2);
    ra[2].data = &rs[2];
    ck_assert_int_eq(bkc_add(la, bkc_ledger_next_entry(la), pa[2], &ra[2], tl_res_cb), 0);
    ck_assert_int_eq(ra[2].entry_id, 2);
    tl_adds_n(&b, lb, 8);
    struct bkc_bookie *bk = mg_map_get_str(&cl->bookies, bkc_ledger_bookie(la, 0));
    ck_assert_ptr_nonnull(bk);
    uint64_t gen = bk->gen;
    for (int i = 0; i < 3; i++)
        tl_wait(loop, &rs[i].done);
    tl_adds_wait(&b);
    for (int i = 0; i < 3; i++)
        ck_assert_msg(rs[i].status == 0, "add %d of %zu bytes: %s (%s)", i, sz[i],
                      mg_errname(rs[i].status), ra[i].errmsg);
    for (int i = 0; i < b.n; i++) {
        ck_assert_msg(b.status[i] == 0, "add %d on the other ledger: %s", i,
                      mg_errname(b.status[i]));
        ck_assert_int_eq(b.order[i], i);
    }
    ck_assert(!rsbig.done);
    ck_assert_uint_eq(bk->gen, gen); /* the connection was never dropped */
    ck_assert_int_eq(bkc_ledger_lac(la), 2);
    read_sizes(la, sz, 0, 2);
    tl_bkc_check_read(lb, 0, 15);
    ck_assert(!rsbig.done);
    ck_assert_uint_eq(bk->gen, gen);
    bkc_ledger_free(la);
    bkc_ledger_free(lb);
    bkc_client_free(cl);
    cl = NULL;
    tl_bookie_stop(server, base);
    tl_passes(base, 5);
    for (int i = 0; i < 3; i++)
        evbuffer_free(pa[i]);
    evbuffer_free(big);
    env_close();
}
END_TEST

/* A response over the client's frame limit (a bookie with a larger limit holding an entry
 * another writer stored) fails only the request it answers, with -MG_ETOOBIG: its body is
 * skipped as it arrives and the reads queued behind it on the same connection succeed.
 * (Before, the connection was dropped and every request on it failed.) */
START_TEST(test_oversized_response)
{
    fx_setup(1, 1, 1, 1, 10000);
    bkc_client_free(cl);
    struct bkc_config cfg;
    bkc_config_default(&cfg);
    cfg.ensemble_size = cfg.write_quorum = cfg.ack_quorum = 1;
    cfg.max_frame_size = 4096;
    ck_assert_int_eq(bkc_client_new(loop, meta, &cfg, &cl), 0);
    struct bkc_ledger *lh = tl_bkc_create(cl, 0);
    tl_adds_all(&b, lh, 3);
    /* the bookie's copy of entry 1 grows past the client's limit */
    struct fb_entry *x = fb_find(fb[0], bkc_ledger_id(lh), 1);
    ck_assert_ptr_nonnull(x);
    uint8_t junk[1000] = {0};
    for (int i = 0; i < 10; i++)
        evbuffer_add(x->body, junk, sizeof(junk));
    struct bkc_bookie *bk = mg_map_get_str(&cl->bookies, fb[0]->id);
    uint64_t gen = bk->gen;
    struct tl_res r1 = {0}, r0 = {0}, r2 = {0};
    struct bkc_req q1 = {.data = &r1}, q0 = {.data = &r0}, q2 = {.data = &r2};
    ck_assert_int_eq(bkc_read(lh, 1, 1, &q1, tl_res_cb), 0); /* answered first, oversized */
    ck_assert_int_eq(bkc_read(lh, 0, 0, &q0, tl_res_cb), 0);
    ck_assert_int_eq(bkc_read(lh, 2, 2, &q2, tl_res_cb), 0);
    tl_wait(loop, &r1.done);
    tl_wait(loop, &r0.done);
    tl_wait(loop, &r2.done);
    ck_assert_msg(r1.status == -MG_ETOOBIG, "oversized read: %s (%s)", mg_errname(r1.status),
                  q1.errmsg);
    ck_assert_msg(r0.status == 0, "read 0: %s (%s)", mg_errname(r0.status), q0.errmsg);
    ck_assert_msg(r2.status == 0, "read 2: %s (%s)", mg_errname(r2.status), q2.errmsg);
    ck_assert_uint_eq(bk->gen, gen);
    bkc_req_fini(&q0);
    bkc_req_fini(&q2);
    tl_bkc_check_read(lh, 2, 2); /* the connection still serves */
    ck_assert_uint_eq(bk->gen, gen);
    bkc_ledger_free(lh);
    fx_teardown();
}
END_TEST

/* ---- bulk transfers --------------------------------------------------------------------- */

/* What the op callbacks of the tests below saw, in completion order. */
#define OPLOG_MAX 1024
struct op_log {
    int n;
    int64_t entry[OPLOG_MAX];
    int rc[OPLOG_MAX];
    bool first; /* n > 0 */
};

static void op_log_cb(struct bkc_op *op, int rc, struct evbuffer **body)
{
    (void)body;
    struct op_log *l = op->arg;
    ck_assert_int_lt(l->n, OPLOG_MAX);
    l->entry[l->n] = op->entry;
    l->rc[l->n++] = rc;
    l->first = true;
}

/* An ADD of (ledger, entry) straight on bk's connection; the entry header the fake bookie
 * reads is the ledger and entry ids. */
static void raw_add(struct bkc_bookie *bk, int64_t ledger, int64_t entry, struct evbuffer *payload,
                    struct op_log *l)
{
    static const uint8_t mk[20];
    uint8_t eh[16];
    mg_put_be64(eh, (uint64_t)ledger);
    mg_put_be64(eh + 8, (uint64_t)entry);
    ck_assert_ptr_nonnull(
        bkc_bookie_add(bk, ledger, entry, 0, mk, eh, sizeof eh, payload, op_log_cb, l, 0));
}

/* Run base one non-blocking pass at a time until *done and out is empty (bounded in passes
 * and by tl_wait_ms); returns the most bytes one pass took from out, i.e. what one write
 * callback of its bufferevent sent. */
static size_t largest_write_pass(struct evbuffer *out, const bool *done)
{
    size_t most = 0;
    uint64_t until = mg_mono_us() + tl_wait_ms(loop) * 1000;
    for (long i = 0; i < 10000000 && !(*done && evbuffer_get_length(out) == 0); i++) {
        ck_assert_msg(mg_mono_us() < until, "timed out: %zu bytes left to write",
                      evbuffer_get_length(out));
        size_t before = evbuffer_get_length(out);
        event_base_loop(base, EVLOOP_ONCE | EVLOOP_NONBLOCK);
        size_t after = evbuffer_get_length(out);
        if (before > after && before - after > most)
            most = before - after;
    }
    ck_assert(*done);
    return most;
}

/* libevent's default for one write of a socket bufferevent (MAX_SINGLE_WRITE_DEFAULT) */
#define LIBEVENT_WRITE_DEFAULT 16384

/* A large entry leaves the broker in writes of more than libevent's default 16 KiB per loop
 * pass (util/bev.h MG_BEV_WRITE_MAX): at 150,000 1 KiB msg/s the cluster's broker made
 * ~20,000 writev a second before, one per 16 KiB. The entry arrives whole and is answered. */
START_TEST(test_bulk_add_writes)
{
    fx_setup(1, 1, 1, 1, 10000);
    struct bkc_bookie *bk = bkc_bookie_get(cl, fb[0]->id);
    size_t n = (size_t)(256 + mg_mono_us() % 768) * 1024 + (size_t)(mg_mono_us() % 1000);
    struct evbuffer *p = evbuffer_new();
    fill_payload(p, n, 3);
    struct op_log l = {0};
    raw_add(bk, 7, 0, p, &l);
    size_t most = largest_write_pass(bufferevent_get_output(bk->bev), &l.first);
    ck_assert_msg(most > LIBEVENT_WRITE_DEFAULT, "largest write of a %zu-byte entry: %zu bytes", n,
                  most);
    ck_assert_int_eq(l.n, 1);
    ck_assert_int_eq(l.rc[0], 0);
    struct fb_entry *x = fb_find(fb[0], 7, 0);
    ck_assert_ptr_nonnull(x);
    ck_assert_uint_eq(evbuffer_get_length(x->body), 16 + n); /* entry header + payload */
    ck_assert(memcmp(evbuffer_pullup(x->body, -1) + 16, evbuffer_pullup(p, -1), n) == 0);
    evbuffer_free(p);
    fx_teardown();
}
END_TEST

/* ADD responses that arrive together, more than libevent's 4 KiB read (the client's reading
 * held while the bookie answers them all), are all matched in the one read callback that
 * finds them (mg_bev_read_more), in send order, none lost; the connection stays. */
START_TEST(test_add_responses_one_read)
{
    fx_setup(1, 1, 1, 1, 10000);
    struct bkc_bookie *bk = bkc_bookie_get(cl, fb[0]->id);
    struct evbuffer *p = evbuffer_new();
    evbuffer_add(p, "x", 1);
    struct op_log l = {0};
    raw_add(bk, 9, 0, p, &l); /* connected and answered first */
    tl_wait(loop, &l.first);
    uint64_t gen = bk->gen;
    bufferevent_disable(bk->bev, EV_READ);
    int n = 300 + (int)(mg_mono_us() % 600); /* 28-byte answers: 8.4 to 25 KiB */
    struct op_log held = {0};
    for (int i = 1; i <= n; i++)
        raw_add(bk, 9, i, p, &held);
    /* every answer (28 bytes in v2) in the client's receive queue: the fake bookie's output
     * flushed is not enough, its socket does not set TCP_NODELAY */
    int fd = bufferevent_getfd(bk->bev), queued = 0;
    uint64_t until = mg_mono_us() + tl_wait_ms(loop) * 1000;
    while (ioctl(fd, FIONREAD, &queued) == 0 && queued < n * 28) {
        ck_assert_msg(mg_mono_us() < until, "%d of %d answer bytes arrived", queued, n * 28);
        event_base_loop(base, EVLOOP_ONCE | EVLOOP_NONBLOCK);
    }
    ck_assert_int_eq(queued, n * 28);
    ck_assert_int_eq(fb[0]->n_adds, n + 1);
    ck_assert(!held.first);
    bufferevent_enable(bk->bev, EV_READ);
    while (!held.first) {
        ck_assert_msg(mg_mono_us() < until, "no answer read");
        event_base_loop(base, EVLOOP_ONCE | EVLOOP_NONBLOCK);
    }
    ck_assert_msg(held.n == n, "the first read matched %d of %d answers", held.n, n);
    for (int i = 0; i < n; i++) {
        ck_assert_int_eq(held.entry[i], i + 1);
        ck_assert_int_eq(held.rc[i], 0);
    }
    ck_assert_uint_eq(bk->gen, gen);
    ck_assert_int_eq(bk->n_ops, 0);
    evbuffer_free(p);
    fx_teardown();
}
END_TEST

/* A bookie answers a read of a large entry in writes of more than libevent's default 16 KiB
 * per loop pass (bk_server.c, util/bev.h MG_BEV_WRITE_MAX), and the entry reads back whole. */
START_TEST(test_bookie_bulk_read_writes)
{
    env_open(true);
    struct bk_server *server = real_bookie(0);
    tl_wait_bookies(meta, 1);
    cl = client_new(1, 1, 1, 10000);
    struct bkc_ledger *lh = tl_bkc_create(cl, 0);
    size_t sz[1] = {(size_t)(256 + mg_mono_us() % 768) * 1024 + (size_t)(mg_mono_us() % 1000)};
    struct evbuffer *p = evbuffer_new();
    fill_payload(p, sz[0], 0);
    struct tl_res ra = {0};
    struct bkc_req qa = {.data = &ra};
    ck_assert_int_eq(bkc_add(lh, bkc_ledger_next_entry(lh), p, &qa, tl_res_cb), 0);
    tl_wait(loop, &ra.done);
    ck_assert_msg(ra.status == 0, "add: %s (%s)", mg_errname(ra.status), qa.errmsg);
    ck_assert_ptr_nonnull(server->conns);
    struct tl_res rr = {0};
    struct bkc_req qr = {.data = &rr};
    ck_assert_int_eq(bkc_read(lh, 0, 0, &qr, tl_res_cb), 0);
    size_t most = largest_write_pass(bufferevent_get_output(server->conns->bev), &rr.done);
    ck_assert_msg(most > LIBEVENT_WRITE_DEFAULT, "largest write of a %zu-byte entry: %zu bytes",
                  sz[0], most);
    ck_assert_msg(rr.status == 0, "read: %s (%s)", mg_errname(rr.status), qr.errmsg);
    bkc_req_fini(&qr);
    read_sizes(lh, sz, 0, 0);
    bkc_ledger_free(lh);
    bkc_client_free(cl);
    cl = NULL;
    tl_bookie_stop(server, base);
    tl_passes(base, 5);
    evbuffer_free(p);
    env_close();
}
END_TEST

START_TEST(test_real_bookies_sizes_recovery)
{
    use_v3 = _i == 1;
    bookies_start(3);
    struct bkc_client *c2 = client_new(3, 2, 2, 5000);
    /* an empty ledger: the fencing reads find nothing */
    struct bkc_ledger *w0 = tl_bkc_create(cl, 0);
    struct bkc_ledger *r0 = tl_bkc_open(c2, bkc_ledger_id(w0), true, 0);
    ck_assert_int_eq(bkc_ledger_lac(r0), -1);
    ck_assert(bkc_ledger_is_closed(r0));
    bkc_ledger_free(r0);
    bkc_ledger_free(w0);
    /* entries of many sizes */
    static const size_t sz[] = {0, 1, 95, 96, 127, 128, 200, 16383, 16384, 300 * 1024, 3, 0};
    const int n = (int)(sizeof(sz) / sizeof(sz[0]));
    struct bkc_ledger *w = tl_bkc_create(cl, 0);
    int64_t id = bkc_ledger_id(w);
    b.loop = loop; /* added here, not by tl_adds_one */
    for (int i = 0; i < n; i++) {
        b.payload[i] = evbuffer_new();
        fill_payload(b.payload[i], sz[i], i);
        b.req[i].data = &b;
        ck_assert_int_eq(bkc_add(w, bkc_ledger_next_entry(w), b.payload[i], &b.req[i], tl_adds_cb),
                         0);
        b.n++;
        if (i == n - 2) /* the last entry then carries LAC n-2 */
            tl_adds_wait(&b);
    }
    tl_adds_wait(&b);
    for (int i = 0; i < n; i++) {
        ck_assert_msg(b.status[i] == 0, "add %d: %s", i, b.req[i].errmsg);
        ck_assert_int_eq(b.order[i], i);
    }
    read_sizes(w, sz, 0, n - 1);
    /* a plain reader of the OPEN ledger learns the LAC piggybacked on the last entry */
    struct bkc_ledger *r1 = tl_bkc_open(c2, id, false, 0);
    struct tl_res rs = {0};
    struct bkc_req lreq = {.data = &rs};
    ck_assert_int_eq(bkc_read_lac(r1, &lreq, tl_res_cb), 0);
    tl_wait(loop, &rs.done);
    ck_assert_int_eq(rs.status, 0);
    ck_assert_int_eq(bkc_ledger_lac(r1), n - 2);
    read_sizes(r1, sz, 0, n - 2);
    bkc_ledger_free(r1);
    /* the writer dies with the ledger OPEN; recovery closes it at the last entry */
    bkc_ledger_free(w);
    struct bkc_ledger *r = tl_bkc_open(c2, id, true, 0);
    ck_assert_int_eq(bkc_ledger_lac(r), n - 1);
    ck_assert(bkc_ledger_is_closed(r));
    read_sizes(r, sz, 0, n - 1);
    bkc_ledger_free(r);
    bkc_client_free(c2);
    bookies_stop();
}
END_TEST

/* ---- tests: v3 frames on the wire -------------------------------------------------------- */

/* A listener that records what a v3 client sends, and lets the test answer. */
struct sniff {
    struct evconnlistener *l;
    struct bufferevent *bev; /* the accepted connection */
    struct evbuffer *got;    /* everything received */
    int port;
};

static void sniff_read_cb(struct bufferevent *bev, void *arg)
{
    struct sniff *sn = arg;
    evbuffer_add_buffer(sn->got, bufferevent_get_input(bev));
}

static void sniff_accept(struct evconnlistener *l, evutil_socket_t fd, struct sockaddr *sa,
                         int salen, void *arg)
{
    (void)l;
    (void)sa;
    (void)salen;
    struct sniff *sn = arg;
    ck_assert_ptr_null(sn->bev);
    sn->bev = bufferevent_socket_new(base, fd, BEV_OPT_CLOSE_ON_FREE);
    bufferevent_setcb(sn->bev, sniff_read_cb, NULL, NULL, sn);
    bufferevent_enable(sn->bev, EV_READ | EV_WRITE);
}

/* Has a whole frame arrived? */
static bool sniff_has_frame(const void *arg)
{
    const struct sniff *sn = arg;
    uint8_t h[4];
    return evbuffer_copyout(sn->got, h, 4) == 4 &&
           evbuffer_get_length(sn->got) >= 4 + (size_t)mg_get_be32(h);
}

/* Take the next frame from sn->got as a v3 Request (waiting for it) of operation op
 * (ADD_ENTRY or READ_ENTRY) for entry of ledger; its txnId in *txn. */
static Bookkeeper__Proto__Request *sniff_next(struct sniff *sn, int op, int64_t ledger,
                                              int64_t entry, uint64_t *txn)
{
    ck_assert_msg(tl_until(loop, sniff_has_frame, sn, 10000), "no frame");
    uint8_t h[4];
    evbuffer_remove(sn->got, h, 4);
    size_t n = mg_get_be32(h);
    ck_assert_int_eq(evbuffer_pullup(sn->got, 1)[0], 0x0A); /* field 1: header */
    Bookkeeper__Proto__Request *r =
        bookkeeper__proto__request__unpack(NULL, n, evbuffer_pullup(sn->got, (ev_ssize_t)n));
    ck_assert_ptr_nonnull(r);
    evbuffer_drain(sn->got, n);
    ck_assert_int_eq(r->header->version, BOOKKEEPER__PROTO__PROTOCOL_VERSION__VERSION_THREE);
    ck_assert_int_eq(r->header->operation, op);
    *txn = r->header->txnid;
    bool add = op == BOOKKEEPER__PROTO__OPERATION_TYPE__ADD_ENTRY;
    ck_assert_ptr_nonnull(add ? (void *)r->addrequest : (void *)r->readrequest);
    ck_assert_int_eq(add ? r->addrequest->ledgerid : r->readrequest->ledgerid, ledger);
    ck_assert_int_eq(add ? r->addrequest->entryid : r->readrequest->entryid, entry);
    return r;
}

static void sniff_reply(struct sniff *sn, Bookkeeper__Proto__Response *resp, int op, uint64_t txn,
                        int status)
{
    Bookkeeper__Proto__BKPacketHeader h = BOOKKEEPER__PROTO__BKPACKET_HEADER__INIT;
    h.version = BOOKKEEPER__PROTO__PROTOCOL_VERSION__VERSION_THREE;
    h.operation = (Bookkeeper__Proto__OperationType)op;
    h.txnid = txn;
    resp->header = &h;
    resp->status = (Bookkeeper__Proto__StatusCode)status;
    size_t n = bookkeeper__proto__response__get_packed_size(resp);
    uint8_t *frame = mg_malloc(4 + n);
    mg_put_be32(frame, (uint32_t)n);
    bookkeeper__proto__response__pack(resp, frame + 4);
    bufferevent_write(sn->bev, frame, 4 + n);
    mg_free(frame);
}

/* Answer a read of ledger:entry: status inside and out, the body when not NULL. */
static void sniff_read_reply(struct sniff *sn, uint64_t txn, int status, int64_t ledger,
                             int64_t entry, const char *body)
{
    Bookkeeper__Proto__Response r = BOOKKEEPER__PROTO__RESPONSE__INIT;
    Bookkeeper__Proto__ReadResponse rr = BOOKKEEPER__PROTO__READ_RESPONSE__INIT;
    rr.status = (Bookkeeper__Proto__StatusCode)status;
    rr.ledgerid = ledger;
    rr.entryid = entry;
    if (body) {
        rr.has_body = true;
        rr.body.data = (uint8_t *)body;
        rr.body.len = strlen(body);
    }
    r.readresponse = &rr;
    sniff_reply(sn, &r, BOOKKEEPER__PROTO__OPERATION_TYPE__READ_ENTRY, txn, status);
}

struct opres {
    int n;
    int slot[8];
    int rc[8];
    char body[8][64];
};

static void sniff_op_cb(struct bkc_op *op, int rc, struct evbuffer **body)
{
    struct opres *o = op->arg;
    ck_assert_int_lt(o->n, 8);
    o->slot[o->n] = op->slot;
    o->rc[o->n] = rc;
    o->body[o->n][0] = 0;
    if (body && *body) {
        size_t k = evbuffer_get_length(*body);
        ck_assert_uint_lt(k, sizeof(o->body[0]));
        evbuffer_remove(*body, o->body[o->n], k);
        o->body[o->n][k] = 0;
    }
    o->n++;
}

START_TEST(test_v3_frames)
{
    use_v3 = true;
    env_open(false);
    struct sniff sn = {0};
    sn.got = evbuffer_new();
    sn.l = listen_any(sniff_accept, &sn, &sn.port);
    cl = client_new(1, 1, 1, 30000);
    char id[64];
    snprintf(id, sizeof(id), "127.0.0.1:%d", sn.port);
    struct bkc_bookie *bk = bkc_bookie_get(cl, id);
    uint8_t key[WIRE_BK_MASTER_KEY_LEN];
    for (int i = 0; i < WIRE_BK_MASTER_KEY_LEN; i++)
        key[i] = (uint8_t)(0xA0 + i);
    uint8_t ehdr[WIRE_BK_ENTRY_HDR_LEN + 4];
    for (size_t i = 0; i < sizeof(ehdr); i++)
        ehdr[i] = (uint8_t)i;
    struct evbuffer *pl = evbuffer_new();
    evbuffer_add(pl, "hello v3", 8);
    struct opres o = {0};
    /* 1: a recovery add, 2: a plain add, 3: a fencing read of -1, 4: a plain read */
    ck_assert_ptr_nonnull(bkc_bookie_add(bk, 7, 3,
                                         WIRE_BK_FLAG_RECOVERY_ADD | WIRE_BK_FLAG_HIGH_PRIORITY,
                                         key, ehdr, sizeof(ehdr), pl, sniff_op_cb, &o, 1));
    ck_assert_ptr_nonnull(
        bkc_bookie_add(bk, 7, 4, 0, key, ehdr, sizeof(ehdr), pl, sniff_op_cb, &o, 2));
    ck_assert_ptr_nonnull(bkc_bookie_read(bk, 7, -1, WIRE_BK_FLAG_FENCE, key, sniff_op_cb, &o, 3));
    ck_assert_ptr_nonnull(bkc_bookie_read(bk, 7, 5, 0, key, sniff_op_cb, &o, 4));
    ck_assert_int_eq(o.n, 0);
    uint64_t txn[4];
    for (int i = 0; i < 2; i++) {
        Bookkeeper__Proto__Request *r =
            sniff_next(&sn, BOOKKEEPER__PROTO__OPERATION_TYPE__ADD_ENTRY, 7, 3 + i, &txn[i]);
        Bookkeeper__Proto__AddRequest *a = r->addrequest;
        ck_assert_uint_eq(a->masterkey.len, WIRE_BK_MASTER_KEY_LEN);
        ck_assert(memcmp(a->masterkey.data, key, WIRE_BK_MASTER_KEY_LEN) == 0);
        ck_assert_uint_eq(a->body.len, sizeof(ehdr) + 8);
        ck_assert(memcmp(a->body.data, ehdr, sizeof(ehdr)) == 0);
        ck_assert(memcmp(a->body.data + sizeof(ehdr), "hello v3", 8) == 0);
        ck_assert_int_eq(a->has_flag, i == 0);
        if (i == 0) {
            ck_assert_int_eq(a->flag, BOOKKEEPER__PROTO__ADD_REQUEST__FLAG__RECOVERY_ADD);
            ck_assert(r->header->has_priority && r->header->priority > 0);
        } else {
            ck_assert(!r->header->has_priority || r->header->priority == 0);
        }
        bookkeeper__proto__request__free_unpacked(r, NULL);
    }
    for (int i = 2; i < 4; i++) {
        Bookkeeper__Proto__Request *r = sniff_next(
            &sn, BOOKKEEPER__PROTO__OPERATION_TYPE__READ_ENTRY, 7, i == 2 ? -1 : 5, &txn[i]);
        Bookkeeper__Proto__ReadRequest *rr = r->readrequest;
        ck_assert_int_eq(rr->has_flag, i == 2);
        ck_assert_int_eq(rr->has_masterkey, i == 2);
        if (i == 2) {
            ck_assert_int_eq(rr->flag, BOOKKEEPER__PROTO__READ_REQUEST__FLAG__FENCE_LEDGER);
            ck_assert(memcmp(rr->masterkey.data, key, WIRE_BK_MASTER_KEY_LEN) == 0);
        }
        bookkeeper__proto__request__free_unpacked(r, NULL);
    }
    for (int i = 0; i < 4; i++)
        for (int j = 0; j < i; j++)
            ck_assert(txn[i] != txn[j]);
    /* answers out of order: the plain read (ENOENTRY), the fencing read (EOK + body), the
     * plain add (EFENCED), the recovery add (the outer status only: EBADREQ) */
    sniff_read_reply(&sn, txn[3], BOOKKEEPER__PROTO__STATUS_CODE__ENOENTRY, 7, 5, NULL);
    sniff_read_reply(&sn, txn[2], BOOKKEEPER__PROTO__STATUS_CODE__EOK, 7, 4, "the body");
    Bookkeeper__Proto__Response r2 = BOOKKEEPER__PROTO__RESPONSE__INIT;
    Bookkeeper__Proto__AddResponse ar2 = BOOKKEEPER__PROTO__ADD_RESPONSE__INIT;
    ar2.status = BOOKKEEPER__PROTO__STATUS_CODE__EFENCED;
    ar2.ledgerid = 7;
    ar2.entryid = 4;
    r2.addresponse = &ar2;
    sniff_reply(&sn, &r2, BOOKKEEPER__PROTO__OPERATION_TYPE__ADD_ENTRY, txn[1],
                BOOKKEEPER__PROTO__STATUS_CODE__EFENCED);
    Bookkeeper__Proto__Response r1 = BOOKKEEPER__PROTO__RESPONSE__INIT;
    sniff_reply(&sn, &r1, BOOKKEEPER__PROTO__OPERATION_TYPE__ADD_ENTRY, txn[0],
                BOOKKEEPER__PROTO__STATUS_CODE__EBADREQ);
    ck_assert_int_eq(tl_until_count(loop, &o.n, 4, 10000), 4);
    ck_assert_int_eq(o.slot[0], 4);
    ck_assert_int_eq(o.rc[0], WIRE_BK_ENOENTRY);
    ck_assert_int_eq(o.slot[1], 3);
    ck_assert_int_eq(o.rc[1], WIRE_BK_EOK);
    ck_assert_str_eq(o.body[1], "the body");
    ck_assert_int_eq(o.slot[2], 2);
    ck_assert_int_eq(o.rc[2], WIRE_BK_EFENCED);
    ck_assert_int_eq(o.slot[3], 1);
    ck_assert_int_eq(o.rc[3], WIRE_BK_EBADREQ);
    ck_assert_int_eq(bk->n_ops, 0);
    /* an answer to an unknown txnId is dropped; one whose operation does not match its
     * request drops the connection and fails what was sent on it */
    ck_assert_ptr_nonnull(bkc_bookie_read(bk, 7, 6, 0, key, sniff_op_cb, &o, 5));
    uint64_t t5;
    Bookkeeper__Proto__Request *rq =
        sniff_next(&sn, BOOKKEEPER__PROTO__OPERATION_TYPE__READ_ENTRY, 7, 6, &t5);
    bookkeeper__proto__request__free_unpacked(rq, NULL);
    Bookkeeper__Proto__Response ru = BOOKKEEPER__PROTO__RESPONSE__INIT;
    sniff_reply(&sn, &ru, BOOKKEEPER__PROTO__OPERATION_TYPE__READ_ENTRY, t5 + 1000,
                BOOKKEEPER__PROTO__STATUS_CODE__EOK);
    Bookkeeper__Proto__Response rm = BOOKKEEPER__PROTO__RESPONSE__INIT;
    sniff_reply(&sn, &rm, BOOKKEEPER__PROTO__OPERATION_TYPE__ADD_ENTRY, t5,
                BOOKKEEPER__PROTO__STATUS_CODE__EOK);
    ck_assert_int_eq(tl_until_count(loop, &o.n, 5, 10000), 5);
    ck_assert_int_eq(o.slot[4], 5);
    ck_assert_int_eq(o.rc[4], -MG_EIO);
    evbuffer_free(pl);
    bkc_client_free(cl);
    cl = NULL;
    if (sn.bev)
        bufferevent_free(sn.bev);
    evconnlistener_free(sn.l);
    evbuffer_free(sn.got);
    env_close();
}
END_TEST

/* ---- tests: TLS to real bookies (START_TLS) ------------------------------------------------- */

#define TLS_FACTORY "org.apache.bookkeeper.tls.TLSContextFactory"

/* dir/pki/<file> in buf (PATH_MAX bytes). */
static const char *tls_path(char *buf, const char *file)
{
    snprintf(buf, PATH_MAX, "%s/pki/%s", dir, file);
    return buf;
}

/* Certificates under dir/pki (bookie, broker: signed by its CA) and dir/pki/other (rogue:
 * signed by another CA). */
static void tls_pki(void)
{
    char p[PATH_MAX], o[PATH_MAX];
    ck_assert_int_eq(mkdir(tls_path(p, ""), 0700), 0);
    ck_assert_int_eq(mkdir(tls_path(o, "other"), 0700), 0);
    tl_make_cert(p, "bookie", 1);
    tl_make_cert(p, "broker", 2);
    tl_make_cert(o, "rogue", 3);
}

/* An in-process bookie with TLS (client certificates required, verified against the CA),
 * requiring it (BookieAuthZFactory) when require; without TLS at all when !tls. */
static struct bk_server *tls_bookie(int i, bool tls, bool require)
{
    char cert[PATH_MAX], key[PATH_MAX], ca[PATH_MAX];
    struct bk_options o;
    bk_options_default(&o);
    o.meta = meta;
    o.disk_usage_threshold_pct = 100;
    if (tls) {
        o.tls_provider_factory = TLS_FACTORY;
        o.tls_cert = tls_path(cert, "bookie.pem");
        o.tls_key = tls_path(key, "bookie.key");
        o.tls_trust = tls_path(ca, "ca.pem");
        o.tls_key_type = o.tls_trust_type = "PEM";
        o.tls_client_auth = true;
        o.auth_provider_factory = require ? BK_TLS_AUTH_FACTORY : NULL;
    }
    return tl_bookie_start(base, dir, i, &o);
}

/* A client (E=3 Qw=2 Qa=2, use_v3) with TLS: trusting the CA of dir/pki/<ca_dir>, presenting
 * dir/pki/<name>.pem when name is set. */
static struct bkc_client *tls_client(const char *ca_dir, const char *name)
{
    char ca[PATH_MAX], cert[PATH_MAX], key[PATH_MAX];
    struct bkc_config cfg;
    tl_bkc_config(&cfg, 3, 2, 2, 5000);
    cfg.tls.on = true;
    snprintf(ca, sizeof ca, "%s/pki/%s/ca.pem", dir, ca_dir);
    cfg.tls.trust = ca;
    if (name) {
        snprintf(cert, sizeof cert, "%s/pki/%s.pem", dir, name);
        snprintf(key, sizeof key, "%s/pki/%s.key", dir, name);
        cfg.tls.cert = cert;
        cfg.tls.key = key;
    }
    return client_of(&cfg);
}

/* _i: 0 = v2 (START_TLS in v3, then v2 framing), 1 = v3. Three bookies that require TLS and a
 * client certificate; a client with the bookkeeperTLS* settings writes, reads, and a second
 * one recovers the ledger. */
START_TEST(test_tls_bookies)
{
    use_v3 = _i == 1;
    env_open(true);
    tls_pki();
    for (int i = 0; i < 3; i++)
        bs[i] = tls_bookie(i, true, true);
    tl_wait_bookies(meta, 3);
    cl = tls_client(".", "broker");
    struct bkc_ledger *w = tl_bkc_create(cl, 0);
    int64_t id = bkc_ledger_id(w);
    tl_adds_all(&b, w, 20);
    for (int i = 0; i < 20; i++)
        ck_assert_msg(b.status[i] == 0, "add %d: %s", i, b.req[i].errmsg);
    tl_bkc_check_read(w, 0, 19);
    struct bkc_client *c2 = tls_client(".", "broker");
    tl_bkc_check_ledger(c2, id, true, 19);
    bkc_ledger_free(w);
    bkc_client_free(c2);
    bookies_stop();
}
END_TEST

struct raw_op {
    bool done;
    int rc;
    size_t body_len; /* a READ's EOK body */
};

static void raw_op_cb(struct bkc_op *op, int rc, struct evbuffer **body)
{
    struct raw_op *r = op->arg;
    r->done = true;
    r->rc = rc;
    r->body_len = body ? evbuffer_get_length(*body) : 0;
}

/* One ADD (a READ when !add) of ledger, entry straight to bookie s through c's transport
 * (flags: WIRE_BK_FLAG_*); its answer (rc: a bookie status, or -MG_EIO for a failed
 * connection). */
static struct raw_op tp_op(struct bkc_client *c, struct bk_server *s, bool add, int64_t ledger,
                           int64_t entry, uint16_t flags)
{
    char id[64];
    struct bkc_bookie *bk = c->tp.ops->bookie_get(c, tl_bookie_id(s, id, sizeof id));
    uint8_t key[WIRE_BK_MASTER_KEY_LEN] = {1, 2, 3};
    uint8_t ehdr[WIRE_BK_ENTRY_HDR_LEN];
    struct wire_bk_entry_hdr h = {.ledger = ledger, .entry = entry, .lac = entry - 1, .length = 5};
    wire_bk_entry_hdr_put(ehdr, &h);
    struct evbuffer *payload = evbuffer_new();
    evbuffer_add(payload, "hello", 5);
    struct raw_op r = {0};
    if (add)
        c->tp.ops->add(bk, ledger, entry, flags, key, ehdr, sizeof ehdr, payload, raw_op_cb, &r, 0);
    else
        c->tp.ops->read(bk, ledger, entry, flags, key, raw_op_cb, &r, 0);
    ck_assert_msg(tl_until_flag(loop, &r.done, 15000), "no answer from %s", id);
    evbuffer_free(payload);
    return r;
}

static int raw_op(struct bkc_client *c, struct bk_server *s, bool add, int64_t entry)
{
    return tp_op(c, s, add, 7, entry, 0).rc;
}

/* _i: 0 = v2, 1 = v3. What fails, and that it fails alone:
 *   a plain-text client's ADDs and READs on a bookie requiring TLS: EUA, connection kept;
 *   a client trusting another CA (the bookie's certificate does not verify), a client
 *   without a certificate (the bookie requires one), a TLS client of a bookie without TLS
 *   (START_TLS refused): -MG_EIO, as a failed connect;
 *   a good client afterwards: EOK, read back; and on a bookie offering TLS without requiring
 *   it, plain text is still served. */
START_TEST(test_tls_refusals)
{
    use_v3 = _i == 1;
    env_open(true);
    tls_pki();
    bs[0] = tls_bookie(0, true, true);   /* requires TLS */
    bs[1] = tls_bookie(1, false, false); /* no TLS */
    bs[2] = tls_bookie(2, true, false);  /* offers TLS */
    tl_wait_bookies(meta, 3);
    struct bkc_client *plain = client_new(3, 2, 2, 5000);
    for (int e = 0; e < 3; e++)
        ck_assert_int_eq(raw_op(plain, bs[0], true, e), WIRE_BK_EUA);
    ck_assert_int_eq(raw_op(plain, bs[0], false, 0), WIRE_BK_EUA);
    ck_assert_int_eq(raw_op(plain, bs[2], true, 0), WIRE_BK_EOK);
    struct bkc_client *rogue = tls_client("other", NULL);
    ck_assert_int_eq(raw_op(rogue, bs[0], true, 0), -MG_EIO);
    struct bkc_client *anon = tls_client(".", NULL);
    ck_assert_int_eq(raw_op(anon, bs[0], true, 0), -MG_EIO);
    struct bkc_client *good = tls_client(".", "broker");
    ck_assert_int_eq(raw_op(good, bs[1], true, 0), -MG_EIO);
    ck_assert_int_eq(raw_op(good, bs[0], true, 0), WIRE_BK_EOK);
    ck_assert_int_eq(raw_op(good, bs[0], false, 0), WIRE_BK_EOK);
    ck_assert_int_eq(raw_op(good, bs[2], true, 1), WIRE_BK_EOK);
    bkc_client_free(plain);
    bkc_client_free(rogue);
    bkc_client_free(anon);
    bkc_client_free(good);
    bookies_stop();
}
END_TEST

/* A TLS connection idle for longer than the START_TLS bound (startTLSTimeoutSecs, 10 s in
 * bkc_conn.c) is still the one the next request uses: that bound covers the start only. */
START_TEST(test_tls_idle)
{
    env_open(true);
    tls_pki();
    bs[0] = tls_bookie(0, true, true);
    tl_wait_bookies(meta, 1);
    cl = tls_client(".", "broker");
    ck_assert_int_eq(raw_op(cl, bs[0], true, 0), WIRE_BK_EOK);
    char id[64];
    struct bkc_bookie *bk = bkc_bookie_get(cl, tl_bookie_id(bs[0], id, sizeof id));
    uint64_t gen = bk->gen;
    tl_run_for(loop, 11000);
    ck_assert_uint_eq(bk->gen, gen); /* not dropped meanwhile */
    ck_assert_int_eq(raw_op(cl, bs[0], true, 1), WIRE_BK_EOK);
    ck_assert_uint_eq(bk->gen, gen);
    bookies_stop();
}
END_TEST

/* A bookie whose TLS keys cannot be honoured does not start, naming the key. */
START_TEST(test_tls_bookie_config)
{
    env_open(true);
    tls_pki();
    char cert[PATH_MAX], key[PATH_MAX], j[PATH_MAX], l[PATH_MAX];
    tls_path(cert, "bookie.pem");
    tls_path(key, "bookie.key");
    struct bk_options o;
    bk_options_default(&o);
    o.bind_address = "127.0.0.1";
    o.port = 0;
    snprintf(j, sizeof j, "%s/bad/journal", dir);
    snprintf(l, sizeof l, "%s/bad/ledgers", dir);
    o.journal_dir = j;
    o.ledger_dir = l;
    struct bk_server *s = NULL;
    o.tls_provider_factory = TLS_FACTORY; /* no certificate */
    ck_assert_int_eq(bk_server_new(base, &o, &s), -MG_EINVAL);
    o.tls_cert = cert;
    o.tls_key = key;
    o.tls_key_type = "JKS"; /* not read */
    ck_assert_int_eq(bk_server_new(base, &o, &s), -MG_EINVAL);
    o.tls_key_type = "PEM";
    o.tls_client_auth = true; /* without a trust store */
    ck_assert_int_eq(bk_server_new(base, &o, &s), -MG_EINVAL);
    o.tls_client_auth = false;
    o.tls_provider_factory = NULL;
    o.auth_provider_factory = BK_TLS_AUTH_FACTORY; /* requires TLS that is not configured */
    ck_assert_int_eq(bk_server_new(base, &o, &s), -MG_EINVAL);
    ck_assert_ptr_null(s);
    /* the client side: a certificate without its key, a format other than PEM */
    struct bkc_config cfg;
    tl_bkc_config(&cfg, 1, 1, 1, 5000);
    cfg.tls.on = true;
    cfg.tls.cert = cert;
    struct bkc_client *c = NULL;
    ck_assert_int_eq(bkc_client_new(loop, meta, &cfg, &c), -MG_EINVAL);
    cfg.tls.key = key; /* a pair now, but declared JKS */
    cfg.tls.key_type = "JKS";
    ck_assert_int_eq(bkc_client_new(loop, meta, &cfg, &c), -MG_EINVAL);
    cfg.tls.key_type = "PEM";
    ck_assert_int_eq(bkc_client_new(loop, meta, &cfg, &c), 0);
    bkc_client_free(c);
    env_close();
}
END_TEST

/* ---- tests: the in-process transport (bookie/bk_local.c) ------------------------------------ */

/* A client of the in-process transport of bs[0..n-1]. */
static struct bkc_client *local_client(int e, int w, int a, int timeout_ms)
{
    struct bkc_config cfg;
    tl_bkc_config(&cfg, e, w, a, timeout_ms);
    cfg.transport = bk_local_transport(loc);
    return client_of(&cfg);
}

/* n in-process bookies, the transport to them and a client of it (E=e, Qw=Qa=min(e, 2)). */
static void local_start(int n, int e)
{
    env_open(true);
    for (int i = 0; i < n; i++)
        bs[i] = real_bookie(i);
    tl_wait_bookies(meta, n);
    loc = bk_local_new(bs, n);
    int q = e < 2 ? e : 2;
    cl = local_client(e, q, q, 5000);
}

static uint64_t journal_adds(struct bk_server *s)
{
    struct bk_stats st;
    bk_server_stats(s, &st);
    return st.adds;
}

static bool journal_has_queued(const void *arg)
{
    struct bk_journal *j = (struct bk_journal *)arg;
    pthread_mutex_lock(&j->lock);
    bool q = j->q_head != NULL;
    pthread_mutex_unlock(&j->lock);
    return q;
}

/* The bookie's bookie_journal_JOURNAL_ADD_ENTRY_count{success="true"}, from its metrics. */
static uint64_t metrics_adds(struct bk_server *s)
{
    struct evbuffer *m = evbuffer_new();
    bk_metrics(s, m);
    evbuffer_add(m, "", 1);
    const char *txt = (const char *)evbuffer_pullup(m, -1);
    const char *key = "bookie_journal_JOURNAL_ADD_ENTRY_count{success=\"true\"} ";
    const char *at = strstr(txt, key);
    ck_assert_ptr_nonnull(at);
    uint64_t v = strtoull(at + strlen(key), NULL, 10);
    evbuffer_free(m);
    return v;
}

struct journal_want {
    struct bk_server *s;
    uint64_t adds;
};

static bool journal_reached(const void *arg)
{
    const struct journal_want *jw = arg;
    return journal_adds(jw->s) >= jw->adds;
}

/* Adds and reads reach the bookies without a connection; every entry is journalled once per
 * copy (the bookie's add count) and reads back with its digest verified. */
START_TEST(test_local_roundtrip)
{
    local_start(3, 3);
    struct bkc_ledger *w = tl_bkc_create(cl, 0);
    int n = 7 + (int)(mg_mono_us() % 20);
    tl_adds_all(&b, w, n);
    for (int i = 0; i < n; i++) {
        ck_assert_msg(b.status[i] == 0, "add %d: %s", i, b.req[i].errmsg);
        ck_assert_int_eq(b.order[i], i);
    }
    tl_bkc_check_read(w, 0, n - 1);
    uint64_t adds = 0;
    for (int i = 0; i < 3; i++) {
        ck_assert_msg(bs[i]->conns == NULL, "bookie %d has a connection", i);
        adds += journal_adds(bs[i]);
        char id[64];
        struct bkc_bookie *bk = mg_map_get_str(&cl->bookies, tl_bookie_id(bs[i], id, sizeof id));
        ck_assert_ptr_nonnull(bk);
        ck_assert(bk->in_process);
    }
    ck_assert_uint_eq(adds, (uint64_t)n * 2); /* Qw copies */
    ck_assert_uint_eq(metrics_adds(bs[0]) + metrics_adds(bs[1]) + metrics_adds(bs[2]),
                      (uint64_t)n * 2);
    /* the client's per-bookie add statistics count them as over TCP */
    size_t pos = 0;
    struct bkc_bookie_stats bst;
    int64_t counted = 0;
    while (bkc_client_bookie_stats_next(cl, &pos, &bst))
        counted += bst.add_count;
    ck_assert_int_eq(counted, (int64_t)n * 2);
    bkc_ledger_free(w);
    bookies_stop();
}
END_TEST

/* An add is acknowledged only once the journal group holding it is synced: with the journal
 * thread held, the record waits in its queue and the add stays pending; released, it is
 * synced, then acknowledged. */
START_TEST(test_local_ack_after_sync)
{
    local_start(1, 1);
    struct bkc_ledger *w = tl_bkc_create(cl, 0);
    tl_adds_all(&b, w, 1);
    struct bk_journal *j = &bs[0]->journal;
    uint64_t fsyncs = atomic_load(&j->st_fsyncs);
    bk_journal_hold(j, true);
    int more = 2 + (int)(mg_mono_us() % 5);
    tl_adds_n(&b, w, more);
    ck_assert(tl_until(loop, journal_has_queued, j, 5000));
    tl_passes(base, 20);
    ck_assert_int_eq(b.n_done, 1); /* not acknowledged while not synced */
    ck_assert_uint_eq(atomic_load(&j->st_fsyncs), fsyncs);
    bk_journal_hold(j, false);
    tl_adds_wait(&b);
    for (int i = 0; i <= more; i++)
        ck_assert_int_eq(b.status[i], 0);
    ck_assert_uint_gt(atomic_load(&j->st_fsyncs), fsyncs);
    ck_assert_uint_eq(journal_adds(bs[0]), (uint64_t)more + 1);
    tl_bkc_check_read(w, 0, more);
    bkc_ledger_free(w);
    bookies_stop();
}
END_TEST

/* Recovery through the transport: its fencing reads fence the ledger on the bookies (the
 * writer's next add fails with -MG_EFENCED) and its recovery reads find every acknowledged
 * entry. */
START_TEST(test_local_fence_recovery)
{
    local_start(3, 3);
    struct bkc_ledger *w = tl_bkc_create(cl, 0);
    int n = 3 + (int)(mg_mono_us() % 10);
    tl_adds_all(&b, w, n);
    struct bkc_client *c2 = local_client(3, 2, 2, 5000);
    tl_bkc_check_ledger(c2, bkc_ledger_id(w), true, n - 1);
    tl_adds_fenced(&b, w);
    bkc_client_free(c2);
    bkc_ledger_free(w);
    bookies_stop();
}
END_TEST

/* A read-only bookie refuses adds (EREADONLY) but high-priority ones when only disk space is
 * short, and still serves reads; unknown entries and ledgers get their codes. */
START_TEST(test_local_readonly)
{
    local_start(1, 1);
    struct bk_server *s = bs[0];
    ck_assert_int_eq(tp_op(cl, s, true, 9, 0, 0).rc, WIRE_BK_EOK);
    bk_server_set_readonly(s, BK_RO_DISK, true, "test");
    ck_assert_int_eq(tp_op(cl, s, true, 9, 1, 0).rc, WIRE_BK_EREADONLY);
    ck_assert_int_eq(tp_op(cl, s, true, 9, 1, WIRE_BK_FLAG_HIGH_PRIORITY).rc, WIRE_BK_EOK);
    struct raw_op r = tp_op(cl, s, false, 9, 0, 0);
    ck_assert_int_eq(r.rc, WIRE_BK_EOK);
    ck_assert_uint_eq(r.body_len, WIRE_BK_ENTRY_HDR_LEN + 5);
    ck_assert_int_eq(tp_op(cl, s, false, 9, 5, 0).rc, WIRE_BK_ENOENTRY);
    bk_server_set_readonly(s, BK_RO_DISK, false, "test");
    /* a fencing read; later adds are fenced, recovery adds are not */
    ck_assert_int_eq(tp_op(cl, s, false, 9, -1, WIRE_BK_FLAG_FENCE).rc, WIRE_BK_EOK);
    ck_assert_int_eq(tp_op(cl, s, true, 9, 2, 0).rc, WIRE_BK_EFENCED);
    ck_assert_int_eq(tp_op(cl, s, true, 9, 2, WIRE_BK_FLAG_RECOVERY_ADD).rc, WIRE_BK_EOK);
    bookies_stop();
}
END_TEST

/* A client freed with adds in the (held) journal: its requests complete with -MG_ECANCELED,
 * the records are still journalled and their answers dropped (no leak under ASan). A bookie
 * freed with adds in its journal answers them (synced) and later requests fail as refused
 * (-MG_EIO). */
START_TEST(test_local_free_pending)
{
    local_start(1, 1);
    struct bkc_ledger *w = tl_bkc_create(cl, 0);
    struct bk_journal *j = &bs[0]->journal;
    bk_journal_hold(j, true);
    int n = 2 + (int)(mg_mono_us() % 5);
    tl_adds_n(&b, w, n);
    ck_assert(tl_until(loop, journal_has_queued, j, 5000));
    bkc_client_free(cl);
    cl = NULL;
    for (int i = 0; i < n; i++)
        ck_assert_int_eq(b.status[i], -MG_ECANCELED);
    bk_journal_hold(j, false);
    struct journal_want jw = {bs[0], (uint64_t)n};
    ck_assert(tl_until(loop, journal_reached, &jw, 5000));
    tl_passes(base, 5); /* the answers of the forgotten ops arrive, and free them */
    (void)w;            /* freed with its client */

    /* the bookie goes with requests in its journal */
    cl = local_client(1, 1, 1, 5000);
    char id[64];
    struct bkc_bookie *bk = cl->tp.ops->bookie_get(cl, tl_bookie_id(bs[0], id, sizeof id));
    uint8_t key[WIRE_BK_MASTER_KEY_LEN] = {4};
    uint8_t ehdr[WIRE_BK_ENTRY_HDR_LEN];
    struct wire_bk_entry_hdr h = {.ledger = 11, .entry = 0, .lac = -1, .length = 1};
    wire_bk_entry_hdr_put(ehdr, &h);
    struct evbuffer *payload = evbuffer_new();
    evbuffer_add(payload, "x", 1);
    struct raw_op r0 = {0};
    bk_journal_hold(j, true);
    cl->tp.ops->add(bk, 11, 0, 0, key, ehdr, sizeof ehdr, payload, raw_op_cb, &r0, 0);
    ck_assert(tl_until(loop, journal_has_queued, j, 5000));
    bk_server_free(bs[0]); /* drains the journal (the hold gives way to the stop) */
    bs[0] = NULL;
    ck_assert(tl_until_flag(loop, &r0.done, 5000));
    ck_assert_int_eq(r0.rc, WIRE_BK_EOK);
    struct raw_op r1 = {0};
    cl->tp.ops->add(bk, 11, 1, 0, key, ehdr, sizeof ehdr, payload, raw_op_cb, &r1, 0);
    ck_assert(!r1.done); /* never inside add */
    ck_assert(tl_until_flag(loop, &r1.done, 5000));
    ck_assert_int_eq(r1.rc, -MG_EIO);
    evbuffer_free(payload);
    bookies_stop();
}
END_TEST

/* A request the journal does not complete in time fails with -MG_ETIMEDOUT at the client's
 * deadline; its record is still journalled later, its answer dropped (no leak under ASan), and
 * the bookie serves the next request. */
START_TEST(test_local_timeout)
{
    env_open(true);
    bs[0] = real_bookie(0);
    tl_wait_bookies(meta, 1);
    loc = bk_local_new(bs, 1);
    int timeout_ms = 200 + (int)(mg_mono_us() % 200);
    cl = local_client(1, 1, 1, timeout_ms);
    struct bk_journal *j = &bs[0]->journal;
    bk_journal_hold(j, true);
    uint64_t t0 = mg_loop_mono_ms(loop);
    struct raw_op r = tp_op(cl, bs[0], true, 13, 0, 0);
    ck_assert_int_eq(r.rc, -MG_ETIMEDOUT);
    ck_assert_uint_ge(mg_loop_mono_ms(loop) - t0, (uint64_t)timeout_ms);
    ck_assert_uint_eq(journal_adds(bs[0]), 0);
    bk_journal_hold(j, false);
    struct journal_want jw = {bs[0], 1};
    ck_assert(tl_until(loop, journal_reached, &jw, 5000));
    ck_assert_int_eq(tp_op(cl, bs[0], true, 13, 1, 0).rc, WIRE_BK_EOK);
    ck_assert_int_eq(tp_op(cl, bs[0], false, 13, 0, 0).rc, WIRE_BK_EOK); /* the late one */
    bookies_stop();
}
END_TEST

/* A deadline for a test whose loop is its own thread: unless stopped within ms, it opens the
 * storage thread's gate, so that a loop stuck waiting for the checkpoint held there fails the
 * test (fired) instead of hanging it. */
struct gate_watchdog {
    pthread_t thread;
    pthread_mutex_t lock;
    pthread_cond_t cond;
    bool stop, fired;
    struct bk_store *store;
    uint64_t deadline_ms; /* mg_mono_us / 1000 */
};

static void *gate_watchdog_main(void *arg)
{
    struct gate_watchdog *wd = arg;
    pthread_mutex_lock(&wd->lock);
    while (!wd->stop) {
        uint64_t now = mg_mono_us() / 1000;
        if (now >= wd->deadline_ms) {
            wd->fired = true;
            bk_store_gate(wd->store, BK_GATE_NONE);
            break;
        }
        struct timespec ts;
        clock_gettime(CLOCK_REALTIME, &ts);
        uint64_t left = wd->deadline_ms - now;
        ts.tv_sec += (time_t)(left / 1000);
        ts.tv_nsec += (long)(left % 1000) * 1000000L;
        if (ts.tv_nsec >= 1000000000L) {
            ts.tv_sec++;
            ts.tv_nsec -= 1000000000L;
        }
        pthread_cond_timedwait(&wd->cond, &wd->lock, &ts);
    }
    pthread_mutex_unlock(&wd->lock);
    return NULL;
}

static void gate_watchdog_start(struct gate_watchdog *wd, struct bk_store *store, uint64_t ms)
{
    memset(wd, 0, sizeof *wd);
    pthread_mutex_init(&wd->lock, NULL);
    pthread_cond_init(&wd->cond, NULL);
    wd->store = store;
    wd->deadline_ms = mg_mono_us() / 1000 + ms;
    ck_assert_int_eq(pthread_create(&wd->thread, NULL, gate_watchdog_main, wd), 0);
}

static bool gate_watchdog_fired(struct gate_watchdog *wd)
{
    pthread_mutex_lock(&wd->lock);
    bool f = wd->fired;
    pthread_mutex_unlock(&wd->lock);
    return f;
}

static void gate_watchdog_stop(struct gate_watchdog *wd)
{
    pthread_mutex_lock(&wd->lock);
    wd->stop = true;
    pthread_cond_signal(&wd->cond);
    pthread_mutex_unlock(&wd->lock);
    pthread_join(wd->thread, NULL);
    pthread_cond_destroy(&wd->cond);
    pthread_mutex_destroy(&wd->lock);
}

static bool gate_parked(const void *arg)
{
    return bk_store_gate_parked((struct bk_store *)arg);
}

static bool cache_waited(const void *arg)
{
    const struct bk_server *s = arg;
    return atomic_load(&s->store.flush_waits_seen) > 0;
}

/* Both halves of the write cache full (the checkpoint of one held at its gate): in-process
 * adds wait, journalled and in order, for that checkpoint, and the loop does not: a read
 * through the transport is answered meanwhile (on the code before, the loop waited inside
 * the journal's completion until the watchdog opened the gate). Released, every add is
 * acknowledged, EOK and in order, and reads back. */
START_TEST(test_local_cache_full)
{
    env_open(true);
    struct bk_options o;
    bk_options_default(&o);
    o.meta = meta;
    o.disk_usage_threshold_pct = 100;
    o.write_cache_max = 512; /* halves of 256 bytes: a few entries each */
    bs[0] = tl_bookie_start(base, dir, 0, &o);
    struct bk_server *s = bs[0];
    tl_wait_bookies(meta, 1);
    loc = bk_local_new(bs, 1);
    cl = local_client(1, 1, 1, 60000);
    struct bkc_ledger *w = tl_bkc_create(cl, 0);
    bk_store_gate(&s->store, BK_GATE_BEFORE_WRITE);
    struct gate_watchdog wd;
    gate_watchdog_start(&wd, &s->store, 20000);
    int n = 24 + (int)(mg_mono_us() % 16);
    tl_adds_n(&b, w, n);
    /* every add journalled (durable), some waiting for the cache */
    ck_assert(tl_until(loop, cache_waited, s, 30000));
    struct journal_want jw = {s, (uint64_t)n};
    ck_assert(tl_until(loop, journal_reached, &jw, 30000));
    ck_assert_msg(!gate_watchdog_fired(&wd), "the loop stopped while adds waited for the cache");
    /* the storage thread reaches the gate on its own time */
    ck_assert(tl_until(loop, gate_parked, &s->store, 30000));
    ck_assert_int_lt(b.n_done, n);
    ck_assert_uint_gt(s->n_waiting, 0);
    ck_assert_uint_le(s->n_waiting, (size_t)n);
    /* the loop goes on: a read through the transport, of an entry in the half held */
    struct raw_op r = tp_op(cl, s, false, bkc_ledger_id(w), 0, 0);
    ck_assert_int_eq(r.rc, WIRE_BK_EOK);
    ck_assert(!gate_watchdog_fired(&wd));
    ck_assert_int_lt(b.n_done, n);
    for (int i = 0; i < b.n_done; i++) /* those answered: the first ones */
        ck_assert_int_eq(b.order[i], i);
    bk_store_gate(&s->store, BK_GATE_NONE);
    gate_watchdog_stop(&wd);
    tl_adds_wait(&b);
    for (int i = 0; i < n; i++) {
        ck_assert_msg(b.status[i] == 0, "add %d: %s", i, b.req[i].errmsg);
        ck_assert_int_eq(b.order[i], i);
    }
    ck_assert_uint_eq(s->n_waiting, 0);
    tl_bkc_check_read(w, 0, n - 1);
    bkc_ledger_free(w);
    bookies_stop();
}
END_TEST

/* Bookies outside the registry are reached over TCP by the same transport: a ledger over one
 * in-process bookie and one TCP bookie. */
START_TEST(test_local_mixed_tcp)
{
    env_open(true);
    bs[0] = real_bookie(0);
    bs[1] = real_bookie(1);
    tl_wait_bookies(meta, 2);
    loc = bk_local_new(bs, 1);
    cl = local_client(2, 2, 2, 5000);
    struct bkc_ledger *w = tl_bkc_create(cl, 0);
    int n = 3 + (int)(mg_mono_us() % 8);
    tl_adds_all(&b, w, n);
    for (int i = 0; i < n; i++)
        ck_assert_int_eq(b.status[i], 0);
    tl_bkc_check_read(w, 0, n - 1);
    ck_assert(bs[0]->conns == NULL);
    ck_assert(bs[1]->conns != NULL);
    ck_assert_uint_eq(journal_adds(bs[0]), (uint64_t)n);
    ck_assert_uint_eq(journal_adds(bs[1]), (uint64_t)n);
    bkc_ledger_free(w);
    bookies_stop();
}
END_TEST

static Suite *bkc_suite(void)
{
    Suite *s = suite_create("bkc_real");
    TCase *t = tl_tcase(s, "tcp", 60, NULL, NULL);
    tl_add(t, test_oversized_response, test_read_timeout_failover, test_bulk_add_writes,
           test_add_responses_one_read);
    TCase *real = tl_tcase(s, "real_bookies", 120, NULL, NULL);
    tcase_add_loop_test(real, test_real_bookies_inprocess, 0, 2);
    tcase_add_loop_test(real, test_real_bookie_processes_sigkill, 0, 2);
    tcase_add_loop_test(real, test_real_bookies_sizes_recovery, 0, 2);
    tcase_add_loop_test(real, test_frame_limit, 0, 2);
    tl_add(real, test_v3_frames, test_bookie_bulk_read_writes);
    TCase *tls = tl_tcase(s, "tls", 120, NULL, NULL);
    tcase_add_loop_test(tls, test_tls_bookies, 0, 2);
    tcase_add_loop_test(tls, test_tls_refusals, 0, 2);
    tl_add(tls, test_tls_bookie_config, test_tls_idle);
    TCase *inproc = tl_tcase(s, "in_process", 120, NULL, NULL);
    tl_add(inproc, test_local_roundtrip, test_local_ack_after_sync, test_local_fence_recovery,
           test_local_readonly, test_local_free_pending, test_local_timeout, test_local_mixed_tcp,
           test_local_cache_full);
    return s;
}

int main(void)
{
    return tl_run(bkc_suite());
}
