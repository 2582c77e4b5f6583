/*
 * check_conn.c - the connection state machine over a real loopback socket.
 *
 * Each test starts the whole service (svc_new with ports 0, in-memory storage) on its own
 * event loop and talks to it through a plain non-blocking socket, pumping the loop between
 * writes and reads. It checks the handshake, keep-alive answers, lookups, produce and
 * consume round trips, and that bad input closes only the offending connection.
 */
#include "config/cfg.h"
#include "ns/ns.h"
#include "svc/svc.h"
#include "topic/topic.h"
#include "util/alloc.h"
#include "util/err.h"
#include "util/log.h"
#include "wire/wire.h"

#include <arpa/inet.h>
#include <check.h>
#include <errno.h>
#include <event2/buffer.h>
#include <event2/event.h>
#include <netinet/in.h>
#include <poll.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

struct fixture {
    struct cfg cfg;
    struct event_base *base;
    struct svc *svc;
};

static struct fixture fx;

static void setup(void)
{
    mg_log_set_level(MG_LOG_ERROR);
    cfg_init(&fx.cfg);
    char err[256];
    ck_assert_int_eq(cfg_set(&fx.cfg, "bindAddress", "127.0.0.1", "test", err, sizeof err), 0);
    ck_assert_int_eq(cfg_set(&fx.cfg, "advertisedAddress", "127.0.0.1", "test", err, sizeof err),
                     0);
    ck_assert_int_eq(cfg_set(&fx.cfg, "brokerServicePort", "0", "test", err, sizeof err), 0);
    ck_assert_int_eq(cfg_set(&fx.cfg, "webServicePort", "0", "test", err, sizeof err), 0);
    ck_assert_int_eq(cfg_set(&fx.cfg, "managedLedgerStore", "memory", "test", err, sizeof err), 0);
    ck_assert_int_eq(cfg_set(&fx.cfg, "maxMessageSize", "65536", "test", err, sizeof err), 0);
    fx.base = event_base_new();
    fx.svc = svc_new(fx.base, &fx.cfg, NULL);
    ck_assert_ptr_nonnull(fx.svc);
}

static void teardown(void)
{
    svc_free(fx.svc);
    event_base_free(fx.base);
    cfg_fini(&fx.cfg);
}

static void pump(int rounds)
{
    for (int i = 0; i < rounds; i++) {
        event_base_loop(fx.base, EVLOOP_NONBLOCK);
        usleep(1000);
    }
}

static int client_connect(void)
{
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    ck_assert_int_ge(fd, 0);
    struct sockaddr_in sin;
    memset(&sin, 0, sizeof sin);
    sin.sin_family = AF_INET;
    sin.sin_port = htons((uint16_t)svc_broker_port(fx.svc));
    inet_pton(AF_INET, "127.0.0.1", &sin.sin_addr);
    ck_assert_int_eq(connect(fd, (struct sockaddr *)&sin, sizeof sin), 0);
    pump(5);
    return fd;
}

static void client_write(int fd, struct evbuffer *b)
{
    while (evbuffer_get_length(b) > 0) {
        ssize_t n = evbuffer_write(b, fd);
        if (n < 0 && errno != EAGAIN)
            ck_abort_msg("write failed: %s", strerror(errno));
        pump(1);
    }
}

static void send_cmd(int fd, wire_cmd *cmd)
{
    struct evbuffer *b = evbuffer_new();
    wire_write_command(b, cmd);
    client_write(fd, b);
    evbuffer_free(b);
}

/* Read frames until one of type `want` arrives (others are skipped); bounded. Returns 1
 * with *f filled, 0 if the connection was closed, -1 on timeout. */
