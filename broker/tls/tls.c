/*
 * tls.c - the server SSL_CTX, its refresh, and the handshake of accepted sockets. The
 * refresh itself (tls_reload: the files' identities, a rebuild when they change, the swap)
 * is shared with the bookie links (tls_link.c, tls_int.h).
 *
 * Happy path: tls_server_new loads the certificate chain, the key and the trust bundle
 * into an SSL_CTX (tls_ctx_build) and remembers the files' identities (inode, size,
 * mtime). A timer re-stats them every tlsCertRefreshCheckDurationSec; a change builds a
 * new context and, if it loads, replaces the current one (new connections get it; each
 * live SSL keeps a reference to the context it was made from, so nothing live changes).
 * tls_server_accept wraps the socket in a bufferevent_openssl in accepting state and
 * waits for BEV_EVENT_CONNECTED, then hands the bufferevent on.
 *
 * Failure modes: a file that does not load at start is a config error naming the key and
 * the file; at refresh it is logged and the old context stays (a half-written pair of
 * files is retried at the next change). A failed or timed-out handshake frees that
 * bufferevent (closing the socket) and is logged rate-limited with OpenSSL's reason.
 */
#include "tls/tls.h"
#include "config/cfg.h"
#include "tls/tls_int.h"
#include "util/alloc.h"
#include "util/err.h"
#include "util/log.h"
#include "util/loop.h"
#include "util/ratelimit.h"

#include <errno.h>
#include <event2/bufferevent.h>
#include <event2/bufferevent_ssl.h>
#include <event2/event.h>
#include <inttypes.h>
#include <netdb.h>
#include <openssl/err.h>
#include <openssl/ssl.h>
#include <openssl/x509.h>
#include <stdbool.h>
#include <stdio.h>
#include <string.h>
#include <sys/queue.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

#define MOD "tls"

struct tls_pending {
    struct tls_server *t;    /* borrowed */
    struct bufferevent *bev; /* owned until ready */
    struct mg_timer deadline;
    struct sockaddr_storage addr;
    int socklen;
    tls_ready_fn ready;
    tls_failed_fn failed;
    void *arg;
    LIST_ENTRY(tls_pending) link;
};

struct tls_server {
    const struct cfg *cfg;   /* borrowed */
    struct mg_loop *loop;    /* borrowed */
    struct tls_reload files; /* the current context and its three files */
    struct mg_timer refresh;
    struct mg_ratelimit rl_handshake;
    long ok, failed;
    LIST_HEAD(, tls_pending) pending;
};

/* The app data of a context: whether an unverifiable client certificate is let through. */
static int tls_allow_insecure_flag = 1;

static int tls_verify_cb(int preverify_ok, X509_STORE_CTX *store)
{
    if (preverify_ok)
        return 1;
    SSL *ssl = X509_STORE_CTX_get_ex_data(store, SSL_get_ex_data_X509_STORE_CTX_idx());
    return ssl && SSL_CTX_get_app_data(SSL_get_SSL_CTX(ssl)) == &tls_allow_insecure_flag;
}

const char *tls_openssl_reason(void)
{
    unsigned long e = ERR_peek_last_error();
    const char *r = e ? ERR_reason_error_string(e) : NULL;
    return r ? r : "unknown OpenSSL error";
}

/* "TLSv1.2" -> TLS1_2_VERSION; 0 if unknown. */
static int tls_proto_version(const char *name)
{
    static const struct {
        const char *name;
        int v;
    } protos[] = {{"TLSv1", TLS1_VERSION},
                  {"TLSv1.1", TLS1_1_VERSION},
                  {"TLSv1.2", TLS1_2_VERSION},
                  {"TLSv1.3", TLS1_3_VERSION}};
    for (size_t i = 0; i < sizeof protos / sizeof protos[0]; i++)
        if (strcmp(protos[i].name, name) == 0)
            return protos[i].v;
    return 0;
}

