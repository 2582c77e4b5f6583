/*
 * ar_metrics.c - the autorecovery's Prometheus metrics (text exposition 0.0.4), with
 * BookKeeper's names (its ReplicationStats scopes joined by '_', as its Prometheus provider
 * writes them), served on GET /metrics of prometheusStatsHttpPort (bookie/bk_metrics.c's
 * endpoint) by `magnetar autorecovery`, and by `magnetar bookie` after the bookie's own.
 */
#include "autorec/ar_int.h"

#include <event2/buffer.h>
#include <inttypes.h>

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

void ar_metrics_fill(void *arg, struct evbuffer *b)
{
    ar_metrics(arg, b);
}
