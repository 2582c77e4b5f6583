/*
 * auth.c - the token provider: configuration, key values, token checks, key and token
 * making.
 *
 * Happy path: auth_new reads tokenSecretKey (raw bytes, HS*) or tokenPublicKey (DER or PEM
 * SubjectPublicKeyInfo, RSA or EC as tokenPublicAlg says); auth_check splits the token in
 * its three base64url parts, reads the header's alg, verifies the signature with the
 * configured key (HMAC compared in constant time, or EVP_DigestVerify), then reads the
 * claims: exp and nbf against the caller's clock, the audience when configured, and the
 * role from tokenAuthClaim.
 *
 * Failure modes: a token longer than AUTH_TOKEN_MAX is refused before it is decoded; a
 * part that is not base64url, a header or payload that is not a JSON object, alg "none" or
 * any alg the configured key cannot check (HS* with a public key, RS* with a secret, an
 * ES curve that differs from the key's), a short HMAC key, a bad signature, a non-numeric
 * exp/nbf, an expired token or one not valid yet, a missing role: -MG_EAUTH with the
 * reason, which callers only log (Pulsar sends clients a fixed message).
 */
#include "auth/auth.h"
#include "config/cfg.h"
#include "tls/tls.h"
#include "util/alloc.h"
#include "util/base64.h"
#include "util/err.h"
#include "util/fs.h"
#include "util/log.h"

#include <arpa/inet.h>
#include <ctype.h>
#include <errno.h>
#include <jansson.h>
#include <openssl/bn.h>
#include <openssl/crypto.h>
#include <openssl/ecdsa.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <openssl/pem.h>
#include <openssl/rand.h>
#include <openssl/rsa.h>
#include <openssl/x509.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#define AUTH_KEY_FILE_MAX (1024 * 1024)

enum auth_family {
    AUTH_HS = 0,
    AUTH_RS,
    AUTH_PS,
    AUTH_ES,
};

struct auth_alg {
    const char *name;
    enum auth_family family;
    const char *md;  /* digest name */
    size_t size;     /* HS: least key bytes; ES: bytes of r (and of s) */
    int curve_bits;  /* ES: the key's curve size */
    const char *crv; /* ES: the curve for key generation */
};

static const struct auth_alg auth_algs[] = {
    {"HS256", AUTH_HS, "SHA256", 32, 0, NULL},      {"HS384", AUTH_HS, "SHA384", 48, 0, NULL},
    {"HS512", AUTH_HS, "SHA512", 64, 0, NULL},      {"RS256", AUTH_RS, "SHA256", 0, 0, NULL},
    {"RS384", AUTH_RS, "SHA384", 0, 0, NULL},       {"RS512", AUTH_RS, "SHA512", 0, 0, NULL},
    {"PS256", AUTH_PS, "SHA256", 0, 0, NULL},       {"PS384", AUTH_PS, "SHA384", 0, 0, NULL},
    {"PS512", AUTH_PS, "SHA512", 0, 0, NULL},       {"ES256", AUTH_ES, "SHA256", 32, 256, "P-256"},
    {"ES384", AUTH_ES, "SHA384", 48, 384, "P-384"}, {"ES512", AUTH_ES, "SHA512", 66, 521, "P-521"},
};

struct auth {
    bool enabled;
    bool token; /* the token provider is configured */
    bool tls;   /* the TLS provider is configured */
    bool metrics_protected;
    bool authz; /* authorizationEnabled */
    uint64_t refresh_ms;
    char **supers; /* owned: superUserRoles */
    size_t nsupers;
    unsigned char *secret; /* owned: tokenSecretKey's bytes, or NULL */
    size_t secret_len;
    EVP_PKEY *pub;            /* owned: tokenPublicKey, or NULL */
    enum auth_family pub_fam; /* AUTH_RS (RS and PS) or AUTH_ES */
    char *claim;              /* owned: tokenAuthClaim */
    char *aud_claim;          /* owned or NULL: tokenAudienceClaim */
    char *aud;                /* owned or NULL: tokenAudience */
    char *client_authz;       /* owned or NULL: "Bearer " + brokerClient's token */
};

static const struct auth_alg *auth_alg_find(const char *name)
{
    for (size_t i = 0; i < sizeof auth_algs / sizeof *auth_algs; i++)
        if (strcmp(auth_algs[i].name, name) == 0)
            return &auth_algs[i];
    return NULL;
}

/* ---- base64 ---------------------------------------------------------------------------- */

/* Decode n chars of s: url = the base64url alphabet without padding (JWT parts), else the
 * standard alphabet with optional padding. 0 and *out (mg_free; NUL-terminated for
 * convenience) or -1 for anything else. */
static int auth_b64_decode(const char *s, size_t n, bool url, unsigned char **out, size_t *len)
{
    unsigned char *o = mg_malloc(MG_BASE64_DECODED_MAX(n) + 1);
    ssize_t m = mg_base64_decode(s, n, url, o);
    if (m < 0) {
        mg_free(o);
        return -1;
    }
    o[m] = '\0';
    *len = (size_t)m;
    *out = o;
    return 0;
}

