/*
 * check_ml.c - unit tests of the ml module (managed ledger over the memory store).
 *
 * Covers: in-order asynchronous appends, rollover and positions across ledgers, cursors
 * from latest/earliest, reads (waiting, canceled, from the tail cache and from the store,
 * byte limits), individual/cumulative/batch-index acks and their ranges, backlog, rewind,
 * reset, skip, clear_backlog, durable vs non-durable cursors, replay, trimming,
 * find_by_time over real Pulsar entries, close/delete with pending work, and a 100,000-ack
 * stress test in random order.
 * The event loop is driven with EVLOOP_ONCE|EVLOOP_NONBLOCK in bounded loops.
 * Failure modes: each test asserts with Check; run with CK_FORK=no under ASan.
 */
#include "lib/tl_bk.h"
#include "lib/tl_pulsar.h"
#include "ml/ml.h"
#include "ml/ml_int.h"
#include "util/alloc.h"
#include "util/err.h"
#include "util/loop.h"

#include <check.h>
#include <event2/buffer.h>
#include <event2/event.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static struct event_base *base;
static struct mg_loop *loop;
static struct ml_factory *fac;

static bool auto_skip; /* fx_new: autoSkipNonRecoverableData */

static void fx_new(size_t cache, int64_t max_entries)
{
    struct ml_config cfg = {
        .cache_size_bytes = cache,
        .max_entries_per_ledger = max_entries,
        .max_size_per_ledger = 1 << 30,
        .auto_skip_non_recoverable_data = auto_skip,
    };
    base = event_base_new();
    loop = mg_loop_new(base);
    ck_assert_ptr_nonnull(base);
    fac = ml_factory_new(loop, "memory", &cfg);
    ck_assert_ptr_nonnull(fac);
}

static void fx_free(void)
{
    ml_factory_free(fac);
    fac = NULL;
    mg_loop_free(loop);
    event_base_free(base);
    base = NULL;
}

static void pump(int n)
{
    tl_passes(base, n);
}

static bool ml_idle(const void *arg)
{
    const struct ml_ledger *ml = arg;
    return !ml->rolling && !ml->trimming;
}

/* Until nothing is in flight in ml (no rollover, no trim write), bounded. */
static void settle(const struct ml_ledger *ml)
{
    ck_assert(tl_until(loop, ml_idle, ml, tl_wait_ms(loop)));
}

static struct ml_position P(int64_t l, int64_t e) {
    return (struct ml_position){l, e};
}

#define ck_assert_pos(a, l, e)                                                                     \
    do {                                                                                           \
        struct ml_position p_ = (a);                                                               \
        ck_assert_msg(p_.ledger == (l) && p_.entry == (e), "position %lld:%lld != %lld:%lld",      \
                      (long long)p_.ledger, (long long)p_.entry, (long long)(l), (long long)(e));  \
    } while (0)

/* ---- helpers --------------------------------------------------------------------------- */

static struct ml_ledger *
open_ml(const char *name)
{
    return tl_ml_open(fac, name, NULL);
}

static struct evbuffer *buf_str(const char *s)
{
    struct evbuffer *b = evbuffer_new();
    evbuffer_add(b, s, strlen(s));
    return b;
}

/* Append the entry b (taken) and wait for it to be stored. */
static struct ml_position append_buf(struct ml_ledger *ml, struct evbuffer *b)
{
    struct tl_append a = {.req.data = NULL};
    a.req.data = &a;
    ck_assert_int_eq(ml_append(ml, b, NULL, &a.req, tl_append_cb), 0);
    ck_assert(!a.done);
    tl_wait(loop, &a.done);
    ck_assert_int_eq(a.status, 0);
    return a.pos;
}

static struct ml_position append_str(struct ml_ledger *ml, const char *s)
{
    return append_buf(ml, buf_str(s));
}

/* Append n entries of the len bytes at p, one after the other. */
static void append_bytes(struct ml_ledger *ml, const void *p, size_t len, int n)
{
    for (int i = 0; i < n; i++) {
        struct evbuffer *b = evbuffer_new();
        evbuffer_add(b, p, len);
        append_buf(ml, b);
    }
}

/* Append n entries "m<i>" at once, then wait for all. */
static void append_n(struct ml_ledger *ml, int n)
{
    struct tl_append *a = calloc((size_t)n, sizeof *a);
    char tmp[32];
    for (int i = 0; i < n; i++) {
        a[i].req.data = &a[i];
        snprintf(tmp, sizeof tmp, "m%d", i);
        ck_assert_int_eq(ml_append(ml, buf_str(tmp), NULL, &a[i].req, tl_append_cb), 0);
    }
    tl_wait(loop, &a[n - 1].done);
    for (int i = 0; i < n; i++)
        ck_assert_int_eq(a[i].status, 0);
    free(a);
}

static void read_sync(struct ml_cursor *c, int max, struct tl_read *r)
{
    memset(r, 0, sizeof *r);
    r->req.data = r;
    ck_assert_int_eq(ml_cursor_read(c, max, 0, &r->req, tl_read_cb), 0);
    ck_assert(!r->done);
    tl_wait(loop, &r->done);
    ck_assert_int_eq(r->status, 0);
}

static void ck_entry_text(const struct ml_entry *e, const char *s)
{
    char tmp[64] = "";
    size_t n = evbuffer_get_length(e->data);
    ck_assert_uint_lt(n, sizeof tmp);
    evbuffer_copyout(e->data, tmp, n);
    ck_assert_str_eq(tmp, s);
}

static void ck_ranges(const struct ml_cursor *c, const char *want)
{
    char *s = ml_cursor_ranges_string(c);
    ck_assert_str_eq(s, want);
    mg_free(s);
}

/* ---- appends and positions ----------------------------------------------------------- */

START_TEST(test_unknown_store)
{
    struct event_base *b = event_base_new();
    struct mg_loop *l = mg_loop_new(b);
    ck_assert_ptr_null(ml_factory_new(l, "nope", NULL));
    mg_loop_free(l);
    event_base_free(b);
    ml_factory_free(NULL);
    ml_entry_unref(NULL);
}
END_TEST

START_TEST(test_append_order_async)
{
    fx_new(1 << 20, 1000);
    struct ml_ledger *ml = open_ml("t/ns/persistent/a");
    ck_assert_str_eq(ml_name(ml), "t/ns/persistent/a");
    struct ml_position lac0 = ml_last_confirmed(ml);
    ck_assert_int_eq(lac0.entry, -1);
    int64_t L = lac0.ledger;
    ck_assert_int_ge(L, 1);

    struct tl_append a[5];
    memset(a, 0, sizeof a);
    tl_append_order = 0;
    for (int i = 0; i < 5; i++) {
        a[i].req.data = &a[i];
        ck_assert_int_eq(ml_append(ml, buf_str("x"), NULL, &a[i].req, tl_append_cb), 0);
        ck_assert(!a[i].done); /* never synchronously */
    }
    struct ml_stats st;
    ml_get_stats(ml, &st);
    ck_assert_int_eq(st.pending_appends, 5);
    tl_wait(loop, &a[4].done);
    for (int i = 0; i < 5; i++) {
        ck_assert_int_eq(a[i].status, 0);
        ck_assert_int_eq(a[i].order, i);
        ck_assert_pos(a[i].pos, L, i);
        ck_assert_uint_eq(a[i].entry_size, 1);
    }
    ck_assert_pos(ml_last_confirmed(ml), L, 4);
    ml_get_stats(ml, &st);
    ck_assert_int_eq(st.entries_added, 5);
    ck_assert_int_eq(st.number_of_entries, 5);
    ck_assert_int_eq(st.total_size, 5);
    ck_assert_int_eq(st.pending_appends, 0);
    ck_assert_int_eq(st.num_ledgers, 1);
    ck_assert_int_eq(st.current_ledger_entries, 5);

    /* A second open gives the same handle; one close keeps it open. */
    struct ml_ledger *ml2 = open_ml("t/ns/persistent/a");
    ck_assert_ptr_eq(ml, ml2);
    ml_close(ml2);
    ck_assert_pos(append_str(ml, "y"), L, 5);
    ml_close(ml);
    fx_free();
}
END_TEST

START_TEST(test_entry_metadata)
{
    /* The managed ledger does not read the bytes: what the appender says of an entry is what
     * its readers see; without it, one message and no metadata. */
    fx_new(1 << 20, 1000);
    struct ml_ledger *ml = open_ml("t/ns/persistent/md");
    struct tl_append a = {0};
    a.req.data = &a;
    struct ml_entry_info info = {.num_messages = 5,
                                 .batched = true,
                                 .publish_time = 1234,
                                 .key_hash = 4321,
                                 .deliver_at_time = 99};
    ck_assert_int_eq(ml_append(ml, buf_str("a batch"), &info, &a.req, tl_append_cb), 0);
    tl_wait(loop, &a.done);
    struct tl_append b = {0};
    b.req.data = &b;
    ck_assert_int_eq(ml_append(ml, buf_str("not pulsar"), NULL, &b.req, tl_append_cb), 0);
    tl_wait(loop, &b.done);

    struct ml_cursor *c = ml_cursor_open(ml, "s", false, ML_POS_EARLIEST, NULL);
    struct tl_read r;
    read_sync(c, 10, &r);
    ck_assert_int_eq(r.req.n, 2);
    ck_assert_int_eq(r.req.entries[0]->num_messages, 5);
    ck_assert(r.req.entries[0]->batched);
    ck_assert_uint_eq(r.req.entries[0]->publish_time, 1234);
    ck_assert_uint_eq(r.req.entries[0]->key_hash, 4321);
    ck_assert_int_eq(r.req.entries[0]->deliver_at_time, 99);
    ck_assert_int_eq(r.req.entries[1]->num_messages, 1);
    ck_assert(!r.req.entries[1]->batched);
    ck_assert_uint_eq(r.req.entries[1]->publish_time, 0);
    ck_assert_uint_eq(r.req.entries[1]->key_hash, 0);
    tl_read_release(&r);
    ml_cursor_close(c);
    ml_close(ml);
    fx_free();
}
END_TEST

