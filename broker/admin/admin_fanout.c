/*
 * admin_fanout.c - one admin call made of several sub-requests to the admin web service.
 *
 * Pulsar's broker serves an operation on a partitioned topic, or on every bundle of a
 * namespace, by calling its own admin API once per partition (or bundle) and combining the
 * answers: each sub-request is served by the broker that owns that partition's bundle,
 * whichever broker received the original call. admin_fan does the same: the sub-requests
 * go to this broker's own web service over HTTP (HTTPS with brokerClientTlsEnabled, the
 * certificate verified against brokerClientTrustCertsFilePath), where the ownership gate
 * serves them or redirects them (307) to the owner (its HTTPS URL when the sub-request came
 * over HTTPS); redirects are followed here, each over the scheme its Location names. When every
 * sub-request has an answer the caller's done function runs with all of them.
 *
 * Happy path: at most ADMIN_FAN_PARALLEL sub-requests are in flight; each has its own
 * connection ("Connection: close"), a timeout (ADMIN_FAN_TIMEOUT_S) and at most
 * ADMIN_FAN_REDIRECTS redirects. Failure modes: a sub-request that cannot be sent, times
 * out or loses its connection has status 0 (the caller answers 503 for it); a redirect
 * without a usable Location keeps its 307. When the admin server is freed first, the
 * sub-requests in flight are cancelled and the fan is freed with its argument (free_arg),
 * without done.
 */
#include "admin/admin_int.h"
#include "auth/auth.h"
#include "ns/ns.h"
#include "tls/tls.h"
#include "util/alloc.h"
#include "util/http.h"
#include "util/log.h"

#include <event2/bufferevent.h>
#include <event2/event.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define ADMIN_FAN_PARALLEL 8
#define ADMIN_FAN_REDIRECTS 5
#define ADMIN_FAN_TIMEOUT_S 30

struct fan_req {
    struct admin_fan *f;
    int idx;
    int hops;
    struct evhttp_request *req;     /* in flight, or NULL */
    struct evhttp_connection *conn; /* req's (freed on completion): for the log of a failure */
    bool sending;                   /* inside evhttp_make_request */
    bool failed_sync;               /* evhttp answered (failed) it before make_request returned */
};

struct admin_fan {
    struct admin *a;         /* borrowed */
    struct admin_call *call; /* the original call, answered by done */
    enum evhttp_cmd_type method;
    char *body;             /* owned, or NULL */
    char *authz;            /* owned: the Authorization header of the sub-requests, or NULL */
    struct admin_sub *subs; /* owned: one per sub-request */
    struct fan_req *reqs;   /* owned: one per sub-request */
    int n, next, pending;
    admin_fan_done done;
    void (*free_arg)(void *);
    void *arg;
    LIST_ENTRY(admin_fan) link; /* in a->fans */
};

static void admin_fan_free(struct admin_fan *f)
{
    LIST_REMOVE(f, link);
    for (int i = 0; i < f->n; i++) {
        mg_free(f->subs[i].path);
        mg_free(f->subs[i].body);
        json_decref(f->subs[i].json);
    }
    mg_free(f->subs);
    mg_free(f->reqs);
    mg_free(f->body);
    mg_free(f->authz);
    mg_free(f);
}

static int admin_fan_send(struct fan_req *r, const struct evhttp_uri *to, const char *path);

/* Everything answered: hand over to the caller. */
static void admin_fan_finish(struct admin_fan *f)
{
    for (int i = 0; i < f->n; i++)
        if (f->subs[i].body)
            f->subs[i].json = json_loads(f->subs[i].body, JSON_DECODE_ANY, NULL);
    f->done(f->call, f->arg, f->subs, f->n);
    admin_fan_free(f);
}

