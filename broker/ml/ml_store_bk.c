/*
 * ml_store_bk.c - the "bookkeeper" managed-ledger store: ledgers on a quorum of bookies
 * (bkc), the ML's ledger list and its cursors' state in the metadata store, in Pulsar's
 * layout and formats (docs/metadata.md §6; broker/ml/README.md "Durable store").
 *
 *   /managed-ledgers/<ML name>                     ManagedLedgerInfo (ledger list)
 *   /managed-ledgers/<ML name>/<url-encoded cursor> ManagedCursorInfo, cursorsLedgerId=-1
 *
 * Happy path: load_ml reads the info node, restores the ledger list, opens the last ledger
 * with recovery (fencing a previous writer, learning its true last entry) and restores the
 * cursors from the child nodes. create_ledger = bkc_create with Pulsar's custom metadata;
 * add_entry = bkc_add on the writer handle (the entry is referenced until bkc's callback);
 * read_range = bkc_read on the writer handle or on a read handle opened (with recovery, so
 * a ledger we abandoned open gets sealed) on first use; close/delete = bkc_close/bkc_delete.
 * save_ml writes the info node with a CAS on its version, one write at a time per ML (later
 * requests ride on the next write). Cursor state is written at most once per
 * cursor_flush_interval_ms per cursor, and at once on create and close, also with a CAS.
 *
 * Failure modes: a lost CAS (BadVersion, or the node created/deleted under us) means
 * another broker took the ML: save_ml completes with -MG_EFENCED and cursor conflicts call
 * ml_fence. Other metadata errors fail save_ml (the core fails the step that needed it);
 * failed cursor writes are retried at the next flush (the in-memory state is kept, so no
 * ack is lost while the broker runs). bkc errors pass through (-MG_EIO, -MG_EFENCED...).
 * fini completes every request the core still has here with -MG_ECANCELED; bkc and meta
 * completions that come later only release what they hold (the store's memory lives until
 * the last of them). A load_ml of an ML whose previous incarnation still has metadata
 * writes in flight waits for them, so it reads what they wrote and their versions.
 */
#include "bkc/bkc.h"
#include "meta/meta.h"
#include "ml/ml_int.h"
#include "util/alloc.h"
#include "util/err.h"
#include "util/log.h"

#include "MLDataFormats.pb-c.h"

#include <event2/buffer.h>
#include <event2/event.h>
#include <inttypes.h>
#include <stdio.h>
#include <string.h>
#include <sys/queue.h>
#include <time.h>

#define BK_MOD "ml-bk"
#define BK_ROOT "/managed-ledgers"

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
};

/* A durable cursor's persistence state. */
struct bkcur {
    struct bkml *m;  /* borrowed: owner (m->cursors) */
    char *name;      /* owned */
    char *path;      /* owned */
    int64_t version; /* META_VERSION_NONE: not stored yet */
    bool dirty, writing, removed;
    int fails;         /* consecutive failed writes: the retry backs off */
    uint8_t *next_buf; /* owned: a snapshot waiting for the write in flight */
    size_t next_len;
    struct event *timer; /* owned */
};

/* Per-ML state. Refcounted: the ML (until free_ml), each op, each successor link. */
struct bkml {
    struct bks *s; /* held */
    int refs;
    struct ml_ledger *ml; /* borrowed; NULL after free_ml */
    char *name, *path;    /* owned */
    int64_t version;      /* of the info node; META_VERSION_NONE: not stored yet */
    bool fenced, deleted;
    struct mg_map handles;                   /* id -> owned ref struct bkh * */
    struct mg_map cursors;                   /* name -> owned struct bkcur * */
    struct ml_store_req *save_q, *save_tail; /* save_ml requests for the next write */
    bool saving;
    struct ml_store_req *load_req; /* a load waiting for the predecessor to drain */
    struct bkml *successor;        /* held: the next incarnation waiting for us */
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
    BK_OP_META
};

struct bk_op {
    struct bks *s;  /* held */
    struct bkml *m; /* held, may be NULL */
    enum bk_op_kind kind;
    struct ml_store_req *req; /* the core's (a chain via next_ for saves); NULL once done */
    struct bkh *h;            /* held: read/open/close target */
    struct ml_entry *entry;   /* add: referenced until bkc's callback */
    struct bkcur *cur;        /* cursor write: borrowed (alive while m is) */
    struct bkc_req br;
    struct meta_req mr;
    void (*step)(struct bk_op *op, int status); /* next meta step */
    char **names;                               /* owned: children being walked */
    int n_names, idx;
    bool waiting; /* a read queued on an opening handle (not in bkc) */
    struct bk_op *next;
    LIST_ENTRY(bk_op) link; /* s->ops */
};
LIST_HEAD(bk_op_list, bk_op);

struct bks {
    struct ml_factory *f; /* borrowed; NULL once fini ran */
    struct event_base *base;
    struct meta_store *meta; /* borrowed */
    struct bkc_client *bkc;  /* borrowed */
    int refs;                /* 1 until fini + 1 per bkml + 1 per op */
    int inflight;
    bool dead;
    struct mg_map mls; /* name -> borrowed newest struct bkml */
    struct bkml_list all;
    struct bk_op_list ops;
    int flush_ms, max_ranges;
    int ensemble, write_q, ack_q;
    bool auto_skip; /* autoSkipNonRecoverableData */
    /* failed cursor writes: one log line per BK_FAIL_LOG_MS with a count */
    int64_t (*clock)(void *arg); /* ms; monotonic unless a test sets one */
    void *clock_arg;
    struct ml_bk_cursor_stats cst;
    int64_t fail_unlogged; /* failures since the last line */
    int64_t fail_log_at;   /* when the last line was logged */
    bool fail_logged_once; /* a line was ever logged */
    bool fail_reported;    /* a failure was logged since the last success */
    char fail_last[200];   /* the last failure, for the next line */
};

#define BK_FAIL_LOG_MS 10000 /* at most one "cursor not stored" line per this period */
#define BK_RETRY_MAX_SHIFT 4 /* retries back off to 16 flush intervals */

