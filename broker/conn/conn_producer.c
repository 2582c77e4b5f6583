/*
 * conn_producer.c - the producers of a connection: PRODUCER, SEND, CLOSE_PRODUCER.
 *
 * Happy path: PRODUCER goes through the setup producers and consumers share
 * (conn_endpoint.c: the topic parsed, this broker owns its bundle, the topic loaded, its
 * schema registered: conn_schema.c), then attaches a producer to the topic
 * (PRODUCER_SUCCESS, with the schema's version). Each SEND moves the payload bytes into the
 * topic's publish (topic_publish; never copied) and queues its sequence id; receipts (SEND_RECEIPT
 * with the entry's ledger and entry id, or (-1, -1) for a duplicate deduplication did not store)
 * leave in send order as the topic completes the publishes. PRODUCER_SUCCESS carries the
 * name's last sequence id when deduplication is on (else -1).
 *
 * Failure modes: a topic whose bundle is owned elsewhere, or lost while the topic loaded,
 * is refused with ServiceNotReady (the client looks up again); a busy name or an exclusive
 * producer elsewhere with the topic's error; a SEND whose checksum does not match gets
 * SEND_ERROR(ChecksumError) and is not stored; a failed publish gets SEND_ERROR (logged at
 * most once per interval with a count). The topic closing the producer (unload, delete)
 * sends CLOSE_PRODUCER; SENDs for that producer id that the client wrote before it read it
 * are ignored for one keep-alive interval (Pulsar's recentlyClosedProducers: the connection
 * and its other producers and consumers go on). Any other SEND for an unknown producer closes
 * the connection.
 */
#include "auth/auth.h"
#include "config/cfg.h"
#include "conn/conn_int.h"
#include "ns/ns.h"
#include "topic/topic.h"
#include "util/alloc.h"
#include "util/err.h"
#include "util/log.h"
#include "util/loop.h"
#include "wire/wire.h"

#include <event2/buffer.h>
#include <event2/bufferevent.h>
#include <event2/event.h>
#include <inttypes.h>
#include <stdio.h>
#include <string.h>

static void conn_receipt_push(struct conn_producer *p, uint64_t seq, uint64_t hseq)
{
    if (p->ring_len == p->ring_cap) {
        size_t ncap = p->ring_cap ? p->ring_cap * 2 : 16;
        struct conn_pub *n = mg_malloc(ncap * sizeof *n);
        for (size_t i = 0; i < p->ring_len; i++)
            n[i] = p->ring[(p->ring_head + i) % p->ring_cap];
        mg_free(p->ring);
        p->ring = n;
        p->ring_cap = ncap;
        p->ring_head = 0;
    }
    p->ring[(p->ring_head + p->ring_len) % p->ring_cap] = (struct conn_pub){seq, hseq};
    p->ring_len++;
}

static struct conn_pub conn_receipt_pop(struct conn_producer *p)
{
    MG_ASSERT(p->ring_len > 0);
    struct conn_pub v = p->ring[p->ring_head];
    p->ring_head = (p->ring_head + 1) % p->ring_cap;
    p->ring_len--;
    return v;
}

static void conn_producer_closed(void *owner, struct topic_producer *tp)
{
    struct conn_producer *p = owner;
    struct conn *c = p->e.conn;
    (void)tp;
    p->tp = NULL;
    if (conn_is_open(c) && p->e.attached)
        mg_map_put_u64(&c->recent_closed, p->e.id,
                       (void *)(uintptr_t)(mg_loop_mono_ms(c->env->loop) + c->keepalive_ms));
    conn_endpoint_closed(&p->e);
}

/* Did the broker close producer id less than a keep-alive interval ago? */
static bool conn_producer_recently_closed(struct conn *c, uint64_t id)
{
    uintptr_t until = (uintptr_t)mg_map_get_u64(&c->recent_closed, id);
    return until && mg_loop_mono_ms(c->env->loop) < until;
}

void conn_producer_forget_closed(struct conn *c)
{
    uint64_t now = mg_loop_mono_ms(c->env->loop);
    size_t pos = 0;
    const char *k;
    size_t kl;
    void *v;
    while (mg_map_next(&c->recent_closed, &pos, &k, &kl, &v)) {
        uint64_t id;
        memcpy(&id, k, sizeof id);
        if (now >= (uintptr_t)v)
            mg_map_del_u64(&c->recent_closed, id);
    }
}

