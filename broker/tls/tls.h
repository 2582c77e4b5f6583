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

/* A server-side TLS bufferevent for fd (accepting; the handshake runs as the owner reads):
 * for libraries that drive the connection themselves (evhttp_set_bevcb). Never NULL. */
struct bufferevent *tls_server_bev(struct tls_server *t, struct event_base *base,
                                   evutil_socket_t fd);

/* The client certificate of bev's TLS session (bev, or the bufferevent under a filter over
 * it), borrowed for as long as bev lives; NULL when bev is not TLS or the client sent none.
 * *trusted: it verified against tlsTrustCertsFilePath (false for one let through by
 * tlsAllowInsecureConnection). For the TLS authentication provider (auth_check_cert). */
struct x509_st *tls_peer_cert(struct bufferevent *bev, bool *trusted);

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

#endif
