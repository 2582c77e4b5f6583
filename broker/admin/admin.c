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
#include "svc/svc.h"
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

void admin_reply_raw(struct evhttp_request *req, int code, const char *ctype, const char *body)
{
    struct evbuffer *b = evbuffer_new();
    if (body)
        evbuffer_add(b, body, strlen(body));
    if (ctype)
        evhttp_add_header(evhttp_request_get_output_headers(req), "Content-Type", ctype);
    evhttp_send_reply(req, code, phrase_of(code), b);
    evbuffer_free(b);
}

void admin_reply_json(struct evhttp_request *req, int code, json_t *j)
{
    char *s = json_dumps(j, JSON_COMPACT | JSON_ENCODE_ANY | JSON_REAL_PRECISION(17));
    json_decref(j);
    admin_reply_raw(req, code, "application/json", s);
    free(s);
}

void admin_reply_error(struct evhttp_request *req, int code, const char *reason)
{
    admin_reply_json(req, code, json_pack("{s:s}", "reason", reason));
}

void admin_reply_errorf(struct evhttp_request *req, int code, const char *fmt, ...)
{
    char buf[512];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(buf, sizeof buf, fmt, ap);
    va_end(ap);
    admin_reply_error(req, code, buf);
}

void admin_reply_no_content(struct evhttp_request *req)
{
    admin_reply_raw(req, 204, NULL, NULL);
}

void admin_reply_not_found(struct evhttp_request *req)
{
    admin_reply_raw(req, 404, "text/plain", "Not Found");
}

void admin_reply_bad_method(struct evhttp_request *req)
{
    admin_reply_raw(req, 405, "text/plain", "Method Not Allowed");
}

void admin_reply_done(void *data, int status)
{
    struct evhttp_request *req = data;
    if (status < 0)
        admin_reply_error(req, 500, mg_strerror(status));
    else
        admin_reply_no_content(req);
}

/* ---- request helpers --------------------------------------------------------------------- */

static char *url_decode(const char *s, size_t n)
{
    char *tmp = mg_strndup(s, n);
    size_t len = 0;
    char *dec = evhttp_uridecode(tmp, 1, &len);
    mg_free(tmp);
    if (!dec)
        return mg_strdup("");
    /* A decoded %00 cannot live in a C string: keep it as DEL (0x7f), a control character
     * every name check refuses, instead of cutting the name there ("a%00b" is not "a"). */
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
        r->seg[r->nseg++] = url_decode(p, n);
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
    if (!*s)
        return false;
    for (; *s; s++)
        if (!isalnum((unsigned char)*s) && !strchr("-=:._", *s))
            return false;
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
    struct evhttp_request *req; /* borrowed until replied */
    struct event *timer;        /* owned */
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
            admin_reply_raw(h->req, 500, "text/plain", mg_strerror(status));
        else
            admin_reply_raw(h->req, 200, "text/plain", "ok");
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
        admin_reply_raw(h->req, 500, "text/plain", "health check timed out");
    }
    health_unref(h);
}

/* GET /admin/v2/brokers/health: Pulsar writes and reads its heartbeat topic; we load
 * (creating) it, which takes the metadata store and, with durable storage, a ledger on the
 * bookies. */
static void h_health(struct admin_req *r)
{
    struct svc *s = r->a->svc;
    const char *v2 = admin_query(r, "topicVersion");
    char *name = v2 && strcmp(v2, "V2") == 0
                     ? mg_asprintf("persistent://pulsar/%s/healthcheck", svc_broker_id(s))
                     : mg_asprintf("persistent://pulsar/%s/%s/healthcheck",
                                   svc_cfg(s)->cluster_name, svc_broker_id(s));
    struct health_op *h = mg_calloc(1, sizeof *h);
    h->req = r->req;
    h->timer = evtimer_new(svc_base(s), health_timeout, h);
    h->refs = 2;
    int rc = topic_get(svc_topics(s), name, true, health_loaded, h);
    mg_free(name);
    if (rc < 0) {
        event_free(h->timer);
        mg_free(h);
        return admin_reply_raw(r->req, 500, "text/plain", mg_strerror(rc));
    }
    struct timeval tv = {HEALTH_TIMEOUT_S, 0};
    evtimer_add(h->timer, &tv);
}

