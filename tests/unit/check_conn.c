/*
 * check_conn.c - one client connection, driven over an in-process bufferevent pair.
 *
 * Each test builds what a connection borrows (struct conn_env): the configuration, an event
 * loop, a real topic registry on the in-memory managed-ledger store (configured as svc_new
 * configures it: svc_ml_config, svc_topic_config) and a namespace module without a metadata
 * store (this broker owns every bundle). A client is one end of a bufferevent pair, held by
 * a peer of the test library (tl_pulsar.h); conn_new takes the other end. The test writes
 * frames through the peer, runs the loop until it is idle (no sleeps: nothing here waits on
 * a socket) and decodes the frames the connection wrote back, asserting their contents as
 * Pulsar defines them (docs/wire-pulsar.md §5, §6). Only the keep-alive test waits for the
 * loop's timer, with a deadline. A slow consumer's test runs over a pair of local sockets
 * with small buffers instead (client_new_socket), non-blocking passes of the loop counted
 * one by one, as the output then leaves the connection only when the loop writes it.
 *
 * White-box checks of the bounds (docs/wire-pulsar.md §5.1) read the connection's own
 * fields through conn_int.h.
 */
#include "config/cfg.h"
#include "conn/conn.h"
#include "conn/conn_int.h"
#include "lib/tl_bk.h"
#include "lib/tl_pulsar.h"
#include "lib/tl_svc.h"
#include "meta/meta.h"
#include "ml/ml.h"
#include "ns/ns.h"
#include "schema/schema.h"
#include "svc/svc.h"
#include "topic/topic.h"
#include "util/alloc.h"
#include "util/err.h"
#include "util/log.h"
#include "util/loop.h"
#include "wire/wire.h"

#include <arpa/inet.h>
#include <check.h>
#include <event2/buffer.h>
#include <event2/bufferevent.h>
#include <event2/event.h>
#include <inttypes.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/socket.h>
#include <time.h>

#define T(x) PULSAR__PROTO__BASE_COMMAND__TYPE__##x
#define MAX_CLIENTS 16
#define NO_ID UINT64_MAX /* an id the protocol writes as -1 */

struct client {
    struct tl_peer peer;        /* ours; peer.eof once the connection closed */
    struct bufferevent *server; /* the connection's end, owned by it; NULL once closed */
    struct conn *conn;          /* NULL once closed */
};

struct fixture {
    struct cfg cfg;
    struct event_base *base;
    struct mg_loop *loop;
    bool sim;   /* start() makes a simulated loop: time moves by mg_loop_advance */
    bool store; /* start() gives the namespace module an in-memory metadata store (fx.meta) */
    struct ml_factory *mlf;
    struct topic_registry *topics;
    struct ns *ns;
    struct conn_env env;
    struct client cl[MAX_CLIENTS];
    int n_cl;
    uint64_t next_id;
    struct meta_store *meta;      /* start_schemas: an in-memory store */
    struct sch_registry *schemas; /* start_schemas: the registry on it (env.schemas) */
};

static struct fixture fx;

/* ---- the fixture ------------------------------------------------------------------------- */

/* The connection closed (conn_env.closed): a pair does not tell its other end. */
static void on_closed(void *data, struct conn *c)
{
    struct fixture *f = data;
    for (int i = 0; i < f->n_cl; i++) {
        if (f->cl[i].conn == c) {
            f->cl[i].peer.eof = true;
            f->cl[i].conn = NULL;
            f->cl[i].server = NULL;
        }
    }
}

static void setup(void)
{
    mg_log_set_level(MG_LOG_ERROR);
    memset(&fx, 0, sizeof fx);
    cfg_init(&fx.cfg);
    tl_cfg_set(&fx.cfg, "advertisedAddress", "127.0.0.1");
    tl_cfg_set(&fx.cfg, "managedLedgerStore", "memory");
    tl_cfg_set(&fx.cfg, "maxMessageSize", "65536");
}

/* Build the environment from fx.cfg (tests change the configuration before). */
static void start(void)
{
    const struct cfg *cfg = &fx.cfg;
    fx.base = event_base_new();
    fx.loop = fx.sim ? mg_loop_new_sim(fx.base, 1000000, 1700000000000) : mg_loop_new(fx.base);
    struct ml_config mlc;
    svc_ml_config(cfg, &mlc);
    fx.mlf = ml_factory_new(fx.loop, "memory", &mlc);
    ck_assert_ptr_nonnull(fx.mlf);
    struct topic_config tc;
    svc_topic_config(cfg, &tc);
    fx.topics = topic_registry_new(fx.base, fx.mlf, &tc);
    if (fx.store) {
        struct meta_options o = {.url = "memory"};
        ck_assert_int_eq(meta_open(fx.loop, &o, &fx.meta), 0);
    }
    fx.ns = ns_new(fx.loop, cfg, fx.meta);
    ck_assert_int_eq(ns_load(fx.ns), 0);
    ns_start(fx.ns, fx.topics, fx.mlf, 6650, 8080);
    fx.env = (struct conn_env){
        .cfg = cfg,
        .loop = fx.loop,
        .topics = fx.topics,
        .ns = fx.ns,
        .closed = on_closed,
        .data = &fx,
    };
}

static void teardown(void)
{
    for (int i = 0; i < fx.n_cl; i++) {
        if (fx.cl[i].conn)
            conn_close(fx.cl[i].conn, NULL);
        tl_peer_close(&fx.cl[i].peer);
    }
    conn_iopool_free(fx.env.io); /* (after the closes: the connections go with it) */
    sch_registry_free(fx.schemas);
    if (fx.base) {
        ns_cancel(fx.ns);
        ns_stop(fx.ns);
        meta_close(fx.meta); /* after the namespace module's watches (fx.store) are gone */
        topic_registry_free(fx.topics);
        event_base_loop(fx.base, EVLOOP_NONBLOCK);
        ml_factory_free(fx.mlf);
        ns_free(fx.ns);
        mg_loop_free(fx.loop);
        event_base_free(fx.base);
    }
    cfg_fini(&fx.cfg);
}

/* Run the loop until nothing is left to do now (timers in the future wait). */
static void pump(void)
{
    tl_passes(fx.base, 1);
}

static struct client *client_new(void)
{
    ck_assert_int_lt(fx.n_cl, MAX_CLIENTS);
    struct bufferevent *pair[2];
    ck_assert_int_eq(
        bufferevent_pair_new(fx.base, BEV_OPT_CLOSE_ON_FREE | BEV_OPT_DEFER_CALLBACKS, pair), 0);
    struct client *cl = &fx.cl[fx.n_cl++];
    tl_peer_open_bev(&cl->peer, fx.base, pair[1]);
    cl->server = pair[0];
    cl->conn = conn_new(&fx.env, pair[0], "pair", ++fx.next_id);
    return cl;
}

/* A client over a connected pair of local stream sockets whose kernel buffers hold about
 * sockbuf bytes each way: as over TCP, the connection's output leaves it only when the loop
 * writes to the socket and the client made room, not at once as in a bufferevent pair. */
static struct client *client_new_socket(int sockbuf)
{
    ck_assert_int_lt(fx.n_cl, MAX_CLIENTS);
    int sv[2];
    ck_assert_int_eq(socketpair(AF_UNIX, SOCK_STREAM, 0, sv), 0);
    for (int i = 0; i < 2; i++) {
        ck_assert_int_eq(setsockopt(sv[i], SOL_SOCKET, SO_SNDBUF, &sockbuf, sizeof sockbuf), 0);
        ck_assert_int_eq(setsockopt(sv[i], SOL_SOCKET, SO_RCVBUF, &sockbuf, sizeof sockbuf), 0);
    }
    ck_assert_int_eq(evutil_make_socket_nonblocking(sv[0]), 0);
    struct client *cl = &fx.cl[fx.n_cl++];
    tl_peer_open(&cl->peer, fx.base, sv[1]);
    cl->server = bufferevent_socket_new(fx.base, sv[0], BEV_OPT_CLOSE_ON_FREE);
    ck_assert_ptr_nonnull(cl->server);
    cl->conn = conn_new(&fx.env, cl->server, "socket", ++fx.next_id);
    return cl;
}

/* ---- frames ------------------------------------------------------------------------------ */

static void send_buf(struct client *cl, struct evbuffer *b)
{
    ck_assert_int_eq(bufferevent_write_buffer(cl->peer.bev, b), 0);
    pump();
}

static void send_cmd(struct client *cl, wire_cmd *cmd)
{
    tl_peer_send(&cl->peer, cmd);
    pump();
}

/* Send cmd with every "@" of its packed bytes replaced by a NUL (protobuf-c packs C strings,
 * so a string holding a NUL is made after packing; the lengths do not change). */
static void send_cmd_nul(struct client *cl, wire_cmd *cmd)
{
    struct evbuffer *b = evbuffer_new();
    wire_write_command(b, cmd);
    size_t n = evbuffer_get_length(b);
    unsigned char *p = evbuffer_pullup(b, (ev_ssize_t)n);
    int patched = 0;
    for (size_t i = 0; i < n; i++)
        if (p[i] == '@') {
            p[i] = '\0';
            patched++;
        }
    ck_assert_int_gt(patched, 0);
    send_buf(cl, b);
    evbuffer_free(b);
}

/* Send sub as the command TYPE (field: its BaseCommand field) with send (send_cmd, or
 * send_cmd_nul). */
#define SEND_WITH(send, cl, TYPE, field, sub)                                                      \
    do {                                                                                           \
        wire_cmd cmd_;                                                                             \
        tl_cmd_set(cmd_, TYPE, field, sub);                                                        \
        send((cl), &cmd_);                                                                         \
    } while (0)
#define SEND(cl, TYPE, field, sub) SEND_WITH(send_cmd, cl, TYPE, field, sub)
#define SEND_NUL(cl, TYPE, field, sub) SEND_WITH(send_cmd_nul, cl, TYPE, field, sub)
/* Send a Command<Type> that names nothing but a consumer and a request. */
#define SEND_CONSUMER_REQ(cl, TYPE, Type, field, consumer_id_, request_id_)                        \
    do {                                                                                           \
        Pulsar__Proto__Command##Type m_ = PULSAR__PROTO__COMMAND_##TYPE##__INIT;                   \
        m_.consumer_id = (consumer_id_);                                                           \
        m_.request_id = (request_id_);                                                             \
        SEND(cl, TYPE, field, m_);                                                                 \
    } while (0)

/* The next frame must be of this type. */
static void expect(struct client *cl, int type, struct wire_frame *f)
{
    tl_peer_expect(&cl->peer, type, f);
}

/* The connection wrote nothing more (after running the loop until idle). */
static void expect_nothing(struct client *cl)
{
    pump();
    struct wire_frame f;
    memset(&f, 0, sizeof f);
    struct evbuffer *in = bufferevent_get_input(cl->peer.bev);
    if (evbuffer_get_length(in) > 0 && wire_frame_read(in, 1 << 24, &f, NULL, 0) == 1) {
        const char *name = wire_command_name(f.cmd->type);
        wire_frame_clear(&f);
        ck_abort_msg("expected nothing, got %s", name);
    }
    ck_assert_int_eq(evbuffer_get_length(in), 0);
}

static void expect_success(struct client *cl, uint64_t request_id)
{
    tl_expect_success(&cl->peer, request_id);
}

static void expect_error(struct client *cl, uint64_t request_id, int error, const char *message)
{
    tl_expect_error(&cl->peer, request_id, error, message);
}

static void expect_closed(struct client *cl)
{
    ck_assert_msg(tl_peer_wait_closed(&cl->peer), "the connection is still open");
}

/* ---- commands ------------------------------------------------------------------------------ */

/* CONNECT at version (< 0: none given) must be answered at want, with our maximum message
 * size. */
static void handshake_v(struct client *cl, int version, int want)
{
    struct wire_frame f;
    if (version >= 0) {
        tl_peer_handshake(&cl->peer, version, &f);
    } else {
        Pulsar__Proto__CommandConnect c = PULSAR__PROTO__COMMAND_CONNECT__INIT;
        c.client_version = "check";
        SEND(cl, CONNECT, connect, c);
        expect(cl, T(CONNECTED), &f);
    }
    ck_assert_str_eq(f.cmd->connected->server_version, "magnetar " PACKAGE_VERSION);
    ck_assert(f.cmd->connected->has_protocol_version);
    ck_assert_int_eq(f.cmd->connected->protocol_version, want);
    ck_assert(f.cmd->connected->has_max_message_size);
    ck_assert_int_eq(f.cmd->connected->max_message_size, 65536);
    wire_frame_clear(&f);
}

static struct client *connected(int version)
{
    struct client *cl = client_new();
    handshake_v(cl, version, version < WIRE_PROTOCOL_VERSION ? version : WIRE_PROTOCOL_VERSION);
    return cl;
}

static void send_ping(struct client *cl)
{
    tl_send_ping(&cl->peer);
    pump();
}

static void expect_pong(struct client *cl)
{
    struct wire_frame f;
    expect(cl, T(PONG), &f);
    wire_frame_clear(&f);
}

static void send_pong(struct client *cl)
{
    Pulsar__Proto__CommandPong p = PULSAR__PROTO__COMMAND_PONG__INIT;
    SEND(cl, PONG, pong, p);
}

/* PRODUCER; returns the type of the answer (the frame is checked and cleared). */
static int producer_v(struct client *cl, const char *topic, uint64_t producer_id,
                      uint64_t request_id, int access_mode)
{
    Pulsar__Proto__CommandProducer p = PULSAR__PROTO__COMMAND_PRODUCER__INIT;
    p.topic = (char *)topic;
    p.producer_id = producer_id;
    p.request_id = request_id;
    if (access_mode >= 0) {
        p.has_producer_access_mode = 1;
        p.producer_access_mode = (Pulsar__Proto__ProducerAccessMode)access_mode;
    }
    SEND(cl, PRODUCER, producer, p);
    struct wire_frame f;
    ck_assert_int_eq(tl_peer_next(&cl->peer, &f), 1);
    int type = (int)f.cmd->type;
    if (type == T(PRODUCER_SUCCESS)) {
        ck_assert_uint_eq(f.cmd->producer_success->request_id, request_id);
        ck_assert(strlen(f.cmd->producer_success->producer_name) > 0);
        ck_assert(f.cmd->producer_success->has_last_sequence_id);
        ck_assert_int_eq(f.cmd->producer_success->last_sequence_id, -1);
        ck_assert(f.cmd->producer_success->producer_ready);
    } else {
        ck_assert_int_eq(type, T(ERROR));
        ck_assert_uint_eq(f.cmd->error->request_id, request_id);
        /* put the error back for the caller: re-read it from a copy */
        type = -(int)f.cmd->error->error - 1;
    }
    wire_frame_clear(&f);
    return type;
}

static void producer(struct client *cl, const char *topic, uint64_t producer_id)
{
    ck_assert_int_eq(producer_v(cl, topic, producer_id, 1000 + producer_id, -1),
                     T(PRODUCER_SUCCESS));
}

struct msg_opts {
    const char *key;               /* partition_key, or NULL */
    const uint8_t *schema_version; /* 8 bytes, or NULL */
    int batch;                     /* num_messages_in_batch when > 0 */
    uint64_t publish_time;         /* 0: 1000 + seq */
};

static void write_send(struct evbuffer *b, uint64_t producer_id, uint64_t seq, const char *payload,
                       const struct msg_opts *o)
{
    Pulsar__Proto__MessageMetadata md;
    tl_pulsar_md(&md, "p", seq, o && o->publish_time ? o->publish_time : 1000 + seq);
    if (o && o->key)
        md.partition_key = (char *)o->key;
    if (o && o->schema_version) {
        md.has_schema_version = 1;
        md.schema_version.data = (uint8_t *)o->schema_version;
        md.schema_version.len = 8;
    }
    if (o && o->batch > 0) {
        md.has_num_messages_in_batch = 1;
        md.num_messages_in_batch = o->batch;
    }
    Pulsar__Proto__CommandSend s = PULSAR__PROTO__COMMAND_SEND__INIT;
    s.producer_id = producer_id;
    s.sequence_id = seq;
    wire_cmd cmd;
    tl_cmd_set(cmd, SEND, send, s);
    wire_write_send(b, &cmd, &md, payload, strlen(payload));
}

static void send_msg(struct client *cl, uint64_t producer_id, uint64_t seq, const char *payload,
                     const struct msg_opts *o, bool corrupt)
{
    struct evbuffer *b = evbuffer_new();
    write_send(b, producer_id, seq, payload, o);
    if (corrupt) { /* flip the last payload byte: the checksum no longer matches */
        size_t n = evbuffer_get_length(b);
        uint8_t *all = evbuffer_pullup(b, -1);
        all[n - 1] ^= 0xff;
    }
    send_buf(cl, b);
    evbuffer_free(b);
}

static struct ml_position expect_receipt(struct client *cl, uint64_t producer_id, uint64_t seq)
{
    struct wire_frame f;
    expect(cl, T(SEND_RECEIPT), &f);
    Pulsar__Proto__CommandSendReceipt *r = f.cmd->send_receipt;
    ck_assert_uint_eq(r->producer_id, producer_id);
    ck_assert_uint_eq(r->sequence_id, seq);
    ck_assert_ptr_nonnull(r->message_id);
    struct ml_position pos = {(int64_t)r->message_id->ledgerid, (int64_t)r->message_id->entryid};
    ck_assert_int_ge(pos.ledger, 0);
    ck_assert_int_ge(pos.entry, 0);
    wire_frame_clear(&f);
    return pos;
}