static int64_t mono_clock(void *arg)
{
    (void)arg;
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static int64_t wall_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* ---- names ---------------------------------------------------------------------------- */

/* java.net.URLEncoder (UTF-8), which Pulsar uses for cursor node names. */
static char *url_encode(const char *s)
{
    size_t n = strlen(s);
    char *out = mg_malloc(n * 3 + 1), *p = out;
    for (const unsigned char *c = (const unsigned char *)s; *c; c++) {
        if ((*c >= 'a' && *c <= 'z') || (*c >= 'A' && *c <= 'Z') || (*c >= '0' && *c <= '9') ||
            *c == '.' || *c == '-' || *c == '*' || *c == '_')
            *p++ = (char)*c;
        else if (*c == ' ')
            *p++ = '+';
        else
            p += sprintf(p, "%%%02X", *c);
    }
    *p = 0;
    return out;
}

static int hexval(char c)
{
    if (c >= '0' && c <= '9')
        return c - '0';
    if (c >= 'a' && c <= 'f')
        return c - 'a' + 10;
    if (c >= 'A' && c <= 'F')
        return c - 'A' + 10;
    return -1;
}

static char *url_decode(const char *s)
{
    char *out = mg_malloc(strlen(s) + 1), *p = out;
    for (; *s; s++) {
        if (*s == '+') {
            *p++ = ' ';
        } else if (*s == '%' && hexval(s[1]) >= 0 && hexval(s[2]) >= 0) {
            *p++ = (char)(hexval(s[1]) * 16 + hexval(s[2]));
            s += 2;
        } else {
            *p++ = *s;
        }
    }
    *p = 0;
    return out;
}

/* ---- refcounts and ops ----------------------------------------------------------------- */

static void bks_unref(struct bks *s)
{
    if (--s->refs > 0)
        return;
    mg_map_fini(&s->mls);
    mg_free(s);
}

static void handle_unref(struct bkh *h)
{
    if (--h->refs > 0)
        return;
    bkc_ledger_free(h->lh);
    mg_free(h);
}

/* Take h out of its ML's map and release its bkc handle (pending bkc requests on it
 * complete with -MG_ECANCELED later). */
static void handle_drop(struct bkh *h)
{
    if (h->gone)
        return;
    h->gone = true;
    mg_map_del_u64(&h->m->handles, (uint64_t)h->id);
    bkc_ledger_free(h->lh);
    h->lh = NULL;
    handle_unref(h);
}

static struct bkh *handle_new(struct bkml *m, int64_t id, struct bkc_ledger *lh, bool writer)
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
        handle_unref(old);
    }
    return h;
}

static void cursor_free(struct bkcur *cur)
{
    if (cur->timer)
        event_free(cur->timer);
    mg_free(cur->next_buf);
    mg_free(cur->name);
    mg_free(cur->path);
    mg_free(cur);
}

static void load_start(struct bkml *m, struct ml_store_req *req);

static void bkml_unref(struct bkml *m)
{
    if (--m->refs > 0)
        return;
    struct bks *s = m->s;
    size_t it = 0;
    const char *key;
    size_t klen;
    void *v;
    while (mg_map_next(&m->handles, &it, &key, &klen, &v))
        handle_drop(v);
    mg_map_fini(&m->handles);
    it = 0;
    while (mg_map_next(&m->cursors, &it, &key, &klen, &v))
        cursor_free(v);
    mg_map_fini(&m->cursors);
    if (mg_map_get_str(&s->mls, m->name) == m)
        mg_map_del_str(&s->mls, m->name);
    TAILQ_REMOVE(&s->all, m, link);
    struct bkml *succ = m->successor;
    mg_free(m->name);
    mg_free(m->path);
    mg_free(m);
    if (succ) {
        /* Our writes are done: the next incarnation may read the metadata now. */
        struct ml_store_req *req = succ->load_req;
        succ->load_req = NULL;
        if (req && !s->dead && succ->ml)
            load_start(succ, req);
        else if (req)
            req->cb(req, -MG_ECANCELED);
        bkml_unref(succ);
    }
    bks_unref(s);
}

static struct bk_op *op_new(struct bks *s, struct bkml *m, enum bk_op_kind kind,
                            struct ml_store_req *req)
{
    struct bk_op *op = mg_calloc(1, sizeof *op);
    op->s = s;
    op->m = m;
    op->kind = kind;
    op->req = req;
    s->refs++;
    s->inflight++;
    if (m)
        m->refs++;
    LIST_INSERT_HEAD(&s->ops, op, link);
    return op;
}

static void op_end(struct bk_op *op)
{
    struct bks *s = op->s;
    LIST_REMOVE(op, link);
    s->inflight--;
    bkc_req_fini(&op->br);
    meta_req_fini(&op->mr);
    ml_entry_unref(op->entry);
    for (int i = 0; i < op->n_names; i++)
        mg_free(op->names[i]);
    mg_free(op->names);
    if (op->h)
        handle_unref(op->h);
    if (op->m)
        bkml_unref(op->m);
    mg_free(op);
    bks_unref(s);
}

/* Complete the core's request(s) of op with status (once). */
static void op_complete(struct bk_op *op, int status)
{
    struct ml_store_req *req = op->req;
    op->req = NULL;
    while (req) {
        struct ml_store_req *next = req->next_;
        req->next_ = NULL;
        req->cb(req, status);
        req = next;
    }
}

static void later_task(void *arg, int status)
{
    struct ml_store_req *req = arg;
    req->cb(req, status ? status : req->status);
}

/* Complete req from the loop (the op itself returned 0). */
static void complete_later(struct bks *s, struct ml_store_req *req, int status)
{
    req->status = status;
    ml_defer(s->f, &req->task, later_task, req);
}

static void meta_step_cb(struct meta_req *mr, int status)
{
    struct bk_op *op = mr->data;
    op->step(op, status);
}

/* ---- encoding ------------------------------------------------------------------------- */

static uint8_t *encode_ml(const struct ml_ledger *ml, size_t *len)
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

