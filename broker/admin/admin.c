/*
 * admin.c - admin HTTP server (webServicePort): router, reply helpers, health probes and the
 * statistics interval timer.
 *
 * Happy path: evhttp hands every request to admin_on_request(); the path is split into
 * decoded segments (URLDecoder semantics: %XX and '+' as space) and matched against the
 * route table admin_routes, one row per path and method(s) served: the router checks what
 * the row's flags ask (names, the namespace, the topic's owner, the body) and runs its
 * handler, in admin_res.c (clusters, brokers, tenants, namespaces), admin_topics.c
 * (persistent topics, lookup), admin_metrics.c (/metrics) or here (probes). Mutations
 * answer 204, reads 200 with JSON, errors a status with {"reason": "..."} as Pulsar does
 * (docs/admin.md §1). A timer rolls the topics' statistics every statsUpdateFrequencyInSecs
 * (rates are averages over it).
 *
 * Failure modes: unknown paths 404 and wrong methods 405 (framework-style, plain text, as
 * Jersey answers them); unparsable bodies 400; everything else as the reference gives it.
 * The health check answers 500 when the heartbeat topic cannot be loaded within 10 s
 * (metadata store or bookies unusable), 503 while the service shuts down.
 */
#include "admin/admin_int.h"
#include "auth/auth.h"
#include "config/cfg.h"
#include "ns/ns.h"
#include "tls/tls.h"
#include "topic/topic.h"
#include "util/alloc.h"
#include "util/err.h"
#include "util/listen.h"
#include "util/log.h"
#include "util/loop.h"

#include <arpa/inet.h>
#include <ctype.h>
#include <errno.h>
#include <event2/buffer.h>
#include <event2/bufferevent.h>
#include <event2/event.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/queue.h>
#include <sys/socket.h>
#include <time.h>

#define HEALTH_TIMEOUT_S 10

/* ---- responses --------------------------------------------------------------------------- */

static const char *admin_phrase_of(int code)
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

static struct admin_call *admin_call_new(struct admin *a, struct evhttp_request *req)
{
    struct admin_call *c = mg_calloc(1, sizeof *c);
    c->a = a;
    c->req = req;
    LIST_INSERT_HEAD(&a->calls, c, link);
    a->calls_open++;
    a->calls_total++;
    return c;
}

/* The reply went out (or cannot any more): forget the call. */
static void admin_call_done(struct admin_call *c)
{
    if (c->a) {
        LIST_REMOVE(c, link);
        c->a->calls_open--;
    }
    mg_free(c->role);
    mg_free(c);
}

bool admin_call_gone(struct admin_call *c)
{
    if (c->a)
        return false;
    admin_call_done(c);
    return true;
}

bool admin_call_ended(struct admin_call *c, int status)
{
    if (admin_call_gone(c))
        return true;
    if (status >= 0)
        return false;
    admin_reply_error(c, 500, mg_strerror(status));
    return true;
}