/* Publish one message and wait for its receipt. */
static struct ml_position publish(struct client *cl, uint64_t producer_id, uint64_t seq,
                                  const struct msg_opts *o)
{
    char payload[32];
    snprintf(payload, sizeof payload, "message-%d", (int)seq);
    send_msg(cl, producer_id, seq, payload, o, false);
    return expect_receipt(cl, producer_id, seq);
}

/* Publish sequence ids first..last with producer_id, each receipt awaited; their positions
 * into r[seq] when r is not NULL. */
static void publish_range(struct client *cl, uint64_t producer_id, uint64_t first, uint64_t last,
                          struct ml_position *r)
{
    for (uint64_t seq = first; seq <= last; seq++) {
        struct ml_position pos = publish(cl, producer_id, seq, NULL);
        if (r)
            r[seq] = pos;
    }
}

/* A started broker and a connected client whose producer 1 on topic published sequence ids
 * 0..last (positions into r as publish_range). */
static struct client *published(const char *topic, uint64_t last, struct ml_position *r)
{
    start();
    struct client *cl = connected(21);
    producer(cl, topic, 1);
    publish_range(cl, 1, 0, last, r);
    return cl;
}

static void subscribe_req(struct client *cl, const char *topic, const char *sub,
                          uint64_t consumer_id, uint64_t request_id, const struct tl_sub_opts *o)
{
    tl_send_subscribe(&cl->peer, topic, sub, consumer_id, request_id, o);
    pump();
}

static void subscribe(struct client *cl, const char *topic, const char *sub, uint64_t consumer_id,
                      const struct tl_sub_opts *o)
{
    subscribe_req(cl, topic, sub, consumer_id, 2000 + consumer_id, o);
    expect_success(cl, 2000 + consumer_id);
}

static void flow(struct client *cl, uint64_t consumer_id, uint32_t permits)
{
    tl_send_flow(&cl->peer, consumer_id, permits);
    pump();
}

/* A MESSAGE as the client sees it. */
struct got {
    uint64_t consumer_id;
    struct ml_position pos;
    int32_t partition;
    uint32_t redelivery_count;
    size_t n_ack_set;
    int64_t ack_set0;
    uint64_t seq;          /* from the entry's MessageMetadata */
    int32_t num_messages;  /* likewise */
    uint64_t publish_time; /* likewise */
};

static struct got expect_message(struct client *cl, uint64_t consumer_id)
{
    struct wire_frame f;
    expect(cl, T(MESSAGE), &f);
    Pulsar__Proto__CommandMessage *m = f.cmd->message;
    if (consumer_id != NO_ID)
        ck_assert_uint_eq(m->consumer_id, consumer_id);
    ck_assert(f.checksum_ok);
    struct got g = {
        .consumer_id = m->consumer_id,
        .pos = {(int64_t)m->message_id->ledgerid, (int64_t)m->message_id->entryid},
        .partition = m->message_id->has_partition ? m->message_id->partition : -2,
        .redelivery_count = m->has_redelivery_count ? m->redelivery_count : 0,
        .n_ack_set = m->n_ack_set,
        .ack_set0 = m->n_ack_set ? m->ack_set[0] : 0,
    };
    struct wire_msg_info info;
    ck_assert_int_eq(wire_entry_parse(f.payload, &info), 0);
    g.seq = info.sequence_id;
    g.num_messages = info.num_messages;
    g.publish_time = info.publish_time;
    wire_frame_clear(&f);
    return g;
}

/* A MESSAGE for any consumer of the connection. */
static struct got expect_message_any(struct client *cl)
{
    return expect_message(cl, NO_ID);
}

/* Send cmd without running the loop (the caller counts its turns). */
static void send_cmd_queued(struct client *cl, wire_cmd *cmd)
{
    tl_peer_send(&cl->peer, cmd);
}

/* ACK of one position, sent with send (send_cmd, or send_cmd_queued). */
static void ack_with(void (*send)(struct client *, wire_cmd *), struct client *cl,
                     uint64_t consumer_id, struct ml_position pos, bool cumulative,
                     const int64_t *ack_set, int n_words, int32_t batch_size, uint64_t request_id)
{
    Pulsar__Proto__MessageIdData id = tl_msg_id((uint64_t)pos.ledger, (uint64_t)pos.entry);
    if (ack_set) {
        id.n_ack_set = (size_t)n_words;
        id.ack_set = (int64_t *)ack_set;
    }
    if (batch_size > 0) {
        id.has_batch_size = 1;
        id.batch_size = batch_size;
    }
    Pulsar__Proto__MessageIdData *ids[1] = {&id};
    Pulsar__Proto__CommandAck a = PULSAR__PROTO__COMMAND_ACK__INIT;
    a.consumer_id = consumer_id;
    a.ack_type = cumulative ? PULSAR__PROTO__COMMAND_ACK__ACK_TYPE__Cumulative
                            : PULSAR__PROTO__COMMAND_ACK__ACK_TYPE__Individual;
    a.n_message_id = 1;
    a.message_id = ids;
    if (request_id != NO_ID) {
        a.has_request_id = 1;
        a.request_id = request_id;
    }
    SEND_WITH(send, cl, ACK, ack, a);
}

static void ack(struct client *cl, uint64_t consumer_id, struct ml_position pos, bool cumulative,
                const int64_t *ack_set, int n_words, int32_t batch_size, uint64_t request_id)
{
    ack_with(send_cmd, cl, consumer_id, pos, cumulative, ack_set, n_words, batch_size, request_id);
}

/* ACK_RESPONSE for consumer_id and request_id; ok, or error with message. */
static void expect_ack_response(struct client *cl, uint64_t consumer_id, uint64_t request_id,
                                int error, const char *message)
{
    struct wire_frame f;
    expect(cl, T(ACK_RESPONSE), &f);
    const Pulsar__Proto__CommandAckResponse *r = f.cmd->ackresponse;
    ck_assert_uint_eq(r->consumer_id, consumer_id);
    ck_assert(r->has_request_id);
    ck_assert_uint_eq(r->request_id, request_id);
    ck_assert_int_eq(r->has_error, message != NULL);
    if (message) {
        ck_assert_int_eq(r->error, error);
        ck_assert_str_eq(r->message, message);
    }
    wire_frame_clear(&f);
}

static void expect_ack_ok(struct client *cl, uint64_t consumer_id, uint64_t request_id)
{
    expect_ack_response(cl, consumer_id, request_id, 0, NULL);
}

static void redeliver(struct client *cl, uint64_t consumer_id)
{
    Pulsar__Proto__CommandRedeliverUnacknowledgedMessages r =
        PULSAR__PROTO__COMMAND_REDELIVER_UNACKNOWLEDGED_MESSAGES__INIT;
    r.consumer_id = consumer_id;
    SEND(cl, REDELIVER_UNACKNOWLEDGED_MESSAGES, redeliverunacknowledgedmessages, r);
}

static void close_consumer(struct client *cl, uint64_t consumer_id, uint64_t request_id)
{
    SEND_CONSUMER_REQ(cl, CLOSE_CONSUMER, CloseConsumer, close_consumer, consumer_id, request_id);
}

static void expect_close_consumer(struct client *cl, uint64_t consumer_id)
{
    struct wire_frame f;
    expect(cl, T(CLOSE_CONSUMER), &f);
    ck_assert_uint_eq(f.cmd->close_consumer->consumer_id, consumer_id);
    wire_frame_clear(&f);
}

static void expect_active(struct client *cl, uint64_t consumer_id, bool active)
{
    struct wire_frame f;
    expect(cl, T(ACTIVE_CONSUMER_CHANGE), &f);
    ck_assert_uint_eq(f.cmd->active_consumer_change->consumer_id, consumer_id);
    ck_assert(f.cmd->active_consumer_change->has_is_active);
    ck_assert_int_eq(f.cmd->active_consumer_change->is_active, active);
    wire_frame_clear(&f);
}

/* The first subscription of a loaded topic. */
static void first_sub(const char *topic, struct topic_sub_stats *st)
{
    size_t pos = 0;
    ck_assert(topic_sub_stats_next(topic_find(fx.topics, topic), &pos, st));
}

/* Does subscription sub of a loaded topic exist? */
static bool sub_exists(const char *topic, const char *sub)
{
    struct topic *t = topic_find(fx.topics, topic);
    ck_assert_ptr_nonnull(t);
    struct topic_sub_stats st;
    size_t pos = 0;
    while (topic_sub_stats_next(t, &pos, &st))
        if (strcmp(st.name, sub) == 0)
            return true;
    return false;
}

/* LOOKUP_RESPONSE for request_id: Failed with error. */
static void expect_lookup_failed(struct client *cl, uint64_t request_id, int error)
{
    struct wire_frame f;
    expect(cl, T(LOOKUP_RESPONSE), &f);
    const Pulsar__Proto__CommandLookupTopicResponse *r = f.cmd->lookuptopicresponse;
    ck_assert_uint_eq(r->request_id, request_id);
    ck_assert_int_eq(r->response,
                     PULSAR__PROTO__COMMAND_LOOKUP_TOPIC_RESPONSE__LOOKUP_TYPE__Failed);
    ck_assert(r->has_error);
    ck_assert_int_eq(r->error, error);
    wire_frame_clear(&f);
}

static void partitioned_metadata(struct client *cl, const char *topic, uint64_t request_id)
{
    Pulsar__Proto__CommandPartitionedTopicMetadata pm =
        PULSAR__PROTO__COMMAND_PARTITIONED_TOPIC_METADATA__INIT;
    pm.topic = (char *)topic;
    pm.request_id = request_id;
    SEND(cl, PARTITIONED_METADATA, partitionmetadata, pm);
}

/* PARTITIONED_METADATA_RESPONSE for request_id: Success with n partitions, or (n < 0)
 * Failed with error. */
static void expect_partitions(struct client *cl, uint64_t request_id, int n, int error)
{
    struct wire_frame f;
    expect(cl, T(PARTITIONED_METADATA_RESPONSE), &f);
    const Pulsar__Proto__CommandPartitionedTopicMetadataResponse *r =
        f.cmd->partitionmetadataresponse;
    ck_assert_uint_eq(r->request_id, request_id);
    ck_assert(r->has_response);
    if (n >= 0) {
        ck_assert_int_eq(
            r->response,
            PULSAR__PROTO__COMMAND_PARTITIONED_TOPIC_METADATA_RESPONSE__LOOKUP_TYPE__Success);
        ck_assert_int_eq(r->partitions, n);
    } else {
        ck_assert_int_eq(
            r->response,
            PULSAR__PROTO__COMMAND_PARTITIONED_TOPIC_METADATA_RESPONSE__LOOKUP_TYPE__Failed);
        ck_assert(r->has_error);
        ck_assert_int_eq(r->error, error);
    }
    wire_frame_clear(&f);
}

#define TOPIC(local) "persistent://public/default/" local
#define EXCLUSIVE PULSAR__PROTO__COMMAND_SUBSCRIBE__SUB_TYPE__Exclusive
#define SHARED PULSAR__PROTO__COMMAND_SUBSCRIBE__SUB_TYPE__Shared
#define FAILOVER PULSAR__PROTO__COMMAND_SUBSCRIBE__SUB_TYPE__Failover
#define KEY_SHARED PULSAR__PROTO__COMMAND_SUBSCRIBE__SUB_TYPE__Key_Shared
#define NP_TOPIC(x) "non-persistent://public/default/" x
#define SE(name) PULSAR__PROTO__SERVER_ERROR__##name

/* ---- connection ---------------------------------------------------------------------------- */

START_TEST(test_handshake_and_ping)
{
    start();
    struct client *cl = connected(17);
    send_ping(cl);
    expect_pong(cl);
    expect_nothing(cl);
    ck_assert(!cl->peer.eof);
}
END_TEST

/* CONNECTED answers min(client, 21); a client that sends no version is at 0. The version
 * gates what the broker sends: ACTIVE_CONSUMER_CHANGE only from 12 on. */
START_TEST(test_protocol_versions)
{
    start();
    static const int versions[] = {18, 19, 20, 21, 22, 30};
    for (size_t i = 0; i < sizeof versions / sizeof *versions; i++) {
        struct client *cl = client_new();
        handshake_v(cl, versions[i], versions[i] < 21 ? versions[i] : 21);
    }
    struct client *none = client_new();
    handshake_v(none, -1, 0);
    /* Failover subscriptions tell a v12+ consumer whether it is active, not an older one */
    struct client *old = connected(11), *cur = connected(21);
    struct tl_sub_opts fo = {.type = FAILOVER};
    subscribe(old, TOPIC("versions"), "old", 1, &fo);
    expect_nothing(old);
    subscribe(cur, TOPIC("versions"), "cur", 1, &fo);
    expect_active(cur, 1, true);
    expect_nothing(cur);
}
END_TEST

START_TEST(test_first_frame_must_be_connect)
{
    start();
    struct client *cl = client_new();
    send_ping(cl);
    expect_closed(cl);
    /* and a second CONNECT on an established connection closes it too */
    struct client *twice = connected(17);
    Pulsar__Proto__CommandConnect c = PULSAR__PROTO__COMMAND_CONNECT__INIT;
    c.client_version = "again";
    SEND(twice, CONNECT, connect, c);
    expect_closed(twice);
}
END_TEST

START_TEST(test_garbage_closes_only_that_connection)
{
    start();
    struct client *good = connected(17);
    struct client *bad = client_new();
    struct evbuffer *g = evbuffer_new();
    const char junk[] = "\x00\x00\x00\x10GET / HTTP/1.1\r\n\r\n";
    evbuffer_add(g, junk, sizeof junk - 1);
    send_buf(bad, g);
    expect_closed(bad);
    struct client *big = client_new(); /* oversized declared length */
    uint8_t hdr[4] = {0x7f, 0xff, 0xff, 0xff};
    evbuffer_add(g, hdr, 4);
    send_buf(big, g);
    expect_closed(big);
    evbuffer_free(g);
    send_ping(good);
    expect_pong(good);
    ck_assert(!good->peer.eof);
}
END_TEST

/* A client that stops answering PING is closed: every keepAliveIntervalSeconds the broker
 * PINGs a connection that sent something since the last tick and closes one that did not.
 * A connection that never finished its handshake is closed at the first tick. Time is the
 * simulated loop's: each step lands one millisecond before and on a tick. */
START_TEST(test_keepalive_closes_silent_client)
{
    tl_cfg_set(&fx.cfg, "keepAliveIntervalSeconds", "2");
    fx.sim = true;
    start();
    struct client *silent = client_new(); /* never sends CONNECT */
    struct client *cl = connected(17);
    struct wire_frame f;

    mg_loop_advance(fx.loop, 1999);
    expect_nothing(cl);
    ck_assert(!silent->peer.eof);
    mg_loop_advance(fx.loop, 1); /* first tick: CONNECT came since the start */
    pump();
    ck_assert_msg(silent->peer.eof, "the connection without a handshake is still open");
    expect(cl, T(PING), &f);
    wire_frame_clear(&f);
    send_pong(cl);

    mg_loop_advance(fx.loop, 2000); /* second tick: the PONG came since the first */
    pump();
    expect(cl, T(PING), &f);
    wire_frame_clear(&f);
    ck_assert(!cl->peer.eof);

    mg_loop_advance(fx.loop, 1999); /* this PING is not answered */
    expect_nothing(cl);
    ck_assert(!cl->peer.eof);
    mg_loop_advance(fx.loop, 1);
    pump();
    ck_assert_msg(cl->peer.eof, "the client that did not answer PING is still open");
}
END_TEST

/* ---- backpressure -------------------------------------------------------------------------- */

/* maxPendingPublishRequestsPerConnection: with more SENDs buffered than the bound, the
 * connection takes SENDs only while fewer publishes than the bound wait for their receipt,
 * pauses reading with the rest still buffered, and resumes as receipts go out; every
 * receipt arrives, in order. The store is made slow by a ledger rollover every 3 entries:
 * appends wait for it across loop turns, so the test sees the publishes in flight between
 * two turns. */
