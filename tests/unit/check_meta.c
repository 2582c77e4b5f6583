/*
 * check_meta.c - one contract suite for every metadata store backend, plus the embedded
 * store's durability tests.
 *
 * The contract (a table of test functions) runs once per backend, each in its own TCase:
 * "memory", "embedded" (a fresh mkdtemp data dir per test) and "zk" when the environment
 * variable MAGNETAR_TEST_ZK=host:port names a ZooKeeper (each test gets its own chroot,
 * removed afterwards; tests/integration/meta_zk.sh starts one). Each test drives the
 * store's event_base until its callbacks ran. Run under ASan with CK_FORK=no.
 */
#include "lib/tl.h"
#include "meta/meta.h"
#include "meta/meta_int.h"
#include "util/alloc.h"
#include "util/err.h"
#include "util/loop.h"

#include <check.h>
#include <errno.h>
#include <event2/event.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <unistd.h>

struct backend {
    const char *name;
    bool peer;    /* meta_open_peer works: ephemeral checks use a second session */
    bool durable; /* reopening sees the data */
};

static const struct backend backends[] = {
    {.name = "memory", .peer = true, .durable = false},
    {.name = "embedded", .peer = false, .durable = true},
    {.name = "zk", .peer = true, .durable = true},
};

static const struct backend *cur;
static struct event_base *base;
static struct mg_loop *loop;
static struct meta_store *st;
static char *tmpdir; /* the test's files (tl_tmpdir) */
static char datadir[300];
static char zk_chroot[128];
static char url[512];
static int session_events[4];
static uint64_t snapshot_bytes; /* embedded: 0 = default */

/* ---- running the loop ------------------------------------------------------------------ */

/* Run the loop until *flag or ms elapsed; returns *flag. */
static bool run_until(const bool *flag, int ms)
{
    return tl_until_flag(loop, flag, (uint64_t)ms);
}

struct waiter {
    bool done;
    int status;
    int calls;
    int order; /* of this callback among all callbacks of the program */
};

static int n_callbacks;

static void req_cb(struct meta_req *req, int status)
{
    struct waiter *w = req->data;
    w->done = true;
    w->status = status;
    w->calls++;
    w->order = n_callbacks++;
}

/* Every fdatasync(2) of this program goes through here (a definition in the program takes
 * the place of libc's), so that t_emb_group_commit can count the embedded store's syncs. */
static int n_fdatasync;

int fdatasync(int fd)
{
    n_fdatasync++;
    return (int)syscall(SYS_fdatasync, fd);
}

/* Issue with meta_*, wait for the callback; returns the status (or the synchronous error).
 * req's results stay for the caller (meta_req_fini). A GNU statement expression, marked
 * __extension__ for -Wpedantic (tests may use what gcc and clang both have). */
#define SYNC(req, call)                                                                            \
    __extension__({                                                                                \
        struct waiter w_ = {0};                                                                    \
        memset((req), 0, sizeof *(req));                                                           \
        (req)->data = &w_;                                                                         \
        int rc_ = (call);                                                                          \
        if (rc_ == 0) {                                                                            \
            ck_assert_msg(run_until(&w_.done, 15000), "callback did not run");                     \
            ck_assert_int_eq(w_.calls, 1);                                                         \
            rc_ = w_.status;                                                                       \
        }                                                                                          \
        rc_;                                                                                       \
    })

static int put(struct meta_store *m, const char *path, const void *v, size_t len, int64_t ver,
               int flags, struct meta_req *out)
{
    struct meta_req req;
    int rc = SYNC(&req, meta_put(m, path, v, len, ver, flags, &req, req_cb));
    if (out)
        *out = req;
    else
        meta_req_fini(&req);
    return rc;
}

static int put_s(const char *path, const char *v, int64_t ver, int flags)
{
    return put(st, path, v, strlen(v), ver, flags, NULL);
}

/* Issue a create of path holding v (len bytes) into *r, whose completion *w records (both
 * zeroed first); it must be accepted. The caller waits for w->done and finishes r. */
static void put_start(struct meta_req *r, struct waiter *w, const char *path, const void *v,
                      size_t len)
{
    memset(r, 0, sizeof *r);
    memset(w, 0, sizeof *w);
    r->data = w;
    ck_assert_int_eq(meta_put(st, path, v, len, META_VERSION_NONE, 0, r, req_cb), 0);
}

static int get(struct meta_store *m, const char *path, struct meta_req *out)
{
    struct meta_req req;
    int rc = SYNC(&req, meta_get(m, path, &req, req_cb));
    if (out)
        *out = req;
    else
        meta_req_fini(&req);
    return rc;
}

static int del(struct meta_store *m, const char *path, int64_t ver)
{
    struct meta_req req;
    int rc = SYNC(&req, meta_delete(m, path, ver, &req, req_cb));
    meta_req_fini(&req);
    return rc;
}

static int exists(struct meta_store *m, const char *path, struct meta_stat *out)
{
    struct meta_req req;
    int rc = SYNC(&req, meta_exists(m, path, &req, req_cb));
    if (out)
        *out = req.stat;
    meta_req_fini(&req);
    return rc;
}

static int children(struct meta_store *m, const char *path, struct meta_req *out)
{
    struct meta_req req;
    int rc = SYNC(&req, meta_children(m, path, &req, req_cb));
    *out = req;
    return rc;
}

struct wrec {
    bool fired;
    int count;
    enum meta_watch_event ev;
    char path[256];
};

static void watch_cb(struct meta_store *m, const char *path, enum meta_watch_event ev, void *data)
{
    struct wrec *r = data;
    r->fired = true;
    r->count++;
    r->ev = ev;
    snprintf(r->path, sizeof r->path, "%s", path);
}

static void session_cb(struct meta_store *m, enum meta_session_event ev, void *data)
{
    session_events[ev]++;
}

/* ---- fixtures -------------------------------------------------------------------------- */

static int open_store(struct meta_store **out)
{
    struct meta_options o = {
        .url = url,
        .data_dir = datadir,
        .session_timeout_ms = 10000,
        .op_timeout_ms = 10000,
        .session_cb = session_cb,
        .snapshot_log_bytes = snapshot_bytes,
    };
    return meta_open(loop, &o, out);
}

/* The zk test root: a non-chroot session creates or removes it. */
static void zk_rm_r(struct meta_store *m, const char *path)
{
    struct meta_req req;
    if (children(m, path, &req) == 0) {
        for (int i = 0; i < req.n_children; i++) {
            char sub[512];
            snprintf(sub, sizeof sub, "%s/%s", path, req.children[i]);
            zk_rm_r(m, sub);
        }
    }
    meta_req_fini(&req);
    del(m, path, META_VERSION_ANY);
}

static struct meta_store *zk_admin(void)
{
    char u[300];
    snprintf(u, sizeof u, "zk:%s", getenv("MAGNETAR_TEST_ZK"));
    struct meta_options o = {.url = u, .op_timeout_ms = 10000};
    struct meta_store *m = NULL;
    ck_assert_int_eq(meta_open(loop, &o, &m), 0);
    return m;
}

static void setup_common(void)
{
    base = event_base_new();
    loop = mg_loop_new(base);
    ck_assert_ptr_nonnull(base);
    tmpdir = tl_tmpdir("check_meta");
    snprintf(datadir, sizeof datadir, "%s/data", tmpdir);
    memset(session_events, 0, sizeof session_events);
    snapshot_bytes = 0;
    zk_chroot[0] = '\0';
    if (strcmp(cur->name, "zk") == 0) {
        static int seq;
        snprintf(zk_chroot, sizeof zk_chroot, "/check_meta/%d-%lld-%d", (int)getpid(),
                 (long long)mg_wall_ms(), seq++);
        struct meta_store *a = zk_admin();
        ck_assert_int_eq(put(a, zk_chroot, "", 0, META_VERSION_NONE, META_CREATE_PARENTS, NULL), 0);
        meta_close(a);
        snprintf(url, sizeof url, "zk:%s%s", getenv("MAGNETAR_TEST_ZK"), zk_chroot);
    } else {
        snprintf(url, sizeof url, "%s", cur->name);
    }
    ck_assert_int_eq(open_store(&st), 0);
}

