/*
 * bk_server.c - the bookie's network side and request semantics (loop thread).
 *
 * Happy path: accept -> per-connection bufferevent. Each complete frame [BE32 len][body] is
 * decoded by the codec shared with the client (wire_bk_request_read, wire/wire_bk.h); the
 * first one fixes the connection's framing (v3: the body starts with 0x0A, the tag of
 * Request.header; v2: the first byte is the packet version 0..2). Reads, READ_LAC,
 * GET_BOOKIE_INFO, AUTH are answered at once. Adds (and masterKey, fence, explicit-LAC and
 * force meta-records) become bk_jreq records, collected during the read callback and handed
 * to the journal thread at its end in one batch. When the journal thread has written and
 * synced a group it wakes bk_server_journal_done, which applies each record to storage and
 * sends its reply (bk_server_apply). Backpressure: while both write-cache halves are full
 * (the checkpoint of one in flight, bk_store_cache_full) an add and the records behind it
 * wait in order in the server's queue until that checkpoint completes, and connections that
 * send adds are not read meanwhile; the loop never waits (docs/bookie-threads.md). v3 replies carry
 * the request's txnId and may leave out of order; v2 replies are matched by (ledger, entry).
 * Requests of this process (bk_local.c: the standalone's broker) go through the same admission
 * (bk_add_admit, bk_fence_begin) and the same journal records, and are answered by bk_local_answer
 * instead of a frame.
 *
 * Failure modes: a frame above max_frame (nettyMaxFrameSizeBytes, the length field counted)
 * fails only its request: EBADREQ from its first bytes, the rest skipped as it arrives
 * (bk_refuse_oversized). A frame
 * shorter than a header, of an unknown framing, with a length above 2^31-1 or that does not
 * decode closes that connection with a logged reason (other connections go on). Disk space
 * (every ledger directory, or the journal's disk, above diskUsageThreshold, or a write out of
 * space; a single full ledger directory only takes no new entry logs) turns the bookie
 * read-only with
 * EREADONLY for adds, the group that could not be journalled included, until usage is below
 * diskUsageLwmThreshold again and pending writes went through (bk_check_disk); any other
 * journal or entry-log failure answers the affected adds EIO (never EOK) and keeps the bookie
 * read-only until restarted. Reads go on. Connections closed while adds are in the journal
 * are kept (refcounted) until those complete; the adds are still applied. The journal and
 * ledger directories are locked for the life of the server (bk_dirs_lock).
 */
#include "bookie/bookie_int.h"
#include "config/cfg.h"
#include "tls/tls.h"
#include "util/alloc.h"
#include "util/bev.h"
#include "util/err.h"
#include "util/fs.h"
#include "util/listen.h"
#include "util/log.h"
#include "util/loop.h"
#include "wire/wire_bk.h"

#include <arpa/inet.h>
#include <errno.h>
#include <event2/buffer.h>
#include <event2/bufferevent.h>
#include <event2/event.h>
#include <inttypes.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stddef.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/statvfs.h>
#include <unistd.h>

#define AUTH_PLUGIN "AuthDisabledPlugin"

void bk_options_default(struct bk_options *o)
{
    memset(o, 0, sizeof *o);
    o->bind_address = "0.0.0.0";
    o->port = 3181;
    o->advertised_address = "localhost";
    o->journal_dir = "data/bookie/journal";
    o->ledger_dir = "data/bookie/ledgers";
    o->max_group_wait_ms = 1;
    o->buffered_writes_threshold = 524288;
    o->buffered_entries_threshold = 0;
    o->journal_max_size = 2048LL << 20;
    o->journal_max_backups = 5;
    o->journal_sync = true;
    o->flush_interval_ms = 10000;
    o->disk_usage_threshold_pct = 95.0;
    o->disk_usage_lwm_pct = 95.0;
    o->disk_usage_warn_pct = 90.0;
    o->disk_check_interval_ms = 10000;
    o->max_frame_size = BK_DEFAULT_MAX_FRAME;
    o->flush_entrylog_bytes = BK_LOG_WB_DEFAULT;
    o->gc_wait_ms = 600000;
    o->minor_compaction_threshold = 0.2;
    o->minor_compaction_interval_s = 3600;
    o->major_compaction_threshold = 0.8;
    o->major_compaction_interval_s = 86400;
    o->compaction_rate_by_entries = 1000;
    o->compaction_rate_by_bytes = 1000000;
}

/* ---- connections ------------------------------------------------------------------------ */

static void bk_conn_unref(struct bk_conn *c)
{
    MG_ASSERT(c->refs > 0);
    if (--c->refs == 0)
        mg_free(c);
}

static void bk_conn_close(struct bk_conn *c)
{
    if (!c->bev)
        return;
    struct bk_server *s = c->srv;
    if (c->reason[0])
        MG_INFO(BK_MODULE, "conn %" PRIu64 " %s closed: %s", c->id, c->peer, c->reason);
    else
        MG_DEBUG(BK_MODULE, "conn %" PRIu64 " %s closed", c->id, c->peer);
    bufferevent_free(c->bev);
    c->bev = NULL;
    if (s->listener)
        mg_listener_conn_closed(s->listener); /* a descriptor is free: resume a paused one */
    if (c->prev)
        c->prev->next = c->next;
    else
        s->conns = c->next;
    if (c->next)
        c->next->prev = c->prev;
    c->prev = c->next = NULL;
    bk_conn_unref(c);
}

/* Read from c again unless something else keeps it paused; frames may already be buffered,
 * so the read callback runs from the loop. */
static void bk_conn_read_resume(struct bk_conn *c)
{
    if (c->paused || c->cache_wait || !c->bev)
        return;
    bufferevent_enable(c->bev, EV_READ);
    bufferevent_trigger(c->bev, EV_READ, BEV_TRIG_DEFER_CALLBACKS);
}

static void bk_conn_fail(struct bk_conn *c, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));
static void bk_conn_fail(struct bk_conn *c, const char *fmt, ...)
{
    if (c->closing)
        return;
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(c->reason, sizeof c->reason, fmt, ap);
    va_end(ap);
    c->closing = true;
}

/* ---- replies ---------------------------------------------------------------------------- */

static void bk_v3_send(struct bk_conn *c, int op, uint64_t txn, int status,
                       Bookkeeper__Proto__Response *resp)
{
    if (c->bev &&
        wire_bk_write_v3_response(bufferevent_get_output(c->bev), op, txn, status, resp) < 0)
        bk_conn_fail(c, "out of output buffer space");
}

static void bk_v2_send(struct bk_conn *c, uint32_t req_hdr, int status, int64_t ledger,
                       int64_t entry, const uint8_t *body, size_t len)
{
    if (c->bev)
        wire_bk_write_v2_response(bufferevent_get_output(c->bev), req_hdr, status, ledger, entry,
                                  body, len);
}

static void bk_reply_add(struct bk_conn *c, int proto, uint32_t v2hdr, uint64_t txn, int status,
                         int64_t ledger, int64_t entry)
{
    if (proto == WIRE_BK_PROTO_V2) {
        bk_v2_send(c, v2hdr, status, ledger, entry, NULL, 0);
        return;
    }
    Bookkeeper__Proto__Response r = BOOKKEEPER__PROTO__RESPONSE__INIT;
    Bookkeeper__Proto__AddResponse a = BOOKKEEPER__PROTO__ADD_RESPONSE__INIT;
    a.status = wire_bk_status_to_v3(status);
    a.ledgerid = ledger;
    a.entryid = entry;
    r.addresponse = &a;
    bk_v3_send(c, BOOKKEEPER__PROTO__OPERATION_TYPE__ADD_ENTRY, txn, status, &r);
}

/* Read (ledger, entry) and answer; status != EOK answers that status without reading. */
static void bk_reply_read(struct bk_server *s, struct bk_conn *c, int proto, uint32_t v2hdr,
                          uint64_t txn, int64_t ledger, int64_t entry, int status)
{
    uint8_t *data = NULL;
    size_t len = 0;
    bool owned = false;
    if (status == WIRE_BK_EOK)
        status = bk_store_read(&s->store, ledger, entry, &data, &len, &owned);
    if (proto == WIRE_BK_PROTO_V2) {
        bk_v2_send(c, v2hdr, status, ledger, entry, data, status == WIRE_BK_EOK ? len : 0);
    } else {
        Bookkeeper__Proto__Response r = BOOKKEEPER__PROTO__RESPONSE__INIT;
        Bookkeeper__Proto__ReadResponse rr = BOOKKEEPER__PROTO__READ_RESPONSE__INIT;
        rr.status = wire_bk_status_to_v3(status);
        rr.ledgerid = ledger;
        rr.entryid = entry;
        if (status == WIRE_BK_EOK) {
            rr.has_body = true;
            rr.body.data = data;
            rr.body.len = len;
        }
        struct bk_ledger *l = bk_store_ledger(&s->store, ledger, false);
        if (l) {
            rr.has_maxlac = true;
            rr.maxlac = l->lac;
        }
        r.readresponse = &rr;
        bk_v3_send(c, BOOKKEEPER__PROTO__OPERATION_TYPE__READ_ENTRY, txn, status, &r);
    }
    if (owned)
        mg_free(data);
}

static void bk_reply_simple(struct bk_conn *c, int op, uint64_t txn, int status, int64_t ledger)
{
    Bookkeeper__Proto__Response r = BOOKKEEPER__PROTO__RESPONSE__INIT;
    Bookkeeper__Proto__WriteLacResponse w = BOOKKEEPER__PROTO__WRITE_LAC_RESPONSE__INIT;
    Bookkeeper__Proto__ForceLedgerResponse f = BOOKKEEPER__PROTO__FORCE_LEDGER_RESPONSE__INIT;
    if (op == BOOKKEEPER__PROTO__OPERATION_TYPE__WRITE_LAC) {
        w.status = wire_bk_status_to_v3(status);
        w.ledgerid = ledger;
        r.writelacresponse = &w;
    } else {
        f.status = wire_bk_status_to_v3(status);
        f.ledgerid = ledger;
        r.forceledgerresponse = &f;
    }
    bk_v3_send(c, op, txn, status, &r);
}