START_TEST(test_pending_publishes_bounded)
{
    enum { MAX = 4, N = 23 };
    tl_cfg_set(&fx.cfg, "maxPendingPublishRequestsPerConnection", "4");
    tl_cfg_set(&fx.cfg, "managedLedgerMaxEntriesPerLedger", "3");
    tl_cfg_set(&fx.cfg, "managedLedgerMinLedgerRolloverTimeMinutes", "0"); /* roll at once */
    start();
    struct client *cl = connected(21);
    producer(cl, TOPIC("pending"), 1);
    struct evbuffer *b = evbuffer_new();
    for (int i = 0; i < N; i++)
        write_send(b, 1, (uint64_t)i, "payload", NULL);
    ck_assert_int_eq(bufferevent_write_buffer(cl->peer.bev, b), 0);
    evbuffer_free(b);
    struct evbuffer *server_in = bufferevent_get_input(cl->server);
    int max_seen = 0, paused_full = 0, receipts = 0;
    for (int turn = 0; turn < 1000 && receipts < N; turn++) {
        event_base_loop(fx.base, EVLOOP_ONCE | EVLOOP_NONBLOCK);
        struct conn *c = cl->conn;
        ck_assert_ptr_nonnull(c);
        if (c->pending_publish > max_seen)
            max_seen = c->pending_publish;
        if (c->read_paused && c->pending_publish == MAX && evbuffer_get_length(server_in) > 0)
            paused_full++;
        struct wire_frame f;
        while (wire_frame_read(bufferevent_get_input(cl->peer.bev), 1 << 24, &f, NULL, 0) == 1) {
            ck_assert_int_eq(f.cmd->type, T(SEND_RECEIPT));
            ck_assert_uint_eq(f.cmd->send_receipt->sequence_id, (uint64_t)receipts);
            receipts++;
            wire_frame_clear(&f);
        }
    }
    ck_assert_int_eq(receipts, N);
    ck_assert_int_le(max_seen, MAX);
    ck_assert_int_eq(max_seen, MAX);
    ck_assert_msg(paused_full > 0, "reading never paused at the bound with SENDs waiting");
    ck_assert_int_eq(cl->conn->pending_publish, 0);
    ck_assert(!cl->conn->read_paused);
}
END_TEST

/* connectionMaxOutboundBytes: a client that does not read gets nothing more dispatched once
 * the connection's queued output is above half the bound (at most one entry beyond it), and
 * its commands are still read then; a client that keeps sending commands without reading
 * their answers stops being read once the output is above the bound (at most one answer
 * beyond it), with the rest of its commands left unread. Once the client reads again
 * everything comes, in order. */
START_TEST(test_outbound_bytes_bounded)
{
    enum { N = 100, BOUND = 16384, PINGS = 4000 };
    tl_cfg_set(&fx.cfg, "connectionMaxOutboundBytes", "16384");
    start();
    struct client *cons = connected(21), *prod = connected(21);
    subscribe(cons, TOPIC("outbound"), "s", 1, NULL);
    flow(cons, 1, 1000);
    bufferevent_disable(cons->peer.bev, EV_READ); /* the client stops reading */
    producer(prod, TOPIC("outbound"), 1);
    char payload[1001];
    memset(payload, 'x', 1000);
    payload[1000] = '\0';
    for (int i = 0; i < N; i++) {
        send_msg(prod, 1, (uint64_t)i, payload, NULL, false);
        expect_receipt(prod, 1, (uint64_t)i);
    }
    pump();
    struct evbuffer *out = bufferevent_get_output(cons->server);
    struct evbuffer *in = bufferevent_get_input(cons->server);
    size_t queued = evbuffer_get_length(out);
    ck_assert_uint_gt(queued, BOUND / 2);
    ck_assert_uint_lt(queued, BOUND / 2 + 2000); /* one MESSAGE of 1000 bytes beyond */
    /* a PING is still answered: the client's commands are read below the bound */
    send_ping(cons);
    ck_assert(!cons->conn->read_paused);
    ck_assert_uint_eq(evbuffer_get_length(in), 0);
    size_t pong = evbuffer_get_length(out) - queued;
    ck_assert_uint_gt(pong, 0);
    /* PINGs without reading the PONGs: read until the output is above the bound */
    struct evbuffer *b = evbuffer_new();
    Pulsar__Proto__CommandPing p = PULSAR__PROTO__COMMAND_PING__INIT;
    wire_cmd ping;
    tl_cmd_set(ping, PING, ping, p);
    for (int i = 0; i < PINGS; i++)
        wire_write_command(b, &ping);
    ck_assert_uint_gt(PINGS * pong, 2 * BOUND); /* more than the bound can hold */
    ck_assert_int_eq(bufferevent_write_buffer(cons->peer.bev, b), 0);
    evbuffer_free(b);
    for (int k = 0; k < PINGS && !cons->conn->read_paused; k++)
        pump();
    ck_assert(cons->conn->read_paused);
    size_t held = evbuffer_get_length(out);
    ck_assert_uint_gt(held, BOUND);
    ck_assert_uint_le(held, BOUND + pong);
    ck_assert_uint_gt(evbuffer_get_length(in), 0); /* PINGs left unread */
    pump();
    ck_assert_uint_eq(evbuffer_get_length(out), held); /* nothing more while paused */
    /* the client reads again: every message, in order, and every PONG */
    bufferevent_enable(cons->peer.bev, EV_READ);
    int got = 0, pongs = 0;
    for (int k = 0; k < N + PINGS + 1 && (got < N || pongs < PINGS + 1); k++) {
        struct wire_frame f;
        ck_assert_int_eq(tl_peer_next(&cons->peer, &f), 1);
        if (f.cmd->type == T(PONG)) {
            pongs++;
        } else {
            ck_assert_int_eq(f.cmd->type, T(MESSAGE));
            struct wire_msg_info info;
            ck_assert_int_eq(wire_entry_parse(f.payload, &info), 0);
            ck_assert_uint_eq(info.sequence_id, (uint64_t)got);
            got++;
        }
        wire_frame_clear(&f);
    }
    ck_assert_int_eq(got, N);
    ck_assert_int_eq(pongs, PINGS + 1);
    ck_assert(!cons->conn->read_paused);
}
END_TEST

/* A client that reads slowly: per loop turn it takes whole frames until it took at least
 * budget bytes, and acknowledges each MESSAGE at once, as Pulsar's clients with ack receipts
 * do (an individual ACK whose request id is the message's sequence id + ACK_REQ). */
#define ACK_REQ 100000
struct slow_client {
    struct client *cl;
    uint64_t consumer_id;
    int got;             /* MESSAGEs taken, in sequence order */
    int sent;            /* ACKs sent: for the messages of sequence ids 0..sent-1 */
    int answered;        /* ACK_RESPONSEs taken, in request order */
    int *acked_turn;     /* [seq]: the turn its ACK was sent */
    int *acked_got;      /* [seq]: MESSAGEs taken when its ACK was sent */
    int max_msgs;        /* most MESSAGEs taken while an ACK waited for its answer */
    int max_wait;        /* most turns an ACK waited for its ACK_RESPONSE */
    int got_at_max_wait; /* MESSAGEs taken when that one was answered */
};

/* ACK (individual) of the next message not acknowledged yet, at pos. */
static void slow_ack(struct slow_client *sc, struct ml_position pos, int turn)
{
    sc->acked_turn[sc->sent] = turn;
    sc->acked_got[sc->sent] = sc->got;
    ack_with(send_cmd_queued, sc->cl, sc->consumer_id, pos, false, NULL, 0, 0,
             ACK_REQ + (uint64_t)sc->sent);
    sc->sent++;
}

static void slow_read(struct slow_client *sc, size_t budget, int turn)
{
    struct evbuffer *in = bufferevent_get_input(sc->cl->peer.bev);
    size_t taken = 0;
    while (taken < budget) {
        /* counted from the frame's size, as the buffer may be refilled while it is drained */
        uint32_t size;
        if (evbuffer_copyout(in, &size, sizeof size) != (ev_ssize_t)sizeof size)
            break;
        struct wire_frame f;
        if (wire_frame_read(in, 1 << 24, &f, NULL, 0) != 1)
            break;
        taken += sizeof size + ntohl(size);
        if (f.cmd->type == T(ACK_RESPONSE)) {
            const Pulsar__Proto__CommandAckResponse *r = f.cmd->ackresponse;
            ck_assert_uint_eq(r->consumer_id, sc->consumer_id);
            ck_assert_uint_eq(r->request_id, ACK_REQ + (uint64_t)sc->answered);
            ck_assert(!r->has_error);
            int msgs = sc->got - sc->acked_got[sc->answered];
            if (msgs > sc->max_msgs)
                sc->max_msgs = msgs;
            int wait = turn - sc->acked_turn[sc->answered++];
            if (wait > sc->max_wait) {
                sc->max_wait = wait;
                sc->got_at_max_wait = sc->got;
            }
            wire_frame_clear(&f);
            continue;
        }
        ck_assert_int_eq(f.cmd->type, T(MESSAGE));
        ck_assert_uint_eq(f.cmd->message->consumer_id, sc->consumer_id);
        struct wire_msg_info info;
        ck_assert_int_eq(wire_entry_parse(f.payload, &info), 0);
        ck_assert_uint_eq(info.sequence_id, (uint64_t)sc->got);
        struct ml_position pos = {(int64_t)f.cmd->message->message_id->ledgerid,
                                  (int64_t)f.cmd->message->message_id->entryid};
        wire_frame_clear(&f);
        if (sc->got++ == sc->sent)
            slow_ack(sc, pos, turn);
    }
}

/* The end of a slow client's run: every one of the n MESSAGEs taken and ACK answered, no ACK
 * waited for its answer more than max_msgs MESSAGEs or max_turns turns, and the subscription
 * of topic has nothing left. */
static void slow_client_done(const struct slow_client *sc, int n, int max_msgs, int max_turns,
                             const char *topic)
{
    ck_assert_int_eq(sc->got, n);
    ck_assert_int_eq(sc->answered, n);
    ck_assert_msg(sc->max_msgs <= max_msgs && sc->max_wait <= max_turns,
                  "an ACK waited %d turns (bound %d) and %d MESSAGEs (bound %d) for its answer, "
                  "answered after %d of %d messages",
                  sc->max_wait, max_turns, sc->max_msgs, max_msgs, sc->got_at_max_wait, n);
    struct topic_sub_stats st;
    first_sub(topic, &st);
    ck_assert_int_eq(st.backlog, 0);
}

/* A consumer whose client reads slowly (at most CHUNK bytes a loop turn, through small socket
 * buffers) and acknowledges every message, with permits for a backlog many times
 * connectionMaxOutboundBytes. The client first lets the output fill above the bound without
 * reading and sends an ACK then: reading may pause there. From then on it reads and
 * acknowledges each message as it comes: the connection must go on reading its ACKs while
 * the backlog is dispatched (the dispatch refilling the output the client drained must not
 * keep it from reading its commands). An ACK's answer comes behind at most the output queued
 * when the ACK was read (the bound and one MESSAGE) and what the two socket buffers hold
 * (the kernel doubles what is asked): the client must not take more MESSAGEs than that while
 * an ACK waits, nor wait more than MAX_TURNS loop turns (a small part of the turns the
 * backlog takes). Every MESSAGE comes, in order, and the subscription ends with everything
 * acknowledged. */
START_TEST(test_slow_consumer_acks_answered)
{
    enum {
        N = 400,
        SIZE = 1000,
        CHUNK = 4096,
        BOUND = 16384,
        SOCKBUF = 4096,
        MAX_TURNS = 50,
        STILL = 3
    };
    tl_cfg_set(&fx.cfg, "connectionMaxOutboundBytes", "16384");
    start();
    struct client *cons = client_new_socket(SOCKBUF), *prod = connected(21);
    handshake_v(cons, 21, 21);
    subscribe(cons, TOPIC("slow"), "s", 1, NULL);
    producer(prod, TOPIC("slow"), 1);
    char payload[SIZE + 1];
    memset(payload, 'y', SIZE);
    payload[SIZE] = '\0';
    struct ml_position first = {0, 0};
    for (int i = 0; i < N; i++) {
        send_msg(prod, 1, (uint64_t)i, payload, NULL, false);
        struct ml_position pos = expect_receipt(prod, 1, (uint64_t)i);
        if (i == 0)
            first = pos;
    }
    /* room for a whole MESSAGE beyond CHUNK: the client only takes whole frames */
    bufferevent_setwatermark(cons->peer.bev, EV_READ, 0, CHUNK + SIZE + 512);
    int acked_turn[N], acked_got[N];
    struct slow_client sc = {
        .cl = cons, .consumer_id = 1, .acked_turn = acked_turn, .acked_got = acked_got};
    tl_send_flow(&cons->peer, 1, 2 * N);
    struct evbuffer *out = bufferevent_get_output(cons->server);
    /* until the dispatch stopped: the output did not change for STILL turns */
    int turn = 0, still = 0;
    for (size_t last = 0; turn < N && still < STILL; turn++) {
        event_base_loop(fx.base, EVLOOP_ONCE | EVLOOP_NONBLOCK);
        still = evbuffer_get_length(out) == last ? still + 1 : 0;
        last = evbuffer_get_length(out);
    }
    ck_assert_int_eq(still, STILL);
    ck_assert_int_eq(sc.got, 0);
    slow_ack(&sc, first, turn);
    int max_msgs = (BOUND + SIZE + 2 * 2 * SOCKBUF) / SIZE + 1;
    for (; turn < 200 * N && sc.answered < N; turn++) {
        event_base_loop(fx.base, EVLOOP_ONCE | EVLOOP_NONBLOCK);
        slow_read(&sc, CHUNK, turn);
    }
    slow_client_done(&sc, N, max_msgs, MAX_TURNS, TOPIC("slow"));
}
END_TEST

/* The client of a pair takes at most n more bytes off the connection: its reading is off
 * otherwise, so what the connection wrote stays in its output as with a slow reader's socket. */
static void pull(struct client *cl, size_t n)
{
    struct bufferevent *bev = cl->peer.bev;
    bufferevent_setwatermark(bev, EV_READ, 0, evbuffer_get_length(bufferevent_get_input(bev)) + n);
    bufferevent_enable(bev, EV_READ);
    bufferevent_disable(bev, EV_READ);
}

/* The same with entries larger than connectionMaxOutboundBytes, over a pair the client pulls
 * CHUNK bytes a turn from: each dispatched entry takes the output over the bound, so reading
 * pauses while the client takes it; when the output drained, the connection must read what
 * the client sent meanwhile before its consumer refills the output (else reading pauses
 * again at once, until the backlog is out). An ACK's answer comes behind at most the output
 * queued when the ACK was read (the bound and one MESSAGE): the client must not take more
 * MESSAGEs than that while an ACK waits, nor wait more turns than it takes twice over. */
START_TEST(test_slow_consumer_big_entries_acks_answered)
{
    enum { N = 40, SIZE = 20000, CHUNK = 4096, BOUND = 16384 };
    tl_cfg_set(&fx.cfg, "connectionMaxOutboundBytes", "16384");
    start();
    struct client *cons = connected(21), *prod = connected(21);
    subscribe(cons, TOPIC("slow-big"), "s", 1, NULL);
    producer(prod, TOPIC("slow-big"), 1);
    char *payload = mg_malloc(SIZE + 1);
    memset(payload, 'z', SIZE);
    payload[SIZE] = '\0';
    for (int i = 0; i < N; i++) {
        send_msg(prod, 1, (uint64_t)i, payload, NULL, false);
        expect_receipt(prod, 1, (uint64_t)i);
    }
    mg_free(payload);
    bufferevent_disable(cons->peer.bev, EV_READ);
    int acked_turn[N], acked_got[N];
    struct slow_client sc = {
        .cl = cons, .consumer_id = 1, .acked_turn = acked_turn, .acked_got = acked_got};
    tl_send_flow(&cons->peer, 1, 2 * N);
    int max_msgs = (BOUND + SIZE) / SIZE + 1;
    int max_turns = 2 * ((BOUND + 2 * SIZE) / CHUNK + 1);
    for (int turn = 0; turn < 100 * N && sc.answered < N; turn++) {
        event_base_loop(fx.base, EVLOOP_ONCE | EVLOOP_NONBLOCK);
        pull(cons, CHUNK);
        slow_read(&sc, SIZE_MAX, turn);
    }
    slow_client_done(&sc, N, max_msgs, max_turns, TOPIC("slow-big"));
}
END_TEST

/* conn_dispatch_high_water: half of connectionMaxOutboundBytes, and never 0 (which the
 * dispatcher takes as no bound), down to the smallest bound allowed. */
START_TEST(test_dispatch_high_water)
{
    static const char *const bounds[] = {"1", "2", "3", "16384", "4194304"};
    for (size_t i = 0; i < sizeof bounds / sizeof *bounds; i++) {
        tl_cfg_set(&fx.cfg, "connectionMaxOutboundBytes", bounds[i]);
        size_t bound = (size_t)fx.cfg.connection_max_outbound_bytes;
        size_t hw = conn_dispatch_high_water(&fx.cfg);
        ck_assert_uint_ge(hw, 1);
        ck_assert_uint_eq(hw, bound / 2 > 0 ? bound / 2 : 1);
    }
}
END_TEST

/* ---- lookups and metadata ------------------------------------------------------------------ */

START_TEST(test_lookup_and_partitioned_metadata)
{
    start();
    struct client *cl = connected(17);
    tl_send_lookup(&cl->peer, "my-topic", 7, false);
    struct wire_frame f;
    expect(cl, T(LOOKUP_RESPONSE), &f);
    Pulsar__Proto__CommandLookupTopicResponse *r = f.cmd->lookuptopicresponse;
    ck_assert_uint_eq(r->request_id, 7);
    ck_assert_int_eq(r->response,
                     PULSAR__PROTO__COMMAND_LOOKUP_TOPIC_RESPONSE__LOOKUP_TYPE__Connect);
    ck_assert(r->authoritative);
    ck_assert_str_eq(r->brokerserviceurl, "pulsar://127.0.0.1:6650");
    ck_assert_str_eq(r->brokerserviceurl, ns_broker_url(fx.ns));
    wire_frame_clear(&f);

    /* a lookup in a namespace that does not exist fails with the error set */
    tl_send_lookup(&cl->peer, "persistent://nope/none/t", 8, false);
    expect_lookup_failed(cl, 8, SE(TopicNotFound));

    ck_assert_int_eq(ns_partitions_set(fx.ns, TOPIC("parts"), 3, true, NULL, NULL), 0);
    partitioned_metadata(cl, "parts", 9);
    expect_partitions(cl, 9, 3, 0);
    /* a plain topic has 0 partitions, a success all the same */
    partitioned_metadata(cl, "plain", 10);
    expect_partitions(cl, 10, 0, 0);
}
END_TEST

