/*
 * topic_dedup.c - message deduplication, as Pulsar's MessageDeduplication does it.
 *
 * Per producer name the topic keeps the highest sequence id it accepted ("pushed", set when a
 * message is handed to the managed ledger) and the highest it stored ("persisted", set when
 * the append completed); a batch counts with its highest id (highest_sequence_id when set,
 * else sequence_id, as the client sends it); of a chunked message only the last chunk is
 * checked and recorded (the chunks share the message's id). A message whose sequence_id is not
 * above "pushed" is not stored: when it is not above "persisted" either it is a duplicate (answered
 * in order with the receipt (-1, -1), as Pulsar does); otherwise its original is still being
 * written and the broker cannot tell yet (-MG_EDUPUNKNOWN, Pulsar's PersistenceError: the
 * client sends it again and then gets the duplicate receipt or a real one). A failed write
 * sets every "pushed" back to "persisted".
 *
 * Persistence: every dedup_entries_interval stored entries the "persisted" ids become the
 * mark-delete properties of the durable cursor TOPIC_DEDUP_CURSOR, its mark-delete moving to
 * the entry just stored (the snapshot). Enabling (at topic load or by policy) opens that
 * cursor, takes its properties and replays every entry after its mark-delete, 100 per loop
 * turn, reading each entry's producer_name and sequence ids; a topic that loads with
 * deduplication on answers its first waiters only once that is done, so no producer attaches
 * before the state is whole (after a crash, or on the broker the topic moved to). Disabling
 * deletes the cursor and forgets the state.
 *
 * Bounds: at most dedup_max_producers names are kept: a new one beyond that makes the name
 * inactive longest go first (names of connected producers are never dropped); a registry
 * timer (every dedup_inactivity_ms / 3) forgets names without a connected producer for
 * dedup_inactivity_ms, at most DEDUP_PURGE_BUDGET per turn.
 */
#include "topic/topic_int.h"
#include "util/alloc.h"
#include "util/err.h"
#include "util/log.h"
#include "wire/wire.h"

#include <event2/buffer.h>
#include <inttypes.h>
#include <string.h>

#define MOD "topic"
#define DEDUP_REPLAY_BATCH 100            /* entries per read of the rebuild (Pulsar's) */
#define DEDUP_REPLAY_BYTES (8u << 20)     /* and about this many bytes */
#define DEDUP_PURGE_BUDGET 10000          /* names forgotten per timer turn, all topics */
#define DEDUP_DEFAULT_MAX_PRODUCERS 10000 /* brokerDeduplicationMaxNumberOfProducers */
#define DEDUP_DEFAULT_INTERVAL 1000       /* brokerDeduplicationEntriesInterval */

static const char *const dedup_status_names[] = {"Disabled", "Recovering", "Enabled", "Removing",
                                                 "Failed"};

static void topic_dedup_apply(struct topic *t);

static int32_t topic_dedup_max_producers(const struct topic *t)
{
    int32_t v = t->reg ? t->reg->cfg.dedup_max_producers : 0;
    return v > 0 ? v : DEDUP_DEFAULT_MAX_PRODUCERS;
}

static int32_t topic_dedup_interval(const struct topic *t)
{
    int32_t v = t->reg ? t->reg->cfg.dedup_entries_interval : 0;
    return v > 0 ? v : DEDUP_DEFAULT_INTERVAL;
}

/* Topic policy -> namespace policy -> broker default; persistent topics only. */
static bool topic_dedup_wanted(const struct topic *t)
{
    if (!t->name.persistent)
        return false;
    if (t->dedup.topic_policy >= 0)
        return t->dedup.topic_policy == 1;
    if (t->dedup.policy >= 0)
        return t->dedup.policy == 1;
    return t->reg && t->reg->cfg.dedup_enabled;
}

void topic_dedup_init(struct topic *t)
{
    struct topic_dedup *d = &t->dedup;
    mg_map_init(&d->prods);
    TAILQ_INIT(&d->inactive);
    d->policy = -1;
    d->topic_policy = -1;
}

