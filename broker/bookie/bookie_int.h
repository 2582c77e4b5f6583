/*
 * bookie_int.h - struct bodies and internal interfaces of the bookie module. Only
 * the broker/bookie/ sources and tests/integration/check_bookie.c and check_bkc_real.c
 * (the in-process transport's tests) include this.
 *
 * Pieces and their threads:
 *   bk_server.c   loop thread: listener, connections, request semantics, replies (frames
 *                 decoded and encoded by wire/wire_bk.h), checkpoint and disk-check timers,
 *                 read-only mode.
 *   bk_journal.c  journal thread: group commit (write + fdatasync), file rolling; replay and
 *                 trimming run on the loop thread while the journal thread is not running
 *                 or on files it no longer touches.
 *   bk_store.c    loop thread: ledger state, the active write-cache half, log metadata;
 *                 storage thread: checkpoints (entry logs, LMDB index commits, lastMark,
 *                 journal trim), gc's index and file changes, compaction slices
 *                 (docs/bookie-threads.md).
 *   bk_gc.c       loop thread: gc's scan of the metadata store and its decisions.
 *   bk_reg.c      loop thread: /ledgers/available registration in the metadata store.
 *   bk_local.c    loop thread: the in-process transport (bkc's transport interface): the
 *                 standalone's ledger client calls the request semantics of bk_server.c.
 */
#ifndef MG_BOOKIE_INT_H
#define MG_BOOKIE_INT_H

#include "bookie/bookie.h"
#include "util/map.h"
#include "util/ratelimit.h"
#include "wire/wire_bk.h"

#include <lmdb.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/statvfs.h>

struct event;
struct bufferevent;
struct mg_listener;

#define BK_MODULE "bookie"
#define BK_MASTER_KEY_MAX 64 /* upstream keys are 20 bytes (SHA-1); refuse anything longer */

/* Reserved entry ids of journal meta-records (upstream's values). */
#define BK_META_LEDGER_KEY (-0x1000)
#define BK_META_FENCE_KEY (-0x2000)
#define BK_META_FORCE_LEDGER (-0x4000)
#define BK_META_EXPLICIT_LAC (-0x8000)

#define BK_LOCK_FILE "bookie.lock" /* in the journal and ledger directories */
#define BK_COOKIE_FILE "VERSION"   /* the cookie, in <dir>/current/ (BookKeeper's name) */
#define BK_JOURNAL_HEADER_SIZE 512 /* "BKLG", BE32 version, BE64 file id (v7+), zeros */
#define BK_JOURNAL_VERSION 8       /* written: groups with a body checksum, checksummed records */
#define BK_JOURNAL_VERSION_V7 7    /* read only: group headers without the body checksum */
#define BK_JOURNAL_F_REUSED                                                                        \
    1u                          /* header flags (BE32 at 16): an earlier file's groups may follow  \
                                   the last one (journalReuseFiles) */
#define BK_JOURNAL_VERSION_V6 6 /* read only: [BE32 len][body] records, no checksums */
#define BK_GROUP_MAGIC 0x424B4752u /* "BKGR" */
#define BK_GROUP_HEADER_SIZE                                                                       \
    28 /* magic, body length, records, body CRC32C (v8; 0 in v7), offset, CRC32C */
#define BK_RECORD_HEADER_SIZE 8       /* BE32 length, BE32 CRC32C */
#define BK_ENTRY_LOG_HEADER_SIZE 1024 /* "BKLO" + BE int version + zeros */
#define BK_DEFAULT_ENTRY_LOG_MAX (1LL << 30)
#define BK_LOG_WB_DEFAULT (1LL << 20) /* flushEntrylogBytes */
/* lastMark: two slots, each written in place in turn; the valid one with the higher sequence
 * is the mark (bk_store_write_mark). A slot: "BKLM", BE32 version 1, BE64 sequence, BE64
 * journal file id, BE64 offset, zeros, BE32 CRC32C of the bytes before it. Each slot in its
 * own 4 KiB block, so a torn write damages one slot only. */
#define BK_MARK_SLOT_SIZE 64
#define BK_MARK_SLOT_OFF(i) ((uint64_t)(i)*4096)
#define BK_MARK_FILE_SIZE (BK_MARK_SLOT_OFF(1) + BK_MARK_SLOT_SIZE)
#define BK_WRITE_CACHE_MAX (16u << 20) /* default of both write-cache halves together */
#define BK_CONN_MAX_INFLIGHT 10000     /* stop reading a connection with more adds in flight */
#define BK_MAX_LEDGER_DIRS 16          /* ledgerDirectories: at most this many (bit masks) */

/* Reasons for read-only mode (bits of bk_server.readonly). */
enum bk_ro_reason {
    BK_RO_DISK = 1 << 0,    /* disk usage above the threshold; clears when it drops */
    BK_RO_IOERR = 1 << 1,   /* a journal or storage write/fsync failed; until restart */
    BK_RO_NOSPACE = 1 << 2, /* a write ran out of space; clears below the low-water mark once
                               the pending writes succeed */
};

/* ---- ledger state and storage (bk_store.c) -------------------------------------------- */

struct bk_ledger {
    int64_t id;
    bool has_key;
    bool fenced;
    bool dirty;           /* changed since the last checkpoint */
    bool key_unjournaled; /* its LEDGER_KEY record failed: journal it with the next request */
    uint8_t key_len;
    uint8_t key[BK_MASTER_KEY_MAX];
    int64_t last_entry;    /* highest stored entry id, -1 if none */
    int64_t lac;           /* known LAC: max LAC field of stored entries / explicit LAC */
    uint8_t *explicit_lac; /* owned: last WRITE_LAC body, NULL if none */
    size_t explicit_lac_len;
};

/* An entry written since the last checkpoint: readable from memory until the index that
 * points at its entry-log copy is committed. */
struct bk_cached {
    int64_t ledger_id, entry_id;
    uint8_t *data; /* owned */
    size_t len;
    uint32_t log_id;
    uint64_t offset; /* of the body in the entry log */
};