/* ---- journal requests ------------------------------------------------------------------- */

static struct bk_jreq *bk_jreq_new(struct bk_server *s, enum bk_jtype type, int64_t ledger,
                                   int64_t entry, uint8_t *data, size_t len)
{
    struct bk_jreq *r = mg_calloc(1, sizeof *r);
    r->type = type;
    r->ledger_id = ledger;
    r->entry_id = entry;
    r->data = data;
    r->len = len;
    r->enq_ns = mg_mono_ns();
    if (s->pend_tail)
        s->pend_tail->next = r;
    else
        s->pend_head = r;
    s->pend_tail = r;
    return r;
}

static void bk_jreq_reply_to(struct bk_jreq *r, struct bk_conn *c, enum bk_reply reply, int proto,
                             uint32_t v2hdr, uint64_t txn, int op)
{
    r->conn = c;
    c->refs++;
    c->inflight++;
    r->reply = reply;
    r->proto = proto;
    r->v2_hdr = v2hdr;
    r->txn_id = txn;
    r->op = op;
}

void bk_server_submit_pending(struct bk_server *s)
{
    bk_journal_submit(&s->journal, s->pend_head, s->pend_tail);
    s->pend_head = s->pend_tail = NULL;
}

/* The records of a journal group are applied in turn, and a checkpoint may begin between two
 * of them (the write cache full): lastMark may then only cover the groups before, since the
 * rest of r's group goes into the next half. r starts a new group: the previous one is
 * complete. */
static void bk_mark_group(struct bk_server *s, const struct bk_jreq *r)
{
    if (s->grp_open && (s->grp_file != r->jfile || s->grp_end != r->jend)) {
        s->store.mark_file = s->grp_file;
        s->store.mark_off = s->grp_end;
    }
    s->grp_file = r->jfile;
    s->grp_end = r->jend;
    s->grp_open = true;
}

/* Everything the journal completed is applied: it hands whole groups, so the last one is
 * complete too. */
static void bk_mark_all_applied(struct bk_server *s)
{
    if (!s->grp_open)
        return;
    s->store.mark_file = s->grp_file;
    s->store.mark_off = s->grp_end;
    s->grp_open = false;
}

static void bk_complete(struct bk_server *s, struct bk_jreq *r)
{
    if (r->status == 0) {
        static const int64_t meta_ids[] = {
            [BK_J_KEY] = BK_META_LEDGER_KEY,
            [BK_J_FENCE] = BK_META_FENCE_KEY,
            [BK_J_LAC] = BK_META_EXPLICIT_LAC,
            [BK_J_FORCE] = BK_META_FORCE_LEDGER,
        };
        int rc;
        bk_mark_group(s, r);
        if (r->type == BK_J_ADD) {
            rc = bk_store_apply(&s->store, r->ledger_id, r->entry_id, r->data, r->len);
            r->data = NULL; /* the write cache owns it now */
        } else {
            rc = bk_store_apply(&s->store, r->ledger_id, meta_ids[r->type], r->data, r->len);
        }
        if (rc == -MG_EREADONLY)
            bk_server_set_readonly(s, BK_RO_NOSPACE, true,
                                   "entry log write: no space left on device");
        else if (rc < 0)
            bk_server_set_readonly(s, BK_RO_IOERR, true, "entry log write failed");
    } else {
        if (r->type == BK_J_KEY) { /* journal the key again with the ledger's next request */
            struct bk_ledger *l = bk_store_ledger(&s->store, r->ledger_id, false);
            if (l)
                l->key_unjournaled = true;
        }
        char why[128];
        int e = atomic_load(&s->journal.failed_errno);
        if (r->status == -MG_EREADONLY) {
            snprintf(why, sizeof why, "journal write: %s", strerror(e ? e : ENOSPC));
            bk_server_set_readonly(s, BK_RO_NOSPACE, true, why);
        } else if (!(s->readonly & BK_RO_IOERR)) {
            snprintf(why, sizeof why, "journal write/fsync failed: %s",
                     e ? strerror(e) : mg_strerror(r->status));
            bk_server_set_readonly(s, BK_RO_IOERR, true, why);
        }
    }
    /* out of space: BookKeeper's read-only code, so that the client writes elsewhere */
    int st = r->status == 0                                                  ? WIRE_BK_EOK
             : r->status == -MG_EREADONLY && r->reply != BK_REPLY_FENCE_READ ? WIRE_BK_EREADONLY
                                                                             : WIRE_BK_EIO;
    if (r->local) /* a request of this process (bk_local.c): answered by a call */
        bk_local_answer(s, r->local, r->reply, st, r->ledger_id, r->entry_id);
    struct bk_conn *c = r->conn;
    if (c) {
        if (c->bev) {
            switch (r->reply) {
            case BK_REPLY_ADD:
                bk_reply_add(c, r->proto, r->v2_hdr, r->txn_id, st, r->ledger_id, r->entry_id);
                break;
            case BK_REPLY_FENCE_READ:
                bk_reply_read(s, c, r->proto, r->v2_hdr, r->txn_id, r->ledger_id, r->entry_id, st);
                break;
            case BK_REPLY_WRITE_LAC:
            case BK_REPLY_FORCE:
                bk_reply_simple(c, r->op, r->txn_id, st, r->ledger_id);
                break;
            case BK_REPLY_NONE:
                break;
            }
        }
        c->inflight--;
        if (c->paused && c->inflight < BK_CONN_MAX_INFLIGHT / 2) {
            c->paused = false;
            bk_conn_read_resume(c);
        }
        bk_conn_unref(c);
    }
    mg_free(r->data);
    mg_free(r);
}

static void bk_check_disk(struct bk_server *s, bool may_clear);

/* No add waits for the write cache any more: report the wait, from the first add that waited
 * to now, over as many checkpoints as adds kept waiting for (one line per
 * MG_RATELIMIT_INTERVAL_MS). */
static void bk_cache_wait_end(struct bk_server *s)
{
    uint64_t held;
    if (mg_ratelimit_allow(&s->rl_cache_full, MG_RATELIMIT_INTERVAL_MS, &held))
        MG_WARN(BK_MODULE,
                "write cache full (dbStorage_writeCacheMaxSizeMb): adds waited for the "
                "storage thread's checkpoints for %.1f ms, up to %zu journalled records held "
                "and the connections sending adds not read meanwhile (%" PRIu64
                " more such waits since the last line): the ledger disk does not keep up",
                (double)(mg_mono_ns() - s->wait_since_ns) / 1e6, s->wait_peak, held);
    s->wait_since_ns = 0;
    s->wait_peak = 0;
}

/* The write cache has room again: read again from the connections it paused. */
static void bk_conns_cache_resume(struct bk_server *s)
{
    if (!s->conns_cache_paused)
        return;
    s->conns_cache_paused = false;
    for (struct bk_conn *c = s->conns; c; c = c->next) {
        if (c->cache_wait) {
            c->cache_wait = false;
            bk_conn_read_resume(c);
        }
    }
}

/* Whether the next add may go into the active write-cache half now: a half past its size is
 * handed to the storage thread first; while the other one is still there, no (the add
 * waits, rather than letting the cache grow, as DbLedgerStorage's addEntry does). */
static bool bk_cache_admits(struct bk_server *s)
{
    if (s->apply_all)
        return true;
    bk_server_checkpoint_if_full(s);
    if (!bk_store_cache_full(&s->store))
        return true;
    if (!s->wait_since_ns) {
        s->wait_since_ns = mg_mono_ns() | 1;
        s->wait_peak = s->n_waiting;
        s->store.flush_waits++;
        atomic_store(&s->store.flush_waits_seen, s->store.flush_waits);
    }
    return false;
}

/* Apply and answer the journalled records waiting, in journal order (bk_complete), up to an
 * add that finds the write cache full: it and every record behind it wait for the checkpoint
 * in flight, whose completion (bk_server_flushed) calls this again. The loop goes on. */
static void bk_server_apply(struct bk_server *s)
{
    if (s->applying)
        return;
    s->applying = true;
    bool waits = false;
    struct bk_jreq *r;
    while ((r = s->wait_head) != NULL) {
        if (r->status == 0 && r->type == BK_J_ADD && !bk_cache_admits(s)) {
            waits = true;
            break;
        }
        s->wait_head = r->next;
        if (!s->wait_head)
            s->wait_tail = NULL;
        s->n_waiting--;
        bk_complete(s, r);
    }
    if (!s->wait_head) {
        bk_mark_all_applied(s);
        bk_server_checkpoint_if_full(s);
    }
    if (!waits && s->wait_since_ns)
        bk_cache_wait_end(s);
    if (!bk_store_cache_full(&s->store))
        bk_conns_cache_resume(s);
    s->applying = false;
}

void bk_server_journal_done(struct bk_server *s)
{
    struct bk_jreq *r = bk_journal_take_done(&s->journal);
    if (r) {
        if (s->wait_tail)
            s->wait_tail->next = r;
        else
            s->wait_head = r;
        for (; r; r = r->next) {
            s->n_waiting++;
            s->wait_tail = r;
        }
        if (s->wait_since_ns && s->n_waiting > s->wait_peak)
            s->wait_peak = s->n_waiting;
    }
    bk_server_apply(s);
    if (atomic_exchange(&s->journal.disk_check_due, 0))
        bk_check_disk(s, false); /* room is short: turn read-only now, not at the next check */
}

