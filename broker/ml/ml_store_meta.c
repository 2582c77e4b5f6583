/*
 * ml_store_meta.c - the managed ledger's metadata in the meta store (struct ml_meta_ops):
 * the ML's ledger list and its durable cursors' state, in Pulsar's layout and formats
 * (docs/metadata.md §6; broker/ml/README.md "Durable store"). The "bookkeeper" store pairs it
 * with ledgers on bookies (ml_store_bk.c).
 *
 *   /managed-ledgers/<ML name>                     ManagedLedgerInfo (ledger list)
 *   /managed-ledgers/<ML name>/<url-encoded cursor> ManagedCursorInfo, cursorsLedgerId=-1
 *
 * Happy path: load_ml reads the info node and restores the ledger list; once the core has
 * recovered the last ledger, load_cursors restores the cursors from the child nodes.
 * save_ml writes the info node with a CAS on its version, one write at a time per ML (later
 * requests ride on the next write). Cursor state is written at most once per
 * cursor_flush_interval_ms per cursor (a timer of the factory's loop), and at once on create
 * and close, also with a CAS.
 *
 * Failure modes: a lost CAS (BadVersion, or the node created/deleted under us) means
 * another broker took the ML: save_ml completes with -MG_EFENCED and cursor conflicts call
 * ml_fence. Other metadata errors fail save_ml (the core fails the step that needed it);
 * failed cursor writes are retried with backoff (the in-memory state is kept, so no ack is
 * lost while the broker runs), their failures logged together at most once per 10 s of the
 * loop's clock. fini completes every request the core still has here with -MG_ECANCELED;
 * meta completions that come later only release what they hold (the store's memory lives
 * until the last of them). A load_ml of an ML whose previous incarnation still has metadata
 * writes in flight waits for them, so it reads what they wrote and their versions.
 */
#include "meta/meta.h"
#include "ml/ml_int.h"
#include "util/alloc.h"
#include "util/err.h"
#include "util/log.h"
#include "util/url.h"

#include "MLDataFormats.pb-c.h"

#include <inttypes.h>
#include <stdio.h>
#include <string.h>
#include <sys/queue.h>

#define MS_MOD "ml-meta"
#define MS_ROOT "/managed-ledgers"

struct mms;
struct mml;
struct mop;

/* A durable cursor's persistence state. */
struct mcur {
    struct mml *m;   /* borrowed: owner (m->cursors) */
    char *name;      /* owned */
    char *path;      /* owned */
    int64_t version; /* META_VERSION_NONE: not stored yet */
    bool dirty, writing, removed;
    int fails;         /* consecutive failed writes: the retry backs off */
    uint8_t *next_buf; /* owned: a snapshot waiting for the write in flight */
    size_t next_len;
    struct mg_timer timer; /* the next write (flush interval, retry backoff) */
};

/* Per-ML state. Refcounted: the ML (until free_ml), each op, each successor link. */
struct mml {
    struct mms *s; /* held */
    int refs;
    struct ml_ledger *ml; /* borrowed; NULL after free_ml */
    char *name, *path;    /* owned */
    int64_t version;      /* of the info node; META_VERSION_NONE: not stored yet */
    bool fenced, deleted;
    struct mg_map cursors;                   /* name -> owned struct mcur * */
    struct ml_store_req *save_q, *save_tail; /* save_ml requests for the next write */
    bool saving;
    struct ml_store_req *load_req; /* a load waiting for the predecessor to drain */
    struct mml *successor;         /* held: the next incarnation waiting for us */
    TAILQ_ENTRY(mml) link;
};
TAILQ_HEAD(mml_list, mml);

/* One metadata operation in flight (a chain of meta requests). */
struct mop {
    struct mms *s;            /* held */
    struct mml *m;            /* held */
    struct ml_store_req *req; /* the core's (a chain via next_ for saves); NULL once done */
    struct mcur *cur;         /* cursor write: borrowed (alive while m is) */
    struct meta_req mr;
    void (*step)(struct mop *op, int status); /* next meta step */
    char **names;                             /* owned: children being walked */
    int n_names, idx;
    LIST_ENTRY(mop) link; /* s->ops */
};
LIST_HEAD(mop_list, mop);

struct mms {
    struct ml_factory *f;    /* borrowed; NULL once fini ran */
    struct mg_loop *loop;    /* borrowed: the factory's */
    struct meta_store *meta; /* borrowed */
    int refs;                /* 1 until fini + 1 per mml + 1 per op */
    int inflight;
    bool dead;
    struct mg_map mls; /* name -> borrowed newest struct mml */
    struct mml_list all;
    struct mop_list ops;
    int flush_ms, max_ranges;
    /* failed cursor writes: one log line per MS_FAIL_LOG_MS with a count */
    struct ml_meta_cursor_stats cst;
    int64_t fail_unlogged; /* failures since the last line */
    int64_t fail_log_at;   /* when the last line was logged */
    bool fail_logged_once; /* a line was ever logged */
    bool fail_reported;    /* a failure was logged since the last success */
    char fail_last[200];   /* the last failure, for the next line */
};

#define MS_FAIL_LOG_MS 10000 /* at most one "cursor not stored" line per this period */
#define MS_RETRY_MAX_SHIFT 4 /* retries back off to 16 flush intervals */

/* The metadata path of cursor name of m: Pulsar URL-encodes the name into the node's. */
static char *ml_ms_cursor_path(const struct mml *m, const char *name)
{
    char *enc = mg_url_encode(name);
    char *path = mg_asprintf("%s/%s", m->path, enc);
    mg_free(enc);
    return path;
}

