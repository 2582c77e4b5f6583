/*
 * wire_bk.h - BookKeeper wire codec (docs/wire-bookkeeper.md §1-§4), shared by the ledger
 * client (broker/bkc) and the bookie (broker/bookie). No event loop, no I/O.
 *
 * The one place that knows the framing: v2 packet headers and their fixed fields, v3
 * `[u32 length][protobuf Request/Response]` frames (packed and unpacked with protobuf-c's
 * generated code, proto/BookkeeperProtocol.proto), the status codes of both versions, the
 * entry header, frame sizes and the frame limit (nettyMaxFrameSizeBytes, counted with the
 * 4-byte length field, as Netty's LengthFieldBasedFrameDecoder counts it).
 *
 * Decoding takes whole frames from an input evbuffer (frames may arrive in any number of
 * pieces): 0 = more bytes needed (nothing drained), 1 = a frame, < 0 = the stream is unusable
 * (errmsg says why; the caller closes the connection). A frame over the limit is never
 * buffered: it is identified from its first WIRE_BK_PEEK bytes, returned with `oversized`
 * set, and its remaining bytes are dropped as they arrive (wire_bk_skip).
 * Encoding appends whole frames to an output evbuffer; an ADD's payload is shared by
 * reference (wire_append_shared), in v3 as in v2.
 *
 * The Pulsar codec is wire.h; this header is the only other one that exposes protobuf-c
 * generated types (docs/style.md §1).
 */
#ifndef MG_WIRE_BK_H
#define MG_WIRE_BK_H

#include "BookkeeperProtocol.pb-c.h"

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct evbuffer;

/* ---- constants (docs/wire-bookkeeper.md §2, §4) ------------------------------------------ */

#define WIRE_BK_V2_VERSION 2 /* the v2 packet version we send */
/* v2 opcodes. Responses report v3 ADD_ENTRY / READ_ENTRY with these too. */
#define WIRE_BK_OP_ADD 1
#define WIRE_BK_OP_READ 2
#define WIRE_BK_OP_AUTH 3
/* v3 START_TLS (OperationType 9): v3 framing only, whatever framing the connection uses
 * afterwards; no v2 opcode has this value, so responses report it as their op. */
#define WIRE_BK_OP_START_TLS 9
/* Request flags: v2 header flags as they are; in v3 FENCE is ReadRequest's FENCE_LEDGER (with
 * the master key), RECOVERY_ADD is AddRequest's flag and HIGH_PRIORITY is a header priority of
 * WIRE_BK_V3_HIGH_PRIORITY. */
#define WIRE_BK_FLAG_FENCE 0x0001 /* v2 DO_FENCING */
#define WIRE_BK_FLAG_RECOVERY_ADD 0x0002
#define WIRE_BK_FLAG_HIGH_PRIORITY 0x0004
#define WIRE_BK_V3_HIGH_PRIORITY 100 /* the priority the Java client gives recovery traffic */
#define WIRE_BK_MASTER_KEY_LEN 20    /* SHA-1("ledger" || password) */
#define WIRE_BK_ENTRY_HDR_LEN 32     /* ledger id, entry id, LAC, length */
#define WIRE_BK_MAX_DIGEST_LEN 20    /* HMAC-SHA1; CRC32C 4, CRC32 8, DUMMY 0 */
#define WIRE_BK_V2_RESPONSE_LEN 24   /* a v2 response's length field without a body */
#define WIRE_BK_PEEK 64              /* bytes of an oversized frame read to identify its request */

/* ---- status codes -------------------------------------------------------------------------- */

/* Every status both versions know, as (name, v2 rc). The v3 StatusCode is the generated
 * BOOKKEEPER__PROTO__STATUS_CODE__<name>, so the proto stays the one source of those numbers. */
