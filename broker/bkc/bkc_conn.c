/*
 * bkc_conn.c - one connection per bookie, BookKeeper v2 framing (the default, like Pulsar's
 * bookkeeperUseV2WireProtocol) or v3 framing when cfg.use_v3 (docs/wire-bookkeeper.md §2-§3).
 *
 * Happy path: bkc_bookie_add/read append a frame to the bufferevent's output (connecting
 * first if needed; libevent flushes the output once connected) and record a struct bkc_op
 * in the bookie's send-ordered list and in a match map.
 *   v2: `[u32 len][u32 hdr]...`; v2 carries no request id, so the map is keyed by (ledger,
 *       entry, op) and each response goes to the oldest outstanding op with its key (FIFO).
 *   v3: `[u32 len][protobuf Request]` with BKPacketHeader{VERSION_THREE, op, txnId}; txnId is
 *       a per-bookie counter, the map is keyed by it and responses may come in any order.
 *       Response StatusCodes are mapped to the v2 rc codes (EOK, ENOLEDGER, ...), so the
 *       layers above see one set of codes.
 * ADD payloads are referenced into the output, never copied (unless the caller's buffer
 * already holds references, which libevent cannot reference again). For v3 the Request is
 * encoded up to AddRequest.body by hand (sizes computed ahead), so the body bytes follow as
 * the same entry header + reference as in v2. v3 read bodies are unpacked by protobuf-c (the
 * frame is pulled up and the body copied once by the unpacker) and handed up as an evbuffer
 * referencing the unpacked message, freed with its last reference.
 *
 * Failure modes: a connection error, EOF, an unparsable or oversized frame (v3: undecodable
 * Response, version other than VERSION_THREE, unexpected operation, or an operation that
 * does not match the request with that txnId) drop the connection and fail every op sent on
 * it with -MG_EIO (the connection generation tells those ops from ones sent afterwards on a
 * new connection). An op past its deadline fails with -MG_ETIMEDOUT (the client's tick
 * checks). Responses without an op are dropped. Connections are re-established on demand by
 * the next send. Op callbacks never run inside bkc_bookie_add/read; a failure to even start
 * connecting is reported from an event.
 */
#include "bkc/bkc_int.h"
#include "util/alloc.h"
#include "util/err.h"
#include "util/log.h"
#include "util/loop.h"

#include "BookkeeperProtocol.pb-c.h"

#include <event2/buffer.h>
#include <event2/bufferevent.h>
#include <event2/event.h>
#include <event2/util.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>

#define MOD "bkc"

const char *bkc_rc_str(int rc)
{
    switch (rc) {
    case BKC_RC_EOK:
        return "EOK";
    case BKC_RC_ENOLEDGER:
        return "ENOLEDGER";
    case BKC_RC_ENOENTRY:
        return "ENOENTRY";
    case BKC_RC_EBADREQ:
        return "EBADREQ";
    case BKC_RC_EIO:
        return "EIO";
    case BKC_RC_EUA:
        return "EUA";
    case BKC_RC_EBADVERSION:
        return "EBADVERSION";
    case BKC_RC_EFENCED:
        return "EFENCED";
    case BKC_RC_EREADONLY:
        return "EREADONLY";
    case BKC_RC_ETOOMANYREQUESTS:
        return "ETOOMANYREQUESTS";
    case BKC_RC_EUNKNOWNLEDGERSTATE:
        return "EUNKNOWNLEDGERSTATE";
    default:
        return rc < 0 ? mg_errname(rc) : "unknown rc";
    }
}

static void put_be32(uint8_t *p, uint32_t v)
{
    p[0] = (uint8_t)(v >> 24);
    p[1] = (uint8_t)(v >> 16);
    p[2] = (uint8_t)(v >> 8);
    p[3] = (uint8_t)v;
}

static void put_be64(uint8_t *p, uint64_t v)
{
    put_be32(p, (uint32_t)(v >> 32));
    put_be32(p + 4, (uint32_t)v);
}

static uint32_t get_be32(const uint8_t *p)
{
    return ((uint32_t)p[0] << 24) | ((uint32_t)p[1] << 16) | ((uint32_t)p[2] << 8) | p[3];
}

static uint64_t get_be64(const uint8_t *p)
{
    return ((uint64_t)get_be32(p) << 32) | get_be32(p + 4);
}

/* The match key: v2 (ledger, entry, op), 17 bytes; v3 the txnId, 8 bytes. */
static size_t v2_key(uint8_t key[17], int64_t ledger, int64_t entry, uint8_t opcode)
{
    put_be64(key, (uint64_t)ledger);
    put_be64(key + 8, (uint64_t)entry);
    key[16] = opcode;
    return 17;
}

static size_t v3_key(uint8_t key[17], uint64_t txn)
{
    put_be64(key, txn);
    return 8;
}

static size_t op_key(uint8_t key[17], const struct bkc_op *op)
{
    if (op->bk->v3)
        return v3_key(key, op->txn);
    return v2_key(key, op->ledger, op->entry, op->opcode);
}

/* ---- lifecycle -------------------------------------------------------------------------- */

