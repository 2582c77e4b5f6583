/*
 * nats_js_pub.c - NATS JetStream publish load for scripts/bench.sh (Debian's libnats-dev).
 *
 *   nats_js_pub PORT [--outstanding N] [--size N] [--rate R] [--seconds S] [--warmup S]
 *                    [--messages N] [--stream NAME] [--subject SUBJ] [--json FILE]
 *
 * Creates (or reuses) a file-storage stream NAME (bench) on subject SUBJ (bench), then
 * publishes --size (1024) byte messages with js_PublishAsync, the library keeping at most
 * --outstanding (1000) publishes waiting for their PubAck (PublishAsync.MaxPending).
 * --rate R (0 = as fast as the window allows) paces sends in 1 ms steps. Each payload
 * carries its send time in its first 8 bytes; the ack handler (libnats' own thread) records
 * send-to-PubAck latency. Note: nats-server 2.9 answers the PubAck once the message is in
 * the stream's file (write(), not fsync): the data reaches the disk on its periodic sync.
 * --messages N stops after N publishes (filling a backlog for a catch-up read).
 * Runs --seconds (10); the first --warmup (1) seconds are left out. Prints the JSON summary
 * of bench_common.h. Failure modes: connect / stream errors exit 1; negative PubAcks are
 * counted as failed.
 */
#define _GNU_SOURCE
#include "nats_common.h"

#include <nats/nats.h>
#include <pthread.h>

static pthread_mutex_t mu = PTHREAD_MUTEX_INITIALIZER;
static struct bc_lat lat;
static uint64_t t_warm, t_end, failed;

static void on_ack(jsCtx *js, natsMsg *msg, jsPubAck *pa, jsPubAckErr *pae, void *closure)
{
    (void)js;
    (void)closure;
    uint64_t now = bc_now_ns(), s = 0;
    const char *d = natsMsg_GetData(msg);
    if (d && natsMsg_GetDataLength(msg) >= 8)
        memcpy(&s, d, 8);
    pthread_mutex_lock(&mu);
    if (pa && !pae) {
        if (s >= t_warm && now <= t_end)
            bc_lat_add(&lat, now - s);
    } else {
        failed++;
    }
    pthread_mutex_unlock(&mu);
    natsMsg_Destroy(msg);
}

static void sleep_ns(uint64_t ns)
{
    struct timespec ts = {(time_t)(ns / 1000000000ull), (long)(ns % 1000000000ull)};
    nanosleep(&ts, NULL);
}

static const char usage[] =
    "nats_js_pub PORT [--outstanding N] [--size N] [--rate R] [--seconds S] "
    "[--warmup S] [--messages N] [--stream NAME] [--subject S] [--json F]";

int main(int argc, char **argv)
{
    struct bc_args a;
    if (!bc_args_parse(argc, argv, usage, &a))
        return 2;
    if (a.size < 8)
        a.size = 8;

    jsOptions jo;
    jsOptions_Init(&jo);
    jo.PublishAsync.MaxPending = a.window;
    jo.PublishAsync.AckHandler = on_ack;
    jo.PublishAsync.StallWait = 1000;
    struct bc_js j = {0};
    if (!bc_js_open("nats_js_pub", argc, argv, &a, &jo, &j))
        return 1;
    jsCtx *js = j.js;

    char *payload = malloc(a.size);
    memset(payload, 'x', a.size);
    uint64_t t0 = bc_now_ns();
    t_warm = t0 + (uint64_t)(a.warm * 1e9);
    t_end = t0 + (uint64_t)(a.secs * 1e9);
    uint64_t sent = 0, now = t0, last = t0;
    double tokens = 0;
    natsStatus s;
    while ((now = bc_now_ns()) < t_end && !(a.messages && sent >= a.messages)) {
        if (a.rate > 0) {
            bc_tokens_refill(&tokens, a.rate, now, &last);
            if (tokens < 1) {
                sleep_ns(500000);
                continue;
            }
        }
        memcpy(payload, &now, 8);
        s = js_PublishAsync(js, j.subject, payload, (int)a.size, NULL);
        if (s == NATS_TIMEOUT)
            continue; /* stalled: MaxPending in flight for StallWait; try again */
        if (s != NATS_OK) {
            fprintf(stderr, "nats_js_pub: publish: %s\n", natsStatus_GetText(s));
            return 1;
        }
        sent++;
        if (a.rate > 0)
            tokens -= 1;
    }
    jsPubOptions po;
    jsPubOptions_Init(&po);
    po.MaxWait = 10000;
    js_PublishAsyncComplete(js, &po);
    pthread_mutex_lock(&mu);
    double measured = (double)((now < t_end ? now : t_end) - t_warm) / 1e9;
    char extra[256];
    snprintf(extra, sizeof extra, "\"connections\": 1, \"outstanding\": %ld, \"rate\": %.0f",
             a.window, a.rate);
    int rc = bc_write_json(a.json, &lat, measured, a.size, sent, failed, extra);
    pthread_mutex_unlock(&mu);
    jsCtx_Destroy(js);
    natsConnection_Destroy(j.nc);
    return rc == 0 ? 0 : 1;
}