static const struct topic_producer_ops conn_producer_ops = {
    .closed = conn_producer_closed,
};

/* SEND_ERROR's code for a failed publish: the topic was terminated, or the store failed. */
static Pulsar__Proto__ServerError conn_publish_error(int status)
{
    return status == -MG_ETERMINATED ? PULSAR__PROTO__SERVER_ERROR__TopicTerminatedError
                                     : PULSAR__PROTO__SERVER_ERROR__PersistenceError;
}

static void conn_publish_done(void *data, int status, struct ml_position pos)
{
    struct conn_producer *p = data;
    struct conn *c = p->e.conn;
    struct conn_pub pub = conn_receipt_pop(p);
    p->e.holds--;
    if (conn_is_open(c)) {
        c->pending_publish--;
        if (status == 0) {
            Pulsar__Proto__MessageIdData mid = PULSAR__PROTO__MESSAGE_ID_DATA__INIT;
            mid.ledgerid = (uint64_t)pos.ledger;
            mid.entryid = (uint64_t)pos.entry;
            Pulsar__Proto__CommandSendReceipt r = PULSAR__PROTO__COMMAND_SEND_RECEIPT__INIT;
            r.producer_id = p->e.id;
            r.sequence_id = pub.seq;
            r.message_id = &mid;
            if (pub.highest_seq) {
                r.has_highest_sequence_id = 1;
                r.highest_sequence_id = pub.highest_seq;
            }
            CONN_SEND(c, SEND_RECEIPT, send_receipt, r);
        } else {
            uint64_t held;
            if (mg_ratelimit_allow(&c->rl_publish, MG_RATELIMIT_INTERVAL_MS, &held))
                MG_WARN("conn",
                        "[%" PRIu64 "] publish on %s failed: %s (%" PRIu64
                        " more failed publishes on this connection since the last line)",
                        c->id, p->e.topic, mg_strerror(status), held);
            conn_send_send_error(c, p->e.id, pub.seq, conn_publish_error(status),
                                 mg_strerror(status));
        }
        conn_maybe_resume(c);
    }
    conn_endpoint_release(&p->e);
}

static void conn_send_producer_success(struct conn *c, struct conn_producer *p)
{
    Pulsar__Proto__CommandProducerSuccess ps = PULSAR__PROTO__COMMAND_PRODUCER_SUCCESS__INIT;
    ps.request_id = p->e.request_id;
    ps.producer_name = (char *)topic_producer_name(p->tp);
    ps.has_last_sequence_id = 1;
    ps.last_sequence_id = topic_producer_last_sequence(p->tp); /* -1 without deduplication */
    ps.has_producer_ready = 1;
    ps.producer_ready = 1;
    uint8_t version[8];
    ps.has_schema_version = 1;
    conn_schema_version_field(&p->e, version, &ps.schema_version);
    CONN_SEND(c, PRODUCER_SUCCESS, producer_success, ps);
}

static int conn_producer_add(struct conn_endpoint *e, struct topic *t, char *msg, size_t len)
{
    struct conn_producer *p = (struct conn_producer *)e;
    int rc = topic_producer_add(t, p->name, (enum topic_access_mode)p->access_mode, p,
                                &conn_producer_ops, &p->tp);
    if (rc < 0) {
        p->tp = NULL;
        if (topic_limit_refused(t) >= 0)
            topic_limit_message(t, (enum topic_limit)topic_limit_refused(t), msg, len);
        else if (rc == -MG_EPRODUCERBUSY && p->name && *p->name)
            snprintf(msg, len, "Producer with name '%s' is already connected to topic", p->name);
        else
            snprintf(msg, len, "%s", mg_strerror(rc));
        return rc;
    }
    MG_INFO("conn", "[%" PRIu64 "] producer %" PRIu64 " '%s' on %s", e->conn->id, e->id,
            topic_producer_name(p->tp), e->topic);
    conn_send_producer_success(e->conn, p);
    return 0;
}

static void conn_producer_close_in_topic(struct conn_endpoint *e)
{
    struct conn_producer *p = (struct conn_producer *)e;
    if (p->tp) {
        struct topic_producer *tp = p->tp;
        p->tp = NULL;
        topic_producer_close(tp);
    }
}