static void teardown(void)
{
    meta_close(st);
    st = NULL;
    if (zk_chroot[0]) {
        struct meta_store *a = zk_admin();
        zk_rm_r(a, zk_chroot);
        meta_close(a);
    }
    tl_tmpdir_free(&tmpdir);
    mg_loop_free(loop);
    event_base_free(base);
    base = NULL;
}

static void setup_memory(void)
{
    cur = &backends[0];
    setup_common();
}

static void setup_embedded(void)
{
    cur = &backends[1];
    setup_common();
}

static void setup_zk(void)
{
    cur = &backends[2];
    setup_common();
}

/* Reopen the primary store (durable backends). */
static void reopen(void)
{
    meta_close(st);
    st = NULL;
    ck_assert_int_eq(open_store(&st), 0);
}

/* ---- the contract ----------------------------------------------------------------------- */

START_TEST(t_create_get_update)
{
    struct meta_req r;
    ck_assert_int_eq(put(st, "/a", "hello", 5, META_VERSION_NONE, 0, &r), 0);
    ck_assert_str_eq(r.path, "/a");
    ck_assert_int_eq(r.stat.version, 0);
    meta_req_fini(&r);
    ck_assert_int_eq(get(st, "/a", &r), 0);
    ck_assert_uint_eq(r.len, 5);
    ck_assert_str_eq(r.value, "hello");
    ck_assert_int_eq(r.stat.version, 0);
    ck_assert(!r.stat.ephemeral);
    ck_assert_int_gt(r.stat.ctime_ms, 0);
    meta_req_fini(&r);
    ck_assert_int_eq(put_s("/a", "v1", META_VERSION_ANY, 0), 0);
    ck_assert_int_eq(put(st, "/a", "v2", 2, 1, 0, &r), 0);
    ck_assert_int_eq(r.stat.version, 2);
    meta_req_fini(&r);
    ck_assert_int_eq(get(st, "/a", &r), 0);
    ck_assert_str_eq(r.value, "v2");
    ck_assert_int_eq(r.stat.version, 2);
    ck_assert_int_ge(r.stat.mtime_ms, r.stat.ctime_ms);
    meta_req_fini(&r);
    struct meta_stat s;
    ck_assert_int_eq(exists(st, "/a", &s), 0);
    ck_assert_int_eq(s.version, 2);
    ck_assert_int_eq(s.num_children, 0);
    ck_assert_int_eq(exists(st, "/nope", NULL), -MG_ENOTFOUND);
    ck_assert_int_eq(get(st, "/nope", NULL), -MG_ENOTFOUND);
    /* ANY creates when missing */
    ck_assert_int_eq(put_s("/b", "x", META_VERSION_ANY, 0), 0);
    ck_assert_int_eq(exists(st, "/b", &s), 0);
    ck_assert_int_eq(s.version, 0);
}
END_TEST

START_TEST(t_create_only_and_cas)
{
    ck_assert_int_eq(put_s("/c", "1", META_VERSION_NONE, 0), 0);
    ck_assert_int_eq(put_s("/c", "2", META_VERSION_NONE, 0), -MG_EEXIST);
    ck_assert_int_eq(put_s("/c", "2", 0, 0), 0);
    ck_assert_int_eq(put_s("/c", "3", 0, 0), -MG_EBUSY); /* stale */
    ck_assert_int_eq(put_s("/c", "3", 7, 0), -MG_EBUSY);
    ck_assert_int_eq(put_s("/missing", "3", 0, 0), -MG_ENOTFOUND);
    struct meta_req r;
    ck_assert_int_eq(get(st, "/c", &r), 0);
    ck_assert_str_eq(r.value, "2");
    ck_assert_int_eq(r.stat.version, 1);
    meta_req_fini(&r);
}
END_TEST

START_TEST(t_delete)
{
    ck_assert_int_eq(put_s("/d", "1", META_VERSION_NONE, 0), 0);
    ck_assert_int_eq(put_s("/d", "2", META_VERSION_ANY, 0), 0);
    ck_assert_int_eq(del(st, "/d", 0), -MG_EBUSY);
    ck_assert_int_eq(del(st, "/d", 1), 0);
    ck_assert_int_eq(get(st, "/d", NULL), -MG_ENOTFOUND);
    ck_assert_int_eq(del(st, "/d", META_VERSION_ANY), -MG_ENOTFOUND);
    ck_assert_int_eq(put_s("/d", "again", META_VERSION_NONE, 0), 0);
    ck_assert_int_eq(del(st, "/d", META_VERSION_ANY), 0);
    /* non-empty */
    ck_assert_int_eq(put_s("/p/q", "", META_VERSION_NONE, META_CREATE_PARENTS), 0);
    ck_assert_int_eq(del(st, "/p", META_VERSION_ANY), -MG_ENOTALLOWED);
    ck_assert_int_eq(del(st, "/p/q", META_VERSION_ANY), 0);
    ck_assert_int_eq(del(st, "/p", 0), 0);
}
END_TEST

START_TEST(t_children_sorted)
{
    ck_assert_int_eq(put_s("/ch", "", META_VERSION_NONE, 0), 0);
    const char *names[] = {"b", "a", "c", "aa", "B", "a0"};
    for (size_t i = 0; i < 6; i++) {
        char p[64];
        snprintf(p, sizeof p, "/ch/%s", names[i]);
        ck_assert_int_eq(put_s(p, names[i], META_VERSION_NONE, 0), 0);
    }
    struct meta_req r;
    ck_assert_int_eq(children(st, "/ch", &r), 0);
    ck_assert_int_eq(r.n_children, 6);
    const char *want[] = {"B", "a", "a0", "aa", "b", "c"};
    for (int i = 0; i < 6; i++)
        ck_assert_str_eq(r.children[i], want[i]);
    ck_assert_int_eq(r.stat.num_children, 6);
    meta_req_fini(&r);
    ck_assert_int_eq(children(st, "/ch/a", &r), 0);
    ck_assert_int_eq(r.n_children, 0);
    meta_req_fini(&r);
    ck_assert_int_eq(children(st, "/nothing", &r), -MG_ENOTFOUND);
    meta_req_fini(&r);
    struct meta_stat s;
    ck_assert_int_eq(exists(st, "/ch", &s), 0);
    ck_assert_int_eq(s.num_children, 6);
}
END_TEST

START_TEST(t_parents)
{
    ck_assert_int_eq(put_s("/x/y/z", "leaf", META_VERSION_NONE, 0), -MG_ENOTFOUND);
    ck_assert_int_eq(put_s("/x/y/z", "leaf", META_VERSION_NONE, META_CREATE_PARENTS), 0);
    struct meta_req r;
    ck_assert_int_eq(get(st, "/x", &r), 0);
    ck_assert_uint_eq(r.len, 0);
    meta_req_fini(&r);
    ck_assert_int_eq(get(st, "/x/y", NULL), 0);
    ck_assert_int_eq(get(st, "/x/y/z", &r), 0);
    ck_assert_str_eq(r.value, "leaf");
    meta_req_fini(&r);
    /* some parents exist already */
    ck_assert_int_eq(put_s("/x/y/w/v", "2", META_VERSION_ANY, META_CREATE_PARENTS), 0);
    ck_assert_int_eq(get(st, "/x/y/w/v", NULL), 0);
}
END_TEST

