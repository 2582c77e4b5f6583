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
 * Failure modes: a file that does not load is a config error naming the key and the file. A
 * handshake that fails (an untrusted or missing certificate, plain text, garbage) or stalls
 * past the caller's timeout is reported to the caller's event callback as BEV_EVENT_ERROR
 * or BEV_EVENT_TIMEOUT; the caller closes that connection alone.
 */
#include "tls/tls.h"
#include "util/err.h"
#include "util/log.h"

#include <event2/bufferevent.h>
#include <event2/bufferevent_ssl.h>
#include <openssl/err.h>
#include <openssl/ssl.h>
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
