/*
 * check_ml_bk.c - unit tests of the managed ledger's durable store ("bookkeeper": ledgers
 * through bkc, ledger list and cursors in the meta store) over the fake bookies of bkc_fake.c
 * and the "memory" (or "embedded") metadata store, on a simulated loop: no sockets, no
 * sleeps; waits are bounded in simulated time.
 *
 * Covers: append/read round trip (tail cache and bookie reads), an oversized append failing
 * alone, rollover recorded in ManagedLedgerInfo, close + reopen by a new factory/client (old
 * last ledger closed at the right entry, a new ledger created, all entries readable), durable
 * cursor state (mark-delete, individual ranges) surviving a reopen, cursor recovery after a
 * crash (the last flushed state, nothing unacked skipped, flushed acks not redelivered),
 * recovery of a last ledger whose last appends reached only some bookies, a second broker
 * taking over (fencing of the first, nothing unacked skipped), a bookie crashing mid-stream
 * (ensemble change), not enough bookies then bookies back, roll backoff, lost ledgers with
 * and without autoSkipNonRecoverableData, cursor write retries with one log line per 10 s,
 * trimming of consumed ledgers (metadata and BookKeeper ledger gone), retention, ml_delete,
 * terminate (appends in flight kept, later ones refused, the position stored and found again
 * by a new owner), the tail cache's bound on heap (not payload) and its time-based eviction,
 * with reads of evicted entries served by the bookie.
 * Failure modes: each test asserts with Check; run with CK_FORK=no under ASan.
 */
#include "bkc/bkc.h"
#include "lib/tl_bk.h"
#include "meta/meta.h"
#include "meta/meta_int.h"
#include "ml/ml.h"
#include "ml/ml_int.h"
#include "util/alloc.h"
#include "util/err.h"
#include "util/loop.h"

#include "MLDataFormats.pb-c.h"

#include <check.h>
#include <errno.h>
#if defined(__SANITIZE_ADDRESS__)
#define TL_ASAN 1
#elif defined(__has_feature)
#if __has_feature(address_sanitizer)
#define TL_ASAN 1
#endif
#endif
#ifdef TL_ASAN
/* sanitizer/allocator_interface.h (not shipped with every compiler) */
size_t __sanitizer_get_current_allocated_bytes(void);
#else
#define TL_ASAN 0
#include <malloc.h>
#endif
#include <event2/buffer.h>
#include <event2/event.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define MAX_BOOKIES 6

static struct tl_fakebk env; /* the simulated loop, the metadata store, the fake bookies */
static struct mg_loop *loop;
static struct meta_store *meta;
static struct bkc_fake *fake;

/* One "broker": a bkc client and an ML factory on a metadata session. */
struct broker {
    struct meta_store *meta; /* borrowed (the shared one) or owned (a peer session) */
    bool own_meta;
    struct bkc_client *bkc;
    struct ml_factory *f;
};

static int64_t mono_ms(void)
{
    return (int64_t)mg_loop_mono_ms(loop);
}

static bool env_embedded; /* env_new: an embedded metadata store (fault injection) */

static void env_new(int nb)
{
    tl_fakebk_open(&env, env_embedded ? "embedded" : "memory", 11, "10.0.1", nb);
    loop = env.loop;
    meta = env.meta;
    fake = env.fake;
}

static void env_free(void)
{
    tl_run_for(loop, 10);
    env_embedded = false;
    tl_fakebk_close(&env);
    loop = NULL;
    meta = NULL;
    fake = NULL;
}

static struct ml_config ml_cfg(int e, int qw, int qa, int64_t max_entries, size_t cache)
{
    struct ml_config c = {
        .cache_size_bytes = cache,
        .max_entries_per_ledger = max_entries,
        .max_size_per_ledger = 1 << 30,
        .ensemble_size = e,
        .write_quorum = qw,
        .ack_quorum = qa,
        .cursor_flush_interval_ms = 50,
    };
    return c;
}

static size_t bkc_frame_limit; /* 0 = bkc's default */

static void broker_new(struct broker *b, struct ml_config cfg, bool peer)
{
    memset(b, 0, sizeof *b);
    if (peer) {
        ck_assert_int_eq(meta_open_peer(meta, NULL, &b->meta), 0);
        b->own_meta = true;
    } else {
        b->meta = meta;
    }
    struct bkc_config bc;
    tl_bkc_config(&bc, cfg.ensemble_size, cfg.write_quorum, cfg.ack_quorum, 3000);
    if (bkc_frame_limit)
        bc.max_frame_size = bkc_frame_limit;
    bc.transport = bkc_fake_transport(fake);
    bc.seed = 5;
    ck_assert_int_eq(bkc_client_new(loop, b->meta, &bc, &b->bkc), 0);
    cfg.meta = b->meta;
    cfg.bkc = b->bkc;
    b->f = ml_factory_new(loop, "bookkeeper", &cfg);
    ck_assert_ptr_nonnull(b->f);
}

/* Clean shutdown: the caller closed its MLs; wait for the metadata writes, then free. */
static void broker_free(struct broker *b)
{
    int64_t end = mono_ms() + 10000;
    while (ml_factory_pending(b->f) > 0 && mono_ms() < end)
        tl_run_for(loop, 1);
    ck_assert_int_eq(ml_factory_pending(b->f), 0);
    ml_factory_free(b->f);
    bkc_client_free(b->bkc);
    tl_run_for(loop, 5);
    if (b->own_meta)
        meta_close(b->meta);
    memset(b, 0, sizeof *b);
}

static struct ml_ledger *open_ml(struct broker *b, const char *name, int *status)
{
    return tl_ml_open(b->f, name, status);
}

static struct evbuffer *payload(int i)
{
    struct evbuffer *b = evbuffer_new();
    evbuffer_add_printf(b, "message-%04d", i);
    return b;
}

/* Append n messages numbered from first; returns how many succeeded (in order). */
static int append_n(struct ml_ledger *ml, int first, int n, struct ml_position *last, int *err)
{
    struct tl_append *a = mg_calloc((size_t)n, sizeof *a);
    int sync_fail = 0, ok = 0;
    for (int i = 0; i < n; i++) {
        a[i].req.data = &a[i];
        int rc = ml_append(ml, payload(first + i), NULL, &a[i].req, tl_append_cb);
        if (rc < 0) {
            a[i].done = true;
            a[i].status = rc;
            sync_fail = rc;
        }
    }
    for (int i = 0; i < n; i++)
        tl_wait(loop, &a[i].done);
    if (err)
        *err = 0;
    for (int i = 0; i < n; i++) {
        if (a[i].status == 0) {
            ok++;
            if (last)
                *last = a[i].pos;
        } else if (err && !*err) {
            *err = a[i].status;
        }
    }
    (void)sync_fail;
    mg_free(a);
    return ok;
}

/* Read everything a cursor has; checks the payload numbers appear in ascending order and
 * fills seen[] (numbers). Returns the count. */
static int read_all(struct ml_cursor *c, int *seen, int cap, struct ml_position *pos)
{
    int n = 0;
    for (int guard = 0; guard < 1000 && ml_cursor_has_more(c); guard++) {
        struct tl_read r = {0};
        r.req.data = &r;
        ck_assert_int_eq(ml_cursor_read(c, 7, 0, &r.req, tl_read_cb), 0);
        tl_wait(loop, &r.done);
        ck_assert_msg(r.status == 0, "read: %s", mg_strerror(r.status));
        for (int i = 0; i < r.req.n; i++) {
            struct ml_entry *e = r.req.entries[i];
            char buf[32] = {0};
            evbuffer_copyout(e->data, buf, sizeof buf - 1);
            int num = -1;
            ck_assert_int_eq(sscanf(buf, "message-%d", &num), 1);
            if (n < cap) {
                seen[n] = num;
                if (pos)
                    pos[n] = e->pos;
            }
            n++;
            ml_entry_unref(e);
        }
        mg_free(r.req.entries);
    }
    return n;
}

/* c reads exactly the messages 0..n-1, in order (from the tail cache or the bookies). */
static void expect_in_order(struct ml_cursor *c, int n)
{
    int *seen = mg_calloc((size_t)n + 1, sizeof *seen);
    ck_assert_int_eq(read_all(c, seen, n + 1, NULL), n);
    for (int i = 0; i < n; i++)
        ck_assert_int_eq(seen[i], i);
    mg_free(seen);
}

/* A non-durable cursor from the earliest entry reads exactly messages 0..n-1, in order. */
static void expect_read_back(struct ml_ledger *ml, const char *name, int n)
{
    struct ml_cursor *c = ml_cursor_open(ml, name, false, ML_POS_EARLIEST, NULL);
    ck_assert_ptr_nonnull(c);
    expect_in_order(c, n);
    ml_cursor_close(c);
}

/* A new cursor on ml reads exactly the messages 0..n-1, in order; then ml and b are closed. */
static void close_after_reading(struct broker *b, struct ml_ledger *ml, int n)
{
    expect_read_back(ml, "r", n);
    ml_close(ml);
    broker_free(b);
}

