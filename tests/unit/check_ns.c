/*
 * check_ns.c - cluster resources (broker/ns/ns_res.c) and bulk work (ns_bulk.c).
 *
 * Resources: a service on an in-memory metadata store; the test seam ns_res_fail_writes
 * makes the store refuse the next writes. After a refused write the cache must say what
 * the store holds: a retried create succeeds (no "already exists") and a service started
 * again on the same store sees exactly what the answers claimed.
 *
 * Bulk work: a partitioned topic's delete runs in slices (a bounded number of partitions per
 * loop turn), refuses without force while a partition has a producer, and stops without a
 * callback when the service goes away; partition counts are bounded; namespace listings are
 * sorted and unique.
 */
#include "config/cfg.h"
#include "meta/meta.h"
#include "ns/ns.h"
#include "ns/ns_int.h"
#include "svc/svc.h"
#include "topic/topic.h"
#include "util/alloc.h"
#include "util/err.h"
#include "util/log.h"
#include "util/loop.h"

#include <check.h>
#include <event2/event.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

struct fixture {
    struct cfg cfg;
    struct event_base *base;
    struct mg_loop *loop;
    struct meta_store *meta;
    struct svc *svc;
};

static struct fixture fx;

static void pump(int rounds)
{
    for (int i = 0; i < rounds; i++) {
        event_base_loop(fx.base, EVLOOP_NONBLOCK);
        usleep(200);
    }
}

static void cfg_set_ok(const char *k, const char *v)
{
    char err[256];
    ck_assert_msg(cfg_set(&fx.cfg, k, v, "test", err, sizeof err) == 0, "%s", err);
}

static void setup(void)
{
    mg_log_set_level(MG_LOG_ERROR);
    cfg_init(&fx.cfg);
    cfg_set_ok("bindAddress", "127.0.0.1");
    cfg_set_ok("advertisedAddress", "127.0.0.1");
    cfg_set_ok("brokerServicePort", "0");
    cfg_set_ok("webServicePort", "0");
    cfg_set_ok("managedLedgerStore", "memory");
    fx.base = event_base_new();
    fx.loop = mg_loop_new(fx.base);
    struct meta_options mo = {.url = "memory"};
    ck_assert_int_eq(meta_open(fx.loop, &mo, &fx.meta), 0);
    fx.svc = svc_new(fx.loop, &fx.cfg, fx.meta);
    ck_assert_ptr_nonnull(fx.svc);
    pump(5);
}

static void teardown(void)
{
    svc_free(fx.svc);
    meta_close(fx.meta);
    mg_loop_free(fx.loop);
    event_base_free(fx.base);
    cfg_fini(&fx.cfg);
}

/* "Restart": a new service on the same store loads what the store holds. */
static void restart(void)
{
    svc_free(fx.svc);
    fx.svc = svc_new(fx.loop, &fx.cfg, fx.meta);
    ck_assert_ptr_nonnull(fx.svc);
}

struct done {
    bool called;
    int status;
};

static void done_cb(void *data, int status)
{
    struct done *d = data;
    d->called = true;
    d->status = status;
}

static int wait_done(struct done *d)
{
    for (int k = 0; k < 5000 && !d->called; k++)
        pump(1);
    ck_assert_msg(d->called, "callback never ran");
    return d->status;
}

START_TEST(test_failed_tenant_create_rolls_back)
{
    struct ns *s = svc_ns(fx.svc);
    struct done d = {0};
    ns_res_fail_writes(s, 1, -MG_EIO);
    ck_assert_int_eq(ns_tenant_create(s, "t1", done_cb, &d), 0);
    ck_assert(!d.called);
    ck_assert_int_eq(wait_done(&d), -MG_EIO);
    ck_assert_msg(!ns_tenant_exists(s, "t1"), "the cache claims a tenant the store never got");
    /* the retry creates it (no "already exists") and it survives a restart */
    memset(&d, 0, sizeof d);
    ck_assert_int_eq(ns_tenant_create(s, "t1", done_cb, &d), 0);
    ck_assert_int_eq(wait_done(&d), 0);
    restart();
    ck_assert(ns_tenant_exists(svc_ns(fx.svc), "t1"));
}
END_TEST

