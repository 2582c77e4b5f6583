/*
 * perf.c - `magnetar perf produce|consume`, a load generator and latency meter with
 * pulsar-perf's option names.
 *
 * Happy path: parse the options (own parser: pulsar-perf mixes -bm style short names with
 * --long ones), create a client on a private event_base, ask each topic's partition count,
 * create the producers or consumers (per partition), then run. Produce: a 1 ms tick fills a
 * token bucket at --rate (or none: as fast as the pending windows allow) and sends
 * round-robin; each receipt records send-to-receipt latency. Consume: each message records
 * now - publish_time and is acked. A report line comes 1 s after start and then every
 * --stats-interval; at the end (--num-messages reached and acknowledged, --test-duration,
 * or SIGINT) a summary line and the optional --json file are written.
 * Failure modes: bad usage prints one line on stderr and returns 2. A bad URL, an
 * unreachable broker (connect refused or --connect-timeout), or a failed lookup / PRODUCER /
 * SUBSCRIBE prints one line on stderr and returns 1. Send failures after start are counted
 * and reported, not fatal. A JSON file that cannot be written returns 1.
 */
#include "perf/perf.h"
#include "auth/auth.h"
#include "perf/perf_int.h"

#include "util/alloc.h"
#include "util/compress.h"
#include "util/err.h"
#include "util/log.h"
#include "util/loop.h"

#include <ctype.h>
#include <errno.h>
#include <event2/event.h>
#include <jansson.h>
#include <math.h>
#include <signal.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#define EXIT_FAIL 1
#define EXIT_USAGE 2
#define PERF_DRAIN_S 10.0 /* how long to wait for outstanding receipts at the end */

/* ------------------------------------------------------------------------------------- */
/* options */

enum perf_opt_type {
    PERF_OPT_STR = 0,
    PERF_OPT_INT,
    PERF_OPT_DOUBLE,
    PERF_OPT_TRUE,
    PERF_OPT_FALSE,
    PERF_OPT_SUBTYPE,
    PERF_OPT_POSITION,
    PERF_OPT_CODEC,
    PERF_OPT_HELP,
};

#define PERF_M_PROD 1u
#define PERF_M_CONS 2u
#define PERF_M_BOTH 3u

struct perf_opt_def {
    const char *names[4];
    unsigned modes;
    enum perf_opt_type type;
    size_t off;
    double min;
    double max;
};

#define OFF(f) offsetof(struct perf_opts, f)

/* One option per line reads better as a table. */
/* clang-format off */
static const struct perf_opt_def perf_opt_defs[] = {
    {{"-u", "--service-url"}, PERF_M_BOTH, PERF_OPT_STR, OFF(service_url), 0, 0},
    {{"-t", "--num-topics", "--num-topic"}, PERF_M_BOTH, PERF_OPT_INT, OFF(num_topics), 1, 100000},
    {{"-n", "--num-producers"}, PERF_M_PROD, PERF_OPT_INT, OFF(num_clients), 1, 10000},
    {{"-n", "--num-consumers"}, PERF_M_CONS, PERF_OPT_INT, OFF(num_clients), 1, 10000},
    {{"-r", "--rate"}, PERF_M_PROD, PERF_OPT_DOUBLE, OFF(rate), 0, 1e9},
    {{"-s", "--size"}, PERF_M_PROD, PERF_OPT_INT, OFF(size), 0, 5 * 1024 * 1024 - 1024},
    {{"-f", "--payload-file"}, PERF_M_PROD, PERF_OPT_STR, OFF(payload_file), 0, 0},
    {{"-bm", "--batch-max-messages"}, PERF_M_PROD, PERF_OPT_INT, OFF(batch_max_messages), 1,
     1000000},
    {{"-bb", "--batch-max-bytes"}, PERF_M_PROD, PERF_OPT_INT, OFF(batch_max_bytes), 1,
     5 * 1024 * 1024},
    {{"-b", "--batch-time-window", "--batch-max-publish-delay"}, PERF_M_PROD, PERF_OPT_DOUBLE,
     OFF(batch_delay_ms), 0, 3600000},
    {{"-db", "--disable-batching"}, PERF_M_PROD, PERF_OPT_TRUE, OFF(disable_batching), 0, 0},
    {{"-z", "--compression", "--compression-type"}, PERF_M_PROD, PERF_OPT_CODEC, OFF(compression),
     0, 0},
    {{"-o", "--max-outstanding", "--max-pending"}, PERF_M_PROD, PERF_OPT_INT, OFF(max_pending),
     1, 10000000},
    {{"-m", "--num-messages"}, PERF_M_BOTH, PERF_OPT_INT, OFF(num_messages), 0, 1e18},
    {{"-time", "--test-duration"}, PERF_M_BOTH, PERF_OPT_DOUBLE, OFF(duration_s), 0, 1e9},
    {{"--warmup-time"}, PERF_M_BOTH, PERF_OPT_DOUBLE, OFF(warmup_s), 0, 1e6},
    {{"-i", "--stats-interval", "--stats-interval-seconds"}, PERF_M_BOTH, PERF_OPT_DOUBLE,
     OFF(stats_interval_s), 0.1, 1e6},
    {{"--connect-timeout"}, PERF_M_BOTH, PERF_OPT_DOUBLE, OFF(connect_timeout_s), 0.1, 3600},
    {{"--json"}, PERF_M_BOTH, PERF_OPT_STR, OFF(json_path), 0, 0},
    {{"--trust-cert-file"}, PERF_M_BOTH, PERF_OPT_STR, OFF(trust_cert_file), 0, 0},
    {{"--auth-plugin"}, PERF_M_BOTH, PERF_OPT_STR, OFF(auth_plugin), 0, 0},
    {{"--auth-params"}, PERF_M_BOTH, PERF_OPT_STR, OFF(auth_params), 0, 0},
    {{"-s", "--subscription", "--subscriber-name"}, PERF_M_CONS, PERF_OPT_STR,
     OFF(subscription), 0, 0},
    {{"-st", "--subscription-type"}, PERF_M_CONS, PERF_OPT_SUBTYPE, OFF(sub_type), 0, 0},
    {{"-q", "--receiver-queue-size"}, PERF_M_CONS, PERF_OPT_INT, OFF(queue_size), 1, 1000000},
    {{"--ack"}, PERF_M_CONS, PERF_OPT_TRUE, OFF(ack), 0, 0},
    {{"--no-ack"}, PERF_M_CONS, PERF_OPT_FALSE, OFF(ack), 0, 0},
    {{"-p", "--subscription-position", "--subscription-initial-position"}, PERF_M_CONS,
     PERF_OPT_POSITION, OFF(position), 0, 0},
    {{"-h", "--help"}, PERF_M_BOTH, PERF_OPT_HELP, 0, 0, 0},
};
/* clang-format on */

