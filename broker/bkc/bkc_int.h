/*
 * bkc_int.h - struct bodies and internal interfaces of the bkc module (and its tests).
 *
 * Layers, bottom up:
 *   bkc_md.c      ledger metadata: LedgerMetadataFormat v3 (binary, protobuf-c) encode/decode,
 *                 v2 (text) decode, hierarchical paths.
 *   transport     how requests reach the bookies: struct bkc_transport_ops, called by the
 *                 layers above through c->tp (one indirect call per request). Two of them:
 *     bkc_conn.c  one TCP connection per bookie, v2 framing (default) or v3 (cfg.use_v3),
 *                 frames by the codec wire/wire_bk.h; requests (struct bkc_op) matched to
 *                 responses by (ledger, entry, op) in FIFO order (v2) or by txnId (v3),
 *                 per-request timeouts;
 *     bkc_fake.c  in-memory bookies on the client's loop with injected faults (tests, the
 *                 simulation).
 *     (a third, bookie/bk_local.c, calls the bookies of the client's own process: the
 *     standalone's; it hands other bookie ids to bkc_conn.c.)
 *   bkc_client.c  the client: config, deferred completions, metadata requests, digests,
 *                 create / open / delete.
 *   bkc_ledger.c  a ledger handle: adds with quorum tracking, ensemble changes, close, reads,
 *                 LAC reads, fencing and recovery.
 */
#ifndef MG_BKC_INT_H
#define MG_BKC_INT_H

#include "bkc/bkc.h"
#include "meta/meta.h"
#include "util/loop.h"
#include "util/map.h"
#include "wire/wire_bk.h"

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/queue.h>

struct bufferevent;
struct event;
struct ssl_ctx_st;

#define BKC_MAX_ENSEMBLE 64

/* ---- metadata (bkc_md.c) --------------------------------------------------------------- */

enum bkc_state { BKC_STATE_OPEN = 1, BKC_STATE_IN_RECOVERY = 2, BKC_STATE_CLOSED = 3 };

struct bkc_segment {
    int64_t first;  /* firstEntryId */
    char **bookies; /* owned: ensemble_size owned bookie ids */
};

struct bkc_md_kv {
    char *key;      /* owned */
    uint8_t *value; /* owned */
    size_t len;
};

/* A decoded LedgerMetadataFormat. */
struct bkc_md {
    int ensemble_size, write_quorum, ack_quorum;
    int64_t length;
    int64_t last_entry;       /* -1 unless CLOSED */
    int state;                /* enum bkc_state */
    struct bkc_segment *segs; /* owned, ascending first */
    int n_segs;
    int digest; /* enum bkc_digest; 0 = absent */
    bool has_password;
    uint8_t *password; /* owned */
    size_t password_len;
    bool has_ctime;
    int64_t ctime;
    struct bkc_md_kv *custom; /* owned */
    int n_custom;
    bool has_ctoken;
    int64_t ctoken;
};

void bkc_md_fini(struct bkc_md *md);
void bkc_md_copy(struct bkc_md *dst, const struct bkc_md *src);
/* Serialize as format v3 (header line, varint32 length, binary protobuf); *out is a new
 * buffer (mg_free). */
void bkc_md_encode(const struct bkc_md *md, uint8_t **out, size_t *len);
/* Parse format v3 (binary) or v2 (text). Returns 0 or -MG_EPROTO (md left empty). */
int bkc_md_decode(const void *buf, size_t len, struct bkc_md *md);
/* The segment index holding entry e (the last segment with first <= e). */
int bkc_md_segment_for(const struct bkc_md *md, int64_t e);
/* Append a segment {first, bookies (copied)}, replacing a last segment starting at first. */
void bkc_md_set_last_segment(struct bkc_md *md, int64_t first, char *const *bookies);

/* ---- bookie connections (bkc_conn.c) ---------------------------------------------------- */

struct bkc_op;
/* rc: a bookie's answer (enum wire_bk_status, >= 0, from either framing) or a local failure
 * (-MG_ETIMEDOUT, -MG_EIO for a lost or refused connection, -MG_ETOOBIG for a response over
 * the frame limit). *body: READ responses with EOK, owned by the callback if it sets
 * *body = NULL, else freed after it. The op is freed after the callback returns. */
typedef void (*bkc_op_cb)(struct bkc_op *op, int rc, struct evbuffer **body);

