/*
 * topic.c - the topic registry, topic loading/unloading, producers and topic statistics.
 *
 * Happy path: topic_get parses and normalises the name, finds the loaded topic or starts
 * one load (ml_open); every get for the same name joins the waiters of that load, and the
 * waiters run once the ML is open and its stored durable cursors are opened as
 * subscriptions. A loaded topic answers further gets through a notify event, so callbacks
 * never run inside topic_get. Producers publish through ml_append (a non-persistent topic's
 * publishes go to topic_np.c instead: nothing stored, its ML in the registry's in-memory
 * factory); the ML completes appends in order, and each producer answers its publishes from
 * a FIFO (a duplicate that deduplication, topic_dedup.c, does not store takes its turn
 * there), so receipts go out in order.
 *
 * Failure modes: a failed ml_open fails every waiter and drops the topic. Unload and
 * delete close producers and consumers first (closed callbacks), then the ML; publishes
 * still in flight complete with the ML's status (-MG_ECANCELED) and free their producer
 * when it was the last one.
 */
#include "topic/topic_int.h"
#include "util/alloc.h"
#include "util/err.h"
#include "util/log.h"
#include "util/loop.h"
#include "wire/wire.h"

#include <event2/buffer.h>
#include <inttypes.h>
#include <string.h>

#define MOD "topic"

static void topic_fenced_unload_cb(struct mg_timer *tm, void *arg);
static bool topic_quota_exceeded(struct topic *t, enum topic_quota_type type);
static int64_t topic_backlog_age_ms(struct topic *t);
static void topic_producer_answer_cb(struct mg_timer *tm, void *arg);

/* ---- registry ------------------------------------------------------------------------ */

static void topic_expiry_done(void *data, int status)
{
    (void)status;
    struct topic *t = data; /* alive: the search's reference is dropped after this call */
    t->expiring = false;
}

/* Every expiry_check_interval_ms (Pulsar's messageExpiryCheckIntervalInMinutes): each loaded
 * topic with a message TTL acknowledges what is older on each durable subscription. A topic
 * whose previous search (it may read ledgers) has not finished is skipped, so slow reads do
 * not pile up. */
static void topic_expiry_check(struct topic *t)
{
    int64_t ttl = topic_message_ttl(t);
    /* nothing to look up (it may read a ledger) while no subscription has a backlog */
    if (ttl <= 0 || t->expiring || topic_backlog_bytes(t) <= 0)
        return;
    t->expiring = true;
    if (topic_expire_messages(t, NULL, ttl, topic_expiry_done, t) < 0)
        t->expiring = false;
}

void topic_touch(struct topic *t)
{
    t->active_ms = mg_loop_mono_ms(t->loop);
}

struct topic_inactive_policy topic_registry_inactive_policy(const struct topic_registry *r)
{
    return (struct topic_inactive_policy){.delete_while_inactive = r->cfg.inactive_check_ms > 0,
                                          .caught_up = r->cfg.inactive_caught_up,
                                          .max_inactive_ms = r->cfg.inactive_max_ms};
}

struct topic_inactive_policy topic_inactive_policy(const struct topic *t)
{
    if (t->topic_inactive_set)
        return t->topic_inactive;
    if (t->inactive_set)
        return t->inactive;
    if (t->reg)
        return topic_registry_inactive_policy(t->reg);
    return (struct topic_inactive_policy){0};
}

static void topic_inactive_put(bool *set, struct topic_inactive_policy *dst,
                               const struct topic_inactive_policy *p)
{
    *set = p != NULL;
    if (p)
        *dst = *p;
}

void topic_set_inactive_policy(struct topic *t, const struct topic_inactive_policy *p)
{
    topic_inactive_put(&t->inactive_set, &t->inactive, p);
}

void topic_set_topic_inactive_policy(struct topic *t, const struct topic_inactive_policy *p)
{
    topic_inactive_put(&t->topic_inactive_set, &t->topic_inactive, p);
}

void topic_registry_set_inactive_hook(struct topic_registry *r, topic_deleted_fn fn, void *arg)
{
    r->inactive_fn = fn;
    r->inactive_arg = arg;
}

/* Pulsar's isActive(deleteMode): a producer or a consumer, or subscriptions the mode keeps;
 * the compaction cursor is one of Pulsar's subscriptions (__compaction), so a compacted topic
 * is kept as one with a subscription. */
static bool topic_inactive_active(struct topic *t, bool caught_up)
{
    if (t->producers.count > 0 || t->compact.job)
        return true;
    if (!t->name.persistent) /* NonPersistentTopic.isActive: any subscription, whatever the mode
                                (its subscriptions go with their last consumer) */
        return t->subs.count > 0;
    if (t->compact.cursor && (!caught_up || ml_cursor_backlog(t->compact.cursor) > 0))
        return true;
    size_t pos = 0;
    void *v;
    while (mg_map_next(&t->subs, &pos, NULL, NULL, &v)) {
        struct topic_sub *s = v;
        if (s->n_consumers > 0 || !caught_up || (s->cursor && ml_cursor_backlog(s->cursor) > 0))
            return true;
    }
    return false;
}

/* brokerDeleteInactiveTopics (Pulsar's PersistentTopic.checkGC and NonPersistentTopic.checkGC,
 * topic.h): a topic not under deleteWhileInactive is left alone (its activity is not even
 * tracked, as Pulsar's); an active one is active from now; one inactive for long enough,
 * whose retention time does not keep it (a non-persistent topic keeps nothing), is deleted
 * with its data. */
static void topic_inactive_check(struct topic *t)
{
    if (t->state != TOPIC_READY || !t->reg || !t->ml || t->system)
        return;
    struct topic_inactive_policy pol = topic_inactive_policy(t);
    if (!pol.delete_while_inactive)
        return;
    uint64_t now = mg_loop_mono_ms(t->loop);
    if (topic_inactive_active(t, pol.caught_up)) {
        t->active_ms = now;
        return;
    }
    uint64_t idle = now - t->active_ms;
    if (idle < (uint64_t)(pol.max_inactive_ms > 0 ? pol.max_inactive_ms : 0))
        return;
    int64_t keep_min = t->name.persistent ? ml_retention_time_minutes(t->ml) : 0;
    if (keep_min < 0 || idle < (uint64_t)keep_min * 60000)
        return; /* its retention time still covers its last activity */
    MG_INFO(MOD,
            "%s: inactive for %" PRIu64 " s: deleting it (inactiveTopicDeleteMode=%s, "
            "retention %" PRId64 " min)",
            t->name.full, idle / 1000,
            pol.caught_up ? "delete_when_subscriptions_caught_up" : "delete_when_no_subscriptions",
            keep_min);
    struct topic_registry *r = t->reg;
    char *name = mg_strdup(t->name.full);
    int rc = topic_delete(t, false); /* t may be gone after it */
    if (rc == 0 && r->inactive_fn)
        r->inactive_fn(r->inactive_arg, name);
    else if (rc < 0)
        MG_WARN(MOD, "%s: inactive topic not deleted: %s", name, mg_strerror(rc));
    mg_free(name);
}

/* One slice of a sweep's pass (struct topic_sweep). */
static void topic_sweep_tmr_cb(struct mg_timer *tmr, void *arg)
{
    (void)tmr;
    struct topic_sweep *w = arg;
    struct topic_registry *r = w->r;
    if (!w->running || r->topics.cap != w->cap) {
        if (!w->running)
            w->round++;
        w->running = true;
        w->pos = 0;
        w->cap = r->topics.cap;
    }
    struct topic *t;
    int n = 0;
    while (n < TOPIC_SWEEP_SLICE && (t = topic_next(r, &w->pos))) {
        if (t->sweep_round[w->kind] == w->round)
            continue; /* done before the map grew */
        t->sweep_round[w->kind] = w->round;
        n++;
        w->fn(t);
    }
    if (n == TOPIC_SWEEP_SLICE && w->pos < r->topics.cap) {
        mg_timer_start(&w->tmr, 1);
        return;
    }
    w->running = false;
    mg_timer_start(&w->tmr, (uint64_t)w->interval_ms);
}

