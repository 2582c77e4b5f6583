/*
 * conn.h - one client connection speaking the Pulsar binary protocol.
 *
 * A connection reads frames (wire.h), runs the handshake (CONNECT -> CONNECTED), answers
 * lookups and metadata requests itself and hands producers and consumers to the topic
 * module. It enforces the per-connection bounds: pending publishes
 * (maxPendingPublishRequestsPerConnection: reading pauses above it) and queued output
 * (connectionMaxOutboundBytes: reading pauses above it, dispatch to its consumers above
 * conn_dispatch_high_water).
 *
 * Lifetime: connections are refcounted. conn_close() marks the connection closing, stops
 * I/O and releases its producers and consumers; the memory goes when the last reference
 * (async requests in flight hold one) is dropped. Nothing is freed inside its own
 * callbacks. Loop thread only.
 */
#ifndef MG_CONN_H
#define MG_CONN_H

#include <event2/util.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct auth;
struct bufferevent;
struct cfg;
struct conn;
struct conn_iopool;
struct mg_loop;
struct ns;
struct sch_registry;
struct sockaddr;
struct ssl_st;
struct topic_registry;

/* What a connection uses of the broker: filled by its creator (the service, or a test) and
 * borrowed by every connection made with it; it must outlive them. */
struct conn_env {
    const struct cfg *cfg;         /* limits, keep-alive, auto-creation */
    struct mg_loop *loop;          /* the loop the connections run on (timers, clock) */
    struct topic_registry *topics; /* where producers and consumers attach */
    struct ns *ns;                 /* lookups, ownership, partitioned metadata, listings */
    const struct auth *auth;       /* authentication (auth.h); NULL = off */
    /* the schema registry (schema.h): PRODUCER and SUBSCRIBE schemas, GET_SCHEMA; NULL = no
     * schemas kept (GET_SCHEMA finds none, a producer's schema gets no version) */
    struct sch_registry *schemas;
    bool tls; /* the connections came over TLS: lookups answer with the TLS URLs */
    /* I/O loops for the sockets of conn_accept and conn_accept_ssl (numIOThreads,
     * docs/threads.md); NULL = the sockets run on loop */
    struct conn_iopool *io;
    /* The connection closed (conn_close, once): the creator's reference ends when this
     * returns, so it must forget c. May be NULL. */
    void (*closed)(void *data, struct conn *c);
    void *data; /* of closed */
};

/* The queued output of a connection above which its consumers get nothing more dispatched
 * (topic_config.consumer_outbound_high_water): half of connectionMaxOutboundBytes, so that
 * the dispatch alone (which goes at most one entry beyond it) does not take the output to
 * the bound at which the connection stops reading its client's commands (ACK, FLOW). */
size_t conn_dispatch_high_water(const struct cfg *cfg);

/* Take over bev (owned from now on: a connected socket's, or one end of an in-process pair)
 * and speak the protocol on it; peer names the other end in logs ("ip:port", may be
 * NULL). The caller holds one reference, which ends with the connection (env->closed).
 * Never NULL. */
struct conn *conn_new(const struct conn_env *env, struct bufferevent *bev, const char *peer,
                      uint64_t id);
/* conn_new on an accepted TCP socket (fd is owned from now on): no delay, non-blocking. */
struct conn *conn_accept(const struct conn_env *env, evutil_socket_t fd,
                         const struct sockaddr *addr, int socklen, uint64_t id);
/* conn_accept for a socket of the TLS port with env->io set: the server handshake with ssl
 * (owned from now on, tls_server_new_ssl) runs on the I/O loop, as the connection's reads and
 * writes do. */
struct conn *conn_accept_ssl(const struct conn_env *env, evutil_socket_t fd, struct ssl_st *ssl,
                             const struct sockaddr *addr, int socklen, uint64_t id);
/* conn_new on the bufferevent of an accepted connection (a TLS one, tls.h), peer named
 * from addr. */
struct conn *conn_accept_bev(const struct conn_env *env, struct bufferevent *bev,
                             const struct sockaddr *addr, int socklen, uint64_t id);
/* numIOThreads I/O loops, each on its own thread (docs/threads.md), for conn_env.io; NULL
 * when n < 2 (the sockets stay on the main loop). From the thread of loop. */
struct conn_iopool *conn_iopool_new(struct mg_loop *loop, int n);
/* Stop the I/O loops once every connection using them was closed (conn_close), and free
 * what the hand-offs still held. Accepts NULL. */
void conn_iopool_free(struct conn_iopool *p);
/* Whether the connection came over TLS (its env's tls). */
bool conn_tls(const struct conn *c);
/* Close: logs reason (NULL = normal close at INFO level is skipped), releases producers and
 * consumers, frees the socket; the struct goes with the last reference. Idempotent. */
void conn_close(struct conn *c, const char *reason);
/* Refuse a connection just accepted (over a connection limit): ERROR with request id -1,
 * err's ServerError and message, as Pulsar does; then the connection is closed once the
 * client closed its side or after a short grace period (input is discarded meanwhile, so
 * the client reads the ERROR before the close). */
void conn_refuse(struct conn *c, int err, const char *message);
/* Graceful broker-side close (shutdown): flush what is queued, then close. */
void conn_shutdown(struct conn *c);
uint64_t conn_id(const struct conn *c);
/* The role the client authenticated as, or NULL (authentication off, or not connected). */
const char *conn_role(const struct conn *c);
/* With authorizationEnabled: the producers and consumers of c on topics of tenant_ns
 * ("t/ns") whose role lost its permission are closed (CLOSE_PRODUCER / CLOSE_CONSUMER; the
 * client reconnects and is refused), as Pulsar re-checks them on a policies update. */
void conn_authz_recheck(struct conn *c, const char *tenant_ns);

#endif
