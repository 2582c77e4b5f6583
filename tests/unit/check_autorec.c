/*
 * check_autorec.c - unit tests of the autorec module: auditor election, the auditor's marks
 * for lost bookies (after lostBookieRecoveryDelay), the replication worker (fragments copied
 * to other bookies, the ensembles rewritten, the marks cleared, the data still readable once
 * a second original bookie is gone), an open ledger's last fragment left to its writer and
 * the writer's later metadata writes keeping the worker's ensembles, locks held by another
 * worker, marks of deleted ledgers. Over the fake bookies (bkc_fake.c) and the memory
 * metadata store on a simulated loop (tl_fakebk): no sockets, no sleeps, every wait bounded
 * in simulated time.
 * Failure modes: each test asserts with Check; run with CK_FORK=no under ASan.
 */
#include "autorec/ar_int.h"
#include "autorec/autorec.h"
#include "bkc/bkc.h"
#include "bkc/bkc_int.h"
#include "lib/tl_bk.h"
#include "meta/meta.h"
#include "util/alloc.h"
#include "util/err.h"
#include "util/loop.h"

#include <check.h>
#include <event2/buffer.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static struct tl_fakebk env;
static struct bkc_client *cl; /* the writer's client */

#define NB 5

static void setup(void)
{
    tl_fakebk_open(&env, "memory", 7, "10.0.0", NB);
    struct bkc_config c;
    tl_bkc_config(&c, 2, 2, 2, 2000);
    cl = tl_fakebk_client(&env, &c, 11);
}

static void teardown(void)
{
    bkc_client_free(cl);
    tl_fakebk_close(&env);
}

static void conf(struct ar_conf *o, const char *id, int delay_ms)
{
    memset(o, 0, sizeof(*o));
    o->id = id;
    o->lost_bookie_delay_ms = delay_ms;
    o->check_interval_ms = 0;
    o->bookie_check_interval_ms = 0;
    o->batch = 4;
    o->open_grace_ms = 3000;
    o->failed_grace_ms = 3000;
    o->poll_ms = 500;
    o->timeout_ms = 2000;
    o->auditor = o->worker = true;
    o->transport = bkc_fake_transport(env.fake);
}

static struct ar *start(const struct ar_conf *o, struct meta_store *m)
{
    struct ar *a = NULL;
    ck_assert_int_eq(ar_new(env.loop, m ? m : env.meta, o, &a), 0);
    return a;
}

/* A closed ledger of n entries written with quorums e/w/a on client c. */
static int64_t written(struct bkc_client *c, int n, struct tl_adds *b)
{
    struct bkc_ledger *lh = tl_bkc_written(c, b, n);
    int64_t id = bkc_ledger_id(lh);
    bkc_ledger_free(lh);
    return id;
}

/* Does any segment of ledger id's metadata name bookie? */
static bool md_names(int64_t id, const char *bookie)
{
    struct bkc_md md;
    tl_md_read(env.meta, id, &md);
    bool found = false;
    for (int s = 0; s < md.n_segs; s++)
        for (int i = 0; i < md.ensemble_size; i++)
            found |= strcmp(md.segs[s].bookies[i], bookie) == 0;
    bkc_md_fini(&md);
    return found;
}

static bool is_marked(int64_t id)
{
    char *p = ar_ur_path("/ledgers", id);
    struct meta_req r = {0};
    int st = tl_meta_get(env.meta, p, &r);
    meta_req_fini(&r);
    mg_free(p);
    return st == 0;
}

struct marks_gone {
    const int64_t *ids;
    int n;
};
static bool no_marks(const void *arg)
{
    const struct marks_gone *m = arg;
    for (int i = 0; i < m->n; i++)
        if (is_marked(m->ids[i]))
            return false;
    return true;
}

/* Until ledger id's mark is gone (at most ms of the loop; fails the test otherwise). */
static void wait_unmarked(int64_t id, uint64_t ms)
{
    int64_t ids[1] = {id};
    struct marks_gone mg = {ids, 1};
    ck_assert_msg(tl_until(env.loop, no_marks, &mg, ms), "ledger %" PRId64 " still marked", id);
}