static void topic_sweep_init(struct topic_registry *r, enum topic_sweep_kind kind,
                             int64_t interval_ms, void (*fn)(struct topic *t))
{
    struct topic_sweep *w = &r->sweeps[kind];
    w->r = r;
    w->kind = kind;
    w->interval_ms = interval_ms;
    w->fn = fn;
    mg_timer_init(&w->tmr, r->loop, topic_sweep_tmr_cb, w);
    if (interval_ms > 0)
        mg_timer_start(&w->tmr, (uint64_t)interval_ms);
}

struct topic_registry *topic_registry_new(struct event_base *base, struct ml_factory *mlf,
                                          const struct topic_config *cfg)
{
    struct topic_registry *r = mg_calloc(1, sizeof *r);
    r->loop = ml_factory_loop(mlf);
    MG_ASSERT(mg_loop_base(r->loop) == base);
    r->base = base;
    r->mlf = mlf;
    r->cfg = *cfg;
    r->cluster_name = mg_strdup(cfg->cluster_name ? cfg->cluster_name : "standalone");
    r->cfg.cluster_name = r->cluster_name;
    if (r->cfg.dispatch_max_read_batch <= 0)
        r->cfg.dispatch_max_read_batch = 100;
    if (r->cfg.dispatch_max_round_robin <= 0)
        r->cfg.dispatch_max_round_robin = 20;
    if (r->cfg.max_message_size == 0)
        r->cfg.max_message_size = WIRE_DEFAULT_MAX_MESSAGE_SIZE;
    mg_map_init(&r->topics);
    const struct ml_config np_mc = {.cache_size_bytes = 1 << 20,
                                    .max_entries_per_ledger = 50000,
                                    .max_size_per_ledger = (int64_t)1 << 30};
    r->np_mlf = ml_factory_new(r->loop, "memory", &np_mc);
    MG_ASSERT(r->np_mlf);
    r->lat_ring = mg_calloc(TOPIC_LAT_RING, sizeof *r->lat_ring);
    topic_sweep_init(r, TOPIC_SWEEP_QUOTA, r->cfg.quota_check_interval_ms,
                     topic_check_backlog_quota);
    topic_sweep_init(r, TOPIC_SWEEP_EXPIRY, r->cfg.expiry_check_interval_ms, topic_expiry_check);
    topic_sweep_init(r, TOPIC_SWEEP_COMPACT, r->cfg.compaction_monitor_ms, topic_compact_check);
    topic_sweep_init(r, TOPIC_SWEEP_INACTIVE, r->cfg.inactive_check_ms, topic_inactive_check);
    topic_dedup_registry_start(r);
    return r;
}

void topic_registry_free(struct topic_registry *r)
{
    if (!r)
        return;
    size_t pos = 0;
    const char *k;
    size_t kl;
    void *v;
    while (mg_map_next(&r->topics, &pos, &k, &kl, &v)) {
        struct topic *t = v;
        if (t->state == TOPIC_LOADING) {
            /* The ml_open callback finds the topic orphaned and cleans up. */
            mg_map_del(&r->topics, k, kl);
            t->reg = NULL;
            continue;
        }
        topic_unload(t);
    }
    for (int w = 0; w < TOPIC_SWEEPS; w++)
        mg_timer_fini(&r->sweeps[w].tmr);
    mg_timer_fini(&r->dedup_tmr);
    ml_factory_free(r->np_mlf); /* a load in progress gets -MG_ECANCELED (orphaned: freed) */
    mg_map_fini(&r->topics);
    mg_free(r->lat_ring);
    mg_free(r->cluster_name);
    mg_free(r);
}

/* ---- topic lifetime ------------------------------------------------------------------- */

static void topic_free(struct topic *t)
{
    struct topic_waiter *w = t->waiters;
    while (w) {
        struct topic_waiter *nx = w->next;
        mg_free(w);
        w = nx;
    }
    mg_event_free(t->ev_notify);
    mg_timer_fini(&t->fence_timer);
    topic_dedup_fini(t);
    topic_compact_fini(t);
    mg_map_fini(&t->producers);
    mg_map_fini(&t->subs);
    topic_name_fini(&t->name);
    mg_free(t->ml_name);
    mg_free(t);
}

void topic_ref(struct topic *t)
{
    t->refs++;
}

void topic_unref(struct topic *t)
{
    MG_ASSERT(t->refs > 0);
    if (--t->refs == 0)
        topic_free(t);
}

/* Run waiters FIFO with (t or NULL, status). New waiters added meanwhile run too. */
static void topic_run_waiters(struct topic *t, int status)
{
    topic_ref(t);
    while (t->waiters) {
        struct topic_waiter *w = t->waiters;
        t->waiters = w->next;
        if (!t->waiters)
            t->waiters_tail = NULL;
        int st = status;
        if (st == 0 && t->state != TOPIC_READY)
            st = -MG_ECLOSED;
        w->cb(st == 0 ? t : NULL, st, w->data);
        mg_free(w);
    }
    topic_unref(t);
}

static void topic_notify_cb(evutil_socket_t fd, short what, void *arg)
{
    (void)fd;
    (void)what;
    topic_run_waiters(arg, 0);
}

void topic_loaded_notify(struct topic *t)
{
    if (t->state == TOPIC_READY)
        topic_run_waiters(t, 0);
}

static void topic_add_waiter(struct topic *t, topic_get_cb cb, void *data)
{
    struct topic_waiter *w = mg_calloc(1, sizeof *w);
    w->cb = cb;
    w->data = data;
    if (t->waiters_tail)
        t->waiters_tail->next = w;
    else
        t->waiters = w;
    t->waiters_tail = w;
}

/* Open every stored durable cursor as a subscription without consumers, so backlogs and
 * stats exist from load on. */
static void topic_load_subs(struct topic *t)
{
    size_t pos = 0;
    const char *name;
    int n = 0, cap = 0;
    char **names = NULL;
    while ((name = ml_cursor_name_next(t->ml, &pos))) {
        if (topic_cursor_reserved(name))
            continue; /* deduplication's snapshot or the compacted view: no subscriptions */
        if (n == cap) {
            cap = cap ? cap * 2 : 8;
            names = mg_realloc(names, (size_t)cap * sizeof *names);
        }
        names[n++] = mg_strdup(name);
    }
    for (int i = 0; i < n; i++) {
        int err = 0;
        if (!mg_map_get_str(&t->subs, names[i]) &&
            !topic_sub_new(t, names[i], true, ML_POS_LATEST, &err))
            MG_WARN(MOD, "%s: cannot open cursor %s: %s", t->name.full, names[i], mg_strerror(err));
        mg_free(names[i]);
    }
    mg_free(names);
}

