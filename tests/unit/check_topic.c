/*
 * check_topic.c - unit tests of the topic module over the real managed ledger (memory
 * store) and a fake connection that records what the dispatcher sends.
 *
 * The loop is driven with bounded EVLOOP_ONCE|EVLOOP_NONBLOCK passes (spin), or until an
 * awaited count is reached with a deadline (tl_until_count) where timers are involved.
 */
#include "PulsarApi.pb-c.h"
#include "lib/tl_bk.h"
#include "lib/tl_pulsar.h"
#include "ml/ml.h"
#include "topic/topic.h"
#include "topic/topic_int.h" /* TOPIC_SWEEP_SLICE */
#include "util/alloc.h"
#include "util/compress.h"
#include "util/err.h"
#include "util/loop.h"
#include "wire/wire.h"

#include <check.h>
#include <event2/buffer.h>
#include <event2/event.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define MAXREC 512

static struct event_base *base;
static struct mg_loop *loop;
static struct ml_factory *mlf;
static struct topic_registry *reg;
static struct topic_config cfg;
struct fc;
static int fc_used;

struct pub_rec {
    int n;
    int status[MAXREC];
    struct ml_position pos[MAXREC];
};
static struct pub_rec pubs;

/* Run what is ready (64 non-blocking passes: no timer waits). */
static void spin(void)
{
    for (int i = 0; i < 64; i++) {
        if (mg_loop_is_sim(loop))
            mg_loop_run_due(loop);
        event_base_loop(base, EVLOOP_ONCE | EVLOOP_NONBLOCK);
    }
}

static void default_cfg(void)
{
    memset(&cfg, 0, sizeof cfg);
    cfg.dispatch_max_round_robin = 20;
    cfg.dispatch_max_read_batch = 100;
    cfg.cluster_name = "standalone";
    cfg.broker_index = 0;
    cfg.delayed_enabled = true; /* the broker's defaults */
    cfg.delayed_tick_ms = 1000;
}

/* sim_wall_ms > 0: on a simulated loop whose wall clock starts there. */
static void setup_on(const struct topic_config *c, int64_t sim_wall_ms)
{
    memset(&pubs, 0, sizeof pubs);
    fc_used = 0;
    base = event_base_new();
    loop = sim_wall_ms > 0 ? mg_loop_new_sim(base, 1000, sim_wall_ms) : mg_loop_new(base);
    struct ml_config mc = {.cache_size_bytes = 1 << 20,
                           .max_entries_per_ledger = 1000,
                           .max_size_per_ledger = 1 << 30};
    mlf = ml_factory_new(loop, "memory", &mc);
    ck_assert_ptr_nonnull(mlf);
    reg = topic_registry_new(base, mlf, c);
}

static void setup_with(const struct topic_config *c)
{
    setup_on(c, 0);
}

static void setup(void)
{
    default_cfg();
    setup_with(&cfg);
}

static void teardown(void)
{
    topic_registry_free(reg);
    spin();
    ml_factory_free(mlf);
    mg_loop_free(loop);
    event_base_free(base);
    reg = NULL;
    mlf = NULL;
    base = NULL;
}

/* A test that needs other settings: the fixture's registry goes, cfg is the defaults again
 * (the test changes it, then calls setup_with or setup_on). */
static void restart_cfg(void)
{
    teardown();
    default_cfg();
}

/* ---- helpers -------------------------------------------------------------------------- */

#define NP_TOPIC "non-persistent://public/default/np"

struct get_res {
    int calls, status;
    struct topic *t;
};

static void get_cb(struct topic *t, int status, void *data)
{
    struct get_res *r = data;
    r->calls++;
    r->status = status;
    r->t = t;
}

static struct topic *load(const char *name)
{
    struct get_res r = {0};
    ck_assert_int_eq(topic_get(reg, name, true, get_cb, &r), 0);
    ck_assert_int_eq(r.calls, 0); /* never inside the call */
    spin();
    ck_assert_int_eq(r.calls, 1);
    ck_assert_int_eq(r.status, 0);
    return r.t;
}

/* A stored entry: [0x0e01][crc32c][u32 md size][MessageMetadata][payload]. */
static struct evbuffer *make_entry(uint64_t publish_time, int batch, const char *key)
{
    Pulsar__Proto__MessageMetadata md;
    tl_pulsar_md(&md, "p", 0, publish_time);
    if (batch > 0) {
        md.has_num_messages_in_batch = 1;
        md.num_messages_in_batch = batch;
    }
    if (key) {
        md.has_ordering_key = 1;
        md.ordering_key.data = (uint8_t *)key;
        md.ordering_key.len = strlen(key);
    }
    const char payload[] = "hello";
    return tl_pulsar_entry(&md, payload, sizeof payload);
}

/* A stored message with deliver_at_time (0: none) and an ordering key (NULL: none). */
static struct evbuffer *make_delayed(int64_t deliver_at, const char *key)
{
    Pulsar__Proto__MessageMetadata md;
    tl_pulsar_md(&md, "p", 0, 1000);
    if (deliver_at) {
        md.has_deliver_at_time = 1;
        md.deliver_at_time = deliver_at;
    }
    if (key) {
        md.has_ordering_key = 1;
        md.ordering_key.data = (uint8_t *)key;
        md.ordering_key.len = strlen(key);
    }
    const char payload[] = "later";
    return tl_pulsar_entry(&md, payload, sizeof payload);
}

static void pub_cb(void *data, int status, struct ml_position pos)
{
    struct pub_rec *r = data;
    r->status[r->n] = status;
    r->pos[r->n] = pos;
    r->n++;
}

static void publish_full(struct topic_producer *p, uint64_t ts, int batch, const char *key)
{
    static uint64_t seq;
    ck_assert_int_eq(topic_publish(p, make_entry(ts, batch, key), NULL, seq, 0, pub_cb, &pubs), 0);
    seq++;
}

static struct topic_producer *mkprod(struct topic *t)
{
    struct topic_producer *p = NULL;
    ck_assert_int_eq(topic_producer_add(t, NULL, TOPIC_ACCESS_SHARED, NULL, NULL, &p), 0);
    return p;
}

static void publish_n(struct topic *t, int n)
{
    struct topic_producer *p = mkprod(t);
    for (int i = 0; i < n; i++)
        publish_full(p, 1000 + (uint64_t)i, 0, NULL);
    spin();
    topic_producer_close(p);
}

/* Fake connection of one consumer. */
struct fc {
    struct topic_consumer *c;
    int n;
    struct ml_position pos[MAXREC];
    uint32_t redel[MAXREC];
    int32_t msgs[MAXREC];
    uint64_t publish_time[MAXREC]; /* tells apart messages that share a position */
    uint32_t key_hash[MAXREC];
    bool had_ack_set[MAXREC];
    int n_active_changes;
    bool active;
    int closed;
    size_t outbound;
    int close_at;    /* > 0: the connection closes the consumer inside its close_at-th send */
    int reached_end; /* reached_end callbacks */
};

static void fc_send(void *owner, struct topic_consumer *c, struct ml_entry *e, uint32_t rc,
                    const int64_t *ack_set, int n_words)
{
    struct fc *f = owner;
    ck_assert_ptr_eq(f->c, c);
    ck_assert_int_lt(f->n, MAXREC);
    f->pos[f->n] = e->pos;
    f->redel[f->n] = rc;
    f->msgs[f->n] = e->num_messages;
    f->publish_time[f->n] = e->publish_time;
    f->key_hash[f->n] = e->key_hash;
    f->had_ack_set[f->n] = ack_set != NULL && n_words > 0;
    f->n++;
    if (f->close_at > 0 && f->n == f->close_at) {
        topic_consumer_close(c);
        f->c = NULL;
    }
}

static void fc_active(void *owner, struct topic_consumer *c, bool active)
{
    struct fc *f = owner;
    (void)c;
    f->n_active_changes++;
    f->active = active;
}

static void fc_closed(void *owner, struct topic_consumer *c)
{
    struct fc *f = owner;
    ck_assert_ptr_eq(f->c, c);
    f->closed++;
    f->c = NULL;
}

static size_t fc_outbound(void *owner)
{
    return ((struct fc *)owner)->outbound;
}

static void fc_reached_end(void *owner, struct topic_consumer *c)
{
    struct fc *f = owner;
    ck_assert_ptr_eq(f->c, c);
    f->reached_end++;
}

static struct fc fc_pool[8];

/* Fakes outlive the test body: teardown's unload still calls their closed callbacks. */
static struct fc *fc_new(void)
{
    ck_assert_int_lt(fc_used, 8);
    struct fc *f = &fc_pool[fc_used++];
    memset(f, 0, sizeof *f);
    return f;
}

static const struct topic_consumer_ops fc_ops = {
    .send = fc_send,
    .active_change = fc_active,
    .closed = fc_closed,
    .outbound_bytes = fc_outbound,
    .reached_end = fc_reached_end,
};

static struct topic_sub_options opts(enum topic_sub_type type)
{
    struct topic_sub_options o;
    memset(&o, 0, sizeof o);
    o.type = type;
    o.durable = true;
    o.partition_index = -1;
    return o;
}

static int sub_o(struct topic *t, const char *sub, const struct topic_sub_options *o, struct fc *f)
{
    return topic_subscribe(t, sub, o, f, &fc_ops, &f->c);
}

static void sub_ok(struct topic *t, const char *sub, enum topic_sub_type type, bool earliest,
                   struct fc *f)
{
    struct topic_sub_options o = opts(type);
    o.initial_earliest = earliest;
    ck_assert_int_eq(sub_o(t, sub, &o, f), 0);
}

/* Consumers "ca" (a) on subscription sa and "cb" (b) on sb (the same name: one
 * subscription), both of type, with pa and pb permits. */
static void sub_pair(struct topic *t, enum topic_sub_type type, const char *sa, const char *sb,
                     struct fc *a, struct fc *b, uint32_t pa, uint32_t pb)
{
    struct topic_sub_options o = opts(type);
    o.consumer_name = "ca";
    ck_assert_int_eq(sub_o(t, sa, &o, a), 0);
    o.consumer_name = "cb";
    ck_assert_int_eq(sub_o(t, sb, &o, b), 0);
    topic_consumer_flow(a->c, pa);
    topic_consumer_flow(b->c, pb);
    spin();
}

static void ack1(struct fc *f, struct ml_position pos)
{
    struct topic_ack a = {.pos = pos};
    ck_assert_int_eq(topic_consumer_ack(f->c, false, &a, 1), 0);
}

static bool has_pos(const struct fc *f, struct ml_position pos)
{
    for (int i = 0; i < f->n; i++)
        if (ml_pos_cmp(f->pos[i], pos) == 0)
            return true;
    return false;
}

/* ---- names ---------------------------------------------------------------------------- */

START_TEST(test_names)
{
    static const struct {
        const char *in, *full, *tenant, *ns, *local, *base;
        int partition;
        bool persistent;
    } good[] = {
        {"persistent://t/ns/x", "persistent://t/ns/x", "t", "ns", "x", "persistent://t/ns/x", -1,
         true},
        {"x", "persistent://public/default/x", "public", "default", "x",
         "persistent://public/default/x", -1, true},
        {"t/ns/x", "persistent://t/ns/x", "t", "ns", "x", "persistent://t/ns/x", -1, true},
        {"non-persistent://t/ns/x", "non-persistent://t/ns/x", "t", "ns", "x",
         "non-persistent://t/ns/x", -1, false},
        {"persistent://t/c/ns/x", "persistent://t/c/ns/x", "t", "c/ns", "x",
         "persistent://t/c/ns/x", -1, true},
        {"persistent://t/ns/x-partition-3", "persistent://t/ns/x-partition-3", "t", "ns",
         "x-partition-3", "persistent://t/ns/x", 3, true},
        {"x-partition-0", "persistent://public/default/x-partition-0", "public", "default",
         "x-partition-0", "persistent://public/default/x", 0, true},
        {"persistent://t/ns/x-partition-01", "persistent://t/ns/x-partition-01", "t", "ns",
         "x-partition-01", "persistent://t/ns/x-partition-01", -1, true},
        {"persistent://t/ns/x-partition-", "persistent://t/ns/x-partition-", "t", "ns",
         "x-partition-", "persistent://t/ns/x-partition-", -1, true},
        {"persistent://t/ns/a-partition-1-partition-12",
         "persistent://t/ns/a-partition-1-partition-12", "t", "ns", "a-partition-1-partition-12",
         "persistent://t/ns/a-partition-1", 12, true},
    };
    for (size_t i = 0; i < sizeof good / sizeof good[0]; i++) {
        struct topic_name n;
        ck_assert_msg(topic_name_parse(good[i].in, &n) == 0, "%s", good[i].in);
        ck_assert_str_eq(n.full, good[i].full);
        ck_assert_str_eq(n.tenant, good[i].tenant);
        ck_assert_str_eq(n.ns, good[i].ns);
        ck_assert_str_eq(n.local, good[i].local);
        ck_assert_str_eq(n.base, good[i].base);
        ck_assert_int_eq(n.partition, good[i].partition);
        ck_assert_int_eq(n.persistent, good[i].persistent);
        topic_name_fini(&n);
    }
    static const char *bad[] = {
        "",
        "persistent://",
        "persistent://t/ns",
        "persistent://t//x",
        "persistent:///ns/x",
        "persistent://t/ns/",
        "foo://t/ns/x",
        "t/x",
        "a/b/c/d",
        "/ns/x",
        "t/ns/",
        "persistent://t/c/ns/",
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        struct topic_name n;
        ck_assert_msg(topic_name_parse(bad[i], &n) == -MG_EBADNAME, "%s", bad[i]);
        topic_name_fini(&n);
    }
    struct topic_name n;
    ck_assert_int_eq(topic_name_parse("persistent://t/ns/a b:c%é~", &n), 0);
    char *ml = topic_name_ml(&n);
    ck_assert_str_eq(ml, "t/ns/persistent/a+b%3Ac%25%C3%A9%7E");
    free(ml);
    topic_name_fini(&n);
    ck_assert_int_eq(topic_name_parse("x.y-z*_9", &n), 0);
    ml = topic_name_ml(&n);
    ck_assert_str_eq(ml, "public/default/persistent/x.y-z*_9");
    free(ml);
    topic_name_fini(&n);
}
END_TEST

/* Control characters are refused anywhere in a name; names are bounded in length, the
 * bound applying to the name without a partition suffix. */
START_TEST(test_names_refused)
{
    static const char *bad[] = {
        "persistent://t/ns/a\x01b", "a\tb", "persistent://t/n\ns/x", "x\x7f", "\x1bx", "t/ns/x\r",
        "persistent://t\x1f/ns/x",
    };
    struct topic_name n;
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++)
        ck_assert_msg(topic_name_parse(bad[i], &n) == -MG_EBADNAME, "control char in #%zu", i);
    /* "persistent://t/ns/" + local: accepted up to TOPIC_NAME_MAX_LEN bytes in all */
    const char *prefix = "persistent://t/ns/";
    size_t room = TOPIC_NAME_MAX_LEN - strlen(prefix);
    char *name = mg_malloc(TOPIC_NAME_MAX_LEN + 64);
    strcpy(name, prefix);
    memset(name + strlen(prefix), 'x', room);
    name[TOPIC_NAME_MAX_LEN] = '\0';
    ck_assert_int_eq(topic_name_parse(name, &n), 0);
    topic_name_fini(&n);
    /* its partitions too, and the largest partition index */
    strcpy(name + TOPIC_NAME_MAX_LEN, "-partition-2147483647");
    ck_assert_int_eq(topic_name_parse(name, &n), 0);
    ck_assert_int_eq(n.partition, 2147483647);
    ck_assert_uint_eq(strlen(n.base), TOPIC_NAME_MAX_LEN);
    topic_name_fini(&n);
    /* one byte more is refused, with or without a partition suffix */
    memset(name + strlen(prefix), 'x', room + 1);
    name[TOPIC_NAME_MAX_LEN + 1] = '\0';
    ck_assert_int_eq(topic_name_parse(name, &n), -MG_EBADNAME);
    strcpy(name + TOPIC_NAME_MAX_LEN + 1, "-partition-1");
    ck_assert_int_eq(topic_name_parse(name, &n), -MG_EBADNAME);
    /* the short form completes to public/default: the bound applies to the full name */
    memset(name, 'y', TOPIC_NAME_MAX_LEN);
    name[TOPIC_NAME_MAX_LEN - strlen("persistent://public/default/") + 1] = '\0';
    ck_assert_int_eq(topic_name_parse(name, &n), -MG_EBADNAME);
    name[TOPIC_NAME_MAX_LEN - strlen("persistent://public/default/")] = '\0';
    ck_assert_int_eq(topic_name_parse(name, &n), 0);
    topic_name_fini(&n);
    /* a huge name is refused without being copied (bounded work) */
    size_t huge = 1u << 20;
    char *big = mg_malloc(huge + 1);
    memset(big, 'z', huge);
    big[huge] = '\0';
    ck_assert_int_eq(topic_name_parse(big, &n), -MG_EBADNAME);
    mg_free(big);
    mg_free(name);
}
END_TEST

/* ---- registry and producers ----------------------------------------------------------- */

START_TEST(test_registry_get)
{
    struct get_res a = {0}, b = {0};
    ck_assert_int_eq(topic_get(reg, "x", true, get_cb, &a), 0);
    ck_assert_int_eq(topic_get(reg, "persistent://public/default/x", true, get_cb, &b), 0);
    ck_assert_int_eq(topic_get(reg, "bad://x", true, get_cb, &b), -MG_EBADNAME);
    ck_assert_int_eq(a.calls + b.calls, 0);
    spin();
    ck_assert_int_eq(a.calls, 1);
    ck_assert_int_eq(b.calls, 1);
    ck_assert_ptr_eq(a.t, b.t);
    ck_assert_ptr_nonnull(a.t);
    ck_assert_ptr_eq(topic_find(reg, "persistent://public/default/x"), a.t);
    ck_assert_str_eq(topic_full_name(a.t), "persistent://public/default/x");
    size_t pos = 0;
    ck_assert_ptr_eq(topic_next(reg, &pos), a.t);
    ck_assert_ptr_null(topic_next(reg, &pos));
    /* Loaded: the callback still comes after return. */
    struct get_res c = {0};
    ck_assert_int_eq(topic_get(reg, "x", true, get_cb, &c), 0);
    ck_assert_int_eq(c.calls, 0);
    spin();
    ck_assert_int_eq(c.calls, 1);
    ck_assert_ptr_eq(c.t, a.t);
    topic_unload(a.t);
    ck_assert_ptr_null(topic_find(reg, "x"));
}
END_TEST

static int prod_closed;
static void prod_closed_cb(void *owner, struct topic_producer *p)
{
    (void)owner;
    (void)p;
    prod_closed++;
}
static const struct topic_producer_ops prod_ops = {.closed = prod_closed_cb};

START_TEST(test_producers)
{
    struct topic *t = load("persistent://t/ns/p");
    struct topic_producer *a, *b, *c, *d;
    ck_assert_int_eq(topic_producer_add(t, NULL, TOPIC_ACCESS_SHARED, NULL, &prod_ops, &a), 0);
    ck_assert_int_eq(topic_producer_add(t, "", TOPIC_ACCESS_SHARED, NULL, &prod_ops, &b), 0);
    ck_assert_str_eq(topic_producer_name(a), "standalone-0-0");
    ck_assert_str_eq(topic_producer_name(b), "standalone-0-1");
    ck_assert_int_eq(topic_producer_add(t, "mine", TOPIC_ACCESS_SHARED, NULL, &prod_ops, &c), 0);
    ck_assert_int_eq(topic_producer_add(t, "mine", TOPIC_ACCESS_SHARED, NULL, &prod_ops, &d),
                     -MG_EPRODUCERBUSY);
    ck_assert_int_eq(topic_producer_last_sequence(c), -1);
    /* Exclusive while shared producers exist. */
    ck_assert_int_eq(topic_producer_add(t, "ex", TOPIC_ACCESS_EXCLUSIVE, NULL, &prod_ops, &d),
                     -MG_EPRODUCERFENCED);
    ck_assert_int_eq(topic_publish(c, make_entry(1, 0, NULL), NULL, 7, 0, pub_cb, &pubs), 0);
    ck_assert_int_eq(topic_publish(c, make_entry(1, 3, NULL), NULL, 8, 10, pub_cb, &pubs), 0);
    topic_producer_close(c); /* pending publishes still complete */
    topic_producer_close(a);
    topic_producer_close(b);
    ck_assert_int_eq(pubs.n, 0);
    spin();
    ck_assert_int_eq(pubs.n, 2);
    ck_assert_int_eq(pubs.status[0], 0);
    /* The name is free again and remembers its last sequence id. */
    ck_assert_int_eq(topic_producer_add(t, "mine", TOPIC_ACCESS_SHARED, NULL, &prod_ops, &c), 0);
    /* without deduplication nothing is resumed (Pulsar's -1; test_dedup_duplicates) */
    ck_assert_int_eq(topic_producer_last_sequence(c), -1);
    topic_producer_close(c);

    ck_assert_int_eq(topic_producer_add(t, "ex", TOPIC_ACCESS_EXCLUSIVE, NULL, &prod_ops, &a), 0);
    ck_assert_int_eq(topic_producer_add(t, NULL, TOPIC_ACCESS_SHARED, NULL, &prod_ops, &b),
                     -MG_EPRODUCERBUSY);
    ck_assert_int_eq(topic_producer_add(t, NULL, TOPIC_ACCESS_EXCLUSIVE, NULL, &prod_ops, &b),
                     -MG_EPRODUCERFENCED);
    ck_assert_int_eq(
        topic_producer_add(t, NULL, TOPIC_ACCESS_WAIT_FOR_EXCLUSIVE, NULL, &prod_ops, &b),
        -MG_EPRODUCERBUSY);
    topic_producer_close(a);
    ck_assert_int_eq(topic_producer_add(t, NULL, TOPIC_ACCESS_SHARED, NULL, &prod_ops, &b), 0);
    struct topic_stats st;
    topic_get_stats(t, &st);
    ck_assert_int_eq(st.n_producers, 1);
    ck_assert_int_eq(st.msg_in_counter, 4);
    prod_closed = 0;
    topic_unload(t);
    ck_assert_int_eq(prod_closed, 1);
}
END_TEST

struct term_rec {
    int calls, status;
    struct ml_position last;
};

static void term_cb(void *data, int status, struct ml_position last)
{
    struct term_rec *r = data;
    r->calls++;
    r->status = status;
    r->last = last;
}

/* Terminate: publishes accepted before it are stored and it answers the last of them; later
 * publishes and new producers get -MG_ETERMINATED; the producers are closed; a consumer
 * hears reached_end once its subscription acknowledged everything, exactly once; a consumer
 * of a subscription with nothing left hears it at once. */
