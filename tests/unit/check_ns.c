/*
 * check_ns.c - cluster resources (broker/ns/ns_res.c) and bulk work (ns_bulk.c).
 *
 * One broker made of its parts (tl_parts_start: the namespace module, a managed-ledger
 * factory and a topic registry, no listener) on an in-memory metadata store and a simulated
 * loop: no socket, no sleep; the store's completions and the module's timers run when the
 * test runs the loop, in simulated time.
 *
 * Resources: the test seam ns_res_fail_writes
 * makes the store refuse the next writes. After a refused write the cache must say what
 * the store holds: a retried create succeeds (no "already exists") and a broker started
 * again on the same store sees exactly what the answers claimed.
 *
 * Bulk work: a partitioned topic's delete runs in slices (a bounded number of partitions per
 * loop turn: per timer callback), refuses without force while a partition has a producer,
 * and stops without a callback when the broker goes away; partition counts are bounded; namespace
 * listings are sorted and unique.
 *
 * Topic lists of pattern consumers (ns_list.c): the hash is Pulsar's (values computed by an
 * independent CRC32C), patterns match as Pulsar's TopicList.filterTopics does and a
 * catastrophic one is stopped by the match limits; a namespace watch hears a topic whose
 * managed ledger appears in or leaves the store (as another broker would create or delete
 * it) before the periodic re-list could have found it, and topics loaded here by the
 * re-list.
 */
#include "lib/tl_bk.h"
#include "lib/tl_svc.h"
#include "ns/ns.h"
#include "ns/ns_int.h"
#include "topic/topic.h"
#include "util/err.h"
#include "util/loop.h"

#include <check.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

static struct tl_svc fx;

static void setup(void)
{
    tl_svc_init_sim(&fx);
    tl_svc_meta(&fx, 0);
    tl_parts_start(&fx, 0);
    tl_run_due(fx.loop);
}

static void teardown(void)
{
    tl_svc_fini(&fx);
}

static struct ns *ns0(void)
{
    return fx.parts[0].ns;
}

static struct topic_registry *topics0(void)
{
    return fx.parts[0].topics;
}

/* "Restart": a new broker on the same store loads what the store holds. */
static void restart(void)
{
    tl_parts_stop(&fx, 0);
    tl_parts_start(&fx, 0);
}

static int wait_done(struct tl_done *d)
{
    return tl_done_wait(&fx, d);
}

START_TEST(test_failed_tenant_create_rolls_back)
{
    struct ns *s = ns0();
    struct tl_done d = {0};
    ns_res_fail_writes(s, 1, -MG_EIO);
    ck_assert_int_eq(ns_tenant_create(s, "t1", tl_done_cb, &d), 0);
    ck_assert(!d.called);
    ck_assert_int_eq(wait_done(&d), -MG_EIO);
    ck_assert_msg(!ns_tenant_exists(s, "t1"), "the cache claims a tenant the store never got");
    /* the retry creates it (no "already exists") and it survives a restart */
    memset(&d, 0, sizeof d);
    ck_assert_int_eq(ns_tenant_create(s, "t1", tl_done_cb, &d), 0);
    ck_assert_int_eq(wait_done(&d), 0);
    restart();
    ck_assert(ns_tenant_exists(ns0(), "t1"));
}
END_TEST

START_TEST(test_failed_tenant_delete_rolls_back)
{
    struct tl_done d = {0};
    ck_assert_int_eq(ns_tenant_create(ns0(), "t2", tl_done_cb, &d), 0);
    ck_assert_int_eq(wait_done(&d), 0);
    memset(&d, 0, sizeof d);
    ns_res_fail_writes(ns0(), 1, -MG_EIO);
    ck_assert_int_eq(ns_tenant_delete(ns0(), "t2", tl_done_cb, &d), 0);
    ck_assert_int_eq(wait_done(&d), -MG_EIO);
    ck_assert(ns_tenant_exists(ns0(), "t2"));
    restart();
    ck_assert(ns_tenant_exists(ns0(), "t2"));
}
END_TEST

