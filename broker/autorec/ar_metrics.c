/*
 * ar_metrics.c - the autorecovery's Prometheus metrics (text exposition 0.0.4), with
 * BookKeeper's names (its ReplicationStats scopes joined by '_', as its Prometheus provider
 * writes them), served on GET /metrics of prometheusStatsHttpPort by `magnetar bookie` and
 * `magnetar autorecovery` when that port is set.
 *
 * Failure modes: a port that cannot be bound is logged and the process goes on without the
 * endpoint; other paths answer 404, other methods 405.
 */
#include "autorec/ar_int.h"
#include "util/alloc.h"
#include "util/err.h"
#include "util/log.h"

#include <event2/buffer.h>
#include <event2/http.h>
#include <inttypes.h>
#include <string.h>

#define MOD "autorec"

static void ar_metric(struct evbuffer *b, const char *type, const char *name, int64_t v)
{
    evbuffer_add_printf(b, "# TYPE %s %s\n%s %" PRId64 "\n", name, type, name, v);
}

void ar_metrics(const struct ar *a, struct evbuffer *b)
{
    const struct ar_stats *s = &a->st;
    ar_metric(b, "gauge", "replication_auditor_leader", s->is_auditor); /* no BookKeeper name */
    ar_metric(b, "counter", "replication_auditor_election_attempts", s->election_attempts);
    ar_metric(b, "gauge", "replication_auditor_NUM_UNDER_REPLICATED_LEDGERS", s->under_replicated);
    ar_metric(b, "counter", "replication_auditor_NUM_LEDGERS_CHECKED", s->ledgers_checked);
    ar_metric(b, "counter", "replication_replication_worker_NUM_ENTRIES_WRITTEN",
              s->entries_copied);
    ar_metric(b, "counter", "replication_replication_worker_NUM_FULL_OR_PARTIAL_LEDGERS_REPLICATED",
              s->ledgers_replicated);
    ar_metric(b, "counter",
              "replication_replication_worker_NUM_DEFER_LEDGER_LOCK_RELEASE_OF_FAILED_LEDGER",
              s->fragments_failed);
}

static void ar_http_cb(struct evhttp_request *req, void *arg)
{
    struct ar *a = arg;
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
    ar_metrics(a, b);
    evhttp_add_header(evhttp_request_get_output_headers(req), "Content-Type",
                      "text/plain; version=0.0.4; charset=utf-8");
    evhttp_send_reply(req, 200, "OK", b);
    evbuffer_free(b);
}

int ar_http_start(struct ar *a, const char *addr, int port)
{
    a->http = evhttp_new(mg_loop_base(a->loop));
    evhttp_set_gencb(a->http, ar_http_cb, a);
    if (!evhttp_bind_socket_with_handle(a->http, addr, (uint16_t)port)) {
        MG_ERROR(MOD, "prometheusStatsHttpPort %d: cannot listen on %s: the metrics are not served",
                 port, addr);
        evhttp_free(a->http);
        a->http = NULL;
        return -MG_EIO;
    }
    MG_INFO(MOD, "metrics on http://%s:%d/metrics", addr, port);
    return 0;
}

void ar_http_stop(struct ar *a)
{
    if (a->http)
        evhttp_free(a->http);
    a->http = NULL;
}