static int read_frame(int fd, struct evbuffer *in, int want, struct wire_frame *f)
{
    for (int i = 0; i < 2000; i++) {
        memset(f, 0, sizeof *f);
        char err[128];
        int rc = wire_frame_read(in, 1 << 24, f, err, sizeof err);
        ck_assert_int_ge(rc, 0);
        if (rc == 1) {
            if ((int)f->cmd->type == want)
                return 1;
            wire_frame_clear(f);
            continue;
        }
        pump(1);
        char buf[65536];
        ssize_t n = recv(fd, buf, sizeof buf, MSG_DONTWAIT);
        if (n == 0)
            return 0;
        if (n > 0)
            evbuffer_add(in, buf, (size_t)n);
    }
    return -1;
}

/* Is the peer closed? Pumps the loop a bounded number of times. */
static bool closed_by_broker(int fd)
{
    for (int i = 0; i < 2000; i++) {
        pump(1);
        char buf[4096];
        ssize_t n = recv(fd, buf, sizeof buf, MSG_DONTWAIT);
        if (n == 0)
            return true;
        if (n < 0 && errno != EAGAIN && errno != EWOULDBLOCK)
            return true;
    }
    return false;
}

static void handshake(int fd, struct evbuffer *in)
{
    Pulsar__Proto__CommandConnect c = PULSAR__PROTO__COMMAND_CONNECT__INIT;
    c.client_version = "check";
    c.has_protocol_version = 1;
    c.protocol_version = 17;
    wire_cmd cmd = PULSAR__PROTO__BASE_COMMAND__INIT;
    cmd.type = PULSAR__PROTO__BASE_COMMAND__TYPE__CONNECT;
    cmd.connect = &c;
    send_cmd(fd, &cmd);
    struct wire_frame f;
    ck_assert_int_eq(read_frame(fd, in, PULSAR__PROTO__BASE_COMMAND__TYPE__CONNECTED, &f), 1);
    ck_assert_str_eq(f.cmd->connected->server_version, "magnetar " PACKAGE_VERSION);
    ck_assert_int_eq(f.cmd->connected->protocol_version, 17);
    ck_assert_int_eq(f.cmd->connected->max_message_size, 65536);
    wire_frame_clear(&f);
}

START_TEST(test_handshake_and_ping)
{
    int fd = client_connect();
    struct evbuffer *in = evbuffer_new();
    handshake(fd, in);
    Pulsar__Proto__CommandPing p = PULSAR__PROTO__COMMAND_PING__INIT;
    wire_cmd cmd = PULSAR__PROTO__BASE_COMMAND__INIT;
    cmd.type = PULSAR__PROTO__BASE_COMMAND__TYPE__PING;
    cmd.ping = &p;
    send_cmd(fd, &cmd);
    struct wire_frame f;
    ck_assert_int_eq(read_frame(fd, in, PULSAR__PROTO__BASE_COMMAND__TYPE__PONG, &f), 1);
    wire_frame_clear(&f);
    close(fd);
    evbuffer_free(in);
}
END_TEST

START_TEST(test_first_frame_must_be_connect)
{
    int fd = client_connect();
    Pulsar__Proto__CommandPing p = PULSAR__PROTO__COMMAND_PING__INIT;
    wire_cmd cmd = PULSAR__PROTO__BASE_COMMAND__INIT;
    cmd.type = PULSAR__PROTO__BASE_COMMAND__TYPE__PING;
    cmd.ping = &p;
    send_cmd(fd, &cmd);
    ck_assert(closed_by_broker(fd));
    close(fd);
}
END_TEST

