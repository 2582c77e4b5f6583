/*
 * admin.c - admin HTTP server (webServicePort): router, reply helpers, health probes and the
 * statistics interval timer.
 *
 * Happy path: evhttp hands every request to route(); the path is split into decoded
 * segments (URLDecoder semantics: %XX and '+' as space) and dispatched to the handlers of
 * admin_res.c (clusters, brokers, tenants, namespaces), admin_topics.c (persistent topics,
 * lookup) and admin_metrics.c (/metrics). Mutations answer 204, reads 200 with JSON, errors
 * a status with {"reason": "..."} as Pulsar does (docs/admin.md §1). A timer rolls the
 * topics' statistics every statsUpdateFrequencyInSecs (rates are averages over it).
 *
 * Failure modes: unknown paths 404 and wrong methods 405 (framework-style, plain text, as
 * Jersey answers them); unparsable bodies 400; everything else as the reference gives it.
 * The health check answers 500 when the heartbeat topic cannot be loaded within 10 s
 * (metadata store or bookies unusable), 503 while the service shuts down.
 */
#include "admin/admin_int.h"
#include "config/cfg.h"
#include "ns/ns.h"
#include "topic/topic.h"
#include "util/alloc.h"
#include "util/err.h"
#include "util/listen.h"
#include "util/log.h"

#include <arpa/inet.h>
#include <ctype.h>
#include <errno.h>
#include <event2/buffer.h>
#include <event2/bufferevent.h>
#include <event2/event.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/queue.h>
#include <sys/socket.h>
#include <time.h>

#define HEALTH_TIMEOUT_S 10

/* ---- responses --------------------------------------------------------------------------- */

static const char *phrase_of(int code)
{
    switch (code) {
    case 200:
        return "OK";
    case 204:
        return "No Content";
    case 307:
        return "Temporary Redirect";
    case 400:
        return "Bad Request";
    case 403:
        return "Forbidden";
    case 404:
        return "Not Found";
    case 405:
        return "Method Not Allowed";
    case 406:
        return "Not Acceptable";
    case 409:
        return "Conflict";
    case 412:
        return "Precondition Failed";
    case 422:
        return "Unprocessable Entity";
    case 500:
        return "Internal Server Error";
    case 503:
        return "Service Unavailable";
    default:
        return "Error";
    }
}

/* ---- calls: one per routed request, completed by its one reply ---------------------------- */

static struct admin_call *call_new(struct admin *a, struct evhttp_request *req)
{
    struct admin_call *c = mg_calloc(1, sizeof *c);
    c->a = a;
    c->req = req;
    c->next = a->calls;
    if (c->next)
        c->next->pprev = &c->next;
    c->pprev = &a->calls;
    a->calls = c;
    a->calls_open++;
    a->calls_total++;
    return c;
}

/* The reply went out (or cannot any more): forget the call. */
static void call_done(struct admin_call *c)
{
    if (c->a) {
        *c->pprev = c->next;
        if (c->next)
            c->next->pprev = c->pprev;
        c->a->calls_open--;
    }
    mg_free(c);
}

bool admin_call_gone(struct admin_call *c)
{
    if (c->a)
        return false;
    call_done(c);
    return true;
}

void admin_reply_buf(struct admin_call *c, int code, const char *ctype, struct evbuffer *buf)
{
    if (c->req) {
        if (ctype)
            evhttp_add_header(evhttp_request_get_output_headers(c->req), "Content-Type", ctype);
        evhttp_send_reply(c->req, code, phrase_of(code), buf);
    }
    call_done(c);
}

void admin_reply_raw(struct admin_call *c, int code, const char *ctype, const char *body)
{
    struct evbuffer *b = evbuffer_new();
    if (body)
        evbuffer_add(b, body, strlen(body));
    admin_reply_buf(c, code, ctype, b);
    evbuffer_free(b);
}

void admin_reply_json(struct admin_call *c, int code, json_t *j)
{
    char *s = json_dumps(j, JSON_COMPACT | JSON_ENCODE_ANY | JSON_REAL_PRECISION(17));
    json_decref(j);
    admin_reply_raw(c, code, "application/json", s);
    free(s);
}

