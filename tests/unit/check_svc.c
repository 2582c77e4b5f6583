/*
 * check_svc.c - the service on a real loopback socket: where the point is the socket.
 *
 * Each test starts the whole service (svc_new with ports 0, in-memory storage) on its own
 * loop, in this thread, and talks to it through plain non-blocking sockets. Waiting is
 * poll() on the client's socket with a short timeout between turns of the service's loop,
 * bounded in rounds: nothing waits a fixed time before an assert.
 *
 * It checks that an accepted connection answers LOOKUP with the bound port, and
 * connectionMaxOutboundBytes against a consumer that stops reading: the kernel's socket
 * buffers fill, the connection's queue passes the bound and dispatch stops, so the broker
 * does not buffer what the client does not read; once the client reads, every message comes.
 */
#include "config/cfg.h"
#include "svc/svc.h"
#include "topic/topic.h"
#include "util/log.h"
#include "util/loop.h"
#include "wire/wire.h"

#include <arpa/inet.h>
#include <check.h>
#include <errno.h>
#include <event2/buffer.h>
#include <event2/event.h>
#include <netinet/in.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#define T(x) PULSAR__PROTO__BASE_COMMAND__TYPE__##x

struct fixture {
    struct cfg cfg;
    struct event_base *base;
    struct mg_loop *loop;
    struct svc *svc;
};

static struct fixture fx;

static void cfg_set_ok(const char *k, const char *v)
{
    char err[256];
    ck_assert_msg(cfg_set(&fx.cfg, k, v, "test", err, sizeof err) == 0, "%s", err);
}

static void setup(void)
{
    mg_log_set_level(MG_LOG_ERROR);
    memset(&fx, 0, sizeof fx);
    cfg_init(&fx.cfg);
    cfg_set_ok("bindAddress", "127.0.0.1");
    cfg_set_ok("advertisedAddress", "127.0.0.1");
    cfg_set_ok("brokerServicePort", "0");
    cfg_set_ok("webServicePort", "0");
    cfg_set_ok("managedLedgerStore", "memory");
}

static void start(void)
{
    fx.base = event_base_new();
    fx.loop = mg_loop_new(fx.base);
    fx.svc = svc_new(fx.loop, &fx.cfg, NULL);
    ck_assert_ptr_nonnull(fx.svc);
}

static void teardown(void)
{
    svc_free(fx.svc);
    mg_loop_free(fx.loop);
    if (fx.base)
        event_base_free(fx.base);
    cfg_fini(&fx.cfg);
}

/* One turn of the service's loop, then wait (at most 1 ms) for fd to be readable. */
static void pump(int fd)
{
    event_base_loop(fx.base, EVLOOP_NONBLOCK);
    struct pollfd p = {.fd = fd, .events = POLLIN};
    poll(&p, 1, 1);
}

/* rcvbuf > 0: that receive buffer, set before connecting (it bounds the window). */
static int client_connect(int rcvbuf)
{
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    ck_assert_int_ge(fd, 0);
    if (rcvbuf > 0)
        ck_assert_int_eq(setsockopt(fd, SOL_SOCKET, SO_RCVBUF, &rcvbuf, sizeof rcvbuf), 0);
    struct sockaddr_in sin;
    memset(&sin, 0, sizeof sin);
    sin.sin_family = AF_INET;
    sin.sin_port = htons((uint16_t)svc_broker_port(fx.svc));
    inet_pton(AF_INET, "127.0.0.1", &sin.sin_addr);
    ck_assert_int_eq(connect(fd, (struct sockaddr *)&sin, sizeof sin), 0);
    evutil_make_socket_nonblocking(fd);
    return fd;
}

static void client_write(int fd, struct evbuffer *b)
{
    for (int i = 0; i < 100000 && evbuffer_get_length(b) > 0; i++) {
        if (evbuffer_write(b, fd) < 0 && errno != EAGAIN)
            ck_abort_msg("write failed: %s", strerror(errno));
        pump(fd);
    }
    ck_assert_uint_eq(evbuffer_get_length(b), 0);
}

static void send_cmd(int fd, wire_cmd *cmd)
{
    struct evbuffer *b = evbuffer_new();
    wire_write_command(b, cmd);
    client_write(fd, b);
    evbuffer_free(b);
}

