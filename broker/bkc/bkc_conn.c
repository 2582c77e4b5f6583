/*
 * bkc_conn.c - one connection per bookie, BookKeeper v2 framing (the default, like Pulsar's
 * bookkeeperUseV2WireProtocol) or v3 framing when cfg.use_v3 (docs/wire-bookkeeper.md §2-§3).
 * The frames themselves are the codec's (wire/wire_bk.h); this file matches them to requests.
 *
 * Happy path: bkc_bookie_add/read append a frame to the bufferevent's output (connecting
 * first if needed; libevent flushes the output once connected) and record a struct bkc_op
 * in the bookie's send-ordered list and in a match map.
 *   v2 carries no request id, so the map is keyed by (ledger, entry, op) and each response
 *       goes to the oldest outstanding op with its key (FIFO).
 *   v3: the txnId is a per-bookie counter, the map is keyed by it and responses may come in
 *       any order. v3 StatusCodes arrive as the same wire_bk_status codes as v2 rc codes, so
 *       the layers above see one set of codes.
 * The socket is written up to MG_BEV_WRITE_MAX (1 MiB) per loop turn, not libevent's 16 KiB,
 * and a read callback takes what the socket holds beyond libevent's 4 KiB (util/bev.h).
 * ADD payloads are referenced into the output, never copied (unless the caller's buffer
 * already holds references, which libevent cannot reference again), in v3 as in v2. A read
 * body is handed up as an evbuffer: v2 moved out of the input, v3 the bytes protobuf-c
 * unpacked, freed with the evbuffer's last reference.
 *
 * Failure modes: a connection error, EOF, an unparsable frame (wire_bk_response_read), a
 * response to an operation we never send, or a v3 response whose operation does not match
 * the request with that txnId drop the connection and fail every op sent on it with -MG_EIO
 * (the connection generation tells those ops from ones sent afterwards on a new connection).
 * A response over the frame limit fails its request alone with -MG_ETOOBIG and is skipped as
 * it arrives. An op past its deadline fails with -MG_ETIMEDOUT (the client's tick checks).
 * Responses without an op are dropped. Connections are re-established on demand by the next
 * send. Op callbacks never run inside bkc_bookie_add/read; a failure to even start
 * connecting is reported from an event.
 *
 * TLS (cfg.tls.on, Pulsar's bookkeeperTLSClientAuthentication): as BookKeeper's
 * PerChannelBookieClient, every connection first sends a v3 START_TLS (also when the
 * connection then speaks v2), runs the TLS handshake after the EOK answer on the same socket
 * (tls_link_start) and only then sends the requests, which wait in bk->held meanwhile. A
 * refused START_TLS, a failed handshake (the bookie's certificate does not verify against
 * bookkeeperTLSTrustCertsFilePath, or ours is refused) or one that does not finish within
 * BKC_START_TLS_TIMEOUT_MS fails the connection like a failed connect: every op sent on it
 * gets -MG_EIO, logged with the reason.
 */
#include "bkc/bkc_int.h"
#include "tls/tls.h"
#include "util/alloc.h"
#include "util/bev.h"
#include "util/bytes.h"
#include "util/err.h"
#include "util/log.h"
#include "util/loop.h"
#include "wire/wire_bk.h"

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

/* BookKeeper's startTLSTimeoutSecs (10): START_TLS answer plus handshake */
#define BKC_START_TLS_TIMEOUT_MS 10000

/* The match key: v2 (ledger, entry, op), 17 bytes; v3 the txnId, 8 bytes. */
static size_t bkc_conn_v2_key(uint8_t key[17], int64_t ledger, int64_t entry, uint8_t opcode)
{
    mg_put_be64(key, (uint64_t)ledger);
    mg_put_be64(key + 8, (uint64_t)entry);
    key[16] = opcode;
    return 17;
}

static size_t bkc_conn_v3_key(uint8_t key[17], uint64_t txn)
{
    mg_put_be64(key, txn);
    return 8;
}