#define WIRE_BK_STATUSES(X)                                                                        \
    X(EOK, 0)                                                                                      \
    X(ENOLEDGER, 1)                                                                                \
    X(ENOENTRY, 2)                                                                                 \
    X(EBADREQ, 100)                                                                                \
    X(EIO, 101)                                                                                    \
    X(EUA, 102)                                                                                    \
    X(EBADVERSION, 103)                                                                            \
    X(EFENCED, 104)                                                                                \
    X(EREADONLY, 105)                                                                              \
    X(ETOOMANYREQUESTS, 106)                                                                       \
    X(EUNKNOWNLEDGERSTATE, 107)

/* One set of codes for both sides and both versions; the values are the v2 rc codes. Bookie
 * answers reach the client's callbacks as these (>= 0); local failures are -MG_E* (< 0). */
enum wire_bk_status {
#define WIRE_BK_STATUS_ENUM(name, v2) WIRE_BK_##name = v2,
    WIRE_BK_STATUSES(WIRE_BK_STATUS_ENUM)
#undef WIRE_BK_STATUS_ENUM
};

/* "EOK", "EFENCED", ...; for a negative value the -MG_E* name; "unknown status" otherwise.
 * Never NULL, static storage. */
const char *wire_bk_status_str(int status);
/* The v3 StatusCode of status (EIO for a value that is not a status). */
Bookkeeper__Proto__StatusCode wire_bk_status_to_v3(int status);
/* The status of a v3 StatusCode, or of a v2 rc; a code we do not know counts as EIO. */
int wire_bk_status_from_v3(int code);
int wire_bk_status_from_v2(int32_t rc);

/* ---- entry header (docs/wire-bookkeeper.md §4) --------------------------------------------- */

/* The first WIRE_BK_ENTRY_HDR_LEN bytes of every entry body, followed by the digest. */
struct wire_bk_entry_hdr {
    int64_t ledger, entry;
    int64_t lac;    /* the writer's last add confirmed when it sent the entry */
    int64_t length; /* ledger length in payload bytes, this entry included */
};
void wire_bk_entry_hdr_put(uint8_t *p, const struct wire_bk_entry_hdr *h);
void wire_bk_entry_hdr_get(const uint8_t *p, struct wire_bk_entry_hdr *h);

/* ---- varints ------------------------------------------------------------------------------- */

/* A protobuf base-128 varint, for what protobuf-c does not do: the length in front of a
 * delimited message (ledger metadata, writeDelimitedTo) and of a frame's leading header field.
 * put writes at most 10 bytes and returns how many; get returns the bytes used, or -1 when
 * the n bytes at p do not hold a whole varint of at most 10 bytes. */
size_t wire_bk_varint_put(uint8_t *p, uint64_t v);
int wire_bk_varint_get(const uint8_t *p, size_t n, uint64_t *v);

/* The allocator the codec unpacks with (mg_malloc / mg_free: out of memory aborts, and
 * bytes fields can be taken over). For other BookKeeper messages (ledger metadata) unpacked,
 * or built and freed with protobuf_c_message_free_unpacked, the same way. */
ProtobufCAllocator *wire_bk_allocator(void);

/* ---- client side: requests ----------------------------------------------------------------- */

struct wire_bk_add {
    int64_t ledger, entry;
    uint16_t flags;            /* WIRE_BK_FLAG_RECOVERY_ADD, WIRE_BK_FLAG_HIGH_PRIORITY */
    uint64_t txn;              /* v3: the txnId */
    const uint8_t *master_key; /* borrowed: WIRE_BK_MASTER_KEY_LEN bytes */
    const uint8_t *ehdr;       /* borrowed: entry header and digest, copied into the frame */
    size_t ehdr_len;           /* <= WIRE_BK_ENTRY_HDR_LEN + WIRE_BK_MAX_DIGEST_LEN */
};
/* Append an ADD frame: everything up to the entry body, the entry header and digest, then
 * payload's bytes by reference (payload is not drained; it must not be written to while out
 * holds them, see wire_append_shared). v3: Request{header, addRequest}. */
void wire_bk_write_add(struct evbuffer *out, bool v3, const struct wire_bk_add *a,
                       struct evbuffer *payload);