START_TEST(test_terminate)
{
    struct topic *t = load("persistent://t/ns/term");
    struct fc *a = fc_new();
    sub_ok(t, "s", TOPIC_SUB_SHARED, true, a);
    topic_consumer_flow(a->c, 100);
    struct topic_producer *p;
    ck_assert_int_eq(topic_producer_add(t, "p", TOPIC_ACCESS_SHARED, NULL, &prod_ops, &p), 0);
    prod_closed = 0;
    int n = 5;
    for (int i = 0; i < n; i++) /* in flight when the terminate comes */
        publish_full(p, 1000 + (uint64_t)i, 0, NULL);
    struct term_rec r = {0};
    ck_assert_int_eq(topic_terminate(t, term_cb, &r), 0);
    ck_assert_int_eq(r.calls, 0);
    ck_assert_int_eq(topic_publish(p, make_entry(1, 0, NULL), NULL, 99, 0, pub_cb, &pubs),
                     -MG_ETERMINATED);
    spin();
    ck_assert_int_eq(r.calls, 1);
    ck_assert_int_eq(r.status, 0);
    ck_assert_int_eq(pubs.n, n);
    for (int i = 0; i < n; i++)
        ck_assert_int_eq(pubs.status[i], 0);
    ck_assert_int_eq(ml_pos_cmp(r.last, pubs.pos[n - 1]), 0);
    ck_assert_int_eq(prod_closed, 1);
    struct topic_producer *q;
    ck_assert_int_eq(topic_producer_add(t, "q", TOPIC_ACCESS_SHARED, NULL, &prod_ops, &q),
                     -MG_ETERMINATED);
    /* everything delivered, nothing acknowledged yet: not at the end */
    ck_assert_int_eq(a->n, n);
    ck_assert_int_eq(a->reached_end, 0);
    for (int i = n - 1; i > 0; i--)
        ack1(a, a->pos[i]);
    spin();
    ck_assert_int_eq(a->reached_end, 0);
    ack1(a, a->pos[0]);
    spin();
    ck_assert_int_eq(a->reached_end, 1);
    topic_consumer_flow(a->c, 10);
    spin();
    ck_assert_int_eq(a->reached_end, 1); /* once */
    /* a new subscription at the end hears it at once; one from the start after its acks */
    struct fc *b = fc_new();
    sub_ok(t, "late", TOPIC_SUB_EXCLUSIVE, false, b);
    spin();
    ck_assert_int_eq(b->reached_end, 1);
    struct fc *c = fc_new();
    sub_ok(t, "early", TOPIC_SUB_EXCLUSIVE, true, c);
    topic_consumer_flow(c->c, 100);
    spin();
    ck_assert_int_eq(c->n, n);
    ck_assert_int_eq(c->reached_end, 0);
    ck_assert_int_eq(topic_consumer_ack(c->c, true, &(struct topic_ack){.pos = c->pos[n - 1]}, 1),
                     0);
    spin();
    ck_assert_int_eq(c->reached_end, 1);
    /* terminating again answers the same position */
    struct term_rec r2 = {0};
    ck_assert_int_eq(topic_terminate(t, term_cb, &r2), 0);
    spin();
    ck_assert_int_eq(r2.calls, 1);
    ck_assert_int_eq(r2.status, 0);
    ck_assert_int_eq(ml_pos_cmp(r2.last, r.last), 0);
}
END_TEST

START_TEST(test_publish_order)
{
    struct topic *t = load("pub");
    struct topic_producer *p = mkprod(t);
    for (int i = 0; i < 50; i++)
        publish_full(p, 1, 0, NULL);
    spin();
    ck_assert_int_eq(pubs.n, 50);
    for (int i = 0; i < 50; i++) {
        ck_assert_int_eq(pubs.status[i], 0);
        if (i > 0)
            ck_assert_int_lt(ml_pos_cmp(pubs.pos[i - 1], pubs.pos[i]), 0);
    }
    ck_assert_int_eq(topic_producer_last_sequence(p), -1); /* deduplication is off */
}
END_TEST

/* The metadata a publish comes with (wire_frame.msg, read once by the frame decoder) is
 * what the stored entry carries: the topic hands it down instead of reading the bytes
 * again. Without it, the topic reads the bytes itself; topic_entry_info reads stored bytes
 * (for entries coming back from bookies). */
START_TEST(test_publish_hands_metadata_down)
{
    struct topic *t = load("handdown");
    struct topic_producer *p = mkprod(t);
    struct fc *a = fc_new();
    sub_ok(t, "s", TOPIC_SUB_EXCLUSIVE, true, a);
    topic_consumer_flow(a->c, 100);
    /* bytes that are not a Pulsar entry, with the metadata the decoder read */
    struct wire_msg_info msg = {.num_messages = 6, .batched = true, .publish_time = 55};
    struct evbuffer *raw = evbuffer_new();
    evbuffer_add(raw, "opaque", 6);
    ck_assert_int_eq(topic_publish(p, raw, &msg, 100, 0, pub_cb, &pubs), 0);
    /* a Pulsar entry without it: read here */
    ck_assert_int_eq(topic_publish(p, make_entry(77, 3, NULL), NULL, 101, 0, pub_cb, &pubs), 0);
    spin();
    ck_assert_int_eq(pubs.n, 2);
    ck_assert_int_eq(a->n, 2);
    ck_assert_int_eq(a->msgs[0], 6);
    ck_assert_int_eq(a->msgs[1], 3);
    struct topic_stats st;
    topic_get_stats(t, &st);
    ck_assert_int_eq(st.msg_in_counter, 9);

    struct ml_entry_info info;
    struct evbuffer *e = make_entry(1234, 4, "key");
    ck_assert_int_eq(topic_entry_info(e, &info), 0);
    ck_assert_int_eq(info.num_messages, 4);
    ck_assert(info.batched);
    ck_assert_uint_eq(info.publish_time, 1234);
    ck_assert_uint_eq(info.key_hash, (wire_murmur3_32("key", 3, 0) & 0x7fffffffu) % 65536u);
    evbuffer_free(e);
    e = evbuffer_new();
    evbuffer_add(e, "opaque", 6);
    ck_assert_int_eq(topic_entry_info(e, &info), -MG_EPROTO);
    evbuffer_free(e);
    topic_producer_close(p);
}
END_TEST

/* ---- Exclusive ------------------------------------------------------------------------- */

START_TEST(test_exclusive_permits)
{
    struct topic *t = load("ex");
    struct fc *a = fc_new(), *b = fc_new();
    sub_ok(t, "s", TOPIC_SUB_EXCLUSIVE, true, a);
    publish_n(t, 10);
    ck_assert_int_eq(a->n, 0); /* no FLOW, nothing sent */
    topic_consumer_flow(a->c, 3);
    ck_assert_int_eq(a->n, 0); /* batched through the dispatch event */
    spin();
    ck_assert_int_eq(a->n, 3);
    topic_consumer_flow(a->c, 100);
    spin();
    ck_assert_int_eq(a->n, 10);
    for (int i = 0; i < 10; i++)
        ck_assert_int_eq(ml_pos_cmp(a->pos[i], pubs.pos[i]), 0);
    ck_assert_int_eq(sub_o(t, "s",
                           &(struct topic_sub_options){
                               .type = TOPIC_SUB_EXCLUSIVE, .durable = true, .partition_index = -1},
                           b),
                     -MG_ECONSUMERBUSY);
    struct topic_sub_options o = opts(TOPIC_SUB_SHARED);
    ck_assert_int_eq(sub_o(t, "s", &o, b), -MG_ECONSUMERBUSY);
    /* New messages flow to the waiting read. */
    publish_n(t, 2);
    ck_assert_int_eq(a->n, 12);
    /* Redeliver everything unacked: rewind. */
    ack1(a, a->pos[0]);
    topic_consumer_redeliver(a->c, NULL, 0);
    spin();
    ck_assert_int_eq(a->n, 23);
    ck_assert_int_eq(ml_pos_cmp(a->pos[12], pubs.pos[1]), 0);
    ck_assert_int_eq(a->redel[12], 1);
    /* Cumulative ack is fine here. */
    struct topic_ack ca = {.pos = pubs.pos[11]};
    ck_assert_int_eq(topic_consumer_ack(a->c, true, &ca, 1), 0);
    size_t it = 0;
    struct topic_sub_stats ss;
    ck_assert_int_eq(topic_sub_stats_next(t, &it, &ss), 1);
    ck_assert_int_eq(ss.backlog, 0);
    ck_assert_int_eq(ss.unacked, 0);
    /* Closing the consumer keeps the durable subscription. */
    topic_consumer_close(a->c);
    a->c = NULL;
    spin();
    it = 0;
    ck_assert_int_eq(topic_sub_stats_next(t, &it, &ss), 1);
    ck_assert_int_eq(ss.n_consumers, 0);
}
END_TEST

/* ---- Failover -------------------------------------------------------------------------- */

START_TEST(test_failover_partitioned_choice)
{
    struct topic *t = load("persistent://t/ns/fo-partition-1");
    struct fc *a = fc_new(), *b = fc_new(), *c = fc_new();
    struct topic_sub_options o = opts(TOPIC_SUB_FAILOVER);
    o.consumer_name = "c-b";
    ck_assert_int_eq(sub_o(t, "s", &o, b), 0);
    spin();
    ck_assert(b->active);
    o.consumer_name = "c-a";
    ck_assert_int_eq(sub_o(t, "s", &o, a), 0);
    spin();
    /* sorted: c-a, c-b; partition 1 % 2 = 1 -> c-b stays active */
    ck_assert(b->active);
    ck_assert(!a->active);
    ck_assert_int_eq(a->n_active_changes, 1);
    /* A higher priority consumer (lower number) takes all: top count 1. */
    o.consumer_name = "c-z";
    o.priority_level = -1;
    ck_assert_int_eq(sub_o(t, "s", &o, c), 0);
    spin();
    ck_assert(c->active);
    ck_assert(!b->active);
    ck_assert(!a->active);
}
END_TEST

START_TEST(test_failover_switch)
{
    struct topic *t = load("fo");
    struct fc *a = fc_new(), *b = fc_new();
    struct topic_sub_options o = opts(TOPIC_SUB_FAILOVER);
    o.initial_earliest = true;
    o.consumer_name = "z";
    ck_assert_int_eq(sub_o(t, "s", &o, a), 0);
    o.consumer_name = "a";
    ck_assert_int_eq(sub_o(t, "s", &o, b), 0);
    publish_n(t, 5);
    topic_consumer_flow(a->c, 10);
    topic_consumer_flow(b->c, 10);
    spin();
    /* Not partitioned: the first connected is active. */
    ck_assert(a->active);
    ck_assert(!b->active);
    ck_assert_int_eq(a->n, 5);
    ck_assert_int_eq(b->n, 0);
    ack1(a, a->pos[0]);
    ack1(a, a->pos[1]);
    topic_consumer_close(a->c);
    a->c = NULL;
    spin();
    ck_assert(b->active);
    ck_assert_int_eq(b->n, 3);
    ck_assert_int_eq(ml_pos_cmp(b->pos[0], pubs.pos[2]), 0);
    ck_assert_int_eq(b->redel[0], 1);
}
END_TEST

START_TEST(test_failover_delay)
{
    teardown();
    default_cfg();
    cfg.active_consumer_failover_delay_ms = 50;
    setup_with(&cfg);
    struct topic *t = load("fo");
    struct fc *a = fc_new(), *b = fc_new();
    struct topic_sub_options o = opts(TOPIC_SUB_FAILOVER);
    o.initial_earliest = true;
    ck_assert_int_eq(sub_o(t, "s", &o, a), 0);
    ck_assert_int_eq(sub_o(t, "s", &o, b), 0);
    publish_n(t, 3);
    topic_consumer_flow(a->c, 10);
    topic_consumer_flow(b->c, 10);
    spin(); /* the first active consumer does not wait */
    ck_assert_int_eq(a->n, 3);
    uint64_t closed_at = mg_mono_ms();
    topic_consumer_close(a->c);
    a->c = NULL;
    spin();
    ck_assert(b->active);
    ck_assert_int_eq(b->n, 0); /* waits for the failover delay */
    ck_assert_int_eq(tl_until_count(loop, &b->n, 3, 5000), 3);
    /* not before the delay (a little slack for the clocks' granularity) */
    ck_assert_uint_ge(mg_mono_ms() - closed_at, 45);
}
END_TEST

/* On a simulated loop, the topic's statistics and timers follow the loop's clock: times
 * are the loop's wall clock, latencies and rates its monotonic clock, and the failover
 * delay fires when the loop's time reaches it, not before. */
START_TEST(test_sim_clock)
{
    const int64_t wall0 = 1700000000000;
    teardown();
    default_cfg();
    cfg.active_consumer_failover_delay_ms = 5000;
    setup_on(&cfg, wall0);
    struct topic *t = load("sim");
    struct topic_stats ts;
    topic_get_stats(t, &ts);
    ck_assert_uint_eq(ts.created_ms, (uint64_t)wall0);

    mg_loop_advance(loop, 1000);
    struct fc *a = fc_new(), *b = fc_new();
    struct topic_sub_options o = opts(TOPIC_SUB_FAILOVER);
    o.initial_earliest = true;
    ck_assert_int_eq(sub_o(t, "s", &o, a), 0);
    mg_loop_advance(loop, 1000);
    ck_assert_int_eq(sub_o(t, "s", &o, b), 0);
    publish_n(t, 3);
    topic_consumer_flow(a->c, 10);
    topic_consumer_flow(b->c, 10);
    spin();
    ck_assert_int_eq(a->n, 3);
    ack1(a, a->pos[0]);
    struct topic_consumer_stats cs;
    int idx = 0;
    ck_assert_int_eq(topic_consumer_stats_next(t, "s", &idx, &cs), 1);
    ck_assert_uint_eq(cs.connected_since_ms, (uint64_t)wall0 + 1000);
    ck_assert_int_eq(topic_consumer_stats_next(t, "s", &idx, &cs), 1);
    ck_assert_uint_eq(cs.connected_since_ms, (uint64_t)wall0 + 2000);
    struct topic_sub_stats ss;
    size_t pos = 0;
    ck_assert_int_eq(topic_sub_stats_next(t, &pos, &ss), 1);
    ck_assert_uint_eq(ss.last_consumed_ms, (uint64_t)wall0 + 2000);
    ck_assert_uint_eq(ss.last_acked_ms, (uint64_t)wall0 + 2000);

    /* 4 s after the load: 3 messages in, stored in no time (the loop's time stood still). */
    mg_loop_advance(loop, 2000);
    topic_registry_stats_update(reg, mg_loop_mono_ms(loop));
    topic_get_stats(t, &ts);
    ck_assert_uint_eq(ts.last_publish_ms, (uint64_t)wall0 + 2000);
    ck_assert(ts.msg_rate_in > 0.74 && ts.msg_rate_in < 0.76); /* 3 / 4 s */
    ck_assert_int_eq(ts.write_latency_sum_us, 0);
    ck_assert_int_eq(ts.write_latency[0], 3);

    /* The active consumer leaves: the other one waits for the failover delay. */
    topic_consumer_close(a->c);
    a->c = NULL;
    spin();
    ck_assert(b->active);
    mg_loop_advance(loop, 4999);
    spin();
    ck_assert_int_eq(b->n, 0);
    mg_loop_advance(loop, 1);
    spin();
    ck_assert_int_eq(b->n, 2); /* the two unacknowledged */
}
END_TEST

/* ---- Shared ---------------------------------------------------------------------------- */

START_TEST(test_shared_two)
{
    struct topic *t = load("sh");
    struct fc *a = fc_new(), *b = fc_new();
    sub_ok(t, "s", TOPIC_SUB_SHARED, false, a);
    sub_ok(t, "s", TOPIC_SUB_SHARED, false, b);
    topic_consumer_flow(a->c, 30);
    topic_consumer_flow(b->c, 30);
    spin();
    publish_n(t, 40);
    spin();
    ck_assert_int_gt(a->n, 0);
    ck_assert_int_gt(b->n, 0);
    ck_assert_int_eq(a->n + b->n, 40);
    for (int i = 0; i < 40; i++)
        ck_assert(has_pos(a, pubs.pos[i]) != has_pos(b, pubs.pos[i]));
    struct topic_ack ca = {.pos = pubs.pos[3]};
    ck_assert_int_eq(topic_consumer_ack(a->c, true, &ca, 1), -MG_ENOTALLOWED);
}
END_TEST

START_TEST(test_shared_priority)
{
    struct topic *t = load("shp");
    struct fc *hi = fc_new(), *lo = fc_new();
    struct topic_sub_options o = opts(TOPIC_SUB_SHARED);
    o.priority_level = 1;
    ck_assert_int_eq(sub_o(t, "s", &o, lo), 0);
    o.priority_level = 0;
    ck_assert_int_eq(sub_o(t, "s", &o, hi), 0);
    publish_n(t, 10);
    topic_consumer_flow(lo->c, 100);
    topic_consumer_flow(hi->c, 6);
    spin();
    ck_assert_int_eq(hi->n, 6);
    ck_assert_int_eq(lo->n, 4);
    topic_consumer_flow(hi->c, 10);
    publish_n(t, 5);
    ck_assert_int_eq(hi->n, 11);
    ck_assert_int_eq(lo->n, 4);
}
END_TEST

START_TEST(test_shared_close_redelivers)
{
    struct topic *t = load("shc");
    struct fc *a = fc_new(), *b = fc_new();
    sub_ok(t, "s", TOPIC_SUB_SHARED, true, a);
    publish_n(t, 6);
    topic_consumer_flow(a->c, 6);
    spin();
    ck_assert_int_eq(a->n, 6);
    ack1(a, a->pos[0]);
    ack1(a, a->pos[0]); /* duplicate acks are tolerated */
    ack1(a, a->pos[2]);
    sub_ok(t, "s", TOPIC_SUB_SHARED, true, b);
    topic_consumer_flow(b->c, 100);
    spin();
    ck_assert_int_eq(b->n, 0);
    topic_consumer_close(a->c);
    a->c = NULL;
    spin();
    ck_assert_int_eq(b->n, 4);
    ck_assert_int_eq(ml_pos_cmp(b->pos[0], pubs.pos[1]), 0);
    ck_assert_int_eq(ml_pos_cmp(b->pos[1], pubs.pos[3]), 0);
    for (int i = 0; i < 4; i++)
        ck_assert_int_eq(b->redel[i], 1);
    /* New messages come after the replays. */
    publish_n(t, 1);
    ck_assert_int_eq(b->n, 5);
    ck_assert_int_eq(b->redel[4], 0);
}
END_TEST

START_TEST(test_close_inside_send)
{
    struct topic *t = load("cis");
    struct fc *a = fc_new(), *b = fc_new();
    sub_ok(t, "s", TOPIC_SUB_SHARED, true, a);
    sub_ok(t, "s", TOPIC_SUB_SHARED, true, b);
    a->close_at = 2;
    topic_consumer_flow(a->c, 5);
    topic_consumer_flow(b->c, 100);
    publish_n(t, 20);
    spin();
    ck_assert_ptr_null(a->c);
    ck_assert_int_eq(a->n, 2);
    ck_assert_int_eq(b->n, 20);
    for (int i = 0; i < 20; i++)
        ck_assert(has_pos(b, pubs.pos[i]));
    int redelivered = 0;
    for (int i = 0; i < b->n; i++)
        redelivered += b->redel[i] == 1;
    ck_assert_int_eq(redelivered, 2);
}
END_TEST

START_TEST(test_failover_redeliver_ids)
{
    struct topic *t = load("fri");
    struct fc *a = fc_new();
    sub_ok(t, "s", TOPIC_SUB_FAILOVER, true, a);
    publish_n(t, 4);
    topic_consumer_flow(a->c, 100);
    spin();
    ck_assert_int_eq(a->n, 4);
    /* Single-active subscriptions keep the order: a redelivery of one id (a nack) rewinds
     * to the first unacknowledged entry, so all four come again, in order. */
    struct ml_position p = pubs.pos[1];
    topic_consumer_redeliver(a->c, &p, 1);
    spin();
    ck_assert_int_eq(a->n, 8);
    for (int i = 0; i < 4; i++) {
        ck_assert_int_eq(ml_pos_cmp(a->pos[4 + i], pubs.pos[i]), 0);
        ck_assert_int_ge(a->redel[4 + i], 1);
    }
}
END_TEST

START_TEST(test_shared_redeliver)
{
    struct topic *t = load("shr");
    struct fc *a = fc_new();
    sub_ok(t, "s", TOPIC_SUB_SHARED, true, a);
    publish_n(t, 4);
    topic_consumer_flow(a->c, 100);
    spin();
    ck_assert_int_eq(a->n, 4);
    struct ml_position p[2] = {pubs.pos[2], {999, 999}};
    topic_consumer_redeliver(a->c, p, 2);
    spin();
    ck_assert_int_eq(a->n, 5);
    ck_assert_int_eq(ml_pos_cmp(a->pos[4], pubs.pos[2]), 0);
    ck_assert_int_eq(a->redel[4], 1);
    ack1(a, pubs.pos[0]);
    topic_consumer_redeliver(a->c, NULL, 0);
    spin();
    ck_assert_int_eq(a->n, 8);
    ck_assert_int_eq(ml_pos_cmp(a->pos[5], pubs.pos[1]), 0);
    ck_assert_int_eq(a->redel[5], 1);
    ck_assert_int_eq(ml_pos_cmp(a->pos[6], pubs.pos[2]), 0);
    ck_assert_int_eq(a->redel[6], 2);
}
END_TEST

/* ---- Key_Shared ------------------------------------------------------------------------ */

START_TEST(test_key_shared_auto)
{
    struct topic *t = load("ks");
    struct fc *a = fc_new(), *b = fc_new();
    sub_pair(t, TOPIC_SUB_KEY_SHARED, "s", "s", a, b, 500, 500);
    struct topic_producer *p = mkprod(t);
    static const char *keys[] = {"k0", "k1", "k2", "k3", "k4", "k5", "k6", "k7", "k8", "k9"};
    for (int i = 0; i < 100; i++)
        publish_full(p, 1, 0, keys[i % 10]);
    spin();
    ck_assert_int_eq(a->n + b->n, 100);
    ck_assert_int_gt(a->n, 0);
    ck_assert_int_gt(b->n, 0);
    /* Each key went to one consumer only. */
    for (int k = 0; k < 10; k++) {
        int in_a = 0, in_b = 0;
        for (int i = k; i < 100; i += 10) {
            in_a += has_pos(a, pubs.pos[i]);
            in_b += has_pos(b, pubs.pos[i]);
        }
        ck_assert(in_a == 10 || in_b == 10);
        ck_assert_int_eq(in_a + in_b, 10);
    }
    struct topic_ack ca = {.pos = pubs.pos[3]};
    ck_assert_int_eq(topic_consumer_ack(a->c, true, &ca, 1), -MG_ENOTALLOWED);
}
END_TEST

START_TEST(test_key_shared_sticky)
{
    struct topic *t = load("kss");
    struct fc *a = fc_new(), *b = fc_new(), *c = fc_new();
    struct topic_sub_options o = opts(TOPIC_SUB_KEY_SHARED);
    o.key_shared_sticky = true;
    static const int32_t ra[][2] = {{0, 32767}};
    static const int32_t rb[][2] = {{32768, 65535}};
    static const int32_t rc[][2] = {{100, 200}};
    static const int32_t rbad[][2] = {{10, 5}};
    o.sticky_ranges = ra;
    o.n_sticky_ranges = 1;
    ck_assert_int_eq(sub_o(t, "s", &o, a), 0);
    o.sticky_ranges = rc;
    ck_assert_int_eq(sub_o(t, "s", &o, c), -MG_EASSIGN);
    o.sticky_ranges = rbad;
    ck_assert_int_eq(sub_o(t, "s", &o, c), -MG_EASSIGN);
    o.sticky_ranges = rb;
    ck_assert_int_eq(sub_o(t, "s", &o, b), 0);
    struct topic_sub_options o2 = opts(TOPIC_SUB_KEY_SHARED);
    ck_assert_int_eq(sub_o(t, "s", &o2, c), -MG_ECONSUMERBUSY);
    topic_consumer_flow(a->c, 500);
    topic_consumer_flow(b->c, 500);
    struct topic_producer *p = mkprod(t);
    static const char *keys[] = {"k0", "k1", "k2", "k3", "k4", "k5", "k6", "k7"};
    for (int i = 0; i < 40; i++)
        publish_full(p, 1, 0, keys[i % 8]);
    spin();
    ck_assert_int_eq(a->n + b->n, 40);
    /* Routed by hash range: a key's messages go to the consumer whose sticky range holds
     * the key's hash (Pulsar's: Murmur3_32 of the key, & INT_MAX, % 65536), and nowhere
     * else. */
    int to_a = 0, to_b = 0;
    for (int i = 0; i < 40; i++) {
        const char *k = keys[i % 8];
        uint32_t h = (wire_murmur3_32(k, strlen(k), 0) & 0x7fffffffu) % 65536u;
        struct fc *want = h <= 32767 ? a : b, *other = h <= 32767 ? b : a;
        ck_assert_msg(has_pos(want, pubs.pos[i]) && !has_pos(other, pubs.pos[i]),
                      "message %d (key %s, hash %u) not routed to the range holding its hash", i, k,
                      h);
        to_a += want == a;
        to_b += want == b;
    }
    ck_assert_int_eq(a->n, to_a);
    ck_assert_int_eq(b->n, to_b);
    ck_assert_int_gt(to_a, 0); /* these keys cover both ranges */
    ck_assert_int_gt(to_b, 0);
}
END_TEST