static void admin_fan_start_next(struct admin_fan *f)
{
    /* brokerClientTlsEnabled: our own HTTPS port, whose redirects name the owners' */
    const char *web = ns_web_url(f->a->env->ns);
    if (f->a->client_tls && ns_web_url_tls(f->a->env->ns))
        web = ns_web_url_tls(f->a->env->ns);
    struct evhttp_uri *u = evhttp_uri_parse(web);
    while (f->next < f->n && f->pending < ADMIN_FAN_PARALLEL) {
        struct fan_req *r = &f->reqs[f->next++];
        /* status stays 0 when it cannot be sent (not even to ourselves) */
        if (u && admin_fan_send(r, u, f->subs[r->idx].path) == 0)
            f->pending++;
    }
    if (u)
        evhttp_uri_free(u);
    if (f->pending == 0 && f->next == f->n)
        admin_fan_finish(f);
}

/* A sub-request without an answer: why, at most once per MG_RATELIMIT_INTERVAL_MS (a
 * broker whose certificate does not verify against brokerClientTrustCertsFilePath fails
 * every one). */
static void admin_fan_log_lost(struct admin *a, struct evhttp_connection *evcon, const char *path)
{
    uint64_t held;
    if (!mg_ratelimit_allow(&a->rl_fan, MG_RATELIMIT_INTERVAL_MS, &held))
        return;
    struct bufferevent *bev = evcon ? evhttp_connection_get_bufferevent(evcon) : NULL;
    char why[256] = "connection failed, closed or timed out";
    if (bev && tls_bev_is_tls(bev))
        tls_bev_error(bev, BEV_EVENT_ERROR, why, sizeof why);
    MG_WARN("admin", "no answer for the sub-request %s: %s (%" PRIu64 " more since the last line)",
            path, why, held);
}

static void admin_fan_answered(struct evhttp_request *req, void *arg)
{
    struct fan_req *r = arg;
    struct admin_fan *f = r->f;
    struct admin_sub *sub = &f->subs[r->idx];
    r->req = NULL;
    if (r->sending) { /* a failed connect, reported from inside evhttp_make_request */
        r->failed_sync = true;
        return;
    }
    int code = req ? evhttp_request_get_response_code(req) : 0;
    if (code == 307 && r->hops < ADMIN_FAN_REDIRECTS) {
        const char *loc = evhttp_find_header(evhttp_request_get_input_headers(req), "Location");
        struct evhttp_uri *u = loc ? evhttp_uri_parse(loc) : NULL;
        if (u && evhttp_uri_get_host(u) && evhttp_uri_get_port(u) > 0) {
            const char *p = evhttp_uri_get_path(u);
            const char *q = evhttp_uri_get_query(u);
            char *path = mg_asprintf("%s%s%s", p && *p ? p : "/", q ? "?" : "", q ? q : "");
            r->hops++;
            int rc = admin_fan_send(r, u, path);
            mg_free(path);
            evhttp_uri_free(u);
            if (rc == 0)
                return; /* answered later */
            req = NULL; /* could not follow it: no answer */
            code = 0;
        } else if (u) {
            evhttp_uri_free(u);
        }
    }
    if (code == 0)
        admin_fan_log_lost(f->a, r->conn, sub->path);
    sub->status = code;
    if (req) {
        struct evbuffer *in = evhttp_request_get_input_buffer(req);
        size_t len = evbuffer_get_length(in);
        if (len > ADMIN_MAX_BODY * 16)
            len = ADMIN_MAX_BODY * 16; /* a stats answer of a huge topic: cut, not unbounded */
        sub->body = mg_malloc(len + 1);
        evbuffer_copyout(in, sub->body, len);
        sub->body[len] = '\0';
    }
    f->pending--;
    admin_fan_start_next(f);
}

/* Send (or send again, after a redirect) one sub-request to the web service `to` (http or,
 * with brokerClientTlsEnabled, https): 0, or -1 when it cannot be. */