struct bkc_op {
    struct bkc_bookie *bk; /* borrowed */
    uint8_t opcode;
    int64_t ledger, entry;
    uint64_t deadline_ms;
    uint64_t sent_us; /* monotonic µs when sent: add latency statistics */
    uint64_t gen;     /* the connection generation it was sent on */
    uint64_t txn;     /* v3: the request's txnId (the match key) */
    bkc_op_cb cb;
    void *arg;                /* borrowed: the caller's state */
    int slot;                 /* the caller's index (ensemble index, write-set slot) */
    struct bkc_op *next_same; /* FIFO chain of ops with the same (ledger, entry, op) */
    TAILQ_ENTRY(bkc_op) link; /* bk->ops, in send order */
};
TAILQ_HEAD(bkc_op_list, bkc_op);

enum bkc_bookie_state {
    BKC_BK_IDLE = 0, /* no connection */
    BKC_BK_CONNECTING,
    BKC_BK_CONNECTED,
};

/* TLS to a bookie (bkc_config.tls; bkc_conn.c): START_TLS in v3, then the handshake on the
 * same socket; requests wait in bk->held until it completed. */
enum bkc_tls_state {
    BKC_TLS_NONE = 0,    /* no connection yet, or plain text (TLS not configured) */
    BKC_TLS_AWAIT_REPLY, /* START_TLS sent, its v3 answer awaited */
    BKC_TLS_HANDSHAKING, /* TLS filter on, handshake running */
    BKC_TLS_ON,          /* handshake done: held requests sent, later ones go straight out */
};

struct bkc_bookie {
    struct bkc_client *c; /* borrowed */
    char *id;             /* owned: "host:port" */
    char *host;           /* owned */
    int port;
    enum bkc_bookie_state state;
    struct bufferevent *bev; /* owned */
    uint64_t gen;            /* bumped at each connection loss */
    bool v3;                 /* speaks v3 (cfg.use_v3), else v2 */
    int tls;                 /* enum bkc_tls_state */
    struct evbuffer *held;   /* owned: requests sent while the TLS handshake runs */
    uint64_t next_txn;       /* v3: the next txnId (never reused, across reconnections too) */
    struct mg_map match;     /* v2: (ledger, entry, op) -> borrowed first op of its FIFO chain;
                                v3: txnId -> borrowed op */
    struct bkc_op_list ops;  /* every outstanding op, in send order (deadline order) */
    int n_ops;
    struct event *fail_ev; /* owned: deferred failure of a connection that never started */
    uint64_t skip;         /* bytes of an oversized response still to drop */
    bool in_process;       /* served by a bookie of this process (bookie/bk_local.c), not TCP */
    int64_t add_count, add_errors, add_lat_sum_us; /* bkc_client_bookie_stats_next */
    int64_t add_lat[BKC_LAT_BUCKETS];
    TAILQ_ENTRY(bkc_bookie) link;
};
TAILQ_HEAD(bkc_bookie_list, bkc_bookie);

/* ---- the transport ---------------------------------------------------------------------- */

/* How the ledger layer reaches bookies. A transport keeps one struct bkc_bookie per bookie id for
 * the client (a connection: in c->bookies and c->bookie_list; a transport may allocate a larger
 * struct starting with it) and one struct bkc_op per request in flight (it may allocate a larger
 * struct starting with it, and keeps ops in bk->ops in send order with n_ops counting them). The
 * contract:
 *   - add/read send one request and return its op; the op's callback runs exactly once
 *     (with a bookie rc >= 0, -MG_ETIMEDOUT past op->deadline_ms, -MG_EIO when the
 *     connection to the bookie is lost or refused, -MG_ETOOBIG for an answer over the frame
 *     limit), never inside add/read, unless the op is cancelled first;
 *   - cancel forgets an op (its callback will not run; a late answer is dropped);
 *   - check_timeouts fails the ops of bk whose deadline is at or before now_ms;
 *   - bookie_free cancels what bk still has and frees it (client teardown).
 * A bookie going away shows as -MG_EIO on every op in flight to it; the ledger layer needs
 * no other signal (it replaces the bookie on the first failed add). */