START_TEST(t_sequential)
{
    ck_assert_int_eq(put_s("/seq", "", META_VERSION_NONE, 0), 0);
    char prev[128] = "";
    for (int i = 0; i < 5; i++) {
        struct meta_req r;
        ck_assert_int_eq(put(st, "/seq/n-", "v", 1, META_VERSION_NONE, META_SEQUENTIAL, &r), 0);
        ck_assert_ptr_nonnull(r.path);
        ck_assert_uint_eq(strlen(r.path), strlen("/seq/n-") + 10);
        ck_assert(strncmp(r.path, "/seq/n-", 7) == 0);
        ck_assert_msg(strcmp(r.path, prev) > 0, "%s after %s", r.path, prev);
        snprintf(prev, sizeof prev, "%s", r.path);
        ck_assert_int_eq(get(st, r.path, NULL), 0);
        meta_req_fini(&r);
    }
    /* ephemeral-sequential, and under CREATE_PARENTS */
    struct meta_req r;
    ck_assert_int_eq(
        put(st, "/seq/n-", "", 0, META_VERSION_ANY, META_SEQUENTIAL | META_EPHEMERAL, &r), 0);
    ck_assert_msg(strcmp(r.path, prev) > 0, "%s after %s", r.path, prev);
    ck_assert(r.stat.ephemeral);
    meta_req_fini(&r);
    ck_assert_int_eq(put(st, "/seq2/deep/ID-", "", 0, META_VERSION_NONE,
                         META_SEQUENTIAL | META_CREATE_PARENTS, &r),
                     0);
    ck_assert_str_eq(r.path, "/seq2/deep/ID-0000000000");
    meta_req_fini(&r);
    ck_assert_int_eq(children(st, "/seq", &r), 0);
    ck_assert_int_eq(r.n_children, 6);
    meta_req_fini(&r);
    /* a sequential put with a version is a caller error */
    ck_assert_int_eq(meta_put(st, "/seq/n-", "", 0, 0, META_SEQUENTIAL, &r, req_cb), -MG_EINVAL);
}
END_TEST

START_TEST(t_ephemeral)
{
    ck_assert_int_eq(put_s("/eph", "", META_VERSION_NONE, 0), 0);
    ck_assert_int_eq(put_s("/eph/e1", "mine", META_VERSION_NONE, META_EPHEMERAL), 0);
    ck_assert_int_eq(put_s("/eph/p1", "kept", META_VERSION_NONE, 0), 0);
    struct meta_stat s;
    ck_assert_int_eq(exists(st, "/eph/e1", &s), 0);
    ck_assert(s.ephemeral);
    ck_assert_int_eq(put_s("/eph/e1/child", "", META_VERSION_NONE, 0), -MG_ENOTALLOWED);
    if (cur->peer) {
        struct meta_store *b = NULL;
        ck_assert_int_eq(meta_open_peer(st, NULL, &b), 0);
        ck_assert_int_eq(exists(b, "/eph/e1", &s), 0);
        struct wrec wr = {0};
        ck_assert_ptr_nonnull(meta_watch(b, "/eph/e1", false, watch_cb, &wr));
        ck_assert_int_eq(exists(b, "/eph/e1", NULL), 0); /* the watch is in place */
        meta_close(st);
        st = b;
        ck_assert(run_until(&wr.fired, 10000));
        ck_assert_int_eq(wr.ev, META_WATCH_DELETED);
    } else {
        reopen();
    }
    ck_assert_int_eq(exists(st, "/eph/e1", NULL), -MG_ENOTFOUND);
    ck_assert_int_eq(exists(st, "/eph/p1", NULL), 0);
    ck_assert_int_eq(exists(st, "/eph", &s), 0);
    ck_assert_int_eq(s.num_children, 1);
}
END_TEST

/* A new watch on path (its children when children) recording into wr, cleared first. */
static void watch_anew(struct wrec *wr, const char *path, bool children)
{
    memset(wr, 0, sizeof *wr);
    ck_assert_ptr_nonnull(meta_watch(st, path, children, watch_cb, wr));
}

/* After a round trip to the store at path (every event before it is delivered by then), wr
 * has seen n events in all. */
static void expect_fired(const struct wrec *wr, const char *path, int n)
{
    ck_assert_int_eq(exists(st, path, NULL), 0);
    ck_assert_int_eq(wr->count, n);
}

static void expect_one(struct wrec *wr, enum meta_watch_event ev, const char *path)
{
    ck_assert_msg(run_until(&wr->fired, 10000), "watch on %s did not fire (expected %d)", path,
                  (int)ev);
    ck_assert_int_eq(wr->ev, ev);
    ck_assert_str_eq(wr->path, path);
    ck_assert_int_eq(wr->count, 1);
}

/* Put v at path (version ver; it must succeed); wr then sees exactly ev on watched. */
static void put_fires(struct wrec *wr, const char *path, const char *v, int64_t ver,
                      enum meta_watch_event ev, const char *watched)
{
    ck_assert_int_eq(put_s(path, v, ver, 0), 0);
    expect_one(wr, ev, watched);
}

/* Put v at path (version ver; it must succeed); wr has then seen n events in all (none new). */
static void put_quiet(struct wrec *wr, const char *path, const char *v, int64_t ver,
                      const char *watched, int n)
{
    ck_assert_int_eq(put_s(path, v, ver, 0), 0);
    expect_fired(wr, watched, n);
}

START_TEST(t_watch_data)
{
    struct wrec wr = {0};
    /* creation */
    ck_assert_ptr_nonnull(meta_watch(st, "/w", false, watch_cb, &wr));
    put_fires(&wr, "/w", "1", META_VERSION_NONE, META_WATCH_CREATED, "/w");
    put_quiet(&wr, "/w", "2", META_VERSION_ANY, "/w", 1); /* one-shot: no more */
    /* data change */
    watch_anew(&wr, "/w", false);
    put_quiet(&wr, "/w/kid", "", META_VERSION_NONE, "/w", 0); /* not a data change */
    put_fires(&wr, "/w", "3", META_VERSION_ANY, META_WATCH_CHANGED, "/w");
    put_quiet(&wr, "/w", "4", META_VERSION_ANY, "/w", 1);
    /* deletion */
    watch_anew(&wr, "/w", false);
    ck_assert_int_eq(del(st, "/w/kid", META_VERSION_ANY), 0);
    ck_assert_int_eq(del(st, "/w", META_VERSION_ANY), 0);
    expect_one(&wr, META_WATCH_DELETED, "/w");
    put_quiet(&wr, "/w", "5", META_VERSION_NONE, "/w", 1);
}
END_TEST

START_TEST(t_watch_children)
{
    struct wrec wr = {0};
    ck_assert_int_eq(put_s("/wc", "", META_VERSION_NONE, 0), 0);
    ck_assert_ptr_nonnull(meta_watch(st, "/wc", true, watch_cb, &wr));
    put_quiet(&wr, "/wc", "data", META_VERSION_ANY, "/wc", 0); /* not a child change */
    put_fires(&wr, "/wc/a", "", META_VERSION_NONE, META_WATCH_CHILDREN, "/wc");
    put_quiet(&wr, "/wc/b", "", META_VERSION_NONE, "/wc", 1);
    /* removal of a child */
    watch_anew(&wr, "/wc", true);
    ck_assert_int_eq(del(st, "/wc/a", META_VERSION_ANY), 0);
    expect_one(&wr, META_WATCH_CHILDREN, "/wc");
    /* deletion of the node itself */
    ck_assert_int_eq(del(st, "/wc/b", META_VERSION_ANY), 0);
    watch_anew(&wr, "/wc", true);
    ck_assert_int_eq(del(st, "/wc", META_VERSION_ANY), 0);
    expect_one(&wr, META_WATCH_DELETED, "/wc");
    /* a children watch on a missing node reports its creation */
    watch_anew(&wr, "/wc2", true);
    ck_assert_int_eq(exists(st, "/wc2", NULL), -MG_ENOTFOUND);
    put_fires(&wr, "/wc2", "", META_VERSION_NONE, META_WATCH_CREATED, "/wc2");
}
END_TEST