/* Next comma-separated item of *p (blanks trimmed) into buf; false at the end. */
static bool tls_next_item(const char **p, char *buf, size_t len)
{
    while (**p == ',' || **p == ' ')
        (*p)++;
    if (**p == '\0')
        return false;
    const char *start = *p;
    while (**p && **p != ',')
        (*p)++;
    size_t n = (size_t)(*p - start);
    while (n > 0 && start[n - 1] == ' ')
        n--;
    if (n >= len)
        n = len - 1;
    memcpy(buf, start, n);
    buf[n] = '\0';
    return true;
}

/* tlsProtocols: the lowest and highest version listed bound the context. */
static int tls_set_protocols(SSL_CTX *ctx, const char *list, char *err, size_t errlen)
{
    int lo = 0, hi = 0;
    char item[64];
    for (const char *p = list; tls_next_item(&p, item, sizeof item);) {
        int v = tls_proto_version(item);
        if (!v) {
            mg_set_err(err, errlen,
                       "tlsProtocols: unknown protocol '%s' (expected TLSv1.3, TLSv1.2, ...)",
                       item);
            return -MG_EINVAL;
        }
        lo = lo && lo < v ? lo : v;
        hi = hi > v ? hi : v;
    }
    if (lo &&
        (!SSL_CTX_set_min_proto_version(ctx, lo) || !SSL_CTX_set_max_proto_version(ctx, hi))) {
        mg_set_err(err, errlen, "tlsProtocols: '%s' not supported: %s", list, tls_openssl_reason());
        return -MG_EINVAL;
    }
    return 0;
}

/* tlsCiphers: Pulsar lists IANA names (TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256); OpenSSL
 * names (ECDHE-RSA-AES128-GCM-SHA256) are taken too. TLS 1.3 suites and older ciphers are
 * set apart, as OpenSSL configures them apart. */
static int tls_set_ciphers(SSL_CTX *ctx, const char *list, char *err, size_t errlen)
{
    SSL *probe = SSL_new(ctx);
    if (!probe || !SSL_set_cipher_list(probe, "ALL:COMPLEMENTOFALL")) {
        SSL_free(probe);
        mg_set_err(err, errlen, "tlsCiphers: %s", tls_openssl_reason());
        return -MG_EINVAL;
    }
    STACK_OF(SSL_CIPHER) *all = SSL_get_ciphers(probe);
    char legacy[4096] = "", v13[1024] = "", item[128];
    int rc = 0;
    for (const char *p = list; rc == 0 && tls_next_item(&p, item, sizeof item);) {
        const SSL_CIPHER *found = NULL;
        for (int i = 0; all && i < sk_SSL_CIPHER_num(all) && !found; i++) {
            const SSL_CIPHER *c = sk_SSL_CIPHER_value(all, i);
            const char *std = SSL_CIPHER_standard_name(c);
            if (strcmp(SSL_CIPHER_get_name(c), item) == 0 || (std && strcmp(std, item) == 0))
                found = c;
        }
        if (!found) {
            mg_set_err(err, errlen, "tlsCiphers: unknown cipher '%s'", item);
            rc = -MG_EINVAL;
            break;
        }
        bool is13 = strcmp(SSL_CIPHER_get_version(found), "TLSv1.3") == 0;
        char *dst = is13 ? v13 : legacy;
        size_t cap = is13 ? sizeof v13 : sizeof legacy, used = strlen(dst);
        snprintf(dst + used, cap - used, "%s%s", used ? ":" : "", SSL_CIPHER_get_name(found));
    }
    SSL_free(probe);
    if (rc == 0 && legacy[0] && !SSL_CTX_set_cipher_list(ctx, legacy)) {
        mg_set_err(err, errlen, "tlsCiphers: %s", tls_openssl_reason());
        rc = -MG_EINVAL;
    }
    if (rc == 0 && v13[0] && !SSL_CTX_set_ciphersuites(ctx, v13)) {
        mg_set_err(err, errlen, "tlsCiphers: %s", tls_openssl_reason());
        rc = -MG_EINVAL;
    }
    return rc;
}

