/*
 * ml_int.h - the managed ledger's struct bodies and its storage interface.
 *
 * Only the ml sources and tests/unit/check_ml*.c include this header.
 *
 * Layers:
 *   core (ml.c, ml_cursor.c): ledger list, positions, appends, tail cache, cursors,
 *       waiting reads, trimming, the open chain (load, recovery of the last ledger). Talks to
 *       storage only through struct ml_ledger_ops and struct ml_meta_ops.
 *   ledgers (ml_store_mem.c, ml_store_bk.c): ledgers of entries.
 *   metadata (ml_store_meta.c): the ML's ledger list and cursor state in the meta store.
 *
 * Deferred work: everything that must run "after the call has returned" goes through the
 * factory's task queue (ml_defer), drained by one timer of the factory's loop.
 * ml_factory_free drains it with status -MG_ECANCELED, so no task outlives the factory.
 */
#ifndef MG_ML_INT_H
#define MG_ML_INT_H

#include "ml/ml.h"
#include "util/loop.h"
#include "util/map.h"

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/queue.h>

/* ---- deferred tasks ----------------------------------------------------------------- */

/* status is 0 when the task runs from the loop, -MG_ECANCELED when ml_factory_free
 * flushes the queue. */
typedef void (*ml_task_fn)(void *arg, int status);

struct ml_task {
    ml_task_fn fn;
    void *arg; /* borrowed */
    bool queued;
    TAILQ_ENTRY(ml_task) link;
};
TAILQ_HEAD(ml_task_list, ml_task);

/* Queue t to run fn(arg, 0) on a later loop pass (FIFO). t must not be queued already. */
void ml_defer(struct ml_factory *f, struct ml_task *t, ml_task_fn fn, void *arg);
/* Unqueue t if queued (its fn will not run). */
void ml_task_cancel(struct ml_factory *f, struct ml_task *t);
/* Like ml_defer with a task allocated (and freed) by the queue. */
void ml_defer_call(struct ml_factory *f, ml_task_fn fn, void *arg);

/* ---- storage interface -------------------------------------------------------------- */

/* Storage is two interfaces, picked together by a store name from one table in ml.c:
 *   ledgers  (struct ml_ledger_ops)  where entries live: "memory" (ml_store_mem.c) or
 *            "bookkeeper" (ml_store_bk.c, bkc ledgers);
 *   metadata (struct ml_meta_ops)    the ML's ledger list and its durable cursors' state:
 *            none (memory: nothing survives the ML) or the meta store (ml_store_meta.c).
 * So the ledger and cursor recovery of the durable store runs in unit tests on the memory
 * meta store and the fake bookies (bkc_fake.c), with no socket. */

struct ml_store_req;
typedef void (*ml_store_cb)(struct ml_store_req *req, int status);

/* One asynchronous storage request, owned by the core. The store calls cb exactly once,
 * after the op returned 0 (never from inside the op); when the op returns <0, cb never
 * runs. At ml_factory_free the store completes whatever is outstanding with
 * -MG_ECANCELED before its fini. */
struct ml_store_req {
    void *data;                /* the core's */
    ml_store_cb cb;            /* the core's completion */
    int64_t ledger_id;         /* in: add/read/close/delete/recover; out: create_ledger */
    int64_t first;             /* read_range: first entry id */
    int64_t last;              /* read_range: last entry id (inclusive); out: recover_ledger's
                                  last entry (-1: empty) */
    int64_t length;            /* out: recover_ledger's bytes up to its last entry */
    struct ml_entry *entry;    /* add_entry: borrowed; the store takes its own reference if
                                  it keeps the entry */
    struct ml_entry **entries; /* read_range out on success: n entries (those of
                                  [first, last] that exist, ascending), each referenced;
                                  array mg_malloc'd; both handed to the core */
    int n;
    const char *errmsg; /* out, may be NULL: why it failed; borrowed during cb */
    /* private to the store */
    int status;
    struct ml_task task;
    struct ml_store_req *next_;
};

/* For a store: complete req with status from the task queue (its op returned 0), through
 * req->task. When the queue is flushed instead (the factory is going), req completes with
 * that status and a read's entries are released rather than handed over. */