START_TEST(t_unwatch)
{
    struct wrec wr = {0}, wr2 = {0};
    struct meta_watch *w = meta_watch(st, "/u", false, watch_cb, &wr);
    ck_assert_ptr_nonnull(w);
    ck_assert_ptr_nonnull(meta_watch(st, "/u", false, watch_cb, &wr2));
    ck_assert_int_eq(exists(st, "/u", NULL), -MG_ENOTFOUND);
    meta_unwatch(st, w);
    put_fires(&wr2, "/u", "1", META_VERSION_NONE, META_WATCH_CREATED, "/u");
    ck_assert_int_eq(wr.count, 0);
    /* unwatch right after watch (zk: while its registration is in flight) */
    w = meta_watch(st, "/u", true, watch_cb, &wr);
    meta_unwatch(st, w);
    put_quiet(&wr, "/u/k", "", META_VERSION_NONE, "/u", 0);
    /* a fired but not yet delivered watch */
    w = meta_watch(st, "/u", false, watch_cb, &wr);
    ck_assert_int_eq(exists(st, "/u", NULL), 0);
    struct meta_req r;
    struct waiter wt = {0};
    memset(&r, 0, sizeof r);
    r.data = &wt;
    ck_assert_int_eq(meta_put(st, "/u", "2", 1, META_VERSION_ANY, 0, &r, req_cb), 0);
    if (strcmp(cur->name, "zk") != 0)
        meta_unwatch(st, w); /* memory/embedded: already queued */
    ck_assert(run_until(&wt.done, 10000));
    meta_req_fini(&r);
    if (strcmp(cur->name, "zk") != 0)
        ck_assert_int_eq(wr.count, 0);
}
END_TEST

START_TEST(t_binary_and_large)
{
    unsigned char bin[256];
    for (int i = 0; i < 256; i++)
        bin[i] = (unsigned char)i;
    struct meta_req r;
    ck_assert_int_eq(put(st, "/bin", bin, sizeof bin, META_VERSION_NONE, 0, NULL), 0);
    ck_assert_int_eq(get(st, "/bin", &r), 0);
    ck_assert_uint_eq(r.len, sizeof bin);
    ck_assert(memcmp(r.value, bin, sizeof bin) == 0);
    meta_req_fini(&r);
    ck_assert_int_eq(put(st, "/empty", NULL, 0, META_VERSION_NONE, 0, NULL), 0);
    ck_assert_int_eq(get(st, "/empty", &r), 0);
    ck_assert_uint_eq(r.len, 0);
    ck_assert_str_eq(r.value, "");
    meta_req_fini(&r);
    size_t big = 1000 * 1000;
    unsigned char *v = malloc(big);
    for (size_t i = 0; i < big; i++)
        v[i] = (unsigned char)(i * 31 + (i >> 13));
    ck_assert_int_eq(put(st, "/big", v, big, META_VERSION_NONE, 0, NULL), 0);
    ck_assert_int_eq(get(st, "/big", &r), 0);
    ck_assert_uint_eq(r.len, big);
    ck_assert(memcmp(r.value, v, big) == 0);
    meta_req_fini(&r);
    if (cur->durable && !cur->peer) {
        reopen();
        ck_assert_int_eq(get(st, "/big", &r), 0);
        ck_assert_uint_eq(r.len, big);
        ck_assert(memcmp(r.value, v, big) == 0);
        meta_req_fini(&r);
        ck_assert_int_eq(get(st, "/bin", &r), 0);
        ck_assert(memcmp(r.value, bin, sizeof bin) == 0);
        meta_req_fini(&r);
    }
    free(v);
}
END_TEST

START_TEST(t_bad_arguments)
{
    struct meta_req r = {0};
    const char *bad[] = {"", "a", "/a/", "//a", "/a//b", "/a/./b", "/a/..", NULL};
    for (int i = 0; bad[i]; i++) {
        ck_assert_int_eq(meta_get(st, bad[i], &r, req_cb), -MG_EINVAL);
        ck_assert_int_eq(meta_put(st, bad[i], "", 0, META_VERSION_ANY, 0, &r, req_cb), -MG_EINVAL);
        ck_assert_ptr_null(meta_watch(st, bad[i], false, watch_cb, NULL));
    }
    ck_assert_int_eq(meta_get(st, NULL, &r, req_cb), -MG_EINVAL);
    ck_assert_int_eq(meta_put(st, "/a", "", 0, -3, 0, &r, req_cb), -MG_EINVAL);
    ck_assert_int_eq(meta_delete(st, "/a", META_VERSION_NONE, &r, req_cb), -MG_EINVAL);
    ck_assert_int_eq(meta_put(st, "/a", "", 0, META_VERSION_ANY, 1 << 8, &r, req_cb), -MG_EINVAL);
    ck_assert_int_eq(del(st, "/", META_VERSION_ANY), -MG_ENOTALLOWED);
    ck_assert_int_eq(get(st, "/", NULL), 0);
}
END_TEST

static void close_in_cb(struct meta_req *req, int status)
{
    struct waiter *w = req->data;
    w->done = true;
    w->status = status;
    w->calls++;
    meta_close(st); /* from inside the store's own callback */
    st = NULL;
}

START_TEST(t_close_cancels)
{
    struct meta_req r1 = {0}, r2 = {0};
    struct waiter w1 = {0}, w2 = {0};
    r1.data = &w1;
    r2.data = &w2;
    struct wrec wr = {0};
    ck_assert_ptr_nonnull(meta_watch(st, "/cc", false, watch_cb, &wr));
    ck_assert_int_eq(meta_put(st, "/cc", "x", 1, META_VERSION_ANY, 0, &r1, req_cb), 0);
    ck_assert_int_eq(meta_get(st, "/cc", &r2, req_cb), 0);
    ck_assert(!w1.done && !w2.done); /* never inside the call */
    meta_close(st);
    st = NULL;
    ck_assert(w1.done && w2.done);
    ck_assert_int_eq(w1.status, -MG_ECANCELED);
    ck_assert_int_eq(w2.status, -MG_ECANCELED);
    ck_assert_int_eq(w1.calls, 1);
    meta_req_fini(&r1);
    meta_req_fini(&r2);
    ck_assert_int_eq(wr.count, 0);
    /* closing from inside a callback, with more requests queued behind it */
    ck_assert_int_eq(open_store(&st), 0);
    memset(&w1, 0, sizeof w1);
    memset(&w2, 0, sizeof w2);
    ck_assert_int_eq(meta_exists(st, "/", &r1, close_in_cb), 0);
    ck_assert_int_eq(meta_exists(st, "/", &r2, req_cb), 0);
    ck_assert(run_until(&w1.done, 10000));
    ck_assert(w2.done);
    ck_assert_int_eq(w2.status, -MG_ECANCELED);
    ck_assert_ptr_null(st);
    meta_req_fini(&r1);
    meta_req_fini(&r2);
    ck_assert_int_eq(meta_get(NULL, "/", &r1, req_cb), -MG_ECLOSED);
}
END_TEST