static void topic_dedup_forget(struct topic_dedup *d, struct dedup_prod *dp)
{
    if (dp->active == 0)
        TAILQ_REMOVE(&d->inactive, dp, link);
    mg_map_del_str(&d->prods, dp->name);
    mg_free(dp);
}

static void topic_dedup_clear(struct topic_dedup *d)
{
    mg_map_fini_free(&d->prods, mg_free);
    mg_map_init(&d->prods);
    TAILQ_INIT(&d->inactive);
}

void topic_dedup_fini(struct topic *t)
{
    mg_map_fini_free(&t->dedup.prods, mg_free);
}

/* The record of name; made when missing and create (beyond the bound, the name inactive
 * longest is forgotten first). A new record is inactive from now on. */
static struct dedup_prod *topic_dedup_get(struct topic *t, const char *name, bool create)
{
    struct topic_dedup *d = &t->dedup;
    struct dedup_prod *dp = mg_map_get_str(&d->prods, name);
    if (dp || !create)
        return dp;
    if (d->prods.count >= (size_t)topic_dedup_max_producers(t) && !TAILQ_EMPTY(&d->inactive))
        topic_dedup_forget(d, TAILQ_FIRST(&d->inactive));
    size_t n = strlen(name);
    dp = mg_calloc(1, sizeof *dp + n + 1);
    memcpy(dp->name, name, n + 1);
    dp->inactive_since_ms = mg_loop_mono_ms(t->loop);
    TAILQ_INSERT_TAIL(&d->inactive, dp, link);
    mg_map_put_str(&d->prods, dp->name, dp);
    return dp;
}

/* Both ids of name known to be stored (snapshot, replay). */
static void topic_dedup_learn(struct topic *t, const char *name, int64_t seq)
{
    struct dedup_prod *dp = topic_dedup_get(t, name, true);
    dp->pushed = dp->persisted = seq;
    dp->has_pushed = dp->has_persisted = true;
}

static void topic_dedup_mark_active(struct topic_dedup *d, struct dedup_prod *dp)
{
    if (dp->active++ == 0)
        TAILQ_REMOVE(&d->inactive, dp, link);
}

void topic_dedup_producer_added(struct topic *t, const char *name)
{
    struct topic_dedup *d = &t->dedup;
    if (d->status == TOPIC_DEDUP_ENABLED || d->status == TOPIC_DEDUP_RECOVERING)
        topic_dedup_mark_active(d, topic_dedup_get(t, name, true));
}

void topic_dedup_producer_removed(struct topic *t, const char *name)
{
    struct topic_dedup *d = &t->dedup;
    struct dedup_prod *dp = topic_dedup_get(t, name, false);
    if (!dp || dp->active == 0)
        return;
    if (--dp->active == 0) {
        dp->inactive_since_ms = mg_loop_mono_ms(t->loop);
        TAILQ_INSERT_TAIL(&d->inactive, dp, link);
    }
}

int topic_dedup_check(struct topic *t, const char *name, int64_t seq, int64_t highest)
{
    if (t->dedup.status != TOPIC_DEDUP_ENABLED)
        return 0;
    struct dedup_prod *dp = topic_dedup_get(t, name, true);
    if (dp->has_pushed && seq <= dp->pushed) {
        if (dp->has_persisted && seq <= dp->persisted)
            return 1;
        return -MG_EDUPUNKNOWN;
    }
    dp->has_pushed = true;
    dp->pushed = highest > seq ? highest : seq;
    return 0;
}

int64_t topic_dedup_last_pushed(const struct topic *t, const char *name)
{
    const struct dedup_prod *dp = mg_map_get_str(&t->dedup.prods, name);
    return dp && dp->has_pushed ? dp->pushed : -1;
}

