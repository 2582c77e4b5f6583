/*
 * check_own.c - namespace bundles and bundle ownership (broker/ns/ns_own.c).
 *
 * Bundle hashing and names are checked against values computed with zlib's crc32 (Pulsar's
 * hash). Ownership runs two brokers in one process, each made of its parts (tl_parts_start:
 * the namespace module, a managed-ledger factory and a topic registry, no listener) on one
 * simulated loop, each on its own session of one in-memory metadata tree (meta_open_peer),
 * so they see each other's registrations and ephemeral ownership keys. Lookups go through
 * ns_lookup; PRODUCER and SUBSCRIBE reach a broker over a connection on a bufferevent pair.
 * No socket, no sleep: waits run the loop in simulated time, so the timers of ownership
 * (the load report interval, the session timeout while disconnected, the unload's slices and
 * flush polls) fire when the test moves the time, deterministically.
 */
#include "lib/tl_bk.h"
#include "lib/tl_pulsar.h"
#include "lib/tl_svc.h"
#include "meta/meta.h"
#include "ns/ns.h"
#include "ns/ns_int.h"
#include "topic/topic.h"
#include "util/alloc.h"
#include "util/crc.h"
#include "util/err.h"
#include "util/loop.h"
#include "wire/wire.h"

#include <check.h>
#include <stdio.h>
#include <string.h>

#define T(x) PULSAR__PROTO__BASE_COMMAND__TYPE__##x

/* ---- bundle arithmetic --------------------------------------------------------------------- */

START_TEST(test_crc32_is_zlib)
{
    ck_assert_uint_eq(mg_crc32(0, "123456789", 9), 0xcbf43926u);
    const char *t = "persistent://public/default/my-topic";
    ck_assert_uint_eq(mg_crc32(0, t, strlen(t)), 0x2bad45f7u);
}
END_TEST

START_TEST(test_bundle_names)
{
    char b[NS_BUNDLE_NAME_LEN];
    static const char *const four[] = {"0x00000000_0x40000000", "0x40000000_0x80000000",
                                       "0x80000000_0xc0000000", "0xc0000000_0xffffffff"};
    for (int i = 0; i < 4; i++) {
        ns_bundle_name(4, i, b);
        ck_assert_str_eq(b, four[i]);
    }
    ns_bundle_name(1, 0, b);
    ck_assert_str_eq(b, "0x00000000_0xffffffff");
    ns_bundle_name(3, 0, b);
    ck_assert_str_eq(b, "0x00000000_0x55555555");
    ns_bundle_name(3, 2, b);
    ck_assert_str_eq(b, "0xaaaaaaaa_0xffffffff");
    ns_bundle_name(16, 15, b);
    ck_assert_str_eq(b, "0xf0000000_0xffffffff");
}
END_TEST

START_TEST(test_bundle_index)
{
    ck_assert_int_eq(ns_bundle_index(0, 4), 0);
    ck_assert_int_eq(ns_bundle_index(0x3fffffffu, 4), 0);
    ck_assert_int_eq(ns_bundle_index(0x40000000u, 4), 1);
    ck_assert_int_eq(ns_bundle_index(0xbfffffffu, 4), 2);
    ck_assert_int_eq(ns_bundle_index(0xffffffffu, 4), 3);
    ck_assert_int_eq(ns_bundle_index(0xffffffffu, 3), 2); /* the last range is closed */
    ck_assert_int_eq(ns_bundle_index(0xaaaaaaa9u, 3), 1);
    ck_assert_int_eq(ns_bundle_index(0xffffffffu, 1), 0);
    /* zlib crc32 of the names, computed outside (python zlib.crc32) */
    ck_assert_int_eq(ns_bundle_index(0x2bad45f7u, 4), 0); /* .../my-topic */
    ck_assert_int_eq(ns_bundle_index(0x4a4c72a3u, 4), 1); /* .../my-topic-partition-1 */
    ck_assert_int_eq(ns_bundle_index(0xab01183bu, 4), 2); /* .../own-0 */
    ck_assert_int_eq(ns_bundle_index(0xdc0628adu, 4), 3); /* .../own-1 */
}
END_TEST

/* ---- two brokers on one memory tree ------------------------------------------------------- */

static struct tl_svc fx;
static uint64_t t_start; /* the simulated time the brokers started at */
static char urls[2][64]; /* the brokers' service URLs (also once a broker is gone) */

static struct ns *ns_of(int i)
{
    return fx.parts[i].ns;
}

/* A session still open on the shared tree (a test may close one). */
static struct meta_store *any_meta(void)
{
    for (int i = 0; i < TL_MAX_BROKERS; i++)
        if (fx.meta[i])
            return fx.meta[i];
    ck_abort_msg("no metadata session left");
    return NULL;
}

