/*
 * topic_delay.c - delayed delivery (Pulsar's InMemoryDelayedDeliveryTracker): a Shared or
 * Key_Shared subscription holds back an entry whose metadata carries deliver_at_time until
 * that time.
 *
 * Happy path: the dispatcher hands every entry it is about to deliver to topic_delay_track.
 * An entry due later than now + one tick (delayedDeliveryTickTimeMillis) is not delivered: its
 * (time, position, key hash) goes into the subscription's index, a binary min-heap on time
 * (the entry itself is dropped: the index holds no payloads). The time is rounded down to a
 * power of two below the tick, as Pulsar does, so a message may come up to about a tick early.
 * One timer per subscription is armed at the earliest time in the index (at least one tick
 * after its last run); its firing schedules the dispatcher, whose pass moves the due
 * positions into the replay set (up to TOPIC_DELAY_RELEASE_MAX there: the passes that
 * deliver them release the rest), from where they are read back and delivered like
 * redeliveries. A time at or before the cutoff, 0 or negative is delivered at once. Whether
 * entries are held back and the tick are each the topic's own when set (TopicPolicies
 * delayedDeliveryEnabled / delayedDeliveryTickTimeMillis: topic_set_topic_delayed_delivery),
 * else the namespace's delayed_delivery_policies (topic_set_delayed_delivery), else
 * delayedDeliveryEnabled / delayedDeliveryTickTimeMillis, as Pulsar's topic policy hierarchy.
 *
 * Restart and moves: nothing is stored. Entries held in the index are not acknowledged, so
 * the cursor of a subscription loaded again (after a restart, or on the broker the topic
 * moved to) reads them again and tracks them again: the index is rebuilt by reading the
 * backlog, as Pulsar's in-memory tracker is.
 *
 * Bounds: the index stops the reading of new entries (not of replays) once it holds
 * delayed_max_tracked positions, so it never grows beyond that plus one read batch; the
 * subscription's later messages then wait until held ones are due. A time far in the future
 * re-arms the timer at most once per TOPIC_DELAY_MAX_WAIT_MS (a wall clock moved back or
 * forth is noticed then). A subscription changing to Exclusive or Failover, or reset, hands
 * over or drops its index.
 */
#include "topic/topic_int.h"
#include "util/alloc.h"
#include "util/loop.h"

#include <string.h>

#define TOPIC_DELAY_MAX_WAIT_MS 3600000 /* longest timer: a far-future time is looked at again */
#define TOPIC_DELAY_KEEP 1024           /* an empty index keeps at most this many slots */
/* Due positions join the replay set only while it holds fewer than this: one pass never
 * moves (and sorts in) a large index at once; the passes that deliver them release more. */
#define TOPIC_DELAY_RELEASE_MAX 1000

static void topic_delay_layer_put(struct topic_delay_layer *l, int enabled, int64_t tick_ms)
{
    l->enabled = enabled < 0 ? -1 : enabled > 0;
    l->tick_ms = tick_ms > 0 ? tick_ms : 0;
}

void topic_set_delayed_delivery(struct topic *t, int enabled, int64_t tick_ms)
{
    topic_delay_layer_put(&t->delayed, enabled, enabled < 0 ? 0 : tick_ms);
}

void topic_set_topic_delayed_delivery(struct topic *t, int enabled, int64_t tick_ms)
{
    topic_delay_layer_put(&t->topic_delayed, enabled, tick_ms);
}

/* Each value from the first layer that sets it: the topic's, the namespace's, the broker's. */
bool topic_delayed_enabled(const struct topic *t)
{
    if (t->topic_delayed.enabled >= 0)
        return t->topic_delayed.enabled > 0;
    if (t->delayed.enabled >= 0)
        return t->delayed.enabled > 0;
    return t->reg && t->reg->cfg.delayed_enabled;
}

int64_t topic_delayed_tick_ms(const struct topic *t)
{
    int64_t tick = t->topic_delayed.tick_ms ? t->topic_delayed.tick_ms
                   : t->delayed.tick_ms     ? t->delayed.tick_ms
                   : t->reg                 ? t->reg->cfg.delayed_tick_ms
                                            : 0;
    return tick > 0 ? tick : 1000;
}

static int64_t topic_delay_tick(const struct topic_sub *s)
{
    return topic_delayed_tick_ms(s->topic);
}

/* Pulsar's timestamp precision: the highest power of two not above the tick. */
static int64_t topic_delay_round(int64_t at, int64_t tick)
{
    int bits = 0;
    while (tick > 1) {
        tick >>= 1;
        bits++;
    }
    return at & ~(((int64_t)1 << bits) - 1);
}

static bool topic_delay_before(const struct sub_delay_item *a, const struct sub_delay_item *b)
{
    if (a->at != b->at)
        return a->at < b->at;
    return ml_pos_cmp(a->pos, b->pos) < 0;
}

static void topic_delay_swap(struct sub_delay_item *h, int i, int j)
{
    struct sub_delay_item t = h[i];
    h[i] = h[j];
    h[j] = t;
}