/* base64url without padding of n bytes; mg_free the result. */
static char *auth_b64url_encode(const unsigned char *d, size_t n)
{
    char *o = mg_malloc((n + 2) / 3 * 4 + 1);
    int m = EVP_EncodeBlock((unsigned char *)o, d, (int)n);
    while (m > 0 && o[m - 1] == '=')
        m--;
    o[m] = '\0';
    for (int i = 0; i < m; i++) {
        if (o[i] == '+')
            o[i] = '-';
        else if (o[i] == '/')
            o[i] = '_';
    }
    return o;
}

/* ---- key values -------------------------------------------------------------------------- */

static int auth_read_file(const char *path, unsigned char **key, size_t *len, char *err,
                          size_t errlen)
{
    char *buf = mg_read_file(path, AUTH_KEY_FILE_MAX, len, err, errlen);
    if (buf && *len == 0) {
        mg_set_err(err, errlen, "%s: empty file", path);
        mg_free(buf);
        buf = NULL;
    }
    if (!buf)
        return -MG_EINVAL;
    *key = (unsigned char *)buf;
    return 0;
}

int auth_key_read(const char *value, unsigned char **key, size_t *len, char *err, size_t errlen)
{
    *key = NULL;
    *len = 0;
    if (strncmp(value, "data:", 5) == 0) {
        const char *comma = strchr(value, ',');
        if (!comma) {
            mg_set_err(err, errlen, "a data: URL without ','");
            return -MG_EINVAL;
        }
        const char *body = comma + 1;
        size_t mlen = (size_t)(comma - value);
        bool b64 = mlen >= 7 && memcmp(comma - 7, ";base64", 7) == 0;
        if (b64) {
            if (auth_b64_decode(body, strlen(body), false, key, len) < 0 || *len == 0) {
                mg_free(*key);
                *key = NULL;
                mg_set_err(err, errlen, "the data: URL's base64 does not decode");
                return -MG_EINVAL;
            }
            return 0;
        }
        *len = strlen(body);
        *key = (unsigned char *)mg_strdup(body);
        if (*len == 0) {
            mg_free(*key);
            *key = NULL;
            mg_set_err(err, errlen, "an empty data: URL");
            return -MG_EINVAL;
        }
        return 0;
    }
    if (strncmp(value, "file:", 5) == 0) {
        const char *path = value + 5;
        if (strncmp(path, "//", 2) == 0)
            path += 2; /* file:///abs -> /abs */
        return auth_read_file(path, key, len, err, errlen);
    }
    struct stat st;
    if (stat(value, &st) == 0)
        return auth_read_file(value, key, len, err, errlen);
    if (auth_b64_decode(value, strlen(value), false, key, len) == 0 && *len > 0)
        return 0;
    mg_free(*key);
    *key = NULL;
    mg_set_err(err, errlen, "neither data: or file: URL, nor an existing file, nor base64");
    return -MG_EINVAL;
}

/* A public key from DER SubjectPublicKeyInfo (Pulsar's form) or PEM. */
static EVP_PKEY *auth_pub_parse(const unsigned char *d, size_t n)
{
    const unsigned char *p = d;
    EVP_PKEY *k = d2i_PUBKEY(NULL, &p, (long)n);
    if (k && p == d + n)
        return k;
    EVP_PKEY_free(k);
    BIO *b = BIO_new_mem_buf(d, (int)n);
    k = PEM_read_bio_PUBKEY(b, NULL, NULL, NULL);
    BIO_free(b);
    return k;
}

static EVP_PKEY *auth_priv_parse(const unsigned char *d, size_t n)
{
    const unsigned char *p = d;
    EVP_PKEY *k = d2i_AutoPrivateKey(NULL, &p, (long)n);
    if (k)
        return k;
    BIO *b = BIO_new_mem_buf(d, (int)n);
    k = PEM_read_bio_PrivateKey(b, NULL, NULL, NULL);
    BIO_free(b);
    return k;
}

/* ---- configuration ------------------------------------------------------------------------ */

static bool auth_str_set(const char *s)
{
    return s != NULL && s[0] != '\0';
}

/* Split a comma list into trimmed non-empty items. */
static size_t auth_split(const char *s, char ***out)
{
    size_t n = 0;
    char **v = NULL;
    const char *p = s ? s : "";
    while (*p) {
        const char *e = strchr(p, ',');
        size_t l = e ? (size_t)(e - p) : strlen(p);
        const char *a = p, *b = p + l;
        while (a < b && isspace((unsigned char)*a))
            a++;
        while (b > a && isspace((unsigned char)b[-1]))
            b--;
        if (b > a) {
            v = mg_realloc(v, (n + 1) * sizeof *v);
            v[n++] = mg_strndup(a, (size_t)(b - a));
        }
        p = e ? e + 1 : p + l;
    }
    *out = v;
    return n;
}

