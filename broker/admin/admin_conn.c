/*
 * admin_conn.c - limits on the admin server's connections, ahead of evhttp's parser.
 *
 * evhttp (libevent 2.1) parses a request head by scanning its whole input again for a line
 * end each time bytes arrive, so a long header costs quadratic time (16 MB: seconds of CPU);
 * its header size limit answers 400, not 431; its one timeout is an inactivity timeout, so a
 * client that drips a byte now and then keeps a connection forever. Each connection is
 * therefore given a filtering bufferevent (evhttp_set_bevcb) whose input filter sees every
 * byte once before evhttp does:
 *
 *   - it follows the request head (request line and header fields, up to the empty line)
 *     and counts its bytes and lines; past httpMaxRequestHeaderSize bytes, or past
 *     ADMIN_MAX_HEADERS fields, the request is answered 431 (414 when the request line
 *     alone is that long, as Jetty answers a URI too long) and the connection closed;
 *   - from the head's first byte the whole request (head and body) must arrive within
 *     httpRequestReadTimeoutSeconds, else it is answered 408 and the connection closed;
 *   - after the head, bytes pass untouched until evhttp hands the request to the router
 *     (admin_conn_request_read), when the next request begins.
 *
 * evhttp's own limits stay as a second line: its header size limit (the same value: a
 * pipelined request already passed on while the previous one was read is bounded there,
 * answered 400), its body limit (ADMIN_MAX_BODY, 413) and httpIdleTimeoutSeconds as its
 * timeout (a connection with no request in progress, kept alive or new, is closed; a reply
 * that cannot be written for that long too).
 *
 * Refusing: the 431 or 408 response is written straight to the socket (it is small and
 * nothing else is being written while a request is read), the write side is shut down, and
 * what the client still sends is read and dropped for at most ADMIN_LINGER_S seconds or
 * ADMIN_LINGER_BYTES bytes, so that a client still writing its oversized head sees the
 * answer rather than a reset; then evhttp is told the peer closed (it frees the connection).
 * Each refusal is counted (admin_conn_refused, /metrics magnetar_admin_refused_total).
 *
 * HTTPS (webServicePortTls) gets the same filter, over a TLS filter (OpenSSL's bufferevent
 * filter) over the socket bufferevent, so the head is followed in plain text, and the same
 * connection cap (maxHttpServerConnections, on its own listener). Output goes the same way
 * in the end: the TLS filter encrypts into the socket bufferevent's output at once, and that
 * is written to the socket from here (admin_conn_out_tls), so a reply leaves the filter's
 * output only once its records are on the socket. The refusal goes through TLS too (the
 * write side is not shut down early; the linger bound closes the connection).
 */
#include "admin/admin_int.h"
#include "config/cfg.h"
#include "ns/ns.h"
#include "tls/tls.h"
#include "util/alloc.h"
#include "util/listen.h"
#include "util/log.h"
#include "util/loop.h"

#include <errno.h>
#include <event2/bufferevent.h>
#include <event2/event.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>

#define ADMIN_LINGER_S 5
#define ADMIN_LINGER_BYTES (4 << 20)
#define ADMIN_TLS_PIECE (16 * 1024) /* HTTPS: reply bytes encrypted at a time */

enum conn_state {
    CONN_IDLE = 0, /* between requests: no byte of the next one yet */
    CONN_HEAD,     /* reading a request head */
    CONN_BODY,     /* head passed on; until the router gets the request */
    CONN_REFUSED,  /* answered 431/408: dropping input until closed */
};

struct admin_conn {
    struct admin *a;                   /* borrowed; NULL once the server is freed */
    struct bufferevent *bev;           /* the filter evhttp uses; it owns this struct */
    struct bufferevent *tls;           /* HTTPS: the TLS filter under this one, owned; or NULL */
    struct bufferevent *sock;          /* HTTPS: the socket bufferevent under the TLS filter */
    size_t handed;                     /* HTTPS: reply bytes given to TLS, not yet all written */
    struct evbuffer_cb_entry *wire_cb; /* HTTPS: on the socket bufferevent's output */
    enum conn_state state;
    size_t head_bytes;                /* of the current head */
    int lines;                        /* complete lines of the current head */
    size_t line_len;                  /* bytes of the current line so far */
    char last;                        /* its last byte */
    size_t dropped;                   /* bytes dropped since refused */
    bool closing;                     /* evhttp was told the peer closed */
    struct event *timer;              /* owned: read deadline; once refused, the linger bound */
    struct event *flush;              /* owned: pushes evhttp's output through the filter */
    struct event *writable;           /* owned, once needed: the socket can take more output */
    struct evbuffer_cb_entry *out_cb; /* on the filter's output buffer */
};

