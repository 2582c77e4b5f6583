/*
 * tls_link.c - TLS on links between our own processes (broker to bookie, BookKeeper's
 * START_TLS), kept apart from tls.c's listeners; both load their files with
 * tls_ctx_load_pem.
 *
 * Happy path: tls_link_ctx_new builds one SSL_CTX per side at start. After the plain-text
 * START_TLS exchange, tls_link_start wraps the connection's socket bufferevent in an
 * OpenSSL filter in accepting (bookie) or connecting (broker) state; bytes already
 * buffered on the socket side stay where the filter reads them.
 *
 * A struct tls_link keeps one side's context current: at a new connection, when
 * refresh_s seconds passed since the last look, the files are compared with what was loaded
 * and a changed set is loaded for that connection and the next ones (tls_reload, shared
 * with the listeners' refresh in tls.c); live connections keep the context they started
 * with.
 *
 * Failure modes: a file that does not load is a config error naming the key and the file. A
 * handshake that fails (an untrusted or missing certificate, plain text, garbage) or stalls
 * past the caller's timeout is reported to the caller's event callback as BEV_EVENT_ERROR
 * or BEV_EVENT_TIMEOUT; the caller closes that connection alone.
 */
#include "tls/tls.h"
#include "tls/tls_int.h"
#include "util/alloc.h"
#include "util/err.h"
#include "util/log.h"
#include "util/loop.h"

#include <event2/bufferevent.h>
#include <event2/bufferevent_ssl.h>
#include <openssl/err.h>
#include <openssl/ssl.h>
#include <openssl/x509.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

struct ssl_ctx_st *tls_link_ctx_new(const struct tls_link_conf *conf, char *err, size_t errlen)
{
    const struct tls_pem *f = &conf->pem;
    const char *types[2][2] = {{conf->key_type_key, conf->key_type},
                               {conf->trust_type_key, conf->trust_type}};
    for (int i = 0; i < 2; i++) {
        if (types[i][1] && strcmp(types[i][1], "PEM") != 0) {
            mg_set_err(err, errlen, "%s=%s: only PEM files are read; set %s=PEM", types[i][0],
                       types[i][1], types[i][0]);
            return NULL;
        }
    }
    bool has_cert = f->cert && f->cert[0], has_key = f->key && f->key[0];
    bool has_trust = f->trust && f->trust[0];
    if ((conf->server && (!has_cert || !has_key)) || has_cert != has_key) {
        mg_set_err(err, errlen, "TLS needs both %s and %s", f->cert_key, f->key_key);
        return NULL;
    }
    if (conf->server && conf->client_auth && !has_trust) {
        mg_set_err(err, errlen, "client authentication needs %s", f->trust_key);
        return NULL;
    }
    ERR_clear_error();
    SSL_CTX *ctx = SSL_CTX_new(conf->server ? TLS_server_method() : TLS_client_method());
    if (!ctx) {
        mg_set_err(err, errlen, "cannot create a TLS context: %s", tls_openssl_reason());
        return NULL;
    }
    SSL_CTX_set_min_proto_version(ctx, TLS1_2_VERSION);
    SSL_CTX_set_options(ctx, SSL_OP_IGNORE_UNEXPECTED_EOF);
    if (tls_ctx_load_pem(ctx, f, err, errlen) < 0) {
        SSL_CTX_free(ctx);
        return NULL;
    }
    if (!conf->server) {
        if (!has_trust && SSL_CTX_set_default_verify_paths(ctx) != 1) {
            mg_set_err(err, errlen, "%s is empty and the system's trust store does not load: %s",
                       f->trust_key, tls_openssl_reason());
            SSL_CTX_free(ctx);
            return NULL;
        }
        SSL_CTX_set_verify(ctx, SSL_VERIFY_PEER, NULL); /* the bookie's certificate */
    } else if (conf->client_auth) {
        SSL_CTX_set_verify(ctx, SSL_VERIFY_PEER | SSL_VERIFY_FAIL_IF_NO_PEER_CERT, NULL);
    } else {
        SSL_CTX_set_verify(ctx, SSL_VERIFY_NONE, NULL);
    }
    return ctx;
}

