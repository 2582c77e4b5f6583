/*
 * ratelimit.c - at most one log line per interval (ratelimit.h).
 */
#include "util/ratelimit.h"

#include <time.h>

static uint64_t mg_ratelimit_now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000u + (uint64_t)ts.tv_nsec / 1000000u;
}

bool mg_ratelimit_allow(struct mg_ratelimit *r, uint64_t interval_ms, uint64_t *held)
{
    uint64_t now = mg_ratelimit_now_ms();
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
