/*
 * bkc_fake.c - in-memory bookies behind the transport interface (bkc_int.h struct
 * bkc_transport_ops), for the unit tests and the simulation: no sockets, time from the
 * client's loop, every random choice from one seed.
 *
 * A fake cluster (struct bkc_fake) holds bookies (struct fk_bookie) that keep, per ledger,
 * the entries added (header, digest and payload, as a bookie stores them), the master key and
 * the fenced flag. Each client that uses the cluster gets one struct fk_conn per bookie (its
 * "connection": a struct bkc_bookie plus the fake bookie it reaches).
 *
 * Life of a request (struct fk_msg, which embeds the client's struct bkc_op):
 *   sent      the filter / random faults decide its fate (pass, drop the request, lose the
 *             answer, answer an error, add a delay, corrupt a read);
 *   ARRIVE    after the network latency the bookie applies it, as a bookie does: an ADD is
 *             refused on a fenced ledger unless it is a recovery add (EFENCED), with another
 *             master key (EUA) or when read-only (EREADONLY), else stored; a READ with the
 *             fence flag fences the ledger first; a READ of entry -1 returns the last entry;
 *   ANSWER    what had to be durable (the added entry, the fence) becomes so ("fsynced":
 *             it survives a crash), then the answer leaves;
 *   DELIVER   after the latency back the op's callback runs (from a timer of the loop,
 *             never inside add/read).
 * Requests to a bookie that is down fail with -MG_EIO at once (connection refused); a crash
 * fails every op in flight to that bookie with -MG_EIO (the connection reset) and loses what
 * the bookie had applied but not yet made durable (each such entry or fence survives with
 * probability 1/2: a bookie can crash after its fsync and before its answer). A partition
 * silently drops requests and answers (the client times out). The client's op may be
 * cancelled or time out while the bookie still applies the request: a request on the wire
 * cannot be called back.
 *
 * Failure modes: none of its own; an id no fake bookie has behaves as an unreachable host
 * (every request fails with -MG_EIO).
 */
#include "bkc/bkc_int.h"
#include "util/alloc.h"
#include "util/err.h"
#include "util/log.h"

#include <event2/buffer.h>
#include <string.h>

#define MOD "bkc-fake"

struct fk_entry {
    uint8_t *data; /* owned: entry header, digest, payload */
    size_t len;
    bool synced; /* survives a crash */
};

struct fk_ledger {
    int64_t id;
    struct fk_entry **ents; /* owned array indexed by entry id, owned entries */
    int64_t cap;
    int64_t max_entry; /* -1: none */
    bool has_key;
    uint8_t key[WIRE_BK_MASTER_KEY_LEN];
    bool fenced, fence_synced;
};

TAILQ_HEAD(fk_conn_list, fk_conn);

struct fk_bookie {
    struct bkc_fake *f; /* borrowed */
    int idx;
    char *id;              /* owned */
    struct mg_map ledgers; /* ledger id -> owned struct fk_ledger * */
    bool down, partitioned, read_only;
    uint64_t gen; /* bumped at each crash: what was in flight before is void */
    int lat_min, lat_max;
    struct bkc_fake_stats stats;
    struct fk_conn_list conns; /* every client connection to it */
};

struct fk_conn {
    struct bkc_bookie bk;      /* first: what the client sees */
    struct fk_bookie *b;       /* borrowed; NULL: no such bookie (unreachable) */
    struct bkc_fake *f;        /* borrowed */
    TAILQ_ENTRY(fk_conn) link; /* b->conns */
};

enum fk_phase { FK_ARRIVE = 0, FK_ANSWER, FK_DELIVER };

struct fk_msg {
    struct bkc_op op;     /* first: the client's op while attached */
    struct bkc_fake *f;   /* borrowed */
    struct fk_bookie *b;  /* borrowed; NULL: unreachable */
    struct fk_conn *conn; /* borrowed while attached */
    bool attached;        /* op is outstanding at the client (in conn->bk.ops) */
    bool in_flight;       /* the timer still has a step to run */
    bool durable;         /* applying it changed what a crash may lose (bkc_fake_msg_sync) */
    uint64_t bgen;        /* the bookie's generation when sent */
    enum fk_phase phase;
    uint16_t flags;
    uint8_t key[WIRE_BK_MASTER_KEY_LEN];
    uint8_t *data; /* owned: ADD body */
    size_t len;
    struct bkc_fake_action act;
    int rc;                /* the answer */
    struct evbuffer *body; /* owned: READ answer body */
    struct mg_timer timer;
    TAILQ_ENTRY(fk_msg) link; /* f->msgs */
};
TAILQ_HEAD(fk_msg_list, fk_msg);

