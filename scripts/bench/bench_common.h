/*
 * bench_common.h - shared helpers of the benchmark drivers in scripts/bench/ (header only;
 * they are compiled by scripts/bench.sh with gcc, not by the project build).
 *
 * A run measures publishes from send to acknowledgement. The first --warmup seconds are
 * left out of the figures (as `magnetar perf --warmup-time 1` does), so every driver
 * reports msg/s and latency percentiles over the same part of its run and writes them as
 * JSON with the field names of `magnetar perf --json` (msg_per_s, latency_ms.p50 ...).
 */
#ifndef BENCH_COMMON_H
#define BENCH_COMMON_H

#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

static inline uint64_t bc_now_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

/* Latency samples in microseconds, kept whole (a 10 s run at 500k msg/s is 20 MB). */
struct bc_lat {
    uint32_t *v;
    size_t n, cap;
    uint64_t sum_us;
};

static inline void bc_lat_add(struct bc_lat *l, uint64_t ns)
{
    if (l->n == l->cap) {
        l->cap = l->cap ? l->cap * 2 : 1u << 20;
        l->v = realloc(l->v, l->cap * sizeof *l->v);
        if (!l->v) {
            fprintf(stderr, "bench: out of memory\n");
            exit(1);
        }
    }
    uint64_t us = ns / 1000;
    if (us > UINT32_MAX)
        us = UINT32_MAX;
    l->v[l->n++] = (uint32_t)us;
    l->sum_us += us;
}

static int bc_cmp_u32(const void *a, const void *b)
{
    uint32_t x = *(const uint32_t *)a, y = *(const uint32_t *)b;
    return x < y ? -1 : x > y;
}

static inline double bc_pct_ms(const struct bc_lat *l, double p)
{
    if (l->n == 0)
        return 0;
    size_t i = (size_t)(p / 100.0 * (double)l->n);
    if (i >= l->n)
        i = l->n - 1;
    return l->v[i] / 1000.0;
}

/* Sorts the samples; writes {"msg_per_s", "mbit_per_s", "messages_acked", "latency_ms"{}}
 * plus the extra fields in `extra` (already JSON: `"k": v, ...` or ""). */
static inline int bc_write_json(const char *path, struct bc_lat *l, double secs, size_t size,
                                uint64_t sent, uint64_t failed, const char *extra)
{
    qsort(l->v, l->n, sizeof *l->v, bc_cmp_u32);
    double rate = secs > 0 ? (double)l->n / secs : 0;
    char buf[2048];
    snprintf(buf, sizeof buf,
             "{\"msg_per_s\": %.1f, \"mbit_per_s\": %.2f, \"duration_s\": %.3f, "
             "\"message_size\": %zu, \"messages_sent\": %llu, \"messages_acked\": %zu, "
             "\"messages_failed\": %llu, \"latency_ms\": {\"count\": %zu, \"mean\": %.3f, "
             "\"p50\": %.3f, \"p95\": %.3f, \"p99\": %.3f, \"p99_9\": %.3f, \"max\": %.3f}%s%s}\n",
             rate, rate * (double)size * 8 / 1e6, secs, size, (unsigned long long)sent, l->n,
             (unsigned long long)failed, l->n, l->n ? (double)l->sum_us / (double)l->n / 1000.0 : 0,
             bc_pct_ms(l, 50), bc_pct_ms(l, 95), bc_pct_ms(l, 99), bc_pct_ms(l, 99.9),
             l->n ? l->v[l->n - 1] / 1000.0 : 0, extra && *extra ? ", " : "", extra ? extra : "");
    printf("%s", buf);
    if (path) {
        FILE *f = fopen(path, "w");
        if (!f || fputs(buf, f) < 0 || fclose(f) != 0) {
            perror(path);
            return -1;
        }
    }
    return 0;
}

static inline const char *bc_opt(int argc, char **argv, const char *name, const char *def)
{
    for (int i = 1; i + 1 < argc; i++)
        if (strcmp(argv[i], name) == 0)
            return argv[i + 1];
    return def;
}

/* The options every driver takes: PORT, then --stream NAME (the Redis stream key or the
 * JetStream stream: bench), --outstanding N (1000), --size N (1024),
 * --rate R (0 = as fast as the window allows), --seconds S (10), --warmup S (1),
 * --messages N (0 = no limit: publishers stop sending, consumers stop receiving after N)
 * and --json FILE (none). */