START_TEST(test_failed_namespace_mutations_roll_back)
{
    struct ns *s = ns0();
    struct tl_done d = {0};
    ck_assert_int_eq(ns_tenant_create(s, "t3", tl_done_cb, &d), 0);
    ck_assert_int_eq(wait_done(&d), 0);
    /* create */
    memset(&d, 0, sizeof d);
    ns_res_fail_writes(s, 1, -MG_ETIMEDOUT);
    ck_assert_int_eq(ns_namespace_create(s, "t3/ns", 4, tl_done_cb, &d), 0);
    ck_assert_int_eq(wait_done(&d), -MG_ETIMEDOUT);
    ck_assert(!ns_namespace_exists(s, "t3/ns"));
    memset(&d, 0, sizeof d);
    ck_assert_int_eq(ns_namespace_create(s, "t3/ns", 4, tl_done_cb, &d), 0);
    ck_assert_int_eq(wait_done(&d), 0);
    /* retention set: a failed set leaves the previous policy (none) */
    memset(&d, 0, sizeof d);
    ns_res_fail_writes(s, 1, -MG_EIO);
    ck_assert_int_eq(ns_namespace_retention_set(s, "t3/ns", false, 60, 100, tl_done_cb, &d), 0);
    ck_assert_int_eq(wait_done(&d), -MG_EIO);
    int64_t tm = 0, mb = 0;
    ck_assert_int_eq(ns_namespace_retention_get(s, "t3/ns", &tm, &mb), 0);
    memset(&d, 0, sizeof d);
    ck_assert_int_eq(ns_namespace_retention_set(s, "t3/ns", false, 60, 100, tl_done_cb, &d), 0);
    ck_assert_int_eq(wait_done(&d), 0);
    /* a failed change keeps the stored policy */
    memset(&d, 0, sizeof d);
    ns_res_fail_writes(s, 1, -MG_EIO);
    ck_assert_int_eq(ns_namespace_retention_set(s, "t3/ns", false, 5, 5, tl_done_cb, &d), 0);
    ck_assert_int_eq(wait_done(&d), -MG_EIO);
    ck_assert_int_eq(ns_namespace_retention_get(s, "t3/ns", &tm, &mb), 1);
    ck_assert_int_eq(tm, 60);
    ck_assert_int_eq(mb, 100);
    /* delete: the namespace and its policy come back */
    memset(&d, 0, sizeof d);
    ns_res_fail_writes(s, 1, -MG_EIO);
    ck_assert_int_eq(ns_namespace_delete(s, "t3/ns", tl_done_cb, &d), 0);
    ck_assert_int_eq(wait_done(&d), -MG_EIO);
    ck_assert(ns_namespace_exists(s, "t3/ns"));
    ck_assert_int_eq(ns_namespace_bundles(s, "t3/ns"), 4);
    ck_assert_int_eq(ns_namespace_retention_get(s, "t3/ns", &tm, &mb), 1);
    ck_assert_int_eq(tm, 60);
    restart();
    ck_assert(ns_namespace_exists(ns0(), "t3/ns"));
    ck_assert_int_eq(ns_namespace_retention_get(ns0(), "t3/ns", &tm, &mb), 1);
    ck_assert_int_eq(mb, 100);
}
END_TEST

static bool refresh_over(const void *arg)
{
    return ((const struct ns *)arg)->res_loading == 0;
}

/* A refresh walk whose reads were sent before a local delete answers with what the store
 * held then: it must not bring the deleted namespace or tenant back. The deletes land at
 * each step of the walk in turn (the first round: while the tenant list is being read). */
START_TEST(test_refresh_does_not_resurrect)
{
    struct ns *s = ns0();
    for (int round = 0; round < 8; round++) {
        char tenant[32], ns[48];
        snprintf(tenant, sizeof tenant, "rt%d", round);
        snprintf(ns, sizeof ns, "%s/a", tenant);
        struct tl_done d = {0};
        ck_assert_int_eq(ns_tenant_create(s, tenant, tl_done_cb, &d), 0);
        ck_assert_int_eq(wait_done(&d), 0);
        memset(&d, 0, sizeof d);
        ck_assert_int_eq(ns_namespace_create(s, ns, 4, tl_done_cb, &d), 0);
        ck_assert_int_eq(wait_done(&d), 0);
        ns_res_refresh_now(s);
        for (int k = 0; k < round; k++)
            tl_passes(fx.base, 1); /* one step of the walk: the store's completions */
        struct tl_done d2 = {0};
        memset(&d, 0, sizeof d);
        ck_assert_int_eq(ns_namespace_delete(s, ns, tl_done_cb, &d), 0);
        ck_assert_int_eq(ns_tenant_delete(s, tenant, tl_done_cb, &d2), 0);
        ck_assert_int_eq(wait_done(&d), 0);
        ck_assert_int_eq(wait_done(&d2), 0);
        ck_assert_msg(tl_until(fx.loop, refresh_over, s, tl_wait_ms(fx.loop)),
                      "round %d: the refresh walk did not end", round);
        ck_assert_msg(!ns_namespace_exists(s, ns), "round %d: %s came back", round, ns);
        ck_assert_msg(!ns_tenant_exists(s, tenant), "round %d: %s came back", round, tenant);
    }
}
END_TEST

