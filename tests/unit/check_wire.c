/*
 * check_wire.c - unit tests of the wire module (Pulsar framing codec).
 *
 * Covers: encode/decode round trips, frames split at every byte boundary, checksum
 * verification and insertion, size limits checked before buffering, malformed frames,
 * back-to-back frames, stored-entry metadata parsing (batching, Key_Shared key hashes),
 * MESSAGE encoding by reference, Murmur3_32 and CRC32C known vectors.
 * Failure modes: each test asserts with Check; run with CK_FORK=no under ASan.
 */
#include "lib/tl_pulsar.h"
#include "util/bytes.h"
#include "util/crc.h"
#include "util/err.h"
#include "wire/wire.h"

#include <check.h>
#include <event2/buffer.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define MAX_FRAME (WIRE_DEFAULT_MAX_MESSAGE_SIZE + WIRE_FRAME_PADDING)

/* Flatten a whole evbuffer into a malloc'd copy (test helper only). */
static uint8_t *flat(struct evbuffer *b, size_t *len)
{
    *len = evbuffer_get_length(b);
    uint8_t *p = malloc(*len ? *len : 1);
    ck_assert_ptr_nonnull(p);
    ck_assert_int_eq(evbuffer_copyout(b, p, *len), (ev_ssize_t)*len);
    return p;
}

static void init_md(Pulsar__Proto__MessageMetadata *md, uint64_t seq)
{
    tl_pulsar_md(md, "standalone-0-1", seq, 1700000000000ull + seq);
}

/* init_md for a batch of n messages whose last has sequence id highest, delivered at
 * deliver_at (ms). */
static void init_batch_md(Pulsar__Proto__MessageMetadata *md, uint64_t seq, int32_t n,
                          uint64_t highest, int64_t deliver_at)
{
    init_md(md, seq);
    md->has_num_messages_in_batch = 1;
    md->num_messages_in_batch = n;
    md->has_highest_sequence_id = 1;
    md->highest_sequence_id = highest;
    md->has_deliver_at_time = 1;
    md->deliver_at_time = deliver_at;
}

static void init_send(wire_cmd *cmd, Pulsar__Proto__CommandSend *send, uint64_t seq)
{
    pulsar__proto__command_send__init(send);
    send->producer_id = 7;
    send->sequence_id = seq;
    tl_cmd_set(*cmd, SEND, send, *send);
}

static void write_send(struct evbuffer *out, uint64_t seq, const char *payload)
{
    wire_cmd cmd;
    Pulsar__Proto__CommandSend send;
    Pulsar__Proto__MessageMetadata md;
    init_send(&cmd, &send, seq);
    init_md(&md, seq);
    wire_write_send(out, &cmd, &md, payload, strlen(payload));
}

/* The frame's payload (its stored entry) is exactly the len bytes of want. */
static void ck_payload(const struct wire_frame *f, const void *want, size_t len)
{
    size_t plen;
    uint8_t *p = flat(f->payload, &plen);
    ck_assert_uint_eq(plen, len);
    ck_assert_mem_eq(p, want, len);
    free(p);
}

/* The bytes of a SEND frame (write_send's) in a malloc'd copy; its length in *len. */
static uint8_t *send_bytes(uint64_t seq, const char *payload, size_t *len)
{
    struct evbuffer *b = evbuffer_new();
    write_send(b, seq, payload);
    uint8_t *bytes = flat(b, len);
    evbuffer_free(b);
    return bytes;
}

/* Append a raw frame: [total][cmdSize][cmd bytes][tail bytes]. */
static void write_raw(struct evbuffer *out, const wire_cmd *cmd, const void *tail, size_t tlen)
{
    size_t n = protobuf_c_message_get_packed_size(&cmd->base);
    uint8_t *buf = malloc(8 + n);
    ck_assert_ptr_nonnull(buf);
    mg_put_be32(buf, (uint32_t)(4 + n + tlen));
    mg_put_be32(buf + 4, (uint32_t)n);
    protobuf_c_message_pack(&cmd->base, buf + 8);
    evbuffer_add(out, buf, 8 + n);
    if (tlen)
        evbuffer_add(out, tail, tlen);
    free(buf);
}

/* [mdSize][md][payload] for the given metadata. */
static size_t md_tail(const Pulsar__Proto__MessageMetadata *md, const char *payload, uint8_t *out)
{
    size_t n = protobuf_c_message_get_packed_size(&md->base);
    mg_put_be32(out, (uint32_t)n);
    protobuf_c_message_pack(&md->base, out + 4);
    memcpy(out + 4 + n, payload, strlen(payload));
    return 4 + n + strlen(payload);
}

/* Append a MESSAGE frame (an empty message id) whose bytes after the command are tail. */
static void write_message_raw(struct evbuffer *out, const void *tail, size_t tlen)
{
    wire_cmd cmd;
    Pulsar__Proto__CommandMessage msg;
    Pulsar__Proto__MessageIdData id;
    pulsar__proto__command_message__init(&msg);
    pulsar__proto__message_id_data__init(&id);
    msg.message_id = &id;
    tl_cmd_set(cmd, MESSAGE, message, msg);
    write_raw(out, &cmd, tail, tlen);
}

/* A broker entry metadata section (8 bytes) + 0x0e01 + CRC32C + tail into out (room for
 * 14 + tlen bytes); returns the length. */
static const uint8_t test_bem[] = {0x0e, 0x02, 0x00, 0x00, 0x00, 0x02, 0x08, 0x05};
static size_t bem_frame_tail(uint8_t *out, const uint8_t *tail, size_t tlen)
{
    memcpy(out, test_bem, sizeof(test_bem));
    mg_put_be16(out + 8, WIRE_MAGIC_CHECKSUM);
    mg_put_be32(out + 10, mg_crc32c(0, tail, tlen));
    memcpy(out + 14, tail, tlen);
    return 14 + tlen;
}

static int read_one(struct evbuffer *in, struct wire_frame *f)
{
    char err[128] = "";
    return wire_frame_read(in, MAX_FRAME, f, err, sizeof(err));
}