void tls_link_ctx_free(struct ssl_ctx_st *ctx)
{
    SSL_CTX_free(ctx);
}

struct bufferevent *tls_link_start(struct bufferevent *under, struct ssl_ctx_st *ctx, bool server,
                                   int timeout_ms)
{
    SSL *ssl = SSL_new(ctx);
    MG_ASSERT(ssl); /* only fails on allocation failure */
    /* under's own timeouts would outlive the handshake: the filter passes them on */
    bufferevent_set_timeouts(under, NULL, NULL);
    struct bufferevent *bev = bufferevent_openssl_filter_new(
        bufferevent_get_base(under), under, ssl,
        server ? BUFFEREVENT_SSL_ACCEPTING : BUFFEREVENT_SSL_CONNECTING, BEV_OPT_CLOSE_ON_FREE);
    MG_ASSERT(bev);
    bufferevent_openssl_set_allow_dirty_shutdown(bev, 1);
    struct timeval tv = {timeout_ms / 1000, (timeout_ms % 1000) * 1000};
    bufferevent_set_timeouts(bev, &tv, &tv);
    return bev;
}

struct bufferevent *tls_client_bev(struct ssl_ctx_st *ctx, struct event_base *base)
{
    SSL *ssl = SSL_new(ctx);
    MG_ASSERT(ssl); /* only fails on allocation failure */
    struct bufferevent *bev = bufferevent_openssl_socket_new(
        base, -1, ssl, BUFFEREVENT_SSL_CONNECTING, BEV_OPT_CLOSE_ON_FREE | BEV_OPT_DEFER_CALLBACKS);
    MG_ASSERT(bev);
    bufferevent_openssl_set_allow_dirty_shutdown(bev, 1);
    return bev;
}

/* ---- a link context kept current ------------------------------------------------------- */

struct tls_link {
    struct tls_link_conf conf; /* its strings owned (copies) */
    struct tls_reload files;
    int refresh_s;
    uint64_t next_check_ms;
    const char *what;
};

static const char *tls_link_dup(const char *v)
{
    return v ? mg_strdup(v) : NULL;
}

static SSL_CTX *tls_link_build(const void *arg, char *err, size_t errlen)
{
    return tls_link_ctx_new(arg, err, errlen);
}

static void tls_link_conf_free(struct tls_link_conf *c)
{
    const char *strs[] = {c->pem.cert,     c->pem.key,       c->pem.trust, c->pem.cert_key,
                          c->pem.key_key,  c->pem.trust_key, c->key_type,  c->trust_type,
                          c->key_type_key, c->trust_type_key};
    for (size_t i = 0; i < sizeof strs / sizeof strs[0]; i++)
        mg_free((char *)strs[i]);
}

struct tls_link *tls_link_new(const struct tls_link_conf *conf, int refresh_s, const char *what,
                              char *err, size_t errlen)
{
    struct tls_link *l = mg_calloc(1, sizeof *l);
    l->conf = (struct tls_link_conf){
        .pem = {tls_link_dup(conf->pem.cert), tls_link_dup(conf->pem.key),
                tls_link_dup(conf->pem.trust), tls_link_dup(conf->pem.cert_key),
                tls_link_dup(conf->pem.key_key), tls_link_dup(conf->pem.trust_key)},
        .key_type = tls_link_dup(conf->key_type),
        .trust_type = tls_link_dup(conf->trust_type),
        .key_type_key = tls_link_dup(conf->key_type_key),
        .trust_type_key = tls_link_dup(conf->trust_type_key),
        .server = conf->server,
        .client_auth = conf->client_auth,
    };
    l->refresh_s = refresh_s;
    l->what = what;
    const char *paths[3] = {l->conf.pem.cert, l->conf.pem.key, l->conf.pem.trust};
    if (tls_reload_init(&l->files, paths, tls_link_build, &l->conf, err, errlen) < 0) {
        tls_link_conf_free(&l->conf);
        mg_free(l);
        return NULL;
    }
    l->next_check_ms = mg_mono_ms() + (uint64_t)refresh_s * 1000;
    return l;
}

