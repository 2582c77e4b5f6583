/*
 * gen_corpus.c - writes the seed corpus of fuzz_frame: a few valid frames of different
 * commands, encoded with the wire module itself.
 *
 * Usage: gen_corpus DIR  (writes DIR/<name>.bin, overwriting). Happy path: one file per
 * seed, exit 0. Failure modes: a file that cannot be written prints the reason, exit 1.
 */
#include "wire/wire.h"

#include <event2/buffer.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static int save(const char *dir, const char *name, struct evbuffer *b)
{
    char path[4096];
    size_t n = evbuffer_get_length(b);
    unsigned char *p = malloc(n + 1);
    int rc = 0;

    snprintf(path, sizeof(path), "%s/%s.bin", dir, name);
    evbuffer_remove(b, p, n);
    FILE *f = fopen(path, "wb");
    if (!f || fwrite(p, 1, n, f) != n) {
        perror(path);
        rc = -1;
    }
    if (f && fclose(f) != 0)
        rc = -1;
    free(p);
    return rc;
}

static void md_init(Pulsar__Proto__MessageMetadata *md, uint64_t seq)
{
    pulsar__proto__message_metadata__init(md);
    md->producer_name = "standalone-0-1";
    md->sequence_id = seq;
    md->publish_time = 1700000000000ull;
}

static void send_init(wire_cmd *cmd, Pulsar__Proto__CommandSend *send, uint64_t seq)
{
    pulsar__proto__base_command__init(cmd);
    pulsar__proto__command_send__init(send);
    send->producer_id = 1;
    send->sequence_id = seq;
    cmd->type = PULSAR__PROTO__BASE_COMMAND__TYPE__SEND;
    cmd->send = send;
}

/* A raw frame [total][cmdSize][cmd][tail] (for layouts wire_write_* never produces). */
static void raw_frame(struct evbuffer *b, const wire_cmd *cmd, const unsigned char *tail,
                      size_t tlen)
{
    size_t n = protobuf_c_message_get_packed_size(&cmd->base);
    unsigned char *p = malloc(8 + n);
    uint32_t total = (uint32_t)(4 + n + tlen);
    p[0] = (unsigned char)(total >> 24);
    p[1] = (unsigned char)(total >> 16);
    p[2] = (unsigned char)(total >> 8);
    p[3] = (unsigned char)total;
    p[4] = (unsigned char)(n >> 24);
    p[5] = (unsigned char)(n >> 16);
    p[6] = (unsigned char)(n >> 8);
    p[7] = (unsigned char)n;
    protobuf_c_message_pack(&cmd->base, p + 8);
    evbuffer_add(b, p, 8 + n);
    evbuffer_add(b, tail, tlen);
    free(p);
}

static size_t md_tail(const Pulsar__Proto__MessageMetadata *md, const char *payload,
                      unsigned char *out)
{
    size_t n = protobuf_c_message_get_packed_size(&md->base);
    out[0] = (unsigned char)(n >> 24);
    out[1] = (unsigned char)(n >> 16);
    out[2] = (unsigned char)(n >> 8);
    out[3] = (unsigned char)n;
    protobuf_c_message_pack(&md->base, out + 4);
    memcpy(out + 4 + n, payload, strlen(payload));
    return 4 + n + strlen(payload);
}