void bk_server_checkpoint_if_full(struct bk_server *s)
{
    /* out of space the cache waits for the disk check's retry */
    struct bk_store *st = &s->store;
    if (st->cache_bytes > st->cache_max && !st->flush_busy && !st->io_failed && !st->nospace)
        bk_store_flush_begin(st, false);
}

/* ---- request semantics ------------------------------------------------------------------ */

/* Check and record the master key; queues a LEDGER_KEY record when it is new. */
static int bk_check_key(struct bk_server *s, int64_t ledger, const uint8_t *key, size_t klen,
                        struct bk_ledger **out)
{
    if (klen > BK_MASTER_KEY_MAX)
        return WIRE_BK_EBADREQ;
    struct bk_ledger *l = bk_store_ledger(&s->store, ledger, true);
    *out = l;
    if (l->has_key && (l->key_len != klen || memcmp(l->key, key, klen) != 0))
        return WIRE_BK_EUA;
    if (l->has_key && !l->key_unjournaled)
        return WIRE_BK_EOK;
    l->key_unjournaled = false;
    l->has_key = true;
    l->key_len = (uint8_t)klen;
    memcpy(l->key, key, klen);
    l->dirty = true;
    uint8_t *k = mg_malloc(klen ? klen : 1);
    memcpy(k, key, klen);
    bk_jreq_new(s, BK_J_KEY, ledger, BK_META_LEDGER_KEY, k, klen);
    return WIRE_BK_EOK;
}

int bk_add_admit(struct bk_server *s, int64_t ledger, int64_t entry, const uint8_t *key,
                 size_t klen, bool recovery, bool high_prio)
{
    /* high-priority (recovery) adds still go in when the only reason is disk space */
    if (s->readonly && !(high_prio && !(s->readonly & ~(BK_RO_DISK | BK_RO_NOSPACE))))
        return WIRE_BK_EREADONLY;
    if (ledger < 0 || entry < 0)
        return WIRE_BK_EBADREQ;
    struct bk_ledger *l;
    int st = bk_check_key(s, ledger, key, klen, &l);
    if (st != WIRE_BK_EOK)
        return st;
    if (l->fenced && !recovery)
        return WIRE_BK_EFENCED;
    return WIRE_BK_EOK;
}

struct bk_jreq *bk_add_queue(struct bk_server *s, int64_t ledger, int64_t entry, uint8_t *body,
                             size_t len)
{
    return bk_jreq_new(s, BK_J_ADD, ledger, entry, body, len);
}

struct bk_jreq *bk_fence_begin(struct bk_server *s, int64_t ledger, int64_t entry,
                               const uint8_t *key, size_t klen, bool has_key, int *st)
{
    struct bk_ledger *l = NULL;
    if (!has_key)
        *st = WIRE_BK_EUA;
    else if (s->readonly & BK_RO_IOERR)
        *st = WIRE_BK_EIO;
    else
        *st = bk_check_key(s, ledger, key, klen, &l);
    if (*st != WIRE_BK_EOK)
        return NULL;
    l->fenced = true;
    l->dirty = true;
    struct bk_jreq *r = bk_jreq_new(s, BK_J_FENCE, ledger, BK_META_FENCE_KEY, NULL, 0);
    r->reply = BK_REPLY_FENCE_READ;
    r->entry_id = entry; /* the entry to answer with; the record itself is a FENCE */
    return r;
}

/* Fencing read over a connection (bk_fence_begin), answered there once durable. */
static void bk_fence_read(struct bk_server *s, struct bk_conn *c, int proto, uint32_t v2hdr,
                          uint64_t txn, int64_t ledger, int64_t entry, const uint8_t *key,
                          size_t klen, bool has_key)
{
    int st;
    struct bk_jreq *r = bk_fence_begin(s, ledger, entry, key, klen, has_key, &st);
    if (!r) {
        bk_reply_read(s, c, proto, v2hdr, txn, ledger, entry, st);
        return;
    }
    bk_jreq_reply_to(r, c, BK_REPLY_FENCE_READ, proto, v2hdr, txn,
                     BOOKKEEPER__PROTO__OPERATION_TYPE__READ_ENTRY);
}

static void bk_v3_error(struct bk_conn *c, int op, uint64_t txn, int status);

/* ---- TLS (README.md "TLS") --------------------------------------------------------------- */

/* A bookie that requires TLS (bookieAuthProviderFactoryClass=BK_TLS_AUTH_FACTORY) answers
 * every request but START_TLS EUA until the connection's handshake completed, as
 * BookKeeper's AuthHandler answers an unauthenticated client. True when rq was refused (the
 * caller answers EUA); logged once per connection. */
static bool bk_tls_refuses(struct bk_server *s, struct bk_conn *c, const char *what)
{
    if (!s->tls_required || c->tls == BK_TLS_ON)
        return false;
    if (!c->eua_logged && c->tls == BK_TLS_DENIED) {
        c->eua_logged = true; /* bk_tls_on logged the role */
        MG_WARN(BK_MODULE,
                "conn %" PRIu64 " %s: %s refused (EUA): the client certificate has no role of "
                "authorizedRoles; further refusals on this connection are not logged",
                c->id, c->peer, what);
    } else if (!c->eua_logged) {
        c->eua_logged = true;
        MG_WARN(BK_MODULE,
                "conn %" PRIu64 " %s: %s refused (EUA): this bookie requires TLS "
                "(bookieAuthProviderFactoryClass=%s) and the client did not START_TLS; further "
                "refusals on this connection are not logged",
                c->id, c->peer, what, BK_TLS_AUTH_FACTORY);
    }
    return true;
}

/* START_TLS: answer EOK in plain text; the read callback puts the TLS filter on once this
 * read's frames are done (bk_tls_start). Refused EBADREQ without TLS configured or when the
 * connection already started it. */
static void bk_v3_start_tls(struct bk_server *s, struct bk_conn *c, Bookkeeper__Proto__Request *req)
{
    uint64_t txn = req->header->txnid;
    if (!s->tls || c->tls != BK_TLS_NONE) {
        MG_INFO(BK_MODULE, "conn %" PRIu64 " %s: START_TLS refused (EBADREQ): %s", c->id, c->peer,
                s->tls ? "TLS already started" : "TLS is not configured");
        bk_v3_error(c, BOOKKEEPER__PROTO__OPERATION_TYPE__START_TLS, txn, WIRE_BK_EBADREQ);
        return;
    }
    if (c->bev &&
        wire_bk_write_start_tls_response(bufferevent_get_output(c->bev), txn, WIRE_BK_EOK) < 0) {
        bk_conn_fail(c, "out of output buffer space");
        return;
    }
    c->tls = BK_TLS_STARTING;
}

static void bk_conn_read_cb(struct bufferevent *bev, void *arg);
static void bk_conn_event_cb(struct bufferevent *bev, short what, void *arg);

/* Put the TLS filter over the connection's socket (the START_TLS answer already queued there
 * leaves first, in plain text) and start the server handshake, bounded by
 * TLS_HANDSHAKE_TIMEOUT_MS. The framing is detected again from the next frame: a v2 client
 * sends START_TLS in v3 and goes on in v2 (BookKeeper's PerChannelBookieClient). */
static void bk_tls_start(struct bk_server *s, struct bk_conn *c)
{
    /* the context of the current files (tlsCertFilesRefreshDurationSeconds) */
    c->bev = tls_link_start(c->bev, tls_link_ctx(s->tls), true, TLS_HANDSHAKE_TIMEOUT_MS);
    bufferevent_set_max_single_read(c->bev, 256 * 1024);
    bufferevent_setcb(c->bev, bk_conn_read_cb, NULL, bk_conn_event_cb, c);
    bufferevent_enable(c->bev, EV_READ | EV_WRITE);
    c->tls = BK_TLS_HANDSHAKING;
    c->proto = WIRE_BK_PROTO_UNKNOWN;
}

/* The handshake completed: the connection is authenticated for BK_TLS_AUTH_FACTORY, if its
 * certificate has one of authorizedRoles when they are set (BookieAuthZFactory); else its
 * requests are answered EUA (bk_tls_refuses). */
static void bk_tls_on(struct bk_server *s, struct bk_conn *c)
{
    c->tls = BK_TLS_ON;
    bufferevent_set_timeouts(c->bev, NULL, NULL);
    char role[256];
    if (s->authorized_roles &&
        !tls_peer_role_allowed(c->bev, s->authorized_roles, role, sizeof role)) {
        c->tls = BK_TLS_DENIED;
        MG_WARN(BK_MODULE,
                "conn %" PRIu64 " %s: client certificate not authorized (%s not in "
                "authorizedRoles): its requests are answered EUA",
                c->id, c->peer, role);
        return;
    }
    MG_DEBUG(BK_MODULE, "conn %" PRIu64 " %s: TLS on", c->id, c->peer);
}

/* ---- v2 --------------------------------------------------------------------------------- */

