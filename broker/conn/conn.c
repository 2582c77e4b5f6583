/*
 * conn.c - the Pulsar protocol state machine of one client connection: framing, handshake,
 * keep-alive, state, backpressure and the dispatch of commands to the other parts
 * (conn_int.h lists them).
 *
 * Happy path: accept -> CONNECT -> CONNECTED; then any mix of lookups (conn_lookup.c),
 * PRODUCER/SEND (conn_producer.c: receipts in send order once the topic stored each entry),
 * SUBSCRIBE/FLOW/ACK (conn_consumer.c: MESSAGEs pushed by the topic's dispatcher),
 * PING/PONG, CLOSE_*.
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
 * the write-drained callback. Consumers pause dispatch through outbound_bytes() at half that
 * bound (conn_dispatch_high_water), so what the broker dispatches by itself does not stop the
 * reading (unless one entry is larger than half the bound); answers the client asked for and
 * does not read do. With both at the bound, a consumer with permits and a backlog refilled
 * the output above it each time it drained, and its client's ACKs and FLOWs stayed unread
 * until it had nothing left to send.
 */
#include "auth/auth.h"
#include "config/cfg.h"
#include "conn/conn_int.h"
#include "tls/tls.h"
#include "topic/topic.h"
#include "util/alloc.h"
#include "util/bev.h"
#include "util/err.h"
#include "util/log.h"
#include "util/loop.h"
#include "wire/wire.h"

#include <arpa/inet.h>
#include <event2/buffer.h>
#include <event2/bufferevent.h>
#include <event2/bufferevent_ssl.h>
#include <event2/event.h>
#include <inttypes.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <openssl/err.h>
#include <openssl/x509.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>

#define CONN_MAX_FRAMES_PER_PASS 64

static const char *const conn_state_name[] = {"AWAIT_CONNECT", "READY", "CLOSED"};

void conn_ref(struct conn *c)
{
    c->refs++;
}

void conn_unref(struct conn *c)
{
    if (--c->refs > 0)
        return;
    MG_ASSERT(c->state == CONN_CLOSED);
    mg_map_fini(&c->producers);
    mg_map_fini(&c->consumers);
    mg_map_fini(&c->recent_closed);
    mg_free(c->client_version);
    mg_free(c->role);
    X509_free(c->peer_cert);
    mg_free(c);
}

uint64_t conn_id(const struct conn *c)
{
    return c->id;
}

const char *conn_role(const struct conn *c)
{
    return c->role;
}

static void conn_set_state(struct conn *c, enum conn_state st)
{
    MG_DEBUG("conn", "[%" PRIu64 "] %s -> %s", c->id, conn_state_name[c->state],
             conn_state_name[st]);
    c->state = st;
}

bool conn_is_open(const struct conn *c)
{
    return c->state != CONN_CLOSED && (c->bev != NULL || c->io != NULL);
}

struct evbuffer *conn_out(struct conn *c)
{
    return c->io ? c->out : bufferevent_get_output(c->bev);
}

size_t conn_outbound_bytes(struct conn *c)
{
    return c->io ? conn_io_outbound(c) : evbuffer_get_length(conn_out(c));
}

void conn_send(struct conn *c, wire_cmd *cmd)
{
    if (!conn_is_open(c))
        return;
    wire_write_command(conn_out(c), cmd);
}

/* ---- small response helpers ------------------------------------------------------------ */

void conn_send_error(struct conn *c, uint64_t request_id, int err, const char *message)
{
    Pulsar__Proto__CommandError e = PULSAR__PROTO__COMMAND_ERROR__INIT;
    e.request_id = request_id;
    e.error = (Pulsar__Proto__ServerError)mg_err_server_error(err);
    e.message = (char *)message;
    CONN_SEND(c, ERROR, error, e);
}

void conn_send_success(struct conn *c, uint64_t request_id)
{
    Pulsar__Proto__CommandSuccess s = PULSAR__PROTO__COMMAND_SUCCESS__INIT;
    s.request_id = request_id;
    CONN_SEND(c, SUCCESS, success, s);
}

static void conn_send_simple(struct conn *c, Pulsar__Proto__BaseCommand__Type type)
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

void conn_send_close_producer(struct conn *c, uint64_t producer_id)
{
    Pulsar__Proto__CommandCloseProducer cp = PULSAR__PROTO__COMMAND_CLOSE_PRODUCER__INIT;
    cp.producer_id = producer_id;
    cp.request_id = UINT64_MAX; /* broker-initiated: no request to answer */
    CONN_SEND(c, CLOSE_PRODUCER, close_producer, cp);
}

