/*
 * check_client.c - the Pulsar client library (broker/client, what `magnetar perf` uses)
 * against a fake broker the test plays frame by frame.
 *
 * The client's test seam (client_int.h: dial) hands each new connection one end of a
 * socketpair; the other end is a peer of the test library (tl_pulsar.h), on the same loop,
 * through which the test reads what the client sent and answers as a broker would, or
 * would not. No network, no sleeps: every wait runs the loop until its event or a deadline
 * (the client's own timers are real libevent timers: backoff 100 ms, request tick 1 s).
 *
 * Covers: the handshake (CONNECT's fields, nothing sent before CONNECTED, CONNECTED's
 * maximum message size enforced, a refused or non-Pulsar answer failing creation with the
 * reason); lookups (Connect on the pooled connection, Redirect to another broker with
 * authoritative set, Failed with the broker's error); producers (PRODUCER's fields, batched
 * and unbatched SENDs with their metadata and sequence ids, receipts completing sends in
 * order with their message ids, SEND_ERROR(ChecksumError) failing only its send, resending
 * every pending SEND with its sequence ids after the connection drops or the broker closes
 * the producer, free cancelling what is pending); consumers (SUBSCRIBE's fields, FLOW and
 * its refill, single and batched MESSAGEs delivered with their ids, grouped acks, a batch
 * acked once all its messages are); PING answered; PARTITIONED_METADATA; an unanswered
 * request timing out; chunking (a producer's chunks and their metadata, a consumer's
 * reassembly, its acks and its bounds).
 * Failure modes: each test asserts with Check; run with CK_FORK=no under ASan.
 */
#include "client/client.h"
#include "client/client_int.h"
#include "lib/tl_pulsar.h"
#include "util/alloc.h"
#include "util/bytes.h"
#include "util/compress.h"
#include "util/err.h"
#include "util/log.h"
#include "util/loop.h"
#include "wire/wire.h"

#include <check.h>
#include <event2/buffer.h>
#include <event2/event.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>

#define T(x) PULSAR__PROTO__BASE_COMMAND__TYPE__##x
#define LOOKUP_CONNECT PULSAR__PROTO__COMMAND_LOOKUP_TOPIC_RESPONSE__LOOKUP_TYPE__Connect
#define LOOKUP_REDIRECT PULSAR__PROTO__COMMAND_LOOKUP_TOPIC_RESPONSE__LOOKUP_TYPE__Redirect
#define LOOKUP_FAILED PULSAR__PROTO__COMMAND_LOOKUP_TOPIC_RESPONSE__LOOKUP_TYPE__Failed
#define SERVICE_URL "pulsar://broker-a:6650"
#define OTHER_URL "pulsar://broker-b:6651"
#define TOPIC "persistent://public/default/t"
#define MAX_PEERS 8

/* ---- the fake broker ------------------------------------------------------------------------ */

/* What the callbacks record: in the fixture, not on a test's stack, so that the callbacks
 * client_free runs in teardown after a failed test still write into live memory. */
struct pstate {
    bool ready;
    int ready_calls, ready_status;
    char ready_msg[400];
    int n; /* send results */
    struct client_send_result res[16];
};

struct cmsg {
    struct client_msg_id id;
    char payload[32];
    uint64_t sequence_id, publish_time;
};

struct cstate {
    bool ready;
    int ready_status;
    int n;
    struct cmsg m[16];
};

struct parts {
    bool done;
    int status;
    uint32_t n;
};

struct fixture {
    struct event_base *base;
    struct mg_loop *loop; /* real: for the test library's waits */
    struct client *cl;
    struct tl_peer peer[MAX_PEERS]; /* the broker side of each connection, in dial order */
    char url[MAX_PEERS][128];       /* the URL each was dialed for */
    int n;
    bool refuse; /* dial fails */
    struct pstate ps[2];
    struct client_producer *p; /* producer_ready's */
    uint64_t pid;              /* its producer id */
    struct cstate cs;
    struct parts parts;
    int codec; /* producer_new's compression */
};

static struct fixture fx;

static int fake_dial(void *arg, const char *url)
{
    struct fixture *f = arg;
    if (f->refuse)
        return -1;
    ck_assert_int_lt(f->n, MAX_PEERS);
    int sv[2];
    ck_assert_int_eq(socketpair(AF_UNIX, SOCK_STREAM, 0, sv), 0);
    tl_peer_open(&f->peer[f->n], f->base, sv[0]);
    snprintf(f->url[f->n], sizeof f->url[0], "%s", url);
    f->n++;
    return sv[1];
}

static void setup(void)
{
    mg_log_set_level(MG_LOG_ERROR);
    memset(&fx, 0, sizeof fx);
    fx.base = event_base_new();
    fx.loop = mg_loop_new(fx.base);
    /* the client under test, on SERVICE_URL through fake_dial */
    struct client_opts o = {.service_url = SERVICE_URL};
    char err[200];
    ck_assert_int_eq(client_new(fx.base, &o, &fx.cl, err, sizeof err), 0);
    fx.cl->dial = fake_dial;
    fx.cl->dial_arg = &fx;
}

static void teardown(void)
{
    client_free(fx.cl);
    for (int i = 0; i < fx.n; i++)
        tl_peer_close(&fx.peer[i]);
    tl_passes(fx.base, 5);
    mg_loop_free(fx.loop);
    event_base_free(fx.base);
    memset(&fx, 0, sizeof fx);
}

/* The broker side of the k-th connection, once the client dialed it. */
static struct tl_peer *dialed(int k)
{
    ck_assert_msg(tl_until_count(fx.loop, &fx.n, k + 1, TL_REAL_WAIT_MS) > k,
                  "connection %d never dialed", k);
    return &fx.peer[k];
}

/* Take the client's CONNECT (checking its fields) and answer CONNECTED. */
static void accept_connect(struct tl_peer *b, int max_message_size)
{
    struct wire_frame f;
    tl_peer_expect(b, T(CONNECT), &f);
    ck_assert_str_eq(f.cmd->connect->client_version, "magnetar-client 1.0");
    ck_assert(f.cmd->connect->has_protocol_version);
    ck_assert_int_eq(f.cmd->connect->protocol_version, WIRE_PROTOCOL_VERSION);
    ck_assert_str_eq(f.cmd->connect->auth_method_name, "none");
    wire_frame_clear(&f);
    tl_send_connected(b, WIRE_PROTOCOL_VERSION, max_message_size);
}

/* Take a LOOKUP of TOPIC (its authoritative flag must be auth) and answer it. */
static void answer_lookup(struct tl_peer *b, bool auth, int response, const char *url)
{
    struct wire_frame f;
    tl_peer_expect(b, T(LOOKUP), &f);
    ck_assert_str_eq(f.cmd->lookuptopic->topic, TOPIC);
    ck_assert(f.cmd->lookuptopic->has_authoritative);
    ck_assert_int_eq(f.cmd->lookuptopic->authoritative, auth);
    tl_send_lookup_response(b, f.cmd->lookuptopic->request_id, response, url, true,
                            PULSAR__PROTO__SERVER_ERROR__TopicNotFound, "no such topic here");
    wire_frame_clear(&f);
}

/* Take a PRODUCER for TOPIC and answer PRODUCER_SUCCESS naming it name; checks the name the
 * client asked for (NULL: none) and the epoch; returns the producer id. */
static uint64_t accept_producer(struct tl_peer *b, const char *asked, uint64_t epoch,
                                const char *name)
{
    struct wire_frame f;
    tl_peer_expect(b, T(PRODUCER), &f);
    const Pulsar__Proto__CommandProducer *pc = f.cmd->producer;
    ck_assert_str_eq(pc->topic, TOPIC);
    if (asked)
        ck_assert_str_eq(pc->producer_name, asked);
    else
        ck_assert_ptr_null(pc->producer_name);
    ck_assert(pc->has_epoch);
    ck_assert_uint_eq(pc->epoch, epoch);
    ck_assert(pc->has_user_provided_producer_name && !pc->user_provided_producer_name);
    uint64_t id = pc->producer_id;
    tl_send_producer_success(b, pc->request_id, name, -1);
    wire_frame_clear(&f);
    return id;
}

/* ---- a producer's callbacks ------------------------------------------------------------------ */

static void p_ready(struct client_producer *p, int status, const char *msg, void *data)
{
    (void)p;
    struct pstate *s = data;
    s->ready = true;
    s->ready_calls++;
    s->ready_status = status;
    snprintf(s->ready_msg, sizeof s->ready_msg, "%s", msg ? msg : "");
}

static void p_sent(struct client_producer *p, const struct client_send_result *r, void *data)
{
    (void)p;
    struct pstate *s = data;
    ck_assert_int_lt(s->n, 16);
    s->res[s->n++] = *r;
}