/* ---- refcounts and ops ----------------------------------------------------------------- */

static void ml_mms_unref(struct mms *s)
{
    if (--s->refs > 0)
        return;
    mg_map_fini(&s->mls);
    mg_free(s);
}

static void ml_ms_cursor_free(void *p)
{
    struct mcur *cur = p;
    mg_timer_fini(&cur->timer);
    mg_free(cur->next_buf);
    mg_free(cur->name);
    mg_free(cur->path);
    mg_free(cur);
}

static void ml_ms_load_start(struct mml *m, struct ml_store_req *req);
static void ml_ms_cursor_timer_cb(struct mg_timer *t, void *arg);

static void ml_mml_unref(struct mml *m)
{
    if (--m->refs > 0)
        return;
    struct mms *s = m->s;
    mg_map_fini_free(&m->cursors, ml_ms_cursor_free);
    if (mg_map_get_str(&s->mls, m->name) == m)
        mg_map_del_str(&s->mls, m->name);
    TAILQ_REMOVE(&s->all, m, link);
    struct mml *succ = m->successor;
    mg_free(m->name);
    mg_free(m->path);
    mg_free(m);
    if (succ) {
        /* Our writes are done: the next incarnation may read the metadata now. */
        struct ml_store_req *req = succ->load_req;
        succ->load_req = NULL;
        if (req && !s->dead && succ->ml)
            ml_ms_load_start(succ, req);
        else if (req)
            req->cb(req, -MG_ECANCELED);
        ml_mml_unref(succ);
    }
    ml_mms_unref(s);
}

static struct mop *ml_ms_op_new(struct mml *m, struct ml_store_req *req)
{
    struct mms *s = m->s;
    struct mop *op = mg_calloc(1, sizeof *op);
    op->s = s;
    op->m = m;
    op->req = req;
    op->mr.data = op;
    s->refs++;
    s->inflight++;
    m->refs++;
    LIST_INSERT_HEAD(&s->ops, op, link);
    return op;
}

static void ml_ms_op_end(struct mop *op)
{
    struct mms *s = op->s;
    LIST_REMOVE(op, link);
    s->inflight--;
    meta_req_fini(&op->mr);
    mg_free_strv(op->names, op->n_names);
    ml_mml_unref(op->m);
    mg_free(op);
    ml_mms_unref(s);
}

/* Complete the core's request(s) of op with status (once). */
static void ml_ms_op_complete(struct mop *op, int status)
{
    struct ml_store_req *req = op->req;
    op->req = NULL;
    ml_store_complete_all(req, status);
}

/* Keep the children names of op->mr's answer in op->names (the next step reuses op->mr). */
static void ml_ms_op_take_children(struct mop *op)
{
    op->n_names = op->mr.n_children;
    op->names = mg_calloc((size_t)(op->n_names ? op->n_names : 1), sizeof *op->names);
    for (int i = 0; i < op->n_names; i++)
        op->names[i] = mg_strdup(op->mr.children[i]);
}

static void ml_ms_meta_step_cb(struct meta_req *mr, int status)
{
    struct mop *op = mr->data;
    op->step(op, status);
}

/* Start the meta request set up in op->mr (by call) with step as its completion. */
static void ml_ms_op_step(struct mop *op, void (*step)(struct mop *, int))
{
    meta_req_fini(&op->mr);
    memset(&op->mr, 0, sizeof op->mr);
    op->mr.data = op;
    op->step = step;
}

/* The start of op's meta request returned rc: if it failed, end op, leaving its request
 * (op->req) to the caller. Returns rc. */
static int ml_ms_op_started(struct mop *op, int rc)
{
    if (rc < 0) {
        op->req = NULL;
        ml_ms_op_end(op);
    }
    return rc;
}

/* Write buf (taken over) to path, expecting version (META_VERSION_NONE: a new node, its
 * parents created as needed), with step as the completion of op (fresh from ml_ms_op_new). */
static int ml_ms_op_put(struct mop *op, const char *path, uint8_t *buf, size_t len, int64_t version,
                        void (*step)(struct mop *, int))
{
    op->step = step;
    int rc = meta_put(op->s->meta, path, buf, len, version,
                      version == META_VERSION_NONE ? META_CREATE_PARENTS : 0, &op->mr,
                      ml_ms_meta_step_cb);
    mg_free(buf);
    return rc;
}

/* ---- encoding ------------------------------------------------------------------------- */

static uint8_t *ml_ms_encode_ml(const struct ml_ledger *ml, size_t *len)
{
    Pulsar__Ml__ManagedLedgerInfo info = PULSAR__ML__MANAGED_LEDGER_INFO__INIT;
    int n = ml->n_ledgers;
    Pulsar__Ml__ManagedLedgerInfo__LedgerInfo *lis = mg_calloc((size_t)(n ? n : 1), sizeof *lis);
    Pulsar__Ml__ManagedLedgerInfo__LedgerInfo **ptrs = mg_calloc((size_t)(n ? n : 1), sizeof *ptrs);
    for (int i = 0; i < n; i++) {
        const struct ml_ledger_info *li = &ml->ledgers[i];
        pulsar__ml__managed_ledger_info__ledger_info__init(&lis[i]);
        lis[i].ledgerid = li->id;
        lis[i].has_entries = true;
        lis[i].entries = li->entries;
        lis[i].has_size = true;
        lis[i].size = li->size;
        if (li->timestamp > 0) {
            lis[i].has_timestamp = true;
            lis[i].timestamp = li->timestamp;
        }
        ptrs[i] = &lis[i];
    }
    info.n_ledgerinfo = (size_t)n;
    info.ledgerinfo = ptrs;
    Pulsar__Ml__NestedPositionInfo term = PULSAR__ML__NESTED_POSITION_INFO__INIT;
    struct ml_position tpos;
    if (ml_terminated_position(ml, &tpos)) {
        term.ledgerid = tpos.ledger;
        term.entryid = tpos.entry;
        info.terminatedposition = &term;
    }
    *len = pulsar__ml__managed_ledger_info__get_packed_size(&info);
    uint8_t *buf = mg_malloc(*len ? *len : 1);
    pulsar__ml__managed_ledger_info__pack(&info, buf);
    mg_free(ptrs);
    mg_free(lis);
    return buf;
}

