/*
 * bookie.h - `magnetar bookie`: a storage node speaking Apache BookKeeper's protocol.
 *
 * One listening port serves both framings real bookies accept (v2, which Pulsar brokers use
 * by default, and v3 protobuf), told apart per connection by the first frame. Adds are
 * written to a journal by a dedicated journal thread that fsyncs once per group and only
 * then lets the loop thread acknowledge them; entries also go to entry logs indexed in LMDB,
 * synced at checkpoints, after which the journal is trimmed. broker/bookie/README.md
 * describes files, formats, group commit and recovery.
 *
 * Threading: a bk_server belongs to the thread running its event_base (the loop thread);
 * every function here must be called on it. The server starts one journal thread of its own.
 */
#ifndef MG_BOOKIE_H
#define MG_BOOKIE_H

#include <stdbool.h>
#include <stdint.h>

/* Bytes a bookie frame may carry beyond the largest message: nettyMaxFrameSizeBytes defaults to
 * maxMessageSize (5 MiB) plus this, as in Pulsar's bookkeeper.conf (5253120), so that a
 * message of exactly maxMessageSize still fits once framed as an add. */
#define BK_FRAME_PADDING 10240
#define BK_DEFAULT_MAX_FRAME (5 * 1024 * 1024 + BK_FRAME_PADDING)

struct event_base;
struct meta_store;
struct bk_server;

/* Options of a bookie. Strings are borrowed for the duration of bk_server_new only. */
struct bk_options {
    const char *bind_address;        /* "0.0.0.0" */
    int port;                        /* 0 = any free port (see bk_server_port) */
    const char *bookie_id;           /* registration name; NULL = "<advertised>:<port>" */
    const char *advertised_address;  /* host part of the default bookie id */
    const char *journal_dir;         /* created if missing; one directory */
    const char *ledger_dir;          /* ledgerDirectories: comma-separated, created if missing */
    int max_group_wait_ms;           /* journalMaxGroupWaitMSec */
    int buffered_writes_threshold;   /* journalBufferedWritesThreshold, bytes */
    int buffered_entries_threshold;  /* journalBufferedEntriesThreshold, 0 = off */
    int64_t journal_max_size;        /* bytes: roll the journal file beyond this */
    int journal_max_backups;         /* journalMaxBackups: covered journal files kept (5) */
    int64_t journal_prealloc;        /* journalPreAllocSizeMB in bytes; 0 = 16 MiB */
    bool journal_reuse;              /* journalReuseFiles */
    bool journal_sync;               /* false: no fsync (benchmarks only) */
    int flush_interval_ms;           /* checkpoint period */
    int64_t write_cache_max;         /* dbStorage_writeCacheMaxSizeMb in bytes, both halves of
                                        the write cache; 0 = 64 MiB */
    double disk_usage_threshold_pct; /* diskUsageThreshold x 100: read-only above this disk
                                        usage, (0, 100]; also caps journal preallocation */
    double disk_usage_lwm_pct;       /* diskUsageLwmThreshold x 100: writable again below it;
                                        0 or above the threshold = the threshold */
    double disk_usage_warn_pct;      /* diskUsageWarnThreshold x 100: one WARN line per crossing;
                                        0 or above the threshold = the threshold */
    int64_t flush_entrylog_bytes;    /* flushEntrylogBytes: entry-log write-behind chunk, 0 off */
    int disk_check_interval_ms;
    int max_frame_size;         /* nettyMaxFrameSizeBytes: larger requests get EBADREQ */
    int64_t entry_log_max_size; /* 0 = 1 GiB: roll entry logs beyond this */
    struct meta_store *meta;    /* borrowed, may be NULL: register under /ledgers/available
                                   and list /ledgers for garbage collection */
    /* garbage collection and compaction (README.md "Garbage collection"; BookKeeper's keys) */
    int gc_wait_ms;                      /* gcWaitTime (600000); <= 0: no periodic run */
    double minor_compaction_threshold;   /* 0.2; <= 0 disables */
    int64_t minor_compaction_interval_s; /* 3600 */
    double major_compaction_threshold;   /* 0.8; <= 0 disables */
    int64_t major_compaction_interval_s; /* 86400 */
    int64_t compaction_rate_by_entries;  /* 1000 per second */
    int64_t compaction_rate_by_bytes;    /* 1000000 per second */
    bool is_throttle_by_bytes;           /* false */
    bool force_gc_when_no_space;         /* isForceGCAllowWhenNoSpace (false) */
    /* TLS (README.md "TLS"; BookKeeper's keys): START_TLS is answered when
     * tls_provider_factory is set; refused (EBADREQ) otherwise */
    const char *tls_provider_factory;  /* tlsProviderFactoryClass; NULL or "" = no TLS */
    const char *tls_cert;              /* tlsCertificatePath (PEM chain) */
    const char *tls_key;               /* tlsKeyStore (PEM key) */
    const char *tls_key_type;          /* tlsKeyStoreType: only "PEM" (NULL = PEM) */
    const char *tls_trust;             /* tlsTrustStore (PEM CAs) */
    const char *tls_trust_type;        /* tlsTrustStoreType: only "PEM" (NULL = PEM) */
    bool tls_client_auth;              /* tlsClientAuthentication: a client certificate is
                                          required and verified against tls_trust */
    const char *auth_provider_factory; /* bookieAuthProviderFactoryClass: BK_TLS_AUTH_FACTORY
                                          = TLS required for ADD and READ; NULL or "" = none */
    const char *authorized_roles;      /* authorizedRoles: with BK_TLS_AUTH_FACTORY, the roles
                                          (OU "0:..." or else CN) a client certificate must
                                          have; NULL or "" = any */
    int tls_refresh_s;                 /* tlsCertFilesRefreshDurationSeconds; 0 = never */
};