START_TEST(test_rollover)
{
    fx_new(1 << 20, 3);
    struct ml_ledger *ml = open_ml("t/ns/persistent/roll");
    int64_t L = ml_last_confirmed(ml).ledger;
    struct ml_position p[7];
    for (int i = 0; i < 7; i++)
        p[i] = append_str(ml, "e");
    int64_t L2 = p[3].ledger, L3 = p[6].ledger;
    ck_assert_pos(p[0], L, 0);
    ck_assert_pos(p[2], L, 2);
    ck_assert_int_gt(L2, L);
    ck_assert_pos(p[3], L2, 0);
    ck_assert_pos(p[5], L2, 2);
    ck_assert_int_gt(L3, L2);
    ck_assert_pos(p[6], L3, 0);

    ck_assert_pos(ml_next_position(ml, P(L, 1)), L, 2);
    ck_assert_pos(ml_next_position(ml, P(L, 2)), L2, 0);
    ck_assert_pos(ml_next_position(ml, P(L2, 2)), L3, 0);
    ck_assert_pos(ml_next_position(ml, P(L3, 0)), L3, 1);
    ck_assert_pos(ml_next_position(ml, ML_POS_EARLIEST), L, 0);
    ck_assert_pos(ml_first_position(ml), L, 0);
    ck_assert_pos(ml_last_confirmed(ml), L3, 0);
    ck_assert_int_eq(ml_count_entries(ml, ML_POS_EARLIEST, ml_last_confirmed(ml)), 7);
    ck_assert_int_eq(ml_count_entries(ml, P(L, 1), P(L2, 1)), 3);
    ck_assert_int_eq(ml_count_entries(ml, P(L, 2), P(L2, 0)), 1);

    struct ml_stats st;
    ml_get_stats(ml, &st);
    ck_assert_int_eq(st.num_ledgers, 3);
    ck_assert_int_eq(st.current_ledger_entries, 1);
    ck_assert_int_eq(st.number_of_entries, 7);

    /* Reads cross the boundaries in order. */
    struct ml_cursor *c = ml_cursor_open(ml, "r", false, ML_POS_EARLIEST, NULL);
    ck_assert_pos(ml_cursor_mark_delete(c), L, -1);
    struct tl_read r;
    read_sync(c, 100, &r);
    ck_assert_int_eq(r.req.n, 7);
    for (int i = 0; i < 7; i++)
        ck_assert_int_eq(ml_pos_cmp(r.req.entries[i]->pos, p[i]), 0);
    tl_read_release(&r);
    ck_assert_pos(ml_cursor_read_position(c), L3, 1);

    /* Ledger id counter is per factory: a second ML continues it. */
    struct ml_ledger *other = open_ml("t/ns/persistent/other");
    ck_assert_int_gt(ml_last_confirmed(other).ledger, L3);
    ml_close(other);
    ml_cursor_close(c);
    ml_close(ml);
    fx_free();
}
END_TEST

START_TEST(test_rollover_by_size)
{
    struct ml_config cfg = {
        .cache_size_bytes = 8, .max_entries_per_ledger = 0, .max_size_per_ledger = 10};
    base = event_base_new();
    loop = mg_loop_new(base);
    fac = ml_factory_new(loop, "memory", &cfg);
    struct ml_ledger *ml = open_ml("t/ns/persistent/size");
    int64_t L = ml_last_confirmed(ml).ledger;
    struct ml_position p[4];
    for (int i = 0; i < 4; i++)
        p[i] = append_str(ml, "four");
    ck_assert_pos(p[2], L, 2); /* 12 bytes >= 10: the next append goes to a new ledger */
    ck_assert_int_gt(p[3].ledger, L);
    ck_assert_int_eq(p[3].entry, 0);
    /* The tail cache holds at most 8 bytes: reads of older entries go to the store. */
    ck_assert_uint_le(fac->cache_bytes, 8);
    struct ml_cursor *c = ml_cursor_open(ml, "s", false, ML_POS_EARLIEST, NULL);
    struct tl_read r;
    read_sync(c, 10, &r);
    ck_assert_int_eq(r.req.n, 4);
    for (int i = 0; i < 4; i++)
        ck_entry_text(r.req.entries[i], "four");
    tl_read_release(&r);
    ml_cursor_close(c);
    ml_close(ml);
    fx_free();
}
END_TEST

/* ---- cursors and reads ---------------------------------------------------------------- */

START_TEST(test_cursor_latest_earliest)
{
    fx_new(1 << 20, 1000);
    struct ml_ledger *ml = open_ml("t/ns/persistent/le");
    int64_t L = ml_last_confirmed(ml).ledger;
    struct ml_cursor *empty = ml_cursor_open(ml, "e0", false, ML_POS_EARLIEST, NULL);
    ck_assert_pos(ml_cursor_mark_delete(empty), L, -1);
    ck_assert(!ml_cursor_has_more(empty));
    append_n(ml, 3);
    ck_assert(ml_cursor_has_more(empty));
    int err = 1;
    struct ml_cursor *latest = ml_cursor_open(ml, "l", true, ML_POS_LATEST, &err);
    ck_assert_int_eq(err, 0);
    ck_assert_pos(ml_cursor_mark_delete(latest), L, 2);
    ck_assert_int_eq(ml_cursor_backlog(latest), 0);
    ck_assert(!ml_cursor_has_more(latest));
    struct ml_cursor *earliest = ml_cursor_open(ml, "e", true, ML_POS_EARLIEST, &err);
    ck_assert_pos(ml_cursor_mark_delete(earliest), L, -1);
    ck_assert_int_eq(ml_cursor_backlog(earliest), 3);
    ck_assert_pos(ml_cursor_read_position(earliest), L, 0);
    struct ml_cursor *mid = ml_cursor_open(ml, "m", false, P(L, 1), &err);
    ck_assert_pos(ml_cursor_mark_delete(mid), L, 0);
    ck_assert_int_eq(ml_cursor_backlog(mid), 2);
    ck_assert(ml_cursor_durable(latest));
    ck_assert(!ml_cursor_durable(mid));
    ck_assert_str_eq(ml_cursor_name(mid), "m");
    ml_cursor_close(empty);
    ml_cursor_close(latest);
    ml_cursor_close(earliest);
    ml_cursor_close(mid);
    ml_close(ml);
    fx_free();
}
END_TEST

START_TEST(test_read_waits)
{
    fx_new(1 << 20, 1000);
    struct ml_ledger *ml = open_ml("t/ns/persistent/rw");
    append_str(ml, "a");
    append_str(ml, "b");
    append_str(ml, "c");
    struct ml_cursor *c = ml_cursor_open(ml, "s", true, ML_POS_EARLIEST, NULL);
    struct tl_read r;
    read_sync(c, 2, &r);
    ck_assert_int_eq(r.req.n, 2);
    ck_entry_text(r.req.entries[0], "a");
    ck_entry_text(r.req.entries[1], "b");
    tl_read_release(&r);
    read_sync(c, 10, &r);
    ck_assert_int_eq(r.req.n, 1);
    ck_entry_text(r.req.entries[0], "c");
    tl_read_release(&r);

    /* Nothing left: the read waits until an append completes. */
    memset(&r, 0, sizeof r);
    r.req.data = &r;
    ck_assert_int_eq(ml_cursor_read(c, 10, 0, &r.req, tl_read_cb), 0);
    struct tl_read r2 = {.req.data = NULL};
    r2.req.data = &r2;
    ck_assert_int_eq(ml_cursor_read(c, 10, 0, &r2.req, tl_read_cb), -MG_EBUSY);
    pump(20);
    ck_assert(!r.done);
    append_str(ml, "d");
    tl_wait(loop, &r.done);
    ck_assert_int_eq(r.status, 0);
    ck_assert_int_eq(r.req.n, 1);
    ck_entry_text(r.req.entries[0], "d");
    tl_read_release(&r);
    ml_cursor_close(c);
    ml_close(ml);
    fx_free();
}
END_TEST

START_TEST(test_cancel_read)
{
    fx_new(1 << 20, 1000);
    struct ml_ledger *ml = open_ml("t/ns/persistent/cr");
    struct ml_cursor *c = ml_cursor_open(ml, "s", true, ML_POS_LATEST, NULL);
    ck_assert_int_eq(ml_cursor_cancel_read(c), -MG_ENOTFOUND);
    struct tl_read r = {0};
    r.req.data = &r;
    ck_assert_int_eq(ml_cursor_read(c, 10, 0, &r.req, tl_read_cb), 0);
    pump(5);
    ck_assert(!r.done);
    ck_assert_int_eq(ml_cursor_cancel_read(c), 0);
    ck_assert(r.done);
    ck_assert_int_eq(r.status, -MG_ECANCELED);
    ck_assert_int_eq(r.req.n, 0);
    ck_assert_int_eq(ml_cursor_cancel_read(c), -MG_ENOTFOUND);
    /* Cancel before the queued read ran. */
    memset(&r, 0, sizeof r);
    r.req.data = &r;
    ck_assert_int_eq(ml_cursor_read(c, 10, 0, &r.req, tl_read_cb), 0);
    ck_assert_int_eq(ml_cursor_cancel_read(c), 0);
    ck_assert_int_eq(r.status, -MG_ECANCELED);
    /* The cursor reads normally afterwards. */
    append_str(ml, "z");
    read_sync(c, 10, &r);
    ck_assert_int_eq(r.req.n, 1);
    tl_read_release(&r);
    ml_cursor_close(c);
    ml_close(ml);
    fx_free();
}
END_TEST