int tls_ctx_load_pem(struct ssl_ctx_st *ctx, const struct tls_pem *f, char *err, size_t errlen)
{
    const char *cert = f->cert ? f->cert : "", *key = f->key ? f->key : "";
    const char *trust = f->trust ? f->trust : "";
    /* OpenSSL says "system lib" for a file it cannot open: name errno's reason instead */
    const char *keys[] = {f->cert_key, f->key_key, f->trust_key};
    const char *paths[] = {cert, key, trust};
    for (int i = 0; i < 3; i++) {
        if (paths[i][0] && access(paths[i], R_OK) != 0) {
            mg_set_err(err, errlen, "%s: cannot read '%s': %s", keys[i], paths[i], strerror(errno));
            return -MG_EINVAL;
        }
    }
    if (cert[0] && SSL_CTX_use_certificate_chain_file(ctx, cert) != 1) {
        mg_set_err(err, errlen, "%s: cannot load '%s': %s", f->cert_key, cert,
                   tls_openssl_reason());
        return -MG_EINVAL;
    }
    if (key[0] && SSL_CTX_use_PrivateKey_file(ctx, key, SSL_FILETYPE_PEM) != 1 &&
        ERR_GET_REASON(ERR_peek_last_error()) != X509_R_KEY_VALUES_MISMATCH) {
        mg_set_err(err, errlen, "%s: cannot load '%s': %s", f->key_key, key, tls_openssl_reason());
        return -MG_EINVAL;
    }
    if ((cert[0] || key[0]) && SSL_CTX_check_private_key(ctx) != 1) {
        mg_set_err(err, errlen, "%s: '%s' does not match %s '%s'", f->key_key, key, f->cert_key,
                   cert);
        return -MG_EINVAL;
    }
    if (trust[0]) {
        if (SSL_CTX_load_verify_locations(ctx, trust, NULL) != 1) {
            mg_set_err(err, errlen, "%s: cannot load '%s': %s", f->trust_key, trust,
                       tls_openssl_reason());
            return -MG_EINVAL;
        }
        STACK_OF(X509_NAME) *names = SSL_load_client_CA_file(trust);
        if (names)
            SSL_CTX_set_client_CA_list(ctx, names);
    }
    return 0;
}

static SSL_CTX *tls_ctx_build(const void *arg, char *err, size_t errlen)
{
    const struct cfg *cfg = arg;
    ERR_clear_error();
    SSL_CTX *ctx = SSL_CTX_new(TLS_server_method());
    if (!ctx) {
        mg_set_err(err, errlen, "cannot create a TLS context: %s", tls_openssl_reason());
        return NULL;
    }
    const char *trust = cfg->tls_trust_certs_file_path;
    const struct tls_pem pem = {
        cfg->tls_certificate_file_path, cfg->tls_key_file_path, trust,
        "tlsCertificateFilePath",       "tlsKeyFilePath",       "tlsTrustCertsFilePath"};
    SSL_CTX_set_min_proto_version(ctx, TLS1_2_VERSION); /* older only when tlsProtocols says */
    /* A client that closes without close_notify (most do) is an end of file, not an error */
    SSL_CTX_set_options(ctx, SSL_OP_IGNORE_UNEXPECTED_EOF);
    if (tls_ctx_load_pem(ctx, &pem, err, errlen) < 0)
        goto fail;
    /* with a trust bundle a client certificate is asked for, checked if given */
    int mode = trust[0] ? SSL_VERIFY_PEER : SSL_VERIFY_NONE;
    if (cfg->tls_require_trusted_client_cert) {
        if (!trust[0]) {
            mg_set_err(err, errlen,
                       "tlsRequireTrustedClientCertOnConnect=true needs tlsTrustCertsFilePath");
            goto fail;
        }
        mode = SSL_VERIFY_PEER | SSL_VERIFY_FAIL_IF_NO_PEER_CERT;
    }
    if (cfg->tls_allow_insecure_connection)
        SSL_CTX_set_app_data(ctx, &tls_allow_insecure_flag);
    SSL_CTX_set_verify(ctx, mode, mode == SSL_VERIFY_NONE ? NULL : tls_verify_cb);
    if (cfg->tls_protocols[0] && tls_set_protocols(ctx, cfg->tls_protocols, err, errlen) < 0)
        goto fail;
    if (cfg->tls_ciphers[0] && tls_set_ciphers(ctx, cfg->tls_ciphers, err, errlen) < 0)
        goto fail;
    return ctx;
fail:
    SSL_CTX_free(ctx);
    return NULL;
}

