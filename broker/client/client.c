/*
 * client.c - asynchronous Pulsar client: connection pool, lookup, producers, consumers.
 *
 * Happy path: client_producer_new / client_consumer_new put an endpoint (struct client_ep)
 * on the client and start a lookup: get the pooled connection for the service URL (TCP
 * connect, CONNECT/CONNECTED), send LOOKUP, follow Redirect answers (up to 20) and, on
 * Connect, get the pooled connection for brokerServiceUrl and send PRODUCER or SUBSCRIBE
 * there. A producer assigns sequence ids, packs messages into the open batch
 * ([u32 size][SingleMessageMetadata][payload] each) and closes it on batch_max_messages,
 * batch_max_bytes or the publish-delay timer into a SEND frame kept in the pending queue;
 * each SEND_RECEIPT completes the head of that queue, in order. A consumer sends FLOW with
 * its queue size after SUCCESS, unpacks each MESSAGE (batches into single messages with
 * their batch index), hands them to the application, refills FLOW at half the queue and
 * groups acks (1000 ids or 100 ms); a batch entry is acked once all its messages are.
 * Chunking (Pulsar's): a chunking producer's message that does not fit maxMessageSize minus
 * its metadata is queued as one SEND per chunk (same sequence id; only the last chunk's op
 * completes the message); a consumer appends chunks to a context per uuid and delivers the
 * whole message under its last chunk's id, whose ack acks every chunk. A chunk without its
 * run, out of order, past total_chunk_msg_size or its limit, and a run expired
 * (chunk_expire_ms: a timer on the oldest run, checked as chunks come too) are dropped with
 * a warning and their chunks acked, as Pulsar's ConsumerImpl does; a run evicted (more than
 * max_pending_chunked) too, its chunks acked only with auto_ack_oldest_chunked (else the
 * broker delivers them again after a reconnect). At most max_pending_chunked runs of at most
 * max_chunked_bytes each are held, none for longer than chunk_expire_ms (and the timer's
 * lateness).
 * Connections answer PING at once and send their own every keepalive_s.
 *
 * Failure modes: a bad service URL fails client_new. Connect errors, the connect timeout,
 * a lost connection, keep-alive expiry, unparsable frames and receipts beyond the head of
 * the queue close the connection (log + error to whoever waits). A request without an
 * answer within the operation timeout fails with -MG_ETIMEDOUT. Before an endpoint was
 * first ready, any failure goes to its ready callback and the endpoint turns inert; after
 * that, connection loss, CLOSE_PRODUCER/CLOSE_CONSUMER from the broker and lookup errors
 * make it look up again with backoff (100 ms doubling to 30 s), re-create the producer
 * under the same name and resend every pending SEND with its original sequence ids, or
 * re-subscribe. SEND_ERROR(ChecksumError|NotAllowed) fails only the head SEND;
 * TopicTerminated fails all pending; any other SEND_ERROR reconnects. Connections are
 * closed in their callbacks but freed from a deferred event.
 */
#include "client/client_int.h"

#include "tls/tls.h"
#include "util/alloc.h"
#include "util/bytes.h"
#include "util/compress.h"
#include "util/crc.h"
#include "util/err.h"
#include "util/log.h"
#include "util/loop.h"

#include <errno.h>
#include <event2/buffer.h>
#include <event2/bufferevent.h>
#include <event2/bufferevent_ssl.h>
#include <event2/event.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <openssl/err.h>
#include <openssl/ssl.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>

#define MOD "client"
#define CLIENT_VERSION "magnetar-client 1.0"

/* ------------------------------------------------------------------------------------- */
/* small helpers */

static struct timeval client_tv_ms(unsigned ms)
{
    struct timeval tv = {.tv_sec = ms / 1000, .tv_usec = (suseconds_t)(ms % 1000) * 1000};
    return tv;
}

/* A copy of schema (NULL: none, type -1) into out. */
static void client_schema_copy(struct client_schema *out, const struct client_schema *schema)
{
    *out = (struct client_schema){.type = -1};
    if (!schema)
        return;
    out->type = schema->type;
    out->len = schema->len;
    if (schema->len) {
        void *d = mg_malloc(schema->len);
        memcpy(d, schema->data, schema->len);
        out->data = d;
    }
}

/* The wire Schema of s, or NULL when there is none (w is the storage). */
static Pulsar__Proto__Schema *client_schema_wire(const struct client_schema *s,
                                                 Pulsar__Proto__Schema *w)
{
    if (s->type < 0)
        return NULL;
    pulsar__proto__schema__init(w);
    w->name = (char *)"";
    w->type = (Pulsar__Proto__Schema__Type)s->type;
    w->schema_data.data = (uint8_t *)s->data;
    w->schema_data.len = s->len;
    return w;
}

/* The MG error for a Pulsar ServerError. */
static int client_server_error_to_mg(int se)
{
    switch (se) {
    case PULSAR__PROTO__SERVER_ERROR__MetadataError:
        return -MG_EMETA;
    case PULSAR__PROTO__SERVER_ERROR__AuthenticationError:
    case PULSAR__PROTO__SERVER_ERROR__AuthorizationError:
    case PULSAR__PROTO__SERVER_ERROR__NotAllowedError:
        return -MG_ENOTALLOWED;
    case PULSAR__PROTO__SERVER_ERROR__ConsumerBusy:
        return -MG_ECONSUMERBUSY;
    case PULSAR__PROTO__SERVER_ERROR__ServiceNotReady:
        return -MG_ENOTREADY;
    case PULSAR__PROTO__SERVER_ERROR__ChecksumError:
        return -MG_ECHECKSUM;
    case PULSAR__PROTO__SERVER_ERROR__TopicNotFound:
        return -MG_ENOTFOUND;
    case PULSAR__PROTO__SERVER_ERROR__SubscriptionNotFound:
        return -MG_ENOSUB;
    case PULSAR__PROTO__SERVER_ERROR__TooManyRequests:
        return -MG_EAGAIN;
    case PULSAR__PROTO__SERVER_ERROR__TopicTerminatedError:
        return -MG_ETERMINATED;
    case PULSAR__PROTO__SERVER_ERROR__ProducerBusy:
        return -MG_EPRODUCERBUSY;
    case PULSAR__PROTO__SERVER_ERROR__InvalidTopicName:
        return -MG_EBADNAME;
    case PULSAR__PROTO__SERVER_ERROR__ConsumerAssignError:
        return -MG_EASSIGN;
    case PULSAR__PROTO__SERVER_ERROR__ProducerFenced:
        return -MG_EPRODUCERFENCED;
    case PULSAR__PROTO__SERVER_ERROR__IncompatibleSchema:
        return -MG_EINCOMPATSCHEMA;
    default:
        return -MG_EIO;
    }
}

bool client_url_tls(const char *url)
{
    return url && strncmp(url, "pulsar+ssl://", 13) == 0;
}

int client_parse_url(const char *url, char **host, int *port, char *errmsg, size_t errlen)
{
    *host = NULL;
    *port = 0;
    bool tls = client_url_tls(url);
    if (!url || (!tls && strncmp(url, "pulsar://", 9) != 0)) {
        snprintf(errmsg, errlen,
                 "bad service URL '%s': expected pulsar://host:port or pulsar+ssl://host:port",
                 url ? url : "");
        return -MG_EINVAL;
    }
    const char *h = strstr(url, "://") + 3;
    /* A multi-host URL (h1:p,h2:p) uses its first host. */
    size_t hl = strcspn(h, ",/");
    if (h[hl] == '/' && h[hl + 1] != '\0') {
        snprintf(errmsg, errlen, "bad service URL '%s': unexpected path", url);
        return -MG_EINVAL;
    }
    const char *colon = memchr(h, ':', hl);
    size_t name_len = colon ? (size_t)(colon - h) : hl;
    if (name_len == 0) {
        snprintf(errmsg, errlen, "bad service URL '%s': no host", url);
        return -MG_EINVAL;
    }
    for (size_t i = 0; i < name_len; i++) {
        char ch = h[i];
        if (!(ch == '.' || ch == '-' || ch == '_' || (ch >= '0' && ch <= '9') ||
              (ch >= 'a' && ch <= 'z') || (ch >= 'A' && ch <= 'Z'))) {
            snprintf(errmsg, errlen, "bad service URL '%s': bad host name", url);
            return -MG_EINVAL;
        }
    }
    int p = tls ? CLIENT_DEFAULT_PORT_TLS : CLIENT_DEFAULT_PORT;
    if (colon) {
        const char *ps = colon + 1, *pe = h + hl;
        if (ps == pe || pe - ps > 5) {
            snprintf(errmsg, errlen, "bad service URL '%s': bad port", url);
            return -MG_EINVAL;
        }
        p = 0;
        for (const char *q = ps; q < pe; q++) {
            if (*q < '0' || *q > '9') {
                snprintf(errmsg, errlen, "bad service URL '%s': bad port", url);
                return -MG_EINVAL;
            }
            p = p * 10 + (*q - '0');
        }
        if (p < 1 || p > 65535) {
            snprintf(errmsg, errlen, "bad service URL '%s': port out of range", url);
            return -MG_EINVAL;
        }
    }
    *host = mg_strndup(h, name_len);
    *port = p;
    return 0;
}

char *client_topic_full_name(const char *topic)
{
    if (strstr(topic, "://"))
        return mg_strdup(topic);
    if (strchr(topic, '/'))
        return mg_asprintf("persistent://%s", topic);
    return mg_asprintf("persistent://public/default/%s", topic);
}

/* ------------------------------------------------------------------------------------- */
/* batch payload encoding */

void client_buf_reserve(struct client_buf *b, size_t extra)
{
    b->data = mg_grow(b->data, &b->cap, b->len + extra, 1, 4096);
}

void client_buf_fini(struct client_buf *b)
{
    if (!b)
        return;
    mg_free(b->data);
    memset(b, 0, sizeof(*b));
}

void client_meta_kv(const struct client_msg_meta *meta, Pulsar__Proto__KeyValue **kv,
                    Pulsar__Proto__KeyValue ***ptrs)
{
    size_t n = meta ? meta->nprops : 0;
    *kv = NULL;
    *ptrs = NULL;
    if (n == 0)
        return; /* the common case, once per message appended: no allocation */
    *kv = mg_calloc(n + 1, sizeof **kv);
    *ptrs = mg_calloc(n + 1, sizeof **ptrs);
    for (size_t i = 0; i < n; i++) {
        Pulsar__Proto__KeyValue init = PULSAR__PROTO__KEY_VALUE__INIT;
        (*kv)[i] = init;
        (*kv)[i].key = (char *)meta->properties[2 * i];
        (*kv)[i].value = (char *)meta->properties[2 * i + 1];
        (*ptrs)[i] = &(*kv)[i];
    }
}

void client_batch_append(struct client_buf *b, const void *payload, size_t len, uint64_t seq)
{
    client_batch_append_meta(b, payload, len, seq, NULL);
}

void client_batch_append_meta(struct client_buf *b, const void *payload, size_t len, uint64_t seq,
                              const struct client_msg_meta *meta)
{
    Pulsar__Proto__SingleMessageMetadata smm = PULSAR__PROTO__SINGLE_MESSAGE_METADATA__INIT;
    smm.payload_size = (int32_t)len;
    smm.has_sequence_id = 1;
    smm.sequence_id = seq;
    Pulsar__Proto__KeyValue *kv, **ptrs;
    client_meta_kv(meta, &kv, &ptrs);
    smm.n_properties = meta ? meta->nprops : 0;
    smm.properties = ptrs;
    smm.partition_key = meta ? (char *)meta->key : NULL;
    size_t sz = pulsar__proto__single_message_metadata__get_packed_size(&smm);
    client_buf_reserve(b, 4 + sz + len);
    mg_put_be32(b->data + b->len, (uint32_t)sz);
    pulsar__proto__single_message_metadata__pack(&smm, b->data + b->len + 4);
    mg_free(kv);
    mg_free(ptrs);
    if (len > 0)
        memcpy(b->data + b->len + 4 + sz, payload, len);
    b->len += 4 + sz + len;
}

int client_batch_next(const uint8_t *p, size_t len, size_t *off,
                      Pulsar__Proto__SingleMessageMetadata **smm, const uint8_t **payload,
                      size_t *plen)
{
    *smm = NULL;
    if (*off >= len)
        return 0;
    if (len - *off < 4)
        return -MG_EPROTO;
    uint32_t sz = mg_get_be32(p + *off);
    if (sz > len - *off - 4)
        return -MG_EPROTO;
    Pulsar__Proto__SingleMessageMetadata *m =
        pulsar__proto__single_message_metadata__unpack(NULL, sz, p + *off + 4);
    if (!m)
        return -MG_EPROTO;
    size_t start = *off + 4 + sz;
    if (m->payload_size < 0 || (size_t)m->payload_size > len - start) {
        pulsar__proto__single_message_metadata__free_unpacked(m, NULL);
        return -MG_EPROTO;
    }
    *smm = m;
    *payload = p + start;
    *plen = (size_t)m->payload_size;
    *off = start + (size_t)m->payload_size;
    return 1;
}

/* ------------------------------------------------------------------------------------- */
/* connections */

static void client_conn_close(struct client_conn *conn, int status, const char *msg);
static void client_ep_conn_lost(struct client_ep *ep, int status, const char *msg);
static void client_producer_on_receipt(struct client_producer *p, const wire_cmd *cmd);
static void client_producer_on_send_error(struct client_producer *p, const wire_cmd *cmd);
/* Protobuf KeyValues as key/value string pairs (mg_free the array; the strings are kv's). */
static const char **client_kv_strs(Pulsar__Proto__KeyValue **kv, size_t n)
{
    const char **out = mg_calloc(2 * n + 1, sizeof *out);
    for (size_t i = 0; i < n; i++) {
        out[2 * i] = kv[i]->key;
        out[2 * i + 1] = kv[i]->value;
    }
    return out;
}

static void client_consumer_on_message(struct client_consumer *c, const wire_cmd *cmd,
                                       struct evbuffer *payload);

static void client_conn_write(struct client_conn *conn, const wire_cmd *cmd)
{
    if (conn->bev)
        wire_write_command(bufferevent_get_output(conn->bev), cmd);
}

