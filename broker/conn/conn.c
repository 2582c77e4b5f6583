/*
 * conn.c - the Pulsar protocol state machine of one client connection.
 *
 * Happy path: accept -> CONNECT -> CONNECTED; then any mix of lookups, PRODUCER/SEND
 * (receipts in send order once the topic stored each entry), SUBSCRIBE/FLOW/ACK (MESSAGEs
 * pushed by the topic's dispatcher through conn_consumer_ops), PING/PONG, CLOSE_*.
 *
 * Failure modes: a frame that cannot be decoded (garbage, truncated then closed, oversized
 * length, a non-CONNECT first frame, a SEND for an unknown producer) closes this connection
 * with one logged line; other connections are untouched. A topic name that cannot be served as
 * given (a control character, a NUL byte inside the protobuf string, too long) answers
 * InvalidTopicName, as Pulsar does for a name it cannot parse. A client that sends nothing for a
 * keep-alive interval after our PING is closed. Peer FIN closes the connection (clients such
 * as pulsar-flex clean up on close).
 *
 * Backpressure: reading pauses while pending publishes reach the configured maximum or the
 * output buffer is above connectionMaxOutboundBytes; it resumes from the receipt callback or
 * the write-drained callback. Consumers pause dispatch through outbound_bytes().
 */
#include "conn/conn.h"
#include "config/cfg.h"
#include "ns/ns.h"
#include "topic/topic.h"
#include "util/alloc.h"
#include "util/err.h"
#include "util/log.h"
#include "util/map.h"
#include "util/ratelimit.h"
#include "wire/wire.h"

#include <arpa/inet.h>
#include <event2/buffer.h>
#include <event2/bufferevent.h>
#include <event2/event.h>
#include <inttypes.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdio.h>
#include <string.h>
#include <sys/queue.h>
#include <sys/socket.h>

#define CONN_MAX_FRAMES_PER_PASS 64

#ifndef TAILQ_FOREACH_SAFE /* glibc's sys/queue.h lacks it */
#define TAILQ_FOREACH_SAFE(var, head, field, tvar)                                                 \
    for ((var) = TAILQ_FIRST(head); (var) && ((tvar) = TAILQ_NEXT(var, field), 1); (var) = (tvar))
#endif

enum conn_state {
    CONN_AWAIT_CONNECT = 0,
    CONN_READY,
    CONN_CLOSED,
};

static const char *const conn_state_name[] = {"AWAIT_CONNECT", "READY", "CLOSED"};

/* A publish waiting for its receipt. */
struct conn_pub {
    uint64_t seq;
    uint64_t highest_seq; /* 0 = not sent by the client */
};

struct conn_producer {
    TAILQ_ENTRY(conn_producer) link;
    struct conn *conn;         /* counted reference */
    struct topic_producer *tp; /* borrowed (owned by the topic); NULL until created or once
                                  closed */
    uint64_t id;
    uint64_t request_id; /* of the PRODUCER command */
    char *topic;         /* owned */
    char *name;          /* owned; requested name, may be NULL */
    int access_mode;
    bool ready;    /* PRODUCER_SUCCESS sent */
    bool attached; /* still in the connection's producer map */
    int ops;       /* async operations holding this struct (topic_get, publishes) */
    /* receipts queue (publishes complete in order) */
    struct conn_pub *ring; /* owned */
    size_t ring_cap, ring_head, ring_len;
};

struct conn_consumer {
    TAILQ_ENTRY(conn_consumer) link;
    struct conn *conn;         /* counted reference */
    struct topic_consumer *tc; /* borrowed (owned by the topic) */
    uint64_t id;
    uint64_t request_id;
    int partition; /* partition index of the topic, -1 if not a partition */
    char *topic;   /* owned */
    char *sub;     /* owned */
    struct topic_sub_options opts;
    char *consumer_name;  /* owned */
    int32_t (*ranges)[2]; /* owned sticky ranges */
    bool create;          /* auto-create the topic */
    bool ready;
    bool attached;
    int ops;
};

TAILQ_HEAD(conn_producer_list, conn_producer);
TAILQ_HEAD(conn_consumer_list, conn_consumer);

struct conn {
    int refs;
    uint64_t id;
    struct mg_ratelimit rl_publish; /* failed publishes: one WARN line per interval */
    enum conn_state state;
    const struct conn_env *env; /* borrowed */
    struct bufferevent *bev;    /* owned; NULL once closed */
    struct event *keepalive_ev; /* owned */
    struct event *resume_ev;    /* owned; deferred re-read after a pause */
    char peer[64];
    int protocol_version;
    bool broker_entry_metadata; /* client supports 0x0e02 sections */
    char *client_version;       /* owned */
    bool received_since_tick;
    int ticks;
    uint32_t max_frame;
    int pending_publish;
    int max_pending_publish;
    size_t max_outbound;
    bool read_paused;
    bool shutting_down;          /* conn_shutdown: close once the output is flushed */
    bool refusing;               /* conn_refuse: input is discarded, closed soon */
    bool refuse_fin_sent;        /* our side is shut down after the ERROR went out */
    const char *frame_nul_field; /* static: the frame being dispatched had a NUL in this
                                    string field (wire_frame.nul_string_field), or NULL */
    struct mg_map producers;     /* id -> struct conn_producer (attached ones) */
    struct mg_map consumers;     /* id -> struct conn_consumer */
    struct conn_producer_list all_producers;
    struct conn_consumer_list all_consumers;
};

static void conn_ref(struct conn *c)
{
    c->refs++;
}

static void conn_unref(struct conn *c)
{
    if (--c->refs > 0)
        return;
    MG_ASSERT(c->state == CONN_CLOSED);
    mg_map_fini(&c->producers);
    mg_map_fini(&c->consumers);
    mg_free(c->client_version);
    mg_free(c);
}

uint64_t conn_id(const struct conn *c)
{
    return c->id;
}

static void conn_set_state(struct conn *c, enum conn_state st)
{
    MG_DEBUG("conn", "[%" PRIu64 "] %s -> %s", c->id, conn_state_name[c->state],
             conn_state_name[st]);
    c->state = st;
}

static bool conn_open(const struct conn *c)
{
    return c->state != CONN_CLOSED && c->bev != NULL;
}

static struct evbuffer *conn_out(struct conn *c)
{
    return bufferevent_get_output(c->bev);
}

static void conn_send(struct conn *c, wire_cmd *cmd)
{
    if (!conn_open(c))
        return;
    wire_write_command(conn_out(c), cmd);
}

/* ---- small response helpers ------------------------------------------------------------ */

static void send_error(struct conn *c, uint64_t request_id, int err, const char *message)
{
    Pulsar__Proto__CommandError e = PULSAR__PROTO__COMMAND_ERROR__INIT;
    e.request_id = request_id;
    e.error = (Pulsar__Proto__ServerError)mg_err_server_error(err);
    e.message = (char *)message;
    wire_cmd cmd = PULSAR__PROTO__BASE_COMMAND__INIT;
    cmd.type = PULSAR__PROTO__BASE_COMMAND__TYPE__ERROR;
    cmd.error = &e;
    conn_send(c, &cmd);
}

static void send_success(struct conn *c, uint64_t request_id)
{
    Pulsar__Proto__CommandSuccess s = PULSAR__PROTO__COMMAND_SUCCESS__INIT;
    s.request_id = request_id;
    wire_cmd cmd = PULSAR__PROTO__BASE_COMMAND__INIT;
    cmd.type = PULSAR__PROTO__BASE_COMMAND__TYPE__SUCCESS;
    cmd.success = &s;
    conn_send(c, &cmd);
}

static void send_simple(struct conn *c, Pulsar__Proto__BaseCommand__Type type)
{
    Pulsar__Proto__CommandPing ping = PULSAR__PROTO__COMMAND_PING__INIT;
    Pulsar__Proto__CommandPong pong = PULSAR__PROTO__COMMAND_PONG__INIT;
    wire_cmd cmd = PULSAR__PROTO__BASE_COMMAND__INIT;
    cmd.type = type;
    if (type == PULSAR__PROTO__BASE_COMMAND__TYPE__PING)
        cmd.ping = &ping;
    else
        cmd.pong = &pong;
    conn_send(c, &cmd);
}