START_TEST(test_garbage_closes_only_that_connection)
{
    int good = client_connect();
    struct evbuffer *in = evbuffer_new();
    handshake(good, in);
    int bad = client_connect();
    struct evbuffer *g = evbuffer_new();
    const char junk[] = "\x00\x00\x00\x10GET / HTTP/1.1\r\n\r\n";
    evbuffer_add(g, junk, sizeof junk - 1);
    client_write(bad, g);
    ck_assert(closed_by_broker(bad));
    /* oversized declared length */
    int big = client_connect();
    uint8_t hdr[4] = {0x7f, 0xff, 0xff, 0xff};
    evbuffer_add(g, hdr, 4);
    client_write(big, g);
    ck_assert(closed_by_broker(big));
    evbuffer_free(g);
    /* the good connection still answers */
    Pulsar__Proto__CommandPing p = PULSAR__PROTO__COMMAND_PING__INIT;
    wire_cmd cmd = PULSAR__PROTO__BASE_COMMAND__INIT;
    cmd.type = PULSAR__PROTO__BASE_COMMAND__TYPE__PING;
    cmd.ping = &p;
    send_cmd(good, &cmd);
    struct wire_frame f;
    ck_assert_int_eq(read_frame(good, in, PULSAR__PROTO__BASE_COMMAND__TYPE__PONG, &f), 1);
    wire_frame_clear(&f);
    close(good);
    close(bad);
    close(big);
    evbuffer_free(in);
}
END_TEST

START_TEST(test_lookup_and_partitioned_metadata)
{
    int fd = client_connect();
    struct evbuffer *in = evbuffer_new();
    handshake(fd, in);
    Pulsar__Proto__CommandLookupTopic l = PULSAR__PROTO__COMMAND_LOOKUP_TOPIC__INIT;
    l.topic = "my-topic";
    l.request_id = 7;
    wire_cmd cmd = PULSAR__PROTO__BASE_COMMAND__INIT;
    cmd.type = PULSAR__PROTO__BASE_COMMAND__TYPE__LOOKUP;
    cmd.lookuptopic = &l;
    send_cmd(fd, &cmd);
    struct wire_frame f;
    ck_assert_int_eq(read_frame(fd, in, PULSAR__PROTO__BASE_COMMAND__TYPE__LOOKUP_RESPONSE, &f), 1);
    Pulsar__Proto__CommandLookupTopicResponse *r = f.cmd->lookuptopicresponse;
    ck_assert_int_eq(r->request_id, 7);
    ck_assert_int_eq(r->response,
                     PULSAR__PROTO__COMMAND_LOOKUP_TOPIC_RESPONSE__LOOKUP_TYPE__Connect);
    ck_assert(r->authoritative);
    char want[64];
    snprintf(want, sizeof want, "pulsar://127.0.0.1:%d", svc_broker_port(fx.svc));
    ck_assert_str_eq(r->brokerserviceurl, want);
    wire_frame_clear(&f);

    /* a lookup in a namespace that does not exist fails with an error set */
    l.topic = "persistent://nope/none/t";
    l.request_id = 8;
    send_cmd(fd, &cmd);
    ck_assert_int_eq(read_frame(fd, in, PULSAR__PROTO__BASE_COMMAND__TYPE__LOOKUP_RESPONSE, &f), 1);
    ck_assert_int_eq(f.cmd->lookuptopicresponse->response,
                     PULSAR__PROTO__COMMAND_LOOKUP_TOPIC_RESPONSE__LOOKUP_TYPE__Failed);
    ck_assert(f.cmd->lookuptopicresponse->has_error);
    wire_frame_clear(&f);

    ck_assert_int_eq(
        ns_partitions_set(svc_ns(fx.svc), "persistent://public/default/parts", 3, true, NULL, NULL),
        0);
    Pulsar__Proto__CommandPartitionedTopicMetadata pm =
        PULSAR__PROTO__COMMAND_PARTITIONED_TOPIC_METADATA__INIT;
    pm.topic = "parts";
    pm.request_id = 9;
    wire_cmd pcmd = PULSAR__PROTO__BASE_COMMAND__INIT;
    pcmd.type = PULSAR__PROTO__BASE_COMMAND__TYPE__PARTITIONED_METADATA;
    pcmd.partitionmetadata = &pm;
    send_cmd(fd, &pcmd);
    ck_assert_int_eq(
        read_frame(fd, in, PULSAR__PROTO__BASE_COMMAND__TYPE__PARTITIONED_METADATA_RESPONSE, &f),
        1);
    ck_assert_int_eq(f.cmd->partitionmetadataresponse->partitions, 3);
    ck_assert(f.cmd->partitionmetadataresponse->has_response);
    wire_frame_clear(&f);
    close(fd);
    evbuffer_free(in);
}
END_TEST