struct bkc_transport_ops {
    const char *name;
    /* The bookie for id, created (without connecting) if new. */
    struct bkc_bookie *(*bookie_get)(struct bkc_client *c, const char *id);
    void (*bookie_free)(struct bkc_bookie *bk);
    /* An ADD of entry `entry` (header and digest in ehdr, payload referenced, not copied). */
    struct bkc_op *(*add)(struct bkc_bookie *bk, int64_t ledger, int64_t entry, uint16_t flags,
                          const uint8_t *master_key, const uint8_t *ehdr, size_t ehdr_len,
                          struct evbuffer *payload, bkc_op_cb cb, void *arg, int slot);
    /* A READ (entry -1: the last entry); master_key is sent with WIRE_BK_FLAG_FENCE. */
    struct bkc_op *(*read)(struct bkc_bookie *bk, int64_t ledger, int64_t entry, uint16_t flags,
                           const uint8_t *master_key, bkc_op_cb cb, void *arg, int slot);
    void (*cancel)(struct bkc_op *op);
    void (*check_timeouts)(struct bkc_bookie *bk, uint64_t now_ms);
};

/* A transport and its state (bkc_config.transport). */
struct bkc_transport {
    const struct bkc_transport_ops *ops;
    void *impl; /* the transport's (bkc_fake: the fake cluster) */
};

/* The TCP transport (bkc_conn.c's functions below). A transport may serve some bookies itself
 * and hand the others to these: bookie/bk_local.c reaches the bookies of its own process by
 * calls (bk->in_process) and the rest over TCP. */
extern const struct bkc_transport_ops bkc_tcp_transport_ops;

/* ---- bookie connections over TCP (bkc_conn.c) -------------------------------------------- */

/* The bookie for id, created (without connecting) if new. */
struct bkc_bookie *bkc_bookie_get(struct bkc_client *c, const char *id);
void bkc_bookie_free(struct bkc_bookie *bk);
/* Send an ADD (wire_bk_write_add): the frame head, the entry header and digest (ehdr;
 * copied) and a reference to payload's bytes. flags: WIRE_BK_FLAG_RECOVERY_ADD,
 * WIRE_BK_FLAG_HIGH_PRIORITY.
 * Never calls cb before returning. */
struct bkc_op *bkc_bookie_add(struct bkc_bookie *bk, int64_t ledger, int64_t entry, uint16_t flags,
                              const uint8_t *master_key, const uint8_t *ehdr, size_t ehdr_len,
                              struct evbuffer *payload, bkc_op_cb cb, void *arg, int slot);
/* Send a READ; master_key is sent when flags has WIRE_BK_FLAG_FENCE. */
struct bkc_op *bkc_bookie_read(struct bkc_bookie *bk, int64_t ledger, int64_t entry, uint16_t flags,
                               const uint8_t *master_key, bkc_op_cb cb, void *arg, int slot);
/* Give a new bookie of c (zeroed by its transport) its id (copied) and an empty op list, and
 * enter it in c->bookies and c->bookie_list. Every transport's bookie_get uses it. */
void bkc_bookie_attach(struct bkc_client *c, struct bkc_bookie *bk, const char *id);
/* Fill a new op of bk (zeroed by the caller) and queue it on bk->ops: sent now, its deadline
 * the client's timeout from now. Both transports start their ops with it. */
void bkc_op_start(struct bkc_op *op, struct bkc_bookie *bk, uint8_t opcode, int64_t ledger,
                  int64_t entry, bkc_op_cb cb, void *arg, int slot);
/* Count an op's answer rc in its bookie's add statistics (adds only; other ops: nothing). */
void bkc_op_record(struct bkc_op *op, int rc);
/* Forget an outstanding op: its callback will not run; a late response is dropped.
 * Accepts NULL. */
void bkc_op_cancel(struct bkc_op *op);
/* Fail ops whose deadline passed (-MG_ETIMEDOUT). */
void bkc_bookie_check_timeouts(struct bkc_bookie *bk, uint64_t now_ms);
/* Drop the connection and fail every outstanding op with err. */
void bkc_bookie_fail(struct bkc_bookie *bk, int err, const char *why);

/* ---- client (bkc_client.c) ------------------------------------------------------------ */

struct bkc_mop;
typedef void (*bkc_mop_fn)(struct bkc_mop *mop, int status);
/* One metadata request. The meta store may complete it after its owner is gone: the owner
 * marks it dead and the completion then only frees it. A live mop is on its owner's list
 * (owner->mops), or on the client's (c->mops) when it has no owner, so that killing the
 * mops of one handle costs only that handle's mops, however many others are in flight. */