static int admin_fan_send(struct fan_req *r, const struct evhttp_uri *to, const char *path)
{
    struct admin_fan *f = r->f;
    const char *scheme = evhttp_uri_get_scheme(to);
    const char *host = evhttp_uri_get_host(to);
    int port = evhttp_uri_get_port(to);
    bool https = scheme && strcmp(scheme, "https") == 0;
    if (!host || port <= 0)
        return -1;
    if (https && !f->a->client_tls) {
        MG_WARN("admin",
                "cannot call https://%s:%d%s: HTTPS between brokers needs "
                "brokerClientTlsEnabled=true",
                host, port, path);
        return -1;
    }
    struct event_base *base = f->a->env->base;
    struct bufferevent *bev = https ? tls_client_bev(f->a->client_tls, base) : NULL;
    struct evhttp_connection *conn;
    struct evhttp_request *req =
        mg_http_request_new(base, bev, host, port, ADMIN_FAN_TIMEOUT_S, f->authz, f->body,
                            admin_fan_answered, r, &conn);
    if (!req)
        return -1;
    r->req = req;
    r->conn = conn;
    r->sending = true;
    r->failed_sync = false;
    int rc = evhttp_make_request(conn, req, f->method, path);
    r->sending = false;
    if (rc < 0 || r->failed_sync) {
        if (rc < 0 && !r->failed_sync)
            evhttp_request_free(req); /* still ours */
        r->req = NULL;
        r->conn = NULL;
        if (rc < 0)
            evhttp_connection_free(conn);
        else
            evhttp_connection_free_on_completion(conn);
        return -1;
    }
    evhttp_connection_free_on_completion(conn);
    return 0;
}

void admin_fan(struct admin_call *c, enum evhttp_cmd_type method, char **paths, int n,
               const char *body, admin_fan_done done, void (*free_arg)(void *), void *arg)
{
    struct admin *a = c->a;
    struct admin_fan *f = mg_calloc(1, sizeof *f);
    f->a = a;
    f->call = c;
    f->method = method;
    f->body = body ? mg_strdup(body) : NULL;
    /* The call was authenticated and authorized here: the sub-requests show the broker's
     * own credential (brokerClientAuthenticationPlugin, as Pulsar's internal admin client),
     * else the caller's header (a caller authenticated by its TLS certificate has none). */
    const char *authz = auth_broker_client_authorization(a->env->auth);
    if (!authz && c->req)
        authz = evhttp_find_header(evhttp_request_get_input_headers(c->req), "Authorization");
    f->authz = authz ? mg_strdup(authz) : NULL;
    f->n = n;
    f->subs = mg_calloc((size_t)n + 1, sizeof *f->subs);
    f->reqs = mg_calloc((size_t)n + 1, sizeof *f->reqs);
    for (int i = 0; i < n; i++) {
        f->subs[i].path = paths[i]; /* taken */
        f->reqs[i].f = f;
        f->reqs[i].idx = i;
    }
    f->done = done;
    f->free_arg = free_arg;
    f->arg = arg;
    LIST_INSERT_HEAD(&a->fans, f, link);
    admin_fan_start_next(f);
}

void admin_fan_cancel_all(struct admin *a)
{
    struct admin_fan *f;
    while ((f = LIST_FIRST(&a->fans))) {
        f->a = NULL;
        for (int i = 0; i < f->n; i++)
            if (f->reqs[i].req)
                evhttp_cancel_request(f->reqs[i].req); /* no callback */
        if (f->free_arg)
            f->free_arg(f->arg);
        if (!admin_call_gone(f->call))
            admin_reply_error(f->call, 503, "Broker is shutting down");
        admin_fan_free(f); /* unlinks it */
    }
}

/* ---- helpers for the callers --------------------------------------------------------------- */

int admin_fan_first_error(const struct admin_sub *subs, int n, int ignore_status)
{
    for (int i = 0; i < n; i++)
        if ((subs[i].status < 200 || subs[i].status >= 300) &&
            (subs[i].status != ignore_status || ignore_status == 0)) /* 0: no answer, never ok */
            return i;
    return -1;
}

void admin_fan_reply_error(struct admin_call *c, const struct admin_sub *sub)
{
    if (sub->status == 0) {
        admin_reply_errorf(c, 503, "No answer for %s", sub->path);
        return;
    }
    const char *reason = json_string_value(json_object_get(sub->json, "reason"));
    if (reason) {
        admin_reply_error(c, sub->status, reason);
        return;
    }
    admin_reply_raw(c, sub->status, "text/plain", sub->body ? sub->body : "");
}
