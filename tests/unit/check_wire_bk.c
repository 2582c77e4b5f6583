/*
 * check_wire_bk.c - unit tests of the BookKeeper codec of the wire module (wire/wire_bk.h).
 *
 * Covers: encode -> decode round trips of every request and response kind both sides speak,
 * in both framings, for every status code; ADD payloads shared by reference (never copied)
 * and v3 ADD frames byte-identical to what protobuf-c packs on its own; frames fed one byte
 * at a time (nothing drained until complete); the frame limit counted with the length field
 * on both sides, oversized frames identified and skipped; truncated, impossible and garbage
 * input refused with a reason and no crash; status mapping, entry header, varints.
 * Failure modes: each test asserts with Check; run with CK_FORK=no under ASan.
 */
#include "lib/tl.h"
#include "lib/tl_bk_ops.h"
#include "util/alloc.h"
#include "util/bytes.h"
#include "util/err.h"
#include "wire/wire_bk.h"

#include <check.h>
#include <event2/buffer.h>
#include <stdlib.h>
#include <string.h>

#define LIMIT (5 * 1024 * 1024 + 10240)

static const int all_status[] = {
#define STATUS_LIST(name, v2) WIRE_BK_##name,
    WIRE_BK_STATUSES(STATUS_LIST)
#undef STATUS_LIST
};
#define N_STATUS (int)(sizeof(all_status) / sizeof(all_status[0]))

static const uint8_t key_a[WIRE_BK_MASTER_KEY_LEN] = "0123456789abcdefghij";

/* Flatten a whole evbuffer into a malloc'd copy (test helper only). */
static uint8_t *flat(struct evbuffer *b, size_t *len)
{
    *len = evbuffer_get_length(b);
    uint8_t *p = malloc(*len ? *len : 1);
    ck_assert_ptr_nonnull(p);
    ck_assert_int_eq(evbuffer_copyout(b, p, *len), (ev_ssize_t)*len);
    return p;
}

static bool same_bytes(struct evbuffer *b, const uint8_t *p, size_t n)
{
    size_t bl;
    uint8_t *q = flat(b, &bl);
    bool eq = bl == n && memcmp(q, p, n) == 0;
    free(q);
    return eq;
}

/* A response's body is the string want, or there is none (want NULL). */
static void expect_body(const struct wire_bk_response *r, const char *want)
{
    if (want) {
        ck_assert_ptr_nonnull(r->body);
        ck_assert(same_bytes(r->body, (const uint8_t *)want, strlen(want)));
    } else {
        ck_assert_ptr_null(r->body);
    }
}

/* A payload of n bytes in chunks of at most 1000 (several chains). */
static struct evbuffer *payload_new(size_t n, unsigned seed)
{
    struct evbuffer *b = evbuffer_new();
    uint8_t chunk[1000];
    for (size_t off = 0; off < n;) {
        size_t k = n - off < sizeof(chunk) ? n - off : sizeof(chunk);
        for (size_t i = 0; i < k; i++)
            chunk[i] = (uint8_t)(seed * 31 + off + i);
        evbuffer_add(b, chunk, k);
        off += k;
    }
    return b;
}

/* true when out holds the first chain of payload by reference: its bytes, at its address. */
static bool shares_chain(struct evbuffer *out, struct evbuffer *payload)
{
    struct evbuffer_iovec pv;
    if (evbuffer_peek(payload, -1, NULL, &pv, 1) < 1)
        return false;
    int n = evbuffer_peek(out, -1, NULL, NULL, 0);
    struct evbuffer_iovec *v = calloc((size_t)n, sizeof(*v));
    evbuffer_peek(out, -1, NULL, v, n);
    bool found = false;
    for (int i = 0; i < n; i++)
        if (v[i].iov_base == pv.iov_base)
            found = true;
    free(v);
    return found;
}

/* An entry header (+ 4 digest bytes) naming ledger and entry. */
static size_t ehdr_make(uint8_t *e, int64_t ledger, int64_t entry)
{
    struct wire_bk_entry_hdr h = {.ledger = ledger, .entry = entry, .lac = entry - 1, .length = 7};
    wire_bk_entry_hdr_put(e, &h);
    memcpy(e + WIRE_BK_ENTRY_HDR_LEN, "dgst", 4);
    return WIRE_BK_ENTRY_HDR_LEN + 4;
}

/* An ADD of entry of ledger (flags, txn, master key key_a) whose entry header ehdr_make
 * writes into e. */
static struct wire_bk_add add_of(uint8_t *e, int64_t ledger, int64_t entry, uint16_t flags,
                                 uint64_t txn)
{
    size_t el = ehdr_make(e, ledger, entry);
    return (struct wire_bk_add){.ledger = ledger,
                                .entry = entry,
                                .flags = flags,
                                .txn = txn,
                                .master_key = key_a,
                                .ehdr = e,
                                .ehdr_len = el};
}

/* One of the two readers, with what it needs: a request (proto, rq) or a response (v3, r). */
struct reader {
    int *proto;
    struct wire_bk_request *rq;
    bool v3;
    struct wire_bk_response *r;
};

static int reader_read(const struct reader *rd, struct evbuffer *in, size_t max_frame, char *err,
                       size_t errlen)
{
    if (rd->rq)
        return wire_bk_request_read(in, rd->proto, max_frame, rd->rq, err, errlen);
    return wire_bk_response_read(in, rd->v3, max_frame, rd->r, err, errlen);
}

/* Feed a frame (all of in) to a reader one byte at a time: nothing is taken before the last
 * byte, then exactly the frame. */
static int bytewise(struct evbuffer *in, size_t max_frame, const struct reader *rd)
{
    size_t n;
    uint8_t *all = flat(in, &n);
    evbuffer_drain(in, n);
    char err[160];
    int rc = 0;
    for (size_t i = 0; i < n; i++) {
        evbuffer_add(in, all + i, 1);
        rc = reader_read(rd, in, max_frame, err, sizeof(err));
        if (i + 1 < n) {
            ck_assert_msg(rc == 0, "frame complete after %zu of %zu bytes (%d: %s)", i + 1, n, rc,
                          err);
            ck_assert_uint_eq(evbuffer_get_length(in), i + 1);
        }
    }
    free(all);
    return rc;
}

static int request_bytewise(struct evbuffer *in, int *proto, size_t max_frame,
                            struct wire_bk_request *rq)
{
    struct reader rd = {.proto = proto, .rq = rq};
    return bytewise(in, max_frame, &rd);
}

static int response_bytewise(struct evbuffer *in, bool v3, size_t max_frame,
                             struct wire_bk_response *r)
{
    struct reader rd = {.v3 = v3, .r = r};
    return bytewise(in, max_frame, &rd);
}

/* ---- status codes, entry header, varints ---------------------------------------------------- */