/* The snapshot: the stored ids as the cursor's properties, its mark-delete at pos. */
static void topic_dedup_snapshot(struct topic *t, struct ml_position pos)
{
    struct topic_dedup *d = &t->dedup;
    if (!d->cursor)
        return;
    size_t cap = d->prods.count, n = 0, max = (size_t)topic_dedup_max_producers(t);
    struct ml_cursor_prop *props = mg_calloc(cap ? cap : 1, sizeof *props);
    size_t it = 0;
    void *v;
    while (n < cap && n < max && mg_map_next(&d->prods, &it, NULL, NULL, &v)) {
        const struct dedup_prod *dp = v;
        if (dp->has_persisted)
            props[n++] = (struct ml_cursor_prop){dp->name, dp->persisted};
    }
    ml_cursor_mark_delete_props(d->cursor, pos, props, (int)n);
    mg_free(props);
}

bool topic_dedup_skips_chunk(int32_t chunk_id, int32_t num_chunks)
{
    return num_chunks > 1 && chunk_id != num_chunks - 1;
}

void topic_dedup_persisted(struct topic *t, const char *name, int64_t highest,
                           struct ml_position pos)
{
    struct topic_dedup *d = &t->dedup;
    if (d->status != TOPIC_DEDUP_ENABLED)
        return;
    if (name) {
        struct dedup_prod *dp = topic_dedup_get(t, name, true);
        dp->persisted = highest;
        dp->has_persisted = true;
    }
    if (++d->since_snapshot >= topic_dedup_interval(t)) {
        d->since_snapshot = 0;
        topic_dedup_snapshot(t, pos);
    }
}

void topic_dedup_write_failed(struct topic *t)
{
    size_t it = 0;
    void *v;
    while (mg_map_next(&t->dedup.prods, &it, NULL, NULL, &v)) {
        struct dedup_prod *dp = v;
        dp->pushed = dp->persisted;
        dp->has_pushed = dp->has_persisted;
    }
}

/* ---- enabling: the rebuild from the snapshot cursor ---------------------------------------- */

static void topic_dedup_recovered(struct topic *t, int status)
{
    struct topic_dedup *d = &t->dedup;
    if (status < 0) {
        /* Loading: the topic is not served without its state (clients look it up again);
         * enabled later: Pulsar's Failed status (messages are not checked), logged. */
        MG_WARN(MOD, "%s: deduplication state not rebuilt from cursor %s: %s%s", t->name.full,
                TOPIC_DEDUP_CURSOR, mg_strerror(status),
                d->hold_waiters ? "; unloading the topic" : "; deduplication is off");
        d->status = TOPIC_DEDUP_FAILED;
        if (d->cursor) { /* closed, not deleted: its snapshot stays for the next try */
            ml_cursor_close(d->cursor);
            d->cursor = NULL;
        }
        topic_dedup_clear(d);
        if (d->hold_waiters) {
            d->hold_waiters = false;
            topic_unload(t); /* the caller holds a reference */
        }
        return;
    }
    d->status = TOPIC_DEDUP_ENABLED;
    /* producers that attached before the rebuild began are connected */
    size_t it = 0;
    void *v;
    while (mg_map_next(&t->producers, &it, NULL, NULL, &v)) {
        struct dedup_prod *dp = topic_dedup_get(t, ((struct topic_producer *)v)->name, true);
        if (dp->active == 0)
            topic_dedup_mark_active(d, dp);
    }
    MG_INFO(MOD, "%s: deduplication enabled (%zu producer names)", t->name.full,
            (size_t)d->prods.count);
    if (d->hold_waiters) {
        d->hold_waiters = false;
        topic_loaded_notify(t);
    }
    if (t->state == TOPIC_READY)
        topic_dedup_apply(t); /* the policy may have changed meanwhile */
}

static void topic_dedup_replay(struct topic *t);