/* The value at path in the shared tree into v (NUL-terminated), or the status. */
static int read_key(const char *path, char *v, size_t len)
{
    struct meta_req r;
    int st = tl_meta_get(any_meta(), path, &r);
    snprintf(v, len, "%.*s", st == 0 ? (int)r.len : 0, st == 0 ? (const char *)r.value : "");
    meta_req_fini(&r);
    return st;
}

/* The status of a read of path: 0 when the key is there. */
static int key_status(const char *path)
{
    char v[8];
    return read_key(path, v, sizeof v);
}

static bool key_exists(const void *path)
{
    return key_status(path) == 0;
}

static char *registration_path(int i)
{
    return mg_asprintf("/loadbalance/brokers/%s", ns_broker_id(ns_of(i)));
}

static void setup(void)
{
    tl_svc_init_sim(&fx);
    t_start = mg_loop_mono_ms(fx.loop);
    for (int i = 0; i < 2; i++) {
        tl_svc_meta(&fx, i);
        tl_parts_start(&fx, i);
        snprintf(urls[i], sizeof urls[i], "%s", ns_broker_url(ns_of(i)));
    }
    /* until both brokers are registered */
    for (int i = 0; i < 2; i++) {
        char *path = registration_path(i);
        ck_assert_msg(tl_until(fx.loop, key_exists, path, tl_wait_ms(fx.loop)),
                      "broker %d not registered at %s", i, path);
        mg_free(path);
    }
}

static void teardown(void)
{
    tl_svc_fini(&fx);
}

struct lookup_result {
    bool done;
    int status;
    char url[128];
    bool connect_here;
};

static void lookup_cb(void *data, int status, const char *url, const char *message)
{
    struct lookup_result *r = data;
    (void)message;
    r->done = true;
    r->status = status;
    r->connect_here = status == 0 && !url;
    snprintf(r->url, sizeof r->url, "%s", url ? url : "");
}

/* Look topic up at broker i; returns the index of the broker that serves it, following
 * redirects as a client does (authoritative after the first). -1 on failure. */
static int lookup_at(int i, const char *topic, bool authoritative, struct lookup_result *r)
{
    struct topic_name tn;
    ck_assert_int_eq(topic_name_parse(topic, &tn), 0);
    memset(r, 0, sizeof *r);
    int rc = ns_lookup(ns_of(i), &tn, authoritative, lookup_cb, r);
    topic_name_fini(&tn);
    if (rc == 1) {
        r->done = true;
        r->connect_here = true;
        return i;
    }
    ck_assert_int_eq(rc, 0);
    tl_wait(fx.loop, &r->done);
    if (r->status < 0)
        return -1;
    if (r->connect_here)
        return i;
    for (int j = 0; j < 2; j++)
        if (strcmp(r->url, urls[j]) == 0)
            return 10 + j; /* redirect to j */
    ck_abort_msg("redirect to unknown url %s", r->url);
    return -1;
}

static int serve(int entry, const char *topic)
{
    struct lookup_result r;
    int at = lookup_at(entry, topic, false, &r);
    for (int hops = 0; at >= 10 && hops < 3; hops++)
        at = lookup_at(at - 10, topic, true, &r);
    ck_assert_int_ge(at, 0);
    ck_assert_int_lt(at, 10);
    return at;
}

static bool owned_by(int i, const char *topic)
{
    struct topic_name tn;
    ck_assert_int_eq(topic_name_parse(topic, &tn), 0);
    bool o = ns_topic_owned(ns_of(i), &tn);
    topic_name_fini(&tn);
    return o;
}

#define T0 "persistent://public/default/own-3"  /* bundle 0 */
#define T1 "persistent://public/default/own-2"  /* bundle 1 */
#define T2 "persistent://public/default/own-0"  /* bundle 2 */
#define T3 "persistent://public/default/own-1"  /* bundle 3 */
#define T0B "persistent://public/default/own-7" /* bundle 0 too */

START_TEST(test_registered)
{
    char v[512];
    for (int i = 0; i < 2; i++) {
        char *path = registration_path(i);
        ck_assert_int_eq(read_key(path, v, sizeof v), 0);
        ck_assert_ptr_nonnull(strstr(v, ns_broker_url(ns_of(i))));
        ck_assert_ptr_nonnull(strstr(v, "\"numBundles\":0"));
        mg_free(path);
    }
}
END_TEST

