/*
 * http.c - one evhttp client request with the headers every one of ours carries (http.h).
 */
#include "util/http.h"

#include <event2/buffer.h>
#include <event2/bufferevent.h>
#include <event2/keyvalq_struct.h>
#include <stdio.h>
#include <string.h>

struct evhttp_request *mg_http_request_new(struct event_base *base, struct bufferevent *bev,
                                           const char *host, int port, int timeout_s,
                                           const char *authz, const char *body,
                                           void (*cb)(struct evhttp_request *, void *), void *arg,
                                           struct evhttp_connection **conn)
{
    *conn = evhttp_connection_base_bufferevent_new(base, NULL, bev, host, (ev_uint16_t)port);
    if (!*conn) {
        if (bev)
            bufferevent_free(bev);
        return NULL;
    }
    struct evhttp_request *req = evhttp_request_new(cb, arg);
    if (!req) {
        evhttp_connection_free(*conn);
        *conn = NULL;
        return NULL;
    }
    evhttp_connection_set_timeout(*conn, timeout_s);
    evhttp_connection_set_retries(*conn, 0);
    struct evkeyvalq *h = evhttp_request_get_output_headers(req);
    char hostport[300];
    snprintf(hostport, sizeof hostport, "%s:%d", host, port);
    evhttp_add_header(h, "Host", hostport);
    evhttp_add_header(h, "Connection", "close");
    if (authz)
        evhttp_add_header(h, "Authorization", authz);
    if (body) {
        evhttp_add_header(h, "Content-Type", "application/json");
        evbuffer_add(evhttp_request_get_output_buffer(req), body, strlen(body));
    }
    return req;
}