static void bookie_fail_ev(evutil_socket_t fd, short what, void *arg)
{
    (void)fd;
    (void)what;
    struct bkc_bookie *bk = arg;
    bkc_bookie_fail(bk, -MG_EIO, "cannot connect");
}

struct bkc_bookie *bkc_bookie_get(struct bkc_client *c, const char *id)
{
    struct bkc_bookie *bk = mg_map_get_str(&c->bookies, id);
    if (bk)
        return bk;
    bk = mg_calloc(1, sizeof(*bk));
    bk->c = c;
    bk->id = mg_strdup(id);
    const char *colon = strrchr(id, ':');
    if (colon) {
        bk->host = mg_strndup(id, (size_t)(colon - id));
        bk->port = atoi(colon + 1);
    } else {
        bk->host = mg_strdup(id);
        bk->port = 3181;
    }
    /* "[::1]:3181" */
    if (bk->host[0] == '[' && bk->host[strlen(bk->host) - 1] == ']') {
        char *h = mg_strndup(bk->host + 1, strlen(bk->host) - 2);
        mg_free(bk->host);
        bk->host = h;
    }
    bk->v3 = c->cfg.use_v3;
    bk->next_txn = 1;
    mg_map_init(&bk->match);
    TAILQ_INIT(&bk->ops);
    bk->fail_ev = event_new(c->base, -1, 0, bookie_fail_ev, bk);
    mg_map_put_str(&c->bookies, id, bk);
    TAILQ_INSERT_TAIL(&c->bookie_list, bk, link);
    return bk;
}

static void op_unlink(struct bkc_op *op)
{
    struct bkc_bookie *bk = op->bk;
    uint8_t key[17];
    size_t kl = op_key(key, op);
    struct bkc_op *head = mg_map_get(&bk->match, key, kl);
    if (head == op) {
        if (op->next_same)
            mg_map_put(&bk->match, key, kl, op->next_same);
        else
            mg_map_del(&bk->match, key, kl);
    } else {
        for (struct bkc_op *p = head; p; p = p->next_same) {
            if (p->next_same == op) {
                p->next_same = op->next_same;
                break;
            }
        }
    }
    op->next_same = NULL;
    TAILQ_REMOVE(&bk->ops, op, link);
    bk->n_ops--;
}

void bkc_op_cancel(struct bkc_op *op)
{
    if (!op)
        return;
    op_unlink(op);
    mg_free(op);
}

static void drop_bev(struct bkc_bookie *bk)
{
    if (bk->bev) {
        /* Safe inside the bufferevent's own callbacks: libevent holds a reference while a
         * callback runs and frees the bufferevent when it returns. */
        bufferevent_free(bk->bev);
        bk->bev = NULL;
    }
    bk->state = BKC_BK_IDLE;
    bk->skip = 0;
}

static void op_record(struct bkc_op *op, int rc);

void bkc_bookie_fail(struct bkc_bookie *bk, int err, const char *why)
{
    uint64_t gen = bk->gen++;
    if (bk->n_ops > 0 || bk->state != BKC_BK_IDLE)
        MG_WARN(MOD, "bookie %s: %s; failing %d request(s)", bk->id, why, bk->n_ops);
    drop_bev(bk);
    /* Ops sent from the callbacks below go out on a new connection (newer generation) and
     * sit after the failed ones in the send-ordered list. */
    struct bkc_op *op;
    while ((op = TAILQ_FIRST(&bk->ops)) && op->gen <= gen) {
        op_unlink(op);
        op_record(op, err);
        op->cb(op, err, NULL);
        mg_free(op);
    }
}

void bkc_bookie_free(struct bkc_bookie *bk)
{
    if (!bk)
        return;
    struct bkc_op *op;
    while ((op = TAILQ_FIRST(&bk->ops)))
        bkc_op_cancel(op);
    drop_bev(bk);
    if (bk->fail_ev)
        event_free(bk->fail_ev);
    mg_map_fini(&bk->match);
    mg_free(bk->id);
    mg_free(bk->host);
    mg_free(bk);
}

/* ---- reading responses ------------------------------------------------------------------- */

static void conn_read_v3(struct bkc_bookie *bk, struct evbuffer *in);

/* Drop what is left of an oversized response. Returns true while bytes of it are missing. */
static bool skip_oversized(struct bkc_bookie *bk, struct evbuffer *in)
{
    if (bk->skip == 0)
        return false;
    size_t n = evbuffer_get_length(in);
    if (n > bk->skip)
        n = bk->skip;
    evbuffer_drain(in, n);
    bk->skip -= n;
    return bk->skip > 0;
}

/* A response over the frame limit: its request (if still outstanding) fails with
 * -MG_ETOOBIG; the connection and every other request on it go on. */