START_TEST(test_individual_acks)
{
    fx_new(1 << 20, 1000);
    struct ml_ledger *ml = open_ml("t/ns/persistent/ia");
    int64_t L = ml_last_confirmed(ml).ledger;
    append_n(ml, 6);
    char want[128];
    struct ml_cursor *c = ml_cursor_open(ml, "s", true, P(L, 1), NULL); /* M = L:0 */
    ck_assert_pos(ml_cursor_mark_delete(c), L, 0);
    ck_ranges(c, "[]");
    ck_assert_int_eq(ml_cursor_ack(c, P(L, 3), NULL, 0, 0), 1);
    snprintf(want, sizeof want, "[(%lld:2..%lld:3]]", (long long)L, (long long)L);
    ck_ranges(c, want);
    ck_assert_int_eq(ml_cursor_num_ranges(c), 1);
    ck_assert_int_eq(ml_cursor_ack(c, P(L, 3), NULL, 0, 0), 0);  /* again: no-op */
    ck_assert_int_eq(ml_cursor_ack(c, P(L, 0), NULL, 0, 0), 0);  /* <= M */
    ck_assert_int_eq(ml_cursor_ack(c, P(L, 99), NULL, 0, 0), 0); /* beyond */
    ck_assert_int_eq(ml_cursor_ack(c, P(L, 1), NULL, 0, 0), 1);  /* merges into M */
    ck_assert_pos(ml_cursor_mark_delete(c), L, 1);
    ck_assert_int_eq(ml_cursor_backlog(c), 3);
    ck_assert_int_eq(ml_cursor_ack(c, P(L, 2), NULL, 0, 0), 1); /* 3,1,2 -> M = 3 */
    ck_assert_pos(ml_cursor_mark_delete(c), L, 3);
    ck_ranges(c, "[]");
    ck_assert_int_eq(ml_cursor_num_ranges(c), 0);
    ck_assert(ml_cursor_is_acked(c, P(L, 3)));
    ck_assert(!ml_cursor_is_acked(c, P(L, 4)));

    /* Out of order, from M = -1: ranges and holes. */
    struct ml_cursor *d = ml_cursor_open(ml, "d", true, ML_POS_EARLIEST, NULL);
    ml_cursor_ack(d, P(L, 3), NULL, 0, 0);
    ml_cursor_ack(d, P(L, 1), NULL, 0, 0);
    ml_cursor_ack(d, P(L, 5), NULL, 0, 0);
    snprintf(want, sizeof want, "[(%lld:0..%lld:1],(%lld:2..%lld:3],(%lld:4..%lld:5]]",
             (long long)L, (long long)L, (long long)L, (long long)L, (long long)L, (long long)L);
    ck_ranges(d, want);
    ck_assert_int_eq(ml_cursor_num_ranges(d), 3);
    ck_assert_int_eq(ml_cursor_backlog(d), 3);
    ml_cursor_ack(d, P(L, 2), NULL, 0, 0);
    snprintf(want, sizeof want, "[(%lld:0..%lld:3],(%lld:4..%lld:5]]", (long long)L, (long long)L,
             (long long)L, (long long)L);
    ck_ranges(d, want);
    ck_assert_int_eq(ml_cursor_num_ranges(d), 2);
    ck_assert_pos(ml_cursor_mark_delete(d), L, -1);
    ml_cursor_ack(d, P(L, 0), NULL, 0, 0);
    ck_assert_pos(ml_cursor_mark_delete(d), L, 3);
    ck_assert_int_eq(ml_cursor_num_ranges(d), 1);
    ck_assert_int_eq(ml_cursor_backlog(d), 1);
    ml_cursor_ack(d, P(L, 4), NULL, 0, 0);
    ck_assert_pos(ml_cursor_mark_delete(d), L, 5);
    ck_assert_int_eq(ml_cursor_backlog(d), 0);
    ck_ranges(d, "[]");
    ml_cursor_close(c);
    ml_cursor_close(d);
    ml_close(ml);
    fx_free();
}
END_TEST

START_TEST(test_acks_across_ledgers)
{
    fx_new(1 << 20, 3);
    struct ml_ledger *ml = open_ml("t/ns/persistent/ial");
    int64_t L = ml_last_confirmed(ml).ledger;
    append_n(ml, 6); /* L:0-2, L2:0-2 */
    int64_t L2 = ml_next_position(ml, P(L, 2)).ledger;
    struct ml_cursor *c = ml_cursor_open(ml, "s", true, ML_POS_EARLIEST, NULL);
    ml_cursor_ack(c, P(L2, 0), NULL, 0, 0);
    ml_cursor_ack(c, P(L, 2), NULL, 0, 0);
    /* Ranges never span ledgers (Pulsar's convention). */
    char want[128];
    snprintf(want, sizeof want, "[(%lld:1..%lld:2],(%lld:-1..%lld:0]]", (long long)L, (long long)L,
             (long long)L2, (long long)L2);
    ck_ranges(c, want);
    ck_assert_int_eq(ml_cursor_backlog(c), 4);
    ml_cursor_ack(c, P(L, 0), NULL, 0, 0);
    ml_cursor_ack(c, P(L, 1), NULL, 0, 0);
    /* M crosses the boundary: L:2 is followed by L2:0. */
    ck_assert_pos(ml_cursor_mark_delete(c), L2, 0);
    ck_ranges(c, "[]");
    ck_assert_int_eq(ml_cursor_backlog(c), 2);
    ml_cursor_close(c);
    ml_close(ml);
    fx_free();
}
END_TEST

START_TEST(test_cumulative_ack)
{
    fx_new(1 << 20, 1000);
    struct ml_ledger *ml = open_ml("t/ns/persistent/ca");
    int64_t L = ml_last_confirmed(ml).ledger;
    append_n(ml, 10);
    struct ml_cursor *c = ml_cursor_open(ml, "s", true, ML_POS_EARLIEST, NULL);
    ml_cursor_ack(c, P(L, 3), NULL, 0, 0);
    ml_cursor_ack(c, P(L, 5), NULL, 0, 0);
    ml_cursor_ack(c, P(L, 7), NULL, 0, 0);
    ml_cursor_ack(c, P(L, 8), NULL, 0, 0);
    ck_assert_int_eq(ml_cursor_backlog(c), 6);
    ck_assert_int_eq(ml_cursor_num_ranges(c), 3);
    ml_cursor_ack_cumulative(c, P(L, 4)); /* 0..4 acked, 5 merges */
    ck_assert_pos(ml_cursor_mark_delete(c), L, 5);
    ck_assert_int_eq(ml_cursor_num_ranges(c), 1);
    ck_assert_int_eq(ml_cursor_backlog(c), 2);
    ml_cursor_ack_cumulative(c, P(L, 6)); /* 7, 8 merge */
    ck_assert_pos(ml_cursor_mark_delete(c), L, 8);
    ck_assert_int_eq(ml_cursor_num_ranges(c), 0);
    ck_assert_int_eq(ml_cursor_backlog(c), 1);
    ml_cursor_ack_cumulative(c, P(L, 2)); /* behind M: no-op */
    ck_assert_pos(ml_cursor_mark_delete(c), L, 8);
    ml_cursor_ack_cumulative(c, P(L, 1000)); /* clamped to the last entry */
    ck_assert_pos(ml_cursor_mark_delete(c), L, 9);
    ck_assert_int_eq(ml_cursor_backlog(c), 0);
    ml_cursor_close(c);
    ml_close(ml);
    fx_free();
}
END_TEST

START_TEST(test_batch_ack)
{
    fx_new(1 << 20, 1000);
    struct ml_ledger *ml = open_ml("t/ns/persistent/ba");
    int64_t L = ml_last_confirmed(ml).ledger;
    append_n(ml, 3);
    struct ml_cursor *c = ml_cursor_open(ml, "s", true, ML_POS_EARLIEST, NULL);
    int n = -1;
    ck_assert_ptr_null(ml_cursor_ack_set(c, P(L, 1), &n));
    ck_assert_int_eq(n, 0);
    /* Batch of 4 at L:1: ack index 0 (bit cleared), upper bits set in the request. */
    int64_t s1 = ~(int64_t)1;
    ck_assert_int_eq(ml_cursor_ack(c, P(L, 1), &s1, 1, 4), 0);
    ck_assert(!ml_cursor_is_acked(c, P(L, 1)));
    const int64_t *w = ml_cursor_ack_set(c, P(L, 1), &n);
    ck_assert_ptr_nonnull(w);
    ck_assert_int_eq(n, 1);
    ck_assert_int_eq(w[0], 0xe); /* bits beyond batch_size are not kept */
    ck_assert_int_eq(ml_cursor_backlog(c), 3);
    /* AND semantics: a set that re-sets bit 0 does not un-ack it. */
    int64_t s2 = 0x1 | 0x8; /* ack 1 and 2 */
    ck_assert_int_eq(ml_cursor_ack(c, P(L, 1), &s2, 1, 4), 0);
    w = ml_cursor_ack_set(c, P(L, 1), &n);
    ck_assert_int_eq(w[0], 0x8);
    int64_t s3 = ~(int64_t)0x8;
    ck_assert_int_eq(ml_cursor_ack(c, P(L, 1), &s3, 1, 4), 1);
    ck_assert(ml_cursor_is_acked(c, P(L, 1)));
    ck_assert_ptr_null(ml_cursor_ack_set(c, P(L, 1), &n));
    ck_assert_int_eq(ml_cursor_backlog(c), 2);
    /* A partial set dropped when the whole entry is acked. */
    ck_assert_int_eq(ml_cursor_ack(c, P(L, 2), &s1, 1, 4), 0);
    ck_assert_ptr_nonnull(ml_cursor_ack_set(c, P(L, 2), &n));
    ck_assert_int_eq(ml_cursor_ack(c, P(L, 2), NULL, 0, 0), 1);
    ck_assert_ptr_null(ml_cursor_ack_set(c, P(L, 2), &n));
    /* A partial set dropped by a cumulative ack past it. */
    ck_assert_int_eq(ml_cursor_ack(c, P(L, 0), &s1, 1, 70), 0);
    w = ml_cursor_ack_set(c, P(L, 0), &n);
    ck_assert_int_eq(n, 2);
    ck_assert_int_eq(w[1], 0); /* missing words of the request count as acked */
    ml_cursor_ack_cumulative(c, P(L, 0));
    ck_assert_ptr_null(ml_cursor_ack_set(c, P(L, 0), &n));
    ck_assert_pos(ml_cursor_mark_delete(c), L, 2);
    ml_cursor_close(c);
    ml_close(ml);
    fx_free();
}
END_TEST