/* The bookieAuthProviderFactoryClass that requires TLS (BookKeeper's TLS-based one). */
#define BK_TLS_AUTH_FACTORY "org.apache.bookkeeper.tls.BookieAuthZFactory"

/* Fill o with the defaults of bk_server.conf (port 3181, 1 ms group wait, ...). */
void bk_options_default(struct bk_options *o);

/*
 * Lock the directories, listen, check the bookie's cookies (in its directories and, with
 * o->meta, at /ledgers/cookies/<bookieId>; written on the first start; the loop runs while
 * the store is waited for), open the storage (LMDB index, replay of the journal from the last
 * checkpoint), start the journal thread, serve, and register in o->meta if set. Returns 0
 * and *out, or -MG_ENOTALLOWED (the cookies show another bookie, directory set or cluster,
 * or a wiped directory: broker/bookie/README.md "Cookie"), -MG_EBUSY (directories locked by
 * another bookie), -MG_EIO / -MG_EINVAL (reason logged). Nothing is left running on failure.
 */
int bk_server_new(struct event_base *base, const struct bk_options *o, struct bk_server **out);

/* The bound port (useful with port 0). */
int bk_server_port(const struct bk_server *s);
/* Its bookie id (the registration name, "host:port"); borrowed, valid until bk_server_free. */
const char *bk_server_id(const struct bk_server *s);

/* true while adds are refused (disk full or out of space: until usage falls below
 * diskUsageLwmThreshold; journal or storage I/O error: until restart). */
bool bk_server_readonly(const struct bk_server *s);

/*
 * Begin a clean shutdown: stop accepting connections and remove the registration. Adds
 * already received still complete. Call bk_server_free after the loop returned.
 */
void bk_server_shutdown(struct bk_server *s);

/*
 * Stop the journal thread after it wrote and synced everything queued, apply and answer
 * what it completed, checkpoint (sync entry logs, commit the index, persist lastMark), close
 * connections and free. Accepts NULL.
 */
void bk_server_free(struct bk_server *s);

/* The metadata store's session expired (its ephemeral keys are gone): register again. */
void bk_server_session_expired(struct bk_server *s);

/*
 * `magnetar bookie --format`: delete the contents of the journal and ledger directories
 * (their current/ subdirectories: data and cookies) and this bookie's cookies in meta (may be
 * NULL), so that the next start is a new bookie. Takes the directories' locks first (a
 * running bookie's directories are refused with -MG_EBUSY). Without force it only prints
 * what it would delete and returns -MG_ENOTALLOWED. Runs base's loop while it waits for the
 * store. Returns 0 or -MG_E* (reason logged).
 */
int bk_format(struct event_base *base, struct meta_store *meta, const struct bk_options *o,
              bool force);

/* Fill o from the configuration keys of conf/README.md (bookiePort, journalDirectory, ...).
 * ledger_dir is the ledger directory list to use, comma-separated (borrowed, must outlive o). */
struct cfg;
void bk_options_from_cfg(struct bk_options *o, const struct cfg *cfg, const char *ledger_dir);

/* ---- in-process clients (bk_local.c) ------------------------------------------------- */

/*
 * A ledger-client transport (bkc_config.transport) that hands the adds and reads for the
 * bookies in srvs (this process's: a standalone's own) to them by calls: no loopback TCP, no
 * protocol encoding. The same request semantics as over TCP (bk_server.c: master key,
 * fencing, read-only, journal: an add is answered after its group's fsync); other bookie ids
 * go over TCP. Each bookie can be in one registry. Free the registry after the ledger clients
 * that use it; a bookie may be freed before it (its connections then fail as refused).
 */
struct bk_local;
struct bkc_transport;
struct bk_local *bk_local_new(struct bk_server *const *srvs, int n);
const struct bkc_transport *bk_local_transport(struct bk_local *l);
/* Accepts NULL. */
void bk_local_free(struct bk_local *l);

/* ---- metrics (bk_metrics.c) ---------------------------------------------------------- */

/* s's metrics as Prometheus text with BookKeeper's names (bookie_SERVER_STATUS,
 * bookie_journal_JOURNAL_ADD_ENTRY, bookie_journal_JOURNAL_SYNC, bookie_gc_...), appended to
 * b. Loop thread. */
struct evbuffer;
void bk_metrics(struct bk_server *s, struct evbuffer *b);
/* GET /metrics on addr:port answered with what fill appends to b (prometheusStatsHttpPort of
 * `magnetar bookie` and `magnetar autorecovery`); NULL when the port cannot be bound
 * (logged). */
typedef void (*bk_metrics_fill_fn)(void *arg, struct evbuffer *b);
struct bk_metrics_http;
struct bk_metrics_http *bk_metrics_http_start(struct event_base *base, const char *addr, int port,
                                              bk_metrics_fill_fn fill, void *arg);
/* Accepts NULL. */
void bk_metrics_http_stop(struct bk_metrics_http *h);

#endif
