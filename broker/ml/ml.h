/*
 * ml.h - the managed ledger: a topic's ordered, append-only log of entries, and its cursors.
 *
 * A managed ledger (ML) is a list of ledgers; only the last one takes appends. A position
 * (ledger, entry) is a Pulsar MessageId. Entries are the stored message bytes (from the
 * 0x0e01 checksum magic to the end of the payload, docs/wire-pulsar.md §1.1), refcounted and
 * immutable once appended, so dispatch shares them with connections without copying.
 *
 * Storage sits behind `struct ml_store_ops` (ml_int.h): "memory" (tests) and
 * "bookkeeper" (ledgers on bookies, metadata in the meta store; broker/ml/README.md).
 *
 * Cursors track what a subscription has consumed: the mark-delete position M (every entry
 * <= M is acknowledged), individually acknowledged entries beyond M (kept as ranges), and
 * per-entry batch-index ack sets. The read position is where the next read starts.
 *
 * Threading: everything here runs on the thread of the factory's loop.
 * Async calls follow docs/style.md §2: a synchronous failure returns <0 and the callback never
 * runs; otherwise the callback runs exactly once, after the call has returned.
 */
#ifndef MG_ML_H
#define MG_ML_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct mg_loop;
struct evbuffer;
struct ml_factory;
struct ml_ledger;
struct ml_cursor;
struct meta_store;
struct bkc_client;

/* A Pulsar message id without partition and batch index. Ordered by (ledger, entry). */
struct ml_position {
    int64_t ledger;
    int64_t entry;
};

#define ML_POS_EARLIEST ((struct ml_position){-1, -1})
#define ML_POS_LATEST ((struct ml_position){INT64_MAX, INT64_MAX})

int ml_pos_cmp(struct ml_position a, struct ml_position b);

/* What the layers above know of an entry's content (the managed ledger does not read the
 * bytes: the topic layer tells it at append, and for entries read back from the store,
 * through ml_config.entry_info). */
struct ml_entry_info {
    int32_t num_messages;    /* messages in the entry (a batch's count), >= 1 */
    bool batched;            /* the entry is a batch (also of one message) */
    uint64_t publish_time;   /* ms; seek by time, retention by time */
    uint32_t key_hash;       /* Key_Shared sticky-key hash in [0, 65535] */
    int64_t deliver_at_time; /* ms, 0 = none */
    uint32_t chunk_key;      /* a chunk of a chunked message: its run (non-zero); else 0 */
    bool chunk_last;         /* the last chunk of its run */
    uint32_t tail_crc;       /* CRC32C of the entry's last tail_len bytes, when the layer */
    size_t tail_len;         /* above computed it (the Pulsar checksum); 0: not known */
};

/* One stored entry. Refcounted: holders take ml_entry_ref and drop with ml_entry_unref. */
struct ml_entry {
    int refs;
    struct ml_position pos;
    struct evbuffer *data;   /* owned; the stored bytes; never modified after append */
    size_t size;             /* bytes in data */
    int32_t num_messages;    /* struct ml_entry_info's fields: 1 ... */
    bool batched;            /* ... false ... */
    uint64_t publish_time;   /* ... and 0 ... */
    uint32_t key_hash;       /* ... when nobody said */
    int64_t deliver_at_time; /* (ml_config.entry_info NULL, or it failed) */
    uint32_t chunk_key;
    bool chunk_last;
    uint32_t tail_crc; /* struct ml_entry_info's: the store's digest need not read them */
    size_t tail_len;
};

struct ml_entry *ml_entry_ref(struct ml_entry *e);
void ml_entry_unref(struct ml_entry *e); /* accepts NULL */
/* A new entry owning data (refs 1, position (-1, -1)), with info's content (NULL: one
 * message, no metadata): entries the layers above make themselves (a compacted view). */
struct ml_entry *ml_entry_new(struct evbuffer *data, const struct ml_entry_info *info);