/* Write one command: sub, a Command* message of the BaseCommand type `type`, in the
 * BaseCommand field whose number is that type's value (PulsarApi.proto numbers them so). */
static void client_conn_send(struct client_conn *conn, Pulsar__Proto__BaseCommand__Type type,
                             const void *sub)
{
    wire_cmd cmd = PULSAR__PROTO__BASE_COMMAND__INIT;
    cmd.type = type;
    const ProtobufCFieldDescriptor *fd =
        protobuf_c_message_descriptor_get_field(cmd.base.descriptor, (unsigned)type);
    MG_ASSERT(fd && fd->descriptor == ((const ProtobufCMessage *)sub)->descriptor);
    memcpy((char *)&cmd + fd->offset, &sub, sizeof sub);
    client_conn_write(conn, &cmd);
}

/* What a request or waiter (enum client_req_type) wants and whom it tells. */
struct client_req_kind {
    bool waiter;         /* waits for the connection's handshake */
    const char *request; /* "LOOKUP", ...: names it in "unexpected answer to <request>" */
    int answer;          /* the type of the answer that succeeds */
    /* The answer (a waiter: the connection, ready; cmd NULL). */
    void (*done)(void *owner, struct client_conn *conn, const wire_cmd *cmd);
    /* An ERROR answer, another answer than `answer` (-MG_EPROTO), a timeout or the
     * connection's failure; msg says why. */
    void (*fail)(void *owner, int status, const char *msg);
};
static const struct client_req_kind client_req_kinds[CLIENT_REQ_TYPES]; /* at the end */

static struct client_req *client_conn_add_req(struct client_conn *conn, enum client_req_type type,
                                              void *owner)
{
    struct client *c = conn->client;
    struct client_req *r = mg_calloc(1, sizeof(*r));
    r->waiter = client_req_kinds[type].waiter;
    r->type = type;
    r->owner = owner;
    r->request_id = r->waiter ? 0 : c->next_request_id++;
    r->deadline_us = mg_mono_us() + (uint64_t)c->operation_timeout_ms * 1000u;
    /* Append so that waiters are served in arrival order. */
    struct client_req **pp = &conn->reqs;
    while (*pp)
        pp = &(*pp)->next;
    *pp = r;
    return r;
}

/* Tell r's owner how r ended: status < 0 (msg says why) or an answer of another type than
 * the one its kind wants fails it; a waiter's cmd is NULL. r is freed. */
static void client_req_finish(struct client_req *r, struct client_conn *conn, int status,
                              const wire_cmd *cmd, const char *msg)
{
    const struct client_req_kind *k = &client_req_kinds[r->type];
    void *owner = r->owner;
    mg_free(r);
    if (!k->done)
        return;
    if (status < 0) {
        k->fail(owner, status, msg);
    } else if (cmd && (int)cmd->type != k->answer) {
        char m[100];
        snprintf(m, sizeof m, "unexpected answer to %s", k->request);
        k->fail(owner, -MG_EPROTO, m);
    } else {
        k->done(owner, conn, cmd);
    }
}

static struct client_req *client_conn_take_req(struct client_conn *conn, uint64_t request_id)
{
    for (struct client_req **pp = &conn->reqs; *pp; pp = &(*pp)->next) {
        struct client_req *r = *pp;
        if (!r->waiter && r->request_id == request_id) {
            *pp = r->next;
            return r;
        }
    }
    return NULL;
}

/* Drop every request and waiter of owner without calling back (the owner is going away). */
static void client_conn_cancel_owner(struct client_conn *conn, void *owner)
{
    for (struct client_req **pp = &conn->reqs; *pp;) {
        struct client_req *r = *pp;
        if (r->owner == owner) {
            *pp = r->next;
            mg_free(r);
        } else {
            pp = &r->next;
        }
    }
}

static void client_conn_destroy(struct client_conn *conn)
{
    if (!conn)
        return;
    MG_ASSERT(conn->reqs == NULL);
    if (conn->bev)
        bufferevent_free(conn->bev);
    mg_event_free(conn->connect_ev);
    mg_event_free(conn->tick_ev);
    mg_event_free(conn->fail_ev);
    mg_event_free(conn->free_ev);
    mg_map_fini(&conn->eps);
    mg_free(conn->url);
    mg_free(conn);
}

static void client_conn_free_cb(evutil_socket_t fd, short what, void *arg)
{
    (void)fd;
    (void)what;
    struct client_conn *conn = arg;
    for (struct client_conn **pp = &conn->client->dead; *pp; pp = &(*pp)->dead_next) {
        if (*pp == conn) {
            *pp = conn->dead_next;
            break;
        }
    }
    client_conn_destroy(conn);
}

/* Fire the waiters of a connection that just became ready. */
static void client_conn_serve_waiters(struct client_conn *conn)
{
    for (;;) {
        struct client_req **pp = &conn->reqs, *r = NULL;
        for (; *pp; pp = &(*pp)->next) {
            if ((*pp)->waiter) {
                r = *pp;
                *pp = r->next;
                break;
            }
        }
        if (!r)
            return;
        client_req_finish(r, conn, 0, NULL, NULL);
        if (conn->state != CLIENT_CONN_READY)
            return;
    }
}

static void client_conn_send_connect(struct client_conn *conn)
{
    Pulsar__Proto__CommandConnect cc = PULSAR__PROTO__COMMAND_CONNECT__INIT;
    cc.client_version = (char *)CLIENT_VERSION;
    cc.auth_method_name = (char *)"none";
    if (conn->client->auth_token) { /* Pulsar's AuthenticationToken: method "token" */
        cc.auth_method_name = (char *)"token";
        cc.has_auth_data = 1;
        cc.auth_data.data = (uint8_t *)conn->client->auth_token;
        cc.auth_data.len = strlen(conn->client->auth_token);
    } else if (conn->client->auth_tls) { /* AuthenticationTls: the role is the certificate's */
        cc.auth_method_name = (char *)"tls";
    }
    cc.has_protocol_version = 1;
    cc.protocol_version = WIRE_PROTOCOL_VERSION;
    client_conn_send(conn, PULSAR__PROTO__BASE_COMMAND__TYPE__CONNECT, &cc);
}

/* The answer cmd (a response, or an ERROR: its code and message) to request rid. */
static void client_conn_answer(struct client_conn *conn, uint64_t rid, const wire_cmd *cmd)
{
    struct client_req *r = client_conn_take_req(conn, rid);
    if (!r) {
        MG_DEBUG(MOD, "%s: %s for unknown request %llu", conn->url, wire_command_name(cmd->type),
                 (unsigned long long)rid);
        return;
    }
    int status = 0;
    const char *msg = NULL;
    if (cmd->type == PULSAR__PROTO__BASE_COMMAND__TYPE__ERROR) {
        status = client_server_error_to_mg(cmd->error->error);
        msg = cmd->error->message ? cmd->error->message : mg_strerror(status);
    }
    client_req_finish(r, conn, status, cmd, msg);
}

/* Topic list watches (client_watch_topics, below). */
static void client_watch_on_update(struct client *c,
                                   const Pulsar__Proto__CommandWatchTopicUpdate *u);
static void client_watch_free(void *v);

static void client_conn_handle_frame(struct client_conn *conn, struct wire_frame *f)
{
    const wire_cmd *cmd = f->cmd;

    if (conn->state == CLIENT_CONN_HANDSHAKE) {
        if (cmd->type == PULSAR__PROTO__BASE_COMMAND__TYPE__CONNECTED) {
            conn->state = CLIENT_CONN_READY;
            if (cmd->connected->has_max_message_size && cmd->connected->max_message_size > 0)
                conn->max_message_size = (uint32_t)cmd->connected->max_message_size;
            conn->protocol_version =
                cmd->connected->has_protocol_version ? cmd->connected->protocol_version : 0;
            conn->topic_watchers = cmd->connected->feature_flags &&
                                   cmd->connected->feature_flags->supports_topic_watchers;
            evtimer_del(conn->connect_ev);
            MG_DEBUG(MOD, "connected to %s (%s, protocol %d)", conn->url,
                     cmd->connected->server_version ? cmd->connected->server_version : "?",
                     conn->protocol_version);
            client_conn_serve_waiters(conn);
            return;
        }
        char m[300];
        if (cmd->type == PULSAR__PROTO__BASE_COMMAND__TYPE__ERROR)
            snprintf(m, sizeof m, "%s refused the connection: %s", conn->url,
                     cmd->error->message ? cmd->error->message : "?");
        else
            snprintf(m, sizeof m, "%s sent %s before CONNECTED", conn->url,
                     wire_command_name(cmd->type));
        client_conn_close(conn, -MG_EPROTO, m);
        return;
    }

    switch (cmd->type) {
    case PULSAR__PROTO__BASE_COMMAND__TYPE__PING: {
        Pulsar__Proto__CommandPong pong = PULSAR__PROTO__COMMAND_PONG__INIT;
        client_conn_send(conn, PULSAR__PROTO__BASE_COMMAND__TYPE__PONG, &pong);
        return;
    }
    case PULSAR__PROTO__BASE_COMMAND__TYPE__PONG:
        return;
    case PULSAR__PROTO__BASE_COMMAND__TYPE__LOOKUP_RESPONSE:
        client_conn_answer(conn, cmd->lookuptopicresponse->request_id, cmd);
        return;
    case PULSAR__PROTO__BASE_COMMAND__TYPE__PARTITIONED_METADATA_RESPONSE:
        client_conn_answer(conn, cmd->partitionmetadataresponse->request_id, cmd);
        return;
    case PULSAR__PROTO__BASE_COMMAND__TYPE__GET_TOPICS_OF_NAMESPACE_RESPONSE:
        client_conn_answer(conn, cmd->gettopicsofnamespaceresponse->request_id, cmd);
        return;
    case PULSAR__PROTO__BASE_COMMAND__TYPE__WATCH_TOPIC_LIST_SUCCESS:
        client_conn_answer(conn, cmd->watchtopiclistsuccess->request_id, cmd);
        return;
    case PULSAR__PROTO__BASE_COMMAND__TYPE__WATCH_TOPIC_UPDATE:
        client_watch_on_update(conn->client, cmd->watchtopicupdate);
        return;
    case PULSAR__PROTO__BASE_COMMAND__TYPE__SUCCESS:
        client_conn_answer(conn, cmd->success->request_id, cmd);
        return;
    case PULSAR__PROTO__BASE_COMMAND__TYPE__PRODUCER_SUCCESS:
        if (cmd->producer_success->has_producer_ready && !cmd->producer_success->producer_ready)
            return; /* WaitForExclusive: a second PRODUCER_SUCCESS follows */
        client_conn_answer(conn, cmd->producer_success->request_id, cmd);
        return;
    case PULSAR__PROTO__BASE_COMMAND__TYPE__ERROR:
        client_conn_answer(conn, cmd->error->request_id, cmd);
        return;
    case PULSAR__PROTO__BASE_COMMAND__TYPE__SEND_RECEIPT: {
        struct client_ep *ep = mg_map_get_u64(&conn->eps, cmd->send_receipt->producer_id);
        if (ep && ep->kind == CLIENT_EP_PRODUCER)
            client_producer_on_receipt((struct client_producer *)ep, cmd);
        return;
    }
    case PULSAR__PROTO__BASE_COMMAND__TYPE__SEND_ERROR: {
        struct client_ep *ep = mg_map_get_u64(&conn->eps, cmd->send_error->producer_id);
        if (ep && ep->kind == CLIENT_EP_PRODUCER)
            client_producer_on_send_error((struct client_producer *)ep, cmd);
        return;
    }
    case PULSAR__PROTO__BASE_COMMAND__TYPE__MESSAGE: {
        struct client_ep *ep = mg_map_get_u64(&conn->eps, cmd->message->consumer_id);
        if (ep && ep->kind == CLIENT_EP_CONSUMER && ep->state == CLIENT_EP_READY)
            client_consumer_on_message((struct client_consumer *)ep, cmd, f->payload);
        return;
    }
    case PULSAR__PROTO__BASE_COMMAND__TYPE__REACHED_END_OF_TOPIC: {
        struct client_ep *ep = mg_map_get_u64(&conn->eps, cmd->reachedendoftopic->consumer_id);
        if (ep && ep->kind == CLIENT_EP_CONSUMER)
            ((struct client_consumer *)ep)->reached_end = true;
        return;
    }
    case PULSAR__PROTO__BASE_COMMAND__TYPE__CLOSE_PRODUCER:
    case PULSAR__PROTO__BASE_COMMAND__TYPE__CLOSE_CONSUMER: {
        bool prod = cmd->type == PULSAR__PROTO__BASE_COMMAND__TYPE__CLOSE_PRODUCER;
        uint64_t id = prod ? cmd->close_producer->producer_id : cmd->close_consumer->consumer_id;
        struct client_ep *ep = mg_map_get_u64(&conn->eps, id);
        if (ep && ep->kind == (prod ? CLIENT_EP_PRODUCER : CLIENT_EP_CONSUMER)) {
            mg_map_del_u64(&conn->eps, id);
            ep->conn = NULL;
            client_ep_conn_lost(ep, -MG_ECLOSED,
                                prod ? "broker closed the producer" : "broker closed the consumer");
        }
        return;
    }
    default:
        MG_DEBUG(MOD, "%s: ignoring %s", conn->url, wire_command_name(cmd->type));
        return;
    }
}

static void client_conn_read_cb(struct bufferevent *bev, void *arg)
{
    struct client_conn *conn = arg;
    struct evbuffer *in = bufferevent_get_input(bev);
    uint32_t max = conn->max_message_size + WIRE_FRAME_PADDING;

    conn->rx_since_ping = true;
    /* A client drains everything that arrived: the broker bounds what it sends by our
     * permits and pending window. */
    while (conn->state != CLIENT_CONN_CLOSED) {
        struct wire_frame f;
        char err[200];
        int rc = wire_frame_read(in, max, &f, err, sizeof err);
        if (rc == 0)
            return;
        if (rc < 0) {
            char m[300];
            if (conn->state == CLIENT_CONN_HANDSHAKE)
                snprintf(m, sizeof m, "%s does not answer as a Pulsar broker (%s)", conn->url, err);
            else
                snprintf(m, sizeof m, "bad frame from %s: %s", conn->url, err);
            client_conn_close(conn, rc, m);
            return;
        }
        client_conn_handle_frame(conn, &f);
        wire_frame_clear(&f);
    }
}