/* evhttp still holds the bufferevent (it clears the callbacks when it frees it; the memory
 * stays until libevent finalizes it, which frees this struct and its events). Touching a
 * freed one would take a new reference and release it twice. */
static bool admin_conn_live(struct admin_conn *k)
{
    bufferevent_event_cb ecb = NULL;
    bufferevent_getcb(k->bev, NULL, NULL, &ecb, NULL);
    return ecb != NULL;
}

static struct mg_listener *admin_conn_listener(const struct admin_conn *k)
{
    return k->tls ? k->a->listener_tls : k->a->listener;
}

static void admin_conn_free(void *arg)
{
    struct admin_conn *k = arg;
    if (k->a) {
        mg_map_del(&k->a->conns, &k->bev, sizeof k->bev);
        mg_listener_conn_closed(admin_conn_listener(k));
    }
    if (k->out_cb)
        evbuffer_remove_cb_entry(bufferevent_get_output(k->bev), k->out_cb);
    if (k->wire_cb)
        evbuffer_remove_cb_entry(bufferevent_get_output(k->sock), k->wire_cb);
    event_free(k->timer);
    event_free(k->flush);
    mg_event_free(k->writable);
    mg_free(k);
}

/* libevent 2.1's filter passes output on only while writing is enabled on it, and evhttp
 * enables writing just after it queued a reply: without a push the reply would wait for a
 * write event of the socket that may never come. Output queued: push it on the next turn.
 * Also on the wire of an HTTPS connection: TLS records (the handshake's, or a reply's) to
 * write. */
static void admin_conn_out_added(struct evbuffer *buf, const struct evbuffer_cb_info *info,
                                 void *arg)
{
    (void)buf;
    struct admin_conn *k = arg;
    if (info->n_added > 0)
        event_active(k->flush, EV_TIMEOUT, 0);
}

static int admin_conn_write(struct admin_conn *k, struct evbuffer *buf);

static void admin_conn_flush(evutil_socket_t fd, short what, void *arg)
{
    (void)fd;
    (void)what;
    struct admin_conn *k = arg;
    if (!admin_conn_live(k))
        return;
    if (k->sock) /* TLS records (the handshake's too) go out first */
        admin_conn_write(k, bufferevent_get_output(k->sock));
    bufferevent_flush(k->bev, EV_WRITE, BEV_NORMAL);
}

/* End the connection through the socket itself: after shutdown the reads that evhttp has
 * enabled return what was queued, then end of file (Linux drops what arrives later), and
 * evhttp frees the connection on that as on any peer close. (Raising the event on the
 * bufferevent instead races with evhttp freeing it.) */
static void admin_conn_close(struct admin_conn *k)
{
    evutil_socket_t fd = bufferevent_getfd(k->bev);
    if (k->closing || fd < 0)
        return;
    k->closing = true;
    shutdown(fd, SHUT_RDWR);
}

/* Write what buf holds to the socket; what the socket does not take stays, and the socket's
 * next writability flushes again. Returns the bytes left, or -1 once the peer is gone (buf
 * is emptied and the connection closed: the next read sees the end). */
static int admin_conn_write(struct admin_conn *k, struct evbuffer *buf)
{
    evutil_socket_t fd = bufferevent_getfd(k->bev);
    if (evbuffer_get_length(buf) == 0 || fd < 0)
        return (int)evbuffer_get_length(buf);
    int n = evbuffer_write(buf, fd);
    if (n < 0 && errno != EAGAIN && errno != EWOULDBLOCK && errno != EINTR) {
        evbuffer_drain(buf, evbuffer_get_length(buf));
        admin_conn_close(k);
        return -1;
    }
    if (evbuffer_get_length(buf) > 0) {
        if (!k->writable)
            k->writable =
                event_new(bufferevent_get_base(k->bev), fd, EV_WRITE, admin_conn_flush, k);
        event_add(k->writable, NULL);
    }
    return (int)evbuffer_get_length(buf);
}

/* HTTPS: a reply leaves the filter's output (src) only once its TLS records are on the
 * socket. Each piece is copied into the TLS filter's output (dst), which encrypts it at once
 * into the socket bufferevent's output (the wire); the wire is written here; the piece is
 * dropped from src when the wire is empty. */