void ml_store_complete_later(struct ml_factory *f, struct ml_store_req *req, int status);
/* For a store: complete a list of requests (linked by next_, oldest first) with status, now. */
void ml_store_complete_all(struct ml_store_req *list, int status);

/* Where entries live (docs/style.md §2): a const table.
 * Required: init, fini, create_ledger, add_entry, read_range, delete_ledger.
 * Optional (NULL = nothing to do): close_ledger, recover_ledger, free_ml, pending.
 * Every op gets the ML it works for (borrowed; alive until the op's cb ran, as the core
 * holds it while a request is out; fire-and-forget ops (req NULL) must not keep it). */
struct ml_ledger_ops {
    const char *name;
    int (*init)(struct ml_factory *f, void **impl);
    void (*fini)(void *impl);
    /* New ledger; req->ledger_id set before cb. */
    int (*create_ledger)(void *impl, struct ml_ledger *ml, struct ml_store_req *req);
    /* Store req->entry as entry req->entry->pos.entry of ledger req->ledger_id: the core
     * decides the id (the position), the store writes exactly that entry or refuses (a
     * mismatch is a bug of ours: -MG_EINVAL, nothing stored). Entries of a ledger arrive in
     * order; completions come back in the same order. -MG_ETOOBIG (sync): the entry can
     * never be stored (over the store's frame limit); nothing was sent, the ledger is
     * unaffected and the next entry takes the same id. Other sync errors: nothing more may go
     * to this ledger. */
    int (*add_entry)(void *impl, struct ml_ledger *ml, struct ml_store_req *req);
    /* Read [first, last] of ledger_id. At cb: -MG_ENOTFOUND if the ledger is gone (deleted,
     * or lost if it is still in the list); -MG_ENONRECOVERABLE if the ledger exists but an
     * entry of the range can never be read (no replica has it, every copy is corrupt). */
    int (*read_range)(void *impl, struct ml_ledger *ml, struct ml_store_req *req);
    /* Seal a ledger (no more adds) once its adds completed; completes with 0 when it is
     * sealed already. -MG_EFENCED: someone else recovered it. req NULL: fire and forget. */
    int (*close_ledger)(void *impl, struct ml_ledger *ml, int64_t ledger_id,
                        struct ml_store_req *req);
    /* Drop a ledger and its entries. req NULL: fire and forget. */
    int (*delete_ledger)(void *impl, struct ml_ledger *ml, int64_t ledger_id,
                         struct ml_store_req *req);
    /* At load, the ML's last ledger (req->ledger_id) may still be open (a previous owner, a
     * crash): seal it where it really ends, so that its previous writer can add nothing more
     * (BookKeeper: recovery with fencing), and give its last entry (req->last) and length.
     * Errors at cb: -MG_ENOTFOUND (the ledger does not exist), -MG_EPROTO (its metadata is
     * corrupt), -MG_ECHECKSUM (every copy of an entry is corrupt): it can never be read;
     * others (-MG_EIO: bookies unreachable...) are transient. NULL: the ledger list is the
     * truth (memory). */
    int (*recover_ledger)(void *impl, struct ml_ledger *ml, struct ml_store_req *req);
    /* The ML struct is being freed: drop ml->ledger_priv (requests in flight may go on). */
    void (*free_ml)(void *impl, struct ml_ledger *ml);
    /* Operations still in flight (ledger closes). */
    int (*pending)(void *impl);
};

/* The ML's metadata (docs/style.md §2): a const table; required: init, fini and every op but
 * free_ml and pending. The store reads what it persists from the struct bodies below
 * (ml->ledgers, cursor mark-delete, ml_cursor_foreach_range, c->batch) and restores with
 * ml_restore_ledger / ml_restore_cursor / ml_cursor_restore_*. Without metadata ops (memory)
 * the core cannot find an ML again after it closed, so it deletes an ML's ledgers when its
 * last reference closes. */
