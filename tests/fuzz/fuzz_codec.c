/*
 * fuzz_codec.c - libFuzzer target for the payload codecs (broker/util/compress.c): the
 * compressed payload and declared uncompressed size of a message a client sent, as topic
 * compaction, the admin peek and the client decompress them.
 *
 * Input: byte 0 picks the codec (mod 5), bytes 1..3 the declared size (big-endian, 24 bits),
 * the rest is the payload. Promises for every input: decompression with a maximum of 1 MiB
 * returns 0, -MG_EPROTO or -MG_ETOOBIG (the latter only for a size over the maximum), has a
 * reason for a refusal and an output only on success; an accepted output compressed again
 * with the same codec decompresses to the same bytes. Failure modes: a broken promise aborts;
 * ASan/UBSan/LeakSanitizer catch overruns, undefined behaviour and leaks.
 */
#define FUZZ_TARGET "fuzz_codec"
#include "fuzz.h"
#include "util/alloc.h"
#include "util/compress.h"
#include "util/err.h"

#include <stdint.h>
#include <string.h>

#define FUZZ_MAX (1u << 20)

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 4)
        return 0;
    int codec = data[0] % 5;
    size_t declared = (size_t)data[1] << 16 | (size_t)data[2] << 8 | data[3];
    const uint8_t *in = data + 4;
    size_t n = size - 4;
    uint8_t *out = NULL;
    char why[200] = "";
    int rc = mg_decompress(codec, in, n, declared, FUZZ_MAX, &out, why, sizeof why);
    check(rc == 0 || rc == -MG_EPROTO || rc == -MG_ETOOBIG, "0, -MG_EPROTO or -MG_ETOOBIG");
    check(rc != -MG_ETOOBIG || declared > FUZZ_MAX, "too big only over the maximum");
    if (rc < 0) {
        check(out == NULL, "a refusal has no output");
        check(why[0] != '\0', "a refusal has a reason");
        return 0;
    }
    check(out != NULL, "an acceptance has an output");
    uint8_t *c = NULL, *back = NULL;
    size_t cn = 0;
    check(mg_compress(codec, out, declared, &c, &cn) == 0, "compressing an accepted output");
    check(mg_decompress(codec, c, cn, declared, FUZZ_MAX, &back, why, sizeof why) == 0,
          "a compressed output decompresses");
    check(declared == 0 || memcmp(back, out, declared) == 0, "the round trip keeps the bytes");
    mg_free(back);
    mg_free(c);
    mg_free(out);
    return 0;
}