void perf_usage(enum perf_mode mode, FILE *out)
{
    if (mode == PERF_PRODUCE) {
        fprintf(out,
                "usage: magnetar perf produce [options] TOPIC...\n"
                "\n"
                "  -u, --service-url URL        pulsar://host:port or pulsar+ssl://host:port\n"
                "                               (pulsar://127.0.0.1:6650)\n"
                "  -t, --num-topics N           topics TOPIC-0..N-1 per TOPIC when N > 1 (1)\n"
                "  -n, --num-producers N        producers per topic (1)\n"
                "  -r, --rate R                 msg/s over all producers, 0 = max (100)\n"
                "  -s, --size BYTES             message size (1024)\n"
                "  -f, --payload-file FILE      send the file's bytes as each payload\n"
                "  -bm, --batch-max-messages N  messages per batch (1000)\n"
                "  -bb, --batch-max-bytes N     bytes per batch (131072)\n"
                "  -b, --batch-time-window MS   max publish delay (1); also\n"
                "                               --batch-max-publish-delay\n"
                "  -db, --disable-batching      one SEND per message\n"
                "  -z, --compression CODEC      NONE, LZ4, ZLIB, ZSTD or SNAPPY (NONE); also\n"
                "                               --compression-type\n"
                "  -o, --max-outstanding N      pending messages per producer (1000); also\n"
                "                               --max-pending\n"
                "  -m, --num-messages N         stop after N messages in all, 0 = no limit (0)\n"
                "  -time, --test-duration S     stop after S seconds, 0 = no limit (0)\n");
    } else {
        fprintf(out,
                "usage: magnetar perf consume [options] TOPIC...\n"
                "\n"
                "  -u, --service-url URL        pulsar://host:port or pulsar+ssl://host:port\n"
                "                               (pulsar://127.0.0.1:6650)\n"
                "  -t, --num-topics N           topics TOPIC-0..N-1 per TOPIC when N > 1 (1)\n"
                "  -n, --num-consumers N        consumers per topic (1)\n"
                "  -s, --subscription NAME      subscription name (sub)\n"
                "  -st, --subscription-type T   Exclusive|Shared|Failover|Key_Shared (Exclusive)\n"
                "  -q, --receiver-queue-size N  FLOW permits per consumer (1000)\n"
                "  --ack | --no-ack             acknowledge messages (on)\n"
                "  -p, --subscription-position P  Latest|Earliest for a new subscription\n"
                "                               (Latest)\n"
                "  -m, --num-messages N         stop after N messages in all, 0 = no limit (0)\n"
                "  -time, --test-duration S     stop after S seconds, 0 = no limit (0)\n");
    }
    fprintf(out,
            "  --warmup-time S              leave the first S seconds out of the summary (1)\n"
            "  -i, --stats-interval S       seconds between report lines, the first after\n"
            "                               1 s (10)\n"
            "  --connect-timeout S          give up connecting after S seconds (10)\n"
            "  --json FILE                  write the summary as JSON\n"
            "  --trust-cert-file FILE       CA bundle (PEM) for pulsar+ssl:// brokers\n"
            "  --auth-plugin CLASS          org.apache.pulsar.client.impl.auth.\n"
            "                               AuthenticationToken (or token), or\n"
            "                               AuthenticationTls (or tls)\n"
            "  --auth-params P              token:TOKEN or file:///path/of/token; for tls\n"
            "                               tlsCertFile:CERT.pem,tlsKeyFile:KEY.pem\n"
            "  -h, --help                   this help\n"
            "\n"
            "Latency is in milliseconds: %s.\n",
            mode == PERF_PRODUCE ? "send to receipt" : "end to end, now - publish time");
}

static void perf_opts_defaults(enum perf_mode mode, struct perf_opts *o)
{
    memset(o, 0, sizeof(*o));
    o->mode = mode;
    o->service_url = "pulsar://127.0.0.1:6650";
    o->num_topics = 1;
    o->num_clients = 1;
    o->rate = 100;
    o->size = 1024;
    o->batch_max_messages = 1000;
    o->batch_max_bytes = 128 * 1024;
    o->batch_delay_ms = 1;
    o->max_pending = 1000;
    o->warmup_s = 1;
    o->stats_interval_s = 10;
    o->connect_timeout_s = 10;
    o->subscription = "sub";
    o->sub_type = CLIENT_SUB_EXCLUSIVE;
    o->queue_size = 1000;
    o->ack = true;
    o->position = CLIENT_POS_LATEST;
}

static const struct perf_opt_def *perf_opt_find(enum perf_mode mode, const char *name, size_t len)
{
    unsigned m = mode == PERF_PRODUCE ? PERF_M_PROD : PERF_M_CONS;
    for (size_t i = 0; i < sizeof(perf_opt_defs) / sizeof(perf_opt_defs[0]); i++) {
        const struct perf_opt_def *d = &perf_opt_defs[i];
        if (!(d->modes & m))
            continue;
        for (int j = 0; j < 4 && d->names[j]; j++)
            if (strlen(d->names[j]) == len && strncmp(d->names[j], name, len) == 0)
                return d;
    }
    return NULL;
}

