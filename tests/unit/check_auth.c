/*
 * check_auth.c - unit tests of the auth module: the configuration (every refusal names the
 * key and the file), Pulsar's key value forms, and token checks for each algorithm family
 * with every way a token can be wrong (alg none, another key, expired, not valid yet, not
 * JSON, oversized, no role). Keys are made by the test (auth_secret_key_new,
 * auth_key_pair_new); tokens with hand-made claims are signed with OpenSSL's HMAC
 * (tl_jwt.h).
 */
#include "auth/auth.h"
#include "config/cfg.h"
#include "lib/tl.h"
#include "lib/tl_jwt.h"
#include "lib/tl_svc.h"
#include "util/alloc.h"
#include "util/err.h"

#include <check.h>
#include <openssl/evp.h>
#include <openssl/x509.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#define NOW_MS ((int64_t)1700000000000) /* the clock the checks are run at */

static struct cfg cfg;
static struct auth *au;
static char err[512];
static char *tmpdir;

static void setup(void)
{
    tl_cfg_tmp_init(&cfg, &tmpdir, "check_auth");
    au = NULL;
    err[0] = '\0';
}

static void teardown(void)
{
    auth_free(au);
    au = NULL;
    tl_cfg_tmp_fini(&cfg, &tmpdir);
}

static void set(const char *key, const char *value)
{
    tl_cfg_set(&cfg, key, value);
}

/* "data:;base64,<b64 of key>" (mg_free). */
static char *data_url(const unsigned char *key, size_t len)
{
    char *b = mg_malloc((len + 2) / 3 * 4 + 1);
    EVP_EncodeBlock((unsigned char *)b, key, (int)len);
    char *u = mg_asprintf("data:;base64,%s", b);
    mg_free(b);
    return u;
}

/* A token with the given header and payload texts, HMAC-SHA256 signed with key (NULL: an
 * empty signature). */
static char *hs_token(const char *header, const char *payload, const unsigned char *key,
                      size_t keylen)
{
    return tl_jwt_hs256(header, payload, strlen(payload), key, keylen);
}

static unsigned char *secret;
static size_t secret_len;

/* Authentication on with a fresh HS256 secret. */
static void enable_hs(void)
{
    ck_assert_int_eq(auth_secret_key_new("HS256", &secret, &secret_len), 0);
    ck_assert_uint_eq(secret_len, 32);
    char *u = data_url(secret, secret_len);
    set("authenticationEnabled", "true");
    set("authenticationProviders", AUTH_PROVIDER_TOKEN);
    set("tokenSecretKey", u);
    mg_free(u);
    ck_assert_msg(auth_new(&cfg, &au, err, sizeof err) == 0, "%s", err);
}

static int check(const char *tok, struct auth_id *id)
{
    err[0] = '\0';
    return auth_check(au, "token", tok, strlen(tok), NOW_MS, id, err, sizeof err);
}

static void expect_refused(const char *tok, const char *why)
{
    struct auth_id id;
    ck_assert_int_eq(check(tok, &id), -MG_EAUTH);
    ck_assert_ptr_null(id.role);
    ck_assert_msg(strstr(err, why) != NULL, "reason '%s' lacks '%s'", err, why);
}

/* The token of header and payload, signed with key (NULL: not signed), is refused for why. */
static void expect_token_refused(const char *header, const char *payload, const unsigned char *key,
                                 size_t keylen, const char *why)
{
    char *t = hs_token(header, payload, key, keylen);
    expect_refused(t, why);
    mg_free(t);
}

/* The HS256 token of payload, signed with the secret, is accepted as role. */
static void expect_token_role(const char *payload, const char *role)
{
    char *t = hs_token("{\"alg\":\"HS256\"}", payload, secret, secret_len);
    struct auth_id id;
    ck_assert_msg(check(t, &id) == 0, "%s", err);
    ck_assert_str_eq(id.role, role);
    auth_id_fini(&id);
    mg_free(t);
}

