/*
 * check_svc.c - the service on a real loopback socket: where the point is the socket.
 *
 * Each test starts the whole service (tl_svc.h: svc_new with ports 0, in-memory storage) on
 * its own loop, in this thread, and talks to it through socket peers of the test library
 * (tl_pulsar.h) on the same loop: every wait runs the loop until the frame is there or a
 * deadline passes; nothing waits a fixed time before an assert.
 *
 * It checks that an accepted connection answers LOOKUP with the bound port, and
 * connectionMaxOutboundBytes against a consumer that stops reading: the kernel's socket
 * buffers fill, the connection's queue passes the bound and dispatch stops, so the broker
 * does not buffer what the client does not read; once the client reads, every message comes.
 */
#include "lib/tl.h"
#include "lib/tl_pulsar.h"
#include "lib/tl_svc.h"
#include "svc/svc.h"
#include "topic/topic.h"
#include "util/alloc.h"
#include "wire/wire.h"

#include <check.h>
#include <event2/bufferevent.h>
#include <event2/event.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>

#define T(x) PULSAR__PROTO__BASE_COMMAND__TYPE__##x

static struct tl_svc fx;

static void setup(void)
{
    tl_svc_init(&fx);
}

static void teardown(void)
{
    tl_svc_fini(&fx);
}

/* A client of the service (rcvbuf > 0: that receive buffer, set before connecting), past
 * its handshake at protocol version 21. */
static void client_connect(struct tl_peer *p, int rcvbuf)
{
    tl_peer_open(p, fx.base, tl_connect_fd(svc_broker_port(fx.svc[0]), rcvbuf));
    tl_peer_handshake(p, 21, NULL);
}

START_TEST(test_accept_and_lookup_url)
{
    tl_svc_start(&fx, 0);
    struct tl_peer p;
    client_connect(&p, 0);
    tl_send_lookup(&p, "my-topic", 7, false);
    struct wire_frame f;
    tl_peer_expect(&p, T(LOOKUP_RESPONSE), &f);
    ck_assert_uint_eq(f.cmd->lookuptopicresponse->request_id, 7);
    ck_assert_int_eq(f.cmd->lookuptopicresponse->response,
                     PULSAR__PROTO__COMMAND_LOOKUP_TOPIC_RESPONSE__LOOKUP_TYPE__Connect);
    char want[64];
    snprintf(want, sizeof want, "pulsar://127.0.0.1:%d", svc_broker_port(fx.svc[0]));
    ck_assert_str_eq(f.cmd->lookuptopicresponse->brokerserviceurl, want);
    ck_assert_ptr_null(f.cmd->lookuptopicresponse->brokerserviceurltls); /* TLS off */
    wire_frame_clear(&f);
    tl_peer_close(&p);
}
END_TEST

/* With brokerServicePortTls on, a lookup's answer also carries brokerServiceUrlTls (as
 * Pulsar's: both URLs whenever the broker has them), so a pulsar+ssl:// client follows it;
 * --port-file's svc_broker_port_tls is the bound TLS port. */