static bool perf_parse_number(const char *s, double *out)
{
    char *end;
    errno = 0;
    double v = strtod(s, &end);
    if (errno != 0 || end == s || *end != '\0' || !isfinite(v))
        return false;
    *out = v;
    return true;
}

static int perf_opt_apply(const struct perf_opt_def *d, const char *name, const char *val,
                          struct perf_opts *o, char *err, size_t errlen)
{
    char *base = (char *)o;
    double v;
    switch (d->type) {
    case PERF_OPT_STR:
        if (!*val) {
            snprintf(err, errlen, "option %s needs a non-empty value", name);
            return -MG_EINVAL;
        }
        *(const char **)(base + d->off) = val;
        return 0;
    case PERF_OPT_INT:
    case PERF_OPT_DOUBLE:
        if (!perf_parse_number(val, &v)) {
            snprintf(err, errlen, "option %s: '%s' is not a number", name, val);
            return -MG_EINVAL;
        }
        if (d->type == PERF_OPT_INT && v != floor(v)) {
            snprintf(err, errlen, "option %s: '%s' is not a whole number", name, val);
            return -MG_EINVAL;
        }
        if (v < d->min || v > d->max) {
            snprintf(err, errlen, "option %s: %s is out of range [%g, %g]", name, val, d->min,
                     d->max);
            return -MG_EINVAL;
        }
        if (d->type == PERF_OPT_INT)
            *(long long *)(base + d->off) = (long long)v;
        else
            *(double *)(base + d->off) = v;
        return 0;
    case PERF_OPT_SUBTYPE: {
        static const char *names[] = {"Exclusive", "Shared", "Failover", "Key_Shared"};
        for (int i = 0; i < 4; i++) {
            if (strcasecmp(val, names[i]) == 0 || (i == 3 && strcasecmp(val, "KeyShared") == 0)) {
                *(enum client_sub_type *)(base + d->off) = (enum client_sub_type)i;
                return 0;
            }
        }
        snprintf(err, errlen, "option %s: '%s' is not Exclusive, Shared, Failover or Key_Shared",
                 name, val);
        return -MG_EINVAL;
    }
    case PERF_OPT_POSITION:
        if (strcasecmp(val, "Latest") == 0) {
            *(enum client_initial_position *)(base + d->off) = CLIENT_POS_LATEST;
            return 0;
        }
        if (strcasecmp(val, "Earliest") == 0) {
            *(enum client_initial_position *)(base + d->off) = CLIENT_POS_EARLIEST;
            return 0;
        }
        snprintf(err, errlen, "option %s: '%s' is not Latest or Earliest", name, val);
        return -MG_EINVAL;
    case PERF_OPT_CODEC: {
        int codec = mg_codec_parse(val);
        if (codec < 0) {
            snprintf(err, errlen, "option %s: '%s' is not NONE, LZ4, ZLIB, ZSTD or SNAPPY", name,
                     val);
            return -MG_EINVAL;
        }
        *(int *)(base + d->off) = codec;
        return 0;
    }
    default:
        return -MG_EINVAL;
    }
}

void perf_opts_fini(struct perf_opts *o)
{
    if (!o)
        return;
    mg_free(o->topics);
    o->topics = NULL;
    o->ntopics = 0;
    mg_free(o->auth_token);
    o->auth_token = NULL;
    mg_free(o->tls_cert_file);
    mg_free(o->tls_key_file);
    o->tls_cert_file = o->tls_key_file = NULL;
}

/* AuthenticationTls' parameters, as Pulsar's clients write them:
 * "tlsCertFile:/path/cert.pem,tlsKeyFile:/path/key.pem". */
static int perf_auth_tls(struct perf_opts *o, char *err, size_t errlen)
{
    const char *p = o->auth_params ? o->auth_params : "";
    while (*p) {
        const char *e = strchr(p, ',');
        size_t n = e ? (size_t)(e - p) : strlen(p);
        char **dst = strncmp(p, "tlsCertFile:", 12) == 0  ? &o->tls_cert_file
                     : strncmp(p, "tlsKeyFile:", 11) == 0 ? &o->tls_key_file
                                                          : NULL;
        if (!dst) {
            snprintf(err, errlen, "--auth-params: unknown AuthenticationTls parameter in '%s'",
                     o->auth_params);
            return -MG_EINVAL;
        }
        size_t skip = dst == &o->tls_cert_file ? 12 : 11;
        mg_free(*dst);
        *dst = mg_strndup(p + skip, n - skip);
        p = e ? e + 1 : p + n;
    }
    if (!o->tls_cert_file || !o->tls_key_file || !o->tls_cert_file[0] || !o->tls_key_file[0]) {
        snprintf(err, errlen, "--auth-params: AuthenticationTls needs tlsCertFile:F,tlsKeyFile:F");
        return -MG_EINVAL;
    }
    return 0;
}

/* --auth-plugin/--auth-params as pulsar-perf takes them: AuthenticationToken ("token:xxx",
 * or "file:///path") or AuthenticationTls. */
static int perf_auth_token(struct perf_opts *o, char *err, size_t errlen)
{
    if (!o->auth_plugin && !o->auth_params)
        return 0;
    if (o->auth_plugin &&
        (strcmp(o->auth_plugin, "tls") == 0 || strcmp(o->auth_plugin, AUTH_CLIENT_TLS) == 0))
        return perf_auth_tls(o, err, errlen);
    char why[256];
    int rc = auth_client_token(o->auth_plugin, o->auth_params, &o->auth_token, why, sizeof why);
    if (rc < 0)
        snprintf(err, errlen, "%s: %s%s", rc == -MG_ENOTSUP ? "--auth-plugin" : "--auth-params",
                 why, rc == -MG_ENOTSUP ? " (and " AUTH_CLIENT_TLS ")" : "");
    return rc < 0 ? -MG_EINVAL : 0;
}

