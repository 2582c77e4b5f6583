/*
 * bk_metrics.c - a bookie's Prometheus metrics (text exposition 0.0.4) with BookKeeper's
 * names, and the GET /metrics endpoint of prometheusStatsHttpPort that `magnetar bookie` and
 * `magnetar autorecovery` serve (the autorecovery's metrics, autorec/ar_metrics.c, are
 * appended to a bookie's).
 *
 * What a bookie exposes costs nothing at add time beyond an atomic add or two: the journal's
 * counters, two latency distributions filled by the journal thread (log2 buckets of
 * microseconds, bk_lat_add), the read-only state, the entry logs' metadata (a map of a few
 * entries), the garbage collector's counters and a statvfs of each directory per scrape.
 * Names without a BookKeeper equivalent start with magnetar_bookie_.
 *
 * Failure modes: a port that cannot be bound is logged and the process goes on without the
 * endpoint; other paths answer 404, other methods 405.
 */
#include "bookie/bookie_int.h"
#include "util/alloc.h"
#include "util/err.h"
#include "util/log.h"

#include <event2/buffer.h>
#include <event2/http.h>
#include <inttypes.h>
#include <string.h>
#include <sys/statvfs.h>

void bk_lat_add(struct bk_lat *l, uint64_t ns, bool ok)
{
    if (!ok) {
        atomic_fetch_add(&l->failed, 1);
        return;
    }
    uint64_t us = ns / 1000;
    int b = 0;
    while (b < BK_LAT_BUCKETS - 1 && (1ull << b) <= us) /* bucket b: below 2^b us */
        b++;
    atomic_fetch_add(&l->bucket[b], 1);
    atomic_fetch_add(&l->count, 1);
    atomic_fetch_add(&l->sum_us, us);
}

double bk_lat_quantile_ms(struct bk_lat *l, double q)
{
    uint64_t n[BK_LAT_BUCKETS], total = 0;
    for (int i = 0; i < BK_LAT_BUCKETS; i++)
        total += n[i] = atomic_load(&l->bucket[i]);
    /* the upper bound of the bucket holding the quantile (0 with no sample) */
    uint64_t want = (uint64_t)(q * (double)total + 0.5), seen = 0;
    for (int i = 0; total > 0 && i < BK_LAT_BUCKETS; i++) {
        seen += n[i];
        if (seen >= want && seen > 0)
            return (double)(1ull << i) / 1000.0;
    }
    return 0;
}

/* BookKeeper's OpStatsLogger as its Prometheus provider writes it: a summary in
 * milliseconds with success="true" quantiles, _count and _sum, and the failures' _count. */
static void bk_metrics_lat(struct evbuffer *b, const char *name, struct bk_lat *l)
{
    static const double qs[] = {0.5, 0.75, 0.95, 0.99, 0.999, 0.9999, 1.0};
    static const char *const qname[] = {"0.5", "0.75", "0.95", "0.99", "0.999", "0.9999", "1.0"};
    evbuffer_add_printf(b, "# TYPE %s summary\n", name);
    for (size_t q = 0; q < sizeof qs / sizeof *qs; q++)
        evbuffer_add_printf(b, "%s{success=\"true\",quantile=\"%s\"} %.3f\n", name, qname[q],
                            bk_lat_quantile_ms(l, qs[q]));
    evbuffer_add_printf(b, "%s_count{success=\"true\"} %" PRIu64 "\n", name,
                        atomic_load(&l->count));
    evbuffer_add_printf(b, "%s_sum{success=\"true\"} %.3f\n", name,
                        (double)atomic_load(&l->sum_us) / 1000.0);
    evbuffer_add_printf(b, "%s_count{success=\"false\"} %" PRIu64 "\n", name,
                        atomic_load(&l->failed));
}

static void bk_metrics_one(struct evbuffer *b, const char *type, const char *name, double v)
{
    evbuffer_add_printf(b, "# TYPE %s %s\n%s %.17g\n", name, type, name, v);
}

/* Used fraction of the file system holding dir, or -1 when statvfs fails. */
static double bk_metrics_usage(const char *dir)
{
    struct statvfs sv;
    if (!dir || statvfs(dir, &sv) != 0 || sv.f_blocks == 0)
        return -1;
    return 1.0 - (double)sv.f_bavail / (double)sv.f_blocks;
}