void admin_reply_error(struct admin_call *c, int code, const char *reason)
{
    admin_reply_json(c, code, json_pack("{s:s}", "reason", reason));
}

void admin_reply_errorf(struct admin_call *c, int code, const char *fmt, ...)
{
    char buf[512];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(buf, sizeof buf, fmt, ap);
    va_end(ap);
    admin_reply_error(c, code, buf);
}

void admin_reply_no_content(struct admin_call *c)
{
    admin_reply_raw(c, 204, NULL, NULL);
}

void admin_reply_redirect(struct admin_call *c, const char *location)
{
    if (c->req)
        evhttp_add_header(evhttp_request_get_output_headers(c->req), "Location", location);
    admin_reply_raw(c, 307, NULL, NULL);
}

void admin_reply_not_found(struct admin_call *c)
{
    admin_reply_raw(c, 404, "text/plain", "Not Found");
}

void admin_reply_bad_method(struct admin_call *c)
{
    admin_reply_raw(c, 405, "text/plain", "Method Not Allowed");
}

void admin_reply_done(void *data, int status)
{
    struct admin_call *c = data;
    if (status < 0)
        admin_reply_error(c, 500, mg_strerror(status));
    else
        admin_reply_no_content(c);
}

/* ---- request helpers --------------------------------------------------------------------- */

/* URLDecoder semantics; *nul set when the result holds a NUL byte (%00), which a C string
 * cannot carry: such a segment is refused rather than silently cut short. */
static char *url_decode(const char *s, size_t n, bool *nul)
{
    char *tmp = mg_strndup(s, n);
    size_t len = 0;
    char *dec = evhttp_uridecode(tmp, 1, &len);
    mg_free(tmp);
    *nul = false;
    if (!dec)
        return mg_strdup("");
    /* A decoded %00 cannot live in a C string: keep it as DEL (0x7f), a control character
     * every name check refuses, instead of cutting the name there ("a%00b" is not "a"). */
    *nul = strlen(dec) != len;
    for (size_t i = 0; i < len; i++)
        if (dec[i] == '\0')
            dec[i] = 0x7f;
    char *r = mg_strndup(dec, len);
    free(dec);
    return r;
}

static int parse_request(struct admin_req *r)
{
    const struct evhttp_uri *uri = evhttp_request_get_evhttp_uri(r->req);
    const char *path = evhttp_uri_get_path(uri);
    const char *query = evhttp_uri_get_query(uri);
    TAILQ_INIT(&r->query);
    if (query && evhttp_parse_query_str(query, &r->query) < 0)
        return -MG_EINVAL;
    if (!path)
        path = "/";
    const char *p = path;
    while (*p) {
        while (*p == '/')
            p++;
        if (!*p)
            break;
        const char *e = strchr(p, '/');
        size_t n = e ? (size_t)(e - p) : strlen(p);
        if (r->nseg == ADMIN_MAX_SEGMENTS)
            return -MG_EINVAL;
        bool nul;
        r->seg[r->nseg] = url_decode(p, n, &nul);
        if (nul && r->nul_seg < 0)
            r->nul_seg = r->nseg;
        r->nseg++;
        p += n;
    }
    return 0;
}

static void free_request(struct admin_req *r)
{
    for (int i = 0; i < r->nseg; i++)
        mg_free(r->seg[i]);
    evhttp_clear_headers(&r->query);
}

bool admin_query_flag(struct admin_req *r, const char *key)
{
    const char *v = evhttp_find_header(&r->query, key);
    return v && strcmp(v, "true") == 0;
}

const char *admin_query(struct admin_req *r, const char *key)
{
    return evhttp_find_header(&r->query, key);
}

char *admin_body_string(struct evhttp_request *req)
{
    struct evbuffer *b = evhttp_request_get_input_buffer(req);
    size_t n = evbuffer_get_length(b);
    if (n == 0 || n > ADMIN_MAX_BODY)
        return NULL;
    char *s = mg_malloc(n + 1);
    evbuffer_copyout(b, s, n);
    s[n] = '\0';
    return s;
}

