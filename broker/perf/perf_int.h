/*
 * perf_int.h - internals of the perf module: the option set, its parser and the latency
 * histogram. Included only by the perf module and tests/unit/check_perf.c.
 */
#ifndef MG_PERF_INT_H
#define MG_PERF_INT_H

#include "client/client.h"

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

/* ---- histogram ------------------------------------------------------------------------
 * Log-linear over non-negative integers (microseconds): values below 256 are counted
 * exactly; above, each power of two is split into 128 equal sub-buckets, so a bucket is at
 * most 1/128 of its lower bound wide and the reported midpoint is within 0.4% of any value
 * in it. Values at or above 2^40 (about 12.7 days in us) land in the last bucket; the exact
 * maximum is kept apart. Fixed size, no allocation: record is a few instructions. */
#define PERF_HIST_SUB_BITS 7
#define PERF_HIST_SUB (1u << PERF_HIST_SUB_BITS)
#define PERF_HIST_LINEAR (2u * PERF_HIST_SUB)
#define PERF_HIST_MAX_EXP 40
#define PERF_HIST_BUCKETS                                                                          \
    (PERF_HIST_LINEAR + (PERF_HIST_MAX_EXP - PERF_HIST_SUB_BITS - 1) * PERF_HIST_SUB)

struct perf_hist {
    uint64_t count;
    uint64_t min;
    uint64_t max;
    double sum;
    uint64_t buckets[PERF_HIST_BUCKETS];
};

void perf_hist_reset(struct perf_hist *h);
void perf_hist_record(struct perf_hist *h, uint64_t v);
/* dst += src */
void perf_hist_merge(struct perf_hist *dst, const struct perf_hist *src);
/* The value at percentile p (0..100]: the smallest recorded value v such that at least p%
 * of the values are <= v, within the bucket precision. 0 when empty. */
uint64_t perf_hist_percentile(const struct perf_hist *h, double p);
double perf_hist_mean(const struct perf_hist *h);
uint64_t perf_hist_max(const struct perf_hist *h);
/* Bucket index of v and the bounds of a bucket (exposed for tests). */
unsigned perf_hist_index(uint64_t v);
uint64_t perf_hist_bucket_low(unsigned idx);
uint64_t perf_hist_bucket_width(unsigned idx);

/* ---- options ---------------------------------------------------------------------- */
enum perf_mode { PERF_PRODUCE = 0, PERF_CONSUME };

struct perf_opts {
    enum perf_mode mode;
    const char *service_url; /* borrowed (argv or a literal) */
    long long num_topics;
    long long num_clients; /* producers (produce) or consumers (consume) per topic */
    double rate;           /* msg/s over all producers, 0 = unlimited */
    long long size;
    const char *payload_file; /* borrowed */
    long long batch_max_messages;
    long long batch_max_bytes;
    double batch_delay_ms;
    bool disable_batching;
    int compression; /* enum mg_codec: -z/--compression, as pulsar-perf's */
    long long max_pending;
    long long num_messages; /* 0 = unlimited */
    double duration_s;      /* 0 = unlimited */
    double warmup_s;
    double stats_interval_s;
    double connect_timeout_s;
    const char *json_path;       /* borrowed, NULL = none */
    const char *trust_cert_file; /* borrowed: --trust-cert-file, NULL = the system's CAs */
    const char *auth_plugin;     /* borrowed: --auth-plugin */
    const char *auth_params;     /* borrowed: --auth-params */
    char *auth_token;            /* owned: the token auth_params stands for, or NULL */
    char *tls_cert_file;         /* owned: AuthenticationTls' tlsCertFile, or NULL */
    char *tls_key_file;          /* owned: AuthenticationTls' tlsKeyFile, or NULL */
    const char *subscription;    /* borrowed */
    enum client_sub_type sub_type;
    long long queue_size;
    bool ack;
    enum client_initial_position position;
    const char **topics; /* owned array of borrowed argv strings */
    int ntopics;
};

/* Parse the arguments that follow "perf produce" / "perf consume" (argv[0] is the first
 * option or topic). Returns 0, 1 for --help, or -MG_EINVAL with a one-line reason in err.
 * On 0 or 1, free o->topics with perf_opts_fini. */
int perf_parse_args(enum perf_mode mode, int argc, char **argv, struct perf_opts *o, char *err,
                    size_t errlen);
void perf_opts_fini(struct perf_opts *o);
void perf_usage(enum perf_mode mode, FILE *out);

#endif