START_TEST(test_rewind)
{
    fx_new(1 << 20, 1000);
    struct ml_ledger *ml = open_ml("t/ns/persistent/rew");
    int64_t L = ml_last_confirmed(ml).ledger;
    append_n(ml, 5);
    struct ml_cursor *c = ml_cursor_open(ml, "s", true, ML_POS_EARLIEST, NULL);
    struct tl_read r;
    read_sync(c, 10, &r);
    ck_assert_int_eq(r.req.n, 5);
    tl_read_release(&r);
    ml_cursor_ack(c, P(L, 1), NULL, 0, 0);
    ml_cursor_ack(c, P(L, 3), NULL, 0, 0);
    ml_cursor_rewind(c);
    ck_assert_pos(ml_cursor_read_position(c), L, 0);
    read_sync(c, 10, &r);
    ck_assert_int_eq(r.req.n, 3);
    ck_assert_pos(r.req.entries[0]->pos, L, 0);
    ck_assert_pos(r.req.entries[1]->pos, L, 2);
    ck_assert_pos(r.req.entries[2]->pos, L, 4);
    tl_read_release(&r);
    /* Seek the read position back without touching acks. */
    ml_cursor_seek_read(c, P(L, 2));
    read_sync(c, 10, &r);
    ck_assert_int_eq(r.req.n, 2);
    ck_assert_pos(r.req.entries[0]->pos, L, 2);
    tl_read_release(&r);
    ck_assert_int_eq(ml_cursor_backlog(c), 3);
    ml_cursor_close(c);
    ml_close(ml);
    fx_free();
}
END_TEST

START_TEST(test_reset)
{
    fx_new(1 << 20, 3);
    struct ml_ledger *ml = open_ml("t/ns/persistent/reset");
    int64_t L = ml_last_confirmed(ml).ledger;
    append_n(ml, 6);
    int64_t L2 = ml_next_position(ml, P(L, 2)).ledger;
    /* Non-durable, so that moving M past L does not trim it. */
    struct ml_cursor *c = ml_cursor_open(ml, "s", false, ML_POS_EARLIEST, NULL);
    ml_cursor_ack(c, P(L, 2), NULL, 0, 0);
    ml_cursor_ack(c, P(L2, 1), NULL, 0, 0);
    ml_cursor_reset(c, P(L, 1));
    ck_assert_pos(ml_cursor_mark_delete(c), L, 0);
    ck_assert_pos(ml_cursor_read_position(c), L, 1);
    ck_assert_int_eq(ml_cursor_num_ranges(c), 0);
    ck_assert_int_eq(ml_cursor_backlog(c), 5);
    /* Across the ledger boundary: before L2:0 is L:2. */
    ml_cursor_reset(c, P(L2, 0));
    ck_assert_pos(ml_cursor_mark_delete(c), L, 2);
    ck_assert_int_eq(ml_cursor_backlog(c), 3);
    struct tl_read r;
    read_sync(c, 1, &r);
    ck_assert_pos(r.req.entries[0]->pos, L2, 0);
    tl_read_release(&r);
    /* First entry of the ML: (L, -1). */
    ml_cursor_reset(c, P(L, 0));
    ck_assert_pos(ml_cursor_mark_delete(c), L, -1);
    ck_assert_int_eq(ml_cursor_backlog(c), 6);
    ml_cursor_reset(c, ML_POS_LATEST);
    ck_assert_int_eq(ml_cursor_backlog(c), 0);
    ck_assert_pos(ml_cursor_mark_delete(c), L2, 2);
    ml_cursor_reset(c, ML_POS_EARLIEST);
    ck_assert_int_eq(ml_cursor_backlog(c), 6);

    /* A reset wakes a waiting read whose position moved back. */
    ml_cursor_reset(c, ML_POS_LATEST);
    struct tl_read w = {0};
    w.req.data = &w;
    ck_assert_int_eq(ml_cursor_read(c, 10, 0, &w.req, tl_read_cb), 0);
    pump(5);
    ck_assert(!w.done);
    ml_cursor_reset(c, P(L2, 1));
    tl_wait(loop, &w.done);
    ck_assert_int_eq(w.req.n, 2);
    ck_assert_pos(w.req.entries[0]->pos, L2, 1);
    tl_read_release(&w);
    ml_cursor_close(c);
    ml_close(ml);
    fx_free();
}
END_TEST

START_TEST(test_skip_clear_backlog)
{
    fx_new(1 << 20, 1000);
    struct ml_ledger *ml = open_ml("t/ns/persistent/skip");
    int64_t L = ml_last_confirmed(ml).ledger;
    append_n(ml, 8);
    struct ml_cursor *c = ml_cursor_open(ml, "s", true, ML_POS_EARLIEST, NULL);
    ml_cursor_skip(c, 2);
    ck_assert_pos(ml_cursor_mark_delete(c), L, 1);
    ck_assert_int_eq(ml_cursor_backlog(c), 6);
    ml_cursor_ack(c, P(L, 3), NULL, 0, 0);
    ml_cursor_skip(c, 2); /* skips 2 and 4 (3 is acked already) */
    ck_assert_pos(ml_cursor_mark_delete(c), L, 4);
    ck_assert_int_eq(ml_cursor_backlog(c), 3);
    ml_cursor_skip(c, 100);
    ck_assert_pos(ml_cursor_mark_delete(c), L, 7);
    ck_assert_int_eq(ml_cursor_backlog(c), 0);
    append_n(ml, 4);
    ck_assert_int_eq(ml_cursor_backlog(c), 4);
    ml_cursor_ack(c, P(L, 10), NULL, 0, 0);
    ml_cursor_clear_backlog(c);
    ck_assert_int_eq(ml_cursor_backlog(c), 0);
    ck_assert_pos(ml_cursor_mark_delete(c), L, 11);
    ck_assert_int_eq(ml_cursor_num_ranges(c), 0);
    ck_assert(!ml_cursor_has_more(c));
    ml_cursor_close(c);
    ml_close(ml);
    fx_free();
}
END_TEST

START_TEST(test_durable_vs_nondurable)
{
    fx_new(1 << 20, 1000);
    struct ml_ledger *ml = open_ml("t/ns/persistent/dur");
    int64_t L = ml_last_confirmed(ml).ledger;
    append_n(ml, 6);
    int err = 0;
    struct ml_cursor *d = ml_cursor_open(ml, "sub", true, ML_POS_EARLIEST, &err);
    ck_assert_ptr_nonnull(d);
    ck_assert_ptr_null(ml_cursor_open(ml, "sub", true, ML_POS_EARLIEST, &err));
    ck_assert_int_eq(err, -MG_EBUSY);
    ml_cursor_ack(d, P(L, 0), NULL, 0, 0);
    ml_cursor_ack(d, P(L, 3), NULL, 0, 0);
    ml_cursor_close(d);
    ck_assert(ml_cursor_exists(ml, "sub"));

    struct ml_cursor *n = ml_cursor_open(ml, "reader", false, ML_POS_EARLIEST, &err);
    ml_cursor_ack(n, P(L, 0), NULL, 0, 0);
    ml_cursor_close(n);
    ck_assert(!ml_cursor_exists(ml, "reader"));

    /* Reopen: stored state, start ignored. */
    d = ml_cursor_open(ml, "sub", true, ML_POS_LATEST, &err);
    ck_assert_ptr_nonnull(d);
    ck_assert_pos(ml_cursor_mark_delete(d), L, 0);
    char want[64];
    snprintf(want, sizeof want, "[(%lld:2..%lld:3]]", (long long)L, (long long)L);
    ck_ranges(d, want);
    ck_assert_int_eq(ml_cursor_backlog(d), 4);
    n = ml_cursor_open(ml, "reader", false, ML_POS_EARLIEST, &err);
    ck_assert_pos(ml_cursor_mark_delete(n), L, -1);
    ck_assert_int_eq(ml_cursor_backlog(n), 6);
    /* Two non-durable cursors may share a name. */
    struct ml_cursor *n2 = ml_cursor_open(ml, "reader", false, ML_POS_LATEST, &err);
    ck_assert_ptr_nonnull(n2);

    struct ml_cursor *d2 = ml_cursor_open(ml, "sub2", true, ML_POS_LATEST, &err);
    size_t it = 0;
    const char *name;
    int count = 0;
    bool saw_sub = false, saw_sub2 = false;
    while ((name = ml_cursor_name_next(ml, &it)) != NULL) {
        count++;
        saw_sub |= strcmp(name, "sub") == 0;
        saw_sub2 |= strcmp(name, "sub2") == 0;
    }
    ck_assert_int_eq(count, 2);
    ck_assert(saw_sub && saw_sub2);
    ml_cursor_delete(d2);
    ck_assert(!ml_cursor_exists(ml, "sub2"));
    ml_cursor_close(n);
    ml_cursor_close(n2);
    ml_cursor_close(d);
    ml_close(ml);
    fx_free();
}
END_TEST