/* Started, with a partitioned topic of 2 partitions and a producer on each of topics[0..n)
 * (ids 1..n): a client connected with protocol 21. */
static struct client *connected_with_topics(const char *partitioned, const char *const *topics,
                                            int n)
{
    start();
    struct client *cl = connected(21);
    ck_assert_int_eq(ns_partitions_set(fx.ns, partitioned, 2, true, NULL, NULL), 0);
    for (int i = 0; i < n; i++)
        producer(cl, topics[i], (uint64_t)i + 1);
    return cl;
}

/* mode < 0: none sent (PERSISTENT) */
static void get_topics(struct client *cl, const char *ns, uint64_t request_id, int mode)
{
    Pulsar__Proto__CommandGetTopicsOfNamespace g =
        PULSAR__PROTO__COMMAND_GET_TOPICS_OF_NAMESPACE__INIT;
    g.namespace_ = (char *)ns;
    g.request_id = request_id;
    if (mode >= 0) {
        g.has_mode = 1;
        g.mode = (Pulsar__Proto__CommandGetTopicsOfNamespace__Mode)mode;
    }
    SEND(cl, GET_TOPICS_OF_NAMESPACE, gettopicsofnamespace, g);
}

/* The answer to request_id is the topics want[0..n) (sorted), filtered or not, and carries
 * their hash; its hash is copied to hash (may be NULL). */
static void expect_topics(struct client *cl, uint64_t request_id, bool filtered,
                          const char *const *want, size_t n, char *hash)
{
    struct wire_frame f;
    expect(cl, T(GET_TOPICS_OF_NAMESPACE_RESPONSE), &f);
    Pulsar__Proto__CommandGetTopicsOfNamespaceResponse *r = f.cmd->gettopicsofnamespaceresponse;
    ck_assert_uint_eq(r->request_id, request_id);
    ck_assert(r->has_filtered);
    ck_assert_int_eq(r->filtered, filtered);
    ck_assert(r->changed);
    ck_assert_uint_eq(r->n_topics, n);
    for (size_t i = 0; i < n; i++)
        ck_assert_str_eq(r->topics[i], want[i]);
    char h[NS_TOPICS_HASH_LEN];
    ns_topics_hash((char **)want, (int)n, h);
    ck_assert_ptr_nonnull(r->topics_hash);
    ck_assert_str_eq(r->topics_hash, h);
    if (hash)
        memcpy(hash, h, sizeof h);
    wire_frame_clear(&f);
}

/* GET_TOPICS_OF_NAMESPACE: the persistent topics of the namespace, loaded or not, with the
 * partitions of its partitioned topics, sorted; in NON_PERSISTENT mode the loaded
 * non-persistent ones, in ALL mode both; an unknown namespace is an error. */
START_TEST(test_get_topics_of_namespace)
{
    static const char *const made[] = {
        TOPIC("b-topic"), TOPIC("a-topic"), "persistent://pulsar/system/elsewhere",
        NP_TOPIC("np-b"), NP_TOPIC("np-a"), "non-persistent://pulsar/system/np-x"};
    struct client *cl = connected_with_topics(TOPIC("parts"), made, 6);
    get_topics(cl, "public/default", 31, -1);
    struct wire_frame f;
    expect(cl, T(GET_TOPICS_OF_NAMESPACE_RESPONSE), &f);
    Pulsar__Proto__CommandGetTopicsOfNamespaceResponse *r = f.cmd->gettopicsofnamespaceresponse;
    ck_assert_uint_eq(r->request_id, 31);
    static const char *const want[] = {TOPIC("a-topic"), TOPIC("b-topic"),
                                       TOPIC("parts-partition-0"), TOPIC("parts-partition-1")};
    ck_assert_uint_eq(r->n_topics, 4);
    for (size_t i = 0; i < 4; i++)
        ck_assert_str_eq(r->topics[i], want[i]);
    wire_frame_clear(&f);

    get_topics(cl, "public/default", 32,
               PULSAR__PROTO__COMMAND_GET_TOPICS_OF_NAMESPACE__MODE__NON_PERSISTENT);
    static const char *const np[] = {NP_TOPIC("np-a"), NP_TOPIC("np-b")};
    expect_topics(cl, 32, false, np, 2, NULL);
    get_topics(cl, "public/default", 34, PULSAR__PROTO__COMMAND_GET_TOPICS_OF_NAMESPACE__MODE__ALL);
    static const char *const all[] = {NP_TOPIC("np-a"),           NP_TOPIC("np-b"),
                                      TOPIC("a-topic"),           TOPIC("b-topic"),
                                      TOPIC("parts-partition-0"), TOPIC("parts-partition-1")};
    expect_topics(cl, 34, false, all, 6, NULL);

    get_topics(cl, "nope/none", 33, -1);
    expect_error(cl, 33, SE(TopicNotFound), "Namespace does not exist");
}
END_TEST

/* ---- pattern consumers: topics_pattern, topics_hash, watchers (conn_watch.c) ------------- */

static void get_topics_req(struct client *cl, uint64_t request_id, const char *pattern,
                           const char *hash)
{
    Pulsar__Proto__CommandGetTopicsOfNamespace g =
        PULSAR__PROTO__COMMAND_GET_TOPICS_OF_NAMESPACE__INIT;
    g.namespace_ = "public/default";
    g.request_id = request_id;
    g.topics_pattern = (char *)pattern;
    g.topics_hash = (char *)hash;
    SEND(cl, GET_TOPICS_OF_NAMESPACE, gettopicsofnamespace, g);
}

/* GET_TOPICS_OF_NAMESPACE with topics_pattern: only the matching topics (a partition by its
 * partitioned topic's name; system topics never), filtered=true, their hash; the same hash back
 * gives changed=false and no list; a pattern too long for subscriptionPatternMaxLength gets the
 * whole list; an invalid or catastrophic pattern gets an error on that request only. */
START_TEST(test_get_topics_pattern_and_hash)
{
    /* __change_events is a system topic: never listed, as Pulsar */
    static const char *const made[] = {TOPIC("orders-b"), TOPIC("orders-a"), TOPIC("misc"),
                                       TOPIC("aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaac"),
                                       TOPIC("__change_events")};
    struct client *cl = connected_with_topics(TOPIC("orders-p"), made, 5);
    static const char *const orders[] = {TOPIC("orders-a"), TOPIC("orders-b"),
                                         TOPIC("orders-p-partition-0"),
                                         TOPIC("orders-p-partition-1")};
    char hash[NS_TOPICS_HASH_LEN];
    get_topics_req(cl, 50, "persistent://public/default/orders-.*", NULL);
    expect_topics(cl, 50, true, orders, 4, hash);

    get_topics_req(cl, 51, "persistent://public/default/orders-.*", hash);
    struct wire_frame f;
    expect(cl, T(GET_TOPICS_OF_NAMESPACE_RESPONSE), &f);
    Pulsar__Proto__CommandGetTopicsOfNamespaceResponse *r = f.cmd->gettopicsofnamespaceresponse;
    ck_assert_uint_eq(r->request_id, 51);
    ck_assert(r->has_changed);
    ck_assert(!r->changed);
    ck_assert_uint_eq(r->n_topics, 0);
    ck_assert_str_eq(r->topics_hash, hash);
    wire_frame_clear(&f);

    static const char *const all[] = {TOPIC("aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaac"),
                                      TOPIC("misc"),
                                      TOPIC("orders-a"),
                                      TOPIC("orders-b"),
                                      TOPIC("orders-p-partition-0"),
                                      TOPIC("orders-p-partition-1")};
    get_topics_req(cl, 52, NULL, NULL);
    expect_topics(cl, 52, false, all, 6, NULL);
    get_topics_req(cl, 53, "persistent://public/default/(orders|misc|nothing-here-but-length)+",
                   NULL); /* 61 > 50 characters: not evaluated here */
    expect_topics(cl, 53, false, all, 6, NULL);

    get_topics_req(cl, 54, "persistent://public/default/(orders", NULL);
    tl_peer_expect(&cl->peer, T(ERROR), &f);
    ck_assert_uint_eq(f.cmd->error->request_id, 54);
    ck_assert_ptr_nonnull(strstr(f.cmd->error->message, "Invalid topics pattern"));
    wire_frame_clear(&f);
    get_topics_req(cl, 55, "persistent://public/default/(a+)+b", NULL);
    expect_error(cl, 55, SE(NotAllowedError),
                 "Topics pattern exceeded the match limit of the broker");
    get_topics_req(cl, 56, "kafka://public/default/x", NULL);
    tl_peer_expect(&cl->peer, T(ERROR), &f);
    ck_assert_uint_eq(f.cmd->error->request_id, 56);
    wire_frame_clear(&f);
    /* the connection goes on */
    get_topics_req(cl, 57, "public/default/m.*", NULL);
    expect_topics(cl, 57, true, all + 1, 1, NULL);
}
END_TEST

/* enableBrokerSideSubscriptionPatternEvaluation=false: no filtering, no watchers advertised,
 * WATCH_TOPIC_LIST refused. */
START_TEST(test_pattern_evaluation_off)
{
    tl_cfg_set(&fx.cfg, "enableBrokerSideSubscriptionPatternEvaluation", "false");
    start();
    struct client *cl = client_new();
    struct wire_frame f;
    tl_peer_handshake(&cl->peer, 21, &f);
    ck_assert(!f.cmd->connected->feature_flags ||
              !f.cmd->connected->feature_flags->supports_topic_watchers);
    wire_frame_clear(&f);
    producer(cl, TOPIC("one"), 1);
    producer(cl, TOPIC("two"), 2);
    static const char *const all[] = {TOPIC("one"), TOPIC("two")};
    get_topics_req(cl, 60, "persistent://public/default/one", NULL);
    expect_topics(cl, 60, false, all, 2, NULL);
    Pulsar__Proto__CommandWatchTopicList w = PULSAR__PROTO__COMMAND_WATCH_TOPIC_LIST__INIT;
    w.request_id = 61;
    w.watcher_id = 1;
    w.namespace_ = "public/default";
    w.topics_pattern = "persistent://public/default/.*";
    SEND(cl, WATCH_TOPIC_LIST, watchtopiclist, w);
    expect_error(cl, 61, SE(NotAllowedError), NULL);
}
END_TEST

static void watch_req(struct client *cl, uint64_t request_id, uint64_t watcher_id,
                      const char *pattern, const char *hash)
{
    Pulsar__Proto__CommandWatchTopicList w = PULSAR__PROTO__COMMAND_WATCH_TOPIC_LIST__INIT;
    w.request_id = request_id;
    w.watcher_id = watcher_id;
    w.namespace_ = "public/default";
    w.topics_pattern = (char *)pattern;
    w.topics_hash = (char *)hash;
    SEND(cl, WATCH_TOPIC_LIST, watchtopiclist, w);
}

/* The next frame is WATCH_TOPIC_UPDATE of watcher_id: name created (or deleted), and the hash
 * of now[0..n), the watcher's topics after it. */
static void expect_update(struct client *cl, uint64_t watcher_id, const char *name, bool created,
                          const char *const *now, int n)
{
    struct wire_frame f;
    expect(cl, T(WATCH_TOPIC_UPDATE), &f);
    Pulsar__Proto__CommandWatchTopicUpdate *u = f.cmd->watchtopicupdate;
    ck_assert_uint_eq(u->watcher_id, watcher_id);
    ck_assert_uint_eq(u->n_new_topics, created ? 1 : 0);
    ck_assert_uint_eq(u->n_deleted_topics, created ? 0 : 1);
    ck_assert_str_eq(created ? u->new_topics[0] : u->deleted_topics[0], name);
    char h[NS_TOPICS_HASH_LEN];
    ns_topics_hash((char **)now, n, h);
    ck_assert_str_eq(u->topics_hash, h);
    wire_frame_clear(&f);
}

#define ML_NODE(local) "/managed-ledgers/public/default/persistent/" local

/* WATCH_TOPIC_LIST: supports_topic_watchers in CONNECTED; SUCCESS with the matching topics and
 * their hash (none when the client has that hash); one WATCH_TOPIC_UPDATE per matching topic
 * created or deleted in the store (by any broker), nothing for the others; a watcher id in
 * use, a pattern too long or invalid, and watchers beyond the bound are refused;
 * WATCH_TOPIC_LIST_CLOSE ends one watcher and the others go on. */
START_TEST(test_topic_list_watcher)
{
    fx.store = true;
    start();
    struct client *cl = client_new();
    struct wire_frame f;
    tl_peer_handshake(&cl->peer, 21, &f);
    ck_assert_ptr_nonnull(f.cmd->connected->feature_flags);
    ck_assert(f.cmd->connected->feature_flags->supports_topic_watchers);
    wire_frame_clear(&f);
    producer(cl, TOPIC("w-1"), 1);
    producer(cl, TOPIC("other"), 2);

    const char *pat = "persistent://public/default/w-.*";
    watch_req(cl, 70, 1, pat, NULL);
    expect(cl, T(WATCH_TOPIC_LIST_SUCCESS), &f);
    Pulsar__Proto__CommandWatchTopicListSuccess *ok = f.cmd->watchtopiclistsuccess;
    ck_assert_uint_eq(ok->request_id, 70);
    ck_assert_uint_eq(ok->watcher_id, 1);
    ck_assert_uint_eq(ok->n_topic, 1);
    ck_assert_str_eq(ok->topic[0], TOPIC("w-1"));
    static const char *const one[] = {TOPIC("w-1")};
    char h1[NS_TOPICS_HASH_LEN];
    ns_topics_hash((char **)one, 1, h1);
    ck_assert_str_eq(ok->topics_hash, h1);
    wire_frame_clear(&f);

    /* topics another broker creates: the one that does not match is not told */
    ck_assert_int_eq(tl_meta_put(fx.meta, ML_NODE("x-2"), "", 0, 0), 0);
    ck_assert_int_eq(tl_meta_put(fx.meta, ML_NODE("w-2"), "", 0, 0), 0);
    static const char *const two[] = {TOPIC("w-1"), TOPIC("w-2")};
    expect_update(cl, 1, TOPIC("w-2"), true, two, 2);
    ck_assert_int_eq(tl_meta_del(fx.meta, ML_NODE("w-2")), 0);
    expect_update(cl, 1, TOPIC("w-2"), false, one, 1);

    /* refused: id in use, pattern too long, pattern invalid */
    watch_req(cl, 71, 1, pat, NULL);
    expect_error(cl, 71, SE(ServiceNotReady), NULL);
    watch_req(cl, 72, 2, "persistent://public/default/this-pattern-is-longer-than-fifty", NULL);
    expect_error(cl, 72, SE(NotAllowedError), NULL);
    watch_req(cl, 73, 3, "persistent://public/default/w-(", NULL);
    tl_peer_expect(&cl->peer, T(ERROR), &f);
    ck_assert_uint_eq(f.cmd->error->request_id, 73);
    wire_frame_clear(&f);

    /* a client that has the list already: SUCCESS without topics */
    watch_req(cl, 74, 4, pat, h1);
    expect(cl, T(WATCH_TOPIC_LIST_SUCCESS), &f);
    ck_assert_uint_eq(f.cmd->watchtopiclistsuccess->watcher_id, 4);
    ck_assert_uint_eq(f.cmd->watchtopiclistsuccess->n_topic, 0);
    ck_assert_str_eq(f.cmd->watchtopiclistsuccess->topics_hash, h1);
    wire_frame_clear(&f);

    /* close watcher 1: only watcher 4 hears the next one */
    Pulsar__Proto__CommandWatchTopicListClose c =
        PULSAR__PROTO__COMMAND_WATCH_TOPIC_LIST_CLOSE__INIT;
    c.request_id = 75;
    c.watcher_id = 1;
    SEND(cl, WATCH_TOPIC_LIST_CLOSE, watchtopiclistclose, c);
    tl_expect_success(&cl->peer, 75);
    ck_assert_int_eq(tl_meta_put(fx.meta, ML_NODE("w-3"), "", 0, 0), 0);
    static const char *const w13[] = {TOPIC("w-1"), TOPIC("w-3")};
    expect_update(cl, 4, TOPIC("w-3"), true, w13, 2);
    expect_nothing(cl);

    /* bounded per connection */
    struct conn *conn = cl->conn;
    int have = conn->n_watchers;
    for (int i = have; i < CONN_MAX_TOPIC_WATCHERS; i++) {
        watch_req(cl, 100 + (uint64_t)i, 100 + (uint64_t)i, pat, h1);
        expect(cl, T(WATCH_TOPIC_LIST_SUCCESS), &f);
        wire_frame_clear(&f);
    }
    watch_req(cl, 99, 99, pat, NULL);
    expect_error(cl, 99, SE(NotAllowedError), "Too many topic list watchers on this connection");
    ck_assert_int_eq(conn->n_watchers, CONN_MAX_TOPIC_WATCHERS);
}
END_TEST