START_TEST(t_two_sessions)
{
    struct meta_store *b = NULL;
    int rc = meta_open_peer(st, NULL, &b);
    if (!cur->peer) {
        ck_assert_int_eq(rc, -MG_ENOTSUP);
        return;
    }
    ck_assert_int_eq(rc, 0);
    struct wrec wr = {0}, wc = {0};
    ck_assert_ptr_nonnull(meta_watch(b, "/shared", false, watch_cb, &wr));
    ck_assert_int_eq(exists(b, "/shared", NULL), -MG_ENOTFOUND);
    ck_assert_int_eq(put_s("/shared", "from a", META_VERSION_NONE, 0), 0);
    expect_one(&wr, META_WATCH_CREATED, "/shared");
    ck_assert_ptr_nonnull(meta_watch(b, "/shared", true, watch_cb, &wc));
    ck_assert_int_eq(exists(b, "/shared", NULL), 0);
    ck_assert_int_eq(put_s("/shared/k", "", META_VERSION_NONE, META_EPHEMERAL), 0);
    expect_one(&wc, META_WATCH_CHILDREN, "/shared");
    /* CAS between sessions */
    struct meta_req r;
    ck_assert_int_eq(get(b, "/shared", &r), 0);
    ck_assert_str_eq(r.value, "from a");
    int64_t v = r.stat.version;
    meta_req_fini(&r);
    ck_assert_int_eq(put_s("/shared", "a wins", v, 0), 0);
    ck_assert_int_eq(put(b, "/shared", "b loses", 7, v, 0, NULL), -MG_EBUSY);
    /* b's watch goes with b; a's ephemeral stays while a lives */
    ck_assert_ptr_nonnull(meta_watch(b, "/shared", false, watch_cb, &wr));
    meta_close(b);
    ck_assert_int_eq(exists(st, "/shared/k", NULL), 0);
}
END_TEST

START_TEST(t_session_events)
{
    if (strcmp(cur->name, "zk") == 0) {
        ck_assert_int_eq(exists(st, "/", NULL), 0);
        bool connected = false;
        for (int i = 0; i < 100 && !connected; i++) {
            connected = session_events[META_SESSION_CONNECTED] == 1;
            if (!connected)
                exists(st, "/", NULL);
        }
        ck_assert(connected);
    } else {
        ck_assert_int_eq(exists(st, "/", NULL), 0);
        ck_assert_int_eq(session_events[META_SESSION_CONNECTED], 0);
    }
    ck_assert_int_eq(session_events[META_SESSION_EXPIRED], 0);
    ck_assert_str_eq(meta_backend_name(st), strcmp(cur->name, "zk") == 0 ? "zookeeper" : cur->name);
}
END_TEST

START_TEST(t_many_pipelined)
{
    /* many requests in flight at once complete in order of issue */
    enum { N = 200 };
    static struct meta_req reqs[N];
    static struct waiter ws[N];
    ck_assert_int_eq(put_s("/pl", "", META_VERSION_NONE, 0), 0);
    for (int i = 0; i < N; i++) {
        char p[64];
        snprintf(p, sizeof p, "/pl/k%03d", i);
        put_start(&reqs[i], &ws[i], p, p, strlen(p));
    }
    for (int i = 0; i < N; i++) {
        ck_assert(run_until(&ws[i].done, 15000));
        ck_assert_int_eq(ws[i].status, 0);
        meta_req_fini(&reqs[i]);
    }
    struct meta_req r;
    ck_assert_int_eq(children(st, "/pl", &r), 0);
    ck_assert_int_eq(r.n_children, N);
    meta_req_fini(&r);
}
END_TEST

/* ---- embedded: durability ----------------------------------------------------------------- */

/* The i-th of many numbered keys below dir: <dir>/key-<i, 4 digits> holding value-<i>. */
struct nkey {
    char path[64];
    char value[32];
};

static struct nkey nkey(const char *dir, int i)
{
    struct nkey k;
    snprintf(k.path, sizeof k.path, "%s/key-%04d", dir, i);
    snprintf(k.value, sizeof k.value, "value-%d", i);
    return k;
}

static void check_key(const char *path, const char *value, int64_t version)
{
    struct meta_req r;
    ck_assert_msg(get(st, path, &r) == 0, "%s missing", path);
    ck_assert_str_eq(r.value, value);
    ck_assert_int_eq(r.stat.version, version);
    meta_req_fini(&r);
}

START_TEST(t_emb_reopen)
{
    enum { N = 300 };
    ck_assert_int_eq(put_s("/k", "", META_VERSION_NONE, 0), 0);
    for (int i = 0; i < N; i++) {
        struct nkey k = nkey("/k", i);
        ck_assert_int_eq(put_s(k.path, k.value, META_VERSION_NONE, 0), 0);
        if (i % 3 == 0)
            ck_assert_int_eq(put_s(k.path, "updated", 0, 0), 0);
        if (i % 10 == 0)
            ck_assert_int_eq(del(st, k.path, META_VERSION_ANY), 0);
    }
    reopen();
    for (int i = 0; i < N; i++) {
        struct nkey k = nkey("/k", i);
        if (i % 10 == 0)
            ck_assert_int_eq(get(st, k.path, NULL), -MG_ENOTFOUND);
        else if (i % 3 == 0)
            check_key(k.path, "updated", 1);
        else
            check_key(k.path, k.value, 0);
    }
    /* once more, after the open-time compaction */
    ck_assert_int_eq(put_s("/k/after", "x", META_VERSION_NONE, 0), 0);
    reopen();
    check_key("/k/after", "x", 0);
    check_key("/k/key-0001", "value-1", 0);
}
END_TEST

static off_t file_size(const char *name)
{
    char p[512];
    snprintf(p, sizeof p, "%s/%s", datadir, name);
    struct stat sb;
    return stat(p, &sb) == 0 ? sb.st_size : -1;
}

START_TEST(t_emb_torn_tail)
{
    for (int i = 0; i < 10; i++) {
        char p[32];
        snprintf(p, sizeof p, "/t%d", i);
        ck_assert_int_eq(put_s(p, "0123456789", META_VERSION_NONE, 0), 0);
    }
    meta_close(st);
    st = NULL;
    char logp[512];
    snprintf(logp, sizeof logp, "%s/meta.log", datadir);
    off_t sz = file_size("meta.log");
    ck_assert_int_gt(sz, 16);
    ck_assert_int_eq(truncate(logp, sz - 3), 0);
    ck_assert_int_eq(open_store(&st), 0);
    for (int i = 0; i < 9; i++) {
        char p[32];
        snprintf(p, sizeof p, "/t%d", i);
        check_key(p, "0123456789", 0);
    }
    ck_assert_int_eq(get(st, "/t9", NULL), -MG_ENOTFOUND);
    /* the store goes on normally */
    ck_assert_int_eq(put_s("/t9", "again", META_VERSION_NONE, 0), 0);
    reopen();
    check_key("/t9", "again", 0);
    /* garbage appended after valid records is ignored too */
    meta_close(st);
    st = NULL;
    int fd = open(logp, O_WRONLY | O_APPEND);
    ck_assert_int_ge(fd, 0);
    ck_assert_int_eq(write(fd, "\x10\x00\x00\x00garbage!", 12), 12);
    close(fd);
    ck_assert_int_eq(open_store(&st), 0);
    check_key("/t9", "again", 0);
}
END_TEST

