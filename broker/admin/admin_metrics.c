/*
 * admin_metrics.c - GET /metrics: Prometheus text exposition 0.0.4 with Pulsar's metric
 * names (docs/admin.md §9).
 *
 * Happy path: one pass over the loaded topics collects a row of values per topic (or, with
 * exposeTopicLevelMetricsInPrometheus=false, per namespace); then each metric family is
 * written as one "# TYPE name gauge" line followed by all its samples, as Pulsar's
 * per-name streams do. Rates, latency and entry-size buckets are those of the last
 * statsUpdateFrequencyInSecs interval (topic_registry_stats_update); counters are current.
 * Then broker totals (pulsar_broker_*), the broker-wide publish latency summary, per-bookie
 * add latency of the BookKeeper client, connection counters and process_* series.
 *
 * Failure modes: none beyond allocation; a topic whose name does not parse is skipped.
 * Label values are escaped (backslash, quote, newline).
 */
#include "admin/admin_int.h"
#include "bkc/bkc.h"
#include "config/cfg.h"
#include "ns/ns.h"
#include "topic/topic.h"
#include "util/alloc.h"
#include "util/log.h"

#include <dirent.h>
#include <event2/buffer.h>
#include <inttypes.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <unistd.h>

/* Topic-level families, in output order. */
enum topic_metric {
    TM_SUBS = 0,
    TM_PRODS,
    TM_CONS,
    TM_RATE_IN,
    TM_RATE_OUT,
    TM_TP_IN,
    TM_TP_OUT,
    TM_AVG_SIZE,
    TM_IN_MSGS,
    TM_IN_BYTES,
    TM_STORAGE,
    TM_LOGICAL,
    TM_BACKLOG_SIZE,
    TM_OFFLOADED,
    TM_WRITE_RATE,
    TM_READ_RATE,
    TM_CACHE_MISS,
    TM_MSG_BACKLOG,
    TM_RATE_LIMIT,
    TM_QUOTA_LIMIT,
    TM_QUOTA_TIME,
    TM_BACKLOG_AGE,
    TM_EVICT_SIZE, /* the evictions family, quota_type="size" */
    TM_EVICT_TIME, /* and quota_type="time" */
    TM_DELAYED_INDEX,
    TM_LAT, /* TOPIC_LAT_BUCKETS buckets, then count, sum */
    TM_LEDGER_LAT = TM_LAT + TOPIC_LAT_BUCKETS + 2,
    TM_SIZE = TM_LEDGER_LAT + TOPIC_LAT_BUCKETS + 2, /* TOPIC_SIZE_BUCKETS, count, sum */
    TM_COUNT = TM_SIZE + TOPIC_SIZE_BUCKETS + 2,
};

static const char *const admin_metrics_lat_suffix[TOPIC_LAT_BUCKETS + 2] = {
    "le_0_5", "le_1",   "le_5",    "le_10",    "le_20", "le_50",
    "le_100", "le_200", "le_1000", "overflow", "count", "sum"};
static const char *const admin_metrics_size_suffix[TOPIC_SIZE_BUCKETS + 2] = {
    "le_128",    "le_512",  "le_1_kb",     "le_2_kb", "le_4_kb", "le_16_kb",
    "le_100_kb", "le_1_mb", "le_overflow", "count",   "sum"};

struct family {
    char name[64];
    bool topic_only;   /* not written in namespace mode */
    const char *label; /* added to each sample (one family written as several); NULL = none */
};