static Pulsar__Ml__ManagedLedgerInfo *ml_info(const char *name)
{
    char *path = mg_asprintf("/managed-ledgers/%s", name);
    struct meta_req g;
    ck_assert_int_eq(tl_meta_get(meta, path, &g), 0);
    Pulsar__Ml__ManagedLedgerInfo *info =
        pulsar__ml__managed_ledger_info__unpack(NULL, g.len, (const uint8_t *)g.value);
    ck_assert_ptr_nonnull(info);
    meta_req_fini(&g);
    mg_free(path);
    return info;
}

static bool ledger_exists(int64_t id)
{
    char *path = bkc_ledger_path("/ledgers", id);
    struct meta_req g;
    int rc = tl_meta_get(meta, path, &g);
    meta_req_fini(&g);
    mg_free(path);
    return rc == 0;
}

/* Until cond(arg) holds, running the loop (10 s); returns cond's last value. */
static bool wait_until(tl_cond cond, const void *arg)
{
    return tl_until(loop, cond, arg, 10000);
}

/* Nothing in flight for ml: no rollover, no trim, no store operation of its factory. */
static bool ml_settled(const void *arg)
{
    const struct ml_ledger *ml = arg;
    return !ml->rolling && !ml->trimming && ml_factory_pending(ml->f) == 0;
}

static bool ledger_gone(const void *id)
{
    return !ledger_exists(*(const int64_t *)id);
}

static bool path_gone(const void *path)
{
    struct meta_req g;
    int rc = tl_meta_get(meta, path, &g);
    meta_req_fini(&g);
    return rc == -MG_ENOTFOUND;
}

/* ---- tests ------------------------------------------------------------------------------ */

START_TEST(test_roundtrip_standalone)
{
    env_new(1);
    struct broker b;
    broker_new(&b, ml_cfg(1, 1, 1, 1000, 1 << 20), false);
    struct ml_ledger *ml = open_ml(&b, "t/ns/persistent/rt", NULL);
    struct ml_cursor *c = ml_cursor_open(ml, "s", true, ML_POS_EARLIEST, NULL);
    ck_assert_ptr_nonnull(c);
    struct ml_position last;
    ck_assert_int_eq(append_n(ml, 0, 20, &last, NULL), 20);
    ck_assert_int_eq(last.entry, 19);
    expect_in_order(c, 20);
    ml_close(ml);
    broker_free(&b);

    /* No cache: every read goes to the bookie. */
    broker_new(&b, ml_cfg(1, 1, 1, 1000, 0), false);
    ml = open_ml(&b, "t/ns/persistent/rt", NULL);
    ck_assert_int_eq(append_n(ml, 20, 5, NULL, NULL), 5);
    expect_read_back(ml, "s2", 25);
    ml_close(ml);
    broker_free(&b);
    env_free();
}
END_TEST

/* The managed ledger does not read entry bytes: an entry read back from a bookie gets its
 * content from ml_config.entry_info (the broker's reads the MessageMetadata); without the
 * hook, one message and no metadata. Here the hook reads the test's own format. */
static int test_entry_info(struct evbuffer *data, struct ml_entry_info *info)
{
    char buf[32] = {0};
    evbuffer_copyout(data, buf, sizeof buf - 1);
    int num;
    if (sscanf(buf, "message-%d", &num) != 1)
        return -MG_EPROTO;
    info->num_messages = num % 5 + 1;
    info->batched = true;
    info->publish_time = 1000 + (uint64_t)num;
    info->key_hash = (uint32_t)num;
    return 0;
}

static void read_infos(struct ml_ledger *ml, int n, bool hooked)
{
    struct ml_cursor *c = ml_cursor_open(ml, hooked ? "h" : "n", false, ML_POS_EARLIEST, NULL);
    ck_assert_ptr_nonnull(c);
    int got = 0;
    for (int guard = 0; guard < 1000 && ml_cursor_has_more(c); guard++) {
        struct tl_read r = {0};
        r.req.data = &r;
        ck_assert_int_eq(ml_cursor_read(c, 7, 0, &r.req, tl_read_cb), 0);
        tl_wait(loop, &r.done);
        ck_assert_int_eq(r.status, 0);
        for (int i = 0; i < r.req.n; i++, got++) {
            struct ml_entry *e = r.req.entries[i];
            ck_assert_int_eq(e->num_messages, hooked ? got % 5 + 1 : 1);
            ck_assert_int_eq(e->batched, hooked);
            ck_assert_uint_eq(e->publish_time, hooked ? 1000 + (uint64_t)got : 0);
            ck_assert_uint_eq(e->key_hash, hooked ? (uint32_t)got : 0);
            ml_entry_unref(e);
        }
        mg_free(r.req.entries);
    }
    ck_assert_int_eq(got, n);
    ml_cursor_close(c);
}

START_TEST(test_entry_info_of_bookie_reads)
{
    env_new(1);
    struct broker b;
    struct ml_config cfg = ml_cfg(1, 1, 1, 1000, 0); /* no cache: every read goes to the bookie */
    cfg.entry_info = test_entry_info;
    broker_new(&b, cfg, false);
    struct ml_ledger *ml = open_ml(&b, "t/ns/persistent/info", NULL);
    ck_assert_int_eq(append_n(ml, 0, 12, NULL, NULL), 12);
    read_infos(ml, 12, true);
    ml_close(ml);
    broker_free(&b);
    broker_new(&b, ml_cfg(1, 1, 1, 1000, 0), false); /* no hook */
    ml = open_ml(&b, "t/ns/persistent/info", NULL);
    read_infos(ml, 12, false);
    ml_close(ml);
    broker_free(&b);
    env_free();
}
END_TEST

/* An entry over the BookKeeper client's frame limit fails alone with -MG_ETOOBIG, in order:
 * the appends before and after it (all in flight together) are stored in the same ledger
 * with consecutive entry ids, nothing rolls, and a cursor reads them all. */
START_TEST(test_oversized_append_alone)
{
    env_new(1);
    bkc_frame_limit = 64 * 1024;
    struct broker b;
    broker_new(&b, ml_cfg(1, 1, 1, 1000, 1 << 20), false);
    struct ml_ledger *ml = open_ml(&b, "t/ns/persistent/big", NULL);
    struct ml_cursor *c = ml_cursor_open(ml, "s", true, ML_POS_EARLIEST, NULL);
    struct ml_stats st;
    ml_get_stats(ml, &st);
    int ledgers = st.num_ledgers;
    enum { N = 11, BIG = 5 };
    struct tl_append a[N];
    memset(a, 0, sizeof a);
    for (int i = 0; i < N; i++) {
        struct evbuffer *data = payload(i);
        if (i == BIG) {
            char pad[1024];
            memset(pad, 'x', sizeof pad);
            for (int k = 0; k < 80; k++)
                evbuffer_add(data, pad, sizeof pad);
        }
        a[i].req.data = &a[i];
        ck_assert_int_eq(ml_append(ml, data, NULL, &a[i].req, tl_append_cb), 0);
    }
    for (int i = 0; i < N; i++)
        tl_wait(loop, &a[i].done);
    int64_t ledger = a[0].pos.ledger;
    for (int i = 0, e = 0; i < N; i++) {
        if (i == BIG) {
            ck_assert_msg(a[i].status == -MG_ETOOBIG, "big append: %s", mg_errname(a[i].status));
            continue;
        }
        ck_assert_msg(a[i].status == 0, "append %d: %s", i, mg_errname(a[i].status));
        ck_assert_int_eq(a[i].pos.ledger, ledger);
        ck_assert_int_eq(a[i].pos.entry, e++);
    }
    ml_get_stats(ml, &st);
    ck_assert_int_eq(st.num_ledgers, ledgers);
    ck_assert_int_eq(st.number_of_entries, N - 1);
    int seen[N];
    ck_assert_int_eq(read_all(c, seen, N, NULL), N - 1);
    for (int i = 0, k = 0; i < N; i++)
        if (i != BIG)
            ck_assert_int_eq(seen[k++], i);
    ml_close(ml);
    broker_free(&b);
    bkc_frame_limit = 0;
    env_free();
}
END_TEST

/* The metadata store refuses writes (its disk is full): every cursor keeps retrying, with
 * backoff (at most ~5 attempts per cursor in a second at a 50 ms flush interval, instead
 * of 20), and the failures of all cursors make one log line per 10 s (on the loop's simulated
 * clock) with their count, not one line per cursor per retry. Once space is back every cursor's
 * state is stored and one line says so. */

static int meta_full; /* errno for the embedded store's writes, 0 = none */

static int meta_fault(void *arg, const char *op, size_t *len)
{
    (void)arg;
    (void)len;
    return strcmp(op, "write") == 0 ? meta_full : 0;
}