START_TEST(test_assign_redirect_and_owner)
{
    /* Unowned: assigned to one of them; both then agree on the owner. */
    int owner = serve(0, T0);
    ck_assert(owned_by(owner, T0));
    ck_assert(!owned_by(1 - owner, T0));
    struct lookup_result r;
    ck_assert_int_eq(lookup_at(owner, T0, false, &r), owner);
    ck_assert_int_eq(lookup_at(1 - owner, T0, false, &r), 10 + owner); /* redirect */
    /* an authoritative lookup at the non-owner still redirects to the owner */
    ck_assert_int_eq(lookup_at(1 - owner, T0, true, &r), 10 + owner);
    /* the same bundle: the same owner */
    ck_assert_int_eq(serve(1 - owner, T0B), owner);
    /* the ownership key is Pulsar's NamespaceEphemeralData */
    char v[512];
    ck_assert_int_eq(read_key("/namespace/public/default/0x00000000_0x40000000", v, sizeof v), 0);
    ck_assert_ptr_nonnull(strstr(v, ns_broker_url(ns_of(owner))));
    ck_assert_ptr_nonnull(strstr(v, "\"disabled\":false"));
    ck_assert_int_eq(ns_owned_bundles(ns_of(owner)), 1);
    size_t pos = 0;
    ck_assert_str_eq(ns_owned_bundle_next(ns_of(owner), &pos),
                     "public/default/0x00000000_0x40000000");
    ck_assert_ptr_null(ns_owned_bundle_next(ns_of(owner), &pos));
}
END_TEST

START_TEST(test_spread)
{
    /* Four bundles asked through one broker end up two and two (least loaded first). */
    const char *topics[] = {T0, T1, T2, T3};
    int n[2] = {0, 0};
    for (int i = 0; i < 4; i++)
        n[serve(0, topics[i])]++;
    ck_assert_int_eq(n[0], 2);
    ck_assert_int_eq(n[1], 2);
    ck_assert_int_eq(ns_owned_bundles(ns_of(0)), 2);
    ck_assert_int_eq(ns_owned_bundles(ns_of(1)), 2);
}
END_TEST

START_TEST(test_authoritative_takes)
{
    /* A broker redirected to with authoritative=true takes an unowned bundle itself. */
    struct lookup_result r;
    ck_assert_int_eq(lookup_at(1, T2, true, &r), 1);
    ck_assert(owned_by(1, T2));
    ck_assert_int_eq(lookup_at(0, T2, true, &r), 11);
}
END_TEST

START_TEST(test_unload_moves)
{
    int owner = serve(0, T1);
    struct tl_done d = {0};
    ck_assert_int_eq(ns_bundle_unload(ns_of(1 - owner), "public/default", "0x40000000_0x80000000",
                                      tl_done_cb, &d),
                     -MG_ENOTFOUND);
    ck_assert_int_eq(
        ns_bundle_unload(ns_of(owner), "public/default", "0x40000000_0x80000000", tl_done_cb, &d),
        0);
    ck_assert(!owned_by(owner, T1)); /* at once: no new producers */
    ck_assert_int_eq(tl_done_wait(&fx, &d), 0);
    ck_assert_int_eq(key_status("/namespace/public/default/0x40000000_0x80000000"), -MG_ENOTFOUND);
    /* the other broker takes it when asked with authority */
    struct lookup_result r;
    ck_assert_int_eq(lookup_at(1 - owner, T1, true, &r), 1 - owner);
    ck_assert(owned_by(1 - owner, T1));
}
END_TEST

/* Start a lookup of topic at broker i without waiting for it (it must not be answered at
 * once). */
static void lookup_start(int i, const char *topic, bool authoritative, struct lookup_result *r)
{
    struct topic_name tn;
    ck_assert_int_eq(topic_name_parse(topic, &tn), 0);
    memset(r, 0, sizeof *r);
    ck_assert_int_eq(ns_lookup(ns_of(i), &tn, authoritative, lookup_cb, r), 0);
    topic_name_fini(&tn);
}

/* Both brokers told to take the same unowned bundle at the same time: the store lets one
 * create the key; the other reads it and redirects to the winner. Lookups of a bundle being
 * acquired on one broker wait for its one create and all answer Connect. */
START_TEST(test_race_one_winner)
{
    struct lookup_result r0, r1, r0b;
    lookup_start(0, T2, true, &r0);
    lookup_start(0, T2, true, &r0b);
    lookup_start(1, T2, true, &r1);
    tl_wait(fx.loop, &r0.done);
    tl_wait(fx.loop, &r0b.done);
    tl_wait(fx.loop, &r1.done);
    ck_assert_int_eq(r0.status, 0);
    ck_assert_int_eq(r0b.status, 0);
    ck_assert_int_eq(r1.status, 0);
    ck_assert(owned_by(0, T2) != owned_by(1, T2));
    int winner = owned_by(0, T2) ? 0 : 1;
    struct lookup_result *w = winner == 0 ? &r0 : &r1, *l = winner == 0 ? &r1 : &r0;
    ck_assert(w->connect_here);
    ck_assert(!l->connect_here);
    ck_assert_str_eq(l->url, urls[winner]);
    ck_assert_int_eq(r0b.connect_here, r0.connect_here);
    ck_assert_str_eq(r0b.url, r0.url);
    ck_assert_int_eq(ns_owned_bundles(ns_of(winner)), 1);
    ck_assert_int_eq(ns_owned_bundles(ns_of(1 - winner)), 0);
}
END_TEST