START_TEST(test_replay)
{
    fx_new(1 << 20, 1000);
    struct ml_ledger *ml = open_ml("t/ns/persistent/rep");
    int64_t L = ml_last_confirmed(ml).ledger;
    append_n(ml, 6);
    struct ml_cursor *c = ml_cursor_open(ml, "s", true, ML_POS_EARLIEST, NULL);
    ml_cursor_ack(c, P(L, 1), NULL, 0, 0);
    struct ml_position want[] = {P(L, 3), P(L, 1), P(L, 4), P(L, 99), P(L + 100, 0)};
    struct tl_read r = {0};
    r.req.data = &r;
    ck_assert_int_eq(ml_cursor_replay(c, want, 5, &r.req, tl_read_cb), 0);
    ck_assert(!r.done);
    tl_wait(loop, &r.done);
    ck_assert_int_eq(r.status, 0);
    ck_assert_int_eq(r.req.n, 2);
    ck_assert_pos(r.req.entries[0]->pos, L, 3);
    ck_assert_pos(r.req.entries[1]->pos, L, 4);
    tl_read_release(&r);
    ck_assert_pos(ml_cursor_read_position(c), L, 0);
    ml_cursor_close(c);
    ml_close(ml);
    fx_free();
}
END_TEST

START_TEST(test_reads_from_store)
{
    /* No tail cache: every read goes to the store. */
    fx_new(0, 4);
    struct ml_ledger *ml = open_ml("t/ns/persistent/store");
    int64_t L = ml_last_confirmed(ml).ledger;
    char tmp[8];
    for (int i = 0; i < 10; i++) {
        snprintf(tmp, sizeof tmp, "v%d", i);
        append_str(ml, tmp);
    }
    struct ml_cursor *c = ml_cursor_open(ml, "s", true, ML_POS_EARLIEST, NULL);
    ml_cursor_ack(c, P(L, 2), NULL, 0, 0);
    struct tl_read r;
    read_sync(c, 100, &r);
    ck_assert_int_eq(r.req.n, 9);
    ck_entry_text(r.req.entries[0], "v0");
    ck_entry_text(r.req.entries[2], "v3");
    ck_entry_text(r.req.entries[8], "v9");
    tl_read_release(&r);
    /* Byte limit: entries are 2 bytes; 5 bytes -> 3 entries. */
    ml_cursor_rewind(c);
    memset(&r, 0, sizeof r);
    r.req.data = &r;
    ck_assert_int_eq(ml_cursor_read(c, 100, 5, &r.req, tl_read_cb), 0);
    tl_wait(loop, &r.done);
    ck_assert_int_eq(r.req.n, 3);
    ck_entry_text(r.req.entries[2], "v3");
    tl_read_release(&r);
    read_sync(c, 1, &r);
    ck_entry_text(r.req.entries[0], "v4");
    tl_read_release(&r);

    struct ml_position p5 = ml_next_position(ml, P(L, 3));
    struct ml_position replay[] = {p5, P(L, 0)};
    memset(&r, 0, sizeof r);
    r.req.data = &r;
    ck_assert_int_eq(ml_cursor_replay(c, replay, 2, &r.req, tl_read_cb), 0);
    tl_wait(loop, &r.done);
    ck_assert_int_eq(r.req.n, 2);
    ck_entry_text(r.req.entries[0], "v4");
    ck_entry_text(r.req.entries[1], "v0");
    tl_read_release(&r);
    /* One store read for a run; acked positions inside it are left out. */
    struct ml_position replay2[] = {P(L, 1), P(L, 2), P(L, 3)};
    memset(&r, 0, sizeof r);
    r.req.data = &r;
    ck_assert_int_eq(ml_cursor_replay(c, replay2, 3, &r.req, tl_read_cb), 0);
    tl_wait(loop, &r.done);
    ck_assert_int_eq(r.req.n, 2);
    ck_entry_text(r.req.entries[0], "v1");
    ck_entry_text(r.req.entries[1], "v3");
    tl_read_release(&r);

    /* Cancel while the store read is running: callback at once, nothing later. */
    ml_cursor_rewind(c);
    memset(&r, 0, sizeof r);
    r.req.data = &r;
    ck_assert_int_eq(ml_cursor_read(c, 100, 0, &r.req, tl_read_cb), 0);
    pump(1);
    ck_assert(!r.done);
    ck_assert_int_eq(c->read_op->state, ML_READ_STORE);
    ck_assert_int_eq(ml_cursor_cancel_read(c), 0);
    ck_assert(r.done);
    ck_assert_int_eq(r.status, -MG_ECANCELED);
    r.done = false;
    pump(5);
    ck_assert(!r.done);
    read_sync(c, 100, &r);
    ck_assert_int_eq(r.req.n, 9);
    tl_read_release(&r);
    ml_cursor_close(c);
    ml_close(ml);
    fx_free();
}
END_TEST

/* Data in the ledger list that can never be read back (an entry no replica has, a ledger
 * gone from the metadata). autoSkipNonRecoverableData=false (_i 0): a read delivers what
 * comes before it, then fails with -MG_ENONRECOVERABLE every time (nothing is skipped
 * silently); true (_i 1): it is skipped and acknowledged for every cursor, and reads go on
 * past it. */
static void ck_texts(struct tl_read *r, const char *const *want, int n)
{
    ck_assert_int_eq(r->req.n, n);
    for (int i = 0; i < n; i++)
        ck_entry_text(r->req.entries[i], want[i]);
}

START_TEST(test_lost_data)
{
    auto_skip = _i == 1;
    fx_new(0, 4); /* no tail cache: every read goes to the store */
    struct ml_ledger *ml = open_ml("t/ns/persistent/lost");
    char tmp[8];
    for (int i = 0; i < 10; i++) {
        snprintf(tmp, sizeof tmp, "v%d", i);
        append_str(ml, tmp);
    }
    ck_assert_int_eq(ml->n_ledgers, 3); /* v0..v3 | v4..v7 | v8 v9 */
    int64_t L1 = ml->ledgers[0].id, L2 = ml->ledgers[1].id, L3 = ml->ledgers[2].id;
    struct ml_cursor *c = ml_cursor_open(ml, "s", true, ML_POS_EARLIEST, NULL);
    struct ml_cursor *c2 = ml_cursor_open(ml, "s2", true, ML_POS_EARLIEST, NULL);
    ml_cursor_ack_cumulative(c2, P(L1, 1));
    ml_store_mem_lose(fac, L1, 2);
    ml_store_mem_lose(fac, L2, -1);
    struct tl_read r;
    if (!auto_skip) {
        read_sync(c, 100, &r);
        const char *want[] = {"v0", "v1"};
        ck_texts(&r, want, 2);
        tl_read_release(&r);
        for (int k = 0; k < 2; k++) {
            memset(&r, 0, sizeof r);
            r.req.data = &r;
            ck_assert_int_eq(ml_cursor_read(c, 100, 0, &r.req, tl_read_cb), 0);
            tl_wait(loop, &r.done);
            ck_assert_int_eq(r.status, -MG_ENONRECOVERABLE);
            ck_assert_int_eq(r.req.n, 0);
        }
        ck_assert_pos(ml_cursor_mark_delete(c2), L1, 1);
        ck_assert(!ml_cursor_is_acked(c2, P(L1, 2)));
        ck_assert_int_eq(ml_cursor_backlog(c2), 8);
        /* a reader at the gone ledger stops there too (it used to skip it silently) */
        struct ml_cursor *c3 = ml_cursor_open(ml, "s3", false, P(L2, 0), NULL);
        memset(&r, 0, sizeof r);
        r.req.data = &r;
        ck_assert_int_eq(ml_cursor_read(c3, 100, 0, &r.req, tl_read_cb), 0);
        tl_wait(loop, &r.done);
        ck_assert_int_eq(r.status, -MG_ENONRECOVERABLE);
        ml_cursor_close(c3);
    } else {
        read_sync(c, 100, &r);
        const char *want[] = {"v0", "v1", "v3", "v8", "v9"};
        ck_texts(&r, want, 5);
        tl_read_release(&r);
        /* acknowledged for every cursor */
        ck_assert_pos(ml_cursor_mark_delete(c2), L1, 2);
        ck_assert(ml_cursor_is_acked(c2, P(L2, 0)) && ml_cursor_is_acked(c2, P(L2, 3)));
        ck_assert_int_eq(ml_cursor_backlog(c2), 3);
        ck_assert_int_eq(ml_cursor_backlog(c), 5);
        ml_cursor_rewind(c);
        read_sync(c, 100, &r);
        ck_texts(&r, want, 5);
        tl_read_release(&r);
        ml_cursor_ack_cumulative(c, P(L3, 1));
        ck_assert_int_eq(ml_cursor_backlog(c), 0);
    }
    ml_cursor_close(c);
    ml_cursor_close(c2);
    ml_close(ml);
    fx_free();
    auto_skip = false;
}
END_TEST

struct get_res {
    bool done;
    int status;
    struct ml_entry *e;
};

static void get_cb(struct ml_entry *e, int status, void *data)
{
    struct get_res *g = data;
    g->done = true;
    g->status = status;
    g->e = e;
}

static void ck_get(struct ml_ledger *ml, struct ml_position pos, int status, const char *text)
{
    struct get_res g = {0};
    ck_assert_int_eq(ml_get_entry(ml, pos, get_cb, &g), 0);
    ck_assert(!g.done);
    tl_wait(loop, &g.done);
    ck_assert_int_eq(g.status, status);
    if (text) {
        ck_assert_ptr_nonnull(g.e);
        ck_entry_text(g.e, text);
    } else {
        ck_assert_ptr_null(g.e);
    }
    ml_entry_unref(g.e);
}