/* An entry log: every one is known from the open (or its creation) until it is deleted. */
struct bk_log_file {
    uint32_t id;
    int fd;       /* owned; -1 until the first read opens it */
    unsigned dir; /* index in bk_store.ldirs */
};

/* Entry-log metadata (BookKeeper's EntryLogMetadata): record bytes in the log and, per
 * ledger, the bytes of its records the index or the write cache still points at. Rebuilt at
 * every open from the index and the files' sizes, kept up to date by adds, ledger GC and
 * compaction (README.md "Garbage collection"). */
struct bk_log_meta {
    uint32_t id;
    uint64_t total;        /* bytes of records ([BE32 len][body]) in the log */
    uint64_t live;         /* sum of ledgers' bytes */
    struct mg_map ledgers; /* u64 ledger -> owned uint64_t bytes */
};

struct bk_sop;
struct bk_server;
struct bk_store;
/* An operation for the storage thread: run there, then done on the loop thread, in the
 * order submitted (checkpoints, gc's ledger drops and log deletions, compaction slices). */
typedef int (*bk_sop_run_fn)(struct bk_store *st, struct bk_sop *op);
typedef void (*bk_sop_done_fn)(struct bk_server *s, struct bk_sop *op);
struct bk_sop {
    struct bk_sop *next;
    bk_sop_run_fn run;   /* storage thread */
    bk_sop_done_fn done; /* loop thread: takes the op (frees or keeps it) */
    bool gc;             /* parked by BK_GATE_GC (tests) */
    int rc;              /* run's result; -MG_ECANCELED when the thread stopped first */
};

/* A checkpoint handed to the storage thread: the write-cache half that was filled since the
 * previous one (frozen: neither thread changes it while the job is in flight; the loop still
 * reads entries from it), the records of the ledgers changed meanwhile, and the journal
 * position that everything applied before the swap reaches. */
struct bk_flush {
    struct bk_sop op;    /* first */
    struct mg_map cache; /* 16-byte key -> owned struct bk_cached; the storage thread fills in
                            each one's log_id and offset */
    size_t cache_bytes;
    struct mg_map recs;           /* u64 ledger -> owned encoded ledger record (bk_flush_rec) */
    uint64_t mark_file, mark_off; /* lastMark once it is durable */
    unsigned journal_keep;        /* journal files before mark_file to keep (journalMaxBackups) */
    bool appended;                /* storage thread: its entries are in the entry-log writer */
    uint32_t log_id;              /* storage thread: the current entry log at its end */
};

struct bk_flush_rec {
    size_t len;
    uint8_t b[]; /* bk_store_ledger_encode's bytes */
};

/* A gc operation on the storage thread: drop a ledger from the index, delete an entry log. */
struct bk_gc_op {
    struct bk_sop op; /* first */
    int64_t id;       /* ledger or entry log */
    uint64_t bytes;   /* entry log: its bytes of records, when it was queued */
    void *arg;        /* the caller's */
};

/* One copy a compaction slice made: where it went and whether the index points at it. */
struct bk_compact_copy {
    int64_t ledger;
    uint32_t len; /* body */
    uint32_t log;
    bool indexed;
};

/* Compaction of one entry log, one slice at a time on the storage thread (bk_store_compact_
 * slice): each slice copies up to max_entries / max_bytes of the entries the index points
 * into the log to the current log, syncs it and points the index at the copies (only where
 * it still points into the old log: a newer write wins); the last one deletes the old log. */
struct bk_compact {
    struct bk_sop op; /* first; op.done is the caller's */
    uint32_t log_id;
    int64_t *ledgers; /* owned: the log's ledgers when it started */
    size_t n_ledgers, i;
    int64_t next_entry; /* in ledgers[i] */
    size_t max_entries, max_bytes;
    int stop_step; /* test hook: 1 the last slice stops before its sync and index commit, 2
                      before the old log is deleted (as a crash there would) */
    struct bk_compact_copy *copies; /* owned: the last slice's */
    size_t n_copies, cap_copies;
    int64_t *dropped; /* owned, loop thread: ledgers dropped while it ran (their copies are
                         dead even when a slice in flight indexed them) */
    size_t n_dropped, cap_dropped;
    bool done;               /* every ledger of the log was gone through */
    bool deleted;            /* the old log is deleted */
    uint64_t entries, bytes; /* copied so far */
    void *arg;               /* the caller's */
};

/* A latency distribution the journal or storage thread adds to and a scrape reads (bk_metrics.c):
 * bucket i counts the successes below 2^i microseconds (the last one the rest). */
#define BK_LAT_BUCKETS 32
struct bk_lat {
    _Atomic uint64_t bucket[BK_LAT_BUCKETS];
    _Atomic uint64_t count, sum_us, failed;
};
void bk_lat_add(struct bk_lat *l, uint64_t ns, bool ok);
/* The upper bound (ms) of the bucket holding quantile q; 0 with no sample. */
double bk_lat_quantile_ms(struct bk_lat *l, double q);

/* Test hook: where the storage thread parks a checkpoint while bk_store.gate_at is set. */
enum bk_gate {
    BK_GATE_NONE = 0,
    BK_GATE_BEFORE_WRITE, /* before the entry-log write */
    BK_GATE_BEFORE_INDEX, /* entry log written and synced, index not committed */
    BK_GATE_BEFORE_MARK,  /* index committed, lastMark not moved */
    BK_GATE_GC,           /* before a gc operation (ledger drop, log deletion, compaction) */
};

/*
 * Ownership (docs/bookie-threads.md): the loop thread owns the ledger state, the active
 * write cache and the log metadata; the storage thread owns the entry-log writer (log_id,
 * log_fd, log_buf, log_off, log_flushed) and the LMDB write transactions of checkpoints;
 * `logs` (read descriptors) is shared under logs_lock. A bk_flush belongs to the storage
 * thread between bk_store_flush_begin and its completion; the loop only reads its cache.
 * While no checkpoint is in flight (bk_store_flush_wait) the loop may use everything.
 */