START_TEST(test_failed_partitions_roll_back)
{
    struct ns *s = ns0();
    const char *pt = "persistent://public/default/pt";
    struct tl_done d = {0};
    ns_res_fail_writes(s, 1, -MG_EIO);
    ck_assert_int_eq(ns_partitions_set(s, pt, 3, true, tl_done_cb, &d), 0);
    ck_assert_int_eq(wait_done(&d), -MG_EIO);
    ck_assert_int_eq(ns_partitions_get(s, pt), 0);
    memset(&d, 0, sizeof d);
    ck_assert_int_eq(ns_partitions_set(s, pt, 3, true, tl_done_cb, &d), 0);
    ck_assert_int_eq(wait_done(&d), 0);
    /* a failed grow keeps the stored count */
    memset(&d, 0, sizeof d);
    ns_res_fail_writes(s, 1, -MG_EIO);
    ck_assert_int_eq(ns_partitions_set(s, pt, 8, false, tl_done_cb, &d), 0);
    ck_assert_int_eq(wait_done(&d), -MG_EIO);
    ck_assert_int_eq(ns_partitions_get(s, pt), 3);
    /* a failed delete keeps it */
    memset(&d, 0, sizeof d);
    ns_res_fail_writes(s, 1, -MG_EIO);
    ck_assert_int_eq(ns_partitions_delete(s, pt, tl_done_cb, &d), 0);
    ck_assert_int_eq(wait_done(&d), -MG_EIO);
    ck_assert_int_eq(ns_partitions_get(s, pt), 3);
    restart();
    ck_assert_int_eq(ns_partitions_get(ns0(), pt), 3);
}
END_TEST

/* A failed write must not undo a later mutation of the same entry that succeeded. */
START_TEST(test_failure_does_not_undo_later_mutation)
{
    struct ns *s = ns0();
    struct tl_done d1 = {0}, d2 = {0};
    ns_res_fail_writes(s, 1, -MG_EIO);
    ck_assert_int_eq(ns_namespace_retention_set(s, "public/default", false, 1, 1, tl_done_cb, &d1),
                     0);
    ck_assert_int_eq(ns_namespace_retention_set(s, "public/default", false, 7, 9, tl_done_cb, &d2),
                     0);
    ck_assert_int_eq(wait_done(&d1), -MG_EIO);
    ck_assert_int_eq(wait_done(&d2), 0);
    int64_t tm = 0, mb = 0;
    ck_assert_int_eq(ns_namespace_retention_get(s, "public/default", &tm, &mb), 1);
    ck_assert_int_eq(tm, 7);
    ck_assert_int_eq(mb, 9);
    restart();
    ck_assert_int_eq(ns_namespace_retention_get(ns0(), "public/default", &tm, &mb), 1);
    ck_assert_int_eq(tm, 7);
}
END_TEST

/* A broker freed while its writes are in flight: no callback runs into freed callers, the
 * store's late completions touch nothing freed (ASan checks). */
START_TEST(test_free_with_writes_in_flight)
{
    struct tl_done d1 = {0}, d2 = {0};
    ns_res_fail_writes(ns0(), 1, -MG_EIO);
    ck_assert_int_eq(ns_tenant_create(ns0(), "t5", tl_done_cb, &d1), 0);
    ck_assert_int_eq(ns_tenant_create(ns0(), "t6", tl_done_cb, &d2), 0);
    tl_parts_stop(&fx, 0);
    tl_run_due(fx.loop);
    ck_assert(!d1.called);
    ck_assert(!d2.called);
}
END_TEST

/* ---- bulk work ---------------------------------------------------------------------------- */

/* Load topic name (its load counted in *loaded). */
static void load_topic(const char *name, int *loaded)
{
    ck_assert_int_eq(topic_get(topics0(), name, true, tl_topic_loaded_cb, loaded), 0);
}

static void load_partitions(const char *base, int n)
{
    int loaded = 0;
    for (int i = 0; i < n; i++) {
        char name[256];
        snprintf(name, sizeof name, "%s-partition-%d", base, i);
        load_topic(name, &loaded);
    }
    ck_assert_int_eq(tl_until_count(fx.loop, &loaded, n, tl_wait_ms(fx.loop)), n);
}

static int loaded_partitions(const char *base, int n)
{
    int c = 0;
    for (int i = 0; i < n; i++) {
        char name[256];
        snprintf(name, sizeof name, "%s-partition-%d", base, i);
        c += topic_find(topics0(), name) != NULL;
    }
    return c;
}

/* A partitioned topic base of n partitions, every one loaded. */
static void partitioned_loaded(const char *base, int n)
{
    struct tl_done d = {0};
    ck_assert_int_eq(ns_partitions_set(ns0(), base, n, true, tl_done_cb, &d), 0);
    ck_assert_int_eq(wait_done(&d), 0);
    load_partitions(base, n);
    ck_assert_int_eq(loaded_partitions(base, n), n);
}

/* A probe of a sliced job: a timer re-armed for now each time it fires, while the job runs.
 * Timers due at the same instant fire in the order they were started, so a slice (which arms
 * the next one for now before the probe re-arms) and the probe alternate: each firing sees
 * what one slice did. While the job waits (a later timer, or the store) the probe steps
 * 1 ms at a time, so that time can move. at_slice (may be NULL) runs at each firing that saw
 * progress. */
struct slice_probe {
    struct mg_timer timer;
    const char *base;
    int n;                /* partitions */
    struct tl_done done;  /* the delete's outcome */
    int left;             /* partitions still loaded at the last firing */
    int slices;           /* firings that saw partitions deleted */
    int max_in_one_slice; /* the most deleted between two firings */
    void (*at_slice)(struct slice_probe *p);
    bool stopped;
};

static int loaded_partitions(const char *base, int n);