START_TEST(test_roundtrip_commands)
{
    struct evbuffer *b = evbuffer_new();
    struct wire_frame f;
    wire_cmd cmd;

    /* CONNECT */
    Pulsar__Proto__CommandConnect conn;
    pulsar__proto__command_connect__init(&conn);
    conn.client_version = "Pulsar-CPP-v3.5";
    conn.has_protocol_version = 1;
    conn.protocol_version = 21;
    tl_cmd_set(cmd, CONNECT, connect, conn);
    wire_write_command(b, &cmd);
    size_t wrote = evbuffer_get_length(b);
    ck_assert_int_eq(read_one(b, &f), 1);
    ck_assert_uint_eq(f.frame_size, wrote);
    ck_assert_uint_eq(evbuffer_get_length(b), 0);
    ck_assert_int_eq(f.cmd->type, PULSAR__PROTO__BASE_COMMAND__TYPE__CONNECT);
    ck_assert_str_eq(f.cmd->connect->client_version, "Pulsar-CPP-v3.5");
    ck_assert_int_eq(f.cmd->connect->protocol_version, 21);
    ck_assert_ptr_null(f.payload);
    wire_frame_clear(&f);
    ck_assert_ptr_null(f.cmd);

    /* FLOW */
    Pulsar__Proto__CommandFlow flow;
    pulsar__proto__command_flow__init(&flow);
    flow.consumer_id = 42;
    flow.messagepermits = 1000;
    tl_cmd_set(cmd, FLOW, flow, flow);
    wire_write_command(b, &cmd);
    ck_assert_int_eq(read_one(b, &f), 1);
    ck_assert_int_eq(f.cmd->type, PULSAR__PROTO__BASE_COMMAND__TYPE__FLOW);
    ck_assert_uint_eq(f.cmd->flow->consumer_id, 42);
    ck_assert_uint_eq(f.cmd->flow->messagepermits, 1000);
    wire_frame_clear(&f);

    /* SEND_ERROR */
    Pulsar__Proto__CommandSendError se;
    pulsar__proto__command_send_error__init(&se);
    se.producer_id = 3;
    se.sequence_id = 99;
    se.error = PULSAR__PROTO__SERVER_ERROR__ChecksumError;
    se.message = "checksum mismatch";
    tl_cmd_set(cmd, SEND_ERROR, send_error, se);
    wire_write_command(b, &cmd);
    ck_assert_int_eq(read_one(b, &f), 1);
    ck_assert_uint_eq(f.cmd->send_error->sequence_id, 99);
    ck_assert_int_eq(f.cmd->send_error->error, PULSAR__PROTO__SERVER_ERROR__ChecksumError);
    ck_assert_str_eq(f.cmd->send_error->message, "checksum mismatch");
    wire_frame_clear(&f);

    /* PING (empty sub-message: the frame is still 4+cmdSize) */
    Pulsar__Proto__CommandPing ping;
    pulsar__proto__command_ping__init(&ping);
    tl_cmd_set(cmd, PING, ping, ping);
    wire_write_command(b, &cmd);
    ck_assert_int_eq(read_one(b, &f), 1);
    ck_assert_int_eq(f.cmd->type, PULSAR__PROTO__BASE_COMMAND__TYPE__PING);
    ck_assert_ptr_nonnull(f.cmd->ping);
    wire_frame_clear(&f);

    /* SEND via wire_write_send */
    write_send(b, 5, "hello");
    ck_assert_int_eq(read_one(b, &f), 1);
    ck_assert_int_eq(f.cmd->type, PULSAR__PROTO__BASE_COMMAND__TYPE__SEND);
    ck_assert_uint_eq(f.cmd->send->producer_id, 7);
    ck_assert_uint_eq(f.cmd->send->sequence_id, 5);
    ck_assert(f.had_checksum);
    ck_assert(f.checksum_ok);
    ck_assert_ptr_nonnull(f.payload);
    size_t plen;
    uint8_t *p = flat(f.payload, &plen);
    ck_assert_uint_eq(p[0], 0x0e);
    ck_assert_uint_eq(p[1], 0x01);
    ck_assert_mem_eq(p + plen - 5, "hello", 5);
    free(p);
    struct wire_msg_info info;
    ck_assert_int_eq(wire_entry_parse(f.payload, &info), 0);
    ck_assert_uint_eq(info.sequence_id, 5);
    ck_assert_uint_eq(info.publish_time, 1700000000005ull);
    wire_frame_clear(&f);

    /* A parseable type the module does not know is not an error here. */
    pulsar__proto__base_command__init(&cmd);
    cmd.type = (Pulsar__Proto__BaseCommand__Type)50;
    wire_write_command(b, &cmd);
    ck_assert_int_eq(read_one(b, &f), 1);
    ck_assert_int_eq(f.cmd->type, 50);
    wire_frame_clear(&f);

    ck_assert_int_eq(read_one(b, &f), 0);
    evbuffer_free(b);
}
END_TEST

/* The topic-list watcher commands are laid out as Pulsar's PulsarApi.proto has them
 * (BaseCommand fields 64-67; the sub-messages' field numbers): bytes written by hand. */