static void topic_open_cb(struct ml_ledger *ml, int status, void *data)
{
    struct topic *t = data;
    if (!t->reg) {
        /* The registry went away while loading. */
        if (ml)
            ml_close(ml);
        t->state = TOPIC_CLOSED;
        topic_run_waiters(t, -MG_ECANCELED);
        topic_unref(t);
        return;
    }
    if (status == 0 && !t->create) {
        /* No existence query in ml.h: an ML with no entries ever and no cursors is
         * treated as missing. */
        struct ml_stats st;
        ml_get_stats(ml, &st);
        size_t pos = 0;
        if (st.number_of_entries == 0 && st.entries_added == 0 && !ml_cursor_name_next(ml, &pos)) {
            ml_close(ml);
            ml = NULL;
            status = -MG_ENOTFOUND;
        }
    }
    if (status < 0 || !ml) {
        if (status == 0)
            status = -MG_EIO;
        MG_DEBUG(MOD, "%s: load failed: %s", t->name.full, mg_strerror(status));
        mg_map_del_str(&t->reg->topics, t->name.full);
        t->state = TOPIC_CLOSED;
        topic_run_waiters(t, status);
        topic_unref(t);
        return;
    }
    t->ml = ml;
    t->state = TOPIC_READY;
    topic_load_subs(t);
    topic_compact_load(t);
    if (t->reg->loaded_fn)
        t->reg->loaded_fn(t->reg->loaded_arg, t);
    MG_DEBUG(MOD, "%s: loaded", t->name.full);
    if (topic_dedup_load(t))
        return; /* the waiters wait for the deduplication state */
    topic_run_waiters(t, 0);
}

int topic_get(struct topic_registry *r, const char *full_name, bool create, topic_get_cb cb,
              void *data)
{
    struct topic_name n;
    int rc = topic_name_parse(full_name, &n);
    if (rc < 0)
        return rc;
    if (!n.persistent && r->cfg.np_disabled) {
        topic_name_fini(&n); /* enableNonPersistentTopics=false: Pulsar's NotAllowed */
        return -MG_ENOTALLOWED;
    }
    struct topic *t = mg_map_get_str(&r->topics, n.full);
    if (t) {
        topic_name_fini(&n);
        topic_add_waiter(t, cb, data);
        if (t->state == TOPIC_READY && !t->dedup.hold_waiters)
            event_active(t->ev_notify, EV_READ, 0);
        return 0;
    }
    t = mg_calloc(1, sizeof *t);
    t->refs = 1;
    t->state = TOPIC_LOADING;
    t->reg = r;
    t->name = n;
    t->ml_name = topic_name_ml(&t->name);
    t->create = create;
    t->loop = r->loop;
    t->ttl_secs = -1;
    t->delayed.enabled = t->topic_delayed.enabled = -1;
    t->system = topic_name_is_system(&t->name);
    t->active_ms = mg_loop_mono_ms(t->loop);
    for (int i = 0; i < TOPIC_LIMITS; i++)
        t->limit[i] = t->topic_limit[i] = -1;
    t->limit_refused = -1;
    t->created_ms = (uint64_t)mg_loop_wall_ms(t->loop);
    t->stats_ms = mg_loop_mono_ms(t->loop);
    t->ev_notify = event_new(r->base, -1, 0, topic_notify_cb, t);
    mg_timer_init(&t->fence_timer, t->loop, topic_fenced_unload_cb, t);
    mg_map_init(&t->producers);
    topic_dedup_init(t);
    topic_compact_init(t);
    mg_map_init(&t->subs);
    topic_add_waiter(t, cb, data);
    mg_map_put_str(&r->topics, t->name.full, t);
    /* a non-persistent topic stores nothing: its ML lives in this process only */
    rc = ml_open(n.persistent ? r->mlf : r->np_mlf, t->ml_name, topic_open_cb, t);
    if (rc < 0) {
        mg_map_del_str(&r->topics, t->name.full);
        topic_free(t);
        return rc;
    }
    return 0;
}

struct topic *topic_find(struct topic_registry *r, const char *full_name)
{
    struct topic *t = mg_map_get_str(&r->topics, full_name);
    if (!t) {
        struct topic_name n;
        if (topic_name_parse(full_name, &n) < 0)
            return NULL;
        t = mg_map_get_str(&r->topics, n.full);
        topic_name_fini(&n);
    }
    return t && t->state == TOPIC_READY ? t : NULL;
}

struct topic *topic_next(struct topic_registry *r, size_t *pos)
{
    void *v;
    while (mg_map_next(&r->topics, pos, NULL, NULL, &v)) {
        struct topic *t = v;
        if (t->state == TOPIC_READY)
            return t;
    }
    return NULL;
}

static void topic_producer_free(struct topic_producer *p)
{
    mg_timer_fini(&p->answer_tmr);
    mg_free(p->name);
    mg_free(p);
}

/* Close every producer of t, telling each owner through ops->closed; one with sends in flight
 * is freed when the last completes. detach (the topic itself is closing): the producers
 * forget t; otherwise (t stays open) their sends in flight still complete on t, counted in
 * its statistics and its last sequence id, as after topic_producer_close. The caller holds a
 * reference on t. */
static void topic_drop_producers(struct topic *t, bool detach)
{
    size_t pos = 0;
    void *v;
    while (mg_map_next(&t->producers, &pos, NULL, NULL, &v)) {
        struct topic_producer *p = v;
        mg_map_del_str(&t->producers, p->name);
        topic_dedup_producer_removed(t, p->name);
        if (detach)
            p->topic = NULL;
        p->closed = true;
        if (t->exclusive == p)
            t->exclusive = NULL;
        if (p->ops && p->ops->closed)
            p->ops->closed(p->owner, p);
        if (p->pending == 0)
            topic_producer_free(p);
    }
}

/* Close producers and subscriptions (callbacks), then the ML; drop the registry's ref. */
static void topic_close(struct topic *t, bool delete_data)
{
    if (t->state != TOPIC_READY)
        return;
    topic_ref(t);
    t->state = TOPIC_CLOSED;
    if (t->reg)
        mg_map_del_str(&t->reg->topics, t->name.full);

    topic_drop_producers(t, true);
    size_t pos = 0;
    void *v;
    while (mg_map_next(&t->subs, &pos, NULL, NULL, &v))
        topic_sub_destroy(v, true, delete_data);
    topic_dedup_close(t, delete_data);
    topic_compact_close(t, delete_data);

    struct ml_ledger *ml = t->ml;
    t->ml = NULL;
    if (delete_data) {
        /* ml_delete removes the data; our reference is still dropped with ml_close. */
        int rc = ml_delete(ml, true);
        if (rc < 0)
            MG_WARN(MOD, "%s: delete: %s", t->name.full, mg_strerror(rc));
    }
    ml_close(ml);
    t->dedup.hold_waiters = false;
    /* Waiters queued on the notify event learn that the topic is gone. */
    topic_run_waiters(t, -MG_ECLOSED);
    MG_DEBUG(MOD, "%s: %s", t->name.full, delete_data ? "deleted" : "unloaded");
    topic_unref(t); /* ours */
    topic_unref(t); /* the registry's */
}

void topic_unload(struct topic *t)
{
    topic_close(t, false);
}

int topic_delete(struct topic *t, bool force)
{
    if (t->state != TOPIC_READY)
        return -MG_ECLOSED;
    if (!force) {
        if (t->producers.count > 0)
            return -MG_EBUSY;
        size_t pos = 0;
        void *v;
        while (mg_map_next(&t->subs, &pos, NULL, NULL, &v))
            if (((struct topic_sub *)v)->n_consumers > 0)
                return -MG_EBUSY;
    }
    topic_close(t, true);
    return 0;
}

struct topic_term {
    struct topic *t; /* referenced */
    topic_terminate_cb cb;
    void *data;
};

static void topic_terminated(struct ml_ledger *ml, struct ml_position last, int status, void *data)
{
    (void)ml;
    struct topic_term *tt = data;
    struct topic *t = tt->t;
    if (status == 0 && t->state == TOPIC_READY) {
        /* Pulsar's PersistentTopic.terminate: producers are disconnected, subscriptions
         * learn it (their consumers at the end hear REACHED_END_OF_TOPIC). */
        topic_drop_producers(t, false);
        size_t pos = 0;
        void *v;
        while (mg_map_next(&t->subs, &pos, NULL, NULL, &v))
            topic_sub_schedule(v);
    }
    tt->cb(tt->data, status, last);
    topic_unref(t);
    mg_free(tt);
}