START_TEST(test_failed_tenant_delete_rolls_back)
{
    struct done d = {0};
    ck_assert_int_eq(ns_tenant_create(svc_ns(fx.svc), "t2", done_cb, &d), 0);
    ck_assert_int_eq(wait_done(&d), 0);
    memset(&d, 0, sizeof d);
    ns_res_fail_writes(svc_ns(fx.svc), 1, -MG_EIO);
    ck_assert_int_eq(ns_tenant_delete(svc_ns(fx.svc), "t2", done_cb, &d), 0);
    ck_assert_int_eq(wait_done(&d), -MG_EIO);
    ck_assert(ns_tenant_exists(svc_ns(fx.svc), "t2"));
    restart();
    ck_assert(ns_tenant_exists(svc_ns(fx.svc), "t2"));
}
END_TEST

START_TEST(test_failed_namespace_mutations_roll_back)
{
    struct ns *s = svc_ns(fx.svc);
    struct done d = {0};
    ck_assert_int_eq(ns_tenant_create(s, "t3", done_cb, &d), 0);
    ck_assert_int_eq(wait_done(&d), 0);
    /* create */
    memset(&d, 0, sizeof d);
    ns_res_fail_writes(s, 1, -MG_ETIMEDOUT);
    ck_assert_int_eq(ns_namespace_create(s, "t3/ns", 4, done_cb, &d), 0);
    ck_assert_int_eq(wait_done(&d), -MG_ETIMEDOUT);
    ck_assert(!ns_namespace_exists(s, "t3/ns"));
    memset(&d, 0, sizeof d);
    ck_assert_int_eq(ns_namespace_create(s, "t3/ns", 4, done_cb, &d), 0);
    ck_assert_int_eq(wait_done(&d), 0);
    /* retention set: a failed set leaves the previous policy (none) */
    memset(&d, 0, sizeof d);
    ns_res_fail_writes(s, 1, -MG_EIO);
    ck_assert_int_eq(ns_namespace_retention_set(s, "t3/ns", false, 60, 100, done_cb, &d), 0);
    ck_assert_int_eq(wait_done(&d), -MG_EIO);
    int64_t tm = 0, mb = 0;
    ck_assert_int_eq(ns_namespace_retention_get(s, "t3/ns", &tm, &mb), 0);
    memset(&d, 0, sizeof d);
    ck_assert_int_eq(ns_namespace_retention_set(s, "t3/ns", false, 60, 100, done_cb, &d), 0);
    ck_assert_int_eq(wait_done(&d), 0);
    /* a failed change keeps the stored policy */
    memset(&d, 0, sizeof d);
    ns_res_fail_writes(s, 1, -MG_EIO);
    ck_assert_int_eq(ns_namespace_retention_set(s, "t3/ns", false, 5, 5, done_cb, &d), 0);
    ck_assert_int_eq(wait_done(&d), -MG_EIO);
    ck_assert_int_eq(ns_namespace_retention_get(s, "t3/ns", &tm, &mb), 1);
    ck_assert_int_eq(tm, 60);
    ck_assert_int_eq(mb, 100);
    /* delete: the namespace and its policy come back */
    memset(&d, 0, sizeof d);
    ns_res_fail_writes(s, 1, -MG_EIO);
    ck_assert_int_eq(ns_namespace_delete(s, "t3/ns", done_cb, &d), 0);
    ck_assert_int_eq(wait_done(&d), -MG_EIO);
    ck_assert(ns_namespace_exists(s, "t3/ns"));
    ck_assert_int_eq(ns_namespace_bundles(s, "t3/ns"), 4);
    ck_assert_int_eq(ns_namespace_retention_get(s, "t3/ns", &tm, &mb), 1);
    ck_assert_int_eq(tm, 60);
    restart();
    ck_assert(ns_namespace_exists(svc_ns(fx.svc), "t3/ns"));
    ck_assert_int_eq(ns_namespace_retention_get(svc_ns(fx.svc), "t3/ns", &tm, &mb), 1);
    ck_assert_int_eq(mb, 100);
}
END_TEST

/* A refresh walk whose reads were sent before a local delete answers with what the store
 * held then: it must not bring the deleted namespace or tenant back. The deletes land at
 * each step of the walk in turn (the first round: while the tenant list is being read). */