/* The namespace's autoTopicCreation and autoSubscriptionCreation policies override the keys:
 * a partitioned override makes PARTITIONED_METADATA create the topic with its partitions;
 * creation off refuses a PRODUCER on a new topic; allowAutoSubscriptionCreation=false refuses
 * a SUBSCRIBE to a new subscription (SubscriptionNotFound) but serves an existing one, and a
 * namespace override allowing it lifts that. */
START_TEST(test_auto_creation_policies)
{
    tl_cfg_set(&fx.cfg, "allowAutoSubscriptionCreation", "false");
    start();
    struct client *cl = connected(21);
    struct ns_policies p;
    ck_assert_int_eq(ns_namespace_policies_get(fx.ns, "public/default", &p), 0);
    p.auto_topic =
        (struct ns_auto_topic){.set = true, .allow = true, .partitioned = true, .partitions = 5};
    ck_assert_int_eq(ns_namespace_policies_set(fx.ns, "public/default", &p, NULL, NULL), 0);
    partitioned_metadata(cl, TOPIC("made-partitioned"), 80);
    expect_partitions(cl, 80, 5, 0);
    ck_assert_int_eq(ns_partitions_get(fx.ns, TOPIC("made-partitioned")), 5);

    p.auto_topic = (struct ns_auto_topic){.set = true, .allow = false};
    ck_assert_int_eq(ns_namespace_policies_set(fx.ns, "public/default", &p, NULL, NULL), 0);
    partitioned_metadata(cl, TOPIC("not-made"), 81);
    expect_partitions(cl, 81, 0, 0);
    ck_assert_int_eq(producer_v(cl, TOPIC("not-made"), 1, 82, -1), -(int)SE(TopicNotFound) - 1);
    ck_assert_ptr_null(topic_find(fx.topics, TOPIC("not-made")));

    /* the broker's allowAutoSubscriptionCreation=false: only existing subscriptions */
    p.auto_topic.set = false;
    ck_assert_int_eq(ns_namespace_policies_set(fx.ns, "public/default", &p, NULL, NULL), 0);
    producer(cl, TOPIC("subs"), 2);
    struct topic *t = topic_find(fx.topics, TOPIC("subs"));
    ck_assert_ptr_nonnull(t);
    ck_assert_int_eq(topic_admin_create_sub(t, "existing", false), 0);
    subscribe_req(cl, TOPIC("subs"), "new-one", 10, 83, NULL);
    expect_error(cl, 83, SE(SubscriptionNotFound), "Subscription does not exist");
    ck_assert_ptr_null(topic_sub_cursor(t, "new-one"));
    subscribe(cl, TOPIC("subs"), "existing", 11, NULL);
    /* the namespace allows it: created */
    p.auto_sub = (struct ns_auto_sub){.set = true, .allow = true};
    ck_assert_int_eq(ns_namespace_policies_set(fx.ns, "public/default", &p, NULL, NULL), 0);
    subscribe(cl, TOPIC("subs"), "new-one", 12, NULL);
    ck_assert_ptr_nonnull(topic_sub_cursor(t, "new-one"));
}
END_TEST

/* ---- schemas (conn_schema.c over a registry on an in-memory store) ---------------------- */

#define AVRO_V1                                                                                    \
    "{\"type\":\"record\",\"name\":\"U\",\"fields\":[{\"name\":\"a\",\"type\":\"int\"}]}"
/* v1 plus a field with a default: FULL-compatible */
#define AVRO_V2                                                                                    \
    "{\"type\":\"record\",\"name\":\"U\",\"fields\":[{\"name\":\"a\",\"type\":\"int\"},"           \
    "{\"name\":\"b\",\"type\":\"string\",\"default\":\"\"}]}"
/* a's type changed to string: neither reads the other */
#define AVRO_BAD                                                                                   \
    "{\"type\":\"record\",\"name\":\"U\",\"fields\":[{\"name\":\"a\",\"type\":\"string\"}]}"

static void start_schemas(void)
{
    start();
    struct meta_options o = {.url = "memory"};
    ck_assert_int_eq(meta_open(fx.loop, &o, &fx.meta), 0);
    fx.schemas = sch_registry_new(fx.loop, fx.meta, fx.ns, &fx.cfg);
    fx.env.schemas = fx.schemas;
}

static void wire_schema(Pulsar__Proto__Schema *w, int type, const char *def)
{
    pulsar__proto__schema__init(w);
    w->name = "s";
    w->type = (Pulsar__Proto__Schema__Type)type;
    w->schema_data.data = (uint8_t *)def;
    w->schema_data.len = strlen(def);
}

/* PRODUCER with schema (NULL: none): the version PRODUCER_SUCCESS carries (-1 when its field
 * has 0 bytes), or the ERROR as -(error) - 1000 (its message into msg). */
static int64_t schema_producer(struct client *cl, const char *topic, uint64_t id,
                               const Pulsar__Proto__Schema *schema, char *msg, size_t len)
{
    Pulsar__Proto__CommandProducer p = PULSAR__PROTO__COMMAND_PRODUCER__INIT;
    p.topic = (char *)topic;
    p.producer_id = id;
    p.request_id = 500 + id;
    p.schema = (Pulsar__Proto__Schema *)schema;
    SEND(cl, PRODUCER, producer, p);
    struct wire_frame f;
    ck_assert_int_eq(tl_peer_next(&cl->peer, &f), 1);
    int64_t v;
    if (f.cmd->type == T(PRODUCER_SUCCESS)) {
        ck_assert_uint_eq(f.cmd->producer_success->request_id, 500 + id);
        ck_assert(f.cmd->producer_success->has_schema_version);
        ProtobufCBinaryData sv = f.cmd->producer_success->schema_version;
        ck_assert(sv.len == 0 || sv.len == 8);
        v = sv.len ? sch_version_get(sv.data, sv.len) : -1;
    } else {
        ck_assert_int_eq(f.cmd->type, T(ERROR));
        ck_assert_uint_eq(f.cmd->error->request_id, 500 + id);
        v = -(int64_t)f.cmd->error->error - 1000;
        if (msg)
            snprintf(msg, len, "%s", f.cmd->error->message);
    }
    wire_frame_clear(&f);
    return v;
}

/* GET_SCHEMA (version < 0: the latest; -2: an empty version field): the frame is returned. */
static Pulsar__Proto__CommandGetSchemaResponse *get_schema(struct client *cl, const char *topic,
                                                           uint64_t req, int64_t version,
                                                           struct wire_frame *f)
{
    Pulsar__Proto__CommandGetSchema gs = PULSAR__PROTO__COMMAND_GET_SCHEMA__INIT;
    gs.topic = (char *)topic;
    gs.request_id = req;
    uint8_t vb[8];
    if (version >= 0 || version == -2) {
        gs.has_schema_version = 1;
        gs.schema_version.data = vb;
        gs.schema_version.len = version >= 0 ? 8 : 0;
        if (version >= 0)
            sch_version_put(version, vb);
    }
    SEND(cl, GET_SCHEMA, getschema, gs);
    expect(cl, T(GET_SCHEMA_RESPONSE), f);
    ck_assert_uint_eq(f->cmd->getschemaresponse->request_id, req);
    return f->cmd->getschemaresponse;
}

static void expect_no_schema(struct client *cl, const char *topic, uint64_t req, int64_t version)
{
    struct wire_frame f;
    Pulsar__Proto__CommandGetSchemaResponse *r = get_schema(cl, topic, req, version, &f);
    ck_assert(r->has_error_code);
    ck_assert_int_eq(r->error_code, SE(TopicNotFound));
    char want[256];
    snprintf(want, sizeof want, "Topic not found or no-schema %s", topic);
    ck_assert_str_eq(r->error_message, want);
    ck_assert_ptr_null(r->schema);
    wire_frame_clear(&f);
}

/* The registry's answers on the wire: PRODUCER registers (8-byte version in
 * PRODUCER_SUCCESS), finds an equal schema, refuses an incompatible one and a producer without
 * a schema; GET_SCHEMA answers the latest, a version, TopicNotFound for a version that does not
 * exist or a topic without a schema, and IncompatibleSchema for an empty version; the
 * partitions of a topic share its base's schema. */
START_TEST(test_schema_producers_and_get)
{
    start_schemas();
    struct client *cl = connected(21);
    const char *topic = TOPIC("typed");
    expect_no_schema(cl, topic, 40, -1);

    Pulsar__Proto__Schema v1, v1b, v2, bad;
    wire_schema(&v1, PULSAR__PROTO__SCHEMA__TYPE__Avro, AVRO_V1);
    /* v1 spelled differently: the same schema */
    wire_schema(&v1b, PULSAR__PROTO__SCHEMA__TYPE__Avro,
                "{ \"fields\": [ {\"type\":\"int\", \"name\":\"a\"} ], \"name\":\"U\", "
                "\"type\":\"record\" }");
    wire_schema(&v2, PULSAR__PROTO__SCHEMA__TYPE__Avro, AVRO_V2);
    wire_schema(&bad, PULSAR__PROTO__SCHEMA__TYPE__Avro, AVRO_BAD);
    char msg[300] = "";
    ck_assert_int_eq(schema_producer(cl, topic, 1, &v1, msg, sizeof msg), 0);
    ck_assert_int_eq(schema_producer(cl, topic, 2, &v1b, msg, sizeof msg), 0);
    ck_assert_int_eq(schema_producer(cl, topic, 3, &bad, msg, sizeof msg),
                     -SE(IncompatibleSchema) - 1000);
    ck_assert_ptr_nonnull(strstr(msg, "Incompatible schema"));
    ck_assert_int_eq(schema_producer(cl, topic, 4, &v2, msg, sizeof msg), 1);
    /* a partition shares the base's schema */
    ck_assert_int_eq(schema_producer(cl, TOPIC("typed-partition-3"), 5, &v2, msg, sizeof msg), 1);
    ck_assert_int_eq(schema_producer(cl, topic, 6, NULL, msg, sizeof msg),
                     -SE(IncompatibleSchema) - 1000);
    ck_assert_str_eq(msg, "Producers cannot connect or send message without a schema to topics "
                          "with a schema");
    /* a topic without a schema: no version (0 bytes) */
    ck_assert_int_eq(schema_producer(cl, TOPIC("plain"), 7, NULL, msg, sizeof msg), -1);

    struct wire_frame f;
    Pulsar__Proto__CommandGetSchemaResponse *r = get_schema(cl, topic, 41, -1, &f);
    ck_assert(!r->has_error_code);
    ck_assert_ptr_nonnull(r->schema);
    ck_assert_int_eq(r->schema->type, PULSAR__PROTO__SCHEMA__TYPE__Avro);
    ck_assert_str_eq(r->schema->name, "public/default/typed");
    ck_assert_uint_eq(r->schema->schema_data.len, strlen(AVRO_V2));
    ck_assert(memcmp(r->schema->schema_data.data, AVRO_V2, strlen(AVRO_V2)) == 0);
    ck_assert_int_eq(sch_version_get(r->schema_version.data, r->schema_version.len), 1);
    wire_frame_clear(&f);
    r = get_schema(cl, topic, 42, 0, &f);
    ck_assert(!r->has_error_code);
    ck_assert_uint_eq(r->schema->schema_data.len, strlen(AVRO_V1));
    ck_assert_int_eq(sch_version_get(r->schema_version.data, r->schema_version.len), 0);
    wire_frame_clear(&f);
    expect_no_schema(cl, topic, 43, 2);
    expect_no_schema(cl, topic, 44, INT64_MAX);
    r = get_schema(cl, topic, 45, -2, &f);
    ck_assert_int_eq(r->error_code, SE(IncompatibleSchema));
    ck_assert_str_eq(r->error_message, "Empty schema version");
    wire_frame_clear(&f);
}
END_TEST

/* GET_OR_CREATE_SCHEMA registers as PRODUCER does, for a topic loaded here only; SUBSCRIBE
 * with a schema is checked (a reader that cannot read the stored schema is refused,
 * AUTO_CONSUME is not checked); a message's schema_version reaches the consumer untouched. */
START_TEST(test_schema_get_or_create_subscribe)
{
    start_schemas();
    struct client *cl = connected(21);
    const char *topic = TOPIC("goc");
    Pulsar__Proto__Schema v1, v2, bad, autoc;
    wire_schema(&v1, PULSAR__PROTO__SCHEMA__TYPE__Avro, AVRO_V1);
    wire_schema(&v2, PULSAR__PROTO__SCHEMA__TYPE__Avro, AVRO_V2);
    wire_schema(&bad, PULSAR__PROTO__SCHEMA__TYPE__Avro, AVRO_BAD);
    wire_schema(&autoc, PULSAR__PROTO__SCHEMA__TYPE__AutoConsume, "");

    Pulsar__Proto__CommandGetOrCreateSchema gc = PULSAR__PROTO__COMMAND_GET_OR_CREATE_SCHEMA__INIT;
    gc.topic = (char *)topic;
    gc.request_id = 60;
    gc.schema = &v2;
    SEND(cl, GET_OR_CREATE_SCHEMA, getorcreateschema, gc);
    struct wire_frame f;
    expect(cl, T(GET_OR_CREATE_SCHEMA_RESPONSE), &f);
    ck_assert(f.cmd->getorcreateschemaresponse->has_error_code);
    ck_assert_int_eq(f.cmd->getorcreateschemaresponse->error_code, SE(TopicNotFound));
    wire_frame_clear(&f);

    char msg[300];
    ck_assert_int_eq(schema_producer(cl, topic, 1, &v1, msg, sizeof msg), 0);
    gc.request_id = 61;
    SEND(cl, GET_OR_CREATE_SCHEMA, getorcreateschema, gc);
    expect(cl, T(GET_OR_CREATE_SCHEMA_RESPONSE), &f);
    Pulsar__Proto__CommandGetOrCreateSchemaResponse *c = f.cmd->getorcreateschemaresponse;
    ck_assert_uint_eq(c->request_id, 61);
    ck_assert(!c->has_error_code);
    ck_assert_int_eq(sch_version_get(c->schema_version.data, c->schema_version.len), 1);
    wire_frame_clear(&f);
    gc.request_id = 62;
    gc.schema = &bad;
    SEND(cl, GET_OR_CREATE_SCHEMA, getorcreateschema, gc);
    expect(cl, T(GET_OR_CREATE_SCHEMA_RESPONSE), &f);
    ck_assert_int_eq(f.cmd->getorcreateschemaresponse->error_code, SE(IncompatibleSchema));
    wire_frame_clear(&f);

    /* SUBSCRIBE: checked under FULL as Pulsar does for consumers (BACKWARD vs the latest) */
    Pulsar__Proto__CommandSubscribe sub = PULSAR__PROTO__COMMAND_SUBSCRIBE__INIT;
    sub.topic = (char *)topic;
    sub.subscription = "s";
    sub.consumer_id = 1;
    sub.request_id = 70;
    sub.schema = &bad;
    SEND(cl, SUBSCRIBE, subscribe, sub);
    expect_error(cl, 70, SE(IncompatibleSchema), NULL);
    sub.consumer_id = 2;
    sub.request_id = 71;
    sub.schema = &autoc;
    SEND(cl, SUBSCRIBE, subscribe, sub);
    expect_success(cl, 71);
    sub.consumer_id = 3;
    sub.request_id = 72;
    sub.subscription = "s2";
    sub.schema = &v1; /* v1 reads v2's data (b skipped) */
    SEND(cl, SUBSCRIBE, subscribe, sub);
    expect_success(cl, 72);

    /* the producer's schema_version is stored and delivered as sent */
    uint8_t sv[8];
    sch_version_put(0x0102030405060708LL, sv);
    struct msg_opts mo = {.schema_version = sv};
    publish(cl, 1, 0, &mo);
    flow(cl, 3, 10);
    expect(cl, T(MESSAGE), &f);
    const uint8_t *p = evbuffer_pullup(f.payload, -1);
    size_t plen = evbuffer_get_length(f.payload);
    ck_assert_uint_ge(plen, 10);
    uint32_t mdlen = (uint32_t)p[6] << 24 | (uint32_t)p[7] << 16 | (uint32_t)p[8] << 8 | p[9];
    Pulsar__Proto__MessageMetadata *md =
        pulsar__proto__message_metadata__unpack(NULL, mdlen, p + 10);
    ck_assert_ptr_nonnull(md);
    ck_assert(md->has_schema_version);
    ck_assert_int_eq(md->schema_version.len, 8);
    ck_assert(memcmp(md->schema_version.data, sv, 8) == 0);
    pulsar__proto__message_metadata__free_unpacked(md, NULL);
    wire_frame_clear(&f);
}
END_TEST

/* ---- producing ----------------------------------------------------------------------------- */

/* libevent's default for one write of a socket bufferevent (MAX_SINGLE_WRITE_DEFAULT) */
#define LIBEVENT_WRITE_DEFAULT 16384

/* The most bytes one drain of an evbuffer took: for a socket bufferevent's output, its
 * largest single write. */
static void largest_drain_cb(struct evbuffer *b, const struct evbuffer_cb_info *info, void *arg)
{
    (void)b;
    size_t *most = arg;
    if (info->n_deleted > *most)
        *most = info->n_deleted;
}