/* Bytes on the wire of such an ADD (the length field included, as Netty counts a frame) with
 * ehdr_len bytes of entry header and digest and plen bytes of payload; for v3 with the largest
 * txnId, so that it bounds the frame sent to any bookie. */
size_t wire_bk_add_frame_size(bool v3, int64_t ledger, int64_t entry, uint16_t flags,
                              size_t ehdr_len, size_t plen);

struct wire_bk_read {
    int64_t ledger, entry;     /* entry -1: the last entry */
    uint16_t flags;            /* WIRE_BK_FLAG_FENCE, WIRE_BK_FLAG_HIGH_PRIORITY */
    uint64_t txn;              /* v3 */
    const uint8_t *master_key; /* borrowed; sent with WIRE_BK_FLAG_FENCE only */
};
/* Append a READ frame (v2: header, ledger, entry, key when fencing; v3: Request{header,
 * readRequest}), in one reserved extent. */
void wire_bk_write_read(struct evbuffer *out, bool v3, const struct wire_bk_read *r);

/* Append `[u32 length][Request]` with req->header set to {VERSION_THREE, op, txn, priority
 * WIRE_BK_V3_HIGH_PRIORITY when flags has WIRE_BK_FLAG_HIGH_PRIORITY} (req->header is
 * restored before returning). For the requests that have no function of their own. */
void wire_bk_write_v3_request(struct evbuffer *out, int op, uint64_t txn, uint16_t flags,
                              Bookkeeper__Proto__Request *req);

/* Append a v3 START_TLS request, Request{header{VERSION_THREE, START_TLS, txn},
 * startTLSRequest{}}: the first frame of a TLS connection, also of one that goes on in v2
 * (BookKeeper's PerChannelBookieClient does the same); after its EOK response the TLS
 * handshake runs on the same socket. */
void wire_bk_write_start_tls(struct evbuffer *out, uint64_t txn);

/* ---- client side: responses ---------------------------------------------------------------- */

struct wire_bk_response {
    int op;         /* WIRE_BK_OP_ADD, WIRE_BK_OP_READ or (v3) WIRE_BK_OP_START_TLS; v2:
                       another opcode as sent; v3: 0 for any other operation */
    int status;     /* enum wire_bk_status: v3 the inner response's status, or the outer one
                       when that reports a failure (EBADREQ, EBADVERSION) */
    int64_t ledger; /* v2 always; v3 from the add/read response (0 when it has none) */
    int64_t entry;
    uint64_t txn;          /* v3 */
    struct evbuffer *body; /* owned: a READ answered EOK with an entry, else NULL */
    bool oversized;        /* over the frame limit: op, ledger, entry (v2) or op, txn (v3)
                              are set, status and body are not */
    uint64_t skip;         /* oversized: bytes of the frame left in the stream to drop */
    size_t frame_size;     /* bytes of the frame on the wire, the length field included */
};
/* Take one response frame from the front of in (v3 or v2 framing). max_frame is the frame
 * limit (with the length field). Returns 1 (r filled; the frame, or for an oversized one the
 * part read, drained), 0 (more bytes needed; nothing drained) or -MG_EPROTO (a length below
 * the smallest response, an undecodable v3 Response or one of another protocol version, an
 * oversized v3 frame without a readable header) with errmsg set. r is always initialised and
 * owns something (the body) only after 1; wire_bk_response_clear frees it. */
int wire_bk_response_read(struct evbuffer *in, bool v3, size_t max_frame,
                          struct wire_bk_response *r, char *errmsg, size_t errlen);
void wire_bk_response_clear(struct wire_bk_response *r);

/* ---- bookie side: requests ----------------------------------------------------------------- */

enum wire_bk_proto { WIRE_BK_PROTO_UNKNOWN = 0, WIRE_BK_PROTO_V2 = 2, WIRE_BK_PROTO_V3 = 3 };