int topic_terminate(struct topic *t, topic_terminate_cb cb, void *data)
{
    if (t->state != TOPIC_READY || !t->ml || !cb)
        return -MG_ECLOSED;
    struct topic_term *tt = mg_calloc(1, sizeof *tt);
    tt->t = t;
    tt->cb = cb;
    tt->data = data;
    topic_ref(t);
    int rc = ml_terminate(t->ml, topic_terminated, tt);
    if (rc < 0) {
        topic_unref(t);
        mg_free(tt);
    }
    return rc;
}

const char *topic_full_name(const struct topic *t)
{
    return t->name.full;
}

bool topic_is_persistent(const struct topic *t)
{
    return t->name.persistent;
}

struct ml_ledger *topic_ml(struct topic *t)
{
    return t->ml;
}

/* ---- producers -------------------------------------------------------------------------- */

int topic_producer_add(struct topic *t, const char *name, enum topic_access_mode mode, void *owner,
                       const struct topic_producer_ops *ops, struct topic_producer **out)
{
    t->limit_refused = -1;
    if (t->state != TOPIC_READY || !t->reg)
        return -MG_ECLOSED;
    if (name && *name && mg_map_get_str(&t->producers, name))
        return -MG_EPRODUCERBUSY;
    if (topic_limit_admit(t, TOPIC_LIMIT_PRODUCERS, (int64_t)t->producers.count) < 0)
        return -MG_EPRODUCERBUSY; /* Pulsar: "Topic reached max producers limit" */
    /* Access modes (Pulsar AbstractTopic): an Exclusive holder refuses Shared producers
     * with ProducerBusy and other Exclusive ones with ProducerFenced; Exclusive refuses
     * to join a topic that has producers (ProducerFenced). WaitForExclusive is treated as
     * an Exclusive that fails at once (ProducerBusy) instead of waiting;
     * ExclusiveWithFencing as Exclusive (it does not fence the holder). */
    bool excl = mode != TOPIC_ACCESS_SHARED;
    if (t->exclusive) {
        if (mode == TOPIC_ACCESS_SHARED || mode == TOPIC_ACCESS_WAIT_FOR_EXCLUSIVE)
            return -MG_EPRODUCERBUSY;
        return -MG_EPRODUCERFENCED;
    }
    if (excl && t->producers.count > 0)
        return mode == TOPIC_ACCESS_WAIT_FOR_EXCLUSIVE ? -MG_EPRODUCERBUSY : -MG_EPRODUCERFENCED;
    if (t->ml && ml_is_terminated(t->ml))
        return -MG_ETERMINATED; /* Pulsar: "Topic was already terminated" */
    /* Backlog quota (Pulsar's ServerCnx.handleProducer): refused while the backlog is at or
     * over the limit, unless the policy evicts consumers' backlog instead. */
    for (int type = 0; type < TOPIC_QUOTA_TYPES; type++) {
        struct topic_backlog_quota q = topic_backlog_quota(t, (enum topic_quota_type)type);
        if (q.policy != TOPIC_QUOTA_EVICTION &&
            topic_quota_exceeded(t, (enum topic_quota_type)type))
            return q.policy == TOPIC_QUOTA_HOLD ? -MG_EQUOTAHOLD : -MG_EQUOTAEXC;
    }

    struct topic_producer *p = mg_calloc(1, sizeof *p);
    if (name && *name) {
        p->name = mg_strdup(name);
    } else {
        struct topic_registry *r = t->reg;
        do {
            mg_free(p->name);
            p->name = mg_asprintf("%s-%d-%llu", r->cluster_name, r->cfg.broker_index,
                                  (unsigned long long)r->producer_counter++);
        } while (mg_map_get_str(&t->producers, p->name));
    }
    p->topic = t;
    p->mode = mode;
    p->id = t->reg->producer_ids++;
    p->connected_ms = (uint64_t)mg_loop_wall_ms(t->loop);
    p->owner = owner;
    p->ops = ops;
    p->loop = t->loop;
    mg_timer_init(&p->answer_tmr, p->loop, topic_producer_answer_cb, p);
    mg_map_put_str(&t->producers, p->name, p);
    topic_dedup_producer_added(t, p->name);
    topic_touch(t);
    if (excl)
        t->exclusive = p;
    *out = p;
    return 0;
}

const char *topic_producer_name(const struct topic_producer *p)
{
    return p->name;
}

struct topic *topic_producer_topic(const struct topic_producer *p)
{
    return p->topic;
}

int64_t topic_producer_last_sequence(const struct topic_producer *p)
{
    return p->topic ? topic_dedup_last_pushed(p->topic, p->name) : -1;
}

static void topic_fenced_unload_cb(struct mg_timer *tm, void *arg)
{
    (void)tm;
    struct topic *t = arg;
    if (t->state == TOPIC_READY) {
        MG_WARN(MOD,
                "%s: its managed ledger was fenced by another writer: unloading the "
                "topic so clients look it up again",
                t->name.full);
        topic_close(t, false);
    }
    topic_unref(t);
}

/* Another broker recovered the topic's ledger (fencing): stop serving it, after the
 * current callback chain has unwound (closing calls back into connections). */
static void topic_fenced(struct topic *t)
{
    if (!t || t->state != TOPIC_READY || t->fence_pending || !t->reg)
        return;
    t->fence_pending = true;
    topic_ref(t);
    mg_timer_activate(&t->fence_timer);
}

/* Bucket bounds of the write-latency (µs) and entry-size (bytes) histograms (topic.h). */
static const int64_t lat_bounds_us[TOPIC_LAT_BUCKETS - 1] = {500,   1000,   5000,   10000,  20000,
                                                             50000, 100000, 200000, 1000000};
static const int64_t size_bounds[TOPIC_SIZE_BUCKETS - 1] = {128,  512,   1024,   2048,
                                                            4096, 16384, 102400, 1048576};

static int topic_bucket_of(const int64_t *bounds, int n, int64_t v)
{
    int i = 0;
    while (i < n && v > bounds[i])
        i++;
    return i;
}

/* One entry stored: latency (µs, publish to stored) and size into the interval's
 * histograms and the registry's latency samples. */
void topic_record_write(struct topic *t, uint64_t lat_us, int64_t bytes)
{
    t->entries_in++;
    t->last_publish_ms = (uint64_t)mg_loop_wall_ms(t->loop);
    t->lat_cur[topic_bucket_of(lat_bounds_us, TOPIC_LAT_BUCKETS - 1, (int64_t)lat_us)]++;
    t->lat_sum_cur += (int64_t)lat_us;
    t->size_cur[topic_bucket_of(size_bounds, TOPIC_SIZE_BUCKETS - 1, bytes)]++;
    t->size_sum_cur += bytes;
    struct topic_registry *r = t->reg;
    if (r) {
        double ms = (double)lat_us / 1000.0;
        r->lat_ring[r->lat_head] = ms;
        r->lat_head = (r->lat_head + 1) % TOPIC_LAT_RING;
        if (r->lat_n < TOPIC_LAT_RING)
            r->lat_n++;
        r->lat_count++;
        r->lat_sum_ms += ms;
    }
}

/* Answer the producer's publishes that are done, in publish order. */
static void topic_producer_answer(struct topic_producer *p)
{
    p->pending++; /* a callback may close the producer: it stays until the end of this */
    struct topic_publish *pub;
    while ((pub = p->fifo) && pub->done) {
        p->fifo = pub->next;
        if (!p->fifo)
            p->fifo_tail = NULL;
        p->pending--;
        pub->cb(pub->cb_data, pub->status, pub->pos);
        mg_free(pub);
    }
    if (--p->pending == 0 && p->closed)
        topic_producer_free(p);
}

