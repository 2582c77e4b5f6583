/*
 * check_tls.c - unit tests of the tls module: every configuration refusal names the key
 * and the file, tlsProtocols/tlsCiphers are checked, and the refresh reloads changed files
 * only, keeping the previous context when the new files do not load (the listeners' and the
 * bookie links'), and BookieAuthZFactory's roles of a client certificate. Certificates are
 * made by the test with the openssl command (none are committed).
 */
#include "config/cfg.h"
#include "lib/tl.h"
#include "lib/tl_svc.h"
#include "tls/tls.h"
#include "util/alloc.h"
#include "util/err.h"
#include "util/loop.h"

#include <check.h>
#include <event2/event.h>
#include <openssl/pem.h>
#include <openssl/ssl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

static struct cfg cfg;
static struct event_base *base;
static struct mg_loop *loop;
static struct tls_server *ts;
static char err[512];
static char *dir;

static void setup(void)
{
    tl_cfg_tmp_init(&cfg, &dir, "check_tls");
    base = event_base_new();
    loop = mg_loop_new(base);
    ts = NULL;
    err[0] = '\0';
}

static void teardown(void)
{
    tls_server_free(ts);
    ts = NULL;
    mg_loop_free(loop);
    event_base_free(base);
    tl_cfg_tmp_fini(&cfg, &dir);
}

static void set(const char *key, const char *value)
{
    tl_cfg_set(&cfg, key, value);
}

/* A self-signed certificate and key as dir/NAME.pem and dir/NAME.key. */
static void make_cert(const char *name)
{
    char *cmd = mg_asprintf("openssl req -x509 -newkey rsa:2048 -nodes -days 1 -subj /CN=%s "
                            "-keyout %s/%s.key -out %s/%s.pem >/dev/null 2>&1",
                            name, dir, name, dir, name);
    ck_assert_msg(system(cmd) == 0, "openssl failed: %s", cmd);
    mg_free(cmd);
}

static char *path(const char *file)
{
    return mg_asprintf("%s/%s", dir, file);
}

static void set_path(const char *key, const char *file)
{
    char *p = path(file);
    set(key, p);
    mg_free(p);
}

static void expect_refused(const char *want)
{
    ck_assert_ptr_null(tls_server_new(loop, &cfg, "brokerServicePortTls", err, sizeof err));
    ck_assert_msg(strstr(err, want) != NULL, "want '%s' in '%s'", want, err);
}

START_TEST(test_config_errors)
{
    expect_refused("brokerServicePortTls is set but tlsCertificateFilePath is empty");
    make_cert("a");
    make_cert("b");
    set_path("tlsCertificateFilePath", "a.pem");
    expect_refused("tlsKeyFilePath is empty");
    set_path("tlsKeyFilePath", "nope.key");
    expect_refused("tlsKeyFilePath: cannot read");
    expect_refused("nope.key");
    set_path("tlsKeyFilePath", "b.key"); /* another certificate's key */
    expect_refused("does not match");
    set_path("tlsKeyFilePath", "a.key");
    set_path("tlsCertificateFilePath", "a.key"); /* not a certificate */
    expect_refused("tlsCertificateFilePath: cannot load");
    set_path("tlsCertificateFilePath", "a.pem");
    set("tlsRequireTrustedClientCertOnConnect", "true");
    expect_refused("needs tlsTrustCertsFilePath");
    set("tlsRequireTrustedClientCertOnConnect", "false");
    set("tlsProtocols", "TLSv1.3,SSLv3");
    expect_refused("tlsProtocols: unknown protocol 'SSLv3'");
    set("tlsProtocols", "TLSv1.3, TLSv1.2");
    set("tlsCiphers", "TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256,NOT_A_CIPHER");
    expect_refused("tlsCiphers: unknown cipher 'NOT_A_CIPHER'");
    /* IANA (Pulsar's) and OpenSSL names, TLS 1.3 suites and older ciphers together */
    set("tlsCiphers", "TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256, ECDHE-RSA-AES256-GCM-SHA384, "
                      "TLS_AES_128_GCM_SHA256");
    ts = tls_server_new(loop, &cfg, "brokerServicePortTls", err, sizeof err);
    ck_assert_msg(ts != NULL, "%s", err);
}
END_TEST

/* Copy dir/from over dir/to through a rename (a new inode, as a rotation writes it). */
static void replace(const char *from, const char *to)
{
    char *cmd = mg_asprintf("cp %s/%s %s/%s.tmp && mv %s/%s.tmp %s/%s", dir, from, dir, to, dir, to,
                            dir, to);
    ck_assert(system(cmd) == 0);
    mg_free(cmd);
}

START_TEST(test_refresh)
{
    make_cert("a");
    make_cert("b");
    replace("a.pem", "live.pem");
    replace("a.key", "live.key");
    set_path("tlsCertificateFilePath", "live.pem");
    set_path("tlsKeyFilePath", "live.key");
    ts = tls_server_new(loop, &cfg, "webServicePortTls", err, sizeof err);
    ck_assert_msg(ts != NULL, "%s", err);
    ck_assert_int_eq(tls_server_refresh(ts), 0); /* nothing changed */
    replace("b.pem", "live.pem");                /* a certificate without its key yet */
    ck_assert_int_eq(tls_server_refresh(ts), -MG_EINVAL);
    ck_assert_int_eq(tls_server_refresh(ts), 0); /* the same half-written state: not retried */
    replace("b.key", "live.key");
    ck_assert_int_eq(tls_server_refresh(ts), 1);
    ck_assert_int_eq(tls_server_refresh(ts), 0);
}
END_TEST