struct bkc_fake {
    struct mg_loop *loop; /* borrowed */
    uint64_t rng;
    struct fk_bookie **bookies; /* owned array of owned bookies */
    int n, cap;
    struct bkc_transport tp;
    bkc_fake_filter filter;
    void *filter_arg;
    struct bkc_fake_random rnd;
    struct fk_msg_list msgs; /* every message alive */
};

static const struct bkc_transport_ops fk_ops;

static uint64_t bkc_fake_rand(struct bkc_fake *f)
{
    /* xorshift64*: the only source of randomness, so a seed replays exactly */
    f->rng ^= f->rng >> 12;
    f->rng ^= f->rng << 25;
    f->rng ^= f->rng >> 27;
    return f->rng * 2685821657736338717ULL;
}

static int bkc_fake_between(struct bkc_fake *f, int lo, int hi)
{
    return hi <= lo ? lo : lo + (int)(bkc_fake_rand(f) % (uint64_t)(hi - lo + 1));
}

/* ---- cluster ------------------------------------------------------------------------------ */

struct bkc_fake *bkc_fake_new(struct mg_loop *loop, uint64_t seed)
{
    struct bkc_fake *f = mg_calloc(1, sizeof *f);
    f->loop = loop;
    f->rng = seed ? seed : 88172645463325252ULL;
    f->tp.ops = &fk_ops;
    f->tp.impl = f;
    TAILQ_INIT(&f->msgs);
    return f;
}

static void bkc_fake_ledger_free(void *p)
{
    struct fk_ledger *l = p;
    for (int64_t i = 0; i < l->cap; i++) {
        if (l->ents[i]) {
            mg_free(l->ents[i]->data);
            mg_free(l->ents[i]);
        }
    }
    mg_free(l->ents);
    mg_free(l);
}

static void bkc_fake_msg_free(struct fk_msg *m)
{
    TAILQ_REMOVE(&m->f->msgs, m, link);
    mg_timer_fini(&m->timer);
    mg_free(m->data);
    if (m->body)
        evbuffer_free(m->body);
    mg_free(m);
}

void bkc_fake_free(struct bkc_fake *f)
{
    if (!f)
        return;
    struct fk_msg *m;
    while ((m = TAILQ_FIRST(&f->msgs))) {
        MG_ASSERT(!m->attached); /* every client was freed first */
        bkc_fake_msg_free(m);
    }
    for (int i = 0; i < f->n; i++) {
        struct fk_bookie *b = f->bookies[i];
        MG_ASSERT(TAILQ_EMPTY(&b->conns));
        mg_map_fini_free(&b->ledgers, bkc_fake_ledger_free);
        mg_free(b->id);
        mg_free(b);
    }
    mg_free(f->bookies);
    mg_free(f);
}

int bkc_fake_add_bookie(struct bkc_fake *f, const char *id)
{
    if (f->n == f->cap) {
        f->cap = f->cap ? f->cap * 2 : 8;
        f->bookies = mg_realloc(f->bookies, (size_t)f->cap * sizeof *f->bookies);
    }
    struct fk_bookie *b = mg_calloc(1, sizeof *b);
    b->f = f;
    b->idx = f->n;
    b->id = mg_strdup(id);
    mg_map_init(&b->ledgers);
    b->lat_min = 1;
    b->lat_max = 3;
    TAILQ_INIT(&b->conns);
    f->bookies[f->n++] = b;
    return b->idx;
}

int bkc_fake_n_bookies(const struct bkc_fake *f)
{
    return f->n;
}

const char *bkc_fake_bookie_id(const struct bkc_fake *f, int i)
{
    return i >= 0 && i < f->n ? f->bookies[i]->id : NULL;
}