START_TEST(test_key_shared_waits)
{
    /* A key whose consumer lacks permits waits; other keys go on; order per key holds. */
    struct topic *t = load("ksw");
    struct fc *a = fc_new(), *b = fc_new();
    struct topic_sub_options o = opts(TOPIC_SUB_KEY_SHARED);
    o.key_shared_sticky = true;
    static const int32_t ra[][2] = {{0, 32767}};
    static const int32_t rb[][2] = {{32768, 65535}};
    o.sticky_ranges = ra;
    o.n_sticky_ranges = 1;
    ck_assert_int_eq(sub_o(t, "s", &o, a), 0);
    o.sticky_ranges = rb;
    ck_assert_int_eq(sub_o(t, "s", &o, b), 0);
    struct topic_producer *p = mkprod(t);
    static const char *keys[] = {"k0", "k1", "k2", "k3", "k4", "k5", "k6", "k7"};
    for (int i = 0; i < 40; i++)
        publish_full(p, 1, 0, keys[i % 8]);
    spin();
    topic_consumer_flow(a->c, 2);
    topic_consumer_flow(b->c, 100);
    spin();
    ck_assert_int_eq(a->n, 2);
    ck_assert_int_gt(b->n, 0);
    topic_consumer_flow(a->c, 100);
    spin();
    ck_assert_int_eq(a->n + b->n, 40);
    /* Per consumer, entries arrive in publish order. */
    for (int i = 1; i < a->n; i++)
        ck_assert_int_lt(ml_pos_cmp(a->pos[i - 1], a->pos[i]), 0);
    for (int i = 1; i < b->n; i++)
        ck_assert_int_lt(ml_pos_cmp(b->pos[i - 1], b->pos[i]), 0);
}
END_TEST

START_TEST(test_key_shared_join_hold)
{
    struct topic *t = load("ksj");
    struct fc *a = fc_new(), *b = fc_new();
    struct topic_sub_options o = opts(TOPIC_SUB_KEY_SHARED);
    o.consumer_name = "ca";
    ck_assert_int_eq(sub_o(t, "s", &o, a), 0);
    topic_consumer_flow(a->c, 500);
    struct topic_producer *p = mkprod(t);
    static const char *keys[] = {"k0", "k1", "k2", "k3", "k4", "k5", "k6", "k7", "k8", "k9"};
    for (int i = 0; i < 20; i++)
        publish_full(p, 1, 0, keys[i % 10]);
    spin();
    ck_assert_int_eq(a->n, 20);
    o.consumer_name = "cb";
    ck_assert_int_eq(sub_o(t, "s", &o, b), 0);
    topic_consumer_flow(b->c, 500);
    for (int i = 0; i < 20; i++)
        publish_full(p, 1, 0, keys[i % 10]);
    spin();
    ck_assert_int_eq(b->n, 0); /* held: a has not acked what it got before b joined */
    int a_before = a->n;
    for (int i = 0; i < 20; i++)
        ack1(a, pubs.pos[i]);
    spin();
    ck_assert_int_gt(b->n, 0);
    ck_assert_int_eq(a->n + b->n, 40);
    ck_assert_int_ge(a->n, a_before);
    for (int i = 1; i < b->n; i++)
        ck_assert_int_lt(ml_pos_cmp(b->pos[i - 1], b->pos[i]), 0);
}
END_TEST

/* ---- permits, limits, watermark ---------------------------------------------------------- */

START_TEST(test_batch_permits)
{
    struct topic *t = load("batch");
    struct fc *a = fc_new();
    sub_ok(t, "s", TOPIC_SUB_EXCLUSIVE, true, a);
    struct topic_producer *p = mkprod(t);
    publish_full(p, 1, 5, NULL);
    publish_full(p, 1, 5, NULL);
    spin();
    topic_consumer_flow(a->c, 3);
    spin();
    ck_assert_int_eq(a->n, 1); /* permits now -2 */
    ck_assert_int_eq(a->msgs[0], 5);
    topic_consumer_flow(a->c, 2);
    spin();
    ck_assert_int_eq(a->n, 1);
    topic_consumer_flow(a->c, 1);
    spin();
    ck_assert_int_eq(a->n, 2);
    /* A partially acked batch is redelivered with its ack set. */
    int64_t set = 0x1c; /* indexes 2,3,4 still unacked */
    struct topic_ack pa = {.pos = a->pos[0], .ack_set = &set, .n_words = 1, .batch_size = 5};
    ck_assert_int_eq(topic_consumer_ack(a->c, false, &pa, 1), 0);
    topic_consumer_flow(a->c, 100);
    topic_consumer_redeliver(a->c, NULL, 0);
    spin();
    ck_assert_int_eq(a->n, 4);
    ck_assert(a->had_ack_set[2]);
    ck_assert(!a->had_ack_set[3]);
}
END_TEST

/* The statistics of subscription name of t (which must exist). */
static void sub_stats(struct topic *t, const char *name, struct topic_sub_stats *out)
{
    size_t pos = 0;
    while (topic_sub_stats_next(t, &pos, out))
        if (strcmp(out->name, name) == 0)
            return;
    ck_abort_msg("no subscription %s", name);
}

static bool consumer_blocked(struct topic *t, const char *sub)
{
    int idx = 0;
    struct topic_consumer_stats cs;
    ck_assert_int_eq(topic_consumer_stats_next(t, sub, &idx, &cs), 1);
    return cs.blocked;
}

/* maxUnackedMessagesPerConsumer, as Pulsar: a Shared consumer stops at the limit and stays
 * blocked until acks bring it to half of it; an Exclusive one is not limited. */
START_TEST(test_max_unacked)
{
    restart_cfg();
    cfg.max_unacked_per_consumer = 6;
    setup_with(&cfg);
    struct topic *t = load("mu");
    struct fc *a = fc_new(), *x = fc_new();
    sub_ok(t, "s", TOPIC_SUB_SHARED, true, a);
    sub_ok(t, "x", TOPIC_SUB_EXCLUSIVE, true, x);
    publish_n(t, 20);
    topic_consumer_flow(a->c, 100);
    topic_consumer_flow(x->c, 100);
    spin();
    ck_assert_int_eq(x->n, 20);
    ck_assert_int_eq(a->n, 6);
    ck_assert(consumer_blocked(t, "s"));
    ack1(a, a->pos[0]);
    ack1(a, a->pos[1]);
    spin();
    ck_assert_int_eq(a->n, 6); /* 4 unacked: above half */
    ck_assert(consumer_blocked(t, "s"));
    ack1(a, a->pos[2]);
    spin();
    ck_assert_int_eq(a->n, 9); /* 3 = half: resumed, up to the limit again */
    ck_assert(consumer_blocked(t, "s"));
}
END_TEST

/* The refusal noted for the last add and Pulsar's message for it. */
static void assert_refused(struct topic *t, enum topic_limit l, const char *msg)
{
    ck_assert_int_eq(topic_limit_refused(t), (int)l);
    char buf[256];
    topic_limit_message(t, l, buf, sizeof buf);
    ck_assert_str_eq(buf, msg);
}

/* maxProducersPerTopic: the broker's key, then a topic's override (its namespace's policy),
 * 0 = none, and back to the key. A refusal by a limit is told apart from a name clash. */
START_TEST(test_limit_producers)
{
    restart_cfg();
    cfg.max_producers_per_topic = 2;
    setup_with(&cfg);
    struct topic *t = load("persistent://t/ns/lp");
    struct topic_producer *p[5];
    ck_assert_int_eq(topic_producer_add(t, "a", TOPIC_ACCESS_SHARED, NULL, &prod_ops, &p[0]), 0);
    ck_assert_int_eq(topic_producer_add(t, "a", TOPIC_ACCESS_SHARED, NULL, &prod_ops, &p[1]),
                     -MG_EPRODUCERBUSY);
    ck_assert_int_eq(topic_limit_refused(t), -1); /* the name, not the limit */
    ck_assert_int_eq(topic_producer_add(t, NULL, TOPIC_ACCESS_SHARED, NULL, &prod_ops, &p[1]), 0);
    ck_assert_int_eq(topic_producer_add(t, NULL, TOPIC_ACCESS_SHARED, NULL, &prod_ops, &p[2]),
                     -MG_EPRODUCERBUSY);
    assert_refused(t, TOPIC_LIMIT_PRODUCERS, "Topic reached max producers limit");
    topic_producer_close(p[1]);
    ck_assert_int_eq(topic_producer_add(t, NULL, TOPIC_ACCESS_SHARED, NULL, &prod_ops, &p[1]), 0);
    /* the override: 0 = no limit */
    topic_set_limit(t, TOPIC_LIMIT_PRODUCERS, 0);
    ck_assert_int_eq(topic_limit(t, TOPIC_LIMIT_PRODUCERS), 0);
    ck_assert_int_eq(topic_producer_add(t, NULL, TOPIC_ACCESS_SHARED, NULL, &prod_ops, &p[2]), 0);
    ck_assert_int_eq(topic_limit_refused(t), -1);
    /* lowered below what is connected: those stay, new ones are refused */
    topic_set_limit(t, TOPIC_LIMIT_PRODUCERS, 1);
    ck_assert_int_eq(topic_producer_add(t, NULL, TOPIC_ACCESS_SHARED, NULL, &prod_ops, &p[3]),
                     -MG_EPRODUCERBUSY);
    topic_set_limit(t, TOPIC_LIMIT_PRODUCERS, 4);
    ck_assert_int_eq(topic_producer_add(t, NULL, TOPIC_ACCESS_SHARED, NULL, &prod_ops, &p[3]), 0);
    ck_assert_int_eq(topic_producer_add(t, NULL, TOPIC_ACCESS_SHARED, NULL, &prod_ops, &p[4]),
                     -MG_EPRODUCERBUSY);
    topic_set_limit(t, TOPIC_LIMIT_PRODUCERS, -1); /* back to the key */
    ck_assert_int_eq(topic_limit(t, TOPIC_LIMIT_PRODUCERS), 2);
    for (int i = 0; i < 4; i++)
        topic_producer_close(p[i]);
}
END_TEST

/* maxSubscriptionsPerTopic (new subscriptions only), maxConsumersPerTopic (all
 * subscriptions) and maxConsumersPerSubscription, with Pulsar's errors and texts. */
START_TEST(test_limit_consumers)
{
    restart_cfg();
    cfg.max_subscriptions_per_topic = 2;
    cfg.max_consumers_per_subscription = 2;
    cfg.max_consumers_per_topic = 3;
    setup_with(&cfg);
    struct topic *t = load("persistent://t/ns/lc");
    struct fc *f[6];
    for (int i = 0; i < 6; i++)
        f[i] = fc_new();
    struct topic_sub_options o = opts(TOPIC_SUB_SHARED);
    ck_assert_int_eq(sub_o(t, "s1", &o, f[0]), 0);
    ck_assert_int_eq(sub_o(t, "s1", &o, f[1]), 0);
    ck_assert_int_eq(sub_o(t, "s1", &o, f[2]), -MG_ECONSUMERBUSY);
    assert_refused(t, TOPIC_LIMIT_CONSUMERS_PER_SUB, "Subscription reached max consumers limit");
    ck_assert_int_eq(sub_o(t, "s2", &o, f[2]), 0);
    ck_assert_int_eq(topic_limit_refused(t), -1);
    ck_assert_int_eq(sub_o(t, "s2", &o, f[3]), -MG_ECONSUMERBUSY);
    assert_refused(t, TOPIC_LIMIT_CONSUMERS, "Topic reached max consumers limit");
    ck_assert_int_eq(sub_o(t, "s3", &o, f[3]), -MG_ENOTALLOWED);
    assert_refused(t, TOPIC_LIMIT_SUBSCRIPTIONS,
                   "Exceed the maximum number of subscriptions of the topic: "
                   "persistent://t/ns/lc");
    /* the overrides lift them */
    topic_set_limit(t, TOPIC_LIMIT_SUBSCRIPTIONS, 0);
    topic_set_limit(t, TOPIC_LIMIT_CONSUMERS, 10);
    topic_set_limit(t, TOPIC_LIMIT_CONSUMERS_PER_SUB, 3);
    ck_assert_int_eq(sub_o(t, "s3", &o, f[3]), 0);
    ck_assert_int_eq(sub_o(t, "s1", &o, f[4]), 0);
    ck_assert_int_eq(sub_o(t, "s1", &o, f[5]), -MG_ECONSUMERBUSY);
    assert_refused(t, TOPIC_LIMIT_CONSUMERS_PER_SUB, "Subscription reached max consumers limit");
    /* a consumer gone frees its place */
    topic_consumer_close(f[0]->c);
    f[0]->c = NULL;
    ck_assert_int_eq(sub_o(t, "s1", &o, f[5]), 0);
}
END_TEST

/* A namespace's maxUnackedMessagesPerConsumer over the broker's: the consumer is blocked
 * (blockedConsumerOnUnackedMsgs) at the limit, resumes as acks come back and at once when
 * the limit is raised; maxUnackedMessagesPerSubscription holds the whole subscription. */
START_TEST(test_limit_unacked_policy)
{
    struct topic *t = load("persistent://t/ns/lu");
    struct fc *a = fc_new(), *b = fc_new();
    topic_set_limit(t, TOPIC_LIMIT_UNACKED_PER_CONSUMER, 4);
    sub_ok(t, "s", TOPIC_SUB_SHARED, true, a);
    publish_n(t, 20);
    topic_consumer_flow(a->c, 100);
    spin();
    ck_assert_int_eq(a->n, 4);
    ck_assert(consumer_blocked(t, "s"));
    ack1(a, a->pos[0]);
    ack1(a, a->pos[1]);
    spin();
    ck_assert_int_eq(a->n, 6);
    ck_assert(consumer_blocked(t, "s"));
    topic_set_limit(t, TOPIC_LIMIT_UNACKED_PER_CONSUMER, 9); /* raised: resumes without acks */
    spin();
    ck_assert_int_eq(a->n, 11);
    topic_set_limit(t, TOPIC_LIMIT_UNACKED_PER_CONSUMER, 0); /* none */
    ck_assert(!consumer_blocked(t, "s"));
    spin();
    ck_assert_int_eq(a->n, 20);
    /* per subscription: 18 unacked, limit 19: one more message for either consumer, then
     * nothing until the subscription is below half of the limit */
    topic_set_limit(t, TOPIC_LIMIT_UNACKED_PER_SUB, 19);
    sub_ok(t, "s", TOPIC_SUB_SHARED, true, b);
    topic_consumer_flow(b->c, 100);
    publish_n(t, 5);
    spin();
    ck_assert_int_eq(a->n + b->n, 20 + 1);
    struct topic_sub_stats ss;
    sub_stats(t, "s", &ss);
    ck_assert(ss.blocked);
    for (int i = 2; i < 20 && ss.unacked > 9; i++) {
        ack1(a, a->pos[i]);
        spin();
        ck_assert_int_eq(a->n + b->n, 20 + 1);
        sub_stats(t, "s", &ss);
    }
    ck_assert_int_eq(ss.unacked, 9); /* 19 / 2: still blocked */
    ck_assert(ss.blocked);
    ack1(a, a->pos[12]);
    spin();
    ck_assert_int_eq(a->n + b->n, 25); /* below half: the rest goes out */
    sub_stats(t, "s", &ss);
    ck_assert(!ss.blocked);
}
END_TEST

/* Advance the simulated clock by ms in 10 ms steps, running what is due. */
static void sim_run_for(int64_t ms)
{
    for (int64_t i = 0; i < ms; i += 10) {
        mg_loop_advance(loop, 10);
        spin();
    }
}

/* Dispatch rates on the simulated clock: a subscription limited to R msg/s gets one
 * period's burst, then R per second (within 20 % over a 3 s window) and nothing while time
 * stands still; the topic's rate is shared by its subscriptions; a byte rate limits alone;
 * lifting the rate (NULL: back to the broker's 0) lets the rest out at once. */
START_TEST(test_dispatch_rate)
{
    restart_cfg();
    const int R = 40;
    cfg.dispatch_rate[TOPIC_RATE_SUB] = (struct topic_dispatch_rate){R, 0, 1};
    setup_on(&cfg, 1000000);
    struct topic *t = load("persistent://t/ns/rate");
    struct fc *a = fc_new(), *b = fc_new();
    sub_ok(t, "a", TOPIC_SUB_SHARED, true, a);
    struct topic_sub_stats st;
    sub_stats(t, "a", &st);
    ck_assert_int_eq(st.throttled[TOPIC_RATE_SUB][0], 0); /* not throttled yet */
    publish_n(t, 400);
    topic_consumer_flow(a->c, 1000);
    spin();
    ck_assert_int_ge(a->n, 1);
    ck_assert_int_le(a->n, R); /* one period's burst at most */
    /* stopped by the subscription's message rate: counted there, not by the topic's or bytes */
    sub_stats(t, "a", &st);
    ck_assert_int_gt(st.throttled[TOPIC_RATE_SUB][0], 0);
    ck_assert_int_eq(st.throttled[TOPIC_RATE_SUB][1], 0);
    ck_assert_int_eq(st.throttled[TOPIC_RATE_TOPIC][0], 0);
    int before = a->n;
    spin();
    ck_assert_int_eq(a->n, before); /* no time, no more */
    sim_run_for(1000);
    int at1 = a->n;
    sim_run_for(3000);
    int got = a->n - at1;
    ck_assert_int_ge(got, 3 * R * 8 / 10);
    ck_assert_int_le(got, 3 * R * 12 / 10);

    /* the topic's rate: two subscriptions share it */
    topic_set_dispatch_rate(t, TOPIC_RATE_SUB, &(struct topic_dispatch_rate){0, 0, 1});
    topic_set_dispatch_rate(t, TOPIC_RATE_TOPIC, &(struct topic_dispatch_rate){R, 0, 2});
    sub_ok(t, "b", TOPIC_SUB_SHARED, true, b);
    topic_consumer_flow(b->c, 1000);
    /* both read the full bucket at once (as Pulsar's shared limiter, a burst of up to a
     * period per subscription), a debt repaid within the next period */
    sim_run_for(3000);
    int a0 = a->n, b0 = b->n;
    sim_run_for(4000); /* R per 2 s period: 2 R in 4 s, both together */
    got = (a->n - a0) + (b->n - b0);
    ck_assert_int_ge(got, 2 * R * 8 / 10);
    ck_assert_int_le(got, 2 * R * 12 / 10);
    ck_assert_int_gt(b->n - b0, 0);

    /* bytes only: each entry is the same size */
    topic_set_dispatch_rate(t, TOPIC_RATE_TOPIC, NULL);
    ck_assert_int_eq(topic_dispatch_rate(t, TOPIC_RATE_TOPIC).msgs, 0);
    struct evbuffer *one = make_entry(1000, 0, NULL);
    int64_t size = (int64_t)evbuffer_get_length(one);
    evbuffer_free(one);
    topic_set_dispatch_rate(t, TOPIC_RATE_SUB, &(struct topic_dispatch_rate){0, 10 * size, 1});
    sim_run_for(1000);
    b0 = b->n;
    sim_run_for(3000);
    ck_assert_int_ge(b->n - b0, 30 * 8 / 10);
    ck_assert_int_le(b->n - b0, 30 * 12 / 10);
    sub_stats(t, "b", &st); /* b: the topic's message rate, then the bytes rate */
    ck_assert_int_gt(st.throttled[TOPIC_RATE_TOPIC][0], 0);
    ck_assert_int_gt(st.throttled[TOPIC_RATE_SUB][1], 0);

    /* NULL: back to the broker's rate; 0: none (Pulsar's meaning), the rest goes out at once */
    topic_set_dispatch_rate(t, TOPIC_RATE_SUB, NULL);
    ck_assert_int_eq(topic_dispatch_rate(t, TOPIC_RATE_SUB).msgs, R);
    topic_set_dispatch_rate(t, TOPIC_RATE_SUB, &(struct topic_dispatch_rate){0, 0, 1});
    spin();
    ck_assert_int_eq(b->n, 400);
}
END_TEST

/* The publish rate on the simulated clock: publishes within the bucket need no wait; over
 * it topic_publish_wait_ms asks for the time to pay the debt back at the rate (at least
 * 1 ms), which is 0 again once the clock has moved that far; a rate of 0 is none. */
/* A registry whose publish rate is r msg/s, topic name loaded there with a producer (*p). */
static struct topic *publish_rate_topic(int r, const char *name, struct topic_producer **p)
{
    restart_cfg();
    cfg.publish_rate = (struct topic_dispatch_rate){r, 0, 1};
    setup_on(&cfg, 1000000);
    struct topic *t = load(name);
    *p = mkprod(t);
    return t;
}

START_TEST(test_publish_rate)
{
    const int R = 50;
    struct topic_producer *p;
    struct topic *t = publish_rate_topic(R, "persistent://t/ns/prate", &p);
    for (int i = 0; i < R - 1; i++)
        publish_full(p, 1000, 0, NULL);
    ck_assert_int_eq(topic_publish_wait_ms(t), 0);
    for (int i = 0; i < 11; i++) /* 10 over the bucket */
        publish_full(p, 1000, 0, NULL);
    int64_t w = topic_publish_wait_ms(t);
    ck_assert_int_ge(w, 11 * 1000 / R * 8 / 10); /* 11 messages of debt at 50/s: ~220 ms */
    ck_assert_int_le(w, 11 * 1000 / R * 12 / 10);
    mg_loop_advance(loop, (uint64_t)w / 2);
    ck_assert_int_gt(topic_publish_wait_ms(t), 0);
    mg_loop_advance(loop, (uint64_t)w);
    ck_assert_int_eq(topic_publish_wait_ms(t), 0);
    /* a batch counts its messages */
    publish_full(p, 1000, 4 * R, NULL);
    ck_assert_int_ge(topic_publish_wait_ms(t), 2000);
    topic_set_publish_rate(t, &(struct topic_dispatch_rate){0, 0, 1});
    ck_assert_int_eq(topic_publish_wait_ms(t), 0);
    spin();
    topic_producer_close(p);
}
END_TEST

static int64_t publish_limited(struct topic *t)
{
    struct topic_stats st;
    topic_get_stats(t, &st);
    return st.publish_rate_limited;
}

