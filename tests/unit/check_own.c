/*
 * check_own.c - namespace bundles and bundle ownership (broker/ns/ns_own.c).
 *
 * Bundle hashing and names are checked against values computed with zlib's crc32 (Pulsar's
 * hash). Ownership runs two brokers in one process: two svc instances on one event loop,
 * ports 0, each on its own session of one in-memory metadata tree (meta_open_peer), so
 * they see each other's registrations and ephemeral ownership keys. Lookups go through
 * ns_lookup; a PRODUCER on a non-owner goes through a real socket.
 */
#include "config/cfg.h"
#include "meta/meta.h"
#include "ns/ns.h"
#include "svc/svc.h"
#include "topic/topic.h"
#include "util/alloc.h"
#include "util/crc.h"
#include "util/err.h"
#include "util/log.h"
#include "util/loop.h"
#include "wire/wire.h"

#include <arpa/inet.h>
#include <check.h>
#include <errno.h>
#include <event2/buffer.h>
#include <event2/event.h>
#include <netinet/in.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

/* ---- bundle arithmetic --------------------------------------------------------------------- */

START_TEST(test_crc32_is_zlib)
{
    ck_assert_uint_eq(mg_crc32(0, "123456789", 9), 0xcbf43926u);
    const char *t = "persistent://public/default/my-topic";
    ck_assert_uint_eq(mg_crc32(0, t, strlen(t)), 0x2bad45f7u);
}
END_TEST

START_TEST(test_bundle_names)
{
    char b[NS_BUNDLE_NAME_LEN];
    static const char *const four[] = {"0x00000000_0x40000000", "0x40000000_0x80000000",
                                       "0x80000000_0xc0000000", "0xc0000000_0xffffffff"};
    for (int i = 0; i < 4; i++) {
        ns_bundle_name(4, i, b);
        ck_assert_str_eq(b, four[i]);
    }
    ns_bundle_name(1, 0, b);
    ck_assert_str_eq(b, "0x00000000_0xffffffff");
    ns_bundle_name(3, 0, b);
    ck_assert_str_eq(b, "0x00000000_0x55555555");
    ns_bundle_name(3, 2, b);
    ck_assert_str_eq(b, "0xaaaaaaaa_0xffffffff");
    ns_bundle_name(16, 15, b);
    ck_assert_str_eq(b, "0xf0000000_0xffffffff");
}
END_TEST

START_TEST(test_bundle_index)
{
    ck_assert_int_eq(ns_bundle_index(0, 4), 0);
    ck_assert_int_eq(ns_bundle_index(0x3fffffffu, 4), 0);
    ck_assert_int_eq(ns_bundle_index(0x40000000u, 4), 1);
    ck_assert_int_eq(ns_bundle_index(0xbfffffffu, 4), 2);
    ck_assert_int_eq(ns_bundle_index(0xffffffffu, 4), 3);
    ck_assert_int_eq(ns_bundle_index(0xffffffffu, 3), 2); /* the last range is closed */
    ck_assert_int_eq(ns_bundle_index(0xaaaaaaa9u, 3), 1);
    ck_assert_int_eq(ns_bundle_index(0xffffffffu, 1), 0);
    /* zlib crc32 of the names, computed outside (python zlib.crc32) */
    ck_assert_int_eq(ns_bundle_index(0x2bad45f7u, 4), 0); /* .../my-topic */
    ck_assert_int_eq(ns_bundle_index(0x4a4c72a3u, 4), 1); /* .../my-topic-partition-1 */
    ck_assert_int_eq(ns_bundle_index(0xab01183bu, 4), 2); /* .../own-0 */
    ck_assert_int_eq(ns_bundle_index(0xdc0628adu, 4), 3); /* .../own-1 */
}
END_TEST

/* ---- two brokers on one memory tree ------------------------------------------------------- */

struct fixture {
    struct cfg cfg;
    struct event_base *base;
    struct mg_loop *loop;
    struct meta_store *meta[2];
    struct svc *svc[2];
};

static struct fixture fx;