json_t *admin_body_json(struct evhttp_request *req, bool *bad)
{
    *bad = false;
    char *body = admin_body_string(req);
    if (!body)
        return NULL;
    const char *p = body;
    while (*p && isspace((unsigned char)*p))
        p++;
    json_t *j = NULL;
    if (*p) {
        j = json_loads(p, JSON_DECODE_ANY, NULL);
        *bad = j == NULL;
    }
    mg_free(body);
    return j;
}

bool admin_valid_name(const char *s)
{
    size_t n = strlen(s);
    if (n == 0 || n > ADMIN_MAX_NAME || strcmp(s, ".") == 0 || strcmp(s, "..") == 0)
        return false;
    for (; *s; s++)
        if (!isalnum((unsigned char)*s) && !strchr("-=:._", *s))
            return false;
    return true;
}

static void refreshed(void *data, int status)
{
    struct admin_call *c = data;
    if (admin_call_gone(c))
        return;
    if (status < 0 && status != -MG_ENOTFOUND) {
        admin_reply_errorf(c, 500, "Cannot read the metadata store: %s", mg_strerror(status));
        return;
    }
    admin_route(c); /* the cache answers now, whichever way */
}

bool admin_refresh_tenant(struct admin_req *r, const char *tenant)
{
    if (r->call->tenant_synced || ns_tenant_sync(r->a->env->ns, tenant, refreshed, r->call) < 0)
        return false;
    r->call->tenant_synced = true;
    return true;
}

bool admin_refresh_partitions(struct admin_req *r, const char *base_full_name)
{
    if (r->call->pt_synced ||
        ns_partitions_sync(r->a->env->ns, base_full_name, refreshed, r->call) < 0)
        return false;
    r->call->pt_synced = true;
    return true;
}

bool admin_refresh_namespace(struct admin_req *r, const char *tenant_ns)
{
    if (r->call->ns_synced || ns_namespace_sync(r->a->env->ns, tenant_ns, refreshed, r->call) < 0)
        return false;
    r->call->ns_synced = true;
    return true;
}

void admin_iso_time(uint64_t ms, char *buf, size_t len)
{
    time_t sec = (time_t)(ms / 1000);
    struct tm tm;
    gmtime_r(&sec, &tm);
    char tmp[32];
    strftime(tmp, sizeof tmp, "%Y-%m-%dT%H:%M:%S", &tm);
    snprintf(buf, len, "%s.%03uZ", tmp, (unsigned)(ms % 1000));
}

/* ---- health ------------------------------------------------------------------------------ */

/* A health check in progress: the heartbeat topic's load, bounded by a timer. */
struct health_op {
    struct admin_call *call; /* until replied */
    struct event *timer;     /* owned */
    bool replied;
    int refs; /* the timer and the topic_get callback */
};

static void health_unref(struct health_op *h)
{
    if (--h->refs == 0) {
        event_free(h->timer);
        mg_free(h);
    }
}

static void health_loaded(struct topic *t, int status, void *data)
{
    (void)t;
    struct health_op *h = data;
    if (!h->replied) {
        h->replied = true;
        event_del(h->timer);
        if (status < 0)
            admin_reply_raw(h->call, 500, "text/plain", mg_strerror(status));
        else
            admin_reply_raw(h->call, 200, "text/plain", "ok");
        h->refs--; /* the timer's: it will not fire */
    }
    health_unref(h);
}

static void health_timeout(evutil_socket_t fd, short what, void *arg)
{
    (void)fd;
    (void)what;
    struct health_op *h = arg;
    if (!h->replied) {
        h->replied = true;
        admin_reply_raw(h->call, 500, "text/plain", "health check timed out");
    }
    health_unref(h);
}

/* GET /admin/v2/brokers/health: Pulsar writes and reads its heartbeat topic; we load
 * (creating) it, which takes the metadata store and, with durable storage, a ledger on the
 * bookies. */