void tls_link_free(struct tls_link *l)
{
    if (!l)
        return;
    tls_reload_fini(&l->files);
    tls_link_conf_free(&l->conf);
    mg_free(l);
}

int tls_link_refresh(struct tls_link *l)
{
    l->next_check_ms = mg_mono_ms() + (uint64_t)l->refresh_s * 1000;
    return tls_reload_check(&l->files, l->what);
}

struct ssl_ctx_st *tls_link_ctx(struct tls_link *l)
{
    if (l->refresh_s > 0 && mg_mono_ms() >= l->next_check_ms)
        tls_link_refresh(l);
    return l->files.ctx;
}

/* ---- BookieAuthZFactory: the roles of a client certificate ------------------------------ */

/* Whether the comma list `list` holds the item [s, s+n) (blanks around items ignored). */
static bool tls_list_has(const char *list, const char *s, size_t n)
{
    while (n > 0 && *s == ' ')
        s++, n--;
    while (n > 0 && s[n - 1] == ' ')
        n--;
    for (const char *p = list; n > 0 && *p;) {
        while (*p == ' ' || *p == ',')
            p++;
        size_t k = strcspn(p, ",");
        size_t m = k;
        while (m > 0 && p[m - 1] == ' ')
            m--;
        if (m == n && memcmp(p, s, n) == 0)
            return true;
        p += k;
    }
    return false;
}

/* BookKeeper's roles in an OU: "0:role1,role2;1:cluster" (CertUtils: ';' between values,
 * "code:value", the roles under code 0, ',' between them). The first role allowed, into
 * found; else the roles seen. */
static bool tls_ou_role_allowed(const char *ou, const char *allowed, char *found, size_t len)
{
    for (const char *v = ou; *v;) {
        size_t vl = strcspn(v, ";");
        const char *colon = memchr(v, ':', vl);
        size_t code_len = colon ? (size_t)(colon - v) : 0;
        while (code_len > 0 && v[0] == ' ')
            v++, vl--, code_len--;
        if (colon && code_len == 1 && v[0] == '0') {
            snprintf(found, len, "%.*s", (int)(vl - (size_t)(colon + 1 - v)), colon + 1);
            for (const char *r = colon + 1; r < v + vl;) {
                size_t rl = strcspn(r, ",;");
                if (tls_list_has(allowed, r, rl)) {
                    while (rl > 0 && *r == ' ')
                        r++, rl--;
                    while (rl > 0 && r[rl - 1] == ' ')
                        rl--;
                    snprintf(found, len, "%.*s", (int)rl, r);
                    return true;
                }
                r += rl + (r[rl] == ',');
            }
            return false;
        }
        v += vl + (v[vl] == ';');
    }
    return false;
}

bool tls_peer_role_allowed(struct bufferevent *bev, const char *allowed, char *found, size_t len)
{
    bool trusted;
    X509 *cert = tls_peer_cert(bev, &trusted);
    return tls_cert_role_allowed(cert, trusted, allowed, found, len);
}

bool tls_cert_role_allowed(struct x509_st *cert, bool trusted, const char *allowed, char *found,
                           size_t len)
{
    snprintf(found, len, "%s", !cert ? "no certificate" : "an untrusted certificate");
    if (!cert || !trusted)
        return false;
    found[0] = '\0';
    char *ou = tls_cert_subject_attr(cert, NID_organizationalUnitName);
    bool ok = ou && tls_ou_role_allowed(ou, allowed, found, len);
    mg_free(ou);
    if (ok || found[0])
        return ok; /* the certificate names its roles: only they count */
    char *cn = tls_cert_subject_attr(cert, NID_commonName);
    snprintf(found, len, "CN %s", cn ? cn : "(none)");
    ok = cn && tls_list_has(allowed, cn, strlen(cn));
    mg_free(cn);
    return ok;
}