static void pump(int rounds)
{
    for (int i = 0; i < rounds; i++) {
        event_base_loop(fx.base, EVLOOP_NONBLOCK);
        usleep(500);
    }
}

struct get_result {
    bool done;
    int status;
    char value[512];
};

static void get_cb(struct meta_req *req, int status)
{
    struct get_result *g = req->data;
    g->done = true;
    g->status = status;
    if (status == 0)
        snprintf(g->value, sizeof g->value, "%.*s", (int)req->len, req->value);
    meta_req_fini(req);
}

static int meta_get_sync(const char *path, struct get_result *g)
{
    struct meta_req req;
    memset(&req, 0, sizeof req);
    memset(g, 0, sizeof *g);
    req.data = g;
    ck_assert_int_eq(meta_get(fx.meta[0], path, &req, get_cb), 0);
    for (int k = 0; k < 2000 && !g->done; k++)
        pump(1);
    ck_assert(g->done);
    return g->status;
}

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
    fx.base = event_base_new();
    fx.loop = mg_loop_new(fx.base);
    struct meta_options mo = {.url = "memory"};
    ck_assert_int_eq(meta_open(fx.loop, &mo, &fx.meta[0]), 0);
    ck_assert_int_eq(meta_open_peer(fx.meta[0], NULL, &fx.meta[1]), 0);
    for (int i = 0; i < 2; i++) {
        fx.svc[i] = svc_new(fx.loop, &fx.cfg, fx.meta[i]);
        ck_assert_ptr_nonnull(fx.svc[i]);
    }
    /* until both brokers are registered */
    for (int i = 0; i < 2; i++) {
        char *path = mg_asprintf("/loadbalance/brokers/%s", ns_broker_id(svc_ns(fx.svc[i])));
        struct get_result g;
        int rc = -1;
        for (int k = 0; k < 2000 && (rc = meta_get_sync(path, &g)) != 0; k++)
            pump(1);
        ck_assert_msg(rc == 0, "broker %d not registered at %s", i, path);
        mg_free(path);
    }
}

static void teardown(void)
{
    for (int i = 0; i < 2; i++)
        svc_free(fx.svc[i]);
    for (int i = 0; i < 2; i++)
        meta_close(fx.meta[i]);
    mg_loop_free(fx.loop);
    event_base_free(fx.base);
    cfg_fini(&fx.cfg);
}

struct lookup_result {
    bool done;
    int status;
    char url[128];
    bool connect_here;
};

static void lookup_cb(void *data, int status, const char *url, const char *message)
{
    struct lookup_result *r = data;
    (void)message;
    r->done = true;
    r->status = status;
    r->connect_here = status == 0 && !url;
    snprintf(r->url, sizeof r->url, "%s", url ? url : "");
}

/* Look topic up at broker i; returns the index of the broker that serves it, following
 * redirects as a client does (authoritative after the first). -1 on failure. */
static int lookup_at(int i, const char *topic, bool authoritative, struct lookup_result *r)
{
    struct topic_name tn;
    ck_assert_int_eq(topic_name_parse(topic, &tn), 0);
    memset(r, 0, sizeof *r);
    int rc = ns_lookup(svc_ns(fx.svc[i]), &tn, authoritative, lookup_cb, r);
    topic_name_fini(&tn);
    if (rc == 1) {
        r->done = true;
        r->connect_here = true;
        return i;
    }
    ck_assert_int_eq(rc, 0);
    for (int k = 0; k < 4000 && !r->done; k++)
        pump(1);
    ck_assert(r->done);
    if (r->status < 0)
        return -1;
    if (r->connect_here)
        return i;
    for (int j = 0; j < 2; j++)
        if (strcmp(r->url, ns_broker_url(svc_ns(fx.svc[j]))) == 0)
            return 10 + j; /* redirect to j */
    ck_abort_msg("redirect to unknown url %s", r->url);
    return -1;
}

