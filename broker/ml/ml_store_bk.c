/*
 * ml_store_bk.c - the "bookkeeper" ledgers (struct ml_ledger_ops): a managed ledger's ledgers
 * on a quorum of bookies through bkc (docs/wire-bookkeeper.md §5). Its metadata (ledger list,
 * cursors) is ml_store_meta.c's.
 *
 * Happy path: create_ledger = bkc_create with Pulsar's custom metadata; add_entry = bkc_add of
 * the entry id the core gave (its position) on the writer handle (the entry is referenced until
 * bkc's callback); read_range = bkc_read on the writer handle or on a read handle opened (with
 * recovery, so a ledger we abandoned open gets sealed) on first use; recover_ledger (the last
 * ledger at load) = bkc_open with recovery, which fences the previous writer, and keeps the
 * handle for reads; close/delete = bkc_close/bkc_delete.
 *
 * Failure modes: bkc errors pass through (-MG_EIO, -MG_EFENCED, -MG_ENOBOOKIES...); a read of
 * entries no replica has or whose copies are all corrupt completes with -MG_ENONRECOVERABLE.
 * fini completes every request the core still has here with -MG_ECANCELED; bkc completions
 * that come later only release what they hold (the store's memory lives until the last of
 * them). A recovery of a ledger whose close (by a previous incarnation of the ML) is still in
 * flight waits for that close, so the two never race on the ledger's metadata.
 */
#include "bkc/bkc.h"
#include "ml/ml_int.h"
#include "util/alloc.h"
#include "util/err.h"
#include "util/log.h"

#include <inttypes.h>
#include <stdio.h>
#include <string.h>
#include <sys/queue.h>

#define BK_MOD "ml-bk"

struct bks;
struct bkml;
struct bk_op;

/* A ledger handle of one ML. Refcounted: the ML's map holds one, each open/close op one. */
struct bkh {
    struct bkml *m; /* borrowed: owner */
    int refs;
    int64_t id;
    struct bkc_ledger *lh; /* owned; NULL while opening or once dropped */
    bool writer, opening, closing, closed, gone;
    struct bk_op *waiting;              /* reads waiting for the open (op->next) */
    struct ml_store_req *close_waiters; /* closes waiting for the one in flight (next_) */
    struct bk_op *recover_waiters;      /* recoveries waiting for the close (op->next) */
};

/* Per-ML state, made on the ML's first request. Refcounted: the ML (until free_ml), each op. */
struct bkml {
    struct bks *s; /* held */
    int refs;
    struct ml_ledger *ml;  /* borrowed; NULL after free_ml */
    char *name;            /* owned */
    struct mg_map handles; /* id -> owned ref struct bkh * */
    TAILQ_ENTRY(bkml) link;
};
TAILQ_HEAD(bkml_list, bkml);

enum bk_op_kind {
    BK_OP_CREATE = 0,
    BK_OP_ADD,
    BK_OP_READ,
    BK_OP_OPEN,
    BK_OP_CLOSE,
    BK_OP_DELETE,
    BK_OP_RECOVER
};

struct bk_op {
    struct bks *s;  /* held */
    struct bkml *m; /* held */
    enum bk_op_kind kind;
    struct ml_store_req *req; /* the core's; NULL once done */
    struct bkh *h;            /* held: read/open/close target */
    struct ml_entry *entry;   /* add: referenced until bkc's callback */
    struct bkc_req br;
    bool waiting; /* queued on a handle (not in bkc) */
    struct bk_op *next;
    LIST_ENTRY(bk_op) link; /* s->ops */
};
LIST_HEAD(bk_op_list, bk_op);

struct bks {
    struct ml_factory *f;   /* borrowed; NULL once fini ran */
    struct bkc_client *bkc; /* borrowed */
    int refs;               /* 1 until fini + 1 per bkml + 1 per op */
    int inflight;
    bool dead;
    struct bkml_list all;
    struct bk_op_list ops;
    struct mg_map closing; /* ledger id -> borrowed struct bkh * whose close is in flight */
    int ensemble, write_q, ack_q;
};

/* ---- refcounts and ops ----------------------------------------------------------------- */

static void ml_bks_unref(struct bks *s)
{
    if (--s->refs > 0)
        return;
    mg_map_fini(&s->closing);
    mg_free(s);
}