START_TEST(t_emb_snapshots)
{
    meta_close(st);
    st = NULL;
    snapshot_bytes = 8192;
    ck_assert_int_eq(open_store(&st), 0);
    enum { N = 600 };
    ck_assert_int_eq(put_s("/s", "", META_VERSION_NONE, 0), 0);
    for (int i = 0; i < N; i++) {
        struct nkey k = nkey("/s", i);
        ck_assert_int_eq(put_s(k.path, k.value, META_VERSION_NONE, 0), 0);
        ck_assert_int_eq(put_s(k.path, k.value, 0, 0), 0);
    }
    ck_assert_int_gt(file_size("meta.snap"), 0);
    ck_assert_int_lt(file_size("meta.log"), 8192 + 4096);
    /* sequential counters are part of the snapshot and of the log */
    struct meta_req r;
    ck_assert_int_eq(put(st, "/s/ID-", "", 0, META_VERSION_NONE, META_SEQUENTIAL, &r), 0);
    ck_assert_str_eq(r.path, "/s/ID-0000000000");
    ck_assert_int_eq(del(st, r.path, META_VERSION_ANY), 0);
    meta_req_fini(&r);
    ck_assert_int_eq(
        put(st, "/s/ID-", "", 0, META_VERSION_NONE, META_SEQUENTIAL | META_EPHEMERAL, &r), 0);
    ck_assert_str_eq(r.path, "/s/ID-0000000001");
    meta_req_fini(&r);
    reopen();
    for (int i = 0; i < N; i += 37) {
        struct nkey k = nkey("/s", i);
        check_key(k.path, k.value, 1);
    }
    ck_assert_int_eq(children(st, "/s", &r), 0);
    ck_assert_int_eq(r.n_children, N); /* the ephemeral ID is gone */
    meta_req_fini(&r);
    ck_assert_int_eq(put(st, "/s/ID-", "", 0, META_VERSION_NONE, META_SEQUENTIAL, &r), 0);
    ck_assert_str_eq(r.path, "/s/ID-0000000002"); /* never reused */
    meta_req_fini(&r);
    reopen();
    ck_assert_int_eq(put(st, "/s/ID-", "", 0, META_VERSION_NONE, META_SEQUENTIAL, &r), 0);
    ck_assert_str_eq(r.path, "/s/ID-0000000003");
    meta_req_fini(&r);
}
END_TEST

START_TEST(t_emb_dirs)
{
    /* a second store on the same dir is refused */
    struct meta_store *b = NULL;
    ck_assert_int_eq(open_store(&b), -MG_EBUSY);
    ck_assert_ptr_null(b);
    /* an unusable data dir fails meta_open */
    char file[512];
    snprintf(file, sizeof file, "%s/plainfile", tmpdir);
    FILE *f = fopen(file, "w");
    ck_assert_ptr_nonnull(f);
    fclose(f);
    char bad[600];
    snprintf(bad, sizeof bad, "%s/sub", file);
    struct meta_options o = {.url = "embedded", .data_dir = bad};
    ck_assert_int_eq(meta_open(loop, &o, &b), -MG_EIO);
    o.data_dir = NULL;
    ck_assert_int_eq(meta_open(loop, &o, &b), -MG_EINVAL);
    o.url = "nosuchbackend";
    ck_assert_int_eq(meta_open(loop, &o, &b), -MG_EINVAL);
    /* nested dirs are created */
    snprintf(bad, sizeof bad, "%s/a/b/c", tmpdir);
    o.url = "embedded";
    o.data_dir = bad;
    ck_assert_int_eq(meta_open(loop, &o, &b), 0);
    meta_close(b);
    /* a corrupt snapshot is an error, not a silent empty store */
    meta_close(st);
    st = NULL;
    snapshot_bytes = 1;
    ck_assert_int_eq(open_store(&st), 0);
    ck_assert_int_eq(put_s("/z", "z", META_VERSION_NONE, 0), 0);
    ck_assert_int_gt(file_size("meta.snap"), 0);
    meta_close(st);
    st = NULL;
    char snap[512];
    snprintf(snap, sizeof snap, "%s/meta.snap", datadir);
    ck_assert_int_eq(truncate(snap, file_size("meta.snap") - 2), 0);
    ck_assert_int_eq(open_store(&st), -MG_EIO);
}
END_TEST

START_TEST(t_emb_group_commit)
{
    /* many mutations issued in one pass share fsyncs and all complete, in order */
    enum { N = 100 };
    static struct meta_req reqs[N];
    static struct waiter ws[N];
    int syncs0 = n_fdatasync;
    for (int i = 0; i < N; i++) {
        char p[32];
        snprintf(p, sizeof p, "/g%d", i);
        put_start(&reqs[i], &ws[i], p, "x", 1);
    }
    ck_assert(run_until(&ws[N - 1].done, 10000));
    int syncs = n_fdatasync - syncs0;
    for (int i = 0; i < N; i++) {
        ck_assert(ws[i].done);
        ck_assert_int_eq(ws[i].status, 0);
        if (i > 0)
            ck_assert_int_gt(ws[i].order, ws[i - 1].order);
        meta_req_fini(&reqs[i]);
    }
    /* synced (durable) but not one sync per mutation: at least 10 share each on average */
    ck_assert_int_ge(syncs, 1);
    ck_assert_msg(syncs * 10 <= N, "%d fdatasyncs for %d mutations", syncs, N);
    reopen();
    check_key("/g0", "x", 0);
    check_key("/g99", "x", 0);
}
END_TEST

/* ---- embedded: a full disk ----------------------------------------------------------------- */

/* Fault injection through meta_embedded_set_fault: the next writes / syncs fail with an
 * errno, a write after `partial` bytes (a torn record in the log). */
struct fault {
    int write_err, sync_err;
    size_t partial; /* write: bytes written before failing */
    int writes, syncs;
};

static int fault_fn(void *arg, const char *op, size_t *len)
{
    struct fault *f = arg;
    if (strcmp(op, "write") == 0) {
        f->writes++;
        if (f->write_err && len && *len > f->partial)
            *len = f->partial;
        return f->write_err;
    }
    if (strcmp(op, "sync") == 0) {
        f->syncs++;
        return f->sync_err;
    }
    return 0;
}

static int seq_put(const char *prefix, char *out, size_t cap)
{
    struct meta_req r;
    int rc = put(st, prefix, "", 0, META_VERSION_NONE, META_SEQUENTIAL | META_CREATE_PARENTS, &r);
    if (rc == 0)
        snprintf(out, cap, "%s", r.path);
    meta_req_fini(&r);
    return rc;
}

/* Log appends fail (ENOSPC after a partial record): each change is refused with
 * -MG_ENOSPC and leaves no trace (gets, exists, children, sequential counters, a retried
 * create is refused the same way, not -MG_EEXIST); once space is back the store takes
 * changes again without a reopen, and a reopen replays everything (the partial record was
 * cut off, or the records after it would be lost). */
START_TEST(t_emb_enospc_write)
{
    struct fault f = {0};
    meta_embedded_set_fault(st, fault_fn, &f);
    meta_embedded_set_retry_ms(st, 0);
    ck_assert_int_eq(put_s("/keep", "v", META_VERSION_NONE, 0), 0);
    char seq[64];
    ck_assert_int_eq(seq_put("/ids/ID-", seq, sizeof seq), 0);
    ck_assert_str_eq(seq, "/ids/ID-0000000000");
    f.write_err = ENOSPC;
    f.partial = 5;
    ck_assert_int_eq(put_s("/t/new", "x", META_VERSION_NONE, META_CREATE_PARENTS), -MG_ENOSPC);
    ck_assert_int_eq(put_s("/t/new", "x", META_VERSION_NONE, META_CREATE_PARENTS), -MG_ENOSPC);
    ck_assert_int_eq(get(st, "/t/new", NULL), -MG_ENOTFOUND);
    ck_assert_int_eq(exists(st, "/t", NULL), -MG_ENOTFOUND);
    ck_assert_int_eq(put_s("/keep", "w", 0, 0), -MG_ENOSPC);
    ck_assert_int_eq(del(st, "/keep", META_VERSION_ANY), -MG_ENOSPC);
    check_key("/keep", "v", 0);
    ck_assert_int_eq(seq_put("/ids/ID-", seq, sizeof seq), -MG_ENOSPC);
    struct meta_req r;
    ck_assert_int_eq(children(st, "/ids", &r), 0);
    ck_assert_int_eq(r.n_children, 1);
    meta_req_fini(&r);
    ck_assert_int_gt(f.writes, 0);
    /* space is back */
    f.write_err = 0;
    ck_assert_int_eq(put_s("/t/new", "x", META_VERSION_NONE, META_CREATE_PARENTS), 0);
    ck_assert_int_eq(put_s("/keep", "w", 0, 0), 0);
    ck_assert_int_eq(seq_put("/ids/ID-", seq, sizeof seq), 0);
    ck_assert_str_eq(seq, "/ids/ID-0000000001");
    reopen();
    check_key("/t/new", "x", 0);
    check_key("/keep", "w", 1);
    ck_assert_int_eq(children(st, "/ids", &r), 0);
    ck_assert_int_eq(r.n_children, 2);
    meta_req_fini(&r);
}
END_TEST