START_TEST(test_status_codes)
{
    static const char *const names[] = {"EOK",
                                        "ENOLEDGER",
                                        "ENOENTRY",
                                        "EBADREQ",
                                        "EIO",
                                        "EUA",
                                        "EBADVERSION",
                                        "EFENCED",
                                        "EREADONLY",
                                        "ETOOMANYREQUESTS",
                                        "EUNKNOWNLEDGERSTATE"};
    static const int v2[] = {0, 1, 2, 100, 101, 102, 103, 104, 105, 106, 107};
    static const int v3[] = {0, 402, 403, 404, 501, 502, 503, 504, 505, 506, 507};
    ck_assert_int_eq(N_STATUS, 11);
    for (int i = 0; i < N_STATUS; i++) {
        int st = all_status[i];
        ck_assert_str_eq(wire_bk_status_str(st), names[i]);
        ck_assert_int_eq(st, v2[i]); /* the values are BookKeeper's v2 rc codes */
        ck_assert_int_eq((int)wire_bk_status_to_v3(st), v3[i]);
        ck_assert_int_eq(wire_bk_status_from_v3(v3[i]), st);
        ck_assert_int_eq(wire_bk_status_from_v2(v2[i]), st);
    }
    /* codes nobody defines count as EIO; local failures keep their own names */
    ck_assert_int_eq(wire_bk_status_from_v2(5), WIRE_BK_EIO);
    ck_assert_int_eq(wire_bk_status_from_v2(-1), WIRE_BK_EIO);
    ck_assert_int_eq(wire_bk_status_from_v3(401), WIRE_BK_EIO);
    ck_assert_int_eq(wire_bk_status_from_v3(1), WIRE_BK_EIO);
    ck_assert_int_eq((int)wire_bk_status_to_v3(3), BOOKKEEPER__PROTO__STATUS_CODE__EIO);
    ck_assert_str_eq(wire_bk_status_str(3), "unknown status");
    ck_assert_str_eq(wire_bk_status_str(-MG_ETIMEDOUT), mg_errname(-MG_ETIMEDOUT));
}
END_TEST

START_TEST(test_entry_header)
{
    uint8_t p[WIRE_BK_ENTRY_HDR_LEN];
    struct wire_bk_entry_hdr h = {.ledger = 0x0102030405060708,
                                  .entry = 9,
                                  .lac = -1,
                                  .length = INT64_MAX},
                             g;
    wire_bk_entry_hdr_put(p, &h);
    static const uint8_t want[WIRE_BK_ENTRY_HDR_LEN] = {
        1,    2,    3,    4,    5,    6,    7,    8,    0,    0,    0,
        0,    0,    0,    0,    9,    0xff, 0xff, 0xff, 0xff, 0xff, 0xff,
        0xff, 0xff, 0x7f, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff};
    ck_assert_mem_eq(p, want, sizeof(want));
    wire_bk_entry_hdr_get(p, &g);
    ck_assert_int_eq(g.ledger, h.ledger);
    ck_assert_int_eq(g.entry, h.entry);
    ck_assert_int_eq(g.lac, -1);
    ck_assert_int_eq(g.length, INT64_MAX);
}
END_TEST

START_TEST(test_varint)
{
    static const uint64_t vals[] = {
        0, 1, 127, 128, 300, 16383, 16384, UINT32_MAX, (uint64_t)INT64_MAX, UINT64_MAX};
    static const size_t lens[] = {1, 1, 1, 2, 2, 2, 3, 5, 9, 10};
    for (size_t i = 0; i < sizeof(vals) / sizeof(vals[0]); i++) {
        uint8_t b[16];
        uint64_t v = 0;
        size_t n = wire_bk_varint_put(b, vals[i]);
        ck_assert_uint_eq(n, lens[i]);
        ck_assert_int_eq(wire_bk_varint_get(b, n, &v), (int)n);
        ck_assert_uint_eq(v, vals[i]);
        ck_assert_int_eq(wire_bk_varint_get(b, n - 1, &v), -1); /* truncated */
    }
    static const uint8_t eleven[11] = {0x80, 0x80, 0x80, 0x80, 0x80, 0x80,
                                       0x80, 0x80, 0x80, 0x80, 0x01};
    uint64_t v;
    ck_assert_int_eq(wire_bk_varint_get(eleven, sizeof(eleven), &v), -1);
    /* bytes.h, the byte order the codec writes with */
    uint8_t b[8];
    mg_put_be16(b, 0x0102);
    ck_assert_uint_eq(mg_get_be16(b), 0x0102);
    mg_put_be32(b, 0xdeadbeef);
    ck_assert_uint_eq(b[0], 0xde);
    ck_assert_uint_eq(mg_get_be32(b), 0xdeadbeef);
    mg_put_be64(b, 0x0102030405060708);
    ck_assert_uint_eq(b[7], 8);
    ck_assert_uint_eq(mg_get_be64(b), 0x0102030405060708);
}
END_TEST

/* ---- requests -------------------------------------------------------------------------------- */

/* The flag combinations an ADD is sent with. */
static const uint16_t add_flags[] = {0, WIRE_BK_FLAG_RECOVERY_ADD,
                                     WIRE_BK_FLAG_RECOVERY_ADD | WIRE_BK_FLAG_HIGH_PRIORITY};

/* ADD, both framings, every flag combination, payloads of 0 to 70000 bytes: the bookie's
 * reader gets the fields and the entry body back; the payload went in by reference; the
 * frame is as long as wire_bk_add_frame_size says (v3: at most, exactly for the largest
 * txnId); one byte at a time nothing is taken before the frame is whole. */
START_TEST(test_add_roundtrip)
{
    bool v3 = _i == 1;
    static const size_t plens[] = {0, 1, 999, 70000};
    static const int64_t ids[][2] = {{1, 0}, {1LL << 40, 123456789}, {7, -1}};
    static const uint64_t txns[] = {1, UINT64_MAX, 2};
    for (size_t f = 0; f < sizeof(add_flags) / sizeof(add_flags[0]); f++) {
        for (size_t p = 0; p < sizeof(plens) / sizeof(plens[0]); p++) {
            for (size_t k = 0; k < sizeof(ids) / sizeof(ids[0]); k++) {
                int64_t ledger = ids[k][0], entry = ids[k][1];
                uint64_t txn = txns[k];
                uint8_t e[WIRE_BK_ENTRY_HDR_LEN + WIRE_BK_MAX_DIGEST_LEN];
                struct wire_bk_add a = add_of(e, ledger, entry, add_flags[f], txn);
                struct evbuffer *pl = payload_new(plens[p], (unsigned)(f + p + k));
                struct evbuffer *out = evbuffer_new();
                wire_bk_write_add(out, v3, &a, pl);
                ck_assert_uint_eq(evbuffer_get_length(pl), plens[p]); /* not drained */
                if (plens[p])
                    ck_assert_msg(shares_chain(out, pl), "payload copied (v3=%d)", v3);
                size_t fs = evbuffer_get_length(out);
                size_t bound =
                    wire_bk_add_frame_size(v3, ledger, entry, add_flags[f], a.ehdr_len, plens[p]);
                if (!v3 || txn == UINT64_MAX)
                    ck_assert_uint_eq(fs, bound);
                else
                    ck_assert_uint_le(fs, bound);

                int proto = WIRE_BK_PROTO_UNKNOWN;
                struct wire_bk_request rq;
                int rc = plens[p] <= 1000 ? request_bytewise(out, &proto, LIMIT, &rq)
                                          : wire_bk_request_read(out, &proto, LIMIT, &rq, NULL, 0);
                ck_assert_int_eq(rc, 1);
                ck_assert_uint_eq(evbuffer_get_length(out), 0);
                ck_assert_uint_eq(rq.frame_size, fs);
                ck_assert(!rq.oversized);
                ck_assert_int_eq(proto, v3 ? WIRE_BK_PROTO_V3 : WIRE_BK_PROTO_V2);
                ck_assert_int_eq(rq.proto, proto);
                const uint8_t *body;
                size_t blen;
                if (!v3) {
                    ck_assert_uint_eq(rq.op, WIRE_BK_OP_ADD);
                    ck_assert_uint_eq(rq.flags, add_flags[f]);
                    ck_assert_uint_eq(rq.v2_hdr >> 24, WIRE_BK_V2_VERSION);
                    ck_assert_int_eq(rq.ledger, ledger);
                    ck_assert_int_eq(rq.entry, entry);
                    ck_assert(rq.has_key);
                    ck_assert_mem_eq(rq.master_key, key_a, WIRE_BK_MASTER_KEY_LEN);
                    body = rq.body;
                    blen = rq.body_len;
                } else {
                    ck_assert_uint_eq(rq.op, BOOKKEEPER__PROTO__OPERATION_TYPE__ADD_ENTRY);
                    ck_assert_uint_eq(rq.txn, txn);
                    const Bookkeeper__Proto__Request *r = rq.v3;
                    ck_assert_ptr_nonnull(r->addrequest);
                    const Bookkeeper__Proto__AddRequest *ar = r->addrequest;
                    ck_assert_int_eq(r->header->version,
                                     BOOKKEEPER__PROTO__PROTOCOL_VERSION__VERSION_THREE);
                    bool prio = add_flags[f] & WIRE_BK_FLAG_HIGH_PRIORITY;
                    ck_assert_int_eq(r->header->has_priority, prio);
                    if (prio)
                        ck_assert_uint_eq(r->header->priority, WIRE_BK_V3_HIGH_PRIORITY);
                    bool rec = add_flags[f] & WIRE_BK_FLAG_RECOVERY_ADD;
                    ck_assert_int_eq(ar->has_flag, rec);
                    if (rec)
                        ck_assert_int_eq(ar->flag,
                                         BOOKKEEPER__PROTO__ADD_REQUEST__FLAG__RECOVERY_ADD);
                    ck_assert_int_eq(ar->ledgerid, ledger);
                    ck_assert_int_eq(ar->entryid, entry);
                    ck_assert_uint_eq(ar->masterkey.len, WIRE_BK_MASTER_KEY_LEN);
                    ck_assert_mem_eq(ar->masterkey.data, key_a, WIRE_BK_MASTER_KEY_LEN);
                    body = ar->body.data;
                    blen = ar->body.len;
                }
                ck_assert_uint_eq(blen, a.ehdr_len + plens[p]);
                ck_assert_mem_eq(body, e, a.ehdr_len);
                uint8_t *pb = malloc(plens[p] + 1);
                evbuffer_copyout(pl, pb, plens[p]);
                ck_assert(memcmp(body + a.ehdr_len, pb, plens[p]) == 0);
                free(pb);
                wire_bk_request_clear(&rq);
                evbuffer_free(out);
                evbuffer_free(pl);
            }
        }
    }
}
END_TEST