struct ml_meta_ops {
    const char *name;
    int (*init)(struct ml_factory *f, void **impl);
    void (*fini)(void *impl);
    /* On open, first: fill the ML's ledger list from storage (entries and size of the last
     * ledger as last stored; the core recovers it next). Completes with 0 also when nothing
     * was stored. May set ml->meta_priv (freed by free_ml). */
    int (*load_ml)(void *impl, struct ml_ledger *ml, struct ml_store_req *req);
    /* On open, once the last ledger is recovered: restore the durable cursors. */
    int (*load_cursors)(void *impl, struct ml_ledger *ml, struct ml_store_req *req);
    /* Persist the ledger list (open, rollover, trim); cb once a write that covers the
     * state at the time of the call is stored. -MG_EFENCED: someone else changed it (the
     * ML is fenced). req is never NULL. */
    int (*save_ml)(void *impl, struct ml_ledger *ml, struct ml_store_req *req);
    /* A durable cursor's mark-delete or ranges changed (now false: the store rate-limits,
     * Pulsar's managedLedgerDefaultMarkDeleteRateLimit), or it was created or closed (now
     * true: write at once). The store snapshots what it writes during the call. */
    int (*save_cursor)(void *impl, struct ml_ledger *ml, struct ml_cursor *c, bool now,
                       struct ml_store_req *req);
    int (*remove_cursor)(void *impl, struct ml_ledger *ml, const char *cursor,
                         struct ml_store_req *req);
    /* ml_delete: the ML's metadata (its cursors and ledger list); the core deletes the
     * ledgers after this completed. */
    int (*remove_ml)(void *impl, struct ml_ledger *ml, struct ml_store_req *req);
    /* The ML struct is being freed: drop ml->meta_priv (in-flight writes may go on). */
    void (*free_ml)(void *impl, struct ml_ledger *ml);
    /* Writes still in flight. */
    int (*pending)(void *impl);
};

extern const struct ml_ledger_ops ml_ledgers_memory;
extern const struct ml_ledger_ops ml_ledgers_bookkeeper;
extern const struct ml_meta_ops ml_meta_store;

/* The metadata store's failed cursor writes (tests, diagnostics). */
struct ml_meta_cursor_stats {
    int64_t write_failures; /* cursor writes that failed (each is retried with backoff) */
    int64_t log_lines;      /* lines logged about them (one per 10 s at most, + recovery) */
};
void ml_meta_cursor_stats(struct ml_factory *f, struct ml_meta_cursor_stats *out);

/* ---- factory ------------------------------------------------------------------------ */

TAILQ_HEAD(ml_ledger_list, ml_ledger);

struct ml_factory {
    struct mg_loop *loop; /* borrowed */
    struct ml_config cfg;
    const char *store;                /* the store's name */
    const struct ml_ledger_ops *lops; /* borrowed: static table */
    void *limpl;                      /* owned by the ledger store (lops->fini) */
    const struct ml_meta_ops *mops;   /* borrowed: static table; NULL = no metadata */
    void *mimpl;                      /* owned by the metadata store (mops->fini) */
    struct mg_map by_name;            /* name -> borrowed ml_ledger *, open MLs */
    struct ml_ledger_list all;        /* every ML struct still allocated (incl. closing) */
    struct ml_task_list tasks;        /* deferred work, FIFO */
    int n_tasks;
    bool running_tasks;           /* inside the task timer: re-arm once at its end */
    struct mg_timer task_tmr;     /* runs the task queue */
    struct mg_timer check_tmr;    /* every retention_check_interval_ms: trim and roll checks */
    struct ml_ledger *check_next; /* held: where the check's pass goes on (NULL: none) */
    size_t cache_bytes;           /* sum of all MLs' tail caches (charged bytes) */
    struct mg_timer evict_tmr;    /* cache eviction; pending while anything is cached, and
                                     once more for the quiet spell after the last put */
    uint64_t cache_put_ms;        /* loop's monotonic clock of the last cache put */
    bool evict_quiet_wait;        /* evict_tmr only waits for that quiet spell */
    bool closing;
};

/* ---- managed ledger ----------------------------------------------------------------- */

/* MLs checked (trim, roll by age) per firing of the factory's check timer. */
#define ML_CHECK_SLICE 64

struct ml_ledger_info {
    int64_t id;
    int64_t entries;           /* confirmed (append completed) */
    int64_t size;              /* confirmed bytes */
    int64_t next_entry;        /* assigned: next entry id to hand out */
    int64_t assigned_size;     /* bytes assigned (rollover trigger) */
    uint64_t min_publish_time; /* of the confirmed entries */
    uint64_t max_publish_time;
    bool publish_known;  /* min/max_publish_time are valid (false after a restore, until a
                            time search reads the whole closed ledger) */
    int64_t timestamp;   /* ms: when the ledger was closed (0 = open / unknown) */
    uint64_t created_ms; /* monotonic ms: when it joined the list (rollover age) */
};