START_TEST(test_hs256_role)
{
    enable_hs();
    char *t = NULL;
    ck_assert_int_eq(auth_token_sign("HS256", secret, secret_len, "alice", 0, &t, err, sizeof err),
                     0);
    struct auth_id id;
    ck_assert_msg(check(t, &id) == 0, "%s", err);
    ck_assert_str_eq(id.role, "alice");
    ck_assert_int_eq(id.exp_ms, 0);
    auth_id_fini(&id);
    /* the same over HTTP */
    char *h = mg_asprintf("Bearer %s", t);
    ck_assert_int_eq(auth_check_http(au, h, NOW_MS, &id, err, sizeof err), 0);
    ck_assert_str_eq(id.role, "alice");
    auth_id_fini(&id);
    ck_assert_int_eq(auth_check_http(au, NULL, NOW_MS, &id, err, sizeof err), -MG_EAUTH);
    ck_assert_int_eq(auth_check_http(au, t, NOW_MS, &id, err, sizeof err), -MG_EAUTH);
    /* an unknown method, or none */
    ck_assert_int_eq(auth_check(au, "tls", t, strlen(t), NOW_MS, &id, err, sizeof err), -MG_EAUTH);
    ck_assert_int_eq(auth_check(au, NULL, t, strlen(t), NOW_MS, &id, err, sizeof err), -MG_EAUTH);
    mg_free(h);
    mg_free(t);
    mg_free(secret);
}
END_TEST

/* Sign with a fresh pair of alg; the broker has the public key: accepted; a token of another
 * pair of the same alg: refused. */
static void check_pair(const char *alg)
{
    unsigned char *priv, *pub, *priv2, *pub2;
    size_t pl, ul, pl2, ul2;
    ck_assert_int_eq(auth_key_pair_new(alg, &priv, &pl, &pub, &ul, err, sizeof err), 0);
    ck_assert_int_eq(auth_key_pair_new(alg, &priv2, &pl2, &pub2, &ul2, err, sizeof err), 0);
    char *u = data_url(pub, ul);
    set("authenticationEnabled", "true");
    set("authenticationProviders", "token");
    set("tokenPublicKey", u);
    set("tokenPublicAlg", alg);
    mg_free(u);
    ck_assert_msg(auth_new(&cfg, &au, err, sizeof err) == 0, "%s", err);
    char *t = NULL, *t2 = NULL;
    int64_t exp = NOW_MS / 1000 + 3600;
    ck_assert_msg(auth_token_sign(alg, priv, pl, "bob", exp, &t, err, sizeof err) == 0, "%s", err);
    ck_assert_int_eq(auth_token_sign(alg, priv2, pl2, "bob", 0, &t2, err, sizeof err), 0);
    struct auth_id id;
    ck_assert_msg(check(t, &id) == 0, "%s: %s", alg, err);
    ck_assert_str_eq(id.role, "bob");
    ck_assert_int_eq(id.exp_ms, exp * 1000);
    auth_id_fini(&id);
    expect_refused(t2, "does not verify");
    /* HS256 signed with the public key's bytes (algorithm confusion) */
    char *conf = hs_token("{\"alg\":\"HS256\"}", "{\"sub\":\"bob\"}", pub, ul);
    expect_refused(conf, "no tokenSecretKey");
    mg_free(conf);
    mg_free(t);
    mg_free(t2);
    mg_free(priv);
    mg_free(pub);
    mg_free(priv2);
    mg_free(pub2);
}

START_TEST(test_rs256)
{
    check_pair("RS256");
}
END_TEST

START_TEST(test_es256)
{
    check_pair("ES256");
}
END_TEST

START_TEST(test_ps256)
{
    check_pair("PS256");
}
END_TEST

START_TEST(test_expired_and_future)
{
    enable_hs();
    char pl[128];
    snprintf(pl, sizeof pl, "{\"sub\":\"a\",\"exp\":%lld}", (long long)(NOW_MS / 1000 - 5));
    expect_token_refused("{\"alg\":\"HS256\"}", pl, secret, secret_len, "expired");
    snprintf(pl, sizeof pl, "{\"sub\":\"a\",\"exp\":%lld}", (long long)(NOW_MS / 1000 + 5));
    char *t = hs_token("{\"alg\":\"HS256\"}", pl, secret, secret_len);
    struct auth_id id;
    ck_assert_msg(check(t, &id) == 0, "%s", err);
    ck_assert_int_eq(id.exp_ms, NOW_MS + 5000);
    auth_id_fini(&id);
    mg_free(t);
    snprintf(pl, sizeof pl, "{\"sub\":\"a\",\"nbf\":%lld}", (long long)(NOW_MS / 1000 + 60));
    expect_token_refused("{\"alg\":\"HS256\"}", pl, secret, secret_len, "nbf");
    expect_token_refused("{\"alg\":\"HS256\"}", "{\"sub\":\"a\",\"exp\":\"tomorrow\"}", secret,
                         secret_len, "not a number");
    mg_free(secret);
}
END_TEST