/* publishRateLimitedTimes: 0 while publishes stay within the rate; each throttle counts once
 * however many publishes ask while it lasts; a later throttle counts again; the stats roll
 * starts it from 0 (Pulsar's per-interval count); a topic without a rate never counts. */
START_TEST(test_publish_rate_limited_times)
{
    const int R = 40;
    struct topic_producer *p;
    struct topic *t = publish_rate_topic(R, "persistent://t/ns/plim", &p);
    for (int i = 0; i < R - 1; i++) {
        publish_full(p, 100, 0, NULL);
        ck_assert_int_eq(topic_publish_wait_ms(t), 0);
    }
    ck_assert_int_eq(publish_limited(t), 0);
    for (int i = 0; i < 5; i++) { /* over the bucket: one throttle, asked 5 times */
        publish_full(p, 100, 0, NULL);
        ck_assert_int_gt(topic_publish_wait_ms(t), 0);
    }
    ck_assert_int_eq(publish_limited(t), 1);
    int64_t w = topic_publish_wait_ms(t);
    mg_loop_advance(loop, (uint64_t)w + 1);
    ck_assert_int_eq(topic_publish_wait_ms(t), 0);
    publish_full(p, 100, 2 * R, NULL); /* a batch over the bucket: a second throttle */
    ck_assert_int_gt(topic_publish_wait_ms(t), 0);
    ck_assert_int_eq(publish_limited(t), 2);
    topic_registry_stats_update(reg, mg_loop_mono_ms(loop));
    ck_assert_int_eq(publish_limited(t), 0);
    topic_set_publish_rate(t, &(struct topic_dispatch_rate){0, 0, 1}); /* no rate */
    for (int i = 0; i < 4 * R; i++)
        publish_full(p, 100, 0, NULL);
    ck_assert_int_eq(topic_publish_wait_ms(t), 0);
    ck_assert_int_eq(publish_limited(t), 0);
    spin();
    topic_producer_close(p);
}
END_TEST

/* Inactive topic deletion on the simulated clock, a sweep every second and 3 s of
 * inactivity: delete_when_no_subscriptions deletes a topic without subscriptions once idle
 * for that long (a producer that just left counts as activity) and keeps one with a
 * subscription or a producer; delete_when_subscriptions_caught_up also deletes one whose
 * subscriptions have no backlog, not one with a backlog or a connected consumer. */
static void inactive_setup(bool caught_up)
{
    restart_cfg();
    cfg.inactive_check_ms = 1000;
    cfg.inactive_max_ms = 3000;
    cfg.inactive_caught_up = caught_up;
    setup_on(&cfg, 1000000);
}

static bool loaded(const char *name)
{
    return topic_find(reg, name) != NULL;
}

START_TEST(test_inactive_topics)
{
    inactive_setup(false);
    load("persistent://t/ns/idle");
    struct topic *sub = load("persistent://t/ns/withsub");
    struct topic *busy = load("persistent://t/ns/busy");
    struct topic *left = load("persistent://t/ns/left");
    struct fc *f = fc_new();
    sub_ok(sub, "s", TOPIC_SUB_SHARED, true, f);
    topic_consumer_close(f->c);
    f->c = NULL;
    publish_n(sub, 3); /* a backlog */
    struct topic_producer *p = mkprod(busy);
    sim_run_for(2000);
    struct topic_producer *q = mkprod(left);
    topic_producer_close(q); /* activity at 2 s */
    ck_assert(loaded("persistent://t/ns/idle"));
    sim_run_for(2500); /* 4.5 s */
    ck_assert(!loaded("persistent://t/ns/idle"));
    ck_assert(loaded("persistent://t/ns/left"));
    ck_assert(loaded("persistent://t/ns/withsub"));
    ck_assert(loaded("persistent://t/ns/busy"));
    sim_run_for(2000); /* 6.5 s: 4.5 s after the producer left */
    ck_assert(!loaded("persistent://t/ns/left"));
    ck_assert(loaded("persistent://t/ns/withsub"));
    ck_assert(loaded("persistent://t/ns/busy"));
    topic_producer_close(p);

    inactive_setup(true);
    struct topic *done = load("persistent://t/ns/caughtup");
    struct topic *behind = load("persistent://t/ns/behind");
    struct topic *cons = load("persistent://t/ns/consumed");
    struct fc *a = fc_new(), *b = fc_new(), *c = fc_new();
    sub_ok(done, "s", TOPIC_SUB_SHARED, true, a);
    sub_ok(behind, "s", TOPIC_SUB_SHARED, true, b);
    sub_ok(cons, "s", TOPIC_SUB_SHARED, true, c);
    publish_n(behind, 2);
    topic_consumer_close(a->c);
    a->c = NULL;
    topic_consumer_close(b->c);
    b->c = NULL;
    sim_run_for(5000);
    ck_assert(!loaded("persistent://t/ns/caughtup"));
    ck_assert(loaded("persistent://t/ns/behind"));
    ck_assert(loaded("persistent://t/ns/consumed"));
}
END_TEST

/* Advance the simulated clock by ms in steps of step ms (long spans, timers of a second). */
static void sim_run_coarse(int64_t ms, int64_t step)
{
    for (int64_t i = 0; i < ms; i += step) {
        mg_loop_advance(loop, (uint64_t)step);
        spin();
    }
}

static int inactive_deleted;
static char inactive_last[128];
static void inactive_hook(void *arg, const char *full_name)
{
    ck_assert_ptr_eq(arg, &inactive_deleted);
    inactive_deleted++;
    snprintf(inactive_last, sizeof inactive_last, "%s", full_name);
}

/* Retention keeps an inactive topic (Pulsar's shouldTopicBeRetained): with a retention time
 * of R minutes an idle topic stays until R minutes after its last activity, then goes; a
 * negative retention time keeps it for good; a retention of size only (time 0) keeps
 * nothing. The registry's hook hears each deletion. */
START_TEST(test_inactive_retention)
{
    inactive_setup(false); /* sweep every 1 s, 3 s of inactivity */
    inactive_deleted = 0;
    topic_registry_set_inactive_hook(reg, inactive_hook, &inactive_deleted);
    const int64_t R = 2; /* minutes */
    load("persistent://t/ns/plain");
    ml_set_retention(topic_ml(load("persistent://t/ns/kept")), R, 0);
    ml_set_retention(topic_ml(load("persistent://t/ns/forever")), -1, 0);
    ml_set_retention(topic_ml(load("persistent://t/ns/sizeonly")), 0, -1);
    struct topic *late = load("persistent://t/ns/late");
    ml_set_retention(topic_ml(late), R, 0);
    sim_run_coarse(30000, 500); /* 30 s: a producer on "late" comes and goes */
    ck_assert(loaded("persistent://t/ns/kept"));
    ck_assert(loaded("persistent://t/ns/late"));
    topic_producer_close(mkprod(late));
    ck_assert(!loaded("persistent://t/ns/plain"));
    ck_assert(!loaded("persistent://t/ns/sizeonly"));
    ck_assert_int_eq(inactive_deleted, 2);
    sim_run_coarse(R * 60000 - 30000 - 2000, 500); /* 2 s before R minutes */
    ck_assert(loaded("persistent://t/ns/kept"));
    ck_assert(loaded("persistent://t/ns/late"));
    sim_run_coarse(4000, 500); /* 2 s after R minutes */
    ck_assert(!loaded("persistent://t/ns/kept"));
    ck_assert_str_eq(inactive_last, "persistent://t/ns/kept");
    ck_assert(loaded("persistent://t/ns/late")); /* its last activity was 30 s later */
    sim_run_coarse(30000, 500);
    ck_assert(!loaded("persistent://t/ns/late"));
    sim_run_coarse(10 * R * 60000, 5000);
    ck_assert(loaded("persistent://t/ns/forever"));
    ck_assert_int_eq(inactive_deleted, 4);
}
END_TEST

/* Non-persistent topics (Pulsar's NonPersistentTopic.checkGC): an idle one is deleted after
 * the inactive duration, whatever the mode; one with a producer or a subscription (which
 * lives while it has a consumer) is kept; once its last consumer leaves it goes one duration
 * later; a policy without deleteWhileInactive keeps it. The hook hears each deletion. */
START_TEST(test_inactive_non_persistent)
{
    inactive_setup(true); /* delete_when_subscriptions_caught_up: not looked at here */
    inactive_deleted = 0;
    topic_registry_set_inactive_hook(reg, inactive_hook, &inactive_deleted);
    load("non-persistent://t/ns/npidle");
    struct topic *withsub = load("non-persistent://t/ns/npsub");
    struct topic *prod = load("non-persistent://t/ns/npprod");
    struct topic *kept = load("non-persistent://t/ns/npkept");
    topic_set_inactive_policy(kept, &(struct topic_inactive_policy){false, false, 1000});
    struct fc *f = fc_new();
    sub_ok(withsub, "s", TOPIC_SUB_EXCLUSIVE, false, f);
    struct topic_producer *p = mkprod(prod);
    sim_run_for(2000);
    ck_assert(loaded("non-persistent://t/ns/npidle"));
    sim_run_for(2500); /* 4.5 s */
    ck_assert(!loaded("non-persistent://t/ns/npidle"));
    ck_assert_str_eq(inactive_last, "non-persistent://t/ns/npidle");
    ck_assert(loaded("non-persistent://t/ns/npsub"));
    ck_assert(loaded("non-persistent://t/ns/npprod"));
    topic_consumer_close(f->c); /* its subscription goes with it */
    f->c = NULL;
    sim_run_for(2000);
    ck_assert(loaded("non-persistent://t/ns/npsub"));
    sim_run_for(3000); /* 5 s after the consumer left */
    ck_assert(!loaded("non-persistent://t/ns/npsub"));
    ck_assert(loaded("non-persistent://t/ns/npprod"));
    ck_assert(loaded("non-persistent://t/ns/npkept"));
    ck_assert_int_eq(inactive_deleted, 2);
    topic_producer_close(p);
}
END_TEST

/* Inactive topic policies, topic > namespace > broker (broker: no subscriptions, 3 s): a
 * namespace's deleteWhileInactive=false keeps its topics, a topic's own policy wins over it;
 * a namespace's delete_when_subscriptions_caught_up deletes a topic whose subscription is
 * caught up (the broker's mode keeps it) and its own duration counts; a compacted topic
 * is kept as one with a subscription, a system topic (__change_events) always; with the
 * broker's key off nothing is deleted whatever
 * the policies say (Pulsar's monitor does not run). */
START_TEST(test_inactive_policies)
{
    inactive_setup(false);
    const struct topic_inactive_policy off = {false, false, 1000};
    const struct topic_inactive_policy on1 = {true, false, 1000};
    const struct topic_inactive_policy caught = {true, true, 2000};
    const struct topic_inactive_policy slow = {true, false, 60000};
    struct topic *a = load("persistent://t/ns/nsoff");
    topic_set_inactive_policy(a, &off);
    struct topic *b = load("persistent://t/ns/topicon");
    topic_set_inactive_policy(b, &off);
    topic_set_topic_inactive_policy(b, &on1);
    struct topic_inactive_policy in = topic_inactive_policy(b);
    ck_assert(in.delete_while_inactive && in.max_inactive_ms == 1000);
    struct topic *c = load("persistent://t/ns/caught");
    struct topic *d = load("persistent://t/ns/brokermode");
    struct fc *fa = fc_new(), *fb = fc_new();
    sub_ok(c, "s", TOPIC_SUB_SHARED, true, fa);
    sub_ok(d, "s", TOPIC_SUB_SHARED, true, fb);
    topic_consumer_close(fa->c);
    fa->c = NULL;
    topic_consumer_close(fb->c);
    fb->c = NULL;
    topic_set_inactive_policy(c, &caught);
    load("persistent://t/ns/__change_events"); /* a system topic: never */
    struct topic *e = load("persistent://t/ns/slow");
    topic_set_inactive_policy(e, &slow);
    /* a compacted topic: its __compaction cursor is a subscription to Pulsar */
    struct topic *cp = load("persistent://t/ns/compacted");
    publish_n(cp, 3);
    ck_assert_int_eq(topic_compact_start(cp), 0);
    for (int i = 0; i < 100 && strcmp(topic_compact_status(cp, NULL), "RUNNING") == 0; i++)
        sim_run_for(10);
    ck_assert_str_eq(topic_compact_status(cp, NULL), "SUCCESS");
    sim_run_coarse(10000, 500);
    ck_assert(loaded("persistent://t/ns/compacted"));
    ck_assert(loaded("persistent://t/ns/__change_events"));
    ck_assert(loaded("persistent://t/ns/nsoff"));
    ck_assert(!loaded("persistent://t/ns/topicon"));
    ck_assert(!loaded("persistent://t/ns/caught"));
    ck_assert(loaded("persistent://t/ns/brokermode"));
    ck_assert(loaded("persistent://t/ns/slow"));
    /* the topic's own policy taken off: the namespace's applies again */
    struct topic *f = load("persistent://t/ns/reset");
    topic_set_inactive_policy(f, &off);
    topic_set_topic_inactive_policy(f, &on1);
    topic_set_topic_inactive_policy(f, NULL);
    ck_assert(!topic_inactive_policy(f).delete_while_inactive);
    sim_run_coarse(52000, 500); /* 62 s */
    ck_assert(!loaded("persistent://t/ns/slow"));
    ck_assert(loaded("persistent://t/ns/reset"));
    ck_assert(loaded("persistent://t/ns/nsoff"));

    restart_cfg();
    cfg.inactive_check_ms = 0; /* brokerDeleteInactiveTopicsEnabled=false */
    cfg.inactive_max_ms = 3000;
    setup_on(&cfg, 1000000);
    ck_assert(!topic_registry_inactive_policy(reg).delete_while_inactive);
    struct topic *g = load("persistent://t/ns/monitoroff");
    topic_set_inactive_policy(g, &on1);
    topic_set_topic_inactive_policy(g, &on1);
    sim_run_coarse(10000, 500);
    ck_assert(loaded("persistent://t/ns/monitoroff"));
}
END_TEST

START_TEST(test_watermark)
{
    teardown();
    default_cfg();
    cfg.consumer_outbound_high_water = 1000;
    setup_with(&cfg);
    struct topic *t = load("wm");
    struct fc *a = fc_new();
    sub_ok(t, "s", TOPIC_SUB_EXCLUSIVE, true, a);
    publish_n(t, 5);
    a->outbound = 5000;
    topic_consumer_flow(a->c, 100);
    spin();
    ck_assert_int_eq(a->n, 0);
    a->outbound = 0;
    spin();
    ck_assert_int_eq(a->n, 0); /* paused until resume */
    topic_consumer_resume(a->c);
    spin();
    ck_assert_int_eq(a->n, 5);
}
END_TEST

/* ---- seek, readers, last id, unsubscribe --------------------------------------------------- */

struct done_rec {
    int calls, status, closed_at_cb;
    struct fc *f; /* borrowed */
};

static void done_cb(void *data, int status)
{
    struct done_rec *d = data;
    d->calls++;
    d->status = status;
    d->closed_at_cb = d->f->closed;
}

START_TEST(test_seek)
{
    struct topic *t = load("seek");
    struct topic_producer *p = mkprod(t);
    for (int i = 0; i < 10; i++)
        publish_full(p, 1000 + (uint64_t)i * 10, 0, NULL);
    spin();
    struct fc *a = fc_new();
    sub_ok(t, "s", TOPIC_SUB_EXCLUSIVE, true, a);
    topic_consumer_flow(a->c, 100);
    spin();
    ck_assert_int_eq(a->n, 10);
    struct done_rec d = {.f = a};
    ck_assert_int_eq(topic_consumer_seek(a->c, false, pubs.pos[4], 0, done_cb, &d), 0);
    ck_assert_int_eq(d.calls, 0);
    ck_assert_int_eq(a->closed, 0); /* not inside the call */
    spin();
    ck_assert_int_eq(d.calls, 1);
    ck_assert_int_eq(d.status, 0);
    ck_assert_int_eq(d.closed_at_cb, 1);
    ck_assert_ptr_null(a->c);
    struct fc *b = fc_new();
    sub_ok(t, "s", TOPIC_SUB_EXCLUSIVE, true, b);
    topic_consumer_flow(b->c, 100);
    spin();
    ck_assert_int_eq(b->n, 6);
    ck_assert_int_eq(ml_pos_cmp(b->pos[0], pubs.pos[4]), 0);
    /* By time: first publish_time >= 1065 is entry 7. */
    struct done_rec d2 = {.f = b};
    ck_assert_int_eq(topic_consumer_seek(b->c, true, ML_POS_EARLIEST, 1065, done_cb, &d2), 0);
    spin();
    ck_assert_int_eq(d2.calls, 1);
    ck_assert_int_eq(d2.status, 0);
    ck_assert_int_eq(b->closed, 1);
    struct fc *c = fc_new();
    sub_ok(t, "s", TOPIC_SUB_EXCLUSIVE, true, c);
    topic_consumer_flow(c->c, 100);
    spin();
    ck_assert_int_eq(c->n, 3);
    ck_assert_int_eq(ml_pos_cmp(c->pos[0], pubs.pos[7]), 0);
}
END_TEST

START_TEST(test_reader)
{
    struct topic *t = load("rd");
    publish_n(t, 10);
    struct fc *a = fc_new();
    struct topic_sub_options o = opts(TOPIC_SUB_EXCLUSIVE);
    o.durable = false;
    o.has_start = true;
    o.start = pubs.pos[3];
    ck_assert_int_eq(sub_o(t, "reader-1", &o, a), 0);
    topic_consumer_flow(a->c, 100);
    spin();
    ck_assert_int_eq(a->n, 7);
    ck_assert_int_eq(ml_pos_cmp(a->pos[0], pubs.pos[3]), 0);
    /* Non-durable: gone with its last consumer. */
    topic_consumer_close(a->c);
    size_t it = 0;
    struct topic_sub_stats ss;
    ck_assert_int_eq(topic_sub_stats_next(t, &it, &ss), 0);
    /* Earliest / latest. */
    struct fc *b = fc_new(), *c = fc_new();
    o.start = ML_POS_EARLIEST;
    ck_assert_int_eq(sub_o(t, "reader-2", &o, b), 0);
    o.start = ML_POS_LATEST;
    ck_assert_int_eq(sub_o(t, "reader-3", &o, c), 0);
    topic_consumer_flow(b->c, 100);
    topic_consumer_flow(c->c, 100);
    spin();
    ck_assert_int_eq(b->n, 10);
    ck_assert_int_eq(c->n, 0);
}
END_TEST

struct lid_rec {
    int calls, status;
    struct ml_position pos;
    int32_t bi;
};

static void lid_cb(void *data, int status, struct ml_position pos, int32_t bi,
                   struct ml_position md)
{
    struct lid_rec *r = data;
    (void)md;
    r->calls++;
    r->status = status;
    r->pos = pos;
    r->bi = bi;
}

START_TEST(test_last_id)
{
    struct topic *t = load("lid");
    struct fc *a = fc_new();
    sub_ok(t, "s", TOPIC_SUB_EXCLUSIVE, true, a);
    struct lid_rec r = {0};
    ck_assert_int_eq(topic_consumer_last_message_id(a->c, lid_cb, &r), 0);
    ck_assert_int_eq(r.calls, 0);
    spin();
    ck_assert_int_eq(r.calls, 1);
    ck_assert_int_eq(r.status, 0);
    ck_assert_int_eq(r.pos.entry, -1);
    ck_assert_int_eq(r.bi, -1);
    struct topic_producer *p = mkprod(t);
    publish_full(p, 1, 0, NULL);
    spin();
    memset(&r, 0, sizeof r);
    ck_assert_int_eq(topic_consumer_last_message_id(a->c, lid_cb, &r), 0);
    spin();
    ck_assert_int_eq(ml_pos_cmp(r.pos, pubs.pos[0]), 0);
    ck_assert_int_eq(r.bi, -1);
    publish_full(p, 1, 4, NULL);
    spin();
    memset(&r, 0, sizeof r);
    ck_assert_int_eq(topic_consumer_last_message_id(a->c, lid_cb, &r), 0);
    spin();
    ck_assert_int_eq(ml_pos_cmp(r.pos, pubs.pos[1]), 0);
    ck_assert_int_eq(r.bi, 3);
}
END_TEST

START_TEST(test_unsubscribe_unload)
{
    struct topic *t = load("un");
    struct fc *a = fc_new(), *b = fc_new(), *c = fc_new();
    sub_ok(t, "s", TOPIC_SUB_SHARED, false, a);
    sub_ok(t, "s", TOPIC_SUB_SHARED, false, b);
    ck_assert_int_eq(topic_consumer_unsubscribe(a->c, false), -MG_ECONSUMERBUSY);
    ck_assert_int_eq(topic_consumer_unsubscribe(a->c, true), 0);
    ck_assert_int_eq(a->closed, 0);
    ck_assert_int_eq(b->closed, 1);
    size_t it = 0;
    struct topic_sub_stats ss;
    ck_assert_int_eq(topic_sub_stats_next(t, &it, &ss), 0);
    sub_ok(t, "s2", TOPIC_SUB_FAILOVER, false, c);
    ck_assert_int_eq(topic_admin_create_sub(t, "adm", true), 0);
    ck_assert_int_eq(topic_admin_create_sub(t, "adm", true), -MG_EEXIST);
    publish_n(t, 3);
    ck_assert_int_eq(topic_admin_skip(t, "adm", 1), 0);
    ck_assert_int_eq(topic_admin_skip(t, "nope", 1), -MG_ENOSUB);
    struct topic_stats st;
    topic_get_stats(t, &st);
    ck_assert_int_eq(st.n_subscriptions, 2);
    ck_assert_int_eq(st.n_consumers, 1);
    it = 0;
    bool seen = false;
    while (topic_sub_stats_next(t, &it, &ss))
        if (!strcmp(ss.name, "adm")) {
            seen = true;
            ck_assert_int_eq(ss.backlog, 2);
        }
    ck_assert(seen);
    ck_assert_int_eq(topic_admin_clear_backlog(t, "adm"), 0);
    ck_assert_int_eq(topic_admin_delete_sub(t, "s2", false), -MG_ECONSUMERBUSY);
    ck_assert_int_eq(topic_delete(t, false), -MG_EBUSY);
    /* The memory store forgets an ML at its last close; hold a reference across the unload,
     * so that the ML keeps its cursors as a durable store would. */
    struct tl_open held = {0};
    ck_assert_int_eq(ml_open(mlf, "public/default/persistent/un", tl_open_cb, &held), 0);
    spin();
    ck_assert_int_eq(held.calls, 1);
    ck_assert_int_eq(held.status, 0);
    topic_unload(t);
    ck_assert_int_eq(c->closed, 1);
    /* Reload: the durable subscriptions come back, with their positions: "adm" (backlog
     * cleared) and "s2" (Failover, nothing acked: the 3 messages published after it). "s"
     * was unsubscribed and stays gone. */
    t = load("un");
    it = 0;
    int n = 0;
    bool adm = false, s2 = false;
    while (topic_sub_stats_next(t, &it, &ss)) {
        n++;
        if (!strcmp(ss.name, "adm")) {
            adm = true;
            ck_assert_int_eq(ss.backlog, 0);
        } else if (!strcmp(ss.name, "s2")) {
            s2 = true;
            ck_assert_int_eq(ss.backlog, 3);
        }
        ck_assert_int_eq(ss.n_consumers, 0);
    }
    ck_assert_int_eq(n, 2);
    ck_assert(adm && s2);
    ck_assert_int_eq(topic_delete(t, false), 0);
    ml_close(held.ml);
}
END_TEST

/* ---- message TTL --------------------------------------------------------------------------- */