struct bk_store {
    char *ldirs[BK_MAX_LEDGER_DIRS]; /* owned: <ledgerDir>/current of each ledger directory */
    unsigned n_ldirs;
    char *dir;                       /* ldirs[0]: the index and lastMark stay there */
    _Atomic unsigned dir_full;       /* bits of ldirs above diskUsageThreshold (loop sets) */
    _Atomic unsigned dir_failed;     /* bits of ldirs where a log could not be created */
    unsigned next_dir;               /* storage thread: round-robin start for the next log */
    unsigned log_dir;                /* storage thread: the current log's directory */
    _Atomic int inject_create_errno; /* test hook: the next log creation fails with this */
    _Atomic int inject_sync_errno;   /* test hook: the next log fdatasync fails with this */
    _Atomic int inject_wb_errno;     /* test hook: the next write-behind fails with this */
    MDB_env *env;                    /* owned */
    MDB_dbi idx_dbi;       /* (BE ledger, BE entry) -> (BE32 log, BE64 offset, BE32 len) */
    MDB_dbi meta_dbi;      /* BE ledger -> ledger metadata record */
    struct mg_map ledgers; /* u64 id -> owned struct bk_ledger */
    struct mg_map cache;   /* active write cache: 16-byte key -> owned struct bk_cached */
    size_t cache_bytes;
    size_t cache_max;       /* one half of dbStorage_writeCacheMaxSizeMb: a checkpoint starts
                               beyond it, and an add waits while the other half is in flight */
    struct bk_flush *flush; /* owned: the checkpoint in flight, or one that failed and is
                               retried as it is by the next; NULL if none */
    bool flush_busy;        /* flush is on the storage thread */
    struct mg_map logs;     /* u64 log id -> owned struct bk_log_file (open for reads) */
    pthread_mutex_t logs_lock;
    struct mg_map log_meta; /* u64 log id -> owned struct bk_log_meta (loop thread) */
    uint32_t meta_log_id;   /* loop's view of the current log: its and later ids are not gc'd */
    /* entry-log writer: storage thread (the loop only before start and after stop) */
    uint32_t log_id;      /* current entry log */
    int log_fd;           /* borrowed from logs */
    uint64_t log_off;     /* size of the current log including log_buf */
    uint64_t log_flushed; /* bytes of it in the file: log_buf goes there */
    uint8_t *log_buf;     /* owned write buffer of the current log */
    size_t log_buf_len, log_buf_cap;
    int64_t log_max;
    /* entry-log write-behind (flushEntrylogBytes; storage thread): writeback of the log is
     * started every wb_bytes written (0: never before the fdatasync), and the chunk before
     * the one just started is waited for, so at most two chunks queue on the disk */
    int64_t wb_bytes;             /* set before bk_store_open (kept by it) */
    uint64_t wb_started;          /* writeback of the current log started below this offset */
    uint64_t wb_waited;           /* ... and finished below this one */
    uint64_t log_synced;          /* the current log is fdatasynced below this offset */
    _Atomic uint64_t wb_chunks;   /* statistics: writebacks started (any thread reads) */
    struct bk_lat lat_ckpt;       /* statistics: checkpoint operations, whole (storage thread) */
    struct bk_lat lat_log_sync;   /* ... the entry log's fdatasync in them */
    uint64_t mark_seq;            /* storage thread: sequence of the newest lastMark slot, 0 =
                                     not read yet (bk_store_write_mark) */
    uint64_t mark_file, mark_off; /* journal position of the last applied record (loop) */
    uint64_t durable_file, durable_off; /* the lastMark on disk (loop) */
    _Atomic bool io_failed;             /* entry log write failed: never checkpoint again */
    _Atomic bool nospace;               /* entry log write out of space: log_buf waits for room */
    _Atomic int inject_errno;           /* test hook: the next entry log write fails with this */
    struct mg_ratelimit rl_nospace, rl_ckpt; /* repeated failures: one line per interval */
    /* the storage thread */
    pthread_t thread;
    bool thread_started;
    pthread_mutex_t lock; /* guards what follows */
    pthread_cond_t cond;
    struct bk_sop *q_head, *q_tail; /* submitted, not yet taken */
    struct bk_sop *d_head, *d_tail; /* run, for the loop thread */
    bool stopping, abandon;
    struct bk_journal *journal; /* borrowed: trimmed behind each durable lastMark */
    unsigned journal_keep;      /* journalMaxBackups, 0 while short of disk space (loop) */
    int notify_fd;              /* owned eventfd: storage thread -> loop */
    struct event *notify_ev;    /* owned */
    enum bk_gate gate_at;       /* test hook: park the checkpoint there while set */
    bool gate_parked;           /* it is parked */
    /* statistics (loop thread) */
    uint64_t flush_waits; /* times adds waited for a checkpoint in flight (both halves full) */
    _Atomic uint64_t flush_waits_seen; /* the same, readable from any thread */
    int64_t *dropped; /* ledgers gc dropped while a checkpoint was in flight (owned) */
    size_t n_dropped, cap_dropped;
    size_t cache_peak;             /* most bytes in both halves at once */
    struct bk_compact *compacting; /* loop: the compaction begun and not finished, or NULL */
};

/* Open the index in ledger_dirs[0] and the entry logs of every directory (n_dirs of them,
 * 1..BK_MAX_LEDGER_DIRS); new logs go round-robin over the writable ones. */
int bk_store_open(struct bk_store *st, char *const *ledger_dirs, unsigned n_dirs, int64_t log_max);
/* The active write-cache half is past its size while the other one's checkpoint is in flight,
 * so the next add must wait for that checkpoint (loop thread). False once the entry log failed
 * or waits for room: the half then takes what was journalled until the disk check's retry. */
