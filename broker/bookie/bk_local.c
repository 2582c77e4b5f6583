/*
 * bk_local.c - the in-process transport: a ledger client (broker/bkc) reaches the bookies of
 * its own process (a standalone's) by calls instead of loopback TCP (issue 13).
 *
 * It implements bkc's transport interface (struct bkc_transport_ops, bkc/bkc_int.h): the
 * bookie module sees bkc, not the other way round, so the seam lives here. bookie_get gives
 * a struct bk_lconn (a struct bkc_bookie with in_process set) for an id of the registry's
 * bookies and a TCP bookie (bkc_conn.c) for any other id; every other op dispatches on
 * bk->in_process.
 *
 * Happy path: an add is admitted by bk_add_admit (read-only, master key, fencing: the code the
 * TCP path runs), its body (entry header, digest, payload: what the client would have sent)
 * becomes the journal record, and the record rides the journal's group commit like one from a
 * connection; bk_complete answers it through bk_local_answer after its group's fsync. A fencing
 * read goes through bk_fence_begin and is answered after its FENCE record is durable, with the
 * entry read then. Other reads are answered at once from bk_store_read. Records are handed to
 * the journal thread at the end of the loop pass (submit_ev), in one batch as a connection's
 * read callback does. Answers reach the client from an event (done_ev), never inside add/read,
 * in the order they were given.
 *
 * A full write cache (both halves, the checkpoint of one in flight): the add is journalled as
 * always and its record waits, in journal order with those of the connections, in the
 * server's queue (bk_server_apply) until that checkpoint completes; then it is applied and
 * answered. No queue of its own here: the broker bounds what it has outstanding (producer
 * connections stop being read at maxPendingPublishRequestsPerConnection publishes), and the
 * loop, shared with the broker, goes on meanwhile.
 *
 * Copies: the payload is copied once into the record (the journal and the write cache keep a
 * flat buffer); read bodies are handed over without a copy when the store gives a buffer of
 * its own (entry log reads), else copied once (write-cache entries may move).
 *
 * Failure modes: a request the bookie refuses gets that status, as over TCP. A request to a
 * bookie that is not serving (still starting, or freed) fails with -MG_EIO, as a refused
 * connection. An op past its deadline fails with -MG_ETIMEDOUT; the record it sent stays in
 * the journal (a request on the wire cannot be recalled either) and its answer is dropped.
 * A cancelled op is forgotten the same way. The client may go first (its ops are cancelled,
 * records still in the journal free their op when answered) or the bookie (bk_server_free
 * answers everything it journalled, then bk_local_server_gone cuts its connections).
 */
#include "bkc/bkc_int.h"
#include "bookie/bookie_int.h"
#include "util/alloc.h"
#include "util/err.h"
#include "util/log.h"

#include <event2/buffer.h>
#include <event2/event.h>
#include <string.h>
#include <sys/queue.h>

#define BK_LOCAL_MAX 16

STAILQ_HEAD(bk_lop_queue, bk_lop);

struct bk_local {
    struct event_base *base;              /* borrowed */
    struct bk_server *srvs[BK_LOCAL_MAX]; /* borrowed; NULL once freed */
    int n;
    struct bkc_transport tp;
    struct event *done_ev;    /* owned */
    struct bk_lop_queue done; /* answered, waiting for the client's callback */
};

/* A client's connection to a bookie of this process. */
struct bk_lconn {
    struct bkc_bookie bk;         /* first: what the client sees */
    struct bk_local *l;           /* borrowed */
    struct bk_server *srv;        /* borrowed; NULL once the bookie is freed */
    struct bk_lconn *prev, *next; /* srv->lconns */
};

struct bk_lop {
    struct bkc_op op;               /* first: the client's op while attached */
    struct bk_local *l;             /* borrowed */
    bool attached;                  /* outstanding at the client (in op.bk->ops) */
    bool at_bookie;                 /* a journal record refers to it */
    bool queued;                    /* in l->done */
    int rc;                         /* the answer */
    struct evbuffer *body;          /* owned: a READ's EOK body */
    STAILQ_ENTRY(bk_lop) done_link; /* l->done while queued */
};

static const struct bkc_transport_ops bk_local_ops;

/* ---- ops ------------------------------------------------------------------------------- */