static int64_t sub_backlog(struct topic *t, const char *name)
{
    struct topic_sub_stats ss;
    size_t pos = 0;
    while (topic_sub_stats_next(t, &pos, &ss))
        if (strcmp(ss.name, name) == 0)
            return ss.backlog;
    ck_abort_msg("no subscription %s", name);
    return -1;
}

/* The expiry timer acknowledges, on every durable subscription, the messages published
 * more than the TTL ago, and only those; with no traffic; a TTL of 0 expires nothing. */
START_TEST(test_message_ttl_timer)
{
    const int64_t wall0 = 1700000000000;
    teardown();
    default_cfg();
    cfg.ttl_default_secs = 60;
    cfg.expiry_check_interval_ms = 10000;
    setup_on(&cfg, wall0);
    struct topic *t = load("ttl");
    struct topic *off = load("ttl-off");
    topic_set_message_ttl(off, 0); /* a namespace's TTL of 0: none */
    ck_assert_int_eq(topic_message_ttl(t), 60);
    ck_assert_int_eq(topic_message_ttl(off), 0);
    struct fc *a = fc_new(), *b = fc_new(), *c = fc_new();
    sub_ok(t, "s1", TOPIC_SUB_EXCLUSIVE, true, a);
    sub_ok(t, "s2", TOPIC_SUB_SHARED, true, b);
    sub_ok(off, "s1", TOPIC_SUB_EXCLUSIVE, true, c);
    struct topic_producer *p = mkprod(t), *q = mkprod(off);
    for (int i = 0; i < 3; i++) {
        publish_full(p, (uint64_t)wall0, 0, NULL);
        publish_full(q, (uint64_t)wall0, 0, NULL);
    }
    spin();
    mg_loop_advance(loop, 30000);
    publish_full(p, (uint64_t)wall0 + 30000, 0, NULL);
    publish_full(p, (uint64_t)wall0 + 30000, 0, NULL);
    spin();
    ck_assert_int_eq(sub_backlog(t, "s1"), 5);
    mg_loop_advance(loop, 30000); /* 60 s: the first three are 60 s old, not older */
    spin();
    ck_assert_int_eq(sub_backlog(t, "s1"), 5);
    ck_assert_int_eq(sub_backlog(t, "s2"), 5);
    mg_loop_advance(loop, 10000); /* 70 s: they are past the TTL, the other two are not */
    spin();
    ck_assert_int_eq(sub_backlog(t, "s1"), 2);
    ck_assert_int_eq(sub_backlog(t, "s2"), 2);
    mg_loop_advance(loop, 30000); /* 100 s: all */
    spin();
    ck_assert_int_eq(sub_backlog(t, "s1"), 0);
    ck_assert_int_eq(sub_backlog(t, "s2"), 0);
    ck_assert_int_eq(sub_backlog(off, "s1"), 3); /* no TTL there */

    /* By hand (expireMessages): one subscription, then all of them. */
    struct done_rec d = {.f = c};
    ck_assert_int_eq(topic_expire_messages(off, "nope", 1, done_cb, &d), -MG_ENOSUB);
    ck_assert_int_eq(topic_expire_messages(off, "s1", 200, done_cb, &d), 0);
    spin();
    ck_assert_int_eq(d.calls, 1);
    ck_assert_int_eq(d.status, 0);
    ck_assert_int_eq(sub_backlog(off, "s1"), 3); /* 100 s old: not older than 200 s */
    ck_assert_int_eq(topic_expire_messages(off, NULL, 50, done_cb, &d), 0);
    spin();
    ck_assert_int_eq(d.calls, 2);
    ck_assert_int_eq(d.status, 0);
    ck_assert_int_eq(sub_backlog(off, "s1"), 0);
    /* Back to the default: the timer applies it. */
    topic_reset_message_ttl(off);
    ck_assert_int_eq(topic_message_ttl(off), 60);
    topic_producer_close(p);
    topic_producer_close(q);
}
END_TEST

/* ---- backlog quotas ------------------------------------------------------------------------ */

/* A fresh registry on a simulated loop whose wall clock starts at wall_ms, with no default
 * quota and the quota check every check_ms. */
static void setup_quota(int64_t check_ms, int64_t wall_ms)
{
    teardown();
    default_cfg();
    cfg.quota_default =
        (struct topic_backlog_quota){.set = true, .limit_bytes = -1, .limit_secs = -1};
    cfg.quota_check_interval_ms = check_ms;
    setup_on(&cfg, wall_ms);
    prod_closed = 0;
}

/* The end of a quota test: eviction closed no producer (one was, before it), and a reset
 * quota of that type falls back to the default (none). */
static void quota_test_end(struct topic *t, enum topic_quota_type type, struct topic_producer *p)
{
    ck_assert_int_eq(prod_closed, 1);
    topic_reset_backlog_quota(t, type);
    ck_assert_int_eq(topic_quota_limit(t, type), -1);
    topic_producer_close(p);
}

/* Size quota: producers are refused at the limit (hold: 7, exception: 8, as Pulsar's
 * ServerErrors), the periodic check closes the connected ones; eviction lets producers in
 * and moves the slowest subscription forward to 90 % of the limit, on the timer. */
START_TEST(test_backlog_quota)
{
    setup_quota(60000, 1700000000000);
    struct topic *t = load("quota");
    struct fc *a = fc_new(), *b = fc_new();
    sub_ok(t, "slow", TOPIC_SUB_EXCLUSIVE, true, a);
    struct topic_producer *p = NULL, *p2 = NULL;
    ck_assert_int_eq(topic_producer_add(t, "p", TOPIC_ACCESS_SHARED, NULL, &prod_ops, &p), 0);
    for (int i = 0; i < 3; i++)
        publish_full(p, 1000, 0, NULL);
    spin();
    int64_t b3 = topic_backlog_bytes(t);
    ck_assert_int_gt(b3, 0);
    struct topic_backlog_quota q = {
        .set = true, .limit_bytes = b3 + 1, .limit_secs = -1, .policy = TOPIC_QUOTA_HOLD};
    topic_set_backlog_quota(t, TOPIC_QUOTA_STORAGE, &q);
    ck_assert_int_eq(topic_producer_add(t, "p2", TOPIC_ACCESS_SHARED, NULL, &prod_ops, &p2), 0);
    topic_producer_close(p2);
    mg_loop_advance(loop, 60000); /* under the limit: nothing closed */
    spin();
    ck_assert_int_eq(prod_closed, 0);
    publish_full(p, 1000, 0, NULL);
    spin();
    ck_assert_int_ge(topic_backlog_bytes(t), q.limit_bytes);
    ck_assert_int_eq(topic_producer_add(t, "p2", TOPIC_ACCESS_SHARED, NULL, &prod_ops, &p2),
                     -MG_EQUOTAHOLD);
    ck_assert_int_eq(mg_err_server_error(-MG_EQUOTAHOLD), 7);
    q.policy = TOPIC_QUOTA_EXCEPTION;
    topic_set_backlog_quota(t, TOPIC_QUOTA_STORAGE, &q);
    ck_assert_int_eq(topic_producer_add(t, "p2", TOPIC_ACCESS_SHARED, NULL, &prod_ops, &p2),
                     -MG_EQUOTAEXC);
    ck_assert_int_eq(mg_err_server_error(-MG_EQUOTAEXC), 8);
    mg_loop_advance(loop, 60000); /* the periodic check closes the connected producer */
    spin();
    ck_assert_int_eq(prod_closed, 1);
    ck_assert_int_eq(topic_producer_add(t, "p", TOPIC_ACCESS_SHARED, NULL, &prod_ops, &p),
                     -MG_EQUOTAEXC);

    /* Eviction: producers come in; the timer moves the slowest subscriptions forward until
     * the backlog is at 90 % of the limit, keeping what is under it. */
    sub_ok(t, "fast", TOPIC_SUB_EXCLUSIVE, false, b);
    q.policy = TOPIC_QUOTA_EVICTION;
    topic_set_backlog_quota(t, TOPIC_QUOTA_STORAGE, &q);
    ck_assert_int_eq(topic_producer_add(t, "p", TOPIC_ACCESS_SHARED, NULL, &prod_ops, &p), 0);
    for (int i = 0; i < 6; i++)
        publish_full(p, 1000, 0, NULL);
    spin();
    int64_t fast_before = sub_backlog(t, "fast");
    ck_assert_int_eq(sub_backlog(t, "slow"), 10);
    mg_loop_advance(loop, 60000);
    spin();
    ck_assert_int_le(topic_backlog_bytes(t), q.limit_bytes - q.limit_bytes / 10);
    ck_assert_int_eq(fast_before, 6);
    ck_assert_int_lt(sub_backlog(t, "slow"), 10);
    ck_assert_int_gt(sub_backlog(t, "slow"), 0); /* 90 %, not everything */
    ck_assert_int_lt(sub_backlog(t, "fast"), fast_before);
    ck_assert_int_gt(sub_backlog(t, "fast"), 0);
    quota_test_end(t, TOPIC_QUOTA_STORAGE, p);
}
END_TEST

/* message_age quota: measured on the publish time of the oldest unacknowledged message of the
 * slowest durable subscription, on the periodic check. hold / exception refuse producers once
 * it is older than the limit (and the check closes the connected ones); eviction lets them in
 * and acknowledges what is older than the limit on every subscription, keeping the rest. The
 * stats give the limits, the age and the evictions. */
START_TEST(test_backlog_quota_age)
{
    const int64_t wall0 = 1700000000000;
    setup_quota(10000, wall0);
    struct topic *t = load("age");
    struct fc *a = fc_new(), *b = fc_new();
    sub_ok(t, "slow", TOPIC_SUB_EXCLUSIVE, true, a);
    sub_ok(t, "other", TOPIC_SUB_EXCLUSIVE, true, b);
    struct topic_producer *p = NULL, *p2 = NULL;
    ck_assert_int_eq(topic_producer_add(t, "p", TOPIC_ACCESS_SHARED, NULL, &prod_ops, &p), 0);
    for (int i = 0; i < 3; i++)
        publish_full(p, (uint64_t)wall0, 0, NULL);
    spin();
    struct topic_backlog_quota q = {
        .set = true, .limit_bytes = -1, .limit_secs = 30, .policy = TOPIC_QUOTA_HOLD};
    topic_set_backlog_quota(t, TOPIC_QUOTA_AGE, &q);
    ck_assert_int_eq(topic_quota_limit(t, TOPIC_QUOTA_AGE), 30);
    ck_assert_int_eq(topic_quota_limit(t, TOPIC_QUOTA_STORAGE), -1);
    /* no age has been measured yet: the stats say so */
    struct topic_stats st;
    topic_get_stats(t, &st);
    ck_assert_int_eq(st.backlog_age_secs, -1);
    ck_assert_int_eq(st.quota_limit_secs, 30);

    mg_loop_advance(loop, 20000); /* 20 s old: under the limit */
    spin();
    topic_get_stats(t, &st);
    ck_assert_int_eq(st.backlog_age_secs, 20);
    ck_assert_int_eq(topic_producer_add(t, "p2", TOPIC_ACCESS_SHARED, NULL, &prod_ops, &p2), 0);
    topic_producer_close(p2);
    ck_assert_int_eq(prod_closed, 0);

    mg_loop_advance(loop, 20000); /* 40 s: over it; the check closes the producer */
    spin();
    ck_assert_int_eq(prod_closed, 1);
    ck_assert_int_eq(topic_producer_add(t, "p", TOPIC_ACCESS_SHARED, NULL, &prod_ops, &p),
                     -MG_EQUOTAHOLD);
    q.policy = TOPIC_QUOTA_EXCEPTION;
    topic_set_backlog_quota(t, TOPIC_QUOTA_AGE, &q);
    ck_assert_int_eq(topic_producer_add(t, "p", TOPIC_ACCESS_SHARED, NULL, &prod_ops, &p),
                     -MG_EQUOTAEXC);
    /* the size quota of the same topic is not touched by the age one */
    ck_assert_int_eq(topic_quota_limit(t, TOPIC_QUOTA_STORAGE), -1);

    /* Eviction: producers come in; the check acknowledges the messages older than 30 s on
     * both subscriptions and keeps the newer ones. */
    q.policy = TOPIC_QUOTA_EVICTION;
    topic_set_backlog_quota(t, TOPIC_QUOTA_AGE, &q);
    ck_assert_int_eq(topic_producer_add(t, "p", TOPIC_ACCESS_SHARED, NULL, &prod_ops, &p), 0);
    for (int i = 0; i < 2; i++)
        publish_full(p, (uint64_t)wall0 + 40000, 0, NULL);
    spin();
    ck_assert_int_eq(sub_backlog(t, "slow"), 5);
    mg_loop_advance(loop, 10000); /* 50 s: the first three are older than 30 s */
    spin();
    ck_assert_int_eq(sub_backlog(t, "slow"), 2);
    ck_assert_int_eq(sub_backlog(t, "other"), 2);
    topic_get_stats(t, &st);
    ck_assert_int_eq(st.quota_evictions[TOPIC_QUOTA_AGE], 1);
    ck_assert_int_eq(st.quota_evictions[TOPIC_QUOTA_STORAGE], 0);
    mg_loop_advance(loop, 10000); /* 60 s: the rest is 20 s old; nothing more goes */
    spin();
    ck_assert_int_eq(sub_backlog(t, "slow"), 2);
    topic_get_stats(t, &st);
    ck_assert_int_eq(st.backlog_age_secs, 20);
    ck_assert_int_eq(st.quota_evictions[TOPIC_QUOTA_AGE], 1);
    quota_test_end(t, TOPIC_QUOTA_AGE, p);
}
END_TEST

/* The quota (and TTL) checks walk the topics in slices: one firing of the timer does at most
 * TOPIC_SWEEP_SLICE topics (here: closes their producers, each over a 0-byte quota), the
 * pass goes on 1 ms later where it stopped, and each topic is done once per pass, also when
 * topics are loaded in the middle of it (the map grows and the walk restarts). */
START_TEST(test_quota_sweep_slices)
{
    setup_quota(60000, 1700000000000);
    enum { N = 2 * TOPIC_SWEEP_SLICE + 3, MORE = 40 };
    struct topic *ts[N];
    struct topic_backlog_quota q = {
        .set = true, .limit_bytes = 0, .limit_secs = -1, .policy = TOPIC_QUOTA_HOLD};
    char name[64];
    for (int i = 0; i < N + MORE; i++) {
        if (i == N) {                     /* the rest while the pass runs */
            mg_loop_advance(loop, 60000); /* the first slice */
            spin();
            ck_assert_int_eq(prod_closed, TOPIC_SWEEP_SLICE);
        }
        snprintf(name, sizeof name, "sweep-%d", i);
        struct topic *t = load(name);
        if (i < N)
            ts[i] = t;
        struct topic_producer *p = NULL;
        ck_assert_int_eq(topic_producer_add(t, "p", TOPIC_ACCESS_SHARED, NULL, &prod_ops, &p), 0);
        topic_set_backlog_quota(t, TOPIC_QUOTA_STORAGE, &q);
    }
    /* each firing does at most a slice; the pass ends with every topic that was there when
     * it started done (the map grew: the walk restarted and skipped the ones done) */
    int before = prod_closed, steps = 0;
    do {
        before = prod_closed;
        mg_loop_advance(loop, 1);
        spin();
        ck_assert_int_le(prod_closed - before, TOPIC_SWEEP_SLICE);
    } while (prod_closed > before && ++steps < 20);
    for (int i = 0; i < N; i++) {
        struct topic_stats st;
        topic_get_stats(ts[i], &st);
        ck_assert_int_eq(st.n_producers, 0);
    }
    ck_assert_int_ge(prod_closed, N);
    mg_loop_advance(loop, 60000); /* the next pass does the rest */
    spin();
    ck_assert_int_eq(prod_closed, N + MORE);
}
END_TEST

/* ---- message deduplication ------------------------------------------------------------------ */

static const int64_t dd_wall0 = 1700000000000;
static int dd_seen; /* publishes answered so far, as dd_answered checked them */

/* Deduplication on, a snapshot every 3 entries, 3 producer names kept, names forgotten after
 * 60 s without a producer; on a simulated loop. */
static void dd_cfg(void)
{
    default_cfg();
    cfg.dedup_enabled = true;
    cfg.dedup_entries_interval = 3;
    cfg.dedup_max_producers = 3;
    cfg.dedup_inactivity_ms = 60000;
}

static void dd_setup(void)
{
    dd_seen = 0;
    dd_cfg();
    setup_on(&cfg, dd_wall0);
}

/* A stored message of producer with sequence id seq; hseq > 0: a batch up to hseq. */
static struct evbuffer *dd_entry(const char *producer, uint64_t seq, uint64_t hseq)
{
    Pulsar__Proto__MessageMetadata md;
    tl_pulsar_md(&md, producer, seq, 1000);
    if (hseq > 0) {
        md.has_highest_sequence_id = 1;
        md.highest_sequence_id = hseq;
        md.has_num_messages_in_batch = 1;
        md.num_messages_in_batch = (int32_t)(hseq - seq + 1);
    }
    return tl_pulsar_entry(&md, "x", 1);
}

static int dd_send(struct topic_producer *p, uint64_t seq, uint64_t hseq)
{
    return topic_publish(p, dd_entry(topic_producer_name(p), seq, hseq), NULL, seq, hseq, pub_cb,
                         &pubs);
}

/* Publishes of one producer: (sequence_id, highest_sequence_id or 0) and what topic_publish
 * must return. */
struct dd_step {
    uint64_t seq, hseq;
    int rc;
};
static void dd_steps(struct topic_producer *p, const struct dd_step *steps, int n)
{
    for (int i = 0; i < n; i++)
        ck_assert_int_eq(dd_send(p, steps[i].seq, steps[i].hseq), steps[i].rc);
}
#define DD_STEPS(p, ...)                                                                           \
    dd_steps((p), (const struct dd_step[]){__VA_ARGS__},                                           \
             (int)(sizeof((const struct dd_step[]){__VA_ARGS__}) / sizeof(struct dd_step)))

static struct topic_producer *dd_prod(struct topic *t, const char *name)
{
    struct topic_producer *p = NULL;
    ck_assert_int_eq(topic_producer_add(t, name, TOPIC_ACCESS_SHARED, NULL, &prod_ops, &p), 0);
    return p;
}

static int64_t dd_stored(struct topic *t)
{
    struct ml_stats st;
    ml_get_stats(topic_ml(t), &st);
    return st.number_of_entries;
}

static bool dd_is_dup_receipt(int i)
{
    return pubs.status[i] == 0 && pubs.pos[i].ledger == -1 && pubs.pos[i].entry == -1;
}

/* Run what is ready; the publishes since the last call must have been answered in order as
 * kinds says ('S': stored, 'D': duplicate, receipt (-1, -1)), and the topic must hold
 * stored entries. */
static void dd_answered(struct topic *t, const char *kinds, int64_t stored)
{
    spin();
    int n = (int)strlen(kinds);
    ck_assert_int_eq(pubs.n, dd_seen + n);
    for (int i = 0; i < n; i++) {
        ck_assert_int_eq(pubs.status[dd_seen + i], 0);
        ck_assert_msg(dd_is_dup_receipt(dd_seen + i) == (kinds[i] == 'D'), "answer %d: want %c", i,
                      kinds[i]);
    }
    dd_seen += n;
    ck_assert_int_eq(dd_stored(t), stored);
}

/* An id not above the highest stored one of its producer name is not stored again and is
 * answered (-1, -1), never inside the call; ids are per name; a reconnecting producer of the
 * name resumes after the highest (PRODUCER_SUCCESS.last_sequence_id). */
START_TEST(test_dedup_duplicates)
{
    struct topic *t = load("persistent://t/ns/dd");
    ck_assert_str_eq(topic_dedup_status(t), "Enabled");
    struct topic_producer *a = dd_prod(t, "a");
    ck_assert_int_eq(topic_producer_last_sequence(a), -1);
    DD_STEPS(a, {0, 0, 0}, {1, 0, 0}, {2, 0, 0}, {3, 0, 0}, {4, 0, 0});
    dd_answered(t, "SSSSS", 5);
    DD_STEPS(a, {0, 0, 0}, {3, 0, 0}, {4, 0, 0});
    ck_assert_int_eq(pubs.n, 5); /* never inside the call */
    dd_answered(t, "DDD", 5);
    DD_STEPS(a, {5, 0, 0});
    dd_answered(t, "S", 6);
    ck_assert_int_eq(topic_producer_last_sequence(a), 5);
    topic_producer_close(a);
    a = dd_prod(t, "a");
    ck_assert_int_eq(topic_producer_last_sequence(a), 5);
    struct topic_producer *b = dd_prod(t, "b"); /* ids are per name */
    DD_STEPS(b, {0, 0, 0});
    dd_answered(t, "S", 7);
    topic_producer_close(a);
    topic_producer_close(b);
}
END_TEST

/* A resend while its original is still being written: the broker cannot tell yet
 * (PersistenceError, the client sends again); once stored it is a duplicate. A duplicate
 * behind a write in flight is answered after it (receipts stay in publish order). */
START_TEST(test_dedup_in_flight)
{
    struct topic *t = load("persistent://t/ns/inflight");
    struct topic_producer *a = dd_prod(t, "a");
    DD_STEPS(a, {7, 0, 0}, {7, 0, -MG_EDUPUNKNOWN});
    ck_assert_int_eq(mg_err_server_error(-MG_EDUPUNKNOWN), 2); /* PersistenceError */
    dd_answered(t, "S", 1);
    DD_STEPS(a, {7, 0, 0});
    dd_answered(t, "D", 1);
    DD_STEPS(a, {8, 0, 0}, {7, 0, 0}); /* 8 in flight, a duplicate behind it */
    dd_answered(t, "SD", 2);
    topic_producer_close(a);
}
END_TEST

/* A batch counts with its highest id; a batch is a duplicate when its lowest id is not
 * above the highest stored (Pulsar compares sequence_id). */
START_TEST(test_dedup_batches)
{
    struct topic *t = load("persistent://t/ns/batch");
    struct topic_producer *a = dd_prod(t, "a");
    DD_STEPS(a, {10, 19, 0});
    dd_answered(t, "S", 1);
    ck_assert_int_eq(topic_producer_last_sequence(a), 19);
    DD_STEPS(a, {15, 0, 0}, {19, 25, 0}, {20, 29, 0});
    dd_answered(t, "DDS", 2);
    ck_assert_int_eq(topic_producer_last_sequence(a), 29);
    topic_producer_close(a);
}
END_TEST

/* The chunks of a chunked message share its sequence id: only the last chunk is checked and
 * recorded (Pulsar's rule), so the chunks after the first are not refused as resends; a
 * chunked message sent again is answered a duplicate at its last chunk. */
START_TEST(test_dedup_chunks)
{
    struct topic *t = load("persistent://t/ns/chunks");
    struct topic_producer *a = dd_prod(t, "a");
    for (int round = 0; round < 2; round++) {
        for (int32_t c = 0; c < 3; c++) {
            Pulsar__Proto__MessageMetadata md;
            tl_pulsar_md(&md, "a", 5, 1000);
            md.has_chunk_id = md.has_num_chunks_from_msg = 1;
            md.chunk_id = c;
            md.num_chunks_from_msg = 3;
            ck_assert_int_eq(
                topic_publish(a, tl_pulsar_entry(&md, "x", 1), NULL, 5, 0, pub_cb, &pubs), 0);
        }
        if (round == 0)
            dd_answered(t, "SSS", 3);
        else
            dd_answered(t, "SSD", 5); /* Pulsar stores the first chunks again */
        ck_assert_int_eq(topic_dedup_last_pushed(t, "a"), 5);
    }
    topic_producer_close(a);
}
END_TEST

