/*
 * admin_int.h - what the admin module's files share: the server struct, one parsed request,
 * reply helpers and the handlers each file provides.
 *
 *   admin.c          server, router, reply and request helpers, the stats timer
 *   admin_res.c      clusters, brokers, tenants, namespaces (policies, retention, bundles)
 *   admin_topics.c   persistent topics, partitions, stats, internal stats, subscriptions,
 *                    lookup
 *   admin_metrics.c  /metrics (Prometheus text)
 *   admin_conn.c     per-connection limits ahead of evhttp: header size and count (431),
 *                    read deadline (408)
 *   admin_fanout.c   one call answered from sub-requests to the admin API (partitions,
 *                    bundles), each served by its owner
 *   admin_authz.c    authorization of routed calls, the permission paths
 *   admin_schemas.c  the schema registry's resources, the namespace's schema policies
 *
 * Everything runs on the loop thread of the service. Every request routed to a handler becomes a
 * struct admin_call, which lives until its one reply: every reply helper below completes the
 * call (sends the reply and frees the call), so a request is answered exactly once and the
 * number of calls still open (admin_calls_open, /metrics magnetar_admin_requests_open) must
 * come back to 0 (1 counting the /metrics request itself) once nothing is in progress.
 * Handlers that finish asynchronously copy what they need out of struct admin_req (which
 * lives only during the routing call) and keep the call. When the server is freed with calls
 * still open, those calls are detached (a and req NULL): the asynchronous step that ends one
 * must check admin_call_gone() before touching the server and then only complete it.
 */
#ifndef MG_ADMIN_INT_H
#define MG_ADMIN_INT_H

#include "admin/admin.h"
#include "topic/topic.h"

#include "util/map.h"
#include "util/ratelimit.h"
#include <event2/buffer.h>
#include <event2/http.h>
#include <event2/keyvalq_struct.h>

#include <jansson.h>
#include <stdbool.h>
#include <stdint.h>
#include <sys/queue.h>

#define ADMIN_MAX_SEGMENTS 12
#define ADMIN_MAX_BODY (1 << 20)
#define ADMIN_MAX_HEADERS 100 /* header fields of one request (Apache's LimitRequestFields) */

/* Why a connection was refused before its request reached the router (admin_conn.c). */
enum admin_refusal {
    ADMIN_REFUSED_HEADER_SIZE = 0, /* 431: over httpMaxRequestHeaderSize */
    ADMIN_REFUSED_URI_SIZE,        /* 414: the request line alone is over it (as Jetty) */
    ADMIN_REFUSED_HEADER_COUNT,    /* 431: over ADMIN_MAX_HEADERS fields */
    ADMIN_REFUSED_TIMEOUT,         /* 408: not read within httpRequestReadTimeoutSeconds */
    ADMIN_REFUSED_COUNT,
};

struct event;
struct ns_policies;
struct topic;
struct mg_listener;
struct bufferevent;
struct ssl_ctx_st;

struct admin_call;
struct admin_fan;

struct admin {
    const struct admin_env *env;      /* borrowed */
    struct evhttp *http;              /* owned */
    struct evhttp_bound_socket *sock; /* owned by http */
    struct mg_listener *listener;     /* owned; its evconnlistener is owned by http */
    int port;
    struct event *stats_ev;        /* owned: statsUpdateFrequencyInSecs timer */
    uint64_t stats_rolls;          /* intervals completed */
    LIST_HEAD(, admin_call) calls; /* requests routed and not answered yet */
    int64_t calls_open;            /* length of calls */
    uint64_t calls_total;          /* requests routed since start */
    LIST_HEAD(, admin_fan) fans;   /* fan-outs in progress */
    struct mg_map conns;           /* bufferevent pointer -> struct admin_conn (admin_conn.c) */
    uint64_t refused[ADMIN_REFUSED_COUNT]; /* connections refused, by reason */