static void send_close_producer(struct conn *c, uint64_t producer_id)
{
    Pulsar__Proto__CommandCloseProducer cp = PULSAR__PROTO__COMMAND_CLOSE_PRODUCER__INIT;
    cp.producer_id = producer_id;
    cp.request_id = UINT64_MAX; /* broker-initiated: no request to answer */
    wire_cmd cmd = PULSAR__PROTO__BASE_COMMAND__INIT;
    cmd.type = PULSAR__PROTO__BASE_COMMAND__TYPE__CLOSE_PRODUCER;
    cmd.close_producer = &cp;
    conn_send(c, &cmd);
}

static void send_close_consumer(struct conn *c, uint64_t consumer_id)
{
    Pulsar__Proto__CommandCloseConsumer cl = PULSAR__PROTO__COMMAND_CLOSE_CONSUMER__INIT;
    cl.consumer_id = consumer_id;
    cl.request_id = UINT64_MAX;
    wire_cmd cmd = PULSAR__PROTO__BASE_COMMAND__INIT;
    cmd.type = PULSAR__PROTO__BASE_COMMAND__TYPE__CLOSE_CONSUMER;
    cmd.close_consumer = &cl;
    conn_send(c, &cmd);
}

static void send_send_error(struct conn *c, uint64_t producer_id, uint64_t seq,
                            Pulsar__Proto__ServerError error, const char *message)
{
    Pulsar__Proto__CommandSendError e = PULSAR__PROTO__COMMAND_SEND_ERROR__INIT;
    e.producer_id = producer_id;
    e.sequence_id = seq;
    e.error = error;
    e.message = (char *)message;
    wire_cmd cmd = PULSAR__PROTO__BASE_COMMAND__INIT;
    cmd.type = PULSAR__PROTO__BASE_COMMAND__TYPE__SEND_ERROR;
    cmd.send_error = &e;
    conn_send(c, &cmd);
}

/* ---- flow control ------------------------------------------------------------------------ */

static bool conn_should_pause(struct conn *c)
{
    return c->pending_publish >= c->max_pending_publish ||
           evbuffer_get_length(conn_out(c)) > c->max_outbound;
}

static void conn_pause_read(struct conn *c)
{
    if (!c->read_paused) {
        c->read_paused = true;
        bufferevent_disable(c->bev, EV_READ);
        MG_DEBUG("conn", "[%" PRIu64 "] reading paused (pending %d, outbound %zu)", c->id,
                 c->pending_publish, evbuffer_get_length(conn_out(c)));
    }
}

static void conn_maybe_resume(struct conn *c)
{
    if (!conn_open(c) || !c->read_paused)
        return;
    if (c->pending_publish > c->max_pending_publish / 2 ||
        evbuffer_get_length(conn_out(c)) > c->max_outbound / 2)
        return;
    c->read_paused = false;
    bufferevent_enable(c->bev, EV_READ);
    /* Frames may already be buffered: process them without waiting for new bytes. */
    event_active(c->resume_ev, EV_READ, 0);
}

/* ---- producers --------------------------------------------------------------------------- */

static int check_owned_name(struct conn *c, const char *full, char *msg, size_t len);

static void producer_release(struct conn_producer *p)
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

static void producer_detach(struct conn_producer *p)
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

static void ring_push(struct conn_producer *p, uint64_t seq, uint64_t hseq)
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

static struct conn_pub ring_pop(struct conn_producer *p)
{
    MG_ASSERT(p->ring_len > 0);
    struct conn_pub v = p->ring[p->ring_head];
    p->ring_head = (p->ring_head + 1) % p->ring_cap;
    p->ring_len--;
    return v;
}

static void producer_closed_by_broker(void *owner, struct topic_producer *tp)
{
    struct conn_producer *p = owner;
    (void)tp;
    p->tp = NULL;
    struct conn *c = p->conn;
    if (conn_open(c) && p->attached)
        send_close_producer(c, p->id);
    producer_detach(p);
    producer_release(p);
}

static const struct topic_producer_ops conn_producer_ops = {
    .closed = producer_closed_by_broker,
};

static void publish_done(void *data, int status, struct ml_position pos)
{
    struct conn_producer *p = data;
    struct conn *c = p->conn;
    struct conn_pub pub = ring_pop(p);
    p->ops--;
    if (conn_open(c)) {
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
            send_send_error(c, p->id, pub.seq, PULSAR__PROTO__SERVER_ERROR__PersistenceError,
                            mg_strerror(status));
        }
        conn_maybe_resume(c);
    }
    producer_release(p);
}

static void send_producer_success(struct conn *c, struct conn_producer *p)
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

static void producer_topic_ready(struct topic *t, int status, void *data)
{
    struct conn_producer *p = data;
    struct conn *c = p->conn;
    p->ops--;
    if (!conn_open(c) || !p->attached) {
        producer_release(p);
        return;
    }
    if (status < 0) {
        MG_INFO("conn", "[%" PRIu64 "] producer %" PRIu64 " on %s refused: %s", c->id, p->id,
                p->topic, mg_strerror(status));
        send_error(c, p->request_id, status,
                   status == -MG_ENOTFOUND ? "Topic not found" : mg_strerror(status));
        producer_detach(p);
        producer_release(p);
        return;
    }
    char omsg[400];
    int rc = check_owned_name(c, p->topic, omsg, sizeof omsg);
    if (rc < 0) {
        /* The bundle went away while the topic loaded: do not serve it. */
        topic_unload(t);
        send_error(c, p->request_id, rc, omsg);
        producer_detach(p);
        producer_release(p);
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
        send_error(c, p->request_id, rc, msg);
        p->tp = NULL;
        producer_detach(p);
        producer_release(p);
        return;
    }
    p->ready = true;
    MG_INFO("conn", "[%" PRIu64 "] producer %" PRIu64 " '%s' on %s", c->id, p->id,
            topic_producer_name(p->tp), p->topic);
    send_producer_success(c, p);
}

/* ---- consumers --------------------------------------------------------------------------- */

static void consumer_release(struct conn_consumer *cc)
{
    if (cc->ops > 0 || cc->attached)
        return;
    struct conn *c = cc->conn;
    TAILQ_REMOVE(&c->all_consumers, cc, link);
    mg_free(cc->topic);
    mg_free(cc->sub);
    mg_free(cc->consumer_name);
    mg_free(cc->ranges);
    mg_free(cc);
    conn_unref(c);
}

static void consumer_detach(struct conn_consumer *cc, bool close_in_topic)
{
    if (cc->attached) {
        mg_map_del_u64(&cc->conn->consumers, cc->id);
        cc->attached = false;
    }
    if (cc->tc) {
        struct topic_consumer *tc = cc->tc;
        cc->tc = NULL;
        if (close_in_topic)
            topic_consumer_close(tc);
    }
}

static void consumer_send(void *owner, struct topic_consumer *tc, struct ml_entry *e,
                          uint32_t redelivery_count, const int64_t *ack_set, int n_words)
{
    struct conn_consumer *cc = owner;
    struct conn *c = cc->conn;
    (void)tc;
    if (!conn_open(c))
        return;
    Pulsar__Proto__MessageIdData mid = PULSAR__PROTO__MESSAGE_ID_DATA__INIT;
    mid.ledgerid = (uint64_t)e->pos.ledger;
    mid.entryid = (uint64_t)e->pos.entry;
    mid.has_partition = 1;
    mid.partition = cc->partition;
    Pulsar__Proto__CommandMessage m = PULSAR__PROTO__COMMAND_MESSAGE__INIT;
    m.consumer_id = cc->id;
    m.message_id = &mid;
    if (redelivery_count) {
        m.has_redelivery_count = 1;
        m.redelivery_count = redelivery_count;
    }
    if (ack_set && n_words > 0) {
        m.n_ack_set = (size_t)n_words;
        m.ack_set = (int64_t *)ack_set;
    }
    wire_cmd cmd = PULSAR__PROTO__BASE_COMMAND__INIT;
    cmd.type = PULSAR__PROTO__BASE_COMMAND__TYPE__MESSAGE;
    cmd.message = &m;
    wire_write_message(conn_out(c), &cmd, e->data);
}