/* What the loop had done when a probe timer fired. */
struct probe {
    struct mg_timer timer;
    struct topic_registry *topics;
    char **names;
    int n;
    const struct tl_done *d;
    bool fired;
    int left;      /* of names, still loaded then */
    bool d_called; /* d's callback had run */
};

/* How many of names[0..n) are loaded. */
static int loaded_of(struct topic_registry *topics, char **names, int n)
{
    int left = 0;
    for (int i = 0; i < n; i++)
        left += topic_find(topics, names[i]) != NULL;
    return left;
}

static void probe_cb(struct mg_timer *t, void *arg)
{
    (void)t;
    struct probe *p = arg;
    p->fired = true;
    p->left = loaded_of(p->topics, p->names, p->n);
    p->d_called = p->d->called;
}

/* Unloading a bundle with many loaded topics closes them in slices: no single loop turn
 * closes them all, every one is closed in the end, and only then is the key deleted. */
START_TEST(test_unload_in_slices)
{
    enum { N = 400 };
    int owner = serve(0, T1);
    struct topic_registry *topics = fx.parts[owner].topics;
    struct ns *s = ns_of(owner);
    char *names[N];
    int n = 0, loaded = 0;
    for (int i = 0; n < N && i < 100 * N; i++) {
        char *name = mg_asprintf("persistent://public/default/slice-%d", i);
        struct topic_name tn;
        ck_assert_int_eq(topic_name_parse(name, &tn), 0);
        char range[NS_BUNDLE_NAME_LEN];
        ns_topic_bundle(s, &tn, range);
        topic_name_fini(&tn);
        if (strcmp(range, "0x40000000_0x80000000") == 0) {
            names[n++] = name;
            ck_assert_int_eq(topic_get(topics, name, true, tl_topic_loaded_cb, &loaded), 0);
        } else {
            mg_free(name);
        }
    }
    ck_assert_int_eq(n, N);
    ck_assert_int_eq(tl_until_count(fx.loop, &loaded, N, tl_wait_ms(fx.loop)), N);
    struct tl_done d = {0};
    ck_assert_int_eq(ns_bundle_unload(s, "public/default", "0x40000000_0x80000000", tl_done_cb, &d),
                     0);
    ck_assert_int_eq(loaded_of(topics, names, N), N); /* nothing closed inside the call */
    /* One loop turn: timers due at the same time fire in the order they were started, so a
     * probe started now fires after the unload's first slice (started inside the call) and
     * before the second (which the first starts when it yields). */
    struct probe pr = {.topics = topics, .names = names, .n = N, .d = &d};
    mg_timer_init(&pr.timer, fx.loop, probe_cb, &pr);
    mg_timer_start(&pr.timer, 0);
    tl_wait(fx.loop, &pr.fired);
    mg_timer_fini(&pr.timer);
    ck_assert_msg(pr.left > 0 && pr.left < N, "one loop turn closed %d of %d topics", N - pr.left,
                  N);
    ck_assert(!pr.d_called);
    ck_assert_int_eq(tl_done_wait(&fx, &d), 0);
    for (int i = 0; i < N; i++) {
        ck_assert_ptr_null(topic_find(topics, names[i]));
        mg_free(names[i]);
    }
    ck_assert_int_eq(key_status("/namespace/public/default/0x40000000_0x80000000"), -MG_ENOTFOUND);
}
END_TEST

START_TEST(test_expiry_drops)
{
    int owner = serve(0, T3);
    ck_assert(owned_by(owner, T3));
    /* The store says the session expired: its keys are gone (delete the key by hand: the
     * memory store's session does not really expire). */
    ck_assert_int_eq(
        tl_meta_del(fx.meta[1 - owner], "/namespace/public/default/0xc0000000_0xffffffff"), 0);
    ns_session_event(ns_of(owner), META_SESSION_EXPIRED);
    ck_assert(!owned_by(owner, T3));
    ck_assert_int_eq(ns_owned_bundles(ns_of(owner)), 0);
    /* while disconnected (new session not yet up) it takes nothing */
    ns_session_event(ns_of(owner), META_SESSION_DISCONNECTED);
    struct lookup_result r;
    ck_assert_int_eq(lookup_at(owner, T3, true, &r), -1);
    ck_assert_int_eq(r.status, -MG_ENOTREADY);
    ns_session_event(ns_of(owner), META_SESSION_CONNECTED);
    ck_assert_int_eq(lookup_at(1 - owner, T3, true, &r), 1 - owner);
    ck_assert_int_eq(lookup_at(owner, T3, false, &r), 10 + 1 - owner);
}
END_TEST

