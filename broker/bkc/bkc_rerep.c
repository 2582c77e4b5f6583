/*
 * bkc_rerep.c - re-replication of a ledger fragment for the autorecovery (BookKeeper's
 * LedgerFragmentReplicator and its metadata update), on a read handle.
 *
 * bkc_replicate: the fragment is (segment seg, ensemble index idx): the entries of the segment
 * whose write set contains idx. Up to `window` slots each carry one entry: a READ to the next
 * bookie of its write set other than idx (failing over on an error, a timeout, a missing or a
 * corrupt copy), the body verified against the ledger's digest, then the same header, digest
 * and payload sent to the target as a RECOVERY_ADD (accepted by fenced and closed ledgers, as
 * BookKeeper's recovery adds are). A slot that is done takes the next entry, so a fragment of
 * any size costs `window` requests in flight and one entry of work per callback. The first
 * entry that cannot be read or written fails the whole copy (the caller retries the ledger
 * later; what was copied is simply copied again: adds of the same entry are idempotent).
 *
 * bkc_ledger_set_bookie: the new bookie goes into the segment with a CAS on the version the
 * handle read. A conflict (the writer changed its last ensemble or closed the ledger) reads
 * the metadata again: the segment we copied is immutable once it is not the open last one, so
 * the change is redone on the new version as long as the segment starts where it did and
 * still names the bookie being replaced (bounded attempts); otherwise -MG_EBUSY.
 */
#include "bkc/bkc_int.h"
#include "util/alloc.h"
#include "util/err.h"
#include "util/log.h"

#include <event2/buffer.h>
#include <inttypes.h>
#include <stdio.h>
#include <string.h>

#define MOD "bkc"
#define BKC_RR_MD_TRIES 8

int64_t bkc_ledger_segment_first(const struct bkc_ledger *lh, int seg)
{
    return seg < 0 || seg >= lh->md.n_segs ? -1 : lh->md.segs[seg].first;
}

const char *bkc_ledger_segment_bookie(const struct bkc_ledger *lh, int seg, int i)
{
    if (seg < 0 || seg >= lh->md.n_segs || i < 0 || i >= lh->md.ensemble_size)
        return NULL;
    return lh->md.segs[seg].bookies[i];
}

int64_t bkc_ledger_segment_last(const struct bkc_ledger *lh, int seg)
{
    if (seg < 0 || seg >= lh->md.n_segs)
        return -2;
    if (seg + 1 < lh->md.n_segs)
        return lh->md.segs[seg + 1].first - 1;
    if (lh->md.state != BKC_STATE_CLOSED)
        return -2;
    int64_t last = lh->md.last_entry;
    return last < lh->md.segs[seg].first ? lh->md.segs[seg].first - 1 : last;
}

void bkc_rr_free(struct bkc_client *c, struct bkc_rr *rr)
{
    if (!rr)
        return;
    for (int i = 0; i < rr->n_slots; i++) {
        bkc_op_cancel_tp(c, rr->slots[i].op);
        if (rr->slots[i].payload)
            evbuffer_free(rr->slots[i].payload);
    }
    mg_free(rr->slots);
    mg_free(rr->from);
    mg_free(rr->to_id);
    mg_free(rr);
}

static void bkc_rr_finish(struct bkc_rr *rr, int status)
{
    struct bkc_ledger *lh = rr->lh;
    struct bkc_req *req = rr->req;
    lh->rr = NULL;
    bkc_rr_free(lh->c, rr);
    bkc_complete(lh->c, req, status);
}

static int bkc_rr_check(struct bkc_ledger *lh, int seg, int idx, bool need_end)
{
    if (lh->mode != BKC_MODE_READER)
        return -MG_ENOTALLOWED;
    if (lh->rr)
        return -MG_EBUSY;
    if (seg < 0 || seg >= lh->md.n_segs || idx < 0 || idx >= lh->md.ensemble_size)
        return -MG_EINVAL;
    if (need_end && bkc_ledger_segment_last(lh, seg) < -1)
        return -MG_EINVAL;
    return 0;
}

static struct bkc_rr *bkc_rr_new(struct bkc_ledger *lh, int seg, int idx, struct bkc_req *req,
                                 bkc_cb cb)
{
    req->cb = cb;
    req->errmsg[0] = '\0';
    req->entry_id = 0;
    struct bkc_rr *rr = mg_calloc(1, sizeof(*rr));
    rr->lh = lh;
    rr->req = req;
    rr->seg = seg;
    rr->idx = idx;
    lh->rr = rr;
    return rr;
}

/* ---- copying entries -------------------------------------------------------------------- */

static void bkc_rr_fill(struct bkc_rr *rr);