/* ---- router ------------------------------------------------------------------------------ */

static bool seg_is(struct admin_req *r, int i, const char *s)
{
    return r->nseg > i && strcmp(r->seg[i], s) == 0;
}

static void route(struct evhttp_request *req, void *arg);

void admin_route(struct evhttp_request *req, struct admin *a)
{
    route(req, a);
}

static void route(struct evhttp_request *req, void *arg)
{
    struct admin_req r;
    memset(&r, 0, sizeof r);
    r.a = arg;
    r.req = req;
    r.method = evhttp_request_get_command(req);
    if (parse_request(&r) < 0) {
        free_request(&r);
        return admin_reply_error(req, 400, "Bad request path");
    }
    bool get = r.method == EVHTTP_REQ_GET || r.method == EVHTTP_REQ_HEAD;
    if (r.nseg == 1 && seg_is(&r, 0, "metrics") && get)
        admin_h_metrics(&r);
    else if (r.nseg == 1 && seg_is(&r, 0, "status.html") && get)
        admin_reply_raw(req, 200, "text/plain", "OK");
    else if (seg_is(&r, 0, "lookup") && seg_is(&r, 1, "v2") && seg_is(&r, 2, "topic"))
        get ? admin_h_lookup(&r) : admin_reply_bad_method(req);
    else if (!seg_is(&r, 0, "admin") || !seg_is(&r, 1, "v2") || r.nseg < 3)
        admin_reply_not_found(req);
    else if (seg_is(&r, 2, "brokers") && r.nseg == 4 && seg_is(&r, 3, "health"))
        get ? h_health(&r) : admin_reply_bad_method(req);
    else if (seg_is(&r, 2, "brokers") && r.nseg == 4 && seg_is(&r, 3, "ready"))
        get ? admin_reply_raw(req, 200, "text/plain", "ok") : admin_reply_bad_method(req);
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
        admin_reply_error(req, 405, "Non-persistent topics are not supported");
    else
        admin_reply_not_found(req);
    free_request(&r);
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
    topic_registry_stats_update(svc_topics(a->svc), mono_ms());
    a->stats_rolls++;
}

/* ---- lifetime ---------------------------------------------------------------------------- */

/*
 * Connection accounting for the admin port. evhttp (libevent 2.1) has no bound on its
 * connections and owns the accept callback of the listener it is given, so: the listener is
 * an mg_listener (pauses on EMFILE and below the descriptor reserve, and while
 * maxHttpServerConnections connections are open, as Jetty's ConnectionLimit behind
 * Pulsar's key); evhttp creates each connection's bufferevent through http_bev_cb, which
 * counts it; once evhttp has set the connection up (same loop pass, before any I/O on it),
 * http_track_cb registers a close callback that counts it closed. A connection evhttp
 * dropped before that is counted closed there.
 */
static void http_closed_cb(struct evhttp_connection *evcon, void *arg)
{
    (void)evcon;
    struct admin *a = arg;
    if (!a->freeing)
        mg_listener_conn_closed(a->listener);
}

static void http_track_cb(evutil_socket_t fd, short what, void *arg)
{
    (void)fd;
    (void)what;
    struct admin *a = arg;
    for (int i = 0; i < a->n_new_bevs; i++) {
        struct bufferevent *bev = a->new_bevs[i];
        bufferevent_event_cb ecb = NULL;
        void *cbarg = NULL;
        bufferevent_getcb(bev, NULL, NULL, &ecb, &cbarg);
        /* evhttp's callbacks carry the connection; they are gone once it was freed */
        struct evhttp_connection *evcon = cbarg;
        if (ecb && evcon && evhttp_connection_get_bufferevent(evcon) == bev)
            evhttp_connection_set_closecb(evcon, http_closed_cb, a);
        else
            mg_listener_conn_closed(a->listener);
        bufferevent_decref(bev);
    }
    a->n_new_bevs = 0;
}