bool bk_store_cache_full(const struct bk_store *st);
/* Some ledger directory is neither full nor failed (any thread). */
bool bk_store_any_dir_writable(const struct bk_store *st);
/* skip_flush: drop unwritten entry-log data and uncommitted index (tests: unclean stop). */
void bk_store_close(struct bk_store *st, bool skip_flush);
/* The ledger's state, loaded from LMDB on first use; NULL if the bookie never heard of it
 * and create is false. */
struct bk_ledger *bk_store_ledger(struct bk_store *st, int64_t ledger_id, bool create);
/* Apply one journalled record (at request completion and during replay). data is owned by
 * the call for ADD (kept in the write cache) and borrowed otherwise. Returns 0 (entry-log
 * failures surface at the checkpoint that writes it). */
int bk_store_apply(struct bk_store *st, int64_t ledger_id, int64_t entry_id, uint8_t *data,
                   size_t len);
/* Find an entry. Returns WIRE_BK_EOK with *data (borrowed from the cache, or owned: *owned set,
 * free with mg_free), WIRE_BK_ENOLEDGER, WIRE_BK_ENOENTRY or WIRE_BK_EIO. entry_id -1 = the last
 * entry. */
int bk_store_read(struct bk_store *st, int64_t ledger_id, int64_t entry_id, uint8_t **data,
                  size_t *len, bool *owned);
/* Start the storage thread; its completions wake bk_server_store_done on base's loop. */
int bk_store_thread_start(struct bk_store *st, struct event_base *base, struct bk_server *srv);
/* Stop and join it: a checkpoint in flight is finished first, unless abandon (tests: a
 * crash), when it stops wherever it is. */
void bk_store_thread_stop(struct bk_store *st, bool abandon);
/* Begin a checkpoint on the storage thread (loop thread): the one that failed last is
 * retried as it is, else the active write cache is swapped out with the dirty ledger
 * records and the current mark. Without force nothing is begun when nothing changed since
 * the last durable checkpoint. Returns 1 (begun), 0 (nothing to do) or -MG_EBUSY (one is in
 * flight). */
int bk_store_flush_begin(struct bk_store *st, bool force);
/* Hand op to the storage thread (loop thread). Once the thread is stopped, op completes at
 * once with -MG_ECANCELED. */
void bk_store_submit(struct bk_store *st, struct bk_sop *op);
/* Block the loop thread until some operation has completed (there must be one in flight). */
void bk_store_wait_done(struct bk_store *st);
/* The completed operations, oldest first (loop thread); the caller runs their done. */
struct bk_sop *bk_store_take_done(struct bk_store *st);
/* Test hook: park checkpoints at the gate (BK_GATE_NONE releases them); parked reads it. */
void bk_store_gate(struct bk_store *st, enum bk_gate at);
bool bk_store_gate_parked(struct bk_store *st);
/* Storage thread: write the job's entries to the entry log, sync it, commit the index and
 * ledger records, persist lastMark (in this order). 0, -MG_EREADONLY (out of space) or
 * -MG_EIO; on failure nothing was lost: the journal is not trimmed. */
int bk_store_flush_run(struct bk_store *st, struct bk_flush *f);
/* Whether the n bytes at p are all zero (unwritten journal space, an unused lastMark slot). */
bool bk_all_zero(const uint8_t *p, size_t n);
/* Read the persisted lastMark (BK_MARK_*: the newest valid slot); 0 and zeros if none,
 * -MG_EIO if no slot is valid. */
int bk_store_read_mark(const struct bk_store *st, uint64_t *file, uint64_t *off);

/* ---- garbage collection and compaction (bk_store.c, loop thread) ---- */
/* qsort/bsearch order of int64_t ids, ascending. */
int bk_store_cmp_i64(const void *a, const void *b);
/* Every ledger this bookie holds (index, ledger records, memory), sorted; caller frees. */
int64_t *bk_store_ledger_ids(struct bk_store *st, size_t *n);
/* Drop a ledger: at once its cached entries, its state and its bytes in every log's
 * metadata; on the storage thread (after any checkpoint queued before) its index entries and
 * record in one durable LMDB commit. done gets a struct bk_gc_op (rc 0, or -MG_EIO /
 * -MG_EREADONLY: the index keeps it and the next run tries again) and frees it. */
void bk_store_drop_ledger(struct bk_store *st, int64_t ledger_id, bk_sop_done_fn done, void *arg);
/* Ids of the logs other than the current one, ascending; caller frees. */
int64_t *bk_store_log_ids(struct bk_store *st, size_t *n);
/* The log's metadata, NULL if unknown. */
const struct bk_log_meta *bk_store_log_meta(struct bk_store *st, uint32_t id);
/* Delete an entry log that is not the current one, on the storage thread (descriptor, file,
 * directory synced); done gets a struct bk_gc_op and frees it, after bk_store_log_forget on
 * success. */
void bk_store_delete_log(struct bk_store *st, uint32_t id, bk_sop_done_fn done, void *arg);
/* Drop a deleted log's metadata (loop thread). */
void bk_store_log_forget(struct bk_store *st, uint32_t id);
/* Start compacting log id: c is filled with its live ledgers (loop thread). */
void bk_store_compact_begin(struct bk_store *st, struct bk_compact *c, uint32_t id);
/* Run the next slice on the storage thread; c->op.done (set by the caller) gets it back,
 * calls bk_store_compact_apply, and decides on the next. */
void bk_store_compact_slice(struct bk_store *st, struct bk_compact *c);
/* Count the last slice's copies in the log metadata (loop thread; after a deletion the old
 * log's metadata goes too). */
void bk_store_compact_apply(struct bk_store *st, struct bk_compact *c);
void bk_store_compact_fini(struct bk_store *st, struct bk_compact *c);

/* ---- journal (bk_journal.c) ------------------------------------------------------------ */