static void bkc_rr_fail(struct bkc_rr *rr, struct bkc_rr_slot *sl, int status, const char *why)
{
    struct bkc_ledger *lh = rr->lh;
    snprintf(rr->req->errmsg, sizeof(rr->req->errmsg),
             "ledger %" PRId64 " entry %" PRId64 " to bookie %s: %s", lh->id, sl->entry, rr->to->id,
             why);
    bkc_rr_finish(rr, status);
}

static void bkc_rr_add_cb(struct bkc_op *op, int rc, struct evbuffer **body)
{
    (void)body;
    struct bkc_rr *rr = op->arg;
    struct bkc_rr_slot *sl = &rr->slots[op->slot];
    sl->op = NULL;
    evbuffer_free(sl->payload);
    sl->payload = NULL;
    if (rc != WIRE_BK_EOK) {
        bkc_rr_fail(rr, sl, -MG_EIO, rc < 0 ? mg_strerror(rc) : wire_bk_status_str(rc));
        return;
    }
    rr->req->entry_id++;
    sl->entry = -1;
    rr->n_busy--;
    bkc_rr_fill(rr);
}

static void bkc_rr_read_send(struct bkc_rr *rr, struct bkc_rr_slot *sl);

static void bkc_rr_read_cb(struct bkc_op *op, int rc, struct evbuffer **body)
{
    struct bkc_rr *rr = op->arg;
    struct bkc_ledger *lh = rr->lh;
    struct bkc_rr_slot *sl = &rr->slots[op->slot];
    sl->op = NULL;
    if (rc == WIRE_BK_EOK && body && *body) {
        int v = bkc_verify_entry(lh, *body, sl->entry, NULL, NULL, NULL);
        if (v == 0) {
            size_t hl = WIRE_BK_ENTRY_HDR_LEN + (size_t)lh->digest_len;
            evbuffer_remove(*body, sl->ehdr, hl);
            sl->payload = *body;
            *body = NULL;
            sl->op = lh->c->tp.ops->add(rr->to, lh->id, sl->entry, WIRE_BK_FLAG_RECOVERY_ADD,
                                        lh->master_key, sl->ehdr, hl, sl->payload, bkc_rr_add_cb,
                                        rr, op->slot);
            return;
        }
        MG_WARN(MOD, "ledger %" PRId64 " entry %" PRId64 " from bookie %s: %s; trying another",
                lh->id, sl->entry, op->bk->id,
                v == -MG_ECHECKSUM ? "digest mismatch" : "wrong entry header");
        sl->n_corrupt++;
    } else if (rc == WIRE_BK_ENOENTRY || rc == WIRE_BK_ENOLEDGER) {
        sl->n_missing++;
    }
    bkc_rr_read_send(rr, sl);
}

/* Ask the next bookie of the entry's write set (not the one being replaced). */
static void bkc_rr_read_send(struct bkc_rr *rr, struct bkc_rr_slot *sl)
{
    struct bkc_ledger *lh = rr->lh;
    int E = lh->md.ensemble_size;
    while (sl->tries < lh->md.write_quorum) {
        int idx = (int)((sl->entry + sl->tries) % E);
        sl->tries++;
        if (idx == rr->idx)
            continue;
        struct bkc_bookie *bk = lh->c->tp.ops->bookie_get(lh->c, lh->md.segs[rr->seg].bookies[idx]);
        sl->op = lh->c->tp.ops->read(bk, lh->id, sl->entry, 0, NULL, bkc_rr_read_cb, rr,
                                     (int)(sl - rr->slots));
        return;
    }
    int asked = lh->md.write_quorum - 1;
    if (sl->n_missing == asked)
        bkc_rr_fail(rr, sl, -MG_ENOTFOUND, "no surviving replica has the entry");
    else if (sl->n_corrupt > 0)
        bkc_rr_fail(rr, sl, -MG_ECHECKSUM, "the surviving copies are corrupt");
    else
        bkc_rr_fail(rr, sl, -MG_EIO, "no surviving replica answered");
}

/* Give every free slot the next entry of the fragment; finish once all are done. */
static void bkc_rr_fill(struct bkc_rr *rr)
{
    struct bkc_ledger *lh = rr->lh;
    for (int i = 0; i < rr->n_slots; i++) {
        struct bkc_rr_slot *sl = &rr->slots[i];
        if (sl->entry >= 0)
            continue;
        /* at most E - 1 entries are skipped before one of the fragment's */
        while (rr->next <= rr->last && !bkc_in_write_set(lh, rr->next, rr->idx))
            rr->next++;
        if (rr->next > rr->last)
            break;
        memset(sl, 0, sizeof(*sl));
        sl->entry = rr->next++;
        rr->n_busy++;
        bkc_rr_read_send(rr, sl);
        if (lh->rr != rr)
            return; /* failed */
    }
    if (rr->n_busy == 0)
        bkc_rr_finish(rr, 0);
}