START_TEST(test_watch_commands_layout)
{
    struct evbuffer *b = evbuffer_new();
    struct wire_frame f;
    /* WATCH_TOPIC_LIST {request_id 1, watcher_id 2, namespace "t/n", pattern "p", hash "x"} */
    static const uint8_t watch[] = {0x08, 0x40, 0x82, 0x04, 0x0f, 0x08, 0x01, 0x10, 0x02, 0x1a,
                                    0x03, 't',  '/',  'n',  0x22, 0x01, 'p',  0x2a, 0x01, 'x'};
    uint8_t hdr[8];
    mg_put_be32(hdr, 4 + sizeof watch);
    mg_put_be32(hdr + 4, sizeof watch);
    evbuffer_add(b, hdr, sizeof hdr);
    evbuffer_add(b, watch, sizeof watch);
    ck_assert_int_eq(read_one(b, &f), 1);
    ck_assert_int_eq(f.cmd->type, PULSAR__PROTO__BASE_COMMAND__TYPE__WATCH_TOPIC_LIST);
    const Pulsar__Proto__CommandWatchTopicList *w = f.cmd->watchtopiclist;
    ck_assert_ptr_nonnull(w);
    ck_assert_uint_eq(w->request_id, 1);
    ck_assert_uint_eq(w->watcher_id, 2);
    ck_assert_str_eq(w->namespace_, "t/n");
    ck_assert_str_eq(w->topics_pattern, "p");
    ck_assert_str_eq(w->topics_hash, "x");
    wire_frame_clear(&f);

    /* WATCH_TOPIC_UPDATE {watcher_id 7, new_topics ["a"], topics_hash "h"} as we write it */
    Pulsar__Proto__CommandWatchTopicUpdate u = PULSAR__PROTO__COMMAND_WATCH_TOPIC_UPDATE__INIT;
    char *a = "a";
    u.watcher_id = 7;
    u.n_new_topics = 1;
    u.new_topics = &a;
    u.topics_hash = "h";
    wire_cmd cmd;
    tl_cmd_set(cmd, WATCH_TOPIC_UPDATE, watchtopicupdate, u);
    wire_write_command(b, &cmd);
    static const uint8_t update[] = {0x08, 0x42, 0x92, 0x04, 0x08, 0x08, 0x07,
                                     0x12, 0x01, 'a',  0x22, 0x01, 'h'};
    size_t len;
    uint8_t *got = flat(b, &len);
    ck_assert_uint_eq(len, 8 + sizeof update);
    ck_assert_mem_eq(got + 8, update, sizeof update);
    free(got);
    evbuffer_free(b);
}
END_TEST

START_TEST(test_send_split_every_byte)
{
    size_t len;
    uint8_t *bytes = send_bytes(11, "payload bytes of a split frame", &len);
    uint32_t cmd_size = mg_get_be32(bytes + 4);
    size_t pay_off = 8 + cmd_size;

    for (size_t k = 1; k < len; k++) {
        struct evbuffer *in = evbuffer_new();
        struct wire_frame f;
        evbuffer_add(in, bytes, k);
        ck_assert_int_eq(read_one(in, &f), 0);
        ck_assert_uint_eq(evbuffer_get_length(in), k);
        evbuffer_add(in, bytes + k, len - k);
        ck_assert_int_eq(read_one(in, &f), 1);
        ck_assert_uint_eq(evbuffer_get_length(in), 0);
        ck_assert_uint_eq(f.frame_size, len);
        ck_assert(f.checksum_ok);
        ck_payload(&f, bytes + pay_off, len - pay_off);
        ck_assert_uint_eq(f.cmd->send->sequence_id, 11);
        wire_frame_clear(&f);
        evbuffer_free(in);
    }

    /* One byte at a time into the same buffer (many small chains). */
    struct evbuffer *in = evbuffer_new();
    struct wire_frame f;
    for (size_t k = 0; k + 1 < len; k++) {
        evbuffer_add(in, bytes + k, 1);
        ck_assert_int_eq(read_one(in, &f), 0);
    }
    evbuffer_add(in, bytes + len - 1, 1);
    ck_assert_int_eq(read_one(in, &f), 1);
    ck_assert(f.checksum_ok);
    ck_assert_uint_eq(evbuffer_get_length(f.payload), len - pay_off);
    wire_frame_clear(&f);
    evbuffer_free(in);
    free(bytes);
}
END_TEST

START_TEST(test_bad_checksum)
{
    struct evbuffer *b = evbuffer_new();
    size_t len;
    uint8_t *bytes = send_bytes(1, "abcdef", &len);
    bytes[len - 1] ^= 0x20; /* flip a payload bit */
    evbuffer_add(b, bytes, len);
    struct wire_frame f;
    ck_assert_int_eq(read_one(b, &f), 1);
    ck_assert(f.had_checksum);
    ck_assert(!f.checksum_ok);
    wire_frame_clear(&f);

    /* Payload intact again, the checksum itself corrupted (magic at +0, crc at +2). */
    bytes[len - 1] ^= 0x20;
    bytes[8 + mg_get_be32(bytes + 4) + 3] ^= 0x01;
    evbuffer_add(b, bytes, len);
    ck_assert_int_eq(read_one(b, &f), 1);
    ck_assert(f.had_checksum);
    ck_assert(!f.checksum_ok);
    wire_frame_clear(&f);
    free(bytes);
    evbuffer_free(b);
}
END_TEST

START_TEST(test_no_checksum_gets_one)
{
    wire_cmd cmd;
    Pulsar__Proto__CommandSend send;
    Pulsar__Proto__MessageMetadata md;
    uint8_t tail[256];
    init_send(&cmd, &send, 3);
    init_md(&md, 3);
    size_t tlen = md_tail(&md, "no checksum here", tail);

    struct evbuffer *b = evbuffer_new();
    write_raw(b, &cmd, tail, tlen);
    struct wire_frame f;
    ck_assert_int_eq(read_one(b, &f), 1);
    ck_assert(!f.had_checksum);
    ck_assert(f.checksum_ok);
    size_t plen;
    uint8_t *p = flat(f.payload, &plen);
    ck_assert_uint_eq(plen, 6 + tlen);
    ck_assert_uint_eq(p[0], 0x0e);
    ck_assert_uint_eq(p[1], 0x01);
    ck_assert_uint_eq(mg_get_be32(p + 2), mg_crc32c(0, tail, tlen));
    ck_assert_mem_eq(p + 6, tail, tlen);
    free(p);

    /* The stored form now decodes as a checksummed MESSAGE. */
    struct evbuffer *out = evbuffer_new();
    wire_write_message(out, f.cmd, f.payload);
    struct wire_frame g;
    ck_assert_int_eq(read_one(out, &g), 1);
    ck_assert(g.had_checksum);
    ck_assert(g.checksum_ok);
    wire_frame_clear(&g);
    wire_frame_clear(&f);
    evbuffer_free(out);
    evbuffer_free(b);
}
END_TEST