START_TEST(test_alg_none_and_wrong_key)
{
    enable_hs();
    expect_token_refused("{\"alg\":\"none\"}", "{\"sub\":\"root\"}", NULL, 0, "'none' refused");
    expect_token_refused("{\"alg\":\"none\"}", "{\"sub\":\"root\"}", secret, secret_len,
                         "'none' refused");
    expect_token_refused("{\"typ\":\"JWT\"}", "{\"sub\":\"root\"}", secret, secret_len, "refused");
    unsigned char other[32];
    memcpy(other, secret, sizeof other);
    other[0] ^= 1;
    expect_token_refused("{\"alg\":\"HS256\"}", "{\"sub\":\"root\"}", other, sizeof other,
                         "does not verify");
    /* HS512 with a 32-byte key: jjwt refuses a key shorter than the hash */
    char *t5 = NULL;
    unsigned char big[64];
    memset(big, 7, sizeof big);
    ck_assert_int_eq(auth_token_sign("HS512", big, sizeof big, "x", 0, &t5, err, sizeof err), 0);
    expect_refused(t5, "needs a key of 64 bytes");
    mg_free(t5);
    mg_free(secret);
}
END_TEST

START_TEST(test_malformed)
{
    enable_hs();
    /* a payload that is not JSON, correctly signed */
    expect_token_refused("{\"alg\":\"HS256\"}", "sub=root", secret, secret_len,
                         "payload is not a JSON object");
    expect_token_refused("{\"alg\":\"HS256\"}", "[\"root\"]", secret, secret_len,
                         "payload is not a JSON object");
    expect_token_refused("not json", "{\"sub\":\"root\"}", secret, secret_len,
                         "header is not a JSON object");
    expect_refused("abc", "not a signed JWT");
    expect_refused("a.b.c.d", "not a signed JWT");
    expect_refused("a*.b.c", "header is not base64url");
    expect_refused("", "empty");
    /* no role: missing, empty, a NUL inside */
    expect_token_refused("{\"alg\":\"HS256\"}", "{\"iss\":\"x\"}", secret, secret_len, "no role");
    expect_token_refused("{\"alg\":\"HS256\"}", "{\"sub\":\"\"}", secret, secret_len, "no role");
    expect_token_refused("{\"alg\":\"HS256\"}", "{\"sub\":\"a\\u0000b\"}", secret, secret_len,
                         "payload"); /* jansson refuses \u0000 */
    mg_free(secret);
}
END_TEST

/* A 1 MB token is refused before any decoding: the reason names the size bound (the cost is
 * not timed here; the reason shows the size check ran first). */
START_TEST(test_huge_token_cheap)
{
    enable_hs();
    size_t n = 1024 * 1024;
    char *big = mg_malloc(n + 1);
    memset(big, 'A', n);
    big[100] = '.';
    big[200] = '.';
    big[n] = '\0';
    struct auth_id id;
    ck_assert_int_eq(auth_check(au, "token", big, n, NOW_MS, &id, err, sizeof err), -MG_EAUTH);
    ck_assert_msg(strstr(err, "more than") != NULL, "%s", err);
    mg_free(big);
    mg_free(secret);
}
END_TEST

START_TEST(test_role_claim_and_audience)
{
    set("tokenAuthClaim", "roles");
    set("tokenAudienceClaim", "aud");
    set("tokenAudience", "brokers");
    enable_hs();
    expect_token_role("{\"sub\":\"no\",\"roles\":[\"ops\",\"dev\"],\"aud\":[\"x\",\"brokers\"]}",
                      "ops");
    expect_token_role("{\"roles\":\"ops\",\"aud\":\"brokers\"}", "ops");
    expect_token_refused("{\"alg\":\"HS256\"}", "{\"roles\":\"ops\",\"aud\":\"others\"}", secret,
                         secret_len, "audience");
    mg_free(secret);
}
END_TEST