static enum bufferevent_filter_result admin_conn_out_tls(struct admin_conn *k, struct evbuffer *src,
                                                         struct evbuffer *dst)
{
    struct evbuffer *wire = bufferevent_get_output(k->sock);
    for (;;) {
        int left = admin_conn_write(k, wire);
        if (left < 0) {
            evbuffer_drain(src, evbuffer_get_length(src));
            k->handed = 0;
            return BEV_OK;
        }
        if (left > 0)
            return BEV_NEED_MORE; /* the socket's writability calls again */
        if (evbuffer_get_length(dst) > 0) {
            event_active(k->flush, EV_TIMEOUT, 0); /* not encrypted yet: next turn */
            return BEV_NEED_MORE;
        }
        evbuffer_drain(src, k->handed); /* on the wire */
        k->handed = 0;
        size_t n = evbuffer_get_length(src);
        if (n == 0)
            return BEV_OK;
        n = n < ADMIN_TLS_PIECE ? n : ADMIN_TLS_PIECE;
        evbuffer_add(dst, evbuffer_pullup(src, (ev_ssize_t)n), n);
        k->handed = n;
    }
}

/* Output goes from the filter straight to the socket, never into the socket bufferevent:
 * evhttp takes a reply as sent (and may free the connection, shutting the socket down)
 * once the filter's output is empty, so nothing may still wait below it. What the socket
 * does not take stays in the filter's output until it is writable again. */
static enum bufferevent_filter_result admin_conn_out_filter(struct evbuffer *src,
                                                            struct evbuffer *dst, ev_ssize_t lim,
                                                            enum bufferevent_flush_mode mode,
                                                            void *ctx)
{
    (void)lim;
    (void)mode;
    struct admin_conn *k = ctx;
    if (k->tls)
        return admin_conn_out_tls(k, src, dst);
    size_t before = evbuffer_get_length(src);
    int left = admin_conn_write(k, src);
    return left < 0 || (size_t)left < before ? BEV_OK : BEV_NEED_MORE;
}

/* Answer 431/414/408 straight on the socket, shut its write side, then drop what comes
 * until the client closes or the linger bound. */
static void admin_conn_refuse(struct admin_conn *k, enum admin_refusal why)
{
    static const char *const lines[] = {
        [ADMIN_REFUSED_HEADER_SIZE] = "431 Request Header Fields Too Large",
        [ADMIN_REFUSED_URI_SIZE] = "414 URI Too Long",
        [ADMIN_REFUSED_HEADER_COUNT] = "431 Request Header Fields Too Large",
        [ADMIN_REFUSED_TIMEOUT] = "408 Request Timeout",
    };
    struct admin *a = k->a;
    const struct cfg *cfg = a->env->cfg;
    char reason[128], resp[512];
    if (why == ADMIN_REFUSED_HEADER_SIZE)
        snprintf(reason, sizeof reason, "Request header is larger than %d bytes",
                 cfg->http_max_request_header_size);
    else if (why == ADMIN_REFUSED_URI_SIZE)
        snprintf(reason, sizeof reason, "Request line is longer than %d bytes",
                 cfg->http_max_request_header_size);
    else if (why == ADMIN_REFUSED_HEADER_COUNT)
        snprintf(reason, sizeof reason, "Request has more than %d header fields",
                 ADMIN_MAX_HEADERS);
    else
        snprintf(reason, sizeof reason, "Request not received within %d s",
                 cfg->http_request_read_timeout_seconds);
    int len = snprintf(resp, sizeof resp,
                       "HTTP/1.1 %s\r\nContent-Type: application/json\r\nContent-Length: %zu\r\n"
                       "Connection: close\r\n\r\n{\"reason\":\"%s\"}",
                       lines[why], strlen(reason) + 13, reason);
    a->refused[why]++;
    MG_DEBUG("admin", "connection refused: %s", reason);
    k->state = CONN_REFUSED;
    k->dropped = 0;
    evutil_socket_t fd = bufferevent_getfd(k->bev);
    struct bufferevent *under = bufferevent_get_underlying(k->bev);
    bool quiet = evbuffer_get_length(bufferevent_get_output(k->bev)) == 0 &&
                 (!under || evbuffer_get_length(bufferevent_get_output(under)) == 0);
    if (quiet && k->tls) { /* through TLS; the linger bound below ends the connection */
        evbuffer_add(bufferevent_get_output(k->tls), resp, (size_t)len); /* encrypted now */
        admin_conn_write(k, bufferevent_get_output(k->sock));
    } else if (fd >= 0 && quiet) { /* nothing else is being written: the answer goes first */
        ssize_t n = send(fd, resp, (size_t)len, MSG_NOSIGNAL | MSG_DONTWAIT);
        (void)n; /* a full socket buffer: the client gets the close only */
        shutdown(fd, SHUT_WR);
    }
    event_del(k->timer);
    struct timeval tv = {ADMIN_LINGER_S, 0};
    event_add(k->timer, &tv);
}

