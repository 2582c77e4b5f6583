/*
 * bev.c - reading a socket bufferevent in large reads (see bev.h).
 */
#include "util/bev.h"
#include "util/log.h"

#include <event2/buffer.h>
#include <event2/bufferevent.h>
#include <event2/bufferevent_ssl.h>
#include <event2/event.h>
#include <openssl/err.h>
#include <openssl/ssl.h>
#include <stdint.h>
#include <sys/socket.h>
#include <sys/uio.h>

/* The most bev's input may take now, at most max: 0 when reading is off or the read high
 * watermark is reached. */
static size_t mg_bev_read_room(struct bufferevent *bev, size_t have, size_t max)
{
    size_t high = 0;
    if (!(bufferevent_get_enabled(bev) & EV_READ))
        return 0;
    bufferevent_getwatermark(bev, EV_READ, NULL, &high);
    if (high > 0) {
        if (have >= high)
            return 0;
        if (max > high - have)
            max = high - have;
    }
    return max;
}

/* SSL_read on bev failed for good (SSL_get_error e). libevent reports the end of a TLS
 * stream when its own SSL_read meets it, once the socket turns readable, which a peer that
 * sent a bad record and waits never makes it: shut the socket's read side, which wakes the
 * bufferevent, whose SSL_read then fails as this one did (the SSL stays failed, or shut by
 * close_notify) and reports it, but without OpenSSL's reason: that is logged here. */
static void mg_bev_ssl_end_read(struct bufferevent *bev, int e)
{
    evutil_socket_t fd = bufferevent_getfd(bev);
    if (e == SSL_ERROR_SSL) {
        char why[160];
        ERR_error_string_n(ERR_get_error(), why, sizeof why);
        MG_WARN("bev", "fd %d: TLS read failed: %s", (int)fd, why);
    }
    ERR_clear_error();
    shutdown(fd, SHUT_RD);
}

/* The TLS case: decrypt the records already readable, one SSL_read per record, into the
 * input's free space, until an SSL_read returns no data (WANT_READ: the socket is drained)
 * or max bytes were taken. Past max only to finish the record OpenSSL holds: libevent looks at
 * SSL_pending only right after its own reads, so the rest of a record cut short here would
 * wait for the socket's next bytes, which may never come (a producer waiting for receipts).
 * The input may so exceed max by less than a record, as libevent's own reads do. */
static size_t mg_bev_ssl_read_more(struct bufferevent *bev, SSL *ssl, size_t max)
{
    struct evbuffer *in = bufferevent_get_input(bev);
    size_t got = 0;
    for (;;) {
        size_t want = got < max ? max - got : (size_t)SSL_pending(ssl);
        struct evbuffer_iovec v[1];
        if (want == 0 || evbuffer_reserve_space(in, (ev_ssize_t)want, v, 1) != 1)
            break;
        size_t len = v[0].iov_len < want ? v[0].iov_len : want;
        ERR_clear_error();
        int r = SSL_read(ssl, v[0].iov_base, len > INT32_MAX ? INT32_MAX : (int)len);
        if (r <= 0) {
            int e = SSL_get_error(ssl, r);
            if (e == SSL_ERROR_WANT_READ || e == SSL_ERROR_WANT_WRITE)
                ERR_clear_error(); /* nothing lost: the bufferevent retries as usual */
            else /* a bad record, close_notify, the socket's error: the stream ends */
                mg_bev_ssl_end_read(bev, e);
            break;
        }
        v[0].iov_len = (size_t)r;
        evbuffer_commit_space(in, v, 1);
        got += (size_t)r;
    }
    return got;
}

size_t mg_bev_read_more(struct bufferevent *bev, size_t max)
{
    evutil_socket_t fd = bufferevent_getfd(bev);
    if (fd < 0 || bufferevent_get_underlying(bev))
        return 0;
    struct evbuffer *in = bufferevent_get_input(bev);
    size_t have = evbuffer_get_length(in);
    SSL *ssl = bufferevent_openssl_get_ssl(bev);
    if (ssl) /* libevent takes one record a turn: any input at all means one was cut short */
        return have > 0 && SSL_is_init_finished(ssl)
                   ? mg_bev_ssl_read_more(bev, ssl, mg_bev_read_room(bev, have, max))
                   : 0;
    if (have < MG_BEV_READ_MORE_MIN)
        return 0;
    max = mg_bev_read_room(bev, have, max);
    /* A socket bufferevent keeps its input's end frozen outside its own reads (libevent's
     * bufferevent_readcb thaws it around evbuffer_read): do the same around this read. */
    struct evbuffer_iovec v[2];
    evbuffer_unfreeze(in, 0);
    int n = max > 0 ? evbuffer_reserve_space(in, (ev_ssize_t)max, v, 2) : 0;
    if (n <= 0) {
        evbuffer_freeze(in, 0);
        return 0;
    }
    struct iovec iov[2];
    size_t room = 0;
    for (int i = 0; i < n; i++) {
        iov[i].iov_base = v[i].iov_base;
        iov[i].iov_len = v[i].iov_len;
        room += v[i].iov_len;
    }
    if (room > max) { /* reserve may hand out more than asked: read no more than max */
        size_t over = room - max;
        for (int i = n - 1; i >= 0 && over > 0; i--) {
            size_t cut = over < iov[i].iov_len ? over : iov[i].iov_len;
            iov[i].iov_len -= cut;
            over -= cut;
        }
    }
    ssize_t r = readv(fd, iov, n);
    size_t left = r > 0 ? (size_t)r : 0, got = left;
    int used = 0;
    for (int i = 0; i < n && left > 0; i++, used++) {
        v[i].iov_len = left < iov[i].iov_len ? left : iov[i].iov_len;
        left -= v[i].iov_len;
    }
    evbuffer_commit_space(in, v, used);
    evbuffer_freeze(in, 0);
    return got;
}