/* A v3 ADD written with the payload by reference is byte for byte what protobuf-c packs from
 * the same Request with the body in one piece (so the splice loses and adds nothing). */
START_TEST(test_v3_add_same_as_protobuf_c)
{
    for (size_t f = 0; f < sizeof(add_flags) / sizeof(add_flags[0]); f++) {
        uint8_t e[WIRE_BK_ENTRY_HDR_LEN + WIRE_BK_MAX_DIGEST_LEN];
        struct wire_bk_add a = add_of(e, 42, 300, add_flags[f], 77);
        struct evbuffer *pl = payload_new(5000, 3);
        struct evbuffer *out = evbuffer_new();
        wire_bk_write_add(out, true, &a, pl);

        size_t bl = a.ehdr_len + 5000;
        uint8_t *body = malloc(bl);
        memcpy(body, e, a.ehdr_len);
        evbuffer_copyout(pl, body + a.ehdr_len, 5000);
        Bookkeeper__Proto__Request r = BOOKKEEPER__PROTO__REQUEST__INIT;
        Bookkeeper__Proto__BKPacketHeader h = BOOKKEEPER__PROTO__BKPACKET_HEADER__INIT;
        Bookkeeper__Proto__AddRequest ar = BOOKKEEPER__PROTO__ADD_REQUEST__INIT;
        h.version = BOOKKEEPER__PROTO__PROTOCOL_VERSION__VERSION_THREE;
        h.operation = BOOKKEEPER__PROTO__OPERATION_TYPE__ADD_ENTRY;
        h.txnid = 77;
        if (add_flags[f] & WIRE_BK_FLAG_HIGH_PRIORITY) {
            h.has_priority = 1;
            h.priority = WIRE_BK_V3_HIGH_PRIORITY;
        }
        ar.ledgerid = 42;
        ar.entryid = 300;
        ar.masterkey.data = (uint8_t *)key_a;
        ar.masterkey.len = WIRE_BK_MASTER_KEY_LEN;
        ar.body.data = body;
        ar.body.len = bl;
        if (add_flags[f] & WIRE_BK_FLAG_RECOVERY_ADD) {
            ar.has_flag = 1;
            ar.flag = BOOKKEEPER__PROTO__ADD_REQUEST__FLAG__RECOVERY_ADD;
        }
        r.header = &h;
        r.addrequest = &ar;
        size_t n = bookkeeper__proto__request__get_packed_size(&r);
        uint8_t *want = malloc(4 + n);
        mg_put_be32(want, (uint32_t)n);
        bookkeeper__proto__request__pack(&r, want + 4);
        ck_assert(same_bytes(out, want, 4 + n));
        free(want);
        free(body);
        evbuffer_free(out);
        evbuffer_free(pl);
    }
}
END_TEST

/* READ, both framings: plain, entry -1, fencing (with the master key), high priority. */
START_TEST(test_read_roundtrip)
{
    bool v3 = _i == 1;
    static const uint16_t flags[] = {0, WIRE_BK_FLAG_FENCE,
                                     WIRE_BK_FLAG_FENCE | WIRE_BK_FLAG_HIGH_PRIORITY};
    static const int64_t entries[] = {0, -1, 1LL << 50};
    for (size_t f = 0; f < sizeof(flags) / sizeof(flags[0]); f++) {
        for (size_t k = 0; k < sizeof(entries) / sizeof(entries[0]); k++) {
            struct wire_bk_read rd = {.ledger = 9,
                                      .entry = entries[k],
                                      .flags = flags[f],
                                      .txn = 1000 + k,
                                      .master_key = key_a};
            struct evbuffer *out = evbuffer_new();
            wire_bk_write_read(out, v3, &rd);
            size_t fs = evbuffer_get_length(out);
            int proto = WIRE_BK_PROTO_UNKNOWN;
            struct wire_bk_request rq;
            ck_assert_int_eq(request_bytewise(out, &proto, LIMIT, &rq), 1);
            ck_assert_uint_eq(evbuffer_get_length(out), 0);
            ck_assert_uint_eq(rq.frame_size, fs);
            bool fence = flags[f] & WIRE_BK_FLAG_FENCE;
            if (!v3) {
                ck_assert_int_eq(proto, WIRE_BK_PROTO_V2);
                ck_assert_uint_eq(rq.op, WIRE_BK_OP_READ);
                ck_assert_uint_eq(rq.flags, flags[f]);
                ck_assert_int_eq(rq.ledger, 9);
                ck_assert_int_eq(rq.entry, entries[k]);
                ck_assert_int_eq(rq.has_key, fence);
                if (fence)
                    ck_assert_mem_eq(rq.master_key, key_a, WIRE_BK_MASTER_KEY_LEN);
            } else {
                ck_assert_int_eq(proto, WIRE_BK_PROTO_V3);
                ck_assert_uint_eq(rq.op, BOOKKEEPER__PROTO__OPERATION_TYPE__READ_ENTRY);
                ck_assert_uint_eq(rq.txn, 1000 + k);
                const Bookkeeper__Proto__ReadRequest *rr = rq.v3->readrequest;
                ck_assert_ptr_nonnull(rr);
                ck_assert_int_eq(rr->ledgerid, 9);
                ck_assert_int_eq(rr->entryid, entries[k]);
                ck_assert_int_eq(rr->has_flag, fence);
                ck_assert_int_eq(rr->has_masterkey, fence);
                if (fence) {
                    ck_assert_int_eq(rr->flag, BOOKKEEPER__PROTO__READ_REQUEST__FLAG__FENCE_LEDGER);
                    ck_assert_mem_eq(rr->masterkey.data, key_a, WIRE_BK_MASTER_KEY_LEN);
                }
                ck_assert_int_eq(rq.v3->header->has_priority,
                                 (flags[f] & WIRE_BK_FLAG_HIGH_PRIORITY) != 0);
            }
            wire_bk_request_clear(&rq);
            evbuffer_free(out);
        }
    }
}
END_TEST