static void admin_conn_timer(evutil_socket_t fd, short what, void *arg)
{
    (void)fd;
    (void)what;
    struct admin_conn *k = arg;
    if (!k->a || !admin_conn_live(k))
        return;
    if (k->state == CONN_REFUSED) {
        admin_conn_close(k);
        return;
    } /* lingered long enough */
    if (k->state == CONN_HEAD || k->state == CONN_BODY)
        admin_conn_refuse(k, ADMIN_REFUSED_TIMEOUT);
}

/* Follow the head through n new bytes: returns how many of them belong to it (all, or up to
 * and including its empty line; *end set then), or -1 when it is refused. */
static ssize_t admin_conn_scan_head(struct admin_conn *k, const unsigned char *p, size_t n,
                                    bool *end)
{
    const struct cfg *cfg = k->a->env->cfg;
    size_t max = (size_t)cfg->http_max_request_header_size;
    for (size_t i = 0; i < n; i++) {
        k->head_bytes++;
        if (p[i] == '\n') {
            /* evhttp ends a line at LF, with or without CR */
            if (k->line_len == 0 || (k->line_len == 1 && k->last == '\r')) {
                *end = true;
                return (ssize_t)i + 1;
            }
            if (++k->lines > ADMIN_MAX_HEADERS + 1) { /* the request line is not a field */
                admin_conn_refuse(k, ADMIN_REFUSED_HEADER_COUNT);
                return -1;
            }
            k->line_len = 0;
        } else {
            k->line_len++;
            k->last = (char)p[i];
        }
        if (k->head_bytes > max) {
            admin_conn_refuse(k,
                              k->lines == 0 ? ADMIN_REFUSED_URI_SIZE : ADMIN_REFUSED_HEADER_SIZE);
            return -1;
        }
    }
    return (ssize_t)n;
}

static void admin_conn_head_start(struct admin_conn *k)
{
    k->state = CONN_HEAD;
    k->head_bytes = 0;
    k->lines = 0;
    k->line_len = 0;
    k->last = 0;
    struct timeval tv = {k->a->env->cfg->http_request_read_timeout_seconds, 0};
    event_add(k->timer, &tv);
}

static enum bufferevent_filter_result admin_conn_filter(struct evbuffer *src, struct evbuffer *dst,
                                                        ev_ssize_t lim,
                                                        enum bufferevent_flush_mode mode, void *ctx)
{
    (void)mode;
    struct admin_conn *k = ctx;
    size_t avail = evbuffer_get_length(src);

    if (avail == 0)
        return BEV_NEED_MORE;
    if (!k->a || k->state == CONN_REFUSED) {
        k->dropped += avail;
        evbuffer_drain(src, avail);
        if (k->a && k->dropped > ADMIN_LINGER_BYTES)
            admin_conn_close(k);
        return BEV_NEED_MORE; /* nothing for evhttp: its timeout is not reset either */
    }
    size_t pass = avail;
    bool scanned_now = k->state != CONN_BODY;
    if (scanned_now) {
        /* Scan what arrived, extent by extent, once: linear in the input. */
        size_t scanned = 0;
        bool end = false;
        struct evbuffer_iovec vec[8];
        struct evbuffer_ptr at;
        evbuffer_ptr_set(src, &at, 0, EVBUFFER_PTR_SET);
        while (scanned < avail && !end) {
            int nv = evbuffer_peek(src, -1, &at, vec, 8);
            if (nv <= 0)
                break;
            for (int i = 0; i < nv && i < 8 && !end; i++) {
                if (k->state == CONN_IDLE)
                    admin_conn_head_start(k);
                ssize_t used = admin_conn_scan_head(k, vec[i].iov_base, vec[i].iov_len, &end);
                if (used < 0) {
                    k->dropped = avail;
                    evbuffer_drain(src, avail);
                    return BEV_NEED_MORE;
                }
                scanned += (size_t)used;
            }
            if (evbuffer_ptr_set(src, &at, scanned, EVBUFFER_PTR_SET) < 0)
                break;
        }
        if (end)
            k->state = CONN_BODY; /* the rest (a body) passes untouched */
    }
    if (k->state == CONN_BODY && lim >= 0 && pass > (size_t)lim && !scanned_now)
        pass = (size_t)lim; /* a scanned head always passes whole: it is not scanned twice */
    evbuffer_remove_buffer(src, dst, pass);
    return BEV_OK;
}

/* The filter over under (a socket bufferevent; or, with sock, the TLS filter over sock):
 * evhttp sets the socket on it afterwards (bufferevent_setfd goes down to the socket). */