    /* HTTPS (admin_listen_tls); port above is -1 when webServicePort is off */
    struct evhttp *https;                 /* owned; NULL when webServicePortTls is off */
    struct evhttp_bound_socket *sock_tls; /* owned by https */
    struct mg_listener *listener_tls;     /* owned; its evconnlistener is owned by https */
    struct tls_server *tls;               /* borrowed: the service's TLS context */
    struct ssl_ctx_st *client_tls; /* owned: brokerClientTlsEnabled's context, for admin_fan */
    struct mg_ratelimit rl_fan;    /* admin_fan's log of sub-requests without an answer */
};

/* One request from routing to its reply. */
struct admin_call {
    struct admin *a;             /* borrowed; NULL once the server is freed */
    struct evhttp_request *req;  /* borrowed from evhttp until the reply; NULL once freed */
    bool gated;                  /* routed again after this broker took the topic's bundle */
    bool tenant_synced;          /* routed again after reading its tenant from the store */
    bool ns_synced;              /* routed again after reading its namespace from the store */
    bool pt_synced;              /* routed again after reading partitioned metadata */
    char *role;                  /* owned: the authenticated role, or NULL (auth off) */
    LIST_ENTRY(admin_call) link; /* in a->calls while a is set */
};

/* The segments a route's pattern captures ({tenant}, {namespace}...; admin.c's
 * admin_captures lists the names): borrowed from struct admin_req's seg, NULL when the
 * pattern has none of that name. */
struct admin_path {
    const char *tenant;
    const char *ns; /* {namespace}: the namespace's local name */
    const char *topic;
    const char *sub; /* {subscription} */
    const char *cluster;
    const char *bundle;
    const char *domain; /* {domain}: persistent, non-persistent... */
    const char *arg;    /* {numMessages}, {timestamp}, {version} */
};

struct admin_req;
typedef void (*admin_handler)(struct admin_req *r);

/* One row of the route table (admin.c): the methods (EVHTTP_REQ_* bits, ADMIN_ANY) and the
 * path pattern it answers, the handler, and what the router checks before the handler runs
 * (ADMIN_R_*). A pattern is '/'-separated segments: a literal matches itself (after URL
 * decoding), {name} matches any one segment and captures it into struct admin_path, * any
 * one segment without capturing it, and a final ** the rest of the path (nothing included). */
struct admin_route {
    unsigned methods;
    const char *pattern;
    admin_handler handler;
    unsigned flags;
};

#define ADMIN_ANY (~0u)
#define ADMIN_GET_HEAD (EVHTTP_REQ_GET | EVHTTP_REQ_HEAD)

/* What the router checks before a route's handler runs (struct admin_route.flags), in this
 * order; a check that fails answers the call (or routes it again later) instead:
 *   ADMIN_R_NAMESPACE  {tenant} and {namespace} are valid names (admin_valid_name), else 412
 *                      "Namespace name is not valid" ("Topic name is not valid" with
 *                      ADMIN_R_TOPIC_NAME); r->tenant_ns is set; a namespace not cached is
 *                      read from the store once (another broker may have created it) and
 *                      the call routed again
 *   ADMIN_R_NS_EXISTS  and it exists, else 404 "Namespace does not exist"
 *   ADMIN_R_TOPIC_NAME {topic} is a topic of that namespace (r->tn), else 412 "Topic name is
 *                      not valid"; its partitioned metadata is read from the store once
 *   ADMIN_R_OWNER      the ownership gate: a topic (not a partitioned topic's base name,
 *                      whose partitions are gated one by one) is served only by the owner
 *                      of its bundle: 307 to the owner, or the bundle taken here first
 *                      (docs/admin.md §1)
 *   ADMIN_R_JSON       the body is parsed as JSON into r->body (r->body_bad when it is not
 *                      JSON); the handler decides what a missing or bad body answers */