enum bk_jtype {
    BK_J_ADD = 0, /* data = entry body */
    BK_J_KEY,     /* data = master key */
    BK_J_FENCE,
    BK_J_LAC, /* data = explicit LAC body */
    BK_J_FORCE,
};

/* What to answer once a journal request completes. */
enum bk_reply {
    BK_REPLY_NONE = 0,
    BK_REPLY_ADD,
    BK_REPLY_FENCE_READ,
    BK_REPLY_WRITE_LAC,
    BK_REPLY_FORCE,
};

struct bk_conn;

/* A record for the journal. Created and completed on the loop thread; between submit and
 * completion it belongs to the journal thread. */
struct bk_jreq {
    struct bk_jreq *next;
    enum bk_jtype type;
    int64_t ledger_id, entry_id;
    uint8_t *data; /* owned (see enum bk_jtype), NULL after bk_store_apply took it */
    size_t len;
    uint64_t enq_ns; /* when submitted (mg_mono_ns) */
    /* set by the journal thread */
    int status;     /* 0 or -MG_E* */
    uint64_t jfile; /* journal file and offset just past the record */
    uint64_t jend;
    /* reply context, loop thread */
    struct bk_lop *local; /* borrowed: a request of this process (bk_local.c), or NULL */
    struct bk_conn *conn; /* counted reference, NULL = no reply */
    enum bk_reply reply;
    int proto;       /* WIRE_BK_PROTO_V2 or _V3 */
    uint64_t txn_id; /* v3 */
    uint32_t v2_hdr; /* v2: request header (version and opcode echoed) */
    int op;          /* v3 operation echoed */
};

struct bk_stats {
    uint64_t records; /* journal records written */
    uint64_t adds;    /* of which entries */
    uint64_t groups;  /* group writes */
    uint64_t fsyncs;
    uint64_t bytes;
    uint64_t checkpoints;
    uint64_t replayed;
    uint64_t disk_checks;    /* periodic disk checks run */
    uint64_t prealloc_waits; /* group writes that waited for the journal's zero-fill */
    uint64_t journal_reused; /* journal files taken over from covered ones (journalReuseFiles) */
};

struct bk_server;

struct bk_journal {
    struct bk_server *srv; /* borrowed */
    char *dir;             /* owned */
    /* configuration, read-only once started */
    int max_group_wait_ms;
    size_t bytes_threshold;
    size_t entries_threshold; /* 0 = off */
    uint64_t max_size;
    uint64_t prealloc;              /* journalPreAllocSizeMB: zero-filled ahead of the writes */
    bool reuse;                     /* journalReuseFiles */
    unsigned max_backups;           /* journalMaxBackups */
    _Atomic uint64_t covered_below; /* files below this id are covered by the durable lastMark */
    bool sync;
    double threshold_pct; /* diskUsageThreshold in percent: preallocation stays under it */
    /* shared with the journal thread, under lock */
    pthread_mutex_t lock;
    pthread_cond_t cond;
    struct bk_jreq *q_head, *q_tail;       /* submitted, not yet taken */
    struct bk_jreq *done_head, *done_tail; /* completed, for the loop thread */
    bool stopping;
    bool held; /* test hook (bk_journal_hold): no group is taken while set, unless stopping */
    /* journal -> loop notification */
    int notify_fd;           /* owned eventfd */
    struct event *notify_ev; /* owned */
    pthread_t thread;
    bool started;
    /* journal thread only (the loop thread only before start/after join) */
    int fd; /* current file, owned */
    uint64_t file_id;
    uint64_t file_off;
    uint8_t *buf; /* owned group buffer */
    size_t buf_cap;
    bool failed;
    struct mg_ratelimit rl_error; /* journal thread's repeated failures */
    _Atomic int failed_errno;     /* errno of the failure, for the loop thread's log line */
    _Atomic int disk_check_due;   /* room is short: the loop thread checks the disks now */
    /* the preallocation thread zero-fills the current file ahead of the groups
     * (bk_journal_prealloc_main); shared with it under pa_lock */
    pthread_mutex_t pa_lock;
    pthread_cond_t pa_cond; /* work for the thread, progress for the journal thread */
    pthread_t pa_thread;
    bool pa_started, pa_stopping;
    bool pa_busy;       /* filling, without the lock: pa_fd and alloc_end stay as they are */
    int pa_fd;          /* the file being filled (the journal's current one), borrowed */
    uint64_t pa_target; /* fill up to here (lowered by the thread when room is short) */
    uint64_t alloc_end; /* the current file is zero-filled up to here, or written beyond it */
    int pa_errno;       /* a failed sync of the zeros: the journal stops (as a failed group) */
    /* statistics and test hooks, any thread */
    _Atomic uint64_t st_records, st_adds, st_groups, st_fsyncs, st_bytes;
    struct bk_lat lat_add;      /* an add's submission to its group's sync (JOURNAL_ADD_ENTRY) */
    struct bk_lat lat_sync;     /* a group's fdatasync (JOURNAL_SYNC) */
    struct bk_lat lat_prealloc; /* one zero-fill run of the preallocation thread */
    struct bk_lat lat_prealloc_wait; /* a group write's wait for the zero-fill (rare) */
    _Atomic uint64_t st_prealloc_waits;
    _Atomic uint64_t st_reused; /* files taken over (journalReuseFiles) */
    _Atomic int inject_errno;   /* the next group write fails with this errno */
};

/* Open (create) the directory and find the next file id; no file is created yet. */
int bk_journal_init(struct bk_journal *j, struct bk_server *srv, const struct bk_options *o);
/* Replay records from (mark_file, mark_off), calling bk_store_apply; then create the new
 * journal file and start the thread. Loop thread, before any request. */
int bk_journal_replay(struct bk_journal *j, struct bk_store *st, uint64_t mark_file,
                      uint64_t mark_off, uint64_t *replayed);