void admin_reply_buf(struct admin_call *c, int code, const char *ctype, struct evbuffer *buf)
{
    if (c->req) {
        if (ctype)
            evhttp_add_header(evhttp_request_get_output_headers(c->req), "Content-Type", ctype);
        evhttp_send_reply(c->req, code, admin_phrase_of(code), buf);
    }
    admin_call_done(c);
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

const char *admin_call_web_url(const struct admin_call *c, const char *web, const char *web_tls)
{
    struct evhttp_connection *evcon = c->req ? evhttp_request_get_connection(c->req) : NULL;
    bool https = evcon && tls_bev_is_tls(evhttp_connection_get_bufferevent(evcon));
    return https && web_tls ? web_tls : web;
}

void admin_reply_not_found(struct admin_call *c)
{
    admin_reply_raw(c, 404, "text/plain", "Not Found");
}

void admin_reply_bad_method(struct admin_call *c)
{
    admin_reply_raw(c, 405, "text/plain", "Method Not Allowed");
}

void admin_reply_names(void *data, int status, char **names, int n)
{
    struct admin_call *c = data;
    if (status < 0) {
        admin_reply_error(c, 500, mg_strerror(status));
        return;
    }
    json_t *arr = json_array();
    for (int i = 0; i < n; i++)
        json_array_append_new(arr, json_string(names[i]));
    admin_reply_json(c, 200, arr);
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
static char *admin_url_decode(const char *s, size_t n, bool *nul)
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

int admin_path_split(const char *path, char **seg, int max, int *nul_seg)
{
    int n = 0;
    *nul_seg = -1;
    for (const char *p = path; *p;) {
        while (*p == '/')
            p++;
        if (!*p)
            break;
        const char *e = strchr(p, '/');
        size_t len = e ? (size_t)(e - p) : strlen(p);
        if (n == max) {
            for (int i = 0; i < n; i++)
                mg_free(seg[i]);
            return -MG_EINVAL;
        }
        bool nul;
        seg[n] = admin_url_decode(p, len, &nul);
        if (nul && *nul_seg < 0)
            *nul_seg = n;
        n++;
        p += len;
    }
    return n;
}

static int admin_parse_request(struct admin_req *r)
{
    const struct evhttp_uri *uri = evhttp_request_get_evhttp_uri(r->req);
    const char *path = evhttp_uri_get_path(uri);
    const char *query = evhttp_uri_get_query(uri);
    TAILQ_INIT(&r->query);
    if (query && evhttp_parse_query_str(query, &r->query) < 0)
        return -MG_EINVAL;
    int n = admin_path_split(path ? path : "/", r->seg, ADMIN_MAX_SEGMENTS, &r->nul_seg);
    if (n < 0)
        return n;
    r->nseg = n;
    return 0;
}

static void admin_free_request(struct admin_req *r)
{
    for (int i = 0; i < r->nseg; i++)
        mg_free(r->seg[i]);
    evhttp_clear_headers(&r->query);
    mg_free(r->tenant_ns);
    topic_name_fini(&r->tn);
    json_decref(r->body);
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

static void admin_refreshed(void *data, int status)
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

/* Read name from the store with sync (ns_tenant_sync, ns_namespace_sync,
 * ns_partitions_sync) and route the call again, unless the call did once (*synced) or the
 * read cannot start: true when it started. */
static bool admin_refresh(struct admin_req *r, bool *synced,
                          int (*sync)(struct ns *, const char *, ns_done_cb, void *),
                          const char *name)
{
    if (*synced || sync(r->a->env->ns, name, admin_refreshed, r->call) < 0)
        return false;
    *synced = true;
    return true;
}

bool admin_refresh_tenant(struct admin_req *r, const char *tenant)
{
    return admin_refresh(r, &r->call->tenant_synced, ns_tenant_sync, tenant);
}

bool admin_refresh_partitions(struct admin_req *r, const char *base_full_name)
{
    return admin_refresh(r, &r->call->pt_synced, ns_partitions_sync, base_full_name);
}

bool admin_refresh_namespace(struct admin_req *r, const char *tenant_ns)
{
    return admin_refresh(r, &r->call->ns_synced, ns_namespace_sync, tenant_ns);
}

char *admin_buf_string(struct evbuffer *b)
{
    size_t n = evbuffer_get_length(b);
    char *s = mg_malloc(n + 1);
    evbuffer_remove(b, s, n);
    s[n] = '\0';
    evbuffer_free(b);
    return s;
}

char *admin_topic_ns(struct topic *t, struct topic_name *tn)
{
    if (topic_name_parse(topic_full_name(t), tn) < 0)
        return NULL;
    return mg_asprintf("%s/%s", tn->tenant, tn->ns);
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

static void admin_health_unref(struct health_op *h)
{
    if (--h->refs == 0) {
        event_free(h->timer);
        mg_free(h);
    }
}

static void admin_health_loaded(struct topic *t, int status, void *data)
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
    admin_health_unref(h);
}

static void admin_health_timeout(evutil_socket_t fd, short what, void *arg)
{
    (void)fd;
    (void)what;
    struct health_op *h = arg;
    if (!h->replied) {
        h->replied = true;
        admin_reply_raw(h->call, 500, "text/plain", "health check timed out");
    }
    admin_health_unref(h);
}

/* GET /admin/v2/brokers/health: Pulsar writes and reads its heartbeat topic; we load
 * (creating) it, which takes the metadata store and, with durable storage, a ledger on the
 * bookies. */
static void admin_h_health(struct admin_req *r)
{
    const struct admin_env *s = r->a->env;
    const char *v2 = admin_query(r, "topicVersion");
    char *name = v2 && strcmp(v2, "V2") == 0
                     ? mg_asprintf("persistent://pulsar/%s/healthcheck", ns_broker_id(s->ns))
                     : mg_asprintf("persistent://pulsar/%s/%s/healthcheck", s->cfg->cluster_name,
                                   ns_broker_id(s->ns));
    struct health_op *h = mg_calloc(1, sizeof *h);
    h->call = r->call;
    h->timer = evtimer_new(s->base, admin_health_timeout, h);
    h->refs = 2;
    int rc = topic_get(s->topics, name, true, admin_health_loaded, h);
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

/* ---- routes ------------------------------------------------------------------------------ */

static void admin_h_status(struct admin_req *r)
{
    admin_reply_raw(r->call, 200, "text/plain", "OK");
}

static void admin_h_ready(struct admin_req *r)
{
    admin_reply_raw(r->call, 200, "text/plain", "ok");
}

/* What the non-persistent domain does not have here (no storage: no cursors to move, no
 * backlog, compaction or termination; Pulsar refuses most of these on such topics too). */
static void admin_h_non_persistent(struct admin_req *r)
{
    admin_reply_error(r->call, 405, "Not supported on a non-persistent topic");
}

int admin_domain(const struct admin_req *r)
{
    return r->nseg > 2 && strcmp(r->seg[0], "admin") == 0 &&
                   strcmp(r->seg[2], "non-persistent") == 0
               ? NS_DOMAIN_NON_PERSISTENT
               : NS_DOMAIN_PERSISTENT;
}

void admin_h_not_found(struct admin_req *r)
{
    admin_reply_not_found(r->call);
}

void admin_h_bad_method(struct admin_req *r)
{
    admin_reply_bad_method(r->call);
}

/* Every path the admin server answers (docs/admin.md), in matching order: the first row
 * whose pattern matches the path and whose methods include the request's is served. Rows
 * with ANY after a path's own rows give that path's answer to the other methods where it is
 * not the framework's immediate 405: 404 for the probes, and 405 (or 404) only after the
 * path's checks (its flags), as the resources did before the table. */
#define GH ADMIN_GET_HEAD
#define GET EVHTTP_REQ_GET
#define PUT EVHTTP_REQ_PUT
#define POST EVHTTP_REQ_POST
#define DEL EVHTTP_REQ_DELETE
#define PP (EVHTTP_REQ_PUT | EVHTTP_REQ_POST)
#define ANY ADMIN_ANY
#define R_NAMED ADMIN_R_NAMESPACE
#define R_NS ADMIN_R_NS
#define R_TOPIC ADMIN_R_TOPIC
#define R_GATED ADMIN_R_GATED
#define R_JSON ADMIN_R_JSON
#define LK "/lookup/v2/topic"
#define NS "/admin/v2/namespaces/{tenant}/{namespace}"
#define PT "/admin/v2/persistent/{tenant}/{namespace}"
#define T PT "/{topic}"
#define SUB T "/subscription/{subscription}"
#define NPT "/admin/v2/non-persistent/{tenant}/{namespace}"
#define NT NPT "/{topic}"
#define SCH "/admin/v2/schemas/{tenant}/{namespace}/{topic}"
/* The topic routes both domains have: D is the domain's namespace path, DT its topic; GET of
 * the path G (one segment below D) goes to GH with flags GF (non-persistent: Pulsar's
 * getListFromBundle; persistent: the topic, 405). */
/* clang-format off */
#define DOMAIN_TOPIC_ROUTES(D, DT, G, GH, GF)                                                      \
    {GET,  D,                          admin_h_topics,               R_NS},                        \
    {ANY,  D,                          admin_h_bad_method,           R_NS},                        \
    {GET,  D "/partitioned",           admin_h_partitioned_topics,   R_NS},                        \
    {ANY,  D "/partitioned",           admin_h_bad_method,           R_NS},                        \
    {GET,  DT "/partitions",           admin_h_partitions_get,       R_TOPIC},                     \
    {PUT,  DT "/partitions",           admin_h_partitions_create,    R_TOPIC | R_JSON},            \
    {POST, DT "/partitions",           admin_h_partitions_update,    R_TOPIC | R_JSON},            \
    {DEL,  DT "/partitions",           admin_h_partitions_delete,    R_TOPIC},                     \
    {ANY,  DT "/partitions",           admin_h_bad_method,           R_TOPIC},                     \
    {GET,  G,                          GH,                           GF},                          \
    {PUT,  DT,                         admin_h_topic_create,         R_GATED},                     \
    {DEL,  DT,                         admin_h_topic_delete,         R_GATED},                     \
    {ANY,  DT,                         admin_h_bad_method,           R_GATED},                     \
    {GET,  DT "/stats",                admin_h_topic_stats,          R_GATED},                     \
    {GET,  DT "/partitioned-stats",    admin_h_partitioned_stats,    R_GATED},                     \
    {GET,  DT "/internalStats",        admin_h_internal_stats,       R_GATED},                     \
    {GET,  DT "/subscriptions",        admin_h_subscriptions,        R_GATED},                     \
    {PUT,  DT "/unload",               admin_h_topic_unload,         R_GATED}
/* clang-format on */
const struct admin_route admin_routes[] = {
    /* clang-format off */
    /* probes, metrics, HTTP lookup (docs/admin.md §2, §8, §9) */
    {GH,   "/metrics",                        admin_h_metrics,                    0},
    {ANY,  "/metrics",                        admin_h_not_found,                  0},
    {GH,   "/status.html",                    admin_h_status,                     0},
    {ANY,  "/status.html",                    admin_h_not_found,                  0},
    {GH,   "/",                               admin_h_console,                    0},
    {GH,   "/console/*",                      admin_h_console,                    0},
    {GH,   LK "/persistent/{tenant}/{namespace}/{topic}",
                                              admin_h_lookup,                     0},
    {GH,   LK "/persistent/{tenant}/{namespace}/{topic}/bundle",
                                              admin_h_lookup_bundle,              0},
    {GH,   LK "/{domain}/{tenant}/{namespace}/{topic}",
                                              admin_h_lookup,                     0},
    {GH,   LK "/{domain}/{tenant}/{namespace}/{topic}/bundle",
                                              admin_h_lookup_bundle,              0},
    {GH,   LK "/**",                          admin_h_not_found,                  0},
    /* brokers and clusters (§2) */
    {GH,   "/admin/v2/brokers/health",        admin_h_health,                     0},
    {GH,   "/admin/v2/brokers/ready",         admin_h_ready,                      0},
    {GH,   "/admin/v2/brokers",               admin_h_brokers,                    0},
    {GH,   "/admin/v2/brokers/leaderBroker",  admin_h_leader_broker,              0},
    {GH,   "/admin/v2/brokers/version",       admin_h_version,                    0},
    {GH,   "/admin/v2/brokers/{cluster}",     admin_h_brokers,                    0},
    {GH,   "/admin/v2/brokers/**",            admin_h_not_found,                  0},
    {GET,  "/admin/v2/clusters",              admin_h_clusters,                   0},
    {GET,  "/admin/v2/clusters/{cluster}",    admin_h_cluster_get,                0},
    {PUT,  "/admin/v2/clusters/{cluster}",    admin_h_cluster_create,             0},
    {POST, "/admin/v2/clusters/{cluster}",    admin_h_cluster_update,             0},
    /* tenants (§3) */
    {GET,  "/admin/v2/tenants",               admin_h_tenants,                    0},
    {GET,  "/admin/v2/tenants/{tenant}",      admin_h_tenant_get,                 0},
    {PUT,  "/admin/v2/tenants/{tenant}",      admin_h_tenant_create,              R_JSON},
    {POST, "/admin/v2/tenants/{tenant}",      admin_h_tenant_update,              R_JSON},
    {DEL,  "/admin/v2/tenants/{tenant}",      admin_h_tenant_delete,              0},
    /* namespaces (§4) */
    {GET,  "/admin/v2/namespaces/{tenant}",   admin_h_namespaces,                 0},
    {PUT,  NS,                                admin_h_namespace_create,           R_JSON},
    {GET,  NS,                                admin_h_namespace_get,              R_NS},
    {DEL,  NS,                                admin_h_namespace_delete,           R_NAMED},
    {ANY,  NS,                                admin_h_bad_method,                 R_NAMED},
    {GET,  NS "/topics",                      admin_h_topics,                     R_NS},
    {ANY,  NS "/topics",                      admin_h_bad_method,                 R_NS},
    {GET,  NS "/retention",                   admin_h_retention_get,              R_NS},
    {POST, NS "/retention",                   admin_h_retention_set,              R_NS | R_JSON},
    {DEL,  NS "/retention",                   admin_h_retention_remove,           R_NS},
    {ANY,  NS "/retention",                   admin_h_bad_method,                 R_NS},
    {GET,  NS "/messageTTL",                  admin_h_ttl,                        R_NS},
    {POST, NS "/messageTTL",                  admin_h_ttl,                        R_NS | R_JSON},
    {DEL,  NS "/messageTTL",                  admin_h_ttl,                        R_NS},
    {ANY,  NS "/messageTTL",                  admin_h_bad_method,                 R_NS},
    {GET,  NS "/autoTopicCreation",           admin_h_auto_topic,                 R_NS},
    {POST, NS "/autoTopicCreation",           admin_h_auto_topic,                 R_NS | R_JSON},
    {DEL,  NS "/autoTopicCreation",           admin_h_auto_topic,                 R_NS},
    {ANY,  NS "/autoTopicCreation",           admin_h_bad_method,                 R_NS},
    {GET,  NS "/autoSubscriptionCreation",    admin_h_auto_sub,                   R_NS},
    {POST, NS "/autoSubscriptionCreation",    admin_h_auto_sub,                   R_NS | R_JSON},
    {DEL,  NS "/autoSubscriptionCreation",    admin_h_auto_sub,                   R_NS},
    {ANY,  NS "/autoSubscriptionCreation",    admin_h_bad_method,                 R_NS},
    /* GET, POST, DELETE (admin_res.c) */
    {ANY,  NS "/inactiveTopicPolicies",       admin_h_inactive_policies,          R_NS | R_JSON},
    {ANY,  NS "/delayedDelivery",             admin_h_delayed_delivery,           R_NS | R_JSON},
    {GET,  NS "/deduplication",               admin_h_dedup,                      R_NS},
    {POST, NS "/deduplication",               admin_h_dedup,                      R_NS | R_JSON},
    {DEL,  NS "/deduplication",               admin_h_dedup,                      R_NS},
    {GET,  NS "/compactionThreshold",         admin_h_compaction_threshold,       R_NS},
    {PUT,  NS "/compactionThreshold",         admin_h_compaction_threshold,       R_NS | R_JSON},
    {DEL,  NS "/compactionThreshold",         admin_h_compaction_threshold,       R_NS},
    {ANY,  NS "/deduplication",               admin_h_bad_method,                 R_NS},
    {GET,  NS "/backlogQuotaMap",             admin_h_backlog_quota_map,          R_NS},
    {ANY,  NS "/backlogQuotaMap",             admin_h_bad_method,                 R_NS},
    {POST, NS "/backlogQuota",                admin_h_backlog_quota_set,          R_NS | R_JSON},
    {DEL,  NS "/backlogQuota",                admin_h_backlog_quota_remove,       R_NS},
    {ANY,  NS "/backlogQuota",                admin_h_bad_method,                 R_NS},
    {GET,  NS "/bundles",                     admin_h_bundles,                    R_NS},
    {ANY,  NS "/bundles",                     admin_h_bad_method,                 R_NS},
    {PP,   NS "/unload",                      admin_h_namespace_unload,           R_NS},
    {ANY,  NS "/unload",                      admin_h_bad_method,                 R_NS},
    {PP,   NS "/{bundle}/unload",             admin_h_bundle_unload,              R_NS},
    {ANY,  NS "/{bundle}/unload",             admin_h_bad_method,                 R_NS},
    {GET,  NS "/permissions",                 admin_h_ns_permissions,             R_NS},
    {POST, NS "/permissions/*",               admin_h_ns_permission_set,          R_NS | R_JSON},
    {DEL,  NS "/permissions/*",               admin_h_ns_permission_set,          R_NS},
    {GET,  NS "/schemaCompatibilityStrategy", admin_h_ns_schema_strategy_get,     R_NS},
    {PP,   NS "/schemaCompatibilityStrategy", admin_h_ns_schema_strategy_set,     R_NS | R_JSON},
    {GET,  NS "/isAllowAutoUpdateSchema",     admin_h_ns_auto_update_get,         R_NS},
    {POST, NS "/isAllowAutoUpdateSchema",     admin_h_ns_auto_update_set,         R_NS | R_JSON},
    /* limits and rates: GET, POST, DELETE (admin_res.c) */
    {ANY,  NS "/maxProducersPerTopic",        admin_h_ns_setting,                 R_NS | R_JSON},
    {ANY,  NS "/maxConsumersPerTopic",        admin_h_ns_setting,                 R_NS | R_JSON},
    {ANY,  NS "/maxConsumersPerSubscription", admin_h_ns_setting,                 R_NS | R_JSON},
    {ANY,  NS "/maxSubscriptionsPerTopic",    admin_h_ns_setting,                 R_NS | R_JSON},
    {ANY,  NS "/maxUnackedMessagesPerConsumer", admin_h_ns_setting,                 R_NS | R_JSON},
    {ANY,  NS "/maxUnackedMessagesPerSubscription", admin_h_ns_setting,                 R_NS | R_JSON},
    {ANY,  NS "/maxTopicsPerNamespace",       admin_h_ns_setting,                 R_NS | R_JSON},
    {ANY,  NS "/dispatchRate",                admin_h_ns_setting,                 R_NS | R_JSON},
    {ANY,  NS "/subscriptionDispatchRate",    admin_h_ns_setting,                 R_NS | R_JSON},
    {ANY,  NS "/publishRate",                 admin_h_ns_setting,                 R_NS | R_JSON},
    {ANY,  NS "/**",                          admin_h_not_found,                  R_NS},
    /* persistent topics (§5-§7): T is a topic; the operations of a partitioned topic run on
     * its partitions, each served by its owner (admin_topics.c, admin_fanout.c) */
    DOMAIN_TOPIC_ROUTES(PT, T, T, admin_h_bad_method, R_GATED),
    {GET,  T "/partitioned-internalStats",    admin_h_partitioned_internal_stats, R_GATED},
    {POST, T "/partitions/terminate",         admin_h_partitions_terminate,       R_GATED},
    {POST, T "/terminate/partitions",         admin_h_partitions_terminate,       R_GATED},
    {GET,  T "/lastMessageId",                admin_h_last_message_id,            R_GATED},
    {PUT,  T "/compaction",                   admin_h_compaction_trigger,         R_GATED},
    {GET,  T "/compaction",                   admin_h_compaction_status,          R_GATED},
    {ANY,  T "/compaction",                   admin_h_bad_method,                 R_GATED},
    {ANY,  T "/deduplicationEnabled",         admin_h_topic_policy,               R_TOPIC | R_JSON},
    {ANY,  T "/maxProducers",                 admin_h_topic_policy,               R_TOPIC | R_JSON},
    {ANY,  T "/maxConsumers",                 admin_h_topic_policy,               R_TOPIC | R_JSON},
    {ANY,  T "/maxConsumersPerSubscription",  admin_h_topic_policy,               R_TOPIC | R_JSON},
    {ANY,  T "/maxSubscriptionsPerTopic",     admin_h_topic_policy,               R_TOPIC | R_JSON},
    {ANY,  T "/maxUnackedMessagesOnConsumer", admin_h_topic_policy,               R_TOPIC | R_JSON},
    {ANY,  T "/maxUnackedMessagesOnSubscription", admin_h_topic_policy,               R_TOPIC | R_JSON},
    {ANY,  T "/dispatchRate",                 admin_h_topic_policy,               R_TOPIC | R_JSON},
    {ANY,  T "/subscriptionDispatchRate",     admin_h_topic_policy,               R_TOPIC | R_JSON},
    {ANY,  T "/publishRate",                  admin_h_topic_policy,               R_TOPIC | R_JSON},
    {ANY,  T "/inactiveTopicPolicies",        admin_h_topic_policy,               R_TOPIC | R_JSON},
    {ANY,  T "/delayedDelivery",              admin_h_topic_policy,               R_TOPIC | R_JSON},
    {POST, T "/terminate",                    admin_h_topic_terminate,            R_GATED},
    {PUT,  SUB,                               admin_h_sub_create,                 R_GATED | R_JSON},
    {DEL,  SUB,                               admin_h_sub_delete,                 R_GATED},
    {POST, SUB "/skip/{numMessages}",         admin_h_sub_skip,                   R_GATED},
    {POST, SUB "/skip_all",                   admin_h_sub_skip_all,               R_GATED},
    {POST, SUB "/resetcursor/{timestamp}",    admin_h_sub_reset_by_time,          R_GATED},
    {POST, SUB "/expireMessages/{expireTimeInSeconds}", admin_h_sub_expire,       R_GATED},
    {POST, T "/all_subscription/expireMessages/{expireTimeInSeconds}",
                                              admin_h_sub_expire,                 R_GATED},
    {POST, SUB "/resetcursor",                admin_h_sub_reset_by_id,            R_GATED | R_JSON},
    {GET,  SUB "/position/{messagePosition}", admin_h_sub_peek,                   R_GATED},
    {GET,  T "/examinemessage",               admin_h_examine_message,            R_GATED},
    {GET,  T "/permissions",                  admin_h_topic_permissions,          R_TOPIC},
    {POST, T "/permissions/*",                admin_h_topic_permission_set,       R_TOPIC | R_JSON},
    {DEL,  T "/permissions/*",                admin_h_topic_permission_set,       R_TOPIC},
    {ANY,  T "/**",                           admin_h_not_found,                  R_GATED},
    /* non-persistent topics: the same handlers, for the loaded topics (nothing is stored) */
    DOMAIN_TOPIC_ROUTES(NPT, NT, NPT "/{bundle}", admin_h_np_bundle_topics, R_NS),
    {ANY,  "/admin/v2/non-persistent/**",     admin_h_non_persistent,             0},
    /* the schema registry (admin_schemas.c): any broker answers, the store is shared */
    {GET,  SCH "/schema",                     admin_h_schema_get,                 R_TOPIC},
    {POST, SCH "/schema",                     admin_h_schema_post,                R_TOPIC | R_JSON},
    {DEL,  SCH "/schema",                     admin_h_schema_delete,              R_TOPIC},
    {GET,  SCH "/schema/{version}",           admin_h_schema_get_version,         R_TOPIC},
    {GET,  SCH "/schemas",                    admin_h_schemas_all,                R_TOPIC},
    {POST, SCH "/compatibility",              admin_h_schema_compatibility,       R_TOPIC | R_JSON},
    {POST, SCH "/version",                    admin_h_schema_version,             R_TOPIC | R_JSON},
    /* clang-format on */
};
#undef GH
#undef GET
#undef PUT
#undef POST
#undef DEL
#undef PP
#undef ANY
#undef R_NAMED
#undef R_NS
#undef R_TOPIC
#undef R_GATED
#undef R_JSON
#undef LK
#undef NS
#undef PT
#undef T
#undef SUB
#undef NPT
#undef NT
#undef DOMAIN_TOPIC_ROUTES
#undef SCH
const size_t admin_routes_count = sizeof admin_routes / sizeof *admin_routes;

/* A path segment that decoded to a NUL byte is refused before routing, with the error
 * Pulsar gives for a bad name there: the reason of the first rule whose pattern matches
 * the path and captures that segment, else 400 "Bad request path". */
static const struct {
    const char *pattern;
    const char *reason;
} admin_nul_rules[] = {
    /* clang-format off */
    {"/admin/v2/tenants/{tenant}/**",                             "Tenant name is not valid"},
    {"/admin/v2/clusters/{cluster}/**",                           "Cluster name is not valid"},
    {"/admin/v2/namespaces/{tenant}",                             "Tenant name is not valid"},
    {"/admin/v2/namespaces/{tenant}/{namespace}/**",              "Namespace name is not valid"},
    {"/admin/v2/persistent/{tenant}/{namespace}",                 "Namespace name is not valid"},
    {"/admin/v2/persistent/{tenant}/{namespace}/partitioned",     "Namespace name is not valid"},
    {"/admin/v2/persistent/{tenant}",                             "Topic name is not valid"},
    {"/admin/v2/persistent/{tenant}/{namespace}/{topic}/**",      "Topic name is not valid"},
    {"/admin/v2/persistent/*/*/*/subscription/{subscription}/**", "Subscription name is not valid"},
    {"/admin/v2/non-persistent/{tenant}/{namespace}",             "Namespace name is not valid"},
    {"/admin/v2/non-persistent/{tenant}/{namespace}/partitioned", "Namespace name is not valid"},
    {"/admin/v2/non-persistent/{tenant}",                         "Topic name is not valid"},
    {"/admin/v2/non-persistent/{tenant}/{namespace}/{topic}/**",  "Topic name is not valid"},
    {"/admin/v2/non-persistent/*/*/*/subscription/{subscription}/**",
                                                                 "Subscription name is not valid"},
    {"/lookup/*/*/*/{tenant}",                                    "Topic name is not valid"},
    {"/lookup/*/*/*/{tenant}/{namespace}",                        "Topic name is not valid"},
    {"/lookup/*/*/*/{tenant}/{namespace}/{topic}/**",             "Topic name is not valid"},
    /* clang-format on */
};

/* The names a pattern may capture, and where they go. */
static const struct {
    const char *name;
    size_t off;
} admin_captures[] = {
    {"tenant", offsetof(struct admin_path, tenant)},
    {"namespace", offsetof(struct admin_path, ns)},
    {"topic", offsetof(struct admin_path, topic)},
    {"subscription", offsetof(struct admin_path, sub)},
    {"cluster", offsetof(struct admin_path, cluster)},
    {"bundle", offsetof(struct admin_path, bundle)},
    {"domain", offsetof(struct admin_path, domain)},
    {"numMessages", offsetof(struct admin_path, arg)},
    {"timestamp", offsetof(struct admin_path, arg)},
    {"expireTimeInSeconds", offsetof(struct admin_path, arg)},
    {"messagePosition", offsetof(struct admin_path, arg)},
    {"version", offsetof(struct admin_path, arg)},
};

/* Where capture {name} (n bytes, without the braces) goes, or -1 for an unknown name. */
static long admin_capture_off(const char *name, size_t n)
{
    for (size_t i = 0; i < sizeof admin_captures / sizeof *admin_captures; i++)
        if (strlen(admin_captures[i].name) == n && memcmp(admin_captures[i].name, name, n) == 0)
            return (long)admin_captures[i].off;
    return -1;
}

const char *admin_pattern_next(const char **pos, size_t *n)
{
    const char *s = *pos;
    while (*s == '/')
        s++;
    if (!*s)
        return NULL;
    const char *e = strchr(s, '/');
    *n = e ? (size_t)(e - s) : strlen(s);
    *pos = s + *n;
    return s;
}

bool admin_path_match(const char *pattern, char *const *seg, int nseg, struct admin_path *p,
                      unsigned *cap_mask)
{
    struct admin_path caps = {0};
    unsigned mask = 0;
    int i = 0;
    const char *pos = pattern, *s;
    size_t n;
    while ((s = admin_pattern_next(&pos, &n))) {
        if (n == 2 && memcmp(s, "**", 2) == 0) {
            i = nseg; /* the rest of the path, nothing included */
            break;
        }
        if (i == nseg)
            return false;
        if (n >= 2 && s[0] == '{' && s[n - 1] == '}') {
            long off = admin_capture_off(s + 1, n - 2);
            MG_ASSERT(off >= 0); /* admin_routes_check */
            *(const char **)((char *)&caps + off) = seg[i];
            mask |= 1u << i;
        } else if (!(n == 1 && *s == '*') && (strlen(seg[i]) != n || memcmp(seg[i], s, n) != 0)) {
            return false;
        }
        i++;
    }
    if (i != nseg)
        return false;
    if (p)
        *p = caps;
    if (cap_mask)
        *cap_mask = mask;
    return true;
}

const struct admin_route *admin_route_find(enum evhttp_cmd_type method, char *const *seg, int nseg,
                                           bool *path_known)
{
    *path_known = false;
    for (size_t i = 0; i < admin_routes_count; i++) {
        const struct admin_route *rt = &admin_routes[i];
        if (!admin_path_match(rt->pattern, seg, nseg, NULL, NULL))
            continue;
        if (rt->methods & (unsigned)method)
            return rt;
        *path_known = true;
    }
    return NULL;
}

const char *admin_nul_reason(char *const *seg, int nseg, int nul_seg)
{
    for (size_t i = 0; i < sizeof admin_nul_rules / sizeof *admin_nul_rules; i++) {
        unsigned mask = 0;
        if (nul_seg >= 0 && nul_seg < ADMIN_MAX_SEGMENTS &&
            admin_path_match(admin_nul_rules[i].pattern, seg, nseg, NULL, &mask) &&
            (mask & (1u << nul_seg)))
            return admin_nul_rules[i].reason;
    }
    return NULL;
}

/* Every capture of every pattern has a known name (a typo would never match). */
static void admin_routes_check(void)
{
    for (size_t i = 0; i < admin_routes_count + sizeof admin_nul_rules / sizeof *admin_nul_rules;
         i++) {
        const char *pos = i < admin_routes_count ? admin_routes[i].pattern
                                                 : admin_nul_rules[i - admin_routes_count].pattern;
        const char *s;
        size_t n;
        while ((s = admin_pattern_next(&pos, &n)))
            MG_ASSERT(s[0] != '{' ||
                      (n >= 2 && s[n - 1] == '}' && admin_capture_off(s + 1, n - 2) >= 0));
    }
}

/* ---- router ------------------------------------------------------------------------------ */

/* The checks of the route's flags (admin_int.h, ADMIN_R_*). False when the call was answered
 * here, or will be routed again (after a read of the store, or once this broker owns the
 * topic's bundle). */
static bool admin_route_checks(struct admin_req *r)
{
    const struct admin_env *s = r->a->env;
    unsigned f = r->route->flags;
    if (f & ADMIN_R_NAMESPACE) {
        if (!admin_valid_name(r->p.tenant) || !admin_valid_name(r->p.ns)) {
            admin_reply_error(r->call, 412,
                              f & ADMIN_R_TOPIC_NAME ? "Topic name is not valid"
                                                     : "Namespace name is not valid");
            return false;
        }
        r->tenant_ns = mg_asprintf("%s/%s", r->p.tenant, r->p.ns);
        if (!ns_namespace_exists(s->ns, r->tenant_ns)) {
            if (admin_refresh_namespace(r, r->tenant_ns))
                return false; /* created on another broker? routed again once read */
            if (f & ADMIN_R_NS_EXISTS) {
                admin_reply_error(r->call, 404, "Namespace does not exist");
                return false;
            }
        }
    }
    if (f & ADMIN_R_TOPIC_NAME) {
        char *name = mg_asprintf(
            "%s://%s/%s", admin_domain(r) == NS_DOMAIN_PERSISTENT ? "persistent" : "non-persistent",
            r->tenant_ns, r->p.topic);
        int rc = topic_name_parse(name, &r->tn);
        mg_free(name);
        /* The local name is one path segment: a '/' in it (%2F) would name a topic of
         * another (legacy) namespace than the path's. */
        if (rc < 0 || strcmp(r->tn.tenant, r->p.tenant) != 0 || strcmp(r->tn.ns, r->p.ns) != 0) {
            topic_name_fini(&r->tn);
            memset(&r->tn, 0, sizeof r->tn);
            admin_reply_error(r->call, 412, "Topic name is not valid");
            return false;
        }
        /* With other brokers writing the store, its partitioned metadata first: created or
         * deleted elsewhere since the last refresh? (One read of the store per call.) */
        if (admin_refresh_partitions(r, r->tn.base))
            return false;
    }
    if ((f & ADMIN_R_OWNER) && ns_partitions_get(s->ns, r->tn.full) == 0 && !admin_topic_gate(r))
        return false;
    if (f & ADMIN_R_JSON)
        r->body = admin_body_json(r->req, &r->body_bad);
    return true;
}

static void admin_dispatch(struct admin_call *c)
{
    struct admin_req r;
    memset(&r, 0, sizeof r);
    r.a = c->a;
    r.call = c;
    r.req = c->req;
    r.nul_seg = -1;
    r.method = evhttp_request_get_command(c->req);
    if (admin_parse_request(&r) < 0) {
        admin_free_request(&r);
        admin_reply_error(c, 400, "Bad request path");
        return;
    }
    if (r.nul_seg >= 0) {
        const char *why = admin_nul_reason(r.seg, r.nseg, r.nul_seg);
        admin_reply_error(c, why ? 412 : 400, why ? why : "Bad request path");
        admin_free_request(&r);
        return;
    }
    bool known = false;
    r.route = admin_route_find(r.method, r.seg, r.nseg, &known);
    if (!r.route) {
        if (known)
            admin_reply_bad_method(c);
        else
            admin_reply_not_found(c);
    } else {
        admin_path_match(r.route->pattern, r.seg, r.nseg, &r.p, NULL);
        if (admin_route_checks(&r) && admin_authorize(&r))
            r.route->handler(&r);
    }
    admin_free_request(&r);
}

void admin_route(struct admin_call *c)
{
    admin_dispatch(c);
}

/* With authentication on, a request needs "Authorization: Bearer <token>", except
 * /status.html, the console's files and, unless authenticateMetricsEndpoint, /metrics (as
 * Pulsar's web service).
 * true when c may go on (c->role set when authenticated); else it was answered 401 with
 * the servlet error page Pulsar's AuthenticationFilter sends. */
static bool admin_authenticate(struct admin_call *c)
{
    const struct auth *au = c->a->env->auth;
    if (!auth_enabled(au))
        return true;
    const struct evhttp_uri *u = evhttp_request_get_evhttp_uri(c->req);
    const char *path = u ? evhttp_uri_get_path(u) : NULL;
    if (path && (strcmp(path, "/status.html") == 0 || admin_console_public(path) ||
                 (strcmp(path, "/metrics") == 0 && !auth_metrics_protected(au))))
        return true;
    const char *h = evhttp_find_header(evhttp_request_get_input_headers(c->req), "Authorization");
    struct auth_id id;
    char why[256] = "", why_tls[160] = "";
    /* as Pulsar's AuthenticationFilter: each configured provider is tried, the first that
     * authenticates gives the role (a Bearer token, then an HTTPS client certificate) */
    int rc = -MG_EAUTH;
    if (h || !auth_tls_enabled(au))
        rc = auth_check_http(au, h, mg_loop_wall_ms(c->a->env->loop), &id, why, sizeof why);
    if (rc < 0 && auth_tls_enabled(au)) {
        struct evhttp_connection *evcon = evhttp_request_get_connection(c->req);
        bool trusted = false;
        struct x509_st *cert =
            evcon ? tls_peer_cert(evhttp_connection_get_bufferevent(evcon), &trusted) : NULL;
        rc = auth_check_cert(au, cert, trusted, &id, why_tls, sizeof why_tls);
    }
    if (rc == 0) {
        c->role = id.role; /* taken over */
        return true;
    }
    MG_DEBUG("admin", "%s: authentication failed: %s%s%s", path ? path : "?", why,
             why[0] && why_tls[0] ? "; " : "", why_tls);
    admin_reply_raw(c, 401, "text/html;charset=utf-8",
                    "<html>\n<head>\n<meta http-equiv=\"Content-Type\" "
                    "content=\"text/html;charset=utf-8\"/>\n"
                    "<title>Error 401 Authentication required</title>\n</head>\n"
                    "<body><h2>HTTP ERROR 401 Authentication required</h2>\n<table>\n"
                    "<tr><th>STATUS:</th><td>401</td></tr>\n"
                    "<tr><th>MESSAGE:</th><td>Authentication required</td></tr>\n"
                    "</table>\n</body>\n</html>\n");
    return false;
}

/* evhttp's callback: a complete request. */
static void admin_on_request(struct evhttp_request *req, void *arg)
{
    admin_conn_request_read(arg, req);
    struct admin_call *c = admin_call_new(arg, req);
    if (admin_authenticate(c))
        admin_dispatch(c);
}

/* ---- statistics interval ----------------------------------------------------------------- */

static void admin_stats_tick(evutil_socket_t fd, short what, void *arg)
{
    (void)fd;
    (void)what;
    struct admin *a = arg;
    topic_registry_stats_update(a->env->topics, mg_loop_mono_ms(a->env->loop));
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
    if (s->cfg->broker_client_tls_enabled) {
        /* the fan-out's calls to brokers' HTTPS ports: their certificates verified */
        const struct tls_link_conf tc = {
            .pem = {.cert = s->cfg->broker_client_cert_path,
                    .key = s->cfg->broker_client_key_path,
                    .trust = s->cfg->broker_client_trust_ca_path,
                    .cert_key = "brokerClientCertificateFilePath",
                    .key_key = "brokerClientKeyFilePath",
                    .trust_key = "brokerClientTrustCertsFilePath"},
        };
        char err[512];
        a->client_tls = tls_link_ctx_new(&tc, err, sizeof err);
        if (!a->client_tls) {
            MG_ERROR("admin", "brokerClientTlsEnabled: %s", err);
            evhttp_free(a->http);
            mg_free(a);
            return NULL;
        }
    }
    evhttp_set_allowed_methods(a->http, EVHTTP_REQ_GET | EVHTTP_REQ_PUT | EVHTTP_REQ_POST |
                                            EVHTTP_REQ_DELETE | EVHTTP_REQ_HEAD);
    evhttp_set_max_body_size(a->http, ADMIN_MAX_BODY);
    admin_conn_setup(a);
    admin_routes_check();
    evhttp_set_gencb(a->http, admin_on_request, a);
    /* The listener pauses on EMFILE, below the descriptor reserve and while
     * maxHttpServerConnections connections are open (as Jetty's ConnectionLimit behind
     * Pulsar's key): evhttp (libevent 2.1) has no bound of its own. admin_conn.c counts each
     * connection opened and closed (mg_listener_conn_opened/closed). */
    struct mg_listener_options lo = {
        .name = "admin HTTP",
        .max_conns = s->cfg->max_http_server_connections,
        .reserve_fds = mg_fds_default_reserve(mg_fds_limit()),
    };
    a->port = -1;
    if (port >= 0) {
        a->listener = mg_listener_new(base, addr, port, &lo, NULL, NULL);
        if (!a->listener) {
            admin_conn_teardown(a);
            evhttp_free(a->http);
            tls_link_ctx_free(a->client_tls);
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
    }
    int secs = s->cfg->stats_update_frequency_secs;
    a->stats_ev = event_new(base, -1, EV_PERSIST, admin_stats_tick, a);
    struct timeval tv = {secs > 0 ? secs : 60, 0};
    event_add(a->stats_ev, &tv);
    if (s->topics)
        topic_registry_set_loaded_hook(s->topics, admin_topic_loaded, a);
    if (s->ns)
        ns_set_policies_hook(s->ns, admin_policies_changed, a);
    return a;
}

int admin_port(const struct admin *a)
{
    return a->port;
}

int admin_listen_tls(struct admin *a, const char *addr, int port, struct tls_server *tls)
{
    const struct cfg *cfg = a->env->cfg;
    struct event_base *base = a->env->base;
    a->tls = tls;
    a->https = evhttp_new(base);
    if (!a->https)
        return -1;
    evhttp_set_allowed_methods(a->https, EVHTTP_REQ_GET | EVHTTP_REQ_PUT | EVHTTP_REQ_POST |
                                             EVHTTP_REQ_DELETE | EVHTTP_REQ_HEAD);
    evhttp_set_max_body_size(a->https, ADMIN_MAX_BODY);
    admin_conn_setup_tls(a); /* the same head filter and limits as the plain port */
    evhttp_set_gencb(a->https, admin_on_request, a);
    struct mg_listener_options lo = {
        .name = "admin HTTPS",
        .max_conns = cfg->max_http_server_connections,
        .reserve_fds = mg_fds_default_reserve(mg_fds_limit()),
    };
    a->listener_tls = mg_listener_new(base, addr, port, &lo, NULL, NULL);
    if (!a->listener_tls)
        return -1;
    a->sock_tls = evhttp_bind_listener(a->https, mg_listener_evconn(a->listener_tls));
    if (!a->sock_tls) {
        MG_ERROR("admin", "cannot serve HTTPS on %s:%d", addr, port);
        return -1;
    }
    return mg_listener_port(a->listener_tls);
}

void admin_free(struct admin *a)
{
    if (!a)
        return;
    mg_event_free(a->stats_ev);
    if (a->env->ns)
        ns_set_policies_hook(a->env->ns, NULL, NULL);
    /* Calls still in progress end later against nothing: their requests go with the server. */
    struct admin_call *c;
    LIST_FOREACH(c, &a->calls, link)
    {
        c->a = NULL;
        c->req = NULL;
    }
    LIST_INIT(&a->calls);
    admin_fan_cancel_all(a);
    admin_conn_teardown(a); /* connections freed from here on count nothing */
    if (a->sock)            /* evhttp owns the evconnlistener from here and frees it */
        mg_listener_evconn_gone(a->listener);
    evhttp_free(a->http);
    mg_listener_free(a->listener);
    if (a->sock_tls)
        mg_listener_evconn_gone(a->listener_tls);
    if (a->https)
        evhttp_free(a->https);
    mg_listener_free(a->listener_tls);
    tls_link_ctx_free(a->client_tls);
    mg_free(a);
}