static size_t bkc_conn_op_key(uint8_t key[17], const struct bkc_op *op)
{
    if (op->bk->v3)
        return bkc_conn_v3_key(key, op->txn);
    return bkc_conn_v2_key(key, op->ledger, op->entry, op->opcode);
}

/* ---- lifecycle -------------------------------------------------------------------------- */

static void bkc_bookie_fail_ev(evutil_socket_t fd, short what, void *arg)
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
    bkc_bookie_attach(c, bk, id);
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
    bk->fail_ev = event_new(c->base, -1, 0, bkc_bookie_fail_ev, bk);
    return bk;
}

void bkc_bookie_attach(struct bkc_client *c, struct bkc_bookie *bk, const char *id)
{
    bk->c = c;
    bk->id = mg_strdup(id);
    TAILQ_INIT(&bk->ops);
    mg_map_put_str(&c->bookies, id, bk);
    TAILQ_INSERT_TAIL(&c->bookie_list, bk, link);
}

static void bkc_conn_op_unlink(struct bkc_op *op)
{
    struct bkc_bookie *bk = op->bk;
    uint8_t key[17];
    size_t kl = bkc_conn_op_key(key, op);
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
    bkc_conn_op_unlink(op);
    mg_free(op);
}

static void bkc_conn_drop_bev(struct bkc_bookie *bk)
{
    if (bk->bev) {
        /* Safe inside the bufferevent's own callbacks: libevent holds a reference while a
         * callback runs and frees the bufferevent when it returns. */
        bufferevent_free(bk->bev);
        bk->bev = NULL;
    }
    if (bk->held) /* requests of the lost connection; their ops fail with it */
        evbuffer_drain(bk->held, evbuffer_get_length(bk->held));
    bk->state = BKC_BK_IDLE;
    bk->tls = BKC_TLS_NONE;
    bk->skip = 0;
}

void bkc_bookie_fail(struct bkc_bookie *bk, int err, const char *why)
{
    uint64_t gen = bk->gen++;
    if (bk->n_ops > 0 || bk->state != BKC_BK_IDLE)
        MG_WARN(MOD, "bookie %s: %s; failing %d request(s)", bk->id, why, bk->n_ops);
    bkc_conn_drop_bev(bk);
    /* Ops sent from the callbacks below go out on a new connection (newer generation) and
     * sit after the failed ones in the send-ordered list. */
    struct bkc_op *op;
    while ((op = TAILQ_FIRST(&bk->ops)) && op->gen <= gen) {
        bkc_conn_op_unlink(op);
        bkc_op_record(op, err);
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
    bkc_conn_drop_bev(bk);
    if (bk->held)
        evbuffer_free(bk->held);
    mg_event_free(bk->fail_ev);
    mg_map_fini(&bk->match);
    mg_free(bk->id);
    mg_free(bk->host);
    mg_free(bk);
}

/* ---- reading responses ------------------------------------------------------------------- */

/* A response over the frame limit: its request (if still outstanding) fails with
 * -MG_ETOOBIG; the connection and every other request on it go on. */
static void bkc_conn_fail_oversized(struct bkc_bookie *bk, struct bkc_op *op, size_t total)
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
    bkc_conn_op_unlink(op);
    bkc_op_record(op, -MG_ETOOBIG);
    op->cb(op, -MG_ETOOBIG, NULL);
    mg_free(op);
}

/* The outstanding op a response answers (v2: the oldest with its key), or NULL. */
static struct bkc_op *bkc_conn_match_op(struct bkc_bookie *bk, const struct wire_bk_response *r)
{
    uint8_t key[17];
    size_t kl = bk->v3 ? bkc_conn_v3_key(key, r->txn)
                       : bkc_conn_v2_key(key, r->ledger, r->entry, (uint8_t)r->op);
    return mg_map_get(&bk->match, key, kl);
}

static void bkc_conn_read_cb(struct bufferevent *bev, void *arg);
static void bkc_conn_event_cb(struct bufferevent *bev, short what, void *arg);

/* The v3 answer to START_TLS (the connection's first frame, whatever its framing): on EOK
 * the TLS filter goes over the socket and the client handshake starts. */
