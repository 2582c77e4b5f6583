/*
 * fuzz.h - what every libFuzzer target of tests/fuzz shares: the check of a broken promise,
 * the input as the stream a connection receives (reference chains of FUZZ_CHUNK bytes), and
 * protobuf-c's own round trip. The includer defines FUZZ_TARGET (its name, for messages).
 * Failure mode: a broken promise prints what broke and aborts (a crash for libFuzzer).
 */
#ifndef MG_FUZZ_H
#define MG_FUZZ_H

#include <event2/buffer.h>
#include <protobuf-c/protobuf-c.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>

#ifndef FUZZ_TARGET
#error "define FUZZ_TARGET before including fuzz.h"
#endif

#define FUZZ_CHUNK 13 /* chain size: pull-ups and moves cross chain boundaries */

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static inline void check(int cond, const char *what)
{
    if (!cond) {
        fprintf(stderr, "%s: broken promise: %s\n", FUZZ_TARGET, what);
        abort();
    }
}

/* The input (borrowed: it must outlive the buffer) in chains of FUZZ_CHUNK bytes. */
static inline struct evbuffer *fuzz_stream(const uint8_t *data, size_t size)
{
    struct evbuffer *in = evbuffer_new();
    for (size_t off = 0; off < size; off += FUZZ_CHUNK) {
        size_t n = size - off < FUZZ_CHUNK ? size - off : FUZZ_CHUNK;
        evbuffer_add_reference(in, data + off, n, NULL, NULL);
    }
    return in;
}

/* protobuf-c accepts a few encodings it does not reproduce (an unknown field with the
 * invalid field number 0 written as a two-byte varint is kept, then re-packed in the one-byte
 * form it rejects). A message that does not survive its own pack and unpack is protobuf-c's
 * business, not the framing's: the targets skip their re-encoding checks for it. */
static inline int fuzz_protobuf_round_trips(const ProtobufCMessage *m)
{
    size_t n = protobuf_c_message_get_packed_size(m);
    uint8_t *buf = malloc(n + 1);
    protobuf_c_message_pack(m, buf);
    ProtobufCMessage *again = protobuf_c_message_unpack(m->descriptor, NULL, n, buf);
    free(buf);
    if (!again)
        return 0;
    protobuf_c_message_free_unpacked(again, NULL);
    return 1;
}

#endif
