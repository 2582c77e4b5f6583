/*
 * topic_sub.c - subscriptions, consumers and the dispatcher (docs/wire-pulsar.md §5.4, §6).
 *
 * Each subscription owns one ml_cursor and one dispatcher. The dispatcher runs from a
 * per-subscription event (FLOW, acks, consumer changes and read completions schedule
 * it), so callbacks into connections never recurse into the caller's stack:
 *   1. pending ACTIVE_CONSUMER_CHANGE notifications go out;
 *   2. entries already read ("ready") are handed to consumers by the type's rule;
 *   3. when nothing is ready and some eligible consumer has permits, one read is issued:
 *      replays (positions waiting for redelivery) first, else new entries; never more
 *      entries than the eligible permits and dispatch_max_read_batch allow.
 * A consumer is eligible when it has permits > 0, is below maxUnacked, and its connection
 * is below the outbound watermark. An entry costs its unacked message count.
 *
 * Exclusive/Failover deliver in cursor order to the one active consumer and redeliver by
 * rewinding the cursor (with a read epoch that drops stale reads); Shared round-robins
 * with priority levels, except that the chunks of one chunked message all go to the consumer
 * that got its first one (the client reassembles them; Pulsar spreads them, which breaks
 * that); Key_Shared routes by entry key hash (AUTO_SPLIT ring or STICKY
 * ranges) and parks entries whose consumer cannot take them in the replay set, keyed so
 * later entries of the same key wait behind them.
 *
 * Failure modes: read errors back off 100 ms and retry; closing a consumer returns its
 * unacked entries to the subscription; destroying a subscription orphans its in-flight
 * read and seek, whose callbacks then only clean up.
 */
#include "topic/topic_int.h"
#include "util/alloc.h"
#include "util/err.h"
#include "util/log.h"
#include "util/loop.h"
#include "util/ratelimit.h"

#include <inttypes.h>
#include <limits.h>
#include <stdlib.h>
#include <string.h>

#define MOD "topic"
#define RING_POINTS 100
#define READ_MAX_BYTES ((size_t)64 << 20)
/* Chunk runs pinned at once per Shared subscription: a run whose last chunk never comes
 * (a producer that died, bad input) stays pinned until its consumer leaves; at the bound
 * new runs go unpinned, round robin like any entry. */
#define CHUNK_RUNS_MAX 4096
/* topic_sub.chunk_runs value of a run some of whose chunks went back to the replay set. */
static char chunk_returned;
#define CHUNK_RETURNED ((void *)&chunk_returned)

struct sub_read {
    struct ml_read_req req;
    struct topic_sub *s; /* borrowed; NULL once the subscription is gone */
    uint64_t epoch;
    bool replay;
    struct sub_replay *taken; /* owned: replay positions this read took */
    int n_taken;
};

struct sub_seek {
    struct topic_sub *s; /* borrowed; NULL once the subscription is gone */
    struct event *ev;    /* owned (by id) */
    struct ml_position pos;
    topic_done_cb cb;
    void *data;
};

struct sub_lastid {
    struct event *ev; /* owned (empty topic) */
    struct ml_position last, mark_delete;
    topic_last_id_cb cb;
    void *data;
};

static void topic_sub_run(struct topic_sub *s);

static const struct topic_config *topic_sub_cfg(const struct topic_sub *s)
{
    return &s->topic->reg->cfg;
}

static bool topic_sub_single_active(const struct topic_sub *s)
{
    return s->type == TOPIC_SUB_EXCLUSIVE || s->type == TOPIC_SUB_FAILOVER;
}

/* ---- refcounts ------------------------------------------------------------------------ */

/* Iterate a map keyed by position (a consumer's pending entries, the redeliveries):
 * *it = 0 first; false at the end. */
static bool topic_sub_next_pos(const struct mg_map *m, size_t *it, struct ml_position *pos,
                               void **v)
{
    const char *k;
    if (!mg_map_next(m, it, &k, NULL, v))
        return false;
    memcpy(pos, k, sizeof *pos);
    return true;
}

static void topic_consumer_free(struct topic_consumer *c)
{
    mg_map_fini_free(&c->pending, mg_free);
    mg_free(c->ranges);
    mg_free(c->name);
    mg_free(c);
}

static void topic_consumer_unref(struct topic_consumer *c)
{
    MG_ASSERT(c->refs > 0);
    if (--c->refs == 0)
        topic_consumer_free(c);
}

static void topic_sub_drop_ready(struct topic_sub *s)
{
    for (int i = s->ready_head; i < s->ready_n; i++)
        ml_entry_unref(s->ready[i]);
    mg_free(s->ready);
    s->ready = NULL;
    s->ready_n = s->ready_head = 0;
}

static void topic_sub_free(struct topic_sub *s)
{
    topic_sub_drop_ready(s);
    mg_free(s->consumers);
    mg_free(s->ring);
    mg_free(s->replay);
    mg_map_fini(&s->stuck);
    mg_map_fini(&s->chunk_runs);
    mg_map_fini(&s->redeliveries);
    mg_event_free(s->ev_dispatch);
    mg_timer_fini(&s->failover_timer);
    mg_timer_fini(&s->retry_timer);
    topic_delay_fini(s);
    mg_free(s->name);
    topic_unref(s->topic);
    mg_free(s);
}

static void topic_sub_ref(struct topic_sub *s)
{
    s->refs++;
}

static void topic_sub_unref(struct topic_sub *s)
{
    MG_ASSERT(s->refs > 0);
    if (--s->refs == 0)
        topic_sub_free(s);
}

void topic_sub_schedule(struct topic_sub *s)
{
    if (!s->dead)
        event_active(s->ev_dispatch, EV_READ, 0);
}

/* ---- redelivery counts, replay set ------------------------------------------------------ */

static uint32_t topic_sub_redelivery_get(const struct topic_sub *s, struct ml_position pos)
{
    return (uint32_t)(uintptr_t)mg_map_get(&s->redeliveries, &pos, sizeof pos);
}

static void topic_sub_redelivery_inc(struct topic_sub *s, struct ml_position pos)
{
    uintptr_t v = (uintptr_t)mg_map_get(&s->redeliveries, &pos, sizeof pos);
    mg_map_put(&s->redeliveries, &pos, sizeof pos, (void *)(v + 1));
}

static void topic_sub_stuck_add(struct topic_sub *s, uint32_t hash, int d)
{
    if (s->type != TOPIC_SUB_KEY_SHARED)
        return;
    uintptr_t v = (uintptr_t)mg_map_get_u64(&s->stuck, hash);
    v = (uintptr_t)((intptr_t)v + d);
    if (v == 0)
        mg_map_del_u64(&s->stuck, hash);
    else
        mg_map_put_u64(&s->stuck, hash, (void *)v);
}

/* Index of the first element >= pos. */
static int topic_sub_replay_find(const struct topic_sub *s, struct ml_position pos)
{
    int lo = 0, hi = s->n_replay;
    while (lo < hi) {
        int mid = (lo + hi) / 2;
        if (ml_pos_cmp(s->replay[mid].pos, pos) < 0)
            lo = mid + 1;
        else
            hi = mid;
    }
    return lo;
}

void topic_sub_replay_add(struct topic_sub *s, struct ml_position pos, uint32_t hash)
{
    int i = topic_sub_replay_find(s, pos);
    if (i < s->n_replay && ml_pos_cmp(s->replay[i].pos, pos) == 0)
        return;
    if (s->n_replay == s->cap_replay) {
        s->cap_replay = s->cap_replay ? s->cap_replay * 2 : 16;
        s->replay = mg_realloc(s->replay, (size_t)s->cap_replay * sizeof *s->replay);
    }
    memmove(&s->replay[i + 1], &s->replay[i], (size_t)(s->n_replay - i) * sizeof *s->replay);
    s->replay[i].pos = pos;
    s->replay[i].key_hash = hash;
    s->n_replay++;
    topic_sub_stuck_add(s, hash, 1);
}