/* At most dedup_max_producers names: a new one makes the name without a producer for
 * longest go; a name without a producer for dedup_inactivity_ms is forgotten by the timer;
 * a connected one never is. */
START_TEST(test_dedup_bounds)
{
    struct topic *t = load("persistent://t/ns/bounds");
    char name[16];
    for (int i = 0; i < 5; i++) {
        snprintf(name, sizeof name, "n%d", i);
        struct topic_producer *p = dd_prod(t, name);
        ck_assert_int_eq(dd_send(p, 100, 0), 0);
        spin();
        topic_producer_close(p);
        mg_loop_advance(loop, 10);
    }
    ck_assert_uint_le(t->dedup.prods.count, 3);
    ck_assert_int_eq(topic_dedup_last_pushed(t, "n0"), -1);
    ck_assert_int_eq(topic_dedup_last_pushed(t, "n1"), -1);
    ck_assert_int_eq(topic_dedup_last_pushed(t, "n4"), 100);
    struct topic_producer *p = dd_prod(t, "n0"); /* forgotten: its resend is stored */
    ck_assert_int_eq(topic_producer_last_sequence(p), -1);
    ck_assert_int_eq(dd_send(p, 100, 0), 0);
    spin();
    ck_assert(!dd_is_dup_receipt(pubs.n - 1));
    ck_assert_uint_le(t->dedup.prods.count, 3);
    ck_assert_int_eq(topic_dedup_last_pushed(t, "n4"), 100);

    /* inactivity: n0 stays connected, n4 is without a producer */
    mg_loop_advance(loop, 40000);
    spin();
    ck_assert_int_eq(topic_dedup_last_pushed(t, "n4"), 100);
    mg_loop_advance(loop, 40000);
    spin();
    ck_assert_int_eq(topic_dedup_last_pushed(t, "n4"), -1);
    ck_assert_int_eq(topic_dedup_last_pushed(t, "n0"), 100);
    topic_producer_close(p);
}
END_TEST

/* Off by default (brokerDeduplicationEnabled=false): a resend is stored again and nothing is
 * resumed. A namespace policy turns it on (a new snapshot cursor, never a subscription) and
 * off (the cursor is deleted, resends are stored again). */
START_TEST(test_dedup_policy)
{
    teardown();
    default_cfg();
    setup_on(&cfg, dd_wall0);
    struct topic *t = load("persistent://t/ns/pol");
    ck_assert_str_eq(topic_dedup_status(t), "Disabled");
    struct topic_producer *a = dd_prod(t, "a");
    ck_assert_int_eq(dd_send(a, 1, 0), 0);
    ck_assert_int_eq(dd_send(a, 1, 0), 0);
    spin();
    ck_assert_int_eq(dd_stored(t), 2);
    ck_assert_int_eq(topic_producer_last_sequence(a), -1);
    ck_assert(!ml_cursor_exists(topic_ml(t), TOPIC_DEDUP_CURSOR));

    topic_set_deduplication(t, 1);
    spin();
    ck_assert_str_eq(topic_dedup_status(t), "Enabled");
    ck_assert(ml_cursor_exists(topic_ml(t), TOPIC_DEDUP_CURSOR));
    struct topic_stats st;
    topic_get_stats(t, &st);
    ck_assert_int_eq(st.n_subscriptions, 0);
    struct fc *f = fc_new();
    ck_assert_int_eq(sub_o(t, TOPIC_DEDUP_CURSOR, &(struct topic_sub_options){.durable = true}, f),
                     -MG_ENOTALLOWED);
    ck_assert_int_eq(topic_admin_create_sub(t, TOPIC_DEDUP_CURSOR, true), -MG_ENOTALLOWED);
    ck_assert_int_eq(dd_send(a, 2, 0), 0);
    spin();
    ck_assert_int_eq(dd_send(a, 2, 0), 0);
    spin();
    ck_assert(dd_is_dup_receipt(pubs.n - 1));
    ck_assert_int_eq(dd_stored(t), 3);

    topic_set_deduplication(t, 0);
    ck_assert_str_eq(topic_dedup_status(t), "Disabled");
    ck_assert(!ml_cursor_exists(topic_ml(t), TOPIC_DEDUP_CURSOR));
    ck_assert_int_eq(dd_send(a, 2, 0), 0);
    spin();
    ck_assert_int_eq(dd_stored(t), 4);
    topic_set_deduplication(t, -1); /* back to the broker's default: off */
    ck_assert_str_eq(topic_dedup_status(t), "Disabled");
    topic_producer_close(a);
}
END_TEST

/* ---- delayed delivery (topic_delay.c) ------------------------------------------------------ */

static const int64_t dl_wall0 = 1700000000000;

static void dl_setup(void)
{
    default_cfg();
    setup_on(&cfg, dl_wall0);
}

static void publish_delayed(struct topic_producer *p, int64_t deliver_at, const char *key)
{
    static uint64_t seq;
    ck_assert_int_eq(topic_publish(p, make_delayed(deliver_at, key), NULL, seq++, 0, pub_cb, &pubs),
                     0);
}

static struct topic_sub *sub_of(struct topic *t, const char *name)
{
    struct topic_sub *s = mg_map_get_str(&t->subs, name);
    ck_assert_ptr_nonnull(s);
    return s;
}

static int64_t sub_delayed(struct topic *t, const char *name)
{
    struct topic_sub_stats st;
    topic_sub_get_stats(sub_of(t, name), &st);
    return st.delayed;
}

/* Topic name loaded with a Shared subscription sub whose consumer (*c) has permits, and a
 * producer on it (*p). */
static struct topic *dl_shared(const char *name, const char *sub, uint32_t permits, struct fc **c,
                               struct topic_producer **p)
{
    struct topic *t = load(name);
    *c = fc_new();
    sub_ok(t, sub, TOPIC_SUB_SHARED, true, *c);
    topic_consumer_flow((*c)->c, permits);
    *p = mkprod(t);
    return t;
}

/* Shared and Key_Shared hold a message back until its deliver_at_time (never more than a
 * tick and its rounding early); Exclusive delivers at once; a time in the past, negative, or
 * within the tick is delivered at once; a far-future one stays held, with the timer firing
 * rarely. */
START_TEST(test_delayed_shared)
{
    struct topic *t = load("persistent://t/ns/delayed");
    struct fc *a = fc_new(), *k = fc_new(), *x = fc_new();
    sub_ok(t, "shared", TOPIC_SUB_SHARED, true, a);
    sub_ok(t, "ks", TOPIC_SUB_KEY_SHARED, true, k);
    sub_ok(t, "excl", TOPIC_SUB_EXCLUSIVE, true, x);
    topic_consumer_flow(a->c, 100);
    topic_consumer_flow(k->c, 100);
    topic_consumer_flow(x->c, 100);
    struct topic_producer *p = mkprod(t);
    const int64_t in5s = dl_wall0 + 5000, in60s = dl_wall0 + 60000;
    const int64_t at[] = {0, in5s, dl_wall0 - 1000000, -5, in60s, dl_wall0 + 500, INT64_MAX};
    const int n = (int)(sizeof at / sizeof *at);
    for (int i = 0; i < n; i++)
        publish_delayed(p, at[i], i % 2 ? "odd" : "even");
    spin();
    ck_assert_int_eq(pubs.n, n);
    ck_assert_int_eq(x->n, n); /* Exclusive: everything at once */
    struct fc *held[] = {a, k};
    for (int h = 0; h < 2; h++) {
        ck_assert_int_eq(held[h]->n, 4); /* none, past, negative, within the tick */
        for (int i = 0; i < held[h]->n; i++)
            ck_assert(at[i] == 0 || (at[i] < dl_wall0 + 1000 && at[i] != INT64_MAX) ||
                      ml_pos_cmp(held[h]->pos[i], pubs.pos[i]) != 0);
    }
    ck_assert(!has_pos(a, pubs.pos[1]) && !has_pos(a, pubs.pos[4]) && !has_pos(a, pubs.pos[6]));
    ck_assert_int_eq(sub_delayed(t, "shared"), 3);
    ck_assert_int_eq(sub_delayed(t, "ks"), 3);
    ck_assert_int_eq(sub_delayed(t, "excl"), 0);
    struct topic_stats ts;
    topic_get_stats(t, &ts);
    ck_assert_int_ge(ts.delayed_index_bytes, 6 * (int64_t)sizeof(struct sub_delay_item));
    /* 3 s on: more than a tick and its rounding before 5 s, nothing yet */
    mg_loop_advance(loop, 3000);
    spin();
    ck_assert_int_eq(a->n, 4);
    ck_assert_int_eq(k->n, 4);
    mg_loop_advance(loop, 2000);
    spin();
    ck_assert_int_eq(a->n, 5);
    ck_assert_int_eq(ml_pos_cmp(a->pos[4], pubs.pos[1]), 0);
    ck_assert_int_eq(a->redel[4], 0);
    ck_assert_int_eq(k->n, 5);
    ck_assert(has_pos(k, pubs.pos[1]));
    ck_assert_int_eq(sub_delayed(t, "shared"), 2);
    mg_loop_advance(loop, 55000);
    spin();
    ck_assert_int_eq(a->n, 6);
    ck_assert(has_pos(a, pubs.pos[4]));
    ck_assert_int_eq(k->n, 6);
    /* the far-future one stays held; its timer fires at most once an hour */
    int64_t fires = sub_of(t, "shared")->delay.fires;
    for (int i = 0; i < 12; i++) {
        mg_loop_advance(loop, 600000);
        spin();
    }
    ck_assert_int_eq(a->n, 6);
    ck_assert_int_eq(sub_delayed(t, "shared"), 1);
    ck_assert_int_le(sub_of(t, "shared")->delay.fires - fires, 3);
    topic_producer_close(p);
}
END_TEST

/* A namespace's delayed_delivery_policies: active=false delivers a future message at once on
 * Shared; active=true holds it (also when the broker's delayedDeliveryEnabled is off) with
 * the namespace's tick; not set, the broker's key applies again. */
START_TEST(test_delayed_ns_policy)
{
    struct fc *a, *b;
    struct topic_producer *p;
    struct topic *t = dl_shared("persistent://t/ns/dlpol", "shared", 100, &a, &p);
    const int64_t later = dl_wall0 + 30000;
    topic_set_delayed_delivery(t, 0, 1000);
    ck_assert(!topic_delayed_enabled(t));
    publish_delayed(p, later, NULL);
    spin();
    ck_assert_int_eq(a->n, 1); /* at once */
    ck_assert_int_eq(sub_delayed(t, "shared"), 0);
    topic_set_delayed_delivery(t, -1, 0); /* back to the broker's: on */
    ck_assert(topic_delayed_enabled(t));
    ck_assert_int_eq(topic_delayed_tick_ms(t), 1000);
    publish_delayed(p, later, NULL);
    spin();
    ck_assert_int_eq(a->n, 1);
    ck_assert_int_eq(sub_delayed(t, "shared"), 1);
    topic_producer_close(p);

    restart_cfg();
    cfg.delayed_enabled = false; /* the broker's key off, the namespace's policy on */
    setup_on(&cfg, dl_wall0);
    t = dl_shared("persistent://t/ns/dlpol2", "shared", 100, &b, &p);
    publish_delayed(p, later, NULL);
    spin();
    ck_assert_int_eq(b->n, 1); /* the broker's key: at once */
    topic_set_delayed_delivery(t, 1, 4000);
    ck_assert_int_eq(topic_delayed_tick_ms(t), 4000);
    publish_delayed(p, later, NULL);
    spin();
    ck_assert_int_eq(b->n, 1);
    ck_assert_int_eq(sub_delayed(t, "shared"), 1);
    mg_loop_advance(loop, 30000 + 4000);
    spin();
    ck_assert_int_eq(b->n, 2);
    topic_producer_close(p);
}
END_TEST

/* Many delayed messages with distinct times: one timer per subscription, firing about once
 * per tick (not once per message), and each message comes once, in time order. */
START_TEST(test_delayed_no_timer_storm)
{
    struct fc *a;
    struct topic_producer *p;
    struct topic *t = dl_shared("persistent://t/ns/storm", "s", 5000, &a, &p);
    const int n = 400;
    for (int i = 0; i < n; i++) /* 2 s .. 10 s from now, 20 ms apart */
        publish_delayed(p, dl_wall0 + 2000 + (int64_t)i * 20, NULL);
    spin();
    ck_assert_int_eq(pubs.n, n);
    ck_assert_int_eq(a->n, 0);
    ck_assert_int_eq(sub_delayed(t, "s"), n);
    for (int ms = 0; ms < 12000; ms += 50) {
        mg_loop_advance(loop, 50);
        spin();
    }
    ck_assert_int_eq(a->n, n);
    for (int i = 0; i < n; i++)
        ck_assert_int_eq(ml_pos_cmp(a->pos[i], pubs.pos[i]), 0);
    ck_assert_int_le(sub_of(t, "s")->delay.fires, 12000 / 1000 + 2);
    ck_assert_int_eq(sub_delayed(t, "s"), 0);
    topic_producer_close(p);
}
END_TEST

/* The index is bounded: at delayed_max_tracked positions the subscription reads no new
 * entries (the later messages wait), and nothing is lost once they are due. */
START_TEST(test_delayed_bounded)
{
    teardown();
    default_cfg();
    cfg.delayed_max_tracked = 10;
    cfg.dispatch_max_read_batch = 4;
    setup_on(&cfg, dl_wall0);
    struct topic *t = load("persistent://t/ns/bounded");
    struct fc *a = fc_new();
    sub_ok(t, "s", TOPIC_SUB_SHARED, true, a);
    topic_consumer_flow(a->c, 1000);
    struct topic_producer *p = mkprod(t);
    const int delayed = 30, plain = 5;
    for (int i = 0; i < delayed; i++)
        publish_delayed(p, dl_wall0 + 5000, NULL);
    for (int i = 0; i < plain; i++)
        publish_delayed(p, 0, NULL);
    spin();
    ck_assert_int_eq(pubs.n, delayed + plain);
    ck_assert_int_eq(a->n, 0);
    int64_t held = sub_delayed(t, "s");
    ck_assert_int_ge(held, 10);
    ck_assert_int_lt(held, 10 + 4);
    mg_loop_advance(loop, 6000);
    for (int i = 0; i < 100 && a->n < delayed + plain; i++) {
        mg_loop_advance(loop, 10);
        spin();
    }
    ck_assert_int_eq(a->n, delayed + plain);
    for (int i = 0; i < delayed + plain; i++)
        ck_assert(has_pos(a, pubs.pos[i]));
    topic_producer_close(p);
}
END_TEST

/* Many positions due at once join the replay set a bounded number per pass (no pass sorts
 * a whole index in); the rest follow as those are delivered. */
static void count_cb(void *data, int status, struct ml_position pos)
{
    (void)pos;
    ck_assert_int_eq(status, 0);
    (*(int *)data)++;
}

START_TEST(test_delayed_release_bounded)
{
    struct topic *t = load("persistent://t/ns/release");
    struct fc *a = fc_new();
    sub_ok(t, "s", TOPIC_SUB_SHARED, true, a);
    topic_consumer_flow(a->c, 1);
    struct topic_producer *p = mkprod(t);
    const int n = 1500;
    int stored = 0;
    for (int i = 0; i < n; i++)
        ck_assert_int_eq(topic_publish(p, make_delayed(dl_wall0 + 5000, NULL), NULL, (uint64_t)i, 0,
                                       count_cb, &stored),
                         0);
    for (int i = 0; i < 100 && sub_delayed(t, "s") < n; i++)
        spin();
    ck_assert_int_eq(stored, n);
    ck_assert_int_eq(sub_delayed(t, "s"), n);
    mg_loop_advance(loop, 6000);
    spin();
    struct topic_sub *s = sub_of(t, "s");
    ck_assert_int_eq(a->n, 1); /* its one permit */
    ck_assert_int_le(s->n_replay, 1000);
    ck_assert_int_ge(sub_delayed(t, "s"), n - 1000 - a->n);
    ck_assert_int_eq(s->n_replay + a->n + sub_delayed(t, "s"), n);
    topic_consumer_flow(a->c, 400);
    spin();
    ck_assert_int_eq(a->n, 401);
    ck_assert_int_eq(s->n_replay + a->n + sub_delayed(t, "s"), n);
    topic_producer_close(p);
}
END_TEST

/* A Shared subscription holding delayed messages that becomes Exclusive (all its consumers
 * left, an Exclusive one came) delivers them at once; a seek forgets the index (the entries
 * are read again). */
START_TEST(test_delayed_type_change_and_seek)
{
    struct topic *t = load("persistent://t/ns/change");
    struct fc *a = fc_new(), *b = fc_new();
    sub_ok(t, "s", TOPIC_SUB_SHARED, true, a);
    topic_consumer_flow(a->c, 100);
    struct topic_producer *p = mkprod(t);
    for (int i = 0; i < 3; i++)
        publish_delayed(p, dl_wall0 + 600000, NULL);
    spin();
    ck_assert_int_eq(a->n, 0);
    ck_assert_int_eq(sub_delayed(t, "s"), 3);
    topic_consumer_close(a->c);
    a->c = NULL;
    sub_ok(t, "s", TOPIC_SUB_EXCLUSIVE, false, b);
    topic_consumer_flow(b->c, 100);
    spin();
    ck_assert_int_eq(b->n, 3);
    ck_assert_int_eq(sub_delayed(t, "s"), 0);
    ck_assert_int_eq(topic_admin_reset_cursor(t, "s", pubs.pos[0]), 0);
    spin();
    ck_assert_int_eq(sub_delayed(t, "s"), 0);
    topic_producer_close(p);
}
END_TEST

/* ---- deduplication over the durable store (fake bookies) --------------------------------- */

static struct tl_fakebk dd_env;

/* One broker over the fake bookies: a bkc client, a durable ML factory, a topic registry. */
struct dd_broker {
    struct bkc_client *bkc;
    struct ml_factory *mlf;
    struct topic_registry *reg;
};
static struct dd_broker dd_b;

static void dd_broker_new(struct dd_broker *b, uint64_t seed)
{
    struct bkc_config bc;
    tl_bkc_config(&bc, 1, 1, 1, 3000);
    b->bkc = tl_fakebk_client(&dd_env, &bc, seed);
    struct ml_config mc = {.cache_size_bytes = 1 << 20,
                           .max_entries_per_ledger = 4, /* several ledgers */
                           .max_size_per_ledger = 1 << 30,
                           .meta = dd_env.meta,
                           .bkc = b->bkc,
                           .ensemble_size = 1,
                           .write_quorum = 1,
                           .ack_quorum = 1,
                           .cursor_flush_interval_ms = 50,
                           .entry_info = topic_entry_info};
    b->mlf = ml_factory_new(loop, "bookkeeper", &mc);
    ck_assert_ptr_nonnull(b->mlf);
    b->reg = topic_registry_new(base, b->mlf, &cfg);
}

static void dd_broker_free(struct dd_broker *b)
{
    topic_registry_free(b->reg);
    for (int i = 0; i < 1000 && ml_factory_pending(b->mlf) > 0; i++)
        tl_run_for(loop, 10);
    ml_factory_free(b->mlf);
    bkc_client_free(b->bkc);
    tl_run_for(loop, 10);
    memset(b, 0, sizeof *b);
}

/* Fake bookies and one broker over them, with the config cfg_fn makes. */
static void bk_env_setup(void (*cfg_fn)(void))
{
    memset(&pubs, 0, sizeof pubs);
    fc_used = 0;
    tl_fakebk_open(&dd_env, "memory", 21, "10.0.3", 1);
    base = dd_env.base;
    loop = dd_env.loop;
    cfg_fn();
    dd_broker_new(&dd_b, 7);
    mlf = dd_b.mlf;
    reg = dd_b.reg;
}

static void dd_bk_setup(void)
{
    dd_seen = 0;
    bk_env_setup(dd_cfg);
}

static void dd_bk_teardown(void)
{
    dd_broker_free(&dd_b);
    reg = NULL;
    mlf = NULL;
    tl_fakebk_close(&dd_env);
    base = NULL;
    loop = NULL;
}

static struct topic *dd_bk_load_on(struct topic_registry *r, const char *name)
{
    struct get_res res = {0};
    ck_assert_int_eq(topic_get(r, name, true, get_cb, &res), 0);
    ck_assert_int_eq(tl_until_count(loop, &res.calls, 1, 10000), 1);
    ck_assert_int_eq(res.status, 0);
    return res.t;
}

static struct topic *dd_bk_load(const char *name)
{
    return dd_bk_load_on(reg, name);
}

static int np_meta_status(const char *path)
{
    struct meta_req r = {0};
    int st = tl_meta_get(dd_env.meta, path, &r);
    meta_req_fini(&r);
    return st;
}

/* Over a durable store, a non-persistent topic writes nothing there: no managed-ledger node
 * (so no ledger and no cursor either), where loading the persistent topic of the same name
 * creates one. Its messages are delivered all the same. */
START_TEST(test_np_stores_nothing)
{
    struct topic *t = dd_bk_load(NP_TOPIC);
    struct fc *a = fc_new();
    sub_ok(t, "s", TOPIC_SUB_EXCLUSIVE, false, a);
    topic_consumer_flow(a->c, 100);
    struct topic_producer *p = mkprod(t);
    int n = 7;
    for (int i = 0; i < n; i++)
        publish_full(p, 10 + (uint64_t)i, 0, NULL);
    ck_assert_int_eq(tl_until_count(loop, &pubs.n, n, 10000), n);
    ck_assert_int_eq(a->n, n);
    topic_producer_close(p);
    tl_run_for(loop, 200); /* cursor flushes would be written by now (50 ms interval) */
    ck_assert_int_eq(np_meta_status("/managed-ledgers/public/default/non-persistent/np"),
                     -MG_ENOTFOUND);
    dd_bk_load("persistent://public/default/np");
    ck_assert_int_eq(np_meta_status("/managed-ledgers/public/default/persistent/np"), 0);
}
END_TEST

/* The state is snapshotted every dedup_entries_interval entries into the cursor's
 * mark-delete properties, and a topic loaded again (moved, or after a crash) takes the
 * snapshot and replays what came after it before any producer attaches: a producer
 * resending ids it had stored gets (-1, -1) and resumes after the highest. */