/* A bookie-side link (tlsCertificatePath, tlsKeyStore) over dir/live.*: the same refresh as
 * the listeners', and a live SSL keeps the context it was made from. */
START_TEST(test_link_refresh)
{
    make_cert("a");
    make_cert("b");
    replace("a.pem", "live.pem");
    replace("a.key", "live.key");
    char *cert = path("live.pem"), *key = path("live.key");
    const struct tls_link_conf lc = {
        .pem = {cert, key, NULL, "tlsCertificatePath", "tlsKeyStore", "tlsTrustStore"},
        .server = true,
    };
    struct tls_link *l = tls_link_new(&lc, 0, "bookie TLS", err, sizeof err);
    ck_assert_msg(l != NULL, "%s", err);
    SSL_CTX *first = tls_link_ctx(l);
    SSL *live = SSL_new(first); /* a connection made before the rotation */
    ck_assert_int_eq(tls_link_refresh(l), 0);
    replace("b.pem", "live.pem"); /* the certificate first: it does not match the key */
    ck_assert_int_eq(tls_link_refresh(l), -MG_EINVAL);
    ck_assert_ptr_eq(tls_link_ctx(l), first); /* the previous files stay */
    replace("b.key", "live.key");
    ck_assert_ptr_eq(tls_link_ctx(l), first); /* refresh_s 0: never looked at by itself */
    ck_assert_int_eq(tls_link_refresh(l), 1);
    SSL_CTX *second = tls_link_ctx(l);
    ck_assert_ptr_ne(second, first);
    X509 *now = SSL_CTX_get0_certificate(second);
    ck_assert_ptr_nonnull(now);
    ck_assert_ptr_eq(SSL_get_SSL_CTX(live), first); /* still valid: its own reference */
    ck_assert_ptr_nonnull(SSL_CTX_get0_certificate(SSL_get_SSL_CTX(live)));
    ck_assert_int_ne(X509_cmp(SSL_CTX_get0_certificate(first), now), 0);
    SSL_free(live);
    tls_link_free(l);
    mg_free(cert);
    mg_free(key);
}
END_TEST

/* A self-signed certificate with the subject subj, loaded. */
static X509 *cert_of(const char *name, const char *subj)
{
    char *cmd = mg_asprintf("openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes "
                            "-days 1 -subj '%s' -keyout %s/%s.key -out %s/%s.pem >/dev/null 2>&1",
                            subj, dir, name, dir, name);
    ck_assert_msg(system(cmd) == 0, "openssl failed: %s", cmd);
    mg_free(cmd);
    char *p = mg_asprintf("%s/%s.pem", dir, name);
    FILE *f = fopen(p, "r");
    ck_assert_ptr_nonnull(f);
    X509 *x = PEM_read_X509(f, NULL, NULL, NULL);
    fclose(f);
    mg_free(p);
    ck_assert_ptr_nonnull(x);
    return x;
}

static void expect_role(X509 *x, bool trusted, const char *allowed, bool want, const char *found)
{
    char got[128];
    ck_assert_int_eq(tls_cert_role_allowed(x, trusted, allowed, got, sizeof got), want);
    ck_assert_msg(strcmp(got, found) == 0, "allowed '%s': found '%s', want '%s'", allowed, got,
                  found);
}

/* BookieAuthZFactory's roles: BookKeeper's OU "0:r1,r2;1:cluster", else the CN. */
START_TEST(test_roles)
{
    X509 *cn = cert_of("cn", "/CN=broker");
    expect_role(cn, true, "broker", true, "CN broker");
    expect_role(cn, true, " other , broker ", true, "CN broker");
    expect_role(cn, true, "brokers,broke", false, "CN broker");
    expect_role(cn, false, "broker", false, "an untrusted certificate");
    expect_role(NULL, false, "broker", false, "no certificate");
    X509 *ou = cert_of("ou", "/OU=1:pulsar;0:reader, writer/CN=broker");
    expect_role(ou, true, "writer", true, "writer");
    expect_role(ou, true, "reader", true, "reader");
    expect_role(ou, true, "pulsar", false, "reader, writer"); /* another code's value */
    expect_role(ou, true, "broker", false, "reader, writer"); /* roles named: the CN is not */
    X509 *plain_ou = cert_of("plainou", "/OU=engineering/CN=broker"); /* no role code */
    expect_role(plain_ou, true, "broker", true, "CN broker");
    expect_role(plain_ou, true, "engineering", false, "CN broker");
    X509 *none = cert_of("none", "/O=magnetar");
    expect_role(none, true, "broker", false, "CN (none)");
    X509_free(cn);
    X509_free(ou);
    X509_free(plain_ou);
    X509_free(none);
}
END_TEST

static Suite *tls_suite(void)
{
    Suite *s = suite_create("tls");
    TCase *tc = tl_tcase(s, "core", 0, setup, teardown);
    tl_add(tc, test_config_errors, test_refresh, test_link_refresh, test_roles);
    return s;
}

int main(void)
{
    return tl_run(tls_suite());
}
