/*
 * nats_js_sub.c - NATS JetStream consumer for scripts/bench.sh (Debian's libnats-dev):
 * end-to-end latency and catch-up reads.
 *
 *   nats_js_sub PORT [--stream NAME] [--subject SUBJ] [--count N] [--seconds S]
 *                    [--warmup S] [--messages N] [--json FILE]
 *
 * Creates (or reuses) the stream as nats_js_pub.c does (nats_common.h), then a durable pull
 * consumer "bench" delivering everything from the stream's start with AckAll, and loops on
 * natsSubscription_Fetch of up to --count (1000) messages (100 ms wait), acknowledging the
 * last of each batch. Each payload starts with its send time (nats_js_pub.c stamps it):
 * latency is send to receipt. Ends after --seconds (10) or, for a catch-up read, once
 * --messages N have arrived; prints "consumer ready" once subscribed, then the consumer
 * JSON of bench_common.h.
 * Failure modes: connect / stream / consumer errors exit 1; a fetch error other than the
 * 100 ms timeout exits 1.
 */
#define _GNU_SOURCE
#include "nats_common.h"

static const char usage[] = "nats_js_sub PORT [--stream NAME] [--subject SUBJ] [--count N] "
                            "[--seconds S] [--warmup S] [--messages N] [--json FILE]";

int main(int argc, char **argv)
{
    struct bc_args a;
    if (!bc_args_parse(argc, argv, usage, &a))
        return 2;
    int count = atoi(bc_opt(argc, argv, "--count", "1000"));
    struct bc_js j = {0};
    if (!bc_js_open("nats_js_sub", argc, argv, &a, NULL, &j))
        return 1;
    jsSubOptions so;
    jsSubOptions_Init(&so);
    so.Stream = j.stream;
    so.Config.AckPolicy = js_AckAll;
    so.Config.DeliverPolicy = js_DeliverAll;
    so.Config.MaxAckPending = count * 4;
    natsSubscription *sub = NULL;
    jsErrCode jerr = 0;
    natsStatus s = js_PullSubscribe(&sub, j.js, j.subject, "bench", NULL, &so, &jerr);
    if (s != NATS_OK) {
        fprintf(stderr, "nats_js_sub: pull subscribe: %s (%d)\n", natsStatus_GetText(s), (int)jerr);
        return 1;
    }
    printf("consumer ready\n"); /* bench.sh starts the publisher on this line */
    fflush(stdout);
    struct bc_rx x;
    bc_rx_start(&x, &a);
    uint64_t now = x.t0;
    while (!bc_rx_done(&x, now)) {
        natsMsgList list = {0};
        s = natsSubscription_Fetch(&list, sub, count, 100, &jerr);
        now = bc_now_ns();
        if (s == NATS_TIMEOUT)
            continue;
        if (s != NATS_OK) {
            fprintf(stderr, "nats_js_sub: fetch: %s (%d)\n", natsStatus_GetText(s), (int)jerr);
            return 1;
        }
        for (int i = 0; i < list.Count; i++)
            bc_rx_record(&x, now, natsMsg_GetData(list.Msgs[i]),
                         (size_t)natsMsg_GetDataLength(list.Msgs[i]));
        if (list.Count > 0)
            natsMsg_Ack(list.Msgs[list.Count - 1], NULL);
        natsMsgList_Destroy(&list);
    }
    char extra[128];
    snprintf(extra, sizeof extra, "\"read\": \"pull consumer, Fetch %d, AckAll\"", count);
    int rc = bc_rx_write(a.json, &x, extra);
    natsSubscription_Destroy(sub);
    jsCtx_Destroy(j.js);
    natsConnection_Destroy(j.nc);
    return rc == 0 ? 0 : 1;
}