static void conn_producer_free(struct conn_endpoint *e)
{
    struct conn_producer *p = (struct conn_producer *)e;
    mg_free(p->ring);
    mg_free(p->name);
    mg_free(p);
}

/* A PRODUCER for a ready producer: its PRODUCER_SUCCESS again (that of its first request). */
static void conn_producer_again(struct conn_endpoint *e, uint64_t request_id)
{
    (void)request_id;
    conn_send_producer_success(e->conn, (struct conn_producer *)e);
}

static const struct conn_endpoint_ops conn_producer_endpoint_ops = {
    .kind = "producer",
    .present = "Producer is already present on the connection",
    .topic_missing = "Topic not found",
    .again = conn_producer_again,
    .add = conn_producer_add,
    .send_close = conn_send_close_producer,
    .close_in_topic = conn_producer_close_in_topic,
    .free = conn_producer_free,
};

void conn_handle_producer(struct conn *c, const Pulsar__Proto__CommandProducer *m)
{
    struct topic_name tn;
    if (!conn_endpoint_begin(c, &conn_producer_endpoint_ops, &c->producers, m->producer_id,
                             m->request_id, m->topic, &tn))
        return;
    /* Checked once here: SEND does no permission work. */
    if (!conn_authorized(c, &tn, AUTH_PRODUCE, false, NULL)) {
        conn_log_unauthorized(c, "producer on", tn.full);
        topic_name_fini(&tn);
        conn_send_error(c, m->request_id, -MG_EAUTHZ, "Client is not authorized to Produce");
        return;
    }
    struct conn_producer *p = mg_calloc(1, sizeof *p);
    conn_endpoint_init(&p->e, &conn_producer_endpoint_ops, c, &c->producers, m->producer_id,
                       m->request_id, &tn);
    p->name = m->producer_name && *m->producer_name ? mg_strdup(m->producer_name) : NULL;
    p->access_mode = m->has_producer_access_mode ? (int)m->producer_access_mode : 0;
    p->e.schema = conn_schema_from_wire(m->schema);
    conn_endpoint_start(&p->e, &tn);
    topic_name_fini(&tn);
}

void conn_handle_send(struct conn *c, const Pulsar__Proto__CommandSend *s, struct wire_frame *f)
{
    struct conn_producer *p = mg_map_get_u64(&c->producers, s->producer_id);
    if (!p || !p->e.ready || !p->tp) {
        if (!p && conn_producer_recently_closed(c, s->producer_id))
            return; /* written before the client read our CLOSE_PRODUCER */
        conn_close(c, "SEND for a producer that is not ready on this connection");
        return;
    }
    if (!f->checksum_ok) {
        MG_WARN("conn", "[%" PRIu64 "] checksum mismatch on SEND seq %" PRIu64 " for %s", c->id,
                s->sequence_id, p->e.topic);
        conn_send_send_error(c, s->producer_id, s->sequence_id,
                             PULSAR__PROTO__SERVER_ERROR__ChecksumError,
                             "Checksum failed on the broker");
        return;
    }
    uint64_t hseq = s->has_highest_sequence_id ? s->highest_sequence_id : 0;
    struct evbuffer *data = f->payload;
    f->payload = NULL;
    conn_receipt_push(p, s->sequence_id, hseq);
    p->e.holds++;
    c->pending_publish++;
    int rc = topic_publish(p->tp, data, &f->msg, s->sequence_id, hseq, conn_publish_done, p);
    struct topic *t = rc == 0 && p->tp ? topic_producer_topic(p->tp) : NULL;
    int64_t wait_ms = t ? topic_publish_wait_ms(t) : 0;
    if (wait_ms > 0)
        conn_publish_throttle(c, wait_ms); /* the publish rate: read no more for now */
    if (rc < 0) {
        /* Synchronous failure: no callback; answer now, keeping receipt order intact
         * because nothing after this one can be queued ahead of it. */
        p->e.holds--;
        c->pending_publish--;
        p->ring_len--;
        conn_send_send_error(c, s->producer_id, s->sequence_id, conn_publish_error(rc),
                             mg_strerror(rc));
    }
}

void conn_handle_close_producer(struct conn *c, const Pulsar__Proto__CommandCloseProducer *m)
{
    struct conn_producer *p = mg_map_get_u64(&c->producers, m->producer_id);
    if (p)
        conn_endpoint_drop(&p->e);
    conn_send_success(c, m->request_id);
}