static void ml_bk_handle_unref(struct bkh *h)
{
    if (--h->refs > 0)
        return;
    bkc_ledger_free(h->lh);
    mg_free(h);
}

/* Take h out of its ML's map and release its bkc handle (pending bkc requests on it
 * complete with -MG_ECANCELED later). */
static void ml_bk_handle_drop(void *p)
{
    struct bkh *h = p;
    if (h->gone)
        return;
    h->gone = true;
    mg_map_del_u64(&h->m->handles, (uint64_t)h->id);
    bkc_ledger_free(h->lh);
    h->lh = NULL;
    ml_bk_handle_unref(h);
}

static struct bkh *ml_bk_handle_new(struct bkml *m, int64_t id, struct bkc_ledger *lh, bool writer)
{
    struct bkh *h = mg_calloc(1, sizeof *h);
    h->m = m;
    h->refs = 1;
    h->id = id;
    h->lh = lh;
    h->writer = writer;
    struct bkh *old = mg_map_put_u64(&m->handles, (uint64_t)id, h);
    if (old) {
        old->gone = true;
        bkc_ledger_free(old->lh);
        old->lh = NULL;
        ml_bk_handle_unref(old);
    }
    return h;
}

static void ml_bkml_unref(struct bkml *m)
{
    if (--m->refs > 0)
        return;
    struct bks *s = m->s;
    mg_map_fini_free(&m->handles, ml_bk_handle_drop);
    TAILQ_REMOVE(&s->all, m, link);
    mg_free(m->name);
    mg_free(m);
    ml_bks_unref(s);
}

/* The ML's state here, made on its first request; NULL when the store is going away (the
 * request fails with -MG_ECLOSED). */
static struct bkml *ml_bkml_get(void *impl, struct ml_ledger *ml)
{
    struct bks *s = impl;
    if (s->dead)
        return NULL;
    struct bkml *m = ml->ledger_priv;
    if (m)
        return m;
    m = mg_calloc(1, sizeof *m);
    m->s = s;
    s->refs++;
    m->refs = 1; /* the ML's, until free_ml */
    m->ml = ml;
    m->name = mg_strdup(ml->name);
    mg_map_init(&m->handles);
    TAILQ_INSERT_TAIL(&s->all, m, link);
    ml->ledger_priv = m;
    return m;
}

/* For an op on ledger id of ml: the ML's state (NULL when the store is going away) and in
 * *h its handle of that ledger (NULL: none). */
static struct bkml *ml_bk_ledger(void *impl, struct ml_ledger *ml, int64_t id, struct bkh **h)
{
    struct bkml *m = ml_bkml_get(impl, ml);
    *h = m ? mg_map_get_u64(&m->handles, (uint64_t)id) : NULL;
    return m;
}

static struct bk_op *ml_bk_op_new(struct bks *s, struct bkml *m, enum bk_op_kind kind,
                                  struct ml_store_req *req)
{
    struct bk_op *op = mg_calloc(1, sizeof *op);
    op->s = s;
    op->m = m;
    op->kind = kind;
    op->req = req;
    op->br.data = op;
    s->refs++;
    s->inflight++;
    m->refs++;
    LIST_INSERT_HEAD(&s->ops, op, link);
    return op;
}

static void ml_bk_op_end(struct bk_op *op)
{
    struct bks *s = op->s;
    LIST_REMOVE(op, link);
    s->inflight--;
    bkc_req_fini(&op->br);
    ml_entry_unref(op->entry);
    if (op->h)
        ml_bk_handle_unref(op->h);
    ml_bkml_unref(op->m);
    mg_free(op);
    ml_bks_unref(s);
}

/* Complete the core's request of op with status (once). */
static void ml_bk_op_complete(struct bk_op *op, int status)
{
    struct ml_store_req *req = op->req;
    op->req = NULL;
    if (req) {
        req->errmsg = op->br.errmsg;
        req->cb(req, status);
    }
}

/* Complete op's request with status and end op. */
static void ml_bk_op_finish(struct bk_op *op, int status)
{
    ml_bk_op_complete(op, status);
    ml_bk_op_end(op);
}

/* The bkc call that starts op returned rc: if it failed, end op, leaving its request to the
 * caller (the store op fails synchronously). Returns rc. */