/* A consumer catching up on a backlog gets it in writes of more than libevent's default
 * 16 KiB a loop turn (conn_bev_limits: MG_BEV_WRITE_MAX): one writev + epoll_wait per 16 KiB
 * was the cost of a catch-up read. Every message arrives, in order, with its payload. */
START_TEST(test_consumer_backlog_large_writes)
{
    start();
    struct client *cl = client_new_socket(1 << 20);
    handshake_v(cl, 21, 21);
    producer(cl, TOPIC("backlog-writes"), 1);
    enum { MAX_MSGS = 400 };
    size_t sizes[MAX_MSGS], total = 0, want = (size_t)(256 + mg_mono_us() % 768) * 1024;
    char *payload = mg_malloc(60001);
    uint64_t n = 0;
    for (; n < MAX_MSGS && total < want; n++) {
        sizes[n] = 1 + (size_t)((mg_mono_us() * 2654435761u + n) % 60000);
        memset(payload, 'a' + (int)(n % 26), sizes[n]);
        payload[sizes[n]] = '\0';
        send_msg(cl, 1, n, payload, NULL, false);
        expect_receipt(cl, 1, n);
        total += sizes[n];
    }
    mg_free(payload);
    ck_assert_uint_ge(total, want);
    size_t most = 0;
    evbuffer_add_cb(bufferevent_get_output(cl->server), largest_drain_cb, &most);
    struct tl_sub_opts o = {.earliest = true};
    subscribe(cl, TOPIC("backlog-writes"), "s", 1, &o);
    flow(cl, 1, (uint32_t)n);
    for (uint64_t i = 0; i < n; i++) {
        struct wire_frame f;
        expect(cl, T(MESSAGE), &f);
        ck_assert_uint_eq(f.cmd->message->consumer_id, 1);
        ck_assert_uint_eq(f.msg.sequence_id, i);
        size_t len = evbuffer_get_length(f.payload);
        ck_assert_uint_gt(len, sizes[i]);
        const char *body = (const char *)evbuffer_pullup(f.payload, -1) + len - sizes[i];
        for (size_t k = 0; k < sizes[i]; k++)
            ck_assert_int_eq(body[k], 'a' + (int)(i % 26));
        wire_frame_clear(&f);
    }
    ck_assert_msg(most > LIBEVENT_WRITE_DEFAULT, "largest write of a %zu-byte backlog: %zu bytes",
                  total, most);
}
END_TEST

START_TEST(test_produce_consume_round_trip)
{
    start();
    struct client *cl = connected(17);
    subscribe(cl, "round-trip", "s", 5, NULL);
    producer(cl, "round-trip", 1);
    struct ml_position r[3];
    for (uint64_t seq = 0; seq < 3; seq++) {
        r[seq] = publish(cl, 1, seq, NULL);
        if (seq > 0) { /* one ledger, consecutive entries */
            ck_assert_int_eq(r[seq].ledger, r[0].ledger);
            ck_assert_int_eq(r[seq].entry, r[seq - 1].entry + 1);
        }
    }
    /* a corrupted message is refused with ChecksumError and not stored */
    send_msg(cl, 1, 3, "corrupted", NULL, true);
    struct wire_frame f;
    expect(cl, T(SEND_ERROR), &f);
    ck_assert_int_eq(f.cmd->send_error->error, SE(ChecksumError));
    ck_assert_uint_eq(f.cmd->send_error->sequence_id, 3);
    ck_assert_uint_eq(f.cmd->send_error->producer_id, 1);
    wire_frame_clear(&f);
    expect_nothing(cl);
    /* nothing is dispatched before FLOW: with 2 permits exactly 2 messages come */
    flow(cl, 5, 2);
    for (int i = 0; i < 2; i++) {
        struct got g = expect_message(cl, 5);
        ck_assert_uint_eq(g.seq, (uint64_t)i);
        ck_assert_int_eq(ml_pos_cmp(g.pos, r[i]), 0);
        ck_assert_int_eq(g.partition, -1);
        ck_assert_uint_eq(g.redelivery_count, 0);
        ck_assert_uint_eq(g.publish_time, 1000 + (uint64_t)i);
    }
    expect_nothing(cl);
}
END_TEST

START_TEST(test_send_for_unknown_producer_closes)
{
    start();
    struct client *cl = connected(17);
    send_msg(cl, 1, 0, "orphan", NULL, false);
    expect_closed(cl);
}
END_TEST

/* Exclusive access: while an Exclusive producer holds the topic, a Shared one gets
 * ProducerBusy and another Exclusive one ProducerFenced; WaitForExclusive fails at once with
 * ProducerBusy; once the holder closes, an Exclusive producer is accepted. */
/* CLOSE_PRODUCER, answered SUCCESS. */
static void close_producer(struct client *cl, uint64_t producer_id, uint64_t request_id)
{
    Pulsar__Proto__CommandCloseProducer cp = PULSAR__PROTO__COMMAND_CLOSE_PRODUCER__INIT;
    cp.producer_id = producer_id;
    cp.request_id = request_id;
    SEND(cl, CLOSE_PRODUCER, close_producer, cp);
    expect_success(cl, request_id);
}

START_TEST(test_exclusive_producer)
{
    start();
    struct client *a = connected(21), *b = connected(21);
    enum { SHARED_ACCESS = 0, EXCL = 1, WAIT_EXCL = 2 };
    ck_assert_int_eq(producer_v(a, TOPIC("excl"), 1, 51, EXCL), T(PRODUCER_SUCCESS));
    ck_assert_int_eq(producer_v(b, TOPIC("excl"), 1, 52, SHARED_ACCESS), -SE(ProducerBusy) - 1);
    ck_assert_int_eq(producer_v(b, TOPIC("excl"), 2, 53, EXCL), -SE(ProducerFenced) - 1);
    ck_assert_int_eq(producer_v(b, TOPIC("excl"), 3, 54, WAIT_EXCL), -SE(ProducerBusy) - 1);
    /* the holder still publishes */
    publish(a, 1, 0, NULL);
    close_producer(a, 1, 55);
    ck_assert_int_eq(producer_v(b, TOPIC("excl"), 4, 56, EXCL), T(PRODUCER_SUCCESS));
    publish(b, 4, 1, NULL);
}
END_TEST

/* Backlog quota producer_request_hold, as Pulsar's BacklogQuotaManager and ServerCnx: sends on
 * a connected producer are taken while the backlog grows past the quota; the quota check
 * closes the producer (CLOSE_PRODUCER); a SEND the client wrote before it read that is
 * ignored (recentlyClosedProducers) and the connection, with its consumer, goes on; a new
 * PRODUCER is refused with ProducerBlockedQuotaExceededError (the client keeps retrying); a
 * SEND for a producer id never opened still closes the connection. */
START_TEST(test_quota_hold_producer)
{
    tl_cfg_set(&fx.cfg, "backlogQuotaDefaultLimitBytes", "1");
    tl_cfg_set(&fx.cfg, "backlogQuotaCheckIntervalInSeconds", "0");
    start();
    struct client *cl = connected(21);
    subscribe(cl, TOPIC("hold"), "s", 1, NULL);
    producer(cl, TOPIC("hold"), 1);
    publish_range(cl, 1, 0, 4, NULL); /* past the quota: still stored */
    topic_check_backlog_quota(topic_find(fx.topics, TOPIC("hold")));
    pump();
    struct wire_frame f;
    expect(cl, T(CLOSE_PRODUCER), &f);
    ck_assert_uint_eq(f.cmd->close_producer->producer_id, 1);
    wire_frame_clear(&f);
    send_msg(cl, 1, 5, "in-flight", NULL, false);
    send_ping(cl);
    expect_pong(cl); /* nothing before it: the SEND was ignored, the connection is open */
    ck_assert_int_eq(producer_v(cl, TOPIC("hold"), 2, 77, -1),
                     -SE(ProducerBlockedQuotaExceededError) - 1);
    flow(cl, 1, 10);
    struct got g = expect_message(cl, 1);
    ck_assert_uint_eq(g.seq, 0);
    send_msg(cl, 9, 0, "never opened", NULL, false);
    expect_closed(cl);
}
END_TEST

/* PRODUCER named name; the last_sequence_id of its PRODUCER_SUCCESS. */
static int64_t producer_named(struct client *cl, const char *topic, uint64_t producer_id,
                              const char *name)
{
    Pulsar__Proto__CommandProducer p = PULSAR__PROTO__COMMAND_PRODUCER__INIT;
    p.topic = (char *)topic;
    p.producer_id = producer_id;
    p.request_id = 2000 + producer_id;
    p.producer_name = (char *)name;
    SEND(cl, PRODUCER, producer, p);
    struct wire_frame f;
    expect(cl, T(PRODUCER_SUCCESS), &f);
    ck_assert_str_eq(f.cmd->producer_success->producer_name, name);
    ck_assert(f.cmd->producer_success->has_last_sequence_id);
    int64_t last = f.cmd->producer_success->last_sequence_id;
    wire_frame_clear(&f);
    return last;
}

/* brokerDeduplicationEnabled: a resent sequence id gets SEND_RECEIPT with message id (-1, -1)
 * (2^64-1 in the uint64 fields, as Pulsar sends it) and is not stored; a producer of the same
 * name resumes after the highest stored id (PRODUCER_SUCCESS.last_sequence_id). */
START_TEST(test_dedup_receipts)
{
    tl_cfg_set(&fx.cfg, "brokerDeduplicationEnabled", "true");
    start();
    struct client *cl = connected(21);
    subscribe(cl, TOPIC("dd"), "s", 5, NULL);
    ck_assert_int_eq(producer_named(cl, TOPIC("dd"), 1, "writer"), -1);
    publish_range(cl, 1, 0, 2, NULL);
    send_msg(cl, 1, 1, "again", NULL, false);
    struct wire_frame f;
    expect(cl, T(SEND_RECEIPT), &f);
    ck_assert_uint_eq(f.cmd->send_receipt->sequence_id, 1);
    ck_assert_uint_eq(f.cmd->send_receipt->message_id->ledgerid, UINT64_MAX);
    ck_assert_uint_eq(f.cmd->send_receipt->message_id->entryid, UINT64_MAX);
    wire_frame_clear(&f);
    publish(cl, 1, 3, NULL);
    close_producer(cl, 1, 55);
    ck_assert_int_eq(producer_named(cl, TOPIC("dd"), 2, "writer"), 3);
    /* the subscription got 0, 1, 2, 3 once each */
    flow(cl, 5, 10);
    for (uint64_t i = 0; i < 4; i++)
        ck_assert_uint_eq(expect_message(cl, 5).seq, i);
    expect_nothing(cl);
}
END_TEST

/* Non-persistent topics over the wire: every SEND_RECEIPT carries (0, 0); a consumer gets
 * what arrives within its permits, with id (0, 0), and nothing more (the rest is dropped, not
 * kept for a later FLOW); its ACK is answered. With enableNonPersistentTopics=false a PRODUCER
 * or SUBSCRIBE on one is refused with NotAllowedError, a persistent topic still served. */
START_TEST(test_non_persistent_wire)
{
    start();
    struct client *pc = connected(21), *cc = connected(21);
    subscribe(cc, NP_TOPIC("w"), "s", 5, NULL);
    uint32_t permits = 2;
    flow(cc, 5, permits);
    producer(pc, NP_TOPIC("w"), 1);
    uint64_t sent = 5;
    for (uint64_t i = 0; i < sent; i++) {
        struct ml_position pos = publish(pc, 1, i, NULL);
        ck_assert(pos.ledger == 0 && pos.entry == 0);
    }
    for (uint64_t i = 0; i < permits; i++) {
        struct got g = expect_message(cc, 5);
        ck_assert_uint_eq(g.seq, i);
        ck_assert(g.pos.ledger == 0 && g.pos.entry == 0);
    }
    expect_nothing(cc);
    ack(cc, 5, (struct ml_position){0, 0}, false, NULL, 0, 0, 77);
    expect_ack_ok(cc, 5, 77);
    flow(cc, 5, 10); /* nothing was kept for later */
    expect_nothing(cc);
    publish(pc, 1, sent, NULL);
    ck_assert_uint_eq(expect_message(cc, 5).seq, sent);
    /* a partitioned non-persistent topic answers its partitions as a persistent one */
    ck_assert_int_eq(ns_partitions_set(fx.ns, NP_TOPIC("parts"), 3, true, NULL, NULL), 0);
    partitioned_metadata(pc, NP_TOPIC("parts"), 9);
    expect_partitions(pc, 9, 3, 0);
}
END_TEST

START_TEST(test_non_persistent_disabled_wire)
{
    tl_cfg_set(&fx.cfg, "enableNonPersistentTopics", "false");
    start();
    struct client *cl = connected(21);
    ck_assert_int_eq(producer_v(cl, NP_TOPIC("off"), 1, 31, -1), -SE(NotAllowedError) - 1);
    subscribe_req(cl, NP_TOPIC("off"), "s", 5, 32, NULL);
    expect_error(cl, 32, SE(NotAllowedError), NULL);
    producer(cl, TOPIC("on"), 2);
}
END_TEST

/* ---- consuming ----------------------------------------------------------------------------- */

START_TEST(test_second_exclusive_consumer_refused)
{
    start();
    struct client *cl = connected(17);
    struct tl_sub_opts ex = {.type = EXCLUSIVE};
    subscribe(cl, "exclusive", "s", 1, &ex);
    subscribe_req(cl, "exclusive", "s", 2, 2, &ex);
    expect_error(cl, 2, SE(ConsumerBusy), "Exclusive consumer is already connected");
}
END_TEST

/* read_compacted on a Shared or Key_Shared subscription is refused as Pulsar refuses it;
 * Exclusive takes it. */
START_TEST(test_read_compacted_refused_on_shared)
{
    start();
    struct client *cl = connected(17);
    struct tl_sub_opts sh = {.type = SHARED, .read_compacted = true};
    subscribe_req(cl, TOPIC("rc"), "s", 1, 1, &sh);
    expect_error(cl, 1, SE(NotAllowedError),
                 "readCompacted only allowed on failover or exclusive subscriptions");
    struct tl_sub_opts ex = {.type = EXCLUSIVE, .read_compacted = true};
    subscribe(cl, TOPIC("rc"), "s", 2, &ex);
}
END_TEST

/* A new subscription starts at the end (Latest, the default) or at the first entry
 * (Earliest). */
START_TEST(test_initial_position)
{
    struct client *cl = published(TOPIC("pos"), 2, NULL);
    subscribe(cl, TOPIC("pos"), "late", 1, NULL);
    struct tl_sub_opts early = {.type = EXCLUSIVE, .earliest = true};
    subscribe(cl, TOPIC("pos"), "early", 2, &early);
    flow(cl, 1, 10);
    expect_nothing(cl);
    flow(cl, 2, 10);
    for (uint64_t seq = 0; seq < 3; seq++)
        ck_assert_uint_eq(expect_message(cl, 2).seq, seq);
    expect_nothing(cl);
    publish(cl, 1, 3, NULL);
    /* both get the new one (in either order) */
    struct got x = expect_message_any(cl);
    struct got y = expect_message_any(cl);
    ck_assert_uint_eq(x.seq, 3);
    ck_assert_uint_eq(y.seq, 3);
    ck_assert_uint_ne(x.consumer_id, y.consumer_id);
    expect_nothing(cl);
}
END_TEST

/* A reader: a non-durable subscription with a start message id gets the entries from that
 * one on (inclusive, as the Java broker), and the subscription goes with its consumer; a
 * durable one stays. */
START_TEST(test_non_durable_reader)
{
    struct ml_position r[4];
    struct client *cl = published(TOPIC("reader"), 3, r);
    Pulsar__Proto__MessageIdData start = tl_msg_id((uint64_t)r[1].ledger, (uint64_t)r[1].entry);
    struct tl_sub_opts reader = {.type = EXCLUSIVE, .non_durable = true, .start = &start};
    subscribe(cl, TOPIC("reader"), "reader-1", 1, &reader);
    flow(cl, 1, 10);
    for (uint64_t seq = 1; seq < 4; seq++) {
        struct got g = expect_message(cl, 1);
        ck_assert_uint_eq(g.seq, seq);
        ck_assert_int_eq(ml_pos_cmp(g.pos, r[seq]), 0);
    }
    expect_nothing(cl);
    struct tl_sub_opts durable = {.type = EXCLUSIVE, .earliest = true};
    subscribe(cl, TOPIC("reader"), "durable", 2, &durable);
    ck_assert(sub_exists(TOPIC("reader"), "reader-1"));
    close_consumer(cl, 1, 61);
    expect_success(cl, 61);
    close_consumer(cl, 2, 62);
    expect_success(cl, 62);
    pump();
    ck_assert(!sub_exists(TOPIC("reader"), "reader-1"));
    ck_assert(sub_exists(TOPIC("reader"), "durable"));
}
END_TEST

/* A cumulative ACK acknowledges everything up to its id: a redelivery brings only what is
 * after it. ACK_RESPONSE answers an ACK that carries a request id, only then. */