/* The TCP connection is up (or a test's dial handed over a connected socket): CONNECT. */
static void client_conn_connected(struct client_conn *conn)
{
    int one = 1;
    evutil_socket_t fd = bufferevent_getfd(conn->bev);
    setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    conn->state = CLIENT_CONN_HANDSHAKE;
    client_conn_send_connect(conn);
}

static void client_conn_event_cb(struct bufferevent *bev, short what, void *arg)
{
    struct client_conn *conn = arg;
    if (what & BEV_EVENT_CONNECTED) {
        client_conn_connected(conn);
        return;
    }
    char m[300];
    int err = EVUTIL_SOCKET_ERROR();
    unsigned long tls_err = tls_bev_openssl_error(bev); /* 0: the socket's error */
    if (tls_err) {
        char why[160];
        ERR_error_string_n(tls_err, why, sizeof why);
        snprintf(m, sizeof m, "TLS with %s failed: %s", conn->url, why);
    } else if (what & BEV_EVENT_EOF)
        snprintf(m, sizeof m, "connection to %s closed by the broker", conn->url);
    else if (conn->state == CLIENT_CONN_CONNECTING)
        snprintf(m, sizeof m, "cannot connect to %s: %s", conn->url,
                 evutil_socket_error_to_string(err));
    else
        snprintf(m, sizeof m, "connection to %s failed: %s", conn->url,
                 evutil_socket_error_to_string(err));
    client_conn_close(conn, -MG_EIO, m);
}

static void client_conn_connect_timeout_cb(evutil_socket_t fd, short what, void *arg)
{
    (void)fd;
    (void)what;
    struct client_conn *conn = arg;
    char m[300];
    snprintf(m, sizeof m, "connecting to %s timed out after %u ms", conn->url,
             conn->client->connect_timeout_ms);
    client_conn_close(conn, -MG_ETIMEDOUT, m);
}

static void client_conn_fail_cb(evutil_socket_t fd, short what, void *arg)
{
    (void)fd;
    (void)what;
    struct client_conn *conn = arg;
    client_conn_close(conn, -MG_EIO, conn->errmsg);
}

static void client_conn_tick_cb(evutil_socket_t fd, short what, void *arg)
{
    (void)fd;
    (void)what;
    struct client_conn *conn = arg;
    uint64_t now = mg_mono_us();

    /* Expire requests (not waiters: the connect timeout covers those). */
    for (;;) {
        struct client_req **pp = &conn->reqs, *r = NULL;
        for (; *pp; pp = &(*pp)->next) {
            if (!(*pp)->waiter && (*pp)->deadline_us <= now) {
                r = *pp;
                *pp = r->next;
                break;
            }
        }
        if (!r)
            break;
        char m[200];
        snprintf(m, sizeof m, "request %llu to %s timed out", (unsigned long long)r->request_id,
                 conn->url);
        client_req_finish(r, conn, -MG_ETIMEDOUT, NULL, m);
        if (conn->state == CLIENT_CONN_CLOSED)
            return;
    }
    if (conn->state != CLIENT_CONN_READY)
        return;
    if (++conn->ticks < conn->client->keepalive_s)
        return;
    conn->ticks = 0;
    if (!conn->rx_since_ping) {
        char m[200];
        snprintf(m, sizeof m, "%s: no traffic for %u s, closing", conn->url,
                 conn->client->keepalive_s);
        client_conn_close(conn, -MG_ETIMEDOUT, m);
        return;
    }
    conn->rx_since_ping = false;
    Pulsar__Proto__CommandPing ping = PULSAR__PROTO__COMMAND_PING__INIT;
    client_conn_send(conn, PULSAR__PROTO__BASE_COMMAND__TYPE__PING, &ping);
}

/* The test seam (client_int.h): the socket comes from c->dial, connected already. */
static void client_conn_dial(struct client_conn *conn)
{
    struct client *c = conn->client;
    int fd = c->dial(c->dial_arg, conn->url);
    if (fd < 0) {
        snprintf(conn->errmsg, sizeof conn->errmsg, "cannot connect to %s: refused", conn->url);
        event_active(conn->fail_ev, 0, 0);
        return;
    }
    evutil_make_socket_nonblocking(fd);
    conn->bev = bufferevent_socket_new(c->base, fd, BEV_OPT_CLOSE_ON_FREE);
    MG_ASSERT(conn->bev != NULL);
    bufferevent_setcb(conn->bev, client_conn_read_cb, NULL, client_conn_event_cb, conn);
    bufferevent_enable(conn->bev, EV_READ | EV_WRITE);
    client_conn_connected(conn);
}

/* The pooled connection for url, created (and connecting) if there is none. */
static struct client_conn *client_conn_get(struct client *c, const char *url)
{
    struct client_conn *conn = mg_map_get_str(&c->conns, url);
    if (conn)
        return conn;

    conn = mg_calloc(1, sizeof(*conn));
    conn->client = c;
    conn->url = mg_strdup(url);
    conn->state = CLIENT_CONN_CONNECTING;
    conn->max_message_size = WIRE_DEFAULT_MAX_MESSAGE_SIZE;
    conn->rx_since_ping = true;
    mg_map_init(&conn->eps);
    conn->connect_ev = evtimer_new(c->base, client_conn_connect_timeout_cb, conn);
    conn->tick_ev = event_new(c->base, -1, EV_PERSIST, client_conn_tick_cb, conn);
    conn->free_ev = event_new(c->base, -1, 0, client_conn_free_cb, conn);
    conn->fail_ev = event_new(c->base, -1, 0, client_conn_fail_cb, conn);
    MG_ASSERT(conn->connect_ev && conn->tick_ev && conn->free_ev && conn->fail_ev);
    mg_map_put_str(&c->conns, url, conn);

    struct timeval tv = client_tv_ms(c->connect_timeout_ms);
    evtimer_add(conn->connect_ev, &tv);
    tv = client_tv_ms(1000);
    event_add(conn->tick_ev, &tv);

    char *host = NULL;
    int port = 0;
    char err[200];
    if (client_parse_url(url, &host, &port, err, sizeof err) < 0) {
        snprintf(conn->errmsg, sizeof conn->errmsg, "%s", err);
        event_active(conn->fail_ev, 0, 0);
        return conn;
    }
    if (c->dial) {
        mg_free(host);
        client_conn_dial(conn);
        return conn;
    }
    struct addrinfo hints = {.ai_family = AF_UNSPEC,
                             .ai_socktype = SOCK_STREAM,
                             .ai_flags = AI_NUMERICSERV | AI_ADDRCONFIG};
    struct addrinfo *ai = NULL;
    char ps[8];
    snprintf(ps, sizeof ps, "%d", port);
    int gai = getaddrinfo(host, ps, &hints, &ai);
    if (gai != 0 || !ai) {
        snprintf(conn->errmsg, sizeof conn->errmsg, "cannot resolve %s: %s", host,
                 gai_strerror(gai));
        mg_free(host);
        event_active(conn->fail_ev, 0, 0);
        return conn;
    }
    if (client_url_tls(url)) {
        /* TLS on the socket itself (not a filter over a socket bufferevent, which copies
         * every record once more and writes 16 KiB a loop turn): the TCP connect, then the
         * handshake; CONNECTED is reported once the handshake is done */
        SSL *ssl = SSL_new(c->ssl_ctx);
        MG_ASSERT(ssl != NULL);
        SSL_set_tlsext_host_name(ssl, host);
        conn->bev = bufferevent_openssl_socket_new(c->base, -1, ssl, BUFFEREVENT_SSL_CONNECTING,
                                                   BEV_OPT_CLOSE_ON_FREE);
    } else
        conn->bev = bufferevent_socket_new(c->base, -1, BEV_OPT_CLOSE_ON_FREE);
    MG_ASSERT(conn->bev != NULL);
    mg_free(host);
    bufferevent_setcb(conn->bev, client_conn_read_cb, NULL, client_conn_event_cb, conn);
    bufferevent_enable(conn->bev, EV_READ | EV_WRITE);
    if (bufferevent_socket_connect(conn->bev, ai->ai_addr, (int)ai->ai_addrlen) < 0) {
        snprintf(conn->errmsg, sizeof conn->errmsg, "cannot connect to %s: %s", url,
                 evutil_socket_error_to_string(EVUTIL_SOCKET_ERROR()));
        bufferevent_free(conn->bev);
        conn->bev = NULL;
        event_active(conn->fail_ev, 0, 0);
    }
    freeaddrinfo(ai);
    return conn;
}

/* Tell the waiter type's done(owner) once the connection is ready (synchronously if it
 * already is), or its fail when the connection fails. */
static void client_conn_when_ready(struct client_conn *conn, enum client_req_type type, void *owner)
{
    if (conn->state == CLIENT_CONN_READY)
        client_req_kinds[type].done(owner, conn, NULL);
    else
        client_conn_add_req(conn, type, owner);
}

static void client_conn_close(struct client_conn *conn, int status, const char *msg)
{
    if (conn->state == CLIENT_CONN_CLOSED)
        return;
    struct client *c = conn->client;
    bool was_ready = conn->state == CLIENT_CONN_READY;
    conn->state = CLIENT_CONN_CLOSED;
    if (mg_map_get_str(&c->conns, conn->url) == conn)
        mg_map_del_str(&c->conns, conn->url);
    if (was_ready && !c->closing)
        MG_WARN(MOD, "%s", msg);
    else
        MG_DEBUG(MOD, "%s", msg);
    if (conn->bev) {
        bufferevent_free(conn->bev);
        conn->bev = NULL;
    }
    evtimer_del(conn->connect_ev);
    event_del(conn->tick_ev);
    event_del(conn->fail_ev);

    /* Fail requests and waiters; their callbacks never reconnect synchronously. */
    struct client_req *r = conn->reqs;
    conn->reqs = NULL;
    while (r) {
        struct client_req *next = r->next;
        client_req_finish(r, conn, status, NULL, msg);
        r = next;
    }
    /* Detach the producers and consumers served here. */
    size_t pos = 0, n = 0;
    void *v;
    struct client_ep **eps = mg_calloc(conn->eps.count + 1, sizeof(*eps));
    while (mg_map_next(&conn->eps, &pos, NULL, NULL, &v))
        eps[n++] = v;
    mg_map_fini(&conn->eps);
    mg_map_init(&conn->eps);
    for (size_t i = 0; i < n; i++) {
        eps[i]->conn = NULL;
        client_ep_conn_lost(eps[i], status, msg);
    }
    mg_free(eps);
    if (!c->closing) {
        conn->dead_next = c->dead;
        c->dead = conn;
        event_active(conn->free_ev, 0, 0);
    }
}

/* ------------------------------------------------------------------------------------- */
/* endpoints: lookup, attach, retry */

static void client_ep_lookup_at(struct client_ep *ep, const char *url);
static void client_producer_send_create(struct client_producer *p, uint64_t request_id);
static void client_consumer_send_subscribe(struct client_consumer *c, uint64_t request_id);
static void client_producer_fail_all(struct client_producer *p, int status);

static void client_ep_detach(struct client_ep *ep)
{
    if (ep->conn) {
        if (mg_map_get_u64(&ep->conn->eps, ep->id) == ep)
            mg_map_del_u64(&ep->conn->eps, ep->id);
        ep->conn = NULL;
    }
}

static void client_ep_report_ready(struct client_ep *ep, int status, const char *msg)
{
    if (ep->kind == CLIENT_EP_PRODUCER) {
        struct client_producer *p = (struct client_producer *)ep;
        if (p->ready_cb)
            p->ready_cb(p, status, msg, p->data);
    } else {
        struct client_consumer *c = (struct client_consumer *)ep;
        if (c->ready_cb)
            c->ready_cb(c, status, msg, c->data);
    }
}

/* Something failed on the way to (or while) serving the topic. */
static void client_ep_fail(struct client_ep *ep, int status, const char *msg);

/* An endpoint's PRODUCER or SUBSCRIBE failed: the endpoint fails with "<what>: <msg>", what
 * formatted from fmt. */
static void client_ep_failf(struct client_ep *ep, int status, const char *msg, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));
static void client_ep_failf(struct client_ep *ep, int status, const char *msg, const char *fmt, ...)
{
    char m[400];
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(m, sizeof m, fmt, ap);
    va_end(ap);
    if (n >= 0 && (size_t)n < sizeof m)
        snprintf(m + n, sizeof m - (size_t)n, ": %s", msg);
    client_ep_fail(ep, status, m);
}

/* The endpoint is served: true the first time (its ready callback is due). */
static bool client_ep_set_ready(struct client_ep *ep)
{
    ep->state = CLIENT_EP_READY;
    ep->backoff_ms = CLIENT_BACKOFF_MIN_MS;
    bool first = !ep->ever_ready;
    ep->ever_ready = true;
    return first;
}

static void client_ep_fail(struct client_ep *ep, int status, const char *msg)
{
    client_ep_detach(ep);
    if (ep->client->closing)
        return;
    if (!ep->ever_ready) {
        ep->state = CLIENT_EP_FAILED;
        if (ep->kind == CLIENT_EP_PRODUCER)
            client_producer_fail_all((struct client_producer *)ep, -MG_ECLOSED);
        char m[400];
        snprintf(m, sizeof m, "%s", msg ? msg : mg_strerror(status));
        client_ep_report_ready(ep, status, m);
        return;
    }
    if (ep->state == CLIENT_EP_WAIT_RETRY)
        return;
    MG_WARN(MOD, "%s %s: %s; retrying in %u ms",
            ep->kind == CLIENT_EP_PRODUCER ? "producer" : "consumer", ep->topic,
            msg ? msg : mg_strerror(status), ep->backoff_ms);
    ep->state = CLIENT_EP_WAIT_RETRY;
    struct timeval tv = client_tv_ms(ep->backoff_ms);
    evtimer_add(ep->retry_ev, &tv);
    ep->backoff_ms =
        ep->backoff_ms * 2 > CLIENT_BACKOFF_MAX_MS ? CLIENT_BACKOFF_MAX_MS : ep->backoff_ms * 2;
}