static void fail_oversized(struct bkc_bookie *bk, struct bkc_op *op, size_t total)
{
    if (!op) {
        MG_DEBUG(MOD, "bookie %s: unmatched response of %zu bytes over the frame limit skipped",
                 bk->id, total);
        return;
    }
    MG_WARN(MOD,
            "bookie %s: response of %zu bytes to op %d L%lld E%lld is over the frame limit of "
            "%zu (nettyMaxFrameSizeBytes): skipped, that request fails",
            bk->id, total, op->opcode, (long long)op->ledger, (long long)op->entry,
            bk->c->cfg.max_frame_size);
    op_unlink(op);
    op_record(op, -MG_ETOOBIG);
    op->cb(op, -MG_ETOOBIG, NULL);
    mg_free(op);
}

static void conn_read_cb(struct bufferevent *bev, void *arg)
{
    struct bkc_bookie *bk = arg;
    struct evbuffer *in = bufferevent_get_input(bev);
    if (bk->v3) {
        conn_read_v3(bk, in);
        return;
    }
    uint64_t gen = bk->gen;
    while (bk->gen == gen) {
        if (skip_oversized(bk, in))
            return;
        uint8_t h[28];
        if (evbuffer_copyout(in, h, 4) < 4)
            return;
        uint32_t flen = get_be32(h);
        if (flen < 24) {
            bkc_bookie_fail(bk, -MG_EIO, "bad response frame length");
            return;
        }
        bool oversized = 4 + (size_t)flen > bk->c->cfg.max_frame_size;
        if (evbuffer_get_length(in) < (oversized ? sizeof(h) : 4 + (size_t)flen))
            return;
        evbuffer_remove(in, h, sizeof(h));
        uint32_t hdr = get_be32(h + 4);
        int rc = (int)get_be32(h + 8);
        int64_t ledger = (int64_t)get_be64(h + 12);
        int64_t entry = (int64_t)get_be64(h + 20);
        uint8_t opcode = (uint8_t)((hdr >> 16) & 0xff);
        if (opcode != BKC_OP_ADD && opcode != BKC_OP_READ) {
            bkc_bookie_fail(bk, -MG_EIO, "unexpected response opcode");
            return;
        }
        uint8_t key[17];
        size_t kl = v2_key(key, ledger, entry, opcode);
        struct bkc_op *op = mg_map_get(&bk->match, key, kl);
        if (oversized) {
            /* Fail its request alone and skip the body as it arrives. */
            bk->skip = flen - 24;
            fail_oversized(bk, op, 4 + (size_t)flen);
            continue;
        }
        struct evbuffer *body = NULL;
        if (flen > 24) {
            body = evbuffer_new();
            evbuffer_remove_buffer(in, body, flen - 24);
        }
        if (!op) {
            MG_DEBUG(MOD, "bookie %s: unmatched response op %d L%lld E%lld rc %d", bk->id, opcode,
                     (long long)ledger, (long long)entry, rc);
        } else {
            op_unlink(op);
            op_record(op, rc < 0 ? BKC_RC_EIO : rc);
            op->cb(op, rc < 0 ? BKC_RC_EIO : rc, body ? &body : NULL);
            mg_free(op);
        }
        if (body)
            evbuffer_free(body);
    }
}

static void conn_event_cb(struct bufferevent *bev, short what, void *arg)
{
    (void)bev;
    struct bkc_bookie *bk = arg;
    if (what & BEV_EVENT_CONNECTED) {
        bk->state = BKC_BK_CONNECTED;
        evutil_socket_t fd = bufferevent_getfd(bk->bev);
        int one = 1;
        setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
        MG_DEBUG(MOD, "bookie %s: connected", bk->id);
        return;
    }
    if (what & (BEV_EVENT_ERROR | BEV_EVENT_EOF)) {
        int e = EVUTIL_SOCKET_ERROR();
        char why[160];
        snprintf(why, sizeof(why), "%s (%s)",
                 (what & BEV_EVENT_EOF)           ? "connection closed by bookie"
                 : bk->state == BKC_BK_CONNECTING ? "connect failed"
                                                  : "connection error",
                 (what & BEV_EVENT_EOF) ? "eof" : evutil_socket_error_to_string(e));
        bkc_bookie_fail(bk, -MG_EIO, why);
    }
}

static void ensure_conn(struct bkc_bookie *bk)
{
    if (bk->bev)
        return;
    bk->bev = bufferevent_socket_new(bk->c->base, -1, BEV_OPT_CLOSE_ON_FREE);
    MG_ASSERT(bk->bev); /* only fails on allocation failure */
    bufferevent_setcb(bk->bev, conn_read_cb, NULL, conn_event_cb, bk);
    bufferevent_enable(bk->bev, EV_READ | EV_WRITE);
    bk->state = BKC_BK_CONNECTING;
    struct sockaddr_storage ss;
    int sl = sizeof(ss);
    char addr[300];
    snprintf(addr, sizeof(addr), strchr(bk->host, ':') ? "[%s]:%d" : "%s:%d", bk->host, bk->port);
    int rc;
    if (evutil_parse_sockaddr_port(addr, (struct sockaddr *)&ss, &sl) == 0)
        rc = bufferevent_socket_connect(bk->bev, (struct sockaddr *)&ss, sl);
    else /* blocking resolution; bookie ids are normally addresses */
        rc = bufferevent_socket_connect_hostname(bk->bev, NULL, AF_UNSPEC, bk->host, bk->port);
    if (rc < 0) {
        /* Report from the loop so that no op callback runs inside a send. */
        event_active(bk->fail_ev, 0, 0);
    }
}