static struct client_producer *producer_new(bool batching, unsigned batch_max, struct pstate *s)
{
    struct client_producer_opts o = {.topic = "t",
                                     .batching = batching,
                                     .batch_max_messages = batch_max,
                                     .batch_max_delay_us = 10 * 1000 * 1000,
                                     .compression = fx.codec};
    struct client_producer *p = NULL;
    ck_assert_int_eq(client_producer_new(fx.cl, &o, p_ready, s, &p), 0);
    ck_assert(!s->ready); /* never inside the call */
    return p;
}

/* A producer on TOPIC (fx.p, its callbacks into fx.ps[0]) whose lookup, on connection 0, the
 * broker answers with response (and url); the broker side of connection 0. */
static struct tl_peer *producer_looked_up(bool batching, unsigned batch_max, int response,
                                          const char *url)
{
    fx.p = producer_new(batching, batch_max, &fx.ps[0]);
    struct tl_peer *b = dialed(0);
    accept_connect(b, 0);
    answer_lookup(b, false, response, url);
    return b;
}

/* A producer on TOPIC (fx.p, its id fx.pid, its callbacks into fx.ps[0]), created through
 * connection 0, whose broker side this returns; the broker names it "p-1". */
static struct tl_peer *producer_ready(bool batching, unsigned batch_max)
{
    struct pstate *s = &fx.ps[0];
    struct tl_peer *b = producer_looked_up(batching, batch_max, LOOKUP_CONNECT, SERVICE_URL);
    fx.pid = accept_producer(b, NULL, 0, "p-1");
    tl_wait(fx.loop, &s->ready);
    ck_assert_int_eq(s->ready_status, 0);
    return b;
}

static void send_str(struct client_producer *p, const char *text, struct pstate *s)
{
    ck_assert_int_eq(client_producer_send(p, text, strlen(text), p_sent, s), 0);
}

/* A SEND's stored form split: its metadata (free it) and payload. */
static Pulsar__Proto__MessageMetadata *sent_md(const struct wire_frame *f, const uint8_t **payload,
                                               size_t *len)
{
    ck_assert_ptr_nonnull(f->payload);
    ck_assert(f->had_checksum && f->checksum_ok);
    size_t n = evbuffer_get_length(f->payload);
    const uint8_t *b = evbuffer_pullup(f->payload, -1);
    ck_assert_uint_ge(n, 10);
    uint32_t mlen = mg_get_be32(b + 6);
    ck_assert_uint_le(10 + (size_t)mlen, n);
    Pulsar__Proto__MessageMetadata *md =
        pulsar__proto__message_metadata__unpack(NULL, mlen, b + 10);
    ck_assert_ptr_nonnull(md);
    *payload = b + 10 + mlen;
    *len = n - 10 - mlen;
    return md;
}

/* Take a SEND of one unbatched message: its sequence id and payload must be seq and text. */
static void expect_single_send(struct tl_peer *b, uint64_t id, uint64_t seq, const char *text)
{
    struct wire_frame f;
    tl_peer_expect(b, T(SEND), &f);
    ck_assert_uint_eq(f.cmd->send->producer_id, id);
    ck_assert_uint_eq(f.cmd->send->sequence_id, seq);
    ck_assert_int_eq(f.cmd->send->num_messages, 1);
    ck_assert(!f.cmd->send->is_chunk);
    const uint8_t *pl;
    size_t len;
    Pulsar__Proto__MessageMetadata *md = sent_md(&f, &pl, &len);
    ck_assert(!md->has_num_messages_in_batch);
    ck_assert_uint_eq(md->sequence_id, seq);
    ck_assert_str_eq(md->producer_name, "p-1");
    ck_assert_uint_gt(md->publish_time, 0);
    ck_assert_uint_eq(len, strlen(text));
    ck_assert(memcmp(pl, text, len) == 0);
    pulsar__proto__message_metadata__free_unpacked(md, NULL);
    wire_frame_clear(&f);
}

/* The first producer's callbacks record into this (producer_ready's, most tests'). */
static struct pstate *const ps = &fx.ps[0];

/* ---- tests: handshake and lookup ----------------------------------------------------------- */

/* CONNECT is all the client sends until CONNECTED; a lookup naming the service URL itself
 * reuses its connection; PRODUCER carries the topic, no name and epoch 0; the broker's name
 * is the producer's; CONNECTED's maxMessageSize bounds what may be sent. */
START_TEST(test_handshake_lookup_producer)
{
    struct client_producer *p = producer_new(false, 0, ps);
    struct tl_peer *b = dialed(0);
    ck_assert_str_eq(fx.url[0], SERVICE_URL);
    struct wire_frame f;
    tl_peer_expect(b, T(CONNECT), &f);
    wire_frame_clear(&f);
    tl_base_run_for(fx.base, 20);
    ck_assert_uint_eq(tl_peer_pending(b), 0); /* nothing before CONNECTED */
    tl_send_connected(b, WIRE_PROTOCOL_VERSION, 4096);
    answer_lookup(b, false, LOOKUP_CONNECT, SERVICE_URL);
    uint64_t id = accept_producer(b, NULL, 0, "p-1");
    tl_wait(fx.loop, &ps->ready);
    ck_assert_int_eq(ps->ready_calls, 1);
    ck_assert_int_eq(ps->ready_status, 0);
    ck_assert_str_eq(client_producer_name(p), "p-1");
    ck_assert_int_eq(fx.n, 1);
    static char big[4096];
    ck_assert_int_eq(client_producer_send(p, big, 4096 - 64 + 1, p_sent, ps), -MG_ETOOBIG);
    send_str(p, "fits", ps);
    expect_single_send(b, id, 0, "fits");
    client_producer_free(p);
}
END_TEST

/* An ERROR instead of CONNECTED fails creation with the broker's reason. */
START_TEST(test_connect_refused)
{
    struct client_producer *p = producer_new(false, 0, ps);
    struct tl_peer *b = dialed(0);
    struct wire_frame f;
    tl_peer_expect(b, T(CONNECT), &f);
    wire_frame_clear(&f);
    tl_send_error(b, 0, PULSAR__PROTO__SERVER_ERROR__AuthenticationError, "go away");
    tl_wait(fx.loop, &ps->ready);
    ck_assert_int_eq(ps->ready_status, -MG_EPROTO);
    ck_assert_msg(strstr(ps->ready_msg, "refused the connection: go away"), "%s", ps->ready_msg);
    ck_assert_int_eq(client_producer_send(p, "x", 1, p_sent, ps), -MG_ECLOSED);
    ck_assert(tl_peer_wait_closed(b));
    client_producer_free(p);
}
END_TEST

/* Bytes that are not Pulsar frames close the connection and fail creation saying so; a
 * connection that cannot be made fails it too. */
START_TEST(test_not_a_broker)
{
    struct client_producer *p = producer_new(false, 0, ps);
    struct tl_peer *b = dialed(0);
    const char http[] = "HTTP/1.1 400 Bad Request\r\n\r\n";
    tl_peer_send_raw(b, http, sizeof http - 1);
    tl_wait(fx.loop, &ps->ready);
    ck_assert_int_lt(ps->ready_status, 0);
    ck_assert_msg(strstr(ps->ready_msg, "does not answer as a Pulsar broker"), "%s", ps->ready_msg);
    ck_assert(tl_peer_wait_closed(b));
    client_producer_free(p);

    fx.refuse = true;
    struct pstate *s2 = &fx.ps[1];
    p = producer_new(false, 0, s2);
    tl_wait(fx.loop, &s2->ready);
    ck_assert_int_eq(s2->ready_status, -MG_EIO);
    ck_assert_msg(strstr(s2->ready_msg, "cannot connect to " SERVICE_URL), "%s", s2->ready_msg);
    client_producer_free(p);
}
END_TEST

/* Redirect: the client connects to the named broker and asks again there, authoritative;
 * the producer is created there, not on the service URL's broker. */
START_TEST(test_lookup_redirect)
{
    struct tl_peer *a = producer_looked_up(false, 0, LOOKUP_REDIRECT, OTHER_URL);
    struct tl_peer *b = dialed(1);
    ck_assert_str_eq(fx.url[1], OTHER_URL);
    accept_connect(b, 0);
    answer_lookup(b, true, LOOKUP_CONNECT, OTHER_URL);
    accept_producer(b, NULL, 0, "p-b");
    tl_wait(fx.loop, &ps->ready);
    ck_assert_int_eq(ps->ready_status, 0);
    ck_assert_int_eq(fx.n, 2);
    ck_assert_uint_eq(tl_peer_pending(a), 0); /* nothing more on the first broker */
}
END_TEST

/* A failed lookup fails creation with the broker's error and message. */
START_TEST(test_lookup_failed)
{
    producer_looked_up(false, 0, LOOKUP_FAILED, NULL);
    tl_wait(fx.loop, &ps->ready);
    ck_assert_int_eq(ps->ready_status, -MG_ENOTFOUND);
    ck_assert_msg(strstr(ps->ready_msg, "no such topic here"), "%s", ps->ready_msg);
}
END_TEST