static bool ar_is_auditor(const struct ar *a)
{
    struct ar_stats st;
    ar_get_stats(a, &st);
    return st.is_auditor;
}
static bool cond_auditor(const void *arg)
{
    return ar_is_auditor(arg);
}

/* The value of metric name in ar_metrics' text (fails the test if absent). */
static int64_t metric(const struct ar *a, const char *name)
{
    struct evbuffer *b = evbuffer_new();
    ar_metrics(a, b);
    evbuffer_add(b, "", 1);
    const char *txt = (const char *)evbuffer_pullup(b, -1);
    char type[160], line[160];
    snprintf(type, sizeof(type), "# TYPE %s ", name);
    snprintf(line, sizeof(line), "\n%s ", name);
    const char *p = strstr(txt, line);
    ck_assert_msg(strstr(txt, type) && p, "metric %s missing in:\n%s", name, txt);
    int64_t v = strtoll(p + strlen(line), NULL, 10);
    evbuffer_free(b);
    return v;
}

/* The fake bookie at ensemble index i of ledger id's first segment. */
static int first_bookie(int64_t id, int i)
{
    struct bkc_md md;
    tl_md_read(env.meta, id, &md);
    int k = bkc_fake_bookie_index(env.fake, md.segs[0].bookies[i]);
    bkc_md_fini(&md);
    return k;
}

/* An auditor (no worker) with lostBookieRecoveryDelay delay_ms, elected. */
static struct ar *auditor(int delay_ms)
{
    struct ar_conf o;
    conf(&o, "auditor:1", delay_ms);
    o.worker = false;
    struct ar *a = start(&o, NULL);
    ck_assert(tl_until(env.loop, cond_auditor, a, 5000));
    return a;
}

static void stop_and_free(struct ar *a)
{
    ar_stop(a);
    ar_free(a);
}

/* A worker (and auditor) with no lostBookieRecoveryDelay. */
static struct ar *worker(void)
{
    struct ar_conf o;
    conf(&o, "worker:1", 0);
    return start(&o, NULL);
}

/* A worker that, 5 s on, has seen ledger id marked and copied nothing. */
static struct ar *worker_waits(int64_t id)
{
    struct ar *a = worker();
    tl_run_for(env.loop, 5000);
    ck_assert(is_marked(id));
    struct ar_stats st;
    ar_get_stats(a, &st);
    ck_assert_int_eq(st.entries_copied, 0);
    return a;
}

/* ---- paths ------------------------------------------------------------------------------------
 */

START_TEST(test_paths)
{
    char *p = ar_ur_path("/ledgers", 0x0001000200030004LL);
    ck_assert_str_eq(p, "/ledgers/underreplication/ledgers/0001/0002/0003/0004/urL281483566841860");
    mg_free(p);
    p = ar_ur_path("/ledgers", 42);
    ck_assert_str_eq(p, "/ledgers/underreplication/ledgers/0000/0000/0000/002a/urL0000000042");
    mg_free(p);
    p = ar_lock_path("/ledgers", 42);
    ck_assert_str_eq(p, "/ledgers/underreplication/locks/urL0000000042");
    mg_free(p);
}
END_TEST

/* ---- election ---------------------------------------------------------------------------------
 */

START_TEST(test_one_auditor_then_the_next)
{
    struct meta_store *m2 = NULL, *m3 = NULL;
    ck_assert_int_eq(meta_open_peer(env.meta, NULL, &m2), 0);
    ck_assert_int_eq(meta_open_peer(env.meta, NULL, &m3), 0);
    struct ar_conf o;
    conf(&o, "a:1", 0);
    o.worker = false;
    struct ar *a = start(&o, m2);
    ck_assert(tl_until(env.loop, cond_auditor, a, 5000));
    o.id = "b:1";
    struct ar *b = start(&o, m3);
    tl_run_for(env.loop, 2000);
    ck_assert(ar_is_auditor(a));
    ck_assert(!ar_is_auditor(b)); /* one auditor per cluster */
    ck_assert_int_eq(metric(b, "replication_auditor_leader"), 0);
    /* the auditor's session ends: its vote goes and the other takes over */
    ar_stop(a);
    meta_close(m2);
    ar_free(a);
    ck_assert(tl_until(env.loop, cond_auditor, b, 5000));
    ar_stop(b);
    meta_close(m3);
    ar_free(b);
}
END_TEST