START_TEST(test_refresh_does_not_resurrect)
{
    struct ns *s = svc_ns(fx.svc);
    for (int round = 0; round < 8; round++) {
        char tenant[32], ns[48];
        snprintf(tenant, sizeof tenant, "rt%d", round);
        snprintf(ns, sizeof ns, "%s/a", tenant);
        struct done d = {0};
        ck_assert_int_eq(ns_tenant_create(s, tenant, done_cb, &d), 0);
        ck_assert_int_eq(wait_done(&d), 0);
        memset(&d, 0, sizeof d);
        ck_assert_int_eq(ns_namespace_create(s, ns, 4, done_cb, &d), 0);
        ck_assert_int_eq(wait_done(&d), 0);
        ns_res_refresh_now(s);
        for (int k = 0; k < round; k++)
            event_base_loop(fx.base, EVLOOP_NONBLOCK);
        struct done d2 = {0};
        memset(&d, 0, sizeof d);
        ck_assert_int_eq(ns_namespace_delete(s, ns, done_cb, &d), 0);
        ck_assert_int_eq(ns_tenant_delete(s, tenant, done_cb, &d2), 0);
        ck_assert_int_eq(wait_done(&d), 0);
        ck_assert_int_eq(wait_done(&d2), 0);
        for (int k = 0; k < 5000 && s->res_loading > 0; k++)
            pump(1);
        ck_assert_int_eq(s->res_loading, 0);
        ck_assert_msg(!ns_namespace_exists(s, ns), "round %d: %s came back", round, ns);
        ck_assert_msg(!ns_tenant_exists(s, tenant), "round %d: %s came back", round, tenant);
    }
}
END_TEST

START_TEST(test_failed_partitions_roll_back)
{
    struct ns *s = svc_ns(fx.svc);
    const char *pt = "persistent://public/default/pt";
    struct done d = {0};
    ns_res_fail_writes(s, 1, -MG_EIO);
    ck_assert_int_eq(ns_partitions_set(s, pt, 3, true, done_cb, &d), 0);
    ck_assert_int_eq(wait_done(&d), -MG_EIO);
    ck_assert_int_eq(ns_partitions_get(s, pt), 0);
    memset(&d, 0, sizeof d);
    ck_assert_int_eq(ns_partitions_set(s, pt, 3, true, done_cb, &d), 0);
    ck_assert_int_eq(wait_done(&d), 0);
    /* a failed grow keeps the stored count */
    memset(&d, 0, sizeof d);
    ns_res_fail_writes(s, 1, -MG_EIO);
    ck_assert_int_eq(ns_partitions_set(s, pt, 8, false, done_cb, &d), 0);
    ck_assert_int_eq(wait_done(&d), -MG_EIO);
    ck_assert_int_eq(ns_partitions_get(s, pt), 3);
    /* a failed delete keeps it */
    memset(&d, 0, sizeof d);
    ns_res_fail_writes(s, 1, -MG_EIO);
    ck_assert_int_eq(ns_partitions_delete(s, pt, done_cb, &d), 0);
    ck_assert_int_eq(wait_done(&d), -MG_EIO);
    ck_assert_int_eq(ns_partitions_get(s, pt), 3);
    restart();
    ck_assert_int_eq(ns_partitions_get(svc_ns(fx.svc), pt), 3);
}
END_TEST

/* A failed write must not undo a later mutation of the same entry that succeeded. */
START_TEST(test_failure_does_not_undo_later_mutation)
{
    struct ns *s = svc_ns(fx.svc);
    struct done d1 = {0}, d2 = {0};
    ns_res_fail_writes(s, 1, -MG_EIO);
    ck_assert_int_eq(ns_namespace_retention_set(s, "public/default", false, 1, 1, done_cb, &d1), 0);
    ck_assert_int_eq(ns_namespace_retention_set(s, "public/default", false, 7, 9, done_cb, &d2), 0);
    ck_assert_int_eq(wait_done(&d1), -MG_EIO);
    ck_assert_int_eq(wait_done(&d2), 0);
    int64_t tm = 0, mb = 0;
    ck_assert_int_eq(ns_namespace_retention_get(s, "public/default", &tm, &mb), 1);
    ck_assert_int_eq(tm, 7);
    ck_assert_int_eq(mb, 9);
    restart();
    ck_assert_int_eq(ns_namespace_retention_get(svc_ns(fx.svc), "public/default", &tm, &mb), 1);
    ck_assert_int_eq(tm, 7);
}
END_TEST

/* A service freed while its writes are in flight: no callback runs into freed callers, the
 * store's late completions touch nothing freed (ASan checks). */