static int auth_load_keys(struct auth *a, const struct cfg *c, const char *file, char *err,
                          size_t errlen)
{
    char why[256] = "";
    unsigned char *k = NULL;
    size_t n = 0;
    if (auth_str_set(c->token_secret_key)) {
        if (auth_key_read(c->token_secret_key, &k, &n, why, sizeof why) < 0) {
            mg_set_err(err, errlen, "%s: key 'tokenSecretKey': %s", file, why);
            return -MG_EINVAL;
        }
        if (n < 32) { /* as jjwt's hmacShaKeyFor: HS256 needs 256 bits */
            mg_set_err(err, errlen,
                       "%s: key 'tokenSecretKey': %zu bytes, at least 32 are needed (HS256)", file,
                       n);
            mg_free(k);
            return -MG_EINVAL;
        }
        a->secret = k;
        a->secret_len = n;
        return 0;
    }
    if (!auth_str_set(c->token_public_key)) {
        mg_set_err(err, errlen,
                   "%s: key 'authenticationProviders': the token provider needs 'tokenSecretKey' "
                   "or 'tokenPublicKey'",
                   file);
        return -MG_EINVAL;
    }
    const struct auth_alg *alg = auth_alg_find(c->token_public_alg);
    if (!alg || alg->family == AUTH_HS) {
        mg_set_err(err, errlen,
                   "%s: key 'tokenPublicAlg': '%s' is not an RS*, PS* or ES* algorithm (key pairs)",
                   file, c->token_public_alg);
        return -MG_EINVAL;
    }
    if (auth_key_read(c->token_public_key, &k, &n, why, sizeof why) < 0) {
        mg_set_err(err, errlen, "%s: key 'tokenPublicKey': %s", file, why);
        return -MG_EINVAL;
    }
    a->pub = auth_pub_parse(k, n);
    mg_free(k);
    if (!a->pub) {
        mg_set_err(err, errlen,
                   "%s: key 'tokenPublicKey': not a public key (X.509 SubjectPublicKeyInfo, DER "
                   "or PEM)",
                   file);
        return -MG_EINVAL;
    }
    int id = EVP_PKEY_get_base_id(a->pub);
    bool want_ec = alg->family == AUTH_ES;
    if ((want_ec && id != EVP_PKEY_EC) || (!want_ec && id != EVP_PKEY_RSA)) {
        mg_set_err(err, errlen,
                   "%s: key 'tokenPublicAlg': %s does not fit the %s key of 'tokenPublicKey'", file,
                   alg->name,
                   id == EVP_PKEY_EC    ? "EC"
                   : id == EVP_PKEY_RSA ? "RSA"
                                        : "other");
        return -MG_EINVAL;
    }
    if (!want_ec && EVP_PKEY_get_bits(a->pub) < 2048) {
        mg_set_err(err, errlen, "%s: key 'tokenPublicKey': RSA keys need at least 2048 bits", file);
        return -MG_EINVAL;
    }
    a->pub_fam = want_ec ? AUTH_ES : AUTH_RS;
    return 0;
}

int auth_new(const struct cfg *c, struct auth **out, char *err, size_t errlen)
{
    const char *file = c->file ? c->file : "configuration";
    struct auth *a = mg_calloc(1, sizeof *a);
    char **prov = NULL;
    size_t nprov = auth_split(c->authentication_providers, &prov);
    bool token = false, tls = false;
    int rc = 0;
    for (size_t i = 0; i < nprov; i++) {
        if (strcmp(prov[i], AUTH_PROVIDER_TOKEN) == 0 || strcmp(prov[i], AUTH_METHOD_TOKEN) == 0) {
            token = true;
        } else if (strcmp(prov[i], AUTH_PROVIDER_TLS) == 0 ||
                   strcmp(prov[i], AUTH_METHOD_TLS) == 0) {
            tls = true;
        } else {
            mg_set_err(err, errlen, "%s: key 'authenticationProviders': unknown provider '%s'",
                       file, prov[i]);
            rc = -MG_EINVAL;
        }
    }
    mg_free_strv(prov, (int)nprov);
    a->enabled = c->authentication_enabled;
    a->metrics_protected = c->authenticate_metrics_endpoint;
    a->refresh_ms = (uint64_t)c->authentication_refresh_check_seconds * 1000;
    a->nsupers = auth_split(c->super_user_roles, &a->supers);
    a->claim = mg_strdup(c->token_auth_claim);
    if (rc == 0 && auth_str_set(c->token_audience_claim) != auth_str_set(c->token_audience)) {
        mg_set_err(err, errlen,
                   "%s: key '%s': set 'tokenAudienceClaim' and 'tokenAudience' together", file,
                   auth_str_set(c->token_audience) ? "tokenAudienceClaim" : "tokenAudience");
        rc = -MG_EINVAL;
    }
    if (auth_str_set(c->token_audience_claim)) {
        a->aud_claim = mg_strdup(c->token_audience_claim);
        a->aud = mg_strdup(c->token_audience);
    }
    a->token = token;
    a->tls = tls;
    if (rc == 0 && a->enabled && !token && !tls) {
        mg_set_err(err, errlen,
                   "%s: key 'authenticationProviders': authenticationEnabled=true needs a provider "
                   "(%s or %s)",
                   file, AUTH_PROVIDER_TOKEN, AUTH_PROVIDER_TLS);
        rc = -MG_EINVAL;
    }
    a->authz = c->authorization_enabled;
    if (rc == 0 && a->authz && !a->enabled) { /* as Pulsar's PulsarService refuses it */
        mg_set_err(err, errlen,
                   "%s: key 'authorizationEnabled': authorizationEnabled=true needs "
                   "authenticationEnabled=true",
                   file);
        rc = -MG_EINVAL;
    }
    if (rc == 0 && a->enabled && token)
        rc = auth_load_keys(a, c, file, err, errlen);
    if (rc == 0 && auth_str_set(c->broker_client_auth_plugin)) {
        char why[300] = "", *t = NULL;
        int crc = auth_client_token(c->broker_client_auth_plugin, c->broker_client_auth_params, &t,
                                    why, sizeof why);
        if (crc < 0) {
            mg_set_err(err, errlen, "%s: key '%s': %s", file,
                       crc == -MG_ENOTSUP ? "brokerClientAuthenticationPlugin"
                                          : "brokerClientAuthenticationParameters",
                       why);
            rc = -MG_EINVAL;
        } else {
            a->client_authz = mg_asprintf("Bearer %s", t);
            mg_free(t);
        }
    }
    if (rc < 0) {
        auth_free(a);
        return rc;
    }
    *out = a;
    return 0;
}