static const int64_t lat_bounds_us[BKC_LAT_BUCKETS - 1] = {500,   1000,   5000,   10000,  20000,
                                                           50000, 100000, 200000, 1000000};

double bkc_latency_bound_ms(int i)
{
    return i >= 0 && i < BKC_LAT_BUCKETS - 1 ? (double)lat_bounds_us[i] / 1000.0 : 0.0;
}

/* Count a completed ADD in its bookie's statistics (rc: BKC_RC_EOK or an error). */
static void op_record(struct bkc_op *op, int rc)
{
    if (op->opcode != BKC_OP_ADD)
        return;
    struct bkc_bookie *bk = op->bk;
    if (rc != BKC_RC_EOK) {
        bk->add_errors++;
        return;
    }
    int64_t lat = (int64_t)(mg_loop_mono_us(bk->c->loop) - op->sent_us);
    int i = 0;
    while (i < BKC_LAT_BUCKETS - 1 && lat > lat_bounds_us[i])
        i++;
    bk->add_lat[i]++;
    bk->add_count++;
    bk->add_lat_sum_us += lat;
}

static struct bkc_op *op_new(struct bkc_bookie *bk, uint8_t opcode, int64_t ledger, int64_t entry,
                             bkc_op_cb cb, void *arg, int slot)
{
    struct bkc_op *op = mg_calloc(1, sizeof(*op));
    op->bk = bk;
    op->opcode = opcode;
    op->ledger = ledger;
    op->entry = entry;
    op->cb = cb;
    op->arg = arg;
    op->slot = slot;
    op->gen = bk->gen;
    op->sent_us = mg_loop_mono_us(bk->c->loop);
    op->deadline_ms = op->sent_us / 1000u + (uint64_t)bk->c->cfg.timeout_ms;
    if (bk->v3)
        op->txn = bk->next_txn++;
    uint8_t key[17];
    size_t kl = op_key(key, op);
    struct bkc_op *head = mg_map_get(&bk->match, key, kl);
    if (!head) {
        mg_map_put(&bk->match, key, kl, op);
    } else {
        while (head->next_same)
            head = head->next_same;
        head->next_same = op;
    }
    TAILQ_INSERT_TAIL(&bk->ops, op, link);
    bk->n_ops++;
    return op;
}

/* Append the payload: by reference when libevent allows it, else by copying. */
static void add_payload(struct evbuffer *out, struct evbuffer *payload)
{
    if (evbuffer_add_buffer_reference(out, payload) == 0)
        return;
    size_t len = evbuffer_get_length(payload);
    struct evbuffer_ptr pos;
    evbuffer_ptr_set(payload, &pos, 0, EVBUFFER_PTR_SET);
    while (len > 0) {
        struct evbuffer_iovec v[8];
        int n = evbuffer_peek(payload, (ev_ssize_t)len, &pos, v, 8);
        if (n <= 0)
            break;
        size_t done = 0;
        for (int i = 0; i < n && i < 8 && len > 0; i++) {
            size_t take = v[i].iov_len < len ? v[i].iov_len : len;
            evbuffer_add(out, v[i].iov_base, take);
            len -= take;
            done += take;
        }
        evbuffer_ptr_set(payload, &pos, done, EVBUFFER_PTR_ADD);
    }
}

/* ---- v3 framing (docs/wire-bookkeeper.md §3) ---------------------------------------------- */

#define PB_WT_VARINT 0
#define PB_WT_LEN 2
/* Field numbers used by the hand encoding of an ADD request. */
#define PB_REQUEST_ADD 101 /* Request.addRequest */
#define PB_ADD_LEDGER 1    /* AddRequest.ledgerId */
#define PB_ADD_ENTRY 2     /* AddRequest.entryId */
#define PB_ADD_MASTER_KEY 3
#define PB_ADD_BODY 4
#define PB_ADD_FLAG 100
#define BKC_V3_HIGH_PRIORITY 100 /* the priority the Java client gives recovery traffic */

static size_t pb_varint_len(uint64_t v)
{
    size_t n = 1;
    while (v >= 0x80) {
        v >>= 7;
        n++;
    }
    return n;
}

static size_t pb_put_varint(uint8_t *p, uint64_t v)
{
    size_t n = 0;
    while (v >= 0x80) {
        p[n++] = (uint8_t)(v | 0x80);
        v >>= 7;
    }
    p[n++] = (uint8_t)v;
    return n;
}

static uint64_t pb_tag(unsigned field, unsigned wt)
{
    return ((uint64_t)field << 3) | wt;
}

static void v3_header(Bookkeeper__Proto__BKPacketHeader *h, int operation, uint64_t txn,
                      uint16_t flags)
{
    h->version = BOOKKEEPER__PROTO__PROTOCOL_VERSION__VERSION_THREE;
    h->operation = (Bookkeeper__Proto__OperationType)operation;
    h->txnid = txn;
    if (flags & BKC_FLAG_HIGH_PRIORITY) {
        h->has_priority = true;
        h->priority = BKC_V3_HIGH_PRIORITY;
    }
}