static void create_producer(int fd, struct evbuffer *in, const char *topic)
{
    Pulsar__Proto__CommandProducer p = PULSAR__PROTO__COMMAND_PRODUCER__INIT;
    p.topic = (char *)topic;
    p.producer_id = 1;
    p.request_id = 2;
    wire_cmd cmd = PULSAR__PROTO__BASE_COMMAND__INIT;
    cmd.type = PULSAR__PROTO__BASE_COMMAND__TYPE__PRODUCER;
    cmd.producer = &p;
    send_cmd(fd, &cmd);
    struct wire_frame f;
    ck_assert_int_eq(read_frame(fd, in, PULSAR__PROTO__BASE_COMMAND__TYPE__PRODUCER_SUCCESS, &f),
                     1);
    ck_assert_int_eq(f.cmd->producer_success->request_id, 2);
    ck_assert_ptr_nonnull(f.cmd->producer_success->producer_name);
    ck_assert(strlen(f.cmd->producer_success->producer_name) > 0);
    wire_frame_clear(&f);
}

static void send_message(int fd, uint64_t seq, const char *payload, bool corrupt)
{
    Pulsar__Proto__MessageMetadata md = PULSAR__PROTO__MESSAGE_METADATA__INIT;
    md.producer_name = "p";
    md.sequence_id = seq;
    md.publish_time = 1000 + seq;
    Pulsar__Proto__CommandSend s = PULSAR__PROTO__COMMAND_SEND__INIT;
    s.producer_id = 1;
    s.sequence_id = seq;
    wire_cmd cmd = PULSAR__PROTO__BASE_COMMAND__INIT;
    cmd.type = PULSAR__PROTO__BASE_COMMAND__TYPE__SEND;
    cmd.send = &s;
    struct evbuffer *b = evbuffer_new();
    wire_write_send(b, &cmd, &md, payload, strlen(payload));
    if (corrupt) {
        /* flip the last payload byte: the checksum no longer matches */
        size_t n = evbuffer_get_length(b);
        uint8_t *all = evbuffer_pullup(b, -1);
        all[n - 1] ^= 0xff;
    }
    client_write(fd, b);
    evbuffer_free(b);
}

