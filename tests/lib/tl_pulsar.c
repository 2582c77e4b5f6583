/*
 * tl_pulsar.c - the test library's Pulsar frame helpers (tl_pulsar.h): stored entries, and
 * a peer on a bufferevent that the test's loop fills while the test waits for frames.
 *
 * The peer keeps what arrives in its bufferevent's input buffer; tl_peer_next takes one
 * frame from there with the wire codec (frame limit: the default maximum message size plus
 * padding), running the loop while none is complete. The event callback only records EOF
 * or an error (the test sees it as "closed").
 * Failure modes: a socket that cannot be made, a refused frame, or an unexpected command
 * type fails the calling test.
 */
#include "lib/tl_pulsar.h"

#include "util/alloc.h"
#include "util/bytes.h"
#include "util/crc.h"
#include "util/err.h"
#include "util/loop.h"

#include <arpa/inet.h>
#include <event2/buffer.h>
#include <event2/bufferevent.h>
#include <event2/event.h>
#include <netinet/in.h>
#include <string.h>
#include <sys/socket.h>

#define TL_MAX_FRAME (WIRE_DEFAULT_MAX_MESSAGE_SIZE + WIRE_FRAME_PADDING)

/* ---- stored entries ---------------------------------------------------------------------- */

void tl_pulsar_md(Pulsar__Proto__MessageMetadata *md, const char *producer, uint64_t seq,
                  uint64_t publish_time)
{
    pulsar__proto__message_metadata__init(md);
    md->producer_name = (char *)producer;
    md->sequence_id = seq;
    md->publish_time = publish_time;
}

struct evbuffer *tl_pulsar_entry(const Pulsar__Proto__MessageMetadata *md, const void *payload,
                                 size_t len)
{
    size_t mlen = pulsar__proto__message_metadata__get_packed_size(md);
    size_t tail = 4 + mlen + len;
    uint8_t *b = mg_malloc(6 + tail);
    uint8_t *t = b + 6;
    mg_put_be32(t, (uint32_t)mlen);
    pulsar__proto__message_metadata__pack(md, t + 4);
    if (len)
        memcpy(t + 4 + mlen, payload, len);
    b[0] = (uint8_t)(WIRE_MAGIC_CHECKSUM >> 8);
    b[1] = (uint8_t)WIRE_MAGIC_CHECKSUM;
    mg_put_be32(b + 2, mg_crc32c(0, t, tail));
    struct evbuffer *e = evbuffer_new();
    evbuffer_add(e, b, 6 + tail);
    mg_free(b);
    return e;
}

/* ---- a peer ------------------------------------------------------------------------------ */

static void tl_peer_event_cb(struct bufferevent *bev, short what, void *arg)
{
    (void)bev;
    struct tl_peer *p = arg;
    if (what & (BEV_EVENT_EOF | BEV_EVENT_ERROR))
        p->eof = true;
}

void tl_peer_open(struct tl_peer *p, struct event_base *b, int fd)
{
    memset(p, 0, sizeof *p);
    p->base = b;
    p->wait_ms = TL_REAL_WAIT_MS;
    ck_assert_int_ge(fd, 0);
    ck_assert_int_eq(evutil_make_socket_nonblocking(fd), 0);
    p->bev = bufferevent_socket_new(b, fd, BEV_OPT_CLOSE_ON_FREE);
    ck_assert_ptr_nonnull(p->bev);
    bufferevent_setcb(p->bev, NULL, NULL, tl_peer_event_cb, p);
    bufferevent_enable(p->bev, EV_READ | EV_WRITE);
}

void tl_peer_open_bev(struct tl_peer *p, struct event_base *b, struct bufferevent *bev)
{
    memset(p, 0, sizeof *p);
    p->base = b;
    p->wait_ms = TL_REAL_WAIT_MS;
    ck_assert_ptr_nonnull(bev);
    p->bev = bev;
    bufferevent_setcb(p->bev, NULL, NULL, tl_peer_event_cb, p);
    bufferevent_enable(p->bev, EV_READ | EV_WRITE);
}