/* The registration is written at start and again every loadBalancerReportUpdateMinIntervalMillis
 * with the broker's load: a bundle taken in between is counted from the next report on. */
START_TEST(test_load_report_interval)
{
    uint64_t interval = (uint64_t)fx.cfg.load_balancer_report_interval_ms;
    int owner = serve(0, T0);
    ck_assert_int_eq(ns_owned_bundles(ns_of(owner)), 1);
    char *path = registration_path(owner);
    char v[512];
    uint64_t now = mg_loop_mono_ms(fx.loop);
    ck_assert_uint_lt(now, t_start + interval);
    tl_run_for(fx.loop, t_start + interval - 1 - now);
    ck_assert_int_eq(read_key(path, v, sizeof v), 0);
    ck_assert_ptr_nonnull(strstr(v, "\"numBundles\":0")); /* not before the interval */
    tl_run_for(fx.loop, 1);
    ck_assert_int_eq(read_key(path, v, sizeof v), 0);
    ck_assert_ptr_nonnull(strstr(v, "\"numBundles\":1"));
    mg_free(path);
}
END_TEST

/* Disconnected from the store, a broker keeps its bundles while the session may still be
 * alive (ZooKeeper may come back): up to zooKeeperSessionTimeoutMillis, or for good when it
 * reconnects in time; past the timeout the session must have expired and every bundle is
 * dropped, without waiting for the store to say so. */
START_TEST(test_disconnected_past_session_timeout)
{
    uint64_t timeout = (uint64_t)fx.cfg.zookeeper_session_timeout_ms;
    int owner = serve(0, T3);
    struct ns *s = ns_of(owner);
    ns_session_event(s, META_SESSION_DISCONNECTED);
    tl_run_for(fx.loop, timeout - 1);
    ck_assert(owned_by(owner, T3));
    ns_session_event(s, META_SESSION_RECONNECTED);
    tl_run_for(fx.loop, timeout);
    ck_assert(owned_by(owner, T3)); /* reconnected in time: kept */
    ns_session_event(s, META_SESSION_DISCONNECTED);
    tl_run_for(fx.loop, timeout - 1);
    ck_assert(owned_by(owner, T3));
    tl_run_for(fx.loop, 1);
    ck_assert(!owned_by(owner, T3));
    ck_assert_int_eq(ns_owned_bundles(s), 0);
}
END_TEST

START_TEST(test_stale_own_key)
{
    /* A key naming broker 0's URL that broker 0 does not hold (a previous process on the
     * same address): broker 0 removes it and takes the bundle; broker 1 redirects there. */
    char *v = mg_asprintf("{\"nativeUrl\":\"%s\",\"httpUrl\":\"%s\",\"disabled\":false}",
                          ns_broker_url(ns_of(0)), ns_web_url(ns_of(0)));
    const char *key = "/namespace/public/default/0x80000000_0xc0000000";
    ck_assert_int_eq(key_status(key), -MG_ENOTFOUND); /* written as a new key */
    ck_assert_int_eq(tl_meta_put(fx.meta[1], key, v, strlen(v), 0), 0);
    mg_free(v);
    struct lookup_result r;
    ck_assert_int_eq(lookup_at(1, T2, false, &r), 10);
    ck_assert(!owned_by(0, T2));
    ck_assert_int_eq(lookup_at(0, T2, true, &r), 0);
    ck_assert(owned_by(0, T2));
}
END_TEST

/* An owned bundle's key deleted by someone else (an operator, a store that lost it) is
 * written again at once: nobody else took the bundle, so it stays here (Pulsar's lock
 * revalidation). */
#define K1 "/namespace/public/default/0x40000000_0x80000000" /* T1's bundle */

static bool key_names_url(const void *arg)
{
    char v[512];
    return read_key(K1, v, sizeof v) == 0 && strstr(v, (const char *)arg) != NULL;
}

static bool key_gone(const void *path)
{
    return key_status(path) == -MG_ENOTFOUND;
}

static bool bundle_gone(const void *arg)
{
    return !owned_by(*(const int *)arg, T1);
}

START_TEST(test_own_key_deleted_written_again)
{
    int owner = serve(0, T1);
    for (int round = 0; round < 2; round++) { /* the watch is armed again after each */
        ck_assert_int_eq(tl_meta_del(fx.meta[1 - owner], K1), 0);
        ck_assert_msg(tl_until(fx.loop, key_names_url, urls[owner], tl_wait_ms(fx.loop)),
                      "round %d: the key was not written again", round);
        ck_assert(owned_by(owner, T1));
    }
    struct lookup_result r;
    ck_assert_int_eq(lookup_at(1 - owner, T1, false, &r), 10 + owner);
    /* and an unload still deletes the rewritten key (its current version) */
    ck_assert_int_eq(
        ns_bundle_unload(ns_of(owner), "public/default", "0x40000000_0x80000000", NULL, NULL), 0);
    ck_assert(tl_until(fx.loop, bundle_gone, &owner, tl_wait_ms(fx.loop)));
    ck_assert_msg(tl_until(fx.loop, key_gone, K1, tl_wait_ms(fx.loop)), "unload left the key");
}
END_TEST