START_TEST(test_free_with_writes_in_flight)
{
    struct done d1 = {0}, d2 = {0};
    ns_res_fail_writes(svc_ns(fx.svc), 1, -MG_EIO);
    ck_assert_int_eq(ns_tenant_create(svc_ns(fx.svc), "t5", done_cb, &d1), 0);
    ck_assert_int_eq(ns_tenant_create(svc_ns(fx.svc), "t6", done_cb, &d2), 0);
    svc_free(fx.svc);
    fx.svc = NULL;
    pump(5);
    ck_assert(!d1.called);
    ck_assert(!d2.called);
}
END_TEST

/* ---- bulk work ---------------------------------------------------------------------------- */

static void loaded_cb(struct topic *t, int status, void *data)
{
    (void)t;
    int *pending = data;
    ck_assert_int_eq(status, 0);
    (*pending)--;
}

static void load_partitions(const char *base, int n)
{
    int pending = n;
    for (int i = 0; i < n; i++) {
        char name[256];
        snprintf(name, sizeof name, "%s-partition-%d", base, i);
        ck_assert_int_eq(topic_get(svc_topics(fx.svc), name, true, loaded_cb, &pending), 0);
    }
    for (int k = 0; k < 20000 && pending > 0; k++)
        pump(1);
    ck_assert_int_eq(pending, 0);
}

static int loaded_partitions(const char *base, int n)
{
    int c = 0;
    for (int i = 0; i < n; i++) {
        char name[256];
        snprintf(name, sizeof name, "%s-partition-%d", base, i);
        c += topic_find(svc_topics(fx.svc), name) != NULL;
    }
    return c;
}

/* A partitioned topic's delete is spread over many loop turns (the loop serves others in
 * between), deletes every loaded partition, then the metadata. */
START_TEST(test_partitioned_delete_is_sliced)
{
    const char *base = "persistent://public/default/many";
    const int n = 600;
    struct done d = {0};
    ck_assert_int_eq(ns_partitions_set(svc_ns(fx.svc), base, n, true, done_cb, &d), 0);
    ck_assert_int_eq(wait_done(&d), 0);
    load_partitions(base, n);
    ck_assert_int_eq(loaded_partitions(base, n), n);
    memset(&d, 0, sizeof d);
    ck_assert_int_eq(ns_partitioned_delete(svc_ns(fx.svc), base, true, done_cb, &d), 0);
    ck_assert(!d.called);
    int turns = 0, max_in_one_turn = 0, left = n;
    while (!d.called && turns < 100000) {
        event_base_loop(fx.base, EVLOOP_ONCE | EVLOOP_NONBLOCK);
        turns++;
        int now = loaded_partitions(base, n);
        if (left - now > max_in_one_turn)
            max_in_one_turn = left - now;
        left = now;
    }
    ck_assert(d.called);
    ck_assert_int_eq(d.status, 0);
    ck_assert_int_eq(left, 0);
    ck_assert_int_eq(ns_partitions_get(svc_ns(fx.svc), base), 0);
    ck_assert_msg(max_in_one_turn <= 64, "%d partitions deleted in one loop turn", max_in_one_turn);
    ck_assert_msg(turns >= n / 64, "done in %d loop turns", turns);
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
    struct done d = {0};
    ck_assert_int_eq(ns_partitions_set(svc_ns(fx.svc), base, 200, true, done_cb, &d), 0);
    ck_assert_int_eq(wait_done(&d), 0);
    load_partitions(base, 200);
    static const struct topic_producer_ops ops = {.closed = prod_closed};
    struct topic_producer *p = NULL;
    struct topic *t =
        topic_find(svc_topics(fx.svc), "persistent://public/default/busy-partition-150");
    ck_assert_int_eq(topic_producer_add(t, NULL, TOPIC_ACCESS_SHARED, NULL, &ops, &p), 0);
    memset(&d, 0, sizeof d);
    ck_assert_int_eq(ns_partitioned_delete(svc_ns(fx.svc), base, false, done_cb, &d), 0);
    ck_assert_int_eq(wait_done(&d), -MG_EBUSY);
    ck_assert_int_eq(loaded_partitions(base, 200), 200);
    ck_assert_int_eq(ns_partitions_get(svc_ns(fx.svc), base), 200);
    topic_producer_close(p);
    memset(&d, 0, sizeof d);
    ck_assert_int_eq(ns_partitioned_delete(svc_ns(fx.svc), base, false, done_cb, &d), 0);
    ck_assert_int_eq(wait_done(&d), 0);
    ck_assert_int_eq(loaded_partitions(base, 200), 0);
    ck_assert_int_eq(ns_partitioned_delete(svc_ns(fx.svc), base, false, done_cb, &d),
                     -MG_ENOTFOUND);
}
END_TEST