struct ml_config {
    /* managedLedgerCacheSizeMB: bound of the tail cache, in heap bytes (each entry is charged
     * its storage plus ML_CACHE_ENTRY_OVERHEAD); 0 = no cache. */
    size_t cache_size_bytes;
    /* managedLedgerCacheEvictionTimeThresholdMillis: a cached entry older than this is
     * evicted, and so is one every open cursor has read (0 = only the size bound evicts);
     * managedLedgerCacheEvictionIntervalMs: how often at most the eviction timer runs
     * (0 = 10). */
    int64_t cache_eviction_time_ms;
    int64_t cache_eviction_interval_ms;
    int64_t max_entries_per_ledger; /* managedLedgerMaxEntriesPerLedger: rollover */
    int64_t max_size_per_ledger;    /* managedLedgerMaxSizePerLedgerMbytes, bytes */
    /* Retention of consumed ledgers (defaultRetentionTimeInMinutes / SizeInMB): 0 = keep
     * nothing consumed, -1 = keep forever; a consumed ledger is trimmed once it is older
     * than the time or the consumed data beyond it exceeds the size (Pulsar's rule). */
    int64_t retention_time_minutes;
    int64_t retention_size_mb;
    /* retentionCheckIntervalInSeconds, in ms: a factory timer runs the trim check (and the
     * time-based rollover below) of every open ML this often, traffic or not; 0 = no timer
     * (trims then run only when a cursor moves or a ledger rolls). */
    int64_t retention_check_interval_ms;
    /* managedLedgerMinLedgerRolloverTimeMinutes / MaxLedgerRolloverTimeMinutes, in ms: a
     * ledger is full once it holds max_entries_per_ledger / max_size_per_ledger or is
     * max_rollover_ms old (with an entry), and in any case only once it is older than
     * min_rollover_ms (Pulsar's currentLedgerIsFull). 0 = no such bound. */
    int64_t min_rollover_ms;
    int64_t max_rollover_ms;
    /* "bookkeeper" store only (ignored by "memory"): */
    struct meta_store *meta;           /* borrowed: ML and cursor metadata; outlives the factory */
    struct bkc_client *bkc;            /* borrowed: ledgers; outlives the factory */
    int ensemble_size;                 /* managedLedgerDefaultEnsembleSize; 0 = bkc's default */
    int write_quorum;                  /* managedLedgerDefaultWriteQuorum; 0 = bkc's default */
    int ack_quorum;                    /* managedLedgerDefaultAckQuorum; 0 = bkc's default */
    int cursor_flush_interval_ms;      /* at most one cursor write per this period per cursor
                                          (1000 / managedLedgerDefaultMarkDeleteRateLimit);
                                          0 = 1000; < 0 = write every change at once */
    int max_unacked_ranges_to_persist; /* managedLedgerMaxUnackedRangesToPersistInZooKeeper:
                                          more ranges: only mark-delete is written; 0 = 1000 */
    /* autoSkipNonRecoverableData: data in the ledger list that can never be read back (the
     * ledger is gone, no bookie has the entry, every copy is corrupt). false: ml_open fails
     * with -MG_ENONRECOVERABLE when it is the last ledger (recovered at load), and a read
     * reaching it fails with that code (after the entries before it); true: it is skipped
     * and acknowledged for every cursor, with an ERROR log per ledger (Pulsar's rule). */
    bool auto_skip_non_recoverable_data;
    /* The content of an entry read back from the store (the tail cache keeps what was
     * given at append): 0 and info filled, or < 0 for bytes it cannot read (then: one
     * message, no metadata). NULL: always so. Called on the loop thread. */
    int (*entry_info)(struct evbuffer *data, struct ml_entry_info *info);
};

/* The factory owns the storage backend and every open ML, on loop (borrowed: it must outlive
 * the factory; its clock times rollover backoff, retention and cursor writes, and stamps
 * ledger close times). store = "memory" (tests,
 * nothing survives the process) or "bookkeeper" (ledgers on bookies through cfg->bkc,
 * metadata in cfg->meta, both required; broker/ml/README.md "Durable store").
 * Returns NULL (with a logged reason) if the store name is unknown or its config is
 * incomplete. */