static void slice_probe_cb(struct mg_timer *t, void *arg)
{
    struct slice_probe *p = arg;
    int now = loaded_partitions(p->base, p->n);
    bool progress = now < p->left;
    if (progress) {
        p->slices++;
        if (p->left - now > p->max_in_one_slice)
            p->max_in_one_slice = p->left - now;
        p->left = now;
        if (p->at_slice)
            p->at_slice(p);
    }
    if (p->done.called || p->stopped || p->slices > 100000) {
        p->stopped = true;
        return;
    }
    mg_timer_start(t, progress ? 0 : 1);
}

/* A partitioned topic base of n loaded partitions, its forced delete started (its outcome in
 * p->done, which never comes inside the call) and p probing it (at_slice: see the probe). */
static void probed_delete(struct slice_probe *p, const char *base, int n,
                          void (*at_slice)(struct slice_probe *p))
{
    partitioned_loaded(base, n);
    *p = (struct slice_probe){.base = base, .n = n, .left = n, .at_slice = at_slice};
    ck_assert_int_eq(ns_partitioned_delete(ns0(), base, true, tl_done_cb, &p->done), 0);
    ck_assert(!p->done.called);
    mg_timer_init(&p->timer, fx.loop, slice_probe_cb, p);
    mg_timer_start(&p->timer, 0);
}

/* A partitioned topic's delete is spread over many loop turns (the loop serves others in
 * between), deletes every loaded partition, then the metadata. */
START_TEST(test_partitioned_delete_is_sliced)
{
    const char *base = "persistent://public/default/many";
    struct slice_probe p;
    probed_delete(&p, base, 600, NULL);
    ck_assert_int_eq(wait_done(&p.done), 0);
    tl_run_due(fx.loop); /* the probe's last firing */
    ck_assert(p.stopped);
    mg_timer_fini(&p.timer);
    ck_assert_int_eq(loaded_partitions(base, p.n), 0);
    ck_assert_int_eq(p.left, 0);
    ck_assert_int_eq(ns_partitions_get(ns0(), base), 0);
    ck_assert_msg(p.max_in_one_slice <= 64, "%d partitions deleted in one loop turn",
                  p.max_in_one_slice);
    ck_assert_msg(p.slices >= p.n / 64, "done in %d loop turns", p.slices);
}
END_TEST

static void prod_closed(void *owner, struct topic_producer *p)
{
    (void)owner;
    (void)p;
}

/* Without force, a partition with a producer refuses the delete before anything is gone. */
START_TEST(test_partitioned_delete_busy)
{
    const char *base = "persistent://public/default/busy";
    partitioned_loaded(base, 200);
    static const struct topic_producer_ops ops = {.closed = prod_closed};
    struct topic_producer *p = NULL;
    struct topic *t = topic_find(topics0(), "persistent://public/default/busy-partition-150");
    ck_assert_int_eq(topic_producer_add(t, NULL, TOPIC_ACCESS_SHARED, NULL, &ops, &p), 0);
    struct tl_done d = {0};
    ck_assert_int_eq(ns_partitioned_delete(ns0(), base, false, tl_done_cb, &d), 0);
    ck_assert_int_eq(wait_done(&d), -MG_EBUSY);
    ck_assert_int_eq(loaded_partitions(base, 200), 200);
    ck_assert_int_eq(ns_partitions_get(ns0(), base), 200);
    topic_producer_close(p);
    memset(&d, 0, sizeof d);
    ck_assert_int_eq(ns_partitioned_delete(ns0(), base, false, tl_done_cb, &d), 0);
    ck_assert_int_eq(wait_done(&d), 0);
    ck_assert_int_eq(loaded_partitions(base, 200), 0);
    ck_assert_int_eq(ns_partitioned_delete(ns0(), base, false, tl_done_cb, &d), -MG_ENOTFOUND);
}
END_TEST

/* Inactive partitions (brokerDeleteInactiveTopics*, a check every second, 2 s of
 * inactivity): each is deleted on its own; with brokerDeleteInactivePartitionedTopicMetadata
 * Enabled the partitioned topic's metadata goes once no partition is left, not while one is
 * in use; without it the metadata stays (Pulsar's default). */