static void admin_metrics_family_names(struct family *f)
{
    static const char *const base[TM_LAT] = {
        "pulsar_subscriptions_count",
        "pulsar_producers_count",
        "pulsar_consumers_count",
        "pulsar_rate_in",
        "pulsar_rate_out",
        "pulsar_throughput_in",
        "pulsar_throughput_out",
        "pulsar_average_msg_size",
        "pulsar_in_messages_total",
        "pulsar_in_bytes_total",
        "pulsar_storage_size",
        "pulsar_storage_logical_size",
        "pulsar_storage_backlog_size",
        "pulsar_storage_offloaded_size",
        "pulsar_storage_write_rate",
        "pulsar_storage_read_rate",
        "pulsar_storage_read_cache_misses_rate",
        "pulsar_msg_backlog",
        "pulsar_publish_rate_limit_times",
        "pulsar_storage_backlog_quota_limit",
        "pulsar_storage_backlog_quota_limit_time",
        "pulsar_storage_backlog_age_seconds",
        "pulsar_storage_backlog_quota_exceeded_evictions_total",
        "pulsar_storage_backlog_quota_exceeded_evictions_total",
        "pulsar_delayed_message_index_size_bytes",
    };
    for (int i = 0; i < TM_LAT; i++) {
        snprintf(f[i].name, sizeof f[i].name, "%s", base[i]);
        f[i].topic_only = i == TM_RATE_LIMIT || i == TM_QUOTA_LIMIT || i == TM_QUOTA_TIME ||
                          i == TM_BACKLOG_AGE || i == TM_AVG_SIZE || i == TM_EVICT_SIZE ||
                          i == TM_EVICT_TIME;
        f[i].label = i == TM_EVICT_SIZE   ? "quota_type=\"size\""
                     : i == TM_EVICT_TIME ? "quota_type=\"time\""
                                          : NULL;
    }
    for (int i = 0; i < TOPIC_LAT_BUCKETS + 2; i++) {
        snprintf(f[TM_LAT + i].name, sizeof f[0].name, "pulsar_storage_write_latency_%s",
                 admin_metrics_lat_suffix[i]);
        snprintf(f[TM_LEDGER_LAT + i].name, sizeof f[0].name,
                 "pulsar_storage_ledger_write_latency_%s", admin_metrics_lat_suffix[i]);
        f[TM_LAT + i].topic_only = f[TM_LEDGER_LAT + i].topic_only = false;
        f[TM_LAT + i].label = f[TM_LEDGER_LAT + i].label = NULL;
    }
    for (int i = 0; i < TOPIC_SIZE_BUCKETS + 2; i++) {
        snprintf(f[TM_SIZE + i].name, sizeof f[0].name, "pulsar_entry_size_%s",
                 admin_metrics_size_suffix[i]);
        f[TM_SIZE + i].topic_only = false;
        f[TM_SIZE + i].label = NULL;
    }
}

/* One row: a topic (labels cluster, namespace, topic) or a namespace aggregate. */
struct row {
    char *labels; /* owned: the text inside {} */
    char *ns;     /* owned: "t/ns" */
    int topics;   /* topics counted in it */
    double v[TM_COUNT];
};

/* Escape a label value into b. */
static void admin_metrics_add_label(struct evbuffer *b, const char *key, const char *val,
                                    bool first)
{
    evbuffer_add_printf(b, "%s%s=\"", first ? "" : ",", key);
    for (const char *p = val; *p; p++) {
        if (*p == '\\' || *p == '"')
            evbuffer_add_printf(b, "\\%c", *p);
        else if (*p == '\n')
            evbuffer_add(b, "\\n", 2);
        else
            evbuffer_add(b, p, 1);
    }
    evbuffer_add(b, "\"", 1);
}

static char *admin_metrics_labels_text(const char *cluster, const char *ns, const char *topic,
                                       const char *sub)
{
    struct evbuffer *b = evbuffer_new();
    admin_metrics_add_label(b, "cluster", cluster, true);
    if (ns)
        admin_metrics_add_label(b, "namespace", ns, false);
    if (topic)
        admin_metrics_add_label(b, "topic", topic, false);
    if (sub)
        admin_metrics_add_label(b, "subscription", sub, false);
    return admin_buf_string(b);
}

/* The row of namespace ns (topic NULL: a namespace's topics share one), or of topic (each
 * its own), in rows: added when there is none yet. */
