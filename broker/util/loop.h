/*
 * loop.h - the loop context: the event_base a role runs on, plus the clock and the timers
 * that code on it uses, so that time can be simulated.
 *
 * A struct mg_loop is one of:
 *   real (mg_loop_new)     the clocks are clock_gettime (CLOCK_MONOTONIC, CLOCK_REALTIME)
 *                          and timers are libevent timers on the base;
 *   simulated              time stands still until the test moves it (mg_loop_advance,
 *   (mg_loop_new_sim)      mg_loop_step). Timers fire in deadline order, timers with the
 *                          same deadline in the order they were started; between two timer
 *                          firings the base's active events (deferred completions made
 *                          with event_active) all run. Nothing here reads the real clock,
 *                          so a simulation driven by one seed replays exactly.
 *
 * Modules that take a loop read the time with mg_loop_mono_ms / mg_loop_wall_ms and arm
 * their timers with mg_timer_*; nothing else on a simulated loop may add libevent timers
 * (they would follow the real clock) or wait for I/O.
 *
 * Threading: a loop and its timers belong to the thread running the base.
 */
#ifndef MG_LOOP_H
#define MG_LOOP_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <time.h>

struct event;
struct event_base;
struct mg_loop;

/* libevent's event_free, accepting NULL. */
void mg_event_free(struct event *ev);

/* A real-time loop on base (borrowed: it must outlive the loop). */
struct mg_loop *mg_loop_new(struct event_base *base);
/* A simulated loop on base, its monotonic clock at mono_ms and its wall clock at wall_ms.
 * The base must have no I/O or timer events of its own (active events are fine). */
struct mg_loop *mg_loop_new_sim(struct event_base *base, uint64_t mono_ms, int64_t wall_ms);
/* Free the loop; every timer must have been finished (mg_timer_fini). Accepts NULL. */
void mg_loop_free(struct mg_loop *l);

struct event_base *mg_loop_base(const struct mg_loop *l);
bool mg_loop_is_sim(const struct mg_loop *l);

/* The process's real clocks, for code that has no loop: log lines, library log hooks, the
 * bookie's journal thread, the ratelimiter, the client library and the perf tool. Every
 * clock_gettime of the daemon is one of these. Inline: a real loop's clock is one of them
 * behind one test, and publishes read it per message. */
static inline uint64_t mg_mono_ns(void) /* for waits below a microsecond (journal groups) */
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

static inline uint64_t mg_mono_us(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000u + (uint64_t)ts.tv_nsec / 1000u;
}

static inline uint64_t mg_mono_ms(void)
{
    return mg_mono_us() / 1000u;
}

static inline int64_t mg_wall_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static inline int64_t mg_wall_us(void) /* for end-to-end latencies against a publish time */
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (int64_t)ts.tv_sec * 1000000 + ts.tv_nsec / 1000;
}

/* The clock of a loop: the first member of struct mg_loop, so that reading a loop's time
 * is inline (publishes read it per message). Its fields are private. */
struct mg_loop_clock {
    bool sim_;           /* a simulated loop */
    uint64_t now_us_;    /* simulated: monotonic µs */
    int64_t wall_delta_; /* simulated: wall ms = mono ms + wall_delta_ */
};

/* Monotonic time (ms, µs): for deadlines, timeouts, latencies. */
static inline uint64_t mg_loop_mono_us(const struct mg_loop *l)
{
    const struct mg_loop_clock *c = (const struct mg_loop_clock *)(const void *)l;
    return c->sim_ ? c->now_us_ : mg_mono_us();
}

static inline uint64_t mg_loop_mono_ms(const struct mg_loop *l)
{
    const struct mg_loop_clock *c = (const struct mg_loop_clock *)(const void *)l;
    return c->sim_ ? c->now_us_ / 1000u : mg_mono_ms();
}

/* Wall-clock time (ms since the epoch): for what is stored or shown (ctime, lastActive). */
static inline int64_t mg_loop_wall_ms(const struct mg_loop *l)
{
    const struct mg_loop_clock *c = (const struct mg_loop_clock *)(const void *)l;
    return c->sim_ ? (int64_t)(c->now_us_ / 1000u) + c->wall_delta_ : mg_wall_ms();
}

/* ---- timers ----------------------------------------------------------------------------- */

struct mg_timer;
typedef void (*mg_timer_cb)(struct mg_timer *t, void *arg);

/* A one-shot timer, owned by the caller (embed it). Its fields are private. */
struct mg_timer {
    struct mg_loop *loop_; /* borrowed */
    mg_timer_cb cb_;
    void *arg_;
    struct event *ev_;  /* real loop: owned (created by mg_timer_init) */
    uint64_t deadline_; /* simulated loop: mono µs when it fires */
    uint64_t seq_;      /* simulated loop: start order, breaks deadline ties */
    size_t heap_;       /* simulated loop: 1 + index in the loop's heap; 0 = not pending */
};

/* Prepare t on l with its callback; it is not pending. */
void mg_timer_init(struct mg_timer *t, struct mg_loop *l, mg_timer_cb cb, void *arg);
/* (Re)arm t to fire once, delay_ms from now. */
void mg_timer_start(struct mg_timer *t, uint64_t delay_ms);
/* Fire t from the loop as soon as possible (before time moves), as event_active does: for
 * work that must run after the caller returns. Re-arms a pending timer. */
void mg_timer_activate(struct mg_timer *t);
/* Disarm (its callback will not run). Accepts an unarmed timer. */
void mg_timer_stop(struct mg_timer *t);
bool mg_timer_pending(const struct mg_timer *t);
/* Disarm and release t; accepts a zeroed or already finished timer. */
void mg_timer_fini(struct mg_timer *t);

/* ---- simulated loops ----------------------------------------------------------------------- */

/* Run everything due now, without moving time: the base's active events and the timers
 * whose deadline has come, until none is left. Returns the number of timer callbacks run,
 * or -MG_EAGAIN when the work did not stop after a bound of passes (a livelock). */
int mg_loop_run_due(struct mg_loop *l);
/* Move time forward by ms: fire the timers due on the way in deadline order, running what
 * each makes due before time moves on. Returns what mg_loop_run_due returned last
 * (-MG_EAGAIN: a livelock, time was not moved further). */
int mg_loop_advance(struct mg_loop *l, uint64_t ms);
/* Run what is due, then move time to the next timer deadline if it is at most max_ms away
 * and run what is due there. Returns true if time moved to a timer, false if none was
 * within max_ms (time is then unchanged). */
bool mg_loop_step(struct mg_loop *l, uint64_t max_ms);
/* Timers pending on the loop. */
size_t mg_loop_timers_pending(const struct mg_loop *l);

#endif
