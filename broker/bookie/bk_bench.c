/*
 * bk_bench.c - load client for scripts/bench-bookie.sh (built, not installed).
 *
 *   bk_bench add HOST PORT [--size N] [--outstanding N] [--seconds S] [--ledgers N]
 *       v2 ADDs of N-byte entries (1024) keeping N (1000) outstanding for S (5) seconds,
 *       round-robin over --ledgers ledgers; prints adds/s, MB/s and latency percentiles.
 *   bk_bench fsync DIR [--seconds S]
 *       the disk's own rate of 4 KiB write + fdatasync in DIR, for comparison.
 *
 * Happy path: one non-blocking socket driven by poll(); every response is matched in order
 * (a bookie answers one connection's v2 adds in order). Failure modes: a refused add
 * (rc != 0) or a closed connection ends the run with an error message and exit 1.
 */
#include "bookie/bookie_int.h"
#include "util/bytes.h"
#include "util/loop.h"

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

static double bk_bench_now_s(void)
{
    return (double)mg_mono_ns() / 1e9;
}

static long bk_bench_opt_long(int argc, char **argv, const char *name, long def)
{
    for (int i = 0; i + 1 < argc; i++)
        if (strcmp(argv[i], name) == 0)
            return strtol(argv[i + 1], NULL, 10);
    return def;
}

static int bk_bench_cmp_double(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return x < y ? -1 : x > y;
}

static int bk_bench_fsync(int argc, char **argv)
{
    const char *dir = argv[2];
    double secs = (double)bk_bench_opt_long(argc, argv, "--seconds", 3);
    char path[4096];
    snprintf(path, sizeof path, "%s/bk_bench_fsync.tmp", dir);
    int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, 0644);
    if (fd < 0) {
        fprintf(stderr, "bk_bench: %s: %s\n", path, strerror(errno));
        return 1;
    }
    char buf[4096];
    memset(buf, 'x', sizeof buf);
    long n = 0;
    double t0 = bk_bench_now_s(), t;
    while ((t = bk_bench_now_s()) - t0 < secs) {
        if (write(fd, buf, sizeof buf) != (ssize_t)sizeof buf || fdatasync(fd) != 0) {
            fprintf(stderr, "bk_bench: write/fdatasync: %s\n", strerror(errno));
            break;
        }
        n++;
    }
    close(fd);
    unlink(path);
    printf("disk: %.0f fdatasync/s (4 KiB appends, %.2f ms each)\n", (double)n / (t - t0),
           1000.0 * (t - t0) / (double)(n ? n : 1));
    return 0;
}