/* Every other v3 request the bookie answers goes through wire_bk_write_v3_request and back
 * with its operation, txnId and sub-message; the caller's header pointer is restored. */
START_TEST(test_v3_other_requests)
{
    struct tl_bk_ops o;
    tl_bk_ops_init(&o);
    o.read_lac.ledgerid = 5;
    o.write_lac.ledgerid = 6;
    o.write_lac.lac = 3;
    o.write_lac.masterkey.data = (uint8_t *)key_a;
    o.write_lac.masterkey.len = WIRE_BK_MASTER_KEY_LEN;
    o.write_lac.body.data = (uint8_t *)"lacbody";
    o.write_lac.body.len = 7;
    o.bookie_info.has_requested = 1;
    o.bookie_info.requested = 3;
    o.force_ledger.ledgerid = 8;
    o.auth.authpluginname = "AuthDisabledPlugin";
    for (int op = BOOKKEEPER__PROTO__OPERATION_TYPE__AUTH;
         op <= BOOKKEEPER__PROTO__OPERATION_TYPE__FORCE_LEDGER; op++) {
        Bookkeeper__Proto__Request r;
        tl_bk_ops_request(&o, op, &r);
        struct evbuffer *out = evbuffer_new();
        wire_bk_write_v3_request(out, op, 500 + (uint64_t)op, 0, &r);
        ck_assert_ptr_null(r.header);
        int proto = WIRE_BK_PROTO_V3;
        struct wire_bk_request rq;
        ck_assert_int_eq(request_bytewise(out, &proto, LIMIT, &rq), 1);
        ck_assert_uint_eq(rq.op, (unsigned)op);
        ck_assert_uint_eq(rq.txn, 500 + (uint64_t)op);
        const Bookkeeper__Proto__Request *g = rq.v3;
        switch (op) {
        case BOOKKEEPER__PROTO__OPERATION_TYPE__AUTH:
            ck_assert_str_eq(g->authrequest->authpluginname, "AuthDisabledPlugin");
            break;
        case BOOKKEEPER__PROTO__OPERATION_TYPE__WRITE_LAC:
            ck_assert_int_eq(g->writelacrequest->ledgerid, 6);
            ck_assert_int_eq(g->writelacrequest->lac, 3);
            ck_assert_uint_eq(g->writelacrequest->body.len, 7);
            ck_assert_mem_eq(g->writelacrequest->body.data, "lacbody", 7);
            break;
        case BOOKKEEPER__PROTO__OPERATION_TYPE__READ_LAC:
            ck_assert_int_eq(g->readlacrequest->ledgerid, 5);
            break;
        case BOOKKEEPER__PROTO__OPERATION_TYPE__GET_BOOKIE_INFO:
            ck_assert_int_eq(g->getbookieinforequest->requested, 3);
            break;
        case BOOKKEEPER__PROTO__OPERATION_TYPE__START_TLS:
            ck_assert_ptr_nonnull(g->starttlsrequest);
            break;
        default:
            ck_assert_int_eq(g->forceledgerrequest->ledgerid, 8);
            break;
        }
        wire_bk_request_clear(&rq);
        evbuffer_free(out);
    }
}
END_TEST

/* START_TLS, as a v2 client sends it: the first frame is a v3 Request{header{VERSION_THREE,
 * START_TLS, txn}, startTLSRequest{}} (the framing detected as v3 from it), and once the
 * bookie forgets the framing (after the handshake) the next frame is read as v2; the
 * answers: EOK with the empty StartTLSResponse, a refusal without it, both reported to the
 * client as WIRE_BK_OP_START_TLS with their txnId. */
START_TEST(test_start_tls)
{
    for (uint64_t txn = 1; txn < (1ull << 40); txn = txn * 1000 + 7) {
        struct evbuffer *out = evbuffer_new();
        wire_bk_write_start_tls(out, txn);
        uint8_t e[WIRE_BK_ENTRY_HDR_LEN + WIRE_BK_MAX_DIGEST_LEN];
        struct wire_bk_add a = add_of(e, 3, (int64_t)txn % 100, 0, 0);
        struct evbuffer *payload = payload_new(100, (unsigned)txn);
        wire_bk_write_add(out, false, &a, payload);
        int proto = WIRE_BK_PROTO_UNKNOWN;
        struct wire_bk_request rq;
        char err[128];
        ck_assert_int_eq(wire_bk_request_read(out, &proto, LIMIT, &rq, err, sizeof err), 1);
        ck_assert_int_eq(proto, WIRE_BK_PROTO_V3);
        ck_assert_int_eq(rq.proto, WIRE_BK_PROTO_V3);
        ck_assert_uint_eq(rq.op, BOOKKEEPER__PROTO__OPERATION_TYPE__START_TLS);
        ck_assert_uint_eq(rq.txn, txn);
        ck_assert_int_eq(rq.v3->header->version,
                         BOOKKEEPER__PROTO__PROTOCOL_VERSION__VERSION_THREE);
        ck_assert_ptr_nonnull(rq.v3->starttlsrequest);
        wire_bk_request_clear(&rq);
        proto = WIRE_BK_PROTO_UNKNOWN; /* what the bookie does once TLS is on */
        ck_assert_int_eq(request_bytewise(out, &proto, LIMIT, &rq), 1);
        ck_assert_int_eq(proto, WIRE_BK_PROTO_V2);
        ck_assert_uint_eq(rq.op, WIRE_BK_OP_ADD);
        ck_assert_int_eq(rq.ledger, 3);
        ck_assert_int_eq(rq.entry, (int64_t)txn % 100);
        wire_bk_request_clear(&rq);
        ck_assert_uint_eq(evbuffer_get_length(out), 0);
        evbuffer_free(payload);

        for (size_t i = 0; i < sizeof all_status / sizeof all_status[0]; i++) {
            int st = all_status[i];
            ck_assert_int_eq(wire_bk_write_start_tls_response(out, txn, st), 0);
            size_t n;
            uint8_t *raw = flat(out, &n);
            Bookkeeper__Proto__Response *pr =
                bookkeeper__proto__response__unpack(NULL, n - 4, raw + 4);
            ck_assert_ptr_nonnull(pr);
            ck_assert_int_eq(pr->header->operation, BOOKKEEPER__PROTO__OPERATION_TYPE__START_TLS);
            ck_assert_int_eq(pr->status, wire_bk_status_to_v3(st));
            ck_assert(st == WIRE_BK_EOK ? pr->starttlsresponse != NULL
                                        : pr->starttlsresponse == NULL);
            bookkeeper__proto__response__free_unpacked(pr, NULL);
            free(raw);
            struct wire_bk_response r;
            ck_assert_int_eq(response_bytewise(out, true, LIMIT, &r), 1);
            ck_assert_int_eq(r.op, WIRE_BK_OP_START_TLS);
            ck_assert_uint_eq(r.txn, txn);
            ck_assert_int_eq(r.status, st);
            ck_assert_ptr_null(r.body);
            wire_bk_response_clear(&r);
        }
        evbuffer_free(out);
    }
}
END_TEST