struct ml_factory *ml_factory_new(struct mg_loop *loop, const char *store,
                                  const struct ml_config *cfg);
/* Closes every ML and cursor (pending requests complete with -MG_ECANCELED first).
 * Metadata writes still in flight (cursor flushes of closed MLs) are abandoned: for a clean
 * shutdown close the MLs, run the loop until ml_factory_pending is 0, then free. Free the
 * factory before the bkc client and the meta store it uses. */
void ml_factory_free(struct ml_factory *f);
/* Store operations still in flight (cursor and ML metadata writes, ledger closes). */
int ml_factory_pending(const struct ml_factory *f);
/* The loop the factory runs on (as given to ml_factory_new): what runs with its MLs (the
 * topic registry) reads its clock and arms its timers there. */
struct mg_loop *ml_factory_loop(const struct ml_factory *f);

/* ---- managed ledgers ----------------------------------------------------------------- */

typedef void (*ml_open_cb)(struct ml_ledger *ml, int status, void *data);
/* Open (creating if missing) the ML called name ("tenant/ns/persistent/topic").
 * Opening an ML that is already open gives the same handle with one more reference.
 * cb gets the handle, or NULL and a negative status. */
int ml_open(struct ml_factory *f, const char *name, ml_open_cb cb, void *data);
/* Drop one reference; the last one closes the ML (pending appends: -MG_ECANCELED). */
void ml_close(struct ml_ledger *ml);
/* Delete the ML and its data. Fails with -MG_EBUSY while cursors are open unless force. */
int ml_delete(struct ml_ledger *ml, bool force);

const char *ml_name(const struct ml_ledger *ml);
/* Another broker took this ML (its metadata CAS or a ledger fence told us): every append
 * fails with -MG_EFENCED from now on. The owner should close the topic (producers and
 * consumers) and ml_close the handle so clients look the topic up again. */
bool ml_is_fenced(const struct ml_ledger *ml);

struct ml_append_req;
typedef void (*ml_append_cb)(struct ml_append_req *req, int status);
struct ml_append_req {
    void *data;             /* caller's */
    ml_append_cb cb;        /* set by ml_append */
    struct ml_position pos; /* filled before cb on success */
    struct ml_entry *entry; /* borrowed, valid only during cb on success */
    /* private */
    struct ml_append_req *next;
    struct ml_entry *pending;
};
/* Append data (ownership of the evbuffer moves to the ML; the caller must not touch it
 * afterwards) as one entry; info (copied; NULL: one message, no metadata) is what readers
 * of the entry see until it leaves the tail cache. Callbacks fire strictly in append order; status
 * 0 means the entry is stored (durably, for durable stores). Errors: -MG_ECLOSED, -MG_EFENCED (sync
 * or async: the ML is fenced for good, see ml_is_fenced), -MG_EIO and other store errors (async:
 * this append and those queued behind it failed; the ML rolls to a new ledger on the next append,
 * so a resend may succeed), -MG_ETOOBIG (async: this entry alone is over what the store can ever
 * take, the bookies' frame limit; the appends around it go on). Cursors waiting for entries are
 * woken once the append completes. */
int ml_append(struct ml_ledger *ml, struct evbuffer *data, const struct ml_entry_info *info,
              struct ml_append_req *req, ml_append_cb cb);

/* Terminate the ML (Pulsar's asyncTerminate): from this call on every append is refused
 * with -MG_ETERMINATED; once the appends already accepted completed, the last confirmed
 * entry becomes the terminated position, which is stored with the ledger list (it survives
 * a reopen, also by another broker) and handed to cb. Terminating a terminated ML answers
 * its position again. cb runs after the call returned; -MG_ECANCELED if the ML closes
 * first, a store error if the position could not be stored (the ML stays terminated in
 * memory; a later call tries the write again). */
typedef void (*ml_terminate_cb)(struct ml_ledger *ml, struct ml_position last, int status,
                                void *data);