static struct row *admin_metrics_row(struct row **rows, int *n, const char *cluster, const char *ns,
                                     const char *topic)
{
    for (int i = 0; !topic && i < *n; i++)
        if (strcmp((*rows)[i].ns, ns) == 0)
            return &(*rows)[i];
    *rows = mg_realloc(*rows, (size_t)(*n + 1) * sizeof **rows);
    struct row *r = &(*rows)[(*n)++];
    memset(r, 0, sizeof *r);
    r->ns = mg_strdup(ns);
    r->labels = admin_metrics_labels_text(cluster, ns, topic, NULL);
    return r;
}

static void admin_metrics_rows_free(struct row *rows, int n)
{
    for (int i = 0; i < n; i++) {
        mg_free(rows[i].labels);
        mg_free(rows[i].ns);
    }
    mg_free(rows);
}

static void admin_metrics_sample(struct evbuffer *b, const char *name, const char *labels, double v)
{
    if (isnan(v))
        evbuffer_add_printf(b, "%s{%s} NaN\n", name, labels);
    else if (v == floor(v) && fabs(v) < 1e15)
        evbuffer_add_printf(b, "%s{%s} %.1f\n", name, labels, v);
    else
        evbuffer_add_printf(b, "%s{%s} %.6g\n", name, labels, v);
}

static void admin_metrics_type_line(struct evbuffer *b, const char *name, const char *type)
{
    evbuffer_add_printf(b, "# TYPE %s %s\n", name, type);
}

static void admin_metrics_fill_topic_row(struct row *r, struct topic *t, int write_quorum)
{
    struct topic_stats st;
    topic_get_stats(t, &st);
    double *v = r->v;
    v[TM_SUBS] = st.n_subscriptions;
    v[TM_DELAYED_INDEX] = (double)st.delayed_index_bytes;
    v[TM_PRODS] = st.n_producers;
    v[TM_CONS] = st.n_consumers;
    v[TM_RATE_IN] = st.msg_rate_in;
    v[TM_RATE_OUT] = st.msg_rate_out;
    v[TM_TP_IN] = st.throughput_in;
    v[TM_TP_OUT] = st.throughput_out;
    v[TM_AVG_SIZE] = st.msg_rate_in > 0 ? st.throughput_in / st.msg_rate_in : 0.0;
    v[TM_IN_MSGS] = (double)st.msg_in_counter;
    v[TM_IN_BYTES] = (double)st.bytes_in_counter;
    v[TM_STORAGE] = (double)st.storage_size * write_quorum;
    v[TM_LOGICAL] = (double)st.storage_size;
    v[TM_BACKLOG_SIZE] = (double)st.backlog_size;
    v[TM_WRITE_RATE] = st.storage_write_rate;
    v[TM_READ_RATE] = st.storage_read_rate;
    v[TM_MSG_BACKLOG] = (double)st.msg_backlog;
    v[TM_QUOTA_LIMIT] = (double)st.quota_limit_bytes;
    v[TM_QUOTA_TIME] = (double)st.quota_limit_secs;
    v[TM_BACKLOG_AGE] = (double)st.backlog_age_secs;
    v[TM_EVICT_SIZE] = (double)st.quota_evictions[TOPIC_QUOTA_STORAGE];
    v[TM_EVICT_TIME] = (double)st.quota_evictions[TOPIC_QUOTA_AGE];
    v[TM_RATE_LIMIT] = (double)st.publish_rate_limited;
    int64_t lat_count = 0, size_count = 0;
    for (int i = 0; i < TOPIC_LAT_BUCKETS; i++) {
        v[TM_LAT + i] = (double)st.write_latency[i];
        lat_count += st.write_latency[i];
    }
    v[TM_LAT + TOPIC_LAT_BUCKETS] = (double)lat_count;
    v[TM_LAT + TOPIC_LAT_BUCKETS + 1] = (double)st.write_latency_sum_us;
    /* The bookie-client part of the add latency is not tracked per topic: the per-bookie
     * add latency below has it; here the broker-side latency stands in for it. */
    for (int i = 0; i < TOPIC_LAT_BUCKETS + 2; i++)
        v[TM_LEDGER_LAT + i] = v[TM_LAT + i];
    for (int i = 0; i < TOPIC_SIZE_BUCKETS; i++) {
        v[TM_SIZE + i] = (double)st.entry_size[i];
        size_count += st.entry_size[i];
    }
    v[TM_SIZE + TOPIC_SIZE_BUCKETS] = (double)size_count;
    v[TM_SIZE + TOPIC_SIZE_BUCKETS + 1] = (double)st.entry_size_sum;
}

