/*
 * wire_bk.c - the BookKeeper wire codec (docs/wire-bookkeeper.md §1-§4) for both sides: the
 * ledger client (broker/bkc) and the bookie (broker/bookie). No event loop, no I/O.
 *
 * Happy path, client: wire_bk_write_add / wire_bk_write_read append a request frame. A v3 ADD
 * is packed by protobuf-c through a ProtobufCBuffer (add_sink) that gathers the bytes around
 * AddRequest.body and, where protobuf-c hands it the body, puts the entry header and a
 * reference to the payload instead: the payload is never copied, in v3 as in v2, and
 * protobuf-c still writes every field. wire_bk_response_read takes one response:
 * v2 moves a read body into its own evbuffer (evbuffer_remove_buffer); v3 pulls the bounded
 * frame up, unpacks the Response and takes the body protobuf-c unpacked (wire_bk_take_bytes)
 * without copying it again.
 * Happy path, bookie: wire_bk_request_read takes one request (v2: the fixed fields, and an
 * ADD's body copied once, into the memory the journal record keeps; v3: the unpacked
 * Request); wire_bk_write_v2_response / wire_bk_write_v3_response append the answers.
 * Frame limit: a frame (length field included, as Netty counts it) over max_frame is
 * identified from its first WIRE_BK_PEEK bytes - v2: the packet header and the ledger and
 * entry ids; v3: the BKPacketHeader, field 1, which every implementation writes first - and
 * the caller skips the rest as it arrives (wire_bk_skip). Nothing is buffered beyond the limit.
 *
 * Failure modes: an impossible length, an undecodable v3 message, a v3 response of another
 * version, a v2 request too short for its opcode, or an oversized frame that cannot be
 * identified return a negative code with a one-line errmsg; the caller closes the connection
 * (the stream is unusable, and what was drained of it is unspecified). An incomplete frame
 * drains nothing. Unpacked messages are allocated with mg_malloc, so that their bytes fields
 * can be taken over and freed with mg_free. Only our own invariants use MG_ASSERT.
 */
#include "wire/wire_bk.h"

#include "util/alloc.h"
#include "util/bytes.h"
#include "util/err.h"
#include "util/log.h"
#include "wire/wire.h"
#include "wire/wire_int.h"

#include <event2/buffer.h>
#include <stdio.h>
#include <string.h>

#define V3_HEADER_TAG 0x0A /* field 1 (header), length-delimited: the first byte of a v3 body */

/* protobuf-c allocates unpacked messages with ours: out of memory aborts like everywhere
 * else, and bytes fields can be taken over (wire_bk_take_bytes). */
static void *wire_bk_pb_alloc(void *data, size_t n)
{
    (void)data;
    return mg_malloc(n ? n : 1);
}

static void wire_bk_pb_free(void *data, void *p)
{
    (void)data;
    mg_free(p);
}

static ProtobufCAllocator pb_allocator = {.alloc = wire_bk_pb_alloc, .free = wire_bk_pb_free};

ProtobufCAllocator *wire_bk_allocator(void)
{
    return &pb_allocator;
}

/* ---- status codes --------------------------------------------------------------------------- */