/* ---- auditor ----------------------------------------------------------------------------------
 */

START_TEST(test_lost_bookie_marked_after_delay)
{
    struct tl_adds b[6];
    memset(b, 0, sizeof(b));
    int64_t ids[6];
    for (int i = 0; i < 6; i++)
        ids[i] = written(cl, 5 + i, &b[i]);
    const char *lost = bkc_fake_bookie_id(env.fake, 1);
    struct ar *a = auditor(7000); /* no worker: the marks stay for the test to see */
    tl_run_for(env.loop, 1000);
    tl_fakebk_stop(&env, 1);
    tl_run_for(env.loop, 5000); /* within the delay: nothing marked */
    for (int i = 0; i < 6; i++)
        ck_assert_msg(!is_marked(ids[i]), "ledger %" PRId64 " marked before the delay", ids[i]);
    tl_run_for(env.loop, 3000);
    int n_on = 0;
    for (int i = 0; i < 6; i++) {
        bool on = md_names(ids[i], lost);
        n_on += on;
        ck_assert_msg(is_marked(ids[i]) == on,
                      "ledger %" PRId64 ": marked %d, on the lost bookie %d", ids[i],
                      is_marked(ids[i]), on);
        if (on) {
            char *p = ar_ur_path("/ledgers", ids[i]);
            struct meta_req r = {0};
            ck_assert_int_eq(tl_meta_get(env.meta, p, &r), 0);
            ck_assert_ptr_nonnull(strstr(r.value, lost)); /* the mark names the missing replica */
            meta_req_fini(&r);
            mg_free(p);
        }
    }
    ck_assert_int_gt(n_on, 0);
    struct ar_stats st;
    ar_get_stats(a, &st);
    ck_assert_int_eq(st.ledgers_marked, n_on);
    ck_assert_int_eq(st.under_replicated, n_on);
    ck_assert_int_eq(metric(a, "replication_auditor_leader"), 1);
    ck_assert_int_eq(metric(a, "replication_auditor_NUM_UNDER_REPLICATED_LEDGERS"), n_on);
    ck_assert_int_ge(metric(a, "replication_auditor_NUM_LEDGERS_CHECKED"), 6);
    ck_assert_int_eq(metric(a, "replication_auditor_election_attempts"), 1);
    stop_and_free(a);
    for (int i = 0; i < 6; i++)
        tl_adds_fini(&b[i]);
}
END_TEST

/* BookKeeper's underreplication/lostBookieRecoveryDelay: the first auditor stores the
 * configured delay there; once it exists its value wins, also when an operator changes it
 * while the auditor runs. */
START_TEST(test_delay_znode_wins)
{
    struct tl_adds b = {0};
    int64_t id = written(cl, 5, &b);
    struct ar *a = auditor(60000);
    tl_run_for(env.loop, 1000);
    const char *zn = "/ledgers/underreplication/lostBookieRecoveryDelay";
    struct meta_req r = {0};
    ck_assert_int_eq(tl_meta_get(env.meta, zn, &r), 0);
    ck_assert_str_eq(r.value, "60");
    meta_req_fini(&r);
    ck_assert_int_eq(tl_meta_put(env.meta, zn, "2", 1, 0), 0); /* the operator's change */
    tl_run_for(env.loop, 500);
    tl_fakebk_stop(&env, first_bookie(id, 0));
    tl_run_for(env.loop, 1000);
    ck_assert(!is_marked(id)); /* within the 2 s */
    tl_run_for(env.loop, 2000);
    ck_assert(is_marked(id)); /* not the configured 60 s */
    stop_and_free(a);
    tl_adds_fini(&b);
}
END_TEST