static void expect_cfg_error(const char *want1, const char *want2)
{
    err[0] = '\0';
    ck_assert_int_eq(auth_new(&cfg, &au, err, sizeof err), -MG_EINVAL);
    ck_assert_msg(strstr(err, want1) && strstr(err, want2), "'%s' lacks '%s' or '%s'", err, want1,
                  want2);
}

START_TEST(test_config_errors)
{
    cfg.file = mg_strdup("/etc/broker.yaml");
    set("authenticationProviders", "org.example.Nope");
    expect_cfg_error("/etc/broker.yaml: key 'authenticationProviders'", "'org.example.Nope'");
    set("authenticationProviders", AUTH_PROVIDER_TOKEN);
    /* off: no key needed, nothing read */
    ck_assert_int_eq(auth_new(&cfg, &au, err, sizeof err), 0);
    ck_assert(!auth_enabled(au));
    auth_free(au);
    au = NULL;
    set("authenticationEnabled", "true");
    expect_cfg_error("/etc/broker.yaml", "needs 'tokenSecretKey' or 'tokenPublicKey'");
    set("tokenSecretKey", "data:;base64,c2hvcnQ=");
    expect_cfg_error("key 'tokenSecretKey'", "at least 32");
    set("tokenSecretKey", "file:///nonexistent/key");
    expect_cfg_error("key 'tokenSecretKey'", "/nonexistent/key");
    set("tokenSecretKey", "");
    unsigned char *priv, *pub;
    size_t pl, ul;
    ck_assert_int_eq(auth_key_pair_new("ES256", &priv, &pl, &pub, &ul, err, sizeof err), 0);
    char *u = data_url(pub, ul);
    set("tokenPublicKey", u); /* an EC key with the default RS256 */
    expect_cfg_error("key 'tokenPublicAlg'", "EC key");
    set("tokenPublicAlg", "HS256");
    expect_cfg_error("key 'tokenPublicAlg'", "key pairs");
    set("tokenPublicAlg", "ES256");
    set("tokenAudience", "x");
    expect_cfg_error("key 'tokenAudienceClaim'", "together");
    set("tokenAudienceClaim", "aud");
    set("superUserRoles", " admin , ops,,");
    ck_assert_msg(auth_new(&cfg, &au, err, sizeof err) == 0, "%s", err);
    ck_assert(auth_enabled(au));
    ck_assert(auth_is_super_user(au, "admin"));
    ck_assert(auth_is_super_user(au, "ops"));
    ck_assert(!auth_is_super_user(au, "dev"));
    ck_assert(!auth_is_super_user(au, ""));
    ck_assert_uint_eq(auth_refresh_ms(au), 60000);
    ck_assert(!auth_metrics_protected(au));
    mg_free(u);
    mg_free(priv);
    mg_free(pub);
}
END_TEST

/* file:// gives the file's bytes as they are: a base64 text file is NOT decoded (Pulsar);
 * data:;base64, is decoded; a plain path is read; bare base64 is decoded. */
START_TEST(test_key_forms)
{
    char *path = mg_asprintf("%s/key.b64", tmpdir);
    FILE *f = fopen(path, "wb");
    fputs("QUJD", f); /* base64 of "ABC" */
    fclose(f);
    char *url = mg_asprintf("file://%s", path);
    unsigned char *k = NULL;
    size_t n = 0;
    ck_assert_int_eq(auth_key_read(url, &k, &n, err, sizeof err), 0);
    ck_assert_uint_eq(n, 4);
    ck_assert_mem_eq(k, "QUJD", 4);
    mg_free(k);
    ck_assert_int_eq(auth_key_read(path, &k, &n, err, sizeof err), 0);
    ck_assert_uint_eq(n, 4);
    mg_free(k);
    ck_assert_int_eq(auth_key_read("data:;base64,QUJD", &k, &n, err, sizeof err), 0);
    ck_assert_uint_eq(n, 3);
    ck_assert_mem_eq(k, "ABC", 3);
    mg_free(k);
    ck_assert_int_eq(auth_key_read("QUJDRA==", &k, &n, err, sizeof err), 0);
    ck_assert_uint_eq(n, 4);
    ck_assert_mem_eq(k, "ABCD", 4);
    mg_free(k);
    ck_assert_int_eq(auth_key_read("not base64!", &k, &n, err, sizeof err), -MG_EINVAL);
    ck_assert_int_eq(auth_key_read("data:;base64,@@", &k, &n, err, sizeof err), -MG_EINVAL);
    mg_free(url);
    mg_free(path);
}
END_TEST

