/*
 * http.h - one request of libevent's evhttp client, as every HTTP client of ours sends it:
 * the admin tool (cli_http.c) and a broker calling its own admin API (admin_fanout.c).
 *
 * A request goes on a connection of its own to host:port, over a bufferevent the caller made
 * (TLS) or plain TCP, with a timeout and no retries, and carries Host (host:port),
 * "Connection: close" (the server closes once it has answered), the Authorization header
 * when the caller has one and a JSON body when there is one. What the caller adds besides
 * (Accept, User-Agent, a size bound) it adds to what this returns before sending it.
 */
#ifndef MG_HTTP_H
#define MG_HTTP_H

#include <event2/http.h>

struct bufferevent;
struct event_base;

/* A request for host:port answered to cb(req, arg), not sent yet (evhttp_make_request on
 * *conn), or NULL when it cannot be made (*conn NULL too). bev: the connection's
 * bufferevent (a TLS one), or NULL for plain TCP; it is the connection's from here on, freed
 * with it, or here when no connection could be made. timeout_s: evhttp's timeout of every
 * step of the request. authz: the Authorization header, or NULL; body: a JSON body, or NULL.
 * The connection is the caller's to free (evhttp_connection_free, or _free_on_completion);
 * the request is the connection's once sent, the caller's to free before that. */
struct evhttp_request *mg_http_request_new(struct event_base *base, struct bufferevent *bev,
                                           const char *host, int port, int timeout_s,
                                           const char *authz, const char *body,
                                           void (*cb)(struct evhttp_request *, void *), void *arg,
                                           struct evhttp_connection **conn);

#endif