/* A bookie that comes back within the delay is not audited. */
START_TEST(test_bookie_back_within_delay)
{
    struct tl_adds b = {0};
    int64_t id = written(cl, 8, &b);
    struct ar *a = auditor(5000);
    int k = first_bookie(id, 0);
    tl_fakebk_register(&env, k, false);
    tl_run_for(env.loop, 2000);
    tl_fakebk_register(&env, k, true);
    tl_run_for(env.loop, 10000);
    ck_assert(!is_marked(id));
    stop_and_free(a);
    tl_adds_fini(&b);
}
END_TEST

/* A ledger naming a bookie that is not registered, without any registration change to
 * trigger an audit: found by the periodic checks (auditorPeriodicBookieCheckInterval, then
 * auditorPeriodicCheckInterval), not before. */
static void ghost_ledger(int64_t id)
{
    struct bkc_md md;
    tl_md_read(env.meta, id, &md);
    mg_free(md.segs[0].bookies[1]);
    md.segs[0].bookies[1] = mg_strdup("10.9.9.9:3181"); /* never registered */
    uint8_t *buf;
    size_t len;
    bkc_md_encode(&md, &buf, &len);
    char *p = bkc_ledger_path("/ledgers", id);
    ck_assert_int_eq(tl_meta_put(env.meta, p, buf, len, 0), 0);
    mg_free(p);
    mg_free(buf);
    bkc_md_fini(&md);
}

static void run_periodic(bool bookie_check)
{
    struct ar_conf o;
    conf(&o, "auditor:1", 0);
    o.worker = false;
    if (bookie_check)
        o.bookie_check_interval_ms = 20000;
    else
        o.check_interval_ms = 20000;
    struct ar *a = start(&o, NULL);
    ck_assert(tl_until(env.loop, cond_auditor, a, 5000));
    tl_run_for(env.loop, 2000); /* the election's audit is done */
    struct tl_adds b = {0};
    int64_t id = written(cl, 4, &b);
    ghost_ledger(id);
    tl_run_for(env.loop, 12000);
    ck_assert(!is_marked(id)); /* nothing made the auditor look yet */
    tl_run_for(env.loop, 10000);
    ck_assert(is_marked(id)); /* the periodic check did */
    stop_and_free(a);
    tl_adds_fini(&b);
}

START_TEST(test_periodic_bookie_check)
{
    run_periodic(true);
}
END_TEST

START_TEST(test_periodic_ledger_check)
{
    run_periodic(false);
}
END_TEST

/* ---- worker -----------------------------------------------------------------------------------
 */

/* Every entry of ledger id is on each bookie of its write set (metadata view). */
static void check_copies(int64_t id)
{
    struct bkc_md md;
    tl_md_read(env.meta, id, &md);
    ck_assert_int_eq(md.state, BKC_STATE_CLOSED);
    for (int64_t e = 0; e <= md.last_entry; e++) {
        const struct bkc_segment *s = &md.segs[bkc_md_segment_for(&md, e)];
        for (int j = 0; j < md.write_quorum; j++) {
            const char *bk = s->bookies[(e + j) % md.ensemble_size];
            int k = bkc_fake_bookie_index(env.fake, bk);
            ck_assert_msg(bkc_fake_has_entry(env.fake, k, id, e),
                          "ledger %" PRId64 " entry %" PRId64 " missing on %s", id, e, bk);
        }
    }
    bkc_md_fini(&md);
}