void auth_free(struct auth *a)
{
    if (!a)
        return;
    mg_free_strv(a->supers, (int)a->nsupers);
    if (a->secret)
        OPENSSL_cleanse(a->secret, a->secret_len);
    mg_free(a->secret);
    EVP_PKEY_free(a->pub);
    mg_free(a->claim);
    mg_free(a->aud_claim);
    mg_free(a->aud);
    mg_free(a->client_authz);
    mg_free(a);
}

bool auth_enabled(const struct auth *a)
{
    return a != NULL && a->enabled;
}

uint64_t auth_refresh_ms(const struct auth *a)
{
    return a ? a->refresh_ms : 60000;
}

bool auth_warn_if_open(const struct auth *a, const char *bind_address)
{
    if (auth_enabled(a))
        return false;
    const char *b = bind_address ? bind_address : "";
    struct in_addr v4;
    struct in6_addr v6;
    bool loopback = strcmp(b, "localhost") == 0 ||
                    (inet_pton(AF_INET, b, &v4) == 1 && (ntohl(v4.s_addr) >> 24) == 127) ||
                    (inet_pton(AF_INET6, b, &v6) == 1 && IN6_IS_ADDR_LOOPBACK(&v6));
    if (loopback)
        return false;
    MG_WARN("auth",
            "authentication is off and bindAddress is %s (not loopback): whoever reaches the "
            "ports may read, write and delete every topic and tenant; set "
            "authenticationEnabled=true and authenticationProviders (token: tokenSecretKey or "
            "tokenPublicKey; tls: tlsTrustCertsFilePath), authorizationEnabled=true with "
            "superUserRoles, and brokerServicePortTls/webServicePortTls with "
            "tlsCertificateFilePath and tlsKeyFilePath",
            b[0] ? b : "(all addresses)");
    return true;
}

bool auth_tls_enabled(const struct auth *a)
{
    return auth_enabled(a) && a->tls;
}

bool auth_metrics_protected(const struct auth *a)
{
    return auth_enabled(a) && a->metrics_protected;
}

bool auth_authz_enabled(const struct auth *a)
{
    return auth_enabled(a) && a->authz;
}

bool auth_is_super_user(const struct auth *a, const char *role)
{
    if (!a || !role)
        return false;
    for (size_t i = 0; i < a->nsupers; i++)
        if (strcmp(a->supers[i], role) == 0)
            return true;
    return false;
}

void auth_id_fini(struct auth_id *id)
{
    mg_free(id->role);
    memset(id, 0, sizeof *id);
}

/* ---- token checks -------------------------------------------------------------------------- */

/* The three parts of a compact JWS. */
struct auth_jws {
    const char *tok;
    size_t len;
    size_t dot1, dot2; /* positions of the two dots */
};

static int auth_jws_split(const char *tok, size_t len, struct auth_jws *j, char *why, size_t whylen)
{
    if (len == 0) {
        mg_set_err(why, whylen, "empty token");
        return -MG_EAUTH;
    }
    if (len > AUTH_TOKEN_MAX) {
        mg_set_err(why, whylen, "token of %zu bytes, more than %d", len, AUTH_TOKEN_MAX);
        return -MG_EAUTH;
    }
    const char *d1 = memchr(tok, '.', len);
    const char *d2 = d1 ? memchr(d1 + 1, '.', len - (size_t)(d1 + 1 - tok)) : NULL;
    if (!d1 || !d2 || memchr(d2 + 1, '.', len - (size_t)(d2 + 1 - tok))) {
        mg_set_err(why, whylen, "not a signed JWT (header.payload.signature)");
        return -MG_EAUTH;
    }
    j->tok = tok;
    j->len = len;
    j->dot1 = (size_t)(d1 - tok);
    j->dot2 = (size_t)(d2 - tok);
    return 0;
}

/* Decode a JSON object part; NULL with why filled otherwise. */
static json_t *auth_json_part(const char *s, size_t n, const char *what, char *why, size_t whylen)
{
    unsigned char *d = NULL;
    size_t dl = 0;
    if (auth_b64_decode(s, n, true, &d, &dl) < 0) {
        mg_set_err(why, whylen, "the %s is not base64url", what);
        return NULL;
    }
    json_error_t je;
    json_t *j = json_loadb((const char *)d, dl, JSON_REJECT_DUPLICATES, &je);
    mg_free(d);
    if (!j || !json_is_object(j)) {
        json_decref(j);
        mg_set_err(why, whylen, "the %s is not a JSON object", what);
        return NULL;
    }
    return j;
}