static void bk_handle_v2(struct bk_server *s, struct bk_conn *c, struct wire_bk_request *rq)
{
    if ((rq->op == WIRE_BK_OP_ADD || rq->op == WIRE_BK_OP_READ) &&
        bk_tls_refuses(s, c, rq->op == WIRE_BK_OP_ADD ? "v2 ADD" : "v2 READ")) {
        bk_v2_send(c, rq->v2_hdr, WIRE_BK_EUA, rq->ledger, rq->entry, NULL, 0);
        return;
    }
    if (rq->op == WIRE_BK_OP_ADD) {
        c->sends_adds = true;
        int st = bk_add_admit(s, rq->ledger, rq->entry, rq->master_key, sizeof(rq->master_key),
                              (rq->flags & WIRE_BK_FLAG_RECOVERY_ADD) != 0,
                              (rq->flags & WIRE_BK_FLAG_HIGH_PRIORITY) != 0);
        if (st != WIRE_BK_EOK) {
            bk_v2_send(c, rq->v2_hdr, st, rq->ledger, rq->entry, NULL, 0);
            return;
        }
        struct bk_jreq *r = bk_add_queue(s, rq->ledger, rq->entry, rq->body, rq->body_len);
        rq->body = NULL; /* the journal record's now */
        bk_jreq_reply_to(r, c, BK_REPLY_ADD, WIRE_BK_PROTO_V2, rq->v2_hdr, 0, 0);
        return;
    }
    if (rq->op == WIRE_BK_OP_READ) {
        if (rq->flags & WIRE_BK_FLAG_FENCE)
            bk_fence_read(s, c, WIRE_BK_PROTO_V2, rq->v2_hdr, 0, rq->ledger, rq->entry,
                          rq->master_key, sizeof(rq->master_key), rq->has_key);
        else
            bk_reply_read(s, c, WIRE_BK_PROTO_V2, rq->v2_hdr, 0, rq->ledger, rq->entry,
                          WIRE_BK_EOK);
        return;
    }
    if (rq->op == WIRE_BK_OP_AUTH) {
        if (c->bev)
            wire_bk_write_v2_auth(bufferevent_get_output(c->bev), rq->v2_hdr, AUTH_PLUGIN);
        return;
    }
    bk_conn_fail(c, "unsupported v2 opcode %u (version %u)", rq->op, rq->v2_hdr >> 24);
}

/* ---- v3 --------------------------------------------------------------------------------- */

static void bk_v3_error(struct bk_conn *c, int op, uint64_t txn, int status)
{
    Bookkeeper__Proto__Response r = BOOKKEEPER__PROTO__RESPONSE__INIT;
    bk_v3_send(c, op, txn, status, &r);
}

static void bk_v3_add(struct bk_server *s, struct bk_conn *c, Bookkeeper__Proto__Request *req)
{
    uint64_t txn = req->header->txnid;
    Bookkeeper__Proto__AddRequest *a = req->addrequest;
    bool recovery = a->has_flag && a->flag == BOOKKEEPER__PROTO__ADD_REQUEST__FLAG__RECOVERY_ADD;
    bool prio = req->header->has_priority && req->header->priority > 0;
    c->sends_adds = true;
    int st = bk_add_admit(s, a->ledgerid, a->entryid, a->masterkey.data, a->masterkey.len, recovery,
                          prio);
    if (st != WIRE_BK_EOK) {
        bk_reply_add(c, WIRE_BK_PROTO_V3, 0, txn, st, a->ledgerid, a->entryid);
        return;
    }
    size_t len = a->body.len;
    uint8_t *body = wire_bk_take_bytes(&a->body); /* not copied again: the journal's now */
    struct bk_jreq *r = bk_add_queue(s, a->ledgerid, a->entryid, body, len);
    bk_jreq_reply_to(r, c, BK_REPLY_ADD, WIRE_BK_PROTO_V3, 0, txn,
                     BOOKKEEPER__PROTO__OPERATION_TYPE__ADD_ENTRY);
}

static void bk_v3_read(struct bk_server *s, struct bk_conn *c, Bookkeeper__Proto__Request *req)
{
    uint64_t txn = req->header->txnid;
    Bookkeeper__Proto__ReadRequest *rr = req->readrequest;
    /* Long polls (previousLAC/timeOut) are answered at once with the current state. */
    if (rr->has_flag && rr->flag == BOOKKEEPER__PROTO__READ_REQUEST__FLAG__FENCE_LEDGER)
        bk_fence_read(s, c, WIRE_BK_PROTO_V3, 0, txn, rr->ledgerid, rr->entryid, rr->masterkey.data,
                      rr->masterkey.len, rr->has_masterkey);
    else
        bk_reply_read(s, c, WIRE_BK_PROTO_V3, 0, txn, rr->ledgerid, rr->entryid, WIRE_BK_EOK);
}

static void bk_v3_read_lac(struct bk_server *s, struct bk_conn *c, Bookkeeper__Proto__Request *req)
{
    int op = BOOKKEEPER__PROTO__OPERATION_TYPE__READ_LAC;
    uint64_t txn = req->header->txnid;
    int64_t ledger = req->readlacrequest->ledgerid;
    Bookkeeper__Proto__Response r = BOOKKEEPER__PROTO__RESPONSE__INIT;
    Bookkeeper__Proto__ReadLacResponse lr = BOOKKEEPER__PROTO__READ_LAC_RESPONSE__INIT;
    lr.ledgerid = ledger;
    uint8_t *data = NULL;
    size_t len = 0;
    bool owned = false;
    int st = WIRE_BK_ENOLEDGER;
    struct bk_ledger *l = bk_store_ledger(&s->store, ledger, false);
    if (l) {
        st = WIRE_BK_ENOENTRY;
        if (l->explicit_lac) {
            lr.has_lacbody = true;
            lr.lacbody.data = l->explicit_lac;
            lr.lacbody.len = l->explicit_lac_len;
            st = WIRE_BK_EOK;
        }
        if (bk_store_read(&s->store, ledger, -1, &data, &len, &owned) == WIRE_BK_EOK) {
            lr.has_lastentrybody = true;
            lr.lastentrybody.data = data;
            lr.lastentrybody.len = len;
            st = WIRE_BK_EOK;
        }
    }
    lr.status = wire_bk_status_to_v3(st);
    r.readlacresponse = &lr;
    bk_v3_send(c, op, txn, st, &r);
    if (owned)
        mg_free(data);
}

static void bk_v3_write_lac(struct bk_server *s, struct bk_conn *c, Bookkeeper__Proto__Request *req)
{
    int op = BOOKKEEPER__PROTO__OPERATION_TYPE__WRITE_LAC;
    uint64_t txn = req->header->txnid;
    Bookkeeper__Proto__WriteLacRequest *w = req->writelacrequest;
    int st = s->readonly ? WIRE_BK_EREADONLY : WIRE_BK_EOK;
    struct bk_ledger *l;
    if (st == WIRE_BK_EOK)
        st = bk_check_key(s, w->ledgerid, w->masterkey.data, w->masterkey.len, &l);
    if (st != WIRE_BK_EOK) {
        bk_reply_simple(c, op, txn, st, w->ledgerid);
        return;
    }
    size_t len = w->body.len;
    uint8_t *b = wire_bk_take_bytes(&w->body);
    struct bk_jreq *r = bk_jreq_new(s, BK_J_LAC, w->ledgerid, BK_META_EXPLICIT_LAC, b, len);
    bk_jreq_reply_to(r, c, BK_REPLY_WRITE_LAC, WIRE_BK_PROTO_V3, 0, txn, op);
}

static void bk_v3_force(struct bk_server *s, struct bk_conn *c, Bookkeeper__Proto__Request *req)
{
    int op = BOOKKEEPER__PROTO__OPERATION_TYPE__FORCE_LEDGER;
    uint64_t txn = req->header->txnid;
    int64_t ledger = req->forceledgerrequest->ledgerid;
    if (s->readonly & BK_RO_IOERR) {
        bk_reply_simple(c, op, txn, WIRE_BK_EIO, ledger);
        return;
    }
    /* Every add is synced before its ack, so forcing only needs to wait for the records
     * queued before it: a FORCE_LEDGER record rides the same group commit. */
    struct bk_jreq *r = bk_jreq_new(s, BK_J_FORCE, ledger, BK_META_FORCE_LEDGER, NULL, 0);
    bk_jreq_reply_to(r, c, BK_REPLY_FORCE, WIRE_BK_PROTO_V3, 0, txn, op);
}

static void bk_v3_bookie_info(struct bk_server *s, struct bk_conn *c,
                              Bookkeeper__Proto__Request *req)
{
    int op = BOOKKEEPER__PROTO__OPERATION_TYPE__GET_BOOKIE_INFO;
    Bookkeeper__Proto__Response r = BOOKKEEPER__PROTO__RESPONSE__INIT;
    Bookkeeper__Proto__GetBookieInfoResponse gi = BOOKKEEPER__PROTO__GET_BOOKIE_INFO_RESPONSE__INIT;
    int64_t want = req->getbookieinforequest && req->getbookieinforequest->has_requested
                       ? req->getbookieinforequest->requested
                       : 0;
    /* summed over the ledger directories' file systems, each counted once */
    struct statvfs sv;
    struct stat sb;
    dev_t dev[BK_MAX_LEDGER_DIRS];
    unsigned nfs = 0;
    int64_t total = 0, avail = 0;
    int st = WIRE_BK_EOK;
    for (unsigned i = 0; i < s->dirs.n_ledger && st == WIRE_BK_EOK; i++) {
        if (stat(s->dirs.ledger[i], &sb) != 0 || s->statvfs_fn(s->dirs.ledger[i], &sv) != 0) {
            st = WIRE_BK_EIO;
            break;
        }
        bool seen = false;
        for (unsigned k = 0; k < nfs; k++)
            seen |= dev[k] == sb.st_dev;
        if (seen)
            continue;
        dev[nfs++] = sb.st_dev;
        total += (int64_t)sv.f_blocks * (int64_t)sv.f_frsize;
        avail += (int64_t)sv.f_bavail * (int64_t)sv.f_frsize;
    }
    if (st == WIRE_BK_EOK) {
        if (want & BOOKKEEPER__PROTO__GET_BOOKIE_INFO_REQUEST__FLAGS__TOTAL_DISK_CAPACITY) {
            gi.has_totaldiskcapacity = true;
            gi.totaldiskcapacity = total;
        }
        if (want & BOOKKEEPER__PROTO__GET_BOOKIE_INFO_REQUEST__FLAGS__FREE_DISK_SPACE) {
            gi.has_freediskspace = true;
            gi.freediskspace = avail;
        }
    }
    gi.status = wire_bk_status_to_v3(st);
    r.getbookieinforesponse = &gi;
    bk_v3_send(c, op, req->header->txnid, st, &r);
}