static struct bufferevent *http_bev_cb(struct event_base *base, void *arg)
{
    struct admin *a = arg;
    struct bufferevent *bev = bufferevent_socket_new(base, -1, BEV_OPT_CLOSE_ON_FREE);
    if (!bev)
        return NULL;         /* evhttp makes its own; that connection goes uncounted */
    bufferevent_incref(bev); /* until http_track_cb looked at it */
    if (a->n_new_bevs == a->cap_new_bevs) {
        a->cap_new_bevs = a->cap_new_bevs ? a->cap_new_bevs * 2 : 16;
        a->new_bevs = mg_realloc(a->new_bevs, (size_t)a->cap_new_bevs * sizeof *a->new_bevs);
    }
    a->new_bevs[a->n_new_bevs++] = bev;
    mg_listener_conn_opened(a->listener); /* may pause accepting */
    event_active(a->track_ev, EV_TIMEOUT, 1);
    return bev;
}

struct admin *admin_new(struct svc *s, struct event_base *base, const char *addr, int port)
{
    struct admin *a = mg_calloc(1, sizeof *a);
    a->svc = s;
    mg_map_init(&a->owned_reqs);
    a->http = evhttp_new(base);
    if (!a->http) {
        mg_free(a);
        return NULL;
    }
    evhttp_set_allowed_methods(a->http, EVHTTP_REQ_GET | EVHTTP_REQ_PUT | EVHTTP_REQ_POST |
                                            EVHTTP_REQ_DELETE | EVHTTP_REQ_HEAD);
    evhttp_set_max_body_size(a->http, ADMIN_MAX_BODY);
    evhttp_set_gencb(a->http, route, a);
    struct mg_listener_options lo = {
        .name = "admin HTTP",
        .max_conns = svc_cfg(s)->max_http_server_connections,
        .reserve_fds = mg_fds_default_reserve(mg_fds_limit()),
    };
    a->listener = mg_listener_new(base, addr, port, &lo, NULL, NULL);
    if (!a->listener) {
        evhttp_free(a->http);
        mg_free(a);
        return NULL;
    }
    a->track_ev = event_new(base, -1, 0, http_track_cb, a);
    evhttp_set_bevcb(a->http, http_bev_cb, a);
    a->sock = evhttp_bind_listener(a->http, mg_listener_evconn(a->listener));
    if (!a->sock) {
        MG_ERROR("admin", "cannot serve HTTP on %s:%d", addr, port);
        admin_free(a);
        return NULL;
    }
    a->port = mg_listener_port(a->listener);
    int secs = svc_cfg(s)->stats_update_frequency_secs;
    a->stats_ev = event_new(base, -1, EV_PERSIST, stats_tick, a);
    struct timeval tv = {secs > 0 ? secs : 60, 0};
    event_add(a->stats_ev, &tv);
    if (svc_topics(s))
        topic_registry_set_loaded_hook(svc_topics(s), admin_topic_loaded, a);
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
    if (a->track_ev)
        event_free(a->track_ev);
    for (int i = 0; i < a->n_new_bevs; i++)
        bufferevent_decref(a->new_bevs[i]);
    mg_free(a->new_bevs);
    a->freeing = true;
    if (a->sock) /* evhttp owns the evconnlistener from here and frees it */
        mg_listener_evconn_gone(a->listener);
    evhttp_free(a->http);
    mg_listener_free(a->listener);
    mg_map_fini(&a->owned_reqs);
    mg_free(a);
}
