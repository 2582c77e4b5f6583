/*
 * redis_xadd.c - Redis Streams publish load for scripts/bench.sh (hiredis, Debian's
 * libhiredis-dev).
 *
 *   redis_xadd PORT [--conns N] [--outstanding N] [--size N] [--rate R] [--seconds S]
 *                   [--warmup S] [--messages N] [--stream KEY] [--json FILE]
 *
 * N (1) non-blocking connections to 127.0.0.1:PORT, driven by one poll() loop, each
 * pipelining `XADD KEY * p <size bytes>` with --outstanding (1000) commands in flight in
 * all (split evenly over the connections). Each payload starts with its send time (the
 * stamp of bench_common.h, read by redis_xread.c). --messages N stops sending after N and
 * ends the run once their replies are in (filling a backlog for a catch-up read). --rate R (0 = as
 * fast as the window allows) paces sends with a 1 ms token bucket. A reply is matched to its
 * command in order (Redis answers a connection's commands in order); latency is send to reply. With
 * appendonly yes and appendfsync always the server writes and fsyncs the AOF before it answers,
 * once per event-loop pass (group commit). Runs --seconds (10); the first --warmup (1) seconds are
 * left out of the figures. Prints the JSON summary of bench_common.h.
 * Failure modes: a connection error or an error reply ends the run with exit 1.
 */
#define _GNU_SOURCE
#include "bench_common.h"

#include <errno.h>
#include <fcntl.h>
#include <hiredis/hiredis.h>
#include <poll.h>

struct conn {
    redisContext *c;
    uint64_t *sent_at; /* ring of send times, FIFO */
    size_t head, count, cap;
};

static const char usage[] = "redis_xadd PORT [--conns N] [--outstanding N] [--size N] [--rate R] "
                            "[--seconds S] [--warmup S] [--messages N] [--stream KEY] "
                            "[--json FILE]";

int main(int argc, char **argv)
{
    struct bc_args a;
    if (!bc_args_parse(argc, argv, usage, &a))
        return 2;
    int nconn = atoi(bc_opt(argc, argv, "--conns", "1"));
    const char *key = a.stream;
    if (nconn < 1)
        nconn = 1;
    if (a.size < 8)
        a.size = 8;
    long per = a.window / nconn;
    if (per < 1)
        per = 1;

    char *payload = malloc(a.size + 1);
    memset(payload, 'x', a.size);
    const char *av[] = {"XADD", key, "*", "p", payload};
    size_t al[] = {4, strlen(key), 1, 1, a.size};
    char *cmd;
    int cmdlen = redisFormatCommandArgv(&cmd, 5, av, al);
    if (cmdlen < 0)
        return 1;
    char *stamp = cmd + cmdlen - 2 - a.size; /* the payload ends the command, before CRLF */

    struct conn *cs = calloc((size_t)nconn, sizeof *cs);
    struct pollfd *pfd = calloc((size_t)nconn, sizeof *pfd);
    for (int i = 0; i < nconn; i++) {
        redisContext *c = redisConnect("127.0.0.1", a.port);
        if (!c || c->err) {
            fprintf(stderr, "redis_xadd: connect: %s\n", c ? c->errstr : "oom");
            return 1;
        }
        if (redisSetTimeout(c, (struct timeval){5, 0}) != REDIS_OK)
            return 1;
        /* switch to non-blocking for the pipelined loop */
        int fl = fcntl(c->fd, F_GETFL);
        fcntl(c->fd, F_SETFL, fl | O_NONBLOCK);
        c->flags &= ~REDIS_BLOCK;
        cs[i].c = c;
        cs[i].cap = (size_t)per + 1;
        cs[i].sent_at = calloc(cs[i].cap, sizeof(uint64_t));
        pfd[i].fd = c->fd;
    }

    struct bc_lat lat = {0};
    uint64_t t0 = bc_now_ns();
    uint64_t t_warm = t0 + (uint64_t)(a.warm * 1e9), t_end = t0 + (uint64_t)(a.secs * 1e9);
    uint64_t sent = 0, failed = 0, last_tick = t0;
    double tokens = a.rate > 0 ? 0 : 1e18;
    int rr = 0;
    uint64_t now = t0;
    size_t inflight = 0;
    while (now < t_end && !(a.messages && sent >= a.messages && inflight == 0)) {
        /* refill the token bucket */
        if (a.rate > 0) {
            bc_tokens_refill(&tokens, a.rate, now, &last_tick);
        }
        /* send: round-robin while tokens and windows allow */
        int progress = 1;
        while (tokens >= 1 && progress && !(a.messages && sent >= a.messages)) {
            progress = 0;
            for (int k = 0; k < nconn && tokens >= 1; k++) {
                struct conn *c = &cs[(rr + k) % nconn];
                if (c->count >= (size_t)per || (a.messages && sent >= a.messages))
                    continue;
                memcpy(stamp, &now, 8);
                redisAppendFormattedCommand(c->c, cmd, (size_t)cmdlen);
                c->sent_at[(c->head + c->count) % c->cap] = now;
                c->count++;
                inflight++;
                sent++;
                tokens -= 1;
                progress = 1;
            }
            rr++;
        }
        for (int i = 0; i < nconn; i++) {
            pfd[i].events = POLLIN;
            if (sdslen(cs[i].c->obuf) > 0) {
                int done = 0;
                if (redisBufferWrite(cs[i].c, &done) != REDIS_OK) {
                    fprintf(stderr, "redis_xadd: write: %s\n", cs[i].c->errstr);
                    return 1;
                }
                if (!done)
                    pfd[i].events |= POLLOUT;
            }
        }
        int timeout = a.rate > 0 ? 1 : 100;
        if (poll(pfd, (nfds_t)nconn, timeout) < 0 && errno != EINTR) {
            perror("poll");
            return 1;
        }
        now = bc_now_ns();
        for (int i = 0; i < nconn; i++) {
            if (!(pfd[i].revents & (POLLIN | POLLERR | POLLHUP)))
                continue;
            struct conn *c = &cs[i];
            if (redisBufferRead(c->c) != REDIS_OK) {
                fprintf(stderr, "redis_xadd: read: %s\n", c->c->errstr);
                return 1;
            }
            void *reply;
            while (c->count > 0) {
                if (redisGetReplyFromReader(c->c, &reply) != REDIS_OK) {
                    fprintf(stderr, "redis_xadd: protocol: %s\n", c->c->errstr);
                    return 1;
                }
                if (!reply)
                    break;
                redisReply *r = reply;
                if (r->type == REDIS_REPLY_ERROR) {
                    fprintf(stderr, "redis_xadd: XADD: %s\n", r->str);
                    return 1;
                }
                freeReplyObject(r);
                uint64_t s = c->sent_at[c->head];
                c->head = (c->head + 1) % c->cap;
                c->count--;
                inflight--;
                if (s >= t_warm)
                    bc_lat_add(&lat, now - s);
            }
        }
    }
    double measured = (double)(now - t_warm) / 1e9;
    char extra[256];
    snprintf(extra, sizeof extra, "\"connections\": %d, \"outstanding\": %ld, \"rate\": %.0f",
             nconn, per * nconn, a.rate);
    return bc_write_json(a.json, &lat, measured, a.size, sent, failed, extra) == 0 ? 0 : 1;
}