/* The bookie takes over an unpacked v3 ADD body: the same bytes, not a copy, and the
 * request frees cleanly afterwards (ASan: no double free, no leak). */
START_TEST(test_take_bytes)
{
    uint8_t e[WIRE_BK_ENTRY_HDR_LEN + WIRE_BK_MAX_DIGEST_LEN];
    struct wire_bk_add a = add_of(e, 1, 2, 0, 3);
    struct evbuffer *pl = payload_new(100, 1);
    struct evbuffer *out = evbuffer_new();
    wire_bk_write_add(out, true, &a, pl);
    int proto = WIRE_BK_PROTO_UNKNOWN;
    struct wire_bk_request rq;
    ck_assert_int_eq(wire_bk_request_read(out, &proto, LIMIT, &rq, NULL, 0), 1);
    ProtobufCBinaryData *b = &rq.v3->addrequest->body;
    uint8_t *was = b->data;
    size_t len = b->len;
    uint8_t *mine = wire_bk_take_bytes(b);
    ck_assert_ptr_eq(mine, was);
    ck_assert_ptr_null(b->data);
    ck_assert_uint_eq(b->len, 0);
    ck_assert_uint_eq(len, a.ehdr_len + 100);
    ck_assert_mem_eq(mine, e, a.ehdr_len);
    wire_bk_request_clear(&rq);
    mg_free(mine);
    ProtobufCBinaryData empty = {0, NULL};
    mine = wire_bk_take_bytes(&empty);
    ck_assert_ptr_nonnull(mine);
    mg_free(mine);
    evbuffer_free(out);
    evbuffer_free(pl);
}
END_TEST

/* ---- responses ------------------------------------------------------------------------------- */

/* v2 ADD and READ responses for every status: the client's reader gets opcode, status, ids
 * and (EOK reads) the body; the response echoes the request's version and opcode but not
 * its flags; a version-0 request is echoed whole. */
START_TEST(test_v2_responses)
{
    for (int i = 0; i < N_STATUS; i++) {
        for (int op = WIRE_BK_OP_ADD; op <= WIRE_BK_OP_READ; op++) {
            int st = all_status[i];
            uint32_t req_hdr = (uint32_t)WIRE_BK_V2_VERSION << 24 | (uint32_t)op << 16 |
                               WIRE_BK_FLAG_FENCE | WIRE_BK_FLAG_HIGH_PRIORITY;
            bool body = op == WIRE_BK_OP_READ && st == WIRE_BK_EOK;
            struct evbuffer *out = evbuffer_new();
            wire_bk_write_v2_response(out, req_hdr, st, 77, -1, (const uint8_t *)"entry-body",
                                      body ? 10 : 0);
            uint8_t h[8];
            evbuffer_copyout(out, h, 8);
            ck_assert_uint_eq(mg_get_be32(h), WIRE_BK_V2_RESPONSE_LEN + (body ? 10 : 0));
            ck_assert_uint_eq(mg_get_be32(h + 4), req_hdr & 0xffff0000u);
            struct wire_bk_response r;
            ck_assert_int_eq(response_bytewise(out, false, LIMIT, &r), 1);
            ck_assert_uint_eq(evbuffer_get_length(out), 0);
            ck_assert_int_eq(r.op, op);
            ck_assert_int_eq(r.status, st);
            ck_assert_int_eq(r.ledger, 77);
            ck_assert_int_eq(r.entry, -1);
            ck_assert(!r.oversized);
            expect_body(&r, body ? "entry-body" : NULL);
            wire_bk_response_clear(&r);
            evbuffer_free(out);
        }
    }
    struct evbuffer *out = evbuffer_new();
    wire_bk_write_v2_response(out, WIRE_BK_OP_READ, WIRE_BK_ENOENTRY, 1, 2, NULL, 0);
    uint8_t h[12];
    evbuffer_copyout(out, h, 12);
    ck_assert_uint_eq(mg_get_be32(h + 4), WIRE_BK_OP_READ);
    ck_assert_uint_eq(mg_get_be32(h + 8), WIRE_BK_ENOENTRY);
    evbuffer_free(out);
}
END_TEST

/* A v2 AUTH is answered with AuthMessage{plugin} behind the echoed header. */
START_TEST(test_v2_auth)
{
    struct evbuffer *out = evbuffer_new();
    uint32_t req_hdr = (uint32_t)WIRE_BK_V2_VERSION << 24 | WIRE_BK_OP_AUTH << 16;
    wire_bk_write_v2_auth(out, req_hdr, "AuthDisabledPlugin");
    size_t n;
    uint8_t *p = flat(out, &n);
    ck_assert_uint_eq(mg_get_be32(p), n - 4);
    ck_assert_uint_eq(mg_get_be32(p + 4), req_hdr);
    Bookkeeper__Proto__AuthMessage *am =
        bookkeeper__proto__auth_message__unpack(NULL, n - 8, p + 8);
    ck_assert_ptr_nonnull(am);
    ck_assert_str_eq(am->authpluginname, "AuthDisabledPlugin");
    bookkeeper__proto__auth_message__free_unpacked(am, NULL);
    free(p);
    evbuffer_free(out);
}
END_TEST

/* v3 responses of every operation and status, as the bookie writes them: the client's reader
 * reports ADD/READ as their v2 opcodes (anything else as 0), the txnId, the inner status (or
 * the outer one when there is no inner message), the ids and an EOK read's body. */