int bkc_fake_bookie_index(const struct bkc_fake *f, const char *id)
{
    for (int i = 0; i < f->n; i++)
        if (strcmp(f->bookies[i]->id, id) == 0)
            return i;
    return -1;
}

const struct bkc_transport *bkc_fake_transport(struct bkc_fake *f)
{
    return &f->tp;
}

void bkc_fake_set_filter(struct bkc_fake *f, bkc_fake_filter fn, void *arg)
{
    f->filter = fn;
    f->filter_arg = arg;
}

void bkc_fake_set_random(struct bkc_fake *f, const struct bkc_fake_random *r)
{
    if (r)
        f->rnd = *r;
    else
        memset(&f->rnd, 0, sizeof f->rnd);
}

void bkc_fake_set_latency(struct bkc_fake *f, int i, int min_ms, int max_ms)
{
    for (int k = 0; k < f->n; k++) {
        if (i >= 0 && k != i)
            continue;
        f->bookies[k]->lat_min = min_ms;
        f->bookies[k]->lat_max = max_ms < min_ms ? min_ms : max_ms;
    }
}

static struct fk_bookie *bkc_fake_bookie_at(const struct bkc_fake *f, int i)
{
    MG_ASSERT(i >= 0 && i < f->n);
    return f->bookies[i];
}

/* ---- ledger state ---------------------------------------------------------------------------- */

static struct fk_ledger *bkc_fake_ledger_get(struct fk_bookie *b, int64_t id, bool create)
{
    struct fk_ledger *l = mg_map_get_u64(&b->ledgers, (uint64_t)id);
    if (l || !create)
        return l;
    l = mg_calloc(1, sizeof *l);
    l->id = id;
    l->max_entry = -1;
    mg_map_put_u64(&b->ledgers, (uint64_t)id, l);
    return l;
}

static struct fk_entry *bkc_fake_entry_get(const struct fk_ledger *l, int64_t e)
{
    return l && e >= 0 && e < l->cap ? l->ents[e] : NULL;
}

static void bkc_fake_entry_put(struct fk_ledger *l, int64_t e, uint8_t *data, size_t len)
{
    if (e >= l->cap) {
        int64_t ncap = l->cap ? l->cap : 16;
        while (ncap <= e)
            ncap *= 2;
        l->ents = mg_realloc(l->ents, (size_t)ncap * sizeof *l->ents);
        memset(l->ents + l->cap, 0, (size_t)(ncap - l->cap) * sizeof *l->ents);
        l->cap = ncap;
    }
    struct fk_entry *x = l->ents[e];
    if (!x) {
        x = mg_calloc(1, sizeof *x);
        l->ents[e] = x;
    }
    mg_free(x->data);
    x->data = data;
    x->len = len;
    x->synced = false;
    if (e > l->max_entry)
        l->max_entry = e;
}

static void bkc_fake_ledger_recount(struct fk_ledger *l)
{
    l->max_entry = -1;
    for (int64_t e = l->cap - 1; e >= 0; e--)
        if (l->ents[e]) {
            l->max_entry = e;
            break;
        }
}

/* ---- message steps ----------------------------------------------------------------------------
 */

static void bkc_fake_msg_step(struct mg_timer *t, void *arg);

/* Let go of the op (cancel, timeout, delivery, crash). */
static void bkc_fake_msg_detach(struct fk_msg *m)
{
    if (!m->attached)
        return;
    struct bkc_bookie *bk = &m->conn->bk;
    TAILQ_REMOVE(&bk->ops, &m->op, link);
    bk->n_ops--;
    m->attached = false;
    m->conn = NULL;
}

static void bkc_fake_msg_maybe_free(struct fk_msg *m)
{
    if (!m->attached && !m->in_flight)
        bkc_fake_msg_free(m);
}

static void bkc_fake_msg_after(struct fk_msg *m, enum fk_phase phase, int ms)
{
    m->phase = phase;
    m->in_flight = true;
    mg_timer_start(&m->timer, (uint64_t)(ms < 0 ? 0 : ms));
}

/* The bookie is gone for this message: nothing more happens on its side. */
static void bkc_fake_msg_void(struct fk_msg *m)
{
    m->in_flight = false;
    bkc_fake_msg_maybe_free(m);
}