struct bc_args {
    int port;
    long window;
    size_t size;
    double rate, secs, warm;
    unsigned long long messages;
    const char *stream;
    const char *json;
};

/* Fill a from argv; false, with "usage: <usage>" printed, when PORT is missing. */
static inline bool bc_args_parse(int argc, char **argv, const char *usage, struct bc_args *a)
{
    if (argc < 2 || argv[1][0] == '-') {
        fprintf(stderr, "usage: %s\n", usage);
        return false;
    }
    a->port = atoi(argv[1]);
    a->window = atol(bc_opt(argc, argv, "--outstanding", "1000"));
    a->size = (size_t)atol(bc_opt(argc, argv, "--size", "1024"));
    a->rate = atof(bc_opt(argc, argv, "--rate", "0"));
    a->secs = atof(bc_opt(argc, argv, "--seconds", "10"));
    a->warm = atof(bc_opt(argc, argv, "--warmup", "1"));
    a->messages = strtoull(bc_opt(argc, argv, "--messages", "0"), NULL, 10);
    a->stream = bc_opt(argc, argv, "--stream", "bench");
    a->json = bc_opt(argc, argv, "--json", NULL);
    return true;
}

/* The token bucket pacing --rate: credit for the time since *last, at most 5 ms of burst. */
static inline void bc_tokens_refill(double *tokens, double rate, uint64_t now, uint64_t *last)
{
    *tokens += rate * (double)(now - *last) / 1e9;
    if (*tokens > rate * 0.005 + 1)
        *tokens = rate * 0.005 + 1;
    *last = now;
}

/* ---- consumers ------------------------------------------------------------------------
 * Every publisher stamps its CLOCK_MONOTONIC send time (ns) in the first 8 bytes of each
 * payload; the clock is the machine's, so a consumer in another process on the same machine
 * measures end-to-end latency (send -> receipt) as now - stamp. A consumer run ends after
 * --seconds, or once --messages N have arrived (a catch-up read: the figure is then the
 * drain rate from the first message to the Nth). */
struct bc_rx {
    struct bc_lat lat;
    uint64_t t0, t_warm, t_end, first, last, msgs, bytes, warm_bytes;
    unsigned long long target;
};

static inline void bc_rx_start(struct bc_rx *x, const struct bc_args *a)
{
    memset(x, 0, sizeof *x);
    x->t0 = bc_now_ns();
    /* a catch-up read counts everything: no warm-up */
    x->t_warm = a->messages ? x->t0 : x->t0 + (uint64_t)(a->warm * 1e9);
    x->t_end = x->t0 + (uint64_t)(a->secs * 1e9);
    x->target = a->messages;
}

/* One message (payload data, len bytes) received at now. */
static inline void bc_rx_record(struct bc_rx *x, uint64_t now, const void *data, size_t len)
{
    uint64_t s = 0;
    if (len >= 8)
        memcpy(&s, data, 8);
    if (!x->first)
        x->first = now;
    x->last = now;
    x->msgs++;
    x->bytes += len;
    if (now >= x->t_warm) {
        x->warm_bytes += len;
        bc_lat_add(&x->lat, s && now > s ? now - s : 0);
    }
}

static inline bool bc_rx_done(const struct bc_rx *x, uint64_t now)
{
    return now >= x->t_end || (x->target && x->msgs >= x->target);
}

/* The JSON summary: msg/s and MB/s received after the warm-up (a catch-up read: from the
 * first message to the last), and send-to-receipt latency. */
static inline int bc_rx_write(const char *path, struct bc_rx *x, const char *extra)
{
    uint64_t from = x->target ? x->first : x->t_warm;
    double secs = x->last > from ? (double)(x->last - from) / 1e9 : 0;
    size_t size = x->msgs ? (size_t)(x->bytes / x->msgs) : 0;
    char more[512];
    snprintf(more, sizeof more,
             "\"messages_received\": %llu, \"bytes_received\": %llu, \"mb_per_s\": %.2f%s%s",
             (unsigned long long)x->msgs, (unsigned long long)x->bytes,
             secs > 0 ? (double)x->warm_bytes / secs / 1e6 : 0, extra && *extra ? ", " : "",
             extra ? extra : "");
    return bc_write_json(path, &x->lat, secs, size, 0, 0, more);
}

#endif