START_TEST(test_v3_responses)
{
    for (int i = 0; i < N_STATUS; i++) {
        int st = all_status[i];
        for (int op = BOOKKEEPER__PROTO__OPERATION_TYPE__READ_ENTRY;
             op <= BOOKKEEPER__PROTO__OPERATION_TYPE__FORCE_LEDGER; op++) {
            if (op == BOOKKEEPER__PROTO__OPERATION_TYPE__RANGE_READ_ENTRY ||
                op == BOOKKEEPER__PROTO__OPERATION_TYPE__RANGE_ADD_ENTRY)
                continue;
            Bookkeeper__Proto__Response r = BOOKKEEPER__PROTO__RESPONSE__INIT;
            Bookkeeper__Proto__AddResponse ar = BOOKKEEPER__PROTO__ADD_RESPONSE__INIT;
            Bookkeeper__Proto__ReadResponse rr = BOOKKEEPER__PROTO__READ_RESPONSE__INIT;
            Bookkeeper__Proto__WriteLacResponse wl = BOOKKEEPER__PROTO__WRITE_LAC_RESPONSE__INIT;
            Bookkeeper__Proto__ReadLacResponse rl = BOOKKEEPER__PROTO__READ_LAC_RESPONSE__INIT;
            Bookkeeper__Proto__GetBookieInfoResponse gi =
                BOOKKEEPER__PROTO__GET_BOOKIE_INFO_RESPONSE__INIT;
            Bookkeeper__Proto__ForceLedgerResponse fl =
                BOOKKEEPER__PROTO__FORCE_LEDGER_RESPONSE__INIT;
            Bookkeeper__Proto__AuthMessage am = BOOKKEEPER__PROTO__AUTH_MESSAGE__INIT;
            Bookkeeper__Proto__StatusCode v3 = wire_bk_status_to_v3(st);
            ar.status = rr.status = wl.status = rl.status = gi.status = fl.status = v3;
            ar.ledgerid = rr.ledgerid = 4;
            ar.entryid = rr.entryid = 5;
            if (st == WIRE_BK_EOK) {
                rr.has_body = 1;
                rr.body.data = (uint8_t *)"v3-body";
                rr.body.len = 7;
            }
            rr.has_maxlac = 1;
            rr.maxlac = 4;
            am.authpluginname = "x";
            /* the inner message of op alone (START_TLS: none, the outer status alone) */
#define OP(name) (op == BOOKKEEPER__PROTO__OPERATION_TYPE__##name)
            r.addresponse = OP(ADD_ENTRY) ? &ar : NULL;
            r.readresponse = OP(READ_ENTRY) ? &rr : NULL;
            r.writelacresponse = OP(WRITE_LAC) ? &wl : NULL;
            r.readlacresponse = OP(READ_LAC) ? &rl : NULL;
            r.getbookieinforesponse = OP(GET_BOOKIE_INFO) ? &gi : NULL;
            r.forceledgerresponse = OP(FORCE_LEDGER) ? &fl : NULL;
            r.authresponse = OP(AUTH) ? &am : NULL;
            int want_op = OP(ADD_ENTRY)    ? WIRE_BK_OP_ADD
                          : OP(READ_ENTRY) ? WIRE_BK_OP_READ
                          : OP(START_TLS)  ? WIRE_BK_OP_START_TLS
                                           : 0;
#undef OP
            struct evbuffer *out = evbuffer_new();
            uint64_t txn = ((uint64_t)op << 40) | (uint64_t)i;
            ck_assert_int_eq(wire_bk_write_v3_response(out, op, txn, st, &r), 0);
            ck_assert_ptr_null(r.header);
            ck_assert_int_eq(r.status, v3);
            struct wire_bk_response g;
            ck_assert_int_eq(response_bytewise(out, true, LIMIT, &g), 1);
            ck_assert_uint_eq(evbuffer_get_length(out), 0);
            ck_assert_int_eq(g.op, want_op);
            ck_assert_uint_eq(g.txn, txn);
            ck_assert_int_eq(g.status, st);
            if (want_op == WIRE_BK_OP_ADD || want_op == WIRE_BK_OP_READ) {
                ck_assert_int_eq(g.ledger, 4);
                ck_assert_int_eq(g.entry, 5);
            }
            expect_body(&g, want_op == WIRE_BK_OP_READ && st == WIRE_BK_EOK ? "v3-body" : NULL);
            wire_bk_response_clear(&g);
            evbuffer_free(out);
        }
    }
}
END_TEST

/* The outer status decides when it reports a failure, the inner one otherwise: a request
 * refused before it ran (EBADVERSION, no inner message) and an inner EFENCED under an outer
 * EOK both reach the caller. An EOK read with an empty body gives an empty buffer. */
START_TEST(test_v3_outer_status)
{
    Bookkeeper__Proto__Response r = BOOKKEEPER__PROTO__RESPONSE__INIT;
    struct evbuffer *out = evbuffer_new();
    ck_assert_int_eq(wire_bk_write_v3_response(out, BOOKKEEPER__PROTO__OPERATION_TYPE__ADD_ENTRY, 9,
                                               WIRE_BK_EBADVERSION, &r),
                     0);
    struct wire_bk_response g;
    ck_assert_int_eq(wire_bk_response_read(out, true, LIMIT, &g, NULL, 0), 1);
    ck_assert_int_eq(g.op, WIRE_BK_OP_ADD);
    ck_assert_int_eq(g.status, WIRE_BK_EBADVERSION);
    wire_bk_response_clear(&g);

    Bookkeeper__Proto__AddResponse ar = BOOKKEEPER__PROTO__ADD_RESPONSE__INIT;
    ar.status = BOOKKEEPER__PROTO__STATUS_CODE__EFENCED;
    r.addresponse = &ar;
    ck_assert_int_eq(wire_bk_write_v3_response(out, BOOKKEEPER__PROTO__OPERATION_TYPE__ADD_ENTRY,
                                               10, WIRE_BK_EOK, &r),
                     0);
    ck_assert_int_eq(wire_bk_response_read(out, true, LIMIT, &g, NULL, 0), 1);
    ck_assert_int_eq(g.status, WIRE_BK_EFENCED);
    wire_bk_response_clear(&g);

    /* an EOK read of an empty body: an empty buffer, not none */
    Bookkeeper__Proto__Response r2 = BOOKKEEPER__PROTO__RESPONSE__INIT;
    Bookkeeper__Proto__ReadResponse rr = BOOKKEEPER__PROTO__READ_RESPONSE__INIT;
    rr.has_body = 1;
    r2.readresponse = &rr;
    ck_assert_int_eq(wire_bk_write_v3_response(out, BOOKKEEPER__PROTO__OPERATION_TYPE__READ_ENTRY,
                                               11, WIRE_BK_EOK, &r2),
                     0);
    ck_assert_int_eq(wire_bk_response_read(out, true, LIMIT, &g, NULL, 0), 1);
    ck_assert_ptr_nonnull(g.body);
    ck_assert_uint_eq(evbuffer_get_length(g.body), 0);
    wire_bk_response_clear(&g);
    evbuffer_free(out);
}
END_TEST

/* ---- frame limit ----------------------------------------------------------------------------- */

/* Both sides count the frame with its length field, as Netty does: a frame of exactly the
 * limit is read whole, one byte more is oversized. An oversized request is identified from
 * its first bytes (v2 ADD/READ ids, v3 header), only the length field is drained, and the
 * rest is skipped as it arrives, after which the next frame reads normally. */