/* The group fdatasync fails: every change it covered is taken back and fails, and so do the
 * answers computed from them meanwhile (a get of a new node, an -MG_EEXIST for a second
 * create of it); the store rewrites its files before the next change, at most once per
 * retry interval, and takes changes again once that works. A reopen shows only what was
 * acknowledged. */
START_TEST(t_emb_enospc_sync)
{
    struct fault f = {0};
    meta_embedded_set_fault(st, fault_fn, &f);
    meta_embedded_set_retry_ms(st, 0);
    ck_assert_int_eq(put_s("/a", "1", META_VERSION_NONE, 0), 0);
    struct wrec wr = {0};
    ck_assert_ptr_nonnull(meta_watch(st, "/b", false, watch_cb, &wr));
    f.sync_err = ENOSPC;
    /* issued in one pass: one group, one (failing) sync */
    enum { N = 5 };
    struct meta_req q[N];
    struct waiter w[N];
    memset(q, 0, sizeof q);
    memset(w, 0, sizeof w);
    for (int i = 0; i < N; i++)
        q[i].data = &w[i];
    ck_assert_int_eq(meta_put(st, "/b", "new", 3, META_VERSION_NONE, 0, &q[0], req_cb), 0);
    ck_assert_int_eq(meta_put(st, "/a", "2", 1, 0, 0, &q[1], req_cb), 0);
    ck_assert_int_eq(meta_get(st, "/b", &q[2], req_cb), 0);
    ck_assert_int_eq(meta_put(st, "/b", "again", 5, META_VERSION_NONE, 0, &q[3], req_cb), 0);
    ck_assert_int_eq(meta_exists(st, "/b", &q[4], req_cb), 0);
    ck_assert(run_until(&w[N - 1].done, 10000));
    for (int i = 0; i < N; i++) {
        ck_assert(w[i].done);
        ck_assert_msg(w[i].status == -MG_ENOSPC, "request %d: %s", i, mg_errname(w[i].status));
        meta_req_fini(&q[i]);
    }
    ck_assert_int_eq(get(st, "/b", NULL), -MG_ENOTFOUND);
    check_key("/a", "1", 0);
    ck_assert(wr.fired); /* the watcher heard of /b and, re-reading, finds it absent */
    /* still full: the rewrite fails, nothing changes */
    int syncs = f.syncs;
    ck_assert_int_eq(put_s("/c", "c", META_VERSION_NONE, 0), -MG_ENOSPC);
    ck_assert_int_gt(f.syncs, syncs);
    ck_assert_int_eq(get(st, "/c", NULL), -MG_ENOTFOUND);
    /* within the retry interval no rewrite is even tried */
    meta_embedded_set_retry_ms(st, 60000);
    ck_assert_int_eq(put_s("/c", "c", META_VERSION_NONE, 0), -MG_ENOSPC); /* tries, arms */
    int writes = f.writes;
    syncs = f.syncs;
    for (int i = 0; i < 5; i++)
        ck_assert_int_eq(put_s("/c", "c", META_VERSION_NONE, 0), -MG_ENOSPC);
    ck_assert_int_eq(f.writes, writes);
    ck_assert_int_eq(f.syncs, syncs);
    /* space is back: the next change (after the interval) works, no reopen needed */
    f.sync_err = 0;
    meta_embedded_set_retry_ms(st, 0);
    ck_assert_int_eq(put_s("/c", "c", META_VERSION_NONE, 0), 0);
    ck_assert_int_eq(put_s("/b", "b", META_VERSION_NONE, 0), 0);
    check_key("/c", "c", 0);
    reopen();
    check_key("/a", "1", 0);
    check_key("/b", "b", 0);
    check_key("/c", "c", 0);
}
END_TEST

/* Changes of ephemeral nodes alone (create, update, delete) are delivered without an
 * fdatasync: the next open drops those nodes anyway. A sequential create (the parent's
 * counter is persistent) and any persistent change are synced as before, with the
 * ephemeral records written ahead of them; a later failed sync does not take back an
 * ephemeral change already answered. */
START_TEST(t_emb_ephemeral_unsynced)
{
    struct fault f = {0};
    meta_embedded_set_fault(st, fault_fn, &f);
    meta_embedded_set_retry_ms(st, 0);
    ck_assert_int_eq(put_s("/e", "", META_VERSION_NONE, 0), 0);
    int syncs = f.syncs;
    ck_assert_int_eq(put_s("/e/a", "1", META_VERSION_NONE, META_EPHEMERAL), 0);
    ck_assert_int_eq(put_s("/e/a", "2", 0, 0), 0);
    ck_assert_int_eq(put_s("/e/b", "b", META_VERSION_NONE, META_EPHEMERAL), 0);
    ck_assert_int_eq(del(st, "/e/a", META_VERSION_ANY), 0);
    ck_assert_int_eq(f.syncs, syncs);
    check_key("/e/b", "b", 0);
    char seq[64];
    struct meta_req r;
    ck_assert_int_eq(
        put(st, "/e/s-", "", 0, META_VERSION_NONE, META_EPHEMERAL | META_SEQUENTIAL, &r), 0);
    meta_req_fini(&r);
    ck_assert_int_eq(f.syncs, syncs + 1);
    ck_assert_int_eq(put_s("/e/c", "c", META_VERSION_NONE, META_EPHEMERAL), 0);
    ck_assert_int_eq(put_s("/p", "p", META_VERSION_NONE, 0), 0);
    ck_assert_int_eq(f.syncs, syncs + 2);
    /* an ephemeral change answered, then the sync of a persistent one fails */
    ck_assert_int_eq(put_s("/e/d", "d", META_VERSION_NONE, META_EPHEMERAL), 0);
    f.sync_err = ENOSPC;
    ck_assert_int_eq(put_s("/q", "q", META_VERSION_NONE, 0), -MG_ENOSPC);
    check_key("/e/d", "d", 0);
    ck_assert_int_eq(get(st, "/q", NULL), -MG_ENOTFOUND);
    f.sync_err = 0;
    ck_assert_int_eq(put_s("/e/x", "x", META_VERSION_NONE, META_EPHEMERAL), 0);
    check_key("/e/x", "x", 0);
    ck_assert_int_eq(seq_put("/ids/ID-", seq, sizeof seq), 0);
    reopen();
    check_key("/p", "p", 0);
    ck_assert_int_eq(get(st, "/q", NULL), -MG_ENOTFOUND);
    ck_assert_int_eq(children(st, "/e", &r), 0);
    ck_assert_int_eq(r.n_children, 0); /* the ephemeral nodes of the previous run are gone */
    meta_req_fini(&r);
    /* the counter of /e moved past the ephemeral sequential node */
    ck_assert_int_eq(put(st, "/e/s-", "", 0, META_VERSION_NONE, META_SEQUENTIAL, &r), 0);
    ck_assert_str_eq(r.path, "/e/s-0000000001");
    meta_req_fini(&r);
}
END_TEST