static void topic_sub_replay_del_at(struct topic_sub *s, int i)
{
    topic_sub_stuck_add(s, s->replay[i].key_hash, -1);
    memmove(&s->replay[i], &s->replay[i + 1], (size_t)(s->n_replay - i - 1) * sizeof *s->replay);
    s->n_replay--;
}

static void topic_sub_replay_del(struct topic_sub *s, struct ml_position pos)
{
    int i = topic_sub_replay_find(s, pos);
    if (i < s->n_replay && ml_pos_cmp(s->replay[i].pos, pos) == 0)
        topic_sub_replay_del_at(s, i);
}

/* A chunk went back to the subscription (its consumer left or asked for it again): until
 * the replay set gives the run out again, its later chunks join it there, so the run is
 * redelivered whole and in order (topic_sub_chunk_parked). */
static void topic_sub_chunk_returned(struct topic_sub *s, uint32_t chunk_key)
{
    if (chunk_key && s->type == TOPIC_SUB_SHARED &&
        (mg_map_get_u64(&s->chunk_runs, chunk_key) || s->chunk_runs.count < CHUNK_RUNS_MAX))
        mg_map_put_u64(&s->chunk_runs, chunk_key, CHUNK_RETURNED);
}

static void topic_sub_replay_clear(struct topic_sub *s)
{
    s->n_replay = 0;
    mg_map_fini(&s->stuck);
    mg_map_init(&s->stuck);
    mg_map_fini(&s->chunk_runs);
    mg_map_init(&s->chunk_runs);
}

/* ---- consumer pending --------------------------------------------------------------------- */

static void topic_sub_pending_drop(struct topic_sub *s, struct topic_consumer *c,
                                   struct ml_position pos)
{
    struct sub_pending *sp = mg_map_del(&c->pending, &pos, sizeof pos);
    if (sp) {
        c->unacked -= sp->msgs;
        s->unacked -= sp->msgs;
        mg_free(sp);
    }
}

/* Move every pending entry of c back to the subscription: the replay set (to_replay) or
 * just forgotten (a rewind re-reads them); each counts one more redelivery. */
static void topic_sub_pending_return_all(struct topic_sub *s, struct topic_consumer *c,
                                         bool to_replay)
{
    size_t it = 0;
    struct ml_position pos;
    void *v;
    while (topic_sub_next_pos(&c->pending, &it, &pos, &v)) {
        struct sub_pending *sp = v;
        topic_sub_redelivery_inc(s, pos);
        if (to_replay) {
            topic_sub_replay_add(s, pos, sp->key_hash);
            topic_sub_chunk_returned(s, sp->chunk_key);
        }
        c->unacked -= sp->msgs;
        s->unacked -= sp->msgs;
        mg_map_del(&c->pending, &pos, sizeof pos);
        mg_free(sp);
    }
}

/* ---- reads ------------------------------------------------------------------------------- */

/* Drop what was read ahead and restart reading from the first unacked entry: every
 * consumer's pending entries count one more redelivery. */
static void topic_sub_rewind_all(struct topic_sub *s)
{
    for (int i = 0; i < s->n_consumers; i++)
        topic_sub_pending_return_all(s, s->consumers[i], false);
    s->epoch++;
    topic_sub_drop_ready(s);
    topic_sub_replay_clear(s);
    if (s->read)
        ml_cursor_cancel_read(s->cursor);
    ml_cursor_rewind(s->cursor);
}

static void topic_sub_read_done(struct ml_read_req *req, int status)
{
    struct sub_read *r = req->data;
    struct topic_sub *s = r->s;
    bool stale = !s || r->epoch != s->epoch || status != 0;
    if (s && s->read == r)
        s->read = NULL;
    if (stale) {
        if (status == 0) {
            for (int i = 0; i < req->n; i++)
                ml_entry_unref(req->entries[i]);
            mg_free(req->entries);
        }
        if (s && r->epoch == s->epoch && r->replay)
            for (int i = 0; i < r->n_taken; i++)
                topic_sub_replay_add(s, r->taken[i].pos, r->taken[i].key_hash);
        if (s && status < 0 && status != -MG_ECANCELED && !s->dead) {
            uint64_t held;
            if (mg_ratelimit_allow(&s->rl_read, MG_RATELIMIT_INTERVAL_MS, &held))
                MG_WARN(MOD,
                        "%s/%s: read failed: %s; retrying (%" PRIu64 " more since the last line)",
                        s->topic->name.full, s->name, mg_strerror(status), held);
            mg_timer_start(&s->retry_timer, 100);
        } else if (s) {
            topic_sub_schedule(s);
        }
        mg_free(r->taken);
        mg_free(r);
        return;
    }
    MG_ASSERT(s->ready_head == s->ready_n);
    topic_sub_drop_ready(s);
    s->ready = req->entries;
    s->ready_n = req->n;
    s->ready_head = 0;
    s->ready_is_replay = r->replay;
    if (!s->ready) {
        s->ready_n = 0;
    }
    mg_free(r->taken);
    mg_free(r);
    topic_sub_ref(s);
    topic_sub_run(s);
    topic_sub_unref(s);
}

static void topic_sub_retry_cb(struct mg_timer *tm, void *arg)
{
    (void)tm;
    topic_sub_schedule(arg);
}

/* ---- consumer choice ------------------------------------------------------------------ */

/* maxUnackedMessagesPerConsumer and ...PerSubscription, as Pulsar's Consumer and
 * multiple-consumer dispatchers: Shared and Key_Shared only; a consumer is blocked at
 * unacked >= max until acks bring it to max/2 or less (blockedConsumerOnUnackedMsgs), a
 * subscription at >= max until below max/2 (blockedSubscriptionOnUnackedMsgs). Evaluated
 * where dispatch asks, so every change of unacked or of the limit is seen there. */
static bool topic_unacked_blocked(const struct topic_sub *s, bool *blocked, int64_t unacked,
                                  int64_t max, bool sub)
{
    if (max <= 0 || (s->type != TOPIC_SUB_SHARED && s->type != TOPIC_SUB_KEY_SHARED))
        *blocked = false;
    else if (!*blocked)
        *blocked = unacked >= max;
    else
        *blocked = sub ? unacked >= max / 2 : unacked > max / 2;
    return *blocked;
}

static bool topic_consumer_unacked_blocked(struct topic_consumer *c)
{
    return topic_unacked_blocked(c->sub, &c->unacked_blocked, c->unacked,
                                 topic_limit(c->sub->topic, TOPIC_LIMIT_UNACKED_PER_CONSUMER),
                                 false);
}

static bool topic_sub_unacked_blocked(struct topic_sub *s)
{
    return topic_unacked_blocked(s, &s->unacked_blocked, s->unacked,
                                 topic_limit(s->topic, TOPIC_LIMIT_UNACKED_PER_SUB), true);
}

static bool topic_consumer_eligible(struct topic_sub *s, struct topic_consumer *c)
{
    if (c->dead || c->permits <= 0 || c->paused)
        return false;
    const struct topic_config *cfg = topic_sub_cfg(s);
    if (topic_consumer_unacked_blocked(c) || topic_sub_unacked_blocked(s))
        return false;
    if (cfg->consumer_outbound_high_water > 0 && c->ops->outbound_bytes &&
        c->ops->outbound_bytes(c->owner) > cfg->consumer_outbound_high_water) {
        c->paused = true;
        return false;
    }
    return true;
}

static int topic_sub_cmp_failover(const void *a, const void *b)
{
    const struct topic_consumer *x = *(struct topic_consumer *const *)a;
    const struct topic_consumer *y = *(struct topic_consumer *const *)b;
    if (x->priority != y->priority)
        return x->priority < y->priority ? -1 : 1;
    int c = strcmp(x->name, y->name);
    if (c)
        return c;
    return x->id < y->id ? -1 : x->id > y->id;
}