START_TEST(test_oversized_requests)
{
    bool v3 = _i == 1;
    uint8_t e[WIRE_BK_ENTRY_HDR_LEN + WIRE_BK_MAX_DIGEST_LEN];
    struct wire_bk_add a = add_of(e, 12, 34, 0, 56);
    struct evbuffer *pl = payload_new(3000, 9);
    struct evbuffer *in = evbuffer_new();
    wire_bk_write_add(in, v3, &a, pl);
    size_t fs = evbuffer_get_length(in);
    struct wire_bk_read rd = {.ledger = 12, .entry = 35, .txn = 57};
    wire_bk_write_read(in, v3, &rd); /* the next frame */
    int proto = WIRE_BK_PROTO_UNKNOWN;
    struct wire_bk_request rq;
    char err[160];

    /* exactly at the limit */
    ck_assert_int_eq(wire_bk_request_read(in, &proto, fs, &rq, err, sizeof(err)), 1);
    ck_assert(!rq.oversized);
    wire_bk_request_clear(&rq);
    ck_assert_int_eq(wire_bk_request_read(in, &proto, fs, &rq, err, sizeof(err)), 1);
    wire_bk_request_clear(&rq);
    ck_assert_uint_eq(evbuffer_get_length(in), 0);

    /* one byte over: identified from WIRE_BK_PEEK bytes, before the rest arrived */
    struct evbuffer *all = evbuffer_new();
    wire_bk_write_add(all, v3, &a, pl);
    wire_bk_write_read(all, v3, &rd);
    evbuffer_remove_buffer(all, in, WIRE_BK_PEEK + 4);
    ck_assert_int_eq(wire_bk_request_read(in, &proto, fs - 1, &rq, err, sizeof(err)), 1);
    ck_assert(rq.oversized);
    ck_assert_uint_eq(rq.frame_size, fs);
    ck_assert_uint_eq(rq.skip, fs - 4);
    ck_assert_uint_eq(evbuffer_get_length(in), WIRE_BK_PEEK);
    if (v3) {
        ck_assert_uint_eq(rq.op, BOOKKEEPER__PROTO__OPERATION_TYPE__ADD_ENTRY);
        ck_assert_uint_eq(rq.txn, 56);
        ck_assert_ptr_null(rq.v3);
    } else {
        ck_assert_uint_eq(rq.op, WIRE_BK_OP_ADD);
        ck_assert_int_eq(rq.ledger, 12);
        ck_assert_int_eq(rq.entry, 34);
        ck_assert_ptr_null(rq.body);
    }
    uint64_t skip = rq.skip;
    wire_bk_request_clear(&rq);
    /* the rest trickles in: dropped as it comes, then the READ behind it */
    ck_assert(wire_bk_skip(in, &skip));
    while (evbuffer_get_length(all) > 0) {
        evbuffer_remove_buffer(all, in, 1000);
        if (!wire_bk_skip(in, &skip))
            break;
    }
    ck_assert_uint_eq(skip, 0);
    evbuffer_add_buffer(in, all);
    ck_assert_int_eq(wire_bk_request_read(in, &proto, fs - 1, &rq, err, sizeof(err)), 1);
    ck_assert(!rq.oversized);
    if (v3)
        ck_assert_uint_eq(rq.txn, 57);
    else
        ck_assert_int_eq(rq.entry, 35);
    wire_bk_request_clear(&rq);
    ck_assert_uint_eq(evbuffer_get_length(in), 0);

    /* an oversized frame that cannot be identified */
    uint8_t junk[4 + WIRE_BK_PEEK] = {0};
    mg_put_be32(junk, WIRE_BK_PEEK + 1000);
    if (v3) {
        junk[4] = 0x0A; /* a header field that is not a BKPacketHeader */
        junk[5] = 3;
        memset(junk + 6, 0xff, 3);
    } else {
        mg_put_be32(junk + 4, (uint32_t)WIRE_BK_V2_VERSION << 24 | 7u << 16); /* opcode 7 */
    }
    evbuffer_add(in, junk, sizeof(junk));
    ck_assert_int_eq(wire_bk_request_read(in, &proto, 100, &rq, err, sizeof(err)), -MG_ETOOBIG);
    ck_assert_msg(strstr(err, "exceeds the limit") != NULL, "errmsg: %s", err);
    evbuffer_free(in);
    evbuffer_free(all);
    evbuffer_free(pl);
}
END_TEST

/* The client's reader: an oversized v2 response is known by its ids (28 bytes read, the body
 * skipped), a v3 one by its txnId; exactly at the limit is read whole. */
START_TEST(test_oversized_responses)
{
    bool v3 = _i == 1;
    uint8_t body[2000];
    memset(body, 'b', sizeof(body));
    struct evbuffer *in = evbuffer_new();
    Bookkeeper__Proto__Response r = BOOKKEEPER__PROTO__RESPONSE__INIT;
    Bookkeeper__Proto__ReadResponse rr = BOOKKEEPER__PROTO__READ_RESPONSE__INIT;
    rr.ledgerid = 3;
    rr.entryid = 4;
    rr.has_body = 1;
    rr.body.data = body;
    rr.body.len = sizeof(body);
    r.readresponse = &rr;
    for (int round = 0; round < 2; round++) {
        if (v3)
            wire_bk_write_v3_response(in, BOOKKEEPER__PROTO__OPERATION_TYPE__READ_ENTRY, 99,
                                      WIRE_BK_EOK, &r);
        else
            wire_bk_write_v2_response(in, (uint32_t)WIRE_BK_V2_VERSION << 24 | 2u << 16,
                                      WIRE_BK_EOK, 3, 4, body, sizeof(body));
    }
    size_t fs = evbuffer_get_length(in) / 2;
    struct wire_bk_response g;
    char err[160];
    ck_assert_int_eq(wire_bk_response_read(in, v3, fs, &g, err, sizeof(err)), 1);
    ck_assert(!g.oversized);
    ck_assert_uint_eq(evbuffer_get_length(g.body), sizeof(body));
    wire_bk_response_clear(&g);
    ck_assert_int_eq(wire_bk_response_read(in, v3, fs - 1, &g, err, sizeof(err)), 1);
    ck_assert(g.oversized);
    ck_assert_ptr_null(g.body);
    ck_assert_uint_eq(g.frame_size, fs);
    ck_assert_int_eq(g.op, WIRE_BK_OP_READ);
    if (v3) {
        ck_assert_uint_eq(g.txn, 99);
    } else {
        ck_assert_int_eq(g.ledger, 3);
        ck_assert_int_eq(g.entry, 4);
    }
    ck_assert_uint_eq(evbuffer_get_length(in), g.skip);
    uint64_t skip = g.skip;
    ck_assert(!wire_bk_skip(in, &skip));
    ck_assert_uint_eq(evbuffer_get_length(in), 0);
    wire_bk_response_clear(&g);

    /* an oversized v3 response whose header does not decode */
    if (v3) {
        uint8_t junk[4 + WIRE_BK_PEEK] = {0, 0, 0x10, 0, 0x0A, 2, 0x08};
        evbuffer_add(in, junk, sizeof(junk));
        ck_assert_int_eq(wire_bk_response_read(in, true, 100, &g, err, sizeof(err)), -MG_EPROTO);
        ck_assert_msg(strstr(err, "oversized") != NULL, "errmsg: %s", err);
    }
    evbuffer_free(in);
}
END_TEST

/* ---- bad input ------------------------------------------------------------------------------- */

static int request_once(const uint8_t *p, size_t n, int proto, char *err, size_t errlen)
{
    struct evbuffer *in = evbuffer_new();
    evbuffer_add(in, p, n);
    struct wire_bk_request rq;
    err[0] = '\0';
    int rc = wire_bk_request_read(in, &proto, LIMIT, &rq, err, errlen);
    wire_bk_request_clear(&rq);
    evbuffer_free(in);
    return rc;
}

static int response_once(const uint8_t *p, size_t n, bool v3, char *err, size_t errlen)
{
    struct evbuffer *in = evbuffer_new();
    evbuffer_add(in, p, n);
    struct wire_bk_response r;
    err[0] = '\0';
    int rc = wire_bk_response_read(in, v3, LIMIT, &r, err, errlen);
    wire_bk_response_clear(&r);
    evbuffer_free(in);
    return rc;
}

/* Impossible lengths, unknown framings, requests too short for their fields and messages
 * that do not decode are refused with a reason; a request cut anywhere is only incomplete. */
