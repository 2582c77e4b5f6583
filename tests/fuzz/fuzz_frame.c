/*
 * fuzz_frame.c - libFuzzer target for the Pulsar frame decoder (broker/wire).
 *
 * Happy path: the input is fed to wire_frame_read as a stream in several reference chains
 * (so pull-ups and moves cross chain boundaries); every frame it accepts must satisfy the
 * decoder's promises: a payload frame's stored entry parses with wire_entry_parse, and
 * re-encoding the frame (wire_write_command / wire_write_message) and decoding it again
 * gives the same type, the same entry bytes and the same checksum verdict. The raw input is
 * also parsed as a stored entry.
 * Failure modes: a broken promise aborts (a crash for libFuzzer); ASan/UBSan catch memory
 * errors and undefined behaviour; LeakSanitizer catches leaks.
 */
#define FUZZ_TARGET "fuzz_frame"
#include "fuzz.h"
#include "wire/wire.h"

#include <event2/buffer.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define FUZZ_MAX_FRAME (WIRE_DEFAULT_MAX_MESSAGE_SIZE + WIRE_FRAME_PADDING)

static int same_bytes(struct evbuffer *a, struct evbuffer *b)
{
    size_t n = evbuffer_get_length(a);
    if (n != evbuffer_get_length(b))
        return 0;
    uint8_t *x = malloc(n + 1), *y = malloc(n + 1);
    int eq = evbuffer_copyout(a, x, n) == (ev_ssize_t)n &&
             evbuffer_copyout(b, y, n) == (ev_ssize_t)n && memcmp(x, y, n) == 0;
    free(x);
    free(y);
    return eq;
}

static void recheck(const struct wire_frame *f)
{
    struct evbuffer *out;
    struct wire_frame g;
    char err[160];

    if (!fuzz_protobuf_round_trips(&f->cmd->base))
        return;
    out = evbuffer_new();

    if (f->payload)
        wire_write_message(out, f->cmd, f->payload);
    else
        wire_write_command(out, f->cmd);
    err[0] = '\0';
    int r = wire_frame_read(out, UINT32_MAX, &g, err, sizeof(err));
    if (r != 1)
        fprintf(stderr, "fuzz_frame: re-read gave %d: %s\n", r, err);
    check(r == 1, "re-encoded frame decodes");
    check(evbuffer_get_length(out) == 0, "re-encoded frame fully consumed");
    check(g.cmd->type == f->cmd->type, "type survives re-encoding");
    check((g.payload != NULL) == (f->payload != NULL), "payload presence survives");
    if (f->payload) {
        check(same_bytes(f->payload, g.payload), "entry bytes survive re-encoding");
        check(g.had_checksum, "stored entry carries a checksum");
        check(g.checksum_ok == f->checksum_ok, "checksum verdict survives");
    }
    wire_frame_clear(&g);
    evbuffer_free(out);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    struct evbuffer *in = fuzz_stream(data, size);
    struct wire_frame f;
    struct wire_msg_info info;
    char err[160];

    for (;;) {
        err[0] = '\0';
        size_t before = evbuffer_get_length(in);
        int r = wire_frame_read(in, FUZZ_MAX_FRAME, &f, err, sizeof(err));
        if (r <= 0) {
            check(evbuffer_get_length(in) == before, "nothing drained without a frame");
            check(f.cmd == NULL && f.payload == NULL, "no frame on failure");
            if (r < 0)
                check(err[0] != '\0', "errmsg set on failure");
            break;
        }
        check(f.cmd != NULL, "frame has a command");
        check(before - evbuffer_get_length(in) == f.frame_size, "frame_size matches drain");
        if (f.payload) {
            check(wire_entry_parse(f.payload, &info) == 0, "stored entry parses");
            check(info.key_hash < 65536, "key hash in range");
        }
        recheck(&f);
        wire_frame_clear(&f);
    }
    evbuffer_free(in);

    struct evbuffer *entry = evbuffer_new();
    evbuffer_add(entry, data, size);
    if (wire_entry_parse(entry, &info) == 0)
        check(info.key_hash < 65536, "key hash in range");
    check(evbuffer_get_length(entry) == size, "entry parse does not drain");
    evbuffer_free(entry);
    return 0;
}
