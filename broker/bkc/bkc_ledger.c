/*
 * bkc_ledger.c - ledger handles: create, adds with quorum tracking, ensemble changes, close,
 * reads, LAC reads, fencing and recovery (docs/wire-bookkeeper.md §5).
 *
 * Add path: bkc_add gives the entry the next id, builds its 32-byte header and digest once,
 * and sends it to the Qw bookies of its write set (ensemble[(e+i) % E]); the payload is
 * referenced into each connection. Acks are tracked per ensemble index; an entry is complete
 * with Qa of them, and completions are delivered (LAC advanced, callbacks queued) strictly in
 * entry order.
 * Failure modes of adds: EFENCED fails every pending add with -MG_EFENCED and the writer for
 * good; EUA likewise with -MG_ENOTALLOWED; any other error, a timeout or a lost connection
 * marks that ensemble index failed: its acks on pending entries stop counting and an
 * ensemble change starts (list /ledgers/available, replace the failed bookies with ones
 * outside the ensemble, CAS the metadata with a segment starting at LAC+1, then resend the
 * unacknowledged entries to the replacements). Delivery and new sends are held during the
 * change. No replacement available or a metadata failure fails the writer with -MG_EIO; a
 * metadata state other than ours (someone recovers) fails it with -MG_EFENCED.
 *
 * Recovery (bkc_open with recovery): CAS IN_RECOVERY; fencing LAC read on the last ensemble
 * until every write quorum has Qw-Qa+1 answers; start = max(LAC seen, first entry of the last
 * segment - 1); read forward with fencing reads to the whole write set, re-adding each entry
 * found with RECOVERY_ADD through the normal add path (so ensemble changes work), until an
 * entry is confirmed missing by Qw-Qa+1 bookies; once the re-adds are acknowledged, CAS
 * CLOSED at the LAC. A concurrent recoverer that closed first wins (we adopt its result).
 */
#include "bkc/bkc_int.h"
#include "util/alloc.h"
#include "util/err.h"
#include "util/log.h"

#include <event2/buffer.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define MOD "bkc"
#define BIT(i) ((uint64_t)1 << (i))

static void bkc_lh_deliver(struct bkc_ledger *lh);
static void bkc_lh_check_drained(struct bkc_ledger *lh);
static void bkc_change_start(struct bkc_ledger *lh);
static void bkc_md_close(struct bkc_ledger *lh);
static void bkc_rrd_start(struct bkc_ledger *lh);
static void bkc_rd_resume(struct bkc_ledger *lh);