/* Every status with its name and v3 StatusCode; the index is no code of its own. */
static const struct {
    int status;
    Bookkeeper__Proto__StatusCode v3;
    const char *name;
} statuses[] = {
#define WIRE_BK_STATUS_ROW(name, v2)                                                               \
    {WIRE_BK_##name, BOOKKEEPER__PROTO__STATUS_CODE__##name, #name},
    WIRE_BK_STATUSES(WIRE_BK_STATUS_ROW)
#undef WIRE_BK_STATUS_ROW
};
#define N_STATUSES (sizeof(statuses) / sizeof(statuses[0]))

/* The row of status (by v2 value) or of a v3 code, or -1. */
static int wire_bk_status_row(int value, bool v3)
{
    for (size_t i = 0; i < N_STATUSES; i++)
        if ((v3 ? (int)statuses[i].v3 : statuses[i].status) == value)
            return (int)i;
    return -1;
}

const char *wire_bk_status_str(int status)
{
    int i = wire_bk_status_row(status, false);
    return i >= 0 ? statuses[i].name : status < 0 ? mg_errname(status) : "unknown status";
}

Bookkeeper__Proto__StatusCode wire_bk_status_to_v3(int status)
{
    int i = wire_bk_status_row(status, false);
    return i >= 0 ? statuses[i].v3 : BOOKKEEPER__PROTO__STATUS_CODE__EIO;
}

int wire_bk_status_from_v3(int code)
{
    int i = wire_bk_status_row(code, true);
    return i >= 0 ? statuses[i].status : WIRE_BK_EIO;
}

int wire_bk_status_from_v2(int32_t rc)
{
    return wire_bk_status_row(rc, false) >= 0 ? rc : WIRE_BK_EIO;
}

/* ---- small pieces --------------------------------------------------------------------------- */

void wire_bk_entry_hdr_put(uint8_t *p, const struct wire_bk_entry_hdr *h)
{
    mg_put_be64(p, (uint64_t)h->ledger);
    mg_put_be64(p + 8, (uint64_t)h->entry);
    mg_put_be64(p + 16, (uint64_t)h->lac);
    mg_put_be64(p + 24, (uint64_t)h->length);
}

void wire_bk_entry_hdr_get(const uint8_t *p, struct wire_bk_entry_hdr *h)
{
    h->ledger = (int64_t)mg_get_be64(p);
    h->entry = (int64_t)mg_get_be64(p + 8);
    h->lac = (int64_t)mg_get_be64(p + 16);
    h->length = (int64_t)mg_get_be64(p + 24);
}

size_t wire_bk_varint_put(uint8_t *p, uint64_t v)
{
    size_t n = 0;
    while (v >= 0x80) {
        p[n++] = (uint8_t)(v | 0x80);
        v >>= 7;
    }
    p[n++] = (uint8_t)v;
    return n;
}

int wire_bk_varint_get(const uint8_t *p, size_t n, uint64_t *v)
{
    uint64_t x = 0;
    for (size_t i = 0; i < n && i < 10; i++) {
        x |= (uint64_t)(p[i] & 0x7f) << (7 * i);
        if (!(p[i] & 0x80)) {
            *v = x;
            return (int)i + 1;
        }
    }
    return -1;
}

static uint32_t wire_bk_v2_hdr(unsigned op, unsigned flags)
{
    return (uint32_t)WIRE_BK_V2_VERSION << 24 | (uint32_t)op << 16 | (flags & 0xffff);
}

/* The opcode and flags of a v2 packet header; version 0 packets are the bare opcode. */
static void wire_bk_v2_hdr_parse(uint32_t hdr, unsigned *op, unsigned *flags)
{
    bool v0 = hdr >> 24 == 0;
    *op = v0 ? hdr : (hdr >> 16) & 0xff;
    *flags = v0 ? 0 : hdr & 0xffff;
}

/* A response echoes the request's version and opcode, without flags. */
static uint32_t wire_bk_v2_response_hdr(uint32_t req_hdr)
{
    return req_hdr >> 24 == 0 ? req_hdr : req_hdr & 0xffff0000u;
}

/* The op a v3 response reports (0: not an add, a read or START_TLS). */
static int wire_bk_v3_op_v2(int operation)
{
    switch (operation) {
    case BOOKKEEPER__PROTO__OPERATION_TYPE__ADD_ENTRY:
        return WIRE_BK_OP_ADD;
    case BOOKKEEPER__PROTO__OPERATION_TYPE__READ_ENTRY:
        return WIRE_BK_OP_READ;
    case BOOKKEEPER__PROTO__OPERATION_TYPE__START_TLS:
        return WIRE_BK_OP_START_TLS;
    default:
        return 0;
    }
}

static void wire_bk_v3_header(Bookkeeper__Proto__BKPacketHeader *h, int op, uint64_t txn,
                              uint16_t flags)
{
    h->version = BOOKKEEPER__PROTO__PROTOCOL_VERSION__VERSION_THREE;
    h->operation = (Bookkeeper__Proto__OperationType)op;
    h->txnid = txn;
    if (flags & WIRE_BK_FLAG_HIGH_PRIORITY) {
        h->has_priority = true;
        h->priority = WIRE_BK_V3_HIGH_PRIORITY;
    }
}

/* The BKPacketHeader at the front of a v3 body from its first n bytes (field 1, written
 * first), or NULL. Free with bookkeeper__proto__bkpacket_header__free_unpacked(h,
 * &pb_allocator). */
static Bookkeeper__Proto__BKPacketHeader *wire_bk_v3_peek_header(const uint8_t *p, size_t n)
{
    uint64_t hl;
    int k = n > 1 && p[0] == V3_HEADER_TAG ? wire_bk_varint_get(p + 1, n - 1, &hl) : -1;
    if (k < 0 || hl > n - 1 - (size_t)k)
        return NULL;
    return bookkeeper__proto__bkpacket_header__unpack(&pb_allocator, (size_t)hl, p + 1 + k);
}

/* Pack msg behind its u32 length into one reserved extent of out. */
static int wire_bk_write_v3(struct evbuffer *out, const ProtobufCMessage *msg)
{
    size_t n = protobuf_c_message_get_packed_size(msg);
    struct evbuffer_iovec v;
    if (evbuffer_reserve_space(out, (ev_ssize_t)(4 + n), &v, 1) < 1 || v.iov_len < 4 + n)
        return -MG_ENOMEM;
    mg_put_be32(v.iov_base, (uint32_t)n);
    MG_ASSERT(protobuf_c_message_pack(msg, (uint8_t *)v.iov_base + 4) == n);
    v.iov_len = 4 + n;
    MG_ASSERT(evbuffer_commit_space(out, &v, 1) == 0);
    return 0;
}

uint8_t *wire_bk_take_bytes(ProtobufCBinaryData *field)
{
    uint8_t *p = field->data ? field->data : mg_malloc(1);
    field->data = NULL;
    field->len = 0;
    return p;
}

bool wire_bk_skip(struct evbuffer *in, uint64_t *skip)
{
    if (*skip == 0)
        return false;
    size_t n = evbuffer_get_length(in);
    if (n > *skip)
        n = (size_t)*skip;
    evbuffer_drain(in, n);
    *skip -= n;
    return *skip > 0;
}

/* ---- client: requests ----------------------------------------------------------------------- */

/*
 * A v3 ADD as protobuf-c packs it: Request{header=1, addRequest=101{ledgerId=1, entryId=2,
 * masterKey=3, body=4, flag=100}}, fields in number order. AddRequest.body is given the
 * right length and, as data, the address of the sink itself; protobuf-c appends every bytes
 * field with one append(len, data) call (protobuf-c.c, required_field_pack_to_buffer), so
 * the sink knows where the body goes without reading it. It gathers what comes before (the
 * header and the AddRequest's fields, at most ~100 bytes; the entry header and digest go
 * behind them) and after (the flag) the body; once protobuf-c returned the frame's size, the
 * length field, the gathered head, the payload by reference and the tail are appended.
 */
struct add_sink {
    ProtobufCBuffer base;
    const struct wire_bk_add *a;
    size_t n, tail_n;
    bool body_seen;
    uint8_t head[4 + 128 + WIRE_BK_ENTRY_HDR_LEN + WIRE_BK_MAX_DIGEST_LEN];
    uint8_t tail[16];
};

static void wire_bk_add_sink_append(ProtobufCBuffer *b, size_t len, const uint8_t *data)
{
    struct add_sink *s = (struct add_sink *)b;
    if (data == (const uint8_t *)s) {
        MG_ASSERT(!s->body_seen && s->n + s->a->ehdr_len <= sizeof(s->head));
        memcpy(s->head + s->n, s->a->ehdr, s->a->ehdr_len);
        s->n += s->a->ehdr_len;
        s->body_seen = true;
    } else if (!s->body_seen) {
        MG_ASSERT(s->n + len <= sizeof(s->head));
        memcpy(s->head + s->n, data, len);
        s->n += len;
    } else {
        MG_ASSERT(s->tail_n + len <= sizeof(s->tail));
        memcpy(s->tail + s->tail_n, data, len);
        s->tail_n += len;
    }
}

/* The v3 ADD Request of a (header and AddRequest on the caller's stack); the body's data is
 * set by the caller. */
static void wire_bk_v3_add_request(Bookkeeper__Proto__Request *r,
                                   Bookkeeper__Proto__BKPacketHeader *h,
                                   Bookkeeper__Proto__AddRequest *ar, const struct wire_bk_add *a,
                                   size_t plen)
{
    wire_bk_v3_header(h, BOOKKEEPER__PROTO__OPERATION_TYPE__ADD_ENTRY, a->txn, a->flags);
    r->header = h;
    ar->ledgerid = a->ledger;
    ar->entryid = a->entry;
    ar->masterkey.data = (uint8_t *)a->master_key;
    ar->masterkey.len = WIRE_BK_MASTER_KEY_LEN;
    ar->body.len = a->ehdr_len + plen;
    if (a->flags & WIRE_BK_FLAG_RECOVERY_ADD) {
        ar->has_flag = true;
        ar->flag = BOOKKEEPER__PROTO__ADD_REQUEST__FLAG__RECOVERY_ADD;
    }
    r->addrequest = ar;
}

size_t wire_bk_add_frame_size(bool v3, int64_t ledger, int64_t entry, uint16_t flags,
                              size_t ehdr_len, size_t plen)
{
    if (!v3)
        return 4 + 4 + WIRE_BK_MASTER_KEY_LEN + ehdr_len + plen;
    Bookkeeper__Proto__Request r = BOOKKEEPER__PROTO__REQUEST__INIT;
    Bookkeeper__Proto__BKPacketHeader h = BOOKKEEPER__PROTO__BKPACKET_HEADER__INIT;
    Bookkeeper__Proto__AddRequest ar = BOOKKEEPER__PROTO__ADD_REQUEST__INIT;
    struct wire_bk_add a = {
        .ledger = ledger, .entry = entry, .flags = flags, .txn = UINT64_MAX, .ehdr_len = ehdr_len};
    wire_bk_v3_add_request(&r, &h, &ar, &a, plen);
    return 4 + protobuf_c_message_get_packed_size(&r.base);
}

void wire_bk_write_add(struct evbuffer *out, bool v3, const struct wire_bk_add *a,
                       struct evbuffer *payload)
{
    MG_ASSERT(a->ehdr_len <= WIRE_BK_ENTRY_HDR_LEN + WIRE_BK_MAX_DIGEST_LEN);
    size_t plen = evbuffer_get_length(payload);
    if (!v3) {
        uint8_t pre[8 + WIRE_BK_MASTER_KEY_LEN + WIRE_BK_ENTRY_HDR_LEN + WIRE_BK_MAX_DIGEST_LEN];
        size_t n = 8 + WIRE_BK_MASTER_KEY_LEN + a->ehdr_len;
        mg_put_be32(pre, (uint32_t)(n - 4 + plen));
        mg_put_be32(pre + 4, wire_bk_v2_hdr(WIRE_BK_OP_ADD, a->flags));
        memcpy(pre + 8, a->master_key, WIRE_BK_MASTER_KEY_LEN);
        memcpy(pre + 8 + WIRE_BK_MASTER_KEY_LEN, a->ehdr, a->ehdr_len);
        MG_ASSERT(evbuffer_add(out, pre, n) == 0);
        wire_append_shared(out, payload);
        return;
    }
    Bookkeeper__Proto__Request r = BOOKKEEPER__PROTO__REQUEST__INIT;
    Bookkeeper__Proto__BKPacketHeader h = BOOKKEEPER__PROTO__BKPACKET_HEADER__INIT;
    Bookkeeper__Proto__AddRequest ar = BOOKKEEPER__PROTO__ADD_REQUEST__INIT;
    wire_bk_v3_add_request(&r, &h, &ar, a, plen);
    struct add_sink s = {.base.append = wire_bk_add_sink_append, .a = a, .n = 4};
    ar.body.data = (uint8_t *)&s;
    size_t n = protobuf_c_message_pack_to_buffer(&r.base, &s.base);
    MG_ASSERT(s.body_seen && n == s.n - 4 + plen + s.tail_n);
    mg_put_be32(s.head, (uint32_t)n);
    MG_ASSERT(evbuffer_add(out, s.head, s.n) == 0);
    wire_append_shared(out, payload);
    if (s.tail_n)
        MG_ASSERT(evbuffer_add(out, s.tail, s.tail_n) == 0);
}

void wire_bk_write_v3_request(struct evbuffer *out, int op, uint64_t txn, uint16_t flags,
                              Bookkeeper__Proto__Request *req)
{
    Bookkeeper__Proto__BKPacketHeader h = BOOKKEEPER__PROTO__BKPACKET_HEADER__INIT;
    Bookkeeper__Proto__BKPacketHeader *saved = req->header;
    wire_bk_v3_header(&h, op, txn, flags);
    req->header = &h;
    MG_ASSERT(wire_bk_write_v3(out, &req->base) == 0); /* only fails on allocation failure */
    req->header = saved;
}

void wire_bk_write_start_tls(struct evbuffer *out, uint64_t txn)
{
    Bookkeeper__Proto__Request r = BOOKKEEPER__PROTO__REQUEST__INIT;
    Bookkeeper__Proto__StartTLSRequest st = BOOKKEEPER__PROTO__START_TLSREQUEST__INIT;
    r.starttlsrequest = &st;
    wire_bk_write_v3_request(out, BOOKKEEPER__PROTO__OPERATION_TYPE__START_TLS, txn, 0, &r);
}

void wire_bk_write_read(struct evbuffer *out, bool v3, const struct wire_bk_read *rd)
{
    bool fence = (rd->flags & WIRE_BK_FLAG_FENCE) != 0;
    if (!v3) {
        uint8_t f[4 + 4 + 16 + WIRE_BK_MASTER_KEY_LEN];
        size_t n = 24 + (fence ? WIRE_BK_MASTER_KEY_LEN : 0);
        mg_put_be32(f, (uint32_t)(n - 4));
        mg_put_be32(f + 4, wire_bk_v2_hdr(WIRE_BK_OP_READ, rd->flags));
        mg_put_be64(f + 8, (uint64_t)rd->ledger);
        mg_put_be64(f + 16, (uint64_t)rd->entry);
        if (fence)
            memcpy(f + 24, rd->master_key, WIRE_BK_MASTER_KEY_LEN);
        MG_ASSERT(evbuffer_add(out, f, n) == 0);
        return;
    }
    Bookkeeper__Proto__Request r = BOOKKEEPER__PROTO__REQUEST__INIT;
    Bookkeeper__Proto__ReadRequest rr = BOOKKEEPER__PROTO__READ_REQUEST__INIT;
    rr.ledgerid = rd->ledger;
    rr.entryid = rd->entry;
    if (fence) {
        rr.has_flag = true;
        rr.flag = BOOKKEEPER__PROTO__READ_REQUEST__FLAG__FENCE_LEDGER;
        rr.has_masterkey = true;
        rr.masterkey.data = (uint8_t *)rd->master_key;
        rr.masterkey.len = WIRE_BK_MASTER_KEY_LEN;
    }
    r.readrequest = &rr;
    wire_bk_write_v3_request(out, BOOKKEEPER__PROTO__OPERATION_TYPE__READ_ENTRY, rd->txn, rd->flags,
                             &r);
}

/* ---- client: responses ---------------------------------------------------------------------- */

void wire_bk_response_clear(struct wire_bk_response *r)
{
    if (r->body)
        evbuffer_free(r->body);
    r->body = NULL;
}

static void wire_bk_free_cb(const void *data, size_t len, void *arg)
{
    (void)data;
    (void)len;
    mg_free(arg);
}

static int wire_bk_v2_response_read(struct evbuffer *in, size_t max_frame,
                                    struct wire_bk_response *r, char *errmsg, size_t errlen)
{
    uint8_t h[4 + WIRE_BK_V2_RESPONSE_LEN];
    if (evbuffer_copyout(in, h, 4) < 4)
        return 0;
    uint32_t flen = mg_get_be32(h);
    if (flen < WIRE_BK_V2_RESPONSE_LEN) {
        wire_set_err(errmsg, errlen, "bad v2 response frame length %u", flen);
        return -MG_EPROTO;
    }
    r->frame_size = 4 + (size_t)flen;
    r->oversized = r->frame_size > max_frame;
    if (evbuffer_get_length(in) < (r->oversized ? sizeof(h) : r->frame_size))
        return 0;
    MG_ASSERT(evbuffer_remove(in, h, sizeof(h)) == (int)sizeof(h));
    unsigned op, flags;
    wire_bk_v2_hdr_parse(mg_get_be32(h + 4), &op, &flags);
    r->op = (int)op;
    r->status = wire_bk_status_from_v2((int32_t)mg_get_be32(h + 8));
    r->ledger = (int64_t)mg_get_be64(h + 12);
    r->entry = (int64_t)mg_get_be64(h + 20);
    size_t rest = flen - WIRE_BK_V2_RESPONSE_LEN;
    if (r->oversized) {
        r->skip = rest;
    } else if (rest > 0) {
        r->body = evbuffer_new();
        MG_ASSERT(r->body && evbuffer_remove_buffer(in, r->body, rest) == (int)rest);
    }
    return 1;
}

static int wire_bk_v3_response_read(struct evbuffer *in, size_t max_frame,
                                    struct wire_bk_response *r, char *errmsg, size_t errlen)
{
    uint8_t lb[4];
    if (evbuffer_copyout(in, lb, 4) < 4)
        return 0;
    uint32_t flen = mg_get_be32(lb);
    if (flen < 2) {
        wire_set_err(errmsg, errlen, "bad v3 response frame length %u", flen);
        return -MG_EPROTO;
    }
    r->frame_size = 4 + (size_t)flen;
    size_t avail = evbuffer_get_length(in);
    if (r->frame_size > max_frame) {
        /* Only the header is needed to know whose response it is. */
        size_t peek = flen < WIRE_BK_PEEK ? flen : WIRE_BK_PEEK;
        if (avail < 4 + peek)
            return 0;
        const uint8_t *p = evbuffer_pullup(in, (ev_ssize_t)(4 + peek));
        Bookkeeper__Proto__BKPacketHeader *h = p ? wire_bk_v3_peek_header(p + 4, peek) : NULL;
        bool ok = h && h->version == BOOKKEEPER__PROTO__PROTOCOL_VERSION__VERSION_THREE;
        if (ok) {
            r->oversized = true;
            r->op = wire_bk_v3_op_v2(h->operation);
            r->txn = h->txnid;
            r->skip = flen;
            evbuffer_drain(in, 4);
        }
        if (h)
            bookkeeper__proto__bkpacket_header__free_unpacked(h, &pb_allocator);
        if (!ok) {
            wire_set_err(errmsg, errlen, "undecodable oversized v3 response (%u bytes)", flen);
            return -MG_EPROTO;
        }
        return 1;
    }
    if (avail < r->frame_size)
        return 0;
    evbuffer_drain(in, 4);
    const uint8_t *data = evbuffer_pullup(in, (ev_ssize_t)flen);
    Bookkeeper__Proto__Response *resp =
        data ? bookkeeper__proto__response__unpack(&pb_allocator, flen, data) : NULL;
    evbuffer_drain(in, flen);
    if (!resp) {
        wire_set_err(errmsg, errlen, "undecodable v3 response (%u bytes)", flen);
        return -MG_EPROTO;
    }
    const Bookkeeper__Proto__BKPacketHeader *h = resp->header;
    if (h->version != BOOKKEEPER__PROTO__PROTOCOL_VERSION__VERSION_THREE) {
        wire_set_err(errmsg, errlen, "v3 response with protocol version %d", (int)h->version);
        bookkeeper__proto__response__free_unpacked(resp, &pb_allocator);
        return -MG_EPROTO;
    }
    r->op = wire_bk_v3_op_v2(h->operation);
    r->txn = h->txnid;
    /* The inner status is the operation's; the outer one repeats it, or reports a failure
     * before the operation ran (EBADREQ, EBADVERSION) without an inner message. */
    int st = (int)resp->status;
    Bookkeeper__Proto__AddResponse *ar = r->op == WIRE_BK_OP_ADD ? resp->addresponse : NULL;
    Bookkeeper__Proto__ReadResponse *rr = r->op == WIRE_BK_OP_READ ? resp->readresponse : NULL;
    if (ar) {
        r->ledger = ar->ledgerid;
        r->entry = ar->entryid;
        if (st == BOOKKEEPER__PROTO__STATUS_CODE__EOK)
            st = (int)ar->status;
    } else if (rr) {
        r->ledger = rr->ledgerid;
        r->entry = rr->entryid;
        if (st == BOOKKEEPER__PROTO__STATUS_CODE__EOK)
            st = (int)rr->status;
    }
    r->status = wire_bk_status_from_v3(st);
    if (rr && r->status == WIRE_BK_EOK && rr->has_body) {
        /* The body protobuf-c unpacked becomes the evbuffer's, freed with its last
         * reference (the reader may keep it long after this call). */
        size_t len = rr->body.len;
        r->body = evbuffer_new();
        MG_ASSERT(r->body);
        if (len > 0) {
            uint8_t *body = wire_bk_take_bytes(&rr->body);
            MG_ASSERT(evbuffer_add_reference(r->body, body, len, wire_bk_free_cb, body) == 0);
        }
    }
    bookkeeper__proto__response__free_unpacked(resp, &pb_allocator);
    return 1;
}

int wire_bk_response_read(struct evbuffer *in, bool v3, size_t max_frame,
                          struct wire_bk_response *r, char *errmsg, size_t errlen)
{
    memset(r, 0, sizeof(*r));
    /* Both make the body last, once nothing can fail: r owns nothing unless they return 1. */
    return v3 ? wire_bk_v3_response_read(in, max_frame, r, errmsg, errlen)
              : wire_bk_v2_response_read(in, max_frame, r, errmsg, errlen);
}

/* ---- bookie: requests ----------------------------------------------------------------------- */

void wire_bk_request_clear(struct wire_bk_request *rq)
{
    mg_free(rq->body);
    rq->body = NULL;
    if (rq->v3)
        bookkeeper__proto__request__free_unpacked(rq->v3, &pb_allocator);
    rq->v3 = NULL;
}

/* What identifies an oversized request, from the first n bytes of its body (p). */
static int wire_bk_oversized_request(const uint8_t *p, size_t n, uint32_t flen, size_t max_frame,
                                     struct wire_bk_request *rq, char *errmsg, size_t errlen)
{
    if (rq->proto == WIRE_BK_PROTO_V2) {
        rq->v2_hdr = mg_get_be32(p);
        wire_bk_v2_hdr_parse(rq->v2_hdr, &rq->op, &rq->flags);
        size_t at; /* offset of the ledger and entry ids: an ADD's are in its entry header */
        if (rq->op == WIRE_BK_OP_ADD && n >= 4 + WIRE_BK_MASTER_KEY_LEN + 16)
            at = 4 + WIRE_BK_MASTER_KEY_LEN;
        else if (rq->op == WIRE_BK_OP_READ && n >= 4 + 16)
            at = 4;
        else {
            wire_set_err(errmsg, errlen,
                         "frame of %u bytes (v2 opcode %u) exceeds the limit of %zu", flen, rq->op,
                         max_frame);
            return -MG_ETOOBIG;
        }
        rq->ledger = (int64_t)mg_get_be64(p + at);
        rq->entry = (int64_t)mg_get_be64(p + at + 8);
        return 0;
    }
    Bookkeeper__Proto__BKPacketHeader *h = wire_bk_v3_peek_header(p, n);
    if (!h) {
        wire_set_err(errmsg, errlen,
                     "frame of %u bytes (v3, no readable header) exceeds the limit of %zu", flen,
                     max_frame);
        return -MG_ETOOBIG;
    }
    rq->op = (unsigned)h->operation;
    rq->txn = h->txnid;
    bookkeeper__proto__bkpacket_header__free_unpacked(h, &pb_allocator);
    return 0;
}

static int wire_bk_v2_request_read(struct evbuffer *in, uint32_t flen, struct wire_bk_request *rq,
                                   char *errmsg, size_t errlen)
{
    uint8_t hb[4];
    MG_ASSERT(evbuffer_remove(in, hb, 4) == 4);
    size_t rest = flen - 4;
    rq->v2_hdr = mg_get_be32(hb);
    wire_bk_v2_hdr_parse(rq->v2_hdr, &rq->op, &rq->flags);
    if (rq->op == WIRE_BK_OP_ADD) {
        /* master key, then the entry body: its header names the ledger and entry */
        if (rest < WIRE_BK_MASTER_KEY_LEN + 16) {
            evbuffer_drain(in, rest);
            wire_set_err(errmsg, errlen, "v2 ADD of %zu bytes is too short", rest);
            return -MG_EPROTO;
        }
        MG_ASSERT(evbuffer_remove(in, rq->master_key, WIRE_BK_MASTER_KEY_LEN) ==
                  WIRE_BK_MASTER_KEY_LEN);
        rq->has_key = true;
        rq->body_len = rest - WIRE_BK_MASTER_KEY_LEN;
        rq->body = mg_malloc(rq->body_len);
        MG_ASSERT(evbuffer_remove(in, rq->body, rq->body_len) == (int)rq->body_len);
        rq->ledger = (int64_t)mg_get_be64(rq->body);
        rq->entry = (int64_t)mg_get_be64(rq->body + 8);
        return 1;
    }
    if (rq->op == WIRE_BK_OP_READ) {
        /* ledger, entry, then the master key of a fencing read */
        if (rest < 16) {
            evbuffer_drain(in, rest);
            wire_set_err(errmsg, errlen, "v2 READ of %zu bytes is too short", rest);
            return -MG_EPROTO;
        }
        uint8_t b[16 + WIRE_BK_MASTER_KEY_LEN];
        size_t take = rest >= sizeof(b) ? sizeof(b) : 16;
        MG_ASSERT(evbuffer_remove(in, b, take) == (int)take);
        evbuffer_drain(in, rest - take);
        rq->ledger = (int64_t)mg_get_be64(b);
        rq->entry = (int64_t)mg_get_be64(b + 8);
        rq->has_key = take == sizeof(b);
        if (rq->has_key)
            memcpy(rq->master_key, b + 16, WIRE_BK_MASTER_KEY_LEN);
        return 1;
    }
    evbuffer_drain(in, rest); /* AUTH carries nothing we read; others are the caller's */
    return 1;
}

static int wire_bk_v3_request_read(struct evbuffer *in, uint32_t flen, struct wire_bk_request *rq,
                                   char *errmsg, size_t errlen)
{
    const uint8_t *data = evbuffer_pullup(in, (ev_ssize_t)flen);
    rq->v3 = data ? bookkeeper__proto__request__unpack(&pb_allocator, flen, data) : NULL;
    evbuffer_drain(in, flen);
    if (!rq->v3) {
        wire_set_err(errmsg, errlen, "undecodable v3 request (%u bytes)", flen);
        return -MG_EPROTO;
    }
    rq->op = (unsigned)rq->v3->header->operation;
    rq->txn = rq->v3->header->txnid;
    return 1;
}

int wire_bk_request_read(struct evbuffer *in, int *proto, size_t max_frame,
                         struct wire_bk_request *rq, char *errmsg, size_t errlen)
{
    memset(rq, 0, sizeof(*rq));
    size_t avail = evbuffer_get_length(in);
    if (avail < 4)
        return 0;
    uint8_t lb[4 + WIRE_BK_PEEK];
    MG_ASSERT(evbuffer_copyout(in, lb, avail >= 5 ? 5 : 4) >= 4);
    uint32_t flen = mg_get_be32(lb);
    if (flen > INT32_MAX) { /* a negative Java int: no client sends such a length */
        wire_set_err(errmsg, errlen, "frame length 0x%08x is not a valid length", flen);
        return -MG_EPROTO;
    }
    if (flen < 4) {
        wire_set_err(errmsg, errlen, "frame of %u bytes is too short", flen);
        return -MG_EPROTO;
    }
    rq->frame_size = 4 + (size_t)flen;
    rq->oversized = rq->frame_size > max_frame;
    size_t peek = flen < WIRE_BK_PEEK ? flen : WIRE_BK_PEEK;
    if (avail < (rq->oversized ? 4 + peek : rq->frame_size))
        return 0;
    if (*proto == WIRE_BK_PROTO_UNKNOWN) {
        if (lb[4] == V3_HEADER_TAG) {
            *proto = WIRE_BK_PROTO_V3;
        } else if (lb[4] <= 2) {
            *proto = WIRE_BK_PROTO_V2;
        } else {
            wire_set_err(errmsg, errlen, "first frame is neither v2 nor v3 (byte 0x%02x)", lb[4]);
            return -MG_EPROTO;
        }
    }
    rq->proto = *proto;
    int rc;
    if (rq->oversized) {
        MG_ASSERT(evbuffer_copyout(in, lb, 4 + peek) == (ev_ssize_t)(4 + peek));
        rc = wire_bk_oversized_request(lb + 4, peek, flen, max_frame, rq, errmsg, errlen);
        if (rc == 0) {
            evbuffer_drain(in, 4);
            rq->skip = flen;
            rc = 1;
        }
    } else {
        evbuffer_drain(in, 4);
        rc = rq->proto == WIRE_BK_PROTO_V3 ? wire_bk_v3_request_read(in, flen, rq, errmsg, errlen)
                                           : wire_bk_v2_request_read(in, flen, rq, errmsg, errlen);
    }
    if (rc != 1)
        wire_bk_request_clear(rq);
    return rc;
}

/* ---- bookie: responses ---------------------------------------------------------------------- */

void wire_bk_write_v2_response(struct evbuffer *out, uint32_t req_hdr, int status, int64_t ledger,
                               int64_t entry, const uint8_t *body, size_t len)
{
    uint8_t b[4 + WIRE_BK_V2_RESPONSE_LEN];
    mg_put_be32(b, (uint32_t)(WIRE_BK_V2_RESPONSE_LEN + len));
    mg_put_be32(b + 4, wire_bk_v2_response_hdr(req_hdr));
    mg_put_be32(b + 8, (uint32_t)status);
    mg_put_be64(b + 12, (uint64_t)ledger);
    mg_put_be64(b + 20, (uint64_t)entry);
    MG_ASSERT(evbuffer_add(out, b, sizeof(b)) == 0);
    if (len)
        MG_ASSERT(evbuffer_add(out, body, len) == 0);
}

void wire_bk_write_v2_auth(struct evbuffer *out, uint32_t req_hdr, const char *plugin)
{
    Bookkeeper__Proto__AuthMessage am = BOOKKEEPER__PROTO__AUTH_MESSAGE__INIT;
    am.authpluginname = (char *)plugin;
    size_t n = bookkeeper__proto__auth_message__get_packed_size(&am);
    struct evbuffer_iovec v;
    MG_ASSERT(evbuffer_reserve_space(out, (ev_ssize_t)(8 + n), &v, 1) == 1 && v.iov_len >= 8 + n);
    mg_put_be32(v.iov_base, (uint32_t)(4 + n));
    mg_put_be32((uint8_t *)v.iov_base + 4, wire_bk_v2_response_hdr(req_hdr));
    MG_ASSERT(bookkeeper__proto__auth_message__pack(&am, (uint8_t *)v.iov_base + 8) == n);
    v.iov_len = 8 + n;
    MG_ASSERT(evbuffer_commit_space(out, &v, 1) == 0);
}

int wire_bk_write_v3_response(struct evbuffer *out, int op, uint64_t txn, int status,
                              Bookkeeper__Proto__Response *resp)
{
    Bookkeeper__Proto__BKPacketHeader h = BOOKKEEPER__PROTO__BKPACKET_HEADER__INIT;
    Bookkeeper__Proto__BKPacketHeader *saved = resp->header;
    wire_bk_v3_header(&h, op, txn, 0);
    resp->header = &h;
    resp->status = wire_bk_status_to_v3(status);
    int rc = wire_bk_write_v3(out, &resp->base);
    resp->header = saved;
    return rc;
}

int wire_bk_write_start_tls_response(struct evbuffer *out, uint64_t txn, int status)
{
    Bookkeeper__Proto__Response r = BOOKKEEPER__PROTO__RESPONSE__INIT;
    Bookkeeper__Proto__StartTLSResponse st = BOOKKEEPER__PROTO__START_TLSRESPONSE__INIT;
    if (status == WIRE_BK_EOK)
        r.starttlsresponse = &st;
    return wire_bk_write_v3_response(out, BOOKKEEPER__PROTO__OPERATION_TYPE__START_TLS, txn, status,
                                     &r);
}