int bkc_replicate(struct bkc_ledger *lh, int seg, int idx, const char *to, int window,
                  struct bkc_req *req, bkc_cb cb)
{
    int rc = bkc_rr_check(lh, seg, idx, true);
    if (rc < 0)
        return rc;
    struct bkc_rr *rr = bkc_rr_new(lh, seg, idx, req, cb);
    rr->to = lh->c->tp.ops->bookie_get(lh->c, to);
    rr->next = lh->md.segs[seg].first;
    rr->last = bkc_ledger_segment_last(lh, seg);
    rr->n_slots = window < 1 ? 1 : window;
    rr->slots = mg_calloc((size_t)rr->n_slots, sizeof(*rr->slots));
    for (int i = 0; i < rr->n_slots; i++)
        rr->slots[i].entry = -1;
    MG_INFO(MOD,
            "ledger %" PRId64 ": copying entries %" PRId64 "..%" PRId64 " of ensemble index %d "
            "(bookie %s) to %s",
            lh->id, rr->next, rr->last, idx, lh->md.segs[seg].bookies[idx], to);
    bkc_rr_fill(rr);
    return 0;
}

/* ---- the metadata update ---------------------------------------------------------------- */

static void bkc_rr_put_done(struct bkc_mop *mop, int status);
static void bkc_rr_reread_done(struct bkc_mop *mop, int status);

static void bkc_rr_put(struct bkc_rr *rr)
{
    struct bkc_ledger *lh = rr->lh;
    bkc_md_fini(&lh->new_md);
    bkc_md_copy(&lh->new_md, &lh->md);
    char **b = &lh->new_md.segs[rr->seg].bookies[rr->idx];
    mg_free(*b);
    *b = mg_strdup(rr->to_id);
    rr->md_tries++;
    int rc = bkc_md_put(lh, &lh->new_md, lh->md_version, bkc_rr_put_done);
    if (rc < 0)
        bkc_rr_finish(rr, rc);
}

static void bkc_rr_put_done(struct bkc_mop *mop, int status)
{
    struct bkc_ledger *lh = mop->owner;
    struct bkc_rr *rr = lh->rr;
    if (status == -MG_EBUSY && rr->md_tries < BKC_RR_MD_TRIES) {
        int rc = bkc_md_read(lh, bkc_rr_reread_done);
        if (rc < 0)
            bkc_rr_finish(rr, rc);
        return;
    }
    if (status == 0) {
        bkc_lh_take_new_md(lh, mop->mr.stat.version);
        MG_INFO(MOD, "ledger %" PRId64 ": segment %d now has bookie %s instead of %s", lh->id,
                rr->seg, rr->to_id, rr->from);
    } else {
        snprintf(rr->req->errmsg, sizeof(rr->req->errmsg), "ledger %" PRId64 ": metadata write: %s",
                 lh->id, mg_strerror(status));
    }
    bkc_rr_finish(rr, status);
}

static void bkc_rr_reread_done(struct bkc_mop *mop, int status)
{
    struct bkc_ledger *lh = mop->owner;
    struct bkc_rr *rr = lh->rr;
    struct bkc_md md;
    int rc = status < 0 ? status : bkc_md_decode(mop->mr.value, mop->mr.len, &md);
    if (rc < 0) {
        bkc_rr_finish(rr, rc);
        return;
    }
    bool same = md.ensemble_size == lh->md.ensemble_size && rr->seg < md.n_segs &&
                md.segs[rr->seg].first == lh->md.segs[rr->seg].first;
    const char *now = same ? md.segs[rr->seg].bookies[rr->idx] : "";
    bkc_md_fini(&lh->md);
    lh->md = md;
    lh->md_version = mop->mr.stat.version;
    if (same && strcmp(now, rr->to_id) == 0) {
        bkc_rr_finish(rr, 0); /* someone else made the same change */
        return;
    }
    if (!same || strcmp(now, rr->from) != 0) {
        snprintf(rr->req->errmsg, sizeof(rr->req->errmsg),
                 "ledger %" PRId64 ": segment %d changed meanwhile", lh->id, rr->seg);
        bkc_rr_finish(rr, -MG_EBUSY);
        return;
    }
    bkc_rr_put(rr);
}

int bkc_ledger_set_bookie(struct bkc_ledger *lh, int seg, int idx, const char *to,
                          struct bkc_req *req, bkc_cb cb)
{
    int rc = bkc_rr_check(lh, seg, idx, false);
    if (rc < 0)
        return rc;
    struct bkc_rr *rr = bkc_rr_new(lh, seg, idx, req, cb);
    rr->from = mg_strdup(lh->md.segs[seg].bookies[idx]);
    rr->to_id = mg_strdup(to);
    bkc_rr_put(rr);
    return 0;
}