static int serve(int entry, const char *topic)
{
    struct lookup_result r;
    int at = lookup_at(entry, topic, false, &r);
    for (int hops = 0; at >= 10 && hops < 3; hops++)
        at = lookup_at(at - 10, topic, true, &r);
    ck_assert_int_ge(at, 0);
    ck_assert_int_lt(at, 10);
    return at;
}

static bool owned_by(int i, const char *topic)
{
    struct topic_name tn;
    ck_assert_int_eq(topic_name_parse(topic, &tn), 0);
    bool o = ns_topic_owned(svc_ns(fx.svc[i]), &tn);
    topic_name_fini(&tn);
    return o;
}

#define T0 "persistent://public/default/own-3"  /* bundle 0 */
#define T1 "persistent://public/default/own-2"  /* bundle 1 */
#define T2 "persistent://public/default/own-0"  /* bundle 2 */
#define T3 "persistent://public/default/own-1"  /* bundle 3 */
#define T0B "persistent://public/default/own-7" /* bundle 0 too */

START_TEST(test_registered)
{
    struct get_result g;
    for (int i = 0; i < 2; i++) {
        char *path = mg_asprintf("/loadbalance/brokers/%s", ns_broker_id(svc_ns(fx.svc[i])));
        ck_assert_int_eq(meta_get_sync(path, &g), 0);
        ck_assert_ptr_nonnull(strstr(g.value, ns_broker_url(svc_ns(fx.svc[i]))));
        ck_assert_ptr_nonnull(strstr(g.value, "\"numBundles\":0"));
        mg_free(path);
    }
}
END_TEST

START_TEST(test_assign_redirect_and_owner)
{
    /* Unowned: assigned to one of them; both then agree on the owner. */
    int owner = serve(0, T0);
    ck_assert(owned_by(owner, T0));
    ck_assert(!owned_by(1 - owner, T0));
    struct lookup_result r;
    ck_assert_int_eq(lookup_at(owner, T0, false, &r), owner);
    ck_assert_int_eq(lookup_at(1 - owner, T0, false, &r), 10 + owner); /* redirect */
    /* an authoritative lookup at the non-owner still redirects to the owner */
    ck_assert_int_eq(lookup_at(1 - owner, T0, true, &r), 10 + owner);
    /* the same bundle: the same owner */
    ck_assert_int_eq(serve(1 - owner, T0B), owner);
    /* the ownership key is Pulsar's NamespaceEphemeralData */
    struct get_result g;
    ck_assert_int_eq(meta_get_sync("/namespace/public/default/0x00000000_0x40000000", &g), 0);
    ck_assert_ptr_nonnull(strstr(g.value, ns_broker_url(svc_ns(fx.svc[owner]))));
    ck_assert_ptr_nonnull(strstr(g.value, "\"disabled\":false"));
    ck_assert_int_eq(ns_owned_bundles(svc_ns(fx.svc[owner])), 1);
    size_t pos = 0;
    ck_assert_str_eq(ns_owned_bundle_next(svc_ns(fx.svc[owner]), &pos),
                     "public/default/0x00000000_0x40000000");
    ck_assert_ptr_null(ns_owned_bundle_next(svc_ns(fx.svc[owner]), &pos));
}
END_TEST

START_TEST(test_spread)
{
    /* Four bundles asked through one broker end up two and two (least loaded first). */
    const char *topics[] = {T0, T1, T2, T3};
    int n[2] = {0, 0};
    for (int i = 0; i < 4; i++)
        n[serve(0, topics[i])]++;
    ck_assert_int_eq(n[0], 2);
    ck_assert_int_eq(n[1], 2);
    ck_assert_int_eq(ns_owned_bundles(svc_ns(fx.svc[0])), 2);
    ck_assert_int_eq(ns_owned_bundles(svc_ns(fx.svc[1])), 2);
}
END_TEST

START_TEST(test_authoritative_takes)
{
    /* A broker redirected to with authoritative=true takes an unowned bundle itself. */
    struct lookup_result r;
    ck_assert_int_eq(lookup_at(1, T2, true, &r), 1);
    ck_assert(owned_by(1, T2));
    ck_assert_int_eq(lookup_at(0, T2, true, &r), 11);
}
END_TEST