/* ---- suite ------------------------------------------------------------------------------ */

/* Stands for the zk backend's contract tests when no ZooKeeper is named. */
START_TEST(t_zk_skipped)
{
    printf("SKIP: zk backend (the contract tests against ZooKeeper): "
           "MAGNETAR_TEST_ZK is not set; tests/integration/meta_zk.test.sh runs them\n");
    fflush(stdout);
}
END_TEST

/* A new store's open syncs nothing (it was a file and a directory sync); its first
 * persistent change syncs the log and then its directory entry before it is answered, later
 * ones the log alone; what was answered survives a reopen. Reopening a store that never
 * stored anything starts it over, again without a sync. */
START_TEST(t_emb_new_store_unsynced_open)
{
    meta_close(st);
    st = NULL;
    tl_rm_rf(datadir);
    struct fault f = {0};
    meta_embedded_set_open_fault(fault_fn, &f);
    ck_assert_int_eq(open_store(&st), 0);
    ck_assert_int_eq(f.syncs, 0);
    reopen(); /* nothing stored: the log is started over, no sync */
    ck_assert_int_eq(f.syncs, 0);
    ck_assert_int_eq(put_s("/e", "", META_VERSION_NONE, META_EPHEMERAL), 0);
    ck_assert_int_eq(f.syncs, 0);
    ck_assert_int_eq(put_s("/a", "1", META_VERSION_NONE, 0), 0);
    ck_assert_int_eq(f.syncs, 2); /* meta.log, then its directory */
    ck_assert_int_eq(put_s("/b", "2", META_VERSION_NONE, 0), 0);
    ck_assert_int_eq(f.syncs, 3);
    meta_embedded_set_open_fault(NULL, NULL);
    reopen();
    check_key("/a", "1", 0);
    check_key("/b", "2", 0);
}
END_TEST

/* Reopening a store whose log holds records appends to it instead of compacting it (a
 * snapshot and a new log: 4 syncs): no sync at open. The ephemeral nodes of the previous run
 * are gone, and their deletes are logged, so the same paths created again (and the open's
 * own records) replay cleanly at the next open; persistent changes survive every reopen. */
START_TEST(t_emb_reopen_appends)
{
    ck_assert_int_eq(put_s("/p", "1", META_VERSION_NONE, 0), 0);
    ck_assert_int_eq(put_s("/p/e", "a", META_VERSION_NONE, META_EPHEMERAL), 0);
    struct fault f = {0};
    meta_embedded_set_open_fault(fault_fn, &f);
    for (int round = 0; round < 3; round++) {
        reopen();
        ck_assert_int_eq(f.syncs, 0);
        ck_assert_int_eq(get(st, "/p/e", NULL), -MG_ENOTFOUND);
        check_key("/p", "1", 0);
        /* the same ephemeral path again, and a persistent change that syncs the log */
        ck_assert_int_eq(put_s("/p/e", "b", META_VERSION_NONE, META_EPHEMERAL), 0);
        char k[32];
        snprintf(k, sizeof k, "/p/k%d", round);
        ck_assert_int_eq(put_s(k, "v", META_VERSION_NONE, 0), 0);
        ck_assert_int_eq(f.syncs, 1);
        f.syncs = 0;
    }
    meta_embedded_set_open_fault(NULL, NULL);
    reopen();
    ck_assert_int_eq(get(st, "/p/e", NULL), -MG_ENOTFOUND);
    for (int round = 0; round < 3; round++) {
        char k[32];
        snprintf(k, sizeof k, "/p/k%d", round);
        check_key(k, "v", 0);
    }
    ck_assert_int_eq(file_size("meta.snap"), -1); /* never compacted */
}
END_TEST

static Suite *meta_suite(void)
{
    Suite *s = suite_create("meta");
    const TTest *const contract[] = {t_create_get_update,
                                     t_create_only_and_cas,
                                     t_delete,
                                     t_children_sorted,
                                     t_parents,
                                     t_sequential,
                                     t_ephemeral,
                                     t_watch_data,
                                     t_watch_children,
                                     t_unwatch,
                                     t_binary_and_large,
                                     t_bad_arguments,
                                     t_close_cancels,
                                     t_two_sessions,
                                     t_session_events,
                                     t_many_pipelined,
                                     NULL};
    void (*setups[])(void) = {setup_memory, setup_embedded, setup_zk};
    bool have_zk = getenv("MAGNETAR_TEST_ZK") && getenv("MAGNETAR_TEST_ZK")[0];
    for (int b = 0; b < 3; b++) {
        if (b == 2 && !have_zk) {
            /* one test that says so: scripts/test.sh counts it as a skip, not a pass */
            tl_add(tl_tcase(s, backends[b].name, 0, NULL, NULL), t_zk_skipped);
            continue;
        }
        tl_add_list(tl_tcase(s, backends[b].name, 60, setups[b], teardown), contract);
    }
    TCase *tc = tl_tcase(s, "embedded-durability", 60, setup_embedded, teardown);
    tl_add(tc, t_emb_reopen, t_emb_torn_tail, t_emb_snapshots, t_emb_dirs, t_emb_group_commit,
           t_emb_enospc_write, t_emb_enospc_sync, t_emb_ephemeral_unsynced,
           t_emb_new_store_unsynced_open, t_emb_reopen_appends);
    return s;
}

/* ---- probe mode: a long-lived client for tests/integration/meta_zk.sh ------------------ */

/* "check_meta probe URL SECONDS SESSION_TIMEOUT_MS": print each session event on stdout,
 * and (re-)create the ephemeral key /probe on every CONNECTED. The script restarts and
 * freezes ZooKeeper/the client around it and checks the sequence of events. */
static const char *const probe_names[] = {"CONNECTED", "DISCONNECTED", "RECONNECTED", "EXPIRED"};
static struct meta_req probe_req;

static void probe_put_cb(struct meta_req *req, int status)
{
    printf("ephemeral %s\n", status == 0 ? "ok" : mg_errname(status));
    fflush(stdout);
    meta_req_fini(req);
}

static void probe_session_cb(struct meta_store *m, enum meta_session_event ev, void *data)
{
    printf("session %s\n", probe_names[ev]);
    fflush(stdout);
    if (ev == META_SESSION_CONNECTED) {
        memset(&probe_req, 0, sizeof probe_req);
        if (meta_put(m, "/probe", "p", 1, META_VERSION_ANY, META_EPHEMERAL, &probe_req,
                     probe_put_cb) < 0)
            printf("ephemeral failed\n");
    }
}

static int probe_main(const char *u, int seconds, int session_timeout_ms)
{
    base = event_base_new();
    loop = mg_loop_new(base);
    struct meta_options o = {.url = u,
                             .session_timeout_ms = session_timeout_ms,
                             .op_timeout_ms = 60000,
                             .session_cb = probe_session_cb};
    struct meta_store *m = NULL;
    if (meta_open(loop, &o, &m) < 0)
        return 1;
    struct timeval tv = {seconds, 0};
    event_base_loopexit(base, &tv);
    event_base_dispatch(base);
    meta_close(m);
    mg_loop_free(loop);
    event_base_free(base);
    printf("exit\n");
    return 0;
}

int main(int argc, char **argv)
{
    if (argc == 5 && strcmp(argv[1], "probe") == 0)
        return probe_main(argv[2], atoi(argv[3]), atoi(argv[4]));
    return tl_run(meta_suite());
}