void conn_send_close_consumer(struct conn *c, uint64_t consumer_id)
{
    Pulsar__Proto__CommandCloseConsumer cl = PULSAR__PROTO__COMMAND_CLOSE_CONSUMER__INIT;
    cl.consumer_id = consumer_id;
    cl.request_id = UINT64_MAX;
    CONN_SEND(c, CLOSE_CONSUMER, close_consumer, cl);
}

void conn_send_send_error(struct conn *c, uint64_t producer_id, uint64_t seq,
                          Pulsar__Proto__ServerError error, const char *message)
{
    Pulsar__Proto__CommandSendError e = PULSAR__PROTO__COMMAND_SEND_ERROR__INIT;
    e.producer_id = producer_id;
    e.sequence_id = seq;
    e.error = error;
    e.message = (char *)message;
    CONN_SEND(c, SEND_ERROR, send_error, e);
}

/* ---- flow control ------------------------------------------------------------------------ */

/* connectionMaxOutboundBytes: the output above which reading pauses. */
static size_t conn_max_outbound(const struct cfg *cfg)
{
    return (size_t)(cfg->connection_max_outbound_bytes > 0 ? cfg->connection_max_outbound_bytes
                                                           : 4 << 20);
}

size_t conn_dispatch_high_water(const struct cfg *cfg)
{
    size_t half = conn_max_outbound(cfg) / 2;
    return half > 0 ? half : 1; /* 0 would be no bound at all for the dispatcher */
}

static bool conn_should_pause(struct conn *c)
{
    return c->throttled || c->pending_publish >= c->max_pending_publish ||
           conn_outbound_bytes(c) > c->max_outbound;
}

static void conn_pause_read(struct conn *c)
{
    if (!c->read_paused) {
        c->read_paused = true;
        if (c->bev) /* (an I/O loop stops reading once the frames not dispatched fill up) */
            bufferevent_disable(c->bev, EV_READ);
        MG_DEBUG("conn", "[%" PRIu64 "] reading paused (pending %d, outbound %zu)", c->id,
                 c->pending_publish, conn_outbound_bytes(c));
    }
}

void conn_maybe_resume(struct conn *c)
{
    if (!conn_is_open(c) || !c->read_paused || c->throttled)
        return;
    if (c->pending_publish > c->max_pending_publish / 2 ||
        conn_outbound_bytes(c) > c->max_outbound / 2)
        return;
    c->read_paused = false;
    if (c->bev)
        bufferevent_enable(c->bev, EV_READ);
    /* Frames may already be buffered: process them without waiting for new bytes. */
    event_active(c->resume_ev, EV_READ, 0);
}

static void conn_throttle_end(struct mg_timer *tm, void *arg)
{
    (void)tm;
    struct conn *c = arg;
    c->throttled = false;
    conn_maybe_resume(c);
}

void conn_publish_throttle(struct conn *c, int64_t wait_ms)
{
    if (c->throttled || !conn_is_open(c))
        return;
    c->throttled = true;
    mg_timer_start(&c->throttle, wait_ms > (int64_t)c->throttle_tick_ms ? (uint64_t)wait_ms
                                                                        : c->throttle_tick_ms);
    conn_pause_read(c);
}