static void run_rereplication(int e, int w, int a_q)
{
    struct bkc_config c;
    tl_bkc_config(&c, e, w, a_q, 2000);
    struct bkc_client *c2 = tl_fakebk_client(&env, &c, 23);
    enum { NL = 5 };
    struct tl_adds b[NL];
    memset(b, 0, sizeof(b));
    int64_t ids[NL];
    int n_entries[NL];
    for (int i = 0; i < NL; i++)
        ids[i] = written(c2, n_entries[i] = 10 + 7 * i, &b[i]);
    const char *lost = bkc_fake_bookie_id(env.fake, 2);
    int64_t expect_copied = 0;
    for (int i = 0; i < NL; i++) {
        struct bkc_md md;
        tl_md_read(env.meta, ids[i], &md);
        for (int j = 0; j < md.ensemble_size; j++)
            if (strcmp(md.segs[0].bookies[j], lost) == 0)
                for (int64_t en = 0; en < n_entries[i]; en++)
                    for (int q = 0; q < md.write_quorum; q++)
                        expect_copied += (en + q) % md.ensemble_size == j;
        bkc_md_fini(&md);
    }
    ck_assert_int_gt(expect_copied, 0);
    tl_fakebk_stop(&env, 2);
    struct ar *a = worker();
    tl_run_for(env.loop, 1000);
    struct marks_gone mg = {ids, NL};
    ck_assert(tl_until(env.loop, no_marks, &mg, 60000));
    struct ar_stats st;
    ar_get_stats(a, &st);
    ck_assert_int_eq(st.entries_copied, expect_copied);
    ck_assert_int_eq(metric(a, "replication_replication_worker_NUM_ENTRIES_WRITTEN"),
                     expect_copied);
    ck_assert_int_eq(
        metric(a, "replication_replication_worker_NUM_FULL_OR_PARTIAL_LEDGERS_REPLICATED"),
        st.ledgers_replicated);
    ck_assert_int_ge(st.ledgers_replicated, 1);
    for (int i = 0; i < NL; i++) {
        ck_assert(!md_names(ids[i], lost));
        check_copies(ids[i]);
    }
    /* a second original bookie goes: every entry is still readable */
    tl_fakebk_stop(&env, 0);
    for (int i = 0; i < NL; i++)
        tl_bkc_check_ledger(c2, ids[i], false, n_entries[i] - 1);
    stop_and_free(a);
    bkc_client_free(c2);
    for (int i = 0; i < NL; i++)
        tl_adds_fini(&b[i]);
}

START_TEST(test_rereplicate_full_ensembles)
{
    run_rereplication(2, 2, 2);
}
END_TEST

START_TEST(test_rereplicate_striped)
{
    run_rereplication(3, 2, 2); /* only the entries whose write set holds the lost index */
}
END_TEST

/* The open ledger's last fragment is the writer's; once the writer moved on (ensemble change)
 * the older fragment is copied, and the writer's close keeps the worker's ensemble. */
START_TEST(test_open_ledger_left_to_writer)
{
    struct bkc_ledger *lh = tl_bkc_create(cl, 0);
    int64_t id = bkc_ledger_id(lh);
    struct tl_adds b = {0};
    tl_adds_all(&b, lh, 6);
    const char *lost_id = bkc_ledger_bookie(lh, 0);
    char lost[64];
    snprintf(lost, sizeof(lost), "%s", lost_id);
    int k = bkc_fake_bookie_index(env.fake, lost);
    tl_fakebk_stop(&env, k);
    struct ar *a = worker_waits(id); /* marked, but its only fragment is the open one */
    struct ar_stats st;
    ck_assert(md_names(id, lost));
    /* the writer adds: its ensemble change moves the last segment off the lost bookie */
    tl_adds_all(&b, lh, 4);
    ck_assert_int_eq(bkc_ledger_num_segments(lh), 2);
    wait_unmarked(id, 60000);
    ck_assert(!md_names(id, lost));
    /* the writer still has its old view of segment 0; closing must not put the lost bookie
     * back (a CAS conflict, then the re-read ensembles are kept) */
    ck_assert_int_eq(tl_bkc_close(lh), 0);
    ck_assert(!md_names(id, lost));
    check_copies(id);
    ar_get_stats(a, &st);
    ck_assert_int_eq(st.entries_copied, 6);
    bkc_ledger_free(lh);
    stop_and_free(a);
    tl_adds_fini(&b);
}
END_TEST

/* Handles opened before the re-replication (a reader of a closed ledger, a writer whose
 * first segment was re-replicated) still read everything once a second original bookie is
 * gone: a read no replica of their view serves re-reads the metadata. */