START_TEST(test_inactive_partitions_metadata)
{
    tl_parts_stop(&fx, 0);
    fx.cfg.delete_inactive_topics = true;
    fx.cfg.delete_inactive_frequency_secs = 1;
    fx.cfg.delete_inactive_max_secs = 2;
    fx.cfg.delete_inactive_pt_metadata = true;
    tl_parts_start(&fx, 0);
    const char *idle = "persistent://public/default/gcidle",
               *busy = "persistent://public/default/gcbusy";
    partitioned_loaded(idle, 4);
    partitioned_loaded(busy, 3);
    static const struct topic_producer_ops ops = {.closed = prod_closed};
    struct topic_producer *p = NULL;
    struct topic *t = topic_find(topics0(), "persistent://public/default/gcbusy-partition-1");
    ck_assert_int_eq(topic_producer_add(t, NULL, TOPIC_ACCESS_SHARED, NULL, &ops, &p), 0);
    tl_run_for(fx.loop, 5000);
    ck_assert_int_eq(loaded_partitions(idle, 4), 0);
    ck_assert_int_eq(ns_partitions_get(ns0(), idle), 0);
    ck_assert_int_eq(loaded_partitions(busy, 3), 1);
    ck_assert_int_eq(ns_partitions_get(ns0(), busy), 3);
    topic_producer_close(p);
    tl_run_for(fx.loop, 5000);
    ck_assert_int_eq(loaded_partitions(busy, 3), 0);
    ck_assert_int_eq(ns_partitions_get(ns0(), busy), 0);

    tl_parts_stop(&fx, 0);
    fx.cfg.delete_inactive_pt_metadata = false;
    tl_parts_start(&fx, 0);
    const char *kept = "persistent://public/default/gckept";
    partitioned_loaded(kept, 2);
    tl_run_for(fx.loop, 5000);
    ck_assert_int_eq(loaded_partitions(kept, 2), 0);
    ck_assert_int_eq(ns_partitions_get(ns0(), kept), 2);
}
END_TEST

/* At the first slice: the broker begins going away (ns_cancel is the first step of its
 * teardown). */
static void cancel_at_slice(struct slice_probe *p)
{
    ns_cancel(ns0());
    p->stopped = true;
}

/* The broker freed in the middle of a delete: no callback, no slice after, nothing touched
 * after (ASan). */
START_TEST(test_partitioned_delete_cancelled)
{
    const char *base = "persistent://public/default/cancelled";
    struct slice_probe p;
    probed_delete(&p, base, 300, cancel_at_slice);
    ck_assert(tl_until_flag(fx.loop, &p.stopped, tl_wait_ms(fx.loop)));
    tl_run_for(fx.loop, 1000); /* nothing resumes it */
    mg_timer_fini(&p.timer);
    int left = loaded_partitions(base, p.n);
    ck_assert_msg(left > 0 && left < p.n, "%d of %d partitions left", left, p.n);
    tl_parts_stop(&fx, 0);
    tl_run_due(fx.loop);
    ck_assert(!p.done.called);
}
END_TEST

/* maxNumPartitionsPerPartitionedTopic bounds creating and growing. */
START_TEST(test_partitions_bounded)
{
    tl_cfg_set(&fx.cfg, "maxNumPartitionsPerPartitionedTopic", "8");
    const char *base = "persistent://public/default/bounded";
    struct tl_done d = {0};
    ck_assert_int_eq(ns_partitions_set(ns0(), base, 9, true, tl_done_cb, &d), -MG_ENOTALLOWED);
    ck_assert_int_eq(ns_partitions_set(ns0(), base, 8, true, tl_done_cb, &d), 0);
    ck_assert_int_eq(wait_done(&d), 0);
    ck_assert_int_eq(ns_partitions_set(ns0(), base, 9, false, tl_done_cb, &d), -MG_ENOTALLOWED);
    ck_assert_int_eq(ns_partitions_get(ns0(), base), 8);
}
END_TEST

struct listing {
    bool done;
    int status, n;
    bool sorted_unique;
    int partitions;
};

static void listed_cb(void *data, int status, char **names, int n)
{
    struct listing *l = data;
    l->done = true;
    l->status = status;
    l->n = n;
    l->sorted_unique = true;
    for (int i = 1; i < n; i++)
        if (strcmp(names[i - 1], names[i]) >= 0)
            l->sorted_unique = false;
    for (int i = 0; i < n; i++)
        l->partitions += strstr(names[i], "/wide-partition-") != NULL;
}

/* A namespace listing holds each topic once, sorted: partitions (also loaded ones) and
 * plain topics. */
START_TEST(test_list_topics_unique_sorted)
{
    const char *base = "persistent://public/default/wide";
    struct tl_done d = {0};
    ck_assert_int_eq(ns_partitions_set(ns0(), base, 3000, true, tl_done_cb, &d), 0);
    ck_assert_int_eq(wait_done(&d), 0);
    load_partitions(base, 20); /* listed from the metadata and as loaded topics */
    int loaded = 0;
    load_topic("persistent://public/default/plain", &loaded);
    ck_assert_int_eq(tl_until_count(fx.loop, &loaded, 1, tl_wait_ms(fx.loop)), 1);
    struct listing l = {0};
    ck_assert_int_eq(ns_list_topics(ns0(), "public/default", false, listed_cb, &l), 0);
    tl_wait(fx.loop, &l.done);
    ck_assert_int_eq(l.status, 0);
    ck_assert(l.sorted_unique);
    ck_assert_int_eq(l.partitions, 3000);
    ck_assert_int_eq(l.n, 3001);
}
END_TEST

/* ---- topic lists of pattern consumers (ns_list.c) ---------------------------------------- */