static struct ml_position stored_mark_delete(const char *ml, const char *cursor)
{
    char *path = mg_asprintf("/managed-ledgers/%s/%s", ml, cursor);
    struct meta_req g;
    struct ml_position p = {-2, -2};
    if (tl_meta_get(meta, path, &g) == 0) {
        Pulsar__Ml__ManagedCursorInfo *ci =
            pulsar__ml__managed_cursor_info__unpack(NULL, g.len, (const uint8_t *)g.value);
        ck_assert_ptr_nonnull(ci);
        p = (struct ml_position){ci->markdeleteledgerid, ci->markdeleteentryid};
        pulsar__ml__managed_cursor_info__free_unpacked(ci, NULL);
    }
    meta_req_fini(&g);
    mg_free(path);
    return p;
}

START_TEST(test_cursor_retry_backoff)
{
    env_embedded = true;
    env_new(1);
    struct broker b;
    broker_new(&b, ml_cfg(1, 1, 1, 1000, 1 << 20), false);
    const char *name = "t/ns/persistent/full";
    struct ml_ledger *ml = open_ml(&b, name, NULL);
    enum { NC = 3 };
    struct ml_cursor *c[NC];
    char cname[NC][8];
    for (int i = 0; i < NC; i++) {
        snprintf(cname[i], sizeof cname[i], "s%d", i);
        c[i] = ml_cursor_open(ml, cname[i], true, ML_POS_EARLIEST, NULL);
        ck_assert_ptr_nonnull(c[i]);
    }
    struct ml_position last;
    ck_assert_int_eq(append_n(ml, 0, 10, &last, NULL), 10);
    tl_run_for(loop, 100); /* the new cursors are stored */
    meta_embedded_set_fault(meta, meta_fault, NULL);
    meta_full = ENOSPC;
    for (int i = 0; i < NC; i++)
        ml_cursor_ack_cumulative(c[i], last);
    tl_run_for(loop, 1000);
    struct ml_meta_cursor_stats st;
    ml_meta_cursor_stats(b.f, &st);
    ck_assert_int_ge(st.write_failures, NC);
    ck_assert_msg(st.write_failures <= NC * 6, "%lld retries in 1 s", (long long)st.write_failures);
    ck_assert_int_eq(st.log_lines, 1);
    /* the failures of the next 10 s (on the loop's clock) make one more line */
    int64_t failures = st.write_failures;
    tl_run_for(loop, 8000);
    ml_meta_cursor_stats(b.f, &st);
    ck_assert_int_gt(st.write_failures, failures);
    ck_assert_int_eq(st.log_lines, 1); /* less than 10 s since the first line */
    failures = st.write_failures;
    tl_run_for(loop, 3000);
    ml_meta_cursor_stats(b.f, &st);
    ck_assert_int_gt(st.write_failures, failures);
    ck_assert_int_eq(st.log_lines, 2);
    for (int i = 0; i < NC; i++)
        ck_assert_int_eq(stored_mark_delete(name, cname[i]).entry, -1);
    /* space is back: every cursor is stored, one line says so */
    meta_full = 0;
    int64_t end = mono_ms() + 10000;
    int stored = 0;
    while (stored < NC && mono_ms() < end) {
        tl_run_for(loop, 50);
        stored = 0;
        for (int i = 0; i < NC; i++)
            stored += ml_pos_cmp(stored_mark_delete(name, cname[i]), last) == 0;
    }
    ck_assert_int_eq(stored, NC);
    ml_meta_cursor_stats(b.f, &st);
    ck_assert_int_eq(st.log_lines, 3);
    failures = st.write_failures;
    tl_run_for(loop, 300);
    ml_meta_cursor_stats(b.f, &st);
    ck_assert_int_eq(st.write_failures, failures); /* no more retries */
    meta_embedded_set_fault(meta, NULL, NULL);
    ml_close(ml);
    broker_free(&b);
    env_free();
}
END_TEST

/* Delete a ledger's BookKeeper metadata behind the ML's back (the ledger is lost). */
static void lose_ledger(int64_t id)
{
    char *path = bkc_ledger_path("/ledgers", id);
    ck_assert_int_eq(tl_meta_del(meta, path), 0);
    mg_free(path);
}

/* A ledger in the middle of the list is gone from BookKeeper (nothing can read it again).
 * autoSkipNonRecoverableData=false (_i 0): a cursor gets the entries before it, then
 * -MG_ENONRECOVERABLE, again and again; true (_i 1): the cursor reads on past it. */
START_TEST(test_lost_middle_ledger)
{
    env_new(1);
    struct broker b;
    struct ml_config cfg = ml_cfg(1, 1, 1, 3, 0);
    cfg.auto_skip_non_recoverable_data = _i == 1;
    broker_new(&b, cfg, false);
    const char *name = "t/ns/persistent/mid";
    struct ml_ledger *ml = open_ml(&b, name, NULL);
    ck_assert_int_eq(append_n(ml, 0, 9, NULL, NULL), 9);
    ck_assert_int_ge(ml->n_ledgers, 3);
    int64_t l2 = ml->ledgers[1].id;
    ml_close(ml);
    broker_free(&b);
    lose_ledger(l2);
    broker_new(&b, cfg, false);
    ml = open_ml(&b, name, NULL);
    struct ml_cursor *c = ml_cursor_open(ml, "r", false, ML_POS_EARLIEST, NULL);
    int seen[16];
    struct tl_read r = {0};
    r.req.data = &r;
    ck_assert_int_eq(ml_cursor_read(c, 100, 0, &r.req, tl_read_cb), 0);
    tl_wait(loop, &r.done);
    ck_assert_msg(r.status == 0, "read: %s", mg_errname(r.status));
    int n = 0;
    for (int i = 0; i < r.req.n; i++) {
        char buf[32] = {0};
        evbuffer_copyout(r.req.entries[i]->data, buf, sizeof buf - 1);
        ck_assert_int_eq(sscanf(buf, "message-%d", &seen[n++]), 1);
        ml_entry_unref(r.req.entries[i]);
    }
    mg_free(r.req.entries);
    if (_i == 0) {
        ck_assert_int_eq(n, 3);
        for (int k = 0; k < 2; k++) {
            memset(&r, 0, sizeof r);
            r.req.data = &r;
            ck_assert_int_eq(ml_cursor_read(c, 100, 0, &r.req, tl_read_cb), 0);
            tl_wait(loop, &r.done);
            ck_assert_msg(r.status == -MG_ENONRECOVERABLE, "read: %s", mg_errname(r.status));
        }
    } else {
        ck_assert_int_eq(n, 6);
        const int want[] = {0, 1, 2, 6, 7, 8};
        for (int i = 0; i < 6; i++)
            ck_assert_int_eq(seen[i], want[i]);
    }
    ml_cursor_close(c);
    ml_close(ml);
    broker_free(&b);
    env_free();
}
END_TEST

/* The last ledger (recovered at load) cannot be recovered: its metadata is gone although
 * the stored list says it holds entries, or its metadata is corrupt. false (_i 0): the
 * topic refuses to load with -MG_ENONRECOVERABLE; true (_i 1): it loads without that
 * ledger (gone from the stored list too) and takes appends. */
START_TEST(test_lost_last_ledger)
{
    for (int how = 0; how < 2; how++) {
        env_new(1);
        struct broker b;
        struct ml_config cfg = ml_cfg(1, 1, 1, 5, 0);
        cfg.auto_skip_non_recoverable_data = _i == 1;
        broker_new(&b, cfg, false);
        const char *name = "t/ns/persistent/last";
        struct ml_ledger *ml = open_ml(&b, name, NULL);
        struct ml_cursor *c = ml_cursor_open(ml, "s", true, ML_POS_EARLIEST, NULL);
        struct ml_position last;
        ck_assert_int_eq(append_n(ml, 0, 7, &last, NULL), 7);
        /* consuming everything trims the first ledger: the list is stored with the last
         * ledger's 2 entries */
        ml_cursor_ack_cumulative(c, last);
        int64_t end = mono_ms() + 5000;
        while (ml->n_ledgers > 1 && mono_ms() < end)
            tl_run_for(loop, 1);
        ck_assert_int_eq(ml->n_ledgers, 1);
        int64_t lid = ml->ledgers[0].id;
        tl_run_for(loop, 100);
        Pulsar__Ml__ManagedLedgerInfo *info = ml_info(name);
        ck_assert_int_eq((int)info->n_ledgerinfo, 1);
        ck_assert_int_eq(info->ledgerinfo[0]->entries, 2);
        pulsar__ml__managed_ledger_info__free_unpacked(info, NULL);
        ml_cursor_close(c);
        ml_close(ml);
        broker_free(&b);
        if (how == 0) {
            lose_ledger(lid);
        } else {
            char *path = bkc_ledger_path("/ledgers", lid);
            ck_assert_int_eq(tl_meta_put(meta, path, "garbage", 7, 0), 0);
            mg_free(path);
        }
        broker_new(&b, cfg, false);
        int status = 0;
        ml = open_ml(&b, name, &status);
        if (_i == 0) {
            ck_assert_msg(status == -MG_ENONRECOVERABLE, "open: %s", mg_errname(status));
            ck_assert_ptr_null(ml);
        } else {
            ck_assert_msg(status == 0, "open: %s", mg_errname(status));
            ck_assert_int_eq(append_n(ml, 100, 3, NULL, NULL), 3);
            info = ml_info(name);
            for (size_t i = 0; i < info->n_ledgerinfo; i++)
                ck_assert_int_ne(info->ledgerinfo[i]->ledgerid, lid);
            pulsar__ml__managed_ledger_info__free_unpacked(info, NULL);
            c = ml_cursor_open(ml, "s", true, ML_POS_EARLIEST, NULL);
            int seen[8];
            ck_assert_int_eq(read_all(c, seen, 8, NULL), 3);
            ck_assert_int_eq(seen[0], 100);
            ml_cursor_close(c);
            ml_close(ml);
        }
        broker_free(&b);
        env_free();
    }
}
END_TEST

