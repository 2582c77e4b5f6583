/*
 * conn_producer.c - the producers of a connection: PRODUCER, SEND, CLOSE_PRODUCER.
 *
 * Happy path: PRODUCER parses the topic, makes sure this broker owns its bundle (ns_lookup,
 * authoritative: an unowned bundle is taken here), loads the topic (topic_get) and attaches
 * a producer (PRODUCER_SUCCESS). Each SEND moves the payload bytes into the topic's publish
 * (topic_publish; never copied) and queues its sequence id; receipts (SEND_RECEIPT with the
 * entry's ledger and entry id) leave in send order as the topic completes the publishes.
 *
 * Failure modes: a topic whose bundle is owned elsewhere, or lost while the topic loaded,
 * is refused with ServiceNotReady (the client looks up again); a busy name or an exclusive
 * producer elsewhere with the topic's error; a SEND whose checksum does not match gets
 * SEND_ERROR(ChecksumError) and is not stored; a failed publish gets SEND_ERROR (logged at
 * most once per interval with a count). The topic closing the producer (unload, delete)
 * sends CLOSE_PRODUCER. A SEND for an unknown producer closes the connection (conn.c).
 */
#include "config/cfg.h"
#include "conn/conn_int.h"
#include "ns/ns.h"
#include "topic/topic.h"
#include "util/alloc.h"
#include "util/err.h"
#include "util/log.h"
#include "wire/wire.h"

#include <event2/buffer.h>
#include <event2/bufferevent.h>
#include <event2/event.h>
#include <inttypes.h>
#include <stdio.h>
#include <string.h>

void conn_producer_release(struct conn_producer *p)
{
    if (p->ops > 0 || p->attached)
        return;
    struct conn *c = p->conn;
    TAILQ_REMOVE(&c->all_producers, p, link);
    mg_free(p->ring);
    mg_free(p->topic);
    mg_free(p->name);
    mg_free(p);
    conn_unref(c);
}

void conn_producer_detach(struct conn_producer *p)
{
    if (p->attached) {
        mg_map_del_u64(&p->conn->producers, p->id);
        p->attached = false;
    }
    if (p->tp) {
        struct topic_producer *tp = p->tp;
        p->tp = NULL;
        topic_producer_close(tp);
    }
}

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
    (void)tp;
    p->tp = NULL;
    struct conn *c = p->conn;
    if (conn_is_open(c) && p->attached)
        conn_send_close_producer(c, p->id);
    conn_producer_detach(p);
    conn_producer_release(p);
}

static const struct topic_producer_ops conn_producer_ops = {
    .closed = conn_producer_closed,
};

static void conn_publish_done(void *data, int status, struct ml_position pos)
{
    struct conn_producer *p = data;
    struct conn *c = p->conn;
    struct conn_pub pub = conn_receipt_pop(p);
    p->ops--;
    if (conn_is_open(c)) {
        c->pending_publish--;
        wire_cmd cmd = PULSAR__PROTO__BASE_COMMAND__INIT;
        if (status == 0) {
            Pulsar__Proto__MessageIdData mid = PULSAR__PROTO__MESSAGE_ID_DATA__INIT;
            mid.ledgerid = (uint64_t)pos.ledger;
            mid.entryid = (uint64_t)pos.entry;
            Pulsar__Proto__CommandSendReceipt r = PULSAR__PROTO__COMMAND_SEND_RECEIPT__INIT;
            r.producer_id = p->id;
            r.sequence_id = pub.seq;
            r.message_id = &mid;
            if (pub.highest_seq) {
                r.has_highest_sequence_id = 1;
                r.highest_sequence_id = pub.highest_seq;
            }
            cmd.type = PULSAR__PROTO__BASE_COMMAND__TYPE__SEND_RECEIPT;
            cmd.send_receipt = &r;
            conn_send(c, &cmd);
        } else {
            uint64_t held;
            if (mg_ratelimit_allow(&c->rl_publish, MG_RATELIMIT_INTERVAL_MS, &held))
                MG_WARN("conn",
                        "[%" PRIu64 "] publish on %s failed: %s (%" PRIu64
                        " more failed publishes on this connection since the last line)",
                        c->id, p->topic, mg_strerror(status), held);
            conn_send_send_error(c, p->id, pub.seq, PULSAR__PROTO__SERVER_ERROR__PersistenceError,
                                 mg_strerror(status));
        }
        conn_maybe_resume(c);
    }
    conn_producer_release(p);
}