int perf_parse_args(enum perf_mode mode, int argc, char **argv, struct perf_opts *o, char *err,
                    size_t errlen)
{
    perf_opts_defaults(mode, o);
    o->topics = mg_calloc((size_t)argc + 1, sizeof(*o->topics));
    bool only_topics = false;
    for (int i = 0; i < argc; i++) {
        const char *a = argv[i];
        if (only_topics || a[0] != '-' || a[1] == '\0') {
            o->topics[o->ntopics++] = a;
            continue;
        }
        if (strcmp(a, "--") == 0) {
            only_topics = true;
            continue;
        }
        const char *eq = strchr(a, '=');
        size_t nlen = eq ? (size_t)(eq - a) : strlen(a);
        const struct perf_opt_def *d = perf_opt_find(mode, a, nlen);
        if (!d) {
            snprintf(err, errlen, "unknown option '%.*s' (see --help)", (int)nlen, a);
            goto fail;
        }
        char name[64];
        snprintf(name, sizeof name, "%.*s", (int)nlen, a);
        if (d->type == PERF_OPT_HELP)
            return 1;
        if (d->type == PERF_OPT_TRUE || d->type == PERF_OPT_FALSE) {
            if (eq) {
                snprintf(err, errlen, "option %s takes no value", name);
                goto fail;
            }
            *(bool *)((char *)o + d->off) = d->type == PERF_OPT_TRUE;
            continue;
        }
        const char *val;
        if (eq) {
            val = eq + 1;
        } else if (i + 1 < argc) {
            val = argv[++i];
        } else {
            snprintf(err, errlen, "option %s needs a value", name);
            goto fail;
        }
        if (perf_opt_apply(d, name, val, o, err, errlen) < 0)
            goto fail;
    }
    if (o->ntopics == 0) {
        snprintf(err, errlen, "no topic given (see --help)");
        goto fail;
    }
    char *host = NULL;
    int port;
    if (client_parse_url(o->service_url, &host, &port, err, errlen) < 0)
        goto fail;
    mg_free(host);
    if (perf_auth_token(o, err, errlen) < 0)
        goto fail;
    return 0;
fail:
    perf_opts_fini(o);
    return -MG_EINVAL;
}

/* ------------------------------------------------------------------------------------- */
/* run state */

struct perf_run;

/* One producer or consumer and its topic. */
struct perf_ep {
    struct perf_run *run;             /* borrowed */
    char *topic;                      /* owned */
    struct client_producer *producer; /* owned */
    struct client_consumer *consumer; /* owned */
    bool full;                        /* the last send hit the pending window */
};

struct perf_counters {
    uint64_t msgs;
    uint64_t bytes;
    uint64_t failed;
};

struct perf_run {
    struct perf_opts *o;     /* borrowed */
    struct event_base *base; /* owned */
    struct client *client;   /* owned */
    char **topics;           /* owned: the expanded topic names */
    int ntopics;
    uint32_t *partitions; /* owned: per topic */
    int partitions_left;
    struct perf_ep *eps; /* owned array */
    int neps;
    int nready;
    bool running;
    bool stopping; /* no more sends; waiting for receipts */
    bool done;
    int exit_code;
    uint8_t *payload; /* owned */
    size_t payload_len;
    uint64_t start_us;
    uint64_t warm_us; /* start + warmup */
    uint64_t last_report_us;
    uint64_t stop_us;
    double tokens;
    uint64_t last_fill_us;
    size_t rr;
    uint64_t sent;
    uint64_t outstanding;
    struct perf_counters interval;
    struct perf_counters all;
    struct perf_counters warm;
    struct perf_hist *h_interval; /* owned */
    struct perf_hist *h_all;      /* owned */
    struct perf_hist *h_warm;     /* owned */
    struct event *tick_ev;        /* owned: 1 ms rate tick */
    struct event *pump_ev;        /* owned: deferred send pass */
    struct event *report_ev;      /* owned */
    struct event *stop_ev;        /* owned: test duration */
    struct event *drain_ev;       /* owned: give up waiting for receipts */
    struct event *sigint_ev;      /* owned */
    struct event *sigterm_ev;     /* owned */
};

static struct timeval perf_tv_s(double s)
{
    struct timeval tv;
    tv.tv_sec = (time_t)s;
    tv.tv_usec = (suseconds_t)((s - (double)tv.tv_sec) * 1e6);
    return tv;
}

static void perf_fatal(struct perf_run *r, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));

/* One line on stderr, exit code 1, stop the loop. Only the first error is printed. */
static void perf_fatal(struct perf_run *r, const char *fmt, ...)
{
    if (r->done)
        return;
    r->done = true;
    r->exit_code = EXIT_FAIL;
    va_list ap;
    va_start(ap, fmt);
    fprintf(stderr, "magnetar perf: ");
    vfprintf(stderr, fmt, ap);
    fprintf(stderr, "\n");
    va_end(ap);
    event_base_loopbreak(r->base);
}

static void perf_record(struct perf_run *r, uint64_t lat_us, size_t bytes, uint64_t now_us)
{
    r->interval.msgs++;
    r->interval.bytes += bytes;
    r->all.msgs++;
    r->all.bytes += bytes;
    perf_hist_record(r->h_interval, lat_us);
    perf_hist_record(r->h_all, lat_us);
    if (now_us >= r->warm_us) {
        r->warm.msgs++;
        r->warm.bytes += bytes;
        perf_hist_record(r->h_warm, lat_us);
    }
}

static void perf_print_line(struct perf_run *r, const char *what, double secs,
                            const struct perf_counters *c, const struct perf_hist *h,
                            double elapsed)
{
    double rate = secs > 0 ? (double)c->msgs / secs : 0;
    double mbit = secs > 0 ? (double)c->bytes * 8.0 / secs / 1e6 : 0;
    printf("%s [%7.1fs] %s: %10.1f msg/s %9.2f Mbit/s",
           r->o->mode == PERF_PRODUCE ? "produce" : "consume", elapsed, what, rate, mbit);
    if (r->o->mode == PERF_PRODUCE)
        printf("  pending %6llu  failed %llu", (unsigned long long)r->outstanding,
               (unsigned long long)c->failed);
    printf("  latency ms: mean %.3f p50 %.3f p95 %.3f p99 %.3f p99.9 %.3f max %.3f\n",
           perf_hist_mean(h) / 1000.0, (double)perf_hist_percentile(h, 50) / 1000.0,
           (double)perf_hist_percentile(h, 95) / 1000.0,
           (double)perf_hist_percentile(h, 99) / 1000.0,
           (double)perf_hist_percentile(h, 99.9) / 1000.0, (double)perf_hist_max(h) / 1000.0);
    fflush(stdout);
}