/* ---- tests: producers ------------------------------------------------------------------------ */

/* Batching: a full batch goes as one SEND (num_messages, highest sequence id; metadata with
 * num_messages_in_batch; each message [u32 size][SingleMessageMetadata][payload] with its own
 * sequence id); a flush sends a partial one. Receipts complete the sends in order, each with
 * the entry's id and its index in the batch. */
START_TEST(test_producer_batches)
{
    struct tl_peer *b = producer_ready(true, 3);
    /* a batch has one deliver_at_time: a batching producer refuses one per message */
    struct client_msg_meta later = {.deliver_at_ms = 1700000012345};
    ck_assert_int_eq(client_producer_send_meta(fx.p, "x", 1, &later, p_sent, ps), -MG_EINVAL);
    const char *texts[] = {"m0", "m-one", "m2", "last"};
    for (int i = 0; i < 3; i++)
        send_str(fx.p, texts[i], ps);
    ck_assert_uint_eq(client_producer_pending(fx.p), 3);
    struct wire_frame f;
    tl_peer_expect(b, T(SEND), &f);
    const Pulsar__Proto__CommandSend *send = f.cmd->send;
    ck_assert_uint_eq(send->producer_id, fx.pid);
    ck_assert_uint_eq(send->sequence_id, 0);
    ck_assert_int_eq(send->num_messages, 3);
    ck_assert(send->has_highest_sequence_id);
    ck_assert_uint_eq(send->highest_sequence_id, 2);
    const uint8_t *pl;
    size_t len;
    Pulsar__Proto__MessageMetadata *md = sent_md(&f, &pl, &len);
    ck_assert(md->has_num_messages_in_batch);
    ck_assert_int_eq(md->num_messages_in_batch, 3);
    ck_assert_uint_eq(md->highest_sequence_id, 2);
    ck_assert_uint_eq(md->uncompressed_size, len);
    size_t off = 0;
    for (int i = 0; i < 3; i++) {
        ck_assert_uint_le(off + 4, len);
        uint32_t sz = mg_get_be32(pl + off);
        Pulsar__Proto__SingleMessageMetadata *smm =
            pulsar__proto__single_message_metadata__unpack(NULL, sz, pl + off + 4);
        ck_assert_ptr_nonnull(smm);
        ck_assert(smm->has_sequence_id);
        ck_assert_uint_eq(smm->sequence_id, (uint64_t)i);
        ck_assert_int_eq(smm->payload_size, (int32_t)strlen(texts[i]));
        ck_assert(memcmp(pl + off + 4 + sz, texts[i], strlen(texts[i])) == 0);
        off += 4 + sz + strlen(texts[i]);
        pulsar__proto__single_message_metadata__free_unpacked(smm, NULL);
    }
    ck_assert_uint_eq(off, len);
    pulsar__proto__message_metadata__free_unpacked(md, NULL);
    wire_frame_clear(&f);
    send_str(fx.p, texts[3], ps);
    client_producer_flush(fx.p);
    tl_peer_expect(b, T(SEND), &f);
    ck_assert_uint_eq(f.cmd->send->sequence_id, 3);
    ck_assert_int_eq(f.cmd->send->num_messages, 1);
    wire_frame_clear(&f);
    uint64_t t0 = mg_mono_us();
    tl_send_receipt(b, fx.pid, 0, 7, 1);
    tl_send_receipt(b, fx.pid, 3, 7, 2);
    ck_assert_int_eq(tl_until_count(fx.loop, &ps->n, 4, TL_REAL_WAIT_MS), 4);
    uint64_t t1 = mg_mono_us();
    for (int i = 0; i < 4; i++) {
        /* completed when its SEND's receipt was read: one time for the whole batch */
        ck_assert_uint_ge(ps->res[i].completed_us, t0);
        ck_assert_uint_le(ps->res[i].completed_us, t1);
        ck_assert_uint_ge(ps->res[i].completed_us, ps->res[i].enqueued_us);
        ck_assert_uint_eq(ps->res[i].completed_us, ps->res[i < 3 ? 0 : 3].completed_us);
        ck_assert_int_eq(ps->res[i].status, 0);
        ck_assert_uint_eq(ps->res[i].sequence_id, (uint64_t)i);
        ck_assert_uint_eq(ps->res[i].size, strlen(texts[i]));
        ck_assert_uint_eq(ps->res[i].id.ledger_id, 7);
        ck_assert_uint_eq(ps->res[i].id.entry_id, i < 3 ? 1 : 2);
        ck_assert_int_eq(ps->res[i].id.batch_index, i < 3 ? i : 0);
        ck_assert_int_eq(ps->res[i].id.batch_size, i < 3 ? 3 : 1);
    }
    ck_assert_uint_eq(client_producer_pending(fx.p), 0);
}
END_TEST

/* A closed batch's bytes go into its SEND frame by reference, where the batch built them
 * (not copied again), and the next batch gets a buffer of its own; the broker gets them. */
START_TEST(test_batch_frame_takes_buffer)
{
    struct tl_peer *b = producer_ready(true, 100);
    send_str(fx.p, "first message", ps);
    send_str(fx.p, "second", ps);
    const uint8_t *built = fx.p->batch.data;
    size_t blen = fx.p->batch.len;
    client_producer_flush(fx.p);
    struct client_op *op = STAILQ_FIRST(&fx.p->ops);
    ck_assert_ptr_nonnull(op);
    struct evbuffer_ptr pos;
    ck_assert_int_eq(
        evbuffer_ptr_set(op->frame, &pos, evbuffer_get_length(op->frame) - blen, EVBUFFER_PTR_SET),
        0);
    struct evbuffer_iovec v;
    ck_assert_int_eq(evbuffer_peek(op->frame, (ev_ssize_t)blen, &pos, &v, 1), 1);
    ck_assert_ptr_eq(v.iov_base, built);
    ck_assert_uint_eq(v.iov_len, blen);
    ck_assert_ptr_ne(fx.p->batch.data, built);
    struct wire_frame f;
    tl_peer_expect(b, T(SEND), &f);
    ck_assert(f.checksum_ok);
    ck_assert_int_eq(f.cmd->send->num_messages, 2);
    const uint8_t *pl;
    size_t len;
    Pulsar__Proto__MessageMetadata *md = sent_md(&f, &pl, &len);
    ck_assert_uint_eq(len, blen);
    pulsar__proto__message_metadata__free_unpacked(md, NULL);
    wire_frame_clear(&f);
    tl_send_receipt(b, fx.pid, 0, 9, 4);
    ck_assert_int_eq(tl_until_count(fx.loop, &ps->n, 2, TL_REAL_WAIT_MS), 2);
    ck_assert_int_eq(ps->res[1].status, 0);
}
END_TEST

/* Without batching each message is its own SEND with the next sequence id; receipts complete
 * them in order (no batch index). SEND_ERROR(ChecksumError) fails only the send it names, on
 * a connection that goes on. */
START_TEST(test_producer_single_and_send_error)
{
    struct tl_peer *b = producer_ready(false, 0);
    const char *texts[] = {"first", "second", "third"};
    for (int i = 0; i < 3; i++)
        send_str(fx.p, texts[i], ps);
    for (int i = 0; i < 3; i++)
        expect_single_send(b, fx.pid, (uint64_t)i, texts[i]);
    tl_send_send_error(b, fx.pid, 0, PULSAR__PROTO__SERVER_ERROR__ChecksumError, "bad checksum");
    tl_send_receipt(b, fx.pid, 1, 9, 0);
    tl_send_receipt(b, fx.pid, 2, 9, 1);
    ck_assert_int_eq(tl_until_count(fx.loop, &ps->n, 3, TL_REAL_WAIT_MS), 3);
    ck_assert_int_eq(ps->res[0].status, -MG_ECHECKSUM);
    ck_assert_uint_eq(ps->res[0].sequence_id, 0);
    for (int i = 1; i < 3; i++) {
        ck_assert_int_eq(ps->res[i].status, 0);
        ck_assert_uint_eq(ps->res[i].sequence_id, (uint64_t)i);
        ck_assert_uint_eq(ps->res[i].id.entry_id, (uint64_t)i - 1);
        ck_assert_int_eq(ps->res[i].id.batch_index, -1);
    }
    ck_assert_int_eq(fx.n, 1);
    ck_assert(!b->eof);
    /* deliverAt: the entry's MessageMetadata.deliver_at_time, this message only */
    struct client_msg_meta later = {.deliver_at_ms = 1700000012345};
    ck_assert_int_eq(client_producer_send_meta(fx.p, "later", 5, &later, p_sent, ps), 0);
    send_str(fx.p, "now", ps);
    struct wire_frame f;
    const uint8_t *pl;
    size_t plen;
    tl_peer_expect(b, T(SEND), &f);
    Pulsar__Proto__MessageMetadata *md = sent_md(&f, &pl, &plen);
    ck_assert(md->has_deliver_at_time);
    ck_assert_int_eq(md->deliver_at_time, 1700000012345);
    pulsar__proto__message_metadata__free_unpacked(md, NULL);
    wire_frame_clear(&f);
    tl_peer_expect(b, T(SEND), &f);
    md = sent_md(&f, &pl, &plen);
    ck_assert(!md->has_deliver_at_time);
    pulsar__proto__message_metadata__free_unpacked(md, NULL);
    wire_frame_clear(&f);
}
END_TEST