static void conn_send_producer_success(struct conn *c, struct conn_producer *p)
{
    Pulsar__Proto__CommandProducerSuccess ps = PULSAR__PROTO__COMMAND_PRODUCER_SUCCESS__INIT;
    ps.request_id = p->request_id;
    ps.producer_name = (char *)topic_producer_name(p->tp);
    ps.has_last_sequence_id = 1;
    ps.last_sequence_id = -1;
    ps.has_producer_ready = 1;
    ps.producer_ready = 1;
    wire_cmd cmd = PULSAR__PROTO__BASE_COMMAND__INIT;
    cmd.type = PULSAR__PROTO__BASE_COMMAND__TYPE__PRODUCER_SUCCESS;
    cmd.producer_success = &ps;
    conn_send(c, &cmd);
}

static void conn_producer_topic_ready(struct topic *t, int status, void *data)
{
    struct conn_producer *p = data;
    struct conn *c = p->conn;
    p->ops--;
    if (!conn_is_open(c) || !p->attached) {
        conn_producer_release(p);
        return;
    }
    if (status < 0) {
        MG_INFO("conn", "[%" PRIu64 "] producer %" PRIu64 " on %s refused: %s", c->id, p->id,
                p->topic, mg_strerror(status));
        conn_send_error(c, p->request_id, status,
                        status == -MG_ENOTFOUND ? "Topic not found" : mg_strerror(status));
        conn_producer_detach(p);
        conn_producer_release(p);
        return;
    }
    char omsg[400];
    int rc = conn_check_owned_name(c, p->topic, omsg, sizeof omsg);
    if (rc < 0) {
        /* The bundle went away while the topic loaded: do not serve it. */
        topic_unload(t);
        conn_send_error(c, p->request_id, rc, omsg);
        conn_producer_detach(p);
        conn_producer_release(p);
        return;
    }
    rc = topic_producer_add(t, p->name, (enum topic_access_mode)p->access_mode, p,
                            &conn_producer_ops, &p->tp);
    if (rc < 0) {
        char msg[256];
        if (rc == -MG_EPRODUCERBUSY && p->name && *p->name)
            snprintf(msg, sizeof msg, "Producer with name '%s' is already connected to topic",
                     p->name);
        else
            snprintf(msg, sizeof msg, "%s", mg_strerror(rc));
        conn_send_error(c, p->request_id, rc, msg);
        p->tp = NULL;
        conn_producer_detach(p);
        conn_producer_release(p);
        return;
    }
    p->ready = true;
    MG_INFO("conn", "[%" PRIu64 "] producer %" PRIu64 " '%s' on %s", c->id, p->id,
            topic_producer_name(p->tp), p->topic);
    conn_send_producer_success(c, p);
}

static void conn_producer_owner_decided(void *data, int status, const char *url,
                                        const char *message)
{
    struct conn_producer *p = data;
    struct conn *c = p->conn;
    p->ops--;
    if (!conn_is_open(c) || !p->attached) {
        conn_producer_release(p);
        return;
    }
    if (status < 0 || url) {
        char msg[400];
        conn_check_owned_name(c, p->topic, msg, sizeof msg);
        MG_INFO("conn", "[%" PRIu64 "] producer %" PRIu64 " refused: %s%s%s", c->id, p->id, msg,
                message ? " " : "", message ? message : "");
        conn_send_error(c, p->request_id, -MG_ENOTREADY, msg);
        conn_producer_detach(p);
        conn_producer_release(p);
        return;
    }
    p->ops++;
    int rc = topic_get(c->env->topics, p->topic, c->env->cfg->allow_auto_topic_creation,
                       conn_producer_topic_ready, p);
    if (rc < 0) {
        p->ops--;
        conn_send_error(c, p->request_id, rc, mg_strerror(rc));
        conn_producer_detach(p);
        conn_producer_release(p);
    }
}