/* A key rewritten to name another broker: the bundle was taken; the old owner stops serving
 * it at once instead of waiting for a write to be fenced. */
START_TEST(test_own_key_taken_drops)
{
    int owner = serve(0, T1);
    int other = 1 - owner;
    char *v = mg_asprintf("{\"nativeUrl\":\"%s\",\"httpUrl\":\"%s\",\"disabled\":false}",
                          urls[other], ns_web_url(ns_of(other)));
    ck_assert_int_eq(tl_meta_put(fx.meta[other], K1, v, strlen(v), 0), 0);
    mg_free(v);
    ck_assert_msg(tl_until(fx.loop, bundle_gone, &owner, tl_wait_ms(fx.loop)),
                  "the old owner still serves the bundle");
    ck_assert_int_eq(ns_owned_bundles(ns_of(owner)), 0);
    ck_assert(key_names_url(urls[other])); /* not deleted nor rewritten by the old owner */
    struct lookup_result r;
    ck_assert_int_eq(lookup_at(owner, T1, false, &r), 10 + other);
}
END_TEST

/* ---- PRODUCER on a broker that does not own the bundle ------------------------------------ */

/* The next frame of type (others are skipped) into *f. */
static void next_of(struct tl_peer *p, int type, struct wire_frame *f)
{
    ck_assert_msg(tl_peer_skip_to(p, type, f) == 1, "no %s", wire_command_name(type));
}

/* A client of broker i (over a bufferevent pair), past its handshake. */
static void connect_to(struct tl_peer *p, int i)
{
    tl_parts_connect(&fx, i, p);
    tl_peer_handshake(p, 17, NULL);
}

/* LOOKUP over the wire: the response type, and its broker URL into url. */
static int lookup_frame(struct tl_peer *p, const char *topic, bool auth, char *url, size_t ulen)
{
    tl_send_lookup(p, topic, 7, auth);
    struct wire_frame f;
    next_of(p, T(LOOKUP_RESPONSE), &f);
    const Pulsar__Proto__CommandLookupTopicResponse *r = f.cmd->lookuptopicresponse;
    ck_assert_uint_eq(r->request_id, 7);
    int response = (int)r->response;
    snprintf(url, ulen, "%s", r->brokerserviceurl ? r->brokerserviceurl : "");
    if (r->response != PULSAR__PROTO__COMMAND_LOOKUP_TOPIC_RESPONSE__LOOKUP_TYPE__Failed)
        ck_assert(r->has_authoritative && r->authoritative);
    wire_frame_clear(&f);
    return response;
}

/* The next ERROR answers request_id with ServiceNotReady; its message into msg. */
static void expect_not_ready(struct tl_peer *p, uint64_t request_id, char *msg, size_t len)
{
    struct wire_frame f;
    next_of(p, T(ERROR), &f);
    ck_assert_uint_eq(f.cmd->error->request_id, request_id);
    ck_assert_int_eq(f.cmd->error->error, PULSAR__PROTO__SERVER_ERROR__ServiceNotReady);
    snprintf(msg, len, "%s", f.cmd->error->message ? f.cmd->error->message : "");
    wire_frame_clear(&f);
}

START_TEST(test_producer_not_owner)
{
    int owner = serve(0, T0);
    int other = 1 - owner;
    struct tl_peer p;
    connect_to(&p, other);
    /* LOOKUP over the wire: Redirect to the owner */
    char url[128], msg[400];
    ck_assert_int_eq(lookup_frame(&p, T0, false, url, sizeof url),
                     PULSAR__PROTO__COMMAND_LOOKUP_TOPIC_RESPONSE__LOOKUP_TYPE__Redirect);
    ck_assert_str_eq(url, ns_broker_url(ns_of(owner)));
    tl_send_producer(&p, T0, 1, 2);
    expect_not_ready(&p, 2, msg, sizeof msg);
    ck_assert_ptr_nonnull(strstr(msg, "Please redo the lookup"));
    /* SUBSCRIBE likewise */
    tl_send_subscribe(&p, T0, "sub", 1, 3, NULL);
    expect_not_ready(&p, 3, msg, sizeof msg);
    tl_peer_close(&p);

    /* at the owner, the producer is created; unloading the bundle closes it */
    connect_to(&p, owner);
    ck_assert_int_eq(lookup_frame(&p, T0, false, url, sizeof url),
                     PULSAR__PROTO__COMMAND_LOOKUP_TOPIC_RESPONSE__LOOKUP_TYPE__Connect);
    ck_assert_str_eq(url, ns_broker_url(ns_of(owner)));
    tl_send_producer(&p, T0, 1, 2);
    struct wire_frame f;
    next_of(&p, T(PRODUCER_SUCCESS), &f);
    wire_frame_clear(&f);
    struct tl_done d = {0};
    ck_assert_int_eq(
        ns_bundle_unload(ns_of(owner), "public/default", "0x00000000_0x40000000", tl_done_cb, &d),
        0);
    next_of(&p, T(CLOSE_PRODUCER), &f);
    ck_assert_uint_eq(f.cmd->close_producer->producer_id, 1);
    wire_frame_clear(&f);
    tl_done_wait(&fx, &d);
    tl_peer_close(&p);
}
END_TEST