static void tls_file_id(const char *path, struct tls_file_id *id)
{
    struct stat st;
    memset(id, 0, sizeof *id);
    if (!path || !path[0] || stat(path, &st) != 0)
        return;
    id->exists = true;
    id->dev = st.st_dev;
    id->ino = st.st_ino;
    id->size = st.st_size;
    id->mtime = st.st_mtim;
}

static bool tls_file_id_eq(const struct tls_file_id *a, const struct tls_file_id *b)
{
    return a->exists == b->exists && a->dev == b->dev && a->ino == b->ino && a->size == b->size &&
           a->mtime.tv_sec == b->mtime.tv_sec && a->mtime.tv_nsec == b->mtime.tv_nsec;
}

/* Identities of r's files now; true when any differs from what was loaded. */
static bool tls_files_changed(const struct tls_reload *r, struct tls_file_id now[3])
{
    bool changed = false;
    for (int i = 0; i < 3; i++) {
        tls_file_id(r->paths[i], &now[i]);
        changed = changed || !tls_file_id_eq(&now[i], &r->ids[i]);
    }
    return changed;
}

int tls_reload_init(struct tls_reload *r, const char *const paths[3], tls_build_fn build,
                    const void *arg, char *err, size_t errlen)
{
    struct tls_reload n = {.build = build, .arg = arg};
    memcpy(n.paths, paths, sizeof n.paths);
    tls_files_changed(&n, n.ids); /* the identities before the read: a change during it is
                                     seen at the next check */
    n.ctx = build(arg, err, errlen);
    if (!n.ctx)
        return -MG_EINVAL;
    *r = n;
    return 0;
}

int tls_reload_check(struct tls_reload *r, const char *what)
{
    struct tls_file_id now[3];
    if (!tls_files_changed(r, now))
        return 0;
    /* Remember what was seen even if it does not load: a certificate written before its key
     * fails once, and the key's own change triggers the next try. */
    memcpy(r->ids, now, sizeof r->ids);
    char err[512];
    SSL_CTX *ctx = r->build(r->arg, err, sizeof err);
    if (!ctx) {
        MG_WARN(MOD, "%s: files changed but do not load; keeping the previous ones: %s", what, err);
        return -MG_EINVAL;
    }
    SSL_CTX_free(r->ctx); /* live connections hold their own references */
    r->ctx = ctx;
    MG_INFO(MOD, "%s: TLS certificate files reloaded (%s); new connections use them", what,
            r->paths[0] && r->paths[0][0] ? r->paths[0] : r->paths[2]);
    return 1;
}

void tls_reload_fini(struct tls_reload *r)
{
    SSL_CTX_free(r->ctx);
    r->ctx = NULL;
}

int tls_server_refresh(struct tls_server *t)
{
    return tls_reload_check(&t->files, "TLS ports");
}

static void tls_refresh_tick(struct mg_timer *timer, void *arg)
{
    struct tls_server *t = arg;
    tls_server_refresh(t);
    mg_timer_start(timer, (uint64_t)t->cfg->tls_cert_refresh_check_s * 1000);
}

struct tls_server *tls_server_new(struct mg_loop *loop, const struct cfg *cfg, const char *what,
                                  char *err, size_t errlen)
{
    if (!cfg->tls_certificate_file_path[0] || !cfg->tls_key_file_path[0]) {
        mg_set_err(err, errlen, "%s is set but %s is empty", what,
                   !cfg->tls_certificate_file_path[0] ? "tlsCertificateFilePath"
                                                      : "tlsKeyFilePath");
        return NULL;
    }
    struct tls_server *t = mg_calloc(1, sizeof *t);
    t->cfg = cfg;
    t->loop = loop;
    LIST_INIT(&t->pending);
    const char *paths[3] = {cfg->tls_certificate_file_path, cfg->tls_key_file_path,
                            cfg->tls_trust_certs_file_path};
    if (tls_reload_init(&t->files, paths, tls_ctx_build, cfg, err, errlen) < 0) {
        mg_free(t);
        return NULL;
    }
    mg_timer_init(&t->refresh, loop, tls_refresh_tick, t);
    if (cfg->tls_cert_refresh_check_s > 0)
        mg_timer_start(&t->refresh, (uint64_t)cfg->tls_cert_refresh_check_s * 1000);
    return t;
}