START_TEST(test_produce_consume_round_trip)
{
    int fd = client_connect();
    struct evbuffer *in = evbuffer_new();
    handshake(fd, in);
    Pulsar__Proto__CommandSubscribe sub = PULSAR__PROTO__COMMAND_SUBSCRIBE__INIT;
    sub.topic = "round-trip";
    sub.subscription = "s";
    sub.subtype = PULSAR__PROTO__COMMAND_SUBSCRIBE__SUB_TYPE__Exclusive;
    sub.consumer_id = 5;
    sub.request_id = 3;
    wire_cmd cmd = PULSAR__PROTO__BASE_COMMAND__INIT;
    cmd.type = PULSAR__PROTO__BASE_COMMAND__TYPE__SUBSCRIBE;
    cmd.subscribe = &sub;
    send_cmd(fd, &cmd);
    struct wire_frame f;
    ck_assert_int_eq(read_frame(fd, in, PULSAR__PROTO__BASE_COMMAND__TYPE__SUCCESS, &f), 1);
    ck_assert_int_eq(f.cmd->success->request_id, 3);
    wire_frame_clear(&f);

    create_producer(fd, in, "round-trip");
    for (uint64_t seq = 0; seq < 3; seq++) {
        char payload[32];
        snprintf(payload, sizeof payload, "message-%d", (int)seq);
        send_message(fd, seq, payload, false);
        ck_assert_int_eq(read_frame(fd, in, PULSAR__PROTO__BASE_COMMAND__TYPE__SEND_RECEIPT, &f),
                         1);
        ck_assert_int_eq(f.cmd->send_receipt->sequence_id, seq);
        ck_assert_int_eq(f.cmd->send_receipt->producer_id, 1);
        ck_assert_ptr_nonnull(f.cmd->send_receipt->message_id);
        wire_frame_clear(&f);
    }
    /* a corrupted message is refused with ChecksumError and not stored */
    send_message(fd, 3, "corrupted", true);
    ck_assert_int_eq(read_frame(fd, in, PULSAR__PROTO__BASE_COMMAND__TYPE__SEND_ERROR, &f), 1);
    ck_assert_int_eq(f.cmd->send_error->error, PULSAR__PROTO__SERVER_ERROR__ChecksumError);
    ck_assert_int_eq(f.cmd->send_error->sequence_id, 3);
    wire_frame_clear(&f);

    /* nothing is dispatched before FLOW: with 2 permits exactly 2 messages come */
    Pulsar__Proto__CommandFlow fl = PULSAR__PROTO__COMMAND_FLOW__INIT;
    fl.consumer_id = 5;
    fl.messagepermits = 2;
    wire_cmd fcmd = PULSAR__PROTO__BASE_COMMAND__INIT;
    fcmd.type = PULSAR__PROTO__BASE_COMMAND__TYPE__FLOW;
    fcmd.flow = &fl;
    send_cmd(fd, &fcmd);
    for (int i = 0; i < 2; i++) {
        ck_assert_int_eq(read_frame(fd, in, PULSAR__PROTO__BASE_COMMAND__TYPE__MESSAGE, &f), 1);
        ck_assert_int_eq(f.cmd->message->consumer_id, 5);
        ck_assert_ptr_nonnull(f.payload);
        struct wire_msg_info info;
        ck_assert_int_eq(wire_entry_parse(f.payload, &info), 0);
        ck_assert_int_eq(info.sequence_id, (uint64_t)i);
        ck_assert(f.checksum_ok);
        wire_frame_clear(&f);
    }
    pump(50);
    char buf[256];
    ck_assert_int_lt(recv(fd, buf, sizeof buf, MSG_DONTWAIT), 0); /* no third message */
    close(fd);
    evbuffer_free(in);
}
END_TEST

START_TEST(test_send_for_unknown_producer_closes)
{
    int fd = client_connect();
    struct evbuffer *in = evbuffer_new();
    handshake(fd, in);
    send_message(fd, 0, "orphan", false);
    ck_assert(closed_by_broker(fd));
    close(fd);
    evbuffer_free(in);
}
END_TEST

START_TEST(test_second_exclusive_consumer_refused)
{
    int fd = client_connect();
    struct evbuffer *in = evbuffer_new();
    handshake(fd, in);
    Pulsar__Proto__CommandSubscribe sub = PULSAR__PROTO__COMMAND_SUBSCRIBE__INIT;
    sub.topic = "exclusive";
    sub.subscription = "s";
    sub.subtype = PULSAR__PROTO__COMMAND_SUBSCRIBE__SUB_TYPE__Exclusive;
    sub.consumer_id = 1;
    sub.request_id = 1;
    wire_cmd cmd = PULSAR__PROTO__BASE_COMMAND__INIT;
    cmd.type = PULSAR__PROTO__BASE_COMMAND__TYPE__SUBSCRIBE;
    cmd.subscribe = &sub;
    send_cmd(fd, &cmd);
    struct wire_frame f;
    ck_assert_int_eq(read_frame(fd, in, PULSAR__PROTO__BASE_COMMAND__TYPE__SUCCESS, &f), 1);
    wire_frame_clear(&f);
    sub.consumer_id = 2;
    sub.request_id = 2;
    send_cmd(fd, &cmd);
    ck_assert_int_eq(read_frame(fd, in, PULSAR__PROTO__BASE_COMMAND__TYPE__ERROR, &f), 1);
    ck_assert_int_eq(f.cmd->error->request_id, 2);
    ck_assert_int_eq(f.cmd->error->error, PULSAR__PROTO__SERVER_ERROR__ConsumerBusy);
    wire_frame_clear(&f);
    close(fd);
    evbuffer_free(in);
}
END_TEST

