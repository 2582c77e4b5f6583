/*
 * wire.h - Pulsar binary protocol framing (docs/wire-pulsar.md §1), no event loop, no I/O.
 *
 * Decoding takes whole frames out of an input evbuffer (frames may arrive in any number of
 * pieces), unpacks the BaseCommand with protobuf-c and, for payload commands (SEND,
 * MESSAGE), moves the bytes after the command (checksum magic + checksum + metadata size
 * + metadata + payload) into their own evbuffer without copying them.
 * Encoding appends whole frames to an output evbuffer; MESSAGE frames share the stored
 * entry bytes by evbuffer reference.
 *
 * This is the only public header that exposes the protobuf-c generated types.
 */
#ifndef MG_WIRE_H
#define MG_WIRE_H

#include "PulsarApi.pb-c.h"

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct evbuffer;

#define WIRE_PROTOCOL_VERSION 21
#define WIRE_MAGIC_CHECKSUM 0x0e01
#define WIRE_MAGIC_BROKER_ENTRY_METADATA 0x0e02
#define WIRE_FRAME_PADDING 10240 /* frame limit = maxMessageSize + this */
#define WIRE_DEFAULT_MAX_MESSAGE_SIZE 5242880

typedef Pulsar__Proto__BaseCommand wire_cmd;

/* What the broker keeps of a message's MessageMetadata (docs/wire-pulsar.md §2): read once,
 * as a SEND or MESSAGE frame is decoded (wire_frame.msg), or from stored bytes
 * (wire_entry_parse). */
struct wire_msg_info {
    int32_t num_messages; /* num_messages_in_batch, or 1 when absent */
    bool batched;         /* num_messages_in_batch present */
    uint64_t publish_time;
    uint64_t sequence_id;
    uint64_t highest_sequence_id; /* 0 if absent */
    int64_t deliver_at_time;      /* 0 if absent */
    int32_t chunk_id, num_chunks; /* a chunk of a chunked message: its index and the count of
                                     chunks (num_chunks_from_msg); num_chunks 0: no chunk */
    uint32_t chunk_key;           /* a chunk (num_chunks > 1): a non-zero hash of its uuid, the
                                     same for every chunk of one message; else 0 */
    uint32_t key_hash;            /* Key_Shared sticky-key hash: Murmur3_32(seed 0) of
                                     ordering_key, else partition_key (base64-decoded when
                                     partition_key_b64_encoded), else "NONE_KEY";
                                     then & 0x7fffffff, % 65536 */
    uint32_t tail_crc;            /* CRC32C of the last tail_len bytes of the payload (metadata
                                     size + metadata + payload), computed over the bytes
                                     received by wire_frame_read; tail_len 0: not computed */
    size_t tail_len;
};

/* One decoded frame. */
struct wire_frame {
    wire_cmd *cmd;                /* owned; unpacked BaseCommand, never NULL after success */
    struct evbuffer *payload;     /* owned; payload commands only (else NULL): the stored-entry
                                     form, always starting with 0x0e01 + CRC32C (added by
                                     wire_frame_read when the sender omitted it). A 0x0e02
                                     section is dropped from a SEND; on a MESSAGE it is kept
                                     in front of the 0x0e01 */
    bool had_checksum;            /* the sender included magic + checksum */
    bool checksum_ok;             /* CRC32C over metadata size + metadata + payload matches
                                     (true when the sender sent none) */
    size_t frame_size;            /* bytes the frame took on the wire, incl. the size field */
    const char *nul_string_field; /* static: name of a string field of the command whose
                                     bytes held a NUL (its C string in cmd stops there), or
                                     NULL */
    struct wire_msg_info msg;     /* payload commands: what the broker keeps of the
                                     MessageMetadata, read while checking it (no need to
                                     call wire_entry_parse on payload again) */
};

/* Take one frame from the front of in.
 * Returns 1 and fills f when a whole frame was there (the frame's bytes are drained),
 * 0 when more bytes are needed (nothing drained), or a negative error when the stream is
 * unusable: -MG_ETOOBIG (declared size > max_frame_size), -MG_EPROTO (garbage: sizes that
 * do not add up, an unparsable BaseCommand, a type without its sub-message, a payload on a
 * command that cannot carry one, bad metadata size). errmsg gets a one-line reason.
 * max_frame_size bounds the bytes after the 4-byte total size field. */
int wire_frame_read(struct evbuffer *in, uint32_t max_frame_size, struct wire_frame *f,
                    char *errmsg, size_t errlen);
/* Free what a frame owns; accepts a zeroed frame. */
void wire_frame_clear(struct wire_frame *f);

/* Parse the metadata of a stored entry (the wire_frame.payload form; a leading 0x0e02
 * broker-entry-metadata section is skipped). Does not drain or modify entry.
 * Returns 0 or -MG_EPROTO. */
int wire_entry_parse(struct evbuffer *entry, struct wire_msg_info *info);
/* The whole MessageMetadata of a stored entry (fields wire_msg_info does not keep, e.g. the
 * producer name), or NULL for bytes that are not a Pulsar entry. Does not modify entry; the
 * caller frees it with pulsar__proto__message_metadata__free_unpacked(md, NULL). */
Pulsar__Proto__MessageMetadata *wire_entry_metadata(struct evbuffer *entry);
/* As wire_entry_metadata, with *payload_off the offset in entry of the payload (the bytes
 * after the metadata). */
Pulsar__Proto__MessageMetadata *wire_entry_metadata_payload(struct evbuffer *entry,
                                                            size_t *payload_off);

/* Append a simple command frame. */
void wire_write_command(struct evbuffer *out, const wire_cmd *cmd);
/* Append a MESSAGE frame: the command, then the stored entry bytes shared by reference
 * (evbuffer_add_buffer_reference; entry itself is not drained). libevent makes the entry's
 * chains immutable and refcounted: the entry may be freed before out is flushed, and bytes
 * appended to it later land in new chains, but never write into its existing bytes (no
 * evbuffer_reserve_space/commit on it). An entry that itself holds reference chains (bytes
 * that came through an in-process bufferevent pair) cannot be referenced; its bytes are
 * copied then. */
void wire_write_message(struct evbuffer *out, const wire_cmd *cmd, struct evbuffer *entry);
/* Append src's bytes to out without copying them (evbuffer_add_buffer_reference), or by
 * copying when src holds chains libevent cannot reference again; src is not drained. The
 * rules of wire_write_message's entry apply to src. Also used for BookKeeper adds (wire_bk.h). */
void wire_append_shared(struct evbuffer *out, struct evbuffer *src);
/* Client side (perf tool, tests): append a SEND frame with checksum over the metadata and
 * payload. */
void wire_write_send(struct evbuffer *out, const wire_cmd *cmd,
                     const Pulsar__Proto__MessageMetadata *md, const void *payload,
                     size_t payload_len);
/* wire_write_send without appending the payload (its checksum and length are in the head):
 * the caller appends exactly those payload_len bytes next, e.g. by reference. */
void wire_write_send_head(struct evbuffer *out, const wire_cmd *cmd,
                          const Pulsar__Proto__MessageMetadata *md, const void *payload,
                          size_t payload_len);

/* "SEND", "PRODUCER", ... (the proto enum names); the fixed string "UNKNOWN" for types
 * the proto does not list. Never NULL, static storage. */
const char *wire_command_name(int type);

/* Murmur3 x86_32 as Pulsar uses it for sticky keys. */
uint32_t wire_murmur3_32(const void *data, size_t len, uint32_t seed);

#endif