START_TEST(test_stale_handles_follow_replication)
{
    struct tl_adds b = {0}, w = {0};
    int64_t id = written(cl, 12, &b);
    struct bkc_ledger *rd = tl_bkc_open(cl, id, false, 0);
    struct bkc_ledger *wr = tl_bkc_create(cl, 0);
    int64_t wid = bkc_ledger_id(wr);
    tl_adds_all(&w, wr, 5);
    /* the bookie both ensembles share goes for good, or the reader's first one (copies: the
     * handles' strings change when they take new ensembles) */
    char e0[64], e1[64], lost[64], other[64];
    snprintf(e0, sizeof(e0), "%s", bkc_ledger_segment_bookie(rd, 0, 0));
    snprintf(e1, sizeof(e1), "%s", bkc_ledger_segment_bookie(rd, 0, 1));
    const char *w0 = bkc_ledger_segment_bookie(wr, 0, 0), *w1 = bkc_ledger_segment_bookie(wr, 0, 1);
    bool shared = !strcmp(e1, w0) || !strcmp(e1, w1);
    snprintf(lost, sizeof(lost), "%s", shared ? e1 : e0);
    snprintf(other, sizeof(other), "%s", shared ? e0 : e1);
    tl_fakebk_stop(&env, bkc_fake_bookie_index(env.fake, lost));
    tl_adds_all(&w, wr, 3); /* the writer moves on if it used the lost bookie */
    struct ar *a = worker();
    int64_t ids[2] = {id, wid};
    struct marks_gone mg = {ids, bkc_ledger_num_segments(wr) > 1 ? 2 : 1};
    tl_run_for(env.loop, 1000);
    ck_assert(tl_until(env.loop, no_marks, &mg, 60000));
    ck_assert(!md_names(id, lost));
    /* the reader's other original bookie goes too: its view names two dead bookies */
    tl_fakebk_stop(&env, bkc_fake_bookie_index(env.fake, other));
    tl_bkc_check_read(rd, 0, 11);
    ck_assert_str_ne(bkc_ledger_segment_bookie(rd, 0, 0), lost);
    ck_assert_str_ne(bkc_ledger_segment_bookie(rd, 0, 1), lost);
    /* the writer's first segment: its original replicas may both be gone now */
    tl_bkc_check_read(wr, 0, 7);
    bkc_ledger_free(rd);
    bkc_ledger_free(wr);
    stop_and_free(a);
    tl_adds_fini(&b);
    tl_adds_fini(&w);
}
END_TEST

/* bkc_replicate keeps at most `window` entries in flight: with a fixed bookie latency, a copy
 * with window w takes about n / w round trips (a read, then an add), and every entry of the
 * fragment reaches the target. */
static uint64_t copy_ms(int n, int window)
{
    struct tl_adds b = {0};
    int64_t id = written(cl, n, &b);
    struct bkc_ledger *lh = tl_bkc_open(cl, id, false, 0);
    const char *target = NULL;
    for (int i = 0; i < NB && !target; i++) {
        const char *bk = bkc_fake_bookie_id(env.fake, i);
        if (strcmp(bk, bkc_ledger_segment_bookie(lh, 0, 0)) &&
            strcmp(bk, bkc_ledger_segment_bookie(lh, 0, 1)))
            target = bk;
    }
    struct tl_res r = {0};
    struct bkc_req req = {0};
    req.data = &r;
    uint64_t t0 = mg_loop_mono_ms(env.loop);
    ck_assert_int_eq(bkc_replicate(lh, 0, 1, target, window, &req, tl_res_cb), 0);
    tl_res_wait(cl, &r);
    uint64_t ms = mg_loop_mono_ms(env.loop) - t0;
    ck_assert_int_eq(r.status, 0);
    ck_assert_int_eq(req.entry_id, n);
    int k = bkc_fake_bookie_index(env.fake, target);
    ck_assert_int_eq(bkc_fake_count_entries(env.fake, k, id), n);
    bkc_ledger_free(lh);
    tl_adds_fini(&b);
    return ms;
}

START_TEST(test_copy_window)
{
    bkc_fake_set_latency(env.fake, -1, 5, 5); /* each way; adds also wait 5 ms for the journal */
    uint64_t narrow = copy_ms(40, 4), wide = copy_ms(40, 40);
    /* a read (10 ms) then an add (15 ms) per entry: 10 rounds of 25 ms with 4 in flight */
    ck_assert_uint_ge(narrow, 10 * 25);
    ck_assert_uint_le(wide, 3 * 25);
}
END_TEST

