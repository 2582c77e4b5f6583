/*
 * fuzz_admin.c - libFuzzer target for the admin HTTP server (broker/admin): request heads,
 * paths, queries and JSON bodies.
 *
 * Happy path: each input is first taken apart as a request line: its target is split and
 * decoded (admin_path_split), matched against the route table (admin_route_find, every
 * row's pattern with admin_path_match) and, when a segment decoded to NUL, given its reason
 * (admin_nul_reason); the answers must agree with each other. Then the whole input is sent,
 * as the bytes of one connection, to a real admin server: a broker service on a fresh loop
 * (127.0.0.1, port 0, the in-memory metadata store, managedLedgerStore=memory) whose admin
 * port receives the input and then the end of the client's stream. The loop runs until the
 * server closes the connection (every request answered), bounded by FUZZ_DEADLINE_S; then
 * the service is freed, with any call still open. So the connection limits ahead of evhttp
 * (admin_conn.c), the router, the route checks and the handlers with their JSON bodies all
 * see the input, and whatever they start (fan-outs to the server's own port, topic loads,
 * store writes) runs on the same loop.
 * Failure modes: a broken promise aborts (a crash for libFuzzer); ASan/UBSan catch memory
 * errors and undefined behaviour; LeakSanitizer catches leaks; no admin call may be left
 * open once the connection is closed; an input the server does not finish within the
 * deadline is reported on stderr (the first few) and counted.
 */
#include "admin/admin_int.h"
#include "config/cfg.h"
#include "meta/meta.h"
#include "ns/ns.h"
#include "svc/svc.h"
#include "util/err.h"
#include "util/log.h"
#include "util/loop.h"

#include <arpa/inet.h>
#include <errno.h>
#include <event2/event.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#define FUZZ_DEADLINE_S 5
#define FUZZ_MAX_LINE 8192

int LLVMFuzzerInitialize(int *argc, char ***argv);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static struct cfg fuzz_cfg;
static unsigned long fuzz_slow; /* inputs not finished within the deadline */

static void check(int cond, const char *what)
{
    if (!cond) {
        fprintf(stderr, "fuzz_admin: broken promise: %s\n", what);
        abort();
    }
}

static void cfg_or_die(const char *k, const char *v)
{
    char err[256];
    if (cfg_set(&fuzz_cfg, k, v, "fuzz", err, sizeof err) != 0) {
        fprintf(stderr, "fuzz_admin: %s\n", err);
        abort();
    }
}

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
    (void)argc;
    (void)argv;
    signal(SIGPIPE, SIG_IGN);
    mg_log_set_level(MG_LOG_ERROR);
    cfg_init(&fuzz_cfg);
    cfg_or_die("bindAddress", "127.0.0.1");
    cfg_or_die("advertisedAddress", "127.0.0.1");
    cfg_or_die("brokerServicePort", "0");
    cfg_or_die("webServicePort", "0");
    cfg_or_die("managedLedgerStore", "memory");
    /* keep one input's work small: a partitioned topic's calls touch every partition */
    cfg_or_die("maxNumPartitionsPerPartitionedTopic", "8");
    return 0;
}

/* ---- the request line, without a server ------------------------------------------------- */

static enum evhttp_cmd_type method_of(const char *m, size_t n)
{
    static const struct {
        const char *name;
        enum evhttp_cmd_type m;
    } ms[] = {{"GET", EVHTTP_REQ_GET},
              {"HEAD", EVHTTP_REQ_HEAD},
              {"PUT", EVHTTP_REQ_PUT},
              {"POST", EVHTTP_REQ_POST},
              {"DELETE", EVHTTP_REQ_DELETE}};
    for (size_t i = 0; i < sizeof ms / sizeof *ms; i++)
        if (strlen(ms[i].name) == n && memcmp(ms[i].name, m, n) == 0)
            return ms[i].m;
    return EVHTTP_REQ_PATCH; /* no route answers it */
}

/* The first line "METHOD TARGET ...": route its path as the router does. */
static void route_line(const uint8_t *data, size_t size)
{
    size_t n = 0;
    while (n < size && n < FUZZ_MAX_LINE && data[n] != '\n' && data[n] != '\0')
        n++;
    char line[FUZZ_MAX_LINE + 1];
    memcpy(line, data, n);
    line[n] = '\0';
    char *sp = strchr(line, ' ');
    if (!sp)
        return;
    enum evhttp_cmd_type m = method_of(line, (size_t)(sp - line));
    char *target = sp + 1;
    char *end = strpbrk(target, " \r?#");
    if (end)
        *end = '\0';
    char *seg[ADMIN_MAX_SEGMENTS];
    int nul = -1;
    int nseg = admin_path_split(target, seg, ADMIN_MAX_SEGMENTS, &nul);
    if (nseg < 0) {
        check(nseg == -MG_EINVAL, "admin_path_split: an error other than too many segments");
        return;
    }
    check(nul < nseg, "admin_path_split: the NUL segment is one of the segments");
    for (int i = 0; i < nseg; i++)
        check(seg[i][0] != '\0', "admin_path_split: no empty segment");
    if (nul >= 0) {
        const char *why = admin_nul_reason(seg, nseg, nul);
        check(!why || strstr(why, "is not valid") != NULL, "admin_nul_reason: a reason");
    }
    bool known = false;
    const struct admin_route *rt = admin_route_find(m, seg, nseg, &known);
    /* the row found is the first whose pattern and methods fit; known says whether any
     * pattern fits */
    bool any_pattern = false;
    const struct admin_route *first = NULL;
    for (size_t i = 0; i < admin_routes_count; i++) {
        struct admin_path p;
        unsigned mask = 0;
        if (!admin_path_match(admin_routes[i].pattern, seg, nseg, &p, &mask))
            continue;
        any_pattern = true;
        if (!first && (admin_routes[i].methods & (unsigned)m))
            first = &admin_routes[i];
        if (p.tenant)
            check(mask != 0, "admin_path_match: a capture sets its bit");
    }
    check(rt == first, "admin_route_find: the first row whose pattern and methods fit");
    check(rt || known == any_pattern, "admin_route_find: 405 exactly when a pattern fits");
    for (int i = 0; i < nseg; i++)
        free(seg[i]);
}