START_TEST(test_cumulative_ack)
{
    start();
    struct client *cl = connected(21);
    subscribe(cl, TOPIC("cumul"), "s", 1, NULL);
    producer(cl, TOPIC("cumul"), 1);
    struct ml_position r[5];
    publish_range(cl, 1, 0, 4, r);
    flow(cl, 1, 10);
    for (uint64_t seq = 0; seq < 5; seq++)
        ck_assert_uint_eq(expect_message(cl, 1).seq, seq);
    ack(cl, 1, r[0], true, NULL, 0, 0, NO_ID); /* no request id: no answer */
    expect_nothing(cl);
    ack(cl, 1, r[2], true, NULL, 0, 0, 71);
    expect_ack_ok(cl, 1, 71);
    redeliver(cl, 1);
    for (uint64_t seq = 3; seq < 5; seq++)
        ck_assert_uint_eq(expect_message(cl, 1).seq, seq);
    expect_nothing(cl);
    struct topic_sub_stats st;
    first_sub(TOPIC("cumul"), &st);
    ck_assert_int_eq(ml_pos_cmp(st.mark_delete, r[2]), 0);
    /* an ACK of an unknown consumer answers ConsumerNotFound */
    ack(cl, 9, r[3], false, NULL, 0, 0, 72);
    expect_ack_response(cl, 9, 72, SE(ConsumerNotFound), "Consumer not found");
}
END_TEST

/* Batch-index acks (docs/wire-pulsar.md §4): an ACK with an ack set clears those batch
 * indexes only; a redelivered batch carries the set of what is still unacknowledged, and
 * the entry is done once no bit is left. */
START_TEST(test_batch_index_ack)
{
    start();
    struct client *cl = connected(21);
    struct tl_sub_opts sh = {.type = SHARED};
    subscribe(cl, TOPIC("batch"), "s", 1, &sh);
    producer(cl, TOPIC("batch"), 1);
    struct msg_opts four = {.batch = 4};
    struct ml_position r = publish(cl, 1, 0, &four);
    flow(cl, 1, 100);
    struct got g = expect_message(cl, 1);
    ck_assert_int_eq(g.num_messages, 4);
    ck_assert_uint_eq(g.n_ack_set, 0);
    /* acknowledge indexes 0 and 2: bits 1 and 3 stay set (not yet acknowledged) */
    const int64_t left = 0xa;
    ack(cl, 1, r, false, &left, 1, 4, 81);
    expect_ack_ok(cl, 1, 81);
    redeliver(cl, 1);
    g = expect_message(cl, 1);
    ck_assert_int_eq(ml_pos_cmp(g.pos, r), 0);
    ck_assert_uint_eq(g.n_ack_set, 1);
    ck_assert_int_eq(g.ack_set0, left);
    ck_assert_uint_ge(g.redelivery_count, 1);
    const int64_t none = 0;
    ack(cl, 1, r, false, &none, 1, 4, 82);
    expect_ack_ok(cl, 1, 82);
    redeliver(cl, 1);
    expect_nothing(cl);
    struct topic_sub_stats st;
    first_sub(TOPIC("batch"), &st);
    ck_assert_int_eq(st.backlog, 0);
    ck_assert_int_eq(ml_pos_cmp(st.mark_delete, r), 0);
}
END_TEST

/* Failover: one active consumer gets the messages; the others are told they are inactive
 * (ACTIVE_CONSUMER_CHANGE). When the active one leaves, the next becomes active and gets
 * what was not acknowledged, then the rest. */
START_TEST(test_failover_subscription)
{
    tl_cfg_set(&fx.cfg, "activeConsumerFailoverDelayTimeMillis", "0");
    start();
    struct client *a = connected(21), *b = connected(21), *p = connected(21);
    struct tl_sub_opts fa = {.type = FAILOVER, .name = "a"}, fb = {.type = FAILOVER, .name = "b"};
    subscribe(a, TOPIC("failover"), "f", 1, &fa);
    expect_active(a, 1, true);
    subscribe(b, TOPIC("failover"), "f", 2, &fb);
    expect_active(b, 2, false);
    flow(a, 1, 10);
    flow(b, 2, 10);
    producer(p, TOPIC("failover"), 1);
    struct ml_position r[5];
    publish_range(p, 1, 0, 2, r);
    for (uint64_t seq = 0; seq < 3; seq++)
        ck_assert_uint_eq(expect_message(a, 1).seq, seq);
    expect_nothing(b);
    ack(a, 1, r[1], true, NULL, 0, 0, 91); /* 0 and 1 done, 2 not */
    expect_ack_ok(a, 1, 91);
    close_consumer(a, 1, 92);
    expect_success(a, 92);
    expect_active(b, 2, true);
    ck_assert_uint_eq(expect_message(b, 2).seq, 2);
    publish_range(p, 1, 3, 4, r);
    for (uint64_t seq = 3; seq < 5; seq++)
        ck_assert_uint_eq(expect_message(b, 2).seq, seq);
    expect_nothing(b);
    expect_nothing(a);
}
END_TEST

/* Key_Shared: each key goes to one consumer, in order, and the keys are spread over the
 * consumers; every message is delivered once. */
START_TEST(test_key_shared_subscription)
{
    enum { KEYS = 10, PER_KEY = 4, N = KEYS * PER_KEY };
    start();
    struct client *a = connected(21), *b = connected(21), *p = connected(21);
    struct tl_sub_opts ka = {.type = KEY_SHARED, .name = "ka"},
                       kb = {.type = KEY_SHARED, .name = "kb"};
    subscribe(a, TOPIC("keys"), "k", 1, &ka);
    subscribe(b, TOPIC("keys"), "k", 2, &kb);
    flow(a, 1, 1000);
    flow(b, 2, 1000);
    producer(p, TOPIC("keys"), 1);
    char key[KEYS][8];
    for (int i = 0; i < N; i++) {
        snprintf(key[i % KEYS], sizeof key[0], "key-%d", i % KEYS);
        struct msg_opts o = {.key = key[i % KEYS]};
        publish(p, 1, (uint64_t)i, &o);
    }
    int owner[KEYS], last[KEYS], count[2] = {0, 0};
    bool seen[N];
    memset(seen, 0, sizeof seen);
    for (int k = 0; k < KEYS; k++) {
        owner[k] = -1;
        last[k] = -1;
    }
    struct client *who[2] = {a, b};
    for (int c = 0; c < 2; c++) {
        pump();
        while (evbuffer_get_length(bufferevent_get_input(who[c]->peer.bev)) > 0) {
            struct got g = expect_message(who[c], (uint64_t)c + 1);
            int seq = (int)g.seq, k = seq % KEYS;
            ck_assert_int_lt(seq, N);
            ck_assert_msg(!seen[seq], "message %d delivered twice", seq);
            seen[seq] = true;
            ck_assert_msg(owner[k] == -1 || owner[k] == c, "key %d went to both consumers", k);
            owner[k] = c;
            ck_assert_msg(seq > last[k], "key %d out of order", k);
            last[k] = seq;
            count[c]++;
        }
    }
    ck_assert_int_eq(count[0] + count[1], N);
    ck_assert_int_gt(count[0], 0);
    ck_assert_int_gt(count[1], 0);
}
END_TEST

/* SEEK resets the subscription to a message id or a publish time: the broker closes its
 * consumers (CLOSE_CONSUMER), answers SUCCESS, and a consumer subscribing again gets the
 * messages from there on. */
/* SEEK to a message id (pos) or, with pos NULL, a publish time (ts; 0: neither). */
static void seek(struct client *cl, uint64_t consumer_id, uint64_t request_id,
                 const struct ml_position *pos, uint64_t ts)
{
    Pulsar__Proto__MessageIdData id = PULSAR__PROTO__MESSAGE_ID_DATA__INIT;
    Pulsar__Proto__CommandSeek sk = PULSAR__PROTO__COMMAND_SEEK__INIT;
    sk.consumer_id = consumer_id;
    sk.request_id = request_id;
    if (pos) {
        id.ledgerid = (uint64_t)pos->ledger;
        id.entryid = (uint64_t)pos->entry;
        sk.message_id = &id;
    } else if (ts) {
        sk.has_message_publish_time = 1;
        sk.message_publish_time = ts;
    }
    SEND(cl, SEEK, seek, sk);
}

/* After a SEEK of consumer `old`: CLOSE_CONSUMER, SUCCESS; a consumer subscribing again gets
 * the messages from first to last. */
static void expect_seeked(struct client *cl, uint64_t old, uint64_t request_id, uint64_t again,
                          uint64_t first, uint64_t last)
{
    expect_close_consumer(cl, old);
    expect_success(cl, request_id);
    struct tl_sub_opts early = {.type = EXCLUSIVE, .earliest = true};
    subscribe(cl, TOPIC("seek"), "s", again, &early);
    flow(cl, again, 10);
    for (uint64_t seq = first; seq <= last; seq++)
        ck_assert_uint_eq(expect_message(cl, again).seq, seq);
    expect_nothing(cl);
}

START_TEST(test_seek)
{
    struct ml_position r[5];
    struct client *cl = published(TOPIC("seek"), 4, r);
    struct tl_sub_opts early = {.type = EXCLUSIVE, .earliest = true};
    subscribe(cl, TOPIC("seek"), "s", 1, &early);
    flow(cl, 1, 10);
    for (uint64_t seq = 0; seq < 5; seq++)
        ck_assert_uint_eq(expect_message(cl, 1).seq, seq);
    seek(cl, 1, 101, &r[2], 0);
    expect_seeked(cl, 1, 101, 2, 2, 4);
    /* by publish time: the first message published at or after 1003 */
    seek(cl, 2, 102, NULL, 1003);
    expect_seeked(cl, 2, 102, 3, 3, 4);
    /* neither an id nor a time; an unknown consumer (Pulsar: MetadataError) */
    seek(cl, 3, 103, NULL, 0);
    expect_error(cl, 103, SE(UnknownError), "Seek needs a message id or a publish time");
    seek(cl, 77, 104, &r[0], 0);
    expect_error(cl, 104, SE(MetadataError), "Consumer not found");
}
END_TEST

static void unsubscribe(struct client *cl, uint64_t consumer_id, uint64_t request_id, bool force)
{
    Pulsar__Proto__CommandUnsubscribe u = PULSAR__PROTO__COMMAND_UNSUBSCRIBE__INIT;
    u.consumer_id = consumer_id;
    u.request_id = request_id;
    if (force) {
        u.has_force = 1;
        u.force = 1;
    }
    SEND(cl, UNSUBSCRIBE, unsubscribe, u);
}

/* UNSUBSCRIBE deletes the subscription when the caller is its only consumer; with others
 * attached it is refused (ConsumerBusy) unless forced, and then they are closed too. */
START_TEST(test_unsubscribe)
{
    start();
    struct client *a = connected(21), *b = connected(21);
    struct tl_sub_opts sh = {.type = SHARED};
    subscribe(a, TOPIC("unsub"), "u", 1, &sh);
    subscribe(b, TOPIC("unsub"), "u", 2, &sh);
    unsubscribe(a, 1, 111, false);
    expect_error(a, 111, SE(ConsumerBusy), "Subscription has other connected consumers");
    ck_assert(sub_exists(TOPIC("unsub"), "u"));
    close_consumer(b, 2, 112);
    expect_success(b, 112);
    unsubscribe(a, 1, 113, false);
    expect_success(a, 113);
    ck_assert(!sub_exists(TOPIC("unsub"), "u"));
    /* the consumer is gone with its subscription */
    unsubscribe(a, 1, 114, false);
    expect_error(a, 114, SE(MetadataError), "Consumer not found");

    subscribe(a, TOPIC("unsub"), "v", 3, &sh);
    subscribe(b, TOPIC("unsub"), "v", 4, &sh);
    unsubscribe(a, 3, 115, true);
    expect_success(a, 115);
    expect_close_consumer(b, 4);
    ck_assert(!sub_exists(TOPIC("unsub"), "v"));
}
END_TEST

static void get_last_id(struct client *cl, uint64_t consumer_id, uint64_t request_id)
{
    SEND_CONSUMER_REQ(cl, GET_LAST_MESSAGE_ID, GetLastMessageId, getlastmessageid, consumer_id,
                      request_id);
}

/* The last stored id, its batch index (messages in a batch - 1, else -1) and partition, and
 * the subscription's mark-delete position. */
static void expect_last_id(struct client *cl, uint64_t request_id, struct ml_position last,
                           int32_t batch_index, struct ml_position mark_delete)
{
    struct wire_frame f;
    expect(cl, T(GET_LAST_MESSAGE_ID_RESPONSE), &f);
    Pulsar__Proto__CommandGetLastMessageIdResponse *r = f.cmd->getlastmessageidresponse;
    ck_assert_uint_eq(r->request_id, request_id);
    ck_assert_uint_eq(r->last_message_id->ledgerid, (uint64_t)last.ledger);
    ck_assert_uint_eq(r->last_message_id->entryid, (uint64_t)last.entry);
    ck_assert_int_eq(r->last_message_id->partition, -1);
    ck_assert(r->last_message_id->has_batch_index);
    ck_assert_int_eq(r->last_message_id->batch_index, batch_index);
    ck_assert_ptr_nonnull(r->consumer_mark_delete_position);
    ck_assert_uint_eq(r->consumer_mark_delete_position->ledgerid, (uint64_t)mark_delete.ledger);
    ck_assert_uint_eq(r->consumer_mark_delete_position->entryid, (uint64_t)mark_delete.entry);
    wire_frame_clear(&f);
}

START_TEST(test_get_last_message_id)
{
    start();
    struct client *cl = connected(21);
    subscribe(cl, TOPIC("last"), "s", 1, NULL);
    /* an empty topic: entry -1 of the current ledger, and nothing acknowledged */
    get_last_id(cl, 1, 121);
    struct wire_frame f;
    expect(cl, T(GET_LAST_MESSAGE_ID_RESPONSE), &f);
    Pulsar__Proto__CommandGetLastMessageIdResponse *e = f.cmd->getlastmessageidresponse;
    ck_assert_uint_eq(e->request_id, 121);
    ck_assert_uint_eq(e->last_message_id->entryid, NO_ID);
    int64_t ledger = (int64_t)e->last_message_id->ledgerid;
    ck_assert_int_eq(e->last_message_id->batch_index, -1);
    wire_frame_clear(&f);

    producer(cl, TOPIC("last"), 1);
    struct ml_position r[4];
    publish_range(cl, 1, 0, 2, r);
    ck_assert_int_eq(r[0].ledger, ledger);
    struct ml_position none = {ledger, -1};
    get_last_id(cl, 1, 122);
    expect_last_id(cl, 122, r[2], -1, none);
    struct msg_opts five = {.batch = 5};
    r[3] = publish(cl, 1, 3, &five);
    get_last_id(cl, 1, 123);
    expect_last_id(cl, 123, r[3], 4, none);

    flow(cl, 1, 10);
    for (uint64_t seq = 0; seq < 4; seq++)
        ck_assert_uint_eq(expect_message(cl, 1).seq, seq);
    ack(cl, 1, r[1], true, NULL, 0, 0, 124);
    expect_ack_ok(cl, 1, 124);
    get_last_id(cl, 1, 125);
    expect_last_id(cl, 125, r[3], 4, r[1]);
    /* an unknown consumer: Pulsar answers MetadataError "Consumer not found" */
    get_last_id(cl, 42, 126);
    expect_error(cl, 126, SE(MetadataError), "Consumer not found");
}
END_TEST

static void consumer_stats(struct client *cl, uint64_t consumer_id, uint64_t request_id)
{
    SEND_CONSUMER_REQ(cl, CONSUMER_STATS, ConsumerStats, consumerstats, consumer_id, request_id);
}

/* CONSUMER_STATS answers the consumer's name, address and subscription type; an unknown
 * consumer gets ConsumerNotFound. */
START_TEST(test_consumer_stats)
{
    start();
    struct client *cl = connected(21);
    struct tl_sub_opts named = {.type = SHARED, .name = "cname"};
    subscribe(cl, TOPIC("stats"), "s", 3, &named);
    struct tl_sub_opts fo = {.type = FAILOVER};
    subscribe(cl, TOPIC("stats"), "f", 4, &fo);
    expect_active(cl, 4, true);
    consumer_stats(cl, 3, 131);
    struct wire_frame f;
    expect(cl, T(CONSUMER_STATS_RESPONSE), &f);
    Pulsar__Proto__CommandConsumerStatsResponse *r = f.cmd->consumerstatsresponse;
    ck_assert_uint_eq(r->request_id, 131);
    ck_assert(!r->has_error_code);
    ck_assert_str_eq(r->consumername, "cname");
    ck_assert_str_eq(r->address, "pair");
    ck_assert_str_eq(r->type, "Shared");
    wire_frame_clear(&f);
    consumer_stats(cl, 4, 132);
    expect(cl, T(CONSUMER_STATS_RESPONSE), &f);
    r = f.cmd->consumerstatsresponse;
    ck_assert_uint_eq(r->request_id, 132);
    ck_assert_str_eq(r->type, "Failover");
    char gen[64];
    snprintf(gen, sizeof gen, "consumer-%d-4", 1); /* generated: connection id, consumer id */
    ck_assert_str_eq(r->consumername, gen);
    wire_frame_clear(&f);
    consumer_stats(cl, 5, 133);
    expect(cl, T(CONSUMER_STATS_RESPONSE), &f);
    r = f.cmd->consumerstatsresponse;
    ck_assert_uint_eq(r->request_id, 133);
    ck_assert(r->has_error_code);
    ck_assert_int_eq(r->error_code, SE(ConsumerNotFound));
    ck_assert_str_eq(r->error_message, "Consumer not found");
    wire_frame_clear(&f);
}
END_TEST