static int bkc_fake_net_ms(struct fk_bookie *b)
{
    return bkc_fake_between(b->f, b->lat_min, b->lat_max);
}

static bool bkc_fake_key_ok(struct fk_ledger *l, const uint8_t *key)
{
    if (!l->has_key) {
        memcpy(l->key, key, WIRE_BK_MASTER_KEY_LEN);
        l->has_key = true;
        return true;
    }
    return memcmp(l->key, key, WIRE_BK_MASTER_KEY_LEN) == 0;
}

/* The bookie applies the request. Returns true if something must become durable before
 * the answer (an added entry, a fence). */
static bool bkc_fake_msg_apply(struct fk_msg *m)
{
    struct fk_bookie *b = m->b;
    if (m->op.opcode == WIRE_BK_OP_ADD) {
        b->stats.adds++;
        if (m->flags & WIRE_BK_FLAG_RECOVERY_ADD)
            b->stats.recovery_adds++;
        if (b->read_only) {
            m->rc = WIRE_BK_EREADONLY;
            return false;
        }
        struct fk_ledger *l = bkc_fake_ledger_get(b, m->op.ledger, true);
        if (!bkc_fake_key_ok(l, m->key)) {
            m->rc = WIRE_BK_EUA;
            return false;
        }
        if (l->fenced && !(m->flags & WIRE_BK_FLAG_RECOVERY_ADD)) {
            m->rc = WIRE_BK_EFENCED;
            return false;
        }
        bkc_fake_entry_put(l, m->op.entry, m->data, m->len);
        m->data = NULL;
        m->rc = WIRE_BK_EOK;
        return true;
    }
    b->stats.reads++;
    bool fence = (m->flags & WIRE_BK_FLAG_FENCE) != 0;
    bool durable = false;
    struct fk_ledger *l = bkc_fake_ledger_get(b, m->op.ledger, fence);
    if (fence) {
        b->stats.fence_reads++;
        if (!bkc_fake_key_ok(l, m->key)) {
            m->rc = WIRE_BK_EUA;
            return false;
        }
        if (!l->fenced) {
            l->fenced = true;
            l->fence_synced = false;
            durable = true;
        }
    }
    if (!l) {
        m->rc = WIRE_BK_ENOLEDGER;
        return false;
    }
    int64_t e = m->op.entry == -1 ? l->max_entry : m->op.entry;
    struct fk_entry *x = bkc_fake_entry_get(l, e);
    if (!x) {
        m->rc = WIRE_BK_ENOENTRY;
        return durable;
    }
    m->rc = WIRE_BK_EOK;
    m->body = evbuffer_new();
    evbuffer_add(m->body, x->data, x->len);
    if (m->act.corrupt && x->len > 0) {
        /* the copy sent has its last byte flipped (a bad disk or wire) */
        uint8_t *p = evbuffer_pullup(m->body, -1);
        p[x->len - 1] ^= 0x5a;
    }
    return durable;
}

/* What the answer made durable. */
static void bkc_fake_msg_sync(struct fk_msg *m)
{
    struct fk_ledger *l = m->durable ? bkc_fake_ledger_get(m->b, m->op.ledger, false) : NULL;
    if (!l)
        return;
    if (m->op.opcode == WIRE_BK_OP_ADD) {
        struct fk_entry *x = bkc_fake_entry_get(l, m->op.entry);
        if (x)
            x->synced = true;
    } else if (l->fenced) {
        l->fence_synced = true;
    }
}

static void bkc_fake_msg_deliver(struct fk_msg *m)
{
    m->in_flight = false;
    if (!m->attached) {
        bkc_fake_msg_maybe_free(m);
        return;
    }
    struct fk_conn *conn = m->conn;
    bkc_fake_msg_detach(m);
    int rc = m->rc;
    if (m->op.opcode == WIRE_BK_OP_ADD) {
        if (rc == WIRE_BK_EOK)
            conn->bk.add_count++;
        else
            conn->bk.add_errors++;
    }
    struct evbuffer *body = m->body;
    m->body = NULL;
    m->op.cb(&m->op, rc, body ? &body : NULL);
    if (body)
        evbuffer_free(body);
    bkc_fake_msg_free(m);
}