struct bkc_mop {
    struct meta_req mr;
    struct bkc_client *c;
    struct bkc_ledger *owner; /* borrowed: a ledger handle, or NULL */
    struct bkc_req *ureq;     /* borrowed: a user request completed by fn (delete) */
    bkc_mop_fn fn;
    bool dead;
    TAILQ_ENTRY(bkc_mop) link; /* owner->mops, or c->mops; unlinked once dead */
};
TAILQ_HEAD(bkc_mop_list, bkc_mop);

TAILQ_HEAD(bkc_ledger_list, bkc_ledger);

struct bkc_client {
    struct mg_loop *loop;    /* borrowed: clock and timers */
    struct event_base *base; /* borrowed: the loop's */
    struct meta_store *meta; /* borrowed */
    struct bkc_transport tp; /* cfg.transport, or TCP */
    struct bkc_config cfg;   /* strings point into the owned copies below */
    char *password;          /* owned */
    char *root;              /* owned: "/ledgers" */
    struct mg_map bookies;   /* id -> owned bkc_bookie */
    struct bkc_bookie_list bookie_list;
    struct bkc_ledger_list ledgers;        /* every handle, including ones being created/opened */
    struct bkc_ledger_list zombies;        /* aborted handles, freed at the next loop pass */
    struct bkc_mop_list mops;              /* metadata requests in flight without an owner */
    struct bkc_req *done_head, *done_tail; /* completed requests waiting for their callback */
    struct event *done_ev;                 /* owned */
    struct mg_timer tick;                  /* request timeouts */
    uint64_t rng;
    bool draining;           /* inside the done_ev handler */
    bool free_on_return;     /* bkc_client_free was called from a callback */
    uint64_t mop_kill_steps; /* mops looked at by bkc_mops_kill, ever (tests: stays linear) */
    struct tls_link *tls;    /* owned: TLS to bookies (cfg.tls), else NULL */
};

/* The client TLS context of t (t->on), kept current (t->refresh_s), or NULL (logged) when
 * its files do not load. */
struct tls_link *bkc_tls_new(const struct bkc_tls_config *t);

uint64_t bkc_rand(struct bkc_client *c);
/* Cancel op through the client's transport. Accepts NULL. */
void bkc_op_cancel_tp(struct bkc_client *c, struct bkc_op *op);
/* Queue req's callback with status (runs from the loop, FIFO). */
void bkc_complete(struct bkc_client *c, struct bkc_req *req, int status);
/* Start a metadata request: returns the mop (its mr ready for meta_*) tracked by the
 * client; call bkc_mop_start's result with meta_* and bkc_mop_cb as callback. */
struct bkc_mop *bkc_mop_new(struct bkc_client *c, struct bkc_ledger *owner, bkc_mop_fn fn);
void bkc_mop_cb(struct meta_req *mr, int status);
/* rc: the result of mop's meta_* call. If it failed synchronously (< 0), the mop never went
 * in flight: drop it. Returns rc. */
int bkc_mop_started(struct bkc_mop *mop, int rc);
/* Mark every mop of owner dead (owner NULL: the client's own). Costs the number of mops of
 * that owner, not of the client. */
void bkc_mops_kill(struct bkc_client *c, struct bkc_ledger *owner);
/* master key and digests */
void bkc_master_key(const uint8_t *pw, size_t pw_len, uint8_t out[WIRE_BK_MASTER_KEY_LEN]);
int bkc_digest_len(int digest);
/* Digest over hdr (32 bytes) then len bytes of payload from offset off. tail_len > 0: the
 * caller already has tail_crc, the CRC32C of the last tail_len of those bytes; a CRC32C
 * digest then reads only the bytes before them and combines (other digests ignore it). */
void bkc_digest(int digest, const uint8_t *mac_key, const uint8_t *hdr, struct evbuffer *payload,
                size_t off, size_t len, uint32_t tail_crc, size_t tail_len, uint8_t *out);

/* ---- ledger handles (bkc_ledger.c) ------------------------------------------------------ */

enum bkc_mode {
    BKC_MODE_CREATING = 0,
    BKC_MODE_OPENING,
    BKC_MODE_RECOVERING,
    BKC_MODE_WRITER,
    BKC_MODE_READER,
    BKC_MODE_DEAD, /* aborted; freed from the client's loop pass */
};