/* The next frame from the broker (bounded wait): 1 with *f, 0 when the broker closed. */
static int read_frame(int fd, struct evbuffer *in, struct wire_frame *f)
{
    for (int i = 0; i < 20000; i++) {
        char err[128] = "";
        int rc = wire_frame_read(in, 1 << 24, f, err, sizeof err);
        ck_assert_msg(rc >= 0, "bad frame: %s", err);
        if (rc == 1)
            return 1;
        char buf[65536];
        ssize_t n = recv(fd, buf, sizeof buf, MSG_DONTWAIT);
        if (n == 0)
            return 0;
        if (n > 0)
            evbuffer_add(in, buf, (size_t)n);
        else
            pump(fd);
    }
    ck_abort_msg("no frame from the broker");
    return -1;
}

static void expect(int fd, struct evbuffer *in, int type, struct wire_frame *f)
{
    ck_assert_int_eq(read_frame(fd, in, f), 1);
    ck_assert_msg((int)f->cmd->type == type, "expected %s, got %s", wire_command_name(type),
                  wire_command_name(f->cmd->type));
}

static void handshake(int fd, struct evbuffer *in)
{
    Pulsar__Proto__CommandConnect c = PULSAR__PROTO__COMMAND_CONNECT__INIT;
    c.client_version = "check";
    c.has_protocol_version = 1;
    c.protocol_version = 21;
    wire_cmd cmd = PULSAR__PROTO__BASE_COMMAND__INIT;
    cmd.type = T(CONNECT);
    cmd.connect = &c;
    send_cmd(fd, &cmd);
    struct wire_frame f;
    expect(fd, in, T(CONNECTED), &f);
    ck_assert_int_eq(f.cmd->connected->protocol_version, 21);
    wire_frame_clear(&f);
}

START_TEST(test_accept_and_lookup_url)
{
    start();
    int fd = client_connect(0);
    struct evbuffer *in = evbuffer_new();
    handshake(fd, in);
    Pulsar__Proto__CommandLookupTopic l = PULSAR__PROTO__COMMAND_LOOKUP_TOPIC__INIT;
    l.topic = "my-topic";
    l.request_id = 7;
    wire_cmd cmd = PULSAR__PROTO__BASE_COMMAND__INIT;
    cmd.type = T(LOOKUP);
    cmd.lookuptopic = &l;
    send_cmd(fd, &cmd);
    struct wire_frame f;
    expect(fd, in, T(LOOKUP_RESPONSE), &f);
    ck_assert_uint_eq(f.cmd->lookuptopicresponse->request_id, 7);
    ck_assert_int_eq(f.cmd->lookuptopicresponse->response,
                     PULSAR__PROTO__COMMAND_LOOKUP_TOPIC_RESPONSE__LOOKUP_TYPE__Connect);
    char want[64];
    snprintf(want, sizeof want, "pulsar://127.0.0.1:%d", svc_broker_port(fx.svc));
    ck_assert_str_eq(f.cmd->lookuptopicresponse->brokerserviceurl, want);
    wire_frame_clear(&f);
    close(fd);
    evbuffer_free(in);
}
END_TEST

/* The most a socket can hold between the broker's queue and the client: the broker's send
 * buffer (it may grow up to tcp_wmem's maximum) and the client's receive buffer. */
static size_t socket_slack(int client_fd)
{
    size_t wmem_max = 4 << 20;
    FILE *f = fopen("/proc/sys/net/ipv4/tcp_wmem", "r");
    if (f) {
        unsigned long lo, def, hi;
        if (fscanf(f, "%lu %lu %lu", &lo, &def, &hi) == 3)
            wmem_max = hi;
        fclose(f);
    }
    int rcv = 0;
    socklen_t len = sizeof rcv;
    ck_assert_int_eq(getsockopt(client_fd, SOL_SOCKET, SO_RCVBUF, &rcv, &len), 0);
    return wmem_max + (size_t)rcv;
}

static int64_t dispatched(const char *topic)
{
    struct topic *t = topic_find(svc_topics(fx.svc), topic);
    ck_assert_ptr_nonnull(t);
    struct topic_stats st;
    topic_get_stats(t, &st);
    return st.msg_out_counter;
}

/* connectionMaxOutboundBytes on a real socket: a consumer with permits for everything stops
 * reading; once the kernel's buffers are full the connection's queue grows past the bound
 * and dispatch stops there, far short of what is stored; when the client reads again,
 * every message arrives in order. */