static void range_collect(struct ml_position lower, struct ml_position upper, void *arg)
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
static uint8_t *encode_cursor(const struct ml_cursor *c, int max_ranges, size_t *len)
{
    Pulsar__Ml__ManagedCursorInfo ci = PULSAR__ML__MANAGED_CURSOR_INFO__INIT;
    ci.cursorsledgerid = -1;
    ci.has_markdeleteledgerid = ci.has_markdeleteentryid = true;
    ci.markdeleteledgerid = c->mark_delete.ledger;
    ci.markdeleteentryid = c->mark_delete.entry;
    ci.has_lastactive = true;
    ci.lastactive = wall_ms();
    struct range_acc a = {0};
    if (c->n_ranges > 0 && c->n_ranges <= max_ranges) {
        a.cap = c->n_ranges;
        a.ranges = mg_calloc((size_t)a.cap, sizeof *a.ranges);
        a.ptrs = mg_calloc((size_t)a.cap, sizeof *a.ptrs);
        a.pos = mg_calloc((size_t)a.cap * 2, sizeof *a.pos);
        ml_cursor_foreach_range(c, range_collect, &a);
        ci.n_individualdeletedmessages = (size_t)a.n;
        ci.individualdeletedmessages = a.ptrs;
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
    return buf;
}

/* ---- init / fini ---------------------------------------------------------------------- */

static int bk_init(struct ml_factory *f, void **impl)
{
    const struct ml_config *cfg = &f->cfg;
    if (!cfg->meta || !cfg->bkc) {
        MG_ERROR(BK_MOD, "the bookkeeper store needs a metadata store and a bkc client");
        return -MG_EINVAL;
    }
    struct bks *s = mg_calloc(1, sizeof *s);
    s->f = f;
    s->base = f->base;
    s->meta = cfg->meta;
    s->bkc = cfg->bkc;
    s->refs = 1;
    mg_map_init(&s->mls);
    TAILQ_INIT(&s->all);
    LIST_INIT(&s->ops);
    s->flush_ms = cfg->cursor_flush_interval_ms == 0 ? 1000 : cfg->cursor_flush_interval_ms;
    s->max_ranges =
        cfg->max_unacked_ranges_to_persist > 0 ? cfg->max_unacked_ranges_to_persist : 1000;
    s->ensemble = cfg->ensemble_size;
    s->write_q = cfg->write_quorum;
    s->ack_q = cfg->ack_quorum;
    s->auto_skip = cfg->auto_skip_non_recoverable_data;
    s->clock = mono_clock;
    *impl = s;
    return 0;
}

static void bk_fini(void *impl)
{
    struct bks *s = impl;
    if (!s)
        return;
    s->dead = true;
    /* Every request the core has here completes now with -MG_ECANCELED. */
    struct bk_op *op;
    LIST_FOREACH(op, &s->ops, link)
    op_complete(op, -MG_ECANCELED);
    struct bkml *m, *mnext;
    for (m = TAILQ_FIRST(&s->all); m; m = mnext) {
        m->refs++;
        struct ml_store_req *q = m->save_q;
        m->save_q = m->save_tail = NULL;
        while (q) {
            struct ml_store_req *next = q->next_;
            q->next_ = NULL;
            q->cb(q, -MG_ECANCELED);
            q = next;
        }
        if (m->load_req) {
            struct ml_store_req *req = m->load_req;
            m->load_req = NULL;
            req->cb(req, -MG_ECANCELED);
        }
        size_t it = 0;
        const char *key;
        size_t klen;
        void *v;
        while (mg_map_next(&m->cursors, &it, &key, &klen, &v)) {
            struct bkcur *cur = v;
            if (cur->timer)
                event_del(cur->timer);
        }
        /* Reads parked on opening handles never reached bkc: end them here. */
        it = 0;
        while (mg_map_next(&m->handles, &it, &key, &klen, &v)) {
            struct bkh *h = v;
            while (h->waiting) {
                struct bk_op *w = h->waiting;
                h->waiting = w->next;
                op_end(w);
            }
            struct ml_store_req *cw = h->close_waiters;
            h->close_waiters = NULL;
            while (cw) {
                struct ml_store_req *next = cw->next_;
                cw->cb(cw, -MG_ECANCELED);
                cw = next;
            }
        }
        it = 0;
        while (mg_map_next(&m->handles, &it, &key, &klen, &v))
            handle_drop(v);
        mnext = TAILQ_NEXT(m, link);
        bkml_unref(m);
    }
    s->f = NULL;
    bks_unref(s);
}

static int bk_pending(void *impl)
{
    struct bks *s = impl;
    return s->inflight;
}

/* ---- per-ML state ----------------------------------------------------------------------- */

static struct bkml *bkml_of(struct ml_ledger *ml)
{
    return ml ? ml->store_priv : NULL;
}

static void bk_free_ml(void *impl, struct ml_ledger *ml)
{
    (void)impl;
    struct bkml *m = bkml_of(ml);
    if (!m)
        return;
    ml->store_priv = NULL;
    m->ml = NULL;
    size_t it = 0;
    const char *key;
    size_t klen;
    void *v;
    while (mg_map_next(&m->cursors, &it, &key, &klen, &v)) {
        struct bkcur *cur = v;
        if (cur->timer)
            event_del(cur->timer);
    }
    /* Handles nobody works on go now; a close in flight keeps its own. */
    it = 0;
    while (mg_map_next(&m->handles, &it, &key, &klen, &v)) {
        struct bkh *h = v;
        if (!h->closing && !h->opening)
            handle_drop(h);
    }
    bkml_unref(m);
}

/* ---- load (open) -------------------------------------------------------------------------- */

static void load_finish(struct bk_op *op, int status)
{
    op_complete(op, status);
    op_end(op);
}

static bool load_gone(struct bk_op *op)
{
    if (op->s->dead || !op->m->ml || !op->req) {
        load_finish(op, -MG_ECANCELED);
        return true;
    }
    return false;
}

static void load_next_cursor(struct bk_op *op);

static void restore_cursor(struct bk_op *op, const char *name, const uint8_t *buf, size_t len)
{
    struct bkml *m = op->m;
    struct ml_ledger *ml = m->ml;
    Pulsar__Ml__ManagedCursorInfo *ci = pulsar__ml__managed_cursor_info__unpack(NULL, len, buf);
    if (!ci) {
        MG_WARN(BK_MOD, "%s: cursor %s: undecodable state, skipped", m->name, name);
        return;
    }
    struct ml_position md = ML_POS_EARLIEST;
    if (ci->has_markdeleteledgerid && ci->has_markdeleteentryid)
        md = (struct ml_position){ci->markdeleteledgerid, ci->markdeleteentryid};
    else if (ml->n_ledgers > 0)
        md = (struct ml_position){ml->ledgers[0].id, -1};
    if (ci->cursorsledgerid != -1)
        MG_WARN(BK_MOD,
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
    pulsar__ml__managed_cursor_info__free_unpacked(ci, NULL);
}

static void load_got_cursor(struct bk_op *op, int status)
{
    if (load_gone(op))
        return;
    struct bkml *m = op->m;
    if (status < 0 && status != -MG_ENOTFOUND) {
        load_finish(op, status);
        return;
    }
    if (status == 0) {
        char *name = url_decode(op->names[op->idx]);
        struct bkcur *cur = mg_calloc(1, sizeof *cur);
        cur->m = m;
        cur->name = name;
        cur->path = mg_asprintf("%s/%s", m->path, op->names[op->idx]);
        cur->version = op->mr.stat.version;
        struct bkcur *old = mg_map_put_str(&m->cursors, name, cur);
        if (old)
            cursor_free(old);
        restore_cursor(op, name, (const uint8_t *)op->mr.value, op->mr.len);
    }
    meta_req_fini(&op->mr);
    op->idx++;
    load_next_cursor(op);
}

static void load_next_cursor(struct bk_op *op)
{
    if (op->idx >= op->n_names) {
        MG_DEBUG(BK_MOD, "%s: loaded: %d ledgers, %d cursors", op->m->name, op->m->ml->n_ledgers,
                 op->n_names);
        load_finish(op, 0);
        return;
    }
    char *path = mg_asprintf("%s/%s", op->m->path, op->names[op->idx]);
    memset(&op->mr, 0, sizeof op->mr);
    op->mr.data = op;
    op->step = load_got_cursor;
    int rc = meta_get(op->s->meta, path, &op->mr, meta_step_cb);
    mg_free(path);
    if (rc < 0)
        load_finish(op, rc);
}

static void load_got_children(struct bk_op *op, int status)
{
    if (load_gone(op))
        return;
    if (status == -MG_ENOTFOUND) {
        op->n_names = 0;
    } else if (status < 0) {
        load_finish(op, status);
        return;
    } else {
        op->n_names = op->mr.n_children;
        op->names = mg_calloc((size_t)(op->n_names ? op->n_names : 1), sizeof *op->names);
        for (int i = 0; i < op->n_names; i++)
            op->names[i] = mg_strdup(op->mr.children[i]);
    }
    meta_req_fini(&op->mr);
    op->idx = 0;
    load_next_cursor(op);
}

static void load_cursors(struct bk_op *op)
{
    memset(&op->mr, 0, sizeof op->mr);
    op->mr.data = op;
    op->step = load_got_children;
    int rc = meta_children(op->s->meta, op->m->path, &op->mr, meta_step_cb);
    if (rc < 0)
        load_finish(op, rc);
}

static void load_recovered(struct bkc_req *br, int status)
{
    struct bk_op *op = br->data;
    if (status == 0 && (op->s->dead || !op->m->ml || !op->req)) {
        bkc_ledger_free(br->ledger);
        br->ledger = NULL;
    }
    if (load_gone(op))
        return;
    struct bkml *m = op->m;
    struct ml_ledger *ml = m->ml;
    struct ml_ledger_info *li = &ml->ledgers[ml->n_ledgers - 1];
    /* Never readable again: the ledger is gone from BookKeeper's metadata, its metadata is
     * corrupt, or every copy of an entry is corrupt. Transient failures (bookies down) are
     * not: the load fails and is tried again later. */
    bool lost = status == -MG_ENOTFOUND || status == -MG_EPROTO || status == -MG_ECHECKSUM;
    int64_t n = status == 0 ? bkc_ledger_lac(br->ledger) + 1 : 0;
    if (status == 0 && n < li->entries) {
        /* Recovery found fewer entries than the list says were confirmed: no bookie has the
         * rest any more. */
        lost = true;
        snprintf(br->errmsg, sizeof br->errmsg,
                 "recovered %" PRId64 " entries, the ledger list has %" PRId64 " confirmed", n,
                 li->entries);
    }
    if (status == -MG_ENOTFOUND && li->entries == 0) {
        /* Created but never written to the metadata of BookKeeper: drop it. */
        MG_WARN(BK_MOD, "%s: last ledger %" PRId64 " does not exist, dropped", m->name, li->id);
        ml->n_ledgers--;
    } else if (lost && !op->s->auto_skip) {
        MG_ERROR(BK_MOD,
                 "%s: ledger %" PRId64 " cannot be recovered (%s%s%s): refusing to load the "
                 "topic; autoSkipNonRecoverableData=true would skip it and lose its %" PRId64
                 " entries",
                 m->name, li->id, status < 0 ? mg_strerror(status) : "entries lost",
                 br->errmsg[0] ? ": " : "", br->errmsg, li->entries);
        if (status == 0) {
            bkc_ledger_free(br->ledger);
            br->ledger = NULL;
        }
        load_finish(op, -MG_ENONRECOVERABLE);
        return;
    } else if (lost && status < 0) {
        MG_ERROR(BK_MOD,
                 "%s: autoSkipNonRecoverableData: ledger %" PRId64 " cannot be recovered (%s%s%s): "
                 "skipped, its %" PRId64 " entries are lost",
                 m->name, li->id, mg_strerror(status), br->errmsg[0] ? ": " : "", br->errmsg,
                 li->entries);
        ml->n_ledgers--;
    } else if (status < 0) {
        MG_WARN(BK_MOD, "%s: recovery of ledger %" PRId64 " failed: %s %s", m->name, li->id,
                mg_strerror(status), br->errmsg);
        load_finish(op, status);
        return;
    } else {
        if (lost)
            MG_ERROR(BK_MOD,
                     "%s: autoSkipNonRecoverableData: ledger %" PRId64 " %s: entries %" PRId64
                     "..%" PRId64 " are lost",
                     m->name, li->id, br->errmsg, n, li->entries - 1);
        struct bkc_ledger *lh = br->ledger;
        br->ledger = NULL;
        li->entries = li->next_entry = n;
        li->size = li->assigned_size = bkc_ledger_length(lh);
        li->publish_known = n == 0;
        struct bkh *h = handle_new(m, li->id, lh, false);
        h->closed = true;
        MG_DEBUG(BK_MOD, "%s: recovered ledger %" PRId64 ": %" PRId64 " entries", m->name, li->id,
                 n);
    }
    bkc_req_fini(br);
    load_cursors(op);
}

static void load_got_info(struct bk_op *op, int status)
{
    if (load_gone(op))
        return;
    struct bkml *m = op->m;
    struct ml_ledger *ml = m->ml;
    if (status == -MG_ENOTFOUND) {
        m->version = META_VERSION_NONE;
        meta_req_fini(&op->mr);
        load_cursors(op);
        return;
    }
    if (status < 0) {
        load_finish(op, status);
        return;
    }
    m->version = op->mr.stat.version;
    Pulsar__Ml__ManagedLedgerInfo *info =
        pulsar__ml__managed_ledger_info__unpack(NULL, op->mr.len, (const uint8_t *)op->mr.value);
    meta_req_fini(&op->mr);
    if (!info) {
        MG_ERROR(BK_MOD, "%s: undecodable ManagedLedgerInfo", m->name);
        load_finish(op, -MG_EPROTO);
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
    pulsar__ml__managed_ledger_info__free_unpacked(info, NULL);
    if (ml->n_ledgers == 0) {
        load_cursors(op);
        return;
    }
    /* The last ledger may still be open (a previous owner, or a crash): fence and recover
     * it, which also gives its true last entry. */
    memset(&op->br, 0, sizeof op->br);
    op->br.data = op;
    int rc = bkc_open(op->s->bkc, ml->ledgers[ml->n_ledgers - 1].id, true, &op->br, load_recovered);
    if (rc < 0)
        load_finish(op, rc);
}

static void load_start(struct bkml *m, struct ml_store_req *req)
{
    struct bk_op *op = op_new(m->s, m, BK_OP_META, req);
    op->mr.data = op;
    op->step = load_got_info;
    int rc = meta_get(m->s->meta, m->path, &op->mr, meta_step_cb);
    if (rc < 0) {
        op->req = NULL;
        op_end(op);
        complete_later(m->s, req, rc);
    }
}

static int bk_load_ml(void *impl, struct ml_ledger *ml, struct ml_store_req *req)
{
    struct bks *s = impl;
    if (s->dead)
        return -MG_ECLOSED;
    struct bkml *m = mg_calloc(1, sizeof *m);
    m->s = s;
    s->refs++;
    m->refs = 1;
    m->ml = ml;
    m->name = mg_strdup(ml->name);
    m->path = mg_asprintf("%s/%s", BK_ROOT, ml->name);
    m->version = META_VERSION_NONE;
    mg_map_init(&m->handles);
    mg_map_init(&m->cursors);
    TAILQ_INSERT_TAIL(&s->all, m, link);
    ml->store_priv = m;
    struct bkml *prev = mg_map_put_str(&s->mls, m->name, m);
    if (prev && prev != m) {
        /* The previous incarnation still writes: wait for it (bkml_unref starts us). */
        while (prev->successor)
            prev = prev->successor;
        prev->successor = m;
        m->refs++;
        m->load_req = req;
        return 0;
    }
    load_start(m, req);
    return 0;
}

/* ---- ML info writes ------------------------------------------------------------------------ */

static void save_start(struct bkml *m);

static void save_done(struct bk_op *op, int status)
{
    struct bkml *m = op->m;
    if (!op->s->dead) {
        if (status == 0) {
            m->version = op->mr.stat.version;
        } else if (status == -MG_EBUSY || status == -MG_EEXIST ||
                   (status == -MG_ENOTFOUND && m->version >= 0)) {
            MG_WARN(BK_MOD, "%s: ManagedLedgerInfo changed by someone else: fenced", m->name);
            m->fenced = true;
            status = -MG_EFENCED;
        }
    }
    m->saving = false;
    op_complete(op, status);
    if (!op->s->dead && !m->saving && m->save_q)
        save_start(m);
    op_end(op);
}

static void save_start(struct bkml *m)
{
    struct ml_store_req *batch = m->save_q;
    m->save_q = m->save_tail = NULL;
    struct bk_op *op = op_new(m->s, m, BK_OP_META, batch);
    if (m->fenced) {
        op_complete(op, -MG_EFENCED);
        op_end(op);
        return;
    }
    MG_ASSERT(m->ml); /* queued requests hold the ML */
    size_t len;
    uint8_t *buf = encode_ml(m->ml, &len);
    m->saving = true;
    op->mr.data = op;
    op->step = save_done;
    int rc =
        meta_put(m->s->meta, m->path, buf, len, m->version,
                 m->version == META_VERSION_NONE ? META_CREATE_PARENTS : 0, &op->mr, meta_step_cb);
    mg_free(buf);
    if (rc < 0) {
        m->saving = false;
        struct ml_store_req *req = op->req;
        op->req = NULL;
        op_end(op);
        while (req) {
            struct ml_store_req *next = req->next_;
            req->next_ = NULL;
            complete_later(m->s, req, rc);
            req = next;
        }
    }
}

static int bk_save_ml(void *impl, struct ml_ledger *ml, struct ml_store_req *req)
{
    struct bks *s = impl;
    struct bkml *m = bkml_of(ml);
    if (s->dead || !m)
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
        save_start(m);
    return 0;
}

/* ---- cursor writes --------------------------------------------------------------------------- */

static void cursor_write(struct bkcur *cur, uint8_t *buf, size_t len);
static void cursor_arm(struct bkcur *cur);

static bool meta_conflict(int status, int64_t version)
{
    return status == -MG_EBUSY || status == -MG_EEXIST || (status == -MG_ENOTFOUND && version >= 0);
}

static void cursor_delete_done(struct bk_op *op, int status)
{
    if (status < 0 && status != -MG_ENOTFOUND && status != -MG_ECANCELED)
        MG_WARN(BK_MOD, "%s: cursor node not deleted: %s", op->m->name, mg_strerror(status));
    op_complete(op, status == -MG_ENOTFOUND ? 0 : status);
    op_end(op);
}

static void cursor_delete_node(struct bkml *m, const char *path, struct ml_store_req *req)
{
    struct bk_op *op = op_new(m->s, m, BK_OP_META, req);
    op->mr.data = op;
    op->step = cursor_delete_done;
    int rc = meta_delete(m->s->meta, path, META_VERSION_ANY, &op->mr, meta_step_cb);
    if (rc < 0) {
        op->req = NULL;
        op_end(op);
        if (req)
            complete_later(m->s, req, rc);
    }
}

/* A cursor write failed (the metadata store is unreachable or full): the cursor retries
 * with backoff; the failures of every cursor are reported together, one line per
 * BK_FAIL_LOG_MS with their count and the last cause. */
static void cursor_failed(struct bkcur *cur, int status)
{
    struct bks *s = cur->m->s;
    cur->dirty = true;
    cur->fails++;
    s->cst.write_failures++;
    s->fail_unlogged++;
    snprintf(s->fail_last, sizeof s->fail_last, "%s cursor %s: %s", cur->m->name, cur->name,
             mg_strerror(status));
    int64_t now = s->clock(s->clock_arg);
    if (s->fail_logged_once && now - s->fail_log_at < BK_FAIL_LOG_MS)
        return;
    MG_WARN(BK_MOD,
            "cursor state not stored: %" PRId64 " failed write(s)%s (last: %s); the positions "
            "are kept in memory, retrying with backoff",
            s->fail_unlogged, s->fail_logged_once ? " since the last report" : "", s->fail_last);
    s->cst.log_lines++;
    s->fail_unlogged = 0;
    s->fail_log_at = now;
    s->fail_logged_once = true;
    s->fail_reported = true;
}

static void cursor_stored(struct bkcur *cur)
{
    struct bks *s = cur->m->s;
    cur->fails = 0;
    if (!s->fail_reported)
        return;
    s->fail_reported = false;
    MG_INFO(BK_MOD, "cursor state is stored again (%" PRId64 " failed write(s) in all)",
            s->cst.write_failures);
    s->cst.log_lines++;
}

void ml_bk_cursor_stats(struct ml_factory *f, struct ml_bk_cursor_stats *out)
{
    MG_ASSERT(f->ops == &ml_store_bookkeeper);
    struct bks *s = f->impl;
    *out = s->cst;
}

void ml_bk_set_clock(struct ml_factory *f, int64_t (*clock)(void *arg), void *arg)
{
    MG_ASSERT(f->ops == &ml_store_bookkeeper);
    struct bks *s = f->impl;
    s->clock = clock ? clock : mono_clock;
    s->clock_arg = arg;
}

static void cursor_written(struct bk_op *op, int status)
{
    struct bkcur *cur = op->cur;
    struct bkml *m = op->m;
    if (op->s->dead) {
        op_end(op);
        return;
    }
    cur->writing = false;
    if (status == 0) {
        cur->version = op->mr.stat.version;
        cursor_stored(cur);
    } else if (meta_conflict(status, cur->version) && !cur->removed) {
        MG_WARN(BK_MOD, "%s: cursor %s changed by someone else: fenced", m->name, cur->name);
        m->fenced = true;
        if (m->ml)
            ml_fence(m->ml);
    } else if (status < 0) {
        cursor_failed(cur, status);
    }
    if (cur->removed) {
        mg_map_del_str(&m->cursors, cur->name);
        cursor_delete_node(m, cur->path, NULL);
        cursor_free(cur);
    } else if (m->fenced || m->deleted) {
        mg_free(cur->next_buf);
        cur->next_buf = NULL;
    } else if (cur->next_buf) {
        uint8_t *buf = cur->next_buf;
        cur->next_buf = NULL;
        cursor_write(cur, buf, cur->next_len);
    } else if (cur->dirty) {
        cursor_arm(cur);
    }
    op_end(op);
}

/* Write buf (taken over) to the cursor's node, or park it behind the write in flight. */
static void cursor_write(struct bkcur *cur, uint8_t *buf, size_t len)
{
    struct bkml *m = cur->m;
    if (cur->writing) {
        mg_free(cur->next_buf);
        cur->next_buf = buf;
        cur->next_len = len;
        return;
    }
    struct bk_op *op = op_new(m->s, m, BK_OP_META, NULL);
    op->cur = cur;
    op->mr.data = op;
    op->step = cursor_written;
    cur->writing = true;
    int rc = meta_put(m->s->meta, cur->path, buf, len, cur->version,
                      cur->version == META_VERSION_NONE ? META_CREATE_PARENTS : 0, &op->mr,
                      meta_step_cb);
    mg_free(buf);
    if (rc < 0) {
        cur->writing = false;
        cursor_failed(cur, rc);
        op_end(op);
        cursor_arm(cur);
    }
}

static struct ml_cursor *find_cursor(struct ml_ledger *ml, const char *name)
{
    for (int i = 0; ml && i < ml->n_cursors; i++)
        if (ml->cursors[i]->durable && strcmp(ml->cursors[i]->name, name) == 0)
            return ml->cursors[i];
    return NULL;
}

static void cursor_timer_cb(evutil_socket_t fd, short what, void *arg)
{
    struct bkcur *cur = arg;
    struct bkml *m = cur->m;
    (void)fd;
    (void)what;
    if (m->s->dead || m->fenced || m->deleted || cur->writing || !cur->dirty)
        return;
    struct ml_cursor *c = find_cursor(m->ml, cur->name);
    if (!c)
        return;
    cur->dirty = false;
    size_t len;
    uint8_t *buf = encode_cursor(c, m->s->max_ranges, &len);
    cursor_write(cur, buf, len);
}

static void cursor_arm(struct bkcur *cur)
{
    struct bks *s = cur->m->s;
    if (s->dead || !cur->m->ml)
        return;
    if (!cur->timer)
        cur->timer = event_new(s->base, -1, 0, cursor_timer_cb, cur);
    if (!cur->timer || evtimer_pending(cur->timer, NULL))
        return;
    int ms = s->flush_ms > 0 ? s->flush_ms : 0;
    if (cur->fails > 0) {
        /* A retry: back off, doubling up to 16 flush intervals (100 ms when every change
         * is written at once), so a full or unreachable store is not hammered. */
        int base = ms > 0 ? ms : 100;
        int shift = cur->fails - 1 < BK_RETRY_MAX_SHIFT ? cur->fails - 1 : BK_RETRY_MAX_SHIFT;
        ms = base << shift;
    }
    struct timeval tv = {ms / 1000, (ms % 1000) * 1000};
    evtimer_add(cur->timer, &tv);
}

static int bk_save_cursor(void *impl, struct ml_ledger *ml, struct ml_cursor *c, bool now,
                          struct ml_store_req *req)
{
    struct bks *s = impl;
    struct bkml *m = bkml_of(ml);
    if (s->dead || !m)
        return -MG_ECLOSED;
    if (m->fenced)
        return -MG_EFENCED;
    if (m->deleted)
        return -MG_ECLOSED;
    MG_ASSERT(!req); /* the core writes cursors fire and forget */
    struct bkcur *cur = mg_map_get_str(&m->cursors, c->name);
    if (!cur) {
        cur = mg_calloc(1, sizeof *cur);
        cur->m = m;
        cur->name = mg_strdup(c->name);
        char *enc = url_encode(c->name);
        cur->path = mg_asprintf("%s/%s", m->path, enc);
        mg_free(enc);
        cur->version = META_VERSION_NONE;
        mg_map_put_str(&m->cursors, cur->name, cur);
        now = true; /* a new subscription is stored at once */
    }
    if (now || s->flush_ms < 0) {
        cur->dirty = false;
        if (cur->timer)
            event_del(cur->timer);
        size_t len;
        uint8_t *buf = encode_cursor(c, s->max_ranges, &len);
        cursor_write(cur, buf, len);
    } else {
        cur->dirty = true;
        if (!cur->writing)
            cursor_arm(cur);
    }
    return 0;
}

static int bk_remove_cursor(void *impl, struct ml_ledger *ml, const char *name,
                            struct ml_store_req *req)
{
    struct bks *s = impl;
    struct bkml *m = bkml_of(ml);
    if (s->dead || !m)
        return -MG_ECLOSED;
    struct bkcur *cur = mg_map_get_str(&m->cursors, name);
    if (cur && cur->writing) {
        /* Deleted once the write in flight is back (cursor_written). */
        cur->removed = true;
        mg_free(cur->next_buf);
        cur->next_buf = NULL;
        if (cur->timer)
            event_del(cur->timer);
        if (req)
            complete_later(s, req, 0);
        return 0;
    }
    char *path;
    if (cur) {
        mg_map_del_str(&m->cursors, name);
        path = mg_strdup(cur->path);
        cursor_free(cur);
    } else {
        char *enc = url_encode(name);
        path = mg_asprintf("%s/%s", m->path, enc);
        mg_free(enc);
    }
    cursor_delete_node(m, path, req);
    mg_free(path);
    return 0;
}

/* ---- ML delete ---------------------------------------------------------------------------- */

static void remove_step(struct bk_op *op, int status);

static void remove_node_done(struct bk_op *op, int status)
{
    op_complete(op, status == -MG_ENOTFOUND ? 0 : status);
    op_end(op);
}

static void remove_next(struct bk_op *op)
{
    if (op->s->dead) {
        op_end(op);
        return;
    }
    meta_req_fini(&op->mr);
    memset(&op->mr, 0, sizeof op->mr);
    op->mr.data = op;
    int rc;
    if (op->idx < op->n_names) {
        char *path = mg_asprintf("%s/%s", op->m->path, op->names[op->idx++]);
        op->step = remove_step;
        rc = meta_delete(op->s->meta, path, META_VERSION_ANY, &op->mr, meta_step_cb);
        mg_free(path);
    } else {
        op->step = remove_node_done;
        rc = meta_delete(op->s->meta, op->m->path, META_VERSION_ANY, &op->mr, meta_step_cb);
    }
    if (rc < 0) {
        op_complete(op, rc);
        op_end(op);
    }
}

static void remove_step(struct bk_op *op, int status)
{
    (void)status; /* a child already gone is fine; the node delete reports the rest */
    remove_next(op);
}

static void remove_got_children(struct bk_op *op, int status)
{
    if (status == 0) {
        op->n_names = op->mr.n_children;
        op->names = mg_calloc((size_t)(op->n_names ? op->n_names : 1), sizeof *op->names);
        for (int i = 0; i < op->n_names; i++)
            op->names[i] = mg_strdup(op->mr.children[i]);
    } else if (status != -MG_ENOTFOUND) {
        op_complete(op, status);
        op_end(op);
        return;
    }
    remove_next(op);
}

static int bk_remove_ml(void *impl, struct ml_ledger *ml, struct ml_store_req *req)
{
    struct bks *s = impl;
    struct bkml *m = bkml_of(ml);
    if (s->dead || !m)
        return -MG_ECLOSED;
    m->deleted = true;
    struct bk_op *op = op_new(s, m, BK_OP_META, req);
    op->mr.data = op;
    op->step = remove_got_children;
    int rc = meta_children(s->meta, m->path, &op->mr, meta_step_cb);
    if (rc < 0) {
        op->req = NULL;
        op_end(op);
        return rc;
    }
    return 0;
}

/* ---- ledgers ------------------------------------------------------------------------------ */

static void create_done(struct bkc_req *br, int status)
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
            handle_new(m, br->ledger_id, lh, true);
            op->req->ledger_id = br->ledger_id;
            MG_DEBUG(BK_MOD, "%s: created ledger %" PRId64, m->name, br->ledger_id);
        }
    } else if (status != -MG_ECANCELED) {
        MG_WARN(BK_MOD, "%s: cannot create a ledger: %s %s", m->name, mg_strerror(status),
                br->errmsg);
    }
    op_complete(op, status);
    op_end(op);
}