static void topic_dedup_read_cb(struct ml_read_req *req, int status)
{
    struct topic *t = req->data; /* referenced by the read */
    struct topic_dedup *d = &t->dedup;
    d->reading = false;
    if (status == 0) {
        for (int i = 0; i < req->n; i++) {
            Pulsar__Proto__MessageMetadata *md = wire_entry_metadata(req->entries[i]->data);
            if (md && md->producer_name && *md->producer_name &&
                !topic_dedup_skips_chunk(md->has_chunk_id ? md->chunk_id : 0,
                                         md->has_num_chunks_from_msg ? md->num_chunks_from_msg
                                                                     : 0)) {
                int64_t seq = (int64_t)md->sequence_id;
                if (md->has_highest_sequence_id && (int64_t)md->highest_sequence_id > seq)
                    seq = (int64_t)md->highest_sequence_id;
                topic_dedup_learn(t, md->producer_name, seq);
            }
            if (md)
                pulsar__proto__message_metadata__free_unpacked(md, NULL);
            ml_entry_unref(req->entries[i]);
        }
        mg_free(req->entries);
    }
    if (t->state == TOPIC_READY && d->status == TOPIC_DEDUP_RECOVERING && d->cursor) {
        if (status < 0)
            topic_dedup_recovered(t, status);
        else
            topic_dedup_replay(t);
    }
    topic_unref(t);
}

/* Read the next batch after the snapshot, or finish when nothing is left (one batch per
 * loop turn: the read completes from the loop). */
static void topic_dedup_replay(struct topic *t)
{
    struct topic_dedup *d = &t->dedup;
    if (!ml_cursor_has_more(d->cursor)) {
        topic_dedup_recovered(t, 0);
        return;
    }
    memset(&d->rreq, 0, sizeof d->rreq);
    d->rreq.data = t;
    topic_ref(t);
    d->reading = true;
    int rc = ml_cursor_read(d->cursor, DEDUP_REPLAY_BATCH, DEDUP_REPLAY_BYTES, &d->rreq,
                            topic_dedup_read_cb);
    if (rc < 0) {
        d->reading = false;
        topic_unref(t); /* the registry's reference is still held */
        topic_dedup_recovered(t, rc);
    }
}

static void topic_dedup_enable(struct topic *t)
{
    struct topic_dedup *d = &t->dedup;
    int err = 0;
    d->cursor = ml_cursor_open(t->ml, TOPIC_DEDUP_CURSOR, true, ML_POS_LATEST, &err);
    if (!d->cursor) {
        topic_dedup_recovered(t, err ? err : -MG_EIO);
        return;
    }
    topic_dedup_clear(d);
    d->since_snapshot = 0;
    d->status = TOPIC_DEDUP_RECOVERING;
    const struct ml_cursor_prop *props;
    int n = ml_cursor_props(d->cursor, &props);
    for (int i = 0; i < n; i++)
        topic_dedup_learn(t, props[i].name, props[i].value);
    MG_INFO(MOD,
            "%s: rebuilding the deduplication state: %d producer names in the snapshot, %" PRId64
            " entries after it",
            t->name.full, n, ml_cursor_backlog(d->cursor));
    topic_dedup_replay(t);
}

static void topic_dedup_disable(struct topic *t)
{
    struct topic_dedup *d = &t->dedup;
    if (d->cursor)
        ml_cursor_delete(d->cursor);
    d->cursor = NULL;
    topic_dedup_clear(d);
    d->since_snapshot = 0;
    d->status = TOPIC_DEDUP_DISABLED;
    MG_INFO(MOD, "%s: deduplication disabled", t->name.full);
}

/* Bring the state in line with the policy (Pulsar's checkStatus). */
static void topic_dedup_apply(struct topic *t)
{
    struct topic_dedup *d = &t->dedup;
    if (!d->started || t->state != TOPIC_READY || !t->ml)
        return;
    bool want = topic_dedup_wanted(t);
    if (d->status == TOPIC_DEDUP_ENABLED && !want)
        topic_dedup_disable(t);
    else if ((d->status == TOPIC_DEDUP_DISABLED || d->status == TOPIC_DEDUP_FAILED) && want)
        topic_dedup_enable(t);
}