START_TEST(test_decode)
{
    char *t = hs_token("{\"alg\":\"HS256\"}", "{\"sub\":\"z\"}", (const unsigned char *)"k", 1);
    char *h = NULL, *p = NULL;
    ck_assert_int_eq(auth_token_decode(t, &h, &p, err, sizeof err), 0);
    ck_assert_str_eq(h, "{\"alg\":\"HS256\"}");
    ck_assert_str_eq(p, "{\"sub\":\"z\"}");
    mg_free(h);
    mg_free(p);
    mg_free(t);
    ck_assert_int_eq(auth_token_decode("x.y", &h, &p, err, sizeof err), -MG_EAUTH);
}
END_TEST

/* A client's --auth-plugin/--auth-params (pulsar-admin, pulsar-client, pulsar-perf): the
 * token plugin by either name, params token:, file:// (blanks around the token dropped) and
 * {"token":...}; anything else is one clear error. */
START_TEST(test_client_token_forms)
{
    const char *plugin = "org.apache.pulsar.client.impl.auth.AuthenticationToken";
    char *tok = (char *)"unset";
    ck_assert_int_eq(auth_client_token(NULL, NULL, &tok, err, sizeof err), 0);
    ck_assert_ptr_null(tok);
    ck_assert_int_eq(auth_client_token(plugin, "token:a.b.c", &tok, err, sizeof err), 0);
    ck_assert_str_eq(tok, "a.b.c");
    mg_free(tok);
    ck_assert_int_eq(auth_client_token("token", "{\"token\":\"x.y\"}", &tok, err, sizeof err), 0);
    ck_assert_str_eq(tok, "x.y");
    mg_free(tok);
    char path[] = "/tmp/check_auth_tokXXXXXX";
    int fd = mkstemp(path);
    ck_assert_int_ge(fd, 0);
    ck_assert_int_eq(write(fd, "  f.g.h\n", 8), 8);
    close(fd);
    char *params = mg_asprintf("file://%s", path);
    ck_assert_int_eq(auth_client_token(plugin, params, &tok, err, sizeof err), 0);
    ck_assert_str_eq(tok, "f.g.h");
    mg_free(tok);
    mg_free(params);
    unlink(path);
    static const struct {
        const char *plugin, *params, *needle;
    } bad[] = {
        {"org.apache.pulsar.client.impl.auth.AuthenticationTls", "x", "not supported"},
        {NULL, "token:x", "not supported"},
        {"token", "bogus", "expected token:TOKEN"},
        {"token", "token:", "empty"},
        {"token", "{\"tok\":1}", "expected token:TOKEN"},
        {"token", "file:///nonexistent/token", "/nonexistent/token"},
    };
    for (size_t i = 0; i < sizeof bad / sizeof *bad; i++) {
        tok = NULL;
        ck_assert_int_eq(auth_client_token(bad[i].plugin, bad[i].params, &tok, err, sizeof err),
                         i < 2 ? -MG_ENOTSUP : -MG_EINVAL);
        ck_assert_ptr_null(tok);
        ck_assert_msg(strstr(err, bad[i].needle) != NULL, "%s -> %s", bad[i].params, err);
    }
}
END_TEST

/* A self-signed certificate whose subject has the given RDNs in DER order, e.g.
 * {"O", "acme", "CN", "outer", "CN", "inner"} (n pairs); X509_free it. */