/* A stored ledger list whose last ledger has an id no ledger can have (corrupt metadata): the
 * ledger store refuses its recovery at once; the open fails with that error, and nothing of
 * the refused request is used after it was freed (ASan). */
START_TEST(test_last_ledger_bad_id)
{
    env_new(1);
    struct broker b;
    broker_new(&b, ml_cfg(1, 1, 1, 5, 0), false);
    const char *name = "t/ns/persistent/bad-id";
    Pulsar__Ml__ManagedLedgerInfo__LedgerInfo li =
        PULSAR__ML__MANAGED_LEDGER_INFO__LEDGER_INFO__INIT;
    li.ledgerid = -3;
    li.has_entries = true;
    li.entries = 2;
    Pulsar__Ml__ManagedLedgerInfo__LedgerInfo *lis[] = {&li};
    Pulsar__Ml__ManagedLedgerInfo info = PULSAR__ML__MANAGED_LEDGER_INFO__INIT;
    info.n_ledgerinfo = 1;
    info.ledgerinfo = lis;
    uint8_t buf[64];
    ck_assert_uint_le(pulsar__ml__managed_ledger_info__get_packed_size(&info), sizeof buf);
    size_t len = pulsar__ml__managed_ledger_info__pack(&info, buf);
    char *path = mg_asprintf("/managed-ledgers/%s", name);
    ck_assert_int_eq(tl_meta_put(meta, path, buf, len, 0), 0);
    mg_free(path);
    int status = 0;
    struct ml_ledger *ml = open_ml(&b, name, &status);
    ck_assert_msg(status == -MG_EINVAL, "open: %s", mg_errname(status));
    ck_assert_ptr_null(ml);
    broker_free(&b);
    env_free();
}
END_TEST

/* No writable bookies: a failed roll is not tried again at once. Appends meanwhile fail at
 * once with the cause (-MG_ENOBOOKIES), so 100 appends make a handful of ledger creates (and
 * WARN lines), not 100; once bookies are back an append after the delay succeeds. */
START_TEST(test_roll_backoff)
{
    env_new(3);
    struct broker b;
    broker_new(&b, ml_cfg(3, 2, 2, 1000, 0), false);
    struct ml_ledger *ml = open_ml(&b, "t/ns/persistent/backoff", NULL);
    ck_assert_int_eq(append_n(ml, 0, 5, NULL, NULL), 5);
    tl_fakebk_stop(&env, 1);
    tl_fakebk_stop(&env, 2);
    int64_t before = ml->roll_attempts;
    int64_t t0 = mono_ms();
    for (int i = 0; i < 100; i++) {
        int err = 0;
        ck_assert_int_eq(append_n(ml, 5, 1, NULL, &err), 0);
        ck_assert_msg(err == -MG_ENOBOOKIES, "append %d: %s", i, mg_errname(err));
    }
    int64_t attempts = ml->roll_attempts - before;
    ck_assert_msg(attempts >= 1 && attempts <= 2 + (mono_ms() - t0) / 250,
                  "%lld rollovers for 100 appends in %lld ms", (long long)attempts,
                  (long long)(mono_ms() - t0));
    tl_fakebk_start(&env, 1);
    tl_fakebk_start(&env, 2);
    int ok = 0;
    int64_t end = mono_ms() + 15000;
    while (!ok && mono_ms() < end) {
        ok = append_n(ml, 5, 1, NULL, NULL);
        if (!ok)
            tl_run_for(loop, 50);
    }
    ck_assert_int_eq(ok, 1);
    ck_assert_int_eq(append_n(ml, 6, 4, NULL, NULL), 4);
    ml_close(ml);
    broker_free(&b);
    env_free();
}
END_TEST

START_TEST(test_rollover_recorded)
{
    env_new(3);
    struct broker b;
    broker_new(&b, ml_cfg(3, 2, 2, 5, 1 << 20), false);
    struct ml_ledger *ml = open_ml(&b, "t/ns/persistent/roll", NULL);
    ck_assert_int_eq(append_n(ml, 0, 12, NULL, NULL), 12);
    struct ml_stats st;
    ml_get_stats(ml, &st);
    ck_assert_int_eq(st.num_ledgers, 3);
    ck_assert_int_eq(st.number_of_entries, 12);
    Pulsar__Ml__ManagedLedgerInfo *info = ml_info("t/ns/persistent/roll");
    ck_assert_int_eq((int)info->n_ledgerinfo, 3);
    ck_assert_int_eq(info->ledgerinfo[0]->entries, 5);
    ck_assert_int_eq(info->ledgerinfo[1]->entries, 5);
    ck_assert(info->ledgerinfo[0]->has_timestamp);
    for (size_t i = 0; i < info->n_ledgerinfo; i++)
        ck_assert(ledger_exists(info->ledgerinfo[i]->ledgerid));
    pulsar__ml__managed_ledger_info__free_unpacked(info, NULL);
    ml_close(ml);
    broker_free(&b);
    env_free();
}
END_TEST

START_TEST(test_reopen)
{
    env_new(3);
    struct broker b;
    broker_new(&b, ml_cfg(3, 2, 2, 5, 1 << 20), false);
    struct ml_ledger *ml = open_ml(&b, "t/ns/persistent/re", NULL);
    ck_assert_int_eq(append_n(ml, 0, 7, NULL, NULL), 7);
    ml_close(ml);
    broker_free(&b);

    broker_new(&b, ml_cfg(3, 2, 2, 5, 0), false);
    ml = open_ml(&b, "t/ns/persistent/re", NULL);
    struct ml_stats st;
    ml_get_stats(ml, &st);
    ck_assert_int_eq(st.num_ledgers, 3);
    ck_assert_int_eq(st.number_of_entries, 7);
    ck_assert_int_eq(ml->ledgers[1].entries, 2); /* the old last ledger, closed at entry 1 */
    ck_assert_int_eq(ml->ledgers[2].entries, 0); /* new */
    int seen[16];
    struct ml_cursor *c = ml_cursor_open(ml, "r", false, ML_POS_EARLIEST, NULL);
    ck_assert_int_eq(read_all(c, seen, 16, NULL), 7);
    for (int i = 0; i < 7; i++)
        ck_assert_int_eq(seen[i], i);
    struct ml_position last;
    ck_assert_int_eq(append_n(ml, 7, 2, &last, NULL), 2);
    ck_assert_int_eq(last.ledger, ml->ledgers[2].id);
    ck_assert_int_eq(read_all(c, seen, 16, NULL), 2);
    ml_cursor_close(c);
    ml_close(ml);
    broker_free(&b);
    env_free();
}
END_TEST