struct done_result {
    bool done;
    int status;
};

static void done_cb(void *data, int status)
{
    struct done_result *d = data;
    d->done = true;
    d->status = status;
}

START_TEST(test_unload_moves)
{
    int owner = serve(0, T1);
    struct done_result d = {0};
    ck_assert_int_eq(ns_bundle_unload(svc_ns(fx.svc[1 - owner]), "public/default",
                                      "0x40000000_0x80000000", done_cb, &d),
                     -MG_ENOTFOUND);
    ck_assert_int_eq(ns_bundle_unload(svc_ns(fx.svc[owner]), "public/default",
                                      "0x40000000_0x80000000", done_cb, &d),
                     0);
    ck_assert(!owned_by(owner, T1)); /* at once: no new producers */
    for (int k = 0; k < 8000 && !d.done; k++)
        pump(1);
    ck_assert(d.done);
    ck_assert_int_eq(d.status, 0);
    struct get_result g;
    ck_assert_int_eq(meta_get_sync("/namespace/public/default/0x40000000_0x80000000", &g),
                     -MG_ENOTFOUND);
    /* the other broker takes it when asked with authority */
    struct lookup_result r;
    ck_assert_int_eq(lookup_at(1 - owner, T1, true, &r), 1 - owner);
    ck_assert(owned_by(1 - owner, T1));
}
END_TEST

static void loaded_cb(struct topic *t, int status, void *data)
{
    (void)t;
    int *n = data;
    ck_assert_int_eq(status, 0);
    (*n)++;
}

/* Unloading a bundle with many loaded topics closes them in slices: no single loop turn
 * closes them all, every one is closed in the end, and only then is the key deleted. */
START_TEST(test_unload_in_slices)
{
    enum { N = 400 };
    int owner = serve(0, T1);
    struct svc *sv = fx.svc[owner];
    struct ns *s = svc_ns(sv);
    char *names[N];
    int n = 0, loaded = 0;
    for (int i = 0; n < N && i < 100 * N; i++) {
        char *name = mg_asprintf("persistent://public/default/slice-%d", i);
        struct topic_name tn;
        ck_assert_int_eq(topic_name_parse(name, &tn), 0);
        char range[NS_BUNDLE_NAME_LEN];
        ns_topic_bundle(s, &tn, range);
        topic_name_fini(&tn);
        if (strcmp(range, "0x40000000_0x80000000") == 0) {
            names[n++] = name;
            ck_assert_int_eq(topic_get(svc_topics(sv), name, true, loaded_cb, &loaded), 0);
        } else {
            mg_free(name);
        }
    }
    ck_assert_int_eq(n, N);
    for (int k = 0; k < 8000 && loaded < N; k++)
        pump(1);
    ck_assert_int_eq(loaded, N);
    struct done_result d = {0};
    ck_assert_int_eq(ns_bundle_unload(s, "public/default", "0x40000000_0x80000000", done_cb, &d),
                     0);
    int left = 0;
    for (int i = 0; i < N; i++)
        left += topic_find(svc_topics(sv), names[i]) != NULL;
    ck_assert_int_eq(left, N); /* nothing closed inside the call */
    event_base_loop(fx.base, EVLOOP_ONCE | EVLOOP_NONBLOCK);
    left = 0;
    for (int i = 0; i < N; i++)
        left += topic_find(svc_topics(sv), names[i]) != NULL;
    ck_assert_msg(left > 0 && left < N, "one loop turn closed %d of %d topics", N - left, N);
    ck_assert(!d.done);
    for (int k = 0; k < 8000 && !d.done; k++)
        pump(1);
    ck_assert(d.done);
    ck_assert_int_eq(d.status, 0);
    for (int i = 0; i < N; i++) {
        ck_assert_ptr_null(topic_find(svc_topics(sv), names[i]));
        mg_free(names[i]);
    }
    struct get_result g;
    ck_assert_int_eq(meta_get_sync("/namespace/public/default/0x40000000_0x80000000", &g),
                     -MG_ENOTFOUND);
}
END_TEST