/* Send cmd with every "@" of its packed bytes replaced by a NUL (protobuf-c packs C strings,
 * so a string holding a NUL is made after packing; the lengths do not change). */
static void send_cmd_nul(int fd, wire_cmd *cmd)
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
    client_write(fd, b);
    evbuffer_free(b);
}

static void expect_error(int fd, struct evbuffer *in, uint64_t request_id, int error)
{
    struct wire_frame f;
    ck_assert_int_eq(read_frame(fd, in, PULSAR__PROTO__BASE_COMMAND__TYPE__ERROR, &f), 1);
    ck_assert_int_eq(f.cmd->error->request_id, request_id);
    ck_assert_int_eq(f.cmd->error->error, error);
    wire_frame_clear(&f);
}

/* A topic name holding a NUL byte or a control character, or too long, is refused with
 * InvalidTopicName on every command that names a topic; nothing is served under the name
 * cut at the NUL, and the connection goes on. */
START_TEST(test_bad_topic_names_refused)
{
    int fd = client_connect();
    struct evbuffer *in = evbuffer_new();
    handshake(fd, in);
    const char *nul_name = "persistent://public/default/a@b";
    struct wire_frame f;

    Pulsar__Proto__CommandLookupTopic l = PULSAR__PROTO__COMMAND_LOOKUP_TOPIC__INIT;
    l.topic = (char *)nul_name;
    l.request_id = 11;
    wire_cmd cmd = PULSAR__PROTO__BASE_COMMAND__INIT;
    cmd.type = PULSAR__PROTO__BASE_COMMAND__TYPE__LOOKUP;
    cmd.lookuptopic = &l;
    send_cmd_nul(fd, &cmd);
    ck_assert_int_eq(read_frame(fd, in, PULSAR__PROTO__BASE_COMMAND__TYPE__LOOKUP_RESPONSE, &f), 1);
    ck_assert_int_eq(f.cmd->lookuptopicresponse->request_id, 11);
    ck_assert_int_eq(f.cmd->lookuptopicresponse->response,
                     PULSAR__PROTO__COMMAND_LOOKUP_TOPIC_RESPONSE__LOOKUP_TYPE__Failed);
    ck_assert_int_eq(f.cmd->lookuptopicresponse->error,
                     PULSAR__PROTO__SERVER_ERROR__InvalidTopicName);
    wire_frame_clear(&f);

    Pulsar__Proto__CommandPartitionedTopicMetadata pm =
        PULSAR__PROTO__COMMAND_PARTITIONED_TOPIC_METADATA__INIT;
    pm.topic = (char *)nul_name;
    pm.request_id = 12;
    wire_cmd pcmd = PULSAR__PROTO__BASE_COMMAND__INIT;
    pcmd.type = PULSAR__PROTO__BASE_COMMAND__TYPE__PARTITIONED_METADATA;
    pcmd.partitionmetadata = &pm;
    send_cmd_nul(fd, &pcmd);
    ck_assert_int_eq(
        read_frame(fd, in, PULSAR__PROTO__BASE_COMMAND__TYPE__PARTITIONED_METADATA_RESPONSE, &f),
        1);
    ck_assert_int_eq(f.cmd->partitionmetadataresponse->request_id, 12);
    ck_assert_int_eq(
        f.cmd->partitionmetadataresponse->response,
        PULSAR__PROTO__COMMAND_PARTITIONED_TOPIC_METADATA_RESPONSE__LOOKUP_TYPE__Failed);
    ck_assert_int_eq(f.cmd->partitionmetadataresponse->error,
                     PULSAR__PROTO__SERVER_ERROR__InvalidTopicName);
    wire_frame_clear(&f);

    Pulsar__Proto__CommandProducer pr = PULSAR__PROTO__COMMAND_PRODUCER__INIT;
    pr.topic = (char *)nul_name;
    pr.producer_id = 1;
    pr.request_id = 13;
    wire_cmd prcmd = PULSAR__PROTO__BASE_COMMAND__INIT;
    prcmd.type = PULSAR__PROTO__BASE_COMMAND__TYPE__PRODUCER;
    prcmd.producer = &pr;
    send_cmd_nul(fd, &prcmd);
    expect_error(fd, in, 13, PULSAR__PROTO__SERVER_ERROR__InvalidTopicName);

    Pulsar__Proto__CommandSubscribe sub = PULSAR__PROTO__COMMAND_SUBSCRIBE__INIT;
    sub.topic = (char *)nul_name;
    sub.subscription = "s";
    sub.consumer_id = 1;
    sub.request_id = 14;
    wire_cmd scmd = PULSAR__PROTO__BASE_COMMAND__INIT;
    scmd.type = PULSAR__PROTO__BASE_COMMAND__TYPE__SUBSCRIBE;
    scmd.subscribe = &sub;
    send_cmd_nul(fd, &scmd);
    expect_error(fd, in, 14, PULSAR__PROTO__SERVER_ERROR__InvalidTopicName);
    pump(20);
    ck_assert_ptr_null(topic_find(svc_topics(fx.svc), "persistent://public/default/a"));

    /* a control character, and a name over the length bound */
    pr.topic = "persistent://public/default/a\x01"
               "b";
    pr.request_id = 15;
    send_cmd(fd, &prcmd);
    expect_error(fd, in, 15, PULSAR__PROTO__SERVER_ERROR__InvalidTopicName);
    char *longname = mg_malloc(TOPIC_NAME_MAX_LEN + 2);
    memset(longname, 'x', TOPIC_NAME_MAX_LEN + 1);
    longname[TOPIC_NAME_MAX_LEN + 1] = '\0';
    pr.topic = longname;
    pr.request_id = 16;
    send_cmd(fd, &prcmd);
    expect_error(fd, in, 16, PULSAR__PROTO__SERVER_ERROR__InvalidTopicName);
    mg_free(longname);

    /* the connection goes on */
    Pulsar__Proto__CommandPing p = PULSAR__PROTO__COMMAND_PING__INIT;
    wire_cmd ping = PULSAR__PROTO__BASE_COMMAND__INIT;
    ping.type = PULSAR__PROTO__BASE_COMMAND__TYPE__PING;
    ping.ping = &p;
    send_cmd(fd, &ping);
    ck_assert_int_eq(read_frame(fd, in, PULSAR__PROTO__BASE_COMMAND__TYPE__PONG, &f), 1);
    wire_frame_clear(&f);
    close(fd);
    evbuffer_free(in);
}
END_TEST

static Suite *conn_suite(void)
{
    Suite *s = suite_create("conn");
    TCase *tc = tcase_create("core");
    tcase_add_checked_fixture(tc, setup, teardown);
    tcase_set_timeout(tc, 30);
    tcase_add_test(tc, test_handshake_and_ping);
    tcase_add_test(tc, test_first_frame_must_be_connect);
    tcase_add_test(tc, test_garbage_closes_only_that_connection);
    tcase_add_test(tc, test_lookup_and_partitioned_metadata);
    tcase_add_test(tc, test_produce_consume_round_trip);
    tcase_add_test(tc, test_send_for_unknown_producer_closes);
    tcase_add_test(tc, test_second_exclusive_consumer_refused);
    tcase_add_test(tc, test_bad_topic_names_refused);
    suite_add_tcase(s, tc);
    return s;
}

int main(void)
{
    SRunner *sr = srunner_create(conn_suite());
    srunner_run_all(sr, CK_NORMAL);
    int failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}
