/*
 * redis_xread.c - Redis Streams consumer for scripts/bench.sh (hiredis): end-to-end latency
 * and catch-up reads.
 *
 *   redis_xread PORT [--stream KEY] [--count N] [--seconds S] [--warmup S] [--messages N]
 *                    [--json FILE]
 *
 * Creates consumer group "bench" on KEY (from the stream's start, MKSTREAM), then loops on
 * `XREADGROUP GROUP bench c1 COUNT N(1000) BLOCK 100 STREAMS KEY >`, acknowledging each
 * batch with one XACK pipelined ahead of the next read. Each message's payload starts with
 * its send time (redis_xadd.c stamps it): latency is send to receipt. Ends after --seconds
 * (10) or, for a catch-up read, once --messages N have arrived; prints "consumer ready"
 * once the group exists, then the consumer JSON of bench_common.h (msg/s, mb_per_s, latency_ms).
 * Redis keeps the stream in memory: its "backlog" is read from RAM, never from the AOF. Failure
 * modes: a connection error or an error reply ends the run with exit 1.
 */
#define _GNU_SOURCE
#include "bench_common.h"

#include <hiredis/hiredis.h>

static const char usage[] = "redis_xread PORT [--stream KEY] [--count N] [--seconds S] "
                            "[--warmup S] [--messages N] [--json FILE]";

static bool reply_ok(redisReply *r, const char *what)
{
    if (!r) {
        fprintf(stderr, "redis_xread: %s: connection lost\n", what);
        return false;
    }
    if (r->type == REDIS_REPLY_ERROR && strncmp(r->str, "BUSYGROUP", 9) != 0) {
        fprintf(stderr, "redis_xread: %s: %s\n", what, r->str);
        return false;
    }
    return true;
}

int main(int argc, char **argv)
{
    struct bc_args a;
    if (!bc_args_parse(argc, argv, usage, &a))
        return 2;
    const char *key = a.stream;
    const char *count = bc_opt(argc, argv, "--count", "1000");
    redisContext *c = redisConnect("127.0.0.1", a.port);
    if (!c || c->err) {
        fprintf(stderr, "redis_xread: connect: %s\n", c ? c->errstr : "oom");
        return 1;
    }
    redisReply *r = redisCommand(c, "XGROUP CREATE %s bench 0 MKSTREAM", key);
    if (!reply_ok(r, "XGROUP CREATE"))
        return 1;
    freeReplyObject(r);

    printf("consumer ready\n"); /* bench.sh starts the publisher on this line */
    fflush(stdout);
    struct bc_rx x;
    bc_rx_start(&x, &a);
    /* the XACK argv: XACK KEY bench ID... (at most --count ids) */
    size_t cap = (size_t)atol(count) + 3;
    const char **av = calloc(cap, sizeof *av);
    size_t *al = calloc(cap, sizeof *al);
    char **ids = calloc(cap, sizeof *ids);
    av[0] = "XACK", av[1] = key, av[2] = "bench";
    size_t nack = 0;
    uint64_t now = x.t0;
    while (!bc_rx_done(&x, now)) {
        if (nack > 0) {
            for (size_t i = 0; i < nack; i++)
                av[3 + i] = ids[i], al[3 + i] = strlen(ids[i]);
            al[0] = 4, al[1] = strlen(key), al[2] = 5;
            redisAppendCommandArgv(c, (int)(3 + nack), av, al);
        }
        redisAppendCommand(c, "XREADGROUP GROUP bench c1 COUNT %s BLOCK 100 STREAMS %s >", count,
                           key);
        if (nack > 0) {
            if (redisGetReply(c, (void **)&r) != REDIS_OK || !reply_ok(r, "XACK"))
                return 1;
            freeReplyObject(r);
            for (size_t i = 0; i < nack; i++)
                free(ids[i]);
            nack = 0;
        }
        if (redisGetReply(c, (void **)&r) != REDIS_OK || !reply_ok(r, "XREADGROUP"))
            return 1;
        now = bc_now_ns();
        /* [[KEY, [[ID, [field, value]], ...]]] or nil after BLOCK ms */
        if (r->type == REDIS_REPLY_ARRAY && r->elements == 1 && r->element[0]->elements == 2) {
            redisReply *entries = r->element[0]->element[1];
            for (size_t i = 0; i < entries->elements && i + 3 < cap; i++) {
                redisReply *e = entries->element[i];
                if (e->elements != 2 || e->element[1]->elements < 2)
                    continue;
                redisReply *v = e->element[1]->element[1];
                bc_rx_record(&x, now, v->str, v->len);
                ids[nack++] = strdup(e->element[0]->str);
            }
        }
        freeReplyObject(r);
    }
    char extra[128];
    snprintf(extra, sizeof extra, "\"read\": \"XREADGROUP COUNT %s BLOCK 100\"", count);
    int rc = bc_rx_write(a.json, &x, extra);
    redisFree(c);
    return rc == 0 ? 0 : 1;
}