START_TEST(test_expiry_drops)
{
    int owner = serve(0, T3);
    ck_assert(owned_by(owner, T3));
    /* The store says the session expired: its keys are gone (delete the key by hand: the
     * memory store's session does not really expire). */
    struct meta_req req;
    memset(&req, 0, sizeof req);
    struct get_result g = {0};
    req.data = &g;
    ck_assert_int_eq(meta_delete(fx.meta[1 - owner],
                                 "/namespace/public/default/0xc0000000_0xffffffff",
                                 META_VERSION_ANY, &req, get_cb),
                     0);
    for (int k = 0; k < 2000 && !g.done; k++)
        pump(1);
    ck_assert_int_eq(g.status, 0);
    svc_session_event(fx.svc[owner], META_SESSION_EXPIRED);
    ck_assert(!owned_by(owner, T3));
    ck_assert_int_eq(ns_owned_bundles(svc_ns(fx.svc[owner])), 0);
    /* while disconnected (new session not yet up) it takes nothing */
    svc_session_event(fx.svc[owner], META_SESSION_DISCONNECTED);
    struct lookup_result r;
    ck_assert_int_eq(lookup_at(owner, T3, true, &r), -1);
    ck_assert_int_eq(r.status, -MG_ENOTREADY);
    svc_session_event(fx.svc[owner], META_SESSION_CONNECTED);
    ck_assert_int_eq(lookup_at(1 - owner, T3, true, &r), 1 - owner);
    ck_assert_int_eq(lookup_at(owner, T3, false, &r), 10 + 1 - owner);
}
END_TEST

START_TEST(test_stale_own_key)
{
    /* A key naming broker 0's URL that broker 0 does not hold (a previous process on the
     * same address): broker 0 removes it and takes the bundle; broker 1 redirects there. */
    char *v = mg_asprintf("{\"nativeUrl\":\"%s\",\"httpUrl\":\"%s\",\"disabled\":false}",
                          ns_broker_url(svc_ns(fx.svc[0])), ns_web_url(svc_ns(fx.svc[0])));
    struct meta_req req;
    memset(&req, 0, sizeof req);
    struct get_result g = {0};
    req.data = &g;
    ck_assert_int_eq(meta_put(fx.meta[1], "/namespace/public/default/0x80000000_0xc0000000", v,
                              strlen(v), META_VERSION_NONE, META_CREATE_PARENTS, &req, get_cb),
                     0);
    mg_free(v);
    for (int k = 0; k < 2000 && !g.done; k++)
        pump(1);
    ck_assert_int_eq(g.status, 0);
    struct lookup_result r;
    ck_assert_int_eq(lookup_at(1, T2, false, &r), 10);
    ck_assert(!owned_by(0, T2));
    ck_assert_int_eq(lookup_at(0, T2, true, &r), 0);
    ck_assert(owned_by(0, T2));
}
END_TEST

/* ---- PRODUCER on a broker that does not own the bundle ------------------------------------ */