START_TEST(test_topics_hash_is_pulsars)
{
    char h[NS_TOPICS_HASH_LEN];
    char *one[] = {"123456789"}; /* the CRC32C check value e3069283, little-endian first */
    ns_topics_hash(one, 1, h);
    ck_assert_str_eq(h, "839206e3");
    ns_topics_hash(NULL, 0, h);
    ck_assert_str_eq(h, "00000000");
    char *three[] = {"persistent://my-property/my-ns/pattern-topic-3",
                     "persistent://my-property/my-ns/pattern-topic-1",
                     "persistent://my-property/my-ns/pattern-topic-2"};
    ns_topics_hash(three, 3, h); /* any order: sorted, joined by ',' */
    ck_assert_str_eq(h, "90d4a04a");
    char *two[] = {three[0], three[1]};
    char h2[NS_TOPICS_HASH_LEN];
    ns_topics_hash(two, 2, h2);
    ck_assert_str_ne(h, h2);
}
END_TEST

static int match(const char *pattern, const char *name)
{
    struct ns_pattern *p;
    char err[200];
    int rc = ns_pattern_compile(pattern, &p, err, sizeof err);
    if (rc < 0)
        return rc;
    rc = ns_pattern_match(p, name);
    ns_pattern_free(p);
    return rc;
}

START_TEST(test_pattern_matches_as_pulsar)
{
    const char *pat = "persistent://public/default/orders-.*";
    ck_assert_int_eq(match(pat, "persistent://public/default/orders-eu"), 1);
    /* a partition matches by its partitioned topic's name */
    ck_assert_int_eq(match(pat, "persistent://public/default/orders-eu-partition-7"), 1);
    ck_assert_int_eq(match("persistent://public/default/orders-eu",
                           "persistent://public/default/orders-eu-partition-12"),
                     1);
    ck_assert_int_eq(match(pat, "persistent://public/default/invoices"), 0);
    ck_assert_int_eq(match(pat, "persistent://public/other/orders-eu"), 0);
    /* the whole name must match, not a part of it */
    ck_assert_int_eq(
        match("persistent://public/default/orders", "persistent://public/default/orders-eu"), 0);
    ck_assert_int_eq(
        match("persistent://public/default/rders.*", "persistent://public/default/orders-eu"), 0);
    /* the domain is taken off the pattern and the name; a prefix before it stays */
    ck_assert_int_eq(
        match("^persistent://public/default/o.*", "persistent://public/default/orders-eu"), 1);
    ck_assert_int_eq(
        match("non-persistent://public/default/o.*", "persistent://public/default/orders-eu"), 1);
    ck_assert_int_eq(match("public/default/o\\w+-\\w{2}", "persistent://public/default/orders-eu"),
                     1);
    /* Java-style classes and alternation */
    ck_assert_int_eq(
        match("persistent://public/default/(a|b)-[0-9]+", "persistent://public/default/b-42"), 1);
    ck_assert_int_eq(
        match("persistent://public/default/(a|b)-[0-9]+", "persistent://public/default/c-42"), 0);
    /* refused: a pattern that does not compile, a domain that is none */
    ck_assert_int_eq(match("persistent://public/default/(a", "persistent://public/default/a"),
                     -MG_EINVAL);
    ck_assert_int_eq(match("kafka://public/default/a", "persistent://public/default/a"),
                     -MG_EINVAL);

    /* system topics (Pulsar's SystemTopicNames.isSystemTopic) */
    ck_assert(ns_topic_is_system("persistent://public/default/__change_events"));
    ck_assert(ns_topic_is_system("persistent://public/default/__change_events-partition-1"));
    ck_assert(ns_topic_is_system("persistent://t/n/__transaction_buffer_snapshot"));
    ck_assert(ns_topic_is_system("persistent://t/n/orders-sub__transaction_pending_ack"));
    ck_assert(ns_topic_is_system(
        "persistent://pulsar/system/transaction_coordinator_assign-partition-0"));
    ck_assert(!ns_topic_is_system("persistent://public/default/__change_events2"));
    ck_assert(!ns_topic_is_system("persistent://public/default/orders"));

    /* filter: borrowed pointers of the names that match, in order */
    char *names[] = {"persistent://public/default/orders-1", "persistent://public/default/x",
                     "persistent://public/default/orders-2-partition-0"};
    char *out[3];
    struct ns_pattern *p;
    char err[200];
    ck_assert_int_eq(ns_pattern_compile(pat, &p, err, sizeof err), 0);
    ck_assert_int_eq(ns_pattern_filter(p, names, 3, out), 2);
    ck_assert_ptr_eq(out[0], names[0]);
    ck_assert_ptr_eq(out[1], names[2]);
    ns_pattern_free(p);
    /* no pattern: every name but the system topics */
    char *mixed[] = {"persistent://public/default/a", "persistent://public/default/__change_events",
                     "persistent://public/default/b"};
    ck_assert_int_eq(ns_pattern_filter(NULL, mixed, 3, out), 2);
    ck_assert_ptr_eq(out[0], mixed[0]);
    ck_assert_ptr_eq(out[1], mixed[2]);
}
END_TEST

/* The CPU time this thread has used (ms): what a bounded computation costs, which other
 * processes loading the machine do not move (the wall clock they do). */