START_TEST(test_dedup_snapshot_rebuild)
{
    const char *name = "persistent://t/ns/snap";
    struct topic *t = dd_bk_load(name);
    struct topic_producer *a = dd_prod(t, "a"), *b = dd_prod(t, "b");
    ck_assert_int_eq(dd_send(b, 50, 54), 0); /* a batch: 50..54, known from the snapshot only */
    for (uint64_t s = 0; s < 10; s++)
        ck_assert_int_eq(dd_send(a, s, 0), 0);
    ck_assert_int_eq(tl_until_count(loop, &pubs.n, 11, 10000), 11);
    for (int i = 0; i < 11; i++)
        ck_assert_int_eq(pubs.status[i], 0);
    /* snapshots after entries 3, 6 and 9: {a: 7, b: 54} at the 9th entry's position */
    const struct ml_cursor_prop *props;
    ck_assert_int_eq(ml_cursor_props(t->dedup.cursor, &props), 2);
    for (int i = 0; i < 2; i++)
        ck_assert_int_eq(props[i].value, strcmp(props[i].name, "a") == 0 ? 7 : 54);
    ck_assert_int_eq(ml_pos_cmp(ml_cursor_mark_delete(t->dedup.cursor), pubs.pos[8]), 0);
    struct topic_stats st;
    topic_get_stats(t, &st);
    ck_assert_int_eq(st.n_subscriptions, 0); /* the snapshot cursor is no subscription */
    topic_producer_close(a);
    topic_producer_close(b);
    topic_unload(t);
    tl_run_for(loop, 200);

    t = dd_bk_load(name);
    ck_assert_str_eq(topic_dedup_status(t), "Enabled");
    ck_assert_int_eq(topic_dedup_last_pushed(t, "a"), 9); /* snapshot 7, then the replay */
    ck_assert_int_eq(topic_dedup_last_pushed(t, "b"), 54);
    a = dd_prod(t, "a");
    ck_assert_int_eq(topic_producer_last_sequence(a), 9);
    int before = pubs.n;
    for (uint64_t s = 0; s < 11; s++)
        ck_assert_int_eq(dd_send(a, s, 0), 0);
    ck_assert_int_eq(tl_until_count(loop, &pubs.n, before + 11, 10000), before + 11);
    for (int i = before; i < before + 10; i++)
        ck_assert(dd_is_dup_receipt(i));
    ck_assert(!dd_is_dup_receipt(before + 10));
    struct ml_stats ms;
    ml_get_stats(topic_ml(t), &ms);
    ck_assert_int_eq(ms.entries_added, 1); /* since the load: only id 10 */
    topic_producer_close(a);
}
END_TEST

/* Topic name loaded here, producer "a" stores ids 0..3 and a batch 4..hseq (hseq 0: just 4),
 * then the topic is unloaded. */
static void dd_bk_write_and_unload(const char *name, uint64_t hseq)
{
    struct topic *t = dd_bk_load(name);
    struct topic_producer *a = dd_prod(t, "a");
    DD_STEPS(a, {0, 0, 0}, {1, 0, 0}, {2, 0, 0}, {3, 0, 0}, {4, hseq, 0});
    ck_assert_int_eq(tl_until_count(loop, &pubs.n, dd_seen + 5, 10000), dd_seen + 5);
    dd_answered(t, "SSSSS", 5);
    topic_producer_close(a);
    topic_unload(t);
    tl_run_for(loop, 200);
}

/* The topic moves to another broker (unloaded here, loaded there): the new owner rebuilds
 * the state before the producer attaches, and the producer resending its last messages
 * through it gets duplicate receipts. */
START_TEST(test_dedup_moves)
{
    const char *name = "persistent://t/ns/moves";
    dd_bk_write_and_unload(name, 9);
    struct dd_broker other;
    dd_broker_new(&other, 8);
    struct topic *t = dd_bk_load_on(other.reg, name);
    ck_assert_str_eq(topic_dedup_status(t), "Enabled");
    struct topic_producer *a = dd_prod(t, "a");
    ck_assert_int_eq(topic_producer_last_sequence(a), 9);
    DD_STEPS(a, {3, 0, 0}, {4, 9, 0}, {10, 0, 0});
    ck_assert_int_eq(tl_until_count(loop, &pubs.n, 8, 10000), 8);
    ck_assert(dd_is_dup_receipt(5));
    ck_assert(dd_is_dup_receipt(6));
    ck_assert(!dd_is_dup_receipt(7));
    topic_producer_close(a);
    dd_broker_free(&other);
}
END_TEST

/* Delayed messages survive a move: the broker the topic moves to reads the subscription's
 * backlog again and holds them until their time, delivering each once. */
START_TEST(test_delayed_rebuilt_after_move)
{
    const char *name = "persistent://t/ns/delayed-move";
    const int64_t due = mg_loop_wall_ms(loop) + 30000;
    struct topic *t = dd_bk_load(name);
    struct fc *a = fc_new();
    sub_ok(t, "s", TOPIC_SUB_SHARED, true, a);
    topic_consumer_flow(a->c, 100);
    struct topic_producer *p = mkprod(t);
    for (int i = 0; i < 6; i++)
        publish_delayed(p, i % 2 ? due : 0, NULL);
    ck_assert_int_eq(tl_until_count(loop, &a->n, 3, 10000), 3);
    for (int i = 0; i < 3; i++)
        ack1(a, a->pos[i]);
    tl_run_for(loop, 100); /* the last entry's read */
    ck_assert_int_eq(sub_delayed(t, "s"), 3);
    topic_producer_close(p);
    topic_unload(t);
    tl_run_for(loop, 200);

    struct dd_broker other;
    dd_broker_new(&other, 8);
    t = dd_bk_load_on(other.reg, name);
    struct fc *b = fc_new();
    sub_ok(t, "s", TOPIC_SUB_SHARED, true, b);
    topic_consumer_flow(b->c, 100);
    tl_run_for(loop, 1000);
    ck_assert_int_eq(b->n, 0);
    ck_assert_int_eq(sub_delayed(t, "s"), 3); /* rebuilt from the backlog */
    int64_t left = due - 1000 - 512 - mg_loop_wall_ms(loop);
    tl_run_for(loop, (uint64_t)left - 100);
    ck_assert_int_eq(b->n, 0); /* not before its time less a tick and the rounding */
    ck_assert_int_eq(tl_until_count(loop, &b->n, 3, 5000), 3);
    ck_assert_int_le(mg_loop_wall_ms(loop), due);
    for (int i = 0; i < 3; i++)
        ck_assert(has_pos(b, pubs.pos[2 * i + 1]));
    tl_run_for(loop, 2000);
    ck_assert_int_eq(b->n, 3); /* each once */
    dd_broker_free(&other);
}
END_TEST

static bool dd_fail_reads;

/* Entry reads (not fencing or recovery reads) fail with EIO while dd_fail_reads. */
static void dd_read_filter(void *arg, const struct bkc_fake_req *r, struct bkc_fake_action *a)
{
    (void)arg;
    if (dd_fail_reads && !r->add && !r->fence && !r->recovery) {
        a->verdict = BKC_FAKE_ERROR;
        a->rc = 101; /* EIO */
    }
}

/* The state cannot be rebuilt at load (the entries after the snapshot cannot be read): the
 * topic is not served (its waiters get an error, the reason is logged) rather than served
 * without deduplication; once the entries can be read it loads whole. */
START_TEST(test_dedup_rebuild_fails)
{
    const char *name = "persistent://t/ns/refused";
    dd_bk_write_and_unload(name, 0);
    bkc_fake_set_filter(dd_env.fake, dd_read_filter, NULL);
    dd_fail_reads = true;
    struct get_res res = {0};
    ck_assert_int_eq(topic_get(reg, name, true, get_cb, &res), 0);
    ck_assert_int_eq(tl_until_count(loop, &res.calls, 1, 60000), 1);
    ck_assert_int_lt(res.status, 0);
    ck_assert_ptr_null(topic_find(reg, name));
    dd_fail_reads = false;
    tl_run_for(loop, 1000);
    struct topic *t = dd_bk_load(name);
    ck_assert_str_eq(topic_dedup_status(t), "Enabled");
    ck_assert_int_eq(topic_dedup_last_pushed(t, "a"), 4);
}
END_TEST

/* A failed write sets the accepted ids back to the stored ones (Pulsar's
 * resetHighestSequenceIdPushed): the producer's resend of the lost message is stored, not
 * refused as "cannot tell yet" forever. */
START_TEST(test_dedup_write_failure)
{
    struct topic *t = dd_bk_load("persistent://t/ns/wfail");
    struct topic_producer *a = dd_prod(t, "a");
    ck_assert_int_eq(dd_send(a, 1, 0), 0);
    ck_assert_int_eq(tl_until_count(loop, &pubs.n, 1, 10000), 1);
    ck_assert_int_eq(pubs.status[0], 0);
    tl_fakebk_stop(&dd_env, 0);
    ck_assert_int_eq(dd_send(a, 2, 0), 0);
    ck_assert_int_eq(tl_until_count(loop, &pubs.n, 2, 60000), 2);
    ck_assert_int_lt(pubs.status[1], 0);
    ck_assert_int_eq(topic_dedup_last_pushed(t, "a"), 1);
    tl_fakebk_start(&dd_env, 0);
    int sent = 2, rc = 0;
    for (int i = 0; i < 200 && (rc = dd_send(a, 2, 0)) == 0; i++) {
        sent++;
        ck_assert_int_eq(tl_until_count(loop, &pubs.n, sent, 60000), sent);
        if (pubs.status[sent - 1] == 0)
            break;
        tl_run_for(loop, 500); /* the ledger rolls over once a bookie is back */
    }
    ck_assert_int_eq(rc, 0);
    ck_assert_int_eq(pubs.status[sent - 1], 0);
    ck_assert(!dd_is_dup_receipt(sent - 1));
    ck_assert_int_eq(topic_dedup_last_pushed(t, "a"), 2);
    topic_producer_close(a);
}
END_TEST

/* ---- compaction (topic_compact.c) ------------------------------------------------------------ */

/* What a compacted reader got: "key=value" per message, in delivery order, comma separated
 * (a batch's messages in turn; a message without a key: "-=value"). */
struct cp_rx {
    struct topic_consumer *c;
    char text[8192];
    int msgs;
    struct ml_position last;
};

static void cp_add(struct cp_rx *r, const char *key, const uint8_t *v, size_t n)
{
    size_t len = strlen(r->text);
    snprintf(r->text + len, sizeof r->text - len, "%s%s=%.*s", len ? "," : "", key ? key : "-",
             (int)n, (const char *)v);
    r->msgs++;
}

static void cp_send(void *owner, struct topic_consumer *c, struct ml_entry *e, uint32_t rc,
                    const int64_t *ack_set, int n_words)
{
    (void)c, (void)rc, (void)ack_set, (void)n_words;
    struct cp_rx *r = owner;
    r->last = e->pos;
    size_t len = evbuffer_get_length(e->data);
    uint8_t *b = mg_malloc(len + 1);
    evbuffer_copyout(e->data, b, len);
    ck_assert_int_ge(len, 10);
    ck_assert_int_eq(b[0] << 8 | b[1], 0x0e01);
    uint32_t mds = (uint32_t)b[6] << 24 | (uint32_t)b[7] << 16 | (uint32_t)b[8] << 8 | b[9];
    Pulsar__Proto__MessageMetadata *md = pulsar__proto__message_metadata__unpack(NULL, mds, b + 10);
    ck_assert_ptr_nonnull(md);
    const uint8_t *p = b + 10 + mds;
    size_t plen = len - 10 - mds;
    uint8_t *raw = NULL;
    const char *codec = NULL; /* a compressed batch's messages are "CODEC:key=value" */
    if (md->has_compression && md->compression != PULSAR__PROTO__COMPRESSION_TYPE__NONE) {
        if (mg_decompress((int)md->compression, p, plen, md->uncompressed_size, 1 << 20, &raw, NULL,
                          0) < 0) { /* not decompressible: "compressed=<messages>" */
            char n[16];
            snprintf(n, sizeof n, "%d", md->num_messages_in_batch);
            cp_add(r, "compressed", (const uint8_t *)n, strlen(n));
            pulsar__proto__message_metadata__free_unpacked(md, NULL);
            mg_free(b);
            return;
        }
        codec = mg_codec_name((int)md->compression);
        p = raw;
        plen = md->uncompressed_size;
    }
    if (!md->has_num_messages_in_batch) {
        cp_add(r, md->partition_key, p, plen);
    } else {
        size_t off = 0;
        for (int i = 0; i < md->num_messages_in_batch; i++) {
            uint32_t sz = (uint32_t)p[off] << 24 | (uint32_t)p[off + 1] << 16 |
                          (uint32_t)p[off + 2] << 8 | p[off + 3];
            Pulsar__Proto__SingleMessageMetadata *smm =
                pulsar__proto__single_message_metadata__unpack(NULL, sz, p + off + 4);
            ck_assert_ptr_nonnull(smm);
            char key[64];
            snprintf(key, sizeof key, "%s%s%s", codec ? codec : "", codec ? ":" : "",
                     smm->partition_key ? smm->partition_key : "-");
            cp_add(r, key, p + off + 4 + sz, (size_t)smm->payload_size);
            off += 4 + sz + (size_t)smm->payload_size;
            pulsar__proto__single_message_metadata__free_unpacked(smm, NULL);
        }
        ck_assert_int_eq(off, plen);
    }
    mg_free(raw);
    pulsar__proto__message_metadata__free_unpacked(md, NULL);
    mg_free(b);
}

static void cp_closed(void *owner, struct topic_consumer *c)
{
    (void)c;
    ((struct cp_rx *)owner)->c = NULL;
}

static const struct topic_consumer_ops cp_ops = {.send = cp_send, .closed = cp_closed};

static struct topic_producer *cp_prod;
static int cp_sent;

/* A single message; key NULL: none; value "": a delete. */
static void cp_pub(struct topic *t, const char *key, const char *value)
{
    if (!cp_prod)
        ck_assert_int_eq(topic_producer_add(t, NULL, TOPIC_ACCESS_SHARED, NULL, NULL, &cp_prod), 0);
    Pulsar__Proto__MessageMetadata md;
    tl_pulsar_md(&md, "p", (uint64_t)cp_sent, 1000);
    md.partition_key = (char *)key;
    ck_assert_int_eq(topic_publish(cp_prod, tl_pulsar_entry(&md, value, strlen(value)), NULL,
                                   (uint64_t)cp_sent, 0, pub_cb, &pubs),
                     0);
    cp_sent++;
}

#define CP_CORRUPT (-1) /* cp_pub_batch_as: the batch marked LZ4 without being compressed */

/* A batch of n messages keys[i]=values[i], compressed with codec (CP_CORRUPT: marked LZ4,
 * not compressed). */
static void cp_pub_batch_as(struct topic *t, int codec, int n, const char *const *keys,
                            const char *const *values)
{
    if (!cp_prod)
        ck_assert_int_eq(topic_producer_add(t, NULL, TOPIC_ACCESS_SHARED, NULL, NULL, &cp_prod), 0);
    uint8_t buf[2048];
    size_t len = 0;
    for (int i = 0; i < n; i++) {
        Pulsar__Proto__SingleMessageMetadata smm = PULSAR__PROTO__SINGLE_MESSAGE_METADATA__INIT;
        smm.payload_size = (int32_t)strlen(values[i]);
        smm.partition_key = (char *)keys[i];
        size_t sz = pulsar__proto__single_message_metadata__get_packed_size(&smm);
        ck_assert_int_lt(len + 4 + sz + strlen(values[i]), sizeof buf);
        buf[len] = (uint8_t)(sz >> 24), buf[len + 1] = (uint8_t)(sz >> 16);
        buf[len + 2] = (uint8_t)(sz >> 8), buf[len + 3] = (uint8_t)sz;
        pulsar__proto__single_message_metadata__pack(&smm, buf + len + 4);
        memcpy(buf + len + 4 + sz, values[i], strlen(values[i]));
        len += 4 + sz + strlen(values[i]);
    }
    Pulsar__Proto__MessageMetadata md;
    tl_pulsar_md(&md, "p", (uint64_t)cp_sent, 1000);
    md.has_num_messages_in_batch = 1;
    md.num_messages_in_batch = n;
    uint8_t *z = NULL;
    size_t zn = len;
    if (codec != MG_CODEC_NONE) {
        md.has_compression = 1;
        md.compression = codec == CP_CORRUPT ? PULSAR__PROTO__COMPRESSION_TYPE__LZ4
                                             : (Pulsar__Proto__CompressionType)codec;
        md.has_uncompressed_size = 1;
        md.uncompressed_size = (uint32_t)len;
        if (codec != CP_CORRUPT)
            ck_assert_int_eq(mg_compress(codec, buf, len, &z, &zn), 0);
    }
    ck_assert_int_eq(topic_publish(cp_prod, tl_pulsar_entry(&md, z ? z : buf, zn), NULL,
                                   (uint64_t)cp_sent, 0, pub_cb, &pubs),
                     0);
    mg_free(z);
    cp_sent++;
}

static void cp_pub_batch(struct topic *t, int n, const char *const *keys, const char *const *values)
{
    cp_pub_batch_as(t, MG_CODEC_NONE, n, keys, values);
}

static void cp_published(void)
{
    ck_assert_int_eq(tl_until_count(loop, &pubs.n, cp_sent, 10000), cp_sent);
    for (int i = 0; i < pubs.n; i++)
        ck_assert_int_eq(pubs.status[i], 0);
}

static bool cp_not_running(const void *arg)
{
    return strcmp(topic_compact_status(arg, NULL), "RUNNING") != 0;
}

/* Compact and wait for the end; the status it ends with. */
static const char *cp_compact(struct topic *t)
{
    ck_assert_int_eq(topic_compact_start(t), 0);
    ck_assert_str_eq(topic_compact_status(t, NULL), "RUNNING");
    ck_assert(tl_until(loop, cp_not_running, t, 30000));
    return topic_compact_status(t, NULL);
}

static struct cp_rx cp_rx_pool[8];
static int cp_rx_used;

/* A new subscription (Exclusive, from the earliest; a reader: non-durable, started at the
 * earliest id) reading until nothing more comes. */
static struct cp_rx *cp_read_as(struct topic *t, const char *sub, bool compacted, bool reader)
{
    ck_assert_int_lt(cp_rx_used, 8);
    struct cp_rx *r = &cp_rx_pool[cp_rx_used++];
    memset(r, 0, sizeof *r);
    struct topic_sub_options o = opts(TOPIC_SUB_EXCLUSIVE);
    o.initial_earliest = true;
    o.read_compacted = compacted;
    o.durable = !reader;
    o.has_start = reader;
    o.start = ML_POS_EARLIEST;
    ck_assert_int_eq(topic_subscribe(t, sub, &o, r, &cp_ops, &r->c), 0);
    topic_consumer_flow(r->c, 1000);
    tl_run_for(loop, 500);
    return r;
}

static struct cp_rx *cp_read(struct topic *t, const char *sub, bool compacted)
{
    return cp_read_as(t, sub, compacted, false);
}

/* Wait for every publish, compact, and read the view with a new subscription sub: its text. */
static const char *cp_compacted(struct topic *t, const char *sub)
{
    cp_published();
    ck_assert_str_eq(cp_compact(t), "SUCCESS");
    return cp_read(t, sub, true)->text;
}

static void cp_setup(void)
{
    cp_prod = NULL;
    cp_sent = 0;
    cp_rx_used = 0;
    bk_env_setup(default_cfg);
}

static void cp_unload(struct topic *t)
{
    if (cp_prod)
        topic_producer_close(cp_prod);
    cp_prod = NULL;
    topic_unload(t);
    tl_run_for(loop, 200);
}

/* The latest message per key, in the order of the topic, then what came after the horizon;
 * a subscription without read_compacted sees every message. */
START_TEST(test_compact_latest_per_key)
{
    struct topic *t = dd_bk_load("persistent://t/ns/cp1");
    ck_assert_str_eq(topic_compact_status(t, NULL), "NOT_RUN");
    struct cp_rx *all = cp_read(t, "full", false); /* also holds the topic's data */
    for (int round = 0; round < 3; round++)        /* several ledgers (4 entries each) */
        for (char k = 'a'; k <= 'c'; k++) {
            char key[2] = {k, 0}, v[8];
            snprintf(v, sizeof v, "%c%d", k, round);
            cp_pub(t, key, v);
        }
    cp_pub(t, "b", "b9");
    cp_published();
    ck_assert_str_eq(cp_compact(t), "SUCCESS");
    ck_assert_int_eq(topic_compact_start(t), 0); /* nothing new: a run that keeps the view */
    ck_assert_int_eq(topic_compact_start(t), -MG_EBUSY);
    ck_assert(tl_until(loop, cp_not_running, t, 30000));
    ck_assert_str_eq(topic_compact_status(t, NULL), "SUCCESS");
    cp_pub(t, "a", "a-after");
    cp_published();
    ck_assert_str_eq(cp_read(t, "c", true)->text, "a=a2,c=c2,b=b9,a=a-after");
    ck_assert_int_eq(all->msgs, 11);
    struct topic_stats st;
    topic_get_stats(t, &st);
    ck_assert_int_eq(st.n_subscriptions, 2); /* __compaction is no subscription */
    struct topic_sub_options o = opts(TOPIC_SUB_SHARED);
    o.read_compacted = true;
    struct fc *f = fc_new();
    ck_assert_int_eq(sub_o(t, "shared", &o, f), -MG_ENOTALLOWED);
    o = opts(TOPIC_SUB_EXCLUSIVE);
    ck_assert_int_eq(sub_o(t, TOPIC_COMPACT_CURSOR, &o, f), -MG_ENOTALLOWED);
}
END_TEST

/* An empty payload deletes its key; messages without a key are dropped; a second run merges
 * the previous view with what came after it. */
START_TEST(test_compact_deletes_and_no_keys)
{
    struct topic *t = dd_bk_load("persistent://t/ns/cp2");
    cp_pub(t, "a", "a1");
    cp_pub(t, "b", "b1");
    cp_pub(t, NULL, "nokey");
    cp_pub(t, "a", "");
    cp_pub(t, "c", "c1");
    cp_published();
    ck_assert_str_eq(cp_compact(t), "SUCCESS");
    ck_assert_str_eq(cp_read(t, "r1", true)->text, "b=b1,c=c1");
    cp_pub(t, "b", "");
    cp_pub(t, "a", "a2");
    cp_pub(t, "d", "d1");
    cp_published();
    ck_assert_str_eq(cp_compact(t), "SUCCESS");
    ck_assert_str_eq(cp_read(t, "r2", true)->text, "c=c1,a=a2,d=d1");
    /* a topic of messages without keys compacts to nothing */
    struct topic *u = dd_bk_load("persistent://t/ns/cp2-nokeys");
    cp_prod = NULL;
    cp_pub(u, NULL, "x");
    cp_pub(u, NULL, "y");
    ck_assert_int_eq(tl_until_count(loop, &pubs.n, cp_sent, 10000), cp_sent);
    ck_assert_str_eq(cp_compact(u), "SUCCESS");
    ck_assert_str_eq(cp_read(u, "r", true)->text, "");
    ck_assert_str_eq(cp_read(u, "all", false)->text, "-=x,-=y");
}
END_TEST

/* Batches are compacted per message key: a batch keeps the messages still the latest of their
 * keys (rebuilt), or goes when none is. */
START_TEST(test_compact_batches)
{
    struct topic *t = dd_bk_load("persistent://t/ns/cp3");
    const char *k1[] = {"a", "b", "c"}, *v1[] = {"a1", "b1", "c1"};
    cp_pub_batch(t, 3, k1, v1);
    const char *k2[] = {"a", "d"}, *v2[] = {"a2", "d1"};
    cp_pub_batch(t, 2, k2, v2);
    cp_pub(t, "c", "");
    const char *k3[] = {"d", "e"}, *v3[] = {"d2", "e1"};
    cp_pub_batch(t, 2, k3, v3);
    cp_published();
    ck_assert_str_eq(cp_compact(t), "SUCCESS");
    struct cp_rx *r = cp_read(t, "r", true);
    ck_assert_str_eq(r->text, "b=b1,a=a2,d=d2,e=e1");
    /* the original positions: the last is the last batch's */
    ck_assert_int_eq(ml_pos_cmp(r->last, pubs.pos[3]), 0);
    /* a batch that does not decompress (its keys cannot be read) stays whole, in order;
     * nothing is lost */
    const char *k4[] = {"a", "f"}, *v4[] = {"a3", "f1"};
    cp_pub_batch_as(t, CP_CORRUPT, 2, k4, v4);
    cp_pub(t, "b", "b2");
    ck_assert_str_eq(cp_compacted(t, "r2"), "a=a2,d=d2,e=e1,compressed=2,b=b2");
}
END_TEST