static void topic_producer_answer_cb(struct mg_timer *tm, void *arg)
{
    (void)tm;
    topic_producer_answer(arg);
}

void topic_publish_queue(struct topic_producer *p, struct topic_publish *pub)
{
    if (p->fifo_tail)
        p->fifo_tail->next = pub;
    else
        p->fifo = pub;
    p->fifo_tail = pub;
    p->pending++;
}

static void topic_publish_done(struct ml_append_req *req, int status)
{
    struct topic_publish *pub = req->data;
    struct topic_producer *p = pub->p;
    struct ml_position pos = {-1, -1};
    if (status == 0) {
        pos = req->pos;
        int64_t msgs = req->entry ? req->entry->num_messages : 1;
        int64_t bytes = req->entry ? (int64_t)req->entry->size : 0;
        p->msg_in += msgs;
        p->bytes_in += bytes;
        bool chunk = req->entry && req->entry->chunk_key;
        p->chunks_in += chunk;
        struct topic *t = p->topic;
        if (t) {
            t->chunk_published |= chunk;
            t->msg_in += msgs;
            t->bytes_in += bytes;
            topic_record_write(t, mg_loop_mono_us(t->loop) - pub->start_us, bytes);
            topic_dedup_persisted(t, pub->dedup ? p->name : NULL, pub->seq, pos);
        }
    } else if (p->topic) {
        topic_dedup_write_failed(p->topic);
    }
    if (status == -MG_EFENCED)
        topic_fenced(p->topic);
    pub->done = true;
    pub->status = status;
    pub->pos = pos;
    topic_producer_answer(p);
}

/* What the managed ledger keeps of a message's metadata. */
void topic_entry_info_of(const struct wire_msg_info *m, struct ml_entry_info *info)
{
    info->num_messages = m->num_messages > 0 ? m->num_messages : 1;
    info->batched = m->batched;
    info->publish_time = m->publish_time;
    info->key_hash = m->key_hash;
    info->deliver_at_time = m->deliver_at_time;
    info->chunk_key = m->chunk_key;
    info->chunk_last = m->chunk_key && m->chunk_id == m->num_chunks - 1;
    info->tail_crc = m->tail_crc;
    info->tail_len = m->tail_len;
}

int topic_entry_info(struct evbuffer *entry, struct ml_entry_info *info)
{
    struct wire_msg_info m;
    if (wire_entry_parse(entry, &m) < 0)
        return -MG_EPROTO;
    topic_entry_info_of(&m, info);
    return 0;
}

int topic_publish(struct topic_producer *p, struct evbuffer *data, const struct wire_msg_info *msg,
                  uint64_t sequence_id, uint64_t highest_sequence_id, topic_publish_cb cb,
                  void *cb_data)
{
    if (p->closed || !p->topic || !p->topic->ml) {
        evbuffer_free(data); /* moved in, as ml_append does on failure */
        return -MG_ECLOSED;
    }
    struct topic *t = p->topic;
    if (!t->name.persistent)
        return topic_np_publish(p, data, msg, cb, cb_data); /* nothing stored */
    /* The frame decoder read the metadata already: hand it down, do not parse it again. */
    struct wire_msg_info parsed;
    if (!msg && wire_entry_parse(data, &parsed) == 0)
        msg = &parsed;
    bool dedup = !msg || !topic_dedup_skips_chunk(msg->chunk_id, msg->num_chunks);
    int dup =
        dedup ? topic_dedup_check(t, p->name, (int64_t)sequence_id, (int64_t)highest_sequence_id)
              : 0;
    if (dup < 0) {
        evbuffer_free(data);
        return dup;
    }
    struct topic_publish *pub = mg_calloc(1, sizeof *pub);
    pub->p = p;
    pub->seq = (int64_t)highest_sequence_id > (int64_t)sequence_id ? (int64_t)highest_sequence_id
                                                                   : (int64_t)sequence_id;
    pub->start_us = mg_loop_mono_us(t->loop);
    pub->cb = cb;
    pub->cb_data = cb_data;
    pub->req.data = pub;
    pub->dedup = dedup;
    if (dup) {
        /* already stored: not written again; answered (-1, -1) in its turn */
        evbuffer_free(data);
        pub->done = true;
        pub->pos = (struct ml_position){-1, -1};
        topic_publish_queue(p, pub);
        if (p->fifo == pub)
            mg_timer_activate(&p->answer_tmr);
        return 0;
    }
    struct ml_entry_info info;
    const struct ml_entry_info *known = NULL; /* not a Pulsar entry: one message, no metadata */
    if (msg) {
        topic_entry_info_of(msg, &info);
        known = &info;
    }
    topic_rate_published(t, msg ? msg->num_messages : 1, (int64_t)evbuffer_get_length(data));
    topic_touch(t);
    int rc = ml_append(t->ml, data, known, &pub->req, topic_publish_done);
    if (rc < 0) {
        mg_free(pub);
        topic_dedup_write_failed(t);
        if (rc == -MG_EFENCED)
            topic_fenced(t);
        return rc;
    }
    topic_publish_queue(p, pub);
    return 0;
}

void topic_producer_close(struct topic_producer *p)
{
    if (!p || p->closed)
        return;
    p->closed = true;
    struct topic *t = p->topic;
    if (t) {
        if (mg_map_get_str(&t->producers, p->name) == p) {
            mg_map_del_str(&t->producers, p->name);
            topic_dedup_producer_removed(t, p->name);
        }
        topic_touch(t);
        if (t->exclusive == p)
            t->exclusive = NULL;
    }
    if (p->pending == 0)
        topic_producer_free(p);
}

/* ---- stats and admin ------------------------------------------------------------------- */

void topic_get_stats(struct topic *t, struct topic_stats *out)
{
    memset(out, 0, sizeof *out);
    out->n_producers = (int)t->producers.count;
    out->msg_in_counter = t->msg_in;
    out->bytes_in_counter = t->bytes_in;
    out->msg_out_counter = t->msg_out_closed;
    out->bytes_out_counter = t->bytes_out_closed;
    out->entries_in_counter = t->entries_in;
    out->msg_rate_in = t->rate_msg_in;
    out->throughput_in = t->rate_bytes_in;
    out->storage_write_rate = t->rate_entries_in;
    out->storage_read_rate = t->rate_entries_out;
    out->created_ms = t->created_ms;
    out->last_publish_ms = t->last_publish_ms;
    out->chunk_published = t->chunk_published;
    memcpy(out->write_latency, t->lat_last, sizeof out->write_latency);
    out->write_latency_sum_us = t->lat_sum_last;
    memcpy(out->entry_size, t->size_last, sizeof out->entry_size);
    out->entry_size_sum = t->size_sum_last;
    size_t pos = 0;
    void *v;
    while (mg_map_next(&t->subs, &pos, NULL, NULL, &v)) {
        struct topic_sub *s = v;
        out->n_subscriptions++;
        out->n_consumers += s->n_consumers;
        out->msg_out_counter += s->msg_out;
        out->bytes_out_counter += s->bytes_out;
        out->msg_rate_out += s->rate_msg_out;
        out->throughput_out += s->rate_bytes_out;
        out->msg_drop_rate += s->rate_msg_drop;
        out->msg_backlog += s->cursor ? ml_cursor_backlog(s->cursor) : 0;
        out->delayed_index_bytes += (int64_t)s->delay.cap * (int64_t)sizeof *s->delay.heap;
    }
    if (t->ml) {
        struct ml_stats st;
        ml_get_stats(t->ml, &st);
        out->storage_size = st.total_size;
        /* Pulsar's backlogSize: bytes of the slowest subscription's backlog; estimated
         * from the average entry size. */
        int64_t maxb = 0;
        pos = 0;
        while (mg_map_next(&t->subs, &pos, NULL, NULL, &v)) {
            struct topic_sub *s = v;
            int64_t b = s->cursor ? ml_cursor_backlog(s->cursor) : 0;
            if (b > maxb)
                maxb = b;
        }
        out->backlog_size =
            st.number_of_entries > 0 ? maxb * (st.total_size / st.number_of_entries) : 0;
    }
    out->quota_limit_bytes = topic_quota_limit(t, TOPIC_QUOTA_STORAGE);
    out->quota_limit_secs = topic_quota_limit(t, TOPIC_QUOTA_AGE);
    int64_t age = topic_backlog_age_ms(t);
    out->backlog_age_secs = age < 0 ? -1 : age / 1000;
    memcpy(out->quota_evictions, t->quota_evictions, sizeof out->quota_evictions);
    out->publish_rate_limited = t->publish_limited;
}