static void bk_lop_maybe_free(struct bk_lop *m)
{
    if (m->attached || m->at_bookie || m->queued)
        return;
    if (m->body)
        evbuffer_free(m->body);
    mg_free(m);
}

static void bk_lop_detach(struct bk_lop *m)
{
    if (!m->attached)
        return;
    struct bkc_bookie *bk = m->op.bk;
    TAILQ_REMOVE(&bk->ops, &m->op, link);
    bk->n_ops--;
    m->attached = false;
}

/* m is answered with rc (body: a READ's, taken): its callback runs from done_ev. */
static void bk_lop_answer(struct bk_lop *m, int rc, struct evbuffer *body)
{
    if (!m->attached) { /* cancelled or timed out meanwhile */
        if (body)
            evbuffer_free(body);
        bk_lop_maybe_free(m);
        return;
    }
    struct bk_local *l = m->l;
    m->rc = rc;
    m->body = body;
    m->queued = true;
    STAILQ_INSERT_TAIL(&l->done, m, done_link);
    event_active(l->done_ev, 0, 0);
}

static void bk_local_done_cb(evutil_socket_t fd, short what, void *arg)
{
    (void)fd;
    (void)what;
    struct bk_local *l = arg;
    /* what was answered before this pass; answers given by the callbacks wait for the next */
    struct bk_lop_queue batch = STAILQ_HEAD_INITIALIZER(batch);
    STAILQ_CONCAT(&batch, &l->done);
    struct bk_lop *m;
    while ((m = STAILQ_FIRST(&batch))) {
        STAILQ_REMOVE_HEAD(&batch, done_link);
        m->queued = false;
        if (m->attached) {
            bk_lop_detach(m);
            bkc_op_record(&m->op, m->rc);
            struct evbuffer *body = m->body;
            m->body = NULL;
            m->op.cb(&m->op, m->rc, body ? &body : NULL);
            if (body)
                evbuffer_free(body);
        }
        bk_lop_maybe_free(m);
    }
}

static void bk_local_free_data(const void *data, size_t len, void *arg)
{
    (void)len;
    (void)arg;
    mg_free((void *)data);
}

/* A READ's answer: entry of ledger from the store, as a connection's reply reads it. */
static int bk_local_read_body(struct bk_server *s, int64_t ledger, int64_t entry,
                              struct evbuffer **out)
{
    uint8_t *data = NULL;
    size_t len = 0;
    bool owned = false;
    int st = bk_store_read(&s->store, ledger, entry, &data, &len, &owned);
    if (st != WIRE_BK_EOK)
        return st;
    struct evbuffer *b = evbuffer_new();
    if (owned)
        evbuffer_add_reference(b, data, len, bk_local_free_data, NULL);
    else
        evbuffer_add(b, data, len); /* a write-cache entry: not ours to keep */
    *out = b;
    return WIRE_BK_EOK;
}

void bk_local_answer(struct bk_server *s, struct bk_lop *m, enum bk_reply reply, int st,
                     int64_t ledger, int64_t entry)
{
    m->at_bookie = false;
    struct evbuffer *body = NULL;
    if (reply == BK_REPLY_FENCE_READ && st == WIRE_BK_EOK && m->attached)
        st = bk_local_read_body(s, ledger, entry, &body);
    bk_lop_answer(m, st, body);
}

static void bk_local_submit_cb(evutil_socket_t fd, short what, void *arg)
{
    (void)fd;
    (void)what;
    bk_server_submit_pending(arg);
}

static struct bk_lop *bk_lop_new(struct bkc_bookie *bk, uint8_t opcode, int64_t ledger,
                                 int64_t entry, bkc_op_cb cb, void *arg, int slot)
{
    struct bk_lconn *lc = (struct bk_lconn *)bk;
    struct bk_lop *m = mg_calloc(1, sizeof *m);
    m->l = lc->l;
    bkc_op_start(&m->op, bk, opcode, ledger, entry, cb, arg, slot);
    m->attached = true;
    return m;
}

/* The bookie behind bk if it serves requests, else NULL (m answered -MG_EIO). */
static struct bk_server *bk_lop_server(struct bk_lop *m)
{
    struct bk_server *s = ((struct bk_lconn *)m->op.bk)->srv;
    if (s && s->ready)
        return s;
    bk_lop_answer(m, -MG_EIO, NULL);
    return NULL;
}

