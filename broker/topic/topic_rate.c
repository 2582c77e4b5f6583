/*
 * topic_rate.c - dispatch rate limits: Pulsar's dispatchThrottlingRatePerTopicInMsg/InByte
 * and dispatchThrottlingRatePerSubscriptionInMsg/InByte, overridden by a namespace's
 * dispatchRate and subscriptionDispatchRate (topic_set_dispatch_rate).
 *
 * Each scope has a token bucket per kind (messages, bytes) refilled continuously at rate per
 * period on the loop's monotonic clock and holding at most one period's worth (so an idle
 * subscription bursts one period, no more). The dispatcher asks topic_rate_room before a
 * read and sizes it to the room; each send takes its messages and bytes (topic_rate_consume),
 * a batch possibly taking a bucket below zero: that debt is waited out before the next read,
 * so the rate holds over any window of a few periods. Out of room the subscription stops and
 * its retry timer wakes it when the emptiest bucket is back above zero, at least
 * TOPIC_RATE_MIN_WAIT_MS later (no timer storm however small the rate's steps).
 *
 * The publish rate (a namespace's publishRate, else maxPublishRatePerTopicInMessages/InBytes)
 * is one more bucket per topic, taken from by every publish; the connections of its
 * producers stop reading for topic_publish_wait_ms (conn.c, at least its throttling tick).
 * Each throttle is counted once (publishRateLimitedTimes), however many publishes already read
 * reach it before it ends.
 */
#include "topic/topic_int.h"

#include <math.h>
#include <stdint.h>

#define TOPIC_RATE_MIN_WAIT_MS 10

/* Store rate (NULL: not set) in *set / *slot; false when that changes nothing. */
static bool topic_rate_put(bool *set, struct topic_dispatch_rate *slot,
                           const struct topic_dispatch_rate *rate)
{
    if (*set == (rate != NULL) &&
        (!rate || (slot->msgs == rate->msgs && slot->bytes == rate->bytes &&
                   slot->period_secs == rate->period_secs)))
        return false;
    *set = rate != NULL;
    if (rate)
        *slot = *rate;
    return true;
}

/* The dispatch rate of scope sc may have changed: a changed rate starts from a full bucket;
 * waiting subscriptions look again. */
static void topic_dispatch_rate_changed(struct topic *t, enum topic_rate_scope sc)
{
    size_t pos = 0;
    void *v;
    if (sc == TOPIC_RATE_TOPIC)
        t->bucket.primed = false;
    while (mg_map_next(&t->subs, &pos, NULL, NULL, &v)) {
        struct topic_sub *s = v;
        if (sc == TOPIC_RATE_SUB)
            s->bucket.primed = false;
        topic_sub_schedule(s);
    }
}

void topic_set_dispatch_rate(struct topic *t, enum topic_rate_scope sc,
                             const struct topic_dispatch_rate *rate)
{
    if (topic_rate_put(&t->rate_set[sc], &t->rate[sc], rate))
        topic_dispatch_rate_changed(t, sc);
}

void topic_set_topic_dispatch_rate(struct topic *t, enum topic_rate_scope sc,
                                   const struct topic_dispatch_rate *rate)
{
    if (topic_rate_put(&t->topic_rate_set[sc], &t->topic_rate[sc], rate))
        topic_dispatch_rate_changed(t, sc);
}

struct topic_dispatch_rate topic_dispatch_rate(const struct topic *t, enum topic_rate_scope sc)
{
    if (t->topic_rate_set[sc])
        return t->topic_rate[sc];
    if (t->rate_set[sc])
        return t->rate[sc];
    return t->reg ? topic_registry_rate(t->reg, (int)sc) : (struct topic_dispatch_rate){0};
}

struct topic_dispatch_rate topic_registry_rate(const struct topic_registry *r, int sc)
{
    return sc == TOPIC_RATE_SCOPES ? r->cfg.publish_rate : r->cfg.dispatch_rate[sc];
}

static bool topic_rate_on(const struct topic_dispatch_rate *r)
{
    return r->msgs > 0 || r->bytes > 0;
}

static int64_t topic_rate_period_ms(const struct topic_dispatch_rate *r)
{
    return (r->period_secs > 0 ? (int64_t)r->period_secs : 1) * 1000;
}

/* Refill b to now: rate per period, capped at one period's worth. */
static void topic_bucket_refill(struct topic_bucket *b, const struct topic_dispatch_rate *r,
                                int64_t now)
{
    if (!b->primed) {
        b->msgs = (double)r->msgs;
        b->bytes = (double)r->bytes;
        b->primed = true;
    } else if (now > b->last_ms) {
        double f = (double)(now - b->last_ms) / (double)topic_rate_period_ms(r);
        b->msgs = fmin(b->msgs + f * (double)r->msgs, (double)r->msgs);
        b->bytes = fmin(b->bytes + f * (double)r->bytes, (double)r->bytes);
    }
    b->last_ms = now;
}

/* One scope's room (INT64_MAX: no limit); *wait_ms raised to the time until it has some;
 * out (may be NULL): [0] / [1] set when its messages / bytes are exhausted. */