static void consumer_active_change(void *owner, struct topic_consumer *tc, bool active)
{
    struct conn_consumer *cc = owner;
    struct conn *c = cc->conn;
    (void)tc;
    if (!conn_open(c) || c->protocol_version < 12)
        return;
    Pulsar__Proto__CommandActiveConsumerChange a =
        PULSAR__PROTO__COMMAND_ACTIVE_CONSUMER_CHANGE__INIT;
    a.consumer_id = cc->id;
    a.has_is_active = 1;
    a.is_active = active;
    wire_cmd cmd = PULSAR__PROTO__BASE_COMMAND__INIT;
    cmd.type = PULSAR__PROTO__BASE_COMMAND__TYPE__ACTIVE_CONSUMER_CHANGE;
    cmd.active_consumer_change = &a;
    conn_send(c, &cmd);
}

static void consumer_closed_by_broker(void *owner, struct topic_consumer *tc)
{
    struct conn_consumer *cc = owner;
    struct conn *c = cc->conn;
    (void)tc;
    cc->tc = NULL;
    if (conn_open(c) && cc->attached)
        send_close_consumer(c, cc->id);
    consumer_detach(cc, false);
    consumer_release(cc);
}

static size_t consumer_outbound_bytes(void *owner)
{
    struct conn_consumer *cc = owner;
    struct conn *c = cc->conn;
    if (!conn_open(c))
        return SIZE_MAX;
    return evbuffer_get_length(conn_out(c));
}

static const struct topic_consumer_ops conn_consumer_ops = {
    .send = consumer_send,
    .active_change = consumer_active_change,
    .closed = consumer_closed_by_broker,
    .outbound_bytes = consumer_outbound_bytes,
};

static void consumer_topic_ready(struct topic *t, int status, void *data)
{
    struct conn_consumer *cc = data;
    struct conn *c = cc->conn;
    cc->ops--;
    if (!conn_open(c) || !cc->attached) {
        consumer_release(cc);
        return;
    }
    if (status < 0) {
        send_error(c, cc->request_id, status,
                   status == -MG_ENOTFOUND ? "Topic does not exist" : mg_strerror(status));
        consumer_detach(cc, false);
        consumer_release(cc);
        return;
    }
    char omsg[400];
    int rc = check_owned_name(c, cc->topic, omsg, sizeof omsg);
    if (rc < 0) {
        topic_unload(t); /* the bundle went away while the topic loaded */
        send_error(c, cc->request_id, rc, omsg);
        consumer_detach(cc, false);
        consumer_release(cc);
        return;
    }
    rc = topic_subscribe(t, cc->sub, &cc->opts, cc, &conn_consumer_ops, &cc->tc);
    if (rc < 0) {
        const char *msg = mg_strerror(rc);
        if (rc == -MG_ECONSUMERBUSY)
            msg = cc->opts.type == TOPIC_SUB_EXCLUSIVE ? "Exclusive consumer is already connected"
                                                       : "Subscription is of different type";
        MG_INFO("conn", "[%" PRIu64 "] subscribe %s/%s refused: %s", c->id, cc->topic, cc->sub,
                msg);
        cc->tc = NULL;
        send_error(c, cc->request_id, rc, msg);
        consumer_detach(cc, false);
        consumer_release(cc);
        return;
    }
    cc->ready = true;
    MG_INFO("conn", "[%" PRIu64 "] consumer %" PRIu64 " subscribed to %s sub '%s'", c->id, cc->id,
            cc->topic, cc->sub);
    send_success(c, cc->request_id);
}

/* ---- command handlers -------------------------------------------------------------------- */

/* Parse and check the topic of a PRODUCER, SUBSCRIBE, LOOKUP or PARTITIONED_METADATA. A
 * string of the command that held a NUL byte refuses it: the C string stops at the NUL, and
 * serving "a" when "a\0b" was asked for would be serving another topic. */
static int parse_topic(struct conn *c, const char *name, struct topic_name *tn, const char **reason)
{
    memset(tn, 0, sizeof *tn);
    if (c->frame_nul_field) {
        bool topic = strcmp(c->frame_nul_field, "topic") == 0;
        MG_INFO("conn", "[%" PRIu64 "] refused: the %s field holds a NUL byte", c->id,
                c->frame_nul_field);
        *reason = topic ? "Invalid topic name" : "A string of the command holds a NUL character";
        return topic ? -MG_EBADNAME : -MG_EINVAL;
    }
    if (topic_name_parse(name, tn) < 0) {
        *reason = "Invalid topic name";
        return -MG_EBADNAME;
    }
    int rc = ns_check_topic(c->env->ns, tn, reason);
    if (rc < 0)
        topic_name_fini(tn);
    return rc;
}

static void handle_connect(struct conn *c, const Pulsar__Proto__CommandConnect *cc)
{
    int client_ver = cc->has_protocol_version ? cc->protocol_version : 0;
    c->protocol_version = client_ver < WIRE_PROTOCOL_VERSION ? client_ver : WIRE_PROTOCOL_VERSION;
    c->client_version = mg_strdup(cc->client_version ? cc->client_version : "");
    c->broker_entry_metadata =
        cc->feature_flags && cc->feature_flags->supports_broker_entry_metadata;
    Pulsar__Proto__CommandConnected r = PULSAR__PROTO__COMMAND_CONNECTED__INIT;
    r.server_version = "magnetar " PACKAGE_VERSION;
    r.has_protocol_version = 1;
    r.protocol_version = c->protocol_version;
    r.has_max_message_size = 1;
    r.max_message_size = c->env->cfg->max_message_size;
    wire_cmd cmd = PULSAR__PROTO__BASE_COMMAND__INIT;
    cmd.type = PULSAR__PROTO__BASE_COMMAND__TYPE__CONNECTED;
    cmd.connected = &r;
    conn_set_state(c, CONN_READY);
    conn_send(c, &cmd);
    MG_INFO("conn", "[%" PRIu64 "] %s connected: client '%s', protocol v%d", c->id, c->peer,
            c->client_version, c->protocol_version);
}

static void handle_partitioned_metadata(struct conn *c,
                                        const Pulsar__Proto__CommandPartitionedTopicMetadata *m)
{
    Pulsar__Proto__CommandPartitionedTopicMetadataResponse r =
        PULSAR__PROTO__COMMAND_PARTITIONED_TOPIC_METADATA_RESPONSE__INIT;
    r.request_id = m->request_id;
    r.has_response = 1;
    struct topic_name tn;
    const char *reason = NULL;
    char reason_buf[96];
    int rc = parse_topic(c, m->topic, &tn, &reason);
    if (rc < 0) {
        r.response =
            PULSAR__PROTO__COMMAND_PARTITIONED_TOPIC_METADATA_RESPONSE__LOOKUP_TYPE__Failed;
        r.has_error = 1;
        r.error = (Pulsar__Proto__ServerError)mg_err_server_error(rc);
        r.message = (char *)reason;
    } else {
        int n = tn.partition >= 0 ? 0 : ns_partitions_get(c->env->ns, tn.full);
        const struct cfg *cfg = c->env->cfg;
        int made = 0;
        if (n == 0 && tn.partition < 0 && cfg->allow_auto_topic_creation &&
            strcmp(cfg->allow_auto_topic_creation_type, "partitioned") == 0 &&
            !topic_find(c->env->topics, tn.full) && cfg->default_num_partitions > 0) {
            made = ns_partitions_set(c->env->ns, tn.full, cfg->default_num_partitions, true, NULL,
                                     NULL);
            if (made == 0)
                n = cfg->default_num_partitions;
        }
        topic_name_fini(&tn);
        if (made == -MG_ENOTALLOWED) { /* defaultNumPartitions above the bound: as Pulsar */
            snprintf(reason_buf, sizeof reason_buf,
                     "Number of partitions should be less than or equal to %d",
                     cfg->max_num_partitions_per_partitioned_topic);
            r.response =
                PULSAR__PROTO__COMMAND_PARTITIONED_TOPIC_METADATA_RESPONSE__LOOKUP_TYPE__Failed;
            r.has_error = 1;
            r.error = (Pulsar__Proto__ServerError)mg_err_server_error(made);
            r.message = reason_buf;
        } else {
            r.response =
                PULSAR__PROTO__COMMAND_PARTITIONED_TOPIC_METADATA_RESPONSE__LOOKUP_TYPE__Success;
            r.has_partitions = 1;
            r.partitions = (uint32_t)n;
        }
    }
    wire_cmd cmd = PULSAR__PROTO__BASE_COMMAND__INIT;
    cmd.type = PULSAR__PROTO__BASE_COMMAND__TYPE__PARTITIONED_METADATA_RESPONSE;
    cmd.partitionmetadataresponse = &r;
    conn_send(c, &cmd);
}