static void client_ep_start(struct client_ep *ep)
{
    ep->state = CLIENT_EP_LOOKUP;
    ep->redirects = 0;
    ep->authoritative = false;
    /* A multi-host service URL: each new lookup (a retry after a failure) asks the next
     * host, so a dead broker in the list does not stop reconnection. */
    struct client *c = ep->client;
    const char *url = c->n_service_urls > 1
                          ? c->service_urls[(ep->id + ep->starts) % (unsigned)c->n_service_urls]
                          : c->service_url;
    ep->starts++;
    client_ep_lookup_at(ep, url);
}

static void client_ep_retry_cb(evutil_socket_t fd, short what, void *arg)
{
    (void)fd;
    (void)what;
    client_ep_start(arg);
}

static void client_consumer_forget_chunks(struct client_consumer *c);

static void client_ep_conn_lost(struct client_ep *ep, int status, const char *msg)
{
    ep->conn = NULL;
    if (ep->state == CLIENT_EP_READY && ep->kind == CLIENT_EP_CONSUMER) {
        /* Unacked messages come again after re-subscribing; forget partial batches and
         * partial chunked messages (their chunks come again too). */
        struct client_consumer *c = (struct client_consumer *)ep;
        mg_map_fini_free(&c->batches, mg_free);
        mg_map_init(&c->batches);
        client_consumer_forget_chunks(c);
    }
    if (ep->state == CLIENT_EP_READY || ep->state == CLIENT_EP_CREATING)
        client_ep_fail(ep, status, msg);
}

/* The fail of every kind of an endpoint's waits and requests but its PRODUCER/SUBSCRIBE. */
static void client_ep_req_failed(void *owner, int status, const char *msg)
{
    client_ep_fail(owner, status, msg);
}

static void client_ep_on_attach_conn(void *owner, struct client_conn *conn, const wire_cmd *cmd)
{
    (void)cmd;
    struct client_ep *ep = owner;
    ep->conn = conn;
    mg_map_put_u64(&conn->eps, ep->id, ep);
    ep->state = CLIENT_EP_CREATING;
    /* The answer goes to the producer or consumer: ep is its first member. */
    bool prod = ep->kind == CLIENT_EP_PRODUCER;
    struct client_req *r =
        client_conn_add_req(conn, prod ? CLIENT_REQ_PRODUCER : CLIENT_REQ_SUBSCRIBE, ep);
    if (prod)
        client_producer_send_create((struct client_producer *)ep, r->request_id);
    else
        client_consumer_send_subscribe((struct client_consumer *)ep, r->request_id);
}

static void client_ep_on_lookup_resp(void *owner, struct client_conn *conn, const wire_cmd *cmd)
{
    (void)conn;
    struct client_ep *ep = owner;
    const Pulsar__Proto__CommandLookupTopicResponse *lr = cmd->lookuptopicresponse;
    char m[400];
    if (!lr->has_response ||
        lr->response == PULSAR__PROTO__COMMAND_LOOKUP_TOPIC_RESPONSE__LOOKUP_TYPE__Failed) {
        int st = lr->has_error ? client_server_error_to_mg(lr->error) : -MG_EIO;
        snprintf(m, sizeof m, "lookup of %s failed: %s", ep->topic,
                 lr->message ? lr->message : mg_strerror(st));
        client_ep_fail(ep, st, m);
        return;
    }
    /* A client whose service URL is pulsar+ssl:// follows the TLS URLs only, as Pulsar's */
    const char *target = ep->client->use_tls ? lr->brokerserviceurltls : lr->brokerserviceurl;
    if (!target || !*target) {
        snprintf(m, sizeof m, "lookup of %s gave no %s", ep->topic,
                 ep->client->use_tls ? "brokerServiceUrlTls" : "brokerServiceUrl");
        client_ep_fail(ep, -MG_EPROTO, m);
        return;
    }
    if (lr->response == PULSAR__PROTO__COMMAND_LOOKUP_TOPIC_RESPONSE__LOOKUP_TYPE__Redirect) {
        if (++ep->redirects > CLIENT_MAX_REDIRECTS) {
            snprintf(m, sizeof m, "lookup of %s: too many redirects", ep->topic);
            client_ep_fail(ep, -MG_EPROTO, m);
            return;
        }
        ep->authoritative = lr->has_authoritative && lr->authoritative;
        client_ep_lookup_at(ep, target);
        return;
    }
    /* proxy_through_service_url: keep using the service URL connection. */
    const char *url = lr->has_proxy_through_service_url && lr->proxy_through_service_url
                          ? ep->client->service_url
                          : target;
    client_conn_when_ready(client_conn_get(ep->client, url), CLIENT_WAIT_ATTACH, ep);
}

static void client_ep_on_lookup_conn(void *owner, struct client_conn *conn, const wire_cmd *cmd)
{
    (void)cmd;
    struct client_ep *ep = owner;
    Pulsar__Proto__CommandLookupTopic lt = PULSAR__PROTO__COMMAND_LOOKUP_TOPIC__INIT;
    struct client_req *req = client_conn_add_req(conn, CLIENT_REQ_LOOKUP, ep);
    lt.topic = ep->topic;
    lt.request_id = req->request_id;
    lt.has_authoritative = 1;
    lt.authoritative = ep->authoritative;
    client_conn_send(conn, PULSAR__PROTO__BASE_COMMAND__TYPE__LOOKUP, &lt);
}

static void client_ep_lookup_at(struct client_ep *ep, const char *url)
{
    client_conn_when_ready(client_conn_get(ep->client, url), CLIENT_WAIT_LOOKUP, ep);
}

static void client_ep_init(struct client_ep *ep, struct client *c, enum client_ep_kind kind,
                           const char *topic)
{
    ep->kind = kind;
    ep->client = c;
    ep->topic = client_topic_full_name(topic);
    ep->id = c->next_ep_id++;
    ep->backoff_ms = CLIENT_BACKOFF_MIN_MS;
    ep->retry_ev = evtimer_new(c->base, client_ep_retry_cb, ep);
    MG_ASSERT(ep->retry_ev != NULL);
    LIST_INSERT_HEAD(&c->eps, ep, link);
}

/* Unlink ep from everything that could call it back. */
static void client_ep_fini(struct client_ep *ep)
{
    struct client *c = ep->client;
    size_t pos = 0;
    void *v;
    while (mg_map_next(&c->conns, &pos, NULL, NULL, &v))
        client_conn_cancel_owner(v, ep);
    client_ep_detach(ep);
    mg_event_free(ep->retry_ev);
    LIST_REMOVE(ep, link);
    mg_free(ep->topic);
}

/* Tell the broker we are done with ep (fire and forget). */
static void client_ep_send_close(struct client_ep *ep)
{
    struct client_conn *conn = ep->conn;
    if (!conn || conn->state != CLIENT_CONN_READY || ep->state != CLIENT_EP_READY)
        return;
    struct client_req *r = client_conn_add_req(conn, CLIENT_REQ_NONE, NULL);
    if (ep->kind == CLIENT_EP_PRODUCER) {
        Pulsar__Proto__CommandCloseProducer cp = PULSAR__PROTO__COMMAND_CLOSE_PRODUCER__INIT;
        cp.producer_id = ep->id;
        cp.request_id = r->request_id;
        client_conn_send(conn, PULSAR__PROTO__BASE_COMMAND__TYPE__CLOSE_PRODUCER, &cp);
    } else {
        Pulsar__Proto__CommandCloseConsumer cc = PULSAR__PROTO__COMMAND_CLOSE_CONSUMER__INIT;
        cc.consumer_id = ep->id;
        cc.request_id = r->request_id;
        client_conn_send(conn, PULSAR__PROTO__BASE_COMMAND__TYPE__CLOSE_CONSUMER, &cc);
    }
}

/* ------------------------------------------------------------------------------------- */
/* client */

struct ssl_ctx_st *client_tls_ctx_new(const char *trust_certs_file, bool allow_insecure,
                                      char *errmsg, size_t errlen)
{
    SSL_CTX *ctx = SSL_CTX_new(TLS_client_method());
    if (!ctx) {
        snprintf(errmsg, errlen, "cannot create a TLS context");
        return NULL;
    }
    SSL_CTX_set_min_proto_version(ctx, TLS1_2_VERSION);
    SSL_CTX_set_options(ctx, SSL_OP_IGNORE_UNEXPECTED_EOF);
    int ok = trust_certs_file ? SSL_CTX_load_verify_locations(ctx, trust_certs_file, NULL)
                              : SSL_CTX_set_default_verify_paths(ctx);
    if (ok != 1) {
        unsigned long e = ERR_get_error();
        snprintf(errmsg, errlen, "cannot load the trusted certificates '%s': %s",
                 trust_certs_file ? trust_certs_file : "(system)",
                 e ? ERR_reason_error_string(e) : "unknown error");
        SSL_CTX_free(ctx);
        return NULL;
    }
    SSL_CTX_set_verify(ctx, allow_insecure ? SSL_VERIFY_NONE : SSL_VERIFY_PEER, NULL);
    return ctx;
}

static int client_tls_init(struct client *c, const struct client_opts *opts, char *errmsg,
                           size_t errlen)
{
    c->ssl_ctx =
        client_tls_ctx_new(opts->tls_trust_certs_file, opts->tls_allow_insecure, errmsg, errlen);
    if (!c->ssl_ctx)
        return -MG_EINVAL;
    if (opts->tls_cert_file || opts->tls_key_file) {
        const char *cert = opts->tls_cert_file ? opts->tls_cert_file : "";
        const char *key = opts->tls_key_file ? opts->tls_key_file : "";
        if (SSL_CTX_use_certificate_chain_file(c->ssl_ctx, cert) != 1 ||
            SSL_CTX_use_PrivateKey_file(c->ssl_ctx, key, SSL_FILETYPE_PEM) != 1 ||
            SSL_CTX_check_private_key(c->ssl_ctx) != 1) {
            unsigned long e = ERR_get_error();
            snprintf(errmsg, errlen, "cannot load the client certificate '%s' and key '%s': %s",
                     cert, key, e ? ERR_reason_error_string(e) : "they do not match");
            return -MG_EINVAL;
        }
        c->auth_tls = true;
    }
    return 0;
}

int client_new(struct event_base *base, const struct client_opts *opts, struct client **out,
               char *errmsg, size_t errlen)
{
    char *host = NULL;
    int port = 0;
    *out = NULL;
    int rc = client_parse_url(opts->service_url, &host, &port, errmsg, errlen);
    if (rc < 0)
        return rc;
    struct client *c = mg_calloc(1, sizeof(*c));
    c->base = base;
    c->use_tls = client_url_tls(opts->service_url);
    const char *scheme = c->use_tls ? "pulsar+ssl://" : "pulsar://";
    /* The pool key must match what lookups answer: pulsar://host:port with the port. */
    c->service_url = mg_asprintf("%s%s:%d", scheme, host, port);
    mg_free(host);
    if (opts->auth_token)
        c->auth_token = mg_strdup(opts->auth_token);
    if (c->use_tls && client_tls_init(c, opts, errmsg, errlen) < 0) {
        client_free(c);
        return -MG_EINVAL;
    }
    /* pulsar://h1:p1,h2:p2,...: every host is a service URL (lookups rotate over them). */
    const char *hosts = opts->service_url + strlen(scheme);
    size_t hl = strcspn(hosts, "/");
    for (const char *h = hosts; h < hosts + hl;) {
        size_t n = strcspn(h, ",/");
        char *one = mg_asprintf("%s%.*s", scheme, (int)n, h);
        char *h2 = NULL;
        int p2 = 0;
        if (client_parse_url(one, &h2, &p2, errmsg, errlen) < 0) {
            mg_free(one);
            client_free(c);
            return -MG_EINVAL;
        }
        c->service_urls =
            mg_realloc(c->service_urls, (size_t)(c->n_service_urls + 1) * sizeof *c->service_urls);
        c->service_urls[c->n_service_urls++] = mg_asprintf("%s%s:%d", scheme, h2, p2);
        mg_free(h2);
        mg_free(one);
        h += n;
        if (*h == ',')
            h++;
    }
    c->connect_timeout_ms = opts->connect_timeout_ms ? opts->connect_timeout_ms : 10000;
    c->operation_timeout_ms = opts->operation_timeout_ms ? opts->operation_timeout_ms : 30000;
    c->keepalive_s = opts->keepalive_s ? opts->keepalive_s : 30;
    c->next_request_id = 1;
    c->next_ep_id = 1;
    mg_map_init(&c->conns);
    mg_map_init(&c->watches);
    LIST_INIT(&c->eps);
    *out = c;
    return 0;
}

void client_free(struct client *c)
{
    if (!c)
        return;
    while (!LIST_EMPTY(&c->eps)) {
        struct client_ep *ep = LIST_FIRST(&c->eps);
        if (ep->kind == CLIENT_EP_PRODUCER)
            client_producer_free((struct client_producer *)ep);
        else
            client_consumer_free((struct client_consumer *)ep);
    }
    c->closing = true;
    for (;;) {
        size_t pos = 0;
        void *v;
        if (!mg_map_next(&c->conns, &pos, NULL, NULL, &v))
            break;
        struct client_conn *conn = v;
        if (conn->bev) /* push out the CLOSE_* frames if the socket takes them */
            bufferevent_flush(conn->bev, EV_WRITE, BEV_FLUSH);
        client_conn_close(conn, -MG_ECANCELED, "client closed");
        client_conn_destroy(conn);
    }
    while (c->dead) { /* closed while the loop was not run again */
        struct client_conn *conn = c->dead;
        c->dead = conn->dead_next;
        client_conn_destroy(conn);
    }
    mg_map_fini(&c->conns);
    mg_map_fini_free(&c->watches, client_watch_free);
    mg_free(c->service_url);
    mg_free_strv(c->service_urls, c->n_service_urls);
    SSL_CTX_free(c->ssl_ctx);
    mg_free(c->auth_token);
    mg_free(c);
}

/* PARTITIONED_METADATA and GET_TOPICS_OF_NAMESPACE: one question to the service URL broker */
#define PARTITIONS_SUCCESS                                                                         \
    PULSAR__PROTO__COMMAND_PARTITIONED_TOPIC_METADATA_RESPONSE__LOOKUP_TYPE__Success