static struct bufferevent *admin_conn_wrap(struct admin *a, struct event_base *base,
                                           struct bufferevent *under, struct bufferevent *sock)
{
    struct admin_conn *k = mg_calloc(1, sizeof *k);
    k->a = a;
    k->tls = sock ? under : NULL;
    k->sock = sock ? sock : under;
    k->timer = evtimer_new(base, admin_conn_timer, k);
    k->flush = evtimer_new(base, admin_conn_flush, k);
    /* CLOSE_ON_FREE: the filter frees under, and evhttp leaves the socket to it */
    struct bufferevent *f = bufferevent_filter_new(under, admin_conn_filter, admin_conn_out_filter,
                                                   BEV_OPT_CLOSE_ON_FREE, admin_conn_free, k);
    if (!f) {
        bufferevent_free(under);
        event_free(k->timer);
        event_free(k->flush);
        mg_free(k);
        return NULL;
    }
    k->bev = f;
    k->out_cb = evbuffer_add_cb(bufferevent_get_output(f), admin_conn_out_added, k);
    /* The socket bufferevent never writes (admin_conn_write does, from here): its write
     * events must not run the filter's output either: libevent 2.1 runs it from there
     * without holding a reference, and evhttp freeing the connection inside (a reply with
     * Connection: close) re-arms a timer of freed memory. */
    bufferevent_disable(k->sock, EV_WRITE);
    if (sock)
        k->wire_cb = evbuffer_add_cb(bufferevent_get_output(sock), admin_conn_out_added, k);
    mg_map_put(&a->conns, &k->bev, sizeof k->bev, k);
    mg_listener_conn_opened(admin_conn_listener(k)); /* may pause accepting */
    return f;
}

/* evhttp_set_bevcb: each accepted connection's bufferevent, a filter over the socket. */
static struct bufferevent *admin_conn_bev(struct event_base *base, void *arg)
{
    struct bufferevent *sock = bufferevent_socket_new(base, -1, BEV_OPT_CLOSE_ON_FREE);
    return sock ? admin_conn_wrap(arg, base, sock, NULL) : NULL;
}

/* HTTPS: the same filter over a TLS filter (accepting) over the socket bufferevent. */
static struct bufferevent *admin_conn_bev_tls(struct event_base *base, void *arg)
{
    struct admin *a = arg;
    struct bufferevent *sock = bufferevent_socket_new(base, -1, BEV_OPT_CLOSE_ON_FREE);
    struct bufferevent *tls = sock ? tls_server_filter(a->tls, sock) : NULL;
    return tls ? admin_conn_wrap(a, base, tls, sock) : NULL;
}

static void admin_conn_limits(struct admin *a, struct evhttp *http,
                              struct bufferevent *(*bevcb)(struct event_base *, void *))
{
    const struct cfg *cfg = a->env->cfg;
    evhttp_set_bevcb(http, bevcb, a);
    evhttp_set_max_headers_size(http, cfg->http_max_request_header_size);
    evhttp_set_timeout(http, cfg->http_idle_timeout_seconds);
}

void admin_conn_setup(struct admin *a)
{
    mg_map_init(&a->conns);
    admin_conn_limits(a, a->http, admin_conn_bev);
}

void admin_conn_setup_tls(struct admin *a)
{
    admin_conn_limits(a, a->https, admin_conn_bev_tls);
}

void admin_conn_request_read(struct admin *a, struct evhttp_request *req)
{
    struct evhttp_connection *evcon = evhttp_request_get_connection(req);
    struct bufferevent *bev = evcon ? evhttp_connection_get_bufferevent(evcon) : NULL;
    struct admin_conn *k = bev ? mg_map_get(&a->conns, &bev, sizeof bev) : NULL;
    if (!k || k->state == CONN_REFUSED)
        return;
    event_del(k->timer);
    /* Bytes already passed on behind this request (a pipelined one) were not followed:
     * evhttp's own header limit bounds them, and the read deadline runs for them. */
    if (evbuffer_get_length(bufferevent_get_input(bev)) > 0) {
        admin_conn_head_start(k);
        k->state = CONN_BODY;
    } else {
        k->state = CONN_IDLE;
    }
}

void admin_conn_teardown(struct admin *a)
{
    size_t pos = 0;
    void *v;
    while (mg_map_next(&a->conns, &pos, NULL, NULL, &v)) {
        struct admin_conn *k = v;
        k->a = NULL; /* freed with its bufferevent, whenever evhttp frees that */
        event_del(k->timer);
    }
    mg_map_fini(&a->conns);
}