/* A v3 StatusCode as the v2 rc with the same meaning; unknown codes count as EIO. */
static int v3_status_rc(int st)
{
    switch (st) {
    case BOOKKEEPER__PROTO__STATUS_CODE__EOK:
        return BKC_RC_EOK;
    case BOOKKEEPER__PROTO__STATUS_CODE__ENOLEDGER:
        return BKC_RC_ENOLEDGER;
    case BOOKKEEPER__PROTO__STATUS_CODE__ENOENTRY:
        return BKC_RC_ENOENTRY;
    case BOOKKEEPER__PROTO__STATUS_CODE__EBADREQ:
        return BKC_RC_EBADREQ;
    case BOOKKEEPER__PROTO__STATUS_CODE__EIO:
        return BKC_RC_EIO;
    case BOOKKEEPER__PROTO__STATUS_CODE__EUA:
        return BKC_RC_EUA;
    case BOOKKEEPER__PROTO__STATUS_CODE__EBADVERSION:
        return BKC_RC_EBADVERSION;
    case BOOKKEEPER__PROTO__STATUS_CODE__EFENCED:
        return BKC_RC_EFENCED;
    case BOOKKEEPER__PROTO__STATUS_CODE__EREADONLY:
        return BKC_RC_EREADONLY;
    case BOOKKEEPER__PROTO__STATUS_CODE__ETOOMANYREQUESTS:
        return BKC_RC_ETOOMANYREQUESTS;
    case BOOKKEEPER__PROTO__STATUS_CODE__EUNKNOWNLEDGERSTATE:
        return BKC_RC_EUNKNOWNLEDGERSTATE;
    default:
        return BKC_RC_EIO;
    }
}

/*
 * ADD as `[u32 len] Request{header=1, addRequest=101{ledgerId=1, entryId=2, masterKey=3,
 * body=4, flag=100}}`. protobuf-c packs the Request with only its header; field 101 and the
 * AddRequest are encoded here with their sizes computed ahead, so that the body (entry header
 * and digest, then the payload by reference) is appended as in v2 and the payload is never
 * copied. Fields go in field-number order, flag (RECOVERY_ADD) after the body.
 */
/* The sizes of a v3 ADD: the packed Request header (hn), the AddRequest fields before the
 * body's bytes (a_head) and after them (a_tail), the AddRequest (alen) and the frame after
 * its length field (total). */
struct v3_add_sizes {
    size_t hn, a_head, a_tail;
    uint64_t blen, alen, total;
};

static void v3_add_sizes(uint64_t txn, int64_t ledger, int64_t entry, uint16_t flags,
                         size_t ehdr_len, size_t plen, struct v3_add_sizes *z)
{
    Bookkeeper__Proto__Request r = BOOKKEEPER__PROTO__REQUEST__INIT;
    Bookkeeper__Proto__BKPacketHeader h = BOOKKEEPER__PROTO__BKPACKET_HEADER__INIT;
    v3_header(&h, BOOKKEEPER__PROTO__OPERATION_TYPE__ADD_ENTRY, txn, flags);
    r.header = &h;
    z->hn = bookkeeper__proto__request__get_packed_size(&r);
    z->blen = ehdr_len + plen;
    z->a_head = 1 + pb_varint_len((uint64_t)ledger) + 1 + pb_varint_len((uint64_t)entry) + 1 + 1 +
                BKC_MASTER_KEY_LEN + 1 + pb_varint_len(z->blen);
    z->a_tail =
        (flags & BKC_FLAG_RECOVERY_ADD) ? pb_varint_len(pb_tag(PB_ADD_FLAG, PB_WT_VARINT)) + 1 : 0;
    z->alen = z->a_head + z->blen + z->a_tail;
    z->total =
        z->hn + pb_varint_len(pb_tag(PB_REQUEST_ADD, PB_WT_LEN)) + pb_varint_len(z->alen) + z->alen;
}

size_t bkc_add_frame_size(bool v3, int64_t ledger, int64_t entry, uint16_t flags, size_t ehdr_len,
                          size_t plen)
{
    if (!v3)
        return 4 + 4 + BKC_MASTER_KEY_LEN + ehdr_len + plen;
    /* The txnId is per bookie: count the largest one (a 10-byte varint). */
    struct v3_add_sizes z;
    v3_add_sizes(UINT64_MAX, ledger, entry, flags, ehdr_len, plen, &z);
    return 4 + (size_t)z.total;
}