static int ml_bk_op_started(struct bk_op *op, int rc)
{
    if (rc < 0) {
        op->req = NULL;
        ml_bk_op_end(op);
    }
    return rc;
}

/* The bkc call that starts op, whose store op returned 0 already, failed with rc: end op
 * and complete its request with rc through the loop. */
static void ml_bk_op_fail_later(struct bk_op *op, int rc)
{
    struct ml_store_req *req = op->req;
    struct ml_factory *f = op->s->f;
    op->req = NULL;
    ml_bk_op_end(op);
    ml_store_complete_later(f, req, rc);
}

/* Start op now, or, when wait is given (a handle's list of ops waiting for an open or a
 * close), queue it there: it is not in bkc yet and starts when that is done. Returns 0. */
static int ml_bk_op_go(struct bk_op *op, struct bk_op **wait, void (*start)(struct bk_op *op))
{
    if (!wait) {
        start(op);
        return 0;
    }
    op->waiting = true;
    op->next = *wait;
    *wait = op;
    return 0;
}

/* End every op parked on *list (the store is going away: they never reached bkc). */
static void ml_bk_ops_end(struct bk_op **list)
{
    while (*list) {
        struct bk_op *w = *list;
        *list = w->next;
        ml_bk_op_end(w);
    }
}

/* ---- init / fini ---------------------------------------------------------------------- */

static int ml_bk_init(struct ml_factory *f, void **impl)
{
    const struct ml_config *cfg = &f->cfg;
    if (!cfg->bkc) {
        MG_ERROR(BK_MOD, "the bookkeeper store needs a bkc client");
        return -MG_EINVAL;
    }
    struct bks *s = mg_calloc(1, sizeof *s);
    s->f = f;
    s->bkc = cfg->bkc;
    s->refs = 1;
    TAILQ_INIT(&s->all);
    LIST_INIT(&s->ops);
    mg_map_init(&s->closing);
    s->ensemble = cfg->ensemble_size;
    s->write_q = cfg->write_quorum;
    s->ack_q = cfg->ack_quorum;
    *impl = s;
    return 0;
}

static void ml_bk_fini(void *impl)
{
    struct bks *s = impl;
    if (!s)
        return;
    s->dead = true;
    /* Every request the core has here completes now with -MG_ECANCELED. */
    struct bk_op *op;
    LIST_FOREACH(op, &s->ops, link)
    ml_bk_op_complete(op, -MG_ECANCELED);
    struct bkml *m, *mnext;
    for (m = TAILQ_FIRST(&s->all); m; m = mnext) {
        m->refs++;
        size_t it = 0;
        void *v;
        /* Reads and recoveries parked on handles never reached bkc: end them here. */
        while (mg_map_next(&m->handles, &it, NULL, NULL, &v)) {
            struct bkh *h = v;
            ml_bk_ops_end(&h->waiting);
            ml_bk_ops_end(&h->recover_waiters);
            struct ml_store_req *cw = h->close_waiters;
            h->close_waiters = NULL;
            ml_store_complete_all(cw, -MG_ECANCELED);
        }
        it = 0;
        while (mg_map_next(&m->handles, &it, NULL, NULL, &v))
            ml_bk_handle_drop(v);
        mnext = TAILQ_NEXT(m, link);
        ml_bkml_unref(m);
    }
    s->f = NULL;
    ml_bks_unref(s);
}

static int ml_bk_pending(void *impl)
{
    struct bks *s = impl;
    return s->inflight;
}

static void ml_bk_free_ml(void *impl, struct ml_ledger *ml)
{
    (void)impl;
    struct bkml *m = ml->ledger_priv;
    if (!m)
        return;
    ml->ledger_priv = NULL;
    m->ml = NULL;
    /* Handles nobody works on go now; a close in flight keeps its own. */
    size_t it = 0;
    void *v;
    while (mg_map_next(&m->handles, &it, NULL, NULL, &v)) {
        struct bkh *h = v;
        if (!h->closing && !h->opening)
            ml_bk_handle_drop(h);
    }
    ml_bkml_unref(m);
}

/* ---- recovery of the last ledger (load) ------------------------------------------------------ */