START_TEST(test_too_big)
{
    struct evbuffer *b = evbuffer_new();
    struct wire_frame f;
    char err[128] = "";
    uint8_t h[4];

    mg_put_be32(h, 0x7fffffff);
    evbuffer_add(b, h, 4);
    ck_assert_int_eq(wire_frame_read(b, MAX_FRAME, &f, err, sizeof(err)), -MG_ETOOBIG);
    ck_assert(err[0] != '\0');
    ck_assert_uint_eq(evbuffer_get_length(b), 4);
    ck_assert_ptr_null(f.cmd);
    evbuffer_drain(b, 4);

    /* Exactly the limit is allowed (and waits), one more is not. */
    mg_put_be32(h, 1000);
    evbuffer_add(b, h, 4);
    ck_assert_int_eq(wire_frame_read(b, 1000, &f, err, sizeof(err)), 0);
    ck_assert_int_eq(wire_frame_read(b, 999, &f, err, sizeof(err)), -MG_ETOOBIG);
    evbuffer_free(b);
}
END_TEST

static void expect_proto(const uint8_t *bytes, size_t len)
{
    struct evbuffer *b = evbuffer_new();
    struct wire_frame f;
    char err[128] = "";
    evbuffer_add(b, bytes, len);
    ck_assert_int_eq(wire_frame_read(b, MAX_FRAME, &f, err, sizeof(err)), -MG_EPROTO);
    ck_assert_msg(err[0] != '\0', "no errmsg");
    ck_assert_uint_eq(evbuffer_get_length(b), len);
    ck_assert_ptr_null(f.cmd);
    ck_assert_ptr_null(f.payload);
    evbuffer_free(b);
}

static void expect_proto_buf(struct evbuffer *b)
{
    size_t len;
    uint8_t *p = flat(b, &len);
    expect_proto(p, len);
    free(p);
    evbuffer_drain(b, len);
}

START_TEST(test_garbage)
{
    uint8_t buf[128];

    /* An unparsable command: field 31 with invalid wire type 7. */
    mg_put_be32(buf, 64);
    mg_put_be32(buf + 4, 60);
    memset(buf + 8, 0xff, 60);
    expect_proto(buf, 68);

    /* Random bytes with a plausible header (deterministic seed); the command bytes begin
     * with an invalid tag (field 0) so the frame can never parse. */
    srand(12345);
    for (int round = 0; round < 50; round++) {
        mg_put_be32(buf, 100);
        mg_put_be32(buf + 4, 60);
        for (int i = 8; i < 104; i++)
            buf[i] = (uint8_t)rand();
        buf[8] = 0x00;
        expect_proto(buf, 104);
    }

    /* cmdSize 0 */
    mg_put_be32(buf, 10);
    mg_put_be32(buf + 4, 0);
    expect_proto(buf, 8);
    /* cmdSize > totalSize - 4 (detected from the first 8 bytes) */
    mg_put_be32(buf, 10);
    mg_put_be32(buf + 4, 7);
    expect_proto(buf, 8);
    /* totalSize too small for any command */
    mg_put_be32(buf, 2);
    expect_proto(buf, 4);

    struct evbuffer *b = evbuffer_new();
    wire_cmd cmd;

    /* payload on a PING */
    Pulsar__Proto__CommandPing ping;
    pulsar__proto__command_ping__init(&ping);
    tl_cmd_set(cmd, PING, ping, ping);
    write_raw(b, &cmd, "xyz", 3);
    expect_proto_buf(b);

    /* SEND without its sub-message */
    pulsar__proto__base_command__init(&cmd);
    cmd.type = PULSAR__PROTO__BASE_COMMAND__TYPE__SEND;
    write_raw(b, &cmd, NULL, 0);
    expect_proto_buf(b);

    /* FLOW without its sub-message */
    pulsar__proto__base_command__init(&cmd);
    cmd.type = PULSAR__PROTO__BASE_COMMAND__TYPE__FLOW;
    write_raw(b, &cmd, NULL, 0);
    expect_proto_buf(b);

    /* SEND with no payload part at all */
    Pulsar__Proto__CommandSend send;
    init_send(&cmd, &send, 1);
    write_raw(b, &cmd, NULL, 0);
    expect_proto_buf(b);

    /* SEND whose metadataSize is larger than what remains */
    Pulsar__Proto__MessageMetadata md;
    init_md(&md, 1);
    size_t tlen = md_tail(&md, "p", buf);
    mg_put_be32(buf, (uint32_t)tlen);
    write_raw(b, &cmd, buf, tlen);
    expect_proto_buf(b);

    /* SEND with a checksum magic but truncated checksum */
    const uint8_t trunc[] = {0x0e, 0x01, 0x00};
    write_raw(b, &cmd, trunc, sizeof(trunc));
    expect_proto_buf(b);

    /* SEND with unparsable metadata (missing required fields) */
    const uint8_t badmd[] = {0x00, 0x00, 0x00, 0x02, 0x10, 0x01, 'x'};
    write_raw(b, &cmd, badmd, sizeof(badmd));
    expect_proto_buf(b);

    evbuffer_free(b);
}
END_TEST