static void send_lookup_response(struct conn *c, uint64_t request_id, int status, const char *url,
                                 const char *message)
{
    Pulsar__Proto__CommandLookupTopicResponse r =
        PULSAR__PROTO__COMMAND_LOOKUP_TOPIC_RESPONSE__INIT;
    r.request_id = request_id;
    r.has_response = 1;
    if (status < 0) {
        r.response = PULSAR__PROTO__COMMAND_LOOKUP_TOPIC_RESPONSE__LOOKUP_TYPE__Failed;
        r.has_error = 1;
        r.error = (Pulsar__Proto__ServerError)mg_err_server_error(status);
        r.message = (char *)(message ? message : mg_strerror(status));
    } else {
        /* Connect (url NULL: this broker serves it) or Redirect to the owner / the broker
         * chosen for an unowned bundle; both authoritative (that broker takes it). */
        r.response = url ? PULSAR__PROTO__COMMAND_LOOKUP_TOPIC_RESPONSE__LOOKUP_TYPE__Redirect
                         : PULSAR__PROTO__COMMAND_LOOKUP_TOPIC_RESPONSE__LOOKUP_TYPE__Connect;
        r.brokerserviceurl = (char *)(url ? url : ns_broker_url(c->env->ns));
        r.has_authoritative = 1;
        r.authoritative = 1;
    }
    wire_cmd cmd = PULSAR__PROTO__BASE_COMMAND__INIT;
    cmd.type = PULSAR__PROTO__BASE_COMMAND__TYPE__LOOKUP_RESPONSE;
    cmd.lookuptopicresponse = &r;
    conn_send(c, &cmd);
}

/* A lookup waiting for the ownership decision (ns_lookup). */
struct conn_lookup {
    struct conn *conn; /* counted reference */
    uint64_t request_id;
};

static void lookup_decided(void *data, int status, const char *url, const char *message)
{
    struct conn_lookup *l = data;
    struct conn *c = l->conn;
    if (conn_open(c)) {
        if (status < 0)
            MG_INFO("conn", "[%" PRIu64 "] lookup failed: %s", c->id,
                    message ? message : mg_strerror(status));
        send_lookup_response(c, l->request_id, status, url, message);
    }
    mg_free(l);
    conn_unref(c);
}

static void handle_lookup(struct conn *c, const Pulsar__Proto__CommandLookupTopic *l)
{
    struct topic_name tn;
    const char *reason = NULL;
    int rc = parse_topic(c, l->topic, &tn, &reason);
    if (rc < 0) {
        send_lookup_response(c, l->request_id, rc, NULL, reason);
        return;
    }
    struct conn_lookup *w = mg_malloc(sizeof *w);
    w->conn = c;
    w->request_id = l->request_id;
    conn_ref(c);
    bool authoritative = l->has_authoritative && l->authoritative;
    rc = ns_lookup(c->env->ns, &tn, authoritative, lookup_decided, w);
    if (rc != 0) {
        /* 1: owned here, answer at once; < 0: refused at once. */
        char msg[200];
        snprintf(msg, sizeof msg, "Lookup of %s failed: %s", tn.full, mg_strerror(rc));
        send_lookup_response(c, l->request_id, rc > 0 ? 0 : rc, NULL, rc > 0 ? NULL : msg);
        mg_free(w);
        conn_unref(c);
    }
    topic_name_fini(&tn);
}

/* ServiceNotReady unless this broker owns the topic's bundle (clients look up again). */
static int check_owned(struct conn *c, const struct topic_name *tn, char *msg, size_t len)
{
    if (ns_topic_owned(c->env->ns, tn))
        return 0;
    char range[NS_BUNDLE_NAME_LEN] = "?";
    ns_topic_bundle(c->env->ns, tn, range);
    snprintf(msg, len,
             "Namespace bundle %s/%s/%s of topic %s not served by this instance. Please redo "
             "the lookup.",
             tn->tenant, tn->ns, range, tn->full);
    return -MG_ENOTREADY;
}

static int check_owned_name(struct conn *c, const char *full, char *msg, size_t len)
{
    struct topic_name tn;
    if (topic_name_parse(full, &tn) < 0) {
        snprintf(msg, len, "Invalid topic name");
        return -MG_EBADNAME;
    }
    int rc = check_owned(c, &tn, msg, len);
    topic_name_fini(&tn);
    return rc;
}

static void producer_owner_decided(void *data, int status, const char *url, const char *message)
{
    struct conn_producer *p = data;
    struct conn *c = p->conn;
    p->ops--;
    if (!conn_open(c) || !p->attached) {
        producer_release(p);
        return;
    }
    if (status < 0 || url) {
        char msg[400];
        check_owned_name(c, p->topic, msg, sizeof msg);
        MG_INFO("conn", "[%" PRIu64 "] producer %" PRIu64 " refused: %s%s%s", c->id, p->id, msg,
                message ? " " : "", message ? message : "");
        send_error(c, p->request_id, -MG_ENOTREADY, msg);
        producer_detach(p);
        producer_release(p);
        return;
    }
    p->ops++;
    int rc = topic_get(c->env->topics, p->topic, c->env->cfg->allow_auto_topic_creation,
                       producer_topic_ready, p);
    if (rc < 0) {
        p->ops--;
        send_error(c, p->request_id, rc, mg_strerror(rc));
        producer_detach(p);
        producer_release(p);
    }
}

