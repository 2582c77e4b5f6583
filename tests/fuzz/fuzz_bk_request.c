/*
 * fuzz_bk_request.c - libFuzzer target for the bookie's request reader (wire_bk_request_read,
 * both the v2 and the v3 parser).
 *
 * Input: one control byte, then the byte stream a bookie connection receives. The control
 * byte picks the framing the connection starts with (bits 0-1: unknown, so that the first
 * frame decides, v2 or v3) and the frame limit (bit 2: a small limit of 32 + 8 * (byte >> 3)
 * bytes, which sends most frames down the oversized path; else nettyMaxFrameSizeBytes'
 * default). The stream is fed in reference chains of 13 bytes, so pull-ups and moves cross
 * chain boundaries. For every request read the reader's promises must hold: 0 drains
 * nothing, an error says why, a request takes exactly its frame (an oversized one its length
 * field, the rest being skipped like the bookie skips it), and a v2 ADD or READ and a v3
 * request written again by the client's encoders read back the same.
 * Failure modes: a broken promise aborts (a crash for libFuzzer); ASan/UBSan catch memory
 * errors and undefined behaviour; LeakSanitizer catches leaks.
 */
#include "wire/wire_bk.h"

#include <event2/buffer.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define FUZZ_TARGET "fuzz_bk_request"
#include "wire_bk_fuzz.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

/* Read back what the client's encoders wrote: one whole, non-oversized request. */
static void reread(struct evbuffer *out, int proto, struct wire_bk_request *g)
{
    char err[160] = "";
    size_t n = evbuffer_get_length(out);
    int rc = wire_bk_request_read(out, &proto, SIZE_MAX, g, err, sizeof(err));
    if (rc != 1)
        fprintf(stderr, "fuzz_bk_request: re-read gave %d: %s\n", rc, err);
    check(rc == 1 && !g->oversized, "re-encoded request reads back");
    check(g->frame_size == n && evbuffer_get_length(out) == 0, "re-encoded frame taken whole");
}

static void recheck_v2(const struct wire_bk_request *rq)
{
    struct evbuffer *out = evbuffer_new();
    struct wire_bk_request g;
    unsigned flags = rq->v2_hdr >> 24 == 0 ? 0 : rq->flags;
    if (rq->op == WIRE_BK_OP_ADD) {
        /* the first bytes of the body as the entry header, the rest as the payload */
        size_t hl = rq->body_len < WIRE_BK_ENTRY_HDR_LEN ? rq->body_len : WIRE_BK_ENTRY_HDR_LEN;
        struct evbuffer *pl = evbuffer_new();
        evbuffer_add(pl, rq->body + hl, rq->body_len - hl);
        struct wire_bk_add a = {.flags = (uint16_t)flags,
                                .master_key = rq->master_key,
                                .ehdr = rq->body,
                                .ehdr_len = hl};
        wire_bk_write_add(out, false, &a, pl);
        evbuffer_free(pl);
        reread(out, WIRE_BK_PROTO_V2, &g);
        check(g.op == WIRE_BK_OP_ADD && g.flags == flags, "ADD opcode and flags survive");
        check(g.ledger == rq->ledger && g.entry == rq->entry, "ADD ids survive");
        check(memcmp(g.master_key, rq->master_key, WIRE_BK_MASTER_KEY_LEN) == 0,
              "ADD master key survives");
        check(g.body_len == rq->body_len && memcmp(g.body, rq->body, g.body_len) == 0,
              "ADD body survives");
    } else if (rq->op == WIRE_BK_OP_READ) {
        if ((flags & WIRE_BK_FLAG_FENCE) && !rq->has_key) {
            evbuffer_free(out); /* we always send the key with a fencing read */
            return;
        }
        struct wire_bk_read r = {.ledger = rq->ledger,
                                 .entry = rq->entry,
                                 .flags = (uint16_t)flags,
                                 .master_key = rq->master_key};
        wire_bk_write_read(out, false, &r);
        reread(out, WIRE_BK_PROTO_V2, &g);
        check(g.op == WIRE_BK_OP_READ && g.flags == flags, "READ opcode and flags survive");
        check(g.ledger == rq->ledger && g.entry == rq->entry, "READ ids survive");
        check(g.has_key == ((flags & WIRE_BK_FLAG_FENCE) != 0), "fencing key sent with FENCE");
        check(!g.has_key || memcmp(g.master_key, rq->master_key, WIRE_BK_MASTER_KEY_LEN) == 0,
              "READ master key survives");
    } else {
        evbuffer_free(out);
        return;
    }
    wire_bk_request_clear(&g);
    evbuffer_free(out);
}