static void bk_v3_auth(struct bk_server *s, struct bk_conn *c, Bookkeeper__Proto__Request *req)
{
    (void)s;
    Bookkeeper__Proto__Response r = BOOKKEEPER__PROTO__RESPONSE__INIT;
    Bookkeeper__Proto__AuthMessage am = BOOKKEEPER__PROTO__AUTH_MESSAGE__INIT;
    am.authpluginname = (char *)AUTH_PLUGIN;
    r.authresponse = &am;
    bk_v3_send(c, BOOKKEEPER__PROTO__OPERATION_TYPE__AUTH, req->header->txnid, WIRE_BK_EOK, &r);
}

#define BK_V3_NO_BODY SIZE_MAX

/* The v3 operations we serve: the handler, and where the request keeps the operation's body
 * (a request without it is refused with EBADREQ before the handler runs). Anything else
 * gets EBADREQ. */
static const struct bk_v3_op {
    int op;
    void (*fn)(struct bk_server *s, struct bk_conn *c, Bookkeeper__Proto__Request *req);
    size_t body; /* offsetof the body pointer in the request, or BK_V3_NO_BODY */
} bk_v3_ops[] = {
    {BOOKKEEPER__PROTO__OPERATION_TYPE__ADD_ENTRY, bk_v3_add,
     offsetof(Bookkeeper__Proto__Request, addrequest)},
    {BOOKKEEPER__PROTO__OPERATION_TYPE__READ_ENTRY, bk_v3_read,
     offsetof(Bookkeeper__Proto__Request, readrequest)},
    {BOOKKEEPER__PROTO__OPERATION_TYPE__READ_LAC, bk_v3_read_lac,
     offsetof(Bookkeeper__Proto__Request, readlacrequest)},
    {BOOKKEEPER__PROTO__OPERATION_TYPE__WRITE_LAC, bk_v3_write_lac,
     offsetof(Bookkeeper__Proto__Request, writelacrequest)},
    {BOOKKEEPER__PROTO__OPERATION_TYPE__FORCE_LEDGER, bk_v3_force,
     offsetof(Bookkeeper__Proto__Request, forceledgerrequest)},
    {BOOKKEEPER__PROTO__OPERATION_TYPE__GET_BOOKIE_INFO, bk_v3_bookie_info, BK_V3_NO_BODY},
    {BOOKKEEPER__PROTO__OPERATION_TYPE__AUTH, bk_v3_auth, BK_V3_NO_BODY},
    {BOOKKEEPER__PROTO__OPERATION_TYPE__START_TLS, bk_v3_start_tls,
     offsetof(Bookkeeper__Proto__Request, starttlsrequest)},
};

static void bk_handle_v3(struct bk_server *s, struct bk_conn *c, struct wire_bk_request *rq)
{
    Bookkeeper__Proto__Request *req = rq->v3;
    Bookkeeper__Proto__BKPacketHeader *h = req->header;
    int op = (int)h->operation;
    if (h->version != BOOKKEEPER__PROTO__PROTOCOL_VERSION__VERSION_THREE) {
        bk_v3_error(c, op, h->txnid, WIRE_BK_EBADVERSION);
        return;
    }
    if (op != BOOKKEEPER__PROTO__OPERATION_TYPE__START_TLS && bk_tls_refuses(s, c, "v3 request")) {
        bk_v3_error(c, op, h->txnid, WIRE_BK_EUA);
        return;
    }
    for (size_t i = 0; i < sizeof bk_v3_ops / sizeof bk_v3_ops[0]; i++) {
        const struct bk_v3_op *o = &bk_v3_ops[i];
        if (o->op != op)
            continue;
        if (o->body != BK_V3_NO_BODY && !*(void *const *)((const char *)req + o->body))
            break; /* the operation's body is missing */
        o->fn(s, c, req);
        return;
    }
    bk_v3_error(c, op, h->txnid, WIRE_BK_EBADREQ);
}

/* ---- connection callbacks --------------------------------------------------------------- */

/*
 * A frame above nettyMaxFrameSizeBytes, identified by the codec from its first bytes: answer
 * its request EBADREQ; the caller skips the rest as it arrives, never buffering it.
 */
static void bk_refuse_oversized(struct bk_server *s, struct bk_conn *c,
                                const struct wire_bk_request *rq)
{
    char what[96];
    if (rq->proto == WIRE_BK_PROTO_V2) {
        bk_v2_send(c, rq->v2_hdr, WIRE_BK_EBADREQ, rq->ledger, rq->entry, NULL, 0);
        snprintf(what, sizeof what, "v2 %s of ledger %" PRId64 " entry %" PRId64,
                 rq->op == WIRE_BK_OP_ADD ? "ADD" : "READ", rq->ledger, rq->entry);
    } else {
        bk_v3_error(c, (int)rq->op, rq->txn, WIRE_BK_EBADREQ);
        snprintf(what, sizeof what, "v3 operation %u txnId %" PRIu64, rq->op, rq->txn);
    }
    uint64_t held;
    if (mg_ratelimit_allow(&s->rl_frame, MG_RATELIMIT_INTERVAL_MS, &held))
        MG_WARN(BK_MODULE,
                "conn %" PRIu64 " %s: %s: frame of %zu bytes exceeds nettyMaxFrameSizeBytes=%d: "
                "answered EBADREQ, frame skipped (%" PRIu64 " more since the last such line)",
                c->id, c->peer, what, rq->frame_size, s->max_frame, held);
}

static void bk_conn_read_cb(struct bufferevent *bev, void *arg)
{
    struct bk_conn *c = arg;
    struct bk_server *s = c->srv;
    struct evbuffer *in = bufferevent_get_input(bev);
    if (c->tls == BK_TLS_HANDSHAKING)
        bk_tls_on(s, c); /* decrypted bytes: the handshake is done (the filter may read them
                         before it reports BEV_EVENT_CONNECTED) */
    c->refs++;           /* c must survive until the end of this callback */
    /* libevent read 4 KiB at most: the rest the socket holds in one read (util/bev.h) */
    if (c->tls == BK_TLS_NONE)
        mg_bev_read_more(bev, 256 * 1024);
    while (!c->closing && !c->paused && !c->cache_wait && c->tls != BK_TLS_STARTING) {
        if (c->sends_adds && bk_store_cache_full(&s->store)) {
            /* its next frames wait in order, unread, until the checkpoint in flight is done
             * (bk_conns_cache_resume); other connections and the loop go on */
            c->cache_wait = true;
            s->conns_cache_paused = true;
            bufferevent_disable(bev, EV_READ);
            break;
        }
        if (wire_bk_skip(in, &c->skip)) /* the rest of an oversized frame */
            break;
        struct wire_bk_request rq;
        char err[128];
        int was = c->proto;
        int rc = wire_bk_request_read(in, &c->proto, (size_t)s->max_frame, &rq, err, sizeof err);
        if (c->proto != was)
            MG_DEBUG(BK_MODULE, "conn %" PRIu64 " speaks v%d", c->id, c->proto);
        if (rc < 0) {
            if (rc == -MG_ETOOBIG)
                bk_conn_fail(c, "%s (nettyMaxFrameSizeBytes=%d)", err, s->max_frame);
            else
                bk_conn_fail(c, "%s", err);
            break;
        }
        if (rc == 0)
            break;
        if (rq.oversized) {
            bk_refuse_oversized(s, c, &rq);
            c->skip = rq.skip;
        } else if (rq.proto == WIRE_BK_PROTO_V3) {
            bk_handle_v3(s, c, &rq);
        } else {
            bk_handle_v2(s, c, &rq);
        }
        wire_bk_request_clear(&rq);
        if (c->inflight >= BK_CONN_MAX_INFLIGHT && !c->paused) {
            c->paused = true;
            bufferevent_disable(bev, EV_READ);
        }
    }
    bk_server_submit_pending(s);
    if (c->tls == BK_TLS_STARTING && !c->closing && c->bev)
        bk_tls_start(s, c);
    if (c->closing)
        bk_conn_close(c);
    bk_conn_unref(c);
}

static void bk_conn_event_cb(struct bufferevent *bev, short what, void *arg)
{
    struct bk_conn *c = arg;
    if (c->tls == BK_TLS_HANDSHAKING && (what & BEV_EVENT_CONNECTED)) {
        bk_tls_on(c->srv, c);
        return;
    }
    if (c->tls == BK_TLS_HANDSHAKING &&
        (what & (BEV_EVENT_ERROR | BEV_EVENT_EOF | BEV_EVENT_TIMEOUT))) {
        char why[256];
        tls_bev_error(bev, what, why, sizeof why);
        bk_conn_fail(c, "TLS handshake failed: %s", why);
    } else if (what & BEV_EVENT_ERROR)
        bk_conn_fail(c, "socket error: %s", strerror(errno));
    else if (what & BEV_EVENT_EOF)
        c->closing = true; /* peer closed: not worth an info line */
    if (c->closing)
        bk_conn_close(c);
}

/* A connection the listener kept (util/listen.h: it pauses instead of spinning when
 * descriptors run short). */