struct client_query_req {
    struct client *client;              /* borrowed */
    char *arg;                          /* owned: the topic's full name, or the namespace */
    char *pattern;                      /* owned: a watch's topics pattern, else NULL */
    uint64_t watcher_id;                /* a watch's id (in client->watches once answered) */
    client_partitions_cb partitions_cb; /* one of the two is set */
    client_topics_cb topics_cb;
    void *data; /* borrowed */
};

static void client_query_done(struct client_query_req *q, int status, uint32_t partitions,
                              const char *const *topics, size_t ntopics, const char *msg)
{
    if (q->topics_cb)
        q->topics_cb(q->client, status, topics, ntopics, msg, q->data);
    else
        q->partitions_cb(q->client, status, partitions, msg, q->data);
    if (q->pattern && status == 0)
        return; /* a watch goes on (client->watches) */
    mg_free(q->pattern);
    mg_free(q->arg);
    mg_free(q);
}

static void client_watch_free(void *v)
{
    struct client_query_req *q = v;
    mg_free(q->pattern);
    mg_free(q->arg);
    mg_free(q);
}

static void client_watch_on_resp(void *owner, struct client_conn *conn, const wire_cmd *cmd)
{
    (void)conn;
    struct client_query_req *q = owner;
    const Pulsar__Proto__CommandWatchTopicListSuccess *r = cmd->watchtopiclistsuccess;
    mg_map_put_u64(&q->client->watches, q->watcher_id, q);
    client_query_done(q, 0, 0, (const char *const *)r->topic, r->n_topic, NULL);
}

/* WATCH_TOPIC_UPDATE: the topics created are told to the watch's callback. */
static void client_watch_on_update(struct client *c,
                                   const Pulsar__Proto__CommandWatchTopicUpdate *u)
{
    struct client_query_req *q = mg_map_get_u64(&c->watches, u->watcher_id);
    if (q && u->n_new_topics > 0)
        q->topics_cb(c, 0, (const char *const *)u->new_topics, u->n_new_topics, NULL, q->data);
}

static void client_query_failed(void *owner, int status, const char *msg)
{
    client_query_done(owner, status, 0, NULL, 0, msg);
}

static void client_partitions_on_resp(void *owner, struct client_conn *conn, const wire_cmd *cmd)
{
    (void)conn;
    struct client_query_req *q = owner;
    const Pulsar__Proto__CommandPartitionedTopicMetadataResponse *pm =
        cmd->partitionmetadataresponse;
    if (!pm->has_response || pm->response != PARTITIONS_SUCCESS) {
        int st = pm->has_error ? client_server_error_to_mg(pm->error) : -MG_EIO;
        client_query_done(q, st, 0, NULL, 0, pm->message ? pm->message : mg_strerror(st));
        return;
    }
    client_query_done(q, 0, pm->has_partitions ? pm->partitions : 0, NULL, 0, NULL);
}

static void client_topics_on_resp(void *owner, struct client_conn *conn, const wire_cmd *cmd)
{
    (void)conn;
    const Pulsar__Proto__CommandGetTopicsOfNamespaceResponse *r = cmd->gettopicsofnamespaceresponse;
    client_query_done(owner, 0, 0, (const char *const *)r->topics, r->n_topics, NULL);
}

static void client_query_on_conn(void *owner, struct client_conn *conn, const wire_cmd *cmd)
{
    (void)cmd;
    struct client_query_req *q = owner;
    if (q->pattern && !conn->topic_watchers) { /* CONNECTED did not advertise them */
        client_query_failed(q, -MG_ENOTSUP, "the broker does not support topic list watchers");
        return;
    }
    struct client_req *req = client_conn_add_req(conn,
                                                 q->pattern     ? CLIENT_REQ_WATCH
                                                 : q->topics_cb ? CLIENT_REQ_TOPICS
                                                                : CLIENT_REQ_PARTITIONS,
                                                 q);
    if (q->pattern) {
        Pulsar__Proto__CommandWatchTopicList w = PULSAR__PROTO__COMMAND_WATCH_TOPIC_LIST__INIT;
        w.request_id = req->request_id;
        w.watcher_id = q->watcher_id = req->request_id;
        w.namespace_ = q->arg;
        w.topics_pattern = q->pattern;
        client_conn_send(conn, PULSAR__PROTO__BASE_COMMAND__TYPE__WATCH_TOPIC_LIST, &w);
        return;
    }
    if (q->topics_cb) {
        Pulsar__Proto__CommandGetTopicsOfNamespace gt =
            PULSAR__PROTO__COMMAND_GET_TOPICS_OF_NAMESPACE__INIT;
        gt.namespace_ = q->arg;
        gt.request_id = req->request_id;
        gt.has_mode = 1;
        gt.mode = PULSAR__PROTO__COMMAND_GET_TOPICS_OF_NAMESPACE__MODE__PERSISTENT;
        client_conn_send(conn, PULSAR__PROTO__BASE_COMMAND__TYPE__GET_TOPICS_OF_NAMESPACE, &gt);
        return;
    }
    Pulsar__Proto__CommandPartitionedTopicMetadata pm =
        PULSAR__PROTO__COMMAND_PARTITIONED_TOPIC_METADATA__INIT;
    pm.topic = q->arg;
    pm.request_id = req->request_id;
    client_conn_send(conn, PULSAR__PROTO__BASE_COMMAND__TYPE__PARTITIONED_METADATA, &pm);
}

/* Ask arg (owned from now on) with one of the callbacks. Always asynchronous: the callback
 * runs from the loop (the request goes now if the connection is ready, the answer later). */
static int client_query_start(struct client *c, char *arg, client_partitions_cb pcb,
                              client_topics_cb tcb, void *data)
{
    struct client_query_req *q = mg_calloc(1, sizeof(*q));
    *q = (struct client_query_req){
        .client = c, .arg = arg, .partitions_cb = pcb, .topics_cb = tcb, .data = data};
    client_conn_when_ready(client_conn_get(c, c->service_url), CLIENT_WAIT_QUERY, q);
    return 0;
}

int client_get_partitions(struct client *c, const char *topic, client_partitions_cb cb, void *data)
{
    if (!topic || !*topic || !cb)
        return -MG_EINVAL;
    return client_query_start(c, client_topic_full_name(topic), cb, NULL, data);
}

int client_get_topics(struct client *c, const char *ns, client_topics_cb cb, void *data)
{
    const char *slash = ns ? strchr(ns, '/') : NULL;
    if (!slash || slash == ns || !slash[1] || strchr(slash + 1, '/') || !cb)
        return -MG_EINVAL;
    return client_query_start(c, mg_strdup(ns), NULL, cb, data);
}

int client_watch_topics(struct client *c, const char *ns, const char *pattern, client_topics_cb cb,
                        void *data)
{
    const char *slash = ns ? strchr(ns, '/') : NULL;
    if (!slash || slash == ns || !slash[1] || strchr(slash + 1, '/') || !cb || !pattern)
        return -MG_EINVAL;
    struct client_query_req *q = mg_calloc(1, sizeof(*q));
    *q = (struct client_query_req){.client = c,
                                   .arg = mg_strdup(ns),
                                   .pattern = mg_strdup(pattern),
                                   .topics_cb = cb,
                                   .data = data};
    client_conn_when_ready(client_conn_get(c, c->service_url), CLIENT_WAIT_QUERY, q);
    return 0;
}

/* ------------------------------------------------------------------------------------- */
/* producer */

static void client_op_free(struct client_op *op)
{
    if (!op)
        return;
    if (op->frame)
        evbuffer_free(op->frame);
    mg_free(op->msgs);
    mg_free(op);
}

static void client_op_complete(struct client_producer *p, struct client_op *op, int status,
                               const Pulsar__Proto__MessageIdData *mid)
{
    p->pending -= op->n;
    uint64_t now = op->n > 0 ? mg_mono_us() : 0;
    for (unsigned i = 0; i < op->n; i++) {
        struct client_pending_msg *m = &op->msgs[i];
        struct client_send_result res = {.status = status,
                                         .sequence_id = m->seq,
                                         .enqueued_us = m->enqueued_us,
                                         .completed_us = now,
                                         .size = m->size};
        res.id.partition = -1;
        res.id.batch_index = -1;
        if (mid) {
            res.id.ledger_id = mid->ledgerid;
            res.id.entry_id = mid->entryid;
            if (op->batched) {
                res.id.batch_index = (int32_t)i;
                res.id.batch_size = (int32_t)op->n;
            }
        }
        if (m->cb)
            m->cb(p, &res, m->data);
    }
    client_op_free(op);
}

static void client_producer_write_op(struct client_producer *p, struct client_op *op)
{
    struct client_conn *conn = p->ep.conn;
    if (p->ep.state != CLIENT_EP_READY || !conn || !conn->bev)
        return;
    struct evbuffer *out = bufferevent_get_output(conn->bev);
    if (evbuffer_add_buffer_reference(out, op->frame) < 0) {
        /* Cannot share (should not happen: frames are built by copying in): copy. */
        size_t len = evbuffer_get_length(op->frame);
        uint8_t *tmp = mg_malloc(len);
        evbuffer_copyout(op->frame, tmp, len);
        evbuffer_add(out, tmp, len);
        mg_free(tmp);
    }
}

static void client_producer_clear_single(struct client_producer *p)
{
    mg_free(p->single_key);
    mg_free_strv(p->single_props, (int)(2 * p->nsingle_props));
    p->single_key = NULL;
    p->single_props = NULL;
    p->nsingle_props = 0;
    p->single_deliver_at = 0;
}

static void client_free_ref(const void *data, size_t len, void *arg)
{
    (void)len;
    (void)arg;
    mg_free((void *)(uintptr_t)data);
}

/* Frame one SEND for op (md and send filled but for what this sets) and queue it. owned:
 * data is a malloc'd buffer whose ownership moves to the frame, which then references it
 * instead of copying it; NULL: data is borrowed and copied. */
static void client_producer_queue_op(struct client_producer *p, struct client_op *op,
                                     Pulsar__Proto__MessageMetadata *md,
                                     Pulsar__Proto__CommandSend *send, const uint8_t *data,
                                     size_t len, uint8_t *owned)
{
    wire_cmd cmd = PULSAR__PROTO__BASE_COMMAND__INIT;
    cmd.type = PULSAR__PROTO__BASE_COMMAND__TYPE__SEND;
    cmd.send = send;
    op->frame = evbuffer_new();
    MG_ASSERT(op->frame != NULL);
    wire_write_send_head(op->frame, &cmd, md, data, len);
    if (owned && len > 0)
        MG_ASSERT(evbuffer_add_reference(op->frame, owned, len, client_free_ref, NULL) == 0);
    else if (len > 0)
        MG_ASSERT(evbuffer_add(op->frame, data, len) == 0);
    if (owned && len == 0)
        mg_free(owned);
    STAILQ_INSERT_TAIL(&p->ops, op, link);
    client_producer_write_op(p, op);
}

/* The payload bytes of each chunk of a len-byte message whose metadata is md, as Pulsar's
 * ProducerImpl reserves: the broker's max message size minus the metadata (here with the
 * chunk fields at their largest). 0 when even that does not fit. */
size_t client_chunk_size(const Pulsar__Proto__MessageMetadata *md, const char *uuid, size_t len,
                         uint32_t max_message_size)
{
    Pulsar__Proto__MessageMetadata m = *md;
    m.uuid = (char *)uuid;
    m.has_num_chunks_from_msg = m.has_total_chunk_msg_size = m.has_chunk_id = 1;
    m.num_chunks_from_msg = m.chunk_id = INT32_MAX;
    m.total_chunk_msg_size = len > INT32_MAX ? INT32_MAX : (int32_t)len;
    size_t over = pulsar__proto__message_metadata__get_packed_size(&m);
    return over < max_message_size ? max_message_size - over : 0;
}

/* Queue a message's payload that does not fit one entry as chunks (Pulsar's chunking): one
 * SEND each with the message's sequence id, uuid, chunk_id, num_chunks_from_msg and
 * total_chunk_msg_size. Only the last chunk's op carries the message: its receipt completes
 * the send. */
static void client_producer_queue_chunks(struct client_producer *p, struct client_op *last,
                                         Pulsar__Proto__MessageMetadata *md,
                                         Pulsar__Proto__CommandSend *send, char *uuid,
                                         const uint8_t *data, size_t len, size_t chunk)
{
    size_t n = (len + chunk - 1) / chunk;
    md->uuid = uuid;
    md->has_num_chunks_from_msg = md->has_total_chunk_msg_size = md->has_chunk_id = 1;
    md->num_chunks_from_msg = (int32_t)n;
    md->total_chunk_msg_size = (int32_t)len;
    send->has_is_chunk = send->is_chunk = 1;
    for (size_t i = 0; i < n; i++) {
        struct client_op *op = last;
        if (i + 1 < n) { /* a chunk before the last: no message to complete */
            op = mg_calloc(1, sizeof(*op));
            op->first_seq = op->last_seq = last->first_seq;
        }
        md->chunk_id = (int32_t)i;
        size_t off = i * chunk;
        client_producer_queue_op(p, op, md, send, data + off, len - off < chunk ? len - off : chunk,
                                 NULL);
    }
}