static void bkc_tls_reply(struct bkc_bookie *bk, struct evbuffer *in)
{
    struct wire_bk_response r;
    char err[160];
    int rc = wire_bk_response_read(in, true, bk->c->cfg.max_frame_size, &r, err, sizeof(err));
    if (rc == 0)
        return;
    if (rc > 0 && (r.oversized || r.op != WIRE_BK_OP_START_TLS)) {
        snprintf(err, sizeof(err), "START_TLS answered by another operation");
        rc = -MG_EPROTO;
    } else if (rc > 0 && r.status != WIRE_BK_EOK) {
        snprintf(err, sizeof(err), "START_TLS refused: %s (is TLS configured on the bookie?)",
                 wire_bk_status_str(r.status));
        rc = -MG_EPROTO;
    }
    if (rc > 0)
        wire_bk_response_clear(&r);
    if (rc < 0) {
        bkc_bookie_fail(bk, -MG_EIO, err);
        return;
    }
    bk->bev = tls_link_start(bk->bev, tls_link_ctx(bk->c->tls), false, BKC_START_TLS_TIMEOUT_MS);
    bufferevent_setcb(bk->bev, bkc_conn_read_cb, NULL, bkc_conn_event_cb, bk);
    bufferevent_enable(bk->bev, EV_READ | EV_WRITE);
    bk->tls = BKC_TLS_HANDSHAKING;
}

/* The handshake completed: what waited in bk->held goes out. */
static void bkc_tls_on(struct bkc_bookie *bk)
{
    bk->tls = BKC_TLS_ON;
    bufferevent_set_timeouts(bk->bev, NULL, NULL);
    MG_DEBUG(MOD, "bookie %s: TLS on", bk->id);
    bufferevent_write_buffer(bk->bev, bk->held); /* moved, payload references included */
}

static void bkc_conn_read_cb(struct bufferevent *bev, void *arg)
{
    struct bkc_bookie *bk = arg;
    struct evbuffer *in = bufferevent_get_input(bev);
    if (bk->tls == BKC_TLS_AWAIT_REPLY) {
        bkc_tls_reply(bk, in);
        return;
    }
    if (bk->tls == BKC_TLS_HANDSHAKING)
        bkc_tls_on(bk); /* decrypted bytes: the handshake is done (the filter may read them
                           before it reports BEV_EVENT_CONNECTED) */
    /* libevent read 4 KiB at most: the rest the socket holds in one read (util/bev.h) */
    if (bk->tls == BKC_TLS_NONE)
        mg_bev_read_more(bev, 256 * 1024);
    uint64_t gen = bk->gen;
    while (bk->gen == gen) {
        if (wire_bk_skip(in, &bk->skip))
            return;
        struct wire_bk_response r;
        char err[160];
        int rc = wire_bk_response_read(in, bk->v3, bk->c->cfg.max_frame_size, &r, err, sizeof(err));
        if (rc <= 0) {
            if (rc < 0)
                bkc_bookie_fail(bk, -MG_EIO, err);
            return;
        }
        /* v3: an oversized response is known by its txnId alone */
        bool known = r.op == WIRE_BK_OP_ADD || r.op == WIRE_BK_OP_READ;
        struct bkc_op *op = known || (bk->v3 && r.oversized) ? bkc_conn_match_op(bk, &r) : NULL;
        const char *bad = NULL;
        if (!known && !(bk->v3 && r.oversized))
            bad = bk->v3 ? "unexpected v3 response operation" : "unexpected response opcode";
        else if (bk->v3 && !r.oversized && op && op->opcode != r.op)
            bad = "v3 response operation does not match its request";
        if (bad) {
            wire_bk_response_clear(&r);
            bkc_bookie_fail(bk, -MG_EIO, bad);
            return;
        }
        if (r.oversized) {
            /* Fail its request alone and skip the rest as it arrives. */
            bk->skip = r.skip;
            bkc_conn_fail_oversized(bk, op, r.frame_size);
            continue;
        }
        if (!op) {
            MG_DEBUG(MOD, "bookie %s: unmatched response op %d L%lld E%lld txn %llu: %s", bk->id,
                     r.op, (long long)r.ledger, (long long)r.entry, (unsigned long long)r.txn,
                     wire_bk_status_str(r.status));
        } else {
            bkc_conn_op_unlink(op);
            bkc_op_record(op, r.status);
            op->cb(op, r.status, r.body ? &r.body : NULL);
            mg_free(op);
        }
        wire_bk_response_clear(&r);
    }
}