struct range_acc {
    Pulsar__Ml__MessageRange *ranges;
    Pulsar__Ml__MessageRange **ptrs;
    Pulsar__Ml__NestedPositionInfo *pos; /* 2 per range */
    int n, cap;
};

static void ml_ms_range_collect(struct ml_position lower, struct ml_position upper, void *arg)
{
    struct range_acc *a = arg;
    if (a->n >= a->cap)
        return;
    Pulsar__Ml__NestedPositionInfo *lo = &a->pos[2 * a->n], *hi = &a->pos[2 * a->n + 1];
    pulsar__ml__nested_position_info__init(lo);
    pulsar__ml__nested_position_info__init(hi);
    lo->ledgerid = lower.ledger;
    lo->entryid = lower.entry;
    hi->ledgerid = upper.ledger;
    hi->entryid = upper.entry;
    Pulsar__Ml__MessageRange *r = &a->ranges[a->n];
    pulsar__ml__message_range__init(r);
    r->lowerendpoint = lo;
    r->upperendpoint = hi;
    a->ptrs[a->n++] = r;
}

/* Snapshot of a cursor as ManagedCursorInfo (cursorsLedgerId = -1: the state is here).
 * More than max_ranges ranges: only the mark-delete position (redelivery, never a skip). */
static uint8_t *ml_ms_encode_cursor(const struct ml_cursor *c, int max_ranges, int64_t now_wall_ms,
                                    size_t *len)
{
    Pulsar__Ml__ManagedCursorInfo ci = PULSAR__ML__MANAGED_CURSOR_INFO__INIT;
    ci.cursorsledgerid = -1;
    ci.has_markdeleteledgerid = ci.has_markdeleteentryid = true;
    ci.markdeleteledgerid = c->mark_delete.ledger;
    ci.markdeleteentryid = c->mark_delete.entry;
    ci.has_lastactive = true;
    ci.lastactive = now_wall_ms;
    struct range_acc a = {0};
    if (c->n_ranges > 0 && c->n_ranges <= max_ranges) {
        a.cap = c->n_ranges;
        a.ranges = mg_calloc((size_t)a.cap, sizeof *a.ranges);
        a.ptrs = mg_calloc((size_t)a.cap, sizeof *a.ptrs);
        a.pos = mg_calloc((size_t)a.cap * 2, sizeof *a.pos);
        ml_cursor_foreach_range(c, ml_ms_range_collect, &a);
        ci.n_individualdeletedmessages = (size_t)a.n;
        ci.individualdeletedmessages = a.ptrs;
    }
    Pulsar__Ml__LongProperty *lp = NULL, **lptrs = NULL;
    if (c->n_props > 0) {
        lp = mg_calloc((size_t)c->n_props, sizeof *lp);
        lptrs = mg_calloc((size_t)c->n_props, sizeof *lptrs);
        for (int i = 0; i < c->n_props; i++) {
            pulsar__ml__long_property__init(&lp[i]);
            lp[i].name = (char *)c->props[i].name;
            lp[i].value = c->props[i].value;
            lptrs[i] = &lp[i];
        }
        ci.n_properties = (size_t)c->n_props;
        ci.properties = lptrs;
    }
    Pulsar__Ml__BatchedEntryDeletionIndexInfo *bi = NULL, **bptrs = NULL;
    Pulsar__Ml__NestedPositionInfo *bpos = NULL;
    size_t nb = 0;
    if (c->batch.count > 0 && c->batch.count <= (size_t)max_ranges) {
        bi = mg_calloc(c->batch.count, sizeof *bi);
        bptrs = mg_calloc(c->batch.count, sizeof *bptrs);
        bpos = mg_calloc(c->batch.count, sizeof *bpos);
        size_t it = 0;
        const char *key;
        size_t klen;
        void *v;
        while (mg_map_next(&c->batch, &it, &key, &klen, &v) && nb < c->batch.count) {
            struct ml_batch_set *bs = v;
            pulsar__ml__nested_position_info__init(&bpos[nb]);
            memcpy(&bpos[nb].ledgerid, key, 8);
            memcpy(&bpos[nb].entryid, key + 8, 8);
            pulsar__ml__batched_entry_deletion_index_info__init(&bi[nb]);
            bi[nb].position = &bpos[nb];
            bi[nb].n_deleteset = (size_t)bs->n_words;
            bi[nb].deleteset = bs->words;
            bptrs[nb] = &bi[nb];
            nb++;
        }
        ci.n_batchedentrydeletionindexinfo = nb;
        ci.batchedentrydeletionindexinfo = bptrs;
    }
    *len = pulsar__ml__managed_cursor_info__get_packed_size(&ci);
    uint8_t *buf = mg_malloc(*len ? *len : 1);
    pulsar__ml__managed_cursor_info__pack(&ci, buf);
    mg_free(a.ranges);
    mg_free(a.ptrs);
    mg_free(a.pos);
    mg_free(bi);
    mg_free(bptrs);
    mg_free(bpos);
    mg_free(lp);
    mg_free(lptrs);
    return buf;
}