static long admin_metrics_read_rss_bytes(void)
{
    FILE *f = fopen("/proc/self/status", "r");
    if (!f)
        return 0;
    char line[256];
    long kb = 0;
    while (fgets(line, sizeof line, f))
        if (sscanf(line, "VmRSS: %ld kB", &kb) == 1)
            break;
    fclose(f);
    return kb * 1024;
}

static int admin_metrics_count_open_fds(void)
{
    DIR *d = opendir("/proc/self/fd");
    if (!d)
        return 0;
    int n = 0;
    struct dirent *e;
    while ((e = readdir(d)))
        if (e->d_name[0] != '.')
            n++;
    closedir(d);
    return n > 0 ? n - 1 : 0; /* the directory's own fd */
}

static int admin_metrics_cmp_double(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return x < y ? -1 : x > y;
}

/* Subscription-level families (exposeTopicLevelMetricsInPrometheus), in output order. */
enum sub_metric {
    SM_BACKLOG = 0,
    SM_BACKLOG_ND,
    SM_DELAYED,
    SM_REDELIVER,
    SM_UNACKED,
    SM_BLOCKED,
    SM_RATE_OUT,
    SM_ACK_RATE,
    SM_TP_OUT,
    SM_OUT_BYTES,
    SM_OUT_MSGS,
    SM_LAST_ACKED,
    SM_LAST_CONSUMED,
    SM_RATE_EXPIRED,
    SM_TOTAL_EXPIRED,
    SM_DROP_RATE,
    SM_CONSUMERS,
    SM_COUNT
};

static const char *const admin_metrics_sub_names[SM_COUNT] = {
    "pulsar_subscription_back_log",
    "pulsar_subscription_back_log_no_delayed",
    "pulsar_subscription_delayed",
    "pulsar_subscription_msg_rate_redeliver",
    "pulsar_subscription_unacked_messages",
    "pulsar_subscription_blocked_on_unacked_messages",
    "pulsar_subscription_msg_rate_out",
    "pulsar_subscription_msg_ack_rate",
    "pulsar_subscription_msg_throughput_out",
    "pulsar_out_bytes_total",
    "pulsar_out_messages_total",
    "pulsar_subscription_last_acked_timestamp",
    "pulsar_subscription_last_consumed_timestamp",
    "pulsar_subscription_msg_rate_expired",
    "pulsar_subscription_total_msg_expired",
    "pulsar_subscription_msg_drop_rate", /* non-persistent topics' drops (0 on persistent) */
    "pulsar_subscription_consumers_count",
};

/* One subscription's row (labels cluster, namespace, topic, subscription). */
struct sub_row {
    char *labels; /* owned */
    double v[SM_COUNT];
};