START_TEST(test_cursor_survives_reopen)
{
    env_new(3);
    struct broker b;
    broker_new(&b, ml_cfg(3, 2, 2, 4, 1 << 20), false);
    struct ml_ledger *ml = open_ml(&b, "t/ns/persistent/cur", NULL);
    struct ml_cursor *c = ml_cursor_open(ml, "my sub/1", true, ML_POS_EARLIEST, NULL);
    struct ml_position pos[16];
    int seen[16];
    ck_assert_int_eq(append_n(ml, 0, 10, NULL, NULL), 10);
    ck_assert_int_eq(read_all(c, seen, 16, pos), 10);
    ml_cursor_ack_cumulative(c, pos[2]);
    ml_cursor_ack(c, pos[5], NULL, 0, 0);
    ml_cursor_ack(c, pos[6], NULL, 0, 0);
    ml_cursor_ack(c, pos[8], NULL, 0, 0);
    ck_assert_int_eq(ml_cursor_num_ranges(c), 2); /* (5..6] and (8] (ledgers of 4) */
    ml_cursor_close(c);
    ml_close(ml);
    broker_free(&b);

    broker_new(&b, ml_cfg(3, 2, 2, 4, 1 << 20), false);
    ml = open_ml(&b, "t/ns/persistent/cur", NULL);
    ck_assert(ml_cursor_exists(ml, "my sub/1"));
    c = ml_cursor_open(ml, "my sub/1", true, ML_POS_LATEST, NULL);
    ck_assert_ptr_nonnull(c);
    ck_assert_int_eq(ml_cursor_mark_delete(c).ledger, pos[2].ledger);
    ck_assert_int_eq(ml_cursor_mark_delete(c).entry, pos[2].entry);
    ck_assert_int_eq(ml_cursor_num_ranges(c), 2);
    ck_assert_int_eq(ml_cursor_backlog(c), 4);
    int n = read_all(c, seen, 16, NULL);
    ck_assert_int_eq(n, 4);
    ck_assert_int_eq(seen[0], 3);
    ck_assert_int_eq(seen[1], 4);
    ck_assert_int_eq(seen[2], 7);
    ck_assert_int_eq(seen[3], 9);
    /* the node name is URL-encoded */
    struct meta_req g;
    ck_assert_int_eq(tl_meta_get(meta, "/managed-ledgers/t/ns/persistent/cur/my+sub%2F1", &g), 0);
    meta_req_fini(&g);
    /* delete removes the node */
    ml_cursor_delete(c);
    ck_assert_msg(wait_until(path_gone, "/managed-ledgers/t/ns/persistent/cur/my+sub%2F1"),
                  "the deleted cursor's node is still there after 10 s");
    ml_close(ml);
    broker_free(&b);
    env_free();
}
END_TEST

START_TEST(test_takeover_fences_and_skips_nothing)
{
    env_new(3);
    struct broker a, b;
    struct ml_config cfg = ml_cfg(3, 2, 2, 1000, 1 << 20);
    cfg.cursor_flush_interval_ms = 600000; /* nothing flushed after the create */
    broker_new(&a, cfg, false);
    struct ml_ledger *ml = open_ml(&a, "t/ns/persistent/own", NULL);
    struct ml_cursor *c = ml_cursor_open(ml, "s", true, ML_POS_EARLIEST, NULL);
    struct ml_position pos[16];
    int seen[16];
    ck_assert_int_eq(append_n(ml, 0, 6, NULL, NULL), 6);
    ck_assert_int_eq(read_all(c, seen, 16, pos), 6);
    ml_cursor_ack(c, pos[1], NULL, 0, 0);
    ml_cursor_ack(c, pos[3], NULL, 0, 0);
    tl_run_for(loop, 30);

    /* Broker b takes the ML over while a still runs (a "crash" of a: no flush). */
    broker_new(&b, cfg, true);
    struct ml_ledger *ml2 = open_ml(&b, "t/ns/persistent/own", NULL);
    struct ml_stats st;
    ml_get_stats(ml2, &st);
    ck_assert_int_eq(st.number_of_entries, 6);
    struct ml_cursor *c2 = ml_cursor_open(ml2, "s", true, ML_POS_LATEST, NULL);
    ck_assert_ptr_nonnull(c2);
    /* Acks since the last flush may come again (1 and 3); nothing unacked is skipped (0, 2,
     * 4, 5); each at most once, in order, and nothing else. */
    int n = read_all(c2, seen, 16, NULL);
    ck_assert_int_ge(n, 4);
    ck_assert_int_le(n, 6);
    bool have[6] = {0};
    for (int i = 0; i < n; i++) {
        ck_assert_int_ge(seen[i], 0);
        ck_assert_int_lt(seen[i], 6);
        if (i > 0)
            ck_assert_int_gt(seen[i], seen[i - 1]);
        have[seen[i]] = true;
    }
    ck_assert(have[0] && have[2] && have[4] && have[5]);

    /* a's next append fails: its ledger was fenced by b's recovery. */
    int err = 0;
    ck_assert_int_eq(append_n(ml, 100, 1, NULL, &err), 0);
    ck_assert_int_eq(err, -MG_EFENCED);
    ck_assert(ml_is_fenced(ml));
    struct tl_append x = {0};
    x.req.data = &x;
    ck_assert_int_eq(ml_append(ml, payload(1), NULL, &x.req, tl_append_cb), -MG_EFENCED);
    /* b works */
    ck_assert_int_eq(append_n(ml2, 6, 3, NULL, NULL), 3);
    ml_close(ml);
    ml_close(ml2);
    broker_free(&a);
    broker_free(&b);
    env_free();
}
END_TEST

START_TEST(test_bookie_lost_midstream)
{
    env_new(3);
    struct broker b;
    broker_new(&b, ml_cfg(3, 2, 2, 1000, 0), false);
    struct ml_ledger *ml = open_ml(&b, "t/ns/persistent/lost", NULL);
    ck_assert_int_eq(append_n(ml, 0, 10, NULL, NULL), 10);
    /* A spare bookie joins; bookie 0 (in the ensemble: E = 3 of 3) crashes. */
    tl_fakebk_start(&env, 3);
    int victim = 0;
    tl_fakebk_stop(&env, victim);
    int err = 0;
    ck_assert_int_eq(append_n(ml, 10, 10, NULL, &err), 10);
    ck_assert_int_eq(append_n(ml, 20, 10, NULL, &err), 10);
    close_after_reading(&b, ml, 30);
    /* After a reopen (recovery of the two-segment ledger) too. */
    broker_new(&b, ml_cfg(3, 2, 2, 1000, 0), false);
    ml = open_ml(&b, "t/ns/persistent/lost", NULL);
    close_after_reading(&b, ml, 30);
    env_free();
}
END_TEST

START_TEST(test_not_enough_bookies_then_back)
{
    env_new(3);
    struct broker b;
    broker_new(&b, ml_cfg(3, 2, 2, 1000, 0), false);
    struct ml_ledger *ml = open_ml(&b, "t/ns/persistent/down", NULL);
    ck_assert_int_eq(append_n(ml, 0, 5, NULL, NULL), 5);
    tl_fakebk_stop(&env, 1);
    tl_fakebk_stop(&env, 2);
    int err = 0;
    int ok = append_n(ml, 5, 3, NULL, &err);
    ck_assert_int_eq(ok, 0);
    ck_assert_msg(err == -MG_ENOBOOKIES, "append: %s", mg_errname(err)); /* the cause, not EIO */
    /* Again: a new ledger cannot be created either. */
    ok = append_n(ml, 5, 1, NULL, &err);
    ck_assert_int_eq(ok, 0);
    ck_assert_msg(err == -MG_ENOBOOKIES, "append: %s", mg_errname(err));
    tl_fakebk_start(&env, 1);
    tl_fakebk_start(&env, 2);
    tl_wait_bookies(meta, 3);
    ok = 0;
    for (int tries = 0; tries < 20 && ok == 0; tries++) {
        ok = append_n(ml, 5, 1, NULL, &err);
        if (!ok)
            tl_run_for(loop, 100);
    }
    ck_assert_int_eq(ok, 1);
    ck_assert_int_eq(append_n(ml, 6, 4, NULL, NULL), 4);
    close_after_reading(&b, ml, 10);

    /* Everything acked is there after a reopen too. */
    broker_new(&b, ml_cfg(3, 2, 2, 1000, 0), false);
    ml = open_ml(&b, "t/ns/persistent/down", NULL);
    close_after_reading(&b, ml, 10);
    env_free();
}
END_TEST

START_TEST(test_trim_consumed)
{
    env_new(3);
    struct broker b;
    broker_new(&b, ml_cfg(3, 2, 2, 3, 1 << 20), false);
    struct ml_ledger *ml = open_ml(&b, "t/ns/persistent/trim", NULL);
    struct ml_cursor *c = ml_cursor_open(ml, "s", true, ML_POS_EARLIEST, NULL);
    ck_assert_int_eq(append_n(ml, 0, 9, NULL, NULL), 9);
    int64_t first_ids[3] = {ml->ledgers[0].id, ml->ledgers[1].id, ml->ledgers[2].id};
    for (int i = 0; i < 3; i++)
        ck_assert(ledger_exists(first_ids[i]));
    ck_assert(wait_until(ml_settled, ml)); /* the rollover after the last full ledger */
    ml_cursor_ack_cumulative(c, ml_last_confirmed(ml));
    /* The three consumed, full ledgers leave the list at once (only the empty current one
     * stays); their BookKeeper ledgers are deleted after the list is stored. */
    struct ml_stats st;
    ml_get_stats(ml, &st);
    ck_assert_int_eq(st.num_ledgers, 1);
    ck_assert_int_eq(st.number_of_entries, 0);
    for (int i = 0; i < 3; i++)
        ck_assert_msg(wait_until(ledger_gone, &first_ids[i]),
                      "trimmed ledger %lld still exists after 10 s", (long long)first_ids[i]);
    Pulsar__Ml__ManagedLedgerInfo *info = ml_info("t/ns/persistent/trim");
    ck_assert_int_eq((int)info->n_ledgerinfo, 1);
    for (int i = 0; i < 3; i++)
        ck_assert(info->ledgerinfo[0]->ledgerid != first_ids[i]);
    pulsar__ml__managed_ledger_info__free_unpacked(info, NULL);
    ml_close(ml);
    broker_free(&b);
    env_free();
}
END_TEST