START_TEST(test_back_to_back)
{
    struct evbuffer *b = evbuffer_new();
    wire_cmd cmd;
    Pulsar__Proto__CommandPing ping;
    Pulsar__Proto__CommandPong pong;
    struct wire_frame f;

    pulsar__proto__command_ping__init(&ping);
    tl_cmd_set(cmd, PING, ping, ping);
    wire_write_command(b, &cmd);
    write_send(b, 100, "first");
    write_send(b, 101, "second");
    pulsar__proto__command_pong__init(&pong);
    tl_cmd_set(cmd, PONG, pong, pong);
    wire_write_command(b, &cmd);
    /* and half of a third SEND */
    size_t tl;
    uint8_t *t = send_bytes(102, "third", &tl);
    evbuffer_add(b, t, tl / 2);

    ck_assert_int_eq(read_one(b, &f), 1);
    ck_assert_int_eq(f.cmd->type, PULSAR__PROTO__BASE_COMMAND__TYPE__PING);
    wire_frame_clear(&f);
    ck_assert_int_eq(read_one(b, &f), 1);
    ck_assert_uint_eq(f.cmd->send->sequence_id, 100);
    size_t plen;
    uint8_t *p = flat(f.payload, &plen);
    ck_assert_mem_eq(p + plen - 5, "first", 5);
    free(p);
    wire_frame_clear(&f);
    ck_assert_int_eq(read_one(b, &f), 1);
    ck_assert_uint_eq(f.cmd->send->sequence_id, 101);
    p = flat(f.payload, &plen);
    ck_assert_mem_eq(p + plen - 6, "second", 6);
    free(p);
    wire_frame_clear(&f);
    ck_assert_int_eq(read_one(b, &f), 1);
    ck_assert_int_eq(f.cmd->type, PULSAR__PROTO__BASE_COMMAND__TYPE__PONG);
    wire_frame_clear(&f);
    ck_assert_int_eq(read_one(b, &f), 0);
    ck_assert_uint_eq(evbuffer_get_length(b), tl / 2);
    evbuffer_add(b, t + tl / 2, tl - tl / 2);
    ck_assert_int_eq(read_one(b, &f), 1);
    ck_assert_uint_eq(f.cmd->send->sequence_id, 102);
    wire_frame_clear(&f);
    ck_assert_uint_eq(evbuffer_get_length(b), 0);
    free(t);
    evbuffer_free(b);
}
END_TEST

/* Build a stored entry (0x0e01 + crc + mdSize + md + payload) from md via a SEND frame. */
static struct evbuffer *entry_from(const Pulsar__Proto__MessageMetadata *md, const char *payload)
{
    return tl_pulsar_entry(md, payload, strlen(payload));
}

static uint32_t key_hash(const void *k, size_t n)
{
    return (wire_murmur3_32(k, n, 0) & 0x7fffffffu) % 65536u;
}

/* The chunk key of a stored entry with uuid, chunk id and chunk count (num 0: not a chunk). */
static uint32_t chunk_key_of(const char *uuid, int32_t id, int32_t num)
{
    Pulsar__Proto__MessageMetadata md;
    struct wire_msg_info info;
    init_md(&md, 1);
    md.uuid = (char *)uuid;
    md.has_chunk_id = num > 0;
    md.chunk_id = id;
    md.has_num_chunks_from_msg = num > 0;
    md.num_chunks_from_msg = num;
    struct evbuffer *e = entry_from(&md, "chunk");
    ck_assert_int_eq(wire_entry_parse(e, &info), 0);
    evbuffer_free(e);
    ck_assert_int_eq(info.chunk_id, id);
    ck_assert_int_eq(info.num_chunks, num);
    return info.chunk_key;
}

/* Every chunk of one message (one uuid) has the same non-zero key whatever its id; other
 * uuids get other keys; an entry that is no chunk (or a "run" of one) has key 0. */
START_TEST(test_chunk_key)
{
    char uuid[64];
    for (int m = 0; m < 50; m++) {
        snprintf(uuid, sizeof uuid, "producer-%d-%d", m % 7, m * 131);
        int32_t num = 2 + m % 9;
        uint32_t k0 = chunk_key_of(uuid, 0, num);
        ck_assert_uint_ne(k0, 0);
        for (int32_t id = 1; id < num; id++)
            ck_assert_uint_eq(chunk_key_of(uuid, id, num), k0);
        snprintf(uuid, sizeof uuid, "producer-%d-%d", m % 7, m * 131 + 1);
        ck_assert_uint_ne(chunk_key_of(uuid, 0, num), k0);
    }
    ck_assert_uint_eq(chunk_key_of("p-1", 0, 0), 0);
    ck_assert_uint_eq(chunk_key_of("p-1", 0, 1), 0);
    ck_assert_uint_ne(chunk_key_of(NULL, 1, 3), 0); /* no uuid: still a chunk */
}
END_TEST