static void tls_pending_free(struct tls_pending *p)
{
    LIST_REMOVE(p, link);
    mg_timer_fini(&p->deadline);
    if (p->bev)
        bufferevent_free(p->bev);
    mg_free(p);
}

void tls_server_free(struct tls_server *t)
{
    if (!t)
        return;
    while (!LIST_EMPTY(&t->pending))
        tls_pending_free(LIST_FIRST(&t->pending));
    mg_timer_fini(&t->refresh);
    tls_reload_fini(&t->files);
    mg_free(t);
}

/* A server SSL of the current context (the files checked first when the refresh is per
 * connection). */
static SSL *tls_server_ssl(struct tls_server *t)
{
    if (t->cfg->tls_cert_refresh_check_s == 0)
        tls_server_refresh(t); /* Pulsar's 0: checked at each new connection */
    SSL *ssl = SSL_new(t->files.ctx);
    MG_ASSERT(ssl);
    return ssl;
}

SSL *tls_server_new_ssl(struct tls_server *t)
{
    return tls_server_ssl(t);
}

struct bufferevent *tls_server_bev(struct tls_server *t, struct event_base *base,
                                   evutil_socket_t fd)
{
    SSL *ssl = tls_server_ssl(t);
    if (fd >= 0)
        evutil_make_socket_nonblocking(fd);
    struct bufferevent *bev = bufferevent_openssl_socket_new(
        base, fd, ssl, BUFFEREVENT_SSL_ACCEPTING, BEV_OPT_CLOSE_ON_FREE);
    MG_ASSERT(bev);
    return bev;
}

struct bufferevent *tls_server_filter(struct tls_server *t, struct bufferevent *under)
{
    SSL *ssl = tls_server_ssl(t);
    struct bufferevent *bev = bufferevent_openssl_filter_new(
        bufferevent_get_base(under), under, ssl, BUFFEREVENT_SSL_ACCEPTING, BEV_OPT_CLOSE_ON_FREE);
    MG_ASSERT(bev);
    return bev;
}

/* The SSL of bev, or of the bufferevent under a filter over it; NULL when neither is TLS. */
static SSL *tls_bev_ssl(struct bufferevent *bev)
{
    SSL *ssl = bev ? bufferevent_openssl_get_ssl(bev) : NULL;
    if (!ssl && bev && bufferevent_get_underlying(bev))
        ssl = bufferevent_openssl_get_ssl(bufferevent_get_underlying(bev));
    return ssl;
}

bool tls_bev_is_tls(struct bufferevent *bev)
{
    return tls_bev_ssl(bev) != NULL;
}

X509 *tls_peer_cert(struct bufferevent *bev, bool *trusted)
{
    *trusted = false;
    SSL *ssl = tls_bev_ssl(bev);
    X509 *x = ssl ? SSL_get0_peer_certificate(ssl) : NULL;
    /* an error let through by tls_verify_cb stays the session's verify result */
    *trusted = x != NULL && SSL_get_verify_result(ssl) == X509_V_OK;
    return x;
}

char *tls_cert_subject_attr(struct x509_st *cert, int nid)
{
    /* RFC 2253 writes the subject's last RDN first: its "first CN=" is the last one here */
    const X509_NAME *name = cert ? X509_get_subject_name(cert) : NULL;
    int idx = -1, last = -1;
    while (name && (idx = X509_NAME_get_index_by_NID(name, nid, idx)) >= 0)
        last = idx;
    const X509_NAME_ENTRY *e = last >= 0 ? X509_NAME_get_entry(name, last) : NULL;
    unsigned char *v = NULL;
    int n = e ? ASN1_STRING_to_UTF8(&v, X509_NAME_ENTRY_get_data(e)) : -1;
    char *out =
        n > 0 && !memchr(v, '\0', (size_t)n) ? mg_strndup((const char *)v, (size_t)n) : NULL;
    OPENSSL_free(v);
    return out;
}