/* A ledger of n entries loses the bookie at position pos of its ensemble while node (value;
 * NULL: the ledger's lock) exists: the worker copies nothing until node is gone, then
 * restores the copies. */
static void held_until_deleted(int n, int pos, const char *node, const char *value)
{
    struct tl_adds b = {0};
    int64_t id = written(cl, n, &b);
    char *path = node ? mg_strdup(node) : ar_lock_path("/ledgers", id);
    ck_assert_int_eq(tl_meta_put(env.meta, path, value, strlen(value), 0), 0);
    tl_fakebk_stop(&env, first_bookie(id, pos));
    struct ar *a = worker_waits(id); /* the auditor marks, the worker waits */
    ck_assert_int_eq(tl_meta_del(env.meta, path), 0);
    wait_unmarked(id, 30000);
    check_copies(id);
    stop_and_free(a);
    mg_free(path);
    tl_adds_fini(&b);
}

/* While <root>/underreplication/disable exists (BookKeeper's switch), workers copy nothing;
 * once it is gone they go on. */
START_TEST(test_replication_disabled)
{
    held_until_deleted(7, 0, "/ledgers/underreplication/disable", "");
}
END_TEST

/* A ledger locked by another worker is left alone until its lock goes. */
START_TEST(test_locked_by_other_worker)
{
    held_until_deleted(9, 1, NULL, "other:1");
}
END_TEST

/* The mark of a ledger deleted meanwhile is dropped; an under-replicated ledger with no
 * bookie to copy to keeps its mark. */
START_TEST(test_deleted_ledger_and_no_target)
{
    struct tl_adds b = {0};
    int64_t id = written(cl, 3, &b);
    char *p = ar_ur_path("/ledgers", id + 1000);
    ck_assert_int_eq(tl_meta_put(env.meta, p, "ctime: 1\n", 9, 0), 0);
    mg_free(p);
    /* every bookie but the ensemble's goes: no target */
    struct bkc_md md;
    tl_md_read(env.meta, id, &md);
    for (int i = 0; i < NB; i++) {
        const char *bk = bkc_fake_bookie_id(env.fake, i);
        if (strcmp(bk, md.segs[0].bookies[0]) != 0 && strcmp(bk, md.segs[0].bookies[1]) != 0)
            tl_fakebk_stop(&env, i);
    }
    tl_fakebk_stop(&env, bkc_fake_bookie_index(env.fake, md.segs[0].bookies[0]));
    bkc_md_fini(&md);
    struct ar *a = worker();
    int64_t gone[1] = {id + 1000};
    struct marks_gone mg = {gone, 1};
    ck_assert(tl_until(env.loop, no_marks, &mg, 10000));
    tl_run_for(env.loop, 5000);
    ck_assert(is_marked(id));
    struct ar_stats st;
    ar_get_stats(a, &st);
    ck_assert_int_gt(st.fragments_failed, 0);
    ck_assert_int_eq(
        metric(a, "replication_replication_worker_NUM_DEFER_LEDGER_LOCK_RELEASE_OF_FAILED_LEDGER"),
        st.fragments_failed);
    stop_and_free(a);
    tl_adds_fini(&b);
}
END_TEST

int main(void)
{
    return tl_main(
        "autorec",
        TL_CASES({"core", 120, setup, teardown,
                  TL_TESTS(test_paths, test_one_auditor_then_the_next,
                           test_lost_bookie_marked_after_delay, test_bookie_back_within_delay,
                           test_periodic_bookie_check, test_periodic_ledger_check,
                           test_rereplicate_full_ensembles, test_rereplicate_striped,
                           test_open_ledger_left_to_writer, test_stale_handles_follow_replication,
                           test_locked_by_other_worker, test_deleted_ledger_and_no_target,
                           test_copy_window, test_replication_disabled, test_delay_znode_wins)}));
}