void tl_peer_open_loop(struct tl_peer *p, struct mg_loop *l, struct bufferevent *bev)
{
    tl_peer_open_bev(p, mg_loop_base(l), bev);
    p->loop = l;
    p->wait_ms = tl_wait_ms(l);
}

/* Run the peer's loop until cond(p) holds or the wait bound passed. */
static bool tl_peer_until(struct tl_peer *p, tl_cond cond)
{
    if (p->loop)
        return tl_until(p->loop, cond, p, p->wait_ms);
    return tl_base_until(p->base, cond, p, p->wait_ms);
}

int tl_connect_fd(int port, int rcvbuf)
{
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    ck_assert_int_ge(fd, 0);
    if (rcvbuf > 0)
        ck_assert_int_eq(setsockopt(fd, SOL_SOCKET, SO_RCVBUF, &rcvbuf, sizeof rcvbuf), 0);
    struct sockaddr_in sin = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port)};
    sin.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    ck_assert_msg(connect(fd, (struct sockaddr *)&sin, sizeof sin) == 0,
                  "connect to 127.0.0.1:%d failed", port);
    return fd;
}

void tl_peer_connect(struct tl_peer *p, struct event_base *b, int port)
{
    tl_peer_open(p, b, tl_connect_fd(port, 0));
}

void tl_peer_close(struct tl_peer *p)
{
    if (p->bev)
        bufferevent_free(p->bev);
    p->bev = NULL;
}

void tl_peer_send(struct tl_peer *p, const wire_cmd *cmd)
{
    ck_assert_ptr_nonnull(p->bev);
    wire_write_command(bufferevent_get_output(p->bev), cmd);
}

void tl_peer_send_raw(struct tl_peer *p, const void *data, size_t len)
{
    ck_assert_ptr_nonnull(p->bev);
    bufferevent_write(p->bev, data, len);
}

size_t tl_peer_pending(const struct tl_peer *p)
{
    return p->bev ? evbuffer_get_length(bufferevent_get_input(p->bev)) : 0;
}

/* A whole frame is in the input buffer, or the other side is gone. */
static bool tl_peer_ready(const void *arg)
{
    const struct tl_peer *p = arg;
    if (!p->bev || p->eof)
        return true;
    struct evbuffer *in = bufferevent_get_input(p->bev);
    uint8_t h[4];
    if (evbuffer_copyout(in, h, 4) != 4)
        return false;
    return evbuffer_get_length(in) >= 4 + (size_t)mg_get_be32(h);
}

int tl_peer_next(struct tl_peer *p, struct wire_frame *f)
{
    memset(f, 0, sizeof *f);
    ck_assert_ptr_nonnull(p->bev);
    tl_peer_until(p, tl_peer_ready);
    char err[200] = "";
    int rc = wire_frame_read(bufferevent_get_input(p->bev), TL_MAX_FRAME, f, err, sizeof err);
    ck_assert_msg(rc >= 0, "bad frame: %s", err);
    if (rc == 1)
        return 1;
    return p->eof ? 0 : -1;
}

void tl_peer_expect(struct tl_peer *p, int type, struct wire_frame *f)
{
    int rc = tl_peer_next(p, f);
    ck_assert_msg(rc == 1, "no %s frame: %s", wire_command_name(type),
                  rc == 0 ? "the connection closed" : "timed out");
    ck_assert_msg((int)f->cmd->type == type, "%s frame where %s was expected",
                  wire_command_name((int)f->cmd->type), wire_command_name(type));
}

int tl_peer_skip_to(struct tl_peer *p, int type, struct wire_frame *f)
{
    for (;;) {
        int rc = tl_peer_next(p, f);
        if (rc != 1 || (int)f->cmd->type == type)
            return rc;
        wire_frame_clear(f);
    }
}

