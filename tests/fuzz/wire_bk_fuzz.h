/*
 * wire_bk_fuzz.h - what the BookKeeper codec's fuzz targets share (fuzz_bk_request.c,
 * fuzz_bk_response.c) besides fuzz.h: the control byte's frame limit and the promises of a
 * reader that returned no frame.
 */
#ifndef WIRE_BK_FUZZ_H
#define WIRE_BK_FUZZ_H

#include "fuzz.h"

#include <event2/buffer.h>
#include <stdint.h>

#define FUZZ_MAX_FRAMES 64 /* frames read from one input */

/* Bit 2 of the control byte: a small limit of 32 + 8 * (byte >> 3) bytes, so that oversized
 * frames are common; else nettyMaxFrameSizeBytes' default. */
static inline size_t fuzz_bk_limit(uint8_t ctl)
{
    return (ctl & 4) ? 32 + 8 * (size_t)(ctl >> 3) : 5 * 1024 * 1024 + 10240;
}

/* A reader returned rc <= 0: 0 drained nothing, an error says why, and nothing is owned.
 * Returns 0 (no frame: stop reading). */
static inline int fuzz_bk_no_frame(int rc, struct evbuffer *in, size_t before, const char *err,
                                   int owns)
{
    if (rc == 0)
        check(evbuffer_get_length(in) == before, "nothing drained without a frame");
    else
        check(err[0] != '\0', "errmsg set on failure");
    check(!owns, "nothing owned without a frame");
    return 0;
}

/* One frame of a target: read it from in (before: in's length then; limit: the frame limit;
 * err: for the reader's reason) and check it; set *skip to what an oversized frame left
 * unread. Returns 1 to read on, 0 to stop. */
typedef int (*fuzz_bk_frame_fn)(struct evbuffer *in, size_t before, size_t limit, uint64_t *skip,
                                char *err, size_t errlen, void *arg);

/* The frames a connection would read from the input after its control byte (at most
 * FUZZ_MAX_FRAMES), each given to one, skipping what an oversized frame left. */
static inline void fuzz_bk_frames(const uint8_t *data, size_t size, fuzz_bk_frame_fn one, void *arg)
{
    size_t limit = fuzz_bk_limit(data[0]);
    struct evbuffer *in = fuzz_stream(data + 1, size - 1);
    uint64_t skip = 0;
    for (int k = 0; k < FUZZ_MAX_FRAMES; k++) {
        char err[160] = "";
        if (wire_bk_skip(in, &skip) ||
            !one(in, evbuffer_get_length(in), limit, &skip, err, sizeof err, arg))
            break;
    }
    evbuffer_free(in);
}

#endif