int main(int argc, char **argv)
{
    struct evbuffer *b = evbuffer_new();
    wire_cmd cmd;
    int rc = 0;

    if (argc != 2) {
        fprintf(stderr, "usage: %s DIR\n", argv[0]);
        return 2;
    }
    const char *dir = argv[1];

    Pulsar__Proto__CommandConnect conn;
    pulsar__proto__base_command__init(&cmd);
    pulsar__proto__command_connect__init(&conn);
    conn.client_version = "Pulsar-CPP-v3.5.0";
    conn.has_protocol_version = 1;
    conn.protocol_version = 21;
    cmd.type = PULSAR__PROTO__BASE_COMMAND__TYPE__CONNECT;
    cmd.connect = &conn;
    wire_write_command(b, &cmd);
    rc |= save(dir, "connect", b);

    Pulsar__Proto__CommandProducer prod;
    pulsar__proto__base_command__init(&cmd);
    pulsar__proto__command_producer__init(&prod);
    prod.topic = "persistent://public/default/t";
    prod.producer_id = 1;
    prod.request_id = 2;
    cmd.type = PULSAR__PROTO__BASE_COMMAND__TYPE__PRODUCER;
    cmd.producer = &prod;
    wire_write_command(b, &cmd);
    rc |= save(dir, "producer", b);

    Pulsar__Proto__CommandSubscribe sub;
    pulsar__proto__base_command__init(&cmd);
    pulsar__proto__command_subscribe__init(&sub);
    sub.topic = "persistent://public/default/t";
    sub.subscription = "sub";
    sub.subtype = PULSAR__PROTO__COMMAND_SUBSCRIBE__SUB_TYPE__Key_Shared;
    sub.consumer_id = 3;
    sub.request_id = 4;
    cmd.type = PULSAR__PROTO__BASE_COMMAND__TYPE__SUBSCRIBE;
    cmd.subscribe = &sub;
    wire_write_command(b, &cmd);
    rc |= save(dir, "subscribe", b);

    Pulsar__Proto__CommandFlow flow;
    pulsar__proto__base_command__init(&cmd);
    pulsar__proto__command_flow__init(&flow);
    flow.consumer_id = 3;
    flow.messagepermits = 1000;
    cmd.type = PULSAR__PROTO__BASE_COMMAND__TYPE__FLOW;
    cmd.flow = &flow;
    wire_write_command(b, &cmd);
    rc |= save(dir, "flow", b);

    Pulsar__Proto__CommandPing ping;
    pulsar__proto__base_command__init(&cmd);
    pulsar__proto__command_ping__init(&ping);
    cmd.type = PULSAR__PROTO__BASE_COMMAND__TYPE__PING;
    cmd.ping = &ping;
    wire_write_command(b, &cmd);
    rc |= save(dir, "ping", b);

    Pulsar__Proto__CommandSend send;
    Pulsar__Proto__MessageMetadata md;
    send_init(&cmd, &send, 0);
    md_init(&md, 0);
    wire_write_send(b, &cmd, &md, "hello pulsar", 12);
    rc |= save(dir, "send_checksum", b);

    send_init(&cmd, &send, 10);
    send.has_num_messages = 1;
    send.num_messages = 3;
    md_init(&md, 10);
    md.has_num_messages_in_batch = 1;
    md.num_messages_in_batch = 3;
    md.has_ordering_key = 1;
    md.ordering_key.data = (uint8_t *)"key-1";
    md.ordering_key.len = 5;
    md.partition_key = "a2V5LTE=";
    md.has_partition_key_b64_encoded = 1;
    md.partition_key_b64_encoded = 1;
    md.has_deliver_at_time = 1;
    md.deliver_at_time = 1700000001000;
    /* two batch items: [u32 size][SingleMessageMetadata{payload_size=1}][1 byte] */
    static const unsigned char batch[] = {0, 0, 0, 2, 0x18, 1, 'a', 0, 0, 0, 2, 0x18, 1, 'b'};
    wire_write_send(b, &cmd, &md, batch, sizeof(batch));
    rc |= save(dir, "send_batch_keys", b);

    unsigned char tail[512];
    send_init(&cmd, &send, 20);
    md_init(&md, 20);
    size_t tl = md_tail(&md, "no checksum", tail);
    raw_frame(b, &cmd, tail, tl);
    rc |= save(dir, "send_no_checksum", b);

    Pulsar__Proto__CommandMessage msg;
    Pulsar__Proto__MessageIdData id;
    pulsar__proto__base_command__init(&cmd);
    pulsar__proto__command_message__init(&msg);
    pulsar__proto__message_id_data__init(&id);
    id.ledgerid = 5;
    id.entryid = 6;
    msg.consumer_id = 3;
    msg.message_id = &id;
    cmd.type = PULSAR__PROTO__BASE_COMMAND__TYPE__MESSAGE;
    cmd.message = &msg;
    md_init(&md, 30);
    unsigned char mtail[600];
    static const unsigned char bem[] = {0x0e, 0x02, 0, 0, 0, 4, 0x08, 0x01, 0x10, 0x02};
    memcpy(mtail, bem, sizeof(bem));
    mtail[sizeof(bem)] = 0x0e;
    mtail[sizeof(bem) + 1] = 0x01;
    tl = md_tail(&md, "delivered", mtail + sizeof(bem) + 6);
    /* checksum left as zero: a mismatch the decoder must report, not reject */
    memset(mtail + sizeof(bem) + 2, 0, 4);
    raw_frame(b, &cmd, mtail, sizeof(bem) + 6 + tl);
    rc |= save(dir, "message_broker_entry_metadata", b);

    Pulsar__Proto__CommandAck ack;
    Pulsar__Proto__MessageIdData *ids[1] = {&id};
    pulsar__proto__base_command__init(&cmd);
    pulsar__proto__command_ack__init(&ack);
    ack.consumer_id = 3;
    ack.ack_type = PULSAR__PROTO__COMMAND_ACK__ACK_TYPE__Individual;
    ack.n_message_id = 1;
    ack.message_id = ids;
    cmd.type = PULSAR__PROTO__BASE_COMMAND__TYPE__ACK;
    cmd.ack = &ack;
    wire_write_command(b, &cmd);
    rc |= save(dir, "ack", b);

    /* Several frames back to back. */
    pulsar__proto__base_command__init(&cmd);
    cmd.type = PULSAR__PROTO__BASE_COMMAND__TYPE__PING;
    cmd.ping = &ping;
    wire_write_command(b, &cmd);
    send_init(&cmd, &send, 40);
    md_init(&md, 40);
    wire_write_send(b, &cmd, &md, "x", 1);
    pulsar__proto__base_command__init(&cmd);
    cmd.type = PULSAR__PROTO__BASE_COMMAND__TYPE__FLOW;
    cmd.flow = &flow;
    wire_write_command(b, &cmd);
    rc |= save(dir, "three_frames", b);

    evbuffer_free(b);
    return rc == 0 ? 0 : 1;
}
