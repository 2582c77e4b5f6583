/*
 * autorec.h - BookKeeper's autorecovery for magnetar's bookies: an auditor elected through
 * the metadata store marks the ledgers that have a fragment on a lost bookie as
 * under-replicated, and replication workers copy those fragments to other bookies and write
 * the new ensembles into the ledger metadata (BookKeeper's Auditor, ReplicationWorker and
 * ZkLedgerUnderreplicationManager, with their znode layout under
 * <ledgers root>/underreplication/).
 *
 * One struct ar runs both parts on a loop: every instance is a candidate for auditor
 * (ephemeral sequential votes, the lowest one audits) and a replication worker (one ledger at
 * a time, under an ephemeral lock). `magnetar bookie` runs one when autoRecoveryDaemonEnabled
 * is set, `magnetar autorecovery` runs one alone; `magnetar shell` has the operator commands.
 *
 * Threading: everything runs on the loop given to ar_new (its clock and timers; the meta
 * store must use the same loop); no call blocks it: metadata and bookie requests are
 * asynchronous and each callback does a bounded amount of work (one listing, one ledger's
 * metadata, one entry).
 */
#ifndef MG_AUTOREC_H
#define MG_AUTOREC_H

#include <stdbool.h>
#include <stdint.h>

struct ar;
struct cfg;
struct mg_loop;
struct meta_store;
struct bkc_transport;

struct ar_conf {
    const char *id;               /* this instance in votes and locks (a bookie id) */
    int lost_bookie_delay_ms;     /* lostBookieRecoveryDelay x 1000 */
    int check_interval_ms;        /* auditorPeriodicCheckInterval x 1000; 0 = off */
    int bookie_check_interval_ms; /* auditorPeriodicBookieCheckInterval x 1000; 0 = off */
    int batch;                    /* rereplicationEntryBatchSize: entries in flight */
    int open_grace_ms;            /* openLedgerRereplicationGracePeriod */
    int failed_grace_ms;          /* lockReleaseOfFailedLedgerGracePeriod */
    int poll_ms;                  /* worker: look for marked ledgers this often when idle */
    int timeout_ms;               /* bookie request timeout */
    bool auditor, worker;         /* which parts run */
    const char *ledgers_root;     /* [/ledgers] */
    const struct bkc_transport *transport; /* NULL: TCP; tests: bkc_fake_transport */
};

/* The conf from the configuration keys (id borrowed; both parts on, poll 1 s). */
void ar_conf_from_cfg(struct ar_conf *o, const struct cfg *cfg, const char *id);

/* What `magnetar bookie` (bookie_id: its id) and `magnetar autorecovery` (bookie_id NULL) run:
 * an instance from cfg, or nothing (*out NULL) for a bookie with autoRecoveryDaemonEnabled
 * false or without a shared store (meta NULL). Returns 0, or -MG_EINVAL (logged) for
 * `magnetar autorecovery` without a shared store. */
int ar_start_role(struct mg_loop *loop, struct meta_store *meta, const struct cfg *cfg,
                  const char *bookie_id, struct ar **out);

/* Start on loop and meta (borrowed: both must outlive it). Returns 0 and *out, or
 * -MG_EINVAL (no id). Votes for auditor and starts the worker at once. */
int ar_new(struct mg_loop *loop, struct meta_store *meta, const struct ar_conf *o, struct ar **out);
/* Stop: no new request is made, watches and timers are cancelled, the bookie client is freed
 * (its callbacks still owed run inside and are ignored). Metadata requests still in flight
 * may complete later (ignored): close the meta store before ar_free. The vote and the lock
 * are ephemeral: they go with the store's session. Accepts NULL; idempotent. */
void ar_stop(struct ar *a);
/* ar_stop if not done, then free. The meta store must be closed already when requests may
 * still be in flight (ar_stop, meta_close, ar_free), so that none completes afterwards.
 * Accepts NULL. */
void ar_free(struct ar *a);

struct ar_stats {
    bool is_auditor;            /* this instance is the elected auditor */
    int64_t under_replicated;   /* ledgers marked under-replicated when last counted */
    int64_t ledgers_marked;     /* marks this auditor created */
    int64_t audits;             /* audits (scans of all ledgers) completed */
    int64_t entries_copied;     /* entries re-replicated by this worker */
    int64_t ledgers_replicated; /* ledgers whose mark this worker cleared */
    int64_t fragments_failed;   /* ledgers left after a failure (a copy, a metadata write) */
    int64_t election_attempts;  /* votes cast */
    int64_t ledgers_checked;    /* ledgers audited */
};
void ar_get_stats(const struct ar *a, struct ar_stats *out);
/* The stats as Prometheus text with BookKeeper's names (replication_auditor_*,
 * replication_replication_worker_*) appended to b. */
struct evbuffer;
void ar_metrics(const struct ar *a, struct evbuffer *b);

/* `magnetar shell <command> [args]`: listunderreplicated | listbookies [-rw|-ro|-a] |
 * ledgermetadata -l <id> | recover <bookie> | decommissionbookie -bookieid <bookie>, against
 * metadataStoreUrl (--set/-c/MAGNETAR_ like the roles). Returns the exit code. */
int ar_shell_main(int argc, char **argv);

#endif