static bool auth_hmac_verify(const struct auth_alg *alg, const unsigned char *key, size_t keylen,
                             const unsigned char *in, size_t inlen, const unsigned char *sig,
                             size_t siglen)
{
    unsigned char mac[EVP_MAX_MD_SIZE];
    unsigned int maclen = 0;
    const EVP_MD *md = EVP_get_digestbyname(alg->md);
    if (!md || !HMAC(md, key, (int)keylen, in, inlen, mac, &maclen))
        return false;
    return siglen == maclen && CRYPTO_memcmp(mac, sig, maclen) == 0;
}

/* JOSE ECDSA signature r||s -> DER; NULL when the size is wrong. */
static unsigned char *auth_es_to_der(const struct auth_alg *alg, const unsigned char *sig,
                                     size_t siglen, int *derlen)
{
    if (siglen != 2 * alg->size)
        return NULL;
    ECDSA_SIG *es = ECDSA_SIG_new();
    BIGNUM *r = BN_bin2bn(sig, (int)alg->size, NULL);
    BIGNUM *s = BN_bin2bn(sig + alg->size, (int)alg->size, NULL);
    if (!es || !r || !s || !ECDSA_SIG_set0(es, r, s)) {
        BN_free(r);
        BN_free(s);
        ECDSA_SIG_free(es);
        return NULL;
    }
    unsigned char *der = NULL;
    *derlen = i2d_ECDSA_SIG(es, &der);
    ECDSA_SIG_free(es);
    return *derlen > 0 ? der : NULL;
}

static bool auth_pkey_verify(const struct auth_alg *alg, EVP_PKEY *key, const unsigned char *in,
                             size_t inlen, const unsigned char *sig, size_t siglen)
{
    const EVP_MD *md = EVP_get_digestbyname(alg->md);
    unsigned char *der = NULL;
    int derlen = 0;
    if (alg->family == AUTH_ES) {
        der = auth_es_to_der(alg, sig, siglen, &derlen);
        if (!der)
            return false;
        sig = der;
        siglen = (size_t)derlen;
    }
    EVP_MD_CTX *ctx = EVP_MD_CTX_new();
    EVP_PKEY_CTX *pctx = NULL;
    bool ok = ctx && md && EVP_DigestVerifyInit(ctx, &pctx, md, NULL, key) == 1;
    if (ok && alg->family == AUTH_PS)
        ok = EVP_PKEY_CTX_set_rsa_padding(pctx, RSA_PKCS1_PSS_PADDING) > 0 &&
             EVP_PKEY_CTX_set_rsa_pss_saltlen(pctx, RSA_PSS_SALTLEN_DIGEST) > 0;
    ok = ok && EVP_DigestVerify(ctx, sig, siglen, in, inlen) == 1;
    EVP_MD_CTX_free(ctx);
    OPENSSL_free(der);
    return ok;
}

/* A NumericDate claim in ms: 1 and *ms, 0 when absent, -1 when not a number. */
static int auth_date_claim(json_t *claims, const char *name, int64_t *ms)
{
    json_t *v = json_object_get(claims, name);
    if (!v || json_is_null(v))
        return 0;
    if (!json_is_number(v))
        return -1;
    double d = json_number_value(v);
    if (d != d || d < -1e13 || d > 1e13) /* NaN, or beyond any date a clock reaches */
        return -1;
    *ms = (int64_t)(d * 1000.0);
    return 1;
}

static int auth_check_claims(const struct auth *a, json_t *claims, int64_t now_ms,
                             struct auth_id *id, char *why, size_t whylen)
{
    int64_t exp = 0, nbf = 0;
    int he = auth_date_claim(claims, "exp", &exp);
    int hn = auth_date_claim(claims, "nbf", &nbf);
    if (he < 0 || hn < 0) {
        mg_set_err(why, whylen, "claim '%s' is not a number", he < 0 ? "exp" : "nbf");
        return -MG_EAUTH;
    }
    if (he > 0 && now_ms > exp) {
        mg_set_err(why, whylen, "token expired %lld ms ago", (long long)(now_ms - exp));
        return -MG_EAUTH;
    }
    if (hn > 0 && now_ms < nbf) {
        mg_set_err(why, whylen, "token not valid for another %lld ms (nbf)",
                   (long long)(nbf - now_ms));
        return -MG_EAUTH;
    }
    if (a->aud_claim) {
        json_t *v = json_object_get(claims, a->aud_claim);
        bool ok = json_is_string(v) && strcmp(json_string_value(v), a->aud) == 0;
        size_t i;
        json_t *e;
        if (json_is_array(v))
            json_array_foreach(v, i, e) ok =
                ok || (json_is_string(e) && strcmp(json_string_value(e), a->aud) == 0);
        if (!ok) {
            mg_set_err(why, whylen, "claim '%s' does not hold the audience '%s'", a->aud_claim,
                       a->aud);
            return -MG_EAUTH;
        }
    }
    json_t *r = json_object_get(claims, a->claim);
    if (json_is_array(r))
        r = json_array_get(r, 0);
    if (!json_is_string(r) || json_string_length(r) == 0 ||
        strlen(json_string_value(r)) != json_string_length(r)) {
        mg_set_err(why, whylen, "no role in claim '%s'", a->claim);
        return -MG_EAUTH;
    }
    id->role = mg_strdup(json_string_value(r));
    id->exp_ms = he > 0 ? (exp > 0 ? exp : 1) : 0;
    return 0;
}