static void h_health(struct admin_req *r)
{
    const struct admin_env *s = r->a->env;
    const char *v2 = admin_query(r, "topicVersion");
    char *name = v2 && strcmp(v2, "V2") == 0
                     ? mg_asprintf("persistent://pulsar/%s/healthcheck", ns_broker_id(s->ns))
                     : mg_asprintf("persistent://pulsar/%s/%s/healthcheck", s->cfg->cluster_name,
                                   ns_broker_id(s->ns));
    struct health_op *h = mg_calloc(1, sizeof *h);
    h->call = r->call;
    h->timer = evtimer_new(s->base, health_timeout, h);
    h->refs = 2;
    int rc = topic_get(s->topics, name, true, health_loaded, h);
    mg_free(name);
    if (rc < 0) {
        event_free(h->timer);
        mg_free(h);
        admin_reply_raw(r->call, 500, "text/plain", mg_strerror(rc));
        return;
    }
    struct timeval tv = {HEALTH_TIMEOUT_S, 0};
    evtimer_add(h->timer, &tv);
}

/* ---- router ------------------------------------------------------------------------------ */

static bool seg_is(struct admin_req *r, int i, const char *s)
{
    return r->nseg > i && strcmp(r->seg[i], s) == 0;
}

/* A path segment decoded to a NUL byte: the error Pulsar gives for a bad name there. */
static void reply_nul_name(struct admin_req *r)
{
    int i = r->nul_seg;
    const char *what = NULL;
    bool v2 = seg_is(r, 0, "admin") && seg_is(r, 1, "v2");
    bool topics = v2 && (seg_is(r, 2, "persistent") || seg_is(r, 2, "non-persistent"));
    bool list = r->nseg == 5 || (r->nseg == 6 && seg_is(r, 5, "partitioned"));
    if (v2 && seg_is(r, 2, "tenants") && i == 3)
        what = "Tenant name is not valid";
    else if (v2 && seg_is(r, 2, "clusters") && i == 3)
        what = "Cluster name is not valid";
    else if (v2 && seg_is(r, 2, "namespaces") && i == 3 && r->nseg == 4)
        what = "Tenant name is not valid";
    else if (v2 && seg_is(r, 2, "namespaces") && (i == 3 || i == 4))
        what = "Namespace name is not valid";
    else if (topics && list && (i == 3 || i == 4))
        what = "Namespace name is not valid";
    else if (topics && i >= 3 && i <= 5)
        what = "Topic name is not valid";
    else if (seg_is(r, 0, "lookup") && i >= 4 && i <= 6)
        what = "Topic name is not valid";
    else if (topics && i == 7 && seg_is(r, 6, "subscription"))
        what = "Subscription name is not valid";
    if (what)
        admin_reply_error(r->call, 412, what);
    else
        admin_reply_error(r->call, 400, "Bad request path");
}

static void dispatch(struct admin_call *c)
{
    struct admin_req r;
    memset(&r, 0, sizeof r);
    r.a = c->a;
    r.call = c;
    r.req = c->req;
    r.nul_seg = -1;
    r.method = evhttp_request_get_command(c->req);
    if (parse_request(&r) < 0) {
        free_request(&r);
        admin_reply_error(c, 400, "Bad request path");
        return;
    }
    if (r.nul_seg >= 0) {
        reply_nul_name(&r);
        free_request(&r);
        return;
    }
    bool get = r.method == EVHTTP_REQ_GET || r.method == EVHTTP_REQ_HEAD;
    if (r.nseg == 1 && seg_is(&r, 0, "metrics") && get)
        admin_h_metrics(&r);
    else if (r.nseg == 1 && seg_is(&r, 0, "status.html") && get)
        admin_reply_raw(c, 200, "text/plain", "OK");
    else if (seg_is(&r, 0, "lookup") && seg_is(&r, 1, "v2") && seg_is(&r, 2, "topic"))
        get ? admin_h_lookup(&r) : admin_reply_bad_method(c);
    else if (!seg_is(&r, 0, "admin") || !seg_is(&r, 1, "v2") || r.nseg < 3)
        admin_reply_not_found(c);
    else if (seg_is(&r, 2, "brokers") && r.nseg == 4 && seg_is(&r, 3, "health"))
        get ? h_health(&r) : admin_reply_bad_method(c);
    else if (seg_is(&r, 2, "brokers") && r.nseg == 4 && seg_is(&r, 3, "ready"))
        get ? admin_reply_raw(c, 200, "text/plain", "ok") : admin_reply_bad_method(c);
    else if (seg_is(&r, 2, "brokers"))
        admin_h_brokers(&r);
    else if (seg_is(&r, 2, "clusters"))
        admin_h_clusters(&r);
    else if (seg_is(&r, 2, "tenants") && r.nseg <= 4)
        admin_h_tenants(&r);
    else if (seg_is(&r, 2, "namespaces") && r.nseg >= 4)
        admin_h_namespaces(&r);
    else if (seg_is(&r, 2, "persistent"))
        admin_h_persistent(&r);
    else if (seg_is(&r, 2, "non-persistent"))
        admin_reply_error(c, 405, "Non-persistent topics are not supported");
    else
        admin_reply_not_found(c);
    free_request(&r);
}

