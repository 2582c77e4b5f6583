/*
 * ar_int.h - struct bodies and internal helpers of the autorec module (and its tests).
 *
 *   autorec.c   the instance: auditor election, the auditor's bookie watch and audits, the
 *               replication worker.
 *   ar_walk.c   znode paths of the layout and the asynchronous walk of a hierarchical tree
 *               (ledger metadata, under-replication marks) into a list of ledger ids.
 *   ar_shell.c  `magnetar shell`'s commands.
 */
#ifndef MG_AR_INT_H
#define MG_AR_INT_H

#include "autorec/autorec.h"
#include "bkc/bkc.h"
#include "meta/meta.h"
#include "util/loop.h"
#include "util/ratelimit.h"

#include <stdbool.h>
#include <stdint.h>

/* ---- paths (ar_walk.c) ------------------------------------------------------------------ */

/* <root>/underreplication/ledgers/hhhh/hhhh/hhhh/hhhh/urL%010d (the id in four 16-bit groups),
 * <root>/underreplication/locks/urL%010d. New strings. */
char *ar_ur_path(const char *root, int64_t id);
char *ar_lock_path(const char *root, int64_t id);
/* The data of a mark: BookKeeper's UnderreplicatedLedgerFormat in text form. New string. */
char *ar_ur_data(char *const *missing, int n, int64_t ctime_ms);

/* ---- tree walk (ar_walk.c) -------------------------------------------------------------- */

enum ar_walk_kind {
    AR_WALK_LEDGERS = 0, /* <root>/00/0000/L0042: decimal levels, leaf L<digits> */
    AR_WALK_MARKS,       /* <root>/underreplication/ledgers/hhhh/...: hex levels, leaf urL<id> */
};

struct ar_walk;
typedef void (*ar_walk_cb)(struct ar_walk *w, int status);
/* Lists a tree one meta_children call at a time (a bounded slice per callback) and collects
 * the ledger ids of its leaves, ascending. */
struct ar_walk {
    struct meta_store *meta; /* borrowed */
    enum ar_walk_kind kind;
    ar_walk_cb cb;
    void *data;
    char **todo; /* owned: paths still to list (a stack) */
    int n_todo, cap_todo;
    int64_t *ids; /* owned: the result */
    int n_ids, cap_ids;
    size_t top_len;
    struct meta_req mr;
    bool busy;
};
/* Start walking the tree at top; cb runs once with 0 (ids set) or a meta error. The walk must
 * stay valid until then; ar_walk_fini releases it (and must not be called while busy unless
 * the store is being closed). */
int ar_walk_start(struct ar_walk *w, struct meta_store *meta, const char *top,
                  enum ar_walk_kind kind, ar_walk_cb cb, void *data);
void ar_walk_fini(struct ar_walk *w);

/* ---- the instance (autorec.c) ----------------------------------------------------------- */

/* A set of bookie ids (small: the cluster's bookies). */
struct ar_ids {
    char **v; /* owned */
    int n;
};
bool ar_ids_has(const struct ar_ids *s, const char *id);
void ar_ids_add(struct ar_ids *s, const char *id);
void ar_ids_fini(struct ar_ids *s);

/* A listing of the registered bookies: <root>/available, then <root>/available/readonly. */
struct ar_blist;
typedef void (*ar_blist_cb)(struct ar_blist *b, int status);
struct ar_blist {
    struct ar *a; /* borrowed */
    struct meta_req mr;
    int step;          /* 0: available, 1: readonly */
    struct ar_ids reg; /* registered: writable and read-only (owned) */
    char **avail;      /* owned: the listing of available (placement; has "readonly") */
    int n_avail;
    ar_blist_cb cb;
    bool busy;
};
/* Start a listing (the previous result is dropped); cb runs once with 0 or a meta error. */
int ar_blist_start(struct ar_blist *b, struct ar *a, ar_blist_cb cb);
void ar_blist_fini(struct ar_blist *b);

/* A bookie seen missing from the registration, and since when (monotonic ms). */
struct ar_absent {
    char *id;
    uint64_t since_ms;
};

enum ar_wstate {
    AR_W_IDLE = 0, /* waiting for the poll timer */
    AR_W_LISTING,  /* walking the marks */
    AR_W_LOCKING,  /* creating the lock of ids[pos] */
    AR_W_WORKING,  /* the locked ledger: bookies, open, copies, metadata */
    AR_W_CLEARING, /* deleting the mark, then the lock */
    AR_W_UNLOCKING,
};

struct ar_defer {
    int64_t id;
    uint64_t until_ms;
};

struct bk_metrics_http;

struct ar {
    struct mg_loop *loop;         /* borrowed */
    struct bk_metrics_http *http; /* owned: GET /metrics (prometheusStatsHttpPort), or NULL */
    struct meta_store *meta;      /* borrowed */
    struct bkc_client *bkc;       /* owned */
    struct ar_conf conf;          /* strings point to the owned copies below */
    char *id, *root;              /* owned */
    struct ar_stats st;
    bool stopping;
    struct mg_ratelimit rl_retry; /* metadata failures retried by the next poll/audit/vote */
    struct mg_ratelimit rl_fail;  /* ledgers whose re-replication failed */

    /* election */
    char *vote;                 /* owned: our vote's name (V_0000000012), or NULL */
    struct meta_watch *elect_w; /* children watch on auditorelection */
    struct meta_req elect_mr;   /* vote or listing in flight */
    bool elect_busy, elect_again;
    struct mg_timer elect_retry; /* after a metadata error */

    /* auditor */
    struct meta_watch *avail_w; /* children watch on available */
    struct meta_watch *delay_w; /* data watch on underreplication/lostBookieRecoveryDelay */
    int delay_ms;               /* the lostBookieRecoveryDelay in force (the znode's) */
    bool delay_read;            /* a_mr is the znode's get (else our create of it) */
    struct ar_absent *absent;   /* owned */
    int n_absent;
    struct mg_timer audit_t;      /* next audit (a lost bookie's delay, or periodic) */
    struct mg_timer periodic_t;   /* auditorPeriodicCheckInterval */
    struct mg_timer bookie_chk_t; /* auditorPeriodicBookieCheckInterval */
    bool audit_busy, audit_again;
    struct ar_blist a_bl; /* the registered bookies the running audit compares with */
    struct meta_req a_mr;
    struct ar_walk a_walk;
    int a_pos;
    struct bkc_req a_req;
    int64_t a_marked;   /* ledgers found under-replicated by the running audit */
    uint64_t a_next_ms; /* the earliest time a bookie absent too briefly becomes lost */

    /* worker */
    enum ar_wstate ws;
    bool w_paused; /* <root>/underreplication/disable exists */
    struct mg_timer poll_t;
    struct ar_walk w_walk;
    int w_pos;
    int64_t w_ledger;
    struct meta_req w_mr;
    struct ar_blist w_bl;
    struct bkc_req w_req;
    struct bkc_ledger *w_lh; /* owned */
    int w_seg, w_idx;
    char *w_target;   /* owned */
    bool w_open_left; /* the open last fragment has a lost bookie: left to the writer */
    int w_tries;
    uint64_t w_defer_ms;    /* 0: the ledger is done (mark cleared) */
    struct ar_defer *defer; /* owned: ledgers not to retry before a time */
    int n_defer;
};

/* ---- metrics (ar_metrics.c) -------------------------------------------------------------- */

/* bk_metrics_fill_fn of a lone autorecovery's GET /metrics: ar_metrics(arg, b). */
void ar_metrics_fill(void *arg, struct evbuffer *b);

#endif