enum ml_state { ML_OPENING = 0, ML_READY, ML_CLOSED };

/* Rollover (also after a failed add): wait for the in-flight adds, close the ledger,
 * create the next one, persist the list, then send the queued appends. */
enum ml_roll_phase { ML_ROLL_NONE = 0, ML_ROLL_DRAIN, ML_ROLL_CLOSE, ML_ROLL_CREATE, ML_ROLL_SAVE };

struct ml_add_op {
    struct ml_ledger *ml;      /* borrowed; held (ml_hold) while the store has sreq */
    struct ml_append_req *req; /* borrowed: the caller's; NULL once canceled */
    struct ml_entry *entry;    /* owned reference */
    bool done;
    int status;
    bool orphan; /* the ML closed: the store completion only frees the op */
    struct ml_store_req sreq;
    TAILQ_ENTRY(ml_add_op) link;
};
TAILQ_HEAD(ml_add_list, ml_add_op);

struct ml_open_waiter {
    ml_open_cb cb;
    void *data; /* caller's */
    struct ml_open_waiter *next;
};

/* A caller of ml_terminate waiting for the terminated position to be stored. */
struct ml_term_waiter {
    ml_terminate_cb cb;
    void *data; /* caller's */
    struct ml_term_waiter *next;
};

/* Tail cache: the most recently appended entries, in position order (so also in the
 * order they were cached). Each slot owns a compact copy of the entry (ml.c "tail cache"). */
/* What a cached entry costs the heap besides its bytes' storage (ml.c ml_cache_charge):
 * the entry, its evbuffer and the allocator's headers; an estimate on the high side
 * (tests/unit/check_ml_bk.c measures the real footprint against the charge). */
#define ML_CACHE_ENTRY_OVERHEAD 384
struct ml_cache_slot {
    struct ml_entry *e; /* owned reference */
    uint64_t at_ms;     /* loop's monotonic clock when it was cached */
};
struct ml_cache {
    struct ml_cache_slot *ring; /* owned */
    size_t head, len, cap;
    size_t bytes; /* charged: ml_cache_charge of each entry */
};

TAILQ_HEAD(ml_read_list, ml_read_op);

struct ml_ledger {
    struct ml_factory *f; /* borrowed */
    char *name;           /* owned */
    int refs;             /* ml_open handles */
    int holds;            /* internal: 1 while not closed + 1 per in-flight store req */
    enum ml_state state;
    bool deleted;
    bool rolling; /* rolling over (roll_phase); appends wait in `unsent` */
    enum ml_roll_phase roll_phase;
    /* A failed roll (no bookies, metadata store full) is not tried again before
     * roll_retry_at (monotonic ms; the delay doubles per failure up to ML_ROLL_BACKOFF_MAX_MS):
     * appends meanwhile fail at once with roll_error, so a producer's retries do not become
     * a ledger create (and its log lines) each. */
    int64_t roll_retry_at;
    int roll_backoff_ms;
    int roll_error;
    int64_t roll_attempts; /* rollovers started (tests) */
    bool fenced;           /* another owner took the ML: appends fail with -MG_EFENCED */
    /* Terminate (ml_terminate): appends are refused from the call on; once the appends in
     * flight completed, term_pos is the last confirmed entry (term_known) and is written
     * with the ledger list (ManagedLedgerInfo.terminatedPosition; term_saved once stored). */
    bool terminated, term_known, term_saved, term_saving;
    struct ml_position term_pos;
    struct ml_term_waiter *term_waiters; /* owned list */
    bool broken;       /* the current ledger failed an add: roll before the next send */
    int fail_sent;     /* != 0: complete every in-flight add with this (after a failure) */
    void *ledger_priv; /* owned by the ledger store (free_ml) */
    void *meta_priv;   /* owned by the metadata store (free_ml) */
    int64_t *doomed;   /* owned: ledgers off the list, deleted after the next saved list */
    uint64_t *doomed_seq;
    int n_doomed, cap_doomed;
    uint64_t save_seq; /* bumped per list change that dooms ledgers */
    bool trimming;     /* a trim's list write is in flight */
    bool trim_again;
    struct ml_ledger_info *ledgers; /* owned array, ascending ids; last = current */
    int n_ledgers, cap_ledgers;
    struct ml_position lac;    /* last confirmed */
    struct ml_add_list sent;   /* in the store, in order */
    struct ml_add_list unsent; /* waiting for a ledger */
    int n_pending;
    struct ml_open_waiter *open_waiters; /* owned list */
    struct ml_cursor **cursors;          /* owned array of owned cursors */
    int n_cursors, cap_cursors;
    struct ml_read_list waiters; /* read ops waiting for appends (borrowed) */
    struct ml_cache cache;
    int64_t entries_added;
    int64_t *lost; /* owned: ledgers whose unreadable data was reported (one log each) */
    int n_lost, cap_lost;
    bool retention_set; /* ml_set_retention: these override the factory's */
    int64_t retention_time_minutes, retention_size_mb;
    struct ml_store_req open_req; /* open chain: load_ml, recover_ledger, load_cursors,
                                     create_ledger */
    struct ml_store_req roll_req; /* rollover: close, create, save in turn */
    struct ml_task drain_task;    /* completes appends that failed synchronously */
    TAILQ_ENTRY(ml_ledger) link;  /* factory->all */
};