int bk_journal_start(struct bk_journal *j, struct event_base *base);
/* Hand a list of requests to the journal thread (one lock, one wake-up). */
void bk_journal_submit(struct bk_journal *j, struct bk_jreq *head, struct bk_jreq *tail);
/* Test hook: hold (on) or release the journal thread before it takes its next group. */
void bk_journal_hold(struct bk_journal *j, bool on);
/* Let the thread write and sync everything queued, then join it. Completed requests stay on
 * the done list for bk_journal_take_done. */
void bk_journal_stop(struct bk_journal *j);
struct bk_jreq *bk_journal_take_done(struct bk_journal *j);
/* Delete journal files wholly before mark_file but the newest keep of them (journalMaxBackups).
 * Any thread but the journal's (it never touches files before the current one). */
void bk_journal_trim(struct bk_journal *j, uint64_t mark_file, unsigned keep);
void bk_journal_fini(struct bk_journal *j);
/* An eventfd and its persistent read event on base (a worker thread's wake-up of the loop:
 * the journal's and the storage thread's). 0 or -MG_E* (logged). */
int bk_notify_open(struct event_base *base, void (*cb)(int, short, void *), void *arg, int *fd,
                   struct event **ev);
/* Free the event and close the eventfd; both reset. */
void bk_notify_close(int *fd, struct event **ev);
/* Called by the journal's notify event on the loop thread (defined in bk_server.c). */
void bk_server_journal_done(struct bk_server *s);

/* ---- garbage collection and compaction (bk_gc.c, loop thread) --------------------------- */

struct bk_gc_conf {
    int wait_ms;                 /* gcWaitTime; <= 0: no timer (runs only when forced) */
    double minor_threshold;      /* minorCompactionThreshold; <= 0 disables */
    int64_t minor_interval_s;    /* minorCompactionInterval */
    double major_threshold;      /* majorCompactionThreshold; <= 0 disables */
    int64_t major_interval_s;    /* majorCompactionInterval */
    int64_t rate_entries;        /* compactionRateByEntries, per second */
    int64_t rate_bytes;          /* compactionRateByBytes, per second */
    bool throttle_by_bytes;      /* isThrottleByBytes */
    bool force_gc_when_no_space; /* isForceGCAllowWhenNoSpace */
};

struct bk_gc_stats {
    uint64_t scans;         /* complete ledger scans */
    uint64_t scan_failures; /* runs (or re-checks) given up on a metadata error */
    uint64_t ledgers_deleted;
    uint64_t logs_deleted; /* entry logs with no live data */
    uint64_t logs_compacted;
    uint64_t entries_compacted;
    uint64_t bytes_reclaimed;
};

struct bk_gc;
struct bk_gc *bk_gc_new(struct bk_server *s, struct meta_store *meta, const struct bk_gc_conf *c);
/* Start a run now (-MG_EBUSY if one is running). force_compaction: compact even if no
 * interval has passed (major threshold first). */
int bk_gc_run(struct bk_gc *g, bool force_compaction);
/* No scan and no compaction in progress. */
bool bk_gc_idle(const struct bk_gc *g);
/* Test hooks: with pause_after_listing a run stops once it has listed the store (before it
 * computes and re-checks its candidates) until bk_gc_resume; bk_gc_listing_done says so. */
void bk_gc_pause_after_listing(struct bk_gc *g, bool on);
bool bk_gc_listing_done(const struct bk_gc *g);
void bk_gc_resume(struct bk_gc *g);
void bk_gc_stats(const struct bk_gc *g, struct bk_gc_stats *out);
/* The bookie turned read-only for disk space: with isForceGCAllowWhenNoSpace, run now. */
void bk_gc_space_short_entered(struct bk_gc *g);
/* Test hooks: the list_error_at-th listing call (1-based, 0 = none) fails with -MG_EIO;
 * compaction of a log stops before its final checkpoint (stop_step 1) or before deleting the
 * old log (2), as a crash there would. */
void bk_gc_inject(struct bk_gc *g, int list_error_at, int stop_step);
void bk_gc_free(struct bk_gc *g);

/* ---- registration (bk_reg.c) ------------------------------------------------------------ */

enum bk_reg_mode { BK_REG_NONE = 0, BK_REG_WRITABLE, BK_REG_READONLY };

struct bk_reg_op;
struct bk_reg {
    struct meta_store *meta;    /* borrowed, NULL = no registration */
    char *path[3];              /* owned: indexed by mode (path[NONE] is NULL) */
    enum bk_reg_mode current;   /* node we created (as far as we know) */
    bool busy;                  /* one operation in flight */
    bool stopped;               /* shutdown: remove the node */
    struct event *retry_ev;     /* owned */
    struct bk_reg_op *inflight; /* borrowed: the operation in flight; its server pointer is
                                   cleared when the server goes first */
};

void bk_reg_init(struct bk_server *s, struct meta_store *meta, const char *bookie_id);
/* Bring the store in line with the server's mode (writable/read-only/stopped). */
void bk_reg_update(struct bk_server *s);
/* The session of the store expired: our ephemeral node is gone, create it again. */
void bk_reg_session_expired(struct bk_server *s);
/* true when nothing is in flight and the node matches the desired mode. */
bool bk_reg_idle(const struct bk_server *s);
void bk_reg_fini(struct bk_server *s);
/* Whether the metadata store module is linked into this binary. */
bool bk_reg_meta_linked(void);

/* ---- directories (bk_cookie.c) --------------------------------------------------------- */

/* A bookie's directories as configured (README.md "Ledger directories"): the journal
 * directory, the ledger directories (ledgerDirectories, comma-separated), and all[]: the
 * journal's then each ledger directory that is not the journal's, one lock and one cookie
 * each. */
struct bk_dirs {
    char *journal;                    /* owned */
    char *ledger[BK_MAX_LEDGER_DIRS]; /* owned, blanks trimmed */
    unsigned n_ledger;
    unsigned n;                              /* of all[] */
    const char *all[BK_MAX_LEDGER_DIRS + 1]; /* borrowed from journal and ledger[] */
    const char *key[BK_MAX_LEDGER_DIRS + 1]; /* the configuration key naming each */
};
/* Parse journal_dirs (one directory) and ledger_dirs, creating the ledger directories (to
 * tell whether one is the journal's). 0 or -MG_EINVAL / -MG_E* (logged): an empty name, more
 * than one journal or BK_MAX_LEDGER_DIRS ledger directories, a directory listed twice. */