static void bkc_fake_msg_step(struct mg_timer *t, void *arg)
{
    (void)t;
    struct fk_msg *m = arg;
    struct fk_bookie *b = m->b;
    if (m->phase == FK_DELIVER) {
        bkc_fake_msg_deliver(m);
        return;
    }
    if (!b || b->down || b->gen != m->bgen) {
        bkc_fake_msg_void(m); /* the client's op failed (or fails) with the connection */
        return;
    }
    if (m->phase == FK_ARRIVE) {
        if (m->act.verdict == BKC_FAKE_ERROR)
            m->rc = m->act.rc;
        else
            m->durable = bkc_fake_msg_apply(m);
        /* the journal's fsync takes about a network trip */
        bkc_fake_msg_after(m, FK_ANSWER, m->durable ? bkc_fake_net_ms(b) : 0);
        return;
    }
    /* FK_ANSWER */
    bkc_fake_msg_sync(m);
    if (b->partitioned || m->act.verdict == BKC_FAKE_LOSE_ANSWER) {
        bkc_fake_msg_void(m); /* the op times out at the client */
        return;
    }
    bkc_fake_msg_after(m, FK_DELIVER, bkc_fake_net_ms(b) + m->act.delay_ms);
}

/* ---- transport ops ------------------------------------------------------------------------- */

static struct bkc_bookie *bkc_fake_bookie_get(struct bkc_client *c, const char *id)
{
    struct bkc_bookie *bk = mg_map_get_str(&c->bookies, id);
    if (bk)
        return bk;
    struct bkc_fake *f = c->tp.impl;
    struct fk_conn *conn = mg_calloc(1, sizeof *conn);
    conn->f = f;
    int i = bkc_fake_bookie_index(f, id);
    conn->b = i >= 0 ? f->bookies[i] : NULL;
    if (conn->b)
        TAILQ_INSERT_TAIL(&conn->b->conns, conn, link);
    bk = &conn->bk;
    bkc_bookie_attach(c, bk, id);
    bk->state = BKC_BK_CONNECTED;
    return bk;
}

static void bkc_fake_cancel(struct bkc_op *op)
{
    struct fk_msg *m = (struct fk_msg *)op;
    bkc_fake_msg_detach(m);
    bkc_fake_msg_maybe_free(m);
}

static void bkc_fake_bookie_free(struct bkc_bookie *bk)
{
    struct fk_conn *conn = (struct fk_conn *)bk;
    struct bkc_op *op;
    while ((op = TAILQ_FIRST(&bk->ops)))
        bkc_fake_cancel(op);
    if (conn->b)
        TAILQ_REMOVE(&conn->b->conns, conn, link);
    mg_free(bk->id);
    mg_free(conn);
}

static struct fk_msg *bkc_fake_msg_new(struct bkc_bookie *bk, uint8_t opcode, int64_t ledger,
                                       int64_t entry, uint16_t flags, const uint8_t *key,
                                       bkc_op_cb cb, void *arg, int slot)
{
    struct fk_conn *conn = (struct fk_conn *)bk;
    struct bkc_fake *f = conn->f;
    struct fk_msg *m = mg_calloc(1, sizeof *m);
    m->f = f;
    m->b = conn->b;
    m->conn = conn;
    m->flags = flags;
    if (key)
        memcpy(m->key, key, WIRE_BK_MASTER_KEY_LEN);
    bkc_op_start(&m->op, bk, opcode, ledger, entry, cb, arg, slot);
    m->attached = true;
    mg_timer_init(&m->timer, f->loop, bkc_fake_msg_step, m);
    TAILQ_INSERT_TAIL(&f->msgs, m, link);
    return m;
}