struct conn_req *conn_req_new(struct conn *c, uint64_t request_id, uint64_t consumer_id,
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

void conn_req_free(struct conn_req *r)
{
    conn_unref(r->conn);
    mg_free(r);
}

void conn_req_fail(struct conn_req *r, int err, const char *message)
{
    if (conn_is_open(r->conn))
        conn_send_error(r->conn, r->request_id, err, message ? message : mg_strerror(err));
    conn_req_free(r);
}

/* Pulsar's answer to every authentication failure: the provider's reason is only logged. */
#define CONN_AUTH_FAILED "Failed to authenticate"

/* Failed authentications are logged at most once per MG_RATELIMIT_INTERVAL_MS in the whole
 * process (a client retrying with a bad token, or many of them, must not write a line per
 * attempt). Connections run on one loop thread, so one instance serves them all. */
static struct mg_ratelimit conn_auth_log;

/* Check a credential of the client; 0 with c->role and c->auth_exp_ms set, or <0 once the
 * client has been refused (ERROR AuthenticationError, then the close). A refresh
 * (c->role set) must give the same role. */
static int conn_authenticate(struct conn *c, const char *method, bool has_data,
                             const ProtobufCBinaryData *data, const char *step)
{
    struct auth_id id;
    char why[256] = "";
    int64_t now = mg_loop_wall_ms(c->env->loop);
    int rc;
    if (method && strcmp(method, AUTH_METHOD_TLS) == 0) {
        /* the credential is the TLS session's certificate; auth_data is not looked at */
        bool trusted = c->peer_cert_trusted; /* (an I/O loop's connection) */
        struct x509_st *cert = c->bev ? tls_peer_cert(c->bev, &trusted) : c->peer_cert;
        rc = auth_check_cert(c->env->auth, cert, trusted, &id, why, sizeof why);
    } else {
        rc = auth_check(c->env->auth, method, has_data ? (const char *)data->data : NULL,
                        has_data ? data->len : 0, now, &id, why, sizeof why);
    }
    if (rc == 0 && c->role && strcmp(c->role, id.role) != 0) {
        snprintf(why, sizeof why, "role changed from '%s' to '%s'", c->role, id.role);
        auth_id_fini(&id);
        rc = -MG_EAUTH;
    }
    if (rc < 0) {
        uint64_t held;
        if (mg_ratelimit_allow(&conn_auth_log, MG_RATELIMIT_INTERVAL_MS, &held))
            MG_WARN("conn",
                    "[%" PRIu64 "] %s %s: authentication failed: %s (%" PRIu64
                    " more failures since the last line)",
                    c->id, c->peer, step, why, held);
        conn_refuse(c, -MG_EAUTH, CONN_AUTH_FAILED);
        return rc;
    }
    mg_free(c->role);
    c->role = id.role;
    c->auth_exp_ms = id.exp_ms;
    c->auth_challenged = false;
    return 0;
}

/* Every authenticationRefreshCheckSeconds: an expired credential is challenged once; a
 * challenge still unanswered at the next check, or a client that cannot answer one, closes
 * the connection (as Pulsar's ServerCnx.refreshAuthenticationCredentials). */
static void conn_auth_tick(struct mg_timer *t, void *arg)
{
    struct conn *c = arg;
    if (!conn_is_open(c) || c->refusing)
        return;
    mg_timer_start(t, auth_refresh_ms(c->env->auth));
    if (c->auth_exp_ms == 0 || mg_loop_wall_ms(c->env->loop) <= c->auth_exp_ms)
        return;
    if (!c->auth_refresh_ok) {
        conn_close(c, "credential expired and the client does not support auth refresh");
        return;
    }
    if (c->auth_challenged) {
        conn_close(c, "credential expired and the AUTH_CHALLENGE was not answered in time");
        return;
    }
    Pulsar__Proto__AuthData d = PULSAR__PROTO__AUTH_DATA__INIT;
    d.auth_method_name = AUTH_METHOD_TOKEN;
    d.has_auth_data = 1;
    d.auth_data.data = (uint8_t *)"PulsarAuthRefresh";
    d.auth_data.len = strlen("PulsarAuthRefresh");
    Pulsar__Proto__CommandAuthChallenge ch = PULSAR__PROTO__COMMAND_AUTH_CHALLENGE__INIT;
    ch.server_version = "magnetar " PACKAGE_VERSION;
    ch.challenge = &d;
    ch.has_protocol_version = 1;
    ch.protocol_version = c->protocol_version;
    c->auth_challenged = true;
    CONN_SEND(c, AUTH_CHALLENGE, authchallenge, ch);
    MG_DEBUG("conn", "[%" PRIu64 "] credential of '%s' expired: AUTH_CHALLENGE sent", c->id,
             c->role);
}

static void conn_handle_auth_response(struct conn *c, const Pulsar__Proto__CommandAuthResponse *m)
{
    if (!auth_enabled(c->env->auth))
        return; /* nothing was challenged */
    const Pulsar__Proto__AuthData *r = m->response;
    if (conn_authenticate(c, r ? r->auth_method_name : NULL, r && r->has_auth_data,
                          r ? &r->auth_data : NULL, "AUTH_RESPONSE") == 0)
        MG_INFO("conn", "[%" PRIu64 "] %s refreshed the credential of role '%s'", c->id, c->peer,
                c->role);
}

static void conn_handle_connect(struct conn *c, const Pulsar__Proto__CommandConnect *cc)
{
    if (auth_enabled(c->env->auth)) {
        c->auth_refresh_ok = cc->feature_flags && cc->feature_flags->supports_auth_refresh;
        if (conn_authenticate(c, cc->auth_method_name, cc->has_auth_data, &cc->auth_data,
                              "CONNECT") < 0)
            return;
        mg_timer_start(&c->auth_timer, auth_refresh_ms(c->env->auth));
    }
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
    Pulsar__Proto__FeatureFlags ff = PULSAR__PROTO__FEATURE_FLAGS__INIT;
    ff.has_supports_topic_watchers = ff.supports_topic_watchers = c->env->cfg->pattern_evaluation;
    r.feature_flags = &ff;
    conn_set_state(c, CONN_READY);
    CONN_SEND(c, CONNECTED, connected, r);
    MG_INFO("conn", "[%" PRIu64 "] %s connected: client '%s', protocol v%d%s%s", c->id, c->peer,
            c->client_version, c->protocol_version, c->role ? ", role " : "",
            c->role ? c->role : "");
}

/* The commands whose handlers check a NUL in their strings themselves (conn_parse_topic)
 * and answer with their own error. */
static bool conn_refuses_nul_itself(int type)
{
    return type == PULSAR__PROTO__BASE_COMMAND__TYPE__PRODUCER ||
           type == PULSAR__PROTO__BASE_COMMAND__TYPE__SUBSCRIBE ||
           type == PULSAR__PROTO__BASE_COMMAND__TYPE__LOOKUP ||
           type == PULSAR__PROTO__BASE_COMMAND__TYPE__PARTITIONED_METADATA;
}

/* Handle one decoded frame. The frame is cleared by the caller. */
static void conn_dispatch(struct conn *c, struct wire_frame *f)
{
    wire_cmd *cmd = f->cmd;
    c->received_since_tick = true;
    c->frame_nul_field = f->nul_string_field; /* for conn_parse_topic, during this dispatch */
    if (f->nul_string_field && !conn_refuses_nul_itself(cmd->type)) {
        /* A C string stops at the NUL: acting on what is left would act on another name
         * (a namespace, a schema's topic). The commands that name a topic answer their own
         * error (conn_parse_topic); any other one closes the connection, as a malformed
         * frame does. */
        char why[128];
        snprintf(why, sizeof why, "the %s field of %s holds a NUL byte", f->nul_string_field,
                 wire_command_name(cmd->type));
        conn_close(c, why);
        return;
    }
    if (c->state == CONN_AWAIT_CONNECT) {
        if (cmd->type != PULSAR__PROTO__BASE_COMMAND__TYPE__CONNECT) {
            char why[96];
            snprintf(why, sizeof why, "first command is %s, not CONNECT",
                     wire_command_name(cmd->type));
            conn_close(c, why);
            return;
        }
        conn_handle_connect(c, cmd->connect);
        return;
    }
    switch (cmd->type) {
    case PULSAR__PROTO__BASE_COMMAND__TYPE__PING:
        conn_send_simple(c, PULSAR__PROTO__BASE_COMMAND__TYPE__PONG);
        break;
    case PULSAR__PROTO__BASE_COMMAND__TYPE__PONG:
        break;
    case PULSAR__PROTO__BASE_COMMAND__TYPE__PARTITIONED_METADATA:
        conn_handle_partitioned_metadata(c, cmd->partitionmetadata);
        break;
    case PULSAR__PROTO__BASE_COMMAND__TYPE__LOOKUP:
        conn_handle_lookup(c, cmd->lookuptopic);
        break;
    case PULSAR__PROTO__BASE_COMMAND__TYPE__PRODUCER:
        conn_handle_producer(c, cmd->producer);
        break;
    case PULSAR__PROTO__BASE_COMMAND__TYPE__SEND:
        conn_handle_send(c, cmd->send, f);
        break;
    case PULSAR__PROTO__BASE_COMMAND__TYPE__CLOSE_PRODUCER:
        conn_handle_close_producer(c, cmd->close_producer);
        break;
    case PULSAR__PROTO__BASE_COMMAND__TYPE__SUBSCRIBE:
        conn_handle_subscribe(c, cmd->subscribe);
        break;
    case PULSAR__PROTO__BASE_COMMAND__TYPE__FLOW:
        conn_handle_flow(c, cmd->flow);
        break;
    case PULSAR__PROTO__BASE_COMMAND__TYPE__ACK:
        conn_handle_ack(c, cmd->ack);
        break;
    case PULSAR__PROTO__BASE_COMMAND__TYPE__REDELIVER_UNACKNOWLEDGED_MESSAGES:
        conn_handle_redeliver(c, cmd->redeliverunacknowledgedmessages);
        break;
    case PULSAR__PROTO__BASE_COMMAND__TYPE__UNSUBSCRIBE:
        conn_handle_unsubscribe(c, cmd->unsubscribe);
        break;
    case PULSAR__PROTO__BASE_COMMAND__TYPE__SEEK:
        conn_handle_seek(c, cmd->seek);
        break;
    case PULSAR__PROTO__BASE_COMMAND__TYPE__GET_LAST_MESSAGE_ID:
        conn_handle_get_last_message_id(c, cmd->getlastmessageid);
        break;
    case PULSAR__PROTO__BASE_COMMAND__TYPE__CLOSE_CONSUMER:
        conn_handle_close_consumer(c, cmd->close_consumer);
        break;
    case PULSAR__PROTO__BASE_COMMAND__TYPE__GET_TOPICS_OF_NAMESPACE:
        conn_handle_get_topics(c, cmd->gettopicsofnamespace);
        break;
    case PULSAR__PROTO__BASE_COMMAND__TYPE__WATCH_TOPIC_LIST:
        conn_handle_watch_topic_list(c, cmd->watchtopiclist);
        break;
    case PULSAR__PROTO__BASE_COMMAND__TYPE__WATCH_TOPIC_LIST_CLOSE:
        conn_handle_watch_topic_list_close(c, cmd->watchtopiclistclose);
        break;
    case PULSAR__PROTO__BASE_COMMAND__TYPE__GET_SCHEMA:
        conn_handle_get_schema(c, cmd->getschema);
        break;
    case PULSAR__PROTO__BASE_COMMAND__TYPE__GET_OR_CREATE_SCHEMA:
        conn_handle_get_or_create_schema(c, cmd->getorcreateschema);
        break;
    case PULSAR__PROTO__BASE_COMMAND__TYPE__CONSUMER_STATS:
        conn_handle_consumer_stats(c, cmd->consumerstats);
        break;
    case PULSAR__PROTO__BASE_COMMAND__TYPE__AUTH_RESPONSE:
        conn_handle_auth_response(c, cmd->authresponse);
        break;
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

int conn_frame_read(struct evbuffer *in, uint32_t max_frame, struct wire_frame *f, char *why,
                    size_t len)
{
    memset(f, 0, sizeof *f);
    char err[160] = "";
    int rc = wire_frame_read(in, max_frame, f, err, sizeof err);
    if (rc < 0)
        snprintf(why, len, "bad frame: %s", err[0] ? err : mg_strerror(rc));
    return rc;
}

/* The next frame: from the socket's input, or decoded by the I/O loop (conn_io.c). */
static int conn_next_frame(struct conn *c, struct wire_frame *f, char *why, size_t len)
{
    if (c->io)
        return conn_io_next_frame(c, f) ? 1 : 0;
    return conn_frame_read(bufferevent_get_input(c->bev), c->max_frame, f, why, len);
}

static bool conn_has_input(struct conn *c)
{
    return c->io ? conn_io_has_input(c) : evbuffer_get_length(bufferevent_get_input(c->bev)) > 0;
}

static void conn_process_input(struct conn *c)
{
    conn_ref(c);
    /* a refused or closing connection acts on nothing more its client sent */
    for (int i = 0;
         i < CONN_MAX_FRAMES_PER_PASS && conn_is_open(c) && !c->refusing && !c->shutting_down;
         i++) {
        if (conn_should_pause(c)) {
            conn_pause_read(c);
            break;
        }
        struct wire_frame f;
        char why[220];
        int rc = conn_next_frame(c, &f, why, sizeof why);
        if (rc == 0)
            break;
        if (rc < 0) {
            conn_close(c, why);
            break;
        }
        conn_dispatch(c, &f);
        c->frame_nul_field = NULL;
        wire_frame_clear(&f);
        if (i == CONN_MAX_FRAMES_PER_PASS - 1 && conn_is_open(c) && conn_has_input(c))
            event_active(c->resume_ev, EV_READ, 0); /* let other connections run first */
    }
    conn_unref(c);
}

void conn_input_ready(struct conn *c)
{
    if (c->refusing) { /* as conn_io_read: what a refused client sends is dropped */
        conn_io_drop_input(c);
        return;
    }
    if (!c->read_paused && !c->shutting_down)
        conn_process_input(c);
}

static void conn_io_read(struct bufferevent *bev, void *arg)
{
    struct conn *c = arg;
    if (c->refusing) { /* read and drop what the refused client sends, so that closing */
        evbuffer_drain(bufferevent_get_input(bev), evbuffer_get_length(bufferevent_get_input(bev)));
        return; /* does not reset the connection before it read our ERROR */
    }
    /* libevent 2.1 read 4 KiB at most: take the rest the socket holds now, in one read,
     * instead of one loop turn per 4 KiB (bounded by the read high watermark). */
    mg_bev_read_more(bev, CONN_READ_MORE_BYTES);
    conn_process_input(c);
}

static void conn_io_resume(evutil_socket_t fd, short what, void *arg)
{
    (void)fd;
    (void)what;
    struct conn *c = arg;
    if (conn_is_open(c) && !c->read_paused && !c->refusing && !c->shutting_down)
        conn_process_input(c);
}

void conn_output_drained(struct conn *c)
{
    if (!conn_is_open(c))
        return;
    if (c->refusing) {
        if (!c->refuse_fin_sent && conn_outbound_bytes(c) == 0) {
            c->refuse_fin_sent = true; /* ERROR flushed: FIN; close on the client's EOF */
            if (c->io) {
                conn_io_shutdown_write(c);
            } else {
                evutil_socket_t fd = bufferevent_getfd(c->bev);
                if (fd >= 0) /* a socket (an in-process pair has none) */
                    shutdown(fd, SHUT_WR);
            }
        }
        return;
    }
    if (c->shutting_down && conn_outbound_bytes(c) == 0) {
        conn_close(c, NULL);
        return;
    }
    conn_ref(c);
    /* Reading resumes before the consumers may dispatch again: what the client sent meanwhile
     * (its ACKs, FLOWs) is read while the output is low (resume_ev is activated ahead of the
     * dispatch). The other way round, an entry that takes the output over the bound on its
     * own pauses the reading again at once, each time, until the backlog is out. */
    conn_maybe_resume(c);
    struct conn_endpoint *e, *tmp;
    TAILQ_FOREACH_SAFE(e, &c->endpoints, link, tmp)
    {
        if (e->ops->resume)
            e->ops->resume(e);
    }
    conn_unref(c);
}

static void conn_io_write(struct bufferevent *bev, void *arg)
{
    (void)bev;
    conn_output_drained(arg);
}

static void conn_io_event(struct bufferevent *bev, short what, void *arg)
{
    struct conn *c = arg;
    if ((what & BEV_EVENT_EOF) || c->refusing)
        conn_close(c, NULL);
    else if (what & BEV_EVENT_ERROR) {
        /* over TLS (tls.h) the reason is OpenSSL's, not errno */
        int sock_err = EVUTIL_SOCKET_ERROR(); /* (before anything else can change it) */
        unsigned long tls_err = tls_bev_openssl_error(bev);
        char why[160];
        if (tls_err)
            ERR_error_string_n(tls_err, why, sizeof why);
        else if (sock_err != 0 || !bufferevent_openssl_get_ssl(bev))
            snprintf(why, sizeof why, "%s", evutil_socket_error_to_string(sock_err));
        else /* (mg_bev_read_more logged OpenSSL's reason when it met the error) */
            snprintf(why, sizeof why, "TLS stream failed");
        conn_close(c, why);
    }
}

static void conn_keepalive_tick(struct mg_timer *t, void *arg)
{
    struct conn *c = arg;
    if (!conn_is_open(c))
        return;
    c->ticks++;
    if (c->refusing) { /* the refused client did not close within the grace period */
        conn_close(c, NULL);
        return;
    }
    if (c->state == CONN_AWAIT_CONNECT) {
        if (c->io) /* (and over TLS, within TLS_HANDSHAKE_TIMEOUT_MS: conn_accept_ssl) */
            conn_io_close_early(c, "no CONNECT in time", false);
        else
            conn_close(c, "handshake not completed within the keep-alive interval");
        return;
    }
    if (!c->received_since_tick) {
        conn_close(c, "keep-alive timeout: nothing received since the last ping");
        return;
    }
    c->received_since_tick = false;
    conn_producer_forget_closed(c);
    mg_timer_start(t, c->keepalive_ms);
    if (c->protocol_version >= 1)
        conn_send_simple(c, PULSAR__PROTO__BASE_COMMAND__TYPE__PING);
}

/* A connection with no I/O yet: the caller gives it a bufferevent or an I/O loop. */
static struct conn *conn_alloc(const struct conn_env *env, const char *peer, uint64_t id)
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
    c->max_outbound = conn_max_outbound(cfg);
    mg_map_init(&c->producers);
    mg_map_init(&c->consumers);
    mg_map_init(&c->recent_closed);
    TAILQ_INIT(&c->endpoints);
    STAILQ_INIT(&c->inq);
    snprintf(c->peer, sizeof c->peer, "%s", peer ? peer : "");
    c->resume_ev = event_new(mg_loop_base(env->loop), -1, 0, conn_io_resume, c);
    int ka = cfg->keep_alive_interval_seconds > 0 ? cfg->keep_alive_interval_seconds : 30;
    c->keepalive_ms = (uint64_t)ka * 1000;
    mg_timer_init(&c->keepalive, env->loop, conn_keepalive_tick, c);
    mg_timer_init(&c->throttle, env->loop, conn_throttle_end, c);
    c->throttle_tick_ms =
        cfg->publisher_throttling_tick_ms > 0 ? (uint64_t)cfg->publisher_throttling_tick_ms : 10;
    mg_timer_start(&c->keepalive, c->keepalive_ms);
    mg_timer_init(&c->auth_timer, env->loop, conn_auth_tick, c);
    MG_DEBUG("conn", "[%" PRIu64 "] accepted %s", c->id, c->peer);
    return c;
}

void conn_bev_limits(struct bufferevent *bev, uint32_t max_frame, size_t out_low)
{
    /* Stop reading when a full maximum-size frame is buffered and not yet consumed. */
    bufferevent_setwatermark(bev, EV_READ, 0, (size_t)max_frame + 4 + 65536);
    bufferevent_setwatermark(bev, EV_WRITE, out_low, 0);
    /* Dispatch (MESSAGEs, a catch-up read above all) queues up to half of
     * connectionMaxOutboundBytes: written 16 KiB a loop turn (libevent's default for a socket
     * bufferevent), that cost one writev + epoll_wait per 16 KiB. One write now takes what the
     * socket's send buffer has room for, up to 1 MiB: the other connections of the loop wait
     * for at most that copy (~0.1 ms), less than one read turn of a connection may take
     * (CONN_MAX_FRAMES_PER_PASS frames). Over TLS libevent already writes until the socket is
     * full, in passes of this size (bufferevent_openssl's consider_writing), and OpenSSL
     * writes one record a write(): there the setting changes little. */
    bufferevent_set_max_single_write(bev, MG_BEV_WRITE_MAX);
}

struct conn *conn_new(const struct conn_env *env, struct bufferevent *bev, const char *peer,
                      uint64_t id)
{
    struct conn *c = conn_alloc(env, peer, id);
    c->bev = bev;
    bufferevent_setcb(c->bev, conn_io_read, conn_io_write, conn_io_event, c);
    conn_bev_limits(c->bev, c->max_frame, c->max_outbound / 4);
    bufferevent_enable(c->bev, EV_READ | EV_WRITE);
    return c;
}

static void conn_peer_name(const struct sockaddr *addr, int socklen, char *peer, size_t len)
{
    peer[0] = '\0';
    if (addr && addr->sa_family == AF_INET && socklen >= (int)sizeof(struct sockaddr_in)) {
        const struct sockaddr_in *sin = (const struct sockaddr_in *)addr;
        char ip[INET_ADDRSTRLEN];
        inet_ntop(AF_INET, &sin->sin_addr, ip, sizeof ip);
        snprintf(peer, len, "%s:%u", ip, ntohs(sin->sin_port));
    } else if (addr && addr->sa_family == AF_INET6) {
        const struct sockaddr_in6 *sin6 = (const struct sockaddr_in6 *)addr;
        char ip[INET6_ADDRSTRLEN];
        inet_ntop(AF_INET6, &sin6->sin6_addr, ip, sizeof ip);
        snprintf(peer, len, "[%s]:%u", ip, ntohs(sin6->sin6_port));
    }
}

struct conn *conn_accept_bev(const struct conn_env *env, struct bufferevent *bev,
                             const struct sockaddr *addr, int socklen, uint64_t id)
{
    char peer[64];
    conn_peer_name(addr, socklen, peer, sizeof peer);
    evutil_socket_t fd = bufferevent_getfd(bev);
    int one = 1;
    if (fd >= 0)
        setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    return conn_new(env, bev, peer, id);
}

bool conn_tls(const struct conn *c)
{
    return c->env->tls;
}

struct conn *conn_accept_ssl(const struct conn_env *env, evutil_socket_t fd, struct ssl_st *ssl,
                             const struct sockaddr *addr, int socklen, uint64_t id)
{
    MG_ASSERT(env->io);
    char peer[64];
    conn_peer_name(addr, socklen, peer, sizeof peer);
    int one = 1;
    setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    evutil_make_socket_nonblocking(fd);
    struct conn *c = conn_alloc(env, peer, id);
    conn_io_attach(c, env->io, fd, ssl);
    /* the bound of the handshake on the main loop (tls_server_accept), up to CONNECT here */
    mg_timer_start(&c->keepalive, c->keepalive_ms < TLS_HANDSHAKE_TIMEOUT_MS
                                      ? c->keepalive_ms
                                      : TLS_HANDSHAKE_TIMEOUT_MS);
    return c;
}

struct conn *conn_accept(const struct conn_env *env, evutil_socket_t fd,
                         const struct sockaddr *addr, int socklen, uint64_t id)
{
    char peer[64];
    conn_peer_name(addr, socklen, peer, sizeof peer);
    int one = 1;
    setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    evutil_make_socket_nonblocking(fd);
    if (env->io) {
        struct conn *c = conn_alloc(env, peer, id);
        conn_io_attach(c, env->io, fd, NULL);
        return c;
    }
    struct bufferevent *bev =
        bufferevent_socket_new(mg_loop_base(env->loop), fd, BEV_OPT_CLOSE_ON_FREE);
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
    struct conn_endpoint *e, *tmp;
    TAILQ_FOREACH_SAFE(e, &c->endpoints, link, tmp)
    {
        conn_endpoint_drop(e);
    }
    conn_watch_close_all(c);
    mg_timer_fini(&c->keepalive);
    mg_timer_fini(&c->throttle);
    mg_timer_fini(&c->auth_timer);
    mg_event_free(c->resume_ev);
    c->resume_ev = NULL;
    if (c->bev) {
        bufferevent_free(c->bev);
        c->bev = NULL;
    }
    if (c->io)
        conn_io_detach(c);
    if (c->env->closed)
        c->env->closed(c->env->data, c);
    conn_unref(c); /* the creator's reference */
    conn_unref(c);
}

#define CONN_REFUSE_GRACE_MS 1000

void conn_refuse(struct conn *c, int err, const char *message)
{
    if (!conn_is_open(c) || c->refusing)
        return;
    c->refusing = true;
    MG_DEBUG("conn", "[%" PRIu64 "] %s refused: %s", c->id, c->peer, message);
    /* Nothing more is served to a refused client (a failed credential refresh refuses a
     * connection that has producers and consumers): they are let go of now, not at the close. */
    struct conn_endpoint *e, *tmp;
    TAILQ_FOREACH_SAFE(e, &c->endpoints, link, tmp)
    {
        conn_endpoint_drop(e);
    }
    /* As Pulsar: ERROR with request id -1, then close. */
    conn_send_error(c, UINT64_MAX, err, message);
    conn_io_drop_input(c);
    if (c->bev) /* (an I/O loop's write watermark is above 0: DRAINED comes at 0 as well) */
        bufferevent_setwatermark(c->bev, EV_WRITE, 0, 0); /* write_cb once flushed */
    mg_timer_start(&c->keepalive, CONN_REFUSE_GRACE_MS);  /* closes it if the client does not */
}

void conn_shutdown(struct conn *c)
{
    if (!conn_is_open(c))
        return;
    if (c->bev)
        bufferevent_disable(c->bev, EV_READ);
    c->shutting_down = true;
    struct conn_endpoint *e;
    TAILQ_FOREACH(e, &c->endpoints, link)
    {
        if (e->attached && e->ready)
            e->ops->send_close(c, e->id);
    }
    if (conn_outbound_bytes(c) == 0)
        conn_close(c, NULL);
    else if (c->bev)
        bufferevent_setwatermark(c->bev, EV_WRITE, 0, 0); /* write_cb closes once drained */
}