static void bk_accept_cb(void *arg, int fd, const struct sockaddr *sa, int socklen)
{
    (void)socklen;
    struct bk_server *s = arg;
    if (!s->ready) { /* still starting (the cookie check waits for the metadata store) */
        evutil_closesocket(fd);
        mg_listener_conn_closed(s->listener);
        return;
    }
    struct bufferevent *bev = bufferevent_socket_new(s->base, fd, BEV_OPT_CLOSE_ON_FREE);
    if (!bev) {
        evutil_closesocket(fd);
        mg_listener_conn_closed(s->listener);
        return;
    }
    int one = 1;
    setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    struct bk_conn *c = mg_calloc(1, sizeof *c);
    c->srv = s;
    c->bev = bev;
    c->id = ++s->next_conn_id;
    c->refs = 1;
    if (sa->sa_family == AF_INET) {
        const struct sockaddr_in *sin = (const struct sockaddr_in *)(const void *)sa;
        char ip[INET_ADDRSTRLEN];
        inet_ntop(AF_INET, &sin->sin_addr, ip, sizeof ip);
        snprintf(c->peer, sizeof c->peer, "%s:%d", ip, ntohs(sin->sin_port));
    }
    c->next = s->conns;
    if (s->conns)
        s->conns->prev = c;
    s->conns = c;
    bufferevent_set_max_single_read(bev, 256 * 1024);
    /* read answers (entries) go out in writes of up to 1 MiB, not 16 KiB (util/bev.h) */
    bufferevent_set_max_single_write(bev, MG_BEV_WRITE_MAX);
    bufferevent_setcb(bev, bk_conn_read_cb, NULL, bk_conn_event_cb, c);
    bufferevent_enable(bev, EV_READ | EV_WRITE);
    MG_DEBUG(BK_MODULE, "conn %" PRIu64 " from %s", c->id, c->peer);
}

/* ---- read-only mode, checkpoints, disk checks ------------------------------------------- */

void bk_server_set_readonly(struct bk_server *s, unsigned reason, bool on, const char *why)
{
    unsigned old = s->readonly;
    s->readonly = on ? (old | reason) : (old & ~reason);
    if (old == 0 && s->readonly != 0)
        MG_WARN(BK_MODULE, "bookie is now READ-ONLY: %s; adds are refused (EREADONLY), reads go on",
                why);
    else if (old != 0 && s->readonly == 0)
        MG_INFO(BK_MODULE, "bookie is writable again: %s", why);
    else if (on && !(old & reason))
        MG_WARN(BK_MODULE, "bookie read-only, also: %s", why);
    if ((old == 0) != (s->readonly == 0))
        bk_reg_update(s);
    /* short of disk space the covered journal files are not kept */
    s->store.journal_keep =
        (s->readonly & (BK_RO_DISK | BK_RO_NOSPACE)) ? 0 : (unsigned)s->journal_max_backups;
    if (on && s->gc && (reason & (BK_RO_DISK | BK_RO_NOSPACE)) &&
        !(old & (BK_RO_DISK | BK_RO_NOSPACE)))
        bk_gc_space_short_entered(s->gc);
}

static int bk_disk_usage_pct(struct bk_server *s, const char *dir, double *pct)
{
    struct statvfs sv;
    if (s->statvfs_fn(dir, &sv) != 0 || sv.f_blocks == 0)
        return -1;
    *pct = 100.0 * (double)(sv.f_blocks - sv.f_bavail) / (double)sv.f_blocks;
    return 0;
}

/* diskUsageWarnThreshold: one WARN line when directory i (BK_MAX_LEDGER_DIRS: the journal's)
 * goes above it, one INFO line when it is back below. */
static void bk_disk_warn(struct bk_server *s, unsigned i, const char *dir, double pct)
{
    unsigned bit = 1u << i;
    if (pct > s->disk_warn_pct && !(s->disk_warned & bit)) {
        s->disk_warned |= bit;
        MG_WARN(BK_MODULE, "disk of %s is %.1f%% full, above diskUsageWarnThreshold=%.2f", dir, pct,
                s->disk_warn_pct / 100.0);
    } else if (pct <= s->disk_warn_pct && (s->disk_warned & bit)) {
        s->disk_warned &= ~bit;
        MG_INFO(BK_MODULE, "disk of %s is %.1f%% full, below diskUsageWarnThreshold=%.2f again",
                dir, pct, s->disk_warn_pct / 100.0);
    }
}

/*
 * BookKeeper's disk thresholds (LedgerDirsMonitor): a ledger directory fuller than
 * diskUsageThreshold takes no new entry logs (the storage thread rolls to another one) until
 * it is below diskUsageLwmThreshold; one line per transition. The bookie is read-only
 * (BK_RO_DISK) when no ledger directory is writable or the journal's disk is above the
 * threshold, and writable again once the journal's disk and some ledger directory are below
 * the low-water mark. A write that ran out of space (BK_RO_NOSPACE) is retried here too: the
 * entry-log data kept in memory is written (a checkpoint) and the bookie is writable again if
 * that worked. may_clear is false for the immediate check the journal asks for when room is
 * short: it only ever turns read-only.
 */
static void bk_check_disk(struct bk_server *s, bool may_clear)
{
    unsigned n = s->store.n_ldirs;
    unsigned full = atomic_load(&s->store.dir_full);
    unsigned failed = atomic_load(&s->store.dir_failed);
    bool journal_full = false, journal_low = true, ledger_low = false;
    char why[600] = "";
    for (unsigned i = 0; i < n; i++) {
        const char *dir = s->dirs.ledger[i];
        unsigned bit = 1u << i;
        double pct;
        if (bk_disk_usage_pct(s, dir, &pct) != 0)
            continue; /* no evidence either way: its state stays */
        bk_disk_warn(s, i, dir, pct);
        if (pct > s->disk_threshold_pct && !(full & bit)) {
            full |= bit;
            MG_WARN(BK_MODULE,
                    "ledger directory %s is full: %.1f%% used, above diskUsageThreshold=%.2f; "
                    "no new entry logs go there",
                    dir, pct, s->disk_threshold_pct / 100.0);
            snprintf(why, sizeof why,
                     "no space: every ledger directory is full or failed (%s: %.1f%%, "
                     "diskUsageThreshold=%.2f)",
                     dir, pct, s->disk_threshold_pct / 100.0);
        } else if (may_clear && (full & bit) && pct < s->disk_lwm_pct) {
            full &= ~bit;
            MG_INFO(BK_MODULE,
                    "ledger directory %s is writable again: %.1f%% used, below "
                    "diskUsageLwmThreshold=%.2f",
                    dir, pct, s->disk_lwm_pct / 100.0);
        }
        if (pct < s->disk_lwm_pct && !(failed & bit))
            ledger_low = true;
    }
    atomic_store(&s->store.dir_full, full);
    double pct;
    if (bk_disk_usage_pct(s, s->journal_dir, &pct) != 0) {
        journal_low = false; /* no evidence that space came back */
    } else {
        bk_disk_warn(s, BK_MAX_LEDGER_DIRS, s->journal_dir, pct);
        journal_full = pct > s->disk_threshold_pct;
        journal_low = pct < s->disk_lwm_pct;
        if (journal_full)
            snprintf(why, sizeof why,
                     "no space: journal disk of %s is %.1f%% full (diskUsageThreshold=%.2f)",
                     s->journal_dir, pct, s->disk_threshold_pct / 100.0);
    }
    bool ledger_ok = bk_store_any_dir_writable(&s->store);
    if (!ledger_ok && !why[0])
        snprintf(why, sizeof why, "no space: every ledger directory is full or failed");
    if ((journal_full || !ledger_ok) && !(s->readonly & BK_RO_DISK))
        bk_server_set_readonly(s, BK_RO_DISK, true, why);
    if (!may_clear || !journal_low || !ledger_low || !ledger_ok ||
        !(s->readonly & (BK_RO_DISK | BK_RO_NOSPACE)))
        return;
    if ((s->readonly & BK_RO_NOSPACE) && s->store.nospace && bk_server_checkpoint(s) < 0)
        return; /* still cannot write what is pending (logged, rate-limited) */
    snprintf(why, sizeof why, "disk usage below diskUsageLwmThreshold=%.2f",
             s->disk_lwm_pct / 100.0);
    bk_server_set_readonly(s, BK_RO_DISK | BK_RO_NOSPACE, false, why);
}

void bk_server_check_disk(struct bk_server *s)
{
    s->disk_checks++;
    bk_check_disk(s, true);
}

/* A checkpoint the storage thread finished (rc): on success the journal files it covers go;
 * a failure turns the bookie read-only as the write that failed says. */
void bk_server_flushed(struct bk_server *s, int rc)
{
    s->flush_rc = rc;
    if (rc == 0)
        s->checkpoints++; /* (the storage thread trimmed the journal behind the new lastMark) */
    else if (s->store.io_failed)
        bk_server_set_readonly(s, BK_RO_IOERR, true, "entry log write or sync failed");
    else if (rc == -MG_EREADONLY)
        bk_server_set_readonly(s, BK_RO_NOSPACE, true, "checkpoint: no space left on device");
    bk_server_apply(s); /* the adds that waited for this checkpoint */
}

void bk_server_store_done(struct bk_server *s)
{
    struct bk_sop *op = bk_store_take_done(&s->store);
    while (op) {
        struct bk_sop *next = op->next;
        op->done(s, op);
        op = next;
    }
}

/* Wait for the checkpoint in flight (running the completions of what was queued before it);
 * its result, 0 if there was none. */
static int bk_server_flush_wait(struct bk_server *s)
{
    if (!s->store.flush_busy)
        return 0;
    while (s->store.flush_busy) {
        bk_store_wait_done(&s->store);
        bk_server_store_done(s);
    }
    return s->flush_rc;
}