int ml_terminate(struct ml_ledger *ml, ml_terminate_cb cb, void *data);
/* Appends are refused (ml_terminate was called, or the stored list says so). */
bool ml_is_terminated(const struct ml_ledger *ml);
/* The terminated position, once known: true and *out set. */
bool ml_terminated_position(const struct ml_ledger *ml, struct ml_position *out);

/* Last entry whose append completed; (current ledger, -1) when empty. */
struct ml_position ml_last_confirmed(const struct ml_ledger *ml);
/* First position of the ML that still exists (for Earliest). */
struct ml_position ml_first_position(const struct ml_ledger *ml);
/* The position after pos (skipping ledger boundaries). */
struct ml_position ml_next_position(const struct ml_ledger *ml, struct ml_position pos);
/* The position before pos, crossing to the last entry of the previous non-empty ledger;
 * (pos.ledger, -1) when there is none. */
struct ml_position ml_prev_position(const struct ml_ledger *ml, struct ml_position pos);
/* Entries strictly after `from` up to and including `to`. */
int64_t ml_count_entries(const struct ml_ledger *ml, struct ml_position from,
                         struct ml_position to);

struct ml_stats {
    int64_t entries_added;     /* since open */
    int64_t number_of_entries; /* stored */
    int64_t total_size;        /* bytes stored */
    int64_t current_ledger_entries;
    int64_t current_ledger_size;
    int64_t pending_appends;
    int num_ledgers;
};
void ml_get_stats(const struct ml_ledger *ml, struct ml_stats *out);

/* One ledger of the ML's list (internal stats): the still-open last ledger too. */
struct ml_ledger_stat {
    int64_t id;
    int64_t entries;   /* confirmed entries */
    int64_t size;      /* confirmed bytes */
    int64_t closed_ms; /* wall clock ms when it was closed; 0 = open or unknown */
};
/* Iterate the ledgers in ascending order: *pos = 0 first; returns 0 at the end. */
int ml_ledger_next(const struct ml_ledger *ml, size_t *pos, struct ml_ledger_stat *out);
/* Pulsar's ManagedLedger state name: "LedgerOpened", "Fenced", "Closed" (or "Opening"). */
const char *ml_state_name(const struct ml_ledger *ml);

/* Per-ML retention (a namespace's retention policy), overriding the factory's
 * retention_time_minutes / retention_size_mb with the same meaning; reset = back to the
 * factory's. Takes effect at the next trim check, which this call runs. */
void ml_set_retention(struct ml_ledger *ml, int64_t time_minutes, int64_t size_mb);
void ml_reset_retention(struct ml_ledger *ml);
/* The retention time in force (minutes; -1 = forever, 0 = none): the ML's, else the
 * factory's. */
int64_t ml_retention_time_minutes(const struct ml_ledger *ml);

/* Look up an entry by position and hand it over with a reference the caller must drop;
 * completes asynchronously (it may need a storage read). -MG_ENOTFOUND if absent. */
typedef void (*ml_get_cb)(struct ml_entry *e, int status, void *data);
int ml_get_entry(struct ml_ledger *ml, struct ml_position pos, ml_get_cb cb, void *data);

/* First position whose publish_time >= ts_ms, or the position after the last entry if
 * none (async: may need reads). _from: the first such position at or after `from` (what is
 * before it is not looked at: a TTL check starts at the slowest cursor). Ledgers whose
 * publish times are known (written since the ML opened, or read whole by an earlier
 * search) are not read: skipped when all older, the answer when all newer. */
typedef void (*ml_find_cb)(struct ml_position pos, int status, void *data);
int ml_find_by_time(struct ml_ledger *ml, uint64_t ts_ms, ml_find_cb cb, void *data);
int ml_find_by_time_from(struct ml_ledger *ml, struct ml_position from, uint64_t ts_ms,
                         ml_find_cb cb, void *data);

/* ---- side ledgers ---------------------------------------------------------------------- */