static bool tl_peer_closed(const void *arg)
{
    const struct tl_peer *p = arg;
    if (p->bev && !p->eof) /* what arrives before the close is not looked at */
        evbuffer_drain(bufferevent_get_input(p->bev), tl_peer_pending(p));
    return !p->bev || p->eof;
}

bool tl_peer_wait_closed(struct tl_peer *p)
{
    return tl_peer_until(p, tl_peer_closed);
}

/* ---- commands ------------------------------------------------------------------------------ */

Pulsar__Proto__MessageIdData tl_msg_id(uint64_t ledger, uint64_t entry)
{
    Pulsar__Proto__MessageIdData id = PULSAR__PROTO__MESSAGE_ID_DATA__INIT;
    id.ledgerid = ledger;
    id.entryid = entry;
    return id;
}

/* Send sub as the command TYPE (field: its BaseCommand field). */
#define TL_SEND(p, TYPE, field, sub)                                                               \
    do {                                                                                           \
        wire_cmd cmd_;                                                                             \
        tl_cmd_set(cmd_, TYPE, field, sub);                                                        \
        tl_peer_send((p), &cmd_);                                                                  \
    } while (0)

void tl_send_connect(struct tl_peer *p, const char *client_version, int protocol_version)
{
    Pulsar__Proto__CommandConnect c = PULSAR__PROTO__COMMAND_CONNECT__INIT;
    c.client_version = (char *)client_version;
    c.has_protocol_version = 1;
    c.protocol_version = protocol_version;
    TL_SEND(p, CONNECT, connect, c);
}

void tl_send_producer(struct tl_peer *p, const char *topic, uint64_t producer_id,
                      uint64_t request_id)
{
    Pulsar__Proto__CommandProducer c = PULSAR__PROTO__COMMAND_PRODUCER__INIT;
    c.topic = (char *)topic;
    c.producer_id = producer_id;
    c.request_id = request_id;
    TL_SEND(p, PRODUCER, producer, c);
}

void tl_peer_handshake(struct tl_peer *p, int protocol_version, struct wire_frame *f)
{
    tl_send_connect(p, "check", protocol_version);
    struct wire_frame own;
    struct wire_frame *c = f ? f : &own;
    tl_peer_expect(p, PULSAR__PROTO__BASE_COMMAND__TYPE__CONNECTED, c);
    int want = protocol_version < WIRE_PROTOCOL_VERSION ? protocol_version : WIRE_PROTOCOL_VERSION;
    ck_assert(c->cmd->connected->has_protocol_version);
    ck_assert_int_eq(c->cmd->connected->protocol_version, want);
    if (!f)
        wire_frame_clear(&own);
}

void tl_send_lookup(struct tl_peer *p, const char *topic, uint64_t request_id, bool authoritative)
{
    Pulsar__Proto__CommandLookupTopic c = PULSAR__PROTO__COMMAND_LOOKUP_TOPIC__INIT;
    c.topic = (char *)topic;
    c.request_id = request_id;
    c.has_authoritative = 1;
    c.authoritative = authoritative;
    TL_SEND(p, LOOKUP, lookuptopic, c);
}

void tl_send_subscribe(struct tl_peer *p, const char *topic, const char *sub, uint64_t consumer_id,
                       uint64_t request_id, const struct tl_sub_opts *o)
{
    static const struct tl_sub_opts defaults;
    if (!o)
        o = &defaults;
    Pulsar__Proto__CommandSubscribe c = PULSAR__PROTO__COMMAND_SUBSCRIBE__INIT;
    c.topic = (char *)topic;
    c.subscription = (char *)sub;
    c.subtype = (Pulsar__Proto__CommandSubscribe__SubType)o->type;
    c.consumer_id = consumer_id;
    c.request_id = request_id;
    c.consumer_name = (char *)o->name;
    if (o->earliest) {
        c.has_initialposition = 1;
        c.initialposition = PULSAR__PROTO__COMMAND_SUBSCRIBE__INITIAL_POSITION__Earliest;
    }
    if (o->non_durable) {
        c.has_durable = 1;
        c.durable = 0;
    }
    c.start_message_id = (Pulsar__Proto__MessageIdData *)o->start;
    c.has_read_compacted = o->read_compacted;
    c.read_compacted = o->read_compacted;
    TL_SEND(p, SUBSCRIBE, subscribe, c);
}