START_TEST(test_get_entry)
{
    for (int cached = 0; cached < 2; cached++) {
        fx_new(cached ? 1 << 20 : 0, 1000);
        struct ml_ledger *ml = open_ml("t/ns/persistent/get");
        int64_t L = ml_last_confirmed(ml).ledger;
        append_str(ml, "a");
        append_str(ml, "b");
        ck_get(ml, P(L, 1), 0, "b");
        ck_get(ml, P(L, 0), 0, "a");
        ck_get(ml, P(L, 2), -MG_ENOTFOUND, NULL);
        ck_get(ml, P(L + 7, 0), -MG_ENOTFOUND, NULL);
        ml_close(ml);
        fx_free();
    }
}
END_TEST

START_TEST(test_trim)
{
    fx_new(1 << 20, 2);
    struct ml_ledger *ml = open_ml("t/ns/persistent/trim");
    int64_t L = ml_last_confirmed(ml).ledger;
    struct ml_cursor *reader = ml_cursor_open(ml, "r", false, ML_POS_EARLIEST, NULL);
    append_n(ml, 6); /* 3 full ledgers + an empty current one */
    settle(ml);
    struct ml_stats st;
    ml_get_stats(ml, &st);
    ck_assert_int_eq(st.num_ledgers, 4);
    /* Only non-durable cursors: everything is kept. */
    ml_cursor_clear_backlog(reader);
    ml_get_stats(ml, &st);
    ck_assert_int_eq(st.num_ledgers, 4);

    struct ml_cursor *a = ml_cursor_open(ml, "a", true, ML_POS_EARLIEST, NULL);
    struct ml_cursor *b = ml_cursor_open(ml, "b", true, ML_POS_EARLIEST, NULL);
    struct ml_position l2_last = ml_prev_position(ml, ml_next_position(ml, P(L, 1)));
    ck_assert_pos(l2_last, L, 1);
    struct ml_position p3 = ml_next_position(ml, ml_next_position(ml, P(L, 1))); /* L2:1 */
    ml_cursor_ack_cumulative(a, p3);
    ml_get_stats(ml, &st);
    ck_assert_int_eq(st.num_ledgers, 4); /* b still holds everything */
    ml_cursor_ack(b, P(L, 0), NULL, 0, 0);
    ml_cursor_ack(b, P(L, 1), NULL, 0, 0); /* b passes L: L trimmed */
    ml_get_stats(ml, &st);
    ck_assert_int_eq(st.num_ledgers, 3);
    ck_assert_int_eq(st.number_of_entries, 4);
    ck_assert_pos(ml_first_position(ml), p3.ledger, 0);
    ck_get(ml, P(L, 0), -MG_ENOTFOUND, NULL);
    /* The reader was behind: it skips the trimmed ledger. */
    ml_cursor_rewind(reader);
    ml_cursor_reset(reader, ML_POS_EARLIEST);
    ck_assert_int_eq(ml_cursor_backlog(reader), 4);
    /* Closing a durable cursor keeps its hold; deleting it releases it. */
    ml_cursor_close(b);
    ml_cursor_clear_backlog(a);
    ml_get_stats(ml, &st);
    ck_assert_int_eq(st.num_ledgers, 3);
    b = ml_cursor_open(ml, "b", true, ML_POS_EARLIEST, NULL);
    ml_cursor_delete(b);
    ml_get_stats(ml, &st);
    ck_assert_int_eq(st.num_ledgers, 1); /* only the (empty) current ledger */
    ck_assert_int_eq(st.number_of_entries, 0);
    ck_assert_int_eq(ml_cursor_backlog(a), 0);
    /* Appends and reads continue. */
    struct ml_position p = append_str(ml, "after");
    ck_assert_int_eq(ml_cursor_backlog(a), 1);
    struct tl_read r;
    read_sync(a, 10, &r);
    ck_assert_int_eq(r.req.n, 1);
    ck_assert_int_eq(ml_pos_cmp(r.req.entries[0]->pos, p), 0);
    tl_read_release(&r);
    ml_cursor_close(a);
    ml_cursor_close(reader);
    ml_close(ml);
    fx_free();
}
END_TEST

struct find_res {
    bool done;
    int status;
    struct ml_position pos;
};

static void find_cb(struct ml_position pos, int status, void *data)
{
    struct find_res *f = data;
    f->done = true;
    f->status = status;
    f->pos = pos;
}

static struct ml_position find_sync(struct ml_ledger *ml, uint64_t ts)
{
    struct find_res f = {0};
    ck_assert_int_eq(ml_find_by_time(ml, ts, find_cb, &f), 0);
    ck_assert(!f.done);
    tl_wait(loop, &f.done);
    ck_assert_int_eq(f.status, 0);
    return f.pos;
}

/* Append n entries "x" one by one, entry i published at 1000 + 10 i; their positions in pos. */
static void append_timed(struct ml_ledger *ml, struct ml_position *pos, int n)
{
    for (int i = 0; i < n; i++) {
        struct tl_append a = {0};
        a.req.data = &a;
        struct ml_entry_info info = {.num_messages = 1, .publish_time = 1000 + 10 * (uint64_t)i};
        ck_assert_int_eq(ml_append(ml, buf_str("x"), &info, &a.req, tl_append_cb), 0);
        tl_wait(loop, &a.done);
        pos[i] = a.pos;
    }
}

/* find_by_time_from: the first entry at or after `from` published at or after ts, or why
 * not (the search's status). */
static int find_from(struct ml_ledger *ml, struct ml_position from, uint64_t ts,
                     struct ml_position *out)
{
    struct find_res f = {0};
    ck_assert_int_eq(ml_find_by_time_from(ml, from, ts, find_cb, &f), 0);
    tl_wait(loop, &f.done);
    *out = f.pos;
    return f.status;
}

/* The TTL search is not a scan from the oldest ledger: it starts where it is told (the
 * slowest cursor), and ledgers whose publish times are known are not read (all older:
 * skipped; all newer: the answer is their first entry). Ledgers restored without them learn
 * them from the first search that reads them whole. Lost entries (a read of them fails)
 * show which ledgers a search read. */
START_TEST(test_find_by_time_bounded)
{
    fx_new(0, 4); /* no tail cache: every read goes to the store */
    struct ml_ledger *ml = open_ml("t/ns/persistent/findb");
    struct ml_position pos[12];
    append_timed(ml, pos, 12);
    ck_assert_int_ge(ml->n_ledgers, 3); /* 0..3 | 4..7 | 8..11 (| the next, once rolled) */
    int64_t L1 = ml->ledgers[0].id, L2 = ml->ledgers[1].id;
    struct ml_position got;
    /* Written since the open: their times are known; found without reading them. */
    ml_store_mem_lose(fac, L1, 1);
    ml_store_mem_lose(fac, L2, 1);
    ck_assert_int_eq(find_from(ml, ML_POS_EARLIEST, 900, &got), 0);
    ck_assert_int_eq(ml_pos_cmp(got, pos[0]), 0);
    ck_assert_int_eq(find_from(ml, ML_POS_EARLIEST, 1000, &got), 0);
    ck_assert_int_eq(ml_pos_cmp(got, pos[0]), 0);
    ck_assert_int_eq(find_from(ml, ML_POS_EARLIEST, 1085, &got), 0); /* L1, L2 skipped */
    ck_assert_int_eq(ml_pos_cmp(got, pos[9]), 0);
    /* A search inside L2 reads it, but only from `from` on (its lost entry 1 is before) */
    ck_assert_int_eq(find_from(ml, pos[6], 1065, &got), 0);
    ck_assert_int_eq(ml_pos_cmp(got, pos[7]), 0);
    ck_assert_int_eq(find_from(ml, pos[6], 1000, &got), 0); /* nothing before `from` */
    ck_assert_int_eq(ml_pos_cmp(got, pos[6]), 0);
    /* ... whereas one from the start of L2 has to read the lost entry */
    ck_assert_int_eq(find_from(ml, ML_POS_EARLIEST, 1065, &got), -MG_ENONRECOVERABLE);

    /* Times unknown (as after a restore): the first search reads the closed ledgers whole
     * and remembers them; the next one reads neither. */
    struct ml_ledger *ml2 = open_ml("t/ns/persistent/findb2");
    append_timed(ml2, pos, 10);
    for (int i = 0; i < ml2->n_ledgers; i++) {
        ml2->ledgers[i].publish_known = false;
        ml2->ledgers[i].min_publish_time = ml2->ledgers[i].max_publish_time = 0;
    }
    ck_assert_int_eq(ml2->n_ledgers, 3); /* 0..3 | 4..7 | 8 9 (current) */
    ck_assert_int_eq(find_from(ml2, ML_POS_EARLIEST, 1085, &got), 0);
    ck_assert_int_eq(ml_pos_cmp(got, pos[9]), 0);
    ck_assert(ml2->ledgers[0].publish_known && ml2->ledgers[1].publish_known);
    ck_assert(!ml2->ledgers[2].publish_known); /* the current ledger is still growing */
    ck_assert_int_eq(ml2->ledgers[1].min_publish_time, 1040);
    ck_assert_int_eq(ml2->ledgers[1].max_publish_time, 1070);
    ml_store_mem_lose(fac, ml2->ledgers[0].id, 2);
    ml_store_mem_lose(fac, ml2->ledgers[1].id, 2);
    ck_assert_int_eq(find_from(ml2, ML_POS_EARLIEST, 1085, &got), 0);
    ck_assert_int_eq(ml_pos_cmp(got, pos[9]), 0);
    ck_assert_int_eq(find_from(ml2, ML_POS_EARLIEST, 1040, &got), 0);
    ck_assert_int_eq(ml_pos_cmp(got, pos[4]), 0);
    ml_close(ml2);
    ml_close(ml);
    fx_free();
}
END_TEST