/* ---- init / fini ---------------------------------------------------------------------- */

static int ml_ms_init(struct ml_factory *f, void **impl)
{
    const struct ml_config *cfg = &f->cfg;
    if (!cfg->meta) {
        MG_ERROR(MS_MOD, "the %s store keeps its metadata in a metadata store: none given",
                 f->store);
        return -MG_EINVAL;
    }
    struct mms *s = mg_calloc(1, sizeof *s);
    s->f = f;
    s->loop = f->loop;
    s->meta = cfg->meta;
    s->refs = 1;
    mg_map_init(&s->mls);
    TAILQ_INIT(&s->all);
    LIST_INIT(&s->ops);
    s->flush_ms = cfg->cursor_flush_interval_ms == 0 ? 1000 : cfg->cursor_flush_interval_ms;
    s->max_ranges =
        cfg->max_unacked_ranges_to_persist > 0 ? cfg->max_unacked_ranges_to_persist : 1000;
    *impl = s;
    return 0;
}

static void ml_ms_fini(void *impl)
{
    struct mms *s = impl;
    if (!s)
        return;
    s->dead = true;
    /* Every request the core has here completes now with -MG_ECANCELED. */
    struct mop *op;
    LIST_FOREACH(op, &s->ops, link)
    ml_ms_op_complete(op, -MG_ECANCELED);
    struct mml *m, *mnext;
    for (m = TAILQ_FIRST(&s->all); m; m = mnext) {
        m->refs++;
        struct ml_store_req *q = m->save_q;
        m->save_q = m->save_tail = NULL;
        ml_store_complete_all(q, -MG_ECANCELED);
        if (m->load_req) {
            struct ml_store_req *req = m->load_req;
            m->load_req = NULL;
            req->cb(req, -MG_ECANCELED);
        }
        size_t it = 0;
        void *v;
        while (mg_map_next(&m->cursors, &it, NULL, NULL, &v)) {
            struct mcur *cur = v;
            mg_timer_stop(&cur->timer);
        }
        mnext = TAILQ_NEXT(m, link);
        ml_mml_unref(m);
    }
    s->f = NULL;
    ml_mms_unref(s);
}

static int ml_ms_pending(void *impl)
{
    struct mms *s = impl;
    return s->inflight;
}

/* ---- per-ML state ----------------------------------------------------------------------- */

static struct mml *ml_mml_of(struct ml_ledger *ml)
{
    return ml ? ml->meta_priv : NULL;
}

/* The store's state of ml for a call of the core: NULL when the store is gone or never
 * loaded ml (the call fails with -MG_ECLOSED). */
static struct mml *ml_ms_live(void *impl, struct ml_ledger *ml)
{
    struct mms *s = impl;
    return s->dead ? NULL : ml_mml_of(ml);
}

static void ml_ms_free_ml(void *impl, struct ml_ledger *ml)
{
    (void)impl;
    struct mml *m = ml_mml_of(ml);
    if (!m)
        return;
    ml->meta_priv = NULL;
    m->ml = NULL;
    size_t it = 0;
    void *v;
    while (mg_map_next(&m->cursors, &it, NULL, NULL, &v)) {
        struct mcur *cur = v;
        mg_timer_stop(&cur->timer);
    }
    ml_mml_unref(m);
}

/* ---- load (open) -------------------------------------------------------------------------- */

static void ml_ms_load_finish(struct mop *op, int status)
{
    ml_ms_op_complete(op, status);
    ml_ms_op_end(op);
}

static bool ml_ms_load_gone(struct mop *op)
{
    if (op->s->dead || !op->m->ml || !op->req) {
        ml_ms_load_finish(op, -MG_ECANCELED);
        return true;
    }
    return false;
}

static void ml_ms_load_next_cursor(struct mop *op);

static void ml_ms_restore_cursor(struct mop *op, const char *name, const uint8_t *buf, size_t len)
{
    struct mml *m = op->m;
    struct ml_ledger *ml = m->ml;
    Pulsar__Ml__ManagedCursorInfo *ci = pulsar__ml__managed_cursor_info__unpack(NULL, len, buf);
    if (!ci) {
        MG_WARN(MS_MOD, "%s: cursor %s: undecodable state, skipped", m->name, name);
        return;
    }
    struct ml_position md = ML_POS_EARLIEST;
    if (ci->has_markdeleteledgerid && ci->has_markdeleteentryid)
        md = (struct ml_position){ci->markdeleteledgerid, ci->markdeleteentryid};
    else if (ml->n_ledgers > 0)
        md = (struct ml_position){ml->ledgers[0].id, -1};
    if (ci->cursorsledgerid != -1)
        MG_WARN(MS_MOD,
                "%s: cursor %s keeps its position in cursor ledger %" PRId64
                " (not supported): using the node's mark-delete, entries after it come again",
                m->name, name, ci->cursorsledgerid);
    struct ml_cursor *c = ml_restore_cursor(ml, name, md);
    for (size_t i = 0; i < ci->n_individualdeletedmessages; i++) {
        const Pulsar__Ml__MessageRange *r = ci->individualdeletedmessages[i];
        if (!r->lowerendpoint || !r->upperendpoint)
            continue;
        ml_cursor_restore_range(
            c, (struct ml_position){r->lowerendpoint->ledgerid, r->lowerendpoint->entryid},
            (struct ml_position){r->upperendpoint->ledgerid, r->upperendpoint->entryid});
    }
    for (size_t i = 0; i < ci->n_batchedentrydeletionindexinfo; i++) {
        const Pulsar__Ml__BatchedEntryDeletionIndexInfo *b = ci->batchedentrydeletionindexinfo[i];
        if (!b->position || b->n_deleteset == 0 || b->n_deleteset > 1024)
            continue;
        ml_cursor_restore_batch(c,
                                (struct ml_position){b->position->ledgerid, b->position->entryid},
                                b->deleteset, (int)b->n_deleteset);
    }
    if (ci->n_properties > 0) {
        struct ml_cursor_prop *props = mg_calloc(ci->n_properties, sizeof *props);
        int n = 0;
        for (size_t i = 0; i < ci->n_properties; i++)
            if (ci->properties[i] && ci->properties[i]->name)
                props[n++] =
                    (struct ml_cursor_prop){ci->properties[i]->name, ci->properties[i]->value};
        ml_cursor_restore_props(c, props, n);
        mg_free(props);
    }
    pulsar__ml__managed_cursor_info__free_unpacked(ci, NULL);
}