/* The connection drops with sends unacknowledged: after its backoff the producer looks the
 * topic up again on a new connection, re-creates itself under the broker's name (epoch 1)
 * and resends every pending SEND with its original sequence ids. A CLOSE_PRODUCER from the
 * broker does the same on the connection it has. */
START_TEST(test_producer_reconnects_and_resends)
{
    struct tl_peer *a = producer_ready(false, 0);
    send_str(fx.p, "one", ps);
    send_str(fx.p, "two", ps);
    expect_single_send(a, fx.pid, 0, "one");
    expect_single_send(a, fx.pid, 1, "two");
    tl_peer_close(a);
    struct tl_peer *b = dialed(1);
    ck_assert_str_eq(fx.url[1], SERVICE_URL);
    accept_connect(b, 0);
    answer_lookup(b, false, LOOKUP_CONNECT, SERVICE_URL);
    ck_assert_uint_eq(accept_producer(b, "p-1", 1, "p-1"), fx.pid);
    expect_single_send(b, fx.pid, 0, "one");
    expect_single_send(b, fx.pid, 1, "two");
    ck_assert_int_eq(ps->n, 0);
    tl_send_receipt(b, fx.pid, 0, 4, 0);
    ck_assert_int_eq(tl_until_count(fx.loop, &ps->n, 1, TL_REAL_WAIT_MS), 1);
    /* the broker closes the producer: again, on the same connection */
    tl_send_close_producer(b, fx.pid);
    answer_lookup(b, false, LOOKUP_CONNECT, SERVICE_URL);
    accept_producer(b, "p-1", 2, "p-1");
    expect_single_send(b, fx.pid, 1, "two");
    tl_send_receipt(b, fx.pid, 1, 4, 1);
    ck_assert_int_eq(tl_until_count(fx.loop, &ps->n, 2, TL_REAL_WAIT_MS), 2);
    for (int i = 0; i < 2; i++) {
        ck_assert_int_eq(ps->res[i].status, 0);
        ck_assert_uint_eq(ps->res[i].sequence_id, (uint64_t)i);
        ck_assert_uint_eq(ps->res[i].id.entry_id, (uint64_t)i);
    }
    ck_assert_int_eq(fx.n, 2);
    ck_assert_int_eq(ps->ready_calls, 1); /* ready once, not at each reconnection */
}
END_TEST

/* Freeing a producer completes its pending sends with -MG_ECANCELED during the call and
 * tells the broker (CLOSE_PRODUCER). */
START_TEST(test_producer_free_cancels)
{
    struct tl_peer *b = producer_ready(false, 0);
    send_str(fx.p, "a", ps);
    send_str(fx.p, "b", ps);
    client_producer_free(fx.p);
    ck_assert_int_eq(ps->n, 2);
    ck_assert_int_eq(ps->res[0].status, -MG_ECANCELED);
    ck_assert_int_eq(ps->res[1].status, -MG_ECANCELED);
    struct wire_frame f;
    ck_assert_int_eq(tl_peer_skip_to(b, T(CLOSE_PRODUCER), &f), 1);
    ck_assert_uint_eq(f.cmd->close_producer->producer_id, fx.pid);
    wire_frame_clear(&f);
}
END_TEST

/* ---- tests: consumers ------------------------------------------------------------------------ */

static void c_ready(struct client_consumer *c, int status, const char *msg, void *data)
{
    (void)c;
    (void)msg;
    struct cstate *s = data;
    s->ready = true;
    s->ready_status = status;
}

static void c_msg(struct client_consumer *c, const struct client_message *m, void *data)
{
    (void)c;
    struct cstate *s = data;
    ck_assert_int_lt(s->n, 16);
    struct cmsg *x = &s->m[s->n++];
    x->id = m->id;
    ck_assert_uint_lt(m->len, sizeof x->payload);
    memcpy(x->payload, m->payload, m->len);
    x->payload[m->len] = '\0';
    x->sequence_id = m->sequence_id;
    x->publish_time = m->publish_time;
}

/* A consumer with options o (its callbacks into fx.cs) whose lookup, on connection 0, the
 * broker answers; the broker side of connection 0 (SUBSCRIBE is next on it). */
static struct tl_peer *consumer_looked_up(const struct client_consumer_opts *o,
                                          struct client_consumer **c)
{
    ck_assert_int_eq(client_consumer_new(fx.cl, o, c_msg, c_ready, &fx.cs, c), 0);
    struct tl_peer *b = dialed(0);
    accept_connect(b, 0);
    answer_lookup(b, false, LOOKUP_CONNECT, SERVICE_URL);
    return b;
}

/* consumer_looked_up, then SUBSCRIBE answered SUCCESS and the first FLOW taken: the consumer
 * is ready; *cid is its consumer id. */
static struct tl_peer *consumer_subscribed(const struct client_consumer_opts *o,
                                           struct client_consumer **c, uint64_t *cid)
{
    struct tl_peer *b = consumer_looked_up(o, c);
    struct wire_frame f;
    tl_peer_expect(b, T(SUBSCRIBE), &f);
    *cid = f.cmd->subscribe->consumer_id;
    tl_send_success(b, f.cmd->subscribe->request_id);
    wire_frame_clear(&f);
    tl_peer_expect(b, T(FLOW), &f);
    wire_frame_clear(&f);
    tl_wait(fx.loop, &fx.cs.ready);
    return b;
}

/* A batch of n messages texts[i] as a producer stores it. */
static struct evbuffer *batch_entry(const char *const *texts, int n)
{
    struct client_buf buf = {0};
    for (int i = 0; i < n; i++)
        client_batch_append(&buf, texts[i], strlen(texts[i]), 20 + (uint64_t)i);
    Pulsar__Proto__MessageMetadata md;
    tl_pulsar_md(&md, "p", 20, 5678);
    md.has_num_messages_in_batch = 1;
    md.num_messages_in_batch = n;
    struct evbuffer *e = tl_pulsar_entry(&md, buf.data, buf.len);
    client_buf_fini(&buf);
    return e;
}

/* SUBSCRIBE carries the subscription, its type and initial position; SUCCESS is followed by
 * FLOW with the queue size. A single message and a batch are delivered with their ids (the
 * batch's messages each with its index); once half the queue is consumed FLOW refills it.
 * Acks are grouped into one ACK (Individual), and a batch entry is acked only when all its
 * messages are. The broker's PING is answered with PONG. */
static bool consumer_at_end(const void *c)
{
    return client_consumer_reached_end(c);
}