/* Add a row for each subscription of t (tn: its name, ns its namespace) to rows. */
static void admin_metrics_collect_subs(struct sub_row **rows, int *n, struct topic *t,
                                       const char *cluster, const struct topic_name *tn,
                                       const char *ns)
{
    size_t sp = 0;
    struct topic_sub_stats ss;
    while (topic_sub_stats_next(t, &sp, &ss)) {
        *rows = mg_realloc(*rows, (size_t)(*n + 1) * sizeof **rows);
        struct sub_row *r = &(*rows)[(*n)++];
        memset(r, 0, sizeof *r);
        double *v = r->v;
        v[SM_BACKLOG] = (double)ss.backlog;
        v[SM_BACKLOG_ND] = (double)(ss.backlog - ss.delayed);
        v[SM_DELAYED] = (double)ss.delayed;
        v[SM_REDELIVER] = ss.msg_rate_redeliver;
        v[SM_UNACKED] = (double)ss.unacked;
        v[SM_RATE_OUT] = ss.msg_rate_out;
        v[SM_ACK_RATE] = ss.ack_rate;
        v[SM_TP_OUT] = ss.throughput_out;
        v[SM_OUT_BYTES] = (double)ss.bytes_out_counter;
        v[SM_OUT_MSGS] = (double)ss.msg_out_counter;
        v[SM_LAST_ACKED] = (double)ss.last_acked_ms;
        v[SM_LAST_CONSUMED] = (double)ss.last_consumed_ms;
        v[SM_DROP_RATE] = ss.msg_drop_rate;
        v[SM_CONSUMERS] = ss.n_consumers;
        r->labels = admin_metrics_labels_text(cluster, ns, tn->full, ss.name);
    }
}

/* Each subscription family with a sample per row. */
static void admin_metrics_write_subscriptions(struct evbuffer *b, const struct sub_row *rows, int n)
{
    for (int k = 0; k < SM_COUNT; k++) {
        admin_metrics_type_line(b, admin_metrics_sub_names[k], "gauge");
        for (int i = 0; i < n; i++)
            admin_metrics_sample(b, admin_metrics_sub_names[k], rows[i].labels, rows[i].v[k]);
    }
}

static void admin_metrics_sub_rows_free(struct sub_row *rows, int n)
{
    for (int i = 0; i < n; i++)
        mg_free(rows[i].labels);
    mg_free(rows);
}

static void admin_metrics_write_bookies(struct evbuffer *b, const struct admin_env *s,
                                        const char *cluster)
{
    struct bkc_client *c = s->bkc;
    if (!c)
        return;
    /* Per-bookie add latency as a Prometheus histogram (cumulative buckets, seconds). */
    static const char *const h = "pulsar_managedLedger_client_bookie_add_latency_seconds";
    admin_metrics_type_line(b, h, "histogram");
    size_t pos = 0;
    struct bkc_bookie_stats bs;
    while (bkc_client_bookie_stats_next(c, &pos, &bs)) {
        int64_t cum = 0;
        for (int i = 0; i < BKC_LAT_BUCKETS; i++) {
            cum += bs.add_latency_buckets[i];
            if (i < BKC_LAT_BUCKETS - 1)
                evbuffer_add_printf(
                    b, "%s_bucket{cluster=\"%s\",bookie=\"%s\",le=\"%g\"} %" PRId64 "\n", h,
                    cluster, bs.id, bkc_latency_bound_ms(i) / 1000.0, cum);
            else
                evbuffer_add_printf(
                    b, "%s_bucket{cluster=\"%s\",bookie=\"%s\",le=\"+Inf\"} %" PRId64 "\n", h,
                    cluster, bs.id, cum);
        }
        evbuffer_add_printf(b, "%s_sum{cluster=\"%s\",bookie=\"%s\"} %.6f\n", h, cluster, bs.id,
                            (double)bs.add_latency_sum_us / 1e6);
        evbuffer_add_printf(b, "%s_count{cluster=\"%s\",bookie=\"%s\"} %" PRId64 "\n", h, cluster,
                            bs.id, bs.add_count);
    }
    static const char *const names[] = {"pulsar_managedLedger_client_bookie_add_errors_total",
                                        "pulsar_managedLedger_client_bookie_outstanding",
                                        "pulsar_managedLedger_client_bookie_connected"};
    for (size_t k = 0; k < sizeof names / sizeof *names; k++) {
        admin_metrics_type_line(b, names[k], "gauge");
        pos = 0;
        while (bkc_client_bookie_stats_next(c, &pos, &bs)) {
            double v = k == 0 ? (double)bs.add_errors : k == 1 ? bs.outstanding : bs.connected;
            evbuffer_add_printf(b, "%s{cluster=\"%s\",bookie=\"%s\"} %.1f\n", names[k], cluster,
                                bs.id, v);
        }
    }
}