static X509 *cert_with(const char *const *rdn, int n)
{
    EVP_PKEY *k = EVP_PKEY_Q_keygen(NULL, NULL, "EC", "P-256");
    X509 *x = X509_new();
    X509_NAME *name = X509_get_subject_name(x);
    for (int i = 0; i < n; i++)
        X509_NAME_add_entry_by_txt(name, rdn[2 * i], MBSTRING_UTF8,
                                   (const unsigned char *)rdn[2 * i + 1], -1, -1, 0);
    X509_set_issuer_name(x, name);
    X509_set_pubkey(x, k);
    X509_gmtime_adj(X509_getm_notBefore(x), 0);
    X509_gmtime_adj(X509_getm_notAfter(x), 3600);
    ck_assert(X509_sign(x, k, EVP_sha256()) > 0);
    EVP_PKEY_free(k);
    return x;
}

/* The TLS provider (Pulsar's class name or "tls"): the role is the most specific CN of a
 * trusted client certificate; no certificate, an untrusted one or one without CN is
 * refused; with only tls configured the token method is refused, and the reverse. */
START_TEST(test_tls_provider)
{
    static const char *const org_cn[] = {"O", "acme", "CN", "outer", "CN", "alice"};
    static const char *const org_only[] = {"O", "acme"};
    X509 *x = cert_with(org_cn, 3), *nocn = cert_with(org_only, 1);
    struct auth_id id;
    char why[256];
    set("authenticationEnabled", "true");
    const char *names[] = {AUTH_PROVIDER_TLS, "tls"};
    for (int i = 0; i < 2; i++) {
        set("authenticationProviders", names[i]);
        ck_assert_msg(auth_new(&cfg, &au, err, sizeof err) == 0, "%s", err);
        ck_assert(auth_tls_enabled(au));
        ck_assert_int_eq(auth_check_cert(au, x, true, &id, why, sizeof why), 0);
        ck_assert_str_eq(id.role, "alice"); /* RFC 2253's first CN: the last in the DER */
        ck_assert_int_eq(id.exp_ms, 0);
        auth_id_fini(&id);
        ck_assert_int_eq(auth_check_cert(au, x, false, &id, why, sizeof why), -MG_EAUTH);
        ck_assert_ptr_null(id.role);
        ck_assert_int_eq(auth_check_cert(au, NULL, true, &id, why, sizeof why), -MG_EAUTH);
        ck_assert_ptr_nonnull(strstr(why, "Failed to get TLS certificates"));
        ck_assert_int_eq(auth_check_cert(au, nocn, true, &id, why, sizeof why), -MG_EAUTH);
        ck_assert_ptr_nonnull(strstr(why, "unable to authenticate"));
        /* no token provider: a token is refused whatever it holds */
        ck_assert_int_eq(
            auth_check(au, AUTH_METHOD_TOKEN, "a.b.c", 5, NOW_MS, &id, why, sizeof why), -MG_EAUTH);
        auth_free(au);
        au = NULL;
    }
    /* token only: the certificate is not a credential */
    set("authenticationProviders", AUTH_PROVIDER_TOKEN);
    set("tokenSecretKey", "data:;base64,QUJDREVGR0hJSktMTU5PUFFSU1RVVldYWVphYmNkZWY=");
    ck_assert_msg(auth_new(&cfg, &au, err, sizeof err) == 0, "%s", err);
    ck_assert(!auth_tls_enabled(au));
    ck_assert_int_eq(auth_check_cert(au, x, true, &id, why, sizeof why), -MG_EAUTH);
    auth_free(au);
    au = NULL;
    /* both, with Pulsar's comma list */
    set("authenticationProviders", AUTH_PROVIDER_TOKEN ", " AUTH_PROVIDER_TLS);
    ck_assert_msg(auth_new(&cfg, &au, err, sizeof err) == 0, "%s", err);
    ck_assert(auth_tls_enabled(au));
    ck_assert_int_eq(auth_check_cert(au, x, true, &id, why, sizeof why), 0);
    auth_id_fini(&id);
    X509_free(x);
    X509_free(nocn);
}
END_TEST

/* One WARN when authentication is off on a non-loopback bindAddress; none on loopback
 * addresses or with authentication on. */