START_TEST(test_consumer)
{
    struct cstate *s = &fx.cs;
    struct client_consumer_opts o = {.topic = "t",
                                     .subscription = "sub",
                                     .consumer_name = "c1",
                                     .sub_type = CLIENT_SUB_SHARED,
                                     .initial_position = CLIENT_POS_EARLIEST,
                                     .receiver_queue_size = 4};
    struct client_consumer *c = NULL;
    struct tl_peer *b = consumer_looked_up(&o, &c);
    struct wire_frame f;
    tl_peer_expect(b, T(SUBSCRIBE), &f);
    const Pulsar__Proto__CommandSubscribe *sub = f.cmd->subscribe;
    ck_assert_str_eq(sub->topic, TOPIC);
    ck_assert_str_eq(sub->subscription, "sub");
    ck_assert_str_eq(sub->consumer_name, "c1");
    ck_assert_int_eq(sub->subtype, PULSAR__PROTO__COMMAND_SUBSCRIBE__SUB_TYPE__Shared);
    ck_assert(sub->has_durable && sub->durable);
    ck_assert(sub->has_initialposition);
    ck_assert_int_eq(sub->initialposition,
                     PULSAR__PROTO__COMMAND_SUBSCRIBE__INITIAL_POSITION__Earliest);
    uint64_t cid = sub->consumer_id;
    tl_send_success(b, sub->request_id);
    wire_frame_clear(&f);
    tl_peer_expect(b, T(FLOW), &f);
    ck_assert_uint_eq(f.cmd->flow->consumer_id, cid);
    ck_assert_uint_eq(f.cmd->flow->messagepermits, 4);
    wire_frame_clear(&f);
    tl_wait(fx.loop, &s->ready);
    ck_assert_int_eq(s->ready_status, 0);

    Pulsar__Proto__MessageMetadata md;
    tl_pulsar_md(&md, "p", 5, 1234);
    struct evbuffer *single = tl_pulsar_entry(&md, "hello", 5);
    tl_send_message(b, cid, 3, 0, single);
    static const char *const texts[] = {"a", "bb", "ccc"};
    struct evbuffer *batch = batch_entry(texts, 3);
    tl_send_message(b, cid, 3, 1, batch);
    ck_assert_int_eq(tl_until_count(fx.loop, &s->n, 4, TL_REAL_WAIT_MS), 4);
    evbuffer_free(single);
    evbuffer_free(batch);
    ck_assert_str_eq(s->m[0].payload, "hello");
    ck_assert_uint_eq(s->m[0].id.ledger_id, 3);
    ck_assert_uint_eq(s->m[0].id.entry_id, 0);
    ck_assert_int_eq(s->m[0].id.batch_index, -1);
    ck_assert_uint_eq(s->m[0].sequence_id, 5);
    ck_assert_uint_eq(s->m[0].publish_time, 1234);
    for (int i = 0; i < 3; i++) {
        ck_assert_str_eq(s->m[1 + i].payload, texts[i]);
        ck_assert_uint_eq(s->m[1 + i].id.entry_id, 1);
        ck_assert_int_eq(s->m[1 + i].id.batch_index, i);
        ck_assert_int_eq(s->m[1 + i].id.batch_size, 3);
        ck_assert_uint_eq(s->m[1 + i].sequence_id, 20 + (uint64_t)i);
    }
    tl_peer_expect(b, T(FLOW), &f); /* 4 consumed of a queue of 4: refilled */
    ck_assert_uint_eq(f.cmd->flow->messagepermits, 4);
    wire_frame_clear(&f);

    tl_send_ping(b);
    tl_peer_expect(b, T(PONG), &f);
    wire_frame_clear(&f);

    /* acks: the single message, and the batch's first two (the entry stays unacked) */
    for (int i = 0; i < 3; i++)
        ck_assert_int_eq(client_consumer_ack(c, &s->m[i].id), 0);
    client_consumer_flush(c);
    tl_peer_expect(b, T(ACK), &f);
    ck_assert_int_eq(f.cmd->ack->ack_type, PULSAR__PROTO__COMMAND_ACK__ACK_TYPE__Individual);
    ck_assert_uint_eq(f.cmd->ack->n_message_id, 1);
    ck_assert_uint_eq(f.cmd->ack->message_id[0]->entryid, 0);
    wire_frame_clear(&f);
    ck_assert_int_eq(client_consumer_ack(c, &s->m[3].id), 0);
    client_consumer_flush(c);
    tl_peer_expect(b, T(ACK), &f);
    ck_assert_uint_eq(f.cmd->ack->n_message_id, 1);
    ck_assert_uint_eq(f.cmd->ack->message_id[0]->ledgerid, 3);
    ck_assert_uint_eq(f.cmd->ack->message_id[0]->entryid, 1);
    wire_frame_clear(&f);

    /* REACHED_END_OF_TOPIC: hasReachedEndOfTopic */
    ck_assert(!client_consumer_reached_end(c));
    Pulsar__Proto__CommandReachedEndOfTopic eot = PULSAR__PROTO__COMMAND_REACHED_END_OF_TOPIC__INIT;
    eot.consumer_id = cid;
    wire_cmd cmd = PULSAR__PROTO__BASE_COMMAND__INIT;
    cmd.type = T(REACHED_END_OF_TOPIC);
    cmd.reachedendoftopic = &eot;
    tl_peer_send(b, &cmd);
    ck_assert(tl_until(fx.loop, consumer_at_end, c, TL_REAL_WAIT_MS));
    client_consumer_free(c);
}
END_TEST

/* A producer with a compression type sends each entry's payload (a batch's whole payload)
 * compressed with it, with uncompressed_size, for every codec (one producer per codec, on
 * one connection). */
START_TEST(test_producer_compression)
{
    const char *texts[] = {"compress compress compress", "m-one", "m-two"};
    struct tl_peer *b = NULL;
    for (int codec = MG_CODEC_LZ4; codec <= MG_CODEC_SNAPPY; codec++) {
        fx.codec = codec;
        memset(ps, 0, sizeof *ps);
        if (!b) {
            b = producer_ready(true, 3);
        } else {
            fx.p = producer_new(true, 3, ps);
            answer_lookup(b, false, LOOKUP_CONNECT, SERVICE_URL);
            fx.pid = accept_producer(b, NULL, 0, "p-1");
            tl_wait(fx.loop, &ps->ready);
            ck_assert_int_eq(ps->ready_status, 0);
        }
        for (int i = 0; i < 3; i++)
            send_str(fx.p, texts[i], ps);
        struct wire_frame f;
        tl_peer_expect(b, T(SEND), &f);
        const uint8_t *pl;
        size_t len;
        Pulsar__Proto__MessageMetadata *md = sent_md(&f, &pl, &len);
        ck_assert(md->has_compression);
        ck_assert_int_eq((int)md->compression, codec);
        ck_assert(md->has_uncompressed_size);
        struct client_buf want = {0};
        for (int i = 0; i < 3; i++)
            client_batch_append(&want, texts[i], strlen(texts[i]), (uint64_t)i);
        ck_assert_uint_eq(md->uncompressed_size, want.len);
        ck_assert(len != want.len || memcmp(pl, want.data, len) != 0);
        uint8_t *raw = NULL;
        ck_assert_int_eq(
            mg_decompress(codec, pl, len, md->uncompressed_size, 1 << 20, &raw, NULL, 0), 0);
        ck_assert_mem_eq(raw, want.data, want.len);
        mg_free(raw);
        client_buf_fini(&want);
        pulsar__proto__message_metadata__free_unpacked(md, NULL);
        wire_frame_clear(&f);
    }
    fx.codec = MG_CODEC_NONE;
    struct client_producer_opts bad = {.topic = "t", .compression = 5};
    struct client_producer *p = NULL;
    ck_assert_int_eq(client_producer_new(fx.cl, &bad, p_ready, &fx.ps[1], &p), -MG_EINVAL);
}
END_TEST

/* A consumer delivers compressed single messages and batches decompressed, for every codec,
 * and drops (without delivering) a message whose declared size lies, going on with the
 * next. */
START_TEST(test_consumer_decompresses)
{
    const char *texts[] = {"compress compress compress", "m-one", "m-two"};
    struct cstate *s = &fx.cs;
    struct client_consumer_opts o = {
        .topic = "t", .subscription = "sub", .receiver_queue_size = 100};
    struct client_consumer *c = NULL;
    uint64_t cid;
    struct tl_peer *b = consumer_subscribed(&o, &c, &cid);
    uint64_t entry = 0;
    for (int codec = MG_CODEC_LZ4; codec <= MG_CODEC_SNAPPY; codec++) {
        for (int lie = 0; lie < 2; lie++) { /* a single message, the second time lying */
            uint8_t *z = NULL;
            size_t zn = 0;
            ck_assert_int_eq(
                mg_compress(codec, (const uint8_t *)texts[0], strlen(texts[0]), &z, &zn), 0);
            Pulsar__Proto__MessageMetadata md;
            tl_pulsar_md(&md, "p", entry, 1234);
            md.has_compression = 1;
            md.compression = (Pulsar__Proto__CompressionType)codec;
            md.has_uncompressed_size = 1;
            md.uncompressed_size = (uint32_t)strlen(texts[0]) + (uint32_t)lie * 3;
            struct evbuffer *e = tl_pulsar_entry(&md, z, zn);
            tl_send_message(b, cid, 9, entry++, e);
            evbuffer_free(e);
            mg_free(z);
        }
        /* a compressed batch */
        struct client_buf buf = {0};
        for (int i = 0; i < 3; i++)
            client_batch_append(&buf, texts[i], strlen(texts[i]), 20 + (uint64_t)i);
        uint8_t *z = NULL;
        size_t zn = 0;
        ck_assert_int_eq(mg_compress(codec, buf.data, buf.len, &z, &zn), 0);
        Pulsar__Proto__MessageMetadata md;
        tl_pulsar_md(&md, "p", 20, 5678);
        md.has_num_messages_in_batch = 1;
        md.num_messages_in_batch = 3;
        md.has_compression = 1;
        md.compression = (Pulsar__Proto__CompressionType)codec;
        md.has_uncompressed_size = 1;
        md.uncompressed_size = (uint32_t)buf.len;
        struct evbuffer *e = tl_pulsar_entry(&md, z, zn);
        tl_send_message(b, cid, 9, entry++, e);
        evbuffer_free(e);
        mg_free(z);
        client_buf_fini(&buf);
    }
    /* per codec: the single message, then the batch's three (the liar is dropped) */
    ck_assert_int_eq(tl_until_count(fx.loop, &s->n, 16, TL_REAL_WAIT_MS), 16);
    for (int k = 0; k < 4; k++) {
        ck_assert_str_eq(s->m[4 * k].payload, texts[0]);
        ck_assert_uint_eq(s->m[4 * k].id.entry_id, 3 * (uint64_t)k);
        ck_assert_int_eq(s->m[4 * k].id.batch_index, -1);
        for (int i = 0; i < 3; i++) {
            ck_assert_str_eq(s->m[4 * k + 1 + i].payload, texts[i]);
            ck_assert_uint_eq(s->m[4 * k + 1 + i].id.entry_id, 3 * (uint64_t)k + 2);
            ck_assert_int_eq(s->m[4 * k + 1 + i].id.batch_index, i);
        }
    }
    client_consumer_free(c);
}
END_TEST