/* Decide the request's fate and start its trip. */
static void bkc_fake_msg_send(struct fk_msg *m)
{
    struct bkc_fake *f = m->f;
    struct fk_bookie *b = m->b;
    if (!b || b->down) {
        /* connection refused: the op fails from the loop */
        m->rc = -MG_EIO;
        bkc_fake_msg_after(m, FK_DELIVER, 0);
        return;
    }
    m->bgen = b->gen;
    struct bkc_fake_req r = {
        .bookie = b->idx,
        .add = m->op.opcode == WIRE_BK_OP_ADD,
        .ledger = m->op.ledger,
        .entry = m->op.entry,
        .fence = (m->flags & WIRE_BK_FLAG_FENCE) != 0,
        .recovery = (m->flags & WIRE_BK_FLAG_RECOVERY_ADD) != 0,
    };
    const struct bkc_fake_random *rnd = &f->rnd;
    if (rnd->drop_permille || rnd->lose_answer_permille || rnd->error_permille ||
        rnd->delay_permille) {
        int p = (int)(bkc_fake_rand(f) % 1000);
        int d = rnd->drop_permille, la = d + rnd->lose_answer_permille,
            er = la + rnd->error_permille, dl = er + rnd->delay_permille;
        if (p < d) {
            m->act.verdict = BKC_FAKE_DROP;
        } else if (p < la) {
            m->act.verdict = BKC_FAKE_LOSE_ANSWER;
        } else if (p < er) {
            static const int add_errs[] = {WIRE_BK_EIO, WIRE_BK_ETOOMANYREQUESTS,
                                           WIRE_BK_EREADONLY};
            m->act.verdict = BKC_FAKE_ERROR;
            m->act.rc = r.add ? add_errs[bkc_fake_rand(f) % 3] : WIRE_BK_EIO;
        } else if (p < dl) {
            m->act.delay_ms =
                bkc_fake_between(f, 1, rnd->max_delay_ms > 0 ? rnd->max_delay_ms : 50);
        }
    }
    if (f->filter)
        f->filter(f->filter_arg, &r, &m->act);
    if (b->partitioned || m->act.verdict == BKC_FAKE_DROP) {
        m->in_flight = false; /* never arrives: the op times out */
        return;
    }
    bkc_fake_msg_after(m, FK_ARRIVE, bkc_fake_net_ms(b));
}

static struct bkc_op *bkc_fake_add(struct bkc_bookie *bk, int64_t ledger, int64_t entry,
                                   uint16_t flags, const uint8_t *master_key, const uint8_t *ehdr,
                                   size_t ehdr_len, struct evbuffer *payload, bkc_op_cb cb,
                                   void *arg, int slot)
{
    struct fk_msg *m =
        bkc_fake_msg_new(bk, WIRE_BK_OP_ADD, ledger, entry, flags, master_key, cb, arg, slot);
    size_t plen = evbuffer_get_length(payload);
    m->len = ehdr_len + plen;
    m->data = mg_malloc(m->len ? m->len : 1);
    memcpy(m->data, ehdr, ehdr_len);
    evbuffer_copyout(payload, m->data + ehdr_len, plen);
    bkc_fake_msg_send(m);
    return &m->op;
}

static struct bkc_op *bkc_fake_read(struct bkc_bookie *bk, int64_t ledger, int64_t entry,
                                    uint16_t flags, const uint8_t *master_key, bkc_op_cb cb,
                                    void *arg, int slot)
{
    struct fk_msg *m =
        bkc_fake_msg_new(bk, WIRE_BK_OP_READ, ledger, entry, flags,
                         (flags & WIRE_BK_FLAG_FENCE) ? master_key : NULL, cb, arg, slot);
    bkc_fake_msg_send(m);
    return &m->op;
}

static void bkc_fake_check_timeouts(struct bkc_bookie *bk, uint64_t now_ms)
{
    struct bkc_op *op;
    while ((op = TAILQ_FIRST(&bk->ops)) && op->deadline_ms <= now_ms) {
        struct fk_msg *m = (struct fk_msg *)op;
        bkc_fake_msg_detach(m);
        if (op->opcode == WIRE_BK_OP_ADD)
            bk->add_errors++;
        op->cb(op, -MG_ETIMEDOUT, NULL);
        bkc_fake_msg_maybe_free(m);
    }
}

static const struct bkc_transport_ops fk_ops = {
    .name = "fake",
    .bookie_get = bkc_fake_bookie_get,
    .bookie_free = bkc_fake_bookie_free,
    .add = bkc_fake_add,
    .read = bkc_fake_read,
    .cancel = bkc_fake_cancel,
    .check_timeouts = bkc_fake_check_timeouts,
};