int bk_server_checkpoint(struct bk_server *s)
{
    /* the one in flight, then the one that failed last (retried as it was), then the
     * active half: afterwards everything applied so far is durable and the cache is empty */
    int rc = bk_server_flush_wait(s);
    if (rc < 0 && !s->store.flush)
        return rc;
    for (int i = 0; i < 2; i++) {
        bool retry = s->store.flush != NULL;
        bk_store_flush_begin(&s->store, true);
        rc = bk_server_flush_wait(s);
        if (rc < 0 || !retry)
            return rc;
    }
    return rc;
}

void bk_server_checkpoint_start(struct bk_server *s)
{
    if (!s->store.io_failed)
        bk_store_flush_begin(&s->store, false);
}

static void bk_checkpoint_cb(evutil_socket_t fd, short what, void *arg)
{
    (void)fd;
    (void)what;
    bk_server_checkpoint_start(arg);
}

static void bk_disk_cb(evutil_socket_t fd, short what, void *arg)
{
    (void)fd;
    (void)what;
    bk_server_check_disk(arg);
}

/* ---- lifecycle -------------------------------------------------------------------------- */

/* The bookie's listener keeps half the usual descriptor reserve: in a standalone it shares
 * the process with the broker, whose listeners stop first, so the ledger client can still
 * reach its in-process bookie when clients have taken what the broker allows them. */
static struct mg_listener *bk_listen_on(struct bk_server *s, const char *addr, int port)
{
    struct mg_listener_options lo = {
        .name = "bookie",
        .reserve_fds = mg_fds_default_reserve(mg_fds_limit()) / 2,
    };
    struct mg_listener *l = mg_listener_new(s->base, addr, port, &lo, bk_accept_cb, s);
    if (l)
        s->port = mg_listener_port(l);
    return l;
}

/* The TLS context of o's keys (none without tlsProviderFactoryClass) and whether TLS is
 * required. Returns 0, or -MG_EINVAL (logged) for keys magnetar cannot honour. */
static int bk_tls_init(struct bk_server *s, const struct bk_options *o)
{
    const char *auth = o->auth_provider_factory ? o->auth_provider_factory : "";
    if (auth[0] && strcmp(auth, BK_TLS_AUTH_FACTORY) != 0) {
        MG_ERROR(BK_MODULE, "bookieAuthProviderFactoryClass=%s is not supported (only %s)", auth,
                 BK_TLS_AUTH_FACTORY);
        return -MG_EINVAL;
    }
    bool on = o->tls_provider_factory && o->tls_provider_factory[0];
    if (auth[0] && !on) {
        MG_ERROR(BK_MODULE,
                 "bookieAuthProviderFactoryClass=%s requires TLS: set "
                 "tlsProviderFactoryClass and the tls* keys",
                 auth);
        return -MG_EINVAL;
    }
    if (!on)
        return 0;
    struct tls_link_conf lc = {
        .pem = {o->tls_cert, o->tls_key, o->tls_trust, "tlsCertificatePath", "tlsKeyStore",
                "tlsTrustStore"},
        .key_type = o->tls_key_type,
        .trust_type = o->tls_trust_type,
        .key_type_key = "tlsKeyStoreType",
        .trust_type_key = "tlsTrustStoreType",
        .server = true,
        .client_auth = o->tls_client_auth,
    };
    char err[512];
    const char *roles = o->authorized_roles ? o->authorized_roles : "";
    if (roles[0] && !o->tls_client_auth) {
        MG_ERROR(BK_MODULE,
                 "authorizedRoles=%s needs tlsClientAuthentication=true (the roles "
                 "are read from the client certificate)",
                 roles);
        return -MG_EINVAL;
    }
    s->tls = tls_link_new(&lc, o->tls_refresh_s, "bookie TLS", err, sizeof err);
    if (!s->tls) {
        MG_ERROR(BK_MODULE, "bookie TLS: %s", err);
        return -MG_EINVAL;
    }
    s->tls_required = auth[0] != '\0';
    if (s->tls_required && roles[0])
        s->authorized_roles = mg_strdup(roles); /* BookKeeper reads it with its factory only */
    MG_INFO(BK_MODULE, "bookie TLS: START_TLS answered (%s client certificate)%s",
            o->tls_client_auth ? "a verified" : "no", s->tls_required ? "; TLS required" : "");
    return 0;
}

static struct timeval bk_ms_tv(int ms)
{
    struct timeval tv = {ms / 1000, (ms % 1000) * 1000};
    return tv;
}

int bk_server_new(struct event_base *base, const struct bk_options *o, struct bk_server **out)
{
    *out = NULL;
    struct bk_server *s = mg_calloc(1, sizeof *s);
    s->base = base;
    s->ledger_dir = mg_strdup(o->ledger_dir);
    s->max_frame = o->max_frame_size > 0 ? o->max_frame_size : BK_DEFAULT_MAX_FRAME;
    s->disk_threshold_pct = o->disk_usage_threshold_pct > 0 ? o->disk_usage_threshold_pct : 95.0;
    s->disk_lwm_pct = o->disk_usage_lwm_pct > 0 && o->disk_usage_lwm_pct < s->disk_threshold_pct
                          ? o->disk_usage_lwm_pct
                          : s->disk_threshold_pct;
    s->disk_warn_pct = o->disk_usage_warn_pct > 0 && o->disk_usage_warn_pct < s->disk_threshold_pct
                           ? o->disk_usage_warn_pct
                           : s->disk_threshold_pct;
    s->statvfs_fn = statvfs;
    s->store.log_fd = -1;
    s->store.notify_fd = -1;
    s->journal.fd = -1;
    s->journal.notify_fd = -1;
    for (unsigned i = 0; i <= BK_MAX_LEDGER_DIRS; i++)
        s->lock_fd[i] = -1;
    int rc = bk_dirs_init(&s->dirs, o->journal_dir, o->ledger_dir);
    if (rc == 0)
        rc = bk_tls_init(s, o);
    /* a second bookie on these directories would replay and append to this one's journal */
    if (rc == 0)
        rc = bk_dirs_lock(&s->dirs, s->lock_fd);
    if (rc < 0) { /* nothing else is open yet */
        tls_link_free(s->tls);
        mg_free(s->authorized_roles);
        bk_dirs_fini(&s->dirs);
        mg_free(s->ledger_dir);
        mg_free(s);
        return rc;
    }
    s->journal_dir = s->dirs.journal;
    if (!o->journal_sync)
        MG_WARN(BK_MODULE, "journalSyncData=false: adds are acknowledged WITHOUT fsync; a "
                           "power loss loses acknowledged data (benchmarks and tests only)");
    /* Listen first (accepting only once the storage is ready): with bookiePort 0 the bookie
     * id names the port, which the cookie check needs; connections accepted meanwhile are
     * closed at once (s->ready). A bookie that has cookies takes
     * their port again, or its id would change at every start. */
    int port = o->port;
    bool auto_id = !(o->bookie_id && o->bookie_id[0]);
    if (port == 0 && auto_id) {
        port = bk_cookie_port_hint(&s->dirs);
        if (port > 0)
            MG_INFO(BK_MODULE,
                    "bookiePort 0: taking port %d again, the port of this bookie's "
                    "id in its cookies",
                    port);
    }
    const char *bind = o->bind_address ? o->bind_address : "0.0.0.0";
    s->listener = bk_listen_on(s, bind, port);
    if (!s->listener) {
        bk_server_free_unclean(s);
        return -MG_EIO;
    }
    if (auto_id)
        s->bookie_id = mg_asprintf(
            "%s:%d", o->advertised_address ? o->advertised_address : "localhost", s->port);
    else
        s->bookie_id = mg_strdup(o->bookie_id);
    rc = bk_cookie_check(base, o->meta, s->bookie_id, &s->dirs, s->ledger_dir);
    if (rc == 0) {
        s->store.cache_max =
            (size_t)(o->write_cache_max > 0 ? o->write_cache_max : BK_WRITE_CACHE_MAX) / 2;
        s->store.wb_bytes = o->flush_entrylog_bytes;
        rc = bk_store_open(&s->store, s->dirs.ledger, s->dirs.n_ledger, o->entry_log_max_size);
    }
    if (rc == 0) {
        s->store.journal = &s->journal;
        s->journal_max_backups = o->journal_max_backups > 0 ? o->journal_max_backups : 0;
        s->store.journal_keep = 0; /* the start's checkpoint keeps none (README "Read-only") */
        rc = bk_store_thread_start(&s->store, base, s);
    }
    if (rc == 0) {
        struct bk_options oj = *o;
        oj.journal_dir = s->dirs.journal; /* trimmed, and only one */
        rc = bk_journal_init(&s->journal, s, &oj);
    }
    uint64_t mf = 0, mo = 0;
    if (rc == 0)
        rc = bk_store_read_mark(&s->store, &mf, &mo);
    if (rc == 0) {
        s->store.mark_file = mf;
        s->store.mark_off = mo;
        rc = bk_journal_replay(&s->journal, &s->store, mf, mo, &s->replayed);
    }
    /* A brand-new bookie: no journal file (bk_journal_init found none) and no lastMark, so
     * nothing was replayed and there is no file to delete. (A lastMark without a journal
     * file needs the checkpoint: it would name a file after the new one.) */
    bool brand_new = s->journal.file_id == 0 && mf == 0;
    if (rc == 0)
        rc = bk_journal_start(&s->journal, base);
    if (rc == 0 && brand_new) {
        /* No start checkpoint (it was 3 syncs: entry log, lastMark, its directory): the
         * write cache is empty and, without lastMark, the next start replays from the
         * first journal file, this run's, so whatever is acknowledged before the first
         * periodic checkpoint is covered by the journal alone (docs/design.md §10). */
        s->store.journal_keep = (unsigned)s->journal_max_backups;
    } else if (rc == 0) {
        /* Write what was replayed to the entry logs and the index and move lastMark to the
         * new journal file: every older file, the previous run's last one (with its
         * preallocated tail) included, goes now instead of lingering until the new file
         * fills up, which on a nearly full disk made a restarted bookie read-only again. */
        s->store.mark_file = s->journal.file_id;
        s->store.mark_off = BK_JOURNAL_HEADER_SIZE;
        if (bk_server_checkpoint(s) < 0)
            MG_WARN(BK_MODULE,
                    "start: checkpoint failed; the journal keeps the %" PRIu64
                    " replayed records, the checkpoint is retried every flushInterval",
                    s->replayed);
        s->store.journal_keep = (unsigned)s->journal_max_backups; /* journalMaxBackups from now */
    }
    if (rc < 0) {
        bk_server_free_unclean(s);
        return rc;
    }
    s->checkpoint_ev = event_new(base, -1, EV_PERSIST, bk_checkpoint_cb, s);
    struct timeval tv = bk_ms_tv(o->flush_interval_ms > 0 ? o->flush_interval_ms : 10000);
    event_add(s->checkpoint_ev, &tv);
    s->disk_ev = event_new(base, -1, EV_PERSIST, bk_disk_cb, s);
    tv = bk_ms_tv(o->disk_check_interval_ms > 0 ? o->disk_check_interval_ms : 10000);
    event_add(s->disk_ev, &tv);
    struct bk_gc_conf gcc = {
        .wait_ms = o->gc_wait_ms,
        .minor_threshold = o->minor_compaction_threshold,
        .minor_interval_s = o->minor_compaction_interval_s,
        .major_threshold = o->major_compaction_threshold,
        .major_interval_s = o->major_compaction_interval_s,
        .rate_entries = o->compaction_rate_by_entries > 0 ? o->compaction_rate_by_entries : 1000,
        .rate_bytes = o->compaction_rate_by_bytes > 0 ? o->compaction_rate_by_bytes : 1000000,
        .throttle_by_bytes = o->is_throttle_by_bytes,
        .force_gc_when_no_space = o->force_gc_when_no_space,
    };
    s->gc = bk_gc_new(s, o->meta, &gcc);
    s->ready = true;
    bk_server_check_disk(s);
    bk_reg_init(s, o->meta, s->bookie_id);
    bk_reg_update(s);
    MG_INFO(BK_MODULE, "bookie %s listening on %s:%d (journal %s, ledgers %s)", s->bookie_id, bind,
            s->port, s->journal_dir, s->ledger_dir);
    *out = s;
    return 0;
}

