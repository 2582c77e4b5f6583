/*
 * tl_jwt.h - hand-made JSON Web Tokens for tests of the token checks (broker/auth): the
 * auth module's unit suite (check_auth) signs tokens with claims and headers of its own
 * choosing, the token fuzzer (tests/fuzz/fuzz_token) signs payloads it is given, so that
 * the claims reader past the signature is reached.
 *
 * Header only and without Check, unlike the rest of tests/lib (prefix tl_): the fuzzer is no
 * Check program. Strings returned are mg_malloc'd (mg_free).
 */
#ifndef MG_TL_JWT_H
#define MG_TL_JWT_H

#include "util/alloc.h"

#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <stddef.h>
#include <string.h>

/* The n bytes at d in base64url without padding (RFC 7515's encoding of every part). */
static inline char *tl_b64url(const void *d, size_t n)
{
    char *o = mg_malloc((n + 2) / 3 * 4 + 1);
    int m = EVP_EncodeBlock((unsigned char *)o, d, (int)n);
    while (m > 0 && o[m - 1] == '=')
        m--;
    o[m] = '\0';
    for (int i = 0; i < m; i++)
        o[i] = o[i] == '+' ? '-' : o[i] == '/' ? '_' : o[i];
    return o;
}

/* header.payload.signature: the header text, the n payload bytes, and their HMAC-SHA256 with
 * key (NULL: an empty signature). */
static inline char *tl_jwt_hs256(const char *header, const void *payload, size_t n,
                                 const unsigned char *key, size_t keylen)
{
    char *h = tl_b64url(header, strlen(header));
    char *p = tl_b64url(payload, n);
    char *in = mg_asprintf("%s.%s", h, p);
    mg_free(h);
    mg_free(p);
    char *s = mg_strdup("");
    if (key) {
        unsigned char mac[EVP_MAX_MD_SIZE];
        unsigned int ml = 0;
        HMAC(EVP_sha256(), key, (int)keylen, (const unsigned char *)in, strlen(in), mac, &ml);
        mg_free(s);
        s = tl_b64url(mac, ml);
    }
    char *t = mg_asprintf("%s.%s", in, s);
    mg_free(in);
    mg_free(s);
    return t;
}

#endif
