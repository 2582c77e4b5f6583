/*
 * fuzz_token.c - libFuzzer target for the token parser (broker/auth/auth.c): the bytes a
 * client puts in CONNECT's auth_data, checked by a broker with an HS256 secret.
 *
 * The first byte picks the mode: even = the rest is the token as it comes off the wire;
 * odd = the rest is a claims payload, which this target signs correctly (so the claims
 * reader, past the signature, is reached). Promises for every input: the check returns 0 or
 * -MG_EAUTH, never anything else; a refusal has a reason; an acceptance has a non-empty role
 * without a NUL, and only a token this target signed is ever accepted; auth_token_decode
 * of the same bytes succeeds or refuses with a reason. Failure modes: a broken promise aborts;
 * ASan/UBSan/LeakSanitizer catch memory errors, undefined behaviour and leaks.
 */
#define FUZZ_TARGET "fuzz_token"
#include "auth/auth.h"
#include "config/cfg.h"
#include "fuzz.h"
#include "lib/tl_jwt.h"
#include "util/alloc.h"
#include "util/err.h"
#include "util/log.h"

#include <stdint.h>
#include <string.h>

/* "0123456789abcdef0123456789abcdef", the secret of the broker under test */
#define FUZZ_SECRET "0123456789abcdef0123456789abcdef"

static struct auth *fuzz_auth(void)
{
    static struct auth *a;
    if (!a) {
        mg_log_set_level((enum mg_log_level)(MG_LOG_ERROR + 1));
        struct cfg c;
        char err[256];
        cfg_init(&c);
        check(cfg_set(&c, "authenticationEnabled", "true", "fuzz", err, sizeof err) == 0, err);
        check(cfg_set(&c, "authenticationProviders", "token", "fuzz", err, sizeof err) == 0, err);
        check(cfg_set(&c, "tokenSecretKey", "data:," FUZZ_SECRET, "fuzz", err, sizeof err) == 0,
              err);
        check(auth_new(&c, &a, err, sizeof err) == 0, "auth_new");
        cfg_fini(&c);
    }
    return a;
}

/* header.payload.signature with payload = the given bytes, HS256-signed with the secret. */
static char *fuzz_sign(const uint8_t *payload, size_t n)
{
    return tl_jwt_hs256("{\"alg\":\"HS256\"}", payload, n, (const unsigned char *)FUZZ_SECRET,
                        sizeof FUZZ_SECRET - 1);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size == 0)
        return 0;
    struct auth *a = fuzz_auth();
    bool signed_here = data[0] & 1;
    char *tok = signed_here ? fuzz_sign(data + 1, size - 1) : NULL;
    const char *t = signed_here ? tok : (const char *)data + 1;
    size_t len = signed_here ? strlen(tok) : size - 1;
    struct auth_id id;
    char why[256] = "";
    int64_t now = (int64_t)1700000000000;
    int rc = auth_check(a, "token", t, len, now, &id, why, sizeof why);
    check(rc == 0 || rc == -MG_EAUTH, "0 or -MG_EAUTH");
    if (rc == 0) {
        check(signed_here, "only a token signed with the broker's secret is accepted");
        check(id.role && id.role[0] != '\0', "an accepted token has a role");
        auth_id_fini(&id);
    } else {
        check(why[0] != '\0', "a refusal has a reason");
        check(id.role == NULL, "a refusal has no role");
    }
    char *z = mg_malloc(len + 1); /* auth_token_decode takes a C string */
    memcpy(z, t, len);
    z[len] = '\0';
    char *h = NULL, *p = NULL, err[256] = "";
    if (auth_token_decode(z, &h, &p, err, sizeof err) == 0) {
        mg_free(h);
        mg_free(p);
    } else {
        check(err[0] != '\0', "a refused decode has a reason");
    }
    mg_free(z);
    mg_free(tok);
    return 0;
}