static void ml_ms_load_got_cursor(struct mop *op, int status)
{
    if (ml_ms_load_gone(op))
        return;
    struct mml *m = op->m;
    if (status < 0 && status != -MG_ENOTFOUND) {
        ml_ms_load_finish(op, status);
        return;
    }
    if (status == 0) {
        char *name = mg_url_decode(op->names[op->idx], strlen(op->names[op->idx]), NULL);
        struct mcur *cur = mg_calloc(1, sizeof *cur);
        cur->m = m;
        mg_timer_init(&cur->timer, m->s->loop, ml_ms_cursor_timer_cb, cur);
        cur->name = name;
        cur->path = mg_asprintf("%s/%s", m->path, op->names[op->idx]);
        cur->version = op->mr.stat.version;
        struct mcur *old = mg_map_put_str(&m->cursors, name, cur);
        if (old)
            ml_ms_cursor_free(old);
        ml_ms_restore_cursor(op, name, (const uint8_t *)op->mr.value, op->mr.len);
    }
    op->idx++;
    ml_ms_load_next_cursor(op);
}

static void ml_ms_load_next_cursor(struct mop *op)
{
    if (op->idx >= op->n_names) {
        MG_DEBUG(MS_MOD, "%s: loaded: %d ledgers, %d cursors", op->m->name, op->m->ml->n_ledgers,
                 op->n_names);
        ml_ms_load_finish(op, 0);
        return;
    }
    char *path = mg_asprintf("%s/%s", op->m->path, op->names[op->idx]);
    ml_ms_op_step(op, ml_ms_load_got_cursor);
    int rc = meta_get(op->s->meta, path, &op->mr, ml_ms_meta_step_cb);
    mg_free(path);
    if (rc < 0)
        ml_ms_load_finish(op, rc);
}

static void ml_ms_load_got_children(struct mop *op, int status)
{
    if (ml_ms_load_gone(op))
        return;
    if (status == -MG_ENOTFOUND) {
        op->n_names = 0;
    } else if (status < 0) {
        ml_ms_load_finish(op, status);
        return;
    } else {
        ml_ms_op_take_children(op);
    }
    op->idx = 0;
    ml_ms_load_next_cursor(op);
}

/* Start an op for req that lists m's cursor nodes and goes on with step. 0, or < 0 (the op
 * is gone and req untouched). */
static int ml_ms_list_cursors(struct mml *m, struct ml_store_req *req,
                              void (*step)(struct mop *op, int status))
{
    struct mop *op = ml_ms_op_new(m, req);
    op->step = step;
    return ml_ms_op_started(op, meta_children(m->s->meta, m->path, &op->mr, ml_ms_meta_step_cb));
}

static int ml_ms_load_cursors(void *impl, struct ml_ledger *ml, struct ml_store_req *req)
{
    struct mml *m = ml_ms_live(impl, ml);
    if (!m)
        return -MG_ECLOSED;
    return ml_ms_list_cursors(m, req, ml_ms_load_got_children);
}

static void ml_ms_load_got_info(struct mop *op, int status)
{
    if (ml_ms_load_gone(op))
        return;
    struct mml *m = op->m;
    struct ml_ledger *ml = m->ml;
    if (status == -MG_ENOTFOUND) {
        m->version = META_VERSION_NONE;
        ml_ms_load_finish(op, 0);
        return;
    }
    if (status < 0) {
        ml_ms_load_finish(op, status);
        return;
    }
    m->version = op->mr.stat.version;
    Pulsar__Ml__ManagedLedgerInfo *info =
        pulsar__ml__managed_ledger_info__unpack(NULL, op->mr.len, (const uint8_t *)op->mr.value);
    if (!info) {
        MG_ERROR(MS_MOD, "%s: undecodable ManagedLedgerInfo", m->name);
        ml_ms_load_finish(op, -MG_EPROTO);
        return;
    }
    int64_t prev = INT64_MIN;
    for (size_t i = 0; i < info->n_ledgerinfo; i++) {
        const Pulsar__Ml__ManagedLedgerInfo__LedgerInfo *li = info->ledgerinfo[i];
        if (li->ledgerid <= prev)
            continue; /* never out of order in valid metadata */
        prev = li->ledgerid;
        ml_restore_ledger(ml, li->ledgerid, li->has_entries ? li->entries : 0,
                          li->has_size ? li->size : 0);
        ml->ledgers[ml->n_ledgers - 1].timestamp = li->has_timestamp ? li->timestamp : 0;
    }
    if (info->terminatedposition)
        ml_restore_terminated(ml, (struct ml_position){info->terminatedposition->ledgerid,
                                                       info->terminatedposition->entryid});
    pulsar__ml__managed_ledger_info__free_unpacked(info, NULL);
    ml_ms_load_finish(op, 0);
}