/* ---- tests: other requests --------------------------------------------------------------------
 */

static void parts_cb(struct client *c, int status, uint32_t partitions, const char *msg, void *data)
{
    (void)c;
    (void)msg;
    struct parts *r = data;
    r->done = true;
    r->status = status;
    r->n = partitions;
}

/* PARTITIONED_METADATA goes to the service URL's broker with the full topic name. */
START_TEST(test_partitions)
{
    struct parts *r = &fx.parts;
    ck_assert_int_eq(client_get_partitions(fx.cl, "t", parts_cb, r), 0);
    struct tl_peer *b = dialed(0);
    accept_connect(b, 0);
    struct wire_frame f;
    tl_peer_expect(b, T(PARTITIONED_METADATA), &f);
    ck_assert_str_eq(f.cmd->partitionmetadata->topic, TOPIC);
    tl_send_partitions(b, f.cmd->partitionmetadata->request_id, 4);
    wire_frame_clear(&f);
    tl_wait(fx.loop, &r->done);
    ck_assert_int_eq(r->status, 0);
    ck_assert_uint_eq(r->n, 4);
}
END_TEST

struct topics_answer {
    bool done;
    int status;
    char got[256]; /* the names, space-separated */
};

static void topics_cb(struct client *c, int status, const char *const *topics, size_t n,
                      const char *msg, void *data)
{
    (void)c;
    (void)msg;
    struct topics_answer *r = data;
    r->done = true;
    r->status = status;
    for (size_t i = 0; i < n; i++)
        snprintf(r->got + strlen(r->got), sizeof r->got - strlen(r->got), "%s%s", i ? " " : "",
                 topics[i]);
}

/* GET_TOPICS_OF_NAMESPACE goes to the service URL's broker for the persistent topics of the
 * namespace; the names answered reach the callback; a bad namespace is refused at once. */
START_TEST(test_topics_of_namespace)
{
    struct topics_answer r = {0};
    ck_assert_int_eq(client_get_topics(fx.cl, "nons", topics_cb, &r), -MG_EINVAL);
    ck_assert_int_eq(client_get_topics(fx.cl, "a/b/c", topics_cb, &r), -MG_EINVAL);
    ck_assert_int_eq(client_get_topics(fx.cl, "public/default", topics_cb, &r), 0);
    struct tl_peer *b = dialed(0);
    accept_connect(b, 0);
    struct wire_frame f;
    tl_peer_expect(b, T(GET_TOPICS_OF_NAMESPACE), &f);
    const Pulsar__Proto__CommandGetTopicsOfNamespace *q = f.cmd->gettopicsofnamespace;
    ck_assert_str_eq(q->namespace_, "public/default");
    ck_assert(q->has_mode &&
              q->mode == PULSAR__PROTO__COMMAND_GET_TOPICS_OF_NAMESPACE__MODE__PERSISTENT);
    Pulsar__Proto__CommandGetTopicsOfNamespaceResponse resp =
        PULSAR__PROTO__COMMAND_GET_TOPICS_OF_NAMESPACE_RESPONSE__INIT;
    char *names[] = {"persistent://public/default/a", "persistent://public/default/b"};
    resp.request_id = q->request_id;
    resp.n_topics = 2;
    resp.topics = names;
    wire_cmd cmd;
    tl_cmd_set(cmd, GET_TOPICS_OF_NAMESPACE_RESPONSE, gettopicsofnamespaceresponse, resp);
    tl_peer_send(b, &cmd);
    wire_frame_clear(&f);
    tl_wait(fx.loop, &r.done);
    ck_assert_int_eq(r.status, 0);
    ck_assert_str_eq(r.got, "persistent://public/default/a persistent://public/default/b");
}
END_TEST

/* A request the broker never answers fails with -MG_ETIMEDOUT after the operation timeout
 * (checked on the client's 1 s tick). */
START_TEST(test_request_times_out)
{
    fx.cl->operation_timeout_ms = 200;
    struct client_producer *p = producer_new(false, 0, ps);
    struct tl_peer *b = dialed(0);
    accept_connect(b, 0);
    struct wire_frame f;
    tl_peer_expect(b, T(LOOKUP), &f); /* and no answer */
    wire_frame_clear(&f);
    ck_assert(tl_until_flag(fx.loop, &ps->ready, 5000));
    ck_assert_int_eq(ps->ready_status, -MG_ETIMEDOUT);
    ck_assert_msg(strstr(ps->ready_msg, "timed out"), "%s", ps->ready_msg);
    client_producer_free(p);
}
END_TEST

/* ---- chunking ------------------------------------------------------------------------------- */

/* Sync with the client: everything the broker sent before is handled once PONG comes. */
static void ping_pong(struct tl_peer *b)
{
    struct wire_frame f;
    tl_send_ping(b);
    tl_peer_expect(b, T(PONG), &f);
    wire_frame_clear(&f);
}

/* A chunking producer (batching asked for too: chunking turns it off, as Pulsar) under a
 * broker whose CONNECTED says max_message_size M: a message several times M goes as chunks,
 * one SEND each (is_chunk) with the message's sequence id, uuid "<name>-<seq>", chunk_id 0..n-1,
 * num_chunks_from_msg n and total_chunk_msg_size; every chunk's metadata and payload fit M and
 * their payloads put together are the message. Its callback fires once, on the last chunk's
 * receipt, with that chunk's id. A small message after it is one SEND without chunk fields. */
START_TEST(test_producer_chunking)
{
    const int M = 700;
    const size_t L = 4 * 700 + 123; /* several times M, not a multiple of a chunk */
    struct client_producer_opts o = {.topic = "t", .batching = true, .chunking = true};
    ck_assert_int_eq(client_producer_new(fx.cl, &o, p_ready, ps, &fx.p), 0);
    struct tl_peer *b = dialed(0);
    accept_connect(b, M);
    answer_lookup(b, false, LOOKUP_CONNECT, SERVICE_URL);
    /* the broker's last sequence id: a long one, so the uuid is long too */
    const uint64_t seq0 = 123456789012345;
    struct wire_frame pf;
    tl_peer_expect(b, T(PRODUCER), &pf);
    fx.pid = pf.cmd->producer->producer_id;
    tl_send_producer_success(b, pf.cmd->producer->request_id, "p-1", (int64_t)seq0 - 1);
    wire_frame_clear(&pf);
    char uuid[64];
    snprintf(uuid, sizeof uuid, "p-1-%llu", (unsigned long long)seq0);
    tl_wait(fx.loop, &ps->ready);
    ck_assert_int_eq(ps->ready_status, 0);

    uint8_t *msg = mg_malloc(L);
    for (size_t i = 0; i < L; i++)
        msg[i] = (uint8_t)(i * 7 + i / 251);
    ck_assert_int_eq(client_producer_send(fx.p, msg, L, p_sent, ps), 0);
    send_str(fx.p, "tiny", ps);
    uint8_t *got = mg_malloc(L);
    size_t have = 0;
    int32_t n = -1;
    for (int32_t k = 0; n < 0 || k < n; k++) {
        ck_assert_int_lt(k, 100);
        struct wire_frame f;
        const uint8_t *pl;
        size_t plen;
        tl_peer_expect(b, T(SEND), &f);
        ck_assert_uint_eq(f.cmd->send->sequence_id, seq0);
        ck_assert(f.cmd->send->has_is_chunk && f.cmd->send->is_chunk);
        size_t mdlen = mg_get_be32(evbuffer_pullup(f.payload, 10) + 6);
        Pulsar__Proto__MessageMetadata *md = sent_md(&f, &pl, &plen);
        ck_assert(!md->has_num_messages_in_batch);
        ck_assert_uint_eq(md->sequence_id, seq0);
        ck_assert_str_eq(md->uuid, uuid);
        ck_assert(md->has_chunk_id && md->has_num_chunks_from_msg && md->has_total_chunk_msg_size);
        ck_assert_int_eq(md->chunk_id, k);
        if (k == 0)
            n = md->num_chunks_from_msg;
        ck_assert_int_eq(md->num_chunks_from_msg, n);
        ck_assert_int_eq(md->total_chunk_msg_size, (int32_t)L);
        ck_assert_uint_le(mdlen + plen, (size_t)M);
        ck_assert_uint_gt(plen, 0);
        ck_assert_uint_le(have + plen, L);
        memcpy(got + have, pl, plen);
        have += plen;
        pulsar__proto__message_metadata__free_unpacked(md, NULL);
        wire_frame_clear(&f);
    }
    ck_assert_int_ge(n, (int32_t)(L / (size_t)M) + 1);
    ck_assert_uint_eq(have, L);
    ck_assert(memcmp(got, msg, L) == 0);
    expect_single_send(b, fx.pid, seq0 + 1, "tiny");

    /* receipts of every chunk but the last: nothing completes */
    for (int32_t k = 0; k + 1 < n; k++)
        tl_send_receipt(b, fx.pid, seq0, 9, (uint64_t)k);
    ping_pong(b);
    ck_assert_int_eq(ps->n, 0);
    tl_send_receipt(b, fx.pid, seq0, 9, (uint64_t)n - 1);
    tl_send_receipt(b, fx.pid, seq0 + 1, 9, (uint64_t)n);
    ck_assert_int_eq(tl_until_count(fx.loop, &ps->n, 2, TL_REAL_WAIT_MS), 2);
    ck_assert_int_eq(ps->res[0].status, 0);
    ck_assert_uint_eq(ps->res[0].sequence_id, seq0);
    ck_assert_uint_eq(ps->res[0].size, L);
    ck_assert_uint_eq(ps->res[0].id.entry_id, (uint64_t)n - 1);
    ck_assert_int_eq(ps->res[1].status, 0);
    ck_assert_uint_eq(ps->res[1].id.entry_id, (uint64_t)n);
    ck_assert_uint_eq(client_producer_pending(fx.p), 0);
    mg_free(msg);
    mg_free(got);
}
END_TEST