void bk_metrics(struct bk_server *s, struct evbuffer *b)
{
    bk_metrics_one(b, "gauge", "bookie_SERVER_STATUS", s->readonly ? 0 : 1);
    bk_metrics_one(b, "gauge", "bookie_ledger_writable_dirs",
                   s->readonly & (BK_RO_DISK | BK_RO_NOSPACE | BK_RO_IOERR) ? 0 : 1);
    struct bk_journal *j = &s->journal;
    bk_metrics_lat(b, "bookie_journal_JOURNAL_ADD_ENTRY", &j->lat_add);
    bk_metrics_lat(b, "bookie_journal_JOURNAL_SYNC", &j->lat_sync);
    bk_metrics_one(b, "counter", "bookie_journal_JOURNAL_WRITE_BYTES",
                   (double)atomic_load(&j->st_bytes));
    bk_metrics_one(b, "counter", "magnetar_bookie_journal_groups_total",
                   (double)atomic_load(&j->st_groups));
    bk_metrics_lat(b, "magnetar_bookie_journal_preallocation", &j->lat_prealloc);
    bk_metrics_lat(b, "magnetar_bookie_journal_preallocation_wait", &j->lat_prealloc_wait);
    bk_metrics_one(b, "counter", "magnetar_bookie_journal_preallocation_waits_total",
                   (double)atomic_load(&j->st_prealloc_waits));
    /* entry logs: their count and the bytes the index still points at */
    uint64_t logs = 0, live = 0, total = 0;
    size_t pos = 0;
    void *v;
    while (mg_map_next(&s->store.log_meta, &pos, NULL, NULL, &v)) {
        const struct bk_log_meta *m = v;
        logs++;
        live += m->live;
        total += m->total;
    }
    bk_metrics_one(b, "gauge", "bookie_gc_ACTIVE_ENTRY_LOG_COUNT", (double)logs);
    bk_metrics_one(b, "gauge", "bookie_gc_ACTIVE_ENTRY_LOG_SPACE_BYTES", (double)live);
    bk_metrics_one(b, "gauge", "magnetar_bookie_entry_log_bytes", (double)total);
    bk_metrics_one(b, "counter", "magnetar_bookie_checkpoints_total", (double)s->checkpoints);
    struct bk_gc_stats g = {0};
    if (s->gc)
        bk_gc_stats(s->gc, &g);
    bk_metrics_one(b, "counter", "bookie_DELETED_LEDGER_COUNT", (double)g.ledgers_deleted);
    bk_metrics_one(b, "counter", "magnetar_bookie_gc_scans_total", (double)g.scans);
    bk_metrics_one(b, "counter", "magnetar_bookie_gc_scan_failures_total", (double)g.scan_failures);
    bk_metrics_one(b, "counter", "magnetar_bookie_gc_entry_logs_deleted_total",
                   (double)g.logs_deleted);
    bk_metrics_one(b, "counter", "magnetar_bookie_gc_entry_logs_compacted_total",
                   (double)g.logs_compacted);
    bk_metrics_one(b, "counter", "magnetar_bookie_gc_entries_compacted_total",
                   (double)g.entries_compacted);
    bk_metrics_one(b, "counter", "magnetar_bookie_gc_reclaimed_bytes_total",
                   (double)g.bytes_reclaimed);
    /* disk use of the two directories, as a fraction (BookKeeper names a gauge per path) */
    evbuffer_add_printf(b, "# TYPE magnetar_bookie_disk_usage gauge\n");
    const char *dirs[][2] = {{"ledger", s->ledger_dir}, {"journal", s->journal_dir}};
    for (size_t i = 0; i < 2; i++) {
        double u = bk_metrics_usage(dirs[i][1]);
        if (u >= 0)
            evbuffer_add_printf(b, "magnetar_bookie_disk_usage{dir=\"%s\"} %.6f\n", dirs[i][0], u);
    }
}

/* ---- GET /metrics ----------------------------------------------------------------------- */

struct bk_metrics_http {
    struct evhttp *http; /* owned */
    bk_metrics_fill_fn fill;
    void *arg;
};

static void bk_metrics_http_cb(struct evhttp_request *req, void *arg)
{
    struct bk_metrics_http *h = arg;
    if (evhttp_request_get_command(req) != EVHTTP_REQ_GET) {
        evhttp_send_error(req, 405, "Method Not Allowed");
        return;
    }
    const char *uri = evhttp_request_get_uri(req);
    if (strcmp(uri, "/metrics") != 0 && strncmp(uri, "/metrics?", 9) != 0) {
        evhttp_send_error(req, 404, "Not Found");
        return;
    }
    struct evbuffer *b = evbuffer_new();
    h->fill(h->arg, b);
    evhttp_add_header(evhttp_request_get_output_headers(req), "Content-Type",
                      "text/plain; version=0.0.4; charset=utf-8");
    evhttp_send_reply(req, 200, "OK", b);
    evbuffer_free(b);
}

struct bk_metrics_http *bk_metrics_http_start(struct event_base *base, const char *addr, int port,
                                              bk_metrics_fill_fn fill, void *arg)
{
    struct bk_metrics_http *h = mg_calloc(1, sizeof *h);
    h->fill = fill;
    h->arg = arg;
    h->http = evhttp_new(base);
    evhttp_set_gencb(h->http, bk_metrics_http_cb, h);
    if (!evhttp_bind_socket_with_handle(h->http, addr, (uint16_t)port)) {
        MG_ERROR(BK_MODULE,
                 "prometheusStatsHttpPort %d: cannot listen on %s: the metrics are not served",
                 port, addr);
        bk_metrics_http_stop(h);
        return NULL;
    }
    MG_INFO(BK_MODULE, "metrics on http://%s:%d/metrics", addr, port);
    return h;
}

void bk_metrics_http_stop(struct bk_metrics_http *h)
{
    if (!h)
        return;
    evhttp_free(h->http);
    mg_free(h);
}