void ml_hold(struct ml_ledger *ml);
void ml_release(struct ml_ledger *ml);
/* Whether a public call on ml may go on: -MG_EINVAL when ml is NULL or !args_ok (the call's
 * other arguments), -MG_ECLOSED when ml is not open or is deleted, else 0. */
int ml_usable(const struct ml_ledger *ml, bool args_ok);

struct ml_ledger_info *ml_find_ledger(const struct ml_ledger *ml, int64_t id);
/* Binary search: the first of the n elements of base (size bytes each, ascending by the
 * int64_t at byte key_off) whose key is >= key; n when there is none. */
int ml_lower_bound(const void *base, int n, size_t size, size_t key_off, int64_t key);
/* Read entries [first, last] of ledger from ml's store into req (made afresh), completing
 * in cb with req->data = data. Returns the store's answer (< 0: nothing started, cb never
 * runs). */
int ml_read_range(struct ml_ledger *ml, struct ml_store_req *req, int64_t ledger, int64_t first,
                  int64_t last, ml_store_cb cb, void *data);
/* pos itself if it is an existing (or the current ledger's) position, else the first
 * position after it that is. Positions beyond the current ledger stay as they are. */
struct ml_position ml_normalize(const struct ml_ledger *ml, struct ml_position pos);
/* Entry in the tail cache (referenced for the caller) or NULL. */
struct ml_entry *ml_cache_get(struct ml_ledger *ml, struct ml_position pos);
/* Trim ledgers consumed by every durable cursor. c: the durable cursor whose M moved
 * (a cheap pre-check), or NULL. */
void ml_maybe_trim(struct ml_ledger *ml, const struct ml_cursor *c);
/* Store hooks (no-ops when the store has none). now: write without rate limit. */
void ml_persist_cursor(struct ml_cursor *c, bool now);
/* The store found that another owner took the ML (a metadata CAS lost): fail every
 * pending and later append with -MG_EFENCED, stop persisting. */
void ml_fence(struct ml_ledger *ml);
/* Entries first..last of a ledger in the list (first < 0: all of them) can never be read
 * back. autoSkipNonRecoverableData: they are acknowledged for every cursor and 0 is
 * returned; otherwise -MG_ENONRECOVERABLE. Logs once per ledger. */
int ml_data_lost(struct ml_ledger *ml, int64_t ledger, int64_t first, int64_t last);
/* Restore hooks for a store's load_ml. */
void ml_restore_ledger(struct ml_ledger *ml, int64_t id, int64_t entries, int64_t size);
struct ml_cursor *ml_restore_cursor(struct ml_ledger *ml, const char *name,
                                    struct ml_position mark_delete);
/* A restored cursor's individually acked range (lower, upper] (may span ledgers; entries
 * of ledgers not in the list are ignored) and partial batch ack set (set bit = unacked). */