/* Close the open batch into a SEND (or chunks) and queue it (and write it when connected). */
static void client_producer_close_batch(struct client_producer *p)
{
    if (p->bn == 0)
        return;
    if (p->batch_ev)
        evtimer_del(p->batch_ev);
    struct client_op *op = mg_calloc(1, sizeof(*op));
    op->n = p->bn;
    op->msgs = p->bmsgs;
    op->first_seq = p->bmsgs[0].seq;
    op->last_seq = p->bmsgs[p->bn - 1].seq;
    op->batched = p->batching;
    p->bmsgs = NULL;
    p->bn = p->bcap = 0;

    Pulsar__Proto__MessageMetadata md = PULSAR__PROTO__MESSAGE_METADATA__INIT;
    md.producer_name = p->name ? p->name : (char *)"";
    md.sequence_id = op->first_seq;
    md.publish_time = p->batch_publish_ms;
    if (p->schema_version_len) {
        md.has_schema_version = 1;
        md.schema_version.data = p->schema_version;
        md.schema_version.len = p->schema_version_len;
    }
    Pulsar__Proto__CommandSend send = PULSAR__PROTO__COMMAND_SEND__INIT;
    send.producer_id = p->ep.id;
    send.sequence_id = op->first_seq;
    send.has_num_messages = 1;
    send.num_messages = (int32_t)op->n;
    /* without batching, the one message's key and properties are the entry's */
    struct client_msg_meta one = {.key = p->single_key,
                                  .properties = (const char *const *)p->single_props,
                                  .nprops = p->nsingle_props};
    Pulsar__Proto__KeyValue *kv, **kvp;
    client_meta_kv(op->batched ? NULL : &one, &kv, &kvp);
    if (!op->batched) {
        md.partition_key = p->single_key;
        md.n_properties = p->nsingle_props;
        md.properties = kvp;
        md.has_deliver_at_time = p->single_deliver_at != 0;
        md.deliver_at_time = p->single_deliver_at;
    }
    if (op->batched) {
        md.has_num_messages_in_batch = 1;
        md.num_messages_in_batch = (int32_t)op->n;
        md.has_highest_sequence_id = 1;
        md.highest_sequence_id = op->last_seq;
        md.has_uncompressed_size = 1;
        md.uncompressed_size = (uint32_t)p->batch.len;
        send.has_highest_sequence_id = 1;
        send.highest_sequence_id = op->last_seq;
    }
    uint8_t *z = NULL;
    size_t zn = 0;
    if (p->compression != MG_CODEC_NONE) {
        /* the payload is at most maxMessageSize (client_producer_send_meta) or, chunking,
         * what the application holds in memory: it fits every codec, so this cannot fail
         * short of memory */
        int zrc = mg_compress(p->compression, p->batch.data, p->batch.len, &z, &zn);
        MG_ASSERT(zrc == 0);
        md.has_compression = 1;
        md.compression = (Pulsar__Proto__CompressionType)p->compression;
        md.has_uncompressed_size = 1;
        md.uncompressed_size = (uint32_t)p->batch.len;
    }
    const uint8_t *data = z ? z : p->batch.data;
    size_t len = z ? zn : p->batch.len;
    uint32_t max = p->ep.conn ? p->ep.conn->max_message_size : WIRE_DEFAULT_MAX_MESSAGE_SIZE;
    char uuid[300]; /* Pulsar's: "<producer name>-<sequence id>" */
    snprintf(uuid, sizeof uuid, "%s-%llu", md.producer_name, (unsigned long long)md.sequence_id);
    size_t chunk = p->chunking ? client_chunk_size(&md, uuid, len, max) : 0;
    if (chunk && len > chunk) {
        client_producer_queue_chunks(p, op, &md, &send, uuid, data, len, chunk);
    } else {
        /* The frame takes the buffer (the compressed copy, or the batch's own, which the
         * next batch gets anew at the same capacity): the payload is not copied again. */
        uint8_t *owned = z;
        z = NULL;
        if (!owned) {
            size_t cap = p->batch.cap;
            owned = p->batch.data;
            p->batch.data = NULL;
            p->batch.len = p->batch.cap = 0;
            client_buf_reserve(&p->batch, cap);
        }
        client_producer_queue_op(p, op, &md, &send, data, len, owned);
    }
    mg_free(z);
    p->batch.len = 0;
    mg_free(kv);
    mg_free(kvp);
    client_producer_clear_single(p);
}

static void client_producer_batch_timer_cb(evutil_socket_t fd, short what, void *arg)
{
    (void)fd;
    (void)what;
    client_producer_close_batch(arg);
}

static void client_producer_fail_all(struct client_producer *p, int status)
{
    client_producer_close_batch(p);
    while (!STAILQ_EMPTY(&p->ops)) {
        struct client_op *op = STAILQ_FIRST(&p->ops);
        STAILQ_REMOVE_HEAD(&p->ops, link);
        client_op_complete(p, op, status, NULL);
    }
}

static void client_producer_create_failed(void *owner, int status, const char *msg)
{
    struct client_producer *p = owner;
    client_ep_failf(&p->ep, status, msg, "cannot create producer on %s", p->ep.topic);
}

static void client_producer_on_create_resp(void *owner, struct client_conn *conn,
                                           const wire_cmd *cmd)
{
    (void)conn;
    struct client_producer *p = owner;
    const Pulsar__Proto__CommandProducerSuccess *ps = cmd->producer_success;
    if (ps->producer_name && *ps->producer_name &&
        (!p->name || strcmp(p->name, ps->producer_name) != 0)) {
        if (p->name && p->bn > 0)
            MG_WARN(MOD, "producer renamed from %s to %s", p->name, ps->producer_name);
        mg_free(p->name);
        p->name = mg_strdup(ps->producer_name);
    }
    p->schema_version_len = 0;
    if (ps->has_schema_version && ps->schema_version.len &&
        ps->schema_version.len <= sizeof p->schema_version) {
        memcpy(p->schema_version, ps->schema_version.data, ps->schema_version.len);
        p->schema_version_len = ps->schema_version.len;
    }
    if (!p->seq_known) {
        p->seq_known = true;
        if (ps->has_last_sequence_id && ps->last_sequence_id >= 0 && p->pending == 0)
            p->next_seq = (uint64_t)ps->last_sequence_id + 1;
    }
    bool first = client_ep_set_ready(&p->ep);
    if (!first)
        MG_INFO(MOD, "producer %s on %s reconnected; resending %u pending", p->name, p->ep.topic,
                p->pending);
    /* Resend every pending SEND, oldest first, with its original sequence ids. */
    struct client_op *op;
    STAILQ_FOREACH(op, &p->ops, link)
    {
        client_producer_write_op(p, op);
    }
    if (first)
        client_ep_report_ready(&p->ep, 0, NULL);
}

static void client_producer_send_create(struct client_producer *p, uint64_t request_id)
{
    Pulsar__Proto__CommandProducer pc = PULSAR__PROTO__COMMAND_PRODUCER__INIT;
    pc.topic = p->ep.topic;
    pc.producer_id = p->ep.id;
    pc.request_id = request_id;
    pc.producer_name = p->name;
    pc.has_epoch = 1;
    pc.epoch = p->epoch++;
    pc.has_user_provided_producer_name = 1;
    pc.user_provided_producer_name = p->user_name;
    Pulsar__Proto__Schema schema;
    pc.schema = client_schema_wire(&p->schema, &schema);
    client_conn_send(p->ep.conn, PULSAR__PROTO__BASE_COMMAND__TYPE__PRODUCER, &pc);
}

static void client_producer_on_receipt(struct client_producer *p, const wire_cmd *cmd)
{
    const Pulsar__Proto__CommandSendReceipt *sr = cmd->send_receipt;
    struct client_op *op = STAILQ_FIRST(&p->ops);
    if (!op || p->ep.state != CLIENT_EP_READY)
        return;
    uint64_t seq = sr->sequence_id;
    if (seq < op->first_seq) {
        MG_DEBUG(MOD, "stale receipt %llu (head %llu)", (unsigned long long)seq,
                 (unsigned long long)op->first_seq);
        return;
    }
    if (seq > op->last_seq) {
        char m[300];
        snprintf(m, sizeof m, "receipt for sequence id %llu while waiting for %llu on %s",
                 (unsigned long long)seq, (unsigned long long)op->first_seq, p->ep.topic);
        client_conn_close(p->ep.conn, -MG_EPROTO, m);
        return;
    }
    STAILQ_REMOVE_HEAD(&p->ops, link);
    client_op_complete(p, op, 0, sr->message_id);
}

static void client_producer_on_send_error(struct client_producer *p, const wire_cmd *cmd)
{
    const Pulsar__Proto__CommandSendError *se = cmd->send_error;
    int st = client_server_error_to_mg(se->error);
    struct client_op *op = STAILQ_FIRST(&p->ops);
    MG_WARN(MOD, "SEND_ERROR on %s seq %llu: %s", p->ep.topic, (unsigned long long)se->sequence_id,
            se->message ? se->message : mg_strerror(st));
    if ((st == -MG_ECHECKSUM || st == -MG_ENOTALLOWED) && op && se->sequence_id >= op->first_seq &&
        se->sequence_id <= op->last_seq) {
        /* the head SEND fails, and with it the other chunks of its message (same ids) */
        uint64_t first = op->first_seq, last = op->last_seq;
        while ((op = STAILQ_FIRST(&p->ops)) && op->first_seq == first && op->last_seq == last) {
            STAILQ_REMOVE_HEAD(&p->ops, link);
            client_op_complete(p, op, st, NULL);
        }
        return;
    }
    if (st == -MG_ETERMINATED) {
        client_producer_fail_all(p, st);
        return;
    }
    client_conn_close(p->ep.conn, st, "SEND_ERROR: reconnecting");
}

int client_producer_new(struct client *c, const struct client_producer_opts *opts,
                        client_producer_ready_cb ready_cb, void *data, struct client_producer **out)
{
    *out = NULL;
    if (!opts->topic || !*opts->topic || opts->compression < MG_CODEC_NONE ||
        opts->compression > MG_CODEC_SNAPPY)
        return -MG_EINVAL;
    struct client_producer *p = mg_calloc(1, sizeof(*p));
    client_ep_init(&p->ep, c, CLIENT_EP_PRODUCER, opts->topic);
    STAILQ_INIT(&p->ops);
    if (opts->producer_name) {
        p->name = mg_strdup(opts->producer_name);
        p->user_name = true;
    }
    p->chunking = opts->chunking;
    p->batching = opts->batching && !opts->chunking; /* as Pulsar: chunks are never batched */
    p->compression = opts->compression;
    p->batch_max_messages = opts->batch_max_messages ? opts->batch_max_messages : 1000;
    p->batch_max_bytes = opts->batch_max_bytes ? opts->batch_max_bytes : 128 * 1024;
    p->batch_max_delay_us = opts->batch_max_delay_us ? opts->batch_max_delay_us : 1000;
    p->max_pending = opts->max_pending ? opts->max_pending : 1000;
    client_schema_copy(&p->schema, opts->schema);
    if (!p->batching)
        p->batch_max_messages = 1;
    p->batch_ev = evtimer_new(c->base, client_producer_batch_timer_cb, p);
    MG_ASSERT(p->batch_ev != NULL);
    p->ready_cb = ready_cb;
    p->data = data;
    *out = p;
    client_ep_start(&p->ep);
    return 0;
}

int client_producer_send(struct client_producer *p, const void *payload, size_t len,
                         client_send_cb cb, void *data)
{
    return client_producer_send_meta(p, payload, len, NULL, cb, data);
}

int client_producer_send_meta(struct client_producer *p, const void *payload, size_t len,
                              const struct client_msg_meta *meta, client_send_cb cb, void *data)
{
    if (p->ep.state == CLIENT_EP_FAILED)
        return -MG_ECLOSED;
    if (meta && meta->deliver_at_ms && p->batching)
        return -MG_EINVAL;
    uint32_t max = p->ep.conn ? p->ep.conn->max_message_size : WIRE_DEFAULT_MAX_MESSAGE_SIZE;
    if (len > INT32_MAX || (!p->chunking && len + 64 > max))
        return -MG_ETOOBIG; /* total_chunk_msg_size is an int32 */
    if (p->pending >= p->max_pending)
        return -MG_EAGAIN;
    /* Keep the batch within the bytes limit and the broker's frame limit. */
    size_t limit = p->batch_max_bytes < max - 1024 ? p->batch_max_bytes : max - 1024;
    if (p->bn > 0 && p->batch.len + len + 16 > limit)
        client_producer_close_batch(p);
    uint64_t now = mg_mono_us();
    if (p->bn == p->bcap) {
        p->bcap = p->bcap ? p->bcap * 2 : 16;
        p->bmsgs = mg_realloc(p->bmsgs, p->bcap * sizeof(*p->bmsgs));
    }
    struct client_pending_msg *m = &p->bmsgs[p->bn++];
    m->cb = cb;
    m->data = data;
    m->enqueued_us = now;
    m->seq = p->next_seq++;
    m->size = len;
    p->pending++;
    if (p->batching) {
        client_batch_append_meta(&p->batch, payload, len, m->seq, meta);
    } else {
        if (meta && meta->key)
            p->single_key = mg_strdup(meta->key);
        if (meta)
            p->single_deliver_at = meta->deliver_at_ms;
        if (meta && meta->nprops) {
            p->single_props = mg_calloc(2 * meta->nprops, sizeof *p->single_props);
            for (size_t i = 0; i < 2 * meta->nprops; i++)
                p->single_props[i] = mg_strdup(meta->properties[i]);
            p->nsingle_props = meta->nprops;
        }
        client_buf_reserve(&p->batch, len);
        if (len > 0)
            memcpy(p->batch.data, payload, len);
        p->batch.len = len;
    }
    if (p->bn == 1) {
        p->batch_publish_ms = (uint64_t)mg_wall_ms();
        if (p->batching && p->batch_max_messages > 1) {
            struct timeval tv = {.tv_sec = p->batch_max_delay_us / 1000000,
                                 .tv_usec = (suseconds_t)(p->batch_max_delay_us % 1000000)};
            evtimer_add(p->batch_ev, &tv);
        }
    }
    if (p->bn >= p->batch_max_messages || p->batch.len >= limit)
        client_producer_close_batch(p);
    return 0;
}

void client_producer_flush(struct client_producer *p)
{
    if (p)
        client_producer_close_batch(p);
}

unsigned client_producer_pending(const struct client_producer *p)
{
    return p ? p->pending : 0;
}

bool client_consumer_reached_end(const struct client_consumer *c)
{
    return c && c->reached_end;
}

const char *client_producer_name(const struct client_producer *p)
{
    return p && p->ep.ever_ready ? p->name : NULL;
}

int64_t client_producer_schema_version(const struct client_producer *p)
{
    if (!p || p->schema_version_len != 8)
        return -1;
    return (int64_t)mg_get_be64(p->schema_version);
}

void client_producer_free(struct client_producer *p)
{
    if (!p)
        return;
    client_ep_send_close(&p->ep);
    client_ep_fini(&p->ep);
    client_producer_fail_all(p, -MG_ECANCELED);
    mg_event_free(p->batch_ev);
    client_buf_fini(&p->batch);
    client_producer_clear_single(p);
    mg_free(p->bmsgs);
    mg_free(p->name);
    mg_free((void *)p->schema.data);
    mg_free(p);
}