/* Send chunk k of n of the message uuid (whose whole payload is text) as entry (7, e):
 * chunk k is the k-th of n near-equal slices. total: its total_chunk_msg_size, -1 = right. */
static void send_chunk(struct tl_peer *b, uint64_t cid, uint64_t e, const char *uuid, int k, int n,
                       const char *text, int total)
{
    size_t len = strlen(text), per = (len + (size_t)n - 1) / (size_t)n;
    size_t off = (size_t)k * per < len ? (size_t)k * per : len;
    size_t plen = len - off < per ? len - off : per;
    Pulsar__Proto__MessageMetadata md;
    tl_pulsar_md(&md, "p", 40, 4321);
    md.uuid = (char *)uuid;
    md.has_chunk_id = md.has_num_chunks_from_msg = md.has_total_chunk_msg_size = 1;
    md.chunk_id = k;
    md.num_chunks_from_msg = n;
    md.total_chunk_msg_size = total < 0 ? (int32_t)len : total;
    struct evbuffer *entry = tl_pulsar_entry(&md, text + off, plen);
    tl_send_message(b, cid, 7, e, entry);
    evbuffer_free(entry);
}

/* A consumer of topic "t", subscription "sub", 100 permits, with o's chunk bounds: it, its
 * id and the broker's side of its connection. */
struct chunk_fx {
    struct client_consumer *c;
    uint64_t cid;
    struct tl_peer *b;
};

static struct chunk_fx chunk_consumer(struct client_consumer_opts o)
{
    o.topic = "t";
    o.subscription = "sub";
    o.receiver_queue_size = 100;
    struct chunk_fx k = {0};
    k.b = consumer_subscribed(&o, &k.c, &k.cid);
    return k;
}

/* Wait until the consumer's callback has had n messages, the last with entry id e. */
static void expect_delivered(int n, uint64_t e)
{
    struct cstate *s = &fx.cs;
    ck_assert_int_eq(tl_until_count(fx.loop, &s->n, n, TL_REAL_WAIT_MS), n);
    ck_assert_uint_eq(s->m[n - 1].id.entry_id, e);
}

/* Flush c's acks, then take ACK frames until want (sorted entry ids of ledger 7, nwant of
 * them) are all acked; no other entry may be. */
static void expect_acked(struct client_consumer *c, struct tl_peer *b, const uint64_t *want,
                         size_t nwant)
{
    client_consumer_flush(c);
    bool seen[64] = {0};
    size_t got = 0;
    while (got < nwant) {
        struct wire_frame f;
        tl_peer_expect(b, T(ACK), &f);
        for (size_t i = 0; i < f.cmd->ack->n_message_id; i++) {
            uint64_t e = f.cmd->ack->message_id[i]->entryid;
            bool wanted = false;
            for (size_t j = 0; j < nwant; j++)
                wanted |= want[j] == e;
            ck_assert_msg(wanted && e < 64 && !seen[e], "entry %llu acked unexpectedly",
                          (unsigned long long)e);
            seen[e] = true;
            got++;
        }
        wire_frame_clear(&f);
    }
}

/* A consumer reassembles chunked messages per uuid, two interleaved, and delivers each once,
 * complete, with its last chunk's id; acking that id acks every chunk. Bounds: a chunk
 * without its first chunk, a run evicted past max_pending_chunked (auto_ack_oldest_chunked),
 * a run announcing more than max_chunked_bytes and a run whose chunks come out of order are
 * each dropped (nothing delivered) and every chunk of theirs acked. */
START_TEST(test_consumer_chunks)
{
    struct cstate *s = &fx.cs;
    struct chunk_fx k = chunk_consumer((struct client_consumer_opts){
        .max_pending_chunked = 2, .auto_ack_oldest_chunked = true, .max_chunked_bytes = 64});

    const char *ta = "first chunked message", *tb = "the second one!";
    send_chunk(k.b, k.cid, 0, "p-A", 0, 3, ta, -1);
    send_chunk(k.b, k.cid, 1, "p-A", 1, 3, ta, -1);
    send_chunk(k.b, k.cid, 2, "p-B", 0, 2, tb, -1);
    send_chunk(k.b, k.cid, 3, "p-A", 2, 3, ta, -1);
    send_chunk(k.b, k.cid, 4, "p-B", 1, 2, tb, -1);
    ck_assert_int_eq(tl_until_count(fx.loop, &s->n, 2, TL_REAL_WAIT_MS), 2);
    ck_assert_str_eq(s->m[0].payload, ta);
    ck_assert_uint_eq(s->m[0].id.ledger_id, 7);
    ck_assert_uint_eq(s->m[0].id.entry_id, 3);
    ck_assert_uint_eq(s->m[0].sequence_id, 40);
    ck_assert_str_eq(s->m[1].payload, tb);
    ck_assert_uint_eq(s->m[1].id.entry_id, 4);
    ck_assert_int_eq(client_consumer_ack(k.c, &s->m[0].id), 0);
    expect_acked(k.c, k.b, (const uint64_t[]){0, 1, 3}, 3);

    const char *tc = "dropped on the floor";
    send_chunk(k.b, k.cid, 10, "p-C", 1, 2, tc, -1); /* no chunk 0: dropped, acked */
    send_chunk(k.b, k.cid, 11, "p-D", 0, 2, tc, -1); /* D, E, then F evicts D */
    send_chunk(k.b, k.cid, 12, "p-E", 0, 3, tc, -1);
    send_chunk(k.b, k.cid, 13, "p-F", 0, 3, tc, -1);
    send_chunk(k.b, k.cid, 14, "p-D", 1, 2, tc, -1);   /* D is gone: dropped, acked */
    send_chunk(k.b, k.cid, 15, "p-G", 0, 2, tc, 1000); /* over max_chunked_bytes */
    send_chunk(k.b, k.cid, 16, "p-F", 2, 3, tc, -1);   /* F's chunk 1 missing: F dropped */
    ping_pong(k.b);
    ck_assert_int_eq(s->n, 2);
    expect_acked(k.c, k.b, (const uint64_t[]){10, 11, 13, 14, 15, 16}, 6);
    /* E is still whole: its chunks 1 and 2 complete it */
    send_chunk(k.b, k.cid, 17, "p-E", 1, 3, tc, -1);
    send_chunk(k.b, k.cid, 18, "p-E", 2, 3, tc, -1);
    expect_delivered(3, 18);
    ck_assert_str_eq(s->m[2].payload, tc);
    ck_assert_int_eq(client_consumer_ack(k.c, &s->m[2].id), 0);
    expect_acked(k.c, k.b, (const uint64_t[]){12, 17, 18}, 3);
    client_consumer_free(k.c);
}
END_TEST

/* An incomplete chunked message older than chunk_expire_ms is dropped when the next chunk
 * comes (Pulsar's expireTimeOfIncompleteChunkedMessage) and its chunks acked; the newer run
 * completes. */