static int bk_create_ledger(void *impl, struct ml_ledger *ml, struct ml_store_req *req)
{
    struct bks *s = impl;
    struct bkml *m = bkml_of(ml);
    if (s->dead || !m)
        return -MG_ECLOSED;
    struct bkc_kv kv[3] = {
        {"application", "pulsar", 6},
        {"component", "managed-ledger", 14},
        {"pulsar/managed-ledger", m->name, strlen(m->name)},
    };
    struct bkc_create_opts o = {
        .ensemble_size = s->ensemble,
        .write_quorum = s->write_q,
        .ack_quorum = s->ack_q,
        .custom = kv,
        .n_custom = 3,
    };
    struct bk_op *op = op_new(s, m, BK_OP_CREATE, req);
    op->br.data = op;
    int rc = bkc_create(s->bkc, &o, &op->br, create_done);
    if (rc < 0) {
        op->req = NULL;
        op_end(op);
    }
    return rc;
}

static void add_done(struct bkc_req *br, int status)
{
    struct bk_op *op = br->data;
    op_complete(op, status);
    op_end(op);
}

static int bk_add_entry(void *impl, struct ml_ledger *ml, struct ml_store_req *req)
{
    struct bks *s = impl;
    struct bkml *m = bkml_of(ml);
    if (s->dead || !m)
        return -MG_ECLOSED;
    struct bkh *h = mg_map_get_u64(&m->handles, (uint64_t)req->ledger_id);
    if (!h || !h->writer || !h->lh)
        return -MG_ENOTFOUND;
    struct bk_op *op = op_new(s, m, BK_OP_ADD, req);
    /* bkc borrows the evbuffer until its callback: the reference keeps it alive. */
    op->entry = ml_entry_ref(req->entry);
    op->br.data = op;
    int rc = bkc_add(h->lh, req->entry->data, &op->br, add_done);
    if (rc < 0) {
        op->req = NULL;
        op_end(op);
        return rc;
    }
    if (op->br.entry_id != req->entry->pos.entry)
        MG_ERROR(BK_MOD, "%s: ledger %" PRId64 ": entry %" PRId64 " went out as %" PRId64, m->name,
                 req->ledger_id, req->entry->pos.entry, op->br.entry_id);
    return 0;
}