struct wire_bk_request {
    int proto;       /* WIRE_BK_PROTO_V2 or _V3 */
    unsigned op;     /* v2 opcode (version 0: the whole header), or v3 operation */
    uint64_t txn;    /* v3 */
    uint32_t v2_hdr; /* v2: the packet header, for wire_bk_write_v2_response */
    unsigned flags;  /* v2 header flags (WIRE_BK_FLAG_*) */
    int64_t ledger;  /* v2 ADD (from the entry header) and READ */
    int64_t entry;   /* v2 ADD and READ */
    bool has_key;    /* v2: an ADD, or a READ long enough to carry a master key */
    uint8_t master_key[WIRE_BK_MASTER_KEY_LEN];
    uint8_t *body; /* owned (mg_free): v2 ADD's entry body, copied once out of the stream */
    size_t body_len;
    Bookkeeper__Proto__Request *v3; /* owned: the unpacked v3 request (NULL when oversized) */
    bool oversized;    /* over the frame limit: only what identifies it is set (v2 header,
                          ledger, entry; v3 op, txn) */
    uint64_t skip;     /* oversized: bytes of the frame left in the stream to drop */
    size_t frame_size; /* bytes of the frame on the wire, the length field included */
};
/* Take one request frame from the front of in. *proto is the connection's framing; while it
 * is WIRE_BK_PROTO_UNKNOWN the first frame fixes it (v3: the body starts with 0x0A, the tag
 * of Request.header; v2: with a packet version 0..2). Returns 1 (rq filled, frame drained),
 * 0 (more bytes needed; nothing drained), -MG_EPROTO (a length above 2^31-1 or below 4, a
 * first frame of neither framing, a v2 ADD or READ too short for its fields, an undecodable
 * v3 Request) or -MG_ETOOBIG (an oversized frame whose request cannot be identified), with
 * errmsg set. Other v2 opcodes are returned (drained) for the caller to refuse. rq is always
 * initialised and owns something (body, v3) only after 1; wire_bk_request_clear frees it. */
int wire_bk_request_read(struct evbuffer *in, int *proto, size_t max_frame,
                         struct wire_bk_request *rq, char *errmsg, size_t errlen);
void wire_bk_request_clear(struct wire_bk_request *rq);
/* Take over the bytes of a bytes field of a message this codec unpacked: returns them
 * (owned by the caller, mg_free; never NULL, also for an empty field) and leaves the field
 * empty, so that the bytes are not copied again. */
uint8_t *wire_bk_take_bytes(ProtobufCBinaryData *field);

/* ---- bookie side: responses ---------------------------------------------------------------- */

/* Append a v2 response echoing the request's version and opcode (flags cleared): status,
 * ledger, entry, then len bytes of body (copied; a READ answered EOK). */
void wire_bk_write_v2_response(struct evbuffer *out, uint32_t req_hdr, int status, int64_t ledger,
                               int64_t entry, const uint8_t *body, size_t len);
/* Append a v2 AUTH response carrying AuthMessage{plugin, empty payload}. */
void wire_bk_write_v2_auth(struct evbuffer *out, uint32_t req_hdr, const char *plugin);
/* Append `[u32 length][Response]` with resp->header set to {VERSION_THREE, op, txn} and
 * resp->status to status's StatusCode (the inner response's status is the caller's to set,
 * with wire_bk_status_to_v3). resp->header is restored before returning. Returns 0, or
 * -MG_ENOMEM when out cannot grow. */
int wire_bk_write_v3_response(struct evbuffer *out, int op, uint64_t txn, int status,
                              Bookkeeper__Proto__Response *resp);

/* Append the v3 answer to START_TLS: Response{header, status, startTLSResponse{}} (the empty
 * StartTLSResponse with EOK only). Returns 0, or -MG_ENOMEM. */
int wire_bk_write_start_tls_response(struct evbuffer *out, uint64_t txn, int status);

/* ---- both sides ---------------------------------------------------------------------------- */

/* Drop what has arrived of an oversized frame's remaining *skip bytes. Returns true while
 * bytes of it are still to come. */
bool wire_bk_skip(struct evbuffer *in, uint64_t *skip);

#endif