START_TEST(test_find_by_time)
{
    fx_new(1 << 20, 4);
    struct ml_ledger *ml = open_ml("t/ns/persistent/find");
    struct ml_position pos[10];
    append_timed(ml, pos, 10);
    ck_assert_int_eq(ml_pos_cmp(find_sync(ml, 0), pos[0]), 0);
    ck_assert_int_eq(ml_pos_cmp(find_sync(ml, 1000), pos[0]), 0);
    ck_assert_int_eq(ml_pos_cmp(find_sync(ml, 1001), pos[1]), 0);
    ck_assert_int_eq(ml_pos_cmp(find_sync(ml, 1050), pos[5]), 0); /* second ledger */
    ck_assert_int_eq(ml_pos_cmp(find_sync(ml, 1085), pos[9]), 0);
    struct ml_position end = find_sync(ml, 5000);
    ck_assert_int_eq(ml_pos_cmp(end, ml_next_position(ml, pos[9])), 0);
    ml_close(ml);
    fx_free();
}
END_TEST

/* ---- close, delete ---------------------------------------------------------------------- */

START_TEST(test_close_pending)
{
    fx_new(1 << 20, 1000);
    struct ml_ledger *ml = open_ml("t/ns/persistent/cl");
    struct ml_cursor *c = ml_cursor_open(ml, "s", true, ML_POS_LATEST, NULL);
    struct tl_read r = {0};
    r.req.data = &r;
    ck_assert_int_eq(ml_cursor_read(c, 10, 0, &r.req, tl_read_cb), 0);
    pump(3);
    struct tl_append a[3];
    memset(a, 0, sizeof a);
    for (int i = 0; i < 3; i++) {
        a[i].req.data = &a[i];
        ck_assert_int_eq(ml_append(ml, buf_str("x"), NULL, &a[i].req, tl_append_cb), 0);
    }
    ml_close(ml); /* last reference */
    ck_assert(!a[0].done && !r.done);
    tl_wait(loop, &a[2].done);
    tl_wait(loop, &r.done);
    for (int i = 0; i < 3; i++)
        ck_assert_int_eq(a[i].status, -MG_ECANCELED);
    ck_assert_int_eq(r.status, -MG_ECANCELED);
    pump(5);

    /* Reopened (memory store): a fresh ML. */
    ml = open_ml("t/ns/persistent/cl");
    ck_assert_int_eq(ml_last_confirmed(ml).entry, -1);
    ck_assert(!ml_cursor_exists(ml, "s"));

    /* Closing a cursor with a read outstanding. */
    c = ml_cursor_open(ml, "s2", false, ML_POS_LATEST, NULL);
    memset(&r, 0, sizeof r);
    r.req.data = &r;
    ck_assert_int_eq(ml_cursor_read(c, 10, 0, &r.req, tl_read_cb), 0);
    ml_cursor_close(c);
    ck_assert(!r.done);
    tl_wait(loop, &r.done);
    ck_assert_int_eq(r.status, -MG_ECANCELED);

    /* Factory free with appends and reads pending: completed before it returns. */
    c = ml_cursor_open(ml, "s3", true, ML_POS_LATEST, NULL);
    memset(&r, 0, sizeof r);
    r.req.data = &r;
    ck_assert_int_eq(ml_cursor_read(c, 10, 0, &r.req, tl_read_cb), 0);
    memset(a, 0, sizeof a);
    a[0].req.data = &a[0];
    ck_assert_int_eq(ml_append(ml, buf_str("x"), NULL, &a[0].req, tl_append_cb), 0);
    struct tl_open o = {0};
    ck_assert_int_eq(ml_open(fac, "t/ns/persistent/never", tl_open_cb, &o), 0);
    fx_free();
    ck_assert(a[0].done && r.done && o.done);
    ck_assert_int_eq(a[0].status, -MG_ECANCELED);
    ck_assert_int_eq(r.status, -MG_ECANCELED);
    ck_assert_int_eq(o.status, -MG_ECANCELED);
    ck_assert_ptr_null(o.ml);
}
END_TEST

START_TEST(test_delete)
{
    fx_new(1 << 20, 2);
    struct ml_ledger *ml = open_ml("t/ns/persistent/del");
    append_n(ml, 5);
    struct ml_cursor *c = ml_cursor_open(ml, "s", true, ML_POS_EARLIEST, NULL);
    ck_assert_int_eq(ml_delete(ml, false), -MG_EBUSY);
    ck_assert_int_eq(ml_delete(ml, true), 0);
    struct tl_append a = {0};
    a.req.data = &a;
    ck_assert_int_eq(ml_append(ml, buf_str("x"), NULL, &a.req, tl_append_cb), -MG_ECLOSED);
    ml_close(ml);
    ml = open_ml("t/ns/persistent/del");
    ck_assert(!ml_cursor_exists(ml, "s"));
    struct ml_stats st;
    ml_get_stats(ml, &st);
    ck_assert_int_eq(st.number_of_entries, 0);
    ml_close(ml);
    (void)c;
    fx_free();
}
END_TEST

/* ---- stress ------------------------------------------------------------------------------ */

START_TEST(test_ack_stress)
{
    enum { N = 100000 };
    fx_new(8 << 20, 50000);
    struct ml_ledger *ml = open_ml("t/ns/persistent/stress");
    struct ml_position *pos = malloc(N * sizeof *pos);
    struct tl_append *a = calloc(N, sizeof *a);
    for (int i = 0; i < N; i++) {
        a[i].req.data = &a[i];
        ck_assert_int_eq(ml_append(ml, buf_str("s"), NULL, &a[i].req, tl_append_cb), 0);
    }
    tl_wait(loop, &a[N - 1].done);
    settle(ml); /* the rollover after the last full ledger */
    for (int i = 0; i < N; i++) {
        ck_assert_int_eq(a[i].status, 0);
        pos[i] = a[i].pos;
    }
    free(a);
    struct ml_stats st;
    ml_get_stats(ml, &st);
    ck_assert_int_eq(st.num_ledgers, N / 50000 + 1); /* the full ones and the new current */
    struct ml_cursor *c = ml_cursor_open(ml, "s", true, ML_POS_EARLIEST, NULL);
    ck_assert_int_eq(ml_cursor_backlog(c), N);
    /* Fisher-Yates with a fixed seed. */
    uint64_t x = 88172645463325252ull;
    for (int i = N - 1; i > 0; i--) {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        int j = (int)(x % (uint64_t)(i + 1));
        struct ml_position t = pos[i];
        pos[i] = pos[j];
        pos[j] = t;
    }
    int max_ranges = 0;
    for (int i = 0; i < N; i++) {
        ck_assert_int_eq(ml_cursor_ack(c, pos[i], NULL, 0, 0), 1);
        if (ml_cursor_num_ranges(c) > max_ranges)
            max_ranges = ml_cursor_num_ranges(c);
        if (i == N / 2)
            ck_assert_int_eq(ml_cursor_backlog(c), N - N / 2 - 1);
    }
    ck_assert_int_gt(max_ranges, 1000);
    ck_assert_int_eq(ml_pos_cmp(ml_cursor_mark_delete(c), ml_last_confirmed(ml)), 0);
    ck_assert_int_eq(ml_cursor_num_ranges(c), 0);
    ck_assert_int_eq(ml_cursor_backlog(c), 0);
    ck_ranges(c, "[]");
    ml_get_stats(ml, &st);
    ck_assert_int_eq(st.num_ledgers, 1); /* every full ledger was trimmed */
    free(pos);
    ml_cursor_close(c);
    ml_close(ml);
    fx_free();
}
END_TEST

/* ---- retention on a timer, rollover by age (simulated clock) ----------------------------- */

/* A factory on a simulated loop with cfg. */
static void fx_new_sim(const struct ml_config *cfg)
{
    base = event_base_new();
    ck_assert_ptr_nonnull(base);
    loop = mg_loop_new_sim(base, 1000000, 1700000000000);
    fac = ml_factory_new(loop, "memory", cfg);
    ck_assert_ptr_nonnull(fac);
}

static int n_ledgers(const struct ml_ledger *ml)
{
    struct ml_stats st;
    ml_get_stats(ml, &st);
    return st.num_ledgers;
}

/* Time-based retention runs on the check timer: consumed closed ledgers go once older than
 * the retention time and not before, with no traffic; a ledger a cursor still needs stays. */