static void v3_send_add(struct bkc_bookie *bk, struct bkc_op *op, uint16_t flags,
                        const uint8_t *master_key, const uint8_t *ehdr, size_t ehdr_len,
                        struct evbuffer *payload, size_t plen)
{
    Bookkeeper__Proto__Request r = BOOKKEEPER__PROTO__REQUEST__INIT;
    Bookkeeper__Proto__BKPacketHeader h = BOOKKEEPER__PROTO__BKPACKET_HEADER__INIT;
    v3_header(&h, BOOKKEEPER__PROTO__OPERATION_TYPE__ADD_ENTRY, op->txn, flags);
    r.header = &h;
    struct v3_add_sizes z;
    v3_add_sizes(op->txn, op->ledger, op->entry, flags, ehdr_len, plen, &z);
    size_t hn = z.hn;
    bool recovery = (flags & BKC_FLAG_RECOVERY_ADD) != 0;
    uint64_t blen = z.blen;
    uint64_t add_tag = pb_tag(PB_REQUEST_ADD, PB_WT_LEN);
    uint64_t flag_tag = pb_tag(PB_ADD_FLAG, PB_WT_VARINT);
    size_t a_head = z.a_head, a_tail = z.a_tail;
    uint64_t alen = z.alen, total = z.total;

    uint8_t pre[4 + 64 + 16 + 64 + BKC_ENTRY_HDR_LEN + BKC_MAX_DIGEST_LEN];
    MG_ASSERT(hn <= 64 && ehdr_len <= BKC_ENTRY_HDR_LEN + BKC_MAX_DIGEST_LEN);
    size_t n = 0;
    put_be32(pre, (uint32_t)total);
    n += 4;
    n += bookkeeper__proto__request__pack(&r, pre + n);
    n += pb_put_varint(pre + n, add_tag);
    n += pb_put_varint(pre + n, alen);
    size_t a_start = n;
    n += pb_put_varint(pre + n, pb_tag(PB_ADD_LEDGER, PB_WT_VARINT));
    n += pb_put_varint(pre + n, (uint64_t)op->ledger);
    n += pb_put_varint(pre + n, pb_tag(PB_ADD_ENTRY, PB_WT_VARINT));
    n += pb_put_varint(pre + n, (uint64_t)op->entry);
    n += pb_put_varint(pre + n, pb_tag(PB_ADD_MASTER_KEY, PB_WT_LEN));
    n += pb_put_varint(pre + n, BKC_MASTER_KEY_LEN);
    memcpy(pre + n, master_key, BKC_MASTER_KEY_LEN);
    n += BKC_MASTER_KEY_LEN;
    n += pb_put_varint(pre + n, pb_tag(PB_ADD_BODY, PB_WT_LEN));
    n += pb_put_varint(pre + n, blen);
    MG_ASSERT(n - a_start == a_head);
    memcpy(pre + n, ehdr, ehdr_len);
    n += ehdr_len;
    struct evbuffer *out = bufferevent_get_output(bk->bev);
    evbuffer_add(out, pre, n);
    if (plen)
        add_payload(out, payload);
    if (recovery) {
        uint8_t t[16];
        size_t tn = pb_put_varint(t, flag_tag);
        tn += pb_put_varint(t + tn, BOOKKEEPER__PROTO__ADD_REQUEST__FLAG__RECOVERY_ADD);
        MG_ASSERT(tn == a_tail);
        evbuffer_add(out, t, tn);
    }
}

/* READ as `[u32 len] Request{header, readRequest{ledgerId, entryId, flag=FENCE_LEDGER and
 * masterKey when fencing}}`, packed into one reserved extent. */
static void v3_send_read(struct bkc_bookie *bk, struct bkc_op *op, uint16_t flags,
                         const uint8_t *master_key)
{
    Bookkeeper__Proto__Request r = BOOKKEEPER__PROTO__REQUEST__INIT;
    Bookkeeper__Proto__BKPacketHeader h = BOOKKEEPER__PROTO__BKPACKET_HEADER__INIT;
    Bookkeeper__Proto__ReadRequest rr = BOOKKEEPER__PROTO__READ_REQUEST__INIT;
    v3_header(&h, BOOKKEEPER__PROTO__OPERATION_TYPE__READ_ENTRY, op->txn, flags);
    r.header = &h;
    rr.ledgerid = op->ledger;
    rr.entryid = op->entry;
    if (flags & BKC_FLAG_FENCE) {
        rr.has_flag = true;
        rr.flag = BOOKKEEPER__PROTO__READ_REQUEST__FLAG__FENCE_LEDGER;
        rr.has_masterkey = true;
        rr.masterkey.data = (uint8_t *)master_key;
        rr.masterkey.len = BKC_MASTER_KEY_LEN;
    }
    r.readrequest = &rr;
    size_t n = bookkeeper__proto__request__get_packed_size(&r);
    struct evbuffer *out = bufferevent_get_output(bk->bev);
    struct evbuffer_iovec v;
    /* only fails on allocation failure */
    MG_ASSERT(evbuffer_reserve_space(out, (ev_ssize_t)(4 + n), &v, 1) == 1);
    put_be32(v.iov_base, (uint32_t)n);
    bookkeeper__proto__request__pack(&r, (uint8_t *)v.iov_base + 4);
    v.iov_len = 4 + n;
    evbuffer_commit_space(out, &v, 1);
}

/* Bytes of an oversized v3 response looked at to find its txnId: the header is field 1,
 * encoded first, and is far smaller (version, operation, txnId, priority). */