/* The service freed in the middle of a delete: no callback, nothing touched after (ASan). */
START_TEST(test_partitioned_delete_cancelled)
{
    const char *base = "persistent://public/default/cancelled";
    struct done d = {0};
    ck_assert_int_eq(ns_partitions_set(svc_ns(fx.svc), base, 300, true, done_cb, &d), 0);
    ck_assert_int_eq(wait_done(&d), 0);
    load_partitions(base, 300);
    memset(&d, 0, sizeof d);
    ck_assert_int_eq(ns_partitioned_delete(svc_ns(fx.svc), base, true, done_cb, &d), 0);
    event_base_loop(fx.base, EVLOOP_ONCE | EVLOOP_NONBLOCK);
    svc_free(fx.svc);
    fx.svc = NULL;
    pump(10);
    ck_assert(!d.called);
}
END_TEST

/* maxNumPartitionsPerPartitionedTopic bounds creating and growing. */
START_TEST(test_partitions_bounded)
{
    cfg_set_ok("maxNumPartitionsPerPartitionedTopic", "8");
    const char *base = "persistent://public/default/bounded";
    struct done d = {0};
    ck_assert_int_eq(ns_partitions_set(svc_ns(fx.svc), base, 9, true, done_cb, &d),
                     -MG_ENOTALLOWED);
    ck_assert_int_eq(ns_partitions_set(svc_ns(fx.svc), base, 8, true, done_cb, &d), 0);
    ck_assert_int_eq(wait_done(&d), 0);
    ck_assert_int_eq(ns_partitions_set(svc_ns(fx.svc), base, 9, false, done_cb, &d),
                     -MG_ENOTALLOWED);
    ck_assert_int_eq(ns_partitions_get(svc_ns(fx.svc), base), 8);
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
    struct done d = {0};
    ck_assert_int_eq(ns_partitions_set(svc_ns(fx.svc), base, 3000, true, done_cb, &d), 0);
    ck_assert_int_eq(wait_done(&d), 0);
    load_partitions(base, 20); /* listed from the metadata and as loaded topics */
    int pending = 1;
    ck_assert_int_eq(topic_get(svc_topics(fx.svc), "persistent://public/default/plain", true,
                               loaded_cb, &pending),
                     0);
    for (int k = 0; k < 2000 && pending; k++)
        pump(1);
    struct listing l = {0};
    ck_assert_int_eq(ns_list_topics(svc_ns(fx.svc), "public/default", false, listed_cb, &l), 0);
    for (int k = 0; k < 2000 && !l.done; k++)
        pump(1);
    ck_assert(l.done);
    ck_assert_int_eq(l.status, 0);
    ck_assert(l.sorted_unique);
    ck_assert_int_eq(l.partitions, 3000);
    ck_assert_int_eq(l.n, 3001);
}
END_TEST

static Suite *ns_suite(void)
{
    Suite *s = suite_create("ns");
    TCase *tc = tcase_create("resources");
    tcase_add_checked_fixture(tc, setup, teardown);
    tcase_set_timeout(tc, 30);
    tcase_add_test(tc, test_failed_tenant_create_rolls_back);
    tcase_add_test(tc, test_failed_tenant_delete_rolls_back);
    tcase_add_test(tc, test_failed_namespace_mutations_roll_back);
    tcase_add_test(tc, test_failed_partitions_roll_back);
    tcase_add_test(tc, test_failure_does_not_undo_later_mutation);
    tcase_add_test(tc, test_free_with_writes_in_flight);
    tcase_add_test(tc, test_refresh_does_not_resurrect);
    suite_add_tcase(s, tc);
    tc = tcase_create("bulk");
    tcase_add_checked_fixture(tc, setup, teardown);
    tcase_set_timeout(tc, 60);
    tcase_add_test(tc, test_partitioned_delete_is_sliced);
    tcase_add_test(tc, test_partitioned_delete_busy);
    tcase_add_test(tc, test_partitioned_delete_cancelled);
    tcase_add_test(tc, test_partitions_bounded);
    tcase_add_test(tc, test_list_topics_unique_sorted);
    suite_add_tcase(s, tc);
    return s;
}

int main(void)
{
    SRunner *sr = srunner_create(ns_suite());
    srunner_run_all(sr, CK_NORMAL);
    int failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed == 0 ? EXIT_SUCCESS : EXIT_FAILURE;
}