static void ml_ms_load_start(struct mml *m, struct ml_store_req *req)
{
    struct mop *op = ml_ms_op_new(m, req);
    op->step = ml_ms_load_got_info;
    int rc = ml_ms_op_started(op, meta_get(m->s->meta, m->path, &op->mr, ml_ms_meta_step_cb));
    if (rc < 0)
        ml_store_complete_later(m->s->f, req, rc);
}

static int ml_ms_load_ml(void *impl, struct ml_ledger *ml, struct ml_store_req *req)
{
    struct mms *s = impl;
    if (s->dead)
        return -MG_ECLOSED;
    struct mml *m = mg_calloc(1, sizeof *m);
    m->s = s;
    s->refs++;
    m->refs = 1;
    m->ml = ml;
    m->name = mg_strdup(ml->name);
    m->path = mg_asprintf("%s/%s", MS_ROOT, ml->name);
    m->version = META_VERSION_NONE;
    mg_map_init(&m->cursors);
    TAILQ_INSERT_TAIL(&s->all, m, link);
    ml->meta_priv = m;
    struct mml *prev = mg_map_put_str(&s->mls, m->name, m);
    if (prev && prev != m) {
        /* The previous incarnation still writes: wait for it (ml_mml_unref starts us). */
        while (prev->successor)
            prev = prev->successor;
        prev->successor = m;
        m->refs++;
        m->load_req = req;
        return 0;
    }
    ml_ms_load_start(m, req);
    return 0;
}

/* ---- ML info writes ------------------------------------------------------------------------ */

static void ml_ms_save_start(struct mml *m);

static void ml_ms_save_done(struct mop *op, int status)
{
    struct mml *m = op->m;
    if (!op->s->dead) {
        if (status == 0) {
            m->version = op->mr.stat.version;
        } else if (status == -MG_EBUSY || status == -MG_EEXIST ||
                   (status == -MG_ENOTFOUND && m->version >= 0)) {
            MG_WARN(MS_MOD, "%s: ManagedLedgerInfo changed by someone else: fenced", m->name);
            m->fenced = true;
            status = -MG_EFENCED;
        }
    }
    m->saving = false;
    ml_ms_op_complete(op, status);
    if (!op->s->dead && !m->saving && m->save_q)
        ml_ms_save_start(m);
    ml_ms_op_end(op);
}

static void ml_ms_save_start(struct mml *m)
{
    struct ml_store_req *batch = m->save_q;
    m->save_q = m->save_tail = NULL;
    struct mop *op = ml_ms_op_new(m, batch);
    if (m->fenced) {
        ml_ms_op_complete(op, -MG_EFENCED);
        ml_ms_op_end(op);
        return;
    }
    MG_ASSERT(m->ml); /* queued requests hold the ML */
    size_t len;
    uint8_t *buf = ml_ms_encode_ml(m->ml, &len);
    m->saving = true;
    int rc = ml_ms_op_started(op, ml_ms_op_put(op, m->path, buf, len, m->version, ml_ms_save_done));
    if (rc < 0) {
        m->saving = false;
        struct ml_store_req *req = batch;
        while (req) {
            struct ml_store_req *next = req->next_;
            req->next_ = NULL;
            ml_store_complete_later(m->s->f, req, rc);
            req = next;
        }
    }
}

static int ml_ms_save_ml(void *impl, struct ml_ledger *ml, struct ml_store_req *req)
{
    struct mml *m = ml_ms_live(impl, ml);
    if (!m)
        return -MG_ECLOSED;
    if (m->fenced)
        return -MG_EFENCED;
    req->next_ = NULL;
    if (m->save_tail)
        m->save_tail->next_ = req;
    else
        m->save_q = req;
    m->save_tail = req;
    if (!m->saving)
        ml_ms_save_start(m);
    return 0;
}

/* ---- cursor writes --------------------------------------------------------------------------- */

static void ml_ms_cursor_write(struct mcur *cur, uint8_t *buf, size_t len);
static void ml_ms_cursor_arm(struct mcur *cur);

static bool ml_ms_meta_conflict(int status, int64_t version)
{
    return status == -MG_EBUSY || status == -MG_EEXIST || (status == -MG_ENOTFOUND && version >= 0);
}

static void ml_ms_cursor_delete_done(struct mop *op, int status)
{
    if (status < 0 && status != -MG_ENOTFOUND && status != -MG_ECANCELED)
        MG_WARN(MS_MOD, "%s: cursor node not deleted: %s", op->m->name, mg_strerror(status));
    ml_ms_op_complete(op, status == -MG_ENOTFOUND ? 0 : status);
    ml_ms_op_end(op);
}

static void ml_ms_cursor_delete_node(struct mml *m, const char *path, struct ml_store_req *req)
{
    struct mop *op = ml_ms_op_new(m, req);
    op->step = ml_ms_cursor_delete_done;
    int rc = ml_ms_op_started(
        op, meta_delete(m->s->meta, path, META_VERSION_ANY, &op->mr, ml_ms_meta_step_cb));
    if (rc < 0 && req)
        ml_store_complete_later(m->s->f, req, rc);
}

