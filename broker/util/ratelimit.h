/*
 * ratelimit.h - at most one log line per interval for a condition that repeats.
 *
 * A failure that can happen once per request (a publish failing while the bookies are
 * read-only, a read failing while a ledger is lost, an accept failing on EMFILE) must not
 * log once per event: at thousands of events per second the log becomes the outage. The
 * caller keeps one struct mg_ratelimit per condition (per connection, subscription,
 * listener...), asks before logging, and says in its line how many were held back:
 *
 *     uint64_t held;
 *     if (mg_ratelimit_allow(&c->rl_publish, MG_RATELIMIT_INTERVAL_MS, &held))
 *         MG_WARN("conn", "publish failed: %s (%" PRIu64 " more since the last line)", ...);
 *
 * Plain data; zero-initialised is ready. One thread per instance.
 */
#ifndef MG_RATELIMIT_H
#define MG_RATELIMIT_H

#include <stdbool.h>
#include <stdint.h>

#define MG_RATELIMIT_INTERVAL_MS 10000 /* the default interval: one line per 10 s */

struct mg_ratelimit {
    uint64_t next_ms; /* no line before this (monotonic clock, ms); 0 = the first is free */
    uint64_t held;    /* calls held back since the last line */
};

/* true when the caller may log now: *held (may be NULL) then gets the number of calls held
 * back since the last allowed one, and the count restarts. false: held back (counted). */
bool mg_ratelimit_allow(struct mg_ratelimit *r, uint64_t interval_ms, uint64_t *held);

#endif