START_TEST(test_entry_parse)
{
    Pulsar__Proto__MessageMetadata md;
    struct wire_msg_info info;
    struct evbuffer *e;

    /* Non-batched, no key. */
    init_md(&md, 10);
    e = entry_from(&md, "single");
    size_t before_len;
    uint8_t *before = flat(e, &before_len);
    ck_assert_int_eq(wire_entry_parse(e, &info), 0);
    ck_assert(!info.batched);
    ck_assert_int_eq(info.num_messages, 1);
    ck_assert_uint_eq(info.sequence_id, 10);
    ck_assert_uint_eq(info.publish_time, 1700000000010ull);
    ck_assert_uint_eq(info.highest_sequence_id, 0);
    ck_assert_int_eq(info.deliver_at_time, 0);
    ck_assert_uint_eq(info.key_hash, key_hash("NONE_KEY", 8));
    /* entry untouched */
    size_t after_len;
    uint8_t *after = flat(e, &after_len);
    ck_assert_uint_eq(before_len, after_len);
    ck_assert_mem_eq(before, after, before_len);
    free(before);
    free(after);
    evbuffer_free(e);

    /* Batched, with highest id, delay and ordering key (wins over partition key). */
    init_batch_md(&md, 20, 5, 24, 1700000009999ll);
    md.has_ordering_key = 1;
    md.ordering_key.data = (uint8_t *)"order-key";
    md.ordering_key.len = 9;
    md.partition_key = "ignored";
    e = entry_from(&md, "batchbytes");
    ck_assert_int_eq(wire_entry_parse(e, &info), 0);
    ck_assert(info.batched);
    ck_assert_int_eq(info.num_messages, 5);
    ck_assert_uint_eq(info.highest_sequence_id, 24);
    ck_assert_int_eq(info.deliver_at_time, 1700000009999ll);
    ck_assert_uint_eq(info.key_hash, key_hash("order-key", 9));
    evbuffer_free(e);

    /* An empty ordering key is present: it hashes as "" (not as NONE_KEY). */
    init_md(&md, 25);
    md.has_ordering_key = 1;
    md.ordering_key.data = NULL;
    md.ordering_key.len = 0;
    e = entry_from(&md, "x");
    ck_assert_int_eq(wire_entry_parse(e, &info), 0);
    ck_assert_uint_eq(info.key_hash, 0);
    evbuffer_free(e);

    /* Batch of one is still a batch. */
    init_md(&md, 30);
    md.has_num_messages_in_batch = 1;
    md.num_messages_in_batch = 1;
    e = entry_from(&md, "x");
    ck_assert_int_eq(wire_entry_parse(e, &info), 0);
    ck_assert(info.batched);
    ck_assert_int_eq(info.num_messages, 1);
    evbuffer_free(e);

    /* Plain partition key. */
    init_md(&md, 40);
    md.partition_key = "hello";
    e = entry_from(&md, "x");
    ck_assert_int_eq(wire_entry_parse(e, &info), 0);
    ck_assert_uint_eq(info.key_hash, (0x248bfa47u & 0x7fffffffu) % 65536u);
    evbuffer_free(e);

    /* Base64 partition key: "aGVsbG8=" is "hello", so the same hash. */
    init_md(&md, 50);
    md.partition_key = "aGVsbG8=";
    md.has_partition_key_b64_encoded = 1;
    md.partition_key_b64_encoded = 1;
    e = entry_from(&md, "x");
    ck_assert_int_eq(wire_entry_parse(e, &info), 0);
    ck_assert_uint_eq(info.key_hash, key_hash("hello", 5));
    evbuffer_free(e);
    /* Binary key bytes {0x00,0xff,0x10} = "AP8Q". */
    md.partition_key = "AP8Q";
    e = entry_from(&md, "x");
    ck_assert_int_eq(wire_entry_parse(e, &info), 0);
    ck_assert_uint_eq(info.key_hash, key_hash("\x00\xff\x10", 3));
    evbuffer_free(e);

    /* A broker entry metadata prefix is skipped. */
    init_md(&md, 60);
    md.partition_key = "k";
    e = entry_from(&md, "x");
    const uint8_t bem[] = {0x0e, 0x02, 0x00, 0x00, 0x00, 0x02, 0x08, 0x01};
    evbuffer_prepend(e, bem, sizeof(bem));
    ck_assert_int_eq(wire_entry_parse(e, &info), 0);
    ck_assert_uint_eq(info.sequence_id, 60);
    ck_assert_uint_eq(info.key_hash, key_hash("k", 1));
    evbuffer_free(e);

    /* Garbage entries. */
    e = evbuffer_new();
    ck_assert_int_eq(wire_entry_parse(e, &info), -MG_EPROTO);
    evbuffer_add(e, "\x0e\x01\x00\x00\x00\x00\x00\x00\x00\x09zz", 12);
    ck_assert_int_eq(wire_entry_parse(e, &info), -MG_EPROTO);
    evbuffer_free(e);
}
END_TEST

/* The decoder hands down the MessageMetadata it read while checking a SEND (wire_frame.msg),
 * so nobody needs to unpack it again: it is what wire_entry_parse reads from the stored
 * bytes, field for field. */
static void assert_frame_msg(const Pulsar__Proto__MessageMetadata *md)
{
    wire_cmd cmd;
    Pulsar__Proto__CommandSend send;
    struct evbuffer *b = evbuffer_new();
    struct wire_frame f;
    init_send(&cmd, &send, md->sequence_id);
    wire_write_send(b, &cmd, md, "payload", 7);
    ck_assert_int_eq(read_one(b, &f), 1);
    struct wire_msg_info info;
    ck_assert_int_eq(wire_entry_parse(f.payload, &info), 0);
    ck_assert_int_eq(f.msg.num_messages, info.num_messages);
    ck_assert_int_eq(f.msg.batched, info.batched);
    ck_assert_uint_eq(f.msg.publish_time, info.publish_time);
    ck_assert_uint_eq(f.msg.sequence_id, info.sequence_id);
    ck_assert_uint_eq(f.msg.highest_sequence_id, info.highest_sequence_id);
    ck_assert_int_eq(f.msg.deliver_at_time, info.deliver_at_time);
    ck_assert_uint_eq(f.msg.key_hash, info.key_hash);
    /* and the values themselves */
    ck_assert_uint_eq(f.msg.sequence_id, md->sequence_id);
    ck_assert_uint_eq(f.msg.publish_time, md->publish_time);
    ck_assert_int_eq(f.msg.num_messages,
                     md->has_num_messages_in_batch ? md->num_messages_in_batch : 1);
    wire_frame_clear(&f);
    evbuffer_free(b);
}

START_TEST(test_frame_carries_metadata)
{
    Pulsar__Proto__MessageMetadata md;
    init_md(&md, 1);
    assert_frame_msg(&md);
    init_batch_md(&md, 2, 7, 8, 1700000001234ll);
    md.partition_key = "aGVsbG8=";
    md.has_partition_key_b64_encoded = 1;
    md.partition_key_b64_encoded = 1;
    assert_frame_msg(&md);
    ck_assert_uint_ne(key_hash("hello", 5), key_hash("NONE_KEY", 8));
    init_md(&md, 3);
    md.has_ordering_key = 1;
    md.ordering_key.data = (uint8_t *)"order";
    md.ordering_key.len = 5;
    assert_frame_msg(&md);

    /* a command without payload carries none */
    struct evbuffer *b = evbuffer_new();
    wire_cmd cmd;
    pulsar__proto__base_command__init(&cmd);
    Pulsar__Proto__CommandPing ping = PULSAR__PROTO__COMMAND_PING__INIT;
    cmd.type = PULSAR__PROTO__BASE_COMMAND__TYPE__PING;
    cmd.ping = &ping;
    wire_write_command(b, &cmd);
    struct wire_frame f;
    ck_assert_int_eq(read_one(b, &f), 1);
    ck_assert_int_eq(f.msg.num_messages, 0);
    ck_assert_uint_eq(f.msg.sequence_id, 0);
    wire_frame_clear(&f);
    evbuffer_free(b);
}
END_TEST