int64_t topic_backlog_bytes(struct topic *t)
{
    if (!t->ml)
        return 0;
    struct ml_stats st;
    ml_get_stats(t->ml, &st);
    int64_t maxb = 0;
    size_t pos = 0;
    void *v;
    while (mg_map_next(&t->subs, &pos, NULL, NULL, &v)) {
        struct topic_sub *s = v;
        int64_t b = s->cursor && s->durable ? ml_cursor_backlog(s->cursor) : 0;
        if (b > maxb)
            maxb = b;
    }
    return st.number_of_entries > 0 ? maxb * (st.total_size / st.number_of_entries) : 0;
}

/* ---- backlog quotas ---------------------------------------------------------------------- */

void topic_set_backlog_quota(struct topic *t, enum topic_quota_type type,
                             const struct topic_backlog_quota *q)
{
    t->quota_set[type] = true;
    t->quota[type] = *q;
}

void topic_reset_backlog_quota(struct topic *t, enum topic_quota_type type)
{
    t->quota_set[type] = false;
}

struct topic_backlog_quota topic_backlog_quota(const struct topic *t, enum topic_quota_type type)
{
    if (t->quota_set[type])
        return t->quota[type];
    if (t->reg)
        return t->reg->cfg.quota_default;
    return (struct topic_backlog_quota){.set = false, .limit_bytes = -1, .limit_secs = -1};
}

int64_t topic_quota_limit(const struct topic *t, enum topic_quota_type type)
{
    struct topic_backlog_quota q = topic_backlog_quota(t, type);
    if (!q.set)
        return -1;
    int64_t limit = type == TOPIC_QUOTA_AGE ? q.limit_secs : q.limit_bytes;
    return limit < 0 ? -1 : limit;
}

/* consumer_backlog_eviction (Pulsar's BacklogQuotaManager.dropBacklogForSizeLimit): skip
 * entries on the slowest durable subscription until the backlog is at most 90 % of the
 * limit, subscription after subscription while the slowest is over it (bounded by their
 * count). */
static void topic_evict_backlog(struct topic *t, int64_t limit)
{
    int64_t target = limit - limit / 10;
    for (size_t n = t->subs.count; n > 0 && topic_backlog_bytes(t) > target; n--) {
        struct ml_stats st;
        ml_get_stats(t->ml, &st);
        if (st.number_of_entries <= 0)
            return;
        int64_t avg = st.total_size / st.number_of_entries;
        struct topic_sub *slow = NULL;
        int64_t slow_b = -1;
        size_t pos = 0;
        void *v;
        while (mg_map_next(&t->subs, &pos, NULL, NULL, &v)) {
            struct topic_sub *s = v;
            int64_t b = s->cursor && s->durable ? ml_cursor_backlog(s->cursor) : -1;
            if (b > slow_b) {
                slow_b = b;
                slow = s;
            }
        }
        if (!slow || slow_b <= 0)
            return;
        int64_t keep = avg > 0 ? target / avg : 0;
        int64_t skip = slow_b - keep;
        if (skip <= 0)
            return;
        MG_INFO(MOD,
                "%s: backlog over its quota (%" PRId64 " bytes): subscription %s skips %" PRId64
                " entries",
                t->name.full, limit, slow->name, skip);
        ml_cursor_skip(slow->cursor, skip);
        topic_sub_schedule(slow);
    }
}

/* The oldest unacknowledged position over the durable subscriptions (the entry after the
 * slowest mark-delete); false when none has a backlog. */
static bool topic_oldest_unacked(struct topic *t, struct ml_position *out)
{
    bool any = false;
    size_t pos = 0;
    void *v;
    while (mg_map_next(&t->subs, &pos, NULL, NULL, &v)) {
        struct topic_sub *s = v;
        if (!s->cursor || !s->durable || s->dead || ml_cursor_backlog(s->cursor) <= 0)
            continue;
        struct ml_position p = ml_next_position(t->ml, ml_cursor_mark_delete(s->cursor));
        if (!any || ml_pos_cmp(p, *out) < 0)
            *out = p;
        any = true;
    }
    return any;
}

/* Age in ms of the oldest unacknowledged message, as far as the last read of it tells: -1
 * when there is no backlog, or its oldest position moved since (the next check reads it). */
static int64_t topic_backlog_age_ms(struct topic *t)
{
    struct ml_position oldest;
    if (!t->ml || !topic_oldest_unacked(t, &oldest) || t->age_publish_ms == 0 ||
        ml_pos_cmp(oldest, t->age_pos) != 0)
        return -1;
    int64_t age = mg_loop_wall_ms(t->loop) - (int64_t)t->age_publish_ms;
    return age > 0 ? age : 0;
}

/* Whether t's backlog is over its quota of that type: at or over the size (Pulsar's
 * isSizeBacklogExceeded), or older than the limit (isTimeBacklogExceeded). */
static bool topic_quota_exceeded(struct topic *t, enum topic_quota_type type)
{
    int64_t limit = topic_quota_limit(t, type);
    if (limit < 0)
        return false;
    if (type == TOPIC_QUOTA_STORAGE)
        return topic_backlog_bytes(t) >= limit;
    int64_t age = topic_backlog_age_ms(t);
    return age >= 0 && age > limit * 1000;
}

/* What the policy of the quota of that type does once it is exceeded. */
static void topic_apply_quota(struct topic *t, enum topic_quota_type type)
{
    struct topic_backlog_quota q = topic_backlog_quota(t, type);
    int64_t limit = topic_quota_limit(t, type);
    if (t->state != TOPIC_READY || !topic_quota_exceeded(t, type))
        return;
    const char *unit = type == TOPIC_QUOTA_AGE ? "s" : " bytes";
    if (q.policy == TOPIC_QUOTA_EVICTION) {
        if (type == TOPIC_QUOTA_STORAGE) {
            t->quota_evictions[type]++;
            topic_evict_backlog(t, limit);
        } else if (!t->expiring) {
            /* (Pulsar's dropBacklogForTimeLimit) every durable subscription acknowledges
             * what is older than the limit, as the TTL does */
            MG_INFO(MOD, "%s: backlog older than its quota (%" PRId64 "%s): expiring it",
                    t->name.full, limit, unit);
            t->expiring = true;
            if (topic_expire_messages(t, NULL, limit, topic_expiry_done, t) < 0)
                t->expiring = false;
            else
                t->quota_evictions[type]++;
        }
        return;
    }
    /* hold / exception: the connected producers are disconnected (they come back refused) */
    if (t->producers.count > 0)
        MG_INFO(MOD, "%s: backlog over its %s quota (%" PRId64 "%s): closing %zu producer(s)",
                t->name.full, type == TOPIC_QUOTA_AGE ? "message_age" : "destination_storage",
                limit, unit, (size_t)t->producers.count);
    topic_ref(t);
    topic_drop_producers(t, false);
    topic_unref(t);
}