static void read_done(struct bkc_req *br, int status)
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
    op_complete(op, status);
    op_end(op);
}

/* Read from an open handle; errors complete through the loop. */
static void read_start(struct bk_op *op)
{
    struct ml_store_req *req = op->req;
    struct bkh *h = op->h;
    struct bks *s = op->s;
    int64_t lac = h->lh ? bkc_ledger_lac(h->lh) : -1;
    int64_t first = req->first < 0 ? 0 : req->first;
    int64_t last = req->last > lac ? lac : req->last;
    /* Beyond the LAC of an open handle: the bookies do not have entries the list has. */
    int rc = h->lh ? -MG_ENONRECOVERABLE : -MG_ENOTFOUND;
    if (h->lh && first <= last) {
        op->br.data = op;
        rc = bkc_read(h->lh, first, last, &op->br, read_done);
        if (rc == 0)
            return;
    }
    op->req = NULL;
    op_end(op);
    complete_later(s, req, rc);
}

static void open_done(struct bkc_req *br, int status)
{
    struct bk_op *op = br->data;
    struct bkh *h = op->h;
    if (op->s->dead) {
        if (status == 0)
            bkc_ledger_free(br->ledger);
        br->ledger = NULL;
        op_end(op);
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
        handle_drop(h); /* the next read tries again */
    while (w) {
        struct bk_op *next = w->next;
        w->waiting = false;
        if (status == 0) {
            read_start(w);
        } else {
            op_complete(w, status);
            op_end(w);
        }
        w = next;
    }
    if (status == 0 && !op->m->ml)
        handle_drop(h); /* the ML went meanwhile */
    op_end(op);
}

static int bk_read_range(void *impl, struct ml_ledger *ml, struct ml_store_req *req)
{
    struct bks *s = impl;
    struct bkml *m = bkml_of(ml);
    if (s->dead || !m)
        return -MG_ECLOSED;
    req->entries = NULL;
    req->n = 0;
    struct bkh *h = mg_map_get_u64(&m->handles, (uint64_t)req->ledger_id);
    if (!h) {
        /* Not ours to write: a read handle, with recovery so that a ledger we abandoned
         * open (bookies were down) gets sealed where it really ends. */
        h = handle_new(m, req->ledger_id, NULL, false);
        h->opening = true;
        struct bk_op *oop = op_new(s, m, BK_OP_OPEN, NULL);
        oop->h = h;
        h->refs++;
        oop->br.data = oop;
        int rc = bkc_open(s->bkc, req->ledger_id, true, &oop->br, open_done);
        if (rc < 0) {
            op_end(oop);
            handle_drop(h);
            return rc;
        }
    }
    struct bk_op *op = op_new(s, m, BK_OP_READ, req);
    op->h = h;
    h->refs++;
    if (h->opening) {
        op->waiting = true;
        op->next = h->waiting;
        h->waiting = op;
        return 0;
    }
    read_start(op);
    return 0;
}

static void close_done(struct bkc_req *br, int status)
{
    struct bk_op *op = br->data;
    struct bkh *h = op->h;
    if (op->s->dead) {
        op_end(op);
        return;
    }
    h->closing = false;
    if (status == 0)
        h->closed = true;
    else if (status != -MG_ECANCELED)
        MG_WARN(BK_MOD, "%s: close of ledger %" PRId64 " failed: %s %s", op->m->name, h->id,
                mg_strerror(status), br->errmsg);
    struct ml_store_req *w = h->close_waiters;
    h->close_waiters = NULL;
    op_complete(op, status);
    while (w) {
        struct ml_store_req *next = w->next_;
        w->next_ = NULL;
        w->cb(w, status);
        w = next;
    }
    if (!op->m->ml)
        handle_drop(h);
    op_end(op);
}

static int bk_close_ledger(void *impl, struct ml_ledger *ml, int64_t ledger_id,
                           struct ml_store_req *req)
{
    struct bks *s = impl;
    struct bkml *m = bkml_of(ml);
    if (s->dead || !m)
        return -MG_ECLOSED;
    struct bkh *h = mg_map_get_u64(&m->handles, (uint64_t)ledger_id);
    if (!h || !h->writer || !h->lh || h->closed) {
        if (req)
            complete_later(s, req, 0);
        return 0;
    }
    if (h->closing) {
        if (req) {
            req->next_ = h->close_waiters;
            h->close_waiters = req;
        }
        return 0;
    }
    struct bk_op *op = op_new(s, m, BK_OP_CLOSE, req);
    op->h = h;
    h->refs++;
    op->br.data = op;
    int rc = bkc_close(h->lh, &op->br, close_done);
    if (rc < 0) {
        op->req = NULL;
        op_end(op);
        return rc;
    }
    h->closing = true;
    return 0;
}

static void delete_done(struct bkc_req *br, int status)
{
    struct bk_op *op = br->data;
    if (status < 0 && status != -MG_ENOTFOUND && status != -MG_ECANCELED)
        MG_WARN(BK_MOD, "%s: delete of a ledger failed: %s", op->m->name, mg_strerror(status));
    op_complete(op, status);
    op_end(op);
}

static int bk_delete_ledger(void *impl, struct ml_ledger *ml, int64_t ledger_id,
                            struct ml_store_req *req)
{
    struct bks *s = impl;
    struct bkml *m = bkml_of(ml);
    if (s->dead || !m)
        return -MG_ECLOSED;
    struct bkh *h = mg_map_get_u64(&m->handles, (uint64_t)ledger_id);
    if (h)
        handle_drop(h); /* no open handle may remain on a deleted ledger */
    struct bk_op *op = op_new(s, m, BK_OP_DELETE, req);
    op->br.data = op;
    int rc = bkc_delete(s->bkc, ledger_id, &op->br, delete_done);
    if (rc < 0) {
        op->req = NULL;
        op_end(op);
    }
    return rc;
}

const struct ml_store_ops ml_store_bookkeeper = {
    .name = "bookkeeper",
    .init = bk_init,
    .fini = bk_fini,
    .create_ledger = bk_create_ledger,
    .add_entry = bk_add_entry,
    .read_range = bk_read_range,
    .close_ledger = bk_close_ledger,
    .delete_ledger = bk_delete_ledger,
    .load_ml = bk_load_ml,
    .save_ml = bk_save_ml,
    .save_cursor = bk_save_cursor,
    .remove_cursor = bk_remove_cursor,
    .remove_ml = bk_remove_ml,
    .free_ml = bk_free_ml,
    .pending = bk_pending,
};