void tl_send_flow(struct tl_peer *p, uint64_t consumer_id, uint32_t permits)
{
    Pulsar__Proto__CommandFlow c = PULSAR__PROTO__COMMAND_FLOW__INIT;
    c.consumer_id = consumer_id;
    c.messagepermits = permits;
    TL_SEND(p, FLOW, flow, c);
}

void tl_send_send(struct tl_peer *p, uint64_t producer_id, uint64_t seq, const void *payload,
                  size_t len)
{
    Pulsar__Proto__MessageMetadata md;
    tl_pulsar_md(&md, "p", seq, 1000 + seq);
    Pulsar__Proto__CommandSend c = PULSAR__PROTO__COMMAND_SEND__INIT;
    c.producer_id = producer_id;
    c.sequence_id = seq;
    wire_cmd cmd;
    tl_cmd_set(cmd, SEND, send, c);
    ck_assert_ptr_nonnull(p->bev);
    wire_write_send(bufferevent_get_output(p->bev), &cmd, &md, payload, len);
}

void tl_send_connected(struct tl_peer *p, int protocol_version, int max_message_size)
{
    Pulsar__Proto__CommandConnected c = PULSAR__PROTO__COMMAND_CONNECTED__INIT;
    c.server_version = "tl-broker";
    c.has_protocol_version = 1;
    c.protocol_version = protocol_version;
    if (max_message_size > 0) {
        c.has_max_message_size = 1;
        c.max_message_size = max_message_size;
    }
    TL_SEND(p, CONNECTED, connected, c);
}

void tl_send_ping(struct tl_peer *p)
{
    Pulsar__Proto__CommandPing c = PULSAR__PROTO__COMMAND_PING__INIT;
    TL_SEND(p, PING, ping, c);
}

void tl_send_lookup_response(struct tl_peer *p, uint64_t request_id, int response, const char *url,
                             bool authoritative, int error, const char *message)
{
    Pulsar__Proto__CommandLookupTopicResponse c =
        PULSAR__PROTO__COMMAND_LOOKUP_TOPIC_RESPONSE__INIT;
    c.request_id = request_id;
    c.has_response = 1;
    c.response = (Pulsar__Proto__CommandLookupTopicResponse__LookupType)response;
    c.brokerserviceurl = (char *)url;
    c.has_authoritative = 1;
    c.authoritative = authoritative;
    if (response == PULSAR__PROTO__COMMAND_LOOKUP_TOPIC_RESPONSE__LOOKUP_TYPE__Failed) {
        c.has_error = 1;
        c.error = (Pulsar__Proto__ServerError)error;
        c.message = (char *)message;
    }
    TL_SEND(p, LOOKUP_RESPONSE, lookuptopicresponse, c);
}

void tl_send_partitions(struct tl_peer *p, uint64_t request_id, uint32_t partitions)
{
    Pulsar__Proto__CommandPartitionedTopicMetadataResponse c =
        PULSAR__PROTO__COMMAND_PARTITIONED_TOPIC_METADATA_RESPONSE__INIT;
    c.request_id = request_id;
    c.has_partitions = 1;
    c.partitions = partitions;
    c.has_response = 1;
    c.response = PULSAR__PROTO__COMMAND_PARTITIONED_TOPIC_METADATA_RESPONSE__LOOKUP_TYPE__Success;
    TL_SEND(p, PARTITIONED_METADATA_RESPONSE, partitionmetadataresponse, c);
}