static struct topic_consumer *topic_sub_choose_active(struct topic_sub *s)
{
    if (s->n_consumers == 0)
        return NULL;
    if (s->type == TOPIC_SUB_EXCLUSIVE)
        return s->consumers[0];
    if (s->partition_index >= 0) {
        struct topic_consumer **v = mg_malloc((size_t)s->n_consumers * sizeof *v);
        memcpy(v, s->consumers, (size_t)s->n_consumers * sizeof *v);
        qsort(v, (size_t)s->n_consumers, sizeof *v, topic_sub_cmp_failover);
        int top = 1;
        while (top < s->n_consumers && v[top]->priority == v[0]->priority)
            top++;
        struct topic_consumer *c = v[s->partition_index % top];
        mg_free(v);
        return c;
    }
    /* Not partitioned: the active consumer stays until it leaves; then the highest
     * priority, earliest connected one takes over. */
    for (int i = 0; i < s->n_consumers; i++)
        if (s->consumers[i] == s->active)
            return s->active;
    struct topic_consumer *best = s->consumers[0];
    for (int i = 1; i < s->n_consumers; i++)
        if (s->consumers[i]->priority < best->priority)
            best = s->consumers[i];
    return best;
}

static void topic_sub_failover_cb(struct mg_timer *tm, void *arg)
{
    (void)tm;
    struct topic_sub *s = arg;
    s->failover_wait = false;
    topic_sub_schedule(s);
}

/* Re-pick the active consumer of an Exclusive/Failover subscription. Call with the
 * previous active consumer still readable (it may be dead). */
static void topic_sub_update_active(struct topic_sub *s)
{
    struct topic_consumer *nc = topic_sub_choose_active(s);
    struct topic_consumer *old = s->active;
    if (nc == old)
        return;
    s->active = nc;
    if (s->type == TOPIC_SUB_FAILOVER) {
        if (old && !old->dead)
            old->notify = SUB_NOTIFY_INACTIVE;
        if (nc)
            nc->notify = SUB_NOTIFY_ACTIVE;
    }
    if (old) {
        /* What the old active consumer did not ack goes to the new one. */
        if (old->dead)
            topic_sub_pending_return_all(s, old, false);
        topic_sub_rewind_all(s);
        int32_t delay = topic_sub_cfg(s)->active_consumer_failover_delay_ms;
        if (nc && s->type == TOPIC_SUB_FAILOVER && delay > 0) {
            s->failover_wait = true;
            mg_timer_start(&s->failover_timer, (uint64_t)delay);
        }
    }
    topic_sub_schedule(s);
}

/* Shared: round robin over eligible consumers of the best priority level present. */
static struct topic_consumer *topic_sub_shared_pick(struct topic_sub *s);

/* Shared, an entry that is a chunk: the consumer its run is pinned to, or a new pick that
 * the run is pinned to until its last chunk. NULL when the run's consumer cannot take it
 * now: the entry waits for it, so chunks never overtake one another or change consumer. */
static struct topic_consumer *topic_sub_chunk_pick(struct topic_sub *s, const struct ml_entry *e)
{
    struct topic_consumer *c = mg_map_get_u64(&s->chunk_runs, e->chunk_key);
    if (c == CHUNK_RETURNED)
        c = NULL; /* from the replay set: the run starts over at a new pick */
    if (c) {
        if (!topic_consumer_eligible(s, c))
            return NULL;
    } else {
        c = topic_sub_shared_pick(s);
        if (!c)
            return NULL;
        if (!e->chunk_last && s->chunk_runs.count < CHUNK_RUNS_MAX)
            mg_map_put_u64(&s->chunk_runs, e->chunk_key, c);
    }
    if (e->chunk_last)
        mg_map_del_u64(&s->chunk_runs, e->chunk_key);
    return c;
}

/* Shared, a newly read chunk of a run whose earlier chunks wait in the replay set: it joins
 * them there (true) rather than overtake them. */
static bool topic_sub_chunk_parked(struct topic_sub *s, const struct ml_entry *e)
{
    if (s->ready_is_replay || mg_map_get_u64(&s->chunk_runs, e->chunk_key) != CHUNK_RETURNED)
        return false;
    topic_sub_replay_add(s, e->pos, e->key_hash % 65536u);
    return true;
}

/* A consumer leaves: the runs pinned to it are unpinned (those it had chunks of in flight
 * were marked returned with them). */
static void topic_sub_chunk_unpin(struct topic_sub *s, const struct topic_consumer *c)
{
    size_t it = 0, klen;
    const char *key;
    void *v;
    while (mg_map_next(&s->chunk_runs, &it, &key, &klen, &v))
        if (v == c)
            mg_map_del(&s->chunk_runs, key, klen);
}

static struct topic_consumer *topic_sub_shared_pick(struct topic_sub *s)
{
    int best = INT_MAX;
    for (int i = 0; i < s->n_consumers; i++) {
        struct topic_consumer *c = s->consumers[i];
        if (c->priority < best && topic_consumer_eligible(s, c))
            best = c->priority;
    }
    if (best == INT_MAX)
        return NULL;
    struct topic_consumer *cur = s->rr_cur;
    if (cur && cur->priority == best && s->rr_count < topic_sub_cfg(s)->dispatch_max_round_robin &&
        topic_consumer_eligible(s, cur)) {
        s->rr_count++;
        return cur;
    }
    int start = 0;
    for (int i = 0; cur && i < s->n_consumers; i++)
        if (s->consumers[i] == cur) {
            start = i + 1;
            break;
        }
    for (int k = 0; k < s->n_consumers; k++) {
        struct topic_consumer *c = s->consumers[(start + k) % s->n_consumers];
        if (c->priority == best && topic_consumer_eligible(s, c)) {
            s->rr_cur = c;
            s->rr_count = 1;
            return c;
        }
    }
    return NULL;
}

static uint32_t topic_sub_hash32(const char *s, uint64_t a, uint64_t b)
{
    /* FNV-1a over the name and two numbers, murmur3 finaliser. */
    uint32_t h = 2166136261u;
    for (; *s; s++) {
        h ^= (unsigned char)*s;
        h *= 16777619u;
    }
    uint64_t nums[2] = {a, b};
    const unsigned char *p = (const unsigned char *)nums;
    for (size_t i = 0; i < sizeof nums; i++) {
        h ^= p[i];
        h *= 16777619u;
    }
    return mg_hash_fmix32(h);
}

static int topic_sub_cmp_ring(const void *a, const void *b)
{
    const struct sub_ring_point *x = a, *y = b;
    if (x->point != y->point)
        return x->point < y->point ? -1 : 1;
    return x->consumer_id < y->consumer_id ? -1 : x->consumer_id > y->consumer_id;
}

static void topic_sub_ring_rebuild(struct topic_sub *s)
{
    mg_free(s->ring);
    s->ring = NULL;
    s->n_ring = 0;
    if (s->type != TOPIC_SUB_KEY_SHARED || s->ks_sticky || s->n_consumers == 0)
        return;
    s->ring = mg_malloc((size_t)s->n_consumers * RING_POINTS * sizeof *s->ring);
    for (int i = 0; i < s->n_consumers; i++) {
        struct topic_consumer *c = s->consumers[i];
        /* Named consumers keep their points across reconnects; unnamed ones are told
         * apart by their connect order. */
        uint64_t salt = c->name[0] ? 0 : c->id + 1;
        for (int k = 0; k < RING_POINTS; k++) {
            struct sub_ring_point *p = &s->ring[s->n_ring++];
            p->point = topic_sub_hash32(c->name, salt, (uint64_t)k) % 65536u;
            p->consumer_id = c->id;
            p->c = c;
        }
    }
    qsort(s->ring, (size_t)s->n_ring, sizeof *s->ring, topic_sub_cmp_ring);
}

static struct topic_consumer *topic_sub_ks_select(struct topic_sub *s, uint32_t hash)
{
    hash %= 65536u;
    if (s->ks_sticky) {
        for (int i = 0; i < s->n_consumers; i++) {
            struct topic_consumer *c = s->consumers[i];
            for (int r = 0; r < c->n_ranges; r++)
                if ((int32_t)hash >= c->ranges[r][0] && (int32_t)hash <= c->ranges[r][1])
                    return c;
        }
        return NULL;
    }
    if (s->n_ring == 0)
        return NULL;
    int lo = 0, hi = s->n_ring;
    while (lo < hi) {
        int mid = (lo + hi) / 2;
        if (s->ring[mid].point < hash)
            lo = mid + 1;
        else
            hi = mid;
    }
    return s->ring[lo == s->n_ring ? 0 : lo].c;
}

