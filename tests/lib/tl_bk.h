/*
 * tl_bk.h - the test library's storage helpers (prefix tl_): the metadata store's calls made
 * synchronous, BookKeeper client requests and batches of adds, fake bookies on a simulated
 * loop, bookies in this process on a real loop, and managed-ledger calls.
 *
 * A helper that waits runs the loop of the object it is given (the store's, the client's,
 * the ledger's) for at most tl_wait_ms of it, and fails the test if the callback did not
 * come; a synchronous failure of the call fails the test too. Statuses the test may want to
 * see are returned, not asserted.
 */
#ifndef MG_TL_BK_H
#define MG_TL_BK_H

#include "bkc/bkc.h"
#include "lib/tl.h"
#include "lib/tl_ml.h"
#include "meta/meta.h"
#include "ml/ml.h"

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct bk_options;
struct bk_server;
struct bkc_md;
struct tl_adds;
struct evbuffer;

/* ---- the metadata store, synchronously ------------------------------------------------------ */

/* meta_put at any version, parents created; flags add META_EPHEMERAL etc. Returns the status. */
int tl_meta_put(struct meta_store *m, const char *path, const void *v, size_t len, int flags);
/* meta_delete at any version; returns the status. */
int tl_meta_del(struct meta_store *m, const char *path);
/* meta_get / meta_children; the answer is left in *r (the caller meta_req_fini's it, also
 * on an error status). Returns the status. */
int tl_meta_get(struct meta_store *m, const char *path, struct meta_req *r);
int tl_meta_children(struct meta_store *m, const char *path, struct meta_req *r);
/* Bookies registered as writable: children of /ledgers/available but "readonly". */
int tl_bookies_registered(struct meta_store *m);
/* Until at least n are (tl_wait_ms of the store's loop, checked every 5 ms). */
void tl_wait_bookies(struct meta_store *m, int n);
/* Ledger id's metadata under /ledgers, decoded into *md (the caller bkc_md_fini's it). */
void tl_md_read(struct meta_store *m, int64_t id, struct bkc_md *md);

/* ---- BookKeeper client requests ------------------------------------------------------------ */

/* The outcome of one bkc request (req.data points to it; callback tl_res_cb). */
struct tl_res {
    bool done;
    int status;
    int n_cb; /* callbacks: exactly 1 once done */
};
void tl_res_cb(struct bkc_req *req, int status);
/* Wait for r->done on the client's loop. */
void tl_res_wait(struct bkc_client *c, struct tl_res *r);

/* bkc_create / bkc_open waited for; the status must be expect; the handle (NULL on error). */
struct bkc_ledger *tl_bkc_create(struct bkc_client *c, int expect);
struct bkc_ledger *tl_bkc_open(struct bkc_client *c, int64_t id, bool recovery, int expect);
/* bkc_close waited for; returns its status. */
int tl_bkc_close(struct bkc_ledger *lh);
/* A ledger created on c with n entries added through b (tl_adds_all) and closed (it must
 * succeed); the handle. */
struct bkc_ledger *tl_bkc_written(struct bkc_client *c, struct tl_adds *b, int n);
/* Read first..last and compare each entry with tl_bkc_payload. */
void tl_bkc_check_read(struct bkc_ledger *lh, int64_t first, int64_t last);
/* Ledger id opened on c (recovery: with recovery; it must succeed): its last add confirmed
 * is lac and entries 0..lac read back (tl_bkc_check_read); the handle is freed. */
void tl_bkc_check_ledger(struct bkc_client *c, int64_t id, bool recovery, int64_t lac);
/* The payload of the i-th add of tl_adds_one on ledger (a static buffer). */
const char *tl_bkc_payload(int64_t ledger, int i);

/* A batch of adds recording each one's status and the order in which they completed. */
#define TL_MAX_ADDS 64
struct tl_adds {
    struct bkc_req req[TL_MAX_ADDS];
    struct evbuffer *payload[TL_MAX_ADDS]; /* owned (tl_adds_fini) */
    int status[TL_MAX_ADDS];
    int order[TL_MAX_ADDS]; /* order[k]: the index of the k-th add to complete */
    int n, n_done;
    struct mg_loop *loop; /* the ledgers' (set by tl_adds_one, or by a test adding itself) */
};
/* The callback of a batch's adds (req.data = the batch). */
void tl_adds_cb(struct bkc_req *req, int status);
/* Add the batch's next entry (its entry id: its index in the batch, one batch per ledger,
 * its payload tl_bkc_payload). Returns bkc_add's result (0: counted in the batch). */
