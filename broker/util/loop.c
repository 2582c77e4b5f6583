/*
 * loop.c - the loop context: clocks and timers, real or simulated (loop.h).
 *
 * Real loops read clock_gettime and give each timer a libevent timer event, created once by
 * mg_timer_init (arming it allocates nothing). Simulated loops keep the time in µs and their
 * pending timers in a binary min-heap ordered by (deadline, start sequence), so timers due at
 * the same time fire in the order they were started, whatever the heap's shape.
 *
 * Driving a simulated loop: mg_loop_run_due alternates between libevent passes (while the
 * base has active events: the deferred completions of bkc, meta and the managed ledger) and
 * the earliest due timer, until neither is left; mg_loop_advance and mg_loop_step move the
 * time to the next deadline between such runs.
 *
 * Failure modes: a run that never settles (callbacks that keep re-arming each other at the
 * same instant) is cut after MAX_PASSES passes with -MG_EAGAIN, so a simulation reports a
 * livelock instead of hanging. Freeing a simulated loop with timers pending is a bug of the
 * caller (asserted).
 */
#include "util/loop.h"
#include "util/alloc.h"
#include "util/err.h"
#include "util/log.h"

#include <event2/event.h>
#include <string.h>
#include <time.h>

/* Passes of one mg_loop_run_due before it reports a livelock. */
#define MAX_PASSES 2000000

struct mg_loop {
    struct mg_loop_clock clock; /* first: loop.h reads it through a struct mg_loop * */
    struct event_base *base;    /* borrowed */
    /* simulated */
    uint64_t seq;
    struct mg_timer **heap; /* owned array of borrowed timers */
    size_t n, cap;
};

struct mg_loop *mg_loop_new(struct event_base *base)
{
    MG_ASSERT(base);
    struct mg_loop *l = mg_calloc(1, sizeof *l);
    l->base = base;
    return l;
}

struct mg_loop *mg_loop_new_sim(struct event_base *base, uint64_t mono_ms, int64_t wall_ms)
{
    struct mg_loop *l = mg_loop_new(base);
    l->clock.sim_ = true;
    l->clock.now_us_ = mono_ms * 1000u;
    l->clock.wall_delta_ = wall_ms - (int64_t)mono_ms;
    return l;
}

void mg_loop_free(struct mg_loop *l)
{
    if (!l)
        return;
    MG_ASSERT(l->n == 0); /* every timer was finished */
    mg_free(l->heap);
    mg_free(l);
}

void mg_event_free(struct event *ev)
{
    if (ev)
        event_free(ev);
}

struct event_base *mg_loop_base(const struct mg_loop *l)
{
    return l->base;
}

bool mg_loop_is_sim(const struct mg_loop *l)
{
    return l->clock.sim_;
}

/* ---- the simulated timer heap ------------------------------------------------------------ */

static bool mg_timer_earlier(const struct mg_timer *a, const struct mg_timer *b)
{
    return a->deadline_ < b->deadline_ || (a->deadline_ == b->deadline_ && a->seq_ < b->seq_);
}

static void mg_loop_heap_set(struct mg_loop *l, size_t i, struct mg_timer *t)
{
    l->heap[i] = t;
    t->heap_ = i + 1;
}

static void mg_loop_heap_up(struct mg_loop *l, size_t i)
{
    struct mg_timer *t = l->heap[i];
    while (i > 0) {
        size_t p = (i - 1) / 2;
        if (!mg_timer_earlier(t, l->heap[p]))
            break;
        mg_loop_heap_set(l, i, l->heap[p]);
        i = p;
    }
    mg_loop_heap_set(l, i, t);
}

static void mg_loop_heap_down(struct mg_loop *l, size_t i)
{
    struct mg_timer *t = l->heap[i];
    for (;;) {
        size_t c = 2 * i + 1;
        if (c >= l->n)
            break;
        if (c + 1 < l->n && mg_timer_earlier(l->heap[c + 1], l->heap[c]))
            c++;
        if (!mg_timer_earlier(l->heap[c], t))
            break;
        mg_loop_heap_set(l, i, l->heap[c]);
        i = c;
    }
    mg_loop_heap_set(l, i, t);
}

static void mg_loop_heap_remove(struct mg_loop *l, struct mg_timer *t)
{
    size_t i = t->heap_ - 1;
    t->heap_ = 0;
    struct mg_timer *last = l->heap[--l->n];
    if (i == l->n)
        return;
    mg_loop_heap_set(l, i, last);
    if (i > 0 && mg_timer_earlier(last, l->heap[(i - 1) / 2]))
        mg_loop_heap_up(l, i);
    else
        mg_loop_heap_down(l, i);
}