/* Key_Shared: a consumer that joined while others had entries in flight gets nothing at
 * or beyond its join position until everything before it is acknowledged. */
static bool topic_sub_ks_holds(struct topic_sub *s, struct topic_consumer *c,
                               struct ml_position pos)
{
    if (!c->holding || ml_pos_cmp(pos, c->join_pos) < 0)
        return false;
    struct ml_position md = ml_cursor_mark_delete(s->cursor);
    if (ml_pos_cmp(md, c->join_pos) >= 0 ||
        ml_pos_cmp(ml_next_position(s->topic->ml, md), c->join_pos) >= 0) {
        c->holding = false;
        return false;
    }
    return true;
}

/* ---- delivery ------------------------------------------------------------------------- */

static void topic_sub_send(struct topic_sub *s, struct topic_consumer *c, struct ml_entry *e)
{
    /* Non-persistent: nothing to acknowledge or redeliver, so nothing is kept pending. */
    bool stored = s->topic->name.persistent;
    int n_words = 0;
    const int64_t *ack_set = stored ? ml_cursor_ack_set(s->cursor, e->pos, &n_words) : NULL;
    int32_t cost = e->num_messages > 0 ? e->num_messages : 1;
    if (ack_set && n_words > 0) {
        int32_t left = 0;
        for (int i = 0; i < e->num_messages && i / 64 < n_words; i++)
            left += (int32_t)(((uint64_t)ack_set[i / 64] >> (i % 64)) & 1);
        cost = left > 0 ? left : 1;
    } else {
        ack_set = NULL;
        n_words = 0;
    }
    uint32_t redelivery = stored ? topic_sub_redelivery_get(s, e->pos) : 0;
    if (stored) {
        struct sub_pending *sp = mg_map_get(&c->pending, &e->pos, sizeof e->pos);
        if (sp) {
            c->unacked -= sp->msgs;
            s->unacked -= sp->msgs;
        } else {
            sp = mg_malloc(sizeof *sp);
            mg_map_put(&c->pending, &e->pos, sizeof e->pos, sp);
        }
        sp->msgs = cost;
        sp->key_hash = e->key_hash;
        sp->chunk_key = e->chunk_key;
        c->unacked += cost;
        s->unacked += cost;
    }
    c->permits -= cost;
    c->msg_out += cost;
    c->bytes_out += (int64_t)e->size;
    c->chunks_out += e->chunk_key != 0;
    s->msg_out += cost;
    s->bytes_out += (int64_t)e->size;
    s->topic->entries_out++;
    topic_rate_consume(s, cost, (int64_t)e->size);
    s->last_consumed_ms = (uint64_t)mg_loop_wall_ms(s->topic->loop);
    c->refs++;
    c->ops->send(c->owner, c, e, redelivery, ack_set, n_words);
    topic_consumer_unref(c);
}

/* Hand one entry on. Returns false when it must wait (nobody can take it now). */
static bool topic_sub_deliver(struct topic_sub *s, struct ml_entry *e)
{
    if (ml_cursor_is_acked(s->cursor, e->pos) && !topic_compact_trimmed(s, e->pos))
        return true;
    if (topic_delay_track(s, e))
        return true; /* held back: its position comes again once due */
    struct topic_consumer *c = NULL;
    switch (s->type) {
    case TOPIC_SUB_EXCLUSIVE:
    case TOPIC_SUB_FAILOVER:
        c = s->active;
        if (!c || s->failover_wait || !topic_consumer_eligible(s, c))
            return false;
        break;
    case TOPIC_SUB_SHARED:
        if (e->chunk_key && topic_sub_chunk_parked(s, e))
            return true;
        c = e->chunk_key ? topic_sub_chunk_pick(s, e) : topic_sub_shared_pick(s);
        if (!c)
            return false;
        break;
    case TOPIC_SUB_KEY_SHARED: {
        uint32_t h = e->key_hash % 65536u;
        if (!s->ready_is_replay && mg_map_get_u64(&s->stuck, h)) {
            /* Earlier entries of this key wait in the replay set: keep the order. */
            topic_sub_replay_add(s, e->pos, h);
            return true;
        }
        c = topic_sub_ks_select(s, h);
        if (!c || !topic_consumer_eligible(s, c) || topic_sub_ks_holds(s, c, e->pos)) {
            topic_sub_replay_add(s, e->pos, h);
            return true;
        }
        break;
    }
    }
    topic_sub_send(s, c, e);
    return true;
}

void topic_sub_np_deliver(struct topic_sub *s, struct ml_entry *e)
{
    struct topic_consumer *c = NULL;
    switch (s->type) {
    case TOPIC_SUB_EXCLUSIVE:
    case TOPIC_SUB_FAILOVER:
        c = s->failover_wait ? NULL : s->active;
        break;
    case TOPIC_SUB_SHARED:
        c = topic_sub_shared_pick(s);
        break;
    case TOPIC_SUB_KEY_SHARED:
        c = topic_sub_ks_select(s, e->key_hash % 65536u);
        break;
    }
    if (s->dead || !c || !topic_consumer_eligible(s, c)) {
        s->msg_drop += e->num_messages > 0 ? e->num_messages : 1;
        return;
    }
    topic_sub_send(s, c, e);
}

/* Total permits of the consumers that may receive now. */
static int64_t topic_sub_avail(struct topic_sub *s)
{
    int64_t sum = 0;
    for (int i = 0; i < s->n_consumers; i++) {
        struct topic_consumer *c = s->consumers[i];
        if (topic_sub_single_active(s) && c != s->active)
            continue;
        if (topic_consumer_eligible(s, c))
            sum += c->permits;
    }
    return sum;
}

/* Can some replay position go out now? */
static bool topic_sub_replay_ready(struct topic_sub *s)
{
    if (s->n_replay == 0)
        return false;
    if (s->type != TOPIC_SUB_KEY_SHARED)
        return true;
    for (int i = 0; i < s->n_replay; i++) {
        struct topic_consumer *c = topic_sub_ks_select(s, s->replay[i].key_hash);
        if (c && topic_consumer_eligible(s, c) && !topic_sub_ks_holds(s, c, s->replay[i].pos))
            return true;
    }
    return false;
}