int tl_adds_one(struct tl_adds *b, struct bkc_ledger *lh);
/* Add n entries to the batch; each must be accepted (tl_adds_one returns 0). */
void tl_adds_n(struct tl_adds *b, struct bkc_ledger *lh, int n);
/* Until every add of the batch completed (fails the test if some did not). */
void tl_adds_wait(struct tl_adds *b);
/* tl_adds_n, then tl_adds_wait: n more entries added and every add of the batch completed. */
void tl_adds_all(struct tl_adds *b, struct bkc_ledger *lh, int n);
/* One more add through b on lh, which must complete with -MG_EFENCED (a fenced writer). */
void tl_adds_fenced(struct tl_adds *b, struct bkc_ledger *lh);
void tl_adds_fini(struct tl_adds *b);

/* bkc_config_default with the quorums and the request timeout. */
void tl_bkc_config(struct bkc_config *c, int e, int w, int a, int timeout_ms);

/* ---- fake bookies on a simulated loop ------------------------------------------------------ */

/* A simulated loop (mono 1000000 ms, wall 1700000000000 ms), a metadata store on it and a
 * cluster of fake bookies (bkc_fake.c), each registered under /ledgers/available as a
 * bookie's session would. Bookie i is named "<net>.<i + 1>:3181" (net "10.0.0"). */
struct tl_fakebk {
    struct event_base *base;
    struct mg_loop *loop;
    struct meta_store *meta;
    struct bkc_fake *fake;
    char *dir; /* the embedded store's data directory (NULL for "memory") */
    const char *net;
    int n; /* bookies made */
};
/* meta_url: "memory" or "embedded" (in a new temporary directory); n bookies made. */
void tl_fakebk_open(struct tl_fakebk *f, const char *meta_url, uint64_t seed, const char *net,
                    int n);
/* Close the store, free the fake and the loop, remove the directory; free clients first. */
void tl_fakebk_close(struct tl_fakebk *f);
/* Bookie i comes up and registers: a new one when i == f->n, else a restart. Returns i. */
int tl_fakebk_start(struct tl_fakebk *f, int i);
/* Bookie i crashes and its registration goes. */
void tl_fakebk_stop(struct tl_fakebk *f, int i);
/* (Un)register bookie i. */
void tl_fakebk_register(struct tl_fakebk *f, int i, bool on);
/* A client of the fake bookies (config: tl_bkc_config's, transport and seed set here). */
struct bkc_client *tl_fakebk_client(struct tl_fakebk *f, struct bkc_config *cfg, uint64_t seed);

/* ---- bookies in this process ---------------------------------------------------------------- */

/* Start a bookie on b (the test's thread runs b) listening on 127.0.0.1:0, its journal and
 * ledgers under dir/b<i>, registered in o->meta when set. o: options to start from (NULL:
 * bk_options_default; the address, port and directories are set here). */
struct bk_server *tl_bookie_start(struct event_base *b, const char *dir, int i,
                                  const struct bk_options *o);
/* Shut s down, let its unregistration run on b (20 ms), free it. Accepts NULL. */
void tl_bookie_stop(struct bk_server *s, struct event_base *b);
/* Its bookie id, "127.0.0.1:<port>", in buf. */
const char *tl_bookie_id(const struct bk_server *s, char *buf, size_t len);

/* ---- managed ledgers ------------------------------------------------------------------------ */

/* struct tl_open and tl_open_cb: lib/tl_ml.h. */
/* ml_open waited for (its callback must not run inside the call). status NULL: it must
 * succeed; else the status is stored there (and the ledger may be NULL). */
struct ml_ledger *tl_ml_open(struct ml_factory *f, const char *name, int *status);

/* One append (req.data points to it; callback tl_append_cb). */
struct tl_append {
    struct ml_append_req req;
    bool done;
    int status;
    int order; /* completion order: tl_append_order at the time */
    struct ml_position pos;
    size_t entry_size; /* the entry's size as ml counted it (status 0) */
};
extern int tl_append_order; /* appends completed since the test set it (to 0) */
void tl_append_cb(struct ml_append_req *req, int status);

/* One cursor read (req.data points to it; callback tl_read_cb). */
struct tl_read {
    struct ml_read_req req;
    bool done;
    int status;
};
void tl_read_cb(struct ml_read_req *req, int status);
/* Release the entries of a completed read and clear it for reuse. */
void tl_read_release(struct tl_read *r);

#endif
