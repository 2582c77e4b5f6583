/*
 * tl_pulsar.h - the test library's Pulsar frame helpers (prefix tl_): stored entries built
 * by hand, and a peer that speaks frames over a socket on the test's loop.
 *
 * A peer is either side of a connection: the broker side facing the client library (over
 * one end of a socketpair the client was handed), or a client of an in-process broker
 * (tl_peer_connect to its port, or one end of a bufferevent pair whose other end a
 * connection took). It reads whatever arrives while the test runs the loop; waiting for a
 * frame runs the loop until one is complete, the other side closed, or the wait bound
 * passed: TL_REAL_WAIT_MS of real time on the base, or, for a peer opened on a loop context
 * (tl_peer_open_loop), tl_wait_ms of that loop with tl_until (simulated time on a simulated
 * loop: nothing sleeps). The tl_send_* functions
 * build one command each (tl_send_<command>) with the fields a test usually sets; anything
 * else is sent with tl_peer_send and a command of the test's own.
 */
#ifndef MG_TL_PULSAR_H
#define MG_TL_PULSAR_H

#include "lib/tl.h"
#include "wire/wire.h"

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct bufferevent;
struct event_base;
struct evbuffer;

/* ---- commands ------------------------------------------------------------------------------ */

/* Make cmd (a wire_cmd) a command of TYPE (PULSAR__PROTO__BASE_COMMAND__TYPE__<TYPE>) whose
 * sub-message field points to sub (both already filled in or zeroed by the test). */
#define tl_cmd_set(cmd, TYPE, field, sub)                                                          \
    do {                                                                                           \
        pulsar__proto__base_command__init(&(cmd));                                                 \
        (cmd).type = PULSAR__PROTO__BASE_COMMAND__TYPE__##TYPE;                                    \
        (cmd).field = &(sub);                                                                      \
    } while (0)
/* The id of entry ledger:entry. */
Pulsar__Proto__MessageIdData tl_msg_id(uint64_t ledger, uint64_t entry);

/* ---- stored entries ---------------------------------------------------------------------- */

/* Metadata of a message (the rest of *md zeroed): its producer, sequence id, publish time. */
void tl_pulsar_md(Pulsar__Proto__MessageMetadata *md, const char *producer, uint64_t seq,
                  uint64_t publish_time);

/* A message as a broker stores it (a SEND's payload: 0x0e01, CRC32C, metadata size,
 * metadata, payload), built without the wire codec. Owned by the caller. */
struct evbuffer *tl_pulsar_entry(const Pulsar__Proto__MessageMetadata *md, const void *payload,
                                 size_t len);

/* ---- a peer ------------------------------------------------------------------------------ */

struct tl_peer {
    struct event_base *base; /* borrowed */
    struct bufferevent *bev; /* owned; NULL once closed */
    bool eof;                /* the other side closed, or the socket failed */
    uint64_t wait_ms;        /* bound of each wait: TL_REAL_WAIT_MS unless the test sets it */
    struct mg_loop *loop;    /* borrowed; set: waits run it (tl_until), else the base */
};

/* A peer on a connected stream socket (it owns fd, made non-blocking here). */
void tl_peer_open(struct tl_peer *p, struct event_base *b, int fd);
/* A peer on a bufferevent the test made (one end of a bufferevent_pair_new), which the peer
 * owns from now on. A pair does not report its other end's close as EOF: a test that learns
 * of the close another way sets p->eof itself. */
void tl_peer_open_bev(struct tl_peer *p, struct event_base *b, struct bufferevent *bev);
/* tl_peer_open_bev on l's base, waiting with l (tl_until, bound tl_wait_ms(l)): for a peer
 * on a simulated loop, which only the loop context can move. */
void tl_peer_open_loop(struct tl_peer *p, struct mg_loop *l, struct bufferevent *bev);
/* A peer connected to 127.0.0.1:port (blocking connect: the listener is in this process). */
void tl_peer_connect(struct tl_peer *p, struct event_base *b, int port);
/* A stream socket connected to 127.0.0.1:port (blocking); rcvbuf > 0: that SO_RCVBUF, set
 * before connecting (it bounds the window). For tl_peer_open. */
int tl_connect_fd(int port, int rcvbuf);
/* Close the socket (the other side sees EOF); accepts a closed peer. */
void tl_peer_close(struct tl_peer *p);

void tl_peer_send(struct tl_peer *p, const wire_cmd *cmd);
/* Raw bytes, as they are (framing included or not). */
void tl_peer_send_raw(struct tl_peer *p, const void *data, size_t len);

/* The next frame: 1 with it in *f (wire_frame_clear it), 0 if the other side closed first,
 * -1 if nothing complete came within the wait bound. A frame the codec refuses fails the
 * test. */