START_TEST(test_retention_timer)
{
    const int64_t minute = 60000;
    struct ml_config cfg = {.cache_size_bytes = 1 << 20,
                            .max_entries_per_ledger = 2,
                            .retention_time_minutes = 10,
                            .retention_size_mb = -1,
                            .retention_check_interval_ms = minute};
    fx_new_sim(&cfg);
    struct ml_ledger *ml = open_ml("t/ns/persistent/ret-timer");
    struct ml_cursor *a = ml_cursor_open(ml, "a", true, ML_POS_EARLIEST, NULL);
    struct ml_cursor *b = ml_cursor_open(ml, "b", true, ML_POS_EARLIEST, NULL);
    append_n(ml, 6); /* three closed ledgers of two, an empty current one */
    settle(ml);
    ck_assert_int_eq(n_ledgers(ml), 4);
    int64_t first = ml_first_position(ml).ledger;
    ml_cursor_clear_backlog(a);
    /* b consumed the first ledger only */
    struct ml_position p0 = ml_first_position(ml);
    ml_cursor_ack_cumulative(b, ml_next_position(ml, p0));
    settle(ml);
    ck_assert_int_eq(n_ledgers(ml), 4); /* consumed, but within the retention time */
    tl_run_for(loop, 9 * minute);
    settle(ml);
    ck_assert_int_eq(n_ledgers(ml), 4); /* 9 minutes old: kept */
    tl_run_for(loop, 2 * minute);       /* past 10 minutes: the next check deletes it */
    settle(ml);
    ck_assert_int_eq(n_ledgers(ml), 3);
    ck_assert_int_gt(ml_first_position(ml).ledger, first);
    ck_get(ml, P(first, 0), -MG_ENOTFOUND, NULL);
    ck_assert_int_eq(ml_cursor_backlog(b), 4); /* what b has not consumed stays */
    tl_run_for(loop, 60 * minute);
    settle(ml);
    ck_assert_int_eq(n_ledgers(ml), 3);
    ml_cursor_clear_backlog(b); /* now all consumed, long past the time: all but current */
    settle(ml);
    ck_assert_int_eq(n_ledgers(ml), 1);
    ml_cursor_close(a);
    ml_cursor_close(b);
    ml_close(ml);
    fx_free();
}
END_TEST

/* Without the check timer, time alone deletes nothing (only a cursor move or a roll does). */
START_TEST(test_retention_no_timer)
{
    const int64_t minute = 60000;
    struct ml_config cfg = {.cache_size_bytes = 1 << 20,
                            .max_entries_per_ledger = 2,
                            .retention_time_minutes = 10,
                            .retention_size_mb = -1};
    fx_new_sim(&cfg);
    struct ml_ledger *ml = open_ml("t/ns/persistent/ret-no-timer");
    struct ml_cursor *a = ml_cursor_open(ml, "a", true, ML_POS_EARLIEST, NULL);
    append_n(ml, 4);
    settle(ml);
    ml_cursor_clear_backlog(a);
    tl_run_for(loop, 30 * minute);
    settle(ml);
    ck_assert_int_eq(n_ledgers(ml), 3);
    append_str(ml, "x"); /* no roll, no cursor move: still kept */
    ck_assert_int_eq(n_ledgers(ml), 3);
    ml_cursor_clear_backlog(a); /* a cursor move runs the check */
    settle(ml);
    ck_assert_int_eq(n_ledgers(ml), 1);
    ml_cursor_close(a);
    ml_close(ml);
    fx_free();
}
END_TEST

/* Size-based retention: consumed ledgers go, oldest first, while what stays after them is
 * over the size; with every consumed ledger inside the size, nothing goes. */
START_TEST(test_retention_size)
{
    struct ml_config cfg = {.cache_size_bytes = 8 << 20,
                            .max_entries_per_ledger = 1,
                            .retention_time_minutes = -1,
                            .retention_size_mb = 1,
                            .retention_check_interval_ms = 60000};
    fx_new_sim(&cfg);
    struct ml_ledger *ml = open_ml("t/ns/persistent/ret-size");
    struct ml_cursor *a = ml_cursor_open(ml, "a", true, ML_POS_EARLIEST, NULL);
    const size_t sz = 400 * 1024;
    char *blob = calloc(1, sz);
    append_bytes(ml, blob, sz, 2);
    settle(ml);
    ml_cursor_clear_backlog(a);
    tl_run_for(loop, 120000);
    settle(ml);
    ck_assert_int_eq(n_ledgers(ml), 3); /* 800 KiB consumed, under 1 MB: kept */
    append_bytes(ml, blob, sz, 3);
    settle(ml);
    ml_cursor_clear_backlog(a);
    settle(ml);
    /* 5 x 400 KiB consumed: the oldest go while more than 1 MB stays after them */
    struct ml_stats st;
    ml_get_stats(ml, &st);
    ck_assert_int_eq(st.num_ledgers, 3 + 1);
    ck_assert_int_le(st.total_size, (int64_t)3 * (int64_t)sz);
    ck_assert_int_gt(st.total_size, 1 << 20);
    free(blob);
    ml_cursor_close(a);
    ml_close(ml);
    fx_free();
}
END_TEST

/* fx_new_sim keeping everything (retention -1), with these rollover limits and the check
 * timer every check_ms. */
static void fx_new_sim_roll(int64_t max_entries, int64_t check_ms, int64_t min_roll_ms,
                            int64_t max_roll_ms)
{
    struct ml_config cfg = {.cache_size_bytes = 1 << 20,
                            .max_entries_per_ledger = max_entries,
                            .retention_time_minutes = -1,
                            .retention_size_mb = -1,
                            .retention_check_interval_ms = check_ms,
                            .min_rollover_ms = min_roll_ms,
                            .max_rollover_ms = max_roll_ms};
    fx_new_sim(&cfg);
}

/* Rollover as Pulsar's: a full ledger is not rolled before the minimum age (even by the
 * timer), a ledger with an entry is rolled at the maximum age with no traffic, an empty
 * one never for its age. */
START_TEST(test_rollover_by_age)
{
    const int64_t minute = 60000;
    fx_new_sim_roll(2, minute, 10 * minute, 60 * minute);
    struct ml_ledger *ml = open_ml("t/ns/persistent/roll-age");
    append_n(ml, 5); /* over max_entries, but younger than the minimum */
    settle(ml);
    ck_assert_int_eq(n_ledgers(ml), 1);
    tl_run_for(loop, 9 * minute);
    settle(ml);
    ck_assert_int_eq(n_ledgers(ml), 1);
    tl_run_for(loop, 2 * minute); /* past the minimum: the timer rolls it */
    settle(ml);
    ck_assert_int_eq(n_ledgers(ml), 2);
    append_str(ml, "one");
    tl_run_for(loop, 50 * minute);
    settle(ml);
    ck_assert_int_eq(n_ledgers(ml), 2); /* 50 minutes, one entry: kept */
    tl_run_for(loop, 11 * minute);      /* past the maximum age */
    settle(ml);
    ck_assert_int_eq(n_ledgers(ml), 3);
    tl_run_for(loop, 180 * minute); /* the new, empty ledger is never rolled */
    settle(ml);
    ck_assert_int_eq(n_ledgers(ml), 3);
    ml_close(ml);
    fx_free();
}
END_TEST

/* The check timer walks the MLs in slices: one firing checks at most ML_CHECK_SLICE of them
 * (here: rolls their aged ledgers), the pass goes on 1 ms later where it stopped, and every
 * ML is checked once per pass, also when one closes in the middle of it. */
START_TEST(test_check_timer_slices)
{
    const int64_t minute = 60000;
    fx_new_sim_roll(1000, 10 * minute, 0, minute);
    enum { N = 2 * ML_CHECK_SLICE + 5 };
    struct ml_ledger **mls = calloc(N, sizeof *mls);
    char name[64];
    for (int i = 0; i < N; i++) {
        snprintf(name, sizeof name, "t/ns/persistent/slice-%d", i);
        mls[i] = open_ml(name);
        append_str(mls[i], "x");
    }
    ck_assert(mg_loop_advance(loop, (uint64_t)(10 * minute - 2000)) >= 0);
    int rolled = 0;
    for (int i = 0; i < N; i++)
        rolled += mls[i]->roll_attempts > 0;
    ck_assert_int_eq(rolled, 0);                 /* the timer has not fired yet */
    ck_assert(mg_loop_advance(loop, 2000) >= 0); /* it fires: one slice */
    rolled = 0;
    for (int i = 0; i < N; i++)
        rolled += mls[i]->roll_attempts > 0;
    ck_assert_int_eq(rolled, ML_CHECK_SLICE);
    /* two that the pass has not reached close, one of them where it goes on: it goes on past
     * them */
    ck_assert_int_eq(mls[N - 2]->roll_attempts, 0);
    ck_assert_int_eq(mls[ML_CHECK_SLICE]->roll_attempts, 0);
    ml_close(mls[N - 2]);
    ml_close(mls[ML_CHECK_SLICE]);
    ck_assert(mg_loop_advance(loop, 1) >= 0);
    rolled = 0;
    for (int i = 0; i < N; i++)
        rolled += i != N - 2 && i != ML_CHECK_SLICE && mls[i]->roll_attempts > 0;
    ck_assert_int_eq(rolled, 2 * ML_CHECK_SLICE - 1);
    ck_assert(mg_loop_advance(loop, 1) >= 0);
    for (int i = 0; i < N; i++)
        if (i != N - 2 && i != ML_CHECK_SLICE)
            ck_assert_int_eq(mls[i]->roll_attempts, 1);
    for (int i = 0; i < N; i++)
        if (i != N - 2 && i != ML_CHECK_SLICE)
            ml_close(mls[i]);
    free(mls);
    fx_free();
}
END_TEST

static Suite *ml_suite(void)
{
    Suite *s = suite_create("ml");
    TCase *tc = tl_tcase(s, "core", 60, NULL, NULL);
    tl_add(tc, test_unknown_store, test_append_order_async, test_entry_metadata, test_rollover,
           test_rollover_by_size, test_cursor_latest_earliest, test_read_waits, test_cancel_read,
           test_individual_acks, test_acks_across_ledgers, test_cumulative_ack, test_batch_ack,
           test_rewind, test_reset, test_skip_clear_backlog, test_durable_vs_nondurable,
           test_replay, test_reads_from_store);
    tcase_add_loop_test(tc, test_lost_data, 0, 2);
    tl_add(tc, test_get_entry, test_trim, test_find_by_time, test_find_by_time_bounded,
           test_close_pending, test_delete, test_ack_stress, test_retention_timer,
           test_retention_no_timer, test_retention_size, test_rollover_by_age,
           test_check_timer_slices);
    return s;
}

int main(void)
{
    return tl_run(ml_suite());
}