START_TEST(test_warn_if_open)
{
    ck_assert_msg(auth_new(&cfg, &au, err, sizeof err) == 0, "%s", err);
    ck_assert(auth_warn_if_open(au, "0.0.0.0"));
    ck_assert(auth_warn_if_open(au, "10.1.2.3"));
    ck_assert(auth_warn_if_open(au, "::"));
    ck_assert(auth_warn_if_open(au, "broker-1.example"));
    ck_assert(auth_warn_if_open(NULL, "0.0.0.0"));
    ck_assert(!auth_warn_if_open(au, "127.0.0.1"));
    ck_assert(!auth_warn_if_open(au, "127.9.8.7"));
    ck_assert(!auth_warn_if_open(au, "::1"));
    ck_assert(!auth_warn_if_open(au, "localhost"));
    auth_free(au);
    au = NULL;
    set("authenticationEnabled", "true");
    set("authenticationProviders", "tls");
    ck_assert_msg(auth_new(&cfg, &au, err, sizeof err) == 0, "%s", err);
    ck_assert(!auth_warn_if_open(au, "0.0.0.0"));
}
END_TEST

/* Client plugins as Pulsar's clients read them: token:, file:// (blanks dropped); another
 * plugin or unusable parameters are refused; auth_new turns brokerClient* into the header
 * the broker's own calls show, and names the key it refuses. */
START_TEST(test_client_token)
{
    char *t = NULL, why[256];
    ck_assert_int_eq(auth_client_token("token", "token:abc.def.ghi", &t, why, sizeof why), 0);
    ck_assert_str_eq(t, "abc.def.ghi");
    mg_free(t);
    char *path = mg_asprintf("%s/tok", tmpdir);
    FILE *f = fopen(path, "w");
    fputs("  x.y.z\n", f);
    fclose(f);
    char *url = mg_asprintf("file://%s", path);
    ck_assert_int_eq(auth_client_token(AUTH_CLIENT_TOKEN, url, &t, why, sizeof why), 0);
    ck_assert_str_eq(t, "x.y.z");
    mg_free(t);
    ck_assert_int_eq(auth_client_token(AUTH_CLIENT_TLS, url, &t, why, sizeof why), -MG_ENOTSUP);
    ck_assert_ptr_null(t);
    ck_assert_int_eq(auth_client_token("token", "x.y.z", &t, why, sizeof why), -MG_EINVAL);
    ck_assert_int_eq(auth_client_token("token", "token:", &t, why, sizeof why), -MG_EINVAL);
    ck_assert_int_eq(auth_client_token("token", "token:a\r\nX-Evil: 1", &t, why, sizeof why),
                     -MG_EINVAL);
    ck_assert_ptr_null(t);

    ck_assert_msg(auth_new(&cfg, &au, err, sizeof err) == 0, "%s", err);
    ck_assert_ptr_null(auth_broker_client_authorization(au)); /* not set */
    auth_free(au);
    au = NULL;
    set("brokerClientAuthenticationPlugin", "token");
    set("brokerClientAuthenticationParameters", url);
    ck_assert_msg(auth_new(&cfg, &au, err, sizeof err) == 0, "%s", err);
    ck_assert_str_eq(auth_broker_client_authorization(au), "Bearer x.y.z");
    auth_free(au);
    au = NULL;
    set("brokerClientAuthenticationParameters", "file:///nonexistent/tok");
    expect_cfg_error("key 'brokerClientAuthenticationParameters'", "/nonexistent/tok");
    set("brokerClientAuthenticationPlugin", "com.example.Auth");
    expect_cfg_error("key 'brokerClientAuthenticationPlugin'", "com.example.Auth");
    mg_free(url);
    mg_free(path);
}
END_TEST

int main(void)
{
    return tl_main(
        "auth",
        TL_CASES({"core", 0, setup, teardown,
                  TL_TESTS(test_hs256_role, test_rs256, test_es256, test_ps256,
                           test_expired_and_future, test_alg_none_and_wrong_key, test_malformed,
                           test_huge_token_cheap, test_role_claim_and_audience, test_config_errors,
                           test_key_forms, test_decode, test_tls_provider, test_warn_if_open,
                           test_client_token, test_client_token_forms)}));
}