/* Ledgers of the ML's store outside its ledger list (Pulsar's compacted ledger, written with
 * the managed ledger's BookKeeper client): their owner keeps their ids, writes entries 0, 1, ...
 * in order, seals, reads and deletes them; trimming and ml_delete never touch them. Each call
 * is one store request: < 0 = nothing started (the callback never runs; ml_side_add still
 * took data), else cb runs once, later, with the store's status. */
struct ml_side_req;
struct ml_store_req;
typedef void (*ml_side_cb)(struct ml_side_req *req, int status);
struct ml_side_req {
    void *data;                /* caller's */
    ml_side_cb cb;             /* set by the call */
    int64_t ledger_id;         /* ml_side_create: the new ledger's id on success */
    struct ml_entry **entries; /* ml_side_read on success: n entries (each referenced for the */
    int n;                     /* caller, who unrefs them and mg_frees the array) */
    /* private */
    struct ml_ledger *ml;
    struct ml_entry *entry;
    struct ml_store_req *sreq; /* owned while the request is out */
};
int ml_side_create(struct ml_ledger *ml, struct ml_side_req *req, ml_side_cb cb);
/* Entry entry_id (the next one: 0, 1, ...) of a side ledger; data's ownership moves. */
int ml_side_add(struct ml_ledger *ml, int64_t ledger_id, int64_t entry_id, struct evbuffer *data,
                struct ml_side_req *req, ml_side_cb cb);
/* Seal it once its adds completed. */
int ml_side_close(struct ml_ledger *ml, int64_t ledger_id, struct ml_side_req *req, ml_side_cb cb);
/* Entries [first, last] (those that exist; beyond the end: an error status). */
int ml_side_read(struct ml_ledger *ml, int64_t ledger_id, int64_t first, int64_t last,
                 struct ml_side_req *req, ml_side_cb cb);
/* Delete it (fire and forget). */
void ml_side_delete(struct ml_ledger *ml, int64_t ledger_id);

/* ---- cursors --------------------------------------------------------------------------- */

/* Open a cursor. Durable cursors are kept with the ML (and, with durable stores,
 * persisted) and survive until ml_cursor_delete; opening an existing durable cursor
 * returns it with its stored positions and ignores start. A new cursor starts with
 * mark-delete = the position before start (ML_POS_LATEST: the last confirmed entry;
 * ML_POS_EARLIEST: before the first entry). Non-durable cursors live until closed.
 * Returns NULL only for a durable cursor name that is already open (-> *err=-MG_EBUSY). */
struct ml_cursor *ml_cursor_open(struct ml_ledger *ml, const char *name, bool durable,
                                 struct ml_position start, int *err);
/* Stop using a cursor (a durable one stays stored). Pending reads: -MG_ECANCELED. */
void ml_cursor_close(struct ml_cursor *c);
/* Remove a durable cursor and its state, then close it. */
void ml_cursor_delete(struct ml_cursor *c);
/* Names of the stored durable cursors (open or not): iterate with *pos = 0 until NULL. */
const char *ml_cursor_name_next(struct ml_ledger *ml, size_t *pos);
/* Is there a stored durable cursor of that name? */
bool ml_cursor_exists(struct ml_ledger *ml, const char *name);

const char *ml_cursor_name(const struct ml_cursor *c);
bool ml_cursor_durable(const struct ml_cursor *c);

struct ml_read_req;
typedef void (*ml_read_cb)(struct ml_read_req *req, int status);
struct ml_read_req {
    void *data;                /* caller's */
    ml_read_cb cb;             /* set by the read call */
    struct ml_entry **entries; /* on success: n entries, each referenced for the caller */
    int n;                     /* the caller unrefs each and frees the array with mg_free */
    /* private */
    int max_entries;
    size_t max_bytes;
    struct ml_cursor *cursor;
};
/* Read up to max_entries (and about max_bytes) from the read position forward, skipping
 * entries already acknowledged individually, and advance the read position past them.
 * If nothing is available the request waits until an append makes entries available
 * (a "waiting cursor"). One read may be outstanding per cursor (-MG_EBUSY otherwise). */