START_TEST(test_consumer_chunks_expire)
{
    struct cstate *s = &fx.cs;
    struct chunk_fx k = chunk_consumer((struct client_consumer_opts){.chunk_expire_ms = 5});
    const char *text = "expiring chunks";
    send_chunk(k.b, k.cid, 20, "p-H", 0, 2, text, -1);
    ping_pong(k.b); /* H started */
    uint64_t t0 = mg_mono_us();
    while (mg_mono_us() - t0 <= 6000) /* H's age passes chunk_expire_ms (the condition) */
        tl_passes(fx.base, 1);
    send_chunk(k.b, k.cid, 21, "p-I", 0, 2, text, -1);
    send_chunk(k.b, k.cid, 22, "p-H", 1, 2, text, -1); /* H is gone: dropped too */
    send_chunk(k.b, k.cid, 23, "p-I", 1, 2, text, -1);
    expect_delivered(1, 23);
    ck_assert_str_eq(s->m[0].payload, text);
    expect_acked(k.c, k.b, (const uint64_t[]){20, 22}, 2);
    client_consumer_free(k.c);
}
END_TEST

/* Without auto_ack_oldest_chunked (Pulsar's default) the run evicted past
 * max_pending_chunked is dropped (its memory freed) but its chunks are not acked: the broker
 * delivers them again after a reconnect. A chunk of it that comes later has no first chunk:
 * that one is acked, as any such chunk. */
START_TEST(test_consumer_chunks_evicted_unacked)
{
    struct cstate *s = &fx.cs;
    struct chunk_fx k = chunk_consumer((struct client_consumer_opts){.max_pending_chunked = 1});
    /* entries 40..43: L's first chunk, M's (evicts L, not acked), L's second (L is gone:
     * acked), M's second */
    const char *uuids[] = {"p-L", "p-M", "p-L", "p-M"};
    for (int i = 0; i < 4; i++)
        send_chunk(k.b, k.cid, 40 + (uint64_t)i, uuids[i], i / 2, 2, "one run at a time", -1);
    expect_delivered(1, 43);
    ck_assert_uint_eq(k.c->nchunked, 0);
    expect_acked(k.c, k.b, (const uint64_t[]){42}, 1);
    ck_assert_int_eq(client_consumer_ack(k.c, &s->m[0].id), 0);
    expect_acked(k.c, k.b, (const uint64_t[]){41, 43}, 2);
    client_consumer_free(k.c);
}
END_TEST

/* An incomplete chunked message whose other chunks never come is dropped by a timer once it
 * is older than chunk_expire_ms (no further chunk needed) and its chunks acked: the consumer
 * holds nothing after that. Lower bound only: its ack comes no sooner than chunk_expire_ms
 * after its first chunk was sent; that it comes at all is bounded by tl_peer_expect's
 * deadline. A run that completes in time is delivered, not dropped. */
START_TEST(test_consumer_chunks_expire_timer)
{
    struct cstate *s = &fx.cs;
    const unsigned ttl_ms = 50;
    struct chunk_fx k = chunk_consumer((struct client_consumer_opts){.chunk_expire_ms = ttl_ms});
    const char *text = "chunks that stop coming";
    send_chunk(k.b, k.cid, 30, "p-K", 0, 2, text, -1); /* completes in time */
    send_chunk(k.b, k.cid, 31, "p-K", 1, 2, text, -1);
    expect_delivered(1, 31);
    uint64_t t0 = mg_mono_us();
    send_chunk(k.b, k.cid, 32, "p-J", 0, 3, text, -1);
    send_chunk(k.b, k.cid, 33, "p-J", 1, 3, text, -1);
    ping_pong(k.b);
    ck_assert_uint_eq(k.c->nchunked, 1);
    expect_acked(k.c, k.b, (const uint64_t[]){32, 33}, 2);
    ck_assert_uint_ge(mg_mono_us() - t0, (uint64_t)ttl_ms * 1000);
    ck_assert_uint_eq(k.c->nchunked, 0);
    ck_assert_ptr_null(TAILQ_FIRST(&k.c->chunk_order));
    ck_assert_int_eq(s->n, 1);
    client_consumer_free(k.c);
}
END_TEST

/* A batch message's key and properties (client_batch_append_meta) are in its
 * SingleMessageMetadata, as pulsar-client reads them; a message without meta has none. */
START_TEST(test_batch_meta)
{
    const char *props[] = {"k1", "v1", "k2", ""};
    struct client_msg_meta meta = {.key = "the-key", .properties = props, .nprops = 2};
    struct client_buf buf = {0};
    client_batch_append_meta(&buf, "one", 3, 7, &meta);
    client_batch_append(&buf, "two", 3, 8);
    size_t off = 0, plen;
    Pulsar__Proto__SingleMessageMetadata *smm;
    const uint8_t *pl;
    ck_assert_int_eq(client_batch_next(buf.data, buf.len, &off, &smm, &pl, &plen), 1);
    ck_assert_str_eq(smm->partition_key, "the-key");
    ck_assert_uint_eq(smm->n_properties, 2);
    ck_assert_str_eq(smm->properties[0]->key, "k1");
    ck_assert_str_eq(smm->properties[0]->value, "v1");
    ck_assert_str_eq(smm->properties[1]->key, "k2");
    ck_assert_str_eq(smm->properties[1]->value, "");
    ck_assert_uint_eq(plen, 3);
    ck_assert_int_eq(memcmp(pl, "one", 3), 0);
    pulsar__proto__single_message_metadata__free_unpacked(smm, NULL);
    ck_assert_int_eq(client_batch_next(buf.data, buf.len, &off, &smm, &pl, &plen), 1);
    ck_assert_ptr_null(smm->partition_key);
    ck_assert_uint_eq(smm->n_properties, 0);
    pulsar__proto__single_message_metadata__free_unpacked(smm, NULL);
    ck_assert_int_eq(client_batch_next(buf.data, buf.len, &off, &smm, &pl, &plen), 0);
    client_buf_fini(&buf);
}
END_TEST

#if defined(__has_feature) /* clang's spelling of gcc's __SANITIZE_ADDRESS__ */
#if __has_feature(address_sanitizer)
#define TEST_ASAN 1
#endif
#endif
#if defined(__SANITIZE_ADDRESS__) || defined(TEST_ASAN)
/* The sanitizer runtime calls these on every allocation (sanitizer/allocator_interface.h,
 * which this compiler does not install). */
void __sanitizer_install_malloc_and_free_hooks(void (*m)(const volatile void *, size_t),
                                               void (*f)(const volatile void *));
static volatile int test_mallocs;
static void test_count_malloc(const volatile void *p, size_t n)
{
    (void)p;
    (void)n;
    test_mallocs++;
}
static void test_count_free(const volatile void *p)
{
    (void)p;
}

/* Appending a message without key or properties to a batch with room allocates nothing. */
START_TEST(test_batch_append_no_alloc)
{
    struct client_buf buf = {0};
    client_buf_reserve(&buf, 1 << 20);
    uint8_t payload[2000];
    memset(payload, 0x5a, sizeof payload);
    __sanitizer_install_malloc_and_free_hooks(test_count_malloc, test_count_free);
    int before = test_mallocs;
    for (int i = 0; i < 200; i++)
        client_batch_append(&buf, payload, (size_t)(i * 37) % sizeof payload, (uint64_t)i);
    ck_assert_int_eq(test_mallocs - before, 0);
    size_t off = 0, plen;
    Pulsar__Proto__SingleMessageMetadata *smm;
    const uint8_t *pl;
    for (int i = 0; i < 200; i++) {
        ck_assert_int_eq(client_batch_next(buf.data, buf.len, &off, &smm, &pl, &plen), 1);
        ck_assert_uint_eq(plen, (size_t)(i * 37) % sizeof payload);
        ck_assert_uint_eq(smm->sequence_id, (uint64_t)i);
        ck_assert_uint_eq(smm->n_properties, 0);
        pulsar__proto__single_message_metadata__free_unpacked(smm, NULL);
    }
    client_buf_fini(&buf);
}
END_TEST
#define TEST_BATCH_NO_ALLOC , test_batch_append_no_alloc
#else
#define TEST_BATCH_NO_ALLOC /* counted only where the sanitizer runtime reports allocations */
#endif

int main(void)
{
    return tl_main(
        "client",
        TL_CASES(
            {"fake_broker", 30, setup, teardown,
             TL_TESTS(test_handshake_lookup_producer, test_connect_refused, test_not_a_broker,
                      test_lookup_redirect, test_lookup_failed, test_producer_batches,
                      test_batch_frame_takes_buffer, test_producer_single_and_send_error,
                      test_producer_reconnects_and_resends, test_producer_free_cancels,
                      test_consumer, test_producer_compression, test_consumer_decompresses,
                      test_partitions, test_topics_of_namespace, test_request_times_out,
                      test_producer_chunking, test_consumer_chunks, test_consumer_chunks_expire,
                      test_consumer_chunks_expire_timer, test_consumer_chunks_evicted_unacked)},
            {"batch", 0, NULL, NULL, TL_TESTS(test_batch_meta TEST_BATCH_NO_ALLOC)}));
}