static void topic_sub_read_more(struct topic_sub *s)
{
    if (s->dead || s->n_consumers == 0 || s->seek || !s->topic->name.persistent)
        return; /* a non-persistent topic's messages come from topic_sub_np_deliver only */
    if (s->read && !s->read->replay && topic_sub_replay_ready(s)) {
        /* A read waiting for new entries must not hold back redeliveries. The ML cancels
         * at once (callback inside the call); nothing was consumed by it. */
        ml_cursor_cancel_read(s->cursor);
    }
    if (s->read)
        return;
    if (topic_sub_single_active(s) && (!s->active || s->failover_wait))
        return;
    int64_t avail = topic_sub_avail(s);
    if (avail <= 0)
        return;
    int64_t room_bytes;
    int64_t room = topic_rate_room(s, &room_bytes); /* 0: out of room, its timer is set */
    if (room <= 0)
        return;
    int max = topic_sub_cfg(s)->dispatch_max_read_batch;
    if (room < max)
        max = (int)room;
    int n = avail < max ? (int)avail : max;
    size_t read_bytes = room_bytes < (int64_t)READ_MAX_BYTES ? (size_t)room_bytes : READ_MAX_BYTES;

    struct sub_read *r = mg_calloc(1, sizeof *r);
    r->s = s;
    r->epoch = s->epoch;
    r->req.data = r;
    if (s->n_replay > 0) {
        struct ml_position *pos = mg_malloc((size_t)n * sizeof *pos);
        r->taken = mg_malloc((size_t)n * sizeof *r->taken);
        for (int i = 0; i < s->n_replay && r->n_taken < n;) {
            struct sub_replay *rp = &s->replay[i];
            if (s->type == TOPIC_SUB_KEY_SHARED) {
                struct topic_consumer *c = topic_sub_ks_select(s, rp->key_hash);
                if (!c || !topic_consumer_eligible(s, c) || topic_sub_ks_holds(s, c, rp->pos)) {
                    i++;
                    continue;
                }
            }
            pos[r->n_taken] = rp->pos;
            r->taken[r->n_taken++] = *rp;
            topic_sub_replay_del_at(s, i);
        }
        if (r->n_taken > 0) {
            r->replay = true;
            s->read = r;
            int rc = ml_cursor_replay(s->cursor, pos, r->n_taken, &r->req, topic_sub_read_done);
            mg_free(pos);
            if (rc < 0) {
                s->read = NULL;
                for (int i = 0; i < r->n_taken; i++)
                    topic_sub_replay_add(s, r->taken[i].pos, r->taken[i].key_hash);
                uint64_t held;
                if (mg_ratelimit_allow(&s->rl_read, MG_RATELIMIT_INTERVAL_MS, &held))
                    MG_WARN(MOD, "%s/%s: replay: %s (%" PRIu64 " more since the last line)",
                            s->topic->name.full, s->name, mg_strerror(rc), held);
                mg_free(r->taken);
                mg_free(r);
            }
            return;
        }
        mg_free(pos);
        mg_free(r->taken);
        r->taken = NULL;
        /* Shared/Exclusive serve replays before anything new; Key_Shared may read on
         * for keys that are not parked. */
        if (s->type != TOPIC_SUB_KEY_SHARED) {
            mg_free(r);
            return;
        }
    }
    if (topic_delay_full(s)) {
        mg_free(r); /* the delayed index is at its bound: new entries wait for due ones */
        return;
    }
    s->read = r;
    if (topic_compact_read(s, &r->s, n, &r->req, topic_sub_read_done))
        return;
    int rc = ml_cursor_read(s->cursor, n, read_bytes, &r->req, topic_sub_read_done);
    if (rc < 0) {
        s->read = NULL;
        mg_free(r);
        uint64_t held;
        if (rc != -MG_EBUSY && mg_ratelimit_allow(&s->rl_read, MG_RATELIMIT_INTERVAL_MS, &held))
            MG_WARN(MOD, "%s/%s: read: %s (%" PRIu64 " more since the last line)",
                    s->topic->name.full, s->name, mg_strerror(rc), held);
    }
}

static void topic_sub_run(struct topic_sub *s)
{
    if (s->dead || s->seek)
        return;
    topic_delay_release(s);
    if (s->n_consumers == 0) {
        if (s->ready_head < s->ready_n) {
            if (topic_sub_single_active(s)) {
                topic_sub_rewind_all(s);
            } else {
                /* Nobody to take them: keep positions, not entries. */
                for (int i = s->ready_head; i < s->ready_n; i++)
                    topic_sub_replay_add(s, s->ready[i]->pos, s->ready[i]->key_hash % 65536u);
                topic_sub_drop_ready(s);
            }
        }
        return;
    }
    while (s->ready_head < s->ready_n) {
        uint64_t epoch = s->epoch;
        struct ml_entry *e = s->ready[s->ready_head];
        s->ready[s->ready_head++] = NULL;
        if (!topic_sub_deliver(s, e)) {
            s->ready[--s->ready_head] = e;
            return;
        }
        ml_entry_unref(e);
        if (s->dead)
            return;
        if (epoch != s->epoch) {
            /* A rewind from inside a send dropped what was read ahead. */
            topic_sub_schedule(s);
            return;
        }
    }
    topic_sub_drop_ready(s);
    topic_sub_read_more(s);
}

static void topic_sub_notify_pending(struct topic_sub *s)
{
    for (;;) {
        struct topic_consumer *c = NULL;
        for (int i = 0; i < s->n_consumers && !c; i++)
            if (s->consumers[i]->notify != SUB_NOTIFY_NONE)
                c = s->consumers[i];
        if (!c || s->dead)
            return;
        bool active = c->notify == SUB_NOTIFY_ACTIVE;
        c->notify = SUB_NOTIFY_NONE;
        if (c->ops->active_change) {
            c->refs++;
            c->ops->active_change(c->owner, c, active);
            topic_consumer_unref(c);
        }
    }
}

/* Pulsar's reachedEndOfTopic: the topic is terminated and everything up to its last entry
 * is acknowledged: each consumer hears it once. */
static void topic_sub_notify_end(struct topic_sub *s)
{
    struct ml_ledger *ml = s->topic->ml;
    struct ml_position last;
    if (!ml || !ml_terminated_position(ml, &last) || ml_cursor_backlog(s->cursor) > 0)
        return;
    for (;;) {
        struct topic_consumer *c = NULL;
        for (int i = 0; i < s->n_consumers && !c; i++)
            if (!s->consumers[i]->reached_end)
                c = s->consumers[i];
        if (!c || s->dead)
            return;
        c->reached_end = true;
        if (c->ops->reached_end) {
            c->refs++;
            c->ops->reached_end(c->owner, c);
            topic_consumer_unref(c);
        }
    }
}

static void topic_sub_dispatch_cb(evutil_socket_t fd, short what, void *arg)
{
    (void)fd;
    (void)what;
    struct topic_sub *s = arg;
    topic_sub_ref(s);
    topic_sub_notify_pending(s);
    topic_sub_notify_end(s);
    topic_sub_run(s);
    topic_sub_unref(s);
}

/* ---- subscription lifetime ------------------------------------------------------------- */

struct topic_sub *topic_sub_new(struct topic *t, const char *name, bool durable,
                                struct ml_position start, int *err)
{
    durable = durable && t->name.persistent; /* a non-persistent topic stores nothing */
    struct ml_cursor *cur = ml_cursor_open(t->ml, name, durable, start, err);
    if (!cur) {
        if (*err == 0)
            *err = -MG_EIO;
        return NULL;
    }
    struct topic_sub *s = mg_calloc(1, sizeof *s);
    s->refs = 1;
    s->topic = t;
    topic_ref(t);
    s->name = mg_strdup(name);
    s->durable = durable;
    s->type = TOPIC_SUB_EXCLUSIVE;
    s->cursor = cur;
    s->partition_index = t->name.partition;
    mg_map_init(&s->chunk_runs);
    mg_map_init(&s->stuck);
    mg_map_init(&s->redeliveries);
    s->ev_dispatch = event_new(t->reg->base, -1, 0, topic_sub_dispatch_cb, s);
    mg_timer_init(&s->failover_timer, t->loop, topic_sub_failover_cb, s);
    mg_timer_init(&s->retry_timer, t->loop, topic_sub_retry_cb, s);
    topic_delay_init(s);
    mg_map_put_str(&t->subs, s->name, s);
    return s;
}

static void topic_sub_detach_consumer(struct topic_sub *s, struct topic_consumer *c)
{
    for (int i = 0; i < s->n_consumers; i++)
        if (s->consumers[i] == c) {
            memmove(&s->consumers[i], &s->consumers[i + 1],
                    (size_t)(s->n_consumers - i - 1) * sizeof *s->consumers);
            s->n_consumers--;
            break;
        }
    if (s->rr_cur == c)
        s->rr_cur = NULL;
    topic_sub_chunk_unpin(s, c);
    topic_sub_ring_rebuild(s);
}