START_TEST(test_message_encoding)
{
    Pulsar__Proto__MessageMetadata md;
    init_md(&md, 77);
    struct evbuffer *entry = entry_from(&md, "message payload");
    size_t elen;
    uint8_t *ebytes = flat(entry, &elen);

    wire_cmd cmd;
    Pulsar__Proto__CommandMessage msg;
    Pulsar__Proto__MessageIdData id;
    pulsar__proto__command_message__init(&msg);
    id = tl_msg_id(12, 34);
    msg.consumer_id = 5;
    msg.message_id = &id;
    tl_cmd_set(cmd, MESSAGE, message, msg);

    struct evbuffer *out = evbuffer_new();
    wire_write_message(out, &cmd, entry);
    /* The entry is intact and may be freed while out still refers to its bytes. */
    ck_assert_uint_eq(evbuffer_get_length(entry), elen);
    evbuffer_free(entry);

    size_t olen;
    uint8_t *o = flat(out, &olen);
    size_t cmd_size = protobuf_c_message_get_packed_size(&cmd.base);
    ck_assert_uint_eq(olen, 8 + cmd_size + elen);
    ck_assert_uint_eq(mg_get_be32(o), 4 + cmd_size + elen);
    ck_assert_uint_eq(mg_get_be32(o + 4), cmd_size);
    ck_assert_mem_eq(o + 8 + cmd_size, ebytes, elen);
    free(o);

    struct wire_frame f;
    ck_assert_int_eq(read_one(out, &f), 1);
    ck_assert_int_eq(f.cmd->type, PULSAR__PROTO__BASE_COMMAND__TYPE__MESSAGE);
    ck_assert_uint_eq(f.cmd->message->message_id->ledgerid, 12);
    ck_assert_uint_eq(f.cmd->message->message_id->entryid, 34);
    ck_assert(f.had_checksum);
    ck_assert(f.checksum_ok);
    ck_payload(&f, ebytes, elen);

    /* f.payload was moved out of a buffer that referenced the entry, so it holds reference
     * chains (as data through an in-process bufferevent pair would): libevent refuses to
     * reference it again, and wire_write_message copies the bytes instead. */
    struct evbuffer *probe = evbuffer_new();
    ck_assert_int_eq(evbuffer_add_buffer_reference(probe, f.payload), -1);
    evbuffer_free(probe);
    wire_write_message(out, f.cmd, f.payload);
    ck_assert_uint_eq(evbuffer_get_length(f.payload), elen);
    wire_frame_clear(&f);
    ck_assert_int_eq(read_one(out, &f), 1);
    ck_payload(&f, ebytes, elen);
    wire_frame_clear(&f);

    free(ebytes);
    evbuffer_free(out);
}
END_TEST

START_TEST(test_broker_entry_metadata_sections)
{
    wire_cmd cmd;
    Pulsar__Proto__CommandSend send;
    Pulsar__Proto__MessageMetadata md;
    uint8_t tail[256];
    init_send(&cmd, &send, 9);
    init_md(&md, 9);
    size_t n = md_tail(&md, "bem", tail);
    uint8_t frame_tail[300];
    size_t ftl = bem_frame_tail(frame_tail, tail, n);

    /* On a SEND the section is dropped. */
    struct evbuffer *b = evbuffer_new();
    struct wire_frame f;
    write_raw(b, &cmd, frame_tail, ftl);
    ck_assert_int_eq(read_one(b, &f), 1);
    ck_assert(f.checksum_ok);
    ck_payload(&f, frame_tail + sizeof(test_bem), ftl - sizeof(test_bem));
    wire_frame_clear(&f);

    /* On a MESSAGE it is kept in front. */
    write_message_raw(b, frame_tail, ftl);
    ck_assert_int_eq(read_one(b, &f), 1);
    ck_assert(f.checksum_ok);
    ck_payload(&f, frame_tail, ftl);
    wire_frame_clear(&f);
    evbuffer_free(b);
}
END_TEST

/* f->msg's tail CRC is the CRC32C of the payload's bytes after its first prefix bytes (what
 * the storage digest reuses), computed over the bytes as received. */
static void ck_tail_crc(const struct wire_frame *f, size_t prefix)
{
    size_t plen;
    uint8_t *p = flat(f->payload, &plen);
    ck_assert_uint_eq(f->msg.tail_len, plen - prefix);
    ck_assert_uint_eq(f->msg.tail_crc, mg_crc32c(0, p + prefix, plen - prefix));
    free(p);
}

START_TEST(test_frame_tail_crc)
{
    /* A checksummed SEND, the same with a payload bit flipped (the CRC is of the bytes
     * received, not the one sent), one without checksum, and a MESSAGE whose 0x0e02 section
     * stays in front: the tail is always what follows 0x0e01 + CRC. */
    size_t len;
    uint8_t *bytes = send_bytes(5, "the tail of a frame, some bytes long", &len);
    struct evbuffer *b = evbuffer_new();
    struct wire_frame f;
    for (int flip = 0; flip < 2; flip++) {
        bytes[len - 3] ^= (uint8_t)(flip << 4);
        evbuffer_add(b, bytes, len);
        ck_assert_int_eq(read_one(b, &f), 1);
        ck_assert(f.checksum_ok == !flip);
        ck_tail_crc(&f, 6);
        wire_frame_clear(&f);
    }
    free(bytes);

    wire_cmd cmd;
    Pulsar__Proto__CommandSend send;
    Pulsar__Proto__MessageMetadata md;
    uint8_t tail[256], frame_tail[300];
    init_send(&cmd, &send, 3);
    init_md(&md, 3);
    size_t tlen = md_tail(&md, "no checksum sent", tail);
    write_raw(b, &cmd, tail, tlen);
    ck_assert_int_eq(read_one(b, &f), 1);
    ck_assert(!f.had_checksum);
    ck_tail_crc(&f, 6);
    wire_frame_clear(&f);

    write_message_raw(b, frame_tail, bem_frame_tail(frame_tail, tail, tlen));
    ck_assert_int_eq(read_one(b, &f), 1);
    ck_tail_crc(&f, 14);

    /* An entry parsed from storage has computed nothing. */
    struct wire_msg_info info;
    memset(&info, 0xff, sizeof info);
    ck_assert_int_eq(wire_entry_parse(f.payload, &info), 0);
    ck_assert_uint_eq(info.tail_len, 0);
    wire_frame_clear(&f);
    evbuffer_free(b);
}
END_TEST

