/*
 * admin_int.h - what the admin module's files share: the server struct, one parsed request,
 * reply helpers and the handlers each file provides.
 *
 *   admin.c          server, router, reply and request helpers, the stats timer
 *   admin_res.c      clusters, brokers, tenants, namespaces (policies, retention, bundles)
 *   admin_topics.c   persistent topics, partitions, stats, internal stats, subscriptions,
 *                    lookup
 *   admin_metrics.c  /metrics (Prometheus text)
 *
 * Everything runs on the loop thread of the svc. Handlers that finish asynchronously copy
 * what they need out of struct admin_req (which lives only during the routing call) and keep
 * the struct evhttp_request, which evhttp keeps until a reply is sent.
 */
#ifndef MG_ADMIN_INT_H
#define MG_ADMIN_INT_H

#include "admin/admin.h"

#include "util/map.h"
#include <event2/http.h>
#include <event2/keyvalq_struct.h>

#include <jansson.h>
#include <stdbool.h>
#include <stdint.h>

#define ADMIN_MAX_SEGMENTS 12
#define ADMIN_MAX_BODY (1 << 20)

struct event;
struct topic;
struct mg_listener;
struct bufferevent;

struct admin {
    struct svc *svc;                  /* borrowed */
    struct evhttp *http;              /* owned */
    struct evhttp_bound_socket *sock; /* owned by http */
    struct mg_listener *listener;     /* owned; its evconnlistener is owned by http */
    struct bufferevent **new_bevs;    /* owned array: connections accepted this loop pass,
                                         each holding a reference, whose close is not yet
                                         tracked (admin_new's connection accounting) */
    int n_new_bevs, cap_new_bevs;
    struct event *track_ev; /* owned: tracks new_bevs once evhttp set them up */
    bool freeing;           /* admin_free: evhttp_free's close callbacks count nothing */
    int port;
    struct event *stats_ev;   /* owned: statsUpdateFrequencyInSecs timer */
    uint64_t stats_rolls;     /* intervals completed */
    struct mg_map owned_reqs; /* requests routed again after this broker took their topic's
                                 bundle (evhttp_request pointer -> 1): not gated twice */
};

/* One parsed request; lives during route() only. */
struct admin_req {
    struct admin *a;
    struct evhttp_request *req; /* borrowed from evhttp */
    enum evhttp_cmd_type method;
    char *seg[ADMIN_MAX_SEGMENTS]; /* owned, decoded */
    int nseg;
    struct evkeyvalq query; /* owned */
};

/* ---- replies (admin.c) ---------------------------------------------------------------- */

void admin_reply_raw(struct evhttp_request *req, int code, const char *ctype, const char *body);
/* Takes the reference of j. */
void admin_reply_json(struct evhttp_request *req, int code, json_t *j);
/* {"reason": reason} with code (docs/admin.md §1). */
void admin_reply_error(struct evhttp_request *req, int code, const char *reason);
void admin_reply_errorf(struct evhttp_request *req, int code, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
void admin_reply_no_content(struct evhttp_request *req);
/* Framework-style (no {"reason"}) 404 and 405. */
void admin_reply_not_found(struct evhttp_request *req);
void admin_reply_bad_method(struct evhttp_request *req);
/* svc_done_cb for metadata mutations: data is the evhttp_request; 204 or 500. */
void admin_reply_done(void *data, int status);

/* ---- request helpers (admin.c) -------------------------------------------------------- */

bool admin_query_flag(struct admin_req *r, const char *key);
const char *admin_query(struct admin_req *r, const char *key);
/* The body as a NUL-terminated string (owned, mg_free), or NULL if empty or too large. */
char *admin_body_string(struct evhttp_request *req);
/* The body parsed as JSON (any value); NULL if empty. *bad is set when the body is present
 * but not JSON. */
json_t *admin_body_json(struct evhttp_request *req, bool *bad);
/* NamedEntity.checkName: [-=:.\w]+ */
bool admin_valid_name(const char *s);
/* ISO-8601 UTC with milliseconds ("2025-10-24T18:44:12.299Z") of a wall-clock ms time. */
void admin_iso_time(uint64_t ms, char *buf, size_t len);

/* ---- handlers ------------------------------------------------------------------------- */

/* admin_res.c */
void admin_h_clusters(struct admin_req *r);
void admin_h_brokers(struct admin_req *r);
void admin_h_tenants(struct admin_req *r);
void admin_h_namespaces(struct admin_req *r);
/* topic_loaded_fn: apply the namespace's retention policy to a freshly loaded topic. */
void admin_topic_loaded(void *arg, struct topic *t);
/* Apply the retention policy of tenant_ns to its loaded topics. */
void admin_apply_retention(struct admin *a, const char *tenant_ns);

/* admin_topics.c */
void admin_h_persistent(struct admin_req *r);
/* Route a request (again): used once a topic request waited for its bundle's ownership. */
void admin_route(struct evhttp_request *req, struct admin *a);
void admin_h_lookup(struct admin_req *r);

/* admin_metrics.c */
void admin_h_metrics(struct admin_req *r);

#endif