/* ---- names -------------------------------------------------------------------------------- */

/* A NUL byte in a string of a command that names no topic (a namespace, a schema's topic,
 * the client version) closes that connection with a reason: the name cut at the NUL is
 * never acted on; other connections go on. */
START_TEST(test_nul_in_other_commands_closes)
{
    start();
    struct client *other = connected(17);
    struct client *cl = connected(17);
    Pulsar__Proto__CommandGetTopicsOfNamespace g =
        PULSAR__PROTO__COMMAND_GET_TOPICS_OF_NAMESPACE__INIT;
    g.namespace_ = "public/def@ault";
    g.request_id = 21;
    SEND_NUL(cl, GET_TOPICS_OF_NAMESPACE, gettopicsofnamespace, g);
    expect_closed(cl);

    struct client *sc = connected(17);
    Pulsar__Proto__CommandGetSchema gs = PULSAR__PROTO__COMMAND_GET_SCHEMA__INIT;
    gs.topic = "persistent://public/default/s@x";
    gs.request_id = 22;
    SEND_NUL(sc, GET_SCHEMA, getschema, gs);
    expect_closed(sc);
    ck_assert(!other->peer.eof);
}
END_TEST

/* A topic name holding a NUL byte or a control character, or too long, is refused with
 * InvalidTopicName on every command that names a topic; nothing is served under the name
 * cut at the NUL, and the connection goes on. */
START_TEST(test_bad_topic_names_refused)
{
    start();
    struct client *cl = connected(17);
    const char *nul_name = "persistent://public/default/a@b";

    Pulsar__Proto__CommandLookupTopic l = PULSAR__PROTO__COMMAND_LOOKUP_TOPIC__INIT;
    l.topic = (char *)nul_name;
    l.request_id = 11;
    SEND_NUL(cl, LOOKUP, lookuptopic, l);
    expect_lookup_failed(cl, 11, SE(InvalidTopicName));

    Pulsar__Proto__CommandPartitionedTopicMetadata pm =
        PULSAR__PROTO__COMMAND_PARTITIONED_TOPIC_METADATA__INIT;
    pm.topic = (char *)nul_name;
    pm.request_id = 12;
    SEND_NUL(cl, PARTITIONED_METADATA, partitionmetadata, pm);
    expect_partitions(cl, 12, -1, SE(InvalidTopicName));

    Pulsar__Proto__CommandProducer pr = PULSAR__PROTO__COMMAND_PRODUCER__INIT;
    pr.topic = (char *)nul_name;
    pr.producer_id = 1;
    pr.request_id = 13;
    SEND_NUL(cl, PRODUCER, producer, pr);
    expect_error(cl, 13, SE(InvalidTopicName), NULL);

    Pulsar__Proto__CommandSubscribe sub = PULSAR__PROTO__COMMAND_SUBSCRIBE__INIT;
    sub.topic = (char *)nul_name;
    sub.subscription = "s";
    sub.consumer_id = 1;
    sub.request_id = 14;
    SEND_NUL(cl, SUBSCRIBE, subscribe, sub);
    expect_error(cl, 14, SE(InvalidTopicName), NULL);
    ck_assert_ptr_null(topic_find(fx.topics, TOPIC("a")));

    /* a control character, and a name over the length bound */
    tl_send_producer(&cl->peer,
                     "persistent://public/default/a\x01"
                     "b",
                     1, 15);
    expect_error(cl, 15, SE(InvalidTopicName), NULL);
    char *longname = mg_malloc(TOPIC_NAME_MAX_LEN + 2);
    memset(longname, 'x', TOPIC_NAME_MAX_LEN + 1);
    longname[TOPIC_NAME_MAX_LEN + 1] = '\0';
    tl_send_producer(&cl->peer, longname, 1, 16);
    expect_error(cl, 16, SE(InvalidTopicName), NULL);
    mg_free(longname);

    send_ping(cl); /* the connection goes on */
    expect_pong(cl);
}
END_TEST

/* ---- connections on I/O loops (numIOThreads, docs/threads.md) ---------------------------- */

/* start() with n I/O loops for the sockets of conn_accept. */
static void start_io(int n)
{
    signal(SIGPIPE, SIG_IGN); /* as the broker (main.c): writes to a closed peer fail */
    start();
    fx.env.io = conn_iopool_new(fx.loop, n);
    ck_assert_ptr_nonnull(fx.env.io);
}

/* A client over a pair of local sockets whose server end conn_accept hands to an I/O loop;
 * sockbuf > 0: the kernel buffers hold about that many bytes each way. */
static struct client *client_new_io(int sockbuf)
{
    ck_assert_int_lt(fx.n_cl, MAX_CLIENTS);
    int sv[2];
    ck_assert_int_eq(socketpair(AF_UNIX, SOCK_STREAM, 0, sv), 0);
    for (int i = 0; i < 2 && sockbuf > 0; i++) {
        ck_assert_int_eq(setsockopt(sv[i], SOL_SOCKET, SO_SNDBUF, &sockbuf, sizeof sockbuf), 0);
        ck_assert_int_eq(setsockopt(sv[i], SOL_SOCKET, SO_RCVBUF, &sockbuf, sizeof sockbuf), 0);
    }
    struct client *cl = &fx.cl[fx.n_cl++];
    tl_peer_open(&cl->peer, fx.base, sv[1]);
    cl->conn = conn_accept(&fx.env, sv[0], NULL, 0, ++fx.next_id);
    return cl;
}

static struct client *connected_io(int sockbuf)
{
    struct client *cl = client_new_io(sockbuf);
    handshake_v(cl, 21, 21);
    return cl;
}

/* Write SENDs first..last of producer 1 into b, payloads of sizes spread over 1..3000 bytes
 * (frames cross the reads of the I/O loop). */
static void write_sends(struct evbuffer *b, uint64_t first, uint64_t last)
{
    static char payload[3001];
    for (uint64_t seq = first; seq <= last; seq++) {
        size_t len = 1 + (seq * 7919) % 3000;
        memset(payload, 'a' + (int)(seq % 26), len);
        payload[len] = '\0';
        write_send(b, 1, seq, payload, NULL);
    }
}

/* Each connection's commands reach its handlers in the order the client sent them and its
 * frames reach the client in the order they were written, with several connections on two
 * I/O loops at once: the receipts of bursts of SENDs come back in sequence order at
 * increasing positions, with PONGs for PINGs sent after the burst. */
START_TEST(test_io_commands_and_frames_in_order)
{
    start_io(2);
    enum { CLIENTS = 5, SENDS = 400 };
    struct client *cl[CLIENTS];
    for (int i = 0; i < CLIENTS; i++) {
        cl[i] = connected_io(0);
        char topic[64];
        snprintf(topic, sizeof topic, "persistent://public/default/io-order-%d", i);
        producer(cl[i], topic, 1);
    }
    for (int i = 0; i < CLIENTS; i++) { /* every burst in flight before any is read */
        struct evbuffer *b = evbuffer_new();
        write_sends(b, 0, SENDS - 1);
        ck_assert_int_eq(bufferevent_write_buffer(cl[i]->peer.bev, b), 0);
        evbuffer_free(b);
    }
    for (int i = 0; i < CLIENTS; i++) {
        struct ml_position prev = {-1, -1};
        for (uint64_t seq = 0; seq < SENDS; seq++) {
            struct ml_position pos = expect_receipt(cl[i], 1, seq);
            ck_assert(pos.ledger > prev.ledger ||
                      (pos.ledger == prev.ledger && pos.entry > prev.entry));
            prev = pos;
        }
        tl_send_ping(&cl[i]->peer);
        expect_pong(cl[i]);
    }
}
END_TEST

/* The first *n clients closed (their close callback ran). */
static bool first_closed(const void *arg)
{
    const int *n = arg;
    for (int i = 0; i < *n; i++)
        if (fx.cl[i].conn)
            return false;
    return true;
}

/* Closes from both sides at once, while commands and answers are in flight between the
 * loops: clients that close right after a burst, connections the broker closes while their
 * client is still sending, a garbage frame. Each ends (the close callback, once), the others
 * go on (a PING is answered), and the I/O loops free everything (ASan: no use after free, no
 * leak). */
START_TEST(test_io_close_races)
{
    start_io(2);
    enum { CLIENTS = 12 };
    struct client *cl[CLIENTS];
    for (int i = 0; i < CLIENTS; i++) {
        cl[i] = connected_io(0);
        producer(cl[i], "persistent://public/default/io-close", 1);
    }
    struct client *survivor = connected_io(0);
    for (int i = 0; i < CLIENTS; i++) {
        struct evbuffer *b = evbuffer_new();
        write_sends(b, 0, 50);
        tl_send_ping(&cl[i]->peer);
        ck_assert_int_eq(bufferevent_write_buffer(cl[i]->peer.bev, b), 0);
        evbuffer_free(b);
        switch (i % 3) {
        case 0: /* the client goes while its burst is on the way */
            bufferevent_flush(cl[i]->peer.bev, EV_WRITE, BEV_FLUSH);
            event_base_loop(fx.base, EVLOOP_NONBLOCK);
            tl_peer_close(&cl[i]->peer);
            break;
        case 1: /* the broker closes it while the burst is on the way */
            event_base_loop(fx.base, EVLOOP_NONBLOCK);
            conn_close(cl[i]->conn, "closed by the test");
            break;
        default: /* garbage after the burst: a frame that cannot be decoded */
            tl_peer_send_raw(&cl[i]->peer, "\0\0\0\x08\0\0\0\x04junk", 12);
            break;
        }
    }
    int n = CLIENTS; /* (the survivor came after them) */
    ck_assert_msg(tl_base_until(fx.base, first_closed, &n, TL_REAL_WAIT_MS),
                  "a connection did not close");
    ck_assert_ptr_nonnull(survivor->conn);
    tl_send_ping(&survivor->peer);
    expect_pong(survivor);
}
END_TEST

static bool outbound_empty(const void *arg)
{
    struct client *cl = &fx.cl[0];
    (void)arg;
    if (tl_peer_pending(&cl->peer)) /* PONGs: read and dropped */
        evbuffer_drain(bufferevent_get_input(cl->peer.bev), tl_peer_pending(&cl->peer));
    return conn_outbound_bytes(cl->conn) == 0;
}

/* The bounds hold across the hand-off: with the client not reading, the output queued on
 * the I/O loop counts as the connection's (conn_outbound_bytes) and reading the client's
 * commands pauses above connectionMaxOutboundBytes; once the client reads everything, the
 * count goes back to 0 and the commands that waited are answered. */
START_TEST(test_io_outbound_counted_and_drained)
{
    tl_cfg_set(&fx.cfg, "connectionMaxOutboundBytes", "65536");
    start_io(2);
    struct client *cl = connected_io(4096);
    producer(cl, "persistent://public/default/io-out", 1);
    /* a client that stops reading: its socket buffers fill, then the I/O loop's output */
    bufferevent_disable(cl->peer.bev, EV_READ);
    enum { N = 600 };
    struct evbuffer *b = evbuffer_new();
    write_sends(b, 0, N - 1);
    ck_assert_int_eq(bufferevent_write_buffer(cl->peer.bev, b), 0);
    evbuffer_free(b);
    /* PINGs until the connection stops taking them (each PONG is queued output) */
    for (int i = 0; i < 20000 && !cl->conn->read_paused; i++) {
        tl_send_ping(&cl->peer);
        event_base_loop(fx.base, EVLOOP_NONBLOCK);
    }
    ck_assert_msg(cl->conn->read_paused, "reading never paused");
    ck_assert_uint_gt(conn_outbound_bytes(cl->conn), 65536);
    bufferevent_enable(cl->peer.bev, EV_READ);
    for (uint64_t seq = 0; seq < N; seq++) {
        struct wire_frame f;
        ck_assert_int_eq(tl_peer_skip_to(&cl->peer, T(SEND_RECEIPT), &f), 1);
        ck_assert_uint_eq(f.cmd->send_receipt->sequence_id, seq);
        wire_frame_clear(&f);
    }
    ck_assert_msg(tl_base_until(fx.base, outbound_empty, cl->conn, TL_REAL_WAIT_MS),
                  "%zu bytes still counted as queued", conn_outbound_bytes(cl->conn));
    ck_assert(!cl->conn->read_paused);
}
END_TEST

/* A burst the client sent before the connection's I/O loop reads it, larger than libevent's
 * 4 KiB read, is taken in one read callback (mg_bev_read_more, as on the main loop): one
 * FRAMES message to the main loop, not one per 4 KiB. Every PING of it is answered. */
START_TEST(test_io_burst_one_read)
{
    start_io(2);
    int sv[2];
    ck_assert_int_eq(socketpair(AF_UNIX, SOCK_STREAM, 0, sv), 0);
    int sockbuf = 1 << 20;
    for (int i = 0; i < 2; i++) {
        ck_assert_int_eq(setsockopt(sv[i], SOL_SOCKET, SO_SNDBUF, &sockbuf, sizeof sockbuf), 0);
        ck_assert_int_eq(setsockopt(sv[i], SOL_SOCKET, SO_RCVBUF, &sockbuf, sizeof sockbuf), 0);
    }
    struct client *cl = &fx.cl[fx.n_cl++];
    tl_peer_open(&cl->peer, fx.base, sv[1]);
    tl_send_connect(&cl->peer, "check", 21);
    struct evbuffer *out = bufferevent_get_output(cl->peer.bev);
    /* 16 KiB to 100 KiB of PINGs: more than 4 KiB, within one read callback's bound */
    size_t want = (size_t)(16 + mg_mono_us() % 84) * 1024;
    int pings = 0;
    while (evbuffer_get_length(out) < want) {
        tl_send_ping(&cl->peer);
        pings++;
    }
    size_t burst = evbuffer_get_length(out);
    /* all of it in the socket before the connection has an I/O loop */
    uint64_t until = mg_mono_us() + TL_REAL_WAIT_MS * 1000;
    while (evbuffer_get_length(out) > 0) {
        ck_assert_msg(mg_mono_us() < until, "%zu bytes not sent", evbuffer_get_length(out));
        event_base_loop(fx.base, EVLOOP_ONCE | EVLOOP_NONBLOCK);
    }
    int queued = 0;
    ck_assert_int_eq(ioctl(sv[0], FIONREAD, &queued), 0);
    ck_assert_uint_eq((size_t)queued, burst);
    cl->conn = conn_accept(&fx.env, sv[0], NULL, 0, ++fx.next_id);
    struct wire_frame f;
    ck_assert_int_eq(tl_peer_skip_to(&cl->peer, T(CONNECTED), &f), 1);
    wire_frame_clear(&f);
    for (int i = 0; i < pings; i++)
        expect_pong(cl);
    ck_assert_msg(cl->conn->io_batches == 1, "a %zu-byte burst came in %" PRIu64 " reads", burst,
                  cl->conn->io_batches);
    tl_send_ping(&cl->peer); /* the connection goes on */
    expect_pong(cl);
}
END_TEST

int main(void)
{
    Suite *s = suite_create("conn");
    TCase *tc = tl_tcase(s, "connection", 30, setup, teardown);
    tl_add(tc, test_handshake_and_ping, test_protocol_versions, test_first_frame_must_be_connect,
           test_garbage_closes_only_that_connection, test_keepalive_closes_silent_client);
    tc = tl_tcase(s, "backpressure", 30, setup, teardown);
    tl_add(tc, test_pending_publishes_bounded, test_outbound_bytes_bounded,
           test_slow_consumer_acks_answered, test_slow_consumer_big_entries_acks_answered,
           test_dispatch_high_water);
    tc = tl_tcase(s, "lookups", 30, setup, teardown);
    tl_add(tc, test_get_topics_pattern_and_hash, test_pattern_evaluation_off,
           test_topic_list_watcher, test_auto_creation_policies);
    tl_add(tc, test_lookup_and_partitioned_metadata, test_get_topics_of_namespace,
           test_schema_producers_and_get, test_schema_get_or_create_subscribe);
    tc = tl_tcase(s, "producing", 30, setup, teardown);
    tl_add(tc, test_non_persistent_wire, test_non_persistent_disabled_wire);
    tl_add(tc, test_produce_consume_round_trip, test_send_for_unknown_producer_closes,
           test_dedup_receipts, test_exclusive_producer, test_quota_hold_producer);
    tc = tl_tcase(s, "consuming", 30, setup, teardown);
    tl_add(tc, test_second_exclusive_consumer_refused, test_read_compacted_refused_on_shared,
           test_initial_position, test_non_durable_reader, test_cumulative_ack,
           test_batch_index_ack, test_failover_subscription, test_key_shared_subscription,
           test_seek, test_unsubscribe, test_get_last_message_id, test_consumer_stats,
           test_consumer_backlog_large_writes);
    tc = tl_tcase(s, "io-threads", 60, setup, teardown);
    tl_add(tc, test_io_commands_and_frames_in_order, test_io_close_races,
           test_io_outbound_counted_and_drained, test_io_burst_one_read);
    tc = tl_tcase(s, "names", 30, setup, teardown);
    tl_add(tc, test_bad_topic_names_refused, test_nul_in_other_commands_closes);
    return tl_run(s);
}