/* m's record r joins the loop pass's batch for the journal. */
static void bk_lop_journal(struct bk_server *s, struct bk_lop *m, struct bk_jreq *r,
                           enum bk_reply reply)
{
    r->local = m;
    r->reply = reply;
    m->at_bookie = true;
    event_active(s->submit_ev, 0, 0);
}

static struct bkc_op *bk_local_add(struct bkc_bookie *bk, int64_t ledger, int64_t entry,
                                   uint16_t flags, const uint8_t *master_key, const uint8_t *ehdr,
                                   size_t ehdr_len, struct evbuffer *payload, bkc_op_cb cb,
                                   void *arg, int slot)
{
    if (!bk->in_process)
        return bkc_bookie_add(bk, ledger, entry, flags, master_key, ehdr, ehdr_len, payload, cb,
                              arg, slot);
    struct bk_lop *m = bk_lop_new(bk, WIRE_BK_OP_ADD, ledger, entry, cb, arg, slot);
    struct bk_server *s = bk_lop_server(m);
    if (!s)
        return &m->op;
    int st = bk_add_admit(s, ledger, entry, master_key, WIRE_BK_MASTER_KEY_LEN,
                          (flags & WIRE_BK_FLAG_RECOVERY_ADD) != 0,
                          (flags & WIRE_BK_FLAG_HIGH_PRIORITY) != 0);
    if (st != WIRE_BK_EOK) {
        bk_lop_answer(m, st, NULL);
        return &m->op;
    }
    /* the record: what a connection would have received as the entry body */
    size_t plen = evbuffer_get_length(payload);
    uint8_t *body = mg_malloc(ehdr_len + plen);
    memcpy(body, ehdr, ehdr_len);
    evbuffer_copyout(payload, body + ehdr_len, plen);
    bk_lop_journal(s, m, bk_add_queue(s, ledger, entry, body, ehdr_len + plen), BK_REPLY_ADD);
    return &m->op;
}

static struct bkc_op *bk_local_read(struct bkc_bookie *bk, int64_t ledger, int64_t entry,
                                    uint16_t flags, const uint8_t *master_key, bkc_op_cb cb,
                                    void *arg, int slot)
{
    if (!bk->in_process)
        return bkc_bookie_read(bk, ledger, entry, flags, master_key, cb, arg, slot);
    struct bk_lop *m = bk_lop_new(bk, WIRE_BK_OP_READ, ledger, entry, cb, arg, slot);
    struct bk_server *s = bk_lop_server(m);
    if (!s)
        return &m->op;
    int st;
    if (flags & WIRE_BK_FLAG_FENCE) {
        struct bk_jreq *r = bk_fence_begin(s, ledger, entry, master_key, WIRE_BK_MASTER_KEY_LEN,
                                           master_key != NULL, &st);
        if (r) {
            bk_lop_journal(s, m, r, BK_REPLY_FENCE_READ);
            return &m->op;
        }
        bk_lop_answer(m, st, NULL);
        return &m->op;
    }
    struct evbuffer *body = NULL;
    st = bk_local_read_body(s, ledger, entry, &body);
    bk_lop_answer(m, st, body);
    return &m->op;
}

static void bk_local_cancel(struct bkc_op *op)
{
    if (!op->bk->in_process) {
        bkc_op_cancel(op);
        return;
    }
    struct bk_lop *m = (struct bk_lop *)op;
    bk_lop_detach(m);
    bk_lop_maybe_free(m);
}

static void bk_local_check_timeouts(struct bkc_bookie *bk, uint64_t now_ms)
{
    if (!bk->in_process) {
        bkc_bookie_check_timeouts(bk, now_ms);
        return;
    }
    struct bkc_op *op;
    while ((op = TAILQ_FIRST(&bk->ops)) && op->deadline_ms <= now_ms) {
        struct bk_lop *m = (struct bk_lop *)op;
        bk_lop_detach(m);
        bkc_op_record(op, -MG_ETIMEDOUT);
        op->cb(op, -MG_ETIMEDOUT, NULL);
        bk_lop_maybe_free(m);
    }
}