static void topic_age_read_done(struct ml_entry *e, int status, void *data)
{
    struct topic *t = data; /* referenced */
    t->age_reading = false;
    if (status == 0 && e) {
        t->age_pos = e->pos;
        t->age_publish_ms = e->publish_time;
    }
    ml_entry_unref(e);
    if (status == 0 && t->reg)
        topic_apply_quota(t, TOPIC_QUOTA_AGE);
    topic_unref(t);
}

/* The age check: the publish time of the oldest unacknowledged message is known when that
 * position was read before; else one read of it (at most one in flight per topic). The age
 * is kept for the stats even without an age quota. */
static void topic_check_backlog_age(struct topic *t)
{
    struct ml_position oldest;
    if (!topic_oldest_unacked(t, &oldest)) {
        t->age_publish_ms = 0;
        return;
    }
    if (t->age_publish_ms != 0 && ml_pos_cmp(oldest, t->age_pos) == 0) {
        topic_apply_quota(t, TOPIC_QUOTA_AGE);
        return;
    }
    if (t->age_reading)
        return;
    t->age_reading = true;
    topic_ref(t);
    if (ml_get_entry(t->ml, oldest, topic_age_read_done, t) < 0) {
        t->age_reading = false;
        topic_unref(t);
    }
}

void topic_check_backlog_quota(struct topic *t)
{
    if (t->state != TOPIC_READY || !t->ml)
        return;
    topic_apply_quota(t, TOPIC_QUOTA_STORAGE);
    if (t->state == TOPIC_READY)
        topic_check_backlog_age(t);
}

int topic_sub_stats_next(struct topic *t, size_t *pos, struct topic_sub_stats *out)
{
    void *v;
    if (!mg_map_next(&t->subs, pos, NULL, NULL, &v))
        return 0;
    topic_sub_get_stats(v, out);
    return 1;
}

int topic_producer_stats_next(struct topic *t, size_t *pos, struct topic_producer_stats *out)
{
    void *v;
    if (!mg_map_next(&t->producers, pos, NULL, NULL, &v))
        return 0;
    const struct topic_producer *p = v;
    memset(out, 0, sizeof *out);
    out->name = p->name;
    out->mode = p->mode;
    out->id = p->id;
    out->msg_in_counter = p->msg_in;
    out->bytes_in_counter = p->bytes_in;
    out->msg_rate_in = p->rate_msg_in;
    out->throughput_in = p->rate_bytes_in;
    out->chunked_msg_rate = p->rate_chunks_in;
    out->connected_since_ms = p->connected_ms;
    return 1;
}

static double topic_rate_of(int64_t now, int64_t *prev, double secs)
{
    double r = secs > 0 ? (double)(now - *prev) / secs : 0.0;
    *prev = now;
    return r < 0 ? 0.0 : r;
}

void topic_registry_stats_update(struct topic_registry *r, uint64_t now_ms)
{
    size_t pos = 0;
    void *v;
    while (mg_map_next(&r->topics, &pos, NULL, NULL, &v)) {
        struct topic *t = v;
        if (t->state != TOPIC_READY)
            continue;
        double secs = now_ms > t->stats_ms ? (double)(now_ms - t->stats_ms) / 1000.0 : 0.0;
        t->stats_ms = now_ms;
        t->publish_limited = 0; /* Pulsar's publishRateLimitedTimes: per stats interval */
        t->rate_msg_in = topic_rate_of(t->msg_in, &t->prev_msg_in, secs);
        t->rate_bytes_in = topic_rate_of(t->bytes_in, &t->prev_bytes_in, secs);
        t->rate_entries_in = topic_rate_of(t->entries_in, &t->prev_entries_in, secs);
        t->rate_entries_out = topic_rate_of(t->entries_out, &t->prev_entries_out, secs);
        memcpy(t->lat_last, t->lat_cur, sizeof t->lat_last);
        memset(t->lat_cur, 0, sizeof t->lat_cur);
        t->lat_sum_last = t->lat_sum_cur;
        t->lat_sum_cur = 0;
        memcpy(t->size_last, t->size_cur, sizeof t->size_last);
        memset(t->size_cur, 0, sizeof t->size_cur);
        t->size_sum_last = t->size_sum_cur;
        t->size_sum_cur = 0;
        size_t pp = 0;
        while (mg_map_next(&t->producers, &pp, NULL, NULL, &v)) {
            struct topic_producer *p = v;
            p->rate_msg_in = topic_rate_of(p->msg_in, &p->prev_msg_in, secs);
            p->rate_bytes_in = topic_rate_of(p->bytes_in, &p->prev_bytes_in, secs);
            p->rate_chunks_in = topic_rate_of(p->chunks_in, &p->prev_chunks_in, secs);
        }
        pp = 0;
        while (mg_map_next(&t->subs, &pp, NULL, NULL, &v))
            topic_sub_stats_roll(v, secs);
    }
}

int topic_registry_publish_latency(struct topic_registry *r, double *out, int n, int64_t *count,
                                   double *sum_ms)
{
    int m = r->lat_n < n ? r->lat_n : n;
    for (int i = 0; i < m; i++)
        out[i] = r->lat_ring[(r->lat_head - 1 - i + TOPIC_LAT_RING) % TOPIC_LAT_RING];
    *count = r->lat_count;
    *sum_ms = r->lat_sum_ms;
    return m;
}

struct ml_cursor *topic_sub_cursor(struct topic *t, const char *sub)
{
    struct topic_sub *s = mg_map_get_str(&t->subs, sub);
    return s ? s->cursor : NULL;
}

void topic_registry_set_loaded_hook(struct topic_registry *r, topic_loaded_fn fn, void *arg)
{
    r->loaded_fn = fn;
    r->loaded_arg = arg;
}

int topic_admin_create_sub(struct topic *t, const char *sub, bool earliest)
{
    if (t->state != TOPIC_READY)
        return -MG_ECLOSED;
    if (topic_cursor_reserved(sub))
        return -MG_ENOTALLOWED;
    if (mg_map_get_str(&t->subs, sub) || ml_cursor_exists(t->ml, sub))
        return -MG_EEXIST;
    int err = 0;
    if (!topic_sub_new(t, sub, true, earliest ? ML_POS_EARLIEST : ML_POS_LATEST, &err))
        return err;
    return 0;
}

int topic_admin_delete_sub(struct topic *t, const char *sub, bool force)
{
    struct topic_sub *s = mg_map_get_str(&t->subs, sub);
    if (!s)
        return -MG_ENOSUB;
    if (s->n_consumers > 0 && !force)
        return -MG_ECONSUMERBUSY;
    topic_sub_destroy(s, true, true);
    return 0;
}

int topic_admin_skip(struct topic *t, const char *sub, int64_t n)
{
    struct topic_sub *s = mg_map_get_str(&t->subs, sub);
    if (!s)
        return -MG_ENOSUB;
    ml_cursor_skip(s->cursor, n);
    topic_sub_schedule(s);
    return 0;
}

int topic_admin_clear_backlog(struct topic *t, const char *sub)
{
    struct topic_sub *s = mg_map_get_str(&t->subs, sub);
    if (!s)
        return -MG_ENOSUB;
    ml_cursor_clear_backlog(s->cursor);
    topic_sub_schedule(s);
    return 0;
}