static double thread_cpu_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts);
    return (double)ts.tv_sec * 1e3 + (double)ts.tv_nsec / 1e6;
}

/* A catastrophic pattern (nested quantifiers, exponential backtracking on a name that almost
 * matches) is stopped by the match limits: an error, in little CPU time, for names of any
 * length. */
START_TEST(test_catastrophic_pattern_bounded)
{
    struct ns_pattern *p;
    char err[200];
    ck_assert_int_eq(ns_pattern_compile("persistent://public/default/(a+)+b", &p, err, sizeof err),
                     0);
    for (int len = 24; len <= 200; len += 44) {
        char name[256];
        int n = snprintf(name, sizeof name, "persistent://public/default/");
        memset(name + n, 'a', (size_t)len);
        name[n + len] = 'c';
        name[n + len + 1] = '\0';
        double t0 = thread_cpu_ms();
        ck_assert_int_eq(ns_pattern_match(p, name), -MG_ENOTALLOWED);
        double ms = thread_cpu_ms() - t0;
        ck_assert_msg(ms < 1000, "one match took %.0f ms of CPU", ms);
    }
    /* the same pattern on a name that matches is fine */
    ck_assert_int_eq(ns_pattern_match(p, "persistent://public/default/aaab"), 1);
    ns_pattern_free(p);
}
END_TEST

/* A pattern slow on every name but under the per-match limits: filtering a large namespace
 * stops once its time budget is used up, instead of taking (names x slowness). The budget is
 * wall time, so a loaded machine stops it sooner; the CPU time spent is bounded either way. */
START_TEST(test_pattern_list_budget)
{
    struct ns_pattern *p;
    char err[200];
    ck_assert_int_eq(ns_pattern_compile("persistent://public/default/(a+)+b", &p, err, sizeof err),
                     0);
    enum { N = 10000 };
    char **names = malloc(N * sizeof *names), **out = malloc(N * sizeof *out);
    for (int i = 0; i < N; i++) {
        names[i] = malloc(64);
        snprintf(names[i], 64, "persistent://public/default/aaaaaaaaaaaaaac-%d", i);
    }
    ck_assert_int_eq(ns_pattern_match(p, names[0]), 0); /* one name: under the limits */
    double t0 = thread_cpu_ms();
    int rc = ns_pattern_filter(p, names, N, out);
    double ms = thread_cpu_ms() - t0;
    ck_assert_int_eq(rc, -MG_ENOTALLOWED);
    ck_assert_msg(ms < 1500, "filtering took %.0f ms of CPU", ms);
    for (int i = 0; i < N; i++)
        free(names[i]);
    free(names);
    free(out);
    ns_pattern_free(p);
}
END_TEST

struct heard {
    int created, deleted;
    char last[256];
};

static void heard_cb(void *arg, const char *name, bool created)
{
    struct heard *h = arg;
    if (created)
        h->created++;
    else
        h->deleted++;
    snprintf(h->last, sizeof h->last, "%s", name);
}

/* Another broker creates and deletes a topic: its managed ledger appears in and leaves the
 * store; the watch hears both, well before the periodic re-list. A topic loaded here (not in
 * the store: memory managed ledgers) is heard by the re-list. After unwatch, nothing. */
START_TEST(test_topics_watch_hears_store_and_loads)
{
    struct heard h = {0}, other = {0};
    struct ns_topics_watch *w = ns_topics_watch(ns0(), "public/default", heard_cb, &h);
    ck_assert_ptr_nonnull(w);
    struct ns_topics_watch *w2 = ns_topics_watch(ns0(), "public/default", heard_cb, &other);
    ck_assert_ptr_null(ns_topics_watch(ns0(), "public/none", heard_cb, &h));
    tl_run_for(fx.loop, 10); /* the first listing: nothing heard */
    ck_assert_int_eq(h.created + h.deleted, 0);

    uint64_t t0 = mg_loop_mono_ms(fx.loop);
    struct meta_store *m = tl_svc_meta(&fx, 1); /* another broker's session */
    ck_assert_int_eq(
        tl_meta_put(m, "/managed-ledgers/public/default/persistent/elsewhere", "", 0, 0), 0);
    ck_assert_int_eq(tl_until_count(fx.loop, &h.created, 1, 1000), 1);
    ck_assert_uint_lt(mg_loop_mono_ms(fx.loop) - t0, 1000);
    ck_assert_str_eq(h.last, "persistent://public/default/elsewhere");
    ck_assert_int_eq(other.created, 1);
    ck_assert_int_eq(tl_meta_del(m, "/managed-ledgers/public/default/persistent/elsewhere"), 0);
    ck_assert_int_eq(tl_until_count(fx.loop, &h.deleted, 1, 1000), 1);
    ck_assert_str_eq(h.last, "persistent://public/default/elsewhere");

    int loaded = 0;
    load_topic("persistent://public/default/here", &loaded);
    ck_assert_int_eq(tl_until_count(fx.loop, &h.created, 2, 20000), 2);
    ck_assert_str_eq(h.last, "persistent://public/default/here");

    ns_topics_unwatch(w);
    ck_assert_int_eq(tl_meta_put(m, "/managed-ledgers/public/default/persistent/late", "", 0, 0),
                     0);
    ck_assert_int_eq(tl_until_count(fx.loop, &other.created, 3, 1000), 3);
    ck_assert_int_eq(h.created, 2);
    ns_topics_unwatch(w2);
}
END_TEST