static void topic_delay_push(struct topic_delay *d, struct sub_delay_item it)
{
    if (d->n == d->cap) {
        d->cap = d->cap ? d->cap * 2 : 64;
        d->heap = mg_realloc(d->heap, (size_t)d->cap * sizeof *d->heap);
    }
    int i = d->n++;
    d->heap[i] = it;
    while (i > 0 && topic_delay_before(&d->heap[i], &d->heap[(i - 1) / 2])) {
        topic_delay_swap(d->heap, i, (i - 1) / 2);
        i = (i - 1) / 2;
    }
}

static struct sub_delay_item topic_delay_pop(struct topic_delay *d)
{
    struct sub_delay_item top = d->heap[0];
    d->heap[0] = d->heap[--d->n];
    for (int i = 0;;) {
        int l = 2 * i + 1, r = l + 1, m = i;
        if (l < d->n && topic_delay_before(&d->heap[l], &d->heap[m]))
            m = l;
        if (r < d->n && topic_delay_before(&d->heap[r], &d->heap[m]))
            m = r;
        if (m == i)
            break;
        topic_delay_swap(d->heap, i, m);
        i = m;
    }
    return top;
}

/* Arm the one timer for the earliest time in the index: a tick before it (the cutoff is
 * now + tick), and not sooner than a tick after the last run. */
static void topic_delay_arm(struct topic_sub *s)
{
    struct topic_delay *d = &s->delay;
    if (d->n == 0 || s->dead) {
        mg_timer_stop(&d->timer);
        return;
    }
    int64_t tick = topic_delay_tick(s);
    int64_t now = mg_loop_wall_ms(s->topic->loop);
    int64_t when = d->heap[0].at - tick;
    if (when < d->last_run_ms + tick)
        when = d->last_run_ms + tick;
    if (mg_timer_pending(&d->timer) && d->timer_at <= when)
        return; /* already armed for then or sooner */
    int64_t wait = when - now;
    if (wait < 0)
        wait = 0;
    if (wait > TOPIC_DELAY_MAX_WAIT_MS)
        wait = TOPIC_DELAY_MAX_WAIT_MS;
    d->timer_at = now + wait;
    mg_timer_start(&d->timer, (uint64_t)wait);
}

static void topic_delay_timer_cb(struct mg_timer *tm, void *arg)
{
    (void)tm;
    struct topic_sub *s = arg;
    s->delay.fires++;
    s->delay.last_run_ms = mg_loop_wall_ms(s->topic->loop);
    topic_sub_schedule(s); /* its pass releases what is due (topic_delay_release) */
}

void topic_delay_init(struct topic_sub *s)
{
    memset(&s->delay, 0, sizeof s->delay);
    s->delay.last_run_ms = INT64_MIN / 2;
    mg_timer_init(&s->delay.timer, s->topic->loop, topic_delay_timer_cb, s);
}

void topic_delay_fini(struct topic_sub *s)
{
    mg_timer_fini(&s->delay.timer);
    mg_free(s->delay.heap);
    s->delay.heap = NULL;
    s->delay.n = s->delay.cap = 0;
}

bool topic_delay_track(struct topic_sub *s, const struct ml_entry *e)
{
    if (!topic_delayed_enabled(s->topic) || e->deliver_at_time <= 0 ||
        (s->type != TOPIC_SUB_SHARED && s->type != TOPIC_SUB_KEY_SHARED))
        return false;
    int64_t tick = topic_delay_tick(s);
    /* The rounded time decides, here as at the release: a released entry read back is due. */
    int64_t at = topic_delay_round(e->deliver_at_time, tick);
    if (at <= mg_loop_wall_ms(s->topic->loop) + tick)
        return false; /* due (within the tick): at once */
    struct sub_delay_item it = {.at = at, .pos = e->pos, .key_hash = e->key_hash % 65536u};
    topic_delay_push(&s->delay, it);
    topic_delay_arm(s);
    return true;
}

void topic_delay_release(struct topic_sub *s)
{
    struct topic_delay *d = &s->delay;
    if (d->n == 0)
        return;
    int64_t cutoff = mg_loop_wall_ms(s->topic->loop) + topic_delay_tick(s);
    while (d->n > 0 && d->heap[0].at <= cutoff && s->n_replay < TOPIC_DELAY_RELEASE_MAX) {
        struct sub_delay_item it = topic_delay_pop(d);
        topic_sub_replay_add(s, it.pos, it.key_hash);
    }
    if (d->n == 0 && d->cap > TOPIC_DELAY_KEEP) {
        mg_free(d->heap); /* a burst is over: give its memory back */
        d->heap = NULL;
        d->cap = 0;
    }
    topic_delay_arm(s);
}

bool topic_delay_full(const struct topic_sub *s)
{
    int32_t max = s->topic->reg ? s->topic->reg->cfg.delayed_max_tracked : 0;
    return s->delay.n >= (max > 0 ? max : TOPIC_DELAY_MAX_TRACKED);
}

void topic_delay_clear(struct topic_sub *s)
{
    s->delay.n = 0;
    mg_timer_stop(&s->delay.timer);
}

void topic_delay_flush(struct topic_sub *s)
{
    while (s->delay.n > 0) {
        struct sub_delay_item it = topic_delay_pop(&s->delay);
        topic_sub_replay_add(s, it.pos, it.key_hash);
    }
    mg_timer_stop(&s->delay.timer);
}