int bk_dirs_init(struct bk_dirs *d, const char *journal_dirs, const char *ledger_dirs);
void bk_dirs_fini(struct bk_dirs *d);
/* Lock each of all[] (bk_dir_lock) into fds[0..n-1]: 0, or the first error with none held. */
int bk_dirs_lock(const struct bk_dirs *d, int *fds);
/* Release what bk_dirs_lock took (fds reset to -1). */
void bk_dirs_unlock(const struct bk_dirs *d, int *fds);

/* ---- server (bk_server.c) --------------------------------------------------------------- */

struct bk_conn {
    struct bk_conn *prev, *next; /* in bk_server.conns while the socket is open */
    struct bk_server *srv;       /* borrowed */
    struct bufferevent *bev;     /* owned; NULL once closed */
    uint64_t id;
    int proto;         /* enum wire_bk_proto: fixed by the first frame */
    int refs;          /* 1 for the open socket + 1 per request in the journal */
    unsigned inflight; /* journal requests that will answer on this connection */
    bool closing;      /* close at the end of the current callback */
    bool paused;       /* reading disabled: too many adds in flight */
    bool sends_adds;   /* it sent an add: its reading stops while the write cache is full */
    bool cache_wait;   /* reading disabled until the write cache has room (bk_store_cache_full) */
    uint64_t skip;     /* bytes of a refused oversized frame still to drop as they arrive */
    int tls;           /* enum bk_tls_state */
    bool eua_logged;   /* a refusal for want of TLS was logged on this connection */
    char reason[128];  /* why it is being closed */
    char peer[64];
};

/* A connection's TLS (START_TLS: README.md "TLS"). */
enum bk_tls_state {
    BK_TLS_NONE = 0,    /* plain text */
    BK_TLS_STARTING,    /* START_TLS answered: the filter goes on at the end of this read */
    BK_TLS_HANDSHAKING, /* the TLS filter is on, the handshake runs (bounded in time) */
    BK_TLS_ON,          /* handshake done: the client is authenticated for BK_TLS_AUTH_FACTORY */
    BK_TLS_DENIED,      /* handshake done, but its certificate has no role of authorizedRoles */
};

struct bk_server {
    struct event_base *base;      /* borrowed */
    struct tls_link *tls;         /* owned; NULL = START_TLS refused */
    char *authorized_roles;       /* owned: authorizedRoles, or NULL (any role) */
    bool tls_required;            /* bookieAuthProviderFactoryClass=BK_TLS_AUTH_FACTORY */
    struct mg_listener *listener; /* owned, NULL after shutdown */
    int port;
    char *bookie_id;                     /* owned */
    char *ledger_dir;                    /* owned: ledgerDirectories as configured (messages) */
    const char *journal_dir;             /* dirs.journal */
    struct bk_dirs dirs;                 /* owned */
    int lock_fd[BK_MAX_LEDGER_DIRS + 1]; /* owned flock fds of dirs.all[], or -1 */
    int max_frame;
    double disk_threshold_pct; /* diskUsageThreshold, percent */
    double disk_lwm_pct;       /* diskUsageLwmThreshold, percent (<= the threshold) */
    double disk_warn_pct;      /* diskUsageWarnThreshold, percent (<= the threshold) */
    unsigned disk_warned;      /* bits of dirs.ledger[] (BK_MAX_LEDGER_DIRS: the journal's)
                                  above the warn threshold, as last logged */
    /* statvfs, or a test's fake (a seam for the disk-threshold tests) */
    int (*statvfs_fn)(const char *path, struct statvfs *sv);
    struct bk_store store;
    struct bk_journal journal;
    struct bk_reg reg;
    struct bk_conn *conns; /* open connections */
    uint64_t next_conn_id;
    struct bk_jreq *pend_head, *pend_tail; /* built this pass, submitted at its end */
    /* journalled records not yet applied, in journal order: an add waits there, with every
     * record behind it, while bk_store_cache_full (docs/bookie-threads.md "Backpressure") */
    struct bk_jreq *wait_head, *wait_tail;
    size_t n_waiting, wait_peak; /* records there now; most during the current wait */
    uint64_t wait_since_ns;      /* when the current wait began (mg_mono_ns), 0 = none */
    bool applying;               /* bk_server_apply runs (it is not re-entered) */
    bool apply_all;              /* stopping: apply everything, the cache bound lifted */
    bool conns_cache_paused;     /* some connection has cache_wait set */
    /* the journal group of the last applied record: lastMark may only move past a group
     * once all of its records are applied (they may straddle a checkpoint) */
    uint64_t grp_file, grp_end;
    bool grp_open;
    struct event *checkpoint_ev; /* owned, periodic */
    struct event *disk_ev;       /* owned, periodic */
    struct bk_gc *gc;            /* owned */
    unsigned readonly;           /* enum bk_ro_reason bits */
    bool shutting_down;
    bool ready; /* storage open: accepted connections are served (else closed at once) */
    bool exit_when_unregistered;
    bool unclean; /* test hook: bk_server_free skips the final checkpoint and flushes */
    uint64_t checkpoints, replayed, disk_checks;
    int flush_rc;                      /* result of the last checkpoint */
    int journal_max_backups;           /* journalMaxBackups */
    struct mg_ratelimit rl_frame;      /* oversized frames */
    struct mg_ratelimit rl_cache_full; /* waits of adds for a checkpoint */
    /* in-process clients (bk_local.c) */
    struct bk_lconn *lconns; /* their connections to this bookie */
    struct bk_local *local;  /* borrowed: the registry listing this bookie, or NULL */
    struct event *submit_ev; /* owned: submits their records at the end of the loop pass */
};