static int auth_check_token(const struct auth *a, const char *tok, size_t len, int64_t now_ms,
                            struct auth_id *id, char *why, size_t whylen)
{
    struct auth_jws j;
    int rc = auth_jws_split(tok, len, &j, why, whylen);
    if (rc < 0)
        return rc;
    json_t *hdr = auth_json_part(tok, j.dot1, "header", why, whylen);
    if (!hdr)
        return -MG_EAUTH;
    json_t *av = json_object_get(hdr, "alg");
    const struct auth_alg *alg = json_is_string(av) ? auth_alg_find(json_string_value(av)) : NULL;
    char algname[16];
    snprintf(algname, sizeof algname, "%s", json_is_string(av) ? json_string_value(av) : "?");
    json_decref(hdr);
    if (!alg) {
        mg_set_err(why, whylen, "algorithm '%s' refused (a signed token is required)", algname);
        return -MG_EAUTH;
    }
    unsigned char *sig = NULL;
    size_t siglen = 0;
    if (auth_b64_decode(tok + j.dot2 + 1, len - j.dot2 - 1, true, &sig, &siglen) < 0) {
        mg_set_err(why, whylen, "the signature is not base64url");
        return -MG_EAUTH;
    }
    const unsigned char *in = (const unsigned char *)tok;
    bool ok;
    if (alg->family == AUTH_HS) {
        if (!a->secret) {
            mg_set_err(why, whylen, "%s token, but the broker has no tokenSecretKey", alg->name);
            mg_free(sig);
            return -MG_EAUTH;
        }
        if (a->secret_len < alg->size) {
            mg_set_err(why, whylen, "%s needs a key of %zu bytes, tokenSecretKey has %zu",
                       alg->name, alg->size, a->secret_len);
            mg_free(sig);
            return -MG_EAUTH;
        }
        ok = auth_hmac_verify(alg, a->secret, a->secret_len, in, j.dot2, sig, siglen);
    } else {
        enum auth_family fam = alg->family == AUTH_PS ? AUTH_RS : alg->family;
        if (!a->pub || fam != a->pub_fam ||
            (fam == AUTH_ES && EVP_PKEY_get_bits(a->pub) != alg->curve_bits)) {
            mg_set_err(why, whylen, "%s token, but tokenPublicKey cannot check it", alg->name);
            mg_free(sig);
            return -MG_EAUTH;
        }
        ok = auth_pkey_verify(alg, a->pub, in, j.dot2, sig, siglen);
    }
    mg_free(sig);
    if (!ok) {
        mg_set_err(why, whylen, "%s signature does not verify", alg->name);
        return -MG_EAUTH;
    }
    json_t *claims = auth_json_part(tok + j.dot1 + 1, j.dot2 - j.dot1 - 1, "payload", why, whylen);
    if (!claims)
        return -MG_EAUTH;
    rc = auth_check_claims(a, claims, now_ms, id, why, whylen);
    json_decref(claims);
    return rc;
}

int auth_check(const struct auth *a, const char *method, const void *data, size_t len,
               int64_t now_ms, struct auth_id *id, char *why, size_t whylen)
{
    memset(id, 0, sizeof *id);
    if (!auth_enabled(a)) {
        mg_set_err(why, whylen, "authentication is not enabled");
        return -MG_EAUTH;
    }
    if (!method || strcmp(method, AUTH_METHOD_TOKEN) != 0 || !a->token) {
        mg_set_err(why, whylen, "unknown authentication method '%s'", method ? method : "none");
        return -MG_EAUTH;
    }
    if (!data) {
        mg_set_err(why, whylen, "no token");
        return -MG_EAUTH;
    }
    return auth_check_token(a, data, len, now_ms, id, why, whylen);
}

int auth_client_token(const char *plugin, const char *params, char **token, char *err,
                      size_t errlen)
{
    *token = NULL;
    if (!plugin && !params)
        return 0;
    if (!plugin ||
        (strcmp(plugin, AUTH_METHOD_TOKEN) != 0 && strcmp(plugin, AUTH_CLIENT_TOKEN) != 0)) {
        mg_set_err(err, errlen, "'%s' is not supported (%s is)", plugin ? plugin : "",
                   AUTH_CLIENT_TOKEN);
        return -MG_ENOTSUP;
    }
    const char *p = params ? params : "";
    char *t;
    if (strncmp(p, "token:", 6) == 0) {
        t = mg_strdup(p + 6);
    } else if (strncmp(p, "file:", 5) == 0) {
        unsigned char *bytes;
        size_t len;
        if (auth_key_read(p, &bytes, &len, err, errlen) < 0)
            return -MG_EINVAL;
        size_t b = 0;
        while (b < len && isspace(bytes[b]))
            b++;
        while (len > b && isspace(bytes[len - 1]))
            len--;
        t = mg_strndup((const char *)bytes + b, len - b);
        mg_free(bytes);
    } else {
        json_t *j = p[0] == '{' ? json_loads(p, 0, NULL) : NULL;
        const char *v = json_string_value(json_object_get(j, "token"));
        t = v ? mg_strdup(v) : NULL;
        json_decref(j);
        if (!t) {
            mg_set_err(err, errlen,
                       "expected token:TOKEN, file:///path or {\"token\":\"TOKEN\"}, got '%s'", p);
            return -MG_EINVAL;
        }
    }
    if (!t[0] || strpbrk(t, "\r\n")) {
        mg_set_err(err, errlen, "the token is %s", t[0] ? "not one line" : "empty");
        mg_free(t);
        return -MG_EINVAL;
    }
    *token = t;
    return 0;
}