static void recheck_v3(const struct wire_bk_request *rq)
{
    check(rq->v3 != NULL && rq->v3->header != NULL, "v3 request unpacked with its header");
    check(rq->op == (unsigned)rq->v3->header->operation && rq->txn == rq->v3->header->txnid,
          "op and txnId are the header's");
    if (!fuzz_protobuf_round_trips(&rq->v3->base))
        return;
    struct evbuffer *out = evbuffer_new();
    struct wire_bk_request g;
    Bookkeeper__Proto__BKPacketHeader *h = rq->v3->header;
    uint16_t flags = h->has_priority && h->priority > 0 ? WIRE_BK_FLAG_HIGH_PRIORITY : 0;
    wire_bk_write_v3_request(out, (int)rq->op, rq->txn, flags, rq->v3);
    check(rq->v3->header == h, "caller's header restored");
    reread(out, WIRE_BK_PROTO_V3, &g);
    check(g.op == rq->op && g.txn == rq->txn, "op and txnId survive");
    check((g.v3->addrequest != NULL) == (rq->v3->addrequest != NULL) &&
              (g.v3->readrequest != NULL) == (rq->v3->readrequest != NULL),
          "sub-messages survive");
    if (rq->v3->addrequest)
        check(g.v3->addrequest->body.len == rq->v3->addrequest->body.len, "ADD body survives");
    wire_bk_request_clear(&g);
    evbuffer_free(out);
}

/* One request (arg: the connection's framing, learnt from its first frame). */
static int one_request(struct evbuffer *in, size_t before, size_t limit, uint64_t *skip, char *err,
                       size_t errlen, void *arg)
{
    int *proto = arg, was = *proto;
    struct wire_bk_request rq;
    int rc = wire_bk_request_read(in, proto, limit, &rq, err, errlen);
    check(was == WIRE_BK_PROTO_UNKNOWN || *proto == was, "framing never changes");
    if (rc <= 0)
        return fuzz_bk_no_frame(rc, in, before, err, rq.v3 || rq.body);
    check(rc == 1, "1 for a request");
    check(rq.proto == *proto && *proto != WIRE_BK_PROTO_UNKNOWN, "framing known");
    check(rq.frame_size >= 8, "a frame has a length and a body");
    size_t took = before - evbuffer_get_length(in);
    if (rq.oversized) {
        check(rq.frame_size > limit, "oversized means over the limit");
        check(took == 4 && rq.skip == rq.frame_size - 4, "oversized: length field taken");
        check(rq.v3 == NULL && rq.body == NULL, "oversized: nothing buffered");
        *skip = rq.skip;
    } else {
        check(rq.frame_size <= limit, "within the limit");
        check(took == rq.frame_size, "frame taken whole");
        if (rq.proto == WIRE_BK_PROTO_V2) {
            if (rq.op == WIRE_BK_OP_ADD)
                check(rq.has_key && rq.body_len == rq.frame_size - 8 - WIRE_BK_MASTER_KEY_LEN,
                      "ADD body is the rest of the frame");
            recheck_v2(&rq);
        } else {
            recheck_v3(&rq);
        }
    }
    wire_bk_request_clear(&rq);
    return 1;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 1)
        return 0;
    int proto = (data[0] & 3) == 1   ? WIRE_BK_PROTO_V2
                : (data[0] & 3) == 2 ? WIRE_BK_PROTO_V3
                                     : WIRE_BK_PROTO_UNKNOWN;
    fuzz_bk_frames(data, size, one_request, &proto);
    return 0;
}