static int read_frame(int fd, struct evbuffer *in, int want, struct wire_frame *f)
{
    for (int i = 0; i < 4000; i++) {
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

static void send_cmd(int fd, wire_cmd *cmd)
{
    struct evbuffer *b = evbuffer_new();
    wire_write_command(b, cmd);
    while (evbuffer_get_length(b) > 0) {
        ssize_t n = evbuffer_write(b, fd);
        if (n < 0 && errno != EAGAIN)
            ck_abort_msg("write failed: %s", strerror(errno));
        pump(1);
    }
    evbuffer_free(b);
}

static int connect_to(int i, struct evbuffer *in)
{
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    ck_assert_int_ge(fd, 0);
    struct sockaddr_in sin;
    memset(&sin, 0, sizeof sin);
    sin.sin_family = AF_INET;
    sin.sin_port = htons((uint16_t)svc_broker_port(fx.svc[i]));
    inet_pton(AF_INET, "127.0.0.1", &sin.sin_addr);
    ck_assert_int_eq(connect(fd, (struct sockaddr *)&sin, sizeof sin), 0);
    pump(5);
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
    wire_frame_clear(&f);
    return fd;
}

static void lookup_frame(int fd, struct evbuffer *in, const char *topic, bool auth, int *response,
                         char *url, size_t ulen)
{
    Pulsar__Proto__CommandLookupTopic l = PULSAR__PROTO__COMMAND_LOOKUP_TOPIC__INIT;
    l.topic = (char *)topic;
    l.request_id = 7;
    l.has_authoritative = 1;
    l.authoritative = auth;
    wire_cmd cmd = PULSAR__PROTO__BASE_COMMAND__INIT;
    cmd.type = PULSAR__PROTO__BASE_COMMAND__TYPE__LOOKUP;
    cmd.lookuptopic = &l;
    send_cmd(fd, &cmd);
    struct wire_frame f;
    ck_assert_int_eq(read_frame(fd, in, PULSAR__PROTO__BASE_COMMAND__TYPE__LOOKUP_RESPONSE, &f), 1);
    const Pulsar__Proto__CommandLookupTopicResponse *r = f.cmd->lookuptopicresponse;
    ck_assert_uint_eq(r->request_id, 7);
    *response = (int)r->response;
    snprintf(url, ulen, "%s", r->brokerserviceurl ? r->brokerserviceurl : "");
    if (r->response != PULSAR__PROTO__COMMAND_LOOKUP_TOPIC_RESPONSE__LOOKUP_TYPE__Failed)
        ck_assert(r->has_authoritative && r->authoritative);
    wire_frame_clear(&f);
}

START_TEST(test_producer_not_owner)
{
    int owner = serve(0, T0);
    int other = 1 - owner;
    struct evbuffer *in = evbuffer_new();
    int fd = connect_to(other, in);
    /* LOOKUP over the wire: Redirect to the owner */
    int resp;
    char url[128];
    lookup_frame(fd, in, T0, false, &resp, url, sizeof url);
    ck_assert_int_eq(resp, PULSAR__PROTO__COMMAND_LOOKUP_TOPIC_RESPONSE__LOOKUP_TYPE__Redirect);
    ck_assert_str_eq(url, ns_broker_url(svc_ns(fx.svc[owner])));
    Pulsar__Proto__CommandProducer p = PULSAR__PROTO__COMMAND_PRODUCER__INIT;
    p.topic = T0;
    p.producer_id = 1;
    p.request_id = 2;
    wire_cmd cmd = PULSAR__PROTO__BASE_COMMAND__INIT;
    cmd.type = PULSAR__PROTO__BASE_COMMAND__TYPE__PRODUCER;
    cmd.producer = &p;
    send_cmd(fd, &cmd);
    struct wire_frame f;
    ck_assert_int_eq(read_frame(fd, in, PULSAR__PROTO__BASE_COMMAND__TYPE__ERROR, &f), 1);
    ck_assert_uint_eq(f.cmd->error->request_id, 2);
    ck_assert_int_eq(f.cmd->error->error, PULSAR__PROTO__SERVER_ERROR__ServiceNotReady);
    ck_assert_ptr_nonnull(strstr(f.cmd->error->message, "Please redo the lookup"));
    wire_frame_clear(&f);
    /* SUBSCRIBE likewise */
    Pulsar__Proto__CommandSubscribe s = PULSAR__PROTO__COMMAND_SUBSCRIBE__INIT;
    s.topic = T0;
    s.subscription = "sub";
    s.consumer_id = 1;
    s.request_id = 3;
    cmd.type = PULSAR__PROTO__BASE_COMMAND__TYPE__SUBSCRIBE;
    cmd.producer = NULL;
    cmd.subscribe = &s;
    send_cmd(fd, &cmd);
    ck_assert_int_eq(read_frame(fd, in, PULSAR__PROTO__BASE_COMMAND__TYPE__ERROR, &f), 1);
    ck_assert_uint_eq(f.cmd->error->request_id, 3);
    ck_assert_int_eq(f.cmd->error->error, PULSAR__PROTO__SERVER_ERROR__ServiceNotReady);
    wire_frame_clear(&f);
    close(fd);
    evbuffer_free(in);

    /* at the owner, the producer is created; unloading the bundle closes it */
    in = evbuffer_new();
    fd = connect_to(owner, in);
    lookup_frame(fd, in, T0, false, &resp, url, sizeof url);
    ck_assert_int_eq(resp, PULSAR__PROTO__COMMAND_LOOKUP_TOPIC_RESPONSE__LOOKUP_TYPE__Connect);
    ck_assert_str_eq(url, ns_broker_url(svc_ns(fx.svc[owner])));
    cmd.type = PULSAR__PROTO__BASE_COMMAND__TYPE__PRODUCER;
    cmd.subscribe = NULL;
    cmd.producer = &p;
    send_cmd(fd, &cmd);
    ck_assert_int_eq(read_frame(fd, in, PULSAR__PROTO__BASE_COMMAND__TYPE__PRODUCER_SUCCESS, &f),
                     1);
    wire_frame_clear(&f);
    struct done_result d = {0};
    ck_assert_int_eq(ns_bundle_unload(svc_ns(fx.svc[owner]), "public/default",
                                      "0x00000000_0x40000000", done_cb, &d),
                     0);
    ck_assert_int_eq(read_frame(fd, in, PULSAR__PROTO__BASE_COMMAND__TYPE__CLOSE_PRODUCER, &f), 1);
    ck_assert_uint_eq(f.cmd->close_producer->producer_id, 1);
    wire_frame_clear(&f);
    for (int k = 0; k < 8000 && !d.done; k++)
        pump(1);
    ck_assert(d.done);
    close(fd);
    evbuffer_free(in);
}
END_TEST

struct brokers_result {
    bool done;
    int status, n;
    char first[64];
};

static void brokers_cb(void *data, int status, char **ids, int n)
{
    struct brokers_result *r = data;
    r->done = true;
    r->status = status;
    r->n = n;
    snprintf(r->first, sizeof r->first, "%s", n > 0 ? ids[0] : "");
}

START_TEST(test_list_brokers)
{
    struct brokers_result r = {0};
    ck_assert_int_eq(ns_list_brokers(svc_ns(fx.svc[0]), brokers_cb, &r), 0);
    ck_assert(!r.done); /* never inside the call */
    for (int k = 0; k < 2000 && !r.done; k++)
        pump(1);
    ck_assert(r.done);
    ck_assert_int_eq(r.status, 0);
    ck_assert_int_eq(r.n, 2);
    ck_assert(strcmp(r.first, ns_broker_id(svc_ns(fx.svc[0]))) == 0 ||
              strcmp(r.first, ns_broker_id(svc_ns(fx.svc[1]))) == 0);
}
END_TEST

static Suite *own_suite(void)
{
    Suite *s = suite_create("own");
    TCase *tc = tcase_create("bundles");
    tcase_add_test(tc, test_crc32_is_zlib);
    tcase_add_test(tc, test_bundle_names);
    tcase_add_test(tc, test_bundle_index);
    suite_add_tcase(s, tc);
    tc = tcase_create("ownership");
    tcase_add_checked_fixture(tc, setup, teardown);
    tcase_set_timeout(tc, 30);
    tcase_add_test(tc, test_registered);
    tcase_add_test(tc, test_assign_redirect_and_owner);
    tcase_add_test(tc, test_spread);
    tcase_add_test(tc, test_authoritative_takes);
    tcase_add_test(tc, test_unload_moves);
    tcase_add_test(tc, test_unload_in_slices);
    tcase_add_test(tc, test_expiry_drops);
    tcase_add_test(tc, test_stale_own_key);
    tcase_add_test(tc, test_producer_not_owner);
    tcase_add_test(tc, test_list_brokers);
    suite_add_tcase(s, tc);
    return s;
}

int main(void)
{
    SRunner *sr = srunner_create(own_suite());
    srunner_run_all(sr, CK_NORMAL);
    int failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed == 0 ? EXIT_SUCCESS : EXIT_FAILURE;
}