const char *auth_broker_client_authorization(const struct auth *a)
{
    return a ? a->client_authz : NULL;
}

int auth_check_cert(const struct auth *a, X509 *cert, bool trusted, struct auth_id *id, char *why,
                    size_t whylen)
{
    memset(id, 0, sizeof *id);
    if (!auth_tls_enabled(a)) {
        mg_set_err(why, whylen, "the tls provider is not configured");
        return -MG_EAUTH;
    }
    if (!cert) {
        mg_set_err(why, whylen, "Failed to get TLS certificates from client");
        return -MG_EAUTH;
    }
    if (!trusted) {
        mg_set_err(why, whylen, "the client certificate is not trusted (tlsTrustCertsFilePath)");
        return -MG_EAUTH;
    }
    id->role = tls_cert_subject_attr(cert, NID_commonName); /* Pulsar's first CN= */
    if (!id->role) {
        mg_set_err(why, whylen, "Client unable to authenticate with TLS certificate (no CN)");
        return -MG_EAUTH;
    }
    return 0;
}

int auth_check_http(const struct auth *a, const char *authorization, int64_t now_ms,
                    struct auth_id *id, char *why, size_t whylen)
{
    static const char bearer[] = "Bearer ";
    memset(id, 0, sizeof *id);
    if (!authorization) {
        mg_set_err(why, whylen, "no Authorization header");
        return -MG_EAUTH;
    }
    if (strncmp(authorization, bearer, sizeof bearer - 1) != 0) {
        mg_set_err(why, whylen, "the Authorization header is not 'Bearer <token>'");
        return -MG_EAUTH;
    }
    const char *t = authorization + sizeof bearer - 1;
    return auth_check(a, AUTH_METHOD_TOKEN, t, strnlen(t, AUTH_TOKEN_MAX + 1), now_ms, id, why,
                      whylen);
}

/* ---- making keys and tokens ------------------------------------------------------------------ */

int auth_secret_key_new(const char *alg, unsigned char **key, size_t *len)
{
    const struct auth_alg *a = auth_alg_find(alg);
    if (!a || a->family != AUTH_HS)
        return -MG_EINVAL;
    unsigned char *k = mg_malloc(a->size);
    if (RAND_bytes(k, (int)a->size) != 1) {
        mg_free(k);
        return -MG_EIO;
    }
    *key = k;
    *len = a->size;
    return 0;
}

static unsigned char *auth_dup_openssl(unsigned char *d, int n, size_t *len)
{
    unsigned char *o = mg_malloc((size_t)n);
    memcpy(o, d, (size_t)n);
    OPENSSL_free(d);
    *len = (size_t)n;
    return o;
}

int auth_key_pair_new(const char *alg, unsigned char **priv, size_t *priv_len, unsigned char **pub,
                      size_t *pub_len, char *err, size_t errlen)
{
    const struct auth_alg *a = auth_alg_find(alg);
    if (!a || a->family == AUTH_HS) {
        mg_set_err(err, errlen, "'%s' is not an RS*, PS* or ES* algorithm", alg);
        return -MG_EINVAL;
    }
    EVP_PKEY *k = a->family == AUTH_ES ? EVP_PKEY_Q_keygen(NULL, NULL, "EC", a->crv)
                                       : EVP_PKEY_Q_keygen(NULL, NULL, "RSA", (size_t)2048);
    if (!k) {
        mg_set_err(err, errlen, "key generation failed");
        return -MG_EIO;
    }
    unsigned char *d = NULL;
    PKCS8_PRIV_KEY_INFO *p8 = EVP_PKEY2PKCS8(k);
    int n = p8 ? i2d_PKCS8_PRIV_KEY_INFO(p8, &d) : -1;
    PKCS8_PRIV_KEY_INFO_free(p8);
    unsigned char *pd = NULL;
    int pn = n > 0 ? i2d_PUBKEY(k, &pd) : -1;
    EVP_PKEY_free(k);
    if (n <= 0 || pn <= 0) {
        if (d)
            OPENSSL_clear_free(d, n > 0 ? (size_t)n : 0);
        OPENSSL_free(pd);
        mg_set_err(err, errlen, "key encoding failed");
        return -MG_EIO;
    }
    *priv = auth_dup_openssl(d, n, priv_len);
    *pub = auth_dup_openssl(pd, pn, pub_len);
    return 0;
}