/* ---- request semantics shared by connections and in-process clients (bk_server.c) ------ */

/* Admission of an add (read-only, ids, master key: a new one queues a LEDGER_KEY record,
 * fencing); returns WIRE_BK_EOK (queue it with bk_add_queue) or the refusal. */
int bk_add_admit(struct bk_server *s, int64_t ledger, int64_t entry, const uint8_t *key,
                 size_t klen, bool recovery, bool high_prio);
/* Queue an admitted add's journal record (body taken); the caller sets its reply context. */
struct bk_jreq *bk_add_queue(struct bk_server *s, int64_t ledger, int64_t entry, uint8_t *body,
                             size_t len);
/* A fencing read of entry: the ledger is fenced at once (later adds get EFENCED) and a FENCE
 * record queued (reply BK_REPLY_FENCE_READ, entry_id = entry: the read answered once it is
 * durable); NULL with *st the refusal (EUA without or with another key, EIO after an I/O
 * error). */
struct bk_jreq *bk_fence_begin(struct bk_server *s, int64_t ledger, int64_t entry,
                               const uint8_t *key, size_t klen, bool has_key, int *st);
/* Hand the records queued this pass to the journal thread. */
void bk_server_submit_pending(struct bk_server *s);

/* ---- in-process clients (bk_local.c) ----------------------------------------------------- */

struct bk_lop;
/* A journal record of an in-process request completed with st (a wire_bk_status): answer it
 * (a fencing read reads entry now). */
void bk_local_answer(struct bk_server *s, struct bk_lop *op, enum bk_reply reply, int st,
                     int64_t ledger, int64_t entry);
/* s is being freed (its journal drained and answered): its in-process connections fail later
 * requests with -MG_EIO, as a refused connection. */
void bk_local_server_gone(struct bk_server *s);

/* Enter (set) or leave (clear) a read-only reason; logs and updates the registration. */
void bk_server_set_readonly(struct bk_server *s, unsigned reason, bool on, const char *why);
/* The periodic disk check (also callable by tests): read-only above diskUsageThreshold,
 * writable again below diskUsageLwmThreshold once pending writes succeed. */
void bk_server_check_disk(struct bk_server *s);
/* Checkpoint now and wait (start, shutdown, disk check, tests): afterwards everything applied
 * so far is durable. Returns 0 or -MG_E*. */
int bk_server_checkpoint(struct bk_server *s);
/* Begin a checkpoint when the active write-cache half holds more than store.cache_max bytes
 * and none is in flight (never waits: while one is, adds wait in the server's queue, see
 * bk_store_cache_full). Not while the entry log failed or waits for room: the disk check
 * retries those. Called before each add is applied and after each batch of completions. */
void bk_server_checkpoint_if_full(struct bk_server *s);
/* Begin a checkpoint on the storage thread without waiting (the flushInterval timer; tests). */
void bk_server_checkpoint_start(struct bk_server *s);
/* Called by the storage thread's notify event on the loop thread: runs the done of every
 * completed operation. */
void bk_server_store_done(struct bk_server *s);
/* A checkpoint completed with rc (bk_store.c's done of a checkpoint, after its own part). */
void bk_server_flushed(struct bk_server *s, int rc);
void bk_server_stats(const struct bk_server *s, struct bk_stats *out);
/* Test hooks: the next journal group write, or entry-log write, fails with err (an errno). */
void bk_server_inject_journal_error(struct bk_server *s, int err);
/* Test hook: free as after a crash: no final checkpoint, unflushed entry-log data dropped
 * (the journal is still written and synced: what was acknowledged is in it). */
void bk_server_free_unclean(struct bk_server *s);
/* Called by bk_reg when the registration reached its target (shutdown completes). */
void bk_server_reg_idle(struct bk_server *s);

/* Create dir if needed and take an exclusive flock on dir/bookie.lock, recording our pid in
 * it, so that a second bookie cannot use the directory while this one runs (the lock goes
 * with the process). key names the configuration key in messages. Returns the lock's fd
 * (owned: closing it releases the lock), -MG_EBUSY when another process holds it (logged with
 * the holder's pid when known) or another -MG_E*. */
int bk_dir_lock(const char *dir, const char *key);

/* ---- cookies (bk_cookie.c) -------------------------------------------------------------- */

/* A bookie's cookie, as BookKeeper's Cookie/CookieFormat: the strings as stored. */
struct bk_cookie {
    int layout;         /* layout version read (5 written) */
    char *bookie_host;  /* bookie id */
    char *journal_dirs; /* journal directories joined by ',' */
    char *ledger_dirs;  /* "<count>\t<dir>[\t<dir>...]" */
    char *instance_id;  /* /ledgers/INSTANCEID; NULL: none (no metadata store) */
};
/* The cookie's text: "5\n" then protobuf text format, one field a line. Caller frees. */
char *bk_cookie_text(const struct bk_cookie *c);
/* Parse a cookie's text (layout 3, or >= 4: text format; unknown fields are ignored).
 * 0, or -MG_EPROTO (nothing allocated). */
int bk_cookie_parse(const char *text, size_t len, struct bk_cookie *c);
void bk_cookie_fini(struct bk_cookie *c);
/* The port of the bookie id in the directories' cookies, 0 if none (bookiePort=0 takes it
 * again, since the bookie id names the port). */
int bk_cookie_port_hint(const struct bk_dirs *dirs);
/* The start check (see bk_cookie.c and README.md "Cookie"): 0 when the directories and the
 * store (meta, may be NULL) hold this bookie's cookies, or after writing them for a new
 * bookie; -MG_ENOTALLOWED (refused, reason logged) or the store's error. Runs base's loop
 * while it waits for the store. */
int bk_cookie_check(struct event_base *base, struct meta_store *meta, const char *bookie_id,
                    const struct bk_dirs *dirs, const char *ledger_list);

#endif