static void perf_report_cb(evutil_socket_t fd, short what, void *arg)
{
    (void)fd;
    (void)what;
    struct perf_run *r = arg;
    uint64_t now = mg_mono_us();
    double secs = (double)(now - r->last_report_us) / 1e6;
    perf_print_line(r, "interval", secs, &r->interval, r->h_interval,
                    (double)(now - r->start_us) / 1e6);
    memset(&r->interval, 0, sizeof(r->interval));
    perf_hist_reset(r->h_interval);
    r->last_report_us = now;
    struct timeval tv = perf_tv_s(r->o->stats_interval_s);
    evtimer_add(r->report_ev, &tv);
}

static json_t *perf_latency_json(const struct perf_hist *h)
{
    json_t *l = json_object();
    json_object_set_new(l, "count", json_integer((json_int_t)h->count));
    json_object_set_new(l, "mean", json_real(perf_hist_mean(h) / 1000.0));
    json_object_set_new(l, "p50", json_real((double)perf_hist_percentile(h, 50) / 1000.0));
    json_object_set_new(l, "p95", json_real((double)perf_hist_percentile(h, 95) / 1000.0));
    json_object_set_new(l, "p99", json_real((double)perf_hist_percentile(h, 99) / 1000.0));
    json_object_set_new(l, "p99_9", json_real((double)perf_hist_percentile(h, 99.9) / 1000.0));
    json_object_set_new(l, "max", json_real((double)perf_hist_max(h) / 1000.0));
    return l;
}

/* The summary: post-warmup figures when there are any, else everything. */
static void perf_summarize(struct perf_run *r)
{
    uint64_t end = r->stop_us ? r->stop_us : mg_mono_us();
    bool use_warm = r->warm.msgs > 0 && end > r->warm_us + 100000;
    const struct perf_counters *c = use_warm ? &r->warm : &r->all;
    const struct perf_hist *h = use_warm ? r->h_warm : r->h_all;
    double secs = (double)(end - (use_warm ? r->warm_us : r->start_us)) / 1e6;
    double elapsed = (double)(end - r->start_us) / 1e6;
    bool prod = r->o->mode == PERF_PRODUCE;

    perf_print_line(r, "summary ", secs, c, h, elapsed);
    if (prod)
        printf("produce total: %llu sent, %llu acked, %llu failed, %llu bytes acked\n",
               (unsigned long long)r->sent, (unsigned long long)r->all.msgs,
               (unsigned long long)r->all.failed, (unsigned long long)r->all.bytes);
    else
        printf("consume total: %llu received, %llu bytes\n", (unsigned long long)r->all.msgs,
               (unsigned long long)r->all.bytes);
    fflush(stdout);
    if (!r->o->json_path)
        return;

    json_t *j = json_object();
    json_object_set_new(j, "mode", json_string(prod ? "produce" : "consume"));
    json_object_set_new(j, "service_url", json_string(r->o->service_url));
    json_t *topics = json_array();
    for (int i = 0; i < r->ntopics; i++)
        json_array_append_new(topics, json_string(r->topics[i]));
    json_object_set_new(j, "topics", topics);
    json_object_set_new(j, prod ? "producers" : "consumers", json_integer(r->neps));
    json_object_set_new(j, "duration_s", json_real(elapsed));
    json_object_set_new(j, "warmup_s", json_real(r->o->warmup_s));
    json_object_set_new(j, "summary_includes_warmup", json_boolean(!use_warm));
    if (prod) {
        json_object_set_new(j, "message_size", json_integer((json_int_t)r->payload_len));
        json_object_set_new(j, "messages_sent", json_integer((json_int_t)r->sent));
        json_object_set_new(j, "messages_acked", json_integer((json_int_t)r->all.msgs));
        json_object_set_new(j, "messages_failed", json_integer((json_int_t)r->all.failed));
        json_object_set_new(j, "bytes_acked", json_integer((json_int_t)r->all.bytes));
    } else {
        json_object_set_new(j, "subscription", json_string(r->o->subscription));
        json_object_set_new(j, "messages_received", json_integer((json_int_t)r->all.msgs));
        json_object_set_new(j, "bytes_received", json_integer((json_int_t)r->all.bytes));
    }
    json_object_set_new(j, "msg_per_s", json_real(secs > 0 ? (double)c->msgs / secs : 0));
    json_object_set_new(j, "mbit_per_s",
                        json_real(secs > 0 ? (double)c->bytes * 8.0 / secs / 1e6 : 0));
    json_object_set_new(j, "latency_ms", perf_latency_json(h));
    size_t flags = JSON_INDENT(2) | JSON_PRESERVE_ORDER | JSON_REAL_PRECISION(9);
    if (json_dump_file(j, r->o->json_path, flags) < 0) {
        fprintf(stderr, "magnetar perf: cannot write %s: %s\n", r->o->json_path, strerror(errno));
        r->exit_code = EXIT_FAIL;
    }
    json_decref(j);
}

static void perf_finish(struct perf_run *r)
{
    if (r->done)
        return;
    r->done = true;
    if (!r->stop_us)
        r->stop_us = mg_mono_us();
    evtimer_del(r->report_ev);
    evtimer_del(r->stop_ev);
    evtimer_del(r->drain_ev);
    event_del(r->tick_ev);
    perf_summarize(r);
    for (int i = 0; i < r->neps; i++)
        if (r->eps[i].consumer)
            client_consumer_flush(r->eps[i].consumer);
    /* Let the last acks and CLOSE frames leave before the loop ends. */
    struct timeval tv = {0, 100000};
    event_base_loopexit(r->base, &tv);
}