static void ml_bk_recover_done(struct bkc_req *br, int status)
{
    struct bk_op *op = br->data;
    struct bkml *m = op->m;
    struct ml_store_req *req = op->req;
    if (status == 0) {
        struct bkc_ledger *lh = br->ledger;
        br->ledger = NULL;
        if (op->s->dead || !m->ml || !req) {
            bkc_ledger_free(lh);
            status = -MG_ECANCELED;
        } else {
            req->last = bkc_ledger_lac(lh);
            req->length = bkc_ledger_length(lh);
            struct bkh *h = ml_bk_handle_new(m, bkc_ledger_id(lh), lh, false);
            h->closed = true; /* sealed: kept for reads */
        }
    }
    ml_bk_op_finish(op, status);
}

static void ml_bk_recover_start(struct bk_op *op)
{
    int rc = bkc_open(op->s->bkc, op->req->ledger_id, true, &op->br, ml_bk_recover_done);
    if (rc < 0)
        ml_bk_op_fail_later(op, rc);
}

static int ml_bk_recover_ledger(void *impl, struct ml_ledger *ml, struct ml_store_req *req)
{
    struct bkml *m = ml_bkml_get(impl, ml);
    if (!m)
        return -MG_ECLOSED;
    struct bk_op *op = ml_bk_op_new(m->s, m, BK_OP_RECOVER, req);
    /* A previous incarnation of the ML may be closing it: recover once that is done. */
    struct bkh *closing = mg_map_get_u64(&m->s->closing, (uint64_t)req->ledger_id);
    return ml_bk_op_go(op, closing ? &closing->recover_waiters : NULL, ml_bk_recover_start);
}

/* ---- ledgers ------------------------------------------------------------------------------ */

static void ml_bk_create_done(struct bkc_req *br, int status)
{
    struct bk_op *op = br->data;
    struct bkml *m = op->m;
    if (status == 0) {
        struct bkc_ledger *lh = br->ledger;
        br->ledger = NULL;
        if (op->s->dead || !m->ml || !op->req) {
            bkc_ledger_free(lh); /* stays OPEN and empty in BookKeeper: harmless */
            status = -MG_ECANCELED;
        } else {
            ml_bk_handle_new(m, br->ledger_id, lh, true);
            op->req->ledger_id = br->ledger_id;
            MG_DEBUG(BK_MOD, "%s: created ledger %" PRId64, m->name, br->ledger_id);
        }
    } else if (status != -MG_ECANCELED) {
        MG_WARN(BK_MOD, "%s: cannot create a ledger: %s %s", m->name, mg_strerror(status),
                br->errmsg);
    }
    ml_bk_op_finish(op, status);
}

static int ml_bk_create_ledger(void *impl, struct ml_ledger *ml, struct ml_store_req *req)
{
    struct bkml *m = ml_bkml_get(impl, ml);
    if (!m)
        return -MG_ECLOSED;
    struct bkc_kv kv[3] = {
        {"application", "pulsar", 6},
        {"component", "managed-ledger", 14},
        {"pulsar/managed-ledger", m->name, strlen(m->name)},
    };
    struct bkc_create_opts o = {
        .ensemble_size = m->s->ensemble,
        .write_quorum = m->s->write_q,
        .ack_quorum = m->s->ack_q,
        .custom = kv,
        .n_custom = 3,
    };
    struct bk_op *op = ml_bk_op_new(m->s, m, BK_OP_CREATE, req);
    return ml_bk_op_started(op, bkc_create(m->s->bkc, &o, &op->br, ml_bk_create_done));
}

static void ml_bk_add_done(struct bkc_req *br, int status)
{
    struct bk_op *op = br->data;
    ml_bk_op_finish(op, status);
}

static int ml_bk_add_entry(void *impl, struct ml_ledger *ml, struct ml_store_req *req)
{
    struct bkh *h;
    struct bkml *m = ml_bk_ledger(impl, ml, req->ledger_id, &h);
    if (!m)
        return -MG_ECLOSED;
    if (!h || !h->writer || !h->lh)
        return -MG_ENOTFOUND;
    struct bk_op *op = ml_bk_op_new(m->s, m, BK_OP_ADD, req);
    /* bkc borrows the evbuffer until its callback: the reference keeps it alive. */
    op->entry = ml_entry_ref(req->entry);
    /* The core decided the entry id (its position); bkc refuses any other than the next. */
    return ml_bk_op_started(op, bkc_add_crc(h->lh, req->entry->pos.entry, req->entry->data,
                                            req->entry->tail_crc, req->entry->tail_len, &op->br,
                                            ml_bk_add_done));
}