void topic_sub_destroy(struct topic_sub *s, bool notify, bool delete_cursor)
{
    if (s->dead)
        return;
    topic_sub_ref(s);
    s->dead = true;
    struct topic *t = s->topic;
    if (mg_map_get_str(&t->subs, s->name) == s)
        mg_map_del_str(&t->subs, s->name);
    t->msg_out_closed += s->msg_out;
    t->bytes_out_closed += s->bytes_out;
    s->active = NULL;
    while (s->n_consumers > 0) {
        struct topic_consumer *c = s->consumers[--s->n_consumers];
        c->dead = true;
        if (notify && c->ops->closed)
            c->ops->closed(c->owner, c);
        topic_consumer_unref(c);
    }
    if (s->read) {
        s->read->s = NULL;
        s->read = NULL;
    }
    if (s->seek) {
        s->seek->s = NULL;
        s->seek = NULL;
    }
    topic_sub_drop_ready(s);
    event_del(s->ev_dispatch);
    mg_timer_stop(&s->failover_timer);
    mg_timer_stop(&s->retry_timer);
    topic_delay_clear(s);
    if (delete_cursor && s->durable)
        ml_cursor_delete(s->cursor);
    else
        ml_cursor_close(s->cursor);
    s->cursor = NULL;
    topic_sub_unref(s); /* ours */
    topic_sub_unref(s); /* the topic's */
}

static double topic_sub_rate(int64_t now, int64_t *prev, double secs)
{
    double r = secs > 0 ? (double)(now - *prev) / secs : 0.0;
    *prev = now;
    return r < 0 ? 0.0 : r;
}

void topic_sub_stats_roll(struct topic_sub *s, double secs)
{
    s->rate_msg_out = topic_sub_rate(s->msg_out, &s->prev_msg_out, secs);
    s->rate_bytes_out = topic_sub_rate(s->bytes_out, &s->prev_bytes_out, secs);
    s->rate_acks = topic_sub_rate(s->acks, &s->prev_acks, secs);
    s->rate_redelivered = topic_sub_rate(s->redelivered, &s->prev_redelivered, secs);
    s->rate_msg_drop = topic_sub_rate(s->msg_drop, &s->prev_msg_drop, secs);
    for (int i = 0; i < s->n_consumers; i++) {
        struct topic_consumer *c = s->consumers[i];
        c->rate_msg_out = topic_sub_rate(c->msg_out, &c->prev_msg_out, secs);
        c->rate_bytes_out = topic_sub_rate(c->bytes_out, &c->prev_bytes_out, secs);
        c->rate_chunks_out = topic_sub_rate(c->chunks_out, &c->prev_chunks_out, secs);
    }
}

int topic_consumer_stats_next(struct topic *t, const char *sub, int *idx,
                              struct topic_consumer_stats *out)
{
    struct topic_sub *s = mg_map_get_str(&t->subs, sub);
    if (!s || *idx < 0 || *idx >= s->n_consumers)
        return 0;
    struct topic_consumer *c = s->consumers[(*idx)++];
    memset(out, 0, sizeof *out);
    out->name = c->name;
    out->id = c->id;
    out->msg_out_counter = c->msg_out;
    out->bytes_out_counter = c->bytes_out;
    out->unacked = c->unacked;
    out->permits = c->permits;
    out->msg_rate_out = c->rate_msg_out;
    out->throughput_out = c->rate_bytes_out;
    out->chunked_msg_rate = c->rate_chunks_out;
    out->blocked = topic_consumer_unacked_blocked(c);
    out->connected_since_ms = c->connected_ms;
    return 1;
}

void topic_sub_get_stats(struct topic_sub *s, struct topic_sub_stats *out)
{
    memset(out, 0, sizeof *out);
    out->name = s->name;
    out->type = s->type;
    out->durable = s->durable;
    out->backlog = s->cursor ? ml_cursor_backlog(s->cursor) : 0;
    out->unacked = s->unacked;
    out->blocked = topic_sub_unacked_blocked(s);
    out->delayed = s->delay.n;
    out->delayed_index_bytes = (int64_t)s->delay.cap * (int64_t)sizeof *s->delay.heap;
    memcpy(out->throttled, s->throttled, sizeof out->throttled);
    out->n_consumers = s->n_consumers;
    out->msg_out_counter = s->msg_out;
    out->bytes_out_counter = s->bytes_out;
    out->has_type = s->has_type;
    out->ack_counter = s->acks;
    out->msg_rate_out = s->rate_msg_out;
    out->throughput_out = s->rate_bytes_out;
    out->ack_rate = s->rate_acks;
    out->msg_rate_redeliver = s->rate_redelivered;
    for (int i = 0; i < s->n_consumers; i++)
        out->chunked_msg_rate += s->consumers[i]->rate_chunks_out;
    out->msg_drop_counter = s->msg_drop;
    out->msg_drop_rate = s->rate_msg_drop;
    out->last_consumed_ms = s->last_consumed_ms;
    out->last_acked_ms = s->last_acked_ms;
    if (topic_sub_single_active(s) && s->active)
        out->active_consumer = s->active->name;
    if (s->cursor) {
        out->mark_delete = ml_cursor_mark_delete(s->cursor);
        out->read_position = ml_cursor_read_position(s->cursor);
    }
}

void topic_sub_reset_to(struct topic_sub *s, struct ml_position pos, bool close_consumers)
{
    if (s->dead)
        return;
    topic_sub_ref(s);
    for (int i = 0; i < s->n_consumers; i++) {
        struct topic_consumer *c = s->consumers[i];
        mg_map_fini_free(&c->pending, mg_free);
        mg_map_init(&c->pending);
        c->unacked = 0;
    }
    s->unacked = 0;
    s->epoch++;
    topic_sub_drop_ready(s);
    topic_sub_replay_clear(s);
    topic_delay_clear(s);
    mg_map_fini(&s->redeliveries);
    mg_map_init(&s->redeliveries);
    if (s->read)
        ml_cursor_cancel_read(s->cursor);
    ml_cursor_reset(s->cursor, pos);
    if (close_consumers) {
        s->active = NULL;
        while (s->n_consumers > 0 && !s->dead) {
            struct topic_consumer *c = s->consumers[s->n_consumers - 1];
            topic_sub_detach_consumer(s, c);
            c->dead = true;
            if (c->ops->closed)
                c->ops->closed(c->owner, c);
            topic_consumer_unref(c);
        }
        if (!s->durable)
            topic_sub_destroy(s, false, false);
    }
    topic_sub_schedule(s);
    topic_sub_unref(s);
}

/* ---- consumers ------------------------------------------------------------------------ */

static bool topic_sub_ranges_overlap(const int32_t (*a)[2], int na, const int32_t (*b)[2], int nb)
{
    for (int i = 0; i < na; i++)
        for (int j = 0; j < nb; j++)
            if (a[i][0] <= b[j][1] && b[j][0] <= a[i][1])
                return true;
    return false;
}

/* maxSubscriptionsPerTopic (a new subscription only), maxConsumersPerTopic and
 * maxConsumersPerSubscription for one more consumer on s (NULL: not there yet), as Pulsar's
 * PersistentTopic.subscribe and addConsumerToSubscription. */
static int topic_sub_limits_admit(struct topic *t, const struct topic_sub *s)
{
    if (!s && topic_limit_admit(t, TOPIC_LIMIT_SUBSCRIPTIONS, (int64_t)t->subs.count) < 0)
        return -MG_ENOTALLOWED;
    int64_t consumers = 0;
    size_t pos = 0;
    void *v;
    while (mg_map_next(&t->subs, &pos, NULL, NULL, &v))
        consumers += ((const struct topic_sub *)v)->n_consumers;
    if (topic_limit_admit(t, TOPIC_LIMIT_CONSUMERS, consumers) < 0)
        return -MG_ECONSUMERBUSY;
    if (s && topic_limit_admit(t, TOPIC_LIMIT_CONSUMERS_PER_SUB, s->n_consumers) < 0)
        return -MG_ECONSUMERBUSY;
    return 0;
}