static void bkc_set_errmsg(char *dst, size_t cap, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
static void bkc_set_errmsg(char *dst, size_t cap, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(dst, cap, fmt, ap);
    va_end(ap);
}

/* ---- handle lifecycle ----------------------------------------------------------------- */

struct bkc_ledger *bkc_ledger_alloc(struct bkc_client *c, int64_t id, enum bkc_mode mode)
{
    struct bkc_ledger *lh = mg_calloc(1, sizeof(*lh));
    lh->c = c;
    lh->id = id;
    lh->path = id >= 0 ? bkc_ledger_path(c->root, id) : NULL;
    lh->mode = mode;
    lh->lac = lh->last_pushed = -1;
    TAILQ_INIT(&lh->adds);
    TAILQ_INIT(&lh->reads);
    TAILQ_INIT(&lh->mops);
    TAILQ_INSERT_TAIL(&c->ledgers, lh, link);
    return lh;
}

/* Point ens[] at the bookies of the last segment. */
static void bkc_lh_set_ensemble(struct bkc_ledger *lh)
{
    struct bkc_segment *s = &lh->md.segs[lh->md.n_segs - 1];
    for (int i = 0; i < lh->md.ensemble_size; i++)
        lh->ens[i] = lh->c->tp.ops->bookie_get(lh->c, s->bookies[i]);
}

static void bkc_add_free(struct bkc_ledger *lh, struct bkc_add *a)
{
    for (int i = 0; i < lh->md.ensemble_size && i < BKC_MAX_ENSEMBLE; i++)
        bkc_op_cancel_tp(lh->c, a->ops[i]);
    if (a->own_payload)
        evbuffer_free(a->payload);
    mg_free(a);
}

static void bkc_rd_free(struct bkc_rd *rd)
{
    for (int i = 0; i < rd->n; i++) {
        bkc_op_cancel_tp(rd->lh->c, rd->ents[i].op);
        if (rd->ents[i].payload)
            evbuffer_free(rd->ents[i].payload);
    }
    mg_free(rd->ents);
    mg_free(rd);
}

static void bkc_lacrd_free(struct bkc_lacrd *lr)
{
    for (int i = 0; i < BKC_MAX_ENSEMBLE; i++)
        bkc_op_cancel_tp(lr->lh->c, lr->ops[i]);
    mg_free(lr);
}

static void bkc_rrd_free(struct bkc_client *c, struct bkc_rrd *r)
{
    for (int i = 0; i < BKC_MAX_ENSEMBLE; i++)
        bkc_op_cancel_tp(c, r->ops[i]);
    mg_free(r);
}

static void bkc_req_fail(struct bkc_ledger *lh, struct bkc_req *req, int status, const char *msg)
{
    if (msg && msg[0] && !req->errmsg[0])
        snprintf(req->errmsg, sizeof(req->errmsg), "%s", msg);
    bkc_complete(lh->c, req, status);
}

void bkc_ledger_destroy(struct bkc_ledger *lh, int status, bool defer)
{
    struct bkc_client *c = lh->c;
    const char *msg = lh->errmsg[0] ? lh->errmsg : NULL;
    if (lh->mode == BKC_MODE_DEAD) {
        if (!defer) {
            /* already aborted, waiting in zombies */
            TAILQ_REMOVE(&c->zombies, lh, link);
            goto release;
        }
        return;
    }
    lh->mode = BKC_MODE_DEAD;
    bkc_mops_kill(c, lh);
    struct bkc_add *a;
    while ((a = TAILQ_FIRST(&lh->adds))) {
        TAILQ_REMOVE(&lh->adds, a, link);
        if (a->req)
            bkc_req_fail(lh, a->req, status, msg);
        bkc_add_free(lh, a);
    }
    struct bkc_rd *rd;
    while ((rd = TAILQ_FIRST(&lh->reads))) {
        TAILQ_REMOVE(&lh->reads, rd, link);
        if (rd->req)
            bkc_req_fail(lh, rd->req, status, NULL);
        bkc_rd_free(rd);
    }
    if (lh->lacrd) {
        if (lh->lacrd->req)
            bkc_req_fail(lh, lh->lacrd->req, status, NULL);
        bkc_lacrd_free(lh->lacrd);
        lh->lacrd = NULL;
    }
    if (lh->rrd) {
        bkc_rrd_free(lh->c, lh->rrd);
        lh->rrd = NULL;
    }
    if (lh->rr) {
        bkc_req_fail(lh, lh->rr->req, status, msg);
        bkc_rr_free(c, lh->rr);
        lh->rr = NULL;
    }
    if (lh->close_req) {
        bkc_req_fail(lh, lh->close_req, status, msg);
        lh->close_req = NULL;
    }
    if (lh->open_req) {
        bkc_req_fail(lh, lh->open_req, status, msg);
        lh->open_req = NULL;
    }
    TAILQ_REMOVE(&c->ledgers, lh, link);
    if (defer) {
        TAILQ_INSERT_TAIL(&c->zombies, lh, link);
        return;
    }
release:
    mg_free_strv(lh->failed_ids, lh->n_failed_ids);
    bkc_md_fini(&lh->md);
    bkc_md_fini(&lh->new_md);
    mg_free(lh->path);
    mg_free(lh);
}

void bkc_zombies_free(struct bkc_client *c)
{
    struct bkc_ledger *lh;
    while ((lh = TAILQ_FIRST(&c->zombies)))
        bkc_ledger_destroy(lh, -MG_ECANCELED, false);
}

void bkc_ledger_free(struct bkc_ledger *lh)
{
    if (lh)
        bkc_ledger_destroy(lh, -MG_ECANCELED, false);
}

/* A create or open failed: complete its request and retire the handle. */
static void bkc_open_fail(struct bkc_ledger *lh, int status, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
static void bkc_open_fail(struct bkc_ledger *lh, int status, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(lh->errmsg, sizeof(lh->errmsg), fmt, ap);
    va_end(ap);
    MG_WARN(MOD, "%s", lh->errmsg);
    bkc_ledger_destroy(lh, status, true);
}

/* Fail a writer (or a recovery) for good: every pending add completes with err. */
static void bkc_lh_fail(struct bkc_ledger *lh, int err, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
static void bkc_lh_fail(struct bkc_ledger *lh, int err, const char *fmt, ...)
{
    if (lh->mode == BKC_MODE_DEAD)
        return;
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(lh->errmsg, sizeof(lh->errmsg), fmt, ap);
    va_end(ap);
    if (lh->mode == BKC_MODE_RECOVERING) {
        MG_WARN(MOD, "%s", lh->errmsg);
        bkc_ledger_destroy(lh, err, true);
        return;
    }
    if (!lh->err)
        MG_WARN(MOD, "%s", lh->errmsg);
    if (!lh->err)
        lh->err = err;
    bkc_mops_kill(lh->c, lh); /* an ensemble change in flight */
    if (lh->md_refreshing) {  /* ... or a read's metadata re-read: the reads go on without */
        lh->md_refreshing = false;
        bkc_rd_resume(lh);
    }
    lh->changing = false;
    lh->failed = 0;
    bkc_md_fini(&lh->new_md);
    struct bkc_add *a;
    while ((a = TAILQ_FIRST(&lh->adds))) {
        TAILQ_REMOVE(&lh->adds, a, link);
        if (a->req)
            bkc_req_fail(lh, a->req, err, lh->errmsg);
        bkc_add_free(lh, a);
    }
    bkc_lh_check_drained(lh);
}

/* ---- entries -------------------------------------------------------------------------- */

/* Check a stored entry body: ledger id, entry id (expect < -1: any), digest. On success the
 * header fields are returned and the header+digest bytes are left in body. */
int bkc_verify_entry(struct bkc_ledger *lh, struct evbuffer *body, int64_t expect, int64_t *entry,
                     int64_t *lac, int64_t *length)
{
    size_t hl = WIRE_BK_ENTRY_HDR_LEN + (size_t)lh->digest_len;
    size_t n = evbuffer_get_length(body);
    uint8_t h[WIRE_BK_ENTRY_HDR_LEN + WIRE_BK_MAX_DIGEST_LEN], d[WIRE_BK_MAX_DIGEST_LEN];
    if (n < hl || evbuffer_copyout(body, h, hl) < (ev_ssize_t)hl)
        return -MG_EPROTO;
    struct wire_bk_entry_hdr eh;
    wire_bk_entry_hdr_get(h, &eh);
    if (eh.ledger != lh->id || (expect >= -1 && eh.entry != expect))
        return -MG_EPROTO;
    bkc_digest(lh->digest, lh->mac_key, h, body, hl, n - hl, 0, 0, d);
    if (memcmp(d, h + WIRE_BK_ENTRY_HDR_LEN, (size_t)lh->digest_len) != 0)
        return -MG_ECHECKSUM;
    if (entry)
        *entry = eh.entry;
    if (lac)
        *lac = eh.lac;
    if (length)
        *length = eh.length;
    return 0;
}

/* ---- adds ----------------------------------------------------------------------------- */

bool bkc_in_write_set(const struct bkc_ledger *lh, int64_t entry, int idx)
{
    int e = lh->md.ensemble_size;
    for (int i = 0; i < lh->md.write_quorum; i++)
        if ((int)((entry + i) % e) == idx)
            return true;
    return false;
}

/* A bookie failed on this handle: ensemble changes of this handle never pick it again, so
 * that two bookies that refuse at once (down but still registered) cannot be swapped for
 * each other forever: once every candidate failed, the writer fails with -MG_ENOBOOKIES. */
static void bkc_note_failed_bookie(struct bkc_ledger *lh, const char *id)
{
    for (int i = 0; i < lh->n_failed_ids; i++)
        if (strcmp(lh->failed_ids[i], id) == 0)
            return;
    lh->failed_ids = mg_realloc(lh->failed_ids, (size_t)(lh->n_failed_ids + 1) * sizeof(char *));
    lh->failed_ids[lh->n_failed_ids++] = mg_strdup(id);
}

static void bkc_add_op_cb(struct bkc_op *op, int rc, struct evbuffer **body)
{
    (void)body;
    struct bkc_add *a = op->arg;
    struct bkc_ledger *lh = a->lh;
    int idx = op->slot;
    a->ops[idx] = NULL;
    if (rc == WIRE_BK_EOK) {
        if (lh->failed & BIT(idx))
            return;
        if (!(a->acked & BIT(idx))) {
            a->acked |= BIT(idx);
            a->n_acked++;
        }
        if (a->n_acked >= lh->md.ack_quorum && a == TAILQ_FIRST(&lh->adds))
            bkc_lh_deliver(lh);
        return;
    }
    if (rc == WIRE_BK_EFENCED) {
        bkc_lh_fail(lh, -MG_EFENCED,
                    "ledger %" PRId64 " is fenced (bookie %s: EFENCED): it was "
                    "recovered by another client",
                    lh->id, op->bk->id);
        return;
    }
    if (rc == WIRE_BK_EUA) {
        bkc_lh_fail(lh, -MG_ENOTALLOWED,
                    "ledger %" PRId64 ": bookie %s refused the master key "
                    "(EUA)",
                    lh->id, op->bk->id);
        return;
    }
    if (lh->failed & BIT(idx))
        return;
    MG_WARN(MOD,
            "ledger %" PRId64 ": add of entry %" PRId64 " on bookie %s (index %d) "
            "failed: %s; replacing the bookie",
            lh->id, a->entry, op->bk->id, idx, wire_bk_status_str(rc));
    snprintf(lh->fail_why, sizeof(lh->fail_why), "bookie %s answered %s%s", op->bk->id,
             wire_bk_status_str(rc),
             rc == WIRE_BK_EREADONLY ? " (read-only: its disk is full?)" : "");
    lh->failed |= BIT(idx);
    bkc_note_failed_bookie(lh, op->bk->id);
    struct bkc_add *p;
    TAILQ_FOREACH(p, &lh->adds, link)
    {
        if (p->ops[idx]) {
            bkc_op_cancel_tp(lh->c, p->ops[idx]);
            p->ops[idx] = NULL;
        }
        if (p->acked & BIT(idx)) {
            p->acked &= ~BIT(idx);
            p->n_acked--;
        }
    }
    if (!lh->changing)
        bkc_change_start(lh);
}

static void bkc_add_send_slot(struct bkc_ledger *lh, struct bkc_add *a, int idx)
{
    bkc_op_cancel_tp(lh->c, a->ops[idx]);
    a->ops[idx] = lh->c->tp.ops->add(lh->ens[idx], lh->id, a->entry, a->flags, lh->master_key,
                                     a->ehdr, a->ehdr_len, a->payload, bkc_add_op_cb, a, idx);
}

static void bkc_add_send(struct bkc_ledger *lh, struct bkc_add *a)
{
    if (!a->sent) {
        size_t len = evbuffer_get_length(a->payload);
        /* The piggybacked LAC tells a later reader or recoverer that the entries up to it
         * have Qa copies on the ensembles the metadata names. A recovery's own re-adds may
         * have been acknowledged by replacements the metadata does not name yet (written
         * only with CLOSED): they vouch only for what the fencing established. */
        int64_t lac =
            lh->mode == BKC_MODE_RECOVERING && lh->lac > lh->rec_start ? lh->rec_start : lh->lac;
        struct wire_bk_entry_hdr eh = {
            .ledger = lh->id, .entry = a->entry, .lac = lac, .length = a->length};
        wire_bk_entry_hdr_put(a->ehdr, &eh);
        bkc_digest(lh->digest, lh->mac_key, a->ehdr, a->payload, 0, len, a->tail_crc, a->tail_len,
                   a->ehdr + WIRE_BK_ENTRY_HDR_LEN);
        a->ehdr_len = WIRE_BK_ENTRY_HDR_LEN + (size_t)lh->digest_len;
        a->sent = true;
    }
    int e = lh->md.ensemble_size;
    for (int i = 0; i < lh->md.write_quorum; i++) {
        int idx = (int)((a->entry + i) % e);
        if (!(lh->failed & BIT(idx)))
            bkc_add_send_slot(lh, a, idx);
    }
}

static struct bkc_add *bkc_push_add(struct bkc_ledger *lh, struct evbuffer *payload, bool own,
                                    uint16_t flags, int64_t length, struct bkc_req *req,
                                    uint32_t tail_crc, size_t tail_len)
{
    struct bkc_add *a = mg_calloc(1, sizeof(*a));
    a->tail_crc = tail_crc;
    a->tail_len = tail_len;
    a->lh = lh;
    a->entry = ++lh->last_pushed;
    a->length = length;
    lh->pushed_length = length;
    a->payload = payload;
    a->own_payload = own;
    a->flags = flags;
    a->req = req;
    TAILQ_INSERT_TAIL(&lh->adds, a, link);
    if (!lh->changing)
        bkc_add_send(lh, a);
    return a;
}

int bkc_add(struct bkc_ledger *lh, int64_t entry_id, struct evbuffer *payload, struct bkc_req *req,
            bkc_cb cb)
{
    return bkc_add_crc(lh, entry_id, payload, 0, 0, req, cb);
}

int bkc_add_crc(struct bkc_ledger *lh, int64_t entry_id, struct evbuffer *payload,
                uint32_t tail_crc, size_t tail_len, struct bkc_req *req, bkc_cb cb)
{
    if (lh->mode != BKC_MODE_WRITER)
        return -MG_ENOTALLOWED;
    if (lh->closing)
        return -MG_ECLOSED;
    if (lh->err)
        return lh->err;
    req->cb = cb;
    req->errmsg[0] = '\0';
    if (entry_id != lh->last_pushed + 1) {
        /* The caller decides entry ids (the managed ledger's positions); one that is not the
         * next would leave a gap or a duplicate in the ledger: refuse it, send nothing. */
        snprintf(req->errmsg, sizeof(req->errmsg),
                 "ledger %" PRId64 ": add of entry %" PRId64 ", but the next entry is %" PRId64,
                 lh->id, entry_id, lh->last_pushed + 1);
        MG_ERROR(MOD, "%s", req->errmsg);
        return -MG_EINVAL;
    }
    int64_t len = (int64_t)evbuffer_get_length(payload);
    /* A frame over the bookies' limit would make them drop the connection, failing every
     * request of every ledger on it: refuse this entry alone, before anything is sent. */
    size_t fl = wire_bk_add_frame_size(lh->c->cfg.use_v3, lh->id, lh->last_pushed + 1, 0,
                                       WIRE_BK_ENTRY_HDR_LEN + (size_t)lh->digest_len, (size_t)len);
    if (fl > lh->c->cfg.max_frame_size) {
        snprintf(req->errmsg, sizeof(req->errmsg),
                 "entry of %" PRId64 " bytes makes a bookie frame of %zu bytes, over the frame "
                 "limit of %zu (nettyMaxFrameSizeBytes)",
                 len, fl, lh->c->cfg.max_frame_size);
        return -MG_ETOOBIG;
    }
    struct bkc_add *a = bkc_push_add(lh, payload, false, 0, lh->pushed_length + len, req, tail_crc,
                                     tail_len <= (size_t)len ? tail_len : 0);
    MG_ASSERT(a->entry == entry_id);
    req->entry_id = a->entry;
    return 0;
}

/* Complete the adds at the head that reached the ack quorum, in entry order. */
static void bkc_lh_deliver(struct bkc_ledger *lh)
{
    if (lh->changing)
        return;
    struct bkc_add *a;
    while ((a = TAILQ_FIRST(&lh->adds)) && a->n_acked >= lh->md.ack_quorum) {
        TAILQ_REMOVE(&lh->adds, a, link);
        lh->lac = a->entry;
        lh->lac_length = a->length;
        if (a->req)
            bkc_complete(lh->c, a->req, 0);
        bkc_add_free(lh, a);
    }
    bkc_lh_check_drained(lh);
}

static void bkc_lh_check_drained(struct bkc_ledger *lh)
{
    if (lh->changing || !TAILQ_EMPTY(&lh->adds) || lh->md_closing)
        return;
    if ((lh->mode == BKC_MODE_WRITER && lh->closing && lh->close_req) ||
        (lh->mode == BKC_MODE_RECOVERING && lh->rec_reads_done))
        bkc_md_close(lh);
}

/* ---- ensemble change --------------------------------------------------------------------- */

/* Write md to lh's metadata node, expecting version (META_VERSION_NONE: a new node, its
 * parents created as needed), then done. Returns meta_put's result (< 0: nothing started). */
int bkc_md_put(struct bkc_ledger *lh, const struct bkc_md *md, int64_t version, bkc_mop_fn done)
{
    uint8_t *buf;
    size_t len;
    bkc_md_encode(md, &buf, &len);
    struct bkc_mop *mop = bkc_mop_new(lh->c, lh, done);
    int rc = meta_put(lh->c->meta, lh->path, buf, len, version,
                      version == META_VERSION_NONE ? META_CREATE_PARENTS : 0, &mop->mr, bkc_mop_cb);
    mg_free(buf);
    return bkc_mop_started(mop, rc);
}

/* Read lh's metadata node (to open, or again after a write lost a race), then done. Returns
 * meta_get's result (< 0: nothing started). */
int bkc_md_read(struct bkc_ledger *lh, bkc_mop_fn done)
{
    struct bkc_mop *mop = bkc_mop_new(lh->c, lh, done);
    return bkc_mop_started(mop, meta_get(lh->c->meta, lh->path, &mop->mr, bkc_mop_cb));
}

void bkc_lh_take_new_md(struct bkc_ledger *lh, int64_t version)
{
    bkc_md_fini(&lh->md);
    lh->md = lh->new_md;
    memset(&lh->new_md, 0, sizeof(lh->new_md));
    lh->md_version = version;
}

/* List the registered bookies (<root>/available), then done. Returns meta_children's
 * result (< 0: nothing started). */
static int bkc_list_bookies(struct bkc_ledger *lh, bkc_mop_fn done)
{
    struct bkc_mop *mop = bkc_mop_new(lh->c, lh, done);
    char *p = mg_asprintf("%s/available", lh->c->root);
    int rc = meta_children(lh->c->meta, p, &mop->mr, bkc_mop_cb);
    mg_free(p);
    return bkc_mop_started(mop, rc);
}

static void bkc_change_list_done(struct bkc_mop *mop, int status);
static void bkc_change_put_done(struct bkc_mop *mop, int status);
static void bkc_change_reread_done(struct bkc_mop *mop, int status);
static void bkc_change_installed(struct bkc_ledger *lh, int64_t version);

static void bkc_change_start(struct bkc_ledger *lh)
{
    lh->changing = true;
    lh->changing_set = lh->failed;
    int rc = bkc_list_bookies(lh, bkc_change_list_done);
    if (rc < 0) {
        bkc_lh_fail(lh, -MG_EIO, "ledger %" PRId64 ": ensemble change: cannot list bookies: %s",
                    lh->id, mg_strerror(rc));
    }
}

int bkc_pick_bookies(struct bkc_client *c, char *const *names, int n_names, char *const *exclude,
                     int n_ex, int need, const char **out)
{
    const char **cand = mg_calloc((size_t)n_names + 1, sizeof(char *));
    int n = 0;
    for (int i = 0; i < n_names; i++) {
        const char *id = names[i];
        bool skip = !strcmp(id, "readonly");
        for (int j = 0; j < n_ex && !skip; j++)
            skip = !strcmp(id, exclude[j]);
        if (!skip)
            cand[n++] = id;
    }
    for (int i = 0; i < need && i < n; i++) {
        int j = i + (int)(bkc_rand(c) % (uint64_t)(n - i));
        const char *t = cand[i];
        cand[i] = cand[j];
        cand[j] = t;
        out[i] = cand[i];
    }
    mg_free(cand);
    return n;
}

static void bkc_change_list_done(struct bkc_mop *mop, int status)
{
    struct bkc_ledger *lh = mop->owner;
    if (status < 0 && status != -MG_ENOTFOUND) {
        bkc_lh_fail(lh, -MG_EIO, "ledger %" PRId64 ": ensemble change: listing %s/available: %s",
                    lh->id, lh->c->root, mg_strerror(status));
        return;
    }
    int E = lh->md.ensemble_size;
    struct bkc_segment *last = &lh->md.segs[lh->md.n_segs - 1];
    int need = __builtin_popcountll(lh->changing_set);
    const char *pick[BKC_MAX_ENSEMBLE];
    /* not the ensemble's bookies, nor any that failed on this handle */
    char **exclude = mg_malloc((size_t)(E + lh->n_failed_ids) * sizeof(char *));
    memcpy(exclude, last->bookies, (size_t)E * sizeof(char *));
    if (lh->n_failed_ids)
        memcpy(exclude + E, lh->failed_ids, (size_t)lh->n_failed_ids * sizeof(char *));
    int have = bkc_pick_bookies(lh->c, mop->mr.children, mop->mr.n_children, exclude,
                                E + lh->n_failed_ids, need, pick);
    mg_free(exclude);
    if (have < need) {
        bkc_lh_fail(lh, -MG_ENOBOOKIES,
                    "ledger %" PRId64 ": ensemble change: not enough bookies: need %d "
                    "replacement(s) outside the ensemble and the %d that failed on it, %d writable "
                    "bookie(s) available%s%s",
                    lh->id, need, lh->n_failed_ids, have, lh->fail_why[0] ? "; " : "",
                    lh->fail_why);
        return;
    }
    char *ids[BKC_MAX_ENSEMBLE];
    for (int i = 0, k = 0; i < E; i++)
        ids[i] = (lh->changing_set & BIT(i)) ? (char *)pick[k++] : last->bookies[i];
    bkc_md_fini(&lh->new_md);
    bkc_md_copy(&lh->new_md, &lh->md);
    bkc_md_set_last_segment(&lh->new_md, lh->lac + 1, ids);
    if (lh->mode == BKC_MODE_RECOVERING) {
        /* Recovery keeps its ensemble changes to itself and writes them with the CLOSED
         * state (one CAS), as BookKeeper does: a recovery that fails half-way leaves the
         * metadata as it found it, so the next recoverer fences and reads the ensemble that
         * holds the entries, not a replacement that never had them. */
        bkc_change_installed(lh, lh->md_version);
        return;
    }
    int rc = bkc_md_put(lh, &lh->new_md, lh->md_version, bkc_change_put_done);
    if (rc < 0) {
        bkc_lh_fail(lh, -MG_EIO, "ledger %" PRId64 ": ensemble change: metadata write: %s", lh->id,
                    mg_strerror(rc));
    }
}

static void bkc_change_put_done(struct bkc_mop *mop, int status)
{
    struct bkc_ledger *lh = mop->owner;
    if (status == -MG_EBUSY) {
        int rc = bkc_md_read(lh, bkc_change_reread_done);
        if (rc < 0) {
            bkc_lh_fail(lh, -MG_EIO, "ledger %" PRId64 ": ensemble change: metadata read: %s",
                        lh->id, mg_strerror(rc));
        }
        return;
    }
    if (status < 0) {
        bkc_lh_fail(lh, -MG_EIO, "ledger %" PRId64 ": ensemble change: metadata write: %s", lh->id,
                    mg_strerror(status));
        return;
    }
    bkc_change_installed(lh, mop->mr.stat.version);
}

/* The new ensemble (lh->new_md) is in force from here on (stored at version, or, during
 * recovery, kept until the CLOSED write): resend to the replacements and go on. */
static void bkc_change_installed(struct bkc_ledger *lh, int64_t version)
{
    uint64_t done = lh->changing_set;
    bkc_lh_take_new_md(lh, version);
    bkc_lh_set_ensemble(lh);
    lh->failed &= ~done;
    lh->changing = false;
    lh->changing_set = 0;
    struct bkc_segment *s = &lh->md.segs[lh->md.n_segs - 1];
    MG_INFO(MOD, "ledger %" PRId64 ": ensemble changed from entry %" PRId64 " (%d segment(s))",
            lh->id, s->first, lh->md.n_segs);
    struct bkc_add *a;
    TAILQ_FOREACH(a, &lh->adds, link)
    {
        if (!a->sent) {
            bkc_add_send(lh, a);
            continue;
        }
        for (int i = 0; i < lh->md.ensemble_size; i++)
            if ((done & BIT(i)) && !(lh->failed & BIT(i)) && bkc_in_write_set(lh, a->entry, i))
                bkc_add_send_slot(lh, a, i);
    }
    if (lh->failed)
        bkc_change_start(lh);
    else
        bkc_lh_deliver(lh);
}

/* The metadata was changed by someone else while a writer's was still OPEN, or a reader's
 * view is older than the metadata (a recovery keeps its own view: the ensembles it changed
 * are in memory until its CLOSED write): the autorecovery's replication workers replace
 * lost bookies in the segments whose end is fixed (all but the last of a ledger not closed;
 * all of a closed one). Take their ensembles, so that a write that follows does not put the
 * lost bookies back and reads go to the bookies that hold the copies now. */
static void bkc_adopt_closed_segments(struct bkc_ledger *lh, const struct bkc_md *md)
{
    if (md->ensemble_size != lh->md.ensemble_size)
        return;
    bool closed = lh->md.state == BKC_STATE_CLOSED && md->state == BKC_STATE_CLOSED &&
                  md->last_entry == lh->md.last_entry;
    int fixed = closed ? lh->md.n_segs : lh->md.n_segs - 1;
    bool last_changed = false;
    for (int s = 0; s < fixed && s < md->n_segs; s++) {
        if (md->segs[s].first != lh->md.segs[s].first)
            return;
        for (int i = 0; i < md->ensemble_size; i++) {
            char **b = &lh->md.segs[s].bookies[i];
            if (strcmp(*b, md->segs[s].bookies[i]) != 0) {
                mg_free(*b);
                *b = mg_strdup(md->segs[s].bookies[i]);
                last_changed |= s == lh->md.n_segs - 1;
            }
        }
    }
    if (last_changed)
        bkc_lh_set_ensemble(lh);
}

static void bkc_change_reread_done(struct bkc_mop *mop, int status)
{
    struct bkc_ledger *lh = mop->owner;
    struct bkc_md md;
    int rc = status < 0 ? status : bkc_md_decode(mop->mr.value, mop->mr.len, &md);
    if (rc < 0) {
        bkc_lh_fail(lh, -MG_EIO, "ledger %" PRId64 ": ensemble change: metadata re-read: %s",
                    lh->id, mg_strerror(rc));
        return;
    }
    int want = lh->mode == BKC_MODE_RECOVERING ? BKC_STATE_IN_RECOVERY : BKC_STATE_OPEN;
    int state = md.state;
    if (state == want && lh->mode == BKC_MODE_WRITER) /* (recovery keeps its own changes) */
        bkc_adopt_closed_segments(lh, &md);
    bkc_md_fini(&md);
    if (state != want) {
        bkc_lh_fail(lh, -MG_EFENCED,
                    "ledger %" PRId64 ": metadata changed to state %d during an "
                    "ensemble change: the ledger is being recovered by another client",
                    lh->id, state);
        return;
    }
    /* Still ours: adopt the version and redo the change. */
    lh->md_version = mop->mr.stat.version;
    bkc_change_start(lh);
}

/* ---- close ------------------------------------------------------------------------------ */

static void bkc_close_put_done(struct bkc_mop *mop, int status);
static void bkc_close_reread_done(struct bkc_mop *mop, int status);

static void bkc_md_close_finish(struct bkc_ledger *lh, int status)
{
    lh->md_closing = false;
    if (lh->mode == BKC_MODE_RECOVERING) {
        if (status < 0) {
            bkc_lh_fail(lh, status, "recovery of ledger %" PRId64 ": closing the metadata: %s",
                        lh->id, mg_strerror(status));
            return;
        }
        lh->mode = BKC_MODE_READER;
        MG_INFO(MOD, "ledger %" PRId64 ": recovered and closed at entry %" PRId64, lh->id, lh->lac);
        struct bkc_req *req = lh->open_req;
        lh->open_req = NULL;
        req->ledger = lh;
        req->ledger_id = lh->id;
        bkc_complete(lh->c, req, 0);
        return;
    }
    struct bkc_req *req = lh->close_req;
    lh->close_req = NULL;
    if (status == 0) {
        lh->mode = BKC_MODE_READER;
    } else {
        lh->closing = false;
        snprintf(req->errmsg, sizeof(req->errmsg), "close: %.180s",
                 lh->errmsg[0] ? lh->errmsg : mg_strerror(status));
    }
    bkc_complete(lh->c, req, status);
}

static void bkc_md_close(struct bkc_ledger *lh)
{
    struct bkc_md nmd;
    bkc_md_copy(&nmd, &lh->md);
    nmd.state = BKC_STATE_CLOSED;
    nmd.last_entry = lh->lac;
    nmd.length = lh->lac < 0 ? 0 : lh->lac_length;
    bkc_md_fini(&lh->new_md);
    lh->new_md = nmd;
    lh->md_closing = true;
    int rc = bkc_md_put(lh, &lh->new_md, lh->md_version, bkc_close_put_done);
    if (rc < 0)
        bkc_md_close_finish(lh, rc);
}

static void bkc_close_put_done(struct bkc_mop *mop, int status)
{
    struct bkc_ledger *lh = mop->owner;
    if (status == -MG_EBUSY) {
        int rc = bkc_md_read(lh, bkc_close_reread_done);
        if (rc < 0)
            bkc_md_close_finish(lh, rc);
        return;
    }
    if (status == 0)
        bkc_lh_take_new_md(lh, mop->mr.stat.version);
    bkc_md_close_finish(lh, status);
}

static void bkc_close_reread_done(struct bkc_mop *mop, int status)
{
    struct bkc_ledger *lh = mop->owner;
    struct bkc_md md;
    int rc = status < 0 ? status : bkc_md_decode(mop->mr.value, mop->mr.len, &md);
    if (rc < 0) {
        bkc_md_close_finish(lh, rc);
        return;
    }
    bool rec = lh->mode == BKC_MODE_RECOVERING;
    if (md.state == BKC_STATE_CLOSED && (rec || md.last_entry == lh->lac)) {
        /* Closed by someone else at a result we accept: adopt it. */
        bkc_md_fini(&lh->md);
        lh->md = md;
        lh->md_version = mop->mr.stat.version;
        lh->lac = md.last_entry;
        lh->lac_length = md.length;
        bkc_md_close_finish(lh, 0);
        return;
    }
    int want = rec ? BKC_STATE_IN_RECOVERY : BKC_STATE_OPEN;
    if (md.state == want) {
        lh->md_version = mop->mr.stat.version;
        if (!rec) /* recovery keeps the ensembles it changed in memory */
            bkc_adopt_closed_segments(lh, &md);
        bkc_md_fini(&md);
        bkc_md_close(lh);
        return;
    }
    bkc_set_errmsg(lh->errmsg, sizeof(lh->errmsg),
                   "ledger %" PRId64 " was %s by another client "
                   "(state %d, last entry %" PRId64 ")",
                   lh->id, md.state == BKC_STATE_CLOSED ? "closed" : "recovered", md.state,
                   md.last_entry);
    bkc_md_fini(&md);
    bkc_md_close_finish(lh, -MG_EFENCED);
}

int bkc_close(struct bkc_ledger *lh, struct bkc_req *req, bkc_cb cb)
{
    if (lh->close_req)
        return -MG_EBUSY;
    if (lh->mode != BKC_MODE_WRITER && lh->mode != BKC_MODE_READER)
        return -MG_ENOTALLOWED;
    req->cb = cb;
    req->errmsg[0] = '\0';
    if (lh->mode == BKC_MODE_READER) {
        bkc_complete(lh->c, req, 0);
        return 0;
    }
    lh->closing = true;
    lh->close_req = req;
    bkc_lh_check_drained(lh);
    return 0;
}

/* ---- reads ------------------------------------------------------------------------------ */

static void bkc_rd_send(struct bkc_rd *rd, int i);
static void bkc_rd_refresh(struct bkc_rd *rd, int i);
static void bkc_rd_refresh_done(struct bkc_mop *mop, int status);

static void bkc_rd_finish(struct bkc_rd *rd, int status, int64_t bad_entry)
{
    struct bkc_ledger *lh = rd->lh;
    TAILQ_REMOVE(&lh->reads, rd, link);
    if (rd->internal_cb) {
        rd->internal_cb(rd, status);
        bkc_rd_free(rd);
        return;
    }
    struct bkc_req *req = rd->req;
    if (status == 0) {
        req->entries = mg_calloc((size_t)rd->n, sizeof(struct evbuffer *));
        for (int i = 0; i < rd->n; i++) {
            req->entries[i] = rd->ents[i].payload;
            rd->ents[i].payload = NULL;
        }
        req->n_entries = rd->n;
        req->first_entry = rd->first;
    } else {
        struct bkc_rd_ent *e = &rd->ents[bad_entry - rd->first];
        snprintf(req->errmsg, sizeof(req->errmsg),
                 "ledger %" PRId64 " entry %" PRId64 ": no "
                 "readable copy on %d bookie(s) (%d missing, %d corrupt, %d over the frame "
                 "limit)",
                 lh->id, bad_entry, e->tries, e->n_missing, e->n_corrupt, e->n_toobig);
    }
    bkc_complete(lh->c, req, status);
    bkc_rd_free(rd);
}

static void bkc_rd_op_cb(struct bkc_op *op, int rc, struct evbuffer **body)
{
    struct bkc_rd *rd = op->arg;
    struct bkc_ledger *lh = rd->lh;
    int i = op->slot;
    struct bkc_rd_ent *ent = &rd->ents[i];
    int64_t e = rd->first + i;
    ent->op = NULL;
    if (rc == WIRE_BK_EOK && body && *body) {
        int v = bkc_verify_entry(lh, *body, e, NULL, NULL, &ent->length);
        if (v == 0) {
            ent->payload = *body;
            *body = NULL;
            evbuffer_drain(ent->payload, WIRE_BK_ENTRY_HDR_LEN + (size_t)lh->digest_len);
            if (++rd->n_done == rd->n)
                bkc_rd_finish(rd, 0, -1);
            return;
        }
        MG_WARN(MOD,
                "ledger %" PRId64 " entry %" PRId64 " from bookie %s: %s; trying another "
                "replica",
                lh->id, e, op->bk->id,
                v == -MG_ECHECKSUM ? "digest mismatch" : "wrong entry header");
        ent->n_corrupt++;
    } else if (rc == WIRE_BK_ENOENTRY || rc == WIRE_BK_ENOLEDGER) {
        ent->n_missing++;
    } else if (rc == -MG_ETOOBIG) {
        ent->n_toobig++; /* its response was over the frame limit (logged by the connection) */
    } else {
        MG_DEBUG(MOD, "ledger %" PRId64 " entry %" PRId64 " from bookie %s: %s", lh->id, e,
                 op->bk->id, wire_bk_status_str(rc));
    }
    if (ent->tries < lh->md.write_quorum) {
        bkc_rd_send(rd, i);
        return;
    }
    int st = ent->n_missing == ent->tries  ? -MG_ENOTFOUND
             : ent->n_corrupt > 0          ? -MG_ECHECKSUM
             : ent->n_toobig == ent->tries ? -MG_ETOOBIG
                                           : -MG_EIO;
    if (st == -MG_EIO && rd->req && !ent->refreshed) {
        bkc_rd_refresh(rd, i);
        return;
    }
    bkc_rd_finish(rd, st, e);
}

/* No replica in our view of the metadata served an entry: the autorecovery may have moved
 * its copies to other bookies since we read the metadata (BookKeeper's readers learn of that
 * through a metadata watch). Read the metadata again (one re-read in flight per handle), take
 * the ensembles that changed, and ask again; once per entry. */
static void bkc_rd_refresh(struct bkc_rd *rd, int i)
{
    struct bkc_ledger *lh = rd->lh;
    struct bkc_rd_ent *ent = &rd->ents[i];
    ent->refreshed = true;
    ent->tries = ent->n_missing = ent->n_corrupt = ent->n_toobig = 0;
    if (!lh->md_refreshing && ent->md_gen != lh->md_gen) {
        bkc_rd_send(rd, i); /* a re-read completed since this entry was first asked for */
        return;
    }
    rd->waiting = true;
    if (lh->md_refreshing)
        return;
    lh->md_refreshing = true;
    int rc = bkc_md_read(lh, bkc_rd_refresh_done);
    if (rc < 0) {
        lh->md_refreshing = false;
        rd->waiting = false;
        bkc_rd_finish(rd, -MG_EIO, rd->first + i);
    }
}

static void bkc_rd_refresh_done(struct bkc_mop *mop, int status)
{
    struct bkc_ledger *lh = mop->owner;
    lh->md_refreshing = false;
    lh->md_gen++;
    struct bkc_md md;
    if (status == 0 && bkc_md_decode(mop->mr.value, mop->mr.len, &md) == 0) {
        bkc_adopt_closed_segments(lh, &md);
        bkc_md_fini(&md);
    }
    bkc_rd_resume(lh);
}

/* Resend every waiting entry (neither in flight nor read) of every read waiting for a
 * metadata re-read that completed or was abandoned. */
static void bkc_rd_resume(struct bkc_ledger *lh)
{
    struct bkc_rd *rd;
    TAILQ_FOREACH(rd, &lh->reads, link) /* sending never completes a read */
    {
        if (!rd->waiting)
            continue;
        rd->waiting = false;
        for (int i = 0; i < rd->n; i++)
            if (!rd->ents[i].op && !rd->ents[i].payload)
                bkc_rd_send(rd, i);
    }
}

static void bkc_rd_send(struct bkc_rd *rd, int i)
{
    struct bkc_ledger *lh = rd->lh;
    int64_t e = rd->first + i;
    struct bkc_segment *s = &lh->md.segs[bkc_md_segment_for(&lh->md, e)];
    struct bkc_rd_ent *ent = &rd->ents[i];
    int idx = (int)((e + ent->tries) % lh->md.ensemble_size);
    if (ent->tries++ == 0)
        ent->md_gen = lh->md_gen;
    struct bkc_bookie *bk = lh->c->tp.ops->bookie_get(lh->c, s->bookies[idx]);
    ent->op = lh->c->tp.ops->read(bk, lh->id, e, 0, NULL, bkc_rd_op_cb, rd, i);
}

static struct bkc_rd *bkc_rd_start(struct bkc_ledger *lh, int64_t first, int64_t last,
                                   struct bkc_req *req, void (*internal_cb)(struct bkc_rd *, int))
{
    struct bkc_rd *rd = mg_calloc(1, sizeof(*rd));
    rd->lh = lh;
    rd->req = req;
    rd->internal_cb = internal_cb;
    rd->first = first;
    rd->last = last;
    rd->n = (int)(last - first + 1);
    rd->ents = mg_calloc((size_t)rd->n, sizeof(*rd->ents));
    TAILQ_INSERT_TAIL(&lh->reads, rd, link);
    for (int i = 0; i < rd->n; i++)
        bkc_rd_send(rd, i);
    return rd;
}

int bkc_read(struct bkc_ledger *lh, int64_t first, int64_t last, struct bkc_req *req, bkc_cb cb)
{
    if (lh->mode != BKC_MODE_WRITER && lh->mode != BKC_MODE_READER)
        return -MG_ENOTALLOWED;
    if (first < 0 || first > last || last > lh->lac || last - first >= INT32_MAX)
        return -MG_EINVAL;
    req->cb = cb;
    req->errmsg[0] = '\0';
    req->entries = NULL;
    req->n_entries = 0;
    bkc_rd_start(lh, first, last, req, NULL);
    return 0;
}

/* ---- LAC reads and fencing ---------------------------------------------------------------- */

static void bkc_rec_fenced(struct bkc_ledger *lh, int status, int64_t max_lac);

static bool bkc_lacrd_covered(struct bkc_ledger *lh, struct bkc_lacrd *lr)
{
    int E = lh->md.ensemble_size, Qw = lh->md.write_quorum;
    int need = Qw - lh->md.ack_quorum + 1;
    for (int e = 0; e < E; e++) {
        int cnt = 0;
        for (int i = 0; i < Qw; i++)
            cnt += lr->answer[(e + i) % E] == 1;
        if (cnt < need)
            return false;
    }
    return true;
}

static void bkc_lacrd_finish(struct bkc_ledger *lh, int status)
{
    struct bkc_lacrd *lr = lh->lacrd;
    lh->lacrd = NULL;
    int64_t max_lac = lr->max_lac;
    struct bkc_req *req = lr->req;
    bkc_lacrd_free(lr);
    if (req) {
        if (status == 0 && max_lac > lh->lac)
            lh->lac = max_lac;
        if (status < 0)
            snprintf(req->errmsg, sizeof(req->errmsg),
                     "ledger %" PRId64 ": read LAC: not "
                     "enough bookies of the last ensemble answered",
                     lh->id);
        bkc_complete(lh->c, req, status);
        return;
    }
    bkc_rec_fenced(lh, status, max_lac);
}

static void bkc_lacrd_op_cb(struct bkc_op *op, int rc, struct evbuffer **body)
{
    struct bkc_ledger *lh = op->arg;
    struct bkc_lacrd *lr = lh->lacrd;
    int idx = op->slot;
    lr->ops[idx] = NULL;
    lr->n_pending--;
    int64_t lac;
    if (rc == WIRE_BK_EOK && body && *body) {
        if (bkc_verify_entry(lh, *body, -2, NULL, &lac, NULL) == 0) {
            lr->answer[idx] = 1;
            if (lac > lr->max_lac)
                lr->max_lac = lac;
        } else {
            MG_WARN(MOD, "ledger %" PRId64 ": bookie %s returned a corrupt last entry", lh->id,
                    op->bk->id);
            lr->answer[idx] = 2;
        }
    } else if (rc == WIRE_BK_EOK || rc == WIRE_BK_ENOENTRY || rc == WIRE_BK_ENOLEDGER) {
        lr->answer[idx] = 1;
    } else if (rc == WIRE_BK_EUA) {
        if (lr->req)
            bkc_lacrd_finish(lh, -MG_ENOTALLOWED);
        else
            bkc_lh_fail(lh, -MG_ENOTALLOWED,
                        "recovery of ledger %" PRId64 ": bookie %s refused "
                        "the master key (EUA)",
                        lh->id, op->bk->id);
        return;
    } else {
        MG_WARN(MOD, "ledger %" PRId64 ": %s read of the last entry on bookie %s: %s", lh->id,
                lr->fence ? "fencing" : "LAC", op->bk->id, wire_bk_status_str(rc));
        lr->answer[idx] = 2;
    }
    if (bkc_lacrd_covered(lh, lr))
        bkc_lacrd_finish(lh, 0);
    else if (lr->n_pending == 0)
        bkc_lacrd_finish(lh, -MG_EIO);
}

static void bkc_lacrd_start(struct bkc_ledger *lh, bool fence, struct bkc_req *req)
{
    struct bkc_lacrd *lr = mg_calloc(1, sizeof(*lr));
    lr->lh = lh;
    lr->fence = fence;
    lr->req = req;
    lr->max_lac = -1;
    lh->lacrd = lr;
    for (int i = 0; i < lh->md.ensemble_size; i++) {
        lr->n_pending++;
        lr->ops[i] = lh->c->tp.ops->read(lh->ens[i], lh->id, -1, fence ? WIRE_BK_FLAG_FENCE : 0,
                                         lh->master_key, bkc_lacrd_op_cb, lh, i);
    }
}

int bkc_read_lac(struct bkc_ledger *lh, struct bkc_req *req, bkc_cb cb)
{
    if (lh->mode != BKC_MODE_READER && lh->mode != BKC_MODE_WRITER)
        return -MG_ENOTALLOWED;
    if (lh->lacrd)
        return -MG_EBUSY;
    req->cb = cb;
    req->errmsg[0] = '\0';
    if (lh->mode == BKC_MODE_WRITER || lh->md.state == BKC_STATE_CLOSED) {
        bkc_complete(lh->c, req, 0);
        return 0;
    }
    bkc_lacrd_start(lh, false, req);
    return 0;
}

/* ---- create ------------------------------------------------------------------------------ */

static void bkc_create_id_done(struct bkc_mop *mop, int status);
static void bkc_create_bookies_done(struct bkc_mop *mop, int status);
static void bkc_create_md_done(struct bkc_mop *mop, int status);

static void bkc_noop_done(struct bkc_mop *mop, int status)
{
    (void)mop;
    (void)status;
}

void bkc_ledger_create_start(struct bkc_ledger *lh)
{
    struct bkc_mop *mop = bkc_mop_new(lh->c, lh, bkc_create_id_done);
    char *p = mg_asprintf("%s/idgen/ID-", lh->c->root);
    int rc = meta_put(lh->c->meta, p, "", 0, META_VERSION_NONE,
                      META_EPHEMERAL | META_SEQUENTIAL | META_CREATE_PARENTS, &mop->mr, bkc_mop_cb);
    mg_free(p);
    if (bkc_mop_started(mop, rc) < 0) {
        bkc_open_fail(lh, rc, "create ledger: id generation: %s", mg_strerror(rc));
    }
}

static void bkc_create_id_done(struct bkc_mop *mop, int status)
{
    struct bkc_ledger *lh = mop->owner;
    const char *p = mop->mr.path ? strrchr(mop->mr.path, '-') : NULL;
    char *end = NULL;
    long long id = p ? strtoll(p + 1, &end, 10) : -1;
    if (status < 0 || !p || *end || id < 0) {
        bkc_open_fail(lh, status < 0 ? status : -MG_EPROTO, "create ledger: id generation: %s",
                      status < 0 ? mg_strerror(status) : "bad sequential node name");
        return;
    }
    /* The id node only serves as a counter. */
    struct bkc_mop *del = bkc_mop_new(lh->c, NULL, bkc_noop_done);
    bkc_mop_started(del,
                    meta_delete(lh->c->meta, mop->mr.path, META_VERSION_ANY, &del->mr, bkc_mop_cb));
    lh->id = id;
    mg_free(lh->path);
    lh->path = bkc_ledger_path(lh->c->root, id);
    int rc = bkc_list_bookies(lh, bkc_create_bookies_done);
    if (rc < 0) {
        bkc_open_fail(lh, rc, "create ledger: listing bookies: %s", mg_strerror(rc));
    }
}

static void bkc_create_bookies_done(struct bkc_mop *mop, int status)
{
    struct bkc_ledger *lh = mop->owner;
    if (status < 0 && status != -MG_ENOTFOUND) {
        bkc_open_fail(lh, status, "create ledger: listing %s/available: %s", lh->c->root,
                      mg_strerror(status));
        return;
    }
    int E = lh->md.ensemble_size;
    const char *pick[BKC_MAX_ENSEMBLE];
    int have = status < 0 ? 0
                          : bkc_pick_bookies(lh->c, mop->mr.children, mop->mr.n_children, NULL, 0,
                                             E, pick);
    if (have < E) {
        bkc_open_fail(lh, -MG_ENOBOOKIES,
                      "create ledger: not enough writable bookies: need %d, %d "
                      "registered under %s/available (read-only ones do not count)",
                      E, have, lh->c->root);
        return;
    }
    bkc_md_set_last_segment(&lh->md, 0, (char *const *)pick);
    int rc = bkc_md_put(lh, &lh->md, META_VERSION_NONE, bkc_create_md_done);
    if (rc < 0) {
        bkc_open_fail(lh, rc, "create ledger %" PRId64 ": metadata write: %s", lh->id,
                      mg_strerror(rc));
    }
}

static void bkc_create_md_done(struct bkc_mop *mop, int status)
{
    struct bkc_ledger *lh = mop->owner;
    if (status == -MG_EEXIST && ++lh->create_tries < 10) {
        /* The id is taken (another id generator wrote there): take a new one. */
        MG_WARN(MOD, "ledger %" PRId64 " already exists; taking another id", lh->id);
        for (int i = 0; i < lh->md.n_segs; i++) {
            for (int j = 0; j < lh->md.ensemble_size; j++)
                mg_free(lh->md.segs[i].bookies[j]);
            mg_free(lh->md.segs[i].bookies);
        }
        lh->md.n_segs = 0;
        bkc_ledger_create_start(lh);
        return;
    }
    if (status < 0) {
        bkc_open_fail(lh, status, "create ledger %" PRId64 ": metadata write: %s", lh->id,
                      mg_strerror(status));
        return;
    }
    lh->md_version = mop->mr.stat.version;
    bkc_ledger_keys(lh);
    bkc_lh_set_ensemble(lh);
    lh->mode = BKC_MODE_WRITER;
    struct bkc_req *req = lh->open_req;
    lh->open_req = NULL;
    req->ledger = lh;
    req->ledger_id = lh->id;
    bkc_complete(lh->c, req, 0);
}

/* ---- open and recovery ---------------------------------------------------------------------- */

static void bkc_open_md_done(struct bkc_mop *mop, int status);
static void bkc_open_mark_done(struct bkc_mop *mop, int status);

void bkc_ledger_open_start(struct bkc_ledger *lh)
{
    int rc = bkc_md_read(lh, bkc_open_md_done);
    if (rc < 0) {
        bkc_open_fail(lh, rc, "open ledger %" PRId64 ": metadata read: %s", lh->id,
                      mg_strerror(rc));
    }
}

static void bkc_open_ready(struct bkc_ledger *lh)
{
    lh->mode = BKC_MODE_READER;
    struct bkc_req *req = lh->open_req;
    lh->open_req = NULL;
    req->ledger = lh;
    req->ledger_id = lh->id;
    bkc_complete(lh->c, req, 0);
}

static void bkc_rec_fence(struct bkc_ledger *lh)
{
    lh->mode = BKC_MODE_RECOVERING;
    memcpy(lh->rec_ens, lh->ens, sizeof(lh->rec_ens));
    bkc_lacrd_start(lh, true, NULL);
}

static void bkc_open_md_done(struct bkc_mop *mop, int status)
{
    struct bkc_ledger *lh = mop->owner;
    if (status < 0) {
        bkc_open_fail(lh, status, "open ledger %" PRId64 ": metadata read: %s", lh->id,
                      mg_strerror(status));
        return;
    }
    bkc_md_fini(&lh->md);
    if (bkc_md_decode(mop->mr.value, mop->mr.len, &lh->md) < 0) {
        bkc_open_fail(lh, -MG_EPROTO, "open ledger %" PRId64 ": corrupt metadata at %s", lh->id,
                      lh->path);
        return;
    }
    lh->md_version = mop->mr.stat.version;
    bkc_ledger_keys(lh);
    if (lh->digest_len < 0) {
        bkc_open_fail(lh, -MG_EPROTO, "open ledger %" PRId64 ": unknown digest type %d", lh->id,
                      lh->md.digest);
        return;
    }
    bkc_lh_set_ensemble(lh);
    if (lh->md.state == BKC_STATE_CLOSED) {
        lh->lac = lh->md.last_entry;
        lh->lac_length = lh->md.length;
        bkc_open_ready(lh);
        return;
    }
    if (!lh->recovery) {
        lh->lac = -1;
        bkc_open_ready(lh);
        return;
    }
    if (lh->md.state == BKC_STATE_IN_RECOVERY) {
        bkc_rec_fence(lh);
        return;
    }
    struct bkc_md nmd;
    bkc_md_copy(&nmd, &lh->md);
    nmd.state = BKC_STATE_IN_RECOVERY;
    int rc = bkc_md_put(lh, &nmd, lh->md_version, bkc_open_mark_done);
    bkc_md_fini(&nmd);
    if (rc < 0) {
        bkc_open_fail(lh, rc, "recovery of ledger %" PRId64 ": metadata write: %s", lh->id,
                      mg_strerror(rc));
    }
}

static void bkc_open_mark_done(struct bkc_mop *mop, int status)
{
    struct bkc_ledger *lh = mop->owner;
    if (status == -MG_EBUSY) { /* changed meanwhile: start over */
        bkc_ledger_open_start(lh);
        return;
    }
    if (status < 0) {
        bkc_open_fail(lh, status, "recovery of ledger %" PRId64 ": metadata write: %s", lh->id,
                      mg_strerror(status));
        return;
    }
    lh->md.state = BKC_STATE_IN_RECOVERY;
    lh->md_version = mop->mr.stat.version;
    bkc_rec_fence(lh);
}

static void bkc_rec_len_done(struct bkc_rd *rd, int status)
{
    struct bkc_ledger *lh = rd->lh;
    if (status < 0) {
        bkc_lh_fail(lh, -MG_EIO,
                    "recovery of ledger %" PRId64 ": cannot read entry %" PRId64
                    " (its last confirmed entry): %s",
                    lh->id, rd->first, mg_strerror(status));
        return;
    }
    lh->lac_length = lh->pushed_length = rd->ents[0].length;
    bkc_rrd_start(lh);
}

static void bkc_rec_fenced(struct bkc_ledger *lh, int status, int64_t max_lac)
{
    if (status < 0) {
        bkc_lh_fail(lh, status == -MG_ENOTALLOWED ? status : -MG_EIO,
                    "recovery of ledger %" PRId64
                    ": fencing: not enough bookies of the last ensemble answered",
                    lh->id);
        return;
    }
    int64_t start = lh->md.segs[lh->md.n_segs - 1].first - 1;
    if (max_lac > start)
        start = max_lac;
    MG_INFO(MOD, "ledger %" PRId64 ": fenced; recovering from entry %" PRId64, lh->id, start + 1);
    lh->lac = lh->last_pushed = lh->rec_start = start;
    lh->lac_length = lh->pushed_length = 0;
    if (start >= 0)
        bkc_rd_start(lh, start, start, NULL, bkc_rec_len_done);
    else
        bkc_rrd_start(lh);
}

static void bkc_rrd_op_cb(struct bkc_op *op, int rc, struct evbuffer **body)
{
    struct bkc_ledger *lh = op->arg;
    struct bkc_rrd *r = lh->rrd;
    int idx = op->slot;
    int64_t e = r->entry, length = 0;
    r->ops[idx] = NULL;
    r->n_pending--;
    if (rc == WIRE_BK_EOK && body && *body) {
        if (bkc_verify_entry(lh, *body, e, NULL, NULL, &length) == 0) {
            struct evbuffer *payload = *body;
            *body = NULL;
            evbuffer_drain(payload, WIRE_BK_ENTRY_HDR_LEN + (size_t)lh->digest_len);
            bkc_rrd_free(lh->c, r);
            lh->rrd = NULL;
            size_t plen = evbuffer_get_length(payload);
            size_t fl =
                wire_bk_add_frame_size(lh->c->cfg.use_v3, lh->id, e,
                                       WIRE_BK_FLAG_RECOVERY_ADD | WIRE_BK_FLAG_HIGH_PRIORITY,
                                       WIRE_BK_ENTRY_HDR_LEN + (size_t)lh->digest_len, plen);
            if (fl > lh->c->cfg.max_frame_size) {
                evbuffer_free(payload);
                bkc_lh_fail(lh, -MG_ETOOBIG,
                            "recovery of ledger %" PRId64 ": entry %" PRId64
                            " (%zu bytes) cannot be "
                            "written back: a frame of %zu bytes is over the limit of %zu",
                            lh->id, e, plen, fl, lh->c->cfg.max_frame_size);
                return;
            }
            MG_DEBUG(MOD, "ledger %" PRId64 ": recovered entry %" PRId64, lh->id, e);
            bkc_push_add(lh, payload, true, WIRE_BK_FLAG_RECOVERY_ADD | WIRE_BK_FLAG_HIGH_PRIORITY,
                         length, NULL, 0, 0);
            if (lh->mode == BKC_MODE_RECOVERING)
                bkc_rrd_start(lh);
            return;
        }
        MG_WARN(MOD, "ledger %" PRId64 " entry %" PRId64 " from bookie %s: corrupt copy", lh->id, e,
                op->bk->id);
        r->n_corrupt++;
    } else if (rc == WIRE_BK_ENOENTRY || rc == WIRE_BK_ENOLEDGER) {
        if (++r->n_missing >= lh->md.write_quorum - lh->md.ack_quorum + 1) {
            bkc_rrd_free(lh->c, r);
            lh->rrd = NULL;
            lh->rec_reads_done = true;
            MG_DEBUG(MOD,
                     "ledger %" PRId64 ": entry %" PRId64 " is missing: recovery reads "
                     "done",
                     lh->id, e);
            bkc_lh_check_drained(lh);
            return;
        }
    } else if (rc == WIRE_BK_EUA) {
        bkc_lh_fail(lh, -MG_ENOTALLOWED,
                    "recovery of ledger %" PRId64 ": bookie %s refused the "
                    "master key (EUA)",
                    lh->id, op->bk->id);
        return;
    } else {
        r->n_failed++;
    }
    if (r->n_pending == 0)
        bkc_lh_fail(lh, r->n_failed == 0 ? -MG_ECHECKSUM : -MG_EIO,
                    "recovery of ledger %" PRId64 ": entry %" PRId64 " is neither "
                    "readable nor confirmed missing (%d bookie(s) failed, %d corrupt, %d missing)",
                    lh->id, e, r->n_failed, r->n_corrupt, r->n_missing);
}

static void bkc_rrd_start(struct bkc_ledger *lh)
{
    struct bkc_rrd *r = mg_calloc(1, sizeof(*r));
    r->entry = lh->last_pushed + 1;
    lh->rrd = r;
    int E = lh->md.ensemble_size;
    for (int i = 0; i < lh->md.write_quorum; i++) {
        int idx = (int)((r->entry + i) % E);
        r->n_pending++;
        r->ops[idx] = lh->c->tp.ops->read(lh->rec_ens[idx], lh->id, r->entry,
                                          WIRE_BK_FLAG_FENCE | WIRE_BK_FLAG_HIGH_PRIORITY,
                                          lh->master_key, bkc_rrd_op_cb, lh, idx);
    }
}

/* ---- accessors ------------------------------------------------------------------------------ */

int64_t bkc_ledger_id(const struct bkc_ledger *lh)
{
    return lh->id;
}

int64_t bkc_ledger_lac(const struct bkc_ledger *lh)
{
    return lh->lac;
}

int64_t bkc_ledger_next_entry(const struct bkc_ledger *lh)
{
    return lh->last_pushed + 1;
}

int64_t bkc_ledger_length(const struct bkc_ledger *lh)
{
    return lh->lac < 0 ? 0 : lh->lac_length;
}

bool bkc_ledger_is_closed(const struct bkc_ledger *lh)
{
    return lh->md.state == BKC_STATE_CLOSED;
}

int bkc_ledger_ensemble_size(const struct bkc_ledger *lh)
{
    return lh->md.ensemble_size;
}

const char *bkc_ledger_bookie(const struct bkc_ledger *lh, int i)
{
    if (i < 0 || i >= lh->md.ensemble_size || lh->md.n_segs < 1)
        return NULL;
    return lh->md.segs[lh->md.n_segs - 1].bookies[i];
}

int bkc_ledger_num_segments(const struct bkc_ledger *lh)
{
    return lh->md.n_segs;
}