/* A cursor write failed (the metadata store is unreachable or full): the cursor retries
 * with backoff; the failures of every cursor are reported together, one line per
 * MS_FAIL_LOG_MS with their count and the last cause. */
static void ml_ms_cursor_failed(struct mcur *cur, int status)
{
    struct mms *s = cur->m->s;
    cur->dirty = true;
    cur->fails++;
    s->cst.write_failures++;
    s->fail_unlogged++;
    snprintf(s->fail_last, sizeof s->fail_last, "%s cursor %s: %s", cur->m->name, cur->name,
             mg_strerror(status));
    int64_t now = (int64_t)mg_loop_mono_ms(s->loop);
    if (s->fail_logged_once && now - s->fail_log_at < MS_FAIL_LOG_MS)
        return;
    MG_WARN(MS_MOD,
            "cursor state not stored: %" PRId64 " failed write(s)%s (last: %s); the positions "
            "are kept in memory, retrying with backoff",
            s->fail_unlogged, s->fail_logged_once ? " since the last report" : "", s->fail_last);
    s->cst.log_lines++;
    s->fail_unlogged = 0;
    s->fail_log_at = now;
    s->fail_logged_once = true;
    s->fail_reported = true;
}

static void ml_ms_cursor_stored(struct mcur *cur)
{
    struct mms *s = cur->m->s;
    cur->fails = 0;
    if (!s->fail_reported)
        return;
    s->fail_reported = false;
    MG_INFO(MS_MOD, "cursor state is stored again (%" PRId64 " failed write(s) in all)",
            s->cst.write_failures);
    s->cst.log_lines++;
}

void ml_meta_cursor_stats(struct ml_factory *f, struct ml_meta_cursor_stats *out)
{
    MG_ASSERT(f->mops == &ml_meta_store);
    struct mms *s = f->mimpl;
    *out = s->cst;
}

static void ml_ms_cursor_written(struct mop *op, int status)
{
    struct mcur *cur = op->cur;
    struct mml *m = op->m;
    if (op->s->dead) {
        ml_ms_op_end(op);
        return;
    }
    cur->writing = false;
    if (status == 0) {
        cur->version = op->mr.stat.version;
        ml_ms_cursor_stored(cur);
    } else if (ml_ms_meta_conflict(status, cur->version) && !cur->removed) {
        MG_WARN(MS_MOD, "%s: cursor %s changed by someone else: fenced", m->name, cur->name);
        m->fenced = true;
        if (m->ml)
            ml_fence(m->ml);
    } else if (status < 0) {
        ml_ms_cursor_failed(cur, status);
    }
    if (cur->removed) {
        mg_map_del_str(&m->cursors, cur->name);
        ml_ms_cursor_delete_node(m, cur->path, NULL);
        ml_ms_cursor_free(cur);
    } else if (m->fenced || m->deleted) {
        mg_free(cur->next_buf);
        cur->next_buf = NULL;
    } else if (cur->next_buf) {
        uint8_t *buf = cur->next_buf;
        cur->next_buf = NULL;
        ml_ms_cursor_write(cur, buf, cur->next_len);
    } else if (cur->dirty) {
        ml_ms_cursor_arm(cur);
    }
    ml_ms_op_end(op);
}

/* Write buf (taken over) to the cursor's node, or park it behind the write in flight. */
static void ml_ms_cursor_write(struct mcur *cur, uint8_t *buf, size_t len)
{
    struct mml *m = cur->m;
    if (cur->writing) {
        mg_free(cur->next_buf);
        cur->next_buf = buf;
        cur->next_len = len;
        return;
    }
    struct mop *op = ml_ms_op_new(m, NULL);
    op->cur = cur;
    cur->writing = true;
    int rc = ml_ms_op_put(op, cur->path, buf, len, cur->version, ml_ms_cursor_written);
    if (rc < 0) {
        cur->writing = false;
        ml_ms_cursor_failed(cur, rc);
        ml_ms_op_end(op);
        ml_ms_cursor_arm(cur);
    }
}

static struct ml_cursor *ml_ms_find_cursor(struct ml_ledger *ml, const char *name)
{
    for (int i = 0; ml && i < ml->n_cursors; i++)
        if (ml->cursors[i]->durable && strcmp(ml->cursors[i]->name, name) == 0)
            return ml->cursors[i];
    return NULL;
}

static void ml_ms_cursor_timer_cb(struct mg_timer *t, void *arg)
{
    struct mcur *cur = arg;
    struct mml *m = cur->m;
    (void)t;
    if (m->s->dead || m->fenced || m->deleted || cur->writing || !cur->dirty)
        return;
    struct ml_cursor *c = ml_ms_find_cursor(m->ml, cur->name);
    if (!c)
        return;
    cur->dirty = false;
    size_t len;
    uint8_t *buf = ml_ms_encode_cursor(c, m->s->max_ranges, mg_loop_wall_ms(m->s->loop), &len);
    ml_ms_cursor_write(cur, buf, len);
}