int tl_peer_next(struct tl_peer *p, struct wire_frame *f);
/* The next frame, which must be a command of type (fails the test otherwise). */
void tl_peer_expect(struct tl_peer *p, int type, struct wire_frame *f);
/* Skip frames until one of type: 1 with it in *f, 0 closed, -1 timeout. */
int tl_peer_skip_to(struct tl_peer *p, int type, struct wire_frame *f);
/* Bytes received and not yet taken as frames. */
size_t tl_peer_pending(const struct tl_peer *p);
/* Until the other side closed (within the wait bound); returns whether it did. */
bool tl_peer_wait_closed(struct tl_peer *p);

/* ---- commands: a client's ---------------------------------------------------------------- */

void tl_send_connect(struct tl_peer *p, const char *client_version, int protocol_version);
/* CONNECT (client version "check") and its answer, which must be CONNECTED at
 * min(protocol_version, WIRE_PROTOCOL_VERSION); the frame is left in *f when f is not NULL
 * (wire_frame_clear it). */
void tl_peer_handshake(struct tl_peer *p, int protocol_version, struct wire_frame *f);
void tl_send_producer(struct tl_peer *p, const char *topic, uint64_t producer_id,
                      uint64_t request_id);
/* LOOKUP (authoritative set as given). */
void tl_send_lookup(struct tl_peer *p, const char *topic, uint64_t request_id, bool authoritative);
/* What a SUBSCRIBE sets besides its ids (NULL: all defaults: Exclusive, Latest, durable). */
struct tl_sub_opts {
    int type;                                  /* PULSAR__PROTO__COMMAND_SUBSCRIBE__SUB_TYPE__* */
    const char *name;                          /* consumer_name, or NULL */
    bool earliest;                             /* initial position Earliest */
    bool non_durable;                          /* durable = false (a reader) */
    const Pulsar__Proto__MessageIdData *start; /* start_message_id, or NULL */
    bool read_compacted;                       /* read_compacted = true */
};
void tl_send_subscribe(struct tl_peer *p, const char *topic, const char *sub, uint64_t consumer_id,
                       uint64_t request_id, const struct tl_sub_opts *o);
void tl_send_flow(struct tl_peer *p, uint64_t consumer_id, uint32_t permits);
/* A SEND of one message (metadata: producer "p", sequence seq, publish time 1000 + seq). */
void tl_send_send(struct tl_peer *p, uint64_t producer_id, uint64_t seq, const void *payload,
                  size_t len);

/* ---- commands: a broker's ---------------------------------------------------------------- */

/* max_message_size 0: the field is left out. */
void tl_send_connected(struct tl_peer *p, int protocol_version, int max_message_size);
void tl_send_ping(struct tl_peer *p);
/* response: PULSAR__PROTO__COMMAND_LOOKUP_TOPIC_RESPONSE__LOOKUP_TYPE__*; url for Connect and
 * Redirect; error and message for Failed. */
void tl_send_lookup_response(struct tl_peer *p, uint64_t request_id, int response, const char *url,
                             bool authoritative, int error, const char *message);
void tl_send_partitions(struct tl_peer *p, uint64_t request_id, uint32_t partitions);
/* last_sequence_id < 0: none. */
void tl_send_producer_success(struct tl_peer *p, uint64_t request_id, const char *name,
                              int64_t last_sequence_id);
void tl_send_success(struct tl_peer *p, uint64_t request_id);
/* ERROR for request_id: error is a PULSAR__PROTO__SERVER_ERROR__*. */
void tl_send_error(struct tl_peer *p, uint64_t request_id, int error, const char *message);
void tl_send_receipt(struct tl_peer *p, uint64_t producer_id, uint64_t sequence_id, uint64_t ledger,
                     uint64_t entry);
void tl_send_send_error(struct tl_peer *p, uint64_t producer_id, uint64_t sequence_id, int error,
                        const char *message);
/* MESSAGE to consumer_id with a stored entry (tl_pulsar_entry; not drained). */
void tl_send_message(struct tl_peer *p, uint64_t consumer_id, uint64_t ledger, uint64_t entry,
                     struct evbuffer *stored);
void tl_send_close_producer(struct tl_peer *p, uint64_t producer_id);

/* ---- answers a client expects ------------------------------------------------------------ */

/* The next frame must be SUCCESS for request_id. */
void tl_expect_success(struct tl_peer *p, uint64_t request_id);
/* The next frame must be ERROR for request_id with error (a PULSAR__PROTO__SERVER_ERROR__*)
 * and, when message is not NULL, that message. */
void tl_expect_error(struct tl_peer *p, uint64_t request_id, int error, const char *message);

#endif