void ml_cursor_restore_range(struct ml_cursor *c, struct ml_position lower,
                             struct ml_position upper);
void ml_cursor_restore_batch(struct ml_cursor *c, struct ml_position pos, const int64_t *words,
                             int n_words);
/* The ML is open: fold restored ranges into mark-delete, set the read position. */
void ml_cursor_restored(struct ml_cursor *c);
/* The stored list says the ML was terminated at pos (ManagedLedgerInfo.terminatedPosition). */
void ml_restore_terminated(struct ml_ledger *ml, struct ml_position pos);
/* A restored cursor's mark-delete properties (copied). */
void ml_cursor_restore_props(struct ml_cursor *c, const struct ml_cursor_prop *props, int n);

/* An entry of bytes read back from the store: its content from f's cfg.entry_info (f may
 * be NULL: unknown content). */
struct ml_entry *ml_entry_stored(const struct ml_factory *f, struct evbuffer *data);

/* ---- cursors ------------------------------------------------------------------------ */

/* Individually acked entries of one ledger beyond M: bit e = entry e acked. */
struct ml_ack_bits {
    int64_t ledger;
    uint64_t *words; /* owned */
    size_t n_words;
};

struct ml_batch_set {
    int n_words;
    int64_t words[]; /* set bit = index still unacked */
};

enum ml_read_state { ML_READ_QUEUED = 0, ML_READ_WAITING, ML_READ_STORE };

struct ml_read_op {
    struct ml_ledger *ml;     /* borrowed, held (ml_hold) for the op's life */
    struct ml_cursor *cursor; /* borrowed; NULL once the cursor let go of the op */
    struct ml_read_req *req;  /* borrowed: the caller's; NULL once completed */
    bool replay;
    enum ml_read_state state;
    int status;                  /* != 0: complete with it at the next step */
    struct ml_position *targets; /* owned: positions to deliver */
    int n_targets, idx, cap_targets;
    struct ml_entry **out; /* owned, referenced */
    int n_out;
    size_t bytes;
    bool narrow; /* a range read hit unreadable data: read one entry at a time */
    struct ml_task task;
    struct ml_store_req sreq;
    TAILQ_ENTRY(ml_read_op) wait_link;
};

struct ml_cursor {
    struct ml_ledger *ml; /* borrowed: the ML owns its cursors */
    char *name;           /* owned */
    bool durable;
    bool open;
    struct ml_position mark_delete;
    struct ml_position read_pos;
    struct ml_ack_bits *acks; /* owned array, ascending ledger */
    int n_acks, cap_acks;
    int64_t n_acked;              /* bits set */
    int n_ranges;                 /* runs of set bits (ranges never span ledgers, as in Pulsar) */
    struct mg_map batch;          /* 16-byte position -> owned struct ml_batch_set * */
    struct ml_read_op *read_op;   /* owned while outstanding */
    struct ml_read_op *replay_op; /* owned while outstanding */
    struct ml_cursor_prop *props; /* owned array, names owned: mark-delete properties */
    int n_props;
};

typedef void (*ml_range_fn)(struct ml_position lower, struct ml_position upper, void *arg);
/* Each individually acked range (lower, upper], ascending. */
void ml_cursor_foreach_range(const struct ml_cursor *c, ml_range_fn fn, void *arg);

struct ml_cursor *ml_cursor_new(struct ml_ledger *ml, const char *name, bool durable,
                                struct ml_position mark_delete);
/* Free a cursor that is already out of ml->cursors; outstanding reads complete with
 * status (deferred). */
void ml_cursor_destroy(struct ml_cursor *c, int status);
/* Appends completed: move waiting reads to the task queue. */
void ml_wake_waiters(struct ml_ledger *ml);
/* Acknowledge entries first..last of ledger that can never be read (autoSkip). */
void ml_cursor_ack_lost(struct ml_cursor *c, int64_t ledger, int64_t first, int64_t last);

/* Tests: the memory store loses an entry (reads of a range with it fail with
 * -MG_ENONRECOVERABLE) or, entry < 0, a whole ledger (it reads as deleted). */
void ml_store_mem_lose(struct ml_factory *f, int64_t ledger, int64_t entry);

#endif