/* A pending add (writer or recovery re-add). */
struct bkc_add {
    struct bkc_ledger *lh; /* borrowed */
    int64_t entry;
    int64_t length;           /* ledger length including this entry */
    struct evbuffer *payload; /* borrowed from the caller, or owned if own_payload */
    bool own_payload;
    bool sent; /* false while held by an ensemble change */
    uint16_t flags;
    uint32_t tail_crc; /* bkc_add_crc's: CRC32C of the payload's last tail_len bytes */
    size_t tail_len;
    uint8_t ehdr[WIRE_BK_ENTRY_HDR_LEN + WIRE_BK_MAX_DIGEST_LEN]; /* built at first send */
    size_t ehdr_len;
    uint64_t acked; /* ensemble indexes that acknowledged */
    int n_acked;
    struct bkc_op *ops[BKC_MAX_ENSEMBLE]; /* outstanding, by ensemble index */
    struct bkc_req *req;                  /* borrowed: NULL for recovery re-adds */
    TAILQ_ENTRY(bkc_add) link;
};
TAILQ_HEAD(bkc_add_list, bkc_add);

/* A range read. */
struct bkc_rd_ent {
    struct bkc_op *op;
    int tries, n_missing, n_corrupt, n_toobig;
    struct evbuffer *payload; /* owned once read */
    int64_t length;           /* the entry's length field */
    bool refreshed;           /* it made us (or waited for) a metadata re-read already */
    uint64_t md_gen;          /* lh->md_gen when its current round of tries began */
};
struct bkc_rd {
    struct bkc_ledger *lh; /* borrowed */
    struct bkc_req *req;   /* borrowed; NULL for internal reads */
    void (*internal_cb)(struct bkc_rd *rd, int status);
    int64_t first, last;
    int n, n_done;
    struct bkc_rd_ent *ents; /* owned, n */
    bool waiting;            /* entries wait for a metadata re-read (lh->md_refreshing) */
    TAILQ_ENTRY(bkc_rd) link;
};
TAILQ_HEAD(bkc_rd_list, bkc_rd);

/* A LAC read (fencing or not) on the last ensemble. */
struct bkc_lacrd {
    struct bkc_ledger *lh;
    bool fence;
    struct bkc_req *req; /* borrowed: bkc_read_lac's, or NULL (recovery) */
    struct bkc_op *ops[BKC_MAX_ENSEMBLE];
    uint8_t answer[BKC_MAX_ENSEMBLE]; /* 0 pending, 1 counted answer, 2 failed */
    int n_pending;
    int64_t max_lac;
    int err;
};

/* One recovery read: entry `entry` from every bookie of its write set. */
struct bkc_rrd {
    int64_t entry;
    struct bkc_op *ops[BKC_MAX_ENSEMBLE];
    int n_pending, n_missing, n_failed, n_corrupt;
};

struct bkc_ledger {
    struct bkc_client *c; /* borrowed */
    TAILQ_ENTRY(bkc_ledger) link;
    struct bkc_mop_list mops; /* its metadata requests in flight (borrowed; the client's) */
    int64_t id;
    char *path; /* owned */
    enum bkc_mode mode;
    struct bkc_md md; /* current metadata */
    int64_t md_version;
    uint8_t master_key[WIRE_BK_MASTER_KEY_LEN];
    uint8_t mac_key[20];
    int digest, digest_len;
    struct bkc_bookie *ens[BKC_MAX_ENSEMBLE]; /* borrowed: the last segment's bookies */
    /* writer / recovery */
    int64_t lac, lac_length; /* last add confirmed and the length there */
    int64_t last_pushed, pushed_length;
    struct bkc_add_list adds; /* pending, ascending entry */
    uint64_t failed;          /* ensemble indexes to replace */
    uint64_t changing_set;    /* the ones the running change replaces */
    bool changing;
    int err; /* sticky failure of the writer */
    char errmsg[200];
    char fail_why[96]; /* why the last ensemble index failed (for the error message) */
    char **failed_ids; /* owned: bookies that failed on this handle; never picked again by it */
    int n_failed_ids;
    bool closing;
    struct bkc_req *close_req; /* borrowed */
    struct bkc_rd_list reads;
    struct bkc_lacrd *lacrd; /* owned: LAC read / fence in progress */
    /* create / open */
    struct bkc_req *open_req; /* borrowed: create or open in progress */
    bool recovery;
    int create_tries;
    struct bkc_create_opts copts; /* custom points into md */
    /* recovery */
    struct bkc_rrd *rrd;                          /* owned: recovery read in progress */
    struct bkc_bookie *rec_ens[BKC_MAX_ENSEMBLE]; /* borrowed: the ensemble fenced */
    bool rec_reads_done;
    int64_t rec_start;    /* the LAC the fencing reads established: what re-adds piggyback */
    bool md_closing;      /* the CLOSED metadata write is in flight */
    struct bkc_md new_md; /* the metadata an ensemble change is writing */
    struct bkc_rr *rr;    /* owned: bkc_replicate / bkc_ledger_set_bookie in progress */
    bool md_refreshing;   /* a read's metadata re-read is in flight */
    uint64_t md_gen;      /* metadata re-reads for reads completed */
};