/* Pulsar's AutoTopicCreationOverride rules, and the override over the keys. */
START_TEST(test_auto_topic_override_rules)
{
    struct ns_auto_topic a;
    const char *why = NULL;
    json_t *j = json_loads("{\"allowAutoTopicCreation\":true,\"topicType\":\"partitioned\","
                           "\"defaultNumPartitions\":4}",
                           0, NULL);
    ck_assert_int_eq(ns_auto_topic_parse(j, 10, &a, &why), 0);
    ck_assert(a.set && a.allow && a.partitioned);
    ck_assert_int_eq(a.partitions, 4);
    json_t *back = ns_auto_topic_json(&a);
    ck_assert(json_equal(back, j));
    json_decref(back);
    ck_assert_int_eq(ns_auto_topic_parse(j, 3, &a, &why), -MG_ENOTALLOWED);
    json_decref(j);
    static const char *const bad[] = {
        "{\"allowAutoTopicCreation\":true,\"topicType\":\"sharded\"}",
        "{\"allowAutoTopicCreation\":true}",
        "{\"allowAutoTopicCreation\":true,\"topicType\":\"partitioned\"}",
        "{\"allowAutoTopicCreation\":true,\"topicType\":\"partitioned\",\"defaultNumPartitions\":"
        "0}",
        "{\"allowAutoTopicCreation\":true,\"topicType\":\"non-partitioned\","
        "\"defaultNumPartitions\":2}",
        "{\"topicType\":\"non-partitioned\"}",
        "[true]",
    };
    for (size_t i = 0; i < sizeof bad / sizeof *bad; i++) {
        j = json_loads(bad[i], 0, NULL);
        ck_assert_ptr_nonnull(j);
        why = NULL;
        ck_assert_msg(ns_auto_topic_parse(j, 10, &a, &why) == -MG_EINVAL, "accepted %s", bad[i]);
        ck_assert_ptr_nonnull(why);
        json_decref(j);
    }
    /* creation off: the rest is not checked (as Pulsar) */
    j = json_loads("{\"allowAutoTopicCreation\":false}", 0, NULL);
    ck_assert_int_eq(ns_auto_topic_parse(j, 10, &a, &why), 0);
    ck_assert(a.set && !a.allow);
    json_decref(j);

    /* the keys apply until the namespace overrides them */
    struct ns_auto_create ac;
    ns_auto_create_get(ns0(), "public/default", &ac);
    ck_assert(ac.topic && !ac.partitioned && ac.subscription);
    struct ns_policies p;
    ck_assert_int_eq(ns_namespace_policies_get(ns0(), "public/default", &p), 0);
    p.auto_topic =
        (struct ns_auto_topic){.set = true, .allow = true, .partitioned = true, .partitions = 6};
    p.auto_sub = (struct ns_auto_sub){.set = true, .allow = false};
    struct tl_done d = {0};
    ck_assert_int_eq(ns_namespace_policies_set(ns0(), "public/default", &p, tl_done_cb, &d), 0);
    ck_assert_int_eq(wait_done(&d), 0);
    ns_auto_create_get(ns0(), "public/default", &ac);
    ck_assert(ac.topic && ac.partitioned && !ac.subscription);
    ck_assert_int_eq(ac.partitions, 6);
    /* stored as Pulsar's Policies fields: a restarted broker reads them back */
    restart();
    ns_auto_create_get(ns0(), "public/default", &ac);
    ck_assert(ac.topic && ac.partitioned && !ac.subscription);
    ck_assert_int_eq(ac.partitions, 6);
}
END_TEST

int main(void)
{
    Suite *s = suite_create("ns");
    TCase *tc = tl_tcase(s, "resources", 30, setup, teardown);
    tl_add(tc, test_failed_tenant_create_rolls_back, test_failed_tenant_delete_rolls_back,
           test_failed_namespace_mutations_roll_back, test_failed_partitions_roll_back,
           test_failure_does_not_undo_later_mutation, test_free_with_writes_in_flight,
           test_refresh_does_not_resurrect);
    tc = tl_tcase(s, "bulk", 60, setup, teardown);
    tl_add(tc, test_partitioned_delete_is_sliced, test_partitioned_delete_busy,
           test_inactive_partitions_metadata, test_partitioned_delete_cancelled,
           test_partitions_bounded, test_list_topics_unique_sorted);
    tc = tl_tcase(s, "topic lists", 30, setup, teardown);
    tl_add(tc, test_topics_hash_is_pulsars, test_pattern_matches_as_pulsar,
           test_catastrophic_pattern_bounded, test_pattern_list_budget,
           test_topics_watch_hears_store_and_loads, test_auto_topic_override_rules);
    return tl_run(s);
}