void admin_route(struct admin_call *c)
{
    dispatch(c);
}

/* evhttp's callback: a complete request. */
static void route(struct evhttp_request *req, void *arg)
{
    admin_conn_request_read(arg, req);
    dispatch(call_new(arg, req));
}

/* ---- statistics interval ----------------------------------------------------------------- */

static uint64_t mono_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000u + (uint64_t)ts.tv_nsec / 1000000u;
}

static void stats_tick(evutil_socket_t fd, short what, void *arg)
{
    (void)fd;
    (void)what;
    struct admin *a = arg;
    topic_registry_stats_update(a->env->topics, mono_ms());
    a->stats_rolls++;
}

/* ---- lifetime ---------------------------------------------------------------------------- */

struct admin *admin_new(const struct admin_env *s, struct event_base *base, const char *addr,
                        int port)
{
    struct admin *a = mg_calloc(1, sizeof *a);
    a->env = s;
    a->http = evhttp_new(base);
    if (!a->http) {
        mg_free(a);
        return NULL;
    }
    evhttp_set_allowed_methods(a->http, EVHTTP_REQ_GET | EVHTTP_REQ_PUT | EVHTTP_REQ_POST |
                                            EVHTTP_REQ_DELETE | EVHTTP_REQ_HEAD);
    evhttp_set_max_body_size(a->http, ADMIN_MAX_BODY);
    admin_conn_setup(a);
    evhttp_set_gencb(a->http, route, a);
    /* The listener pauses on EMFILE, below the descriptor reserve and while
     * maxHttpServerConnections connections are open (as Jetty's ConnectionLimit behind
     * Pulsar's key): evhttp (libevent 2.1) has no bound of its own. admin_conn.c counts each
     * connection opened and closed (mg_listener_conn_opened/closed). */
    struct mg_listener_options lo = {
        .name = "admin HTTP",
        .max_conns = s->cfg->max_http_server_connections,
        .reserve_fds = mg_fds_default_reserve(mg_fds_limit()),
    };
    a->listener = mg_listener_new(base, addr, port, &lo, NULL, NULL);
    if (!a->listener) {
        admin_conn_teardown(a);
        evhttp_free(a->http);
        mg_free(a);
        return NULL;
    }
    a->sock = evhttp_bind_listener(a->http, mg_listener_evconn(a->listener));
    if (!a->sock) {
        MG_ERROR("admin", "cannot serve HTTP on %s:%d", addr, port);
        admin_free(a);
        return NULL;
    }
    a->port = mg_listener_port(a->listener);
    int secs = s->cfg->stats_update_frequency_secs;
    a->stats_ev = event_new(base, -1, EV_PERSIST, stats_tick, a);
    struct timeval tv = {secs > 0 ? secs : 60, 0};
    event_add(a->stats_ev, &tv);
    if (s->topics)
        topic_registry_set_loaded_hook(s->topics, admin_topic_loaded, a);
    return a;
}

int admin_port(const struct admin *a)
{
    return a->port;
}

void admin_free(struct admin *a)
{
    if (!a)
        return;
    if (a->stats_ev)
        event_free(a->stats_ev);
    /* Calls still in progress end later against nothing: their requests go with the server. */
    for (struct admin_call *c = a->calls; c; c = c->next) {
        c->a = NULL;
        c->req = NULL;
    }
    a->calls = NULL;
    admin_fan_cancel_all(a);
    admin_conn_teardown(a); /* connections freed from here on count nothing */
    if (a->sock)            /* evhttp owns the evconnlistener from here and frees it */
        mg_listener_evconn_gone(a->listener);
    evhttp_free(a->http);
    mg_listener_free(a->listener);
    mg_free(a);
}
