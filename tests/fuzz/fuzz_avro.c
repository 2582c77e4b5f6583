/*
 * fuzz_avro.c - libFuzzer target for the schema registry's definitions (broker/schema):
 * Avro JSON parsed into a type tree, validation of every schema type, Avro resolution.
 *
 * The input is split at its first NUL byte into a reader and a writer text (no NUL: the
 * input is both). Promises checked for every input: validation succeeds or fails with
 * -MG_EINVAL / -MG_ETOOBIG and a reason; a definition that validates as AVRO resolves against
 * itself (a schema reads its own data) and is the same as itself; resolving the two texts
 * returns yes, no (with a reason) or "does not parse", both ways, without crashing, leaking
 * or running away (nesting and the work per pair are bounded). Failure modes: a broken
 * promise aborts; ASan/UBSan catch memory errors and undefined behaviour.
 */
#define FUZZ_TARGET "fuzz_avro"
#include "fuzz.h"
#include "schema/schema.h"
#include "util/err.h"

#include <stdint.h>
#include <string.h>

static void fuzz_validate(enum sch_type t, const uint8_t *p, size_t n)
{
    struct sch_schema s;
    sch_schema_init(&s, t, p, n);
    char err[256] = "";
    int rc = sch_validate(&s, err, sizeof err);
    check(rc == 0 || ((rc == -MG_EINVAL || rc == -MG_ETOOBIG) && err[0]),
          "validation succeeds or says why");
    if (rc == 0 && t == SCH_AVRO) {
        check(sch_avro_can_read((const char *)p, n, (const char *)p, n, err, sizeof err) == 1,
              "a valid schema reads its own data");
        check(sch_same(&s, &s), "a schema is the same as itself");
    }
    sch_schema_fini(&s);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    const uint8_t *nul = memchr(data, 0, size);
    size_t rn = nul ? (size_t)(nul - data) : size;
    const uint8_t *w = nul ? nul + 1 : data;
    size_t wn = nul ? size - rn - 1 : size;
    fuzz_validate(SCH_AVRO, data, rn);
    fuzz_validate(SCH_JSON, w, wn);
    fuzz_validate(SCH_PROTOBUF_NATIVE, data, rn);
    fuzz_validate(SCH_KEY_VALUE, data, size);
    char err[256];
    for (int dir = 0; dir < 2; dir++) {
        int rc =
            dir ? sch_avro_can_read((const char *)w, wn, (const char *)data, rn, err, sizeof err)
                : sch_avro_can_read((const char *)data, rn, (const char *)w, wn, err, sizeof err);
        check(rc == 1 || rc == 0 || rc == -MG_EINVAL, "resolution answers yes, no or invalid");
    }
    return 0;
}