int bk_server_port(const struct bk_server *s)
{
    return s->port;
}

const char *bk_server_id(const struct bk_server *s)
{
    return s->bookie_id;
}

bool bk_server_readonly(const struct bk_server *s)
{
    return s->readonly != 0;
}

void bk_server_stats(const struct bk_server *s, struct bk_stats *out)
{
    struct bk_journal *j = (struct bk_journal *)&s->journal;
    out->records = atomic_load(&j->st_records);
    out->adds = atomic_load(&j->st_adds);
    out->groups = atomic_load(&j->st_groups);
    out->fsyncs = atomic_load(&j->st_fsyncs);
    out->bytes = atomic_load(&j->st_bytes);
    out->checkpoints = s->checkpoints;
    out->replayed = s->replayed;
    out->disk_checks = s->disk_checks;
    out->prealloc_waits = atomic_load(&j->st_prealloc_waits);
    out->journal_reused = atomic_load(&j->st_reused);
}

void bk_server_inject_journal_error(struct bk_server *s, int err)
{
    atomic_store(&s->journal.inject_errno, err);
}

void bk_server_reg_idle(struct bk_server *s)
{
    if (s->exit_when_unregistered)
        event_base_loopexit(s->base, NULL);
}

void bk_server_shutdown(struct bk_server *s)
{
    if (s->shutting_down)
        return;
    s->shutting_down = true;
    mg_listener_free(s->listener);
    s->listener = NULL;
    MG_INFO(BK_MODULE, "bookie %s shutting down: no new connections", s->bookie_id);
    s->reg.stopped = true;
    s->exit_when_unregistered = true;
    bk_reg_update(s);
    if (bk_reg_idle(s))
        bk_server_reg_idle(s);
}

void bk_server_free(struct bk_server *s)
{
    if (!s)
        return;
    mg_listener_free(s->listener);
    s->listener = NULL;
    bk_server_submit_pending(s);
    bk_journal_stop(&s->journal); /* writes and syncs everything queued */
    s->apply_all = true;          /* nothing is served any more: no record waits */
    bk_server_journal_done(s);    /* apply it and answer */
    MG_ASSERT(!s->wait_head);
    if (!s->unclean && s->store.env)
        bk_server_checkpoint(s);
    bk_store_thread_stop(&s->store, s->unclean);
    while (s->store.d_head) /* what completed or was cancelled: gc's operations among them */
        bk_server_store_done(s);
    bk_local_server_gone(s); /* in-process clients: later requests fail as refused */
    while (s->conns) {
        struct bk_conn *c = s->conns;
        /* best effort: hand the last replies to the kernel before closing (through the TLS
         * filter first, which encrypts them into its socket's output) */
        struct bufferevent *sock = bufferevent_get_underlying(c->bev);
        if (sock)
            bufferevent_flush(c->bev, EV_WRITE, BEV_FLUSH);
        else
            sock = c->bev;
        evbuffer_write(bufferevent_get_output(sock), bufferevent_getfd(sock));
        bk_conn_close(c);
    }
    bk_reg_fini(s);
    bk_gc_free(s->gc);
    s->gc = NULL;
    mg_event_free(s->checkpoint_ev);
    mg_event_free(s->disk_ev);
    bk_journal_fini(&s->journal);
    bk_store_close(&s->store, s->unclean);
    /* last: the directories are ours until everything is closed */
    bk_dirs_unlock(&s->dirs, s->lock_fd);
    tls_link_free(s->tls);
    mg_free(s->authorized_roles);
    mg_free(s->bookie_id);
    mg_free(s->ledger_dir);
    bk_dirs_fini(&s->dirs);
    mg_free(s);
}

void bk_server_free_unclean(struct bk_server *s)
{
    if (!s)
        return;
    s->unclean = true;
    bk_server_free(s);
}

void bk_server_session_expired(struct bk_server *s)
{
    bk_reg_session_expired(s);
}

void bk_options_from_cfg(struct bk_options *o, const struct cfg *cfg, const char *ledger_dir)
{
    bk_options_default(o);
    o->bind_address = cfg->bind_address;
    o->port = cfg->bookie_port;
    o->advertised_address = cfg->advertised_address;
    o->bookie_id = strcmp(cfg->bookie_id, "auto") == 0 ? NULL : cfg->bookie_id;
    /* BookKeeper's plural key wins when set (one directory is supported) */
    o->journal_dir = cfg->journal_directories && cfg->journal_directories[0]
                         ? cfg->journal_directories
                         : cfg->journal_directory;
    o->ledger_dir = ledger_dir;
    o->max_group_wait_ms = cfg->journal_max_group_wait_ms;
    o->buffered_writes_threshold = cfg->journal_buffered_writes_threshold;
    o->buffered_entries_threshold = cfg->journal_buffered_entries_threshold;
    o->journal_max_size = (int64_t)cfg->journal_max_size_mb << 20;
    o->journal_max_backups = cfg->journal_max_backups;
    o->journal_prealloc = (int64_t)cfg->journal_prealloc_size_mb << 20;
    o->journal_reuse = cfg->journal_reuse_files;
    o->journal_sync = cfg->journal_sync_data;
    o->flush_interval_ms = cfg->flush_interval_ms;
    o->write_cache_max = (int64_t)cfg->db_storage_write_cache_max_size_mb << 20;
    o->disk_usage_threshold_pct = cfg->disk_usage_threshold * 100.0;
    o->disk_usage_lwm_pct = cfg->disk_usage_lwm_threshold * 100.0;
    o->disk_usage_warn_pct = cfg->disk_usage_warn_threshold * 100.0;
    o->disk_check_interval_ms = cfg->disk_check_interval_ms;
    o->max_frame_size = cfg->netty_max_frame_size_bytes;
    o->entry_log_max_size = cfg->log_size_limit;
    o->flush_entrylog_bytes = cfg->flush_entrylog_bytes;
    o->gc_wait_ms = cfg->gc_wait_time_ms;
    o->minor_compaction_threshold = cfg->minor_compaction_threshold;
    o->minor_compaction_interval_s = cfg->minor_compaction_interval_s;
    o->major_compaction_threshold = cfg->major_compaction_threshold;
    o->major_compaction_interval_s = cfg->major_compaction_interval_s;
    o->compaction_rate_by_entries = cfg->compaction_rate_by_entries;
    o->compaction_rate_by_bytes = cfg->compaction_rate_by_bytes;
    o->is_throttle_by_bytes = cfg->is_throttle_by_bytes;
    o->force_gc_when_no_space = cfg->is_force_gc_allow_when_no_space;
    o->tls_provider_factory = cfg->tls_provider_factory_class;
    o->tls_cert = cfg->tls_certificate_path;
    o->tls_key = cfg->tls_key_store;
    o->tls_key_type = cfg->tls_key_store_type;
    o->tls_trust = cfg->tls_trust_store;
    o->tls_trust_type = cfg->tls_trust_store_type;
    o->tls_client_auth = cfg->tls_client_authentication;
    o->auth_provider_factory = cfg->bookie_auth_provider_factory_class;
    o->authorized_roles = cfg->authorized_roles;
    o->tls_refresh_s = cfg->tls_cert_files_refresh_s;
}