/* Sends are over: finish once every outstanding message has its answer. */
static void perf_begin_stop(struct perf_run *r)
{
    if (r->stopping)
        return;
    r->stopping = true;
    r->stop_us = mg_mono_us();
    for (int i = 0; i < r->neps; i++)
        client_producer_flush(r->eps[i].producer);
    if (r->outstanding == 0) {
        perf_finish(r);
        return;
    }
    struct timeval tv = perf_tv_s(PERF_DRAIN_S);
    evtimer_add(r->drain_ev, &tv);
}

/* ------------------------------------------------------------------------------------- */
/* produce */

static void perf_pump(struct perf_run *r);

static void perf_on_sent(struct client_producer *p, const struct client_send_result *res,
                         void *data)
{
    (void)p;
    struct perf_ep *e = data;
    struct perf_run *r = e->run;
    uint64_t now = res->completed_us; /* one clock read per SEND, not per message */
    r->outstanding--;
    e->full = false;
    if (res->status == 0) {
        perf_record(r, now - res->enqueued_us, res->size, now);
    } else {
        r->interval.failed++;
        r->all.failed++;
        if (now >= r->warm_us)
            r->warm.failed++;
    }
    if (r->stopping) {
        if (r->outstanding == 0)
            perf_finish(r);
        return;
    }
    event_active(r->pump_ev, 0, 0);
}

/* Send what the rate and the pending windows allow. */
static void perf_pump(struct perf_run *r)
{
    if (!r->running || r->stopping || r->done)
        return;
    const struct perf_opts *o = r->o;
    uint64_t now = mg_mono_us();
    if (o->rate > 0) {
        r->tokens += o->rate * (double)(now - r->last_fill_us) / 1e6;
        /* Burst at most 100 ms worth after a stall. */
        double cap = o->rate / 10.0 < 1.0 ? 1.0 : o->rate / 10.0;
        if (r->tokens > cap)
            r->tokens = cap;
    }
    r->last_fill_us = now;
    int full = 0;
    while (full < r->neps) {
        if (o->rate > 0 && r->tokens < 1.0)
            break;
        if (o->num_messages > 0 && r->sent >= (uint64_t)o->num_messages) {
            perf_begin_stop(r);
            return;
        }
        struct perf_ep *e = &r->eps[r->rr++ % (size_t)r->neps];
        if (e->full) {
            full++;
            continue;
        }
        int rc = client_producer_send(e->producer, r->payload, r->payload_len, perf_on_sent, e);
        if (rc == -MG_EAGAIN) {
            e->full = true;
            full++;
            continue;
        }
        if (rc < 0) {
            perf_fatal(r, "send on %s failed: %s", e->topic, mg_strerror(rc));
            return;
        }
        full = 0;
        r->sent++;
        r->outstanding++;
        if (o->rate > 0)
            r->tokens -= 1.0;
    }
    if (o->num_messages > 0 && r->sent >= (uint64_t)o->num_messages)
        perf_begin_stop(r);
}

static void perf_pump_cb(evutil_socket_t fd, short what, void *arg)
{
    (void)fd;
    (void)what;
    perf_pump(arg);
}

static void perf_stop_cb(evutil_socket_t fd, short what, void *arg)
{
    (void)fd;
    (void)what;
    struct perf_run *r = arg;
    if (r->o->mode == PERF_PRODUCE) {
        perf_begin_stop(r);
    } else {
        r->stop_us = mg_mono_us();
        perf_finish(r);
    }
}

static void perf_drain_cb(evutil_socket_t fd, short what, void *arg)
{
    (void)fd;
    (void)what;
    struct perf_run *r = arg;
    fprintf(stderr, "magnetar perf: %llu messages still unacknowledged after %.0f s\n",
            (unsigned long long)r->outstanding, PERF_DRAIN_S);
    perf_finish(r);
}

static void perf_sig_cb(evutil_socket_t fd, short what, void *arg)
{
    (void)fd;
    (void)what;
    struct perf_run *r = arg;
    if (!r->running) {
        /* Interrupted while still connecting: nothing to summarise. */
        r->done = true;
        event_base_loopbreak(r->base);
        return;
    }
    r->stop_us = mg_mono_us();
    perf_finish(r);
}

/* ------------------------------------------------------------------------------------- */
/* consume */

static void perf_on_message(struct client_consumer *c, const struct client_message *m, void *data)
{
    struct perf_ep *e = data;
    struct perf_run *r = e->run;
    if (r->done)
        return;
    uint64_t now = mg_mono_us();
    uint64_t w = (uint64_t)mg_wall_us();
    uint64_t pt = m->publish_time * 1000u;
    perf_record(r, w > pt ? w - pt : 0, m->len, now);
    if (r->o->ack)
        client_consumer_ack(c, &m->id);
    if (r->o->num_messages > 0 && r->all.msgs >= (uint64_t)r->o->num_messages) {
        r->stop_us = now;
        perf_finish(r);
    }
}

/* ------------------------------------------------------------------------------------- */
/* start-up */

static void perf_start_running(struct perf_run *r)
{
    const struct perf_opts *o = r->o;
    r->running = true;
    r->start_us = mg_mono_us();
    r->warm_us = r->start_us + (uint64_t)(o->warmup_s * 1e6);
    r->last_report_us = r->start_us;
    r->last_fill_us = r->start_us;
    struct timeval tv = perf_tv_s(o->stats_interval_s < 1.0 ? o->stats_interval_s : 1.0);
    evtimer_add(r->report_ev, &tv);
    if (o->duration_s > 0) {
        tv = perf_tv_s(o->duration_s);
        evtimer_add(r->stop_ev, &tv);
    }
    if (o->mode == PERF_PRODUCE) {
        printf("perf produce: %d producer(s) ready on %d topic(s), sending %lld-byte messages "
               "at %s\n",
               r->neps, r->ntopics, (long long)r->payload_len,
               o->rate > 0 ? "the given rate" : "full speed");
        fflush(stdout);
        tv = (struct timeval){0, 1000};
        event_add(r->tick_ev, &tv);
        perf_pump(r);
    } else {
        printf("perf consume: %d consumer(s) subscribed to %d topic(s) as '%s'\n", r->neps,
               r->ntopics, o->subscription);
        fflush(stdout);
    }
}