#define V3_PEEK 64

static int pb_get_varint(const uint8_t *p, size_t n, size_t *off, uint64_t *v)
{
    *v = 0;
    for (int shift = 0; shift < 64; shift += 7) {
        if (*off >= n)
            return -1;
        uint8_t b = p[(*off)++];
        *v |= (uint64_t)(b & 0x7f) << shift;
        if (!(b & 0x80))
            return 0;
    }
    return -1;
}

/* The txnId of a Response from its first n bytes (Response.header = field 1, then
 * BKPacketHeader{version=1, operation=2, txnId=3, priority=4}, all varints). */
static int v3_peek_txn(const uint8_t *p, size_t n, uint64_t *txn)
{
    size_t off = 0;
    uint64_t tag, hlen, v;
    if (pb_get_varint(p, n, &off, &tag) < 0 || tag != pb_tag(1, PB_WT_LEN) ||
        pb_get_varint(p, n, &off, &hlen) < 0 || hlen > n - off)
        return -1;
    size_t end = off + (size_t)hlen;
    bool have = false, v3 = false;
    while (off < end) {
        if (pb_get_varint(p, end, &off, &tag) < 0 || (tag & 7) != PB_WT_VARINT ||
            pb_get_varint(p, end, &off, &v) < 0)
            return -1;
        if (tag >> 3 == 1)
            v3 = v == BOOKKEEPER__PROTO__PROTOCOL_VERSION__VERSION_THREE;
        else if (tag >> 3 == 3) {
            *txn = v;
            have = true;
        }
    }
    return have && v3 ? 0 : -1;
}

static void v3_resp_cleanup(const void *data, size_t len, void *arg)
{
    (void)data;
    (void)len;
    bookkeeper__proto__response__free_unpacked(arg, NULL);
}

static void conn_read_v3(struct bkc_bookie *bk, struct evbuffer *in)
{
    uint64_t gen = bk->gen;
    while (bk->gen == gen) {
        if (skip_oversized(bk, in))
            return;
        uint8_t h[4];
        if (evbuffer_copyout(in, h, 4) < 4)
            return;
        uint32_t flen = get_be32(h);
        if (flen < 2) {
            bkc_bookie_fail(bk, -MG_EIO, "bad v3 response frame length");
            return;
        }
        if (4 + (size_t)flen > bk->c->cfg.max_frame_size) {
            /* Only the header is needed to know whose response it is. */
            size_t peek = flen < V3_PEEK ? flen : V3_PEEK;
            if (evbuffer_get_length(in) < 4 + peek)
                return;
            const uint8_t *p = evbuffer_pullup(in, (ev_ssize_t)(4 + peek));
            uint64_t txn = 0;
            if (!p || v3_peek_txn(p + 4, peek, &txn) < 0) {
                bkc_bookie_fail(bk, -MG_EIO, "undecodable oversized v3 response");
                return;
            }
            evbuffer_drain(in, 4);
            bk->skip = flen;
            uint8_t key[17];
            size_t kl = v3_key(key, txn);
            fail_oversized(bk, mg_map_get(&bk->match, key, kl), 4 + (size_t)flen);
            continue;
        }
        if (evbuffer_get_length(in) < 4 + (size_t)flen)
            return;
        evbuffer_drain(in, 4);
        const uint8_t *data = evbuffer_pullup(in, (ev_ssize_t)flen);
        Bookkeeper__Proto__Response *resp =
            data ? bookkeeper__proto__response__unpack(NULL, flen, data) : NULL;
        evbuffer_drain(in, flen);
        if (!resp) {
            bkc_bookie_fail(bk, -MG_EIO, "undecodable v3 response");
            return;
        }
        Bookkeeper__Proto__BKPacketHeader *rh = resp->header;
        uint8_t opcode = 0;
        if (rh->operation == BOOKKEEPER__PROTO__OPERATION_TYPE__ADD_ENTRY)
            opcode = BKC_OP_ADD;
        else if (rh->operation == BOOKKEEPER__PROTO__OPERATION_TYPE__READ_ENTRY)
            opcode = BKC_OP_READ;
        const char *bad = NULL;
        if (rh->version != BOOKKEEPER__PROTO__PROTOCOL_VERSION__VERSION_THREE)
            bad = "v3 response with another protocol version";
        else if (!opcode)
            bad = "unexpected v3 response operation";
        uint8_t key[17];
        size_t kl = v3_key(key, rh->txnid);
        struct bkc_op *op = bad ? NULL : mg_map_get(&bk->match, key, kl);
        if (op && op->opcode != opcode)
            bad = "v3 response operation does not match its request";
        if (bad) {
            bookkeeper__proto__response__free_unpacked(resp, NULL);
            bkc_bookie_fail(bk, -MG_EIO, bad);
            return;
        }
        /* The inner status is the operation's; the outer one repeats it or reports a failure
         * before the operation ran (EBADREQ, EBADVERSION) without an inner message. */
        int st = (int)resp->status;
        const Bookkeeper__Proto__ReadResponse *rr = resp->readresponse;
        if (st == BOOKKEEPER__PROTO__STATUS_CODE__EOK) {
            if (opcode == BKC_OP_ADD && resp->addresponse)
                st = (int)resp->addresponse->status;
            else if (opcode == BKC_OP_READ && rr)
                st = (int)rr->status;
        }
        int rc = v3_status_rc(st);
        if (!op) {
            MG_DEBUG(MOD, "bookie %s: unmatched v3 response op %d txn %llu rc %d", bk->id, opcode,
                     (unsigned long long)rh->txnid, rc);
            bookkeeper__proto__response__free_unpacked(resp, NULL);
            continue;
        }
        struct evbuffer *body = NULL;
        if (opcode == BKC_OP_READ && rc == BKC_RC_EOK && rr && rr->has_body) {
            /* The body references the unpacked message, freed with the body's last
             * reference (possibly long after this callback: the reader keeps it). */
            body = evbuffer_new();
            MG_ASSERT(body);
            int arc =
                evbuffer_add_reference(body, rr->body.data, rr->body.len, v3_resp_cleanup, resp);
            if (arc < 0) {
                evbuffer_free(body);
                body = NULL;
                bookkeeper__proto__response__free_unpacked(resp, NULL);
                bkc_bookie_fail(bk, -MG_EIO, "out of memory for a v3 read body");
                return;
            }
            resp = NULL;
        }
        if (resp)
            bookkeeper__proto__response__free_unpacked(resp, NULL);
        op_unlink(op);
        op_record(op, rc);
        op->cb(op, rc, body ? &body : NULL);
        mg_free(op);
        if (body)
            evbuffer_free(body);
    }
}