START_TEST(test_lookup_url_tls)
{
    char *dir = tl_tmpdir("check_svc_tls");
    char *cmd = mg_asprintf("openssl req -x509 -newkey rsa:2048 -nodes -days 1 -subj /CN=t "
                            "-keyout %s/k.pem -out %s/c.pem >/dev/null 2>&1",
                            dir, dir);
    ck_assert_msg(system(cmd) == 0, "openssl failed: %s", cmd);
    char *cert = mg_asprintf("%s/c.pem", dir), *key = mg_asprintf("%s/k.pem", dir);
    tl_cfg_set(&fx.cfg, "brokerServicePortTls", "0");
    tl_cfg_set(&fx.cfg, "tlsCertificateFilePath", cert);
    tl_cfg_set(&fx.cfg, "tlsKeyFilePath", key);
    tl_svc_start(&fx, 0);
    int tls_port = svc_broker_port_tls(fx.svc[0]);
    ck_assert_int_gt(tls_port, 0);
    ck_assert_int_ne(tls_port, svc_broker_port(fx.svc[0]));
    ck_assert_int_eq(svc_web_port_tls(fx.svc[0]), -1); /* not set: off */
    struct tl_peer p;
    client_connect(&p, 0);
    tl_send_lookup(&p, "my-topic", 8, false);
    struct wire_frame f;
    tl_peer_expect(&p, T(LOOKUP_RESPONSE), &f);
    char want[64];
    snprintf(want, sizeof want, "pulsar+ssl://127.0.0.1:%d", tls_port);
    ck_assert_ptr_nonnull(f.cmd->lookuptopicresponse->brokerserviceurltls);
    ck_assert_str_eq(f.cmd->lookuptopicresponse->brokerserviceurltls, want);
    wire_frame_clear(&f);
    tl_peer_close(&p);
    tl_rm_rf(dir);
    mg_free(cmd);
    mg_free(cert);
    mg_free(key);
    mg_free(dir);
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
    struct topic *t = topic_find(svc_topics(fx.svc[0]), topic);
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
    tl_cfg_set(&fx.cfg, "connectionMaxOutboundBytes", "65536");
    tl_svc_start(&fx, 0);
    const char *topic = "persistent://public/default/socket-outbound";
    struct tl_peer cons, prod;
    client_connect(&cons, 4096);
    client_connect(&prod, 0);
    size_t slack = socket_slack(bufferevent_getfd(cons.bev));
    /* enough to overflow the socket and the bound several times over */
    int n = (int)((2 * (slack + BOUND)) / SIZE) + 50;
    tl_send_subscribe(&cons, topic, "s", 1, 1, NULL);
    tl_expect_success(&cons, 1);
    tl_send_flow(&cons, 1, (uint32_t)n);
    tl_passes(fx.base, 1);                  /* the FLOW leaves */
    bufferevent_disable(cons.bev, EV_READ); /* from here on the consumer reads nothing */

    tl_send_producer(&prod, topic, 1, 2);
    struct wire_frame f;
    tl_peer_expect(&prod, T(PRODUCER_SUCCESS), &f);
    wire_frame_clear(&f);
    char *payload = mg_malloc(SIZE);
    memset(payload, 'p', SIZE);
    for (int i = 0; i < n; i++) {
        tl_send_send(&prod, 1, (uint64_t)i, payload, SIZE);
        tl_peer_expect(&prod, T(SEND_RECEIPT), &f);
        ck_assert_uint_eq(f.cmd->send_receipt->sequence_id, (uint64_t)i);
        wire_frame_clear(&f);
    }
    mg_free(payload);
    event_base_loop(fx.base, EVLOOP_NONBLOCK); /* everything stored; nothing more to do */
    int64_t out = dispatched(topic);
    size_t limit = (BOUND + slack) / SIZE + 2;
    ck_assert_msg(out < n && (size_t)out <= limit,
                  "%lld of %d messages dispatched to a client that reads nothing (at most %zu "
                  "fit in the bound and the socket)",
                  (long long)out, n, limit);
    /* the client reads again: every message comes, in order */
    bufferevent_enable(cons.bev, EV_READ);
    for (int i = 0; i < n; i++) {
        tl_peer_expect(&cons, T(MESSAGE), &f);
        struct wire_msg_info info;
        ck_assert_int_eq(wire_entry_parse(f.payload, &info), 0);
        ck_assert_uint_eq(info.sequence_id, (uint64_t)i);
        wire_frame_clear(&f);
    }
    ck_assert_int_eq(dispatched(topic), n);
    tl_peer_close(&cons);
    tl_peer_close(&prod);
}
END_TEST

int main(void)
{
    Suite *s = suite_create("svc");
    TCase *tc = tl_tcase(s, "socket", 60, setup, teardown);
    tl_add(tc, test_accept_and_lookup_url, test_lookup_url_tls, test_socket_outbound_backpressure);
    return tl_run(s);
}