START_TEST(test_retention_keeps)
{
    /* Two MLs alike, consumed alike: "ctl" with the factory's retention (0: keep nothing
     * consumed) and "ret" with retention -1/-1 (keep forever). Once ctl's consumed ledgers
     * are deleted and nothing is in flight, every trim check of ret has run too: its
     * ledgers must all still be there. */
    env_new(1);
    struct broker b;
    broker_new(&b, ml_cfg(1, 1, 1, 3, 1 << 20), false);
    struct ml_ledger *ret = open_ml(&b, "t/ns/persistent/ret", NULL);
    struct ml_ledger *ctl = open_ml(&b, "t/ns/persistent/ctl", NULL);
    ml_set_retention(ret, -1, -1);
    struct ml_cursor *cr = ml_cursor_open(ret, "s", true, ML_POS_EARLIEST, NULL);
    struct ml_cursor *cc = ml_cursor_open(ctl, "s", true, ML_POS_EARLIEST, NULL);
    ck_assert_int_eq(append_n(ret, 0, 9, NULL, NULL), 9);
    ck_assert_int_eq(append_n(ctl, 0, 9, NULL, NULL), 9);
    int64_t ret_ids[3] = {ret->ledgers[0].id, ret->ledgers[1].id, ret->ledgers[2].id};
    int64_t ctl_first = ctl->ledgers[0].id;
    ml_cursor_ack_cumulative(cr, ml_last_confirmed(ret));
    ml_cursor_ack_cumulative(cc, ml_last_confirmed(ctl));
    ck_assert_msg(wait_until(ledger_gone, &ctl_first),
                  "the control ML's consumed ledger was not trimmed within 10 s");
    ck_assert(wait_until(ml_settled, ctl));
    ck_assert(wait_until(ml_settled, ret));
    struct ml_stats st;
    ml_get_stats(ret, &st);
    ck_assert_int_ge(st.num_ledgers, 3);
    ck_assert_int_eq(st.number_of_entries, 9);
    for (int i = 0; i < 3; i++) {
        ck_assert_int_eq(ret->ledgers[i].id, ret_ids[i]);
        ck_assert(ledger_exists(ret_ids[i]));
    }
    ml_close(ret);
    ml_close(ctl);
    broker_free(&b);
    env_free();
}
END_TEST

START_TEST(test_delete_ml)
{
    env_new(1);
    struct broker b;
    broker_new(&b, ml_cfg(1, 1, 1, 3, 1 << 20), false);
    struct ml_ledger *ml = open_ml(&b, "t/ns/persistent/del", NULL);
    struct ml_cursor *c = ml_cursor_open(ml, "s", true, ML_POS_EARLIEST, NULL);
    ck_assert_ptr_nonnull(c);
    ck_assert_int_eq(append_n(ml, 0, 5, NULL, NULL), 5);
    int64_t ids[2] = {ml->ledgers[0].id, ml->ledgers[1].id};
    ck_assert(wait_until(ml_settled, ml)); /* the rollover after the 3rd entry is done */
    ck_assert_int_eq(ml_delete(ml, true), 0);
    ck_assert_msg(wait_until(path_gone, "/managed-ledgers/t/ns/persistent/del"),
                  "the deleted ML's node is still there after 10 s");
    for (int i = 0; i < 2; i++)
        ck_assert_msg(wait_until(ledger_gone, &ids[i]),
                      "ledger %lld of the deleted ML still exists", (long long)ids[i]);
    ml_close(ml);
    broker_free(&b);
    env_free();
}
END_TEST

/* A crash of broker b: its metadata session ends and nothing more leaves it (no cursor
 * flush, no ledger close succeeds); the requests it had sent to bookies still land. */
static void broker_crash(struct broker *b)
{
    ck_assert(b->own_meta);
    meta_set_offline(b->meta, true);
    ml_factory_free(b->f);
    bkc_client_free(b->bkc);
    meta_close(b->meta);
    tl_run_for(loop, 5);
    memset(b, 0, sizeof *b);
}

/* The crash tests: three bookies, cursors flushed every second; broker a (its own metadata
 * session, so it can crash) writes ML name, broker b reads it after the crash. */
struct crash {
    struct broker a, b;
    struct ml_config cfg;
    const char *name;
    struct ml_ledger *ml; /* a's, then b's */
    struct ml_cursor *c;  /* the durable cursor under test, on ml */
};

/* a opens the ML and the cursor, from the earliest entry. */
static void crash_start(struct crash *k, const char *name, const char *cursor)
{
    env_new(3);
    k->name = name;
    k->cfg = ml_cfg(3, 2, 2, 4, 1 << 20);
    k->cfg.cursor_flush_interval_ms = 1000;
    broker_new(&k->a, k->cfg, true);
    k->ml = open_ml(&k->a, name, NULL);
    k->c = ml_cursor_open(k->ml, cursor, true, ML_POS_EARLIEST, NULL);
}

/* a crashes; b opens the ML and the cursor as stored. */
static void crash_reopen(struct crash *k, const char *cursor)
{
    broker_crash(&k->a);
    broker_new(&k->b, k->cfg, false);
    k->ml = open_ml(&k->b, k->name, NULL);
    k->c = ml_cursor_open(k->ml, cursor, true, ML_POS_LATEST, NULL);
    ck_assert_ptr_nonnull(k->c);
}

static void crash_end(struct crash *k)
{
    ml_close(k->ml);
    broker_free(&k->b);
    env_free();
}

/* Cursor recovery after a crash: the cursor restarts at its last flushed state: the acks
 * flushed before the crash stay (their entries are not delivered again), the ones after it
 * come again, nothing unacknowledged is skipped, and the mark-delete position does not go
 * back behind what was stored. */
START_TEST(test_cursor_recovery_after_crash)
{
    struct crash k;
    crash_start(&k, "t/ns/persistent/crash", "s");
    struct ml_cursor *c = k.c;
    struct ml_position pos[16];
    int seen[16];
    ck_assert_int_eq(append_n(k.ml, 0, 10, NULL, NULL), 10);
    ck_assert_int_eq(read_all(c, seen, 16, pos), 10);
    ml_cursor_ack_cumulative(c, pos[3]);
    ml_cursor_ack(c, pos[6], NULL, 0, 0);
    tl_run_for(loop, 1500); /* flushed: M = 3, 6 acked */
    struct ml_position flushed = ml_cursor_mark_delete(c);
    ck_assert_int_eq(ml_pos_cmp(flushed, pos[3]), 0);
    ck_assert_int_eq(ml_pos_cmp(stored_mark_delete(k.name, "s"), pos[3]), 0);
    ml_cursor_ack_cumulative(c, pos[5]); /* M moves to 6 in memory only */
    ml_cursor_ack(c, pos[8], NULL, 0, 0);
    ck_assert_int_eq(ml_pos_cmp(ml_cursor_mark_delete(c), pos[6]), 0);
    tl_run_for(loop, 100); /* less than the flush interval */
    crash_reopen(&k, "s");
    c = k.c;
    ck_assert_int_eq(ml_pos_cmp(ml_cursor_mark_delete(c), flushed), 0);
    ck_assert_int_eq(ml_cursor_num_ranges(c), 1);
    int n = read_all(c, seen, 16, NULL);
    const int want[] = {4, 5, 7, 8, 9};
    ck_assert_int_eq(n, 5);
    for (int i = 0; i < n; i++)
        ck_assert_int_eq(seen[i], want[i]);
    crash_end(&k);
}
END_TEST

/* Mark-delete properties (ManagedCursorInfo.properties) are stored with the cursor and read
 * back by the next owner after a crash; a change of the properties alone (the mark-delete
 * does not move) is stored too. */
START_TEST(test_cursor_props_after_crash)
{
    struct crash k;
    crash_start(&k, "t/ns/persistent/props", "d");
    struct ml_position last;
    ck_assert_int_eq(append_n(k.ml, 0, 6, &last, NULL), 6);
    const struct ml_cursor_prop two[] = {{"x", 5}, {"y", -7}};
    ml_cursor_mark_delete_props(k.c, last, two, 2);
    tl_run_for(loop, 1500);
    const struct ml_cursor_prop one[] = {{"x", 9}};
    ml_cursor_mark_delete_props(k.c, last, one, 1); /* the same position: properties only */
    const struct ml_cursor_prop *got;
    ck_assert_int_eq(ml_cursor_props(k.c, &got), 1);
    tl_run_for(loop, 1500);
    crash_reopen(&k, "d");
    ck_assert_int_eq(ml_pos_cmp(ml_cursor_mark_delete(k.c), last), 0);
    ck_assert_int_eq(ml_cursor_props(k.c, &got), 1);
    ck_assert_str_eq(got[0].name, "x");
    ck_assert_int_eq(got[0].value, 9);
    crash_end(&k);
}
END_TEST