void conn_handle_producer(struct conn *c, const Pulsar__Proto__CommandProducer *m)
{
    struct conn_producer *old = mg_map_get_u64(&c->producers, m->producer_id);
    if (old) {
        if (old->ready)
            conn_send_producer_success(c, old);
        else
            conn_send_error(c, m->request_id, -MG_ENOTREADY,
                            "Producer is already present on the connection");
        return;
    }
    struct topic_name tn;
    const char *reason = NULL;
    int rc = conn_parse_topic(c, m->topic, &tn, &reason);
    if (rc < 0) {
        conn_send_error(c, m->request_id, rc, reason);
        return;
    }
    struct conn_producer *p = mg_calloc(1, sizeof *p);
    p->conn = c;
    conn_ref(c);
    p->id = m->producer_id;
    p->request_id = m->request_id;
    p->topic = mg_strdup(tn.full);
    p->name = m->producer_name && *m->producer_name ? mg_strdup(m->producer_name) : NULL;
    p->access_mode = m->has_producer_access_mode ? (int)m->producer_access_mode : 0;
    p->attached = true;
    TAILQ_INSERT_TAIL(&c->all_producers, p, link);
    mg_map_put_u64(&c->producers, p->id, p);
    /* Serve only an owned bundle; an unowned one is taken here (an authoritative lookup),
     * one owned elsewhere is refused. */
    p->ops++;
    rc = ns_lookup(c->env->ns, &tn, true, conn_producer_owner_decided, p);
    topic_name_fini(&tn);
    if (rc == 1)
        conn_producer_owner_decided(p, 0, NULL, NULL);
    else if (rc < 0)
        conn_producer_owner_decided(p, rc, NULL, NULL);
}

void conn_handle_send(struct conn *c, const Pulsar__Proto__CommandSend *s, struct wire_frame *f)
{
    struct conn_producer *p = mg_map_get_u64(&c->producers, s->producer_id);
    if (!p || !p->ready || !p->tp) {
        conn_close(c, "SEND for a producer that is not ready on this connection");
        return;
    }
    if (!f->checksum_ok) {
        MG_WARN("conn", "[%" PRIu64 "] checksum mismatch on SEND seq %" PRIu64 " for %s", c->id,
                s->sequence_id, p->topic);
        conn_send_send_error(c, s->producer_id, s->sequence_id,
                             PULSAR__PROTO__SERVER_ERROR__ChecksumError,
                             "Checksum failed on the broker");
        return;
    }
    uint64_t hseq = s->has_highest_sequence_id ? s->highest_sequence_id : 0;
    struct evbuffer *data = f->payload;
    f->payload = NULL;
    conn_receipt_push(p, s->sequence_id, hseq);
    p->ops++;
    c->pending_publish++;
    int rc = topic_publish(p->tp, data, &f->msg, s->sequence_id, hseq, conn_publish_done, p);
    if (rc < 0) {
        /* Synchronous failure: no callback; answer now, keeping receipt order intact
         * because nothing after this one can be queued ahead of it. */
        p->ops--;
        c->pending_publish--;
        p->ring_len--;
        conn_send_send_error(c, s->producer_id, s->sequence_id,
                             rc == -MG_ETERMINATED
                                 ? PULSAR__PROTO__SERVER_ERROR__TopicTerminatedError
                                 : PULSAR__PROTO__SERVER_ERROR__PersistenceError,
                             mg_strerror(rc));
    }
}

void conn_handle_close_producer(struct conn *c, const Pulsar__Proto__CommandCloseProducer *m)
{
    struct conn_producer *p = mg_map_get_u64(&c->producers, m->producer_id);
    if (p) {
        conn_producer_detach(p);
        conn_producer_release(p);
    }
    conn_send_success(c, m->request_id);
}
