/*
 * ratelimit.c - at most one log line per interval (ratelimit.h).
 */
#include "util/ratelimit.h"
#include "util/loop.h"

bool mg_ratelimit_allow(struct mg_ratelimit *r, uint64_t interval_ms, uint64_t *held)
{
    uint64_t now = mg_mono_ms();
    if (r->next_ms != 0 && now < r->next_ms) {
        r->held++;
        return false;
    }
    r->next_ms = now + interval_ms;
    if (held)
        *held = r->held;
    r->held = 0;
    return true;
}
