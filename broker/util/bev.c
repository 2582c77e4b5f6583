/*
 * bev.c - reading a socket bufferevent in large reads (see bev.h).
 */
#include "util/bev.h"

#include <event2/buffer.h>
#include <event2/bufferevent.h>
#include <event2/bufferevent_ssl.h>
#include <event2/event.h>
#include <sys/uio.h>

size_t mg_bev_read_more(struct bufferevent *bev, size_t max)
{
    evutil_socket_t fd = bufferevent_getfd(bev);
    if (fd < 0 || bufferevent_get_underlying(bev) || bufferevent_openssl_get_ssl(bev) ||
        !(bufferevent_get_enabled(bev) & EV_READ))
        return 0;
    struct evbuffer *in = bufferevent_get_input(bev);
    size_t have = evbuffer_get_length(in), high = 0;
    if (have < MG_BEV_READ_MORE_MIN)
        return 0;
    bufferevent_getwatermark(bev, EV_READ, NULL, &high);
    if (high > 0) {
        if (have >= high)
            return 0;
        if (max > high - have)
            max = high - have;
    }
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