/* Sign in (n bytes) with k for alg: the JOSE signature bytes (mg_free), or NULL. */
static unsigned char *auth_pkey_sign(const struct auth_alg *alg, EVP_PKEY *k,
                                     const unsigned char *in, size_t n, size_t *siglen)
{
    const EVP_MD *md = EVP_get_digestbyname(alg->md);
    EVP_MD_CTX *ctx = EVP_MD_CTX_new();
    EVP_PKEY_CTX *pctx = NULL;
    unsigned char *sig = NULL;
    size_t sl = 0;
    bool ok = ctx && md && EVP_DigestSignInit(ctx, &pctx, md, NULL, k) == 1;
    if (ok && alg->family == AUTH_PS)
        ok = EVP_PKEY_CTX_set_rsa_padding(pctx, RSA_PKCS1_PSS_PADDING) > 0 &&
             EVP_PKEY_CTX_set_rsa_pss_saltlen(pctx, RSA_PSS_SALTLEN_DIGEST) > 0;
    ok = ok && EVP_DigestSign(ctx, NULL, &sl, in, n) == 1;
    if (ok) {
        sig = mg_malloc(sl);
        ok = EVP_DigestSign(ctx, sig, &sl, in, n) == 1;
    }
    EVP_MD_CTX_free(ctx);
    if (!ok) {
        mg_free(sig);
        return NULL;
    }
    if (alg->family != AUTH_ES) {
        *siglen = sl;
        return sig;
    }
    /* DER ECDSA-Sig-Value -> r||s, each left-padded to the curve's size */
    const unsigned char *p = sig;
    ECDSA_SIG *es = d2i_ECDSA_SIG(NULL, &p, (long)sl);
    mg_free(sig);
    if (!es)
        return NULL;
    unsigned char *o = mg_calloc(2, alg->size);
    bool fit = BN_bn2binpad(ECDSA_SIG_get0_r(es), o, (int)alg->size) > 0 &&
               BN_bn2binpad(ECDSA_SIG_get0_s(es), o + alg->size, (int)alg->size) > 0;
    ECDSA_SIG_free(es);
    if (!fit) {
        mg_free(o);
        return NULL;
    }
    *siglen = 2 * alg->size;
    return o;
}

int auth_token_sign(const char *algname, const unsigned char *key, size_t len, const char *subject,
                    int64_t exp_s, char **token, char *err, size_t errlen)
{
    const struct auth_alg *alg = auth_alg_find(algname);
    if (!alg) {
        mg_set_err(err, errlen, "unknown algorithm '%s'", algname);
        return -MG_EINVAL;
    }
    json_t *h = json_pack("{s:s}", "alg", alg->name);
    json_t *c = json_pack("{s:s}", "sub", subject);
    if (exp_s > 0)
        json_object_set_new(c, "exp", json_integer(exp_s));
    char *hs = json_dumps(h, JSON_COMPACT);
    char *cs = json_dumps(c, JSON_COMPACT);
    json_decref(h);
    json_decref(c);
    char *h64 = auth_b64url_encode((const unsigned char *)hs, strlen(hs));
    char *c64 = auth_b64url_encode((const unsigned char *)cs, strlen(cs));
    free(hs);
    free(cs);
    char *in = mg_asprintf("%s.%s", h64, c64);
    mg_free(h64);
    mg_free(c64);
    unsigned char *sig = NULL;
    size_t siglen = 0;
    if (alg->family == AUTH_HS) {
        if (len < alg->size) {
            mg_set_err(err, errlen, "%s needs a secret key of at least %zu bytes, this one has %zu",
                       alg->name, alg->size, len);
        } else {
            unsigned int ml = 0;
            sig = mg_malloc(EVP_MAX_MD_SIZE);
            if (!HMAC(EVP_get_digestbyname(alg->md), key, (int)len, (const unsigned char *)in,
                      strlen(in), sig, &ml)) {
                mg_free(sig);
                sig = NULL;
                mg_set_err(err, errlen, "HMAC failed");
            }
            siglen = ml;
        }
    } else {
        EVP_PKEY *k = auth_priv_parse(key, len);
        int id = k ? EVP_PKEY_get_base_id(k) : 0;
        if (!k)
            mg_set_err(err, errlen, "not a private key (PKCS#8 DER, or PEM)");
        else if ((alg->family == AUTH_ES) != (id == EVP_PKEY_EC) ||
                 (alg->family == AUTH_ES && EVP_PKEY_get_bits(k) != alg->curve_bits))
            mg_set_err(err, errlen, "%s does not fit this private key", alg->name);
        else if (!(sig = auth_pkey_sign(alg, k, (const unsigned char *)in, strlen(in), &siglen)))
            mg_set_err(err, errlen, "signing failed");
        EVP_PKEY_free(k);
    }
    if (!sig) {
        mg_free(in);
        return -MG_EINVAL;
    }
    char *s64 = auth_b64url_encode(sig, siglen);
    mg_free(sig);
    *token = mg_asprintf("%s.%s", in, s64);
    mg_free(in);
    mg_free(s64);
    return 0;
}

int auth_token_decode(const char *token, char **header, char **payload, char *err, size_t errlen)
{
    struct auth_jws j;
    int rc = auth_jws_split(token, strlen(token), &j, err, errlen);
    if (rc < 0)
        return rc;
    unsigned char *h = NULL, *p = NULL;
    size_t hl, pl;
    if (auth_b64_decode(token, j.dot1, true, &h, &hl) < 0 ||
        auth_b64_decode(token + j.dot1 + 1, j.dot2 - j.dot1 - 1, true, &p, &pl) < 0) {
        mg_free(h);
        mg_set_err(err, errlen, "not base64url");
        return -MG_EAUTH;
    }
    *header = (char *)h;
    *payload = (char *)p;
    return 0;
}