/* Compressed batches are compacted per message key like the others, with every codec: a
 * batch keeps exactly the messages still the latest of their keys, compressed again with its
 * own codec, and goes when none is. */
START_TEST(test_compact_compressed_batches)
{
    struct topic *t = dd_bk_load("persistent://t/ns/cpz");
    const char *k1[] = {"a", "b", "c"}, *v1[] = {"a1", "b1", "c1"};
    for (int codec = MG_CODEC_LZ4; codec <= MG_CODEC_SNAPPY; codec++)
        cp_pub_batch_as(t, codec, 3, k1, v1);
    /* per codec: the batch of the next codec replaced all three keys, so only the last
     * batch (SNAPPY) keeps anything; then b is overwritten and c deleted */
    const char *k2[] = {"b", "d"}, *v2[] = {"b2", "d1"};
    cp_pub_batch_as(t, MG_CODEC_ZLIB, 2, k2, v2);
    cp_pub(t, "c", "");
    ck_assert_str_eq(cp_compacted(t, "r"), "SNAPPY:a=a1,ZLIB:b=b2,ZLIB:d=d1");
    /* one rebuilt batch per codec: each keeps its second message only */
    for (int codec = MG_CODEC_LZ4; codec <= MG_CODEC_SNAPPY; codec++) {
        char ka[8], kb[8], va[8], vb[8];
        snprintf(ka, sizeof ka, "x%d", codec);
        snprintf(kb, sizeof kb, "y%d", codec);
        snprintf(va, sizeof va, "old%d", codec);
        snprintf(vb, sizeof vb, "keep%d", codec);
        const char *k[] = {ka, kb}, *v[] = {va, vb};
        cp_pub_batch_as(t, codec, 2, k, v);
        cp_pub(t, ka, "new");
    }
    ck_assert_str_eq(cp_compacted(t, "r2"),
                     "SNAPPY:a=a1,ZLIB:b=b2,ZLIB:d=d1,LZ4:y1=keep1,x1=new,ZLIB:y2=keep2,x2=new,"
                     "ZSTD:y3=keep3,x3=new,SNAPPY:y4=keep4,x4=new");
}
END_TEST

/* An empty topic compacts (to nothing); later messages are read after the horizon. */
START_TEST(test_compact_empty_topic)
{
    struct topic *t = dd_bk_load("persistent://t/ns/cp4");
    ck_assert_str_eq(cp_compact(t), "SUCCESS");
    ck_assert_str_eq(cp_read(t, "r", true)->text, "");
    cp_pub(t, "a", "a1");
    cp_published();
    tl_run_for(loop, 200);
    ck_assert_str_eq(cp_rx_pool[0].text, "a=a1");
}
END_TEST

/* Producers go on writing while a run is under way: the run covers what was stored when it
 * started (its horizon), the rest is read after the view. */
START_TEST(test_compact_while_writing)
{
    struct topic *t = dd_bk_load("persistent://t/ns/cp7");
    cp_pub(t, "a", "a1");
    cp_pub(t, "b", "b1");
    cp_pub(t, "a", "a2");
    cp_published();
    ck_assert_int_eq(topic_compact_start(t), 0);
    cp_pub(t, "b", "b2");
    cp_pub(t, "c", "c1");
    ck_assert_str_eq(topic_compact_status(t, NULL), "RUNNING");
    cp_published();
    ck_assert(tl_until(loop, cp_not_running, t, 30000));
    ck_assert_str_eq(topic_compact_status(t, NULL), "SUCCESS");
    ck_assert_int_eq(ml_pos_cmp(t->compact.horizon, pubs.pos[2]), 0);
    ck_assert_str_eq(cp_read(t, "r", true)->text, "b=b1,a=a2,b=b2,c=c1");
}
END_TEST

struct cp_lastid {
    int calls, status;
    struct ml_position pos;
    int32_t batch_index;
};

static void cp_lastid_cb(void *data, int status, struct ml_position pos, int32_t batch_index,
                         struct ml_position mark_delete)
{
    (void)mark_delete;
    struct cp_lastid *r = data;
    r->calls++;
    r->status = status;
    r->pos = pos;
    r->batch_index = batch_index;
}

static struct cp_lastid cp_last_id(struct cp_rx *r)
{
    struct cp_lastid res = {0};
    ck_assert_int_eq(topic_consumer_last_message_id(r->c, cp_lastid_cb, &res), 0);
    ck_assert_int_eq(tl_until_count(loop, &res.calls, 1, 10000), 1);
    ck_assert_int_eq(res.status, 0);
    return res;
}

/* GET_LAST_MESSAGE_ID of a compacted reader when the topic has nothing after the horizon: the
 * view's last message with its original id (Pulsar's answer; readers' hasMessageAvailable
 * relies on it: the topic's last entry, a delete here, is not in the view), while other
 * consumers get the topic's last entry. */
START_TEST(test_compact_last_message_id)
{
    struct topic *t = dd_bk_load("persistent://t/ns/cp8");
    cp_pub(t, "a", "a1");
    const char *k[] = {"b", "c"}, *v[] = {"b1", "c1"};
    cp_pub_batch(t, 2, k, v);
    cp_pub(t, "a", "");
    cp_published();
    ck_assert_str_eq(cp_compact(t), "SUCCESS");
    struct cp_lastid c = cp_last_id(cp_read(t, "compacted", true));
    ck_assert_int_eq(ml_pos_cmp(c.pos, pubs.pos[1]), 0);
    ck_assert_int_eq(c.batch_index, 1);
    struct cp_lastid f = cp_last_id(cp_read(t, "full", false));
    ck_assert_int_eq(ml_pos_cmp(f.pos, pubs.pos[2]), 0);
    ck_assert_int_eq(f.batch_index, -1);
    /* a view left empty (every key deleted): nothing to read, (-1, -1) */
    cp_prod = NULL;
    struct topic *u = dd_bk_load("persistent://t/ns/cp8-empty");
    cp_pub(u, "a", "a1");
    cp_pub(u, "a", "");
    cp_published();
    ck_assert_str_eq(cp_compact(u), "SUCCESS");
    struct cp_lastid e = cp_last_id(cp_read(u, "compacted", true));
    ck_assert_int_eq(e.pos.ledger, -1);
    ck_assert_int_eq(e.pos.entry, -1);
}
END_TEST

/* The view survives an unload and a move to another broker: compacted reads stay exact. */
START_TEST(test_compact_restart_and_move)
{
    const char *name = "persistent://t/ns/cp5";
    struct topic *t = dd_bk_load(name);
    for (int i = 0; i < 6; i++) {
        char key[2] = {(char)('a' + i % 3), 0}, v[8];
        snprintf(v, sizeof v, "v%d", i);
        cp_pub(t, key, v);
    }
    cp_published();
    ck_assert_str_eq(cp_compact(t), "SUCCESS");
    cp_pub(t, "a", "v6");
    cp_published();
    cp_unload(t);

    t = dd_bk_load(name);
    ck_assert_str_eq(cp_read(t, "after-unload", true)->text, "a=v3,b=v4,c=v5,a=v6");
    /* retention 0: what only the __compaction cursor held went with the compaction */
    ck_assert_str_eq(cp_read(t, "after-unload-full", false)->text, "b=v4,c=v5,a=v6");
    cp_unload(t);

    struct dd_broker other;
    dd_broker_new(&other, 8);
    t = dd_bk_load_on(other.reg, name);
    ck_assert_str_eq(cp_read(t, "moved", true)->text, "a=v3,b=v4,c=v5,a=v6");
    /* a reader (non-durable, from the earliest id) with read_compacted: the same */
    ck_assert_str_eq(cp_read_as(t, "reader", true, true)->text, "a=v3,b=v4,c=v5,a=v6");
    /* the durable subscription read compacted before resumes where it was */
    topic_unload(t);
    tl_run_for(loop, 200);
    dd_broker_free(&other);
}
END_TEST

/* A run that cannot finish (the bookies refuse its writes; or the broker goes away in the
 * middle) leaves the previous view as it was: ERROR with the reason, reads unchanged. */
static bool cp_fail_adds;

static void cp_add_filter(void *arg, const struct bkc_fake_req *r, struct bkc_fake_action *a)
{
    (void)arg;
    if (cp_fail_adds && r->add) {
        a->verdict = BKC_FAKE_ERROR;
        a->rc = 101; /* EIO */
    }
}

START_TEST(test_compact_interrupted)
{
    const char *name = "persistent://t/ns/cp6";
    struct topic *t = dd_bk_load(name);
    cp_pub(t, "a", "a1");
    cp_pub(t, "b", "b1");
    cp_pub(t, "a", "a2");
    cp_published();
    ck_assert_str_eq(cp_compact(t), "SUCCESS");
    cp_pub(t, "b", "b2");
    cp_published();
    bkc_fake_set_filter(dd_env.fake, cp_add_filter, NULL);
    cp_fail_adds = true;
    ck_assert_str_eq(cp_compact(t), "ERROR");
    const char *err;
    topic_compact_status(t, &err);
    ck_assert(strlen(err) > 0);
    cp_fail_adds = false;
    ck_assert_str_eq(cp_read(t, "r", true)->text, "b=b1,a=a2,b=b2");

    /* the broker goes away while a run is under way: another loads the previous view */
    ck_assert_int_eq(topic_compact_start(t), 0);
    spin();
    ck_assert_str_eq(topic_compact_status(t, NULL), "RUNNING");
    if (cp_prod)
        topic_producer_close(cp_prod);
    cp_prod = NULL;
    dd_broker_free(&dd_b);
    dd_broker_new(&dd_b, 9);
    mlf = dd_b.mlf;
    reg = dd_b.reg;
    t = dd_bk_load(name);
    ck_assert_str_eq(cp_read(t, "r2", true)->text, "b=b1,a=a2,b=b2");
    ck_assert_str_eq(cp_compact(t), "SUCCESS");
    ck_assert_str_eq(cp_read(t, "r3", true)->text, "a=a2,b=b2");
}
END_TEST

/* brokerServiceCompactionThresholdInBytes: a topic whose data not yet compacted reaches the
 * threshold is compacted at the next check (every compaction_monitor_ms); a namespace's
 * compactionThreshold overrides it (0: never). */
START_TEST(test_compact_threshold)
{
    cfg.compaction_threshold_bytes = 300;
    cfg.compaction_monitor_ms = 1000;
    struct dd_broker other;
    dd_broker_new(&other, 8);
    struct topic *t = dd_bk_load_on(other.reg, "persistent://t/ns/auto");
    struct topic *off = dd_bk_load_on(other.reg, "persistent://t/ns/auto-off");
    topic_set_compaction_threshold(off, 0);
    cp_pub(t, "a", "a1");
    cp_published();
    tl_run_for(loop, 2500);
    ck_assert_str_eq(topic_compact_status(t, NULL), "NOT_RUN"); /* under the threshold */
    for (int i = 0; i < 10; i++)
        cp_pub(t, "a", "a-later");
    cp_published();
    topic_producer_close(cp_prod);
    cp_prod = NULL;
    for (int i = 0; i < 10; i++)
        cp_pub(off, "a", "a-later");
    cp_published();
    ck_assert_int_ge(topic_compact_backlog_bytes(t), 300);
    ck_assert(tl_until(loop, cp_not_running, t, 3000));
    tl_run_for(loop, 1500);
    ck_assert_str_eq(topic_compact_status(t, NULL), "SUCCESS");
    ck_assert_str_eq(topic_compact_status(off, NULL), "NOT_RUN");
    ck_assert_int_lt(topic_compact_backlog_bytes(t), 300);
    topic_producer_close(cp_prod);
    cp_prod = NULL;
    dd_broker_free(&other);
}
END_TEST

/* ---- non-persistent topics (topic_np.c) ----------------------------------------------- */

static const int64_t np_wall0 = 1700000000000;

static void np_setup(void)
{
    default_cfg();
    setup_on(&cfg, np_wall0); /* simulated loop: the drop rate's interval is exact */
}

/* Publish n messages with publish times from ts0 up (keys[i % n_keys] when keys). */
static void np_publish(struct topic *t, int n, uint64_t ts0, const char *const *keys, int n_keys)
{
    struct topic_producer *p = mkprod(t);
    for (int i = 0; i < n; i++)
        publish_full(p, ts0 + (uint64_t)i, 0, keys ? keys[i % n_keys] : NULL);
    spin();
    topic_producer_close(p);
}

static int64_t np_dropped(struct topic *t, const char *sub)
{
    size_t pos = 0;
    struct topic_sub_stats st;
    while (topic_sub_stats_next(t, &pos, &st))
        if (!strcmp(st.name, sub))
            return st.msg_drop_counter;
    ck_abort_msg("no subscription %s", sub);
    return -1;
}

static bool np_got(const struct fc *f, uint64_t ts)
{
    for (int i = 0; i < f->n; i++)
        if (f->publish_time[i] == ts)
            return true;
    return false;
}

/* Messages go to the consumers connected now, within their permits; the receipt is (0, 0),
 * after the call, in order; nothing is stored; the rest is dropped and counted. */
START_TEST(test_np_exclusive_delivery_and_drops)
{
    struct topic *t = load(NP_TOPIC);
    struct fc *a = fc_new();
    sub_ok(t, "s", TOPIC_SUB_EXCLUSIVE, true, a);
    int permits = 5, sent = 12;
    topic_consumer_flow(a->c, (uint32_t)permits);
    spin();
    struct topic_producer *p = mkprod(t);
    for (int i = 0; i < sent; i++)
        publish_full(p, 100 + (uint64_t)i, 0, NULL);
    ck_assert_int_eq(pubs.n, 0); /* answered on the loop, never inside topic_publish */
    spin();
    ck_assert_int_eq(pubs.n, sent);
    for (int i = 0; i < sent; i++) {
        ck_assert_int_eq(pubs.status[i], 0);
        ck_assert(ml_pos_cmp(pubs.pos[i], (struct ml_position){0, 0}) == 0);
    }
    ck_assert_int_eq(a->n, permits);
    for (int i = 0; i < permits; i++) /* the first ones, in order */
        ck_assert_uint_eq(a->publish_time[i], 100 + (uint64_t)i);
    ck_assert_int_eq(np_dropped(t, "s"), sent - permits);
    struct ml_stats ms;
    ml_get_stats(topic_ml(t), &ms);
    ck_assert_int_eq(ms.number_of_entries, 0); /* nothing stored */
    /* a seek is refused; acks and redeliveries have nothing to act on: no message comes again */
    ck_assert_int_eq(topic_consumer_seek(a->c, false, (struct ml_position){0, 0}, 0, NULL, NULL),
                     -MG_ENOTALLOWED);
    ck_assert_int_eq(topic_consumer_last_message_id(a->c, NULL, NULL), -MG_ENOTALLOWED);
    ack1(a, pubs.pos[0]);
    topic_consumer_redeliver(a->c, NULL, 0);
    topic_consumer_flow(a->c, 100);
    spin();
    ck_assert_int_eq(a->n, permits);
    /* a consumer that connects late sees nothing from before, then what comes next */
    struct fc *late = fc_new();
    sub_ok(t, "late", TOPIC_SUB_EXCLUSIVE, true, late);
    topic_consumer_flow(late->c, 100);
    spin();
    ck_assert_int_eq(late->n, 0);
    publish_full(p, 500, 0, NULL);
    spin();
    ck_assert_int_eq(late->n, 1);
    ck_assert_uint_eq(late->publish_time[0], 500);
    ck_assert_int_eq(a->n, permits + 1);
    /* msgDropRate over the stats interval (2 s on the simulated clock) */
    topic_registry_stats_update(reg, mg_loop_mono_ms(loop) + 2000);
    struct topic_stats ts;
    topic_get_stats(t, &ts);
    ck_assert(ts.msg_drop_rate > (double)(sent - permits) / 2.0 - 0.01 &&
              ts.msg_drop_rate < (double)(sent - permits) / 2.0 + 0.01);
    topic_producer_close(p);
}
END_TEST

/* Shared: round robin over the consumers with permits; none left -> dropped. */
START_TEST(test_np_shared)
{
    struct topic *t = load(NP_TOPIC);
    struct fc *a = fc_new(), *b = fc_new();
    int pa = 3, pb = 4, sent = 15;
    sub_pair(t, TOPIC_SUB_SHARED, "s", "s", a, b, (uint32_t)pa, (uint32_t)pb);
    np_publish(t, sent, 1000, NULL, 0);
    ck_assert_int_eq(a->n, pa);
    ck_assert_int_eq(b->n, pb);
    for (int i = 0; i < sent; i++)
        ck_assert(!(np_got(a, 1000 + (uint64_t)i) && np_got(b, 1000 + (uint64_t)i)));
    ck_assert_int_eq(np_dropped(t, "s"), sent - pa - pb);
}
END_TEST

/* Failover: only the active consumer gets messages; without its permits they are dropped
 * although another consumer has permits. */
START_TEST(test_np_failover)
{
    struct topic *t = load(NP_TOPIC);
    struct fc *a = fc_new(), *b = fc_new();
    sub_pair(t, TOPIC_SUB_FAILOVER, "s", "s", a, b, 2, 100);
    np_publish(t, 6, 1, NULL, 0);
    ck_assert_int_eq(a->n + b->n, 2);
    ck_assert(a->n == 2 || b->n == 2);
    ck_assert_int_eq(np_dropped(t, "s"), 4);
}
END_TEST

/* Key_Shared: each key goes to its consumer; a key whose consumer has no permits is
 * dropped while the other keys go on. */
START_TEST(test_np_key_shared)
{
    struct topic *t = load(NP_TOPIC);
    struct fc *a = fc_new(), *b = fc_new();
    struct topic_sub_options o = opts(TOPIC_SUB_KEY_SHARED);
    o.key_shared_sticky = true;
    const int32_t ra[1][2] = {{0, 32767}}, rb[1][2] = {{32768, 65535}};
    o.sticky_ranges = ra;
    o.n_sticky_ranges = 1;
    ck_assert_int_eq(sub_o(t, "s", &o, a), 0);
    o.sticky_ranges = rb;
    ck_assert_int_eq(sub_o(t, "s", &o, b), 0);
    topic_consumer_flow(a->c, 1000);
    spin();
    static const char *const keys[] = {"k0", "k1", "k2", "k3", "k4", "k5", "k6", "k7"};
    int sent = 80;
    np_publish(t, sent, 1, keys, 8);
    int to_b = 0;
    for (int i = 0; i < sent; i++) {
        uint32_t h = (wire_murmur3_32(keys[i % 8], strlen(keys[i % 8]), 0) & 0x7fffffffu) % 65536u;
        if (h >= 32768)
            to_b++;
        else
            ck_assert(np_got(a, 1 + (uint64_t)i));
    }
    ck_assert_int_gt(to_b, 0); /* the keys cover both ranges */
    ck_assert_int_eq(a->n, sent - to_b);
    for (int i = 0; i < a->n; i++)
        ck_assert_uint_lt(a->key_hash[i] % 65536u, 32768);
    ck_assert_int_eq(b->n, 0);
    ck_assert_int_eq(np_dropped(t, "s"), to_b);
}
END_TEST

/* A consumer closed by its connection inside the send (publish in progress): its
 * subscription goes (nothing durable on a non-persistent topic), the others still get
 * everything. */
START_TEST(test_np_close_inside_send)
{
    struct topic *t = load(NP_TOPIC);
    struct fc *a = fc_new(), *b = fc_new();
    sub_pair(t, TOPIC_SUB_EXCLUSIVE, "a", "b", a, b, 100, 100);
    a->close_at = 1;
    int sent = 4;
    np_publish(t, sent, 1, NULL, 0);
    ck_assert_int_eq(a->n, 1);
    ck_assert_int_eq(b->n, sent);
    size_t pos = 0;
    struct topic_sub_stats st;
    int subs = 0;
    while (topic_sub_stats_next(t, &pos, &st)) {
        ck_assert_str_eq(st.name, "b");
        subs++;
    }
    ck_assert_int_eq(subs, 1);
}
END_TEST

/* enableNonPersistentTopics=false: non-persistent names are refused, persistent ones load. */
START_TEST(test_np_disabled)
{
    teardown();
    default_cfg();
    cfg.np_disabled = true;
    setup_on(&cfg, np_wall0);
    struct get_res r = {0};
    ck_assert_int_eq(topic_get(reg, NP_TOPIC, true, get_cb, &r), -MG_ENOTALLOWED);
    spin();
    ck_assert_int_eq(r.calls, 0);
    ck_assert_ptr_null(topic_find(reg, NP_TOPIC));
    ck_assert_ptr_nonnull(load("persistent://public/default/np"));
}
END_TEST

static Suite *topic_suite(void)
{
    Suite *s = suite_create("topic");
    TCase *tc = tl_tcase(s, "names", 0, NULL, NULL);
    tl_add(tc, test_names, test_names_refused);

    tc = tl_tcase(s, "topic", 0, setup, teardown);
    tl_add(tc, test_registry_get, test_producers, test_terminate, test_publish_order,
           test_publish_hands_metadata_down, test_exclusive_permits,
           test_failover_partitioned_choice, test_failover_switch, test_failover_delay,
           test_sim_clock, test_shared_two, test_shared_priority, test_shared_close_redelivers,
           test_shared_redeliver, test_close_inside_send, test_failover_redeliver_ids,
           test_key_shared_auto, test_key_shared_sticky, test_key_shared_waits,
           test_key_shared_join_hold, test_batch_permits, test_max_unacked, test_limit_producers,
           test_limit_consumers, test_limit_unacked_policy, test_dispatch_rate, test_publish_rate,
           test_publish_rate_limited_times, test_inactive_topics, test_inactive_retention,
           test_inactive_non_persistent, test_inactive_policies, test_watermark, test_seek,
           test_reader, test_last_id, test_unsubscribe_unload, test_message_ttl_timer,
           test_backlog_quota, test_backlog_quota_age, test_quota_sweep_slices);

    tc = tl_tcase(s, "non-persistent", 0, np_setup, teardown);
    tl_add(tc, test_np_exclusive_delivery_and_drops, test_np_shared, test_np_failover,
           test_np_key_shared, test_np_close_inside_send, test_np_disabled);

    tc = tl_tcase(s, "delayed", 0, dl_setup, teardown);
    tl_add(tc, test_delayed_shared, test_delayed_ns_policy, test_delayed_no_timer_storm,
           test_delayed_bounded, test_delayed_type_change_and_seek, test_delayed_release_bounded);
    tc = tl_tcase(s, "dedup", 0, dd_setup, teardown);
    tl_add(tc, test_dedup_duplicates, test_dedup_in_flight, test_dedup_batches, test_dedup_chunks,
           test_dedup_bounds, test_dedup_policy);
    tc = tl_tcase(s, "dedup_bk", 60, dd_bk_setup, dd_bk_teardown);
    tl_add(tc, test_dedup_snapshot_rebuild, test_dedup_moves, test_dedup_rebuild_fails,
           test_dedup_write_failure, test_delayed_rebuilt_after_move, test_np_stores_nothing);
    tc = tl_tcase(s, "compact", 60, cp_setup, dd_bk_teardown);
    tl_add(tc, test_compact_latest_per_key, test_compact_deletes_and_no_keys, test_compact_batches,
           test_compact_compressed_batches, test_compact_empty_topic, test_compact_while_writing,
           test_compact_restart_and_move, test_compact_interrupted, test_compact_threshold,
           test_compact_last_message_id);
    return s;
}

int main(void)
{
    return tl_run(topic_suite());
}