static void ml_ms_cursor_arm(struct mcur *cur)
{
    struct mms *s = cur->m->s;
    if (s->dead || !cur->m->ml)
        return;
    if (mg_timer_pending(&cur->timer))
        return;
    int ms = s->flush_ms > 0 ? s->flush_ms : 0;
    if (cur->fails > 0) {
        /* A retry: back off, doubling up to 16 flush intervals (100 ms when every change
         * is written at once), so a full or unreachable store is not hammered. */
        int base = ms > 0 ? ms : 100;
        int shift = cur->fails - 1 < MS_RETRY_MAX_SHIFT ? cur->fails - 1 : MS_RETRY_MAX_SHIFT;
        ms = base << shift;
    }
    mg_timer_start(&cur->timer, (uint64_t)ms);
}

static int ml_ms_save_cursor(void *impl, struct ml_ledger *ml, struct ml_cursor *c, bool now,
                             struct ml_store_req *req)
{
    struct mml *m = ml_ms_live(impl, ml);
    if (!m)
        return -MG_ECLOSED;
    if (m->fenced)
        return -MG_EFENCED;
    if (m->deleted)
        return -MG_ECLOSED;
    MG_ASSERT(!req); /* the core writes cursors fire and forget */
    struct mms *s = m->s;
    struct mcur *cur = mg_map_get_str(&m->cursors, c->name);
    if (!cur) {
        cur = mg_calloc(1, sizeof *cur);
        cur->m = m;
        mg_timer_init(&cur->timer, s->loop, ml_ms_cursor_timer_cb, cur);
        cur->name = mg_strdup(c->name);
        cur->path = ml_ms_cursor_path(m, c->name);
        cur->version = META_VERSION_NONE;
        mg_map_put_str(&m->cursors, cur->name, cur);
        now = true; /* a new subscription is stored at once */
    }
    if (now || s->flush_ms < 0) {
        cur->dirty = false;
        mg_timer_stop(&cur->timer);
        size_t len;
        uint8_t *buf = ml_ms_encode_cursor(c, s->max_ranges, mg_loop_wall_ms(s->loop), &len);
        ml_ms_cursor_write(cur, buf, len);
    } else {
        cur->dirty = true;
        if (!cur->writing)
            ml_ms_cursor_arm(cur);
    }
    return 0;
}

static int ml_ms_remove_cursor(void *impl, struct ml_ledger *ml, const char *name,
                               struct ml_store_req *req)
{
    struct mml *m = ml_ms_live(impl, ml);
    if (!m)
        return -MG_ECLOSED;
    struct mcur *cur = mg_map_get_str(&m->cursors, name);
    if (cur && cur->writing) {
        /* Deleted once the write in flight is back (ml_ms_cursor_written). */
        cur->removed = true;
        mg_free(cur->next_buf);
        cur->next_buf = NULL;
        mg_timer_stop(&cur->timer);
        if (req)
            ml_store_complete_later(m->s->f, req, 0);
        return 0;
    }
    char *path;
    if (cur) {
        mg_map_del_str(&m->cursors, name);
        path = mg_strdup(cur->path);
        ml_ms_cursor_free(cur);
    } else {
        path = ml_ms_cursor_path(m, name);
    }
    ml_ms_cursor_delete_node(m, path, req);
    mg_free(path);
    return 0;
}

/* ---- ML delete ---------------------------------------------------------------------------- */

static void ml_ms_remove_step(struct mop *op, int status);

static void ml_ms_remove_node_done(struct mop *op, int status)
{
    ml_ms_op_complete(op, status == -MG_ENOTFOUND ? 0 : status);
    ml_ms_op_end(op);
}

static void ml_ms_remove_next(struct mop *op)
{
    if (op->s->dead) {
        ml_ms_op_end(op);
        return;
    }
    int rc;
    if (op->idx < op->n_names) {
        char *path = mg_asprintf("%s/%s", op->m->path, op->names[op->idx++]);
        ml_ms_op_step(op, ml_ms_remove_step);
        rc = meta_delete(op->s->meta, path, META_VERSION_ANY, &op->mr, ml_ms_meta_step_cb);
        mg_free(path);
    } else {
        ml_ms_op_step(op, ml_ms_remove_node_done);
        rc = meta_delete(op->s->meta, op->m->path, META_VERSION_ANY, &op->mr, ml_ms_meta_step_cb);
    }
    if (rc < 0) {
        ml_ms_op_complete(op, rc);
        ml_ms_op_end(op);
    }
}

static void ml_ms_remove_step(struct mop *op, int status)
{
    (void)status; /* a child already gone is fine; the node delete reports the rest */
    ml_ms_remove_next(op);
}

static void ml_ms_remove_got_children(struct mop *op, int status)
{
    if (status == 0) {
        ml_ms_op_take_children(op);
    } else if (status != -MG_ENOTFOUND) {
        ml_ms_op_complete(op, status);
        ml_ms_op_end(op);
        return;
    }
    ml_ms_remove_next(op);
}

static int ml_ms_remove_ml(void *impl, struct ml_ledger *ml, struct ml_store_req *req)
{
    struct mml *m = ml_ms_live(impl, ml);
    if (!m)
        return -MG_ECLOSED;
    m->deleted = true;
    return ml_ms_list_cursors(m, req, ml_ms_remove_got_children);
}

const struct ml_meta_ops ml_meta_store = {
    .name = "meta",
    .init = ml_ms_init,
    .fini = ml_ms_fini,
    .load_ml = ml_ms_load_ml,
    .load_cursors = ml_ms_load_cursors,
    .save_ml = ml_ms_save_ml,
    .save_cursor = ml_ms_save_cursor,
    .remove_cursor = ml_ms_remove_cursor,
    .remove_ml = ml_ms_remove_ml,
    .free_ml = ml_ms_free_ml,
    .pending = ml_ms_pending,
};