START_TEST(test_socket_outbound_backpressure)
{
    enum { BOUND = 65536, SIZE = 16384 };
    cfg_set_ok("connectionMaxOutboundBytes", "65536");
    start();
    const char *topic = "persistent://public/default/socket-outbound";
    int cons = client_connect(4096), prod = client_connect(0);
    size_t slack = socket_slack(cons);
    /* enough to overflow the socket and the bound several times over */
    int n = (int)((2 * (slack + BOUND)) / SIZE) + 50;
    struct evbuffer *cin = evbuffer_new(), *pin = evbuffer_new();
    handshake(cons, cin);
    handshake(prod, pin);
    Pulsar__Proto__CommandSubscribe s = PULSAR__PROTO__COMMAND_SUBSCRIBE__INIT;
    s.topic = (char *)topic;
    s.subscription = "s";
    s.consumer_id = 1;
    s.request_id = 1;
    wire_cmd cmd = PULSAR__PROTO__BASE_COMMAND__INIT;
    cmd.type = T(SUBSCRIBE);
    cmd.subscribe = &s;
    send_cmd(cons, &cmd);
    struct wire_frame f;
    expect(cons, cin, T(SUCCESS), &f);
    wire_frame_clear(&f);
    Pulsar__Proto__CommandFlow fl = PULSAR__PROTO__COMMAND_FLOW__INIT;
    fl.consumer_id = 1;
    fl.messagepermits = (uint32_t)n;
    wire_cmd fcmd = PULSAR__PROTO__BASE_COMMAND__INIT;
    fcmd.type = T(FLOW);
    fcmd.flow = &fl;
    send_cmd(cons, &fcmd); /* from here on the consumer reads nothing */

    Pulsar__Proto__CommandProducer p = PULSAR__PROTO__COMMAND_PRODUCER__INIT;
    p.topic = (char *)topic;
    p.producer_id = 1;
    p.request_id = 2;
    wire_cmd pcmd = PULSAR__PROTO__BASE_COMMAND__INIT;
    pcmd.type = T(PRODUCER);
    pcmd.producer = &p;
    send_cmd(prod, &pcmd);
    expect(prod, pin, T(PRODUCER_SUCCESS), &f);
    wire_frame_clear(&f);
    char *payload = malloc(SIZE);
    memset(payload, 'p', SIZE);
    for (int i = 0; i < n; i++) {
        Pulsar__Proto__MessageMetadata md = PULSAR__PROTO__MESSAGE_METADATA__INIT;
        md.producer_name = "p";
        md.sequence_id = (uint64_t)i;
        md.publish_time = 1;
        Pulsar__Proto__CommandSend sd = PULSAR__PROTO__COMMAND_SEND__INIT;
        sd.producer_id = 1;
        sd.sequence_id = (uint64_t)i;
        wire_cmd scmd = PULSAR__PROTO__BASE_COMMAND__INIT;
        scmd.type = T(SEND);
        scmd.send = &sd;
        struct evbuffer *b = evbuffer_new();
        wire_write_send(b, &scmd, &md, payload, SIZE);
        client_write(prod, b);
        evbuffer_free(b);
        expect(prod, pin, T(SEND_RECEIPT), &f);
        ck_assert_uint_eq(f.cmd->send_receipt->sequence_id, (uint64_t)i);
        wire_frame_clear(&f);
    }
    free(payload);
    event_base_loop(fx.base, EVLOOP_NONBLOCK); /* everything stored; nothing more to do */
    int64_t out = dispatched(topic);
    size_t limit = (BOUND + slack) / SIZE + 2;
    ck_assert_msg(out < n && (size_t)out <= limit,
                  "%lld of %d messages dispatched to a client that reads nothing (at most %zu "
                  "fit in the bound and the socket)",
                  (long long)out, n, limit);
    /* the client reads again: every message comes, in order */
    for (int i = 0; i < n; i++) {
        expect(cons, cin, T(MESSAGE), &f);
        struct wire_msg_info info;
        ck_assert_int_eq(wire_entry_parse(f.payload, &info), 0);
        ck_assert_uint_eq(info.sequence_id, (uint64_t)i);
        wire_frame_clear(&f);
    }
    ck_assert_int_eq(dispatched(topic), n);
    close(cons);
    close(prod);
    evbuffer_free(cin);
    evbuffer_free(pin);
}
END_TEST

static Suite *svc_suite(void)
{
    Suite *s = suite_create("svc");
    TCase *tc = tcase_create("socket");
    tcase_add_checked_fixture(tc, setup, teardown);
    tcase_set_timeout(tc, 60);
    tcase_add_test(tc, test_accept_and_lookup_url);
    tcase_add_test(tc, test_socket_outbound_backpressure);
    suite_add_tcase(s, tc);
    return s;
}

int main(void)
{
    SRunner *sr = srunner_create(svc_suite());
    srunner_run_all(sr, CK_NORMAL);
    int failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}