struct bkc_op *bkc_bookie_add(struct bkc_bookie *bk, int64_t ledger, int64_t entry, uint16_t flags,
                              const uint8_t *master_key, const uint8_t *ehdr, size_t ehdr_len,
                              struct evbuffer *payload, bkc_op_cb cb, void *arg, int slot)
{
    ensure_conn(bk);
    struct bkc_op *op = op_new(bk, BKC_OP_ADD, ledger, entry, cb, arg, slot);
    if (bk->v3) {
        v3_send_add(bk, op, flags, master_key, ehdr, ehdr_len, payload,
                    evbuffer_get_length(payload));
        return op;
    }
    uint8_t pre[8 + BKC_MASTER_KEY_LEN + BKC_ENTRY_HDR_LEN + BKC_MAX_DIGEST_LEN];
    size_t plen = evbuffer_get_length(payload);
    size_t n = 8 + BKC_MASTER_KEY_LEN + ehdr_len;
    put_be32(pre, (uint32_t)(n - 4 + plen));
    put_be32(pre + 4, ((uint32_t)BKC_V2_VERSION << 24) | ((uint32_t)BKC_OP_ADD << 16) | flags);
    memcpy(pre + 8, master_key, BKC_MASTER_KEY_LEN);
    memcpy(pre + 8 + BKC_MASTER_KEY_LEN, ehdr, ehdr_len);
    struct evbuffer *out = bufferevent_get_output(bk->bev);
    evbuffer_add(out, pre, n);
    if (plen)
        add_payload(out, payload);
    return op;
}

struct bkc_op *bkc_bookie_read(struct bkc_bookie *bk, int64_t ledger, int64_t entry, uint16_t flags,
                               const uint8_t *master_key, bkc_op_cb cb, void *arg, int slot)
{
    ensure_conn(bk);
    struct bkc_op *op = op_new(bk, BKC_OP_READ, ledger, entry, cb, arg, slot);
    if (bk->v3) {
        v3_send_read(bk, op, flags, master_key);
        return op;
    }
    uint8_t f[4 + 4 + 16 + BKC_MASTER_KEY_LEN];
    bool fence = (flags & BKC_FLAG_FENCE) != 0;
    size_t n = 24 + (fence ? BKC_MASTER_KEY_LEN : 0);
    put_be32(f, (uint32_t)(n - 4));
    put_be32(f + 4, ((uint32_t)BKC_V2_VERSION << 24) | ((uint32_t)BKC_OP_READ << 16) | flags);
    put_be64(f + 8, (uint64_t)ledger);
    put_be64(f + 16, (uint64_t)entry);
    if (fence)
        memcpy(f + 24, master_key, BKC_MASTER_KEY_LEN);
    evbuffer_add(bufferevent_get_output(bk->bev), f, n);
    return op;
}

void bkc_bookie_check_timeouts(struct bkc_bookie *bk, uint64_t now_ms)
{
    struct bkc_op *op;
    int n = 0;
    while ((op = TAILQ_FIRST(&bk->ops)) && op->deadline_ms <= now_ms) {
        op_unlink(op);
        if (n++ == 0)
            MG_WARN(MOD, "bookie %s: request op %d L%lld E%lld timed out", bk->id, op->opcode,
                    (long long)op->ledger, (long long)op->entry);
        op_record(op, -MG_ETIMEDOUT);
        op->cb(op, -MG_ETIMEDOUT, NULL);
        mg_free(op);
    }
}