static int bk_bench_add(int argc, char **argv)
{
    const char *host = argv[2];
    int port = atoi(argv[3]);
    size_t size = (size_t)bk_bench_opt_long(argc, argv, "--size", 1024);
    long outstanding = bk_bench_opt_long(argc, argv, "--outstanding", 1000);
    double secs = (double)bk_bench_opt_long(argc, argv, "--seconds", 5);
    long nledgers = bk_bench_opt_long(argc, argv, "--ledgers", 1);
    int64_t ledger0 = mg_wall_ms() / 1000 * 1000; /* seconds since the epoch, times 1000 */

    int fd = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in sin = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port)};
    if (inet_pton(AF_INET, host, &sin.sin_addr) != 1 ||
        connect(fd, (struct sockaddr *)&sin, sizeof sin) != 0) {
        fprintf(stderr, "bk_bench: cannot connect to %s:%d: %s\n", host, port, strerror(errno));
        return 1;
    }
    int one = 1;
    setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    fcntl(fd, F_SETFL, O_NONBLOCK);

    size_t body = 32 + 4 + size, frame = 4 + 4 + 20 + body;
    uint8_t *req = calloc(1, frame);
    mg_put_be32(req, (uint32_t)(frame - 4));
    mg_put_be32(req + 4, (2u << 24) | (1u << 16));
    memcpy(req + 8, "bk_bench-master-key!", 20);
    size_t cap = (size_t)outstanding + 16;
    double *sent_at = calloc(cap, sizeof *sent_at);
    size_t lat_cap = 1 << 20, nlat = 0;
    double *lat = malloc(lat_cap * sizeof *lat);
    uint8_t *out = malloc(frame * 64), in[1 << 16];
    size_t out_len = 0, out_off = 0, in_len = 0;
    long next_entry = 0, acked = 0, inflight = 0;
    long head = 0; /* ring index of the oldest outstanding add */
    double t0 = bk_bench_now_s(), tend = t0 + secs;
    bool stop_sending = false;
    for (;;) {
        double t = bk_bench_now_s();
        if (t >= tend)
            stop_sending = true;
        if (stop_sending && inflight == 0 && out_len == out_off)
            break;
        /* refill the output buffer */
        if (out_off == out_len) {
            out_len = out_off = 0;
            while (!stop_sending && inflight < outstanding && out_len + frame <= frame * 64) {
                int64_t ledger = ledger0 + next_entry % nledgers;
                int64_t entry = next_entry / nledgers;
                uint8_t *e = req + 28;
                mg_put_be64(e, (uint64_t)ledger);
                mg_put_be64(e + 8, (uint64_t)entry);
                mg_put_be64(e + 16, (uint64_t)(entry - 1));
                memcpy(out + out_len, req, frame);
                out_len += frame;
                sent_at[(size_t)((head + inflight) % (long)cap)] = t;
                inflight++;
                next_entry++;
            }
        }
        struct pollfd p = {fd, POLLIN | (out_off < out_len ? POLLOUT : 0), 0};
        if (poll(&p, 1, 1000) < 0 && errno != EINTR)
            break;
        if (p.revents & POLLOUT) {
            ssize_t n = send(fd, out + out_off, out_len - out_off, MSG_NOSIGNAL);
            if (n > 0)
                out_off += (size_t)n;
        }
        if (p.revents & (POLLIN | POLLHUP | POLLERR)) {
            ssize_t n = recv(fd, in + in_len, sizeof in - in_len, 0);
            if (n == 0 || (n < 0 && errno != EAGAIN)) {
                fprintf(stderr, "bk_bench: connection closed by the bookie\n");
                return 1;
            }
            if (n > 0)
                in_len += (size_t)n;
            size_t off = 0;
            double tr = bk_bench_now_s();
            while (in_len - off >= 28) {
                int rc = (int)mg_get_be32(in + off + 8);
                if (rc != 0) {
                    fprintf(stderr, "bk_bench: add refused with rc %d\n", rc);
                    return 1;
                }
                if (nlat < lat_cap)
                    lat[nlat++] = tr - sent_at[(size_t)(head % (long)cap)];
                head++;
                inflight--;
                acked++;
                off += 28;
            }
            memmove(in, in + off, in_len - off);
            in_len -= off;
        }
    }
    double el = bk_bench_now_s() - t0;
    qsort(lat, nlat, sizeof *lat, bk_bench_cmp_double);
    printf("%ld adds of %zu B in %.1f s: %.0f adds/s, %.1f MB/s, latency ms p50 %.2f p99 %.2f "
           "max %.2f\n",
           acked, size, el, (double)acked / el, (double)acked * (double)size / el / 1e6,
           nlat ? lat[nlat / 2] * 1e3 : 0, nlat ? lat[nlat * 99 / 100] * 1e3 : 0,
           nlat ? lat[nlat - 1] * 1e3 : 0);
    close(fd);
    free(req);
    free(sent_at);
    free(lat);
    free(out);
    return 0;
}

int main(int argc, char **argv)
{
    if (argc >= 4 && strcmp(argv[1], "add") == 0)
        return bk_bench_add(argc, argv);
    if (argc >= 3 && strcmp(argv[1], "fsync") == 0)
        return bk_bench_fsync(argc, argv);
    fprintf(stderr, "usage: bk_bench add HOST PORT [--size N] [--outstanding N] [--seconds S] "
                    "[--ledgers N]\n       bk_bench fsync DIR [--seconds S]\n");
    return 2;
}