int topic_subscribe(struct topic *t, const char *sub_name, const struct topic_sub_options *o,
                    void *owner, const struct topic_consumer_ops *ops, struct topic_consumer **out)
{
    t->limit_refused = -1;
    if (t->state != TOPIC_READY || !t->reg)
        return -MG_ECLOSED;
    if (!sub_name || !*sub_name)
        return -MG_EINVAL;
    if (topic_cursor_reserved(sub_name))
        return -MG_ENOTALLOWED; /* Pulsar's reserved names: deduplication's, compaction's */
    bool sticky = o->type == TOPIC_SUB_KEY_SHARED && o->key_shared_sticky;
    if (sticky) {
        if (o->n_sticky_ranges <= 0 || !o->sticky_ranges)
            return -MG_EASSIGN;
        for (int i = 0; i < o->n_sticky_ranges; i++) {
            const int32_t *r = o->sticky_ranges[i];
            if (r[0] < 0 || r[1] > 65535 || r[0] > r[1])
                return -MG_EASSIGN;
            if (topic_sub_ranges_overlap(&o->sticky_ranges[i], 1, o->sticky_ranges + i + 1,
                                         o->n_sticky_ranges - i - 1))
                return -MG_EASSIGN;
        }
    }
    /* Pulsar: "readCompacted only allowed on failover or exclusive subscriptions" */
    if (o->read_compacted &&
        (o->type == TOPIC_SUB_SHARED || o->type == TOPIC_SUB_KEY_SHARED || !t->name.persistent))
        return -MG_ENOTALLOWED;
    struct topic_sub *s = mg_map_get_str(&t->subs, sub_name);
    if (s && s->n_consumers > 0) {
        if (s->type != o->type || s->type == TOPIC_SUB_EXCLUSIVE)
            return -MG_ECONSUMERBUSY;
        if (s->type == TOPIC_SUB_KEY_SHARED) {
            if (s->ks_sticky != sticky)
                return -MG_ECONSUMERBUSY;
            for (int i = 0; sticky && i < s->n_consumers; i++)
                if (topic_sub_ranges_overlap((const int32_t(*)[2])s->consumers[i]->ranges,
                                             s->consumers[i]->n_ranges, o->sticky_ranges,
                                             o->n_sticky_ranges))
                    return -MG_EASSIGN;
        }
    }
    int rc = topic_sub_limits_admit(t, s);
    if (rc < 0)
        return rc;
    if (!s) {
        struct ml_position start = o->initial_earliest ? ML_POS_EARLIEST : ML_POS_LATEST;
        if (!o->durable && o->has_start)
            start = o->start;
        int err = 0;
        s = topic_sub_new(t, sub_name, o->durable, start, &err);
        if (!s)
            return err;
    }
    if (s->n_consumers == 0) {
        if (o->type != TOPIC_SUB_SHARED && o->type != TOPIC_SUB_KEY_SHARED)
            topic_delay_flush(s); /* Exclusive/Failover deliver held messages at once */
        s->type = o->type;
        s->has_type = true;
        s->ks_sticky = sticky;
        s->read_compacted = o->read_compacted;
        s->compact_from_start = o->read_compacted && ml_cursor_mark_delete(s->cursor).entry == -1;
        s->active = NULL;
        if (t->name.partition < 0)
            s->partition_index = o->partition_index;
    }

    topic_touch(t);
    struct topic_consumer *c = mg_calloc(1, sizeof *c);
    c->refs = 1;
    c->sub = s;
    c->owner = owner;
    c->ops = ops;
    c->name = mg_strdup(o->consumer_name ? o->consumer_name : "");
    c->id = s->next_consumer_id++;
    c->connected_ms = (uint64_t)mg_loop_wall_ms(s->topic->loop);
    c->priority = o->priority_level;
    mg_map_init(&c->pending);
    if (sticky) {
        c->n_ranges = o->n_sticky_ranges;
        c->ranges = mg_malloc((size_t)c->n_ranges * sizeof *c->ranges);
        memcpy(c->ranges, o->sticky_ranges, (size_t)c->n_ranges * sizeof *c->ranges);
    }
    if (s->type == TOPIC_SUB_KEY_SHARED && !sticky && !o->allow_out_of_order &&
        s->n_consumers > 0) {
        c->holding = true;
        c->join_pos = ml_cursor_read_position(s->cursor);
    }
    if (s->n_consumers == s->cap_consumers) {
        s->cap_consumers = s->cap_consumers ? s->cap_consumers * 2 : 4;
        s->consumers = mg_realloc(s->consumers, (size_t)s->cap_consumers * sizeof *s->consumers);
    }
    s->consumers[s->n_consumers++] = c;
    if (topic_sub_single_active(s)) {
        topic_sub_update_active(s);
        if (s->type == TOPIC_SUB_FAILOVER && c != s->active)
            c->notify = SUB_NOTIFY_INACTIVE;
    }
    topic_sub_ring_rebuild(s);
    topic_sub_schedule(s);
    *out = c;
    return 0;
}

void topic_consumer_flow(struct topic_consumer *c, uint32_t permits)
{
    if (c->dead)
        return;
    c->permits += permits;
    topic_sub_schedule(c->sub);
}

void topic_consumer_resume(struct topic_consumer *c)
{
    if (c->dead)
        return;
    c->paused = false;
    topic_sub_schedule(c->sub);
}

/* Remove pos from whichever consumer has it pending (usually c). */
static void topic_sub_forget(struct topic_sub *s, struct topic_consumer *c, struct ml_position pos)
{
    if (mg_map_get(&c->pending, &pos, sizeof pos)) {
        topic_sub_pending_drop(s, c, pos);
    } else {
        for (int i = 0; i < s->n_consumers; i++)
            if (mg_map_get(&s->consumers[i]->pending, &pos, sizeof pos)) {
                topic_sub_pending_drop(s, s->consumers[i], pos);
                break;
            }
    }
    mg_map_del(&s->redeliveries, &pos, sizeof pos);
    topic_sub_replay_del(s, pos);
}

static void topic_sub_forget_upto(struct topic_sub *s, struct ml_position upto)
{
    for (int i = 0; i < s->n_consumers; i++) {
        struct topic_consumer *c = s->consumers[i];
        size_t it = 0;
        struct ml_position pos;
        void *v;
        while (topic_sub_next_pos(&c->pending, &it, &pos, &v))
            if (ml_pos_cmp(pos, upto) <= 0)
                topic_sub_pending_drop(s, c, pos);
    }
    size_t it = 0;
    struct ml_position pos;
    void *v;
    while (topic_sub_next_pos(&s->redeliveries, &it, &pos, &v))
        if (ml_pos_cmp(pos, upto) <= 0)
            mg_map_del(&s->redeliveries, &pos, sizeof pos);
    while (s->n_replay > 0 && ml_pos_cmp(s->replay[0].pos, upto) <= 0)
        topic_sub_replay_del_at(s, 0);
}

int topic_consumer_ack(struct topic_consumer *c, bool cumulative, const struct topic_ack *acks,
                       int n)
{
    if (c->dead)
        return -MG_ECLOSED;
    struct topic_sub *s = c->sub;
    s->acks += cumulative ? 1 : n;
    s->last_acked_ms = (uint64_t)mg_loop_wall_ms(s->topic->loop);
    if (!s->topic->name.persistent)
        return 0; /* non-persistent: nothing is kept to acknowledge (Pulsar ignores these) */
    if (cumulative) {
        if (!topic_sub_single_active(s))
            return -MG_ENOTALLOWED;
        if (n < 1)
            return 0;
        struct ml_position pos = acks[0].pos;
        if (acks[0].ack_set && acks[0].n_words > 0) {
            /* Up to the entry before, plus these batch indexes of the entry. */
            if (pos.entry > 0) {
                struct ml_position prev = {pos.ledger, pos.entry - 1};
                ml_cursor_ack_cumulative(s->cursor, prev);
                topic_sub_forget_upto(s, prev);
            }
            if (ml_cursor_ack(s->cursor, pos, acks[0].ack_set, acks[0].n_words,
                              acks[0].batch_size) > 0 ||
                ml_cursor_is_acked(s->cursor, pos))
                topic_sub_forget(s, c, pos);
        } else {
            ml_cursor_ack_cumulative(s->cursor, pos);
            topic_sub_forget_upto(s, pos);
        }
        topic_sub_schedule(s);
        return 0;
    }
    for (int i = 0; i < n; i++) {
        const struct topic_ack *a = &acks[i];
        int rc = ml_cursor_ack(s->cursor, a->pos, a->ack_set, a->ack_set ? a->n_words : 0,
                               a->batch_size);
        if (rc > 0 || ml_cursor_is_acked(s->cursor, a->pos)) {
            topic_sub_forget(s, c, a->pos);
        } else if (a->ack_set) {
            /* Partially acked batch: it now counts for its remaining indexes. */
            struct sub_pending *sp = mg_map_get(&c->pending, &a->pos, sizeof a->pos);
            int nw = 0;
            const int64_t *set = ml_cursor_ack_set(s->cursor, a->pos, &nw);
            if (sp && set) {
                int32_t left = 0;
                for (int w = 0; w < nw; w++)
                    left += __builtin_popcountll((uint64_t)set[w]);
                if (left > 0 && left < sp->msgs) {
                    c->unacked -= sp->msgs - left;
                    s->unacked -= sp->msgs - left;
                    sp->msgs = left;
                }
            }
        }
    }
    topic_sub_schedule(s);
    return 0;
}