static void ml_bk_read_done(struct bkc_req *br, int status)
{
    struct bk_op *op = br->data;
    struct ml_store_req *req = op->req;
    if (status == -MG_ENOTFOUND || status == -MG_ECHECKSUM) {
        /* No replica has an entry of the range, or every copy is corrupt. */
        MG_DEBUG(BK_MOD, "%s: %s", op->m->name, br->errmsg);
        status = -MG_ENONRECOVERABLE;
    }
    if (status == 0 && req) {
        req->n = br->n_entries;
        req->entries = mg_malloc((size_t)(req->n ? req->n : 1) * sizeof *req->entries);
        for (int i = 0; i < br->n_entries; i++) {
            struct ml_entry *e = ml_entry_stored(op->s->f, br->entries[i]);
            br->entries[i] = NULL;
            e->pos = (struct ml_position){req->ledger_id, br->first_entry + i};
            req->entries[i] = e;
        }
        if (req->n == 0) {
            mg_free(req->entries);
            req->entries = NULL;
            status = -MG_ENOTFOUND;
        }
    }
    ml_bk_op_finish(op, status);
}

/* Read from an open handle; errors complete through the loop. */
static void ml_bk_read_start(struct bk_op *op)
{
    struct ml_store_req *req = op->req;
    struct bkh *h = op->h;
    int64_t lac = h->lh ? bkc_ledger_lac(h->lh) : -1;
    int64_t first = req->first < 0 ? 0 : req->first;
    int64_t last = req->last > lac ? lac : req->last;
    /* Beyond the LAC of an open handle: the bookies do not have entries the list has. */
    int rc = h->lh ? -MG_ENONRECOVERABLE : -MG_ENOTFOUND;
    if (h->lh && first <= last) {
        rc = bkc_read(h->lh, first, last, &op->br, ml_bk_read_done);
        if (rc == 0)
            return;
    }
    ml_bk_op_fail_later(op, rc);
}

static void ml_bk_open_done(struct bkc_req *br, int status)
{
    struct bk_op *op = br->data;
    struct bkh *h = op->h;
    if (op->s->dead) {
        if (status == 0)
            bkc_ledger_free(br->ledger);
        br->ledger = NULL;
        ml_bk_op_end(op);
        return;
    }
    h->opening = false;
    if (status == 0 && !h->gone) {
        h->lh = br->ledger;
        h->closed = true;
    } else if (status == 0) {
        bkc_ledger_free(br->ledger);
        status = -MG_ENOTFOUND;
    } else if (status == -MG_EPROTO || status == -MG_ECHECKSUM) {
        /* Corrupt metadata, or recovery found only corrupt copies: never readable. */
        MG_WARN(BK_MOD, "%s: ledger %" PRId64 " cannot be opened: %s %s", op->m->name, h->id,
                mg_strerror(status), br->errmsg);
        status = -MG_ENONRECOVERABLE;
    }
    br->ledger = NULL;
    struct bk_op *w = h->waiting;
    h->waiting = NULL;
    if (status < 0 && !h->gone)
        ml_bk_handle_drop(h); /* the next read tries again */
    while (w) {
        struct bk_op *next = w->next;
        w->waiting = false;
        if (status == 0) {
            ml_bk_read_start(w);
        } else {
            ml_bk_op_finish(w, status);
        }
        w = next;
    }
    if (status == 0 && !op->m->ml)
        ml_bk_handle_drop(h); /* the ML went meanwhile */
    ml_bk_op_end(op);
}

static int ml_bk_read_range(void *impl, struct ml_ledger *ml, struct ml_store_req *req)
{
    req->entries = NULL;
    req->n = 0;
    struct bkh *h;
    struct bkml *m = ml_bk_ledger(impl, ml, req->ledger_id, &h);
    if (!m)
        return -MG_ECLOSED;
    if (!h) {
        /* Not ours to write: a read handle, with recovery so that a ledger we abandoned
         * open (bookies were down) gets sealed where it really ends. */
        h = ml_bk_handle_new(m, req->ledger_id, NULL, false);
        h->opening = true;
        struct bk_op *oop = ml_bk_op_new(m->s, m, BK_OP_OPEN, NULL);
        oop->h = h;
        h->refs++;
        int rc = ml_bk_op_started(
            oop, bkc_open(m->s->bkc, req->ledger_id, true, &oop->br, ml_bk_open_done));
        if (rc < 0) {
            ml_bk_handle_drop(h);
            return rc;
        }
    }
    struct bk_op *op = ml_bk_op_new(m->s, m, BK_OP_READ, req);
    op->h = h;
    h->refs++;
    return ml_bk_op_go(op, h->opening ? &h->waiting : NULL, ml_bk_read_start);
}