static int64_t topic_bucket_room(struct topic_bucket *b, const struct topic_dispatch_rate *r,
                                 int64_t now, int64_t *bytes, int64_t *wait_ms, bool out[2])
{
    if (!topic_rate_on(r))
        return INT64_MAX;
    topic_bucket_refill(b, r, now);
    double period = (double)topic_rate_period_ms(r);
    int64_t room = INT64_MAX;
    if (r->msgs > 0) {
        room = b->msgs >= 1 ? (int64_t)b->msgs : 0;
        if (room == 0 && out)
            out[0] = true;
        if (room == 0)
            *wait_ms = fmax((double)*wait_ms, ceil((1 - b->msgs) * period / (double)r->msgs));
    }
    if (r->bytes > 0) {
        int64_t rb = b->bytes >= 1 ? (int64_t)b->bytes : 0;
        if (rb == 0) {
            room = 0;
            if (out)
                out[1] = true;
            *wait_ms = fmax((double)*wait_ms, ceil((1 - b->bytes) * period / (double)r->bytes));
        }
        if (rb < *bytes)
            *bytes = rb;
    }
    return room;
}

int64_t topic_rate_room(struct topic_sub *s, int64_t *bytes)
{
    struct topic *t = s->topic;
    struct topic_dispatch_rate rt = topic_dispatch_rate(t, TOPIC_RATE_TOPIC);
    struct topic_dispatch_rate rs = topic_dispatch_rate(t, TOPIC_RATE_SUB);
    *bytes = INT64_MAX;
    if (!topic_rate_on(&rt) && !topic_rate_on(&rs))
        return INT64_MAX;
    int64_t now = (int64_t)mg_loop_mono_ms(t->loop);
    int64_t wait_ms = 0;
    bool out[TOPIC_RATE_SCOPES][2] = {{false, false}, {false, false}};
    int64_t a = topic_bucket_room(&t->bucket, &rt, now, bytes, &wait_ms, out[TOPIC_RATE_TOPIC]);
    int64_t b = topic_bucket_room(&s->bucket, &rs, now, bytes, &wait_ms, out[TOPIC_RATE_SUB]);
    int64_t room = a < b ? a : b;
    if (room > 0 && *bytes > 0)
        return room;
    for (int sc = 0; sc < TOPIC_RATE_SCOPES; sc++) /* one throttle event per stopped pass */
        for (int k = 0; k < 2; k++)
            s->throttled[sc][k] += out[sc][k];
    mg_timer_start(&s->retry_timer,
                   (uint64_t)(wait_ms > TOPIC_RATE_MIN_WAIT_MS ? wait_ms : TOPIC_RATE_MIN_WAIT_MS));
    return 0;
}

void topic_rate_consume(struct topic_sub *s, int64_t msgs, int64_t bytes)
{
    struct topic *t = s->topic;
    struct topic_bucket *b[TOPIC_RATE_SCOPES] = {&t->bucket, &s->bucket};
    for (int sc = 0; sc < TOPIC_RATE_SCOPES; sc++) {
        struct topic_dispatch_rate r = topic_dispatch_rate(t, (enum topic_rate_scope)sc);
        if (!topic_rate_on(&r) || !b[sc]->primed)
            continue;
        b[sc]->msgs -= (double)msgs;
        b[sc]->bytes -= (double)bytes;
    }
}

void topic_set_publish_rate(struct topic *t, const struct topic_dispatch_rate *rate)
{
    if (topic_rate_put(&t->publish_rate_set, &t->publish_rate, rate))
        t->publish_bucket.primed = false;
}

void topic_set_topic_publish_rate(struct topic *t, const struct topic_dispatch_rate *rate)
{
    if (topic_rate_put(&t->topic_rate_set[TOPIC_RATE_SCOPES], &t->topic_rate[TOPIC_RATE_SCOPES],
                       rate))
        t->publish_bucket.primed = false;
}

struct topic_dispatch_rate topic_publish_rate(const struct topic *t)
{
    if (t->topic_rate_set[TOPIC_RATE_SCOPES])
        return t->topic_rate[TOPIC_RATE_SCOPES];
    if (t->publish_rate_set)
        return t->publish_rate;
    return t->reg ? topic_registry_rate(t->reg, TOPIC_RATE_SCOPES)
                  : (struct topic_dispatch_rate){0};
}

void topic_rate_published(struct topic *t, int64_t msgs, int64_t bytes)
{
    struct topic_dispatch_rate r = topic_publish_rate(t);
    if (!topic_rate_on(&r))
        return;
    topic_bucket_refill(&t->publish_bucket, &r, (int64_t)mg_loop_mono_ms(t->loop));
    t->publish_bucket.msgs -= (double)msgs;
    t->publish_bucket.bytes -= (double)bytes;
}

int64_t topic_publish_wait_ms(struct topic *t)
{
    struct topic_dispatch_rate r = topic_publish_rate(t);
    if (!topic_rate_on(&r))
        return 0;
    int64_t bytes = INT64_MAX, wait_ms = 0;
    uint64_t now = mg_loop_mono_ms(t->loop);
    int64_t room = topic_bucket_room(&t->publish_bucket, &r, (int64_t)now, &bytes, &wait_ms, NULL);
    if (room > 0 && bytes > 0)
        return 0;
    wait_ms = wait_ms > 1 ? wait_ms : 1;
    if (now >= t->publish_limited_until) /* a new throttle (not a publish it already paused) */
        t->publish_limited++;
    t->publish_limited_until = now + (uint64_t)wait_ms;
    return wait_ms;
}