/* A producer or consumer is ready (or failed for good): the run starts with the last. */
static void perf_ep_ready(struct perf_ep *e, int status, const char *msg)
{
    struct perf_run *r = e->run;
    if (status < 0) {
        perf_fatal(r, "%s", msg ? msg : mg_strerror(status));
        return;
    }
    if (++r->nready == r->neps)
        perf_start_running(r);
}

static void perf_on_producer_ready(struct client_producer *p, int status, const char *msg,
                                   void *data)
{
    (void)p;
    perf_ep_ready(data, status, msg);
}

static void perf_on_consumer_ready(struct client_consumer *c, int status, const char *msg,
                                   void *data)
{
    (void)c;
    perf_ep_ready(data, status, msg);
}

static void perf_create_endpoints(struct perf_run *r)
{
    const struct perf_opts *o = r->o;
    int n = 0;
    for (int i = 0; i < r->ntopics; i++)
        n += (int)(r->partitions[i] ? r->partitions[i] : 1) * (int)o->num_clients;
    r->eps = mg_calloc((size_t)n, sizeof(*r->eps));
    r->neps = n;
    int k = 0;
    for (int i = 0; i < r->ntopics; i++) {
        uint32_t np = r->partitions[i];
        for (uint32_t pi = 0; pi < (np ? np : 1); pi++) {
            for (long long ci = 0; ci < o->num_clients; ci++) {
                struct perf_ep *e = &r->eps[k++];
                e->run = r;
                e->topic =
                    np ? mg_asprintf("%s-partition-%u", r->topics[i], pi) : mg_strdup(r->topics[i]);
            }
        }
    }
    /* Create after the array is complete: callbacks never run synchronously. */
    for (int i = 0; i < r->neps; i++) {
        struct perf_ep *e = &r->eps[i];
        int rc;
        if (o->mode == PERF_PRODUCE) {
            struct client_producer_opts po = {
                .topic = e->topic,
                .batching = !o->disable_batching,
                .batch_max_messages = (unsigned)o->batch_max_messages,
                .batch_max_bytes = (size_t)o->batch_max_bytes,
                .batch_max_delay_us =
                    o->batch_delay_ms > 0 ? (unsigned)(o->batch_delay_ms * 1000) : 1,
                .max_pending = (unsigned)o->max_pending,
                .compression = o->compression,
            };
            rc = client_producer_new(r->client, &po, perf_on_producer_ready, e, &e->producer);
        } else {
            struct client_consumer_opts co = {
                .topic = e->topic,
                .subscription = o->subscription,
                .sub_type = o->sub_type,
                .initial_position = o->position,
                .receiver_queue_size = (unsigned)o->queue_size,
            };
            rc = client_consumer_new(r->client, &co, perf_on_message, perf_on_consumer_ready, e,
                                     &e->consumer);
        }
        if (rc < 0) {
            perf_fatal(r, "cannot create a %s on %s: %s",
                       o->mode == PERF_PRODUCE ? "producer" : "consumer", e->topic,
                       mg_strerror(rc));
            return;
        }
    }
}

struct perf_part_ctx {
    struct perf_run *run; /* borrowed */
    int idx;
};

static void perf_on_partitions(struct client *c, int status, uint32_t partitions, const char *msg,
                               void *data)
{
    (void)c;
    struct perf_part_ctx *pc = data;
    struct perf_run *r = pc->run;
    int idx = pc->idx;
    mg_free(pc);
    if (r->done)
        return;
    if (status < 0) {
        perf_fatal(r, "cannot look up %s: %s", r->topics[idx], msg ? msg : mg_strerror(status));
        return;
    }
    r->partitions[idx] = partitions;
    if (--r->partitions_left == 0)
        perf_create_endpoints(r);
}

static int perf_load_payload(struct perf_run *r)
{
    const struct perf_opts *o = r->o;
    if (o->payload_file) {
        FILE *f = fopen(o->payload_file, "rb");
        if (!f) {
            fprintf(stderr, "magnetar perf: cannot read %s: %s\n", o->payload_file,
                    strerror(errno));
            return -1;
        }
        size_t cap = 4096, len = 0;
        uint8_t *buf = mg_malloc(cap);
        size_t got;
        while ((got = fread(buf + len, 1, cap - len, f)) > 0) {
            len += got;
            if (len > 5 * 1024 * 1024 - 1024) {
                fclose(f);
                mg_free(buf);
                fprintf(stderr, "magnetar perf: %s is larger than the 5 MiB message limit\n",
                        o->payload_file);
                return -1;
            }
            if (len == cap) {
                cap *= 2;
                buf = mg_realloc(buf, cap);
            }
        }
        fclose(f);
        r->payload = buf;
        r->payload_len = len;
        return 0;
    }
    r->payload_len = (size_t)o->size;
    r->payload = mg_malloc(r->payload_len ? r->payload_len : 1);
    uint32_t x = 2463534242u; /* xorshift: incompressible, deterministic */
    for (size_t i = 0; i < r->payload_len; i++) {
        x ^= x << 13;
        x ^= x >> 17;
        x ^= x << 5;
        r->payload[i] = (uint8_t)x;
    }
    return 0;
}

static void perf_run_free(struct perf_run *r)
{
    for (int i = 0; i < r->neps; i++) {
        client_producer_free(r->eps[i].producer);
        client_consumer_free(r->eps[i].consumer);
        mg_free(r->eps[i].topic);
    }
    mg_free(r->eps);
    client_free(r->client);
    struct event *evs[] = {r->tick_ev,  r->pump_ev,   r->report_ev, r->stop_ev,
                           r->drain_ev, r->sigint_ev, r->sigterm_ev};
    for (size_t i = 0; i < sizeof(evs) / sizeof(evs[0]); i++)
        mg_event_free(evs[i]);
    if (r->base)
        event_base_free(r->base);
    mg_free_strv(r->topics, r->ntopics);
    mg_free(r->partitions);
    mg_free(r->payload);
    mg_free(r->h_interval);
    mg_free(r->h_all);
    mg_free(r->h_warm);
}

