/*
 * perf_hist.c - the log-linear latency histogram of the perf tool (see perf_int.h).
 *
 * Happy path: record maps a value to its bucket with one count-leading-zeros and a shift;
 * percentile walks the buckets until the cumulative count reaches the rank and reports the
 * bucket's midpoint, clamped to the exact min and max. Merge adds bucket by bucket.
 * Failure modes: none; values beyond the range are counted in the last bucket (their exact
 * maximum is still reported), an empty histogram reports 0.
 */
#include "perf/perf_int.h"

#include <math.h>
#include <string.h>

#define PERF_HIST_LIMIT ((uint64_t)1 << PERF_HIST_MAX_EXP)

unsigned perf_hist_index(uint64_t v)
{
    if (v < PERF_HIST_LINEAR)
        return (unsigned)v;
    if (v >= PERF_HIST_LIMIT)
        v = PERF_HIST_LIMIT - 1;
    unsigned e = 63u - (unsigned)__builtin_clzll(v); /* 8 .. MAX_EXP-1 */
    unsigned shift = e - PERF_HIST_SUB_BITS;
    unsigned sub = (unsigned)(v >> shift) - PERF_HIST_SUB;
    return PERF_HIST_LINEAR + (e - PERF_HIST_SUB_BITS - 1) * PERF_HIST_SUB + sub;
}

uint64_t perf_hist_bucket_low(unsigned idx)
{
    if (idx < PERF_HIST_LINEAR)
        return idx;
    unsigned rel = idx - PERF_HIST_LINEAR;
    unsigned e = rel / PERF_HIST_SUB + PERF_HIST_SUB_BITS + 1;
    unsigned sub = rel % PERF_HIST_SUB;
    return (uint64_t)(PERF_HIST_SUB + sub) << (e - PERF_HIST_SUB_BITS);
}

uint64_t perf_hist_bucket_width(unsigned idx)
{
    if (idx < PERF_HIST_LINEAR)
        return 1;
    unsigned e = (idx - PERF_HIST_LINEAR) / PERF_HIST_SUB + PERF_HIST_SUB_BITS + 1;
    return (uint64_t)1 << (e - PERF_HIST_SUB_BITS);
}

void perf_hist_reset(struct perf_hist *h)
{
    memset(h, 0, sizeof(*h));
}

void perf_hist_record(struct perf_hist *h, uint64_t v)
{
    h->buckets[perf_hist_index(v)]++;
    if (h->count == 0 || v < h->min)
        h->min = v;
    if (v > h->max)
        h->max = v;
    h->count++;
    h->sum += (double)v;
}

void perf_hist_merge(struct perf_hist *dst, const struct perf_hist *src)
{
    if (src->count == 0)
        return;
    for (unsigned i = 0; i < PERF_HIST_BUCKETS; i++)
        dst->buckets[i] += src->buckets[i];
    if (dst->count == 0 || src->min < dst->min)
        dst->min = src->min;
    if (src->max > dst->max)
        dst->max = src->max;
    dst->count += src->count;
    dst->sum += src->sum;
}

uint64_t perf_hist_percentile(const struct perf_hist *h, double p)
{
    if (h->count == 0)
        return 0;
    if (p >= 100.0)
        return h->max;
    double r = ceil(p / 100.0 * (double)h->count);
    uint64_t rank = r < 1.0 ? 1 : (uint64_t)r;
    uint64_t seen = 0;
    for (unsigned i = 0; i < PERF_HIST_BUCKETS; i++) {
        seen += h->buckets[i];
        if (seen >= rank) {
            uint64_t v = perf_hist_bucket_low(i) + perf_hist_bucket_width(i) / 2;
            if (v > h->max)
                v = h->max;
            if (v < h->min)
                v = h->min;
            return v;
        }
    }
    return h->max;
}

double perf_hist_mean(const struct perf_hist *h)
{
    return h->count ? h->sum / (double)h->count : 0.0;
}

uint64_t perf_hist_max(const struct perf_hist *h)
{
    return h->max;
}