/* Appends reach only the bookies the filter lets through (E = Qw = 3, Qa = 2). */
static bool add_reaches[MAX_BOOKIES];
static bool add_filter_on;

static void reach_filter(void *arg, const struct bkc_fake_req *r, struct bkc_fake_action *a)
{
    (void)arg;
    if (add_filter_on && r->add && !r->recovery && !add_reaches[r->bookie])
        a->verdict = BKC_FAKE_DROP;
}

/* The broker crashes while its last appends reached only some bookies: two (acknowledged,
 * Qa = 2) then one (never acknowledged). The next owner recovers the ledger: every
 * acknowledged append is there at its position with its bytes, the unacknowledged one is
 * there or not (both are correct), and nothing else is. */
START_TEST(test_partial_adds_recovered)
{
    env_new(3);
    bkc_fake_set_filter(fake, reach_filter, NULL);
    struct broker a, b;
    struct ml_config cfg = ml_cfg(3, 3, 2, 1000, 1 << 20);
    broker_new(&a, cfg, true);
    const char *name = "t/ns/persistent/partial";
    struct ml_ledger *ml = open_ml(&a, name, NULL);
    ck_assert_int_eq(append_n(ml, 0, 5, NULL, NULL), 5);
    add_filter_on = true;
    add_reaches[0] = add_reaches[1] = true;
    struct ml_position last;
    ck_assert_int_eq(append_n(ml, 5, 3, &last, NULL), 3); /* two copies: acknowledged */
    add_reaches[1] = false;
    struct tl_append x = {0};
    x.req.data = &x;
    ck_assert_int_eq(ml_append(ml, payload(8), NULL, &x.req, tl_append_cb), 0);
    tl_run_for(loop, 100);
    ck_assert(!x.done); /* one copy: never acknowledged */
    add_filter_on = false;
    broker_crash(&a);
    ck_assert(x.done);

    broker_new(&b, cfg, false);
    ml = open_ml(&b, name, NULL);
    struct ml_stats st;
    ml_get_stats(ml, &st);
    ck_assert_int_ge(st.number_of_entries, 8);
    ck_assert_int_le(st.number_of_entries, 9);
    struct ml_cursor *c = ml_cursor_open(ml, "r", false, ML_POS_EARLIEST, NULL);
    int seen[16];
    struct ml_position pos[16];
    int n = read_all(c, seen, 16, pos);
    ck_assert_int_eq(n, st.number_of_entries);
    for (int i = 0; i < n; i++)
        ck_assert_int_eq(seen[i], i);
    ck_assert_int_eq(ml_pos_cmp(pos[7], last), 0);
    ml_cursor_close(c);
    ml_close(ml);
    broker_free(&b);
    memset(add_reaches, 0, sizeof add_reaches);
    env_free();
}
END_TEST

/* Adds of entry 3 on fail at every bookie (the filter answers EIO), with no spare bookie. */
static int64_t fail_adds_from = -1;

static void fail_filter(void *arg, const struct bkc_fake_req *r, struct bkc_fake_action *a)
{
    (void)arg;
    if (r->add && fail_adds_from >= 0 && r->entry >= fail_adds_from) {
        a->verdict = BKC_FAKE_ERROR;
        a->rc = 101; /* EIO */
    }
}

/* Appends that failed leave no positions behind: once the ledger they went to failed, its
 * entries end at the last confirmed one, so a cursor whose every entry is acknowledged
 * individually has its mark-delete at the last entry, with no range left, as after a reopen.
 * (Before, the failed appends' positions still counted as entries of the broken ledger until
 * the ML was reopened: mark-delete stayed in front of them and every later ack became a
 * range.) */
START_TEST(test_failed_appends_leave_no_positions)
{
    env_new(2);
    bkc_fake_set_filter(fake, fail_filter, NULL);
    struct broker b;
    broker_new(&b, ml_cfg(2, 2, 2, 1000, 1 << 20), false);
    struct ml_ledger *ml = open_ml(&b, "t/ns/persistent/failed", NULL);
    struct ml_cursor *c = ml_cursor_open(ml, "s", true, ML_POS_EARLIEST, NULL);
    ck_assert_int_eq(append_n(ml, 0, 3, NULL, NULL), 3);
    fail_adds_from = 3;
    int err = 0;
    ck_assert_int_eq(append_n(ml, 3, 2, NULL, &err), 0);
    ck_assert_msg(err == -MG_ENOBOOKIES, "append: %s", mg_errname(err));
    fail_adds_from = -1;
    struct ml_position last;
    ck_assert_int_eq(append_n(ml, 5, 2, &last, NULL), 2); /* on a new ledger */
    int seen[16];
    struct ml_position pos[16];
    ck_assert_int_eq(read_all(c, seen, 16, pos), 5);
    for (int i = 4; i >= 0; i--) /* individually, newest first */
        ml_cursor_ack(c, pos[i], NULL, 0, 0);
    ck_assert_int_eq(ml_pos_cmp(ml_cursor_mark_delete(c), last), 0);
    ck_assert_int_eq(ml_cursor_num_ranges(c), 0);
    ck_assert_int_eq(ml_cursor_backlog(c), 0);
    ml_close(ml);
    broker_free(&b);
    env_free();
}
END_TEST

/* ml_terminate waits for the appends accepted before it, refuses later ones, stores the
 * position in ManagedLedgerInfo.terminatedPosition, and a reopen (a new broker) finds the
 * ML still terminated at that position. */
struct term_res {
    bool done;
    int status;
    struct ml_position pos;
};

static void term_cb(struct ml_ledger *ml, struct ml_position last, int status, void *data)
{
    (void)ml;
    struct term_res *r = data;
    r->done = true;
    r->status = status;
    r->pos = last;
}

static struct ml_position terminate_ml(struct ml_ledger *ml)
{
    struct term_res r = {0};
    ck_assert_int_eq(ml_terminate(ml, term_cb, &r), 0);
    ck_assert(!r.done); /* never inside the call */
    tl_wait(loop, &r.done);
    ck_assert_msg(r.status == 0, "terminate: %s", mg_strerror(r.status));
    return r.pos;
}

START_TEST(test_terminate_survives_reopen)
{
    env_new(3);
    struct broker b;
    broker_new(&b, ml_cfg(3, 2, 2, 4, 1 << 20), false);
    struct ml_ledger *ml = open_ml(&b, "t/ns/persistent/term", NULL);
    ck_assert_int_eq(append_n(ml, 0, 5, NULL, NULL), 5);
    ck_assert(!ml_is_terminated(ml));
    /* appends in flight when the terminate comes are kept; the terminate answers after them */
    struct tl_append a[3] = {0};
    for (int i = 0; i < 3; i++) {
        a[i].req.data = &a[i];
        ck_assert_int_eq(ml_append(ml, payload(5 + i), NULL, &a[i].req, tl_append_cb), 0);
    }
    struct term_res r = {0};
    ck_assert_int_eq(ml_terminate(ml, term_cb, &r), 0);
    ck_assert(ml_is_terminated(ml));
    struct ml_append_req late = {0};
    ck_assert_int_eq(ml_append(ml, payload(99), NULL, &late, tl_append_cb), -MG_ETERMINATED);
    tl_wait(loop, &r.done);
    ck_assert_int_eq(r.status, 0);
    for (int i = 0; i < 3; i++) {
        ck_assert(a[i].done);
        ck_assert_int_eq(a[i].status, 0);
    }
    ck_assert_int_eq(ml_pos_cmp(r.pos, a[2].pos), 0);
    ck_assert_int_eq(ml_pos_cmp(r.pos, ml_last_confirmed(ml)), 0);
    Pulsar__Ml__ManagedLedgerInfo *info = ml_info("t/ns/persistent/term");
    ck_assert_ptr_nonnull(info->terminatedposition);
    ck_assert_int_eq(info->terminatedposition->ledgerid, r.pos.ledger);
    ck_assert_int_eq(info->terminatedposition->entryid, r.pos.entry);
    pulsar__ml__managed_ledger_info__free_unpacked(info, NULL);
    /* again: the same position */
    ck_assert_int_eq(ml_pos_cmp(terminate_ml(ml), r.pos), 0);
    ml_close(ml);
    broker_free(&b);

    broker_new(&b, ml_cfg(3, 2, 2, 4, 0), true);
    ml = open_ml(&b, "t/ns/persistent/term", NULL);
    ck_assert(ml_is_terminated(ml));
    struct ml_position tp;
    ck_assert(ml_terminated_position(ml, &tp));
    ck_assert_int_eq(ml_pos_cmp(tp, r.pos), 0);
    ck_assert_int_eq(ml_append(ml, payload(100), NULL, &late, tl_append_cb), -MG_ETERMINATED);
    ck_assert_int_eq(ml_pos_cmp(terminate_ml(ml), r.pos), 0);
    int seen[16];
    struct ml_cursor *c = ml_cursor_open(ml, "r", false, ML_POS_EARLIEST, NULL);
    ck_assert_int_eq(read_all(c, seen, 16, NULL), 8);
    ml_cursor_close(c);
    /* the list the new owner wrote (with its new ledger) still says terminated */
    info = ml_info("t/ns/persistent/term");
    ck_assert_ptr_nonnull(info->terminatedposition);
    ck_assert_int_eq(info->terminatedposition->entryid, r.pos.entry);
    pulsar__ml__managed_ledger_info__free_unpacked(info, NULL);
    ml_close(ml);
    broker_free(&b);
    env_free();
}
END_TEST