static void tls_peer_name(const struct tls_pending *p, char *buf, size_t len)
{
    char host[64] = "?", serv[16] = "?";
    if (getnameinfo((const struct sockaddr *)&p->addr, (socklen_t)p->socklen, host, sizeof host,
                    serv, sizeof serv, NI_NUMERICHOST | NI_NUMERICSERV) != 0)
        snprintf(host, sizeof host, "?");
    snprintf(buf, len, "%s:%s", host, serv);
}

static void tls_handshake_failed(struct tls_pending *p, const char *why)
{
    struct tls_server *t = p->t;
    t->failed++;
    uint64_t held;
    if (mg_ratelimit_allow(&t->rl_handshake, MG_RATELIMIT_INTERVAL_MS, &held)) {
        char peer[96];
        tls_peer_name(p, peer, sizeof peer);
        MG_WARN(MOD, "TLS handshake from %s failed: %s (%" PRIu64 " more since the last line)",
                peer, why, held);
    }
    tls_failed_fn failed = p->failed;
    void *arg = p->arg;
    tls_pending_free(p);
    failed(arg);
}

unsigned long tls_bev_openssl_error(struct bufferevent *bev)
{
    /* libevent queues SSL_get_error's code (SSL_ERROR_SYSCALL, SSL_ERROR_SSL) before the
     * library's errors and pops the last one first: a bare code (no library) is no reason */
    unsigned long e, reason = 0;
    while ((e = bufferevent_get_openssl_error(bev)) != 0)
        if (!reason && ERR_GET_LIB(e) != 0)
            reason = e;
    return reason;
}

void tls_bev_error(struct bufferevent *bev, short what, char *why, size_t len)
{
    unsigned long e = tls_bev_openssl_error(bev);
    if (e)
        ERR_error_string_n(e, why, len);
    else if (what & BEV_EVENT_EOF)
        snprintf(why, len, "closed by the peer during the handshake");
    else if (what & BEV_EVENT_TIMEOUT)
        snprintf(why, len, "timed out");
    else
        snprintf(why, len, "socket error during the handshake");
}

static void tls_handshake_event(struct bufferevent *bev, short what, void *arg)
{
    struct tls_pending *p = arg;
    if (what & BEV_EVENT_CONNECTED) {
        p->t->ok++;
        bufferevent_setcb(bev, NULL, NULL, NULL, NULL);
        p->bev = NULL;
        tls_ready_fn ready = p->ready;
        void *rarg = p->arg;
        struct sockaddr_storage addr = p->addr;
        int socklen = p->socklen;
        tls_pending_free(p);
        ready(rarg, bev, (const struct sockaddr *)&addr, socklen);
        return;
    }
    char why[256];
    tls_bev_error(bev, what, why, sizeof why);
    tls_handshake_failed(p, why);
}

static void tls_handshake_timeout(struct mg_timer *timer, void *arg)
{
    (void)timer;
    char why[64];
    snprintf(why, sizeof why, "not completed within %d ms", TLS_HANDSHAKE_TIMEOUT_MS);
    tls_handshake_failed(arg, why);
}

void tls_server_accept(struct tls_server *t, evutil_socket_t fd, const struct sockaddr *addr,
                       int socklen, tls_ready_fn ready, tls_failed_fn failed, void *arg)
{
    struct tls_pending *p = mg_calloc(1, sizeof *p);
    p->t = t;
    p->ready = ready;
    p->failed = failed;
    p->arg = arg;
    if (addr && socklen > 0 && (size_t)socklen <= sizeof p->addr) {
        memcpy(&p->addr, addr, (size_t)socklen);
        p->socklen = socklen;
    }
    LIST_INSERT_HEAD(&t->pending, p, link);
    p->bev = tls_server_bev(t, mg_loop_base(t->loop), fd);
    bufferevent_setcb(p->bev, NULL, NULL, tls_handshake_event, p);
    bufferevent_enable(p->bev, EV_READ | EV_WRITE);
    mg_timer_init(&p->deadline, t->loop, tls_handshake_timeout, p);
    mg_timer_start(&p->deadline, TLS_HANDSHAKE_TIMEOUT_MS);
}

void tls_server_counts(const struct tls_server *t, long *ok, long *failed)
{
    *ok = t->ok;
    *failed = t->failed;
}