int ml_cursor_read(struct ml_cursor *c, int max_entries, size_t max_bytes, struct ml_read_req *req,
                   ml_read_cb cb);
/* Cancel a waiting read: its callback runs with -MG_ECANCELED. Returns 0 if one was
 * pending. */
int ml_cursor_cancel_read(struct ml_cursor *c);
/* Is there anything to read at the read position now? */
bool ml_cursor_has_more(const struct ml_cursor *c);

/* Read specific positions (replays of redelivered messages), in the given order, without
 * moving the read position. Positions that are acked or gone are left out of the result. */
int ml_cursor_replay(struct ml_cursor *c, const struct ml_position *positions, int n,
                     struct ml_read_req *req, ml_read_cb cb);

struct ml_position ml_cursor_read_position(const struct ml_cursor *c);
/* Move the read position to pos (not changing acks). */
void ml_cursor_seek_read(struct ml_cursor *c, struct ml_position pos);
/* Move the read position back to the first unacknowledged entry after mark-delete. */
void ml_cursor_rewind(struct ml_cursor *c);

/* Acknowledge one entry. ack_set (n_words 64-bit words, a set bit = still unacked, as in
 * Pulsar) acknowledges only some batch indexes: the stored set is ANDed with it and the
 * entry counts as acked when no bit is left; ack_set NULL acks the whole entry.
 * Acking an already-acked or out-of-range position is a no-op. Returns 1 if the entry
 * became fully acknowledged by this call, 0 otherwise. */
int ml_cursor_ack(struct ml_cursor *c, struct ml_position pos, const int64_t *ack_set, int n_words,
                  int32_t batch_size);
/* Acknowledge everything <= pos. */
void ml_cursor_ack_cumulative(struct ml_cursor *c, struct ml_position pos);
/* Is the entry fully acknowledged? */
bool ml_cursor_is_acked(const struct ml_cursor *c, struct ml_position pos);
/* The stored partial ack set of an entry, or NULL (none: no index acked yet). */
const int64_t *ml_cursor_ack_set(const struct ml_cursor *c, struct ml_position pos, int *n_words);

struct ml_position ml_cursor_mark_delete(const struct ml_cursor *c);
/* Reset: every entry before pos becomes acked, every entry from pos on unacked, and the
 * read position moves to pos (seek / reset cursor). */
void ml_cursor_reset(struct ml_cursor *c, struct ml_position pos);
/* Skip n unacked entries from the mark-delete position on (acking them). */
void ml_cursor_skip(struct ml_cursor *c, int64_t n);
/* Ack everything up to the last confirmed entry. */
void ml_cursor_clear_backlog(struct ml_cursor *c);

/* Mark-delete properties (Pulsar's markDelete(position, properties)): name -> value pairs a
 * durable cursor stores with its mark-delete position (ManagedCursorInfo.properties) and
 * gets back when its ML is opened again, e.g. the deduplication snapshot. */
struct ml_cursor_prop {
    const char *name;
    int64_t value;
};
/* Acknowledge everything <= pos (as ml_cursor_ack_cumulative) and replace the cursor's
 * properties by props[0..n) (copied); the state is persisted like any mark-delete move
 * (rate-limited), also when pos is not past the current mark-delete. */
void ml_cursor_mark_delete_props(struct ml_cursor *c, struct ml_position pos,
                                 const struct ml_cursor_prop *props, int n);
/* The cursor's properties (borrowed, valid until they change): their count, *out set. */
int ml_cursor_props(const struct ml_cursor *c, const struct ml_cursor_prop **out);

/* Unacknowledged entries after mark-delete up to the last confirmed one. */
int64_t ml_cursor_backlog(const struct ml_cursor *c);
/* Number of individually-acked ranges beyond mark-delete. */
int ml_cursor_num_ranges(const struct ml_cursor *c);
/* Guava-style text of the acked ranges, "[(3:1..3:4],(3:6..3:9]]"; caller frees. */
char *ml_cursor_ranges_string(const struct ml_cursor *c);

#endif