/* ---- the whole input, to a server --------------------------------------------------------- */

struct client {
    int fd;
    bool closed; /* the server closed the connection */
};

static void on_read(evutil_socket_t fd, short what, void *arg)
{
    (void)what;
    struct client *c = arg;
    char buf[16384];
    for (;;) {
        ssize_t n = recv(fd, buf, sizeof buf, 0);
        if (n > 0)
            continue; /* the answers are the server's business: read and drop */
        if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR))
            return;
        c->closed = true; /* end of stream or reset */
        return;
    }
}

/* Wakes the loop every millisecond, so that each turn re-checks the deadline and retries a
 * send the socket buffer refused. */
static void on_tick(evutil_socket_t fd, short what, void *arg)
{
    (void)fd;
    (void)what;
    (void)arg;
}

static uint64_t mono_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000u + (uint64_t)ts.tv_nsec / 1000000u;
}

/* One turn of the loop; false once the input's deadline passed. */
static bool turn(struct event_base *base, uint64_t deadline)
{
    event_base_loop(base, EVLOOP_ONCE);
    return mono_ms() < deadline;
}

static void serve(const uint8_t *data, size_t size)
{
    uint64_t deadline = mono_ms() + FUZZ_DEADLINE_S * 1000u;
    struct event_base *base = event_base_new();
    struct mg_loop *loop = mg_loop_new(base);
    struct event *tick = event_new(base, -1, EV_PERSIST, on_tick, NULL);
    struct timeval ms = {0, 1000};
    evtimer_add(tick, &ms);
    struct meta_store *meta = NULL;
    struct meta_options mo = {.url = "memory"};
    check(meta_open(loop, &mo, &meta) == 0, "meta_open memory");
    struct svc *s = svc_new(loop, &fuzz_cfg, meta);
    check(s != NULL, "svc_new");
    bool live = true;
    while (live && !(ns_tenant_exists(svc_ns(s), "public") &&
                     ns_namespace_exists(svc_ns(s), "public/default")))
        live = turn(base, deadline);
    check(live, "the service loads its resources");

    struct client c = {.fd = socket(AF_INET, SOCK_STREAM, 0)};
    check(c.fd >= 0, "socket");
    struct sockaddr_in sa = {.sin_family = AF_INET,
                             .sin_port = htons((uint16_t)svc_web_port(s)),
                             .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    /* closed with a reset, not left in TIME_WAIT: thousands of inputs a second would use up
     * the loopback's ephemeral ports */
    struct linger lg = {.l_onoff = 1, .l_linger = 0};
    check(setsockopt(c.fd, SOL_SOCKET, SO_LINGER, &lg, sizeof lg) == 0, "SO_LINGER");
    /* Not blocking: an input larger than the socket buffers would block, and the server reads
     * only when the loop runs; so the connection completes and the input goes out over the
     * loop's turns. (A signal of libFuzzer's may interrupt a call: it is retried next turn.) */
    check(fcntl(c.fd, F_SETFL, fcntl(c.fd, F_GETFL) | O_NONBLOCK) == 0, "O_NONBLOCK");
    if (connect(c.fd, (struct sockaddr *)&sa, sizeof sa) != 0 && errno != EINPROGRESS &&
        errno != EINTR) {
        fprintf(stderr, "fuzz_admin: connect: %s\n", strerror(errno));
        check(0, "connect to the admin port");
    }
    struct event *rd = event_new(base, c.fd, EV_READ | EV_PERSIST, on_read, &c);
    event_add(rd, NULL);
    size_t sent = 0;
    bool shut = false;
    while (live && !c.closed) {
        while (sent < size) {
            ssize_t n = send(c.fd, data + sent, size - sent, MSG_NOSIGNAL);
            if (n <= 0)
                break;
            sent += (size_t)n;
        }
        if (!shut && sent == size) /* the end of the client's stream, once connected */
            shut = shutdown(c.fd, SHUT_WR) == 0;
        live = turn(base, deadline);
    }
    event_free(rd);
    close(c.fd);
    /* A request whose client went away is still answered: its call ends when its last
     * asynchronous step does. */
    while (live && svc_admin(s)->calls_open > 0)
        live = turn(base, deadline);
    if (!live && fuzz_slow++ < 5)
        fprintf(stderr,
                "fuzz_admin: input of %zu bytes not finished within %d s (%lld calls open)\n", size,
                FUZZ_DEADLINE_S, (long long)svc_admin(s)->calls_open);
    svc_free(s);
    meta_close(meta);
    event_free(tick);
    mg_loop_free(loop);
    event_base_free(base);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    route_line(data, size);
    serve(data, size);
    return 0;
}