void topic_consumer_redeliver(struct topic_consumer *c, const struct ml_position *pos, int n)
{
    if (c->dead || !c->sub->topic->name.persistent)
        return; /* non-persistent: nothing is kept to redeliver */
    struct topic_sub *s = c->sub;
    s->redelivered += n > 0 ? n : c->unacked;
    if (topic_sub_single_active(s)) {
        /* Exclusive/Failover: single messages are never redelivered out of order (as in
         * Pulsar): any redelivery request rewinds to the first unacknowledged entry. */
        if (c == s->active)
            topic_sub_rewind_all(s);
        else
            topic_sub_pending_return_all(s, c, false);
    } else if (n == 0) {
        topic_sub_pending_return_all(s, c, true);
    } else {
        for (int i = 0; i < n; i++) {
            struct sub_pending *sp = mg_map_get(&c->pending, &pos[i], sizeof pos[i]);
            if (!sp)
                continue;
            uint32_t h = sp->key_hash, chunk_key = sp->chunk_key;
            topic_sub_pending_drop(s, c, pos[i]);
            topic_sub_redelivery_inc(s, pos[i]);
            topic_sub_replay_add(s, pos[i], h);
            topic_sub_chunk_returned(s, chunk_key);
        }
    }
    topic_sub_schedule(s);
}

void topic_consumer_close(struct topic_consumer *c)
{
    if (!c || c->dead)
        return;
    struct topic_sub *s = c->sub;
    topic_sub_ref(s);
    c->dead = true;
    if (s->topic)
        topic_touch(s->topic);
    topic_sub_detach_consumer(s, c);
    if (topic_sub_single_active(s)) {
        if (s->active == c)
            topic_sub_update_active(s); /* rewinds: c's unacked entries come again */
        else
            topic_sub_pending_return_all(s, c, false);
    } else {
        topic_sub_pending_return_all(s, c, true);
    }
    topic_consumer_unref(c);
    if (s->n_consumers == 0 && !s->durable)
        topic_sub_destroy(s, false, false);
    else
        topic_sub_schedule(s);
    topic_sub_unref(s);
}

int topic_consumer_unsubscribe(struct topic_consumer *c, bool force)
{
    if (c->dead)
        return -MG_ECLOSED;
    struct topic_sub *s = c->sub;
    if (s->n_consumers > 1 && !force)
        return -MG_ECONSUMERBUSY;
    topic_sub_ref(s);
    c->dead = true;
    topic_sub_detach_consumer(s, c);
    if (s->active == c)
        s->active = NULL;
    topic_consumer_unref(c);
    /* Other consumers (force) are closed through their callbacks. */
    topic_sub_destroy(s, true, true);
    topic_sub_unref(s);
    return 0;
}

static void topic_sub_seek_finish(struct sub_seek *op, int status, struct ml_position pos)
{
    struct topic_sub *s = op->s;
    if (s) {
        s->seek = NULL;
        if (status == 0)
            topic_sub_reset_to(s, pos, true);
        else
            topic_sub_schedule(s);
    } else if (status == 0) {
        status = -MG_ECANCELED;
    }
    mg_event_free(op->ev);
    topic_done_cb cb = op->cb;
    void *data = op->data;
    mg_free(op);
    cb(data, status);
}

static void topic_sub_seek_ev_cb(evutil_socket_t fd, short what, void *arg)
{
    (void)fd;
    (void)what;
    struct sub_seek *op = arg;
    topic_sub_seek_finish(op, 0, op->pos);
}

static void topic_sub_seek_found_cb(struct ml_position pos, int status, void *data)
{
    topic_sub_seek_finish(data, status, pos);
}

int topic_consumer_seek(struct topic_consumer *c, bool by_time, struct ml_position pos,
                        uint64_t ts_ms, topic_done_cb cb, void *data)
{
    if (c->dead)
        return -MG_ECLOSED;
    struct topic_sub *s = c->sub;
    if (!s->topic->name.persistent)
        return -MG_ENOTALLOWED; /* nothing kept to go back to (Pulsar refuses it too) */
    if (s->seek)
        return -MG_EBUSY;
    struct sub_seek *op = mg_calloc(1, sizeof *op);
    op->s = s;
    op->pos = pos;
    op->cb = cb;
    op->data = data;
    if (by_time) {
        int rc = ml_find_by_time(s->topic->ml, ts_ms, topic_sub_seek_found_cb, op);
        if (rc < 0) {
            mg_free(op);
            return rc;
        }
    } else {
        op->ev = event_new(s->topic->reg->base, -1, 0, topic_sub_seek_ev_cb, op);
        event_active(op->ev, EV_READ, 0);
    }
    /* Dispatch stops until the seek is done: the consumers are about to be closed. */
    s->seek = op;
    return 0;
}

static void topic_sub_lastid_finish(struct sub_lastid *op, int status, int32_t batch_index)
{
    mg_event_free(op->ev);
    topic_last_id_cb cb = op->cb;
    void *data = op->data;
    struct ml_position last = op->last, md = op->mark_delete;
    mg_free(op);
    cb(data, status, last, batch_index, md);
}

static void topic_sub_lastid_ev_cb(evutil_socket_t fd, short what, void *arg)
{
    (void)fd;
    (void)what;
    topic_sub_lastid_finish(arg, 0, -1);
}

static void topic_sub_lastid_got(struct ml_entry *e, int status, void *data)
{
    struct sub_lastid *op = data;
    int32_t bi = -1;
    if (status == 0 && e) {
        bi = e->batched ? e->num_messages - 1 : -1;
        ml_entry_unref(e);
    } else if (status == -MG_ENOTFOUND) {
        status = 0;
    }
    topic_sub_lastid_finish(op, status, bi);
}

int topic_consumer_last_message_id(struct topic_consumer *c, topic_last_id_cb cb, void *data)
{
    if (c->dead)
        return -MG_ECLOSED;
    struct topic_sub *s = c->sub;
    if (!s->topic->name.persistent)
        return -MG_ENOTALLOWED; /* nothing is kept: Pulsar does not support it there either */
    struct ml_ledger *ml = s->topic->ml;
    if (!ml)
        return -MG_ECLOSED;
    struct sub_lastid *op = mg_calloc(1, sizeof *op);
    op->cb = cb;
    op->data = data;
    op->last = ml_last_confirmed(ml);
    op->mark_delete = ml_cursor_mark_delete(s->cursor);
    if (topic_compact_last_id(s, &op->last, op->mark_delete, cb, data)) {
        mg_free(op);
        return 0;
    }
    if (op->last.entry < 0) {
        op->ev = event_new(s->topic->reg->base, -1, 0, topic_sub_lastid_ev_cb, op);
        event_active(op->ev, EV_READ, 0);
        return 0;
    }
    int rc = ml_get_entry(ml, op->last, topic_sub_lastid_got, op);
    if (rc < 0) {
        mg_free(op);
        return rc;
    }
    return 0;
}