static int perf_run_mode(struct perf_opts *o)
{
    struct perf_run run;
    struct perf_run *r = &run;
    memset(r, 0, sizeof(*r));
    r->o = o;
    if (o->mode == PERF_PRODUCE && perf_load_payload(r) < 0) {
        perf_run_free(r);
        return EXIT_FAIL;
    }
    r->h_interval = mg_calloc(1, sizeof(struct perf_hist));
    r->h_all = mg_calloc(1, sizeof(struct perf_hist));
    r->h_warm = mg_calloc(1, sizeof(struct perf_hist));

    /* TOPIC-0..N-1 for each TOPIC when --num-topics > 1. */
    r->topics = mg_calloc((size_t)(o->ntopics * o->num_topics), sizeof(*r->topics));
    for (int i = 0; i < o->ntopics; i++)
        for (long long t = 0; t < o->num_topics; t++)
            r->topics[r->ntopics++] = o->num_topics > 1 ? mg_asprintf("%s-%lld", o->topics[i], t)
                                                        : mg_strdup(o->topics[i]);
    r->partitions = mg_calloc((size_t)r->ntopics, sizeof(*r->partitions));

    /* Precise timers: libevent's default coarse monotonic clock ticks in jiffies (4 ms
     * here), which would make 1 ms batch windows and the rate tick fire up to 4 ms off.
     * Not on epoll: there a precise timer is a timerfd re-armed by one timerfd_settime call
     * per loop turn, which took ~40% of this process's CPU per message at 100k msg/s;
     * poll() takes the timeout itself (1 ms resolution, rounded up) and this loop watches
     * only a few descriptors (one connection per broker). */
    struct event_config *cfg = event_config_new();
    if (cfg) {
        event_config_set_flag(cfg, EVENT_BASE_FLAG_PRECISE_TIMER);
        event_config_avoid_method(cfg, "epoll");
        r->base = event_base_new_with_config(cfg);
        event_config_free(cfg);
    }
    if (!r->base) {
        fprintf(stderr, "magnetar perf: cannot create the event loop\n");
        perf_run_free(r);
        return EXIT_FAIL;
    }
    char err[300];
    struct client_opts co = {.service_url = o->service_url,
                             .connect_timeout_ms = (unsigned)(o->connect_timeout_s * 1000),
                             .tls_trust_certs_file = o->trust_cert_file,
                             .auth_token = o->auth_token,
                             .tls_cert_file = o->tls_cert_file,
                             .tls_key_file = o->tls_key_file};
    if (client_new(r->base, &co, &r->client, err, sizeof err) < 0) {
        fprintf(stderr, "magnetar perf: %s\n", err);
        perf_run_free(r);
        return EXIT_USAGE;
    }
    r->tick_ev = event_new(r->base, -1, EV_PERSIST, perf_pump_cb, r);
    r->pump_ev = event_new(r->base, -1, 0, perf_pump_cb, r);
    r->report_ev = evtimer_new(r->base, perf_report_cb, r);
    r->stop_ev = evtimer_new(r->base, perf_stop_cb, r);
    r->drain_ev = evtimer_new(r->base, perf_drain_cb, r);
    r->sigint_ev = evsignal_new(r->base, SIGINT, perf_sig_cb, r);
    r->sigterm_ev = evsignal_new(r->base, SIGTERM, perf_sig_cb, r);
    event_add(r->sigint_ev, NULL);
    event_add(r->sigterm_ev, NULL);

    r->partitions_left = r->ntopics;
    for (int i = 0; i < r->ntopics; i++) {
        struct perf_part_ctx *pc = mg_calloc(1, sizeof(*pc));
        pc->run = r;
        pc->idx = i;
        if (client_get_partitions(r->client, r->topics[i], perf_on_partitions, pc) < 0) {
            mg_free(pc);
            perf_fatal(r, "bad topic name '%s'", r->topics[i]);
            break;
        }
    }
    if (!r->done)
        event_base_dispatch(r->base);
    int code = r->exit_code;
    perf_run_free(r);
    return code;
}

int perf_main(int argc, char **argv)
{
    if (argc < 2 || strcmp(argv[1], "-h") == 0 || strcmp(argv[1], "--help") == 0) {
        FILE *out = argc < 2 ? stderr : stdout;
        fprintf(out, "usage: magnetar perf produce|consume [options] TOPIC...\n"
                     "Run 'magnetar perf produce --help' or 'magnetar perf consume --help'.\n");
        return argc < 2 ? EXIT_USAGE : 0;
    }
    enum perf_mode mode;
    if (strcmp(argv[1], "produce") == 0) {
        mode = PERF_PRODUCE;
    } else if (strcmp(argv[1], "consume") == 0) {
        mode = PERF_CONSUME;
    } else {
        fprintf(stderr, "magnetar perf: unknown mode '%s' (produce or consume)\n", argv[1]);
        return EXIT_USAGE;
    }
    struct perf_opts o;
    char err[300];
    int rc = perf_parse_args(mode, argc - 2, argv + 2, &o, err, sizeof err);
    if (rc == 1) {
        perf_usage(mode, stdout);
        perf_opts_fini(&o);
        return 0;
    }
    if (rc < 0) {
        fprintf(stderr, "magnetar perf %s: %s\n", argv[1], err);
        return EXIT_USAGE;
    }
    signal(SIGPIPE, SIG_IGN);
    /* Reconnects and warnings are worth seeing; routine info is not. */
    if (mg_log_min_level < MG_LOG_WARN)
        mg_log_set_level(MG_LOG_WARN);
    rc = perf_run_mode(&o);
    perf_opts_fini(&o);
    return rc;
}