/* The state at load, as the policies say: true when the waiters wait (a rebuild). */
static bool topic_dedup_start(struct topic *t)
{
    struct topic_dedup *d = &t->dedup;
    if (!topic_dedup_wanted(t)) {
        if (ml_cursor_exists(t->ml, TOPIC_DEDUP_CURSOR)) {
            /* on before, off now: the snapshot goes, as when it is disabled */
            d->cursor = ml_cursor_open(t->ml, TOPIC_DEDUP_CURSOR, true, ML_POS_LATEST, NULL);
            topic_dedup_disable(t);
        }
        return false;
    }
    d->hold_waiters = true;
    topic_ref(t);
    topic_dedup_enable(t);
    /* still rebuilding, or the rebuild failed and closed the topic (its waiters ran) */
    bool handled = t->state != TOPIC_READY || d->hold_waiters;
    topic_unref(t);
    return handled;
}

bool topic_dedup_load(struct topic *t)
{
    struct topic_dedup *d = &t->dedup;
    d->started = true;
    if (d->topic_policy_pending) { /* topic_set_topic_deduplication starts it */
        d->hold_waiters = true;
        return true;
    }
    return topic_dedup_start(t);
}

void topic_dedup_close(struct topic *t, bool delete)
{
    struct topic_dedup *d = &t->dedup;
    if (!d->cursor)
        return;
    if (delete)
        ml_cursor_delete(d->cursor);
    else
        ml_cursor_close(d->cursor); /* a rebuild's read completes with -MG_ECANCELED */
    d->cursor = NULL;
}

void topic_set_deduplication(struct topic *t, int enabled)
{
    t->dedup.policy = enabled < 0 ? -1 : enabled ? 1 : 0;
    topic_dedup_apply(t);
}

void topic_set_topic_deduplication(struct topic *t, int enabled)
{
    struct topic_dedup *d = &t->dedup;
    d->topic_policy = enabled < 0 ? -1 : enabled ? 1 : 0;
    if (!d->topic_policy_pending) {
        topic_dedup_apply(t);
        return;
    }
    d->topic_policy_pending = false;
    if (!d->started || t->state != TOPIC_READY)
        return; /* topic_dedup_load takes it */
    topic_ref(t);
    if (!topic_dedup_start(t) && t->state == TOPIC_READY && d->hold_waiters) {
        d->hold_waiters = false; /* no rebuild: the first waiters go on now */
        topic_loaded_notify(t);
    }
    topic_unref(t);
}

void topic_hold_topic_policy(struct topic *t)
{
    if (!t->dedup.started)
        t->dedup.topic_policy_pending = true;
}

const char *topic_dedup_status(const struct topic *t)
{
    return dedup_status_names[t->dedup.status];
}

/* ---- inactive producers -------------------------------------------------------------------- */

static void topic_dedup_purge_tmr_cb(struct mg_timer *tmr, void *arg)
{
    struct topic_registry *r = arg;
    uint64_t timeout = (uint64_t)r->cfg.dedup_inactivity_ms;
    uint64_t now = mg_loop_mono_ms(r->loop);
    int budget = DEDUP_PURGE_BUDGET;
    size_t pos = 0;
    struct topic *t;
    while (budget > 0 && (t = topic_next(r, &pos))) {
        struct topic_dedup *d = &t->dedup;
        struct dedup_prod *dp;
        while (budget > 0 && (dp = TAILQ_FIRST(&d->inactive)) &&
               dp->inactive_since_ms + timeout <= now) {
            topic_dedup_forget(d, dp);
            budget--;
        }
    }
    /* out of budget: go on at the next turn (topics done so far cost one look each) */
    uint64_t period = timeout / 3 > 0 ? timeout / 3 : 1;
    mg_timer_start(tmr, budget > 0 ? period : 1);
}

void topic_dedup_registry_start(struct topic_registry *r)
{
    mg_timer_init(&r->dedup_tmr, r->loop, topic_dedup_purge_tmr_cb, r);
    if (r->cfg.dedup_inactivity_ms > 0) {
        uint64_t period = (uint64_t)r->cfg.dedup_inactivity_ms / 3;
        mg_timer_start(&r->dedup_tmr, period > 0 ? period : 1);
    }
}