/* ------------------------------------------------------------------------------------- */
/* consumer */

static void client_consumer_send_flow(struct client_consumer *c, unsigned permits)
{
    struct client_conn *conn = c->ep.conn;
    if (!conn || permits == 0)
        return;
    Pulsar__Proto__CommandFlow fl = PULSAR__PROTO__COMMAND_FLOW__INIT;
    fl.consumer_id = c->ep.id;
    fl.messagepermits = permits;
    client_conn_send(conn, PULSAR__PROTO__BASE_COMMAND__TYPE__FLOW, &fl);
}

static void client_consumer_subscribe_failed(void *owner, int status, const char *msg)
{
    struct client_consumer *c = owner;
    client_ep_failf(&c->ep, status, msg, "cannot subscribe %s on %s", c->subscription, c->ep.topic);
}

static void client_consumer_on_subscribe_resp(void *owner, struct client_conn *conn,
                                              const wire_cmd *cmd)
{
    (void)conn;
    (void)cmd;
    struct client_consumer *c = owner;
    bool first = client_ep_set_ready(&c->ep);
    if (!first)
        MG_INFO(MOD, "consumer %s on %s re-subscribed", c->subscription, c->ep.topic);
    c->consumed_since_flow = 0;
    client_consumer_send_flow(c, c->queue_size);
    client_consumer_flush(c);
    if (first)
        client_ep_report_ready(&c->ep, 0, NULL);
}

static void client_consumer_send_subscribe(struct client_consumer *c, uint64_t request_id)
{
    Pulsar__Proto__CommandSubscribe s = PULSAR__PROTO__COMMAND_SUBSCRIBE__INIT;
    s.topic = c->ep.topic;
    s.subscription = c->subscription;
    s.subtype = (Pulsar__Proto__CommandSubscribe__SubType)c->sub_type;
    s.consumer_id = c->ep.id;
    s.request_id = request_id;
    s.consumer_name = c->consumer_name;
    s.has_durable = 1;
    s.durable = !c->non_durable;
    s.has_read_compacted = c->read_compacted;
    s.read_compacted = c->read_compacted;
    Pulsar__Proto__MessageIdData start = PULSAR__PROTO__MESSAGE_ID_DATA__INIT;
    if (c->has_start) { /* a reader's start (non-durable only, as Pulsar's readers) */
        start.ledgerid = c->start.ledger_id;
        start.entryid = c->start.entry_id;
        s.start_message_id = &start;
    }
    s.has_initialposition = 1;
    s.initialposition = c->initial_position == CLIENT_POS_EARLIEST
                            ? PULSAR__PROTO__COMMAND_SUBSCRIBE__INITIAL_POSITION__Earliest
                            : PULSAR__PROTO__COMMAND_SUBSCRIBE__INITIAL_POSITION__Latest;
    Pulsar__Proto__Schema schema;
    s.schema = client_schema_wire(&c->schema, &schema);
    client_conn_send(c->ep.conn, PULSAR__PROTO__BASE_COMMAND__TYPE__SUBSCRIBE, &s);
}

static void client_consumer_consumed(struct client_consumer *c, unsigned n)
{
    c->consumed_since_flow += n;
    if (c->consumed_since_flow >= (c->queue_size + 1) / 2) {
        client_consumer_send_flow(c, c->consumed_since_flow);
        c->consumed_since_flow = 0;
    }
}

/* Decompress and unpack one entry's payload (p, len: after its metadata md, which this frees)
 * and hand its messages to the application with id (the entry's, or a chunked message's
 * last chunk's). Returns how many it handed. */
static unsigned client_consumer_deliver(struct client_consumer *c,
                                        const Pulsar__Proto__CommandMessage *cm,
                                        Pulsar__Proto__MessageMetadata *md,
                                        const struct client_msg_id *idp, const uint8_t *p,
                                        size_t len)
{
    struct client_msg_id id = *idp;
    size_t off = 0;
    uint8_t *raw = NULL; /* owned: a compressed payload, decompressed */
    if (md->has_compression && md->compression != PULSAR__PROTO__COMPRESSION_TYPE__NONE) {
        char why[200];
        size_t max = c->ep.conn ? c->ep.conn->max_message_size : WIRE_DEFAULT_MAX_MESSAGE_SIZE;
        if (md->has_num_chunks_from_msg && md->num_chunks_from_msg > 1)
            max = c->max_chunked_bytes; /* a reassembled chunked message */
        if (mg_decompress((int)md->compression, p, len,
                          md->has_uncompressed_size ? md->uncompressed_size : 0, max, &raw, why,
                          sizeof why) < 0) {
            MG_WARN(MOD, "%s: message %llu:%llu dropped: %s", c->ep.topic,
                    (unsigned long long)id.ledger_id, (unsigned long long)id.entry_id, why);
            pulsar__proto__message_metadata__free_unpacked(md, NULL);
            return 0;
        }
        p = raw;
        len = md->uncompressed_size;
        off = 0;
    }
    struct client_message m = {
        .publish_time = md->publish_time,
        .event_time = md->has_event_time ? md->event_time : 0,
        .sequence_id = md->sequence_id,
        .producer_name = md->producer_name,
        .key = md->partition_key,
        .redelivery_count = cm->has_redelivery_count ? cm->redelivery_count : 0,
        .schema_version = md->has_schema_version && md->schema_version.len == 8
                              ? (int64_t)mg_get_be64(md->schema_version.data)
                              : -1};
    if (!md->has_num_messages_in_batch) {
        m.id = id;
        m.payload = p + off;
        m.len = len - off;
        const char **props = client_kv_strs(md->properties, md->n_properties);
        m.properties = props;
        m.nprops = md->n_properties;
        c->msg_cb(c, &m, c->data);
        mg_free(props);
        pulsar__proto__message_metadata__free_unpacked(md, NULL);
        mg_free(raw);
        return 1;
    }
    int32_t n = md->num_messages_in_batch;
    unsigned delivered = 0;
    for (int32_t i = 0; i < n; i++) {
        Pulsar__Proto__SingleMessageMetadata *smm;
        const uint8_t *pl;
        size_t pllen;
        int rc = client_batch_next(p, len, &off, &smm, &pl, &pllen);
        if (rc <= 0) {
            MG_WARN(MOD, "%s: malformed batch %llu:%llu (message %d of %d)", c->ep.topic,
                    (unsigned long long)id.ledger_id, (unsigned long long)id.entry_id, i, n);
            break;
        }
        /* ack_set: a set bit means still unacked; skip the rest. */
        bool skip = false;
        if (cm->n_ack_set > 0) {
            size_t w = (size_t)i / 64;
            skip = w >= cm->n_ack_set || !((uint64_t)cm->ack_set[w] >> (i % 64) & 1u);
        }
        if (!skip && !(smm->has_compacted_out && smm->compacted_out)) {
            m.id = id;
            m.id.batch_index = i;
            m.id.batch_size = n;
            m.payload = pl;
            m.len = pllen;
            m.sequence_id = smm->has_sequence_id ? smm->sequence_id : md->sequence_id + (uint64_t)i;
            m.key = smm->partition_key;
            if (smm->has_event_time)
                m.event_time = smm->event_time;
            const char **props = client_kv_strs(smm->properties, smm->n_properties);
            m.properties = props;
            m.nprops = smm->n_properties;
            c->msg_cb(c, &m, c->data);
            mg_free(props);
            delivered++;
        }
        pulsar__proto__single_message_metadata__free_unpacked(smm, NULL);
    }
    pulsar__proto__message_metadata__free_unpacked(md, NULL);
    mg_free(raw);
    return delivered;
}

/* Chunked messages (consumer side): a map uuid -> context and a list, oldest first. */

static void client_consumer_queue_ack(struct client_consumer *c, uint64_t ledger, uint64_t entry,
                                      int32_t partition);

/* Remove ctx; ack the chunks it received when ack (a run that is given up: Pulsar acks the
 * chunks of an expired or evicted chunked message) and log why when why. */
static void client_chunk_drop(struct client_consumer *c, struct client_chunk_ctx *ctx, bool ack,
                              const char *why)
{
    if (why)
        MG_WARN(MOD, "%s: chunked message %s dropped (%d of %d chunks): %s", c->ep.topic, ctx->uuid,
                ctx->last_chunk_id + 1, ctx->num_chunks, why);
    for (int32_t i = 0; ack && i <= ctx->last_chunk_id; i++)
        client_consumer_queue_ack(c, ctx->ids[i].ledger_id, ctx->ids[i].entry_id,
                                  ctx->ids[i].partition);
    mg_map_del_str(&c->chunks, ctx->uuid);
    TAILQ_REMOVE(&c->chunk_order, ctx, link);
    c->nchunked--;
    client_buf_fini(&ctx->buf);
    mg_free(ctx->ids);
    mg_free(ctx->uuid);
    mg_free(ctx);
}

/* Drop the runs older than chunk_expire_ms (oldest first: only the head can be), then arm
 * the timer for the oldest run left. The timer may fire early (the head it was armed for
 * completed or was dropped): this arms it again. */
static void client_chunk_expire(struct client_consumer *c)
{
    uint64_t now = mg_mono_us(), ttl = (uint64_t)c->chunk_expire_ms * 1000;
    struct client_chunk_ctx *ctx;
    while ((ctx = TAILQ_FIRST(&c->chunk_order)) && now - ctx->created_us > ttl)
        client_chunk_drop(c, ctx, true, "expired (expireTimeOfIncompleteChunkedMessage)");
    if (!ctx) {
        evtimer_del(c->chunk_ev);
        return;
    }
    uint64_t us = ctx->created_us + ttl + 1 - now; /* > 0: ctx is not expired */
    struct timeval tv = {.tv_sec = (time_t)(us / 1000000), .tv_usec = (suseconds_t)(us % 1000000)};
    evtimer_add(c->chunk_ev, &tv);
}

static void client_chunk_timer_cb(evutil_socket_t fd, short what, void *arg)
{
    (void)fd;
    (void)what;
    client_chunk_expire(arg);
}

static void client_consumer_forget_chunks(struct client_consumer *c)
{
    struct client_chunk_ctx *ctx;
    while ((ctx = TAILQ_FIRST(&c->chunk_order)))
        client_chunk_drop(c, ctx, false, NULL);
}

/* One chunk (payload p, len) of a chunked message: start, extend or complete its context;
 * a complete message is delivered with id (the last chunk's), remembering every chunk's id
 * for its ack. Frees md. */
static void client_consumer_on_chunk(struct client_consumer *c,
                                     const Pulsar__Proto__CommandMessage *cm,
                                     Pulsar__Proto__MessageMetadata *md,
                                     const struct client_msg_id *id, const uint8_t *p, size_t len)
{
    client_chunk_expire(c);
    struct client_chunk_ctx *ctx;
    int32_t n = md->num_chunks_from_msg;
    int32_t k = md->has_chunk_id ? md->chunk_id : -1;
    int32_t total = md->has_total_chunk_msg_size ? md->total_chunk_msg_size : -1;
    const char *why = NULL;
    ctx = md->uuid ? mg_map_get_str(&c->chunks, md->uuid) : NULL;
    if (!md->uuid || k < 0 || k >= n || total < 0 || (size_t)total > c->max_chunked_bytes ||
        md->has_num_messages_in_batch) {
        why = "bad chunk metadata (uuid, chunk_id, total_chunk_msg_size over the limit)";
    } else if (k == 0) {
        if (ctx) /* chunk 0 again: the earlier run comes again, whole; do not ack it */
            client_chunk_drop(c, ctx, false, "its first chunk came again");
        if (c->nchunked >= c->max_pending_chunked)
            client_chunk_drop(c, TAILQ_FIRST(&c->chunk_order), c->auto_ack_oldest_chunked,
                              "too many incomplete chunked messages (maxPendingChunkedMessage)");
        ctx = mg_calloc(1, sizeof(*ctx));
        ctx->uuid = mg_strdup(md->uuid);
        ctx->num_chunks = n;
        ctx->last_chunk_id = -1;
        ctx->total = (size_t)total;
        ctx->created_us = mg_mono_us();
        mg_map_put_str(&c->chunks, ctx->uuid, ctx);
        TAILQ_INSERT_TAIL(&c->chunk_order, ctx, link);
        c->nchunked++;
        if (!evtimer_pending(c->chunk_ev, NULL))
            client_chunk_expire(c); /* the oldest run: its expiry */
    } else if (ctx && k <= ctx->last_chunk_id) {
        MG_DEBUG(MOD, "%s: duplicate chunk %d of %s ignored", c->ep.topic, k, md->uuid);
        pulsar__proto__message_metadata__free_unpacked(md, NULL);
        return;
    } else if (!ctx) {
        why = "chunk without its first chunk";
    } else if (k != ctx->last_chunk_id + 1 || n != ctx->num_chunks || (size_t)total != ctx->total) {
        client_chunk_drop(c, ctx, true, "chunk out of order or inconsistent");
        ctx = NULL;
        why = "chunk of a dropped chunked message";
    }
    if (!why && ctx->buf.len + len > ctx->total) {
        client_chunk_drop(c, ctx, true, "chunks longer than total_chunk_msg_size");
        why = "chunk of a dropped chunked message";
    }
    if (why) {
        MG_WARN(MOD, "%s: chunk %d of %s at %llu:%llu dropped: %s", c->ep.topic, k,
                md->uuid ? md->uuid : "(no uuid)", (unsigned long long)id->ledger_id,
                (unsigned long long)id->entry_id, why);
        client_consumer_queue_ack(c, id->ledger_id, id->entry_id, id->partition);
        pulsar__proto__message_metadata__free_unpacked(md, NULL);
        return;
    }
    client_buf_reserve(&ctx->buf, len);
    if (len)
        memcpy(ctx->buf.data + ctx->buf.len, p, len);
    ctx->buf.len += len;
    ctx->ids = mg_realloc(ctx->ids, ((size_t)k + 1) * sizeof(*ctx->ids)); /* k: in order */
    ctx->ids[k] = *id;
    ctx->last_chunk_id = k;
    if (k < n - 1) {
        pulsar__proto__message_metadata__free_unpacked(md, NULL);
        return;
    }
    if (ctx->buf.len != ctx->total) {
        client_chunk_drop(c, ctx, true, "chunks shorter than total_chunk_msg_size");
        pulsar__proto__message_metadata__free_unpacked(md, NULL);
        return;
    }
    struct client_chunk_ids *acks = mg_malloc(sizeof(*acks) + (size_t)n * sizeof(acks->ids[0]));
    acks->n = (size_t)n;
    memcpy(acks->ids, ctx->ids, (size_t)n * sizeof(acks->ids[0]));
    uint64_t key[2] = {id->ledger_id, id->entry_id};
    mg_free(mg_map_put(&c->chunk_acks, key, sizeof key, acks));
    struct client_buf whole = ctx->buf;
    ctx->buf = (struct client_buf){0};
    client_chunk_drop(c, ctx, false, NULL);
    client_consumer_deliver(c, cm, md, id, whole.data, whole.len);
    client_buf_fini(&whole);
}