/* ---- shutdown, and a broker whose session is lost -------------------------------------------- */

static bool ns_is_released(const void *arg)
{
    return ns_released((struct ns *)arg);
}

/* The shutdown release: at once the broker serves and takes no bundle (lookups there are not
 * ready, so clients retry elsewhere); its topics are closed, their clients told; then its
 * ownership keys and its registration are deleted, and the other broker takes the bundles. */
START_TEST(test_shutdown_releases)
{
    int owner = serve(0, T0);
    int other = 1 - owner;
    struct lookup_result r;
    ck_assert_int_eq(lookup_at(owner, T1, true, &r), owner);
    ck_assert_int_eq(ns_owned_bundles(ns_of(owner)), 2);
    struct tl_peer p;
    connect_to(&p, owner);
    tl_send_producer(&p, T0, 1, 2);
    struct wire_frame f;
    next_of(&p, T(PRODUCER_SUCCESS), &f);
    wire_frame_clear(&f);
    ck_assert_ptr_nonnull(topic_find(fx.parts[owner].topics, T0));

    struct ns *s = ns_of(owner);
    ns_shutdown(s);
    ck_assert(!owned_by(owner, T0));
    ck_assert(!owned_by(owner, T1));
    struct topic_name tn;
    ck_assert_int_eq(topic_name_parse(T2, &tn), 0);
    ck_assert_int_eq(ns_lookup(s, &tn, true, lookup_cb, &r), -MG_ENOTREADY); /* takes nothing */
    topic_name_fini(&tn);
    ck_assert(!ns_released(s)); /* the keys are deleted later, never inside the call */
    ck_assert_int_eq(key_status("/namespace/public/default/0x00000000_0x40000000"), 0);

    next_of(&p, T(CLOSE_PRODUCER), &f);
    ck_assert_uint_eq(f.cmd->close_producer->producer_id, 1);
    wire_frame_clear(&f);
    ck_assert_msg(tl_until(fx.loop, ns_is_released, s, tl_wait_ms(fx.loop)), "never released");
    ck_assert_ptr_null(topic_find(fx.parts[owner].topics, T0));
    ck_assert_int_eq(key_status("/namespace/public/default/0x00000000_0x40000000"), -MG_ENOTFOUND);
    ck_assert_int_eq(key_status("/namespace/public/default/0x40000000_0x80000000"), -MG_ENOTFOUND);
    char *path = registration_path(owner);
    ck_assert_int_eq(key_status(path), -MG_ENOTFOUND);
    mg_free(path);
    tl_peer_close(&p);

    /* the other broker takes them, also asked without authority once its broker list is
     * read after the release */
    tl_run_for(fx.loop, NS_OWN_BROKERS_CACHE_MS);
    ck_assert_int_eq(lookup_at(other, T0, false, &r), other);
    ck_assert_int_eq(lookup_at(other, T1, false, &r), other);
    ck_assert_int_eq(ns_owned_bundles(ns_of(other)), 2);
}
END_TEST

/* An unowned bundle is assigned from a list of live brokers and their loads at most
 * NS_OWN_BROKERS_CACHE_MS old: a broker that left within that age may still be chosen (the
 * client's authoritative lookup there is refused, and it retries), never after it. */