/* ---- tail cache bound ------------------------------------------------------------------- */

/* Bytes the allocator has handed out and not taken back (ASan's count under ASan). */
static size_t heap_in_use(void)
{
#if TL_ASAN
    return __sanitizer_get_current_allocated_bytes();
#else
    struct mallinfo2 mi = mallinfo2();
    return mi.uordblks + mi.hblkhd;
#endif
}

/* Message i as a connection hands it over: a KiB of payload in a buffer whose chain is
 * much larger than the payload (the socket's read chains are relinked, not copied). */
static struct evbuffer *wire_like_payload(int i)
{
    struct evbuffer *b = evbuffer_new();
    ck_assert_int_eq(evbuffer_expand(b, 16384), 0);
    evbuffer_add_printf(b, "message-%04d", i);
    char pad[1012];
    memset(pad, 'x', sizeof pad);
    evbuffer_add(b, pad, sizeof pad);
    return b;
}

/* A broker on one fake bookie whose tail cache holds cache bytes and evicts after ttl_ms
 * (checked every 10 ms), and an ML of it; cache_env_end closes both. */
static struct ml_ledger *cache_env(struct broker *b, size_t cache, int64_t ttl_ms, const char *name)
{
    env_new(1);
    struct ml_config cfg = ml_cfg(1, 1, 1, 100000, cache);
    cfg.cache_eviction_time_ms = ttl_ms;
    cfg.cache_eviction_interval_ms = 10;
    broker_new(b, cfg, false);
    return open_ml(b, name, NULL);
}

static void cache_env_end(struct broker *b, struct ml_ledger *ml)
{
    ml_close(ml);
    broker_free(b);
    env_free();
}

/* Appends n wire-like entries (numbered from 0) with the given cache bound, checking the
 * factory's cache never exceeds it; returns the heap growth over the appends (the
 * fake bookies' copies, the ML's metadata and what the cache keeps). */
static size_t cache_run(size_t cache, int n)
{
    struct broker b;
    struct ml_ledger *ml = cache_env(&b, cache, 0, "t/ns/persistent/cachebound");
    tl_run_for(loop, 10);
    size_t before = heap_in_use();
    struct tl_append a[50];
    for (int done = 0; done < n; done += 50) {
        for (int i = 0; i < 50; i++) {
            memset(&a[i], 0, sizeof a[i]);
            a[i].req.data = &a[i];
            ck_assert_int_eq(
                ml_append(ml, wire_like_payload(done + i), NULL, &a[i].req, tl_append_cb), 0);
        }
        for (int i = 0; i < 50; i++) {
            tl_wait(loop, &a[i].done);
            ck_assert_int_eq(a[i].status, 0);
        }
        ck_assert_uint_le(b.f->cache_bytes, cache);
    }
    tl_run_for(loop, 1);
    size_t grown = heap_in_use() - before;
    if (cache > 0)
        ck_assert_uint_gt(b.f->cache_bytes, cache / 2); /* the cache is used, not bypassed */

    /* Reads of evicted entries come back from the bookie, all of them, in order. */
    expect_read_back(ml, "r", n);
    cache_env_end(&b, ml);
    return grown;
}

/* managedLedgerCacheSizeMB bounds memory, not payload bytes: under a stream of appends the
 * heap the tail cache holds (growth with the cache minus growth without it) stays within
 * the configured size, though each entry arrives in a buffer far larger than itself. */
START_TEST(test_cache_bounds_heap)
{
    const size_t limit = 256 << 10;
    const int n = 1000; /* ~1 MiB of payload, 4x the bound */
    size_t without = cache_run(0, n);
    size_t with = cache_run(limit, n);
    ck_assert_msg(with <= without + limit + limit / 8,
                  "the cache holds %zu bytes of heap for a %zu-byte bound",
                  with > without ? with - without : 0, limit);
}
END_TEST

/* Cached entries older than cache_eviction_time_ms leave the cache, and the eviction
 * timer stops once it is empty (an idle broker has no timer); a read after that comes from
 * the bookie. */
START_TEST(test_cache_time_eviction)
{
    struct broker b;
    struct ml_ledger *ml = cache_env(&b, 1 << 20, 500, "t/ns/persistent/cachetime");
    ck_assert_int_eq(append_n(ml, 0, 10, NULL, NULL), 10);
    ck_assert_uint_gt(b.f->cache_bytes, 0);
    ck_assert(mg_timer_pending(&b.f->evict_tmr));
    tl_run_for(loop, 300);
    ck_assert_int_eq(append_n(ml, 10, 10, NULL, NULL), 10); /* younger ones */
    size_t both = b.f->cache_bytes;
    tl_run_for(loop, 300); /* the first ten are 600 ms old, the others ~300 */
    ck_assert_uint_gt(b.f->cache_bytes, 0);
    ck_assert_uint_lt(b.f->cache_bytes, both);
    tl_run_for(loop, 400);
    ck_assert_uint_eq(b.f->cache_bytes, 0);
    ck_assert(!mg_timer_pending(&b.f->evict_tmr));
    expect_read_back(ml, "r", 20);
    cache_env_end(&b, ml);
}
END_TEST

/* Entries every open cursor has read leave the cache within the eviction interval, long
 * before their time is up (Pulsar's slowest-reader eviction); entries a cursor has not read
 * stay. A reader that comes later gets them from the bookie. */
START_TEST(test_cache_evicts_what_all_read)
{
    struct broker b;
    struct ml_ledger *ml = cache_env(&b, 1 << 20, 60000, "t/ns/persistent/cacheread");
    struct ml_cursor *fast = ml_cursor_open(ml, "fast", false, ML_POS_LATEST, NULL);
    struct ml_cursor *slow = ml_cursor_open(ml, "slow", false, ML_POS_LATEST, NULL);
    ck_assert_ptr_nonnull(fast);
    ck_assert_ptr_nonnull(slow);
    ck_assert_int_eq(append_n(ml, 0, 10, NULL, NULL), 10);
    int seen[16];
    ck_assert_int_eq(read_all(fast, seen, 16, NULL), 10);
    tl_run_for(loop, 50);
    size_t ten = b.f->cache_bytes;
    ck_assert_uint_gt(ten, 0); /* "slow" has read nothing: all ten stay */
    struct tl_read r = {0};
    r.req.data = &r;
    ck_assert_int_eq(ml_cursor_read(slow, 4, 0, &r.req, tl_read_cb), 0);
    tl_wait(loop, &r.done);
    ck_assert_int_eq(r.req.n, 4);
    tl_read_release(&r);
    tl_run_for(loop, 50);
    ck_assert_uint_gt(b.f->cache_bytes, 0);
    ck_assert_uint_lt(b.f->cache_bytes, ten); /* the four both have read are gone */
    ck_assert_int_eq(read_all(slow, seen, 16, NULL), 6);
    tl_run_for(loop, 50);
    ck_assert_uint_eq(b.f->cache_bytes, 0);
    expect_read_back(ml, "late", 10);
    ml_cursor_close(fast);
    ml_cursor_close(slow);
    cache_env_end(&b, ml);
}
END_TEST

static Suite *ml_bk_suite(void)
{
    Suite *s = suite_create("ml_bk");
    TCase *tc = tl_tcase(s, "bookkeeper", 120, NULL, NULL);
    tl_add(tc, test_roundtrip_standalone, test_entry_info_of_bookie_reads,
           test_oversized_append_alone, test_cursor_retry_backoff, test_roll_backoff);
    tcase_add_loop_test(tc, test_lost_middle_ledger, 0, 2);
    tcase_add_loop_test(tc, test_lost_last_ledger, 0, 2);
    tl_add(tc, test_last_ledger_bad_id);
    tl_add(tc, test_rollover_recorded, test_reopen, test_cursor_survives_reopen,
           test_takeover_fences_and_skips_nothing, test_cursor_recovery_after_crash,
           test_cursor_props_after_crash, test_partial_adds_recovered,
           test_failed_appends_leave_no_positions, test_bookie_lost_midstream,
           test_not_enough_bookies_then_back, test_trim_consumed, test_retention_keeps,
           test_delete_ml, test_terminate_survives_reopen, test_cache_bounds_heap,
           test_cache_time_eviction, test_cache_evicts_what_all_read);
    return s;
}

int main(void)
{
    return tl_run(ml_bk_suite());
}