static void mg_loop_heap_push(struct mg_loop *l, struct mg_timer *t, uint64_t deadline_us)
{
    if (t->heap_)
        mg_loop_heap_remove(l, t);
    if (l->n == l->cap) {
        l->cap = l->cap ? l->cap * 2 : 64;
        l->heap = mg_realloc(l->heap, l->cap * sizeof *l->heap);
    }
    t->deadline_ = deadline_us;
    t->seq_ = ++l->seq;
    l->heap[l->n++] = t;
    mg_loop_heap_up(l, l->n - 1);
}

/* ---- timers -------------------------------------------------------------------------------- */

static void mg_timer_ev_cb(evutil_socket_t fd, short what, void *arg)
{
    (void)fd;
    (void)what;
    struct mg_timer *t = arg;
    t->cb_(t, t->arg_);
}

void mg_timer_init(struct mg_timer *t, struct mg_loop *l, mg_timer_cb cb, void *arg)
{
    memset(t, 0, sizeof *t);
    t->loop_ = l;
    t->cb_ = cb;
    t->arg_ = arg;
    if (!l->clock.sim_) {
        t->ev_ = event_new(l->base, -1, 0, mg_timer_ev_cb, t);
        MG_ASSERT(t->ev_); /* only fails on allocation failure */
    }
}

void mg_timer_start(struct mg_timer *t, uint64_t delay_ms)
{
    struct mg_loop *l = t->loop_;
    if (l->clock.sim_) {
        mg_loop_heap_push(l, t, l->clock.now_us_ + delay_ms * 1000u);
        return;
    }
    struct timeval tv = {(time_t)(delay_ms / 1000), (suseconds_t)((delay_ms % 1000) * 1000)};
    event_add(t->ev_, &tv);
}

void mg_timer_activate(struct mg_timer *t)
{
    struct mg_loop *l = t->loop_;
    if (l->clock.sim_) {
        mg_loop_heap_push(l, t, l->clock.now_us_);
        return;
    }
    event_active(t->ev_, EV_TIMEOUT, 1);
}

void mg_timer_stop(struct mg_timer *t)
{
    if (!t->loop_)
        return;
    if (t->loop_->clock.sim_) {
        if (t->heap_)
            mg_loop_heap_remove(t->loop_, t);
        return;
    }
    event_del(t->ev_);
}

bool mg_timer_pending(const struct mg_timer *t)
{
    if (!t->loop_)
        return false;
    if (t->loop_->clock.sim_)
        return t->heap_ != 0;
    return event_pending(t->ev_, EV_TIMEOUT, NULL) != 0;
}

void mg_timer_fini(struct mg_timer *t)
{
    if (!t->loop_)
        return;
    mg_timer_stop(t);
    if (t->ev_)
        event_free(t->ev_);
    memset(t, 0, sizeof *t);
}

/* ---- driving a simulated loop -------------------------------------------------------------- */

int mg_loop_run_due(struct mg_loop *l)
{
    MG_ASSERT(l->clock.sim_);
    int fired = 0;
    for (long pass = 0; pass < MAX_PASSES; pass++) {
        if (event_base_get_num_events(l->base, EVENT_BASE_COUNT_ACTIVE) > 0) {
            event_base_loop(l->base, EVLOOP_ONCE | EVLOOP_NONBLOCK);
            continue;
        }
        if (l->n == 0 || l->heap[0]->deadline_ > l->clock.now_us_)
            return fired;
        struct mg_timer *t = l->heap[0];
        mg_loop_heap_remove(l, t);
        fired++;
        t->cb_(t, t->arg_);
    }
    MG_ERROR("loop", "simulated loop: work still due after %d passes (livelock?)", MAX_PASSES);
    return -MG_EAGAIN;
}

int mg_loop_advance(struct mg_loop *l, uint64_t ms)
{
    uint64_t target = l->clock.now_us_ + ms * 1000u;
    for (;;) {
        int rc = mg_loop_run_due(l);
        if (rc < 0)
            return rc;
        if (l->n == 0 || l->heap[0]->deadline_ > target)
            break;
        l->clock.now_us_ = l->heap[0]->deadline_;
    }
    l->clock.now_us_ = target;
    return mg_loop_run_due(l);
}

bool mg_loop_step(struct mg_loop *l, uint64_t max_ms)
{
    if (mg_loop_run_due(l) < 0)
        return false;
    if (l->n == 0 || l->heap[0]->deadline_ > l->clock.now_us_ + max_ms * 1000u)
        return false;
    if (l->heap[0]->deadline_ > l->clock.now_us_)
        l->clock.now_us_ = l->heap[0]->deadline_;
    mg_loop_run_due(l);
    return true;
}

size_t mg_loop_timers_pending(const struct mg_loop *l)
{
    return l->n;
}