static void handle_producer(struct conn *c, const Pulsar__Proto__CommandProducer *m)
{
    struct conn_producer *old = mg_map_get_u64(&c->producers, m->producer_id);
    if (old) {
        if (old->ready)
            send_producer_success(c, old);
        else
            send_error(c, m->request_id, -MG_ENOTREADY,
                       "Producer is already present on the connection");
        return;
    }
    struct topic_name tn;
    const char *reason = NULL;
    int rc = parse_topic(c, m->topic, &tn, &reason);
    if (rc < 0) {
        send_error(c, m->request_id, rc, reason);
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
    rc = ns_lookup(c->env->ns, &tn, true, producer_owner_decided, p);
    topic_name_fini(&tn);
    if (rc == 1)
        producer_owner_decided(p, 0, NULL, NULL);
    else if (rc < 0)
        producer_owner_decided(p, rc, NULL, NULL);
}

static void handle_send(struct conn *c, const Pulsar__Proto__CommandSend *s, struct wire_frame *f)
{
    struct conn_producer *p = mg_map_get_u64(&c->producers, s->producer_id);
    if (!p || !p->ready || !p->tp) {
        conn_close(c, "SEND for a producer that is not ready on this connection");
        return;
    }
    if (!f->checksum_ok) {
        MG_WARN("conn", "[%" PRIu64 "] checksum mismatch on SEND seq %" PRIu64 " for %s", c->id,
                s->sequence_id, p->topic);
        send_send_error(c, s->producer_id, s->sequence_id,
                        PULSAR__PROTO__SERVER_ERROR__ChecksumError,
                        "Checksum failed on the broker");
        return;
    }
    uint64_t hseq = s->has_highest_sequence_id ? s->highest_sequence_id : 0;
    struct evbuffer *data = f->payload;
    f->payload = NULL;
    ring_push(p, s->sequence_id, hseq);
    p->ops++;
    c->pending_publish++;
    int rc = topic_publish(p->tp, data, s->sequence_id, hseq, publish_done, p);
    if (rc < 0) {
        /* Synchronous failure: no callback; answer now, keeping receipt order intact
         * because nothing after this one can be queued ahead of it. */
        p->ops--;
        c->pending_publish--;
        p->ring_len--;
        send_send_error(c, s->producer_id, s->sequence_id,
                        rc == -MG_ETERMINATED ? PULSAR__PROTO__SERVER_ERROR__TopicTerminatedError
                                              : PULSAR__PROTO__SERVER_ERROR__PersistenceError,
                        mg_strerror(rc));
    }
}

static void handle_close_producer(struct conn *c, const Pulsar__Proto__CommandCloseProducer *m)
{
    struct conn_producer *p = mg_map_get_u64(&c->producers, m->producer_id);
    if (p) {
        producer_detach(p);
        producer_release(p);
    }
    send_success(c, m->request_id);
}

static void consumer_owner_decided(void *data, int status, const char *url, const char *message)
{
    struct conn_consumer *cc = data;
    struct conn *c = cc->conn;
    cc->ops--;
    if (!conn_open(c) || !cc->attached) {
        consumer_release(cc);
        return;
    }
    if (status < 0 || url) {
        char msg[400];
        check_owned_name(c, cc->topic, msg, sizeof msg);
        MG_INFO("conn", "[%" PRIu64 "] subscribe %s/%s refused: %s%s%s", c->id, cc->topic, cc->sub,
                msg, message ? " " : "", message ? message : "");
        send_error(c, cc->request_id, -MG_ENOTREADY, msg);
        consumer_detach(cc, false);
        consumer_release(cc);
        return;
    }
    cc->ops++;
    int rc = topic_get(c->env->topics, cc->topic, cc->create, consumer_topic_ready, cc);
    if (rc < 0) {
        cc->ops--;
        send_error(c, cc->request_id, rc, mg_strerror(rc));
        consumer_detach(cc, false);
        consumer_release(cc);
    }
}

static void handle_subscribe(struct conn *c, const Pulsar__Proto__CommandSubscribe *m)
{
    if (mg_map_get_u64(&c->consumers, m->consumer_id)) {
        struct conn_consumer *old = mg_map_get_u64(&c->consumers, m->consumer_id);
        if (old->ready)
            send_success(c, m->request_id);
        else
            send_error(c, m->request_id, -MG_ENOTREADY,
                       "Consumer is already present on the connection");
        return;
    }
    struct topic_name tn;
    const char *reason = NULL;
    int rc = parse_topic(c, m->topic, &tn, &reason);
    if (rc < 0) {
        send_error(c, m->request_id, rc, reason);
        return;
    }
    if (!m->subscription || !*m->subscription) {
        topic_name_fini(&tn);
        send_error(c, m->request_id, -MG_EINVAL, "Empty subscription name");
        return;
    }
    struct conn_consumer *cc = mg_calloc(1, sizeof *cc);
    cc->conn = c;
    conn_ref(c);
    cc->id = m->consumer_id;
    cc->request_id = m->request_id;
    cc->partition = tn.partition;
    cc->topic = mg_strdup(tn.full);
    cc->sub = mg_strdup(m->subscription);
    struct topic_sub_options *o = &cc->opts;
    o->type = (enum topic_sub_type)m->subtype;
    o->durable = m->has_durable ? m->durable : true;
    o->initial_earliest =
        m->has_initialposition &&
        m->initialposition == PULSAR__PROTO__COMMAND_SUBSCRIBE__INITIAL_POSITION__Earliest;
    if (m->start_message_id) {
        o->has_start = true;
        o->start.ledger = (int64_t)m->start_message_id->ledgerid;
        o->start.entry = (int64_t)m->start_message_id->entryid;
    }
    o->priority_level = m->has_priority_level ? m->priority_level : 0;
    if (m->consumer_name && *m->consumer_name)
        cc->consumer_name = mg_strdup(m->consumer_name);
    else
        cc->consumer_name = mg_asprintf("consumer-%" PRIu64 "-%" PRIu64, c->id, m->consumer_id);
    o->consumer_name = cc->consumer_name;
    o->partition_index = cc->partition;
    if (m->keysharedmeta) {
        o->key_shared_sticky =
            m->keysharedmeta->keysharedmode == PULSAR__PROTO__KEY_SHARED_MODE__STICKY;
        o->allow_out_of_order = m->keysharedmeta->has_allowoutoforderdelivery
                                    ? m->keysharedmeta->allowoutoforderdelivery
                                    : false;
        if (m->keysharedmeta->n_hashranges > 0) {
            size_t n = m->keysharedmeta->n_hashranges;
            cc->ranges = mg_malloc(n * sizeof *cc->ranges);
            for (size_t i = 0; i < n; i++) {
                cc->ranges[i][0] = m->keysharedmeta->hashranges[i]->start;
                cc->ranges[i][1] = m->keysharedmeta->hashranges[i]->end;
            }
            o->sticky_ranges = (const int32_t(*)[2])cc->ranges;
            o->n_sticky_ranges = (int)n;
        }
    }
    cc->attached = true;
    TAILQ_INSERT_TAIL(&c->all_consumers, cc, link);
    mg_map_put_u64(&c->consumers, cc->id, cc);
    cc->create = c->env->cfg->allow_auto_topic_creation &&
                 (!m->has_force_topic_creation || m->force_topic_creation);
    /* As for producers: an owned bundle, or an unowned one taken here. */
    cc->ops++;
    rc = ns_lookup(c->env->ns, &tn, true, consumer_owner_decided, cc);
    topic_name_fini(&tn);
    if (rc == 1)
        consumer_owner_decided(cc, 0, NULL, NULL);
    else if (rc < 0)
        consumer_owner_decided(cc, rc, NULL, NULL);
}

static struct conn_consumer *ready_consumer(struct conn *c, uint64_t id)
{
    struct conn_consumer *cc = mg_map_get_u64(&c->consumers, id);
    return cc && cc->ready && cc->tc ? cc : NULL;
}

static void handle_flow(struct conn *c, const Pulsar__Proto__CommandFlow *m)
{
    struct conn_consumer *cc = ready_consumer(c, m->consumer_id);
    if (cc)
        topic_consumer_flow(cc->tc, m->messagepermits);
}

static void handle_ack(struct conn *c, const Pulsar__Proto__CommandAck *m)
{
    struct conn_consumer *cc = ready_consumer(c, m->consumer_id);
    int rc = -MG_ENOTFOUND;
    if (cc && m->n_message_id > 0) {
        struct topic_ack stack_acks[16];
        struct topic_ack *acks =
            m->n_message_id <= 16 ? stack_acks : mg_malloc(m->n_message_id * sizeof *acks);
        for (size_t i = 0; i < m->n_message_id; i++) {
            const Pulsar__Proto__MessageIdData *id = m->message_id[i];
            acks[i].pos.ledger = (int64_t)id->ledgerid;
            acks[i].pos.entry = (int64_t)id->entryid;
            acks[i].ack_set = id->n_ack_set ? id->ack_set : NULL;
            acks[i].n_words = (int)id->n_ack_set;
            acks[i].batch_size = id->has_batch_size ? id->batch_size : 0;
        }
        rc = topic_consumer_ack(cc->tc,
                                m->ack_type == PULSAR__PROTO__COMMAND_ACK__ACK_TYPE__Cumulative,
                                acks, (int)m->n_message_id);
        if (acks != stack_acks)
            mg_free(acks);
    } else if (cc) {
        rc = 0;
    }
    if (!m->has_request_id)
        return;
    Pulsar__Proto__CommandAckResponse r = PULSAR__PROTO__COMMAND_ACK_RESPONSE__INIT;
    r.consumer_id = m->consumer_id;
    r.has_request_id = 1;
    r.request_id = m->request_id;
    if (rc < 0 && rc != -MG_ENOTALLOWED) {
        r.has_error = 1;
        r.error = rc == -MG_ENOTFOUND ? PULSAR__PROTO__SERVER_ERROR__ConsumerNotFound
                                      : (Pulsar__Proto__ServerError)mg_err_server_error(rc);
        r.message = rc == -MG_ENOTFOUND ? "Consumer not found" : (char *)mg_strerror(rc);
    }
    wire_cmd cmd = PULSAR__PROTO__BASE_COMMAND__INIT;
    cmd.type = PULSAR__PROTO__BASE_COMMAND__TYPE__ACK_RESPONSE;
    cmd.ackresponse = &r;
    conn_send(c, &cmd);
}

static void handle_redeliver(struct conn *c,
                             const Pulsar__Proto__CommandRedeliverUnacknowledgedMessages *m)
{
    struct conn_consumer *cc = ready_consumer(c, m->consumer_id);
    if (!cc)
        return;
    size_t n = m->n_message_ids;
    struct ml_position *pos = n ? mg_malloc(n * sizeof *pos) : NULL;
    for (size_t i = 0; i < n; i++) {
        pos[i].ledger = (int64_t)m->message_ids[i]->ledgerid;
        pos[i].entry = (int64_t)m->message_ids[i]->entryid;
    }
    topic_consumer_redeliver(cc->tc, pos, (int)n);
    mg_free(pos);
}

static void handle_unsubscribe(struct conn *c, const Pulsar__Proto__CommandUnsubscribe *m)
{
    struct conn_consumer *cc = ready_consumer(c, m->consumer_id);
    if (!cc) {
        send_error(c, m->request_id, -MG_ENOTFOUND, "Consumer not found");
        return;
    }
    int rc = topic_consumer_unsubscribe(cc->tc, m->has_force && m->force);
    if (rc < 0) {
        send_error(c, m->request_id, rc, "Subscription has other connected consumers");
        return;
    }
    cc->tc = NULL; /* freed by the topic */
    consumer_detach(cc, false);
    consumer_release(cc);
    send_success(c, m->request_id);
}

struct conn_req {
    struct conn *conn; /* counted reference */
    uint64_t request_id;
    uint64_t consumer_id;
    int partition;
};

static struct conn_req *req_new(struct conn *c, uint64_t request_id, uint64_t consumer_id,
                                int partition)
{
    struct conn_req *r = mg_malloc(sizeof *r);
    r->conn = c;
    conn_ref(c);
    r->request_id = request_id;
    r->consumer_id = consumer_id;
    r->partition = partition;
    return r;
}

static void req_free(struct conn_req *r)
{
    conn_unref(r->conn);
    mg_free(r);
}

static void seek_done(void *data, int status)
{
    struct conn_req *r = data;
    if (conn_open(r->conn)) {
        if (status < 0)
            send_error(r->conn, r->request_id, status, mg_strerror(status));
        else
            send_success(r->conn, r->request_id);
    }
    req_free(r);
}

static void handle_seek(struct conn *c, const Pulsar__Proto__CommandSeek *m)
{
    struct conn_consumer *cc = ready_consumer(c, m->consumer_id);
    if (!cc) {
        send_error(c, m->request_id, -MG_ENOTFOUND, "Consumer not found");
        return;
    }
    bool by_time = !m->message_id && m->has_message_publish_time;
    if (!m->message_id && !by_time) {
        send_error(c, m->request_id, -MG_EINVAL, "Seek needs a message id or a publish time");
        return;
    }
    struct ml_position pos = {0, 0};
    if (m->message_id) {
        pos.ledger = (int64_t)m->message_id->ledgerid;
        pos.entry = (int64_t)m->message_id->entryid;
    }
    struct conn_req *r = req_new(c, m->request_id, m->consumer_id, cc->partition);
    int rc = topic_consumer_seek(cc->tc, by_time, pos, by_time ? m->message_publish_time : 0,
                                 seek_done, r);
    if (rc < 0) {
        req_free(r);
        send_error(c, m->request_id, rc, mg_strerror(rc));
    }
}

static void fill_id(Pulsar__Proto__MessageIdData *id, struct ml_position pos, int partition,
                    int32_t batch_index)
{
    id->ledgerid = (uint64_t)pos.ledger;
    id->entryid = (uint64_t)pos.entry;
    id->has_partition = 1;
    id->partition = partition;
    id->has_batch_index = 1;
    id->batch_index = batch_index;
}

static void last_id_done(void *data, int status, struct ml_position pos, int32_t batch_index,
                         struct ml_position mark_delete)
{
    struct conn_req *r = data;
    struct conn *c = r->conn;
    if (conn_open(c)) {
        if (status < 0) {
            send_error(c, r->request_id, status, mg_strerror(status));
        } else {
            Pulsar__Proto__MessageIdData last = PULSAR__PROTO__MESSAGE_ID_DATA__INIT;
            Pulsar__Proto__MessageIdData md = PULSAR__PROTO__MESSAGE_ID_DATA__INIT;
            fill_id(&last, pos, r->partition, batch_index);
            fill_id(&md, mark_delete, r->partition, -1);
            Pulsar__Proto__CommandGetLastMessageIdResponse resp =
                PULSAR__PROTO__COMMAND_GET_LAST_MESSAGE_ID_RESPONSE__INIT;
            resp.request_id = r->request_id;
            resp.last_message_id = &last;
            resp.consumer_mark_delete_position = &md;
            wire_cmd cmd = PULSAR__PROTO__BASE_COMMAND__INIT;
            cmd.type = PULSAR__PROTO__BASE_COMMAND__TYPE__GET_LAST_MESSAGE_ID_RESPONSE;
            cmd.getlastmessageidresponse = &resp;
            conn_send(c, &cmd);
        }
    }
    req_free(r);
}

static void handle_get_last_message_id(struct conn *c,
                                       const Pulsar__Proto__CommandGetLastMessageId *m)
{
    struct conn_consumer *cc = ready_consumer(c, m->consumer_id);
    if (!cc) {
        send_error(c, m->request_id, -MG_ENOTFOUND, "Consumer not found");
        return;
    }
    struct conn_req *r = req_new(c, m->request_id, m->consumer_id, cc->partition);
    int rc = topic_consumer_last_message_id(cc->tc, last_id_done, r);
    if (rc < 0) {
        req_free(r);
        send_error(c, m->request_id, rc, mg_strerror(rc));
    }
}

static void handle_close_consumer(struct conn *c, const Pulsar__Proto__CommandCloseConsumer *m)
{
    struct conn_consumer *cc = mg_map_get_u64(&c->consumers, m->consumer_id);
    if (cc) {
        consumer_detach(cc, true);
        consumer_release(cc);
    }
    send_success(c, m->request_id);
}

static void topics_listed(void *data, int status, char **names, int n)
{
    struct conn_req *r = data;
    if (conn_open(r->conn)) {
        if (status < 0) {
            send_error(r->conn, r->request_id, status, "Cannot list the namespace's topics");
        } else {
            Pulsar__Proto__CommandGetTopicsOfNamespaceResponse resp =
                PULSAR__PROTO__COMMAND_GET_TOPICS_OF_NAMESPACE_RESPONSE__INIT;
            resp.request_id = r->request_id;
            resp.n_topics = (size_t)n;
            resp.topics = names;
            wire_cmd cmd = PULSAR__PROTO__BASE_COMMAND__INIT;
            cmd.type = PULSAR__PROTO__BASE_COMMAND__TYPE__GET_TOPICS_OF_NAMESPACE_RESPONSE;
            cmd.gettopicsofnamespaceresponse = &resp;
            conn_send(r->conn, &cmd);
        }
    }
    req_free(r);
}

static void handle_get_topics(struct conn *c, const Pulsar__Proto__CommandGetTopicsOfNamespace *m)
{
    if (m->has_mode &&
        m->mode == PULSAR__PROTO__COMMAND_GET_TOPICS_OF_NAMESPACE__MODE__NON_PERSISTENT) {
        topics_listed(req_new(c, m->request_id, 0, -1), 0, NULL, 0); /* none are served */
        return;
    }
    struct conn_req *r = req_new(c, m->request_id, 0, -1);
    int rc = ns_list_topics(c->env->ns, m->namespace_, false, topics_listed, r);
    if (rc < 0) {
        req_free(r);
        send_error(c, m->request_id, rc, "Namespace does not exist");
    }
}

static void handle_get_schema(struct conn *c, const Pulsar__Proto__CommandGetSchema *m)
{
    Pulsar__Proto__CommandGetSchemaResponse r = PULSAR__PROTO__COMMAND_GET_SCHEMA_RESPONSE__INIT;
    r.request_id = m->request_id;
    r.has_error_code = 1;
    r.error_code = PULSAR__PROTO__SERVER_ERROR__TopicNotFound;
    r.error_message = "Topic has no schema";
    wire_cmd cmd = PULSAR__PROTO__BASE_COMMAND__INIT;
    cmd.type = PULSAR__PROTO__BASE_COMMAND__TYPE__GET_SCHEMA_RESPONSE;
    cmd.getschemaresponse = &r;
    conn_send(c, &cmd);
}

static void handle_get_or_create_schema(struct conn *c,
                                        const Pulsar__Proto__CommandGetOrCreateSchema *m)
{
    static uint8_t version0[8];
    Pulsar__Proto__CommandGetOrCreateSchemaResponse r =
        PULSAR__PROTO__COMMAND_GET_OR_CREATE_SCHEMA_RESPONSE__INIT;
    r.request_id = m->request_id;
    r.has_schema_version = 1;
    r.schema_version.len = sizeof version0;
    r.schema_version.data = version0;
    wire_cmd cmd = PULSAR__PROTO__BASE_COMMAND__INIT;
    cmd.type = PULSAR__PROTO__BASE_COMMAND__TYPE__GET_OR_CREATE_SCHEMA_RESPONSE;
    cmd.getorcreateschemaresponse = &r;
    conn_send(c, &cmd);
}

static void handle_consumer_stats(struct conn *c, const Pulsar__Proto__CommandConsumerStats *m)
{
    struct conn_consumer *cc = ready_consumer(c, m->consumer_id);
    Pulsar__Proto__CommandConsumerStatsResponse r =
        PULSAR__PROTO__COMMAND_CONSUMER_STATS_RESPONSE__INIT;
    r.request_id = m->request_id;
    if (!cc) {
        r.has_error_code = 1;
        r.error_code = PULSAR__PROTO__SERVER_ERROR__ConsumerNotFound;
        r.error_message = "Consumer not found";
    } else {
        static const char *const type_names[] = {"Exclusive", "Shared", "Failover", "Key_Shared"};
        r.consumername = cc->consumer_name;
        r.address = c->peer;
        r.type = (char *)type_names[cc->opts.type & 3];
    }
    wire_cmd cmd = PULSAR__PROTO__BASE_COMMAND__INIT;
    cmd.type = PULSAR__PROTO__BASE_COMMAND__TYPE__CONSUMER_STATS_RESPONSE;
    cmd.consumerstatsresponse = &r;
    conn_send(c, &cmd);
}

/* Handle one decoded frame. The frame is cleared by the caller. */
static void conn_dispatch(struct conn *c, struct wire_frame *f)
{
    wire_cmd *cmd = f->cmd;
    c->received_since_tick = true;
    c->frame_nul_field = f->nul_string_field; /* for parse_topic, during this dispatch */
    if (c->state == CONN_AWAIT_CONNECT) {
        if (cmd->type != PULSAR__PROTO__BASE_COMMAND__TYPE__CONNECT) {
            char why[96];
            snprintf(why, sizeof why, "first command is %s, not CONNECT",
                     wire_command_name(cmd->type));
            conn_close(c, why);
            return;
        }
        handle_connect(c, cmd->connect);
        return;
    }
    switch (cmd->type) {
    case PULSAR__PROTO__BASE_COMMAND__TYPE__PING:
        send_simple(c, PULSAR__PROTO__BASE_COMMAND__TYPE__PONG);
        break;
    case PULSAR__PROTO__BASE_COMMAND__TYPE__PONG:
        break;
    case PULSAR__PROTO__BASE_COMMAND__TYPE__PARTITIONED_METADATA:
        handle_partitioned_metadata(c, cmd->partitionmetadata);
        break;
    case PULSAR__PROTO__BASE_COMMAND__TYPE__LOOKUP:
        handle_lookup(c, cmd->lookuptopic);
        break;
    case PULSAR__PROTO__BASE_COMMAND__TYPE__PRODUCER:
        handle_producer(c, cmd->producer);
        break;
    case PULSAR__PROTO__BASE_COMMAND__TYPE__SEND:
        handle_send(c, cmd->send, f);
        break;
    case PULSAR__PROTO__BASE_COMMAND__TYPE__CLOSE_PRODUCER:
        handle_close_producer(c, cmd->close_producer);
        break;
    case PULSAR__PROTO__BASE_COMMAND__TYPE__SUBSCRIBE:
        handle_subscribe(c, cmd->subscribe);
        break;
    case PULSAR__PROTO__BASE_COMMAND__TYPE__FLOW:
        handle_flow(c, cmd->flow);
        break;
    case PULSAR__PROTO__BASE_COMMAND__TYPE__ACK:
        handle_ack(c, cmd->ack);
        break;
    case PULSAR__PROTO__BASE_COMMAND__TYPE__REDELIVER_UNACKNOWLEDGED_MESSAGES:
        handle_redeliver(c, cmd->redeliverunacknowledgedmessages);
        break;
    case PULSAR__PROTO__BASE_COMMAND__TYPE__UNSUBSCRIBE:
        handle_unsubscribe(c, cmd->unsubscribe);
        break;
    case PULSAR__PROTO__BASE_COMMAND__TYPE__SEEK:
        handle_seek(c, cmd->seek);
        break;
    case PULSAR__PROTO__BASE_COMMAND__TYPE__GET_LAST_MESSAGE_ID:
        handle_get_last_message_id(c, cmd->getlastmessageid);
        break;
    case PULSAR__PROTO__BASE_COMMAND__TYPE__CLOSE_CONSUMER:
        handle_close_consumer(c, cmd->close_consumer);
        break;
    case PULSAR__PROTO__BASE_COMMAND__TYPE__GET_TOPICS_OF_NAMESPACE:
        handle_get_topics(c, cmd->gettopicsofnamespace);
        break;
    case PULSAR__PROTO__BASE_COMMAND__TYPE__GET_SCHEMA:
        handle_get_schema(c, cmd->getschema);
        break;
    case PULSAR__PROTO__BASE_COMMAND__TYPE__GET_OR_CREATE_SCHEMA:
        handle_get_or_create_schema(c, cmd->getorcreateschema);
        break;
    case PULSAR__PROTO__BASE_COMMAND__TYPE__CONSUMER_STATS:
        handle_consumer_stats(c, cmd->consumerstats);
        break;
    case PULSAR__PROTO__BASE_COMMAND__TYPE__AUTH_RESPONSE:
        break; /* auth is disabled: nothing was challenged */
    case PULSAR__PROTO__BASE_COMMAND__TYPE__CONNECT: {
        conn_close(c, "second CONNECT on an established connection");
        break;
    }
    default:
        if (cmd->type >= PULSAR__PROTO__BASE_COMMAND__TYPE__NEW_TXN &&
            cmd->type <= PULSAR__PROTO__BASE_COMMAND__TYPE__TOPIC_MIGRATED) {
            /* Transactions and topic watchers are not offered (CONNECTED does not advertise
             * them); a client sending them anyway gets no reply and times out on its side. */
            MG_WARN("conn", "[%" PRIu64 "] unsupported command %s (%d) ignored", c->id,
                    wire_command_name(cmd->type), (int)cmd->type);
        } else {
            char why[96];
            snprintf(why, sizeof why, "unexpected command %s (type %d) from a client",
                     wire_command_name(cmd->type), (int)cmd->type);
            conn_close(c, why);
        }
        break;
    }
}

/* ---- I/O callbacks --------------------------------------------------------------------- */

static void conn_process_input(struct conn *c)
{
    struct evbuffer *in = bufferevent_get_input(c->bev);
    conn_ref(c);
    for (int i = 0; i < CONN_MAX_FRAMES_PER_PASS && conn_open(c); i++) {
        if (conn_should_pause(c)) {
            conn_pause_read(c);
            break;
        }
        struct wire_frame f;
        memset(&f, 0, sizeof f);
        char err[160] = "";
        int rc = wire_frame_read(in, c->max_frame, &f, err, sizeof err);
        if (rc == 0)
            break;
        if (rc < 0) {
            char why[220];
            snprintf(why, sizeof why, "bad frame: %s", err[0] ? err : mg_strerror(rc));
            conn_close(c, why);
            break;
        }
        conn_dispatch(c, &f);
        c->frame_nul_field = NULL;
        wire_frame_clear(&f);
        if (i == CONN_MAX_FRAMES_PER_PASS - 1 && conn_open(c) && evbuffer_get_length(in) > 0)
            event_active(c->resume_ev, EV_READ, 0); /* let other connections run first */
    }
    conn_unref(c);
}

static void conn_read_cb(struct bufferevent *bev, void *arg)
{
    struct conn *c = arg;
    if (c->refusing) { /* read and drop what the refused client sends, so that closing */
        evbuffer_drain(bufferevent_get_input(bev), evbuffer_get_length(bufferevent_get_input(bev)));
        return; /* does not reset the connection before it read our ERROR */
    }
    conn_process_input(c);
}

static void conn_resume_cb(evutil_socket_t fd, short what, void *arg)
{
    (void)fd;
    (void)what;
    struct conn *c = arg;
    if (conn_open(c) && !c->read_paused)
        conn_process_input(c);
}

static void conn_write_cb(struct bufferevent *bev, void *arg)
{
    (void)bev;
    struct conn *c = arg;
    if (!conn_open(c))
        return;
    if (c->refusing) {
        if (!c->refuse_fin_sent && evbuffer_get_length(conn_out(c)) == 0) {
            c->refuse_fin_sent = true; /* ERROR flushed: FIN; close on the client's EOF */
            evutil_socket_t fd = bufferevent_getfd(c->bev);
            if (fd >= 0) /* a socket (an in-process pair has none) */
                shutdown(fd, SHUT_WR);
        }
        return;
    }
    if (c->shutting_down && evbuffer_get_length(conn_out(c)) == 0) {
        conn_close(c, NULL);
        return;
    }
    conn_ref(c);
    struct conn_consumer *cc, *tmp;
    TAILQ_FOREACH_SAFE(cc, &c->all_consumers, link, tmp)
    {
        if (cc->tc && conn_open(c))
            topic_consumer_resume(cc->tc);
    }
    conn_maybe_resume(c);
    conn_unref(c);
}

static void conn_event_cb(struct bufferevent *bev, short what, void *arg)
{
    (void)bev;
    struct conn *c = arg;
    if ((what & BEV_EVENT_EOF) || c->refusing)
        conn_close(c, NULL);
    else if (what & BEV_EVENT_ERROR)
        conn_close(c, evutil_socket_error_to_string(EVUTIL_SOCKET_ERROR()));
}

static void conn_keepalive_cb(evutil_socket_t fd, short what, void *arg)
{
    (void)fd;
    (void)what;
    struct conn *c = arg;
    if (!conn_open(c))
        return;
    c->ticks++;
    if (c->refusing) { /* the refused client did not close within the grace period */
        conn_close(c, NULL);
        return;
    }
    if (c->state == CONN_AWAIT_CONNECT) {
        conn_close(c, "handshake not completed within the keep-alive interval");
        return;
    }
    if (!c->received_since_tick) {
        conn_close(c, "keep-alive timeout: nothing received since the last ping");
        return;
    }
    c->received_since_tick = false;
    if (c->protocol_version >= 1)
        send_simple(c, PULSAR__PROTO__BASE_COMMAND__TYPE__PING);
}

struct conn *conn_new(const struct conn_env *env, struct bufferevent *bev, const char *peer,
                      uint64_t id)
{
    struct conn *c = mg_calloc(1, sizeof *c);
    const struct cfg *cfg = env->cfg;
    c->refs = 1; /* the creator's, dropped when the connection closes */
    c->id = id;
    c->env = env;
    c->state = CONN_AWAIT_CONNECT;
    c->max_frame = (uint32_t)cfg->max_message_size + WIRE_FRAME_PADDING;
    c->max_pending_publish =
        cfg->max_pending_publish_per_conn > 0 ? cfg->max_pending_publish_per_conn : 1000;
    c->max_outbound =
        (size_t)(cfg->connection_max_outbound_bytes > 0 ? cfg->connection_max_outbound_bytes
                                                        : 4 << 20);
    mg_map_init(&c->producers);
    mg_map_init(&c->consumers);
    TAILQ_INIT(&c->all_producers);
    TAILQ_INIT(&c->all_consumers);
    snprintf(c->peer, sizeof c->peer, "%s", peer ? peer : "");
    c->bev = bev;
    bufferevent_setcb(c->bev, conn_read_cb, conn_write_cb, conn_event_cb, c);
    /* Stop reading when a full maximum-size frame is buffered and not yet consumed. */
    bufferevent_setwatermark(c->bev, EV_READ, 0, c->max_frame + 4 + 65536);
    bufferevent_setwatermark(c->bev, EV_WRITE, c->max_outbound / 4, 0);
    bufferevent_enable(c->bev, EV_READ | EV_WRITE);
    c->resume_ev = event_new(env->base, -1, 0, conn_resume_cb, c);
    int ka = cfg->keep_alive_interval_seconds > 0 ? cfg->keep_alive_interval_seconds : 30;
    c->keepalive_ev = event_new(env->base, -1, EV_PERSIST, conn_keepalive_cb, c);
    struct timeval tv = {ka, 0};
    event_add(c->keepalive_ev, &tv);
    MG_DEBUG("conn", "[%" PRIu64 "] accepted %s", c->id, c->peer);
    return c;
}

struct conn *conn_accept(const struct conn_env *env, evutil_socket_t fd,
                         const struct sockaddr *addr, int socklen, uint64_t id)
{
    char peer[64] = "";
    if (addr && addr->sa_family == AF_INET && socklen >= (int)sizeof(struct sockaddr_in)) {
        const struct sockaddr_in *sin = (const struct sockaddr_in *)addr;
        char ip[INET_ADDRSTRLEN];
        inet_ntop(AF_INET, &sin->sin_addr, ip, sizeof ip);
        snprintf(peer, sizeof peer, "%s:%u", ip, ntohs(sin->sin_port));
    } else if (addr && addr->sa_family == AF_INET6) {
        const struct sockaddr_in6 *sin6 = (const struct sockaddr_in6 *)addr;
        char ip[INET6_ADDRSTRLEN];
        inet_ntop(AF_INET6, &sin6->sin6_addr, ip, sizeof ip);
        snprintf(peer, sizeof peer, "[%s]:%u", ip, ntohs(sin6->sin6_port));
    }
    int one = 1;
    setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    evutil_make_socket_nonblocking(fd);
    struct bufferevent *bev = bufferevent_socket_new(env->base, fd, BEV_OPT_CLOSE_ON_FREE);
    MG_ASSERT(bev);
    return conn_new(env, bev, peer, id);
}

void conn_close(struct conn *c, const char *reason)
{
    if (c->state == CONN_CLOSED)
        return;
    if (reason)
        MG_WARN("conn", "[%" PRIu64 "] %s closed: %s", c->id, c->peer, reason);
    else
        MG_DEBUG("conn", "[%" PRIu64 "] %s closed", c->id, c->peer);
    conn_set_state(c, CONN_CLOSED);
    conn_ref(c);
    /* Producers: stop accepting; pending publishes still complete (their receipts go
     * nowhere). Consumers: unacked messages go back to the subscription. */
    struct conn_producer *p, *ptmp;
    TAILQ_FOREACH_SAFE(p, &c->all_producers, link, ptmp)
    {
        producer_detach(p);
        producer_release(p);
    }
    struct conn_consumer *cc, *ctmp;
    TAILQ_FOREACH_SAFE(cc, &c->all_consumers, link, ctmp)
    {
        consumer_detach(cc, true);
        consumer_release(cc);
    }
    if (c->keepalive_ev) {
        event_free(c->keepalive_ev);
        c->keepalive_ev = NULL;
    }
    if (c->resume_ev) {
        event_free(c->resume_ev);
        c->resume_ev = NULL;
    }
    if (c->bev) {
        bufferevent_free(c->bev);
        c->bev = NULL;
    }
    if (c->env->closed)
        c->env->closed(c->env->data, c);
    conn_unref(c); /* the creator's reference */
    conn_unref(c);
}

#define CONN_REFUSE_GRACE_MS 1000

void conn_refuse(struct conn *c, int err, const char *message)
{
    if (!conn_open(c) || c->refusing)
        return;
    c->refusing = true;
    MG_DEBUG("conn", "[%" PRIu64 "] %s refused: %s", c->id, c->peer, message);
    /* As Pulsar: ERROR with request id -1, then close. */
    send_error(c, UINT64_MAX, err, message);
    bufferevent_setwatermark(c->bev, EV_WRITE, 0, 0); /* write_cb once flushed */
    struct timeval tv = {CONN_REFUSE_GRACE_MS / 1000, (CONN_REFUSE_GRACE_MS % 1000) * 1000};
    event_add(c->keepalive_ev, &tv); /* closes it if the client does not */
}

void conn_shutdown(struct conn *c)
{
    if (!conn_open(c))
        return;
    bufferevent_disable(c->bev, EV_READ);
    c->shutting_down = true;
    struct conn_producer *p, *ptmp;
    TAILQ_FOREACH_SAFE(p, &c->all_producers, link, ptmp)
    {
        if (p->attached && p->ready)
            send_close_producer(c, p->id);
    }
    struct conn_consumer *cc, *ctmp;
    TAILQ_FOREACH_SAFE(cc, &c->all_consumers, link, ctmp)
    {
        if (cc->attached && cc->ready)
            send_close_consumer(c, cc->id);
    }
    if (evbuffer_get_length(conn_out(c)) == 0)
        conn_close(c, NULL);
    else
        bufferevent_setwatermark(c->bev, EV_WRITE, 0, 0); /* write_cb closes once drained */
}
