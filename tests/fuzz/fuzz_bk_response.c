/*
 * fuzz_bk_response.c - libFuzzer target for the ledger client's response reader
 * (wire_bk_response_read, v2 and v3).
 *
 * Input: one control byte, then the byte stream a client's bookie connection receives. The
 * control byte picks the framing (bit 0: v3) and the frame limit (bit 2: a small limit of
 * 32 + 8 * (byte >> 3) bytes, so that oversized responses are common; else the default).
 * The stream is fed in reference chains of 13 bytes. For every response read the reader's
 * promises must hold: 0 drains nothing, an error says why, a response takes exactly its
 * frame (an oversized one only what identifies it, the rest being skipped like the client
 * skips it), and written again by the bookie's encoders it reads back the same (opcode,
 * status, ids, txnId, body).
 * Failure modes: a broken promise aborts (a crash for libFuzzer); ASan/UBSan catch memory
 * errors and undefined behaviour; LeakSanitizer catches leaks.
 */
#include "wire/wire_bk.h"

#include <event2/buffer.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define FUZZ_TARGET "fuzz_bk_response"
#include "wire_bk_fuzz.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static uint8_t *flat(struct evbuffer *b, size_t *len)
{
    *len = b ? evbuffer_get_length(b) : 0;
    uint8_t *p = malloc(*len + 1);
    if (*len)
        check(evbuffer_copyout(b, p, *len) == (ev_ssize_t)*len, "copyout");
    return p;
}

/* Write r again as the bookie would and read it back. */
static void recheck(const struct wire_bk_response *r, bool v3)
{
    size_t bl;
    uint8_t *body = flat(r->body, &bl);
    struct evbuffer *out = evbuffer_new();
    if (!v3) {
        if (r->op > 0xff) { /* a version-0 header: not one our bookie writes for a v2 client */
            free(body);
            evbuffer_free(out);
            return;
        }
        wire_bk_write_v2_response(out, (uint32_t)WIRE_BK_V2_VERSION << 24 | (uint32_t)r->op << 16,
                                  r->status, r->ledger, r->entry, body, bl);
    } else {
        Bookkeeper__Proto__Response resp = BOOKKEEPER__PROTO__RESPONSE__INIT;
        Bookkeeper__Proto__AddResponse ar = BOOKKEEPER__PROTO__ADD_RESPONSE__INIT;
        Bookkeeper__Proto__ReadResponse rr = BOOKKEEPER__PROTO__READ_RESPONSE__INIT;
        int op = BOOKKEEPER__PROTO__OPERATION_TYPE__WRITE_LAC; /* one we never answer to */
        if (r->op == WIRE_BK_OP_ADD) {
            op = BOOKKEEPER__PROTO__OPERATION_TYPE__ADD_ENTRY;
            ar.status = wire_bk_status_to_v3(r->status);
            ar.ledgerid = r->ledger;
            ar.entryid = r->entry;
            resp.addresponse = &ar;
        } else if (r->op == WIRE_BK_OP_READ) {
            op = BOOKKEEPER__PROTO__OPERATION_TYPE__READ_ENTRY;
            rr.status = wire_bk_status_to_v3(r->status);
            rr.ledgerid = r->ledger;
            rr.entryid = r->entry;
            rr.has_body = r->body != NULL;
            rr.body.data = body;
            rr.body.len = bl;
            resp.readresponse = &rr;
        } else if (r->op == WIRE_BK_OP_START_TLS) {
            check(wire_bk_write_start_tls_response(out, r->txn, r->status) == 0, "v3 written");
        }
        if (r->op != WIRE_BK_OP_START_TLS)
            check(wire_bk_write_v3_response(out, op, r->txn, r->status, &resp) == 0, "v3 written");
    }
    struct wire_bk_response g;
    char err[160] = "";
    size_t n = evbuffer_get_length(out);
    int rc = wire_bk_response_read(out, v3, SIZE_MAX, &g, err, sizeof(err));
    if (rc != 1)
        fprintf(stderr, "fuzz_bk_response: re-read gave %d: %s\n", rc, err);
    check(rc == 1 && !g.oversized && g.frame_size == n, "re-encoded response reads back whole");
    check(evbuffer_get_length(out) == 0, "re-encoded frame consumed");
    check(g.op == r->op && g.status == r->status, "opcode and status survive");
    check(!r->op || (g.ledger == r->ledger && g.entry == r->entry), "ids survive");
    check(!v3 || g.txn == r->txn, "txnId survives");
    size_t gl;
    uint8_t *gb = flat(g.body, &gl);
    check((g.body != NULL) == (r->body != NULL) && gl == bl && memcmp(gb, body, bl) == 0,
          "body survives");
    free(gb);
    wire_bk_response_clear(&g);
    free(body);
    evbuffer_free(out);
}

/* One response (arg: the framing, v3 or v2). */
static int one_response(struct evbuffer *in, size_t before, size_t limit, uint64_t *skip, char *err,
                        size_t errlen, void *arg)
{
    bool v3 = *(const bool *)arg;
    struct wire_bk_response r;
    int rc = wire_bk_response_read(in, v3, limit, &r, err, errlen);
    if (rc <= 0)
        return fuzz_bk_no_frame(rc, in, before, err, r.body != NULL);
    check(rc == 1, "1 for a response");
    size_t took = before - evbuffer_get_length(in);
    check(r.status >= 0 && wire_bk_status_from_v2(r.status) == r.status,
          "status is one of the codes");
    if (r.oversized) {
        check(r.frame_size > limit && r.body == NULL, "oversized: over the limit, no body");
        check(took + r.skip == r.frame_size, "oversized: the rest is skipped");
        *skip = r.skip;
    } else {
        check(r.frame_size <= limit && took == r.frame_size, "frame taken whole");
        check(!r.body || !v3 || (r.op == WIRE_BK_OP_READ && r.status == WIRE_BK_EOK),
              "v3: a body only for an EOK read");
        recheck(&r, v3);
    }
    wire_bk_response_clear(&r);
    return 1;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 1)
        return 0;
    bool v3 = data[0] & 1;
    fuzz_bk_frames(data, size, one_response, &v3);
    return 0;
}