static void bkc_conn_event_cb(struct bufferevent *bev, short what, void *arg)
{
    struct bkc_bookie *bk = arg;
    if (bk->tls == BKC_TLS_HANDSHAKING) {
        if (what & BEV_EVENT_CONNECTED) {
            bkc_tls_on(bk);
            return;
        }
        char why[256], msg[300];
        tls_bev_error(bev, what, why, sizeof(why));
        snprintf(msg, sizeof(msg), "TLS handshake failed: %s", why);
        bkc_bookie_fail(bk, -MG_EIO, msg);
        return;
    }
    if ((what & BEV_EVENT_TIMEOUT) && bk->tls == BKC_TLS_AWAIT_REPLY) { /* only set then */
        bkc_bookie_fail(bk, -MG_EIO, "no answer to START_TLS in time");
        return;
    }
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

static void bkc_conn_ensure_conn(struct bkc_bookie *bk)
{
    if (bk->bev)
        return;
    bk->bev = bufferevent_socket_new(bk->c->base, -1, BEV_OPT_CLOSE_ON_FREE);
    MG_ASSERT(bk->bev); /* only fails on allocation failure */
    /* entries go out in writes of up to 1 MiB, not libevent's 16 KiB (util/bev.h) */
    bufferevent_set_max_single_write(bk->bev, MG_BEV_WRITE_MAX);
    bufferevent_setcb(bk->bev, bkc_conn_read_cb, NULL, bkc_conn_event_cb, bk);
    bufferevent_enable(bk->bev, EV_READ | EV_WRITE);
    bk->state = BKC_BK_CONNECTING;
    if (bk->c->tls) {
        if (!bk->held)
            bk->held = evbuffer_new();
        MG_ASSERT(bk->held);
        wire_bk_write_start_tls(bufferevent_get_output(bk->bev), bk->next_txn++);
        struct timeval tv = {BKC_START_TLS_TIMEOUT_MS / 1000, 0};
        bufferevent_set_timeouts(bk->bev, &tv, &tv);
        bk->tls = BKC_TLS_AWAIT_REPLY;
    }
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

/* Where a request goes: the connection's output, or bk->held until TLS is on. */
static struct evbuffer *bkc_conn_out(struct bkc_bookie *bk)
{
    if (bk->tls == BKC_TLS_AWAIT_REPLY || bk->tls == BKC_TLS_HANDSHAKING)
        return bk->held;
    return bufferevent_get_output(bk->bev);
}

struct tls_link *bkc_tls_new(const struct bkc_tls_config *t)
{
    struct tls_link_conf lc = {
        .pem = {t->cert, t->key, t->trust, "bookkeeperTLSCertificateFilePath",
                "bookkeeperTLSKeyFilePath", "bookkeeperTLSTrustCertsFilePath"},
        .key_type = t->key_type,
        .trust_type = t->trust_type,
        .key_type_key = "bookkeeperTLSKeyFileType",
        .trust_type_key = "bookkeeperTLSTrustCertTypes",
    };
    char err[512];
    struct tls_link *l = tls_link_new(&lc, t->refresh_s, "TLS to bookies", err, sizeof(err));
    if (!l)
        MG_ERROR(MOD, "TLS to bookies (bookkeeperTLSClientAuthentication=true): %s", err);
    return l;
}

static const int64_t lat_bounds_us[BKC_LAT_BUCKETS - 1] = {500,   1000,   5000,   10000,  20000,
                                                           50000, 100000, 200000, 1000000};

double bkc_latency_bound_ms(int i)
{
    return i >= 0 && i < BKC_LAT_BUCKETS - 1 ? (double)lat_bounds_us[i] / 1000.0 : 0.0;
}

/* Count a completed ADD in its bookie's statistics (rc: WIRE_BK_EOK or an error). */
void bkc_op_record(struct bkc_op *op, int rc)
{
    if (op->opcode != WIRE_BK_OP_ADD)
        return;
    struct bkc_bookie *bk = op->bk;
    if (rc != WIRE_BK_EOK) {
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

void bkc_op_start(struct bkc_op *op, struct bkc_bookie *bk, uint8_t opcode, int64_t ledger,
                  int64_t entry, bkc_op_cb cb, void *arg, int slot)
{
    op->bk = bk;
    op->opcode = opcode;
    op->ledger = ledger;
    op->entry = entry;
    op->cb = cb;
    op->arg = arg;
    op->slot = slot;
    op->sent_us = mg_loop_mono_us(bk->c->loop);
    op->deadline_ms = op->sent_us / 1000u + (uint64_t)bk->c->cfg.timeout_ms;
    TAILQ_INSERT_TAIL(&bk->ops, op, link);
    bk->n_ops++;
}

static struct bkc_op *bkc_conn_op_new(struct bkc_bookie *bk, uint8_t opcode, int64_t ledger,
                                      int64_t entry, bkc_op_cb cb, void *arg, int slot)
{
    struct bkc_op *op = mg_calloc(1, sizeof(*op));
    bkc_op_start(op, bk, opcode, ledger, entry, cb, arg, slot);
    op->gen = bk->gen;
    if (bk->v3)
        op->txn = bk->next_txn++;
    uint8_t key[17];
    size_t kl = bkc_conn_op_key(key, op);
    struct bkc_op *head = mg_map_get(&bk->match, key, kl);
    if (!head) {
        mg_map_put(&bk->match, key, kl, op);
    } else {
        while (head->next_same)
            head = head->next_same;
        head->next_same = op;
    }
    return op;
}

struct bkc_op *bkc_bookie_add(struct bkc_bookie *bk, int64_t ledger, int64_t entry, uint16_t flags,
                              const uint8_t *master_key, const uint8_t *ehdr, size_t ehdr_len,
                              struct evbuffer *payload, bkc_op_cb cb, void *arg, int slot)
{
    bkc_conn_ensure_conn(bk);
    struct bkc_op *op = bkc_conn_op_new(bk, WIRE_BK_OP_ADD, ledger, entry, cb, arg, slot);
    struct wire_bk_add a = {.ledger = ledger,
                            .entry = entry,
                            .flags = flags,
                            .txn = op->txn,
                            .master_key = master_key,
                            .ehdr = ehdr,
                            .ehdr_len = ehdr_len};
    wire_bk_write_add(bkc_conn_out(bk), bk->v3, &a, payload);
    return op;
}

struct bkc_op *bkc_bookie_read(struct bkc_bookie *bk, int64_t ledger, int64_t entry, uint16_t flags,
                               const uint8_t *master_key, bkc_op_cb cb, void *arg, int slot)
{
    bkc_conn_ensure_conn(bk);
    struct bkc_op *op = bkc_conn_op_new(bk, WIRE_BK_OP_READ, ledger, entry, cb, arg, slot);
    struct wire_bk_read r = {
        .ledger = ledger, .entry = entry, .flags = flags, .txn = op->txn, .master_key = master_key};
    wire_bk_write_read(bkc_conn_out(bk), bk->v3, &r);
    return op;
}

void bkc_bookie_check_timeouts(struct bkc_bookie *bk, uint64_t now_ms)
{
    struct bkc_op *op;
    int n = 0;
    while ((op = TAILQ_FIRST(&bk->ops)) && op->deadline_ms <= now_ms) {
        bkc_conn_op_unlink(op);
        if (n++ == 0)
            MG_WARN(MOD, "bookie %s: request op %d L%lld E%lld timed out", bk->id, op->opcode,
                    (long long)op->ledger, (long long)op->entry);
        bkc_op_record(op, -MG_ETIMEDOUT);
        op->cb(op, -MG_ETIMEDOUT, NULL);
        mg_free(op);
    }
}