static void client_consumer_on_message(struct client_consumer *c, const wire_cmd *cmd,
                                       struct evbuffer *payload)
{
    const Pulsar__Proto__CommandMessage *cm = cmd->message;
    if (!payload || !cm->message_id)
        return;
    size_t len = evbuffer_get_length(payload);
    const uint8_t *p = evbuffer_pullup(payload, -1);
    size_t off = 0;
    struct client_msg_id id = {.ledger_id = cm->message_id->ledgerid,
                               .entry_id = cm->message_id->entryid,
                               .partition =
                                   cm->message_id->has_partition ? cm->message_id->partition : -1,
                               .batch_index = -1};
    if (!p)
        return;
    if (len >= 6 && mg_get_be32(p) >> 16 == WIRE_MAGIC_BROKER_ENTRY_METADATA) {
        uint32_t bl = mg_get_be32(p + 2);
        if (bl > len - 6)
            goto bad;
        off = 6 + bl;
    }
    if (len - off >= 6 && mg_get_be16(p + off) == WIRE_MAGIC_CHECKSUM) {
        uint32_t sent = mg_get_be32(p + off + 2);
        off += 6;
        if (mg_crc32c(0, p + off, len - off) != sent) {
            MG_WARN(MOD, "%s: checksum mismatch on %llu:%llu, message dropped", c->ep.topic,
                    (unsigned long long)id.ledger_id, (unsigned long long)id.entry_id);
            return;
        }
    }
    if (len - off < 4)
        goto bad;
    uint32_t mdlen = mg_get_be32(p + off);
    off += 4;
    if (mdlen > len - off)
        goto bad;
    Pulsar__Proto__MessageMetadata *md =
        pulsar__proto__message_metadata__unpack(NULL, mdlen, p + off);
    if (!md)
        goto bad;
    off += mdlen;
    if (md->has_num_chunks_from_msg && md->num_chunks_from_msg > 1) {
        client_consumer_on_chunk(c, cm, md, &id, p + off, len - off);
        client_consumer_consumed(c, 1);
    } else {
        client_consumer_consumed(c, client_consumer_deliver(c, cm, md, &id, p + off, len - off));
    }
    return;
bad:
    MG_WARN(MOD, "%s: malformed message %llu:%llu dropped", c->ep.topic,
            (unsigned long long)id.ledger_id, (unsigned long long)id.entry_id);
}

static void client_consumer_ack_timer_cb(evutil_socket_t fd, short what, void *arg)
{
    (void)fd;
    (void)what;
    client_consumer_flush(arg);
}

int client_consumer_new(struct client *c, const struct client_consumer_opts *opts,
                        client_message_cb msg_cb, client_consumer_ready_cb ready_cb, void *data,
                        struct client_consumer **out)
{
    *out = NULL;
    if (!opts->topic || !*opts->topic || !opts->subscription || !*opts->subscription || !msg_cb)
        return -MG_EINVAL;
    struct client_consumer *cs = mg_calloc(1, sizeof(*cs));
    client_ep_init(&cs->ep, c, CLIENT_EP_CONSUMER, opts->topic);
    cs->subscription = mg_strdup(opts->subscription);
    cs->consumer_name = opts->consumer_name ? mg_strdup(opts->consumer_name) : NULL;
    cs->sub_type = opts->sub_type;
    cs->initial_position = opts->initial_position;
    client_schema_copy(&cs->schema, opts->schema);
    cs->non_durable = opts->non_durable;
    cs->read_compacted = opts->read_compacted;
    cs->has_start = opts->non_durable && opts->start_id;
    if (cs->has_start)
        cs->start = *opts->start_id;
    cs->queue_size = opts->receiver_queue_size ? opts->receiver_queue_size : 1000;
    mg_map_init(&cs->batches);
    mg_map_init(&cs->chunks);
    mg_map_init(&cs->chunk_acks);
    TAILQ_INIT(&cs->chunk_order);
    cs->max_pending_chunked = opts->max_pending_chunked ? opts->max_pending_chunked : 10;
    cs->auto_ack_oldest_chunked = opts->auto_ack_oldest_chunked;
    cs->chunk_expire_ms = opts->chunk_expire_ms ? opts->chunk_expire_ms : 60000;
    cs->max_chunked_bytes = opts->max_chunked_bytes ? opts->max_chunked_bytes : 256u << 20;
    cs->ack_ev = evtimer_new(c->base, client_consumer_ack_timer_cb, cs);
    MG_ASSERT(cs->ack_ev != NULL);
    cs->chunk_ev = evtimer_new(c->base, client_chunk_timer_cb, cs);
    MG_ASSERT(cs->chunk_ev != NULL);
    cs->msg_cb = msg_cb;
    cs->ready_cb = ready_cb;
    cs->data = data;
    *out = cs;
    client_ep_start(&cs->ep);
    return 0;
}

static void client_consumer_queue_ack(struct client_consumer *c, uint64_t ledger, uint64_t entry,
                                      int32_t partition)
{
    if (c->nacks == c->acap) {
        c->acap = c->acap ? c->acap * 2 : 64;
        c->acks = mg_realloc(c->acks, c->acap * sizeof(*c->acks));
    }
    c->acks[c->nacks++] = (struct client_msg_id){
        .ledger_id = ledger, .entry_id = entry, .partition = partition, .batch_index = -1};
    if (c->nacks >= CLIENT_ACK_GROUP_MAX) {
        client_consumer_flush(c);
    } else if (!evtimer_pending(c->ack_ev, NULL)) {
        struct timeval tv = client_tv_ms(CLIENT_ACK_GROUP_MS);
        evtimer_add(c->ack_ev, &tv);
    }
}

int client_consumer_ack(struct client_consumer *c, const struct client_msg_id *id)
{
    if (c->ep.state == CLIENT_EP_FAILED)
        return -MG_ECLOSED;
    uint64_t ckey[2] = {id->ledger_id, id->entry_id};
    struct client_chunk_ids *chunks = mg_map_del(&c->chunk_acks, ckey, sizeof ckey);
    if (chunks) { /* a chunked message: ack every chunk */
        for (size_t i = 0; i < chunks->n; i++)
            client_consumer_queue_ack(c, chunks->ids[i].ledger_id, chunks->ids[i].entry_id,
                                      chunks->ids[i].partition);
        mg_free(chunks);
        return 0;
    }
    if (id->batch_index < 0 || id->batch_size <= 1) {
        client_consumer_queue_ack(c, id->ledger_id, id->entry_id, id->partition);
        return 0;
    }
    if (id->batch_index >= id->batch_size)
        return -MG_EINVAL;
    uint64_t key[2] = {id->ledger_id, id->entry_id};
    struct client_batch_track *t = mg_map_get(&c->batches, key, sizeof key);
    if (!t) {
        size_t words = ((size_t)id->batch_size + 63) / 64;
        t = mg_calloc(1, sizeof(*t) + words * sizeof(uint64_t));
        t->size = id->batch_size;
        t->remaining = id->batch_size;
        mg_map_put(&c->batches, key, sizeof key, t);
    }
    uint64_t bit = (uint64_t)1 << (id->batch_index % 64);
    uint64_t *w = &t->acked[id->batch_index / 64];
    if (*w & bit)
        return 0;
    *w |= bit;
    if (--t->remaining > 0)
        return 0;
    mg_map_del(&c->batches, key, sizeof key);
    mg_free(t);
    client_consumer_queue_ack(c, id->ledger_id, id->entry_id, id->partition);
    return 0;
}

static void client_consumer_write_ack(struct client_consumer *c,
                                      Pulsar__Proto__CommandAck__AckType type,
                                      Pulsar__Proto__MessageIdData **ids, size_t n)
{
    Pulsar__Proto__CommandAck ack = PULSAR__PROTO__COMMAND_ACK__INIT;
    ack.consumer_id = c->ep.id;
    ack.ack_type = type;
    ack.n_message_id = n;
    ack.message_id = ids;
    client_conn_send(c->ep.conn, PULSAR__PROTO__BASE_COMMAND__TYPE__ACK, &ack);
}

void client_consumer_flush(struct client_consumer *c)
{
    if (!c || c->nacks == 0)
        return;
    evtimer_del(c->ack_ev);
    if (c->ep.state != CLIENT_EP_READY || !c->ep.conn)
        return; /* kept until re-subscribed */
    Pulsar__Proto__MessageIdData *mids = mg_calloc(c->nacks, sizeof(*mids));
    Pulsar__Proto__MessageIdData **ptrs = mg_calloc(c->nacks, sizeof(*ptrs));
    for (size_t i = 0; i < c->nacks; i++) {
        Pulsar__Proto__MessageIdData init = PULSAR__PROTO__MESSAGE_ID_DATA__INIT;
        mids[i] = init;
        mids[i].ledgerid = c->acks[i].ledger_id;
        mids[i].entryid = c->acks[i].entry_id;
        if (c->acks[i].partition >= 0) {
            mids[i].has_partition = 1;
            mids[i].partition = c->acks[i].partition;
        }
        ptrs[i] = &mids[i];
    }
    client_consumer_write_ack(c, PULSAR__PROTO__COMMAND_ACK__ACK_TYPE__Individual, ptrs, c->nacks);
    c->nacks = 0;
    mg_free(ptrs);
    mg_free(mids);
}

int client_consumer_ack_cumulative(struct client_consumer *c, const struct client_msg_id *id)
{
    if (c->ep.state == CLIENT_EP_FAILED)
        return -MG_ECLOSED;
    client_consumer_flush(c);
    if (c->ep.state != CLIENT_EP_READY || !c->ep.conn)
        return -MG_EAGAIN;
    uint64_t ckey[2] = {id->ledger_id, id->entry_id};
    mg_free(mg_map_del(&c->chunk_acks, ckey, sizeof ckey)); /* its chunks are before it */
    Pulsar__Proto__MessageIdData mid = PULSAR__PROTO__MESSAGE_ID_DATA__INIT;
    mid.ledgerid = id->ledger_id;
    mid.entryid = id->entry_id;
    int64_t set[1];
    if (id->batch_index >= 0 && id->batch_index < id->batch_size - 1 && id->batch_size <= 64) {
        /* Part of a batch: everything after batch_index stays unacked. */
        uint64_t bits = 0;
        for (int32_t i = id->batch_index + 1; i < id->batch_size; i++)
            bits |= (uint64_t)1 << i;
        set[0] = (int64_t)bits;
        mid.n_ack_set = 1;
        mid.ack_set = set;
    }
    Pulsar__Proto__MessageIdData *ptr = &mid;
    client_consumer_write_ack(c, PULSAR__PROTO__COMMAND_ACK__ACK_TYPE__Cumulative, &ptr, 1);
    return 0;
}

void client_consumer_free(struct client_consumer *c)
{
    if (!c)
        return;
    client_consumer_flush(c);
    client_ep_send_close(&c->ep);
    client_ep_fini(&c->ep);
    mg_map_fini_free(&c->batches, mg_free);
    client_consumer_forget_chunks(c);
    mg_map_fini(&c->chunks);
    mg_map_fini_free(&c->chunk_acks, mg_free);
    mg_event_free(c->ack_ev);
    mg_event_free(c->chunk_ev);
    mg_free(c->acks);
    mg_free(c->subscription);
    mg_free(c->consumer_name);
    mg_free((void *)c->schema.data);
    mg_free(c);
}

#define ANSWER(t) PULSAR__PROTO__BASE_COMMAND__TYPE__##t
static const struct client_req_kind client_req_kinds[CLIENT_REQ_TYPES] = {
    /* clang-format off */
    /* {waiter, request, answer, done, fail} */
    [CLIENT_WAIT_LOOKUP]     = {true,  NULL,                   0,
                                client_ep_on_lookup_conn,         client_ep_req_failed},
    [CLIENT_WAIT_ATTACH]     = {true,  NULL,                   0,
                                client_ep_on_attach_conn,         client_ep_req_failed},
    [CLIENT_WAIT_QUERY]      = {true,  NULL,                   0,
                                client_query_on_conn,             client_query_failed},
    [CLIENT_REQ_LOOKUP]      = {false, "LOOKUP",               ANSWER(LOOKUP_RESPONSE),
                                client_ep_on_lookup_resp,         client_ep_req_failed},
    [CLIENT_REQ_PARTITIONS]  = {false, "PARTITIONED_METADATA", ANSWER(PARTITIONED_METADATA_RESPONSE),
                                client_partitions_on_resp,        client_query_failed},
    [CLIENT_REQ_TOPICS]      = {false, "GET_TOPICS_OF_NAMESPACE",
                                ANSWER(GET_TOPICS_OF_NAMESPACE_RESPONSE),
                                client_topics_on_resp,            client_query_failed},
    [CLIENT_REQ_WATCH]       = {false, "WATCH_TOPIC_LIST",     ANSWER(WATCH_TOPIC_LIST_SUCCESS),
                                client_watch_on_resp,             client_query_failed},
    [CLIENT_REQ_PRODUCER]    = {false, "PRODUCER",             ANSWER(PRODUCER_SUCCESS),
                                client_producer_on_create_resp,   client_producer_create_failed},
    [CLIENT_REQ_SUBSCRIBE]   = {false, "SUBSCRIBE",            ANSWER(SUCCESS),
                                client_consumer_on_subscribe_resp, client_consumer_subscribe_failed},
    /* clang-format on */
};
#undef ANSWER