#define ADMIN_R_NAMESPACE (1u << 0)
#define ADMIN_R_NS_EXISTS (1u << 1)
#define ADMIN_R_TOPIC_NAME (1u << 2)
#define ADMIN_R_OWNER (1u << 3)
#define ADMIN_R_JSON (1u << 4)
/* The usual combinations: a namespace's path, a topic's path, a topic's path served by
 * the owner of the topic's bundle. */
#define ADMIN_R_NS (ADMIN_R_NAMESPACE | ADMIN_R_NS_EXISTS)
#define ADMIN_R_TOPIC (ADMIN_R_NS | ADMIN_R_TOPIC_NAME)
#define ADMIN_R_GATED (ADMIN_R_TOPIC | ADMIN_R_OWNER)

/* The route table, in matching order: the first row whose pattern matches the path and whose
 * methods include the request's answers; when rows match the path but none the method, 405;
 * when none matches the path, 404 (framework-style, docs/admin.md §1). */
extern const struct admin_route admin_routes[];
extern const size_t admin_routes_count;

/* One parsed request; lives during route() only. */
struct admin_req {
    struct admin *a;
    struct admin_call *call;    /* the reply goes here */
    struct evhttp_request *req; /* borrowed from evhttp: method, path, headers, body */
    enum evhttp_cmd_type method;
    char *seg[ADMIN_MAX_SEGMENTS]; /* owned, decoded */
    int nseg;
    int nul_seg;            /* index of the first segment that decoded to a NUL byte, or -1 */
    struct evkeyvalq query; /* owned */
    const struct admin_route *route; /* the row that matched */
    struct admin_path p;             /* its captures */
    char *tenant_ns;                 /* owned: "{tenant}/{namespace}" (ADMIN_R_NAMESPACE) */
    struct topic_name tn; /* owned: the path's topic (ADMIN_R_TOPIC_NAME; a handler may move it
                           * out, leaving it zeroed) */
    json_t *body;         /* owned: the body (ADMIN_R_JSON), NULL when empty or not JSON; a
                           * handler may take it (setting it NULL) */
    bool body_bad;        /* ADMIN_R_JSON: a body is there but is not JSON */
};

/* The path's topic domain: NS_DOMAIN_NON_PERSISTENT under /admin/v2/non-persistent/, else
 * NS_DOMAIN_PERSISTENT (ns.h). */
int admin_domain(const struct admin_req *r);

/* ---- replies (admin.c): each completes (and frees) the call ------------------------------ */