void tl_send_producer_success(struct tl_peer *p, uint64_t request_id, const char *name,
                              int64_t last_sequence_id)
{
    Pulsar__Proto__CommandProducerSuccess c = PULSAR__PROTO__COMMAND_PRODUCER_SUCCESS__INIT;
    c.request_id = request_id;
    c.producer_name = (char *)name;
    if (last_sequence_id >= 0) {
        c.has_last_sequence_id = 1;
        c.last_sequence_id = last_sequence_id;
    }
    TL_SEND(p, PRODUCER_SUCCESS, producer_success, c);
}

void tl_send_success(struct tl_peer *p, uint64_t request_id)
{
    Pulsar__Proto__CommandSuccess c = PULSAR__PROTO__COMMAND_SUCCESS__INIT;
    c.request_id = request_id;
    TL_SEND(p, SUCCESS, success, c);
}

void tl_send_error(struct tl_peer *p, uint64_t request_id, int error, const char *message)
{
    Pulsar__Proto__CommandError c = PULSAR__PROTO__COMMAND_ERROR__INIT;
    c.request_id = request_id;
    c.error = (Pulsar__Proto__ServerError)error;
    c.message = (char *)message;
    TL_SEND(p, ERROR, error, c);
}

void tl_send_receipt(struct tl_peer *p, uint64_t producer_id, uint64_t sequence_id, uint64_t ledger,
                     uint64_t entry)
{
    Pulsar__Proto__MessageIdData id = tl_msg_id(ledger, entry);
    Pulsar__Proto__CommandSendReceipt c = PULSAR__PROTO__COMMAND_SEND_RECEIPT__INIT;
    c.producer_id = producer_id;
    c.sequence_id = sequence_id;
    c.message_id = &id;
    TL_SEND(p, SEND_RECEIPT, send_receipt, c);
}

void tl_send_send_error(struct tl_peer *p, uint64_t producer_id, uint64_t sequence_id, int error,
                        const char *message)
{
    Pulsar__Proto__CommandSendError c = PULSAR__PROTO__COMMAND_SEND_ERROR__INIT;
    c.producer_id = producer_id;
    c.sequence_id = sequence_id;
    c.error = (Pulsar__Proto__ServerError)error;
    c.message = (char *)message;
    TL_SEND(p, SEND_ERROR, send_error, c);
}

void tl_send_message(struct tl_peer *p, uint64_t consumer_id, uint64_t ledger, uint64_t entry,
                     struct evbuffer *stored)
{
    Pulsar__Proto__MessageIdData id = tl_msg_id(ledger, entry);
    Pulsar__Proto__CommandMessage c = PULSAR__PROTO__COMMAND_MESSAGE__INIT;
    c.consumer_id = consumer_id;
    c.message_id = &id;
    wire_cmd cmd;
    tl_cmd_set(cmd, MESSAGE, message, c);
    ck_assert_ptr_nonnull(p->bev);
    wire_write_message(bufferevent_get_output(p->bev), &cmd, stored);
}

void tl_send_close_producer(struct tl_peer *p, uint64_t producer_id)
{
    Pulsar__Proto__CommandCloseProducer c = PULSAR__PROTO__COMMAND_CLOSE_PRODUCER__INIT;
    c.producer_id = producer_id;
    TL_SEND(p, CLOSE_PRODUCER, close_producer, c);
}

/* ---- answers a client expects ------------------------------------------------------------ */

void tl_expect_success(struct tl_peer *p, uint64_t request_id)
{
    struct wire_frame f;
    tl_peer_expect(p, PULSAR__PROTO__BASE_COMMAND__TYPE__SUCCESS, &f);
    ck_assert_uint_eq(f.cmd->success->request_id, request_id);
    wire_frame_clear(&f);
}

void tl_expect_error(struct tl_peer *p, uint64_t request_id, int error, const char *message)
{
    struct wire_frame f;
    tl_peer_expect(p, PULSAR__PROTO__BASE_COMMAND__TYPE__ERROR, &f);
    ck_assert_uint_eq(f.cmd->error->request_id, request_id);
    ck_assert_int_eq(f.cmd->error->error, error);
    if (message)
        ck_assert_str_eq(f.cmd->error->message, message);
    wire_frame_clear(&f);
}