/* Create / open steps (bkc_ledger.c), started by bkc_client.c. */
struct bkc_ledger *bkc_ledger_alloc(struct bkc_client *c, int64_t id, enum bkc_mode mode);
/* Complete everything pending on lh with status, cancel its requests and free it; with
 * defer, the memory stays (mode DEAD) until the client's next loop pass, so that callers up
 * the stack may still look at it. */
void bkc_ledger_destroy(struct bkc_ledger *lh, int status, bool defer);
/* Derive the master key, MAC key and digest of lh from its metadata. */
void bkc_ledger_keys(struct bkc_ledger *lh);
/* Free the handles in c->zombies. */
void bkc_zombies_free(struct bkc_client *c);
void bkc_ledger_create_start(struct bkc_ledger *lh);
void bkc_ledger_open_start(struct bkc_ledger *lh);
/* Check a stored entry body: ledger id, entry id (expect < -1: any), digest. On success the
 * header fields are returned and the header+digest bytes are left in body. Returns 0,
 * -MG_EPROTO (short, another ledger or entry) or -MG_ECHECKSUM. */
int bkc_verify_entry(struct bkc_ledger *lh, struct evbuffer *body, int64_t expect, int64_t *entry,
                     int64_t *lac, int64_t *length);
/* Is ensemble index idx in entry's write set ((entry + i) % E, i < Qw)? */
bool bkc_in_write_set(const struct bkc_ledger *lh, int64_t entry, int idx);
/* Write md to lh's metadata node expecting version (META_VERSION_NONE: create, parents too),
 * or read it; then done (owner lh). Return the meta call's result (< 0: nothing started). */
int bkc_md_put(struct bkc_ledger *lh, const struct bkc_md *md, int64_t version, bkc_mop_fn done);
int bkc_md_read(struct bkc_ledger *lh, bkc_mop_fn done);
/* lh->new_md was stored at version: make it lh->md (the ensemble pointers are not updated). */
void bkc_lh_take_new_md(struct bkc_ledger *lh, int64_t version);

/* ---- re-replication (bkc_rerep.c) ------------------------------------------------------- */

/* One copy slot: an entry read from a surviving replica, then re-added to the target. */
struct bkc_rr_slot {
    int64_t entry; /* -1: free */
    int tries;     /* replicas asked */
    int n_missing, n_corrupt;
    struct bkc_op *op;        /* the read or the add in flight */
    struct evbuffer *payload; /* owned while the add is in flight */
    uint8_t ehdr[WIRE_BK_ENTRY_HDR_LEN + WIRE_BK_MAX_DIGEST_LEN];
};

/* bkc_replicate / bkc_ledger_set_bookie in progress on a read handle (at most one). */
struct bkc_rr {
    struct bkc_ledger *lh; /* borrowed */
    struct bkc_req *req;   /* borrowed */
    int seg, idx;
    struct bkc_bookie *to; /* borrowed: the target (replicate) */
    char *from, *to_id;    /* owned: the bookie replaced and its replacement (set_bookie) */
    int64_t next, last;    /* the next entry to look at; the fragment's last entry */
    int n_slots, n_busy;
    struct bkc_rr_slot *slots; /* owned */
    int md_tries;              /* set_bookie: CAS attempts */
};
/* Cancel what rr has in flight and free it (its request is not completed). Accepts NULL. */
void bkc_rr_free(struct bkc_client *c, struct bkc_rr *rr);

#endif
