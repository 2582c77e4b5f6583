/*
 * wire_bk_fuzz.h - what the BookKeeper codec's fuzz targets share (fuzz_bk_request.c,
 * fuzz_bk_response.c): the control byte's frame limit, the input as a stream of reference
 * chains, and the promises of a reader that returned no frame.
 */
#ifndef WIRE_BK_FUZZ_H
#define WIRE_BK_FUZZ_H

#include <event2/buffer.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>

#define FUZZ_CHUNK 13      /* chain size: pull-ups and moves cross chain boundaries */
#define FUZZ_MAX_FRAMES 64 /* frames read from one input */

static void check(int cond, const char *what)
{
    if (!cond) {
        fprintf(stderr, "%s: broken promise: %s\n", FUZZ_TARGET, what);
        abort();
    }
}

/* Bit 2 of the control byte: a small limit of 32 + 8 * (byte >> 3) bytes, so that oversized
 * frames are common; else nettyMaxFrameSizeBytes' default. */
static inline size_t fuzz_bk_limit(uint8_t ctl)
{
    return (ctl & 4) ? 32 + 8 * (size_t)(ctl >> 3) : 5 * 1024 * 1024 + 10240;
}

/* The input (borrowed) as the stream a connection receives, in chains of FUZZ_CHUNK bytes. */
static inline struct evbuffer *fuzz_bk_stream(const uint8_t *data, size_t size)
{
    struct evbuffer *in = evbuffer_new();
    for (size_t off = 0; off < size; off += FUZZ_CHUNK) {
        size_t n = size - off < FUZZ_CHUNK ? size - off : FUZZ_CHUNK;
        evbuffer_add_reference(in, data + off, n, NULL, NULL);
    }
    return in;
}

/* A reader returned rc <= 0: 0 drained nothing, an error says why, and nothing is owned. */
static inline void fuzz_bk_no_frame(int rc, struct evbuffer *in, size_t before, const char *err,
                                    int owns)
{
    if (rc == 0)
        check(evbuffer_get_length(in) == before, "nothing drained without a frame");
    else
        check(err[0] != '\0', "errmsg set on failure");
    check(!owns, "nothing owned without a frame");
}

#endif