void admin_h_metrics(struct admin_req *r)
{
    const struct admin_env *s = r->a->env;
    const struct cfg *cfg = s->cfg;
    const char *cluster = cfg->cluster_name;
    bool topic_level = cfg->expose_topic_level_metrics;
    int wq = s->bkc ? cfg->managed_ledger_write_quorum : 1;
    struct family fam[TM_COUNT];
    admin_metrics_family_names(fam);

    /* Collect rows: per topic, or per namespace; the topics of each namespace; and with
     * topic-level metrics the subscriptions. */
    struct row *rows = NULL, *ns_rows = NULL;
    struct sub_row *subs = NULL;
    int n_rows = 0, n_ns = 0, n_subs = 0;
    struct row total;
    memset(&total, 0, sizeof total);
    int n_topics = 0;
    size_t pos = 0;
    struct topic *t;
    while ((t = topic_next(s->topics, &pos))) {
        struct topic_name tn;
        char *ns = admin_topic_ns(t, &tn);
        if (!ns)
            continue;
        n_topics++;
        struct row one;
        memset(&one, 0, sizeof one);
        admin_metrics_fill_topic_row(&one, t, wq);
        struct row *at =
            admin_metrics_row(&rows, &n_rows, cluster, ns, topic_level ? tn.full : NULL);
        for (int i = 0; i < TM_COUNT; i++) {
            total.v[i] += one.v[i];
            at->v[i] += one.v[i];
        }
        admin_metrics_row(&ns_rows, &n_ns, cluster, ns, NULL)->topics++;
        if (topic_level)
            admin_metrics_collect_subs(&subs, &n_subs, t, cluster, &tn, ns);
        mg_free(ns);
        topic_name_fini(&tn);
    }

    struct evbuffer *b = evbuffer_new();
    for (int k = 0; k < TM_COUNT; k++) {
        if (!topic_level && fam[k].topic_only)
            continue;
        if (n_rows == 0)
            continue;
        if (k == 0 || strcmp(fam[k - 1].name, fam[k].name) != 0)
            admin_metrics_type_line(b, fam[k].name, "gauge");
        for (int i = 0; i < n_rows; i++) {
            if (fam[k].label || (!topic_level && k == TM_MSG_BACKLOG)) {
                char *l = mg_asprintf("%s,%s", rows[i].labels,
                                      fam[k].label ? fam[k].label : "remote_cluster=\"local\"");
                admin_metrics_sample(b, fam[k].name, l, rows[i].v[k]);
                mg_free(l);
            } else {
                admin_metrics_sample(b, fam[k].name, rows[i].labels, rows[i].v[k]);
            }
        }
    }
    if (topic_level && n_rows > 0)
        admin_metrics_write_subscriptions(b, subs, n_subs);

    /* pulsar_topics_count{cluster,namespace}: loaded topics per namespace. */
    admin_metrics_type_line(b, "pulsar_topics_count", "gauge");
    for (int i = 0; i < n_ns; i++)
        admin_metrics_sample(b, "pulsar_topics_count", ns_rows[i].labels, ns_rows[i].topics);

    /* Broker totals (label cluster only), written even with no topics. */
    char *cl = admin_metrics_labels_text(cluster, NULL, NULL, NULL);
    struct {
        const char *name;
        double v;
    } totals[] = {
        {"pulsar_broker_topics_count", n_topics},
        {"pulsar_broker_subscriptions_count", total.v[TM_SUBS]},
        {"pulsar_broker_producers_count", total.v[TM_PRODS]},
        {"pulsar_broker_consumers_count", total.v[TM_CONS]},
        {"pulsar_broker_rate_in", total.v[TM_RATE_IN]},
        {"pulsar_broker_rate_out", total.v[TM_RATE_OUT]},
        {"pulsar_broker_throughput_in", total.v[TM_TP_IN]},
        {"pulsar_broker_throughput_out", total.v[TM_TP_OUT]},
        {"pulsar_broker_storage_size", total.v[TM_STORAGE]},
        {"pulsar_broker_storage_logical_size", total.v[TM_LOGICAL]},
        {"pulsar_broker_storage_write_rate", total.v[TM_WRITE_RATE]},
        {"pulsar_broker_storage_read_rate", total.v[TM_READ_RATE]},
        {"pulsar_broker_storage_read_cache_misses_rate", 0},
        {"pulsar_broker_msg_backlog", total.v[TM_MSG_BACKLOG]},
        {"pulsar_broker_in_messages_total", total.v[TM_IN_MSGS]},
    };
    for (size_t i = 0; i < sizeof totals / sizeof *totals; i++) {
        admin_metrics_type_line(b, totals[i].name, "gauge");
        admin_metrics_sample(b, totals[i].name, cl, totals[i].v);
    }
    /* Out bytes of every subscription, for pulsar_broker_out_bytes_total. */
    double out_bytes = 0;
    pos = 0;
    while ((t = topic_next(s->topics, &pos))) {
        struct topic_stats st;
        topic_get_stats(t, &st);
        out_bytes += (double)st.bytes_out_counter;
    }
    admin_metrics_type_line(b, "pulsar_broker_in_bytes_total", "gauge");
    evbuffer_add_printf(b, "pulsar_broker_in_bytes_total{%s,system_topic=\"false\"} %.1f\n", cl,
                        total.v[TM_IN_BYTES]);
    evbuffer_add_printf(b, "pulsar_broker_in_bytes_total{%s,system_topic=\"true\"} 0.0\n", cl);
    admin_metrics_type_line(b, "pulsar_broker_out_bytes_total", "gauge");
    evbuffer_add_printf(b, "pulsar_broker_out_bytes_total{%s,system_subscription=\"false\"} %.1f\n",
                        cl, out_bytes);
    evbuffer_add_printf(b, "pulsar_broker_out_bytes_total{%s,system_subscription=\"true\"} 0.0\n",
                        cl);
    admin_metrics_type_line(b, "pulsar_broker_storage_backlog_quota_exceeded_evictions_total",
                            "gauge");
    evbuffer_add_printf(b,
                        "pulsar_broker_storage_backlog_quota_exceeded_evictions_total{%s,"
                        "quota_type=\"size\"} %.1f\n"
                        "pulsar_broker_storage_backlog_quota_exceeded_evictions_total{%s,"
                        "quota_type=\"time\"} %.1f\n",
                        cl, total.v[TM_EVICT_SIZE], cl, total.v[TM_EVICT_TIME]);

    /* Publish latency summary (ms) over the most recent publishes. */
    {
        double *lat = mg_malloc(4096 * sizeof *lat);
        int64_t count;
        double sum;
        int n = topic_registry_publish_latency(s->topics, lat, 4096, &count, &sum);
        qsort(lat, (size_t)n, sizeof *lat, admin_metrics_cmp_double);
        static const char *const qs[] = {"0.0", "0.5", "0.95", "0.99", "0.999", "0.9999", "1.0"};
        static const double qv[] = {0.0, 0.5, 0.95, 0.99, 0.999, 0.9999, 1.0};
        admin_metrics_type_line(b, "pulsar_broker_publish_latency", "summary");
        for (size_t i = 0; i < sizeof qs / sizeof *qs; i++) {
            double v = NAN;
            if (n > 0) {
                int idx = (int)ceil(qv[i] * n) - 1;
                v = lat[idx < 0 ? 0 : idx >= n ? n - 1 : idx];
            }
            char *l = mg_asprintf("%s,quantile=\"%s\"", cl, qs[i]);
            admin_metrics_sample(b, "pulsar_broker_publish_latency", l, v);
            mg_free(l);
        }
        admin_metrics_sample(b, "pulsar_broker_publish_latency_count", cl, (double)count);
        admin_metrics_sample(b, "pulsar_broker_publish_latency_sum", cl, sum);
        mg_free(lat);
    }

    admin_metrics_type_line(b, "pulsar_active_connections", "gauge");
    admin_metrics_sample(b, "pulsar_active_connections", cl, s->num_connections(s->data));
    admin_metrics_type_line(b, "pulsar_connection_created_total_count", "gauge");
    admin_metrics_sample(b, "pulsar_connection_created_total_count", cl,
                         (double)s->total_connections(s->data));
    admin_metrics_write_bookies(b, s, cluster);
    mg_free(cl);

    /* The admin server's own accounting (magnetar_, not Pulsar's): requests routed to a
     * handler and not answered yet (this /metrics request included), and all routed. */
    evbuffer_add_printf(b,
                        "# TYPE magnetar_admin_requests_open gauge\n"
                        "magnetar_admin_requests_open %" PRId64 "\n"
                        "# TYPE magnetar_admin_requests_total counter\n"
                        "magnetar_admin_requests_total %" PRIu64 "\n",
                        r->a->calls_open, r->a->calls_total);
    /* Connections refused before routing (admin_conn.c), by reason. */
    evbuffer_add_printf(
        b,
        "# TYPE magnetar_admin_refused_total counter\n"
        "magnetar_admin_refused_total{reason=\"header_size\"} %" PRIu64 "\n"
        "magnetar_admin_refused_total{reason=\"uri_size\"} %" PRIu64 "\n"
        "magnetar_admin_refused_total{reason=\"header_count\"} %" PRIu64 "\n"
        "magnetar_admin_refused_total{reason=\"read_timeout\"} %" PRIu64 "\n",
        r->a->refused[ADMIN_REFUSED_HEADER_SIZE], r->a->refused[ADMIN_REFUSED_URI_SIZE],
        r->a->refused[ADMIN_REFUSED_HEADER_COUNT], r->a->refused[ADMIN_REFUSED_TIMEOUT]);

    struct rusage ru;
    getrusage(RUSAGE_SELF, &ru);
    double cpu = (double)ru.ru_utime.tv_sec + (double)ru.ru_stime.tv_sec +
                 ((double)ru.ru_utime.tv_usec + (double)ru.ru_stime.tv_usec) / 1e6;
    struct rlimit rl;
    double max_fds = getrlimit(RLIMIT_NOFILE, &rl) == 0 ? (double)rl.rlim_cur : 0;
    evbuffer_add_printf(b,
                        "# TYPE process_resident_memory_bytes gauge\n"
                        "process_resident_memory_bytes %ld\n"
                        "# TYPE process_cpu_seconds_total counter\n"
                        "process_cpu_seconds_total %.3f\n"
                        "# TYPE process_open_fds gauge\n"
                        "process_open_fds %d\n"
                        "# TYPE process_max_fds gauge\n"
                        "process_max_fds %.0f\n"
                        "# TYPE process_start_time_seconds gauge\n"
                        "process_start_time_seconds %.3f\n",
                        admin_metrics_read_rss_bytes(), cpu, admin_metrics_count_open_fds(),
                        max_fds, (double)s->start_time_ms / 1000.0);

    admin_metrics_rows_free(rows, n_rows);
    admin_metrics_rows_free(ns_rows, n_ns);
    admin_metrics_sub_rows_free(subs, n_subs);
    admin_reply_buf(r->call, 200, "text/plain; version=0.0.4; charset=utf-8", b);
    evbuffer_free(b);
}