int topic_admin_reset_cursor(struct topic *t, const char *sub, struct ml_position pos)
{
    struct topic_sub *s = mg_map_get_str(&t->subs, sub);
    if (!s)
        return -MG_ENOSUB;
    topic_sub_reset_to(s, pos, true);
    return 0;
}

/* ---- limits ------------------------------------------------------------------------------ */

/* Store max in slot (limit l's namespace or topic override), resuming blocked consumers when
 * that raises the limit in force. */
static void topic_limit_put(struct topic *t, int64_t *slot, enum topic_limit l, int64_t max)
{
    int64_t was = topic_limit(t, l);
    *slot = max < 0 ? -1 : max;
    int64_t now = topic_limit(t, l);
    bool unacked = l == TOPIC_LIMIT_UNACKED_PER_CONSUMER || l == TOPIC_LIMIT_UNACKED_PER_SUB;
    if (!unacked || !(now == 0 || (was > 0 && now > was)))
        return;
    /* raised: consumers blocked at the old limit may take messages again */
    size_t pos = 0;
    void *v;
    while (mg_map_next(&t->subs, &pos, NULL, NULL, &v))
        topic_sub_schedule(v);
}

void topic_set_limit(struct topic *t, enum topic_limit l, int64_t max)
{
    topic_limit_put(t, &t->limit[l], l, max);
}

void topic_set_topic_limit(struct topic *t, enum topic_limit l, int64_t max)
{
    topic_limit_put(t, &t->topic_limit[l], l, max);
}

int64_t topic_limit(const struct topic *t, enum topic_limit l)
{
    if (t->topic_limit[l] >= 0)
        return t->topic_limit[l];
    if (t->limit[l] >= 0)
        return t->limit[l];
    return t->reg ? topic_registry_limit(t->reg, l) : 0;
}

int64_t topic_registry_limit(const struct topic_registry *r, enum topic_limit l)
{
    const struct topic_config *c = &r->cfg;
    switch (l) {
    case TOPIC_LIMIT_PRODUCERS:
        return c->max_producers_per_topic;
    case TOPIC_LIMIT_CONSUMERS:
        return c->max_consumers_per_topic;
    case TOPIC_LIMIT_CONSUMERS_PER_SUB:
        return c->max_consumers_per_subscription;
    case TOPIC_LIMIT_SUBSCRIPTIONS:
        return c->max_subscriptions_per_topic;
    case TOPIC_LIMIT_UNACKED_PER_CONSUMER:
        return c->max_unacked_per_consumer;
    case TOPIC_LIMIT_UNACKED_PER_SUB:
        return c->max_unacked_per_subscription;
    case TOPIC_LIMITS:
        break;
    }
    return 0;
}

int topic_limit_admit(struct topic *t, enum topic_limit l, int64_t have)
{
    int64_t max = topic_limit(t, l);
    if (max <= 0 || have < max)
        return 0;
    t->limit_refused = (int)l;
    return -1;
}

int topic_limit_refused(const struct topic *t)
{
    return t->limit_refused;
}

/* Pulsar's texts (AbstractTopic, the dispatchers, PersistentTopic) */
void topic_limit_message(const struct topic *t, enum topic_limit l, char *buf, size_t len)
{
    switch (l) {
    case TOPIC_LIMIT_PRODUCERS:
        snprintf(buf, len, "Topic reached max producers limit");
        break;
    case TOPIC_LIMIT_CONSUMERS:
        snprintf(buf, len, "Topic reached max consumers limit");
        break;
    case TOPIC_LIMIT_CONSUMERS_PER_SUB:
        snprintf(buf, len, "Subscription reached max consumers limit");
        break;
    case TOPIC_LIMIT_SUBSCRIPTIONS:
        snprintf(buf, len, "Exceed the maximum number of subscriptions of the topic: %s",
                 t->name.full);
        break;
    default:
        snprintf(buf, len, "Topic reached a limit");
        break;
    }
}

/* ---- message TTL ------------------------------------------------------------------------- */

void topic_set_message_ttl(struct topic *t, int64_t secs)
{
    t->ttl_secs = secs < 0 ? 0 : secs;
}

void topic_reset_message_ttl(struct topic *t)
{
    t->ttl_secs = -1;
}

int64_t topic_message_ttl(const struct topic *t)
{
    if (t->ttl_secs >= 0)
        return t->ttl_secs;
    return t->reg ? t->reg->cfg.ttl_default_secs : 0;
}

struct topic_expire {
    struct topic *t; /* referenced */
    char *sub;       /* owned; NULL = every durable subscription */
    topic_done_cb cb;
    void *data;
};

/* Acknowledge everything before pos (the first entry published at or after the cutoff) on
 * one subscription; never moves the mark-delete back. */
static void topic_expire_sub(struct topic_sub *s, struct ml_position pos)
{
    struct ml_position last = ml_prev_position(s->topic->ml, pos);
    if (last.entry < 0 || ml_pos_cmp(last, ml_cursor_mark_delete(s->cursor)) <= 0)
        return;
    int64_t before = ml_cursor_backlog(s->cursor);
    ml_cursor_ack_cumulative(s->cursor, last);
    int64_t after = ml_cursor_backlog(s->cursor);
    if (before > after)
        s->topic->msg_expired += before - after;
    topic_sub_schedule(s);
}

static void topic_expire_found(struct ml_position pos, int status, void *data)
{
    struct topic_expire *op = data;
    struct topic *t = op->t;
    if (status == 0 && t->state != TOPIC_READY)
        status = -MG_ECLOSED;
    if (status == 0) {
        if (op->sub) {
            struct topic_sub *s = mg_map_get_str(&t->subs, op->sub);
            if (s && !s->dead)
                topic_expire_sub(s, pos);
            else
                status = -MG_ENOSUB;
        } else {
            size_t it = 0;
            void *v;
            while (mg_map_next(&t->subs, &it, NULL, NULL, &v)) {
                struct topic_sub *s = v;
                if (s->durable && !s->dead)
                    topic_expire_sub(s, pos);
            }
        }
    }
    if (op->cb)
        op->cb(op->data, status);
    mg_free(op->sub);
    mg_free(op);
    topic_unref(t);
}

int topic_expire_messages(struct topic *t, const char *sub, int64_t secs, topic_done_cb cb,
                          void *data)
{
    if (t->state != TOPIC_READY || !t->ml)
        return -MG_ECLOSED;
    if (sub && !mg_map_get_str(&t->subs, sub))
        return -MG_ENOSUB;
    struct topic_expire *op = mg_calloc(1, sizeof *op);
    op->t = t;
    op->sub = sub ? mg_strdup(sub) : NULL;
    op->cb = cb;
    op->data = data;
    int64_t cutoff = mg_loop_wall_ms(t->loop) - (secs > 0 ? secs : 0) * 1000;
    /* The search starts at the slowest of those subscriptions: what is before it is
     * acknowledged by all of them already. */
    struct ml_position from = ML_POS_EARLIEST;
    bool any = false;
    size_t it = 0;
    void *v;
    while (mg_map_next(&t->subs, &it, NULL, NULL, &v)) {
        struct topic_sub *s = v;
        if (!s->cursor || s->dead || (sub ? strcmp(s->name, sub) != 0 : !s->durable))
            continue;
        struct ml_position p = ml_next_position(t->ml, ml_cursor_mark_delete(s->cursor));
        if (!any || ml_pos_cmp(p, from) < 0)
            from = p;
        any = true;
    }
    topic_ref(t);
    int rc = ml_find_by_time_from(t->ml, from, (uint64_t)(cutoff > 0 ? cutoff : 0),
                                  topic_expire_found, op);
    if (rc < 0) {
        topic_unref(t);
        mg_free(op->sub);
        mg_free(op);
    }
    return rc;
}