START_TEST(test_broker_list_age)
{
    struct lookup_result r;
    /* broker 0 holds three bundles, broker 1 none: 0's list (read now) makes 1 the least
     * loaded */
    ck_assert_int_eq(lookup_at(0, T0, true, &r), 0);
    ck_assert_int_eq(lookup_at(0, T1, true, &r), 0);
    ck_assert_int_eq(lookup_at(0, T2, true, &r), 0);
    ck_assert_int_eq(lookup_at(0, T3, false, &r), 11);
    uint64_t listed = mg_loop_mono_ms(fx.loop);
    ns_shutdown(ns_of(1));
    ck_assert_msg(tl_until(fx.loop, ns_is_released, ns_of(1), tl_wait_ms(fx.loop)),
                  "never released");
    char *path = registration_path(1);
    ck_assert_int_eq(key_status(path), -MG_ENOTFOUND);
    mg_free(path);
    /* within the age broker 0 still sends clients to 1 (load 0 + 1 assigned < 3), which
     * refuses them */
    uint64_t now = mg_loop_mono_ms(fx.loop);
    ck_assert_uint_lt(now, listed + NS_OWN_BROKERS_CACHE_MS);
    tl_run_for(fx.loop, listed + NS_OWN_BROKERS_CACHE_MS - 1 - now);
    ck_assert_int_eq(lookup_at(0, T3, false, &r), 11);
    struct topic_name tn;
    ck_assert_int_eq(topic_name_parse(T3, &tn), 0);
    ck_assert_int_eq(ns_lookup(ns_of(1), &tn, true, lookup_cb, &r), -MG_ENOTREADY);
    topic_name_fini(&tn);
    /* past it, broker 0 reads the list again and takes the bundle */
    tl_run_for(fx.loop, 1);
    ck_assert_int_eq(lookup_at(0, T3, false, &r), 0);
    ck_assert(owned_by(0, T3));
}
END_TEST

/* A broker that dies keeps its bundles for as long as its metadata session lives (the
 * ephemeral keys are its lease): the other broker sends clients there and refuses their
 * producers. Once the session is gone, and its keys with it, the other broker takes the
 * bundle and serves it. */
START_TEST(test_session_lost_takeover)
{
    int owner = serve(0, T0);
    int other = 1 - owner;
    tl_parts_stop(&fx, owner); /* no release: the process is gone, its session lives on */
    tl_run_for(fx.loop, NS_OWN_BROKERS_CACHE_MS);
    struct lookup_result r;
    ck_assert_int_eq(lookup_at(other, T0, false, &r), 10 + owner);
    ck_assert_int_eq(lookup_at(other, T0, true, &r), 10 + owner);
    ck_assert(!owned_by(other, T0));
    struct tl_peer p;
    char msg[400];
    connect_to(&p, other);
    tl_send_producer(&p, T0, 1, 2);
    expect_not_ready(&p, 2, msg, sizeof msg);
    tl_peer_close(&p);

    /* the session ends (ZooKeeper expires it): its ephemeral keys go */
    meta_close(fx.meta[owner]);
    fx.meta[owner] = NULL;
    tl_run_due(fx.loop);
    ck_assert_int_eq(key_status("/namespace/public/default/0x00000000_0x40000000"), -MG_ENOTFOUND);
    ck_assert_int_eq(lookup_at(other, T0, false, &r), other);
    ck_assert(owned_by(other, T0));
    char url[128];
    connect_to(&p, other);
    ck_assert_int_eq(lookup_frame(&p, T0, false, url, sizeof url),
                     PULSAR__PROTO__COMMAND_LOOKUP_TOPIC_RESPONSE__LOOKUP_TYPE__Connect);
    tl_send_producer(&p, T0, 1, 2);
    struct wire_frame f;
    next_of(&p, T(PRODUCER_SUCCESS), &f);
    wire_frame_clear(&f);
    tl_peer_close(&p);
}
END_TEST

struct brokers_result {
    bool done;
    int status, n;
    char first[64];
};

static void brokers_cb(void *data, int status, char **ids, int n)
{
    struct brokers_result *r = data;
    r->done = true;
    r->status = status;
    r->n = n;
    snprintf(r->first, sizeof r->first, "%s", n > 0 ? ids[0] : "");
}

START_TEST(test_list_brokers)
{
    struct brokers_result r = {0};
    ck_assert_int_eq(ns_list_brokers(ns_of(0), brokers_cb, &r), 0);
    ck_assert(!r.done); /* never inside the call */
    tl_wait(fx.loop, &r.done);
    ck_assert_int_eq(r.status, 0);
    ck_assert_int_eq(r.n, 2);
    ck_assert(strcmp(r.first, ns_broker_id(ns_of(0))) == 0 ||
              strcmp(r.first, ns_broker_id(ns_of(1))) == 0);
}
END_TEST

int main(void)
{
    Suite *s = suite_create("own");
    TCase *tc = tl_tcase(s, "bundles", 0, NULL, NULL);
    tl_add(tc, test_crc32_is_zlib, test_bundle_names, test_bundle_index);
    tc = tl_tcase(s, "ownership", 30, setup, teardown);
    tl_add(tc, test_registered, test_assign_redirect_and_owner, test_spread,
           test_authoritative_takes, test_race_one_winner, test_unload_moves, test_unload_in_slices,
           test_expiry_drops, test_load_report_interval, test_disconnected_past_session_timeout,
           test_stale_own_key, test_own_key_deleted_written_again, test_own_key_taken_drops,
           test_producer_not_owner, test_shutdown_releases, test_broker_list_age,
           test_session_lost_takeover, test_list_brokers);
    return tl_run(s);
}