START_TEST(test_bad_requests)
{
    char err[160];
    static const struct {
        uint8_t b[12];
        size_t n;
        int proto;
        const char *why;
    } bad[] = {
        {{0x80, 0, 0, 0, 2}, 5, WIRE_BK_PROTO_UNKNOWN, "not a valid length"},
        {{0, 0, 0, 3, 2, 0, 0}, 7, WIRE_BK_PROTO_UNKNOWN, "too short"},
        {{0, 0, 0, 4, 7, 0, 0, 0}, 8, WIRE_BK_PROTO_UNKNOWN, "neither v2 nor v3"},
        {{0, 0, 0, 8, 2, 1, 0, 0, 1, 2, 3, 4}, 12, WIRE_BK_PROTO_UNKNOWN, "v2 ADD"},
        {{0, 0, 0, 8, 2, 2, 0, 0, 1, 2, 3, 4}, 12, WIRE_BK_PROTO_UNKNOWN, "v2 READ"},
        {{0, 0, 0, 4, 0x0A, 2, 0x08, 3}, 8, WIRE_BK_PROTO_UNKNOWN, "undecodable v3"},
        {{0, 0, 0, 4, 2, 1, 0, 0}, 8, WIRE_BK_PROTO_V3, "undecodable v3"},
    };
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        ck_assert_int_eq(request_once(bad[i].b, bad[i].n, bad[i].proto, err, sizeof(err)),
                         -MG_EPROTO);
        ck_assert_msg(strstr(err, bad[i].why) != NULL, "case %zu: %s", i, err);
    }
    /* other v2 opcodes (AUTH, or ones we refuse) come back drained, for the caller */
    static const uint8_t auth[] = {0, 0, 0, 6, 2, 3, 0, 0, 'x', 'y'};
    int proto = WIRE_BK_PROTO_UNKNOWN;
    struct evbuffer *in = evbuffer_new();
    evbuffer_add(in, auth, sizeof(auth));
    struct wire_bk_request rq;
    ck_assert_int_eq(wire_bk_request_read(in, &proto, LIMIT, &rq, err, sizeof(err)), 1);
    ck_assert_uint_eq(rq.op, WIRE_BK_OP_AUTH);
    ck_assert_uint_eq(evbuffer_get_length(in), 0);
    wire_bk_request_clear(&rq);
    evbuffer_free(in);

    /* every prefix of a valid v3 ADD is incomplete, never an error */
    uint8_t e[WIRE_BK_ENTRY_HDR_LEN + WIRE_BK_MAX_DIGEST_LEN];
    struct wire_bk_add a = add_of(e, 1, 1, 0, 0);
    struct evbuffer *pl = payload_new(10, 1);
    struct evbuffer *out = evbuffer_new();
    wire_bk_write_add(out, true, &a, pl);
    size_t n;
    uint8_t *p = flat(out, &n);
    for (size_t k = 0; k < n; k++)
        ck_assert_int_eq(request_once(p, k, WIRE_BK_PROTO_UNKNOWN, err, sizeof(err)), 0);
    free(p);
    evbuffer_free(out);
    evbuffer_free(pl);
}
END_TEST

START_TEST(test_bad_responses)
{
    char err[160];
    static const uint8_t short_v2[] = {0, 0, 0, 23};
    ck_assert_int_eq(response_once(short_v2, sizeof(short_v2), false, err, sizeof(err)),
                     -MG_EPROTO);
    static const uint8_t short_v3[] = {0, 0, 0, 1, 0x0A};
    ck_assert_int_eq(response_once(short_v3, sizeof(short_v3), true, err, sizeof(err)), -MG_EPROTO);
    static const uint8_t junk_v3[] = {0, 0, 0, 4, 0x0A, 9, 1, 2};
    ck_assert_int_eq(response_once(junk_v3, sizeof(junk_v3), true, err, sizeof(err)), -MG_EPROTO);
    ck_assert_msg(strstr(err, "undecodable") != NULL, "%s", err);
    /* a well-formed Response of another protocol version */
    Bookkeeper__Proto__Response r = BOOKKEEPER__PROTO__RESPONSE__INIT;
    Bookkeeper__Proto__BKPacketHeader h = BOOKKEEPER__PROTO__BKPACKET_HEADER__INIT;
    h.version = BOOKKEEPER__PROTO__PROTOCOL_VERSION__VERSION_TWO;
    h.operation = BOOKKEEPER__PROTO__OPERATION_TYPE__ADD_ENTRY;
    r.header = &h;
    uint8_t b[64];
    size_t n = bookkeeper__proto__response__pack(&r, b + 4);
    mg_put_be32(b, (uint32_t)n);
    ck_assert_int_eq(response_once(b, 4 + n, true, err, sizeof(err)), -MG_EPROTO);
    ck_assert_msg(strstr(err, "version") != NULL, "%s", err);
    /* every prefix of a valid response is incomplete */
    for (size_t k = 0; k < 4 + n; k++)
        ck_assert_int_eq(response_once(b, k, true, err, sizeof(err)), 0);
}
END_TEST

/* Random bytes through both readers, in both framings, with a small and a large limit: every
 * call returns -1..1 with a reason on error, takes only whole frames, and nothing leaks or
 * overruns (ASan). */
START_TEST(test_garbage)
{
    uint64_t x = 0x9e3779b97f4a7c15ull;
    uint8_t buf[300];
    for (int round = 0; round < 3000; round++) {
        size_t n = (size_t)(x % sizeof(buf));
        for (size_t i = 0; i < n; i++) {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            buf[i] = (uint8_t)x;
        }
        if (n >= 4 && (round & 1)) { /* a plausible length field */
            mg_put_be32(buf, (uint32_t)(x % (n + 8)));
            if (n >= 5 && (round & 2))
                buf[4] = (round & 4) ? 0x0A : 2;
        }
        size_t limit = (round & 8) ? 40 : LIMIT;
        for (int side = 0; side < 4; side++) {
            struct evbuffer *in = evbuffer_new();
            evbuffer_add(in, buf, n);
            char err[160];
            for (int k = 0; k < 50; k++) {
                size_t before = evbuffer_get_length(in);
                err[0] = '\0';
                int rc;
                if (side < 2) {
                    int proto = side == 0 ? WIRE_BK_PROTO_UNKNOWN : WIRE_BK_PROTO_V3;
                    struct wire_bk_request rq;
                    rc = wire_bk_request_read(in, &proto, limit, &rq, err, sizeof(err));
                    if (rc == 1)
                        ck_assert_uint_eq(before - evbuffer_get_length(in),
                                          rq.oversized ? 4 : rq.frame_size);
                    wire_bk_request_clear(&rq);
                } else {
                    struct wire_bk_response r;
                    rc = wire_bk_response_read(in, side == 3, limit, &r, err, sizeof(err));
                    if (rc == 1 && !r.oversized)
                        ck_assert_uint_eq(before - evbuffer_get_length(in), r.frame_size);
                    wire_bk_response_clear(&r);
                }
                ck_assert_int_le(rc, 1);
                if (rc < 0)
                    ck_assert(err[0] != '\0');
                if (rc == 0)
                    ck_assert_uint_eq(evbuffer_get_length(in), before);
                if (rc != 1)
                    break;
            }
            evbuffer_free(in);
        }
    }
}
END_TEST

static Suite *wire_bk_suite(void)
{
    Suite *s = suite_create("wire_bk");
    TCase *tc = tl_tcase(s, "core", 60, NULL, NULL);
    tl_add(tc, test_status_codes, test_entry_header, test_varint);
    tcase_add_loop_test(tc, test_add_roundtrip, 0, 2);
    tl_add(tc, test_v3_add_same_as_protobuf_c);
    tcase_add_loop_test(tc, test_read_roundtrip, 0, 2);
    tl_add(tc, test_start_tls);
    tl_add(tc, test_v3_other_requests, test_take_bytes, test_v2_responses, test_v2_auth,
           test_v3_responses, test_v3_outer_status);
    tcase_add_loop_test(tc, test_oversized_requests, 0, 2);
    tcase_add_loop_test(tc, test_oversized_responses, 0, 2);
    tl_add(tc, test_bad_requests, test_bad_responses, test_garbage);
    return s;
}

int main(void)
{
    return tl_run(wire_bk_suite());
}
