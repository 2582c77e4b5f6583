/*
 * tls.h - the broker's TLS server side: one place that turns an accepted socket into a
 * TLS bufferevent (OpenSSL through libevent's bufferevent_openssl).
 *
 * A struct tls_server holds the SSL_CTX built from Pulsar's keys (tlsCertificateFilePath,
 * tlsKeyFilePath, tlsTrustCertsFilePath, tlsRequireTrustedClientCertOnConnect,
 * tlsAllowInsecureConnection, tlsProtocols, tlsCiphers) and re-reads the files every
 * tlsCertRefreshCheckDurationSec (0: at each new connection): changed files give a new
 * SSL_CTX that new connections use; live connections keep the one they started with
 * (each SSL holds a reference to its context).
 *
 * tls_server_accept runs the handshake before anyone else sees the connection, bounded by
 * TLS_HANDSHAKE_TIMEOUT_MS: a handshake of garbage, plain text or a client that stalls
 * closes that socket alone, logged at most once per MG_RATELIMIT_INTERVAL_MS per server.
 * Loop thread only.
 */
#ifndef MG_TLS_H
#define MG_TLS_H

#include <event2/util.h>
#include <stdbool.h>
#include <stddef.h>

struct bufferevent;
struct cfg;
struct event_base;
struct mg_loop;
struct sockaddr;
struct x509_st;
struct tls_server;
struct tls_link;

#define TLS_HANDSHAKE_TIMEOUT_MS 10000

/* Build the server context from cfg. `what` names the listener that needs it
 * ("brokerServicePortTls") for the error. Returns NULL with err set ("tlsCertificateFilePath:
 * cannot load /x: ...") when a file is missing or unusable or a key's value is not understood. */
struct tls_server *tls_server_new(struct mg_loop *loop, const struct cfg *cfg, const char *what,
                                  char *err, size_t errlen);
/* Free; pending handshakes are dropped (their sockets closed, `failed` is not called).
 * Accepts NULL. */
void tls_server_free(struct tls_server *t);

/* The handshake of an accepted socket completed: bev (owned by the callee from now on; no
 * callbacks set, reading and writing enabled) speaks TLS. */
typedef void (*tls_ready_fn)(void *arg, struct bufferevent *bev, const struct sockaddr *addr,
                             int socklen);
/* The handshake failed or timed out: the socket is already closed. */
typedef void (*tls_failed_fn)(void *arg);

/* Take over fd (an accepted TCP socket) and run the server handshake on it; exactly one of
 * ready/failed runs later, from the loop. */
void tls_server_accept(struct tls_server *t, evutil_socket_t fd, const struct sockaddr *addr,
                       int socklen, tls_ready_fn ready, tls_failed_fn failed, void *arg);

/* A server-side SSL from the current context (refreshed first when
 * tlsCertRefreshCheckDurationSec is 0), owned by the caller: for a connection whose
 * bufferevent is made on another loop's thread (conn.h, numIOThreads). */
struct ssl_st *tls_server_new_ssl(struct tls_server *t);

/* A server-side TLS bufferevent for fd (accepting; the handshake runs as the owner reads):
 * for libraries that drive the connection themselves (evhttp_set_bevcb). Never NULL. */
struct bufferevent *tls_server_bev(struct tls_server *t, struct event_base *base,
                                   evutil_socket_t fd);

/* The client certificate of bev's TLS session (bev, or the bufferevent under a filter over
 * it), borrowed for as long as bev lives; NULL when bev is not TLS or the client sent none.
 * *trusted: it verified against tlsTrustCertsFilePath (false for one let through by
 * tlsAllowInsecureConnection). For the TLS authentication provider (auth_check_cert). */
struct x509_st *tls_peer_cert(struct bufferevent *bev, bool *trusted);

/* The most specific value of the attribute nid (NID_commonName...) of cert's subject: the
 * first of its RFC 2253 form, as Pulsar and BookKeeper read it. Owned by the caller
 * (mg_free); NULL when cert is NULL, has none, or the value holds a NUL. */
char *tls_cert_subject_attr(struct x509_st *cert, int nid);

/* Whether bev (or the bufferevent under a filter over it) speaks TLS: a request that came in
 * over HTTPS. */
bool tls_bev_is_tls(struct bufferevent *bev);

/* A server-side TLS filter over under (a socket bufferevent, owned by the result from now
 * on: freed with it), accepting: for a caller that writes the socket itself from under's
 * output (the TLS records are put there as soon as plain text is written). Never NULL. */
struct bufferevent *tls_server_filter(struct tls_server *t, struct bufferevent *under);

/* Check the files now and reload when they changed (what the refresh timer does).
 * Returns 1 when a new context was installed, 0 when nothing changed, or -MG_EINVAL when
 * the changed files could not be loaded (logged; the old context stays). */
int tls_server_refresh(struct tls_server *t);
/* Handshakes completed and failed since tls_server_new (for tests and logs). */
void tls_server_counts(const struct tls_server *t, long *ok, long *failed);

/* ---- shared by the listeners above and the BookKeeper links (tls_link.c) ----------------- */

struct ssl_ctx_st;

/* PEM files of one side of a TLS link, with the config key naming each (for errors). */
struct tls_pem {
    const char *cert, *key, *trust; /* paths; NULL or "" = none */
    const char *cert_key, *key_key, *trust_key;
};
/* Load f's certificate chain and key (when set; they must match) and trust bundle (the
 * verification store and the CA names a server asks client certificates from) into ctx.
 * Returns 0, or -MG_EINVAL with err naming the key and the file. */