/* ---- connections --------------------------------------------------------------------- */

static void bk_lconn_unlink(struct bk_lconn *lc)
{
    if (!lc->srv)
        return;
    if (lc->prev)
        lc->prev->next = lc->next;
    else
        lc->srv->lconns = lc->next;
    if (lc->next)
        lc->next->prev = lc->prev;
    lc->prev = lc->next = NULL;
    lc->srv = NULL;
}

static struct bkc_bookie *bk_local_bookie_get(struct bkc_client *c, const char *id)
{
    struct bkc_bookie *bk = mg_map_get_str(&c->bookies, id);
    if (bk)
        return bk;
    struct bk_local *l = c->tp.impl;
    struct bk_server *s = NULL;
    for (int i = 0; i < l->n && !s; i++)
        if (l->srvs[i] && strcmp(bk_server_id(l->srvs[i]), id) == 0)
            s = l->srvs[i];
    if (!s)
        return bkc_bookie_get(c, id); /* not in this process: TCP */
    struct bk_lconn *lc = mg_calloc(1, sizeof *lc);
    lc->l = l;
    lc->srv = s;
    lc->next = s->lconns;
    if (s->lconns)
        s->lconns->prev = lc;
    s->lconns = lc;
    bk = &lc->bk;
    bkc_bookie_attach(c, bk, id);
    bk->state = BKC_BK_CONNECTED;
    bk->in_process = true;
    return bk;
}

static void bk_local_bookie_free(struct bkc_bookie *bk)
{
    if (!bk->in_process) {
        bkc_bookie_free(bk);
        return;
    }
    struct bk_lconn *lc = (struct bk_lconn *)bk;
    struct bkc_op *op;
    while ((op = TAILQ_FIRST(&bk->ops)))
        bk_local_cancel(op);
    bk_lconn_unlink(lc);
    mg_free(bk->id);
    mg_free(lc);
}

void bk_local_server_gone(struct bk_server *s)
{
    while (s->lconns)
        bk_lconn_unlink(s->lconns);
    if (s->local) {
        for (int i = 0; i < s->local->n; i++)
            if (s->local->srvs[i] == s)
                s->local->srvs[i] = NULL;
        s->local = NULL;
    }
    mg_event_free(s->submit_ev);
    s->submit_ev = NULL;
}

static const struct bkc_transport_ops bk_local_ops = {
    .name = "in-process",
    .bookie_get = bk_local_bookie_get,
    .bookie_free = bk_local_bookie_free,
    .add = bk_local_add,
    .read = bk_local_read,
    .cancel = bk_local_cancel,
    .check_timeouts = bk_local_check_timeouts,
};

/* ---- registry -------------------------------------------------------------------------- */

struct bk_local *bk_local_new(struct bk_server *const *srvs, int n)
{
    MG_ASSERT(n > 0 && n <= BK_LOCAL_MAX);
    struct bk_local *l = mg_calloc(1, sizeof *l);
    l->base = srvs[0]->base;
    for (int i = 0; i < n; i++) {
        struct bk_server *s = srvs[i];
        MG_ASSERT(!s->local && s->base == l->base); /* one registry, one loop */
        s->local = l;
        if (!s->submit_ev)
            s->submit_ev = event_new(s->base, -1, 0, bk_local_submit_cb, s);
        l->srvs[l->n++] = s;
    }
    STAILQ_INIT(&l->done);
    l->done_ev = event_new(l->base, -1, 0, bk_local_done_cb, l);
    l->tp.ops = &bk_local_ops;
    l->tp.impl = l;
    return l;
}

const struct bkc_transport *bk_local_transport(struct bk_local *l)
{
    return &l->tp;
}

void bk_local_free(struct bk_local *l)
{
    if (!l)
        return;
    /* the clients went first: what is still queued has no one to answer */
    struct bk_lop *m;
    while ((m = STAILQ_FIRST(&l->done))) {
        STAILQ_REMOVE_HEAD(&l->done, done_link);
        m->queued = false;
        bk_lop_maybe_free(m); /* the clients went first: no op is still attached */
    }
    for (int i = 0; i < l->n; i++)
        if (l->srvs[i])
            l->srvs[i]->local = NULL;
    mg_event_free(l->done_ev);
    mg_free(l);
}