START_TEST(test_murmur3_vectors)
{
    ck_assert_uint_eq(wire_murmur3_32("", 0, 0), 0);
    ck_assert_uint_eq(wire_murmur3_32("", 0, 1), 0x514e28b7u);
    ck_assert_uint_eq(wire_murmur3_32("", 0, 0xffffffffu), 0x81f16f39u);
    ck_assert_uint_eq(wire_murmur3_32("hello", 5, 0), 0x248bfa47u);
    ck_assert_uint_eq(wire_murmur3_32("abc", 3, 0), 0xb3dd93fau);
    ck_assert_uint_eq(wire_murmur3_32("test", 4, 0), 0xba6bd213u);
    ck_assert_uint_eq(wire_murmur3_32("Hello, world!", 13, 0x9747b28cu), 0x24884cbau);
    ck_assert_uint_eq(wire_murmur3_32("aaaa", 4, 0x9747b28cu), 0x5a97808au);
    ck_assert_uint_eq(
        wire_murmur3_32("The quick brown fox jumps over the lazy dog", 43, 0x9747b28cu),
        0x2fa826cdu);
}
END_TEST

START_TEST(test_crc32c_vector)
{
    ck_assert_uint_eq(mg_crc32c(0, "123456789", 9), 0xe3069283u);
    uint32_t c = mg_crc32c(0, "1234", 4);
    ck_assert_uint_eq(mg_crc32c(c, "56789", 5), 0xe3069283u);
    struct evbuffer *b = evbuffer_new();
    evbuffer_add(b, "xx1234", 6);
    evbuffer_add(b, "56789", 5);
    ck_assert_uint_eq(mg_crc32c_evbuffer(0, b, 2, 9), 0xe3069283u);
    evbuffer_free(b);
}
END_TEST

/* Strings with a NUL byte inside (which protobuf-c's C strings would cut) are reported by
 * field name, also inside nested messages; clean frames report none. */
static const char *nul_field_of(wire_cmd *cmd)
{
    struct evbuffer *b = evbuffer_new();
    wire_write_command(b, cmd);
    size_t n = evbuffer_get_length(b);
    unsigned char *p = evbuffer_pullup(b, (ev_ssize_t)n);
    for (size_t i = 0; i < n; i++)
        if (p[i] == '@')
            p[i] = '\0';
    struct wire_frame f;
    memset(&f, 0, sizeof f);
    char err[128];
    ck_assert_int_eq(wire_frame_read(b, MAX_FRAME, &f, err, sizeof err), 1);
    const char *r = f.nul_string_field;
    wire_frame_clear(&f);
    evbuffer_free(b);
    return r;
}

START_TEST(test_nul_in_string_reported)
{
    Pulsar__Proto__CommandProducer pr = PULSAR__PROTO__COMMAND_PRODUCER__INIT;
    pr.topic = "persistent://t/ns/x";
    pr.producer_id = 1;
    pr.request_id = 2;
    wire_cmd cmd;
    tl_cmd_set(cmd, PRODUCER, producer, pr);
    ck_assert_ptr_null(nul_field_of(&cmd));
    pr.topic = "persistent://t/ns/a@b";
    ck_assert_str_eq(nul_field_of(&cmd), "topic");
    pr.topic = "persistent://t/ns/x";
    pr.producer_name = "p@";
    ck_assert_str_eq(nul_field_of(&cmd), "producer_name");
    /* nested: a metadata key/value of the producer */
    pr.producer_name = NULL;
    Pulsar__Proto__KeyValue kv = PULSAR__PROTO__KEY_VALUE__INIT;
    kv.key = "k";
    kv.value = "v@v";
    Pulsar__Proto__KeyValue *kvs[] = {&kv};
    pr.n_metadata = 1;
    pr.metadata = kvs;
    ck_assert_str_eq(nul_field_of(&cmd), "value");
}
END_TEST

START_TEST(test_command_names)
{
    ck_assert_str_eq(wire_command_name(PULSAR__PROTO__BASE_COMMAND__TYPE__SEND), "SEND");
    ck_assert_str_eq(wire_command_name(PULSAR__PROTO__BASE_COMMAND__TYPE__PRODUCER), "PRODUCER");
    ck_assert_str_eq(wire_command_name(PULSAR__PROTO__BASE_COMMAND__TYPE__TOPIC_MIGRATED),
                     "TOPIC_MIGRATED");
    ck_assert_str_eq(wire_command_name(75), "UNKNOWN");
    ck_assert_str_eq(wire_command_name(-1), "UNKNOWN");
}
END_TEST

static Suite *wire_suite(void)
{
    Suite *s = suite_create("wire");
    TCase *tc = tl_tcase(s, "core", 0, NULL, NULL);
    tl_add(tc, test_roundtrip_commands, test_watch_commands_layout, test_send_split_every_byte,
           test_bad_checksum, test_no_checksum_gets_one, test_too_big, test_garbage,
           test_back_to_back, test_entry_parse, test_chunk_key, test_frame_carries_metadata,
           test_message_encoding, test_broker_entry_metadata_sections, test_frame_tail_crc,
           test_murmur3_vectors, test_crc32c_vector, test_command_names,
           test_nul_in_string_reported);
    return s;
}

int main(void)
{
    return tl_run(wire_suite());
}