/* ---- faults -------------------------------------------------------------------------------- */

void bkc_fake_crash(struct bkc_fake *f, int i)
{
    struct fk_bookie *b = bkc_fake_bookie_at(f, i);
    if (b->down)
        return;
    b->down = true;
    b->gen++;
    /* What was applied but not yet durable: each item survives with probability 1/2. */
    size_t it = 0;
    void *v;
    while (mg_map_next(&b->ledgers, &it, NULL, NULL, &v)) {
        struct fk_ledger *l = v;
        for (int64_t e = 0; e < l->cap; e++) {
            struct fk_entry *x = l->ents[e];
            if (!x || x->synced)
                continue;
            if (bkc_fake_rand(f) & 1) {
                x->synced = true;
            } else {
                mg_free(x->data);
                mg_free(x);
                l->ents[e] = NULL;
            }
        }
        bkc_fake_ledger_recount(l);
        if (l->fenced && !l->fence_synced) {
            if (bkc_fake_rand(f) & 1)
                l->fence_synced = true;
            else
                l->fenced = false;
        }
    }
    /* Every connection to it resets: the ops in flight fail from the loop. */
    struct fk_conn *conn;
    TAILQ_FOREACH(conn, &b->conns, link)
    {
        struct bkc_op *op;
        TAILQ_FOREACH(op, &conn->bk.ops, link)
        {
            struct fk_msg *m = (struct fk_msg *)op;
            m->rc = -MG_EIO;
            if (m->body) {
                evbuffer_free(m->body);
                m->body = NULL;
            }
            bkc_fake_msg_after(m, FK_DELIVER, 0);
        }
    }
    MG_DEBUG(MOD, "bookie %s crashed", b->id);
}

void bkc_fake_restart(struct bkc_fake *f, int i)
{
    struct fk_bookie *b = bkc_fake_bookie_at(f, i);
    b->down = false;
    MG_DEBUG(MOD, "bookie %s restarted", b->id);
}

void bkc_fake_partition(struct bkc_fake *f, int i, bool on)
{
    bkc_fake_bookie_at(f, i)->partitioned = on;
}

void bkc_fake_set_read_only(struct bkc_fake *f, int i, bool on)
{
    bkc_fake_bookie_at(f, i)->read_only = on;
}

bool bkc_fake_is_up(const struct bkc_fake *f, int i)
{
    const struct fk_bookie *b = bkc_fake_bookie_at(f, i);
    return !b->down && !b->partitioned;
}

/* ---- inspection -------------------------------------------------------------------------------
 */

bool bkc_fake_has_entry(const struct bkc_fake *f, int i, int64_t ledger, int64_t entry)
{
    struct fk_bookie *b = bkc_fake_bookie_at(f, i);
    return bkc_fake_entry_get(bkc_fake_ledger_get(b, ledger, false), entry) != NULL;
}

int64_t bkc_fake_count_entries(const struct bkc_fake *f, int i, int64_t ledger)
{
    struct fk_ledger *l = bkc_fake_ledger_get(bkc_fake_bookie_at(f, i), ledger, false);
    int64_t n = 0;
    for (int64_t e = 0; l && e < l->cap; e++)
        n += l->ents[e] != NULL;
    return n;
}

bool bkc_fake_is_fenced(const struct bkc_fake *f, int i, int64_t ledger)
{
    struct fk_ledger *l = bkc_fake_ledger_get(bkc_fake_bookie_at(f, i), ledger, false);
    return l && l->fenced;
}

void bkc_fake_corrupt_entry(struct bkc_fake *f, int i, int64_t ledger, int64_t entry)
{
    struct fk_entry *x =
        bkc_fake_entry_get(bkc_fake_ledger_get(bkc_fake_bookie_at(f, i), ledger, false), entry);
    if (x && x->len > 0)
        x->data[x->len - 1] ^= 0x5a;
}

void bkc_fake_get_stats(const struct bkc_fake *f, int i, struct bkc_fake_stats *out)
{
    *out = bkc_fake_bookie_at(f, i)->stats;
}