static void ml_bk_close_done(struct bkc_req *br, int status)
{
    struct bk_op *op = br->data;
    struct bkh *h = op->h;
    if (op->s->dead) {
        ml_bk_op_end(op);
        return;
    }
    h->closing = false;
    if (mg_map_get_u64(&op->s->closing, (uint64_t)h->id) == h)
        mg_map_del_u64(&op->s->closing, (uint64_t)h->id);
    if (status == 0)
        h->closed = true;
    else if (status != -MG_ECANCELED)
        MG_WARN(BK_MOD, "%s: close of ledger %" PRId64 " failed: %s %s", op->m->name, h->id,
                mg_strerror(status), br->errmsg);
    struct ml_store_req *w = h->close_waiters;
    h->close_waiters = NULL;
    ml_bk_op_complete(op, status);
    ml_store_complete_all(w, status);
    struct bk_op *rw = h->recover_waiters;
    h->recover_waiters = NULL;
    while (rw) {
        struct bk_op *next = rw->next;
        rw->waiting = false;
        ml_bk_recover_start(rw);
        rw = next;
    }
    if (!op->m->ml)
        ml_bk_handle_drop(h);
    ml_bk_op_end(op);
}

static int ml_bk_close_ledger(void *impl, struct ml_ledger *ml, int64_t ledger_id,
                              struct ml_store_req *req)
{
    struct bkh *h;
    struct bkml *m = ml_bk_ledger(impl, ml, ledger_id, &h);
    if (!m)
        return -MG_ECLOSED;
    if (!h || !h->writer || !h->lh || h->closed) {
        if (req)
            ml_store_complete_later(m->s->f, req, 0);
        return 0;
    }
    if (h->closing) {
        if (req) {
            req->next_ = h->close_waiters;
            h->close_waiters = req;
        }
        return 0;
    }
    struct bk_op *op = ml_bk_op_new(m->s, m, BK_OP_CLOSE, req);
    op->h = h;
    h->refs++;
    int rc = ml_bk_op_started(op, bkc_close(h->lh, &op->br, ml_bk_close_done));
    if (rc < 0)
        return rc;
    h->closing = true;
    mg_map_put_u64(&m->s->closing, (uint64_t)ledger_id, h);
    return 0;
}

static void ml_bk_delete_done(struct bkc_req *br, int status)
{
    struct bk_op *op = br->data;
    if (status < 0 && status != -MG_ENOTFOUND && status != -MG_ECANCELED)
        MG_WARN(BK_MOD, "%s: delete of a ledger failed: %s", op->m->name, mg_strerror(status));
    ml_bk_op_finish(op, status);
}

static int ml_bk_delete_ledger(void *impl, struct ml_ledger *ml, int64_t ledger_id,
                               struct ml_store_req *req)
{
    struct bkh *h;
    struct bkml *m = ml_bk_ledger(impl, ml, ledger_id, &h);
    if (!m)
        return -MG_ECLOSED;
    if (h)
        ml_bk_handle_drop(h); /* no open handle may remain on a deleted ledger */
    struct bk_op *op = ml_bk_op_new(m->s, m, BK_OP_DELETE, req);
    return ml_bk_op_started(op, bkc_delete(m->s->bkc, ledger_id, &op->br, ml_bk_delete_done));
}

const struct ml_ledger_ops ml_ledgers_bookkeeper = {
    .name = "bookkeeper",
    .init = ml_bk_init,
    .fini = ml_bk_fini,
    .create_ledger = ml_bk_create_ledger,
    .add_entry = ml_bk_add_entry,
    .read_range = ml_bk_read_range,
    .close_ledger = ml_bk_close_ledger,
    .delete_ledger = ml_bk_delete_ledger,
    .recover_ledger = ml_bk_recover_ledger,
    .free_ml = ml_bk_free_ml,
    .pending = ml_bk_pending,
};