void admin_reply_raw(struct admin_call *c, int code, const char *ctype, const char *body);
/* The body is moved out of buf (the caller keeps and frees buf). */
void admin_reply_buf(struct admin_call *c, int code, const char *ctype, struct evbuffer *buf);
/* Takes the reference of j. */
void admin_reply_json(struct admin_call *c, int code, json_t *j);
/* {"reason": reason} with code (docs/admin.md §1). */
void admin_reply_error(struct admin_call *c, int code, const char *reason);
void admin_reply_errorf(struct admin_call *c, int code, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
void admin_reply_no_content(struct admin_call *c);
/* 307 to location (an absolute URL), empty body. */
void admin_reply_redirect(struct admin_call *c, const char *location);
/* The web URL a redirect of c names: web_tls when c came in over HTTPS and the target has
 * one (Pulsar redirects an HTTPS request to webServiceUrlTls), else web. */
const char *admin_call_web_url(const struct admin_call *c, const char *web, const char *web_tls);
/* Framework-style (no {"reason"}) 404 and 405. */
void admin_reply_not_found(struct admin_call *c);
void admin_reply_bad_method(struct admin_call *c);
/* A list of names (ns_topics_cb, also for brokers): data is the call; 200 with a JSON
 * array of the names, or 500. */
void admin_reply_names(void *data, int status, char **names, int n);
/* ns_done_cb for metadata mutations: data is the call; 204 or 500. */
void admin_reply_done(void *data, int status);
/* True when the server was freed while c was in progress: c is then completed (freed) here
 * and the caller must drop it without touching the server. */
bool admin_call_gone(struct admin_call *c);
/* An asynchronous step of c ended with status: true when c is gone (completed, as
 * admin_call_gone) or status < 0 (answered 500 with it): the caller only frees its state. */
bool admin_call_ended(struct admin_call *c, int status);

/* ---- request helpers (admin.c) -------------------------------------------------------- */

bool admin_query_flag(struct admin_req *r, const char *key);
const char *admin_query(struct admin_req *r, const char *key);
/* The body as a NUL-terminated string (owned, mg_free), or NULL if empty or too large. */
char *admin_body_string(struct evhttp_request *req);
/* The body parsed as JSON (any value); NULL if empty. *bad is set when the body is present
 * but not JSON. */
json_t *admin_body_json(struct evhttp_request *req, bool *bad);
/* A tenant, namespace or cluster name: NamedEntity.checkName's [-=:.\w]+, not "." or ".."
 * (they would be path steps in the metadata store), at most ADMIN_MAX_NAME bytes. */
#define ADMIN_MAX_NAME 255
bool admin_valid_name(const char *s);
/* The tenant (or namespace "t/ns") of the request is not in the cache: read it from the
 * store once (another broker may have just created it) and route the call again. Returns
 * true when that read started (the call is answered later), false when the caller should
 * answer from the cache now (already read once, or no other broker writes the store). */
bool admin_refresh_tenant(struct admin_req *r, const char *tenant);
bool admin_refresh_namespace(struct admin_req *r, const char *tenant_ns);
/* The same for a partitioned topic's metadata (base full name): another broker may have
 * created or deleted it since the last refresh. */
bool admin_refresh_partitions(struct admin_req *r, const char *base_full_name);
/* The bytes of b as a NUL-terminated string (owned: mg_free); b is freed. */
char *admin_buf_string(struct evbuffer *b);
/* t's name parsed into tn (the caller finis it) and its namespace "tenant/ns" (owned:
 * mg_free); NULL (tn untouched) when the name does not parse. */
char *admin_topic_ns(struct topic *t, struct topic_name *tn);
/* ISO-8601 UTC with milliseconds ("2025-10-24T18:44:12.299Z") of a wall-clock ms time. */
void admin_iso_time(uint64_t ms, char *buf, size_t len);

/* ---- routing (admin.c) ------------------------------------------------------------------ */

/* Split a request path into decoded segments (URLDecoder semantics: %XX is a byte, '+' a
 * space; empty segments are skipped; a decoded NUL byte is kept as DEL, 0x7f, and the first
 * such segment's index goes to *nul_seg, else -1). seg gets at most max owned strings (free
 * each with mg_free). Returns the number of segments, or -MG_EINVAL for more than max. */
int admin_path_split(const char *path, char **seg, int max, int *nul_seg);
/* The next segment of a route pattern from *pos (which moves past it): its first byte, with
 * *n its length; NULL after the last one. */
const char *admin_pattern_next(const char **pos, size_t *n);
/* Match segments against a route pattern (struct admin_route). On a match, p (may be NULL)
 * gets the captures and *cap_mask (may be NULL) a bit per captured segment index. */
bool admin_path_match(const char *pattern, char *const *seg, int nseg, struct admin_path *p,
                      unsigned *cap_mask);
/* The route for method and segments: NULL when none matches, with *path_known set when some
 * row matched the path (405) rather than none (404). */
const struct admin_route *admin_route_find(enum evhttp_cmd_type method, char *const *seg, int nseg,
                                           bool *path_known);
/* The 412 reason for a path whose segment nul_seg decoded to a NUL byte, or NULL when no
 * name is expected there (400 "Bad request path"). */
const char *admin_nul_reason(char *const *seg, int nseg, int nul_seg);

/* ---- handlers ------------------------------------------------------------------------- */

/* One handler per route of admin_routes (admin.c); each answers the call, now or later. */

/* admin.c: the framework's 404 and 405 (plain text), for rows of the table */
void admin_h_not_found(struct admin_req *r);
void admin_h_bad_method(struct admin_req *r);

/* admin_res.c: clusters, brokers, tenants, namespaces */
void admin_h_clusters(struct admin_req *r);
void admin_h_cluster_get(struct admin_req *r);
void admin_h_cluster_create(struct admin_req *r);
void admin_h_cluster_update(struct admin_req *r);
void admin_h_brokers(struct admin_req *r);
void admin_h_leader_broker(struct admin_req *r);
void admin_h_version(struct admin_req *r);
void admin_h_tenants(struct admin_req *r);
void admin_h_tenant_get(struct admin_req *r);
void admin_h_tenant_create(struct admin_req *r);
void admin_h_tenant_update(struct admin_req *r);
void admin_h_tenant_delete(struct admin_req *r);
void admin_h_namespaces(struct admin_req *r);
void admin_h_namespace_create(struct admin_req *r);
void admin_h_namespace_get(struct admin_req *r);
void admin_h_namespace_delete(struct admin_req *r);
void admin_h_retention_get(struct admin_req *r);
void admin_h_retention_set(struct admin_req *r);
void admin_h_retention_remove(struct admin_req *r);
/* admin_authz.c: the permission resources, and the authorization of every routed call
 * (with authorizationEnabled): true when r may go on, else it was answered 401/403. */
void admin_h_ns_permissions(struct admin_req *r);
void admin_h_ns_permission_set(struct admin_req *r);
void admin_h_topic_permissions(struct admin_req *r);
void admin_h_topic_permission_set(struct admin_req *r);
bool admin_authorize(struct admin_req *r);
bool admin_is_tenant_admin(const struct admin_env *s, const char *tenant, const char *role);
/* A copy of tenant_ns's grants (Pulsar's AuthPolicies), with its three maps present even
 * when empty; the caller owns it. */
json_t *admin_az_grants(const struct admin_env *s, const char *tenant_ns);
void admin_h_ttl(struct admin_req *r);                  /* GET, POST and DELETE */
void admin_h_dedup(struct admin_req *r);                /* GET, POST and DELETE */
void admin_h_compaction_threshold(struct admin_req *r); /* GET, PUT and DELETE */
/* GET, POST and DELETE of the limits (.../maxProducersPerTopic...) and rates
 * (.../dispatchRate...) of a namespace, by the path's last segment; other names 404 */
void admin_h_ns_setting(struct admin_req *r);
void admin_h_backlog_quota_map(struct admin_req *r);
void admin_h_backlog_quota_set(struct admin_req *r);
void admin_h_backlog_quota_remove(struct admin_req *r);
/* .../autoTopicCreation and .../autoSubscriptionCreation: GET, POST and DELETE */
void admin_h_auto_topic(struct admin_req *r);
void admin_h_auto_sub(struct admin_req *r);
void admin_h_inactive_policies(struct admin_req *r);
void admin_h_delayed_delivery(struct admin_req *r);
/* ns_policies_fn: a namespace's policies changed (here or on another broker): apply them to
 * its loaded topics. */
void admin_policies_changed(void *arg, const char *tenant_ns);
void admin_h_bundles(struct admin_req *r);
void admin_h_namespace_unload(struct admin_req *r);
void admin_h_bundle_unload(struct admin_req *r);
/* A call on bundle r->p.bundle of r's namespace, served by its owner: true when owned here
 * (the caller serves it); else false, r answered: 412 for a range that is not one of the
 * namespace's bundles, a redirect (307) to the owner, or unowned(call) when nobody owns it. */
bool admin_bundle_here(struct admin_req *r, void (*unowned)(struct admin_call *c));
/* GET /admin/v2/non-persistent/{t}/{ns}/{bundle}: the bundle owner's non-persistent topics. */
void admin_h_np_bundle_topics(struct admin_req *r);
/* topic_loaded_fn: apply the namespace's retention policy to a freshly loaded topic. */
void admin_topic_loaded(void *arg, struct topic *t);
/* Apply the retention policy of tenant_ns to its loaded topics. */
void admin_apply_retention(struct admin *a, const char *tenant_ns);

/* admin_res.c: the request's namespace policies (false once answered 404), and storing them
 * (applied to the loaded topics, then 204) */
bool admin_res_policies(struct admin_req *r, struct ns_policies *p);
void admin_res_policies_store(struct admin_req *r, const struct ns_policies *p);

/* admin_schemas.c: /admin/v2/schemas/..., the namespace's schemaCompatibilityStrategy and
 * isAllowAutoUpdateSchema */
void admin_h_schema_get(struct admin_req *r);
void admin_h_schema_get_version(struct admin_req *r);
void admin_h_schemas_all(struct admin_req *r);
void admin_h_schema_post(struct admin_req *r);
void admin_h_schema_delete(struct admin_req *r);
void admin_h_schema_compatibility(struct admin_req *r);
void admin_h_schema_version(struct admin_req *r);
void admin_h_ns_schema_strategy_get(struct admin_req *r);
void admin_h_ns_schema_strategy_set(struct admin_req *r);
void admin_h_ns_auto_update_get(struct admin_req *r);
void admin_h_ns_auto_update_set(struct admin_req *r);

/* admin_topics.c: topics, partitions, subscriptions, lookup */
void admin_h_topics(struct admin_req *r);
void admin_h_partitioned_topics(struct admin_req *r);
void admin_h_partitions_get(struct admin_req *r);
void admin_h_partitions_create(struct admin_req *r);
void admin_h_partitions_update(struct admin_req *r);
void admin_h_partitions_delete(struct admin_req *r);
void admin_h_topic_create(struct admin_req *r);
void admin_h_topic_delete(struct admin_req *r);
void admin_h_topic_stats(struct admin_req *r);
void admin_h_partitioned_stats(struct admin_req *r);
void admin_h_internal_stats(struct admin_req *r);
void admin_h_partitioned_internal_stats(struct admin_req *r);
void admin_h_subscriptions(struct admin_req *r);
void admin_h_topic_unload(struct admin_req *r);
void admin_h_topic_terminate(struct admin_req *r);
void admin_h_partitions_terminate(struct admin_req *r);
void admin_h_last_message_id(struct admin_req *r);
void admin_h_compaction_trigger(struct admin_req *r);
void admin_h_compaction_status(struct admin_req *r);
/* admin_topicpol.c: topic-level policies */
/* GET, POST and DELETE of a topic policy (deduplicationEnabled, maxProducers, ...: the path's
 * last segment names it) */
void admin_h_topic_policy(struct admin_req *r);
/* A topic (base: a plain topic's or a partitioned topic's name, never a partition's) was
 * deleted: its schema (a delete marker) and its topic policies go too, as Pulsar's
 * PersistentTopic.delete does. admin_gone_done is an ns_done_cb: with status 0 it drops them
 * and then calls cb(data, 0) (their own failures are logged), else cb(data, status); it
 * frees g (admin_gone_free when it is never called). admin_gone_reply answers the call
 * (data) with 204 or 500. */
struct admin_gone;
struct admin_gone *admin_gone_new(const struct admin_env *env, const char *base,
                                  void (*cb)(void *data, int status), void *data);
void admin_gone_done(void *g, int status);
void admin_gone_free(struct admin_gone *g);
void admin_gone_reply(void *call, int status);
void admin_h_sub_create(struct admin_req *r);
void admin_h_sub_delete(struct admin_req *r);
void admin_h_sub_skip(struct admin_req *r);
void admin_h_sub_skip_all(struct admin_req *r);
void admin_h_sub_expire(struct admin_req *r);
void admin_h_sub_reset_by_time(struct admin_req *r);
void admin_h_sub_reset_by_id(struct admin_req *r);
void admin_h_sub_peek(struct admin_req *r);
void admin_h_examine_message(struct admin_req *r);
void admin_h_lookup(struct admin_req *r);
void admin_h_lookup_bundle(struct admin_req *r);
/* ADMIN_R_OWNER: true when r may be served here now; otherwise the call is answered (307,
 * 503...) or routed again once this broker took the topic's bundle. */
bool admin_topic_gate(struct admin_req *r);
/* Route a call again: used once a topic request waited for its bundle's ownership, or a
 * resource was read from the store. */
void admin_route(struct admin_call *c);

/* admin_metrics.c */
void admin_h_metrics(struct admin_req *r);

/* admin_console.c: the web console's files (broker/admin/console/), embedded at build time
 * in admin_console_assets.c (generated by broker/admin/console/gen.sh) */
struct admin_console_asset {
    const char *name; /* file name, e.g. "console.js" */
    const unsigned char *data;
    size_t len;
};
extern const struct admin_console_asset admin_console_assets[];
extern const size_t admin_console_assets_count;
/* GET / (index.html) and /console/{file} */
void admin_h_console(struct admin_req *r);
/* true for the console's paths: served without authentication (the page holds no data; its
 * requests to the REST API carry the token the user gives it) */
bool admin_console_public(const char *path);

/* ---- connections (admin_conn.c) -------------------------------------------------------- */

/* Give evhttp filtered connections with the header limits and the read deadline; set its
 * own limits and idle timeout (admin_new). */
void admin_conn_setup(struct admin *a);
/* The same for the HTTPS server (admin_listen_tls): each connection is the same filter
 * over a TLS bufferevent of a->tls, and counted on a->listener_tls. */
void admin_conn_setup_tls(struct admin *a);
/* The router got req: its connection's next bytes begin a new request. */
void admin_conn_request_read(struct admin *a, struct evhttp_request *req);
/* The server is being freed: connections freed later must not touch it. */
void admin_conn_teardown(struct admin *a);

/* ---- fan-out (admin_fanout.c) ----------------------------------------------------------- */

/* The answer to one sub-request. */
struct admin_sub {
    char *path;   /* owned: path and query it was sent with */
    int status;   /* HTTP status; 0 when no answer came (unreachable, timed out) */
    char *body;   /* owned; NULL without an answer */
    json_t *json; /* owned: body parsed as JSON, or NULL */
};
/* All sub-requests answered: answer c (subs are freed after the call; arg is the caller's
 * and is the caller's to free). */
typedef void (*admin_fan_done)(struct admin_call *c, void *arg, struct admin_sub *subs, int n);
/* Send n sub-requests (method, each path with its query; the same body, or NULL) to this
 * broker's admin web service, following redirects to the brokers that serve them. paths
 * (each an owned string) are taken. done runs once all are answered (possibly before this
 * returns, when none could be sent), or never if the server is freed first: then free_arg
 * (may be NULL) frees arg and the call is completed. */
void admin_fan(struct admin_call *c, enum evhttp_cmd_type method, char **paths, int n,
               const char *body, admin_fan_done done, void (*free_arg)(void *), void *arg);
/* The server is going away: cancel every fan-out (admin_free). */
void admin_fan_cancel_all(struct admin *a);
/* Index of the first answer that is not 2xx and not ignore_status (0: none ignored; a
 * sub-request without an answer, status 0, is always an error), or -1. */
int admin_fan_first_error(const struct admin_sub *subs, int n, int ignore_status);
/* Answer c as the sub-request answered ({"reason"} passed on; 503 for no answer). */
void admin_fan_reply_error(struct admin_call *c, const struct admin_sub *sub);

#endif