int tls_ctx_load_pem(struct ssl_ctx_st *ctx, const struct tls_pem *f, char *err, size_t errlen);
/* OpenSSL's reason for the last error on this thread's queue; never NULL. */
const char *tls_openssl_reason(void);
/* The OpenSSL error (packed, with its library) why the TLS bufferevent bev failed, 0 when
 * it failed on its socket (a system call error or the end of the stream); drains bev's
 * OpenSSL error queue. */
unsigned long tls_bev_openssl_error(struct bufferevent *bev);
/* Why the TLS bufferevent bev failed (BEV_EVENT_* bits in what): OpenSSL's error or the
 * socket's fate, into why; drains bev's OpenSSL error queue. */
void tls_bev_error(struct bufferevent *bev, short what, char *why, size_t len);

/*
 * ---- TLS links between our processes: broker to bookie (tls_link.c) ----------------------
 *
 * BookKeeper's START_TLS: the connection starts in plain text, and after one v3 exchange both
 * sides put a TLS filter (bufferevent_openssl_filter_new) over the socket's bufferevent and
 * run the handshake on the same socket. The contexts are built once, from BookKeeper's keys
 * on the bookie (tlsCertificatePath, tlsKeyStore, tlsTrustStore, tlsClientAuthentication)
 * and Pulsar's on the broker (bookkeeperTLS*); TLS 1.2 at least, the peer certificate
 * verified against the trust bundle (the client always; the bookie when client
 * authentication is required, and then a client without a certificate fails).
 */
struct tls_link_conf {
    struct tls_pem pem;
    /* the declared formats of the key/certificate and of the trust files, with the keys
     * naming them: NULL or "PEM" (the only one read) */
    const char *key_type, *trust_type;
    const char *key_type_key, *trust_type_key;
    bool server;      /* the bookie side (cert and key required) */
    bool client_auth; /* server: require a client certificate verified against pem.trust */
};
/* A context for conf, or NULL with err set (a format other than PEM, a file missing or
 * unusable, a server without its certificate or key, client authentication without a trust
 * bundle). A client without
 * a trust bundle verifies against OpenSSL's default locations. Free with tls_link_ctx_free. */
struct ssl_ctx_st *tls_link_ctx_new(const struct tls_link_conf *conf, char *err, size_t errlen);
void tls_link_ctx_free(struct ssl_ctx_st *ctx);
/* One side's link context kept current (BookKeeper's tlsCertFilesRefreshDurationSeconds,
 * Pulsar's bookkeeperTlsCertFilesRefreshDurationSeconds): built from conf (copied) as
 * tls_link_ctx_new does, and, when refresh_s > 0, its files looked at again at most every
 * refresh_s seconds, at a new connection (tls_link_ctx): changed files that load give the
 * context of the new connections; live ones keep theirs; files that do not load are logged
 * (naming `what`, static) and the previous context stays. NULL with err set as
 * tls_link_ctx_new. */
struct tls_link *tls_link_new(const struct tls_link_conf *conf, int refresh_s, const char *what,
                              char *err, size_t errlen);
void tls_link_free(struct tls_link *l); /* accepts NULL */
/* The context for a new connection (the files checked first when due). */
struct ssl_ctx_st *tls_link_ctx(struct tls_link *l);
/* Check the files now: 1 reloaded, 0 unchanged, -MG_EINVAL changed but not loadable. */
int tls_link_refresh(struct tls_link *l);

/* BookieAuthZFactory's check (authorizedRoles, the comma list `allowed`) of the verified
 * client certificate of bev's TLS session: its roles are BookKeeper's, those under code 0 of
 * its OU ("0:role1,role2;1:cluster"); a certificate without them is taken by its CN. True
 * when one is listed. found: the role that matched, or what was seen (for the log). */
bool tls_peer_role_allowed(struct bufferevent *bev, const char *allowed, char *found, size_t len);
/* The same check of cert (NULL: none; trusted: it verified). */
bool tls_cert_role_allowed(struct x509_st *cert, bool trusted, const char *allowed, char *found,
                           size_t len);

/* Put a TLS filter over under (owned by the result from now on: freeing it frees under) and
 * start the handshake as server or client. The callbacks of under are the filter's; the
 * caller sets the result's and waits for BEV_EVENT_CONNECTED (BEV_EVENT_ERROR: failed, see
 * tls_bev_error). A read and write timeout of timeout_ms bounds the handshake; the caller
 * clears it (bufferevent_set_timeouts(bev, NULL, NULL)) once connected. Timeouts set on
 * under are cleared (the filter would report them as its own). Never NULL. */
struct bufferevent *tls_link_start(struct bufferevent *under, struct ssl_ctx_st *ctx, bool server,
                                   int timeout_ms);

/* A client TLS bufferevent of ctx (a client context of tls_link_ctx_new) with no socket yet,
 * connecting: for evhttp_connection_base_bufferevent_new, which connects it. The peer's
 * certificate is verified as ctx says; host names are not checked (Pulsar's
 * tlsHostnameVerificationEnabled=false). Never NULL. */
struct bufferevent *tls_client_bev(struct ssl_ctx_st *ctx, struct event_base *base);

#endif
